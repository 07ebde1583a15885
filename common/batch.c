#include "batch.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copyrow.h"
#include "jobid.h"

enum { TXN_OK = 0, TXN_DATA = 1, TXN_RETRY = -1 };

/* Records are decoded into arrays of SW_SINK_MAX_COLUMNS values. */
_Static_assert(SW_SINK_MAX_COLUMNS <= SW_ENVELOPE_MAX_COLUMNS, "envelope column bound");

static char *build_copy_sql(int k, const sw_sink *s)
{
    sw_buf b = SW_BUF_INIT;
    int rc = sw_buf_printf(&b, "COPY sw_stage_%d (sw_seq", k);
    for (int c = 0; c < s->ncolumns && rc == 0; c++)
        rc = sw_buf_printf(&b, ", \"%s\"", s->columns[c].name);
    if (rc == 0)
        rc = sw_buf_puts(&b, ") FROM STDIN");
    if (rc != 0)
        sw_buf_free(&b);
    return b.data;
}

/* INSERT INTO target SELECT FROM staging, per mode. Upsert keeps the last
 * write per key in queue order (DISTINCT ON ... sw_seq DESC), since one
 * INSERT may not touch a row twice; insert and ignore keep queue order. */
static char *build_insert_sql(int k, const sw_sink *s)
{
    sw_buf b = SW_BUF_INIT, cols = SW_BUF_INIT, keys = SW_BUF_INIT;
    char table[200];
    int rc = 0, nonkey = 0;
    sw_pg_quote_ident(s->table, table, sizeof table);
    for (int c = 0; c < s->ncolumns && rc == 0; c++) {
        rc = sw_buf_printf(&cols, "%s\"%s\"", c ? ", " : "", s->columns[c].name);
        if (s->columns[c].is_key && rc == 0)
            rc = sw_buf_printf(&keys, "%s\"%s\"", keys.len ? ", " : "", s->columns[c].name);
        nonkey += !s->columns[c].is_key;
    }
    if (rc == 0)
        rc = sw_buf_printf(&b, "INSERT INTO %s (%s) SELECT ", table, cols.data);
    if (rc == 0 && s->mode == SW_MODE_UPSERT)
        rc = sw_buf_printf(&b, "DISTINCT ON (%s) %s FROM sw_stage_%d ORDER BY %s, sw_seq DESC",
                           keys.data, cols.data, k, keys.data);
    else if (rc == 0)
        rc = sw_buf_printf(&b, "%s FROM sw_stage_%d ORDER BY sw_seq", cols.data, k);
    if (rc == 0 && s->mode == SW_MODE_IGNORE)
        rc = sw_buf_printf(&b, " ON CONFLICT (%s) DO NOTHING", keys.data);
    if (rc == 0 && s->mode == SW_MODE_UPSERT) {
        if (nonkey == 0) {
            rc = sw_buf_printf(&b, " ON CONFLICT (%s) DO NOTHING", keys.data);
        } else {
            rc = sw_buf_printf(&b, " ON CONFLICT (%s) DO UPDATE SET ", keys.data);
            int first = 1;
            for (int c = 0; c < s->ncolumns && rc == 0; c++) {
                if (s->columns[c].is_key)
                    continue;
                rc = sw_buf_printf(&b, "%s\"%s\" = EXCLUDED.\"%s\"", first ? "" : ", ",
                                   s->columns[c].name, s->columns[c].name);
                first = 0;
            }
        }
    }
    sw_buf_free(&cols);
    sw_buf_free(&keys);
    if (rc != 0)
        sw_buf_free(&b);
    return b.data;
}

