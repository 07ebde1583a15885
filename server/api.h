#ifndef SW_API_H_
#define SW_API_H_

#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "auth.h"
#include "history.h"
#include "waits.h"
#include "buf.h"
#include "config.h"
#include "http_exchange.h"
#include "http.h"
#include "httpd.h"
#include "metrics.h"
#include "pipeline.h"
#include "record.h"
#include "redis.h"
#include "shards.h"

/* What the server's handlers share: its state, the per-worker state, the
 * routes and the reply helpers. Internal to server/. */

enum sw_route { R_RECORDS, R_JOB, R_QUEUE, R_STATS, R_UI, R_HEALTHZ, R_READYZ, R_METRICS,
                R_ADMIN, R_LOOKUP, R_OPENAPI, R_OTHER, R_COUNT };

enum sw_reject { REJ_VALIDATION, REJ_TOO_LARGE, REJ_BACKPRESSURE, REJ_REDIS_DOWN,
                 REJ_CONFLICT, REJ_UNAUTHORIZED, REJ_FORBIDDEN, REJ_TIMEOUT, REJ_SERVER_BUSY,
                 REJ_PAUSED, REJ_COUNT };

/* The HTTP cores the server runs: the API's, and with [server]
 * admin_listen a second one of its own for probes, metrics and the
 * dashboard, so that nothing on the API port (a flood of TLS handshakes,
 * say) can delay them. Without admin_listen the API core serves those on
 * a pool of their own. */
typedef struct sw_front {
    struct sw_http *h;
    _Atomic(sw_httpd *) core;   /* set once started (the other core's
                                   /metrics may read it meanwhile) */
    int admin;                  /* the admin listener's core */
} sw_front;

/* The API core's pools; the admin core has only the admin pool, at 0. */
enum { POOL_API, POOL_ADMIN };

/* The status codes counted one by one in spillway_http_requests_total;
 * others count as "other" (index SW_NCODES). */
#define SW_NCODES 19
extern const int sw_api_codes[SW_NCODES];
int sw_api_code_index(int status);

struct sw_http {
    const sw_config *cfg;
    sw_front front[2];          /* the API's, and the admin listener's */
    struct ssl_ctx_st *tls;
    int has_admin;
    /* The tokens; NULL without tokens_file. Swapped whole by a reload;
     * each request reads the pointer once. */
    _Atomic(sw_auth *) auth;
    sw_auth **retired;        /* replaced by reloads, freed at stop */
    int nretired;
    sw_pipeline *pipeline[SW_SHARDS_MAX];   /* one Redis lane per queue shard */
    int nlanes;
    /* Per sink, which columns are its conflict key (SW_SINK_MAX_COLUMNS
     * flags each): what picks a keyed job's shard. */
    unsigned char (*key_flags)[SW_SINK_MAX_COLUMNS];
    _Atomic unsigned lane_next;   /* round robin for jobs without a key */
    sw_pipeline_shape *shapes;   /* per sink, recorded in Redis by the lane */
    sw_buf *shape_text;
    _Atomic uint64_t requests[R_COUNT][SW_NCODES + 1];
    _Atomic uint64_t rejected[REJ_COUNT];
    _Atomic uint64_t *jobs_by_sink, *records_by_sink;
    sw_histogram latency[R_COUNT];   /* by route */
    /* Redis persistence, set by the main thread; read by /readyz and
     * /metrics under the lock, and by POST through `evicting` alone. */
    pthread_mutex_t persist_lock;
    sw_redis_persistence persist;
    int persist_known;
    atomic_int evicting;
    /* Redis memory, from the main thread's INFO every second: POST reads
     * `memory_high` alone (429 while set). */
    atomic_int memory_high;
    atomic_int layout_ok;      /* the layout guard passed (main thread) */
    atomic_int writes_failing[SW_SHARDS_MAX];   /* per lane: the last enqueue failed */
    atomic_int draining;       /* SIGTERM seen: /readyz 503 (main thread) */
    atomic_int *paused;        /* per sink: intake paused (main thread, pause.h) */
    atomic_int *flush_paused;  /* per sink: flushing paused (the same) */
    sw_history history;        /* the dashboard chart's last hour */
    sw_waits *waits;           /* GET /v1/jobs/{id}?wait=N (waits.h) */
    /* Each sink's oldest waiting job (sw_api_sink_figures), read at most
     * every SW_AGES_EVERY_MS: it reads envelopes, not counters. */
    pthread_mutex_t ages_lock;
    int64_t ages_at_ms;        /* monotonic; 0 never */
    int64_t *ages_us;
    char layout_err[256];      /* why not yet, under persist_lock */
    _Atomic long long redis_used, redis_max;
    _Atomic double status_bytes;   /* per job, sampled; 0 unknown */
    _Atomic uint64_t redis_reconnects;
    _Atomic uint64_t redis_redirects[3];   /* redis.h: TRYAGAIN, MOVED, ASK */
    /* Writes handed to the Redis lane and not answered yet (their
     * envelopes' bytes): bounded by lane_max_bytes, past it 503. */
    _Atomic long long lane_bytes, lane_jobs;
    long long lane_max_bytes;
};

