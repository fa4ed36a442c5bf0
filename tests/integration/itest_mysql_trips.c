/* Integration tests of what the MySQL/MariaDB driver does to save round trips,
 * against the real MariaDB of tests/fixtures/db.sh (XAC_TEST_MYSQL_*): the
 * exact number of requests a branch costs, counted by the server itself in
 * its general log (one row per client command; a command the server does not
 * answer, COM_STMT_CLOSE, is no round trip); the per-connection cache of
 * prepared statements (hits, LRU eviction, its bound, re-preparing after
 * DDL); SQL with a ';' still refused as several statements; and errors of the
 * deferred XA END: a branch the server rolled back without the statement
 * failing still answers its XA_RB* code, and a link dropped before drv_end
 * still fails at drv_end. And XA START carried by the first statement: the
 * same error for a failing statement as on the prepared path, a refused
 * START still START's failure, values (quotes, backslashes, NUL, multibyte
 * text, every byte, extremes) stored exactly as the prepared path stores
 * them, '?' in literals and comments left alone, and the cases left to the
 * usual path. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu.h"
#include "drv.h"
#include "drv_check.h"

#define RES "tripstest"
#define T   "trips_t"

static drv_conf g_conf;
static bool g_have_env;

static void load_conf(void)
{
    dt_conf_mysql(&g_conf, RES, "XAC_TEST_MYSQL_DB");
    g_have_env = g_conf.host[0] && g_conf.port > 0 && g_conf.user[0] && g_conf.database[0];
}

#define NEED_ENV()                                                                                 \
    do {                                                                                           \
        if (!g_have_env)                                                                           \
            CU_FAIL_FATAL("XAC_TEST_MYSQL_HOST/PORT/USER/PASSWORD/DB are not set: start "          \
                          "MariaDB with tests/fixtures/db.sh start DIR and source DIR/env.sh");    \
    } while (0)

static void new_xid(xac_xid *x)
{
    dt_new_xid(x, "trips", RES);
}

/* The first cell of a one-row query, as text ("" when there is none). */
static void sql_text(drv_conn *c, const char *sql, char *out, size_t outlen)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err e;
    out[0] = '\0';
    if (drv_exec(c, sql, strlen(sql), NULL, 0, &r, &e) == XA_OK && r.has_rows && r.nrows == 1) {
        const char *s = xac_rows_cell(&r, 0, 0, NULL);
        snprintf(out, outlen, "%s", s != NULL ? s : "");
    }
    xac_rows_free(&r);
}

static void two_ints(xac_value p[2], long long a, long long b)
{
    memset(p, 0, 2 * sizeof *p);
    p[0].type = XAC_T_INT;
    p[0].i = a;
    p[1].type = XAC_T_INT;
    p[1].i = b;
}

static int exec_params(drv_conn *c, const char *sql, long long a, long long b, xac_err *e)
{
    xac_value p[2];
    two_ints(p, a, b);
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(e);
    int rc = drv_exec(c, sql, strlen(sql), p, 2, &r, e);
    if (rc != XA_OK)
        fprintf(stderr, "exec %s: %s\n", sql, e->msg);
    xac_rows_free(&r);
    return rc;
}

static const char UPD[] = "UPDATE " T " SET v = v + ? WHERE id = ?";
static const char INS[] = "INSERT INTO " T " (id, v) VALUES (?, ?)";

/* ------------------------------------------------------------ counting */

/* The server's general log, switched to a table for the count and back. */
static char g_log_output[64];
static long long g_general_log;

static void log_on(drv_conn *o)
{
    sql_text(o, "SELECT @@global.log_output", g_log_output, sizeof g_log_output);
    g_general_log = dt_sql_int(o, "SELECT @@global.general_log");
    dt_sql_ok(o, "SET GLOBAL log_output = 'TABLE'");
    dt_sql_ok(o, "SET GLOBAL general_log = 1");
}

static void log_off(drv_conn *o)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SET GLOBAL general_log = %lld", g_general_log > 0 ? 1LL : 0LL);
    dt_sql_ok(o, sql);
    snprintf(sql, sizeof sql, "SET GLOBAL log_output = '%s'",
             g_log_output[0] ? g_log_output : "FILE");
    dt_sql_ok(o, sql);
    dt_sql_ok(o, "TRUNCATE TABLE mysql.general_log");
}

/* Requests the server has answered on session tid so far. */
static long long trips(drv_conn *o, long long tid)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM mysql.general_log WHERE thread_id = %lld AND command_type "
             "NOT IN ('Close stmt', 'Quit', 'Long Data')",
             tid);
    return dt_sql_int(o, sql);
}

/* Queries of session tid whose text matches the LIKE pattern pat. */
static long long logged(drv_conn *o, long long tid, const char *pat)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM mysql.general_log WHERE thread_id = %lld AND argument LIKE "
             "'%s'",
             tid, pat);
    return dt_sql_int(o, sql);
}

static long long session_id(drv_conn *c)
{
    return dt_sql_int(c, "SELECT CONNECTION_ID()");
}

typedef enum tx_kind { TX_ONE_PHASE, TX_TWO_PHASE, TX_ROLLBACK, TX_FUSED, TX_EARLY } tx_kind;

/* drv_exec_one_phase with two integer parameters. */
static int fused(drv_conn *c, const xac_xid *x, const char *sql, long long a, long long b,
                 drv_onephase_at *at, xac_rows *r, xac_err *e)
{
    xac_value p[2];
    two_ints(p, a, b);
    xac_err_clear(e);
    return drv_exec_one_phase(c, x, sql, strlen(sql), p, 2, r, at, e);
}

/* drv_exec_prepare with two integer parameters. */
static int early(drv_conn *c, const xac_xid *x, const char *sql, long long a, long long b,
                 drv_prepare_at *at, xac_rows *r, xac_err *e)
{
    xac_value p[2];
    two_ints(p, a, b);
    xac_err_clear(e);
    return drv_exec_prepare(c, x, sql, strlen(sql), p, 2, r, at, e);
}

