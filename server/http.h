#ifndef SW_HTTP_H_
#define SW_HTTP_H_

#include "config.h"
#include "redis.h"

/* The server's HTTP API on the core in common/httpd.h: routes, handlers
 * and their per-worker Redis connections. The request codecs live in
 * common/ (http_head, ingest, record, envelope). */
typedef struct sw_http sw_http;

/* Start listening per `cfg` (which must outlive the server). Returns the
 * server, or NULL after logging why (port in use, bad listen address). */
sw_http *sw_http_start(const sw_config *cfg);

/* Tell the server what Redis' persistence settings are (NULL: unknown).
 * While they let Redis evict queued jobs and the config does not allow
 * it, POST answers 503 and /readyz is not ready. Thread-safe. */
void sw_http_set_persistence(sw_http *h, const sw_redis_persistence *p);

/* Tell the server how much memory Redis uses, of its maxmemory: above
 * [server] max_redis_memory_percent of it, POST answers 429 (logged once
 * per change). `status_bytes`: a job status' sampled cost, 0 unknown. */
void sw_http_set_memory(sw_http *h, const sw_redis_memory *m, double status_bytes);

/* The layout guard (shards.h) passed, or not yet and why: with shards,
 * until it passes writes answer 503 and /readyz says not ready, so no job
 * goes to a layout nobody drains. One queue is not gated: its guard runs
 * at start and each second until Redis has answered it, and a mismatch
 * stops the server (the jobs written meanwhile wait in the one queue for
 * a flusher of that layout). */
void sw_http_set_layout(sw_http *h, int ok, const char *why);

/* Which sinks' intake an operator paused (pause.h), one flag per sink:
 * their POSTs answer 503 sink-paused. Logged on each change. */
void sw_http_set_paused(sw_http *h, const unsigned char *paused);
/* Which sinks' flushing is paused (shown in /v1/stats and /metrics; the
 * flushers log it). */
void sw_http_set_flush_paused(sw_http *h, const unsigned char *paused);

/* One sample of the queue for the dashboard's chart (history.h). */
struct sw_history_sample;
void sw_http_sample(sw_http *h, const struct sw_history_sample *s);

/* Shutting down: /readyz answers 503 shutting-down from now on; every
 * other route is served as before. */
void sw_http_set_draining(sw_http *h);

/* Read [server] tokens_file again and use it for the requests that start
 * from now on (a no-op without tokens_file). On an error the current
 * tokens stay and it is logged. Call from one thread (the main loop).
 * The replaced tokens are kept until sw_http_stop(): a request still in
 * flight may hold one, and reloads are rare. 0, or -1. */
__attribute__((warn_unused_result)) int sw_http_reload_tokens(sw_http *h);

/* Stop accepting, finish the requests in progress, free. Accepts NULL. */
void sw_http_stop(sw_http *h);

#endif
