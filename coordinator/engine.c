/* The 2PC engine (engine.h): the live transaction table, the worker pool that
 * fans phase one and phase two out across resources, the timeout reaper and the
 * presumed-abort protocol of design.md. The commit point is journal_commit:
 * nothing before it may be reported committed, nothing after it may be rolled
 * back. When the journal cannot tell whether a decision reached the disk, the
 * transaction is held: its branches stay prepared, it counts as live for
 * recovery, and the next start-up's replay of the journal settles it. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"
#include "fault.h"
#include "rec.h"

#define ENGINE_BUCKETS  1024
#define ENGINE_RING     4096
#define PHASE2_ATTEMPTS 4
#define PHASE2_RETRY_MS 200
#define REAPER_TICK_MS  100

/* The recovery loop: a burst of branches left in doubt is gathered into one
 * pass; the newest heuristic outcomes are kept for status. */
#define RECOVERY_SETTLE_MS 200
#define HEURISTICS_KEPT    256

/* ------------------------------------------------------------ workers */

typedef void (*job_fn)(void *arg);

/* A fan-out's completion word: twice the number of jobs handed to workers
 * and not finished yet, plus FAN_WAITING while the caller sleeps on it (a
 * futex). A worker that finishes the last job wakes the caller only when
 * that bit is set, so a caller that never had to sleep costs no wake-up. */
#define FAN_WAITING 1u
#define FAN_ONE     2u

/* A worker's state word, its futex: the low two bits are the state, the rest
 * counts the jobs posted to it, so that a caller taking back its job (a
 * compare-and-swap on the exact word it posted) can never take a later
 * caller's job instead. */
#define W_IDLE    0u
#define W_POSTED  1u
#define W_RUNNING 2u
#define W_STOP    3u
#define W_MASK    3u
#define W_GEN     4u

typedef struct worker {
    atomic_uint state;
    /* The job, written by the caller that took the worker off the idle
     * stack, read by the worker once it moved the state to W_RUNNING. */
    job_fn fn;
    void *arg;
    atomic_uint *fan;
    atomic_uint next_idle; /* index + 1 of the next idle worker, 0: none */
    struct workers *pool;
    pthread_t th;
} worker;

/* A job no worker was idle for; lives on its caller's stack. */
typedef struct ojob {
    job_fn fn;
    void *arg;
    atomic_uint *fan;
    struct ojob *next;
} ojob;

/* The pool: no lock on the way. Idle workers sit on a stack (a tagged index
 * in one word against ABA); a caller pops one per job, posts the job in its
 * state word and wakes it alone. When every worker is busy, the job waits in
 * the overflow queue, which a worker looks at before it goes idle. */
typedef struct workers {
    worker *w;
    int nthreads;
    _Atomic uint64_t idle; /* tag << 32 | index + 1 of the top, 0: empty */
    pthread_mutex_t omu;   /* the overflow queue */
    ojob *ohead, **otail;
    atomic_uint nover; /* its length, to look without the lock */
} workers;

/* ------------------------------------------------------------- txns */

enum br_state {
    BR_ACTIVE,   /* started, work may follow */
    BR_ENDED,    /* ended, not prepared */
    BR_PREPARED, /* voted yes */
    BR_RDONLY,   /* voted read-only: finished */
    BR_DONE,     /* committed or rolled back */
    BR_LEFT,     /* could not be finished: recovery will */
    BR_LAST      /* a last resource's local transaction, kept out of phase one */
};

typedef struct branch {
    int ridx;
    xac_xid xid;
    drv_conn *conn;
    enum br_state state;
    int rc; /* the XA code of the last step */
    xac_err err;
    bool maybe_prepared; /* PREPARE was sent and its answer lost */
} branch;

struct txn {
    engine *e;
    char gtrid[XAC_GTRID_MAX + 1];
    char client[65];
    pthread_mutex_t mu;   /* held while a session or the reaper works on the txn */
    atomic_int state;     /* XAC_STATE_* */
    uint64_t deadline_us; /* monotonic */
    uint32_t timeout_ms;
    bool rollback_only;
    xac_err rb_err;
    bool timed_out; /* the reaper rolled it back */
    /* engine_exec_ahead ran the only branch's one-phase commit with its
     * statement: the outcome engine_commit returns. */
    bool onephase_ran;
    int onephase_rc;
    xac_err onephase_err;
    bool in_table;
    branch *br; /* one slot per resource at most */
    size_t nbr;
    struct txn *hnext;
};

typedef struct outcome {
    char gtrid[XAC_GTRID_MAX + 1];
    int state;
} outcome;

struct engine {
    const xacd_config *cfg;
    journal *j;
    drv_pool **pools;
    size_t npools;
    uint64_t boot_us;
    atomic_uint_fast64_t seq;

    pthread_mutex_t tmu; /* the table, the ring and the held set */
    txn *buckets[ENGINE_BUCKETS];
    outcome *ring;
    size_t ring_next;
    size_t ring_count;
    /* Gtrids whose commit decision may or may not be on disk (journal_commit
     * said in doubt). Their branches stay prepared until a restart; recovery
     * must treat them as live, STATUS must not claim an outcome. */
    char (*held)[XAC_GTRID_MAX + 1];
    size_t nheld, held_cap;

    workers w;
    bool workers_started;

    pthread_t reaper;
    bool reaper_started;
    pthread_mutex_t rmu;
    pthread_cond_t rcv;
    bool reaper_stop;

    /* The recovery loop: one thread per resource, so that a resource that
     * is down, or hangs, delays the resolution of no other. Each runs a pass
     * at start-up, every recovery.interval_ms, on demand (need_recovery), and
     * with its own backoff while its resource is down. */
    struct recov_res *rr; /* one per resource */
    size_t nrr;
    bool recov_started;
    pthread_mutex_t qmu; /* rr[].needed, recov_stop */
    pthread_cond_t qcv;
    bool recov_stop;
    rec_state *rstate;
    atomic_bool hold_undecided; /* the journal was salvaged: see rec_ctx */
    bool has_last_resource;     /* a resource of the config is a last resource */

    /* Facts for status (engine_get_health). */
    atomic_uint_fast64_t n_committed, n_rolled_back;
    pthread_mutex_t hmu;           /* the fields below and rr[].health */
    char (*heur)[XAC_ERR_MSG_MAX]; /* ring of the newest HEURISTICS_KEPT */
    size_t heur_next, heur_count;
    uint64_t heur_total;
    uint64_t passes, last_pass_unix;
};

/* One resource's recovery thread and what status says about the resource. */
typedef struct recov_res {
    engine *e;
    size_t ri;
    pthread_t th;
    bool started;
    bool needed;         /* under qmu: a pass is asked for */
    unsigned backoff_ms; /* the thread's own */
    /* A last resource's markers of ended transactions, removed in batches
     * by the thread (under qmu); sweep asks for that without a pass. */
    char (*ended)[XAC_GTRID_MAX + 1];
    size_t nended, ended_cap;
    bool sweep;
    bool adopted;                  /* the start-up adoption of orphan markers is done */
    engine_resource_health health; /* under hmu */
    size_t indoubt;                /* under hmu: listed by the last pass */
} recov_res;

/* ----------------------------------------------------------- helpers */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static unsigned hash_gtrid(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % ENGINE_BUCKETS;
}

static const char *rname(const engine *e, const branch *b)
{
    return e->cfg->resources[b->ridx].name;
}

/* The client-facing code of a failed XA step. */
static int code_of(int rc)
{
    if (rc == XAER_RMERR)
        return XAC_ESQL;
    return drv_xa_to_code(rc);
}

/* ---------------------------------------------------------- worker pool */

static void futex_wake1(atomic_uint *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void futex_wait_val(atomic_uint *word, unsigned val)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

/* One job handed to a worker is finished. After the decrement the caller may
 * return at any moment, so fan is touched again only to wake a caller that
 * said it sleeps (a wake on its stack word after it left is harmless: the
 * stack stays mapped, and futex waiters recheck). */
static void fan_done(atomic_uint *fan)
{
    unsigned old = atomic_fetch_sub(fan, FAN_ONE);
    if (old == (FAN_ONE | FAN_WAITING))
        futex_wake1(fan);
}

static void idle_push(workers *p, worker *wk)
{
    uint32_t me = (uint32_t)(wk - p->w) + 1;
    uint64_t old = atomic_load(&p->idle);
    for (;;) {
        atomic_store_explicit(&wk->next_idle, (uint32_t)old, memory_order_relaxed);
        uint64_t nw = ((old >> 32) + 1) << 32 | me;
        if (atomic_compare_exchange_weak(&p->idle, &old, nw))
            return;
    }
}

static worker *idle_pop(workers *p)
{
    uint64_t old = atomic_load(&p->idle);
    for (;;) {
        uint32_t top = (uint32_t)old;
        if (top == 0)
            return NULL;
        uint32_t next = atomic_load_explicit(&p->w[top - 1].next_idle, memory_order_relaxed);
        uint64_t nw = ((old >> 32) + 1) << 32 | next;
        if (atomic_compare_exchange_weak(&p->idle, &old, nw))
            return &p->w[top - 1];
    }
}

/* The oldest job of the overflow queue, or NULL. */
static ojob *over_pop(workers *p)
{
    if (atomic_load(&p->nover) == 0)
        return NULL;
    pthread_mutex_lock(&p->omu);
    ojob *j = p->ohead;
    if (j != NULL) {
        p->ohead = j->next;
        if (p->ohead == NULL)
            p->otail = &p->ohead;
        atomic_fetch_sub(&p->nover, 1);
    }
    pthread_mutex_unlock(&p->omu);
    return j;
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    for (;;) {
        unsigned s = atomic_load(&wk->state);
        if ((s & W_MASK) == W_STOP)
            return NULL;
        if ((s & W_MASK) != W_POSTED) {
            futex_wait_val(&wk->state, s);
            continue;
        }
        unsigned run = (s & ~W_MASK) | W_RUNNING;
        if (!atomic_compare_exchange_strong(&wk->state, &s, run))
            continue; /* taken back by its caller, or stopped */
        atomic_uint *fan = wk->fan;
        wk->fn(wk->arg);
        fan_done(fan);
        /* Jobs that found every worker busy come first. Once popped, a job's
         * caller waits for it, so its stack frame stays put until fan_done. */
        for (ojob *oj; (oj = over_pop(wk->pool)) != NULL;) {
            atomic_uint *ofan = oj->fan;
            oj->fn(oj->arg);
            fan_done(ofan);
        }
        unsigned idle = (run & ~W_MASK) | W_IDLE;
        if (!atomic_compare_exchange_strong(&wk->state, &run, idle))
            return NULL; /* stopped meanwhile */
        idle_push(wk->pool, wk);
    }
}

static void workers_stop(workers *p)
{
    for (int i = 0; i < p->nthreads; i++) {
        worker *wk = &p->w[i];
        unsigned was = atomic_exchange(&wk->state, W_STOP);
        futex_wake1(&wk->state);
        /* A job posted and not started would leave its caller waiting. */
        if ((was & W_MASK) == W_POSTED) {
            wk->fn(wk->arg);
            fan_done(wk->fan);
        }
    }
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->w[i].th, NULL);
    free(p->w);
    p->w = NULL;
    p->nthreads = 0;
    pthread_mutex_destroy(&p->omu);
}

