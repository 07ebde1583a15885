#ifndef SW_KEYED_H_
#define SW_KEYED_H_

#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "pgconn.h"
#include "sink.h"

/* The keyed path of a sink's batch (commit.c takes it for merge sinks,
 * sinks with a version_column, and batches that hold deletes): rows are
 * staged with their job's sequence (sw_ver), whether they delete
 * (sw_del) and which columns they name (sw_mask: '1' or '0' per column),
 * then a few statements apply them, in one transaction:
 *
 *  upsert and merge sinks
 *   0. (commit.c, from sw_keyed_bucket_bit and sw_keyed_lock_sql) take an
 *      advisory lock per bucket of the batch's keys, in bucket order: two
 *      flushers with batches sharing keys wait for each other instead of
 *      deadlocking, even on keys no row holds yet. Isolation locks the
 *      whole batch's buckets once before its jobs run;
 *   1. fold: with a version_column, leave out what is not newer than the
 *      key's row or tombstone; then one row per key into sw_fold_<k>: the
 *      key's last operation in
 *      (sw_ver, batch position) order; for a write, each column's value
 *      from the last write after the key's last delete that names it
 *      (sw_p<i> says whether any did), sw_repl when a delete came before
 *      it in the batch, and sw_dver, that delete's sequence; then mark
 *      the keys that have a row (sw_exists);
 *   2. delete the rows of keys whose last operation deletes, unless the
 *      row's version_column is newer;
 *   3. with a version_column, keep a tombstone per key the batch deletes
 *      (spillway.tombstones: the last delete's sequence), so that a write
 *      older than the delete that lands later cannot bring the row back;
 *   4. update the rows that exist: named columns set, the others kept
 *      (merge), or after a delete in the batch given their defaults unless
 *      the row was written after that delete; then insert the keys that
 *      had no row: named columns, the others' defaults. With a
 *      version_column only where the write is newer than the row and than
 *      the key's tombstone. (An update names only the columns it sets,
 *      so a NOT NULL column a merge leaves out is no matter.)
 *  insert and ignore sinks (deletes = on)
 *   1. delete the rows of every key the batch deletes;
 *   2. insert the records that come after their key's last delete.
 *
 * The isolation path runs the same statements per job ($1 = the job's
 * number in the batch, spillway.apply_each_all). */

#define SW_KEYED_MAX_STMTS 8
#define SW_KEYED_LOCK_BUCKETS 64

typedef struct sw_keyed {
    char *create;           /* the staging tables (typed and text) and the fold */
    char *copy, *iso_copy;  /* COPY into typed / text staging */
    char *apply;            /* the fast path's statements, one round trip */
    char *iso_stmts[SW_KEYED_MAX_STMTS];   /* isolation's, per job ($1) */
    int iso_nstmts;
} sw_keyed;

/* Build sink `s`'s (index `k`) statements. A merge sink's defaults come
 * from the table's catalog, so this runs on a connection (after each
 * connect). 0, or -1 (pg->errstr). */
__attribute__((warn_unused_result))
int sw_keyed_build(sw_keyed *kd, const sw_sink *s, int k, sw_pg *pg);

/* Append staged column `col` as a statement reads it: as is from typed
 * staging; from `text` staging cast to its type (varchar to text: a cast
 * to varchar(n) would cut a long value short, where assignment refuses
 * it). 0, or -1 when out of memory. Shared with commit.c's one-INSERT
 * path. */
int sw_keyed_src_col(sw_buf *b, const sw_column *col, int text);

/* The lock bucket of a record's key (one bit of SW_KEYED_LOCK_BUCKETS),
 * from its values as the envelope holds them. Only spares flushers
 * deadlocks: a key sent two ways ("12.5", "12.50") may take two buckets.
 * Pure. */
uint64_t sw_keyed_bucket_bit(const sw_sink *s, const sw_value *vals);

/* The statement that takes sink `s`'s advisory locks of `buckets`, in
 * bucket order, into `b`. 0, or -1 when out of memory. */
__attribute__((warn_unused_result))
int sw_keyed_lock_sql(sw_buf *b, const sw_sink *s, uint64_t buckets);

/* Free the statements. Accepts NULL. */
void sw_keyed_clear(sw_keyed *kd);

/* Staging table names of sink k (for COPY error context). */
#define SW_KEYED_STAGE "sw_keyed_%d"
#define SW_KEYED_ISO "sw_iso_%d_keyed"

#endif
