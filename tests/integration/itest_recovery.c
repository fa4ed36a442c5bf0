/* Recovery against real MariaDB and PostgreSQL (tests/fixtures/db.sh): prepared
 * branches are seeded by hand through the drivers, COMMIT records written to a
 * temporary journal, then rec_list and rec_pass must commit exactly the
 * branches with a record, roll back the rest of node n1's, leave foreign and
 * live ones alone, and write END only when every resource was reachable. A
 * journal failed in-process (an io_fault hook) or a hold_undecided context
 * must stop presumed abort: branches without a record stay prepared until a
 * pass with a working journal settles them. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu.h"
#include "drv.h"
#include "drv_check.h"
#include "journal.h"
#include "rec.h"

#define NODE "n1"

enum { MY_A, MY_B, PG_C, DEAD, NRES };

static drv_conf res[NRES];
static bool have_env;
static uint64_t boot;
static uint64_t seqno;
static char jdir[64];

static void setup_confs(void)
{
    have_env = getenv("XAC_TEST_MYSQL_PORT") != NULL && getenv("XAC_TEST_PG_PORT") != NULL;
    dt_conf_mysql(&res[MY_A], "my_a", "XAC_TEST_MYSQL_DB");
    dt_conf_mysql(&res[MY_B], "my_b", "XAC_TEST_MYSQL_DB2");
    dt_conf_pg(&res[PG_C], "pg_c");
    /* A MariaDB that is not there: port 1 on loopback refuses at once. */
    res[DEAD] = res[MY_A];
    snprintf(res[DEAD].name, sizeof res[DEAD].name, "dead");
    res[DEAD].port = 1;
}

/* --------------------------------------------------------------- helpers */

static void sql(int r, const char *q)
{
    dt_exec_ok(&res[r], q);
}

/* Whether row id exists in t_rec on resource r. */
static bool has_row(int r, int id)
{
    return dt_has_row(&res[r], "t_rec", id);
}

static void new_gtrid(const char *node, char g[XAC_GTRID_MAX + 1])
{
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(xac_gtrid_make(g, node, boot, ++seqno, &e) == XAC_OK);
}

/* Leaves a prepared branch with xid on resource r that inserted row id, and
 * disconnects so that any session may finish it. */
static void seed(int r, const xac_xid *x, int id)
{
    dt_seed(&res[r], "t_rec", x, id);
}

static void seed_ours(int r, const char *gtrid, int id)
{
    xac_xid x;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(xac_xid_make(&x, gtrid, res[r].name, &e) == XAC_OK);
    seed(r, &x, id);
}

/* Whether the xid is in r's in-doubt list. */
static bool in_doubt(int r, const xac_xid *x)
{
    return dt_in_doubt(&res[r], x);
}

static bool in_doubt_ours(int r, const char *gtrid)
{
    xac_xid x;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(xac_xid_make(&x, gtrid, res[r].name, &e) == XAC_OK);
    return in_doubt(r, &x);
}

/* Rolls back every prepared branch on r: a clean slate for exact counts. */
static void clean(int r)
{
    dt_clean(&res[r], NULL);
}

static void make_txn(journal_txn *t, const char *gtrid, const int *rs, int nr)
{
    memset(t, 0, sizeof *t);
    snprintf(t->gtrid, sizeof t->gtrid, "%s", gtrid);
    for (int i = 0; i < nr; i++)
        snprintf(t->resources[t->nbranches++], sizeof t->resources[0], "%s", res[rs[i]].name);
    t->decided_us = xac_now_wall_us();
}

static void record_commit(journal *j, const char *gtrid, const int *rs, int nr)
{
    journal_txn t;
    make_txn(&t, gtrid, rs, nr);
    xac_err e;
    xac_err_clear(&e);
    bool in_doubt;
    int rc = journal_commit(j, &t, &in_doubt, &e);
    if (rc != XAC_OK)
        fprintf(stderr, "\njournal_commit: %s\n", e.msg);
    CU_ASSERT_FATAL(rc == XAC_OK);
}

