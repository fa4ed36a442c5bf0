/* The whole public face of drivers/: one resource-manager interface shaped like
 * the X/Open XA switch, its implementations (mysql, odbc with a dialect per
 * DBMS, mssql on FreeTDS as a last resource), and a connection pool per
 * resource. Every driver maps its database's
 * errors to the XA return codes below, so the engine never sees vendor codes;
 * the vendor code and text go into the xac_err message. */
#ifndef XAC_DRV_H
#define XAC_DRV_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "xac_common.h"

/* XA return codes, as in the X/Open XA specification. */
#define XA_RBBASE      100
#define XA_RBROLLBACK  100 /* rolled back, unspecified reason */
#define XA_RBCOMMFAIL  101
#define XA_RBDEADLOCK  102
#define XA_RBINTEGRITY 103 /* constraint violation */
#define XA_RBOTHER     104
#define XA_RBPROTO     105
#define XA_RBTIMEOUT   106
#define XA_RBTRANSIENT 107
#define XA_RBEND       107
#define XA_HEURHAZ     8
#define XA_HEURCOM     7
#define XA_HEURRB      6
#define XA_HEURMIX     5
#define XA_RETRY       4 /* try again later (MySQL 3197, MariaDB 1401 on commit) */
#define XA_RDONLY      3
#define XA_OK          0
#define XAER_ASYNC     (-2)
#define XAER_RMERR     (-3) /* error in the resource manager (e.g. SQL error) */
#define XAER_NOTA      (-4) /* the XID is not known */
#define XAER_INVAL     (-5)
#define XAER_PROTO     (-6)
#define XAER_RMFAIL    (-7) /* the resource is unreachable; the connection is dead */
#define XAER_DUPID     (-8)
#define XAER_OUTSIDE   (-9)

#define XA_IS_RB(rc) ((rc) >= XA_RBBASE && (rc) <= XA_RBEND)

/* "XA_RBINTEGRITY", "XAER_RMFAIL", ... Never NULL. */
const char *drv_xa_name(int rc);
/* The xac_code a client should see for an XA return code. */
int drv_xa_to_code(int rc);

/* One resource's settings, from the config file. */
typedef struct drv_conf {
    char name[XAC_RESOURCE_MAX + 1];
    char driver[16];  /* "mysql", "odbc" or "mssql" */
    char dialect[16]; /* odbc: "postgresql" or "mysql" */
    char host[256];
    int port; /* 0: the driver's default */
    char socket[PATH_MAX];
    char user[128];
    char password[256];
    char database[128];
    char odbc_driver[128]; /* odbc: unixODBC driver name, e.g. "PostgreSQL Unicode" */
    char dsn[1024];        /* odbc: extra "key=value;" pairs appended to the connection string */
    uint32_t connect_timeout_ms;
    uint32_t io_timeout_ms; /* read/write timeout for one statement */
    int pool_size;
    /* mssql (FreeTDS) only. */
    char tds_version[8];   /* "7.4" (default), "7.3", "7.2", "7.1" */
    char encryption[16];   /* "off" (default), "request" or "require" */
    char marker_table[64]; /* the commit-marker table, default "xac_commit_marker" */
    /* Committed in one phase after every XA branch is prepared, with a
     * commit marker in the same local transaction (docs/sqlserver.md). At
     * most one such resource per transaction. Set for every mssql resource. */
    bool last_resource;
} drv_conf;

/* What a last resource's marker table says of a gtrid. */
typedef enum drv_marker {
    DRV_MARKER_NONE = 0,      /* no row */
    DRV_MARKER_COMMITTED = 1, /* 'C': the local commit with the marker happened */
    DRV_MARKER_ABORTED = 2    /* 'R': a fence row; the commit can never happen */
} drv_marker;

/* How far drv_exec_one_phase got. */
typedef enum drv_onephase_at {
    DRV_ONEPHASE_NOT_SENT, /* nothing sent: use drv_exec, drv_end, drv_commit */
    DRV_ONEPHASE_EXEC,     /* failed at XA START or the statement: as drv_exec */
    DRV_ONEPHASE_END,      /* the statement ran; failed at XA END: as drv_end */
    DRV_ONEPHASE_COMMIT    /* the statement ran; the commit's result: as drv_commit */
} drv_onephase_at;

/* How far drv_exec_prepare got. */
typedef enum drv_prepare_at {
    DRV_PREPARE_NOT_SENT, /* nothing sent: use drv_exec, then drv_end and drv_prepare */
    DRV_PREPARE_EXEC,     /* failed at XA START or the statement: as drv_exec */
    DRV_PREPARE_VOTE      /* the statement ran; the result is the vote, as drv_end+drv_prepare */
} drv_prepare_at;

typedef struct drv_ops drv_ops;
/* A connection. Every driver's connection struct begins with this. The engine
 * only touches it through the functions below. */
typedef struct drv_conn {
    const drv_ops *ops;
    const drv_conf *conf;
    bool broken; /* set by the driver when the connection can no longer be used */
} drv_conn;

