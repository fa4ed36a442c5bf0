/* Integration tests of drivers/ core, the connection pool and the MySQL/MariaDB
 * driver against the real MariaDB that tests/fixtures/db.sh starts (settings
 * from XAC_TEST_MYSQL_*). They check what the engine and recovery rely on:
 * exec results and bound parameters, every XA path, recovery of a branch
 * after its session is gone, the error mapping, and a pool that survives
 * dropped links. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cu.h"
#include "drv.h"
#include "drv_check.h"
#include "drv_impl.h"

#define RES "drvtest"

static drv_conf g_conf;
static bool g_have_env;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? v : "";
}

static void load_conf(void)
{
    memset(&g_conf, 0, sizeof g_conf);
    snprintf(g_conf.name, sizeof g_conf.name, "%s", RES);
    snprintf(g_conf.driver, sizeof g_conf.driver, "mysql");
    snprintf(g_conf.host, sizeof g_conf.host, "%s", env("XAC_TEST_MYSQL_HOST"));
    g_conf.port = atoi(env("XAC_TEST_MYSQL_PORT"));
    snprintf(g_conf.user, sizeof g_conf.user, "%s", env("XAC_TEST_MYSQL_USER"));
    snprintf(g_conf.password, sizeof g_conf.password, "%s", env("XAC_TEST_MYSQL_PASSWORD"));
    snprintf(g_conf.database, sizeof g_conf.database, "%s", env("XAC_TEST_MYSQL_DB"));
    g_conf.connect_timeout_ms = 5000;
    g_conf.io_timeout_ms = 30000;
    g_conf.pool_size = 4;
    g_have_env = g_conf.host[0] && g_conf.port > 0 && g_conf.user[0] && g_conf.database[0];
}

#define NEED_ENV()                                                                                 \
    do {                                                                                           \
        if (!g_have_env)                                                                           \
            CU_FAIL_FATAL("XAC_TEST_MYSQL_HOST/PORT/USER/PASSWORD/DB are not set: start "          \
                          "MariaDB with tests/fixtures/db.sh start DIR and source DIR/env.sh");    \
    } while (0)

static drv_conn *open_conn(void)
{
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&g_conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "drv_open: %s\n", e.msg);
    CU_ASSERT_FATAL(rc == XA_OK && c != NULL);
    return c;
}

static void new_xid(xac_xid *x)
{
    dt_new_xid(x, "itest", RES);
}

static int insert_row(drv_conn *c, long long id, const char *name, xac_err *e)
{
    return dt_insert_row(c, "drv_t", id, name, e);
}

static long long count_id(drv_conn *c, long long id)
{
    return dt_count_id(c, "drv_t", id);
}

/* ------------------------------------------------------------- no server */

static void test_xa_names_and_codes(void)
{
    CU_ASSERT_STRING_EQUAL(drv_xa_name(XA_OK), "XA_OK");
    CU_ASSERT_STRING_EQUAL(drv_xa_name(XAER_RMFAIL), "XAER_RMFAIL");
    CU_ASSERT_STRING_EQUAL(drv_xa_name(XA_RBINTEGRITY), "XA_RBINTEGRITY");
    CU_ASSERT_STRING_EQUAL(drv_xa_name(12345), "XA_UNKNOWN");
    CU_ASSERT_EQUAL(drv_xa_to_code(XA_OK), XAC_OK);
    CU_ASSERT_EQUAL(drv_xa_to_code(XAER_RMERR), XAC_ESQL);
    CU_ASSERT_EQUAL(drv_xa_to_code(XAER_RMFAIL), XAC_ERMFAIL);
    CU_ASSERT_EQUAL(drv_xa_to_code(XA_RBDEADLOCK), XAC_EROLLBACK);
    CU_ASSERT_EQUAL(drv_xa_to_code(XA_RBROLLBACK), XAC_EROLLBACK);
    CU_ASSERT_EQUAL(drv_xa_to_code(XAER_NOTA), XAC_EINTERNAL);
    CU_ASSERT_PTR_NOT_NULL(drv_find("mysql"));
    CU_ASSERT_PTR_NOT_NULL(drv_find("odbc"));
    CU_ASSERT_PTR_NULL(drv_find("oracle"));
}

