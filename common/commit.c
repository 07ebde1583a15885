#include "commit.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copyrow.h"
#include "keyed.h"
#include "ledger.h"

enum { TXN_OK = 0, TXN_FAIL = -1, TXN_ALIKE = -2, TXN_AGAIN = -3 };

/* The ladder a batch climbs while it keeps failing at the statement level
 * (PostgreSQL up, the work refused): a data error isolates at once;
 * another error after OTHER_STRIKES attempts; a transient one (a timeout,
 * a deadlock, a trigger raising 40001...) after TRANSIENT_STRIKES. When
 * isolation fails every job alike (one non-data SQLSTATE), that is taken
 * for the database's state (a revoked grant, an ALTER in progress) and
 * retried, until ALIKE_STRIKES: then the jobs fail, so no input can hold a
 * flusher for ever. */
#define OTHER_STRIKES 2
#define TRANSIENT_STRIKES 5
#define ALIKE_STRIKES 8

/* How many later batches of a sink check for duplicate keys up front
 * after one met them (instead of trying the INSERT first). */
#define CONFLICT_MEMORY 16
#define MAX_UNIQUE 8

/* Per sink: its statements, and what this session knows of its table. */
typedef struct stage {
    char *create, *copy, *insert;              /* typed staging: the fast path */
    char *direct;              /* insert mode: COPY into the table itself */
    int direct_ok;             /* ...when it is a plain table (this session) */
    char *iso_create, *iso_copy, *iso_insert;  /* text staging: isolation */
    char *precheck;            /* NULL: no unique index we can check */
    char unique[MAX_UNIQUE][64];
    int nunique;
    int conflicts;             /* batches left to pre-check */
    sw_keyed kd;               /* keyed sinks: the keyed path (keyed.h) */
} stage;

struct sw_commit {
    const sw_config *cfg;
    char flusher_id[64];
    stage *st;
    int strikes;               /* the batch's statement-level failures so far */
    int isolating;             /* the batch goes straight to isolation */
    int seen_in_ledger;        /* a job of the batch was in the ledger */
    int no_direct;             /* the batch met an error in a direct COPY */
    long long rows;
    int isolated;
    sw_buf copy, scratch;
    sw_value *vals;
    int *pend, *fresh, cap;
    const char **ids;
};

static int grow(sw_commit *c, int n)
{
    if (n <= c->cap)
        return 0;
    int cap = n > 2 * c->cap ? n : 2 * c->cap;
    int *a = realloc(c->pend, (size_t)cap * sizeof *a);
    if (a)
        c->pend = a;
    int *f = a ? realloc(c->fresh, (size_t)cap * sizeof *f) : NULL;
    if (f)
        c->fresh = f;
    const char **i = f ? realloc(c->ids, (size_t)cap * sizeof *i) : NULL;
    if (i)
        c->ids = i;
    if (i == NULL)
        return -1;
    c->cap = cap;
    return 0;
}

/* INSERT INTO target SELECT FROM staging, per mode. Upsert keeps the last
 * write per key in queue order (DISTINCT ON ... sw_seq DESC), since one
 * INSERT may not touch a row twice; insert and ignore keep queue order.
 * `iso`: from text staging, one job at a time ($1). */
static char *build_insert(const char *from, const sw_sink *s, int iso)
{
    sw_buf b = SW_BUF_INIT, cols = SW_BUF_INIT, sel = SW_BUF_INIT, keys = SW_BUF_INIT,
           keysel = SW_BUF_INIT;
    char table[200];
    int rc = 0, nonkey = 0;
    sw_pg_quote_ident(s->table, table, sizeof table);
    for (int c = 0; c < s->ncolumns && rc == 0; c++) {
        const sw_column *col = &s->columns[c];
        rc |= sw_buf_printf(&cols, "%s\"%s\"", c ? ", " : "", col->name);
        rc |= sw_buf_puts(&sel, c ? ", " : "");
        rc |= sw_keyed_src_col(&sel, col, iso);
        if (col->is_key) {
            rc |= sw_buf_printf(&keys, "%s\"%s\"", keys.len ? ", " : "", col->name);
            rc |= sw_buf_puts(&keysel, keysel.len ? ", " : "");
            rc |= sw_keyed_src_col(&keysel, col, iso);
        }
        nonkey += !col->is_key;
    }
    const char *where = iso ? " WHERE sw_job = $1" : "";
    rc |= sw_buf_printf(&b, "INSERT INTO %s (%s) SELECT ", table, cols.data);
    if (s->mode == SW_MODE_UPSERT)
        rc |= sw_buf_printf(&b, "DISTINCT ON (%s) %s FROM %s%s ORDER BY %s, sw_seq DESC",
                            keysel.data, sel.data, from, where, keysel.data);
    else
        rc |= sw_buf_printf(&b, "%s FROM %s%s ORDER BY sw_seq", sel.data, from, where);
    if (s->mode == SW_MODE_IGNORE || (s->mode == SW_MODE_UPSERT && nonkey == 0))
        rc |= sw_buf_printf(&b, " ON CONFLICT (%s) DO NOTHING", keys.data);
    else if (s->mode == SW_MODE_UPSERT) {
        rc |= sw_buf_printf(&b, " ON CONFLICT (%s) DO UPDATE SET ", keys.data);
        int first = 1;
        for (int c = 0; c < s->ncolumns; c++) {
            if (s->columns[c].is_key)
                continue;
            rc |= sw_buf_printf(&b, "%s\"%s\" = EXCLUDED.\"%s\"", first ? "" : ", ",
                                s->columns[c].name, s->columns[c].name);
            first = 0;
        }
    }
    sw_buf_free(&cols);
    sw_buf_free(&sel);
    sw_buf_free(&keys);
    sw_buf_free(&keysel);
    if (rc != 0)
        sw_buf_free(&b);
    return b.data;
}

