#ifndef SW_LIVENESS_H_
#define SW_LIVENESS_H_

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

/* A flusher's proof of life, kept by a thread of its own with its own
 * Redis connection: the heartbeat (<p>:heartbeat:<fid>) every second, and
 * systemd's watchdog. So a flusher waiting in a long COMMIT or on a lock
 * stays alive and keeps its batch; only one that is gone, or stalled as a
 * process (SIGSTOP, or a main loop stuck past the time it announced), lets
 * its heartbeat lapse, and then another flusher takes its batch over. */

typedef struct sw_liveness sw_liveness;

/* Start the thread for flusher `fid`, whose heartbeat value is `value`
 * ("host pid"), on the queue `ro` names. With `lease` (a queue shard's
 * drain), it renews the shard's lease along with the heartbeat, and sets
 * *lease when the lease is another flusher's; systemd's watchdog is then
 * the lease holder's (lease.h). `stalled` (or NULL) mirrors whether the
 * loop looks stalled. NULL when it cannot start. */
sw_liveness *sw_liveness_start(const sw_config *cfg, const sw_redis_opts *ro, const char *fid,
                               const char *value, atomic_int *lease, atomic_int *stalled);

/* From the main loop: it may now be busy for up to `ms` (a PostgreSQL call
 * bounded by statement_timeout, say) without looking stalled. Accepts
 * NULL (before the thread runs). */
void sw_liveness_busy(sw_liveness *l, int64_t ms);

/* From the PostgreSQL thread (committer.h): its call may take up to `ms`;
 * a negative `ms` says it waits for work, which takes no time limit. The
 * flusher looks stalled when either thread is past what it announced. */
void sw_liveness_pg(sw_liveness *l, int64_t ms);

/* Monotonic ms before which this flusher should not judge others dead:
 * after its own heartbeat failed (Redis was away or restarting, so theirs
 * may have lapsed too), every flusher gets a full TTL to renew first. */
int64_t sw_liveness_quiet_until(const sw_liveness *l);

/* Stop the thread; with `lapse`, let the heartbeat expire at once (the
 * flusher holds nothing, so nobody need wait for it). Accepts NULL. */
void sw_liveness_stop(sw_liveness *l, int lapse);

#endif