static int workers_start(workers *p, int n, xac_err *err)
{
    memset(p, 0, sizeof *p);
    atomic_init(&p->idle, 0);
    pthread_mutex_init(&p->omu, NULL);
    p->ohead = NULL;
    p->otail = &p->ohead;
    atomic_init(&p->nover, 0);
    if (n <= 0)
        return XAC_OK;
    p->w = calloc((size_t)n, sizeof *p->w);
    if (p->w == NULL)
        return xac_err_set(err, XAC_ENOMEM, "engine: out of memory for %d worker threads", n);
    for (int i = 0; i < n; i++) {
        worker *wk = &p->w[i];
        atomic_init(&wk->state, W_IDLE);
        atomic_init(&wk->next_idle, 0);
        wk->pool = p;
        int rc = pthread_create(&wk->th, NULL, worker_main, wk);
        if (rc != 0) {
            xac_err_set(err, XAC_EINTERNAL, "engine: cannot start worker thread %d of %d: %s",
                        i + 1, n, strerror(rc));
            workers_stop(p);
            return XAC_EINTERNAL;
        }
        p->nthreads = i + 1;
        idle_push(p, wk);
    }
    return XAC_OK;
}

/* Runs fn on each of n args (at most JOURNAL_MAX_BRANCHES) in parallel and
 * returns when all are done. The caller runs the first itself, so a fan-out
 * of one costs no hand-off and a busy pool never deadlocks. Each other job
 * goes to one idle worker, woken alone, or, when every worker is busy, to the
 * overflow queue for the first worker that gets free. A job that no worker
 * has started by the time the caller is done with its own is taken back and
 * run by the caller: that saves the wait for a worker when the branches are
 * quick, and keeps them in parallel when they are slow (a worker has long
 * started). */
static void run_all(engine *e, job_fn fn, void **args, size_t n)
{
    if (n == 0)
        return;
    workers *p = &e->w;
    worker *posted[JOURNAL_MAX_BRANCHES];
    unsigned word[JOURNAL_MAX_BRANCHES];
    ojob over[JOURNAL_MAX_BRANCHES];
    bool queued[JOURNAL_MAX_BRANCHES];
    size_t nqueued = 0;
    atomic_uint fan;
    atomic_init(&fan, 0);
    for (size_t i = 1; i < n; i++) {
        posted[i] = NULL;
        queued[i] = false;
        if (p->nthreads == 0)
            continue;
        worker *wk = idle_pop(p);
        atomic_fetch_add(&fan, FAN_ONE);
        if (wk == NULL) {
            over[i] = (ojob){fn, args[i], &fan, NULL};
            pthread_mutex_lock(&p->omu);
            *p->otail = &over[i];
            p->otail = &over[i].next;
            atomic_fetch_add(&p->nover, 1);
            pthread_mutex_unlock(&p->omu);
            queued[i] = true;
            nqueued++;
            continue;
        }
        wk->fn = fn;
        wk->arg = args[i];
        wk->fan = &fan;
        unsigned s = atomic_load(&wk->state);
        unsigned post = ((s & ~W_MASK) + W_GEN) | W_POSTED;
        if ((s & W_MASK) != W_IDLE || !atomic_compare_exchange_strong(&wk->state, &s, post)) {
            atomic_fetch_sub(&fan, FAN_ONE); /* stopping: run it here */
            continue;
        }
        posted[i] = wk;
        word[i] = post;
        futex_wake1(&wk->state);
    }

    fn(args[0]);

    /* Take back the queued jobs no worker has taken. */
    if (nqueued > 0) {
        pthread_mutex_lock(&p->omu);
        for (ojob **pp = &p->ohead; *pp != NULL;) {
            ojob *j = *pp;
            if (j->fan != &fan) {
                pp = &j->next;
                continue;
            }
            *pp = j->next;
            if (*pp == NULL)
                p->otail = pp;
            atomic_fetch_sub(&p->nover, 1);
            j->fn = NULL; /* ours to run below */
        }
        pthread_mutex_unlock(&p->omu);
    }
    for (size_t i = 1; i < n; i++) {
        if (queued[i]) {
            if (over[i].fn != NULL)
                continue; /* a worker has it */
            atomic_fetch_sub(&fan, FAN_ONE);
        } else if (posted[i] != NULL) {
            worker *wk = posted[i];
            unsigned s = word[i];
            if (!atomic_compare_exchange_strong(&wk->state, &s, (word[i] & ~W_MASK) | W_IDLE))
                continue; /* the worker has it */
            idle_push(p, wk);
            atomic_fetch_sub(&fan, FAN_ONE);
        }
        fn(args[i]);
    }

    if (atomic_load(&fan) == 0)
        return;
    atomic_fetch_or(&fan, FAN_WAITING);
    for (;;) {
        unsigned v = atomic_load(&fan);
        if (v < FAN_ONE)
            break;
        futex_wait_val(&fan, v);
    }
}

/* ----------------------------------------------------- table and ring */

static txn *table_find_locked(engine *e, const char *gtrid)
{
    for (txn *t = e->buckets[hash_gtrid(gtrid)]; t != NULL; t = t->hnext)
        if (strcmp(t->gtrid, gtrid) == 0)
            return t;
    return NULL;
}

static void table_insert(engine *e, txn *t)
{
    pthread_mutex_lock(&e->tmu);
    unsigned h = hash_gtrid(t->gtrid);
    t->hnext = e->buckets[h];
    e->buckets[h] = t;
    t->in_table = true;
    pthread_mutex_unlock(&e->tmu);
}

static void table_remove_locked(engine *e, txn *t)
{
    if (!t->in_table)
        return;
    txn **pp = &e->buckets[hash_gtrid(t->gtrid)];
    while (*pp != NULL && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp == t)
        *pp = t->hnext;
    t->hnext = NULL;
    t->in_table = false;
}

static void ring_add_locked(engine *e, const char *gtrid, int state)
{
    outcome *o = &e->ring[e->ring_next];
    /* No snprintf under the table lock every session takes. */
    size_t n = strnlen(gtrid, sizeof o->gtrid - 1);
    memcpy(o->gtrid, gtrid, n);
    o->gtrid[n] = '\0';
    o->state = state;
    e->ring_next = (e->ring_next + 1) % ENGINE_RING;
    if (e->ring_count < ENGINE_RING)
        e->ring_count++;
}

/* Records the outcome and takes t out of the live table in one step, so that
 * engine_status never sees a gap between the two. */
static void txn_finish(engine *e, txn *t, int state)
{
    atomic_store(&t->state, state);
    if (state == XAC_STATE_COMMITTED)
        atomic_fetch_add(&e->n_committed, 1);
    else if (state == XAC_STATE_ROLLED_BACK)
        atomic_fetch_add(&e->n_rolled_back, 1);
    pthread_mutex_lock(&e->tmu);
    ring_add_locked(e, t->gtrid, state);
    table_remove_locked(e, t);
    pthread_mutex_unlock(&e->tmu);
}

static bool held_find_locked(const engine *e, const char *gtrid)
{
    for (size_t i = 0; i < e->nheld; i++)
        if (strcmp(e->held[i], gtrid) == 0)
            return true;
    return false;
}

/* Moves t from the live table to the held set in one step, so that recovery
 * never sees it as neither. False when out of memory (t is still removed). */
static bool txn_hold(engine *e, txn *t)
{
    bool ok = true;
    pthread_mutex_lock(&e->tmu);
    if (e->nheld == e->held_cap) {
        size_t ncap = e->held_cap ? e->held_cap * 2 : 16;
        void *p = realloc(e->held, ncap * sizeof *e->held);
        if (p != NULL) {
            e->held = p;
            e->held_cap = ncap;
        }
    }
    if (e->nheld < e->held_cap)
        snprintf(e->held[e->nheld++], sizeof e->held[0], "%s", t->gtrid);
    else
        ok = false;
    table_remove_locked(e, t);
    pthread_mutex_unlock(&e->tmu);
    return ok;
}

static void txn_free(txn *t)
{
    if (t->in_table) {
        pthread_mutex_lock(&t->e->tmu);
        table_remove_locked(t->e, t);
        pthread_mutex_unlock(&t->e->tmu);
    }
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_destroy(&t->mu);
    free(t->br);
    free(t);
}

/* Asks every recovery thread for a pass: a branch of ours is left in doubt
 * (on which resource matters little: a pass where nothing is left is cheap,
 * and END records need every resource of the transaction seen clean). */
static void need_recovery(engine *e)
{
    if (!e->recov_started)
        return;
    pthread_mutex_lock(&e->qmu);
    for (size_t i = 0; i < e->nrr; i++)
        e->rr[i].needed = true;
    pthread_cond_broadcast(&e->qcv);
    pthread_mutex_unlock(&e->qmu);
}

/* Markers are removed in batches of this many, or at the next pass. */
#define MARKER_BATCH 100

/* Queues the removal of gtrid's commit marker on last resource ri (-1: on
 * every last resource, when which one is not known). */
static void marker_ended(engine *e, int ri, const char *gtrid)
{
    if (!e->recov_started)
        return;
    pthread_mutex_lock(&e->qmu);
    for (size_t i = 0; i < e->nrr; i++) {
        recov_res *rr = &e->rr[i];
        if (!e->cfg->resources[i].last_resource || (ri >= 0 && (size_t)ri != i))
            continue;
        if (rr->nended == rr->ended_cap) {
            size_t cap = rr->ended_cap ? rr->ended_cap * 2 : MARKER_BATCH;
            void *p = realloc(rr->ended, cap * sizeof *rr->ended);
            if (p == NULL) {
                /* Left in the table: the start-up sweep of a later run
                 * adopts and then removes it. */
                xac_logw("engine: out of memory queueing the removal of the marker of %s", gtrid);
                continue;
            }
            rr->ended = p;
            rr->ended_cap = cap;
        }
        snprintf(rr->ended[rr->nended++], XAC_GTRID_MAX + 1, "%s", gtrid);
        if (rr->nended >= MARKER_BATCH) {
            rr->sweep = true;
            pthread_cond_broadcast(&e->qcv);
        }
    }
    pthread_mutex_unlock(&e->qmu);
}

/* ------------------------------------------------------ branch steps */

/* Hands a branch's connection back: to the pool when its branch is finished,
 * marked broken (so the pool closes it and the database detaches the branch)
 * when it is not. */
static void branch_release(engine *e, branch *b)
{
    if (b->conn == NULL)
        return;
    if (b->state != BR_DONE && b->state != BR_RDONLY)
        b->conn->broken = true;
    drv_pool_put(e->pools[b->ridx], b->conn);
    b->conn = NULL;
}

/* Rolls one branch back, whatever its state. A branch the database already
 * rolled back (XA_RB*, XAER_NOTA) counts as done. A prepared branch whose
 * connection died is rolled back from a fresh connection. */
