#ifndef SW_REDISQ_H_
#define SW_REDISQ_H_

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The queue in Redis, behind a thin hiredis adapter. One sw_redis per
 * thread: hiredis contexts are not thread-safe.
 *
 * Keys (all under the configured prefix):
 *   <p>:queue               list of envelopes; LPUSH in, taken from the tail
 *   <p>:processing:<id>     the envelopes one flusher holds (its batch)
 *   <p>:inflight:<id>       records in that list
 *   <p>:heartbeat:<id>      "host pid" of the live flusher <id>, with a TTL
 *   <p>:deliveries          hash: job id -> times handed to a flusher
 *   <p>:flushers            set of flusher ids seen (the registry)
 *   <p>:job:<job_id>        the job's status as the JSON object GET
 *                           /v1/jobs/{id} answers; expires after status_ttl_s
 *   <p>:stats               hash: queued_records, inflight_records,
 *                           accepted_records, committed_records (totals)
 *   <p>:dead                list of ids of failed jobs, newest first
 *   <p>:dead:<job_id>       hash: envelope, error, failed_at, records
 * Every change that spans keys runs as one Lua script, so counters and
 * lists move together and a crash cannot leave them apart. */

enum sw_redis_err {
    SW_REDIS_OK = 0,
    SW_REDIS_EIO,      /* cannot connect, timed out, or connection lost */
    SW_REDIS_EOOM,     /* Redis refused the write: maxmemory reached */
    SW_REDIS_EFULL,    /* the queue is over [server] max_queue_records */
    SW_REDIS_EREPLY,   /* an unexpected reply or a script error */
};

/* Where and how to connect. The strings are copied. */
typedef struct sw_redis_opts {
    const char *host;
    int port;
    int timeout_ms;
    const char *prefix;
    const char *user;        /* ACL user, or "" / NULL for the default */
    const char *password;    /* "" / NULL: no AUTH */
} sw_redis_opts;

typedef struct sw_redis {
    enum sw_redis_err err;
    char errstr[128];
    void *ctx;                 /* redisContext, NULL while disconnected */
    char host[256];
    int port;
    int timeout_ms;
    char prefix[64];
    char user[128], password[256];
    char k_queue[96], k_stats[96], k_dead[96], k_job[96], k_deadp[96], k_deliveries[96];
    char k_flushers[96];
    char sha[10][41];           /* loaded scripts, "" until loaded */
    int64_t next_connect_ms;   /* do not retry connecting before this */
    int connected_once;
    _Atomic uint64_t *reconnects;  /* optional: counts connects after the first */
} sw_redis;

typedef struct sw_queue_stats {
    long long queued_records;
    long long inflight_records;
    long long queued_jobs;
    long long dead_jobs;
    long long oldest_enqueued_us;   /* 0 when the queue is empty */
} sw_queue_stats;

/* A new, not yet connected adapter; NULL when out of memory. Connects
 * (and authenticates, when o->password is set) lazily on first use and
 * again after any I/O error. */
sw_redis *sw_redis_new(const sw_redis_opts *o);
void sw_redis_free(sw_redis *r);   /* accepts NULL */

/* Connect now if not connected. 0, or -1 with err/errstr set. */
__attribute__((warn_unused_result)) int sw_redis_connect(sw_redis *r);

/* PING. 0, or -1. */
__attribute__((warn_unused_result)) int sw_redis_ping(sw_redis *r);

/* One job to enqueue: its envelope and its status JSON (with
 * "status":"queued"), and optionally a client's idempotency key for the
 * sink with the value to store under it. The caller owns the memory. */
typedef struct sw_redis_job {
    const char *job_id;
    const char *sink;
    long nrecords;
    const char *env;
    size_t env_len;
    const char *status;
    size_t status_len;
    const char *idem_key;     /* NULL = none */
    const char *idem_value;
    char prev[160];           /* out: the value already under idem_key, or "" */
} sw_redis_job;

/* Append `njobs` envelopes to the queue in order and store their statuses,
 * atomically, in one round trip. A job whose idempotency key is already
 * taken is not enqueued: its `prev` receives the stored value. Returns 0,
 * or -1 with err: EFULL when the queue holds `max_queued` records or more
 * (0 = no limit), EOOM, EREPLY, or EIO (nothing was enqueued, unless the
 * reply was lost after the script ran). */
__attribute__((warn_unused_result))
int sw_redis_enqueue(sw_redis *r, int njobs, sw_redis_job *jobs, int ttl_s, int idem_ttl_s,
                     long max_queued);

/* Fetch a job's status JSON into `out` (replacing its contents).
 * 1 found, 0 unknown or expired, -1 error. */
__attribute__((warn_unused_result)) int sw_redis_status(sw_redis *r, const char *job_id, sw_buf *out);

/* Queue depth figures from O(1) commands. 0, or -1. */
__attribute__((warn_unused_result)) int sw_redis_stats(sw_redis *r, sw_queue_stats *out);

