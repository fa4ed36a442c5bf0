/* xac-bench: a load generator that measures global transactions end to end
 * and compares three ways of making the same work atomic: through libxac and
 * xacd (mode xac), issuing XA by hand with no coordinator and no log (direct:
 * the ceiling), and plain local transactions with no atomicity (local: what
 * an application without 2PC pays). The workloads and the direct and local
 * modes are bench_workload.h's; the xac mode sends exactly the statements of
 * bench_workload_stmts() through libxac. For each workload it creates the
 * accounts tables, then for each client count runs every selected mode in
 * turn, so that the ratios compare neighbours in time, and after each point
 * checks that the run kept the money and committed exactly the updates it
 * counted. Each client is one thread with its own connection(s); the clients
 * connect, meet at a barrier, run an unmeasured warm-up and then run for a
 * fixed time or a fixed number of transactions, closed loop (each client
 * starts its next transaction when the last one ends) or open loop (--rate:
 * each client paced, latency counted from the intended start, so that
 * queueing is not hidden). Latencies go into a log-linear histogram
 * (HDR-style: every bucket is within 1/128 of its values, so no sample list
 * grows with the run). It asserts nothing about speed: a smoke run in ctest
 * only checks that transactions happen without errors. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_cli.h"
#include "bench_workload.h"
#include "xac.h"
#include "xac_common.h"

#define DEFAULT_ADDR "unix:/run/xac/xacd.sock"
#define MAX_POINTS   32
#define MAX_CLIENTS  4096
#define MAX_WL       8
#define MAX_RATE     10000000.0

/* ---------------------------------------------------------------- histogram */

/* Latencies in nanoseconds. Values below HIST_SUB are exact; above, each
 * power of two is split into HIST_SUB buckets. Values past 2^HIST_TOP_BIT ns
 * (about 18 minutes) land in the last bucket. */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_TOP_BIT  40
#define HIST_N        ((HIST_TOP_BIT - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct hist {
    uint64_t count[HIST_N];
    uint64_t n;
    uint64_t min, max;
} hist;

