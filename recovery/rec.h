/* The whole public face of recovery/: reconciling the resources' in-doubt
 * branches with the decision journal. xacd runs passes at start-up, then
 * periodically and on demand, one resource at a time per thread; xacctl
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
#include <stdint.h>

#include "drv.h"
#include "journal.h"
#include "xac_common.h"

/* Is this gtrid live in the running coordinator (do not touch it)? */
typedef bool (*rec_live_fn)(void *arg, const char *gtrid);
/* Called at the named steps below, right before or after the action; xacd's
 * crash points hang here, so recovery/ needs nothing from coordinator/. */
typedef void (*rec_step_fn)(void *arg, const char *step);
/* A heuristic or unexpected outcome (already logged): text is one line naming
 * the gtrid, the resource and what happened. */
typedef void (*rec_heuristic_fn)(void *arg, const char *resource, const char *gtrid,
                                 const char *text);
/* One action a pass took: action "commit" or "roll back", outcome a short text
 * ("ok", "already gone", "failed: ...", ...). */
typedef void (*rec_action_fn)(void *arg, const char *resource, const xac_xid *xid,
                              const char *action, const char *outcome);

#define REC_STEP_BEFORE_COMMIT   "rec-before-commit"
#define REC_STEP_AFTER_COMMIT    "rec-after-commit"
#define REC_STEP_BEFORE_ROLLBACK "rec-before-rollback"
#define REC_STEP_AFTER_ROLLBACK  "rec-after-rollback"
#define REC_STEP_BEFORE_END      "rec-before-end"
/* Last resources (marker.c): */
#define REC_STEP_AFTER_FENCE "rec-after-fence" /* abort row in place, branch not rolled back */
#define REC_STEP_AFTER_ADOPT                                                                       \
    "rec-after-adopt" /* commit marker's COMMIT record written, branch                             \
                         not committed */

/* What recovery remembers between passes: when it first saw each undecided
 * branch (its age where the database does not tell), and which resources
 * were found clean of each committed transaction (for its END record).
 * Thread-safe: passes over different resources may run at once. */
typedef struct rec_state rec_state;
int rec_state_create(rec_state **out, xac_err *err);
void rec_state_destroy(rec_state *s);

typedef struct rec_ctx {
    const char *node_id;
    journal *journal;
    const drv_conf *resources; /* array of nresources */
    size_t nresources;
    rec_live_fn is_live; /* may be NULL: nothing is live */
    void *live_arg;
    /* May be NULL. Did this process itself finish gtrid (commit or roll it
     * back) since it started? A branch recovery listed that is gone when it
     * acts was then finished by the engine, which is no heuristic. Called
     * with live_arg. */
    rec_live_fn finished_here;
    /* Decisions may be missing from the journal (it was salvaged): hold
     * branches without a COMMIT record instead of rolling them back. */
    bool hold_undecided;
    /* Called (may be NULL) for each gtrid whose END record a pass wrote: it
     * committed, and recovery finished it. */
    void (*on_ended)(void *arg, const char *gtrid);
    void *ended_arg;
    /* The boot of the running coordinator (the middle part of its gtrids), 0
     * when none runs (xacctl offline): every gtrid of ours is then from an
     * earlier boot. An undecided branch of an earlier boot is rolled back at
     * once; one of this boot only once it is grace_ms old (0: at once). Its
     * age comes from the database (prepared_at) or else from when state first
     * saw it (without state, never old enough). */
    uint64_t boot;
    uint32_t grace_ms;
    rec_state *state; /* may be NULL: each call stands alone */
    rec_step_fn step; /* may be NULL */
    void *step_arg;
    rec_heuristic_fn on_heuristic; /* may be NULL: logged only */
    void *heuristic_arg;
    rec_action_fn on_action; /* may be NULL */
    void *action_arg;
} rec_ctx;

/* What recovery knows and would do about one in-doubt branch. */
typedef enum rec_decision {
    REC_COMMIT = 0,   /* ours, COMMIT record: recovery commits it */
    REC_ROLLBACK = 1, /* ours, no decision: presumed abort, recovery rolls back
                         (after the grace period when grace_left_ms > 0) */
    REC_LIVE = 2,     /* ours, transaction still running: left alone */
    REC_FOREIGN = 3,  /* not ours (another node or another TM): left alone */
    REC_HELD = 4      /* ours, no decision, but the journal may be missing it
                         (failed or salvaged): left prepared */
} rec_decision;