/* Flusher `fid`'s operations. Each counts deliveries: a job handed to
 * flushers more than `max_deliveries` times goes to the dead-letter list
 * (with that reason) instead of being handed out again.
 *
 * claim: move jobs from the queue tail into fid's processing list until
 * they hold at least `max_records` records or the queue is empty (a job is
 * never split; a larger job moves alone), at most `max_jobs` jobs. `*reply`
 * gets the redisReply array of envelopes, oldest first; free it with
 * sw_redis_reply_free. 0, or -1. */
__attribute__((warn_unused_result))
int sw_redis_claim(sw_redis *r, const char *fid, int max_deliveries, long max_records,
                   long max_jobs, void **reply);

/* Take up fid's processing list again (after a restart or a takeover):
 * another delivery of each job in it. `*reply` as for claim. 0, or -1. */
__attribute__((warn_unused_result))
int sw_redis_resume(sw_redis *r, const char *fid, int max_deliveries, void **reply);

/* fid's processing list as it is, oldest first (no delivery counted). */
__attribute__((warn_unused_result)) int sw_redis_processing(sw_redis *r, const char *fid, void **reply);

/* One job of a finished batch: its final status JSON (see status.h); for a
 * failed job also why and its envelope, kept in the dead-letter list. */
typedef struct sw_redis_done {
    const char *job_id;
    const char *status;
    size_t status_len;
    const char *error;       /* NULL when committed */
    const char *env;
    size_t env_len;
} sw_redis_done;

/* Close fid's batch: store each job's final status (unless it expired),
 * dead-letter the failed ones, drop the processing list, take its records
 * off the in-flight count and add `committed_records` to the committed
 * total, atomically. 0, or -1. */
__attribute__((warn_unused_result))
int sw_redis_finish(sw_redis *r, const char *fid, int njobs, const sw_redis_done *jobs,
                    long long committed_records, int ttl_s);

/* Move `victim`'s processing list to fid if victim's heartbeat expired and
 * fid holds no batch. 1 taken, 0 nothing to take, 2 fid is busy, -1. */
__attribute__((warn_unused_result))
int sw_redis_takeover(sw_redis *r, const char *fid, const char *victim);

/* Set fid's heartbeat to `value` for `ttl_s` (only if absent, with
 * `only_new`) and list fid in the registry. 1 set, 0 not set (present),
 * -1 error. */
__attribute__((warn_unused_result))
int sw_redis_heartbeat(sw_redis *r, const char *fid, const char *value, int ttl_s,
                       int only_new);

/* fid's heartbeat value. 1 found, 0 none, -1 error. */
__attribute__((warn_unused_result))
int sw_redis_heartbeat_get(sw_redis *r, const char *fid, char *out, size_t outlen);

/* Ids in the flusher registry: live flushers, and dead ones until their
 * processing list has been taken over. Returns how many (at most `max`),
 * or -1. */
__attribute__((warn_unused_result)) int sw_redis_flusher_ids(sw_redis *r, char (*ids)[64], int max);

/* What a 202 is worth: Redis' persistence and eviction settings. */
typedef struct sw_redis_durability {
    char appendonly[16];
    char appendfsync[16];
    char policy[32];        /* maxmemory-policy */
} sw_redis_persistence;

/* Read them with CONFIG GET. 0, or -1 (also when CONFIG is disabled). */
__attribute__((warn_unused_result))
int sw_redis_read_persistence(sw_redis *r, sw_redis_persistence *d);

/* One sentence on what can be lost under `d`, for logs and /readyz. */
const char *sw_redis_persistence_text(const sw_redis_persistence *d);

/* 1 when the eviction policy may evict any key, queued jobs included
 * (allkeys-*). volatile-* policies touch only keys with a TTL: job
 * statuses and idempotency keys, never the queue. */
int sw_redis_persistence_evicts(const sw_redis_persistence *d);

/* The dashboard's figures as one JSON object (see script_overview):
 * totals, queue gauges, flushers with heartbeats, newest failed jobs.
 * Replaces `out`'s contents. 0, or -1. */
__attribute__((warn_unused_result))
int sw_redis_overview(sw_redis *r, int failed_limit, sw_buf *out);

/* The newest `limit` dead-lettered job ids, as a reply array. 0, or -1. */
__attribute__((warn_unused_result)) int sw_redis_dead_ids(sw_redis *r, long limit, void **reply);

/* A dead job's error, failed_at and envelope, as a 3-element reply array.
 * 1 found, 0 no such dead job, -1 error. */
__attribute__((warn_unused_result))
int sw_redis_dead_get(sw_redis *r, const char *job_id, void **reply);

/* Put a dead job back on the queue with `status` (its "queued" JSON) and a
 * fresh delivery count, atomically. 1 done, 0 no such dead job, -1. */
__attribute__((warn_unused_result))
int sw_redis_dead_requeue(sw_redis *r, const char *job_id, const char *status, int ttl_s);

/* Forget a dead job (its status stays "failed"). 1 done, 0 none, -1. */
__attribute__((warn_unused_result)) int sw_redis_dead_drop(sw_redis *r, const char *job_id);

/* Elements of a reply array from claim/processing. */
size_t sw_redis_reply_len(const void *reply);
const char *sw_redis_reply_item(const void *reply, size_t i, size_t *len);
void sw_redis_reply_free(void *reply);   /* accepts NULL */

#endif
