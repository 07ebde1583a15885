#include "keyed.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"

int sw_keyed_src_col(sw_buf *b, const sw_column *col, int text)
{
    char type[64];
    if (!text)
        return sw_buf_printf(b, "\"%s\"", col->name);
    return sw_buf_printf(b, "(\"%s\")::%s", col->name,
                         col->type == SW_COL_VARCHAR ? "text"
                                                     : sw_sink_type_sql(col, type, sizeof type));
}

/* "a", "b" of the key columns, each prefixed by `pre` (e.g. "f."). */
static int key_list(sw_buf *b, const sw_sink *s, const char *pre)
{
    int rc = 0, first = 1;
    for (int c = 0; c < s->ncolumns; c++) {
        if (!s->columns[c].is_key)
            continue;
        rc |= sw_buf_printf(b, "%s%s\"%s\"", first ? "" : ", ", pre, s->columns[c].name);
        first = 0;
    }
    return rc;
}

/* a."k1" = b."k1" AND ... */
static int key_match(sw_buf *b, const sw_sink *s, const char *a, const char *o)
{
    int rc = 0, first = 1;
    for (int c = 0; c < s->ncolumns; c++) {
        if (!s->columns[c].is_key)
            continue;
        rc |= sw_buf_printf(b, "%s%s.\"%s\" = %s.\"%s\"", first ? "" : " AND ", a,
                            s->columns[c].name, o, s->columns[c].name);
        first = 0;
    }
    return rc;
}

/* ARRAY[<k1 as text>, ...]: a key as spillway.tombstones keeps it, the
 * same whatever the session's settings: numeric without trailing zeros
 * (12.5 and 12.50 are one key), times in ISO form, timestamptz in UTC. */
static int key_array(sw_buf *b, const sw_sink *s, const char *pre)
{
    static const char iso[] = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'";
    int rc = sw_buf_puts(b, "ARRAY[");
    int first = 1;
    for (int c = 0; c < s->ncolumns; c++) {
        const sw_column *col = &s->columns[c];
        if (!col->is_key)
            continue;
        rc |= sw_buf_puts(b, first ? "" : ", ");
        switch (col->type) {
        case SW_COL_NUMERIC:
            rc |= sw_buf_printf(b, "trim_scale(%s\"%s\")::text", pre, col->name);
            break;
        case SW_COL_TIMESTAMPTZ:
            rc |= sw_buf_printf(b, "to_char(%s\"%s\" AT TIME ZONE 'UTC', %s)", pre, col->name,
                                iso);
            break;
        case SW_COL_TIMESTAMP:
            rc |= sw_buf_printf(b, "to_char(%s\"%s\", %s)", pre, col->name, iso);
            break;
        case SW_COL_DATE:
            rc |= sw_buf_printf(b, "to_char(%s\"%s\", 'YYYY-MM-DD')", pre, col->name);
            break;
        default:
            rc |= sw_buf_printf(b, "%s\"%s\"::text", pre, col->name);
        }
        first = 0;
    }
    return rc | sw_buf_puts(b, "]");
}

/* The staged rows with their order: sw_ord numbers them by (sequence,
 * batch position), so a job's records keep their order and jobs follow
 * their sequence (0 without a version_column: batch order). */
static int source(sw_buf *b, const sw_sink *s, int k, int text, int per_job)
{
    int rc = sw_buf_puts(b, "SELECT ");
    for (int c = 0; c < s->ncolumns; c++) {
        rc |= sw_keyed_src_col(b, &s->columns[c], text);
        rc |= sw_buf_printf(b, " AS \"%s\", ", s->columns[c].name);
    }
    rc |= sw_buf_puts(b, "sw_del, sw_ver, sw_mask, "
                         "row_number() OVER (ORDER BY sw_ver, sw_seq) AS sw_ord FROM ");
    rc |= sw_buf_printf(b, text ? SW_KEYED_ISO : SW_KEYED_STAGE, k);
    if (per_job)
        rc |= sw_buf_puts(b, " WHERE sw_job = $1");
    return rc;
}