static void test_check_conf(void)
{
    drv_conf c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "bank_a");
    snprintf(c.driver, sizeof c.driver, "mysql");
    c.pool_size = 4;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "resource bank_a: driver mysql needs host or socket"));
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_a");
    snprintf(c.socket, sizeof c.socket, "/tmp/x.sock");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_OK);

    snprintf(c.driver, sizeof c.driver, "oracle");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "oracle"));

    snprintf(c.driver, sizeof c.driver, "odbc");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "dialect"));
    snprintf(c.dialect, sizeof c.dialect, "postgresql");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "odbc_driver"));
    snprintf(c.odbc_driver, sizeof c.odbc_driver, "PostgreSQL Unicode");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "needs host"));
    snprintf(c.host, sizeof c.host, "127.0.0.1");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "needs database"));
    snprintf(c.database, sizeof c.database, "bank");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_OK);

    c.pool_size = 0;
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "pool_size"));
    c.pool_size = 4;
    snprintf(c.name, sizeof c.name, "bad name");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
}

/* design.md's table of MySQL/MariaDB error numbers. drv_impl.h is private to
 * drivers/; this white-box test is its only other reader. */
static void test_errmap(void)
{
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1397, DRV_STEP_COMMIT), XAER_NOTA);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1398, DRV_STEP_START), XAER_INVAL);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1399, DRV_STEP_END), XAER_RMFAIL);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1400, DRV_STEP_START), XAER_OUTSIDE);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1401, DRV_STEP_PREPARE), XAER_RMERR);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1401, DRV_STEP_COMMIT), XA_RETRY);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1401, DRV_STEP_ROLLBACK), XA_RETRY);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(3197, DRV_STEP_COMMIT), XA_RETRY);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1402, DRV_STEP_COMMIT), XA_RBROLLBACK);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1440, DRV_STEP_START), XAER_DUPID);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1613, DRV_STEP_END), XA_RBTIMEOUT);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1614, DRV_STEP_END), XA_RBDEADLOCK);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1213, DRV_STEP_EXEC), XA_RBDEADLOCK);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1062, DRV_STEP_EXEC), XAER_RMERR);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1062, DRV_STEP_PREPARE), XA_RBINTEGRITY);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1452, DRV_STEP_PREPARE), XA_RBINTEGRITY);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1451, DRV_STEP_PREPARE), XA_RBINTEGRITY);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1064, DRV_STEP_PREPARE), XAER_RMERR);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1064, DRV_STEP_EXEC), XAER_RMERR);
    CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(1045, DRV_STEP_OPEN), XAER_RMFAIL);
    static const unsigned lost[] = {2002, 2003, 2006, 2013, 2055, 1927};
    for (size_t i = 0; i < sizeof lost / sizeof lost[0]; i++) {
        CU_ASSERT_TRUE(drv_mysql_errno_is_connection_loss(lost[i]));
        CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(lost[i], DRV_STEP_COMMIT), XAER_RMFAIL);
        CU_ASSERT_EQUAL(drv_mysql_errno_to_xa(lost[i], DRV_STEP_EXEC), XAER_RMFAIL);
    }
    CU_ASSERT_FALSE(drv_mysql_errno_is_connection_loss(1062));
    CU_ASSERT_FALSE(drv_mysql_errno_is_connection_loss(1397));
    CU_ASSERT_EQUAL(drv_xa_to_code(XA_RDONLY), XAC_OK);
}

/* ------------------------------------------------------------ with server */

static void test_setup_table(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    dt_sql_ok(c, "DROP TABLE IF EXISTS drv_t");
    dt_sql_ok(c,
              "CREATE TABLE drv_t (id BIGINT PRIMARY KEY, name VARCHAR(2000) NULL, amount DOUBLE "
              "NULL, data BLOB NULL, note TEXT NULL) ENGINE=InnoDB");
    drv_close(c);
}

