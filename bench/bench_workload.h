/* What xac-bench's modes share: the databases a benchmark runs against, the
 * workloads (the same statements in every mode, so that the modes differ only
 * in how a transaction is made atomic), the accounts tables and the check that
 * a run neither created nor lost money, and the two modes that need no xacd:
 * `direct` (each client issues XA itself through xac's own drivers, branches
 * prepared and committed in parallel, no coordinator and no log: the ceiling)
 * and `local` (one plain local transaction per database, no atomicity: what an
 * application without 2PC pays). This header is their whole interface: the
 * xac mode of xac-bench runs the same statements (bench_workload_stmts). */
#ifndef XAC_BENCH_WORKLOAD_H
#define XAC_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drv.h"
#include "xac_common.h"

/* The databases, by index. Their resource names in an xacd config are
 * bench_db_name(): "my", "pg", "my2". */
enum { BENCH_DB_MY = 0, BENCH_DB_PG = 1, BENCH_DB_MY2 = 2, BENCH_DB_N = 3 };

const char *bench_db_name(int db);

/* Connection settings of the three databases: MariaDB through the mysql
 * driver (database XAC_TEST_MYSQL_DB, and XAC_TEST_MYSQL_DB2 for "my2"),
 * PostgreSQL through the odbc driver's postgresql dialect. */
typedef struct bench_target {
    drv_conf db[BENCH_DB_N];
} bench_target;

/* Fills t from the XAC_TEST_* variables of tests/fixtures/db.sh's env.sh;
 * XAC_ECONFIG naming the first one missing. XAC_BENCH_PG_DSN, when set, is
 * PostgreSQL's dsn setting (extra ODBC "key=value;" pairs, as in xacd's
 * config). */
int bench_target_from_env(bench_target *t, xac_err *err);

typedef enum bench_wl_kind {
    BENCH_WL_TRANSFER2 = 0, /* debit on MariaDB, credit on PostgreSQL */
    BENCH_WL_TRANSFER3,     /* debit 2x on MariaDB, credit x on PostgreSQL and on my2 */
    BENCH_WL_ONE,           /* one UPDATE on MariaDB: one branch */
    BENCH_WL_READMOSTLY     /* 5 SELECTs on MariaDB, 4 on PostgreSQL, then 1 UPDATE there */
} bench_wl_kind;

#define BENCH_ACCOUNTS_DEFAULT 10000u
#define BENCH_BALANCE_INITIAL  1000000 /* every account's balance after bench_setup */

typedef struct bench_workload {
    bench_wl_kind kind;
    uint32_t accounts; /* rows per table; ids are drawn uniformly from 1..accounts */
} bench_workload;

/* "transfer2", "transfer3", "one" or "readmostly"; accounts 0 means the
 * default. XAC_EINVAL for an unknown name. */
int bench_workload_parse(const char *name, uint32_t accounts, bench_workload *w, xac_err *err);
const char *bench_workload_name(const bench_workload *w);
/* The databases the workload touches: bit (1u << BENCH_DB_x) for each. */
unsigned bench_workload_dbs(const bench_workload *w);
/* UPDATE statements per transaction on database db. */
unsigned bench_workload_updates(const bench_workload *w, int db);

/* One statement of a transaction, with '?' placeholders bound to params. The
 * SQL text is static. Statements of one database are contiguous, databases in
 * the order MY, PG, MY2, so that two transactions never wait for each other
 * in opposite orders. */
#define BENCH_STMT_MAX 12
typedef struct bench_stmt {
    int db;
    const char *sql;
    xac_value params[2];
    size_t nparams;
    bool read; /* a SELECT: returns one row */
} bench_stmt;

/* A client's random state, different for every client_id. */
uint64_t bench_rng_seed(unsigned client_id);
/* The statements of the next transaction, drawn with rng; returns how many. */
size_t bench_workload_stmts(const bench_workload *w, uint64_t *rng, bench_stmt out[BENCH_STMT_MAX]);

/* (Re)creates table bench_accounts (id, balance, touched) in every database
 * of the workload with w->accounts rows of BENCH_BALANCE_INITIAL, after
 * rolling back prepared branches a killed benchmark left (XIDs whose gtrid
 * starts with "bench"). */
int bench_setup(const bench_target *t, const bench_workload *w, xac_err *err);

/* Sums over the tables of the workload's databases, and the prepared
 * branches each database holds (any XID: an in-doubt branch holds money). */
typedef struct bench_totals {
    unsigned dbs;
    int64_t balance[BENCH_DB_N];
    int64_t touched[BENCH_DB_N]; /* +1 per committed UPDATE of a row */
    size_t prepared[BENCH_DB_N];
} bench_totals;

int bench_totals_read(const bench_target *t, const bench_workload *w, bench_totals *out,
                      xac_err *err);

#define BENCH_COMMITTED_UNKNOWN UINT64_MAX

/* XAC_OK when the money across the databases is what it was, the run left
 * no prepared branch (no more than there were before), and (unless committed is
 * BENCH_COMMITTED_UNKNOWN) every database's touched grew by committed x its UPDATEs per
 * transaction: no commit lost or invented. Otherwise XAC_EINTERNAL with the figures. */
int bench_check(const bench_workload *w, const bench_totals *before, const bench_totals *after,
                uint64_t committed, xac_err *err);

/* A mode. open connects one client (one thread's own connections; client_id
 * seeds its random ids and names its XIDs); tx runs the next transaction:
 * XAC_OK committed, XAC_EROLLBACK rolled back by a database (deadlock, lock
 * wait timeout: count it and go on), anything else failed and the client
 * should stop. seq numbers the client's transactions (unique per client). */
typedef struct bench_mode_ops {
    const char *name;
    int (*open)(const bench_target *t, const bench_workload *w, unsigned client_id, void **out,
                xac_err *err);
    int (*tx)(void *client, uint64_t seq, xac_err *err);
    void (*close)(void *client);
} bench_mode_ops;

extern const bench_mode_ops bench_direct_ops; /* "direct" */
extern const bench_mode_ops bench_local_ops;  /* "local" */

typedef struct bench_direct bench_direct;
int bench_direct_open(const bench_target *t, const bench_workload *w, unsigned client_id,
                      bench_direct **out, xac_err *err);
int bench_direct_tx(bench_direct *c, uint64_t seq, xac_err *err);
void bench_direct_close(bench_direct *c);

typedef struct bench_local bench_local;
int bench_local_open(const bench_target *t, const bench_workload *w, unsigned client_id,
                     bench_local **out, xac_err *err);
int bench_local_tx(bench_local *c, uint64_t seq, xac_err *err);
void bench_local_close(bench_local *c);

#endif
