/* Integration tests of the ODBC driver against the real PostgreSQL (psqlodbc)
 * and MariaDB (Connector/ODBC) that tests/fixtures/db.sh starts, settings from
 * XAC_TEST_PG_* and XAC_TEST_MYSQL_*. The same XA paths run through both
 * dialects: bound parameters and results, two-phase and one-phase commit,
 * rollback of active and prepared branches, recovery from a fresh connection
 * after the preparing one closed, error mapping and messages; and the
 * PostgreSQL specifics (deferred constraints failing at PREPARE, foreign gids,
 * a branch that saw an error, transaction control and second statements
 * refused inside a branch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu.h"
#include "drv.h"
#include "drv_check.h"

#define RES "odbctest"

typedef struct dcase {
    const char *label;
    drv_conf conf;
    bool have_env;
    const char *blob_type;   /* column type of a BLOB */
    const char *double_type; /* column type of a DOUBLE */
    const char *text_type;
    const char *missing_table_state;
} dcase;

static dcase g_pg, g_my;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? v : "";
}

static void load_conf(dcase *d, bool pg)
{
    drv_conf *c = &d->conf;
    const char *pre = pg ? "XAC_TEST_PG_" : "XAC_TEST_MYSQL_";
    char name[64];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", RES);
    snprintf(c->driver, sizeof c->driver, "odbc");
    snprintf(c->dialect, sizeof c->dialect, "%s", pg ? "postgresql" : "mysql");
    snprintf(c->odbc_driver, sizeof c->odbc_driver, "%s",
             pg ? "PostgreSQL Unicode" : "MariaDB Unicode");
    snprintf(name, sizeof name, "%sHOST", pre);
    snprintf(c->host, sizeof c->host, "%s", env(name));
    snprintf(name, sizeof name, "%sPORT", pre);
    c->port = atoi(env(name));
    snprintf(name, sizeof name, "%sUSER", pre);
    snprintf(c->user, sizeof c->user, "%s", env(name));
    snprintf(name, sizeof name, "%sPASSWORD", pre);
    snprintf(c->password, sizeof c->password, "%s", env(name));
    snprintf(name, sizeof name, "%sDB", pre);
    snprintf(c->database, sizeof c->database, "%s", env(name));
    c->connect_timeout_ms = 5000;
    c->io_timeout_ms = 30000;
    c->pool_size = 4;
    d->label = pg ? "postgresql" : "mysql";
    d->have_env = c->host[0] && c->port > 0 && c->user[0] && c->database[0];
    d->blob_type = pg ? "bytea" : "longblob";
    d->double_type = pg ? "double precision" : "double";
    d->text_type = pg ? "text" : "longtext";
    d->missing_table_state = pg ? "SQLSTATE 42P01" : "SQLSTATE 42S02";
}

#define NEED_ENV(d)                                                                                \
    do {                                                                                           \
        if (!(d)->have_env)                                                                        \
            CU_FAIL_FATAL("XAC_TEST_PG_* / XAC_TEST_MYSQL_* (HOST, PORT, USER, PASSWORD, DB) "     \
                          "are not set: start the servers with tests/fixtures/db.sh start DIR "    \
                          "and source DIR/env.sh");                                                \
    } while (0)

static drv_conn *open_conn(dcase *d)
{
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&d->conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] drv_open: %s\n", d->label, e.msg);
    CU_ASSERT_FATAL(rc == XA_OK && c != NULL);
    return c;
}

static void new_xid(xac_xid *x)
{
    dt_new_xid(x, "itodbc", RES);
}

static int insert_row(drv_conn *c, long long id, const char *name, xac_err *e)
{
    return dt_insert_row(c, "odbc_t", id, name, e);
}

static long long count_id(drv_conn *c, long long id)
{
    return dt_count_id(c, "odbc_t", id);
}

/* Rolls back branches an earlier, interrupted run of this program left
 * prepared: they would hold locks on the tables. */
static void drop_leftovers(drv_conn *c)
{
    drv_indoubt *list = NULL;
    size_t n = 0;
    xac_err e;
    if (drv_recover(c, &list, &n, &e) != XA_OK)
        return;
    for (size_t i = 0; i < n; i++)
        if (list[i].decoded && xac_xid_is_ours(&list[i].xid, "itodbc"))
            drv_rollback(c, &list[i].xid, &e);
    free(list);
}

