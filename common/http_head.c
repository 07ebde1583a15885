#include "http_head.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sw_http_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static long refuse(sw_http_head *h, int status, const char *fmt, ...)
{
    va_list ap;
    h->status = status;
    va_start(ap, fmt);
    vsnprintf(h->detail, sizeof h->detail, fmt, ap);
    va_end(ap);
    return -1;
}

int sw_http_token_eq(const char *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n && lit[i]; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a | 0x20);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b | 0x20);
        if (a != b)
            return 0;
    }
    return i == n && lit[i] == '\0';
}

const sw_http_field *sw_http_head_field(const sw_http_head *h, const char *name)
{
    for (int i = 0; i < h->nfields; i++) {
        if (sw_http_token_eq(h->fields[i].name, h->fields[i].name_len, name))
            return &h->fields[i];
    }
    return NULL;
}

const char *sw_http_head_value(const sw_http_head *h, const char *name, size_t *n)
{
    const sw_http_field *f = sw_http_head_field(h, name);
    *n = f ? f->value_len : 0;
    return f ? f->value : NULL;
}

/* Does the comma-separated list [s, s+n) hold `token` (any case)? */
static int list_has(const char *s, size_t n, const char *token)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows((unsigned char)s[i]) || s[i] == ','))
            i++;
        size_t start = i;
        while (i < n && s[i] != ',')
            i++;
        size_t end = i;
        while (end > start && is_ows((unsigned char)s[end - 1]))
            end--;
        if (end > start && sw_http_token_eq(s + start, end - start, token))
            return 1;
    }
    return 0;
}

/* The fields the server acts on that may appear once only: a repeat
 * would let two readers act on different values. */
static const char *const singletons[] = {"host", "content-length", "transfer-encoding",
                                         "authorization", "content-type", "idempotency-key",
                                         "expect"};
#define NSINGLETONS ((int)(sizeof singletons / sizeof singletons[0]))

