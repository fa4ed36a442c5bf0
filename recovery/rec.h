/* The whole public face of recovery/: reconciling the resources' in-doubt
 * branches with the decision journal. xacd runs a pass at start-up; xacctl
 * lists and resolves branches with the same code. Presumed abort: a branch of
 * ours whose gtrid has a COMMIT record is committed; one without is rolled
 * back unless its transaction is still live in this process. Rollbacks are
 * never logged to the journal. Presumed abort needs a journal that knows every
 * decision: while the journal has failed (a COMMIT may have reached the disk
 * unconfirmed), or when the caller says decisions may be missing (a salvaged
 * journal), a branch without a COMMIT record is held, never rolled back. */
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
    /* Decisions may be missing from the journal (it was salvaged): hold
     * branches without a COMMIT record instead of rolling them back. */
    bool hold_undecided;
    /* Called (may be NULL) for each gtrid whose END record a pass wrote: it
     * committed, and recovery finished it. */
    void (*on_ended)(void *arg, const char *gtrid);
    void *ended_arg;
} rec_ctx;

/* What recovery knows and would do about one in-doubt branch. */
typedef enum rec_decision {
    REC_COMMIT = 0,   /* ours, COMMIT record: recovery commits it */
    REC_ROLLBACK = 1, /* ours, no decision: presumed abort, recovery rolls back */
    REC_LIVE = 2,     /* ours, transaction still running: left alone */
    REC_FOREIGN = 3,  /* not ours (another node or another TM): left alone */
    REC_HELD = 4      /* ours, no decision, but the journal may be missing it
                         (failed or salvaged): left prepared */
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
    size_t held;   /* REC_HELD: left prepared, no decision known */
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
 * when every resource was reachable and the journal has not failed). Right
 * before each rollback the journal is asked again (live, committed, failed).
 * Returns XAC_OK even when some actions failed; they are counted in the
 * report. Held branches are not failures: they wait for a restart with a
 * working journal, or for the operator. */
int rec_pass(const rec_ctx *ctx, rec_report *report, xac_err *err);

#endif
