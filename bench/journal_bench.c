/* Benchmark of the decision journal: group-commit throughput and latency for
 * several client counts, the raw fdatasync rate of the same directory (the
 * ceiling a one-sync-per-decision journal would hit), and the time to replay a
 * large journal at open. It also checks what it can check cheaply (no commit
 * fails, replay finds exactly the expected pending set) so that a smoke run in
 * ctest catches a broken journal; it asserts nothing about speed. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "xac_common.h"

#define MAX_POINTS      32
#define BUILD_THREADS   256
#define PENDING_EVERY   100 /* one build record in this many is left without END */
#define RAW_RECORD_SIZE 64

typedef struct opts {
    const char *dir;
    double seconds;
    int clients[MAX_POINTS];
    int npoints;
    uint64_t replay_records;
    const char *csv;
} opts;

/* One row of results; replay rows reuse decisions/decisions_per_s for records. */
typedef struct row {
    const char *test;
    int clients;
    double seconds;
    uint64_t decisions;
    double per_s;
    uint64_t syncs;
    double per_sync;
    uint32_t p50_us;
    uint32_t p99_us;
    double raw_fsync_per_s;
    double ratio;
} row;

typedef struct client_arg {
    journal *j;
    int id;
    uint64_t boot;
    atomic_bool *stop;
    atomic_int *ready;
    atomic_bool *go;
    uint32_t *lat;
    size_t nlat;
    size_t caplat;
    uint64_t commits;
    int rc;
    xac_err err;
} client_arg;

typedef struct build_arg {
    journal *j;
    int id;
    uint64_t boot;
    atomic_uint_fast64_t *next; /* next record number to take */
    atomic_uint_fast64_t *done;
    atomic_int *failed; /* threads that stopped on an error */
    uint64_t total;
    uint64_t pending; /* records this thread left without END */
    int rc;
    xac_err err;
} build_arg;

static void usage(void)
{
    xac_out("usage: journal_bench [--dir DIR] [--seconds S] [--clients LIST] "
            "[--replay-records N] [--csv FILE] [--help]\n"
            "  --dir DIR             work in DIR (kept afterwards; must not hold earlier "
            "bench output)\n"
            "                        default: a temporary directory under the current "
            "directory, removed at the end\n"
            "  --seconds S           seconds per measurement point (default 3)\n"
            "  --clients LIST        comma-separated client counts (default 1,8,64,256)\n"
            "  --replay-records N    COMMIT records in the replay journal (default 1000000)\n"
            "  --csv FILE            write CSV to FILE instead of stdout\n");
}