static long parse_request_line(sw_http_head *h, const char *p, const char *eol)
{
    const char *s = p;
    while (s < eol && sw_http_is_tchar((unsigned char)*s))
        s++;
    if (s == p || s == eol || *s != ' ')
        return refuse(h, 400, "the request line must be: METHOD SP /path SP HTTP/1.1, "
                              "separated by single spaces");
    h->method = p;
    h->method_len = (size_t)(s - p);
    const char *t = ++s;
    while (s < eol && (unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f)
        s++;
    if (s == t || s == eol || *s != ' ') {
        if (s < eol && (unsigned char)*s >= 0x80)
            return refuse(h, 400, "the request target holds a byte over 0x7f; "
                                  "percent-encode it");
        return refuse(h, 400, "the request line must be: METHOD SP /path SP HTTP/1.1, "
                              "separated by single spaces");
    }
    h->target = t;
    h->target_len = (size_t)(s - t);
    if (t[0] != '/' && !(h->target_len == 1 && t[0] == '*'))
        return refuse(h, 400, "the request target must be a path starting with /, not "
                              "an absolute URI or an authority");
    s++;
    if (eol - s != 8 || memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' || s[5] > '9' ||
        s[6] != '.' || s[7] < '0' || s[7] > '9')
        return refuse(h, 400, "the request line must end with HTTP/1.1 or HTTP/1.0");
    if (s[5] != '1')
        return refuse(h, 505, "only HTTP/1.0 and HTTP/1.1 are served");
    h->minor = s[7] == '0' ? 0 : 1;
    return 0;
}

/* Content-Length: digits only, one value. UINT64_MAX when it does not
 * fit, which no body limit allows. */
static long parse_length(sw_http_head *h, const sw_http_field *f)
{
    uint64_t v = 0;
    if (f->value_len == 0)
        return refuse(h, 400, "Content-Length must be a decimal number of bytes");
    for (size_t i = 0; i < f->value_len; i++) {
        unsigned char c = (unsigned char)f->value[i];
        if (c < '0' || c > '9')
            return refuse(h, 400, "Content-Length must be a decimal number of bytes, "
                                  "one value, digits only");
        if (v > (UINT64_MAX - 9) / 10) {
            v = UINT64_MAX;
            break;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    h->content_length = v;
    h->framing = SW_HTTP_LENGTH;
    return 0;
}

static long parse_coding(sw_http_head *h, const sw_http_field *f)
{
    if (h->minor == 0)
        return refuse(h, 400, "Transfer-Encoding is not defined for HTTP/1.0; send "
                              "Content-Length");
    if (sw_http_token_eq(f->value, f->value_len, "chunked")) {
        h->framing = SW_HTTP_CHUNKED;
        return 0;
    }
    if (list_has(f->value, f->value_len, "chunked"))
        return refuse(h, 400, "Transfer-Encoding must be exactly \"chunked\": chunked "
                              "applies once, alone");
    return refuse(h, 501, "the only Transfer-Encoding served is \"chunked\"");
}

static long parse_fields(sw_http_head *h, const char *p, const char *end)
{
    int seen[NSINGLETONS] = {0};
    const sw_http_field *cl = NULL, *te = NULL;
    while (p < end) {
        const char *eol = p;
        while (*eol != '\r')
            eol++;
        if (is_ows((unsigned char)*p))
            return refuse(h, 400, "a header line starts with whitespace (obs-fold); "
                                  "send each field on one line");
        const char *s = p;
        while (s < eol && sw_http_is_tchar((unsigned char)*s))
            s++;
        if (s == eol || *s != ':') {
            if (s < eol && is_ows((unsigned char)*s))
                return refuse(h, 400, "whitespace between a header name and its colon");
            return refuse(h, 400, "a header line is not name: value, or its name holds "
                                  "a byte a name may not");
        }
        if (s == p)
            return refuse(h, 400, "a header line has an empty name");
        if (h->nfields == SW_HTTP_MAX_FIELDS)
            return refuse(h, 431, "more than %d header fields", SW_HTTP_MAX_FIELDS);
        sw_http_field *f = &h->fields[h->nfields++];
        f->name = p;
        f->name_len = (size_t)(s - p);
        s++;
        while (s < eol && is_ows((unsigned char)*s))
            s++;
        const char *ve = eol;
        while (ve > s && is_ows((unsigned char)ve[-1]))
            ve--;
        f->value = s;
        f->value_len = (size_t)(ve - s);
        for (int k = 0; k < NSINGLETONS; k++) {
            if (!sw_http_token_eq(f->name, f->name_len, singletons[k]))
                continue;
            if (seen[k]++)
                return refuse(h, 400, "the header %s appears more than once", singletons[k]);
            if (k == 1)
                cl = f;
            else if (k == 2)
                te = f;
        }
        if (sw_http_token_eq(f->name, f->name_len, "connection")) {
            if (list_has(f->value, f->value_len, "close"))
                h->keep_alive = -1;
            else if (list_has(f->value, f->value_len, "keep-alive") && h->keep_alive == 0)
                h->keep_alive = 2;
        }
        p = eol + 2;
    }
    if (seen[0] == 0 && h->minor == 1)
        return refuse(h, 400, "an HTTP/1.1 request needs a Host header");
    if (cl && te)
        return refuse(h, 400, "the request has both Content-Length and Transfer-Encoding; "
                              "send one of them");
    if (cl && parse_length(h, cl) != 0)
        return -1;
    if (te && parse_coding(h, te) != 0)
        return -1;
    size_t n;
    const char *expect = sw_http_head_value(h, "expect", &n);
    /* HTTP/1.0 has no expectations: RFC 9110 says to ignore them there. */
    if (expect && h->minor == 1) {
        if (!sw_http_token_eq(expect, n, "100-continue"))
            return refuse(h, 417, "the only Expect served is 100-continue");
        h->expect_continue = 1;
    }
    /* keep_alive: -1 close asked, 2 keep-alive asked, 0 nothing said. */
    h->keep_alive = h->keep_alive == -1 ? 0 : h->keep_alive == 2 ? 1 : h->minor == 1;
    return 0;
}

static long too_big(sw_http_head *h, const sw_http_limits *lim)
{
    return refuse(h, 431, "the request line and headers are over %zu bytes%s%s%s",
                  lim->max_head_bytes, lim->setting ? " (" : "",
                  lim->setting ? lim->setting : "", lim->setting ? ")" : "");
}

long sw_http_head_read(sw_http_head *h, const char *buf, size_t len, size_t *scanned,
                       const sw_http_limits *lim)
{
    size_t i = *scanned, end = 0;
    h->status = 0;
    h->detail[0] = '\0';
    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') {
            if (i == 0 || buf[i - 1] != '\r')
                return refuse(h, 400, "a line ends in a bare LF; HTTP/1.1 lines end in CRLF");
            if (i == 1)
                return refuse(h, 400, "the request starts with an empty line");
            if (i >= 3 && buf[i - 2] == '\n') {
                end = i + 1;
                break;
            }
        } else if (c == '\r') {
            if (i + 1 < len && buf[i + 1] != '\n')
                return refuse(h, 400, "a CR that does not end a line");
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return refuse(h, 400, "the head holds a control byte (0x%02x)", c);
        }
    }
    if (end == 0) {
        /* A CR at the very end is checked again with the byte after it. */
        *scanned = len > 0 && buf[len - 1] == '\r' ? len - 1 : len;
        if (len >= lim->max_head_bytes)
            return too_big(h, lim);
        return 0;
    }
    if (end > lim->max_head_bytes)
        return too_big(h, lim);
    *scanned = end;
    h->len = end;
    h->nfields = 0;
    h->framing = SW_HTTP_NO_BODY;
    h->content_length = 0;
    h->keep_alive = 0;
    h->expect_continue = 0;
    const char *eol = memchr(buf, '\r', end);
    if (parse_request_line(h, buf, eol) != 0 ||
        parse_fields(h, eol + 2, buf + end - 2) != 0)
        return -1;
    return (long)end;
}
