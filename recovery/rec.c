/* Recovery (rec.h): lists a resource's prepared branches on a fresh
 * connection, keeps this node's own, and resolves them against the journal
 * under presumed abort, one resource per pass so that a resource that is down
 * or slow holds up no other. The one rule that must never break: a gtrid with
 * a COMMIT record is never rolled back, so liveness is checked before the
 * journal (a transaction leaves the live table only after its decision is
 * logged; one whose record the journal could not confirm stays live, held by
 * the engine, until a restart). And a failed journal stops every rollback: a
 * COMMIT it could not confirm may be on disk all the same. An undecided branch
 * of the running boot gets a grace period before its rollback, so that a
 * branch whose transaction is between steps is not taken for an orphan. END
 * records need every resource of the transaction found clean of it; since
 * passes are per resource, rec_state remembers which ones were. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec.h"

const char *rec_decision_name(rec_decision d)
{
    switch (d) {
    case REC_COMMIT:
        return "committed";
    case REC_ROLLBACK:
        return "none: will roll back";
    case REC_LIVE:
        return "live: in progress";
    case REC_FOREIGN:
        return "foreign: not ours";
    case REC_HELD:
        return "unknown: held";
    }
    return "?";
}

rec_verdict rec_classify(bool commit, int rc, bool conn_broken)
{
    if (rc == XA_OK)
        return REC_V_DONE;
    if (!commit && XA_IS_RB(rc))
        return REC_V_DONE; /* rolled back, whatever the reason given */
    if (commit && rc == XA_HEURCOM)
        return REC_V_DONE_HEURISTIC; /* the outcome we wanted, but not by our hand */
    if (rc == XA_HEURCOM || rc == XA_HEURRB || rc == XA_HEURMIX || rc == XA_HEURHAZ ||
        rc == XAER_NOTA || XA_IS_RB(rc))
        return REC_V_DONE_HEURISTIC;
    if (rc == XAER_RMFAIL || rc == XA_RETRY || rc == XAER_ASYNC || conn_broken)
        return REC_V_RETRY;
    return REC_V_FAILED;
}

/* -------------------------------------------------- per-resource locks */

/* Two passes over one resource in one process (the loop's thread and an
 * operator's "recover now", or a start-up pass) would race to resolve the
 * same branches and report each other's work as heuristic. Resources are
 * told apart by name; a collision only serialises two resources. */
#define REC_LOCKS 64
static pthread_mutex_t rec_locks[REC_LOCKS];
static pthread_once_t rec_locks_once = PTHREAD_ONCE_INIT;

static void rec_locks_init(void)
{
    for (size_t i = 0; i < REC_LOCKS; i++)
        pthread_mutex_init(&rec_locks[i], NULL);
}

static pthread_mutex_t *res_lock(const char *name)
{
    pthread_once(&rec_locks_once, rec_locks_init);
    uint32_t h = 2166136261u;
    for (; *name != '\0'; name++)
        h = (h ^ (uint8_t)*name) * 16777619u;
    return &rec_locks[h % REC_LOCKS];
}

void rec_resource_lock(const char *resource)
{
    pthread_mutex_lock(res_lock(resource));
}

void rec_resource_unlock(const char *resource)
{
    pthread_mutex_unlock(res_lock(resource));
}

/* ---------------------------------------------------------------- state */

/* One branch recovery has seen: when first (for its age), in which listing
 * last (stale entries go), and what failure of it was last reported (so that
 * one refusal repeated every pass is reported once). */
typedef struct seen_br {
    char resource[XAC_RESOURCE_MAX + 1];
    xac_xid xid;
    uint64_t first_us; /* monotonic */
    uint64_t gen;
    int reported_rc;
    bool reported;
} seen_br;

/* A committed transaction some of whose resources were found clean of it. */
typedef struct end_mark {
    char gtrid[XAC_GTRID_MAX + 1];
    uint64_t clean; /* bit k: resources[k] of its COMMIT record */
} end_mark;

struct rec_state {
    pthread_mutex_t mu;
    seen_br *seen;
    size_t nseen, seen_cap;
    end_mark *marks;
    size_t nmarks, marks_cap;
    uint64_t gen;
};

int rec_state_create(rec_state **out, xac_err *err)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return xac_err_set(err, XAC_ENOMEM, "recovery: out of memory");
    pthread_mutex_init(&(*out)->mu, NULL);
    return XAC_OK;
}

