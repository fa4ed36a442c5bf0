/* The PostgreSQL dialect of the ODBC driver (psqlodbc). PostgreSQL has no XA
 * START: a branch is the connection's local transaction (autocommit off),
 * PREPARE TRANSACTION turns it into a prepared one named by a gid that encodes
 * the XID, and COMMIT/ROLLBACK PREPARED finish it from any connection. Between
 * branches a connection waits with autocommit off and no transaction open.
 * Inside a branch, statements that would end the transaction themselves
 * (COMMIT, a second statement after ';') are refused before they are sent. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odbc_dialect.h"

/* Statement-level rollback (psqlodbc's default, "7.4-2") would hide that
 * PostgreSQL aborts the whole transaction on an error, and costs a SAVEPOINT
 * per statement; "-0" leaves the transaction as the server has it. Driver
 * logging (odbcinst.ini may turn it on) would slow every statement.
 * UseServerSidePrepare=0: psqlodbc puts the parameters into the text itself
 * (quoted and escaped) and sends one simple query, with the BEGIN of a new
 * transaction in the same message. Server-side prepare costs a Parse, a
 * Describe and a Bind/Execute round trip per statement plus a
 * SAVEPOINT/DEALLOCATE/RELEASE when the statement is freed: six round trips
 * for a one-statement transaction instead of two. UseDeclareFetch=0: results
 * come whole, not through a cursor fetched in pieces. Parse=0: no catalog
 * queries to describe result columns. These two are psqlodbc's defaults,
 * spelled out because odbcinst.ini may change them. */
#define PG_CONN_DEFAULTS                                                                           \
    "Protocol=7.4-0;Debug=0;CommLog=0;UseServerSidePrepare=0;UseDeclareFetch=0;Parse=0;"

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

/* psqlodbc still believes a transaction is open after PREPARE TRANSACTION;
 * this COMMIT only resets it (the server answers with a warning). The branch
 * is prepared already, so a failure here only costs the connection. */
static void pg_reset_after_prepare(drv_odbc_conn *c)
{
    drv_odbc_branch_clear(c);
    xac_err e2;
    xac_err_clear(&e2);
    if (drv_odbc_end_tran(c, true, DRV_STEP_PREPARE, "resetting after PREPARE TRANSACTION", &e2) !=
        XA_OK)
        xac_logw("%s", e2.msg);
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
    pg_reset_after_prepare(c);
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
    /* "prepared transaction with identifier ... is busy": another backend is
     * finishing it right now, typically the one of an xacd that was killed
     * mid-COMMIT PREPARED. Not a refusal: ask again later (as mysql.c does
     * for a branch still attached to a session). */
    if (strcmp(d->sqlstate, "55000") == 0 && (step == DRV_STEP_COMMIT || step == DRV_STEP_ROLLBACK))
        return XA_RETRY;
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

/* ------------------------------------------------ statements in a branch */

/* psqlodbc runs every statement of a string and passes COMMIT through, so a
 * branch could end before xacd decides. The scanner follows PostgreSQL's
 * lexer just far enough to find where statements end. */

static bool pg_blank(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static bool pg_ident_start(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' || ch >= 0x80;
}

static bool pg_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Skips blanks and comments from i. Returns SIZE_MAX when a block comment
 * is not closed (*open: where it opens). nested: PostgreSQL's nesting. */
static size_t pg_skip_space(const char *s, size_t n, size_t i, bool nested, size_t *open)
{
    while (i < n) {
        if (pg_blank((unsigned char)s[i])) {
            i++;
        } else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
            while (i < n && s[i] != '\n' && s[i] != '\r')
                i++;
        } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
            size_t start = i, depth = 1;
            i += 2;
            while (i < n && depth > 0) {
                if (nested && s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
                    depth--;
                    i += 2;
                } else {
                    i++;
                }
            }
            if (depth > 0) {
                *open = start;
                return SIZE_MAX;
            }
        } else {
            break;
        }
    }
    return i;
}

/* The end of a run quoted by q opening at s[i]: a doubled q stands for
 * itself; with backslash, a backslash escapes the next byte. SIZE_MAX when
 * it is not closed. */
static size_t pg_skip_quoted(const char *s, size_t n, size_t i, char q, bool backslash)
{
    for (i++; i < n; i++) {
        if (backslash && s[i] == '\\')
            i++;
        else if (s[i] == q && i + 1 < n && s[i + 1] == q)
            i++;
        else if (s[i] == q)
            return i + 1;
    }
    return SIZE_MAX;
}

