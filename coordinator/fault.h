/* Crash points and journal I/O faults for tests. A crash point is a named step
 * of the protocol; when the configuration sets testing.fault_injection = true
 * and the environment variable XAC_CRASH_AT names that step, xacd kills itself
 * with SIGKILL there, so that tests can check what recovery makes of the state
 * left behind. XAC_CRASH_AT=name:N fires at the N-th time the point is reached
 * (N from 1). The journal's own writer steps are crash points too, named
 * "journal-" + the step (journal.h), and so are recovery's, named "rec-" +
 * the step. XAC_JOURNAL_FAULT=op[:N[:errno]][,...]
 * makes the journal's I/O operation op (write, sync, create, cut) fail with
 * errno (EIO by default) from its N-th call (default 1st) on. */
#ifndef XACD_FAULT_H
#define XACD_FAULT_H

#include <stdbool.h>

#include "journal.h"

/* The named points, in protocol order; docs/architecture.md lists them. */
#define FAULT_AFTER_START         "after-start"         /* first branch's XA START done */
#define FAULT_AFTER_EARLY_PREPARE "after-early-prepare" /* prepared with its EXEC */
#define FAULT_AFTER_FIRST_PREPARE "after-first-prepare" /* one branch voted yes */
#define FAULT_AFTER_PREPARE_ALL   "after-prepare-all"   /* every branch voted yes */
#define FAULT_BEFORE_DECISION     "before-decision"     /* all prepared, nothing logged */
#define FAULT_AFTER_DECISION      "after-decision"      /* decision durable, no phase two */
#define FAULT_AFTER_FIRST_COMMIT  "after-first-commit"  /* one branch committed */
#define FAULT_AFTER_COMMIT_ALL    "after-commit-all"    /* every branch committed */
#define FAULT_BEFORE_END          "before-end"          /* all committed, no END record */
/* Rolling back (a no vote, a client's ROLLBACK, a timeout): */
#define FAULT_BEFORE_ROLLBACK      "before-rollback"      /* nothing rolled back yet */
#define FAULT_AFTER_FIRST_ROLLBACK "after-first-rollback" /* one branch rolled back */
/* A transaction with a last resource (docs/sqlserver.md): */
#define FAULT_LRC_BEFORE_COMMIT                                                                    \
    "lrc-before-commit" /* XA branches prepared, last resource not                                 \
                           committed */
#define FAULT_LRC_AFTER_COMMIT                                                                     \
    "lrc-after-commit"                              /* last resource committed with its marker,    \
                                                       no COMMIT record yet */
#define FAULT_LRC_BEFORE_FORGET "lrc-before-forget" /* ENDs written, their markers not removed */
/* A transaction on one resource: */
#define FAULT_BEFORE_ONE_PHASE "before-one-phase" /* its branch still active */
#define FAULT_AFTER_ONE_PHASE  "after-one-phase"  /* committed, the client not told */
/* The journal writer's steps (journal_opts.step), prefixed. */
#define FAULT_JOURNAL_PREFIX "journal-"
/* Recovery's steps (its step hook: fault_rec_step), per branch or record. */
#define FAULT_REC_PREFIX          "rec-"
#define FAULT_REC_BEFORE_COMMIT   "rec-before-commit"   /* a branch with a COMMIT record */
#define FAULT_REC_AFTER_COMMIT    "rec-after-commit"    /* ... committed */
#define FAULT_REC_BEFORE_ROLLBACK "rec-before-rollback" /* a branch without one */
#define FAULT_REC_AFTER_ROLLBACK  "rec-after-rollback"  /* ... rolled back */
#define FAULT_REC_BEFORE_END      "rec-before-end"      /* all done, END not written */
#define FAULT_REC_AFTER_FENCE     "rec-after-fence"     /* last resources fenced, not rolled back */
#define FAULT_REC_AFTER_ADOPT     "rec-after-adopt"     /* a marker's COMMIT record written */

/* Reads XAC_CRASH_AT and XAC_JOURNAL_FAULT once; a no-op unless enabled.
 * Logs what it armed, and warns about a spec it cannot use. */
void fault_arm(bool enabled);
/* Kills the process when name is the armed point (and its count is reached). */
void fault_point(const char *name);
/* All known crash point names, NULL-terminated, for --help and validation. */
const char *const *fault_names(void);

/* Hooks for journal_opts (io_fault, step); ctx is unused. The io hook returns
 * the armed errno for op from its N-th call on, else 0. The step hook is
 * fault_point("journal-" + name). */
int fault_journal_io(void *ctx, journal_io op);
void fault_journal_step(void *ctx, const char *name);
/* Hook for recovery's step callback; ctx is unused. name is the full point
 * name ("rec-before-commit"); a name without the "rec-" prefix gets it, so
 * that recovery may name its steps either way. */
void fault_rec_step(void *ctx, const char *name);

#endif
