/* xac-bench: a load generator that measures global transactions end to end,
 * for a list of client counts. Each client is one thread with its own
 * connection; the clients connect, meet at a barrier, run a warm-up that is
 * not measured, and then run for a fixed time or until a fixed number of
 * transactions is done. Each point reports throughput and latency
 * percentiles from a log-linear histogram (HDR-style: every bucket is within
 * 1/128 of its values, so no sample list grows with the run), and counts
 * every failed transaction. What is measured is a mode (how the work reaches
 * the databases) times a workload (what the work is); the impls table holds
 * the combinations that exist, so that a new mode or workload is one more
 * row and its functions. It asserts nothing about speed: a smoke run in
 * ctest only checks that transactions happen without errors. */
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
#include "xac.h"
#include "xac_common.h"

#define DEFAULT_ADDR "unix:/run/xac/xacd.sock"
#define MAX_POINTS   32
#define MAX_CLIENTS  4096
#define MAX_RES      3
#define MAX_SEL      8 /* mode x workload pairs in one run */

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

/* What a workload is, whatever the mode: the resources it touches (the
 * names xacd knows them by; --resources overrides them in order). */
typedef struct workload {
    const char *name;
    const char *what;
    int nres;
    const char *res[MAX_RES];
} workload;

static const workload workloads[] = {
    {"null2",
     "one trivial statement on each of two resources, then COMMIT (2PC)",
     2,
     {"null_a", "null_b"}},
    /* Next: transfer2 (MariaDB + PostgreSQL), transfer3, one, readmostly. */
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

typedef struct bench bench;
typedef struct client client;

/* One mode x workload combination. open runs before the barrier and makes
 * the client's connection(s); tx runs one whole transaction and returns
 * XAC_OK or the error (filled into err); close undoes open. A tx that leaves
 * the connection unusable sets c->reopen, and the client reopens it. */
typedef struct impl {
    enum mode mode;
    const char *workload;
    int (*open)(client *c, xac_err *err);
    int (*tx)(client *c, xac_err *err);
    void (*close)(client *c);
} impl;

typedef struct opts {
    const char *addr, *client, *token;
    int clients[MAX_POINTS];
    int npoints;
    double seconds;
    uint64_t transactions; /* 0: run for seconds */
    double warmup;
    const char *csv;
    const char *plot;
    const char *res[MAX_RES];
    int nres_given;
    const impl *sel[MAX_SEL];
    const workload *selw[MAX_SEL];
    int nsel;
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

static void gate_arrive(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open_when(gate *g, int n)
{
    pthread_mutex_lock(&g->mu);
    while (g->arrived < n)
        pthread_cond_wait(&g->cv, &g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

struct bench {
    const opts *o;
    const impl *im;
    const workload *w;
    const char *res[MAX_RES]; /* the resource names in use */
    gate start;
    atomic_int phase;
    atomic_int_fast64_t tickets; /* --transactions: measured transactions left */
    atomic_bool fatal;           /* a client gave up: stop the point */
};

struct client {
    bench *b;
    int id;
    void *conn; /* the mode's connection: xac_conn * for xac */
    bool reopen;
    hist *h;
    uint64_t tx;     /* measured transactions */
    uint64_t errors; /* every failed transaction, warm-up included */
    uint64_t last_done_ns;
    xac_err first; /* the first failed transaction's error */
    int rc;        /* XAC_OK, or why the client gave up */
    xac_err err;
};

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

/* BEGIN, one statement per resource, COMMIT. */
static int xac_tx_each(client *c, const char *sql, xac_err *err)
{
    bench *b = c->b;
    xac_tx *tx;
    xac_error e;
    if (xac_begin(c->conn, 0, &tx, &e) != XAC_OK)
        return xac_failed(c, NULL, &e, "begin", err);
    for (int i = 0; i < b->w->nres; i++)
        if (xac_exec(tx, b->res[i], sql, NULL, 0, NULL, &e) != XAC_OK)
            return xac_failed(c, tx, &e, "exec", err);
    if (xac_commit(tx, &e) != XAC_OK)
        return xac_failed(c, NULL, &e, "commit", err);
    return XAC_OK;
}

static int xac_tx_null2(client *c, xac_err *err)
{
    return xac_tx_each(c, "SELECT 1", err);
}

static const impl impls[] = {
    {MODE_XAC, "null2", xac_open_conn, xac_tx_null2, xac_close_conn},
};
#define NIMPLS (sizeof impls / sizeof impls[0])

/* ------------------------------------------------------------ options */

static void usage(void)
{
    xac_out("usage: xac-bench [OPTIONS]\n"
            "Runs global transactions from N concurrent clients (one thread and one\n"
            "connection each) and reports, per client count: transactions, throughput,\n"
            "latency p50/p95/p99/p99.9 and errors. No speed is asserted.\n"
            "\n"
            "What to measure:\n"
            "  --mode LIST          comma-separated modes (default xac). Implemented:\n"
            "                         xac     through libxac and a running xacd\n"
            "                       (direct and local are not implemented yet)\n"
            "  --workload NAME      default null2. Implemented:\n"
            "                         null2   BEGIN; \"SELECT 1\" on each of two resources;\n"
            "                                 COMMIT: a two-phase commit with a durable\n"
            "                                 journal record. Meant for two resources with\n"
            "                                 driver \"null\" (bench/run_null.sh), so that it\n"
            "                                 measures xacd alone\n"
            "                       (transfer2, transfer3, one, readmostly are not\n"
            "                       implemented yet)\n"
            "  --resources LIST     the resource names the workload uses, in order\n"
            "                       (null2: null_a,null_b)\n"
            "\n"
            "How long:\n"
            "  --clients LIST       comma-separated client counts, one point each\n"
            "                       (default 1,8,64,256)\n"
            "  --seconds S          measured time per point (default 5)\n"
            "  --transactions N     instead: measure N transactions per point (all clients\n"
            "                       together); the time is until the last one is done\n"
            "  --warmup S           unmeasured run before each point (default 1; 0: none)\n"
            "\n"
            "Where:\n"
            "  --addr ADDR          xacd's address: unix:/path, tcp:host:port or a path\n"
            "                       (default: $XAC_ADDR, else " DEFAULT_ADDR ")\n"
            "  --client NAME        client name configured in xacd (default: $XAC_CLIENT)\n"
            "  --token TOKEN        its token (default: $XAC_TOKEN)\n"
            "\n"
            "Output:\n"
            "  --csv FILE           also write the results as CSV with a header row\n"
            "  --plot FILE.png      also plot throughput and p99 against clients (needs\n"
            "                       gnuplot; Debian: apt-get install gnuplot-nox)\n"
            "  -h, --help           this text\n"
            "\n"
            "A transaction counts when it finishes inside the measured time (with\n"
            "--transactions: when it took one of the N tickets); latency is from BEGIN\n"
            "to the end of COMMIT, as the client sees it, bucketed within 1/128 of its\n"
            "value. \"errors\" counts every failed transaction of the point, warm-up\n"
            "included; a client whose connection is lost reconnects, and gives up only\n"
            "when it cannot.\n"
            "Exit status: 0 when every point ran without an error; 1 when a transaction\n"
            "failed or a client could not connect (the table and CSV are still written);\n"
            "2 for a usage error.\n");
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
        return xac_err_set(err, XAC_EINVAL, "%s \"%s\": expected %s < S < 3600", opt, v,
                           zero_ok ? "0 <=" : "0");
    *out = d;
    return XAC_OK;
}

/* Splits a comma-separated list in place into at most max items. */
static int split_list(char *s, const char **items, int max, int *n)
{
    *n = 0;
    for (char *p = s;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p == '\0' || *n == max)
            return -1;
        items[(*n)++] = p;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

static const workload *find_workload(const char *name)
{
    for (size_t i = 0; i < NWORKLOADS; i++)
        if (strcmp(workloads[i].name, name) == 0)
            return &workloads[i];
    return NULL;
}

static const impl *find_impl(enum mode m, const char *wl)
{
    for (size_t i = 0; i < NIMPLS; i++)
        if (impls[i].mode == m && strcmp(impls[i].workload, wl) == 0)
            return &impls[i];
    return NULL;
}

static bool known_workload_name(const char *name)
{
    static const char *const planned[] = {"transfer2", "transfer3", "one", "readmostly", NULL};
    for (const char *const *p = planned; *p != NULL; p++)
        if (strcmp(*p, name) == 0)
            return true;
    return find_workload(name) != NULL;
}

/* Fills o->sel with every requested mode for the workload. */
static int select_impls(opts *o, char *modes, const char *wl, xac_err *err)
{
    if (!known_workload_name(wl))
        return xac_err_set(err, XAC_EINVAL,
                           "--workload \"%s\": unknown (see --help for the workloads)", wl);
    const workload *w = find_workload(wl);
    if (w == NULL)
        return xac_err_set(err, XAC_EINVAL,
                           "--workload %s is not implemented yet (implemented: null2)", wl);
    const char *names[MAX_SEL];
    int n;
    if (split_list(modes, names, MAX_SEL, &n) != 0)
        return xac_err_set(err, XAC_EINVAL,
                           "--mode: expected a comma-separated list of xac, direct, local");
    o->nsel = 0;
    for (int i = 0; i < n; i++) {
        int m = -1;
        for (int k = 0; k < NMODES; k++)
            if (strcmp(names[i], mode_names[k]) == 0)
                m = k;
        if (m < 0)
            return xac_err_set(err, XAC_EINVAL,
                               "--mode \"%s\": unknown (expected xac, direct or local)", names[i]);
        const impl *im = find_impl((enum mode)m, wl);
        if (im == NULL)
            return xac_err_set(err, XAC_EINVAL,
                               "mode %s with workload %s is not implemented yet (implemented: "
                               "xac with null2)",
                               names[i], wl);
        for (int k = 0; k < o->nsel; k++)
            if (o->sel[k] == im)
                return xac_err_set(err, XAC_EINVAL, "--mode: %s is given twice", names[i]);
        o->sel[o->nsel] = im;
        o->selw[o->nsel] = w;
        o->nsel++;
    }
    if (o->nres_given > 0 && o->nres_given != w->nres)
        return xac_err_set(err, XAC_EINVAL, "--resources: workload %s uses %d resources, got %d",
                           w->name, w->nres, o->nres_given);
    return XAC_OK;
}

/* Returns 1 when --help was asked for. modes/res_buf hold the list texts
 * that o points into. */
static int parse_args(int argc, char **argv, opts *o, char *modes, size_t modes_len, char *res_buf,
                      size_t res_len, xac_err *err)
{
    memset(o, 0, sizeof *o);
    o->seconds = 5.0;
    o->warmup = 1.0;
    const char *wl = "null2";
    snprintf(modes, modes_len, "xac");
    int rc = parse_clients("1,8,64,256", o, err);
    if (rc != XAC_OK)
        return rc;
    bool seconds_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (i + 1 >= argc)
            return xac_err_set(err, XAC_EINVAL, "%s: unknown option or missing value (see --help)",
                               a);
        const char *v = argv[++i];
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
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (end == v || *end != '\0' || errno != 0 || v[0] == '-' || n < 1 || n > 1000000000ULL)
                return xac_err_set(err, XAC_EINVAL, "--transactions \"%s\": expected 1..1e9", v);
            o->transactions = n;
        } else if (strcmp(a, "--mode") == 0) {
            if (strlen(v) >= modes_len)
                return xac_err_set(err, XAC_EINVAL, "--mode \"%s\" is too long", v);
            snprintf(modes, modes_len, "%s", v);
        } else if (strcmp(a, "--workload") == 0) {
            wl = v;
        } else if (strcmp(a, "--resources") == 0) {
            if (strlen(v) >= res_len)
                return xac_err_set(err, XAC_EINVAL, "--resources \"%s\" is too long", v);
            snprintf(res_buf, res_len, "%s", v);
            if (split_list(res_buf, o->res, MAX_RES, &o->nres_given) != 0)
                return xac_err_set(err, XAC_EINVAL,
                                   "--resources \"%s\": expected 1 to %d comma-separated names", v,
                                   MAX_RES);
            for (int k = 0; k < o->nres_given; k++)
                if (!xac_valid_name(o->res[k], XAC_RESOURCE_MAX))
                    return xac_err_set(err, XAC_EINVAL,
                                       "--resources: \"%s\" is not a resource name "
                                       "([A-Za-z0-9_-]{1,%d})",
                                       o->res[k], XAC_RESOURCE_MAX);
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
    if ((rc = select_impls(o, modes, wl, err)) != XAC_OK)
        return rc;
    if (o->addr == NULL || o->addr[0] == '\0')
        o->addr = getenv("XAC_ADDR");
    if (o->addr == NULL || o->addr[0] == '\0')
        o->addr = DEFAULT_ADDR;
    if (o->client == NULL || o->client[0] == '\0')
        o->client = getenv("XAC_CLIENT");
    if (o->client == NULL || o->client[0] == '\0')
        return xac_err_set(err, XAC_EINVAL, "no client name: give --client NAME or set XAC_CLIENT");
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void *client_main(void *p)
{
    client *c = p;
    bench *b = c->b;
    c->rc = b->im->open(c, &c->err);
    gate_arrive(&b->start);
    if (c->rc != XAC_OK) {
        atomic_store(&b->fatal, true);
        return NULL;
    }
    bool by_count = b->o->transactions > 0;
    for (;;) {
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
        uint64_t t0 = now_ns();
        int rc = b->im->tx(c, &e);
        uint64_t t1 = now_ns();
        bool measured =
            by_count ? ticket : atomic_load_explicit(&b->phase, memory_order_relaxed) == PH_MEASURE;
        if (rc != XAC_OK) {
            if (c->errors++ == 0)
                c->first = e;
        } else if (measured) {
            hist_add(c->h, t1 - t0);
            c->tx++;
        }
        if (ticket)
            c->last_done_ns = t1;
        if (c->reopen) {
            b->im->close(c);
            c->reopen = false;
            c->rc = b->im->open(c, &c->err);
            if (c->rc != XAC_OK) {
                xac_err_prefix(&c->err, "reconnecting after a lost connection");
                atomic_store(&b->fatal, true);
                return NULL;
            }
        }
    }
    b->im->close(c);
    return NULL;
}

typedef struct point {
    const char *mode, *workload;
    int clients;
    double seconds;
    uint64_t tx, errors;
    double per_s;
    double p50, p95, p99, p999, max; /* ms */
    bool failed;                     /* a client could not (re)connect */
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
    atomic_store(&b->phase, PH_WARMUP);
    atomic_store(&b->fatal, false);
    atomic_store(&b->tickets, (int_fast64_t)o->transactions);
    int rc = XAC_OK;
    b->start = (gate){.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int started = 0;
    for (int i = 0; i < nclients; i++) {
        cs[i] = (client){.b = b, .id = i, .h = &hs[i + 1]};
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
    gate_open_when(&b->start, started);
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
    *pt = (point){.mode = mode_names[b->im->mode], .workload = b->w->name, .clients = nclients};
    uint64_t last = t0;
    int with_errors = 0;
    for (int i = 0; i < started; i++) {
        client *c = &cs[i];
        hist_merge(all, c->h);
        pt->tx += c->tx;
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
                rc = xac_err_prefix(err, "client %d of %d", i + 1, nclients);
            }
        }
    }
    if (with_errors > 1)
        xac_logw("%s/%s, %d clients: %d clients had failed transactions", pt->mode, pt->workload,
                 nclients, with_errors);
    if (o->transactions > 0)
        t1 = last;
    pt->seconds = (double)(t1 - t0) / 1e9;
    pt->per_s = pt->seconds > 0 ? (double)pt->tx / pt->seconds : 0;
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
    xac_out("%-6s %-10s %7s %8s %12s %10s %8s %8s %8s %8s %8s %7s\n", "mode", "workload", "clients",
            "seconds", "transactions", "tx/s", "p50_ms", "p95_ms", "p99_ms", "p99.9_ms", "max_ms",
            "errors");
}

static void print_point(const point *p)
{
    xac_out("%-6s %-10s %7d %8.2f %12" PRIu64 " %10.0f %8.3f %8.3f %8.3f %8.3f %8.3f %7" PRIu64
            "\n",
            p->mode, p->workload, p->clients, p->seconds, p->tx, p->per_s, p->p50, p->p95, p->p99,
            p->p999, p->max, p->errors);
}

static int write_csv(const char *path, const point *pts, int n, xac_err *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return xac_err_set(err, XAC_EIO, "cannot create %s: %s", path, strerror(errno));
    fprintf(f, "mode,workload,clients,seconds,transactions,tx_per_s,p50_ms,p95_ms,p99_ms,"
               "p999_ms,max_ms,errors\n");
    for (int i = 0; i < n; i++) {
        const point *p = &pts[i];
        fprintf(f, "%s,%s,%d,%.3f,%" PRIu64 ",%.1f,%.3f,%.3f,%.3f,%.3f,%.3f,%" PRIu64 "\n", p->mode,
                p->workload, p->clients, p->seconds, p->tx, p->per_s, p->p50, p->p95, p->p99,
                p->p999, p->max, p->errors);
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

/* Throughput (left axis) and p99 (right axis) against clients, one pair of
 * lines per mode x workload, clients on a log scale. */
static int write_plot(const char *path, const opts *o, const point *pts, int n, xac_err *err)
{
    FILE *f = popen("gnuplot", "w");
    if (f == NULL)
        return xac_err_set(err, XAC_EIO, "cannot run gnuplot: %s", strerror(errno));
    fprintf(f, "set terminal pngcairo size 1000,600 noenhanced\nset output ");
    gp_quoted(f, path);
    fprintf(f, "\nset title 'xac-bench: throughput and p99 latency against clients'\n"
               "set xlabel 'clients'\nset logscale x 2\nset ylabel 'transactions/s'\n"
               "set y2label 'p99 latency (ms)'\nset ytics nomirror\nset y2tics\n"
               "set yrange [0:*]\nset y2range [0:*]\nset key outside bottom center horizontal\n"
               "set grid\n");
    for (int s = 0; s < o->nsel; s++) {
        fprintf(f, "$d%d << EOD\n", s);
        for (int i = 0; i < n; i++)
            if (strcmp(pts[i].mode, mode_names[o->sel[s]->mode]) == 0)
                fprintf(f, "%d %.1f %.3f\n", pts[i].clients, pts[i].per_s, pts[i].p99);
        fprintf(f, "EOD\n");
    }
    fprintf(f, "plot ");
    for (int s = 0; s < o->nsel; s++) {
        const char *m = mode_names[o->sel[s]->mode];
        const char *w = o->selw[s]->name;
        fprintf(f,
                "%s$d%d using 1:2 axes x1y1 with linespoints lw 2 title '%s %s tx/s', "
                "$d%d using 1:3 axes x1y2 with linespoints dt 2 title '%s %s p99 ms'",
                s > 0 ? ", " : "", s, m, w, s, m, w);
    }
    fprintf(f, "\n");
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

static int run(const opts *o, point *pts, int *npts, xac_err *err)
{
    *npts = 0;
    int rc = XAC_OK;
    log_load("before");
    print_head();
    xac_out_flush();
    for (int s = 0; s < o->nsel && rc == XAC_OK; s++) {
        bench b = {.o = o, .im = o->sel[s], .w = o->selw[s]};
        for (int i = 0; i < b.w->nres; i++)
            b.res[i] = o->nres_given > 0 ? o->res[i] : b.w->res[i];
        char names[MAX_RES * (XAC_RESOURCE_MAX + 2)] = "";
        for (int i = 0; i < b.w->nres; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "," : "",
                     b.res[i]);
        xac_logi("mode %s, workload %s: %s; resources %s", mode_names[b.im->mode], b.w->name,
                 b.w->what, names);
        for (int i = 0; i < o->npoints; i++) {
            xac_logi("%s/%s: %d client(s), warm-up %.1f s, then %s", mode_names[b.im->mode],
                     b.w->name, o->clients[i], o->warmup,
                     o->transactions > 0 ? "a fixed number of transactions" : "a fixed time");
            point *pt = &pts[*npts];
            rc = run_point(&b, o->clients[i], pt, err);
            (*npts)++;
            print_point(pt);
            xac_out_flush();
            if (rc != XAC_OK)
                break;
        }
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
    char modes[128], res_buf[3 * (XAC_RESOURCE_MAX + 1) + 1];
    int rc = parse_args(argc, argv, &o, modes, sizeof modes, res_buf, sizeof res_buf, &err);
    if (rc == 1) {
        usage();
        xac_out_flush();
        return 0;
    }
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        return 2;
    }
    if (o.plot != NULL && !have_gnuplot()) {
        xac_loge("--plot needs gnuplot, which is not on PATH (Debian: apt-get install "
                 "gnuplot-nox); nothing was measured");
        return 2;
    }
    static point pts[MAX_POINTS * MAX_SEL];
    int npts;
    rc = run(&o, pts, &npts, &err);
    int status = 0;
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        status = 1;
    }
    for (int i = 0; i < npts; i++)
        if (pts[i].errors > 0 || pts[i].failed)
            status = 1;
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
    if (status != 0 && rc == XAC_OK)
        xac_loge("some transactions failed (errors column); the figures above are not valid");
    xac_out_flush();
    return status;
}
