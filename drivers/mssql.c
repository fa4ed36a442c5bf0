/* The SQL Server driver (drv_mssql_ops), on FreeTDS db-lib (sybdb), as a
 * last resource: a transaction's work runs in one local transaction (BEGIN
 * TRANSACTION) that lrc_commit commits together with a commit-marker row, so
 * that recovery can tell from the marker table whether the commit happened.
 * This file is the switch: open and close, the local transaction's start,
 * end, commit and rollback, and exec with its '?' placeholders rewritten for
 * sp_executesql. The rest is by concern: mssql_conn.c (db-lib, the login,
 * batches and results, failures), mssql_xa.c (other tools' prepared branches
 * through xp_sqljdbc_xa_*), mssql_marker.c (the marker table, lrc_*),
 * mssql_errmap.c (SQL Server error numbers). db-lib rather than ct-lib:
 * everything here is a batch or one RPC with positional output parameters,
 * which dbrpcinit/dbrpcparam(DBRPCRETURN) and dbretdata do directly;
 * ct-lib's contexts, commands and bind layers buy nothing for that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sybdb.h>

#include "mssql_internal.h"

/* ------------------------------------------------------------ open, close */

static int ms_open(const drv_conf *conf, drv_conn **out, xac_err *err)
{
    *out = NULL;
    ms_conn *c = NULL;
    int rc = ms_connect(conf, &c, err);
    if (rc != XA_OK)
        return rc;
    c->base.ops = &drv_mssql_ops;
    if (ms_marker_ensure_table(c, err) != XA_OK) {
        ms_free(c);
        if (err != NULL)
            err->code = XAC_ERMFAIL;
        return XAER_RMFAIL;
    }
    *out = &c->base;
    return XA_OK;
}

static void ms_close(drv_conn *dc)
{
    ms_conn *c = (ms_conn *)dc;
    if (c == NULL)
        return;
    /* SQL Server rolls back a local transaction left open at logout. */
    ms_free(c);
}

/* ------------------------------------------------------------ local transaction */

static bool own(const ms_conn *c, const xac_xid *xid)
{
    return c->state != MS_NONE && xac_xid_equal(&c->xid, xid);
}

static int ms_rb_answer(ms_conn *c, const char *what, xac_err *err)
{
    xac_err_setr(err, XAC_EROLLBACK, ms_rname(c),
                 "resource %s: %s: SQL Server already rolled the transaction back (%s): %s",
                 ms_rname(c), what, drv_xa_name(c->rb_rc), c->rb_msg);
    return c->rb_rc;
}

static void ms_set_rbonly(ms_conn *c, int rc, const xac_err *why)
{
    c->state = MS_RBONLY;
    c->rb_rc = rc;
    snprintf(c->rb_msg, sizeof c->rb_msg, "%s", ms_tail(c, why->msg));
}

static const char ms_rollback_sql[] = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

/* Rolls the connection's local transaction back, keeping err for the
 * caller's own error. */
static int ms_local_rollback(ms_conn *c, xac_err *err)
{
    int rc = ms_batch(c, DRV_STEP_ROLLBACK, "ROLLBACK TRANSACTION", ms_rollback_sql, NULL, err);
    if (rc == XA_OK || !c->base.broken)
        c->state = MS_NONE;
    return rc;
}

void ms_local_drop(ms_conn *c)
{
    xac_err e2;
    ms_local_rollback(c, &e2);
    c->state = MS_NONE;
}

int ms_rb_finish(ms_conn *c, const char *what, xac_err *err)
{
    int rb = ms_rb_answer(c, what, err);
    ms_local_drop(c);
    return rb;
}

static int ms_start(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (c->state != MS_NONE) {
        char t[XAC_XID_TEXT_MAX];
        xac_xid_format(&c->xid, t);
        xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                     "resource %s: start: the connection already has transaction %s open",
                     ms_rname(c), t);
        return XAER_PROTO;
    }
    int rc = ms_batch(c, DRV_STEP_START, "BEGIN TRANSACTION", "BEGIN TRANSACTION", NULL, err);
    if (rc == XA_OK) {
        c->state = MS_ACTIVE;
        c->xid = *xid;
    }
    return rc;
}

static int ms_end(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (own(c, xid))
        return c->state == MS_RBONLY ? ms_rb_answer(c, "end", err) : XA_OK;
    char t[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, t);
    xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                 "resource %s: end: %s is not this connection's transaction", ms_rname(c), t);
    return XAER_NOTA;
}

