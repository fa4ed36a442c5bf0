/* Unit tests of the journal's segment life cycle, with 64 KiB segments so that
 * a few hundred commits rotate many times: preallocated segments with valid
 * headers, deletion of fully ended segments, carry-forward of a transaction
 * that is never ended (and of more of them than a segment holds), torn tails
 * inside the zero-filled preallocated area, corruption refused with file and
 * offset or salvaged into damaged/, the in-doubt verdict of journal_commit
 * under injected write, sync, cut and create faults (alone and under 8
 * committers), the writer's step hook, and how many syncs group commit makes
 * for one committer and for 64. The segment files are read here
 * through their documented byte layout (docs/journal.md), not through the
 * journal's internals. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cu.h"
#include "journal.h"
#include "jtest.h"

#define SEG (64u << 10)
/* Branches of a "big" transaction: about 1.5 KB per COMMIT record, so that a
 * 64 KiB segment holds some 40 of them and rotation needs few syncs. */
#define BIG_NB 48
#define MAXSEG 256

static char tdir[PATH_MAX];

/* ------------------------------------------------------------ directory */

static void dir_new(void)
{
    jt_dir_new(tdir, sizeof tdir, "/tmp/xacjs-test-XXXXXX");
}

static void dir_rm(void)
{
    jt_dir_rm(tdir);
}

static void seg_path(char *out, size_t n, uint64_t segno)
{
    snprintf(out, n, "%s/%016" PRIx64 ".xacj", tdir, segno);
}

/* The segment files in tdir, ascending, and how many spares (*.xacj.tmp). */
typedef struct listing {
    uint64_t seg[MAXSEG];
    int nseg;
    int ntmp;
} listing;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void list_dir(listing *l)
{
    memset(l, 0, sizeof *l);
    DIR *d = opendir(tdir);
    CU_ASSERT_FATAL(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n == 21 + 4 && strcmp(e->d_name + 16, ".xacj.tmp") == 0) {
            l->ntmp++;
            continue;
        }
        if (n != 21 || strcmp(e->d_name + 16, ".xacj") != 0)
            continue;
        char *end;
        uint64_t v = strtoull(e->d_name, &end, 16);
        if (end != e->d_name + 16 || l->nseg == MAXSEG)
            continue;
        l->seg[l->nseg++] = v;
    }
    closedir(d);
    qsort(l->seg, (size_t)l->nseg, sizeof l->seg[0], cmp_u64);
}

/* ------------------------------------------------------------------ files */

/* Every segment in the directory is preallocated to at least size bytes and
 * has a valid header. A segment deleted between listing and reading (the
 * writer runs concurrently) is skipped. Returns the number checked. */
static int check_segments(uint64_t size)
{
    listing l;
    list_dir(&l);
    int checked = 0;
    for (int i = 0; i < l.nseg; i++) {
        char p[PATH_MAX + 32];
        seg_path(p, sizeof p, l.seg[i]);
        size_t n;
        uint8_t *b = jt_slurp(p, &n);
        if (b == NULL && errno == ENOENT)
            continue;
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT(n >= size);
        CU_ASSERT(jt_header_ok(b, n, l.seg[i]));
        if (n < size || !jt_header_ok(b, n, l.seg[i]))
            xac_loge("segment %s: %zu bytes (want >= %" PRIu64 "), header %s", p, n, size,
                     jt_header_ok(b, n, l.seg[i]) ? "ok" : "bad");
        free(b);
        checked++;
    }
    return checked;
}

/* The segment whose records include a COMMIT of gtrid; 0 when none. */
static uint64_t seg_holding(const char *gtrid)
{
    listing l;
    list_dir(&l);
    for (int i = 0; i < l.nseg; i++) {
        char p[PATH_MAX + 32];
        seg_path(p, sizeof p, l.seg[i]);
        size_t n;
        uint8_t *b = jt_slurp(p, &n);
        if (b == NULL)
            continue;
        static jt_rec r[4096];
        long end;
        int k = jt_scan(b, n, r, 4096, &end);
        free(b);
        for (int x = 0; x < k && x < 4096; x++)
            if (r[x].type == 1 && strcmp(r[x].gtrid, gtrid) == 0)
                return l.seg[i];
    }
    return 0;
}

/* ------------------------------------------------------------ journal */

/* What the test hooks count and which faults they inject. */
static const char *const step_names[] = {"batch-written",    "batch-synced", "segment-created",
                                         "segment-switched", "carried",      "segment-deleted"};
#define NSTEPS 6

typedef struct hooks {
    atomic_int fail[4];  /* errno to fail each journal_io with; 0 = let it run */
    atomic_int calls[4]; /* io_fault calls per op */
    atomic_int fails[4]; /* of which failed */
    atomic_int steps[NSTEPS];
    atomic_int unknown_steps;
    bool call_stats;          /* the hook calls journal_get_stats (step test) */
    atomic_int stats_in_step; /* journal_get_stats calls made from the hook */
    atomic_int on_committer;  /* steps run on the thread that commits */
    _Atomic(journal *) j;
    pthread_t committer;
    atomic_bool have_committer;
} hooks;

static int hook_io(void *ctx, journal_io op)
{
    hooks *h = ctx;
    if ((int)op < 0 || (int)op > 3)
        return 0;
    atomic_fetch_add(&h->calls[op], 1);
    int e = atomic_load(&h->fail[op]);
    if (e != 0)
        atomic_fetch_add(&h->fails[op], 1);
    return e;
}

static void hook_step(void *ctx, const char *name)
{
    hooks *h = ctx;
    int i = 0;
    while (i < NSTEPS && strcmp(step_names[i], name) != 0)
        i++;
    if (i == NSTEPS) {
        atomic_fetch_add(&h->unknown_steps, 1);
        xac_loge("unknown journal step \"%s\"", name);
    } else {
        atomic_fetch_add(&h->steps[i], 1);
    }
    if (atomic_load(&h->have_committer) && pthread_equal(pthread_self(), h->committer))
        atomic_fetch_add(&h->on_committer, 1);
    /* The hook runs without the journal's mutex: this must not deadlock. */
    journal *j = atomic_load(&h->j);
    if (h->call_stats && j != NULL) {
        journal_stats st;
        journal_get_stats(j, &st);
        atomic_fetch_add(&h->stats_in_step, 1);
    }
}

