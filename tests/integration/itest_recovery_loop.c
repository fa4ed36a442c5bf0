/* The recovery loop's rules against real MariaDB and PostgreSQL
 * (tests/fixtures/db.sh), through rec_pass_resource with a rec_state as xacd
 * runs it: undecided branches of the running boot wait out the grace period
 * (age from PostgreSQL's prepared_at, or from first sight on MariaDB), those
 * of an earlier boot are rolled back at once; an END record waits until every
 * resource of the COMMIT record was found clean, pass by pass; a branch that
 * someone else finished between the listing and recovery's action (done here
 * by hand from the step hook) is reported as an unexpected outcome, and the
 * step hook sees the recovery crash points in order. rec_classify's table is
 * checked on its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu.h"
#include "drv.h"
#include "drv_check.h"
#include "journal.h"
#include "rec.h"

#define NODE "n7"

enum { MY_A, PG_C, DEAD, NRES };

static drv_conf res[NRES];
static bool have_env;
static uint64_t boot;
static uint64_t seqno;
static char jdir[64];

static void setup_confs(void)
{
    have_env = getenv("XAC_TEST_MYSQL_PORT") != NULL && getenv("XAC_TEST_PG_PORT") != NULL;
    dt_conf_mysql(&res[MY_A], "my_a", "XAC_TEST_MYSQL_DB");
    dt_conf_pg(&res[PG_C], "pg_c");
    res[DEAD] = res[MY_A];
    snprintf(res[DEAD].name, sizeof res[DEAD].name, "dead");
    res[DEAD].port = 1;
}

/* --------------------------------------------------------------- helpers */

static void sql(int r, const char *q)
{
    dt_exec_ok(&res[r], q);
}

static bool has_row(int r, int id)
{
    return dt_has_row(&res[r], "t_recl", id);
}

/* A gtrid of this node from boot b. */
static void gtrid_of(uint64_t b, char g[XAC_GTRID_MAX + 1])
{
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(xac_gtrid_make(g, NODE, b, ++seqno, &e) == XAC_OK);
}

static xac_xid xid_on(int r, const char *gtrid)
{
    xac_xid x;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(xac_xid_make(&x, gtrid, res[r].name, &e) == XAC_OK);
    return x;
}

/* A prepared branch of ours on r that inserted row id; disconnected. */
static void seed(int r, const char *gtrid, int id)
{
    xac_xid x = xid_on(r, gtrid);
    dt_seed(&res[r], "t_recl", &x, id);
}

static bool in_doubt(int r, const char *gtrid)
{
    xac_xid x = xid_on(r, gtrid);
    return dt_in_doubt(&res[r], &x);
}

/* Rolls back every prepared branch of this node on r. */
static void clean(int r)
{
    dt_clean(&res[r], NODE);
}

static void record_commit(journal *j, const char *gtrid, const int *rs, int nr)
{
    journal_txn t;
    memset(&t, 0, sizeof t);
    snprintf(t.gtrid, sizeof t.gtrid, "%s", gtrid);
    for (int i = 0; i < nr; i++)
        snprintf(t.resources[t.nbranches++], sizeof t.resources[0], "%s", res[rs[i]].name);
    t.decided_us = xac_now_wall_us();
    xac_err e;
    xac_err_clear(&e);
    bool doubt;
    CU_ASSERT_FATAL(journal_commit(j, &t, &doubt, &e) == XAC_OK);
}

static journal *open_journal(void)
{
    journal_opts o;
    memset(&o, 0, sizeof o);
    journal *j = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = journal_open_opts(jdir, &o, &j, &e);
    if (rc != XAC_OK)
        fprintf(stderr, "\njournal_open_opts %s: %s\n", jdir, e.msg);
    CU_ASSERT_FATAL(rc == XAC_OK);
    return j;
}

static rec_report pass_on(const rec_ctx *ctx, int r)
{
    rec_report rep;
    xac_err e;
    xac_err_clear(&e);
    int rc = rec_pass_resource(ctx, (size_t)r, &rep, &e);
    if (rc != XAC_OK)
        fprintf(stderr, "\nrec_pass_resource: %s\n", e.msg);
    CU_ASSERT_FATAL(rc == XAC_OK);
    return rep;
}

