/* The in-doubt list and one recovery pass as row sets, the form in which
 * both xacctl offline and xacd's admin socket show them (docs/protocol.md,
 * ADMIN_LIST and ADMIN_RECOVER). An unreachable resource is a row too, so
 * that an operator never reads "nothing in doubt" or "nothing to do" when
 * recovery could not look. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec.h"

typedef struct collect {
    xac_rows *rows;
    int rc;
    xac_err err;
} collect;

static void on_action(void *arg, const char *resource, const xac_xid *xid, const char *action,
                      const char *outcome)
{
    collect *c = arg;
    char x[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, x);
    const char *cells[4] = {resource, x, action, outcome};
    if (c->rc == XAC_OK)
        c->rc = xac_rows_add(c->rows, cells, NULL, &c->err);
}

int rec_pass_rows(const rec_ctx *base, xac_rows *rows, rec_report *rep, xac_err *err)
{
    static const char *const cols[] = {"resource", "xid", "action", "outcome"};
    memset(rep, 0, sizeof *rep);
    int rc = xac_rows_set_cols(rows, 4, cols, err);
    if (rc != XAC_OK)
        return rc;
    collect c = {.rows = rows, .rc = XAC_OK};
    xac_err_clear(&c.err);
    rec_ctx ctx = *base;
    ctx.on_action = on_action;
    ctx.action_arg = &c;
    rc = rec_pass(&ctx, rep, err);
    if (rc != XAC_OK)
        return rc;
    if (c.rc != XAC_OK)
        return xac_err_set(err, c.rc, "collecting the actions of the recovery pass: %s", c.err.msg);
    if (rep->resources_down > 0) {
        char n[64];
        snprintf(n, sizeof n, "%zu resource(s) unreachable", rep->resources_down);
        const char *cells[4] = {"-", "-", "skip", rep->down_error[0] ? rep->down_error : n};
        rc = xac_rows_add(rows, cells, NULL, err);
    }
    return rc;
}

int rec_list_rows(const rec_ctx *ctx, const char *where_logged, xac_rows *rows, xac_err *err)
{
    static const char *const cols[] = {"resource",  "xid",   "gtrid",    "bqual",
                                       "format_id", "age_s", "decision", "action"};
    rec_branch *b = NULL;
    size_t n = 0, down = 0;
    int rc = rec_list(ctx, &b, &n, &down, err);
    if (rc != XAC_OK)
        return rc;
    rc = xac_rows_set_cols(rows, 8, cols, err);
    for (size_t i = 0; i < n && rc == XAC_OK; i++) {
        const drv_indoubt *d = &b[i].branch;
        char xid[XAC_XID_TEXT_MAX], fid[16], age[24], action[64];
        /* bqual and format_id stay NULL for a PostgreSQL gid that is not an
         * XID; gtrid and bqual are bytes, with their own lengths. */
        const char *cells[8] = {b[i].resource};
        size_t lens[8] = {0};
        if (d->decoded) {
            xac_xid_format(&d->xid, xid);
            snprintf(fid, sizeof fid, "%ld", (long)d->xid.format_id);
            cells[1] = xid;
            cells[2] = d->xid.gtrid;
            lens[2] = d->xid.gtrid_len;
            cells[3] = d->xid.bqual;
            lens[3] = d->xid.bqual_len;
            cells[4] = fid;
        } else {
            cells[1] = cells[2] = d->raw;
            lens[2] = strlen(d->raw);
        }
        snprintf(age, sizeof age, "%lld", (long long)b[i].age_s);
        cells[5] = b[i].age_s >= 0 ? age : NULL;
        cells[6] = rec_decision_key(b[i].decision);
        rec_branch_action(&b[i], action, sizeof action);
        cells[7] = action;
        for (int c = 0; c < 8; c++)
            if (c != 2 && c != 3)
                lens[c] = cells[c] != NULL ? strlen(cells[c]) : 0;
        rc = xac_rows_add(rows, cells, lens, err);
    }
    free(b);
    if (rc == XAC_OK && down > 0) {
        char act[128];
        snprintf(act, sizeof act, "not listed: %zu resource(s) unreachable (see %s)", down,
                 where_logged);
        const char *cells[8] = {"-", "-", NULL, NULL, NULL, NULL, "unreachable", act};
        rc = xac_rows_add(rows, cells, NULL, err);
    }
    return rc;
}
