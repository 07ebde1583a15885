#include "http.h"

#include <civetweb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "clock.h"
#include "deadline.h"
#include "ingest.h"
#include "hash.h"
#include "jobid.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "problem.h"
#include "queue.h"
#include "redis.h"
#include "shape.h"
#include "status.h"
#include "tls.h"
#include "ui.h"

enum route { R_RECORDS, R_JOB, R_QUEUE, R_STATS, R_UI, R_HEALTHZ, R_READYZ, R_METRICS, R_OTHER,
             R_COUNT };
static const char *const route_names[R_COUNT] = {
    "/v1/sinks/{sink}/records", "/v1/jobs/{job_id}", "/v1/queue", "/v1/stats", "/ui",
    "/healthz", "/readyz", "/metrics", "other"};

static const int codes[] = {200, 202, 400, 401, 403, 404, 405, 408, 409, 411, 413,
                            415, 422, 429, 431, 500, 503};
#define NCODES ((int)(sizeof codes / sizeof codes[0]))

enum reject { REJ_VALIDATION, REJ_TOO_LARGE, REJ_BACKPRESSURE, REJ_REDIS_DOWN, REJ_CONFLICT,
              REJ_UNAUTHORIZED, REJ_FORBIDDEN, REJ_TIMEOUT, REJ_COUNT };
static const char *const reject_names[REJ_COUNT] = {
    "validation", "too_large", "backpressure", "redis_down", "idempotency_conflict",
    "unauthorized", "forbidden", "timeout"};

/* The admin listener's pool: scrapes and probes only. */
#define ADMIN_THREADS 4

static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,   0.25,   0.5,   1,    2.5};

/* What a handler was registered with: which listener it serves. */
typedef struct listener {
    struct sw_http *h;
    int admin;
} listener;

struct sw_http {
    const sw_config *cfg;
    struct mg_context *ctx, *admin_ctx;
    listener api, admin;
    /* The tokens; NULL without tokens_file. Swapped whole by a reload;
     * each request reads the pointer once. */
    _Atomic(sw_auth *) auth;
    sw_auth **retired;        /* replaced by reloads, freed at stop */
    int nretired;
    sw_deadline *deadline;
    sw_pipeline *pipeline;
    sw_pipeline_shape *shapes;   /* per sink, recorded in Redis by the lane */
    sw_buf *shape_text;
    _Atomic uint64_t requests[R_COUNT][NCODES + 1];
    _Atomic uint64_t rejected[REJ_COUNT];
    _Atomic uint64_t *jobs_by_sink, *records_by_sink;
    sw_histogram latency;
    /* Redis persistence, set by the main thread; read by /readyz and
     * /metrics under the lock, and by POST through `evicting` alone. */
    pthread_mutex_t persist_lock;
    sw_redis_persistence persist;
    int persist_known;
    atomic_int evicting;
    _Atomic uint64_t redis_reconnects;
};

/* Per worker thread: created by init_thread, so requests share nothing
 * and take no lock. */
typedef struct worker {
    sw_redis *redis;
    sw_pipeline_req *req;     /* reused; replaced when the lane keeps it */
    int slot;                 /* in h->deadline */
    int64_t deadline_ms;      /* this request's, monotonic */
    int body_read;            /* read_body() ran for this request */
    sw_buf body, out, head, scratch;
    msgpack_sbuffer sb;
} worker;

static void *init_thread(const struct mg_context *ctx, int type)
{
    if (type != 1)
        return NULL;
    sw_http *h = mg_get_user_data(ctx);
    worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    /* Every POST waits for the Redis lane (pipeline.c), one thread that
     * serialises the group commits. Left at equal priority it queues behind
     * dozens of runnable workers on a small host and latency doubles, so
     * the workers yield to it. Linux nice is per thread. */
    if (h->cfg->worker_nice > 0 &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), h->cfg->worker_nice) != 0)
        sw_log_warn("cannot lower worker priority", "worker_nice=%d", h->cfg->worker_nice);
    msgpack_sbuffer_init(&w->sb);
    sw_redis_opts ro = sw_config_redis(h->cfg);
    w->redis = sw_redis_new(&ro);
    w->slot = sw_deadline_claim(h->deadline);
    w->req = sw_pipeline_req_new();
    if (w->redis)
        w->redis->reconnects = &h->redis_reconnects;
    return w;
}

static void exit_thread(const struct mg_context *ctx, int type, void *p)
{
    (void)ctx;
    (void)type;
    worker *w = p;
    if (w == NULL)
        return;
    sw_redis_free(w->redis);
    sw_pipeline_req_free(w->req);
    sw_buf_free(&w->body);
    sw_buf_free(&w->out);
    sw_buf_free(&w->head);
    sw_buf_free(&w->scratch);
    msgpack_sbuffer_destroy(&w->sb);
    free(w);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    sw_log_warn("civetweb", "detail=\"%s\"", message);
    return 1;
}

static void count(sw_http *h, enum route r, int status)
{
    int i = 0;
    while (i < NCODES && codes[i] != status)
        i++;
    sw_metrics_add(&h->requests[r][i], 1);
}

/* Bodies up to this size that a refusal leaves unread are read and
 * dropped by civetweb, keeping the connection; larger or chunked ones
 * close it instead, so a client cannot make us read gigabytes it was
 * refused (say, a 401 with a huge body). */
#define DISCARD_MAX 65536

/* Send a complete response in one write: status line, headers and body
 * together, so a small answer costs one send(2). `extra` holds more
 * "Name: value\r\n" lines; with "Connection: close" among them the
 * connection is closed after the response (added when a large body was
 * left unread). */