static int create_tables(sw_buf *b, const sw_sink *s, int k)
{
    char type[64];
    int rc = 0;
    for (int text = 0; text < 2; text++) {
        rc |= sw_buf_puts(b, "CREATE TEMP TABLE IF NOT EXISTS ");
        rc |= sw_buf_printf(b, text ? SW_KEYED_ISO : SW_KEYED_STAGE, k);
        rc |= sw_buf_puts(b, " (sw_seq bigint, sw_job integer, sw_ver bigint, sw_del boolean, "
                             "sw_mask text");
        for (int c = 0; c < s->ncolumns; c++) {
            const char *t = text ? "text" : sw_sink_type_sql(&s->columns[c], type, sizeof type);
            rc |= sw_buf_printf(b, ", \"%s\" %s", s->columns[c].name, t);
        }
        rc |= sw_buf_puts(b, ") ON COMMIT DELETE ROWS; ");
    }
    rc |= sw_buf_printf(b, "CREATE INDEX IF NOT EXISTS sw_iso_%d_keyed_job ON " SW_KEYED_ISO
                           " (sw_job)", k, k);
    if (s->mode != SW_MODE_UPSERT && s->mode != SW_MODE_MERGE)
        return rc;
    rc |= sw_buf_printf(b, "; CREATE TEMP TABLE IF NOT EXISTS sw_fold_%d (", k);
    for (int c = 0; c < s->ncolumns; c++)
        if (s->columns[c].is_key)
            rc |= sw_buf_printf(b, "\"%s\" %s, ", s->columns[c].name,
                                sw_sink_type_sql(&s->columns[c], type, sizeof type));
    rc |= sw_buf_puts(b, "sw_del boolean, sw_repl boolean, sw_ver bigint, sw_dver bigint, "
                         "sw_exists boolean");
    for (int c = 0; c < s->ncolumns; c++)
        if (!s->columns[c].is_key)
            rc |= sw_buf_printf(b, ", sw_p%d boolean, \"%s\" %s", c + 1, s->columns[c].name,
                                sw_sink_type_sql(&s->columns[c], type, sizeof type));
    rc |= sw_buf_puts(b, ", PRIMARY KEY (");
    rc |= key_list(b, s, "");
    rc |= sw_buf_puts(b, ")) ON COMMIT DELETE ROWS");
    return rc;
}

static int copy_into(sw_buf *b, const sw_sink *s, int k, int text)
{
    int rc = sw_buf_puts(b, "COPY ");
    rc |= sw_buf_printf(b, text ? SW_KEYED_ISO : SW_KEYED_STAGE, k);
    rc |= sw_buf_puts(b, " (sw_seq, sw_job, sw_ver, sw_del, sw_mask");
    for (int c = 0; c < s->ncolumns; c++)
        rc |= sw_buf_printf(b, ", \"%s\"", s->columns[c].name);
    return rc | sw_buf_puts(b, ") FROM STDIN");
}

