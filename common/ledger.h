#ifndef SW_LEDGER_H_
#define SW_LEDGER_H_

#include "buf.h"
#include "pgconn.h"

/* spillway.ledger: one row per job whose rows PostgreSQL has, written in
 * the same transaction as the rows. It is the exactly-once fence: a job
 * whose id is already there was applied before (a re-run after a crash,
 * or a flusher presumed dead that committed after all) and is skipped. */

/* Inside the batch's transaction: insert the `n` ids (ON CONFLICT DO
 * NOTHING) and set fresh[i] = 1 for each id that was not there yet.
 * 0, or -1 (pg->errstr). */
__attribute__((warn_unused_result))
int sw_ledger_claim(sw_pg *pg, const char *flusher_id, int n, const char *const *ids, int *fresh,
                    sw_buf *scratch);

/* The cheap way, inside the batch's transaction: COPY the `n` ids in,
 * betting that none is there yet (true unless a batch is re-run), so that
 * PostgreSQL does one plain index insertion per job instead of a
 * speculative one. 0 (every id is fresh); -1 (pg->errstr): 23505 means
 * some id was there, and the transaction must be rolled back and the
 * batch claimed with sw_ledger_claim. */
__attribute__((warn_unused_result))
int sw_ledger_copy(sw_pg *pg, const char *flusher_id, int n, const char *const *ids,
                   sw_buf *scratch);

/* Inside the same transaction: take the ids of jobs that failed back out,
 * so a requeued job is applied when it comes again. 0, or -1. */
__attribute__((warn_unused_result))
int sw_ledger_forget(sw_pg *pg, int n, const char *const *ids, sw_buf *scratch);

/* Delete ledger rows and tombstones (keyed.h) older than `retention_s`,
 * `chunk` rows of each per transaction, at
 * most `max_chunks` of them, under an advisory lock so that one flusher
 * prunes at a time (the others find it taken and return 0). A job can only
 * be re-run while it sits in a processing list, so the retention must
 * exceed how long a dead flusher's list may wait to be resumed. Returns
 * the rows deleted (*more = 1 when rows were left for next time), or -1. */
__attribute__((warn_unused_result))
long sw_ledger_prune(sw_pg *pg, int retention_s, int chunk, int max_chunks, int *more);

/* Is the newest migration that batches need (spillway.apply_each_all) applied?
 * 1 yes, 0 no, -1 error. */
__attribute__((warn_unused_result)) int sw_ledger_schema_ready(sw_pg *pg);

#endif
