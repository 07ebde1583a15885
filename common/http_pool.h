#ifndef SW_HTTP_POOL_H_
#define SW_HTTP_POOL_H_

#include <stdatomic.h>
#include <stdint.h>

/* A pool of worker threads fed by one FIFO queue: the HTTP core hands it
 * requests whose head and body are complete, so a worker never waits on a
 * client, only on the work itself (Redis, say). Items are intrusive: the
 * caller embeds an sw_pool_item and owns its memory. */

typedef struct sw_pool_item {
    struct sw_pool_item *next;      /* private */
    int64_t since_ms;               /* private: when it was queued */
    atomic_int queued;              /* private: in the queue now */
} sw_pool_item;

typedef struct sw_pool sw_pool;

typedef struct sw_pool_fns {
    void *ctx;
    /* Per worker thread, in that thread: its state (may be NULL). */
    void *(*start)(void *ctx);
    /* Do one item. */
    void (*run)(void *ctx, void *state, sw_pool_item *item);
    void (*stop)(void *ctx, void *state);
} sw_pool_fns;

typedef struct sw_pool_stats {
    int threads;
    int busy;                       /* running an item now */
    int queued;                     /* waiting for a worker */
    double oldest_wait_s;           /* of those waiting */
    uint64_t waited;                /* items that waited 100 ms or more */
} sw_pool_stats;

/* Start `threads` workers at `nice` (relative; 0 = as the caller). `name`
 * shows in logs; it must outlive the pool. NULL when a thread cannot
 * start or memory is short. */
sw_pool *sw_pool_start(const char *name, int threads, int nice, const sw_pool_fns *fns);

/* Queue `item`; a worker runs it. Thread-safe. */
void sw_pool_push(sw_pool *p, sw_pool_item *item);

/* Let the workers finish what is queued, then stop and join them; free.
 * Accepts NULL. */
void sw_pool_stop(sw_pool *p);

/* A snapshot; thread-safe. */
void sw_pool_stats_get(sw_pool *p, sw_pool_stats *s);

#endif