/* The end of a dollar quote whose opening tag is s[i..i+taglen), or
 * SIZE_MAX. PostgreSQL's lexer also ends it at the first copy of the tag. */
static size_t pg_skip_dollar(const char *s, size_t n, size_t i, size_t taglen)
{
    size_t from = i + taglen;
    const char *close = memmem(s + from, n - from, s + i, taglen);
    return close != NULL ? (size_t)(close - s) + taglen : SIZE_MAX;
}

enum { PG_SCAN_ONE, PG_SCAN_SECOND, PG_SCAN_OPEN };

/* Looks for a top-level ';' followed by more than blanks and comments
 * (PG_SCAN_SECOND, *at: the ';') and for a quote or comment left open
 * (PG_SCAN_OPEN, *at: where it opens). std_strings: '...' as with
 * standard_conforming_strings on; nested: block comments nest. */
static int pg_scan(const char *s, size_t n, bool std_strings, bool nested, size_t *at)
{
    size_t i = 0;
    bool ended = false;
    for (;;) {
        size_t open = 0;
        i = pg_skip_space(s, n, i, nested, &open);
        if (i == SIZE_MAX) {
            *at = open;
            return PG_SCAN_OPEN;
        }
        if (i >= n)
            return PG_SCAN_ONE;
        if (ended)
            return PG_SCAN_SECOND;
        unsigned char ch = (unsigned char)s[i];
        size_t start = i;
        if (ch == ';') {
            ended = true;
            *at = i++;
            continue;
        }
        if ((ch == 'E' || ch == 'e') && i + 1 < n && s[i + 1] == '\'') {
            i = pg_skip_quoted(s, n, i + 1, '\'', true);
        } else if (ch == '\'') {
            i = pg_skip_quoted(s, n, i, '\'', !std_strings);
        } else if (ch == '"') {
            i = pg_skip_quoted(s, n, i, '"', false);
        } else if (ch == '$' && i + 1 < n && pg_digit((unsigned char)s[i + 1])) {
            for (i++; i < n && pg_digit((unsigned char)s[i]); i++) /* a parameter, $1 */
                ;
        } else if (ch == '$') {
            size_t j = i + 1;
            if (j < n && pg_ident_start((unsigned char)s[j]))
                while (j < n &&
                       (pg_ident_start((unsigned char)s[j]) || pg_digit((unsigned char)s[j])))
                    j++;
            if (j < n && s[j] == '$')
                i = pg_skip_dollar(s, n, i, j + 1 - i);
            else
                i++; /* a '$' that opens nothing */
        } else if (pg_ident_start(ch)) {
            /* Identifiers may hold '$': "a$$" opens no dollar quote. */
            while (i < n && (pg_ident_start((unsigned char)s[i]) || pg_digit((unsigned char)s[i]) ||
                             s[i] == '$'))
                i++;
        } else {
            i++;
        }
        if (i == SIZE_MAX) {
            *at = start;
            return PG_SCAN_OPEN;
        }
    }
}

/* Reads the keyword at s[i] (letters only) into kw, upper-cased; returns the
 * index after it. */
static size_t pg_keyword(const char *s, size_t n, size_t i, char *kw, size_t kwmax)
{
    size_t k = 0;
    while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) {
        if (k + 1 < kwmax)
            kw[k++] = (char)(s[i] >= 'a' ? s[i] - 'a' + 'A' : s[i]);
        i++;
    }
    kw[k] = '\0';
    return i;
}

/* The next keyword after blanks and comments, or "" (at end, or no letter). */
static size_t pg_next_keyword(const char *s, size_t n, size_t i, char *kw, size_t kwmax)
{
    size_t open = 0;
    i = pg_skip_space(s, n, i, true, &open);
    if (i == SIZE_MAX) {
        kw[0] = '\0';
        return n;
    }
    return pg_keyword(s, n, i, kw, kwmax);
}

/* The transaction-control statement sql starts with, or NULL. ROLLBACK TO
 * [SAVEPOINT] stays inside the branch, and so do SAVEPOINT and RELEASE. */