static size_t hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    if (msb >= HIST_TOP_BIT)
        return HIST_N - 1;
    int shift = msb - HIST_SUB_BITS;
    return (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The largest value that falls into bucket i. */
static uint64_t hist_high(size_t i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = (unsigned)(i / HIST_SUB) - 1;
    uint64_t low = (uint64_t)(i % HIST_SUB + HIST_SUB) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

static void hist_add(hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
}

static void hist_merge(hist *into, const hist *h)
{
    if (h->n == 0)
        return;
    for (size_t i = 0; i < HIST_N; i++)
        into->count[i] += h->count[i];
    if (into->n == 0 || h->min < into->min)
        into->min = h->min;
    if (h->max > into->max)
        into->max = h->max;
    into->n += h->n;
}

/* The value at quantile q (0..1): the top of the bucket that holds the
 * ceil(q * n)-th smallest sample, never above the largest sample seen. */
static uint64_t hist_quantile(const hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t v = hist_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ------------------------------------------------------ modes, workloads */

enum mode { MODE_XAC, MODE_DIRECT, MODE_LOCAL, NMODES };
static const char *const mode_names[NMODES] = {"xac", "direct", "local"};

/* A workload as xac-bench runs it: null2 (xac only: two resources and no
 * database, meant for xacd's null driver) or one of bench_workload.h's. */
typedef struct wl {
    const char *name;
    bool null2;
    bench_workload bw; /* when !null2 */
} wl;

typedef struct opts {
    const char *addr, *client, *token;
    int clients[MAX_POINTS];
    int npoints;
    double seconds;
    uint64_t transactions; /* 0: run for seconds */
    double warmup;
    double rate; /* offered transactions/s over all clients; 0: closed loop */
    uint32_t accounts;
    const char *csv;
    const char *plot;
    const char *res[2]; /* null2's resource names */
    enum mode modes[NMODES];
    int nmodes;
    wl wls[MAX_WL];
    int nwl;
    bool need_db; /* a workload other than null2 */
    bool dry_run;
    bool sync_exec; /* mode xac: wait for every EXEC's reply */
} opts;

enum phase { PH_WARMUP, PH_MEASURE, PH_STOP };

/* The start barrier: the clients connect, arrive, and wait until the main
 * thread opens the gate for all at once. Unlike a pthread barrier it needs
 * no count fixed in advance, so a thread that failed to start cannot hang
 * it. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    bool open;
} gate;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void gate_arrive(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Sets *origin, under the lock, to the moment the gate opens: the paced
 * clients' schedules start there. */
static void gate_open_when(gate *g, int n, uint64_t *origin)
{
    pthread_mutex_lock(&g->mu);
    while (g->arrived < n)
        pthread_cond_wait(&g->cv, &g->mu);
    *origin = now_ns();
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct bench {
    const opts *o;
    enum mode mode;
    const wl *w;
    const bench_target *t; /* NULL for null2 */
    int nclients;
    gate start;
    uint64_t origin; /* when the gate opened (ns, monotonic) */
    atomic_int phase;
    atomic_int_fast64_t tickets; /* --transactions: measured transactions left */
    atomic_bool fatal;           /* a client gave up: stop the point */
} bench;

typedef struct client {
    bench *b;
    int id;
    void *conn; /* xac_conn * for xac, the bench_mode_ops client otherwise */
    bool reopen;
    uint64_t rng;
    uint64_t seq;
    hist *h;
    uint64_t tx;            /* committed and measured */
    uint64_t rollbacks;     /* rolled back by a database, measured */
    uint64_t committed_all; /* every commit, warm-up and stragglers included: the check */
    uint64_t errors;        /* every failed transaction, warm-up included */
    uint64_t last_done_ns;
    xac_err first; /* the first failed transaction's error */
    int rc;        /* XAC_OK, or why the client gave up */
    xac_err err;
} client;

/* ------------------------------------------------------------- mode xac */

static void xac_to_err(const xac_error *e, const char *what, xac_err *err)
{
    if (e->resource[0] != '\0')
        xac_err_setr(err, e->code, e->resource, "%s: %s: %s (resource %s)", what,
                     xac_strerror(e->code), e->msg, e->resource);
    else
        xac_err_set(err, e->code, "%s: %s: %s", what, xac_strerror(e->code), e->msg);
}

static int xac_open_conn(client *c, xac_err *err)
{
    const opts *o = c->b->o;
    xac_conn *xc;
    xac_error e;
    if (xac_connect(o->addr, o->client, o->token, &xc, &e) != XAC_OK) {
        xac_to_err(&e, "connect", err);
        return xac_err_prefix(err, "xacd at %s as client '%s'", o->addr, o->client);
    }
    c->conn = xc;
    return XAC_OK;
}

static void xac_close_conn(client *c)
{
    xac_close(c->conn);
    c->conn = NULL;
}

/* Only a lost connection needs a new one; after any other error the
 * session is fine for the next transaction. */
static int xac_failed(client *c, xac_tx *tx, const xac_error *e, const char *what, xac_err *err)
{
    xac_to_err(e, what, err);
    if (tx != NULL) {
        xac_error ignored;
        xac_rollback(tx, &ignored);
    }
    if (e->code == XAC_ECONN)
        c->reopen = true;
    return err->code != XAC_OK ? err->code : XAC_EINTERNAL;
}

/* null2: BEGIN, one trivial statement per resource, COMMIT. */
static int xac_tx_null2(client *c, xac_err *err)
{
    const opts *o = c->b->o;
    xac_tx *tx;
    xac_error e;
    if (xac_begin_ex(c->conn, 0, XAC_BEGIN_DEFER, &tx, &e) != XAC_OK)
        return xac_failed(c, NULL, &e, "begin", err);
    unsigned flags = o->sync_exec ? 0 : XAC_EXEC_DEFER;
    for (int i = 0; i < 2; i++)
        if (xac_exec_ex(tx, o->res[i], "SELECT 1", NULL, 0, flags, NULL, &e) != XAC_OK)
            return xac_failed(c, tx, &e, "exec", err);
    if (xac_commit(tx, &e) != XAC_OK)
        return xac_failed(c, NULL, &e, "commit", err);
    return XAC_OK;
}

/* The workload's statements, on the resources named after the databases
 * (bench_db_name), then COMMIT: xacd commits one branch in one phase. */
static int xac_tx_workload(client *c, xac_err *err)
{
    bench_stmt st[BENCH_STMT_MAX];
    size_t n = bench_workload_stmts(&c->b->w->bw, &c->rng, st);
    xac_tx *tx;
    xac_error e;
    if (xac_begin_ex(c->conn, 0, XAC_BEGIN_DEFER, &tx, &e) != XAC_OK)
        return xac_failed(c, NULL, &e, "begin", err);
    for (size_t i = 0; i < n; i++) {
        xac_param p[2];
        for (size_t k = 0; k < st[i].nparams; k++)
            p[k] = (xac_param){.type = (int)st[i].params[k].type,
                               .i = st[i].params[k].i,
                               .d = st[i].params[k].d,
                               .s = st[i].params[k].s,
                               .len = st[i].params[k].len};
        xac_result *r = NULL;
        const char *res = bench_db_name(st[i].db);
        /* A statement whose result is not read need not wait for it. */
        unsigned flags = st[i].read || c->b->o->sync_exec ? 0 : XAC_EXEC_DEFER;
        if (xac_exec_ex(tx, res, st[i].sql, p, st[i].nparams, flags, st[i].read ? &r : NULL, &e) !=
            XAC_OK)
            return xac_failed(c, tx, &e, "exec", err);
        if (st[i].read) {
            bool one = xac_result_has_rows(r) && xac_result_nrows(r) == 1;
            xac_result_free(r);
            if (!one) {
                xac_error ignored;
                xac_rollback(tx, &ignored);
                return xac_err_setr(err, XAC_ESQL, res, "%s: \"%s\" did not return one row", res,
                                    st[i].sql);
            }
        }
    }
    if (xac_commit(tx, &e) != XAC_OK)
        return xac_failed(c, NULL, &e, "commit", err);
    return XAC_OK;
}

static int xac_tx_any(client *c, xac_err *err)
{
    return c->b->w->null2 ? xac_tx_null2(c, err) : xac_tx_workload(c, err);
}

/* ------------------------------------------------- modes direct and local */

static const bench_mode_ops *ops_of(enum mode m)
{
    return m == MODE_DIRECT ? &bench_direct_ops : &bench_local_ops;
}

static int ops_open(client *c, xac_err *err)
{
    bench *b = c->b;
    c->conn = NULL;
    return ops_of(b->mode)->open(b->t, &b->w->bw, (unsigned)c->id, &c->conn, err);
}

/* A failure other than a database's rollback leaves the client's
 * connections in a state the mode does not promise to recover from: they
 * are replaced. */
static int ops_tx(client *c, xac_err *err)
{
    int rc = ops_of(c->b->mode)->tx(c->conn, ++c->seq, err);
    if (rc != XAC_OK && rc != XAC_EROLLBACK)
        c->reopen = true;
    return rc;
}

static void ops_close(client *c)
{
    if (c->conn != NULL)
        ops_of(c->b->mode)->close(c->conn);
    c->conn = NULL;
}

static int mode_open(client *c, xac_err *err)
{
    return c->b->mode == MODE_XAC ? xac_open_conn(c, err) : ops_open(c, err);
}

static int mode_tx(client *c, xac_err *err)
{
    return c->b->mode == MODE_XAC ? xac_tx_any(c, err) : ops_tx(c, err);
}

static void mode_close(client *c)
{
    if (c->b->mode == MODE_XAC)
        xac_close_conn(c);
    else
        ops_close(c);
}

/* ------------------------------------------------------------ options */

static void usage(void)
{
    xac_out("usage: xac-bench [OPTIONS]\n"
            "Runs transactions from N concurrent clients (one thread each, with its own\n"
            "connection(s)) and reports, per mode, workload and client count: throughput,\n"
            "latency p50/p95/p99/p99.9, commits, rollbacks and errors; after each workload,\n"
            "the ratios of xac to direct and to local. No speed is asserted.\n"
            "\n"
            "What to measure:\n"
            "  --modes LIST         comma-separated, run in this order at every point\n"
            "                       (default xac; --mode is the same):\n"
            "                         xac     through libxac and a running xacd; BEGIN\n"
            "                                 deferred into the first request\n"
            "                                 (XAC_BEGIN_DEFER), and statements whose\n"
            "                                 result is not read into the request after\n"
            "                                 them (XAC_EXEC_DEFER): a transfer is one\n"
            "                                 round trip to xacd\n"
            "                         direct  each client issues XA START/END/PREPARE/COMMIT\n"
            "                                 itself through xac's drivers, branches prepared\n"
            "                                 and committed in parallel; no coordinator, no\n"
            "                                 log: the ceiling\n"
            "                         local   a plain local transaction per database (BEGIN,\n"
            "                                 the same statements, COMMIT): no atomicity\n"
            "  --workloads LIST     comma-separated (default null2; --workload is the same):\n"
            "                         transfer2   debit on MariaDB (my), credit on PostgreSQL\n"
            "                                     (pg): two branches\n"
            "                         transfer3   debit 2x on my, credit x on pg and on a\n"
            "                                     second MariaDB database (my2): three\n"
            "                                     branches\n"
            "                         one         one UPDATE on my: one branch (xacd commits\n"
            "                                     it in one phase)\n"
            "                         readmostly  5 SELECTs on my, 4 on pg, 1 UPDATE on pg\n"
            "                         null2       xac only: \"SELECT 1\" on each of two\n"
            "                                     resources, COMMIT. Meant for resources of\n"
            "                                     driver \"null\" (bench/run_null.sh): xacd\n"
            "                                     alone\n"
            "  --accounts N         rows per accounts table (default 10000); ids are drawn\n"
            "                       uniformly\n"
            "  --resources A,B      null2's two resource names (default null_a,null_b)\n"
            "\n"
            "How long, how hard:\n"
            "  --clients LIST       comma-separated client counts, one point each\n"
            "                       (default 1,8,64,256). A count given more than once\n"
            "                       (1,1,1,1) also gets, after the ratios, xac against\n"
            "                       each other mode pooled over those points (all\n"
            "                       their transactions over all their time), with the\n"
            "                       median and range of the pairs' ratios\n"
            "  --seconds S          measured time per point (default 5)\n"
            "  --transactions N     instead: measure N transactions per point (all clients\n"
            "                       together); the time is until the last one is done\n"
            "  --warmup S           unmeasured run before each point (default 1; 0: none)\n"
            "  --rate R             open loop: offer R transactions/s in total, spread evenly\n"
            "                       over the clients: client i starts its k-th transaction at\n"
            "                       T0 + i/R + k*clients/R (sleeping until then; at once when\n"
            "                       it is late), and latency is counted from that scheduled\n"
            "                       start, so that queueing behind a slow transaction is not\n"
            "                       hidden. tx/s is what was achieved. Default: closed loop\n"
            "                       (each client starts its next transaction when the last\n"
            "                       one ends; latency from BEGIN)\n"
            "\n"
            "Where:\n"
            "  --addr ADDR          xacd's address (mode xac): unix:/path, tcp:host:port or\n"
            "                       a path (default: $XAC_ADDR, else " DEFAULT_ADDR ")\n"
            "  --client NAME        client name configured in xacd (default: $XAC_CLIENT)\n"
            "  --token TOKEN        its token (default: $XAC_TOKEN)\n"
            "  The databases (every workload but null2, every mode) come from the variables\n"
            "  of the env.sh that tests/fixtures/db.sh or bench/db_tune.sh start writes\n"
            "  (XAC_TEST_MYSQL_*, XAC_TEST_MYSQL_DB2, XAC_TEST_PG_*; XAC_BENCH_PG_DSN adds\n"
            "  ODBC options for pg in modes direct). In mode xac, xacd must have resources\n"
            "  my (driver mysql, XAC_TEST_MYSQL_DB), pg (odbc, postgresql, XAC_TEST_PG_DB)\n"
            "  and my2 (driver mysql, XAC_TEST_MYSQL_DB2) on the same databases\n"
            "  (bench/run_bench.sh writes such a config).\n"
            "\n"
            "Output:\n"
            "  --csv FILE           also write one row per point, with a header row:\n"
            "                         mode,workload,clients  what was measured\n"
            "                         seconds      measured time\n"
            "                         tx_per_s     committed transactions per second\n"
            "                         p50_ms p95_ms p99_ms p999_ms  latency percentiles, ms\n"
            "                         committed    transactions committed in the measured\n"
            "                                      time\n"
            "                         rollbacks    transactions a database rolled back\n"
            "                                      (deadlock, lock wait timeout) in that time\n"
            "                         errors       failed transactions, warm-up included\n"
            "                         rate         --rate's offered load, 0 for closed loop\n"
            "  --plot FILE.png      also write one PNG (gnuplot; Debian: gnuplot-nox) with a\n"
            "                       row per workload: throughput against clients on the\n"
            "                       left, p99 latency against clients on the right, one line\n"
            "                       per mode\n"
            "  --sync-exec          mode xac: send every statement alone and wait for its\n"
            "                       reply (xac_exec), as a client that reads each result\n"
            "                       would\n"
            "  --dry-run            check the options, print the points that would run, and\n"
            "                       measure nothing (no xacd or database is contacted)\n"
            "  -h, --help           this text\n"
            "\n"
            "Before each workload's points, the accounts tables are recreated in its\n"
            "databases (prepared branches a killed run left, gtrids starting with\n"
            "\"bench\", are rolled back first). After each point, the money across the\n"
            "databases must be what it was, no more prepared branches may be there than\n"
            "before, and (when the point had no error) every database must have exactly\n"
            "the row updates of the transactions committed: the check column.\n"
            "A transaction counts when it finishes inside the measured time (with\n"
            "--transactions: when it took one of the N tickets); latency is bucketed within\n"
            "1/128 of its value. A rollback (XAC_EROLLBACK) is counted and the client goes\n"
            "on; any other failure is an error; a client whose connection is lost (or, in\n"
            "modes direct and local, any error) reconnects, and gives up only when it\n"
            "cannot.\n"
            "Exit status: 0 when every point ran without an error and every check held; 1\n"
            "when a transaction failed, a check failed or a client could not connect (the\n"
            "table and CSV are still written); 2, with nothing measured, for a usage\n"
            "error, --plot without gnuplot, or a database variable missing.\n");
}

static int parse_clients(const char *s, opts *o, xac_err *err)
{
    return bench_parse_clients(s, o->clients, MAX_POINTS, MAX_CLIENTS, &o->npoints, err);
}

static int parse_seconds(const char *opt, const char *v, bool zero_ok, double *out, xac_err *err)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !(d < 3600) || d < 0 || (!zero_ok && d == 0))
        return xac_err_set(err, XAC_EINVAL, "%s \"%s\": expected %s S < 3600", opt, v,
                           zero_ok ? "0 <=" : "0 <");
    *out = d;
    return XAC_OK;
}

/* The next item of a comma-separated list into item (at most cap - 1
 * chars); returns false at the end. An empty item is an error. */
static int next_item(const char **p, char *item, size_t cap, const char *opt, const char *all,
                     xac_err *err)
{
    size_t len = strcspn(*p, ",");
    if (len == 0 || len >= cap)
        return xac_err_set(err, XAC_EINVAL, "%s \"%s\": expected a comma-separated list", opt, all);
    memcpy(item, *p, len);
    item[len] = '\0';
    *p += len;
    if (**p == ',') {
        (*p)++;
        if (**p == '\0')
            return xac_err_set(err, XAC_EINVAL, "%s \"%s\": expected a comma-separated list", opt,
                               all);
    }
    return XAC_OK;
}

static int parse_modes(const char *opt, const char *v, opts *o, xac_err *err)
{
    o->nmodes = 0;
    for (const char *p = v; *p != '\0';) {
        char name[16];
        int rc = next_item(&p, name, sizeof name, opt, v, err);
        if (rc != XAC_OK)
            return rc;
        int m = -1;
        for (int k = 0; k < NMODES; k++)
            if (strcmp(name, mode_names[k]) == 0)
                m = k;
        if (m < 0)
            return xac_err_set(err, XAC_EINVAL,
                               "%s: unknown mode \"%s\" (expected xac, direct or local)", opt,
                               name);
        for (int k = 0; k < o->nmodes; k++)
            if (o->modes[k] == (enum mode)m)
                return xac_err_set(err, XAC_EINVAL, "%s: %s is given twice", opt, name);
        o->modes[o->nmodes++] = (enum mode)m;
    }
    if (o->nmodes == 0)
        return xac_err_set(err, XAC_EINVAL, "%s is empty", opt);
    return XAC_OK;
}

static int parse_workloads(const char *opt, const char *v, opts *o, xac_err *err)
{
    o->nwl = 0;
    for (const char *p = v; *p != '\0';) {
        char name[32];
        int rc = next_item(&p, name, sizeof name, opt, v, err);
        if (rc != XAC_OK)
            return rc;
        if (o->nwl == MAX_WL)
            return xac_err_set(err, XAC_EINVAL, "%s: at most %d workloads", opt, MAX_WL);
        wl *w = &o->wls[o->nwl];
        if (strcmp(name, "null2") == 0) {
            *w = (wl){.name = "null2", .null2 = true};
        } else {
            *w = (wl){.null2 = false};
            if (bench_workload_parse(name, 0, &w->bw, err) != XAC_OK)
                return xac_err_set(err, XAC_EINVAL,
                                   "%s: unknown workload \"%s\" (expected transfer2, transfer3, "
                                   "one, readmostly or null2)",
                                   opt, name);
            w->name = bench_workload_name(&w->bw);
        }
        for (int k = 0; k < o->nwl; k++)
            if (strcmp(o->wls[k].name, w->name) == 0)
                return xac_err_set(err, XAC_EINVAL, "%s: %s is given twice", opt, name);
        o->nwl++;
    }
    if (o->nwl == 0)
        return xac_err_set(err, XAC_EINVAL, "%s is empty", opt);
    return XAC_OK;
}

static int parse_number(const char *opt, const char *v, double lo, double hi, double *out,
                        xac_err *err)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !(d >= lo) || !(d <= hi))
        return xac_err_set(err, XAC_EINVAL, "%s \"%s\": expected a number from %g to %g", opt, v,
                           lo, hi);
    *out = d;
    return XAC_OK;
}

