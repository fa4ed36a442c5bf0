/* Manual resolution of one in-doubt branch (rec.h, rec_resolve): the rules a
 * DBA's commit or rollback must pass, the action itself on a fresh connection,
 * and the audit log. xacd runs it for its admin socket and xacctl runs it with
 * xacd stopped, so a refusal reads the same either way. The branch is looked
 * up on the resource right before acting, so the decision shown and audited is
 * the one the action was taken under, not what a listing said a while ago. The
 * audit log is opened before anything is done: an action that cannot be
 * recorded is not taken. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "rec.h"

const char *rec_decision_key(rec_decision d)
{
    switch (d) {
    case REC_COMMIT:
        return "committed";
    case REC_ROLLBACK:
        return "none";
    case REC_LIVE:
        return "live";
    case REC_FOREIGN:
        return "foreign";
    case REC_HELD:
        return "held";
    }
    return "?";
}

void rec_branch_action(const rec_branch *b, char *out, size_t len)
{
    switch (b->decision) {
    case REC_COMMIT:
        snprintf(out, len, "commit");
        return;
    case REC_ROLLBACK:
        if (b->grace_left_ms > 0)
            snprintf(out, len, "roll back after grace (%us)", (b->grace_left_ms + 999) / 1000);
        else
            snprintf(out, len, "roll back");
        return;
    case REC_LIVE:
        snprintf(out, len, "leave (live)");
        return;
    case REC_FOREIGN:
        snprintf(out, len, "leave (foreign)");
        return;
    case REC_HELD:
        snprintf(out, len,
                 b->marker_unknown ? "hold (last resource unreachable)"
                 : b->salvaged     ? "hold (journal salvaged)"
                                   : "hold (journal failed)");
        return;
    }
    snprintf(out, len, "?");
}

/* ------------------------------------------------------------ audit log */

/* Appends s to b as a double-quoted string, escaping what would break the
 * line or the quoting. */
static void put_quoted(char *b, size_t cap, const char *s)
{
    size_t n = strlen(b);
    if (n + 1 < cap)
        b[n++] = '"';
    for (; *s != '\0' && n + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            b[n++] = '\\';
            b[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t)snprintf(b + n, cap - n, "\\x%02x", c);
        } else {
            b[n++] = (char)c;
        }
    }
    if (n + 1 < cap)
        b[n++] = '"';
    b[n < cap ? n : cap - 1] = '\0';
}

/* One line per call: what was asked, under which decision, and what came of
 * it. Written with a single write() on an O_APPEND descriptor, so that lines
 * from xacd and xacctl never interleave. */
static int audit_write(int fd, const rec_resolve_req *req, const char *decision,
                       const char *outcome, xac_err *err)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char line[2048];
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ operator=", (long)tv.tv_usec / 1000);
    put_quoted(line, sizeof line, req->operator_name != NULL ? req->operator_name : "?");
    n = strlen(line);
    snprintf(line + n, sizeof line - n,
             " mode=%s action=%s resource=", req->online ? "online" : "offline",
             req->commit ? "commit" : "rollback");
    put_quoted(line, sizeof line, req->resource != NULL ? req->resource : "");
    n = strlen(line);
    snprintf(line + n, sizeof line - n, " xid=");
    put_quoted(line, sizeof line, req->xid != NULL ? req->xid : "");
    n = strlen(line);
    snprintf(line + n, sizeof line - n, " decision=%s force=%s outcome=", decision,
             req->force ? "yes" : "no");
    put_quoted(line, sizeof line, outcome);
    n = strlen(line);
    if (n + 1 >= sizeof line)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w;
    do
        w = write(fd, line, n);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)n || fsync(fd) != 0)
        return xac_err_set(err, XAC_EIO, "audit log %s: cannot record the action: %s",
                           req->audit_path,
                           w < 0 || w == (ssize_t)n ? strerror(errno) : "short write");
    return XAC_OK;
}

/* Records the call's end: a refusal or failure keeps its own code, and a
 * failed audit write turns a success into XAC_EIO (the action stands; the
 * message says it was not recorded). */