static void reset_table(dcase *d)
{
    drv_conn *c = open_conn(d);
    drop_leftovers(c);
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_t");
    dt_sql_ok(c, "CREATE TABLE odbc_t (id BIGINT PRIMARY KEY, name VARCHAR(200))");
    drv_close(c);
}

/* Whether recover lists xid; *decoded gets the entry's flag. */
static bool in_doubt(drv_conn *c, const xac_xid *xid)
{
    drv_indoubt *list = NULL;
    size_t n = 0;
    xac_err e;
    int rc = drv_recover(c, &list, &n, &e);
    if (rc != XA_OK)
        fprintf(stderr, "recover: %s\n", e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (list[i].decoded && xac_xid_equal(&list[i].xid, xid))
            found = true;
    free(list);
    return found;
}

/* ------------------------------------------------------------------ tests */

static void t_exec_types(dcase *d)
{
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_err e;
    char sql[512];
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_types");
    snprintf(sql, sizeof sql,
             "CREATE TABLE odbc_types (id BIGINT PRIMARY KEY, i BIGINT, d %s, s %s, b %s, "
             "n TEXT)",
             d->double_type, d->text_type, d->blob_type);
    dt_sql_ok(c, sql);

    static const char blob[] = {'a', '\0', 'b', (char)0xff, '\n', '\''};
    static const char text[] = "h\xc3\xa9llo \xe2\x82\xac; 'quoted'";
    xac_value p[6];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    p[1].type = XAC_T_INT;
    p[1].i = -9007199254740993LL;
    p[2].type = XAC_T_DOUBLE;
    p[2].d = 2.5;
    p[3].type = XAC_T_TEXT;
    p[3].s = text;
    p[3].len = strlen(text);
    p[4].type = XAC_T_BLOB;
    p[4].s = blob;
    p[4].len = sizeof blob;
    p[5].type = XAC_T_NULL;
    static const char ins[] = "INSERT INTO odbc_types VALUES (?, ?, ?, ?, ?, ?)";
    xac_rows r;
    xac_rows_init(&r);
    int rc = drv_exec(c, ins, sizeof ins - 1, p, 6, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] insert: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_FALSE(r.has_rows);
    CU_ASSERT_EQUAL(r.affected, 1);
    xac_rows_free(&r);

    /* A long text, to take SQLGetData round more than once. */
    size_t biglen = 300000;
    char *big = malloc(biglen);
    CU_ASSERT_FATAL(big != NULL);
    for (size_t i = 0; i < biglen; i++)
        big[i] = (char)('a' + i % 26);
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 2;
    p[1].type = XAC_T_TEXT;
    p[1].s = big;
    p[1].len = biglen;
    static const char ins2[] = "INSERT INTO odbc_types (id, s) VALUES (?, ?)";
    rc = drv_exec(c, ins2, sizeof ins2 - 1, p, 2, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] insert big: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    xac_rows_free(&r);

    static const char sel[] = "SELECT id, i, d, s, b, n FROM odbc_types WHERE id >= ? ORDER BY id";
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    rc = drv_exec(c, sel, sizeof sel - 1, p, 1, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] select: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_TRUE(r.has_rows);
    CU_ASSERT_EQUAL_FATAL(r.ncols, 6);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 2);
    CU_ASSERT_STRING_EQUAL(r.cols[0], "id");
    CU_ASSERT_STRING_EQUAL(r.cols[5], "n");
    size_t len = 0;
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 0, NULL), "1");
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 1, NULL), "-9007199254740993");
    const char *dv = xac_rows_cell(&r, 0, 2, NULL);
    CU_ASSERT_FATAL(dv != NULL);
    CU_ASSERT_DOUBLE_EQUAL(strtod(dv, NULL), 2.5, 1e-12);
    const char *sv = xac_rows_cell(&r, 0, 3, &len);
    CU_ASSERT_FATAL(sv != NULL);
    CU_ASSERT_EQUAL(len, strlen(text));
    CU_ASSERT_STRING_EQUAL(sv, text);
    const char *bv = xac_rows_cell(&r, 0, 4, &len);
    CU_ASSERT_FATAL(bv != NULL);
    CU_ASSERT_EQUAL(len, sizeof blob);
    CU_ASSERT_TRUE(len == sizeof blob && memcmp(bv, blob, sizeof blob) == 0);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 0, 5, NULL));
    sv = xac_rows_cell(&r, 1, 3, &len);
    CU_ASSERT_FATAL(sv != NULL);
    CU_ASSERT_EQUAL(len, biglen);
    CU_ASSERT_TRUE(len == biglen && memcmp(sv, big, biglen) == 0);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 1, 1, NULL));
    xac_rows_free(&r);
    free(big);

    /* No rows, and an UPDATE that matches nothing. */
    static const char none[] = "SELECT id FROM odbc_types WHERE id < 0";
    rc = drv_exec(c, none, sizeof none - 1, NULL, 0, &r, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_TRUE(r.has_rows);
    CU_ASSERT_EQUAL(r.ncols, 1);
    CU_ASSERT_EQUAL(r.nrows, 0);
    xac_rows_free(&r);
    static const char upd[] = "UPDATE odbc_types SET i = 5 WHERE id < 0";
    rc = drv_exec(c, upd, sizeof upd - 1, NULL, 0, &r, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_FALSE(r.has_rows);
    CU_ASSERT_EQUAL(r.affected, 0);
    xac_rows_free(&r);
    static const char upd2[] = "UPDATE odbc_types SET i = ? WHERE id IN (1, 2)";
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 7;
    rc = drv_exec(c, upd2, sizeof upd2 - 1, p, 1, &r, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(r.affected, 2);
    xac_rows_free(&r);
    dt_sql_ok(c, "DROP TABLE odbc_types");
    drv_close(c);
}

static void t_sql_error(dcase *d)
{
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_err e;
    int rc = dt_sql_rc(c, "SELECT * FROM odbc_no_such_table", &e);
    CU_ASSERT_EQUAL(rc, XAER_RMERR);
    CU_ASSERT_EQUAL(e.code, XAC_ESQL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, d->missing_table_state));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "native error"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "odbc_no_such_table"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "statement \"SELECT * FROM odbc_no_such_table\""));
    CU_ASSERT_STRING_EQUAL(e.resource, RES);
    CU_ASSERT_FALSE(c->broken);
    /* The connection is still good. */
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 41 + 1"), 42);
    CU_ASSERT_EQUAL(drv_ping(c, &e), XA_OK);
    drv_close(c);
}

