#ifndef SW_SHAPE_H_
#define SW_SHAPE_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "sink.h"

/* A sink's shape: its column names and types, in order. Envelopes carry
 * its fingerprint, and the server records each fingerprint's column list
 * in Redis (<p>:shapes), so a flusher whose sink was redefined while jobs
 * waited can tell, and map those jobs by column name instead of writing
 * values into the wrong columns. Pure. */

/* The shape as text, "name type,name type", in a form
 * sw_sink_parse_columns() reads back. Replaces `out`. 0, or -1 (memory). */
__attribute__((warn_unused_result)) int sw_shape_describe(const sw_sink *s, sw_buf *out);

/* The first 8 bytes of the SHA-256 of that text, big-endian. Never 0. */
uint64_t sw_shape_fingerprint(const sw_sink *s);

/* How the values of a job written under an older shape land in the sink
 * as configured now. */
typedef struct sw_shape_map {
    uint64_t fingerprint;          /* of the old shape */
    int usable;                    /* 0: such jobs are dead-lettered with `reason` */
    int ncolumns_old;
    int from[SW_SINK_MAX_COLUMNS]; /* per current column: the old position, or -1 (NULL) */
    int gone[SW_SINK_MAX_COLUMNS]; /* old columns the sink no longer has */
    char gone_name[SW_SINK_MAX_COLUMNS][SW_NAME_MAX + 1];
    int ngone;
    char reason[256];
} sw_shape_map;

/* Work out the map from the old shape `old_columns` (as described above)
 * to sink `now`: by name; each kept column's type must be the same or a
 * lossless widening (see sw_shape_type_safe). A column the sink dropped
 * makes the map usable only for jobs whose values there are all NULL
 * (sw_shape_map_check). Fills `m` in either case. */
void sw_shape_map_build(sw_shape_map *m, uint64_t fingerprint, const char *old_columns,
                        const sw_sink *now);

/* 1 when a value written for column type `from` reads back the same in a
 * column of type `to`: the same type; smallint < integer < bigint <
 * numeric; real < double precision; varchar(n) < varchar(m >= n) < text;
 * json and jsonb either way. */
int sw_shape_type_safe(const sw_column *from, const sw_column *to);

/* Check one job against a usable map: every dropped column is NULL in
 * every record. 0, or -1 with the reason in `why`. */
__attribute__((warn_unused_result))
int sw_shape_map_check(const sw_shape_map *m, const sw_sink *now, const sw_envelope *env,
                       sw_value *scratch, char *why, size_t whylen);

/* Rearrange one record's values `old` (in the old order) into `out` (in
 * the sink's order) by `m`. */
void sw_shape_map_apply(const sw_shape_map *m, const sw_sink *now, const sw_value *old,
                        sw_value *out);

#endif