void rec_state_destroy(rec_state *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s->seen);
    free(s->marks);
    free(s);
}

static seen_br *seen_find_locked(rec_state *s, const char *res, const xac_xid *x)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i].resource, res) == 0 && xac_xid_equal(&s->seen[i].xid, x))
            return &s->seen[i];
    return NULL;
}

/* Notes that res lists x now (generation gen); returns when it was first seen. */
static uint64_t seen_note(rec_state *s, const char *res, const xac_xid *x, uint64_t gen,
                          uint64_t now_us)
{
    pthread_mutex_lock(&s->mu);
    seen_br *b = seen_find_locked(s, res, x);
    if (b == NULL && s->nseen == s->seen_cap) {
        size_t ncap = s->seen_cap ? s->seen_cap * 2 : 64;
        seen_br *p = realloc(s->seen, ncap * sizeof *p);
        if (p != NULL) {
            s->seen = p;
            s->seen_cap = ncap;
        }
    }
    if (b == NULL && s->nseen < s->seen_cap) {
        b = &s->seen[s->nseen++];
        memset(b, 0, sizeof *b);
        snprintf(b->resource, sizeof b->resource, "%s", res);
        b->xid = *x;
        b->first_us = now_us;
    }
    uint64_t first = now_us; /* out of memory: as if seen just now (waits longer) */
    if (b != NULL) {
        if (gen != 0)
            b->gen = gen;
        first = b->first_us;
    }
    pthread_mutex_unlock(&s->mu);
    return first;
}

/* Forgets the branches of res that its listing of generation gen lacked. */
static void seen_sweep(rec_state *s, const char *res, uint64_t gen)
{
    pthread_mutex_lock(&s->mu);
    size_t k = 0;
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i].resource, res) != 0 || s->seen[i].gen == gen)
            s->seen[k++] = s->seen[i];
    s->nseen = k;
    pthread_mutex_unlock(&s->mu);
}

/* Whether the failure rc of x on res is news (true) or was reported already. */
static bool seen_report(rec_state *s, const char *res, const xac_xid *x, int rc)
{
    if (s == NULL)
        return true;
    pthread_mutex_lock(&s->mu);
    seen_br *b = seen_find_locked(s, res, x);
    bool news = b == NULL || !b->reported || b->reported_rc != rc;
    if (b != NULL) {
        b->reported = true;
        b->reported_rc = rc;
    }
    pthread_mutex_unlock(&s->mu);
    return news;
}

static uint64_t state_next_gen(rec_state *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t g = ++s->gen;
    pthread_mutex_unlock(&s->mu);
    return g;
}

/* Notes resource bit k clean of t; true when every resource of t now is (the
 * mark is then dropped: the caller writes the END record). */
static bool mark_clean(rec_state *s, const journal_txn *t, unsigned k, bool *oom)
{
    uint64_t all = t->nbranches >= 64 ? UINT64_MAX : ((uint64_t)1 << t->nbranches) - 1;
    pthread_mutex_lock(&s->mu);
    end_mark *m = NULL;
    size_t mi = 0;
    for (size_t i = 0; i < s->nmarks && m == NULL; i++)
        if (strcmp(s->marks[i].gtrid, t->gtrid) == 0) {
            m = &s->marks[i];
            mi = i;
        }
    if (m == NULL) {
        if (s->nmarks == s->marks_cap) {
            size_t ncap = s->marks_cap ? s->marks_cap * 2 : 32;
            end_mark *p = realloc(s->marks, ncap * sizeof *p);
            if (p == NULL) {
                pthread_mutex_unlock(&s->mu);
                *oom = true;
                return false;
            }
            s->marks = p;
            s->marks_cap = ncap;
        }
        mi = s->nmarks++;
        m = &s->marks[mi];
        snprintf(m->gtrid, sizeof m->gtrid, "%s", t->gtrid);
        m->clean = 0;
    }
    m->clean |= (uint64_t)1 << k;
    bool done = (m->clean & all) == all;
    if (done)
        s->marks[mi] = s->marks[--s->nmarks];
    pthread_mutex_unlock(&s->mu);
    return done;
}

