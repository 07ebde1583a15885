#ifndef SW_KEYS_H_
#define SW_KEYS_H_

#include <stddef.h>
#include <stdint.h>

/* Spillway's key layout in Redis, defined here once. Every name starts
 * with the configured prefix <p>; give it a hash tag ({spillway}) and all
 * of them share one Redis Cluster slot.
 *
 *   <p>:queue              list of envelopes: LPUSH in, taken from the tail
 *   <p>:stats              hash: queued_records (parked included),
 *                          inflight_records, accepted_records,
 *                          committed_records, dead_bytes, dead_dropped,
 *                          parked_records, purged_records (totals); per
 *                          sink q:<sink> (in the queue list) and
 *                          parked:<sink> (lua/prelude.lua, claim.lua)
 *   <p>:parked:<sink>      list of a sink's jobs set aside while its
 *                          flushing is paused, newest at the head
 *                          (park.h)
 *   <p>:st:<s>:<b>         hash: the compact statuses (status.h) of the
 *                          jobs whose id carries shift <s> (hex) and whose
 *                          Unix ms >> s is <b>; field: the id's 16 bytes.
 *                          Expires status_ttl_s after its last job's
 *                          enqueue, and again after its last finish
 *   <p>:job:<id>           the whole status JSON: of a failed job (its
 *                          compact entry is "f"), and of jobs queued by
 *                          releases before buckets; expires after
 *                          status_ttl_s
 *   <p>:idem:<sink>:<key>  an Idempotency-Key without tokens, and
 *   <p>:idem:<sink>@<scope>:<key>  with one (scope: from the caller's token)
 *   <p>:shapes             hash: sink shape fingerprint -> its column list
 *   <p>:processing:<fid>   the envelopes flusher <fid> holds, newest at the
 *                          head; its batch is the tail end
 *   <p>:inflight:<fid>     records in that list (always their sum)
 *   <p>:heartbeat:<fid>    "host pid" of the live flusher <fid>, with a TTL
 *   <p>:flushers           set of flusher ids (the registry)
 *   <p>:deliveries         hash: job id -> times its batch was taken up
 *                          again after its flusher stopped or vanished
 *   <p>:dead               list of failed job ids, newest first (bounded)
 *   <p>:deadenv            hash: failed job id -> its envelope
 *   <p>:deadinfo           hash: failed job id -> {"error","failed_at","records"}
 *   <p>:dead:<id>          a failed job as release 0.1 kept it (a hash of
 *                          envelope, error, failed_at, records); read, and
 *                          converted by the flusher at start-up
 *   <p>:layout             the queue shard count the data was written
 *                          with ("0": one queue); daemons configured with
 *                          another count refuse to start
 *   <p>:waiters            sorted set: job id -> Unix ms until which a
 *                          client waits for it (GET ?wait=N, waits.h)
 *   <p>:done               stream of finished jobs somebody waits for:
 *                          entries {ids: "id,id,..."}, capped (~10,000)
 *   <p>:seq                the last sequence number the enqueue script
 *                          gave a version 3 envelope (envelope.h)
 *
 * With [redis] shards = N, each shard k (0..N-1) is a whole queue of the
 * layout above under its own prefix {<b>:<k>}, <b> being the configured
 * prefix without braces: one hash tag, so one cluster slot, per shard.
 * Two more keys then serve the flushers:
 *   {<b>:<k>}:lease        the id of the flusher draining shard k, with a
 *                          TTL of heartbeat_ttl_s (lease.lua)
 *   <p>:members            sorted set: flusher id -> Redis time (ms) its
 *                          membership expires (members.lua); the live
 *                          count sets each flusher's share of the shards
 * <p>:layout and <p>:members stay under the configured prefix, and so
 * does
 *   <p>:paused             hash: sink -> {"since","note"} while an operator
 *                          has paused its intake (pause.h)
 *   <p>:flush_paused       the same for its flushing
 */

#define SW_KEY_MAX 192

typedef struct sw_keys {
    char prefix[64];
    char queue[SW_KEY_MAX], stats[SW_KEY_MAX], shapes[SW_KEY_MAX];
    char flushers[SW_KEY_MAX], deliveries[SW_KEY_MAX];
    char dead[SW_KEY_MAX], deadenv[SW_KEY_MAX], deadinfo[SW_KEY_MAX];
    char layout[SW_KEY_MAX], lease[SW_KEY_MAX], members[SW_KEY_MAX];
    char paused[SW_KEY_MAX], flush_paused[SW_KEY_MAX];
    char waiters[SW_KEY_MAX], done[SW_KEY_MAX], seq[SW_KEY_MAX];
} sw_keys;

/* Shards a deployment may have ([redis] shards); a job id has room for
 * 256, the flusher's arrays for this many. */
#define SW_SHARDS_MAX 64
/* The longest prefix sharding accepts: room for "{", ":63}". */
#define SW_SHARD_PREFIX_MAX 58

/* One flusher's own keys. */
typedef struct sw_fkeys {
    char processing[SW_KEY_MAX], inflight[SW_KEY_MAX], heartbeat[SW_KEY_MAX];
} sw_fkeys;

/* Fill `k` for `prefix` (at most 63 bytes; the config checks). */
void sw_keys_init(sw_keys *k, const char *prefix);

/* Shard `k`'s prefix, {<b>:<k>}, of configured prefix `prefix` into
 * `out` (64 bytes). Returns its length (0: does not fit). Pure. */
size_t sw_keys_shard_prefix(const char *prefix, int k, char out[64]);

/* Flusher `fid`'s keys. */
void sw_keys_flusher(const sw_keys *k, const char *fid, sw_fkeys *out);

/* <p>:parked:<sink> into `out` (SW_KEY_MAX bytes). Returns the length. */
size_t sw_keys_parked(const sw_keys *k, const char *sink, char *out);

/* <p>:job:<id> and <p>:dead:<id> (the 0.1 layout) into `out`
 * (SW_KEY_MAX bytes). Return the length. */
size_t sw_keys_job(const sw_keys *k, const char *job_id, char *out);
size_t sw_keys_dead_legacy(const sw_keys *k, const char *job_id, char *out);

/* The status bucket of jobs with `shift` made at Unix ms `ms` into
 * `key` (SW_KEY_MAX bytes). Returns its length. */
size_t sw_keys_bucket(const sw_keys *k, int shift, uint64_t ms, char *key);

/* The bucket key of job `job_id`'s compact status into `key` (SW_KEY_MAX
 * bytes) and its field, the id's 16 bytes, into `field`. Returns the key's
 * length (0: not a job id). */
size_t sw_keys_status(const sw_keys *k, const char *job_id, char *key, unsigned char field[16]);

/* The key of an Idempotency-Key `key` on `sink`; `scope` is "" without
 * tokens. Returns the length, or 0 when it does not fit `outlen`. */
size_t sw_keys_idem(const sw_keys *k, const char *sink, const char *scope, const char *key,
                    char *out, size_t outlen);

#endif
