#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "status.h"

int sw_queue_enqueue(sw_redis *r, int njobs, sw_queue_job *jobs, int ttl_s, int idem_ttl_s,
                     long max_queued)
{
    sw_redis_args a;
    char (*keys)[SW_KEY_MAX] = malloc((size_t)(njobs ? njobs : 1) * sizeof *keys);
    unsigned char (*fields)[16] = malloc((size_t)(njobs ? njobs : 1) * sizeof *fields);
    int *idem_at = malloc((size_t)(njobs ? njobs : 1) * 2 * sizeof *idem_at);
    void *rep = NULL;
    int rc = -1;
    sw_redis_args_init(&a);
    if (keys == NULL || idem_at == NULL || fields == NULL) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "enqueue: out of memory");
        goto out;
    }
    sw_redis_args_str(&a, r->keys.queue);
    sw_redis_args_str(&a, r->keys.stats);
    sw_redis_args_str(&a, r->keys.seq);
    for (int j = 0; j < njobs; j++) {
        if (sw_keys_status(&r->keys, jobs[j].job_id, keys[j], fields[j]) == 0) {
            r->err = SW_REDIS_EREFUSED;
            snprintf(r->errstr, sizeof r->errstr, "enqueue: not a job id: %.40s", jobs[j].job_id);
            goto out;
        }
        sw_redis_args_str(&a, keys[j]);
        jobs[j].prev[0] = '\0';
    }
    int next = 3 + njobs;
    for (int j = 0; j < njobs; j++) {
        idem_at[2 * j] = idem_at[2 * j + 1] = 0;
        if (jobs[j].idem_key) {
            sw_redis_args_str(&a, jobs[j].idem_key);
            idem_at[2 * j] = ++next;   /* KEYS are 1-based in Lua */
            if (jobs[j].idem_legacy) {
                sw_redis_args_str(&a, jobs[j].idem_legacy);
                idem_at[2 * j + 1] = ++next;
            }
        }
    }
    sw_redis_args_end_keys(&a);
    /* A bucket spans up to 2^15 ms: its last job's status gets ttl_s too. */
    sw_redis_args_int(&a, (long long)ttl_s + 33);
    sw_redis_args_int(&a, idem_ttl_s);
    sw_redis_args_int(&a, max_queued);
    sw_redis_args_int(&a, njobs);
    for (int j = 0; j < njobs; j++) {
        sw_redis_args_bin(&a, jobs[j].env, jobs[j].env_len);
        sw_redis_args_bin(&a, (const char *)fields[j], 16);
        sw_redis_args_bin(&a, jobs[j].status, jobs[j].status_len);
        sw_redis_args_int(&a, jobs[j].nrecords);
        sw_redis_args_int(&a, idem_at[2 * j]);
        sw_redis_args_str(&a, jobs[j].idem_value ? jobs[j].idem_value : "");
        sw_redis_args_int(&a, idem_at[2 * j + 1]);
    }
    rep = sw_redis_eval(r, SW_SCRIPT_ENQUEUE, "enqueue", SW_REPLY_ANY, &a);
    if (rep == NULL)
        goto out;
    if (sw_redis_reply_type(rep) == SW_REPLY_INTEGER && sw_redis_reply_int(rep) == -1) {
        r->err = SW_REDIS_EFULL;
        snprintf(r->errstr, sizeof r->errstr, "enqueue: queue over its high-water mark");
        goto out;
    }
    if (sw_redis_reply_type(rep) != SW_REPLY_ARRAY || sw_redis_reply_len(rep) != (size_t)njobs ||
        sw_redis_check_elements(r, rep, SW_REPLY_STRING, "enqueue") != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "enqueue", "not one answer per job");
        goto out;
    }
    for (int j = 0; j < njobs; j++) {
        size_t n;
        const char *s = sw_redis_reply_item(rep, (size_t)j, &n);
        snprintf(jobs[j].prev, sizeof jobs[j].prev, "%.*s", (int)n, s);
    }
    rc = 0;
