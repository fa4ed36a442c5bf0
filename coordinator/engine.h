/* The 2PC engine: the transaction table and the protocol of design.md
 * (presumed abort). It owns the connection pools and the worker threads that
 * run phase one and phase two in parallel. The session layer calls it; it
 * never sees the wire. */
#ifndef XACD_ENGINE_H
#define XACD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "drv.h"
#include "journal.h"
#include "rec.h"
#include "xac_common.h"

typedef struct engine engine;
typedef struct txn txn; /* a live global transaction, owned by one session */

/* cfg and j must outlive the engine. Creates one pool per resource (no
 * connection is opened yet) and starts the workers and the timeout reaper. */
int engine_create(const xacd_config *cfg, journal *j, engine **out, xac_err *err);
void engine_destroy(engine *e); /* rolls back whatever is still live */

int engine_begin(engine *e, const char *client, uint32_t timeout_ms, txn **out, xac_err *err);
const char *engine_gtrid(const txn *t);

/* Runs sql on the resource inside t, opening the branch (XA START) on a
 * pooled connection pinned to t on first use. On an SQL error t becomes
 * rollback-only and the error is returned (code XAC_ESQL, resource set). */
int engine_exec(engine *e, txn *t, const char *resource, const char *sql, size_t sql_len,
                const xac_value *params, size_t nparams, xac_rows *rows, xac_err *err);

/* What the client has already sent behind an EXEC: a COMMIT of t (well
 * formed, so it will be acted on), with only EXECs between. */
typedef struct engine_ahead {
    bool last_on_resource;    /* none of those EXECs names this EXEC's resource */
    unsigned other_resources; /* the distinct resources they name, this one aside */
} engine_ahead;

/* engine_exec, told what follows. When this statement is the last on its
 * resource the driver may fold the commit's work for that branch into it:
 * when it opens t's only branch, the statement and the one-phase commit
 * (drv_exec_one_phase), whose outcome, already final, the following
 * engine_commit returns; when t has or will have other branches, the
 * statement, XA END and XA PREPARE (drv_exec_prepare), a vote engine_commit
 * then counts. The statement's answer is returned here either way. */
int engine_exec_ahead(engine *e, txn *t, const char *resource, const char *sql, size_t sql_len,
                      const xac_value *params, size_t nparams, const engine_ahead *ahead,
                      xac_rows *rows, xac_err *err);

/* Commits t and frees it. XAC_OK: committed. XAC_EROLLBACK: every branch was
 * rolled back; err->resource and err->msg say which resource refused and why.
 * XAC_EJOURNAL: the outcome is unknown; the journal could not tell whether the
 * decision reached the disk, the branches stay prepared, and the gtrid is held
 * (live for recovery, PREPARING for STATUS) until a restart's replay settles
 * it. XAC_ERMFAIL: a one-phase commit whose outcome the database holds.
 * The return never precedes the durability of a commit decision. */
int engine_commit(engine *e, txn *t, xac_err *err);
/* The same, but a committed multi-resource transaction's END record is left
 * to the caller: defer_end[XAC_GTRID_MAX + 1] gets its gtrid (else ""), and
 * the caller passes it to engine_end once the client has its reply. Until
 * the END, the COMMIT record keeps the outcome known across a crash of xacd,
 * so a client whose reply was lost can still learn it with STATUS. */
int engine_commit_ex(engine *e, txn *t, char *defer_end, xac_err *err);
/* Writes the END record of a committed transaction whose branches are done. */
void engine_end(engine *e, const char *gtrid);
/* Rolls t back and frees it. Always ends with t freed. */
int engine_rollback(engine *e, txn *t, xac_err *err);

/* XAC_STATE_* of a gtrid: live, held (PREPARING), recently finished, or
 * committed in the journal. */
int engine_status(engine *e, const char *gtrid);
/* For recovery: is gtrid live (or held) in this process? */
bool engine_is_live(engine *e, const char *gtrid);
/* Recovery finished gtrid (committed, END written): STATUS reports COMMITTED
 * for it from now on, as for a transaction this process committed. */
void engine_recovered(engine *e, const char *gtrid);
/* The journal was salvaged and may lack decisions: from now on the engine's
 * recovery passes hold branches without a COMMIT record (rec_ctx). */
void engine_hold_undecided(engine *e);

/* The recovery context the engine's own passes use (its boot, grace period,
 * memory across passes, crash points, heuristic reporting), for the admin
 * socket's listings and passes, so that they judge branches as the loop does.
 * The caller may set on_action. */
void engine_rec_ctx(engine *e, rec_ctx *ctx);

/* Facts for status (xacctl status, the admin socket). */
typedef struct engine_health {
    size_t live;                     /* transactions in flight */
    size_t held;                     /* in doubt after a journal failure */
    uint64_t committed, rolled_back; /* since start */
    uint64_t heuristics;             /* heuristic/unexpected outcomes since start */
    uint64_t recovery_passes;        /* per-resource passes, all resources together */
    uint64_t last_pass_unix;         /* 0 = none yet */
    size_t indoubt;                  /* branches found in doubt by the last passes */
} engine_health;
void engine_get_health(engine *e, engine_health *h);

typedef struct engine_resource_health {
    char name[XAC_RESOURCE_MAX + 1];
    bool up; /* last contact worked */
    uint64_t last_ok_unix, last_fail_unix;
    unsigned retry_ms; /* current backoff, 0 when up */
    char last_error[XAC_ERR_MSG_MAX];
} engine_resource_health;
/* Fills at most cap entries; returns the count of resources. */
size_t engine_get_resources(engine *e, engine_resource_health *out, size_t cap);
/* Newest first, at most cap; each a one-line text with time, gtrid, resource,
 * what happened. Returns how many were filled. */
size_t engine_get_heuristics(engine *e, char (*out)[XAC_ERR_MSG_MAX], size_t cap);

#endif
