/* Unit tests of row sets: columns, NULL cells, binary cells, growth, bounds. */
#include <stdio.h>
#include <string.h>

#include "cu.h"
#include "xac_common.h"

static void test_basic(void)
{
    xac_rows r;
    xac_err e;
    xac_rows_init(&r);
    CU_ASSERT_FALSE(r.has_rows);
    const char *names[] = {"id", "name"};
    CU_ASSERT_EQUAL_FATAL(xac_rows_set_cols(&r, 2, names, &e), XAC_OK);
    CU_ASSERT_TRUE(r.has_rows);
    CU_ASSERT_STRING_EQUAL(r.cols[1], "name");
    const char *row1[] = {"1", NULL};
    CU_ASSERT_EQUAL(xac_rows_add(&r, row1, NULL, &e), XAC_OK);
    const char bin[] = {'a', '\0', 'b'};
    const char *row2[] = {"2", bin};
    size_t lens[] = {1, 3};
    CU_ASSERT_EQUAL(xac_rows_add(&r, row2, lens, &e), XAC_OK);
    CU_ASSERT_EQUAL(r.nrows, 2);
    size_t len = 99;
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 0, &len), "1");
    CU_ASSERT_EQUAL(len, 1);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 0, 1, &len));
    const char *c = xac_rows_cell(&r, 1, 1, &len);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_TRUE(c != NULL && memcmp(c, bin, 3) == 0 && c[3] == '\0');
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 2, 0, &len));
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 0, 2, NULL));
    xac_rows_free(&r);
    CU_ASSERT_FALSE(r.has_rows);
    CU_ASSERT_EQUAL(r.nrows, 0);
    CU_ASSERT_PTR_NULL(r.cells);
}

static void test_growth(void)
{
    xac_rows r;
    xac_err e;
    xac_rows_init(&r);
    const char *names[] = {"n"};
    CU_ASSERT_EQUAL_FATAL(xac_rows_set_cols(&r, 1, names, &e), XAC_OK);
    char buf[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        const char *v[] = {buf};
        CU_ASSERT_EQUAL_FATAL(xac_rows_add(&r, v, NULL, &e), XAC_OK);
    }
    CU_ASSERT_EQUAL(r.nrows, 1000);
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 999, 0, NULL), "999");
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 500, 0, NULL), "500");
    /* Setting columns again starts a fresh row set. */
    const char *two[] = {"a", "b"};
    CU_ASSERT_EQUAL(xac_rows_set_cols(&r, 2, two, &e), XAC_OK);
    CU_ASSERT_EQUAL(r.nrows, 0);
    CU_ASSERT_EQUAL(r.ncols, 2);
    xac_rows_free(&r);
}

static void test_add_without_cols(void)
{
    xac_rows r;
    xac_err e;
    xac_rows_init(&r);
    const char *v[] = {"x"};
    CU_ASSERT_EQUAL(xac_rows_add(&r, v, NULL, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(e.code, XAC_EINVAL);
    CU_ASSERT_TRUE(strlen(e.msg) > 0);
    xac_rows_free(&r);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"basic", test_basic},
                                    {"growth", test_growth},
                                    {"add without columns", test_add_without_cols},
                                    {NULL, NULL}};
    return cu_add_suite("rows", tests);
}
