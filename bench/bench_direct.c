/* xac-bench's `direct` mode: the ceiling a coordinator is measured against.
 * Each client holds its own connection to every database of the workload and
 * issues the XA protocol itself through xac's own drivers (the mysql driver
 * for MariaDB, the odbc driver's postgresql dialect for PostgreSQL), so that
 * the statements on the wire are the ones xacd sends and the difference
 * between the modes is the coordinator alone. There is no coordinator and no
 * log: the decision to commit is durable nowhere, which is exactly what this
 * mode leaves out. A transaction with one branch ends with a one-phase
 * commit; with several, each branch beyond the first has a helper thread of
 * its own, so END+PREPARE and then COMMIT run on all branches at once. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_workload.h"

enum job { JOB_NONE = 0, JOB_PREPARE, JOB_COMMIT, JOB_QUIT };

typedef struct branch {
    int db;
    drv_conn *conn;
    xac_xid xid;
    bool started;
    bool rdonly; /* prepare answered XA_RDONLY: nothing to commit */
    int rc;      /* XA code of the last job */
    xac_err err;
} branch;

typedef struct helper {
    pthread_t thread;
    bool running;
    sem_t go;
    sem_t done;
    enum job job;
    branch *b;
} helper;

struct bench_direct {
    bench_workload w;
    unsigned client_id;
    uint64_t rng;
    uint64_t boot;
    char node[XAC_NODE_ID_MAX + 1];
    size_t nbranches;
    branch br[BENCH_DB_N]; /* in database order */
    helper hp[BENCH_DB_N]; /* hp[i] serves br[i]; hp[0] is unused */
    branch *of_db[BENCH_DB_N];
};

static void run_job(branch *b, enum job job)
{
    xac_err_clear(&b->err);
    if (job == JOB_PREPARE) {
        b->rc = drv_end(b->conn, &b->xid, &b->err);
        if (b->rc == XA_OK)
            b->rc = drv_prepare(b->conn, &b->xid, &b->err);
        b->rdonly = b->rc == XA_RDONLY;
    } else if (job == JOB_COMMIT) {
        b->rc = b->rdonly ? XA_OK : drv_commit(b->conn, &b->xid, false, &b->err);
    }
}

static void *helper_main(void *arg)
{
    helper *h = arg;
    for (;;) {
        while (sem_wait(&h->go) != 0 && errno == EINTR)
            ;
        if (h->job == JOB_QUIT)
            return NULL;
        run_job(h->b, h->job);
        sem_post(&h->done);
    }
}

/* Runs job on every branch at once: branches 1.. on their helpers, branch 0
 * on the calling thread. */
static void run_all(bench_direct *c, enum job job)
{
    for (size_t i = 1; i < c->nbranches; i++) {
        c->hp[i].job = job;
        sem_post(&c->hp[i].go);
    }
    run_job(&c->br[0], job);
    for (size_t i = 1; i < c->nbranches; i++)
        while (sem_wait(&c->hp[i].done) != 0 && errno == EINTR)
            ;
}

void bench_direct_close(bench_direct *c)
{
    if (c == NULL)
        return;
    for (size_t i = 1; i < c->nbranches; i++) {
        helper *h = &c->hp[i];
        if (!h->running)
            continue;
        h->job = JOB_QUIT;
        sem_post(&h->go);
        pthread_join(h->thread, NULL);
        sem_destroy(&h->go);
        sem_destroy(&h->done);
    }
    for (size_t i = 0; i < c->nbranches; i++)
        drv_close(c->br[i].conn);
    free(c);
}

int bench_direct_open(const bench_target *t, const bench_workload *w, unsigned client_id,
                      bench_direct **out, xac_err *err)
{
    *out = NULL;
    bench_direct *c = calloc(1, sizeof *c);
    if (c == NULL)
        return xac_err_set(err, XAC_ENOMEM, "direct client %u: out of memory", client_id);
    c->w = *w;
    c->client_id = client_id;
    c->rng = bench_rng_seed(client_id);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Distinct runs never reuse an XID, even one a killed run left prepared. */
    c->boot = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    snprintf(c->node, sizeof c->node, "benchd%u", client_id);
    unsigned dbs = bench_workload_dbs(w);
    for (int db = 0; db < BENCH_DB_N; db++) {
        if ((dbs & 1u << db) == 0)
            continue;
        branch *b = &c->br[c->nbranches++];
        b->db = db;
        c->of_db[db] = b;
        if (drv_open(&t->db[db], &b->conn, err) != XA_OK) {
            b->conn = NULL;
            xac_err_prefix(err, "direct client %u", client_id);
            bench_direct_close(c);
            return err->code != XAC_OK ? err->code : XAC_ERMFAIL;
        }
    }
    for (size_t i = 1; i < c->nbranches; i++) {
        helper *h = &c->hp[i];
        h->b = &c->br[i];
        if (sem_init(&h->go, 0, 0) != 0 || sem_init(&h->done, 0, 0) != 0) {
            bench_direct_close(c);
            return xac_err_set(err, XAC_EINTERNAL, "direct client %u: sem_init failed", client_id);
        }
        int e = pthread_create(&h->thread, NULL, helper_main, h);
        if (e != 0) {
            sem_destroy(&h->go);
            sem_destroy(&h->done);
            bench_direct_close(c);
            return xac_err_set(err, XAC_EINTERNAL, "direct client %u: pthread_create: %s",
                               client_id, strerror(e));
        }
        h->running = true;
    }
    *out = c;
    return XAC_OK;
}

