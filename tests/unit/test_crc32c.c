/* Unit tests of CRC32C: the standard check value, known vectors, and that the
 * slicing path agrees with a bitwise reference at every length and alignment. */
#include <string.h>

#include "cu.h"
#include "xac_common.h"

static uint32_t ref_crc(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_check_value(void)
{
    CU_ASSERT_EQUAL(xac_crc32c(0, "123456789", 9), 0xE3069283u);
    CU_ASSERT_EQUAL(xac_crc32c(0, "", 0), 0u);
}

static void test_vectors(void)
{
    /* RFC 3720 (iSCSI) B.4 test patterns. */
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    CU_ASSERT_EQUAL(xac_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);
    CU_ASSERT_EQUAL(xac_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CU_ASSERT_EQUAL(xac_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    CU_ASSERT_EQUAL(xac_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void test_against_reference(void)
{
    uint8_t buf[300];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        s = s * 1103515245u + 12345u;
        buf[i] = (uint8_t)(s >> 16);
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 7)
            CU_ASSERT_EQUAL_FATAL(xac_crc32c(0, buf + off, n), ref_crc(buf + off, n));
}

static void test_incremental(void)
{
    const char *s = "The quick brown fox jumps over the lazy dog, twice over.";
    size_t n = strlen(s);
    uint32_t whole = xac_crc32c(0, s, n);
    for (size_t cut = 0; cut <= n; cut++)
        CU_ASSERT_EQUAL(xac_crc32c(xac_crc32c(0, s, cut), s + cut, n - cut), whole);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"check value", test_check_value},
                                    {"rfc3720 vectors", test_vectors},
                                    {"against bitwise reference", test_against_reference},
                                    {"incremental", test_incremental},
                                    {NULL, NULL}};
    return cu_add_suite("crc32c", tests);
}