static void t_bad_login(dcase *d)
{
    NEED_ENV(d);
    drv_conf conf = d->conf;
    snprintf(conf.password, sizeof conf.password, "wrong;pw}");
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, d->conf.odbc_driver));
    CU_ASSERT_PTR_NULL(strstr(e.msg, "wrong;pw"));
}

static void t_commit_2pc(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 1, "two-phase", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    int rc = drv_prepare(c, &x, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] prepare: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_TRUE(in_doubt(other, &x));
    CU_ASSERT_EQUAL(count_id(other, 1), 0);
    rc = drv_commit(c, &x, false, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] commit: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 1), 1);
    CU_ASSERT_FALSE(in_doubt(other, &x));
    /* The connection is ready for its next branch. */
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 2, "next", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 2), 1);
    drv_close(c);
    drv_close(other);
}

static void t_commit_one_phase(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 10, "one-phase", &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 10), 0);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    int rc = drv_commit(c, &x, true, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] commit one phase: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 10), 1);
    CU_ASSERT_FALSE(in_doubt(other, &x));
    drv_close(c);
    drv_close(other);
}

static void t_rollback_active(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 20, "active", &e), XA_OK);
    int rc = drv_rollback(c, &x, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] rollback active: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(c, 20), 0);
    /* Ended but not prepared. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 21, "ended", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(c, 21), 0);
    /* And the connection goes on. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 22, "after", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(c, 22), 1);
    drv_close(c);
}

static void t_rollback_prepared(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 30, "prepared", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_prepare(c, &x, &e), XA_OK);
    int rc = drv_rollback(c, &x, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] rollback prepared: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 30), 0);
    CU_ASSERT_FALSE(in_doubt(other, &x));
    /* A second rollback finds nothing. */
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XAER_NOTA);
    CU_ASSERT_FALSE(c->broken);
    drv_close(c);
    drv_close(other);
}

