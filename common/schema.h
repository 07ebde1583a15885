#ifndef SW_SCHEMA_H_
#define SW_SCHEMA_H_

#include "buf.h"
#include "pgconn.h"
#include "sink.h"

/* Compare a sink's configured columns and key with its real table:
 * every column exists with a matching type; a column the table declares
 * NOT NULL is declared not null here too; table columns left out have a
 * default or accept NULL; upsert/ignore keys have a unique index on
 * exactly those columns. Each mismatch appends one line to `report`.
 * Returns the number of mismatches (0 = fine), or -1 when the check could
 * not run (pg->errstr). */
__attribute__((warn_unused_result))
int sw_schema_check(sw_pg *pg, const sw_sink *sink, sw_buf *report);

#endif
