#include "processing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "latency.h"

static void oom(sw_redis *r, const char *what)
{
    r->err = SW_REDIS_ENOMEM;
    r->code[0] = '\0';
    snprintf(r->errstr, sizeof r->errstr, "%s: out of memory", what);
}

/* The KEYS of claim and release: queue, stats, processing, inflight,
 * then each sink's parked list (names in `parked`, SW_KEY_MAX each). */
static void queue_keys(sw_redis_args *a, const sw_redis *r, const sw_fkeys *fk,
                       const sw_sink_view *sinks, char (*parked)[SW_KEY_MAX])
{
    sw_redis_args_str(a, r->keys.queue);
    sw_redis_args_str(a, r->keys.stats);
    sw_redis_args_str(a, fk->processing);
    sw_redis_args_str(a, fk->inflight);
    for (int i = 0; i < sinks->n; i++) {
        sw_keys_parked(&r->keys, sinks->names[i], parked[i]);
        sw_redis_args_str(a, parked[i]);
    }
    sw_redis_args_end_keys(a);
}

int sw_proc_claim(sw_redis *r, const char *fid, const sw_claim_limits *lim, void **reply)
{
    sw_fkeys fk;
    sw_redis_args a;
    /* One key each: the arguments point into them until the call. */
    char (*parked)[SW_KEY_MAX] = malloc((size_t)(lim->sinks.n + 1) * sizeof *parked);
    *reply = NULL;
    if (parked == NULL) {
        oom(r, "claim");
        return -1;
    }
    sw_keys_flusher(&r->keys, fid, &fk);
    sw_redis_args_init(&a);
    queue_keys(&a, r, &fk, &lim->sinks, parked);
    sw_redis_args_int(&a, lim->max_records);
    sw_redis_args_int(&a, lim->max_jobs);
    sw_redis_args_int(&a, lim->max_bytes);
    sw_redis_args_str(&a, lim->oversize ? "1" : "0");
    for (int i = 0; i < lim->sinks.n; i++) {
        sw_redis_args_str(&a, lim->sinks.names[i]);
        sw_redis_args_str(&a, lim->sinks.paused[i] ? "1" : "0");
    }
    void *rep = sw_redis_eval(r, SW_SCRIPT_CLAIM, "claim", SW_REPLY_ANY, &a);
    sw_redis_args_free(&a);
    free(parked);
    if (rep == NULL)
        return -1;
    if (sw_redis_reply_type(rep) == SW_REPLY_INTEGER) {
        long long v = sw_redis_reply_int(rep);
        sw_redis_reply_free(rep);
        if (v == 0 || v == 1)
            return v == 0 ? 1 : 2;
        sw_redis_fail_proto(r, "claim", "an integer neither 0 nor 1");
        return -1;
    }
    if (sw_redis_check_elements(r, rep, SW_REPLY_STRING, "claim") != 0 ||
        sw_redis_reply_len(rep) > (size_t)lim->max_jobs) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "claim", "more jobs than asked for");
        sw_redis_reply_free(rep);
        return -1;
    }
    *reply = rep;
    return 0;
}

int sw_proc_resume(sw_redis *r, const char *fid, int take, void **reply, long **deliveries)
{
    sw_fkeys fk;
    sw_redis_args a;
    sw_keys_flusher(&r->keys, fid, &fk);
    sw_redis_args_init(&a);
    sw_redis_args_str(&a, fk.processing);
    sw_redis_args_str(&a, r->keys.deliveries);
    sw_redis_args_end_keys(&a);
    sw_redis_args_str(&a, take ? "take" : "peek");
    void *rep = sw_redis_eval(r, SW_SCRIPT_RESUME, take ? "resume" : "reload", SW_REPLY_ARRAY,
                              &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    const void *envs = sw_redis_reply_len(rep) == 2 ? sw_redis_reply_at(rep, 0) : NULL;
    const void *counts = envs ? sw_redis_reply_at(rep, 1) : NULL;
    if (envs == NULL || sw_redis_check_elements(r, envs, SW_REPLY_STRING, "resume") != 0 ||
        sw_redis_check_elements(r, counts, SW_REPLY_INTEGER, "resume") != 0 ||
        sw_redis_reply_len(envs) != sw_redis_reply_len(counts)) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "resume", "not {envelopes, counts}");
        sw_redis_reply_free(rep);
        return -1;
    }
    size_t n = sw_redis_reply_len(envs);
    long *d = malloc((n ? n : 1) * sizeof *d);
    if (d == NULL) {
        oom(r, "resume");
        sw_redis_reply_free(rep);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        d[i] = (long)sw_redis_reply_int(sw_redis_reply_at(counts, i));
    *deliveries = d;
    *reply = rep;
    return 0;
}

