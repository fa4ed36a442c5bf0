/* The driver-neutral core of drivers/: names and client codes of XA return
 * codes, the table of drivers, per-driver validation of a resource's settings,
 * and the thin wrappers the engine and recovery call. The wrappers refuse to
 * touch a connection that an earlier failure marked broken, so no driver has
 * to guard against being called on a dead link. */
#include <stdlib.h>
#include <string.h>

#include "drv_impl.h"

const char *drv_xa_name(int rc)
{
    switch (rc) {
    case XA_RBROLLBACK:
        return "XA_RBROLLBACK";
    case XA_RBCOMMFAIL:
        return "XA_RBCOMMFAIL";
    case XA_RBDEADLOCK:
        return "XA_RBDEADLOCK";
    case XA_RBINTEGRITY:
        return "XA_RBINTEGRITY";
    case XA_RBOTHER:
        return "XA_RBOTHER";
    case XA_RBPROTO:
        return "XA_RBPROTO";
    case XA_RBTIMEOUT:
        return "XA_RBTIMEOUT";
    case XA_RBTRANSIENT:
        return "XA_RBTRANSIENT";
    case XA_HEURHAZ:
        return "XA_HEURHAZ";
    case XA_HEURCOM:
        return "XA_HEURCOM";
    case XA_HEURRB:
        return "XA_HEURRB";
    case XA_HEURMIX:
        return "XA_HEURMIX";
    case XA_RETRY:
        return "XA_RETRY";
    case XA_RDONLY:
        return "XA_RDONLY";
    case XA_OK:
        return "XA_OK";
    case XAER_ASYNC:
        return "XAER_ASYNC";
    case XAER_RMERR:
        return "XAER_RMERR";
    case XAER_NOTA:
        return "XAER_NOTA";
    case XAER_INVAL:
        return "XAER_INVAL";
    case XAER_PROTO:
        return "XAER_PROTO";
    case XAER_RMFAIL:
        return "XAER_RMFAIL";
    case XAER_DUPID:
        return "XAER_DUPID";
    case XAER_OUTSIDE:
        return "XAER_OUTSIDE";
    default:
        return "XA_UNKNOWN";
    }
}

int drv_xa_to_code(int rc)
{
    if (rc == XA_OK || rc == XA_RDONLY) /* a read-only vote is a success too */
        return XAC_OK;
    if (rc == XAER_RMERR)
        return XAC_ESQL;
    if (rc == XAER_RMFAIL)
        return XAC_ERMFAIL;
    if (XA_IS_RB(rc))
        return XAC_EROLLBACK;
    return XAC_EINTERNAL;
}

const drv_ops *drv_find(const char *driver)
{
    if (driver == NULL)
        return NULL;
    if (strcmp(driver, "mysql") == 0)
        return &drv_mysql_ops;
    if (strcmp(driver, "odbc") == 0)
        return &drv_odbc_ops;
    if (strcmp(driver, "mssql") == 0)
        return &drv_mssql_ops;
    /* Accepted here; config.c refuses it unless testing.allow_null_driver. */
    if (strcmp(driver, "null") == 0)
        return &drv_null_ops;
    return NULL;
}

static bool one_of(const char *v, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(v, *set) == 0)
            return true;
    return false;
}

