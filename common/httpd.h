#ifndef SW_HTTPD_H_
#define SW_HTTPD_H_

#include <stddef.h>
#include <stdint.h>

#include "http_exchange.h"
#include "http_pool.h"

/* The HTTP/1.1 server core: listeners, connections, framing, deadlines,
 * and pools of worker threads. One I/O thread owns every connection that
 * is waiting for bytes (epoll); a connection goes to a worker only once
 * its request is complete, and comes back to the I/O thread after the
 * reply. So idle and slow clients hold a file descriptor and a few
 * hundred bytes each, never a worker.
 *
 * A connection's state is explicit and has one owner at a time:
 *
 *   HANDSHAKE -> IDLE -> HEAD -> BODY -> LENT (to a worker) -> WRITE? ->
 *      IDLE (keep-alive) | DISCARD (drop a small unread body) | LINGER
 *
 * Every request is framed by sw_http_head_read() before any handler sees
 * it. A refusal of the framing, a 408, a 413, any reply with "Connection:
 * close" ends in LINGER: the write side is shut, whatever the client still
 * sends is read and dropped unparsed, and the socket closes at EOF or
 * after SW_HTTPD_LINGER_MS. Bytes after a "close" verdict are never parsed.
 *
 * Bounds: max_connections per listener (when full, the longest-idle
 * connection is closed to make room, else the new one is refused with
 * 503); max_per_address per client address (429); a head within
 * header_timeout_ms of its first byte (a new connection's first byte
 * within header_timeout_ms too); the whole request within
 * request_timeout_ms; idle keep-alive connections closed after
 * idle_timeout_ms; request bodies buffered at once at most
 * max_buffered_bytes over all connections (503 past it). */

#define SW_HTTPD_MAX_LISTENERS 2
#define SW_HTTPD_MAX_POOLS 2
#define SW_HTTPD_LINGER_MS 2000
/* route() answered the request itself. */
#define SW_HTTPD_ANSWERED (-1)

struct ssl_ctx_st;
typedef struct sw_httpd sw_httpd;

typedef struct sw_httpd_app {
    void *user;
    /* A head has been framed. Runs in the I/O thread: decide quickly and
     * without blocking. Either answer (sw_http_reply*) and return
     * SW_HTTPD_ANSWERED, or return the index of the pool that serves the
     * request, after sw_http_accept_body() if it takes a body. Its body
     * is then read (up to that limit) before serve() runs. */
    int (*route)(void *user, sw_http_exchange *x);
    /* On a worker of that pool, with the whole request; must answer. */
    void (*serve)(void *user, void *worker, sw_http_exchange *x);
    /* Every answered request, in whichever thread answered it (counting). */
    void (*done)(void *user, const sw_http_exchange *x);
    /* Per worker thread of pool `pool`: its state, passed to serve(). */
    void *(*worker_start)(void *user, int pool);
    void (*worker_stop)(void *user, int pool, void *worker);
    /* Optional: 1 when serve() may run this request on the I/O thread
     * itself, which saves the hand-off to a worker: only for requests
     * that answer quickly without blocking, or defer (sw_httpd_defer).
     * The I/O thread then has worker state of its own (worker_start with
     * the request's pool, once). */
    int (*inline_ok)(void *user, const sw_http_exchange *x);
} sw_httpd_app;

typedef struct sw_httpd_listen {
    const char *addr;               /* "host:port" or "[v6]:port" */
    struct ssl_ctx_st *tls;         /* NULL: plain HTTP; owned by the caller */
    int max_connections;
    int max_per_address;            /* 0: no limit */
} sw_httpd_listen;

typedef struct sw_httpd_pool_opts {
    const char *name;               /* in metrics and logs */
    int threads;
    int nice;                       /* relative, 0 = none */
} sw_httpd_pool_opts;

typedef struct sw_httpd_opts {
    sw_httpd_listen listen[SW_HTTPD_MAX_LISTENERS];
    int nlisten;
    sw_httpd_pool_opts pools[SW_HTTPD_MAX_POOLS];
    int npools;
    int header_timeout_ms;
    int request_timeout_ms;
    int idle_timeout_ms;
    size_t max_head_bytes;
    const char *head_limit;         /* the setting behind it, named in a 431 */
    size_t max_buffered_bytes;
    /* The largest body any route accepts: one client address may always
     * hold one, whatever its share of max_buffered_bytes. */
    size_t largest_body;
    /* Peers whose X-Forwarded-For names the client: "addr,addr"; "" none. */
    const char *trusted_proxies;
    /* File descriptors the process needs besides this core's (another
     * core, say): max_connections is fitted to the open-files limit
     * without them. */
    int reserve_fds;
} sw_httpd_opts;

typedef struct sw_httpd_stats {
    int nlisten;
    struct {
        int open;                   /* connections */
        int idle;                   /* of them, waiting for a request */
    } listen[SW_HTTPD_MAX_LISTENERS];
    int npools;
    const char *pool_name[SW_HTTPD_MAX_POOLS];
    sw_pool_stats pool[SW_HTTPD_MAX_POOLS];
    uint64_t accepted;              /* connections */
    uint64_t refused_per_address;   /* 429: at max_per_address */
    uint64_t refused_full;          /* 503: at max_connections, none idle */
    uint64_t closed_idle;           /* idle connections closed to make room */
    uint64_t timeouts;              /* 408s, and heads that never came */
    uint64_t malformed;             /* framing refusals */
} sw_httpd_stats;

/* Listen and start the I/O thread and the pools. NULL with the reason in
 * errstr (address in use, bad address, thread). `app` is copied; the
 * strings in `o` are copied. */
sw_httpd *sw_httpd_start(const sw_httpd_opts *o, const sw_httpd_app *app, char *errstr,
                         size_t len);

/* Serve the already connected stream socket `fd` as if `listener` had
 * accepted it (tests and fuzzing: one end of a socketpair). The server
 * owns fd from now on. 0, or -1 (fd closed). */
__attribute__((warn_unused_result)) int sw_httpd_adopt(sw_httpd *h, int fd, int listener);

/* A snapshot of connection and pool counts. Thread-safe. */
void sw_httpd_stats_get(sw_httpd *h, sw_httpd_stats *s);

/* From serve(), before the exchange goes anywhere else: it will be
 * answered later, by whatever thread calls sw_httpd_finish() on it (a
 * Redis lane, say), so the worker is free at once. From then on serve()
 * must not touch it; the exchange and its connection are that thread's
 * alone; the core waits for it, also when stopping. */
void sw_httpd_defer(sw_http_exchange *x);

/* A deferred exchange is answered (sw_http_reply*, or sw_http_abort):
 * send the reply and give the connection back to the core. Any thread;
 * once per deferred exchange; x is not the caller's any more after. */
void sw_httpd_finish(sw_http_exchange *x);

/* Stop accepting, close connections that are not mid-request, let
 * requests in workers finish and their replies go out (bounded by
 * request_timeout_ms), stop the pools and free. Accepts NULL. To stop
 * several cores together, sw_httpd_shutdown() each first: they then close
 * their listeners at once and drain side by side. */
void sw_httpd_stop(sw_httpd *h);

/* Begin stopping without waiting: the listeners close, and draining
 * starts. Thread-safe; accepts NULL. */
void sw_httpd_shutdown(sw_httpd *h);

#endif
