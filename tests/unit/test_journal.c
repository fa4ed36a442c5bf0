/* Unit tests of the decision journal: round trips through close and reopen,
 * torn tails cut at every byte of the last record, corruption and bad headers
 * refused with file and offset, the directory lock, read-only replay, group
 * commit under 16 threads, and a journal that stops after a failed write.
 * Segments are preallocated with zeros, so where records end is found by
 * reading them (jt_used()), not from the file size. Rotation, deletion, salvage
 * and fault hooks are in test_journal_segments.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cu.h"
#include "jtest.h"
#include "journal.h"

static bool in_doubt; /* journal_commit's verdict on a failure, for the tests that look */

#define SEG_NAME "0000000000000001.xacj"

static char tdir[PATH_MAX];
static char tseg[PATH_MAX + 32];

static void dir_new(void)
{
    jt_dir_new(tdir, sizeof tdir, "/tmp/xacj-test-XXXXXX");
    snprintf(tseg, sizeof tseg, "%s/%s", tdir, SEG_NAME);
}

static void dir_rm(void)
{
    jt_dir_rm(tdir);
}

static void txn(journal_txn *t, const char *gtrid, int nb)
{
    memset(t, 0, sizeof *t);
    snprintf(t->gtrid, sizeof t->gtrid, "%s", gtrid);
    t->nbranches = (uint8_t)nb;
    t->decided_us = 1000000u + (uint64_t)nb;
    for (int i = 0; i < nb; i++)
        snprintf(t->resources[i], sizeof t->resources[i], "res_%d", i);
}

static int commit(journal *j, const char *gtrid, int nb)
{
    journal_txn t;
    txn(&t, gtrid, nb);
    xac_err e;
    xac_err_clear(&e);
    return journal_commit(j, &t, &in_doubt, &e);
}

static journal *open_ok(int flags)
{
    journal *j = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = journal_open(tdir, flags, &j, &e);
    CU_ASSERT_EQUAL(rc, XAC_OK);
    if (rc != XAC_OK)
        xac_loge("journal_open: %s", e.msg);
    return j;
}

/* Whether the file holds nothing but zeros from off on (a torn tail is gone,
 * by zeroing or by truncation). */
static bool zero_from(const char *p, long off)
{
    size_t n;
    uint8_t *b = jt_slurp(p, &n);
    bool z = b != NULL && jt_all_zero(b, (size_t)off, n);
    free(b);
    return z;
}

/* Commits gtrids g[0..n) one open at a time, recording where each record
 * starts; offs[n] is the end of the last one. */
static void build(const char *const *g, int n, long *offs)
{
    for (int i = 0; i < n; i++) {
        journal *j = open_ok(0);
        CU_ASSERT_FATAL(j != NULL);
        offs[i] = jt_used(tseg);
        CU_ASSERT_EQUAL(commit(j, g[i], 2 + i % 3), XAC_OK);
        journal_close(j);
    }
    offs[n] = jt_used(tseg);
}

static void test_roundtrip(void)
{
    dir_new();
    journal *j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(jt_used(tseg), 20);
    CU_ASSERT(jt_fsize(tseg) >= (long)JOURNAL_SEGMENT_SIZE_DEFAULT); /* preallocated */
    CU_ASSERT_EQUAL(commit(j, "n1.a.1", 2), XAC_OK);
    CU_ASSERT_EQUAL(commit(j, "n1.a.2", 3), XAC_OK);
    CU_ASSERT_EQUAL(commit(j, "n1.a.3", 64), XAC_OK);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.a.1"));
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.a.9"));
    journal_stats st;
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.commits, 3);
    CU_ASSERT_EQUAL(st.syncs, 3);
    CU_ASSERT_EQUAL(st.pending, 3);
    xac_err e;
    CU_ASSERT_EQUAL(journal_end(j, "n1.a.2", &e), XAC_OK);
    CU_ASSERT_EQUAL(journal_end(j, "n1.unknown", &e), XAC_OK);
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.a.2"));
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.ends, 1);
    CU_ASSERT_EQUAL(st.syncs, 3); /* END is not forced */
    CU_ASSERT_EQUAL(st.pending, 2);
    journal_close(j);

    j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.replayed, 4);
    CU_ASSERT_EQUAL(st.pending, 2);
    CU_ASSERT_EQUAL(st.commits, 0);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.a.1"));
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.a.2"));
    journal_txn t;
    CU_ASSERT_TRUE_FATAL(journal_lookup(j, "n1.a.3", &t));
    CU_ASSERT_STRING_EQUAL(t.gtrid, "n1.a.3");
    CU_ASSERT_EQUAL(t.nbranches, 64);
    CU_ASSERT_EQUAL(t.decided_us, 1000064u);
    CU_ASSERT_STRING_EQUAL(t.resources[0], "res_0");
    CU_ASSERT_STRING_EQUAL(t.resources[63], "res_63");
    CU_ASSERT_FALSE(journal_lookup(j, "n1.a.2", &t));
    journal_txn *all;
    size_t n;
    CU_ASSERT_EQUAL(journal_pending(j, &all, &n, &e), XAC_OK);
    CU_ASSERT_EQUAL(n, 2);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].gtrid, "n1.a.1") == 0 && all[i].nbranches == 2 &&
            strcmp(all[i].resources[1], "res_1") == 0)
            seen |= 1;
        if (strcmp(all[i].gtrid, "n1.a.3") == 0)
            seen |= 2;
    }
    CU_ASSERT_EQUAL(seen, 3);
    free(all);
    /* Appends go after the replayed records. */
    CU_ASSERT_EQUAL(commit(j, "n1.b.1", 2), XAC_OK);
    CU_ASSERT_EQUAL(journal_end(j, "n1.a.1", &e), XAC_OK);
    journal_close(j);

    j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.a.1"));
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.a.3"));
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.b.1"));
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.replayed, 6);
    journal_close(j);
    dir_rm();
}