static journal *jopen_rc(int flags, uint64_t segsize, hooks *h, int *rc, xac_err *e)
{
    journal_opts o = {.flags = flags, .segment_size = segsize};
    if (h != NULL) {
        o.io_fault = hook_io;
        o.step = hook_step;
        o.hook_ctx = h;
    }
    journal *j = NULL;
    xac_err_clear(e);
    *rc = journal_open_opts(tdir, &o, &j, e);
    if (h != NULL)
        atomic_store(&h->j, j);
    return j;
}

static journal *jopen(int flags, uint64_t segsize, hooks *h)
{
    int rc;
    xac_err e;
    journal *j = jopen_rc(flags, segsize, h, &rc, &e);
    CU_ASSERT_EQUAL(rc, XAC_OK);
    if (rc != XAC_OK)
        xac_loge("journal_open_opts %s: %s", tdir, e.msg);
    return j;
}

static void jclose(journal *j, hooks *h)
{
    journal_close(j);
    if (h != NULL)
        atomic_store(&h->j, NULL);
}

/* A transaction with nb branches; decided_us tells the test's transactions
 * apart from wall-clock stamps. Names are 30 characters in big ones. */
static void txn(journal_txn *t, const char *gtrid, int nb, uint64_t decided)
{
    memset(t, 0, sizeof *t);
    snprintf(t->gtrid, sizeof t->gtrid, "%s", gtrid);
    t->nbranches = (uint8_t)nb;
    t->decided_us = decided;
    for (int i = 0; i < nb; i++)
        snprintf(t->resources[i], sizeof t->resources[i], "resource_%021d", i);
}

static bool in_doubt;
static xac_err cerr;

static int commit_nb(journal *j, const char *gtrid, int nb)
{
    journal_txn t;
    txn(&t, gtrid, nb, 1000000u + (uint64_t)nb);
    xac_err_clear(&cerr);
    in_doubt = false;
    return journal_commit(j, &t, &in_doubt, &cerr);
}

static int jend(journal *j, const char *gtrid)
{
    xac_err e;
    return journal_end(j, gtrid, &e);
}

static journal_stats stats(journal *j)
{
    journal_stats st;
    journal_get_stats(j, &st);
    return st;
}

/* Whether a looked-up transaction is exactly what commit_nb wrote. */
static bool txn_is(journal *j, const char *gtrid, int nb)
{
    journal_txn t, want;
    txn(&want, gtrid, nb, 1000000u + (uint64_t)nb);
    if (!journal_lookup(j, gtrid, &t))
        return false;
    if (t.nbranches != nb || t.decided_us != want.decided_us)
        return false;
    for (int i = 0; i < nb; i++)
        if (strcmp(t.resources[i], want.resources[i]) != 0)
            return false;
    return true;
}

/* How many of n1.<tag>.0, n1.<tag>.<step>, ... below upto are not there
 * exactly as commit_nb wrote them with BIG_NB branches. */
static int missing_big(journal *j, const char *tag, int upto, int step)
{
    int missing = 0;
    for (int i = 0; i < upto; i += step) {
        char g[40];
        snprintf(g, sizeof g, "n1.%s.%d", tag, i);
        if (!txn_is(j, g, BIG_NB))
            missing++;
    }
    return missing;
}

/* Whether a message names byte offset off (and not a longer number that
 * starts with the same digits). */
static bool names_offset(const char *msg, long off)
{
    char want[48];
    snprintf(want, sizeof want, "offset %ld", off);
    for (const char *p = strstr(msg, want); p != NULL; p = strstr(p + 1, want)) {
        char c = p[strlen(want)];
        if (c < '0' || c > '9')
            return true;
    }
    return false;
}

/* ------------------------------------------------------------ rotation */

/* Several segments' worth of commits: new segments are created as needed,
 * each preallocated with a valid header, and a reopen finds exactly the
 * transactions that were never ended. */
