#ifndef SW_COMMIT_H_
#define SW_COMMIT_H_

#include "batch.h"
#include "config.h"
#include "pgconn.h"

/* Writing a batch to PostgreSQL, and deciding every error.
 *
 * The fast path is one transaction: the ledger (ledger.h) marks which jobs
 * are new, COPY puts their rows in a per-sink staging table, and one
 * INSERT .. SELECT per sink writes them in the sink's mode. In insert mode,
 * a unique key that existing rows already hold is found for all jobs at
 * once by one query and those jobs fail alone, so a stream of duplicates
 * costs one statement per batch, not a transaction per bad job.
 *
 * Every error decides (pgconn.h): a transient one (connection, deadlock,
 * shutdown, resources, timeouts) retries the same batch; a data error
 * (22, 23, 44, P0), or any other error that meets the same batch twice,
 * isolates: one transaction in which each job's rows go in on their own
 * (spillway.apply_each_all, a subtransaction per job), so the guilty jobs
 * fail with their SQLSTATE and message and the innocent ones commit.
 * Isolation costs one transaction however many jobs are bad; no input can
 * hold a flusher. */

typedef struct sw_commit sw_commit;

/* For the sinks of `cfg` (which must outlive it). NULL when out of memory. */
sw_commit *sw_commit_new(const sw_config *cfg, const char *flusher_id);
void sw_commit_free(sw_commit *c);   /* accepts NULL */

/* After each (re)connect: the session's staging tables, and the target
 * tables' unique indexes. 0, or -1 (pg->errstr). */
__attribute__((warn_unused_result)) int sw_commit_prepare(sw_commit *c, sw_pg *pg);

/* Write the oldest `n` jobs of `b`. 0 when each is decided (COMMITTED, or
 * FAILED with its error); -1 to retry later (pg->errstr says why; nothing
 * was decided, and what did commit is recognised by the ledger). */
__attribute__((warn_unused_result)) int sw_commit_run(sw_commit *c, sw_batch *b, int n, sw_pg *pg);

/* Rows written by the last successful run (jobs the ledger already had
 * add nothing). */
long long sw_commit_rows(const sw_commit *c);

/* 1 when the last successful run had to isolate jobs. */
int sw_commit_isolated(const sw_commit *c);

/* A new batch: forget how often the last one failed. */
void sw_commit_new_batch(sw_commit *c);

#endif
