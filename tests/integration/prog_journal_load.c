/* Load, crash and disk-use driver for the decision journal, used by
 * test_journal_crash.sh and test_journal_disk.sh. It calls journal/journal.h
 * directly, without xacd, so that thousands of decisions a second reach the
 * journal and a kill lands anywhere in the writer. Three modes:
 *
 *   load   --dir D --run R --threads T [--segment-size B] [--end-percent P]
 *          [--pin K] [--late N] [--crash-step NAME:N] [--count N]
 *     First ends every "L" transaction that earlier runs left pending (what
 *     xacd's recovery does after a restart), then commits K pinned
 *     transactions "P<R>.<i>" that are never ended, then T threads commit
 *     "L<R>.<thread>.<seq>" until killed or until N commits in all. After
 *     each successful commit the ack "C <gtrid>" goes to stdout. P% of the
 *     commits are ended at once, the rest after N (--late, default 4) more
 *     commits of the same thread (0: never); "E <gtrid>" is printed before
 *     journal_end, so an E line means "END requested", not "END on disk". The
 *     first stdout line is "R <run> <threads> <pins>". --crash-step makes the
 *     writer's N-th pass through the named step raise SIGKILL.
 *   verify --dir D [--segment-size B] --acks FILE...
 *     Opens the journal writable (a torn tail is repaired, as xacd would)
 *     and checks that every acked, not ended commit is there, and that every
 *     pending transaction is one this program wrote: a well-formed gtrid of a
 *     known run and thread, the branch list derived from its gtrid, and, when
 *     it was never acked, the one commit its thread had in flight.
 *   disk   --dir D [--threads T] [--count N] [--segment-size B] [--pin K]
 *     Steady commit+end load (all but K pins ended at once), sampling the
 *     directory's size; fails when it ends up above 4 segments + 64 KiB, peaks
 *     above 6 segments + 64 KiB, or a pin is lost over a reopen.
 *
 * Acks are written with one write(2) per line on fd 1, never through stdio:
 * a SIGKILL must not leave an acked decision in a user-space buffer, nor half
 * a line from one thread next to another thread's line. The caller opens the
 * ack file with O_APPEND. Exit status: 0 pass, 1 failure, 2 bad arguments. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
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

#define MAX_THREADS   1024
#define MAX_ACK_FILES 4096
#define MAX_LATE      64
#define GTRID_CAP     40 /* "L" + 3 numbers of at most 10 digits + 2 dots */
#define KIB           1024u

typedef struct cfg {
    const char *mode;
    const char *dir;
    uint32_t run;
    int threads;
    uint64_t segment_size;
    int end_percent;
    uint32_t pins;
    int late;
    char step_name[32];
    uint64_t step_n;
    uint64_t count; /* 0 = until killed */
    const char **acks;
    int nacks;
} cfg;

/* ------------------------------------------------------- shared helpers */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The branch list is a function of the gtrid alone, so that the verifier can
 * tell a record that was applied whole from one mixed up with another: 1 to 4
 * distinct resources "r<x>" of varying length. */
static void txn_for(const char *gtrid, journal_txn *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->gtrid, sizeof t->gtrid, "%s", gtrid);
    uint64_t h = fnv1a(gtrid);
    t->nbranches = (uint8_t)(1 + h % 4);
    uint32_t base = (uint32_t)((h >> 8) % 100000);
    uint32_t step = 1 + (uint32_t)((h >> 32) % 997);
    for (int i = 0; i < t->nbranches; i++)
        snprintf(t->resources[i], sizeof t->resources[i], "r%" PRIu32, base + (uint32_t)i * step);
}

static bool same_branches(const journal_txn *a, const journal_txn *b)
{
    if (a->nbranches != b->nbranches)
        return false;
    for (int i = 0; i < a->nbranches; i++)
        if (strcmp(a->resources[i], b->resources[i]) != 0)
            return false;
    return true;
}

/* A gtrid this program makes: "L<run>.<thread>.<seq>" or "P<run>.<seq>"
 * (thread -1), decimal without leading zeros. */
typedef struct gid {
    char kind;
    uint32_t run;
    int thread;
    uint32_t seq;
} gid;

static const char *parse_u32(const char *p, uint32_t *out)
{
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return NULL;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p++ - '0');
        if (v > UINT32_MAX)
            return NULL;
    }
    *out = (uint32_t)v;
    return p;
}