out:
    sw_redis_reply_free(rep);
    sw_redis_args_free(&a);
    free(keys);
    free(fields);
    free(idem_at);
    return rc;
}

/* A string-or-nil reply into `out` (freeing the reply): 1 a string,
 * 0 nil, -1 no reply or out of memory. */
static int string_into(sw_redis *r, void *rep, sw_buf *out, const char *what)
{
    if (rep == NULL)
        return -1;
    size_t n;
    const char *s = sw_redis_reply_str(rep, &n);
    int found = s != NULL;
    sw_buf_reset(out);
    if (found && sw_buf_append(out, s, n) != 0) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "%s: out of memory", what);
        found = -1;
    }
    sw_redis_reply_free(rep);
    return found;
}

int sw_queue_status(sw_redis *r, const char *job_id, sw_buf *out)
{
    char bucket[SW_KEY_MAX], key[SW_KEY_MAX];
    unsigned char field[16];
    if (sw_keys_status(&r->keys, job_id, bucket, field) == 0)
        return 0;
    sw_keys_job(&r->keys, job_id, key);
    sw_redis_args a;
    sw_redis_args_init(&a);
    sw_redis_args_str(&a, bucket);
    sw_redis_args_str(&a, key);
    sw_redis_args_end_keys(&a);
    sw_redis_args_bin(&a, (const char *)field, sizeof field);
    void *rep = sw_redis_eval(r, SW_SCRIPT_STATUS, "job", SW_REPLY_ARRAY, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    int found = -1;
    if (sw_redis_reply_len(rep) != 2 ||
        sw_redis_check_elements(r, rep, SW_REPLY_STRING, "job") != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "job", "not {compact, json}");
        goto out;
    }
    size_t cn, jn;
    const char *compact = sw_redis_reply_item(rep, 0, &cn);
    const char *json = sw_redis_reply_item(rep, 1, &jn);
    sw_buf_reset(out);
    found = jn > 0 ? (sw_buf_append(out, json, jn) == 0 ? 1 : -1)
                   : sw_status_expand(out, job_id, compact, cn);
    if (found < 0) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "job: out of memory");
    }
out:
    sw_redis_reply_free(rep);
    return found;
}

int sw_queue_status_bytes(sw_redis *r, int64_t ms, int shift, double *per_job)
{
    char key[SW_KEY_MAX];
    sw_keys_bucket(&r->keys, shift, (uint64_t)ms, key);
    void *n = sw_redis_callf(r, "status bytes", SW_REPLY_INTEGER, 1, "HLEN %s", key);
    if (n == NULL)
        return -1;
    long long entries = sw_redis_reply_int(n);
    sw_redis_reply_free(n);
    /* A bucket of a few jobs (a quiet second) prices its key, not them. */
    if (entries < 16)
        return 0;
    void *u = sw_redis_callf(r, "status bytes", SW_REPLY_ANY, 1, "MEMORY USAGE %s",
                             key);
    if (u == NULL)
        return -1;
    int found = sw_redis_reply_type(u) == SW_REPLY_INTEGER;
    if (found)
        *per_job = (double)sw_redis_reply_int(u) / (double)entries;
    else if (sw_redis_reply_type(u) != SW_REPLY_NIL) {
        sw_redis_reply_free(u);
        sw_redis_fail_proto(r, "status bytes", "MEMORY USAGE answered neither a number nor nil");
        return -1;
    }
    sw_redis_reply_free(u);
    return found;
}