/* 1. One row per key into the fold table. */
static int fold(sw_buf *b, const sw_sink *s, int k, const char *table, int text)
{
    int rc = sw_buf_printf(b, "INSERT INTO sw_fold_%d (", k);
    rc |= key_list(b, s, "");
    rc |= sw_buf_puts(b, ", sw_del, sw_repl, sw_ver, sw_dver");
    for (int c = 0; c < s->ncolumns; c++)
        if (!s->columns[c].is_key)
            rc |= sw_buf_printf(b, ", sw_p%d, \"%s\"", c + 1, s->columns[c].name);
    rc |= sw_buf_puts(b, ") SELECT ");
    rc |= key_list(b, s, "");
    rc |= sw_buf_puts(b, ", bool_or(sw_del AND sw_ord = sw_lord), bool_or(sw_dord > 0), "
                         "(array_agg(sw_ver ORDER BY sw_ord DESC))[1], "
                         "(array_agg(sw_ver ORDER BY sw_ord DESC) FILTER (WHERE sw_del))[1]");
    for (int c = 0; c < s->ncolumns; c++) {
        if (s->columns[c].is_key)
            continue;
        const char *named = "NOT sw_del AND sw_ord > sw_dord AND substr(sw_mask, %d, 1) = '1'";
        rc |= sw_buf_puts(b, ", bool_or(");
        rc |= sw_buf_printf(b, named, c + 1);
        rc |= sw_buf_printf(b, "), (array_agg(\"%s\" ORDER BY sw_ord DESC) FILTER (WHERE ",
                            s->columns[c].name);
        rc |= sw_buf_printf(b, named, c + 1);
        rc |= sw_buf_puts(b, "))[1]");
    }
    rc |= sw_buf_puts(b, " FROM (SELECT y.*, max(sw_ord) OVER w AS sw_lord, "
                         "coalesce(max(CASE WHEN sw_del THEN sw_ord END) OVER w, 0) AS sw_dord "
                         "FROM (");
    rc |= source(b, s, k, text, text);
    rc |= sw_buf_puts(b, ") y");
    if (s->version_column[0]) {
        /* What is older than the row or the key's tombstone is left out
         * before anything folds: a late partial write must not lend the
         * fold a field a newer write already set. (The fold runs after
         * the key locks: the row cannot change meanwhile.) */
        rc |= sw_buf_printf(b, " WHERE NOT EXISTS (SELECT 1 FROM %s t WHERE ", table);
        rc |= key_match(b, s, "t", "y");
        rc |= sw_buf_printf(b, " AND t.\"%s\" >= y.sw_ver) AND NOT EXISTS (SELECT 1 FROM "
                               "spillway.tombstones tb WHERE tb.sink = '%s' AND tb.key = ",
                            s->version_column, s->name);
        rc |= key_array(b, s, "y.");
        rc |= sw_buf_puts(b, " AND tb.version >= y.sw_ver)");
    }
    rc |= sw_buf_puts(b, " WINDOW w AS (PARTITION BY ");
    rc |= key_list(b, s, "");
    rc |= sw_buf_puts(b, ")) x GROUP BY ");
    return rc | key_list(b, s, "");
}

uint64_t sw_keyed_bucket_bit(const sw_sink *s, const sw_value *vals)
{
    uint64_t h = 1469598103934665603ULL;
    for (int c = 0; c < s->ncolumns; c++) {
        const sw_value *v = &vals[c];
        if (!s->columns[c].is_key)
            continue;
        uint64_t part = v->kind;
        if (v->kind == SW_V_STR) {
            part ^= sw_hash64(v->s, v->n);
        } else if (v->kind == SW_V_FLOAT) {
            double f = v->f == 0 ? 0 : v->f;   /* -0.0 is 0.0 */
            uint64_t bits;
            memcpy(&bits, &f, sizeof bits);
            part ^= sw_hash64(&bits, sizeof bits);
        } else if (v->kind == SW_V_INT || v->kind == SW_V_BOOL) {
            part ^= sw_hash64(&v->i, sizeof v->i);
        }
        h = (h ^ part) * 1099511628211ULL;
    }
    return 1ULL << (h % SW_KEYED_LOCK_BUCKETS);
}

int sw_keyed_lock_sql(sw_buf *b, const sw_sink *s, uint64_t buckets)
{
    int rc = sw_buf_printf(b, "SELECT count(pg_advisory_xact_lock(hashtext('spillway:%s'), x.b)) "
                              "FROM (SELECT unnest('{", s->name);
    const char *sep = "";
    for (int i = 0; i < SW_KEYED_LOCK_BUCKETS; i++) {
        if (buckets & (1ULL << i)) {
            rc |= sw_buf_printf(b, "%s%d", sep, i);
            sep = ",";
        }
    }
    return rc | sw_buf_puts(b, "}'::int[]) AS b ORDER BY 1) x");
}

