/* The workloads of xac-bench and what surrounds a run: the databases' settings
 * from the test fixtures' environment, the statements of one transaction for
 * each workload, the accounts tables (created through xac's own drivers, so
 * that the tables are the same whichever mode runs next) and the money check
 * after a run. The statements are plain single-row UPDATEs and SELECTs by
 * primary key on random ids, so that contention stays low and the cost
 * measured is the protocol's, not lock waits; every UPDATE also counts itself
 * in the row's `touched`, which lets the check catch a lost or invented
 * commit as well as lost money. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_workload.h"

#define TABLE "bench_accounts"

static const char *const db_names[BENCH_DB_N] = {"my", "pg", "my2"};

const char *bench_db_name(int db)
{
    return db >= 0 && db < BENCH_DB_N ? db_names[db] : "?";
}

static int env_get(const char *name, const char **out, xac_err *err)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return xac_err_set(err, XAC_ECONFIG,
                           "%s is not set (source the env.sh that tests/fixtures/db.sh start "
                           "writes)",
                           name);
    *out = v;
    return XAC_OK;
}

static int env_copy(const char *name, char *dst, size_t cap, xac_err *err)
{
    const char *v = NULL;
    int rc = env_get(name, &v, err);
    if (rc != XAC_OK)
        return rc;
    if (strlen(v) >= cap)
        return xac_err_set(err, XAC_ECONFIG, "%s is too long", name);
    memcpy(dst, v, strlen(v) + 1);
    return XAC_OK;
}

static int env_port(const char *name, int *out, xac_err *err)
{
    const char *v = NULL;
    int rc = env_get(name, &v, err);
    if (rc != XAC_OK)
        return rc;
    char *end;
    long p = strtol(v, &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535)
        return xac_err_set(err, XAC_ECONFIG, "%s is not a port: \"%s\"", name, v);
    *out = (int)p;
    return XAC_OK;
}

static void conf_common(drv_conf *c, int db)
{
    snprintf(c->name, sizeof c->name, "%s", db_names[db]);
    c->connect_timeout_ms = 5000;
    c->io_timeout_ms = 30000;
    c->pool_size = 1;
}

int bench_target_from_env(bench_target *t, xac_err *err)
{
    memset(t, 0, sizeof *t);
    int rc;
    for (int db = BENCH_DB_MY; db < BENCH_DB_N; db++) {
        drv_conf *c = &t->db[db];
        conf_common(c, db);
        if (db == BENCH_DB_PG) {
            snprintf(c->driver, sizeof c->driver, "odbc");
            snprintf(c->dialect, sizeof c->dialect, "postgresql");
            snprintf(c->odbc_driver, sizeof c->odbc_driver, "PostgreSQL Unicode");
            if ((rc = env_copy("XAC_TEST_PG_HOST", c->host, sizeof c->host, err)) != XAC_OK ||
                (rc = env_port("XAC_TEST_PG_PORT", &c->port, err)) != XAC_OK ||
                (rc = env_copy("XAC_TEST_PG_USER", c->user, sizeof c->user, err)) != XAC_OK ||
                (rc = env_copy("XAC_TEST_PG_PASSWORD", c->password, sizeof c->password, err)) !=
                    XAC_OK ||
                (rc = env_copy("XAC_TEST_PG_DB", c->database, sizeof c->database, err)) != XAC_OK)
                return rc;
        } else {
            snprintf(c->driver, sizeof c->driver, "mysql");
            const char *dbvar = db == BENCH_DB_MY ? "XAC_TEST_MYSQL_DB" : "XAC_TEST_MYSQL_DB2";
            if ((rc = env_copy("XAC_TEST_MYSQL_HOST", c->host, sizeof c->host, err)) != XAC_OK ||
                (rc = env_port("XAC_TEST_MYSQL_PORT", &c->port, err)) != XAC_OK ||
                (rc = env_copy("XAC_TEST_MYSQL_USER", c->user, sizeof c->user, err)) != XAC_OK ||
                (rc = env_copy("XAC_TEST_MYSQL_PASSWORD", c->password, sizeof c->password, err)) !=
                    XAC_OK ||
                (rc = env_copy(dbvar, c->database, sizeof c->database, err)) != XAC_OK)
                return rc;
        }
        /* The dsn setting of an xacd resource, for trying psqlodbc options
         * in direct mode before changing the driver's defaults. */
        const char *dsn = getenv("XAC_BENCH_PG_DSN");
        if (db == BENCH_DB_PG && dsn != NULL)
            snprintf(c->dsn, sizeof c->dsn, "%s", dsn);
        if ((rc = drv_check_conf(c, err)) != XAC_OK)
            return rc;
    }
    return XAC_OK;
}