/* Drops the marks of transactions that ended by other hands. */
static void marks_prune(rec_state *s, journal *j)
{
    pthread_mutex_lock(&s->mu);
    size_t k = 0;
    for (size_t i = 0; i < s->nmarks; i++)
        if (journal_is_committed(j, s->marks[i].gtrid))
            s->marks[k++] = s->marks[i];
    s->nmarks = k;
    pthread_mutex_unlock(&s->mu);
}

/* -------------------------------------------------------------- deciding */

static bool is_live(const rec_ctx *ctx, const char *gtrid)
{
    return ctx->is_live != NULL && ctx->is_live(ctx->live_arg, gtrid);
}

/* An XID of ours that names another configured resource shows up on every
 * resource sharing that database server; it is listed and resolved under its
 * own resource only. */
static bool belongs_elsewhere(const rec_ctx *ctx, size_t ri, const drv_indoubt *d)
{
    if (!d->decoded || !xac_xid_is_ours(&d->xid, ctx->node_id))
        return false;
    for (size_t k = 0; k < ctx->nresources; k++)
        if (k != ri && xac_xid_is_ours_on(&d->xid, ctx->node_id, ctx->resources[k].name))
            return true;
    return false;
}

static bool journal_failed(const rec_ctx *ctx)
{
    journal_stats st;
    journal_get_stats(ctx->journal, &st);
    return st.failed;
}

/* Whether the journal may lack a decision it was asked to make durable. */
static bool must_hold(const rec_ctx *ctx)
{
    return ctx->hold_undecided || journal_failed(ctx);
}

/* Whether gtrid (ours: "<node>.<boot>.<seq>") is of the running boot. One we
 * cannot parse counts as current: it then waits out the grace period. */
static bool of_this_boot(const rec_ctx *ctx, const char *gtrid)
{
    if (ctx->boot == 0)
        return false;
    size_t nl = strlen(ctx->node_id);
    if (strncmp(gtrid, ctx->node_id, nl) != 0 || gtrid[nl] != '.')
        return true;
    const char *p = gtrid + nl + 1;
    char *end;
    unsigned long long boot = strtoull(p, &end, 16);
    if (end == p || *end != '.')
        return true;
    return boot == ctx->boot;
}

/* Decides what to do with d, listed on resource ri in listing gen (0: not a
 * pass, only a listing), filling b. */
static void evaluate(const rec_ctx *ctx, size_t ri, const drv_indoubt *d, uint64_t gen,
                     rec_branch *b)
{
    const char *res = ctx->resources[ri].name;
    memset(b, 0, sizeof *b);
    snprintf(b->resource, sizeof b->resource, "%s", res);
    b->branch = *d;
    b->age_s = -1;
    uint64_t now_mono = xac_now_mono_us();
    uint64_t first = now_mono;
    bool known_first = false;
    if (ctx->state != NULL && d->decoded) {
        first = seen_note(ctx->state, res, &d->xid, gen, now_mono);
        known_first = true;
    }
    int64_t age_ms = -1;
    if (d->prepared_at > 0) {
        int64_t now_s = (int64_t)(xac_now_wall_us() / 1000000u);
        age_ms = (now_s - d->prepared_at) * 1000;
        if (age_ms < 0)
            age_ms = 0; /* the database's clock is ahead of ours */
    } else if (known_first) {
        age_ms = (int64_t)((now_mono - first) / 1000u);
    }
    if (age_ms >= 0)
        b->age_s = age_ms / 1000;

    if (!d->decoded || !xac_xid_is_ours_on(&d->xid, ctx->node_id, res)) {
        b->decision = REC_FOREIGN;
        return;
    }
    /* Liveness first: see the file comment. */
    if (is_live(ctx, d->xid.gtrid)) {
        b->decision = REC_LIVE;
        return;
    }
    if (journal_is_committed(ctx->journal, d->xid.gtrid)) {
        b->decision = REC_COMMIT;
        return;
    }
    if (must_hold(ctx)) {
        b->decision = REC_HELD;
        b->salvaged = ctx->hold_undecided;
        return;
    }
    b->decision = REC_ROLLBACK;
    /* A last resource may have decided it: look, without fencing (a listing
     * changes nothing; the rollback itself fences). */
    drv_marker m;
    xac_err me;
    xac_err_clear(&me);
    if (rec_marker_check(ctx, d->xid.gtrid, false, &m, b->marker, &me) != XAC_OK) {
        xac_logw("recovery: gtrid %s on resource %s is left prepared: %s", d->xid.gtrid, res,
                 me.msg);
        b->decision = REC_HELD;
        b->marker_unknown = true;
        return;
    }
    if (m == DRV_MARKER_COMMITTED) {
        b->decision = REC_COMMIT;
        return;
    }
    if (ctx->grace_ms == 0 || !of_this_boot(ctx, d->xid.gtrid))
        return;
    if (age_ms < 0) {
        b->grace_left_ms = ctx->grace_ms;
    } else if (age_ms < (int64_t)ctx->grace_ms) {
        b->grace_left_ms = (uint32_t)((int64_t)ctx->grace_ms - age_ms);
    }
}