static void test_rotation(void)
{
    dir_new();
    journal *j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    uint64_t created0 = stats(j).created;
    uint64_t created_prev = created0, maxseg = 0;
    const int n = 260; /* about six segments */
    int pend = 0;
    for (int i = 0; i < n; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.r.%d", i);
        CU_ASSERT_EQUAL_FATAL(commit_nb(j, g, BIG_NB - i % 3), XAC_OK);
        if (i % 20 == 0)
            pend++;
        else
            CU_ASSERT_EQUAL(jend(j, g), XAC_OK);
        if (i % 25 == 24) {
            journal_stats st = stats(j);
            CU_ASSERT(st.created >= created_prev);
            created_prev = st.created;
            CU_ASSERT(check_segments(SEG) >= 1);
            listing l;
            list_dir(&l);
            if (l.nseg > 0 && l.seg[l.nseg - 1] > maxseg)
                maxseg = l.seg[l.nseg - 1];
        }
    }
    journal_stats st = stats(j);
    CU_ASSERT_EQUAL(st.commits, (uint64_t)n);
    CU_ASSERT_EQUAL(st.pending, (size_t)pend);
    CU_ASSERT(st.created >= created0 + 4);
    CU_ASSERT(maxseg >= 5);
    CU_ASSERT(st.segments >= 1);
    CU_ASSERT_FALSE(st.failed);
    jclose(j, NULL);
    listing l;
    list_dir(&l);
    CU_ASSERT(check_segments(SEG) == l.nseg && l.nseg >= 1);
    CU_ASSERT(l.ntmp <= 1);

    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    st = stats(j);
    CU_ASSERT_EQUAL(st.pending, (size_t)pend);
    CU_ASSERT(st.replayed >= (uint64_t)pend);
    int wrong = 0;
    for (int i = 0; i < n; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.r.%d", i);
        if (i % 20 == 0 ? !txn_is(j, g, BIG_NB - i % 3) : journal_is_committed(j, g))
            wrong++;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    journal_txn *all;
    size_t na;
    xac_err e;
    CU_ASSERT_EQUAL(journal_pending(j, &all, &na, &e), XAC_OK);
    CU_ASSERT_EQUAL(na, (size_t)pend);
    free(all);
    /* The reopened journal appends and rotates on. */
    for (int i = 0; i < 60; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.r2.%d", i);
        CU_ASSERT_EQUAL(commit_nb(j, g, BIG_NB), XAC_OK);
        CU_ASSERT_EQUAL(jend(j, g), XAC_OK);
    }
    CU_ASSERT(stats(j).created >= 1);
    jclose(j, NULL);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(stats(j).pending, (size_t)pend);
    CU_ASSERT_TRUE(txn_is(j, "n1.r.240", BIG_NB));
    jclose(j, NULL);
    CU_ASSERT(check_segments(SEG) >= 1);
    dir_rm();
}

/* segment_size is checked; an existing journal reopens with another size. */
static void test_segment_size(void)
{
    dir_new();
    int rc;
    xac_err e;
    uint64_t bad[] = {JOURNAL_SEGMENT_SIZE_MIN - 1, 4096, (uint64_t)JOURNAL_SEGMENT_SIZE_MAX + 1,
                      UINT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        journal *j = jopen_rc(0, bad[i], NULL, &rc, &e);
        CU_ASSERT_EQUAL(rc, XAC_EINVAL);
        CU_ASSERT_PTR_NULL(j);
        journal_close(j);
    }
    journal *j = jopen(0, JOURNAL_SEGMENT_SIZE_MIN, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.z.1", 2), XAC_OK);
    jclose(j, NULL);
    CU_ASSERT(check_segments(JOURNAL_SEGMENT_SIZE_MIN) >= 1);
    j = jopen(0, 2 * SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_TRUE(txn_is(j, "n1.z.1", 2));
    for (int i = 0; i < 100; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.z.x%d", i);
        CU_ASSERT_EQUAL(commit_nb(j, g, BIG_NB), XAC_OK);
        CU_ASSERT_EQUAL(jend(j, g), XAC_OK);
    }
    jclose(j, NULL);
    j = jopen(0, 0, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_TRUE(txn_is(j, "n1.z.1", 2));
    CU_ASSERT_EQUAL(stats(j).pending, 1);
    jclose(j, NULL);
    dir_rm();

    /* The default is 16 MiB. */
    dir_new();
    j = jopen(0, 0, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.z.2", 2), XAC_OK);
    jclose(j, NULL);
    CU_ASSERT(check_segments(JOURNAL_SEGMENT_SIZE_DEFAULT) == 1);
    dir_rm();
}

/* ------------------------------------------------------------ deletion */

/* Everything ended: old segments go, the directory stays at a few files. */
static void test_deletion(void)
{
    dir_new();
    journal *j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    uint64_t created0 = stats(j).created;
    for (int i = 0; i < 400; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.d.%d", i);
        CU_ASSERT_EQUAL_FATAL(commit_nb(j, g, BIG_NB), XAC_OK);
        CU_ASSERT_EQUAL(jend(j, g), XAC_OK);
    }
    journal_stats st = stats(j);
    CU_ASSERT(st.created >= created0 + 8);
    CU_ASSERT(st.deleted > 0);
    CU_ASSERT(st.deleted + 4 >= st.created);
    CU_ASSERT(st.segments <= 3);
    CU_ASSERT_EQUAL(st.pending, 0);
    jclose(j, NULL);
    listing l;
    list_dir(&l);
    CU_ASSERT(l.nseg >= 1 && l.nseg <= 3);
    CU_ASSERT(l.ntmp <= 1);
    CU_ASSERT(l.nseg > 0 && l.seg[0] > 1);
    if (l.nseg > 3 || l.ntmp > 1)
        xac_loge("deletion: %d segments and %d spares left", l.nseg, l.ntmp);
    CU_ASSERT_EQUAL(check_segments(SEG), l.nseg);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(stats(j).pending, 0);
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.d.399"));
    jclose(j, NULL);
    dir_rm();
}

/* -------------------------------------------------------- carry-forward */

#define PIN_DECIDED 1234567890123ull

static void commit_pin(journal *j)
{
    journal_txn t;
    txn(&t, "n1.pin.1", 5, PIN_DECIDED);
    snprintf(t.resources[4], sizeof t.resources[4], "pg_billing-2");
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &cerr), XAC_OK);
}

static bool pin_ok(journal *j)
{
    journal_txn t;
    if (!journal_lookup(j, "n1.pin.1", &t))
        return false;
    return t.nbranches == 5 && t.decided_us == PIN_DECIDED &&
           strcmp(t.resources[0], "resource_000000000000000000000") == 0 &&
           strcmp(t.resources[3], "resource_000000000000000000003") == 0 &&
           strcmp(t.resources[4], "pg_billing-2") == 0;
}

/* Commits and ends big transactions until the journal has created at least
 * rotations more segment files. Returns false if a commit failed. */
static bool churn(journal *j, const char *tag, int rotations)
{
    uint64_t c0 = stats(j).created;
    for (int i = 0; i < 100 * rotations + 100; i++) {
        if (stats(j).created >= c0 + (uint64_t)rotations)
            return true;
        char g[40];
        snprintf(g, sizeof g, "n1.%s.%d", tag, i);
        if (commit_nb(j, g, BIG_NB) != XAC_OK || jend(j, g) != XAC_OK) {
            xac_loge("churn %s: %s", g, cerr.msg);
            return false;
        }
    }
    return stats(j).created >= c0 + (uint64_t)rotations;
}

/* A transaction that is never ended does not pin its segment: it is carried
 * forward and survives every reopen with its branches and decision time. */
static void test_carry_forward(void)
{
    dir_new();
    journal *j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    commit_pin(j);
    uint64_t pinseg = seg_holding("n1.pin.1");
    CU_ASSERT(pinseg >= 1);
    CU_ASSERT_TRUE(churn(j, "cf", 12));
    journal_stats st = stats(j);
    CU_ASSERT(st.carried >= 1);
    CU_ASSERT(st.deleted >= 1);
    CU_ASSERT_EQUAL(st.pending, 1);
    CU_ASSERT_TRUE(pin_ok(j));
    jclose(j, NULL);
    listing l;
    list_dir(&l);
    CU_ASSERT(l.nseg >= 1 && l.nseg <= 3);
    CU_ASSERT(l.ntmp <= 1);
    char p[PATH_MAX + 32];
    seg_path(p, sizeof p, pinseg);
    CU_ASSERT_EQUAL(jt_fsize(p), -1); /* the pinned COMMIT's first home is gone */
    CU_ASSERT(seg_holding("n1.pin.1") > pinseg);

    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(stats(j).pending, 1);
    CU_ASSERT_TRUE(pin_ok(j));
    /* Carrying goes on after a restart, from what replay found. */
    uint64_t s1 = seg_holding("n1.pin.1");
    CU_ASSERT_TRUE(churn(j, "cf2", 6));
    CU_ASSERT(stats(j).carried >= 1);
    jclose(j, NULL);
    list_dir(&l);
    CU_ASSERT(l.nseg <= 3 && l.ntmp <= 1);
    CU_ASSERT(seg_holding("n1.pin.1") > s1);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(stats(j).pending, 1);
    CU_ASSERT_TRUE(pin_ok(j));
    /* Once ended, nothing is left to carry. */
    CU_ASSERT_EQUAL(jend(j, "n1.pin.1"), XAC_OK);
    CU_ASSERT_TRUE(churn(j, "cf3", 4));
    jclose(j, NULL);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(stats(j).pending, 0);
    jclose(j, NULL);
    CU_ASSERT_EQUAL(seg_holding("n1.pin.1"), 0);
    dir_rm();
}

/* More undecided transactions than one segment holds: every one survives
 * rotation, carrying and reopen. */
static void test_pending_exceeds_segment(void)
{
    dir_new();
    journal *j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    const int npin = 120; /* about 180 KB of COMMIT records */
    for (int i = 0; i < npin; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.pp.%d", i);
        CU_ASSERT_EQUAL_FATAL(commit_nb(j, g, BIG_NB), XAC_OK);
    }
    CU_ASSERT_TRUE(churn(j, "pe", 8));
    CU_ASSERT_EQUAL(stats(j).pending, (size_t)npin);
    CU_ASSERT_FALSE(stats(j).failed);
    jclose(j, NULL);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(stats(j).pending, (size_t)npin);
    CU_ASSERT_EQUAL(missing_big(j, "pp", npin, 1), 0);
    jclose(j, NULL);
    CU_ASSERT(check_segments(SEG) >= 1);
    dir_rm();
}

/* ------------------------------------------------------------ torn tail */

/* Free bytes after the records of the highest-numbered segment. */
static long active_room(void)
{
    listing l;
    list_dir(&l);
    if (l.nseg == 0)
        return 0;
    char p[PATH_MAX + 32];
    seg_path(p, sizeof p, l.seg[l.nseg - 1]);
    long used = jt_used(p);
    return used < 0 ? 0 : (long)SEG - used;
}

/* The image of a segment whose last record is n1.t.3, with that record's
 * extent. */
typedef struct torn_setup {
    char path[PATH_MAX + 32];
    uint8_t *img;
    size_t n;
    long start, len;
} torn_setup;

static bool torn_build(torn_setup *s, bool rotate_first)
{
    journal *j = jopen(0, SEG, NULL);
    if (j == NULL)
        return false;
    if (rotate_first) {
        CU_ASSERT_TRUE(churn(j, "tr", 2));
        /* The three records below must land in one segment. */
        for (int i = 0; i < 100 && active_room() < 4096; i++) {
            char g[32];
            snprintf(g, sizeof g, "n1.tr.x%d", i);
            CU_ASSERT_EQUAL(commit_nb(j, g, BIG_NB), XAC_OK);
            CU_ASSERT_EQUAL(jend(j, g), XAC_OK);
        }
    }
    CU_ASSERT_EQUAL(commit_nb(j, "n1.t.1", 2), XAC_OK);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.t.2", 3), XAC_OK);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.t.3", 4), XAC_OK);
    jclose(j, NULL);
    uint64_t segno = seg_holding("n1.t.3");
    listing l;
    list_dir(&l);
    CU_ASSERT(segno > 0 && l.nseg > 0 && segno == l.seg[l.nseg - 1]);
    CU_ASSERT_EQUAL(seg_holding("n1.t.1"), segno);
    seg_path(s->path, sizeof s->path, segno);
    s->img = jt_slurp(s->path, &s->n);
    if (s->img == NULL)
        return false;
    jt_rec r[1024];
    long endoff;
    int k = jt_scan(s->img, s->n, r, 1024, &endoff);
    CU_ASSERT(k >= 3 && k <= 1024);
    if (k < 3 || k > 1024)
        return false;
    CU_ASSERT_STRING_EQUAL(r[k - 1].gtrid, "n1.t.3");
    CU_ASSERT(jt_all_zero(s->img, (size_t)endoff, s->n));
    CU_ASSERT(s->n >= SEG);
    s->start = r[k - 1].off;
    s->len = r[k - 1].len;
    return strcmp(r[k - 1].gtrid, "n1.t.3") == 0;
}

/* The last record is replaced from byte k on by zeros (a write cut short in
 * the preallocated area), or its first k bytes by garbage and the rest by
 * zeros. Every cut reopens without it and keeps the earlier ones; the next
 * commit goes where the good data ends and survives another reopen. */
static void torn_run(bool garbage, bool rotate_first)
{
    dir_new();
    torn_setup s;
    CU_ASSERT_TRUE_FATAL(torn_build(&s, rotate_first));
    uint8_t *b = malloc(s.n);
    CU_ASSERT_FATAL(b != NULL);
    int bad = 0, cuts = 0, shrunk = 0;
    uint32_t rnd = 2463534242u;
    for (long k = garbage ? 1 : 0; k < s.len && bad < 3; k++) {
        memcpy(b, s.img, s.n);
        if (garbage)
            for (long i = 0; i < k; i++) {
                rnd ^= rnd << 13;
                rnd ^= rnd >> 17;
                rnd ^= rnd << 5;
                b[s.start + i] = (uint8_t)(rnd | 1);
            }
        memset(b + s.start + k, 0, (size_t)(s.len - k));
        jt_spit(s.path, b, s.n);
        int rc;
        xac_err e;
        journal *j = jopen_rc(0, SEG, NULL, &rc, &e);
        if (rc != XAC_OK) {
            CU_FAIL("open with a torn tail failed");
            xac_loge("torn %s k=%ld: %s", garbage ? "garbage" : "zeros", k, e.msg);
            bad++;
            continue;
        }
        /* stage tells which expectation failed first, for the log. */
        int stage = 0;
        if (journal_is_committed(j, "n1.t.1") && txn_is(j, "n1.t.2", 3) &&
            !journal_is_committed(j, "n1.t.3") && stats(j).pending == 2)
            stage = 1;
        jclose(j, NULL);
        size_t n2;
        uint8_t *after = jt_slurp(s.path, &n2);
        if (stage == 1 && after != NULL && jt_all_zero(after, (size_t)s.start, n2))
            stage = 2;
        /* Zeroed in place, not truncated: the segment stays preallocated, so
         * later writes into it change no metadata and cannot meet a full
         * disk. Counted apart so that the rest is still checked at every k. */
        if (after != NULL && n2 < SEG && shrunk++ == 0)
            xac_loge("torn %s k=%ld: the segment was cut to %zu bytes, below its "
                     "preallocated %u",
                     garbage ? "garbage" : "zeros", k, n2, SEG);
        free(after);
        j = jopen(0, SEG, NULL);
        if (stage == 2 && j != NULL && commit_nb(j, "n1.t.4", 2) == XAC_OK)
            stage = 3;
        jclose(j, NULL);
        j = jopen(0, SEG, NULL);
        if (stage == 3 && j != NULL && journal_is_committed(j, "n1.t.1") &&
            journal_is_committed(j, "n1.t.2") && !journal_is_committed(j, "n1.t.3") &&
            txn_is(j, "n1.t.4", 2))
            stage = 4;
        jclose(j, NULL);
        if (stage != 4) {
            CU_FAIL("torn tail not repaired as expected");
            static const char *const what[] = {
                "replay kept the wrong records", "the torn bytes are still in the file",
                "the next commit failed", "the next commit did not survive a reopen"};
            xac_loge("torn %s k=%ld of %ld: %s", garbage ? "garbage" : "zeros", k, s.len,
                     what[stage]);
            bad++;
        }
        cuts++;
    }
    CU_ASSERT_EQUAL(shrunk, 0);
    CU_ASSERT(cuts > 100);
    free(b);
    free(s.img);
    dir_rm();
}

static void test_torn_zeros(void)
{
    torn_run(false, false);
}

static void test_torn_garbage(void)
{
    torn_run(true, false);
}

static void test_torn_after_rotation(void)
{
    torn_run(false, true);
}

/* ------------------------------------------------------------ corruption */

/* A journal of two segments, both holding undecided COMMITs: the older one
 * full, the active one with a few records. */
typedef struct two_segs {
    uint64_t seg[2];
    char path[2][PATH_MAX + 32];
    uint8_t *img[2];
    size_t n[2];
    jt_rec rec[2][512];
    int nrec[2];
    int total;
} two_segs;

static bool two_build(two_segs *t)
{
    memset(t, 0, sizeof *t);
    journal *j = jopen(0, SEG, NULL);
    if (j == NULL)
        return false;
    /* 60 records of 1.5 KB: the first segment fills, the second gets ~20. */
    t->total = 60;
    for (int i = 0; i < t->total; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.c.%d", i);
        CU_ASSERT_EQUAL(commit_nb(j, g, BIG_NB), XAC_OK);
    }
    jclose(j, NULL);
    listing l;
    list_dir(&l);
    int used = 0;
    for (int i = 0; i < l.nseg && used < 2; i++) {
        char p[PATH_MAX + 32];
        seg_path(p, sizeof p, l.seg[i]);
        size_t n;
        uint8_t *b = jt_slurp(p, &n);
        long e;
        int k = b != NULL ? jt_scan(b, n, t->rec[used], 512, &e) : 0;
        if (k == 0) {
            free(b);
            continue;
        }
        t->seg[used] = l.seg[i];
        snprintf(t->path[used], sizeof t->path[used], "%s", p);
        t->img[used] = b;
        t->n[used] = n;
        t->nrec[used] = k;
        used++;
    }
    CU_ASSERT_EQUAL(used, 2);
    CU_ASSERT(t->nrec[0] >= 5 && t->nrec[1] >= 5);
    CU_ASSERT_EQUAL(t->nrec[0] + t->nrec[1], t->total);
    return used == 2 && t->nrec[0] >= 5 && t->nrec[1] >= 5;
}

static void two_free(two_segs *t)
{
    free(t->img[0]);
    free(t->img[1]);
}

/* The files under <dir>/damaged/ that hold a copy of img (the damaged
 * segment as it was before the salvage open). */
static int damaged_copies(const uint8_t *img, size_t n, long bad_off)
{
    char dd[PATH_MAX + 16];
    snprintf(dd, sizeof dd, "%s/damaged", tdir);
    DIR *d = opendir(dd);
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", dd, e->d_name);
        size_t cn;
        uint8_t *c = jt_slurp(p, &cn);
        /* A copy may stop where the data ends; it must reach the damage. */
        if (c != NULL && cn > (size_t)bad_off && cn <= n && memcmp(c, img, cn) == 0)
            found++;
        free(c);
    }
    closedir(d);
    return found;
}

