/* Helpers the driver and recovery test programs share: run SQL on a driver
 * connection and assert, read one integer, make test XIDs, insert and count
 * rows of a two-column test table. */
#ifndef XAC_DRV_CHECK_H
#define XAC_DRV_CHECK_H

#include <pthread.h>
#include <stdbool.h>

#include "drv.h"
#include "xac_common.h"

/* Runs sql without parameters; returns the XA code. */
int dt_sql_rc(drv_conn *c, const char *sql, xac_err *e);
/* Runs sql without parameters and asserts success. */
void dt_sql_ok(drv_conn *c, const char *sql);
/* The single integer a query returns, or -1. */
long long dt_sql_int(drv_conn *c, const char *sql);
/* A statement that waits for a row lock, run on c in a thread of its own:
 * dt_bg_start starts it, dt_bg_join waits for it and returns its XA code. */
typedef struct dt_bg {
    drv_conn *c;
    const char *sql;
    int rc;
    pthread_t th;
} dt_bg;
void dt_bg_start(dt_bg *bg, drv_conn *c, const char *sql);
int dt_bg_join(dt_bg *bg);
/* Asks sql on c every 10 ms until it returns want; false after 15 s. */
bool dt_wait_int(drv_conn *c, const char *sql, long long want);
/* Waits, asking the server on fresh connections to conf (not the clock),
 * until some InnoDB transaction waits for a lock; false after about 15 s. */
bool dt_wait_lock_wait(const drv_conf *conf);
/* A fresh XID of node for resource (bqual). */
void dt_new_xid(xac_xid *x, const char *node, const char *resource);
/* INSERT INTO table (id, name) VALUES (?, ?) with bound values; asserts one
 * row on success. */
int dt_insert_row(drv_conn *c, const char *table, long long id, const char *name, xac_err *e);
/* SELECT COUNT(*) FROM table WHERE id = id. */
long long dt_count_id(drv_conn *c, const char *table, long long id);

/* The recovery tests' helpers: each opens its own connection to conf and
 * closes it, and any driver failure is fatal to the test (dt_must). */
/* Asserts rc == XA_OK (fatal), printing what and the driver's message. */
void dt_must(int rc, const xac_err *e, const char *what);
/* Fills conf for the fixture's MariaDB (database from env var db_env) or
 * PostgreSQL (through ODBC), named name; timeouts and pool as the tests use. */
void dt_conf_mysql(drv_conf *conf, const char *name, const char *db_env);
void dt_conf_pg(drv_conf *conf, const char *name);
/* A connection to conf that must open. */
drv_conn *dt_conn(const drv_conf *conf);
/* Runs q on a fresh connection; must succeed. */
void dt_exec_ok(const drv_conf *conf, const char *q);
/* Whether row id exists in table (columns id, v). */
bool dt_has_row(const drv_conf *conf, const char *table, int id);
/* Leaves a prepared branch x that inserted row (id, id * 10) into table, and
 * disconnects so that any session may finish it. */
void dt_seed(const drv_conf *conf, const char *table, const xac_xid *x, int id);
/* Whether x is in conf's in-doubt list. */
bool dt_in_doubt(const drv_conf *conf, const xac_xid *x);
/* Rolls back every prepared branch on conf (only node's when node is not
 * NULL). */
void dt_clean(const drv_conf *conf, const char *node);

#endif
