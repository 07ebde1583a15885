#ifndef SW_COMMITTER_H_
#define SW_COMMITTER_H_

#include "batch.h"

/* The flusher's PostgreSQL thread. The main loop hands it the oldest
 * jobs of a batch and goes on with Redis (claiming the next batch,
 * closing the last one) while PostgreSQL commits: neither server waits
 * on the other.
 *
 * One batch at a time, and one owner at a time: from sw_committer_hand()
 * until its result is taken, the batch, and whatever the commit function
 * reaches (the PostgreSQL connection), belong to the thread; the main loop
 * touches neither. Batches are handed in queue order and committed in
 * that order. */

typedef struct sw_committer sw_committer;

/* Commit the oldest `n` jobs of `b`: 0 decided, -1 retry later. `fresh`:
 * a batch other than the last one handed (not a retry of it). */
typedef int (*sw_commit_fn)(void *ctx, sw_batch *b, int n, int fresh);

/* Start the thread. NULL when it cannot start. */
sw_committer *sw_committer_start(sw_commit_fn fn, void *ctx);

/* Hand jobs [0, n) of `b`; only when sw_committer_busy() is 0. */
void sw_committer_hand(sw_committer *c, sw_batch *b, int n, int fresh);

/* 1 from a hand-off until its result is taken. */
int sw_committer_busy(const sw_committer *c);

/* The result of the hand-off: 1 (into *rc) when the commit is over and
 * its result is taken (the thread is idle again), 0 when it still runs
 * after waiting up to `wait_ms`, or when nothing was handed. */
int sw_committer_result(sw_committer *c, int wait_ms, int *rc);

/* Wait for a running commit and let its result go. */
void sw_committer_drain(sw_committer *c);

/* Stop and join the thread (after any running commit). Accepts NULL. */
void sw_committer_stop(sw_committer *c);

#endif
