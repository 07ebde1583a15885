#ifndef SW_INGEST_H_
#define SW_INGEST_H_

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "problem.h"
#include "record.h"
#include "sink.h"

/* What one request may carry ([server] max_records_per_request,
 * max_string_bytes, max_json_depth). */
typedef struct sw_ingest_limits {
    long max_records;
    sw_record_limits record;
} sw_ingest_limits;

/* Turn a request body into one queue envelope of `op` (a delete's records
 * hold exactly the key; 422 deletes-not-allowed when the sink takes none;
 * a merge sink's records the fields they set): parse it by content type
 * (application/json: an object or an array of objects; application/
 * x-ndjson: one object per line), check every record against the sink and
 * write the envelope into `sb` (which the caller cleared). All or nothing:
 * on any error `sb` must be discarded. Pure: no I/O.
 *
 * Memory: the body is read token by token (json_reader.h), never built
 * into a document. A pre-scan bounds nesting and counts records before
 * anything is converted. Beyond the body itself, a request costs its
 * envelope (at most about twice the body, plus a byte per absent column)
 * and `work`, which holds one record's values and one string or json
 * value (max_string_bytes) at a time.
 *
 * The first problem met, reading from the start, is reported. Returns the
 * number of records (>= 1), or -1 with a 400/413/415/422 (500: out of
 * memory) in `p`. `work` is reused across requests. */
__attribute__((warn_unused_result))
long sw_ingest_build(const sw_sink *sink, enum sw_op op, const char *content_type,
                     const char *body, size_t len, const sw_ingest_limits *lim,
                     const char *job_id, int64_t now_us, msgpack_sbuffer *sb,
                     sw_record_work *work, sw_problem *p);

#endif
