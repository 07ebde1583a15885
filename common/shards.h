#ifndef SW_SHARDS_H_
#define SW_SHARDS_H_

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "queue.h"
#include "redis.h"

/* A deployment's queues, as one thread sees them: the one queue of
 * [redis] shards = 0, or N shards, each a whole queue under its own hash
 * tag (keys.h) with a connection of its own, so in a cluster each goes
 * to the master owning its slot. A job lives in one shard all its life:
 * its id names it (jobid.h), an Idempotency-Key hashes to one. One
 * sw_shards per thread, as sw_redis. */
typedef struct sw_shards {
    int n;                          /* queues: 1 without sharding */
    int sharded;                    /* [redis] shards > 0 */
    sw_redis *q[SW_SHARDS_MAX];     /* queue k's connection */
} sw_shards;

/* The options of shard k's connection: `o` with the shard's prefix,
 * written into `prefix` (64 bytes). Without sharding (`shards` 0), `o`
 * itself. Pure. */
sw_redis_opts sw_shards_opts(const sw_redis_opts *o, int shards, int k, char prefix[64]);

/* Each shard's share of a bound on all of them (max_queue_records,
 * dead_max_jobs...): ceil(total / shards); `total` itself without shards.
 * Pure. */
long sw_shards_share(long total, int shards);

/* Connections (made lazily) to every queue. NULL when out of memory. */
sw_shards *sw_shards_new(const sw_redis_opts *o, int shards);
void sw_shards_free(sw_shards *s);   /* accepts NULL */

/* Count every connection's reconnects and redirects there too. */
void sw_shards_count(sw_shards *s, _Atomic uint64_t *reconnects, _Atomic uint64_t *redirects);

/* The queue holding job `id` (a valid id): its connection, or NULL when
 * the id names no shard of ours (never accepted here). */
sw_redis *sw_shards_job(sw_shards *s, const char *id);

/* The shard of `n` a 64-bit hash picks, mixed first (a plain modulo of
 * FNV keeps only the inputs' low bits). Pure. */
int sw_shards_pick(uint64_t h, int n);

/* The shard an Idempotency-Key `key` on `sink` belongs to, of `n`: the
 * same on every server. Not by the caller's token scope, so a key stored
 * before tokens were turned on is found by the scoped repeat. Pure. */
int sw_shards_of_key(int n, const char *sink, const char *key);

/* Queue figures summed over the shards; each shard's into `per` (n
 * entries) when not NULL. 0, or -1 with the failing connection in
 * *failed. */
__attribute__((warn_unused_result))
int sw_shards_stats(sw_shards *s, sw_queue_stats *sum, sw_queue_stats *per, sw_redis **failed);

/* Each of cfg's sinks' figures (sw_queue_sink_figures) summed over the
 * shards into fig[nsinks], and, when `oldest_us` is not NULL, the enqueue
 * time of its oldest waiting job (sw_queue_sink_oldest; 0: none). 1; 0
 * all but the depths (a queue's counts are not exact yet); -1 with the
 * failing connection in *failed. */
__attribute__((warn_unused_result))
int sw_shards_sink_figures(sw_shards *s, const struct sw_config *cfg, sw_sink_figures *fig,
                           int64_t *oldest_us, sw_redis **failed);

/* The dashboard's JSON (sw_queue_overview) over every shard: totals and
 * gauges summed, flushers listed with their shard, the newest failed
 * jobs of all, and "shards": each shard's gauges. Replaces `out`. 0, or
 * -1 with *failed set. */
__attribute__((warn_unused_result))
int sw_shards_overview(sw_shards *s, int failed_limit, sw_buf *out, sw_redis **failed);

/* UNRECORDED: no count is held and Redis, at maxmemory, refused to record
 * one; one queue goes on (no count means one queue, and its flushers
 * must drain to free memory) and checks again until it is recorded. */
enum sw_layout { SW_LAYOUT_OK = 0, SW_LAYOUT_ERROR = -1, SW_LAYOUT_MISMATCH = 1,
                 SW_LAYOUT_UNRECORDED = 2 };

/* The layout guard: compare `shards` with <p>:layout on `r` (a
 * connection with the configured prefix), recording it when no count is
 * there. Without a count, the one queue in use (jobs queued or held, dead
 * letters: releases before the guard wrote none) counts as layout 0. A
 * MISMATCH is logged, with what Redis holds and how to change it. ERROR:
 * Redis failed (r->err). */
__attribute__((warn_unused_result)) enum sw_layout sw_shards_check_layout(sw_redis *r, int shards);

#endif
