/* xac-bench's `local` mode: what an application without 2PC pays. Each
 * client holds one connection per database and runs, in each database it
 * touches, a plain local transaction (BEGIN, the workload's statements,
 * COMMIT), the commits one after the other as such an application would:
 * nothing makes the databases agree. It deliberately bypasses xac's drivers
 * and uses the client libraries as an application would: libmariadb with the
 * text protocol (BEGIN, each statement and COMMIT are one round trip each),
 * and for PostgreSQL ODBC with autocommit off and each statement prepared
 * once per connection (psqlodbc, with the options the odbc driver uses), as
 * the project links no libpq. */
#include <inttypes.h>
#include <mysql.h>
#include <pthread.h>
#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_workload.h"

/* MariaDB error numbers the server answers for a transaction it rolled
 * back or would wait on forever. */
#define ER_LOCK_WAIT_TIMEOUT 1205
#define ER_LOCK_DEADLOCK     1213
#define CR_SERVER_GONE_ERROR 2006
#define CR_SERVER_LOST       2013

#define PG_CACHE 4 /* distinct statements a workload sends to PostgreSQL */

typedef struct pg_stmt {
    const char *sql; /* the static text it was prepared from; NULL: free slot */
    SQLHSTMT st;
    SQLBIGINT p[2];
    SQLLEN ind[2];
} pg_stmt;

struct bench_local {
    bench_workload w;
    unsigned client_id;
    uint64_t rng;
    unsigned dbs;
    MYSQL *my[BENCH_DB_N]; /* MY and MY2 */
    SQLHDBC pg;
    bool pg_connected;
    pg_stmt pgs[PG_CACHE];
    bool open[BENCH_DB_N]; /* a local transaction is open */
};

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static SQLHENV env = SQL_NULL_HENV;

static void env_init(void)
{
    mysql_library_init(0, NULL, NULL);
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env))) {
        env = SQL_NULL_HENV;
        return;
    }
    SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
}

/* ---------------------------------------------------------------- MariaDB */

static int my_fail(MYSQL *m, int db, const char *what, xac_err *err)
{
    unsigned no = mysql_errno(m);
    int code = XAC_ESQL;
    if (no == ER_LOCK_DEADLOCK || no == ER_LOCK_WAIT_TIMEOUT)
        code = XAC_EROLLBACK;
    else if (no == CR_SERVER_GONE_ERROR || no == CR_SERVER_LOST)
        code = XAC_ERMFAIL;
    return xac_err_set(err, code, "%s: %s: error %u (%s): %s", bench_db_name(db), what, no,
                       mysql_sqlstate(m), mysql_error(m));
}

static int my_query(MYSQL *m, int db, const char *sql, size_t len, bool read, xac_err *err)
{
    if (mysql_real_query(m, sql, (unsigned long)len) != 0)
        return my_fail(m, db, sql, err);
    if (!read)
        return XAC_OK;
    MYSQL_RES *res = mysql_store_result(m);
    if (res == NULL)
        return my_fail(m, db, sql, err);
    bool one = mysql_num_rows(res) == 1 && mysql_fetch_row(res) != NULL;
    mysql_free_result(res);
    return one ? XAC_OK
               : xac_err_set(err, XAC_ESQL, "%s: \"%s\" returned no row", bench_db_name(db), sql);
}

/* The statement with its '?' replaced by the (integer) parameters. */
static int my_text(const bench_stmt *s, char *out, size_t cap, size_t *len, xac_err *err)
{
    size_t o = 0, p = 0;
    for (const char *q = s->sql; *q != '\0'; q++) {
        int w;
        if (*q == '?' && p < s->nparams)
            w = snprintf(out + o, cap - o, "%" PRId64, s->params[p++].i);
        else
            w = snprintf(out + o, cap - o, "%c", *q);
        if (w < 0 || (size_t)w >= cap - o)
            return xac_err_set(err, XAC_EINTERNAL, "statement too long: %s", s->sql);
        o += (size_t)w;
    }
    *len = o;
    return XAC_OK;
}

