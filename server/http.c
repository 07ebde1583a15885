#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "shape.h"
#include "tls.h"
#include "ui.h"

/* Probes, scrapes and the dashboard's reads: their own small pool, so a
 * busy or stuck API cannot delay them. */
#define ADMIN_THREADS 2


/* Seconds, 0.5 ms up to the longest a request may take (request_timeout,
 * a slow upload). */
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,    30,   60};

/* --- replies ----------------------------------------------------------- */

/* When a reply cannot be made (out of memory), the request stays
 * unanswered and the core answers 500 and closes. */
int sw_api_text(sw_http_exchange *x, int status, const char *ctype, const char *body,
                size_t len)
{
    if (sw_http_reply(x, status, ctype, NULL, body, len) != 0)
        sw_log_error("out of memory for a reply", "status=%d", status);
    return SW_HTTPD_ANSWERED;
}

int sw_api_json(sw_http_exchange *x, int status, const char *extra, const sw_buf *b)
{
    if (sw_http_reply(x, status, "application/json", extra, b->data, b->len) != 0)
        sw_log_error("out of memory for a reply", "status=%d", status);
    return SW_HTTPD_ANSWERED;
}

int sw_api_send_problem(sw_http_exchange *x, const sw_problem *p, const char *extra)
{
    if (sw_http_reply_problem(x, p, extra) != 0)
        sw_log_error("out of memory for a reply", "status=%d", p->status);
    return SW_HTTPD_ANSWERED;
}

int sw_api_problem(sw_http_exchange *x, int status, const char *type, const char *title,
                   const char *detail, const char *extra)
{
    sw_problem p = {0};
    sw_problem_set(&p, status, type, title, "%s", detail);
    return sw_api_send_problem(x, &p, extra);
}

int sw_api_method_not_allowed(sw_http_exchange *x, const char *allow)
{
    char extra[64], detail[96];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    snprintf(detail, sizeof detail, "this resource accepts only %s", allow);
    return sw_api_problem(x, 405, "method-not-allowed", "Method not allowed", detail, extra);
}

int sw_api_unavailable(sw_http_exchange *x, enum sw_redis_err err, const char *code,
                       const char *errstr)
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
    else if (err == SW_REDIS_ENOACK)
        sw_problem_set(&p, 503, "redis-not-replicated", "Queue storage did not confirm the write",
                       "the job reached the Redis master but not enough replicas in time (%s): "
                       "it may have been queued, and a failover may lose it. Retry with the "
                       "same Idempotency-Key to get it once.", errstr);
    else if (sw_redis_maybe_done(err))
        sw_problem_set(&p, 503, "redis-timeout", "Queue storage did not answer",
                       "Redis did not answer in time or the connection broke (%s): the job "
                       "may have been queued. Retry with the same Idempotency-Key to get it "
                       "once.", errstr);
    else
        sw_problem_set(&p, 503, "redis-unavailable", "Queue unavailable",
                       "Redis is not reachable (%s); nothing was queued. Retry later.",
                       errstr);
    return sw_api_send_problem(x, &p, "Retry-After: 1\r\n");
}

int sw_api_redis_unavailable(sw_http_exchange *x, const sw_redis *r)
{
    return sw_api_unavailable(x, r->err, r->code, r->errstr);
}

/* --- routing (the I/O thread: nothing here may block) ------------------ */

static int is_method(const sw_http_exchange *x, const char *m)
{
    return strcmp(x->method, m) == 0;
}

/* 401 for a missing or unknown token; the header tells clients how to
 * authenticate (RFC 6750). */
static int unauthorized(sw_http *h, sw_http_exchange *x, enum sw_auth_result res)
{
    sw_metrics_add(&h->rejected[REJ_UNAUTHORIZED], 1);
    if (res == SW_AUTH_MISSING)
        return sw_api_problem(x, 401, "unauthorized", "Authentication required",
                              "send Authorization: Bearer <token>; an operator makes tokens "
                              "with spillwayctl token new (the dashboard needs [server] "
                              "admin_listen)", "WWW-Authenticate: Bearer realm=\"spillway\"\r\n");
    return sw_api_problem(x, 401, "unauthorized", "Invalid token",
                          "the bearer token is not one this server knows",
                          "WWW-Authenticate: Bearer realm=\"spillway\", "
                          "error=\"invalid_token\"\r\n");
}

