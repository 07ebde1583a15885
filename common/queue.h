#ifndef SW_QUEUE_H_
#define SW_QUEUE_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "latency.h"
#include "redis.h"

/* The queue's producer and observer side: what the server and spillwayctl
 * do with the keys in keys.h. Every change that spans keys is one script,
 * so counters and lists move together and a crash cannot leave them
 * apart. The flusher's side is processing.h, the dead letters dead.h. */

/* One job to enqueue: its envelope and its compact "queued" status
 * (status.h), and optionally a client's idempotency key (the full
 * Redis key, see sw_keys_idem) with the value to store under it. The
 * caller owns the memory. */
typedef struct sw_queue_job {
    const char *job_id;
    long nrecords;
    const char *env;
    size_t env_len;
    const char *status;       /* compact */
    size_t status_len;
    const char *idem_key;     /* NULL = none */
    const char *idem_value;
    const char *idem_legacy;  /* the key release 0.1 used, read too; NULL = none */
    char prev[160];           /* out: the value already under idem_key, or "" */
} sw_queue_job;

/* Append `njobs` envelopes to the queue in order and store their statuses
 * in their buckets, kept `ttl_s` plus the widest bucket's span,
 * atomically, in one round trip. A job whose idempotency key is already
 * taken is not enqueued: its `prev` receives the stored value. Returns 0,
 * or -1 with r->err: EFULL when the queue holds `max_queued` records or
 * more (0 = no limit), EOOM, EREFUSED, ECONNECT (nothing was enqueued), or
 * EIO / EPROTO (the jobs may have been enqueued). */
__attribute__((warn_unused_result))
int sw_queue_enqueue(sw_redis *r, int njobs, sw_queue_job *jobs, int ttl_s, int idem_ttl_s,
                     long max_queued);

/* Fetch a job's status JSON into `out` (replacing its contents): from its
 * bucket, or the whole JSON at <p>:job:<id> (failed jobs, and jobs of
 * releases before buckets), in one round trip. 1 found, 0 unknown or
 * expired, -1 error. */
__attribute__((warn_unused_result)) int sw_queue_status(sw_redis *r, const char *job_id, sw_buf *out);

/* What one job's status costs in Redis, sampled from the bucket that
 * jobs with `shift` made at Unix ms `ms` went to: MEMORY USAGE of the
 * bucket over its entries. 1 measured (*per_job), 0 no such bucket or
 * too few entries (under 16) to tell, -1. */
__attribute__((warn_unused_result))
int sw_queue_status_bytes(sw_redis *r, int64_t ms, int shift, double *per_job);

typedef struct sw_queue_stats {
    long long queued_records;
    long long inflight_records;
    long long queued_jobs;
    long long dead_jobs;
    long long oldest_enqueued_us;   /* 0 when the queue is empty */
} sw_queue_stats;

/* Seconds the oldest waiting job has waited at `now_us` (0 when none). */
double sw_queue_oldest_age(const sw_queue_stats *st, int64_t now_us);

/* What the stats hash knows of one sink. */
typedef struct sw_sink_figures {
    long long depth;      /* records waiting: in the queue list, and parked */
    long long parked;     /* of which parked (its flushing paused) */
    uint64_t lat[SW_LAT_NBUCKETS];   /* commit latencies (latency.h) */
    long long lat_sum_ms;
} sw_sink_figures;

/* Add this queue's figures of each of cfg's sinks to fig[k] (zero them
 * first): the queue list's records (q:<sink>, lua/prelude.lua
 * count_sinks) once they are exact, parked:<sink> (lua/claim.lua), and
 * the latencies lat:<sink>:<i>, latsum:<sink>. 1 added; 0 the list's
 * counts are not known yet (the queue has not been empty since they
 * came: depth is left out, the rest added); -1 with the error in r. */
struct sw_config;
__attribute__((warn_unused_result))
int sw_queue_sink_figures(sw_redis *r, const struct sw_config *cfg, sw_sink_figures *fig);

/* Jobs, and bytes, read at most at the queue's oldest end for the sinks'
 * oldest ages. */
#define SW_QUEUE_AGE_SCAN 256
#define SW_QUEUE_AGE_SCAN_BYTES (4 << 20)

/* Merge into oldest_us[k] (the smaller non-zero wins) the enqueue time of
 * each of cfg's sinks' oldest job waiting in this queue, parked ones
 * included (lua/ages.lua): exact when it is among the jobs read at the
 * queue's oldest end (SW_QUEUE_AGE_SCAN, or fewer once
 * SW_QUEUE_AGE_SCAN_BYTES are read) or parked; past them, the newest of
 * those (the job waited at most that long), for a sink with records in
 * the list by `here` (this queue's figures; NULL: not known, and such a
 * sink is left out). 0, or -1 with the error in r. */
__attribute__((warn_unused_result))
int sw_queue_sink_oldest(sw_redis *r, const struct sw_config *cfg, const sw_sink_figures *here,
                         int64_t *oldest_us);

/* Queue depth figures from O(1) commands. 0, or -1. */
__attribute__((warn_unused_result)) int sw_queue_stats_get(sw_redis *r, sw_queue_stats *out);

/* The dashboard's figures as one JSON object (lua/overview.lua): totals,
 * queue gauges, flushers with heartbeats, newest failed jobs. Replaces
 * `out`'s contents. 0, or -1. */
__attribute__((warn_unused_result))
int sw_queue_overview(sw_redis *r, int failed_limit, sw_buf *out);

/* Ids in the flusher registry (<p>:flushers): live flushers, and dead
 * ones until their processing list has been taken over. Returns how many
 * (at most `max`), or -1. */
__attribute__((warn_unused_result)) int sw_queue_flusher_ids(sw_redis *r, char (*ids)[64], int max);

/* The ids of the flushers in the registry whose heartbeat is alive,
 * each NUL-terminated, appended to `out` (at most 4,096 read). Returns
 * how many, or -1. */
__attribute__((warn_unused_result)) int sw_queue_live_flushers(sw_redis *r, sw_buf *out);

/* Record a sink's shape (its fingerprint and column list, see shape.h) in
 * <p>:shapes, so that a flusher running another definition can map its
 * jobs. Idempotent. 0, or -1. */
__attribute__((warn_unused_result))
int sw_queue_register_shape(sw_redis *r, uint64_t fingerprint, const char *columns);

/* The column list registered for `fingerprint` into `out`. 1 found,
 * 0 unknown, -1 error. */
__attribute__((warn_unused_result))
int sw_queue_shape(sw_redis *r, uint64_t fingerprint, sw_buf *out);

#endif