/* Per worker thread: made by the pool at start, so requests share
 * nothing and take no lock. */
typedef struct sw_worker {
    sw_shards *shards;        /* this thread's connections, one per queue */
    sw_buf out;
    sw_record_work work;      /* the body's reader */
    msgpack_sbuffer sb;       /* the envelope */
} sw_worker;

/* Reply helpers: each answers x and returns SW_HTTPD_ANSWERED, so route()
 * can `return problem(...)`. */
int sw_api_problem(sw_http_exchange *x, int status, const char *type, const char *title,
                   const char *detail, const char *extra);
int sw_api_send_problem(sw_http_exchange *x, const sw_problem *p, const char *extra);
int sw_api_json(sw_http_exchange *x, int status, const char *extra, const sw_buf *b);
int sw_api_text(sw_http_exchange *x, int status, const char *ctype, const char *body,
                size_t len);
int sw_api_method_not_allowed(sw_http_exchange *x, const char *allow);
/* A 503 (or 429) saying what Redis did with the call. */
int sw_api_unavailable(sw_http_exchange *x, enum sw_redis_err err, const char *code,
                       const char *errstr);
int sw_api_redis_unavailable(sw_http_exchange *x, const sw_redis *r);
/* A 503 of `type` while the layout guard has not passed (http.h). */
int sw_api_layout_unconfirmed(struct sw_http *h, sw_http_exchange *x, const char *type);

/* The handlers, on a worker. */
void sw_api_post_records(struct sw_http *h, sw_worker *w, sw_http_exchange *x);
void sw_api_get_job(struct sw_http *h, sw_worker *w, sw_http_exchange *x);
/* x->note of a job read on the admin listener: no ?wait there. */
extern const char sw_api_no_wait;
#define SW_API_NO_WAIT ((const void *)&sw_api_no_wait)
void sw_api_lookup_jobs(struct sw_http *h, sw_worker *w, sw_http_exchange *x);
void sw_api_get_queue(struct sw_http *h, sw_worker *w, sw_http_exchange *x);
void sw_api_get_stats(struct sw_http *h, sw_worker *w, sw_http_exchange *x);
void sw_api_readyz(struct sw_http *h, sw_worker *w, sw_http_exchange *x);
void sw_api_metrics(struct sw_http *h, sw_worker *w, sw_http_exchange *x);
void sw_api_admin(struct sw_http *h, sw_worker *w, sw_http_exchange *x);

/* Each sink's figures over every shard into fig[nsinks] (queue.h
 * sw_queue_sink_figures), and the enqueue time of its oldest waiting job
 * into oldest_us[nsinks] (0: none; sw_queue_sink_oldest). 1; 0 all but
 * the depths (a queue's counts are not exact yet); -1 a shard's Redis did
 * not answer. */
int sw_api_sink_figures(struct sw_http *h, sw_worker *w, sw_sink_figures *fig,
                        int64_t *oldest_us);
#define SW_AGES_EVERY_MS 2000

#endif
