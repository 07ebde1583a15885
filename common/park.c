#include "park.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "keys.h"
#include "pause.h"
#include "queue.h"
#include "status.h"

/* Jobs one purge round trip takes: its arguments stay small. */
#define PURGE_ROUND 500

long sw_park_jobs(sw_redis *r, const char *sink)
{
    char parked[SW_KEY_MAX];
    sw_keys_parked(&r->keys, sink, parked);
    void *rep = sw_redis_callf(r, "parked", SW_REPLY_INTEGER, 1, "LLEN %s", parked);
    if (rep == NULL)
        return -1;
    long n = (long)sw_redis_reply_int(rep);
    sw_redis_reply_free(rep);
    return n;
}

/* One job of a purge round: what the script checks and writes. */
typedef struct purged {
    char list_id[SW_ENVELOPE_ID_LEN + 1];
    size_t env_len;
    char bucket[SW_KEY_MAX], job_key[SW_KEY_MAX];
    unsigned char field[16];
    size_t json_off, json_len;
} purged;

/* Describe the envelopes of `rep` (newest first, as LRANGE gives the
 * tail) oldest first into `p`, their failed statuses end to end in
 * `json`. 0, or -1 out of memory. */
static int describe(sw_redis *r, const void *rep, size_t n, const char *sink,
                    const char *reason, purged *p, sw_buf *json)
{
    sw_buf one = SW_BUF_INIT;
    int64_t now = sw_clock_now_us();
    int rc = 0;
    sw_buf_reset(json);
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len;
        const char *v = sw_redis_reply_item(rep, n - 1 - i, &len);
        purged *j = &p[i];
        sw_envelope e;
        char why[64];
        j->env_len = len;
        sw_envelope_list_id(v, len, j->list_id);
        /* An envelope that does not decode is purged all the same, under
         * the id the scripts read in it. */
        int ok = sw_envelope_decode(v, len, &e, why, sizeof why) == 0;
        const char *id = ok ? e.job_id : j->list_id;
        sw_keys_job(&r->keys, id, j->job_key);
        if (sw_keys_status(&r->keys, id, j->bucket, j->field) == 0) {
            snprintf(j->bucket, sizeof j->bucket, "%s:st:none", r->keys.prefix);
            memset(j->field, 0, sizeof j->field);
        }
        sw_status st = {id, "failed", ok ? e.sink : sink,
                        ok ? (long long)e.nrecords : (long long)sw_envelope_script_count(v, len),
                        (int64_t)sw_jobid_time_ms(id) * 1000, now, reason};
        j->json_off = json->len;
        rc = sw_status_json(&one, &st);
        rc |= sw_buf_append(json, one.data, one.len);
        j->json_len = one.len;
    }
    sw_buf_free(&one);
    return rc;
}

