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

static int values(sw_buf *out, int lead, const sw_sink *sink, const sw_value *vals);

int sw_copyrow_append(sw_buf *out, int64_t seq, int job, const sw_sink *sink,
                      const sw_value *vals)
{
    if (seq >= 0 && sw_buf_printf(out, "%lld\t%d", (long long)seq, job) != 0)
        return -1;
    return values(out, seq >= 0, sink, vals);
}

int sw_copyrow_append_keyed(sw_buf *out, int64_t seq, int job, int64_t ver, int del,
                            const sw_sink *sink, const sw_value *vals)
{
    char mask[SW_SINK_MAX_COLUMNS + 1];
    int n = sink->ncolumns < SW_SINK_MAX_COLUMNS ? sink->ncolumns : SW_SINK_MAX_COLUMNS;
    /* Only a merge leaves columns as they are; a job queued under merge
     * and flushed after the sink became upsert NULLs them, as upsert does. */
    for (int c = 0; c < n; c++)
        mask[c] = vals[c].kind == SW_V_ABSENT && sink->mode == SW_MODE_MERGE ? '0' : '1';
    mask[n] = '\0';
    if (sw_buf_printf(out, "%lld\t%d\t%lld\t%s\t%s", (long long)seq, job, (long long)ver,
                      del ? "t" : "f", mask) != 0)
        return -1;
    return values(out, 1, sink, vals);
}

/* The values, tab-separated (a tab first when `lead`), and the newline. */
static int values(sw_buf *out, int lead, const sw_sink *sink, const sw_value *vals)
{
    char num[40];
    for (int c = 0; c < sink->ncolumns; c++) {
        const sw_value *v = &vals[c];
        if ((lead || c > 0) && sw_buf_append(out, "\t", 1) != 0)
            return -1;
        int rc;
        switch (v->kind) {
        case SW_V_NULL:
        case SW_V_ABSENT: rc = sw_buf_append(out, "\\N", 2); break;
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
