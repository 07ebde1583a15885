#ifndef SW_RECORD_H_
#define SW_RECORD_H_

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>

#include "buf.h"
#include "problem.h"
#include "sink.h"

/* Bounds on one record's values, from [server] max_string_bytes and
 * max_json_depth. A json/jsonb value counts as a string of its compact
 * serialisation; its depth is the number of arrays and objects nested in
 * each other ([[1]] is 2). */
typedef struct sw_record_limits {
    size_t max_string_bytes;
    int max_json_depth;
} sw_record_limits;

/* Check one JSON object against the sink's columns and append it to the
 * envelope as one record: an array of the sink's columns, in order, each
 * converted strictly (see README, "Column types") and held to `lim`. `index` is the record's
 * position in the request, for the error message; `scratch` is working
 * memory the caller reuses. 0, or -1 with a 422 (or 500 on out-of-memory)
 * in `p`; the packer may then hold a partial record, so the caller drops
 * the whole envelope. */
__attribute__((warn_unused_result))
int sw_record_pack(const sw_sink *sink, const json_t *obj, size_t index,
                   const sw_record_limits *lim, msgpack_packer *pk, sw_buf *scratch,
                   sw_problem *p);

/* Write `v` as the shortest decimal that reads back as the same double.
 * Returns the number of significant digits used. `out` needs 32 bytes. */
int sw_record_format_double(double v, char out[32]);

#endif