static void test_invalid_input(void)
{
    dir_new();
    journal *j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    journal_txn t;
    xac_err e;
    txn(&t, "n1.x.1", 2);
    snprintf(t.resources[1], sizeof t.resources[1], "bad name");
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &e), XAC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bad name"));
    txn(&t, "n1.x.1", 2);
    snprintf(t.resources[1], sizeof t.resources[1], "res_0");
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &e), XAC_EINVAL);
    txn(&t, "n1.x.1", 0);
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &e), XAC_EINVAL);
    txn(&t, "has space", 2);
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &e), XAC_EINVAL);
    txn(&t, "", 2);
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(journal_end(j, "", &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(jt_used(tseg), 20);
    journal_close(j);
    dir_rm();
}

/* Cuts the file inside the last record at every byte (a segment shorter than
 * its preallocated size, as an older xac wrote them): replay keeps the
 * earlier records, drops the torn one and removes its bytes. The same cuts
 * inside the zero-filled area are in test_journal_segments.c. */
static void test_torn_tail(void)
{
    dir_new();
    const char *g[] = {"n1.t.1", "n1.t.2", "n1.t.3"};
    long offs[4];
    build(g, 3, offs);
    size_t n;
    uint8_t *orig = jt_slurp(tseg, &n);
    CU_ASSERT_FATAL(orig != NULL && (long)n >= offs[3]);
    int cuts = 0;
    for (long cut = offs[2]; cut < offs[3]; cut++) {
        jt_spit(tseg, orig, (size_t)cut);
        journal *j = open_ok(0);
        CU_ASSERT_FATAL(j != NULL);
        CU_ASSERT_TRUE(journal_is_committed(j, "n1.t.1"));
        CU_ASSERT_TRUE(journal_is_committed(j, "n1.t.2"));
        CU_ASSERT_FALSE(journal_is_committed(j, "n1.t.3"));
        journal_txn t;
        CU_ASSERT_TRUE(journal_lookup(j, "n1.t.2", &t) && t.nbranches == 3 &&
                       strcmp(t.resources[2], "res_2") == 0);
        journal_stats st;
        journal_get_stats(j, &st);
        CU_ASSERT_EQUAL(st.replayed, 2);
        journal_close(j);
        CU_ASSERT_EQUAL(jt_used(tseg), offs[2]);
        CU_ASSERT_TRUE(zero_from(tseg, offs[2]));
        cuts++;
    }
    CU_ASSERT(cuts > 20);
    /* After a truncation the journal appends where the good data ends. */
    journal *j = open_ok(0);
    CU_ASSERT_EQUAL(commit(j, "n1.t.4", 2), XAC_OK);
    journal_close(j);
    j = open_ok(0);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.t.4"));
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.t.2"));
    journal_close(j);
    free(orig);
    dir_rm();
}

/* A last record whose CRC fails with only zeros after it is torn; so is a
 * zero-filled tail after good records. */
static void test_torn_zeros(void)
{
    dir_new();
    const char *g[] = {"n1.z.1", "n1.z.2"};
    long offs[3];
    build(g, 2, offs);
    size_t n;
    uint8_t *orig = jt_slurp(tseg, &n);
    CU_ASSERT_FATAL(orig != NULL);
    uint8_t *b = calloc(n + 4096, 1);
    memcpy(b, orig, n);
    b[offs[1] + 12] ^= 0x01;
    jt_spit(tseg, b, n + 4096);
    journal *j = open_ok(0);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.z.1"));
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.z.2"));
    journal_close(j);
    CU_ASSERT_EQUAL(jt_used(tseg), offs[1]);
    CU_ASSERT_TRUE(zero_from(tseg, offs[1]));

    memcpy(b, orig, n);
    memset(b + n, 0, 4096);
    jt_spit(tseg, b, n + 4096);
    j = open_ok(0);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.z.2"));
    journal_close(j);
    CU_ASSERT_EQUAL(jt_used(tseg), offs[2]);
    CU_ASSERT_TRUE(zero_from(tseg, offs[2]));
    free(b);
    free(orig);
    dir_rm();
}

static void expect_corrupt(const uint8_t *b, size_t n, long at)
{
    jt_spit(tseg, b, n);
    journal *j = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(journal_open(tdir, 0, &j, &e), XAC_EJOURNAL);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, tseg));
    char want[64];
    snprintf(want, sizeof want, "offset %ld:", at);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, want));
    CU_ASSERT_EQUAL(jt_fsize(tseg), (long)n); /* not truncated */
    journal_close(j);
}

