/* accept4 */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "http_conn.h"
#include "log.h"

/* A refused request whose body is not yet read: a remainder up to this
 * size is read and dropped to keep the connection; more closes it, so a
 * client cannot make us read gigabytes it was refused. */
#define DISCARD_MAX 65536
/* Input read per step: a head's buffer starts this big and doubles; a
 * body or dropped bytes come in steps of BODY_STEP. */
#define STEP 4096
#define BODY_STEP 65536
/* Bytes read and dropped at most before a lingering close gives up. */
#define LINGER_BUDGET (1 << 20)
/* An idle connection keeps its buffers this long, then gives them back. */
#define IDLE_RELEASE_MS 1000
#define TICK_MS 100
#define MAX_TRUSTED 16

typedef struct listener {
    int fd;
    struct ssl_ctx_st *tls;
    int max_connections, max_per_address;
    sw_peers peers;
    atomic_int open, idle;
    int64_t paused_until;       /* accept paused (EMFILE) until then; 0: not */
    char addr[128];
} listener;

typedef struct pool_ctx {
    struct sw_httpd *h;
    int pool;
} pool_ctx;

struct sw_httpd {
    sw_httpd_opts o;
    sw_httpd_app app;
    sw_http_limits lim;
    int ep, wake;
    listener l[SW_HTTPD_MAX_LISTENERS];
    int nl;
    sw_pool *pools[SW_HTTPD_MAX_POOLS];
    pool_ctx pctx[SW_HTTPD_MAX_POOLS];
    pthread_t thread;
    int started;
    atomic_int stop;
    int stopping;               /* I/O thread's own view */
    int64_t stop_deadline;
    /* Handed back by workers, and sockets to adopt; under ret_lock. */
    pthread_mutex_t ret_lock;
    sw_conn *ret_head, *ret_tail;
    int adopt_fd[64], adopt_l[64], nadopt;
    int wake_pending;
    /* Owned by the I/O thread. */
    sw_conn *conns;
    sw_conn *idle_head, *idle_tail;
    sw_conn *graveyard;
    int nconns;
    size_t buffered;            /* capacity of input buffers holding bodies */
    sw_peer_addr trusted[MAX_TRUSTED];
    int ntrusted;
    char scratch[BODY_STEP];
    _Atomic uint64_t accepted, refused_addr, refused_full, closed_idle, timeouts, malformed;
    int64_t full_logged_ms;
};

static void process(sw_httpd *h, sw_conn *c);
static int grow(sw_httpd *h, sw_conn *c, sw_buf *b, size_t need, size_t most);

/* --- small helpers ----------------------------------------------------- */

static void to_peer_addr(const struct sockaddr_storage *ss, sw_peer_addr *a, char *text,
                         size_t len)
{
    memset(a, 0, sizeof *a);
    text[0] = '\0';
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;
        a->b[10] = a->b[11] = 0xff;
        memcpy(a->b + 12, &in->sin_addr, 4);
        inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)len);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;
        memcpy(a->b, &in6->sin6_addr, 16);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)len);
    } else {
        snprintf(text, len, "local");
    }
}

/* Text to an address: "1.2.3.4" or "::1". 0, or -1. */
static int parse_addr(const char *s, size_t n, sw_peer_addr *a)
{
    char buf[64];
    struct in_addr v4;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        a->b[10] = a->b[11] = 0xff;
        memcpy(a->b + 12, &v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, buf, a->b) == 1 ? 0 : -1;
}