/* A claim reply is the array itself; a resume reply holds it first. */
static const void *envelopes(const void *reply)
{
    if (sw_redis_reply_len(reply) == 2 &&
        sw_redis_reply_type(sw_redis_reply_at(reply, 0)) == SW_REPLY_ARRAY)
        return sw_redis_reply_at(reply, 0);
    return reply;
}

size_t sw_proc_count(const void *reply)
{
    return reply ? sw_redis_reply_len(envelopes(reply)) : 0;
}

const char *sw_proc_item(const void *reply, size_t i, size_t *len)
{
    return sw_redis_reply_item(envelopes(reply), i, len);
}

/* The committed jobs' latencies by sink: stats fields and increments
 * for the finish script, lat:<sink>:<i> and latsum:<sink> (latency.h),
 * for as many sinks as the batch holds. */
typedef struct lat_sink {
    const char *sink;
    long long n[SW_LAT_NBUCKETS], sum;
} lat_sink;

typedef struct lat_tally {
    lat_sink *s;
    int n, cap;
    sw_buf fields;              /* NUL-separated, in lat_args' order */
} lat_tally;

static int lat_count(lat_tally *t, const sw_proc_done *j)
{
    if (j->error != NULL || j->sink == NULL)
        return 0;
    int k = 0;
    while (k < t->n && strcmp(t->s[k].sink, j->sink) != 0)
        k++;
    if (k == t->n) {
        if (t->n == t->cap) {
            int cap = t->cap ? 2 * t->cap : 4;
            lat_sink *s = realloc(t->s, (size_t)cap * sizeof *s);
            if (s == NULL)
                return -1;
            t->s = s;
            t->cap = cap;
        }
        memset(&t->s[t->n], 0, sizeof t->s[t->n]);
        t->s[t->n++].sink = j->sink;
    }
    long long ms = j->latency_ms > 0 ? j->latency_ms : 0;
    t->s[k].n[sw_lat_bucket(ms)]++;
    t->s[k].sum += ms;
    return 0;
}

/* Append the tally's fields and increments to the script's ARGV; the
 * fields are written first (the buffer may move), then pointed at. */
static int lat_args(lat_tally *t, sw_redis_args *a)
{
    int rc = 0;
    for (int k = 0; k < t->n; k++) {
        for (int i = 0; i < SW_LAT_NBUCKETS; i++)
            if (t->s[k].n[i] != 0)
                rc |= sw_buf_printf(&t->fields, "lat:%s:%d%c", t->s[k].sink, i, '\0');
        rc |= sw_buf_printf(&t->fields, "latsum:%s%c", t->s[k].sink, '\0');
    }
    if (rc != 0)
        return -1;
    const char *f = t->fields.data;
    for (int k = 0; k < t->n; k++) {
        for (int i = 0; i < SW_LAT_NBUCKETS; i++) {
            if (t->s[k].n[i] == 0)
                continue;
            sw_redis_args_str(a, f);
            sw_redis_args_int(a, t->s[k].n[i]);
            f += strlen(f) + 1;
        }
        sw_redis_args_str(a, f);
        sw_redis_args_int(a, t->s[k].sum);
        f += strlen(f) + 1;
    }
    return 0;
}