/* One in-doubt (prepared) branch found by recover. */
typedef struct drv_indoubt {
    xac_xid xid;
    bool decoded;                 /* false: a PostgreSQL gid that is not an encoded XID */
    char raw[XAC_PG_GID_MAX + 1]; /* PostgreSQL: the gid as stored; MySQL: "" */
    int64_t prepared_at;          /* unix seconds, 0 when the database does not say */
} drv_indoubt;

/* The switch. All calls block; each returns an XA code and fills err on
 * anything but XA_OK / XA_RDONLY. A call that finds the connection dead
 * returns XAER_RMFAIL and sets conn->broken. */
struct drv_ops {
    const char *name;
    int (*open)(const drv_conf *conf, drv_conn **out, xac_err *err);
    void (*close)(drv_conn *c);
    int (*start)(drv_conn *c, const xac_xid *xid, xac_err *err);
    int (*end)(drv_conn *c, const xac_xid *xid, xac_err *err);
    int (*prepare)(drv_conn *c, const xac_xid *xid, xac_err *err);
    /* one_phase: commit a branch that was ended but not prepared, on the
     * connection that did its work. Otherwise commit a prepared branch; this
     * works from any connection (recovery uses a fresh one). */
    int (*commit)(drv_conn *c, const xac_xid *xid, bool one_phase, xac_err *err);
    /* Rolls back the branch whether active, ended or prepared. For a branch
     * that is not the connection's own, only prepared branches can be found. */
    int (*rollback)(drv_conn *c, const xac_xid *xid, xac_err *err);
    /* Every prepared branch visible to this resource (all XIDs, not only ours).
     * *out is malloc'd; the caller frees it. */
    int (*recover)(drv_conn *c, drv_indoubt **out, size_t *n, xac_err *err);
    int (*forget)(drv_conn *c, const xac_xid *xid, xac_err *err);
    /* Runs one statement with '?' placeholders bound to params, inside the
     * connection's current branch. XAER_RMERR for an SQL error (the message
     * has the vendor code and text), XA_RB* when the database rolled the
     * branch back (deadlock, ...), XAER_RMFAIL when the connection is gone. */
    int (*exec)(drv_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                size_t nparams, xac_rows *rows, xac_err *err);
    /* A cheap health check. */
    int (*ping)(drv_conn *c, xac_err *err);
    /* Optional (NULL: never). A branch's only statement and its one-phase
     * commit in one round trip, for a branch just started with nothing run on
     * it; see drv_exec_one_phase. */
    int (*exec_one_phase)(drv_conn *c, const xac_xid *xid, const char *sql, size_t sql_len,
                          const xac_value *params, size_t nparams, xac_rows *rows,
                          drv_onephase_at *at, xac_err *err);
    /* Optional (NULL: never). Phase two in two halves, so that one thread
     * can have several branches commit at once: commit_send sends the commit
     * of the connection's own prepared branch and does not wait (false:
     * nothing was sent, use commit); commit_recv waits for its answer, which
     * is commit's, and must come before anything else on the connection. */
    bool (*commit_send)(drv_conn *c, const xac_xid *xid);
    int (*commit_recv)(drv_conn *c, const xac_xid *xid, xac_err *err);
    /* Optional (NULL: never). The branch's last statement, its XA END and
     * its XA PREPARE in one round trip, for an active branch of a transaction
     * whose two-phase commit is known to follow; see drv_exec_prepare. */
    int (*exec_prepare)(drv_conn *c, const xac_xid *xid, const char *sql, size_t sql_len,
                        const xac_value *params, size_t nparams, xac_rows *rows, drv_prepare_at *at,
                        xac_err *err);

    /* Last-resource commit; NULL for XA drivers. start opens a local
     * transaction, end does nothing, prepare is refused (XAER_PROTO), and a
     * one-phase commit commits the local transaction without a marker.
     * lrc_commit inserts gtrid's commit marker ('C') and commits the local
     * transaction with it: the decision point of a transaction that has a
     * last resource. XA_OK committed; XA_RB* rolled back (a fence row for
     * gtrid found is XA_RBROLLBACK); XAER_RMFAIL the outcome is unknown. */
    int (*lrc_commit)(drv_conn *c, const char *gtrid, xac_err *err);
    /* Looks gtrid's marker up on a connection with no transaction of its own.
     * fence: when there is no row, insert an abort row ('R') and commit it,
     * so that a commit still in flight for gtrid can never succeed (the
     * insert waits for such a commit while it holds the key); *out is then
     * DRV_MARKER_ABORTED. */
    int (*lrc_marker)(drv_conn *c, const char *gtrid, bool fence, drv_marker *out, xac_err *err);
    /* Deletes the markers of the n gtrids (ended transactions), in batches of
     * up to 100 per statement, and the abort rows created before
     * aborted_before_unix (0: none of them). */
    int (*lrc_forget)(drv_conn *c, const char *const *gtrids, size_t n, int64_t aborted_before_unix,
                      xac_err *err);
    /* The gtrids of the commit markers ('C') whose gtrid starts with prefix.
     * *out is malloc'd; the caller frees it. */
    int (*lrc_list)(drv_conn *c, const char *prefix, char (**out)[XAC_GTRID_MAX + 1], size_t *n,
                    xac_err *err);
};

