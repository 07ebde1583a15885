#ifndef SW_PARKING_H_
#define SW_PARKING_H_

#include "config.h"
#include "redis.h"

/* One drain's view of which sinks' flushing an operator paused (pause.h):
 * read at most once a second, its paused sinks' jobs are parked by the
 * drain's claims (park.h), and once a sink runs again its parked jobs go
 * back to the queue. A view a second stale is harmless: a job parked
 * after the resume is given back at the next look. */
typedef struct sw_parking sw_parking;

/* A view for a drain of `cfg`; `base` the configured prefix's connection
 * options when the drain's queue is a shard (NULL: the queue's own
 * connection reads the state). Pauses and resumes are logged once per
 * process. NULL when out of memory. */
sw_parking *sw_parking_new(const sw_config *cfg, const sw_redis_opts *base);
void sw_parking_free(sw_parking *p);   /* accepts NULL */

/* At most once a second: read the paused sinks again (an unreadable state
 * keeps the last known, logged once), then give back what `queue` holds
 * parked for sinks that run. */
void sw_parking_tick(sw_parking *p, sw_redis *queue);

/* The paused sinks' names, for a claim (processing.h): *n of them. */
const char *const *sw_parking_paused(const sw_parking *p, int *n);

#endif