typedef struct rec_branch {
    char resource[XAC_RESOURCE_MAX + 1];
    drv_indoubt branch;
    rec_decision decision;
    int64_t age_s;          /* -1: unknown (no prepared_at, not seen before) */
    uint32_t grace_left_ms; /* REC_ROLLBACK: how long it still waits; 0: now */
    bool salvaged;          /* REC_HELD: because the journal was salvaged
                               (else because it failed) */
    bool marker_unknown;    /* REC_HELD: a last resource could not be asked */
    /* REC_COMMIT without a COMMIT record: the last resource whose commit
     * marker decided it ("" otherwise). */
    char marker[XAC_RESOURCE_MAX + 1];
} rec_branch;

typedef struct rec_report {
    size_t committed;
    size_t rolled_back;
    size_t live;
    size_t foreign;
    size_t held;       /* REC_HELD: left prepared, no decision known */
    size_t waiting;    /* undecided, of this boot, younger than the grace period */
    uint32_t wait_ms;  /* the shortest grace period left of the waiting ones */
    size_t failed;     /* an action that returned an error; retried next pass */
    size_t heuristics; /* heuristic or unexpected outcomes (on_heuristic) */
    size_t listed;     /* in-doubt branches listed on the reachable resources */
    size_t resources_down;
    size_t ended;                     /* END records written */
    char down_error[XAC_ERR_MSG_MAX]; /* why the last unreachable resource was */
} rec_report;

const char *rec_decision_name(rec_decision d);

/* Lists every in-doubt branch on every reachable resource with its decision.
 * An unreachable resource is logged, counted in *down and skipped. */
int rec_list(const rec_ctx *ctx, rec_branch **out, size_t *n, size_t *down, xac_err *err);

/* One recovery pass over resource ri alone: lists its branches on a fresh
 * connection, commits those with a COMMIT record and rolls back the undecided
 * ones whose time has come (see rec_ctx.boot), logging each action with gtrid,
 * resource and outcome. The resource is then noted clean of every committed,
 * not live transaction that has no branch left on it; once every resource
 * named in a COMMIT record is clean, its END record is written. Passes over
 * other resources never wait for this one, except that two passes over the
 * same resource in one process run one after the other. Right before each
 * rollback the journal is asked again (live, committed, failed). Returns
 * XAC_OK even when the resource is down or actions failed (counted in r). */
int rec_pass_resource(const rec_ctx *ctx, size_t ri, rec_report *r, xac_err *err);

/* The lock that keeps two passes over one resource (by name) in one process
 * apart; a manual resolution takes it too, so that a pass never mistakes the
 * operator's action for a heuristic outcome. Not recursive. */
void rec_resource_lock(const char *resource);
void rec_resource_unlock(const char *resource);

/* rec_pass_resource on every resource in turn, the reports added up. Held
 * branches are not failures: they wait for a restart with a working journal,
 * or for the operator. */
int rec_pass(const rec_ctx *ctx, rec_report *report, xac_err *err);

/* How recovery judges the answer to its commit (commit true) or rollback of a
 * branch it listed. Heuristic outcomes are logged and reported, never
 * swallowed. */
typedef enum rec_verdict {
    REC_V_DONE = 0,           /* finished as asked */
    REC_V_DONE_HEURISTIC = 1, /* nothing left to do, but not by our hand: the
                                 RM decided on its own (XA_HEUR*, an XA_RB* at
                                 commit) or the branch was already gone */
    REC_V_RETRY = 2,          /* transient (resource down, XA_RETRY): next pass */
    REC_V_FAILED = 3          /* refused for another reason: reported and
                                 retried */
} rec_verdict;
rec_verdict rec_classify(bool commit, int xa_rc, bool conn_broken);

/* ------------------------------------------------------------------------
 * Last resources (recovery/marker.c; docs/sqlserver.md). A transaction with a
 * last resource is decided by that resource's local commit, which inserts a
 * commit marker for the gtrid; the COMMIT record follows it. So a branch of
 * ours without a COMMIT record is rolled back only after every last resource
 * of the configuration has been asked for the gtrid's marker. */

