#ifndef SW_SINK_H_
#define SW_SINK_H_

#include <stddef.h>
#include <stdint.h>

/* A sink: a named destination table and the columns a record may carry. */

enum sw_coltype {
    SW_COL_SMALLINT, SW_COL_INTEGER, SW_COL_BIGINT, SW_COL_REAL, SW_COL_DOUBLE,
    SW_COL_NUMERIC, SW_COL_BOOLEAN, SW_COL_TEXT, SW_COL_VARCHAR, SW_COL_UUID,
    SW_COL_DATE, SW_COL_TIMESTAMPTZ, SW_COL_TIMESTAMP, SW_COL_JSON, SW_COL_JSONB
};

/* insert: every record a new row; upsert: the row of a key replaced
 * (absent fields NULL); ignore: a key's first row kept; merge: the row
 * of a key updated with the fields a record names, the others kept. */
enum sw_sink_mode { SW_MODE_INSERT, SW_MODE_UPSERT, SW_MODE_IGNORE, SW_MODE_MERGE };

#define SW_NAME_MAX 63      /* PostgreSQL identifier limit */
#define SW_SINK_MAX_COLUMNS 128   /* = SW_ENVELOPE_MAX_COLUMNS */

typedef struct sw_column {
    char name[SW_NAME_MAX + 1];
    enum sw_coltype type;
    int maxlen;       /* varchar(n): n; else 0 */
    int not_null;
    int is_key;       /* part of the conflict key */
} sw_column;

typedef struct sw_sink {
    char name[SW_NAME_MAX + 1];       /* as used in URLs */
    char table[2 * SW_NAME_MAX + 2];  /* [schema.]table */
    enum sw_sink_mode mode;
    char key_spec[256];               /* as configured, until resolved */
    char version_column[SW_NAME_MAX + 1]; /* "" or the bigint column holding
                                             the sequence of a row's last
                                             write (envelope.h) */
    int deletes;                      /* DELETE .../records is taken: 1, 0,
                                         -1 not configured (until resolved:
                                         on for upsert and merge) */
    sw_column *columns;
    int ncolumns;
    uint64_t shape;                   /* fingerprint of the columns (shape.h) */
} sw_sink;

/* Parse a column list such as "id bigint not null, name varchar(20)" into
 * sink->columns (malloc'ed, owned by the sink). 0, or -1 with a reason in
 * errstr. */
__attribute__((warn_unused_result))
int sw_sink_parse_columns(sw_sink *sink, const char *spec, char *errstr, size_t errlen);

/* Mark the columns named in sink->key_spec as the conflict key; checks
 * that the mode and the key agree. 0, or -1 with a reason in errstr. */
__attribute__((warn_unused_result))
int sw_sink_resolve_key(sw_sink *sink, char *errstr, size_t errlen);

/* Index of column `name` (length n) or -1. */
int sw_sink_column_index(const sw_sink *sink, const char *name, size_t n);

/* The PostgreSQL spelling of a column's type, e.g. "varchar(20)". */
const char *sw_sink_type_sql(const sw_column *col, char *out, size_t outlen);

/* Parse "insert" | "upsert" | "ignore" | "merge". 0, or -1. */
__attribute__((warn_unused_result)) int sw_sink_parse_mode(const char *s, enum sw_sink_mode *mode);

const char *sw_sink_mode_name(enum sw_sink_mode mode);

/* Does the sink's write need a version 3 envelope (merge's absent
 * fields, or a sequence for version_column)? */
int sw_sink_v3(const sw_sink *sink);

/* Is the sink's batch applied by the keyed path (commit.c: fold per key,
 * then delete, update, insert) rather than by one INSERT? */
int sw_sink_keyed(const sw_sink *sink);

/* 1 when `s` is a plain lower-case SQL identifier we can quote safely. */
int sw_sink_ident_ok(const char *s, size_t n);

/* Free the sink's columns. Accepts NULL. */
void sw_sink_clear(sw_sink *sink);

#endif
