/* The shared main of the CUnit unit-test programs: each tests/unit/test_*.c
 * defines cu_register(), which adds its suites; cu_main.c runs them and exits
 * non-zero when any assertion failed. */
#ifndef XAC_CU_H
#define XAC_CU_H

#include <CUnit/Basic.h>

/* Defined by each test program. Returns 0, or a CUnit error. */
int cu_register(void);

/* Adds a suite with the given NULL-terminated {name, fn} list. */
typedef struct cu_test {
    const char *name;
    CU_TestFunc fn;
} cu_test;
int cu_add_suite(const char *name, const cu_test *tests);

#endif
