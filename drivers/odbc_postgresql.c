/* The PostgreSQL dialect of the ODBC driver (psqlodbc). PostgreSQL has no XA
 * START: a branch is the connection's local transaction (autocommit off),
 * PREPARE TRANSACTION turns it into a prepared one named by a gid that encodes
 * the XID, and COMMIT/ROLLBACK PREPARED finish it from any connection. Between
 * branches a connection waits with autocommit off and no transaction open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odbc_dialect.h"

/* Statement-level rollback (psqlodbc's default, "7.4-2") would hide that
 * PostgreSQL aborts the whole transaction on an error, and costs a SAVEPOINT
 * per statement; "-0" leaves the transaction as the server has it. Driver
 * logging (odbcinst.ini may turn it on) would slow every statement. */
#define PG_CONN_DEFAULTS "Protocol=7.4-0;Debug=0;CommLog=0;"

/* The gid of xid as an SQL string literal. gids from xac_xid_to_pg_gid hold
 * no quote, but a quote would be doubled all the same. */
static int pg_gid_literal(drv_odbc_conn *c, const xac_xid *xid, char *out, size_t outlen,
                          xac_err *err)
{
    char gid[XAC_PG_GID_MAX + 1];
    if (xac_xid_to_pg_gid(xid, gid, err) != XAC_OK) {
        xac_err_prefix(err, "resource %s", c->base.conf->name);
        return XAER_INVAL;
    }
    size_t j = 0;
    out[j++] = '\'';
    for (const char *p = gid; *p != '\0' && j + 3 < outlen; p++) {
        if (*p == '\'')
            out[j++] = '\'';
        out[j++] = *p;
    }
    out[j++] = '\'';
    out[j] = '\0';
    return XA_OK;
}

static bool pg_own(const drv_odbc_conn *c, const xac_xid *xid)
{
    return c->branch_active && xac_xid_equal(&c->branch_xid, xid);
}

static int pg_not_own(drv_odbc_conn *c, const xac_xid *xid, const char *what, xac_err *err)
{
    char t[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, t);
    xac_err_setr(err, drv_xa_to_code(XAER_NOTA), c->base.conf->name,
                 "%s on resource %s: branch %s is not the connection's active branch", what,
                 c->base.conf->name, t);
    return XAER_NOTA;
}

static int pg_busy(drv_odbc_conn *c, const char *what, xac_err *err)
{
    char t[XAC_XID_TEXT_MAX];
    xac_xid_format(&c->branch_xid, t);
    xac_err_setr(err, drv_xa_to_code(XAER_PROTO), c->base.conf->name,
                 "%s on resource %s: the connection is still working on branch %s", what,
                 c->base.conf->name, t);
    return XAER_PROTO;
}

/* Ends the connection's own transaction by rollback, for cleanup: the caller
 * already has the error to report. */
static void pg_abandon(drv_odbc_conn *c)
{
    xac_err e;
    xac_err_clear(&e);
    if (!c->base.broken)
        drv_odbc_end_tran(c, false, DRV_STEP_ROLLBACK, "ROLLBACK", &e);
    drv_odbc_branch_clear(c);
}

/* Runs a statement that must not be inside a transaction block (COMMIT
 * PREPARED, ...) with autocommit on, then returns to the waiting state. */
static int pg_run_alone(drv_odbc_conn *c, const char *sql, xac_rows *rows, drv_step step,
                        const char *what, xac_err *err)
{
    return drv_odbc_query_alone(c, sql, strlen(sql), NULL, 0, rows, step, what, err);
}

static int pg_setup(drv_odbc_conn *c, xac_err *err)
{
    return drv_odbc_set_autocommit(c, false, err);
}

static int pg_start(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    if (c->branch_active)
        return pg_busy(c, "starting a branch", err);
    /* psqlodbc opens the transaction with the first statement. */
    int rc = drv_odbc_set_autocommit(c, false, err);
    if (rc != XA_OK)
        return rc;
    drv_odbc_branch_clear(c);
    c->branch_active = true;
    c->branch_xid = *xid;
    return XA_OK;
}

static int pg_end(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    if (!pg_own(c, xid))
        return pg_not_own(c, xid, "ending a branch", err);
    c->branch_ended = true;
    return XA_OK;
}

/* The rollback code for a transaction PostgreSQL refused to prepare or
 * commit: it is gone either way. */
