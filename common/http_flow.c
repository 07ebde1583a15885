/* One connection's requests, in the I/O thread: read, frame, route, read
 * the body, answer or lend to a worker, then the next request or a
 * lingering close. See httpd.h for the states and httpd_int.h for who
 * owns what. Nothing here calls back into itself: every step returns to
 * sw_flow_process()'s loop, however many requests are pipelined. */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "clock.h"
#include "httpd_int.h"
#include "log.h"

/* --- buffers ------------------------------------------------------------- */

static char *req(sw_conn *c)
{
    return c->in.data + c->in_off;
}

static size_t req_len(const sw_conn *c)
{
    return c->in.len - c->in_off;
}

/* Skip `n` bytes of finished requests at the front of the input. */
static void consume(sw_conn *c, size_t n)
{
    c->in_off += n < req_len(c) ? n : req_len(c);
    if (c->in_off == c->in.len)
        c->in_off = c->in.len = 0;
    c->scanned = 0;
}

/* Move what is left to the front of `in`, before reading more; only
 * while no request's spans point into it. */
static void compact(sw_conn *c)
{
    if (c->in_off == 0)
        return;
    memmove(c->in.data, req(c), req_len(c));
    c->in.len -= c->in_off;
    c->in_off = 0;
}

static size_t doubled(size_t cap, size_t need, size_t most)
{
    size_t n = cap ? cap : SW_STEP;
    while (n < need + 1)
        n *= 2;
    if (n > most + 1)
        n = most + 1 > need + 1 ? most + 1 : need + 1;
    return n;
}

/* Room for `need` bytes of head (or dropped bytes) in `in`. Heads are
 * bounded per connection, so they are not counted against the body
 * budget: a full budget never refuses a probe. 0, or -1 after closing
 * (out of memory). */
static int grow_in(sw_httpd *h, sw_conn *c, size_t need, size_t most)
{
    if (c->in.cap >= need + 1)
        return 0;
    size_t cap = doubled(c->in.cap, need, most);
    char *p = realloc(c->in.data, cap);
    if (p == NULL) {
        sw_log_error("out of memory for a request head", "peer=%s", c->peer);
        sw_httpd_close(h, c);
        return -1;
    }
    c->in.data = p;
    c->in.cap = cap;
    return 0;
}

/* Room for `need` bytes of body, charged to the server's budget and the
 * client address's share. 0, or -1 after refusing the request. */
static int grow_body(sw_httpd *h, sw_conn *c, size_t need, size_t most)
{
    if (c->body.cap >= need + 1)
        return 0;
    size_t cap = doubled(c->body.cap, need, most);
    if (sw_httpd_charge(h, c, (int64_t)(cap - c->body.cap)) != 0) {
        sw_flow_refuse(h, c, 503, "the server holds as many request bodies as it may at once "
                                  "(for this client address, or for all); nothing was queued, "
                                  "retry shortly");
        return -1;
    }
    char *p = realloc(c->body.data, cap);
    if (p == NULL) {
        (void)sw_httpd_charge(h, c, -(int64_t)(cap - c->body.cap));
        sw_flow_refuse(h, c, 503, "out of memory for the request body; nothing was queued, "
                                  "retry");
        return -1;
    }
    c->body.data = p;
    c->body.cap = cap;
    return 0;
}

static void free_body(sw_httpd *h, sw_conn *c)
{
    if (c->body.cap)
        (void)sw_httpd_charge(h, c, -(int64_t)c->body.cap);
    sw_buf_free(&c->body);
    c->rpos = c->wpos = 0;
}

void sw_flow_release(sw_httpd *h, sw_conn *c)
{
    free_body(h, c);
    sw_buf_free(&c->in);
    c->in_off = 0;
    sw_buf_free(&c->out);
    free(c->x);
    c->x = NULL;
}

/* --- replies ------------------------------------------------------------- */

static void note_done(sw_httpd *h, sw_conn *c)
{
    if (h->app.done && c->x->status != 0)
        h->app.done(h->app.user, c->x);
}

