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
 * sink's column order, tab-separated, NULL (and absent) as \N, with
 * backslash, tab, newline and carriage return escaped. Pure.
 * 0, or -1 when out of memory or a value does not suit its column. */
__attribute__((warn_unused_result))
int sw_copyrow_append(sw_buf *out, int64_t seq, int job, const sw_sink *sink,
                      const sw_value *vals);

/* The keyed path's row (keyed.h): `seq`, `job`, then the job's sequence
 * `ver`, whether it deletes (t/f) and the mask of the columns the record
 * names ('1' or '0' each: absent values '0' on a merge sink), then the
 * values as above, absent ones as NULL. Pure. 0, or -1. */
__attribute__((warn_unused_result))
int sw_copyrow_append_keyed(sw_buf *out, int64_t seq, int job, int64_t ver, int del,
                            const sw_sink *sink, const sw_value *vals);

#endif