/* One branch with one UPDATE, the way the engine drives it. */
static void one_tx(drv_conn *c, tx_kind kind, long long id)
{
    xac_xid x;
    new_xid(&x);
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    if (kind == TX_FUSED) {
        drv_onephase_at at;
        xac_rows r;
        xac_rows_init(&r);
        CU_ASSERT_EQUAL(fused(c, &x, UPD, 1, id, &at, &r, &e), XA_OK);
        CU_ASSERT_EQUAL(at, DRV_ONEPHASE_COMMIT);
        CU_ASSERT_EQUAL(r.affected, 1);
        xac_rows_free(&r);
        return;
    }
    if (kind == TX_EARLY) {
        drv_prepare_at at;
        xac_rows r;
        xac_rows_init(&r);
        CU_ASSERT_EQUAL(early(c, &x, UPD, 1, id, &at, &r, &e), XA_OK);
        CU_ASSERT_EQUAL(at, DRV_PREPARE_VOTE);
        CU_ASSERT_EQUAL(r.affected, 1);
        xac_rows_free(&r);
        CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
        return;
    }
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, id, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    int rc;
    if (kind == TX_ONE_PHASE) {
        rc = drv_commit(c, &x, true, &e);
    } else if (kind == TX_TWO_PHASE) {
        rc = drv_prepare(c, &x, &e);
        CU_ASSERT_EQUAL(rc, XA_OK);
        rc = drv_commit(c, &x, false, &e);
    } else {
        rc = drv_rollback(c, &x, &e);
    }
    if (rc != XA_OK)
        fprintf(stderr, "finishing the branch: %s\n", e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
}

/* Round trips per transaction of the given kind, over n transactions after
 * one that warms the statement cache. */
static long long per_tx(drv_conn *c, drv_conn *o, long long tid, tx_kind kind, int n)
{
    one_tx(c, kind, 1);
    long long before = trips(o, tid);
    for (int i = 0; i < n; i++)
        one_tx(c, kind, 1 + i % 5);
    long long total = trips(o, tid) - before;
    CU_ASSERT_EQUAL(total % n, 0);
    return total / n;
}

static void test_setup(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf);
    dt_sql_ok(c, "DROP TABLE IF EXISTS " T);
    dt_sql_ok(c, "CREATE TABLE " T " (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note "
                 "VARCHAR(64) NULL) ENGINE=InnoDB");
    dt_sql_ok(c, "INSERT INTO " T " (id, v) SELECT seq, 0 FROM seq_1_to_200");
    /* A procedure that swallows its statement's deadlock: InnoDB rolls the
     * whole branch back, yet the CALL succeeds, so only XA END can tell. */
    dt_sql_ok(c, "DROP PROCEDURE IF EXISTS trips_swallow");
    dt_sql_ok(c, "CREATE PROCEDURE trips_swallow(IN k BIGINT) BEGIN DECLARE CONTINUE HANDLER "
                 "FOR SQLEXCEPTION BEGIN END; UPDATE " T " SET v = v + 1 WHERE id = k; END");
    drv_close(c);
}

static void test_round_trips(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf), *o = dt_conn(&g_conf);
    long long tid = session_id(c);
    log_on(o);
    long long one = per_tx(c, o, tid, TX_ONE_PHASE, 20);
    long long two = per_tx(c, o, tid, TX_TWO_PHASE, 20);
    long long rb = per_tx(c, o, tid, TX_ROLLBACK, 20);
    long long fu = per_tx(c, o, tid, TX_FUSED, 20);
    long long ea = per_tx(c, o, tid, TX_EARLY, 20);
    fprintf(stderr,
            "\n    round trips per branch: one-phase %lld, two-phase %lld, rollback %lld, "
            "one-phase with its statement %lld, two-phase with the prepare in the statement's "
            "query %lld\n",
            one, two, rb, fu, ea);
    /* "XA START; UPDATE; XA END; XA PREPARE", XA COMMIT */
    CU_ASSERT_EQUAL(ea, 2);
    /* The UPDATE alone, in autocommit mode: a local transaction in one query */
    CU_ASSERT_EQUAL(fu, 1);
    /* "XA START; UPDATE", "XA END; XA COMMIT ONE PHASE" */
    CU_ASSERT_EQUAL(one, 2);
    /* "XA START; UPDATE", "XA END; XA PREPARE", XA COMMIT */
    CU_ASSERT_EQUAL(two, 3);
    /* "XA START; UPDATE", "XA END; XA ROLLBACK" */
    CU_ASSERT_EQUAL(rb, 2);
    /* The batches went out as single queries, with END first. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM mysql.general_log WHERE thread_id = %lld AND argument LIKE "
             "'XA END %%; XA COMMIT %% ONE PHASE'",
             tid);
    CU_ASSERT_EQUAL(dt_sql_int(o, sql), 21);
    /* Every branch's UPDATE carried its XA START, values in place. */
    CU_ASSERT_EQUAL(logged(o, tid, "XA START %; UPDATE " T " SET v = v + 1 WHERE id = %"), 84);
    CU_ASSERT_EQUAL(logged(o, tid, "XA START %"), 84);
    char q[256];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM mysql.general_log WHERE thread_id = %lld AND command_type = "
             "'Query' AND argument LIKE 'UPDATE " T " SET v = v + 1 WHERE id = %%'",
             tid);
    CU_ASSERT_EQUAL(dt_sql_int(o, q), 21);
    CU_ASSERT_EQUAL(logged(o, tid,
                           "XA START %; UPDATE " T " SET v = v + 1 WHERE id = %; XA END %; XA "
                           "PREPARE %"),
                    21);
    log_off(o);
    /* And they did the work: 4 x 21 committed increments, none rolled back. */
    CU_ASSERT_EQUAL(dt_sql_int(o, "SELECT SUM(v) FROM " T " WHERE id BETWEEN 1 AND 5"), 84);
    drv_close(c);
    drv_close(o);
}

/* ------------------------------------------------------- the statement cache */

static long long status(drv_conn *c, const char *name, bool global)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT VARIABLE_VALUE FROM information_schema.%s_STATUS WHERE VARIABLE_NAME = "
             "'%s'",
             global ? "GLOBAL" : "SESSION", name);
    return dt_sql_int(c, sql);
}

/* The i-th of a family of distinct statements (they differ in a comment). */
static void family(char *sql, size_t len, int i)
{
    snprintf(sql, len, "UPDATE " T " /* s%d */ SET v = v + ? WHERE id = ?", i);
}