static int forbidden(sw_http *h, sw_http_exchange *x, const char *detail)
{
    sw_metrics_add(&h->rejected[REJ_FORBIDDEN], 1);
    return sw_api_problem(x, 403, "forbidden", "Not allowed for this token", detail,
                          "WWW-Authenticate: Bearer realm=\"spillway\", "
                          "error=\"insufficient_scope\"\r\n");
}

/* The dashboard's actions: POST, and a token with the +admin scope (so
 * only with a tokens_file; the admin listener takes no other token). */
static int admin_action(sw_http *h, sw_http_exchange *x, int pool)
{
    x->route = R_ADMIN;
    if (!is_method(x, "POST"))
        return sw_api_method_not_allowed(x, "POST");
    const sw_auth *auth = atomic_load_explicit(&h->auth, memory_order_acquire);
    if (auth == NULL)
        return forbidden(h, x, "actions need [server] tokens_file and a token made with "
                               "spillwayctl token new --sinks '+admin'");
    enum sw_auth_result res;
    const sw_auth_entry *grant = sw_auth_check(auth, sw_http_header(x, "Authorization"), &res);
    if (grant == NULL || !grant->admin)
        sw_log_warn("admin action refused", "path=\"%.*s\" reason=%s client=%s",
                    (int)(strlen(x->path) > 200 ? 200 : strlen(x->path)), x->path,
                    grant ? "no_admin_scope" : res == SW_AUTH_MISSING ? "no_token" : "bad_token",
                    x->client[0] ? x->client : "-");
    if (grant == NULL)
        return unauthorized(h, x, res);
    if (!grant->admin)
        return forbidden(h, x, "this token has no +admin scope; make one with spillwayctl token "
                               "new --sinks '+admin'");
    x->note2 = grant;
    if (x->head.framing != SW_HTTP_NO_BODY)
        sw_http_accept_body(x, 4096, "an action's body (4096 bytes)");
    return pool;
}

/* GET (or HEAD) to `pool`, else 405. */
static int get_only(sw_http_exchange *x, int get, int pool)
{
    return get ? pool : sw_api_method_not_allowed(x, "GET, HEAD");
}

/* Routes for operators: metrics, probes and the dashboard, served without
 * a token: on the admin listener when there is one, else beside the API.
 * Liveness and the page are answered here; readiness and metrics ask
 * Redis, on the admin pool. -2 when `uri` is none of them. */
static int admin_route(sw_http_exchange *x, const char *uri, int get, int pool)
{
    if (strcmp(uri, "/ui") == 0 || strcmp(uri, "/ui/") == 0) {
        x->route = R_UI;
        /* Its buttons act: no other site may frame it. */
        if (!get)
            return sw_api_method_not_allowed(x, "GET, HEAD");
        if (sw_http_reply(x, 200, "text/html; charset=utf-8",
                          "X-Frame-Options: DENY\r\nContent-Security-Policy: frame-ancestors "
                          "'none'\r\n", sw_ui_html, sw_ui_html_len) != 0)
            sw_log_error("out of memory for a reply", "status=200");
        return SW_HTTPD_ANSWERED;
    }
    if (strcmp(uri, "/healthz") == 0) {
        x->route = R_HEALTHZ;
        return get ? sw_api_text(x, 200, "application/json", "{\"status\":\"ok\"}", 15)
                   : sw_api_method_not_allowed(x, "GET, HEAD");
    }
    if (strcmp(uri, "/readyz") == 0) {
        x->route = R_READYZ;
        return get_only(x, get, pool);
    }
    if (strcmp(uri, "/metrics") == 0) {
        x->route = R_METRICS;
        return get_only(x, get, pool);
    }
    return -2;
}

