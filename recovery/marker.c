/* Last resources' commit markers (rec.h): asking every last resource whether
 * a gtrid committed there, fencing a gtrid that did not so that a commit still
 * in flight can never land after recovery rolled its XA branches back,
 * adopting a commit marker into the journal, and the batched removal of
 * markers whose transactions have ended. Each check opens its own connection:
 * it runs only for branches without a COMMIT record, which are rare. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rec.h"

/* An abort row outlives any commit that could still be in flight for it. */
#define FENCE_KEEP_S (24 * 3600)

bool rec_has_last_resource(const rec_ctx *ctx)
{
    for (size_t k = 0; k < ctx->nresources; k++)
        if (ctx->resources[k].last_resource)
            return true;
    return false;
}

int rec_marker_check(const rec_ctx *ctx, const char *gtrid, bool fence, drv_marker *out,
                     char where[XAC_RESOURCE_MAX + 1], xac_err *err)
{
    *out = DRV_MARKER_NONE;
    where[0] = '\0';
    bool unknown = false, all_fenced = true, any = false;
    xac_err first;
    xac_err_clear(&first);
    for (size_t k = 0; k < ctx->nresources; k++) {
        const drv_conf *rc = &ctx->resources[k];
        if (!rc->last_resource)
            continue;
        any = true;
        drv_conn *c = NULL;
        drv_marker m = DRV_MARKER_NONE;
        xac_err e;
        xac_err_clear(&e);
        int x = drv_open(rc, &c, &e);
        if (x == XA_OK) {
            x = drv_lrc_marker(c, gtrid, fence, &m, &e);
            drv_close(c);
        }
        if (x != XA_OK) {
            if (!unknown)
                first = e;
            unknown = true;
            all_fenced = false;
            continue;
        }
        if (m == DRV_MARKER_COMMITTED) {
            *out = DRV_MARKER_COMMITTED;
            snprintf(where, XAC_RESOURCE_MAX + 1, "%s", rc->name);
            return XAC_OK;
        }
        if (m != DRV_MARKER_ABORTED)
            all_fenced = false;
    }
    if (unknown)
        return xac_err_setr(err, XAC_ERMFAIL, first.resource,
                            "cannot tell whether gtrid %s committed: a last resource could not "
                            "be asked for its commit marker: %s",
                            gtrid, first.msg);
    if (any && fence && all_fenced)
        *out = DRV_MARKER_ABORTED;
    return XAC_OK;
}

int rec_marker_adopt(const rec_ctx *ctx, const char *gtrid, const char *where, xac_err *err)
{
    journal_txn t;
    memset(&t, 0, sizeof t);
    snprintf(t.gtrid, sizeof t.gtrid, "%s", gtrid);
    for (size_t k = 0; k < ctx->nresources && t.nbranches < JOURNAL_MAX_BRANCHES; k++)
        snprintf(t.resources[t.nbranches++], sizeof t.resources[0], "%s", ctx->resources[k].name);
    t.decided_us = xac_now_wall_us();
    bool in_doubt = false;
    int rc = journal_commit(ctx->journal, &t, &in_doubt, err);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "recording the commit of gtrid %s found by %s's commit marker",
                              gtrid, where);
    xac_logi("recovery: gtrid %s committed at last resource %s (commit marker); its COMMIT record "
             "is now in the journal",
             gtrid, where);
    return XAC_OK;
}

/* Writes a COMMIT record for each listed marker that neither the journal nor
 * the running coordinator knows. */
static size_t adopt_orphans(const rec_ctx *ctx, const char *res, char (*g)[XAC_GTRID_MAX + 1],
                            size_t n)
{
    size_t adopted = 0;
    for (size_t i = 0; i < n; i++) {
        if ((ctx->is_live != NULL && ctx->is_live(ctx->live_arg, g[i])) ||
            journal_is_committed(ctx->journal, g[i]))
            continue;
        xac_err e;
        xac_err_clear(&e);
        if (rec_marker_adopt(ctx, g[i], res, &e) == XAC_OK) {
            adopted++;
            if (ctx->step != NULL)
                ctx->step(ctx->step_arg, REC_STEP_AFTER_ADOPT);
        } else {
            xac_logw("recovery: %s", e.msg);
        }
    }
    return adopted;
}

int rec_marker_sweep(const rec_ctx *ctx, size_t ri, const char (*ended)[XAC_GTRID_MAX + 1],
                     size_t nended, bool adopt, size_t *adopted, xac_err *err)
{
    const drv_conf *rc = &ctx->resources[ri];
    if (adopted != NULL)
        *adopted = 0;
    drv_conn *c = NULL;
    int x = drv_open(rc, &c, err);
    if (x != XA_OK)
        return xac_err_prefix(err, "marker housekeeping on %s", rc->name);
    int status = XAC_OK;
    if (adopt) {
        char prefix[XAC_NODE_ID_MAX + 2];
        snprintf(prefix, sizeof prefix, "%s.", ctx->node_id);
        char(*g)[XAC_GTRID_MAX + 1] = NULL;
        size_t n = 0;
        x = drv_lrc_list(c, prefix, &g, &n, err);
        if (x != XA_OK) {
            status = xac_err_prefix(err, "listing the commit markers on %s", rc->name);
        } else {
            size_t a = adopt_orphans(ctx, rc->name, g, n);
            if (adopted != NULL)
                *adopted = a;
        }
        free(g);
    }
    if (status == XAC_OK) {
        const char **list = malloc((nended ? nended : 1) * sizeof *list);
        if (list == NULL) {
            status = xac_err_set(err, XAC_ENOMEM, "marker housekeeping: out of memory");
        } else {
            for (size_t i = 0; i < nended; i++)
                list[i] = ended[i];
            int64_t cutoff = (int64_t)time(NULL) - FENCE_KEEP_S;
            x = drv_lrc_forget(c, list, nended, cutoff, err);
            if (x != XA_OK)
                status = xac_err_prefix(err, "removing ended markers on %s", rc->name);
            free(list);
        }
    }
    drv_close(c);
    return status;
}