static void t_recover_after_close(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    /* Two branches prepared on two sessions (MariaDB keeps a session in
     * its prepared branch until it ends), both sessions then gone. */
    drv_conn *c = open_conn(d);
    drv_conn *c2 = open_conn(d);
    xac_xid x, y;
    xac_err e;
    new_xid(&x);
    new_xid(&y);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 40, "recovered", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_start(c2, &y, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c2, 41, "recovered too", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c2, &y, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_prepare(c2, &y, &e), XA_OK);
    drv_close(c);
    drv_close(c2);

    drv_conn *r = open_conn(d);
    drv_indoubt *list = NULL;
    size_t n = 0;
    int rc = drv_recover(r, &list, &n, &e);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].decoded && xac_xid_equal(&list[i].xid, &x)) {
            seen++;
            if (strcmp(d->label, "postgresql") == 0) {
                char gid[XAC_PG_GID_MAX + 1];
                CU_ASSERT_EQUAL(xac_xid_to_pg_gid(&x, gid, &e), XAC_OK);
                CU_ASSERT_STRING_EQUAL(list[i].raw, gid);
                CU_ASSERT_TRUE(list[i].prepared_at > 1700000000);
            }
        }
        if (list[i].decoded && xac_xid_equal(&list[i].xid, &y))
            seen++;
    }
    free(list);
    CU_ASSERT_EQUAL(seen, 2);
    rc = drv_commit(r, &x, false, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] commit from a fresh connection: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(r, &y, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(r, 40), 1);
    CU_ASSERT_EQUAL(count_id(r, 41), 0);
    CU_ASSERT_FALSE(in_doubt(r, &x));
    CU_ASSERT_FALSE(in_doubt(r, &y));
    /* Committing again: the branch is unknown now. */
    CU_ASSERT_EQUAL(drv_commit(r, &x, false, &e), XAER_NOTA);
    drv_close(r);
}

static void t_nota(dcase *d)
{
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    xac_err_clear(&e);
    int rc = drv_commit(c, &x, false, &e);
    CU_ASSERT_EQUAL(rc, XAER_NOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE"));
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XAER_NOTA);
    CU_ASSERT_FALSE(c->broken);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 7"), 7);
    drv_close(c);
}

/* A password with ';', '}' and '=' must reach the server intact: the driver
 * braces such values in the connection string. */
static void t_braced_password(dcase *d)
{
    NEED_ENV(d);
    static const char pw[] = "p;w}d={x";
    bool pg = strcmp(d->label, "postgresql") == 0;
    drv_conn *admin = open_conn(d);
    char sql[256];
    if (pg) {
        dt_sql_ok(admin, "DROP ROLE IF EXISTS xac_odbc_brace");
        snprintf(sql, sizeof sql, "CREATE ROLE xac_odbc_brace LOGIN PASSWORD '%s'", pw);
    } else {
        dt_sql_ok(admin, "DROP USER IF EXISTS 'xac_odbc_brace'@'%'");
        snprintf(sql, sizeof sql, "CREATE USER 'xac_odbc_brace'@'%%' IDENTIFIED BY '%s'", pw);
    }
    dt_sql_ok(admin, sql);
    if (!pg) {
        snprintf(sql, sizeof sql, "GRANT SELECT ON %s.* TO 'xac_odbc_brace'@'%%'",
                 d->conf.database);
        dt_sql_ok(admin, sql);
    }
    drv_conf conf = d->conf;
    snprintf(conf.user, sizeof conf.user, "xac_odbc_brace");
    snprintf(conf.password, sizeof conf.password, "%s", pw);
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] login with a braced password: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    if (c != NULL) {
        CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 5"), 5);
        drv_close(c);
    }
    dt_sql_ok(admin, pg ? "DROP ROLE xac_odbc_brace" : "DROP USER 'xac_odbc_brace'@'%'");
    drv_close(admin);
}

/* The Unix socket instead of TCP (PostgreSQL: its directory). */
static void t_socket(dcase *d)
{
    NEED_ENV(d);
    bool pg = strcmp(d->label, "postgresql") == 0;
    const char *sock = env(pg ? "XAC_TEST_PG_SOCKETDIR" : "XAC_TEST_MYSQL_SOCKET");
    if (sock[0] == '\0')
        return; /* servers reached over TCP only (XAC_TEST_EXTERNAL) */
    drv_conf conf = d->conf;
    snprintf(conf.socket, sizeof conf.socket, "%s", sock);
    conf.port = pg ? d->conf.port : 0; /* PostgreSQL names its socket by the port */
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] socket: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    /* Connected over the socket, not TCP: the server sees no client address. */
    long long tcp =
        dt_sql_int(c, pg ? "SELECT CASE WHEN inet_client_addr() IS NULL THEN 0 ELSE 1 END"
                         : "SELECT COUNT(*) FROM information_schema.processlist WHERE "
                           "id = CONNECTION_ID() AND host LIKE '127.0.0.1%'");
    CU_ASSERT_EQUAL(tcp, 0);
    drv_close(c);
}

