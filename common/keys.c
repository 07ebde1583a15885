#include "keys.h"

#include <stdio.h>
#include <string.h>

#include "hex.h"
#include "jobid.h"

void sw_keys_init(sw_keys *k, const char *prefix)
{
    snprintf(k->prefix, sizeof k->prefix, "%s", prefix);
    snprintf(k->queue, sizeof k->queue, "%s:queue", prefix);
    snprintf(k->stats, sizeof k->stats, "%s:stats", prefix);
    snprintf(k->shapes, sizeof k->shapes, "%s:shapes", prefix);
    snprintf(k->flushers, sizeof k->flushers, "%s:flushers", prefix);
    snprintf(k->deliveries, sizeof k->deliveries, "%s:deliveries", prefix);
    snprintf(k->dead, sizeof k->dead, "%s:dead", prefix);
    snprintf(k->deadenv, sizeof k->deadenv, "%s:deadenv", prefix);
    snprintf(k->deadinfo, sizeof k->deadinfo, "%s:deadinfo", prefix);
    snprintf(k->layout, sizeof k->layout, "%s:layout", prefix);
    snprintf(k->lease, sizeof k->lease, "%s:lease", prefix);
    snprintf(k->members, sizeof k->members, "%s:members", prefix);
    snprintf(k->paused, sizeof k->paused, "%s:paused", prefix);
    snprintf(k->flush_paused, sizeof k->flush_paused, "%s:flush_paused", prefix);
    snprintf(k->waiters, sizeof k->waiters, "%s:waiters", prefix);
    snprintf(k->done, sizeof k->done, "%s:done", prefix);
    snprintf(k->seq, sizeof k->seq, "%s:seq", prefix);
}

size_t sw_keys_shard_prefix(const char *prefix, int k, char out[64])
{
    char base[64];
    size_t n = 0;
    for (const char *c = prefix; *c != '\0' && n + 1 < sizeof base; c++)
        if (*c != '{' && *c != '}')
            base[n++] = *c;
    base[n] = '\0';
    int w = snprintf(out, 64, "{%s:%d}", base, k);
    return w > 0 && w < 64 ? (size_t)w : 0;
}

void sw_keys_flusher(const sw_keys *k, const char *fid, sw_fkeys *out)
{
    snprintf(out->processing, sizeof out->processing, "%s:processing:%s", k->prefix, fid);
    snprintf(out->inflight, sizeof out->inflight, "%s:inflight:%s", k->prefix, fid);
    snprintf(out->heartbeat, sizeof out->heartbeat, "%s:heartbeat:%s", k->prefix, fid);
}

/* snprintf's result as a length: 0 when it did not fit. */
static size_t put(size_t outlen, int n)
{
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

size_t sw_keys_job(const sw_keys *k, const char *job_id, char *out)
{
    return put(SW_KEY_MAX, snprintf(out, SW_KEY_MAX, "%s:job:%s", k->prefix, job_id));
}

size_t sw_keys_parked(const sw_keys *k, const char *sink, char *out)
{
    return put(SW_KEY_MAX, snprintf(out, SW_KEY_MAX, "%s:parked:%s", k->prefix, sink));
}

size_t sw_keys_dead_legacy(const sw_keys *k, const char *job_id, char *out)
{
    return put(SW_KEY_MAX, snprintf(out, SW_KEY_MAX, "%s:dead:%s", k->prefix, job_id));
}

size_t sw_keys_idem(const sw_keys *k, const char *sink, const char *scope, const char *key,
                    char *out, size_t outlen)
{
    if (scope[0] == '\0')
        return put(outlen, snprintf(out, outlen, "%s:idem:%s:%s", k->prefix, sink, key));
    return put(outlen, snprintf(out, outlen, "%s:idem:%s@%s:%s", k->prefix, sink, scope, key));
}

size_t sw_keys_bucket(const sw_keys *k, int shift, uint64_t ms, char *key)
{
    shift &= 15;
    return put(SW_KEY_MAX, snprintf(key, SW_KEY_MAX, "%s:st:%x:%llu", k->prefix, shift,
                                    (unsigned long long)(ms >> shift)));
}

size_t sw_keys_status(const sw_keys *k, const char *job_id, char *key, unsigned char field[16])
{
    /* One pass: check the UUID's form and take its bytes. */
    int o = 0;
    for (int i = 0; i < SW_JOBID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (job_id[i] != '-')
                return 0;
            continue;
        }
        int v = sw_hex_digit((unsigned char)job_id[i]);
        if (v < 0)
            return 0;
        if (o & 1)
            field[o / 2] = (unsigned char)(field[o / 2] | v);
        else
            field[o / 2] = (unsigned char)(v << 4);
        o++;
    }
    if (job_id[SW_JOBID_LEN] != '\0')
        return 0;
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | field[i];
    /* The shift is the id's hex digit SW_JOBID_SHIFT_AT: byte 8's low half. */
    _Static_assert(SW_JOBID_SHIFT_AT == 20, "the shift is byte 8's low half");
    return sw_keys_bucket(k, field[8] & 15, ms, key);
}
