#include "migrate.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

/* "Spillway" in ASCII: the advisory lock key that serialises migrations. */
#define LOCK_KEY "6012807541013283193"

static int is_sql(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 4 && strcmp(d->d_name + n - 4, ".sql") == 0 && d->d_name[0] >= '0' &&
           d->d_name[0] <= '9';
}

static int apply_one(sw_pg *pg, const char *dir, const char *name)
{
    char path[4096];
    const char *params[] = {name};
    PGresult *res = sw_pg_query(pg, "SELECT 1 FROM spillway.schema_migrations WHERE version = $1",
                                1, params);
    if (res == NULL)
        return -1;
    int done = PQntuples(res) > 0;
    PQclear(res);
    if (done)
        return 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sw_buf sql = SW_BUF_INIT;
    if (sw_buf_read_file(&sql, path, 64 << 20) != 0) {
        snprintf(pg->errstr, sizeof pg->errstr, "%s: cannot read: %s", path, strerror(errno));
        sw_buf_free(&sql);
        return -1;
    }
    int rc = -1;
    if (sw_pg_exec(pg, "BEGIN") != 0)
        goto out;
    if (sw_pg_exec(pg, sql.data) != 0 ||
        (res = sw_pg_query(pg, "INSERT INTO spillway.schema_migrations (version) VALUES ($1)",
                           1, params)) == NULL) {
        char msg[sizeof pg->errstr];
        snprintf(msg, sizeof msg, "%s: %s", name, pg->errstr);
        if (sw_pg_exec(pg, "ROLLBACK") != 0) { /* the connection is gone; msg says why */ }
        memcpy(pg->errstr, msg, sizeof msg);
        goto out;
    }
    PQclear(res);
    if (sw_pg_exec(pg, "COMMIT") != 0)
        goto out;
    sw_log_info("migration applied", "file=%s", name);
    rc = 1;
out:
    sw_buf_free(&sql);
    return rc;
}

int sw_migrate_run(sw_pg *pg, const char *dir)
{
    struct dirent **list = NULL;
    int n = -1, applied = 0, rc = -1;
    if (sw_pg_exec(pg, "SELECT pg_advisory_lock(" LOCK_KEY ")") != 0)
        return -1;
    if (sw_pg_exec(pg, "CREATE SCHEMA IF NOT EXISTS spillway") != 0 ||
        sw_pg_exec(pg, "CREATE TABLE IF NOT EXISTS spillway.schema_migrations ("
                       " version text PRIMARY KEY,"
                       " applied_at timestamptz NOT NULL DEFAULT now())") != 0)
        goto out;
    n = scandir(dir, &list, is_sql, alphasort);
    if (n < 0) {
        snprintf(pg->errstr, sizeof pg->errstr, "%s: cannot list migrations directory", dir);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int r = apply_one(pg, dir, list[i]->d_name);
        if (r < 0)
            goto out;
        applied += r;
    }
    rc = applied;
out:
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    if (sw_pg_exec(pg, "SELECT pg_advisory_unlock(" LOCK_KEY ")") != 0)
        rc = -1;
    return rc;
}