static void test_cache_hits(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf);
    xac_err e;
    long long p0 = status(c, "COM_STMT_PREPARE", false);
    for (int i = 0; i < 50; i++)
        CU_ASSERT_EQUAL(exec_params(c, UPD, 0, 10, &e), XA_OK);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 1);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_EXECUTE", false) >= 50, true);
    /* Another text is another statement. */
    CU_ASSERT_EQUAL(exec_params(c, "UPDATE " T " SET v = v - ? WHERE id = ?", 0, 10, &e), XA_OK);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 2);
    /* A statement that fails keeps its handle: the next exec is a hit. */
    CU_ASSERT_EQUAL(exec_params(c, INS, 1000, 0, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, INS, 1000, 0, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1062"));
    CU_ASSERT_EQUAL(exec_params(c, INS, 1001, 0, &e), XA_OK);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 3);
    /* Too many or too few parameters for a cached statement: refused as before. */
    xac_value one = {.type = XAC_T_INT, .i = 1};
    xac_rows r;
    xac_rows_init(&r);
    CU_ASSERT_EQUAL(drv_exec(c, INS, sizeof INS - 1, &one, 1, &r, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2 '?' placeholder(s) but 1 parameter(s)"));
    /* Rows come back from statements with a result, which are not kept. */
    static const char sel[] = "SELECT v FROM " T " WHERE id = ? AND v >= ?";
    for (int i = 0; i < 3; i++) {
        xac_value p[2] = {{.type = XAC_T_INT, .i = 1001}, {.type = XAC_T_INT, .i = 0}};
        CU_ASSERT_EQUAL(drv_exec(c, sel, sizeof sel - 1, p, 2, &r, &e), XA_OK);
        CU_ASSERT_TRUE(r.has_rows);
        CU_ASSERT_EQUAL(r.nrows, 1);
        xac_rows_free(&r);
    }
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 6);
    dt_sql_ok(c, "DELETE FROM " T " WHERE id >= 1000");
    drv_close(c);
}

/* Least recently used goes first, and one session never holds more than 32. */
static void test_cache_lru_bound(void)
{
    NEED_ENV();
    drv_conn *o = dt_conn(&g_conf);
    drv_conn *c = dt_conn(&g_conf);
    xac_err e;
    char sql[128];
    long long p0 = status(c, "COM_STMT_PREPARE", false);
    for (int i = 0; i < 32; i++) {
        family(sql, sizeof sql, i);
        CU_ASSERT_EQUAL(exec_params(c, sql, 0, 20, &e), XA_OK);
    }
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 32);
    family(sql, sizeof sql, 0); /* s0 becomes the most recent */
    CU_ASSERT_EQUAL(exec_params(c, sql, 0, 20, &e), XA_OK);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 32);
    family(sql, sizeof sql, 32); /* evicts s1, the least recent */
    CU_ASSERT_EQUAL(exec_params(c, sql, 0, 20, &e), XA_OK);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 33);
    family(sql, sizeof sql, 0);
    CU_ASSERT_EQUAL(exec_params(c, sql, 0, 20, &e), XA_OK);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 33);
    family(sql, sizeof sql, 1);
    CU_ASSERT_EQUAL(exec_params(c, sql, 0, 20, &e), XA_OK);
    CU_ASSERT_EQUAL(status(c, "COM_STMT_PREPARE", false) - p0, 34);
    for (int i = 33; i < 60; i++) {
        family(sql, sizeof sql, i);
        CU_ASSERT_EQUAL(exec_params(c, sql, 0, 20, &e), XA_OK);
    }
    /* What the session holds on the server: prepared minus closed. */
    long long held = status(c, "COM_STMT_PREPARE", false) - status(c, "COM_STMT_CLOSE", false);
    CU_ASSERT_EQUAL(held, 32);
    /* Closing the connection frees them on the server (asynchronously; other
     * sessions closing meanwhile only lower the count further). */
    long long before = status(o, "PREPARED_STMT_COUNT", true);
    drv_close(c);
    long long after = before;
    for (int i = 0; i < 500 && after > before - 32; i++) {
        usleep(10000);
        after = status(o, "PREPARED_STMT_COUNT", true);
    }
    CU_ASSERT(after <= before - 32);
    drv_close(o);
}

/* DDL between two executions: the server re-prepares the kept statement
 * itself, and it still does the work. */