static void test_exec_rows_and_params(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    static const char ins[] = "INSERT INTO drv_t (id, name, amount, data, note) VALUES (?,?,?,?,?)";
    static const char blob[] = {'a', '\0', 'b', '\'', '\\', (char)0xff};
    const char *name = "O'Brien \xc3\xa9\xe2\x82\xac"; /* quote, é, € */
    xac_value p[5];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 9000000000LL;
    p[1].type = XAC_T_TEXT;
    p[1].s = name;
    p[1].len = strlen(name);
    p[2].type = XAC_T_DOUBLE;
    p[2].d = 12.5;
    p[3].type = XAC_T_BLOB;
    p[3].s = blob;
    p[3].len = sizeof blob;
    p[4].type = XAC_T_NULL;
    xac_rows r;
    xac_rows_init(&r);
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_exec(c, ins, sizeof ins - 1, p, 5, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "%s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_FALSE(r.has_rows);
    CU_ASSERT_EQUAL(r.affected, 1);

    /* Read back with a bound parameter (prepared-statement path). */
    static const char sel[] = "SELECT id, name, amount, data, note FROM drv_t WHERE id = ?";
    rc = drv_exec(c, sel, sizeof sel - 1, p, 1, &r, &e);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_TRUE(r.has_rows);
    CU_ASSERT_EQUAL_FATAL(r.ncols, 5);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
    CU_ASSERT_STRING_EQUAL(r.cols[0], "id");
    CU_ASSERT_STRING_EQUAL(r.cols[3], "data");
    size_t len;
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 0, NULL), "9000000000");
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 1, NULL), name);
    CU_ASSERT_DOUBLE_EQUAL(atof(xac_rows_cell(&r, 0, 2, NULL)), 12.5, 1e-9);
    const char *d = xac_rows_cell(&r, 0, 3, &len);
    CU_ASSERT_EQUAL(len, sizeof blob);
    CU_ASSERT(d != NULL && memcmp(d, blob, sizeof blob) == 0);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 0, 4, NULL)); /* SQL NULL */

    /* The same without parameters (text protocol). */
    static const char sel2[] =
        "SELECT id, name, amount, data, note FROM drv_t WHERE id = 9000000000";
    rc = drv_exec(c, sel2, sizeof sel2 - 1, NULL, 0, &r, &e);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 1, NULL), name);
    d = xac_rows_cell(&r, 0, 3, &len);
    CU_ASSERT_EQUAL(len, sizeof blob);
    CU_ASSERT(d != NULL && memcmp(d, blob, sizeof blob) == 0);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 0, 4, NULL));

    /* A value longer than the first fetch buffer, through the prepared path. */
    char big[1500];
    memset(big, 'x', sizeof big);
    big[0] = 'B';
    big[sizeof big - 1] = 'E';
    static const char upd[] = "UPDATE drv_t SET name = ? WHERE id = ?";
    xac_value q[2];
    memset(q, 0, sizeof q);
    q[0].type = XAC_T_TEXT;
    q[0].s = big;
    q[0].len = sizeof big;
    q[1] = p[0];
    CU_ASSERT_EQUAL_FATAL(drv_exec(c, upd, sizeof upd - 1, q, 2, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(r.affected, 1);
    static const char sel3[] = "SELECT name, ? FROM drv_t WHERE id = ?";
    xac_value q3[2];
    q3[0] = p[2];
    q3[1] = p[0];
    CU_ASSERT_EQUAL_FATAL(drv_exec(c, sel3, sizeof sel3 - 1, q3, 2, &r, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
    d = xac_rows_cell(&r, 0, 0, &len);
    CU_ASSERT_EQUAL(len, sizeof big);
    CU_ASSERT(d != NULL && memcmp(d, big, sizeof big) == 0);
    CU_ASSERT_DOUBLE_EQUAL(atof(xac_rows_cell(&r, 0, 1, NULL)), 12.5, 1e-9);

    /* Several rows and an empty result. */
    static const char many[] = "SELECT seq FROM seq_1_to_3";
    CU_ASSERT_EQUAL_FATAL(drv_exec(c, many, sizeof many - 1, NULL, 0, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(r.nrows, 3);
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 2, 0, NULL), "3");
    static const char none[] = "SELECT id FROM drv_t WHERE id = ?";
    xac_value m1 = {.type = XAC_T_INT, .i = -1};
    CU_ASSERT_EQUAL_FATAL(drv_exec(c, none, sizeof none - 1, &m1, 1, &r, &e), XA_OK);
    CU_ASSERT_TRUE(r.has_rows);
    CU_ASSERT_EQUAL(r.nrows, 0);

    /* Wrong parameter count is an SQL error, not a crash. */
    rc = drv_exec(c, none, sizeof none - 1, p, 2, &r, &e);
    CU_ASSERT_EQUAL(rc, XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "placeholder"));
    CU_ASSERT_FALSE(c->broken);

    dt_sql_ok(c, "DELETE FROM drv_t WHERE id = 9000000000");
    xac_rows_free(&r);
    drv_close(c);
}

/* A CALL returns its result set plus a status result: the driver must drain
 * them or the connection falls out of sync. */
static void test_call_results(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    dt_sql_ok(c, "DROP PROCEDURE IF EXISTS drv_p");
    dt_sql_ok(c,
              "CREATE PROCEDURE drv_p(IN n INT) BEGIN SELECT n AS a, n + 1 AS b; SELECT 42; END");
    xac_rows r;
    xac_rows_init(&r);
    xac_err e;
    static const char call[] = "CALL drv_p(5)";
    CU_ASSERT_EQUAL_FATAL(drv_exec(c, call, sizeof call - 1, NULL, 0, &r, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
    CU_ASSERT_STRING_EQUAL(r.cols[1], "b");
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 1, NULL), "6");
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 3"), 3);
    static const char callp[] = "CALL drv_p(?)";
    xac_value v = {.type = XAC_T_INT, .i = 10};
    int rc = drv_exec(c, callp, sizeof callp - 1, &v, 1, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "CALL with a parameter: %s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 1);
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 0, NULL), "10");
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 4"), 4);
    CU_ASSERT_FALSE(c->broken);
    xac_rows_free(&r);
    drv_close(c);
}

static void test_2pc_commit(void)
{
    NEED_ENV();
    drv_conn *c = open_conn(), *o = open_conn();
    xac_xid x;
    new_xid(&x);
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 101, "2pc", &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(o, 101), 0); /* not visible before commit */
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(o, 101), 1);
    /* The connection is clean for the next branch. */
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    drv_close(c);
    drv_close(o);
}

