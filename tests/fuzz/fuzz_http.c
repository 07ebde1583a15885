/* libFuzzer target: the HTTP framing layer as the server runs it. Each
 * input is written to one end of a socket pair whose other end the HTTP
 * core (common/httpd.c) serves as an accepted connection: its I/O thread,
 * the strict head parser, chunked decoding, a worker pool and lingering
 * closes, in front of a stub app. The client side then checks what came
 * back: well-formed responses only, and not one byte after a response
 * that said "Connection: close" (nothing after a close verdict is parsed,
 * let alone answered). */
/* memmem */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sw_httpd *server;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int route(void *user, sw_http_exchange *x)
{
    (void)user;
    if (strcmp(x->path, "/echo") == 0 && strcmp(x->method, "POST") == 0) {
        sw_http_accept_body(x, 4096, "the fuzzer's limit");
        return 0;
    }
    if (strcmp(x->path, "/inline") == 0) {
        if (sw_http_reply(x, 200, "text/plain", NULL, "ok", 2) != 0)
            x->status = 500;
        return SW_HTTPD_ANSWERED;
    }
    if (strcmp(x->path, "/close") == 0)
        sw_http_close_after(x);
    return 0;
}

static void serve(void *user, void *worker, sw_http_exchange *x)
{
    (void)user;
    (void)worker;
    char body[64];
    int n = snprintf(body, sizeof body, "%zu", x->body_len);
    if (sw_http_reply(x, 200, "text/plain", NULL, body, (size_t)n) != 0)
        x->status = 0;
}

static void start(void)
{
    char why[256];
    sw_httpd_opts o = {
        .listen = {{"127.0.0.1:0", NULL, 64, 0}},
        .nlisten = 1,
        .pools = {{"fuzz", 2, 0}},
        .npools = 1,
        .header_timeout_ms = 1000,
        .request_timeout_ms = 1000,
        .idle_timeout_ms = 1000,
        .max_head_bytes = 2048,
        .max_buffered_bytes = 1 << 20,
        .trusted_proxies = "",
    };
    sw_httpd_app app = {NULL, route, serve, NULL, NULL, NULL, NULL};
    server = sw_httpd_start(&o, &app, why, sizeof why);
    if (server == NULL) {
        fprintf(stderr, "fuzz_http: %s\n", why);
        abort();
    }
}

/* Check one response at `p` (n bytes left); its length, or 0 at the end. */
static size_t check_response(const char *p, size_t n, int *close)
{
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (n < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0 || end == NULL)
        abort();                       /* not a response */
    size_t head = (size_t)(end - p) + 4;
    if (memcmp(p, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0)
        return 25;                     /* interim: the answer follows */
    const char *cl = memmem(p, head, "\r\nContent-Length: ", 18);
    if (cl == NULL)
        abort();
    size_t body = strtoul(cl + 18, NULL, 10);
    /* A reply to HEAD has no body: the next response, or the end, follows
     * its head (no body here starts with "HTTP/"). */
    if (n == head || (n - head >= 9 && memcmp(p + head, "HTTP/1.1 ", 9) == 0))
        body = 0;
    if (head + body > n)
        abort();                       /* cut short */
    *close = memmem(p, head, "\r\nConnection: close\r\n", 21) != NULL;
    return head + body;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (server == NULL)
        start();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    if (sw_httpd_adopt(server, sv[1], 0) != 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t w = send(sv[0], data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;                  /* libFuzzer's timer */
        if (w <= 0)
            break;                     /* the server closed: fine */
        off += (size_t)w;
    }
    shutdown(sv[0], SHUT_WR);
    static char got[1 << 20];
    size_t len = 0;
    int64_t deadline = now_ms() + 5000;
    for (;;) {
        struct pollfd pfd = {sv[0], POLLIN, 0};
        /* Every input ends in EOF, so the server answers or closes at once;
         * the deadlines are a second. libFuzzer's timer interrupts poll. */
        int rc = poll(&pfd, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc != 1) {
            sw_httpd_stats st;
            sw_httpd_stats_get(server, &st);
            fprintf(stderr, "fuzz_http: no answer in 5 s after %zu bytes; open %d idle %d "
                    "busy %d queued %d\n", len, st.listen[0].open, st.listen[0].idle,
                    st.pool[0].busy, st.pool[0].queued);
            abort();                   /* hung */
        }
        ssize_t r = recv(sv[0], got + len, sizeof got - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof got)
            abort();
    }
    close(sv[0]);
    size_t at = 0;
    while (at < len) {
        int close_after = 0;
        at += check_response(got + at, len - at, &close_after);
        if (close_after && at != len)
            abort();                   /* bytes after a close verdict */
    }
    return 0;
}
