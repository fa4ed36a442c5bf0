/* Row sets: the result of one statement as the drivers produce it and the
 * RESULT frame carries it. Cells are text copies so a row set outlives the
 * driver's statement handle. */
#include <stdlib.h>
#include <string.h>

#include "xac_common.h"

void xac_rows_init(xac_rows *r)
{
    memset(r, 0, sizeof *r);
}

void xac_rows_free(xac_rows *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->cols != NULL && i < r->ncols; i++)
        free(r->cols[i]);
    for (size_t i = 0; r->cells != NULL && i < r->nrows * r->ncols; i++)
        free(r->cells[i]);
    free(r->cols);
    free(r->cells);
    free(r->lens);
    xac_rows_init(r);
}

int xac_rows_set_cols(xac_rows *r, size_t ncols, const char *const *names, xac_err *err)
{
    xac_rows_free(r);
    char **cols = calloc(ncols > 0 ? ncols : 1, sizeof *cols);
    if (cols == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for %zu column names", ncols);
    for (size_t i = 0; i < ncols; i++) {
        const char *n = (names != NULL && names[i] != NULL) ? names[i] : "";
        cols[i] = strdup(n);
        if (cols[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(cols[j]);
            free(cols);
            return xac_err_set(err, XAC_ENOMEM, "out of memory for column name %zu", i + 1);
        }
    }
    r->has_rows = true;
    r->ncols = ncols;
    r->cols = cols;
    return XAC_OK;
}

static int grow(xac_rows *r, xac_err *err)
{
    size_t cap = r->cap_rows < 16 ? 16 : r->cap_rows * 2;
    if (cap > SIZE_MAX / sizeof(char *) / r->ncols)
        return xac_err_set(err, XAC_ENOMEM, "row set too large (%zu rows)", r->nrows);
    char **cells = realloc(r->cells, cap * r->ncols * sizeof *cells);
    if (cells == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for %zu rows", cap);
    r->cells = cells;
    size_t *lens = realloc(r->lens, cap * r->ncols * sizeof *lens);
    if (lens == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for %zu rows", cap);
    r->lens = lens;
    r->cap_rows = cap;
    return XAC_OK;
}

int xac_rows_add(xac_rows *r, const char *const *vals, const size_t *lens, xac_err *err)
{
    if (!r->has_rows || r->ncols == 0)
        return xac_err_set(err, XAC_EINVAL, "cannot add a row to a result without columns");
    if (r->nrows == r->cap_rows) {
        int rc = grow(r, err);
        if (rc != XAC_OK)
            return rc;
    }
    char **cells = r->cells + r->nrows * r->ncols;
    size_t *cl = r->lens + r->nrows * r->ncols;
    for (size_t i = 0; i < r->ncols; i++) {
        if (vals == NULL || vals[i] == NULL) {
            cells[i] = NULL;
            cl[i] = 0;
            continue;
        }
        size_t n = lens != NULL ? lens[i] : strlen(vals[i]);
        cells[i] = malloc(n + 1);
        if (cells[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(cells[j]);
            return xac_err_set(err, XAC_ENOMEM, "out of memory for a cell of %zu bytes", n);
        }
        memcpy(cells[i], vals[i], n);
        cells[i][n] = '\0';
        cl[i] = n;
    }
    r->nrows++;
    return XAC_OK;
}

const char *xac_rows_cell(const xac_rows *r, size_t row, size_t col, size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (r == NULL || !r->has_rows || row >= r->nrows || col >= r->ncols)
        return NULL;
    size_t i = row * r->ncols + col;
    if (len != NULL)
        *len = r->lens[i];
    return r->cells[i];
}
