/* Checks the mssql driver through the driver API against a TDS server (the
 * stand-in of tests/tds/ or a real SQL Server) for test_mssql_driver.sh.
 * Settings come from XAC_TEST_MSSQL_HOST, _PORT, _USER, _PASSWORD and _DB.
 *
 *   prog_mssql_check basic
 *       open and ping; a local transaction committed in one phase is
 *       visible, a rolled back one is not; lrc_commit commits data and
 *       marker; lrc_marker finds 'C', fences an unknown gtrid with 'R', and
 *       lrc_commit of a fenced gtrid answers XA_RBROLLBACK and leaves no
 *       data; lrc_list and lrc_forget; parameter types and result cells;
 *       errors 2627, 547, 1205 and a bad password map to their XA codes with
 *       the numbers in the message; prepare is refused.
 *   prog_mssql_check recover FID GTRID BQUAL commit|rollback
 *       recover lists the XID (gtrid and bqual as text), commit or rollback by
 *       XID resolves it, recover then does not list it, and a second try
 *       answers XAER_NOTA.
 *   prog_mssql_check reconnect CMD
 *       a pooled connection works; CMD (a shell command that kills and
 *       restarts the server) runs; the next call on that connection answers
 *       XAER_RMFAIL and marks it broken; the pool then hands out a new
 *       connection that works.
 *   prog_mssql_check threads
 *       8 threads open connections (some with a wrong password) and provoke
 *       each its own error number at once; each must read back its own
 *       number and text (db-lib's handlers are process-wide).
 *   prog_mssql_check timeout SLOW_SQL
 *       with io_timeout_ms 1000, SLOW_SQL (a statement that takes longer)
 *       answers XAER_RMFAIL and marks the connection broken.
 *
 * Prints one line per check; exits 1 with a message at the first failed
 * check, 2 on bad arguments. */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drv.h"
#include "xac_common.h"

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char m_[1400];                                                                         \
            snprintf(m_, sizeof m_, __VA_ARGS__);                                                  \
            xac_loge("prog_mssql_check: FAILED at line %d: %s", __LINE__, m_);                     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

#define OK(what) xac_out("ok   %s\n", what)

static drv_conf conf;
static char table[64];
static char run_id[32];

static int load_conf(void)
{
    const char *host = getenv("XAC_TEST_MSSQL_HOST"), *port = getenv("XAC_TEST_MSSQL_PORT"),
               *user = getenv("XAC_TEST_MSSQL_USER"), *pw = getenv("XAC_TEST_MSSQL_PASSWORD"),
               *db = getenv("XAC_TEST_MSSQL_DB");
    CHECK(host && port && user && pw && db,
          "set XAC_TEST_MSSQL_HOST, _PORT, _USER, _PASSWORD and _DB (tests/fixtures/db.sh)");
    memset(&conf, 0, sizeof conf);
    snprintf(conf.name, sizeof conf.name, "ms1");
    snprintf(conf.driver, sizeof conf.driver, "mssql");
    snprintf(conf.host, sizeof conf.host, "%s", host);
    conf.port = atoi(port);
    snprintf(conf.user, sizeof conf.user, "%s", user);
    snprintf(conf.password, sizeof conf.password, "%s", pw);
    snprintf(conf.database, sizeof conf.database, "%s", db);
    snprintf(conf.tds_version, sizeof conf.tds_version, "7.4");
    snprintf(conf.marker_table, sizeof conf.marker_table, "xac_commit_marker");
    conf.connect_timeout_ms = 5000;
    conf.io_timeout_ms = 20000;
    conf.pool_size = 2;
    conf.last_resource = true;
    snprintf(run_id, sizeof run_id, "t%ld.%ld", (long)getpid(), (long)time(NULL) % 100000);
    snprintf(table, sizeof table, "ms_chk_%ld", (long)getpid());
    return 0;
}

