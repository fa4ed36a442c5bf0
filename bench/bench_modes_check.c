/* A standalone runner for xac-bench's `direct` and `local` modes with no
 * xacd (xac-bench runs them next to the xac mode; this is for trying a
 * driver change in one mode alone): for each workload it creates the accounts
 * tables, then runs every mode at every client count for a fixed time and
 * prints throughput and latency percentiles, after checking that the run
 * kept the money and committed exactly the updates it counted. It needs the
 * databases of tests/fixtures/db.sh (source the env.sh it writes). Exit
 * status 0 only when every run worked and every check held, 77 when the
 * databases' variables are not set; it asserts nothing about speed.
 *
 *   bench_modes_check [--seconds S] [--clients 1,4] [--modes direct,local]
 *                     [--workloads transfer2,transfer3,one,readmostly]
 *                     [--accounts N] [--csv FILE] */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_workload.h"

#define MAX_LIST 16

typedef struct opts {
    double seconds;
    unsigned clients[MAX_LIST];
    size_t nclients;
    const bench_mode_ops *modes[MAX_LIST];
    size_t nmodes;
    bench_workload wl[MAX_LIST];
    size_t nwl;
    uint32_t accounts;
    bool help;
    const char *csv_path;
    FILE *csv; /* NULL: no CSV */
} opts;

/* Clients connect first; the clock starts when all of them are connected. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned opened; /* clients whose open returned */
    bool go;
} gate;