/* A table name the driver can write into SQL as it is. */
static bool plain_identifier(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s != '\0'; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* Empty tds_version, encryption and marker_table mean the defaults. */
static int check_mssql(const drv_conf *conf, xac_err *err)
{
    static const char *const versions[] = {"7.1", "7.2", "7.3", "7.4", NULL};
    static const char *const modes[] = {"off", "request", "require", NULL};
    const char *n = conf->name;
    if (conf->host[0] == '\0')
        return xac_err_setr(err, XAC_ECONFIG, n, "resource %s: driver mssql needs host", n);
    if (conf->database[0] == '\0')
        return xac_err_setr(err, XAC_ECONFIG, n, "resource %s: driver mssql needs database", n);
    if (conf->tds_version[0] != '\0' && !one_of(conf->tds_version, versions))
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource %s: tds_version \"%s\" is not one of \"7.1\", \"7.2\", "
                            "\"7.3\", \"7.4\"",
                            n, conf->tds_version);
    if (conf->encryption[0] != '\0' && !one_of(conf->encryption, modes))
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource %s: encryption \"%s\" is not one of \"off\", "
                            "\"request\", \"require\"",
                            n, conf->encryption);
    if (conf->encryption[0] != '\0' && !drv_mssql_can_set_encryption(conf->encryption))
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource %s: encryption \"%s\" needs FreeTDS 1.5 or later (this "
                            "db-lib takes encryption only from freetds.conf); set it there and "
                            "leave it out here",
                            n, conf->encryption);
    if (conf->marker_table[0] != '\0' && !plain_identifier(conf->marker_table))
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource %s: marker_table \"%s\" must be a plain identifier "
                            "(a letter or _, then letters, digits or _)",
                            n, conf->marker_table);
    return XAC_OK;
}

int drv_check_conf(const drv_conf *conf, xac_err *err)
{
    if (conf == NULL)
        return xac_err_set(err, XAC_EINVAL, "drv_check_conf: no resource settings given");
    const char *n = conf->name;
    if (!xac_valid_name(n, XAC_RESOURCE_MAX))
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource name '%s' is invalid: use 1 to %d characters from "
                            "A-Z a-z 0-9 _ -",
                            n, XAC_RESOURCE_MAX);
    if (drv_find(conf->driver) == NULL)
        return xac_err_setr(
            err, XAC_ECONFIG, n,
            "resource %s: unknown driver '%s' (use \"mysql\", \"odbc\" or \"mssql\")", n,
            conf->driver);
    if (conf->port < 0 || conf->port > 65535)
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource %s: port %d is out of range (0 for the default, or 1-65535)",
                            n, conf->port);
    if (conf->pool_size < 1 || conf->pool_size > 10000)
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource %s: pool_size %d is out of range (1-10000)", n,
                            conf->pool_size);
    if (strcmp(conf->driver, "mysql") == 0) {
        if (conf->host[0] == '\0' && conf->socket[0] == '\0')
            return xac_err_setr(err, XAC_ECONFIG, n,
                                "resource %s: driver mysql needs host or socket", n);
        return XAC_OK;
    }
    if (strcmp(conf->driver, "mssql") == 0)
        return check_mssql(conf, err);
    if (strcmp(conf->driver, "null") == 0)
        return XAC_OK; /* it connects to nothing */
    /* odbc */
    if (strcmp(conf->dialect, "postgresql") != 0 && strcmp(conf->dialect, "mysql") != 0)
        return xac_err_setr(
            err, XAC_ECONFIG, n,
            "resource %s: driver odbc needs dialect \"postgresql\" or \"mysql\"%s%s%s", n,
            conf->dialect[0] ? " (got \"" : "", conf->dialect, conf->dialect[0] ? "\")" : "");
    if (conf->odbc_driver[0] == '\0')
        return xac_err_setr(err, XAC_ECONFIG, n,
                            "resource %s: driver odbc needs odbc_driver (the driver's name in "
                            "odbcinst.ini, e.g. \"PostgreSQL Unicode\")",
                            n);
    if (conf->host[0] == '\0')
        return xac_err_setr(err, XAC_ECONFIG, n, "resource %s: driver odbc needs host", n);
    if (conf->database[0] == '\0')
        return xac_err_setr(err, XAC_ECONFIG, n, "resource %s: driver odbc needs database", n);
    return XAC_OK;
}

int drv_open(const drv_conf *conf, drv_conn **out, xac_err *err)
{
    if (out == NULL) {
        xac_err_set(err, XAC_EINVAL, "drv_open: no output pointer given");
        return XAER_INVAL;
    }
    *out = NULL;
    if (drv_check_conf(conf, err) != XAC_OK)
        return XAER_INVAL;
    const drv_ops *ops = drv_find(conf->driver);
    int rc = ops->open(conf, out, err);
    if (rc != XA_OK) {
        *out = NULL;
        return rc;
    }
    return XA_OK;
}