static int send_response(struct mg_connection *c, int status, const char *ctype,
                         const char *extra, const char *body, size_t len)
{
    worker *w = mg_get_thread_pointer(c);
    const struct mg_request_info *ri = mg_get_request_info(c);
    int head = strcmp(ri->request_method, "HEAD") == 0;
    int close = extra && strstr(extra, "Connection: close");
    if (!close && !w->body_read &&
        (ri->content_length > DISCARD_MAX || mg_get_header(c, "Transfer-Encoding")))
        close = 2;
    sw_buf *o = &w->head;
    sw_buf_reset(o);
    if (sw_buf_printf(o,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n%s%s\r\n",
                      status, mg_get_response_code_text(c, status), ctype, len,
                      extra ? extra : "", close == 2 ? "Connection: close\r\n" : "") != 0 ||
        (!head && sw_buf_append(o, body, len) != 0)) {
        mg_send_http_error(c, 500, "out of memory");
        return 500;
    }
    mg_write(c, o->data, o->len);
    if (close)
        sw_deadline_stop_reading(ri->remote_addr, ri->remote_port, ri->server_port);
    return status;
}

static int send_json(struct mg_connection *c, int status, const char *extra, const sw_buf *b)
{
    return send_response(c, status, "application/json", extra, b->data, b->len);
}

static int send_problem(struct mg_connection *c, worker *w, const sw_problem *p,
                        const char *extra)
{
    sw_buf_reset(&w->out);
    if (sw_problem_render(p, &w->out) != 0)
        return send_response(c, 500, "text/plain", NULL, "out of memory\n", 14);
    return send_response(c, p->status, "application/problem+json", extra, w->out.data,
                         w->out.len);
}

static int problem(struct mg_connection *c, worker *w, int status, const char *type,
                   const char *title, const char *detail, const char *extra)
{
    sw_problem p = {0};
    sw_problem_set(&p, status, type, title, "%s", detail);
    return send_problem(c, w, &p, extra);
}

/* A 503 (or 429) that says what Redis did: refused (nothing was queued),
 * or went silent or broke mid-call (the job may have been queued: retry
 * with the same Idempotency-Key). */
static int unavailable(struct mg_connection *c, worker *w, enum sw_redis_err err,
                       const char *code, const char *errstr)
{
    sw_problem p = {0};
    if (err == SW_REDIS_EFULL)
        sw_problem_set(&p, 429, "queue-full", "Queue is full",
                       "the queue holds more records than [server] max_queue_records while "
                       "the flushers catch up; nothing was queued. Retry later.");
    else if (err == SW_REDIS_EOOM)
        sw_problem_set(&p, 503, "redis-out-of-memory", "Queue storage is full",
                       "Redis refused the write (OOM: maxmemory reached); nothing was queued. "
                       "Retry later.");
    else if (err == SW_REDIS_EREFUSED)
        sw_problem_set(&p, 503, "redis-refused", "Queue storage refused the write",
                       "Redis answered %s (%s); nothing was queued. Retry later.",
                       code && code[0] ? code : "an error", errstr);
    else if (sw_redis_maybe_done(err))
        sw_problem_set(&p, 503, "redis-timeout", "Queue storage did not answer",
                       "Redis did not answer in time or the connection broke (%s): the job "
                       "may have been queued. Retry with the same Idempotency-Key to get it "
                       "once.", errstr);
    else
        sw_problem_set(&p, 503, "redis-unavailable", "Queue unavailable",
                       "Redis is not reachable (%s); nothing was queued. Retry later.",
                       errstr);
    return send_problem(c, w, &p, "Retry-After: 1\r\n");
}

static int redis_unavailable(struct mg_connection *c, worker *w)
{
    return unavailable(c, w, w->redis->err, w->redis->code, w->redis->errstr);
}

static int method_not_allowed(struct mg_connection *c, worker *w, const char *allow)
{
    char extra[64], detail[96];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    snprintf(detail, sizeof detail, "this resource accepts only %s", allow);
    return problem(c, w, 405, "method-not-allowed", "Method not allowed", detail, extra);
}

static int too_slow(struct mg_connection *c, sw_http *h, worker *w)
{
    char detail[160];
    sw_metrics_add(&h->rejected[REJ_TIMEOUT], 1);
    snprintf(detail, sizeof detail,
             "the request did not arrive within %d ms ([server] request_timeout_ms); "
             "nothing was queued", h->cfg->request_timeout_ms);
    return problem(c, w, 408, "request-timeout", "Request timeout", detail,
                   "Connection: close\r\n");
}

/* Read the whole body into w->body, at most max bytes, by `deadline_ms`
 * (monotonic). 0, or the status of the problem already sent. */