/* The driver named by conf->driver ("mysql", "odbc", "mssql"); NULL when unknown. */
const drv_ops *drv_find(const char *driver);
/* Validates the settings for the driver (names the field at fault). */
int drv_check_conf(const drv_conf *conf, xac_err *err);
/* A fresh, unpooled connection. */
int drv_open(const drv_conf *conf, drv_conn **out, xac_err *err);
void drv_close(drv_conn *c);

/* Thin wrappers over c->ops, so callers read naturally. */
int drv_start(drv_conn *c, const xac_xid *xid, xac_err *err);
int drv_end(drv_conn *c, const xac_xid *xid, xac_err *err);
int drv_prepare(drv_conn *c, const xac_xid *xid, xac_err *err);
int drv_commit(drv_conn *c, const xac_xid *xid, bool one_phase, xac_err *err);
/* The halves of drv_commit (two-phase) for the connection's own prepared
 * branch; see drv_ops. drv_commit_send is false when nothing was sent. */
bool drv_commit_send(drv_conn *c, const xac_xid *xid);
int drv_commit_recv(drv_conn *c, const xac_xid *xid, xac_err *err);
int drv_rollback(drv_conn *c, const xac_xid *xid, xac_err *err);
int drv_recover(drv_conn *c, drv_indoubt **out, size_t *n, xac_err *err);
int drv_forget(drv_conn *c, const xac_xid *xid, xac_err *err);
int drv_exec(drv_conn *c, const char *sql, size_t sql_len, const xac_value *params, size_t nparams,
             xac_rows *rows, xac_err *err);
int drv_ping(drv_conn *c, xac_err *err);
/* For a branch just started (drv_start) with nothing run on it, whose commit
 * follows at once in one phase: runs the statement, XA END and the one-phase
 * commit in one round trip when the driver can. *at says how far it got, and
 * the return code is that step's, as drv_exec, drv_end or drv_commit would
 * have given it; rows is filled once the statement ran. DRV_ONEPHASE_NOT_SENT
 * (returns XA_OK): nothing happened, take the usual calls. */
int drv_exec_one_phase(drv_conn *c, const xac_xid *xid, const char *sql, size_t sql_len,
                       const xac_value *params, size_t nparams, xac_rows *rows, drv_onephase_at *at,
                       xac_err *err);
/* For an active branch (drv_start done) that will run no statement after this
 * one, in a transaction whose two-phase commit follows: runs the statement,
 * XA END and XA PREPARE in one round trip when the driver can. *at says how
 * far it got: DRV_PREPARE_EXEC, the statement's (or the deferred XA START's)
 * failure, as drv_exec gives it, with the branch still active; DRV_PREPARE_VOTE,
 * the statement ran (rows filled) and the return code is the vote, as
 * drv_end and drv_prepare would have given it (XA_OK: prepared).
 * DRV_PREPARE_NOT_SENT (returns XA_OK): nothing happened, take the usual
 * calls. */
int drv_exec_prepare(drv_conn *c, const xac_xid *xid, const char *sql, size_t sql_len,
                     const xac_value *params, size_t nparams, xac_rows *rows, drv_prepare_at *at,
                     xac_err *err);
/* The lrc_* ops; XAER_PROTO with a message for a driver that has none. */
int drv_lrc_commit(drv_conn *c, const char *gtrid, xac_err *err);
int drv_lrc_marker(drv_conn *c, const char *gtrid, bool fence, drv_marker *out, xac_err *err);
int drv_lrc_forget(drv_conn *c, const char *const *gtrids, size_t n, int64_t aborted_before_unix,
                   xac_err *err);
int drv_lrc_list(drv_conn *c, const char *prefix, char (**out)[XAC_GTRID_MAX + 1], size_t *n,
                 xac_err *err);

/* ------------------------------------------------------------------ pool */

/* A bounded set of connections to one resource. Connections are opened on
 * demand up to conf->pool_size. After a failed open the pool backs off
 * (100 ms doubling to 5 s) and drv_pool_get fails fast with XAER_RMFAIL until
 * the backoff has passed, so a dead database does not stall its callers.
 * Thread-safe. */
typedef struct drv_pool drv_pool;

/* The pool keeps a pointer to conf: it must outlive the pool. */
int drv_pool_create(const drv_conf *conf, drv_pool **out, xac_err *err);
void drv_pool_destroy(drv_pool *p);
/* Waits up to wait_ms for a free connection. Returns an XA code: XA_OK,
 * XAER_RMFAIL (cannot connect), or XAER_RMERR with "pool exhausted" on
 * timeout. An idle connection is pinged before it is handed out when it has
 * been idle for more than a second. */
int drv_pool_get(drv_pool *p, uint32_t wait_ms, drv_conn **out, xac_err *err);
/* Returns a connection; a broken one (c->broken) is closed instead. */
void drv_pool_put(drv_pool *p, drv_conn *c);
const drv_conf *drv_pool_conf(const drv_pool *p);
/* Whether the last attempt to reach the resource failed. */
bool drv_pool_down(const drv_pool *p);

#endif
