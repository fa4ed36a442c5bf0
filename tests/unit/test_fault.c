/* Crash points and journal I/O faults (coordinator/fault.c). Each crash case
 * runs in a forked child, which must die of SIGKILL exactly at the armed point
 * and hit, and live otherwise. The journal's and recovery's steps reach the
 * same points through their step hooks. I/O faults run in this process: the
 * hook must return the armed errno from the armed call on, and 0 for
 * everything else. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cu.h"
#include "fault.h"

/* How a child reaches a point: fault_point itself, or the journal's or
 * recovery's step hook with the step's own name. */
enum via { VIA_POINT, VIA_JOURNAL, VIA_REC };

/* Runs the scenario in a child: arm with spec and enabled, then reach point
 * `name` `times` times through `how`. Returns the child's wait status. */
static int run_child_how(const char *spec, bool enabled, const char *name, int times, enum via how)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        if (spec != NULL)
            setenv("XAC_CRASH_AT", spec, 1);
        else
            unsetenv("XAC_CRASH_AT");
        unsetenv("XAC_JOURNAL_FAULT");
        fault_arm(enabled);
        for (int i = 0; i < times; i++) {
            if (how == VIA_JOURNAL)
                fault_journal_step(NULL, name);
            else if (how == VIA_REC)
                fault_rec_step(NULL, name);
            else
                fault_point(name);
        }
        _exit(7);
    }
    int st = 0;
    CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
    return st;
}

static int run_child_via(const char *spec, bool enabled, const char *name, int times,
                         bool journal_step)
{
    return run_child_how(spec, enabled, name, times, journal_step ? VIA_JOURNAL : VIA_POINT);
}

static int run_child_rec(const char *spec, bool enabled, const char *name, int times)
{
    return run_child_how(spec, enabled, name, times, VIA_REC);
}

static int run_child(const char *spec, bool enabled, const char *name, int times)
{
    return run_child_how(spec, enabled, name, times, VIA_POINT);
}

static bool killed(int st)
{
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static bool lived(int st)
{
    return WIFEXITED(st) && WEXITSTATUS(st) == 7;
}

static void test_fires_at_point(void)
{
    CU_ASSERT_TRUE(killed(run_child("before-decision", true, FAULT_BEFORE_DECISION, 1)));
    CU_ASSERT_TRUE(killed(run_child("after-first-commit", true, FAULT_AFTER_FIRST_COMMIT, 3)));
}

static void test_other_point_does_not_fire(void)
{
    CU_ASSERT_TRUE(lived(run_child("before-decision", true, FAULT_AFTER_DECISION, 5)));
}

static void test_disabled_never_fires(void)
{
    CU_ASSERT_TRUE(lived(run_child("before-decision", false, FAULT_BEFORE_DECISION, 5)));
    CU_ASSERT_TRUE(lived(run_child(NULL, true, FAULT_BEFORE_DECISION, 5)));
}

static void test_count(void)
{
    /* name:3 fires at the third time, not before. */
    CU_ASSERT_TRUE(lived(run_child("before-end:3", true, FAULT_BEFORE_END, 2)));
    CU_ASSERT_TRUE(killed(run_child("before-end:3", true, FAULT_BEFORE_END, 3)));
}

static void test_bad_specs(void)
{
    CU_ASSERT_TRUE(lived(run_child("no-such-point", true, FAULT_BEFORE_END, 3)));
    CU_ASSERT_TRUE(lived(run_child("before-end:0", true, FAULT_BEFORE_END, 3)));
    CU_ASSERT_TRUE(lived(run_child("before-end:x", true, FAULT_BEFORE_END, 3)));
}

/* The list is what --list-crash-points prints and what test_crash iterates
 * over: every point once, in protocol order, every engine point named by its
 * macro, and every journal step of journal.h with its prefix. */
static void test_names(void)
{
    static const char *const want[] = {
        FAULT_AFTER_START,         FAULT_AFTER_EARLY_PREPARE,  FAULT_AFTER_FIRST_PREPARE,
        FAULT_AFTER_PREPARE_ALL,   FAULT_BEFORE_DECISION,      FAULT_AFTER_DECISION,
        FAULT_AFTER_FIRST_COMMIT,  FAULT_AFTER_COMMIT_ALL,     FAULT_BEFORE_END,
        FAULT_BEFORE_ROLLBACK,     FAULT_AFTER_FIRST_ROLLBACK, FAULT_LRC_BEFORE_COMMIT,
        FAULT_LRC_AFTER_COMMIT,    FAULT_LRC_BEFORE_FORGET,    FAULT_BEFORE_ONE_PHASE,
        FAULT_AFTER_ONE_PHASE,     "journal-batch-written",    "journal-batch-synced",
        "journal-segment-created", "journal-segment-switched", "journal-carried",
        "journal-segment-deleted", "rec-before-commit",        "rec-after-commit",
        "rec-before-rollback",     "rec-after-rollback",       "rec-before-end",
        "rec-after-fence",         "rec-after-adopt"};
    const size_t nwant = sizeof want / sizeof want[0];
    const char *const *n = fault_names();
    size_t k = 0;
    while (n[k] != NULL)
        k++;
    CU_ASSERT_EQUAL(k, nwant);
    for (size_t i = 0; i < k && i < nwant; i++)
        CU_ASSERT_STRING_EQUAL(n[i], want[i]);
    for (size_t i = 0; i < k; i++)
        for (size_t m = i + 1; m < k; m++)
            CU_ASSERT_STRING_NOT_EQUAL(n[i], n[m]);
}

/* Every listed name is a point that fires, and only under its own name. */
static void test_every_name_fires(void)
{
    for (const char *const *n = fault_names(); *n != NULL; n++) {
        CU_ASSERT_TRUE(killed(run_child(*n, true, *n, 1)));
        CU_ASSERT_TRUE(lived(run_child(*n, false, *n, 2)));
        const char *other = n[1] != NULL ? n[1] : fault_names()[0];
        CU_ASSERT_TRUE(lived(run_child(*n, true, other, 2)));
    }
}

/* journal.h's step names, as the writer passes them to the hook. */
static void test_journal_steps(void)
{
    static const char *const steps[] = {"batch-written",    "batch-synced", "segment-created",
                                        "segment-switched", "carried",      "segment-deleted"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "journal-%s", steps[i]);
        CU_ASSERT_TRUE(killed(run_child_via(spec, true, steps[i], 1, true)));
        /* The unprefixed name is not a crash point of the engine's. */
        CU_ASSERT_TRUE(lived(run_child_via(steps[i], true, steps[i], 3, true)));
        CU_ASSERT_TRUE(lived(run_child_via(spec, false, steps[i], 3, true)));
    }
    CU_ASSERT_TRUE(lived(run_child_via("journal-batch-synced:3", true, "batch-synced", 2, true)));
    CU_ASSERT_TRUE(killed(run_child_via("journal-batch-synced:3", true, "batch-synced", 3, true)));
    CU_ASSERT_TRUE(lived(run_child_via("journal-batch-synced", true, "batch-written", 4, true)));
}

