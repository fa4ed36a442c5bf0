/* The MySQL/MariaDB dialect of the ODBC driver (MariaDB Connector/ODBC): the
 * server's own XA statements with XIDs written as literals, on a connection
 * that stays in autocommit (MySQL bug #87836 breaks XA COMMIT from another
 * session otherwise). Server error numbers are mapped by the table that the
 * native mysql driver uses too. XA RECOVER alone goes through Connector/C:
 * Connector/ODBC (3.1) runs it but drops its result set. */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odbc_dialect.h"

#define MY_XID_SQL_MAX (64 + 4 * (XAC_GTRID_MAX + XAC_BQUAL_MAX))

/* Runs "<verb> <xid literal><suffix>". */
static int my_xa(drv_odbc_conn *c, const char *verb, const xac_xid *xid, const char *suffix,
                 drv_step step, xac_err *err)
{
    char lit[8 + 2 * (XAC_GTRID_MAX + XAC_BQUAL_MAX) + 32];
    char sql[MY_XID_SQL_MAX];
    if (xac_xid_to_mysql(xid, lit, sizeof lit, err) != XAC_OK) {
        xac_err_prefix(err, "%s on resource %s", verb, c->base.conf->name);
        return XAER_INVAL;
    }
    snprintf(sql, sizeof sql, "%s %s%s", verb, lit, suffix);
    return drv_odbc_run(c, sql, step, verb, err);
}

static bool my_own(const drv_odbc_conn *c, const xac_xid *xid)
{
    return c->branch_active && xac_xid_equal(&c->branch_xid, xid);
}

static int my_setup(drv_odbc_conn *c, xac_err *err)
{
    return drv_odbc_set_autocommit(c, true, err);
}

static int my_start(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = my_xa(c, "XA START", xid, "", DRV_STEP_START, err);
    if (rc == XA_OK) {
        drv_odbc_branch_clear(c);
        c->branch_active = true;
        c->branch_xid = *xid;
    }
    return rc;
}

static int my_end(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = my_xa(c, "XA END", xid, "", DRV_STEP_END, err);
    if (my_own(c, xid) && (rc == XA_OK || XA_IS_RB(rc)))
        c->branch_ended = true;
    return rc;
}

static int my_prepare(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = my_xa(c, "XA PREPARE", xid, "", DRV_STEP_PREPARE, err);
    if (my_own(c, xid) && rc != XAER_NOTA && rc != XAER_PROTO)
        drv_odbc_branch_clear(c); /* prepared or gone: not the session's any more */
    return rc;
}

static int my_commit(drv_odbc_conn *c, const xac_xid *xid, bool one_phase, xac_err *err)
{
    int rc = my_xa(c, "XA COMMIT", xid, one_phase ? " ONE PHASE" : "", DRV_STEP_COMMIT, err);
    if (my_own(c, xid) && rc != XA_RETRY && rc != XAER_PROTO)
        drv_odbc_branch_clear(c);
    return rc;
}

static int my_rollback(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    if (my_own(c, xid) && !c->branch_ended) {
        /* XA ROLLBACK refuses an ACTIVE branch; its failure is not ours to
         * report, XA ROLLBACK says what state the branch is in. */
        xac_err e;
        xac_err_clear(&e);
        int rc = my_xa(c, "XA END", xid, "", DRV_STEP_END, &e);
        if (rc == XAER_RMFAIL && c->base.broken) {
            *err = e;
            drv_odbc_branch_clear(c);
            return rc;
        }
    }
    int rc = my_xa(c, "XA ROLLBACK", xid, "", DRV_STEP_ROLLBACK, err);
    if (my_own(c, xid) && rc != XA_RETRY)
        drv_odbc_branch_clear(c);
    return rc;
}

/* Runs XA RECOVER on a short-lived Connector/C session with the resource's
 * settings and copies the result into rows; sets *maria by the server kind. */
