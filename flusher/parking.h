#ifndef SW_PARKING_H_
#define SW_PARKING_H_

#include "config.h"
#include "processing.h"
#include "redis.h"

/* One drain's view of which sinks' flushing an operator paused (pause.h),
 * read at most once a second: its claims park a paused sink's jobs and
 * take a running sink's parked jobs first (lua/claim.lua), so a view a
 * second stale can delay a pause or a resume by that second, but cannot
 * reorder a sink's jobs. */
typedef struct sw_parking sw_parking;

/* A view for a drain of `cfg`; `base` the configured prefix's connection
 * options when the drain's queue is a shard (NULL: the queue's own
 * connection reads the state). Pauses and resumes are logged once per
 * process. NULL when out of memory. */
sw_parking *sw_parking_new(const sw_config *cfg, const sw_redis_opts *base);
void sw_parking_free(sw_parking *p);   /* accepts NULL */

/* At most once a second: read the paused sinks again. An unreadable state
 * keeps the last known (logged once). */
void sw_parking_tick(sw_parking *p, sw_redis *queue);

/* The sinks as claims and releases see them; NULL until the state has
 * been read once (a drain claims nothing before: it might flush a paused
 * sink). */
const sw_sink_view *sw_parking_view(const sw_parking *p);

/* The same whether read or not, for a release (only the names count). */
const sw_sink_view *sw_parking_sinks(const sw_parking *p);

#endif
