/* Helpers shared by the journal's unit tests (test_journal.c and
 * test_journal_segments.c): a fresh directory per test, whole-file reads and
 * writes, and a reader of segment files through their documented byte layout
 * (docs/journal.md), so that the tests check the files without trusting the
 * journal's own decoder. */
#ifndef XAC_JTEST_H
#define XAC_JTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xac_common.h"

#define JT_HDR_LEN 20   /* segment header */
#define JT_REC_HDR 9    /* length, CRC, type */
#define JT_MAX_PAY 2186 /* the largest valid payload */

/* Makes a directory from the mkdtemp template tmpl into dir (n bytes) and
 * replaces it with its real path, so that messages naming it compare equal.
 * A failure ends the test (CU_ASSERT_FATAL). */
void jt_dir_new(char *dir, size_t n, const char *tmpl);

/* Removes dir and everything under it. */
void jt_dir_rm(const char *dir);

/* The size of file p, -1 when it does not exist. */
long jt_fsize(const char *p);

/* The whole of file p (malloc'ed, *n bytes); NULL (and *n = 0) when it cannot
 * be read. */
uint8_t *jt_slurp(const char *p, size_t *n);

/* Replaces file p with n bytes of b; a failure to open ends the test. */
void jt_spit(const char *p, const uint8_t *b, size_t n);

/* Whether b[from..n) holds nothing but zeros. */
bool jt_all_zero(const uint8_t *b, size_t from, size_t n);

/* Little-endian fields of the segment format. */
uint32_t jt_get32(const uint8_t *p);
uint64_t jt_get64(const uint8_t *p);
void jt_put32(uint8_t *p, uint32_t v);

/* Whether a segment image starts with the documented header for segno. */
bool jt_header_ok(const uint8_t *b, size_t n, uint64_t segno);

/* A record found in a segment image. */
typedef struct jt_rec {
    long off;
    long len; /* whole record, header included */
    uint8_t type;
    char gtrid[XAC_GTRID_MAX + 1];
} jt_rec;

/* The valid records of a segment image from the header on, up to the first
 * that is not (a zero tail, a torn or damaged record, or the end of the
 * image). Returns the count and fills out[0..max) (out may be NULL when max
 * is 0); *end is where the scan stopped. */
int jt_scan(const uint8_t *b, size_t n, jt_rec *out, int max, long *end);

/* Where the valid records of segment file p end (jt_scan's *end); -1 when the
 * file cannot be read. */
long jt_used(const char *p);

#endif