static int read_body(struct mg_connection *c, sw_http *h, worker *w, long max,
                     int64_t deadline_ms)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *te = mg_get_header(c, "Transfer-Encoding");
    int chunked = te && strstr(te, "chunked") != NULL;
    char detail[160];
    if (ri->content_length < 0 && !chunked)
        return problem(c, w, 411, "length-required", "Length required",
                       "send a Content-Length header (or a chunked body)", NULL);
    if (ri->content_length > max) {
        snprintf(detail, sizeof detail,
                 "the body of %lld bytes is over the limit of %ld bytes "
                 "([server] max_body_bytes); split it", ri->content_length, max);
        return problem(c, w, 413, "body-too-large", "Body too large", detail,
                       "Connection: close\r\n");
    }
    sw_buf_reset(&w->body);
    w->body_read = 1;
    sw_deadline_arm(h->deadline, w->slot, deadline_ms, ri->remote_addr, ri->remote_port,
                    ri->server_port);
    int n = 0, late = 0;
    for (;;) {
        if (sw_buf_reserve(&w->body, 16384) != 0) {
            n = -2;
            break;
        }
        n = mg_read(c, w->body.data + w->body.len, w->body.cap - w->body.len - 1);
        if (n <= 0)
            break;
        w->body.len += (size_t)n;
        if ((long)w->body.len > max)
            break;
        /* Each mg_read waits at most request_timeout_ms for its piece;
         * this bounds the pieces together. */
        if (sw_clock_mono_ms() > deadline_ms) {
            late = 1;
            break;
        }
    }
    late |= sw_deadline_disarm(h->deadline, w->slot);
    /* A read that ran out of time ends like a short body; tell them apart
     * by the clock. */
    int incomplete = n < 0 || (n == 0 && !chunked && (long long)w->body.len != ri->content_length);
    if (late || (incomplete && sw_clock_mono_ms() > deadline_ms))
        return too_slow(c, h, w);
    if (n == -2)
        return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
    if (!chunked && (long long)w->body.len < ri->content_length) {
        snprintf(detail, sizeof detail,
                 "the body ended after %zu of the %lld bytes Content-Length announced; "
                 "nothing was queued", w->body.len, ri->content_length);
        return problem(c, w, 400, "short-body", "Body shorter than Content-Length", detail,
                       "Connection: close\r\n");
    }
    if (n < 0)
        return problem(c, w, 400, "bad-body", "Body could not be read",
                       "the connection failed while reading the body, or the chunked "
                       "encoding is invalid; nothing was queued", "Connection: close\r\n");
    if ((long)w->body.len > max) {
        snprintf(detail, sizeof detail,
                 "the body is over the limit of %ld bytes ([server] max_body_bytes); split it",
                 max);
        return problem(c, w, 413, "body-too-large", "Body too large", detail,
                       "Connection: close\r\n");
    }
    w->body.data[w->body.len] = '\0';
    return 0;
}

void sw_http_set_persistence(sw_http *h, const sw_redis_persistence *p)
{
    pthread_mutex_lock(&h->persist_lock);
    h->persist_known = p != NULL;
    if (p)
        h->persist = *p;
    pthread_mutex_unlock(&h->persist_lock);
    atomic_store(&h->evicting, p && sw_redis_persistence_evicts(p) && !h->cfg->allow_eviction);
}

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

static int post_records(struct mg_connection *c, sw_http *h, worker *w, const sw_sink *sink,
                        const sw_auth_entry *grant)
{
    const sw_config *cfg = h->cfg;
    sw_problem p = {0};
    char job_id[SW_JOBID_LEN + 1], extra[96];
    int rc = read_body(c, h, w, cfg->max_body_bytes, w->deadline_ms);
    if (rc != 0) {
        if (rc == 413)
            sw_metrics_add(&h->rejected[REJ_TOO_LARGE], 1);
        return rc;
    }
    if (atomic_load_explicit(&h->evicting, memory_order_relaxed)) {
        sw_metrics_add(&h->rejected[REJ_REDIS_DOWN], 1);
        return problem(c, w, 503, "redis-may-evict", "Queue storage may drop jobs",
                       "Redis' maxmemory-policy could evict queued jobs, so nothing is "
                       "accepted; set maxmemory-policy noeviction (or [redis] allow_eviction)",
                       "Retry-After: 5\r\n");
    }
    const char *idem = mg_get_header(c, "Idempotency-Key");
    if (idem && !idempotency_key_ok(idem)) {
        sw_metrics_add(&h->rejected[REJ_VALIDATION], 1);
        return problem(c, w, 400, "bad-idempotency-key", "Bad Idempotency-Key",
                       "an Idempotency-Key is 1 to 200 characters of A-Z a-z 0-9 . _ : ~ -",
                       NULL);
    }
    sw_jobid_new(job_id);
    int64_t now = sw_clock_now_us();
    msgpack_sbuffer_clear(&w->sb);
    sw_ingest_limits lim = {cfg->max_records, {(size_t)cfg->max_string_bytes,
                                               cfg->max_json_depth}};
    long n = sw_ingest_build(sink, mg_get_header(c, "Content-Type"), w->body.data, w->body.len,
                             &lim, job_id, now, &w->sb, &w->scratch, &p);
    if (n < 0) {
        sw_metrics_add(&h->rejected[p.status == 413 ? REJ_TOO_LARGE : REJ_VALIDATION], 1);
        return send_problem(c, w, &p, NULL);
    }
    /* The status is the JSON GET /v1/jobs/{id} answers; the flusher
     * rewrites "queued" in it and appends committed_at or error. */
    sw_status st = {job_id, "queued", sink->name, n, now, 0, NULL};
    if (sw_status_json(&w->out, &st) != 0)
        return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
    /* The same key with the same request answers the first job again; the
     * fingerprint is SHA-256 over the media type and the body bytes, and
     * the key is the caller's own: scoped to its token and the sink. */
    char idem_key[SW_KEY_MAX + 256], idem_old[SW_KEY_MAX + 256], idem_value[160], fp[65] = "";
    const char *ct = mg_get_header(c, "Content-Type");
    size_t ctn = ct ? strcspn(ct, ";") : 0;
    if (idem) {
        const void *parts[] = {ct ? ct : "", "\n", w->body.data};
        size_t lens[] = {ctn, 1, w->body.len};
        /* Keys stored before tokens scoped them (release 0.1) are read
         * too, until they expire. */
        if (sw_sha256_hex(3, parts, lens, fp) != 0 ||
            sw_keys_idem(&w->redis->keys, sink->name, grant ? grant->scope : "", idem, idem_key,
                         sizeof idem_key) == 0 ||
            sw_keys_idem(&w->redis->keys, sink->name, "", idem, idem_old, sizeof idem_old) == 0)
            return problem(c, w, 500, "internal", "Internal error",
                           "cannot fingerprint the request", NULL);
        snprintf(idem_value, sizeof idem_value, "%s|%s|%ld", fp, job_id, n);
    }
    if (w->req == NULL && (w->req = sw_pipeline_req_new()) == NULL)
        return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
    w->req->job = (sw_queue_job){job_id, n, w->sb.data, w->sb.size, w->out.data, w->out.len,
                                 idem ? idem_key : NULL, idem ? idem_value : NULL,
                                 idem && grant ? idem_old : NULL, ""};
    if (sw_pipeline_enqueue(h->pipeline, &w->req, cfg->redis_timeout_ms) != 0) {
        const sw_pipeline_req *r = w->req;
        sw_metrics_add(&h->rejected[r && r->err == SW_REDIS_EFULL ? REJ_BACKPRESSURE
                                                                  : REJ_REDIS_DOWN], 1);
        if (r == NULL)
            return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
        return unavailable(c, w, r->err, r->code, r->errstr);
    }
    int status = 202;
    const char *prev = w->req->job.prev;
    if (prev[0]) {
        char prev_fp[65], prev_job[SW_JOBID_LEN + 1];
        int same = sscanf(prev, "%64[0-9a-f]|%36[0-9a-f-]|%ld", prev_fp, prev_job, &n) == 3;
        if (same && strlen(prev_fp) == 16) {
            /* Stored by release 0.1, with its 64-bit fingerprint. */
            char old[17];
            sw_hash64_hex(sw_hash64(w->body.data, w->body.len) ^ sw_hash64(ct ? ct : "", ctn),
                          old);
            same = strcmp(prev_fp, old) == 0;
        } else {
            same = same && strcmp(prev_fp, fp) == 0;
        }
        if (!same) {
            sw_metrics_add(&h->rejected[REJ_CONFLICT], 1);
            return problem(c, w, 409, "idempotency-conflict", "Idempotency-Key reused",
                           "this Idempotency-Key was already used for a different request to "
                           "this sink; use a new key for a new request", NULL);
        }
        memcpy(job_id, prev_job, sizeof job_id);
        status = 200;
    }
    int k = (int)(sink - cfg->sinks);
    if (status == 202) {
        sw_metrics_add(&h->jobs_by_sink[k], 1);
        sw_metrics_add(&h->records_by_sink[k], (uint64_t)n);
    }
    sw_buf_reset(&w->out);
    snprintf(extra, sizeof extra, "Location: /v1/jobs/%s\r\n", job_id);
    if (sw_buf_printf(&w->out, "{\"job_id\":\"%s\",\"status\":\"queued\",\"records\":%ld}",
                      job_id, n) != 0)
        return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
    return send_json(c, status, extra, &w->out);
}

