#include "ledger.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The advisory lock key of ledger pruning (any constant of our own). */
#define PRUNE_LOCK "7326813450129871"

static int id_array(sw_buf *b, int n, const char *const *ids)
{
    int rc = 0;
    sw_buf_reset(b);
    rc |= sw_buf_puts(b, "{");
    for (int i = 0; i < n && rc == 0; i++)
        rc |= sw_buf_printf(b, "%s%s", i ? "," : "", ids[i]);
    rc |= sw_buf_puts(b, "}");
    return rc ? -1 : 0;
}

typedef struct ref {
    const char *id;
    int i;
} ref;

/* PostgreSQL returns uuids in lower case; an id may have come in upper. */
static int cmp_ref(const void *a, const void *b)
{
    return strcasecmp(((const ref *)a)->id, ((const ref *)b)->id);
}

int sw_ledger_claim(sw_pg *pg, const char *flusher_id, int n, const char *const *ids, int *fresh,
                    sw_buf *scratch)
{
    ref *refs = malloc((size_t)(n ? n : 1) * sizeof *refs);
    PGresult *res = NULL;
    int rc = -1;
    if (refs == NULL || id_array(scratch, n, ids) != 0) {
        snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
        pg->sqlstate[0] = '\0';
        goto out;
    }
    for (int i = 0; i < n; i++) {
        fresh[i] = 0;
        refs[i].id = ids[i];
        refs[i].i = i;
    }
    qsort(refs, (size_t)n, sizeof *refs, cmp_ref);
    const char *params[] = {scratch->data, flusher_id};
    res = sw_pg_query(pg,
                      "INSERT INTO spillway.ledger (job_id, flusher) "
                      "SELECT unnest($1::uuid[]), $2 ON CONFLICT (job_id) DO NOTHING "
                      "RETURNING job_id::text",
                      2, params);
    if (res == NULL)
        goto out;
    for (int r = 0; r < PQntuples(res); r++) {
        ref key = {PQgetvalue(res, r, 0), 0};
        ref *hit = bsearch(&key, refs, (size_t)n, sizeof *refs, cmp_ref);
        if (hit)
            fresh[hit->i] = 1;
    }
    rc = 0;
out:
    if (res)
        PQclear(res);
    free(refs);
    return rc;
}

int sw_ledger_copy(sw_pg *pg, const char *flusher_id, int n, const char *const *ids,
                   sw_buf *scratch)
{
    int rc = 0;
    sw_buf_reset(scratch);
    /* Ids are UUID text (checked at decode); a flusher id is escaped for
     * COPY's text format all the same. */
    for (int i = 0; i < n && rc == 0; i++) {
        rc |= sw_buf_puts(scratch, ids[i]);
        rc |= sw_buf_puts(scratch, "\t");
        for (const char *f = flusher_id; *f && rc == 0; f++) {
            char e = *f == '\t' ? 't' : *f == '\n' ? 'n' : *f == '\r' ? 'r' : *f == '\\' ? '\\' : 0;
            rc |= e ? sw_buf_printf(scratch, "\\%c", e) : sw_buf_append(scratch, f, 1);
        }
        rc |= sw_buf_puts(scratch, "\n");
    }
    if (rc != 0) {
        snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
        pg->sqlstate[0] = '\0';
        return -1;
    }
    return sw_pg_copy(pg, "COPY spillway.ledger (job_id, flusher) FROM STDIN", scratch->data,
                      scratch->len);
}

int sw_ledger_forget(sw_pg *pg, int n, const char *const *ids, sw_buf *scratch)
{
    if (n == 0)
        return 0;
    if (id_array(scratch, n, ids) != 0) {
        snprintf(pg->errstr, sizeof pg->errstr, "out of memory");
        pg->sqlstate[0] = '\0';
        return -1;
    }
    const char *params[] = {scratch->data};
    PGresult *res = sw_pg_query(pg, "DELETE FROM spillway.ledger WHERE job_id = ANY($1::uuid[])",
                                1, params);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

static int scalar_true(sw_pg *pg, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = sw_pg_query(pg, sql, nparams, params);
    if (res == NULL)
        return -1;
    int yes = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return yes;
}

long sw_ledger_prune(sw_pg *pg, int retention_s, int chunk, int max_chunks, int *more)
{
    char secs[24], lim[24];
    long total = 0;
    *more = 0;
    int got = scalar_true(pg, "SELECT pg_try_advisory_lock(" PRUNE_LOCK ")", 0, NULL);
    if (got <= 0)
        return got;
    snprintf(secs, sizeof secs, "%d", retention_s);
    snprintf(lim, sizeof lim, "%d", chunk);
    const char *params[] = {secs, lim};
    /* The ledger, then the tombstones (keyed.h): both kept as long. */
    static const char *const prune_sql[] = {
        "DELETE FROM spillway.ledger WHERE job_id IN (SELECT job_id FROM spillway.ledger "
        "WHERE committed_at < now() - make_interval(secs => $1::int) LIMIT $2::int)",
        "DELETE FROM spillway.tombstones WHERE ctid IN (SELECT ctid FROM spillway.tombstones "
        "WHERE deleted_at < now() - make_interval(secs => $1::int) LIMIT $2::int)"};
    for (int i = 0; i < max_chunks; i++) {
        long most = 0;
        for (int q = 0; q < 2 && total >= 0; q++) {
            PGresult *res = sw_pg_query(pg, prune_sql[q], 2, params);
            if (res == NULL) {
                total = -1;
                break;
            }
            long n = strtol(PQcmdTuples(res), NULL, 10);
            PQclear(res);
            total += n;
            most = n > most ? n : most;
        }
        if (total < 0 || most < chunk)
            break;
        if (i == max_chunks - 1)
            *more = 1;
    }
    /* If the unlock fails, ending the session releases the lock. */
    char save[sizeof pg->errstr];
    memcpy(save, pg->errstr, sizeof save);
    if (scalar_true(pg, "SELECT pg_advisory_unlock(" PRUNE_LOCK ")", 0, NULL) < 0)
        sw_pg_disconnect(pg);
    if (total < 0)
        memcpy(pg->errstr, save, sizeof save);
    return total;
}

int sw_ledger_schema_ready(sw_pg *pg)
{
    return scalar_true(pg, "SELECT to_regprocedure('spillway.apply_each_all(text[],integer[])') "
                           "IS NOT NULL", 0, NULL);
}