static int my_connect(const drv_conf *conf, MYSQL **out, xac_err *err)
{
    MYSQL *m = mysql_init(NULL);
    if (m == NULL)
        return xac_err_set(err, XAC_ENOMEM, "%s: mysql_init failed", conf->name);
    unsigned timeout = (conf->connect_timeout_ms + 999u) / 1000u;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    if (mysql_real_connect(m, conf->host, conf->user, conf->password, conf->database,
                           (unsigned)conf->port, NULL, 0) == NULL) {
        xac_err_set(err, XAC_ERMFAIL, "%s: cannot connect to %s:%d: %s", conf->name, conf->host,
                    conf->port, mysql_error(m));
        mysql_close(m);
        return XAC_ERMFAIL;
    }
    *out = m;
    return XAC_OK;
}

/* ------------------------------------------------------------- PostgreSQL */

static int pg_fail(SQLSMALLINT htype, SQLHANDLE h, const char *what, xac_err *err)
{
    SQLCHAR state[6] = "", text[400] = "";
    SQLINTEGER native = 0;
    SQLSMALLINT len = 0;
    SQLGetDiagRec(htype, h, 1, state, &native, text, (SQLSMALLINT)sizeof text, &len);
    int code = XAC_ESQL;
    /* 40001 serialization failure, 40P01 deadlock: rolled back; 08: link lost. */
    if (strncmp((const char *)state, "40", 2) == 0)
        code = XAC_EROLLBACK;
    else if (strncmp((const char *)state, "08", 2) == 0)
        code = XAC_ERMFAIL;
    return xac_err_set(err, code, "pg: %s: SQLSTATE %s: %s", what, (const char *)state,
                       (const char *)text);
}

static int pg_connect(bench_local *c, const drv_conf *conf, xac_err *err)
{
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, env, &c->pg)))
        return xac_err_set(err, XAC_ERMFAIL, "pg: cannot allocate an ODBC connection handle");
    char cs[2048];
    /* The odbc driver's PostgreSQL options (drivers/odbc_postgresql.c), so
     * that only the protocol differs between the modes. */
    int n = snprintf(cs, sizeof cs,
                     "DRIVER={%s};Protocol=7.4-0;Debug=0;CommLog=0;UseServerSidePrepare=0;"
                     "UseDeclareFetch=0;Parse=0;SERVER=%s;PORT=%d;DATABASE=%s;UID=%s;PWD={%s};",
                     conf->odbc_driver, conf->host, conf->port, conf->database, conf->user,
                     conf->password);
    if (n < 0 || (size_t)n >= sizeof cs)
        return xac_err_set(err, XAC_ECONFIG, "pg: connection string too long");
    SQLRETURN r = SQLDriverConnect(c->pg, NULL, (SQLCHAR *)cs, (SQLSMALLINT)n, NULL, 0, NULL,
                                   SQL_DRIVER_NOPROMPT);
    if (!SQL_SUCCEEDED(r))
        return pg_fail(SQL_HANDLE_DBC, c->pg, "connect", err);
    c->pg_connected = true;
    r = SQLSetConnectAttr(c->pg, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0);
    if (!SQL_SUCCEEDED(r))
        return pg_fail(SQL_HANDLE_DBC, c->pg, "autocommit off", err);
    return XAC_OK;
}