/* conf->dsn pairs reach the driver (here without a final ';'). */
static void t_dsn_extras(dcase *d)
{
    NEED_ENV(d);
    bool pg = strcmp(d->label, "postgresql") == 0;
    drv_conf conf = d->conf;
    snprintf(conf.dsn, sizeof conf.dsn, "%s",
             pg ? "ConnSettings={SET application_name='xacodbc'}" : "INITSTMT={SET @xac_t=77}");
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] dsn extras: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, pg ? "SELECT CASE WHEN current_setting('application_name') = "
                                       "'xacodbc' THEN 77 ELSE 0 END"
                                     : "SELECT @xac_t"),
                    77);
    drv_close(c);
}

/* A connection the server drops gives XAER_RMFAIL and is marked broken. */
static void t_conn_lost(dcase *d)
{
    NEED_ENV(d);
    bool pg = strcmp(d->label, "postgresql") == 0;
    drv_conn *victim = open_conn(d);
    drv_conn *killer = open_conn(d);
    long long id = dt_sql_int(victim, pg ? "SELECT pg_backend_pid()" : "SELECT CONNECTION_ID()");
    CU_ASSERT_FATAL(id > 0);
    char sql[128];
    snprintf(sql, sizeof sql, pg ? "SELECT pg_terminate_backend(%lld)" : "KILL %lld", id);
    dt_sql_ok(killer, sql);
    usleep(200 * 1000); /* let the server close the socket; the check below does not depend on it */
    xac_err e;
    int rc = XA_OK;
    /* The first statement may still be answered from a half-closed socket;
     * one of a few must notice. */
    for (int i = 0; i < 3 && rc == XA_OK; i++)
        rc = dt_sql_rc(victim, "SELECT 1", &e);
    if (rc != XAER_RMFAIL)
        fprintf(stderr, "[%s] after the kill: rc %d: %s\n", d->label, rc, e.msg);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_EQUAL(e.code, XAC_ERMFAIL);
    CU_ASSERT_TRUE(victim->broken);
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(victim, &x, &e), XAER_RMFAIL);
    drv_close(victim);
    drv_close(killer);
}

/* ------------------------------------------------------- PostgreSQL only */

static void t_pg_deferred_fk(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_child");
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_parent");
    dt_sql_ok(c, "CREATE TABLE odbc_parent (id BIGINT PRIMARY KEY)");
    dt_sql_ok(c, "CREATE TABLE odbc_child (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES "
                 "odbc_parent(id) DEFERRABLE INITIALLY DEFERRED)");
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_child VALUES (1, 99)", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    int rc = drv_prepare(c, &x, &e);
    CU_ASSERT_EQUAL(rc, XA_RBINTEGRITY);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23503"));
    CU_ASSERT_FALSE(c->broken);
    CU_ASSERT_FALSE(in_doubt(c, &x));
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 0);
    /* The same failure in one phase. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_child VALUES (2, 99)", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_RBINTEGRITY);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 0);
    /* And a good branch afterwards. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_parent VALUES (99)", &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_child VALUES (3, 99)", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 1);
    dt_sql_ok(c, "DROP TABLE odbc_child");
    dt_sql_ok(c, "DROP TABLE odbc_parent");
    drv_close(c);
}

static void t_pg_error_dooms_branch(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 50, "before the error", &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 50, "duplicate", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23505"));
    /* PostgreSQL refuses the rest of the transaction. */
    CU_ASSERT_EQUAL(insert_row(c, 51, "after the error", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 25P02"));
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_RBROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "23505"));
    CU_ASSERT_FALSE(in_doubt(c, &x));
    CU_ASSERT_EQUAL(count_id(c, 50), 0);
    /* One phase after an error also refuses to pretend. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 52, "x", &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "SELECT 1/0", &e), XAER_RMERR);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_RBROLLBACK);
    CU_ASSERT_EQUAL(count_id(c, 52), 0);
    /* A branch with no statement is read-only. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_RDONLY);
    /* Two branches at once on one connection are refused. */
    xac_xid y;
    new_xid(&x);
    new_xid(&y);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_start(c, &y, &e), XAER_PROTO);
    CU_ASSERT_EQUAL(drv_prepare(c, &y, &e), XAER_NOTA);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    drv_close(c);
}

