#ifndef SW_DEAD_H_
#define SW_DEAD_H_

#include <stddef.h>

#include "buf.h"
#include "redis.h"

/* The dead-letter store (keys.h): failed jobs with their envelope, error
 * and time, newest first, bounded by the flusher ([flusher] dead_max_jobs,
 * dead_max_bytes) as it adds to it. Entries that release 0.1 wrote (one
 * hash per job) are read too, and converted by sw_dead_convert_legacy. */

/* The newest `limit` dead job ids, as a reply array of strings (free with
 * sw_redis_reply_free). 0, or -1. */
__attribute__((warn_unused_result)) int sw_dead_ids(sw_redis *r, long limit, void **reply);
/* The same from position `start` (0 the newest), at most `count`: a long
 * store is read a page at a time, never in one command. */
__attribute__((warn_unused_result))
int sw_dead_ids_from(sw_redis *r, long start, long count, void **reply);

/* One dead job. The strings point into `reply`, freed by the caller. */
typedef struct sw_dead_job {
    const char *error, *failed_at, *env;
    size_t error_len, failed_at_len, env_len;
    void *reply;          /* private: what owns the bytes */
    sw_buf info;          /* private */
} sw_dead_job;

/* Read dead job `job_id`. 1 found, 0 no such dead job, -1 error. Free
 * `out` with sw_dead_job_free() after 1. */
__attribute__((warn_unused_result))
int sw_dead_get(sw_redis *r, const char *job_id, sw_dead_job *out);
void sw_dead_job_free(sw_dead_job *d);   /* accepts NULL */

/* Put a dead job back on the queue with a "queued" status and a fresh
 * delivery count, atomically: `compact` (status.h) in its bucket while
 * that lives, else the whole JSON `status`. 1 done, 0 no such dead job,
 * -1. */
__attribute__((warn_unused_result))
int sw_dead_requeue(sw_redis *r, const char *job_id, const char *status, const char *compact,
                    int ttl_s);

/* Read dead job `job_id`, build its "queued" status and requeue it (as
 * sw_dead_requeue). 1 done, 0 no such dead job, -1 error (an undecodable
 * envelope too: drop it instead) with the reason in r. */
__attribute__((warn_unused_result))
int sw_dead_requeue_job(sw_redis *r, const char *job_id, int ttl_s);

/* Forget a dead job (its status stays "failed"). 1 done, 0 none, -1. */
__attribute__((warn_unused_result)) int sw_dead_drop(sw_redis *r, const char *job_id);

/* Move every dead letter still in release 0.1's layout into the bounded
 * store. Returns how many moved, or -1. */
__attribute__((warn_unused_result)) long sw_dead_convert_legacy(sw_redis *r);

#endif