/* The client-visible code for a driver's XA code: a branch the database
 * rolled back is XAC_EROLLBACK, which the caller counts and goes on. */
static int code_of(int xa)
{
    return XA_IS_RB(xa) ? XAC_EROLLBACK : drv_xa_to_code(xa);
}

/* Rolls every started branch back after a failure; the first error stays
 * in err. A rollback that fails leaves the connection unusable for the next
 * transaction, which the caller learns from the returned code. */
static int abort_all(bench_direct *c, int xa, xac_err *err)
{
    int rc = code_of(xa);
    for (size_t i = 0; i < c->nbranches; i++) {
        branch *b = &c->br[i];
        if (!b->started)
            continue;
        b->started = false;
        xac_err e2;
        xac_err_clear(&e2);
        int r = drv_rollback(b->conn, &b->xid, &e2);
        if (r != XA_OK && r != XAER_NOTA && !XA_IS_RB(r) && rc == XAC_EROLLBACK) {
            *err = e2;
            rc = drv_xa_to_code(r);
        }
    }
    return rc;
}

int bench_direct_tx(bench_direct *c, uint64_t seq, xac_err *err)
{
    bench_stmt st[BENCH_STMT_MAX];
    size_t n = bench_workload_stmts(&c->w, &c->rng, st);
    char gtrid[XAC_GTRID_MAX + 1];
    int rc = xac_gtrid_make(gtrid, c->node, c->boot, seq, err);
    if (rc != XAC_OK)
        return rc;
    for (size_t i = 0; i < c->nbranches; i++) {
        branch *b = &c->br[i];
        b->started = false;
        b->rdonly = false;
        if ((rc = xac_xid_make(&b->xid, gtrid, bench_db_name(b->db), err)) != XAC_OK)
            return rc;
    }
    xac_rows rows;
    xac_rows_init(&rows);
    for (size_t i = 0; i < n; i++) {
        branch *b = c->of_db[st[i].db];
        int xa;
        if (!b->started) {
            xa = drv_start(b->conn, &b->xid, err);
            if (xa != XA_OK)
                return abort_all(c, xa, err);
            b->started = true;
        }
        xa = drv_exec(b->conn, st[i].sql, strlen(st[i].sql), st[i].params, st[i].nparams, &rows,
                      err);
        if (xa == XA_OK && st[i].read && (!rows.has_rows || rows.nrows != 1)) {
            xa = XAER_RMERR;
            xac_err_set(err, XAC_ESQL, "%s: \"%s\" returned no row", bench_db_name(b->db),
                        st[i].sql);
        }
        xac_rows_free(&rows);
        if (xa != XA_OK)
            return abort_all(c, xa, err);
    }

    if (c->nbranches == 1) {
        branch *b = &c->br[0];
        int xa = drv_end(b->conn, &b->xid, err);
        if (xa != XA_OK)
            return abort_all(c, xa, err);
        xa = drv_commit(b->conn, &b->xid, true, err);
        b->started = false;
        return xa == XA_OK ? XAC_OK : code_of(xa);
    }

    run_all(c, JOB_PREPARE);
    for (size_t i = 0; i < c->nbranches; i++) {
        branch *b = &c->br[i];
        if (b->rc != XA_OK && b->rc != XA_RDONLY) {
            *err = b->err;
            xac_err_prefix(err, "%s: prepare", bench_db_name(b->db));
            return abort_all(c, b->rc, err);
        }
    }
    /* Read-only branches are over; the others commit at once. A helper
     * whose branch is read-only commits nothing (JOB_COMMIT skips it). */
    for (size_t i = 0; i < c->nbranches; i++)
        c->br[i].started = false;
    run_all(c, JOB_COMMIT);
    rc = XAC_OK;
    for (size_t i = 0; i < c->nbranches; i++) {
        branch *b = &c->br[i];
        if (b->rc != XA_OK && rc == XAC_OK) {
            /* No coordinator: a branch that fails here stays in doubt. */
            *err = b->err;
            xac_err_prefix(err, "%s: commit after prepare (the branch may be left in doubt)",
                           bench_db_name(b->db));
            rc = drv_xa_to_code(b->rc);
            if (rc == XAC_OK)
                rc = XAC_EINTERNAL;
        }
    }
    return rc;
}

static int ops_open(const bench_target *t, const bench_workload *w, unsigned client_id, void **out,
                    xac_err *err)
{
    bench_direct *c = NULL;
    int rc = bench_direct_open(t, w, client_id, &c, err);
    *out = c;
    return rc;
}

static int ops_tx(void *c, uint64_t seq, xac_err *err)
{
    return bench_direct_tx(c, seq, err);
}

static void ops_close(void *c)
{
    bench_direct_close(c);
}

const bench_mode_ops bench_direct_ops = {
    .name = "direct", .open = ops_open, .tx = ops_tx, .close = ops_close};