int sw_proc_finish(sw_redis *r, const char *fid, int njobs, const sw_proc_done *jobs,
                   int ttl_s, const sw_dead_bounds *bounds, long *dropped)
{
    sw_fkeys fk;
    sw_redis_args a;
    char now[32];
    /* Per job its bucket and its <p>:job:<id>; the args point into them. */
    char (*keys)[SW_KEY_MAX] = malloc((size_t)(njobs ? njobs : 1) * 2 * sizeof *keys);
    unsigned char (*fields)[16] = malloc((size_t)(njobs ? njobs : 1) * sizeof *fields);
    lat_tally lat = {NULL, 0, 0, SW_BUF_INIT};
    int rc = -1;
    *dropped = 0;
    sw_redis_args_init(&a);
    if (keys == NULL || fields == NULL) {
        oom(r, "finish");
        goto out;
    }
    sw_keys_flusher(&r->keys, fid, &fk);
    sw_clock_format(sw_clock_now_us(), now);
    const char *fixed[] = {r->keys.stats, r->keys.dead, r->keys.deadenv, r->keys.deadinfo,
                           r->keys.deliveries, fk.processing, fk.inflight, r->keys.waiters,
                           r->keys.done};
    for (int i = 0; i < 9; i++)
        sw_redis_args_str(&a, fixed[i]);
    for (int j = 0; j < njobs; j++) {
        /* An id that is none (a corrupt envelope's stand-in is one) has
         * no bucket: a key of its own that nothing holds. */
        char *bucket = keys[2 * j], *job = keys[2 * j + 1];
        if (sw_keys_status(&r->keys, jobs[j].job_id, bucket, fields[j]) == 0) {
            snprintf(bucket, SW_KEY_MAX, "%s:st:none", r->keys.prefix);
            memset(fields[j], 0, sizeof fields[j]);
        }
        sw_redis_args_str(&a, bucket);
        sw_keys_job(&r->keys, jobs[j].job_id, job);
        sw_redis_args_str(&a, job);
    }
    sw_redis_args_end_keys(&a);
    sw_redis_args_str(&a, now);
    sw_redis_args_int(&a, ttl_s);
    sw_redis_args_int(&a, bounds->max_jobs);
    sw_redis_args_int(&a, bounds->max_bytes);
    for (int j = 0; j < njobs; j++) {
        sw_redis_args_bin(&a, jobs[j].list_id, jobs[j].list_id_len);
        sw_redis_args_int(&a, (long long)jobs[j].env_len);
        sw_redis_args_str(&a, jobs[j].job_id);
        sw_redis_args_bin(&a, (const char *)fields[j], sizeof fields[j]);
        sw_redis_args_bin(&a, jobs[j].status, jobs[j].status_len);
        sw_redis_args_str(&a, jobs[j].error ? jobs[j].error : "");
        sw_redis_args_bin(&a, jobs[j].json ? jobs[j].json : "", jobs[j].json ? jobs[j].json_len : 0);
        sw_redis_args_int(&a, jobs[j].records);
        if (lat_count(&lat, &jobs[j]) != 0) {
            oom(r, "finish");
            goto out;
        }
    }
    if (lat_args(&lat, &a) != 0) {
        oom(r, "finish");
        goto out;
    }
    void *rep = sw_redis_eval(r, SW_SCRIPT_FINISH, "finish", SW_REPLY_ARRAY, &a);
    if (rep == NULL)
        goto out;
    if (sw_redis_reply_len(rep) != 2 ||
        sw_redis_check_elements(r, rep, SW_REPLY_INTEGER, "finish") != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "finish", "not {done, n}");
        sw_redis_reply_free(rep);
        goto out;
    }
    rc = sw_redis_reply_int(sw_redis_reply_at(rep, 0)) == 1;
    if (rc == 1)
        *dropped = (long)sw_redis_reply_int(sw_redis_reply_at(rep, 1));
    else
        snprintf(r->errstr, sizeof r->errstr,
                 "finish: the processing list's tail is not the batch (from job %lld on)",
                 sw_redis_reply_int(sw_redis_reply_at(rep, 1)));
    sw_redis_reply_free(rep);
out:
    sw_redis_args_free(&a);
    free(lat.s);
    sw_buf_free(&lat.fields);
    free(keys);
    free(fields);
    return rc;
}

long sw_proc_release(sw_redis *r, const char *fid, const sw_sink_view *sinks)
{
    sw_fkeys fk;
    sw_redis_args a;
    char (*parked)[SW_KEY_MAX] = malloc((size_t)(sinks->n + 1) * sizeof *parked);
    if (parked == NULL) {
        oom(r, "release");
        return -1;
    }
    sw_keys_flusher(&r->keys, fid, &fk);
    sw_redis_args_init(&a);
    queue_keys(&a, r, &fk, sinks, parked);
    for (int i = 0; i < sinks->n; i++)
        sw_redis_args_str(&a, sinks->names[i]);
    void *rep = sw_redis_eval(r, SW_SCRIPT_RELEASE, "release", SW_REPLY_INTEGER, &a);
    sw_redis_args_free(&a);
    free(parked);
    if (rep == NULL)
        return -1;
    long n = (long)sw_redis_reply_int(rep);
    sw_redis_reply_free(rep);
    return n;
}