/* Damage in a middle record, with valid records after it, refuses to open. */
static void test_corrupt_middle(void)
{
    dir_new();
    const char *g[] = {"n1.c.1", "n1.c.2", "n1.c.3"};
    long offs[4];
    build(g, 3, offs);
    size_t n;
    uint8_t *orig = jt_slurp(tseg, &n);
    uint8_t *b = malloc(n);
    CU_ASSERT_FATAL(orig != NULL && b != NULL);
    /* A bit flip in the payload, in the type, in the CRC and in the length. */
    long where[] = {offs[1] + 14, offs[1] + 8, offs[1] + 5, offs[1] + 0, offs[1] + 2};
    uint8_t bit[] = {0x10, 0x02, 0x80, 0x01, 0x01};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        memcpy(b, orig, n);
        b[where[i]] ^= bit[i];
        expect_corrupt(b, n, offs[1]);
    }
    /* A length that runs over a valid record into the zero tail, or past the
     * end of a file cut after the last record, is damage, not a torn tail. */
    memcpy(b, orig, n);
    jt_put32(b + offs[1], 600);
    expect_corrupt(b, n, offs[1]);
    expect_corrupt(b, (size_t)offs[3], offs[1]);
    /* The first record damaged, the second intact. */
    memcpy(b, orig, n);
    b[offs[0] + 10] ^= 0x04;
    expect_corrupt(b, n, offs[0]);
    jt_spit(tseg, orig, n);
    journal *j = open_ok(JOURNAL_READONLY);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.c.3"));
    journal_close(j);
    free(b);
    free(orig);
    dir_rm();
}

static void expect_bad_header(const uint8_t *b, size_t n, const char *why)
{
    jt_spit(tseg, b, n);
    journal *j = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(journal_open(tdir, 0, &j, &e), XAC_EJOURNAL);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, tseg));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bad header"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, why));
    CU_ASSERT_EQUAL(jt_fsize(tseg), (long)n);
}

static void test_bad_header(void)
{
    dir_new();
    const char *g[] = {"n1.h.1"};
    long offs[2];
    build(g, 1, offs);
    size_t n;
    uint8_t *orig = jt_slurp(tseg, &n);
    uint8_t *b = malloc(n);
    CU_ASSERT_FATAL(orig != NULL && b != NULL);
    memcpy(b, orig, n);
    b[0] = 'Y';
    expect_bad_header(b, n, "magic");
    memcpy(b, orig, n);
    b[9] ^= 1; /* segment number, CRC now wrong */
    expect_bad_header(b, n, "CRC");
    memcpy(b, orig, n);
    jt_put32(b + 4, 2);
    jt_put32(b + 16, xac_crc32c(0, b, 16));
    expect_bad_header(b, n, "format version 2");
    memcpy(b, orig, n);
    b[8] = 7; /* segment 7 in a file named 1 */
    jt_put32(b + 16, xac_crc32c(0, b, 16));
    expect_bad_header(b, n, "file name");
    expect_bad_header(orig, 11, "shorter");
    free(b);
    free(orig);
    dir_rm();
}