/* A dying disk for the journal: once armed, every fdatasync and every cut of
 * a failed batch fails with EIO, so a failed commit stays in doubt (its record
 * was written to the page cache, and cannot be taken back). Called from the
 * writer thread. */
typedef struct fault {
    atomic_bool armed;
    atomic_int syncs_failed;
    atomic_int cuts_failed;
} fault;

static int fault_io(void *ctx, journal_io op)
{
    fault *f = ctx;
    if (!atomic_load(&f->armed))
        return 0;
    if (op == JOURNAL_IO_SYNC) {
        atomic_fetch_add(&f->syncs_failed, 1);
        return EIO;
    }
    if (op == JOURNAL_IO_CUT) {
        atomic_fetch_add(&f->cuts_failed, 1);
        return EIO;
    }
    return 0;
}

/* The journal in jdir/sub (jdir itself when sub is NULL), with the fault hook
 * when f is not NULL. */
static journal *open_journal_in(const char *sub, fault *f)
{
    char dir[sizeof jdir + 32];
    if (sub != NULL)
        snprintf(dir, sizeof dir, "%s/%s", jdir, sub);
    else
        snprintf(dir, sizeof dir, "%s", jdir);
    journal_opts o;
    memset(&o, 0, sizeof o);
    if (f != NULL) {
        o.io_fault = fault_io;
        o.hook_ctx = f;
    }
    journal *j = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = journal_open_opts(dir, &o, &j, &e);
    if (rc != XAC_OK)
        fprintf(stderr, "\njournal_open_opts %s: %s\n", dir, e.msg);
    CU_ASSERT_FATAL(rc == XAC_OK);
    return j;
}

static bool journal_has_failed(journal *j)
{
    journal_stats st;
    journal_get_stats(j, &st);
    return st.failed;
}

/* Arms f and commits gtrid, which must fail in doubt (sync and cut both
 * failed); the journal is failed from then on and refuses the next commit
 * outright. */
static void fail_journal(journal *j, fault *f, const char *gtrid, const int *rs, int nr)
{
    CU_ASSERT_FATAL(!journal_has_failed(j));
    atomic_store(&f->armed, true);
    journal_txn t;
    make_txn(&t, gtrid, rs, nr);
    xac_err e;
    xac_err_clear(&e);
    bool doubt = false;
    CU_ASSERT_EQUAL_FATAL(journal_commit(j, &t, &doubt, &e), XAC_EJOURNAL);
    CU_ASSERT_TRUE_FATAL(doubt);
    CU_ASSERT(atomic_load(&f->syncs_failed) >= 1);
    CU_ASSERT(atomic_load(&f->cuts_failed) >= 1);
    CU_ASSERT_TRUE_FATAL(journal_has_failed(j));
    /* The failed commit is not in the table: only a replay may find it. */
    CU_ASSERT_FALSE(journal_is_committed(j, gtrid));

    char g[XAC_GTRID_MAX + 1];
    new_gtrid(NODE, g);
    make_txn(&t, g, rs, nr);
    doubt = true;
    CU_ASSERT_EQUAL(journal_commit(j, &t, &doubt, &e), XAC_EJOURNAL);
    CU_ASSERT_FALSE(doubt);
}

/* How many of this node's branches of gtrid rec_list gave decision d. */
static int listed(const rec_ctx *ctx, const char *gtrid, rec_decision d)
{
    rec_branch *b = NULL;
    size_t n = 0, down = 99;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(rec_list(ctx, &b, &n, &down, &e) == XAC_OK);
    CU_ASSERT_EQUAL(down, 0);
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (b[i].branch.decoded && strcmp(b[i].branch.xid.gtrid, gtrid) == 0 && b[i].decision == d)
            k++;
    free(b);
    return k;
}