/* ------------------------------------------------------------ workloads */

static const char *const wl_names[] = {"transfer2", "transfer3", "one", "readmostly"};

int bench_workload_parse(const char *name, uint32_t accounts, bench_workload *w, xac_err *err)
{
    for (size_t i = 0; i < sizeof wl_names / sizeof wl_names[0]; i++) {
        if (strcmp(name, wl_names[i]) == 0) {
            w->kind = (bench_wl_kind)i;
            w->accounts = accounts > 0 ? accounts : BENCH_ACCOUNTS_DEFAULT;
            return XAC_OK;
        }
    }
    return xac_err_set(err, XAC_EINVAL,
                       "unknown workload \"%s\" (transfer2, transfer3, one or readmostly)", name);
}

const char *bench_workload_name(const bench_workload *w)
{
    return (size_t)w->kind < sizeof wl_names / sizeof wl_names[0] ? wl_names[w->kind] : "?";
}

unsigned bench_workload_dbs(const bench_workload *w)
{
    switch (w->kind) {
    case BENCH_WL_TRANSFER3:
        return 1u << BENCH_DB_MY | 1u << BENCH_DB_PG | 1u << BENCH_DB_MY2;
    case BENCH_WL_ONE:
        return 1u << BENCH_DB_MY;
    case BENCH_WL_TRANSFER2:
    case BENCH_WL_READMOSTLY:
    default:
        return 1u << BENCH_DB_MY | 1u << BENCH_DB_PG;
    }
}

unsigned bench_workload_updates(const bench_workload *w, int db)
{
    if ((bench_workload_dbs(w) & 1u << db) == 0)
        return 0;
    if (w->kind == BENCH_WL_READMOSTLY)
        return db == BENCH_DB_PG ? 1 : 0;
    return 1;
}