static void gate_opened(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->opened++;
    pthread_cond_broadcast(&g->cv);
    while (!g->go)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_wait_open(gate *g, unsigned n)
{
    pthread_mutex_lock(&g->mu);
    while (g->opened < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->go = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct worker {
    const bench_mode_ops *mode;
    const bench_target *t;
    const bench_workload *w;
    unsigned id;
    struct gate *gate;
    atomic_bool *stop;
    void *client;
    int open_rc;
    uint64_t committed;
    uint64_t rolled_back;
    int fail_rc; /* the error that stopped it, XAC_OK when none */
    xac_err err;
    uint32_t *lat_us; /* committed transactions' latencies */
    size_t nlat, cap;
} worker;

static void *worker_main(void *arg)
{
    worker *k = arg;
    k->open_rc = k->mode->open(k->t, k->w, k->id, &k->client, &k->err);
    /* The main thread sets stop before the gate opens when anything failed. */
    gate_opened(k->gate);
    if (k->open_rc != XAC_OK)
        return NULL;
    for (uint64_t seq = 1; !atomic_load_explicit(k->stop, memory_order_relaxed); seq++) {
        uint64_t t0 = xac_now_mono_us();
        int rc = k->mode->tx(k->client, seq, &k->err);
        uint64_t dt = xac_now_mono_us() - t0;
        if (rc == XAC_EROLLBACK) {
            k->rolled_back++;
            continue;
        }
        if (rc != XAC_OK) {
            k->fail_rc = rc;
            break;
        }
        k->committed++;
        if (k->nlat == k->cap) {
            size_t cap = k->cap ? k->cap * 2 : 4096;
            uint32_t *p = realloc(k->lat_us, cap * sizeof *p);
            if (p == NULL) {
                k->fail_rc = xac_err_set(&k->err, XAC_ENOMEM, "out of memory for latencies");
                break;
            }
            k->lat_us = p;
            k->cap = cap;
        }
        k->lat_us[k->nlat++] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint32_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

/* One mode at one client count. Returns XAC_OK when the run and its check
 * worked. */
static int run_point(const opts *o, const bench_target *t, const bench_workload *w,
                     const bench_mode_ops *mode, unsigned nclients, xac_err *err)
{
    bench_totals before, after;
    int rc = bench_totals_read(t, w, &before, err);
    if (rc != XAC_OK)
        return rc;
    worker *k = calloc(nclients, sizeof *k);
    pthread_t *th = calloc(nclients, sizeof *th);
    if (k == NULL || th == NULL) {
        free(k);
        free(th);
        return xac_err_set(err, XAC_ENOMEM, "out of memory");
    }
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    atomic_bool stop = false;
    unsigned started = 0;
    rc = XAC_OK;
    for (unsigned i = 0; i < nclients; i++) {
        k[i] = (worker){.mode = mode, .t = t, .w = w, .id = i, .gate = &g, .stop = &stop};
        if (pthread_create(&th[i], NULL, worker_main, &k[i]) != 0) {
            rc = xac_err_set(err, XAC_EINTERNAL, "cannot start client thread %u", i);
            break;
        }
        started++;
    }
    gate_wait_open(&g, started);
    for (unsigned i = 0; i < nclients; i++) {
        if (k[i].open_rc != XAC_OK && rc == XAC_OK) {
            rc = k[i].open_rc;
            *err = k[i].err;
        }
    }
    if (rc != XAC_OK)
        atomic_store(&stop, true);
    uint64_t t0 = xac_now_mono_us();
    gate_open(&g);
    struct timespec ts = {.tv_sec = (time_t)o->seconds,
                          .tv_nsec = (long)((o->seconds - (double)(time_t)o->seconds) * 1e9)};
    if (rc == XAC_OK)
        nanosleep(&ts, NULL);
    atomic_store(&stop, true);
    uint64_t committed = 0, rolled_back = 0, nlat = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        committed += k[i].committed;
        rolled_back += k[i].rolled_back;
        nlat += k[i].nlat;
    }
    double elapsed = (double)(xac_now_mono_us() - t0) / 1e6;
    uint32_t *all = malloc((nlat ? nlat : 1) * sizeof *all);
    size_t at = 0;
    for (unsigned i = 0; i < started; i++) {
        if (all != NULL && k[i].nlat > 0)
            memcpy(all + at, k[i].lat_us, k[i].nlat * sizeof *all);
        at += k[i].nlat;
        if (k[i].fail_rc != XAC_OK && rc == XAC_OK) {
            rc = k[i].fail_rc;
            *err = k[i].err;
        }
        if (k[i].client != NULL)
            mode->close(k[i].client);
        free(k[i].lat_us);
    }
    if (all != NULL)
        qsort(all, nlat, sizeof *all, cmp_u32);
    double tps = (double)committed / elapsed, p50 = 0, p99 = 0, p999 = 0;
    if (all != NULL) {
        p50 = pct(all, nlat, 0.50);
        p99 = pct(all, nlat, 0.99);
        p999 = pct(all, nlat, 0.999);
    }
    if (rc == XAC_OK && all != NULL) {
        xac_out("%-10s %-7s %7u %9.0f %9.2f %9.2f %9.2f %9" PRIu64 " %7" PRIu64 "\n",
                bench_workload_name(w), mode->name, nclients, tps, p50, p99, p999, committed,
                rolled_back);
        xac_out_flush();
    }
    free(all);
    free(k);
    free(th);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "%s %s at %u clients", bench_workload_name(w), mode->name,
                              nclients);
    if ((rc = bench_totals_read(t, w, &after, err)) != XAC_OK)
        return rc;
    rc = bench_check(w, &before, &after, committed, err);
    if (o->csv != NULL) {
        fprintf(o->csv, "%s,%s,%u,%.3f,%" PRIu64 ",%" PRIu64 ",%.1f,%.3f,%.3f,%.3f,%s\n",
                bench_workload_name(w), mode->name, nclients, elapsed, committed, rolled_back, tps,
                p50, p99, p999, rc == XAC_OK ? "ok" : "FAILED");
        fflush(o->csv);
    }
    if (rc != XAC_OK)
        return xac_err_prefix(err, "%s %s at %u clients: check", bench_workload_name(w), mode->name,
                              nclients);
    return XAC_OK;
}

static int parse_list(const char *s, char out[MAX_LIST][32], size_t *n, xac_err *err)
{
    *n = 0;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        if (*n == MAX_LIST || len == 0 || len >= 32)
            return xac_err_set(err, XAC_EINVAL, "bad list: \"%s\"", s);
        memcpy(out[*n], s, len);
        out[(*n)++][len] = '\0';
        s += len;
        if (*s == ',')
            s++;
    }
    return XAC_OK;
}

static int parse_args(int argc, char **argv, opts *o, xac_err *err)
{
    memset(o, 0, sizeof *o);
    o->seconds = 1.0;
    const char *clients = "1,4", *modes = "direct,local",
               *wls = "transfer2,transfer3,one,readmostly";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            o->help = true;
            return XAC_OK;
        }
        if (v == NULL)
            return xac_err_set(err, XAC_EINVAL, "%s: a value is missing", a);
        if (strcmp(a, "--seconds") == 0)
            o->seconds = strtod(v, NULL);
        else if (strcmp(a, "--clients") == 0)
            clients = v;
        else if (strcmp(a, "--modes") == 0)
            modes = v;
        else if (strcmp(a, "--workloads") == 0)
            wls = v;
        else if (strcmp(a, "--accounts") == 0)
            o->accounts = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--csv") == 0)
            o->csv_path = v;
        else
            return xac_err_set(err, XAC_EINVAL,
                               "unknown option %s (--seconds --clients --modes --workloads "
                               "--accounts --csv)",
                               a);
        i++;
    }
    if (o->seconds <= 0 || o->seconds > 3600)
        return xac_err_set(err, XAC_EINVAL, "--seconds must be in (0, 3600]");
    char l[MAX_LIST][32];
    size_t n;
    int rc;
    if ((rc = parse_list(clients, l, &n, err)) != XAC_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        unsigned long c = strtoul(l[i], NULL, 10);
        if (c == 0 || c > 1024)
            return xac_err_set(err, XAC_EINVAL, "bad client count \"%s\"", l[i]);
        o->clients[o->nclients++] = (unsigned)c;
    }
    if ((rc = parse_list(modes, l, &n, err)) != XAC_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i], "direct") == 0)
            o->modes[o->nmodes++] = &bench_direct_ops;
        else if (strcmp(l[i], "local") == 0)
            o->modes[o->nmodes++] = &bench_local_ops;
        else
            return xac_err_set(err, XAC_EINVAL, "unknown mode \"%s\" (direct, local)", l[i]);
    }
    if ((rc = parse_list(wls, l, &n, err)) != XAC_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = bench_workload_parse(l[i], o->accounts, &o->wl[o->nwl++], err)) != XAC_OK)
            return rc;
    return XAC_OK;
}