static int parse_resources(const char *v, opts *o, char *buf, size_t cap, xac_err *err)
{
    if (strlen(v) >= cap)
        return xac_err_set(err, XAC_EINVAL, "--resources \"%s\" is too long", v);
    snprintf(buf, cap, "%s", v);
    char *comma = strchr(buf, ',');
    if (comma == NULL || strchr(comma + 1, ',') != NULL)
        return xac_err_set(err, XAC_EINVAL, "--resources \"%s\": expected two names A,B", v);
    *comma = '\0';
    o->res[0] = buf;
    o->res[1] = comma + 1;
    for (int k = 0; k < 2; k++)
        if (!xac_valid_name(o->res[k], XAC_RESOURCE_MAX))
            return xac_err_set(err, XAC_EINVAL,
                               "--resources: \"%s\" is not a resource name ([A-Za-z0-9_-]{1,%d})",
                               o->res[k], XAC_RESOURCE_MAX);
    return XAC_OK;
}

/* Returns 1 when --help was asked for. res_buf holds the --resources text
 * that o points into. */
static int parse_args(int argc, char **argv, opts *o, char *res_buf, size_t res_len, xac_err *err)
{
    memset(o, 0, sizeof *o);
    o->seconds = 5.0;
    o->warmup = 1.0;
    o->res[0] = "null_a";
    o->res[1] = "null_b";
    int rc;
    if ((rc = parse_clients("1,8,64,256", o, err)) != XAC_OK ||
        (rc = parse_modes("--modes", "xac", o, err)) != XAC_OK ||
        (rc = parse_workloads("--workloads", "null2", o, err)) != XAC_OK)
        return rc;
    bool seconds_given = false, res_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = true;
            continue;
        }
        if (strcmp(a, "--sync-exec") == 0) {
            o->sync_exec = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return xac_err_set(err, XAC_EINVAL, "unexpected argument \"%s\" (see --help)", a);
        if (i + 1 >= argc)
            return xac_err_set(err, XAC_EINVAL, "%s: unknown option or missing value (see --help)",
                               a);
        const char *v = argv[++i];
        double d;
        if (strcmp(a, "--addr") == 0) {
            o->addr = v;
        } else if (strcmp(a, "--client") == 0) {
            o->client = v;
        } else if (strcmp(a, "--token") == 0) {
            o->token = v;
        } else if (strcmp(a, "--clients") == 0) {
            rc = parse_clients(v, o, err);
        } else if (strcmp(a, "--seconds") == 0) {
            rc = parse_seconds(a, v, false, &o->seconds, err);
            seconds_given = true;
        } else if (strcmp(a, "--warmup") == 0) {
            rc = parse_seconds(a, v, true, &o->warmup, err);
        } else if (strcmp(a, "--transactions") == 0) {
            if ((rc = parse_number(a, v, 1, 1e9, &d, err)) == XAC_OK && d != floor(d))
                rc = xac_err_set(err, XAC_EINVAL, "--transactions \"%s\": expected a whole number",
                                 v);
            o->transactions = (uint64_t)d;
        } else if (strcmp(a, "--rate") == 0) {
            if ((rc = parse_number(a, v, 0.001, MAX_RATE, &d, err)) == XAC_OK)
                o->rate = d;
        } else if (strcmp(a, "--accounts") == 0) {
            if ((rc = parse_number(a, v, 1, 100000000, &d, err)) == XAC_OK && d != floor(d))
                rc = xac_err_set(err, XAC_EINVAL, "--accounts \"%s\": expected a whole number", v);
            o->accounts = (uint32_t)d;
        } else if (strcmp(a, "--modes") == 0 || strcmp(a, "--mode") == 0) {
            rc = parse_modes(a, v, o, err);
        } else if (strcmp(a, "--workloads") == 0 || strcmp(a, "--workload") == 0) {
            rc = parse_workloads(a, v, o, err);
        } else if (strcmp(a, "--resources") == 0) {
            rc = parse_resources(v, o, res_buf, res_len, err);
            res_given = true;
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = v;
        } else if (strcmp(a, "--plot") == 0) {
            o->plot = v;
        } else {
            return xac_err_set(err, XAC_EINVAL, "unknown option %s (see --help)", a);
        }
        if (rc != XAC_OK)
            return rc;
    }
    if (seconds_given && o->transactions > 0)
        return xac_err_set(err, XAC_EINVAL, "give --seconds or --transactions, not both");
    bool has_null2 = false, has_xac = false;
    for (int k = 0; k < o->nmodes; k++)
        has_xac |= o->modes[k] == MODE_XAC;
    for (int i = 0; i < o->nwl; i++) {
        wl *w = &o->wls[i];
        if (w->null2) {
            has_null2 = true;
            if (o->nmodes != 1 || !has_xac)
                return xac_err_set(err, XAC_EINVAL,
                                   "workload null2 runs only in mode xac (it needs xacd's null "
                                   "resources): give --modes xac");
        } else {
            w->bw.accounts = o->accounts > 0 ? o->accounts : BENCH_ACCOUNTS_DEFAULT;
            o->need_db = true;
        }
    }
    if (res_given && !has_null2)
        return xac_err_set(err, XAC_EINVAL,
                           "--resources names null2's resources; the other workloads use my, pg "
                           "and my2");
    if (o->accounts > 0 && !o->need_db)
        return xac_err_set(err, XAC_EINVAL, "--accounts: workload null2 has no accounts");
    if (o->plot != NULL) {
        size_t n = strlen(o->plot);
        if (n < 5 || strcmp(o->plot + n - 4, ".png") != 0)
            return xac_err_set(err, XAC_EINVAL,
                               "--plot \"%s\": expected a file name ending in .png", o->plot);
    }
    if (!has_xac)
        return XAC_OK;
    if (o->addr == NULL || o->addr[0] == '\0')
        o->addr = getenv("XAC_ADDR");
    if (o->addr == NULL || o->addr[0] == '\0')
        o->addr = DEFAULT_ADDR;
    if (o->client == NULL || o->client[0] == '\0')
        o->client = getenv("XAC_CLIENT");
    if (o->client == NULL || o->client[0] == '\0')
        return xac_err_set(err, XAC_EINVAL,
                           "mode xac needs a client name: give --client NAME or set XAC_CLIENT");
    if (o->token == NULL)
        o->token = getenv("XAC_TOKEN");
    if (o->token == NULL)
        o->token = "";
    return XAC_OK;
}