static int ms_prepare(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    (void)xid;
    ms_conn *c = (ms_conn *)dc;
    xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                 "resource %s: prepare: driver mssql is a last resource and has no prepare "
                 "step; it is committed with its commit marker after the other branches are "
                 "prepared",
                 ms_rname(c));
    return XAER_PROTO;
}

static int ms_commit(drv_conn *dc, const xac_xid *xid, bool one_phase, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (!one_phase) {
        if (c->state != MS_NONE && !own(c, xid)) {
            xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                         "resource %s: commit by XID on a connection busy with its own "
                         "transaction; use a connection without one",
                         ms_rname(c));
            return XAER_PROTO;
        }
        return ms_xa_commit(c, xid, err);
    }
    if (!own(c, xid)) {
        char t[XAC_XID_TEXT_MAX];
        xac_xid_format(xid, t);
        xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                     "resource %s: one-phase commit of %s: it is not this connection's "
                     "transaction",
                     ms_rname(c), t);
        return XAER_PROTO;
    }
    if (c->state == MS_RBONLY)
        return ms_rb_finish(c, "one-phase commit", err);
    int rc = ms_batch(c, DRV_STEP_COMMIT, "COMMIT TRANSACTION", "COMMIT TRANSACTION", NULL, err);
    if (rc == XA_OK) {
        c->state = MS_NONE;
        return XA_OK;
    }
    if (c->base.broken)
        return rc; /* XAER_RMFAIL: the outcome is unknown */
    /* The commit failed and did not happen: end the transaction. */
    ms_local_drop(c);
    if (!XA_IS_RB(rc)) {
        rc = XA_RBROLLBACK;
        if (err != NULL)
            err->code = XAC_EROLLBACK;
    }
    return rc;
}

static int ms_rollback(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (own(c, xid)) {
        int rc = ms_local_rollback(c, err);
        if (rc == XA_OK || !c->base.broken) {
            /* Rolled back now or earlier by SQL Server: what was asked. */
            xac_err_clear(err);
            c->state = MS_NONE;
            return XA_OK;
        }
        return rc;
    }
    if (c->state != MS_NONE) {
        xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                     "resource %s: rollback by XID on a connection busy with its own "
                     "transaction; use a connection without one",
                     ms_rname(c));
        return XAER_PROTO;
    }
    return ms_xa_rollback(c, xid, err);
}

/* ------------------------------------------------------------ exec */