/* Opens a fresh connection to resource ri and lists its in-doubt branches. */
static int scan(const rec_ctx *ctx, size_t ri, drv_conn **conn, drv_indoubt **list, size_t *n,
                xac_err *err)
{
    const drv_conf *rc = &ctx->resources[ri];
    *conn = NULL;
    *list = NULL;
    *n = 0;
    int x = drv_open(rc, conn, err);
    if (x != XA_OK) {
        xac_logw("recovery: resource %s is unreachable (%s): %s", rc->name, drv_xa_name(x),
                 err->msg);
        return x;
    }
    x = drv_recover(*conn, list, n, err);
    if (x != XA_OK) {
        xac_logw("recovery: XA RECOVER on resource %s failed (%s): %s", rc->name, drv_xa_name(x),
                 err->msg);
        drv_close(*conn);
        *conn = NULL;
        free(*list);
        *list = NULL;
        *n = 0;
        return x;
    }
    return XA_OK;
}

int rec_list(const rec_ctx *ctx, rec_branch **out, size_t *n, size_t *down, xac_err *err)
{
    *out = NULL;
    *n = 0;
    *down = 0;
    if (ctx->journal == NULL)
        return xac_err_set(err, XAC_EINVAL,
                           "recovery: no journal given: without it every decision is unknown");
    rec_branch *all = NULL;
    size_t nall = 0, cap = 0;
    for (size_t ri = 0; ri < ctx->nresources; ri++) {
        drv_conn *c;
        drv_indoubt *list;
        size_t nl;
        xac_err e;
        xac_err_clear(&e);
        if (scan(ctx, ri, &c, &list, &nl, &e) != XA_OK) {
            (*down)++;
            continue;
        }
        drv_close(c);
        for (size_t k = 0; k < nl; k++) {
            if (belongs_elsewhere(ctx, ri, &list[k]))
                continue;
            if (nall == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                rec_branch *p = realloc(all, ncap * sizeof *p);
                if (p == NULL) {
                    free(list);
                    free(all);
                    return xac_err_set(err, XAC_ENOMEM,
                                       "recovery: out of memory listing in-doubt branches");
                }
                all = p;
                cap = ncap;
            }
            evaluate(ctx, ri, &list[k], 0, &all[nall++]);
        }
        free(list);
    }
    *out = all;
    *n = nall;
    return XAC_OK;
}

/* ------------------------------------------------------------- resolving */

static void step(const rec_ctx *ctx, const char *name)
{
    if (ctx->step != NULL)
        ctx->step(ctx->step_arg, name);
}

static void action(const rec_ctx *ctx, const char *res, const xac_xid *x, const char *what,
                   const char *outcome)
{
    if (ctx->on_action != NULL)
        ctx->on_action(ctx->action_arg, res, x, what, outcome);
}

/* Logs and hands on a heuristic or unexpected outcome (once per branch and
 * return code when ctx->state remembers). */
static void heuristic(const rec_ctx *ctx, const char *res, const xac_xid *x, int rc,
                      const char *text, rec_report *r)
{
    if (!seen_report(ctx->state, res, x, rc))
        return;
    xac_loge("recovery: %s", text);
    r->heuristics++;
    if (ctx->on_heuristic != NULL)
        ctx->on_heuristic(ctx->heuristic_arg, res, x->gtrid, text);
}

