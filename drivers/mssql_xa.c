/* Branches prepared by other tools (an XA transaction manager, a Java
 * application), found and finished through SQL Server's xp_sqljdbc_xa_*
 * extended procedures, called the way the Microsoft JDBC driver calls them:
 * xp_sqljdbc_xa_init_ex once per session, then xp_sqljdbc_xa_recover (whose
 * packed records drv_mssql_decode_recover reads) and commit, rollback and
 * forget by XID. Each is one RPC with positional output parameters (status,
 * error text, and recover's data), which db-lib's dbrpcparam(DBRPCRETURN)
 * and dbretdata do directly. xac's own transactions never come here: they
 * are local transactions with a commit marker (mssql_marker.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sybdb.h>

#include "mssql_internal.h"

/* @data of xp_sqljdbc_xa_recover is declared varbinary(8000): a record is at
 * most 134 bytes, so that is some 60 foreign branches or 140 of xac's. */
#define MS_RECOVER_MAX 8000

/* XA flags of the xp_sqljdbc_xa_* procedures. */
#define MS_TMNOFLAGS    0
#define MS_TMSTARTRSCAN 0x01000000
#define MS_TMENDRSCAN   0x00800000

/* ------------------------------------------------------------ recover's records */

int drv_mssql_decode_recover(const uint8_t *data, size_t len, drv_indoubt **out, size_t *n,
                             xac_err *err)
{
    *out = NULL;
    *n = 0;
    size_t count = 0, off = 0;
    while (off < len) {
        size_t left = len - off;
        if (left < 6)
            return xac_err_set(err, XAC_EPROTO,
                               "recover record %zu at byte %zu: a record header needs 6 bytes, "
                               "only %zu left of %zu",
                               count + 1, off, left, len);
        size_t gl = data[off + 4], bl = data[off + 5];
        if (gl > XAC_GTRID_MAX || bl > XAC_BQUAL_MAX)
            return xac_err_set(err, XAC_EPROTO,
                               "recover record %zu at byte %zu: gtrid length %zu or bqual length "
                               "%zu is over %d",
                               count + 1, off, gl, bl, XAC_GTRID_MAX);
        if (left - 6 < gl + bl)
            return xac_err_set(err, XAC_EPROTO,
                               "recover record %zu at byte %zu: gtrid and bqual need %zu bytes, "
                               "only %zu left of %zu",
                               count + 1, off, gl + bl, left - 6, len);
        off += 6 + gl + bl;
        count++;
    }
    if (count == 0)
        return XAC_OK;
    drv_indoubt *v = calloc(count, sizeof *v);
    if (v == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for %zu recovered branches", count);
    off = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *r = data + off;
        uint32_t fid =
            (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
        size_t gl = r[4], bl = r[5];
        if (xac_xid_set(&v[i].xid, (int32_t)fid, r + 6, gl, r + 6 + gl, bl, err) != XAC_OK) {
            int code = err != NULL ? err->code : XAC_EPROTO;
            xac_err_prefix(err, "recover record %zu at byte %zu", i + 1, off);
            free(v);
            return code != XAC_OK ? code : XAC_EPROTO;
        }
        v[i].decoded = true;
        off += 6 + gl + bl;
    }
    *out = v;
    *n = count;
    return XAC_OK;
}

/* ------------------------------------------------------------ the procedures */

/* Output parameters of an xp_sqljdbc_xa_* call. */
typedef struct ms_xa_out {
    int status;
    char text[256];
    uint8_t *data; /* recover's @data, malloc'd */
    size_t data_len;
} ms_xa_out;

static int ms_ret_int(ms_conn *c, int i, int *out)
{
    BYTE *d = dbretdata(c->db, i);
    int len = dbretlen(c->db, i);
    if (d == NULL || len <= 0)
        return -1;
    DBINT v = 0;
    if (dbconvert(c->db, dbrettype(c->db, i), d, len, SYBINT4, (BYTE *)&v, (DBINT)sizeof v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* Reads the output parameters, in the order they were declared: status,
 * error text, and (recover) the data. */
static int ms_xa_outputs(ms_conn *c, const char *proc, bool want_data, ms_xa_out *o, xac_err *err)
{
    int n = dbnumrets(c->db);
    if (n < (want_data ? 3 : 2) || ms_ret_int(c, 1, &o->status) != 0) {
        xac_err_setr(err, XAC_ESQL, ms_rname(c),
                     "resource %s: %s returned %d output parameter(s) without a status; is it "
                     "installed (SQL Server's XA support)?",
                     ms_rname(c), proc, n);
        return XAER_RMERR;
    }
    BYTE *t = dbretdata(c->db, 2);
    int tl = dbretlen(c->db, 2);
    if (t != NULL && tl > 0) {
        char raw[sizeof o->text];
        size_t k = (size_t)tl < sizeof raw - 1 ? (size_t)tl : sizeof raw - 1;
        memcpy(raw, t, k);
        raw[k] = '\0';
        ms_copy_line(o->text, sizeof o->text, raw);
    }
    if (want_data) {
        BYTE *d = dbretdata(c->db, 3);
        int dl = dbretlen(c->db, 3);
        if (d != NULL && dl > 0) {
            o->data = malloc((size_t)dl);
            if (o->data == NULL) {
                xac_err_setr(err, XAC_ENOMEM, ms_rname(c),
                             "resource %s: %s: out of memory for %d bytes", ms_rname(c), proc, dl);
                return XAER_RMERR;
            }
            memcpy(o->data, d, (size_t)dl);
            o->data_len = (size_t)dl;
        }
    }
    return XA_OK;
}

/* Adds the two leading output parameters every xp_sqljdbc_xa_* has. */
static bool ms_xa_head(ms_conn *c, DBINT *status)
{
    return dbrpcparam(c->db, NULL, DBRPCRETURN, SYBINT4, -1, -1, (BYTE *)status) == SUCCEED &&
           dbrpcparam(c->db, NULL, DBRPCRETURN, SYBVARCHAR, 255, 0, NULL) == SUCCEED;
}

/* xp_sqljdbc_xa_init_ex, once per session before its first XA procedure
 * (the JDBC driver does the same). */
static int ms_xa_init(ms_conn *c, xac_err *err)
{
    if (c->xa_ready)
        return XA_OK;
    static const char proc[] = "master..xp_sqljdbc_xa_init_ex";
    DBINT status = 0;
    ms_begin(c);
    if (!ms_have_db(c) || dbrpcinit(c->db, proc, 0) == FAIL || !ms_xa_head(c, &status) ||
        dbrpcparam(c->db, NULL, DBRPCRETURN, SYBVARCHAR, 255, 0, NULL) == FAIL)
        return ms_rpc_build_fail(c, DRV_STEP_RECOVER, proc + 8, err);
    int rc = ms_rpc_run(c, DRV_STEP_RECOVER, proc + 8, NULL, err);
    if (rc != XA_OK)
        return rc;
    ms_xa_out o = {0};
    rc = ms_xa_outputs(c, proc + 8, false, &o, err);
    if (rc != XA_OK)
        return rc;
    if (o.status != 0) {
        xac_err_setr(err, XAC_ESQL, ms_rname(c),
                     "resource %s: %s returned status %d: %s; SQL Server's XA support is not "
                     "enabled or not installed",
                     ms_rname(c), proc + 8, o.status, o.text[0] ? o.text : "no text");
        return XAER_RMERR;
    }
    c->xa_ready = true;
    return XA_OK;
}

/* The XA code for an xp_sqljdbc_xa_* status. */
static int ms_xa_status(ms_conn *c, const char *proc, const char *what, const xac_xid *xid,
                        const ms_xa_out *o, xac_err *err)
{
    int st = o->status;
    if (st == XA_OK || st == XA_RDONLY)
        return st;
    bool known = (st >= XAER_OUTSIDE && st <= XAER_ASYNC) || (st >= XA_RETRY && st <= XA_HEURHAZ) ||
                 XA_IS_RB(st);
    int rc = known ? st : XAER_RMERR;
    if (rc == XAER_RMFAIL) {
        c->base.broken = true;
        ms_drop_if_broken(c);
    }
    char t[XAC_XID_TEXT_MAX] = "";
    if (xid != NULL)
        xac_xid_format(xid, t);
    xac_err_setr(err, drv_xa_to_code(rc), ms_rname(c),
                 "resource %s: %s%s%s: %s returned %s (%d)%s%s", ms_rname(c), what,
                 t[0] ? " of " : "", t, proc, drv_xa_name(rc), st, o->text[0] ? ": " : "", o->text);
    return rc;
}

/* commit, rollback or forget of a prepared branch by XID. */
static int ms_xa_by_xid(ms_conn *c, drv_step step, const char *op, const xac_xid *xid,
                        bool with_flags, DBINT flags, xac_err *err)
{
    char proc[64];
    snprintf(proc, sizeof proc, "master..xp_sqljdbc_xa_%s", op);
    const char *pname = proc + 8;
    int rc = ms_xa_init(c, err);
    if (rc != XA_OK)
        return rc;
    DBINT status = 0, fid = xid->format_id;
    ms_begin(c);
    bool ok =
        ms_have_db(c) && dbrpcinit(c->db, proc, 0) == SUCCEED && ms_xa_head(c, &status) &&
        dbrpcparam(c->db, NULL, 0, SYBVARBINARY, -1, xid->gtrid_len,
                   (BYTE *)(uintptr_t)xid->gtrid) == SUCCEED &&
        dbrpcparam(c->db, NULL, 0, SYBVARBINARY, -1, xid->bqual_len,
                   (BYTE *)(uintptr_t)xid->bqual) == SUCCEED &&
        (!with_flags || dbrpcparam(c->db, NULL, 0, SYBINT4, -1, -1, (BYTE *)&flags) == SUCCEED) &&
        dbrpcparam(c->db, NULL, 0, SYBINT4, -1, -1, (BYTE *)&fid) == SUCCEED;
    if (!ok)
        return ms_rpc_build_fail(c, step, pname, err);
    rc = ms_rpc_run(c, step, pname, NULL, err);
    if (rc != XA_OK)
        return rc;
    ms_xa_out o = {0};
    rc = ms_xa_outputs(c, pname, false, &o, err);
    if (rc != XA_OK)
        return rc;
    return ms_xa_status(c, pname, op, xid, &o, err);
}

int ms_xa_commit(ms_conn *c, const xac_xid *xid, xac_err *err)
{
    return ms_xa_by_xid(c, DRV_STEP_COMMIT, "commit", xid, true, MS_TMNOFLAGS, err);
}

int ms_xa_rollback(ms_conn *c, const xac_xid *xid, xac_err *err)
{
    return ms_xa_by_xid(c, DRV_STEP_ROLLBACK, "rollback", xid, false, 0, err);
}

int ms_xa_recover(drv_conn *dc, drv_indoubt **out, size_t *n, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    *out = NULL;
    *n = 0;
    static const char proc[] = "master..xp_sqljdbc_xa_recover";
    const char *pname = proc + 8;
    int rc = ms_xa_init(c, err);
    if (rc != XA_OK)
        return rc;
    DBINT status = 0, flags = MS_TMSTARTRSCAN | MS_TMENDRSCAN;
    ms_begin(c);
    bool ok =
        ms_have_db(c) && dbrpcinit(c->db, proc, 0) == SUCCEED && ms_xa_head(c, &status) &&
        dbrpcparam(c->db, NULL, 0, SYBINT4, -1, -1, (BYTE *)&flags) == SUCCEED &&
        dbrpcparam(c->db, NULL, DBRPCRETURN, SYBVARBINARY, MS_RECOVER_MAX, 0, NULL) == SUCCEED;
    if (!ok)
        return ms_rpc_build_fail(c, DRV_STEP_RECOVER, pname, err);
    rc = ms_rpc_run(c, DRV_STEP_RECOVER, pname, NULL, err);
    if (rc != XA_OK)
        return rc;
    ms_xa_out o = {0};
    rc = ms_xa_outputs(c, pname, true, &o, err);
    if (rc == XA_OK && o.status != XA_OK)
        rc = ms_xa_status(c, pname, "recover", NULL, &o, err);
    if (rc == XA_OK && drv_mssql_decode_recover(o.data, o.data_len, out, n, err) != XAC_OK) {
        xac_err_prefix(err, "resource %s: %s returned malformed data (%zu bytes)", ms_rname(c),
                       pname, o.data_len);
        if (err != NULL) {
            err->code = XAC_ESQL;
            snprintf(err->resource, sizeof err->resource, "%s", ms_rname(c));
        }
        rc = XAER_RMERR;
    }
    free(o.data);
    return rc;
}

int ms_xa_forget(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    return ms_xa_by_xid(c, DRV_STEP_ROLLBACK, "forget", xid, false, 0, err);
}
