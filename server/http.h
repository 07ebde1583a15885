#ifndef SW_HTTP_H_
#define SW_HTTP_H_

#include "config.h"
#include "redisq.h"

/* The HTTP front end: civetweb, routes, and the per-thread Redis
 * connections. The request codecs live in common/ (ingest, record,
 * envelope); this file only moves bytes between them and the sockets. */
typedef struct sw_http sw_http;

/* Start listening per `cfg` (which must outlive the server). Returns the
 * server, or NULL after logging why (port in use, bad listen address). */
sw_http *sw_http_start(const sw_config *cfg);

/* Tell the server what Redis' persistence settings are (NULL: unknown).
 * While they let Redis evict queued jobs and the config does not allow
 * it, POST answers 503 and /readyz is not ready. Thread-safe. */
void sw_http_set_persistence(sw_http *h, const sw_redis_persistence *p);

/* Stop accepting, finish the requests in progress, free. Accepts NULL. */
void sw_http_stop(sw_http *h);

#endif