/* Runs sql without parameters; returns the XA code. */
static int run(drv_conn *c, const char *sql, xac_rows *rows, xac_err *e)
{
    return drv_exec(c, sql, strlen(sql), NULL, 0, rows, e);
}

/* The number in "SELECT COUNT(*) ..." or -1. */
static long count_of(drv_conn *c, const char *sql)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err e;
    long n = -1;
    if (run(c, sql, &r, &e) == XA_OK && r.has_rows && r.nrows == 1 && r.ncols == 1) {
        const char *v = xac_rows_cell(&r, 0, 0, NULL);
        if (v != NULL)
            n = atol(v);
    } else {
        xac_loge("count query failed: %s", e.msg);
    }
    xac_rows_free(&r);
    return n;
}

static long count_id(drv_conn *c, int id)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s WHERE id = %d", table, id);
    return count_of(c, sql);
}

static long count_marker(drv_conn *c, const char *gtrid, char outcome)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM xac_commit_marker WHERE gtrid = '%s' AND outcome = '%c'", gtrid,
             outcome);
    return count_of(c, sql);
}

static int insert(drv_conn *c, int id, int n, xac_err *e)
{
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v, n) VALUES (%d, N'x', %d)", table, id, n);
    return run(c, sql, NULL, e);
}

static void make_xid(xac_xid *x, const char *suffix)
{
    char g[XAC_GTRID_MAX + 1];
    xac_err e;
    snprintf(g, sizeof g, "%s.%s", run_id, suffix);
    xac_xid_make(x, g, conf.name, &e);
}

static bool has(const xac_err *e, const char *words)
{
    return strstr(e->msg, words) != NULL;
}

static int check_transactions(drv_conn *c)
{
    xac_err e;
    xac_xid x;
    make_xid(&x, "1");
    CHECK(drv_start(c, &x, &e) == XA_OK, "start: %s", e.msg);
    CHECK(insert(c, 1, 1, &e) == XA_OK, "insert in a transaction: %s", e.msg);
    CHECK(drv_end(c, &x, &e) == XA_OK, "end: %s", e.msg);
    CHECK(drv_commit(c, &x, true, &e) == XA_OK, "one-phase commit: %s", e.msg);
    CHECK(count_id(c, 1) == 1, "the committed row is not visible");
    OK("start + exec + one-phase commit: visible");

    make_xid(&x, "2");
    CHECK(drv_start(c, &x, &e) == XA_OK, "start: %s", e.msg);
    CHECK(insert(c, 2, 1, &e) == XA_OK, "insert: %s", e.msg);
    CHECK(count_id(c, 2) == 1, "the row is not visible inside its own transaction");
    CHECK(drv_rollback(c, &x, &e) == XA_OK, "rollback: %s", e.msg);
    CHECK(count_id(c, 2) == 0, "the rolled back row is visible");
    OK("start + exec + rollback: invisible");

    int rc = drv_prepare(c, &x, &e);
    CHECK(rc == XAER_PROTO, "prepare answered %s, not XAER_PROTO", drv_xa_name(rc));
    CHECK(has(&e, "last resource"), "prepare's message does not say why: %s", e.msg);
    OK("prepare refused (XAER_PROTO)");
    return 0;
}