/* Send c->out. 1 when it went out whole and the caller should go on with
 * the connection; 0 when it waits for the socket, lingers or is closed. */
static int send_reply(sw_httpd *h, sw_conn *c)
{
    c->out_sent = 0;
    int w = sw_conn_write(c);
    if (w < 0) {
        sw_httpd_close(h, c);
        return 0;
    }
    if (w == 0) {
        c->state = SW_CONN_WRITE;
        c->deadline_ms = sw_clock_mono_ms() + h->o.request_timeout_ms;
        sw_httpd_arm(h, c, c->tls_want_read ? EPOLLIN : EPOLLOUT);
        if (c->broken)
            sw_httpd_close(h, c);
        return 0;
    }
    return sw_flow_after_response(h, c);
}

static void start_linger(sw_httpd *h, sw_conn *c)
{
    if (h->stopping) {
        sw_httpd_close(h, c);
        return;
    }
    /* Nothing more will be read as a request: the buffers go now. */
    free_body(h, c);
    sw_buf_free(&c->in);
    c->in_off = 0;
    sw_httpd_idle_remove(h, c);
    sw_conn_shutdown_write(c);
    c->state = SW_CONN_LINGER;
    c->discard_left = SW_LINGER_BUDGET;
    c->deadline_ms = sw_clock_mono_ms() + SW_HTTPD_LINGER_MS;
    sw_httpd_arm(h, c, EPOLLIN);
    if (c->broken)
        sw_httpd_close(h, c);
}

void sw_flow_refuse(sw_httpd *h, sw_conn *c, int status, const char *detail)
{
    static const struct { int status; const char *type, *title; } kinds[] = {
        {400, "bad-request", "Malformed request"},
        {408, "request-timeout", "Request timeout"},
        {413, "body-too-large", "Body too large"},
        {417, "expectation-failed", "Expectation not supported"},
        {431, "headers-too-large", "Request headers too large"},
        {500, "internal", "Internal error"},
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
        sw_httpd_close(h, c);
        return;
    }
    sw_problem p = {0};
    sw_problem_set(&p, status, type, title, "%s", detail);
    sw_http_exchange *x = c->x;
    x->close = 1;
    x->by_core = 1;
    x->out = &c->out;
    if (status == 408)
        atomic_fetch_add_explicit(&h->timeouts, 1, memory_order_relaxed);
    else if (status == 400 || status == 417 || status == 431 || status == 501 || status == 505)
        atomic_fetch_add_explicit(&h->malformed, 1, memory_order_relaxed);
    if (sw_http_reply_problem(x, &p, status == 503 ? "Retry-After: 1\r\n" : NULL) != 0) {
        sw_httpd_close(h, c);
        return;
    }
    note_done(h, c);
    /* The reply is formatted: the body is not needed any more. */
    free_body(h, c);
    send_reply(h, c);
}

void sw_flow_enter_idle(sw_httpd *h, sw_conn *c)
{
    int64_t now = sw_clock_mono_ms();
    c->state = SW_CONN_IDLE;
    c->idle_since_ms = now;
    c->deadline_ms = now + (c->requests ? h->o.idle_timeout_ms : h->o.header_timeout_ms);
    if (!c->in_idle)
        sw_httpd_idle_append(h, c);
}

int sw_flow_after_response(sw_httpd *h, sw_conn *c)
{
    c->requests++;
    c->out_sent = 0;
    sw_buf_reset(&c->out);
    if (c->x->close || h->stopping) {
        start_linger(h, c);
        return 0;
    }
    if (c->discard_left > 0) {
        consume(c, req_len(c));
        c->state = SW_CONN_DISCARD;
        c->deadline_ms = sw_clock_mono_ms() + h->o.request_timeout_ms;
    } else {
        consume(c, c->req_end);
        /* What followed a chunked body is the next request's. */
        size_t rest = c->body.len > c->rpos ? c->body.len - c->rpos : 0;
        if (rest) {
            compact(c);
            if (grow_in(h, c, c->in.len + rest, c->in.len + rest) != 0)
                return 0;
            memcpy(c->in.data + c->in.len, c->body.data + c->rpos, rest);
            c->in.len += rest;
        }
        sw_flow_enter_idle(h, c);
    }
    /* A body's buffer goes back now, not at the idle sweep. */
    free_body(h, c);
    if (c->in.len == 0 && c->in.cap > 2 * SW_STEP) {
        sw_buf_free(&c->in);
        c->in_off = 0;
    }
    return 1;
}

