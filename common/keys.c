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
    if (!sw_jobid_valid(job_id, strlen(job_id)))
        return 0;
    for (int i = 0, o = 0; i < SW_JOBID_LEN; i++) {
        if (job_id[i] == '-')
            continue;
        int v = sw_hex_digit((unsigned char)job_id[i]);
        if (o & 1)
            field[o / 2] = (unsigned char)(field[o / 2] | v);
        else
            field[o / 2] = (unsigned char)(v << 4);
        o++;
    }
    return sw_keys_bucket(k, sw_jobid_shift(job_id), sw_jobid_time_ms(job_id), key);
}