static int check_lrc(drv_conn *c, drv_conn *c2)
{
    xac_err e;
    xac_xid x;
    drv_marker m;
    make_xid(&x, "3");
    CHECK(drv_start(c, &x, &e) == XA_OK, "start: %s", e.msg);
    CHECK(insert(c, 3, 1, &e) == XA_OK, "insert: %s", e.msg);
    CHECK(drv_end(c, &x, &e) == XA_OK, "end: %s", e.msg);
    CHECK(drv_lrc_commit(c, x.gtrid, &e) == XA_OK, "lrc_commit: %s", e.msg);
    CHECK(count_id(c2, 3) == 1, "lrc_commit: the data is not visible from another connection");
    CHECK(count_marker(c2, x.gtrid, 'C') == 1, "lrc_commit: no 'C' marker for %s", x.gtrid);
    OK("lrc_commit: data and marker visible");

    CHECK(drv_lrc_marker(c2, x.gtrid, true, &m, &e) == XA_OK, "lrc_marker: %s", e.msg);
    CHECK(m == DRV_MARKER_COMMITTED, "lrc_marker of a committed gtrid gave %d", (int)m);
    OK("lrc_marker finds C (and fence leaves it alone)");

    xac_xid f;
    make_xid(&f, "4");
    CHECK(drv_lrc_marker(c2, f.gtrid, false, &m, &e) == XA_OK, "lrc_marker: %s", e.msg);
    CHECK(m == DRV_MARKER_NONE, "lrc_marker of an unknown gtrid without fence gave %d", (int)m);
    CHECK(count_marker(c2, f.gtrid, 'R') == 0, "lookup without fence wrote a row");
    CHECK(drv_lrc_marker(c2, f.gtrid, true, &m, &e) == XA_OK, "lrc_marker fence: %s", e.msg);
    CHECK(m == DRV_MARKER_ABORTED, "fence of an unknown gtrid gave %d, not ABORTED", (int)m);
    CHECK(count_marker(c2, f.gtrid, 'R') == 1, "no 'R' row after the fence");
    CHECK(drv_lrc_marker(c2, f.gtrid, true, &m, &e) == XA_OK && m == DRV_MARKER_ABORTED,
          "second fence: %d %s", (int)m, e.msg);
    OK("lrc_marker fences an unknown gtrid to R");

    /* The commit of the fenced gtrid arrives late. */
    CHECK(drv_start(c, &f, &e) == XA_OK, "start: %s", e.msg);
    CHECK(insert(c, 4, 1, &e) == XA_OK, "insert: %s", e.msg);
    CHECK(drv_end(c, &f, &e) == XA_OK, "end: %s", e.msg);
    int rc = drv_lrc_commit(c, f.gtrid, &e);
    CHECK(rc == XA_RBROLLBACK, "lrc_commit of a fenced gtrid answered %s: %s", drv_xa_name(rc),
          e.msg);
    CHECK(has(&e, "fenced") && has(&e, "2627"), "the message does not say fenced/2627: %s", e.msg);
    CHECK(count_id(c2, 4) == 0, "the fenced transaction's data was committed");
    CHECK(count_marker(c2, f.gtrid, 'C') == 0, "a 'C' marker exists for the fenced gtrid");
    CHECK(drv_ping(c, &e) == XA_OK, "the connection is unusable after the fenced commit: %s",
          e.msg);
    xac_out("     (%s)\n", e.msg);
    OK("lrc_commit of a fenced gtrid: XA_RBROLLBACK, data rolled back");

    /* lrc_list: only C rows, only the prefix. */
    char prefix[XAC_GTRID_MAX + 1];
    snprintf(prefix, sizeof prefix, "%s.", run_id);
    char(*list)[XAC_GTRID_MAX + 1] = NULL;
    size_t n = 0;
    CHECK(drv_lrc_list(c2, prefix, &list, &n, &e) == XA_OK, "lrc_list: %s", e.msg);
    CHECK(n == 1 && strcmp(list[0], x.gtrid) == 0, "lrc_list gave %zu gtrids (first %s)", n,
          n ? list[0] : "-");
    free(list);
    CHECK(drv_lrc_list(c2, "no_such_prefix_", &list, &n, &e) == XA_OK && n == 0,
          "lrc_list of an unused prefix gave %zu: %s", n, e.msg);
    free(list);
    rc = drv_lrc_list(c2, "bad'prefix", &list, &n, &e);
    CHECK(rc == XAER_INVAL, "lrc_list with a quote answered %s", drv_xa_name(rc));
    OK("lrc_list");

    /* lrc_forget: the C row by name, the R row only by age. */
    const char *g[1] = {x.gtrid};
    CHECK(drv_lrc_forget(c2, g, 1, 0, &e) == XA_OK, "lrc_forget: %s", e.msg);
    CHECK(count_marker(c2, x.gtrid, 'C') == 0, "lrc_forget left the C row");
    CHECK(count_marker(c2, f.gtrid, 'R') == 1, "lrc_forget without an age removed the R row");
    CHECK(drv_lrc_forget(c2, NULL, 0, (int64_t)time(NULL) + 10, &e) == XA_OK, "lrc_forget: %s",
          e.msg);
    CHECK(count_marker(c2, f.gtrid, 'R') == 0, "lrc_forget by age left the R row");
    /* More than one statement's worth of gtrids. */
    const char *many[250];
    char names[250][XAC_GTRID_MAX + 1];
    for (int i = 0; i < 250; i++) {
        snprintf(names[i], sizeof names[i], "%s.m%d", run_id, i);
        many[i] = names[i];
    }
    for (int i = 0; i < 250; i += 83)
        CHECK(drv_lrc_marker(c2, many[i], true, &m, &e) == XA_OK, "fence: %s", e.msg);
    CHECK(drv_lrc_forget(c2, many, 250, 0, &e) == XA_OK, "lrc_forget of 250: %s", e.msg);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM xac_commit_marker WHERE gtrid LIKE '%s.m%%'",
             run_id);
    CHECK(count_of(c2, sql) == 0, "lrc_forget of 250 gtrids left rows");
    OK("lrc_forget");
    return 0;
}

