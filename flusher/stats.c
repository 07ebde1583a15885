#include "stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "process.h"
#include "queue.h"
#include "redis.h"
#include "shards.h"

#define MAX_CLASSES 32

static const double batch_bounds[] = {1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000};
/* Seconds, 1 ms to 1 h: a p99 under the lowest bucket, or a stall past the
 * highest, would read as the bucket's bound. */
static const double time_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
#define NTIME_BOUNDS (int)(sizeof time_bounds / sizeof time_bounds[0])

static struct {
    const sw_config *cfg;
    sw_httpd *httpd;
    _Atomic uint64_t *jobs, *records, *failed;     /* per sink */
    _Atomic uint64_t batches, pg_reconnects, redis_reconnects, isolations, dead_dropped;
    _Atomic uint64_t redis_redirects[3];
    sw_histogram batch_records, flush_seconds;
    sw_histogram *e2e_seconds;                     /* per sink */
    atomic_int pg_down;                            /* drains that cannot reach it */
    pthread_mutex_t lock;                          /* the class tables */
    pthread_mutex_t redis_lock;                    /* the listener's connection */
    char classes[MAX_CLASSES][3];
    uint64_t retries[MAX_CLASSES], failures[MAX_CLASSES];
    sw_shards *q;            /* the scrape's connections, one per queue */
    atomic_int shards_held;
} st = {.lock = PTHREAD_MUTEX_INITIALIZER, .redis_lock = PTHREAD_MUTEX_INITIALIZER};

static void by_class(uint64_t *table, const char *sqlstate)
{
    char cls[3] = "--";
    if (sqlstate && strlen(sqlstate) >= 2)
        memcpy(cls, sqlstate, 2);
    pthread_mutex_lock(&st.lock);
    for (int i = 0; i < MAX_CLASSES; i++) {
        if (st.classes[i][0] == '\0')
            memcpy(st.classes[i], cls, 3);
        if (strcmp(st.classes[i], cls) == 0) {
            table[i]++;
            break;
        }
    }
    pthread_mutex_unlock(&st.lock);
}

void sw_stats_retry(const char *sqlstate)
{
    by_class(st.retries, sqlstate);
}

void sw_stats_failure(const char *sqlstate)
{
    by_class(st.failures, sqlstate);
}

void sw_stats_pg_reconnect(void)
{
    sw_metrics_add(&st.pg_reconnects, 1);
}

void sw_stats_pg_down(int delta)
{
    atomic_fetch_add(&st.pg_down, delta);
}

void sw_stats_shards_held(int n)
{
    atomic_store(&st.shards_held, n);
}

_Atomic uint64_t *sw_stats_redis_reconnects(void)
{
    return &st.redis_reconnects;
}

_Atomic uint64_t *sw_stats_redis_redirects(void)
{
    return st.redis_redirects;
}

void sw_stats_isolation(void)
{
    sw_metrics_add(&st.isolations, 1);
}

void sw_stats_dead_dropped(long n)
{
    sw_metrics_add(&st.dead_dropped, (uint64_t)n);
}

void sw_stats_batch(const sw_batch *b, int n, double seconds, int64_t now_us)
{
    if (st.jobs == NULL)
        return;
    sw_metrics_add(&st.batches, 1);
    double records = 0;
    for (int i = 0; i < n; i++)
        records += b->jobs[i].env.nrecords;
    sw_histogram_observe(&st.batch_records, records);
    sw_histogram_observe(&st.flush_seconds, seconds);
    for (int i = 0; i < n; i++) {
        const sw_batch_job *j = &b->jobs[i];
        if (j->sink_idx < 0)
            continue;
        if (j->state == SW_JOB_FAILED) {
            sw_metrics_add(&st.failed[j->sink_idx], 1);
            continue;
        }
        if (!j->fresh)
            continue;   /* the ledger had it: committed before, counted then */
        sw_metrics_add(&st.jobs[j->sink_idx], 1);
        sw_metrics_add(&st.records[j->sink_idx], j->env.nrecords);
        sw_histogram_observe(&st.e2e_seconds[j->sink_idx],
                             (double)(now_us - j->env.enqueued_us) / 1e6);
    }
}

