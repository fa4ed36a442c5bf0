/* The ODBC driver (unixODBC): connecting, running statements with bound
 * parameters (each text prepared once per connection and kept), fetching
 * results as text and turning diagnostics into XA codes and messages. What a
 * branch means on the server is the dialect's business (odbc_postgresql.c,
 * odbc_mysql.c); this file only routes the switch to it. */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odbc_dialect.h"

/* One environment for the process: unixODBC's environment is thread-safe and
 * creating one per connection would reload the driver every time. */
static SQLHENV odbc_env = SQL_NULL_HENV;
static pthread_once_t odbc_env_once = PTHREAD_ONCE_INIT;
static char odbc_env_error[256];

static void odbc_env_init(void)
{
    SQLHENV env;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env))) {
        snprintf(odbc_env_error, sizeof odbc_env_error,
                 "cannot allocate the unixODBC environment (is libodbc installed?)");
        return;
    }
    if (!SQL_SUCCEEDED(
            SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)(uintptr_t)SQL_OV_ODBC3, 0))) {
        snprintf(odbc_env_error, sizeof odbc_env_error,
                 "the unixODBC environment refused ODBC version 3");
        SQLFreeHandle(SQL_HANDLE_ENV, env);
        return;
    }
    odbc_env = env;
}

static const drv_odbc_dialect *odbc_find_dialect(const char *name)
{
    if (strcmp(name, drv_odbc_postgresql.name) == 0)
        return &drv_odbc_postgresql;
    if (strcmp(name, drv_odbc_mysql.name) == 0)
        return &drv_odbc_mysql;
    return NULL;
}

/* Fills err for a failure the driver finds itself, without diagnostics from
 * ODBC, and returns the XA code xa. */