long sw_park_purge(sw_redis *r, const char *sink, const char *reason, int ttl_s,
                   long max_jobs, long long *records)
{
    char parked[SW_KEY_MAX];
    sw_buf json = SW_BUF_INIT;
    purged *p = malloc(PURGE_ROUND * sizeof *p);
    long done = 0, todo = p ? sw_park_jobs(r, sink) : -1;
    int doubts = 0;
    *records = 0;
    if (p == NULL) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "purge: out of memory");
    }
    if (todo < 0)
        goto fail;
    if (max_jobs > 0 && todo > max_jobs)
        todo = max_jobs;
    sw_keys_parked(&r->keys, sink, parked);
    while (done < todo) {
        long want = todo - done < PURGE_ROUND ? todo - done : PURGE_ROUND;
        void *rep = sw_redis_callf(r, "purge", SW_REPLY_ARRAY, 1, "LRANGE %s %ld -1", parked,
                                   -want);
        if (rep == NULL)
            goto fail;
        if (sw_redis_check_elements(r, rep, SW_REPLY_STRING, "purge") != 0) {
            sw_redis_reply_free(rep);
            goto fail;
        }
        size_t n = sw_redis_reply_len(rep);
        if (n == 0 || n > (size_t)want) {
            /* Resumed (taken by claims) meanwhile, or a list not as asked. */
            sw_redis_reply_free(rep);
            break;
        }
        if (describe(r, rep, n, sink, reason, p, &json) != 0) {
            sw_redis_reply_free(rep);
            r->err = SW_REDIS_ENOMEM;
            snprintf(r->errstr, sizeof r->errstr, "purge: out of memory");
            goto fail;
        }
        sw_redis_reply_free(rep);
        sw_redis_args a;
        sw_redis_args_init(&a);
        sw_redis_args_str(&a, r->keys.stats);
        sw_redis_args_str(&a, r->keys.deliveries);
        sw_redis_args_str(&a, parked);
        sw_redis_args_str(&a, r->keys.waiters);
        sw_redis_args_str(&a, r->keys.done);
        for (size_t i = 0; i < n; i++) {
            sw_redis_args_str(&a, p[i].bucket);
            sw_redis_args_str(&a, p[i].job_key);
        }
        sw_redis_args_end_keys(&a);
        sw_redis_args_str(&a, sink);
        sw_redis_args_int(&a, ttl_s);
        for (size_t i = 0; i < n; i++) {
            sw_redis_args_str(&a, p[i].list_id);
            sw_redis_args_int(&a, (long long)p[i].env_len);
            sw_redis_args_bin(&a, p[i].field, sizeof p[i].field);
            sw_redis_args_bin(&a, json.data + p[i].json_off, p[i].json_len);
        }
        rep = sw_redis_eval(r, SW_SCRIPT_PURGE, "purge", SW_REPLY_ARRAY, &a);
        sw_redis_args_free(&a);
        if (rep == NULL)
            goto fail;
        if (sw_redis_reply_len(rep) != 2 ||
            sw_redis_check_elements(r, rep, SW_REPLY_INTEGER, "purge") != 0) {
            if (r->err != SW_REDIS_EPROTO)
                sw_redis_fail_proto(r, "purge", "not {done, records}");
            sw_redis_reply_free(rep);
            goto fail;
        }
        int ok = sw_redis_reply_int(sw_redis_reply_at(rep, 0)) == 1;
        long long recs = sw_redis_reply_int(sw_redis_reply_at(rep, 1));
        sw_redis_reply_free(rep);
        if (ok) {
            done += (long)n;
            *records += recs;
        } else if (++doubts == 3) {
            /* The tail moved under us three times: flushers still park or
             * give back (the pause not seen everywhere yet?). */
            r->err = SW_REDIS_EREFUSED;
            r->code[0] = '\0';
            snprintf(r->errstr, sizeof r->errstr, "purge: the parked list kept changing; "
                     "run it again");
            goto fail;
        }
    }
    free(p);
    sw_buf_free(&json);
    return done;
fail:
    free(p);
    sw_buf_free(&json);
    return -1;
}

int sw_park_purge_sink(sw_redis *base, sw_shards *s, const sw_config *cfg, const char *sink,
                       const char *reason, long max_jobs, sw_purge_result *out,
                       sw_redis **failed)
{
    sw_buf rec = SW_BUF_INIT;
    memset(out, 0, sizeof *out);
    *failed = base;
    int paused = sw_pause_get(base, SW_PAUSE_FLUSH, sink, &rec);
    sw_buf_free(&rec);
    if (paused <= 0)
        return paused;
    for (int k = 0; k < s->n; k++) {
        long long recs = 0;
        long left = max_jobs > 0 ? max_jobs - out->jobs : 0;
        long n = max_jobs > 0 && left <= 0 ? 0
                 : sw_park_purge(s->q[k], sink, reason, cfg->status_ttl_s, left, &recs);
        long more = n >= 0 ? sw_park_jobs(s->q[k], sink) : 0;
        out->records += recs;
        out->jobs += n > 0 ? n : 0;
        if (n < 0 || more < 0) {
            *failed = s->q[k];
            return -1;
        }
        out->still_parked += more;
    }
    /* The sink's records still in the queue lists: depth counts the
     * parked ones too (none left, unless parked since). */
    sw_sink_figures *fig = calloc((size_t)cfg->nsinks + 1, sizeof *fig);
    const sw_sink *sk = sw_config_sink(cfg, sink, strlen(sink));
    sw_redis *ignored;
    out->still_queued = -1;
    if (fig && sk && sw_shards_sink_figures(s, cfg, fig, NULL, &ignored) == 1)
        out->still_queued = fig[sk - cfg->sinks].depth - fig[sk - cfg->sinks].parked;
    free(fig);
    return 1;
}
