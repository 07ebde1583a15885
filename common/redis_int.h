#ifndef SW_REDIS_INT_H_
#define SW_REDIS_INT_H_

#include <stdint.h>

#include "redis.h"

/* The adapter's insides, shared by its files: redis.c (connections,
 * calls, redirections), redis_locate.c (where the master is),
 * redis_facts.c (what the server says of itself). Not for other callers. */

/* Record a failure: err, errstr "<what>: <detail>", no code. */
__attribute__((format(printf, 4, 5)))
void sw_redis_set_err(sw_redis *r, enum sw_redis_err err, const char *what, const char *fmt, ...);

/* A redisContext to host:port (connecting for at most `connect_ms`, each
 * command after for at most `command_ms`) with r's credentials, or NULL
 * with err = ECONNECT. */
void *sw_redis_open_node(sw_redis *r, const char *host, int port, int connect_ms,
                         int command_ms);

/* Each command on redisContext `ctx` may take at most `ms`. 0, or -1
 * with err. */
__attribute__((warn_unused_result)) int sw_redis_set_timeout(sw_redis *r, void *ctx, int ms);

/* Time left before the monotonic `deadline`, at most timeout_ms, or 0. */
int sw_redis_left_ms(const sw_redis *r, int64_t deadline);

/* Sentinel: ask the Sentinels in turn, from the one whose answer held
 * last, and connect to the first address that ROLE confirms is a master,
 * all within `deadline`; if none answered, the master last confirmed by
 * any adapter of the process. The redisContext, or NULL with err =
 * ECONNECT. */
void *sw_redis_via_sentinel(sw_redis *r, int64_t deadline);

/* Cluster: learn the owner of r's slot into r->route->owner, asking the
 * last owner and then each seed (CLUSTER SLOTS), within `deadline`. 0, or
 * -1 with err = ECONNECT. */
__attribute__((warn_unused_result)) int sw_redis_locate(sw_redis *r, int64_t deadline);

#endif