static void test_cache_after_ddl(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf);
    xac_err e;
    dt_sql_ok(c, "DROP TABLE IF EXISTS trips_ddl");
    dt_sql_ok(c, "CREATE TABLE trips_ddl (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)");
    dt_sql_ok(c, "INSERT INTO trips_ddl VALUES (1, 0)");
    static const char upd[] = "UPDATE trips_ddl SET v = v + ? WHERE id = ?";
    CU_ASSERT_EQUAL(exec_params(c, upd, 1, 1, &e), XA_OK);
    dt_sql_ok(c, "ALTER TABLE trips_ddl ADD COLUMN w INT NULL, FORCE");
    CU_ASSERT_EQUAL(exec_params(c, upd, 1, 1, &e), XA_OK);
    dt_sql_ok(c, "DROP TABLE trips_ddl");
    dt_sql_ok(c, "CREATE TABLE trips_ddl (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)");
    dt_sql_ok(c, "INSERT INTO trips_ddl VALUES (1, 40)");
    CU_ASSERT_EQUAL(exec_params(c, upd, 2, 1, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT v FROM trips_ddl WHERE id = 1"), 42);
    /* Gone altogether: an SQL error, and the statement works once it is back. */
    dt_sql_ok(c, "DROP TABLE trips_ddl");
    CU_ASSERT_EQUAL(exec_params(c, upd, 1, 1, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1146"));
    CU_ASSERT_FALSE(c->broken);
    dt_sql_ok(c, "CREATE TABLE trips_ddl (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)");
    dt_sql_ok(c, "INSERT INTO trips_ddl VALUES (1, 1)");
    CU_ASSERT_EQUAL(exec_params(c, upd, 1, 1, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT v FROM trips_ddl WHERE id = 1"), 2);
    dt_sql_ok(c, "DROP TABLE trips_ddl");
    drv_close(c);
}

/* ------------------------------------------------------------ ';' in SQL */

static void test_semicolons(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf);
    xac_err e;
    xac_rows r;
    xac_rows_init(&r);
    /* Two statements in one text are refused, as without the batching. */
    static const char two[] = "UPDATE " T " SET v = v + 1000 WHERE id = 30; SELECT 1";
    CU_ASSERT_EQUAL(drv_exec(c, two, sizeof two - 1, NULL, 0, &r, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1064"));
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT v FROM " T " WHERE id = 30"), 0);
    /* A ';' inside a literal is just a character. */
    static const char lit[] = "SELECT 'a;b'";
    CU_ASSERT_EQUAL(drv_exec(c, lit, sizeof lit - 1, NULL, 0, &r, &e), XA_OK);
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 0, NULL), "a;b");
    xac_rows_free(&r);
    /* A trailing ';' is accepted as before. */
    static const char trail[] = "SELECT 5;";
    CU_ASSERT_EQUAL(drv_exec(c, trail, sizeof trail - 1, NULL, 0, &r, &e), XA_OK);
    xac_rows_free(&r);
    /* With parameters too. */
    static const char ptwo[] = "UPDATE " T " SET v = v + ? WHERE id = ?; SELECT 1";
    xac_value p[2] = {{.type = XAC_T_INT, .i = 1000}, {.type = XAC_T_INT, .i = 30}};
    CU_ASSERT_EQUAL(drv_exec(c, ptwo, sizeof ptwo - 1, p, 2, &r, &e), XAER_RMERR);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT v FROM " T " WHERE id = 30"), 0);
    /* Branches still work afterwards (the batch switches multi-statements
     * back on), in both orders. */
    one_tx(c, TX_ONE_PHASE, 30);
    one_tx(c, TX_TWO_PHASE, 30);
    CU_ASSERT_EQUAL(drv_exec(c, two, sizeof two - 1, NULL, 0, &r, &e), XAER_RMERR);
    one_tx(c, TX_ROLLBACK, 30);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT v FROM " T " WHERE id = 30"), 2);
    CU_ASSERT_FALSE(c->broken);
    drv_close(c);
}

/* ------------------------------------------------- the deferred XA END */

typedef enum finish_by { BY_ONE_PHASE, BY_PREPARE, BY_ROLLBACK } finish_by;

/* Branch a (one row changed) and a heavy local transaction b (many rows)
 * deadlock inside a's CALL, whose handler swallows the error: InnoDB rolls
 * back the lighter a, the CALL succeeds, and only a's XA END can say so. */
static void swallowed_deadlock(finish_by how, long long k1, long long k2)
{
    drv_conn *a = dt_conn(&g_conf), *b = dt_conn(&g_conf);
    xac_err e;
    xac_err_clear(&e);
    char sql[256];
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(a, &x, &e), XA_OK);
    long long v0 = dt_sql_int(b, "SELECT v FROM " T " WHERE id = 199");
    snprintf(sql, sizeof sql, "UPDATE " T " SET v = v + 1 WHERE id = %lld", k1);
    CU_ASSERT_EQUAL(exec_params(a, "UPDATE " T " SET v = v + ? WHERE id = ?", 1, k1, &e), XA_OK);
    dt_sql_ok(b, "BEGIN");
    snprintf(sql, sizeof sql,
             "UPDATE " T " SET v = v + 1 WHERE id BETWEEN 100 AND 199 OR id = %lld", k2);
    dt_sql_ok(b, sql);
    /* b now waits for a's row ... */
    snprintf(sql, sizeof sql, "UPDATE " T " SET v = v + 1 WHERE id = %lld", k1);
    dt_bg la;
    dt_bg_start(&la, b, sql);
    if (!dt_wait_lock_wait(&g_conf))
        CU_FAIL("no transaction ever waited for a lock");
    /* ... and a asks for b's: a cycle, and a is the lighter one. */
    char call[64];
    snprintf(call, sizeof call, "CALL trips_swallow(%lld)", k2);
    int rc = dt_sql_rc(a, call, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(dt_bg_join(&la), XA_OK);
    dt_sql_ok(b, "COMMIT");

    /* Deferred, END says nothing yet; the step that sends it answers. The
     * server refuses END of a ROLLBACK ONLY branch with 1399, which here
     * can only mean that it rolled the branch back: XA_RBROLLBACK, with the
     * same message as when END went out by itself. */
    CU_ASSERT_EQUAL(drv_end(a, &x, &e), XA_OK);
    if (how == BY_ONE_PHASE) {
        rc = drv_commit(a, &x, true, &e);
        CU_ASSERT_EQUAL(rc, XA_RBROLLBACK);
        CU_ASSERT_EQUAL(e.code, XAC_EROLLBACK);
        CU_ASSERT_STRING_EQUAL(e.resource, RES);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "one-phase commit: the server already rolled the "
                                             "branch back (XA_RBROLLBACK): MariaDB error 1399"));
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "ROLLBACK ONLY"));
    } else if (how == BY_PREPARE) {
        rc = drv_prepare(a, &x, &e);
        CU_ASSERT_EQUAL(rc, XA_RBROLLBACK);
        CU_ASSERT_EQUAL(e.code, XAC_EROLLBACK);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "XA END: the server already rolled the branch back "
                                             "(XA_RBROLLBACK): MariaDB error 1399"));
        /* The engine's rollback after a no vote clears the connection. */
        CU_ASSERT_EQUAL(drv_rollback(a, &x, &e), XA_OK);
    } else {
        CU_ASSERT_EQUAL(drv_rollback(a, &x, &e), XA_OK);
    }
    CU_ASSERT_FALSE(a->broken);
    /* a's change is gone, b's is there, and a takes a new branch. */
    snprintf(sql, sizeof sql, "SELECT v FROM " T " WHERE id = %lld", k1);
    long long v1 = dt_sql_int(b, sql);
    CU_ASSERT_EQUAL(dt_sql_int(b, "SELECT v FROM " T " WHERE id = 199"), v0 + 1);
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(a, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(a, "UPDATE " T " SET v = v + ? WHERE id = ?", 1, k1, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(a, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(a, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(b, sql), v1 + 1);
    drv_close(a);
    drv_close(b);
}

static void test_deferred_end_rolled_back(void)
{
    NEED_ENV();
    swallowed_deadlock(BY_ONE_PHASE, 40, 41);
    swallowed_deadlock(BY_PREPARE, 42, 43);
    swallowed_deadlock(BY_ROLLBACK, 44, 45);
}

static void kill_session(long long id)
{
    drv_conn *k = dt_conn(&g_conf);
    char sql[128];
    snprintf(sql, sizeof sql, "KILL %lld", id);
    dt_sql_ok(k, sql);
    /* Until the server has closed the session (and so its socket). */
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM information_schema.processlist WHERE id = %lld",
             id);
    for (int i = 0; i < 500 && dt_sql_int(k, sql) != 0; i++)
        usleep(10000);
    drv_close(k);
}

/* A link the server dropped before drv_end fails at drv_end, as it did when
 * XA END went out at once: the engine then knows nothing was committed. */
static void test_dropped_before_end(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf);
    xac_err e;
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 50, &e), XA_OK);
    kill_session(session_id(c));
    usleep(20000);
    int rc = drv_end(c, &x, &e);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_TRUE(c->broken);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "XA END failed"));
    drv_close(c);
    /* Killed after drv_end: the batch fails; the link is gone either way. */
    c = dt_conn(&g_conf);
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 50, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    kill_session(session_id(c));
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XAER_RMFAIL);
    CU_ASSERT_TRUE(c->broken);
    drv_close(c);
    drv_conn *o = dt_conn(&g_conf);
    CU_ASSERT_EQUAL(dt_sql_int(o, "SELECT v FROM " T " WHERE id = 50"), 0);
    drv_close(o);
}

/* An exec after drv_end meets an ended branch, as it always did, and the
 * connection is not confused about the branch afterwards. */
static void test_exec_after_end(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf);
    xac_err e;
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 60, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK); /* twice is harmless */
    xac_rows r;
    xac_rows_init(&r);
    static const char q[] = "UPDATE " T " SET v = v + 1 WHERE id = 60";
    int rc = drv_exec(c, q, sizeof q - 1, NULL, 0, &r, &e);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1399"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "IDLE state"));
    xac_rows_free(&r);
    drv_close(c);
}

