/* A driver-level client for test_mysql_restart.sh: MariaDB restarts under
 * connections that hold prepared statements in the mysql driver's cache and
 * a branch whose XA END is still to be sent, and everything must carry on.
 * Connection settings come from tests/fixtures/db.sh's env.sh (XAC_TEST_MYSQL_*);
 * argv[1] is the shell command that restarts the server.
 *
 *   prog_mysql_restart TABLE 'RESTART COMMAND'
 *
 * Before the restart: a pool connection runs the same UPDATE in one-phase
 * branches (prepared once, then cache hits); a second one is held with an
 * open branch. After it: the held branch fails at drv_end with XAER_RMFAIL
 * (nothing committed), the dead pooled connection is replaced, and on the
 * new session the same UPDATE is prepared afresh (the old handles died with
 * the old session) and commits. One line per check: "OK <what>" or
 * "FAIL <what>: <details>". Exit 0 when every check passed, 1 otherwise, 2
 * on bad arguments or environment. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drv.h"
#include "xac_common.h"

static int g_failed;
static char g_table[64];
static char g_upd[160];

static void check(bool ok, const char *what, const char *details)
{
    if (!ok)
        g_failed = 1;
    xac_out("%s %s%s%s\n", ok ? "OK" : "FAIL", what, ok ? "" : ": ", ok ? "" : details);
    xac_out_flush();
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? v : "";
}

static long long query_int(drv_conn *c, const char *sql)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err e;
    long long v = -1;
    if (drv_exec(c, sql, strlen(sql), NULL, 0, &r, &e) == XA_OK && r.has_rows && r.nrows == 1) {
        const char *s = xac_rows_cell(&r, 0, 0, NULL);
        if (s != NULL)
            v = atoll(s);
    }
    xac_rows_free(&r);
    return v;
}

static long long prepares(drv_conn *c)
{
    return query_int(c, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
                        "VARIABLE_NAME = 'COM_STMT_PREPARE'");
}

static int update_by(drv_conn *c, long long by, long long id, xac_err *e)
{
    xac_value p[2];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = by;
    p[1].type = XAC_T_INT;
    p[1].i = id;
    xac_rows r;
    xac_rows_init(&r);
    int rc = drv_exec(c, g_upd, strlen(g_upd), p, 2, &r, e);
    xac_rows_free(&r);
    return rc;
}

static uint64_t g_seq;

static void make_xid(xac_xid *x)
{
    char g[XAC_GTRID_MAX + 1];
    xac_err e;
    if (xac_gtrid_make(g, "restart", xac_now_wall_us(), ++g_seq, &e) != XAC_OK ||
        xac_xid_make(x, g, "my", &e) != XAC_OK)
        memset(x, 0, sizeof *x);
}

static int update(drv_conn *c, long long id, xac_err *e)
{
    return update_by(c, 1, id, e);
}

/* One one-phase branch with the UPDATE, which carries XA START, and a second
 * one, which goes through the statement cache; the XA code of the first
 * failure. */