static bool gid_parse(const char *s, gid *g)
{
    if (s[0] != 'L' && s[0] != 'P')
        return false;
    g->kind = s[0];
    const char *p = parse_u32(s + 1, &g->run);
    if (p == NULL || *p++ != '.')
        return false;
    uint32_t a;
    p = parse_u32(p, &a);
    if (p == NULL)
        return false;
    if (g->kind == 'P') {
        g->thread = -1;
        g->seq = a;
        return *p == '\0';
    }
    if (*p++ != '.' || a >= MAX_THREADS)
        return false;
    g->thread = (int)a;
    p = parse_u32(p, &g->seq);
    return p != NULL && *p == '\0';
}

static void gid_format(char out[GTRID_CAP], char kind, uint32_t run, int thread, uint32_t seq)
{
    if (kind == 'P')
        snprintf(out, GTRID_CAP, "P%" PRIu32 ".%" PRIu32, run, seq);
    else
        snprintf(out, GTRID_CAP, "L%" PRIu32 ".%d.%" PRIu32, run, thread, seq);
}

/* Sums the sizes of every file under the directory, damaged/ included. Files
 * may vanish during the walk (the writer deletes segments); they count 0. */
static uint64_t walk_total;

static int walk_add(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (type == FTW_F)
        walk_total += (uint64_t)sb->st_size;
    return 0;
}

static uint64_t dir_bytes(const char *dir)
{
    walk_total = 0;
    nftw(dir, walk_add, 16, FTW_PHYS);
    return walk_total;
}

static int open_journal(const cfg *c, journal_opts *o, journal **j, xac_err *err)
{
    o->flags = 0;
    o->segment_size = c->segment_size;
    int rc = journal_open_opts(c->dir, o, j, err);
    if (rc != XAC_OK)
        xac_err_prefix(err, "opening journal %s", c->dir);
    return rc;
}

static void log_stats(journal *j, const char *when)
{
    journal_stats st;
    journal_get_stats(j, &st);
    xac_logi("%s: commits %" PRIu64 ", ends %" PRIu64 ", syncs %" PRIu64 ", replayed %" PRIu64
             ", pending %zu, segments %" PRIu64 ", created %" PRIu64 ", deleted %" PRIu64
             ", carried %" PRIu64 ", salvaged %" PRIu64 "%s",
             when, st.commits, st.ends, st.syncs, st.replayed, st.pending, st.segments, st.created,
             st.deleted, st.carried, st.salvaged, st.failed ? ", FAILED" : "");
}

/* --------------------------------------------------------------- load */

typedef struct step_hook {
    char name[32];
    uint64_t n;
    atomic_uint_fast64_t seen;
} step_hook;

/* Dies like a power cut would stop the process: no cleanup, no flush. */
static void on_step(void *ctx, const char *name)
{
    step_hook *h = ctx;
    if (strcmp(name, h->name) != 0)
        return;
    if (atomic_fetch_add(&h->seen, 1) + 1 == h->n) {
        xac_logi("crash step %s #%" PRIu64 " reached: raising SIGKILL", name, h->n);
        raise(SIGKILL);
    }
}

static int ack(char kind, const char *gtrid, xac_err *err)
{
    char line[GTRID_CAP + 4];
    int n = snprintf(line, sizeof line, "%c %s\n", kind, gtrid);
    ssize_t w;
    do
        w = write(STDOUT_FILENO, line, (size_t)n);
    while (w < 0 && errno == EINTR);
    if (w != n)
        return xac_err_set(err, XAC_EIO, "writing the ack \"%c %s\" failed: %s", kind, gtrid,
                           w < 0 ? strerror(errno) : "short write");
    return XAC_OK;
}

typedef struct loader {
    const cfg *c;
    journal *j;
    atomic_uint_fast64_t *tickets; /* commits started, pins included */
    atomic_bool *stop;
    int id;
    uint64_t commits;
    int rc;
    xac_err err;
} loader;

static int commit_one(journal *j, const char *gtrid, xac_err *err)
{
    journal_txn t;
    txn_for(gtrid, &t);
    bool in_doubt;
    int rc = journal_commit(j, &t, &in_doubt, err);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "commit of %s failed (in doubt: %s)", gtrid,
                              in_doubt ? "yes" : "no");
    return ack('C', gtrid, err);
}

static int end_one(journal *j, const char *gtrid, xac_err *err)
{
    int rc = ack('E', gtrid, err);
    if (rc == XAC_OK)
        rc = journal_end(j, gtrid, err);
    return rc;
}