void drv_close(drv_conn *c)
{
    if (c != NULL)
        c->ops->close(c);
}

/* The common guard of every wrapper: a missing or broken connection is
 * reported without calling the driver. */
static int usable(drv_conn *c, const char *op, xac_err *err)
{
    if (c == NULL) {
        xac_err_set(err, XAC_EINTERNAL, "%s: no connection given", op);
        return XAER_PROTO;
    }
    if (c->broken) {
        xac_err_setr(err, XAC_ERMFAIL, c->conf->name,
                     "resource %s: %s: the connection broke earlier and cannot be used; take "
                     "a new one",
                     c->conf->name, op);
        return XAER_RMFAIL;
    }
    return XA_OK;
}

static int need_xid(drv_conn *c, const xac_xid *xid, const char *op, xac_err *err)
{
    if (xid == NULL) {
        xac_err_setr(err, XAC_EINTERNAL, c->conf->name, "resource %s: %s: no XID given",
                     c->conf->name, op);
        return XAER_INVAL;
    }
    return XA_OK;
}

int drv_start(drv_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = usable(c, "start", err);
    if (rc == XA_OK)
        rc = need_xid(c, xid, "start", err);
    return rc != XA_OK ? rc : c->ops->start(c, xid, err);
}

int drv_end(drv_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = usable(c, "end", err);
    if (rc == XA_OK)
        rc = need_xid(c, xid, "end", err);
    return rc != XA_OK ? rc : c->ops->end(c, xid, err);
}

int drv_prepare(drv_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = usable(c, "prepare", err);
    if (rc == XA_OK)
        rc = need_xid(c, xid, "prepare", err);
    return rc != XA_OK ? rc : c->ops->prepare(c, xid, err);
}

int drv_commit(drv_conn *c, const xac_xid *xid, bool one_phase, xac_err *err)
{
    int rc = usable(c, "commit", err);
    if (rc == XA_OK)
        rc = need_xid(c, xid, "commit", err);
    return rc != XA_OK ? rc : c->ops->commit(c, xid, one_phase, err);
}

bool drv_commit_send(drv_conn *c, const xac_xid *xid)
{
    return c != NULL && !c->broken && c->ops->commit_send != NULL && xid != NULL &&
           c->ops->commit_send(c, xid);
}

int drv_commit_recv(drv_conn *c, const xac_xid *xid, xac_err *err)
{
    return c->ops->commit_recv(c, xid, err);
}

int drv_rollback(drv_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = usable(c, "rollback", err);
    if (rc == XA_OK)
        rc = need_xid(c, xid, "rollback", err);
    return rc != XA_OK ? rc : c->ops->rollback(c, xid, err);
}

int drv_recover(drv_conn *c, drv_indoubt **out, size_t *n, xac_err *err)
{
    if (out != NULL)
        *out = NULL;
    if (n != NULL)
        *n = 0;
    int rc = usable(c, "recover", err);
    if (rc != XA_OK)
        return rc;
    if (out == NULL || n == NULL) {
        xac_err_setr(err, XAC_EINTERNAL, c->conf->name, "resource %s: recover: no output given",
                     c->conf->name);
        return XAER_INVAL;
    }
    return c->ops->recover(c, out, n, err);
}

int drv_forget(drv_conn *c, const xac_xid *xid, xac_err *err)
{
    int rc = usable(c, "forget", err);
    if (rc == XA_OK)
        rc = need_xid(c, xid, "forget", err);
    return rc != XA_OK ? rc : c->ops->forget(c, xid, err);
}