/* A flipped payload byte in a middle record of segment which (0 = older,
 * 1 = active): refused with the file and offset; salvaged on request. */
static void corrupt_run(int which)
{
    dir_new();
    two_segs t;
    CU_ASSERT_TRUE_FATAL(two_build(&t));
    int m = t.nrec[which] / 2;
    jt_rec bad = t.rec[which][m];
    uint8_t *b = malloc(t.n[which]);
    CU_ASSERT_FATAL(b != NULL);
    memcpy(b, t.img[which], t.n[which]);
    b[bad.off + 12] ^= 0x10;
    jt_spit(t.path[which], b, t.n[which]);

    int rc;
    xac_err e;
    journal *j = jopen_rc(0, SEG, NULL, &rc, &e);
    CU_ASSERT_EQUAL(rc, XAC_EJOURNAL);
    CU_ASSERT_PTR_NULL(j);
    journal_close(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, t.path[which]));
    CU_ASSERT_TRUE(names_offset(e.msg, bad.off));
    if (strstr(e.msg, t.path[which]) == NULL || !names_offset(e.msg, bad.off))
        xac_loge("corruption at %s offset %ld reported as: %s", t.path[which], bad.off, e.msg);
    /* A refused open changes nothing. */
    size_t n2;
    uint8_t *after = jt_slurp(t.path[which], &n2);
    CU_ASSERT(after != NULL && n2 == t.n[which] && memcmp(after, b, n2) == 0);
    free(after);
    j = jopen_rc(JOURNAL_READONLY, SEG, NULL, &rc, &e);
    CU_ASSERT_EQUAL(rc, XAC_EJOURNAL);
    journal_close(j);

    j = jopen(JOURNAL_SALVAGE, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    journal_stats st = stats(j);
    CU_ASSERT(st.salvaged > 0);
    CU_ASSERT_EQUAL(st.pending, (size_t)t.total - 1);
    CU_ASSERT_FALSE(journal_is_committed(j, bad.gtrid));
    int missing = 0;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < t.nrec[s]; i++)
            if (!(s == which && i == m) && !txn_is(j, t.rec[s][i].gtrid, BIG_NB))
                missing++;
    CU_ASSERT_EQUAL(missing, 0); /* the records after the damage too */
    CU_ASSERT(damaged_copies(b, t.n[which], bad.off) >= 1);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.c.after", 2), XAC_OK);
    jclose(j, NULL);

    /* The salvaged journal starts normally from then on. */
    j = jopen_rc(0, SEG, NULL, &rc, &e);
    CU_ASSERT_EQUAL(rc, XAC_OK);
    if (rc != XAC_OK)
        xac_loge("normal open after a salvage: %s", e.msg);
    if (j != NULL) {
        CU_ASSERT_TRUE(txn_is(j, "n1.c.after", 2));
        CU_ASSERT_EQUAL(stats(j).pending, (size_t)t.total);
        CU_ASSERT_FALSE(journal_is_committed(j, bad.gtrid));
    }
    journal_close(j);
    free(b);
    two_free(&t);
    dir_rm();
}

