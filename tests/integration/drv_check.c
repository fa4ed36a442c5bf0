/* Helpers the driver and recovery test programs share (drv_check.h). They
 * assert with CUnit and print what failed, so a failing test says why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "drv_check.h"

static uint64_t g_seq;

int dt_sql_rc(drv_conn *c, const char *sql, xac_err *e)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(e);
    int rc = drv_exec(c, sql, strlen(sql), NULL, 0, &r, e);
    xac_rows_free(&r);
    return rc;
}

void dt_sql_ok(drv_conn *c, const char *sql)
{
    xac_err e;
    int rc = dt_sql_rc(c, sql, &e);
    if (rc != XA_OK)
        fprintf(stderr, "exec %s: %s\n", sql, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
}

static void *bg_main(void *p)
{
    dt_bg *bg = p;
    xac_err e;
    bg->rc = dt_sql_rc(bg->c, bg->sql, &e);
    return NULL;
}

void dt_bg_start(dt_bg *bg, drv_conn *c, const char *sql)
{
    bg->c = c;
    bg->sql = sql;
    bg->rc = 99;
    CU_ASSERT_FATAL(pthread_create(&bg->th, NULL, bg_main, bg) == 0);
}

int dt_bg_join(dt_bg *bg)
{
    pthread_join(bg->th, NULL);
    return bg->rc;
}

bool dt_wait_int(drv_conn *c, const char *sql, long long want)
{
    for (int i = 0; i < 1500; i++) {
        if (dt_sql_int(c, sql) == want)
            return true;
        usleep(10000);
    }
    return false;
}

bool dt_wait_lock_wait(const drv_conf *conf)
{
    for (int i = 0; i < 100; i++) {
        drv_conn *q = dt_conn(conf);
        long long w = dt_sql_int(q, "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE "
                                    "trx_state = 'LOCK WAIT'");
        drv_close(q);
        if (w > 0)
            return true;
        usleep(150000); /* InnoDB refreshes innodb_trx only after 100 ms unread */
    }
    return false;
}

long long dt_sql_int(drv_conn *c, const char *sql)
{
    xac_err e;
    xac_rows r;
    xac_rows_init(&r);
    long long v = -1;
    if (drv_exec(c, sql, strlen(sql), NULL, 0, &r, &e) == XA_OK && r.has_rows && r.nrows == 1) {
        const char *s = xac_rows_cell(&r, 0, 0, NULL);
        if (s != NULL)
            v = atoll(s);
    } else {
        fprintf(stderr, "query %s failed: %s\n", sql, e.msg);
    }
    xac_rows_free(&r);
    return v;
}

void dt_new_xid(xac_xid *x, const char *node, const char *resource)
{
    char g[XAC_GTRID_MAX + 1];
    xac_err e;
    CU_ASSERT_FATAL(xac_gtrid_make(g, node, xac_now_wall_us(), ++g_seq, &e) == XAC_OK);
    CU_ASSERT_FATAL(xac_xid_make(x, g, resource, &e) == XAC_OK);
}

int dt_insert_row(drv_conn *c, const char *table, long long id, const char *name, xac_err *e)
{
    char sql[128];
    int n = snprintf(sql, sizeof sql, "INSERT INTO %s (id, name) VALUES (?, ?)", table);
    xac_value p[2];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = id;
    p[1].type = XAC_T_TEXT;
    p[1].s = name;
    p[1].len = strlen(name);
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(e);
    int rc = drv_exec(c, sql, (size_t)n, p, 2, &r, e);
    if (rc == XA_OK)
        CU_ASSERT_EQUAL(r.affected, 1);
    xac_rows_free(&r);
    return rc;
}

long long dt_count_id(drv_conn *c, const char *table, long long id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s WHERE id = %lld", table, id);
    return dt_sql_int(c, sql);
}

void dt_must(int rc, const xac_err *e, const char *what)
{
    if (rc != XA_OK)
        fprintf(stderr, "\n%s: %s (%d): %s\n", what, drv_xa_name(rc), rc, e->msg);
    CU_ASSERT_FATAL(rc == XA_OK);
}

static const char *env(const char *k)
{
    const char *v = getenv(k);
    return v != NULL ? v : "";
}

static void conf_common(drv_conf *conf, const char *name)
{
    memset(conf, 0, sizeof *conf);
    conf->connect_timeout_ms = 3000;
    conf->io_timeout_ms = 10000;
    conf->pool_size = 2;
    snprintf(conf->name, sizeof conf->name, "%s", name);
}

