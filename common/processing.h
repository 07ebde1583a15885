#ifndef SW_PROCESSING_H_
#define SW_PROCESSING_H_

#include <stddef.h>
#include <stdint.h>

#include "redis.h"

/* The flusher's side of the queue: its processing list <p>:processing:<fid>
 * and what moves jobs into and out of it (keys.h, lua/).
 *
 * Invariants, kept by the scripts and checked where they can be:
 *  - the processing list holds exactly the jobs this flusher has taken and
 *    not yet finished; the batch in the flusher's memory is its tail end,
 *    oldest job last. After any doubt the flusher re-reads the list
 *    (sw_proc_resume, peek) instead of trusting its memory;
 *  - <p>:inflight:<fid> is the sum of the records in that list, and
 *    <p>:stats inflight_records the sum over all flushers;
 *  - sw_proc_finish removes exactly the jobs it is given, and only when they
 *    are the list's tail in order; otherwise it changes nothing and says
 *    so, which also makes a repeat after a lost reply harmless. */

/* Each returned array of envelopes is a Redis reply that owns their
 * bytes; free it with sw_redis_reply_free() (redis.h). */

/* The configured sinks as a claim or a release sees them: their names,
 * and which ones' flushing is paused (pause.h). */
typedef struct sw_sink_view {
    const char *const *names;
    const unsigned char *paused;
    int n;
} sw_sink_view;

/* What one claim may take: whole jobs until the next would pass
 * `max_records` or `max_bytes`, at most `max_jobs`; with `oversize`, a
 * first job over the limits moves alone. The jobs of paused sinks are
 * parked instead (lua/claim.lua, park.h). */
typedef struct sw_claim_limits {
    long max_records, max_jobs, max_bytes;
    int oversize;
    sw_sink_view sinks;
} sw_claim_limits;

/* Move jobs into fid's processing list, oldest first, within `lim`: a
 * running sink's parked jobs first, then from the queue's tail. `*reply` gets the envelopes moved, oldest first.
 * 0; 1 nothing moved because the next job does not fit (*reply is NULL:
 * the batch is full); 2 nothing moved but jobs were parked (*reply is
 * NULL: claim again); or -1 (after EIO/EPROTO some may have moved: re-read
 * the list). */
__attribute__((warn_unused_result))
int sw_proc_claim(sw_redis *r, const char *fid, const sw_claim_limits *lim, void **reply);

/* fid's processing list, oldest first, with each job's delivery count.
 * `take`: after a restart or a takeover, count another delivery (see
 * lua/resume.lua for which jobs count); otherwise only read. `*reply` owns
 * the envelopes; `*deliveries` (malloc'ed, one per envelope) the counts.
 * 0, or -1. */
__attribute__((warn_unused_result))
int sw_proc_resume(sw_redis *r, const char *fid, int take, void **reply, long **deliveries);

/* The envelopes' i-th bytes in a reply from claim/resume. */
const char *sw_proc_item(const void *reply, size_t i, size_t *len);
size_t sw_proc_count(const void *reply);

/* One job of a finished batch. `list_id` is what the scripts read as its
 * id (sw_envelope_list_id); `job_id` names its status and dead-letter
 * entry. `status` is its compact status (status.h): "c..." committed, "f"
 * failed, "" leaves its status alone; a failed job also has its whole
 * status JSON in `json`, and why in `error`. */
typedef struct sw_proc_done {
    const char *list_id;
    size_t list_id_len;         /* 36, or 0 for an envelope without one */
    size_t env_len;
    const char *job_id;         /* its status and dead-letter entry */
    const char *status;
    size_t status_len;
    const char *json;           /* failed: the status JSON; else NULL */
    size_t json_len;
    const char *error;          /* NULL when committed */
    uint32_t records;           /* as the scripts count them (env_count) */
    const char *sink;           /* committed: its sink, and its commit */
    long long latency_ms;       /* latency (latency.h); NULL / ignored else */
} sw_proc_done;

/* Bounds of the dead-letter store. */
typedef struct sw_dead_bounds {
    long max_jobs;
    long long max_bytes;
} sw_dead_bounds;

/* Close the `njobs` oldest jobs of fid's processing list, oldest first in
 * `jobs`: statuses, dead letters, list tail, in-flight counts, the
 * committed total (the records of the jobs closed as committed: each job
 * is closed once, so each counts once) and the committed jobs' latencies
 * by sink (latency.h), atomically. Returns 1 done (*dropped: dead letters the
 * bound pushed out), 0 the list's tail is not these jobs (nothing
 * changed: re-read the list), -1 error (maybe done after EIO/EPROTO:
 * re-read too). */
__attribute__((warn_unused_result))
int sw_proc_finish(sw_redis *r, const char *fid, int njobs, const sw_proc_done *jobs,
                   int ttl_s, const sw_dead_bounds *bounds, long *dropped);

/* Give fid's whole processing list back, in order, at the tail flushers
 * take next: of the queue, or of a sink's parked list while it has one
 * (lua/release.lua). Returns the jobs given back, or -1. */
__attribute__((warn_unused_result))
long sw_proc_release(sw_redis *r, const char *fid, const sw_sink_view *sinks);

/* Move `victim`'s processing list to fid if victim's heartbeat expired and
 * fid holds none. 1 taken, 0 nothing to take, 2 fid is busy, -1. */
__attribute__((warn_unused_result))
int sw_proc_takeover(sw_redis *r, const char *fid, const char *victim);

/* Set fid's heartbeat to `value` for `ttl_s` (only if absent, with
 * `only_new`) and list fid in the registry. 1 set, 0 not set, -1. */
__attribute__((warn_unused_result))
int sw_proc_heartbeat(sw_redis *r, const char *fid, const char *value, int ttl_s, int only_new);

/* A queue shard's lease (keys.h, lua/lease.lua): with `hold`, take it
 * for `ttl_ms` when free or renew it when fid's; without, let it go when
 * fid's. 1 fid's (or let go), 0 another's, -1 error. */
__attribute__((warn_unused_result))
int sw_proc_lease(sw_redis *r, const char *fid, int64_t ttl_ms, int hold);

/* Keep fid a member for `ttl_ms` (0: leave) and count the live members
 * (<p>:members; `r` has the configured prefix). The count, or -1. */
__attribute__((warn_unused_result))
long sw_proc_members(sw_redis *r, const char *fid, int64_t ttl_ms);

/* fid's heartbeat value. 1 found, 0 none, -1 error. */
__attribute__((warn_unused_result))
int sw_proc_heartbeat_get(sw_redis *r, const char *fid, char *out, size_t outlen);

#endif