int sw_proc_takeover(sw_redis *r, const char *fid, const char *victim)
{
    sw_fkeys own, v;
    sw_redis_args a;
    sw_keys_flusher(&r->keys, fid, &own);
    sw_keys_flusher(&r->keys, victim, &v);
    sw_redis_args_init(&a);
    const char *keys[] = {v.heartbeat, v.processing, v.inflight, r->keys.flushers,
                          own.processing, own.inflight};
    for (int i = 0; i < 6; i++)
        sw_redis_args_str(&a, keys[i]);
    sw_redis_args_end_keys(&a);
    sw_redis_args_str(&a, victim);
    void *rep = sw_redis_eval(r, SW_SCRIPT_TAKEOVER, "takeover", SW_REPLY_INTEGER, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    long long rc = sw_redis_reply_int(rep);
    sw_redis_reply_free(rep);
    if (rc < -1 || rc > 1) {
        sw_redis_fail_proto(r, "takeover", "an answer other than -1, 0 or 1");
        return -1;
    }
    return rc == -1 ? 2 : (int)rc;
}

int sw_proc_heartbeat(sw_redis *r, const char *fid, const char *value, int ttl_s, int only_new)
{
    sw_fkeys fk;
    sw_redis_args a;
    sw_keys_flusher(&r->keys, fid, &fk);
    sw_redis_args_init(&a);
    sw_redis_args_str(&a, fk.heartbeat);
    sw_redis_args_str(&a, r->keys.flushers);
    sw_redis_args_end_keys(&a);
    sw_redis_args_str(&a, value);
    sw_redis_args_int(&a, ttl_s);
    sw_redis_args_str(&a, only_new ? "1" : "0");
    sw_redis_args_str(&a, fid);
    void *rep = sw_redis_eval(r, SW_SCRIPT_HEARTBEAT, "heartbeat", SW_REPLY_INTEGER, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    int set = sw_redis_reply_int(rep) == 1;
    sw_redis_reply_free(rep);
    return set;
}

int sw_proc_heartbeat_get(sw_redis *r, const char *fid, char *out, size_t outlen)
{
    sw_fkeys fk;
    sw_keys_flusher(&r->keys, fid, &fk);
    void *rep = sw_redis_callf(r, "heartbeat", SW_REPLY_STRING_OR_NIL, 1, "GET %s", fk.heartbeat);
    if (rep == NULL)
        return -1;
    size_t n;
    const char *s = sw_redis_reply_str(rep, &n);
    if (s)
        snprintf(out, outlen, "%.*s", (int)n, s);
    sw_redis_reply_free(rep);
    return s != NULL;
}

/* A one-key script answering an integer: its value, or -1. */
static long long one_key(sw_redis *r, enum sw_script s, const char *what, const char *key,
                         const char *fid, int64_t ms, const char *flag)
{
    sw_redis_args a;
    sw_redis_args_init(&a);
    sw_redis_args_str(&a, key);
    sw_redis_args_end_keys(&a);
    sw_redis_args_str(&a, fid);
    sw_redis_args_int(&a, ms);
    if (flag)
        sw_redis_args_str(&a, flag);
    void *rep = sw_redis_eval(r, s, what, SW_REPLY_INTEGER, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    long long v = sw_redis_reply_int(rep);
    sw_redis_reply_free(rep);
    return v;
}

int sw_proc_lease(sw_redis *r, const char *fid, int64_t ttl_ms, int hold)
{
    long long v = one_key(r, SW_SCRIPT_LEASE, "lease", r->keys.lease, fid, ttl_ms,
                          hold ? "1" : "0");
    return v < 0 ? -1 : v == 1;
}

long sw_proc_members(sw_redis *r, const char *fid, int64_t ttl_ms)
{
    return (long)one_key(r, SW_SCRIPT_MEMBERS, "members", r->keys.members, fid, ttl_ms, NULL);
}
