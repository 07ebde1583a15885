#ifndef SW_WAITS_H_
#define SW_WAITS_H_

#include <stdint.h>

#include "config.h"

/* Requests waiting for a job to finish (GET /v1/jobs/{id}?wait=N). A
 * waiting request holds its worker thread, so at most `max` wait at once
 * (past it: 429). Each waits on a condition variable of its own slot,
 * woken by a reader thread per queue shard that follows the shard's
 * <p>:done stream (waitlist.h): the server polls no status while it
 * waits. */
typedef struct sw_waits sw_waits;

/* Start the readers for cfg's queues. NULL when out of memory or a
 * thread could not start. */
sw_waits *sw_waits_start(const sw_config *cfg, int max);
void sw_waits_stop(sw_waits *w);   /* accepts NULL; waiters wake */

/* Take a slot to wait for `job_id`: 0 with *slot, or -1 when all `max`
 * are taken. */
__attribute__((warn_unused_result))
int sw_waits_enter(sw_waits *w, const char *job_id, int *slot);

/* Wait until the job's finish is read, the monotonic `deadline_ms`, or
 * the server drains. 1 finished, 0 not (time is up, or draining). */
int sw_waits_wait(sw_waits *w, int slot, int64_t deadline_ms);

/* Give the slot back. */
void sw_waits_leave(sw_waits *w, int slot);

/* Wake every waiter and answer the ones to come at once (lame duck). */
void sw_waits_drain(sw_waits *w);

/* How many wait now. */
int sw_waits_count(sw_waits *w);

#endif