static int odbc_err(xac_err *err, int xa, int code, const char *resource, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int odbc_err(xac_err *err, int xa, int code, const char *resource, const char *fmt, ...)
{
    char msg[XAC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    xac_err_setr(err, code, resource, "%s", msg);
    return xa;
}

/* ------------------------------------------------------------ diagnostics */

static void odbc_get_diag(SQLSMALLINT htype, SQLHANDLE h, SQLRETURN ret, drv_odbc_diag *d)
{
    SQLCHAR state[6] = "";
    SQLINTEGER native = 0;
    SQLSMALLINT len = 0;
    memset(d, 0, sizeof *d);
    SQLRETURN r = SQLGetDiagRec(htype, h, 1, state, &native, (SQLCHAR *)d->text,
                                (SQLSMALLINT)sizeof d->text, &len);
    if (!SQL_SUCCEEDED(r)) {
        snprintf(d->sqlstate, sizeof d->sqlstate, "HY000");
        snprintf(d->text, sizeof d->text, "the ODBC driver gave no diagnostics (return code %d)",
                 (int)ret);
        return;
    }
    memcpy(d->sqlstate, state, 5);
    d->sqlstate[5] = '\0';
    d->native = (long)native;
    /* Drivers end messages with newlines; keep the message on one line. */
    for (char *p = d->text; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(d->text);
    while (n > 0 && d->text[n - 1] == ' ')
        d->text[--n] = '\0';
}

static bool odbc_conn_dead(drv_odbc_conn *c)
{
    SQLUINTEGER dead = SQL_CD_FALSE;
    if (c->dbc == SQL_NULL_HDBC)
        return true;
    SQLRETURN r = SQLGetConnectAttr(c->dbc, SQL_ATTR_CONNECTION_DEAD, &dead, 0, NULL);
    return SQL_SUCCEEDED(r) && dead == SQL_CD_TRUE;
}

/* Reads the diagnostics of a failed call on h, decides the XA code and fills
 * err. Every failure of an ODBC call ends here. */
static int odbc_fail(drv_odbc_conn *c, SQLSMALLINT htype, SQLHANDLE h, SQLRETURN ret, drv_step step,
                     const char *what, xac_err *err)
{
    drv_odbc_diag *d = &c->last_diag;
    odbc_get_diag(htype, h, ret, d);
    bool lost = strncmp(d->sqlstate, "08", 2) == 0 || strcmp(d->sqlstate, "HYT01") == 0 ||
                (c->dialect->is_conn_loss != NULL && c->dialect->is_conn_loss(d)) ||
                odbc_conn_dead(c);
    int rc = lost ? XAER_RMFAIL : c->dialect->map_error(d, step);
    if (rc == XAER_RMFAIL)
        c->base.broken = true;
    xac_err_setr(err, drv_xa_to_code(rc), c->base.conf->name,
                 "%s on resource %s failed (%s): SQLSTATE %s, native error %ld: %s", what,
                 c->base.conf->name, drv_xa_name(rc), d->sqlstate, d->native, d->text);
    return rc;
}

/* ------------------------------------------------------ connection string */

typedef struct odbc_str {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} odbc_str;

static void odbc_str_add(odbc_str *s, const char *p, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *q = malloc(cap);
        if (q == NULL) {
            s->oom = true;
            return;
        }
        if (s->p != NULL) {
            memcpy(q, s->p, s->len);
            explicit_bzero(s->p, s->cap);
            free(s->p);
        }
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void odbc_str_free(odbc_str *s)
{
    if (s->p != NULL) {
        explicit_bzero(s->p, s->cap); /* it held a password */
        free(s->p);
    }
    memset(s, 0, sizeof *s);
}

/* A value in braces, with each '}' written twice as the ODBC grammar says. */
static void odbc_str_braced(odbc_str *s, const char *value)
{
    odbc_str_add(s, "{", 1);
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '}')
            odbc_str_add(s, "}}", 2);
        else
            odbc_str_add(s, p, 1);
    }
    odbc_str_add(s, "}", 1);
}

/* key=value; with the value braced when it could be misread: a ';' would end
 * it, braces and edge spaces would be taken as syntax. */
static void odbc_str_pair(odbc_str *s, const char *key, const char *value)
{
    size_t n = strlen(value);
    bool brace =
        n > 0 && (strpbrk(value, ";{}=") != NULL || value[0] == ' ' || value[n - 1] == ' ');
    odbc_str_add(s, key, strlen(key));
    odbc_str_add(s, "=", 1);
    if (brace)
        odbc_str_braced(s, value);
    else
        odbc_str_add(s, value, n);
    odbc_str_add(s, ";", 1);
}

static void odbc_build_conn_string(const drv_conf *conf, const drv_odbc_dialect *dl, odbc_str *s)
{
    char num[32];
    /* Driver names like "PostgreSQL Unicode" have spaces: always braced. */
    odbc_str_add(s, "DRIVER=", 7);
    odbc_str_braced(s, conf->odbc_driver);
    odbc_str_add(s, ";", 1);
    if (dl->conn_defaults != NULL)
        odbc_str_add(s, dl->conn_defaults, strlen(dl->conn_defaults));
    if (conf->socket[0] != '\0' && dl->socket_key != NULL) {
        odbc_str_pair(s, "SERVER", conf->host[0] != '\0' ? conf->host : "localhost");
        odbc_str_pair(s, dl->socket_key, conf->socket);
    } else if (conf->socket[0] != '\0') {
        odbc_str_pair(s, "SERVER", conf->socket);
    } else {
        odbc_str_pair(s, "SERVER", conf->host[0] != '\0' ? conf->host : "localhost");
    }
    if (conf->port > 0) {
        snprintf(num, sizeof num, "%d", conf->port);
        odbc_str_pair(s, "PORT", num);
    }
    if (conf->io_timeout_ms > 0 && dl->read_timeout_key != NULL) {
        snprintf(num, sizeof num, "%u", (conf->io_timeout_ms + 999u) / 1000u);
        odbc_str_pair(s, dl->read_timeout_key, num);
        odbc_str_pair(s, dl->write_timeout_key, num);
    }
    if (conf->database[0] != '\0')
        odbc_str_pair(s, "DATABASE", conf->database);
    if (conf->user[0] != '\0')
        odbc_str_pair(s, "UID", conf->user);
    odbc_str_pair(s, "PWD", conf->password);
    size_t n = strlen(conf->dsn);
    if (n > 0) {
        odbc_str_add(s, conf->dsn, n);
        if (conf->dsn[n - 1] != ';')
            odbc_str_add(s, ";", 1);
    }
}

static SQLULEN odbc_seconds(uint32_t ms)
{
    return (SQLULEN)((ms + 999u) / 1000u);
}

/* ------------------------------------------------------ statement cache */

/* Longer texts are prepared for one exec only: the cache should not pin
 * megabytes of SQL. */
#define ODBC_STMT_TEXT_MAX 4096

static void odbc_stmt_drop(drv_odbc_conn *c, size_t i)
{
    SQLFreeHandle(SQL_HANDLE_STMT, c->stmts[i].st);
    free(c->stmts[i].sql);
    c->stmts[i] = c->stmts[--c->nstmts];
}

static void odbc_stmt_drop_all(drv_odbc_conn *c)
{
    while (c->nstmts > 0)
        odbc_stmt_drop(c, c->nstmts - 1);
}

static drv_odbc_stmt *odbc_stmt_find(drv_odbc_conn *c, const char *sql, size_t len)
{
    for (size_t i = 0; i < c->nstmts; i++) {
        drv_odbc_stmt *k = &c->stmts[i];
        if (k->len == len && memcmp(k->sql, sql, len) == 0) {
            k->used = ++c->stmt_clock;
            return k;
        }
    }
    return NULL;
}

/* Keeps the prepared st for sql, dropping the least recently used statement
 * when full. NULL when it cannot be kept: the caller frees st after use. */
static drv_odbc_stmt *odbc_stmt_keep(drv_odbc_conn *c, SQLHSTMT st, const char *sql, size_t len,
                                     SQLSMALLINT nmarks)
{
    if (len > ODBC_STMT_TEXT_MAX)
        return NULL;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, sql, len);
    copy[len] = '\0';
    if (c->nstmts == DRV_ODBC_STMT_CACHE) {
        size_t old = 0;
        for (size_t i = 1; i < c->nstmts; i++)
            if (c->stmts[i].used < c->stmts[old].used)
                old = i;
        odbc_stmt_drop(c, old);
    }
    drv_odbc_stmt *k = &c->stmts[c->nstmts++];
    k->st = st;
    k->sql = copy;
    k->len = len;
    k->nmarks = nmarks;
    k->used = ++c->stmt_clock;
    return k;
}

/* ------------------------------------------------------------ open, close */

static void odbc_free_conn(drv_odbc_conn *c)
{
    odbc_stmt_drop_all(c);
    if (c->dbc != SQL_NULL_HDBC)
        SQLFreeHandle(SQL_HANDLE_DBC, c->dbc);
    free(c);
}

static int odbc_open(const drv_conf *conf, drv_conn **out, xac_err *err)
{
    *out = NULL;
    const drv_odbc_dialect *dl = odbc_find_dialect(conf->dialect);
    if (dl == NULL)
        return odbc_err(err, XAER_INVAL, XAC_ECONFIG, conf->name,
                        "resource %s: unknown ODBC dialect \"%s\" (use \"postgresql\" or "
                        "\"mysql\")",
                        conf->name, conf->dialect);
    if (conf->odbc_driver[0] == '\0')
        return odbc_err(err, XAER_INVAL, XAC_ECONFIG, conf->name,
                        "resource %s: odbc_driver is not set (the driver's name in "
                        "odbcinst.ini, e.g. \"PostgreSQL Unicode\")",
                        conf->name);
    pthread_once(&odbc_env_once, odbc_env_init);
    if (odbc_env == SQL_NULL_HENV)
        return odbc_err(err, XAER_RMFAIL, XAC_ERMFAIL, conf->name, "resource %s: %s", conf->name,
                        odbc_env_error);

    drv_odbc_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return odbc_err(err, XAER_RMERR, XAC_ENOMEM, conf->name,
                        "resource %s: out of memory for a connection", conf->name);
    c->base.ops = &drv_odbc_ops;
    c->base.conf = conf;
    c->dialect = dl;
    c->dbc = SQL_NULL_HDBC;
    SQLRETURN r = SQLAllocHandle(SQL_HANDLE_DBC, odbc_env, &c->dbc);
    if (!SQL_SUCCEEDED(r)) {
        c->dbc = SQL_NULL_HDBC;
        odbc_free_conn(c);
        return odbc_err(err, XAER_RMFAIL, XAC_ERMFAIL, conf->name,
                        "resource %s: cannot allocate an ODBC connection handle", conf->name);
    }
    if (conf->connect_timeout_ms > 0)
        SQLSetConnectAttr(c->dbc, SQL_ATTR_LOGIN_TIMEOUT,
                          (SQLPOINTER)(uintptr_t)odbc_seconds(conf->connect_timeout_ms), 0);

    odbc_str cs = {0};
    odbc_build_conn_string(conf, dl, &cs);
    if (cs.oom || cs.len > SHRT_MAX) {
        odbc_str_free(&cs);
        odbc_free_conn(c);
        return odbc_err(err, XAER_INVAL, XAC_ECONFIG, conf->name,
                        "resource %s: the ODBC connection string is too long", conf->name);
    }
    r = SQLDriverConnect(c->dbc, NULL, (SQLCHAR *)cs.p, (SQLSMALLINT)cs.len, NULL, 0, NULL,
                         SQL_DRIVER_NOPROMPT);
    odbc_str_free(&cs);
    if (!SQL_SUCCEEDED(r)) {
        drv_odbc_diag d;
        char where[PATH_MAX + 16];
        odbc_get_diag(SQL_HANDLE_DBC, c->dbc, r, &d);
        if (conf->socket[0] != '\0')
            snprintf(where, sizeof where, "%s", conf->socket);
        else if (conf->port > 0)
            snprintf(where, sizeof where, "%s:%d", conf->host, conf->port);
        else
            snprintf(where, sizeof where, "%s", conf->host);
        xac_err_setr(err, XAC_ERMFAIL, conf->name,
                     "resource %s: cannot connect to %s database \"%s\" as \"%s\" through "
                     "ODBC driver \"%s\": SQLSTATE %s, native error %ld: %s",
                     conf->name, where, conf->database, conf->user, conf->odbc_driver, d.sqlstate,
                     d.native, d.text);
        odbc_free_conn(c);
        return XAER_RMFAIL;
    }
    c->autocommit = true; /* the ODBC default */
    int rc = dl->setup(c, err);
    if (rc != XA_OK) {
        SQLDisconnect(c->dbc);
        odbc_free_conn(c);
        return rc;
    }
    *out = &c->base;
    return XA_OK;
}

static void odbc_close(drv_conn *base)
{
    if (base == NULL)
        return;
    drv_odbc_conn *c = (drv_odbc_conn *)base;
    /* Unprepared work must not be committed by a driver's disconnect logic. */
    if (!c->autocommit && !c->base.broken)
        SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_ROLLBACK);
    odbc_stmt_drop_all(c); /* before the disconnect: handles need their connection */
    SQLDisconnect(c->dbc);
    odbc_free_conn(c);
}