static int check_values(drv_conn *c)
{
    xac_err e;
    xac_rows r;
    xac_rows_init(&r);
    static const char blob[] = {'a', '\0', 'b', '\xff'};
    xac_value p[6];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 10;
    p[1].type = XAC_T_TEXT;
    p[1].s = "h\xc3\xa9llo 'q' ?";
    p[1].len = strlen(p[1].s);
    p[2].type = XAC_T_INT;
    p[2].i = -9000000000LL;
    p[3].type = XAC_T_DOUBLE;
    p[3].d = 2.5;
    p[4].type = XAC_T_BLOB;
    p[4].s = blob;
    p[4].len = sizeof blob;
    p[5].type = XAC_T_NULL;
    char sql[300];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (id, v, n, big, f, b, z) VALUES (?, ?, 5, ?, ?, ?, ?) -- '?'", table);
    int rc = drv_exec(c, sql, strlen(sql), p, 6, &r, &e);
    CHECK(rc == XA_OK, "insert with 6 parameters: %s", e.msg);
    CHECK(!r.has_rows && r.affected == 1, "insert affected %" PRIu64 " rows", r.affected);

    /* An empty string is not NULL. */
    xac_value q[2];
    memset(q, 0, sizeof q);
    q[0].type = XAC_T_INT;
    q[0].i = 11;
    q[1].type = XAC_T_TEXT;
    q[1].s = "";
    snprintf(sql, sizeof sql, "INSERT INTO %s (id, v, n) VALUES (?, ?, 0)", table);
    CHECK(drv_exec(c, sql, strlen(sql), q, 2, &r, &e) == XA_OK, "insert of '': %s", e.msg);

    snprintf(sql, sizeof sql,
             "SELECT id, v, big, f, b, z, n FROM %s WHERE id >= ? AND v <> ? ORDER BY id", table);
    xac_value w[2];
    memset(w, 0, sizeof w);
    w[0].type = XAC_T_INT;
    w[0].i = 10;
    w[1].type = XAC_T_TEXT;
    w[1].s = "nothing";
    w[1].len = 7;
    CHECK(drv_exec(c, sql, strlen(sql), w, 2, &r, &e) == XA_OK, "select: %s", e.msg);
    CHECK(r.has_rows && r.nrows == 2 && r.ncols == 7, "select gave %zu rows x %zu columns", r.nrows,
          r.ncols);
    CHECK(strcmp(r.cols[0], "id") == 0 && strcmp(r.cols[6], "n") == 0, "column names %s, %s",
          r.cols[0], r.cols[6]);
    size_t len;
    const char *v = xac_rows_cell(&r, 0, 0, &len);
    CHECK(v && strcmp(v, "10") == 0, "id cell is '%s'", v ? v : "NULL");
    v = xac_rows_cell(&r, 0, 1, &len);
    CHECK(v && len == strlen(p[1].s) && memcmp(v, p[1].s, len) == 0, "text cell is '%s'",
          v ? v : "NULL");
    v = xac_rows_cell(&r, 0, 2, &len);
    CHECK(v && strcmp(v, "-9000000000") == 0, "bigint cell is '%s'", v ? v : "NULL");
    v = xac_rows_cell(&r, 0, 3, &len);
    CHECK(v && strcmp(v, "2.5") == 0, "float cell is '%s'", v ? v : "NULL");
    v = xac_rows_cell(&r, 0, 4, &len);
    CHECK(v && len == sizeof blob && memcmp(v, blob, len) == 0, "binary cell has %zu bytes",
          v ? len : 0);
    CHECK(xac_rows_cell(&r, 0, 5, &len) == NULL, "NULL came back as a value");
    v = xac_rows_cell(&r, 1, 1, &len);
    CHECK(v != NULL && len == 0, "'' came back as %s", v ? "a non-empty value" : "NULL");
    xac_rows_free(&r);

    /* Mismatched counts are refused before anything runs. */
    rc = drv_exec(c, sql, strlen(sql), w, 1, &r, &e);
    CHECK(rc == XAER_RMERR && has(&e, "placeholder"), "1 parameter for 2 '?': %s %s",
          drv_xa_name(rc), e.msg);
    xac_rows_free(&r);
    OK("parameters (bigint, float, nvarchar, varbinary, NULL, '') and result cells");
    return 0;
}