static char *build_create(const char *name, const sw_sink *s, int text)
{
    sw_buf b = SW_BUF_INIT;
    char type[64];
    int rc = sw_buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS %s (sw_seq bigint, sw_job integer",
                           name);
    for (int c = 0; c < s->ncolumns && rc == 0; c++)
        rc = sw_buf_printf(&b, ", \"%s\" %s", s->columns[c].name,
                           text ? "text" : sw_sink_type_sql(&s->columns[c], type, sizeof type));
    if (rc == 0)
        rc = sw_buf_puts(&b, ") ON COMMIT DELETE ROWS");
    if (rc == 0 && text)
        rc = sw_buf_printf(&b, "; CREATE INDEX IF NOT EXISTS %s_job ON %s (sw_job)", name, name);
    if (rc != 0)
        sw_buf_free(&b);
    return b.data;
}

/* COPY into a staging table `name`, or with NULL into the sink's table. */
static char *build_copy(const char *name, const sw_sink *s)
{
    sw_buf b = SW_BUF_INIT;
    char table[200];
    int rc;
    if (name) {
        rc = sw_buf_printf(&b, "COPY %s (sw_seq, sw_job", name);
    } else {
        sw_pg_quote_ident(s->table, table, sizeof table);
        rc = sw_buf_printf(&b, "COPY %s (", table);
    }
    for (int c = 0; c < s->ncolumns && rc == 0; c++)
        rc = sw_buf_printf(&b, "%s\"%s\"", name || c ? ", " : "", s->columns[c].name);
    if (rc == 0)
        rc = sw_buf_puts(&b, ") FROM STDIN");
    if (rc != 0)
        sw_buf_free(&b);
    return b.data;
}

sw_commit *sw_commit_new(const sw_config *cfg, const char *flusher_id)
{
    sw_commit *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    snprintf(c->flusher_id, sizeof c->flusher_id, "%s", flusher_id);
    c->st = calloc((size_t)cfg->nsinks + 1, sizeof *c->st);
    c->vals = calloc(SW_ENVELOPE_MAX_COLUMNS, sizeof *c->vals);
    if (c->st == NULL || c->vals == NULL)
        goto fail;
    for (int k = 0; k < cfg->nsinks; k++) {
        const sw_sink *s = &cfg->sinks[k];
        stage *st = &c->st[k];
        char typed[32], text[32];
        snprintf(typed, sizeof typed, "sw_stage_%d", k);
        snprintf(text, sizeof text, "sw_iso_%d", k);
        st->create = build_create(typed, s, 0);
        st->copy = build_copy(typed, s);
        st->direct = s->mode == SW_MODE_INSERT ? build_copy(NULL, s) : strdup("");
        st->insert = build_insert(typed, s, 0);
        st->iso_create = build_create(text, s, 1);
        st->iso_copy = build_copy(text, s);
        st->iso_insert = build_insert(text, s, 1);
        if (!st->create || !st->copy || !st->direct || !st->insert || !st->iso_create ||
            !st->iso_copy ||
            !st->iso_insert)
            goto fail;
    }
    return c;
fail:
    sw_commit_free(c);
    return NULL;
}

void sw_commit_free(sw_commit *c)
{
    if (c == NULL)
        return;
    for (int k = 0; c->st && k < c->cfg->nsinks; k++) {
        stage *st = &c->st[k];
        free(st->create);
        free(st->copy);
        free(st->direct);
        free(st->insert);
        free(st->iso_create);
        free(st->iso_copy);
        free(st->iso_insert);
        free(st->precheck);
        sw_keyed_clear(&st->kd);
    }
    free(c->st);
    free(c->vals);
    free(c->pend);
    free(c->fresh);
    free(c->ids);
    sw_buf_free(&c->copy);
    sw_buf_free(&c->scratch);
    free(c);
}

long long sw_commit_rows(const sw_commit *c)
{
    return c->rows;
}

int sw_commit_isolated(const sw_commit *c)
{
    return c->isolated;
}

void sw_commit_new_batch(sw_commit *c)
{
    c->strikes = 0;
    c->isolating = 0;
    c->seen_in_ledger = 0;
    c->no_direct = 0;
}

/* The insert-mode pre-check: which staged jobs hold a key that a row of
 * the table already has, per unique index whose columns the sink lists.
 * Rows staged together that collide with each other are left to the
 * INSERT (and isolation), which decides them in queue order. */