/* One pass of the rewrite: counts the output bytes (out NULL) or writes them. */
static size_t ms_rewrite_pass(const char *sql, size_t len, const char *const *subst, size_t nsubst,
                              char *out, size_t *nmarks)
{
    size_t o = 0, marks = 0;
    int depth = 0;     /* nesting of block comments (T-SQL nests them) */
    char quote = '\0'; /* ' " or ] while inside a literal or quoted name */
    bool line = false; /* inside a -- comment */
    for (size_t i = 0; i < len; i++) {
        char ch = sql[i];
        char next = i + 1 < len ? sql[i + 1] : '\0';
        if (line) {
            if (ch == '\n')
                line = false;
        } else if (depth > 0) {
            if (ch == '*' && next == '/') {
                depth--;
                if (out != NULL)
                    out[o] = ch;
                o++;
                i++;
                ch = next;
            } else if (ch == '/' && next == '*') {
                depth++;
                if (out != NULL)
                    out[o] = ch;
                o++;
                i++;
                ch = next;
            }
        } else if (quote != '\0') {
            if (ch == quote) {
                if (quote == ']' && next == ']') {
                    /* "]]" is a ']' inside the name */
                    if (out != NULL)
                        out[o] = ch;
                    o++;
                    i++;
                    ch = next;
                } else {
                    quote = '\0';
                }
            }
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if (ch == '[') {
            quote = ']';
        } else if (ch == '-' && next == '-') {
            line = true;
        } else if (ch == '/' && next == '*') {
            depth = 1;
            if (out != NULL)
                out[o] = ch;
            o++;
            i++;
            ch = next;
        } else if (ch == '?') {
            const char *s = marks < nsubst && subst != NULL ? subst[marks] : NULL;
            char name[24];
            if (s == NULL) {
                snprintf(name, sizeof name, "@P%zu", marks + 1);
                s = name;
            }
            size_t sl = strlen(s);
            if (out != NULL)
                memcpy(out + o, s, sl);
            o += sl;
            marks++;
            continue;
        }
        if (out != NULL)
            out[o] = ch;
        o++;
    }
    *nmarks = marks;
    return o;
}

int drv_mssql_rewrite(const char *sql, size_t len, const char *const *subst, size_t nsubst,
                      char **out, size_t *nmarks, xac_err *err)
{
    *out = NULL;
    size_t n = ms_rewrite_pass(sql, len, subst, nsubst, NULL, nmarks);
    char *buf = malloc(n + 1);
    if (buf == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory rewriting a %zu-byte statement", len);
    ms_rewrite_pass(sql, len, subst, nsubst, buf, nmarks);
    buf[n] = '\0';
    *out = buf;
    return XAC_OK;
}

static const char *ms_param_decl(const xac_value *v)
{
    switch (v->type) {
    case XAC_T_INT:
        return "bigint";
    case XAC_T_DOUBLE:
        return "float";
    case XAC_T_TEXT:
        return "nvarchar(max)";
    case XAC_T_BLOB:
        return "varbinary(max)";
    default:
        return "nvarchar(1)";
    }
}

/* Adds one value as an sp_executesql parameter. db-lib keeps the pointer
 * until dbrpcsend, and reads a zero length as NULL, which is why empty
 * strings never come here (they are written into the statement). */
static bool ms_rpc_value(ms_conn *c, const xac_value *v)
{
    BYTE *p = (BYTE *)(uintptr_t)v->s;
    switch (v->type) {
    case XAC_T_INT:
        return dbrpcparam(c->db, NULL, 0, SYBINT8, -1, -1, (BYTE *)(uintptr_t)&v->i) == SUCCEED;
    case XAC_T_DOUBLE:
        return dbrpcparam(c->db, NULL, 0, SYBFLT8, -1, -1, (BYTE *)(uintptr_t)&v->d) == SUCCEED;
    case XAC_T_TEXT:
        /* db-lib sends varchar up to 4000 bytes as nvarchar; longer as
         * nvarchar(max) (ntext before TDS 7.2). */
        return dbrpcparam(c->db, NULL, 0, v->len <= 4000 ? SYBVARCHAR : SYBNTEXT, -1, (DBINT)v->len,
                          p) == SUCCEED;
    case XAC_T_BLOB:
        return dbrpcparam(c->db, NULL, 0, v->len <= 8000 ? SYBVARBINARY : SYBIMAGE, -1,
                          (DBINT)v->len, p) == SUCCEED;
    default:
        return dbrpcparam(c->db, NULL, 0, SYBVARCHAR, -1, 0, NULL) == SUCCEED;
    }
}

static bool ms_rpc_text(ms_conn *c, const char *s)
{
    size_t n = strlen(s);
    return dbrpcparam(c->db, NULL, 0, n <= 4000 ? SYBVARCHAR : SYBNTEXT, -1, (DBINT)n,
                      (BYTE *)(uintptr_t)s) == SUCCEED;
}

/* sp_executesql with '?' rewritten to @Pn and typed parameters. */
static int ms_exec_params(ms_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                          size_t nparams, xac_rows *rows, xac_err *err)
{
    if (nparams > DRV_MSSQL_MAX_PARAMS) {
        xac_err_setr(err, XAC_ESQL, ms_rname(c),
                     "resource %s: exec: %zu parameters; SQL Server takes at most %d", ms_rname(c),
                     nparams, DRV_MSSQL_MAX_PARAMS);
        return XAER_RMERR;
    }
    const char **subst = calloc(nparams, sizeof *subst);
    char *decl = malloc(nparams * 32 + 1);
    char *stmt = NULL;
    int rc = XA_OK;
    if (subst == NULL || decl == NULL) {
        xac_err_setr(err, XAC_ENOMEM, ms_rname(c), "resource %s: exec: out of memory", ms_rname(c));
        rc = XAER_RMERR;
        goto out;
    }
    size_t dl = 0;
    decl[0] = '\0';
    for (size_t i = 0; i < nparams; i++) {
        const xac_value *v = &params[i];
        if ((v->type == XAC_T_TEXT || v->type == XAC_T_BLOB) && v->len > (size_t)INT32_MAX / 2) {
            xac_err_setr(err, XAC_EINVAL, ms_rname(c),
                         "resource %s: exec: parameter %zu is too long (%zu bytes)", ms_rname(c),
                         i + 1, v->len);
            rc = XAER_RMERR;
            goto out;
        }
        if (v->type == XAC_T_TEXT && v->len == 0)
            subst[i] = "N''";
        else if (v->type == XAC_T_BLOB && v->len == 0)
            subst[i] = "0x";
        else if (v->type != XAC_T_NULL && v->type != XAC_T_INT && v->type != XAC_T_DOUBLE &&
                 v->type != XAC_T_TEXT && v->type != XAC_T_BLOB) {
            xac_err_setr(err, XAC_EINVAL, ms_rname(c),
                         "resource %s: exec: parameter %zu has unknown type %d", ms_rname(c), i + 1,
                         (int)v->type);
            rc = XAER_RMERR;
            goto out;
        } else
            dl += (size_t)snprintf(decl + dl, 32, "%s@P%zu %s", dl ? "," : "", i + 1,
                                   ms_param_decl(v));
    }
    size_t nmarks = 0;
    if (drv_mssql_rewrite(sql, sql_len, subst, nparams, &stmt, &nmarks, err) != XAC_OK) {
        xac_err_prefix(err, "resource %s: exec", ms_rname(c));
        rc = XAER_RMERR;
        goto out;
    }
    if (nmarks != nparams) {
        xac_err_setr(err, XAC_ESQL, ms_rname(c),
                     "resource %s: exec: the statement has %zu '?' placeholder(s) but %zu "
                     "parameter(s) were given",
                     ms_rname(c), nmarks, nparams);
        rc = XAER_RMERR;
        goto out;
    }
    if (memchr(sql, '\0', sql_len) != NULL) {
        xac_err_setr(err, XAC_EINVAL, ms_rname(c),
                     "resource %s: exec: the statement has a NUL byte", ms_rname(c));
        rc = XAER_RMERR;
        goto out;
    }
    ms_begin(c);
    bool ok = ms_have_db(c) && dbrpcinit(c->db, "sp_executesql", 0) == SUCCEED &&
              ms_rpc_text(c, stmt) && (dl == 0 || ms_rpc_text(c, decl));
    for (size_t i = 0; ok && i < nparams; i++)
        if (subst[i] == NULL)
            ok = ms_rpc_value(c, &params[i]);
    if (!ok) {
        rc = ms_rpc_build_fail(c, DRV_STEP_EXEC, "exec", err);
        goto out;
    }
    rc = ms_rpc_run(c, DRV_STEP_EXEC, "exec", rows, err);
out:
    free(subst);
    free(decl);
    free(stmt);
    return rc;
}

static int ms_exec(drv_conn *dc, const char *sql, size_t sql_len, const xac_value *params,
                   size_t nparams, xac_rows *rows, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (c->state == MS_RBONLY)
        return ms_rb_answer(c, "exec", err);
    xac_rows scratch;
    xac_rows_init(&scratch);
    xac_rows *r = rows != NULL ? rows : &scratch;
    xac_rows_free(r);
    int rc;
    if (nparams > 0) {
        rc = ms_exec_params(c, sql, sql_len, params, nparams, r, err);
    } else if (memchr(sql, '\0', sql_len) != NULL) {
        xac_err_setr(err, XAC_EINVAL, ms_rname(c),
                     "resource %s: exec: the statement has a NUL byte", ms_rname(c));
        rc = XAER_RMERR;
    } else {
        char *buf = malloc(sql_len + 1);
        if (buf == NULL) {
            xac_err_setr(err, XAC_ENOMEM, ms_rname(c), "resource %s: exec: out of memory",
                         ms_rname(c));
            rc = XAER_RMERR;
        } else {
            memcpy(buf, sql, sql_len);
            buf[sql_len] = '\0';
            rc = ms_batch(c, DRV_STEP_EXEC, "exec", buf, r, err);
            free(buf);
        }
    }
    if (rc != XA_OK)
        xac_rows_free(r);
    if (XA_IS_RB(rc) && c->state == MS_ACTIVE && err != NULL)
        ms_set_rbonly(c, rc, err);
    xac_rows_free(&scratch);
    return rc;
}

static int ms_ping(drv_conn *dc, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = ms_batch(c, DRV_STEP_EXEC, "health check (SELECT 1)", "SELECT 1", &rows, err);
    xac_rows_free(&rows);
    return rc;
}

const drv_ops drv_mssql_ops = {
    .name = "mssql",
    .open = ms_open,
    .close = ms_close,
    .start = ms_start,
    .end = ms_end,
    .prepare = ms_prepare,
    .commit = ms_commit,
    .rollback = ms_rollback,
    .recover = ms_xa_recover,
    .forget = ms_xa_forget,
    .exec = ms_exec,
    .ping = ms_ping,
    .lrc_commit = ms_lrc_commit,
    .lrc_marker = ms_lrc_marker,
    .lrc_forget = ms_lrc_forget,
    .lrc_list = ms_lrc_list,
};
