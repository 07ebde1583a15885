#ifndef SW_STATUS_H_
#define SW_STATUS_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A job's status as the JSON object GET /v1/jobs/{id} answers. The server
 * writes it "queued" at enqueue; the flusher overwrites it "committed" or
 * "failed". Stored as is in Redis, so a poll is one GET. Pure. */
typedef struct sw_status {
    const char *job_id;
    const char *status;        /* "queued" | "committed" | "failed" */
    const char *sink;
    long long records;
    int64_t enqueued_us;
    int64_t committed_us;      /* with "committed" */
    const char *error;         /* with "failed" */
} sw_status;

/* Replace `out`'s contents with the JSON of `st`. 0, or -1 when out of
 * memory. */
__attribute__((warn_unused_result)) int sw_status_json(sw_buf *out, const sw_status *st);

/* The sink named in a status JSON written by sw_status_json(): points into
 * `json` and sets *n, or NULL when there is none. Sink names have no
 * characters JSON escapes, so no decoding is needed. */
const char *sw_status_sink(const char *json, size_t len, size_t *n);

#endif