/* A cheap per-thread PRNG (xorshift64*); quality is no concern here. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void *loader_main(void *p)
{
    loader *a = p;
    const cfg *c = a->c;
    uint64_t seed = ((uint64_t)c->run << 32 | (uint64_t)a->id) * 0x9e3779b97f4a7c15ull + 1;
    char late[MAX_LATE][GTRID_CAP];
    int nlate = 0, head = 0;
    a->rc = XAC_OK;
    for (uint32_t seq = 0; !atomic_load(a->stop); seq++) {
        if (c->count > 0 && atomic_fetch_add(a->tickets, 1) >= c->count)
            break;
        char g[GTRID_CAP];
        gid_format(g, 'L', c->run, a->id, seq);
        a->rc = commit_one(a->j, g, &a->err);
        if (a->rc != XAC_OK)
            break;
        a->commits++;
        if ((int)(rnd(&seed) % 100) < c->end_percent) {
            a->rc = end_one(a->j, g, &a->err);
        } else if (c->late > 0) {
            if (nlate == c->late) {
                a->rc = end_one(a->j, late[head], &a->err);
                head = (head + 1) % c->late;
                nlate--;
            }
            memcpy(late[(head + nlate) % c->late], g, GTRID_CAP);
            nlate++;
        }
        if (a->rc != XAC_OK)
            break;
    }
    if (a->rc != XAC_OK)
        atomic_store(a->stop, true);
    return NULL;
}

/* Ends the "L" transactions of earlier runs: after a crash, recovery finishes
 * their branches and ends them, so the committed set stays small. Pins stay. */
static int end_leftovers(const cfg *c, journal *j, xac_err *err)
{
    journal_txn *pend;
    size_t n;
    int rc = journal_pending(j, &pend, &n, err);
    if (rc != XAC_OK)
        return rc;
    size_t ended = 0;
    for (size_t i = 0; i < n && rc == XAC_OK; i++) {
        gid g;
        if (gid_parse(pend[i].gtrid, &g) && g.kind == 'L' && g.run != c->run) {
            rc = end_one(j, pend[i].gtrid, err);
            ended++;
        }
    }
    free(pend);
    xac_logi("run %" PRIu32 ": %zu pending at open, ended %zu left over by earlier runs", c->run, n,
             ended);
    return rc;
}

static int mode_load(const cfg *c, xac_err *err)
{
    static step_hook hook;
    journal_opts o;
    memset(&o, 0, sizeof o);
    if (c->step_name[0] != '\0') {
        snprintf(hook.name, sizeof hook.name, "%s", c->step_name);
        hook.n = c->step_n;
        atomic_init(&hook.seen, 0);
        o.step = on_step;
        o.hook_ctx = &hook;
    }
    /* The header comes first, so that a run whose first commit reached the
     * disk but not its ack is still a known run to the verifier. */
    char hdr[64];
    int hn =
        snprintf(hdr, sizeof hdr, "R %" PRIu32 " %d %" PRIu32 "\n", c->run, c->threads, c->pins);
    if (write(STDOUT_FILENO, hdr, (size_t)hn) != hn)
        return xac_err_set(err, XAC_EIO, "cannot write to stdout: %s", strerror(errno));

    journal *j;
    int rc = open_journal(c, &o, &j, err);
    if (rc != XAC_OK)
        return rc;
    rc = end_leftovers(c, j, err);
    atomic_uint_fast64_t tickets;
    atomic_init(&tickets, 0);
    for (uint32_t i = 0; i < c->pins && rc == XAC_OK; i++) {
        if (c->count > 0 && atomic_fetch_add(&tickets, 1) >= c->count)
            break;
        char g[GTRID_CAP];
        gid_format(g, 'P', c->run, -1, i);
        rc = commit_one(j, g, err);
    }
    if (rc != XAC_OK) {
        journal_close(j);
        return rc;
    }

    atomic_bool stop;
    atomic_init(&stop, false);
    loader *ls = calloc((size_t)c->threads, sizeof *ls);
    pthread_t *tids = calloc((size_t)c->threads, sizeof *tids);
    if (ls == NULL || tids == NULL) {
        free(ls);
        free(tids);
        journal_close(j);
        return xac_err_set(err, XAC_ENOMEM, "out of memory starting %d threads", c->threads);
    }
    int started = 0;
    for (int i = 0; i < c->threads; i++) {
        ls[i] = (loader){.c = c, .j = j, .tickets = &tickets, .stop = &stop, .id = i};
        int e = pthread_create(&tids[i], NULL, loader_main, &ls[i]);
        if (e != 0) {
            rc = xac_err_set(err, XAC_EINTERNAL, "cannot start thread %d: %s", i, strerror(e));
            atomic_store(&stop, true);
            break;
        }
        started++;
    }
    uint64_t total = c->pins;
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        total += ls[i].commits;
        if (rc == XAC_OK && ls[i].rc != XAC_OK) {
            *err = ls[i].err;
            rc = ls[i].rc;
            xac_err_prefix(err, "thread %d", i);
        }
    }
    free(ls);
    free(tids);
    log_stats(j, "load done");
    xac_logi("run %" PRIu32 ": %" PRIu64 " commits acked", c->run, total);
    journal_close(j);
    return rc;
}