static int render(sw_buf *o)
{
    const sw_config *cfg = st.cfg;
    char labels[160];
    int rc = 0;
    rc |= sw_metrics_header(o, "spillway_build_info", "gauge", "Version of this flusher.");
    snprintf(labels, sizeof labels, "program=\"spillway-flusher\",version=\"%s\"", SW_VERSION);
    rc |= sw_metrics_sample(o, "spillway_build_info", labels, 1);
    rc |= sw_process_metrics(o);
    struct {
        const char *name, *help;
        _Atomic uint64_t *per_sink;
    } sinks[] = {
        {"spillway_jobs_committed_total", "Jobs committed to PostgreSQL, by sink.", st.jobs},
        {"spillway_records_committed_total", "Records committed to PostgreSQL, by sink.", st.records},
        {"spillway_jobs_failed_total", "Jobs failed for their data and dead-lettered, by sink.", st.failed},
    };
    for (size_t m = 0; m < sizeof sinks / sizeof sinks[0]; m++) {
        rc |= sw_metrics_header(o, sinks[m].name, "counter", sinks[m].help);
        for (int k = 0; k < cfg->nsinks; k++) {
            snprintf(labels, sizeof labels, "sink=\"%s\"", cfg->sinks[k].name);
            rc |= sw_metrics_sample(o, sinks[m].name, labels, (double)atomic_load(&sinks[m].per_sink[k]));
        }
    }
    rc |= sw_metrics_header(o, "spillway_batches_committed_total", "counter",
                            "Batches committed (one transaction each; two when bad jobs had "
                            "to be isolated).");
    rc |= sw_metrics_sample(o, "spillway_batches_committed_total", "", (double)atomic_load(&st.batches));
    rc |= sw_metrics_header(o, "spillway_batches_isolated_total", "counter",
                            "Batches whose bad jobs were isolated, each job in a subtransaction.");
    rc |= sw_metrics_sample(o, "spillway_batches_isolated_total", "",
                            (double)atomic_load(&st.isolations));
    rc |= sw_metrics_header(o, "spillway_dead_letter_dropped_total", "counter",
                            "Dead letters this flusher removed because the store was over "
                            "dead_max_jobs or dead_max_bytes (oldest first).");
    rc |= sw_metrics_sample(o, "spillway_dead_letter_dropped_total", "",
                            (double)atomic_load(&st.dead_dropped));
    rc |= sw_metrics_header(o, "spillway_batch_records", "histogram", "Records per committed batch.");
    rc |= sw_metrics_histogram(o, "spillway_batch_records", "", &st.batch_records);
    rc |= sw_metrics_header(o, "spillway_flush_duration_seconds", "histogram",
                            "Time to commit a batch and close it in Redis.");
    rc |= sw_metrics_histogram(o, "spillway_flush_duration_seconds", "", &st.flush_seconds);
    rc |= sw_metrics_header(o, "spillway_end_to_end_latency_seconds", "histogram",
                            "Time from a job's 202 to its commit, by sink.");
    for (int k = 0; k < cfg->nsinks; k++) {
        snprintf(labels, sizeof labels, "sink=\"%s\"", cfg->sinks[k].name);
        rc |= sw_metrics_histogram(o, "spillway_end_to_end_latency_seconds", labels,
                                   &st.e2e_seconds[k]);
    }
    pthread_mutex_lock(&st.lock);
    rc |= sw_metrics_header(o, "spillway_flush_retries_total", "counter",
                            "Batch attempts that failed transiently and were retried, by SQLSTATE "
                            "class (-- = connection lost).");
    for (int i = 0; i < MAX_CLASSES && st.classes[i][0]; i++) {
        snprintf(labels, sizeof labels, "sqlstate_class=\"%s\"", st.classes[i]);
        rc |= sw_metrics_sample(o, "spillway_flush_retries_total", labels, (double)st.retries[i]);
    }
    rc |= sw_metrics_header(o, "spillway_flush_failures_total", "counter",
                            "Jobs failed for their data, by SQLSTATE class.");
    for (int i = 0; i < MAX_CLASSES && st.classes[i][0]; i++) {
        snprintf(labels, sizeof labels, "sqlstate_class=\"%s\"", st.classes[i]);
        rc |= sw_metrics_sample(o, "spillway_flush_failures_total", labels, (double)st.failures[i]);
    }
    pthread_mutex_unlock(&st.lock);
    /* A slow Redis delays only the scrape, never the flush loop, which
     * shares st.lock but not this one. The queue's gauges come from the
     * servers alone: every flusher exporting them too made sum() count
     * each job once per process. */
    int up = 1;
    pthread_mutex_lock(&st.redis_lock);
    for (int k = 0; k < st.q->n && up; k++)
        up = sw_redis_ping(st.q->q[k]) == 0;
    pthread_mutex_unlock(&st.redis_lock);
    rc |= sw_metrics_header(o, "spillway_postgres_reconnects_total", "counter",
                            "PostgreSQL connections made again after a loss.");
    rc |= sw_metrics_sample(o, "spillway_postgres_reconnects_total", "",
                            (double)atomic_load(&st.pg_reconnects));
    rc |= sw_metrics_header(o, "spillway_redis_reconnects_total", "counter",
                            "Redis connections made again after a loss.");
    rc |= sw_metrics_sample(o, "spillway_redis_reconnects_total", "",
                            (double)atomic_load(&st.redis_reconnects));
    rc |= sw_metrics_redirects(o, st.redis_redirects);
    rc |= sw_metrics_header(o, "spillway_redis_up", "gauge",
                            "1 when every queue shard's Redis answered this scrape's PING.");
    rc |= sw_metrics_sample(o, "spillway_redis_up", "", up);
    rc |= sw_metrics_header(o, "spillway_postgres_up", "gauge",
                            "0 while this flusher's last attempt to reach PostgreSQL failed "
                            "(connection refused or lost, not a statement refused for its "
                            "data).");
    rc |= sw_metrics_sample(o, "spillway_postgres_up", "", atomic_load(&st.pg_down) == 0);
    if (st.q->sharded) {
        rc |= sw_metrics_header(o, "spillway_flusher_shards_held", "gauge",
                                "Queue shards this flusher holds the lease of and drains.");
        rc |= sw_metrics_sample(o, "spillway_flusher_shards_held", "",
                                (double)atomic_load(&st.shards_held));
    }
    return rc ? -1 : 0;
}

