#ifndef SW_STATS_H_
#define SW_STATS_H_

#include <stdint.h>

#include "batch.h"
#include "config.h"

/* The flusher's metrics and its small HTTP listener ([flusher]
 * metrics_listen): GET /metrics (Prometheus text) and GET /healthz. The
 * main loop records; the listener threads read atomics, and fetch queue
 * figures from Redis with a connection of their own. */

/* Start the listener (none when `cfg->flusher_metrics_listen` is empty).
 * 0, or -1 after logging why. */
__attribute__((warn_unused_result)) int sw_stats_start(const sw_config *cfg);
void sw_stats_stop(void);

/* A committed batch (the oldest n jobs of b): rows per sink from its
 * jobs, its duration, and each committed job's enqueue-to-commit latency. */
void sw_stats_batch(const sw_batch *b, int n, double seconds, int64_t now_us);

/* A batch whose bad jobs had to be isolated; dead letters pushed out of
 * the bounded store. */
void sw_stats_isolation(void);
void sw_stats_dead_dropped(long n);

/* A transient failure that will be retried, or a job failed for its data;
 * `sqlstate` may be "" (connection lost). */
void sw_stats_retry(const char *sqlstate);
void sw_stats_failure(const char *sqlstate);

/* A drain lost PostgreSQL (+1) or reached it again (-1): while any drain
 * cannot reach it, spillway_postgres_up is 0. */
void sw_stats_pg_down(int delta);

/* Queue shards this flusher drains now (lease.h). */
void sw_stats_shards_held(int n);

/* Counters for connections made again after a loss. */
void sw_stats_pg_reconnect(void);
_Atomic uint64_t *sw_stats_redis_reconnects(void);
/* The drain connection's cluster redirections (redis.h: [3]). */
_Atomic uint64_t *sw_stats_redis_redirects(void);

#endif