static const char *pg_tx_control(const char *s, size_t n)
{
    static const char *const verbs[] = {"COMMIT", "END", "ROLLBACK", "ABORT", "BEGIN", "START"};
    char kw[16], kw2[16];
    size_t open = 0;
    size_t i = pg_skip_space(s, n, 0, true, &open);
    if (i == SIZE_MAX)
        return NULL; /* only a comment: nothing runs */
    i = pg_keyword(s, n, i, kw, sizeof kw);
    if (strcmp(kw, "PREPARE") == 0) {
        pg_next_keyword(s, n, i, kw2, sizeof kw2);
        return strcmp(kw2, "TRANSACTION") == 0 ? "PREPARE TRANSACTION" : NULL;
    }
    for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++) {
        if (strcmp(kw, verbs[v]) != 0)
            continue;
        if (strcmp(kw, "ROLLBACK") == 0) {
            i = pg_next_keyword(s, n, i, kw2, sizeof kw2);
            if (strcmp(kw2, "WORK") == 0 || strcmp(kw2, "TRANSACTION") == 0)
                pg_next_keyword(s, n, i, kw2, sizeof kw2);
            if (strcmp(kw2, "TO") == 0)
                return NULL;
        }
        return verbs[v];
    }
    return NULL;
}

static int pg_refuse(drv_odbc_conn *c, xac_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int pg_refuse(drv_odbc_conn *c, xac_err *err, const char *fmt, ...)
{
    char msg[XAC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    xac_err_setr(err, drv_xa_to_code(XAER_RMERR), c->base.conf->name, "resource %s: %s",
                 c->base.conf->name, msg);
    return XAER_RMERR;
}

static int pg_check_sql(drv_odbc_conn *c, const char *sql, size_t len, const xac_value *params,
                        size_t nparams, xac_err *err)
{
    const char *nul = len > 0 ? memchr(sql, '\0', len) : NULL;
    if (nul != NULL)
        return pg_refuse(c, err,
                         "the statement holds a NUL byte at byte %zu; PostgreSQL would cut it "
                         "short there",
                         (size_t)(nul - sql) + 1);
    /* The server's reading must find one statement. psqlodbc's reading, or
     * the server's with standard_conforming_strings off, may differ on
     * backslashes and nested comments: none of them may find a second. */
    size_t at = 0;
    int r = pg_scan(sql, len, true, true, &at);
    if (r == PG_SCAN_OPEN)
        return pg_refuse(c, err,
                         "a quote or comment opened at byte %zu is not closed; refused because "
                         "where the statement ends cannot be told",
                         at + 1);
    if (r == PG_SCAN_SECOND)
        return pg_refuse(c, err,
                         "one statement per EXEC: found a second statement after ';' at byte %zu",
                         at + 1);
    /* Even when the other reading finds a quote left open, the part before
     * it could run as statements of its own. */
    for (int mode = 0; mode < 3; mode++)
        if (pg_scan(sql, len, mode == 1, mode == 2, &at) == PG_SCAN_SECOND)
            return pg_refuse(c, err,
                             "one statement per EXEC: the ';' at byte %zu would end the statement "
                             "if a backslash escaped a quote (standard_conforming_strings off) or "
                             "block comments did not nest; write backslashes in E'...' strings "
                             "(E'\\\\') and keep comments simple",
                             at + 1);
    const char *verb = pg_tx_control(sql, len);
    if (verb != NULL)
        return pg_refuse(c, err,
                         "transaction control (%s) is not allowed inside an xac transaction; "
                         "xacd commits and rolls back branches itself",
                         verb);
    for (size_t i = 0; i < nparams; i++) {
        const xac_value *v = &params[i];
        const char *z = v->type == XAC_T_TEXT && v->s != NULL ? memchr(v->s, '\0', v->len) : NULL;
        if (z != NULL)
            return pg_refuse(c, err,
                             "TEXT parameter %zu holds a NUL byte at byte %zu, which PostgreSQL "
                             "text cannot store; send it as BLOB (bytea)",
                             i + 1, (size_t)(z - v->s) + 1);
    }
    return XA_OK;
}

/* Runs the statement with tail ("\n; <command>") after it as one simple
 * query: psqlodbc puts the BEGIN of a fresh branch in front, and the newline
 * ends a line comment the statement may close with. The server stops at the
 * first error, and psqlodbc reports an error of either part at execute, so a
 * refused command (a deferred constraint) comes back as the statement's
 * failure, named "<statement> with <command>" (what). false: nothing was
 * sent (out of memory). *more: the results that followed the statement's,
 * -1 when the statement ran and its command's answer is missing. */
static bool pg_run_with(drv_odbc_conn *c, const char *sql, size_t len, const xac_value *params,
                        size_t nparams, xac_rows *rows, const char *tail, const char *command,
                        char what[DRV_ODBC_WHAT_MAX + 32], int *rc, int *more, xac_err *err)
{
    size_t tl = strlen(tail);
    char *q = malloc(len + tl);
    if (q == NULL)
        return false;
    memcpy(q, sql, len);
    memcpy(q + len, tail, tl);
    char name[DRV_ODBC_WHAT_MAX];
    drv_odbc_what(sql, len, name);
    snprintf(what, DRV_ODBC_WHAT_MAX + 32, "%s with %s", name, command);
    c->branch_work = true;
    *more = 0;
    *rc =
        drv_odbc_query_more(c, q, len + tl, params, nparams, rows, DRV_STEP_EXEC, what, more, err);
    free(q);
    if (*rc == XA_OK && *more != 1) {
        /* Cannot happen: the statement ran, and the command not. */
        *rc = XAER_RMERR;
        *more = -1;
        xac_err_setr(err, drv_xa_to_code(*rc), c->base.conf->name,
                     "resource %s: %s: the server answered %d result(s) after the statement, "
                     "expected %s's alone",
                     c->base.conf->name, what, *more, command);
    }
    return true;
}

/* The branch's last statement and its PREPARE TRANSACTION in one round trip
 * (pg_run_with). A failure is the statement's, a rolled-back branch, and
 * only a lost link leaves a branch that may be prepared. */
static int pg_exec_prepare(drv_odbc_conn *c, const xac_xid *xid, const char *sql, size_t len,
                           const xac_value *params, size_t nparams, xac_rows *rows,
                           drv_prepare_at *at, xac_err *err)
{
    char tail[64 + 2 * XAC_PG_GID_MAX];
    int n = snprintf(tail, sizeof tail, "\n; PREPARE TRANSACTION ");
    xac_err e;
    if (pg_gid_literal(c, xid, tail + n, sizeof tail - (size_t)n, &e) != XA_OK)
        return XA_OK;
    char what[DRV_ODBC_WHAT_MAX + 32];
    int rc = XA_OK, more = 0;
    *at = DRV_PREPARE_EXEC;
    if (!pg_run_with(c, sql, len, params, nparams, rows, tail, "PREPARE TRANSACTION", what, &rc,
                     &more, err)) {
        *at = DRV_PREPARE_NOT_SENT;
        return XA_OK;
    }
    if (rc == XA_OK || rc == XAER_RMFAIL) {
        *at = DRV_PREPARE_VOTE;
        if (rc == XA_OK)
            pg_reset_after_prepare(c);
        else
            pg_abandon(c);
        return rc;
    }
    pg_exec_failed(c, rc, err);
    return rc;
}

/* A fresh branch's only statement with its COMMIT in one round trip
 * (pg_run_with): "BEGIN; <statement>; COMMIT" is a plain local transaction,
 * and a branch that will never be prepared needs nothing more. A failure of
 * either part has rolled everything back and is the statement's, as
 * drv_exec gives it (the branch is then failed and its rollback asks the
 * server nothing it does not have). A link lost after the query went out
 * answers XAER_RMFAIL at COMMIT: the outcome is unknown. */
static int pg_exec_one_phase(drv_odbc_conn *c, const xac_xid *xid, const char *sql, size_t len,
                             const xac_value *params, size_t nparams, xac_rows *rows,
                             drv_onephase_at *at, xac_err *err)
{
    if (c->branch_work)
        return XA_OK; /* a statement already ran: BEGIN is not ours to send */
    (void)xid;
    char what[DRV_ODBC_WHAT_MAX + 32];
    int rc = XA_OK, more = 0;
    *at = DRV_ONEPHASE_EXEC;
    if (!pg_run_with(c, sql, len, params, nparams, rows, "\n; COMMIT", "COMMIT", what, &rc, &more,
                     err)) {
        *at = DRV_ONEPHASE_NOT_SENT;
        return XA_OK;
    }
    if (rc == XA_OK) {
        *at = DRV_ONEPHASE_COMMIT;
        pg_reset_after_prepare(c); /* the server is out of the transaction */
        return rc;
    }
    if (rc == XAER_RMFAIL || more < 0) {
        /* The COMMIT may have been carried out: nobody can say here. */
        *at = DRV_ONEPHASE_COMMIT;
        err->code = drv_xa_to_code(XAER_RMFAIL);
        pg_abandon(c);
        return XAER_RMFAIL;
    }
    pg_exec_failed(c, rc, err);
    return rc;
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
    .check_sql = pg_check_sql,
    .exec_prepare = pg_exec_prepare,
    .exec_one_phase = pg_exec_one_phase,
};