/* Whether gnuplot can be run: checked before measuring, not after. */
static bool have_gnuplot(void)
{
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/bin:/bin";
    const char *p = path;
    while (*p != '\0') {
        const char *colon = strchr(p, ':');
        size_t n = colon != NULL ? (size_t)(colon - p) : strlen(p);
        char f[4096];
        if (n > 0 && n < sizeof f - 16) {
            snprintf(f, sizeof f, "%.*s/gnuplot", (int)n, p);
            if (access(f, X_OK) == 0)
                return true;
        }
        if (colon == NULL)
            break;
        p = colon + 1;
    }
    return false;
}

/* ------------------------------------------------------------ one point */

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sleeps until the monotonic time t (ns), in slices of at most 50 ms so
 * that a paced client with a long interval still sees the end of the
 * point. Returns false when the point ended first. */
static bool sleep_until(bench *b, uint64_t t)
{
    for (;;) {
        if (atomic_load_explicit(&b->phase, memory_order_relaxed) == PH_STOP ||
            atomic_load_explicit(&b->fatal, memory_order_relaxed))
            return false;
        uint64_t now = now_ns();
        if (now >= t)
            return true;
        uint64_t until = t - now > 50000000u ? now + 50000000u : t;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                              .tv_nsec = (long)(until % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
    }
}

static void *client_main(void *p)
{
    client *c = p;
    bench *b = c->b;
    c->rc = mode_open(c, &c->err);
    gate_arrive(&b->start);
    if (c->rc != XAC_OK) {
        atomic_store(&b->fatal, true);
        return NULL;
    }
    bool by_count = b->o->transactions > 0;
    double rate = b->o->rate;
    /* Client i's k-th transaction is due at origin + (i + k * clients) / rate:
     * together the clients offer rate transactions/s, evenly spaced. */
    for (uint64_t k = 0;; k++) {
        uint64_t due = 0;
        if (rate > 0) {
            due = b->origin +
                  (uint64_t)(((double)c->id + (double)k * (double)b->nclients) / rate * 1e9);
            if (!sleep_until(b, due))
                break;
        }
        int ph = atomic_load_explicit(&b->phase, memory_order_relaxed);
        if (ph == PH_STOP || atomic_load_explicit(&b->fatal, memory_order_relaxed))
            break;
        bool ticket = false;
        if (by_count && ph == PH_MEASURE) {
            if (atomic_fetch_sub(&b->tickets, 1) <= 0)
                break;
            ticket = true;
        }
        xac_err e;
        xac_err_clear(&e);
        uint64_t t0 = rate > 0 ? due : now_ns();
        int rc = mode_tx(c, &e);
        uint64_t t1 = now_ns();
        bool measured =
            by_count ? ticket : atomic_load_explicit(&b->phase, memory_order_relaxed) == PH_MEASURE;
        if (rc == XAC_OK) {
            c->committed_all++;
            if (measured) {
                hist_add(c->h, t1 - t0);
                c->tx++;
            }
        } else if (rc == XAC_EROLLBACK) {
            if (measured)
                c->rollbacks++;
        } else if (c->errors++ == 0) {
            c->first = e;
        }
        if (ticket)
            c->last_done_ns = t1;
        if (c->reopen) {
            mode_close(c);
            c->reopen = false;
            c->rc = mode_open(c, &c->err);
            if (c->rc != XAC_OK) {
                xac_err_prefix(&c->err, "reconnecting after a failure");
                atomic_store(&b->fatal, true);
                return NULL;
            }
        }
    }
    mode_close(c);
    return NULL;
}

typedef struct point {
    const char *mode, *workload;
    int wl_index;
    int pt_index; /* which entry of --clients: a count may be given twice */
    int clients;
    double seconds, rate;
    uint64_t committed, rollbacks, errors;
    uint64_t committed_all;
    double per_s;
    double p50, p95, p99, p999, max; /* ms */
    bool failed;                     /* a client could not (re)connect */
    const char *check;               /* "ok", "FAILED" or "-" (null2: no databases) */
} point;

static int run_point(bench *b, int nclients, point *pt, xac_err *err)
{
    const opts *o = b->o;
    client *cs = calloc((size_t)nclients, sizeof *cs);
    pthread_t *th = calloc((size_t)nclients, sizeof *th);
    hist *hs = calloc((size_t)nclients + 1, sizeof *hs);
    if (cs == NULL || th == NULL || hs == NULL) {
        free(cs);
        free(th);
        free(hs);
        return xac_err_set(err, XAC_ENOMEM, "out of memory starting %d clients", nclients);
    }
    b->nclients = nclients;
    atomic_store(&b->phase, PH_WARMUP);
    atomic_store(&b->fatal, false);
    atomic_store(&b->tickets, (int_fast64_t)o->transactions);
    int rc = XAC_OK;
    b->start = (gate){.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int started = 0;
    for (int i = 0; i < nclients; i++) {
        cs[i] = (client){.b = b, .id = i, .h = &hs[i + 1], .rng = bench_rng_seed((unsigned)i)};
        int e = pthread_create(&th[i], NULL, client_main, &cs[i]);
        if (e != 0) {
            rc = xac_err_set(err, XAC_EINTERNAL, "cannot start client thread %d of %d: %s", i + 1,
                             nclients, strerror(e));
            break;
        }
        started++;
    }
    if (started < nclients)
        atomic_store(&b->fatal, true);
    gate_open_when(&b->start, started, &b->origin);
    if (!atomic_load(&b->fatal))
        sleep_s(o->warmup);
    uint64_t t0 = now_ns();
    atomic_store(&b->phase, PH_MEASURE);
    if (o->transactions == 0 && !atomic_load(&b->fatal)) {
        /* Wakes early when a client gives up, so a dead xacd costs little. */
        uint64_t end = t0 + (uint64_t)(o->seconds * 1e9);
        while (!atomic_load(&b->fatal) && now_ns() < end) {
            uint64_t left = end - now_ns();
            sleep_s(left > 50000000 ? 0.05 : (double)left / 1e9);
        }
    }
    uint64_t t1 = now_ns();
    /* With --transactions the clients stop when the tickets run out. */
    if (o->transactions == 0)
        atomic_store(&b->phase, PH_STOP);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&b->start.mu);
    pthread_cond_destroy(&b->start.cv);

    hist *all = &hs[0];
    *pt = (point){.mode = mode_names[b->mode],
                  .workload = b->w->name,
                  .clients = nclients,
                  .rate = o->rate,
                  .check = "-"};
    uint64_t last = t0;
    int with_errors = 0;
    for (int i = 0; i < started; i++) {
        client *c = &cs[i];
        hist_merge(all, c->h);
        pt->committed += c->tx;
        pt->rollbacks += c->rollbacks;
        pt->committed_all += c->committed_all;
        pt->errors += c->errors;
        if (c->last_done_ns > last)
            last = c->last_done_ns;
        /* The first client's first error says enough; the rest are counted. */
        if (c->errors > 0 && with_errors++ == 0)
            xac_logw("%s/%s, %d clients: client %d: %" PRIu64 " failed transactions; the first: %s",
                     pt->mode, pt->workload, nclients, i + 1, c->errors, c->first.msg);
        if (c->rc != XAC_OK) {
            pt->failed = true;
            if (rc == XAC_OK) {
                *err = c->err;
                rc = xac_err_prefix(err, "%s/%s: client %d of %d", pt->mode, pt->workload, i + 1,
                                    nclients);
            }
        }
    }
    if (with_errors > 1)
        xac_logw("%s/%s, %d clients: %d clients had failed transactions", pt->mode, pt->workload,
                 nclients, with_errors);
    if (o->transactions > 0)
        t1 = last;
    pt->seconds = (double)(t1 - t0) / 1e9;
    pt->per_s = pt->seconds > 0 ? (double)pt->committed / pt->seconds : 0;
    pt->p50 = (double)hist_quantile(all, 0.50) / 1e6;
    pt->p95 = (double)hist_quantile(all, 0.95) / 1e6;
    pt->p99 = (double)hist_quantile(all, 0.99) / 1e6;
    pt->p999 = (double)hist_quantile(all, 0.999) / 1e6;
    pt->max = (double)all->max / 1e6;
    free(cs);
    free(th);
    free(hs);
    return rc;
}

/* ------------------------------------------------------------- output */

static void print_head(void)
{
    xac_out("%-6s %-10s %7s %7s %10s %8s %8s %8s %9s %8s %10s %9s %6s %5s\n", "mode", "workload",
            "clients", "seconds", "tx/s", "p50_ms", "p95_ms", "p99_ms", "p99.9_ms", "max_ms",
            "committed", "rollbacks", "errors", "check");
}

static void print_point(const point *p)
{
    xac_out("%-6s %-10s %7d %7.2f %10.0f %8.3f %8.3f %8.3f %9.3f %8.3f %10" PRIu64 " %9" PRIu64
            " %6" PRIu64 " %5s\n",
            p->mode, p->workload, p->clients, p->seconds, p->per_s, p->p50, p->p95, p->p99, p->p999,
            p->max, p->committed, p->rollbacks, p->errors, p->check);
}

static const point *find_point(const point *pts, int n, int wi, int pi, const char *mode)
{
    for (int i = 0; i < n; i++)
        if (pts[i].wl_index == wi && pts[i].pt_index == pi && strcmp(pts[i].mode, mode) == 0)
            return &pts[i];
    return NULL;
}

static void fmt_ratio(char *out, size_t cap, const point *a, const point *b)
{
    if (a == NULL || b == NULL || b->per_s <= 0)
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.3f", a->per_s / b->per_s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* For a client count given more than once: xac against mode over all those
 * points, pooled (every committed transaction over all measured time) and as
 * the median and range of the pairs' ratios. One stall of a shared disk then
 * moves one pair, not the figure. */
static void print_pooled(const opts *o, const point *pts, int n, int wi, const char *mode)
{
    for (int i = 0; i < o->npoints; i++) {
        bool first = true;
        for (int k = 0; k < i && first; k++)
            first = o->clients[k] != o->clients[i];
        if (!first)
            continue;
        double r[MAX_POINTS];
        int nr = 0;
        double xc = 0, xs = 0, bc = 0, bs = 0;
        for (int k = i; k < o->npoints; k++) {
            const point *px = find_point(pts, n, wi, k, "xac");
            const point *pb = find_point(pts, n, wi, k, mode);
            if (o->clients[k] != o->clients[i] || px == NULL || pb == NULL || pb->per_s <= 0)
                continue;
            r[nr++] = px->per_s / pb->per_s;
            xc += (double)px->committed, xs += px->seconds;
            bc += (double)pb->committed, bs += pb->seconds;
        }
        if (nr < 2 || bc <= 0 || xs <= 0)
            continue;
        qsort(r, (size_t)nr, sizeof r[0], cmp_double);
        double med = nr % 2 ? r[nr / 2] : (r[nr / 2 - 1] + r[nr / 2]) / 2;
        xac_out("%d clients, %d pairs: xac/%s pooled %.3f, median %.3f, range %.3f-%.3f\n",
                o->clients[i], nr, mode, (xc / xs) / (bc / bs), med, r[0], r[nr - 1]);
    }
}

/* After each workload: how xac compares with its neighbours in time. */
static void print_ratios(const opts *o, const point *pts, int n, int wi)
{
    bool x = false, d = false, l = false;
    for (int k = 0; k < o->nmodes; k++) {
        x |= o->modes[k] == MODE_XAC;
        d |= o->modes[k] == MODE_DIRECT;
        l |= o->modes[k] == MODE_LOCAL;
    }
    if (!x || (!d && !l))
        return;
    xac_out("\nratios, workload %s (throughput ratio; p99 difference in ms):\n", o->wls[wi].name);
    xac_out("%7s %10s %10s %17s %17s\n", "clients", "xac/direct", "xac/local", "p99 xac-direct",
            "p99 xac-local");
    for (int i = 0; i < o->npoints; i++) {
        const point *px = find_point(pts, n, wi, i, "xac");
        const point *pd = find_point(pts, n, wi, i, "direct");
        const point *pl = find_point(pts, n, wi, i, "local");
        if (px == NULL)
            continue;
        char rd[32], rl[32], dd[32] = "-", dl[32] = "-";
        fmt_ratio(rd, sizeof rd, px, pd);
        fmt_ratio(rl, sizeof rl, px, pl);
        if (pd != NULL)
            snprintf(dd, sizeof dd, "%+.3f", px->p99 - pd->p99);
        if (pl != NULL)
            snprintf(dl, sizeof dl, "%+.3f", px->p99 - pl->p99);
        xac_out("%7d %10s %10s %17s %17s\n", o->clients[i], rd, rl, dd, dl);
    }
    print_pooled(o, pts, n, wi, "direct");
    print_pooled(o, pts, n, wi, "local");
    xac_out("\n");
}

static int write_csv(const char *path, const point *pts, int n, xac_err *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return xac_err_set(err, XAC_EIO, "cannot create %s: %s", path, strerror(errno));
    fprintf(f, "mode,workload,clients,seconds,tx_per_s,p50_ms,p95_ms,p99_ms,p999_ms,committed,"
               "rollbacks,errors,rate\n");
    for (int i = 0; i < n; i++) {
        const point *p = &pts[i];
        fprintf(f,
                "%s,%s,%d,%.3f,%.1f,%.3f,%.3f,%.3f,%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%g\n",
                p->mode, p->workload, p->clients, p->seconds, p->per_s, p->p50, p->p95, p->p99,
                p->p999, p->committed, p->rollbacks, p->errors, p->rate);
    }
    if (ferror(f) != 0 || fclose(f) != 0)
        return xac_err_set(err, XAC_EIO, "cannot write %s", path);
    return XAC_OK;
}

/* A gnuplot single-quoted string: a quote inside is doubled. */
static void gp_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s != '\0'; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* One row per workload: throughput (left) and p99 (right) against clients
 * on a log scale, one line per mode, each mode the same colour everywhere. */
static int write_plot(const char *path, const opts *o, const point *pts, int n, xac_err *err)
{
    FILE *f = popen("gnuplot", "w");
    if (f == NULL)
        return xac_err_set(err, XAC_EIO, "cannot run gnuplot: %s", strerror(errno));
    fprintf(f, "set terminal pngcairo size 1200,%d noenhanced\nset output ", 40 + 380 * o->nwl);
    gp_quoted(f, path);
    fprintf(f, "\n");
    for (int wi = 0; wi < o->nwl; wi++)
        for (int m = 0; m < NMODES; m++) {
            fprintf(f, "$d%d_%d << EOD\n", wi, m);
            for (int i = 0; i < n; i++)
                if (pts[i].wl_index == wi && strcmp(pts[i].mode, mode_names[m]) == 0)
                    fprintf(f, "%d %.1f %.3f\n", pts[i].clients, pts[i].per_s, pts[i].p99);
            fprintf(f, "EOD\n");
        }
    fprintf(f,
            "set multiplot layout %d,2 title 'xac-bench: throughput and p99 latency against "
            "clients%s'\n"
            "set xlabel 'clients'\nset logscale x 2\nset grid\nset key top left\n"
            "set yrange [0:*]\n",
            o->nwl, o->rate > 0 ? " (open loop)" : "");
    /* A margin around the client counts; one count alone is no range. */
    int lo = o->clients[0], hi = o->clients[0];
    for (int i = 1; i < o->npoints; i++) {
        lo = o->clients[i] < lo ? o->clients[i] : lo;
        hi = o->clients[i] > hi ? o->clients[i] : hi;
    }
    fprintf(f, "set xrange [%g:%g]\n", lo / 1.5, hi * 1.5);
    static const char *const colour[NMODES] = {"#d62728", "#1f77b4", "#2ca02c"};
    for (int wi = 0; wi < o->nwl; wi++) {
        for (int panel = 0; panel < 2; panel++) {
            fprintf(f, "set title '%s: %s'\nset ylabel '%s'\nplot ", o->wls[wi].name,
                    panel == 0 ? "throughput" : "p99 latency",
                    panel == 0 ? "transactions/s" : "p99 (ms)");
            int lines = 0;
            for (int k = 0; k < o->nmodes; k++) {
                int m = (int)o->modes[k];
                bool any = false;
                for (int i = 0; i < n; i++)
                    any |= pts[i].wl_index == wi && strcmp(pts[i].mode, mode_names[m]) == 0;
                if (!any)
                    continue;
                fprintf(f, "%s$d%d_%d using 1:%d with linespoints lw 2 pt 7 lc rgb '%s' title '%s'",
                        lines++ > 0 ? ", " : "", wi, m, panel == 0 ? 2 : 3, colour[m],
                        mode_names[m]);
            }
            if (lines == 0)
                fprintf(f, "NaN notitle");
            fprintf(f, "\n");
        }
    }
    fprintf(f, "unset multiplot\n");
    int st = pclose(f);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return xac_err_set(err, XAC_EIO, "gnuplot failed to write %s (status %d)", path, st);
    return XAC_OK;
}

static void log_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char line[128] = "";
    if (f != NULL) {
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    xac_logi("load average %s: %s (%ld CPUs online)", when, line[0] ? line : "unknown",
             sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---------------------------------------------------------------- main */

/* One mode at one client count, with the money check around it. */
static int run_checked(const opts *o, const bench_target *t, int wi, enum mode m, int nclients,
                       point *pt, bool *check_failed, xac_err *err)
{
    const wl *w = &o->wls[wi];
    bench b = {.o = o, .mode = m, .w = w, .t = w->null2 ? NULL : t};
    bench_totals before, after;
    int rc;
    if (!w->null2 && (rc = bench_totals_read(t, &w->bw, &before, err)) != XAC_OK)
        return xac_err_prefix(err, "%s/%s before %d clients", mode_names[m], w->name, nclients);
    xac_logi("%s/%s: %d client(s), warm-up %.1f s, then %s%s", mode_names[m], w->name, nclients,
             o->warmup, o->transactions > 0 ? "a fixed number of transactions" : "a fixed time",
             o->rate > 0 ? ", paced" : "");
    rc = run_point(&b, nclients, pt, err);
    pt->wl_index = wi;
    if (rc != XAC_OK || w->null2)
        return rc;
    xac_err e;
    xac_err_clear(&e);
    /* After an error some outcomes are not known (a commit that lost its
     * connection): then only the money and the prepared branches are checked. */
    uint64_t committed = pt->errors == 0 ? pt->committed_all : BENCH_COMMITTED_UNKNOWN;
    if ((rc = bench_totals_read(t, &w->bw, &after, err)) != XAC_OK)
        return xac_err_prefix(err, "%s/%s after %d clients", mode_names[m], w->name, nclients);
    if (bench_check(&w->bw, &before, &after, committed, &e) != XAC_OK) {
        pt->check = "FAILED";
        *check_failed = true;
        xac_loge("%s/%s, %d clients: check failed: %s", mode_names[m], w->name, nclients, e.msg);
    } else {
        pt->check = "ok";
    }
    return XAC_OK;
}

static int run(const opts *o, const bench_target *t, point *pts, int *npts, bool *check_failed,
               xac_err *err)
{
    *npts = 0;
    int rc = XAC_OK;
    log_load("before");
    for (int wi = 0; wi < o->nwl && rc == XAC_OK; wi++) {
        const wl *w = &o->wls[wi];
        if (!w->null2) {
            xac_logi("workload %s: creating the accounts tables (%" PRIu32 " rows)", w->name,
                     w->bw.accounts);
            if ((rc = bench_setup(t, &w->bw, err)) != XAC_OK)
                break;
        }
        print_head();
        xac_out_flush();
        for (int i = 0; i < o->npoints && rc == XAC_OK; i++) {
            for (int k = 0; k < o->nmodes && rc == XAC_OK; k++) {
                point *pt = &pts[*npts];
                rc = run_checked(o, t, wi, o->modes[k], o->clients[i], pt, check_failed, err);
                pt->pt_index = i;
                if (pt->mode == NULL)
                    break; /* the totals could not be read: no point */
                (*npts)++;
                print_point(pt);
                xac_out_flush();
            }
        }
        print_ratios(o, pts, *npts, wi);
        xac_out_flush();
    }
    log_load("after");
    return rc;
}

int main(int argc, char **argv)
{
    xac_err err;
    xac_err_clear(&err);
    if (xac_log_init("xac-bench", XAC_LOG_INFO, NULL, &err) != XAC_OK)
        return 2;
    opts o;
    char res_buf[2 * (XAC_RESOURCE_MAX + 1) + 1];
    int rc = parse_args(argc, argv, &o, res_buf, sizeof res_buf, &err);
    if (rc == 1) {
        usage();
        xac_out_flush();
        return 0;
    }
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        return 2;
    }
    if (o.dry_run) {
        for (int wi = 0; wi < o.nwl; wi++)
            for (int i = 0; i < o.npoints; i++)
                for (int k = 0; k < o.nmodes; k++)
                    xac_out("%s %s %d\n", mode_names[o.modes[k]], o.wls[wi].name, o.clients[i]);
        xac_out_flush();
        return 0;
    }
    if (o.plot != NULL && !have_gnuplot()) {
        xac_loge("--plot needs gnuplot, which is not on PATH (Debian: apt-get install "
                 "gnuplot-nox); nothing was measured");
        return 2;
    }
    static bench_target t;
    if (o.need_db && bench_target_from_env(&t, &err) != XAC_OK) {
        xac_loge("the databases: %s; nothing was measured", err.msg);
        return 2;
    }
    static point pts[MAX_POINTS * NMODES * MAX_WL];
    int npts;
    bool check_failed = false;
    rc = run(&o, &t, pts, &npts, &check_failed, &err);
    int status = 0;
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        status = 1;
    }
    bool tx_failed = false;
    for (int i = 0; i < npts; i++)
        if (pts[i].errors > 0 || pts[i].failed)
            tx_failed = true;
    if (o.csv != NULL && npts > 0) {
        if (write_csv(o.csv, pts, npts, &err) != XAC_OK) {
            xac_loge("%s", err.msg);
            status = 1;
        }
    }
    if (o.plot != NULL && npts > 0) {
        if (write_plot(o.plot, &o, pts, npts, &err) != XAC_OK) {
            xac_loge("%s", err.msg);
            status = 1;
        } else {
            xac_logi("wrote %s", o.plot);
        }
    }
    if (tx_failed && rc == XAC_OK)
        xac_loge("some transactions failed (errors column); the figures above are not valid");
    if (check_failed)
        xac_loge("a check failed (check column): a mode lost or invented money or commits");
    if (tx_failed || check_failed)
        status = 1;
    xac_out_flush();
    return status;
}