int main(int argc, char **argv)
{
    xac_err err;
    xac_err_clear(&err);
    if (xac_log_init("bench_modes_check", XAC_LOG_INFO, NULL, &err) != XAC_OK)
        return 2;
    opts o;
    bench_target t;
    if (parse_args(argc, argv, &o, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return 2;
    }
    if (o.help) {
        xac_out("usage: bench_modes_check [--seconds S] [--clients 1,4] [--modes direct,local]\n"
                "         [--workloads transfer2,transfer3,one,readmostly] [--accounts N]\n"
                "         [--csv FILE]\n"
                "Needs the variables of the env.sh that tests/fixtures/db.sh start writes\n"
                "(bench/db_tune.sh start DIR for production settings).\n");
        xac_out_flush();
        return 0;
    }
    if (bench_target_from_env(&t, &err) != XAC_OK) {
        /* 77: ctest's "skipped", for a run with no databases. */
        xac_loge("%s; skipped", err.msg);
        return err.code == XAC_ECONFIG ? 77 : 2;
    }
    if (o.csv_path != NULL) {
        o.csv = fopen(o.csv_path, "w");
        if (o.csv == NULL) {
            xac_loge("cannot write %s: %s", o.csv_path, strerror(errno));
            return 2;
        }
        fprintf(o.csv, "workload,mode,clients,seconds,committed,rolled_back,tx_per_s,p50_ms,"
                       "p99_ms,p999_ms,check\n");
    }
    int failures = 0;
    xac_out("%-10s %-7s %7s %9s %9s %9s %9s %9s %7s\n", "workload", "mode", "clients", "tx/s",
            "p50_ms", "p99_ms", "p999_ms", "committed", "rolledb");
    for (size_t wi = 0; wi < o.nwl; wi++) {
        if (bench_setup(&t, &o.wl[wi], &err) != XAC_OK) {
            xac_loge("%s", err.msg);
            return 1;
        }
        for (size_t mi = 0; mi < o.nmodes; mi++) {
            for (size_t ci = 0; ci < o.nclients; ci++) {
                if (run_point(&o, &t, &o.wl[wi], o.modes[mi], o.clients[ci], &err) != XAC_OK) {
                    xac_loge("%s", err.msg);
                    failures++;
                }
            }
        }
    }
    xac_out_flush();
    if (o.csv != NULL && fclose(o.csv) != 0) {
        xac_loge("writing %s: %s", o.csv_path, strerror(errno));
        failures++;
    }
    return failures == 0 ? 0 : 1;
}