/* `grant` is the caller's token (NULL: no authentication here). A job of
 * a sink the token may not use answers 404, like one that does not
 * exist, so ids cannot be probed across sinks. */
static int get_job(struct mg_connection *c, worker *w, const char *id, const sw_auth_entry *grant)
{
    int found = 0;
    if (sw_jobid_valid(id, strlen(id)) && (found = sw_queue_status(w->redis, id, &w->out)) < 0)
        return redis_unavailable(c, w);
    if (found && grant) {
        size_t n = 0;
        const char *sink = sw_status_sink(w->out.data, w->out.len, &n);
        found = sink != NULL && sw_auth_allows(grant, sink, n);
    }
    if (!found)
        return problem(c, w, 404, "job-not-found", "Job not found",
                       "no job with this id: it was never accepted, or its status expired "
                       "([redis] status_ttl_s)", NULL);
    return send_json(c, 200, NULL, &w->out);
}

static double oldest_age(const sw_queue_stats *st)
{
    if (st->oldest_enqueued_us == 0)
        return 0;
    double age = (double)(sw_clock_now_us() - st->oldest_enqueued_us) / 1e6;
    return age > 0 ? age : 0;
}

static int get_queue(struct mg_connection *c, worker *w)
{
    sw_queue_stats st;
    if (sw_queue_stats_get(w->redis, &st) != 0)
        return redis_unavailable(c, w);
    sw_buf_reset(&w->out);
    if (sw_buf_printf(&w->out,
                      "{\"depth\":%lld,\"in_flight\":%lld,\"queued_jobs\":%lld,"
                      "\"dead_jobs\":%lld,\"oldest_age_seconds\":%.3f}",
                      st.queued_records, st.inflight_records, st.queued_jobs, st.dead_jobs,
                      oldest_age(&st)) != 0)
        return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
    return send_json(c, 200, NULL, &w->out);
}