/* The words of one decision in recovery's log, reports and heuristics. */
typedef struct outcome_words {
    bool commit;           /* the decision: commit or roll back */
    const char *verb;      /* "commit" */
    const char *log_verb;  /* the verb in the success log line */
    const char *done;      /* "committed" */
    const char *why;       /* what the decision rests on */
    int own_heuristic;     /* the heuristic code that did what was decided */
    const char *gone;      /* why XAER_NOTA: finished by someone else */
    const char *own;       /* why own_heuristic */
    const char *otherwise; /* any other heuristic */
} outcome_words;

static const outcome_words commit_words = {
    .commit = true,
    .verb = "commit",
    .log_verb = "commit",
    .done = "committed",
    .why = "commit (COMMIT record)",
    .own_heuristic = XA_HEURCOM,
    .gone = "the branch was listed in doubt and is gone: finished by someone else; check that "
            "it committed",
    .own = "the database committed it on its own",
    .otherwise = "HEURISTIC: the database did not commit it as decided; the transaction is not "
                 "atomic, check the data by hand"};

static const outcome_words rollback_words = {
    .verb = "roll back",
    .log_verb = "roll back (no commit record: presumed abort)",
    .done = "rolled back",
    .why = "roll back (no decision)",
    .own_heuristic = XA_HEURRB,
    .gone = "the branch was listed in doubt and is gone: finished by someone else; check that "
            "it rolled back",
    .own = "the database rolled it back on its own",
    .otherwise = "HEURISTIC: the database did not roll it back as decided; check the data by hand"};

/* Logs, reports and counts what the commit or rollback of d on res returned
 * (x, with e); done counts the branches that ended as decided. True when
 * nothing of the branch is left on res. */
static bool record_outcome(const rec_ctx *ctx, const char *res, const drv_conn *c,
                           const drv_indoubt *d, const outcome_words *w, int x, const xac_err *e,
                           rec_report *r, size_t *done)
{
    const char *g = d->xid.gtrid;
    char text[XAC_ERR_MSG_MAX];
    char out[XAC_ERR_MSG_MAX];
    switch (rec_classify(w->commit, x, c->broken)) {
    case REC_V_DONE:
        xac_logi("recovery: gtrid %s on resource %s: %s: %s", g, res, w->log_verb, w->done);
        action(ctx, res, &d->xid, w->verb, w->done);
        (*done)++;
        return true;
    case REC_V_DONE_HEURISTIC:
        snprintf(text, sizeof text, "gtrid %s on resource %s: %s returned %s: %s%s%.200s", g, res,
                 w->why, drv_xa_name(x),
                 x == XAER_NOTA          ? w->gone
                 : x == w->own_heuristic ? w->own
                                         : w->otherwise,
                 e->msg[0] ? "; " : "", e->msg);
        heuristic(ctx, res, &d->xid, x, text, r);
        snprintf(out, sizeof out, "heuristic (%s)", drv_xa_name(x));
        action(ctx, res, &d->xid, w->verb, out);
        if (x == w->own_heuristic)
            (*done)++;
        return true;
    case REC_V_RETRY:
        xac_logw("recovery: gtrid %s on resource %s: %s: failed (%s): %s; will retry", g, res,
                 w->verb, drv_xa_name(x), e->msg);
        break;
    case REC_V_FAILED:
        snprintf(text, sizeof text,
                 "gtrid %s on resource %s: %s refused (%s): %.200s; recovery keeps trying", g, res,
                 w->why, drv_xa_name(x), e->msg);
        heuristic(ctx, res, &d->xid, x, text, r);
        break;
    }
    snprintf(out, sizeof out, "failed (%s): %.400s", drv_xa_name(x), e->msg);
    action(ctx, res, &d->xid, w->verb, out);
    r->failed++;
    return false;
}

/* Resolves one listed branch; true when nothing of it is left on res. */
/* Writes the COMMIT record a commit marker stands for, unless the journal has
 * it already. The marker alone is the decision, so the branch is committed
 * even when the record cannot be written. */
static void adopt(const rec_ctx *ctx, const char *res, const char *gtrid, const char *where)
{
    if (journal_is_committed(ctx->journal, gtrid))
        return;
    xac_err e;
    xac_err_clear(&e);
    if (rec_marker_adopt(ctx, gtrid, where, &e) != XAC_OK)
        xac_logw("recovery: %s; committing the branch on %s anyway: the marker is the decision",
                 e.msg, res);
    else
        step(ctx, REC_STEP_AFTER_ADOPT);
}