static void test_one_phase(void)
{
    NEED_ENV();
    drv_conn *c = open_conn(), *o = open_conn();
    xac_xid x;
    new_xid(&x);
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 201, "1pc", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(o, 201), 1);
    /* One phase straight from the active state ends the branch first. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 202, "1pc-active", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(o, 202), 1);
    drv_close(c);
    drv_close(o);
}

static void rollback_case(int stop_at, long long id)
{
    drv_conn *c = open_conn(), *o = open_conn();
    xac_xid x;
    new_xid(&x);
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, id, "rb", &e), XA_OK);
    if (stop_at >= 1)
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    if (stop_at >= 2)
        CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    int rc = drv_rollback(c, &x, &e);
    if (rc != XA_OK)
        fprintf(stderr, "rollback: %s\n", e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(o, id), 0);
    CU_ASSERT_FALSE(c->broken);
    /* Reusable afterwards: a new branch commits. */
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, id, "after", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(o, id), 1);
    drv_close(c);
    drv_close(o);
}

static void test_rollback_active(void)
{
    NEED_ENV();
    rollback_case(0, 301);
}

static void test_rollback_idle(void)
{
    NEED_ENV();
    rollback_case(1, 302);
}

static void test_rollback_prepared(void)
{
    NEED_ENV();
    rollback_case(2, 303);
}

static bool find_xid(drv_conn *c, const xac_xid *x)
{
    drv_indoubt *v = NULL;
    size_t n = 0;
    xac_err e;
    int rc = drv_recover(c, &v, &n, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_TRUE(v[i].decoded);
        if (xac_xid_equal(&v[i].xid, x))
            found = true;
    }
    free(v);
    return found;
}

/* Finishes a branch from another connection, retrying while MariaDB still
 * has it attached to its preparing session (the disconnect is processed
 * asynchronously). Bounded by attempts, not by the clock. */
static int finish_retrying(drv_conn *c, const xac_xid *x, bool commit, xac_err *e)
{
    int rc = XA_RETRY;
    for (int i = 0; i < 1000 && rc == XA_RETRY; i++) {
        rc = commit ? drv_commit(c, x, false, e) : drv_rollback(c, x, e);
        if (rc == XA_RETRY)
            usleep(5000);
    }
    if (rc != XA_OK)
        fprintf(stderr, "finishing from a fresh connection: %s\n", e->msg);
    return rc;
}

static void test_recover_after_close(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    xac_xid x, y;
    new_xid(&x);
    new_xid(&y);
    xac_err e;
    xac_err_clear(&e);
    /* Two prepared branches: one to commit, one to roll back. */
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 401, "recover-commit", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK); /* prepare ends an active branch */
    drv_close(c);
    c = open_conn();
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &y, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 402, "recover-rollback", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &y, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &y, &e), XA_OK);
    drv_close(c);

    drv_conn *r = open_conn();
    CU_ASSERT_TRUE(find_xid(r, &x));
    CU_ASSERT_TRUE(find_xid(r, &y));
    CU_ASSERT_EQUAL(finish_retrying(r, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(finish_retrying(r, &y, false, &e), XA_OK);
    CU_ASSERT_FALSE(find_xid(r, &x));
    CU_ASSERT_FALSE(find_xid(r, &y));
    CU_ASSERT_EQUAL(count_id(r, 401), 1);
    CU_ASSERT_EQUAL(count_id(r, 402), 0);
    /* Finishing it twice: the XID is gone. */
    CU_ASSERT_EQUAL(drv_commit(r, &x, false, &e), XAER_NOTA);
    CU_ASSERT_FALSE(r->broken);
    drv_close(r);
}

/* MariaDB: while the preparing session lives, another session's XA COMMIT
 * says 1397. That must not read as "already finished" (XAER_NOTA). */
static void test_attached_branch_retry(void)
{
    NEED_ENV();
    drv_conn *c = open_conn(), *r = open_conn();
    xac_xid x;
    new_xid(&x);
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 461, "attached", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_TRUE(find_xid(r, &x));
    CU_ASSERT_EQUAL(drv_commit(r, &x, false, &e), XA_RETRY);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "still attached"));
    CU_ASSERT_EQUAL(drv_rollback(r, &x, &e), XA_RETRY);
    CU_ASSERT_FALSE(r->broken);
    /* The preparing session itself commits it. */
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(r, 461), 1);
    /* Now it is really gone. */
    CU_ASSERT_EQUAL(drv_commit(r, &x, false, &e), XAER_NOTA);
    drv_close(c);
    drv_close(r);
}

