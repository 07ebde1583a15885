#ifndef SW_METRICS_H_
#define SW_METRICS_H_

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

/* Lock-free counters and histograms, rendered in the Prometheus text
 * exposition format. Updates are relaxed atomics: the hot path takes no
 * lock, and a scrape reads a value that may be a few updates old. */

#define SW_HIST_MAX_BUCKETS 24

typedef struct sw_histogram {
    const double *bounds;   /* upper bounds, ascending, in base units */
    int nbounds;
    _Atomic uint64_t counts[SW_HIST_MAX_BUCKETS + 1];  /* last one is +Inf */
    _Atomic uint64_t sum_ns;                          /* sum, in 1e-9 units */
} sw_histogram;

static inline void sw_metrics_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Record one observation `v` (in the histogram's base unit). */
void sw_histogram_observe(sw_histogram *h, double v);

/* Append "# HELP" and "# TYPE" lines. 0, or -1 when out of memory. */
__attribute__((warn_unused_result))
int sw_metrics_header(sw_buf *out, const char *name, const char *type, const char *help);

/* Append one sample line; `labels` is "" or e.g. "sink=\"orders\"". */
__attribute__((warn_unused_result))
int sw_metrics_sample(sw_buf *out, const char *name, const char *labels, double value);

/* Append spillway_redis_redirects_total by kind: c[0] TRYAGAIN, c[1]
 * MOVED, c[2] ASK (as counted by the Redis adapter in cluster mode). */
__attribute__((warn_unused_result))
int sw_metrics_redirects(sw_buf *out, _Atomic uint64_t c[3]);

/* Append the per-shard gauges of `n` queue shards (both daemons):
 * spillway_queue_shard_depth_records and _in_flight_records{shard}. Apart
 * from the totals, so sum() over those still counts each record once. */
struct sw_queue_stats;
__attribute__((warn_unused_result))
int sw_metrics_shards(sw_buf *out, const struct sw_queue_stats *per, int n);

/* Append the _bucket, _sum and _count lines of `h`. */
__attribute__((warn_unused_result))
int sw_metrics_histogram(sw_buf *out, const char *name, const char *labels,
                         const sw_histogram *h);

#endif