/* One recovery pass, which must succeed: what it did is in the report. */
static rec_report pass(const rec_ctx *ctx)
{
    rec_report r;
    xac_err e;
    xac_err_clear(&e);
    int rc = rec_pass(ctx, &r, &e);
    if (rc != XAC_OK)
        fprintf(stderr, "\nrec_pass: %s\n", e.msg);
    CU_ASSERT_FATAL(rc == XAC_OK);
    return r;
}

static char live_gtrid[XAC_GTRID_MAX + 1];

static bool live_fn(void *arg, const char *gtrid)
{
    (void)arg;
    return strcmp(gtrid, live_gtrid) == 0;
}

/* ------------------------------------------------------------------ tests */

static void test_env(void)
{
    if (!have_env)
        fprintf(stderr, "\nXAC_TEST_MYSQL_* / XAC_TEST_PG_* are not set: start the databases "
                        "with tests/fixtures/db.sh and source its env.sh\n");
    CU_ASSERT_FATAL(have_env);
    /* Prepared leftovers of an earlier run would hold locks on the table. */
    for (int r = MY_A; r <= PG_C; r++)
        clean(r);
    for (int r = MY_A; r <= PG_C; r++) {
        sql(r, "DROP TABLE IF EXISTS t_rec");
        sql(r, "CREATE TABLE t_rec (id INT PRIMARY KEY, v INT)");
    }
}