static void arm(sw_httpd *h, sw_conn *c, uint32_t events)
{
    /* RDHUP only with reads: it stays raised, and a socket waiting to be
     * writable would report it again and again. */
    struct epoll_event ev = {.events = events | EPOLLONESHOT |
                                       (events & EPOLLIN ? EPOLLRDHUP : 0),
                             .data.ptr = c};
    if (epoll_ctl(h->ep, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        sw_log_error("epoll_ctl failed", "errno=%d", errno);
        c->broken = 1;
        return;
    }
    c->registered = 1;
}

static void idle_remove(sw_httpd *h, sw_conn *c)
{
    if (!c->in_idle)
        return;
    if (c->iprev)
        c->iprev->inext = c->inext;
    else
        h->idle_head = c->inext;
    if (c->inext)
        c->inext->iprev = c->iprev;
    else
        h->idle_tail = c->iprev;
    c->iprev = c->inext = NULL;
    c->in_idle = 0;
    atomic_fetch_sub(&h->l[c->listener].idle, 1);
}

static void idle_append(sw_httpd *h, sw_conn *c)
{
    c->iprev = h->idle_tail;
    c->inext = NULL;
    if (h->idle_tail)
        h->idle_tail->inext = c;
    else
        h->idle_head = c;
    h->idle_tail = c;
    c->in_idle = 1;
    atomic_fetch_add(&h->l[c->listener].idle, 1);
}

/* Every input buffer's capacity counts against max_buffered_bytes. */
static void recount(sw_httpd *h, sw_conn *c)
{
    h->buffered -= c->counted;
    c->counted = c->in.cap + c->body.cap;
    h->buffered += c->counted;
}

static void free_input(sw_httpd *h, sw_conn *c)
{
    sw_buf_free(&c->in);
    sw_buf_free(&c->body);
    recount(h, c);
}

static void close_conn(sw_httpd *h, sw_conn *c)
{
    if (c->state == SW_CONN_CLOSED)
        return;
    idle_remove(h, c);
    free_input(h, c);
    listener *l = &h->l[c->listener];
    sw_peers_remove(&l->peers, &c->addr);
    atomic_fetch_sub(&l->open, 1);
    h->nconns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sw_conn_release(c);
    c->state = SW_CONN_CLOSED;
    /* Freed after this loop turn: an event for it may still be queued. */
    c->next = h->graveyard;
    h->graveyard = c;
}

/* --- replies ----------------------------------------------------------- */

static void after_response(sw_httpd *h, sw_conn *c);

/* Send c->out; then go on with the connection. */
static void send_reply(sw_httpd *h, sw_conn *c)
{
    c->out_sent = 0;
    int w = sw_conn_write(c);
    if (w < 0) {
        close_conn(h, c);
    } else if (w == 0) {
        c->state = SW_CONN_WRITE;
        c->deadline_ms = sw_clock_mono_ms() + h->o.request_timeout_ms;
        arm(h, c, c->tls_want_read ? EPOLLIN : EPOLLOUT);
    } else {
        after_response(h, c);
    }
}

static void note_done(sw_httpd *h, sw_conn *c)
{
    if (h->app.done && c->x->status != 0)
        h->app.done(h->app.user, c->x);
}

/* A refusal by the core itself: problem+json, then close. */
static void refuse(sw_httpd *h, sw_conn *c, int status, const char *detail)
{
    static const struct { int status; const char *type, *title; } kinds[] = {
        {400, "bad-request", "Malformed request"},
        {500, "internal", "Internal error"},
        {408, "request-timeout", "Request timeout"},
        {413, "body-too-large", "Body too large"},
        {414, "uri-too-long", "Request target too long"},
        {417, "expectation-failed", "Expectation not supported"},
        {431, "headers-too-large", "Request headers too large"},
        {501, "not-implemented", "Transfer coding not supported"},
        {503, "server-busy", "Server busy"},
        {505, "http-version", "HTTP version not supported"},
    };
    const char *type = "bad-request", *title = "Malformed request";
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (kinds[i].status == status) {
            type = kinds[i].type;
            title = kinds[i].title;
        }
    }
    if (c->x == NULL && (c->x = calloc(1, sizeof *c->x)) == NULL) {
        close_conn(h, c);
        return;
    }
    /* A refusal from grow() may come before the exchange is reset. */
    if (c->state == SW_CONN_IDLE)
        memset(c->x, 0, sizeof *c->x);
    sw_problem p = {0};
    sw_problem_set(&p, status, type, title, "%s", detail);
    sw_http_exchange *x = c->x;
    x->close = 1;
    x->by_core = 1;
    x->out = &c->out;
    if (status == 408)
        atomic_fetch_add_explicit(&h->timeouts, 1, memory_order_relaxed);
    else if (status != 413 && status != 503)
        atomic_fetch_add_explicit(&h->malformed, 1, memory_order_relaxed);
    if (sw_http_reply_problem(x, &p, status == 503 ? "Retry-After: 1\r\n" : NULL) != 0) {
        close_conn(h, c);
        return;
    }
    note_done(h, c);
    send_reply(h, c);
}

static void start_linger(sw_httpd *h, sw_conn *c)
{
    if (h->stopping) {
        close_conn(h, c);
        return;
    }
    idle_remove(h, c);
    sw_conn_shutdown_write(c);
    c->state = SW_CONN_LINGER;
    c->discard_left = LINGER_BUDGET;
    c->deadline_ms = sw_clock_mono_ms() + SW_HTTPD_LINGER_MS;
    arm(h, c, EPOLLIN);
}

/* Drop the finished request's bytes from the front of the input. */
static void consume(sw_conn *c, size_t n)
{
    if (n > c->in.len)
        n = c->in.len;
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
    c->scanned = 0;
}

static void enter_idle(sw_httpd *h, sw_conn *c)
{
    int64_t now = sw_clock_mono_ms();
    c->state = SW_CONN_IDLE;
    c->idle_since_ms = now;
    c->deadline_ms = now + (c->requests ? h->o.idle_timeout_ms : h->o.header_timeout_ms);
    if (!c->in_idle)
        idle_append(h, c);
}

static void after_response(sw_httpd *h, sw_conn *c)
{
    c->requests++;
    c->out_sent = 0;
    sw_buf_reset(&c->out);
    if (c->x->close || h->stopping) {
        start_linger(h, c);
        return;
    }
    if (c->discard_left > 0) {
        consume(c, c->in.len);
        c->state = SW_CONN_DISCARD;
        c->deadline_ms = sw_clock_mono_ms() + h->o.request_timeout_ms;
    } else {
        consume(c, c->req_end);
        /* What followed a chunked body is the next request's. */
        size_t rest = c->body.len > c->rpos ? c->body.len - c->rpos : 0;
        if (rest && grow(h, c, &c->in, c->in.len + rest, c->in.len + rest) != 0)
            return;
        if (rest) {
            memcpy(c->in.data + c->in.len, c->body.data + c->rpos, rest);
            c->in.len += rest;
        }
        enter_idle(h, c);
    }
    /* A body's buffer goes back now, not at the idle sweep. */
    sw_buf_free(&c->body);
    c->rpos = c->wpos = 0;
    if (c->in.len == 0 && c->in.cap > 2 * STEP)
        sw_buf_free(&c->in);
    recount(h, c);
    process(h, c);
}

/* --- requests ---------------------------------------------------------- */