void dt_conf_mysql(drv_conf *conf, const char *name, const char *db_env)
{
    conf_common(conf, name);
    snprintf(conf->driver, sizeof conf->driver, "mysql");
    snprintf(conf->host, sizeof conf->host, "%s", env("XAC_TEST_MYSQL_HOST"));
    conf->port = atoi(env("XAC_TEST_MYSQL_PORT"));
    snprintf(conf->user, sizeof conf->user, "%s", env("XAC_TEST_MYSQL_USER"));
    snprintf(conf->password, sizeof conf->password, "%s", env("XAC_TEST_MYSQL_PASSWORD"));
    snprintf(conf->database, sizeof conf->database, "%s", env(db_env));
}

void dt_conf_pg(drv_conf *conf, const char *name)
{
    conf_common(conf, name);
    snprintf(conf->driver, sizeof conf->driver, "odbc");
    snprintf(conf->dialect, sizeof conf->dialect, "postgresql");
    snprintf(conf->odbc_driver, sizeof conf->odbc_driver, "PostgreSQL Unicode");
    snprintf(conf->host, sizeof conf->host, "%s", env("XAC_TEST_PG_HOST"));
    conf->port = atoi(env("XAC_TEST_PG_PORT"));
    snprintf(conf->user, sizeof conf->user, "%s", env("XAC_TEST_PG_USER"));
    snprintf(conf->password, sizeof conf->password, "%s", env("XAC_TEST_PG_PASSWORD"));
    snprintf(conf->database, sizeof conf->database, "%s", env("XAC_TEST_PG_DB"));
}

drv_conn *dt_conn(const drv_conf *conf)
{
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    dt_must(drv_open(conf, &c, &e), &e, conf->name);
    return c;
}

void dt_exec_ok(const drv_conf *conf, const char *q)
{
    drv_conn *c = dt_conn(conf);
    xac_rows rows;
    xac_rows_init(&rows);
    xac_err e;
    xac_err_clear(&e);
    dt_must(drv_exec(c, q, strlen(q), NULL, 0, &rows, &e), &e, q);
    xac_rows_free(&rows);
    drv_close(c);
}

bool dt_has_row(const drv_conf *conf, const char *table, int id)
{
    char q[128];
    snprintf(q, sizeof q, "SELECT v FROM %s WHERE id = %d", table, id);
    drv_conn *c = dt_conn(conf);
    xac_rows rows;
    xac_rows_init(&rows);
    xac_err e;
    xac_err_clear(&e);
    dt_must(drv_exec(c, q, strlen(q), NULL, 0, &rows, &e), &e, q);
    bool found = rows.nrows == 1;
    xac_rows_free(&rows);
    drv_close(c);
    return found;
}

void dt_seed(const drv_conf *conf, const char *table, const xac_xid *x, int id)
{
    drv_conn *c = dt_conn(conf);
    xac_err e;
    xac_err_clear(&e);
    char q[128];
    snprintf(q, sizeof q, "INSERT INTO %s (id, v) VALUES (%d, %d)", table, id, id * 10);
    xac_rows rows;
    xac_rows_init(&rows);
    dt_must(drv_start(c, x, &e), &e, "seed: start");
    dt_must(drv_exec(c, q, strlen(q), NULL, 0, &rows, &e), &e, "seed: insert");
    xac_rows_free(&rows);
    dt_must(drv_end(c, x, &e), &e, "seed: end");
    dt_must(drv_prepare(c, x, &e), &e, "seed: prepare");
    drv_close(c);
}

bool dt_in_doubt(const drv_conf *conf, const xac_xid *x)
{
    drv_conn *c = dt_conn(conf);
    drv_indoubt *v = NULL;
    size_t n = 0;
    xac_err e;
    xac_err_clear(&e);
    dt_must(drv_recover(c, &v, &n, &e), &e, "recover");
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (v[i].decoded && xac_xid_equal(&v[i].xid, x))
            found = true;
    free(v);
    drv_close(c);
    return found;
}

void dt_clean(const drv_conf *conf, const char *node)
{
    drv_conn *c = dt_conn(conf);
    drv_indoubt *v = NULL;
    size_t n = 0;
    xac_err e;
    xac_err_clear(&e);
    dt_must(drv_recover(c, &v, &n, &e), &e, "clean: recover");
    for (size_t i = 0; i < n; i++)
        if (v[i].decoded && (node == NULL || xac_xid_is_ours(&v[i].xid, node)))
            drv_rollback(c, &v[i].xid, &e);
    free(v);
    drv_close(c);
}
