#include "pgconn.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

sw_pg *sw_pg_new(const char *conninfo, const char *password, int statement_timeout_ms)
{
    sw_pg *pg = calloc(1, sizeof *pg);
    if (pg) {
        snprintf(pg->conninfo, sizeof pg->conninfo, "%s", conninfo);
        snprintf(pg->password, sizeof pg->password, "%s", password ? password : "");
        pg->statement_timeout_ms = statement_timeout_ms;
    }
    return pg;
}

void sw_pg_disconnect(sw_pg *pg)
{
    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = NULL;
}

void sw_pg_free(sw_pg *pg)
{
    if (pg == NULL)
        return;
    sw_pg_disconnect(pg);
    free(pg);
}

static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static void conn_error(sw_pg *pg, const char *what)
{
    pg->err = -1;
    pg->sqlstate[0] = '\0';
    pg->context[0] = '\0';
    pg->detail[0] = '\0';
    snprintf(pg->errstr, sizeof pg->errstr, "%s: %s", what,
             pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
    trim_newline(pg->errstr);
}

/* Record the error in `res` (if any) and clear it. */
static int result_error(sw_pg *pg, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *context = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
    pg->err = -1;
    snprintf(pg->context, sizeof pg->context, "%s", context ? context : "");
    snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state ? state : "");
    if (msg)
        snprintf(pg->errstr, sizeof pg->errstr, "%s", msg);
    else
        conn_error(pg, what);
    snprintf(pg->detail, sizeof pg->detail, "%s", msg && detail ? detail : "");
    if (res)
        PQclear(res);
    return -1;
}

/* PostgreSQL's NOTICEs ("relation ... already exists, skipping" on a
 * migration re-run): libpq would print them raw to stderr, breaking the
 * log's format and alarming no one usefully. Debug lines instead. */
static void notice(void *arg, const char *message)
{
    (void)arg;
    size_t n = strlen(message);
    while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == ' '))
        n--;
    sw_log_debug("postgres notice", "message=\"%.*s\"", (int)n, message);
}

int sw_pg_connect(sw_pg *pg)
{
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    sw_pg_disconnect(pg);
    /* Defaults first; the configured conninfo, expanded from "dbname",
     * overrides any of them. Without a connect timeout and keepalives a
     * black-holed server would hang the flusher for minutes. */
    const char *keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "client_encoding",
                          "application_name", "dbname", "password", NULL};
    const char *vals[] = {"10", "5", "2", "3", "10000", "UTF8", "spillway", pg->conninfo,
                          pg->password[0] ? pg->password : NULL, NULL};
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK) {
        conn_error(pg, "connect");
        sw_pg_disconnect(pg);
        return -1;
    }
    PQsetNoticeProcessor(pg->conn, notice, NULL);
    /* Our rows are UTF-8 whatever the conninfo says, and no statement may
     * wait forever on a lock: past the timeout it fails (57014), which
     * counts as transient, and the batch is retried. */
    char sql[96];
    snprintf(sql, sizeof sql, "SET client_encoding = 'UTF8'; SET statement_timeout = %d",
             pg->statement_timeout_ms);
    if (sw_pg_exec(pg, sql) != 0) {
        sw_pg_disconnect(pg);
        return -1;
    }
    pg->sessions++;
    pg->err = 0;
    return 0;
}

static void before(sw_pg *pg)
{
    if (pg->on_statement)
        pg->on_statement(pg->on_statement_ctx);
}

int sw_pg_exec(sw_pg *pg, const char *sql)
{
    before(pg);
    PGresult *res = PQexec(pg->conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return result_error(pg, res, "exec");
    PQclear(res);
    return 0;
}

void *sw_pg_query(sw_pg *pg, const char *sql, int nparams, const char *const *params)
{
    before(pg);
    PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        result_error(pg, res, "query");
        return NULL;
    }
    return res;
}

int sw_pg_copy(sw_pg *pg, const char *copy_sql, const char *data, size_t len)
{
    before(pg);
    PGresult *res = PQexec(pg->conn, copy_sql);
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN)
        return result_error(pg, res, "copy");
    PQclear(res);
    /* Feed in slices so a large batch does not need a second copy in
     * libpq's buffer all at once. */
    const size_t slice = 1 << 20;
    for (size_t off = 0; off < len; off += slice) {
        size_t n = len - off < slice ? len - off : slice;
        if (PQputCopyData(pg->conn, data + off, (int)n) != 1) {
            conn_error(pg, "copy data");
            return -1;
        }
    }
    if (PQputCopyEnd(pg->conn, NULL) != 1) {
        conn_error(pg, "copy end");
        return -1;
    }
    int rc = 0;
    while ((res = PQgetResult(pg->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
            rc = result_error(pg, res, "copy");
            continue;
        }
        PQclear(res);
    }
    return rc;
}

enum sw_pg_class sw_pg_classify(const char *s)
{
    static const char *const transient[] = {"08", "40", "53", "57", "58", "55P03", "55006", NULL};
    static const char *const data[] = {"22", "23", "44", "P0", NULL};
    if (s[0] == '\0')
        return SW_PG_TRANSIENT;
    for (int i = 0; transient[i]; i++) {
        if (strncmp(s, transient[i], strlen(transient[i])) == 0)
            return SW_PG_TRANSIENT;
    }
    for (int i = 0; data[i]; i++) {
        if (strncmp(s, data[i], 2) == 0)
            return SW_PG_DATA;
    }
    return SW_PG_OTHER;
}

int sw_pg_connected(const sw_pg *pg)
{
    return pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK;
}

int sw_pg_statement_error(const sw_pg *pg)
{
    return sw_pg_connected(pg) && pg->sqlstate[0] != '\0' &&
           strncmp(pg->sqlstate, "08", 2) != 0 && strncmp(pg->sqlstate, "57P", 3) != 0;
}

enum sw_pg_class sw_pg_error_class(const sw_pg *pg)
{
    if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK)
        return SW_PG_TRANSIENT;
    return sw_pg_classify(pg->sqlstate);
}

void sw_pg_quote_ident(const char *name, char *out, size_t outlen)
{
    const char *dot = strchr(name, '.');
    if (dot)
        snprintf(out, outlen, "\"%.*s\".\"%s\"", (int)(dot - name), name, dot + 1);
    else
        snprintf(out, outlen, "\"%s\"", name);
}
