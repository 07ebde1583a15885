/* The operators' endpoints that ask Redis: GET /readyz and /metrics (on
 * the admin pool). /healthz and /ui are answered in http.c's router. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "http_metrics.h"
#include "process.h"
#include "queue.h"

static const char *const route_names[R_COUNT] = {
    "/v1/sinks/{sink}/records", "/v1/jobs/{job_id}", "/v1/queue", "/v1/stats", "/ui",
    "/healthz", "/readyz", "/metrics", "/v1/admin/...", "/v1/jobs/lookup",
    "/v1/openapi.json", "other"};


static const char *const reject_names[REJ_COUNT] = {
    "validation", "too_large", "backpressure", "redis_down", "idempotency_conflict",
    "unauthorized", "forbidden", "timeout", "server_busy", "paused"};

const int sw_api_codes[SW_NCODES] = {200, 202, 400, 401, 403, 404, 405, 408, 409, 411,
                                     413, 415, 422, 429, 431, 500, 501, 503, 505};

int sw_api_code_index(int status)
{
    int i = 0;
    while (i < SW_NCODES && sw_api_codes[i] != status)
        i++;
    return i;
}

/* The one word a not-ready answer leads with: Redis' own error code
 * (READONLY, CROSSSLOT, MOVED, NOSCRIPT, OOM, ...), or what befell the
 * connection. */
static const char *redis_cause(const sw_redis *r)
{
    if (r->code[0] != '\0')
        return r->code;
    switch (r->err) {
    case SW_REDIS_ECONNECT: return "unreachable";
    case SW_REDIS_EIO: return "timeout";
    case SW_REDIS_EOOM: return "OOM";
    case SW_REDIS_ENOMEM: return "out-of-memory-here";
    default: return "protocol";
    }
}

/* Ready: the queue's own read-only script runs on a master that takes
 * writes, and Redis may not evict queued jobs. A PING would answer from
 * a replica, a cluster node owning other slots, or a server without our
 * scripts' commands. The body says what a 202 is worth under Redis'
 * persistence settings, or why Spillway is not ready. */
