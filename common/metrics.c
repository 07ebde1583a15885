#include "metrics.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>

#include "queue.h"

void sw_histogram_observe(sw_histogram *h, double v)
{
    assert(h->nbounds <= SW_HIST_MAX_BUCKETS);
    int i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    sw_metrics_add(&h->counts[i], 1);
    if (v > 0)
        sw_metrics_add(&h->sum_ns, (uint64_t)llround(v * 1e9));
}

int sw_metrics_header(sw_buf *out, const char *name, const char *type, const char *help)
{
    return sw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int sw_metrics_sample(sw_buf *out, const char *name, const char *labels, double value)
{
    /* Counters print as whole numbers; gauges with fractions get enough
     * digits for a person without float noise. */
    char num[40];
    if (value == floor(value) && fabs(value) < 1e15)
        snprintf(num, sizeof num, "%.0f", value);
    else
        snprintf(num, sizeof num, "%.15g", value);
    if (labels[0] != '\0')
        return sw_buf_printf(out, "%s{%s} %s\n", name, labels, num);
    return sw_buf_printf(out, "%s %s\n", name, num);
}

int sw_metrics_histogram(sw_buf *out, const char *name, const char *labels,
                         const sw_histogram *h)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        int rc = i < h->nbounds
                     ? sw_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                                     h->bounds[i], (unsigned long long)cum)
                     : sw_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
                                     sep, (unsigned long long)cum);
        if (rc != 0)
            return -1;
    }
    double sum = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
    if (labels[0]) {
        if (sw_buf_printf(out, "%s_sum{%s} %.15g\n%s_count{%s} %llu\n", name, labels, sum, name,
                          labels, (unsigned long long)cum) != 0)
            return -1;
    } else if (sw_buf_printf(out, "%s_sum %.15g\n%s_count %llu\n", name, sum, name,
                             (unsigned long long)cum) != 0) {
        return -1;
    }
    return 0;
}

int sw_metrics_redirects(sw_buf *out, _Atomic uint64_t c[3])
{
    static const char *const kind[3] = {"tryagain", "moved", "ask"};
    char labels[32];
    int rc = sw_metrics_header(out, "spillway_redis_redirects_total", "counter",
                               "Redis Cluster redirections met and followed, by kind.");
    for (int i = 0; i < 3; i++) {
        snprintf(labels, sizeof labels, "kind=\"%s\"", kind[i]);
        rc |= sw_metrics_sample(out, "spillway_redis_redirects_total", labels,
                                (double)atomic_load(&c[i]));
    }
    return rc;
}

int sw_metrics_shards(sw_buf *out, const sw_queue_stats *per, int n)
{
    char label[32];
    int rc = sw_metrics_header(out, "spillway_queue_shard_depth_records", "gauge",
                               "Records waiting in one queue shard ([redis] shards).");
    for (int k = 0; k < n; k++) {
        snprintf(label, sizeof label, "shard=\"%d\"", k);
        rc |= sw_metrics_sample(out, "spillway_queue_shard_depth_records", label,
                                (double)per[k].queued_records);
    }
    rc |= sw_metrics_header(out, "spillway_queue_shard_in_flight_records", "gauge",
                            "Records flushers hold from one queue shard.");
    for (int k = 0; k < n; k++) {
        snprintf(label, sizeof label, "shard=\"%d\"", k);
        rc |= sw_metrics_sample(out, "spillway_queue_shard_in_flight_records", label,
                                (double)per[k].inflight_records);
    }
    return rc;
}
