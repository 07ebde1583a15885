#include "problem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

int sw_problem_set(sw_problem *p, int status, const char *type,
                   const char *title, const char *fmt, ...)
{
    if (p->status != 0)
        return -1;
    p->status = status;
    p->type = type;
    p->title = title;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    /* Cut short: not inside a character. */
    if (n >= (int)sizeof p->detail) {
        size_t keep = sw_utf8_cut(p->detail, sizeof p->detail - 1);
        p->detail[keep] = '\0';
    }
    return -1;
}

int sw_problem_render(const sw_problem *p, sw_buf *out)
{
    if (sw_buf_printf(out, "{\"type\":\"urn:spillway:problem:%s\",\"title\":",
                      p->type) != 0 ||
        sw_buf_json_str(out, p->title, strlen(p->title)) != 0 ||
        sw_buf_printf(out, ",\"status\":%d,\"detail\":", p->status) != 0 ||
        sw_buf_json_str(out, p->detail, strlen(p->detail)) != 0 ||
        sw_buf_puts(out, "}") != 0)
        return -1;
    return 0;
}
