/* POST /v1/sinks/{sink}/records (writes) and DELETE (the keys of rows to
 * delete): validate the body into one envelope and queue it through the
 * Redis lane, once per Idempotency-Key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "hash.h"
#include "httpd.h"
#include "envelope.h"
#include "ingest.h"
#include "jobid.h"
#include "keys.h"
#include "log.h"
#include "queue.h"
#include "status.h"

static int idempotency_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '~' || ch == '-'))
            return 0;
    }
    return 1;
}

/* The media type without parameters, in lower case, for the fingerprint:
 * "Application/JSON; charset=utf-8" and "application/json" are one type. */
static size_t media_type(const char *ct, char *out, size_t len)
{
    size_t n = 0;
    for (; ct && ct[n] && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t' && n + 1 < len; n++)
        out[n] = (char)(ct[n] >= 'A' && ct[n] <= 'Z' ? ct[n] | 0x20 : ct[n]);
    out[n] = '\0';
    return n;
}

/* After a large request, its buffers go back: a burst of big bodies must
 * not stay resident in every worker. */
#define KEEP_BYTES (256 * 1024)

static void post(sw_http *h, sw_worker *w, sw_http_exchange *x);

/* A POST on its way through the Redis lane: what its answer needs, and
 * the envelope, in one allocation, until the lane calls back. */
typedef struct post_job {
    sw_pipeline_req req;        /* first: the callback gets it back as this */
    sw_http *h;
    size_t cost;                /* its bytes, counted in h->lane_bytes */
    sw_http_exchange *x;
    int sink, shard;
    long n;
    char job_id[SW_JOBID_LEN + 1];
    char fp[65];
    char idem_key[SW_KEY_MAX + 256], idem_old[SW_KEY_MAX + 256], idem_value[160];
    char status[96];
    char env[];
} post_job;

static void post_done(sw_pipeline_req *r);
static int pick_shard(sw_http *h, const sw_sink *sink, const char *idem, msgpack_sbuffer *env,
                      char *job_id);

void sw_api_post_records(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    post(h, w, x);
    /* The lane has its own copy of the envelope. */
    sw_record_work_trim(&w->work, KEEP_BYTES);
    if (w->out.cap > KEEP_BYTES)
        sw_buf_free(&w->out);
    if (w->sb.alloc > KEEP_BYTES) {
        msgpack_sbuffer_destroy(&w->sb);
        msgpack_sbuffer_init(&w->sb);
    }
}

static void post(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    const sw_config *cfg = h->cfg;
    const sw_sink *sink = x->note;
    const sw_auth_entry *grant = x->note2;
    sw_problem p = {0};
    char job_id[SW_JOBID_LEN + 1];
    if (!atomic_load_explicit(&h->layout_ok, memory_order_acquire)) {
        sw_metrics_add(&h->rejected[REJ_REDIS_DOWN], 1);
        sw_api_layout_unconfirmed(h, x, "redis-unavailable");
        return;
    }
    int sink_idx = (int)(sink - cfg->sinks);
    if (atomic_load_explicit(&h->paused[sink_idx], memory_order_relaxed)) {
        char detail[256];
        sw_metrics_add(&h->rejected[REJ_PAUSED], 1);
        snprintf(detail, sizeof detail, "an operator paused the intake of sink \"%s\"; nothing "
                 "was queued (spillwayctl sink resume %s)", sink->name, sink->name);
        sw_api_problem(x, 503, "sink-paused", "Sink paused", detail, "Retry-After: 30\r\n");
        return;
    }
    if (atomic_load_explicit(&h->evicting, memory_order_relaxed)) {
        sw_metrics_add(&h->rejected[REJ_REDIS_DOWN], 1);
        sw_api_problem(x, 503, "redis-may-evict", "Queue storage may drop jobs",
                       "Redis' maxmemory-policy could evict queued jobs, so nothing is "
                       "accepted; set maxmemory-policy noeviction (or [redis] allow_eviction)",
                       "Retry-After: 5\r\n");
        return;
    }
    if (atomic_load_explicit(&h->memory_high, memory_order_relaxed)) {
        char detail[256];
        sw_metrics_add(&h->rejected[REJ_BACKPRESSURE], 1);
        snprintf(detail, sizeof detail, "Redis uses %lld of its %lld bytes of maxmemory, more "
                 "than [server] max_redis_memory_percent (%d%%); nothing was queued",
                 (long long)atomic_load(&h->redis_used), (long long)atomic_load(&h->redis_max),
                 cfg->max_redis_memory_percent);
        sw_api_problem(x, 429, "redis-memory-high", "Queue storage nearly full", detail,
                       "Retry-After: 5\r\n");
        return;
    }
    const char *idem = sw_http_header(x, "Idempotency-Key");
    if (idem && !idempotency_key_ok(idem)) {
        sw_metrics_add(&h->rejected[REJ_VALIDATION], 1);
        sw_api_problem(x, 400, "bad-idempotency-key", "Bad Idempotency-Key",
                       "an Idempotency-Key is 1 to 200 characters of A-Z a-z 0-9 . _ : ~ -",
                       NULL);
        return;
    }
    const char *ct = sw_http_header(x, "Content-Type");
    int64_t now = sw_clock_now_us();
    sw_jobid_new(job_id);
    sw_jobid_set_shift(job_id, sw_status_shift(now / 1000));
    msgpack_sbuffer_clear(&w->sb);
    sw_ingest_limits lim = {cfg->max_records, {(size_t)cfg->max_string_bytes,
                                               cfg->max_json_depth}};
    enum sw_op op = strcmp(x->method, "DELETE") == 0 ? SW_OP_DELETE : SW_OP_WRITE;
    long n = sw_ingest_build(sink, op, ct, x->body, x->body_len, &lim, job_id, now, &w->sb,
                             &w->work, &p);
    if (n < 0) {
        sw_metrics_add(&h->rejected[p.status == 413 ? REJ_TOO_LARGE : REJ_VALIDATION], 1);
        sw_api_send_problem(x, &p, NULL);
        return;
    }
    int shard = cfg->shards > 0 ? pick_shard(h, sink, idem, &w->sb, job_id) : 0;
    if (shard < 0) {
        sw_api_problem(x, 500, "internal", "Internal error", "the envelope has no job id", NULL);
        return;
    }
    const sw_keys *keys = &w->shards->q[shard]->keys;
    /* Bounded: a Redis that stalls must not make writes pile up here. */
    size_t cost = sizeof(post_job) + w->sb.size;
    if (atomic_fetch_add(&h->lane_bytes, (long long)cost) + (long long)cost > h->lane_max_bytes) {
        atomic_fetch_sub(&h->lane_bytes, (long long)cost);
        sw_metrics_add(&h->rejected[REJ_SERVER_BUSY], 1);
        sw_api_problem(x, 503, "server-busy", "Server busy",
                       "too many writes are waiting for Redis to answer; nothing was queued",
                       "Retry-After: 1\r\n");
        return;
    }
    post_job *pj = malloc(cost);
    if (pj == NULL || sw_status_compact(&w->out, 'q', n, sink->name, 0) != 0 ||
        w->out.len >= sizeof pj->status) {
        const char *why = pj ? "the job's status does not fit" : "out of memory";
        free(pj);
        atomic_fetch_sub(&h->lane_bytes, (long long)cost);
        sw_api_problem(x, 500, "internal", "Internal error", why, NULL);
        return;
    }
    memset(pj, 0, sizeof *pj);
    pj->h = h;
    pj->cost = cost;
    pj->x = x;
    pj->sink = (int)(sink - cfg->sinks);
    pj->shard = shard;
    pj->n = n;
    memcpy(pj->job_id, job_id, sizeof job_id);
    /* The compact "queued" status (status.h); the flusher rewrites it. */
    memcpy(pj->status, w->out.data, w->out.len + 1);
    memcpy(pj->env, w->sb.data, w->sb.size);
    /* The same key with the same request answers the first job again; the
     * fingerprint is SHA-256 over the media type and the body bytes, and
     * the key is the caller's own: scoped to its token and the sink. */
    char media[128];
    size_t mediun = media_type(ct, media, sizeof media);
    if (idem) {
        /* A delete's fingerprint differs from a write's of the same body. */
        const char *verb = op == SW_OP_DELETE ? "DELETE\n" : "";
        const void *parts[] = {verb, media, "\n", x->body};
        size_t lens[] = {strlen(verb), mediun, 1, x->body_len};
        /* Keys stored before tokens scoped them (release 0.1) are read
         * too, until they expire. */
        if (sw_sha256_hex(4, parts, lens, pj->fp) != 0 ||
            sw_keys_idem(keys, sink->name, grant ? grant->scope : "", idem,
                         pj->idem_key, sizeof pj->idem_key) == 0 ||
            sw_keys_idem(keys, sink->name, "", idem, pj->idem_old,
                         sizeof pj->idem_old) == 0) {
            free(pj);
            atomic_fetch_sub(&h->lane_bytes, (long long)cost);
            sw_api_problem(x, 500, "internal", "Internal error",
                           "cannot fingerprint the request", NULL);
            return;
        }
        snprintf(pj->idem_value, sizeof pj->idem_value, "%s|%s|%ld", pj->fp, job_id, n);
    }
    pj->req.job = (sw_queue_job){pj->job_id, n, pj->env, w->sb.size, pj->status,
                                 strlen(pj->status), idem ? pj->idem_key : NULL,
                                 idem ? pj->idem_value : NULL,
                                 idem && grant ? pj->idem_old : NULL, ""};
    pj->req.on_done = post_done;
    atomic_fetch_add(&h->lane_jobs, 1);
    /* The worker is free now: the lane answers, on its own thread. */
    sw_httpd_defer(x);
    sw_pipeline_submit(h->pipeline[shard], &pj->req, cfg->redis_timeout_ms);
}

/* The queue shard of a new job, written into its id and envelope: an
 * Idempotency-Key's own, so a repeat meets the first request's key; on a
 * sink with a conflict key, its first record's key's, so one key's
 * one-record writes keep their order; otherwise the next in turn. */
static int pick_shard(sw_http *h, const sw_sink *sink, const char *idem, msgpack_sbuffer *env,
                      char *job_id)
{
    const unsigned char *is_key = h->key_flags[sink - h->cfg->sinks];
    uint64_t kh;
    int shard;
    if (idem)
        shard = sw_shards_of_key(h->nlanes, sink->name, idem);
    else if ((sink->mode != SW_MODE_INSERT || sink->deletes > 0) &&
             sw_envelope_first_key_hash(env->data, env->size, is_key, sink->ncolumns, &kh) == 1)
        shard = sw_shards_pick(kh, h->nlanes);
    else
        shard = (int)(atomic_fetch_add_explicit(&h->lane_next, 1, memory_order_relaxed) %
                      (unsigned)h->nlanes);
    sw_jobid_set_shard(job_id, shard);
    /* The envelope was just built with the id: it has one. */
    return sw_envelope_set_shard(env->data, env->size, shard) == 0 ? shard : -1;
}

/* One log line per change in whether a shard's Redis takes writes, with
 * the real cause: an outage logs once, not once per refused POST (each
 * shard its own state, so one shard down among several does not flap). A
 * full queue (429) is not a failure. */
static void note_write(sw_http *h, const sw_pipeline_req *r, int shard)
{
    int failing = r->err != SW_REDIS_OK && r->err != SW_REDIS_EFULL;
    atomic_int *state = &h->writes_failing[shard];
    if (atomic_load_explicit(state, memory_order_relaxed) == failing ||
        atomic_exchange(state, failing) == failing)
        return;
    if (failing)
        sw_log_error("redis refusing writes", "shard=%d cause=\"%s\" error=\"%s\" hint=\"%s\" "
                     "action=\"answering POST with 503 until it takes writes again\"", shard,
                     r->code[0] ? r->code : sw_redis_strerror(r->err), r->errstr,
                     sw_redis_hint(r->err, r->code, r->errstr));
    else
        sw_log_info("redis taking writes again", "shard=%d", shard);
}

/* On the lane thread, with Redis' answer: reply, and give the connection
 * back. */
static void post_done(sw_pipeline_req *r)
{
    post_job *pj = (post_job *)(void *)r;
    sw_http *h = pj->h;
    sw_http_exchange *x = pj->x;
    char extra[96], body[160];
    const char *job_id = pj->job_id;
    long n = pj->n;
    note_write(h, r, pj->shard);
    if (r->err != SW_REDIS_OK) {
        sw_metrics_add(&h->rejected[r->err == SW_REDIS_EFULL ? REJ_BACKPRESSURE
                                                             : REJ_REDIS_DOWN], 1);
        sw_api_unavailable(x, r->err, r->code, r->errstr);
        goto out;
    }
    int status = 202;
    const char *prev = r->job.prev;
    char prev_job[SW_JOBID_LEN + 1] = "";
    if (prev[0]) {
        const char *ct = sw_http_header(x, "Content-Type");
        char prev_fp[65];
        int same = sscanf(prev, "%64[0-9a-f]|%36[0-9a-f-]|%ld", prev_fp, prev_job, &n) == 3;
        if (same && strlen(prev_fp) == 16) {
            /* Stored by release 0.1, with its 64-bit fingerprint over the
             * Content-Type as sent. */
            char old[17];
            size_t ctn = ct ? strcspn(ct, ";") : 0;
            sw_hash64_hex(sw_hash64(x->body, x->body_len) ^ sw_hash64(ct ? ct : "", ctn), old);
            same = strcmp(prev_fp, old) == 0;
        } else if (same && strcmp(prev_fp, pj->fp) != 0) {
            /* Stored before the media type was compared in any case:
             * the fingerprint over the type as sent. */
            char raw[65];
            size_t ctn = ct ? strcspn(ct, ";") : 0;
            const void *parts[] = {ct ? ct : "", "\n", x->body};
            size_t lens[] = {ctn, 1, x->body_len};
            same = sw_sha256_hex(3, parts, lens, raw) == 0 && strcmp(prev_fp, raw) == 0;
        }
        if (!same) {
            sw_metrics_add(&h->rejected[REJ_CONFLICT], 1);
            sw_api_problem(x, 409, "idempotency-conflict", "Idempotency-Key reused",
                           "this Idempotency-Key was already used for a different request to "
                           "this sink; use a new key for a new request", NULL);
            goto out;
        }
        job_id = prev_job;
        status = 200;
    }
    if (status == 202) {
        sw_metrics_add(&h->jobs_by_sink[pj->sink], 1);
        sw_metrics_add(&h->records_by_sink[pj->sink], (uint64_t)n);
    }
    /* The job is queued: from here no failure may say otherwise. If the
     * answer cannot be made, the connection drops without one ("may have
     * been queued": the client retries with its Idempotency-Key). */
    snprintf(extra, sizeof extra, "Location: /v1/jobs/%s\r\n", job_id);
    int len = snprintf(body, sizeof body, "{\"job_id\":\"%s\",\"status\":\"queued\","
                       "\"records\":%ld}", job_id, n);
    if (sw_http_reply(x, status, "application/json", extra, body, (size_t)len) != 0) {
        sw_log_error("out of memory for the answer to a queued job", "job_id=%s", job_id);
        sw_http_abort(x);
    }
out:
    atomic_fetch_sub(&h->lane_bytes, (long long)pj->cost);
    atomic_fetch_sub(&h->lane_jobs, 1);
    free(pj);
    sw_httpd_finish(x);
}