/* The branch of gtrid in a fresh listing (decision, grace left, age). */
static bool find_listed(const rec_ctx *ctx, const char *gtrid, rec_branch *out)
{
    rec_branch *b = NULL;
    size_t n = 0, down = 0;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(rec_list(ctx, &b, &n, &down, &e) == XAC_OK);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        if (b[i].branch.decoded && strcmp(b[i].branch.xid.gtrid, gtrid) == 0) {
            *out = b[i];
            found = true;
        }
    free(b);
    return found;
}

/* ------------------------------------------------------------------ tests */

static void test_env(void)
{
    if (!have_env)
        fprintf(stderr, "\nXAC_TEST_MYSQL_* / XAC_TEST_PG_* are not set: start the databases "
                        "with tests/fixtures/db.sh and source its env.sh\n");
    CU_ASSERT_FATAL(have_env);
    clean(MY_A);
    clean(PG_C);
    sql(MY_A, "DROP TABLE IF EXISTS t_recl");
    sql(MY_A, "CREATE TABLE t_recl (id INT PRIMARY KEY, v INT)");
    sql(PG_C, "DROP TABLE IF EXISTS t_recl");
    sql(PG_C, "CREATE TABLE t_recl (id INT PRIMARY KEY, v INT)");
}

static void test_classify(void)
{
    /* Commit of a branch with a COMMIT record. */
    CU_ASSERT_EQUAL(rec_classify(true, XA_OK, false), REC_V_DONE);
    CU_ASSERT_EQUAL(rec_classify(true, XA_HEURCOM, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(true, XA_HEURRB, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(true, XA_HEURMIX, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(true, XA_HEURHAZ, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(true, XAER_NOTA, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(true, XA_RBROLLBACK, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(true, XAER_RMFAIL, true), REC_V_RETRY);
    CU_ASSERT_EQUAL(rec_classify(true, XA_RETRY, false), REC_V_RETRY);
    CU_ASSERT_EQUAL(rec_classify(true, XAER_RMERR, true), REC_V_RETRY);
    CU_ASSERT_EQUAL(rec_classify(true, XAER_RMERR, false), REC_V_FAILED);
    CU_ASSERT_EQUAL(rec_classify(true, XAER_PROTO, false), REC_V_FAILED);
    CU_ASSERT_EQUAL(rec_classify(true, XAER_INVAL, false), REC_V_FAILED);
    /* Rollback of a branch without one. */
    CU_ASSERT_EQUAL(rec_classify(false, XA_OK, false), REC_V_DONE);
    CU_ASSERT_EQUAL(rec_classify(false, XA_RBDEADLOCK, false), REC_V_DONE);
    CU_ASSERT_EQUAL(rec_classify(false, XA_HEURRB, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(false, XA_HEURCOM, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(false, XAER_NOTA, false), REC_V_DONE_HEURISTIC);
    CU_ASSERT_EQUAL(rec_classify(false, XAER_RMFAIL, true), REC_V_RETRY);
    CU_ASSERT_EQUAL(rec_classify(false, XAER_RMERR, false), REC_V_FAILED);
}

/* Undecided branches: of an earlier boot rolled back at once, of this boot
 * only after the grace period, the age from prepared_at (PostgreSQL) or from
 * first sight (MariaDB). */
static void test_grace(void)
{
    CU_ASSERT_FATAL(have_env);
    journal *j = open_journal();
    rec_state *st = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(rec_state_create(&st, &e) == XAC_OK);
    char g_old[XAC_GTRID_MAX + 1], g_my[XAC_GTRID_MAX + 1], g_pg[XAC_GTRID_MAX + 1];
    gtrid_of(boot - 1, g_old);
    gtrid_of(boot, g_my);
    gtrid_of(boot, g_pg);
    seed(MY_A, g_old, 1);
    seed(MY_A, g_my, 2);
    seed(PG_C, g_pg, 3);

    rec_ctx ctx = {.node_id = NODE,
                   .journal = j,
                   .resources = res,
                   .nresources = 2,
                   .boot = boot,
                   .grace_ms = 60000,
                   .state = st};
    rec_branch b;
    CU_ASSERT_FATAL(find_listed(&ctx, g_old, &b));
    CU_ASSERT_EQUAL(b.decision, REC_ROLLBACK);
    CU_ASSERT_EQUAL(b.grace_left_ms, 0);
    CU_ASSERT_FATAL(find_listed(&ctx, g_my, &b));
    CU_ASSERT_EQUAL(b.decision, REC_ROLLBACK);
    CU_ASSERT(b.grace_left_ms > 50000 && b.grace_left_ms <= 60000);
    CU_ASSERT_FATAL(find_listed(&ctx, g_pg, &b));
    CU_ASSERT_EQUAL(b.decision, REC_ROLLBACK);
    CU_ASSERT(b.branch.prepared_at > 0);
    CU_ASSERT(b.age_s >= 0 && b.age_s < 30);
    CU_ASSERT(b.grace_left_ms > 30000 && b.grace_left_ms <= 60000);

    /* Without a running boot (xacctl offline) nothing waits. */
    rec_ctx offline = ctx;
    offline.boot = 0;
    CU_ASSERT_FATAL(find_listed(&offline, g_my, &b));
    CU_ASSERT_EQUAL(b.grace_left_ms, 0);

    rec_report r = pass_on(&ctx, MY_A);
    CU_ASSERT_EQUAL(r.rolled_back, 1);
    CU_ASSERT_EQUAL(r.waiting, 1);
    CU_ASSERT(r.wait_ms > 0 && r.wait_ms <= 60000);
    CU_ASSERT_FALSE(in_doubt(MY_A, g_old));
    CU_ASSERT_TRUE(in_doubt(MY_A, g_my));
    r = pass_on(&ctx, PG_C);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(r.waiting, 1);
    CU_ASSERT_TRUE(in_doubt(PG_C, g_pg));

    /* A shorter grace period, passed: both go. MariaDB's age counts from
     * the first listing above, PostgreSQL's from its PREPARE. The ages are
     * in whole seconds (prepared_at has no more), so 3 s make 2 at least. */
    sleep(3);
    ctx.grace_ms = 1500;
    CU_ASSERT_FATAL(find_listed(&ctx, g_my, &b));
    CU_ASSERT(b.age_s >= 1);
    CU_ASSERT_EQUAL(b.grace_left_ms, 0);
    r = pass_on(&ctx, MY_A);
    CU_ASSERT_EQUAL(r.rolled_back, 1);
    CU_ASSERT_EQUAL(r.waiting, 0);
    r = pass_on(&ctx, PG_C);
    CU_ASSERT_EQUAL(r.rolled_back, 1);
    CU_ASSERT_FALSE(in_doubt(MY_A, g_my));
    CU_ASSERT_FALSE(in_doubt(PG_C, g_pg));
    CU_ASSERT_FALSE(has_row(MY_A, 2));
    CU_ASSERT_FALSE(has_row(PG_C, 3));

    /* A MariaDB branch a fresh state has never seen has no age yet: it waits
     * a whole grace period from now. */
    char g_new[XAC_GTRID_MAX + 1];
    gtrid_of(boot, g_new);
    seed(MY_A, g_new, 4);
    rec_state_destroy(st);
    CU_ASSERT_FATAL(rec_state_create(&st, &e) == XAC_OK);
    ctx.state = st;
    r = pass_on(&ctx, MY_A);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(r.waiting, 1);
    CU_ASSERT_TRUE(in_doubt(MY_A, g_new));
    clean(MY_A);
    rec_state_destroy(st);
    journal_close(j);
}

/* END waits for every resource of the record, across per-resource passes; a
 * resource that is down is reported as such and holds up only the END. */
static void test_end_across_passes(void)
{
    CU_ASSERT_FATAL(have_env);
    journal *j = open_journal();
    rec_state *st = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(rec_state_create(&st, &e) == XAC_OK);
    char g[XAC_GTRID_MAX + 1], g2[XAC_GTRID_MAX + 1];
    gtrid_of(boot - 1, g);
    gtrid_of(boot - 1, g2);
    seed(MY_A, g, 10);
    seed(PG_C, g, 10);
    seed(MY_A, g2, 11);
    int both[] = {MY_A, PG_C};
    record_commit(j, g, both, 2);
    int with_dead[] = {MY_A, DEAD};
    record_commit(j, g2, with_dead, 2);

    rec_ctx ctx = {.node_id = NODE,
                   .journal = j,
                   .resources = res,
                   .nresources = 3,
                   .boot = boot,
                   .grace_ms = 60000,
                   .state = st};
    rec_report r = pass_on(&ctx, MY_A);
    CU_ASSERT_EQUAL(r.committed, 2);
    CU_ASSERT_EQUAL(r.ended, 0);
    CU_ASSERT_TRUE(journal_is_committed(j, g));
    CU_ASSERT_TRUE(has_row(MY_A, 10));
    CU_ASSERT_TRUE(has_row(MY_A, 11));

    r = pass_on(&ctx, DEAD);
    CU_ASSERT_EQUAL(r.resources_down, 1);
    CU_ASSERT(strstr(r.down_error, "dead") != NULL);
    CU_ASSERT_EQUAL(r.ended, 0);

    r = pass_on(&ctx, PG_C);
    CU_ASSERT_EQUAL(r.committed, 1);
    CU_ASSERT_EQUAL(r.ended, 1);
    CU_ASSERT_FALSE(journal_is_committed(j, g));
    CU_ASSERT_TRUE(has_row(PG_C, 10));
    /* g2 waits for dead. */
    CU_ASSERT_TRUE(journal_is_committed(j, g2));
    r = pass_on(&ctx, MY_A);
    CU_ASSERT_EQUAL(r.ended, 0);
    CU_ASSERT_TRUE(journal_is_committed(j, g2));
    rec_state_destroy(st);
    journal_close(j);
}

/* The step hook: records the steps, and finishes the branch by hand right
 * before recovery's own action when asked to, as a DBA racing it would. */
typedef struct hook {
    char steps[16][32];
    int nsteps;
    const char *sabotage; /* the step at which to finish the branch by hand */
    int res;
    const char *gtrid;
    bool commit; /* how to finish it */
    char heur[4][XAC_ERR_MSG_MAX];
    int nheur;
} hook;

/* Arms h to commit gtrid's branch on r by hand at step at, with the steps
 * recorded from now on. */
static void commit_by_hand_at(hook *h, const char *at, int r, const char *gtrid)
{
    h->nsteps = 0;
    h->sabotage = at;
    h->res = r;
    h->gtrid = gtrid;
    h->commit = true;
}

/* finished_here for the heuristic test: "this process finished gtrid". */
static const char *finished_gtrid;
static bool finished_fn(void *arg, const char *gtrid)
{
    (void)arg;
    return finished_gtrid != NULL && strcmp(gtrid, finished_gtrid) == 0;
}

static void step_fn(void *arg, const char *name)
{
    hook *h = arg;
    if (h->nsteps < 16)
        snprintf(h->steps[h->nsteps++], sizeof h->steps[0], "%s", name);
    if (h->sabotage != NULL && strcmp(name, h->sabotage) == 0) {
        xac_xid x = xid_on(h->res, h->gtrid);
        drv_conn *c = dt_conn(&res[h->res]);
        xac_err e;
        xac_err_clear(&e);
        int rc = h->commit ? drv_commit(c, &x, false, &e) : drv_rollback(c, &x, &e);
        dt_must(rc, &e, "finishing the branch by hand");
        drv_close(c);
        h->sabotage = NULL;
    }
}

static void heur_fn(void *arg, const char *resource, const char *gtrid, const char *text)
{
    (void)resource;
    (void)gtrid;
    hook *h = arg;
    if (h->nheur < 4)
        snprintf(h->heur[h->nheur++], sizeof h->heur[0], "%s", text);
}

static void test_heuristic_and_steps(void)
{
    CU_ASSERT_FATAL(have_env);
    journal *j = open_journal();
    rec_state *st = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_FATAL(rec_state_create(&st, &e) == XAC_OK);
    char gc[XAC_GTRID_MAX + 1], gr[XAC_GTRID_MAX + 1], gok[XAC_GTRID_MAX + 1];
    gtrid_of(boot - 1, gc);
    gtrid_of(boot - 1, gr);
    gtrid_of(boot - 1, gok);
    hook h;
    memset(&h, 0, sizeof h);
    rec_ctx ctx = {.node_id = NODE,
                   .journal = j,
                   .resources = res,
                   .nresources = 2,
                   .boot = boot,
                   .grace_ms = 60000,
                   .state = st,
                   .step = step_fn,
                   .step_arg = &h,
                   .on_heuristic = heur_fn,
                   .heuristic_arg = &h};

    /* A normal commit: the steps in order, no heuristic. */
    seed(MY_A, gok, 20);
    int my[] = {MY_A};
    record_commit(j, gok, my, 1);
    rec_report r = pass_on(&ctx, MY_A);
    CU_ASSERT_EQUAL(r.committed, 1);
    CU_ASSERT_EQUAL(r.ended, 1);
    CU_ASSERT_EQUAL(r.heuristics, 0);
    CU_ASSERT_EQUAL_FATAL(h.nsteps, 3);
    CU_ASSERT_STRING_EQUAL(h.steps[0], REC_STEP_BEFORE_COMMIT);
    CU_ASSERT_STRING_EQUAL(h.steps[1], REC_STEP_AFTER_COMMIT);
    CU_ASSERT_STRING_EQUAL(h.steps[2], REC_STEP_BEFORE_END);

    /* Committed by hand between the listing and recovery's commit: the
     * commit finds no branch (XAER_NOTA), which is reported, and the
     * transaction ends (nothing is left of it). */
    seed(MY_A, gc, 21);
    record_commit(j, gc, my, 1);
    commit_by_hand_at(&h, REC_STEP_BEFORE_COMMIT, MY_A, gc);
    r = pass_on(&ctx, MY_A);
    CU_ASSERT_EQUAL(r.heuristics, 1);
    CU_ASSERT_EQUAL(r.committed, 0);
    CU_ASSERT_EQUAL(r.ended, 1);
    CU_ASSERT_EQUAL_FATAL(h.nheur, 1);
    CU_ASSERT(strstr(h.heur[0], gc) != NULL);
    CU_ASSERT(strstr(h.heur[0], "my_a") != NULL);
    CU_ASSERT(strstr(h.heur[0], "XAER_NOTA") != NULL);
    CU_ASSERT_TRUE(has_row(MY_A, 21));

    /* Committed by hand where recovery was about to roll back (no record):
     * the rollback finds nothing, reported too. On PostgreSQL this time. */
    seed(PG_C, gr, 22);
    commit_by_hand_at(&h, REC_STEP_BEFORE_ROLLBACK, PG_C, gr);
    r = pass_on(&ctx, PG_C);
    CU_ASSERT_EQUAL(r.heuristics, 1);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL_FATAL(h.nheur, 2);
    CU_ASSERT(strstr(h.heur[1], gr) != NULL);
    CU_ASSERT(strstr(h.heur[1], "pg_c") != NULL);
    CU_ASSERT(strstr(h.heur[1], "XAER_NOTA") != NULL);
    CU_ASSERT_EQUAL_FATAL(h.nsteps, 2);
    CU_ASSERT_STRING_EQUAL(h.steps[0], REC_STEP_BEFORE_ROLLBACK);
    CU_ASSERT_STRING_EQUAL(h.steps[1], REC_STEP_AFTER_ROLLBACK);
    CU_ASSERT_TRUE(has_row(PG_C, 22)); /* the DBA's commit stands */

    /* The same race when the engine of this process finished the
     * transaction itself (listed while it was committing): no heuristic. */
    char gf[XAC_GTRID_MAX + 1];
    gtrid_of(boot - 1, gf);
    seed(PG_C, gf, 23);
    finished_gtrid = gf;
    ctx.finished_here = finished_fn;
    commit_by_hand_at(&h, REC_STEP_BEFORE_ROLLBACK, PG_C, gf);
    r = pass_on(&ctx, PG_C);
    CU_ASSERT_EQUAL(r.heuristics, 0);
    CU_ASSERT_EQUAL(r.rolled_back, 0);
    CU_ASSERT_EQUAL(h.nheur, 2);
    CU_ASSERT_TRUE(has_row(PG_C, 23));
    ctx.finished_here = NULL;

    /* Nothing left: a next pass reports nothing new. */
    r = pass_on(&ctx, PG_C);
    CU_ASSERT_EQUAL(r.heuristics, 0);
    CU_ASSERT_EQUAL(r.listed, 0);
    rec_state_destroy(st);
    journal_close(j);
}

static void test_cleanup(void)
{
    if (have_env) {
        clean(MY_A);
        clean(PG_C);
        sql(MY_A, "DROP TABLE IF EXISTS t_recl");
        sql(PG_C, "DROP TABLE IF EXISTS t_recl");
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", jdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

int cu_register(void)
{
    setup_confs();
    boot = xac_now_wall_us();
    snprintf(jdir, sizeof jdir, "/tmp/xac-itest-recl-XXXXXX");
    if (mkdtemp(jdir) == NULL)
        return CUE_NOMEMORY;
    static const cu_test tests[] = {
        {"environment and tables", test_env},
        {"rec_classify", test_classify},
        {"grace: earlier boot at once, this boot after grace_ms", test_grace},
        {"END across per-resource passes; a down resource", test_end_across_passes},
        {"heuristic: branch finished by hand; step hook", test_heuristic_and_steps},
        {"cleanup", test_cleanup},
        {NULL, NULL}};
    return cu_add_suite("recovery loop", tests);
}