static void test_pass(void)
{
    CU_ASSERT_FATAL(have_env);
    journal *j = open_journal_in(NULL, NULL);
    char g1[XAC_GTRID_MAX + 1], g2[XAC_GTRID_MAX + 1], g4[XAC_GTRID_MAX + 1], g5[XAC_GTRID_MAX + 1];
    new_gtrid(NODE, g1); /* committed: branches on all three */
    new_gtrid(NODE, g2); /* no record: presumed abort */
    new_gtrid("n2", g4); /* another node's */
    new_gtrid(NODE, g5); /* record, no branch left anywhere */
    new_gtrid(NODE, live_gtrid);

    seed_ours(MY_A, g1, 1);
    seed_ours(MY_B, g1, 1);
    seed_ours(PG_C, g1, 1);
    seed_ours(MY_A, g2, 2);
    seed_ours(PG_C, g2, 2);
    xac_xid foreign;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(xac_xid_set(&foreign, 0x1234, "other-tm-3", 10, "b1", 2, &e) == XAC_OK);
    seed(MY_A, &foreign, 3);
    seed(PG_C, &foreign, 3);
    seed_ours(MY_A, g4, 4);
    seed_ours(PG_C, g4, 4);
    seed_ours(MY_A, live_gtrid, 6);

    int all3[] = {MY_A, MY_B, PG_C};
    record_commit(j, g1, all3, 3);
    int two[] = {MY_A, PG_C};
    record_commit(j, g5, two, 2);

    rec_ctx ctx = {.node_id = NODE,
                   .journal = j,
                   .resources = res,
                   .nresources = 3,
                   .is_live = live_fn,
                   .live_arg = NULL};

    /* rec_list: decisions, and my_a's branches not repeated under my_b
     * (same server). */
    rec_branch *b = NULL;
    size_t n = 0, down = 99;
    CU_ASSERT_FATAL(rec_list(&ctx, &b, &n, &down, &e) == XAC_OK);
    CU_ASSERT_EQUAL(down, 0);
    int seen_g1 = 0, seen_g2 = 0, seen_live = 0, seen_foreign = 0, seen_g4 = 0;
    for (size_t i = 0; i < n; i++) {
        const xac_xid *x = &b[i].branch.xid;
        if (!b[i].branch.decoded)
            continue;
        if (strcmp(x->gtrid, g1) == 0) {
            seen_g1++;
            CU_ASSERT_EQUAL(b[i].decision, REC_COMMIT);
            CU_ASSERT_STRING_EQUAL(b[i].resource, x->bqual);
        } else if (strcmp(x->gtrid, g2) == 0) {
            seen_g2++;
            CU_ASSERT_EQUAL(b[i].decision, REC_ROLLBACK);
        } else if (strcmp(x->gtrid, live_gtrid) == 0) {
            seen_live++;
            CU_ASSERT_EQUAL(b[i].decision, REC_LIVE);
            CU_ASSERT_STRING_EQUAL(b[i].resource, "my_a");
        } else if (xac_xid_equal(x, &foreign)) {
            seen_foreign++;
            CU_ASSERT_EQUAL(b[i].decision, REC_FOREIGN);
        } else if (strcmp(x->gtrid, g4) == 0) {
            seen_g4++;
            CU_ASSERT_EQUAL(b[i].decision, REC_FOREIGN);
        }
    }
    free(b);
    CU_ASSERT_EQUAL(seen_g1, 3);
    CU_ASSERT_EQUAL(seen_g2, 2);
    CU_ASSERT_EQUAL(seen_live, 1);
    /* Foreign XIDs on the shared MariaDB show under both my_a and my_b. */
    CU_ASSERT_EQUAL(seen_foreign, 3);
    CU_ASSERT_EQUAL(seen_g4, 3);
    CU_ASSERT_STRING_EQUAL(rec_decision_name(REC_COMMIT), "committed");
    CU_ASSERT_STRING_EQUAL(rec_decision_name(REC_ROLLBACK), "none: will roll back");
    CU_ASSERT_STRING_EQUAL(rec_decision_name(REC_FOREIGN), "foreign: not ours");

    rec_report r = pass(&ctx);
    CU_ASSERT_EQUAL(r.committed, 3);
    CU_ASSERT_EQUAL(r.rolled_back, 2);
    CU_ASSERT_EQUAL(r.live, 1);
    CU_ASSERT_EQUAL(r.foreign, 6);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.resources_down, 0);
    CU_ASSERT_EQUAL(r.ended, 2);

    /* g1 committed everywhere, g2 nowhere. */
    CU_ASSERT_TRUE(has_row(MY_A, 1));
    CU_ASSERT_TRUE(has_row(MY_B, 1));
    CU_ASSERT_TRUE(has_row(PG_C, 1));
    CU_ASSERT_FALSE(has_row(MY_A, 2));
    CU_ASSERT_FALSE(has_row(PG_C, 2));
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, g1));
    CU_ASSERT_FALSE(in_doubt_ours(MY_B, g1));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, g1));
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, g2));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, g2));
    /* Foreign, other node's and live branches untouched. */
    CU_ASSERT_TRUE(in_doubt(MY_A, &foreign));
    CU_ASSERT_TRUE(in_doubt(PG_C, &foreign));
    CU_ASSERT_TRUE(in_doubt_ours(MY_A, g4));
    CU_ASSERT_TRUE(in_doubt_ours(PG_C, g4));
    CU_ASSERT_TRUE(in_doubt_ours(MY_A, live_gtrid));
    CU_ASSERT_FALSE(has_row(MY_A, 3));
    CU_ASSERT_FALSE(has_row(MY_A, 6));

    /* END written for g1 and g5, and durable across a reopen. */
    CU_ASSERT_FALSE(journal_is_committed(j, g1));
    CU_ASSERT_FALSE(journal_is_committed(j, g5));
    journal_close(j);
    j = open_journal_in(NULL, NULL);
    CU_ASSERT_FALSE(journal_is_committed(j, g1));
    CU_ASSERT_FALSE(journal_is_committed(j, g5));

    /* Once no longer live, the live one is rolled back (no record). */
    char was_live[XAC_GTRID_MAX + 1];
    snprintf(was_live, sizeof was_live, "%s", live_gtrid);
    live_gtrid[0] = '\0';
    ctx.journal = j;
    r = pass(&ctx);
    CU_ASSERT_EQUAL(r.rolled_back, 1);
    CU_ASSERT_EQUAL(r.committed, 0);
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, was_live));
    CU_ASSERT_FALSE(has_row(MY_A, 6));
    journal_close(j);

    /* Clean up the foreign ones by hand, as a DBA would. */
    clean(MY_A);
    clean(PG_C);
}