/* Commits d's branch; where: the last resource whose commit marker decided
 * it ("" when the journal did). */
static bool commit_one(const rec_ctx *ctx, const char *res, drv_conn *c, const drv_indoubt *d,
                       const char *where, rec_report *r)
{
    if (where[0] != '\0')
        adopt(ctx, res, d->xid.gtrid, where);
    xac_err e;
    xac_err_clear(&e);
    step(ctx, REC_STEP_BEFORE_COMMIT);
    int x = drv_commit(c, &d->xid, false, &e);
    step(ctx, REC_STEP_AFTER_COMMIT);
    if (x == XAER_NOTA && where[0] != '\0' && ctx->finished_here != NULL &&
        ctx->finished_here(ctx->live_arg, d->xid.gtrid)) {
        /* Listed while the engine was committing it; its END came before
         * the marker's removal, so the marker was read as an orphan. */
        xac_logi("recovery: gtrid %s on resource %s: committed by xacd itself since the listing",
                 d->xid.gtrid, res);
        return false;
    }
    return record_outcome(ctx, res, c, d, &commit_words, x, &e, r, &r->committed);
}

static bool resolve_one(const rec_ctx *ctx, const char *res, drv_conn *c, const drv_indoubt *d,
                        const rec_branch *b, rec_report *r)
{
    const char *g = d->xid.gtrid;
    if (b->decision == REC_COMMIT)
        return commit_one(ctx, res, c, d, b->marker, r);
    /* REC_ROLLBACK. Check the journal once more right before acting: a COMMIT
     * record must win whatever happened since the listing, and a journal that
     * failed since then may hold a COMMIT it could not confirm. */
    if (is_live(ctx, g) || journal_is_committed(ctx->journal, g)) {
        xac_logi("recovery: gtrid %s on resource %s changed state during the pass; next pass", g,
                 res);
        return false;
    }
    if (must_hold(ctx)) {
        xac_logw("recovery: gtrid %s on resource %s is left prepared: the journal failed during "
                 "the pass and may hold its COMMIT; xacd settles it when it restarts with a "
                 "working journal",
                 g, res);
        r->held++;
        return false;
    }
    xac_err e;
    xac_err_clear(&e);
    if (rec_has_last_resource(ctx)) {
        /* Fence the gtrid on every last resource before the rollback: once
         * each holds an abort row, no commit of it can land there later. */
        drv_marker m;
        char where[XAC_RESOURCE_MAX + 1];
        if (rec_marker_check(ctx, g, true, &m, where, &e) != XAC_OK) {
            xac_logw("recovery: gtrid %s on resource %s is left prepared: %s", g, res, e.msg);
            r->failed++;
            return false;
        }
        if (m == DRV_MARKER_COMMITTED)
            return commit_one(ctx, res, c, d, where, r);
        step(ctx, REC_STEP_AFTER_FENCE);
    }
    step(ctx, REC_STEP_BEFORE_ROLLBACK);
    int x = drv_rollback(c, &d->xid, &e);
    step(ctx, REC_STEP_AFTER_ROLLBACK);
    if (x == XAER_NOTA && ctx->finished_here != NULL && ctx->finished_here(ctx->live_arg, g)) {
        /* Listed while the engine was finishing it: the engine's own doing. */
        xac_logi("recovery: gtrid %s on resource %s: finished by xacd itself since the listing; "
                 "nothing to roll back",
                 g, res);
        return false;
    }
    return record_outcome(ctx, res, c, d, &rollback_words, x, &e, r, &r->rolled_back);
}

static void log_held(const rec_ctx *ctx, const char *res, const drv_indoubt *d)
{
    if (ctx->hold_undecided)
        xac_logw("recovery: gtrid %s on resource %s is left prepared because the journal was "
                 "salvaged and may have lost its COMMIT record; settle it by hand (xacctl list, "
                 "xacctl commit/rollback) or restart xacd without --salvage-journal to roll it "
                 "back",
                 d->xid.gtrid, res);
    else
        xac_logw("recovery: gtrid %s on resource %s is left prepared because the journal has "
                 "failed and may hold a COMMIT record it could not confirm; xacd settles it when "
                 "it restarts with a working journal",
                 d->xid.gtrid, res);
}

