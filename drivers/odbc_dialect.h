/* Private to the ODBC driver: the connection struct odbc.c hands to a dialect,
 * the XA semantics each DBMS needs (a table of functions chosen by
 * conf->dialect), and the statement helpers odbc.c offers the dialects. The
 * generic part (connecting, binding, fetching, diagnostics) knows nothing of
 * XA; the dialect files know nothing of ODBC handles beyond these helpers. */
#ifndef XAC_ODBC_DIALECT_H
#define XAC_ODBC_DIALECT_H

#include <sql.h>
#include <sqlext.h>

#include "drv_impl.h"

typedef struct drv_odbc_dialect drv_odbc_dialect;

/* What the driver said about a failed call: the first diagnostic record. */
typedef struct drv_odbc_diag {
    char sqlstate[6];
    long native;
    char text[400];
} drv_odbc_diag;

/* How many prepared statements a connection keeps. A service runs a handful
 * of statement texts over and over; the least recently used one goes when a
 * new text needs the room. */
#define DRV_ODBC_STMT_CACHE 16

/* A prepared statement kept for its text: SQLPrepare (a round trip for
 * drivers that prepare on the server) and the placeholder count are paid once
 * per connection, not once per exec. */
typedef struct drv_odbc_stmt {
    SQLHSTMT st;
    char *sql;
    size_t len;
    SQLSMALLINT nmarks; /* '?' placeholders, from SQLNumParams */
    uint64_t used;      /* the connection's clock at its last use */
} drv_odbc_stmt;

/* One ODBC connection. Branch fields are the dialect's bookkeeping of the
 * branch this connection works on. */
typedef struct drv_odbc_conn {
    drv_conn base;
    SQLHDBC dbc;
    const drv_odbc_dialect *dialect;
    bool autocommit;    /* the connection's current SQL_ATTR_AUTOCOMMIT */
    bool branch_active; /* started, not yet prepared, committed or rolled back */
    bool branch_ended;
    bool branch_failed; /* a statement of the branch failed */
    bool branch_work;   /* a statement ran in the branch */
    xac_xid branch_xid;
    char branch_error[XAC_ERR_MSG_MAX]; /* why it failed */
    drv_odbc_diag last_diag;            /* of the last failed call */
    /* Statements with parameters, by text. They die with the connection, so
     * a reconnect starts with none. */
    drv_odbc_stmt stmts[DRV_ODBC_STMT_CACHE];
    size_t nstmts;
    uint64_t stmt_clock;
} drv_odbc_conn;

struct drv_odbc_dialect {
    const char *name;
    /* Connection-string pairs put before the user's (which may override). */
    const char *conn_defaults;
    /* Connection-string key for a Unix socket; NULL: the socket goes in SERVER. */
    const char *socket_key;
    /* Connection-string keys for socket read and write timeouts in seconds,
     * set from conf->io_timeout_ms; NULL when the driver has none. */
    const char *read_timeout_key;
    const char *write_timeout_key;
    /* Brings a fresh connection to the state start() expects. */
    int (*setup)(drv_odbc_conn *c, xac_err *err);
    int (*start)(drv_odbc_conn *c, const xac_xid *xid, xac_err *err);
    int (*end)(drv_odbc_conn *c, const xac_xid *xid, xac_err *err);
    int (*prepare)(drv_odbc_conn *c, const xac_xid *xid, xac_err *err);
    int (*commit)(drv_odbc_conn *c, const xac_xid *xid, bool one_phase, xac_err *err);
    int (*rollback)(drv_odbc_conn *c, const xac_xid *xid, xac_err *err);
    int (*recover)(drv_odbc_conn *c, drv_indoubt **out, size_t *n, xac_err *err);
    int (*forget)(drv_odbc_conn *c, const xac_xid *xid, xac_err *err);
    /* The XA code of a failed call in this step. Connection loss (SQLSTATE
     * 08xxx, HYT01, a dead link) is decided by odbc.c before this is asked. */
    int (*map_error)(const drv_odbc_diag *d, drv_step step);
    /* Whether the diagnostics mean the connection is gone (beyond SQLSTATE). */
    bool (*is_conn_loss)(const drv_odbc_diag *d);
    /* Told after exec failed with rc inside a branch (may be NULL). */
    void (*exec_failed)(drv_odbc_conn *c, int rc, const xac_err *err);
    /* Vets a statement before it runs inside a branch and refuses, with
     * nothing sent, what would end the branch behind the coordinator's back
     * (may be NULL when the server itself refuses such statements). */
    int (*check_sql)(drv_odbc_conn *c, const char *sql, size_t len, const xac_value *params,
                     size_t nparams, xac_err *err);
    /* drv_exec_prepare for a statement check_sql accepted, inside the
     * connection's active branch (may be NULL: never). */
    int (*exec_prepare)(drv_odbc_conn *c, const xac_xid *xid, const char *sql, size_t len,
                        const xac_value *params, size_t nparams, xac_rows *rows, drv_prepare_at *at,
                        xac_err *err);
    /* drv_exec_one_phase for a statement check_sql accepted, on the
     * connection's active branch, before any statement ran in it (may be
     * NULL: never). */
    int (*exec_one_phase)(drv_odbc_conn *c, const xac_xid *xid, const char *sql, size_t len,
                          const xac_value *params, size_t nparams, xac_rows *rows,
                          drv_onephase_at *at, xac_err *err);
};

extern const drv_odbc_dialect drv_odbc_postgresql;
extern const drv_odbc_dialect drv_odbc_mysql;

/* How errors name a statement: its start, on one line ("statement \"...\""). */
#define DRV_ODBC_WHAT_MAX 96
void drv_odbc_what(const char *sql, size_t sql_len, char what[DRV_ODBC_WHAT_MAX]);
/* Runs sql with no parameters and throws any result away. what names the step
 * in the error message ("XA PREPARE"). */
int drv_odbc_run(drv_odbc_conn *c, const char *sql, drv_step step, const char *what, xac_err *err);
/* Runs sql with parameters and collects its result into rows (which may be
 * NULL to discard it). */
int drv_odbc_query(drv_odbc_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                   size_t nparams, xac_rows *rows, drv_step step, const char *what, xac_err *err);
/* drv_odbc_query for a text that is used once (the statement is not kept),
 * then the results of the statements after the first: their count in *more;
 * an error in one of them fails the call, and *more tells how many succeeded
 * before it. */
int drv_odbc_query_more(drv_odbc_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                        size_t nparams, xac_rows *rows, drv_step step, const char *what, int *more,
                        xac_err *err);
/* drv_odbc_query as a transaction of its own: with autocommit on, then the
 * connection's previous autocommit state again. For statements that must not
 * run inside a transaction block, or outside any branch. */
int drv_odbc_query_alone(drv_odbc_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                         size_t nparams, xac_rows *rows, drv_step step, const char *what,
                         xac_err *err);
/* Switches SQL_ATTR_AUTOCOMMIT (no-op when already so). */
int drv_odbc_set_autocommit(drv_odbc_conn *c, bool on, xac_err *err);
/* SQLEndTran on the connection. */
int drv_odbc_end_tran(drv_odbc_conn *c, bool commit, drv_step step, const char *what, xac_err *err);
/* Forgets the connection's branch bookkeeping. */
void drv_odbc_branch_clear(drv_odbc_conn *c);

#endif