static int find_unique(stage *st, const sw_sink *s, int k, sw_pg *pg)
{
    char table[200];
    sw_pg_quote_ident(s->table, table, sizeof table);
    const char *params[] = {table};
    free(st->precheck);
    st->precheck = NULL;
    st->nunique = 0;
    if (s->mode != SW_MODE_INSERT)
        return 0;
    PGresult *res = sw_pg_query(
        pg,
        "SELECT c.relname, i.indnullsnotdistinct, "
        "       array_to_string(array_agg(a.attname ORDER BY k.ord), ',') "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indimmediate "
        "  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts "
        "GROUP BY c.relname, i.indnullsnotdistinct ORDER BY c.relname",
        1, params);
    if (res == NULL)
        return -1;
    sw_buf q = SW_BUF_INIT;
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && st->nunique < MAX_UNIQUE && rc == 0; r++) {
        const char *cols = PQgetvalue(res, r, 2);
        int nnd = strcmp(PQgetvalue(res, r, 1), "t") == 0;
        /* Every key column must be one the sink writes. */
        char copy[1024], *save = NULL;
        snprintf(copy, sizeof copy, "%s", cols);
        int ok = 1;
        for (char *col = strtok_r(copy, ",", &save); col; col = strtok_r(NULL, ",", &save))
            ok &= sw_sink_column_index(s, col, strlen(col)) >= 0;
        if (!ok || strlen(PQgetvalue(res, r, 0)) >= sizeof st->unique[0])
            continue;
        int u = st->nunique++;
        snprintf(st->unique[u], sizeof st->unique[u], "%s", PQgetvalue(res, r, 0));
        rc |= sw_buf_printf(&q, "%sSELECT DISTINCT s.sw_job, %d FROM sw_stage_%d s WHERE EXISTS "
                                "(SELECT 1 FROM %s t WHERE ", q.len ? " UNION ALL " : "", u, k,
                            table);
        snprintf(copy, sizeof copy, "%s", cols);
        save = NULL;
        int first = 1;
        for (char *col = strtok_r(copy, ",", &save); col; col = strtok_r(NULL, ",", &save)) {
            rc |= sw_buf_printf(&q, "%st.\"%s\" %s s.\"%s\"", first ? "" : " AND ", col,
                                nnd ? "IS NOT DISTINCT FROM" : "=", col);
            first = 0;
        }
        rc |= sw_buf_puts(&q, ")");
    }
    PQclear(res);
    if (rc != 0) {
        sw_buf_free(&q);
        snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
        pg->sqlstate[0] = '\0';
        return -1;
    }
    st->precheck = q.data;
    return 0;
}

/* May rows go into the sink's table by COPY as they would by INSERT?
 * Only into a plain table: COPY cannot write a view, is refused under
 * row-level security and ignores rules. 1 yes, 0 no, -1 error. */
static int direct_ok(const sw_sink *s, sw_pg *pg)
{
    char table[200];
    sw_pg_quote_ident(s->table, table, sizeof table);
    const char *params[] = {table};
    if (s->mode != SW_MODE_INSERT)
        return 0;
    PGresult *res = sw_pg_query(pg, "SELECT c.relkind IN ('r', 'p') AND NOT c.relrowsecurity "
                                    "AND NOT c.relhasrules FROM pg_class c "
                                    "WHERE c.oid = to_regclass($1)", 1, params);
    if (res == NULL)
        return -1;
    int ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return ok;
}

int sw_commit_prepare(sw_commit *c, sw_pg *pg)
{
    for (int k = 0; k < c->cfg->nsinks; k++) {
        stage *st = &c->st[k];
        const sw_sink *s = &c->cfg->sinks[k];
        if (sw_pg_exec(pg, st->create) != 0 || sw_pg_exec(pg, st->iso_create) != 0 ||
            find_unique(st, s, k, pg) != 0 || (st->direct_ok = direct_ok(s, pg)) < 0)
            return -1;
        if (sw_sink_keyed(s) &&
            (sw_keyed_build(&st->kd, s, k, pg) != 0 || sw_pg_exec(pg, st->kd.create) != 0))
            return -1;
    }
    return 0;
}

/* Does sink k's part of the batch take the keyed path: a merge sink or
 * one with a version_column, or a delete among its jobs? */
static int keyed(sw_commit *c, sw_batch *b, int k, int n)
{
    const sw_sink *s = &c->cfg->sinks[k];
    if (!sw_sink_keyed(s))
        return 0;
    if (sw_sink_v3(s))
        return 1;
    for (int p = 0; p < n; p++) {
        const sw_batch_job *j = &b->jobs[c->pend[p]];
        if (c->fresh[p] && j->sink_idx == k && j->state != SW_JOB_FAILED &&
            j->env.op == SW_OP_DELETE)
            return 1;
    }
    return 0;
}

