#include "jobid.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "hex.h"

/* Per-thread generator: xoshiro-style state seeded once from the kernel, so
 * the hot path makes no syscall per id. */
static _Thread_local uint64_t rng_s[2];
static _Thread_local int rng_seeded;
static _Thread_local uint64_t last_ms;
static _Thread_local uint16_t last_seq;

static uint64_t rng_next(void)
{
    uint64_t s1 = rng_s[0];
    const uint64_t s0 = rng_s[1];
    const uint64_t result = s0 + s1;
    rng_s[0] = s0;
    s1 ^= s1 << 23;
    rng_s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return result;
}

static void rng_seed(void)
{
    if (getrandom(rng_s, sizeof rng_s, 0) != (ssize_t)sizeof rng_s ||
        (rng_s[0] | rng_s[1]) == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rng_s[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&ts;
        rng_s[1] = (uint64_t)ts.tv_sec ^ 0xD1B54A32D192ED03ull;
    }
    rng_seeded = 1;
}

void sw_jobid_make(char out[SW_JOBID_LEN + 1], uint64_t ms, uint16_t seq, uint64_t rnd)
{
    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (unsigned char)seq;
    b[8] = (unsigned char)(0x80 | ((rnd >> 56) & 0x3f));
    for (int i = 9; i < 16; i++)
        b[i] = (unsigned char)(rnd >> (8 * (15 - i)));
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

void sw_jobid_new(char out[SW_JOBID_LEN + 1])
{
    if (!rng_seeded) {
        rng_seed();
        last_seq = (uint16_t)(rng_next() & 0x3ff);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (ms <= last_ms) {
        /* Same millisecond, or the clock stepped back: keep increasing. */
        ms = last_ms;
        if (++last_seq > 0x0fff) {
            ms = ++last_ms;
            last_seq = 0;
        }
    } else {
        /* Start low in the counter space so a burst has room to count. */
        last_seq = (uint16_t)(rng_next() & 0x3ff);
    }
    last_ms = ms;
    sw_jobid_make(out, ms, last_seq, rng_next());
}

int sw_jobid_valid(const char *s, unsigned long n)
{
    if (n != SW_JOBID_LEN)
        return 0;
    for (unsigned long i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (sw_hex_digit((unsigned char)s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

uint64_t sw_jobid_time_ms(const char *id)
{
    uint64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (i == 8)
            continue;
        ms = (ms << 4) | (uint64_t)sw_hex_digit((unsigned char)id[i]);
    }
    return ms;
}

void sw_jobid_set_shift(char id[SW_JOBID_LEN + 1], int shift)
{
    id[SW_JOBID_SHIFT_AT] = "0123456789abcdef"[shift & 15];
}

int sw_jobid_shift(const char *id)
{
    int v = sw_hex_digit((unsigned char)id[SW_JOBID_SHIFT_AT]);
    return v < 0 ? 0 : v;
}

void sw_jobid_set_shard(char id[SW_JOBID_LEN + 1], int shard)
{
    id[SW_JOBID_SHARD_AT] = "0123456789abcdef"[(shard >> 4) & 15];
    id[SW_JOBID_SHARD_AT + 1] = "0123456789abcdef"[shard & 15];
}

int sw_jobid_shard(const char *id)
{
    int hi = sw_hex_digit((unsigned char)id[SW_JOBID_SHARD_AT]);
    int lo = sw_hex_digit((unsigned char)id[SW_JOBID_SHARD_AT + 1]);
    return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}