/* The index of res in t's resources, or -1. */
static int txn_res_index(const journal_txn *t, const char *res)
{
    for (unsigned k = 0; k < t->nbranches; k++)
        if (strcmp(t->resources[k], res) == 0)
            return (int)k;
    return -1;
}

/* The pass proper; the caller holds the resource's lock and supplies a state. */
static int pass_locked(const rec_ctx *ctx, size_t ri, rec_report *r, xac_err *err)
{
    const char *res = ctx->resources[ri].name;
    /* Snapshot first, list after: a transaction that was not live here has
     * already left behind every branch it will ever leave, so the listing
     * below sees them and the resource is not noted clean too early. */
    journal_txn *pend = NULL;
    size_t npend = 0;
    int rc = journal_pending(ctx->journal, &pend, &npend, err);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "recovery: reading the journal");
    /* cand[i]: the bit of res in pend[i]'s record, or -1 when not a candidate. */
    int *cand = calloc(npend ? npend : 1, sizeof *cand);
    bool *left = calloc(npend ? npend : 1, sizeof *left);
    if (cand == NULL || left == NULL) {
        free(pend);
        free(cand);
        free(left);
        return xac_err_set(err, XAC_ENOMEM, "recovery: out of memory");
    }
    for (size_t i = 0; i < npend; i++) {
        cand[i] = txn_res_index(&pend[i], res);
        if (cand[i] >= 0 && is_live(ctx, pend[i].gtrid))
            cand[i] = -1;
    }

    drv_conn *c;
    drv_indoubt *list;
    size_t nl;
    xac_err e;
    xac_err_clear(&e);
    uint64_t gen = state_next_gen(ctx->state);
    if (scan(ctx, ri, &c, &list, &nl, &e) != XA_OK) {
        r->resources_down++;
        snprintf(r->down_error, sizeof r->down_error, "%s", e.msg);
        free(pend);
        free(cand);
        free(left);
        return XAC_OK;
    }
    bool lost = false;
    for (size_t k = 0; k < nl; k++) {
        drv_indoubt *d = &list[k];
        if (belongs_elsewhere(ctx, ri, d))
            continue;
        r->listed++;
        rec_branch b;
        evaluate(ctx, ri, d, gen, &b);
        bool resolved = false;
        switch (b.decision) {
        case REC_FOREIGN:
            r->foreign++;
            break;
        case REC_LIVE:
            r->live++;
            break;
        case REC_HELD:
            if (b.marker_unknown) {
                r->failed++; /* logged by evaluate; retried with backoff */
                break;
            }
            r->held++;
            log_held(ctx, res, d);
            break;
        case REC_ROLLBACK:
            if (b.grace_left_ms > 0) {
                r->waiting++;
                if (r->wait_ms == 0 || b.grace_left_ms < r->wait_ms)
                    r->wait_ms = b.grace_left_ms;
                xac_logd("recovery: gtrid %s on resource %s: no decision; rolled back in %u ms "
                         "(grace period)",
                         d->xid.gtrid, res, b.grace_left_ms);
                break;
            }
            /* fall through */
        case REC_COMMIT:
            if (lost) {
                r->failed++;
                break;
            }
            if (c->broken) {
                /* The connection died mid-pass: try again from a new one. */
                drv_close(c);
                c = NULL;
                if (drv_open(&ctx->resources[ri], &c, &e) != XA_OK) {
                    xac_logw("recovery: lost resource %s mid-pass: %s", res, e.msg);
                    snprintf(r->down_error, sizeof r->down_error, "%s", e.msg);
                    r->resources_down++;
                    r->failed++;
                    lost = true;
                    break;
                }
            }
            resolved = resolve_one(ctx, res, c, d, &b, r);
            break;
        }
        if (!resolved && d->decoded && xac_xid_is_ours_on(&d->xid, ctx->node_id, res))
            for (size_t i = 0; i < npend; i++)
                if (cand[i] >= 0 && strcmp(pend[i].gtrid, d->xid.gtrid) == 0)
                    left[i] = true;
    }
    if (c != NULL)
        drv_close(c);
    free(list);
    if (!lost)
        seen_sweep(ctx->state, res, gen);

    if (lost) {
        /* Not every branch was seen through: nothing is clean. */
    } else if (journal_failed(ctx)) {
        if (npend > 0)
            xac_logw("recovery: the journal has failed; END records wait for a restart");
    } else {
        bool oom = false;
        for (size_t i = 0; i < npend; i++) {
            if (cand[i] < 0 || left[i] ||
                !mark_clean(ctx->state, &pend[i], (unsigned)cand[i], &oom))
                continue;
            step(ctx, REC_STEP_BEFORE_END);
            xac_err je;
            xac_err_clear(&je);
            if (journal_end(ctx->journal, pend[i].gtrid, &je) == XAC_OK) {
                xac_logi("recovery: gtrid %s is done on every resource; END written",
                         pend[i].gtrid);
                r->ended++;
                if (ctx->on_ended != NULL)
                    ctx->on_ended(ctx->ended_arg, pend[i].gtrid);
            } else {
                xac_logw("recovery: END record for gtrid %s not written: %s", pend[i].gtrid,
                         je.msg);
            }
        }
        if (oom)
            xac_logw("recovery: out of memory noting resource %s clean; END records wait", res);
        marks_prune(ctx->state, ctx->journal);
    }
    free(pend);
    free(cand);
    free(left);
    return XAC_OK;
}