/* ROLLBACK, keeping the failure's error: ROLLBACK would overwrite it. */
static void rollback(sw_pg *pg)
{
    char state[6], msg[sizeof pg->errstr], ctx[sizeof pg->context], detail[sizeof pg->detail];
    memcpy(state, pg->sqlstate, sizeof state);
    memcpy(msg, pg->errstr, sizeof msg);
    memcpy(ctx, pg->context, sizeof ctx);
    memcpy(detail, pg->detail, sizeof detail);
    if (sw_pg_exec(pg, "ROLLBACK") != 0)
        sw_pg_disconnect(pg);
    memcpy(pg->sqlstate, state, sizeof state);
    memcpy(pg->errstr, msg, sizeof msg);
    memcpy(pg->context, ctx, sizeof ctx);
    memcpy(pg->detail, detail, sizeof detail);
}

static void oom(sw_pg *pg, const char *what)
{
    snprintf(pg->errstr, sizeof pg->errstr, "out of memory %s", what);
    pg->sqlstate[0] = '\0';
    pg->detail[0] = '\0';
}

/* The keyed path of an upsert or merge sink locks its batch's key
 * buckets before it touches a row (keyed.h): its flushers then wait for
 * each other rather than deadlock. (A batch without deletes on an upsert
 * sink takes the one-INSERT path without them, as before deletes: its
 * rare deadlock with a keyed batch is retried.) Then `then` (or nothing),
 * all in one round trip. 0, or -1 (pg->errstr). */
static int lock_and_run(sw_commit *c, int k, uint64_t buckets, const char *then, sw_pg *pg)
{
    const sw_sink *s = &c->cfg->sinks[k];
    int lock = (s->mode == SW_MODE_UPSERT || s->mode == SW_MODE_MERGE) && buckets != 0;
    if (!lock && then == NULL)
        return 0;
    sw_buf_reset(&c->scratch);
    int rc = lock ? sw_keyed_lock_sql(&c->scratch, s, buckets) : 0;
    if (then)
        rc |= sw_buf_printf(&c->scratch, "%s%s", lock ? "; " : "", then);
    if (rc != 0) {
        oom(pg, "for the keyed statements");
        return -1;
    }
    return sw_pg_exec(pg, c->scratch.data);
}

/* COPY rows of sink k's fresh jobs among pend[0..n) into c->copy, for
 * staging, with `direct` for the sink's own table, with `kd` for the keyed
 * path's staging and then their keys' lock buckets (keyed.h) into
 * *buckets; returns the number of rows, or -1. */
static long stage_rows(sw_commit *c, sw_batch *b, int k, int n, sw_pg *pg, int direct, int kd,
                       uint64_t *buckets)
{
    const sw_sink *s = &c->cfg->sinks[k];
    long seq = 0;
    sw_buf_reset(&c->copy);
    *buckets = 0;
    for (int p = 0; p < n; p++) {
        int i = c->pend[p];
        if (!c->fresh[p] || b->jobs[i].sink_idx != k || b->jobs[i].state == SW_JOB_FAILED)
            continue;
        const unsigned char *cur = NULL;
        int got;
        const sw_envelope *env = &b->jobs[i].env;
        /* The job's sequence orders it on a sink with a version_column; a
         * job queued before it had one (no sequence) goes by its time. */
        int64_t ver = !s->version_column[0] ? 0
                      : env->seq ? (int64_t)env->seq : env->enqueued_us;
        while ((got = sw_batch_next_record(b, i, &cur, c->vals)) == 1) {
            if (kd)
                *buckets |= sw_keyed_bucket_bit(s, c->vals);
            int rc = kd ? sw_copyrow_append_keyed(&c->copy, seq, i, ver,
                                                  env->op == SW_OP_DELETE, s, c->vals)
                        : sw_copyrow_append(&c->copy, direct ? -1 : seq, i, s, c->vals);
            if (rc != 0) {
                oom(pg, "building COPY rows");
                return -1;
            }
            seq++;
        }
        if (got < 0) {
            snprintf(pg->errstr, sizeof pg->errstr, "a decoded envelope would not decode again");
            pg->sqlstate[0] = '\0';
            return -1;
        }
    }
    return seq;
}

/* Run the pre-check of sink k: fail each job that holds a key the table
 * has, and take its rows out of staging. Returns how many failed, or -1.
 * A pre-check PostgreSQL refuses (a collation it cannot compare, say) is
 * given up for this session: the INSERT and isolation decide instead. */
static int precheck(sw_commit *c, sw_batch *b, int k, sw_pg *pg)
{
    stage *st = &c->st[k];
    PGresult *res = sw_pg_query(pg, st->precheck, 0, NULL);
    int found = 0;
    if (res == NULL) {
        if (sw_pg_connected(pg) && sw_pg_error_class(pg) != SW_PG_TRANSIENT) {
            free(st->precheck);
            st->precheck = NULL;
        }
        return -1;
    }
    sw_buf_reset(&c->scratch);
    int rc = sw_buf_puts(&c->scratch, "{");
    for (int r = 0; r < PQntuples(res); r++) {
        int i = atoi(PQgetvalue(res, r, 0)), u = atoi(PQgetvalue(res, r, 1));
        if (i < 0 || i >= b->njobs || u < 0 || u >= st->nunique ||
            b->jobs[i].state == SW_JOB_FAILED)
            continue;
        sw_batch_set_error(b, i, "SQLSTATE 23505: duplicate key value violates unique "
                                 "constraint \"%s\"", st->unique[u]);
        rc |= sw_buf_printf(&c->scratch, "%s%d", found ? "," : "", i);
        found++;
    }
    PQclear(res);
    rc |= sw_buf_puts(&c->scratch, "}");
    if (rc != 0) {
        oom(pg, "in the pre-check");
        return -1;
    }
    if (found == 0)
        return 0;
    char sql[96];
    snprintf(sql, sizeof sql, "DELETE FROM sw_stage_%d WHERE sw_job = ANY($1::int[])", k);
    const char *params[] = {c->scratch.data};
    res = sw_pg_query(pg, sql, 1, params);
    if (res == NULL)
        return -1;
    PQclear(res);
    return found;
}