int sw_queue_stats_get(sw_redis *r, sw_queue_stats *out)
{
    sw_redis_args a;
    sw_redis_args_init(&a);
    sw_redis_args_str(&a, r->keys.queue);
    sw_redis_args_str(&a, r->keys.stats);
    sw_redis_args_str(&a, r->keys.dead);
    sw_redis_args_end_keys(&a);
    void *rep = sw_redis_eval(r, SW_SCRIPT_STATS, "stats", SW_REPLY_ARRAY, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    if (sw_redis_reply_len(rep) != 5 ||
        sw_redis_check_elements(r, rep, SW_REPLY_INTEGER, "stats") != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "stats", "not five figures");
        sw_redis_reply_free(rep);
        return -1;
    }
    out->queued_records = sw_redis_reply_int(sw_redis_reply_at(rep, 0));
    out->inflight_records = sw_redis_reply_int(sw_redis_reply_at(rep, 1));
    out->queued_jobs = sw_redis_reply_int(sw_redis_reply_at(rep, 2));
    out->dead_jobs = sw_redis_reply_int(sw_redis_reply_at(rep, 3));
    out->oldest_enqueued_us = sw_redis_reply_int(sw_redis_reply_at(rep, 4));
    sw_redis_reply_free(rep);
    return 0;
}

int sw_queue_flusher_ids(sw_redis *r, char (*ids)[64], int max)
{
    void *rep = sw_redis_callf(r, "flushers", SW_REPLY_ARRAY, 1, "SMEMBERS %s", r->keys.flushers);
    if (rep == NULL)
        return -1;
    if (sw_redis_check_elements(r, rep, SW_REPLY_STRING, "flushers") != 0) {
        sw_redis_reply_free(rep);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < sw_redis_reply_len(rep) && n < max; i++) {
        size_t len;
        const char *s = sw_redis_reply_item(rep, i, &len);
        if (len > 0 && len < 64)
            snprintf(ids[n++], 64, "%.*s", (int)len, s);
    }
    sw_redis_reply_free(rep);
    return n;
}

int sw_queue_overview(sw_redis *r, int failed_limit, sw_buf *out)
{
    char ids[64][64];
    sw_fkeys fk[64];
    /* The registry first: the script must be given each flusher's keys. */
    int n = sw_queue_flusher_ids(r, ids, 64);
    if (n < 0)
        return -1;
    sw_redis_args a;
    sw_redis_args_init(&a);
    sw_redis_args_str(&a, r->keys.queue);
    sw_redis_args_str(&a, r->keys.stats);
    sw_redis_args_str(&a, r->keys.dead);
    sw_redis_args_str(&a, r->keys.deadinfo);
    for (int i = 0; i < n; i++) {
        sw_keys_flusher(&r->keys, ids[i], &fk[i]);
        sw_redis_args_str(&a, fk[i].heartbeat);
        sw_redis_args_str(&a, fk[i].inflight);
    }
    sw_redis_args_end_keys(&a);
    sw_redis_args_int(&a, failed_limit);
    for (int i = 0; i < n; i++)
        sw_redis_args_str(&a, ids[i]);
    void *rep = sw_redis_eval(r, SW_SCRIPT_OVERVIEW, "overview", SW_REPLY_STRING, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    int rc = 0;
    size_t len;
    const char *s = sw_redis_reply_str(rep, &len);
    sw_buf_reset(out);
    if (sw_buf_append(out, s, len) != 0) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "overview: out of memory");
        rc = -1;
    }
    sw_redis_reply_free(rep);
    return rc;
}

int sw_queue_register_shape(sw_redis *r, uint64_t fingerprint, const char *columns)
{
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fingerprint);
    void *rep = sw_redis_callf(r, "register shape", SW_REPLY_INTEGER, 0, "HSET %s %s %s",
                               r->keys.shapes, fp, columns);
    if (rep == NULL)
        return -1;
    sw_redis_reply_free(rep);
    return 0;
}

int sw_queue_shape(sw_redis *r, uint64_t fingerprint, sw_buf *out)
{
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fingerprint);
    return string_into(r, sw_redis_callf(r, "shape", SW_REPLY_STRING_OR_NIL, 1, "HGET %s %s",
                                          r->keys.shapes, fp), out, "shape");
}

