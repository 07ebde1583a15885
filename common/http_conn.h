#ifndef SW_HTTP_CONN_H_
#define SW_HTTP_CONN_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http_chunked.h"
#include "http_exchange.h"
#include "http_pool.h"
#include "peers.h"

/* One client connection of the HTTP core (httpd.c) and its byte I/O over
 * a plain or a TLS socket. Internal to the core. */

struct ssl_st;

enum sw_conn_state {
    SW_CONN_HANDSHAKE,   /* TLS handshake in progress */
    SW_CONN_IDLE,        /* no byte of the next request yet */
    SW_CONN_HEAD,        /* part of a head */
    SW_CONN_BODY,        /* head framed, body arriving */
    SW_CONN_DISCARD,     /* answered; dropping a small unread body */
    SW_CONN_LENT,        /* a worker has it (queued or running) */
    SW_CONN_WRITE,       /* reply partly sent, waiting for the socket */
    SW_CONN_LINGER,      /* write side shut; dropping input until EOF */
    SW_CONN_CLOSED,      /* fd closed; freed at the end of the loop turn */
};

typedef struct sw_conn {
    sw_pool_item item;              /* first: a pool hands it back as this */
    struct sw_httpd *h;
    int fd;
    struct ssl_st *ssl;             /* NULL: plain */
    int listener;
    enum sw_conn_state state;       /* written by the I/O thread only */
    int registered;                 /* added to epoll */
    sw_peer_addr addr;              /* the peer's address */
    sw_peer_addr key;               /* its key in the per-address counts */
    char peer[48];
    int64_t deadline_ms;            /* of the current state (monotonic) */
    int64_t request_deadline_ms;    /* of the request in progress */
    int64_t idle_since_ms;
    uint32_t requests;              /* answered on this connection */
    int eof;                        /* the client has shut its write side */
    int broken;                     /* reset, or an I/O error */
    int tls_want_write;             /* OpenSSL must write before it reads */
    int tls_want_read;              /* ...or read before it writes */
    int ret;                        /* from the worker: 1 sent, 0 blocked, -1 gone */
    struct sw_conn *prev, *next;    /* every connection of the server */
    struct sw_conn *iprev, *inext;  /* the idle list, oldest first */
    int in_idle;
    struct sw_conn *ret_next;       /* handed back by a worker */
    struct sw_conn *later_next;     /* queued to be processed next turn */
    int in_later;
    int burst;                      /* requests answered this turn */
    int readable;                   /* woken to read, but had no buffer yet */
    /* Input: `in` holds, from in_off, the raw head of the request in
     * progress and what came after it; once the head is framed the bytes
     * never move, so the exchange's spans stay valid. A body that did not
     * come with the head is read into `body` (chunked coding decoded in
     * place there). Bytes of finished requests are skipped by advancing
     * in_off, and moved down only before a read, so pipelined requests
     * cost linear time. */
    sw_buf in, body;
    size_t in_off;                  /* where the request in progress starts */
    size_t read_cap;                /* read until the buffer holds this many */
    size_t counted;                 /* body.cap, as charged to the core and address */
    size_t scanned;                 /* head scan position, from in_off */
    size_t req_end;                 /* bytes of the request in `in`, from in_off */
    size_t rpos, wpos;              /* in `body`: read and write positions */
    sw_chunked chunked;
    uint64_t discard_left;
    int pool;                       /* route()'s choice */
    /* Output. */
    sw_buf out;
    size_t out_sent;
    sw_http_exchange *x;            /* allocated at the first request */
} sw_conn;

/* Read what the socket has into the room `b` (c->in or c->body) already
 * has, until it holds `cap` bytes; never allocates (the core sizes and
 * counts the buffers). Returns how many bytes came (0: none now). Sets
 * c->eof at end of stream, c->broken on a reset or error,
 * c->tls_want_write when TLS must write first. */
size_t sw_conn_read(sw_conn *c, sw_buf *b, size_t cap);

/* Send c->out from c->out_sent on. 1 when all is sent, 0 when the socket
 * is full (c->tls_want_read when TLS must read first), -1 when the peer
 * is gone. Thread: whoever owns the connection. */
int sw_conn_write(sw_conn *c);

/* Drive the TLS handshake: 1 done, 0 in progress (see tls_want_*), -1
 * failed. */
int sw_conn_handshake(sw_conn *c);

/* Shut the write side after the last reply (TLS: close_notify first). */
void sw_conn_shutdown_write(sw_conn *c);

/* Read and drop what has arrived, at most `budget` bytes, into `scratch`
 * (`len` bytes). Returns the bytes dropped; sets c->eof or c->broken. */
size_t sw_conn_drain(sw_conn *c, char *scratch, size_t len, size_t budget);

/* Close the socket and free the TLS state and buffers (not the struct). */
void sw_conn_release(sw_conn *c);

#endif