/* io_timeout_ms bounds a statement: a sleep far past it is cut short with
 * an error, and the branch it ran in cannot be prepared. */
static void t_pg_statement_timeout(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    drv_conf conf = d->conf;
    conf.io_timeout_ms = 1000;
    drv_conn *c = NULL;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(drv_open(&conf, &c, &e), XA_OK);
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    int rc = dt_sql_rc(c, "SELECT pg_sleep(30)", &e);
    CU_ASSERT_NOT_EQUAL(rc, XA_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE"));
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    rc = drv_prepare(c, &x, &e);
    CU_ASSERT_TRUE(rc == XA_RBROLLBACK || rc == XAER_RMFAIL);
    drv_close(c);
}

static void t_pg_foreign_gid(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    char gid[64], sql[256];
    snprintf(gid, sizeof gid, "foo-%ld", (long)getpid());
    /* Another program's prepared transaction, made by hand outside any
     * branch (inside one, PREPARE TRANSACTION is refused). */
    drv_conn *f = open_conn(d);
    xac_err e;
    snprintf(sql, sizeof sql,
             "BEGIN; INSERT INTO odbc_t (id, name) VALUES (60, 'foreign'); "
             "PREPARE TRANSACTION '%s'",
             gid);
    CU_ASSERT_EQUAL(dt_sql_rc(f, sql, &e), XA_OK);
    drv_close(f);

    drv_conn *c = open_conn(d);
    drv_indoubt *list = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(drv_recover(c, &list, &n, &e), XA_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].raw, gid) == 0) {
            found++;
            CU_ASSERT_FALSE(list[i].decoded);
        }
    free(list);
    CU_ASSERT_EQUAL(found, 1);
    snprintf(sql, sizeof sql, "ROLLBACK PREPARED '%s'", gid);
    dt_sql_ok(c, sql);
    CU_ASSERT_EQUAL(count_id(c, 60), 0);
    drv_close(c);
}

/* Runs sql with the given parameters inside the branch; the XA code. */
static int exec_params(drv_conn *c, const char *sql, const xac_value *p, size_t np, xac_err *e)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(e);
    int rc = drv_exec(c, sql, strlen(sql), p, np, &r, e);
    xac_rows_free(&r);
    return rc;
}

/* sql is refused inside a branch with msg in the message. */
static void expect_refused(drv_conn *c, const char *sql, const char *msg)
{
    xac_err e;
    int rc = dt_sql_rc(c, sql, &e);
    if (rc != XAER_RMERR || strstr(e.msg, msg) == NULL || strstr(e.msg, RES) == NULL)
        fprintf(stderr, "expected refusal of [%s] with \"%s\", got %d: %s\n", sql, msg, rc, e.msg);
    CU_ASSERT_EQUAL(rc, XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, msg));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, RES));
}

/* Transaction control and second statements are refused inside a branch
 * before anything reaches the server, so the branch's work stays
 * uncommitted and rolls back; ';' inside quotes and comments is fine. */