static void test_autocommit_off_commit(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    xac_xid x;
    new_xid(&x);
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 451, "ac-off", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    drv_close(c);
    /* A recovery connection someone left with autocommit off still commits. */
    drv_conn *r = open_conn();
    dt_sql_ok(r, "SET autocommit = 0");
    CU_ASSERT_EQUAL(finish_retrying(r, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(r, 451), 1);
    drv_close(r);
}

static void test_dup_key(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(insert_row(c, 501, "first", &e), XA_OK);
    int rc = insert_row(c, 501, "second", &e);
    CU_ASSERT_EQUAL(rc, XAER_RMERR);
    CU_ASSERT_EQUAL(e.code, XAC_ESQL);
    CU_ASSERT_STRING_EQUAL(e.resource, RES);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1062 (23000)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, RES));
    CU_ASSERT_FALSE(c->broken);
    /* Inside a branch: the statement fails, the branch lives and can commit. */
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 501, "again", &e), XAER_RMERR);
    CU_ASSERT_EQUAL(insert_row(c, 502, "ok", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(c, 502), 1);
    /* A syntax error is an SQL error too. */
    static const char bad[] = "SELEC 1";
    xac_rows r;
    xac_rows_init(&r);
    CU_ASSERT_EQUAL(drv_exec(c, bad, sizeof bad - 1, NULL, 0, &r, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1064"));
    drv_close(c);
}

static void test_nota(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    xac_xid x;
    new_xid(&x);
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XAER_NOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1397"));
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XAER_NOTA);
    CU_ASSERT_FALSE(c->broken);
    /* A duplicate XID is XAER_DUPID, from XA START, which goes out with the
     * branch's first statement. */
    drv_conn *d = open_conn();
    static const char one[] = "SELECT 1";
    xac_rows r;
    xac_rows_init(&r);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_exec(c, one, sizeof one - 1, NULL, 0, &r, &e), XA_OK);
    xac_rows_free(&r);
    CU_ASSERT_EQUAL(drv_start(d, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_exec(d, one, sizeof one - 1, NULL, 0, &r, &e), XAER_DUPID);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "XA START failed (XAER_DUPID)"));
    xac_rows_free(&r);
    CU_ASSERT_EQUAL(drv_rollback(d, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_forget(c, &x, &e), XA_OK);
    drv_close(d);
    drv_close(c);
}

/* Two branches wait on each other's row lock: InnoDB kills one of them, which
 * must come back as XA_RBDEADLOCK and still roll back cleanly. */

/* One deadlock between two branches; the victim is finished either by END +
 * ROLLBACK (as the engine's rollback does) or by a one-phase commit, which
 * must answer XA_RB* and leave the connection clean. */
