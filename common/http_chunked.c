#include "http_chunked.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"
#include "http_head.h"

enum {
    C_SIZE,          /* first hex digit of a size line */
    C_SIZE_MORE,     /* further hex digits */
    C_SIZE_OWS,      /* whitespace after the digits: ';' or CR next */
    C_EXT,           /* an extension, up to CR */
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER,       /* start of a trailer line, or of the final CRLF */
    C_TRAILER_NAME,
    C_TRAILER_VALUE,
    C_TRAILER_LF,
    C_FINAL_LF,
    C_DONE,
};

static int fail(sw_chunked *c, int status, const char *fmt, ...)
{
    va_list ap;
    c->status = status;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    return -1;
}

/* A byte a field value or an extension may hold: VCHAR, obs-text, SP, HTAB. */
static int is_text(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || (ch > 0x20 && ch != 0x7f);
}

void sw_chunked_init(sw_chunked *c)
{
    memset(c, 0, sizeof *c);
    c->state = C_SIZE;
}

int sw_chunked_decode(sw_chunked *c, char *buf, size_t len, size_t *rpos, size_t *wpos,
                      size_t body_start, size_t max_body, size_t max_trailer)
{
    size_t r = *rpos, w = *wpos;
    int rc = 0;
    while (r < len && rc == 0) {
        unsigned char ch = (unsigned char)buf[r];
        if (c->state == C_DATA) {
            size_t n = len - r;
            if ((uint64_t)n > c->left)
                n = (size_t)c->left;
            memmove(buf + w, buf + r, n);
            w += n;
            r += n;
            c->left -= n;
            if (c->left == 0)
                c->state = C_DATA_CR;
            continue;
        }
        r++;
        if (c->state <= C_SIZE_LF && ++c->line > SW_CHUNKED_LINE_MAX) {
            rc = fail(c, 400, "a chunk size line is over %d bytes", SW_CHUNKED_LINE_MAX);
            break;
        }
        if (c->state >= C_TRAILER && c->state <= C_TRAILER_LF && ++c->trailer > max_trailer) {
            rc = fail(c, 431, "the trailer fields are over %zu bytes", max_trailer);
            break;
        }
        switch (c->state) {
        case C_SIZE:
        case C_SIZE_MORE: {
            int v = sw_hex_digit(ch);
            if (v >= 0) {
                if (c->line > 15) {
                    rc = fail(c, 400, "a chunk size has more than 15 hex digits");
                    break;
                }
                c->left = c->left * 16 + (uint64_t)v;
                c->state = C_SIZE_MORE;
            } else if (c->state == C_SIZE) {
                rc = fail(c, 400, "a chunk size line must start with hex digits");
            } else if (ch == '\r') {
                c->state = C_SIZE_LF;
            } else if (ch == ';') {
                c->state = C_EXT;
            } else if (ch == ' ' || ch == '\t') {
                c->state = C_SIZE_OWS;
            } else {
                rc = fail(c, 400, "a chunk size must be hex digits only");
            }
            break;
        }
        case C_SIZE_OWS:
            if (ch == ';')
                c->state = C_EXT;
            else if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch != ' ' && ch != '\t')
                rc = fail(c, 400, "a chunk size must be hex digits only");
            break;
        case C_EXT:
            if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (!is_text(ch))
                rc = fail(c, 400, "a chunk extension holds a control byte");
            break;
        case C_SIZE_LF:
            if (ch != '\n') {
                rc = fail(c, 400, "a chunk size line must end in CRLF");
                break;
            }
            c->line = 0;
            if (c->left == 0) {
                c->state = C_TRAILER;
            } else if (c->left > (uint64_t)max_body ||
                       (w - body_start) + c->left > (uint64_t)max_body) {
                rc = fail(c, 413, "the chunked body is over %zu bytes", max_body);
            } else {
                c->state = C_DATA;
            }
            break;
        case C_DATA_CR:
            if (ch != '\r')
                rc = fail(c, 400, "chunk data must be followed by CRLF (is the size right?)");
            else
                c->state = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (ch != '\n')
                rc = fail(c, 400, "chunk data must be followed by CRLF");
            else
                c->state = C_SIZE;
            break;
        case C_TRAILER:
            if (ch == '\r')
                c->state = C_FINAL_LF;
            else if (sw_http_is_tchar(ch))
                c->state = C_TRAILER_NAME;
            else
                rc = fail(c, 400, "a trailer line must be name: value (no folding)");
            break;
        case C_TRAILER_NAME:
            if (ch == ':')
                c->state = C_TRAILER_VALUE;
            else if (!sw_http_is_tchar(ch))
                rc = fail(c, 400, "a trailer line must be name: value");
            break;
        case C_TRAILER_VALUE:
            if (ch == '\r')
                c->state = C_TRAILER_LF;
            else if (!is_text(ch))
                rc = fail(c, 400, "a trailer value holds a control byte");
            break;
        case C_TRAILER_LF:
            if (ch != '\n')
                rc = fail(c, 400, "a trailer line must end in CRLF");
            else
                c->state = C_TRAILER;
            break;
        case C_FINAL_LF:
            if (ch != '\n') {
                rc = fail(c, 400, "the chunked body must end in CRLF");
            } else {
                c->state = C_DONE;
                rc = 1;
            }
            break;
        default:
            rc = fail(c, 400, "bytes after the end of a chunked body");
            break;
        }
    }
    *rpos = r;
    *wpos = w;
    return rc;
}
