/* Runs the suites a unit-test program registers, in CUnit's basic mode, and
 * turns failures into the exit status that ctest reads. */
#include <stdio.h>

#include "cu.h"

int cu_add_suite(const char *name, const cu_test *tests)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (s == NULL)
        return CU_get_error();
    for (const cu_test *t = tests; t->name != NULL; t++)
        if (CU_add_test(s, t->name, t->fn) == NULL)
            return CU_get_error();
    return CUE_SUCCESS;
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (cu_register() != CUE_SUCCESS) {
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return (failed > 0 || run == 0) ? 1 : 0;
}
