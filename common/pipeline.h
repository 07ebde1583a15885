#ifndef SW_PIPELINE_H_
#define SW_PIPELINE_H_

#include <semaphore.h>

#include "redisq.h"

/* Group commit to Redis. Many HTTP worker threads enqueue at once; one
 * lane thread takes every job waiting, sends them to Redis as one script
 * call (one round trip, all or nothing), and wakes each worker with its
 * result. While one call is on the wire the next group gathers, so under
 * load Redis sees a few large calls instead of one small call per
 * request, which is what keeps it off the critical path on small hosts.
 * Workers push onto a lock-free list: the hot path takes no lock. */
typedef struct sw_pipeline sw_pipeline;

typedef struct sw_pipeline_req {
    sw_redis_job job;               /* in: the caller keeps its memory alive;
                                       out: job.prev */
    enum sw_redis_err err;          /* out: SW_REDIS_OK or why not */
    char errstr[128];               /* out */
    sem_t done;                     /* private */
    struct sw_pipeline_req *next;   /* private */
} sw_pipeline_req;

/* Start the lane thread with its own Redis connection (connected lazily);
 * the ttls and the high-water mark go to sw_redis_enqueue. NULL when out
 * of memory or the thread cannot start. */
sw_pipeline *sw_pipeline_new(const sw_redis_opts *o, int ttl_s, int idem_ttl_s,
                             long max_queued);

/* Count the lane connection's reconnects in `counter` too. Call it before
 * the first sw_pipeline_enqueue. */
void sw_pipeline_count_reconnects(sw_pipeline *p, _Atomic uint64_t *counter);

/* Stop the lane thread after it has answered everything pushed so far;
 * call once no thread can call sw_pipeline_enqueue any more. Accepts NULL. */
void sw_pipeline_free(sw_pipeline *p);

/* Enqueue req->job and wait for Redis' answer (at most about two Redis
 * timeouts: the group on the wire, then ours). 0, or -1 with req->err and
 * req->errstr set (nothing enqueued, except after a lost reply: EIO). */
__attribute__((warn_unused_result)) int sw_pipeline_enqueue(sw_pipeline *p, sw_pipeline_req *req);

#endif
