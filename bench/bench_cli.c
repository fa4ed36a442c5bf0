/* Command-line parsing shared by journal_bench and xac-bench (bench_cli.h). */
#include <errno.h>
#include <stdlib.h>

#include "bench_cli.h"

int bench_parse_clients(const char *s, int *out, int max, int maxval, int *n, xac_err *err)
{
    *n = 0;
    const char *p = s;
    while (*p != '\0') {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < 1 || v > maxval || (*end != ',' && *end != '\0'))
            return xac_err_set(err, XAC_EINVAL,
                               "--clients \"%s\": expected a comma-separated list of numbers "
                               "1..%d",
                               s, maxval);
        if (*n == max)
            return xac_err_set(err, XAC_EINVAL, "--clients \"%s\": at most %d points", s, max);
        out[(*n)++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    if (*n == 0)
        return xac_err_set(err, XAC_EINVAL, "--clients is empty");
    return XAC_OK;
}