static int route(void *user, sw_http_exchange *x)
{
    const sw_front *f = user;
    sw_http *h = f->h;
    const char *uri = x->path;
    int admin = f->admin;
    int get = is_method(x, "GET") || is_method(x, "HEAD");
    /* The admin pool: the admin core's only one, or the API core's second. */
    int admin_pool = admin ? 0 : POOL_ADMIN;
    int rc;

    x->route = R_OTHER;
    /* Draining: every answer closes its connection, so keep-alive clients
     * and load balancers move on before the listener goes. */
    if (atomic_load_explicit(&h->draining, memory_order_relaxed))
        x->close = 1;
    if ((admin || !h->has_admin) && (rc = admin_route(x, uri, get, admin_pool)) != -2)
        return rc;
    /* Load balancers probe the port they send to: with an admin listener
     * the probes answer on the API port too, without a token, on its own
     * pool (they say what that port can do). */
    if (!admin && (strcmp(uri, "/healthz") == 0 || strcmp(uri, "/readyz") == 0))
        return admin_route(x, uri, get, POOL_API);
    /* The dashboard's actions, where the dashboard is served. */
    if (strncmp(uri, "/v1/admin/", 10) == 0 && (admin || !h->has_admin))
        return admin_action(h, x, admin_pool);
    /* The admin listener also answers what the dashboard reads, with no
     * token, and nothing else. */
    if (admin) {
        if (strcmp(uri, "/v1/stats") == 0)
            x->route = R_STATS;
        else if (strcmp(uri, "/v1/queue") == 0)
            x->route = R_QUEUE;
        else if (strncmp(uri, "/v1/jobs/", 9) == 0) {
            x->route = R_JOB;
            x->note = SW_API_NO_WAIT;
        } else
            return sw_api_problem(x, 404, "not-found", "Not found",
                                  "this is the admin listener: /metrics, /healthz, /readyz, "
                                  "/ui and GET /v1/stats, /v1/queue, /v1/jobs/{id}; the API is "
                                  "on [server] listen", NULL);
        return get_only(x, get, admin_pool);
    }

    /* The API's description, for client generators: no token. */
    if (strcmp(uri, "/v1/openapi.json") == 0) {
        x->route = R_OPENAPI;
        if (!get)
            return sw_api_method_not_allowed(x, "GET, HEAD");
        if (sw_http_reply(x, 200, "application/json", NULL, sw_openapi_json,
                          sw_openapi_json_len) != 0)
            sw_log_error("out of memory for a reply", "status=200");
        return SW_HTTPD_ANSWERED;
    }
    /* Everything else is the API: with a tokens_file, a token first. */
    const sw_auth_entry *grant = NULL;
    const sw_auth *auth = atomic_load_explicit(&h->auth, memory_order_acquire);
    if (strncmp(uri, "/v1/", 4) == 0 && auth != NULL) {
        enum sw_auth_result res;
        grant = sw_auth_check(auth, sw_http_header(x, "Authorization"), &res);
        if (grant == NULL)
            return unauthorized(h, x, res);
    }
    x->note2 = grant;
    if (strncmp(uri, "/v1/sinks/", 10) == 0) {
        const char *name = uri + 10, *slash = strchr(name, '/');
        x->route = R_RECORDS;
        if (slash == NULL || strcmp(slash, "/records") != 0)
            return sw_api_problem(x, 404, "not-found", "Not found",
                                  "use /v1/sinks/{sink}/records", NULL);
        size_t n = (size_t)(slash - name);
        const sw_sink *sink = sw_config_sink(h->cfg, name, n);
        if (grant && !sw_auth_allows(grant, name, n))
            return forbidden(h, x, "this token may not write to this sink; ask for a token "
                                   "that lists it (spillwayctl token new --sinks ...)");
        if (sink == NULL) {
            sw_problem p = {0};
            sw_problem_set(&p, 404, "unknown-sink", "Unknown sink",
                           "no sink named \"%.*s\" is configured", (int)(n > 64 ? 64 : n),
                           name);
            return sw_api_send_problem(x, &p, NULL);
        }
        if (!is_method(x, "POST") && !is_method(x, "DELETE"))
            return sw_api_method_not_allowed(x, "POST, DELETE");
        if (x->head.framing == SW_HTTP_NO_BODY)
            return sw_api_problem(x, 411, "length-required", "Length required",
                                  "send a Content-Length header (or a chunked body)", NULL);
        x->note = sink;
        sw_http_accept_body(x, (size_t)h->cfg->max_body_bytes, "[server] max_body_bytes");
        return POOL_API;
    }
    if (strcmp(uri, "/v1/jobs/lookup") == 0) {
        x->route = R_LOOKUP;
        if (!is_method(x, "POST"))
            return sw_api_method_not_allowed(x, "POST");
        if (x->head.framing == SW_HTTP_NO_BODY)
            return sw_api_problem(x, 411, "length-required", "Length required",
                                  "send a Content-Length header (or a chunked body)", NULL);
        /* 1,000 ids of 36 bytes, quoted, with room for spaces. */
        sw_http_accept_body(x, 64 * 1024, "a lookup's body (65536 bytes)");
        return POOL_API;
    }
    if (strncmp(uri, "/v1/jobs/", 9) == 0) {
        x->route = R_JOB;
        return get_only(x, get, POOL_API);
    }
    if (strcmp(uri, "/v1/queue") == 0) {
        x->route = R_QUEUE;
        return get_only(x, get, POOL_API);
    }
    if (strcmp(uri, "/v1/stats") == 0) {
        x->route = R_STATS;
        if (!get)
            return sw_api_method_not_allowed(x, "GET, HEAD");
        /* Recent failures of every sink are in it. */
        if (grant && !grant->all_sinks)
            return forbidden(h, x, "/v1/stats shows jobs of every sink, so it needs a token "
                                   "for all sinks (\"*\")");
        return POOL_API;
    }
    return sw_api_problem(x, 404, "not-found", "Not found",
                          "no such resource; see the API reference in README.md", NULL);
}