static int check_errors(drv_conn *c)
{
    xac_err e;
    int rc;
    CHECK(insert(c, 20, 1, &e) == XA_OK, "insert: %s", e.msg);
    rc = insert(c, 20, 1, &e);
    CHECK(rc == XAER_RMERR, "duplicate key answered %s: %s", drv_xa_name(rc), e.msg);
    CHECK(has(&e, "resource ms1") && has(&e, "SQL Server error 2627") && has(&e, "(duplicate key)"),
          "duplicate key message: %s", e.msg);
    xac_out("     (%s)\n", e.msg);
    OK("2627 duplicate key: XAER_RMERR");

    rc = insert(c, 21, -1, &e);
    CHECK(rc == XAER_RMERR, "CHECK violation answered %s: %s", drv_xa_name(rc), e.msg);
    CHECK(has(&e, "SQL Server error 547") && has(&e, "(constraint violation)"),
          "constraint message: %s", e.msg);
    xac_out("     (%s)\n", e.msg);
    OK("547 constraint violation: XAER_RMERR");

    /* A statement error inside the transaction keeps the transaction. */
    xac_xid x;
    make_xid(&x, "5");
    CHECK(drv_start(c, &x, &e) == XA_OK, "start: %s", e.msg);
    CHECK(insert(c, 22, 1, &e) == XA_OK, "insert: %s", e.msg);
    CHECK(insert(c, 20, 1, &e) == XAER_RMERR, "duplicate in a transaction: %s", e.msg);
    CHECK(drv_commit(c, &x, true, &e) == XA_OK, "commit after a statement error: %s", e.msg);
    CHECK(count_id(c, 22) == 1, "the transaction's row was lost with the failed statement");
    OK("a statement error leaves the transaction usable");

    /* Deadlock victim: the transaction is gone. */
    make_xid(&x, "6");
    CHECK(drv_start(c, &x, &e) == XA_OK, "start: %s", e.msg);
    CHECK(insert(c, 23, 1, &e) == XA_OK, "insert: %s", e.msg);
    rc = run(c, "THROW 1205, 'deadlock victim', 1;", NULL, &e);
    CHECK(rc == XA_RBDEADLOCK, "THROW 1205 answered %s: %s", drv_xa_name(rc), e.msg);
    CHECK(has(&e, "SQL Server error 1205"), "deadlock message: %s", e.msg);
    xac_out("     (%s)\n", e.msg);
    rc = insert(c, 24, 1, &e);
    CHECK(rc == XA_RBDEADLOCK, "exec after the deadlock answered %s", drv_xa_name(rc));
    rc = drv_commit(c, &x, true, &e);
    CHECK(rc == XA_RBDEADLOCK, "commit after the deadlock answered %s", drv_xa_name(rc));
    CHECK(count_id(c, 23) == 0, "the deadlocked transaction's row is visible");
    CHECK(drv_start(c, &x, &e) == XA_OK, "start after the deadlock: %s", e.msg);
    CHECK(drv_rollback(c, &x, &e) == XA_OK, "rollback: %s", e.msg);
    OK("1205 deadlock victim: XA_RBDEADLOCK");

    rc = run(c, "SELECT * FROM no_such_table_xyz", NULL, &e);
    CHECK(rc == XAER_RMERR && has(&e, "SQL Server error 208"), "unknown table: %s %s",
          drv_xa_name(rc), e.msg);
    CHECK(!c->broken, "an SQL error broke the connection");
    OK("208 invalid object: XAER_RMERR, connection usable");

    drv_conf bad = conf;
    snprintf(bad.password, sizeof bad.password, "wrong-password");
    drv_conn *b = NULL;
    rc = drv_open(&bad, &b, &e);
    CHECK(rc == XAER_RMFAIL && b == NULL, "bad password answered %s", drv_xa_name(rc));
    CHECK(has(&e, "login failed for user") && has(&e, conf.user) &&
              has(&e, "check user and password") && has(&e, "18456"),
          "bad password message: %s", e.msg);
    xac_out("     (%s)\n", e.msg);
    OK("bad password: XAER_RMFAIL");

    drv_conf nohost = conf;
    nohost.port = 1; /* nothing listens there */
    rc = drv_open(&nohost, &b, &e);
    CHECK(rc == XAER_RMFAIL && b == NULL && has(&e, ":1"), "closed port answered %s: %s",
          drv_xa_name(rc), e.msg);
    xac_out("     (%s)\n", e.msg);
    OK("nothing listening: XAER_RMFAIL");
    return 0;
}