static void branch_rollback(engine *e, const char *gtrid, branch *b)
{
    const drv_conf *conf = &e->cfg->resources[b->ridx];
    xac_err err;
    xac_err_clear(&err);
    int rc = XA_OK;
    if (b->state == BR_DONE || b->state == BR_RDONLY)
        return;
    if (b->conn != NULL && !b->conn->broken) {
        if (b->state == BR_ACTIVE || b->state == BR_LAST) {
            rc = drv_end(b->conn, &b->xid, &err);
            if (rc == XA_OK || XA_IS_RB(rc))
                b->state = BR_ENDED;
        }
        rc = drv_rollback(b->conn, &b->xid, &err);
        if (rc != XA_OK && !XA_IS_RB(rc) && rc != XAER_NOTA && b->conn->broken &&
            (b->state == BR_PREPARED || b->maybe_prepared)) {
            /* The link died under the rollback; the prepared branch survives
             * it, so try once from a fresh connection. */
            drv_conn *c = NULL;
            rc = drv_open(conf, &c, &err);
            if (rc == XA_OK) {
                rc = drv_rollback(c, &b->xid, &err);
                drv_close(c);
            }
        }
    } else if (b->state == BR_PREPARED || b->maybe_prepared) {
        drv_conn *c = NULL;
        rc = drv_open(conf, &c, &err);
        if (rc == XA_OK) {
            rc = drv_rollback(c, &b->xid, &err);
            drv_close(c);
        }
    } else {
        /* Not prepared and its session is gone: the database discarded it. */
        rc = XA_OK;
    }
    if (rc == XA_OK || XA_IS_RB(rc) || rc == XAER_NOTA) {
        b->state = BR_DONE;
        return;
    }
    b->rc = rc;
    b->err = err;
    if (b->state == BR_PREPARED || b->maybe_prepared) {
        b->state = BR_LEFT;
        xac_loge("engine: gtrid %s: rollback of the prepared branch on %s failed (%s): %s; "
                 "recovery will roll it back (no commit record)",
                 gtrid, conf->name, drv_xa_name(rc), err.msg);
        need_recovery(e);
    } else {
        /* Dropping the connection makes the database discard the branch. */
        b->state = BR_LEFT;
        xac_logw("engine: gtrid %s: rollback on %s failed (%s): %s; closing the connection "
                 "discards the branch",
                 gtrid, conf->name, drv_xa_name(rc), err.msg);
    }
}

typedef struct step_arg {
    engine *e;
    txn *t;
    branch *b;
    atomic_int *yes; /* phase one: yes votes so far; phase two: commits so far */
} step_arg;

static void job_rollback(void *p)
{
    step_arg *a = p;
    bool was_done = a->b->state == BR_DONE || a->b->state == BR_RDONLY;
    branch_rollback(a->e, a->t->gtrid, a->b);
    if (!was_done && a->b->state == BR_DONE && a->yes != NULL && atomic_fetch_add(a->yes, 1) == 0)
        fault_point(FAULT_AFTER_FIRST_ROLLBACK);
    branch_release(a->e, a->b);
}

static void job_prepare(void *p)
{
    step_arg *a = p;
    branch *b = a->b;
    xac_err_clear(&b->err);
    b->rc = XA_OK;
    if (b->state == BR_ACTIVE) {
        b->rc = drv_end(b->conn, &b->xid, &b->err);
        if (b->rc != XA_OK) {
            xac_err_prefix(&b->err, "%s failed at XA END (%s)", rname(a->e, b), drv_xa_name(b->rc));
            return;
        }
        b->state = BR_ENDED;
    }
    b->rc = drv_prepare(b->conn, &b->xid, &b->err);
    if (b->rc == XA_OK) {
        b->state = BR_PREPARED;
        if (atomic_fetch_add(a->yes, 1) == 0)
            fault_point(FAULT_AFTER_FIRST_PREPARE);
    } else if (b->rc == XA_RDONLY) {
        b->state = BR_RDONLY;
    } else {
        /* XA_RB*: the database rolled it back itself; the rollback that
         * follows only clears the connection's state (and accepts NOTA). */
        if (b->rc == XAER_RMFAIL || b->conn->broken)
            b->maybe_prepared = true;
        xac_err_prefix(&b->err, "%s voted no at prepare (%s)", rname(a->e, b), drv_xa_name(b->rc));
    }
}

/* What an answer rc (err) to a branch's commit means after the decision:
 * true when the branch is done with (committed, already gone, or decided by
 * the database on its own, which is logged), false when it must be tried
 * again. */
static bool commit_settled(step_arg *a, int rc, const xac_err *err)
{
    branch *b = a->b;
    const char *res = rname(a->e, b);
    b->rc = rc;
    b->err = *err;
    if (rc == XA_OK || rc == XA_HEURCOM) {
        b->state = BR_DONE;
        if (atomic_fetch_add(a->yes, 1) == 0)
            fault_point(FAULT_AFTER_FIRST_COMMIT);
        return true;
    }
    if (rc == XAER_NOTA) {
        /* After our decision an unknown XID means it was already committed. */
        xac_logi("engine: gtrid %s: %s does not know the branch any more at commit: "
                 "already committed",
                 a->t->gtrid, res);
        b->state = BR_DONE;
        return true;
    }
    if (rc == XA_HEURRB || rc == XA_HEURMIX || rc == XA_HEURHAZ) {
        xac_loge("engine: gtrid %s: HEURISTIC outcome on %s at commit (%s): %s; the "
                 "database decided on its own, check the data by hand",
                 a->t->gtrid, res, drv_xa_name(rc), err->msg);
        b->state = BR_DONE;
        return true;
    }
    return false;
}

/* Phase two for one branch. The decision is durable, so this only ever
 * commits: it retries, moves to a fresh connection when the pinned one broke,
 * and finally leaves the branch to recovery. */
static void job_commit(void *p)
{
    step_arg *a = p;
    engine *e = a->e;
    branch *b = a->b;
    const drv_conf *conf = &e->cfg->resources[b->ridx];
    for (int attempt = 1; attempt <= PHASE2_ATTEMPTS; attempt++) {
        xac_err err;
        xac_err_clear(&err);
        int rc;
        if (b->conn != NULL && !b->conn->broken) {
            rc = drv_commit(b->conn, &b->xid, false, &err);
        } else {
            drv_conn *c = NULL;
            rc = drv_open(conf, &c, &err);
            if (rc == XA_OK) {
                rc = drv_commit(c, &b->xid, false, &err);
                drv_close(c);
            }
        }
        if (commit_settled(a, rc, &err))
            return;
        xac_logw("engine: gtrid %s: commit on %s failed, attempt %d of %d (%s): %s", a->t->gtrid,
                 conf->name, attempt, PHASE2_ATTEMPTS, drv_xa_name(rc), err.msg);
        if (attempt < PHASE2_ATTEMPTS)
            sleep_ms(PHASE2_RETRY_MS * (unsigned)attempt);
    }
    b->state = BR_LEFT;
    xac_loge("engine: gtrid %s: COMMIT DECIDED but the branch on %s is still in doubt after %d "
             "attempts (%s: %s); recovery will commit it",
             a->t->gtrid, conf->name, PHASE2_ATTEMPTS, drv_xa_name(b->rc), b->err.msg);
}

/* Phase two on every prepared branch, at once: a branch whose driver can
 * send its commit without waiting gets it first (no worker needed), the
 * others run on the worker pool meanwhile, then the sent ones' answers are
 * read. A failed answer goes through job_commit's retries like any other. */
static void commit_all(engine *e, txn *t, atomic_int *commits)
{
    step_arg args[JOURNAL_MAX_BRANCHES];
    void *ptrs[JOURNAL_MAX_BRANCHES];
    bool sent[JOURNAL_MAX_BRANCHES];
    size_t n = 0;
    for (size_t i = 0; i < t->nbr; i++) {
        branch *b = &t->br[i];
        sent[i] = false;
        if (b->state != BR_PREPARED)
            continue;
        sent[i] = drv_commit_send(b->conn, &b->xid);
        if (!sent[i]) {
            args[n] = (step_arg){e, t, b, commits};
            ptrs[n] = &args[n];
            n++;
        }
    }
    run_all(e, job_commit, ptrs, n);
    for (size_t i = 0; i < t->nbr; i++) {
        if (!sent[i])
            continue;
        branch *b = &t->br[i];
        step_arg a = {e, t, b, commits};
        xac_err err;
        xac_err_clear(&err);
        int rc = drv_commit_recv(b->conn, &b->xid, &err);
        if (commit_settled(&a, rc, &err))
            continue;
        xac_logw("engine: gtrid %s: commit on %s failed (%s): %s; trying again", t->gtrid,
                 rname(e, b), drv_xa_name(rc), err.msg);
        job_commit(&a);
    }
}

/* Runs fn on every branch of t in the given states, in parallel. */
static void fan_out(engine *e, txn *t, job_fn fn, unsigned state_mask, atomic_int *counter)
{
    size_t n = 0;
    step_arg args[JOURNAL_MAX_BRANCHES];
    void *ptrs[JOURNAL_MAX_BRANCHES];
    for (size_t i = 0; i < t->nbr; i++) {
        if (!(state_mask & (1u << t->br[i].state)))
            continue;
        args[n] = (step_arg){e, t, &t->br[i], counter};
        ptrs[n] = &args[n];
        n++;
    }
    run_all(e, fn, ptrs, n);
}

#define ALL_STATES 0xffffu

/* Rolls back every branch in parallel and returns the connections. */
static void rollback_all(engine *e, txn *t)
{
    if (t->nbr > 0)
        fault_point(FAULT_BEFORE_ROLLBACK);
    atomic_int done;
    atomic_init(&done, 0);
    fan_out(e, t, job_rollback, ALL_STATES, &done);
    for (size_t i = 0; i < t->nbr; i++)
        branch_release(e, &t->br[i]);
}

/* Must hold t->mu. Rolls t back because its deadline passed. */
static void txn_timeout_locked(engine *e, txn *t)
{
    xac_logw("engine: gtrid %s (client %s) timed out after %u ms; rolling back %zu branch(es)",
             t->gtrid, t->client, t->timeout_ms, t->nbr);
    rollback_all(e, t);
    t->timed_out = true;
    txn_finish(e, t, XAC_STATE_ROLLED_BACK);
}

static bool txn_expired(const txn *t)
{
    return xac_now_mono_us() >= t->deadline_us;
}

/* ------------------------------------------------------------ reaper */

