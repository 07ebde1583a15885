#ifndef SW_PAUSE_H_
#define SW_PAUSE_H_

#include "buf.h"
#include "config.h"
#include "redis.h"

/* An operator pauses a sink's intake or its flushing, each on its own.
 *  - Intake: every server answers the sink's POSTs 503 sink-paused
 *    (nothing queued) until it is resumed; the jobs already queued still
 *    flush. Pausing, waiting for the queue to drain, changing the table
 *    and resuming is how a sink's columns change safely.
 *  - Flushing: the flushers set the sink's jobs aside as they reach them
 *    (park.h: its parked list) and flush every other sink's; resumed, the
 *    parked jobs go back to the queue's tail in their order. Parked jobs
 *    can be purged.
 * The state lives in Redis (<p>:paused, <p>:flush_paused, keys.h) under
 * the configured prefix, so every server and flusher follows it within a
 * second. */
enum sw_pause_what { SW_PAUSE_INTAKE, SW_PAUSE_FLUSH };

/* Pause `sink`'s intake or flushing, with a note for whoever looks (may
 * be ""). 0, or -1 with the error in r. */
__attribute__((warn_unused_result))
int sw_pause_set(sw_redis *r, enum sw_pause_what what, const char *sink, const char *note);

/* Resume it. 1 was paused, 0 was not, -1 error. */
__attribute__((warn_unused_result))
int sw_pause_clear(sw_redis *r, enum sw_pause_what what, const char *sink);

/* Which of cfg's sinks are paused: paused[k] 1 or 0 for each. 0, or -1
 * (paused untouched). */
__attribute__((warn_unused_result))
int sw_pause_flags(sw_redis *r, enum sw_pause_what what, const sw_config *cfg,
                   unsigned char *paused);

/* The pause record of `sink` ({"since","note"} as JSON) into `out`: 1
 * paused, 0 not, -1 error. */
__attribute__((warn_unused_result))
int sw_pause_get(sw_redis *r, enum sw_pause_what what, const char *sink, sw_buf *out);

#endif