/* --- requests ------------------------------------------------------------ */

/* The client's address: the last X-Forwarded-For element from a trusted
 * proxy (the hop that proxy saw), else the peer's. */
static void set_client(sw_httpd *h, sw_conn *c)
{
    sw_http_exchange *x = c->x;
    snprintf(x->client, sizeof x->client, "%s", c->peer);
    int trusted = 0;
    for (int i = 0; i < h->ntrusted && !trusted; i++)
        trusted = memcmp(&h->trusted[i], &c->addr, sizeof c->addr) == 0;
    if (!trusted)
        return;
    const char *xff = NULL;
    for (int i = 0; i < x->head.nfields; i++) {
        /* The last field line: a proxy that appends its own adds it last. */
        if (sw_http_token_eq(x->head.fields[i].name, x->head.fields[i].name_len,
                             "x-forwarded-for"))
            xff = x->head.fields[i].value;
    }
    if (xff == NULL)
        return;
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strcspn(last, " \t");
    char text[64];
    unsigned char any[16];
    if (n > 0 && n < sizeof text) {
        memcpy(text, last, n);
        text[n] = '\0';
        if (inet_pton(AF_INET, text, any) == 1 || inet_pton(AF_INET6, text, any) == 1)
            snprintf(x->client, sizeof x->client, "%s", text);
    }
}

/* The most bytes a chunked body's buffer holds: the data, and undecoded
 * coding of at most one read step (or what came with the head). */
static size_t chunked_most(const sw_httpd *h, const sw_http_exchange *x)
{
    return x->body_max + SW_STEP + h->lim.max_head_bytes;
}

static void too_large(sw_httpd *h, sw_conn *c, uint64_t announced)
{
    char detail[200];
    const sw_http_exchange *x = c->x;
    if (x->body_max == 0) {
        sw_flow_refuse(h, c, 400, "this resource takes no request body; send the request "
                                  "without one");
        return;
    }
    char of[40] = "";
    if (announced != 0 && announced != UINT64_MAX)
        snprintf(of, sizeof of, "of %llu bytes ", (unsigned long long)announced);
    snprintf(detail, sizeof detail, "the body %sis over the limit of %zu bytes%s%s%s; split it",
             of, x->body_max, x->body_limit ? " (" : "", x->body_limit ? x->body_limit : "",
             x->body_limit ? ")" : "");
    sw_flow_refuse(h, c, 413, detail);
}

/* The head is framed: route it, then read its body, lend it or answer.
 * 1 to go on processing the connection, 0 when it has moved on (lent,
 * waiting for the socket, lingering, closed). */
