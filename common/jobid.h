#ifndef SW_JOBID_H_
#define SW_JOBID_H_

#include <stdint.h>

/* Job ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a
 * 12-bit counter that keeps ids from one thread strictly increasing within
 * a millisecond, then 62 random bits that keep servers and restarts apart
 * (58 once the server has set the shift below, 50 with a shard too).
 * Their text form sorts in time order. The server sets 4 of the random
 * bits, the hex digit at SW_JOBID_SHIFT_AT, to the job's status bucket
 * shift (status.h, keys.h): its status lives in the bucket of 2^shift ms
 * that holds its timestamp, so the id alone finds it. */
#define SW_JOBID_LEN 36

/* Write a new id, as 36 lower-case characters plus NUL, into `out`.
 * Thread-safe (per-thread state seeded from getrandom). */
void sw_jobid_new(char out[SW_JOBID_LEN + 1]);

/* Set the status bucket shift (0..15) of the id in `id`. */
#define SW_JOBID_SHIFT_AT 20
void sw_jobid_set_shift(char id[SW_JOBID_LEN + 1], int shift);

/* The status bucket shift an id carries (for ids made before buckets
 * existed: a random one, whose bucket simply has no entry for it). */
int sw_jobid_shift(const char *id);

/* With [redis] shards, the two hex digits at SW_JOBID_SHARD_AT (byte 9,
 * random before) name the job's queue shard, so a status poll goes
 * straight to it. Set shard 0..255; read it back (-1: not hex). */
#define SW_JOBID_SHARD_AT 21
void sw_jobid_set_shard(char id[SW_JOBID_LEN + 1], int shard);
int sw_jobid_shard(const char *id);

/* Same, at a given time and from given state, for tests: `ms` is the
 * timestamp, `*seq` the per-thread counter state, `rnd` the random bits. */
void sw_jobid_make(char out[SW_JOBID_LEN + 1], uint64_t ms, uint16_t seq, uint64_t rnd);

/* 1 when `s` (length n) is a canonical UUID in lower or upper case. */
int sw_jobid_valid(const char *s, unsigned long n);

/* Unix milliseconds in a UUIDv7 text id (no validation beyond length). */
uint64_t sw_jobid_time_ms(const char *id);

#endif
