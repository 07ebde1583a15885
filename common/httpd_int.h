#ifndef SW_HTTPD_INT_H_
#define SW_HTTPD_INT_H_

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http_conn.h"
#include "httpd.h"
#include "peers.h"

/* The HTTP core's insides, shared by its two halves and nothing else:
 *
 *   httpd.c      the I/O thread: events, deadlines, hand-off to and from
 *                the workers, start and stop;
 *   http_accept.c  who gets a connection: listeners, the open-files
 *                budget, per-address caps, eviction of idle connections;
 *   http_flow.c  one connection's requests: read, frame, route, read the
 *                body, answer or lend, then the next request or a close.
 *
 * Everything here is owned by the I/O thread, except what a worker holds
 * while a connection is lent (SW_CONN_LENT: its exchange and output) and
 * the hand-back queue under ret_lock. */

/* A refused request whose body is not yet read: a remainder up to this
 * size is read and dropped to keep the connection; more closes it, so a
 * client cannot make us read gigabytes it was refused. */
#define SW_DISCARD_MAX 65536
/* A head's buffer starts this big and doubles; bodies and dropped bytes
 * are read in steps of SW_BODY_STEP. */
#define SW_STEP 4096
#define SW_BODY_STEP 65536
/* Bytes read and dropped at most before a lingering close gives up. */
#define SW_LINGER_BUDGET (1 << 20)
/* Requests one connection may have answered in one turn of the loop
 * before the others get theirs (pipelined requests answered at once). */
#define SW_BURST 32
/* One client address may hold this share of max_buffered_bytes in bodies
 * (when max_per_address caps it at all). */
#define SW_ADDRESS_SHARE 8
#define SW_MAX_TRUSTED 16
/* The I/O thread's housekeeping period (deadlines, paused listeners). */
#define SW_TICK_MS 100

typedef struct sw_listener {
    int fd;
    struct ssl_ctx_st *tls;
    int max_connections, max_per_address;
    sw_peers peers;
    atomic_int open, idle;
    int64_t paused_until;       /* accept paused (EMFILE) until then; 0: not */
    char addr[128];
} sw_listener;

typedef struct sw_pool_ctx {
    struct sw_httpd *h;
    int pool;
} sw_pool_ctx;

struct sw_httpd {
    sw_httpd_opts o;
    sw_httpd_app app;
    sw_http_limits lim;
    int ep, wake;
    sw_listener l[SW_HTTPD_MAX_LISTENERS];
    int nl;
    sw_pool *pools[SW_HTTPD_MAX_POOLS];
    /* The I/O thread's own worker state, per pool (app.inline_ok). */
    void *inline_state[SW_HTTPD_MAX_POOLS];
    int inline_started[SW_HTTPD_MAX_POOLS];
    sw_pool_ctx pctx[SW_HTTPD_MAX_POOLS];
    pthread_t thread;
    int started;
    atomic_int stop;
    int stopping;               /* the I/O thread's own view */
    int64_t stop_deadline;
    /* Handed back by workers, and sockets to adopt; under ret_lock. */
    pthread_mutex_t ret_lock;
    sw_conn *ret_head, *ret_tail;
    int adopt_fd[64], adopt_l[64], nadopt;
    int wake_pending;
    /* Owned by the I/O thread. */
    sw_conn *conns;
    sw_conn *idle_head, *idle_tail;
    sw_conn *later;             /* to process again next turn (SW_BURST) */
    sw_conn *graveyard;
    int nconns;
    size_t buffered;            /* bytes of body buffers, all connections */
    sw_peer_addr trusted[SW_MAX_TRUSTED];
    int ntrusted;
    char scratch[SW_BODY_STEP];
    _Atomic uint64_t accepted, refused_addr, refused_full, closed_idle, timeouts, malformed;
    int64_t full_logged_ms;
    /* 408s since the last log line about them (one per 10 s at most). */
    int64_t slow_logged_ms;
    uint64_t slow_unlogged;
    char slow_peer[48];
};

/* httpd.c */
void sw_httpd_arm(sw_httpd *h, sw_conn *c, uint32_t events);
void sw_httpd_close(sw_httpd *h, sw_conn *c);
void sw_httpd_idle_remove(sw_httpd *h, sw_conn *c);
void sw_httpd_idle_append(sw_httpd *h, sw_conn *c);
void sw_httpd_later(sw_httpd *h, sw_conn *c);
void sw_httpd_lend(sw_httpd *h, sw_conn *c);
/* Count `delta` more (or, negative, fewer) bytes of c's body buffer
 * against max_buffered_bytes and the client address's share. 0, or -1
 * when a positive delta would pass either (nothing is counted then). */
int sw_httpd_charge(sw_httpd *h, sw_conn *c, int64_t delta);

/* http_accept.c */
/* Open l's listening socket on `addr` (host:port, [v6]:port). 0, or -1
 * with errstr. */
int sw_accept_listen(sw_listener *l, const char *addr, char *errstr, size_t len);
/* Raise the open-files limit as far as allowed; lower listeners'
 * max_connections where they would not fit. */
void sw_accept_fit(sw_httpd *h);
/* Parse [server] trusted_proxies (addresses, comma or space apart) into
 * h->trusted. 0, or -1 with errstr. */
int sw_accept_trusted(sw_httpd *h, const char *list, char *errstr, size_t len);
/* Accept what listener `li` has waiting (a bounded number per call). */
void sw_accept_some(sw_httpd *h, int li);
/* Take in an accepted (or adopted) socket: within the caps it becomes a
 * connection; otherwise it is answered 503/429 and closed. */
void sw_accept_conn(sw_httpd *h, int fd, int li, const struct sockaddr_storage *ss);

/* http_flow.c */
/* Run the state machine on what is buffered: read more, lend, answer, or
 * close. Ends with the connection armed, lent, queued for later, or
 * closed. */
void sw_flow_process(sw_httpd *h, sw_conn *c);
/* The reply has gone out: the next request, or a close. 1 when the caller
 * should go on with sw_flow_process(). */
int sw_flow_after_response(sw_httpd *h, sw_conn *c);
/* A refusal by the core itself: problem+json, then a lingering close. */
void sw_flow_refuse(sw_httpd *h, sw_conn *c, int status, const char *detail);
/* Wait for the next request (a new connection: for its first byte). */
void sw_flow_enter_idle(sw_httpd *h, sw_conn *c);
/* Give back the buffers of a connection idle for a while. */
void sw_flow_release(sw_httpd *h, sw_conn *c);

#endif