static int cmd_basic(void)
{
    xac_err e;
    drv_conn *c = NULL, *c2 = NULL;
    int rc = drv_open(&conf, &c, &e);
    CHECK(rc == XA_OK, "open: %s", e.msg);
    CHECK(drv_open(&conf, &c2, &e) == XA_OK, "second open: %s", e.msg);
    CHECK(drv_ping(c, &e) == XA_OK, "ping: %s", e.msg);
    CHECK(count_of(c, "SELECT COUNT(*) FROM xac_commit_marker WHERE 1 = 0") == 0,
          "the marker table was not created");
    OK("open, ping, marker table");

    char sql[400];
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id INT PRIMARY KEY, v NVARCHAR(100), n INT CHECK (n >= 0), big "
             "BIGINT, f FLOAT, b VARBINARY(100), z NVARCHAR(10))",
             table);
    CHECK(run(c, sql, NULL, &e) == XA_OK, "create table: %s", e.msg);
    int fails = check_transactions(c) || check_lrc(c, c2) || check_values(c) || check_errors(c);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    if (!c->broken)
        run(c, sql, NULL, &e);
    drv_close(c);
    drv_close(c2);
    if (fails)
        return 1;
    xac_out("basic: all checks passed\n");
    return 0;
}

static int cmd_recover(const char *fid_s, const char *gtrid, const char *bqual, const char *how)
{
    xac_err e;
    xac_xid x;
    CHECK(xac_xid_set(&x, (int32_t)strtol(fid_s, NULL, 10), gtrid, strlen(gtrid), bqual,
                      strlen(bqual), &e) == XAC_OK,
          "bad XID: %s", e.msg);
    bool commit = strcmp(how, "commit") == 0;
    drv_conn *c = NULL;
    CHECK(drv_open(&conf, &c, &e) == XA_OK, "open: %s", e.msg);
    drv_indoubt *v = NULL;
    size_t n = 0;
    CHECK(drv_recover(c, &v, &n, &e) == XA_OK, "recover: %s", e.msg);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || (v[i].decoded && xac_xid_equal(&v[i].xid, &x));
    free(v);
    CHECK(found, "recover (%zu branches) does not list %s/%s", n, gtrid, bqual);
    OK("recover lists the seeded branch");

    int rc = commit ? drv_commit(c, &x, false, &e) : drv_rollback(c, &x, &e);
    CHECK(rc == XA_OK, "%s by XID: %s %s", how, drv_xa_name(rc), e.msg);
    CHECK(drv_recover(c, &v, &n, &e) == XA_OK, "recover: %s", e.msg);
    found = false;
    for (size_t i = 0; i < n; i++)
        found = found || xac_xid_equal(&v[i].xid, &x);
    free(v);
    CHECK(!found, "recover still lists the branch after %s", how);
    rc = commit ? drv_commit(c, &x, false, &e) : drv_rollback(c, &x, &e);
    CHECK(rc == XAER_NOTA, "a second %s answered %s: %s", how, drv_xa_name(rc), e.msg);
    CHECK(drv_forget(c, &x, &e) == XAER_NOTA, "forget of the finished branch: %s", e.msg);
    xac_out("ok   %s by XID resolves it; again: XAER_NOTA\n", how);
    drv_close(c);
    return 0;
}