static int on_head(sw_httpd *h, sw_conn *c)
{
    sw_http_exchange *x = c->x;
    sw_http_head *hd = &x->head;
    if (sw_http_exchange_prepare(x, req(c)) != 0) {
        sw_flow_refuse(h, c, hd->status, hd->detail);
        return 0;
    }
    set_client(h, c);
    x->head_only = strcmp(x->method, "HEAD") == 0;
    x->started_us = sw_clock_now_us();
    x->out = &c->out;
    x->core = c;
    size_t avail = req_len(c) - hd->len;
    /* If route() answers without the body, can the connection stay? Only
     * when the rest of the body is small enough to drop, and the client
     * is not waiting for a 100 before it sends it. */
    int unread = hd->framing == SW_HTTP_CHUNKED ||
                 (hd->framing == SW_HTTP_LENGTH && hd->content_length > avail);
    int keepable = hd->framing == SW_HTTP_LENGTH && !hd->expect_continue &&
                   hd->content_length - avail <= SW_DISCARD_MAX;
    x->close = unread && !keepable;
    int pool = h->app.route(h->app.user, x);
    if (pool == SW_HTTPD_ANSWERED || x->status != 0) {
        if (x->status == 0) {
            sw_flow_refuse(h, c, 500, "the server could not route the request");
            return 0;
        }
        c->req_end = hd->len;
        c->discard_left = 0;
        if (hd->framing == SW_HTTP_LENGTH) {
            if (hd->content_length <= avail) {
                c->req_end = hd->len + (size_t)hd->content_length;
            } else {
                c->req_end = req_len(c);
                c->discard_left = hd->content_length - avail;
            }
        }
        note_done(h, c);
        c->burst++;
        return send_reply(h, c);
    }
    x->close = 0;
    c->pool = pool < 0 || pool >= h->o.npools ? 0 : pool;
    c->req_end = hd->len;
    c->rpos = c->wpos = 0;
    if (hd->framing == SW_HTTP_NO_BODY) {
        x->body = req(c) + hd->len;
        x->body_len = 0;
        sw_httpd_lend(h, c);
        return 0;
    }
    /* (A chunked body with no data passes where none is taken.) */
    if (hd->framing == SW_HTTP_LENGTH && hd->content_length > x->body_max) {
        too_large(h, c, hd->content_length);
        return 0;
    }
    if (hd->framing == SW_HTTP_LENGTH && hd->content_length <= avail) {
        /* It came with the head. */
        x->body = req(c) + hd->len;
        x->body_len = (size_t)hd->content_length;
        c->req_end = hd->len + x->body_len;
        sw_httpd_lend(h, c);
        return 0;
    }
    /* The rest goes to `body`, so `in`, which the head's spans point
     * into, never moves. */
    size_t most = hd->framing == SW_HTTP_LENGTH ? (size_t)hd->content_length
                                                : chunked_most(h, x);
    if (grow_body(h, c, avail, most) != 0)
        return 0;
    memcpy(c->body.data, req(c) + hd->len, avail);
    c->body.len = avail;
    c->in.len = c->in_off + hd->len;
    if (hd->framing == SW_HTTP_CHUNKED)
        sw_chunked_init(&c->chunked);
    c->state = SW_CONN_BODY;
    c->deadline_ms = c->request_deadline_ms;
    if (hd->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (sw_buf_append(&c->out, cont, sizeof cont - 1) != 0 || sw_conn_write(c) != 1) {
            /* 25 bytes into an empty socket buffer do not block. */
            sw_httpd_close(h, c);
            return 0;
        }
        c->out_sent = 0;
        sw_buf_reset(&c->out);
    }
    return 1;
}

/* A new request's first byte: its exchange and deadlines. 0, or -1 after
 * closing (out of memory). */
static int begin_request(sw_httpd *h, sw_conn *c)
{
    int64_t now = sw_clock_mono_ms();
    sw_httpd_idle_remove(h, c);
    if (c->x == NULL && (c->x = calloc(1, sizeof *c->x)) == NULL) {
        sw_httpd_close(h, c);
        return -1;
    }
    memset(c->x, 0, sizeof *c->x);
    c->x->out = &c->out;
    c->x->route = -1;
    snprintf(c->x->client, sizeof c->x->client, "%s", c->peer);
    c->state = SW_CONN_HEAD;
    c->request_deadline_ms = now + h->o.request_timeout_ms;
    c->deadline_ms = now + h->o.header_timeout_ms;
    if (c->deadline_ms > c->request_deadline_ms)
        c->deadline_ms = c->request_deadline_ms;
    c->scanned = 0;
    return 0;
}

