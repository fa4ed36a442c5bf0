/* Crash points for tests. A crash point is a named step of the protocol; when
 * the configuration sets testing.fault_injection = true and the environment
 * variable XAC_CRASH_AT names that step, xacd kills itself with SIGKILL there,
 * so that tests can check what recovery makes of the state left behind.
 * XAC_CRASH_AT=name:N fires at the N-th time the point is reached (N from 1). */
#ifndef XACD_FAULT_H
#define XACD_FAULT_H

#include <stdbool.h>

/* The named points, in protocol order; docs/architecture.md lists them. */
#define FAULT_AFTER_FIRST_PREPARE "after-first-prepare" /* one branch voted yes */
#define FAULT_BEFORE_DECISION     "before-decision"     /* all prepared, nothing logged */
#define FAULT_AFTER_DECISION      "after-decision"      /* decision durable, no phase two */
#define FAULT_AFTER_FIRST_COMMIT  "after-first-commit"  /* one branch committed */
#define FAULT_BEFORE_END          "before-end"          /* all committed, no END record */

/* Reads XAC_CRASH_AT once; a no-op unless enabled. Logs that it is armed. */
void fault_arm(bool enabled);
/* Kills the process when name is the armed point (and its count is reached). */
void fault_point(const char *name);
/* All known names, NULL-terminated, for --help and validation. */
const char *const *fault_names(void);

#endif
