/* The commit-marker table that makes SQL Server a last resource: lrc_commit
 * inserts a row 'C' for the gtrid and commits it in the same local
 * transaction as the work, so the row exists exactly when the commit
 * happened; recovery looks the row up (lrc_marker) and, finding none, fences
 * the gtrid with a row 'R' so that a commit still in flight fails on the
 * duplicate key instead of committing after recovery decided to abort; the
 * markers of finished transactions are removed in batches (lrc_forget).
 * The table is created at open when missing. Gtrids go into this SQL as
 * literals, so each one is checked against drv_mssql_valid_gtrid first. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mssql_internal.h"

#define MS_DEFAULT_TABLE "xac_commit_marker"
#define MS_FORGET_BATCH  100

/* Marker tables known to exist: "host:port/database/table". */
#define MS_TABLES_MAX 64
static pthread_mutex_t ms_tables_mu = PTHREAD_MUTEX_INITIALIZER;
static char ms_tables[MS_TABLES_MAX][sizeof(((drv_conf *)0)->host) + 300];
static size_t ms_ntables;

/* ------------------------------------------------------------ the table */

static const char *ms_table(const drv_conf *cf)
{
    return cf->marker_table[0] != '\0' ? cf->marker_table : MS_DEFAULT_TABLE;
}

static void ms_key(const drv_conf *cf, char *out, size_t n)
{
    snprintf(out, n, "%s:%d/%s/%s", cf->host, ms_port(cf), cf->database, ms_table(cf));
}

int ms_marker_ensure_table(ms_conn *c, xac_err *err)
{
    const drv_conf *cf = c->base.conf;
    char key[sizeof ms_tables[0]];
    ms_key(cf, key, sizeof key);
    pthread_mutex_lock(&ms_tables_mu);
    bool known = false;
    for (size_t i = 0; i < ms_ntables && !known; i++)
        known = strcmp(ms_tables[i], key) == 0;
    pthread_mutex_unlock(&ms_tables_mu);
    if (known)
        return XA_OK;
    const char *t = ms_table(cf);
    char sql[512];
    snprintf(sql, sizeof sql,
             "IF OBJECT_ID(N'%s', N'U') IS NULL CREATE TABLE %s (gtrid VARCHAR(128) NOT NULL "
             "PRIMARY KEY, outcome CHAR(1) NOT NULL, created_unix BIGINT NOT NULL)",
             t, t);
    char what[128];
    snprintf(what, sizeof what, "creating the marker table %s", t);
    /* As a statement, not a login step: an error leaves the connection
     * usable for the check below. */
    int rc = ms_batch(c, DRV_STEP_EXEC, what, sql, NULL, err);
    if (rc != XA_OK && !c->base.broken) {
        /* Another connection may have created it at the same moment. */
        xac_err e2;
        xac_err_clear(&e2);
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s WHERE 1 = 0", t);
        if (ms_batch(c, DRV_STEP_EXEC, what, sql, NULL, &e2) == XA_OK) {
            xac_err_clear(err);
            rc = XA_OK;
        }
    }
    if (rc != XA_OK)
        return rc;
    pthread_mutex_lock(&ms_tables_mu);
    if (ms_ntables < MS_TABLES_MAX)
        snprintf(ms_tables[ms_ntables++], sizeof ms_tables[0], "%s", key);
    pthread_mutex_unlock(&ms_tables_mu);
    return XA_OK;
}

bool drv_mssql_valid_gtrid(const char *s, bool empty_ok)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok || n >= XAC_GTRID_MAX)
            return false;
    }
    return n > 0 || empty_ok;
}

/* ------------------------------------------------------------ lrc_* */

static int ms_bad_gtrid(ms_conn *c, const char *what, const char *gtrid, xac_err *err)
{
    xac_err_setr(err, XAC_EINVAL, ms_rname(c),
                 "resource %s: %s: gtrid \"%.80s\" is not 1 to %d characters of A-Z a-z 0-9 . _ -",
                 ms_rname(c), what, gtrid != NULL ? gtrid : "(null)", XAC_GTRID_MAX);
    return XAER_INVAL;
}

static bool ms_is_dup(const ms_conn *c)
{
    return !c->base.broken && (c->diag.msgno == 2627 || c->diag.msgno == 2601);
}

/* Inserts gtrid's row with outcome 'C' (the commit marker) or 'R' (the
 * fence); a row already there fails with a duplicate key (ms_is_dup). */
