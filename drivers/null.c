/* The null driver: a resource manager that does no work and votes yes at
 * once. Every XA op answers XA_OK, a statement returns an empty result with 0
 * affected rows, and recover finds no branch. It exists to measure what xacd
 * itself costs per global transaction (bench/run_null.sh) and to test the
 * engine without databases; nothing it "commits" is stored anywhere, so
 * config.c refuses it unless testing.allow_null_driver is set. */
#include <stdlib.h>

#include "drv_impl.h"

static int null_open(const drv_conf *conf, drv_conn **out, xac_err *err)
{
    drv_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        xac_err_setr(err, XAC_ENOMEM, conf->name, "resource %s: open: out of memory", conf->name);
        return XAER_RMFAIL;
    }
    c->ops = &drv_null_ops;
    c->conf = conf;
    *out = c;
    return XA_OK;
}

static void null_close(drv_conn *c)
{
    free(c);
}

static int null_xid_op(drv_conn *c, const xac_xid *xid, xac_err *err)
{
    (void)c;
    (void)xid;
    (void)err;
    return XA_OK;
}

static int null_commit(drv_conn *c, const xac_xid *xid, bool one_phase, xac_err *err)
{
    (void)one_phase;
    return null_xid_op(c, xid, err);
}

static int null_recover(drv_conn *c, drv_indoubt **out, size_t *n, xac_err *err)
{
    (void)c;
    (void)err;
    *out = NULL;
    *n = 0;
    return XA_OK;
}

static int null_exec(drv_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                     size_t nparams, xac_rows *rows, xac_err *err)
{
    (void)c;
    (void)sql;
    (void)sql_len;
    (void)params;
    (void)nparams;
    (void)err;
    if (rows != NULL) {
        xac_rows_free(rows);
        rows->has_rows = false;
        rows->affected = 0;
    }
    return XA_OK;
}

static int null_ping(drv_conn *c, xac_err *err)
{
    (void)c;
    (void)err;
    return XA_OK;
}

const drv_ops drv_null_ops = {
    .name = "null",
    .open = null_open,
    .close = null_close,
    .start = null_xid_op,
    .end = null_xid_op,
    .prepare = null_xid_op,
    .commit = null_commit,
    .rollback = null_xid_op,
    .recover = null_recover,
    .forget = null_xid_op,
    .exec = null_exec,
    .ping = null_ping,
};