/* A record whose branch sits on a reachable resource while another resource
 * is down: the branch is committed, but no END until every resource answers. */
static void test_resource_down(void)
{
    CU_ASSERT_FATAL(have_env);
    journal *j = open_journal_in(NULL, NULL);
    char g7[XAC_GTRID_MAX + 1], g8[XAC_GTRID_MAX + 1];
    new_gtrid(NODE, g7);
    new_gtrid(NODE, g8);
    seed_ours(PG_C, g7, 7);
    seed_ours(MY_A, g8, 8);
    int rs[] = {PG_C, DEAD};
    record_commit(j, g7, rs, 2);

    drv_conf two[2] = {res[PG_C], res[DEAD]};
    rec_ctx ctx = {.node_id = NODE, .journal = j, .resources = two, .nresources = 2};
    rec_report r = pass(&ctx);
    CU_ASSERT_EQUAL(r.resources_down, 1);
    CU_ASSERT_EQUAL(r.committed, 1);
    CU_ASSERT_EQUAL(r.ended, 0);
    CU_ASSERT_TRUE(has_row(PG_C, 7));
    CU_ASSERT_TRUE(journal_is_committed(j, g7));

    rec_branch *b = NULL;
    size_t n = 0, down = 0;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(rec_list(&ctx, &b, &n, &down, &e) == XAC_OK);
    CU_ASSERT_EQUAL(down, 1);
    free(b);

    /* With every resource of the record reachable (dead is back, on my_a's
     * server), END follows; g8 on my_a has no record and is rolled back. */
    drv_conf ok[3] = {res[PG_C], res[MY_A], res[MY_A]};
    snprintf(ok[2].name, sizeof ok[2].name, "dead");
    ctx.resources = ok;
    ctx.nresources = 3;
    r = pass(&ctx);
    CU_ASSERT_EQUAL(r.resources_down, 0);
    CU_ASSERT_EQUAL(r.ended, 1);
    CU_ASSERT_EQUAL(r.rolled_back, 1);
    CU_ASSERT_FALSE(journal_is_committed(j, g7));
    CU_ASSERT_FALSE(has_row(MY_A, 8));
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, g8));
    journal_close(j);
}

/* A branch of ours whose resource is not configured (same server, other
 * bqual) is neither committed nor rolled back through another resource, and
 * it holds back the END record until it is resolved under its own name. */
static void test_never_rollback_committed(void)
{
    CU_ASSERT_FATAL(have_env);
    journal *j = open_journal_in(NULL, NULL);
    char g9[XAC_GTRID_MAX + 1];
    new_gtrid(NODE, g9);
    seed_ours(MY_A, g9, 9);
    seed_ours(MY_B, g9, 9);
    int rs[] = {MY_A, MY_B};
    record_commit(j, g9, rs, 2);
    /* Only my_a is configured: my_b's branch (same server) must not be
     * resolved through my_a, and no END may be written while it is left. */
    rec_ctx ctx = {.node_id = NODE, .journal = j, .resources = &res[MY_A], .nresources = 1};
    rec_report r = pass(&ctx);
    CU_ASSERT_EQUAL(r.committed, 1);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(r.ended, 0);
    CU_ASSERT_TRUE(has_row(MY_A, 9));
    CU_ASSERT_TRUE(in_doubt_ours(MY_B, g9));
    CU_ASSERT_TRUE(journal_is_committed(j, g9));
    ctx.resources = &res[MY_A];
    ctx.nresources = 2; /* my_a, my_b */
    r = pass(&ctx);
    CU_ASSERT_EQUAL(r.committed, 1);
    CU_ASSERT_EQUAL(r.ended, 1);
    CU_ASSERT_TRUE(has_row(MY_B, 9));
    CU_ASSERT_FALSE(in_doubt_ours(MY_B, g9));
    journal_close(j);
}

