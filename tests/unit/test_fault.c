/* Crash points (coordinator/fault.c): each case runs in a forked child, which
 * must die of SIGKILL exactly at the armed point and hit, and live otherwise. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cu.h"
#include "fault.h"

/* Runs the scenario in a child: arm with spec and enabled, then reach point
 * `name` `times` times. Returns the child's wait status. */
static int run_child(const char *spec, bool enabled, const char *name, int times)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        if (spec != NULL)
            setenv("XAC_CRASH_AT", spec, 1);
        else
            unsetenv("XAC_CRASH_AT");
        fault_arm(enabled);
        for (int i = 0; i < times; i++)
            fault_point(name);
        _exit(7);
    }
    int st = 0;
    CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
    return st;
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

static void test_names(void)
{
    const char *const *n = fault_names();
    size_t k = 0;
    while (n[k] != NULL)
        k++;
    CU_ASSERT_EQUAL(k, 5);
    CU_ASSERT_STRING_EQUAL(n[0], FAULT_AFTER_FIRST_PREPARE);
    CU_ASSERT_STRING_EQUAL(n[4], FAULT_BEFORE_END);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"fires at the armed point", test_fires_at_point},
                                    {"other points do not fire", test_other_point_does_not_fire},
                                    {"disabled or unset never fires", test_disabled_never_fires},
                                    {"name:N counts", test_count},
                                    {"bad specs arm nothing", test_bad_specs},
                                    {"names", test_names},
                                    {NULL, NULL}};
    return cu_add_suite("fault", tests);
}
