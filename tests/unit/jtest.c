/* Helpers shared by the journal's unit tests: temp directories, whole-file
 * I/O and a reader of the segment format written from docs/journal.md alone,
 * so that a test checks what is on disk independently of journal/. */
#include "jtest.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cu.h"

void jt_dir_new(char *dir, size_t n, const char *tmpl)
{
    snprintf(dir, n, "%s", tmpl);
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char *real = realpath(dir, NULL);
    CU_ASSERT_FATAL(real != NULL);
    snprintf(dir, n, "%s", real);
    free(real);
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

void jt_dir_rm(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

long jt_fsize(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

uint8_t *jt_slurp(const char *p, size_t *n)
{
    *n = 0;
    FILE *f = fopen(p, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    if (b != NULL)
        *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

void jt_spit(const char *p, const uint8_t *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fwrite(b, 1, n, f), n);
    fclose(f);
}

bool jt_all_zero(const uint8_t *b, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

uint32_t jt_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t jt_get64(const uint8_t *p)
{
    return (uint64_t)jt_get32(p) | (uint64_t)jt_get32(p + 4) << 32;
}

void jt_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

bool jt_header_ok(const uint8_t *b, size_t n, uint64_t segno)
{
    return n >= JT_HDR_LEN && memcmp(b, "XACJ", 4) == 0 && jt_get32(b + 4) == 1 &&
           jt_get64(b + 8) == segno && jt_get32(b + 16) == xac_crc32c(0, b, 16);
}

int jt_scan(const uint8_t *b, size_t n, jt_rec *out, int max, long *end)
{
    long off = JT_HDR_LEN;
    int k = 0;
    while ((size_t)off + JT_REC_HDR <= n) {
        uint32_t len = jt_get32(b + off);
        if (len < 2 || len > JT_MAX_PAY || (size_t)off + JT_REC_HDR + len > n)
            break;
        if (xac_crc32c(0, b + off + 8, (size_t)len + 1) != jt_get32(b + off + 4))
            break;
        const uint8_t *p = b + off + JT_REC_HDR;
        size_t glen = p[0];
        if (glen < 1 || glen > XAC_GTRID_MAX || glen + 1 > len)
            break;
        if (k < max) {
            out[k].off = off;
            out[k].len = JT_REC_HDR + (long)len;
            out[k].type = b[off + 8];
            memcpy(out[k].gtrid, p + 1, glen);
            out[k].gtrid[glen] = '\0';
        }
        k++;
        off += JT_REC_HDR + (long)len;
    }
    *end = off;
    return k;
}

long jt_used(const char *p)
{
    size_t n;
    uint8_t *b = jt_slurp(p, &n);
    if (b == NULL)
        return -1;
    long end;
    jt_scan(b, n, NULL, 0, &end);
    free(b);
    return end;
}