static int my_recover_rows(drv_odbc_conn *c, xac_rows *rows, bool *maria, xac_err *err)
{
    const drv_conf *conf = c->base.conf;
    MYSQL *m = mysql_init(NULL);
    if (m == NULL) {
        xac_err_setr(err, XAC_ENOMEM, conf->name,
                     "XA RECOVER on resource %s: out of memory for a session", conf->name);
        return XAER_RMERR;
    }
    unsigned int ct = (conf->connect_timeout_ms + 999u) / 1000u;
    unsigned int io = (conf->io_timeout_ms + 999u) / 1000u;
    if (ct > 0)
        mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    if (io > 0) {
        mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &io);
        mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &io);
    }
    int rc = XA_OK;
    MYSQL_RES *res = NULL;
    const char *what = "connecting for XA RECOVER";
    if (mysql_real_connect(m, conf->socket[0] ? NULL : conf->host, conf->user, conf->password,
                           conf->database[0] ? conf->database : NULL, (unsigned)conf->port,
                           conf->socket[0] ? conf->socket : NULL, 0) == NULL) {
        rc = XAER_RMFAIL;
        goto fail;
    }
    *maria = strstr(mysql_get_server_info(m), "MariaDB") != NULL;
    const char *sql = *maria ? "XA RECOVER FORMAT='SQL'" : "XA RECOVER CONVERT XID";
    what = "XA RECOVER";
    if (mysql_real_query(m, sql, strlen(sql)) != 0 || (res = mysql_store_result(m)) == NULL) {
        unsigned e = mysql_errno(m);
        rc = drv_mysql_errno_is_connection_loss(e) ? XAER_RMFAIL
                                                   : drv_mysql_errno_to_xa(e, DRV_STEP_RECOVER);
        if (rc == XA_OK)
            rc = XAER_RMERR;
        goto fail;
    }
    unsigned nf = mysql_num_fields(res);
    MYSQL_FIELD *f = mysql_fetch_fields(res);
    const char *names[8];
    const char *vals[8];
    size_t lens[8];
    if (nf > 8)
        nf = 8;
    for (unsigned i = 0; i < nf; i++)
        names[i] = f[i].name;
    if (xac_rows_set_cols(rows, nf, names, err) != XAC_OK) {
        rc = XAER_RMERR;
        goto out;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned long *l = mysql_fetch_lengths(res);
        for (unsigned i = 0; i < nf; i++) {
            vals[i] = row[i];
            lens[i] = l[i];
        }
        if (xac_rows_add(rows, vals, lens, err) != XAC_OK) {
            rc = XAER_RMERR;
            goto out;
        }
    }
    goto out;
fail:
    if (rc == XAER_RMFAIL)
        c->base.broken = true;
    xac_err_setr(err, drv_xa_to_code(rc), conf->name,
                 "%s on resource %s failed (%s): MySQL error %u: %s", what, conf->name,
                 drv_xa_name(rc), mysql_errno(m), mysql_error(m));
out:
    if (res != NULL)
        mysql_free_result(res);
    mysql_close(m);
    return rc;
}

/* One row of XA RECOVER CONVERT XID (MySQL 8): data is 0x<hex of gtrid+bqual>. */
static int my_decode_mysql_row(const xac_rows *rows, size_t i, xac_xid *x, xac_err *err)
{
    const char *fid = xac_rows_cell(rows, i, 0, NULL);
    const char *gl = xac_rows_cell(rows, i, 1, NULL);
    const char *bl = xac_rows_cell(rows, i, 2, NULL);
    const char *data = xac_rows_cell(rows, i, 3, NULL);
    uint8_t raw[XAC_GTRID_MAX + XAC_BQUAL_MAX];
    size_t rawlen = 0;
    if (fid == NULL || gl == NULL || bl == NULL || data == NULL)
        return xac_err_set(err, XAC_EINTERNAL, "XA RECOVER returned NULL columns");
    if (data[0] == '0' && (data[1] == 'x' || data[1] == 'X'))
        data += 2;
    long g = strtol(gl, NULL, 10), b = strtol(bl, NULL, 10);
    if (xac_hex_decode(data, strlen(data), raw, sizeof raw, &rawlen) != 0 || g < 0 || b < 0 ||
        (size_t)(g + b) != rawlen)
        return xac_err_set(err, XAC_EINTERNAL, "XA RECOVER returned an undecodable XID \"%s\"",
                           data);
    return xac_xid_set(x, (int32_t)strtol(fid, NULL, 10), raw, (size_t)g, raw + g, (size_t)b, err);
}

