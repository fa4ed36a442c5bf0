/* The engine's paths that need no database (coordinator/engine.c): gtrids,
 * transactions without branches, unknown resources, rollback-only after an
 * unreachable resource, timeouts, the live table and the outcome ring, and
 * what STATUS says about transactions recovery finished or the journal holds.
 * The one resource points at a closed port, so every connection attempt
 * fails. (A COMMIT the journal leaves in doubt needs prepared branches: see
 * tests/integration/test_journal_fail.sh.) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cu.h"
#include "engine.h"

static drv_conf dead;
static xacd_config cfg;

static void setup(void)
{
    memset(&dead, 0, sizeof dead);
    snprintf(dead.name, sizeof dead.name, "dead");
    snprintf(dead.driver, sizeof dead.driver, "mysql");
    snprintf(dead.host, sizeof dead.host, "127.0.0.1");
    dead.port = 1; /* nothing listens: refused at once */
    snprintf(dead.user, sizeof dead.user, "nobody");
    snprintf(dead.database, sizeof dead.database, "none");
    dead.connect_timeout_ms = 1000;
    dead.io_timeout_ms = 1000;
    dead.pool_size = 1;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.node_id, sizeof cfg.node_id, "unit1");
    cfg.tx_timeout_ms = 60000;
    cfg.max_tx_timeout_ms = 120000;
    cfg.pool_wait_ms = 100;
    cfg.workers = 2;
    cfg.resources = &dead;
    cfg.nresources = 1;
}

static engine *make_with(journal *j)
{
    setup();
    engine *e = NULL;
    xac_err err;
    xac_err_clear(&err);
    int rc = engine_create(&cfg, j, &e, &err);
    if (rc != XAC_OK)
        fprintf(stderr, "\nengine_create: %s\n", err.msg);
    CU_ASSERT_FATAL(rc == XAC_OK);
    return e;
}

