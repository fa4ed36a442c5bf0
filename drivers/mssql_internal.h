/* Private to the mssql driver's files (mssql.c, mssql_conn.c, mssql_xa.c,
 * mssql_marker.c, mssql_errmap.c) and its unit test: the connection type
 * they share, the ms_ functions one file offers the others, and the pure
 * pieces that need no server (placeholder rewriting, the decoder of
 * xp_sqljdbc_xa_recover's packed records, the SQL Server error table, the
 * gtrid check), so tests/unit/test_mssql_*.c can check those without a TDS
 * connection. */
#ifndef XAC_MSSQL_INTERNAL_H
#define XAC_MSSQL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sybdb.h>

#include "drv_impl.h"

/* ------------------------------------------------------------ pure parts */

/* At most this many parameters per statement: SQL Server takes 2100 per
 * RPC and sp_executesql uses two of them for the statement and the list. */
#define DRV_MSSQL_MAX_PARAMS 2098

/* Rewrites each '?' outside string literals, quoted identifiers ("..." and
 * [...]) and comments to @P1, @P2, ... in order. subst, when not NULL, has
 * one entry per '?': a non-NULL entry is written instead of @Pn (a literal
 * for a value sp_executesql cannot carry, such as an empty string). *out is
 * malloc'd and NUL-terminated; *nmarks is the number of '?' seen. A '?' past
 * nsubst entries is still counted (the caller reports the mismatch). An
 * unterminated literal or comment is left for the server to refuse.
 * Returns XAC_OK or XAC_ENOMEM. */
int drv_mssql_rewrite(const char *sql, size_t len, const char *const *subst, size_t nsubst,
                      char **out, size_t *nmarks, xac_err *err);

/* Decodes xp_sqljdbc_xa_recover's @data: records of formatId (4 bytes
 * little-endian), gtrid length (1 byte), bqual length (1 byte), gtrid,
 * bqual. *out is malloc'd (NULL when there are none). A record that runs
 * past the end, or a length over 64, is XAC_EPROTO with the record's
 * number and offset in err. */
int drv_mssql_decode_recover(const uint8_t *data, size_t len, drv_indoubt **out, size_t *n,
                             xac_err *err);

/* What a SQL Server error number means for xac (mssql_errmap.c, the one
 * table). *note, when not NULL, gets a short explanation for the message
 * ("duplicate key") or NULL. */
int drv_mssql_errno_to_xa(int msgno, drv_step step, const char **note);
/* The server refused the login (bad user or password, database refused). */
bool drv_mssql_errno_is_login_failure(int msgno);
/* A db-lib error number (SYBE...) that means the link is gone. */
bool drv_mssql_dberr_is_connection_loss(int dberr);

/* A gtrid that can go into the marker table's SQL as a literal:
 * [A-Za-z0-9._-]{1,64} (or {0,64} with empty_ok, for prefixes). */
bool drv_mssql_valid_gtrid(const char *s, bool empty_ok);

/* ------------------------------------------------------------ the connection */

#define MS_MSG_MAX 400

/* What the handlers saw during one operation. */
typedef struct ms_diag {
    int msgno;    /* the first server error (severity > 10); 0: none */
    int severity; /* its severity */
    char msg[MS_MSG_MAX];
    bool deadlock; /* a 1205 came, first or not */
    int dberr;     /* the first db-lib error other than SYBESMSG; 0: none */
    char dbmsg[MS_MSG_MAX];
    bool lost;    /* the link is gone */
    bool timeout; /* a statement or the login timed out */
} ms_diag;

/* MS_RBONLY: SQL Server rolled the local transaction back (deadlock victim)
 * and the engine has not heard of it yet. */
typedef enum ms_state { MS_NONE, MS_ACTIVE, MS_RBONLY } ms_state;

typedef struct ms_conn {
    drv_conn base;
    DBPROCESS *db;
    ms_diag diag;
    ms_state state;
    xac_xid xid; /* valid when state != MS_NONE */
    int rb_rc;   /* MS_RBONLY: why, as an XA_RB* code and the server's words */
    char rb_msg[XAC_ERR_MSG_MAX];
    bool xa_ready; /* xp_sqljdbc_xa_init_ex ran on this session */
    char where[300];
} ms_conn;