static void test_corrupt_older(void)
{
    corrupt_run(0);
}

static void test_corrupt_active(void)
{
    corrupt_run(1);
}

/* ------------------------------------------------------------ io faults */

/* A batch whose write or sync fails (op) fails the journal for good. When
 * the cut works the committer is told the record is certainly not on disk,
 * and it is not there after a reopen; when the cut fails too it is in doubt. */
static void fault_run(journal_io op, bool cut_fails)
{
    dir_new();
    hooks h = {0};
    journal *j = jopen(0, SEG, &h);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.f.1", 2), XAC_OK);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.f.e", 2), XAC_OK);
    CU_ASSERT_EQUAL(jend(j, "n1.f.e"), XAC_OK);
    atomic_store(&h.fail[op], EIO);
    if (cut_fails)
        atomic_store(&h.fail[JOURNAL_IO_CUT], EROFS);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.f.2", 3), XAC_EJOURNAL);
    CU_ASSERT_EQUAL(in_doubt, cut_fails);
    CU_ASSERT_PTR_NOT_NULL(strstr(cerr.msg, strerror(EIO)));
    CU_ASSERT(atomic_load(&h.fails[op]) >= 1);
    CU_ASSERT(atomic_load(&h.calls[JOURNAL_IO_CUT]) >= 1);
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.f.2"));
    journal_stats st = stats(j);
    CU_ASSERT_TRUE(st.failed);
    CU_ASSERT_EQUAL(st.commits, 2);
    /* Failed for good, even with the fault gone: refused, certainly not
     * written. */
    atomic_store(&h.fail[op], 0);
    atomic_store(&h.fail[JOURNAL_IO_CUT], 0);
    int writes = atomic_load(&h.calls[JOURNAL_IO_WRITE]);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.f.3", 2), XAC_EJOURNAL);
    CU_ASSERT_FALSE(in_doubt);
    CU_ASSERT_PTR_NOT_NULL(strstr(cerr.msg, strerror(EIO)));
    CU_ASSERT_EQUAL(jend(j, "n1.f.1"), XAC_EJOURNAL);
    CU_ASSERT_EQUAL(atomic_load(&h.calls[JOURNAL_IO_WRITE]), writes);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.f.1"));
    jclose(j, &h);

    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_TRUE(txn_is(j, "n1.f.1", 2));
    if (!cut_fails)
        CU_ASSERT_FALSE(journal_is_committed(j, "n1.f.2"));
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.f.3"));
    /* Whatever the replay settled, the journal works again. */
    CU_ASSERT_EQUAL(commit_nb(j, "n1.f.4", 2), XAC_OK);
    bool f2 = journal_is_committed(j, "n1.f.2");
    jclose(j, NULL);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.f.4"));
    CU_ASSERT_EQUAL(journal_is_committed(j, "n1.f.2"), f2);
    jclose(j, NULL);
    dir_rm();
}

