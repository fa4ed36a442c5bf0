/* Result sets of libxac: a thin owner around common's xac_rows, so that an
 * application sees only the accessors of client/xac.h and every string it gets
 * stays valid until xac_result_free. */
#include <stdlib.h>

#include "xac_common.h"
#include "xac.h"

struct xac_result {
    xac_rows rows;
};

/* Internal to libxac (declared in libxac.c): takes over the contents of rows
 * and leaves rows empty. Returns NULL when out of memory, rows untouched. */
__attribute__((visibility("hidden"))) xac_result *xac_result_adopt(xac_rows *rows);

xac_result *xac_result_adopt(xac_rows *rows)
{
    xac_result *r = malloc(sizeof *r);
    if (r == NULL)
        return NULL;
    r->rows = *rows;
    xac_rows_init(rows);
    return r;
}

int xac_result_has_rows(const xac_result *r)
{
    return r != NULL && r->rows.has_rows;
}

uint64_t xac_result_affected(const xac_result *r)
{
    return (r == NULL || r->rows.has_rows) ? 0 : r->rows.affected;
}

size_t xac_result_ncols(const xac_result *r)
{
    return (r == NULL || !r->rows.has_rows) ? 0 : r->rows.ncols;
}

size_t xac_result_nrows(const xac_result *r)
{
    return (r == NULL || !r->rows.has_rows) ? 0 : r->rows.nrows;
}

const char *xac_result_colname(const xac_result *r, size_t col)
{
    if (r == NULL || !r->rows.has_rows || col >= r->rows.ncols)
        return NULL;
    return r->rows.cols[col];
}

const char *xac_result_value(const xac_result *r, size_t row, size_t col, size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (r == NULL || !r->rows.has_rows || row >= r->rows.nrows || col >= r->rows.ncols)
        return NULL;
    return xac_rows_cell(&r->rows, row, col, len);
}

void xac_result_free(xac_result *r)
{
    if (r == NULL)
        return;
    xac_rows_free(&r->rows);
    free(r);
}