static void *reaper_main(void *arg)
{
    engine *e = arg;
    pthread_mutex_lock(&e->rmu);
    while (!e->reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += REAPER_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->rcv, &e->rmu, &ts);
        if (e->reaper_stop)
            break;
        pthread_mutex_unlock(&e->rmu);

        /* One expired txn at a time. A txn in the table cannot be freed
         * while we hold the table lock (its session removes it under that
         * lock first), and once we own t->mu its session waits for us. */
        for (;;) {
            txn *victim = NULL;
            uint64_t now = xac_now_mono_us();
            pthread_mutex_lock(&e->tmu);
            for (unsigned h = 0; h < ENGINE_BUCKETS && victim == NULL; h++) {
                for (txn *t = e->buckets[h]; t != NULL; t = t->hnext) {
                    if (now < t->deadline_us || atomic_load(&t->state) != XAC_STATE_ACTIVE)
                        continue;
                    if (pthread_mutex_trylock(&t->mu) != 0)
                        continue; /* its session is using it; next tick */
                    victim = t;
                    break;
                }
            }
            pthread_mutex_unlock(&e->tmu);
            if (victim == NULL)
                break;
            txn_timeout_locked(e, victim);
            pthread_mutex_unlock(&victim->mu);
        }
        pthread_mutex_lock(&e->rmu);
    }
    pthread_mutex_unlock(&e->rmu);
    return NULL;
}

/* ---------------------------------------------------------- recovery */

static bool live_cb(void *arg, const char *gtrid)
{
    return engine_is_live(arg, gtrid);
}

static int status_of(engine *e, const char *gtrid, bool ask_markers);

static bool finished_cb(void *arg, const char *gtrid)
{
    int st = status_of(arg, gtrid, false);
    return st == XAC_STATE_COMMITTED || st == XAC_STATE_ROLLED_BACK;
}

static void ended_cb(void *arg, const char *gtrid)
{
    engine *e = arg;
    engine_recovered(e, gtrid);
    if (e->has_last_resource)
        marker_ended(e, -1, gtrid);
}

static void heuristic_cb(void *arg, const char *resource, const char *gtrid, const char *text)
{
    (void)resource;
    (void)gtrid; /* both are in text */
    engine *e = arg;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&e->hmu);
    e->heur_total++;
    if (e->heur != NULL) {
        snprintf(e->heur[e->heur_next], XAC_ERR_MSG_MAX, "%.24s %.480s", when, text);
        e->heur_next = (e->heur_next + 1) % HEURISTICS_KEPT;
        if (e->heur_count < HEURISTICS_KEPT)
            e->heur_count++;
    }
    pthread_mutex_unlock(&e->hmu);
}

static bool journal_salvaged(engine *e)
{
    journal_stats st;
    journal_get_stats(e->j, &st);
    return st.salvaged > 0;
}

void engine_rec_ctx(engine *e, rec_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->node_id = e->cfg->node_id;
    ctx->journal = e->j;
    ctx->resources = e->cfg->resources;
    ctx->nresources = e->cfg->nresources;
    ctx->is_live = live_cb;
    ctx->finished_here = finished_cb;
    ctx->live_arg = e;
    /* The salvage flag is read from the journal too: the threads' first pass
     * may start before main calls engine_hold_undecided. */
    ctx->hold_undecided = atomic_load(&e->hold_undecided) || (e->j != NULL && journal_salvaged(e));
    ctx->on_ended = ended_cb;
    ctx->ended_arg = e;
    ctx->boot = e->boot_us;
    ctx->grace_ms = e->cfg->recovery_grace_ms;
    ctx->state = e->rstate;
    ctx->step = fault_rec_step;
    ctx->on_heuristic = heuristic_cb;
    ctx->heuristic_arg = e;
}

/* One pass over rr's resource; notes the resource's health. */
static void recov_run(engine *e, recov_res *rr, rec_report *r)
{
    rec_ctx ctx;
    engine_rec_ctx(e, &ctx);
    xac_err err;
    xac_err_clear(&err);
    int rc = rec_pass_resource(&ctx, rr->ri, r, &err);
    if (rc != XAC_OK)
        xac_logw("engine: recovery pass on resource %s failed: %s", e->cfg->resources[rr->ri].name,
                 err.msg);
    uint64_t now = (uint64_t)time(NULL);
    pthread_mutex_lock(&e->hmu);
    e->passes++;
    e->last_pass_unix = now;
    engine_resource_health *h = &rr->health;
    if (rc == XAC_OK && r->resources_down == 0) {
        h->up = true;
        h->last_ok_unix = now;
        rr->indoubt = r->listed;
    } else {
        h->up = false;
        h->last_fail_unix = now;
        snprintf(h->last_error, sizeof h->last_error, "%s", rc != XAC_OK ? err.msg : r->down_error);
    }
    pthread_mutex_unlock(&e->hmu);
}

/* Marker housekeeping on a last resource (qmu held on entry and exit): the
 * queued markers of ended transactions are removed, and the first time the
 * resource answers, orphan markers are adopted into the journal
 * (rec_marker_sweep). A failed sweep puts its batch back for the next one. */
static void recov_sweep_locked(engine *e, recov_res *rr, bool may_adopt)
{
    rr->sweep = false;
    if (!e->cfg->resources[rr->ri].last_resource)
        return;
    char(*batch)[XAC_GTRID_MAX + 1] = rr->ended;
    size_t n = rr->nended;
    if (n == 0 && !may_adopt)
        return;
    rr->ended = NULL;
    rr->nended = rr->ended_cap = 0;
    bool adopt = may_adopt && !rr->adopted;
    pthread_mutex_unlock(&e->qmu);

    if (n > 0)
        fault_point(FAULT_LRC_BEFORE_FORGET);
    rec_ctx ctx;
    engine_rec_ctx(e, &ctx);
    xac_err err;
    xac_err_clear(&err);
    size_t adopted = 0;
    int rc = rec_marker_sweep(&ctx, rr->ri, (const char(*)[XAC_GTRID_MAX + 1]) batch, n, adopt,
                              &adopted, &err);
    if (rc != XAC_OK)
        xac_logw("engine: %s; retried at the next pass", err.msg);
    else if (n > 0)
        xac_logd("engine: removed %zu commit marker(s) of ended transactions from %s", n,
                 e->cfg->resources[rr->ri].name);
    if (adopted > 0)
        need_recovery(e);

    pthread_mutex_lock(&e->qmu);
    if (rc == XAC_OK) {
        rr->adopted |= adopt;
        free(batch);
        return;
    }
    /* Put the batch back in front of what was queued meanwhile. */
    if (n > 0) {
        void *p = realloc(batch, (n + rr->nended) * sizeof *batch);
        if (p != NULL) {
            batch = p;
            memcpy(batch + n, rr->ended, rr->nended * sizeof *batch);
            free(rr->ended);
            rr->ended = batch;
            rr->nended += n;
            rr->ended_cap = rr->nended;
            return;
        }
    }
    free(batch);
}

/* Sleeps on qcv (qmu held) until deadline (monotonic us), a demand for a pass
 * on rr, or stop; false when asked to stop. */
static bool recov_sleep_locked(engine *e, recov_res *rr, uint64_t deadline_us)
{
    while (!e->recov_stop && !rr->needed && !rr->sweep) {
        uint64_t now = xac_now_mono_us();
        if (now >= deadline_us)
            break;
        /* qcv runs on CLOCK_REALTIME: wait in slices, re-reading the
         * monotonic clock, so that a clock step neither stalls nor rushes. */
        uint64_t left = deadline_us - now;
        if (left > 1000000u)
            left = 1000000u;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(left / 1000000u);
        ts.tv_nsec += (long)(left % 1000000u) * 1000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->qcv, &e->qmu, &ts);
    }
    return !e->recov_stop;
}

/* need_recovery for the resources whose last pass reached them. */
static void need_recovery_up(engine *e)
{
    bool *up = calloc(e->nrr ? e->nrr : 1, sizeof *up);
    if (up == NULL)
        return; /* the periodic passes get there */
    pthread_mutex_lock(&e->hmu);
    for (size_t i = 0; i < e->nrr; i++)
        up[i] = e->rr[i].health.retry_ms == 0;
    pthread_mutex_unlock(&e->hmu);
    pthread_mutex_lock(&e->qmu);
    for (size_t i = 0; i < e->nrr; i++)
        e->rr[i].needed |= up[i];
    pthread_cond_broadcast(&e->qcv);
    pthread_mutex_unlock(&e->qmu);
    free(up);
}

static void *recov_main(void *arg)
{
    recov_res *rr = arg;
    engine *e = rr->e;
    const xacd_config *cfg = e->cfg;
    const char *name = cfg->resources[rr->ri].name;
    uint64_t next = 0; /* the start-up pass: at once */
    pthread_mutex_lock(&e->qmu);
    for (;;) {
        if (!recov_sleep_locked(e, rr, next))
            break;
        if (rr->sweep && !rr->needed && xac_now_mono_us() < next) {
            recov_sweep_locked(e, rr, true); /* a full batch: no pass needed */
            continue;
        }
        if (rr->needed && next != 0) {
            /* Let a burst of failures settle into one pass. */
            uint64_t settle = xac_now_mono_us() + RECOVERY_SETTLE_MS * 1000u;
            rr->needed = false;
            if (!recov_sleep_locked(e, rr, settle))
                break;
        }
        rr->needed = false;
        pthread_mutex_unlock(&e->qmu);

        rec_report r;
        memset(&r, 0, sizeof r);
        recov_run(e, rr, &r);
        /* What this pass committed ends once every resource of its record
         * was found clean: ask the reachable ones now rather than at their
         * next interval (one that is down keeps its backoff). */
        if (r.committed > 0)
            need_recovery_up(e);
        pthread_mutex_lock(&e->qmu);
        recov_sweep_locked(e, rr, true);
        pthread_mutex_unlock(&e->qmu);
        unsigned wait_ms = cfg->recovery_interval_ms;
        if (r.resources_down > 0 || r.failed > 0) {
            rr->backoff_ms = rr->backoff_ms == 0 ? cfg->recovery_retry_min_ms
                             : rr->backoff_ms >= cfg->recovery_retry_max_ms / 2
                                 ? cfg->recovery_retry_max_ms
                                 : rr->backoff_ms * 2;
            wait_ms = rr->backoff_ms;
            xac_logw("engine: recovery on resource %s: %s; next try in %u ms", name,
                     r.resources_down > 0 ? "resource down" : "some actions failed", wait_ms);
        } else {
            rr->backoff_ms = 0;
        }
        /* A branch waiting out its grace period is rolled back when the
         * period ends, not at the next periodic pass. */
        if (r.waiting > 0 && r.wait_ms > 0 && r.wait_ms + 50 < wait_ms)
            wait_ms = r.wait_ms + 50;
        pthread_mutex_lock(&e->hmu);
        rr->health.retry_ms = rr->backoff_ms;
        pthread_mutex_unlock(&e->hmu);

        pthread_mutex_lock(&e->qmu);
        next = xac_now_mono_us() + (uint64_t)wait_ms * 1000u;
        if (next == 0)
            next = 1;
    }
    /* A clean stop removes the markers of what ended since the last sweep. */
    recov_sweep_locked(e, rr, false);
    pthread_mutex_unlock(&e->qmu);
    return NULL;
}

