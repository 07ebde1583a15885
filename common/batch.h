#ifndef SW_BATCH_H_
#define SW_BATCH_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "shape.h"

/* A batch: the jobs one flusher holds, in queue order (oldest first), as
 * decoded from their envelopes and checked against the sinks as configured
 * now. Pure: commit.h writes it to PostgreSQL; the flusher keeps the
 * envelope bytes alive. */

enum sw_job_state { SW_JOB_PENDING, SW_JOB_COMMITTED, SW_JOB_FAILED };

/* Shapes a batch keeps mapped while no job refers to them. */
#define SW_BATCH_MAX_SHAPES 64

typedef struct sw_batch_map {
    sw_shape_map map;
    int sink_idx;
    int refs;                /* jobs in the batch that use it */
} sw_batch_map;

typedef struct sw_batch_job {
    const char *data;        /* envelope bytes; the caller keeps them alive */
    size_t len;
    sw_envelope env;
    int sink_idx;            /* index into cfg->sinks, -1 if unusable */
    uint32_t counted;        /* records as the Redis scripts count them */
    long deliveries;         /* times its batch was taken up again (resume) */
    int doomed;              /* past max_deliveries: fails, unless the ledger
                                shows it committed (decided in its transaction) */
    sw_batch_map *map;       /* NULL: written under the sink's current shape */
    char list_id[SW_ENVELOPE_ID_LEN + 1];  /* the id the Redis scripts read */
    size_t list_id_len;      /* 36, or 0 when the envelope has none */
    enum sw_job_state state;
    int prefailed;           /* failed before PostgreSQL: stays failed */
    char *error;             /* why it failed (malloc'ed), or NULL */
    int error_loggable;      /* how much of it logs may show without
                                [log] include_values (-1: all); the rest is
                                PostgreSQL's DETAIL, which may quote rows */
    int fresh;               /* not yet in the ledger, this attempt */
} sw_batch_job;

/* Where a batch looks up the column list of a shape it does not know:
 * 1 found (into `out`), 0 unknown, -1 cannot tell now (try later). */
typedef int (*sw_shape_lookup)(void *ctx, uint64_t fingerprint, sw_buf *out);


typedef struct sw_batch {
    const sw_config *cfg;
    sw_batch_job *jobs;
    int njobs, cap;
    long long nrecords;          /* sum of `counted` */
    size_t nbytes;               /* sum of envelope lengths */
    int64_t first_claim_ms;      /* monotonic ms when the first job came; 0 empty */
    sw_shape_lookup lookup;
    void *lookup_ctx;
    sw_batch_map **maps;         /* shapes met so far (a small cache) */
    int nmaps, capmaps;
    sw_value *vals;              /* scratch, SW_SINK_MAX_COLUMNS */
    sw_buf text;
} sw_batch;

/* A new empty batch for the sinks of `cfg` (which must outlive it); shapes
 * other than the sinks' own are looked up with `lookup`. NULL when out of
 * memory. */
sw_batch *sw_batch_new(const sw_config *cfg, sw_shape_lookup lookup, void *lookup_ctx);
void sw_batch_free(sw_batch *b);   /* accepts NULL */

/* Forget all jobs (their bytes belong to the caller). */
void sw_batch_reset(sw_batch *b);

/* Forget the oldest `n` jobs, which are finished; the rest move up. */
void sw_batch_drop_front(sw_batch *b, int n);

/* Add one envelope, taken when the flusher's monotonic clock read
 * `now_ms`, with its delivery count. A job that cannot be decoded, whose
 * sink is gone, or whose sink changed in a way its values cannot follow is
 * added already FAILED with the reason, so it is reported rather than
 * dropped. 0; -1 out of memory; -2 a shape could not be looked up now
 * (nothing was added). */
__attribute__((warn_unused_result))
int sw_batch_add(sw_batch *b, const char *data, size_t len, long deliveries, int64_t now_ms);

/* Fail job i before PostgreSQL sees it, for good. */
__attribute__((format(printf, 3, 4)))
void sw_batch_fail(sw_batch *b, int i, const char *fmt, ...);

/* Fail job i with `fmt` (an attempt's result: it may be retried). */
__attribute__((format(printf, 3, 4)))
void sw_batch_set_error(sw_batch *b, int i, const char *fmt, ...);

/* Fail job i with PostgreSQL's error: "SQLSTATE s: msg detail", the whole
 * of it for the job's status (the client's own data), the part before
 * `detail` for logs. `prefail`: for good, as sw_batch_fail. */
void sw_batch_pg_error(sw_batch *b, int i, int prefail, const char *sqlstate, const char *msg,
                       const char *detail);

/* Job i's values for record after record in the sink's current column
 * order: start *cursor at NULL. 1 a record (into `vals`), 0 no more,
 * -1 corrupt. */
__attribute__((warn_unused_result))
int sw_batch_next_record(sw_batch *b, int i, const unsigned char **cursor, sw_value *vals);

#endif