/* ------------------------------------------------------ statement helpers */

int drv_odbc_query_alone(drv_odbc_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                         size_t nparams, xac_rows *rows, drv_step step, const char *what,
                         xac_err *err)
{
    bool was = c->autocommit;
    int rc = drv_odbc_set_autocommit(c, true, err);
    if (rc != XA_OK)
        return rc;
    rc = drv_odbc_query(c, sql, sql_len, params, nparams, rows, step, what, err);
    if (!was && !c->base.broken) {
        /* A failed restore must not hide the statement's own error. */
        xac_err e2;
        xac_err_clear(&e2);
        int rc2 = drv_odbc_set_autocommit(c, false, rc == XA_OK ? err : &e2);
        if (rc == XA_OK)
            rc = rc2;
    }
    return rc;
}

int drv_odbc_set_autocommit(drv_odbc_conn *c, bool on, xac_err *err)
{
    if (c->autocommit == on)
        return XA_OK;
    SQLRETURN r =
        SQLSetConnectAttr(c->dbc, SQL_ATTR_AUTOCOMMIT,
                          (SQLPOINTER)(uintptr_t)(on ? SQL_AUTOCOMMIT_ON : SQL_AUTOCOMMIT_OFF), 0);
    if (!SQL_SUCCEEDED(r))
        return odbc_fail(c, SQL_HANDLE_DBC, c->dbc, r, DRV_STEP_EXEC,
                         on ? "switching autocommit on" : "switching autocommit off", err);
    c->autocommit = on;
    return XA_OK;
}