static int get_metrics(struct mg_connection *c, sw_http *h, worker *w)
{
    sw_buf *o = &w->out;
    char labels[160];
    int rc = 0;
    sw_buf_reset(o);
    rc |= sw_metrics_header(o, "spillway_build_info", "gauge", "Version of this server.");
    snprintf(labels, sizeof labels, "program=\"spillway-server\",version=\"%s\"", SW_VERSION);
    rc |= sw_metrics_sample(o, "spillway_build_info", labels, 1);
    rc |= sw_metrics_header(o, "spillway_redis_reconnects_total", "counter",
                            "Redis connections made again after a loss (all threads).");
    rc |= sw_metrics_sample(o, "spillway_redis_reconnects_total", "",
                            (double)atomic_load(&h->redis_reconnects));
    rc |= sw_metrics_header(o, "spillway_http_requests_total", "counter",
                            "HTTP requests answered, by route and status code.");
    for (int r = 0; r < R_COUNT; r++) {
        for (int i = 0; i <= NCODES; i++) {
            uint64_t v = atomic_load_explicit(&h->requests[r][i], memory_order_relaxed);
            if (v == 0)
                continue;
            if (i < NCODES)
                snprintf(labels, sizeof labels, "route=\"%s\",code=\"%d\"", route_names[r], codes[i]);
            else
                snprintf(labels, sizeof labels, "route=\"%s\",code=\"other\"", route_names[r]);
            rc |= sw_metrics_sample(o, "spillway_http_requests_total", labels, (double)v);
        }
    }
    rc |= sw_metrics_header(o, "spillway_http_request_duration_seconds", "histogram",
                            "Time to answer an HTTP request.");
    rc |= sw_metrics_histogram(o, "spillway_http_request_duration_seconds", "", &h->latency);
    rc |= sw_metrics_header(o, "spillway_jobs_accepted_total", "counter",
                            "Jobs accepted (202) and queued, by sink.");
    for (int k = 0; k < h->cfg->nsinks; k++) {
        snprintf(labels, sizeof labels, "sink=\"%s\"", h->cfg->sinks[k].name);
        rc |= sw_metrics_sample(o, "spillway_jobs_accepted_total", labels,
                                (double)atomic_load(&h->jobs_by_sink[k]));
    }
    rc |= sw_metrics_header(o, "spillway_records_accepted_total", "counter",
                            "Records accepted and queued, by sink.");
    for (int k = 0; k < h->cfg->nsinks; k++) {
        snprintf(labels, sizeof labels, "sink=\"%s\"", h->cfg->sinks[k].name);
        rc |= sw_metrics_sample(o, "spillway_records_accepted_total", labels,
                                (double)atomic_load(&h->records_by_sink[k]));
    }
    rc |= sw_metrics_header(o, "spillway_requests_rejected_total", "counter",
                            "POST requests refused, by reason.");
    for (int i = 0; i < REJ_COUNT; i++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", reject_names[i]);
        rc |= sw_metrics_sample(o, "spillway_requests_rejected_total", labels,
                                (double)atomic_load(&h->rejected[i]));
    }
    pthread_mutex_lock(&h->persist_lock);
    if (h->persist_known) {
        snprintf(labels, sizeof labels,
                 "appendonly=\"%s\",appendfsync=\"%s\",maxmemory_policy=\"%s\"",
                 h->persist.appendonly, h->persist.appendfsync, h->persist.policy);
        rc |= sw_metrics_header(o, "spillway_redis_persistence_info", "gauge",
                                "Redis persistence settings, which bound what a 202 survives.");
        rc |= sw_metrics_sample(o, "spillway_redis_persistence_info", labels, 1);
    }
    pthread_mutex_unlock(&h->persist_lock);
    sw_queue_stats st;
    int up = sw_queue_stats_get(w->redis, &st) == 0;
    rc |= sw_metrics_header(o, "spillway_redis_up", "gauge",
                            "1 when the last Redis command from this scrape succeeded.");
    rc |= sw_metrics_sample(o, "spillway_redis_up", "", up);
    if (up) {
        rc |= sw_metrics_header(o, "spillway_queue_depth_records", "gauge",
                                "Records waiting in the queue.");
        rc |= sw_metrics_sample(o, "spillway_queue_depth_records", "", (double)st.queued_records);
        rc |= sw_metrics_header(o, "spillway_queue_depth_jobs", "gauge", "Jobs waiting in the queue.");
        rc |= sw_metrics_sample(o, "spillway_queue_depth_jobs", "", (double)st.queued_jobs);
        rc |= sw_metrics_header(o, "spillway_queue_in_flight_records", "gauge",
                                "Records held by flushers.");
        rc |= sw_metrics_sample(o, "spillway_queue_in_flight_records", "",
                                (double)st.inflight_records);
        rc |= sw_metrics_header(o, "spillway_dead_letter_jobs", "gauge",
                                "Failed jobs kept in the dead-letter list.");
        rc |= sw_metrics_sample(o, "spillway_dead_letter_jobs", "", (double)st.dead_jobs);
        rc |= sw_metrics_header(o, "spillway_queue_oldest_age_seconds", "gauge",
                                "Age of the oldest waiting job.");
        rc |= sw_metrics_sample(o, "spillway_queue_oldest_age_seconds", "", oldest_age(&st));
    }
    if (rc != 0)
        return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
    return send_response(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, o->data,
                         o->len);
}

/* Ready: Redis answers and may not evict queued jobs. The body says what
 * a 202 is worth under Redis' persistence settings. */
static int readyz(struct mg_connection *c, sw_http *h, worker *w)
{
    sw_buf *o = &w->out;
    int evicting = atomic_load(&h->evicting), rc = 0;
    sw_buf_reset(o);
    rc |= sw_buf_printf(o, "{\"status\":\"%s\"", evicting ? "not ready" : "ready");
    pthread_mutex_lock(&h->persist_lock);
    if (h->persist_known) {
        const char *text = sw_redis_persistence_text(&h->persist);
        rc |= sw_buf_printf(o, ",\"redis\":{\"appendonly\":\"%s\",\"appendfsync\":\"%s\","
                               "\"maxmemory_policy\":\"%s\",\"durability\":",
                            h->persist.appendonly, h->persist.appendfsync, h->persist.policy);
        rc |= sw_buf_json_str(o, text, strlen(text));
        rc |= sw_buf_puts(o, "}");
    }
    pthread_mutex_unlock(&h->persist_lock);
    rc |= sw_buf_puts(o, "}");
    if (rc != 0)
        return problem(c, w, 500, "internal", "Internal error", "out of memory", NULL);
    return send_json(c, evicting ? 503 : 200, NULL, o);
}

static int is_method(const struct mg_request_info *ri, const char *m)
{
    return strcmp(ri->request_method, m) == 0;
}

/* 401 for a missing or unknown token; the header tells clients how to
 * authenticate (RFC 6750). */
static int unauthorized(struct mg_connection *c, sw_http *h, worker *w, enum sw_auth_result res)
{
    sw_metrics_add(&h->rejected[REJ_UNAUTHORIZED], 1);
    if (res == SW_AUTH_MISSING)
        return problem(c, w, 401, "unauthorized", "Authentication required",
                       "send Authorization: Bearer <token>; an operator makes tokens with "
                       "spillwayctl token new (the dashboard needs [server] admin_listen)",
                       "WWW-Authenticate: Bearer realm=\"spillway\"\r\n");
    return problem(c, w, 401, "unauthorized", "Invalid token",
                   "the bearer token is not one this server knows",
                   "WWW-Authenticate: Bearer realm=\"spillway\", error=\"invalid_token\"\r\n");
}

