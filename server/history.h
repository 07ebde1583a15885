#ifndef SW_HISTORY_H_
#define SW_HISTORY_H_

#include <pthread.h>
#include <stdint.h>

#include "buf.h"

/* The queue's recent past for the dashboard's chart, kept in the server
 * so that it survives a page reload: a sample every SW_HISTORY_STEP_MS
 * for SW_HISTORY_SAMPLES (an hour), written by the main thread, read by
 * GET /v1/stats?history=1. Each server keeps its own (they see one
 * queue). */
#define SW_HISTORY_STEP_MS 10000
#define SW_HISTORY_SAMPLES 360

typedef struct sw_history_sample {
    int64_t t_ms;                         /* Redis' clock */
    long long depth, in_flight, accepted, committed;   /* totals: rates come from two */
    long long oldest_age_ms;              /* of the oldest queued job, 0 when none */
    long long p50_ms, p99_ms;             /* commit latency over the step, all
                                             sinks (latency.h); -1 none */
} sw_history_sample;

typedef struct sw_history {
    pthread_mutex_t lock;
    sw_history_sample s[SW_HISTORY_SAMPLES];
    int head, n;                          /* the next slot; how many are kept */
} sw_history;

void sw_history_init(sw_history *h);
void sw_history_destroy(sw_history *h);

/* Keep `s`, dropping the oldest past SW_HISTORY_SAMPLES. */
void sw_history_add(sw_history *h, const sw_history_sample *s);

/* Append the samples, oldest first, as a JSON array of
 * [t_ms, depth, in_flight, accepted, committed, oldest_age_ms, p50_ms,
 * p99_ms]. 0, or -1 (memory). */
__attribute__((warn_unused_result)) int sw_history_json(sw_history *h, sw_buf *out);

#endif