static int ms_marker_insert(ms_conn *c, const char *gtrid, char outcome, const char *what,
                            xac_err *err)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (gtrid, outcome, created_unix) VALUES ('%s', '%c', %" PRId64 ")",
             ms_table(c->base.conf), gtrid, outcome, (int64_t)time(NULL));
    return ms_batch(c, DRV_STEP_EXEC, what, sql, NULL, err);
}

int ms_lrc_commit(drv_conn *dc, const char *gtrid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (!drv_mssql_valid_gtrid(gtrid, false))
        return ms_bad_gtrid(c, "commit", gtrid, err);
    if (c->state == MS_RBONLY)
        return ms_rb_finish(c, "commit", err);
    if (c->state != MS_ACTIVE) {
        xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                     "resource %s: commit of %s: the connection has no local transaction open",
                     ms_rname(c), gtrid);
        return XAER_PROTO;
    }
    /* The marker and the COMMIT go in two batches: SQL Server carries on
     * with a batch after a statement error such as 2627, so a COMMIT in the
     * same batch would commit the work without its marker. */
    xac_err e1;
    xac_err_clear(&e1);
    int rc = ms_marker_insert(c, gtrid, 'C', "commit marker insert", &e1);
    if (rc != XA_OK) {
        if (c->base.broken) {
            if (err != NULL)
                *err = e1;
            return XAER_RMFAIL;
        }
        bool fenced = ms_is_dup(c);
        ms_local_drop(c);
        if (fenced) {
            xac_err_setr(err, XAC_EROLLBACK, ms_rname(c),
                         "resource %s: commit of %s refused: recovery fenced the transaction "
                         "(its abort marker is in %s: %s); the local transaction is rolled back",
                         ms_rname(c), gtrid, ms_table(c->base.conf), ms_tail(c, e1.msg));
            return XA_RBROLLBACK;
        }
        xac_err_setr(err, XAC_EROLLBACK, ms_rname(c),
                     "resource %s: commit of %s: %s; the local transaction is rolled back",
                     ms_rname(c), gtrid, ms_tail(c, e1.msg));
        return XA_IS_RB(rc) ? rc : XA_RBROLLBACK;
    }
    rc = ms_batch(c, DRV_STEP_COMMIT, "COMMIT TRANSACTION", "COMMIT TRANSACTION", NULL, err);
    if (rc == XA_OK) {
        c->state = MS_NONE;
        return XA_OK;
    }
    if (c->base.broken)
        return XAER_RMFAIL; /* the outcome is unknown: the marker tells */
    ms_local_drop(c);
    if (err != NULL)
        err->code = XAC_EROLLBACK;
    return XA_IS_RB(rc) ? rc : XA_RBROLLBACK;
}

/* SELECT outcome for gtrid: *found false when there is no row. */
static int ms_marker_select(ms_conn *c, const char *gtrid, bool *found, drv_marker *out,
                            xac_err *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT outcome FROM %s WHERE gtrid = '%s'", ms_table(c->base.conf),
             gtrid);
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = ms_batch(c, DRV_STEP_RECOVER, "marker lookup", sql, &rows, err);
    *found = false;
    if (rc == XA_OK && rows.has_rows && rows.nrows > 0 && rows.ncols > 0) {
        size_t len = 0;
        const char *v = xac_rows_cell(&rows, 0, 0, &len);
        *found = true;
        if (v != NULL && len >= 1 && v[0] == 'C') {
            *out = DRV_MARKER_COMMITTED;
        } else if (v != NULL && len >= 1 && v[0] == 'R') {
            *out = DRV_MARKER_ABORTED;
        } else {
            xac_err_setr(err, XAC_ESQL, ms_rname(c),
                         "resource %s: marker lookup of %s: outcome \"%.8s\" is neither 'C' nor "
                         "'R'",
                         ms_rname(c), gtrid, v != NULL ? v : "NULL");
            rc = XAER_RMERR;
        }
    }
    xac_rows_free(&rows);
    return rc;
}