static int forbidden(struct mg_connection *c, sw_http *h, worker *w, const char *detail)
{
    sw_metrics_add(&h->rejected[REJ_FORBIDDEN], 1);
    return problem(c, w, 403, "forbidden", "Not allowed for this token", detail,
                   "WWW-Authenticate: Bearer realm=\"spillway\", error=\"insufficient_scope\"\r\n");
}

/* Routes for operators: metrics, probes and the dashboard. Served without
 * a token: on the admin listener when there is one, else beside the API.
 * Returns -1 when `uri` is not one of them. */
static int admin_route(struct mg_connection *c, sw_http *h, worker *w, const char *uri,
                       int get, enum route *route)
{
    if (strcmp(uri, "/ui") == 0 || strcmp(uri, "/ui/") == 0) {
        *route = R_UI;
        return get ? send_response(c, 200, "text/html; charset=utf-8", NULL,
                                   (const char *)sw_ui_html, sw_ui_html_len)
                   : method_not_allowed(c, w, "GET");
    }
    if (strcmp(uri, "/healthz") == 0) {
        *route = R_HEALTHZ;
        return get ? send_response(c, 200, "application/json", NULL, "{\"status\":\"ok\"}", 15)
                   : method_not_allowed(c, w, "GET");
    }
    if (strcmp(uri, "/readyz") == 0) {
        *route = R_READYZ;
        if (!get)
            return method_not_allowed(c, w, "GET");
        if (sw_redis_ping(w->redis) != 0)
            return redis_unavailable(c, w);
        return readyz(c, h, w);
    }
    if (strcmp(uri, "/metrics") == 0) {
        *route = R_METRICS;
        return get ? get_metrics(c, h, w) : method_not_allowed(c, w, "GET");
    }
    return -1;
}

static int dispatch(struct mg_connection *c, const listener *l, worker *w, enum route *route)
{
    sw_http *h = l->h;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    int get = is_method(ri, "GET") || is_method(ri, "HEAD");
    int rc;

    if ((l->admin || h->admin_ctx == NULL) && (rc = admin_route(c, h, w, uri, get, route)) >= 0)
        return rc;
    /* The admin listener also answers what the dashboard reads, with no
     * token, and nothing else. */
    if (l->admin && !(strcmp(uri, "/v1/stats") == 0 || strcmp(uri, "/v1/queue") == 0 ||
                      strncmp(uri, "/v1/jobs/", 9) == 0)) {
        *route = R_OTHER;
        return problem(c, w, 404, "not-found", "Not found",
                       "this is the admin listener: /metrics, /healthz, /readyz, /ui and "
                       "GET /v1/stats, /v1/queue, /v1/jobs/{id}; the API is on [server] "
                       "listen", NULL);
    }

    /* Everything else is the API: with a tokens_file, a token first. */
    const sw_auth_entry *grant = NULL;
    const sw_auth *auth = atomic_load_explicit(&h->auth, memory_order_acquire);
    if (!l->admin && strncmp(uri, "/v1/", 4) == 0 && auth != NULL) {
        enum sw_auth_result res;
        grant = sw_auth_check(auth, mg_get_header(c, "Authorization"), &res);
        if (grant == NULL) {
            *route = R_OTHER;
            return unauthorized(c, h, w, res);
        }
    }
    if (strncmp(uri, "/v1/sinks/", 10) == 0) {
        const char *name = uri + 10, *slash = strchr(name, '/');
        *route = R_RECORDS;
        if (slash == NULL || strcmp(slash, "/records") != 0)
            return problem(c, w, 404, "not-found", "Not found",
                           "use /v1/sinks/{sink}/records", NULL);
        size_t n = (size_t)(slash - name);
        const sw_sink *sink = sw_config_sink(h->cfg, name, n);
        if (grant && !sw_auth_allows(grant, name, n))
            return forbidden(c, h, w, "this token may not write to this sink; ask for a token "
                                      "that lists it (spillwayctl token new --sinks ...)");
        if (sink == NULL) {
            char detail[128];
            snprintf(detail, sizeof detail, "no sink named \"%.*s\" is configured",
                     (int)(n > 64 ? 64 : n), name);
            return problem(c, w, 404, "unknown-sink", "Unknown sink", detail, NULL);
        }
        if (!is_method(ri, "POST"))
            return method_not_allowed(c, w, "POST");
        return post_records(c, h, w, sink, grant);
    }
    if (strncmp(uri, "/v1/jobs/", 9) == 0) {
        *route = R_JOB;
        return get ? get_job(c, w, uri + 9, grant) : method_not_allowed(c, w, "GET");
    }
    if (strcmp(uri, "/v1/queue") == 0) {
        *route = R_QUEUE;
        return get ? get_queue(c, w) : method_not_allowed(c, w, "GET");
    }
    if (strcmp(uri, "/v1/stats") == 0) {
        *route = R_STATS;
        if (!get)
            return method_not_allowed(c, w, "GET");
        /* Recent failures of every sink are in it. */
        if (grant && !grant->all_sinks)
            return forbidden(c, h, w, "/v1/stats shows jobs of every sink, so it needs a token "
                                      "for all sinks (\"*\")");
        if (sw_queue_overview(w->redis, 10, &w->out) != 0)
            return redis_unavailable(c, w);
        return send_json(c, 200, NULL, &w->out);
    }
    *route = R_OTHER;
    return problem(c, w, 404, "not-found", "Not found",
                   "no such resource; see the API reference in README.md", NULL);
}

/* Refuse requests whose framing a proxy in front of us could read
 * differently (request smuggling): Content-Length together with
 * Transfer-Encoding (civetweb lets chunked win), a repeated or non-numeric
 * Content-Length, a repeated Transfer-Encoding. And the head's size. */