static int my_recover(drv_odbc_conn *c, drv_indoubt **out, size_t *n, xac_err *err)
{
    bool maria = false;
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = my_recover_rows(c, &rows, &maria, err);
    if (rc != XA_OK) {
        xac_rows_free(&rows);
        return rc;
    }
    if (rows.ncols < 4) {
        xac_err_setr(err, XAC_EINTERNAL, c->base.conf->name,
                     "XA RECOVER on resource %s returned %zu columns, expected 4",
                     c->base.conf->name, rows.ncols);
        xac_rows_free(&rows);
        return XAER_RMERR;
    }
    drv_indoubt *list = calloc(rows.nrows > 0 ? rows.nrows : 1, sizeof *list);
    if (list == NULL) {
        xac_rows_free(&rows);
        xac_err_setr(err, XAC_ENOMEM, c->base.conf->name,
                     "resource %s: out of memory for %zu prepared branches", c->base.conf->name,
                     rows.nrows);
        return XAER_RMERR;
    }
    size_t k = 0;
    for (size_t i = 0; i < rows.nrows; i++) {
        xac_err e;
        xac_err_clear(&e);
        int st;
        if (maria) {
            const char *text = xac_rows_cell(&rows, i, 3, NULL);
            st = text != NULL ? xac_xid_parse(text, &list[k].xid, &e)
                              : xac_err_set(&e, XAC_EINTERNAL, "NULL XID");
        } else {
            st = my_decode_mysql_row(&rows, i, &list[k].xid, &e);
        }
        if (st != XAC_OK) {
            /* Every XID MySQL holds fits an XID; this is a bug, not a branch to drop. */
            xac_logw("resource %s: skipping a prepared branch that XA RECOVER listed: %s",
                     c->base.conf->name, e.msg);
            continue;
        }
        list[k].decoded = true;
        list[k].raw[0] = '\0';
        list[k].prepared_at = 0;
        k++;
    }
    xac_rows_free(&rows);
    *out = list;
    *n = k;
    return XA_OK;
}

static int my_forget(drv_odbc_conn *c, const xac_xid *xid, xac_err *err)
{
    char t[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, t);
    xac_err_setr(err, drv_xa_to_code(XAER_NOTA), c->base.conf->name,
                 "forgetting branch %s on resource %s: MySQL keeps no heuristic outcomes", t,
                 c->base.conf->name);
    return XAER_NOTA;
}

static int my_map_error(const drv_odbc_diag *d, drv_step step)
{
    if (d->native <= 0)
        return XAER_RMERR; /* the ODBC driver's own error, not the server's */
    return drv_mysql_errno_to_xa((unsigned)d->native, step);
}

static bool my_is_conn_loss(const drv_odbc_diag *d)
{
    return d->native > 0 && drv_mysql_errno_is_connection_loss((unsigned)d->native);
}

/* Offset of a ';' that has anything but blanks after it, outside '..', ".."
 * and `..` quotes, or len when there is none. backslash says whether a
 * backslash escapes inside quotes (it does unless NO_BACKSLASH_ESCAPES). An
 * unterminated quote counts as a second statement at its start. Comments
 * are not skipped: "SELECT 1; -- x" counts as two, which only errs on the
 * side of refusing. */
static size_t my_second_statement(const char *s, size_t len, bool backslash)
{
    for (size_t i = 0; i < len; i++) {
        char q = s[i];
        if (q == '\'' || q == '"' || q == '`') {
            size_t open = i;
            for (i++; i < len && s[i] != q; i++)
                if (backslash && q != '`' && s[i] == '\\')
                    i++;
            if (i >= len)
                return open;
        } else if (q == ';') {
            for (size_t j = i + 1; j < len; j++)
                if (s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '\r')
                    return i;
        }
    }
    return len;
}

/* MariaDB itself refuses COMMIT inside an XA branch, but Connector/ODBC
 * 3.1 splits a multi-statement string on the client and was seen to leave
 * its connection locked after a failed one, hanging the next call on that
 * connection. So a second statement never reaches it. */
static int my_check_sql(drv_odbc_conn *c, const char *sql, size_t len, const xac_value *params,
                        size_t nparams, xac_err *err)
{
    (void)params;
    (void)nparams;
    size_t a = my_second_statement(sql, len, true);
    size_t b = my_second_statement(sql, len, false);
    size_t at = a < b ? a : b;
    if (at == len)
        return XA_OK;
    xac_err_setr(err, drv_xa_to_code(XAER_RMERR), c->base.conf->name,
                 "resource %s: one statement per EXEC: a ';' at byte %zu is followed by more SQL "
                 "(or a quote is not closed); bind values with '?' rather than quoting them",
                 c->base.conf->name, at + 1);
    return XAER_RMERR;
}

const drv_odbc_dialect drv_odbc_mysql = {
    .name = "mysql",
    .conn_defaults = NULL,
    .socket_key = "SOCKET",
    .read_timeout_key = "READ_TIMEOUT",
    .write_timeout_key = "WRITE_TIMEOUT",
    .setup = my_setup,
    .start = my_start,
    .end = my_end,
    .prepare = my_prepare,
    .commit = my_commit,
    .rollback = my_rollback,
    .recover = my_recover,
    .forget = my_forget,
    .map_error = my_map_error,
    .is_conn_loss = my_is_conn_loss,
    .exec_failed = NULL,
    .check_sql = my_check_sql,
};
