/* The HTTP core's I/O thread: events, deadlines, and the hand-off of
 * complete requests to the worker pools and back; starting and stopping.
 * Who gets a connection is http_accept.c's; one connection's requests are
 * http_flow.c's. */
#include "httpd.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "httpd_int.h"
#include "log.h"

/* Connections idle this long give their buffers back. */
#define IDLE_RELEASE_MS 1000

/* --- connections (for http_flow.c too) ----------------------------------- */

void sw_httpd_arm(sw_httpd *h, sw_conn *c, uint32_t events)
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

void sw_httpd_idle_remove(sw_httpd *h, sw_conn *c)
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

void sw_httpd_idle_append(sw_httpd *h, sw_conn *c)
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

int sw_httpd_charge(sw_httpd *h, sw_conn *c, int64_t delta)
{
    sw_listener *l = &h->l[c->listener];
    if (delta > 0 && h->buffered + (size_t)delta > h->o.max_buffered_bytes)
        return -1;
    uint64_t share = 0;
    if (l->max_per_address) {
        /* An eighth, but room for one whole body at least. */
        share = h->o.max_buffered_bytes / SW_ADDRESS_SHARE;
        if (share < h->o.largest_body)
            share = h->o.largest_body;
    }
    if (sw_peers_charge(&l->peers, &c->key, delta, share) != 0)
        return -1;
    h->buffered = (size_t)((int64_t)h->buffered + delta);
    c->counted = (size_t)((int64_t)c->counted + delta);
    return 0;
}