static void test_sync_fails_cut_works(void)
{
    fault_run(JOURNAL_IO_SYNC, false);
}

static void test_sync_fails_cut_fails(void)
{
    fault_run(JOURNAL_IO_SYNC, true);
}

static void test_write_fails_cut_works(void)
{
    fault_run(JOURNAL_IO_WRITE, false);
}

static void test_write_fails_cut_fails(void)
{
    fault_run(JOURNAL_IO_WRITE, true);
}

/* Committers under load when the sync starts failing. */
#define LOAD_THREADS 8
#define LOAD_MAX     20000

typedef struct load_worker {
    journal *j;
    int id;
    int ok;        /* commits 0..ok-1 succeeded */
    int failed_rc; /* of commit number ok */
    bool failed_doubt;
    bool refused_ok; /* the commit after the failure was refused, not in doubt */
} load_worker;

static void *load_main(void *arg)
{
    load_worker *w = arg;
    w->failed_rc = XAC_OK;
    for (int i = 0; i < LOAD_MAX; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.L%x.%x", w->id, i);
        journal_txn t;
        txn(&t, g, 2, 1000002u);
        bool d = false;
        xac_err e;
        int rc = journal_commit(w->j, &t, &d, &e);
        if (rc == XAC_OK) {
            w->ok = i + 1;
            continue;
        }
        w->failed_rc = rc;
        w->failed_doubt = d;
        snprintf(g, sizeof g, "n1.L%x.x", w->id);
        txn(&t, g, 2, 1000002u);
        d = true;
        w->refused_ok = journal_commit(w->j, &t, &d, &e) == XAC_EJOURNAL && !d;
        break;
    }
    return NULL;
}