/* ------------------------------------------------------------- verify */

/* What the ack files say about one gtrid. */
typedef struct ackent {
    char g[GTRID_CAP]; /* "" = free slot */
    bool committed;    /* a C line */
    bool ended;        /* an E line */
    int file;          /* where the C line is */
    uint32_t line;
} ackent;

typedef struct acktab {
    ackent *slots;
    size_t cap, n;
} acktab;

static int tab_grow(acktab *t, xac_err *err);

static ackent *tab_find(acktab *t, const char *g, bool add, xac_err *err)
{
    if (add && (t->n + 1) * 2 > t->cap && tab_grow(t, err) != XAC_OK)
        return NULL;
    if (t->cap == 0)
        return NULL;
    size_t i = fnv1a(g) & (t->cap - 1);
    while (t->slots[i].g[0] != '\0') {
        if (strcmp(t->slots[i].g, g) == 0)
            return &t->slots[i];
        i = (i + 1) & (t->cap - 1);
    }
    if (!add)
        return NULL;
    memset(&t->slots[i], 0, sizeof t->slots[i]);
    snprintf(t->slots[i].g, sizeof t->slots[i].g, "%s", g);
    t->n++;
    return &t->slots[i];
}

static int tab_grow(acktab *t, xac_err *err)
{
    acktab nt = {.cap = t->cap ? t->cap * 2 : 1u << 16, .n = 0};
    nt.slots = calloc(nt.cap, sizeof *nt.slots);
    if (nt.slots == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for %zu ack entries", nt.cap);
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].g[0] != '\0')
            *tab_find(&nt, t->slots[i].g, true, err) = t->slots[i];
    free(t->slots);
    *t = nt;
    return XAC_OK;
}

/* What the ack files say about one run. */
typedef struct runinfo {
    uint32_t run;
    int threads;
    uint32_t pins;
    int64_t max_acked[MAX_THREADS + 1]; /* by thread; the last one is the pins */
} runinfo;

typedef struct ackset {
    acktab tab;
    runinfo *runs;
    size_t nruns;
    uint64_t c_lines, e_lines;
} ackset;

static runinfo *run_find(ackset *s, uint32_t run)
{
    for (size_t i = 0; i < s->nruns; i++)
        if (s->runs[i].run == run)
            return &s->runs[i];
    return NULL;
}