static void set_client(sw_httpd *h, sw_conn *c)
{
    sw_http_exchange *x = c->x;
    snprintf(x->client, sizeof x->client, "%s", c->peer);
    int trusted = 0;
    for (int i = 0; i < h->ntrusted && !trusted; i++)
        trusted = memcmp(&h->trusted[i], &c->addr, sizeof c->addr) == 0;
    const char *xff = trusted ? sw_http_header(x, "X-Forwarded-For") : NULL;
    if (xff == NULL)
        return;
    /* The last hop is the one the proxy itself saw. */
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strcspn(last, " \t");
    sw_peer_addr a;
    if (parse_addr(last, n, &a) == 0)
        snprintf(x->client, sizeof x->client, "%.*s", (int)n, last);
}

static void lend(sw_httpd *h, sw_conn *c)
{
    /* One owner at a time: only the I/O thread lends, and only what it
     * owns. */
    assert(c->state != SW_CONN_LENT && c->state != SW_CONN_CLOSED);
    c->state = SW_CONN_LENT;
    sw_pool_push(h->pools[c->pool], &c->item);
}

/* Room for `need` bytes in `b` (c->in or c->body, plus a NUL), never
 * past `most` (the most the request can take there), counted against
 * max_buffered_bytes. Doubles, so growth is amortised. 0, or -1 after
 * refusing the request. */
static int grow(sw_httpd *h, sw_conn *c, sw_buf *b, size_t need, size_t most)
{
    if (b->cap >= need + 1)
        return 0;
    size_t cap = b->cap ? b->cap : STEP;
    while (cap < need + 1)
        cap *= 2;
    if (cap > most + 1)
        cap = most + 1 > need + 1 ? most + 1 : need + 1;
    if (h->buffered - b->cap + cap > h->o.max_buffered_bytes) {
        refuse(h, c, 503, "the server holds as many request bytes as it may at once; "
                          "nothing was queued, retry shortly");
        return -1;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        refuse(h, c, 503, "out of memory for the request; nothing was queued, retry");
        return -1;
    }
    b->data = p;
    b->cap = cap;
    recount(h, c);
    return 0;
}

/* The most bytes a chunked body's buffer holds: the data, and undecoded
 * coding of at most one read step (or what came with the head). */
static size_t chunked_most(const sw_httpd *h, const sw_http_exchange *x)
{
    return x->body_max + BODY_STEP + h->lim.max_head_bytes;
}

/* The head is framed: route it, then read its body or answer. 1 to go on
 * processing, 0 when the connection has moved on (answered, lent, closed). */
static int on_head(sw_httpd *h, sw_conn *c)
{
    sw_http_exchange *x = c->x;
    sw_http_head *hd = &x->head;
    if (sw_http_exchange_prepare(x, c->in.data) != 0) {
        refuse(h, c, hd->status, hd->detail);
        return 0;
    }
    set_client(h, c);
    x->listener = c->listener;
    x->head_only = strcmp(x->method, "HEAD") == 0;
    x->started_us = sw_clock_now_us();
    x->route = -1;
    x->out = &c->out;
    size_t avail = c->in.len - hd->len;
    /* If route() answers without the body, can the connection stay? */
    int unread = hd->framing == SW_HTTP_CHUNKED ||
                 (hd->framing == SW_HTTP_LENGTH && hd->content_length > avail);
    int keepable = hd->framing != SW_HTTP_CHUNKED &&
                   (hd->framing != SW_HTTP_LENGTH || hd->content_length - avail <= DISCARD_MAX ||
                    hd->content_length <= avail);
    x->close = unread && !keepable;
    int pool = h->app.route(h->app.user, x);
    if (pool == SW_HTTPD_ANSWERED || x->status != 0) {
        if (x->status == 0) {
            refuse(h, c, 500, "the server could not route the request");
            return 0;
        }
        c->req_end = hd->len;
        c->discard_left = 0;
        if (hd->framing == SW_HTTP_LENGTH) {
            if (hd->content_length <= avail) {
                c->req_end = hd->len + (size_t)hd->content_length;
            } else {
                c->req_end = c->in.len;
                c->discard_left = hd->content_length - avail;
            }
        }
        note_done(h, c);
        send_reply(h, c);
        return 0;
    }
    x->close = 0;
    c->pool = pool < 0 || pool >= h->o.npools ? 0 : pool;
    if (hd->framing == SW_HTTP_NO_BODY) {
        x->body = c->in.data + hd->len;
        x->body_len = 0;
        c->req_end = hd->len;
        lend(h, c);
        return 0;
    }
    if (hd->framing == SW_HTTP_LENGTH && hd->content_length > x->body_max) {
        char detail[200];
        if (hd->content_length == UINT64_MAX)
            snprintf(detail, sizeof detail, "the body is over the limit of %zu bytes%s%s%s; "
                     "split it", x->body_max, x->body_limit ? " (" : "",
                     x->body_limit ? x->body_limit : "", x->body_limit ? ")" : "");
        else
            snprintf(detail, sizeof detail, "the body of %llu bytes is over the limit of %zu "
                     "bytes%s%s%s; split it", (unsigned long long)hd->content_length,
                     x->body_max, x->body_limit ? " (" : "", x->body_limit ? x->body_limit : "",
                     x->body_limit ? ")" : "");
        refuse(h, c, 413, detail);
        return 0;
    }
    c->req_end = hd->len;
    c->rpos = c->wpos = 0;
    if (hd->framing == SW_HTTP_LENGTH && hd->content_length <= avail) {
        /* It came with the head. */
        x->body = c->in.data + hd->len;
        x->body_len = (size_t)hd->content_length;
        c->req_end = hd->len + x->body_len;
        lend(h, c);
        return 0;
    }
    /* The rest goes to `body`, so `in`, which the head's spans point
     * into, never moves. */
    size_t most = hd->framing == SW_HTTP_LENGTH ? (size_t)hd->content_length
                                                : chunked_most(h, x);
    if (grow(h, c, &c->body, avail, most) != 0)
        return 0;
    memcpy(c->body.data, c->in.data + hd->len, avail);
    c->body.len = avail;
    c->in.len = hd->len;
    if (hd->framing == SW_HTTP_CHUNKED)
        sw_chunked_init(&c->chunked);
    c->state = SW_CONN_BODY;
    c->deadline_ms = c->request_deadline_ms;
    if (hd->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (sw_buf_append(&c->out, cont, sizeof cont - 1) != 0 || sw_conn_write(c) != 1) {
            /* 25 bytes into an empty socket buffer do not block. */
            close_conn(h, c);
            return 0;
        }
        c->out_sent = 0;
        sw_buf_reset(&c->out);
    }
    return 1;
}