/* mssql_conn.c: the link, batches, RPCs and their results. */

/* Logs in and readies a session (no marker table yet); *out has no ops. */
int ms_connect(const drv_conf *conf, ms_conn **out, xac_err *err);
/* Closes the link (SQL Server rolls back what is open) and frees c. */
void ms_free(ms_conn *c);
/* The resource's port, or SQL Server's default. */
int ms_port(const drv_conf *cf);
/* The resource's name, for messages. */
const char *ms_rname(const ms_conn *c);
/* A message without its leading "resource NAME: ", to quote it in another. */
const char *ms_tail(const ms_conn *c, const char *m);
/* One line, without the newlines servers put in messages. */
void ms_copy_line(char *dst, size_t n, const char *src);
/* Clears what the handlers saw, before a new call to the server. */
void ms_begin(ms_conn *c);
/* Closes the link of a connection marked broken. */
void ms_drop_if_broken(ms_conn *c);
/* Runs sql (NUL-terminated) as one batch; rows, when not NULL, gets its first result. */
int ms_batch(ms_conn *c, drv_step step, const char *what, const char *sql, xac_rows *rows,
             xac_err *err);
/* Sends the RPC built with dbrpcinit/dbrpcparam and reads its results. */
int ms_rpc_run(ms_conn *c, drv_step step, const char *what, xac_rows *rows, xac_err *err);
/* Whether there is a live handle to build an RPC on. */
bool ms_have_db(ms_conn *c);
/* A failure while the RPC is being built: nothing was sent. */
int ms_rpc_build_fail(ms_conn *c, drv_step step, const char *what, xac_err *err);

/* mssql.c: the local transaction. */

/* Answers a commit of a transaction SQL Server already rolled back, and ends it. */
int ms_rb_finish(ms_conn *c, const char *what, xac_err *err);
/* Rolls the local transaction back after a failure the caller reports, and forgets it. */
void ms_local_drop(ms_conn *c);

/* mssql_xa.c: branches prepared by other tools, through xp_sqljdbc_xa_*. */

/* Commits a prepared branch by XID (xp_sqljdbc_xa_commit). */
int ms_xa_commit(ms_conn *c, const xac_xid *xid, xac_err *err);
/* Rolls a prepared branch back by XID (xp_sqljdbc_xa_rollback). */
int ms_xa_rollback(ms_conn *c, const xac_xid *xid, xac_err *err);
/* drv_ops.recover: the prepared branches (xp_sqljdbc_xa_recover). */
int ms_xa_recover(drv_conn *dc, drv_indoubt **out, size_t *n, xac_err *err);
/* drv_ops.forget: a heuristically finished branch (xp_sqljdbc_xa_forget). */
int ms_xa_forget(drv_conn *dc, const xac_xid *xid, xac_err *err);

/* mssql_marker.c: the commit-marker table. */

/* Creates the marker table when missing; once per process and resource. */
int ms_marker_ensure_table(ms_conn *c, xac_err *err);
/* drv_ops.lrc_commit: the commit marker and COMMIT TRANSACTION. */
int ms_lrc_commit(drv_conn *dc, const char *gtrid, xac_err *err);
/* drv_ops.lrc_marker: a gtrid's marker, fencing it with an abort marker if asked. */
int ms_lrc_marker(drv_conn *dc, const char *gtrid, bool fence, drv_marker *out, xac_err *err);
/* drv_ops.lrc_forget: removes markers, in batches, and old abort markers. */
int ms_lrc_forget(drv_conn *dc, const char *const *gtrids, size_t n, int64_t aborted_before_unix,
                  xac_err *err);
/* drv_ops.lrc_list: the gtrids of the commit markers under a prefix. */
int ms_lrc_list(drv_conn *dc, const char *prefix, char (**out)[XAC_GTRID_MAX + 1], size_t *n,
                xac_err *err);

#endif
