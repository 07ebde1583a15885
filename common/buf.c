#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

int sw_buf_reserve(sw_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra + 1)
        return 0;
    size_t want = b->len + extra + 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) {
        if (cap > ((size_t)-1) / 2)
            return -1;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sw_buf_append(sw_buf *b, const void *p, size_t n)
{
    if (sw_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sw_buf_puts(sw_buf *b, const char *s)
{
    return sw_buf_append(b, s, strlen(s));
}

int sw_buf_printf(sw_buf *b, const char *fmt, ...)
{
    /* Format straight into the spare room; only a miss formats twice. */
    if (sw_buf_reserve(b, 64) != 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= b->cap - b->len) {
        if (sw_buf_reserve(b, (size_t)n) != 0)
            return -1;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

int sw_buf_json_str(sw_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s, *end = u + n;
    if (sw_buf_reserve(b, n + 2) != 0)
        return -1;
    b->data[b->len++] = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        char esc[7];
        size_t el = 0, take = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\'; esc[1] = (char)c; el = 2;
        } else if (c == '\n') {
            esc[0] = '\\'; esc[1] = 'n'; el = 2;
        } else if (c == '\t') {
            esc[0] = '\\'; esc[1] = 't'; el = 2;
        } else if (c == '\r') {
            esc[0] = '\\'; esc[1] = 'r'; el = 2;
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15]; el = 6;
        } else if (c < 0x80) {
            esc[0] = (char)c; el = 1;
        } else if ((take = sw_utf8_seq(u + i, end)) > 0) {
            memcpy(esc, u + i, take);
            el = take;
        } else {
            /* Not UTF-8 (client bytes, say): U+FFFD, so the JSON stays valid. */
            memcpy(esc, "\\ufffd", 6);
            el = 6;
            take = 1;
        }
        if (sw_buf_append(b, esc, el) != 0)
            return -1;
        i += take;
    }
    return sw_buf_append(b, "\"", 1);
}

int sw_buf_nul_line(const sw_buf *b)
{
    const char *nul = b->len ? memchr(b->data, '\0', b->len) : NULL;
    if (nul == NULL)
        return 0;
    int line = 1;
    for (const char *p = b->data; p < nul; p++)
        line += *p == '\n';
    return line;
}

int sw_buf_read_file(sw_buf *b, const char *path, size_t max)
{
    FILE *f = fopen(path, "r");
    int rc = -1, err = 0;
    if (f == NULL)
        return -1;
    for (;;) {
        if (sw_buf_reserve(b, 16384) != 0) {
            err = ENOMEM;
            break;
        }
        size_t n = fread(b->data + b->len, 1, b->cap - b->len - 1, f);
        b->len += n;
        if (b->len > max) {
            err = EFBIG;
            break;
        }
        if (n == 0) {
            if (ferror(f))
                err = EIO;
            else
                rc = 0;
            break;
        }
    }
    b->data[b->len] = '\0';
    fclose(f);
    if (rc != 0)
        errno = err;
    return rc;
}

void sw_buf_reset(sw_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void sw_buf_free(sw_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
