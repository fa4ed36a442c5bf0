/* Command-line pieces the benchmark programs share (bench_cli.c). */
#ifndef XAC_BENCH_CLI_H
#define XAC_BENCH_CLI_H

#include "xac_common.h"

/* Parses a --clients list such as "1,8,64": at most max numbers, each from 1
 * to maxval, into out; *n gets their count. XAC_EINVAL says what is wrong. */
int bench_parse_clients(const char *s, int *out, int max, int maxval, int *n, xac_err *err);

#endif
