#ifndef SW_HTTP_HEAD_H_
#define SW_HTTP_HEAD_H_

#include <stddef.h>
#include <stdint.h>

/* The request head (request line and header fields), framed strictly by
 * RFC 9112 before anything else looks at a request. Pure: no I/O, no
 * allocation; spans point into the caller's bytes.
 *
 * The verdict is one of: more bytes needed, a head and how its body is
 * framed, or a refusal (status + detail). Every refusal means "close": the
 * bytes after a head we could not frame are never parsed, so no second
 * reader can see a different request boundary than we do. Accepted are
 * only heads whose boundary and body framing have one reading:
 *
 *   - lines end in CRLF; a bare LF or CR, a NUL, or any other control byte
 *     outside HTAB is refused, as are leading blank lines;
 *   - request line: token SP origin-form SP "HTTP/1.x", single spaces;
 *   - field lines: token ":" OWS value OWS; no whitespace before the colon,
 *     no obs-fold, no empty names;
 *   - body framing: none, exactly one Content-Length of digits only, or
 *     exactly one Transfer-Encoding whose value is "chunked" (any case);
 *     both together, a list, another coding, or chunked on HTTP/1.0 are
 *     refused;
 *   - exactly one Host on HTTP/1.1 (at most one on 1.0), and at most one
 *     of each field the server acts on (Authorization, Content-Type,
 *     Idempotency-Key, Expect). */

#define SW_HTTP_MAX_FIELDS 100

typedef struct sw_http_field {
    const char *name;
    size_t name_len;
    const char *value;      /* without surrounding whitespace */
    size_t value_len;
} sw_http_field;

enum sw_http_framing {
    SW_HTTP_NO_BODY,        /* neither Content-Length nor Transfer-Encoding */
    SW_HTTP_LENGTH,         /* content_length bytes */
    SW_HTTP_CHUNKED,        /* chunked coding (http_chunked.h) */
};

typedef struct sw_http_head {
    size_t len;                     /* bytes, through the empty line */
    const char *method;
    size_t method_len;
    const char *target;             /* origin-form: path, then ?query */
    size_t target_len;
    int minor;                      /* HTTP/1.0 or HTTP/1.1 (1.x, x > 1, is 1) */
    sw_http_field fields[SW_HTTP_MAX_FIELDS];
    int nfields;
    enum sw_http_framing framing;
    uint64_t content_length;        /* SW_HTTP_LENGTH; UINT64_MAX when huge */
    int keep_alive;                 /* the client's wish: version and Connection */
    int expect_continue;            /* Expect: 100-continue */
    /* A refusal: */
    int status;                     /* 400, 413, 417, 431, 501 or 505 */
    char detail[160];               /* what is wrong, for a person; plain ASCII */
} sw_http_head;

typedef struct sw_http_limits {
    size_t max_head_bytes;          /* request line and fields, CRLFs included */
    const char *setting;            /* names max_head_bytes in a 431 (or NULL) */
} sw_http_limits;

/* Frame the head at the start of buf[0..len). `*scanned` carries how far
 * earlier calls on the same (growing) bytes looked; start it at 0. Returns
 * the head's length (> 0) with `h` filled, 0 when more bytes are needed,
 * or -1 with h->status and h->detail set. A bad byte is refused as soon
 * as it arrives, without waiting for the rest of the head. */
__attribute__((warn_unused_result))
long sw_http_head_read(sw_http_head *h, const char *buf, size_t len, size_t *scanned,
                       const sw_http_limits *lim);

/* The field called `name` (any case), or NULL. With several, the first. */
const sw_http_field *sw_http_head_field(const sw_http_head *h, const char *name);

/* Its value as a span; NULL (and *n = 0) when absent. */
const char *sw_http_head_value(const sw_http_head *h, const char *name, size_t *n);

/* 1 when `c` may be part of a token (a method, a field name): RFC 9110's
 * tchar. */
int sw_http_is_tchar(unsigned char c);

/* 1 when the span [s, s+n) equals the C string `lit` in any case. */
int sw_http_token_eq(const char *s, size_t n, const char *lit);

#endif