static void body_too_large(sw_httpd *h, sw_conn *c)
{
    char detail[200];
    sw_http_exchange *x = c->x;
    snprintf(detail, sizeof detail, "the body is over the limit of %zu bytes%s%s%s; split it",
             x->body_max, x->body_limit ? " (" : "", x->body_limit ? x->body_limit : "",
             x->body_limit ? ")" : "");
    refuse(h, c, 413, detail);
}

/* Run the state machine on what is buffered; read more, lend, answer or
 * close. Ends with the connection armed, lent, or closed. */
static void process(sw_httpd *h, sw_conn *c)
{
    for (;;) {
        if (c->broken) {
            close_conn(h, c);
            return;
        }
        size_t cap, most;
        sw_buf *b = &c->in;
        switch (c->state) {
        case SW_CONN_IDLE:
        case SW_CONN_HEAD: {
            if (c->in.len == 0) {
                if (c->eof) {
                    close_conn(h, c);
                    return;
                }
                cap = most = h->lim.max_head_bytes;
                break;
            }
            if (c->state == SW_CONN_IDLE) {
                int64_t now = sw_clock_mono_ms();
                idle_remove(h, c);
                if (c->x == NULL && (c->x = calloc(1, sizeof *c->x)) == NULL) {
                    close_conn(h, c);
                    return;
                }
                memset(c->x, 0, sizeof *c->x);
                c->x->out = &c->out;
                snprintf(c->x->client, sizeof c->x->client, "%s", c->peer);
                c->state = SW_CONN_HEAD;
                c->request_deadline_ms = now + h->o.request_timeout_ms;
                c->deadline_ms = now + h->o.header_timeout_ms;
                if (c->deadline_ms > c->request_deadline_ms)
                    c->deadline_ms = c->request_deadline_ms;
                c->scanned = 0;
            }
            long r = sw_http_head_read(&c->x->head, c->in.data, c->in.len, &c->scanned, &h->lim);
            if (r < 0) {
                char detail[200];
                snprintf(detail, sizeof detail, "%s%s", c->x->head.detail,
                         c->x->head.status == 431 && !strstr(c->x->head.detail, "fields")
                             ? " ([server] max_header_bytes)" : "");
                refuse(h, c, c->x->head.status, detail);
                return;
            }
            if (r == 0) {
                if (c->eof) {
                    close_conn(h, c);
                    return;
                }
                cap = most = h->lim.max_head_bytes;
                break;
            }
            if (!on_head(h, c))
                return;
            continue;
        }
        case SW_CONN_BODY: {
            sw_http_exchange *x = c->x;
            b = &c->body;
            if (x->head.framing == SW_HTTP_LENGTH) {
                if (b->len >= x->head.content_length) {
                    x->body = b->data;
                    x->body_len = b->len;
                    c->rpos = b->len;
                    lend(h, c);
                    return;
                }
                if (c->eof) {
                    char detail[160];
                    snprintf(detail, sizeof detail, "the body ended after %zu of the %llu bytes "
                             "Content-Length announced; nothing was queued", b->len,
                             (unsigned long long)x->head.content_length);
                    refuse(h, c, 400, detail);
                    return;
                }
                cap = most = (size_t)x->head.content_length;
                break;
            }
            int rc = sw_chunked_decode(&c->chunked, b->data, b->len, &c->rpos, &c->wpos, 0,
                                       x->body_max, h->lim.max_head_bytes);
            if (rc < 0) {
                if (c->chunked.status == 413)
                    body_too_large(h, c);
                else
                    refuse(h, c, c->chunked.status, c->chunked.detail);
                return;
            }
            if (rc == 1) {
                /* Bytes after the last chunk (from rpos) are the next
                 * request's: after_response() moves them to `in`. */
                x->body = b->data;
                x->body_len = c->wpos;
                lend(h, c);
                return;
            }
            /* Keep only data and the undecoded rest: the buffer stays
             * about the size of the body. */
            memmove(b->data + c->wpos, b->data + c->rpos, b->len - c->rpos);
            b->len = c->wpos + (b->len - c->rpos);
            c->rpos = c->wpos;
            if (c->eof) {
                refuse(h, c, 400, "the chunked body ended before its last chunk; nothing "
                                  "was queued");
                return;
            }
            cap = b->len + BODY_STEP;
            most = chunked_most(h, x);
            break;
        }
        case SW_CONN_DISCARD: {
            size_t n = c->in.len < c->discard_left ? c->in.len : (size_t)c->discard_left;
            consume(c, n);
            c->discard_left -= n;
            if (c->discard_left == 0) {
                enter_idle(h, c);
                continue;
            }
            if (c->eof) {
                close_conn(h, c);
                return;
            }
            cap = most = BODY_STEP;
            break;
        }
        default:
            return;
        }
        /* The buffer doubles as bytes come, up to what the request can
         * take: a body announced but not sent costs nothing. */
        if (b->len + 1 >= b->cap && grow(h, c, b, b->len + 1, most) != 0)
            return;
        /* More bytes are needed. OpenSSL may hold some already, which
         * epoll cannot see. */
        c->read_cap = cap;
        if (c->ssl && SSL_has_pending(c->ssl) && b->len < cap && !c->eof &&
            sw_conn_read(c, b, cap) > 0)
            continue;
        arm(h, c, c->tls_want_write ? EPOLLOUT : EPOLLIN);
        if (c->broken) {
            close_conn(h, c);
            return;
        }
        return;
    }
}