double sw_queue_oldest_age(const sw_queue_stats *st, int64_t now_us)
{
    if (st->oldest_enqueued_us == 0)
        return 0;
    double age = (double)(now_us - st->oldest_enqueued_us) / 1e6;
    return age > 0 ? age : 0;
}

/* A decimal field value, bounded. */
static long long number(const char *v, size_t n)
{
    char num[32];
    snprintf(num, sizeof num, "%.*s", (int)(n < sizeof num ? n : sizeof num - 1), v);
    return strtoll(num, NULL, 10);
}

int sw_queue_sink_figures(sw_redis *r, const sw_config *cfg, sw_sink_figures *fig)
{
    void *rep = sw_redis_callf(r, "sink figures", SW_REPLY_ARRAY, 1, "HGETALL %s",
                               r->keys.stats);
    if (rep == NULL)
        return -1;
    if (sw_redis_check_elements(r, rep, SW_REPLY_STRING, "sink figures") != 0 ||
        sw_redis_reply_len(rep) % 2 != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "sink figures", "not field-value pairs");
        sw_redis_reply_free(rep);
        return -1;
    }
    int known = 0;
    for (size_t i = 0; i + 1 < sw_redis_reply_len(rep); i += 2) {
        size_t len;
        const char *f = sw_redis_reply_item(rep, i, &len);
        known |= len == 11 && memcmp(f, "sink_counts", 11) == 0;
    }
    static const char *const kinds[] = {"q:", "parked:", "lat:", "latsum:"};
    for (size_t i = 0; i + 1 < sw_redis_reply_len(rep); i += 2) {
        size_t len, vlen;
        const char *f = sw_redis_reply_item(rep, i, &len);
        const char *v = sw_redis_reply_item(rep, i + 1, &vlen);
        int kind = -1;
        size_t skip = 0;
        for (int k = 0; k < 4 && kind < 0; k++) {
            skip = strlen(kinds[k]);
            if (len > skip && memcmp(f, kinds[k], skip) == 0)
                kind = k;
        }
        if (kind < 0 || (kind == 0 && !known))
            continue;
        /* lat:<sink>:<i>: the sink's name ends at the last ':'. */
        size_t name_len = len - skip;
        long bucket = -1;
        if (kind == 2) {
            const char *colon = f + len;
            while (colon > f + skip && colon[-1] != ':')
                colon--;
            if (colon == f + skip)
                continue;
            colon--;
            bucket = (long)number(colon + 1, (size_t)(f + len - colon - 1));
            name_len = (size_t)(colon - (f + skip));
            if (bucket < 0 || bucket >= SW_LAT_NBUCKETS)
                continue;
        }
        const sw_sink *s = sw_config_sink(cfg, f + skip, name_len);
        long long n = number(v, vlen);
        if (s == NULL || n <= 0)
            continue;
        sw_sink_figures *g = &fig[s - cfg->sinks];
        if (kind == 0 || kind == 1)
            g->depth += known ? n : 0;
        if (kind == 1)
            g->parked += n;
        if (kind == 2)
            g->lat[bucket] += (uint64_t)n;
        if (kind == 3)
            g->lat_sum_ms += n;
    }
    sw_redis_reply_free(rep);
    return known;
}