sw_batch *sw_batch_new(const sw_config *cfg, const char *flusher_id)
{
    sw_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->cfg = cfg;
    snprintf(b->flusher_id, sizeof b->flusher_id, "%s", flusher_id);
    b->copy_sql = calloc((size_t)cfg->nsinks + 1, sizeof *b->copy_sql);
    b->insert_sql = calloc((size_t)cfg->nsinks + 1, sizeof *b->insert_sql);
    b->vals = calloc(SW_SINK_MAX_COLUMNS, sizeof *b->vals);
    if (b->copy_sql == NULL || b->insert_sql == NULL || b->vals == NULL)
        goto fail;
    for (int k = 0; k < cfg->nsinks; k++) {
        b->copy_sql[k] = build_copy_sql(k, &cfg->sinks[k]);
        b->insert_sql[k] = build_insert_sql(k, &cfg->sinks[k]);
        if (b->copy_sql[k] == NULL || b->insert_sql[k] == NULL)
            goto fail;
    }
    return b;
fail:
    sw_batch_free(b);
    return NULL;
}

void sw_batch_reset(sw_batch *b)
{
    for (int i = 0; i < b->njobs; i++)
        free(b->jobs[i].error);
    b->njobs = 0;
    b->nrecords = 0;
    b->oldest_enqueued_us = 0;
}

void sw_batch_free(sw_batch *b)
{
    if (b == NULL)
        return;
    sw_batch_reset(b);
    for (int k = 0; b->copy_sql && k < b->cfg->nsinks; k++)
        free(b->copy_sql[k]);
    for (int k = 0; b->insert_sql && k < b->cfg->nsinks; k++)
        free(b->insert_sql[k]);
    free(b->copy_sql);
    free(b->insert_sql);
    free(b->jobs);
    free(b->vals);
    sw_buf_free(&b->copy);
    sw_buf_free(&b->ids);
    free(b);
}

__attribute__((format(printf, 2, 3)))
static void fail_job(sw_batch_job *j, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(j->error);
    j->error = strdup(msg);
    j->state = SW_JOB_FAILED;
}

int sw_batch_add(sw_batch *b, const char *data, size_t len)
{
    if (b->njobs == b->cap) {
        int cap = b->cap ? b->cap * 2 : 256;
        sw_batch_job *j = realloc(b->jobs, (size_t)cap * sizeof *j);
        if (j == NULL)
            return -1;
        b->jobs = j;
        b->cap = cap;
    }
    sw_batch_job *j = &b->jobs[b->njobs++];
    char why[160];
    int64_t when = 0;
    memset(j, 0, sizeof *j);
    j->data = data;
    j->len = len;
    j->sink_idx = -1;
    if (sw_envelope_peek(data, len, &j->counted, &when) != 0)
        j->counted = 0;
    b->nrecords += j->counted;
    if (when > 0 && (b->oldest_enqueued_us == 0 || when < b->oldest_enqueued_us))
        b->oldest_enqueued_us = when;
    if (sw_envelope_decode(data, len, &j->env, why, sizeof why) != 0) {
        fail_job(j, "corrupt envelope: %s", why);
        /* Without a readable id it still needs one of its own, or two such
         * jobs would overwrite each other's dead-letter entry. */
        if (!sw_jobid_valid(j->env.job_id, strlen(j->env.job_id)))
            sw_jobid_new(j->env.job_id);
        return j->error ? 0 : -1;
    }
    for (int k = 0; k < b->cfg->nsinks; k++) {
        if (strcmp(b->cfg->sinks[k].name, j->env.sink) == 0)
            j->sink_idx = k;
    }
    if (j->sink_idx < 0)
        fail_job(j, "sink \"%s\" is no longer configured", j->env.sink);
    else if (b->cfg->sinks[j->sink_idx].ncolumns != (int)j->env.ncolumns)
        fail_job(j, "sink \"%s\" changed its columns since the job was queued", j->env.sink);
    if (j->state == SW_JOB_FAILED && j->error == NULL)
        return -1;
    return 0;
}