int drv_exec_one_phase(drv_conn *c, const xac_xid *xid, const char *sql, size_t sql_len,
                       const xac_value *params, size_t nparams, xac_rows *rows, drv_onephase_at *at,
                       xac_err *err)
{
    *at = DRV_ONEPHASE_NOT_SENT;
    /* A broken connection or missing input: the usual calls report it. */
    if (c == NULL || c->broken || c->ops->exec_one_phase == NULL || xid == NULL || sql == NULL ||
        (nparams > 0 && params == NULL))
        return XA_OK;
    return c->ops->exec_one_phase(c, xid, sql, sql_len, params, nparams, rows, at, err);
}

int drv_exec_prepare(drv_conn *c, const xac_xid *xid, const char *sql, size_t sql_len,
                     const xac_value *params, size_t nparams, xac_rows *rows, drv_prepare_at *at,
                     xac_err *err)
{
    *at = DRV_PREPARE_NOT_SENT;
    if (c == NULL || c->broken || c->ops->exec_prepare == NULL || xid == NULL || sql == NULL ||
        (nparams > 0 && params == NULL))
        return XA_OK;
    return c->ops->exec_prepare(c, xid, sql, sql_len, params, nparams, rows, at, err);
}

int drv_exec(drv_conn *c, const char *sql, size_t sql_len, const xac_value *params, size_t nparams,
             xac_rows *rows, xac_err *err)
{
    int rc = usable(c, "exec", err);
    if (rc != XA_OK)
        return rc;
    if (sql == NULL || (nparams > 0 && params == NULL)) {
        xac_err_setr(err, XAC_EINVAL, c->conf->name,
                     "resource %s: exec: no SQL or parameters given", c->conf->name);
        return XAER_INVAL;
    }
    return c->ops->exec(c, sql, sql_len, params, nparams, rows, err);
}

int drv_ping(drv_conn *c, xac_err *err)
{
    int rc = usable(c, "ping", err);
    return rc != XA_OK ? rc : c->ops->ping(c, err);
}

/* The lrc_* ops exist only on last-resource drivers. */
static int need_lrc(drv_conn *c, const void *op, const char *what, xac_err *err)
{
    int rc = usable(c, what, err);
    if (rc != XA_OK)
        return rc;
    if (op == NULL) {
        xac_err_setr(err, XAC_EINTERNAL, c->conf->name,
                     "resource %s: %s: driver %s is not a last-resource driver", c->conf->name,
                     what, c->ops->name);
        return XAER_PROTO;
    }
    return XA_OK;
}

int drv_lrc_commit(drv_conn *c, const char *gtrid, xac_err *err)
{
    int rc = need_lrc(c, c != NULL ? (const void *)c->ops->lrc_commit : NULL, "commit", err);
    return rc != XA_OK ? rc : c->ops->lrc_commit(c, gtrid, err);
}

int drv_lrc_marker(drv_conn *c, const char *gtrid, bool fence, drv_marker *out, xac_err *err)
{
    *out = DRV_MARKER_NONE;
    int rc = need_lrc(c, c != NULL ? (const void *)c->ops->lrc_marker : NULL, "marker lookup", err);
    return rc != XA_OK ? rc : c->ops->lrc_marker(c, gtrid, fence, out, err);
}

int drv_lrc_forget(drv_conn *c, const char *const *gtrids, size_t n, int64_t aborted_before_unix,
                   xac_err *err)
{
    int rc =
        need_lrc(c, c != NULL ? (const void *)c->ops->lrc_forget : NULL, "marker removal", err);
    return rc != XA_OK ? rc : c->ops->lrc_forget(c, gtrids, n, aborted_before_unix, err);
}

int drv_lrc_list(drv_conn *c, const char *prefix, char (**out)[XAC_GTRID_MAX + 1], size_t *n,
                 xac_err *err)
{
    *out = NULL;
    *n = 0;
    int rc = need_lrc(c, c != NULL ? (const void *)c->ops->lrc_list : NULL, "marker listing", err);
    return rc != XA_OK ? rc : c->ops->lrc_list(c, prefix, out, n, err);
}
