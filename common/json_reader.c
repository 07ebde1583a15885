#include "json_reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "utf8.h"

/* What may come next. */
enum {
    E_VALUE,            /* a value: the text's, after ':', after ',' in an array */
    E_VALUE_OR_END,     /* right after '[' */
    E_KEY,              /* after ',' in an object */
    E_KEY_OR_END,       /* right after '{' */
    E_COLON,
    E_COMMA_OR_END,
    E_DONE,             /* the text's value is complete */
    E_FAILED,
};

static enum sw_json_type fail(sw_json_reader *r, sw_json_token *t, const char *at,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->error_at = (size_t)(at - r->start);
    r->expect = E_FAILED;
    t->type = SW_JSON_ERROR;
    return SW_JSON_ERROR;
}

void sw_json_reader_init(sw_json_reader *r, const char *buf, size_t len, int max_depth,
                         size_t max_string, sw_buf *str)
{
    /* kinds[] is written before it is read: no need to clear it. */
    r->start = r->p = buf;
    r->end = buf + len;
    r->depth = 0;
    r->max_depth = max_depth > SW_JSON_MAX_DEPTH ? SW_JSON_MAX_DEPTH : max_depth;
    r->max_string = max_string;
    r->str = str;
    r->expect = E_VALUE;
    r->nesting = 0;
    r->error[0] = '\0';
    r->error_at = 0;
}

const char *sw_json_kind(enum sw_json_type t)
{
    switch (t) {
    case SW_JSON_OBJECT: return "an object";
    case SW_JSON_ARRAY: return "an array";
    case SW_JSON_STRING: return "a string";
    case SW_JSON_INTEGER: return "an integer";
    case SW_JSON_REAL: return "a fractional number";
    case SW_JSON_TRUE: case SW_JSON_FALSE: return "a boolean";
    case SW_JSON_NULL: return "null";
    default: return "?";
    }
}

void sw_json_error_pos(const sw_json_reader *r, long *line, long *column)
{
    long l = 1;
    const char *bol = r->start, *at = r->start + r->error_at;
    for (const char *q = r->start; q < at && q < r->end; q++) {
        if (*q == '\n') {
            l++;
            bol = q + 1;
        }
    }
    *line = l;
    *column = (long)(at - bol) + 1;
}