static void deadlock_round(bool one_phase, long long r1, long long r2)
{
    drv_conn *a = open_conn(), *b = open_conn();
    xac_err e;
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO drv_t (id, name) VALUES (%lld, 'x'), (%lld, 'y')", r1,
             r2);
    dt_sql_ok(a, sql);
    xac_xid xa, xb;
    new_xid(&xa);
    new_xid(&xb);
    CU_ASSERT_EQUAL_FATAL(drv_start(a, &xa, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_start(b, &xb, &e), XA_OK);
    snprintf(sql, sizeof sql, "UPDATE drv_t SET name = 'a' WHERE id = %lld", r2);
    dt_sql_ok(a, sql);
    snprintf(sql, sizeof sql, "UPDATE drv_t SET name = 'b' WHERE id = %lld", r1);
    dt_sql_ok(b, sql);
    /* a waits for r1 in a thread; b then asks for r2: a cycle. */
    char sqla[128];
    snprintf(sqla, sizeof sqla, "UPDATE drv_t SET name = 'a' WHERE id = %lld", r1);
    dt_bg la;
    dt_bg_start(&la, a, sqla);
    /* Wait until a is really blocked. If it is not yet, b blocks instead and
     * the cycle still forms. */
    (void)dt_wait_lock_wait(&g_conf);
    snprintf(sql, sizeof sql, "UPDATE drv_t SET name = 'b' WHERE id = %lld", r2);
    xac_rows r;
    xac_rows_init(&r);
    int rcb = drv_exec(b, sql, strlen(sql), NULL, 0, &r, &e);
    dt_bg_join(&la);

    /* Exactly one of them is the victim. */
    CU_ASSERT((rcb == XA_RBDEADLOCK) != (la.rc == XA_RBDEADLOCK));
    CU_ASSERT(rcb == XA_OK || la.rc == XA_OK);
    if (rcb == XA_RBDEADLOCK)
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1213"));
    drv_conn *victim = rcb == XA_RBDEADLOCK ? b : a;
    drv_conn *winner = victim == a ? b : a;
    xac_xid *xv = victim == a ? &xa : &xb, *xw = victim == a ? &xb : &xa;
    /* Further work on the victim's branch is refused with the same reason. */
    CU_ASSERT_EQUAL(drv_exec(victim, "SELECT 1", 8, NULL, 0, &r, &e), XA_RBDEADLOCK);
    if (one_phase) {
        CU_ASSERT_EQUAL(drv_commit(victim, xv, true, &e), XA_RBDEADLOCK);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1213"));
    } else {
        CU_ASSERT_EQUAL(drv_end(victim, xv, &e), XA_RBDEADLOCK);
        CU_ASSERT_EQUAL(drv_prepare(victim, xv, &e), XA_RBDEADLOCK);
        CU_ASSERT_EQUAL(drv_rollback(victim, xv, &e), XA_OK);
    }
    CU_ASSERT_FALSE(victim->broken);
    CU_ASSERT_EQUAL(drv_commit(winner, xw, true, &e), XA_OK);
    /* Both connections are usable for new branches. */
    xac_xid z;
    new_xid(&z);
    CU_ASSERT_EQUAL(drv_start(victim, &z, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(victim, &z, &e), XA_OK);
    xac_rows_free(&r);
    drv_close(a);
    drv_close(b);
}

static void test_deadlock(void)
{
    NEED_ENV();
    deadlock_round(false, 601, 602);
    deadlock_round(true, 611, 612);
}

/* ------------------------------------------------------------------ pool */

static drv_pool *make_pool(drv_conf *conf, int size)
{
    *conf = g_conf;
    conf->pool_size = size;
    drv_pool *p = NULL;
    xac_err e;
    CU_ASSERT_FATAL(drv_pool_create(conf, &p, &e) == XAC_OK);
    CU_ASSERT_PTR_EQUAL(drv_pool_conf(p), conf);
    return p;
}

static void test_pool_exhaustion(void)
{
    NEED_ENV();
    drv_conf conf;
    drv_pool *p = make_pool(&conf, 2);
    drv_conn *a = NULL, *b = NULL, *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 1000, &a, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 1000, &b, &e), XA_OK);
    CU_ASSERT_PTR_NOT_EQUAL(a, b);
    CU_ASSERT_EQUAL(drv_pool_get(p, 50, &c, &e), XAER_RMERR);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "pool exhausted"));
    CU_ASSERT_EQUAL(drv_pool_get(p, 0, &c, &e), XAER_RMERR);
    drv_pool_put(p, b);
    CU_ASSERT_EQUAL(drv_pool_get(p, 0, &c, &e), XA_OK);
    CU_ASSERT_PTR_EQUAL(c, b); /* reused, not reopened */
    CU_ASSERT_FALSE(drv_pool_down(p));
    drv_pool_put(p, a);
    drv_pool_put(p, c);
    drv_pool_destroy(p);
}

typedef struct put_arg {
    drv_pool *p;
    drv_conn *c;
} put_arg;

static void *put_later(void *v)
{
    put_arg *a = v;
    usleep(100000);
    drv_pool_put(a->p, a->c);
    return NULL;
}

static void test_pool_wait(void)
{
    NEED_ENV();
    drv_conf conf;
    drv_pool *p = make_pool(&conf, 1);
    drv_conn *a = NULL, *b = NULL;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 1000, &a, &e), XA_OK);
    /* A waiter gets the connection another thread returns (it waits up to 30
     * s, so a slow machine only makes the test slower, never fail). */
    put_arg pa = {p, a};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, put_later, &pa) == 0);
    CU_ASSERT_EQUAL(drv_pool_get(p, 30000, &b, &e), XA_OK);
    CU_ASSERT_PTR_EQUAL(b, a);
    pthread_join(t, NULL);
    drv_pool_put(p, b);
    drv_pool_destroy(p);
}

typedef struct churn_arg {
    drv_pool *p;
    int failures;
    int max_seen; /* the most connections this thread saw in use at once */
} churn_arg;

static atomic_int g_in_use;