/* Which keys have a row, now that no other flusher can change that:
 * those are updated (only the columns named change, so a NOT NULL column
 * the write leaves out is no matter), the others inserted. */
static int mark_existing(sw_buf *b, const sw_sink *s, int k, const char *table)
{
    int rc = sw_buf_printf(b, "UPDATE sw_fold_%d f SET sw_exists = true FROM %s t WHERE ", k,
                           table);
    return rc | key_match(b, s, "t", "f");
}

/* 2. Delete the rows of keys whose last operation deletes. */
static int delete_rows(sw_buf *b, const sw_sink *s, int k, const char *table)
{
    int rc = sw_buf_printf(b, "DELETE FROM %s t USING sw_fold_%d f WHERE f.sw_del AND ", table, k);
    rc |= key_match(b, s, "t", "f");
    if (s->version_column[0])
        rc |= sw_buf_printf(b, " AND (t.\"%s\" IS NULL OR t.\"%s\" < f.sw_ver)",
                            s->version_column, s->version_column);
    return rc;
}

/* 3. Tombstones of the keys the batch deletes (version_column only),
 * with the last delete's sequence, also where a write follows it. */
static int tombstones(sw_buf *b, const sw_sink *s, int k)
{
    int rc = sw_buf_puts(b, "INSERT INTO spillway.tombstones AS tb (sink, key, version) SELECT ");
    rc |= sw_buf_printf(b, "'%s', ", s->name);   /* sink names are [a-z0-9_] */
    rc |= key_array(b, s, "f.");
    rc |= sw_buf_printf(b, ", f.sw_dver FROM sw_fold_%d f WHERE f.sw_dver IS NOT NULL ORDER BY 2 "
                           "ON CONFLICT (sink, key) DO UPDATE SET "
                           "version = greatest(tb.version, EXCLUDED.version), "
                           "deleted_at = now()", k);
    return rc;
}

/* A column's default as the statements write it: varchar as text, so an
 * assignment refuses one too long rather than a cast cutting it. */
static const char *default_type(const sw_column *col, char *type, size_t n)
{
    return col->type == SW_COL_VARCHAR ? "text" : sw_sink_type_sql(col, type, n);
}

/* 4a. Update the rows of keys that have one and whose last operation
 * writes: named columns set; after a delete in the batch (sw_repl) the
 * others take their defaults, unless the row was written after that
 * delete; with a version_column only where the write is newer. */
static int update_rows(sw_buf *b, const sw_sink *s, int k, const char *table,
                       char *const *defaults)
{
    char type[64];
    const char *v = s->version_column;
    int rc = sw_buf_printf(b, "UPDATE %s t SET ", table), first = 1;
    for (int c = 0; c < s->ncolumns; c++) {
        const sw_column *col = &s->columns[c];
        if (col->is_key)
            continue;
        rc |= sw_buf_printf(b, "%s\"%s\" = CASE WHEN f.sw_p%d THEN f.\"%s\" WHEN f.sw_repl",
                            first ? "" : ", ", col->name, c + 1, col->name);
        if (v[0])
            rc |= sw_buf_printf(b, " AND (t.\"%s\" IS NULL OR t.\"%s\" < f.sw_dver)", v, v);
        rc |= sw_buf_printf(b, " THEN (%s)::%s ELSE t.\"%s\" END", defaults[c],
                            default_type(col, type, sizeof type), col->name);
        first = 0;
    }
    if (v[0])
        rc |= sw_buf_printf(b, "%s\"%s\" = f.sw_ver", first ? "" : ", ", v);
    rc |= sw_buf_printf(b, " FROM sw_fold_%d f WHERE f.sw_exists AND NOT f.sw_del AND ", k);
    rc |= key_match(b, s, "t", "f");
    if (v[0])
        rc |= sw_buf_printf(b, " AND (t.\"%s\" IS NULL OR t.\"%s\" < f.sw_ver)", v, v);
    return rc;
}