/* Keep a decoded byte while under the limit; the length counts on. */
static int put(sw_json_reader *r, size_t *len, const char *b, size_t n)
{
    size_t room = r->max_string + 4 > r->str->len ? r->max_string + 4 - r->str->len : 0;
    if (room && sw_buf_append(r->str, b, n < room ? n : room) != 0)
        return -1;
    *len += n;
    return 0;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int d = sw_hex_digit((unsigned char)p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

static enum sw_json_type string(sw_json_reader *r, sw_json_token *t, enum sw_json_type type)
{
    const char *p = r->p + 1;
    size_t len = 0;
    sw_buf_reset(r->str);
    for (;;) {
        if (p >= r->end)
            return fail(r, t, p, "premature end of input in a string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            p++;
            break;
        }
        if (c == '\\') {
            char out[4];
            size_t n = 1;
            if (p + 1 >= r->end)
                return fail(r, t, p, "premature end of input in a string");
            switch (p[1]) {
            case '"': out[0] = '"'; break;
            case '\\': out[0] = '\\'; break;
            case '/': out[0] = '/'; break;
            case 'b': out[0] = '\b'; break;
            case 'f': out[0] = '\f'; break;
            case 'n': out[0] = '\n'; break;
            case 'r': out[0] = '\r'; break;
            case 't': out[0] = '\t'; break;
            case 'u': {
                unsigned u, lo;
                if (hex4(p + 2, r->end, &u) != 0)
                    return fail(r, t, p, "invalid escape: \\u needs four hex digits");
                const char *esc = p;
                p += 4;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return fail(r, t, esc, "invalid Unicode '\\u%04X' (a lone low surrogate)",
                                u);
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (r->end - p < 8 || p[2] != '\\' || p[3] != 'u' ||
                        hex4(p + 4, r->end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                        return fail(r, t, esc, "invalid Unicode '\\u%04X' (a high surrogate "
                                               "without its low one)", u);
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
                if (u == 0)
                    return fail(r, t, esc, "\\u0000 is not allowed in a string (NUL)");
                if (u < 0x80) {
                    out[0] = (char)u;
                } else if (u < 0x800) {
                    out[0] = (char)(0xc0 | (u >> 6));
                    out[1] = (char)(0x80 | (u & 0x3f));
                    n = 2;
                } else if (u < 0x10000) {
                    out[0] = (char)(0xe0 | (u >> 12));
                    out[1] = (char)(0x80 | ((u >> 6) & 0x3f));
                    out[2] = (char)(0x80 | (u & 0x3f));
                    n = 3;
                } else {
                    out[0] = (char)(0xf0 | (u >> 18));
                    out[1] = (char)(0x80 | ((u >> 12) & 0x3f));
                    out[2] = (char)(0x80 | ((u >> 6) & 0x3f));
                    out[3] = (char)(0x80 | (u & 0x3f));
                    n = 4;
                }
                break;
            }
            default:
                return fail(r, t, p, "invalid escape '\\%c'",
                            p[1] > 0x20 && p[1] < 0x7f ? p[1] : '?');
            }
            if (put(r, &len, out, n) != 0)
                return fail(r, t, p, "out of memory");
            p += 2;
            continue;
        }
        if (c < 0x20)
            return fail(r, t, p, "control character 0x%02x in a string; escape it", c);
        if (c < 0x80) {
            /* A run of plain bytes at once. */
            const char *q = p + 1;
            while (q < r->end && (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x80 &&
                   *q != '"' && *q != '\\')
                q++;
            if (put(r, &len, p, (size_t)(q - p)) != 0)
                return fail(r, t, p, "out of memory");
            p = q;
            continue;
        }
        size_t n = sw_utf8_seq((const unsigned char *)p, (const unsigned char *)r->end);
        if (n == 0)
            return fail(r, t, p, "unable to decode byte 0x%02x: not UTF-8", c);
        if (put(r, &len, p, n) != 0)
            return fail(r, t, p, "out of memory");
        p += n;
    }
    /* NUL-terminated, also when empty. */
    if (sw_buf_append(r->str, "", 0) != 0)
        return fail(r, t, p, "out of memory");
    r->p = p;
    t->type = type;
    t->str = r->str->data;
    t->len = len;
    t->truncated = len > r->str->len;
    return type;
}

static enum sw_json_type number(sw_json_reader *r, sw_json_token *t)
{
    const char *p = r->p, *s = p;
    int real = 0;
    if (p < r->end && *p == '-')
        p++;
    if (p < r->end && *p == '0') {
        p++;
    } else if (p < r->end && *p >= '1' && *p <= '9') {
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return fail(r, t, s, "invalid token");
    }
    if (p < r->end && *p == '.') {
        p++;
        real = 1;
        if (p >= r->end || *p < '0' || *p > '9')
            return fail(r, t, s, "invalid number: digits must follow the point");
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        p++;
        real = 1;
        if (p < r->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= r->end || *p < '0' || *p > '9')
            return fail(r, t, s, "invalid number: digits must follow the exponent mark");
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < r->end && *p >= '0' && *p <= '9')
        return fail(r, t, s, "invalid number: no leading zeros");
    /* strtoll/strtod need a NUL-terminated copy. */
    sw_buf_reset(r->str);
    if (sw_buf_append(r->str, s, (size_t)(p - s)) != 0)
        return fail(r, t, s, "out of memory");
    errno = 0;
    if (real) {
        t->real = strtod(r->str->data, NULL);
        if (errno == ERANGE && (t->real > 1 || t->real < -1))
            return fail(r, t, s, "real number overflow");
        t->type = SW_JSON_REAL;
    } else {
        t->integer = strtoll(r->str->data, NULL, 10);
        if (errno == ERANGE)
            return fail(r, t, s, *s == '-' ? "too big negative integer" : "too big integer");
        t->type = SW_JSON_INTEGER;
    }
    t->str = r->str->data;
    t->len = r->str->len;
    r->p = p;
    return t->type;
}

static enum sw_json_type literal(sw_json_reader *r, sw_json_token *t, const char *word,
                                 enum sw_json_type type)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return fail(r, t, r->p, "invalid token");
    r->p += n;
    t->type = type;
    return type;
}

static void after_value(sw_json_reader *r)
{
    r->expect = r->depth == 0 ? E_DONE : E_COMMA_OR_END;
}

static enum sw_json_type open_container(sw_json_reader *r, sw_json_token *t, char kind)
{
    if (r->depth >= r->max_depth) {
        r->nesting = 1;
        return fail(r, t, r->p, "nested more than %d levels deep", r->max_depth);
    }
    r->kinds[r->depth++] = (unsigned char)kind;
    r->p++;
    r->expect = kind == '{' ? E_KEY_OR_END : E_VALUE_OR_END;
    t->type = kind == '{' ? SW_JSON_OBJECT : SW_JSON_ARRAY;
    return t->type;
}

static enum sw_json_type close_container(sw_json_reader *r, sw_json_token *t)
{
    char kind = (char)r->kinds[--r->depth];
    r->p++;
    after_value(r);
    t->type = kind == '{' ? SW_JSON_OBJECT_END : SW_JSON_ARRAY_END;
    return t->type;
}

static enum sw_json_type value(sw_json_reader *r, sw_json_token *t)
{
    enum sw_json_type type;
    switch (*r->p) {
    case '{': return open_container(r, t, '{');
    case '[': return open_container(r, t, '[');
    case '"': type = string(r, t, SW_JSON_STRING); break;
    case 't': type = literal(r, t, "true", SW_JSON_TRUE); break;
    case 'f': type = literal(r, t, "false", SW_JSON_FALSE); break;
    case 'n': type = literal(r, t, "null", SW_JSON_NULL); break;
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            type = number(r, t);
        else
            return fail(r, t, r->p, "invalid token");
    }
    if (type != SW_JSON_ERROR)
        after_value(r);
    return type;
}

enum sw_json_type sw_json_next(sw_json_reader *r, sw_json_token *t)
{
    t->str = NULL;
    t->len = 0;
    t->truncated = 0;
    for (;;) {
        while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' ||
                                 *r->p == '\r'))
            r->p++;
        if (r->expect == E_FAILED) {
            t->type = SW_JSON_ERROR;
            return SW_JSON_ERROR;
        }
        if (r->p >= r->end) {
            if (r->expect == E_DONE) {
                t->type = SW_JSON_EOF;
                return SW_JSON_EOF;
            }
            return fail(r, t, r->p, r->p == r->start ? "the body is empty"
                                                     : "premature end of input");
        }
        char c = *r->p;
        switch (r->expect) {
        case E_DONE:
            return fail(r, t, r->p, "end of input expected after the value");
        case E_COLON:
            if (c != ':')
                return fail(r, t, r->p, "':' expected after a key");
            r->p++;
            r->expect = E_VALUE;
            continue;
        case E_COMMA_OR_END: {
            char kind = (char)r->kinds[r->depth - 1];
            if (c == ',') {
                r->p++;
                r->expect = kind == '{' ? E_KEY : E_VALUE;
                continue;
            }
            if ((kind == '{' && c == '}') || (kind == '[' && c == ']'))
                return close_container(r, t);
            return fail(r, t, r->p, kind == '{' ? "',' or '}' expected" : "',' or ']' expected");
        }
        case E_KEY_OR_END:
            if (c == '}')
                return close_container(r, t);
            /* fall through */
        case E_KEY:
            if (c != '"')
                return fail(r, t, r->p, "string or '}' expected");
            if (string(r, t, SW_JSON_KEY) == SW_JSON_ERROR)
                return SW_JSON_ERROR;
            r->expect = E_COLON;
            return SW_JSON_KEY;
        case E_VALUE_OR_END:
            if (c == ']')
                return close_container(r, t);
            /* fall through */
        case E_VALUE:
            return value(r, t);
        default:
            return fail(r, t, r->p, "internal error");
        }
    }
}