/* The ids of pend[0..n) that failed in this attempt, into c->ids. */
static int failed_ids(sw_commit *c, sw_batch *b, int n)
{
    int m = 0;
    for (int p = 0; p < n; p++) {
        const sw_batch_job *j = &b->jobs[c->pend[p]];
        if (c->fresh[p] && j->state == SW_JOB_FAILED)
            c->ids[m++] = j->env.job_id;
    }
    return m;
}

/* BEGIN, and claim the jobs in the ledger: by COPY while no job of the
 * batch has been found there (c->seen_in_ledger), else one by one with
 * ON CONFLICT. TXN_AGAIN: the COPY met an id already there; the caller
 * rolls back and tries again, which then claims the careful way. */
static int begin_and_claim(sw_commit *c, sw_batch *b, int n, sw_pg *pg, int immediate)
{
    if (sw_pg_exec(pg, immediate ? "BEGIN; SET CONSTRAINTS ALL IMMEDIATE" : "BEGIN") != 0)
        return TXN_FAIL;
    for (int p = 0; p < n; p++)
        c->ids[p] = b->jobs[c->pend[p]].env.job_id;
    if (!c->seen_in_ledger) {
        if (sw_ledger_copy(pg, c->flusher_id, n, c->ids, &c->scratch) != 0) {
            if (strcmp(pg->sqlstate, "23505") != 0)
                return TXN_FAIL;
            c->seen_in_ledger = 1;
            return TXN_AGAIN;
        }
        for (int p = 0; p < n; p++)
            c->fresh[p] = 1;
    } else if (sw_ledger_claim(pg, c->flusher_id, n, c->ids, c->fresh, &c->scratch) != 0) {
        return TXN_FAIL;
    }
    for (int p = 0; p < n; p++) {
        sw_batch_job *j = &b->jobs[c->pend[p]];
        j->fresh = c->fresh[p];
        /* Past max_deliveries, and not applied yet (the ledger claim has
         * waited for any other transaction holding it): it fails now, and
         * its ledger row is taken back out with the other failures. */
        if (j->doomed && j->fresh)
            sw_batch_set_error(b, c->pend[p], "handed to a flusher %ld times without finishing "
                               "(max_deliveries); its flushers stopped while it was in hand, "
                               "the last times while it was committed alone", j->deliveries);
    }
    return TXN_OK;
}

static int finish_txn(sw_commit *c, sw_batch *b, int n, sw_pg *pg)
{
    int m = failed_ids(c, b, n);
    if (sw_ledger_forget(pg, m, c->ids, &c->scratch) != 0 || sw_pg_exec(pg, "COMMIT") != 0)
        return TXN_FAIL;
    return TXN_OK;
}

/* Rows the attempt wrote: records of fresh jobs that did not fail (each
 * job's own `fresh`, which every path's ledger claim sets). */
static long long count_rows(sw_commit *c, sw_batch *b, int n)
{
    long long rows = 0;
    for (int p = 0; p < n; p++) {
        const sw_batch_job *j = &b->jobs[c->pend[p]];
        if (j->fresh && j->state != SW_JOB_FAILED)
            rows += j->env.nrecords;
    }
    return rows;
}

/* One attempt of the fast path. TXN_AGAIN (rolled back): try once more,
 * the careful way this time, because a job was in the ledger already, or
 * because a row COPYed into an insert-mode table met a key it holds. */
