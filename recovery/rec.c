/* Recovery (rec.h): lists every resource's prepared branches on a fresh
 * connection, keeps this node's own, and resolves them against the journal
 * under presumed abort. The one rule that must never break: a gtrid with a
 * COMMIT record is never rolled back, so liveness is checked before the journal
 * (a transaction leaves the live table only after its decision is logged; one
 * whose record the journal could not confirm stays live, held by the engine,
 * until a restart). And a failed journal stops every rollback: a COMMIT it
 * could not confirm may be on disk all the same. */
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

static rec_decision decide(const rec_ctx *ctx, size_t ri, const drv_indoubt *d)
{
    if (!d->decoded || !xac_xid_is_ours_on(&d->xid, ctx->node_id, ctx->resources[ri].name))
        return REC_FOREIGN;
    /* Liveness first: see the file comment. */
    if (is_live(ctx, d->xid.gtrid))
        return REC_LIVE;
    if (journal_is_committed(ctx->journal, d->xid.gtrid))
        return REC_COMMIT;
    if (must_hold(ctx))
        return REC_HELD;
    return REC_ROLLBACK;
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
            rec_branch *b = &all[nall++];
            memset(b, 0, sizeof *b);
            snprintf(b->resource, sizeof b->resource, "%s", ctx->resources[ri].name);
            b->branch = list[k];
            b->decision = decide(ctx, ri, &list[k]);
        }
        free(list);
    }
    *out = all;
    *n = nall;
    return XAC_OK;
}

/* A branch of ours seen this pass, and whether it was resolved. */
typedef struct seen {
    xac_xid xid;
    bool resolved;
} seen;

typedef struct seen_set {
    seen *v;
    size_t n, cap;
    bool oom;
} seen_set;

static seen *seen_add(seen_set *s, const xac_xid *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (xac_xid_equal(&s->v[i].xid, x))
            return &s->v[i];
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        seen *p = realloc(s->v, ncap * sizeof *p);
        if (p == NULL) {
            s->oom = true;
            return NULL;
        }
        s->v = p;
        s->cap = ncap;
    }
    seen *e = &s->v[s->n++];
    e->xid = *x;
    e->resolved = false;
    return e;
}

static void resolve_one(const rec_ctx *ctx, const char *res, drv_conn *c, const drv_indoubt *d,
                        rec_decision dec, seen *sn, rec_report *r)
{
    const char *g = d->xid.gtrid;
    xac_err e;
    xac_err_clear(&e);
    if (dec == REC_COMMIT) {
        int x = drv_commit(c, &d->xid, false, &e);
        if (x == XA_OK || x == XA_HEURCOM) {
            xac_logi("recovery: committed gtrid %s on resource %s", g, res);
        } else if (x == XAER_NOTA) {
            xac_logi("recovery: gtrid %s on resource %s was already committed", g, res);
        } else {
            xac_loge("recovery: commit of gtrid %s on resource %s failed (%s): %s; will retry", g,
                     res, drv_xa_name(x), e.msg);
            r->failed++;
            return;
        }
        r->committed++;
        if (sn != NULL)
            sn->resolved = true;
        return;
    }
    /* REC_ROLLBACK. Check the journal once more right before acting: a COMMIT
     * record must win whatever happened since the listing, and a journal that
     * failed since then may hold a COMMIT it could not confirm. */
    if (is_live(ctx, g) || journal_is_committed(ctx->journal, g)) {
        xac_logi("recovery: gtrid %s on resource %s changed state during the pass; next pass", g,
                 res);
        return;
    }
    if (must_hold(ctx)) {
        xac_logw("recovery: gtrid %s on resource %s is left prepared: the journal failed during "
                 "the pass and may hold its COMMIT; xacd settles it when it restarts with a "
                 "working journal",
                 g, res);
        r->held++;
        return;
    }
    int x = drv_rollback(c, &d->xid, &e);
    if (x == XA_OK || XA_IS_RB(x) || x == XAER_NOTA) {
        xac_logi("recovery: rolled back gtrid %s on resource %s (no commit record: presumed "
                 "abort)",
                 g, res);
        r->rolled_back++;
        if (sn != NULL)
            sn->resolved = true;
        return;
    }
    xac_loge("recovery: rollback of gtrid %s on resource %s failed (%s): %s; will retry", g, res,
             drv_xa_name(x), e.msg);
    r->failed++;
}

