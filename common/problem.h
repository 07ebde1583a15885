#ifndef SW_PROBLEM_H_
#define SW_PROBLEM_H_

#include "buf.h"

/* An RFC 9457 problem: what went wrong with a request and what to fix.
 * Filled by the pure request codecs; rendered by the HTTP adapter. */
typedef struct sw_problem {
    int status;          /* HTTP status, 0 when no problem was set */
    const char *type;    /* short slug, appended to the type URI */
    const char *title;   /* fixed per type */
    char detail[384];    /* what to fix, for a person */
} sw_problem;

/* Record a problem; the first one set wins so the root cause is reported.
 * Always returns -1 so callers can `return sw_problem_set(...)`. */
__attribute__((format(printf, 5, 6)))
int sw_problem_set(sw_problem *p, int status, const char *type,
                   const char *title, const char *fmt, ...);

/* Append the problem+json body to `out`. 0, or -1 when out of memory. */
__attribute__((warn_unused_result)) int sw_problem_render(const sw_problem *p, sw_buf *out);

#endif