/* Starts one recovery thread per resource. */
static int recov_start(engine *e, xac_err *err)
{
    int rc = rec_state_create(&e->rstate, err);
    if (rc != XAC_OK)
        return rc;
    e->heur = calloc(HEURISTICS_KEPT, sizeof *e->heur);
    e->rr = calloc(e->cfg->nresources ? e->cfg->nresources : 1, sizeof *e->rr);
    if (e->heur == NULL || e->rr == NULL)
        return xac_err_set(err, XAC_ENOMEM, "engine: out of memory for the recovery loop");
    e->nrr = e->cfg->nresources;
    for (size_t i = 0; i < e->nrr; i++) {
        recov_res *rr = &e->rr[i];
        rr->e = e;
        rr->ri = i;
        snprintf(rr->health.name, sizeof rr->health.name, "%s", e->cfg->resources[i].name);
    }
    e->recov_started = true;
    for (size_t i = 0; i < e->nrr; i++) {
        rc = pthread_create(&e->rr[i].th, NULL, recov_main, &e->rr[i]);
        if (rc != 0)
            return xac_err_set(err, XAC_EINTERNAL,
                               "engine: cannot start the recovery thread of resource %s: %s",
                               e->cfg->resources[i].name, strerror(rc));
        e->rr[i].started = true;
    }
    return XAC_OK;
}

static void recov_stop_all(engine *e)
{
    if (e->rr != NULL) {
        pthread_mutex_lock(&e->qmu);
        e->recov_stop = true;
        pthread_cond_broadcast(&e->qcv);
        pthread_mutex_unlock(&e->qmu);
        for (size_t i = 0; i < e->nrr; i++)
            if (e->rr[i].started)
                pthread_join(e->rr[i].th, NULL);
    }
    e->recov_started = false;
    for (size_t i = 0; i < e->nrr; i++)
        free(e->rr[i].ended);
    free(e->rr);
    e->rr = NULL;
    e->nrr = 0;
    rec_state_destroy(e->rstate);
    e->rstate = NULL;
    free(e->heur);
    e->heur = NULL;
}

/* ------------------------------------------------------------ public */

int engine_create(const xacd_config *cfg, journal *j, engine **out, xac_err *err)
{
    *out = NULL;
    engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return xac_err_set(err, XAC_ENOMEM, "engine: out of memory");
    e->cfg = cfg;
    for (size_t i = 0; i < cfg->nresources; i++)
        e->has_last_resource |= cfg->resources[i].last_resource;
    e->j = j;
    e->boot_us = xac_now_wall_us();
    atomic_init(&e->seq, 0);
    atomic_init(&e->n_committed, 0);
    atomic_init(&e->n_rolled_back, 0);
    pthread_mutex_init(&e->tmu, NULL);
    pthread_mutex_init(&e->rmu, NULL);
    pthread_cond_init(&e->rcv, NULL);
    pthread_mutex_init(&e->qmu, NULL);
    pthread_cond_init(&e->qcv, NULL);
    pthread_mutex_init(&e->hmu, NULL);
    e->ring = calloc(ENGINE_RING, sizeof *e->ring);
    e->pools = calloc(cfg->nresources ? cfg->nresources : 1, sizeof *e->pools);
    if (e->ring == NULL || e->pools == NULL) {
        engine_destroy(e);
        return xac_err_set(err, XAC_ENOMEM, "engine: out of memory");
    }
    for (size_t i = 0; i < cfg->nresources; i++) {
        int rc = drv_pool_create(&cfg->resources[i], &e->pools[i], err);
        if (rc != XAC_OK) {
            xac_err_prefix(err, "engine: connection pool for resource %s", cfg->resources[i].name);
            engine_destroy(e);
            return rc;
        }
        e->npools = i + 1;
    }
    int rc = workers_start(&e->w, cfg->workers, err);
    if (rc != XAC_OK) {
        engine_destroy(e);
        return rc;
    }
    e->workers_started = true;
    rc = pthread_create(&e->reaper, NULL, reaper_main, e);
    if (rc != 0) {
        xac_err_set(err, XAC_EINTERNAL, "engine: cannot start the timeout reaper thread: %s",
                    strerror(rc));
        engine_destroy(e);
        return XAC_EINTERNAL;
    }
    e->reaper_started = true;
    if (j != NULL) {
        rc = recov_start(e, err);
        if (rc != XAC_OK) {
            engine_destroy(e);
            return rc;
        }
    }
    xac_logd("engine: node %s, boot %llx, %zu resource(s), %d worker(s)", cfg->node_id,
             (unsigned long long)e->boot_us, cfg->nresources, cfg->workers);
    *out = e;
    return XAC_OK;
}

void engine_destroy(engine *e)
{
    if (e == NULL)
        return;
    if (e->reaper_started) {
        pthread_mutex_lock(&e->rmu);
        e->reaper_stop = true;
        pthread_cond_signal(&e->rcv);
        pthread_mutex_unlock(&e->rmu);
        pthread_join(e->reaper, NULL);
    }
    recov_stop_all(e);
    /* Sessions are gone by now; whatever is still live is rolled back. */
    for (unsigned h = 0; h < ENGINE_BUCKETS; h++) {
        while (e->buckets[h] != NULL) {
            txn *t = e->buckets[h];
            pthread_mutex_lock(&t->mu);
            if (atomic_load(&t->state) == XAC_STATE_ACTIVE ||
                atomic_load(&t->state) == XAC_STATE_PREPARING) {
                xac_logw("engine: shutting down: rolling back live gtrid %s", t->gtrid);
                rollback_all(e, t);
            } else {
                for (size_t i = 0; i < t->nbr; i++)
                    branch_release(e, &t->br[i]);
            }
            pthread_mutex_lock(&e->tmu);
            table_remove_locked(e, t);
            pthread_mutex_unlock(&e->tmu);
            txn_free(t);
        }
    }
    if (e->workers_started)
        workers_stop(&e->w);
    for (size_t i = 0; i < e->npools; i++)
        drv_pool_destroy(e->pools[i]);
    free(e->pools);
    free(e->ring);
    free(e->held);
    pthread_mutex_destroy(&e->tmu);
    pthread_mutex_destroy(&e->rmu);
    pthread_cond_destroy(&e->rcv);
    pthread_mutex_destroy(&e->qmu);
    pthread_cond_destroy(&e->qcv);
    pthread_mutex_destroy(&e->hmu);
    free(e);
}

int engine_begin(engine *e, const char *client, uint32_t timeout_ms, txn **out, xac_err *err)
{
    *out = NULL;
    txn *t = calloc(1, sizeof *t);
    if (t != NULL)
        t->br =
            malloc((e->cfg->nresources ? e->cfg->nresources : 1) * sizeof *t->br); /* [0, nbr) */
    if (t == NULL || t->br == NULL) {
        if (t != NULL)
            free(t);
        return xac_err_set(err, XAC_ENOMEM, "engine: out of memory for a new transaction");
    }
    uint64_t seq = atomic_fetch_add(&e->seq, 1) + 1;
    int rc = xac_gtrid_make(t->gtrid, e->cfg->node_id, e->boot_us, seq, err);
    if (rc != XAC_OK) {
        free(t->br);
        free(t);
        return rc;
    }
    if (timeout_ms == 0)
        timeout_ms = e->cfg->tx_timeout_ms;
    if (e->cfg->max_tx_timeout_ms > 0 && timeout_ms > e->cfg->max_tx_timeout_ms)
        timeout_ms = e->cfg->max_tx_timeout_ms;
    t->e = e;
    t->timeout_ms = timeout_ms;
    t->deadline_us = xac_now_mono_us() + (uint64_t)timeout_ms * 1000u;
    size_t cl = client != NULL ? strnlen(client, sizeof t->client - 1) : 0;
    memcpy(t->client, client != NULL ? client : "", cl);
    t->client[cl] = '\0';
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->state, XAC_STATE_ACTIVE);
    table_insert(e, t);
    xac_logd("engine: begin gtrid %s (client %s, timeout %u ms)", t->gtrid, t->client, timeout_ms);
    *out = t;
    return XAC_OK;
}

const char *engine_gtrid(const txn *t)
{
    return t->gtrid;
}

static int timed_out_err(const txn *t, xac_err *err)
{
    return xac_err_set(err, XAC_ETIMEOUT,
                       "transaction %s timed out after %u ms and was rolled back", t->gtrid,
                       t->timeout_ms);
}

/* Makes t rollback-only for the reason in why and hands that to the caller. */
static int fail_rollback_only(txn *t, const xac_err *why, xac_err *err)
{
    if (!t->rollback_only) {
        t->rollback_only = true;
        t->rb_err = *why;
    }
    if (err != NULL)
        *err = *why;
    return why->code;
}

/* The one branch's XA END failed (rc, derr): it is rolled back. */
static int one_phase_end_failed(engine *e, txn *t, branch *b, int rc, const xac_err *dq,
                                xac_err *err)
{
    const char *res = rname(e, b);
    if (XA_IS_RB(rc))
        b->state = BR_ENDED; /* rolled back by the database: only clear the state */
    branch_rollback(e, t->gtrid, b);
    branch_release(e, b);
    xac_err_setr(err, XAC_EROLLBACK, res,
                 "%s failed at XA END (%s): %s; the transaction is rolled back", res,
                 drv_xa_name(rc), dq->msg);
    txn_finish(e, t, XAC_STATE_ROLLED_BACK);
    return XAC_EROLLBACK;
}

/* The one branch's one-phase commit answered rc (derr): settles it. */
static int one_phase_result(engine *e, txn *t, branch *b, int rc, const xac_err *derr_in,
                            xac_err *err)
{
    const char *res = rname(e, b);
    xac_err derr = *derr_in;
    if (rc == XA_OK) {
        fault_point(FAULT_AFTER_ONE_PHASE);
        b->state = BR_DONE;
        branch_release(e, b);
        txn_finish(e, t, XAC_STATE_COMMITTED);
        xac_logd("engine: gtrid %s committed in one phase on %s", t->gtrid, res);
        return XAC_OK;
    }
    if (XA_IS_RB(rc)) {
        b->state = BR_DONE;
        branch_release(e, b);
        txn_finish(e, t, XAC_STATE_ROLLED_BACK);
        xac_logd("engine: gtrid %s: %s rolled back at one-phase commit (%s)", t->gtrid, res,
                 drv_xa_name(rc));
        return xac_err_setr(err, XAC_EROLLBACK, res, "%s rolled back at commit (%s): %s", res,
                            drv_xa_name(rc), derr.msg);
    }
    if (rc == XAER_RMFAIL || (b->conn != NULL && b->conn->broken)) {
        b->state = BR_LEFT;
        branch_release(e, b);
        /* We cannot tell; the database holds the answer. Not in the ring:
         * engine_status must not claim either outcome. */
        pthread_mutex_lock(&e->tmu);
        table_remove_locked(e, t);
        pthread_mutex_unlock(&e->tmu);
        xac_loge("engine: gtrid %s: connection to %s lost during one-phase commit: outcome "
                 "unknown: %s",
                 t->gtrid, res, derr.msg);
        return xac_err_setr(err, XAC_ERMFAIL, res,
                            "outcome unknown: the connection to %s was lost during its one-phase "
                            "commit (%s); check the database",
                            res, derr.msg);
    }
    /* Another error: the branch is still ours to roll back. */
    branch_rollback(e, t->gtrid, b);
    bool rolled = b->state == BR_DONE;
    branch_release(e, b);
    if (rolled) {
        txn_finish(e, t, XAC_STATE_ROLLED_BACK);
        return xac_err_setr(err, XAC_EROLLBACK, res, "%s refused the commit (%s): %s", res,
                            drv_xa_name(rc), derr.msg);
    }
    pthread_mutex_lock(&e->tmu);
    table_remove_locked(e, t);
    pthread_mutex_unlock(&e->tmu);
    return xac_err_setr(err, XAC_ERMFAIL, res,
                        "outcome unknown: %s failed the one-phase commit (%s: %s) and the "
                        "rollback after it; check the database",
                        res, drv_xa_name(rc), derr.msg);
}