/* The sync fails while 8 threads commit: every committer of the failed batch
 * and of the batch being filled fails; those told "not in doubt" are not on
 * disk after a reopen, those that succeeded are. */
static void load_run(bool cut_fails)
{
    dir_new();
    hooks h = {0};
    journal *j = jopen(0, SEG, &h);
    CU_ASSERT_FATAL(j != NULL);
    pthread_t th[LOAD_THREADS];
    load_worker w[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++) {
        w[i] = (load_worker){.j = j, .id = i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, load_main, &w[i]), 0);
    }
    for (int i = 0; i < 10000 && stats(j).commits < 400; i++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    if (cut_fails)
        atomic_store(&h.fail[JOURNAL_IO_CUT], EROFS);
    atomic_store(&h.fail[JOURNAL_IO_SYNC], EIO);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_TRUE(stats(j).failed);
    jclose(j, &h);
    int doubt = 0;
    for (int i = 0; i < LOAD_THREADS; i++) {
        CU_ASSERT_EQUAL(w[i].failed_rc, XAC_EJOURNAL);
        CU_ASSERT_TRUE(w[i].refused_ok);
        doubt += w[i].failed_doubt;
    }
    if (!cut_fails) {
        CU_ASSERT_EQUAL(doubt, 0);
    } else {
        CU_ASSERT(doubt >= 1);
    }
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    int lost = 0, resurrected = 0;
    for (int i = 0; i < LOAD_THREADS; i++) {
        for (int k = 0; k < w[i].ok; k++) {
            char g[32];
            snprintf(g, sizeof g, "n1.L%x.%x", i, k);
            if (!journal_is_committed(j, g))
                lost++;
        }
        char g[32];
        snprintf(g, sizeof g, "n1.L%x.%x", i, w[i].ok);
        if (!w[i].failed_doubt && journal_is_committed(j, g))
            resurrected++;
        snprintf(g, sizeof g, "n1.L%x.x", i);
        if (journal_is_committed(j, g))
            resurrected++;
    }
    CU_ASSERT_EQUAL(lost, 0);
    CU_ASSERT_EQUAL(resurrected, 0);
    jclose(j, NULL);
    dir_rm();
}

static void test_load_sync_fails_cut_works(void)
{
    load_run(false);
}

static void test_load_sync_fails_cut_fails(void)
{
    load_run(true);
}

/* No space for a new segment fails only the commit that needed it, which
 * certainly did not commit; once space is back the journal goes on. */
static void test_create_fails(void)
{
    dir_new();
    hooks h = {0};
    journal *j = jopen(0, SEG, &h);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.n.keep", 2), XAC_OK);
    atomic_store(&h.fail[JOURNAL_IO_CREATE], ENOSPC);
    int failed_at = -1;
    char failed_g[32] = "";
    for (int i = 0; i < 200 && failed_at < 0; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.n.%d", i);
        int rc = commit_nb(j, g, BIG_NB);
        if (rc != XAC_OK) {
            failed_at = i;
            snprintf(failed_g, sizeof failed_g, "%s", g);
            CU_ASSERT_EQUAL(rc, XAC_EJOURNAL);
            CU_ASSERT_FALSE(in_doubt);
            CU_ASSERT_PTR_NOT_NULL(strstr(cerr.msg, strerror(ENOSPC)));
            if (strstr(cerr.msg, strerror(ENOSPC)) == NULL)
                xac_loge("create failure reported as: %s", cerr.msg);
            break;
        }
        if (i % 10 != 0)
            CU_ASSERT_EQUAL(jend(j, g), XAC_OK);
    }
    CU_ASSERT_FATAL(failed_at >= 0);
    CU_ASSERT(atomic_load(&h.fails[JOURNAL_IO_CREATE]) >= 1);
    listing l;
    list_dir(&l);
    CU_ASSERT(l.ntmp <= 1); /* a failed creation leaves no debris behind */
    CU_ASSERT_FALSE(journal_is_committed(j, failed_g));
    CU_ASSERT_FALSE(stats(j).failed);
    atomic_store(&h.fail[JOURNAL_IO_CREATE], 0);
    CU_ASSERT_EQUAL(commit_nb(j, "n1.n.next", 2), XAC_OK);
    CU_ASSERT_TRUE(churn(j, "nx", 3));
    CU_ASSERT_FALSE(stats(j).failed);
    jclose(j, &h);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_FALSE(journal_is_committed(j, failed_g));
    CU_ASSERT_TRUE(txn_is(j, "n1.n.keep", 2));
    CU_ASSERT_TRUE(txn_is(j, "n1.n.next", 2));
    CU_ASSERT_EQUAL(missing_big(j, "n", failed_at, 10), 0);
    jclose(j, NULL);
    CU_ASSERT(check_segments(SEG) >= 1);
    dir_rm();
}

/* ------------------------------------------------------------ step hook */

typedef struct step_run {
    journal *j;
    hooks *h;
    atomic_bool done;
    bool ok;
} step_run;

static void *step_worker(void *arg)
{
    step_run *r = arg;
    r->h->committer = pthread_self();
    atomic_store(&r->h->have_committer, true);
    journal_txn t;
    txn(&t, "n1.sp.pin", 3, 42);
    bool d;
    xac_err e;
    r->ok = journal_commit(r->j, &t, &d, &e) == XAC_OK && churn(r->j, "sp", 12);
    atomic_store(&r->done, true);
    return NULL;
}

/* Every named step is reached, only named steps are, none on the committing
 * thread, and the hook may call into the journal (no mutex held). */