int sw_queue_sink_oldest(sw_redis *r, const sw_config *cfg, const sw_sink_figures *here,
                         int64_t *oldest_us)
{
    char (*parked)[SW_KEY_MAX] = malloc((size_t)(cfg->nsinks + 1) * sizeof *parked);
    sw_redis_args a;
    int rc = -1;
    sw_redis_args_init(&a);
    if (parked == NULL) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "ages: out of memory");
        goto out;
    }
    sw_redis_args_str(&a, r->keys.queue);
    for (int k = 0; k < cfg->nsinks; k++) {
        sw_keys_parked(&r->keys, cfg->sinks[k].name, parked[k]);
        sw_redis_args_str(&a, parked[k]);
    }
    sw_redis_args_end_keys(&a);
    sw_redis_args_int(&a, SW_QUEUE_AGE_SCAN);
    sw_redis_args_int(&a, SW_QUEUE_AGE_SCAN_BYTES);
    for (int k = 0; k < cfg->nsinks; k++)
        sw_redis_args_str(&a, cfg->sinks[k].name);
    void *rep = sw_redis_eval(r, SW_SCRIPT_AGES, "ages", SW_REPLY_ARRAY, &a);
    if (rep == NULL)
        goto out;
    if (sw_redis_reply_len(rep) != (size_t)cfg->nsinks + 1 ||
        sw_redis_check_elements(r, rep, SW_REPLY_INTEGER, "ages") != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "ages", "not one time per sink and a bound");
        sw_redis_reply_free(rep);
        goto out;
    }
    int64_t bound = sw_redis_reply_int(sw_redis_reply_at(rep, 0));
    for (int k = 0; k < cfg->nsinks; k++) {
        int64_t t = sw_redis_reply_int(sw_redis_reply_at(rep, (size_t)k + 1));
        /* Not seen, but waiting past the jobs read. */
        if (t == 0 && bound > 0 && here && here[k].depth - here[k].parked > 0)
            t = bound;
        if (t > 0 && (oldest_us[k] == 0 || t < oldest_us[k]))
            oldest_us[k] = t;
    }
    sw_redis_reply_free(rep);
    rc = 0;
out:
    sw_redis_args_free(&a);
    free(parked);
    return rc;
}

int sw_queue_live_flushers(sw_redis *r, sw_buf *out)
{
    enum { MAX_IDS = 4096, CHUNK = 500 };
    char (*ids)[64] = malloc(MAX_IDS * sizeof *ids);
    char (*keys)[SW_KEY_MAX] = malloc(CHUNK * sizeof *keys);
    int n = ids && keys ? sw_queue_flusher_ids(r, ids, MAX_IDS) : -1, live = 0;
    if (ids == NULL || keys == NULL) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "live flushers: out of memory");
    }
    for (int from = 0; from < n && live >= 0; from += CHUNK) {
        int m = n - from < CHUNK ? n - from : CHUNK;
        sw_redis_args a;
        sw_redis_args_init(&a);
        for (int i = 0; i < m; i++) {
            sw_fkeys fk;
            sw_keys_flusher(&r->keys, ids[from + i], &fk);
            memcpy(keys[i], fk.heartbeat, sizeof keys[i]);
            sw_redis_args_str(&a, keys[i]);
        }
        sw_redis_args_end_keys(&a);
        void *rep = sw_redis_eval(r, SW_SCRIPT_LIVE, "live flushers", SW_REPLY_ARRAY, &a);
        sw_redis_args_free(&a);
        if (rep == NULL || sw_redis_reply_len(rep) != (size_t)m ||
            sw_redis_check_elements(r, rep, SW_REPLY_INTEGER, "live flushers") != 0) {
            if (rep && r->err != SW_REDIS_EPROTO)
                sw_redis_fail_proto(r, "live flushers", "not one answer per flusher");
            sw_redis_reply_free(rep);
            live = -1;
            break;
        }
        for (int i = 0; i < m; i++) {
            if (sw_redis_reply_int(sw_redis_reply_at(rep, (size_t)i)) != 1)
                continue;
            if (sw_buf_append(out, ids[from + i], strlen(ids[from + i]) + 1) != 0) {
                r->err = SW_REDIS_ENOMEM;
                snprintf(r->errstr, sizeof r->errstr, "live flushers: out of memory");
                live = -1;
                break;
            }
            live++;
        }
        sw_redis_reply_free(rep);
    }
    free(ids);
    free(keys);
    return n < 0 ? -1 : live;
}