int ms_lrc_marker(drv_conn *dc, const char *gtrid, bool fence, drv_marker *out, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    *out = DRV_MARKER_NONE;
    if (!drv_mssql_valid_gtrid(gtrid, false))
        return ms_bad_gtrid(c, "marker lookup", gtrid, err);
    if (c->state != MS_NONE) {
        xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                     "resource %s: marker lookup of %s on a connection with a transaction of "
                     "its own; use a connection without one",
                     ms_rname(c), gtrid);
        return XAER_PROTO;
    }
    bool found = false;
    int rc = ms_marker_select(c, gtrid, &found, out, err);
    if (rc != XA_OK || found || !fence)
        return rc;
    /* No row: fence. The insert waits for a commit in flight that holds the
     * key, and then fails with a duplicate key: look again. */
    rc = ms_marker_insert(c, gtrid, 'R', "marker fence insert", err);
    if (rc == XA_OK) {
        *out = DRV_MARKER_ABORTED;
        return XA_OK;
    }
    if (!ms_is_dup(c))
        return rc;
    xac_err_clear(err);
    rc = ms_marker_select(c, gtrid, &found, out, err);
    if (rc == XA_OK && !found) {
        xac_err_setr(err, XAC_ESQL, ms_rname(c),
                     "resource %s: marker fence of %s: the insert found a row that the lookup "
                     "then did not",
                     ms_rname(c), gtrid);
        rc = XAER_RMERR;
    }
    return rc;
}

int ms_lrc_forget(drv_conn *dc, const char *const *gtrids, size_t n, int64_t aborted_before_unix,
                  xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    for (size_t i = 0; i < n; i++)
        if (!drv_mssql_valid_gtrid(gtrids[i], false))
            return ms_bad_gtrid(c, "marker removal", gtrids[i], err);
    const char *t = ms_table(c->base.conf);
    size_t cap = 64 + strlen(t) + MS_FORGET_BATCH * (XAC_GTRID_MAX + 3);
    char *sql = malloc(cap);
    if (sql == NULL) {
        xac_err_setr(err, XAC_ENOMEM, ms_rname(c), "resource %s: marker removal: out of memory",
                     ms_rname(c));
        return XAER_RMERR;
    }
    int rc = XA_OK;
    for (size_t i = 0; i < n && rc == XA_OK; i += MS_FORGET_BATCH) {
        size_t end = i + MS_FORGET_BATCH < n ? i + MS_FORGET_BATCH : n;
        size_t o = (size_t)snprintf(sql, cap, "DELETE FROM %s WHERE gtrid IN (", t);
        for (size_t k = i; k < end; k++)
            o += (size_t)snprintf(sql + o, cap - o, "%s'%s'", k > i ? "," : "", gtrids[k]);
        snprintf(sql + o, cap - o, ")");
        rc = ms_batch(c, DRV_STEP_EXEC, "marker removal", sql, NULL, err);
    }
    if (rc == XA_OK && aborted_before_unix > 0) {
        snprintf(sql, cap, "DELETE FROM %s WHERE outcome = 'R' AND created_unix < %" PRId64, t,
                 aborted_before_unix);
        rc = ms_batch(c, DRV_STEP_EXEC, "abort marker removal", sql, NULL, err);
    }
    free(sql);
    return rc;
}

int ms_lrc_list(drv_conn *dc, const char *prefix, char (**out)[XAC_GTRID_MAX + 1], size_t *n,
                xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    *out = NULL;
    *n = 0;
    const char *p = prefix != NULL ? prefix : "";
    if (!drv_mssql_valid_gtrid(p, true))
        return ms_bad_gtrid(c, "marker listing", p, err);
    /* '_' is a LIKE wildcard: the pattern may match more, the strncmp
     * below keeps the exact prefix. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT gtrid FROM %s WHERE outcome = 'C' AND gtrid LIKE '%s%%' ORDER BY gtrid",
             ms_table(c->base.conf), p);
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = ms_batch(c, DRV_STEP_RECOVER, "marker listing", sql, &rows, err);
    if (rc == XA_OK && rows.nrows > 0) {
        char(*v)[XAC_GTRID_MAX + 1] = calloc(rows.nrows, sizeof *v);
        if (v == NULL) {
            xac_err_setr(err, XAC_ENOMEM, ms_rname(c),
                         "resource %s: marker listing: out of memory for %zu gtrids", ms_rname(c),
                         rows.nrows);
            rc = XAER_RMERR;
        } else {
            size_t k = 0, pl = strlen(p);
            for (size_t i = 0; i < rows.nrows; i++) {
                size_t len = 0;
                const char *g = xac_rows_cell(&rows, i, 0, &len);
                if (g == NULL || len > XAC_GTRID_MAX || strncmp(g, p, pl) != 0)
                    continue;
                memcpy(v[k], g, len);
                v[k][len] = '\0';
                k++;
            }
            if (k == 0) {
                free(v);
                v = NULL;
            }
            *out = v;
            *n = k;
        }
    }
    xac_rows_free(&rows);
    return rc;
}