static int check_head(struct mg_connection *c, sw_http *h, worker *w)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    int ncl = 0, nte = 0;
    size_t head = strlen(ri->request_method) + strlen(ri->request_uri) +
                  (ri->query_string ? strlen(ri->query_string) + 1 : 0) + 12;
    const char *cl = NULL;
    for (int i = 0; i < ri->num_headers; i++) {
        const struct mg_header *hd = &ri->http_headers[i];
        head += strlen(hd->name) + strlen(hd->value) + 4;
        if (strcasecmp(hd->name, "Content-Length") == 0) {
            ncl++;
            cl = hd->value;
        } else if (strcasecmp(hd->name, "Transfer-Encoding") == 0) {
            nte++;
        }
    }
    /* civetweb keeps the first MG_MAX_HEADERS headers and silently drops
     * the rest, Content-Length and Transfer-Encoding included: a proxy and
     * we would then disagree on where the body ends. A full table may have
     * lost some, so it is refused. */
    if (ri->num_headers >= MG_MAX_HEADERS)
        return problem(c, w, 431, "too-many-headers", "Too many request headers",
                       "send fewer than 64 headers", "Connection: close\r\n");
    if (head > (size_t)h->cfg->max_header_bytes) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "the request line and headers take %zu bytes, over the limit of %d "
                 "([server] max_header_bytes)", head, h->cfg->max_header_bytes);
        return problem(c, w, 431, "headers-too-large", "Request headers too large", detail,
                       "Connection: close\r\n");
    }
    const char *why = NULL;
    if (ncl > 0 && nte > 0)
        why = "the request has both Content-Length and Transfer-Encoding; send one of them";
    else if (ncl > 1)
        why = "the request has more than one Content-Length header";
    else if (nte > 1)
        why = "the request has more than one Transfer-Encoding header";
    else if (cl && (cl[0] == '\0' || strspn(cl, "0123456789") != strlen(cl)))
        why = "Content-Length must be a decimal number of bytes";
    if (why)
        return problem(c, w, 400, "bad-framing", "Ambiguous request framing", why,
                       "Connection: close\r\n");
    return 0;
}

static int handler(struct mg_connection *c, void *data)
{
    const listener *l = data;
    sw_http *h = l->h;
    worker *w = mg_get_thread_pointer(c);
    enum route route = R_OTHER;
    if (w == NULL || w->redis == NULL) {
        /* No worker state, so no buffers: a fixed problem body. */
        static const char body[] =
            "{\"type\":\"urn:spillway:problem:internal\",\"title\":\"Internal error\","
            "\"status\":500,\"detail\":\"this server thread could not allocate its state "
            "(out of memory); retry\"}";
        mg_printf(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/problem+json"
                     "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                  sizeof body - 1, body);
        return 500;
    }
    int64_t start = sw_clock_now_us();
    w->deadline_ms = sw_clock_mono_ms() + h->cfg->request_timeout_ms;
    w->body_read = 0;
    int status = check_head(c, h, w);
    if (status == 0)
        status = dispatch(c, l, w, &route);
    count(h, route, status);
    sw_histogram_observe(&h->latency, (double)(sw_clock_now_us() - start) / 1e6);
    return status;
}

/* civetweb's own refusals (a request it cannot parse, a head larger than
 * its buffer, a bad chunked framing line) as problem+json too. */
/* civetweb's message may quote the request: keep it only when it is plain
 * printable ASCII with nothing JSON would need escaped. */
static const char *plain_or(const char *msg, const char *fallback)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            return fallback;
    }
    return msg;
}

static int http_error(struct mg_connection *c, int status, const char *msg)
{
    char body[512];
    const char *title = status == 413 || status == 431 ? "Request head too large"
                      : status == 408 ? "Request timeout"
                      : status == 505 ? "HTTP version not supported"
                      : status >= 500 ? "Internal error" : "Bad request";
    const struct mg_context *ctx = mg_get_context(c);
    const sw_http *h = ctx ? mg_get_user_data(ctx) : NULL;
    int n = snprintf(body, sizeof body,
                     "{\"type\":\"urn:spillway:problem:bad-request\",\"title\":\"%s\","
                     "\"status\":%d,\"detail\":\"the HTTP request could not be read (%s): "
                     "it is malformed, did not arrive within %d ms, or its head is over "
                     "%d bytes\"}",
                     title, status, plain_or(msg, "?"),
                     h ? h->cfg->request_timeout_ms : 0, h ? h->cfg->max_header_bytes : 0);
    if (n < 0 || (size_t)n >= sizeof body)
        return 1;
    mg_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                 "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
              status, mg_get_response_code_text(c, status), n, body);
    return 0;
}

/* civetweb made the SSL_CTX for an "s" port: load our certificate. */
static int init_ssl(void *ssl_ctx, void *user_data)
{
    const sw_http *h = user_data;
    char why[256];
    if (sw_tls_load(ssl_ctx, h->cfg->tls_cert, h->cfg->tls_key, why, sizeof why) != 0) {
        sw_log_error("cannot set up TLS", "reason=\"%s\"", why);
        return -1;
    }
    return 1;
}