/* Asks every last resource in ctx->resources about gtrid. *out: COMMITTED
 * when one holds a commit marker (where gets its name), else ABORTED when
 * fence and every one now holds an abort row (a commit still in flight can
 * no longer land), else NONE. XAC_ERMFAIL when a last resource could not be
 * asked and none had a commit marker: nothing may be decided. XAC_OK and NONE
 * at once when there are no last resources. */
int rec_marker_check(const rec_ctx *ctx, const char *gtrid, bool fence, drv_marker *out,
                     char where[XAC_RESOURCE_MAX + 1], xac_err *err);
/* Writes the COMMIT record of gtrid, found committed by where's marker,
 * naming every configured resource (its branches are not known), so that the
 * journal holds the decision from here on. */
int rec_marker_adopt(const rec_ctx *ctx, const char *gtrid, const char *where, xac_err *err);
/* Housekeeping of last resource ri's marker table: deletes the markers of the
 * ended gtrids and abort rows older than a day; with adopt, first writes a
 * COMMIT record for every commit marker of this node whose gtrid is neither
 * live nor in the journal (a crash between the marker and the record, or
 * between the END and the marker's removal), *adopted counting them. */
int rec_marker_sweep(const rec_ctx *ctx, size_t ri, const char (*ended)[XAC_GTRID_MAX + 1],
                     size_t nended, bool adopt, size_t *adopted, xac_err *err);
/* Whether ctx has a last resource. */
bool rec_has_last_resource(const rec_ctx *ctx);

/* ------------------------------------------------------------------------
 * Manual resolution (recovery/resolve.c): xacctl's commit and rollback, run by
 * xacd for its admin socket and by xacctl itself with xacd stopped, so that
 * both follow the same rules and write the same audit log. */

/* The decision as one word, for tables and scripts: "committed", "none",
 * "live", "foreign", "held". */
const char *rec_decision_key(rec_decision d);
/* What recovery will do with b, for `xacctl list`: "commit", "roll back",
 * "roll back after grace (Ns)", "leave (live)", "leave (foreign)",
 * "hold (journal failed)", "hold (journal salvaged)". */
void rec_branch_action(const rec_branch *b, char *out, size_t len);

typedef struct rec_resolve_req {
    const char *resource;      /* where the branch is in doubt */
    const char *xid;           /* xac_xid_format text, or a PostgreSQL gid as listed */
    bool commit;               /* commit it; false: roll it back */
    bool force;                /* override a refusal (see rec_resolve) */
    const char *operator_name; /* who, for the audit log */
    bool online;               /* run by xacd (true) or by xacctl with xacd stopped */
    const char *audit_path;    /* the audit log, appended to */
} rec_resolve_req;

/* Commits or rolls back one prepared branch by hand. Refused (XAC_ESTATE, the
 * reason in err) unless req->force: rolling back a branch whose gtrid has a
 * COMMIT record, committing one that has none, either action on a foreign
 * branch (another node's or another transaction manager's) or on one of a
 * transaction still live in xacd. Always refused: a branch that is not in
 * doubt on the resource, a branch of ours filed under another resource, a
 * PostgreSQL gid that is not an XID (the message says what SQL to run). Other
 * errors: XAC_ERESOURCE unknown resource, XAC_ERMFAIL resource unreachable,
 * XAC_ESQL the database refused or reported a heuristic outcome, XAC_EIO the
 * audit log cannot be written (then nothing is done). Every call, refusals
 * and failures included, appends one line to the audit log (fsync'ed): time,
 * operator, online/offline, action, resource, xid, the journal's decision,
 * force, outcome. On XAC_OK, msg (may be NULL) says what was done. */
int rec_resolve(const rec_ctx *ctx, const rec_resolve_req *req, char *msg, size_t msglen,
                xac_err *err);

/* rec_pass, with every action it took as a row of rows (columns resource,
 * xid, action, outcome; rows must be initialised and empty), plus a row
 * (-, -, skip, why) when resources were unreachable. ctx's own on_action is
 * not called. */
int rec_pass_rows(const rec_ctx *ctx, xac_rows *rows, rec_report *rep, xac_err *err);
/* rec_list as rows (columns resource, xid, gtrid, bqual, format_id, age_s,
 * decision, action), plus a row (-, -, NULL, NULL, NULL, NULL, unreachable,
 * why) when resources could not be listed; where_logged says where their
 * errors went ("xacd's log"). */
int rec_list_rows(const rec_ctx *ctx, const char *where_logged, xac_rows *rows, xac_err *err);

#endif