static int pg_rb_code(const drv_odbc_diag *d)
{
    if (strncmp(d->sqlstate, "23", 2) == 0)
        return XA_RBINTEGRITY;
    if (strcmp(d->sqlstate, "40P01") == 0)
        return XA_RBDEADLOCK;
    if (strcmp(d->sqlstate, "40001") == 0)
        return XA_RBTRANSIENT;
    return XA_RBROLLBACK;
}

static int pg_prepare(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    if (!pg_own(c, xid))
        return pg_not_own(c, xid, "PREPARE TRANSACTION", err);
    if (c->branch_failed) {
        /* PREPARE TRANSACTION would roll back silently: say so instead. */
        xac_err_setr(err, drv_xa_to_code(XA_RBROLLBACK), c->base.conf->name,
                     "PREPARE TRANSACTION on resource %s: the branch was rolled back because a "
                     "statement in it failed: %s",
                     c->base.conf->name, c->branch_error);
        pg_abandon(c);
        return XA_RBROLLBACK;
    }
    if (!c->branch_work) {
        /* No statement, no transaction: nothing to prepare or commit. */
        drv_odbc_branch_clear(c);
        return XA_RDONLY;
    }
    char sql[64 + 2 * XAC_PG_GID_MAX];
    int n = snprintf(sql, sizeof sql, "PREPARE TRANSACTION ");
    int rc = pg_gid_literal(c, xid, sql + n, sizeof sql - (size_t)n, err);
    if (rc != XA_OK) {
        pg_abandon(c);
        return rc;
    }
    rc = drv_odbc_run(c, sql, DRV_STEP_PREPARE, "PREPARE TRANSACTION", err);
    if (rc != XA_OK) {
        if (rc != XAER_RMFAIL) {
            rc = pg_rb_code(&c->last_diag);
            err->code = drv_xa_to_code(rc);
        }
        pg_abandon(c);
        return rc;
    }
    drv_odbc_branch_clear(c);
    /* psqlodbc still believes a transaction is open; this COMMIT only resets
     * it (the server answers with a warning). The branch is prepared already,
     * so a failure here only costs the connection. */
    xac_err e2;
    xac_err_clear(&e2);
    if (drv_odbc_end_tran(c, true, DRV_STEP_PREPARE, "resetting after PREPARE TRANSACTION", &e2) !=
        XA_OK)
        xac_logw("%s", e2.msg);
    return XA_OK;
}

static int pg_commit(drv_odbc_conn *c, const xac_xid *xid, bool one_phase, xac_err *err)
{
    if (one_phase) {
        if (!pg_own(c, xid))
            return pg_not_own(c, xid, "one-phase COMMIT", err);
        if (c->branch_failed) {
            xac_err_setr(err, drv_xa_to_code(XA_RBROLLBACK), c->base.conf->name,
                         "COMMIT on resource %s: the branch was rolled back because a statement "
                         "in it failed: %s",
                         c->base.conf->name, c->branch_error);
            pg_abandon(c);
            return XA_RBROLLBACK;
        }
        int rc = drv_odbc_end_tran(c, true, DRV_STEP_COMMIT, "COMMIT", err);
        if (rc != XA_OK && rc != XAER_RMFAIL) {
            /* A failed COMMIT (a deferred constraint) has rolled back. */
            rc = pg_rb_code(&c->last_diag);
            err->code = drv_xa_to_code(rc);
            pg_abandon(c);
            return rc;
        }
        drv_odbc_branch_clear(c);
        return rc;
    }
    if (c->branch_active)
        return pg_busy(c, "COMMIT PREPARED", err);
    char sql[64 + 2 * XAC_PG_GID_MAX];
    int n = snprintf(sql, sizeof sql, "COMMIT PREPARED ");
    int rc = pg_gid_literal(c, xid, sql + n, sizeof sql - (size_t)n, err);
    if (rc != XA_OK)
        return rc;
    return pg_run_alone(c, sql, NULL, DRV_STEP_COMMIT, "COMMIT PREPARED", err);
}

static int pg_rollback(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    if (pg_own(c, xid)) {
        int rc = drv_odbc_end_tran(c, false, DRV_STEP_ROLLBACK, "ROLLBACK", err);
        drv_odbc_branch_clear(c);
        return rc;
    }
    if (c->branch_active)
        return pg_busy(c, "ROLLBACK PREPARED", err);
    char sql[64 + 2 * XAC_PG_GID_MAX];
    int n = snprintf(sql, sizeof sql, "ROLLBACK PREPARED ");
    int rc = pg_gid_literal(c, xid, sql + n, sizeof sql - (size_t)n, err);
    if (rc != XA_OK)
        return rc;
    return pg_run_alone(c, sql, NULL, DRV_STEP_ROLLBACK, "ROLLBACK PREPARED", err);
}