/* 4b. Insert the rows of keys that had none: named columns, the others'
 * defaults; with a version_column only where the write is newer than the
 * key's tombstone. ON CONFLICT covers a row another writer than Spillway
 * made meanwhile.
 * `defaults[c]`: the SQL of column c's default ("NULL" without one). */
static int write_rows(sw_buf *b, const sw_sink *s, int k, const char *table,
                      char *const *defaults)
{
    char type[64];
    const char *v = s->version_column;
    int rc = sw_buf_printf(b, "INSERT INTO %s AS t (", table), nonkey = 0;
    for (int c = 0; c < s->ncolumns; c++)
        rc |= sw_buf_printf(b, "%s\"%s\"", c ? ", " : "", s->columns[c].name);
    if (v[0])
        rc |= sw_buf_printf(b, ", \"%s\"", v);
    rc |= sw_buf_puts(b, ") SELECT ");
    for (int c = 0; c < s->ncolumns; c++) {
        const sw_column *col = &s->columns[c];
        if (col->is_key)
            rc |= sw_buf_printf(b, "%sf.\"%s\"", c ? ", " : "", col->name);
        else
            rc |= sw_buf_printf(b, "%sCASE WHEN f.sw_p%d THEN f.\"%s\" ELSE (%s)::%s END",
                                c ? ", " : "", c + 1, col->name, defaults[c],
                                default_type(col, type, sizeof type));
        nonkey += !col->is_key;
    }
    if (v[0])
        rc |= sw_buf_puts(b, ", f.sw_ver");
    rc |= sw_buf_printf(b, " FROM sw_fold_%d f WHERE NOT f.sw_del AND f.sw_exists IS NOT TRUE",
                        k);
    if (v[0]) {
        rc |= sw_buf_printf(b, " AND NOT EXISTS (SELECT 1 FROM spillway.tombstones tb WHERE "
                               "tb.sink = '%s' AND tb.key = ", s->name);
        rc |= key_array(b, s, "f.");
        rc |= sw_buf_puts(b, " AND tb.version >= f.sw_ver)");
    }
    /* Rows locked in key order: two flushers meet in the same order. */
    rc |= sw_buf_puts(b, " ORDER BY ");
    rc |= key_list(b, s, "f.");
    rc |= sw_buf_puts(b, " ON CONFLICT (");
    rc |= key_list(b, s, "");
    if (nonkey == 0 && !v[0])
        return rc | sw_buf_puts(b, ") DO NOTHING");
    rc |= sw_buf_puts(b, ") DO UPDATE SET ");
    if (nonkey == 0) {
        rc |= sw_buf_printf(b, "\"%s\" = EXCLUDED.\"%s\"", v, v);
    } else {
        /* Which columns the write named is in the fold row, not in
         * EXCLUDED: one lookup by its primary key. */
        int first = 1;
        rc |= sw_buf_puts(b, "(");
        for (int c = 0; c < s->ncolumns; c++) {
            if (s->columns[c].is_key)
                continue;
            rc |= sw_buf_printf(b, "%s\"%s\"", first ? "" : ", ", s->columns[c].name);
            first = 0;
        }
        if (v[0])
            rc |= sw_buf_printf(b, ", \"%s\"", v);
        rc |= sw_buf_puts(b, ") = (SELECT ");
        first = 1;
        for (int c = 0; c < s->ncolumns; c++) {
            const char *n = s->columns[c].name;
            if (s->columns[c].is_key)
                continue;
            rc |= sw_buf_printf(b, "%sCASE WHEN g.sw_p%d OR g.sw_repl THEN EXCLUDED.\"%s\" "
                                   "ELSE t.\"%s\" END", first ? "" : ", ", c + 1, n, n);
            first = 0;
        }
        if (v[0])
            rc |= sw_buf_printf(b, ", EXCLUDED.\"%s\"", v);
        rc |= sw_buf_printf(b, " FROM sw_fold_%d g WHERE ", k);
        rc |= key_match(b, s, "g", "EXCLUDED");
        rc |= sw_buf_puts(b, ")");
    }
    if (v[0])
        rc |= sw_buf_printf(b, " WHERE t.\"%s\" IS NULL OR t.\"%s\" < EXCLUDED.\"%s\"", v, v, v);
    return rc;
}