static int branch(drv_conn *c, long long id, xac_err *e)
{
    xac_xid x;
    make_xid(&x);
    int rc = drv_start(c, &x, e);
    if (rc == XA_OK)
        rc = update(c, id, e);
    if (rc == XA_OK)
        rc = update_by(c, 0, id, e);
    if (rc == XA_OK)
        rc = drv_end(c, &x, e);
    if (rc == XA_OK)
        rc = drv_commit(c, &x, true, e);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strlen(argv[1]) >= sizeof g_table) {
        fprintf(stderr, "usage: prog_mysql_restart TABLE 'RESTART COMMAND'\n");
        return 2;
    }
    snprintf(g_table, sizeof g_table, "%s", argv[1]);
    snprintf(g_upd, sizeof g_upd, "UPDATE %s SET v = v + ? WHERE id = ?", g_table);
    drv_conf conf;
    memset(&conf, 0, sizeof conf);
    snprintf(conf.name, sizeof conf.name, "my");
    snprintf(conf.driver, sizeof conf.driver, "mysql");
    snprintf(conf.host, sizeof conf.host, "%s", env("XAC_TEST_MYSQL_HOST"));
    conf.port = atoi(env("XAC_TEST_MYSQL_PORT"));
    snprintf(conf.user, sizeof conf.user, "%s", env("XAC_TEST_MYSQL_USER"));
    snprintf(conf.password, sizeof conf.password, "%s", env("XAC_TEST_MYSQL_PASSWORD"));
    snprintf(conf.database, sizeof conf.database, "%s", env("XAC_TEST_MYSQL_DB"));
    conf.connect_timeout_ms = 5000;
    conf.io_timeout_ms = 30000;
    conf.pool_size = 2;
    if (conf.host[0] == '\0' || conf.port <= 0) {
        fprintf(stderr, "prog_mysql_restart: XAC_TEST_MYSQL_* are not set\n");
        return 2;
    }
    xac_err e;
    xac_err_clear(&e);
    drv_pool *pool = NULL;
    if (drv_pool_create(&conf, &pool, &e) != XAC_OK) {
        fprintf(stderr, "prog_mysql_restart: %s\n", e.msg);
        return 2;
    }
    drv_conn *a = NULL, *held = NULL;
    if (drv_pool_get(pool, 5000, &a, &e) != XA_OK || drv_pool_get(pool, 5000, &held, &e) != XA_OK) {
        fprintf(stderr, "prog_mysql_restart: no connection: %s\n", e.msg);
        return 2;
    }

    /* Before: prepared once, then hits. */
    long long p0 = prepares(a);
    int rc = XA_OK;
    for (int i = 0; i < 5 && rc == XA_OK; i++)
        rc = branch(a, 1, &e);
    check(rc == XA_OK, "five branches before the restart", e.msg);
    check(prepares(a) - p0 == 1, "the UPDATE was prepared once for five branches", "");
    drv_pool_put(pool, a);
    xac_xid hx;
    make_xid(&hx);
    rc = drv_start(held, &hx, &e);
    if (rc == XA_OK)
        rc = update(held, 2, &e);
    check(rc == XA_OK, "a branch held open across the restart", e.msg);

    xac_out("RESTARTING\n");
    xac_out_flush();
    int st = system(argv[2]);
    check(st == 0, "the restart command", argv[2]);

    /* The held branch's session is gone: drv_end says so, nothing commits. */
    rc = drv_end(held, &hx, &e);
    check(rc == XAER_RMFAIL && held->broken, "the held branch fails at drv_end with XAER_RMFAIL",
          rc == XA_OK ? "drv_end answered XA_OK" : e.msg);
    drv_pool_put(pool, held);

    /* The pool replaces the dead connection; a bounded number of tries, since
     * a connection idle for less than a second is handed out unchecked. */
    drv_conn *b = NULL;
    rc = XAER_RMFAIL;
    long long pb = -1;
    for (int i = 0; i < 5 && rc != XA_OK; i++) {
        if (drv_pool_get(pool, 5000, &b, &e) != XA_OK) {
            usleep(200000);
            continue;
        }
        pb = prepares(b);
        rc = branch(b, 1, &e);
        if (rc != XA_OK)
            xac_out("retrying after: %s\n", e.msg);
        drv_pool_put(pool, b);
    }
    check(rc == XA_OK, "a branch commits after the restart", e.msg);
    if (rc == XA_OK) {
        drv_pool_get(pool, 5000, &b, &e);
        check(b != NULL && prepares(b) - pb == 1,
              "the new session prepared the UPDATE afresh (the cache did not outlive its session)",
              "");
        rc = branch(b, 1, &e);
        check(rc == XA_OK && prepares(b) - pb == 1, "and then hits its own cache", e.msg);
        char q[128];
        snprintf(q, sizeof q, "SELECT v FROM %s WHERE id = 1", g_table);
        check(query_int(b, q) == 7, "account 1 has exactly the 7 committed increments", "");
        snprintf(q, sizeof q, "SELECT v FROM %s WHERE id = 2", g_table);
        check(query_int(b, q) == 0, "account 2 has none (its branch died unended)", "");
        drv_pool_put(pool, b);
    }
    drv_pool_destroy(pool);
    return g_failed;
}