/* --- workers ----------------------------------------------------------- */

static void serve(void *user, void *state, sw_http_exchange *x)
{
    sw_http *h = ((const sw_front *)user)->h;
    sw_worker *w = state;
    if (w == NULL || w->shards == NULL) {
        sw_api_problem(x, 500, "internal", "Internal error",
                       "this server thread could not allocate its state (out of memory); "
                       "retry", NULL);
        return;
    }
    if (atomic_load_explicit(&h->draining, memory_order_relaxed))
        x->close = 1;
    switch (x->route) {
    case R_RECORDS: sw_api_post_records(h, w, x); break;
    case R_JOB: sw_api_get_job(h, w, x); break;
    case R_LOOKUP: sw_api_lookup_jobs(h, w, x); break;
    case R_QUEUE: sw_api_get_queue(h, w, x); break;
    case R_STATS: sw_api_get_stats(h, w, x); break;
    case R_READYZ: sw_api_readyz(h, w, x); break;
    case R_METRICS: sw_api_metrics(h, w, x); break;
    case R_ADMIN: sw_api_admin(h, w, x); break;
    default:
        sw_api_problem(x, 500, "internal", "Internal error", "no handler for this route", NULL);
    }
}

static void done(void *user, const sw_http_exchange *x)
{
    sw_http *h = ((const sw_front *)user)->h;
    int r = x->route >= 0 && x->route < R_COUNT ? x->route : R_OTHER;
    sw_metrics_add(&h->requests[r][sw_api_code_index(x->status)], 1);
    /* The rejected counters are about writes: the core's 408 and 413 on
     * POST .../records (a head that never came is not one). */
    if (x->by_core && r == R_RECORDS && x->status == 408)
        sw_metrics_add(&h->rejected[REJ_TIMEOUT], 1);
    else if (x->by_core && r == R_RECORDS && x->status == 413)
        sw_metrics_add(&h->rejected[REJ_TOO_LARGE], 1);
    if (x->started_us)
        sw_histogram_observe(&h->latency[r], (double)(sw_clock_now_us() - x->started_us) / 1e6);
    /* Refusals name the client (behind a trusted proxy, the one it saw). */
    if (x->status >= 400)
        sw_log_debug("request refused", "client=%s method=%s path=\"%.*s\" status=%d",
                     x->client[0] ? x->client : "-", x->method ? x->method : "-",
                     x->path ? (int)(strlen(x->path) > 200 ? 200 : strlen(x->path)) : 1,
                     x->path ? x->path : "-", x->status);
}

/* Writes with a small body are validated on the I/O thread itself: that
 * takes a few microseconds, the Redis lane answers them, and the hand-off
 * to a worker cost more than the work. Larger bodies, and reads that wait
 * on Redis, go to the workers. */
