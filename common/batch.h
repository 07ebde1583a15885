#ifndef SW_BATCH_H_
#define SW_BATCH_H_

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "pgconn.h"

/* A batch: the jobs one flusher holds, committed to PostgreSQL in one
 * transaction (or, when some job's data is bad, in as few transactions as
 * bisection needs to isolate it).
 *
 * Exactly-once: the transaction inserts each job id into spillway.ledger
 * (ON CONFLICT DO NOTHING) before its rows; a job whose id is already there
 * was committed before (a re-run after a crash, or another flusher) and its
 * rows are skipped. */

enum sw_job_state { SW_JOB_PENDING, SW_JOB_COMMITTED, SW_JOB_FAILED };

typedef struct sw_batch_job {
    const char *data;        /* envelope bytes; the caller keeps them alive */
    size_t len;
    sw_envelope env;
    int sink_idx;            /* index into cfg->sinks, -1 if unusable */
    uint32_t counted;        /* records as the Redis counters counted them */
    enum sw_job_state state;
    char *error;             /* why it failed (malloc'ed), or NULL */
    int fresh;               /* not yet in the ledger, this attempt */
} sw_batch_job;

typedef struct sw_batch {
    int err;
    char errstr[384];
    const sw_config *cfg;
    char flusher_id[64];
    sw_batch_job *jobs;
    int njobs, cap;
    long long nrecords;          /* sum of `counted` */
    int64_t oldest_enqueued_us;  /* 0 when empty */
    long long committed_records; /* rows written by the last commit */
    char **copy_sql, **insert_sql;   /* per sink */
    sw_buf copy, ids;
    sw_value *vals;
} sw_batch;

/* A new empty batch for the sinks of `cfg` (which must outlive it), or
 * NULL when out of memory. */
sw_batch *sw_batch_new(const sw_config *cfg, const char *flusher_id);
void sw_batch_free(sw_batch *b);   /* accepts NULL */

/* Forget all jobs (their bytes belong to the caller). */
void sw_batch_reset(sw_batch *b);

/* Add one envelope. A job that cannot be decoded, or whose sink is no
 * longer configured as it was, is added already FAILED with the reason,
 * so it is reported rather than dropped. 0, or -1 when out of memory. */
__attribute__((warn_unused_result))
int sw_batch_add(sw_batch *b, const char *data, size_t len);

/* Create this session's staging tables; call after each (re)connect.
 * 0, or -1 with pg->errstr. */
__attribute__((warn_unused_result)) int sw_batch_prepare(sw_batch *b, sw_pg *pg);

/* Commit every pending job. Returns 0 when each job is decided (COMMITTED
 * or FAILED with its error), or -1 on a transient failure (pg->errstr):
 * nothing is decided then and the caller retries the whole batch later;
 * parts already committed are recognised by the ledger. */
__attribute__((warn_unused_result)) int sw_batch_commit(sw_batch *b, sw_pg *pg);

/* Delete ledger rows older than `retention_s` seconds. A job can only be
 * re-run while it sits in some processing list, so the retention must
 * exceed how long a dead flusher's list may wait to be resumed. Returns
 * the number of rows deleted, or -1 (pg->errstr). */
__attribute__((warn_unused_result)) long sw_batch_prune(sw_pg *pg, int retention_s);

#endif