/* Recovery's step hook: the full name and the step without "rec-" reach the
 * same point; a journal step of the same name does not. */
static void test_rec_steps(void)
{
    static const char *const steps[] = {"before-commit", "after-commit", "before-rollback",
                                        "after-rollback", "before-end"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char full[64];
        snprintf(full, sizeof full, "rec-%s", steps[i]);
        CU_ASSERT_TRUE(killed(run_child_rec(full, true, full, 1)));
        CU_ASSERT_TRUE(killed(run_child_rec(full, true, steps[i], 1)));
        CU_ASSERT_TRUE(lived(run_child_rec(full, false, full, 3)));
        CU_ASSERT_TRUE(lived(run_child_via(full, true, steps[i], 3, true)));
        /* The engine's point of the same name is another point. */
        CU_ASSERT_TRUE(lived(run_child_rec(steps[i], true, full, 3)));
    }
    CU_ASSERT_TRUE(lived(run_child_rec("rec-after-commit:2", true, "after-commit", 1)));
    CU_ASSERT_TRUE(killed(run_child_rec("rec-after-commit:2", true, "after-commit", 2)));
}

/* Arms XAC_JOURNAL_FAULT=spec in this process (no crash point). */
static void arm_io(const char *spec, bool enabled)
{
    unsetenv("XAC_CRASH_AT");
    if (spec != NULL)
        setenv("XAC_JOURNAL_FAULT", spec, 1);
    else
        unsetenv("XAC_JOURNAL_FAULT");
    fault_arm(enabled);
}

/* Calls the io hook for op n times and writes the results into got. */
static void io_calls(journal_io op, int n, int *got)
{
    for (int i = 0; i < n; i++)
        got[i] = fault_journal_io(NULL, op);
}