/* The prepared statement for sql, prepared and bound on first use. */
static int pg_stmt_for(bench_local *c, const bench_stmt *s, pg_stmt **out, xac_err *err)
{
    pg_stmt *free_slot = NULL;
    for (int i = 0; i < PG_CACHE; i++) {
        if (c->pgs[i].sql == s->sql) {
            *out = &c->pgs[i];
            return XAC_OK;
        }
        if (c->pgs[i].sql == NULL && free_slot == NULL)
            free_slot = &c->pgs[i];
    }
    if (free_slot == NULL)
        return xac_err_set(err, XAC_EINTERNAL, "pg: more than %d distinct statements", PG_CACHE);
    pg_stmt *p = free_slot;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, c->pg, &p->st)))
        return pg_fail(SQL_HANDLE_DBC, c->pg, "allocate a statement", err);
    SQLRETURN r = SQLPrepare(p->st, (SQLCHAR *)(uintptr_t)s->sql, SQL_NTS);
    for (SQLUSMALLINT i = 0; SQL_SUCCEEDED(r) && i < s->nparams; i++)
        r = SQLBindParameter(p->st, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_SBIGINT,
                             SQL_BIGINT, 0, 0, &p->p[i], 0, &p->ind[i]);
    if (!SQL_SUCCEEDED(r)) {
        int rc = pg_fail(SQL_HANDLE_STMT, p->st, s->sql, err);
        SQLFreeHandle(SQL_HANDLE_STMT, p->st);
        return rc;
    }
    p->sql = s->sql;
    *out = p;
    return XAC_OK;
}

static int pg_exec(bench_local *c, const bench_stmt *s, xac_err *err)
{
    pg_stmt *p = NULL;
    int rc = pg_stmt_for(c, s, &p, err);
    if (rc != XAC_OK)
        return rc;
    for (size_t i = 0; i < s->nparams; i++) {
        p->p[i] = (SQLBIGINT)s->params[i].i;
        p->ind[i] = 0;
    }
    SQLRETURN r = SQLExecute(p->st);
    if (!SQL_SUCCEEDED(r) && r != SQL_NO_DATA)
        return pg_fail(SQL_HANDLE_STMT, p->st, s->sql, err);
    if (!s->read)
        return XAC_OK;
    SQLBIGINT v = 0;
    SQLLEN ind = 0;
    r = SQLFetch(p->st);
    if (SQL_SUCCEEDED(r))
        r = SQLGetData(p->st, 1, SQL_C_SBIGINT, &v, 0, &ind);
    SQLFreeStmt(p->st, SQL_CLOSE);
    if (!SQL_SUCCEEDED(r))
        return r == SQL_NO_DATA ? xac_err_set(err, XAC_ESQL, "pg: \"%s\" returned no row", s->sql)
                                : pg_fail(SQL_HANDLE_STMT, p->st, s->sql, err);
    return XAC_OK;
}

static int pg_end(bench_local *c, bool commit, xac_err *err)
{
    SQLRETURN r = SQLEndTran(SQL_HANDLE_DBC, c->pg, commit ? SQL_COMMIT : SQL_ROLLBACK);
    return SQL_SUCCEEDED(r) ? XAC_OK
                            : pg_fail(SQL_HANDLE_DBC, c->pg, commit ? "COMMIT" : "ROLLBACK", err);
}

/* ------------------------------------------------------------------ client */

void bench_local_close(bench_local *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < PG_CACHE; i++)
        if (c->pgs[i].sql != NULL)
            SQLFreeHandle(SQL_HANDLE_STMT, c->pgs[i].st);
    if (c->pg != SQL_NULL_HDBC) {
        if (c->pg_connected) {
            SQLEndTran(SQL_HANDLE_DBC, c->pg, SQL_ROLLBACK);
            SQLDisconnect(c->pg);
        }
        SQLFreeHandle(SQL_HANDLE_DBC, c->pg);
    }
    for (int db = 0; db < BENCH_DB_N; db++)
        if (c->my[db] != NULL)
            mysql_close(c->my[db]);
    free(c);
}