/* --- events ------------------------------------------------------------ */

static void on_event(sw_httpd *h, sw_conn *c)
{
    switch (c->state) {
    case SW_CONN_HANDSHAKE: {
        int r = sw_conn_handshake(c);
        if (r < 0) {
            close_conn(h, c);
        } else if (r == 0) {
            arm(h, c, c->tls_want_write ? EPOLLOUT : EPOLLIN);
        } else {
            enter_idle(h, c);
            process(h, c);
        }
        return;
    }
    case SW_CONN_WRITE: {
        int w = sw_conn_write(c);
        if (w < 0)
            close_conn(h, c);
        else if (w == 0)
            arm(h, c, c->tls_want_read ? EPOLLIN : EPOLLOUT);
        else
            after_response(h, c);
        return;
    }
    case SW_CONN_LINGER: {
        size_t n = sw_conn_drain(c, h->scratch, sizeof h->scratch, (size_t)c->discard_left);
        c->discard_left = n >= c->discard_left ? 0 : c->discard_left - n;
        if (c->eof || c->broken || c->discard_left == 0)
            close_conn(h, c);
        else
            arm(h, c, EPOLLIN);
        return;
    }
    case SW_CONN_IDLE:
    case SW_CONN_HEAD:
    case SW_CONN_BODY:
    case SW_CONN_DISCARD: {
        sw_buf *b = c->state == SW_CONN_BODY ? &c->body : &c->in;
        /* An idle connection gave its buffer back: a first step again. */
        if (b->cap == 0 && grow(h, c, b, 1, h->lim.max_head_bytes) != 0)
            return;
        sw_conn_read(c, b, c->read_cap);
        process(h, c);
        return;
    }
    case SW_CONN_LENT:
    case SW_CONN_CLOSED:
        return;
    }
}

/* Close the longest-idle connection of listener `li` to make room. */
static int evict_idle(sw_httpd *h, int li)
{
    for (sw_conn *c = h->idle_head; c; c = c->inext) {
        if (c->listener == li) {
            atomic_fetch_add_explicit(&h->closed_idle, 1, memory_order_relaxed);
            close_conn(h, c);
            return 1;
        }
    }
    return 0;
}

/* Answer a connection we will not keep, before it sent anything (plain
 * HTTP only; a TLS client would not understand it), and close it. */
static void turn_away(int fd, int tls, int status, const char *type, const char *detail)
{
    if (!tls) {
        char body[320], msg[512];
        int bn = snprintf(body, sizeof body, "{\"type\":\"urn:spillway:problem:%s\",\"title\":"
                          "\"Connection refused\",\"status\":%d,\"detail\":\"%s\"}", type,
                          status, detail);
        int n = snprintf(msg, sizeof msg, "HTTP/1.1 %d %s\r\nContent-Type: application/"
                         "problem+json\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
                         "Connection: close\r\n\r\n%s", status, sw_http_reason(status), bn,
                         body);
        if (n > 0 && (size_t)n < sizeof msg)
            (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_WR);
        char drop[4096];
        while (recv(fd, drop, sizeof drop, MSG_DONTWAIT) > 0) {
        }
    }
    close(fd);
}

static void add_conn(sw_httpd *h, int fd, int li, const struct sockaddr_storage *ss)
{
    listener *l = &h->l[li];
    sw_peer_addr a;
    char text[48];
    int64_t now = sw_clock_mono_ms();
    to_peer_addr(ss, &a, text, sizeof text);
    if (atomic_load(&l->open) >= l->max_connections && !evict_idle(h, li)) {
        atomic_fetch_add_explicit(&h->refused_full, 1, memory_order_relaxed);
        if (now - h->full_logged_ms >= 10000) {
            h->full_logged_ms = now;
            sw_log_warn("connection refused: server full", "listen=%s max_connections=%d "
                        "action=\"every connection is mid-request; raise [server] "
                        "max_connections or add servers\"", l->addr, l->max_connections);
        }
        turn_away(fd, l->tls != NULL, 503, "server-full", "every connection slot is busy "
                  "with a request; retry shortly");
        return;
    }
    if (sw_peers_add(&l->peers, &a, (uint32_t)l->max_per_address) < 0) {
        atomic_fetch_add_explicit(&h->refused_addr, 1, memory_order_relaxed);
        turn_away(fd, l->tls != NULL, 429, "too-many-connections", "this address has as "
                  "many connections open as it may ([server] max_connections_per_address); "
                  "reuse them (keep-alive) or close some");
        return;
    }
    sw_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (l->tls && (c->ssl = SSL_new(l->tls)) == NULL)) {
        sw_peers_remove(&l->peers, &a);
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->h = h;
    c->fd = fd;
    c->listener = li;
    c->addr = a;
    snprintf(c->peer, sizeof c->peer, "%s", text);
    if (c->ssl) {
        SSL_set_fd(c->ssl, fd);
        SSL_set_accept_state(c->ssl);
        c->state = SW_CONN_HANDSHAKE;
        c->deadline_ms = now + h->o.header_timeout_ms;
    } else {
        enter_idle(h, c);
    }
    c->read_cap = h->lim.max_head_bytes;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    atomic_fetch_add(&l->open, 1);
    atomic_fetch_add_explicit(&h->accepted, 1, memory_order_relaxed);
    arm(h, c, EPOLLIN);
    if (c->broken)
        close_conn(h, c);
}

