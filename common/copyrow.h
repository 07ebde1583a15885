#ifndef SW_COPYROW_H_
#define SW_COPYROW_H_

#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "sink.h"

/* Append one row in PostgreSQL's COPY text format to `out`: `seq` first
 * (the record's position in the batch, which keeps queue order), then
 * `job` (its job's position in the batch) — both left out when `seq` is
 * negative (a row for the sink's own table) — then the values in the
 * sink's column order, tab-separated, NULL as \N, with
 * backslash, tab, newline and carriage return escaped. Pure.
 * 0, or -1 when out of memory or a value does not suit its column. */
__attribute__((warn_unused_result))
int sw_copyrow_append(sw_buf *out, int64_t seq, int job, const sw_sink *sink,
                      const sw_value *vals);

#endif