int drv_odbc_end_tran(drv_odbc_conn *c, bool commit, drv_step step, const char *what, xac_err *err)
{
    SQLRETURN r = SQLEndTran(SQL_HANDLE_DBC, c->dbc, commit ? SQL_COMMIT : SQL_ROLLBACK);
    if (!SQL_SUCCEEDED(r))
        return odbc_fail(c, SQL_HANDLE_DBC, c->dbc, r, step, what, err);
    return XA_OK;
}

void drv_odbc_branch_clear(drv_odbc_conn *c)
{
    c->branch_active = false;
    c->branch_ended = false;
    c->branch_failed = false;
    c->branch_work = false;
    c->branch_error[0] = '\0';
    memset(&c->branch_xid, 0, sizeof c->branch_xid);
}

/* A growable cell buffer. */
typedef struct odbc_cell {
    char *p;
    size_t len;
    size_t cap;
    bool null;
} odbc_cell;

static bool odbc_cell_reserve(odbc_cell *cell, size_t extra)
{
    if (cell->len + extra <= cell->cap)
        return true;
    size_t cap = cell->cap ? cell->cap : 256;
    while (cap < cell->len + extra)
        cap *= 2;
    char *q = realloc(cell->p, cap);
    if (q == NULL)
        return false;
    cell->p = q;
    cell->cap = cap;
    return true;
}

static bool odbc_is_binary(SQLSMALLINT type)
{
    return type == SQL_BINARY || type == SQL_VARBINARY || type == SQL_LONGVARBINARY;
}

/* Reads one column of the current row, of any length, in chunks. */
static int odbc_get_cell(drv_odbc_conn *c, SQLHSTMT st, SQLUSMALLINT col, bool binary,
                         odbc_cell *cell, drv_step step, const char *what, xac_err *err)
{
    SQLSMALLINT ctype = binary ? SQL_C_BINARY : SQL_C_CHAR;
    size_t term = binary ? 0 : 1; /* SQL_C_CHAR chunks end with a NUL */
    cell->len = 0;
    cell->null = false;
    for (;;) {
        if (!odbc_cell_reserve(cell, 1024))
            return odbc_err(err, XAER_RMERR, XAC_ENOMEM, c->base.conf->name,
                            "%s on resource %s: out of memory reading a column", what,
                            c->base.conf->name);
        size_t avail = cell->cap - cell->len;
        if (avail > (size_t)INT32_MAX)
            avail = (size_t)INT32_MAX;
        SQLLEN ind = 0;
        SQLRETURN r = SQLGetData(st, col, ctype, cell->p + cell->len, (SQLLEN)avail, &ind);
        if (r == SQL_NO_DATA)
            break;
        if (!SQL_SUCCEEDED(r))
            return odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
        if (ind == SQL_NULL_DATA) {
            cell->null = true;
            break;
        }
        if (ind != SQL_NO_TOTAL && (size_t)ind + term <= avail) {
            cell->len += (size_t)ind;
            break;
        }
        /* Truncated: keep what came and ask for the rest. */
        cell->len += avail - term;
        if (ind != SQL_NO_TOTAL && !odbc_cell_reserve(cell, (size_t)ind - (avail - term) + 1))
            return odbc_err(err, XAER_RMERR, XAC_ENOMEM, c->base.conf->name,
                            "%s on resource %s: out of memory reading a column", what,
                            c->base.conf->name);
    }
    if (!odbc_cell_reserve(cell, 1))
        return odbc_err(err, XAER_RMERR, XAC_ENOMEM, c->base.conf->name,
                        "%s on resource %s: out of memory reading a column", what,
                        c->base.conf->name);
    cell->p[cell->len] = '\0';
    return XA_OK;
}