static void pause_listener(sw_httpd *h, listener *l, int64_t until)
{
    epoll_ctl(h->ep, EPOLL_CTL_DEL, l->fd, NULL);
    l->paused_until = until;
}

static void accept_some(sw_httpd *h, int li)
{
    listener *l = &h->l[li];
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sw_log_warn("cannot accept: out of file descriptors", "listen=%s errno=%d "
                            "action=\"raise LimitNOFILE, or lower [server] max_connections\"",
                            l->addr, errno);
                pause_listener(h, l, sw_clock_mono_ms() + TICK_MS);
            }
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        add_conn(h, fd, li, &ss);
    }
}

/* Back from a worker: 1 reply sent, 0 still to send, -1 peer gone. */
static void on_return(sw_httpd *h, sw_conn *c)
{
    if (c->ret < 0) {
        close_conn(h, c);
    } else if (c->ret == 0) {
        c->state = SW_CONN_WRITE;
        c->deadline_ms = sw_clock_mono_ms() + h->o.request_timeout_ms;
        arm(h, c, c->tls_want_read ? EPOLLIN : EPOLLOUT);
        if (c->broken)
            close_conn(h, c);
    } else {
        after_response(h, c);
    }
}

static void drain_wake(sw_httpd *h)
{
    uint64_t v;
    (void)!read(h->wake, &v, sizeof v);
    pthread_mutex_lock(&h->ret_lock);
    sw_conn *list = h->ret_head;
    int fds[64], ls[64], n = h->nadopt;
    memcpy(fds, h->adopt_fd, sizeof fds);
    memcpy(ls, h->adopt_l, sizeof ls);
    h->ret_head = h->ret_tail = NULL;
    h->nadopt = 0;
    h->wake_pending = 0;
    pthread_mutex_unlock(&h->ret_lock);
    while (list) {
        sw_conn *c = list;
        list = c->ret_next;
        on_return(h, c);
    }
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_family = AF_UNIX;
        if (h->stopping)
            close(fds[i]);
        else
            add_conn(h, fds[i], ls[i], &ss);
    }
}

static void wake(sw_httpd *h)
{
    uint64_t one = 1;
    (void)!write(h->wake, &one, sizeof one);
}

/* Deadlines and housekeeping, every TICK_MS. */
static void sweep(sw_httpd *h, int64_t now)
{
    for (int i = 0; i < h->nl; i++) {
        listener *l = &h->l[i];
        if (l->paused_until && now >= l->paused_until && !h->stopping) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
            if (epoll_ctl(h->ep, EPOLL_CTL_ADD, l->fd, &ev) == 0)
                l->paused_until = 0;
        }
    }
    sw_conn *next;
    for (sw_conn *c = h->conns; c; c = next) {
        next = c->next;
        if (c->state == SW_CONN_LENT)
            continue;
        if (c->state == SW_CONN_IDLE && c->in.len == 0 &&
            now - c->idle_since_ms >= IDLE_RELEASE_MS && (c->in.cap || c->out.cap || c->x)) {
            free_input(h, c);
            sw_buf_free(&c->out);
            free(c->x);
            c->x = NULL;
        }
        if (now < c->deadline_ms)
            continue;
        if (c->state == SW_CONN_HEAD || c->state == SW_CONN_BODY) {
            char detail[160];
            snprintf(detail, sizeof detail, "the request did not arrive within %d ms "
                     "([server] %s); nothing was queued",
                     c->state == SW_CONN_HEAD ? h->o.header_timeout_ms : h->o.request_timeout_ms,
                     c->state == SW_CONN_HEAD ? "header_timeout_ms" : "request_timeout_ms");
            sw_log_warn("request too slow; connection closed", "peer=%s state=%s", c->peer,
                        c->state == SW_CONN_HEAD ? "head" : "body");
            /* It may be armed for reading: its reply is written now. */
            refuse(h, c, 408, detail);
        } else {
            if (c->state == SW_CONN_HANDSHAKE || (c->state == SW_CONN_IDLE && c->requests == 0))
                atomic_fetch_add_explicit(&h->timeouts, 1, memory_order_relaxed);
            close_conn(h, c);
        }
    }
}