static void *churn(void *v)
{
    churn_arg *a = v;
    for (int i = 0; i < 40; i++) {
        drv_conn *c = NULL;
        xac_err e;
        if (drv_pool_get(a->p, 30000, &c, &e) != XA_OK) {
            a->failures++;
            continue;
        }
        int now = atomic_fetch_add(&g_in_use, 1) + 1;
        if (now > a->max_seen)
            a->max_seen = now;
        xac_rows r;
        xac_rows_init(&r);
        if (drv_exec(c, "SELECT 1", 8, NULL, 0, &r, &e) != XA_OK)
            a->failures++;
        xac_rows_free(&r);
        if (i % 10 == 9)
            c->broken = true; /* exercise replacement under contention */
        atomic_fetch_sub(&g_in_use, 1);
        drv_pool_put(a->p, c);
    }
    return NULL;
}

/* Eight threads share three connections: nobody fails, nobody exceeds the
 * bound, and broken connections are replaced while others wait. */
static void test_pool_concurrent(void)
{
    NEED_ENV();
    drv_conf conf;
    drv_pool *p = make_pool(&conf, 3);
    churn_arg args[8];
    pthread_t t[8];
    atomic_store(&g_in_use, 0);
    for (int i = 0; i < 8; i++) {
        args[i] = (churn_arg){.p = p};
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, churn, &args[i]) == 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(args[i].failures, 0);
        CU_ASSERT(args[i].max_seen <= 3);
    }
    drv_pool_destroy(p);
}

static void test_pool_broken_replaced(void)
{
    NEED_ENV();
    drv_conf conf;
    drv_pool *p = make_pool(&conf, 1);
    drv_conn *a = NULL, *b = NULL;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 1000, &a, &e), XA_OK);
    long long id1 = dt_sql_int(a, "SELECT CONNECTION_ID()");
    a->broken = true; /* as a driver does when the link is gone */
    drv_pool_put(p, a);
    /* The slot was freed: with pool_size 1 this would otherwise time out. */
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 0, &b, &e), XA_OK);
    long long id2 = dt_sql_int(b, "SELECT CONNECTION_ID()");
    CU_ASSERT(id1 > 0 && id2 > 0 && id1 != id2);
    drv_pool_put(p, b);
    drv_pool_destroy(p);
}

static void kill_conn(long long id)
{
    drv_conn *k = open_conn();
    char sql[64];
    snprintf(sql, sizeof sql, "KILL %lld", id);
    dt_sql_ok(k, sql);
    drv_close(k);
}

static void test_pool_killed_link(void)
{
    NEED_ENV();
    drv_conf conf;
    drv_pool *p = make_pool(&conf, 1);
    drv_conn *a = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 1000, &a, &e), XA_OK);
    /* Killed in the middle of a branch: the next call says XAER_RMFAIL. */
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(a, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(a, 701, "killed", &e), XA_OK);
    long long id = dt_sql_int(a, "SELECT CONNECTION_ID()");
    kill_conn(id);
    int rc = drv_prepare(a, &x, &e);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_EQUAL(e.code, XAC_ERMFAIL);
    CU_ASSERT_STRING_EQUAL(e.resource, RES);
    CU_ASSERT_TRUE(a->broken);
    /* Every later call refuses without touching the dead link. */
    CU_ASSERT_EQUAL(drv_rollback(a, &x, &e), XAER_RMFAIL);
    drv_pool_put(p, a);
    /* The pool hands out a working replacement. */
    drv_conn *b = NULL;
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 1000, &b, &e), XA_OK);
    CU_ASSERT(dt_sql_int(b, "SELECT CONNECTION_ID()") != id);
    drv_conn *o = open_conn();
    CU_ASSERT_EQUAL(count_id(o, 701), 0); /* the server rolled the branch back */
    drv_close(o);

    /* Killed while idle in the pool: the health check on the way out (idle
     * > 1 s) notices and replaces it, so the caller never sees it. */
    id = dt_sql_int(b, "SELECT CONNECTION_ID()");
    drv_pool_put(p, b);
    kill_conn(id);
    usleep(1200000);
    drv_conn *c = NULL;
    CU_ASSERT_EQUAL_FATAL(drv_pool_get(p, 1000, &c, &e), XA_OK);
    long long id3 = dt_sql_int(c, "SELECT CONNECTION_ID()");
    CU_ASSERT(id3 > 0 && id3 != id);
    CU_ASSERT_FALSE(c->broken);
    drv_pool_put(p, c);
    drv_pool_destroy(p);
}

/* The preparing session's link dies after XA PREPARE (the engine's pinned
 * connection in phase two): the pinned connection reports XAER_RMFAIL, and a
 * fresh connection finishes the branch, which survived. */
