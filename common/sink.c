#include "sink.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    enum sw_coltype type;
} type_names[] = {
    {"smallint", SW_COL_SMALLINT}, {"integer", SW_COL_INTEGER},
    {"bigint", SW_COL_BIGINT}, {"real", SW_COL_REAL},
    {"double precision", SW_COL_DOUBLE}, {"numeric", SW_COL_NUMERIC},
    {"boolean", SW_COL_BOOLEAN}, {"text", SW_COL_TEXT},
    {"varchar", SW_COL_VARCHAR}, {"uuid", SW_COL_UUID}, {"date", SW_COL_DATE},
    {"timestamptz", SW_COL_TIMESTAMPTZ}, {"timestamp", SW_COL_TIMESTAMP},
    {"json", SW_COL_JSON}, {"jsonb", SW_COL_JSONB},
};

int sw_sink_ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > SW_NAME_MAX || !(islower((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '_'))
            return 0;
    }
    return 1;
}

/* Collapse runs of blanks and trim, in place. */
static void squeeze(char *s)
{
    char *o = s;
    int space = 1;
    for (char *p = s; *p; p++) {
        if (isspace((unsigned char)*p)) {
            if (!space)
                *o++ = ' ';
            space = 1;
        } else {
            *o++ = (char)tolower((unsigned char)*p);
            space = 0;
        }
    }
    if (o > s && o[-1] == ' ')
        o--;
    *o = '\0';
}

static int parse_one(sw_column *col, char *def, char *errstr, size_t errlen)
{
    squeeze(def);
    char *sp = strchr(def, ' ');
    if (sp == NULL) {
        snprintf(errstr, errlen, "column \"%s\" has no type", def);
        return -1;
    }
    *sp = '\0';
    if (!sw_sink_ident_ok(def, strlen(def))) {
        snprintf(errstr, errlen,
                 "column name \"%s\" must be a lower-case identifier [a-z_][a-z0-9_]*", def);
        return -1;
    }
    if (strncmp(def, "sw_", 3) == 0) {
        snprintf(errstr, errlen, "column name \"%s\": names starting with sw_ are Spillway's "
                 "own in its staging tables; rename the column", def);
        return -1;
    }
    strcpy(col->name, def);
    char *type = sp + 1;
    size_t tl = strlen(type);
    if (tl >= 9 && strcmp(type + tl - 9, " not null") == 0) {
        col->not_null = 1;
        type[tl - 9] = '\0';
    }
    if (strncmp(type, "varchar(", 8) == 0) {
        char *end = NULL;
        long n = strtol(type + 8, &end, 10);
        if (end == type + 8 || strcmp(end, ")") != 0 || n < 1 || n > 10485760) {
            snprintf(errstr, errlen, "column \"%s\": bad length in \"%s\"", col->name, type);
            return -1;
        }
        col->type = SW_COL_VARCHAR;
        col->maxlen = (int)n;
        return 0;
    }
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (type_names[i].type != SW_COL_VARCHAR && strcmp(type, type_names[i].name) == 0) {
            col->type = type_names[i].type;
            return 0;
        }
    }
    snprintf(errstr, errlen,
             "column \"%s\": unknown type \"%s\" (use smallint, integer, bigint, real, "
             "double precision, numeric, boolean, text, varchar(n), uuid, date, "
             "timestamptz, timestamp, json or jsonb, optionally followed by \"not null\")",
             col->name, type);
    return -1;
}

int sw_sink_parse_columns(sw_sink *sink, const char *spec, char *errstr, size_t errlen)
{
    char *copy = strdup(spec);
    sw_column *cols = calloc(SW_SINK_MAX_COLUMNS, sizeof *cols);
    int n = 0, rc = -1;
    if (copy == NULL || cols == NULL) {
        snprintf(errstr, errlen, "out of memory");
        goto out;
    }
    char *save = NULL;
    for (char *def = strtok_r(copy, ",", &save); def; def = strtok_r(NULL, ",", &save)) {
        if (n == SW_SINK_MAX_COLUMNS) {
            snprintf(errstr, errlen, "more than %d columns", SW_SINK_MAX_COLUMNS);
            goto out;
        }
        if (parse_one(&cols[n], def, errstr, errlen) != 0)
            goto out;
        for (int j = 0; j < n; j++) {
            if (strcmp(cols[j].name, cols[n].name) == 0) {
                snprintf(errstr, errlen, "column \"%s\" is listed twice", cols[n].name);
                goto out;
            }
        }
        n++;
    }
    if (n == 0) {
        snprintf(errstr, errlen, "no columns listed");
        goto out;
    }
    free(sink->columns);
    sink->columns = cols;
    sink->ncolumns = n;
    cols = NULL;
    rc = 0;
out:
    free(copy);
    free(cols);
    return rc;
}