static int finish(int fd, const rec_resolve_req *req, const char *decision, int rc,
                  const char *what, xac_err *err)
{
    char outcome[XAC_ERR_MSG_MAX + 32];
    if (rc == XAC_OK)
        snprintf(outcome, sizeof outcome, "%s", what);
    else if (strncmp(err->msg, "refused: ", 9) == 0)
        snprintf(outcome, sizeof outcome, "%s", err->msg);
    else
        snprintf(outcome, sizeof outcome, "failed: %s", err->msg);
    xac_err ae;
    xac_err_clear(&ae);
    int arc = audit_write(fd, req, decision, outcome, &ae);
    close(fd);
    if (arc != XAC_OK) {
        xac_loge("%s (outcome: %s)", ae.msg, outcome);
        if (rc == XAC_OK) {
            *err = ae;
            return xac_err_prefix(err, "%s, but", what);
        }
    }
    return rc;
}

/* ------------------------------------------------------------- resolve */

static bool journal_failed(const rec_ctx *ctx)
{
    journal_stats st;
    journal_get_stats(ctx->journal, &st);
    return st.failed;
}

/* The same decision rec_list makes (rec.c), taken again now. Without a
 * COMMIT record the last resources are asked; for a rollback (fence) they
 * are fenced, so that no commit of the gtrid can land there afterwards.
 * marker: where a commit marker was found; unknown: a last resource could not
 * be asked (why says why). */
static rec_decision decide(const rec_ctx *ctx, const char *res, const drv_indoubt *d, bool fence,
                           char marker[XAC_RESOURCE_MAX + 1], bool *unknown, xac_err *why)
{
    marker[0] = '\0';
    *unknown = false;
    if (!d->decoded || !xac_xid_is_ours_on(&d->xid, ctx->node_id, res))
        return REC_FOREIGN;
    if (ctx->is_live != NULL && ctx->is_live(ctx->live_arg, d->xid.gtrid))
        return REC_LIVE;
    if (journal_is_committed(ctx->journal, d->xid.gtrid))
        return REC_COMMIT;
    if (ctx->hold_undecided || journal_failed(ctx))
        return REC_HELD;
    drv_marker m;
    if (rec_marker_check(ctx, d->xid.gtrid, fence, &m, marker, why) != XAC_OK) {
        *unknown = true;
        return REC_HELD;
    }
    return m == DRV_MARKER_COMMITTED ? REC_COMMIT : REC_ROLLBACK;
}

/* Why the action needs --force, or NULL when it is allowed as it is. marker:
 * the last resource whose commit marker decided a REC_COMMIT; unknown: a last
 * resource could not be asked. */
static const char *refusal(const rec_resolve_req *req, rec_decision dec, const char *marker,
                           bool unknown, const xac_err *why, char *buf, size_t len)
{
    const char *act = req->commit ? "commit" : "roll back";
    if (unknown && !req->commit) {
        snprintf(buf, len,
                 "%s. The transaction may have committed there; retry when it answers, or roll "
                 "back anyway with --force",
                 why->msg);
        return buf;
    }
    if (dec == REC_COMMIT && !req->commit && marker[0] != '\0') {
        snprintf(buf, len,
                 "last resource %s has a commit marker for this gtrid: the transaction committed "
                 "there, and rolling this branch back breaks atomicity. Commit it instead, or "
                 "roll it back anyway with --force",
                 marker);
        return buf;
    }
    switch (dec) {
    case REC_FOREIGN:
        snprintf(buf, len,
                 "the branch is foreign (not this node's: another coordinator's or transaction "
                 "manager's); xac knows nothing of its outcome. Ask its owner, or %s it anyway "
                 "with --force",
                 act);
        return buf;
    case REC_LIVE:
        snprintf(buf, len,
                 "the transaction is still live in xacd, which will finish it; %s it anyway with "
                 "--force",
                 act);
        return buf;
    case REC_COMMIT:
        if (req->commit)
            return NULL;
        snprintf(buf, len,
                 "the journal has a COMMIT record for this gtrid: other branches may be committed "
                 "already, and rolling this one back breaks atomicity. Commit it instead, or roll "
                 "it back anyway with --force");
        return buf;
    case REC_ROLLBACK:
    case REC_HELD:
        if (!req->commit)
            return NULL;
        snprintf(buf, len,
                 "the journal has no COMMIT record for this gtrid (presumed abort: it did not "
                 "commit, and its other branches are or will be rolled back). Roll it back "
                 "instead, or commit it anyway with --force");
        return buf;
    }
    return NULL;
}