static void test_no_journal_refused(void)
{
    rec_ctx ctx = {.node_id = NODE, .journal = NULL, .resources = res, .nresources = 3};
    rec_report r;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(rec_pass(&ctx, &r, &e), XAC_EINVAL);
    rec_branch *b = NULL;
    size_t n = 0, down = 0;
    CU_ASSERT_EQUAL(rec_list(&ctx, &b, &n, &down, &e), XAC_EINVAL);
    CU_ASSERT_PTR_NULL(b);
}

/* A failed journal may hold a COMMIT it could not confirm, so presumed abort
 * stops: branches without a record (the one committed in doubt and one that
 * never had a decision) stay prepared and are counted as held, a branch with a
 * record is still committed, and no END is written. A restart with a working
 * journal settles everything: the in-doubt COMMIT as replay finds it, the
 * undecided branch by rollback. */
static void test_failed_journal_holds(void)
{
    CU_ASSERT_FATAL(have_env);
    for (int r = MY_A; r <= PG_C; r++)
        clean(r); /* exact counts below */
    fault f = {0};
    journal *j = open_journal_in("failed", &f);
    char gc[XAC_GTRID_MAX + 1], gd[XAC_GTRID_MAX + 1], gu[XAC_GTRID_MAX + 1];
    new_gtrid(NODE, gc); /* COMMIT record before the failure */
    new_gtrid(NODE, gd); /* its commit failed in doubt */
    new_gtrid(NODE, gu); /* prepared after the failure, never decided */

    seed_ours(MY_A, gc, 21);
    seed_ours(PG_C, gc, 21);
    int rc_res[] = {MY_A, PG_C};
    record_commit(j, gc, rc_res, 2);

    seed_ours(MY_B, gd, 22);
    seed_ours(PG_C, gd, 22);
    int rd_res[] = {MY_B, PG_C};
    fail_journal(j, &f, gd, rd_res, 2);

    seed_ours(MY_A, gu, 23);
    seed_ours(PG_C, gu, 23);

    rec_ctx ctx = {.node_id = NODE, .journal = j, .resources = res, .nresources = 3};
    CU_ASSERT_EQUAL(listed(&ctx, gc, REC_COMMIT), 2);
    CU_ASSERT_EQUAL(listed(&ctx, gd, REC_HELD), 2);
    CU_ASSERT_EQUAL(listed(&ctx, gu, REC_HELD), 2);
    CU_ASSERT_STRING_EQUAL(rec_decision_name(REC_HELD), "unknown: held");

    rec_report r = pass(&ctx);
    CU_ASSERT_EQUAL(r.committed, 2);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(r.held, 4);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.resources_down, 0);
    CU_ASSERT_EQUAL(r.ended, 0);

    /* gc committed on both databases; gd and gu still prepared. */
    CU_ASSERT_TRUE(has_row(MY_A, 21));
    CU_ASSERT_TRUE(has_row(PG_C, 21));
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, gc));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, gc));
    CU_ASSERT_TRUE(in_doubt_ours(MY_B, gd));
    CU_ASSERT_TRUE(in_doubt_ours(PG_C, gd));
    CU_ASSERT_TRUE(in_doubt_ours(MY_A, gu));
    CU_ASSERT_TRUE(in_doubt_ours(PG_C, gu));
    CU_ASSERT_FALSE(has_row(MY_A, 23));
    CU_ASSERT_FALSE(has_row(PG_C, 23));

    /* No END while failed: gc is still pending in memory. */
    journal_stats st;
    journal_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.ends, 0);
    CU_ASSERT_TRUE(journal_is_committed(j, gc));

    /* Another pass changes nothing while the journal stays failed. */
    r = pass(&ctx);
    CU_ASSERT_EQUAL(r.committed, 0);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(r.held, 4);
    CU_ASSERT_EQUAL(r.ended, 0);
    CU_ASSERT_TRUE(in_doubt_ours(PG_C, gu));
    journal_close(j);

    /* Restart with a working disk. gc's END never reached the journal. */
    j = open_journal_in("failed", NULL);
    CU_ASSERT_FALSE(journal_has_failed(j));
    CU_ASSERT_TRUE(journal_is_committed(j, gc));
    CU_ASSERT_FALSE(journal_is_committed(j, gu));
    /* Either outcome is allowed for gd; the databases must follow it. */
    bool gd_committed = journal_is_committed(j, gd);
    ctx.journal = j;
    r = pass(&ctx);
    CU_ASSERT_EQUAL(r.held, 0);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.committed, gd_committed ? 2 : 0);
    CU_ASSERT_EQUAL(r.rolled_back, gd_committed ? 2 : 4);
    CU_ASSERT_EQUAL(r.ended, gd_committed ? 2 : 1);
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, gu));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, gu));
    CU_ASSERT_FALSE(has_row(MY_A, 23));
    CU_ASSERT_FALSE(has_row(PG_C, 23));
    CU_ASSERT_FALSE(in_doubt_ours(MY_B, gd));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, gd));
    CU_ASSERT_EQUAL(has_row(MY_B, 22), gd_committed);
    CU_ASSERT_EQUAL(has_row(PG_C, 22), gd_committed);
    CU_ASSERT_FALSE(journal_is_committed(j, gc));
    CU_ASSERT_FALSE(journal_is_committed(j, gd));
    journal_close(j);

    /* The ENDs are durable. */
    j = open_journal_in("failed", NULL);
    CU_ASSERT_FALSE(journal_is_committed(j, gc));
    CU_ASSERT_FALSE(journal_is_committed(j, gd));
    journal_close(j);
}

