/* Who gets a connection: listening sockets and the open-files budget,
 * peer addresses and their per-address caps, making room by closing idle
 * connections, and turning away the rest with a reason. Runs on the HTTP
 * core's I/O thread (httpd.c). */
/* accept4 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "httpd_int.h"
#include "log.h"

/* --- addresses ----------------------------------------------------------- */

/* A peer's address (IPv4 mapped into IPv6), its text, and its key in the
 * per-address counts: the address itself for IPv4, the /64 for IPv6, the
 * block one client usually holds (else a client with a /64 would have
 * 2^64 addresses' worth of caps). */
static void to_peer_addr(const struct sockaddr_storage *ss, sw_peer_addr *a, sw_peer_addr *key,
                         char *text, size_t len)
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
        inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)len);
        memcpy(a->b, &in6->sin6_addr, 16);
    } else {
        snprintf(text, len, "local");
    }
    *key = *a;
    if (ss->ss_family == AF_INET6 && !(a->b[10] == 0xff && a->b[11] == 0xff &&
                                       memcmp(a->b, "\0\0\0\0\0\0\0\0\0\0", 10) == 0))
        memset(key->b + 8, 0, 8);
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

/* Bytes waiting, in our buffer, OpenSSL's (decrypted) or the socket: a
 * connection with some is not idle, it just has not had its turn yet. (A
 * few bytes of an unfinished TLS record do not count: a client could
 * keep a connection from eviction with them.) */
static int pending(const sw_conn *c)
{
    int n = 0;
    if (c->in.len > c->in_off || c->in_later)
        return 1;
    if (c->ssl)
        return SSL_pending(c->ssl) > 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* Close an idle connection of listener `li` to make room: the oldest that
 * never sent a request, else the longest-idle one with nothing waiting. */
static int evict_idle(sw_httpd *h, int li)
{
    for (int pass = 0; pass < 2; pass++) {
        for (sw_conn *c = h->idle_head; c; c = c->inext) {
            if (c->listener != li || (pass == 0 && c->requests > 0) || pending(c))
                continue;
            atomic_fetch_add_explicit(&h->closed_idle, 1, memory_order_relaxed);
            sw_httpd_close(h, c);
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

void sw_accept_conn(sw_httpd *h, int fd, int li, const struct sockaddr_storage *ss)
{
    sw_listener *l = &h->l[li];
    sw_peer_addr a, key;
    char text[48];
    int64_t now = sw_clock_mono_ms();
    to_peer_addr(ss, &a, &key, text, sizeof text);
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
    if (sw_peers_add(&l->peers, &key, (uint32_t)l->max_per_address) < 0) {
        atomic_fetch_add_explicit(&h->refused_addr, 1, memory_order_relaxed);
        turn_away(fd, l->tls != NULL, 429, "too-many-connections", "this address has as "
                  "many connections open as it may ([server] max_connections_per_address); "
                  "reuse them (keep-alive) or close some");
        return;
    }
    sw_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (l->tls && (c->ssl = SSL_new(l->tls)) == NULL)) {
        sw_peers_remove(&l->peers, &key);
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
    c->key = key;
    snprintf(c->peer, sizeof c->peer, "%s", text);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    atomic_fetch_add(&l->open, 1);
    atomic_fetch_add_explicit(&h->accepted, 1, memory_order_relaxed);
    if (c->ssl) {
        SSL_set_fd(c->ssl, fd);
        SSL_set_accept_state(c->ssl);
        c->state = SW_CONN_HANDSHAKE;
        c->deadline_ms = now + h->o.header_timeout_ms;
    } else {
        /* No buffer until its first byte: a silent socket costs none. */
        sw_flow_enter_idle(h, c);
        c->read_cap = h->lim.max_head_bytes;
    }
    sw_httpd_arm(h, c, EPOLLIN);
    if (c->broken)
        sw_httpd_close(h, c);
}

static void pause_listener(sw_httpd *h, sw_listener *l, int64_t until)
{
    epoll_ctl(h->ep, EPOLL_CTL_DEL, l->fd, NULL);
    l->paused_until = until;
}

void sw_accept_some(sw_httpd *h, int li)
{
    sw_listener *l = &h->l[li];
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sw_log_warn("cannot accept: out of file descriptors", "listen=%s errno=%d "
                            "action=\"raise LimitNOFILE, or lower [server] max_connections\"",
                            l->addr, errno);
                pause_listener(h, l, sw_clock_mono_ms() + SW_TICK_MS);
            }
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        sw_accept_conn(h, fd, li, &ss);
    }
}

int sw_accept_listen(sw_listener *l, const char *addr, char *errstr, size_t len)
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
void sw_accept_fit(sw_httpd *h)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    long spare = 64 + h->o.reserve_fds;
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

int sw_accept_trusted(sw_httpd *h, const char *list, char *errstr, size_t len)
{
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        if (h->ntrusted == SW_MAX_TRUSTED || parse_addr(p, n, &h->trusted[h->ntrusted]) != 0) {
            snprintf(errstr, len, "[server] trusted_proxies: \"%.*s\" is not an IP address "
                     "(at most %d)", (int)(n > 64 ? 64 : n), p, SW_MAX_TRUSTED);
            return -1;
        }
        h->ntrusted++;
        p += n;
    }
    return 0;
}
