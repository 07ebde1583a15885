#ifndef SW_PGCONN_H_
#define SW_PGCONN_H_

#include <stddef.h>

/* A thin libpq adapter that keeps the last error's SQLSTATE and message,
 * and tells a transient failure (retry the same work) from a data error
 * (the work itself is bad). */

typedef struct sw_pg {
    int err;               /* 0, or -1 after a failure */
    char errstr[384];      /* the server's message, or libpq's */
    char sqlstate[6];      /* "" when no server error (e.g. connection) */
    char context[160];     /* the server's CONTEXT, e.g. "COPY t, line 3, ..." */
    void *conn;            /* PGconn, NULL while disconnected */
    char conninfo[1024];
    char password[256];    /* "" = libpq's own (PGPASSWORD, PGPASSFILE) */
    int statement_timeout_ms;
} sw_pg;

/* A new, not yet connected adapter; NULL when out of memory. Each
 * connection sets client_encoding UTF8 and `statement_timeout_ms` (0 = no
 * limit); connect_timeout and TCP keepalives default to 10 s and 30 s
 * unless `conninfo` says otherwise. A non-empty `password` is passed as
 * its own connection parameter (never in the conninfo string, which may
 * be logged) and wins over one in conninfo. */
sw_pg *sw_pg_new(const char *conninfo, const char *password, int statement_timeout_ms);
void sw_pg_free(sw_pg *pg);   /* accepts NULL */

/* Connect now if not connected (or if the connection went bad).
 * 0, or -1 with errstr set. */
__attribute__((warn_unused_result)) int sw_pg_connect(sw_pg *pg);
void sw_pg_disconnect(sw_pg *pg);

/* Run SQL that returns no rows the caller needs. 0, or -1. */
__attribute__((warn_unused_result)) int sw_pg_exec(sw_pg *pg, const char *sql);

/* Run a parameterised query (text parameters); returns the PGresult
 * (caller PQclear()s it) for a command or tuples result, or NULL. */
void *sw_pg_query(sw_pg *pg, const char *sql, int nparams, const char *const *params);

/* COPY ... FROM STDIN with `len` bytes of text-format rows. 0, or -1. */
__attribute__((warn_unused_result))
int sw_pg_copy(sw_pg *pg, const char *copy_sql, const char *data, size_t len);

/* After a failure: 1 when retrying the same work may succeed (connection
 * lost, serialization failure, deadlock, lock timeout, shutdown, resources,
 * or any error that is not about the data), 0 for a data error (classes 22
 * data exception, 23 integrity violation, P0 raised by a trigger, 44 check
 * option) that will fail again. */
int sw_pg_transient(const sw_pg *pg);

/* Quote an identifier that sw_sink_ident_ok() accepted: "name". A dotted
 * schema.table becomes "schema"."table". */
void sw_pg_quote_ident(const char *name, char *out, size_t outlen);

#endif