/* The listener's router (its I/O thread): /healthz now, /metrics on the
 * one worker, which owns the scrape's Redis connection. */
static int route(void *user, sw_http_exchange *x)
{
    (void)user;
    int get = strcmp(x->method, "GET") == 0 || strcmp(x->method, "HEAD") == 0;
    const char *detail = "this listener serves GET /metrics and /healthz";
    int status = 404;
    if (strcmp(x->path, "/metrics") == 0 || strcmp(x->path, "/healthz") == 0) {
        if (get && strcmp(x->path, "/metrics") == 0)
            return 0;
        if (get) {
            /* On failure it stays unanswered, and the core says 500. */
            (void)!sw_http_reply(x, 200, "application/json", NULL, "{\"status\":\"ok\"}", 15);
            return SW_HTTPD_ANSWERED;
        }
        status = 405;
        detail = "this resource accepts only GET and HEAD";
    }
    sw_problem p = {0};
    sw_problem_set(&p, status, status == 404 ? "not-found" : "method-not-allowed",
                   status == 404 ? "Not found" : "Method not allowed", "%s", detail);
    (void)!sw_http_reply_problem(x, &p, status == 405 ? "Allow: GET, HEAD\r\n" : NULL);
    return SW_HTTPD_ANSWERED;
}

static void serve(void *user, void *worker, sw_http_exchange *x)
{
    (void)user;
    sw_buf *o = worker;
    if (o)
        sw_buf_reset(o);
    if (o == NULL || render(o) != 0) {
        sw_problem p = {0};
        sw_problem_set(&p, 500, "internal", "Internal error", "out of memory");
        if (sw_http_reply_problem(x, &p, NULL) != 0)
            x->status = 0;
        return;
    }
    if (sw_http_reply(x, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, o->data,
                      o->len) != 0)
        x->status = 0;
}

static void *worker_start(void *user, int pool)
{
    (void)user;
    (void)pool;
    return calloc(1, sizeof(sw_buf));
}

static void worker_stop(void *user, int pool, void *worker)
{
    (void)user;
    (void)pool;
    sw_buf_free(worker);
    free(worker);
}

int sw_stats_start(const sw_config *cfg)
{
    size_t n = (size_t)cfg->nsinks + 1;
    st.cfg = cfg;
    st.jobs = calloc(n, sizeof *st.jobs);
    st.records = calloc(n, sizeof *st.records);
    st.failed = calloc(n, sizeof *st.failed);
    st.batch_records = (sw_histogram){.bounds = batch_bounds, .nbounds = 10};
    st.flush_seconds = (sw_histogram){.bounds = time_bounds, .nbounds = NTIME_BOUNDS};
    st.e2e_seconds = calloc(n, sizeof *st.e2e_seconds);
    for (size_t k = 0; st.e2e_seconds && k < n; k++)
        st.e2e_seconds[k] = (sw_histogram){.bounds = time_bounds, .nbounds = NTIME_BOUNDS};
    sw_redis_opts ro = sw_config_redis(cfg);
    st.q = sw_shards_new(&ro, cfg->shards);
    if (st.jobs == NULL || st.records == NULL || st.failed == NULL || st.q == NULL ||
        st.e2e_seconds == NULL) {
        sw_log_error("out of memory", NULL);
        return -1;
    }
    if (cfg->flusher_metrics_listen[0] == '\0')
        return 0;
    /* One worker renders; a scraper that stalls holds a connection, not
     * the worker, and the server's timeouts apply. */
    sw_httpd_opts o = {
        .listen = {{cfg->flusher_metrics_listen, NULL, 64, 0}},
        .nlisten = 1,
        .pools = {{"metrics", 1, 0}},
        .npools = 1,
        .header_timeout_ms = cfg->header_timeout_ms,
        .request_timeout_ms = cfg->request_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_head_bytes = (size_t)cfg->max_header_bytes,
        .head_limit = "[server] max_header_bytes",
        .max_buffered_bytes = (size_t)16 << 20,
        .trusted_proxies = "",
    };
    sw_httpd_app app = {NULL, route, serve, NULL, worker_start, worker_stop, NULL};
    char why[256];
    st.httpd = sw_httpd_start(&o, &app, why, sizeof why);
    if (st.httpd == NULL) {
        sw_log_error("cannot listen for metrics", "reason=\"%s\" hint=\"set [flusher] "
                     "metrics_listen to a free address:port, one per flusher\"", why);
        return -1;
    }
    return 0;
}

void sw_stats_stop(void)
{
    sw_httpd_stop(st.httpd);
    st.httpd = NULL;
    sw_shards_free(st.q);
    free(st.jobs);
    free(st.records);
    free(st.failed);
    free(st.e2e_seconds);
    st.e2e_seconds = NULL;
    st.q = NULL;
    st.jobs = st.records = st.failed = NULL;
}