static struct mg_context *start_listener(sw_http *h, listener *l, const char *ports,
                                         int threads)
{
    char nthreads[16], head[16], req_ms[16], idle_ms[16];
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    /* civetweb's read buffer for the head: larger than our limit, so a
     * head just over it gets a precise 431 from check_head(). */
    snprintf(head, sizeof head, "%d", 2 * h->cfg->max_header_bytes);
    snprintf(req_ms, sizeof req_ms, "%d", h->cfg->request_timeout_ms);
    snprintf(idle_ms, sizeof idle_ms, "%d", h->cfg->idle_timeout_ms);
    const char *options[] = {"listening_ports", ports, "num_threads", nthreads,
                             "enable_keep_alive", "yes", "request_timeout_ms", req_ms,
                             "keep_alive_timeout_ms", idle_ms, "max_request_size", head,
                             /* Headers and body go out in two writes; without this
                              * Nagle holds the body for the client's delayed ACK. */
                             "tcp_nodelay", "1", "ssl_protocol_version", "4", NULL};
    struct mg_callbacks cb = {0};
    cb.init_thread = init_thread;
    cb.exit_thread = exit_thread;
    cb.log_message = log_message;
    cb.http_error = http_error;
    cb.init_ssl = init_ssl;
    struct mg_context *ctx = mg_start(&cb, h, options);
    if (ctx == NULL) {
        sw_log_error("cannot listen", "listen=%s hint=\"is the port in use, the address wrong, "
                     "or the certificate unreadable? see [server] listen, admin_listen, "
                     "tls_cert\"", ports);
        return NULL;
    }
    l->h = h;
    mg_set_request_handler(ctx, "/", handler, l);
    return ctx;
}

sw_http *sw_http_start(const sw_config *cfg)
{
    sw_http *h = calloc(1, sizeof *h);
    char ports[160];
    if (h == NULL)
        return NULL;
    h->cfg = cfg;
    pthread_mutex_init(&h->persist_lock, NULL);
    atomic_init(&h->evicting, 0);
    h->latency.bounds = latency_bounds;
    h->latency.nbounds = (int)(sizeof latency_bounds / sizeof latency_bounds[0]);
    h->jobs_by_sink = calloc((size_t)cfg->nsinks + 1, sizeof *h->jobs_by_sink);
    h->records_by_sink = calloc((size_t)cfg->nsinks + 1, sizeof *h->records_by_sink);
    h->shapes = calloc((size_t)cfg->nsinks + 1, sizeof *h->shapes);
    h->shape_text = calloc((size_t)cfg->nsinks + 1, sizeof *h->shape_text);
    if (h->shapes == NULL || h->shape_text == NULL)
        goto fail;
    for (int k = 0; k < cfg->nsinks; k++) {
        if (sw_shape_describe(&cfg->sinks[k], &h->shape_text[k]) != 0)
            goto fail;
        h->shapes[k] = (sw_pipeline_shape){cfg->sinks[k].shape, h->shape_text[k].data};
    }
    sw_redis_opts ro = sw_config_redis(cfg);
    h->pipeline = sw_pipeline_new(&ro, cfg->status_ttl_s, cfg->idempotency_ttl_s,
                                  cfg->max_queue_records, h->shapes, cfg->nsinks);
    h->deadline = sw_deadline_new(cfg->threads + ADMIN_THREADS);
    if (h->jobs_by_sink == NULL || h->records_by_sink == NULL || h->pipeline == NULL ||
        h->deadline == NULL)
        goto fail;
    atomic_init(&h->auth, NULL);
    if (cfg->tokens_file[0] && sw_http_reload_tokens(h) != 0)
        goto fail;
    sw_pipeline_count_reconnects(h->pipeline, &h->redis_reconnects);
    mg_init_library(cfg->tls_cert[0] ? MG_FEATURES_TLS : 0);
    snprintf(ports, sizeof ports, "%s%s", cfg->listen, cfg->tls_cert[0] ? "s" : "");
    h->api.admin = 0;
    h->admin.admin = 1;
    /* The admin listener first: the API's dispatch() reads admin_ctx to
     * know whether the operators' routes moved off it. */
    if (cfg->admin_listen[0] &&
        (h->admin_ctx = start_listener(h, &h->admin, cfg->admin_listen, ADMIN_THREADS)) == NULL)
        goto fail;
    if ((h->ctx = start_listener(h, &h->api, ports, cfg->threads)) == NULL)
        goto fail;
    return h;
fail:
    sw_http_stop(h);
    return NULL;
}

static void auth_free(sw_auth *a)
{
    sw_auth_free(a);
    free(a);
}

int sw_http_reload_tokens(sw_http *h)
{
    if (h->cfg->tokens_file[0] == '\0')
        return 0;
    sw_auth *a = calloc(1, sizeof *a), *old = atomic_load(&h->auth);
    sw_auth **grown = realloc(h->retired, (size_t)(h->nretired + 1) * sizeof *grown);
    if (grown)
        h->retired = grown;
    if (a == NULL || grown == NULL) {
        sw_log_error("cannot load tokens", "reason=\"out of memory\"");
        free(a);
        return -1;
    }
    if (sw_auth_load(a, h->cfg->tokens_file, h->cfg) != 0) {
        sw_log_error("bad tokens file", "reason=\"%s\"%s", a->errstr,
                     old ? " action=\"keeping the tokens loaded before\"" : "");
        auth_free(a);
        return -1;
    }
    atomic_store_explicit(&h->auth, a, memory_order_release);
    if (old)
        h->retired[h->nretired++] = old;
    sw_log_info(old ? "tokens reloaded" : "tokens loaded", "file=%s tokens=%d",
                h->cfg->tokens_file, a->n);
    return 0;
}

void sw_http_stop(sw_http *h)
{
    if (h == NULL)
        return;
    if (h->ctx)
        mg_stop(h->ctx);
    if (h->admin_ctx)
        mg_stop(h->admin_ctx);
    /* After mg_stop no worker can enqueue any more. */
    sw_pipeline_free(h->pipeline);
    sw_deadline_free(h->deadline);
    auth_free(atomic_load(&h->auth));
    for (int i = 0; i < h->nretired; i++)
        auth_free(h->retired[i]);
    free(h->retired);
    free(h->jobs_by_sink);
    free(h->records_by_sink);
    for (int k = 0; h->shape_text && k < h->cfg->nsinks; k++)
        sw_buf_free(&h->shape_text[k]);
    free(h->shape_text);
    free(h->shapes);
    pthread_mutex_destroy(&h->persist_lock);
    free(h);
}