/* Insert and ignore sinks: 1. delete every key the batch deletes. */
static int plain_delete(sw_buf *b, const sw_sink *s, int k, const char *table, int text)
{
    int rc = sw_buf_printf(b, "DELETE FROM %s t USING (SELECT * FROM (", table);
    rc |= source(b, s, k, text, text);
    rc |= sw_buf_puts(b, ") y WHERE sw_del) d WHERE ");
    return rc | key_match(b, s, "t", "d");
}

/* 2. Insert the records after their key's last delete, in order. */
static int plain_insert(sw_buf *b, const sw_sink *s, int k, const char *table, int text)
{
    int rc = sw_buf_printf(b, "INSERT INTO %s (", table);
    for (int c = 0; c < s->ncolumns; c++)
        rc |= sw_buf_printf(b, "%s\"%s\"", c ? ", " : "", s->columns[c].name);
    rc |= sw_buf_puts(b, ") SELECT ");
    for (int c = 0; c < s->ncolumns; c++)
        rc |= sw_buf_printf(b, "%s\"%s\"", c ? ", " : "", s->columns[c].name);
    rc |= sw_buf_puts(b, " FROM (SELECT y.*, coalesce(max(CASE WHEN sw_del THEN sw_ord END) "
                         "OVER (PARTITION BY ");
    rc |= key_list(b, s, "");
    rc |= sw_buf_puts(b, "), 0) AS sw_dord FROM (");
    rc |= source(b, s, k, text, text);
    rc |= sw_buf_puts(b, ") y) x WHERE NOT sw_del AND sw_ord > sw_dord ORDER BY sw_ord");
    if (s->mode == SW_MODE_IGNORE) {
        rc |= sw_buf_puts(b, " ON CONFLICT (");
        rc |= key_list(b, s, "");
        rc |= sw_buf_puts(b, ") DO NOTHING");
    }
    return rc;
}

/* Each column's default as SQL, from the catalog: its DEFAULT, the next
 * value of an identity column, or NULL. Only merge needs them (upsert
 * names every column). */
static int read_defaults(const sw_sink *s, const char *table, char **out, sw_pg *pg)
{
    for (int c = 0; c < s->ncolumns; c++)
        out[c] = NULL;
    if (s->mode == SW_MODE_MERGE) {
        const char *params[] = {table};
        PGresult *res = sw_pg_query(
            pg,
            "SELECT a.attname, coalesce(pg_get_expr(d.adbin, d.adrelid), "
            "  CASE WHEN a.attidentity <> '' THEN format('nextval(%L::regclass)', "
            "    pg_get_serial_sequence($1, a.attname)) END) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "  ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            1, params);
        if (res == NULL)
            return -1;
        for (int r = 0; r < PQntuples(res); r++) {
            const char *name = PQgetvalue(res, r, 0);
            int c = sw_sink_column_index(s, name, strlen(name));
            if (c < 0 || PQgetisnull(res, r, 1))
                continue;
            if ((out[c] = strdup(PQgetvalue(res, r, 1))) == NULL) {
                PQclear(res);
                goto oom;
            }
        }
        PQclear(res);
    }
    for (int c = 0; c < s->ncolumns; c++)
        if (out[c] == NULL && (out[c] = strdup("NULL")) == NULL)
            goto oom;
    return 0;
oom:
    snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
    pg->sqlstate[0] = '\0';
    return -1;
}

static char *take(sw_buf *b, int rc)
{
    if (rc != 0) {
        sw_buf_free(b);
        return NULL;
    }
    char *d = b->data;
    *b = (sw_buf)SW_BUF_INIT;
    return d;
}

