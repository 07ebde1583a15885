#ifndef SW_WAITLIST_H_
#define SW_WAITLIST_H_

#include <stddef.h>
#include <stdint.h>

#include "redis.h"

/* The Redis side of waiting for a job to finish (GET /v1/jobs/{id}?wait=N):
 * a waiting client's job id goes into <p>:waiters with the Unix ms until
 * which it waits; the scripts that finish jobs (lua/finish.lua,
 * lua/purge.lua) put those of their jobs found there in one entry of the
 * <p>:done stream; every server reads the stream and wakes its waiters.
 * A job's queue is its shard's (keys.h). */

/* Mark `job_id` as waited for until `until_ms` (a later mark wins). 0,
 * or -1. */
__attribute__((warn_unused_result))
int sw_waitlist_mark(sw_redis *r, const char *job_id, int64_t until_ms);

/* Forget marks whose wait ended before `now_ms`. 0, or -1. */
__attribute__((warn_unused_result)) int sw_waitlist_sweep(sw_redis *r, int64_t now_ms);

/* The id of the stream's newest entry into `last` (64 bytes), "0-0"
 * when it has none: where a reader starts, so that nothing added from
 * then on is missed ("$" would be read anew at each call). 0, or -1. */
__attribute__((warn_unused_result)) int sw_waitlist_tail(sw_redis *r, char last[64]);

/* Called with each job id read from the stream (not NUL-terminated). */
typedef void (*sw_waitlist_fn)(void *ctx, const char *id, size_t len);

/* Read the stream's entries after `last` (an entry id; "$": only new
 * ones), blocking up to `block_ms`, calling `fn` for each job id; `last`
 * (64 bytes) becomes the last entry read. Returns the entries read (0:
 * none came), or -1 with the error in r. */
__attribute__((warn_unused_result))
int sw_waitlist_read(sw_redis *r, char last[64], int block_ms, sw_waitlist_fn fn, void *ctx);

#endif