/* ------------------------------------------ XA START with the first statement */

/* A duplicate key in the first statement, which carries XA START, answers
 * what the same statement answers on the prepared path later in a branch,
 * word for word; the branch stays active and commits. */
static void test_fold_dup_key(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf);
    dt_sql_ok(c, "DELETE FROM " T " WHERE id >= 2000");
    dt_sql_ok(c, "INSERT INTO " T " (id, v) VALUES (2000, 0)");
    xac_err e1, e2;
    xac_xid x;
    /* The prepared path: the statement is the branch's second. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e1), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 2000, &e1), XA_OK);
    int rc1 = exec_params(c, INS, 2000, 5, &e1);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e2), XA_OK);
    /* The folded path. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e2), XA_OK);
    int rc2 = exec_params(c, INS, 2000, 5, &e2);
    CU_ASSERT_EQUAL(rc1, XAER_RMERR);
    CU_ASSERT_EQUAL(rc2, rc1);
    CU_ASSERT_STRING_EQUAL(e2.msg, e1.msg);
    CU_ASSERT_STRING_EQUAL(e2.resource, RES);
    CU_ASSERT_PTR_NOT_NULL(strstr(e2.msg, "exec failed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e2.msg, "MariaDB error 1062"));
    /* START did go out: the branch lives on, takes more work and commits. */
    CU_ASSERT_EQUAL(exec_params(c, INS, 2001, 7, &e2), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e2), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e2), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT v FROM " T " WHERE id = 2001"), 7);
    CU_ASSERT_FALSE(c->broken);
    dt_sql_ok(c, "DELETE FROM " T " WHERE id >= 2000");
    drv_close(c);
}

/* The statement and the one-phase commit in one query, as a local
 * transaction: a failed statement is rolled back at once and leaves nothing
 * open; what cannot go that way is not sent at all. */
/* Rows from 3000 on are the fold tests' own: just row 3000, v = 0. */
static void row_3000(drv_conn *c)
{
    dt_sql_ok(c, "DELETE FROM " T " WHERE id >= 3000");
    dt_sql_ok(c, "INSERT INTO " T " (id, v) VALUES (3000, 0)");
}

static long long open_trx(drv_conn *c)
{
    return dt_sql_int(c, "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE "
                         "trx_mysql_thread_id = CONNECTION_ID()");
}

static void test_fused_one_phase(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf), *a = dt_conn(&g_conf);
    row_3000(c);
    xac_err e;
    xac_xid x;
    drv_onephase_at at;
    xac_rows r;
    xac_rows_init(&r);
    /* A failing statement: at EXEC, its error as drv_exec gives it, nothing
     * left open; the rollback after it asks nothing. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(fused(c, &x, INS, 3000, 5, &at, &r, &e), XAER_RMERR);
    CU_ASSERT_EQUAL(at, DRV_ONEPHASE_EXEC);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1062"));
    CU_ASSERT_EQUAL(open_trx(c), 0);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_FALSE(c->broken);
    /* A statement that fails after changing rows: none of them stays. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    static const char multi[] = "INSERT INTO " T " (id, v) VALUES (?, 1), (?, 1)";
    CU_ASSERT_EQUAL(fused(c, &x, multi, 3003, 3000, &at, &r, &e), XAER_RMERR);
    CU_ASSERT_EQUAL(at, DRV_ONEPHASE_EXEC);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT COUNT(*) FROM " T " WHERE id = 3003"), 0);
    /* Not foldable (a SELECT), or not the branch's first statement: nothing
     * is sent and the usual calls follow. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    static const char sel[] = "SELECT v FROM " T " WHERE id = ? AND v >= ?";
    CU_ASSERT_EQUAL(fused(c, &x, sel, 3000, 0, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_ONEPHASE_NOT_SENT);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 3000, &e), XA_OK);
    CU_ASSERT_EQUAL(fused(c, &x, UPD, 1, 3000, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_ONEPHASE_NOT_SENT);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3000"), 1);
    /* The fused one commits, and the connection takes the next branch. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(fused(c, &x, INS, 3002, 9, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_ONEPHASE_COMMIT);
    CU_ASSERT_EQUAL(r.affected, 1);
    CU_ASSERT_EQUAL(open_trx(c), 0);
    one_tx(c, TX_ONE_PHASE, 3000);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3002"), 9);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3000"), 2);
    /* With autocommit off the statement goes between START TRANSACTION and
     * COMMIT, still one query: a failure leaves nothing open, a success is
     * committed. */
    dt_sql_ok(c, "SET autocommit = 0");
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(fused(c, &x, INS, 3002, 1, &at, &r, &e), XAER_RMERR);
    CU_ASSERT_EQUAL(at, DRV_ONEPHASE_EXEC);
    CU_ASSERT_EQUAL(open_trx(c), 0);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    long long tid = session_id(c);
    log_on(a);
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(fused(c, &x, INS, 3004, 4, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_ONEPHASE_COMMIT);
    CU_ASSERT_EQUAL(open_trx(c), 0);
    CU_ASSERT_EQUAL(
        logged(a, tid, "START TRANSACTION; INSERT INTO " T " (id, v) VALUES (3004, 4); COMMIT"), 1);
    log_off(a);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3004"), 4);
    dt_sql_ok(c, "SET autocommit = 1");
    xac_rows_free(&r);
    dt_sql_ok(c, "DELETE FROM " T " WHERE id >= 3000");
    drv_close(c);
    drv_close(a);
}

/* The last statement with XA END and XA PREPARE in its query
 * (drv_exec_prepare): a failing statement answers at EXEC with nothing
 * prepared and the branch still ours to roll back; on a branch that already
 * ran a statement no XA START goes with it; the prepared branch is listed by
 * XA RECOVER and commits or rolls back from the same connection; a statement
 * that cannot be folded is not sent. */
/* Whether XA RECOVER on c lists x. */
static bool prepared_on(drv_conn *c, const xac_xid *x)
{
    drv_indoubt *ind = NULL;
    size_t n = 0;
    xac_err e;
    CU_ASSERT_EQUAL(drv_recover(c, &ind, &n, &e), XA_OK);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || xac_xid_equal(&ind[i].xid, x);
    free(ind);
    return found;
}

