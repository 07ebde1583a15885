#include "copyrow.h"

#include <stdio.h>
#include <string.h>

static int escaped(sw_buf *out, const char *s, size_t n)
{
    if (sw_buf_reserve(out, n + 8) != 0)
        return -1;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i], e;
        switch (c) {
        case '\\': e = '\\'; break;
        case '\t': e = 't'; break;
        case '\n': e = 'n'; break;
        case '\r': e = 'r'; break;
        default: continue;
        }
        char pair[2] = {'\\', e};
        if (sw_buf_append(out, s + start, i - start) != 0 || sw_buf_append(out, pair, 2) != 0)
            return -1;
        start = i + 1;
    }
    return sw_buf_append(out, s + start, n - start);
}

int sw_copyrow_append(sw_buf *out, int64_t seq, int job, const sw_sink *sink,
                      const sw_value *vals)
{
    char num[40];
    if (seq >= 0 && sw_buf_printf(out, "%lld\t%d", (long long)seq, job) != 0)
        return -1;
    for (int c = 0; c < sink->ncolumns; c++) {
        const sw_value *v = &vals[c];
        if ((seq >= 0 || c > 0) && sw_buf_append(out, "\t", 1) != 0)
            return -1;
        int rc;
        switch (v->kind) {
        case SW_V_NULL: rc = sw_buf_append(out, "\\N", 2); break;
        case SW_V_BOOL: rc = sw_buf_append(out, v->i ? "t" : "f", 1); break;
        case SW_V_INT: rc = sw_buf_printf(out, "%lld", (long long)v->i); break;
        case SW_V_FLOAT:
            /* 17 digits read back as the same double in PostgreSQL. */
            snprintf(num, sizeof num, "%.17g", v->f);
            rc = sw_buf_puts(out, num);
            break;
        case SW_V_STR: rc = escaped(out, v->s, v->n); break;
        default: rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    return sw_buf_append(out, "\n", 1);
}