#define INLINE_BODY_MAX (16 * 1024)

static int inline_ok(void *user, const sw_http_exchange *x)
{
    (void)user;
    return x->route == R_RECORDS && x->body_len <= INLINE_BODY_MAX;
}

static void *worker_start(void *user, int pool)
{
    sw_http *h = ((const sw_front *)user)->h;
    (void)pool;
    sw_worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    msgpack_sbuffer_init(&w->sb);
    sw_redis_opts ro = sw_config_redis(h->cfg);
    w->shards = sw_shards_new(&ro, h->cfg->shards);
    if (w->shards)
        sw_shards_count(w->shards, &h->redis_reconnects, h->redis_redirects);
    return w;
}

static void worker_stop(void *user, int pool, void *state)
{
    (void)user;
    (void)pool;
    sw_worker *w = state;
    if (w == NULL)
        return;
    sw_shards_free(w->shards);
    sw_buf_free(&w->out);
    sw_record_work_free(&w->work);
    msgpack_sbuffer_destroy(&w->sb);
    free(w);
}

/* --- lifecycle --------------------------------------------------------- */

void sw_http_set_persistence(sw_http *h, const sw_redis_persistence *p)
{
    pthread_mutex_lock(&h->persist_lock);
    h->persist_known = p != NULL;
    if (p)
        h->persist = *p;
    pthread_mutex_unlock(&h->persist_lock);
    atomic_store(&h->evicting, p && sw_redis_persistence_evicts(p) && !h->cfg->allow_eviction);
}

void sw_http_set_memory(sw_http *h, const sw_redis_memory *m, double status_bytes)
{
    int pct = h->cfg->max_redis_memory_percent;
    int high = pct > 0 && m->max > 0 && m->used >= m->max / 100 * pct;
    atomic_store(&h->redis_used, m->used);
    atomic_store(&h->redis_max, m->max);
    if (status_bytes > 0)
        atomic_store(&h->status_bytes, status_bytes);
    if (atomic_exchange(&h->memory_high, high) != high) {
        if (high)
            sw_log_warn("redis memory high: refusing writes", "used=%lld maxmemory=%lld "
                        "limit_percent=%d action=\"429 until flushers drain and statuses "
                        "expire; see docs/OPERATIONS.md for sizing\"", m->used, m->max, pct);
        else
            sw_log_info("redis memory below the limit again", "used=%lld maxmemory=%lld",
                        m->used, m->max);
    }
}

void sw_http_set_paused(sw_http *h, const unsigned char *paused)
{
    for (int k = 0; k < h->cfg->nsinks; k++) {
        int now = paused[k] != 0;
        if (atomic_exchange(&h->paused[k], now) == now)
            continue;
        if (now)
            sw_log_warn("sink intake paused", "sink=%s action=\"answering its POSTs 503 until "
                        "spillwayctl sink resume\"", h->cfg->sinks[k].name);
        else
            sw_log_info("sink intake resumed", "sink=%s", h->cfg->sinks[k].name);
    }
}

void sw_http_set_flush_paused(sw_http *h, const unsigned char *paused)
{
    for (int k = 0; k < h->cfg->nsinks; k++)
        atomic_store(&h->flush_paused[k], paused[k] != 0);
}

void sw_http_sample(sw_http *h, const sw_history_sample *s)
{
    sw_history_add(&h->history, s);
}

void sw_http_set_draining(sw_http *h)
{
    atomic_store(&h->draining, 1);
    sw_waits_drain(h->waits);   /* waiting requests answer now */
}

void sw_http_set_layout(sw_http *h, int ok, const char *why)
{
    pthread_mutex_lock(&h->persist_lock);
    snprintf(h->layout_err, sizeof h->layout_err, "%s", why ? why : "");
    pthread_mutex_unlock(&h->persist_lock);
    atomic_store(&h->layout_ok, ok || h->cfg->shards == 0);
}

/* Why the layout is not confirmed, into `out`. */
static void layout_why(sw_http *h, char *out, size_t n)
{
    pthread_mutex_lock(&h->persist_lock);
    snprintf(out, n, "%s", h->layout_err[0] ? h->layout_err : "not checked yet");
    pthread_mutex_unlock(&h->persist_lock);
}

