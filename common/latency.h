#ifndef SW_LATENCY_H_
#define SW_LATENCY_H_

#include <stdint.h>

/* Commit latency, enqueue to commit, kept in Redis per sink so that every
 * server shows it (/metrics, the dashboard) whatever the flushers export:
 * the script that finishes a batch (lua/finish.lua) adds its committed
 * jobs to the stats hash, lat:<sink>:<i> a count per bucket i and
 * latsum:<sink> their milliseconds, so each job counts once. Pure. */

#define SW_LAT_NBUCKETS 16

/* Upper bounds of the buckets but the last (+Inf), in milliseconds. */
extern const long long sw_lat_bounds_ms[SW_LAT_NBUCKETS - 1];

/* The bucket of a latency of `ms` (negative counts as 0). */
int sw_lat_bucket(long long ms);

/* The q-quantile (0 < q <= 1) of a histogram of SW_LAT_NBUCKETS counts,
 * not cumulative, in ms: linear within its bucket (as Prometheus'
 * histogram_quantile), the last finite bound when it falls in +Inf. -1
 * when the counts are all 0. */
double sw_lat_quantile(const uint64_t *counts, double q);

#endif
