#ifndef SW_PGCONN_H_
#define SW_PGCONN_H_

#include <stdint.h>

#include <stddef.h>

/* A thin libpq adapter that keeps the last error's SQLSTATE and message,
 * and tells a transient failure (retry the same work) from a data error
 * (the work itself is bad). */

typedef struct sw_pg {
    int err;               /* 0, or -1 after a failure */
    char errstr[384];      /* the server's message, or libpq's */
    char detail[384];      /* the server's DETAIL, or "": it may quote row
                              contents, so logs leave it out unless
                              [log] include_values */
    char sqlstate[6];      /* "" when no server error (e.g. connection) */
    char context[160];     /* the server's CONTEXT, e.g. "COPY t, line 3, ..." */
    void *conn;            /* PGconn, NULL while disconnected */
    char conninfo[1024];
    char password[256];    /* "" = libpq's own (PGPASSWORD, PGPASSFILE) */
    int statement_timeout_ms;
    uint64_t sessions;     /* connections made so far: a new value is a new
                              session, whose temporary tables are gone */
    /* Optional: called before each statement is sent, so a caller can
     * say how long it may now wait (a heartbeat's deadline). */
    void (*on_statement)(void *ctx);
    void *on_statement_ctx;
} sw_pg;

/* A new, not yet connected adapter; NULL when out of memory. Each
 * connection sets client_encoding UTF8 and `statement_timeout_ms` (0 = no
 * limit); connect_timeout (10 s), TCP keepalives (idle 5 s, every 2 s, 3
 * probes) and tcp_user_timeout (10 s), so a dead peer is noticed in
 * seconds, apply unless `conninfo` says otherwise. A non-empty `password` is passed as
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

/* What an error means for the work that met it. */
enum sw_pg_class {
    SW_PG_TRANSIENT,  /* retry the same work: connection lost (08, or no
                         SQLSTATE), serialization or deadlock (40), resources
                         (53), shutdown or cancel (57, statement_timeout
                         included), system error (58), lock not available
                         (55P03), object in use (55006) */
    SW_PG_DATA,       /* the data is bad and will fail again: 22 data
                         exception, 23 integrity violation, 44 check option,
                         P0 raised by a trigger */
    SW_PG_OTHER,      /* anything else (42 after an ALTER TABLE, 54 program
                         limits, XX internal...): retried once, and if the
                         same work fails again, treated like bad data */
};

/* 1 when connected and the connection is good. */
int sw_pg_connected(const sw_pg *pg);

/* 1 when the last failure was the work's, at the statement level:
 * PostgreSQL answered with an SQLSTATE on a connection still up, and not
 * that it is going away (08 connection, 57P shutdown). 0 when PostgreSQL
 * itself is away (or libpq failed before asking). */
int sw_pg_statement_error(const sw_pg *pg);

/* The class of an SQLSTATE ("" for none). Pure. */
enum sw_pg_class sw_pg_classify(const char *sqlstate);

/* The class of pg's last failure: TRANSIENT also whenever the connection
 * is gone, whatever the SQLSTATE. */
enum sw_pg_class sw_pg_error_class(const sw_pg *pg);

/* Quote an identifier that sw_sink_ident_ok() accepted: "name". A dotted
 * schema.table becomes "schema"."table". */
void sw_pg_quote_ident(const char *name, char *out, size_t outlen);

#endif