int sw_api_layout_unconfirmed(sw_http *h, sw_http_exchange *x, const char *type)
{
    char why[256];
    layout_why(h, why, sizeof why);
    sw_problem p = {0};
    sw_problem_set(&p, 503, type, strcmp(type, "not-ready") == 0 ? "Not ready"
                                                               : "Queue unavailable",
                   "Redis: %s; the queue layout ([redis] shards) is not confirmed yet, so "
                   "nothing is queued", why);
    return sw_api_send_problem(x, &p, "Retry-After: 1\r\n");
}

sw_http *sw_http_start(const sw_config *cfg)
{
    sw_http *h = calloc(1, sizeof *h);
    char why[512];
    if (h == NULL)
        return NULL;
    h->cfg = cfg;
    /* One queue needs no gate (http.h); shards wait for the guard. */
    atomic_init(&h->layout_ok, cfg->shards == 0);
    pthread_mutex_init(&h->persist_lock, NULL);
    pthread_mutex_init(&h->ages_lock, NULL);
    sw_history_init(&h->history);
    atomic_init(&h->evicting, 0);
    for (int r = 0; r < R_COUNT; r++) {
        h->latency[r].bounds = latency_bounds;
        h->latency[r].nbounds = (int)(sizeof latency_bounds / sizeof latency_bounds[0]);
    }
    h->jobs_by_sink = calloc((size_t)cfg->nsinks + 1, sizeof *h->jobs_by_sink);
    h->records_by_sink = calloc((size_t)cfg->nsinks + 1, sizeof *h->records_by_sink);
    h->shapes = calloc((size_t)cfg->nsinks + 1, sizeof *h->shapes);
    h->shape_text = calloc((size_t)cfg->nsinks + 1, sizeof *h->shape_text);
    h->key_flags = calloc((size_t)cfg->nsinks + 1, sizeof *h->key_flags);
    h->paused = calloc((size_t)cfg->nsinks + 1, sizeof *h->paused);
    h->flush_paused = calloc((size_t)cfg->nsinks + 1, sizeof *h->flush_paused);
    h->ages_us = calloc((size_t)cfg->nsinks + 1, sizeof *h->ages_us);
    if (h->shapes == NULL || h->shape_text == NULL || h->key_flags == NULL || h->paused == NULL ||
        h->flush_paused == NULL || h->ages_us == NULL)
        goto fail;
    for (int k = 0; k < cfg->nsinks; k++) {
        for (int c = 0; c < cfg->sinks[k].ncolumns && c < SW_SINK_MAX_COLUMNS; c++)
            h->key_flags[k][c] = (unsigned char)cfg->sinks[k].columns[c].is_key;
        if (sw_shape_describe(&cfg->sinks[k], &h->shape_text[k]) != 0)
            goto fail;
        h->shapes[k] = (sw_pipeline_shape){cfg->sinks[k].shape, h->shape_text[k].data};
    }
    sw_redis_opts ro = sw_config_redis(cfg);
    /* The high-water mark is shared out: each shard's lane holds its
     * share, and jobs without a key are spread evenly. */
    h->nlanes = cfg->shards > 0 ? cfg->shards : 1;
    long share = sw_shards_share(cfg->max_queue_records, cfg->shards);
    for (int k = 0; k < h->nlanes; k++) {
        char prefix[64];
        sw_redis_opts so = sw_shards_opts(&ro, cfg->shards, k, prefix);
        h->pipeline[k] = sw_pipeline_new(&so, cfg->status_ttl_s, cfg->idempotency_ttl_s, share,
                                         h->shapes, cfg->nsinks);
        if (h->pipeline[k] == NULL)
            goto fail;
        sw_pipeline_count_reconnects(h->pipeline[k], &h->redis_reconnects, h->redis_redirects);
    }
    if (h->jobs_by_sink == NULL || h->records_by_sink == NULL)
        goto fail;
    atomic_init(&h->auth, NULL);
    if (cfg->tokens_file[0] && sw_http_reload_tokens(h) != 0)
        goto fail;
    if (cfg->tls_cert[0] &&
        (h->tls = sw_tls_server_ctx(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers, why,
                                    sizeof why)) == NULL) {
        sw_log_error("cannot set up TLS", "reason=\"%s\"", why);
        goto fail;
    }
    h->has_admin = cfg->admin_listen[0] != '\0';
    if ((h->waits = sw_waits_start(cfg, cfg->max_waiting)) == NULL) {
        sw_log_error("cannot start the readers of finished jobs", NULL);
        goto fail;
    }
    /* Request bodies held at once: room for many full ones by default. */
    size_t buffered = (size_t)cfg->max_body_buffer_bytes;
    if (buffered == 0) {
        buffered = (size_t)cfg->max_body_bytes * 64;
        if (buffered < (size_t)256 << 20)
            buffered = (size_t)256 << 20;
    }
    /* Writes waiting for the Redis lane hold their envelopes: as much
     * again, at most. */
    h->lane_max_bytes = (long long)buffered;
    sw_httpd_opts o = {
        .listen = {{cfg->listen, h->tls, cfg->max_connections, cfg->max_per_address}},
        .nlisten = 1,
        .pools = {{"api", cfg->threads, cfg->worker_nice}, {"admin", ADMIN_THREADS, 0}},
        .npools = h->has_admin ? 1 : 2,
        .header_timeout_ms = cfg->header_timeout_ms,
        .request_timeout_ms = cfg->request_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_head_bytes = (size_t)cfg->max_header_bytes,
        .head_limit = "[server] max_header_bytes",
        .max_buffered_bytes = buffered,
        .largest_body = (size_t)cfg->max_body_bytes,
        .trusted_proxies = cfg->trusted_proxies,
        /* The admin core's connections, workers and their Redis sockets. */
        .reserve_fds = h->has_admin ? 256 + 4 * ADMIN_THREADS + 16 : 0,
    };
    for (int i = 0; i < 2; i++) {
        h->front[i].h = h;
        h->front[i].admin = i == 1;
        atomic_init(&h->front[i].core, NULL);
    }
    for (int i = 0; i < 1 + h->has_admin; i++) {
        sw_front *f = &h->front[i];
        if (f->admin) {
            /* Operators' reads only: small, plain, and no body. */
            o.listen[0] = (sw_httpd_listen){cfg->admin_listen, NULL, 256, 0};
            o.pools[0] = (sw_httpd_pool_opts){"admin", ADMIN_THREADS, 0};
            o.npools = 1;
            o.max_buffered_bytes = (size_t)16 << 20;
            o.largest_body = 0;
            o.reserve_fds = 0;
        }
        sw_httpd_app app = {f, route, serve, done, worker_start, worker_stop, inline_ok};
        sw_httpd *core = sw_httpd_start(&o, &app, why, sizeof why);
        atomic_store_explicit(&f->core, core, memory_order_release);
        if (core == NULL) {
            sw_log_error("cannot listen", "reason=\"%s\" hint=\"is the port in use or the "
                         "address wrong? see [server] listen, admin_listen\"", why);
            goto fail;
        }
    }
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
        sw_log_error("bad tokens file", "reason=\"%s\" action=\"%s\"", a->errstr,
                     old ? "keeping the tokens loaded before" : "stopping");
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
    /* Both listeners close at once; the admin core (whose /metrics reads
     * the API core) is gone before the API core is freed. After this no
     * worker can enqueue any more. */
    sw_httpd *api = atomic_load(&h->front[0].core), *admin = atomic_load(&h->front[1].core);
    sw_waits_drain(h->waits);   /* no request waits through the stop */
    sw_httpd_shutdown(api);
    sw_httpd_shutdown(admin);
    atomic_store(&h->front[1].core, NULL);
    sw_httpd_stop(admin);
    atomic_store(&h->front[0].core, NULL);
    sw_httpd_stop(api);
    sw_waits_stop(h->waits);
    for (int k = 0; k < h->nlanes; k++)
        sw_pipeline_free(h->pipeline[k]);
    sw_tls_ctx_free(h->tls);
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
    free(h->key_flags);
    free(h->paused);
    free(h->flush_paused);
    sw_history_destroy(&h->history);
    pthread_mutex_destroy(&h->persist_lock);
    pthread_mutex_destroy(&h->ages_lock);
    free(h->ages_us);
    free(h);
}