void sw_api_readyz(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    sw_buf *o = &w->out;
    if (atomic_load(&h->draining)) {
        sw_api_problem(x, 503, "shutting-down", "Shutting down",
                       "this server is stopping: send new requests to another one", NULL);
        return;
    }
    if (!atomic_load(&h->layout_ok)) {
        sw_api_layout_unconfirmed(h, x, "not-ready");
        return;
    }
    /* Every shard: a job may go to any of them. */
    for (int k = 0; k < w->shards->n; k++) {
        sw_redis *r = w->shards->q[k];
        sw_queue_stats st;
        if (sw_queue_stats_get(r, &st) != 0 || sw_redis_writable(r) != 0) {
            char shard[32] = "";
            if (w->shards->sharded)
                snprintf(shard, sizeof shard, " shard %d", k);
            sw_problem p = {0};
            sw_problem_set(&p, 503, "not-ready", "Not ready",
                           "Redis%s: %s (%s); writes would fail here until it is fixed", shard,
                           redis_cause(r), r->errstr);
            sw_api_send_problem(x, &p, "Retry-After: 1\r\n");
            return;
        }
    }
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
    if (rc != 0) {
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    sw_api_json(x, evicting ? 503 : 200, NULL, o);
}

static int requests(sw_http *h, sw_buf *o)
{
    char labels[160];
    int rc = 0;
    rc |= sw_metrics_header(o, "spillway_http_requests_total", "counter",
                            "HTTP requests answered, by route and status code.");
    for (int r = 0; r < R_COUNT; r++) {
        for (int i = 0; i <= SW_NCODES; i++) {
            uint64_t v = atomic_load_explicit(&h->requests[r][i], memory_order_relaxed);
            if (v == 0)
                continue;
            if (i < SW_NCODES)
                snprintf(labels, sizeof labels, "route=\"%s\",code=\"%d\"", route_names[r],
                         sw_api_codes[i]);
            else
                snprintf(labels, sizeof labels, "route=\"%s\",code=\"other\"", route_names[r]);
            rc |= sw_metrics_sample(o, "spillway_http_requests_total", labels, (double)v);
        }
    }
    rc |= sw_metrics_header(o, "spillway_http_request_duration_seconds", "histogram",
                            "Time to answer an HTTP request, from its complete head, by route.");
    for (int r = 0; r < R_COUNT; r++) {
        snprintf(labels, sizeof labels, "route=\"%s\"", route_names[r]);
        rc |= sw_metrics_histogram(o, "spillway_http_request_duration_seconds", labels,
                                   &h->latency[r]);
    }
    return rc;
}

/* A gauge per sink from flags the main thread sets. */
/* One series per sink, the sink's value v[k]. */
static int by_sink(sw_http *h, sw_buf *o, const char *name, const char *type, const char *help,
                   const double *v)
{
    char labels[160];
    int rc = sw_metrics_header(o, name, type, help);
    for (int k = 0; k < h->cfg->nsinks; k++) {
        snprintf(labels, sizeof labels, "sink=\"%s\"", h->cfg->sinks[k].name);
        rc |= sw_metrics_sample(o, name, labels, v[k]);
    }
    return rc;
}

static int accepted(sw_http *h, sw_buf *o)
{
    char labels[160];
    int n = h->cfg->nsinks, rc = 0;
    double *v = calloc((size_t)n + 1, sizeof *v);
    if (v == NULL)
        return -1;
    for (int k = 0; k < n; k++)
        v[k] = (double)atomic_load(&h->jobs_by_sink[k]);
    rc |= by_sink(h, o, "spillway_jobs_accepted_total", "counter",
                  "Jobs accepted (202) and queued, by sink.", v);
    for (int k = 0; k < n; k++)
        v[k] = (double)atomic_load(&h->records_by_sink[k]);
    rc |= by_sink(h, o, "spillway_records_accepted_total", "counter",
                  "Records accepted and queued, by sink.", v);
    for (int k = 0; k < n; k++)
        v[k] = atomic_load(&h->paused[k]);
    rc |= by_sink(h, o, "spillway_sink_paused", "gauge",
                  "1 while an operator has paused the sink's intake (POST 503).", v);
    for (int k = 0; k < n; k++)
        v[k] = atomic_load(&h->flush_paused[k]);
    rc |= by_sink(h, o, "spillway_sink_flush_paused", "gauge",
                  "1 while an operator has paused the sink's flushing (its jobs are parked).", v);
    free(v);
    rc |= sw_metrics_header(o, "spillway_jobs_waiting", "gauge",
                            "GET /v1/jobs/{id}?wait=N requests waiting now (at most [server] "
                            "max_waiting).");
    rc |= sw_metrics_sample(o, "spillway_jobs_waiting", "", sw_waits_count(h->waits));
    rc |= sw_metrics_header(o, "spillway_requests_rejected_total", "counter",
                            "POST requests refused, by reason.");
    for (int i = 0; i < REJ_COUNT; i++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", reject_names[i]);
        rc |= sw_metrics_sample(o, "spillway_requests_rejected_total", labels,
                                (double)atomic_load(&h->rejected[i]));
    }
    return rc;
}

/* Flushers with a live heartbeat, by id, over every shard (a flusher
 * draining several shards counts once): -1 when Redis did not answer. */
static long live_flushers(sw_worker *w)
{
    sw_buf b = {0};
    long n = 0;
    json_t *seen = json_object();
    for (int k = 0; k < w->shards->n && n >= 0; k++) {
        sw_buf_reset(&b);
        int m = seen ? sw_queue_live_flushers(w->shards->q[k], &b) : -1;
        if (m < 0) {
            n = -1;
            break;
        }
        for (const char *id = b.data; m-- > 0; id += strlen(id) + 1) {
            if (json_object_get(seen, id) == NULL) {
                json_object_set_new(seen, id, json_true());
                n++;
            }
        }
    }
    json_decref(seen);
    sw_buf_free(&b);
    return n;
}

/* One sink's commit-latency histogram from the queue's counts. */
static int latency_histogram(sw_buf *o, const char *sink, const sw_sink_figures *f)
{
    char labels[200];
    uint64_t cum = 0;
    int rc = 0;
    for (int i = 0; i < SW_LAT_NBUCKETS; i++) {
        cum += f->lat[i];
        if (i < SW_LAT_NBUCKETS - 1)
            snprintf(labels, sizeof labels, "sink=\"%s\",le=\"%g\"", sink,
                     (double)sw_lat_bounds_ms[i] / 1000);
        else
            snprintf(labels, sizeof labels, "sink=\"%s\",le=\"+Inf\"", sink);
        rc |= sw_metrics_sample(o, "spillway_sink_commit_latency_seconds_bucket", labels,
                                (double)cum);
    }
    snprintf(labels, sizeof labels, "sink=\"%s\"", sink);
    rc |= sw_metrics_sample(o, "spillway_sink_commit_latency_seconds_sum", labels,
                            (double)f->lat_sum_ms / 1000);
    rc |= sw_metrics_sample(o, "spillway_sink_commit_latency_seconds_count", labels, (double)cum);
    return rc;
}

/* The per-sink figures the queue keeps (queue.h): depth once exact,
 * parked records, the oldest job's age, commit latency. */
static int sink_metrics(sw_http *h, sw_worker *w, sw_buf *o)
{
    int n = h->cfg->nsinks, rc = 0;
    sw_sink_figures *fig = calloc((size_t)n + 1, sizeof *fig);
    int64_t *oldest = calloc((size_t)n + 1, sizeof *oldest);
    double *v = calloc((size_t)n + 1, sizeof *v);
    int known = fig && oldest && v ? sw_api_sink_figures(h, w, fig, oldest) : -1;
    int64_t now_us = sw_clock_now_us();
    for (int k = 0; known == 1 && k < n; k++)
        v[k] = (double)fig[k].depth;
    if (known == 1)
        rc |= by_sink(h, o, "spillway_queue_sink_depth_records", "gauge",
                      "Records waiting, by sink, parked ones included (the queue's view: "
                      "aggregate with max).", v);
    if (known >= 0) {
        for (int k = 0; k < n; k++)
            v[k] = (double)fig[k].parked;
        rc |= by_sink(h, o, "spillway_queue_sink_parked_records", "gauge",
                      "Records set aside while the sink's flushing is paused (the queue's "
                      "view: aggregate with max).", v);
        for (int k = 0; k < n; k++)
            v[k] = oldest[k] > 0 && now_us > oldest[k] ? (double)(now_us - oldest[k]) / 1e6 : 0;
        rc |= by_sink(h, o, "spillway_queue_sink_oldest_age_seconds", "gauge",
                      "Age of the sink's oldest waiting job, parked ones included (past the "
                      "256 jobs at the queue's oldest end, at most this).", v);
        rc |= sw_metrics_header(o, "spillway_sink_commit_latency_seconds", "histogram",
                                "Enqueue to commit, by sink, of every job committed, kept in "
                                "Redis by the flushers (the queue's view: aggregate with max).");
        for (int k = 0; k < n; k++)
            rc |= latency_histogram(o, h->cfg->sinks[k].name, &fig[k]);
    }
    free(fig);
    free(oldest);
    free(v);
    return rc;
}

/* Would a write be queued now: the layout confirmed, Redis not evicting,
 * every shard's master writable (with min_replica_acks, replicas
 * attached). An OOM shows only on a write: spillway_requests_rejected_total
 * {reason="redis_down"} counts those. */
static int writable(sw_http *h, sw_worker *w)
{
    if (!atomic_load(&h->layout_ok) || atomic_load(&h->evicting))
        return 0;
    for (int k = 0; k < w->shards->n; k++)
        if (sw_redis_writable(w->shards->q[k]) != 0)
            return 0;
    return 1;
}

static int redis(sw_http *h, sw_worker *w, sw_buf *o)
{
    char labels[160];
    int rc = 0;
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
    long long used = atomic_load(&h->redis_used), max = atomic_load(&h->redis_max);
    if (used > 0) {
        rc |= sw_metrics_header(o, "spillway_redis_used_memory_bytes", "gauge",
                                "Memory Redis uses (INFO used_memory), read every second.");
        rc |= sw_metrics_sample(o, "spillway_redis_used_memory_bytes", "", (double)used);
        rc |= sw_metrics_header(o, "spillway_redis_maxmemory_bytes", "gauge",
                                "Redis' maxmemory (0: none set, so no memory backpressure).");
        rc |= sw_metrics_sample(o, "spillway_redis_maxmemory_bytes", "", (double)max);
    }
    if (used > 0 && max > 0 && h->cfg->max_redis_memory_percent > 0) {
        rc |= sw_metrics_header(o, "spillway_redis_memory_headroom_bytes", "gauge",
                                "Bytes Redis may still grow before POST answers 429 "
                                "([server] max_redis_memory_percent of maxmemory).");
        rc |= sw_metrics_sample(o, "spillway_redis_memory_headroom_bytes", "",
                                (double)(max / 100 * h->cfg->max_redis_memory_percent - used));
    }
    double per_job = atomic_load(&h->status_bytes);
    if (per_job > 0) {
        rc |= sw_metrics_header(o, "spillway_redis_status_bytes_per_job", "gauge",
                                "Redis memory one retained job status costs, sampled from a "
                                "recent status bucket (MEMORY USAGE over its entries).");
        rc |= sw_metrics_sample(o, "spillway_redis_status_bytes_per_job", "", per_job);
    }
    rc |= sw_metrics_header(o, "spillway_redis_lane_jobs", "gauge",
                            "Writes handed to the Redis lane and not answered yet.");
    rc |= sw_metrics_sample(o, "spillway_redis_lane_jobs", "", (double)atomic_load(&h->lane_jobs));
    rc |= sw_metrics_header(o, "spillway_redis_lane_bytes", "gauge",
                            "Bytes those writes hold (503 server-busy past the request body "
                            "budget).");
    rc |= sw_metrics_sample(o, "spillway_redis_lane_bytes", "",
                            (double)atomic_load(&h->lane_bytes));
    sw_queue_stats st, per[SW_SHARDS_MAX];
    sw_redis *failed;
    int up = sw_shards_stats(w->shards, &st, per, &failed) == 0;
    rc |= sw_metrics_header(o, "spillway_redis_up", "gauge",
                            "1 when the last Redis command from this scrape succeeded.");
    rc |= sw_metrics_sample(o, "spillway_redis_up", "", up);
    rc |= sw_metrics_header(o, "spillway_redis_writable", "gauge",
                            "1 when this server would queue a write now: queue layout "
                            "confirmed, no eviction policy, every shard's master writable.");
    rc |= sw_metrics_sample(o, "spillway_redis_writable", "", up && writable(h, w));
    if (!up)
        return rc;
    long live = live_flushers(w);
    if (live >= 0) {
        rc |= sw_metrics_header(o, "spillway_flushers_live", "gauge",
                                "Flushers whose heartbeat in Redis is live (the queue's view: "
                                "every server reports the same; aggregate with max).");
        rc |= sw_metrics_sample(o, "spillway_flushers_live", "", (double)live);
    }
    rc |= sw_metrics_header(o, "spillway_queue_depth_records", "gauge",
                            "Records waiting in the queue (the queue's view: every server "
                            "reports the same; aggregate with max, not sum).");
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
    rc |= sink_metrics(h, w, o);
    rc |= sw_metrics_header(o, "spillway_queue_oldest_age_seconds", "gauge",
                            "Age of the oldest waiting job.");
    rc |= sw_metrics_sample(o, "spillway_queue_oldest_age_seconds", "",
                            sw_queue_oldest_age(&st, sw_clock_now_us()));
    if (w->shards->sharded)
        rc |= sw_metrics_shards(o, per, w->shards->n);
    return rc;
}

void sw_api_metrics(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    static const char *const listeners[] = {"api", "admin"};
    sw_buf *o = &w->out;
    char labels[160];
    int rc = 0;
    sw_httpd_stats hs;
    sw_buf_reset(o);
    rc |= sw_metrics_header(o, "spillway_build_info", "gauge", "Version of this server.");
    snprintf(labels, sizeof labels, "program=\"spillway-server\",version=\"%s\"", SW_VERSION);
    rc |= sw_metrics_sample(o, "spillway_build_info", labels, 1);
    rc |= sw_process_metrics(o);
    rc |= sw_metrics_header(o, "spillway_redis_reconnects_total", "counter",
                            "Redis connections made again after a loss (all threads).");
    rc |= sw_metrics_sample(o, "spillway_redis_reconnects_total", "",
                            (double)atomic_load(&h->redis_reconnects));
    rc |= sw_metrics_redirects(o, h->redis_redirects);
    rc |= requests(h, o);
    sw_httpd *api = atomic_load_explicit(&h->front[0].core, memory_order_acquire);
    sw_httpd *admin = atomic_load_explicit(&h->front[1].core, memory_order_acquire);
    memset(&hs, 0, sizeof hs);
    if (api)
        sw_httpd_stats_get(api, &hs);
    if (admin) {
        /* The admin core's listener and pool beside the API's. */
        sw_httpd_stats as;
        sw_httpd_stats_get(admin, &as);
        hs.listen[hs.nlisten++] = as.listen[0];
        hs.pool_name[hs.npools] = as.pool_name[0];
        hs.pool[hs.npools++] = as.pool[0];
        hs.accepted += as.accepted;
        hs.refused_per_address += as.refused_per_address;
        hs.refused_full += as.refused_full;
        hs.closed_idle += as.closed_idle;
        hs.timeouts += as.timeouts;
        hs.malformed += as.malformed;
    }
    rc |= sw_http_metrics(&hs, listeners, o);
    rc |= accepted(h, o);
    rc |= redis(h, w, o);
    if (rc != 0) {
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    sw_api_text(x, 200, "text/plain; version=0.0.4; charset=utf-8", o->data, o->len);
}
