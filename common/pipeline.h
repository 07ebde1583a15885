#ifndef SW_PIPELINE_H_
#define SW_PIPELINE_H_

#include <semaphore.h>
#include <stdatomic.h>

#include "queue.h"
#include "redis.h"

/* Group commit to Redis. Many HTTP worker threads enqueue at once; one
 * lane thread takes every job waiting, sends them to Redis as one script
 * call (one round trip, all or nothing, at most MAX_GROUP jobs and
 * MAX_GROUP_BYTES of envelopes), and wakes each worker with its result.
 * While one call is on the wire the next group gathers, so under load Redis
 * sees a few large calls instead of one small call per request. Workers
 * push onto a lock-free list: the hot path takes no lock.
 *
 * A worker waits a bounded time: if the lane has not taken its job by then
 * it withdraws it (never sent: a definite "not queued"); once taken, the
 * answer comes within the lane's own Redis timeout. */
typedef struct sw_pipeline sw_pipeline;

/* A request; make it with sw_pipeline_req_new and reuse it. */
typedef struct sw_pipeline_req {
    sw_queue_job job;               /* in: the caller keeps its memory alive;
                                       out: job.prev */
    enum sw_redis_err err;          /* out: SW_REDIS_OK or why not */
    char code[24];                  /* out: Redis' error code, or "" */
    char errstr[256];               /* out */
    sem_t done;                     /* private */
    atomic_int state;               /* private */
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

/* Count the lane connection's reconnects in `counter` too. Call it before
 * the first sw_pipeline_enqueue. */
void sw_pipeline_count_reconnects(sw_pipeline *p, _Atomic uint64_t *counter);

/* Stop the lane thread after it has answered everything pushed so far;
 * call once no thread can call sw_pipeline_enqueue any more. Accepts NULL. */
void sw_pipeline_free(sw_pipeline *p);

sw_pipeline_req *sw_pipeline_req_new(void);     /* NULL when out of memory */
void sw_pipeline_req_free(sw_pipeline_req *r);  /* accepts NULL */

/* Enqueue (*req)->job and wait for Redis' answer. 0, or -1 with err,
 * code and errstr set (nothing enqueued, unless sw_redis_maybe_done(err)).
 * When the lane did not take the job within `wait_ms` the job is withdrawn
 * (err ECONNECT, surely not queued) and *req passes to the lane, which
 * frees it: *req is then set to a fresh request, or NULL when out of
 * memory. */
__attribute__((warn_unused_result))
int sw_pipeline_enqueue(sw_pipeline *p, sw_pipeline_req **req, int wait_ms);

#endif