static engine *make(void)
{
    return make_with(NULL);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_gtrid_and_empty_commit(void)
{
    engine *e = make();
    txn *a, *b;
    xac_err err;
    CU_ASSERT_FATAL(engine_begin(e, "app", 0, &a, &err) == XAC_OK);
    CU_ASSERT_FATAL(engine_begin(e, "app", 0, &b, &err) == XAC_OK);
    char ga[XAC_GTRID_MAX + 1], gb[XAC_GTRID_MAX + 1];
    snprintf(ga, sizeof ga, "%s", engine_gtrid(a));
    snprintf(gb, sizeof gb, "%s", engine_gtrid(b));
    CU_ASSERT_STRING_NOT_EQUAL(ga, gb);
    CU_ASSERT_EQUAL(strncmp(ga, "unit1.", 6), 0);
    CU_ASSERT_TRUE(engine_is_live(e, ga));
    CU_ASSERT_EQUAL(engine_status(e, ga), XAC_STATE_ACTIVE);

    CU_ASSERT_EQUAL(engine_commit(e, a, &err), XAC_OK);
    CU_ASSERT_FALSE(engine_is_live(e, ga));
    CU_ASSERT_EQUAL(engine_status(e, ga), XAC_STATE_COMMITTED);
    CU_ASSERT_EQUAL(engine_rollback(e, b, &err), XAC_OK);
    CU_ASSERT_EQUAL(engine_status(e, gb), XAC_STATE_ROLLED_BACK);
    CU_ASSERT_EQUAL(engine_status(e, "unit1.0.0"), XAC_STATE_UNKNOWN);
    engine_destroy(e);
}

/* A pipelined COMMIT behind the failed EXEC must not commit without it. */
static void test_unknown_resource_makes_rollback_only(void)
{
    engine *e = make();
    txn *t;
    xac_err err;
    CU_ASSERT_FATAL(engine_begin(e, "app", 0, &t, &err) == XAC_OK);
    char g[XAC_GTRID_MAX + 1];
    snprintf(g, sizeof g, "%s", engine_gtrid(t));
    xac_rows rows;
    xac_rows_init(&rows);
    CU_ASSERT_EQUAL(engine_exec(e, t, "nope", "SELECT 1", 8, NULL, 0, &rows, &err), XAC_ERESOURCE);
    CU_ASSERT_STRING_EQUAL(err.resource, "nope");
    CU_ASSERT_EQUAL(engine_exec(e, t, "nope", "SELECT 1", 8, NULL, 0, &rows, &err), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(err.resource, "nope");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown resource"));
    CU_ASSERT_EQUAL(engine_commit(e, t, &err), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(err.resource, "nope");
    CU_ASSERT_EQUAL(engine_status(e, g), XAC_STATE_ROLLED_BACK);
    engine_destroy(e);
}

static void test_unreachable_makes_rollback_only(void)
{
    engine *e = make();
    txn *t;
    xac_err err;
    CU_ASSERT_FATAL(engine_begin(e, "app", 0, &t, &err) == XAC_OK);
    char g[XAC_GTRID_MAX + 1];
    snprintf(g, sizeof g, "%s", engine_gtrid(t));
    xac_rows rows;
    xac_rows_init(&rows);
    CU_ASSERT_EQUAL(engine_exec(e, t, "dead", "SELECT 1", 8, NULL, 0, &rows, &err), XAC_ERMFAIL);
    CU_ASSERT_STRING_EQUAL(err.resource, "dead");
    CU_ASSERT_EQUAL(engine_exec(e, t, "dead", "SELECT 1", 8, NULL, 0, &rows, &err), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(err.resource, "dead");
    CU_ASSERT_EQUAL(engine_commit(e, t, &err), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(err.resource, "dead");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "dead"));
    CU_ASSERT_EQUAL(engine_status(e, g), XAC_STATE_ROLLED_BACK);
    xac_rows_free(&rows);
    engine_destroy(e);
}

/* The deadline is passed for sure after the sleep; whether the reaper or the
 * call itself notices first, the answer is the same. */
static void test_timeout(void)
{
    engine *e = make();
    txn *t, *u;
    xac_err err;
    CU_ASSERT_FATAL(engine_begin(e, "app", 1, &t, &err) == XAC_OK);
    CU_ASSERT_FATAL(engine_begin(e, "app", 1, &u, &err) == XAC_OK);
    char g[XAC_GTRID_MAX + 1];
    snprintf(g, sizeof g, "%s", engine_gtrid(t));
    sleep_ms(20);
    xac_rows rows;
    xac_rows_init(&rows);
    CU_ASSERT_EQUAL(engine_exec(e, t, "dead", "SELECT 1", 8, NULL, 0, &rows, &err), XAC_ETIMEOUT);
    CU_ASSERT_EQUAL(engine_status(e, g), XAC_STATE_ROLLED_BACK);
    CU_ASSERT_FALSE(engine_is_live(e, g));
    CU_ASSERT_EQUAL(engine_rollback(e, t, &err), XAC_OK);
    CU_ASSERT_EQUAL(engine_commit(e, u, &err), XAC_EROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "timed out"));
    engine_destroy(e);
}

static void test_timeout_capped(void)
{
    engine *e = make();
    cfg.max_tx_timeout_ms = 1;
    txn *t;
    xac_err err;
    CU_ASSERT_FATAL(engine_begin(e, "app", 999999, &t, &err) == XAC_OK);
    sleep_ms(20);
    CU_ASSERT_EQUAL(engine_commit(e, t, &err), XAC_EROLLBACK);
    engine_destroy(e);
}

static void test_ring(void)
{
    engine *e = make();
    xac_err err;
    char first[XAC_GTRID_MAX + 1], last[XAC_GTRID_MAX + 1];
    for (int i = 0; i < 4097; i++) {
        txn *t;
        CU_ASSERT_FATAL(engine_begin(e, "app", 0, &t, &err) == XAC_OK);
        snprintf(i == 0 ? first : last, XAC_GTRID_MAX + 1, "%s", engine_gtrid(t));
        CU_ASSERT_FATAL(engine_commit(e, t, &err) == XAC_OK);
    }
    /* 4,096 outcomes are kept: the first has dropped out. */
    CU_ASSERT_EQUAL(engine_status(e, first), XAC_STATE_UNKNOWN);
    CU_ASSERT_EQUAL(engine_status(e, last), XAC_STATE_COMMITTED);
    engine_destroy(e);
}

static void test_destroy_with_live(void)
{
    engine *e = make();
    txn *t;
    xac_err err;
    CU_ASSERT_FATAL(engine_begin(e, "app", 0, &t, &err) == XAC_OK);
    engine_destroy(e); /* rolls back and frees t; must not crash or leak under ASan */
}

/* A gtrid recovery committed and ended is reported COMMITTED, not UNKNOWN
 * (which would tell a client asking after a restart that it did not commit). */
static void test_recovered_status(void)
{
    engine *e = make();
    const char *g = "unit1.1234.5";
    CU_ASSERT_EQUAL(engine_status(e, g), XAC_STATE_UNKNOWN);
    engine_recovered(e, g);
    CU_ASSERT_EQUAL(engine_status(e, g), XAC_STATE_COMMITTED);
    CU_ASSERT_FALSE(engine_is_live(e, g));
    CU_ASSERT_EQUAL(engine_status(e, "unit1.1234.6"), XAC_STATE_UNKNOWN);
    engine_destroy(e);
}

/* With a journal: a COMMIT record not yet ended is COMMITTING, an ended one
 * is forgotten; holding undecided branches changes nothing for STATUS. */
static void test_journal_status(void)
{
    char dir[] = "/tmp/xac-test-engine-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char jdir[64];
    snprintf(jdir, sizeof jdir, "%s/j", dir);
    journal *j = NULL;
    xac_err err;
    xac_err_clear(&err);
    CU_ASSERT_FATAL(journal_open(jdir, 0, &j, &err) == XAC_OK);
    journal_txn t;
    memset(&t, 0, sizeof t);
    snprintf(t.gtrid, sizeof t.gtrid, "unit1.99.1");
    t.nbranches = 2;
    snprintf(t.resources[0], sizeof t.resources[0], "dead");
    snprintf(t.resources[1], sizeof t.resources[1], "other");
    bool in_doubt = true;
    CU_ASSERT_FATAL(journal_commit(j, &t, &in_doubt, &err) == XAC_OK);
    CU_ASSERT_FALSE(in_doubt);

    engine *e = make_with(j);
    engine_hold_undecided(e);
    CU_ASSERT_EQUAL(engine_status(e, "unit1.99.1"), XAC_STATE_COMMITTING);
    CU_ASSERT_FALSE(engine_is_live(e, "unit1.99.1"));
    CU_ASSERT_EQUAL(journal_end(j, "unit1.99.1", &err), XAC_OK);
    CU_ASSERT_EQUAL(engine_status(e, "unit1.99.1"), XAC_STATE_UNKNOWN);
    engine_recovered(e, "unit1.99.1");
    CU_ASSERT_EQUAL(engine_status(e, "unit1.99.1"), XAC_STATE_COMMITTED);
    engine_destroy(e);
    journal_close(j);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* ------------------------------------------------------------ the pool */

typedef struct storm {
    engine *e;
    int n;
    atomic_int committed, rolled_back, failed;
} storm;

/* Two-branch transactions on two null resources, every fourth rolled back:
 * each runs a prepare and a commit (or a rollback) fan-out. */
static void *storm_main(void *arg)
{
    storm *s = arg;
    for (int i = 0; i < s->n; i++) {
        txn *t = NULL;
        xac_err err;
        xac_err_clear(&err);
        if (engine_begin(s->e, "app", 0, &t, &err) != XAC_OK) {
            atomic_fetch_add(&s->failed, 1);
            continue;
        }
        bool ok = true;
        for (int r = 0; r < 2 && ok; r++) {
            xac_rows rows;
            xac_rows_init(&rows);
            ok = engine_exec(s->e, t, r == 0 ? "null_a" : "null_b", "SELECT 1", 8, NULL, 0, &rows,
                             &err) == XAC_OK;
            xac_rows_free(&rows);
        }
        if (!ok) {
            atomic_fetch_add(&s->failed, 1);
            engine_rollback(s->e, t, &err);
        } else if (i % 4 == 3) {
            int rc = engine_rollback(s->e, t, &err);
            atomic_fetch_add(rc == XAC_OK ? &s->rolled_back : &s->failed, 1);
        } else {
            int rc = engine_commit(s->e, t, &err);
            atomic_fetch_add(rc == XAC_OK ? &s->committed : &s->failed, 1);
        }
    }
    return NULL;
}

/* Many sessions fanning out at once over a pool smaller than they are: jobs
 * handed to workers, taken back by their callers, or run by the caller when
 * no worker is idle. Every transaction must end as asked, none twice (the
 * counts would differ), and destroy must find the pool quiet. */
static void test_pool_storm(void)
{
    char dir[] = "/tmp/xac-test-engine-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char jdir[64];
    snprintf(jdir, sizeof jdir, "%s/j", dir);
    static const int pools[] = {1, 3, 16};
    for (size_t pi = 0; pi < sizeof pools / sizeof pools[0]; pi++) {
        journal *j = NULL;
        xac_err err;
        xac_err_clear(&err);
        CU_ASSERT_FATAL(journal_open(jdir, 0, &j, &err) == XAC_OK);
        setup();
        drv_conf res[2];
        memset(res, 0, sizeof res);
        for (int r = 0; r < 2; r++) {
            snprintf(res[r].name, sizeof res[r].name, r == 0 ? "null_a" : "null_b");
            snprintf(res[r].driver, sizeof res[r].driver, "null");
            res[r].pool_size = 16;
        }
        cfg.resources = res;
        cfg.nresources = 2;
        cfg.workers = pools[pi];
        engine *e = NULL;
        CU_ASSERT_FATAL(engine_create(&cfg, j, &e, &err) == XAC_OK);
        enum { NTH = 12, PER = 200 };
        static storm s;
        s.e = e;
        s.n = PER;
        atomic_init(&s.committed, 0);
        atomic_init(&s.rolled_back, 0);
        atomic_init(&s.failed, 0);
        pthread_t th[NTH];
        for (int i = 0; i < NTH; i++)
            CU_ASSERT_FATAL(pthread_create(&th[i], NULL, storm_main, &s) == 0);
        for (int i = 0; i < NTH; i++)
            pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(atomic_load(&s.failed), 0);
        CU_ASSERT_EQUAL(atomic_load(&s.committed), NTH * PER * 3 / 4);
        CU_ASSERT_EQUAL(atomic_load(&s.rolled_back), NTH * PER / 4);
        engine_health h;
        engine_get_health(e, &h);
        CU_ASSERT_EQUAL(h.committed, (uint64_t)NTH * PER * 3 / 4);
        CU_ASSERT_EQUAL(h.rolled_back, (uint64_t)NTH * PER / 4);
        journal_stats st;
        journal_get_stats(j, &st);
        CU_ASSERT_EQUAL(st.commits, (uint64_t)NTH * PER * 3 / 4);
        engine_destroy(e);
        journal_close(j);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

int cu_register(void)
{
    static const cu_test tests[] = {
        {"gtrids, empty commit, status", test_gtrid_and_empty_commit},
        {"unknown resource: rollback-only", test_unknown_resource_makes_rollback_only},
        {"unreachable: rollback-only", test_unreachable_makes_rollback_only},
        {"timeout", test_timeout},
        {"timeout capped", test_timeout_capped},
        {"ring of outcomes", test_ring},
        {"destroy with live txn", test_destroy_with_live},
        {"status of a recovered gtrid", test_recovered_status},
        {"status from the journal", test_journal_status},
        {"worker pool under a storm of fan-outs", test_pool_storm},
        {NULL, NULL}};
    return cu_add_suite("engine", tests);
}