static int read_file(const char *path, char **data, size_t *len, xac_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return xac_err_set(err, XAC_EIO, "cannot open ack file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return xac_err_set(err, XAC_EIO, "cannot stat %s: %s", path, strerror(errno));
    }
    size_t n = (size_t)sb.st_size;
    char *b = malloc(n + 1);
    size_t got = 0;
    while (b != NULL && got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (b == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory reading %s", path);
    if (got != n) {
        free(b);
        return xac_err_set(err, XAC_EIO, "short read of %s", path);
    }
    b[n] = '\0';
    *data = b;
    *len = n;
    return XAC_OK;
}

/* A last line without its newline is an ack the kill cut short: the client
 * never saw it, so it promises nothing and is skipped. */
static int load_acks(const char *path, int fidx, ackset *s, xac_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len, err);
    if (rc != XAC_OK)
        return rc;
    runinfo *ri = NULL;
    uint32_t lineno = 0;
    char *p = data;
    while (rc == XAC_OK) {
        char *nl = memchr(p, '\n', len - (size_t)(p - data));
        if (nl == NULL)
            break;
        *nl = '\0';
        lineno++;
        if (ri == NULL) {
            uint32_t run, pins;
            int threads, used = 0;
            if (sscanf(p, "R %" SCNu32 " %d %" SCNu32 "%n", &run, &threads, &pins, &used) != 3 ||
                p[used] != '\0' || threads < 1 || threads > MAX_THREADS) {
                rc = xac_err_set(err, XAC_EINVAL, "%s:1: expected \"R <run> <threads> <pins>\"",
                                 path);
                break;
            }
            if (run_find(s, run) != NULL) {
                rc = xac_err_set(err, XAC_EINVAL, "%s: run %" PRIu32 " appears in two ack files",
                                 path, run);
                break;
            }
            runinfo *nr = realloc(s->runs, (s->nruns + 1) * sizeof *nr);
            if (nr == NULL) {
                rc = xac_err_set(err, XAC_ENOMEM, "out of memory");
                break;
            }
            s->runs = nr;
            ri = &s->runs[s->nruns++];
            ri->run = run;
            ri->threads = threads;
            ri->pins = pins;
            for (int i = 0; i <= MAX_THREADS; i++)
                ri->max_acked[i] = -1;
        } else {
            gid g;
            if ((p[0] != 'C' && p[0] != 'E') || p[1] != ' ' || strlen(p + 2) >= GTRID_CAP ||
                !gid_parse(p + 2, &g)) {
                rc = xac_err_set(err, XAC_EINVAL, "%s:%" PRIu32 ": malformed ack line \"%.80s\"",
                                 path, lineno, p);
                break;
            }
            ackent *e = tab_find(&s->tab, p + 2, true, err);
            if (e == NULL) {
                rc = err->code;
                break;
            }
            if (p[0] == 'E') {
                e->ended = true;
                s->e_lines++;
            } else {
                if (e->committed || g.run != ri->run) {
                    rc = xac_err_set(err, XAC_EINVAL,
                                     "%s:%" PRIu32 ": %s is acked twice or by another run", path,
                                     lineno, p + 2);
                    break;
                }
                e->committed = true;
                e->file = fidx;
                e->line = lineno;
                s->c_lines++;
                int slot = g.kind == 'P' ? MAX_THREADS : g.thread;
                if ((int64_t)g.seq > ri->max_acked[slot])
                    ri->max_acked[slot] = g.seq;
            }
        }
        p = nl + 1;
    }
    free(data);
    return rc;
}

/* Checks one pending transaction against the ack files; a violation is
 * XAC_EJOURNAL. */
static int check_pending(ackset *s, const journal_txn *t, xac_err *err)
{
    gid g;
    if (strlen(t->gtrid) >= GTRID_CAP || !gid_parse(t->gtrid, &g))
        return xac_err_set(err, XAC_EJOURNAL,
                           "pending gtrid \"%.64s\" is not one this program writes", t->gtrid);
    runinfo *ri = run_find(s, g.run);
    if (ri == NULL)
        return xac_err_set(err, XAC_EJOURNAL,
                           "pending %s belongs to run %" PRIu32 ", which no ack file names",
                           t->gtrid, g.run);
    if (g.kind == 'L' ? g.thread >= ri->threads : g.seq >= ri->pins)
        return xac_err_set(err, XAC_EJOURNAL,
                           "pending %s: run %" PRIu32 " had %d threads and %" PRIu32 " pins",
                           t->gtrid, g.run, ri->threads, ri->pins);
    journal_txn want;
    txn_for(t->gtrid, &want);
    if (!same_branches(t, &want))
        return xac_err_set(
            err, XAC_EJOURNAL,
            "pending %s has %u branches (first \"%s\"), expected %u (first \"%s\"): a record "
            "was applied torn or mixed up",
            t->gtrid, t->nbranches, t->nbranches > 0 ? t->resources[0] : "", want.nbranches,
            want.resources[0]);
    ackent *e = tab_find(&s->tab, t->gtrid, false, NULL);
    if (e == NULL || !e->committed) {
        /* Never acked: only the one commit its thread had in flight may be. */
        int64_t next = ri->max_acked[g.kind == 'P' ? MAX_THREADS : g.thread] + 1;
        if ((int64_t)g.seq != next)
            return xac_err_set(
                err, XAC_EJOURNAL,
                "pending %s was never acked and is not the commit its thread had in flight "
                "(that would be seq %" PRId64 ")",
                t->gtrid, next);
    }
    return XAC_OK;
}

static int mode_verify(const cfg *c, xac_err *err)
{
    ackset s;
    memset(&s, 0, sizeof s);
    int rc = XAC_OK;
    for (int i = 0; i < c->nacks && rc == XAC_OK; i++)
        rc = load_acks(c->acks[i], i, &s, err);
    journal *j = NULL;
    journal_opts o;
    memset(&o, 0, sizeof o);
    if (rc == XAC_OK)
        rc = open_journal(c, &o, &j, err);
    uint64_t must = 0, found = 0, pend_acked = 0, pend_inflight = 0, pend_ended = 0;
    journal_txn *pend = NULL;
    size_t npend = 0;
    for (size_t i = 0; rc == XAC_OK && i < s.tab.cap; i++) {
        const ackent *e = &s.tab.slots[i];
        if (e->g[0] == '\0' || !e->committed || e->ended)
            continue;
        must++;
        if (journal_is_committed(j, e->g))
            found++;
        else
            rc = xac_err_set(err, XAC_EJOURNAL,
                             "acked commit %s (%s line %" PRIu32
                             ") is not committed in the journal after replay",
                             e->g, c->acks[e->file], e->line);
    }
    if (rc == XAC_OK)
        rc = journal_pending(j, &pend, &npend, err);
    for (size_t i = 0; rc == XAC_OK && i < npend; i++) {
        rc = check_pending(&s, &pend[i], err);
        if (rc != XAC_OK)
            break;
        const ackent *e = tab_find(&s.tab, pend[i].gtrid, false, NULL);
        if (e == NULL || !e->committed)
            pend_inflight++;
        else if (e->ended)
            pend_ended++;
        else
            pend_acked++;
    }
    if (rc == XAC_OK) {
        xac_out("verify ok: %d ack files, %zu runs, acked %" PRIu64 ", end requested %" PRIu64
                ", must be committed %" PRIu64 ", found %" PRIu64 ", pending %zu (acked %" PRIu64
                ", in flight at the kill %" PRIu64 ", END not on disk %" PRIu64 ")\n",
                c->nacks, s.nruns, s.c_lines, s.e_lines, must, found, npend, pend_acked,
                pend_inflight, pend_ended);
        if (j != NULL)
            log_stats(j, "verify");
    }
    free(pend);
    journal_close(j);
    free(s.tab.slots);
    free(s.runs);
    return rc;
}

/* --------------------------------------------------------------- disk */

typedef struct disker {
    journal *j;
    int id;
    uint64_t count;
    atomic_uint_fast64_t *tickets;
    atomic_uint_fast64_t *done;
    atomic_bool *stop;
    int rc;
    xac_err err;
} disker;

static void *disker_main(void *p)
{
    disker *a = p;
    a->rc = XAC_OK;
    for (uint32_t seq = 0; !atomic_load(a->stop); seq++) {
        if (atomic_fetch_add(a->tickets, 1) >= a->count)
            break;
        char g[GTRID_CAP];
        gid_format(g, 'L', 0, a->id, seq);
        journal_txn t;
        txn_for(g, &t);
        bool in_doubt;
        a->rc = journal_commit(a->j, &t, &in_doubt, &a->err);
        if (a->rc == XAC_OK)
            a->rc = journal_end(a->j, g, &a->err);
        if (a->rc != XAC_OK) {
            xac_err_prefix(&a->err, "%s", g);
            atomic_store(a->stop, true);
            break;
        }
        atomic_fetch_add(a->done, 1);
    }
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int check_pins(const cfg *c, journal *j, const char *when, xac_err *err)
{
    for (uint32_t i = 0; i < c->pins; i++) {
        char g[GTRID_CAP];
        gid_format(g, 'P', 0, -1, i);
        journal_txn t, want;
        txn_for(g, &want);
        if (!journal_lookup(j, g, &t))
            return xac_err_set(err, XAC_EJOURNAL, "%s: pinned commit %s is lost", when, g);
        if (!same_branches(&t, &want))
            return xac_err_set(err, XAC_EJOURNAL,
                               "%s: pinned commit %s has %u branches, expected %u (a record was "
                               "applied torn or mixed up)",
                               when, g, t.nbranches, want.nbranches);
    }
    return XAC_OK;
}

static int mode_disk(const cfg *c, xac_err *err)
{
    uint64_t seg = c->segment_size ? c->segment_size : JOURNAL_SEGMENT_SIZE_DEFAULT;
    uint64_t bound = 4 * seg + 64 * KIB, peak_bound = 6 * seg + 64 * KIB;
    journal_opts o;
    memset(&o, 0, sizeof o);
    journal *j;
    int rc = open_journal(c, &o, &j, err);
    if (rc != XAC_OK)
        return rc;
    for (uint32_t i = 0; i < c->pins && rc == XAC_OK; i++) {
        char g[GTRID_CAP];
        gid_format(g, 'P', 0, -1, i);
        journal_txn t;
        txn_for(g, &t);
        bool in_doubt;
        rc = journal_commit(j, &t, &in_doubt, err);
    }
    uint64_t count = c->count > c->pins ? c->count - c->pins : 0;
    atomic_uint_fast64_t tickets, done;
    atomic_bool stop;
    atomic_init(&tickets, 0);
    atomic_init(&done, 0);
    atomic_init(&stop, false);
    disker *ds = calloc((size_t)c->threads, sizeof *ds);
    pthread_t *tids = calloc((size_t)c->threads, sizeof *tids);
    if (rc == XAC_OK && (ds == NULL || tids == NULL))
        rc = xac_err_set(err, XAC_ENOMEM, "out of memory starting %d threads", c->threads);
    int started = 0;
    for (int i = 0; rc == XAC_OK && i < c->threads; i++) {
        ds[i] = (disker){
            .j = j, .id = i, .count = count, .tickets = &tickets, .done = &done, .stop = &stop};
        int e = pthread_create(&tids[i], NULL, disker_main, &ds[i]);
        if (e != 0) {
            rc = xac_err_set(err, XAC_EINTERNAL, "cannot start thread %d: %s", i, strerror(e));
            atomic_store(&stop, true);
            break;
        }
        started++;
    }
    /* Sample the directory while the load runs: a journal that only cleans up
     * at close would pass a check made at the end alone. */
    uint64_t peak = 0, next_report = 50000;
    while (started > 0) {
        uint64_t d = atomic_load(&done);
        uint64_t sz = dir_bytes(c->dir);
        if (sz > peak)
            peak = sz;
        if (d >= next_report || d >= count || atomic_load(&stop)) {
            journal_stats st;
            journal_get_stats(j, &st);
            xac_logi("disk: %" PRIu64 " of %" PRIu64 " transactions, directory %" PRIu64
                     " bytes (peak %" PRIu64 "), segments %" PRIu64 ", created %" PRIu64
                     ", deleted %" PRIu64 ", carried %" PRIu64,
                     d + c->pins, c->count, sz, peak, st.segments, st.created, st.deleted,
                     st.carried);
            while (next_report <= d)
                next_report += 50000;
        }
        if (d >= count || atomic_load(&stop))
            break;
        sleep_ms(20);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        if (rc == XAC_OK && ds[i].rc != XAC_OK) {
            *err = ds[i].err;
            rc = ds[i].rc;
        }
    }
    free(ds);
    free(tids);
    uint64_t final = dir_bytes(c->dir);
    journal_stats st;
    journal_get_stats(j, &st);
    xac_out("disk: %" PRIu64 " transactions, segment size %" PRIu64 ", directory %" PRIu64
            " bytes at the end (bound %" PRIu64 "), peak %" PRIu64 " (bound %" PRIu64
            "), segments %" PRIu64 ", created %" PRIu64 ", deleted %" PRIu64 ", carried %" PRIu64
            ", syncs %" PRIu64 "\n",
            st.commits, seg, final, bound, peak, peak_bound, st.segments, st.created, st.deleted,
            st.carried, st.syncs);
    if (rc == XAC_OK)
        rc = check_pins(c, j, "before close", err);
    journal_close(j);
    if (rc != XAC_OK)
        return rc;

    rc = open_journal(c, &o, &j, err);
    if (rc != XAC_OK)
        return rc;
    uint64_t reopened = dir_bytes(c->dir);
    journal_get_stats(j, &st);
    xac_out("disk: after reopen: directory %" PRIu64 " bytes, %" PRIu64
            " records replayed, %zu pending\n",
            reopened, st.replayed, st.pending);
    rc = check_pins(c, j, "after reopen", err);
    if (rc == XAC_OK && st.pending != c->pins)
        rc = xac_err_set(err, XAC_EJOURNAL,
                         "after reopen %zu transactions are pending, expected the %" PRIu32
                         " pins (END records lost?)",
                         st.pending, c->pins);
    journal_close(j);
    if (rc == XAC_OK && final > bound)
        rc =
            xac_err_set(err, XAC_EJOURNAL,
                        "the journal directory holds %" PRIu64 " bytes after %" PRIu64
                        " transactions, more than 4 segments of %" PRIu64 " + 64 KiB (%" PRIu64 ")",
                        final, c->count, seg, bound);
    if (rc == XAC_OK && reopened > bound)
        rc = xac_err_set(err, XAC_EJOURNAL,
                         "after reopen the journal directory holds %" PRIu64
                         " bytes, more than %" PRIu64,
                         reopened, bound);
    if (rc == XAC_OK && peak > peak_bound)
        rc = xac_err_set(err, XAC_EJOURNAL,
                         "the journal directory peaked at %" PRIu64
                         " bytes during the load, more than 6 segments + 64 KiB (%" PRIu64 ")",
                         peak, peak_bound);
    if (rc == XAC_OK)
        xac_out("disk ok\n");
    return rc;
}

/* --------------------------------------------------------------- main */

static void usage(void)
{
    xac_out("usage:\n"
            "  prog_journal_load load --dir D --run R --threads T [--segment-size B]\n"
            "      [--end-percent P] [--pin K] [--late N] [--crash-step NAME:N] [--count N]\n"
            "  prog_journal_load verify --dir D [--segment-size B] --acks FILE...\n"
            "  prog_journal_load disk --dir D [--threads T] [--count N] [--segment-size B] "
            "[--pin K]\n");
}

static int parse_num(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                     xac_err *err)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < lo || n > hi)
        return xac_err_set(err, XAC_EINVAL, "%s \"%s\": expected %" PRIu64 "..%" PRIu64, opt, v, lo,
                           hi);
    *out = n;
    return XAC_OK;
}