void sw_flow_process(sw_httpd *h, sw_conn *c)
{
    c->burst = 0;
    for (;;) {
        if (c->broken) {
            sw_httpd_close(h, c);
            return;
        }
        size_t cap, most;
        sw_buf *b = &c->in;
        switch (c->state) {
        case SW_CONN_IDLE:
        case SW_CONN_HEAD: {
            if (req_len(c) == 0) {
                if (c->eof) {
                    sw_httpd_close(h, c);
                    return;
                }
                cap = most = h->lim.max_head_bytes;
                break;
            }
            if (c->state == SW_CONN_IDLE) {
                /* Pipelined requests answered at once: the others' turn. */
                if (c->burst >= SW_BURST) {
                    sw_httpd_later(h, c);
                    return;
                }
                if (begin_request(h, c) != 0)
                    return;
            }
            long r = sw_http_head_read(&c->x->head, req(c), req_len(c), &c->scanned, &h->lim);
            if (r < 0) {
                sw_flow_refuse(h, c, c->x->head.status, c->x->head.detail);
                return;
            }
            if (r == 0) {
                if (c->eof) {
                    sw_httpd_close(h, c);
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
                    sw_httpd_lend(h, c);
                    return;
                }
                if (c->eof) {
                    char detail[160];
                    snprintf(detail, sizeof detail, "the body ended after %zu of the %llu bytes "
                             "Content-Length announced; nothing was queued", b->len,
                             (unsigned long long)x->head.content_length);
                    sw_flow_refuse(h, c, 400, detail);
                    return;
                }
                cap = most = (size_t)x->head.content_length;
                break;
            }
            int rc = sw_chunked_decode(&c->chunked, b->data, b->len, &c->rpos, &c->wpos, 0,
                                       x->body_max, h->lim.max_head_bytes);
            if (rc < 0) {
                if (c->chunked.status == 413)
                    too_large(h, c, 0);
                else
                    sw_flow_refuse(h, c, c->chunked.status, c->chunked.detail);
                return;
            }
            if (rc == 1) {
                /* Bytes after the last chunk (from rpos) are the next
                 * request's: sw_flow_after_response() moves them to `in`. */
                x->body = b->data;
                x->body_len = c->wpos;
                sw_httpd_lend(h, c);
                return;
            }
            /* Keep only data and the undecoded rest: the buffer stays
             * about the size of the body. */
            memmove(b->data + c->wpos, b->data + c->rpos, b->len - c->rpos);
            b->len = c->wpos + (b->len - c->rpos);
            c->rpos = c->wpos;
            if (c->eof) {
                sw_flow_refuse(h, c, 400, "the chunked body ended before its last chunk; "
                                          "nothing was queued");
                return;
            }
            /* Small steps: what is read past the last chunk is the next
             * request's and moves to `in`, which is not budgeted. */
            cap = b->len + SW_STEP;
            most = chunked_most(h, x);
            break;
        }
        case SW_CONN_DISCARD: {
            size_t n = req_len(c) < c->discard_left ? req_len(c) : (size_t)c->discard_left;
            consume(c, n);
            c->discard_left -= n;
            if (c->discard_left == 0) {
                sw_flow_enter_idle(h, c);
                continue;
            }
            if (c->eof) {
                sw_httpd_close(h, c);
                return;
            }
            /* Dropped bytes pass through `in` a step at a time. */
            cap = most = SW_STEP;
            break;
        }
        default:
            return;
        }
        /* More bytes are needed. The buffer doubles as they come, up to
         * what the request can take: a body announced but not sent costs
         * nothing. */
        if (b == &c->in) {
            compact(c);
            if (c->in.len + 1 >= c->in.cap && grow_in(h, c, c->in.len + 1, most) != 0)
                return;
        } else if (b->len + 1 >= b->cap && grow_body(h, c, b->len + 1, most) != 0) {
            return;
        }
        c->read_cap = cap;
        /* Woken for bytes before there was a buffer for them, or OpenSSL
         * holds some already (which epoll cannot see): read them now. */
        int now = c->readable || (c->ssl && SSL_has_pending(c->ssl));
        c->readable = 0;
        if (now && b->len < cap && !c->eof &&
            (sw_conn_read(c, b, cap) > 0 || c->eof || c->broken))
            continue;
        sw_httpd_arm(h, c, c->tls_want_write ? EPOLLOUT : EPOLLIN);
        if (c->broken)
            sw_httpd_close(h, c);
        return;
    }
}
