#ifndef SW_DRAIN_H_
#define SW_DRAIN_H_

#include <signal.h>
#include <stdatomic.h>

#include "config.h"

/* The flusher's loop: claim jobs into the processing list, cut a batch at
 * batch_max_records, batch_max_bytes or flush_interval_ms (on this
 * flusher's own monotonic clock, from the first claim), commit it
 * (commit.h), then close it in Redis (processing.h).
 *
 * Redis is the truth: after any reply in doubt, and whenever finish finds
 * the processing list is not what this flusher holds, the batch is read
 * again from the list before anything else happens. A batch taken up
 * again after a crash whose oldest job had already been through two such
 * crashes is committed one job at a time, oldest first, so the job that
 * brings flushers down is found, and dead-lettered once it reaches
 * max_deliveries, while the jobs behind it commit. */

typedef struct sw_drain_opts {
    const sw_config *cfg;
    const char *heartbeat;          /* this flusher's "host pid" */
    volatile sig_atomic_t *stop;    /* the process stops */
    int shard;                      /* the queue shard drained; -1: the one
                                       queue of [redis] shards = 0 */
    /* With a shard (lease.h): set by its lease holder to let the shard go
     * (finish or give back the jobs in hand, then return), and by the
     * heartbeat thread when the lease turned out to be another's. */
    atomic_int *release;
    atomic_int *stalled;            /* out: 1 while the loop looks stalled */
} sw_drain_opts;

/* Run until *stop (or *release); on a stop with jobs in hand that cannot
 * be committed, they go back to the queue. Returns 0 after a clean stop,
 * 1 when it could not start, 2 when Redis holds another queue layout. */
int sw_drain_run(const sw_drain_opts *o);

#endif