void sw_httpd_close(sw_httpd *h, sw_conn *c)
{
    if (c->state == SW_CONN_CLOSED)
        return;
    sw_httpd_idle_remove(h, c);
    if (c->counted)
        (void)sw_httpd_charge(h, c, -(int64_t)c->counted);
    sw_listener *l = &h->l[c->listener];
    sw_peers_remove(&l->peers, &c->key);
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

void sw_httpd_later(sw_httpd *h, sw_conn *c)
{
    if (c->in_later)
        return;
    c->in_later = 1;
    c->later_next = h->later;
    h->later = c;
}

static void serve_here(sw_httpd *h, sw_conn *c);

void sw_httpd_lend(sw_httpd *h, sw_conn *c)
{
    /* One owner at a time: only the I/O thread lends, and only what it
     * owns. */
    assert(c->state != SW_CONN_LENT && c->state != SW_CONN_CLOSED);
    c->state = SW_CONN_LENT;
    if (h->app.inline_ok && h->app.inline_ok(h->app.user, c->x)) {
        serve_here(h, c);
        return;
    }
    sw_pool_push(h->pools[c->pool], &c->item);
}

/* --- events -------------------------------------------------------------- */

static void on_event(sw_httpd *h, sw_conn *c)
{
    switch (c->state) {
    case SW_CONN_HANDSHAKE: {
        int r = sw_conn_handshake(c);
        if (r < 0) {
            sw_httpd_close(h, c);
        } else if (r == 0) {
            sw_httpd_arm(h, c, c->tls_want_write ? EPOLLOUT : EPOLLIN);
            if (c->broken)
                sw_httpd_close(h, c);
        } else {
            sw_flow_enter_idle(h, c);
            sw_flow_process(h, c);
        }
        return;
    }
    case SW_CONN_WRITE: {
        int w = sw_conn_write(c);
        if (w < 0) {
            sw_httpd_close(h, c);
        } else if (w == 0) {
            sw_httpd_arm(h, c, c->tls_want_read ? EPOLLIN : EPOLLOUT);
            if (c->broken)
                sw_httpd_close(h, c);
        } else if (sw_flow_after_response(h, c)) {
            sw_flow_process(h, c);
        }
        return;
    }
    case SW_CONN_LINGER: {
        size_t n = sw_conn_drain(c, h->scratch, sizeof h->scratch, (size_t)c->discard_left);
        c->discard_left = n >= c->discard_left ? 0 : c->discard_left - n;
        if (c->eof || c->broken || c->discard_left == 0) {
            sw_httpd_close(h, c);
        } else {
            sw_httpd_arm(h, c, EPOLLIN);
            if (c->broken)
                sw_httpd_close(h, c);
        }
        return;
    }
    case SW_CONN_IDLE:
    case SW_CONN_HEAD:
    case SW_CONN_BODY:
    case SW_CONN_DISCARD: {
        /* The flow made room to read into before it armed. An idle
         * connection that gave its buffers back starts from nothing. */
        sw_buf *b = c->state == SW_CONN_BODY ? &c->body : &c->in;
        if (b->cap > 0)
            sw_conn_read(c, b, c->read_cap);
        else
            c->readable = 1;
        sw_flow_process(h, c);
        return;
    }
    case SW_CONN_LENT:
    case SW_CONN_CLOSED:
        return;
    }
}

/* Back from a worker: 1 reply sent, 0 still to send, -1 peer gone. */
static void on_return(sw_httpd *h, sw_conn *c)
{
    /* Not sent yet (a deferred answer), or stopped by a full socket:
     * send what fits now. */
    if (c->ret == 0)
        c->ret = sw_conn_write(c);
    if (c->ret < 0) {
        sw_httpd_close(h, c);
    } else if (c->ret == 0) {
        c->state = SW_CONN_WRITE;
        c->deadline_ms = sw_clock_mono_ms() + h->o.request_timeout_ms;
        sw_httpd_arm(h, c, c->tls_want_read ? EPOLLIN : EPOLLOUT);
        if (c->broken)
            sw_httpd_close(h, c);
    } else if (sw_flow_after_response(h, c)) {
        sw_flow_process(h, c);
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
            sw_accept_conn(h, fds[i], ls[i], &ss);
    }
}

static void wake(sw_httpd *h)
{
    uint64_t one = 1;
    (void)!write(h->wake, &one, sizeof one);
}

/* Connections that had their turn's worth of pipelined requests answered
 * go on now. */
static void run_later(sw_httpd *h)
{
    sw_conn *list = h->later;
    h->later = NULL;
    while (list) {
        sw_conn *c = list;
        list = c->later_next;
        c->in_later = 0;
        if (c->state == SW_CONN_IDLE)
            sw_flow_process(h, c);
    }
}

/* Deadlines and housekeeping, every SW_TICK_MS. */
static void sweep(sw_httpd *h, int64_t now)
{
    /* One line for many slow clients: a flood of them must not flood the
     * log too. */
    if (h->slow_unlogged && now - h->slow_logged_ms >= 10000) {
        sw_log_warn("requests too slow; connections closed with 408", "count=%llu "
                    "last_peer=%s", (unsigned long long)h->slow_unlogged, h->slow_peer);
        h->slow_unlogged = 0;
        h->slow_logged_ms = now;
    }
    for (int i = 0; i < h->nl; i++) {
        sw_listener *l = &h->l[i];
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
        if (c->state == SW_CONN_IDLE && c->in.len == 0 && !c->in_later &&
            now - c->idle_since_ms >= IDLE_RELEASE_MS && (c->in.cap || c->out.cap || c->x))
            sw_flow_release(h, c);
        if (now < c->deadline_ms)
            continue;
        if (c->state == SW_CONN_HEAD || c->state == SW_CONN_BODY) {
            char detail[160];
            snprintf(detail, sizeof detail, "the request did not arrive within %d ms "
                     "([server] %s); nothing was queued",
                     c->state == SW_CONN_HEAD ? h->o.header_timeout_ms : h->o.request_timeout_ms,
                     c->state == SW_CONN_HEAD ? "header_timeout_ms" : "request_timeout_ms");
            h->slow_unlogged++;
            snprintf(h->slow_peer, sizeof h->slow_peer, "%s", c->peer);
            /* It may be armed for reading: its reply is written now. */
            sw_flow_refuse(h, c, 408, detail);
        } else if (!c->in_later) {
            if (c->state == SW_CONN_HANDSHAKE || (c->state == SW_CONN_IDLE && c->requests == 0))
                atomic_fetch_add_explicit(&h->timeouts, 1, memory_order_relaxed);
            sw_httpd_close(h, c);
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
    /* Idle connections go now. A request under way stays to finish: its
     * head or body still arriving (an upload), its worker running, its
     * answer being sent, a refused body being read so the refusal
     * arrives; each under its own deadlines, and all under stop_deadline.
     * After its answer, each connection closes (http_flow.c). */
    sw_conn *next;
    for (sw_conn *c = h->conns; c; c = next) {
        next = c->next;
        if (c->state == SW_CONN_IDLE || c->state == SW_CONN_HANDSHAKE ||
            c->state == SW_CONN_LINGER)
            sw_httpd_close(h, c);
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
    int64_t next_tick = sw_clock_mono_ms() + SW_TICK_MS;
    for (;;) {
        if (atomic_load(&h->stop) && !h->stopping)
            begin_stop(h);
        if (h->stopping && h->nconns == 0)
            break;
        int64_t now = sw_clock_mono_ms();
        int wait = h->later ? 0 : next_tick > now ? (int)(next_tick - now) : 0;
        int n = epoll_wait(h->ep, ev, 128, wait);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &h->wake) {
                drain_wake(h);
            } else if (p >= (void *)&h->l[0] && p < (void *)&h->l[h->nl]) {
                if (!h->stopping)
                    sw_accept_some(h, (int)((sw_listener *)p - h->l));
            } else {
                on_event(h, p);
            }
        }
        run_later(h);
        now = sw_clock_mono_ms();
        if (now >= next_tick) {
            sweep(h, now);
            next_tick = now + SW_TICK_MS;
            if (h->stopping && now >= h->stop_deadline) {
                /* Replies nobody reads, requests that never end: give
                 * up on them (a lent one comes back first). */
                sw_conn *next;
                for (sw_conn *c = h->conns; c; c = next) {
                    next = c->next;
                    if (c->state != SW_CONN_LENT)
                        sw_httpd_close(h, c);
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
    sw_pool_ctx *pc = ctx;
    sw_httpd *h = pc->h;
    return h->app.worker_start ? h->app.worker_start(h->app.user, pc->pool) : NULL;
}

static void pool_stop(void *ctx, void *state)
{
    sw_pool_ctx *pc = ctx;
    sw_httpd *h = pc->h;
    if (h->app.worker_stop)
        h->app.worker_stop(h->app.user, pc->pool, state);
}

/* The end of a request a worker (or a deferred answer) served: count
 * it, send what fits (a worker; a deferred answer leaves the sending to
 * the I/O thread, so the thread that answers many at once only formats),
 * and hand the connection back to the I/O thread. */
static void complete(sw_httpd *h, sw_conn *c, int deferred)
{
    sw_http_exchange *x = c->x;
    if (x->status == 0 && !x->abort) {
        sw_problem p = {0};
        sw_problem_set(&p, 500, "internal", "Internal error", "the request was not answered");
        x->close = 1;
        if (sw_http_reply_problem(x, &p, NULL) != 0)
            x->status = 0;
    }
    /* Counted also when aborted (status 0: "other"). */
    if (h->app.done && (x->status != 0 || x->abort))
        h->app.done(h->app.user, x);
    c->out_sent = 0;
    c->ret = x->status == 0 || c->out.len == 0 ? -1 : deferred ? 0 : sw_conn_write(c);
    /* The wake-up is written under the lock: once the lock is let go the
     * core may finish and be freed (sw_httpd_stop takes the lock once
     * more before it frees anything). */
    pthread_mutex_lock(&h->ret_lock);
    c->ret_next = NULL;
    if (h->ret_tail)
        h->ret_tail->ret_next = c;
    else
        h->ret_head = c;
    h->ret_tail = c;
    if (!h->wake_pending)
        wake(h);
    h->wake_pending = 1;
    pthread_mutex_unlock(&h->ret_lock);
}

/* serve() with `state`, on a worker or the I/O thread; then complete,
 * unless the app deferred the answer. */
static void serve(sw_httpd *h, sw_conn *c, void *state)
{
    /* A deferred exchange may be finished, and its connection freed, by
     * the time serve() returns: the flag lives here, not in it. */
    int deferred = 0;
    sw_http_exchange *x = c->x;
    x->deferred = &deferred;
    h->app.serve(h->app.user, state, x);
    if (!deferred) {
        x->deferred = NULL;
        complete(h, c, 0);
    }
}

static void pool_run(void *ctx, void *state, sw_pool_item *it)
{
    serve(((sw_pool_ctx *)ctx)->h, (sw_conn *)(void *)it, state);
}

/* On the I/O thread: serve() as a worker would, with the I/O thread's
 * own worker state for that pool. The answer comes back through the
 * hand-back queue like a worker's. */
static void serve_here(sw_httpd *h, sw_conn *c)
{
    int p = c->pool;
    if (!h->inline_started[p]) {
        h->inline_state[p] = h->app.worker_start ? h->app.worker_start(h->app.user, p) : NULL;
        h->inline_started[p] = 1;
    }
    serve(h, c, h->inline_state[p]);
}

void sw_httpd_defer(sw_http_exchange *x)
{
    /* Only from the app's serve(). */
    assert(x->deferred != NULL);
    *x->deferred = 1;
    x->deferred = NULL;
}

void sw_httpd_finish(sw_http_exchange *x)
{
    sw_conn *c = x->core;
    complete(c->h, c, 1);
}

/* --- setup ------------------------------------------------------------- */

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
    h->lim.setting = o->head_limit;
    h->ep = h->wake = -1;
    pthread_mutex_init(&h->ret_lock, NULL);
    for (int i = 0; i < SW_HTTPD_MAX_LISTENERS; i++)
        h->l[i].fd = -1;
    h->nl = o->nlisten;
    if (sw_accept_trusted(h, o->trusted_proxies, errstr, len) != 0)
        goto fail;
    for (int i = 0; i < h->nl; i++) {
        sw_listener *l = &h->l[i];
        snprintf(l->addr, sizeof l->addr, "%s", o->listen[i].addr);
        l->tls = o->listen[i].tls;
        l->max_connections = o->listen[i].max_connections;
        l->max_per_address = o->listen[i].max_per_address;
    }
    sw_accept_fit(h);
    for (int i = 0; i < h->nl; i++) {
        sw_listener *l = &h->l[i];
        if (sw_peers_init(&l->peers, (size_t)l->max_connections) != 0) {
            snprintf(errstr, len, "out of memory");
            goto fail;
        }
        if (sw_accept_listen(l, l->addr, errstr, len) != 0)
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
        h->pctx[i] = (sw_pool_ctx){h, i};
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

void sw_httpd_shutdown(sw_httpd *h)
{
    if (h == NULL || !h->started)
        return;
    atomic_store(&h->stop, 1);
    wake(h);
}

void sw_httpd_stop(sw_httpd *h)
{
    if (h == NULL)
        return;
    if (h->started) {
        sw_httpd_shutdown(h);
        pthread_join(h->thread, NULL);
    }
    for (int i = 0; i < SW_HTTPD_MAX_POOLS; i++) {
        sw_pool_stop(h->pools[i]);
        if (h->inline_started[i] && h->app.worker_stop)
            h->app.worker_stop(h->app.user, i, h->inline_state[i]);
    }
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
    /* A deferred answer's thread may still be inside complete(): it lets
     * the lock go last. */
    pthread_mutex_lock(&h->ret_lock);
    pthread_mutex_unlock(&h->ret_lock);
    if (h->wake >= 0)
        close(h->wake);
    pthread_mutex_destroy(&h->ret_lock);
    free(h);
}
