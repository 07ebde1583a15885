#ifndef SW_STATUS_H_
#define SW_STATUS_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A job's status: the JSON object GET /v1/jobs/{id} answers, and the
 * compact form Redis keeps it in (keys.h: <p>:st:*).
 *
 * Compact form, one field of a bucket hash per job (the field is the id's
 * 16 bytes): "q<records> <sink>" while queued, "c<records> <sink> <ms>"
 * once committed (<ms> after the enqueue time, which the id itself
 * carries), "f" once failed: the whole JSON, error and all, is then kept
 * at <p>:job:<id> (failures are rare, their reasons long). About 25 bytes
 * a job, so a bucket of ~32 jobs stays a listpack in Redis (under ~50
 * bytes a job in all, against ~360 for a key of its own). Pure. */
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

/* The compact value of a job in state 'q' or 'c' ('c' with `delta_ms`,
 * commit time minus enqueue time), into `out` (replacing its contents).
 * 0, or -1 when out of memory. */
__attribute__((warn_unused_result))
int sw_status_compact(sw_buf *out, char state, long long records, const char *sink,
                      long long delta_ms);

/* The JSON of job `job_id` from its compact value `v` (n bytes): 1 done,
 * 0 `v` is "f" (read the JSON at <p>:job:<id>) or not a compact value,
 * -1 out of memory. */
__attribute__((warn_unused_result))
int sw_status_expand(sw_buf *out, const char *job_id, const char *v, size_t n);

/* The bucket shift a new job id should carry (jobid.h), so that one
 * bucket holds about SW_STATUS_BUCKET_JOBS jobs at the rate this process
 * has been creating them: chosen from the last second's count, 0 (1 ms
 * buckets) to 15 (32.8 s). Thread-safe, lock-free; `now_ms` is Unix ms. */
#define SW_STATUS_BUCKET_JOBS 32
int sw_status_shift(int64_t now_ms);

/* The Unix ms and shift of the last job sw_status_shift() counted (0 ms:
 * none yet), for sampling its bucket. */
void sw_status_last(int64_t *ms, int *shift);

#endif