static int fast_once(sw_commit *c, sw_batch *b, int n, sw_pg *pg)
{
    int claimed = begin_and_claim(c, b, n, pg, 0);
    if (claimed != TXN_OK)
        goto fail;
    for (int k = 0; k < c->cfg->nsinks; k++) {
        stage *st = &c->st[k];
        int kd = keyed(c, b, k, n);
        /* Insert mode with no recent duplicate key: straight into the
         * table, in queue order, as fast as PostgreSQL's own COPY. */
        int direct = !kd && st->direct_ok && !c->no_direct && st->conflicts == 0;
        uint64_t buckets;
        long rows = stage_rows(c, b, k, n, pg, direct, kd, &buckets);
        if (rows < 0)
            goto fail;
        if (rows == 0)
            continue;
        if (kd) {
            if (sw_pg_copy(pg, st->kd.copy, c->copy.data, c->copy.len) != 0 ||
                lock_and_run(c, k, buckets, st->kd.apply, pg) != 0)
                goto fail;
            continue;
        }
        if (direct) {
            if (sw_pg_copy(pg, st->direct, c->copy.data, c->copy.len) == 0)
                continue;
            /* A key the table holds: again, with the pre-check. Any other
             * error: the batch's next attempts stage their rows, so
             * isolation, if it comes to that, sees the same statements. */
            if (strcmp(pg->sqlstate, "23505") == 0 && st->precheck != NULL) {
                st->conflicts = CONFLICT_MEMORY;
                claimed = TXN_AGAIN;
            } else if (sw_pg_statement_error(pg)) {
                c->no_direct = 1;
                /* Not a plain table any more (a rule, row security, a
                 * view): not for the rest of this session either. */
                if (strcmp(pg->sqlstate, "42809") == 0 || strcmp(pg->sqlstate, "0A000") == 0)
                    st->direct_ok = 0;
            }
            goto fail;
        }
        if (sw_pg_copy(pg, st->copy, c->copy.data, c->copy.len) != 0)
            goto fail;
        if (st->precheck && st->conflicts > 0) {
            /* A table that met duplicate keys lately: find every job
             * holding one at once, and insert the rest. */
            int found = precheck(c, b, k, pg);
            if (found < 0)
                goto fail;
            st->conflicts = found ? CONFLICT_MEMORY : st->conflicts - 1;
        }
        if (sw_pg_exec(pg, st->insert) != 0)
            goto fail;
    }
    if (finish_txn(c, b, n, pg) != TXN_OK)
        goto fail;
    return TXN_OK;
fail:
    rollback(pg);
    return claimed == TXN_AGAIN ? TXN_AGAIN : TXN_FAIL;
}

static int fast(sw_commit *c, sw_batch *b, int n, sw_pg *pg)
{
    int rc = TXN_AGAIN;
    /* Each TXN_AGAIN settles one cause: the ledger, or one sink's keys. */
    for (int attempt = 0; attempt < 2 + c->cfg->nsinks && rc == TXN_AGAIN; attempt++)
        rc = fast_once(c, b, n, pg);
    return rc == TXN_OK ? TXN_OK : TXN_FAIL;
}

/* A failed row of spillway.apply_each_all: fail the job, unless the error is
 * transient (a deadlock, say): then the whole attempt is retried, and once
 * the batch has kept failing transiently its jobs go one per transaction
 * (solo_pass), where a job is held to its error only if it meets it alone
 * while others commit. */
static int record_iso_failures(sw_batch *b, PGresult *res, sw_pg *pg)
{
    for (int r = 0; r < PQntuples(res); r++) {
        const char *state = PQgetvalue(res, r, 1), *msg = PQgetvalue(res, r, 2);
        if (sw_pg_classify(state) == SW_PG_TRANSIENT) {
            snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state);
            snprintf(pg->errstr, sizeof pg->errstr, "%s", msg);
            pg->context[0] = '\0';
            pg->detail[0] = '\0';
            return TXN_FAIL;
        }
    }
    for (int r = 0; r < PQntuples(res); r++) {
        int i = atoi(PQgetvalue(res, r, 0));
        if (i >= 0 && i < b->njobs)
            sw_batch_set_error(b, i, "SQLSTATE %s: %s", PQgetvalue(res, r, 1),
                               PQgetvalue(res, r, 2));
    }
    return TXN_OK;
}

/* A COPY into text staging failed on a line: the job that line belongs to. */
static int copy_culprit(sw_commit *c, sw_batch *b, int k, int n, const sw_pg *pg)
{
    const char *line = strstr(pg->context, ", line ");
    int ln;
    if (strncmp(pg->context, "COPY sw_iso_", 12) != 0 || line == NULL ||
        sscanf(line, ", line %d", &ln) != 1 || ln < 1)
        return -1;
    long seq = 0;
    for (int p = 0; p < n; p++) {
        int i = c->pend[p];
        if (!c->fresh[p] || b->jobs[i].sink_idx != k || b->jobs[i].state == SW_JOB_FAILED)
            continue;
        seq += b->jobs[i].env.nrecords;
        if (seq >= ln)
            return i;
    }
    return -1;
}

/* Did every fresh job of some sink fail, all with one SQLSTATE that is not
 * a data error? Then the likely cause is that sink's table (a revoked
 * grant, an ALTER in progress), not the jobs. */
static int failed_alike(sw_commit *c, sw_batch *b, int n, char state[6])
{
    for (int k = 0; k < c->cfg->nsinks; k++) {
        int fresh = 0, alike = 1;
        state[0] = '\0';
        for (int p = 0; p < n && alike; p++) {
            const sw_batch_job *j = &b->jobs[c->pend[p]];
            if (!c->fresh[p] || j->prefailed || j->sink_idx != k)
                continue;
            fresh++;
            const char *e = j->error;
            if (j->state != SW_JOB_FAILED || e == NULL || strncmp(e, "SQLSTATE ", 9) != 0)
                alike = 0;
            else if (state[0] == '\0')
                snprintf(state, 6, "%.5s", e + 9);
            else if (strncmp(state, e + 9, 5) != 0)
                alike = 0;
        }
        if (alike && fresh > 0 && sw_pg_classify(state) != SW_PG_DATA)
            return 1;
    }
    return 0;
}