static int cmd_reconnect(const char *restart)
{
    xac_err e;
    drv_pool *p = NULL;
    CHECK(drv_pool_create(&conf, &p, &e) == XAC_OK, "pool: %s", e.msg);
    drv_conn *c = NULL;
    CHECK(drv_pool_get(p, 5000, &c, &e) == XA_OK, "pool get: %s", e.msg);
    CHECK(drv_ping(c, &e) == XA_OK, "ping: %s", e.msg);
    OK("pooled connection works");

    int st = system(restart);
    CHECK(st == 0, "'%s' exited with %d", restart, st);
    int rc = drv_exec(c, "SELECT 1", 8, NULL, 0, NULL, &e);
    CHECK(rc == XAER_RMFAIL, "the call after the restart answered %s: %s", drv_xa_name(rc), e.msg);
    CHECK(c->broken, "the connection is not marked broken");
    CHECK(has(&e, "lost") || has(&e, "no answer"), "message: %s", e.msg);
    xac_out("     (%s)\n", e.msg);
    rc = drv_ping(c, &e);
    CHECK(rc == XAER_RMFAIL, "a broken connection answered %s", drv_xa_name(rc));
    drv_pool_put(p, c);
    OK("after the restart: XAER_RMFAIL, broken");

    /* The pool backs off after a failed open: try for up to 30 s. */
    rc = XAER_RMFAIL;
    for (int i = 0; i < 300 && rc != XA_OK; i++) {
        rc = drv_pool_get(p, 1000, &c, &e);
        if (rc != XA_OK) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    CHECK(rc == XA_OK, "the pool did not reconnect: %s", e.msg);
    CHECK(drv_ping(c, &e) == XA_OK, "the new connection: %s", e.msg);
    drv_pool_put(p, c);
    drv_pool_destroy(p);
    OK("the pool reconnects");
    return 0;
}

static int cmd_timeout(const char *slow_sql)
{
    xac_err e;
    conf.io_timeout_ms = 1000;
    drv_conn *c = NULL;
    CHECK(drv_open(&conf, &c, &e) == XA_OK, "open: %s", e.msg);
    int rc = drv_exec(c, slow_sql, strlen(slow_sql), NULL, 0, NULL, &e);
    CHECK(rc == XAER_RMFAIL, "a statement slower than io_timeout_ms answered %s: %s",
          drv_xa_name(rc), e.msg);
    CHECK(c->broken, "the timed-out connection is not marked broken");
    CHECK(has(&e, "no answer") && has(&e, "1000 ms"), "timeout message: %s", e.msg);
    xac_out("     (%s)\n", e.msg);
    drv_close(c);
    CHECK(drv_open(&conf, &c, &e) == XA_OK && drv_ping(c, &e) == XA_OK,
          "a new connection after the timeout: %s", e.msg);
    drv_close(c);
    OK("query timeout: XAER_RMFAIL, broken");
    return 0;
}

#define NTHREADS 8
#define NROUNDS  25

typedef struct worker {
    int id;
    char failure[1200];
} worker;

/* Each thread provokes its own error number and must read back its own:
 * db-lib's handlers are process-wide, the driver routes them per connection
 * (and per thread during the login, which odd threads fail on purpose). */
static void *work(void *arg)
{
    worker *w = arg;
    xac_err e;
    for (int round = 0; round < NROUNDS && w->failure[0] == '\0'; round++) {
        drv_conf cf = conf;
        bool bad = (w->id % 2 == 1) && round % 5 == 0;
        if (bad)
            snprintf(cf.password, sizeof cf.password, "wrong-%d", w->id);
        drv_conn *c = NULL;
        int rc = drv_open(&cf, &c, &e);
        if (bad) {
            if (rc != XAER_RMFAIL || !has(&e, "login failed"))
                snprintf(w->failure, sizeof w->failure, "thread %d: bad login gave %s: %s", w->id,
                         drv_xa_name(rc), e.msg);
            continue;
        }
        if (rc != XA_OK) {
            snprintf(w->failure, sizeof w->failure, "thread %d: open: %s", w->id, e.msg);
            break;
        }
        char sql[100], want[64];
        snprintf(sql, sizeof sql, "THROW %d, 'thread %d round %d', 1;", 50100 + w->id, w->id,
                 round);
        snprintf(want, sizeof want, "error %d: thread %d round %d", 50100 + w->id, w->id, round);
        rc = drv_exec(c, sql, strlen(sql), NULL, 0, NULL, &e);
        if (rc != XAER_RMERR || !has(&e, want))
            snprintf(w->failure, sizeof w->failure, "thread %d: expected \"%s\", got %s: %s", w->id,
                     want, drv_xa_name(rc), e.msg);
        else if (drv_ping(c, &e) != XA_OK)
            snprintf(w->failure, sizeof w->failure, "thread %d: ping: %s", w->id, e.msg);
        drv_close(c);
    }
    return NULL;
}

static int cmd_threads(void)
{
    pthread_t t[NTHREADS];
    worker w[NTHREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].id = i;
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(w[i].failure[0] == '\0', "%s", w[i].failure);
    xac_out("ok   %d threads x %d rounds: every error reached its own connection\n", NTHREADS,
            NROUNDS);
    return 0;
}

int main(int argc, char **argv)
{
    if (load_conf() != 0)
        return 1;
    if (argc == 2 && strcmp(argv[1], "basic") == 0)
        return cmd_basic();
    if (argc == 6 && strcmp(argv[1], "recover") == 0 &&
        (strcmp(argv[5], "commit") == 0 || strcmp(argv[5], "rollback") == 0))
        return cmd_recover(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 3 && strcmp(argv[1], "reconnect") == 0)
        return cmd_reconnect(argv[2]);
    if (argc == 2 && strcmp(argv[1], "threads") == 0)
        return cmd_threads();
    if (argc == 3 && strcmp(argv[1], "timeout") == 0)
        return cmd_timeout(argv[2]);
    xac_loge("usage: prog_mssql_check basic | recover FID GTRID BQUAL commit|rollback | "
             "reconnect CMD | timeout SLOW_SQL | threads");
    return 2;
}