static void test_step_hook(void)
{
    dir_new();
    /* Static: a hung worker may still use them after the test gives up. */
    static hooks h;
    static step_run r;
    memset(&h, 0, sizeof h);
    h.call_stats = true;
    journal *j = jopen(0, SEG, &h);
    CU_ASSERT_FATAL(j != NULL);
    r = (step_run){.j = j, .h = &h, .done = false, .ok = false};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, step_worker, &r), 0);
    /* A hook that deadlocks would hang the run: give up after two minutes. */
    for (int i = 0; i < 1200 && !atomic_load(&r.done); i++)
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    if (!atomic_load(&r.done)) {
        CU_FAIL("commits with a step hook that calls journal_get_stats hung (deadlock?)");
        return; /* the journal and its directory are left behind */
    }
    pthread_join(th, NULL);
    CU_ASSERT_TRUE(r.ok);
    CU_ASSERT(stats(j).carried >= 1);
    jclose(j, &h);
    for (int i = 0; i < NSTEPS; i++) {
        int c = atomic_load(&h.steps[i]);
        CU_ASSERT(c >= 1);
        if (c < 1)
            xac_loge("step \"%s\" never called", step_names[i]);
    }
    CU_ASSERT(atomic_load(&h.steps[0]) >= 12 && atomic_load(&h.steps[1]) >= 12);
    CU_ASSERT_EQUAL(atomic_load(&h.unknown_steps), 0);
    CU_ASSERT_EQUAL(atomic_load(&h.on_committer), 0);
    CU_ASSERT(atomic_load(&h.stats_in_step) >= 1);
    dir_rm();
}

/* ------------------------------------------------------------ syncs */

/* One committer: each commit is written and synced alone, at once. */
static void test_lone_committer(void)
{
    dir_new();
    journal *j = jopen(0, 0, NULL);
    CU_ASSERT_FATAL(j != NULL);
    for (int i = 0; i < 200; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.lone.%d", i);
        CU_ASSERT_EQUAL(commit_nb(j, g, 2), XAC_OK);
        CU_ASSERT_EQUAL(jend(j, g), XAC_OK);
    }
    journal_stats st = stats(j);
    CU_ASSERT_EQUAL(st.commits, 200);
    CU_ASSERT_EQUAL(st.syncs, 200);
    if (st.syncs != 200)
        xac_loge("lone committer: %" PRIu64 " syncs for 200 commits", st.syncs);
    jclose(j, NULL);
    dir_rm();
}

#define NTHREADS 64

typedef struct worker {
    journal *j;
    int id;
    int per_thread;
    int big; /* 0: 2 to 4 branches; else BIG_NB - i % 3 */
    int failures;
} worker;

static int worker_nb(const worker *w, int i)
{
    return w->big ? BIG_NB - i % 3 : 2 + i % 3;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < w->per_thread; i++) {
        char g[32];
        snprintf(g, sizeof g, "n1.%x.%x", w->id, i);
        journal_txn t;
        txn(&t, g, worker_nb(w, i), 1000000u + (uint64_t)worker_nb(w, i));
        bool d;
        xac_err e;
        if (journal_commit(w->j, &t, &d, &e) != XAC_OK || !journal_is_committed(w->j, g)) {
            w->failures++;
            continue;
        }
        if (i % 20 != 0 && journal_end(w->j, g, &e) != XAC_OK)
            w->failures++;
    }
    return NULL;
}

/* 64 committers share syncs across rotations of small segments; with big
 * records one batch can be larger than a whole segment. */
static void group_run(int per_thread, int big)
{
    dir_new();
    journal *j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    pthread_t th[NTHREADS];
    worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){.j = j, .id = i, .per_thread = per_thread, .big = big};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    CU_ASSERT_EQUAL(failures, 0);
    size_t pend = (size_t)NTHREADS * (size_t)((per_thread + 19) / 20);
    journal_stats st = stats(j);
    CU_ASSERT_EQUAL(st.commits, (uint64_t)NTHREADS * (uint64_t)per_thread);
    CU_ASSERT(st.syncs >= 1 && st.syncs < st.commits);
    CU_ASSERT(st.created >= 2);
    CU_ASSERT_EQUAL(st.pending, pend);
    CU_ASSERT_FALSE(st.failed);
    jclose(j, NULL);
    j = jopen(0, SEG, NULL);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(stats(j).pending, pend);
    int wrong = 0;
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < per_thread; i++) {
            char g[32];
            snprintf(g, sizeof g, "n1.%x.%x", t, i);
            if (i % 20 == 0 ? !txn_is(j, g, worker_nb(&w[t], i)) : journal_is_committed(j, g))
                wrong++;
        }
    CU_ASSERT_EQUAL(wrong, 0);
    jclose(j, NULL);
    dir_rm();
}

static void test_group_commit_64(void)
{
    group_run(200, 0);
}

static void test_group_commit_64_big(void)
{
    group_run(30, 1);
}

int cu_register(void)
{
    xac_log_init("test_journal_segments", XAC_LOG_ERROR, NULL, NULL);
    static const cu_test tests[] = {
        {"rotation: preallocated segments, reopen", test_rotation},
        {"segment_size limits and changes", test_segment_size},
        {"deletion of ended segments", test_deletion},
        {"carry-forward of an undecided transaction", test_carry_forward},
        {"more undecided transactions than a segment holds", test_pending_exceeds_segment},
        {"torn tail: zeros from every byte", test_torn_zeros},
        {"torn tail: garbage prefix of every length", test_torn_garbage},
        {"torn tail in a later segment", test_torn_after_rotation},
        {"corruption in an older segment", test_corrupt_older},
        {"corruption in the active segment", test_corrupt_active},
        {"fault: sync fails, cut works", test_sync_fails_cut_works},
        {"fault: sync fails, cut fails", test_sync_fails_cut_fails},
        {"fault: write fails, cut works", test_write_fails_cut_works},
        {"fault: write fails, cut fails", test_write_fails_cut_fails},
        {"fault under load: sync fails, cut works", test_load_sync_fails_cut_works},
        {"fault under load: sync fails, cut fails", test_load_sync_fails_cut_fails},
        {"fault: segment creation fails (ENOSPC)", test_create_fails},
        {"step hook", test_step_hook},
        {"lone committer: one sync per commit", test_lone_committer},
        {"group commit, 64 threads, small segments", test_group_commit_64},
        {"group commit, 64 threads, 1.5 KB records (batches up to 96 KB)",
         test_group_commit_64_big},
        {NULL, NULL}};
    return cu_add_suite("journal_segments", tests);
}