/* Run sink st's statement (or the keyed path's statements) once per job
 * of c->scratch (an int[] literal), each job in a subtransaction. */
static PGresult *apply_each(sw_commit *c, stage *st, int kd, sw_pg *pg)
{
    const char *params[SW_KEYED_MAX_STMTS + 1];
    char sql[256];
    int n = kd ? st->kd.iso_nstmts : 1;
    int at = snprintf(sql, sizeof sql, "SELECT failed_job, failed_state, failed_message "
                                       "FROM spillway.apply_each_all(ARRAY[");
    for (int q = 0; q < n; q++) {
        params[q] = kd ? st->kd.iso_stmts[q] : st->iso_insert;
        at += snprintf(sql + at, sizeof sql - (size_t)at, "%s$%d", q ? ", " : "", q + 1);
    }
    params[n] = c->scratch.data;
    snprintf(sql + at, sizeof sql - (size_t)at, "]::text[], $%d::int[])", n + 1);
    return sw_pg_query(pg, sql, n + 1, params);
}

static int isolate(sw_commit *c, sw_batch *b, int n, sw_pg *pg, int accept_alike)
{
    /* Each pass either commits or finds one more job whose rows cannot
     * even be staged as text; at most n + 1 passes. */
    for (int pass = 0; pass <= n; pass++) {
        for (int p = 0; p < n; p++) {
            sw_batch_job *j = &b->jobs[c->pend[p]];
            if (!j->prefailed) {
                j->state = SW_JOB_PENDING;
                free(j->error);
                j->error = NULL;
            }
        }
        int claimed = begin_and_claim(c, b, n, pg, 1);
        if (claimed == TXN_AGAIN) {
            rollback(pg);
            claimed = begin_and_claim(c, b, n, pg, 1);
        }
        if (claimed != TXN_OK)
            goto fail;
        int restaged = 0;
        for (int k = 0; k < c->cfg->nsinks && !restaged; k++) {
            stage *st = &c->st[k];
            int kd = keyed(c, b, k, n);
            uint64_t buckets;
            long rows = stage_rows(c, b, k, n, pg, 0, kd, &buckets);
            if (rows < 0)
                goto fail;
            if (rows == 0)
                continue;
            if (sw_pg_copy(pg, kd ? st->kd.iso_copy : st->iso_copy, c->copy.data,
                           c->copy.len) != 0) {
                int culprit = sw_pg_classify(pg->sqlstate) == SW_PG_DATA
                                  ? copy_culprit(c, b, k, n, pg) : -1;
                if (culprit < 0)
                    goto fail;
                rollback(pg);
                sw_batch_pg_error(b, culprit, 1, pg->sqlstate, pg->errstr, pg->detail);
                restaged = 1;
                break;
            }
            /* The whole batch's buckets once, in order, before any job. */
            if (kd && lock_and_run(c, k, buckets, NULL, pg) != 0)
                goto fail;
            sw_buf_reset(&c->scratch);
            int rc = sw_buf_puts(&c->scratch, "{"), m = 0;
            for (int p = 0; p < n; p++) {
                int i = c->pend[p];
                if (c->fresh[p] && b->jobs[i].sink_idx == k && b->jobs[i].state != SW_JOB_FAILED)
                    rc |= sw_buf_printf(&c->scratch, "%s%d", m++ ? "," : "", i);
            }
            rc |= sw_buf_puts(&c->scratch, "}");
            if (rc != 0) {
                oom(pg, "isolating jobs");
                goto fail;
            }
            PGresult *res = apply_each(c, st, kd, pg);
            if (res == NULL)
                goto fail;
            rc = record_iso_failures(b, res, pg);
            PQclear(res);
            if (rc != TXN_OK)
                goto fail;
        }
        if (restaged)
            continue;
        char state[6];
        if (!accept_alike && failed_alike(c, b, n, state)) {
            /* The error of the first job, without any PostgreSQL DETAIL:
             * pg->errstr reaches the logs, which keep row values out. */
            const sw_batch_job *first = NULL;
            for (int p = 0; p < n && first == NULL; p++)
                if (b->jobs[c->pend[p]].error)
                    first = &b->jobs[c->pend[p]];
            int shown = first && first->error_loggable >= 0 ? first->error_loggable
                        : first ? (int)strlen(first->error) : 0;
            snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state);
            snprintf(pg->errstr, sizeof pg->errstr, "every job failed alike (%.*s)",
                     first ? shown : (int)strlen(state), first ? first->error : state);
            pg->context[0] = '\0';
            pg->detail[0] = '\0';
            rollback(pg);
            return TXN_ALIKE;
        }
        if (finish_txn(c, b, n, pg) != TXN_OK)
            goto fail;
        return TXN_OK;
    }
fail:
    rollback(pg);
    return TXN_FAIL;
}

