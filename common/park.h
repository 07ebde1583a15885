#ifndef SW_PARK_H_
#define SW_PARK_H_

#include "config.h"
#include "redis.h"
#include "shards.h"

/* Parked jobs: while a sink's flushing is paused (pause.h), the flushers'
 * claims set its jobs aside, as they reach them, in <p>:parked:<sink>
 * (keys.h, lua/claim.lua), so every other sink's jobs flush. Parked jobs
 * still count as queued (queued_records) and, per sink, as parked
 * (parked:<sink>). Invariant: every parked job of a sink is older than
 * each of its jobs still in the queue, since claims take from the tail
 * (and a release puts a stopping flusher's jobs at the parked list's
 * tail); so once the sink runs again, claims take its parked jobs, oldest
 * first, before any queued one. */

/* Purge `sink`'s parked jobs in this queue, on an operator's word: each
 * job's status turns "failed" with `reason` (kept `ttl_s`), and its
 * records leave the counts; nothing is dead-lettered (lua/purge.lua).
 * Purges at most the jobs parked when it starts, and at most `max_jobs`
 * (0: no limit), the oldest first, some hundreds per round trip, each
 * round all or nothing. Returns the jobs purged (*records: their
 * records), or -1 with the error in r (what was purged by then stays
 * purged: *records counts it). */
__attribute__((warn_unused_result))
long sw_park_purge(sw_redis *r, const char *sink, const char *reason, int ttl_s,
                   long max_jobs, long long *records);

/* What purging a sink did over every queue. */
typedef struct sw_purge_result {
    long jobs;                  /* purged */
    long long records;          /* their records */
    long long still_queued;     /* the sink's records still in the queues,
                                   parked as flushers reach them; -1 not
                                   known */
    long still_parked;          /* jobs left parked (past max_jobs) */
} sw_purge_result;

/* Purge `sink`'s parked jobs in every queue of `s` (sw_park_purge), at
 * most `max_jobs` in all (0: no limit), only while its flushing is
 * paused, which `base` (the configured prefix's connection) reads first.
 * 1 purged (maybe nothing) into *out; 0 its flushing is not paused
 * (nothing done: pause it first, so the purge and the flushers do not
 * race); -1 error in *failed (*out counts what was purged by then). */
__attribute__((warn_unused_result))
int sw_park_purge_sink(sw_redis *base, sw_shards *s, const sw_config *cfg, const char *sink,
                       const char *reason, long max_jobs, sw_purge_result *out,
                       sw_redis **failed);

/* How many jobs are parked for `sink` in this queue (LLEN), or -1. */
__attribute__((warn_unused_result)) long sw_park_jobs(sw_redis *r, const char *sink);

#endif