int sw_sink_resolve_key(sw_sink *sink, char *errstr, size_t errlen)
{
    char copy[sizeof sink->key_spec];
    snprintf(copy, sizeof copy, "%s", sink->key_spec);
    int nkeys = 0;
    char *save = NULL;
    for (int i = 0; i < sink->ncolumns; i++)
        sink->columns[i].is_key = 0;
    for (char *k = strtok_r(copy, ", \t", &save); k; k = strtok_r(NULL, ", \t", &save)) {
        int idx = sw_sink_column_index(sink, k, strlen(k));
        if (idx < 0) {
            snprintf(errstr, errlen, "key column \"%s\" is not in columns", k);
            return -1;
        }
        sink->columns[idx].is_key = 1;
        nkeys++;
    }
    if (sink->mode != SW_MODE_INSERT && nkeys == 0) {
        snprintf(errstr, errlen, "mode %s needs a key (the conflict columns)",
                 sw_sink_mode_name(sink->mode));
        return -1;
    }
    if (sink->version_column[0] != '\0') {
        if (sink->mode != SW_MODE_UPSERT && sink->mode != SW_MODE_MERGE) {
            snprintf(errstr, errlen, "version_column needs mode upsert or merge");
            return -1;
        }
        if (sw_sink_column_index(sink, sink->version_column, strlen(sink->version_column)) >= 0) {
            snprintf(errstr, errlen, "version_column \"%s\" must not be listed in columns "
                     "(Spillway writes it)", sink->version_column);
            return -1;
        }
    }
    if (sink->deletes > 0 && nkeys == 0) {
        snprintf(errstr, errlen, "deletes = on needs a key (the columns a delete names)");
        return -1;
    }
    if (sink->deletes < 0)   /* not configured: on where rows have keys */
        sink->deletes = sink->mode == SW_MODE_UPSERT || sink->mode == SW_MODE_MERGE;
    if (sink->mode == SW_MODE_UPSERT || sink->mode == SW_MODE_MERGE || sink->deletes) {
        for (int i = 0; i < sink->ncolumns; i++) {
            if (sink->columns[i].is_key && !sink->columns[i].not_null) {
                snprintf(errstr, errlen, "key column \"%s\" must be declared not null",
                         sink->columns[i].name);
                return -1;
            }
        }
    }
    return 0;
}

int sw_sink_column_index(const sw_sink *sink, const char *name, size_t n)
{
    for (int i = 0; i < sink->ncolumns; i++) {
        if (strncmp(sink->columns[i].name, name, n) == 0 && sink->columns[i].name[n] == '\0')
            return i;
    }
    return -1;
}

const char *sw_sink_type_sql(const sw_column *col, char *out, size_t outlen)
{
    if (col->type == SW_COL_VARCHAR) {
        snprintf(out, outlen, "varchar(%d)", col->maxlen);
        return out;
    }
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (type_names[i].type == col->type) {
            snprintf(out, outlen, "%s", type_names[i].name);
            return out;
        }
    }
    snprintf(out, outlen, "?");
    return out;
}

int sw_sink_parse_mode(const char *s, enum sw_sink_mode *mode)
{
    if (strcmp(s, "insert") == 0) *mode = SW_MODE_INSERT;
    else if (strcmp(s, "upsert") == 0) *mode = SW_MODE_UPSERT;
    else if (strcmp(s, "ignore") == 0) *mode = SW_MODE_IGNORE;
    else if (strcmp(s, "merge") == 0) *mode = SW_MODE_MERGE;
    else return -1;
    return 0;
}

const char *sw_sink_mode_name(enum sw_sink_mode mode)
{
    switch (mode) {
    case SW_MODE_INSERT: return "insert";
    case SW_MODE_UPSERT: return "upsert";
    case SW_MODE_IGNORE: return "ignore";
    case SW_MODE_MERGE: return "merge";
    }
    return "?";
}

int sw_sink_v3(const sw_sink *sink)
{
    return sink->mode == SW_MODE_MERGE || sink->version_column[0] != '\0';
}

int sw_sink_keyed(const sw_sink *sink)
{
    return sw_sink_v3(sink) || sink->deletes > 0;
}

void sw_sink_clear(sw_sink *sink)
{
    if (sink == NULL)
        return;
    free(sink->columns);
    sink->columns = NULL;
    sink->ncolumns = 0;
}
