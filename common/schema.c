#include "schema.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Does PostgreSQL's format_type() spelling `db` store values of `col`? */
static int type_matches(const sw_column *col, const char *db)
{
    switch (col->type) {
    case SW_COL_SMALLINT: return strcmp(db, "smallint") == 0;
    case SW_COL_INTEGER: return strcmp(db, "integer") == 0;
    case SW_COL_BIGINT: return strcmp(db, "bigint") == 0;
    case SW_COL_REAL: return strcmp(db, "real") == 0;
    case SW_COL_DOUBLE: return strcmp(db, "double precision") == 0;
    case SW_COL_NUMERIC: return strncmp(db, "numeric", 7) == 0;
    case SW_COL_BOOLEAN: return strcmp(db, "boolean") == 0;
    case SW_COL_TEXT: return strcmp(db, "text") == 0;
    case SW_COL_VARCHAR: {
        int n = 0;
        if (strcmp(db, "character varying") == 0 || strcmp(db, "text") == 0)
            return 1;
        return sscanf(db, "character varying(%d)", &n) == 1 && n >= col->maxlen;
    }
    case SW_COL_UUID: return strcmp(db, "uuid") == 0;
    case SW_COL_DATE: return strcmp(db, "date") == 0;
    case SW_COL_TIMESTAMPTZ:
        return strncmp(db, "timestamp", 9) == 0 && strstr(db, "with time zone") &&
               !strstr(db, "without");
    case SW_COL_TIMESTAMP:
        return strncmp(db, "timestamp", 9) == 0 && strstr(db, "without time zone");
    case SW_COL_JSON: return strcmp(db, "json") == 0;
    case SW_COL_JSONB: return strcmp(db, "jsonb") == 0;
    }
    return 0;
}

static int key_list(const sw_sink *s, char *out, size_t outlen)
{
    /* Sorted, comma-joined, to compare with the index query below. */
    const char *names[SW_SINK_MAX_COLUMNS];
    int n = 0;
    for (int c = 0; c < s->ncolumns; c++)
        if (s->columns[c].is_key)
            names[n++] = s->columns[c].name;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, outlen - l, "%s%s", i ? "," : "", names[i]);
    }
    return n;
}

int sw_schema_check(sw_pg *pg, const sw_sink *s, sw_buf *report)
{
    const char *params[] = {s->table};
    int problems = 0;
    PGresult *res = sw_pg_query(
        pg,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        " a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''"
        " FROM pg_attribute a WHERE a.attrelid = to_regclass($1)"
        " AND a.attnum > 0 AND NOT a.attisdropped",
        1, params);
    if (res == NULL)
        return -1;
#define MISMATCH(...) do { problems++; if (sw_buf_printf(report, __VA_ARGS__) != 0) goto oom; } while (0)
    if (PQntuples(res) == 0) {
        MISMATCH("sink %s: table %s does not exist (create it, or fix [sink.%s] table)\n",
                 s->name, s->table, s->name);
        PQclear(res);
        return problems;
    }
    int rows = PQntuples(res);
    for (int c = 0; c < s->ncolumns; c++) {
        const sw_column *col = &s->columns[c];
        int found = 0;
        for (int r = 0; r < rows; r++) {
            if (strcmp(PQgetvalue(res, r, 0), col->name) != 0)
                continue;
            found = 1;
            const char *db = PQgetvalue(res, r, 1);
            char want[64];
            if (!type_matches(col, db))
                MISMATCH("sink %s: column %s is %s in the table but %s in the config\n",
                         s->name, col->name, db, sw_sink_type_sql(col, want, sizeof want));
            if (PQgetvalue(res, r, 2)[0] == 't' && !col->not_null)
                MISMATCH("sink %s: column %s is NOT NULL in the table; declare it \"not null\" "
                         "in the config so bad records get a 422, not a failed job\n",
                         s->name, col->name);
        }
        if (!found)
            MISMATCH("sink %s: column %s is not in table %s\n", s->name, col->name, s->table);
    }
    if (s->version_column[0] != '\0') {
        int r = 0;
        while (r < rows && strcmp(PQgetvalue(res, r, 0), s->version_column) != 0)
            r++;
        if (r == rows)
            MISMATCH("sink %s: version_column %s is not in table %s (add it: ALTER TABLE %s "
                     "ADD COLUMN %s bigint)\n", s->name, s->version_column, s->table, s->table,
                     s->version_column);
        else if (strcmp(PQgetvalue(res, r, 1), "bigint") != 0)
            MISMATCH("sink %s: version_column %s is %s in the table; it must be bigint\n",
                     s->name, s->version_column, PQgetvalue(res, r, 1));
    }
    for (int r = 0; r < rows; r++) {
        const char *name = PQgetvalue(res, r, 0);
        if (strcmp(name, s->version_column) == 0)
            continue;
        if (sw_sink_column_index(s, name, strlen(name)) < 0 && PQgetvalue(res, r, 2)[0] == 't' &&
            PQgetvalue(res, r, 3)[0] != 't')
            MISMATCH("sink %s: table column %s is NOT NULL without a default but is not in "
                     "the config's columns\n", s->name, name);
    }
    PQclear(res);
    res = NULL;
    if (s->mode != SW_MODE_INSERT) {
        char want[1024];
        key_list(s, want, sizeof want);
        res = sw_pg_query(pg,
                          "SELECT string_agg(a.attname, ',' ORDER BY a.attname)"
                          " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                          " AND a.attnum = ANY(i.indkey)"
                          " WHERE i.indrelid = to_regclass($1) AND i.indisunique"
                          " AND i.indpred IS NULL GROUP BY i.indexrelid",
                          1, params);
        if (res == NULL)
            return -1;
        int match = 0;
        for (int r = 0; r < PQntuples(res); r++)
            match |= strcmp(PQgetvalue(res, r, 0), want) == 0;
        if (!match)
            MISMATCH("sink %s: mode %s needs a unique index or primary key on exactly (%s) "
                     "in %s\n", s->name, sw_sink_mode_name(s->mode), want, s->table);
        PQclear(res);
    }
    return problems;
oom:
    if (res)
        PQclear(res);
    snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
    return -1;
#undef MISMATCH
}