static int odbc_fetch_rows(drv_odbc_conn *c, SQLHSTMT st, SQLSMALLINT ncols, xac_rows *rows,
                           drv_step step, const char *what, xac_err *err)
{
    int rc = XA_OK;
    size_t n = (size_t)ncols;
    char **names = calloc(n, sizeof *names);
    bool *binary = calloc(n, sizeof *binary);
    odbc_cell *cells = calloc(n, sizeof *cells);
    const char **vals = calloc(n, sizeof *vals);
    size_t *lens = calloc(n, sizeof *lens);
    if (names == NULL || binary == NULL || cells == NULL || vals == NULL || lens == NULL) {
        rc = XAER_RMERR;
        xac_err_setr(err, XAC_ENOMEM, c->base.conf->name,
                     "%s on resource %s: out of memory for %zu columns", what, c->base.conf->name,
                     n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        /* Only the name and the type, and not through SQLDescribeCol: asked
         * for a column's type or nullability, psqlodbc looks the column up in
         * pg_attribute, a round trip, with two more to switch
         * statement_timeout off for it and back on for the next statement.
         * SQL_DESC_TYPE is the concise type for all but date and time. */
        SQLCHAR name[256] = "";
        SQLSMALLINT namelen = 0;
        SQLLEN type = 0;
        SQLRETURN r = SQLColAttribute(st, (SQLUSMALLINT)(i + 1), SQL_DESC_NAME, name,
                                      (SQLSMALLINT)sizeof name, &namelen, NULL);
        if (SQL_SUCCEEDED(r))
            r = SQLColAttribute(st, (SQLUSMALLINT)(i + 1), SQL_DESC_TYPE, NULL, 0, NULL, &type);
        if (!SQL_SUCCEEDED(r)) {
            rc = odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
            goto out;
        }
        names[i] = strdup((const char *)name);
        if (names[i] == NULL) {
            rc = XAER_RMERR;
            xac_err_setr(err, XAC_ENOMEM, c->base.conf->name,
                         "%s on resource %s: out of memory for column names", what,
                         c->base.conf->name);
            goto out;
        }
        binary[i] = odbc_is_binary((SQLSMALLINT)type);
    }
    if (xac_rows_set_cols(rows, n, (const char *const *)names, err) != XAC_OK) {
        rc = XAER_RMERR;
        goto out;
    }
    for (;;) {
        SQLRETURN r = SQLFetch(st);
        if (r == SQL_NO_DATA)
            break;
        if (!SQL_SUCCEEDED(r)) {
            rc = odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            rc = odbc_get_cell(c, st, (SQLUSMALLINT)(i + 1), binary[i], &cells[i], step, what, err);
            if (rc != XA_OK)
                goto out;
            vals[i] = cells[i].null ? NULL : cells[i].p;
            lens[i] = cells[i].len;
        }
        if (xac_rows_add(rows, vals, lens, err) != XAC_OK) {
            rc = XAER_RMERR;
            goto out;
        }
    }
out:
    for (size_t i = 0; names != NULL && i < n; i++)
        free(names[i]);
    for (size_t i = 0; cells != NULL && i < n; i++)
        free(cells[i].p);
    free(names);
    free(binary);
    free(cells);
    free(vals);
    free(lens);
    return rc;
}

static int odbc_bind(drv_odbc_conn *c, SQLHSTMT st, const xac_value *params, size_t nparams,
                     SQLLEN *ind, drv_step step, const char *what, xac_err *err)
{
    for (size_t i = 0; i < nparams; i++) {
        const xac_value *v = &params[i];
        SQLSMALLINT ctype, sqltype;
        SQLULEN size = 0;
        SQLPOINTER p;
        SQLLEN buflen = 0;
        switch (v->type) {
        case XAC_T_NULL:
            ctype = SQL_C_CHAR;
            sqltype = SQL_VARCHAR;
            size = 1;
            p = NULL;
            ind[i] = SQL_NULL_DATA;
            break;
        case XAC_T_INT:
            ctype = SQL_C_SBIGINT;
            sqltype = SQL_BIGINT;
            p = (SQLPOINTER)(uintptr_t)&v->i;
            ind[i] = 0;
            break;
        case XAC_T_DOUBLE:
            ctype = SQL_C_DOUBLE;
            sqltype = SQL_DOUBLE;
            p = (SQLPOINTER)(uintptr_t)&v->d;
            ind[i] = 0;
            break;
        case XAC_T_TEXT:
        case XAC_T_BLOB:
            if (v->len > (size_t)INT32_MAX)
                return odbc_err(err, XAER_INVAL, XAC_EINVAL, c->base.conf->name,
                                "%s on resource %s: parameter %zu is too long (%zu bytes)", what,
                                c->base.conf->name, i + 1, v->len);
            ctype = v->type == XAC_T_TEXT ? SQL_C_CHAR : SQL_C_BINARY;
            /* Not the LONG types: psqlodbc would take LONGVARBINARY as a large object. */
            sqltype = v->type == XAC_T_TEXT ? SQL_VARCHAR : SQL_VARBINARY;
            size = v->len > 0 ? v->len : 1;
            p = (SQLPOINTER)(uintptr_t)(v->s != NULL ? v->s : "");
            buflen = (SQLLEN)v->len;
            ind[i] = (SQLLEN)v->len;
            break;
        default:
            return odbc_err(err, XAER_INVAL, XAC_EINVAL, c->base.conf->name,
                            "%s on resource %s: parameter %zu has unknown type %d", what,
                            c->base.conf->name, i + 1, (int)v->type);
        }
        SQLRETURN r = SQLBindParameter(st, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, ctype, sqltype,
                                       size, 0, p, buflen, &ind[i]);
        if (!SQL_SUCCEEDED(r))
            return odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
    }
    return XA_OK;
}

/* drv_odbc_query; keep: statements with parameters are kept for their text.
 * more: when not NULL, the results after the first are walked (an error in
 * one fails the call as the statement's would) and counted into *more. */
static int odbc_query(drv_odbc_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                      size_t nparams, xac_rows *rows, drv_step step, const char *what, bool keep,
                      int *more, xac_err *err)
{
    if (more != NULL)
        *more = 0;
    if (c->base.broken)
        return odbc_err(err, XAER_RMFAIL, XAC_ERMFAIL, c->base.conf->name,
                        "%s on resource %s: the connection is broken", what, c->base.conf->name);
    if (sql_len > (size_t)INT32_MAX || nparams > USHRT_MAX)
        return odbc_err(err, XAER_INVAL, XAC_EINVAL, c->base.conf->name,
                        "%s on resource %s: statement too long or too many parameters", what,
                        c->base.conf->name);
    SQLLEN *ind = NULL;
    if (nparams > 0) {
        ind = calloc(nparams, sizeof *ind);
        if (ind == NULL)
            return odbc_err(err, XAER_RMERR, XAC_ENOMEM, c->base.conf->name,
                            "%s on resource %s: out of memory for parameters", what,
                            c->base.conf->name);
    }
    /* Statements without parameters (the XA verbs, DDL) go once through
     * SQLExecDirect; with parameters, the statement prepared for the same
     * text earlier on this connection is run again. */
    drv_odbc_stmt *kept = nparams > 0 && keep ? odbc_stmt_find(c, sql, sql_len) : NULL;
    SQLHSTMT st = kept != NULL ? kept->st : SQL_NULL_HSTMT;
    SQLSMALLINT nmarks = kept != NULL ? kept->nmarks : 0;
    SQLRETURN r;
    int rc = XA_OK;
    if (kept == NULL) {
        r = SQLAllocHandle(SQL_HANDLE_STMT, c->dbc, &st);
        if (!SQL_SUCCEEDED(r)) {
            free(ind);
            return odbc_fail(c, SQL_HANDLE_DBC, c->dbc, r, step, what, err);
        }
        if (c->base.conf->io_timeout_ms > 0)
            SQLSetStmtAttr(st, SQL_ATTR_QUERY_TIMEOUT,
                           (SQLPOINTER)(uintptr_t)odbc_seconds(c->base.conf->io_timeout_ms), 0);
    }
    if (nparams == 0) {
        r = SQLExecDirect(st, (SQLCHAR *)(uintptr_t)sql, (SQLINTEGER)sql_len);
    } else {
        if (kept == NULL) {
            r = SQLPrepare(st, (SQLCHAR *)(uintptr_t)sql, (SQLINTEGER)sql_len);
            if (!SQL_SUCCEEDED(r)) {
                rc = odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
                goto out;
            }
            r = SQLNumParams(st, &nmarks);
            if (!SQL_SUCCEEDED(r)) {
                rc = odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
                goto out;
            }
            if (keep)
                kept = odbc_stmt_keep(c, st, sql, sql_len, nmarks);
        }
        /* Drivers differ on a count mismatch (psqlodbc ignores extra
         * parameters): refuse it before anything runs. */
        if ((size_t)nmarks != nparams) {
            rc = odbc_err(err, XAER_RMERR, drv_xa_to_code(XAER_RMERR), c->base.conf->name,
                          "%s on resource %s: statement has %d '?' placeholder(s) but %zu "
                          "parameter(s) were given",
                          what, c->base.conf->name, (int)nmarks, nparams);
            goto out;
        }
        rc = odbc_bind(c, st, params, nparams, ind, step, what, err);
        if (rc != XA_OK)
            goto out;
        r = SQLExecute(st);
    }
    /* SQL_NO_DATA: a searched UPDATE or DELETE that matched nothing. */
    if (!SQL_SUCCEEDED(r) && r != SQL_NO_DATA) {
        rc = odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
        goto out;
    }
    SQLSMALLINT ncols = 0;
    if (r != SQL_NO_DATA) {
        r = SQLNumResultCols(st, &ncols);
        if (!SQL_SUCCEEDED(r)) {
            rc = odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
            goto out;
        }
    }
    if (rows != NULL && ncols > 0) {
        rc = odbc_fetch_rows(c, st, ncols, rows, step, what, err);
    } else if (rows != NULL) {
        SQLLEN count = 0;
        if (r != SQL_NO_DATA && !SQL_SUCCEEDED(SQLRowCount(st, &count)))
            count = 0;
        rows->has_rows = false;
        rows->affected = count > 0 ? (uint64_t)count : 0;
    }
    if (more != NULL && rc == XA_OK) {
        while ((r = SQLMoreResults(st)) != SQL_NO_DATA) {
            if (!SQL_SUCCEEDED(r)) {
                rc = odbc_fail(c, SQL_HANDLE_STMT, st, r, step, what, err);
                break;
            }
            (*more)++;
        }
    }
out:
    if (kept == NULL) {
        SQLFreeHandle(SQL_HANDLE_STMT, st);
    } else {
        /* A kept statement goes back closed and unbound: the bound buffers
         * are the caller's. One that failed in any way is not trusted again,
         * and a broken connection's are of no use. */
        bool reusable = rc == XA_OK && !c->base.broken &&
                        SQL_SUCCEEDED(SQLFreeStmt(st, SQL_CLOSE)) &&
                        SQL_SUCCEEDED(SQLFreeStmt(st, SQL_RESET_PARAMS));
        if (!reusable)
            odbc_stmt_drop(c, (size_t)(kept - c->stmts));
    }
    free(ind);
    return rc;
}

int drv_odbc_query(drv_odbc_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                   size_t nparams, xac_rows *rows, drv_step step, const char *what, xac_err *err)
{
    return odbc_query(c, sql, sql_len, params, nparams, rows, step, what, true, NULL, err);
}

int drv_odbc_query_more(drv_odbc_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                        size_t nparams, xac_rows *rows, drv_step step, const char *what, int *more,
                        xac_err *err)
{
    return odbc_query(c, sql, sql_len, params, nparams, rows, step, what, false, more, err);
}

int drv_odbc_run(drv_odbc_conn *c, const char *sql, drv_step step, const char *what, xac_err *err)
{
    return drv_odbc_query(c, sql, strlen(sql), NULL, 0, NULL, step, what, err);
}

/* -------------------------------------------------------------- the switch */

static int odbc_check(drv_conn *base, xac_err *err)
{
    if (base->broken)
        return odbc_err(err, XAER_RMFAIL, XAC_ERMFAIL, base->conf->name,
                        "resource %s: the connection is broken", base->conf->name);
    return XA_OK;
}

static int odbc_start(drv_conn *base, const xac_xid *xid, xac_err *err)
{
    int rc = odbc_check(base, err);
    return rc != XA_OK ? rc
                       : ((drv_odbc_conn *)base)->dialect->start((drv_odbc_conn *)base, xid, err);
}

static int odbc_end(drv_conn *base, const xac_xid *xid, xac_err *err)
{
    int rc = odbc_check(base, err);
    return rc != XA_OK ? rc
                       : ((drv_odbc_conn *)base)->dialect->end((drv_odbc_conn *)base, xid, err);
}

static int odbc_prepare(drv_conn *base, const xac_xid *xid, xac_err *err)
{
    int rc = odbc_check(base, err);
    return rc != XA_OK ? rc
                       : ((drv_odbc_conn *)base)->dialect->prepare((drv_odbc_conn *)base, xid, err);
}

static int odbc_commit(drv_conn *base, const xac_xid *xid, bool one_phase, xac_err *err)
{
    int rc = odbc_check(base, err);
    return rc != XA_OK ? rc
                       : ((drv_odbc_conn *)base)
                             ->dialect->commit((drv_odbc_conn *)base, xid, one_phase, err);
}

static int odbc_rollback(drv_conn *base, const xac_xid *xid, xac_err *err)
{
    int rc = odbc_check(base, err);
    return rc != XA_OK
               ? rc
               : ((drv_odbc_conn *)base)->dialect->rollback((drv_odbc_conn *)base, xid, err);
}

static int odbc_recover(drv_conn *base, drv_indoubt **out, size_t *n, xac_err *err)
{
    *out = NULL;
    *n = 0;
    int rc = odbc_check(base, err);
    return rc != XA_OK
               ? rc
               : ((drv_odbc_conn *)base)->dialect->recover((drv_odbc_conn *)base, out, n, err);
}

static int odbc_forget(drv_conn *base, const xac_xid *xid, xac_err *err)
{
    int rc = odbc_check(base, err);
    return rc != XA_OK ? rc
                       : ((drv_odbc_conn *)base)->dialect->forget((drv_odbc_conn *)base, xid, err);
}

void drv_odbc_what(const char *sql, size_t sql_len, char what[DRV_ODBC_WHAT_MAX])
{
    size_t n = sql_len < 60 ? sql_len : 60;
    int w = snprintf(what, DRV_ODBC_WHAT_MAX, "statement \"");
    for (size_t i = 0; i < n; i++)
        what[w++] = (sql[i] == '\n' || sql[i] == '\r' || sql[i] == '\t') ? ' ' : sql[i];
    snprintf(what + w, DRV_ODBC_WHAT_MAX - (size_t)w, "%s\"", sql_len > n ? "..." : "");
}

static int odbc_exec(drv_conn *base, const char *sql, size_t sql_len, const xac_value *params,
                     size_t nparams, xac_rows *rows, xac_err *err)
{
    drv_odbc_conn *c = (drv_odbc_conn *)base;
    int rc = odbc_check(base, err);
    if (rc != XA_OK)
        return rc;
    char what[DRV_ODBC_WHAT_MAX];
    drv_odbc_what(sql, sql_len, what);
    if (c->branch_active) {
        if (c->dialect->check_sql != NULL) {
            rc = c->dialect->check_sql(c, sql, sql_len, params, nparams, err);
            if (rc != XA_OK) {
                if (c->dialect->exec_failed != NULL)
                    c->dialect->exec_failed(c, rc, err);
                return rc;
            }
        }
        c->branch_work = true;
        rc = drv_odbc_query(c, sql, sql_len, params, nparams, rows, DRV_STEP_EXEC, what, err);
        if (rc != XA_OK && c->dialect->exec_failed != NULL)
            c->dialect->exec_failed(c, rc, err);
        return rc;
    }
    /* Outside a branch a statement is its own transaction, even on a
     * connection that waits with autocommit off for its next branch. */
    return drv_odbc_query_alone(c, sql, sql_len, params, nparams, rows, DRV_STEP_EXEC, what, err);
}

/* Whether a statement may go to the dialect fused with its branch's next
 * step (hook: the dialect has that step): the connection's own active
 * branch, nothing failed in it, and SQL check_sql accepts. What it would
 * refuse goes the usual way, which refuses it. */
static bool fused_ok(drv_odbc_conn *c, bool hook, const xac_xid *xid, const char *sql,
                     size_t sql_len, const xac_value *params, size_t nparams)
{
    if (!hook || c->base.broken || !c->branch_active || c->branch_ended || c->branch_failed ||
        !xac_xid_equal(&c->branch_xid, xid))
        return false;
    xac_err scratch;
    return c->dialect->check_sql == NULL ||
           c->dialect->check_sql(c, sql, sql_len, params, nparams, &scratch) == XA_OK;
}

static int odbc_exec_prepare(drv_conn *base, const xac_xid *xid, const char *sql, size_t sql_len,
                             const xac_value *params, size_t nparams, xac_rows *rows,
                             drv_prepare_at *at, xac_err *err)
{
    drv_odbc_conn *c = (drv_odbc_conn *)base;
    *at = DRV_PREPARE_NOT_SENT;
    if (!fused_ok(c, c->dialect->exec_prepare != NULL, xid, sql, sql_len, params, nparams))
        return XA_OK;
    return c->dialect->exec_prepare(c, xid, sql, sql_len, params, nparams, rows, at, err);
}

static int odbc_exec_one_phase(drv_conn *base, const xac_xid *xid, const char *sql, size_t sql_len,
                               const xac_value *params, size_t nparams, xac_rows *rows,
                               drv_onephase_at *at, xac_err *err)
{
    drv_odbc_conn *c = (drv_odbc_conn *)base;
    *at = DRV_ONEPHASE_NOT_SENT;
    if (!fused_ok(c, c->dialect->exec_one_phase != NULL, xid, sql, sql_len, params, nparams))
        return XA_OK;
    return c->dialect->exec_one_phase(c, xid, sql, sql_len, params, nparams, rows, at, err);
}

static int odbc_ping(drv_conn *base, xac_err *err)
{
    int rc = odbc_check(base, err);
    if (rc != XA_OK)
        return rc;
    /* Inside a branch the SELECT joins it; outside, exec runs it alone. */
    xac_rows rows;
    xac_rows_init(&rows);
    rc = odbc_exec(base, "SELECT 1", 8, NULL, 0, &rows, err);
    xac_rows_free(&rows);
    if (rc != XA_OK)
        xac_err_prefix(err, "health check");
    return rc;
}

const drv_ops drv_odbc_ops = {
    .name = "odbc",
    .open = odbc_open,
    .close = odbc_close,
    .start = odbc_start,
    .end = odbc_end,
    .prepare = odbc_prepare,
    .commit = odbc_commit,
    .rollback = odbc_rollback,
    .recover = odbc_recover,
    .forget = odbc_forget,
    .exec = odbc_exec,
    .ping = odbc_ping,
    .exec_prepare = odbc_exec_prepare,
    .exec_one_phase = odbc_exec_one_phase,
};