int sw_batch_prepare(sw_batch *b, sw_pg *pg)
{
    char type[64];
    for (int k = 0; k < b->cfg->nsinks; k++) {
        const sw_sink *s = &b->cfg->sinks[k];
        sw_buf sql = SW_BUF_INIT;
        int rc = sw_buf_printf(&sql, "CREATE TEMP TABLE IF NOT EXISTS sw_stage_%d (sw_seq bigint",
                               k);
        for (int c = 0; c < s->ncolumns && rc == 0; c++)
            rc = sw_buf_printf(&sql, ", \"%s\" %s", s->columns[c].name,
                               sw_sink_type_sql(&s->columns[c], type, sizeof type));
        if (rc == 0)
            rc = sw_buf_puts(&sql, ") ON COMMIT DELETE ROWS");
        if (rc == 0)
            rc = sw_pg_exec(pg, sql.data);
        else
            snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
        sw_buf_free(&sql);
        if (rc != 0)
            return -1;
    }
    return 0;
}

typedef struct id_ref {
    const char *id;
    int job;
} id_ref;

static int cmp_id(const void *a, const void *b)
{
    return strcmp(((const id_ref *)a)->id, ((const id_ref *)b)->id);
}

/* Insert the jobs' ids into the ledger; mark `fresh` those that were not
 * there. TXN_OK, or TXN_RETRY/TXN_DATA. */
static int ledger(sw_batch *b, sw_pg *pg, const int *idx, int n)
{
    id_ref *refs = malloc((size_t)n * sizeof *refs);
    PGresult *res = NULL;
    int rc = TXN_RETRY;
    sw_buf_reset(&b->ids);
    if (refs == NULL || sw_buf_puts(&b->ids, "{") != 0)
        goto out;
    for (int i = 0; i < n; i++) {
        sw_batch_job *j = &b->jobs[idx[i]];
        j->fresh = 0;
        refs[i].id = j->env.job_id;
        refs[i].job = idx[i];
        if (sw_buf_printf(&b->ids, "%s%s", i ? "," : "", j->env.job_id) != 0)
            goto out;
    }
    if (sw_buf_puts(&b->ids, "}") != 0)
        goto out;
    qsort(refs, (size_t)n, sizeof *refs, cmp_id);
    const char *params[] = {b->ids.data, b->flusher_id};
    res = sw_pg_query(pg,
                      "INSERT INTO spillway.ledger (job_id, flusher) "
                      "SELECT unnest($1::uuid[]), $2 ON CONFLICT (job_id) DO NOTHING "
                      "RETURNING job_id::text",
                      2, params);
    if (res == NULL) {
        rc = sw_pg_transient(pg) ? TXN_RETRY : TXN_DATA;
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        id_ref key = {PQgetvalue(res, r, 0), 0};
        id_ref *hit = bsearch(&key, refs, (size_t)n, sizeof *refs, cmp_id);
        if (hit)
            b->jobs[hit->job].fresh = 1;
    }
    rc = TXN_OK;
out:
    if (res)
        PQclear(res);
    free(refs);
    return rc;
}

static int write_sink(sw_batch *b, sw_pg *pg, int k, const int *idx, int n)
{
    const sw_sink *s = &b->cfg->sinks[k];
    int64_t seq = 0;
    sw_buf_reset(&b->copy);
    for (int i = 0; i < n; i++) {
        sw_batch_job *j = &b->jobs[idx[i]];
        if (!j->fresh || j->sink_idx != k)
            continue;
        const unsigned char *cur = j->env.records;
        for (uint32_t r = 0; r < j->env.nrecords; r++) {
            if (sw_envelope_next(&j->env, &cur, b->vals) != 0 ||
                sw_copyrow_append(&b->copy, seq++, s, b->vals) != 0) {
                snprintf(pg->errstr, sizeof pg->errstr, "out of memory building COPY rows");
                pg->sqlstate[0] = '\0';
                return TXN_RETRY;
            }
        }
    }
    if (seq == 0)
        return TXN_OK;
    if (sw_pg_copy(pg, b->copy_sql[k], b->copy.data, b->copy.len) != 0 ||
        sw_pg_exec(pg, b->insert_sql[k]) != 0)
        return sw_pg_transient(pg) ? TXN_RETRY : TXN_DATA;
    b->committed_records += seq;
    return TXN_OK;
}