static int parse_clients(const char *s, opts *o, xac_err *err)
{
    o->npoints = 0;
    const char *p = s;
    while (*p != '\0') {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < 1 || v > 4096 || (*end != ',' && *end != '\0'))
            return xac_err_set(err, XAC_EINVAL,
                               "--clients \"%s\": expected a comma-separated list of numbers "
                               "1..4096",
                               s);
        if (o->npoints == MAX_POINTS)
            return xac_err_set(err, XAC_EINVAL, "--clients \"%s\": at most %d points", s,
                               MAX_POINTS);
        o->clients[o->npoints++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    if (o->npoints == 0)
        return xac_err_set(err, XAC_EINVAL, "--clients is empty");
    return XAC_OK;
}

/* Returns 1 when --help was asked for. */
static int parse_args(int argc, char **argv, opts *o, xac_err *err)
{
    o->dir = NULL;
    o->seconds = 3.0;
    o->replay_records = 1000000;
    o->csv = NULL;
    int rc = parse_clients("1,8,64,256", o, err);
    if (rc != XAC_OK)
        return rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (i + 1 >= argc)
            return xac_err_set(err, XAC_EINVAL, "%s: unknown option or missing value (see --help)",
                               a);
        const char *v = argv[++i];
        char *end;
        if (strcmp(a, "--dir") == 0) {
            o->dir = v;
        } else if (strcmp(a, "--seconds") == 0) {
            errno = 0;
            o->seconds = strtod(v, &end);
            if (end == v || *end != '\0' || errno != 0 || !(o->seconds > 0 && o->seconds < 3600))
                return xac_err_set(err, XAC_EINVAL, "--seconds \"%s\": expected 0 < S < 3600", v);
        } else if (strcmp(a, "--clients") == 0) {
            rc = parse_clients(v, o, err);
            if (rc != XAC_OK)
                return rc;
        } else if (strcmp(a, "--replay-records") == 0) {
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (end == v || *end != '\0' || errno != 0 || v[0] == '-' || n > 100000000ULL)
                return xac_err_set(err, XAC_EINVAL,
                                   "--replay-records \"%s\": expected 0..100000000", v);
            o->replay_records = n;
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = v;
        } else {
            return xac_err_set(err, XAC_EINVAL, "unknown option %s (see --help)", a);
        }
    }
    return XAC_OK;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0)
        xac_logw("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_subdir(const char *base, const char *name, char *out, size_t outlen, xac_err *err)
{
    int n = snprintf(out, outlen, "%s/%s", base, name);
    if (n < 0 || (size_t)n >= outlen)
        return xac_err_set(err, XAC_EINVAL, "directory name %s/%s is too long", base, name);
    if (mkdir(out, 0700) != 0) {
        int e = errno;
        if (e == EEXIST)
            return xac_err_set(err, XAC_EIO,
                               "%s already exists: give --dir an empty or new directory", out);
        return xac_err_set(err, XAC_EIO, "cannot create %s: %s (errno %d)", out, strerror(e), e);
    }
    return XAC_OK;
}

static double secs_since(uint64_t t0)
{
    return (double)(xac_now_mono_us() - t0) / 1e6;
}

static void fill_txn(journal_txn *t, const char *gtrid)
{
    memset(t, 0, sizeof *t);
    snprintf(t->gtrid, sizeof t->gtrid, "%s", gtrid);
    t->nbranches = 2;
    snprintf(t->resources[0], sizeof t->resources[0], "orders_mariadb");
    snprintf(t->resources[1], sizeof t->resources[1], "billing_pg");
    t->decided_us = 0;
}

/* ------------------------------------------------------------ raw fdatasync */

static int raw_fsync_rate(const char *dir, double seconds, row *r, xac_err *err)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/raw.dat", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return xac_err_set(err, XAC_EINVAL, "path %s/raw.dat is too long", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return xac_err_set(err, XAC_EIO, "cannot create %s: %s (errno %d)", path, strerror(errno),
                           errno);
    char rec[RAW_RECORD_SIZE];
    memset(rec, 'r', sizeof rec);
    uint64_t syncs = 0;
    uint64_t t0 = xac_now_mono_us();
    uint64_t limit = (uint64_t)(seconds * 1e6);
    int rc = XAC_OK;
    while (xac_now_mono_us() - t0 < limit) {
        ssize_t w = write(fd, rec, sizeof rec);
        if (w != (ssize_t)sizeof rec) {
            rc = xac_err_set(err, XAC_EIO, "write to %s failed: %s", path,
                             w < 0 ? strerror(errno) : "short write");
            break;
        }
        if (fdatasync(fd) != 0) {
            rc = xac_err_set(err, XAC_EIO, "fdatasync of %s failed: %s (errno %d)", path,
                             strerror(errno), errno);
            break;
        }
        syncs++;
    }
    double el = secs_since(t0);
    close(fd);
    *r = (row){.test = "raw_fsync",
               .clients = 1,
               .seconds = el,
               .syncs = syncs,
               .raw_fsync_per_s = el > 0 ? (double)syncs / el : 0};
    return rc;
}

/* ---------------------------------------------------------- commit clients */

