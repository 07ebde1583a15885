#include "http_exchange.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hex.h"

static int bad(sw_http_exchange *x, const char *detail)
{
    x->head.status = 400;
    snprintf(x->head.detail, sizeof x->head.detail, "%s", detail);
    return -1;
}

int sw_http_exchange_prepare(sw_http_exchange *x, char *buf)
{
    sw_http_head *h = &x->head;
    /* The byte after each part is a space, a colon, whitespace or CR:
     * none of them is part of anything, so each can end a C string. */
    buf[h->method_len] = '\0';
    x->method = buf;
    char *t = buf + (h->target - buf);
    t[h->target_len] = '\0';
    char *q = memchr(t, '?', h->target_len);
    x->query = "";
    if (q) {
        *q = '\0';
        x->query = q + 1;
    }
    /* Decode %XX in the path, in place (never longer than its coding). */
    char *w = t;
    for (char *r = t; *r; r++) {
        if (*r != '%') {
            *w++ = *r;
            continue;
        }
        int hi = sw_hex_digit((unsigned char)r[1]), lo = hi < 0 ? -1 : sw_hex_digit((unsigned char)r[2]);
        if (lo < 0)
            return bad(x, "the path holds a % that is not followed by two hex digits");
        if (hi == 0 && lo == 0)
            return bad(x, "the path holds an encoded NUL (%00)");
        *w++ = (char)(hi * 16 + lo);
        r += 2;
    }
    *w = '\0';
    x->path = t;
    for (int i = 0; i < h->nfields; i++) {
        sw_http_field *f = &h->fields[i];
        ((char *)f->name)[f->name_len] = '\0';
        ((char *)f->value)[f->value_len] = '\0';
    }
    return 0;
}

const char *sw_http_header(const sw_http_exchange *x, const char *name)
{
    const sw_http_field *f = sw_http_head_field(&x->head, name);
    return f ? f->value : NULL;
}

void sw_http_accept_body(sw_http_exchange *x, size_t max, const char *setting)
{
    x->body_max = max;
    x->body_limit = setting;
}

void sw_http_close_after(sw_http_exchange *x)
{
    x->close = 1;
}

const char *sw_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", formatted once a second per thread. */
static const char *http_date(void)
{
    static _Thread_local time_t last = -1;
    static _Thread_local char text[40];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return text;
}

int sw_http_reply(sw_http_exchange *x, int status, const char *ctype, const char *extra,
                  const void *body, size_t len)
{
    sw_buf *o = x->out;
    int close = x->close || !x->head.keep_alive;
    sw_buf_reset(o);
    x->status = status;
    if (sw_buf_printf(o, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                         "Content-Length: %zu\r\nCache-Control: no-store\r\n%s%s\r\n",
                      status, sw_http_reason(status), http_date(), ctype, len,
                      extra ? extra : "",
                      close ? "Connection: close\r\n"
                            : x->head.minor == 0 ? "Connection: keep-alive\r\n" : "") != 0 ||
        (!x->head_only && len > 0 && sw_buf_append(o, body, len) != 0)) {
        /* Nothing half-made goes out: unanswered, and the core decides. */
        sw_buf_reset(o);
        x->status = 0;
        x->close = 1;
        return -1;
    }
    x->close = close;
    return 0;
}

void sw_http_abort(sw_http_exchange *x)
{
    sw_buf_reset(x->out);
    x->status = 0;
    x->abort = 1;
}

int sw_http_reply_problem(sw_http_exchange *x, const sw_problem *p, const char *extra)
{
    sw_buf b = SW_BUF_INIT;
    int rc = sw_problem_render(p, &b);
    if (rc == 0)
        rc = sw_http_reply(x, p->status, "application/problem+json", extra, b.data, b.len);
    else
        x->close = 1;
    sw_buf_free(&b);
    return rc;
}

const char *sw_http_query_param(const char *query, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == '=')
            return p + n + 1;
    return NULL;
}
