#include "shape.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sw_shape_describe(const sw_sink *s, sw_buf *out)
{
    char type[64];
    int rc = 0;
    sw_buf_reset(out);
    for (int c = 0; c < s->ncolumns && rc == 0; c++)
        rc = sw_buf_printf(out, "%s%s %s", c ? "," : "", s->columns[c].name,
                           sw_sink_type_sql(&s->columns[c], type, sizeof type));
    if (rc == 0 && out->data == NULL)
        rc = sw_buf_puts(out, "");
    return rc ? -1 : 0;
}

uint64_t sw_shape_fingerprint(const sw_sink *s)
{
    sw_buf text = SW_BUF_INIT;
    unsigned char md[SHA256_DIGEST_LENGTH];
    uint64_t fp = 0;
    if (sw_shape_describe(s, &text) == 0) {
        SHA256((const unsigned char *)text.data, text.len, md);
        for (int i = 0; i < 8; i++)
            fp = fp << 8 | md[i];
    }
    sw_buf_free(&text);
    return fp ? fp : 1;
}

static int rank_int(enum sw_coltype t)
{
    switch (t) {
    case SW_COL_SMALLINT: return 1;
    case SW_COL_INTEGER: return 2;
    case SW_COL_BIGINT: return 3;
    case SW_COL_NUMERIC: return 4;
    default: return 0;
    }
}

int sw_shape_type_safe(const sw_column *from, const sw_column *to)
{
    enum sw_coltype a = from->type, b = to->type;
    if (a == b)
        return a != SW_COL_VARCHAR || to->maxlen >= from->maxlen;
    if (rank_int(a) && rank_int(b))
        return rank_int(a) < rank_int(b);
    if (a == SW_COL_REAL && b == SW_COL_DOUBLE)
        return 1;
    if (a == SW_COL_VARCHAR && b == SW_COL_TEXT)
        return 1;
    return (a == SW_COL_JSON && b == SW_COL_JSONB) || (a == SW_COL_JSONB && b == SW_COL_JSON);
}

void sw_shape_map_build(sw_shape_map *m, uint64_t fingerprint, const char *old_columns,
                        const sw_sink *now)
{
    sw_sink old;
    char why[256], ta[64], tb[64];
    memset(m, 0, sizeof *m);
    memset(&old, 0, sizeof old);
    m->fingerprint = fingerprint;
    if (sw_sink_parse_columns(&old, old_columns, why, sizeof why) != 0) {
        snprintf(m->reason, sizeof m->reason,
                 "sink \"%s\" changed since the job was queued, and its old definition cannot "
                 "be read (%s)", now->name, why);
        goto out;
    }
    m->ncolumns_old = old.ncolumns;
    for (int c = 0; c < now->ncolumns; c++) {
        m->from[c] = sw_sink_column_index(&old, now->columns[c].name,
                                          strlen(now->columns[c].name));
        if (m->from[c] >= 0 && !sw_shape_type_safe(&old.columns[m->from[c]], &now->columns[c])) {
            snprintf(m->reason, sizeof m->reason,
                     "sink \"%s\" changed since the job was queued: column %s was %s and is "
                     "now %s, which does not hold every such value",
                     now->name, now->columns[c].name,
                     sw_sink_type_sql(&old.columns[m->from[c]], ta, sizeof ta),
                     sw_sink_type_sql(&now->columns[c], tb, sizeof tb));
            goto out;
        }
    }
    for (int o = 0; o < old.ncolumns; o++) {
        if (sw_sink_column_index(now, old.columns[o].name, strlen(old.columns[o].name)) < 0) {
            snprintf(m->gone_name[m->ngone], sizeof m->gone_name[0], "%s", old.columns[o].name);
            m->gone[m->ngone++] = o;
        }
    }
    m->usable = 1;
out:
    sw_sink_clear(&old);
}

int sw_shape_map_check(const sw_shape_map *m, const sw_sink *now, const sw_envelope *env,
                       sw_value *scratch, char *why, size_t whylen)
{
    if ((int)env->ncolumns != m->ncolumns_old) {
        snprintf(why, whylen, "sink \"%s\": the job has %u columns, its recorded shape %d",
                 now->name, env->ncolumns, m->ncolumns_old);
        return -1;
    }
    if (m->ngone == 0)
        return 0;
    const unsigned char *cur = env->records;
    for (uint32_t r = 0; r < env->nrecords; r++) {
        if (sw_envelope_next(env, &cur, scratch) != 0) {
            snprintf(why, whylen, "corrupt envelope: record %u", r);
            return -1;
        }
        for (int g = 0; g < m->ngone; g++) {
            enum sw_value_kind k = scratch[m->gone[g]].kind;
            if (k != SW_V_NULL && k != SW_V_ABSENT) {
                snprintf(why, whylen,
                         "sink \"%s\" changed since the job was queued: column %s was "
                         "removed, and record %u has a value for it", now->name,
                         m->gone_name[g], r);
                return -1;
            }
        }
    }
    return 0;
}

void sw_shape_map_apply(const sw_shape_map *m, const sw_sink *now, const sw_value *old,
                        sw_value *out)
{
    for (int c = 0; c < now->ncolumns; c++) {
        if (m->from[c] >= 0) {
            out[c] = old[m->from[c]];
        } else {
            /* A column added since: a merge leaves it as it is. */
            memset(&out[c], 0, sizeof out[c]);
            out[c].kind = now->mode == SW_MODE_MERGE ? SW_V_ABSENT : SW_V_NULL;
        }
    }
}