static void begin_stop(sw_httpd *h)
{
    h->stopping = 1;
    h->stop_deadline = sw_clock_mono_ms() + h->o.request_timeout_ms + 5000;
    for (int i = 0; i < h->nl; i++) {
        if (h->l[i].fd >= 0) {
            epoll_ctl(h->ep, EPOLL_CTL_DEL, h->l[i].fd, NULL);
            close(h->l[i].fd);
            h->l[i].fd = -1;
        }
    }
    sw_conn *next;
    for (sw_conn *c = h->conns; c; c = next) {
        next = c->next;
        if (c->state != SW_CONN_LENT && c->state != SW_CONN_WRITE)
            close_conn(h, c);
    }
}

/* Free the connections closed during this loop turn. */
static void bury(sw_httpd *h)
{
    while (h->graveyard) {
        sw_conn *c = h->graveyard;
        h->graveyard = c->next;
        free(c);
    }
}

static void *loop(void *arg)
{
    sw_httpd *h = arg;
    struct epoll_event ev[128];
    int64_t next_tick = sw_clock_mono_ms() + TICK_MS;
    for (;;) {
        if (atomic_load(&h->stop) && !h->stopping)
            begin_stop(h);
        if (h->stopping && h->nconns == 0)
            break;
        int64_t now = sw_clock_mono_ms();
        int wait = next_tick > now ? (int)(next_tick - now) : 0;
        int n = epoll_wait(h->ep, ev, 128, wait);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &h->wake) {
                drain_wake(h);
            } else if (p >= (void *)&h->l[0] && p < (void *)&h->l[h->nl]) {
                if (!h->stopping)
                    accept_some(h, (int)((listener *)p - h->l));
            } else {
                on_event(h, p);
            }
        }
        now = sw_clock_mono_ms();
        if (now >= next_tick) {
            sweep(h, now);
            next_tick = now + TICK_MS;
            if (h->stopping && now >= h->stop_deadline) {
                /* Workers still hold some: give up on their replies. */
                for (sw_conn *c = h->conns; c; c = c->next) {
                    if (c->state == SW_CONN_WRITE)
                        close_conn(h, c);
                }
            }
        }
        bury(h);
    }
    bury(h);
    return NULL;
}

/* --- workers ----------------------------------------------------------- */

static void *pool_start(void *ctx)
{
    pool_ctx *pc = ctx;
    sw_httpd *h = pc->h;
    return h->app.worker_start ? h->app.worker_start(h->app.user, pc->pool) : NULL;
}

static void pool_stop(void *ctx, void *state)
{
    pool_ctx *pc = ctx;
    sw_httpd *h = pc->h;
    if (h->app.worker_stop)
        h->app.worker_stop(h->app.user, pc->pool, state);
}

static void pool_run(void *ctx, void *state, sw_pool_item *it)
{
    sw_conn *c = (sw_conn *)(void *)it;
    sw_httpd *h = ((pool_ctx *)ctx)->h;
    sw_http_exchange *x = c->x;
    h->app.serve(h->app.user, state, x);
    if (x->status == 0) {
        sw_problem p = {0};
        sw_problem_set(&p, 500, "internal", "Internal error", "the request was not answered");
        x->close = 1;
        if (sw_http_reply_problem(x, &p, NULL) != 0)
            x->status = 0;
    }
    if (h->app.done && x->status != 0)
        h->app.done(h->app.user, x);
    c->out_sent = 0;
    c->ret = x->status != 0 && c->out.len > 0 ? sw_conn_write(c) : -1;
    pthread_mutex_lock(&h->ret_lock);
    c->ret_next = NULL;
    if (h->ret_tail)
        h->ret_tail->ret_next = c;
    else
        h->ret_head = c;
    h->ret_tail = c;
    int signal = !h->wake_pending;
    h->wake_pending = 1;
    pthread_mutex_unlock(&h->ret_lock);
    if (signal)
        wake(h);
}

/* --- setup ------------------------------------------------------------- */

static int listen_on(listener *l, const char *addr, char *errstr, size_t len)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0') {
        snprintf(errstr, len, "listen address \"%s\" is not host:port", addr);
        return -1;
    }
    size_t hn = (size_t)(colon - addr);
    if (addr[0] == '[' && colon[-1] == ']') {
        addr++;
        hn -= 2;
    }
    if (hn >= sizeof host) {
        snprintf(errstr, len, "listen address \"%s\" is too long", addr);
        return -1;
    }
    memcpy(host, addr, hn);
    host[hn] = '\0';
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(hn ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(errstr, len, "cannot resolve listen address %s: %s", l->addr,
                 gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(errstr, len, "cannot listen on %s: %s", l->addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    l->fd = fd;
    return 0;
}

/* Raise the open-files limit as far as allowed; lower max_connections
 * where they would not fit. */
static void fit_descriptors(sw_httpd *h)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    long spare = 64;
    for (int i = 0; i < h->o.npools; i++)
        spare += 2L * h->o.pools[i].threads;
    long room = (long)rl.rlim_cur - spare;
    for (int i = 0; i < h->nl && h->nl > 0; i++) {
        long want = h->l[i].max_connections;
        if (want > room / h->nl) {
            long fit = room / h->nl > 16 ? room / h->nl : 16;
            sw_log_warn("max_connections lowered to fit the open-files limit",
                        "listen=%s max_connections=%ld nofile=%llu action=\"raise "
                        "LimitNOFILE\"", h->l[i].addr, fit, (unsigned long long)rl.rlim_cur);
            h->l[i].max_connections = (int)fit;
        }
    }
}

static int parse_trusted(sw_httpd *h, const char *list, char *errstr, size_t len)
{
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        if (h->ntrusted == MAX_TRUSTED || parse_addr(p, n, &h->trusted[h->ntrusted]) != 0) {
            snprintf(errstr, len, "[server] trusted_proxies: \"%.*s\" is not an IP address "
                     "(at most %d)", (int)(n > 64 ? 64 : n), p, MAX_TRUSTED);
            return -1;
        }
        h->ntrusted++;
        p += n;
    }
    return 0;
}