/* The action's XA code as a status: XAC_OK when the branch ended the way the
 * operator asked. */
static int act_result(const rec_resolve_req *req, int x, const xac_err *e, char *what, size_t len,
                      xac_err *err)
{
    const char *res = req->resource;
    bool done = req->commit ? (x == XA_OK || x == XA_HEURCOM)
                            : (x == XA_OK || XA_IS_RB(x) || x == XA_HEURRB);
    if (done) {
        snprintf(what, len, "%s%s", req->commit ? "committed" : "rolled back",
                 x == XA_HEURCOM || x == XA_HEURRB ? " (the database had already done so "
                                                     "heuristically)"
                                                   : "");
        return XAC_OK;
    }
    switch (x) {
    case XAER_NOTA:
        return xac_err_setr(err, XAC_ESTATE, res,
                            "the branch is no longer in doubt on %s (finished meanwhile by xacd's "
                            "recovery or someone else)",
                            res);
    case XAER_RMFAIL:
        return xac_err_setr(err, XAC_ERMFAIL, res, "lost the connection to %s: %s", res, e->msg);
    case XA_HEURCOM:
    case XA_HEURRB:
    case XA_HEURMIX:
    case XA_HEURHAZ:
        return xac_err_setr(err, XAC_ESQL, res,
                            "%s on %s reported a heuristic outcome (%s): the branch was not %s as "
                            "asked; check the database: %s",
                            req->commit ? "commit" : "rollback", res, drv_xa_name(x),
                            req->commit ? "committed" : "rolled back", e->msg);
    default:
        return xac_err_setr(err, XAC_ESQL, res, "%s on %s failed (%s): %s",
                            req->commit ? "commit" : "rollback", res, drv_xa_name(x), e->msg);
    }
}