int rec_pass(const rec_ctx *ctx, rec_report *r, xac_err *err)
{
    memset(r, 0, sizeof *r);
    /* Without the journal every branch would look undecided and be rolled
     * back, committed ones included. */
    if (ctx->journal == NULL)
        return xac_err_set(err, XAC_EINVAL,
                           "recovery: no journal given: refusing to resolve branches blind");

    /* Snapshot first, list after: a transaction that was not live here has
     * already left behind every branch it will ever leave, so the listing
     * below sees them and no END is written too early. */
    journal_txn *pend = NULL;
    size_t npend = 0;
    int rc = journal_pending(ctx->journal, &pend, &npend, err);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "recovery: reading the journal");
    bool *cand = calloc(npend ? npend : 1, sizeof *cand);
    if (cand == NULL) {
        free(pend);
        return xac_err_set(err, XAC_ENOMEM, "recovery: out of memory");
    }
    for (size_t i = 0; i < npend; i++)
        cand[i] = !is_live(ctx, pend[i].gtrid);

    seen_set ss = {0};
    for (size_t ri = 0; ri < ctx->nresources; ri++) {
        const char *res = ctx->resources[ri].name;
        drv_conn *c;
        drv_indoubt *list;
        size_t nl;
        xac_err e;
        xac_err_clear(&e);
        if (scan(ctx, ri, &c, &list, &nl, &e) != XA_OK) {
            r->resources_down++;
            continue;
        }
        for (size_t k = 0; k < nl; k++) {
            drv_indoubt *d = &list[k];
            seen *sn = NULL;
            if (d->decoded && xac_xid_is_ours(&d->xid, ctx->node_id))
                sn = seen_add(&ss, &d->xid);
            if (belongs_elsewhere(ctx, ri, d))
                continue;
            rec_decision dec = decide(ctx, ri, d);
            switch (dec) {
            case REC_FOREIGN:
                r->foreign++;
                break;
            case REC_LIVE:
                r->live++;
                break;
            case REC_HELD:
                r->held++;
                xac_logw("recovery: gtrid %s on resource %s is left prepared: no COMMIT record, "
                         "but the journal %s; %s",
                         d->xid.gtrid, res,
                         ctx->hold_undecided ? "was salvaged and may have lost it"
                                             : "has failed and may hold one it could not confirm",
                         ctx->hold_undecided
                             ? "settle it by hand (xacctl list, xacd stopped) or restart xacd "
                               "without --salvage-journal to roll it back"
                             : "xacd settles it when it restarts with a working journal");
                break;
            case REC_COMMIT:
            case REC_ROLLBACK:
                if (c->broken) {
                    /* The connection died mid-pass: try again from a new one. */
                    drv_close(c);
                    c = NULL;
                    if (drv_open(&ctx->resources[ri], &c, &e) != XA_OK) {
                        xac_logw("recovery: lost resource %s mid-pass: %s", res, e.msg);
                        r->failed += 1;
                        r->resources_down++;
                        goto next_resource;
                    }
                }
                resolve_one(ctx, res, c, d, dec, sn, r);
                break;
            }
        }
    next_resource:
        if (c != NULL)
            drv_close(c);
        free(list);
    }

    bool failed = journal_failed(ctx);
    if (ss.oom) {
        xac_logw("recovery: out of memory tracking branches; no END record written this pass");
    } else if (failed) {
        if (npend > 0)
            xac_logw("recovery: the journal has failed; END records wait for a restart");
    } else if (r->resources_down == 0) {
        for (size_t i = 0; i < npend; i++) {
            if (!cand[i])
                continue;
            bool left = false;
            for (size_t k = 0; k < ss.n && !left; k++)
                if (!ss.v[k].resolved && strcmp(ss.v[k].xid.gtrid, pend[i].gtrid) == 0)
                    left = true;
            if (left)
                continue;
            xac_err e;
            xac_err_clear(&e);
            if (journal_end(ctx->journal, pend[i].gtrid, &e) == XAC_OK) {
                xac_logi("recovery: gtrid %s is done on every resource; END written",
                         pend[i].gtrid);
                r->ended++;
                if (ctx->on_ended != NULL)
                    ctx->on_ended(ctx->ended_arg, pend[i].gtrid);
            } else {
                xac_logw("recovery: END record for gtrid %s not written: %s", pend[i].gtrid, e.msg);
            }
        }
    } else if (npend > 0) {
        xac_logi("recovery: %zu resource(s) unreachable; END records wait for the next pass",
                 r->resources_down);
    }
    free(ss.v);
    free(pend);
    free(cand);
    if (r->committed || r->rolled_back || r->held || r->failed || r->resources_down || r->ended)
        xac_logi("recovery: pass done: %zu committed, %zu rolled back, %zu live, %zu foreign, "
                 "%zu held, %zu failed, %zu resource(s) down, %zu ended",
                 r->committed, r->rolled_back, r->live, r->foreign, r->held, r->failed,
                 r->resources_down, r->ended);
    return XAC_OK;
}
