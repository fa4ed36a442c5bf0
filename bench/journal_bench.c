/* Benchmark of the decision journal: group-commit throughput and latency for
 * several client counts, the raw fdatasync rate of the same directory (the
 * ceiling a one-sync-per-decision journal would hit) measured two ways, and
 * the time to replay a journal of a given number of records at open. The raw
 * rate is taken after a 64-byte append, which also changes the file's size,
 * and after a 64-byte write into a file zero-filled in advance, which is what
 * the journal does in its preallocated segments; on most file systems the
 * second is faster, so the ratio against it is the honest one. It also checks
 * what it can check cheaply (no commit fails, replay finds exactly the
 * expected records and pending set) so that a smoke run in ctest catches a
 * broken journal; it asserts nothing about speed. */
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

#include "bench_cli.h"
#include "journal.h"
#include "xac_common.h"

#define MAX_POINTS      32
#define BUILD_THREADS   256
#define PENDING_EVERY   100 /* one build record in this many is left without END */
#define RAW_RECORD_SIZE 64
/* The preallocated raw file: as large as a default journal segment; the
 * writes wrap around inside it. */
#define RAW_PREALLOC_SIZE JOURNAL_SEGMENT_SIZE_DEFAULT
/* Upper bounds of the record sizes the replay journal holds (docs/journal.md:
 * 9-byte header; COMMIT: gtrid, time, two branches of 14 and 10 characters;
 * END: gtrid), for sizing its single segment. */
#define REPLAY_COMMIT_MAX (9 + 1 + XAC_GTRID_MAX + 8 + 1 + 15 + 11)
#define REPLAY_END_MAX    (9 + 1 + XAC_GTRID_MAX)

typedef struct opts {
    const char *dir;
    double seconds;
    int clients[MAX_POINTS];
    int npoints;
    uint64_t replay_records;
    uint64_t segment_size; /* 0 = the journal's default */
    const char *csv;
} opts;

/* One row of results; replay rows reuse decisions/decisions_per_s for
 * records, raw rows syncs/raw_*_per_s. */
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
    double raw_append_per_s;
    double raw_prealloc_per_s;
    double ratio_append;
    double ratio_prealloc;
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
    uint64_t total;     /* COMMIT records to write */
    uint64_t npending;  /* of which left without END, spread evenly */
    uint64_t pending;   /* records this thread left without END */
    int rc;
    xac_err err;
} build_arg;

static void usage(void)
{
    xac_out("usage: journal_bench [--dir DIR] [--seconds S] [--clients LIST] "
            "[--replay-records N] [--segment-size BYTES] [--csv FILE] [--help]\n"
            "  --dir DIR             work in DIR (kept afterwards; must not hold earlier "
            "bench output)\n"
            "                        default: a temporary directory under the current "
            "directory, removed at the end\n"
            "  --seconds S           seconds per measurement point (default 3)\n"
            "  --clients LIST        comma-separated client counts (default 1,8,64,256)\n"
            "  --replay-records N    records (COMMIT and END) in the replay journal, 0 = no\n"
            "                        replay (default 1000000)\n"
            "  --segment-size BYTES  journal segment size for the commit points, with an\n"
            "                        optional K, M or G suffix (KiB, MiB, GiB); 64K..1G\n"
            "                        (default: the journal's, 16M). The replay journal uses\n"
            "                        one segment large enough for all its records\n"
            "  --csv FILE            write CSV to FILE instead of stdout\n"
            "The CSV has a header row, then one row per measurement: raw_append,\n"
            "raw_prealloc, one commit row per client count, replay. ratio_append and\n"
            "ratio_prealloc are decisions/s divided by each raw fdatasync rate; ratio is\n"
            "the stricter of the two (against the faster raw rate).\n");
}

static int parse_clients(const char *s, opts *o, xac_err *err)
{
    return bench_parse_clients(s, o->clients, MAX_POINTS, 4096, &o->npoints, err);
}