/* hold_undecided (a salvaged journal) holds branches without a record on a
 * working journal; committing and END are unaffected. */
static void test_hold_undecided(void)
{
    CU_ASSERT_FATAL(have_env);
    journal *j = open_journal_in("salvaged", NULL);
    char gh[XAC_GTRID_MAX + 1], gk[XAC_GTRID_MAX + 1];
    new_gtrid(NODE, gh); /* no record */
    new_gtrid(NODE, gk); /* record */
    seed_ours(MY_A, gh, 31);
    seed_ours(PG_C, gh, 31);
    seed_ours(MY_A, gk, 32);
    seed_ours(PG_C, gk, 32);
    int rs[] = {MY_A, PG_C};
    record_commit(j, gk, rs, 2);

    rec_ctx ctx = {
        .node_id = NODE, .journal = j, .resources = res, .nresources = 3, .hold_undecided = true};
    CU_ASSERT_EQUAL(listed(&ctx, gh, REC_HELD), 2);
    CU_ASSERT_EQUAL(listed(&ctx, gk, REC_COMMIT), 2);
    rec_report r = pass(&ctx);
    CU_ASSERT_FALSE(journal_has_failed(j));
    CU_ASSERT_EQUAL(r.held, 2);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(r.committed, 2);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_EQUAL(r.ended, 1);
    CU_ASSERT_TRUE(in_doubt_ours(MY_A, gh));
    CU_ASSERT_TRUE(in_doubt_ours(PG_C, gh));
    CU_ASSERT_TRUE(has_row(MY_A, 32));
    CU_ASSERT_TRUE(has_row(PG_C, 32));
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, gk));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, gk));
    CU_ASSERT_FALSE(journal_is_committed(j, gk));

    /* Without the flag, presumed abort applies again. */
    ctx.hold_undecided = false;
    CU_ASSERT_EQUAL(listed(&ctx, gh, REC_ROLLBACK), 2);
    r = pass(&ctx);
    CU_ASSERT_EQUAL(r.held, 0);
    CU_ASSERT_EQUAL(r.rolled_back, 2);
    CU_ASSERT_FALSE(in_doubt_ours(MY_A, gh));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, gh));
    CU_ASSERT_FALSE(has_row(MY_A, 31));
    CU_ASSERT_FALSE(has_row(PG_C, 31));
    journal_close(j);
}