int rec_pass_resource(const rec_ctx *ctx, size_t ri, rec_report *r, xac_err *err)
{
    memset(r, 0, sizeof *r);
    /* Without the journal every branch would look undecided and be rolled
     * back, committed ones included. */
    if (ctx->journal == NULL)
        return xac_err_set(err, XAC_EINVAL,
                           "recovery: no journal given: refusing to resolve branches blind");
    if (ri >= ctx->nresources)
        return xac_err_set(err, XAC_EINVAL, "recovery: no resource #%zu", ri);
    rec_ctx local = *ctx;
    rec_state *tmp = NULL;
    if (local.state == NULL) {
        int rc = rec_state_create(&tmp, err);
        if (rc != XAC_OK)
            return rc;
        local.state = tmp;
    }
    pthread_mutex_t *lk = res_lock(ctx->resources[ri].name);
    pthread_mutex_lock(lk);
    int rc = pass_locked(&local, ri, r, err);
    pthread_mutex_unlock(lk);
    rec_state_destroy(tmp);
    /* A resource that is down was logged by scan(); its retries stay quiet. */
    if (rc == XAC_OK &&
        (r->committed || r->rolled_back || r->held || r->failed || r->ended || r->heuristics))
        xac_logi("recovery: pass on resource %s: %zu committed, %zu rolled back, %zu live, "
                 "%zu foreign, %zu held, %zu waiting, %zu failed, %zu heuristic, %s, %zu ended",
                 ctx->resources[ri].name, r->committed, r->rolled_back, r->live, r->foreign,
                 r->held, r->waiting, r->failed, r->heuristics, r->resources_down ? "down" : "up",
                 r->ended);
    return rc;
}

int rec_pass(const rec_ctx *ctx, rec_report *r, xac_err *err)
{
    memset(r, 0, sizeof *r);
    if (ctx->journal == NULL)
        return xac_err_set(err, XAC_EINVAL,
                           "recovery: no journal given: refusing to resolve branches blind");
    /* One state for the whole pass, so that a transaction over several
     * resources is ended once each of them has been seen clean. */
    rec_ctx local = *ctx;
    rec_state *tmp = NULL;
    if (local.state == NULL) {
        int rc = rec_state_create(&tmp, err);
        if (rc != XAC_OK)
            return rc;
        local.state = tmp;
    }
    int rc = XAC_OK;
    for (size_t ri = 0; ri < ctx->nresources && rc == XAC_OK; ri++) {
        rec_report one;
        rc = rec_pass_resource(&local, ri, &one, err);
        r->committed += one.committed;
        r->rolled_back += one.rolled_back;
        r->live += one.live;
        r->foreign += one.foreign;
        r->held += one.held;
        r->waiting += one.waiting;
        if (one.wait_ms > 0 && (r->wait_ms == 0 || one.wait_ms < r->wait_ms))
            r->wait_ms = one.wait_ms;
        r->failed += one.failed;
        r->heuristics += one.heuristics;
        r->listed += one.listed;
        r->resources_down += one.resources_down;
        r->ended += one.ended;
        if (one.resources_down)
            snprintf(r->down_error, sizeof r->down_error, "%s: %.400s", ctx->resources[ri].name,
                     one.down_error);
    }
    rec_state_destroy(tmp);
    return rc;
}