/* Each job in a transaction of its own, when even isolation keeps
 * failing (a statement_timeout that one job's rows bring on, a COPY that
 * cannot stage some job as text). A job that fails alone is held to its
 * error if another job of the pass committed (it is then the job, not the
 * database), if every failure was a data error, or once the batch has
 * climbed to SOLO_ALONE_STRIKES; a transient error is given three tries
 * first. Otherwise no job committing means the database is at fault (a
 * long lock, say): nothing is decided and the batch is retried. */
#define SOLO_TRIES 3
#define SOLO_ALONE_STRIKES 30

static void reset_pending(sw_batch *b, int i)
{
    sw_batch_job *j = &b->jobs[i];
    if (j->prefailed)
        return;
    j->state = SW_JOB_PENDING;
    free(j->error);
    j->error = NULL;
}

static int solo_pass(sw_commit *c, sw_batch *b, int n, sw_pg *pg)
{
    int *all = malloc((size_t)n * sizeof *all);
    int committed = 0, nondata = 0, rc = TXN_OK;
    char state[6] = "", msg[sizeof pg->errstr] = "";
    if (all == NULL) {
        oom(pg, "for the solo pass");
        return TXN_FAIL;
    }
    memcpy(all, c->pend, (size_t)n * sizeof *all);
    for (int p = 0; p < n && rc == TXN_OK; p++) {
        int i = all[p];
        if (b->jobs[i].prefailed)
            continue;
        for (int t = 0; t < SOLO_TRIES; t++) {
            reset_pending(b, i);
            c->pend[0] = i;
            if (fast(c, b, 1, pg) == TXN_OK) {
                sw_batch_job *j = &b->jobs[i];
                if (j->state != SW_JOB_FAILED)
                    j->state = SW_JOB_COMMITTED;
                committed += j->fresh && j->state != SW_JOB_FAILED;
                break;
            }
            if (!sw_pg_statement_error(pg)) {
                rc = TXN_FAIL;   /* PostgreSQL went away: retry later */
                break;
            }
            memcpy(state, pg->sqlstate, sizeof state);
            memcpy(msg, pg->errstr, sizeof msg);
            sw_batch_pg_error(b, i, 0, pg->sqlstate, pg->errstr, pg->detail);
            enum sw_pg_class cls = sw_pg_error_class(pg);
            if (t == SOLO_TRIES - 1 || cls != SW_PG_TRANSIENT) {
                nondata += cls != SW_PG_DATA;
                break;
            }
        }
    }
    memcpy(c->pend, all, (size_t)n * sizeof *all);
    free(all);
    if (rc == TXN_OK && committed == 0 && nondata > 0 && c->strikes < SOLO_ALONE_STRIKES) {
        snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state);
        snprintf(pg->errstr, sizeof pg->errstr, "no job committed alone either: %s", msg);
        pg->detail[0] = '\0';
        rc = TXN_FAIL;
    }
    if (rc != TXN_OK) {
        for (int p = 0; p < n; p++)
            reset_pending(b, c->pend[p]);
    }
    return rc;
}

int sw_commit_run(sw_commit *c, sw_batch *b, int n, sw_pg *pg)
{
    int np = 0;
    c->rows = 0;
    c->isolated = 0;
    if (grow(c, n ? n : 1) != 0) {
        oom(pg, "for the batch");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        sw_batch_job *j = &b->jobs[i];
        if (j->prefailed)
            continue;
        j->state = SW_JOB_PENDING;
        free(j->error);
        j->error = NULL;
        c->pend[np++] = i;
    }
    if (np == 0)
        return 0;
    int rc = TXN_FAIL;
    if (!c->isolating) {
        rc = fast(c, b, np, pg);
        if (rc != TXN_OK) {
            /* A connection lost, or no answer at all: PostgreSQL is away,
             * and the same batch waits for it however long it takes. */
            if (!sw_pg_statement_error(pg))
                return -1;
            c->strikes++;
            enum sw_pg_class cls = sw_pg_error_class(pg);
            if ((cls == SW_PG_OTHER && c->strikes < OTHER_STRIKES) ||
                (cls == SW_PG_TRANSIENT && c->strikes < TRANSIENT_STRIKES))
                return -1;
            c->isolating = 1;
        }
    }
    if (rc != TXN_OK) {
        rc = isolate(c, b, np, pg, c->strikes >= ALIKE_STRIKES);
        if (rc != TXN_OK) {
            if (rc == TXN_FAIL && !sw_pg_statement_error(pg))
                return -1;
            c->strikes++;
            /* Isolation itself failed at the statement level: retried while
             * that may be passing (a transient error, until the ladder's
             * top), else one job at a time. */
            if (rc == TXN_ALIKE ||
                (sw_pg_error_class(pg) == SW_PG_TRANSIENT && c->strikes < TRANSIENT_STRIKES))
                return -1;
            if (solo_pass(c, b, np, pg) != TXN_OK)
                return -1;
        }
        c->isolated = 1;
    }
    for (int p = 0; p < np; p++) {
        sw_batch_job *j = &b->jobs[c->pend[p]];
        if (j->state != SW_JOB_FAILED)
            j->state = SW_JOB_COMMITTED;
    }
    c->rows = count_rows(c, b, np);
    c->strikes = 0;
    c->isolating = 0;
    return 0;
}
