/* Helpers the driver and recovery test programs share (drv_check.h). They
 * assert with CUnit and print what failed, so a failing test says why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
