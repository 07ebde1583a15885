#ifndef SW_RECORD_H_
#define SW_RECORD_H_

#include <msgpack.h>
#include <stddef.h>

#include "buf.h"
#include "json_reader.h"
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

/* Working memory for reading records, reused across requests: what one
 * record or one value needs at most, never a whole body's worth. Zero it
 * to start; sw_record_work_free() at the end. */
typedef struct sw_record_work {
    sw_buf strings;             /* the JSON reader's decoded strings */
    sw_buf json;                /* a json/jsonb value's serialisation */
    msgpack_sbuffer values;     /* one record's values, before column order */
    size_t *keys;               /* (offset, length) of keys in open objects */
    size_t nkeys, capkeys;      /* in size_t pairs */
} sw_record_work;

/* How a record names its columns: every column, absent ones NULL (a
 * write to insert, upsert or ignore sinks); the ones it means to set,
 * absent ones left as they are (merge: the key is required); or exactly
 * the key columns, non-null (a delete). */
enum sw_record_how { SW_RECORD_FULL, SW_RECORD_MERGE, SW_RECORD_KEY };

/* Read one record, whose first token `first` the caller took from `r`,
 * check it against the sink's columns as `how` says and append it to the
 * envelope as an array of the sink's columns, in order (the absent marker
 * for the columns MERGE and KEY leave out), each converted strictly (see
 * README, "Column types") and held to `lim`. The record is read token by
 * token: no document is built. `index` is the record's position in the
 * request, for messages. 0, or -1 with a 400 (malformed JSON), 422 or 500
 * in `p`; the packer may then hold a partial record, so the caller drops
 * the whole envelope. */
__attribute__((warn_unused_result))
int sw_record_read(const sw_sink *sink, enum sw_record_how how, sw_json_reader *r,
                   const sw_json_token *first, size_t index, const sw_record_limits *lim,
                   msgpack_packer *pk, sw_record_work *work, sw_problem *p);

/* A malformed-JSON problem (400) for the reader's error; `line` > 0
 * replaces the reader's own line number (NDJSON counts the body's). */
int sw_record_malformed(const sw_json_reader *r, long line, sw_problem *p);

/* Give back buffers that grew past `keep` bytes (after a large request),
 * so a burst does not stay resident. */
void sw_record_work_trim(sw_record_work *w, size_t keep);

/* Release the working memory. Accepts NULL. */
void sw_record_work_free(sw_record_work *w);

#endif