/* The vote of a branch prepared with its last statement (drv_exec_prepare):
 * a yes is counted at COMMIT like phase one's. A no makes t rollback-only and
 * is this EXEC's answer, though the statement itself ran. */
static int early_vote(engine *e, txn *t, branch *b, int xrc, const xac_err *derr, xac_err *err)
{
    b->rc = xrc;
    xac_err_clear(&b->err);
    if (xrc == XA_OK) {
        b->state = BR_PREPARED;
        fault_point(FAULT_AFTER_EARLY_PREPARE);
        return XAC_OK;
    }
    if (xrc == XA_RDONLY) {
        b->state = BR_RDONLY;
        return XAC_OK;
    }
    b->state = BR_ENDED; /* the rollback takes it from any state */
    if (xrc == XAER_RMFAIL || b->conn->broken)
        b->maybe_prepared = true;
    const char *res = rname(e, b);
    xac_err why;
    xac_err_setr(&why, XA_IS_RB(xrc) ? XAC_EROLLBACK : code_of(xrc), res,
                 "the statement ran, but %s voted no at the prepare sent with it because the "
                 "COMMIT was waiting (%s): %s",
                 res, drv_xa_name(xrc), derr->msg);
    return fail_rollback_only(t, &why, err);
}

static int exec_impl(engine *e, txn *t, const char *resource, const char *sql, size_t sql_len,
                     const xac_value *params, size_t nparams, const engine_ahead *ahead,
                     xac_rows *rows, xac_err *err)
{
    pthread_mutex_lock(&t->mu);
    int ridx = -1;
    for (size_t i = 0; i < e->cfg->nresources; i++)
        if (strcmp(e->cfg->resources[i].name, resource) == 0)
            ridx = (int)i;
    int rc;
    if (t->timed_out) {
        rc = timed_out_err(t, err);
        goto out;
    }
    if (atomic_load(&t->state) != XAC_STATE_ACTIVE) {
        rc = xac_err_set(err, XAC_ESTATE, "transaction %s is no longer active", t->gtrid);
        goto out;
    }
    if (t->rollback_only) {
        rc = xac_err_setr(err, XAC_EROLLBACK, t->rb_err.resource,
                          "transaction is rollback-only after an earlier failure%s%s: %s",
                          t->rb_err.resource[0] ? " on " : "", t->rb_err.resource, t->rb_err.msg);
        goto out;
    }
    if (txn_expired(t)) {
        txn_timeout_locked(e, t);
        rc = timed_out_err(t, err);
        goto out;
    }

    xac_err derr;
    xac_err_clear(&derr);
    bool fresh = false; /* this call opened the branch */
    if (ridx < 0) {
        /* Rollback-only like any failed EXEC: a client that pipelines its
         * COMMIT behind this EXEC must not commit without the statement. */
        xac_err_setr(&derr, XAC_ERESOURCE, resource,
                     "unknown resource '%s': it is not in xacd's configuration", resource);
        rc = fail_rollback_only(t, &derr, err);
        goto out;
    }
    branch *b = NULL;
    for (size_t i = 0; i < t->nbr; i++)
        if (t->br[i].ridx == ridx)
            b = &t->br[i];
    if (b == NULL && e->cfg->resources[ridx].last_resource) {
        for (size_t i = 0; i < t->nbr; i++) {
            const char *other = e->cfg->resources[t->br[i].ridx].name;
            if (!e->cfg->resources[t->br[i].ridx].last_resource)
                continue;
            xac_err_setr(&derr, XAC_ELIMIT, resource,
                         "resource %s is a last resource (driver %s, committed without a "
                         "prepare) and this transaction already uses last resource %s: a "
                         "transaction may include at most one, because only one resource can "
                         "commit without voting first",
                         resource, e->cfg->resources[ridx].driver, other);
            rc = fail_rollback_only(t, &derr, err);
            goto out;
        }
    }
    if (b == NULL) {
        if (t->nbr >= JOURNAL_MAX_BRANCHES) {
            xac_err_setr(&derr, XAC_ELIMIT, resource, "a transaction may use at most %d resources",
                         JOURNAL_MAX_BRANCHES);
            rc = fail_rollback_only(t, &derr, err);
            goto out;
        }
        branch nb;
        memset(&nb, 0, sizeof nb);
        nb.ridx = ridx;
        rc = xac_xid_make(&nb.xid, t->gtrid, resource, &derr);
        if (rc != XAC_OK) {
            char m[XAC_ERR_MSG_MAX];
            snprintf(m, sizeof m, "%s", derr.msg);
            xac_err_setr(&derr, rc, resource, "cannot make the XID: %s", m);
            rc = fail_rollback_only(t, &derr, err);
            goto out;
        }
        int xrc = drv_pool_get(e->pools[ridx], e->cfg->pool_wait_ms, &nb.conn, &derr);
        if (xrc != XA_OK) {
            char m[XAC_ERR_MSG_MAX];
            snprintf(m, sizeof m, "%s", derr.msg);
            xac_err_setr(&derr, xrc == XAER_RMFAIL ? XAC_ERMFAIL : code_of(xrc), resource,
                         "no connection: %s", m);
            rc = fail_rollback_only(t, &derr, err);
            goto out;
        }
        xrc = drv_start(nb.conn, &nb.xid, &derr);
        if (xrc != XA_OK) {
            char m[XAC_ERR_MSG_MAX];
            snprintf(m, sizeof m, "%s", derr.msg);
            xac_err_setr(&derr, code_of(xrc), resource, "opening the branch: %s", m);
            drv_pool_put(e->pools[ridx], nb.conn);
            rc = fail_rollback_only(t, &derr, err);
            goto out;
        }
        nb.state = BR_ACTIVE;
        t->br[t->nbr++] = nb;
        b = &t->br[t->nbr - 1];
        if (t->nbr == 1)
            fault_point(FAULT_AFTER_START);
        fresh = true;
    }
    if (b->state != BR_ACTIVE) {
        /* Only a client that announced another statement as its last on this
         * resource (engine_ahead) gets here: its branch was prepared with it. */
        xac_err_setr(&derr, XAC_ESTATE, resource,
                     "the branch on %s was prepared with an earlier statement, sent as its last "
                     "before COMMIT",
                     resource);
        rc = fail_rollback_only(t, &derr, err);
        goto out;
    }
    bool last = ahead != NULL && ahead->last_on_resource;
    int xrc = XA_OK;
    drv_onephase_at at = DRV_ONEPHASE_NOT_SENT;
    drv_prepare_at pat = DRV_PREPARE_NOT_SENT;
    if (last && ahead->other_resources == 0 && fresh && t->nbr == 1 &&
        b->conn->ops->exec_one_phase != NULL) {
        xac_logd("engine: gtrid %s: its COMMIT is waiting: the statement and the one-phase "
                 "commit on %s in one round trip if the driver can",
                 t->gtrid, resource);
        fault_point(FAULT_BEFORE_ONE_PHASE);
        xrc = drv_exec_one_phase(b->conn, &b->xid, sql, sql_len, params, nparams, rows, &at, &derr);
    } else if (last && (ahead->other_resources > 0 || t->nbr > 1) &&
               !e->cfg->resources[ridx].last_resource && b->conn->ops->exec_prepare != NULL) {
        xac_logd("engine: gtrid %s: its COMMIT is waiting: the last statement on %s with its "
                 "prepare in one round trip if the driver can",
                 t->gtrid, resource);
        xrc = drv_exec_prepare(b->conn, &b->xid, sql, sql_len, params, nparams, rows, &pat, &derr);
    }
    if (at == DRV_ONEPHASE_NOT_SENT && pat == DRV_PREPARE_NOT_SENT)
        xrc = drv_exec(b->conn, sql, sql_len, params, nparams, rows, &derr);
    if (pat == DRV_PREPARE_VOTE) {
        rc = early_vote(e, t, b, xrc, &derr, err);
        goto out;
    }
    if (at >= DRV_ONEPHASE_END) {
        /* The statement ran; the commit's outcome is final and kept for
         * engine_commit. The transaction leaves the table, so neither the
         * reaper nor a timeout can touch it any more. */
        t->onephase_ran = true;
        atomic_store(&t->state, XAC_STATE_PREPARING);
        xac_err_clear(&t->onephase_err);
        if (at == DRV_ONEPHASE_END) {
            t->onephase_rc = one_phase_end_failed(e, t, b, xrc, &derr, &t->onephase_err);
        } else {
            b->state = BR_ENDED;
            t->onephase_rc = one_phase_result(e, t, b, xrc, &derr, &t->onephase_err);
        }
        rc = XAC_OK;
        goto out;
    }
    if (xrc != XA_OK) {
        /* Even when the database already rolled the branch back (XA_RB*),
         * the rollback at the end clears the connection's XA state. */
        if (derr.msg[0] == '\0')
            snprintf(derr.msg, sizeof derr.msg, "%s", drv_xa_name(xrc));
        derr.code = code_of(xrc);
        snprintf(derr.resource, sizeof derr.resource, "%s", resource);
        xac_logd("engine: gtrid %s: exec on %s failed (%s): %s; transaction is rollback-only",
                 t->gtrid, resource, drv_xa_name(xrc), derr.msg);
        rc = fail_rollback_only(t, &derr, err);
        goto out;
    }
    rc = XAC_OK;
out:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int engine_exec(engine *e, txn *t, const char *resource, const char *sql, size_t sql_len,
                const xac_value *params, size_t nparams, xac_rows *rows, xac_err *err)
{
    return exec_impl(e, t, resource, sql, sql_len, params, nparams, NULL, rows, err);
}

int engine_exec_ahead(engine *e, txn *t, const char *resource, const char *sql, size_t sql_len,
                      const xac_value *params, size_t nparams, const engine_ahead *ahead,
                      xac_rows *rows, xac_err *err)
{
    return exec_impl(e, t, resource, sql, sql_len, params, nparams, ahead, rows, err);
}

/* One branch: XA END and a one-phase commit, no journal record. */
static int commit_one_phase(engine *e, txn *t, branch *b, xac_err *err)
{
    xac_err derr;
    xac_err_clear(&derr);
    fault_point(FAULT_BEFORE_ONE_PHASE);
    int rc = drv_end(b->conn, &b->xid, &derr);
    if (rc != XA_OK)
        return one_phase_end_failed(e, t, b, rc, &derr, err);
    b->state = BR_ENDED;
    rc = drv_commit(b->conn, &b->xid, true, &derr);
    return one_phase_result(e, t, b, rc, &derr, err);
}

/* Rolls back after phase one or the journal refused, and reports why. */
static int abort_all(engine *e, txn *t, const char *res, const char *fmt_msg, xac_err *err)
{
    rollback_all(e, t);
    txn_finish(e, t, XAC_STATE_ROLLED_BACK);
    xac_logd("engine: gtrid %s rolled back: %s", t->gtrid, fmt_msg);
    return xac_err_setr(err, XAC_EROLLBACK, res, "%s", fmt_msg);
}

/* journal_commit could not say whether the decision reached the disk. The
 * next start-up's replay will know, so nothing may be decided here: the
 * prepared branches stay prepared (their connections are closed, not pooled:
 * a connection with a prepared branch on it is of no use to anyone else, and
 * MariaDB lets recovery finish the branch only once that session is gone),
 * and the gtrid is held so that recovery leaves it alone and STATUS claims no
 * outcome. */
static int leave_in_doubt(engine *e, txn *t, const xac_err *jerr, xac_err *err)
{
    for (size_t i = 0; i < t->nbr; i++) {
        branch *b = &t->br[i];
        if (b->state == BR_PREPARED)
            b->state = BR_LEFT;
        branch_release(e, b);
    }
    bool held = txn_hold(e, t);
    xac_loge("engine: gtrid %s: OUTCOME UNKNOWN: the journal cannot tell whether its commit "
             "decision reached the disk (%s); its branches stay prepared until xacd restarts with "
             "a working journal, whose replay settles it%s",
             t->gtrid, jerr->msg,
             held ? ""
                  : " (out of memory: it is not in the held set; recovery still holds it "
                    "while the journal has failed)");
    /* The cause goes last: a long one is cut short, the advice is not. */
    return xac_err_set(err, XAC_EJOURNAL,
                       "outcome unknown: the commit decision may or may not have reached the "
                       "journal. The branches stay prepared; the outcome is settled when xacd "
                       "restarts with a working journal. Ask STATUS for %s after that. Cause: %s",
                       t->gtrid, jerr->msg);
}

/* Phase one over every branch but a last resource's (BR_LAST). XAC_OK when
 * every branch voted yes or read-only; otherwise every branch, the last
 * resource's too, is rolled back and err says why. */
static int phase_one(engine *e, txn *t, xac_err *err)
{
    atomic_store(&t->state, XAC_STATE_PREPARING);
    atomic_int votes;
    atomic_init(&votes, 0);
    fan_out(e, t, job_prepare, (1u << BR_ACTIVE) | (1u << BR_ENDED), &votes);

    for (size_t i = 0; i < t->nbr; i++) {
        branch *b = &t->br[i];
        if (b->state == BR_LAST || b->rc == XA_OK || b->rc == XA_RDONLY)
            continue;
        const char *res = rname(e, b);
        xac_logw("engine: gtrid %s: %s; rolling back every branch", t->gtrid, b->err.msg);
        char msg[XAC_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", b->err.msg);
        return abort_all(e, t, res, msg, err);
    }
    fault_point(FAULT_AFTER_PREPARE_ALL);
    return XAC_OK;
}

/* The COMMIT record: t's prepared branches, and its last resource when it
 * has one (so that the marker is removed once the transaction ends). */
static void make_record(engine *e, txn *t, const branch *last, journal_txn *jt)
{
    memset(jt, 0, sizeof *jt);
    snprintf(jt->gtrid, sizeof jt->gtrid, "%s", t->gtrid);
    for (size_t i = 0; i < t->nbr; i++)
        if (t->br[i].state == BR_PREPARED)
            snprintf(jt->resources[jt->nbranches++], sizeof jt->resources[0], "%s",
                     rname(e, &t->br[i]));
    if (last != NULL && jt->nbranches > 0)
        snprintf(jt->resources[jt->nbranches++], sizeof jt->resources[0], "%s", rname(e, last));
    jt->decided_us = xac_now_wall_us();
}

/* Phase two, from a durable decision. recorded: the journal holds the COMMIT
 * record, so an END record follows (deferred to the caller when defer_end is
 * given); without one, a last resource's marker is the only record, and it is
 * queued for removal once every branch is done. */
static int phase_two(engine *e, txn *t, const branch *last, bool recorded, char *defer_end)
{
    atomic_store(&t->state, XAC_STATE_COMMITTING);
    fault_point(FAULT_AFTER_DECISION);

    atomic_int commits;
    atomic_init(&commits, 0);
    commit_all(e, t, &commits);
    fault_point(FAULT_AFTER_COMMIT_ALL);

    size_t left = 0;
    for (size_t i = 0; i < t->nbr; i++) {
        if (t->br[i].state == BR_LEFT)
            left++;
        branch_release(e, &t->br[i]);
    }
    if (left == 0 && recorded) {
        if (defer_end != NULL)
            snprintf(defer_end, XAC_GTRID_MAX + 1, "%s", t->gtrid);
        else
            engine_end(e, t->gtrid);
        xac_logd("engine: gtrid %s committed on %zu branch(es)", t->gtrid, t->nbr);
    } else if (left == 0) {
        marker_ended(e, last->ridx, t->gtrid);
    } else {
        xac_logw("engine: gtrid %s committed; %zu branch(es) left for recovery", t->gtrid, left);
    }
    txn_finish(e, t, XAC_STATE_COMMITTED);
    if (left > 0)
        need_recovery(e);
    return XAC_OK;
}

static int commit_two_phase(engine *e, txn *t, char *defer_end, xac_err *err)
{
    int rc = phase_one(e, t, err);
    if (rc != XAC_OK)
        return rc;
    journal_txn jt;
    make_record(e, t, NULL, &jt);
    if (jt.nbranches == 0) {
        /* Every branch was read-only: nothing to decide. */
        for (size_t i = 0; i < t->nbr; i++)
            branch_release(e, &t->br[i]);
        txn_finish(e, t, XAC_STATE_COMMITTED);
        xac_logd("engine: gtrid %s committed (all branches read-only)", t->gtrid);
        return XAC_OK;
    }

    fault_point(FAULT_BEFORE_DECISION);
    xac_err jerr;
    xac_err_clear(&jerr);
    bool in_doubt = false;
    rc = e->j != NULL ? journal_commit(e->j, &jt, &in_doubt, &jerr)
                      : xac_err_set(&jerr, XAC_EJOURNAL, "xacd has no decision journal");
    if (rc != XAC_OK && in_doubt)
        return leave_in_doubt(e, t, &jerr, err);
    if (rc != XAC_OK) {
        xac_loge("engine: gtrid %s: the commit decision could not be made durable: %s; rolling "
                 "back every branch",
                 t->gtrid, jerr.msg);
        journal_stats st = {0};
        if (e->j != NULL)
            journal_get_stats(e->j, &st);
        /* Until a restart every commit will be refused: say so, the cause
         * alone does not tell the client. */
        const char *note = st.failed ? " (the journal has failed: xacd refuses every "
                                       "multi-resource commit until it is restarted)"
                                     : "";
        char msg[XAC_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "journal: %.*s%s", (int)(XAC_ERR_MSG_MAX - 16 - strlen(note)),
                 jerr.msg, note);
        return abort_all(e, t, "", msg, err);
    }
    /* The commit point: from here on the only way is forward. */
    xac_logd("engine: gtrid %s: commit decided (%u branch(es))", t->gtrid, jt.nbranches);
    return phase_two(e, t, NULL, true, defer_end);
}

/* The transaction's last resource, if it has one. */
static branch *last_branch(engine *e, txn *t)
{
    for (size_t i = 0; i < t->nbr; i++)
        if (e->cfg->resources[t->br[i].ridx].last_resource)
            return &t->br[i];
    return NULL;
}

/* The link to the last resource died during its commit: the marker says how
 * it ended. The lookup fences the gtrid, so "no marker" is final. XAC_OK and
 * *committed, or an error when the resource cannot be asked. */
static int ask_marker(engine *e, branch *lb, const char *gtrid, bool *committed, xac_err *err)
{
    drv_conn *c = NULL;
    drv_marker m = DRV_MARKER_NONE;
    int x = drv_open(&e->cfg->resources[lb->ridx], &c, err);
    if (x == XA_OK) {
        x = drv_lrc_marker(c, gtrid, true, &m, err);
        drv_close(c);
    }
    if (x != XA_OK)
        return XAC_ERMFAIL;
    *committed = m == DRV_MARKER_COMMITTED;
    return XAC_OK;
}

/* Neither the last resource's outcome nor so the transaction's is known: the
 * prepared branches stay prepared, and recovery settles them from the marker
 * (it fences the gtrid before any rollback). */
static int leave_to_marker(engine *e, txn *t, branch *lb, const xac_err *why, xac_err *err)
{
    const char *res = rname(e, lb);
    for (size_t i = 0; i < t->nbr; i++) {
        if (t->br[i].state == BR_PREPARED)
            t->br[i].state = BR_LEFT;
        branch_release(e, &t->br[i]);
    }
    pthread_mutex_lock(&e->tmu);
    table_remove_locked(e, t);
    pthread_mutex_unlock(&e->tmu);
    need_recovery(e);
    xac_loge("engine: gtrid %s: OUTCOME UNKNOWN: the connection to last resource %s was lost "
             "during its commit and its commit marker cannot be read (%s); recovery settles it "
             "from the marker",
             t->gtrid, res, why->msg);
    return xac_err_setr(err, XAC_ERMFAIL, res,
                        "outcome unknown: the connection to last resource %s was lost during its "
                        "commit, and its commit marker cannot be read yet; xacd's recovery "
                        "settles the transaction from the marker once %s answers: ask STATUS for "
                        "%s later. Cause: %s",
                        res, res, t->gtrid, why->msg);
}

/* A transaction with a last resource (docs/sqlserver.md): phase one on the XA
 * branches; then the last resource commits its local transaction together
 * with a commit marker for the gtrid. That commit is the decision. The COMMIT
 * record follows, for recovery and the END; phase two as usual. */
static int commit_last_resource(engine *e, txn *t, branch *lb, char *defer_end, xac_err *err)
{
    const char *res = rname(e, lb);
    lb->state = BR_LAST;
    int rc = phase_one(e, t, err);
    if (rc != XAC_OK)
        return rc;
    size_t prepared = 0;
    for (size_t i = 0; i < t->nbr; i++)
        if (t->br[i].state == BR_PREPARED)
            prepared++;
    if (prepared == 0) {
        /* Every XA branch was read-only: the last resource alone decides. */
        for (size_t i = 0; i < t->nbr; i++)
            if (&t->br[i] != lb)
                branch_release(e, &t->br[i]);
        lb->state = BR_ACTIVE;
        return commit_one_phase(e, t, lb, err);
    }

    fault_point(FAULT_LRC_BEFORE_COMMIT);
    xac_err derr;
    xac_err_clear(&derr);
    int x = drv_lrc_commit(lb->conn, t->gtrid, &derr);
    bool committed = x == XA_OK;
    if (x != XA_OK && (x == XAER_RMFAIL || lb->conn->broken)) {
        lb->state = BR_DONE; /* its session is gone: nothing left on it */
        branch_release(e, lb);
        xac_err merr;
        xac_err_clear(&merr);
        if (ask_marker(e, lb, t->gtrid, &committed, &merr) != XAC_OK)
            return leave_to_marker(e, t, lb, &merr, err);
        xac_logw("engine: gtrid %s: connection to %s lost during its commit (%s); its marker "
                 "says it %s",
                 t->gtrid, res, derr.msg, committed ? "committed" : "did not commit (now fenced)");
        if (!committed) {
            char msg[XAC_ERR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "%.200s did not commit: its connection was lost during the commit (%.200s); "
                     "every branch is rolled back",
                     res, derr.msg);
            return abort_all(e, t, res, msg, err);
        }
    } else if (x != XA_OK) {
        if (XA_IS_RB(x))
            lb->state = BR_DONE; /* the database rolled it back itself */
        char msg[XAC_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%.200s refused the commit (%s): %.300s", res, drv_xa_name(x),
                 derr.msg);
        xac_logw("engine: gtrid %s: %s; rolling back every branch", t->gtrid, msg);
        return abort_all(e, t, res, msg, err);
    }
    lb->state = BR_DONE;
    fault_point(FAULT_LRC_AFTER_COMMIT);

    /* The commit point has passed: the record only helps recovery and END. */
    journal_txn jt;
    make_record(e, t, lb, &jt);
    xac_err jerr;
    xac_err_clear(&jerr);
    bool in_doubt = false;
    rc = e->j != NULL ? journal_commit(e->j, &jt, &in_doubt, &jerr)
                      : xac_err_set(&jerr, XAC_EJOURNAL, "xacd has no decision journal");
    if (rc != XAC_OK)
        xac_logw("engine: gtrid %s: committed at last resource %s, but its COMMIT record was not "
                 "written (%s); the commit marker holds the decision",
                 t->gtrid, res, jerr.msg);
    xac_logd("engine: gtrid %s: committed at last resource %s", t->gtrid, res);
    return phase_two(e, t, lb, rc == XAC_OK && !in_doubt, defer_end);
}

void engine_end(engine *e, const char *gtrid)
{
    fault_point(FAULT_BEFORE_END);
    /* Which last resource, if any, holds a marker to remove afterwards. */
    int last = -1;
    journal_txn jt;
    if (e->has_last_resource && journal_lookup(e->j, gtrid, &jt))
        for (unsigned k = 0; k < jt.nbranches; k++)
            for (size_t i = 0; i < e->cfg->nresources; i++)
                if (e->cfg->resources[i].last_resource &&
                    strcmp(e->cfg->resources[i].name, jt.resources[k]) == 0)
                    last = (int)i;
    xac_err eerr;
    xac_err_clear(&eerr);
    if (journal_end(e->j, gtrid, &eerr) != XAC_OK) {
        xac_logw("engine: gtrid %s: END record not written (%s); recovery will write it", gtrid,
                 eerr.msg);
        return;
    }
    if (last >= 0)
        marker_ended(e, last, gtrid);
}

int engine_commit(engine *e, txn *t, xac_err *err)
{
    return engine_commit_ex(e, t, NULL, err);
}

int engine_commit_ex(engine *e, txn *t, char *defer_end, xac_err *err)
{
    if (defer_end != NULL)
        defer_end[0] = '\0';
    pthread_mutex_lock(&t->mu);
    int rc;
    if (t->onephase_ran) {
        /* Committed (or not) with its statement: the outcome is final. */
        rc = t->onephase_rc;
        if (rc != XAC_OK && err != NULL)
            *err = t->onephase_err;
    } else if (t->timed_out) {
        rc = xac_err_set(err, XAC_EROLLBACK,
                         "transaction %s timed out after %u ms and was rolled back", t->gtrid,
                         t->timeout_ms);
    } else if (t->rollback_only) {
        rollback_all(e, t);
        txn_finish(e, t, XAC_STATE_ROLLED_BACK);
        xac_logd("engine: gtrid %s rolled back at commit: it was rollback-only", t->gtrid);
        rc = xac_err_setr(err, XAC_EROLLBACK, t->rb_err.resource,
                          "rolled back: an earlier statement failed%s%s: %s",
                          t->rb_err.resource[0] ? " on " : "", t->rb_err.resource, t->rb_err.msg);
    } else if (txn_expired(t)) {
        txn_timeout_locked(e, t);
        rc = xac_err_set(err, XAC_EROLLBACK,
                         "transaction %s timed out after %u ms and was rolled back", t->gtrid,
                         t->timeout_ms);
    } else if (t->nbr == 0) {
        txn_finish(e, t, XAC_STATE_COMMITTED);
        rc = XAC_OK;
    } else if (t->nbr == 1) {
        atomic_store(&t->state, XAC_STATE_PREPARING);
        rc = commit_one_phase(e, t, &t->br[0], err);
    } else if (last_branch(e, t) != NULL) {
        rc = commit_last_resource(e, t, last_branch(e, t), defer_end, err);
    } else {
        rc = commit_two_phase(e, t, defer_end, err);
    }
    txn_free(t);
    return rc;
}

int engine_rollback(engine *e, txn *t, xac_err *err)
{
    (void)err;
    pthread_mutex_lock(&t->mu);
    if (t->onephase_ran) {
        /* Its COMMIT was already waiting and ran with the statement; the
         * session went away before it was answered. Nothing to undo. */
        xac_logi("engine: gtrid %s: its session closed after its one-phase commit ran (%s)",
                 t->gtrid, t->onephase_rc == XAC_OK ? "committed" : t->onephase_err.msg);
    } else if (!t->timed_out) {
        rollback_all(e, t);
        txn_finish(e, t, XAC_STATE_ROLLED_BACK);
        xac_logd("engine: gtrid %s rolled back on request", t->gtrid);
    }
    txn_free(t);
    return XAC_OK;
}

/* STATUS of a gtrid of ours that is neither live, nor recently finished, nor
 * in the journal: a last resource's commit marker may still say it committed
 * (a lost link at its commit, or a crash before the COMMIT record). UNKNOWN
 * must mean "did not commit", so the lookup fences: after it, no commit of
 * the gtrid can land. A last resource that cannot be asked leaves it open. */
static int marker_status(engine *e, const char *gtrid)
{
    size_t nl = strlen(e->cfg->node_id);
    if (!e->has_last_resource || strncmp(gtrid, e->cfg->node_id, nl) != 0 || gtrid[nl] != '.')
        return XAC_STATE_UNKNOWN;
    rec_ctx ctx;
    engine_rec_ctx(e, &ctx);
    drv_marker m;
    char where[XAC_RESOURCE_MAX + 1];
    xac_err err;
    xac_err_clear(&err);
    if (rec_marker_check(&ctx, gtrid, true, &m, where, &err) != XAC_OK) {
        xac_logw("engine: STATUS of %s: %s", gtrid, err.msg);
        return XAC_STATE_PREPARING;
    }
    return m == DRV_MARKER_COMMITTED ? XAC_STATE_COMMITTING : XAC_STATE_UNKNOWN;
}

/* engine_status; ask_markers false answers from memory and the journal only. */
static int status_of(engine *e, const char *gtrid, bool ask_markers)
{
    pthread_mutex_lock(&e->tmu);
    txn *t = table_find_locked(e, gtrid);
    if (t != NULL) {
        int st = atomic_load(&t->state);
        pthread_mutex_unlock(&e->tmu);
        return st;
    }
    if (held_find_locked(e, gtrid)) {
        /* Undecided until a restart: not an outcome, and not UNKNOWN (which
         * would say it did not commit). */
        pthread_mutex_unlock(&e->tmu);
        return XAC_STATE_PREPARING;
    }
    /* Newest first: a gtrid is finished once, but be exact anyway. */
    for (size_t k = 0; k < e->ring_count; k++) {
        size_t i = (e->ring_next + ENGINE_RING - 1 - k) % ENGINE_RING;
        if (strcmp(e->ring[i].gtrid, gtrid) == 0) {
            int st = e->ring[i].state;
            pthread_mutex_unlock(&e->tmu);
            return st;
        }
    }
    pthread_mutex_unlock(&e->tmu);
    if (e->j != NULL && journal_is_committed(e->j, gtrid))
        return XAC_STATE_COMMITTING;
    return ask_markers ? marker_status(e, gtrid) : XAC_STATE_UNKNOWN;
}

int engine_status(engine *e, const char *gtrid)
{
    return status_of(e, gtrid, true);
}

bool engine_is_live(engine *e, const char *gtrid)
{
    pthread_mutex_lock(&e->tmu);
    bool live = table_find_locked(e, gtrid) != NULL || held_find_locked(e, gtrid);
    pthread_mutex_unlock(&e->tmu);
    return live;
}

void engine_recovered(engine *e, const char *gtrid)
{
    pthread_mutex_lock(&e->tmu);
    ring_add_locked(e, gtrid, XAC_STATE_COMMITTED);
    pthread_mutex_unlock(&e->tmu);
}

void engine_hold_undecided(engine *e)
{
    atomic_store(&e->hold_undecided, true);
}

void engine_get_health(engine *e, engine_health *h)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_lock(&e->tmu);
    for (unsigned b = 0; b < ENGINE_BUCKETS; b++)
        for (txn *t = e->buckets[b]; t != NULL; t = t->hnext)
            h->live++;
    h->held = e->nheld;
    pthread_mutex_unlock(&e->tmu);
    h->committed = atomic_load(&e->n_committed);
    h->rolled_back = atomic_load(&e->n_rolled_back);
    pthread_mutex_lock(&e->hmu);
    h->heuristics = e->heur_total;
    h->recovery_passes = e->passes;
    h->last_pass_unix = e->last_pass_unix;
    for (size_t i = 0; i < e->nrr; i++)
        h->indoubt += e->rr[i].indoubt;
    pthread_mutex_unlock(&e->hmu);
}

size_t engine_get_resources(engine *e, engine_resource_health *out, size_t cap)
{
    size_t n = e->cfg->nresources;
    pthread_mutex_lock(&e->hmu);
    for (size_t i = 0; i < n && i < cap; i++) {
        if (i < e->nrr) {
            out[i] = e->rr[i].health;
        } else {
            /* No recovery loop (no journal): the pool knows whether it is up. */
            memset(&out[i], 0, sizeof out[i]);
            snprintf(out[i].name, sizeof out[i].name, "%s", e->cfg->resources[i].name);
            out[i].up = i < e->npools && !drv_pool_down(e->pools[i]);
        }
    }
    pthread_mutex_unlock(&e->hmu);
    return n;
}

size_t engine_get_heuristics(engine *e, char (*out)[XAC_ERR_MSG_MAX], size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&e->hmu);
    for (size_t k = 0; k < e->heur_count && n < cap; k++) {
        size_t i = (e->heur_next + HEURISTICS_KEPT - 1 - k) % HEURISTICS_KEPT;
        snprintf(out[n++], XAC_ERR_MSG_MAX, "%s", e->heur[i]);
    }
    pthread_mutex_unlock(&e->hmu);
    return n;
}
