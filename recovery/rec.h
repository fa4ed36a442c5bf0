/* The whole public face of recovery/: reconciling the resources' in-doubt
 * branches with the decision journal. xacd runs a pass at start-up; xacctl
 * lists and resolves branches with the same code. Presumed abort: a branch of
 * ours whose gtrid has a COMMIT record is committed; one without is rolled
 * back unless its transaction is still live in this process. Rollbacks are
 * never logged to the journal. */
#ifndef XAC_REC_H
#define XAC_REC_H

#include <stdbool.h>
#include <stddef.h>

#include "drv.h"
#include "journal.h"
#include "xac_common.h"

/* Is this gtrid live in the running coordinator (do not touch it)? */
typedef bool (*rec_live_fn)(void *arg, const char *gtrid);

typedef struct rec_ctx {
    const char *node_id;
    journal *journal;
    const drv_conf *resources; /* array of nresources */
    size_t nresources;
    rec_live_fn is_live; /* may be NULL: nothing is live */
    void *live_arg;
} rec_ctx;

/* What recovery knows and would do about one in-doubt branch. */
typedef enum rec_decision {
    REC_COMMIT = 0,   /* ours, COMMIT record: recovery commits it */
    REC_ROLLBACK = 1, /* ours, no decision: presumed abort, recovery rolls back */
    REC_LIVE = 2,     /* ours, transaction still running: left alone */
    REC_FOREIGN = 3   /* not ours (another node or another TM): left alone */
} rec_decision;

typedef struct rec_branch {
    char resource[XAC_RESOURCE_MAX + 1];
    drv_indoubt branch;
    rec_decision decision;
} rec_branch;

typedef struct rec_report {
    size_t committed;
    size_t rolled_back;
    size_t live;
    size_t foreign;
    size_t failed; /* an action that returned an error; retried next pass */
    size_t resources_down;
    size_t ended; /* END records written */
} rec_report;

const char *rec_decision_name(rec_decision d);

/* Lists every in-doubt branch on every reachable resource with its decision.
 * An unreachable resource is logged, counted in *down and skipped. */
int rec_list(const rec_ctx *ctx, rec_branch **out, size_t *n, size_t *down, xac_err *err);

/* One recovery pass: commits and rolls back what rec_list decides, logging each
 * action with gtrid, resource and outcome, then writes END for committed
 * transactions none of whose branches is left in doubt on any resource (only
 * when every resource was reachable). Returns XAC_OK even when some actions
 * failed; they are counted in the report. */
int rec_pass(const rec_ctx *ctx, rec_report *report, xac_err *err);

#endif