static void test_io_fault_default(void)
{
    int got[4];
    arm_io("sync", true);
    io_calls(JOURNAL_IO_SYNC, 3, got);
    CU_ASSERT_EQUAL(got[0], EIO);
    CU_ASSERT_EQUAL(got[1], EIO); /* and every later call */
    CU_ASSERT_EQUAL(got[2], EIO);
    io_calls(JOURNAL_IO_WRITE, 2, got);
    CU_ASSERT_EQUAL(got[0], 0);
    CU_ASSERT_EQUAL(got[1], 0);
    io_calls(JOURNAL_IO_CREATE, 1, got);
    CU_ASSERT_EQUAL(got[0], 0);
    io_calls(JOURNAL_IO_CUT, 1, got);
    CU_ASSERT_EQUAL(got[0], 0);
}

static void test_io_fault_count_and_errno(void)
{
    int got[4];
    arm_io("write:3:ENOSPC", true);
    io_calls(JOURNAL_IO_WRITE, 4, got);
    CU_ASSERT_EQUAL(got[0], 0);
    CU_ASSERT_EQUAL(got[1], 0);
    CU_ASSERT_EQUAL(got[2], ENOSPC);
    CU_ASSERT_EQUAL(got[3], ENOSPC);

    arm_io("create:1:28", true);
    io_calls(JOURNAL_IO_CREATE, 1, got);
    CU_ASSERT_EQUAL(got[0], 28);
    io_calls(JOURNAL_IO_WRITE, 1, got); /* re-arming dropped the earlier write fault */
    CU_ASSERT_EQUAL(got[0], 0);

    arm_io("cut:2:EIO", true);
    io_calls(JOURNAL_IO_CUT, 2, got);
    CU_ASSERT_EQUAL(got[0], 0);
    CU_ASSERT_EQUAL(got[1], EIO);
}

static void test_io_fault_list(void)
{
    int got[2];
    arm_io("sync,cut", true);
    io_calls(JOURNAL_IO_SYNC, 1, got);
    CU_ASSERT_EQUAL(got[0], EIO);
    io_calls(JOURNAL_IO_CUT, 1, got);
    CU_ASSERT_EQUAL(got[0], EIO);
    io_calls(JOURNAL_IO_WRITE, 1, got);
    CU_ASSERT_EQUAL(got[0], 0);

    arm_io("create:2:ENOSPC,write:1:5", true);
    io_calls(JOURNAL_IO_CREATE, 2, got);
    CU_ASSERT_EQUAL(got[0], 0);
    CU_ASSERT_EQUAL(got[1], ENOSPC);
    io_calls(JOURNAL_IO_WRITE, 1, got);
    CU_ASSERT_EQUAL(got[0], 5);
}

/* A spec with any mistake arms nothing, not even its good parts. */
static void test_io_fault_bad_specs(void)
{
    static const char *const bad[] = {"fsync",      "sync:0",          "sync:x",     "sync:1:EWHAT",
                                      "sync:1:0",   "sync:1:5000",     "sync:1:5:6", "sync,sync",
                                      "sync,bogus", "write:2:ENOSPC,", ":1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int got[2];
        arm_io(bad[i], true);
        io_calls(JOURNAL_IO_SYNC, 2, got);
        if (got[0] != 0 || got[1] != 0)
            fprintf(stderr, "\nXAC_JOURNAL_FAULT=%s armed a fault\n", bad[i]);
        CU_ASSERT_EQUAL(got[0], 0);
        CU_ASSERT_EQUAL(got[1], 0);
        io_calls(JOURNAL_IO_WRITE, 2, got);
        CU_ASSERT_EQUAL(got[1], 0);
    }
}

static void test_io_fault_disabled(void)
{
    int got[1];
    arm_io("sync", false);
    io_calls(JOURNAL_IO_SYNC, 1, got);
    CU_ASSERT_EQUAL(got[0], 0);
    arm_io(NULL, true);
    io_calls(JOURNAL_IO_SYNC, 1, got);
    CU_ASSERT_EQUAL(got[0], 0);
}

int cu_register(void)
{
    static const cu_test tests[] = {
        {"fires at the armed point", test_fires_at_point},
        {"other points do not fire", test_other_point_does_not_fire},
        {"disabled or unset never fires", test_disabled_never_fires},
        {"name:N counts", test_count},
        {"bad specs arm nothing", test_bad_specs},
        {"names", test_names},
        {"every listed name fires", test_every_name_fires},
        {"journal steps are crash points", test_journal_steps},
        {"recovery steps are crash points", test_rec_steps},
        {"journal fault: op alone", test_io_fault_default},
        {"journal fault: count and errno", test_io_fault_count_and_errno},
        {"journal fault: a list", test_io_fault_list},
        {"journal fault: bad specs arm nothing", test_io_fault_bad_specs},
        {"journal fault: disabled or unset", test_io_fault_disabled},
        {NULL, NULL}};
    return cu_add_suite("fault", tests);
}
