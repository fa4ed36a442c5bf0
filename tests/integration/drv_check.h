/* Helpers the driver and recovery test programs share: run SQL on a driver
 * connection and assert, read one integer, make test XIDs, insert and count
 * rows of a two-column test table. */
#ifndef XAC_DRV_CHECK_H
#define XAC_DRV_CHECK_H

#include "drv.h"
#include "xac_common.h"

/* Runs sql without parameters; returns the XA code. */
int dt_sql_rc(drv_conn *c, const char *sql, xac_err *e);
/* Runs sql without parameters and asserts success. */
void dt_sql_ok(drv_conn *c, const char *sql);
/* The single integer a query returns, or -1. */
long long dt_sql_int(drv_conn *c, const char *sql);
/* A fresh XID of node for resource (bqual). */
void dt_new_xid(xac_xid *x, const char *node, const char *resource);
/* INSERT INTO table (id, name) VALUES (?, ?) with bound values; asserts one
 * row on success. */
int dt_insert_row(drv_conn *c, const char *table, long long id, const char *name, xac_err *e);
/* SELECT COUNT(*) FROM table WHERE id = id. */
long long dt_count_id(drv_conn *c, const char *table, long long id);

#endif