int rec_resolve(const rec_ctx *ctx, const rec_resolve_req *req, char *msg, size_t msglen,
                xac_err *err)
{
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    if (ctx->journal == NULL)
        return xac_err_set(err, XAC_EINVAL, "resolve: no journal given: the decision is unknown");
    if (req->audit_path == NULL || req->audit_path[0] == '\0')
        return xac_err_set(err, XAC_EINVAL, "resolve: no audit log given");
    int fd = open(req->audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return xac_err_set(err, XAC_EIO,
                           "cannot open the audit log %s: %s; nothing was done (every manual "
                           "action must be recorded)",
                           req->audit_path, strerror(errno));

    const char *res = req->resource != NULL ? req->resource : "";
    const drv_conf *rc_conf = NULL;
    for (size_t i = 0; i < ctx->nresources; i++)
        if (strcmp(ctx->resources[i].name, res) == 0)
            rc_conf = &ctx->resources[i];
    if (rc_conf == NULL)
        return finish(fd, req, "-",
                      xac_err_setr(err, XAC_ERESOURCE, res, "unknown resource \"%.64s\"", res),
                      NULL, err);

    /* The recovery loop must not act on the branch at the same moment, or it
     * would report the operator's action as a heuristic outcome. */
    rec_resource_lock(res);
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int x = drv_open(rc_conf, &c, &e);
    if (x != XA_OK) {
        rec_resource_unlock(res);
        return finish(
            fd, req, "-",
            xac_err_setr(err, XAC_ERMFAIL, res, "resource %s is unreachable: %s", res, e.msg), NULL,
            err);
    }
    drv_indoubt *list = NULL;
    size_t nl = 0;
    x = drv_recover(c, &list, &nl, &e);
    if (x != XA_OK) {
        drv_close(c);
        rec_resource_unlock(res);
        return finish(fd, req, "-",
                      xac_err_setr(err, XAC_ERMFAIL, res,
                                   "listing the in-doubt branches of %s "
                                   "failed (%s): %s",
                                   res, drv_xa_name(x), e.msg),
                      NULL, err);
    }

    /* Find the branch: an XID as xacctl lists it, or an undecodable gid. */
    xac_xid want;
    xac_err pe;
    xac_err_clear(&pe);
    bool parsed = xac_xid_parse(req->xid, &want, &pe) == XAC_OK;
    const drv_indoubt *d = NULL;
    bool raw_match = false;
    for (size_t k = 0; k < nl && d == NULL; k++) {
        if (list[k].decoded && parsed && xac_xid_equal(&list[k].xid, &want))
            d = &list[k];
        else if (!list[k].decoded && strcmp(list[k].raw, req->xid) == 0)
            raw_match = true;
    }
    int rc = XAC_OK;
    const char *decision = "-";
    char why[768], what[256] = "";
    if (d == NULL) {
        if (raw_match)
            rc = xac_err_setr(
                err, XAC_ESTATE, res,
                "refused: the prepared transaction '%.200s' on %s is not an XA branch xac "
                "can address (its gid is not an encoded XID); finish it in the "
                "database: COMMIT PREPARED '%.200s' or ROLLBACK PREPARED '%.200s'",
                req->xid, res, req->xid, req->xid);
        else if (!parsed)
            rc = xac_err_setr(err, XAC_EINVAL, res, "%s", pe.msg);
        else
            rc = xac_err_setr(err, XAC_ESTATE, res,
                              "no branch %.300s is in doubt on resource %s (see xacctl list)",
                              req->xid, res);
        decision = raw_match ? "foreign" : "-";
    } else {
        char marker[XAC_RESOURCE_MAX + 1];
        bool unknown = false;
        xac_err mwhy;
        xac_err_clear(&mwhy);
        rec_decision dec = decide(ctx, res, d, !req->commit, marker, &unknown, &mwhy);
        decision = rec_decision_key(dec);
        /* A branch of ours named after another resource sharing this server. */
        for (size_t k = 0; dec == REC_FOREIGN && k < ctx->nresources && rc == XAC_OK; k++)
            if (strcmp(ctx->resources[k].name, res) != 0 &&
                xac_xid_is_ours_on(&d->xid, ctx->node_id, ctx->resources[k].name))
                rc = xac_err_setr(err, XAC_ESTATE, res,
                                  "this branch belongs to resource %s (its bqual), which shares "
                                  "the database server; resolve it with --resource %s",
                                  ctx->resources[k].name, ctx->resources[k].name);
        const char *no =
            rc == XAC_OK ? refusal(req, dec, marker, unknown, &mwhy, why, sizeof why) : NULL;
        if (no != NULL && !req->force) {
            rc = xac_err_setr(err, XAC_ESTATE, res, "refused: %s", no);
        } else if (rc == XAC_OK) {
            xac_err_clear(&e);
            x = req->commit ? drv_commit(c, &d->xid, false, &e) : drv_rollback(c, &d->xid, &e);
            rc = act_result(req, x, &e, what, sizeof what, err);
            if (rc == XAC_OK && no != NULL) {
                size_t n = strlen(what);
                snprintf(what + n, sizeof what - n, " (forced: journal decision %s)", decision);
            }
            if (rc == XAC_OK)
                xac_logw("manual %s of %s on resource %s by %s (%s): %s",
                         req->commit ? "commit" : "rollback", req->xid, res,
                         req->operator_name != NULL ? req->operator_name : "?",
                         req->online ? "online" : "offline", what);
            else
                xac_logw("manual %s of %s on resource %s by %s failed: %s",
                         req->commit ? "commit" : "rollback", req->xid, res,
                         req->operator_name != NULL ? req->operator_name : "?", err->msg);
        }
    }
    free(list);
    drv_close(c);
    rec_resource_unlock(res);
    if (rc == XAC_OK && msg != NULL)
        snprintf(msg, msglen, "%s", what);
    return finish(fd, req, decision, rc, what, err);
}