static int pg_recover(drv_odbc_conn *c, drv_indoubt **out, size_t *n, xac_err *err)
{
    if (c->branch_active)
        return pg_busy(c, "listing prepared transactions", err);
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = pg_run_alone(c,
                          "SELECT gid, extract(epoch from prepared)::bigint FROM "
                          "pg_prepared_xacts WHERE database = current_database()",
                          &rows, DRV_STEP_RECOVER, "listing prepared transactions", err);
    if (rc != XA_OK) {
        xac_rows_free(&rows);
        return rc;
    }
    drv_indoubt *list = calloc(rows.nrows > 0 ? rows.nrows : 1, sizeof *list);
    if (list == NULL) {
        xac_rows_free(&rows);
        xac_err_setr(err, XAC_ENOMEM, c->base.conf->name,
                     "resource %s: out of memory for %zu prepared transactions", c->base.conf->name,
                     rows.nrows);
        return XAER_RMERR;
    }
    for (size_t i = 0; i < rows.nrows; i++) {
        const char *gid = xac_rows_cell(&rows, i, 0, NULL);
        const char *at = xac_rows_cell(&rows, i, 1, NULL);
        drv_indoubt *d = &list[i];
        xac_err e;
        xac_err_clear(&e);
        snprintf(d->raw, sizeof d->raw, "%s", gid != NULL ? gid : "");
        d->decoded = gid != NULL && xac_xid_from_pg_gid(gid, &d->xid, &e) == XAC_OK;
        if (!d->decoded)
            memset(&d->xid, 0, sizeof d->xid);
        d->prepared_at = at != NULL ? strtoll(at, NULL, 10) : 0;
    }
    *out = list;
    *n = rows.nrows;
    xac_rows_free(&rows);
    return XA_OK;
}

static int pg_forget(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    char t[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, t);
    xac_err_setr(err, drv_xa_to_code(XAER_NOTA), c->base.conf->name,
                 "forgetting branch %s on resource %s: PostgreSQL keeps no heuristic outcomes", t,
                 c->base.conf->name);
    return XAER_NOTA;
}

static int pg_map_error(const drv_odbc_diag *d, drv_step step)
{
    if (strcmp(d->sqlstate, "40P01") == 0)
        return XA_RBDEADLOCK;
    if (strcmp(d->sqlstate, "40001") == 0)
        return XA_RBTRANSIENT;
    /* "prepared transaction with identifier ... does not exist" */
    if (strcmp(d->sqlstate, "42704") == 0 && (step == DRV_STEP_COMMIT || step == DRV_STEP_ROLLBACK))
        return XAER_NOTA;
    if (step == DRV_STEP_PREPARE)
        return strncmp(d->sqlstate, "23", 2) == 0 ? XA_RBINTEGRITY : XA_RBROLLBACK;
    return XAER_RMERR;
}

static bool pg_is_conn_loss(const drv_odbc_diag *d)
{
    /* 57P01..57P03: the server is shutting down or cannot take the session. */
    if (strncmp(d->sqlstate, "57P", 3) == 0)
        return true;
    return strstr(d->text, "connection dead") != NULL ||
           strstr(d->text, "server closed the connection") != NULL ||
           strstr(d->text, "no connection to the server") != NULL ||
           strstr(d->text, "could not send data to server") != NULL;
}

static void pg_exec_failed(drv_odbc_conn *c, int rc, const xac_err *err)
{
    (void)rc;
    if (!c->branch_failed) {
        c->branch_failed = true;
        snprintf(c->branch_error, sizeof c->branch_error, "%s", err->msg);
    }
}

const drv_odbc_dialect drv_odbc_postgresql = {
    .name = "postgresql",
    .conn_defaults = PG_CONN_DEFAULTS,
    .socket_key = NULL,
    .read_timeout_key = NULL, /* psqlodbc has none; the statement timeout applies */
    .write_timeout_key = NULL,
    .setup = pg_setup,
    .start = pg_start,
    .end = pg_end,
    .prepare = pg_prepare,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .recover = pg_recover,
    .forget = pg_forget,
    .map_error = pg_map_error,
    .is_conn_loss = pg_is_conn_loss,
    .exec_failed = pg_exec_failed,
};