int bench_local_open(const bench_target *t, const bench_workload *w, unsigned client_id,
                     bench_local **out, xac_err *err)
{
    *out = NULL;
    pthread_once(&env_once, env_init);
    if (env == SQL_NULL_HENV)
        return xac_err_set(err, XAC_ERMFAIL, "cannot allocate an ODBC environment");
    bench_local *c = calloc(1, sizeof *c);
    if (c == NULL)
        return xac_err_set(err, XAC_ENOMEM, "local client %u: out of memory", client_id);
    c->w = *w;
    c->client_id = client_id;
    c->rng = bench_rng_seed(client_id);
    c->dbs = bench_workload_dbs(w);
    c->pg = SQL_NULL_HDBC;
    int rc = XAC_OK;
    for (int db = 0; db < BENCH_DB_N && rc == XAC_OK; db++) {
        if ((c->dbs & 1u << db) == 0)
            continue;
        if (db == BENCH_DB_PG)
            rc = pg_connect(c, &t->db[db], err);
        else
            rc = my_connect(&t->db[db], &c->my[db], err);
    }
    if (rc != XAC_OK) {
        xac_err_prefix(err, "local client %u", client_id);
        bench_local_close(c);
        return rc;
    }
    *out = c;
    return XAC_OK;
}

/* Rolls back what is open after a failure; the first error stays in err. */
static int abort_open(bench_local *c, int rc, xac_err *err)
{
    for (int db = 0; db < BENCH_DB_N; db++) {
        if (!c->open[db])
            continue;
        c->open[db] = false;
        xac_err e2;
        xac_err_clear(&e2);
        int r = db == BENCH_DB_PG ? pg_end(c, false, &e2)
                                  : my_query(c->my[db], db, "ROLLBACK", 8, false, &e2);
        if (r != XAC_OK && rc == XAC_EROLLBACK) {
            *err = e2;
            rc = r;
        }
    }
    return rc;
}

int bench_local_tx(bench_local *c, uint64_t seq, xac_err *err)
{
    (void)seq;
    bench_stmt st[BENCH_STMT_MAX];
    size_t n = bench_workload_stmts(&c->w, &c->rng, st);
    int rc = XAC_OK;
    for (size_t i = 0; i < n && rc == XAC_OK; i++) {
        const bench_stmt *s = &st[i];
        if (s->db == BENCH_DB_PG) {
            /* With autocommit off psqlodbc opens the transaction itself,
             * with the first statement. */
            c->open[s->db] = true;
            rc = pg_exec(c, s, err);
            continue;
        }
        MYSQL *m = c->my[s->db];
        if (!c->open[s->db]) {
            if ((rc = my_query(m, s->db, "BEGIN", 5, false, err)) != XAC_OK)
                break;
            c->open[s->db] = true;
        }
        char sql[512];
        size_t len = 0;
        if ((rc = my_text(s, sql, sizeof sql, &len, err)) == XAC_OK)
            rc = my_query(m, s->db, sql, len, s->read, err);
    }
    if (rc != XAC_OK)
        return abort_open(c, rc, err);
    bool committed_any = false;
    for (int db = 0; db < BENCH_DB_N; db++) {
        if (!c->open[db])
            continue;
        rc = db == BENCH_DB_PG ? pg_end(c, true, err)
                               : my_query(c->my[db], db, "COMMIT", 6, false, err);
        c->open[db] = false;
        if (rc != XAC_OK) {
            xac_err_prefix(err, "local commit");
            rc = abort_open(c, rc, err);
            /* When a database before this one has committed, this is exactly
             * the partial outcome the mode does nothing about: not a clean
             * rollback. */
            return rc == XAC_EROLLBACK && committed_any ? XAC_EINTERNAL : rc;
        }
        committed_any = true;
    }
    return XAC_OK;
}

static int ops_open(const bench_target *t, const bench_workload *w, unsigned client_id, void **out,
                    xac_err *err)
{
    bench_local *c = NULL;
    int rc = bench_local_open(t, w, client_id, &c, err);
    *out = c;
    return rc;
}

static int ops_tx(void *c, uint64_t seq, xac_err *err)
{
    return bench_local_tx(c, seq, err);
}

static void ops_close(void *c)
{
    bench_local_close(c);
}

const bench_mode_ops bench_local_ops = {
    .name = "local", .open = ops_open, .tx = ops_tx, .close = ops_close};