static void test_early_prepare(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf), *a = dt_conn(&g_conf);
    row_3000(c);
    xac_err e;
    xac_xid x;
    drv_prepare_at at;
    xac_rows r;
    xac_rows_init(&r);
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(early(c, &x, INS, 3000, 5, &at, &r, &e), XAER_RMERR);
    CU_ASSERT_EQUAL(at, DRV_PREPARE_EXEC);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1062"));
    CU_ASSERT_FALSE(prepared_on(a, &x));
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_FALSE(c->broken);
    /* Second statement of a branch: prepared with it, then committed. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 3000, &e), XA_OK);
    CU_ASSERT_EQUAL(early(c, &x, INS, 3001, 7, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_PREPARE_VOTE);
    CU_ASSERT_EQUAL(r.affected, 1);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT COUNT(*) FROM " T " WHERE id = 3001"), 0);
    CU_ASSERT_TRUE(prepared_on(a, &x));
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3000"), 1);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3001"), 7);
    /* A fresh branch prepared with its first statement, then rolled back. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(early(c, &x, INS, 3002, 9, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_PREPARE_VOTE);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT COUNT(*) FROM " T " WHERE id = 3002"), 0);
    /* A statement that ends in a line comment: XA END and XA PREPARE still
     * run (the comment is closed before them), and so does the one-phase
     * path's COMMIT. */
    static const char upd_c[] = "UPDATE " T " SET v = v + ? WHERE id = ? # trailing note";
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(early(c, &x, upd_c, 5, 3000, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_PREPARE_VOTE);
    CU_ASSERT_TRUE(prepared_on(a, &x));
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    static const char upd_d[] = "UPDATE " T " SET v = v + ? WHERE id = ? -- trailing note";
    drv_onephase_at oat;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(fused(c, &x, upd_d, 10, 3000, &oat, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(oat, DRV_ONEPHASE_COMMIT);
    CU_ASSERT_FALSE(c->broken);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3000"), 16);
    /* Not foldable: nothing sent, the usual calls follow. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    static const char sel[] = "SELECT v FROM " T " WHERE id = ? AND v >= ?";
    CU_ASSERT_EQUAL(early(c, &x, sel, 3000, 0, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_PREPARE_NOT_SENT);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 3000, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3000"), 17);
    /* After drv_end (END deferred) the branch is not active: not sent. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 1, 3000, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(early(c, &x, UPD, 1, 3000, &at, &r, &e), XA_OK);
    CU_ASSERT_EQUAL(at, DRV_PREPARE_NOT_SENT);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(a, "SELECT v FROM " T " WHERE id = 3000"), 17);
    CU_ASSERT_FALSE(c->broken);
    xac_rows_free(&r);
    dt_sql_ok(c, "DELETE FROM " T " WHERE id >= 3000");
    drv_close(c);
    drv_close(a);
}

/* A link killed while the fused query waits for a row lock: the server may
 * have run it to the end for all xacd can tell, so the one-query commit
 * answers XAER_RMFAIL as the commit's outcome (unknown), and the statement
 * with its prepare answers XAER_RMFAIL as the vote (maybe prepared); neither
 * reports a plain statement failure. Here the server ran neither. */
typedef struct killed_arg {
    drv_conn *c;
    xac_xid x;
    bool one_phase;
    int rc;
    int at;
    xac_err err;
} killed_arg;

static void *killed_main(void *p)
{
    killed_arg *k = p;
    xac_rows r;
    xac_rows_init(&r);
    if (k->one_phase) {
        drv_onephase_at at;
        k->rc = fused(k->c, &k->x, UPD, 1, 3100, &at, &r, &k->err);
        k->at = (int)at;
    } else {
        drv_prepare_at at;
        k->rc = early(k->c, &k->x, UPD, 1, 3100, &at, &r, &k->err);
        k->at = (int)at;
    }
    xac_rows_free(&r);
    return NULL;
}

static void test_fused_link_killed(void)
{
    NEED_ENV();
    drv_conn *h = dt_conn(&g_conf), *k = dt_conn(&g_conf);
    dt_sql_ok(k, "DELETE FROM " T " WHERE id >= 3000");
    dt_sql_ok(k, "INSERT INTO " T " (id, v) VALUES (3100, 0)");
    xac_err e;
    for (int one_phase = 0; one_phase < 2; one_phase++) {
        xac_xid hx;
        new_xid(&hx);
        CU_ASSERT_EQUAL_FATAL(drv_start(h, &hx, &e), XA_OK);
        CU_ASSERT_EQUAL_FATAL(exec_params(h, UPD, 1, 3100, &e), XA_OK); /* holds the row */
        killed_arg a = {.c = dt_conn(&g_conf), .one_phase = one_phase != 0};
        long long victim = session_id(a.c);
        new_xid(&a.x);
        CU_ASSERT_EQUAL_FATAL(drv_start(a.c, &a.x, &e), XA_OK);
        pthread_t th;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, killed_main, &a), 0);
        /* Its own lock wait, not another session's: killed before it sent
         * the query, it would not send it at all. */
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %lld AND "
                 "COMMAND = 'Query' AND STATE = 'Updating'",
                 victim);
        CU_ASSERT_TRUE_FATAL(dt_wait_int(k, sql, 1));
        snprintf(sql, sizeof sql, "KILL %lld", victim);
        dt_sql_ok(k, sql);
        pthread_join(th, NULL);
        fprintf(stderr, "\n    %s, link killed: %s at %d: %s\n",
                one_phase ? "one-phase" : "with its prepare", drv_xa_name(a.rc), a.at, a.err.msg);
        CU_ASSERT_EQUAL(a.rc, XAER_RMFAIL);
        CU_ASSERT_EQUAL(a.at, one_phase ? (int)DRV_ONEPHASE_COMMIT : (int)DRV_PREPARE_VOTE);
        CU_ASSERT_TRUE(a.c->broken);
        drv_close(a.c);
        CU_ASSERT_EQUAL(drv_end(h, &hx, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_rollback(h, &hx, &e), XA_OK);
        CU_ASSERT_FALSE(prepared_on(k, &a.x));
    }
    CU_ASSERT_EQUAL(dt_sql_int(k, "SELECT v FROM " T " WHERE id = 3100"), 0);
    dt_sql_ok(k, "DELETE FROM " T " WHERE id >= 3000");
    drv_close(h);
    drv_close(k);
}

/* Phase two in halves: XA COMMIT sent without waiting, the answer read
 * after, one round trip; a branch that is not prepared is not sent. */
static void test_commit_halves(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf), *o = dt_conn(&g_conf);
    row_3000(c);
    long long tid = session_id(c);
    xac_err e;
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(c, UPD, 5, 3000, &e), XA_OK);
    CU_ASSERT_FALSE(drv_commit_send(c, &x)); /* active, not prepared */
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    log_on(o);
    long long before = trips(o, tid);
    CU_ASSERT_TRUE_FATAL(drv_commit_send(c, &x));
    CU_ASSERT_EQUAL(drv_commit_recv(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(trips(o, tid) - before, 1);
    log_off(o);
    CU_ASSERT_FALSE(prepared_on(o, &x));
    CU_ASSERT_EQUAL(dt_sql_int(o, "SELECT v FROM " T " WHERE id = 3000"), 5);
    one_tx(c, TX_TWO_PHASE, 3000); /* the connection takes the next branch */
    CU_ASSERT_EQUAL(dt_sql_int(o, "SELECT v FROM " T " WHERE id = 3000"), 6);
    dt_sql_ok(c, "DELETE FROM " T " WHERE id >= 3000");
    drv_close(c);
    drv_close(o);
}

/* XA START refused (the XID is another session's: XAER_DUPID) is reported as
 * START's failure, folded or not; the statement did not run, a rollback of
 * the never-started branch succeeds without touching the other session's,
 * and the connection takes the next branch. */
static void test_fold_start_fails(void)
{
    NEED_ENV();
    drv_conn *a = dt_conn(&g_conf), *b = dt_conn(&g_conf);
    xac_err e;
    xac_xid x;
    new_xid(&x);
    dt_sql_ok(a, "UPDATE " T " SET v = 0 WHERE id IN (70, 71)");
    CU_ASSERT_EQUAL_FATAL(drv_start(a, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_params(a, UPD, 1, 70, &e), XA_OK);
    for (int folded = 1; folded >= 0; folded--) {
        CU_ASSERT_EQUAL_FATAL(drv_start(b, &x, &e), XA_OK);
        xac_err_clear(&e);
        int rc;
        if (folded) {
            rc = exec_params(b, UPD, 1, 71, &e);
        } else {
            static const char q[] = "SELECT v FROM " T " WHERE id = 71"; /* not folded */
            xac_rows r;
            xac_rows_init(&r);
            rc = drv_exec(b, q, sizeof q - 1, NULL, 0, &r, &e);
            xac_rows_free(&r);
        }
        CU_ASSERT_EQUAL(rc, XAER_DUPID);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "resource " RES ": XA START failed (XAER_DUPID)"));
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "MariaDB error 1440"));
        CU_ASSERT_EQUAL(drv_end(b, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_rollback(b, &x, &e), XA_OK);
        CU_ASSERT_FALSE(b->broken);
    }
    CU_ASSERT_EQUAL(dt_sql_int(b, "SELECT v FROM " T " WHERE id = 71"), 0);
    /* a's branch was left alone. */
    CU_ASSERT_EQUAL(drv_end(a, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(a, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(b, "SELECT v FROM " T " WHERE id = 70"), 1);
    one_tx(b, TX_ONE_PHASE, 71);
    CU_ASSERT_EQUAL(dt_sql_int(b, "SELECT v FROM " T " WHERE id = 71"), 1);
    /* A branch that never ran a statement: rollback asks nothing of the
     * server; prepare and commit still run START first, as before. */
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(b, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(b, &x, &e), XA_OK);
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(b, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(b, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(b, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(b, &x, false, &e), XA_OK);
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(b, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(b, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(b, &x, true, &e), XA_OK);
    CU_ASSERT_FALSE(b->broken);
    drv_close(a);
    drv_close(b);
}

#define VALS       "trips_vals"
#define NVALS      9
#define VALS_SHIFT 1000

/* The same INSERT for the default mode and for NO_BACKSLASH_ESCAPES, with a
 * '?' in a literal (whose end depends on the mode), in comments; and what
 * the literal stores. */
static const char *const VINS[2] = {
    "INSERT /* ? */ INTO " VALS " (id, t, b, i, d, s) VALUES (?, ?, ?, ?, ?, 'lit?''\\'?') # ?\n"
    " -- ?\n",
    "INSERT /* ? */ INTO " VALS " (id, t, b, i, d, s) VALUES (?, ?, ?, ?, ?, 'lit?''\\') # ?\n"
    " -- ?\n"};
static const char *const VLIT[2] = {"lit?''?", "lit?'\\"};

static unsigned char g_blob[256];

/* Row k's values: text with quotes, backslashes, NUL bytes, multibyte UTF-8
 * and '?'; a blob with every byte value; integer and double extremes; NULL
 * in each column once. Rows 7 and 8 hold values with no exact literal
 * (INT64_MIN, -0.0): those branches take the usual path. */
static void vals_row(int k, xac_value v[6])
{
    static const char t0[] = "it's \"q\" back\\slash \\' \\\\ ? ``";
    static const char t1[] = "a\0b\0";
    static const char t2[] = "\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87 \xe6\x97\xa5\xe6\x9c\xac "
                             "\xf0\x9f\x8e\x89 '?'";
    static const char *const ts[] = {t0, t1, t2, "", "\\", "'", "x", "min", "negzero"};
    static const size_t tl[] = {sizeof t0 - 1, sizeof t1 - 1, sizeof t2 - 1, 0, 1, 1, 1, 3, 7};
    static const int64_t is[] = {INT64_MAX, INT64_MIN + 1, -1, 0, 42, -42, 1, INT64_MIN, 5};
    static const double ds[] = {0.1,  -1e-300, 4.9e-324, 1.7976931348623157e308, 1.0 / 3, -2.5,
                                1e22, 7,       -0.0};
    for (int i = 0; i < 256; i++)
        g_blob[i] = (unsigned char)i;
    memset(v, 0, 6 * sizeof *v);
    v[0].type = XAC_T_INT;
    v[0].i = k;
    v[1].type = XAC_T_TEXT;
    v[1].s = ts[k];
    v[1].len = tl[k];
    v[2].type = XAC_T_BLOB;
    v[2].s = (const char *)g_blob + 17 * k % 256;
    v[2].len = (size_t)(256 - 17 * k % 256);
    if (k <= 1)
        v[2].len = 256; /* every byte value */
    v[3].type = XAC_T_INT;
    v[3].i = is[k];
    v[4].type = XAC_T_DOUBLE;
    v[4].d = ds[k];
    if (k >= 3 && k <= 6)
        v[k - 2].type = XAC_T_NULL; /* t, b, i, d in turn */
    if (k == 3)
        v[2].len = 0; /* an empty blob */
}

static void vals_insert(drv_conn *c, int pass, int k, bool in_branch)
{
    xac_value v[6];
    vals_row(k, v);
    if (!in_branch)
        v[0].i += VALS_SHIFT;
    xac_rows r;
    xac_rows_init(&r);
    xac_err e;
    xac_xid x;
    if (in_branch) {
        new_xid(&x);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    }
    int rc = drv_exec(c, VINS[pass], strlen(VINS[pass]), v, 5, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "row %d: %s\n", k, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_FALSE(r.has_rows);
    CU_ASSERT_EQUAL(r.affected, 1);
    xac_rows_free(&r);
    if (in_branch) {
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    }
}

/* Values reach the server the same through the folded text statement as
 * through the prepared one: rows inserted both ways are byte for byte equal,
 * and equal to what was sent; '?' in literals and comments is no
 * placeholder; and so under NO_BACKSLASH_ESCAPES too. */
static void test_fold_values(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf), *o = dt_conn(&g_conf);
    dt_sql_ok(c, "DROP TABLE IF EXISTS " VALS);
    dt_sql_ok(c, "CREATE TABLE " VALS " (id BIGINT PRIMARY KEY, t TEXT CHARACTER SET utf8mb4 "
                 "NULL, b BLOB NULL, i BIGINT NULL, d DOUBLE NULL, s VARCHAR(16) NULL)");
    long long tid = session_id(c);
    log_on(o);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            dt_sql_ok(c, "DELETE FROM " VALS);
            dt_sql_ok(c, "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')");
        }
        for (int k = 0; k < NVALS; k++) {
            vals_insert(c, pass, k, true);
            vals_insert(c, pass, k, false);
        }
        /* Both ways agree, byte for byte. */
        CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM " VALS " a JOIN " VALS
                                      " b ON b.id = a.id + 1000 WHERE BINARY a.t <=> BINARY b.t "
                                      "AND a.b <=> b.b AND a.i <=> b.i AND a.d <=> b.d AND "
                                      "BINARY a.s <=> BINARY b.s"),
                        NVALS);
        /* And agree with what was sent. */
        for (int k = 0; k < NVALS; k++) {
            xac_value v[6];
            vals_row(k, v);
            v[5].type = XAC_T_TEXT;
            v[5].s = VLIT[pass];
            v[5].len = strlen(VLIT[pass]);
            static const char q[] = "SELECT COUNT(*) FROM " VALS " WHERE id = ? AND BINARY t <=> "
                                    "? AND b <=> ? AND i <=> ? AND d <=> ? AND BINARY s = ?";
            xac_rows r;
            xac_rows_init(&r);
            xac_err e;
            int rc = drv_exec(c, q, sizeof q - 1, v, 6, &r, &e);
            CU_ASSERT_EQUAL(rc, XA_OK);
            const char *n = rc == XA_OK && r.nrows == 1 ? xac_rows_cell(&r, 0, 0, NULL) : NULL;
            if (n == NULL || strcmp(n, "1") != 0)
                fprintf(stderr, "pass %d row %d differs from what was sent\n", pass, k);
            CU_ASSERT_STRING_EQUAL(n != NULL ? n : "", "1");
            xac_rows_free(&r);
        }
    }
    /* Each branch but those of rows 7 and 8 carried XA START in its INSERT. */
    CU_ASSERT_EQUAL(logged(o, tid, "XA START %; INSERT /* ? */ INTO " VALS "%"), 2 * (NVALS - 2));
    CU_ASSERT_EQUAL(logged(o, tid, "XA START %"), 2 * NVALS);
    log_off(o);
    dt_sql_ok(c, "DROP TABLE " VALS);
    drv_close(c);
    drv_close(o);
}