static void t_pg_tx_control(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 70, "before COMMIT", &e), XA_OK);
    static const char *const tx[][2] = {
        {"COMMIT", "transaction control (COMMIT)"},
        {"  /* c */ -- x\n commit work", "transaction control (COMMIT)"},
        {"END", "transaction control (END)"},
        {"ABORT", "transaction control (ABORT)"},
        {"ROLLBACK", "transaction control (ROLLBACK)"},
        {"ROLLBACK PREPARED 'x'", "transaction control (ROLLBACK)"},
        {"COMMIT PREPARED 'x'", "transaction control (COMMIT)"},
        {"BEGIN", "transaction control (BEGIN)"},
        {"START TRANSACTION", "transaction control (START)"},
        {"PREPARE TRANSACTION 'x'", "transaction control (PREPARE TRANSACTION)"},
        {"UPDATE odbc_t SET name = 'u' WHERE id = 70; COMMIT", "after ';' at byte 43"},
        {"SELECT 1;;", "one statement per EXEC"},
        {"SELECT '\\'; COMMIT; --'", "one statement per EXEC"},
        {"SELECT $a$ x $a$; COMMIT", "one statement per EXEC"},
        {"SELECT a$$; COMMIT; $$", "one statement per EXEC"},
        {"SELECT 1 /* /* */ ; COMMIT; /* */ */", "block comments did not nest"},
        {"SELECT '\\''; COMMIT; SELECT '''", "if a backslash escaped a quote"},
        {"SELECT 'C:\\' /* /* */ ; COMMIT; /* */ */", "one statement per EXEC"},
        {"SELECT 'C:\\', ';'", "if a backslash escaped a quote"},
        {"SELECT 'open", "is not closed"},
        {"SELECT $$ open", "is not closed"},
        {"SELECT 1 /* /* */", "is not closed"},
    };
    for (size_t i = 0; i < sizeof tx / sizeof tx[0]; i++)
        expect_refused(c, tx[i][0], tx[i][1]);
    /* Nothing was committed: another connection does not see the row. */
    CU_ASSERT_EQUAL(count_id(other, 70), 0);

    /* ';' inside quotes and comments, and a trailing ';', are allowed. */
    static const char *const ok[] = {
        "SELECT 'a;b', 'it''s; COMMIT'",
        "SELECT 'C:\\'",
        "SELECT E'C:\\\\', ';'",
        "SELECT E'x\\'; COMMIT; y'",
        "SELECT $$; COMMIT;$$, $t$ $$; $t$",
        "SELECT 1 -- ; COMMIT\n",
        "SELECT 1 /* ; COMMIT */",
        "SELECT \"?column?\" FROM (SELECT 1) AS \"a;b\"",
        "SELECT 1; -- done\n /* end */ ",
        "SAVEPOINT s",
        "UPDATE odbc_t SET name = 'after savepoint' WHERE id = 70",
        "ROLLBACK TO SAVEPOINT s",
        "RELEASE SAVEPOINT s",
        "SAVEPOINT s2",
        "ROLLBACK TRANSACTION TO s2",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        dt_sql_ok(c, ok[i]);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_t WHERE id = 70 AND name = 'before "
                                  "COMMIT'"),
                    1);

    /* TEXT with a NUL byte is refused; the same bytes as BLOB are fine. */
    xac_value p[2];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_TEXT;
    p[0].s = "a\0b";
    p[0].len = 3;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?", p, 1, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "send it as BLOB"));
    p[0].type = XAC_T_BLOB;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT length(?::bytea)", p, 1, &e), XA_OK);

    /* Parameter counts must match the placeholders. */
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    p[1].type = XAC_T_INT;
    p[1].i = 2;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?::bigint", p, 2, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1 '?' placeholder(s) but 2 parameter(s)"));
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?::bigint + ?::bigint", p, 1, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2 '?' placeholder(s) but 1 parameter(s)"));

    /* A COMMIT inside a DO block passes the check; the server refuses it
     * inside a transaction block. */
    CU_ASSERT_EQUAL(dt_sql_rc(c, "DO $$BEGIN COMMIT; END$$", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 2D000"));

    /* The refusals doomed the branch; rolling it back removes the row. */
    CU_ASSERT_EQUAL(count_id(other, 70), 0);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_RBROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "transaction control (COMMIT)"));
    CU_ASSERT_FALSE(in_doubt(c, &x));
    CU_ASSERT_EQUAL(count_id(c, 70), 0);
    CU_ASSERT_EQUAL(count_id(other, 70), 0);

    /* An explicit rollback after a refused COMMIT also leaves nothing. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 71, "x", &e), XA_OK);
    expect_refused(c, "COMMIT", "transaction control (COMMIT)");
    CU_ASSERT_EQUAL(count_id(other, 71), 0);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 71), 0);

    /* Outside a branch a statement is its own transaction: not checked. */
    dt_sql_ok(c, "SELECT 1; SELECT 2");
    drv_close(other);
    drv_close(c);
}

/* The MariaDB dialect refuses a parameter count mismatch too. */
static void t_my_param_count(void)
{
    dcase *d = &g_my;
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_value p[2];
    xac_err e;
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    p[1].type = XAC_T_INT;
    p[1].i = 2;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?", p, 2, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1 '?' placeholder(s) but 2 parameter(s)"));
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ? + ?", p, 1, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2 '?' placeholder(s) but 1 parameter(s)"));
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ? + ?", p, 2, &e), XA_OK);
    drv_close(c);
}

/* Connector/ODBC must never be handed a second statement inside a branch:
 * it was seen to leave its connection locked after one failed. */
