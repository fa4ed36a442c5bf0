/* libxac: the client library of the xac transaction coordinator.
 *
 * An application connects to xacd, begins a global transaction, runs SQL on
 * named resources (each a database that xacd knows) and commits or rolls back.
 * Either every change commits or none does. Parameters are bound with '?'
 * placeholders, never pasted into the SQL text.
 *
 *     xac_conn *c; xac_tx *tx; xac_error e;
 *     if (xac_connect("unix:/run/xac/xacd.sock", "app", "secret", &c, &e)) ...
 *     xac_begin(c, 0, &tx, &e);
 *     xac_param p[] = {xac_int(100), xac_int(1)};
 *     xac_exec(tx, "bank_a", "UPDATE acct SET bal = bal - ? WHERE id = ?", p, 2, NULL, &e);
 *     ...
 *     if (xac_commit(tx, &e) == XAC_OK) puts("committed");
 *     else printf("not committed: %s: %s\n", e.resource, e.msg);
 *     xac_close(c);
 *
 * A connection carries one transaction at a time and must not be used by two
 * threads at once. Every function that can fail returns 0 or an error code
 * (the XAC_E* values below) and fills *err when err is not NULL. */
#ifndef XAC_H
#define XAC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes; the same numbers travel in the protocol's ERROR frames. */
#define XAC_OK        0
#define XAC_EPROTO    1
#define XAC_EVERSION  2
#define XAC_EAUTH     3
#define XAC_ELIMIT    4
#define XAC_ESTATE    5
#define XAC_ERESOURCE 6
#define XAC_ESQL      7
#define XAC_ERMFAIL   8
#define XAC_ETIMEOUT  9
#define XAC_EROLLBACK 10 /* the transaction was rolled back; resource and msg say why */
#define XAC_EJOURNAL  11
#define XAC_ECONFIG   12
#define XAC_EIO       13
#define XAC_ENOMEM    14
#define XAC_EINTERNAL 15
#define XAC_EINVAL    16
#define XAC_ECONN     17 /* the connection to xacd was lost */

typedef struct xac_error {
    int code;
    char resource[65]; /* the resource the error concerns, "" when none */
    char msg[512];
} xac_error;

typedef struct xac_conn xac_conn;
typedef struct xac_tx xac_tx;
typedef struct xac_result xac_result;

/* A bound parameter. Build them with the constructors below; TEXT and BLOB
 * point at caller memory that must stay valid during the call. */
typedef struct xac_param {
    int type; /* 0 NULL, 1 INT, 2 DOUBLE, 3 TEXT, 4 BLOB */
    int64_t i;
    double d;
    const char *s;
    size_t len;
} xac_param;

xac_param xac_null(void);
xac_param xac_int(int64_t v);
xac_param xac_double(double v);
xac_param xac_text(const char *s); /* NUL-terminated */
xac_param xac_blob(const void *p, size_t len);

/* Transaction states returned by xac_status. */
#define XAC_STATE_UNKNOWN     0 /* not live, no commit record: it did not commit */
#define XAC_STATE_ACTIVE      1
#define XAC_STATE_PREPARING   2
#define XAC_STATE_COMMITTING  3 /* commit decided and durable, finishing */
#define XAC_STATE_COMMITTED   4
#define XAC_STATE_ROLLED_BACK 5

/* addr: "unix:/path", "tcp:host:port", or a plain path (a Unix socket). */
int xac_connect(const char *addr, const char *client, const char *token, xac_conn **out,
                xac_error *err);
void xac_close(xac_conn *c); /* an open transaction is rolled back by xacd */
const char *xac_node_id(const xac_conn *c);

/* timeout_ms 0: the server's default. The tx belongs to c. */
int xac_begin(xac_conn *c, uint32_t timeout_ms, xac_tx **out, xac_error *err);

/* xac_begin with flags; xac_begin is xac_begin_ex with flags 0.
 * XAC_BEGIN_DEFER sends nothing now: the BEGIN goes out in the same write as
 * the transaction's first request (xac_exec, xac_commit or xac_rollback),
 * which saves a round trip to xacd. The timeout then counts from when that
 * request reaches xacd. If the BEGIN fails there, that call returns BEGIN's
 * error (the code and message xac_begin would have given) and nothing ran:
 * a later xac_exec gets XAC_EROLLBACK, xac_commit XAC_EROLLBACK, xac_rollback
 * XAC_OK. */
#define XAC_BEGIN_DEFER 1u
int xac_begin_ex(xac_conn *c, uint32_t timeout_ms, unsigned flags, xac_tx **out, xac_error *err);

/* The transaction's gtrid; "" while its BEGIN is deferred (not yet sent, or
 * failed). */
const char *xac_tx_gtrid(const xac_tx *tx);

/* Runs one statement on the named resource. *out may be NULL when the result
 * is not wanted; otherwise free it with xac_result_free. An SQL error gives
 * XAC_ESQL and marks the transaction for rollback: its commit will roll back. */
int xac_exec(xac_tx *tx, const char *resource, const char *sql, const xac_param *params,
             size_t nparams, xac_result **out, xac_error *err);

/* xac_exec with flags; xac_exec is xac_exec_ex with flags 0.
 * XAC_EXEC_DEFER sends nothing now and returns no result (out must be NULL):
 * the EXEC goes out in the same write as the transaction's next request, so
 * a run of statements whose results the application does not need costs one
 * round trip to xacd, COMMIT included. The parameters are copied. An error
 * of a deferred EXEC comes back from that next call: since any failed EXEC
 * makes the transaction rollback-only, a later xac_exec gets XAC_EROLLBACK
 * with the first failure's resource and message, and xac_commit rolls back
 * (XAC_EROLLBACK, same message). xac_rollback drops deferred EXECs unsent. */
#define XAC_EXEC_DEFER 1u
int xac_exec_ex(xac_tx *tx, const char *resource, const char *sql, const xac_param *params,
                size_t nparams, unsigned flags, xac_result **out, xac_error *err);

/* XAC_OK: every branch committed. XAC_EROLLBACK: every branch rolled back,
 * err->resource and err->msg say which resource refused and why. Any other
 * code (XAC_ECONN, ...): the outcome is not known to the client; ask
 * xac_status with the gtrid on a new connection. Either way tx is freed. */
int xac_commit(xac_tx *tx, xac_error *err);
int xac_rollback(xac_tx *tx, xac_error *err);

int xac_status(xac_conn *c, const char *gtrid, int *state, xac_error *err);
const char *xac_state_name(int state);
const char *xac_strerror(int code);

/* Results: either a row set or an affected-row count. Values are text as
 * the database renders them; NULL for SQL NULL. */
int xac_result_has_rows(const xac_result *r);
uint64_t xac_result_affected(const xac_result *r);
size_t xac_result_ncols(const xac_result *r);
size_t xac_result_nrows(const xac_result *r);
const char *xac_result_colname(const xac_result *r, size_t col);
const char *xac_result_value(const xac_result *r, size_t row, size_t col, size_t *len);
void xac_result_free(xac_result *r);

#ifdef __cplusplus
}
#endif
#endif
