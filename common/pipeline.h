#ifndef SW_PIPELINE_H_
#define SW_PIPELINE_H_

#include <stdint.h>

#include "queue.h"
#include "redis.h"

/* Group commit to Redis. Many HTTP worker threads submit jobs at once;
 * one lane thread takes every job waiting, sends them to Redis as one
 * script call (one round trip, all or nothing, at most MAX_GROUP jobs and
 * MAX_GROUP_BYTES of envelopes), and calls each job's on_done with the
 * result. While one call is on the wire the next group gathers, so under
 * load Redis sees a few large calls instead of one small call per
 * request. Submitting pushes onto a lock-free list and returns at once:
 * the hot path takes no lock and no worker waits on Redis.
 *
 * A job waits a bounded time: if the lane has not taken it by then it is
 * answered "not queued" (never sent); once taken, the answer comes within
 * the lane's own Redis timeout. */
typedef struct sw_pipeline sw_pipeline;

/* A request; the caller owns its memory until on_done. */
typedef struct sw_pipeline_req {
    sw_queue_job job;               /* in: the caller keeps its memory alive;
                                       out: job.prev */
    enum sw_redis_err err;          /* out: SW_REDIS_OK or why not */
    char code[24];                  /* out: Redis' error code, or "" */
    char errstr[256];               /* out */
    /* Called on the lane thread with the answer; the request is the
     * callback's from then on. */
    void (*on_done)(struct sw_pipeline_req *r);
    int64_t deadline_ms;            /* private */
    struct sw_pipeline_req *next;   /* private */
} sw_pipeline_req;

/* A sink shape the lane records in Redis (sw_queue_register_shape) on each
 * new connection, before it enqueues anything there. */
typedef struct sw_pipeline_shape {
    uint64_t fingerprint;
    const char *columns;
} sw_pipeline_shape;

/* Start the lane thread with its own Redis connection (connected lazily);
 * the ttls and the high-water mark go to sw_queue_enqueue. `shapes` (with
 * `nshapes` entries) must outlive the pipeline. NULL when out of memory
 * or the thread cannot start. */
sw_pipeline *sw_pipeline_new(const sw_redis_opts *o, int ttl_s, int idem_ttl_s,
                             long max_queued, const sw_pipeline_shape *shapes, int nshapes);

/* Count the lane connection's reconnects in `counter` too, and its
 * cluster redirections in `redirects` (redis.h). Call it before the first
 * sw_pipeline_submit. */
void sw_pipeline_count_reconnects(sw_pipeline *p, _Atomic uint64_t *counter,
                                  _Atomic uint64_t *redirects);

/* Stop the lane thread after it has answered everything submitted so far;
 * call once no thread can call sw_pipeline_submit any more. Accepts NULL. */
void sw_pipeline_free(sw_pipeline *p);

/* Enqueue req->job without waiting: the lane calls req->on_done(req) on
 * its own thread with the answer: err SW_REDIS_OK (job.prev: the value
 * already under its idempotency key, or ""), or why not, with code and
 * errstr (nothing enqueued, unless sw_redis_maybe_done(err)). A job the
 * lane has not taken within `wait_ms` is answered ECONNECT, never sent. */
void sw_pipeline_submit(sw_pipeline *p, sw_pipeline_req *req, int wait_ms);

#endif