/* The journal fails after the listing decided on a rollback and right before
 * the rollback: the check rec_pass makes before each rollback must see it. The
 * live callback is that moment (asked in decide, then again before acting). */
typedef struct midpass {
    journal *j;
    fault *f;
    const char *gtrid; /* the undecided branch's */
    char doubt[XAC_GTRID_MAX + 1];
    int calls;
} midpass;

static bool fail_before_rollback(void *arg, const char *gtrid)
{
    midpass *m = arg;
    if (strcmp(gtrid, m->gtrid) == 0 && ++m->calls == 2) {
        int rs[] = {PG_C};
        fail_journal(m->j, m->f, m->doubt, rs, 1);
    }
    return false;
}

static void test_journal_fails_mid_pass(void)
{
    CU_ASSERT_FATAL(have_env);
    fault f = {0};
    journal *j = open_journal_in("midpass", &f);
    char gm[XAC_GTRID_MAX + 1];
    new_gtrid(NODE, gm);
    seed_ours(PG_C, gm, 41);
    midpass m = {.j = j, .f = &f, .gtrid = gm};
    new_gtrid(NODE, m.doubt);

    rec_ctx ctx = {.node_id = NODE,
                   .journal = j,
                   .resources = &res[PG_C],
                   .nresources = 1,
                   .is_live = fail_before_rollback,
                   .live_arg = &m};
    rec_report r = pass(&ctx);
    CU_ASSERT_EQUAL(m.calls, 2);
    CU_ASSERT_TRUE(journal_has_failed(j));
    CU_ASSERT_EQUAL(r.held, 1);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(r.failed, 0);
    CU_ASSERT_TRUE(in_doubt_ours(PG_C, gm));
    journal_close(j);

    j = open_journal_in("midpass", NULL);
    bool doubt_committed = journal_is_committed(j, m.doubt);
    ctx.journal = j;
    ctx.is_live = NULL;
    r = pass(&ctx);
    CU_ASSERT_EQUAL(r.held, 0);
    CU_ASSERT_EQUAL(r.rolled_back, 1);
    /* The in-doubt commit has no branch anywhere: settled by its END. */
    CU_ASSERT_EQUAL(r.ended, doubt_committed ? 1 : 0);
    CU_ASSERT_FALSE(journal_is_committed(j, m.doubt));
    CU_ASSERT_FALSE(in_doubt_ours(PG_C, gm));
    CU_ASSERT_FALSE(has_row(PG_C, 41));
    journal_close(j);
}

static void test_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", jdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

int cu_register(void)
{
    setup_confs();
    boot = xac_now_wall_us();
    snprintf(jdir, sizeof jdir, "/tmp/xac-itest-rec-XXXXXX");
    if (mkdtemp(jdir) == NULL)
        return CUE_NOMEMORY;
    static const cu_test tests[] = {
        {"environment and tables", test_env},
        {"pass: commit, presumed abort, foreign, live, END", test_pass},
        {"resource down: no END", test_resource_down},
        {"record wins; shared server", test_never_rollback_committed},
        {"no journal: refused", test_no_journal_refused},
        {"failed journal: undecided held, committed committed, no END; "
         "settled after reopen",
         test_failed_journal_holds},
        {"hold_undecided: held on a working journal", test_hold_undecided},
        {"journal fails between listing and rollback: held", test_journal_fails_mid_pass},
        {"cleanup", test_cleanup},
        {NULL, NULL}};
    return cu_add_suite("recovery", tests);
}