/* Returns 1 when --help was asked for. */
static int parse_args(int argc, char **argv, opts *o, xac_err *err)
{
    o->dir = NULL;
    o->seconds = 3.0;
    o->replay_records = 1000000;
    o->segment_size = 0;
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
        } else if (strcmp(a, "--segment-size") == 0) {
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            unsigned long long mul = 1;
            if (*end == 'K' || *end == 'k')
                mul = 1ULL << 10;
            else if (*end == 'M' || *end == 'm')
                mul = 1ULL << 20;
            else if (*end == 'G' || *end == 'g')
                mul = 1ULL << 30;
            if (mul != 1)
                end++;
            if (end == v || *end != '\0' || errno != 0 || v[0] == '-' ||
                n > JOURNAL_SEGMENT_SIZE_MAX / mul || n * mul < JOURNAL_SEGMENT_SIZE_MIN)
                return xac_err_set(err, XAC_EINVAL,
                                   "--segment-size \"%s\": expected 64K..1G (bytes, or a "
                                   "number with K, M or G)",
                                   v);
            o->segment_size = n * mul;
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

static int pwrite_all(int fd, const void *p, size_t n, off_t off)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Zero-fills path to RAW_PREALLOC_SIZE and makes that durable, as the journal
 * does with a new segment, so that the timed writes change no metadata. */
static int prealloc_file(int fd, const char *path, xac_err *err)
{
    static const char zeros[1 << 16];
    for (off_t off = 0; off < (off_t)RAW_PREALLOC_SIZE; off += (off_t)sizeof zeros)
        if (pwrite_all(fd, zeros, sizeof zeros, off) != 0)
            return xac_err_set(err, XAC_EIO, "cannot zero-fill %s: %s (errno %d)", path,
                               strerror(errno), errno);
    if (fsync(fd) != 0)
        return xac_err_set(err, XAC_EIO, "fsync of %s failed: %s (errno %d)", path, strerror(errno),
                           errno);
    return XAC_OK;
}

/* One thread writing 64 bytes and calling fdatasync in a loop: appending to a
 * growing file, or (prealloc) writing in turn into a file zero-filled before
 * the clock starts. */
static int raw_fsync_rate(const char *dir, bool prealloc, double seconds, row *r, xac_err *err)
{
    const char *name = prealloc ? "raw_prealloc" : "raw_append";
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s.dat", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return xac_err_set(err, XAC_EINVAL, "path %s/%s.dat is too long", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (prealloc ? 0 : O_APPEND), 0600);
    if (fd < 0)
        return xac_err_set(err, XAC_EIO, "cannot create %s: %s (errno %d)", path, strerror(errno),
                           errno);
    int rc = prealloc ? prealloc_file(fd, path, err) : XAC_OK;
    char rec[RAW_RECORD_SIZE];
    memset(rec, 'r', sizeof rec);
    uint64_t syncs = 0;
    off_t off = 0;
    uint64_t t0 = xac_now_mono_us();
    uint64_t limit = (uint64_t)(seconds * 1e6);
    while (rc == XAC_OK && xac_now_mono_us() - t0 < limit) {
        errno = 0; /* a short write leaves it alone */
        int w = prealloc ? pwrite_all(fd, rec, sizeof rec, off)
                         : (write(fd, rec, sizeof rec) == (ssize_t)sizeof rec ? 0 : -1);
        if (w != 0) {
            rc = xac_err_set(err, XAC_EIO, "write to %s failed: %s", path,
                             errno != 0 ? strerror(errno) : "short write");
            break;
        }
        off += (off_t)sizeof rec;
        if (off + (off_t)sizeof rec > (off_t)RAW_PREALLOC_SIZE)
            off = 0;
        if (fdatasync(fd) != 0) {
            rc = xac_err_set(err, XAC_EIO, "fdatasync of %s failed: %s (errno %d)", path,
                             strerror(errno), errno);
            break;
        }
        syncs++;
    }
    double el = secs_since(t0);
    close(fd);
    double rate = el > 0 ? (double)syncs / el : 0;
    *r = (row){.test = name, .clients = 1, .seconds = el, .syncs = syncs};
    if (prealloc)
        r->raw_prealloc_per_s = rate;
    else
        r->raw_append_per_s = rate;
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

static int run_clients(const char *base, int clients, double seconds, uint64_t segment_size, row *r,
                       xac_err *err)
{
    char name[32], dir[4096];
    snprintf(name, sizeof name, "clients-%d", clients);
    int rc = make_subdir(base, name, dir, sizeof dir, err);
    if (rc != XAC_OK)
        return rc;
    journal *j;
    journal_opts jo = {.segment_size = segment_size};
    rc = journal_open_opts(dir, &jo, &j, err);
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
        /* Exactly npending of the total numbers n cross a multiple of total. */
        if ((n * a->npending) / a->total != ((n + 1) * a->npending) / a->total) {
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

/* Splits a journal of exactly nrec records into COMMITs and ENDs: about one
 * COMMIT in PENDING_EVERY is left without END (pending = commits - ends =
 * 2 * commits - nrec, so its parity follows nrec's). */
static void replay_plan(uint64_t nrec, uint64_t *commits, uint64_t *pending)
{
    uint64_t p = (nrec + (2 * PENDING_EVERY - 1) / 2) / (2 * PENDING_EVERY - 1);
    if ((p ^ nrec) & 1)
        p++;
    *pending = p;
    *commits = (nrec + p) / 2;
}

/* Writes the replay journal of total COMMITs, npending of them not ended,
 * into one segment of segment_size bytes; *records is every COMMIT and END
 * written. */
static int build_journal(const char *dir, uint64_t total, uint64_t npending, uint64_t segment_size,
                         uint64_t *records, uint64_t *pending, xac_err *err)
{
    journal *j;
    journal_opts jo = {.segment_size = segment_size};
    int rc = journal_open_opts(dir, &jo, &j, err);
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
                              .total = total,
                              .npending = npending};
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

/* Replays a journal of exactly nrec records. They are kept in one segment:
 * with several, the segments whose transactions all ended would be deleted
 * and the rest carried forward, and replay would read fewer records. The
 * timed open is read-only, so that it measures the replay and not the
 * preparation of a spare segment. */
static int run_replay(const char *base, uint64_t nrec, uint64_t segment_size, row *r, xac_err *err)
{
    uint64_t commits, npending;
    replay_plan(nrec, &commits, &npending);
    uint64_t need = JOURNAL_SEGMENT_SIZE_MIN + commits * REPLAY_COMMIT_MAX +
                    (commits - npending) * REPLAY_END_MAX;
    if (need > JOURNAL_SEGMENT_SIZE_MAX)
        return xac_err_set(err, XAC_EINVAL,
                           "--replay-records %" PRIu64 " do not fit in one journal segment of "
                           "at most %u bytes; use at most about 10000000",
                           nrec, JOURNAL_SEGMENT_SIZE_MAX);
    uint64_t seg = (need + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    if (seg < segment_size)
        seg = segment_size;
    if (seg > JOURNAL_SEGMENT_SIZE_MAX)
        seg = JOURNAL_SEGMENT_SIZE_MAX;
    char dir[4096];
    int rc = make_subdir(base, "replay", dir, sizeof dir, err);
    if (rc != XAC_OK)
        return rc;
    xac_logi("building a replay journal of %" PRIu64 " records (%" PRIu64 " COMMIT, %" PRIu64
             " END) in one %" PRIu64 "-byte segment",
             nrec, commits, commits - npending, seg);
    uint64_t written, pending;
    rc = build_journal(dir, commits, npending, seg, &written, &pending, err);
    if (rc != XAC_OK)
        return rc;
    journal *j;
    journal_opts jo = {.flags = JOURNAL_READONLY, .segment_size = seg};
    uint64_t t0 = xac_now_mono_us();
    rc = journal_open_opts(dir, &jo, &j, err);
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
    if (st.pending != pending || pending != npending || st.replayed != written || written != nrec)
        return xac_err_set(err, XAC_EINTERNAL,
                           "replay of %s found %zu pending transactions and %" PRIu64
                           " records; expected %" PRIu64 " pending and %" PRIu64
                           " records (%" PRIu64 " written)",
                           dir, st.pending, st.replayed, npending, nrec, written);
    return XAC_OK;
}

/* ------------------------------------------------------------------ output */

static int csv_append(xac_buf *b, const row *r, xac_err *err)
{
    char line[512];
    int n;
    if (strcmp(r->test, "replay") == 0)
        n = snprintf(line, sizeof line, "replay,,%.3f,%" PRIu64 ",%.0f,,,,,,,,,\n", r->seconds,
                     r->decisions, r->per_s);
    else if (strcmp(r->test, "raw_append") == 0)
        n = snprintf(line, sizeof line, "raw_append,1,%.3f,,,%" PRIu64 ",,,,%.0f,,,,\n", r->seconds,
                     r->syncs, r->raw_append_per_s);
    else if (strcmp(r->test, "raw_prealloc") == 0)
        n = snprintf(line, sizeof line, "raw_prealloc,1,%.3f,,,%" PRIu64 ",,,,,%.0f,,,\n",
                     r->seconds, r->syncs, r->raw_prealloc_per_s);
    else
        n = snprintf(line, sizeof line,
                     "commit,%d,%.3f,%" PRIu64 ",%.0f,%" PRIu64 ",%.2f,%" PRIu32 ",%" PRIu32
                     ",%.0f,%.0f,%.2f,%.2f,%.2f\n",
                     r->clients, r->seconds, r->decisions, r->per_s, r->syncs, r->per_sync,
                     r->p50_us, r->p99_us, r->raw_append_per_s, r->raw_prealloc_per_s,
                     r->ratio_append, r->ratio_prealloc,
                     r->ratio_append < r->ratio_prealloc ? r->ratio_append : r->ratio_prealloc);
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

static void print_table(const row *rows, int n, double raw_append, double raw_prealloc,
                        const row *replay)
{
    bool prealloc_faster = raw_prealloc >= raw_append;
    xac_out("\nraw fdatasync, one thread, 64-byte writes:\n"
            "  append      (write at the end of a growing file + fdatasync): %8.0f syncs/s\n"
            "  preallocated (write into a zero-filled file + fdatasync):     %8.0f syncs/s\n\n",
            raw_append, raw_prealloc);
    xac_out("%8s %8s %10s %12s %8s %10s %8s %8s %10s %11s\n", "clients", "seconds", "decisions",
            "decisions/s", "syncs", "dec/sync", "p50_us", "p99_us", "vs_append", "vs_prealloc");
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        xac_out("%8d %8.2f %10" PRIu64 " %12.0f %8" PRIu64 " %10.2f %8" PRIu32 " %8" PRIu32
                " %10.2f %11.2f\n",
                r->clients, r->seconds, r->decisions, r->per_s, r->syncs, r->per_sync, r->p50_us,
                r->p99_us, r->ratio_append, r->ratio_prealloc);
    }
    xac_out("(vs_X = decisions/s / raw X fdatasync/s. The headline ratio is %s: against the "
            "faster raw rate)\n",
            prealloc_faster ? "vs_prealloc" : "vs_append");
    if (replay != NULL)
        xac_out("\nreplay: %" PRIu64 " records in %.3f s = %.0f records/s\n", replay->decisions,
                replay->seconds, replay->per_s);
    xac_out("\n");
}

/* -------------------------------------------------------------------- main */

static int run(const opts *o, const char *base, xac_err *err)
{
    row rows[MAX_POINTS];
    int nrows = 0;
    char rawdir[4096];
    int rc = make_subdir(base, "raw", rawdir, sizeof rawdir, err);
    if (rc != XAC_OK)
        return rc;
    row raw_app = {0}, raw_pre = {0};
    xac_logi("measuring raw fdatasync rates in %s for %.1f s each", rawdir, o->seconds);
    rc = raw_fsync_rate(rawdir, false, o->seconds, &raw_app, err);
    if (rc == XAC_OK)
        rc = raw_fsync_rate(rawdir, true, o->seconds, &raw_pre, err);
    if (rc != XAC_OK)
        return rc;
    double ra = raw_app.raw_append_per_s, rp = raw_pre.raw_prealloc_per_s;
    for (int i = 0; i < o->npoints; i++) {
        xac_logi("measuring %d client(s) for %.1f s", o->clients[i], o->seconds);
        row *r = &rows[nrows];
        rc = run_clients(base, o->clients[i], o->seconds, o->segment_size, r, err);
        if (rc != XAC_OK)
            return rc;
        r->raw_append_per_s = ra;
        r->raw_prealloc_per_s = rp;
        r->ratio_append = ra > 0 ? r->per_s / ra : 0;
        r->ratio_prealloc = rp > 0 ? r->per_s / rp : 0;
        nrows++;
    }
    row replay = {0};
    bool have_replay = o->replay_records > 0;
    if (have_replay) {
        rc = run_replay(base, o->replay_records, o->segment_size, &replay, err);
        if (rc != XAC_OK)
            return rc;
    }
    print_table(rows, nrows, ra, rp, have_replay ? &replay : NULL);

    xac_buf csv;
    xac_buf_init(&csv);
    const char *hdr = "test,clients,seconds,decisions,decisions_per_s,syncs,decisions_per_sync,"
                      "p50_us,p99_us,raw_append_per_s,raw_prealloc_per_s,ratio_append,"
                      "ratio_prealloc,ratio\n";
    rc = xac_buf_put(&csv, hdr, strlen(hdr), err);
    if (rc == XAC_OK)
        rc = csv_append(&csv, &raw_app, err);
    if (rc == XAC_OK)
        rc = csv_append(&csv, &raw_pre, err);
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
