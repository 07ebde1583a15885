#ifndef SW_HTTP_EXCHANGE_H_
#define SW_HTTP_EXCHANGE_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http_head.h"
#include "problem.h"

/* One request and its reply, as handlers see them. The server core
 * (httpd.h) fills the request part once the head is framed and the body
 * read; a handler answers with exactly one sw_http_reply*. Formatting the
 * reply is pure: it lands in `out`, and the core sends it. */
typedef struct sw_http_exchange {
    /* The request, valid until the reply has been sent. */
    sw_http_head head;
    const char *method;         /* NUL-terminated */
    const char *path;           /* percent-decoded, NUL-terminated */
    const char *query;          /* as sent, "" when none */
    const char *body;           /* the whole body, chunked coding removed */
    size_t body_len;
    char client[48];            /* the client's address (X-Forwarded-For from a
                                   trusted proxy, else the peer's) */
    int head_only;              /* HEAD: the reply goes without its body */
    int64_t started_us;         /* when the head was framed (wall clock) */

    /* What the app's route() decided, for serve(): */
    int route;                  /* the app's own route number */
    const void *note, *note2;   /* whatever route() found (a sink, a token) */
    size_t body_max;            /* largest body accepted (see sw_http_accept_body) */
    const char *body_limit;     /* the setting behind body_max, named in a 413 */

    /* The reply. */
    int status;                 /* 0 until answered */
    int close;                  /* close the connection after the reply */
    int by_core;                /* the core refused it (framing, limits, time) */
    int abort;                  /* close without an answer (sw_http_abort) */
    int *deferred;              /* the core's: set by sw_httpd_defer() */
    sw_buf *out;                /* status line, fields and body */
    void *core;                 /* the core's own (its connection) */
} sw_http_exchange;

/* Make the framed head's parts C strings in place and decode the path
 * (buf holds the head; its bytes are changed). 0, or -1 with a 400 in
 * x->head.status/detail (a bad %-escape, an encoded NUL). */
__attribute__((warn_unused_result)) int sw_http_exchange_prepare(sw_http_exchange *x, char *buf);

/* The value of request header `name` (any case), NUL-terminated, or NULL. */
const char *sw_http_header(const sw_http_exchange *x, const char *name);

/* The value of parameter `name` in an &-separated query (it ends at the
 * next '&' or the end), or NULL when the query has none. Pure. */
const char *sw_http_query_param(const char *query, const char *name);

/* Accept a body of at most `max` bytes for this request (route() calls
 * it); `setting` names the limit in the 413 a larger body gets. */
void sw_http_accept_body(sw_http_exchange *x, size_t max, const char *setting);

/* Answer: status line, Date, Content-Type, Content-Length, Cache-Control,
 * the `extra` lines ("Name: value\r\n" each, or NULL) and Connection
 * when the connection closes after it. 0, or -1 when out of memory: then
 * nothing is kept and the request stands unanswered (the core answers 500
 * and closes, unless the handler aborts). */
__attribute__((warn_unused_result))
int sw_http_reply(sw_http_exchange *x, int status, const char *ctype, const char *extra,
                  const void *body, size_t len);

/* Answer with a problem+json body. */
__attribute__((warn_unused_result))
int sw_http_reply_problem(sw_http_exchange *x, const sw_problem *p, const char *extra);

/* Close the connection with no answer at all: for a handler that did
 * its work but cannot say so (out of memory after a job was queued). The
 * client sees the connection drop, which means "may have happened". */
void sw_http_abort(sw_http_exchange *x);

/* Close the connection after the reply (call before replying). */
void sw_http_close_after(sw_http_exchange *x);

/* The reason phrase of `status` ("Accepted"), or "Unknown". */
const char *sw_http_reason(int status);

#endif