int sw_keyed_build(sw_keyed *kd, const sw_sink *s, int k, sw_pg *pg)
{
    char table[200];
    char **defaults = calloc((size_t)s->ncolumns, sizeof *defaults);
    sw_buf b = SW_BUF_INIT;
    int rc = -1, keyed = s->mode == SW_MODE_UPSERT || s->mode == SW_MODE_MERGE;
    sw_keyed_clear(kd);
    sw_pg_quote_ident(s->table, table, sizeof table);
    if (defaults == NULL) {
        snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
        pg->sqlstate[0] = '\0';
        goto out;
    }
    if (read_defaults(s, table, defaults, pg) != 0)
        goto out;
    kd->create = take(&b, create_tables(&b, s, k));
    kd->copy = take(&b, copy_into(&b, s, k, 0));
    kd->iso_copy = take(&b, copy_into(&b, s, k, 1));
    /* Isolation runs the statements per job, so it first empties the
     * fold of the job before; the fast path sends them in one round trip
     * (its fold starts empty: ON COMMIT DELETE ROWS, and a failed attempt
     * rolls back). */
    for (int text = 0; text < 2; text++) {
        char *st[SW_KEYED_MAX_STMTS];
        int n = 0;
        if (keyed) {
            int nonkey = 0;
            for (int c = 0; c < s->ncolumns; c++)
                nonkey += !s->columns[c].is_key;
            if (text)
                st[n++] = take(&b, sw_buf_printf(&b, "DELETE FROM sw_fold_%d", k));
            st[n++] = take(&b, fold(&b, s, k, table, text));
            st[n++] = take(&b, mark_existing(&b, s, k, table));
            st[n++] = take(&b, delete_rows(&b, s, k, table));
            if (s->version_column[0])
                st[n++] = take(&b, tombstones(&b, s, k));
            if (nonkey > 0 || s->version_column[0])
                st[n++] = take(&b, update_rows(&b, s, k, table, defaults));
            st[n++] = take(&b, write_rows(&b, s, k, table, defaults));
        } else {
            st[n++] = take(&b, plain_delete(&b, s, k, table, text));
            st[n++] = take(&b, plain_insert(&b, s, k, table, text));
        }
        int ok = 1;
        for (int i = 0; i < n; i++)
            ok &= st[i] != NULL;
        if (text) {
            memcpy(kd->iso_stmts, st, (size_t)n * sizeof st[0]);
            kd->iso_nstmts = n;
        } else {
            int brc = 0;
            for (int i = 0; i < n && ok; i++)
                brc |= sw_buf_printf(&b, "%s%s", i ? "; " : "", st[i]);
            for (int i = 0; i < n; i++)
                free(st[i]);
            kd->apply = ok ? take(&b, brc) : NULL;
            sw_buf_free(&b);
        }
    }
    rc = kd->create && kd->copy && kd->iso_copy && kd->apply ? 0 : -1;
    for (int i = 0; i < kd->iso_nstmts; i++)
        rc |= kd->iso_stmts[i] == NULL ? -1 : 0;
    if (rc != 0) {
        snprintf(pg->errstr, sizeof pg->errstr, "out of memory building sink %s's statements",
                 s->name);
        pg->sqlstate[0] = '\0';
    }
out:
    for (int c = 0; defaults && c < s->ncolumns; c++)
        free(defaults[c]);
    free(defaults);
    if (rc != 0)
        sw_keyed_clear(kd);
    return rc;
}

void sw_keyed_clear(sw_keyed *kd)
{
    if (kd == NULL)
        return;
    free(kd->create);
    free(kd->copy);
    free(kd->iso_copy);
    free(kd->apply);
    for (int i = 0; i < SW_KEYED_MAX_STMTS; i++)
        free(kd->iso_stmts[i]);
    memset(kd, 0, sizeof *kd);
}