static int lat_push(client_arg *a, uint64_t us)
{
    if (a->nlat == a->caplat) {
        size_t nc = a->caplat ? a->caplat * 2 : 4096;
        uint32_t *p = realloc(a->lat, nc * sizeof *p);
        if (p == NULL)
            return -1;
        a->lat = p;
        a->caplat = nc;
    }
    a->lat[a->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    return 0;
}

static void *client_main(void *p)
{
    client_arg *a = p;
    char node[XAC_NODE_ID_MAX + 1];
    snprintf(node, sizeof node, "bench-c%d", a->id);
    journal_txn t;
    atomic_fetch_add(a->ready, 1);
    while (!atomic_load(a->go))
        sched_yield();
    for (uint64_t seq = 1; !atomic_load_explicit(a->stop, memory_order_relaxed); seq++) {
        char g[XAC_GTRID_MAX + 1];
        a->rc = xac_gtrid_make(g, node, a->boot, seq, &a->err);
        if (a->rc != XAC_OK)
            break;
        fill_txn(&t, g);
        uint64_t t0 = xac_now_mono_us();
        bool in_doubt;
        a->rc = journal_commit(a->j, &t, &in_doubt, &a->err);
        uint64_t dt = xac_now_mono_us() - t0;
        if (a->rc != XAC_OK)
            break;
        a->commits++;
        if (lat_push(a, dt) != 0) {
            a->rc = xac_err_set(&a->err, XAC_ENOMEM, "out of memory recording latencies");
            break;
        }
        a->rc = journal_end(a->j, g, &a->err);
        if (a->rc != XAC_OK)
            break;
    }
    return NULL;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static uint32_t pct(const uint32_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static int run_clients(const char *base, int clients, double seconds, row *r, xac_err *err)
{
    char name[32], dir[4096];
    snprintf(name, sizeof name, "clients-%d", clients);
    int rc = make_subdir(base, name, dir, sizeof dir, err);
    if (rc != XAC_OK)
        return rc;
    journal *j;
    rc = journal_open(dir, 0, &j, err);
    if (rc != XAC_OK)
        return rc;
    journal_stats st0, st1;
    journal_get_stats(j, &st0);

    client_arg *args = calloc((size_t)clients, sizeof *args);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    if (args == NULL || th == NULL) {
        free(args);
        free(th);
        journal_close(j);
        return xac_err_set(err, XAC_ENOMEM, "out of memory starting %d clients", clients);
    }
    atomic_bool stop = false, go = false;
    atomic_int ready = 0;
    uint64_t boot = xac_now_wall_us();
    int started = 0;
    for (int i = 0; i < clients; i++) {
        args[i] =
            (client_arg){.j = j, .id = i, .boot = boot, .stop = &stop, .ready = &ready, .go = &go};
        int e = pthread_create(&th[i], NULL, client_main, &args[i]);
        if (e != 0) {
            rc = xac_err_set(err, XAC_EINTERNAL, "cannot start client thread %d of %d: %s", i + 1,
                             clients, strerror(e));
            break;
        }
        started++;
    }
    while (atomic_load(&ready) < started)
        sched_yield();
    uint64_t t0 = xac_now_mono_us();
    atomic_store(&go, true);
    if (rc == XAC_OK) {
        struct timespec ts = {.tv_sec = (time_t)seconds,
                              .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double el = secs_since(t0);
    journal_get_stats(j, &st1);

    uint64_t total = 0;
    size_t nlat = 0;
    for (int i = 0; i < started; i++) {
        total += args[i].commits;
        nlat += args[i].nlat;
        if (rc == XAC_OK && args[i].rc != XAC_OK) {
            *err = args[i].err;
            rc = xac_err_prefix(err, "client %d of %d", i + 1, clients);
        }
    }
    uint32_t *all = malloc((nlat ? nlat : 1) * sizeof *all);
    if (all == NULL && rc == XAC_OK)
        rc = xac_err_set(err, XAC_ENOMEM, "out of memory sorting %zu latencies", nlat);
    size_t k = 0;
    for (int i = 0; i < started; i++) {
        if (all != NULL)
            memcpy(all + k, args[i].lat, args[i].nlat * sizeof *all);
        k += args[i].nlat;
        free(args[i].lat);
    }
    if (all != NULL)
        qsort(all, nlat, sizeof *all, cmp_u32);

    uint64_t syncs = st1.syncs - st0.syncs;
    *r = (row){.test = "commit",
               .clients = clients,
               .seconds = el,
               .decisions = total,
               .per_s = el > 0 ? (double)total / el : 0,
               .syncs = syncs,
               .per_sync = syncs ? (double)total / (double)syncs : 0,
               .p50_us = all ? pct(all, nlat, 0.50) : 0,
               .p99_us = all ? pct(all, nlat, 0.99) : 0};
    if (rc == XAC_OK && (st1.commits - st0.commits != total || st1.pending != 0 || st1.failed))
        rc = xac_err_set(err, XAC_EINTERNAL,
                         "journal %s: stats disagree with the clients: %" PRIu64
                         " commits counted by the journal, %" PRIu64
                         " by the clients, %zu pending (expected 0), failed=%d",
                         dir, st1.commits - st0.commits, total, st1.pending, (int)st1.failed);
    free(all);
    free(args);
    free(th);
    journal_close(j);
    return rc;
}

/* ------------------------------------------------------------------ replay */

static void *build_main(void *p)
{
    build_arg *a = p;
    char node[XAC_NODE_ID_MAX + 1];
    snprintf(node, sizeof node, "bench-b%d", a->id);
    journal_txn t;
    for (;;) {
        uint64_t n = atomic_fetch_add(a->next, 1);
        if (n >= a->total)
            break;
        char g[XAC_GTRID_MAX + 1];
        a->rc = xac_gtrid_make(g, node, a->boot, n + 1, &a->err);
        if (a->rc != XAC_OK)
            break;
        fill_txn(&t, g);
        bool in_doubt;
        a->rc = journal_commit(a->j, &t, &in_doubt, &a->err);
        if (a->rc != XAC_OK)
            break;
        if (n % PENDING_EVERY == 0) {
            a->pending++;
        } else {
            a->rc = journal_end(a->j, g, &a->err);
            if (a->rc != XAC_OK)
                break;
        }
        atomic_fetch_add(a->done, 1);
    }
    if (a->rc != XAC_OK)
        atomic_fetch_add(a->failed, 1);
    return NULL;
}

/* Writes the replay journal; *records is every COMMIT and END written. */
static int build_journal(const char *dir, uint64_t total, uint64_t *records, uint64_t *pending,
                         xac_err *err)
{
    journal *j;
    int rc = journal_open(dir, 0, &j, err);
    if (rc != XAC_OK)
        return rc;
    build_arg args[BUILD_THREADS];
    pthread_t th[BUILD_THREADS];
    atomic_uint_fast64_t next = 0, done = 0;
    atomic_int failed = 0;
    uint64_t boot = xac_now_wall_us();
    int started = 0;
    for (int i = 0; i < BUILD_THREADS; i++) {
        args[i] = (build_arg){.j = j,
                              .id = i,
                              .boot = boot,
                              .next = &next,
                              .done = &done,
                              .failed = &failed,
                              .total = total};
        int e = pthread_create(&th[i], NULL, build_main, &args[i]);
        if (e != 0) {
            rc = xac_err_set(err, XAC_EINTERNAL, "cannot start build thread %d: %s", i + 1,
                             strerror(e));
            atomic_store(&next, total); /* makes the started ones stop */
            break;
        }
        started++;
    }
    uint64_t t0 = xac_now_mono_us();
    uint64_t last = t0;
    for (;;) {
        bool all_done = atomic_load(&done) >= total || atomic_load(&next) >= total + started;
        if (all_done)
            break;
        /* A failed thread stops taking numbers; the rest still finish theirs. */
        if (atomic_load(&failed) > 0) {
            atomic_store(&next, total);
            break;
        }
        usleep(20000);
        uint64_t now = xac_now_mono_us();
        if (now - last >= 1000000) {
            last = now;
            uint64_t d = atomic_load(&done);
            double el = (double)(now - t0) / 1e6;
            xac_logi("building replay journal: %" PRIu64 " of %" PRIu64
                     " commits (%.0f%%), %.0f commits/s",
                     d, total, 100.0 * (double)d / (double)(total ? total : 1), (double)d / el);
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    *pending = 0;
    for (int i = 0; i < started; i++) {
        *pending += args[i].pending;
        if (rc == XAC_OK && args[i].rc != XAC_OK) {
            *err = args[i].err;
            rc = xac_err_prefix(err, "building the replay journal, thread %d", i + 1);
        }
    }
    journal_stats st;
    journal_get_stats(j, &st);
    *records = st.commits + st.ends;
    if (rc == XAC_OK && (st.commits != total || st.pending != *pending))
        rc = xac_err_set(err, XAC_EINTERNAL,
                         "replay journal %s: %" PRIu64 " commits written (expected %" PRIu64
                         "), %zu pending (expected %" PRIu64 ")",
                         dir, st.commits, total, st.pending, *pending);
    xac_logi("built replay journal: %" PRIu64 " records (%" PRIu64 " COMMIT, %" PRIu64
             " END) in %.1f s, %" PRIu64 " syncs",
             *records, st.commits, st.ends, secs_since(t0), st.syncs);
    journal_close(j); /* writes the END records still pending */
    return rc;
}

static int run_replay(const char *base, uint64_t total, row *r, xac_err *err)
{
    char dir[4096];
    int rc = make_subdir(base, "replay", dir, sizeof dir, err);
    if (rc != XAC_OK)
        return rc;
    uint64_t written, pending;
    rc = build_journal(dir, total, &written, &pending, err);
    if (rc != XAC_OK)
        return rc;
    journal *j;
    uint64_t t0 = xac_now_mono_us();
    rc = journal_open(dir, 0, &j, err);
    double el = secs_since(t0);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "replaying %s", dir);
    journal_stats st;
    journal_get_stats(j, &st);
    journal_close(j);
    *r = (row){.test = "replay",
               .seconds = el,
               .decisions = st.replayed,
               .per_s = el > 0 ? (double)st.replayed / el : 0};
    if (st.pending != pending || st.replayed != written)
        return xac_err_set(err, XAC_EINTERNAL,
                           "replay of %s found %zu pending transactions and %" PRIu64
                           " records; expected %" PRIu64 " pending and %" PRIu64 " records",
                           dir, st.pending, st.replayed, pending, written);
    return XAC_OK;
}

/* ------------------------------------------------------------------ output */

static int csv_append(xac_buf *b, const row *r, xac_err *err)
{
    char line[512];
    int n;
    if (strcmp(r->test, "replay") == 0)
        n = snprintf(line, sizeof line, "replay,,%.3f,%" PRIu64 ",%.0f,,,,,,\n", r->seconds,
                     r->decisions, r->per_s);
    else if (strcmp(r->test, "raw_fsync") == 0)
        n = snprintf(line, sizeof line, "raw_fsync,1,%.3f,,,%" PRIu64 ",,,,%.0f,\n", r->seconds,
                     r->syncs, r->raw_fsync_per_s);
    else
        n = snprintf(line, sizeof line,
                     "commit,%d,%.3f,%" PRIu64 ",%.0f,%" PRIu64 ",%.2f,%" PRIu32 ",%" PRIu32
                     ",%.0f,%.2f\n",
                     r->clients, r->seconds, r->decisions, r->per_s, r->syncs, r->per_sync,
                     r->p50_us, r->p99_us, r->raw_fsync_per_s, r->ratio);
    return xac_buf_put(b, line, (size_t)n, err);
}

static int write_file(const char *path, const xac_buf *b, xac_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return xac_err_set(err, XAC_EIO, "cannot create CSV file %s: %s (errno %d)", path,
                           strerror(errno), errno);
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            return xac_err_set(err, XAC_EIO, "cannot write CSV file %s: %s (errno %d)", path,
                               strerror(e), e);
        }
        off += (size_t)w;
    }
    if (close(fd) != 0)
        return xac_err_set(err, XAC_EIO, "cannot write CSV file %s: %s", path, strerror(errno));
    return XAC_OK;
}

static void print_table(const row *rows, int n, double raw, const row *replay)
{
    xac_out("\nraw fdatasync (64-byte append + fdatasync, one thread): %.0f syncs/s\n\n", raw);
    xac_out("%8s %8s %10s %12s %8s %10s %8s %8s %8s\n", "clients", "seconds", "decisions",
            "decisions/s", "syncs", "dec/sync", "p50_us", "p99_us", "ratio");
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        xac_out("%8d %8.2f %10" PRIu64 " %12.0f %8" PRIu64 " %10.2f %8" PRIu32 " %8" PRIu32
                " %8.2f\n",
                r->clients, r->seconds, r->decisions, r->per_s, r->syncs, r->per_sync, r->p50_us,
                r->p99_us, r->ratio);
    }
    xac_out("(ratio = decisions/s / raw fdatasync/s)\n");
    if (replay != NULL)
        xac_out("\nreplay: %" PRIu64 " records in %.3f s = %.0f records/s\n", replay->decisions,
                replay->seconds, replay->per_s);
    xac_out("\n");
}

/* -------------------------------------------------------------------- main */

static int run(const opts *o, const char *base, xac_err *err)
{
    row rows[MAX_POINTS + 2];
    int nrows = 0;
    char rawdir[4096];
    int rc = make_subdir(base, "raw", rawdir, sizeof rawdir, err);
    if (rc != XAC_OK)
        return rc;
    row rawrow = {0};
    xac_logi("measuring raw fdatasync rate in %s for %.1f s", rawdir, o->seconds);
    rc = raw_fsync_rate(rawdir, o->seconds, &rawrow, err);
    if (rc != XAC_OK)
        return rc;
    double raw = rawrow.raw_fsync_per_s;
    for (int i = 0; i < o->npoints; i++) {
        xac_logi("measuring %d client(s) for %.1f s", o->clients[i], o->seconds);
        rc = run_clients(base, o->clients[i], o->seconds, &rows[nrows], err);
        if (rc != XAC_OK)
            return rc;
        rows[nrows].raw_fsync_per_s = raw;
        rows[nrows].ratio = raw > 0 ? rows[nrows].per_s / raw : 0;
        nrows++;
    }
    row replay = {0};
    bool have_replay = o->replay_records > 0;
    if (have_replay) {
        xac_logi("building a replay journal of %" PRIu64 " COMMIT records", o->replay_records);
        rc = run_replay(base, o->replay_records, &replay, err);
        if (rc != XAC_OK)
            return rc;
    }
    print_table(rows, nrows, raw, have_replay ? &replay : NULL);

    xac_buf csv;
    xac_buf_init(&csv);
    const char *hdr = "test,clients,seconds,decisions,decisions_per_s,syncs,decisions_per_sync,"
                      "p50_us,p99_us,raw_fsync_per_s,ratio\n";
    rc = xac_buf_put(&csv, hdr, strlen(hdr), err);
    if (rc == XAC_OK)
        rc = csv_append(&csv, &rawrow, err);
    for (int i = 0; rc == XAC_OK && i < nrows; i++)
        rc = csv_append(&csv, &rows[i], err);
    if (rc == XAC_OK && have_replay)
        rc = csv_append(&csv, &replay, err);
    if (rc == XAC_OK) {
        if (o->csv != NULL) {
            rc = write_file(o->csv, &csv, err);
        } else {
            xac_out_write(csv.data, csv.len);
            xac_out_flush();
        }
    }
    xac_buf_free(&csv);
    return rc;
}

int main(int argc, char **argv)
{
    xac_err err;
    xac_err_clear(&err);
    if (xac_log_init("journal_bench", XAC_LOG_INFO, NULL, &err) != XAC_OK)
        return 2;
    opts o;
    int rc = parse_args(argc, argv, &o, &err);
    if (rc == 1) {
        usage();
        xac_out_flush();
        return 0;
    }
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        return 2;
    }
    char tmp[] = "jbench.XXXXXX";
    const char *base = o.dir;
    if (base == NULL) {
        if (mkdtemp(tmp) == NULL) {
            xac_loge("cannot create a temporary directory in the current directory: %s",
                     strerror(errno));
            return 1;
        }
        base = tmp;
    } else if (mkdir(base, 0700) != 0 && errno != EEXIST) {
        xac_loge("cannot create %s: %s", base, strerror(errno));
        return 1;
    }
    rc = run(&o, base, &err);
    if (o.dir == NULL)
        rm_tree(tmp);
    xac_out_flush();
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        return 1;
    }
    return 0;
}