static void test_killed_after_prepare(void)
{
    NEED_ENV();
    drv_conn *c = open_conn();
    xac_xid x;
    new_xid(&x);
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 801, "killed-prepared", &e), XA_OK);
    long long id = dt_sql_int(c, "SELECT CONNECTION_ID()");
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    kill_conn(id);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XAER_RMFAIL);
    CU_ASSERT_TRUE(c->broken);
    drv_close(c);
    drv_conn *r = open_conn();
    CU_ASSERT_TRUE(find_xid(r, &x));
    CU_ASSERT_EQUAL(finish_retrying(r, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(r, 801), 1);
    drv_close(r);
}

static void test_pool_unreachable(void)
{
    NEED_ENV();
    drv_conf conf = g_conf;
    conf.port = 1; /* nothing listens there */
    conf.pool_size = 2;
    drv_pool *p = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(drv_pool_create(&conf, &p, &e) == XAC_OK);
    drv_conn *c = NULL;
    CU_ASSERT_EQUAL(drv_pool_get(p, 1000, &c, &e), XAER_RMFAIL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(e.code, XAC_ERMFAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 200")); /* 2002 or 2003 */
    CU_ASSERT_TRUE(drv_pool_down(p));
    /* Still down: fails again (fast during the backoff, else by connecting). */
    CU_ASSERT_EQUAL(drv_pool_get(p, 1000, &c, &e), XAER_RMFAIL);
    CU_ASSERT_TRUE(drv_pool_down(p));
    /* The database comes back (here: the right port): once the backoff has
     * passed the pool connects again. Bounded by attempts, not by time. */
    conf.port = g_conf.port;
    int rc = XAER_RMFAIL;
    for (int i = 0; i < 200 && rc != XA_OK; i++) {
        rc = drv_pool_get(p, 1000, &c, &e);
        if (rc != XA_OK)
            usleep(50000);
    }
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_FALSE(drv_pool_down(p));
    if (c != NULL)
        drv_pool_put(p, c);
    drv_pool_destroy(p);

    /* A wrong password is reported as unreachable, with the server's text. */
    conf = g_conf;
    snprintf(conf.password, sizeof conf.password, "wrong");
    CU_ASSERT_EQUAL(drv_open(&conf, &c, &e), XAER_RMFAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1045"));
}

static void test_socket_open(void)
{
    NEED_ENV();
    const char *sock = env("XAC_TEST_MYSQL_SOCKET");
    if (sock[0] == '\0')
        return;
    drv_conf conf = g_conf;
    conf.host[0] = '\0';
    snprintf(conf.socket, sizeof conf.socket, "%s", sock);
    drv_conn *c = NULL;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(drv_open(&conf, &c, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_ping(c, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 7"), 7);
    drv_close(c);
}

int cu_register(void)
{
    load_conf();
    static const cu_test offline[] = {{"xa_names_and_codes", test_xa_names_and_codes},
                                      {"check_conf", test_check_conf},
                                      {"errmap", test_errmap},
                                      {NULL, NULL}};
    static const cu_test live[] = {{"setup_table", test_setup_table},
                                   {"exec_rows_and_params", test_exec_rows_and_params},
                                   {"call_results", test_call_results},
                                   {"2pc_commit", test_2pc_commit},
                                   {"one_phase", test_one_phase},
                                   {"rollback_active", test_rollback_active},
                                   {"rollback_idle", test_rollback_idle},
                                   {"rollback_prepared", test_rollback_prepared},
                                   {"recover_after_close", test_recover_after_close},
                                   {"attached_branch_retry", test_attached_branch_retry},
                                   {"autocommit_off_commit", test_autocommit_off_commit},
                                   {"dup_key", test_dup_key},
                                   {"nota", test_nota},
                                   {"deadlock", test_deadlock},
                                   {"socket_open", test_socket_open},
                                   {NULL, NULL}};
    static const cu_test pool[] = {{"pool_exhaustion", test_pool_exhaustion},
                                   {"pool_wait", test_pool_wait},
                                   {"pool_concurrent", test_pool_concurrent},
                                   {"pool_broken_replaced", test_pool_broken_replaced},
                                   {"pool_killed_link", test_pool_killed_link},
                                   {"killed_after_prepare", test_killed_after_prepare},
                                   {"pool_unreachable", test_pool_unreachable},
                                   {NULL, NULL}};
    int rc = cu_add_suite("drv_offline", offline);
    if (rc == CUE_SUCCESS)
        rc = cu_add_suite("drv_mysql", live);
    if (rc == CUE_SUCCESS)
        rc = cu_add_suite("drv_pool", pool);
    return rc;
}
