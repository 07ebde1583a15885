#ifndef SW_JSON_READER_H_
#define SW_JSON_READER_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A pull reader for one JSON text (RFC 8259, strict): it hands out one
 * token at a time and builds no document, so reading a body costs the
 * bytes of one string at most, whatever the body holds. Pure: no I/O.
 *
 * Rules, as jansson's (which the server used before): UTF-8 only (no
 * overlong forms, no surrogates, nothing past U+10FFFF); control bytes
 * escaped; \u escapes in valid surrogate pairs; no \u0000; numbers without
 * leading zeros; an integer is a number without fraction or exponent and
 * must fit in 64 bits; a real must not overflow. Duplicate keys are the
 * caller's to find (it knows which objects it keeps). */

enum sw_json_type {
    SW_JSON_EOF,            /* the text ended after one whole value */
    SW_JSON_OBJECT,         /* '{' */
    SW_JSON_OBJECT_END,
    SW_JSON_ARRAY,          /* '[' */
    SW_JSON_ARRAY_END,
    SW_JSON_KEY,            /* an object member's name */
    SW_JSON_STRING,
    SW_JSON_INTEGER,
    SW_JSON_REAL,
    SW_JSON_TRUE,
    SW_JSON_FALSE,
    SW_JSON_NULL,
    SW_JSON_ERROR,          /* see reader.error; reader.nesting for depth */
};

#define SW_JSON_MAX_DEPTH 1024

typedef struct sw_json_token {
    enum sw_json_type type;
    const char *str;        /* KEY, STRING: decoded, NUL-terminated; valid
                               until the next call */
    size_t len;             /* its whole decoded length in bytes: when
                               `truncated`, more than str holds */
    int truncated;          /* only a prefix (max_string bytes and a few)
                               was kept: read no further than strlen(str) */
    int64_t integer;
    double real;
} sw_json_token;

typedef struct sw_json_reader {
    const char *start, *p, *end;
    int depth, max_depth;
    unsigned char kinds[SW_JSON_MAX_DEPTH];  /* private: '{' or '[' per open level */
    int expect;             /* private */
    sw_buf *str;            /* decoded strings go here (the caller's) */
    size_t max_string;
    int nesting;            /* the error is the depth limit */
    char error[128];        /* on SW_JSON_ERROR: what, for a person */
    size_t error_at;        /* byte offset of the error */
} sw_json_reader;

/* Read buf[0..len). Values may nest `max_depth` levels (at most
 * SW_JSON_MAX_DEPTH); strings keep at most `max_string` bytes (their full
 * length is still reported). `str` is the caller's scratch buffer. The
 * reader allocates nothing itself. */
void sw_json_reader_init(sw_json_reader *r, const char *buf, size_t len, int max_depth,
                         size_t max_string, sw_buf *str);

/* The next token; its type is also returned. After SW_JSON_EOF or
 * SW_JSON_ERROR it keeps returning the same. */
enum sw_json_type sw_json_next(sw_json_reader *r, sw_json_token *t);

/* Line and column (from 1, in bytes) of the error. */
void sw_json_error_pos(const sw_json_reader *r, long *line, long *column);

/* What a token is, for messages: "an object", "a string", ... */
const char *sw_json_kind(enum sw_json_type t);

#endif