uint64_t bench_rng_seed(unsigned client_id)
{
    /* splitmix64 of the id: neighbouring ids give unrelated streams. */
    uint64_t z = 0x9E3779B97F4A7C15ull * ((uint64_t)client_id + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z != 0 ? z : 1;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static int64_t rng_id(const bench_workload *w, uint64_t *rng)
{
    return (int64_t)(rng_next(rng) % w->accounts) + 1;
}

static const char SQL_DEBIT[] =
    "UPDATE " TABLE " SET balance = balance - ?, touched = touched + 1 WHERE id = ?";
static const char SQL_CREDIT[] =
    "UPDATE " TABLE " SET balance = balance + ?, touched = touched + 1 WHERE id = ?";
static const char SQL_TOUCH[] = "UPDATE " TABLE " SET touched = touched + 1 WHERE id = ?";
static const char SQL_READ[] = "SELECT balance FROM " TABLE " WHERE id = ?";

static void stmt_set(bench_stmt *s, int db, const char *sql, bool read)
{
    s->db = db;
    s->sql = sql;
    s->nparams = 0;
    s->read = read;
}

static void stmt_int(bench_stmt *s, int64_t v)
{
    xac_value *p = &s->params[s->nparams++];
    memset(p, 0, sizeof *p);
    p->type = XAC_T_INT;
    p->i = v;
}

size_t bench_workload_stmts(const bench_workload *w, uint64_t *rng, bench_stmt out[BENCH_STMT_MAX])
{
    size_t n = 0;
    int64_t amount = (int64_t)(rng_next(rng) % 100) + 1;
    switch (w->kind) {
    case BENCH_WL_TRANSFER2:
    case BENCH_WL_TRANSFER3: {
        bool three = w->kind == BENCH_WL_TRANSFER3;
        stmt_set(&out[n], BENCH_DB_MY, SQL_DEBIT, false);
        stmt_int(&out[n], three ? 2 * amount : amount);
        stmt_int(&out[n++], rng_id(w, rng));
        stmt_set(&out[n], BENCH_DB_PG, SQL_CREDIT, false);
        stmt_int(&out[n], amount);
        stmt_int(&out[n++], rng_id(w, rng));
        if (three) {
            stmt_set(&out[n], BENCH_DB_MY2, SQL_CREDIT, false);
            stmt_int(&out[n], amount);
            stmt_int(&out[n++], rng_id(w, rng));
        }
        break;
    }
    case BENCH_WL_ONE:
        stmt_set(&out[n], BENCH_DB_MY, SQL_TOUCH, false);
        stmt_int(&out[n++], rng_id(w, rng));
        break;
    case BENCH_WL_READMOSTLY:
        for (int i = 0; i < 9; i++) {
            stmt_set(&out[n], i < 5 ? BENCH_DB_MY : BENCH_DB_PG, SQL_READ, true);
            stmt_int(&out[n++], rng_id(w, rng));
        }
        stmt_set(&out[n], BENCH_DB_PG, SQL_TOUCH, false);
        stmt_int(&out[n++], rng_id(w, rng));
        break;
    }
    return n;
}

/* ---------------------------------------------------------- setup, check */

static int run(drv_conn *c, const char *sql, xac_rows *rows, xac_err *err)
{
    int rc = drv_exec(c, sql, strlen(sql), NULL, 0, rows, err);
    if (rc != XA_OK)
        return xac_err_prefix(err, "%s: %s", c->conf->name, sql);
    return XAC_OK;
}

/* Prepared branches a killed benchmark left hold row locks that would make
 * DROP TABLE wait; they are ours when their gtrid starts with "bench". */
static int clear_leftovers(drv_conn *c, xac_err *err)
{
    drv_indoubt *list = NULL;
    size_t n = 0;
    if (drv_recover(c, &list, &n, err) != XA_OK)
        return xac_err_prefix(err, "%s: recover", c->conf->name);
    int rc = XAC_OK;
    for (size_t i = 0; i < n && rc == XAC_OK; i++) {
        if (!list[i].decoded || strncmp(list[i].xid.gtrid, "bench", 5) != 0)
            continue;
        if (drv_rollback(c, &list[i].xid, err) != XA_OK)
            rc = xac_err_prefix(err, "%s: rolling back a leftover branch", c->conf->name);
    }
    free(list);
    return rc;
}

/* MariaDB's seq_1_to_N is not in MySQL 8, whose recursive CTEs stop at
 * 1000 rows by default: rows go in as multi-row INSERTs of this many. */
#define FILL_BATCH 1000

static int fill_mysql(drv_conn *c, uint32_t accounts, xac_err *err)
{
    size_t cap = 64 + (size_t)FILL_BATCH * 24;
    char *sql = malloc(cap);
    if (sql == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory");
    int rc = XAC_OK;
    for (uint32_t from = 1; from <= accounts && rc == XAC_OK; from += FILL_BATCH) {
        size_t o = (size_t)snprintf(sql, cap, "INSERT INTO " TABLE " (id, balance) VALUES ");
        for (uint32_t id = from; id < from + FILL_BATCH && id <= accounts; id++)
            o += (size_t)snprintf(sql + o, cap - o, "%s(%" PRIu32 ", %d)", id == from ? "" : ",",
                                  id, BENCH_BALANCE_INITIAL);
        rc = run(c, sql, NULL, err);
    }
    free(sql);
    return rc;
}

static int setup_one(const drv_conf *conf, bool pg, uint32_t accounts, xac_err *err)
{
    drv_conn *c = NULL;
    if (drv_open(conf, &c, err) != XA_OK)
        return err->code != XAC_OK ? err->code : XAC_ERMFAIL;
    char fill[256];
    snprintf(fill, sizeof fill,
             "INSERT INTO " TABLE " (id, balance) SELECT g, %d FROM generate_series(1, %" PRIu32
             ") g",
             BENCH_BALANCE_INITIAL, accounts);
    const char *create = pg ? "CREATE TABLE " TABLE " (id INT NOT NULL PRIMARY KEY, balance BIGINT "
                              "NOT NULL, touched BIGINT NOT NULL DEFAULT 0)"
                            : "CREATE TABLE " TABLE " (id INT NOT NULL PRIMARY KEY, balance BIGINT "
                              "NOT NULL, touched BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB";
    int rc = clear_leftovers(c, err);
    if (rc == XAC_OK)
        rc = run(c, "DROP TABLE IF EXISTS " TABLE, NULL, err);
    if (rc == XAC_OK)
        rc = run(c, create, NULL, err);
    if (rc == XAC_OK)
        rc = pg ? run(c, fill, NULL, err) : fill_mysql(c, accounts, err);
    if (rc == XAC_OK)
        rc = run(c, pg ? "ANALYZE " TABLE : "ANALYZE TABLE " TABLE, NULL, err);
    drv_close(c);
    return rc;
}

int bench_setup(const bench_target *t, const bench_workload *w, xac_err *err)
{
    if (w->accounts == 0)
        return xac_err_set(err, XAC_EINVAL, "the workload has no accounts");
    unsigned dbs = bench_workload_dbs(w);
    for (int db = 0; db < BENCH_DB_N; db++) {
        if ((dbs & 1u << db) == 0)
            continue;
        int rc = setup_one(&t->db[db], db == BENCH_DB_PG, w->accounts, err);
        if (rc != XAC_OK)
            return xac_err_prefix(err, "bench setup");
    }
    return XAC_OK;
}

static int cell_i64(const xac_rows *r, size_t col, int64_t *out, xac_err *err)
{
    size_t len;
    const char *s = r->nrows == 1 && col < r->ncols ? xac_rows_cell(r, 0, col, &len) : NULL;
    if (s == NULL)
        return xac_err_set(err, XAC_EINTERNAL, "no sum in the result");
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return xac_err_set(err, XAC_EINTERNAL, "not an integer: \"%s\"", s);
    *out = (int64_t)v;
    return XAC_OK;
}

int bench_totals_read(const bench_target *t, const bench_workload *w, bench_totals *out,
                      xac_err *err)
{
    memset(out, 0, sizeof *out);
    out->dbs = bench_workload_dbs(w);
    for (int db = 0; db < BENCH_DB_N; db++) {
        if ((out->dbs & 1u << db) == 0)
            continue;
        drv_conn *c = NULL;
        if (drv_open(&t->db[db], &c, err) != XA_OK)
            return err->code != XAC_OK ? err->code : XAC_ERMFAIL;
        xac_rows rows;
        xac_rows_init(&rows);
        /* SUM of BIGINT is a DECIMAL/NUMERIC with no fraction digits: the
         * cells read as integers either way. */
        int rc = run(c, "SELECT COALESCE(SUM(balance), 0), COALESCE(SUM(touched), 0) FROM " TABLE,
                     &rows, err);
        if (rc == XAC_OK && (rc = cell_i64(&rows, 0, &out->balance[db], err)) == XAC_OK)
            rc = cell_i64(&rows, 1, &out->touched[db], err);
        xac_rows_free(&rows);
        drv_indoubt *list = NULL;
        if (rc == XAC_OK && drv_recover(c, &list, &out->prepared[db], err) != XA_OK)
            rc = xac_err_prefix(err, "%s: recover", c->conf->name);
        free(list);
        drv_close(c);
        if (rc != XAC_OK)
            return xac_err_prefix(err, "bench totals");
    }
    return XAC_OK;
}

int bench_check(const bench_workload *w, const bench_totals *before, const bench_totals *after,
                uint64_t committed, xac_err *err)
{
    int64_t m0 = 0, m1 = 0;
    for (int db = 0; db < BENCH_DB_N; db++) {
        if ((after->dbs & 1u << db) == 0)
            continue;
        m0 += before->balance[db];
        m1 += after->balance[db];
        /* Branches other programs left before the run are not the run's. */
        if (after->prepared[db] > before->prepared[db])
            return xac_err_set(err, XAC_EINTERNAL,
                               "%s holds %zu prepared branch(es) after the run, %zu before",
                               bench_db_name(db), after->prepared[db], before->prepared[db]);
    }
    if (m0 != m1)
        return xac_err_set(err, XAC_EINTERNAL,
                           "money changed: %" PRId64 " before the run, %" PRId64 " after", m0, m1);
    if (committed == BENCH_COMMITTED_UNKNOWN)
        return XAC_OK;
    for (int db = 0; db < BENCH_DB_N; db++) {
        if ((after->dbs & 1u << db) == 0)
            continue;
        int64_t want = (int64_t)(committed * bench_workload_updates(w, db));
        int64_t got = after->touched[db] - before->touched[db];
        if (got != want)
            return xac_err_set(err, XAC_EINTERNAL,
                               "%s: %" PRId64 " row updates committed, %" PRIu64
                               " transactions x %u updates = %" PRId64 " expected",
                               bench_db_name(db), got, committed, bench_workload_updates(w, db),
                               want);
    }
    return XAC_OK;
}