static void t_my_one_statement(void)
{
    dcase *d = &g_my;
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    static const char *const refused[] = {"SELECT 1; SELECT 2",     "SELECT 'a\\'; SELECT 2",
                                          "SELECT 'a\\'; SELECT '", "SELECT 'open",
                                          "SELECT 1; -- more",      NULL};
    for (int i = 0; refused[i] != NULL; i++) {
        xac_rows r;
        xac_rows_init(&r);
        CU_ASSERT_EQUAL(drv_exec(c, refused[i], strlen(refused[i]), NULL, 0, &r, &e), XAER_RMERR);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "one statement per EXEC"));
        xac_rows_free(&r);
    }
    static const char *const allowed[] = {"SELECT 'a;b'", "SELECT 1;",
                                          "SELECT `x;y` FROM (SELECT 1 AS `x;y`) t ;  ", NULL};
    for (int i = 0; allowed[i] != NULL; i++) {
        xac_rows r;
        xac_rows_init(&r);
        CU_ASSERT_EQUAL(drv_exec(c, allowed[i], strlen(allowed[i]), NULL, 0, &r, &e), XA_OK);
        xac_rows_free(&r);
    }
    /* The connection still works after the refusals. */
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    drv_close(c);
}

/* -------------------------------------------------------------- register */

#define BOTH(fn)                                                                                   \
    static void pg_##fn(void)                                                                      \
    {                                                                                              \
        fn(&g_pg);                                                                                 \
    }                                                                                              \
    static void my_##fn(void)                                                                      \
    {                                                                                              \
        fn(&g_my);                                                                                 \
    }

BOTH(t_exec_types)
BOTH(t_sql_error)
BOTH(t_bad_login)
BOTH(t_commit_2pc)
BOTH(t_commit_one_phase)
BOTH(t_rollback_active)
BOTH(t_rollback_prepared)
BOTH(t_recover_after_close)
BOTH(t_nota)
BOTH(t_braced_password)
BOTH(t_conn_lost)
BOTH(t_socket)
BOTH(t_dsn_extras)

int cu_register(void)
{
    load_conf(&g_pg, true);
    load_conf(&g_my, false);
    static const cu_test pg[] = {
        {"exec with rows, NULLs and every parameter type", pg_t_exec_types},
        {"SQL error carries SQLSTATE", pg_t_sql_error},
        {"failed login", pg_t_bad_login},
        {"two-phase commit", pg_t_commit_2pc},
        {"one-phase commit", pg_t_commit_one_phase},
        {"rollback of an active branch", pg_t_rollback_active},
        {"rollback of a prepared branch", pg_t_rollback_prepared},
        {"recover after close, commit from a fresh connection", pg_t_recover_after_close},
        {"XAER_NOTA for unknown XIDs", pg_t_nota},
        {"password that needs braces", pg_t_braced_password},
        {"lost connection is XAER_RMFAIL", pg_t_conn_lost},
        {"Unix socket", pg_t_socket},
        {"extra connection-string pairs", pg_t_dsn_extras},
        {"deferred foreign key fails at prepare", t_pg_deferred_fk},
        {"an error dooms the branch", t_pg_error_dooms_branch},
        {"foreign gid is listed undecoded", t_pg_foreign_gid},
        {"statement timeout", t_pg_statement_timeout},
        {"transaction control and second statements are refused in a branch", t_pg_tx_control},
        {NULL, NULL},
    };
    static const cu_test my[] = {
        {"exec with rows, NULLs and every parameter type", my_t_exec_types},
        {"SQL error carries SQLSTATE", my_t_sql_error},
        {"failed login", my_t_bad_login},
        {"two-phase commit", my_t_commit_2pc},
        {"one-phase commit", my_t_commit_one_phase},
        {"rollback of an active branch", my_t_rollback_active},
        {"rollback of a prepared branch", my_t_rollback_prepared},
        {"recover after close, commit from a fresh connection", my_t_recover_after_close},
        {"XAER_NOTA for unknown XIDs", my_t_nota},
        {"password that needs braces", my_t_braced_password},
        {"lost connection is XAER_RMFAIL", my_t_conn_lost},
        {"Unix socket", my_t_socket},
        {"extra connection-string pairs", my_t_dsn_extras},
        {"parameter count must match the placeholders", t_my_param_count},
        {"one statement per EXEC inside a branch", t_my_one_statement},
        {NULL, NULL},
    };
    int rc = cu_add_suite("odbc.postgresql", pg);
    if (rc == CUE_SUCCESS)
        rc = cu_add_suite("odbc.mysql", my);
    return rc;
}