/* Segments replay in order and the newest is appended to; a torn tail in a
 * segment that is not the last is corruption; an unfinished segment creation
 * (*.tmp) is removed by a writable open only. */
static void test_segments(void)
{
    dir_new();
    const char *g[] = {"n1.s.1", "n1.s.2"};
    long offs[3];
    build(g, 2, offs);
    size_t n;
    uint8_t *orig = jt_slurp(tseg, &n);
    CU_ASSERT_FATAL(orig != NULL);
    /* Segment 2: a fresh header, then an END of n1.s.1 copied from a journal
     * in another directory. */
    char seg2[PATH_MAX + 32], tmp[PATH_MAX + 32];
    snprintf(seg2, sizeof seg2, "%s/0000000000000002.xacj", tdir);
    snprintf(tmp, sizeof tmp, "%s/0000000000000003.xacj.tmp", tdir);
    char keep[PATH_MAX], keepseg[PATH_MAX + 32];
    snprintf(keep, sizeof keep, "%s", tdir);
    snprintf(keepseg, sizeof keepseg, "%s", tseg);
    dir_new();
    journal *j = open_ok(0);
    CU_ASSERT_EQUAL(commit(j, "n1.s.1", 2), XAC_OK);
    long before_end = jt_used(tseg);
    xac_err e;
    CU_ASSERT_EQUAL(journal_end(j, "n1.s.1", &e), XAC_OK);
    journal_close(j);
    size_t n2;
    uint8_t *other = jt_slurp(tseg, &n2);
    CU_ASSERT_FATAL(other != NULL && (long)n2 > before_end);
    n2 = (size_t)jt_used(tseg); /* just the END record after before_end */
    CU_ASSERT_FATAL((long)n2 > before_end);
    dir_rm();
    snprintf(tdir, sizeof tdir, "%s", keep);
    snprintf(tseg, sizeof tseg, "%s", keepseg);

    uint8_t *b = malloc(20 + n2);
    memcpy(b, orig, 20);
    b[8] = 2;
    jt_put32(b + 16, xac_crc32c(0, b, 16));
    memcpy(b + 20, other + before_end, n2 - (size_t)before_end);
    jt_spit(seg2, b, 20 + n2 - (size_t)before_end);
    jt_spit(tmp, (const uint8_t *)"x", 1);

    j = open_ok(JOURNAL_READONLY);
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.s.1"));
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.s.2"));
    journal_close(j);
    CU_ASSERT_EQUAL(jt_fsize(tmp), 1);
    j = open_ok(0);
    /* The leftover is gone (a spare of the journal's own may have its name). */
    CU_ASSERT_NOT_EQUAL(jt_fsize(tmp), 1);
    /* Segment 2 is full (a short file), so the next commit opens segment 3;
     * the live commit of segment 1 is carried into it and segment 1 goes. */
    long s2 = jt_used(seg2);
    CU_ASSERT_EQUAL(commit(j, "n1.s.3", 2), XAC_OK);
    CU_ASSERT_EQUAL(jt_used(seg2), s2);
    char seg3[PATH_MAX + 32];
    snprintf(seg3, sizeof seg3, "%s/0000000000000003.xacj", tdir);
    CU_ASSERT(jt_fsize(seg3) >= JOURNAL_SEGMENT_SIZE_DEFAULT);
    journal_stats st;
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.carried, 1);
    /* The writer deletes dead segments after it wakes the committers; closing
     * joins it, so the deletion has happened once journal_close returns. */
    journal_close(j);
    CU_ASSERT_EQUAL(jt_fsize(tseg), -1);
    j = open_ok(JOURNAL_READONLY);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.s.2"));
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.s.3"));
    journal_close(j);

    /* Segment 1 torn while segment 2 exists. */
    jt_spit(tseg, orig, (size_t)offs[2] - 3);
    j = NULL;
    CU_ASSERT_EQUAL(journal_open(tdir, 0, &j, &e), XAC_EJOURNAL);
    char want[64];
    snprintf(want, sizeof want, "offset %ld:", offs[1]);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, tseg));
    CU_ASSERT_EQUAL(jt_fsize(tseg), offs[2] - 3);
    free(b);
    free(other);
    free(orig);
    dir_rm();
}