static int parse_args(int argc, char **argv, cfg *c, xac_err *err)
{
    memset(c, 0, sizeof *c);
    if (argc < 2)
        return xac_err_set(err, XAC_EINVAL, "no mode given");
    c->mode = argv[1];
    bool disk = strcmp(c->mode, "disk") == 0;
    c->threads = disk ? 64 : 0;
    c->count = disk ? 300000 : 0;
    c->pins = disk ? 3 : 0;
    c->end_percent = 90;
    c->late = 4;
    if (!disk && strcmp(c->mode, "load") != 0 && strcmp(c->mode, "verify") != 0)
        return xac_err_set(err, XAC_EINVAL, "unknown mode %s", c->mode);
    bool have_run = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--acks") == 0) {
            c->acks = (const char **)&argv[i + 1];
            c->nacks = argc - i - 1;
            break;
        }
        if (i + 1 >= argc)
            return xac_err_set(err, XAC_EINVAL, "%s: unknown option or missing value", a);
        const char *v = argv[++i];
        uint64_t n = 0;
        int rc = XAC_OK;
        if (strcmp(a, "--dir") == 0) {
            c->dir = v;
        } else if (strcmp(a, "--run") == 0) {
            rc = parse_num(a, v, 1, 1000000000, &n, err);
            c->run = (uint32_t)n;
            have_run = true;
        } else if (strcmp(a, "--threads") == 0) {
            rc = parse_num(a, v, 1, MAX_THREADS, &n, err);
            c->threads = (int)n;
        } else if (strcmp(a, "--segment-size") == 0) {
            rc = parse_num(a, v, 0, UINT64_MAX, &c->segment_size, err);
        } else if (strcmp(a, "--end-percent") == 0) {
            rc = parse_num(a, v, 0, 100, &n, err);
            c->end_percent = (int)n;
        } else if (strcmp(a, "--pin") == 0) {
            rc = parse_num(a, v, 0, 1000000, &n, err);
            c->pins = (uint32_t)n;
        } else if (strcmp(a, "--late") == 0) {
            rc = parse_num(a, v, 0, MAX_LATE, &n, err);
            c->late = (int)n;
        } else if (strcmp(a, "--count") == 0) {
            rc = parse_num(a, v, 1, UINT32_MAX, &c->count, err);
        } else if (strcmp(a, "--crash-step") == 0) {
            const char *colon = strrchr(v, ':');
            if (colon == NULL || colon == v || (size_t)(colon - v) >= sizeof c->step_name)
                return xac_err_set(err, XAC_EINVAL, "--crash-step \"%s\": expected NAME:N", v);
            snprintf(c->step_name, sizeof c->step_name, "%.*s", (int)(colon - v), v);
            rc = parse_num(a, colon + 1, 1, UINT32_MAX, &c->step_n, err);
        } else {
            return xac_err_set(err, XAC_EINVAL, "unknown option %s", a);
        }
        if (rc != XAC_OK)
            return rc;
    }
    if (c->dir == NULL)
        return xac_err_set(err, XAC_EINVAL, "--dir is required");
    if (strcmp(c->mode, "load") == 0 && (!have_run || c->threads == 0))
        return xac_err_set(err, XAC_EINVAL, "load needs --run and --threads");
    if (strcmp(c->mode, "verify") == 0 && c->nacks == 0)
        return xac_err_set(err, XAC_EINVAL, "verify needs --acks FILE...");
    if (c->nacks > MAX_ACK_FILES)
        return xac_err_set(err, XAC_EINVAL, "at most %d ack files", MAX_ACK_FILES);
    return XAC_OK;
}

int main(int argc, char **argv)
{
    xac_err err;
    xac_err_clear(&err);
    if (xac_log_init("prog_journal_load", XAC_LOG_INFO, NULL, &err) != XAC_OK)
        return 1;
    cfg c;
    if (parse_args(argc, argv, &c, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        usage();
        xac_out_flush();
        return 2;
    }
    int rc;
    if (strcmp(c.mode, "load") == 0)
        rc = mode_load(&c, &err);
    else if (strcmp(c.mode, "verify") == 0)
        rc = mode_verify(&c, &err);
    else
        rc = mode_disk(&c, &err);
    xac_out_flush();
    if (rc != XAC_OK) {
        xac_loge("%s FAILED: %s", c.mode, err.msg);
        return 1;
    }
    return 0;
}