sw_httpd *sw_httpd_start(const sw_httpd_opts *o, const sw_httpd_app *app, char *errstr,
                         size_t len)
{
    sw_httpd *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(errstr, len, "out of memory");
        return NULL;
    }
    h->o = *o;
    h->app = *app;
    h->lim.max_head_bytes = o->max_head_bytes;
    h->ep = h->wake = -1;
    pthread_mutex_init(&h->ret_lock, NULL);
    for (int i = 0; i < SW_HTTPD_MAX_LISTENERS; i++)
        h->l[i].fd = -1;
    h->nl = o->nlisten;
    if (parse_trusted(h, o->trusted_proxies, errstr, len) != 0)
        goto fail;
    for (int i = 0; i < h->nl; i++) {
        listener *l = &h->l[i];
        snprintf(l->addr, sizeof l->addr, "%s", o->listen[i].addr);
        l->tls = o->listen[i].tls;
        l->max_connections = o->listen[i].max_connections;
        l->max_per_address = o->listen[i].max_per_address;
    }
    fit_descriptors(h);
    for (int i = 0; i < h->nl; i++) {
        listener *l = &h->l[i];
        if (sw_peers_init(&l->peers, (size_t)l->max_connections) != 0) {
            snprintf(errstr, len, "out of memory");
            goto fail;
        }
        if (listen_on(l, l->addr, errstr, len) != 0)
            goto fail;
    }
    h->ep = epoll_create1(EPOLL_CLOEXEC);
    h->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->ep < 0 || h->wake < 0) {
        snprintf(errstr, len, "cannot make epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &h->wake};
    epoll_ctl(h->ep, EPOLL_CTL_ADD, h->wake, &ev);
    for (int i = 0; i < h->nl; i++) {
        struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &h->l[i]};
        epoll_ctl(h->ep, EPOLL_CTL_ADD, h->l[i].fd, &lev);
    }
    for (int i = 0; i < o->npools; i++) {
        h->pctx[i] = (pool_ctx){h, i};
        sw_pool_fns fns = {&h->pctx[i], pool_start, pool_run, pool_stop};
        h->pools[i] = sw_pool_start(o->pools[i].name, o->pools[i].threads, o->pools[i].nice,
                                    &fns);
        if (h->pools[i] == NULL) {
            snprintf(errstr, len, "cannot start the %s worker threads", o->pools[i].name);
            goto fail;
        }
    }
    if (pthread_create(&h->thread, NULL, loop, h) != 0) {
        snprintf(errstr, len, "cannot start the I/O thread");
        goto fail;
    }
    h->started = 1;
    return h;
fail:
    sw_httpd_stop(h);
    return NULL;
}

int sw_httpd_adopt(sw_httpd *h, int fd, int li)
{
    /* The I/O thread must never block on it. */
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    pthread_mutex_lock(&h->ret_lock);
    int ok = h->nadopt < (int)(sizeof h->adopt_fd / sizeof h->adopt_fd[0]) && li >= 0 &&
             li < h->nl;
    if (ok) {
        h->adopt_fd[h->nadopt] = fd;
        h->adopt_l[h->nadopt++] = li;
    }
    pthread_mutex_unlock(&h->ret_lock);
    if (!ok) {
        close(fd);
        return -1;
    }
    wake(h);
    return 0;
}

void sw_httpd_stats_get(sw_httpd *h, sw_httpd_stats *s)
{
    memset(s, 0, sizeof *s);
    s->nlisten = h->nl;
    for (int i = 0; i < h->nl; i++) {
        s->listen[i].open = atomic_load(&h->l[i].open);
        s->listen[i].idle = atomic_load(&h->l[i].idle);
    }
    s->npools = h->o.npools;
    for (int i = 0; i < h->o.npools; i++) {
        s->pool_name[i] = h->o.pools[i].name;
        sw_pool_stats_get(h->pools[i], &s->pool[i]);
    }
    s->accepted = atomic_load(&h->accepted);
    s->refused_per_address = atomic_load(&h->refused_addr);
    s->refused_full = atomic_load(&h->refused_full);
    s->closed_idle = atomic_load(&h->closed_idle);
    s->timeouts = atomic_load(&h->timeouts);
    s->malformed = atomic_load(&h->malformed);
}

void sw_httpd_stop(sw_httpd *h)
{
    if (h == NULL)
        return;
    if (h->started) {
        atomic_store(&h->stop, 1);
        wake(h);
        pthread_join(h->thread, NULL);
    }
    for (int i = 0; i < SW_HTTPD_MAX_POOLS; i++)
        sw_pool_stop(h->pools[i]);
    for (int i = 0; i < SW_HTTPD_MAX_LISTENERS; i++) {
        if (h->l[i].fd >= 0)
            close(h->l[i].fd);
        sw_peers_free(&h->l[i].peers);
    }
    /* Sockets adopted after the loop ended. */
    for (int i = 0; i < h->nadopt; i++)
        close(h->adopt_fd[i]);
    if (h->ep >= 0)
        close(h->ep);
    if (h->wake >= 0)
        close(h->wake);
    pthread_mutex_destroy(&h->ret_lock);
    free(h);
}