/* Missing parent directories are created. */
static void test_mkdir(void)
{
    dir_new();
    char deep[PATH_MAX + 32];
    snprintf(deep, sizeof deep, "%s/a/b", tdir);
    journal *j = NULL;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(journal_open(deep, 0, &j, &e), XAC_OK);
    CU_ASSERT_EQUAL(commit(j, "n1.m.1", 2), XAC_OK);
    journal_close(j);
    char seg[PATH_MAX + 64];
    snprintf(seg, sizeof seg, "%s/%s", deep, SEG_NAME);
    CU_ASSERT(jt_fsize(seg) > 20);
    unlink(seg);
    snprintf(seg, sizeof seg, "%s/LOCK", deep);
    unlink(seg);
    rmdir(deep);
    snprintf(seg, sizeof seg, "%s/a", tdir);
    rmdir(seg);
    dir_rm();
}

static void test_locked(void)
{
    dir_new();
    journal *j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    for (int ro = 0; ro < 2; ro++) {
        journal *j2 = NULL;
        xac_err e;
        xac_err_clear(&e);
        CU_ASSERT_EQUAL(journal_open(tdir, ro ? JOURNAL_READONLY : 0, &j2, &e), XAC_EJOURNAL);
        CU_ASSERT_PTR_NULL(j2);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "is locked by another process (is xacd running?)"));
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, tdir));
    }
    /* The refused opener must not have disturbed the owner. */
    CU_ASSERT_EQUAL(commit(j, "n1.l.1", 2), XAC_OK);
    journal_close(j);
    j = open_ok(JOURNAL_READONLY);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.l.1"));
    journal *j2 = NULL;
    xac_err e;
    CU_ASSERT_EQUAL(journal_open(tdir, 0, &j2, &e), XAC_EJOURNAL);
    journal_close(j);
    dir_rm();
}

static void test_readonly(void)
{
    dir_new();
    const char *g[] = {"n1.r.1", "n1.r.2"};
    long offs[3];
    build(g, 2, offs);
    size_t n;
    uint8_t *orig = jt_slurp(tseg, &n);
    CU_ASSERT_FATAL(orig != NULL);
    /* A torn tail in the zero-filled area: the first 13 bytes of a copy of
     * the last record. */
    CU_ASSERT_FATAL((long)n >= offs[2] + 13);
    uint8_t *b = malloc(n);
    memcpy(b, orig, n);
    memcpy(b + offs[2], orig + offs[1], 13);
    jt_spit(tseg, b, n);
    struct stat before;
    CU_ASSERT_EQUAL_FATAL(stat(tseg, &before), 0);

    journal *j = open_ok(JOURNAL_READONLY);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.r.1"));
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.r.2"));
    xac_err e;
    CU_ASSERT_EQUAL(commit(j, "n1.r.3", 2), XAC_EJOURNAL);
    CU_ASSERT_EQUAL(journal_end(j, "n1.r.1", &e), XAC_EJOURNAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "read-only"));
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.r.1"));
    journal_close(j);

    size_t n2;
    uint8_t *after = jt_slurp(tseg, &n2);
    CU_ASSERT_EQUAL(n2, n);
    CU_ASSERT(after != NULL && memcmp(after, b, n) == 0);
    struct stat st2;
    CU_ASSERT_EQUAL(stat(tseg, &st2), 0);
    CU_ASSERT(st2.st_mtim.tv_sec == before.st_mtim.tv_sec &&
              st2.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    /* A read-only open of a directory with no journal creates nothing. */
    char none[PATH_MAX + 16];
    snprintf(none, sizeof none, "%s/none", tdir);
    journal *j2 = NULL;
    CU_ASSERT_EQUAL(journal_open(none, JOURNAL_READONLY, &j2, &e), XAC_EJOURNAL);
    CU_ASSERT_EQUAL(jt_fsize(none), -1);

    /* A writable open does remove the torn bytes. */
    j = open_ok(0);
    journal_close(j);
    CU_ASSERT_EQUAL(jt_used(tseg), offs[2]);
    CU_ASSERT_TRUE(zero_from(tseg, offs[2]));
    free(after);
    free(b);
    free(orig);
    dir_rm();
}

#define NTHREADS   16
#define PER_THREAD 500

typedef struct worker {
    journal *j;
    int id;
    int failures;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char g[XAC_GTRID_MAX + 1];
        snprintf(g, sizeof g, "n1.%x.%x", w->id, i);
        if (commit(w->j, g, 2 + i % 4) != XAC_OK || !journal_is_committed(w->j, g)) {
            w->failures++;
            continue;
        }
        xac_err e;
        if (i % 2 == 1 && journal_end(w->j, g, &e) != XAC_OK)
            w->failures++;
    }
    return NULL;
}