/* One transaction over jobs idx[0..n). */
static int try_txn(sw_batch *b, sw_pg *pg, const int *idx, int n)
{
    long long before = b->committed_records;
    int rc;
    if (sw_pg_exec(pg, "BEGIN") != 0)
        return TXN_RETRY;
    rc = ledger(b, pg, idx, n);
    for (int k = 0; rc == TXN_OK && k < b->cfg->nsinks; k++)
        rc = write_sink(b, pg, k, idx, n);
    if (rc == TXN_OK && sw_pg_exec(pg, "COMMIT") != 0)
        rc = sw_pg_transient(pg) ? TXN_RETRY : TXN_DATA;
    if (rc != TXN_OK) {
        b->committed_records = before;
        /* Keep the failure's message: ROLLBACK would overwrite it. */
        char state[6], msg[sizeof pg->errstr], ctx[sizeof pg->context];
        memcpy(state, pg->sqlstate, sizeof state);
        memcpy(msg, pg->errstr, sizeof msg);
        memcpy(ctx, pg->context, sizeof ctx);
        if (sw_pg_exec(pg, "ROLLBACK") != 0)
            rc = TXN_RETRY;
        memcpy(pg->sqlstate, state, sizeof state);
        memcpy(pg->errstr, msg, sizeof msg);
        memcpy(pg->context, ctx, sizeof ctx);
    }
    return rc;
}

/* Commit idx[0..n); on a data error split in halves until the bad jobs
 * stand alone, and fail just those. */
static int commit_range(sw_batch *b, sw_pg *pg, const int *idx, int n)
{
    int rc = try_txn(b, pg, idx, n);
    if (rc == TXN_RETRY)
        return -1;
    if (rc == TXN_OK) {
        for (int i = 0; i < n; i++)
            b->jobs[idx[i]].state = SW_JOB_COMMITTED;
        return 0;
    }
    if (n == 1) {
        /* Alone in its transaction, the job's rows are the only ones in the
         * COPY, so a COPY error's line number is the record's position. */
        sw_batch_job *j = &b->jobs[idx[0]];
        char where[48] = "";
        const char *line = strstr(pg->context, ", line ");
        int ln;
        if (strncmp(pg->context, "COPY sw_stage_", 14) == 0 && line &&
            sscanf(line, ", line %d", &ln) == 1 && ln >= 1)
            snprintf(where, sizeof where, " (record %d)", ln - 1);
        fail_job(j, "SQLSTATE %s: %s", pg->sqlstate, pg->errstr);
        if (where[0] && j->error) {
            char *e = realloc(j->error, strlen(j->error) + strlen(where) + 1);
            if (e) {
                strcat(e, where);
                j->error = e;
            }
        }
        return 0;
    }
    int half = n / 2;
    if (commit_range(b, pg, idx, half) != 0)
        return -1;
    return commit_range(b, pg, idx + half, n - half);
}

int sw_batch_commit(sw_batch *b, sw_pg *pg)
{
    int *idx = malloc((size_t)(b->njobs ? b->njobs : 1) * sizeof *idx);
    int n = 0, rc = -1;
    if (idx == NULL) {
        snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
        return -1;
    }
    b->committed_records = 0;
    for (int i = 0; i < b->njobs; i++) {
        sw_batch_job *j = &b->jobs[i];
        /* A job that failed on a data error in an earlier attempt gets
         * another; jobs failed before PostgreSQL (bad envelope) do not. */
        if (j->sink_idx >= 0 && (int)j->env.ncolumns == b->cfg->sinks[j->sink_idx].ncolumns) {
            j->state = SW_JOB_PENDING;
            free(j->error);
            j->error = NULL;
            idx[n++] = i;
        }
    }
    rc = n ? commit_range(b, pg, idx, n) : 0;
    free(idx);
    return rc;
}

long sw_batch_prune(sw_pg *pg, int retention_s)
{
    char secs[24];
    snprintf(secs, sizeof secs, "%d", retention_s);
    const char *params[] = {secs};
    PGresult *res = sw_pg_query(pg,
                                "DELETE FROM spillway.ledger"
                                " WHERE committed_at < now() - make_interval(secs => $1::int)",
                                1, params);
    if (res == NULL)
        return -1;
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}