/* What the fold leaves to the usual path, which then works as before: a
 * first statement that is no INSERT/UPDATE/DELETE/REPLACE, a value too big
 * to spell out, a session whose character set is not UTF-8. */
static void test_fold_fallbacks(void)
{
    NEED_ENV();
    drv_conn *c = dt_conn(&g_conf), *o = dt_conn(&g_conf);
    dt_sql_ok(c, "DROP TABLE IF EXISTS " VALS);
    dt_sql_ok(c, "CREATE TABLE " VALS
                 " (id BIGINT PRIMARY KEY, t TEXT CHARACTER SET utf8mb4 NULL, b MEDIUMBLOB NULL)");
    long long tid = session_id(c);
    static unsigned char big[20000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    static const char ins[] = "INSERT INTO " VALS " (id, t, b) VALUES (?, ?, ?)";
    log_on(o);
    for (int k = 0; k < 3; k++) {
        if (k == 2)
            dt_sql_ok(c, "SET NAMES latin1");
        xac_value v[3] = {
            {.type = XAC_T_INT, .i = k},
            {.type = XAC_T_TEXT, .s = "\xc3\xa9", .len = 2},
            {.type = XAC_T_BLOB, .s = (const char *)big, .len = k == 1 ? sizeof big : 3}};
        xac_xid x;
        xac_err e;
        xac_rows r;
        xac_rows_init(&r);
        new_xid(&x);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        if (k == 0) {
            static const char q[] = "SELECT COUNT(*) FROM " VALS;
            CU_ASSERT_EQUAL(drv_exec(c, q, sizeof q - 1, NULL, 0, &r, &e), XA_OK);
            xac_rows_free(&r);
        }
        CU_ASSERT_EQUAL(drv_exec(c, ins, sizeof ins - 1, v, 3, &r, &e), XA_OK);
        CU_ASSERT_EQUAL(r.affected, 1);
        xac_rows_free(&r);
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    }
    CU_ASSERT_EQUAL(logged(o, tid, "XA START %"), 3);
    CU_ASSERT_EQUAL(logged(o, tid, "XA START %;%"), 0);
    log_off(o);
    dt_sql_ok(c, "SET NAMES utf8mb4");
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM " VALS " WHERE HEX(t) = 'C3A9' AND id < 2"),
                    2);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT LENGTH(b) FROM " VALS " WHERE id = 1"),
                    (long long)sizeof big);
    dt_sql_ok(c, "DROP TABLE " VALS);
    drv_close(c);
    drv_close(o);
}

int cu_register(void)
{
    load_conf();
    static const cu_test live[] = {{"setup", test_setup},
                                   {"round_trips", test_round_trips},
                                   {"cache_hits", test_cache_hits},
                                   {"cache_lru_bound", test_cache_lru_bound},
                                   {"cache_after_ddl", test_cache_after_ddl},
                                   {"semicolons", test_semicolons},
                                   {"deferred_end_rolled_back", test_deferred_end_rolled_back},
                                   {"dropped_before_end", test_dropped_before_end},
                                   {"exec_after_end", test_exec_after_end},
                                   {"fold_dup_key", test_fold_dup_key},
                                   {"fold_start_fails", test_fold_start_fails},
                                   {"fused_one_phase", test_fused_one_phase},
                                   {"early_prepare", test_early_prepare},
                                   {"fused_link_killed", test_fused_link_killed},
                                   {"commit_halves", test_commit_halves},
                                   {"fold_values", test_fold_values},
                                   {"fold_fallbacks", test_fold_fallbacks},
                                   {NULL, NULL}};
    return cu_add_suite("mysql_trips", live);
}