static void test_group_commit(void)
{
    dir_new();
    journal *j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    pthread_t th[NTHREADS];
    worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){.j = j, .id = i, .failures = 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    CU_ASSERT_EQUAL(failures, 0);
    journal_stats st;
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.commits, NTHREADS * PER_THREAD);
    CU_ASSERT_EQUAL(st.ends, NTHREADS * PER_THREAD / 2);
    CU_ASSERT_EQUAL(st.pending, NTHREADS * PER_THREAD / 2);
    CU_ASSERT(st.syncs >= 1 && st.syncs < st.commits);
    CU_ASSERT_FALSE(st.failed);
    journal_close(j);

    j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.replayed, NTHREADS * PER_THREAD * 3 / 2);
    CU_ASSERT_EQUAL(st.pending, NTHREADS * PER_THREAD / 2);
    int wrong = 0;
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            char g[XAC_GTRID_MAX + 1];
            snprintf(g, sizeof g, "n1.%x.%x", t, i);
            journal_txn x;
            bool c = journal_lookup(j, g, &x);
            if (c != (i % 2 == 0) || (c && x.nbranches != 2 + i % 4))
                wrong++;
        }
    CU_ASSERT_EQUAL(wrong, 0);
    journal_close(j);
    dir_rm();
}

/* Swaps the journal's segment descriptor for a read-only one, so that the
 * next write fails with EBADF as a real I/O error would. */
static int break_segment_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int found = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char lp[300], target[PATH_MAX];
        snprintf(lp, sizeof lp, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(lp, target, sizeof target - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        if (strcmp(target, tseg) == 0)
            found = atoi(e->d_name);
    }
    closedir(d);
    if (found < 0)
        return -1;
    int ro = open(tseg, O_RDONLY);
    if (ro < 0 || dup2(ro, found) < 0)
        return -1;
    close(ro);
    return 0;
}

static void test_failure(void)
{
    dir_new();
    journal *j = open_ok(0);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_EQUAL(commit(j, "n1.f.1", 2), XAC_OK);
    CU_ASSERT_EQUAL_FATAL(break_segment_fd(), 0);
    journal_txn t;
    xac_err e;
    txn(&t, "n1.f.2", 2);
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &e), XAC_EJOURNAL);
    /* The cut of the failed batch goes through the same read-only
     * descriptor and fails too: the record's fate is left to replay. */
    CU_ASSERT_TRUE(in_doubt);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, strerror(EBADF)));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, tseg));
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.f.2"));
    journal_stats st;
    journal_get_stats(j, &st);
    CU_ASSERT_TRUE(st.failed);
    CU_ASSERT_EQUAL(st.commits, 1);
    /* Failed for good: later commits are refused without another attempt. */
    txn(&t, "n1.f.3", 2);
    CU_ASSERT_EQUAL(journal_commit(j, &t, &in_doubt, &e), XAC_EJOURNAL);
    CU_ASSERT_FALSE(in_doubt);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, strerror(EBADF)));
    CU_ASSERT_EQUAL(journal_end(j, "n1.f.1", &e), XAC_EJOURNAL);
    journal_stats st2;
    journal_get_stats(j, &st2);
    CU_ASSERT_EQUAL(st2.syncs, st.syncs);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.f.1"));
    journal_close(j);

    j = open_ok(0);
    CU_ASSERT_TRUE(journal_is_committed(j, "n1.f.1"));
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.f.2"));
    CU_ASSERT_FALSE(journal_is_committed(j, "n1.f.3"));
    journal_close(j);
    dir_rm();
}

int cu_register(void)
{
    xac_log_init("test_journal", XAC_LOG_ERROR, NULL, NULL);
    static const cu_test tests[] = {{"commit, end, replay round trip", test_roundtrip},
                                    {"invalid input refused", test_invalid_input},
                                    {"torn tail at every byte", test_torn_tail},
                                    {"torn tail followed by zeros", test_torn_zeros},
                                    {"corrupt middle record refused", test_corrupt_middle},
                                    {"bad segment header refused", test_bad_header},
                                    {"several segments", test_segments},
                                    {"creates missing directories", test_mkdir},
                                    {"directory lock", test_locked},
                                    {"read-only open modifies nothing", test_readonly},
                                    {"group commit, 16 threads", test_group_commit},
                                    {"failed write stops the journal", test_failure},
                                    {NULL, NULL}};
    return cu_add_suite("journal", tests);
}
