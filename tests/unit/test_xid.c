/* Unit tests of XIDs: gtrid making, the ownership checks recovery relies on,
 * and the text forms (PostgreSQL gid, MySQL literal, DBA form), which must all
 * map back to the exact same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "xac_common.h"

static uint32_t rng = 0x12345678u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void random_xid(xac_xid *x, size_t gl, size_t bl)
{
    uint8_t g[XAC_GTRID_MAX], b[XAC_BQUAL_MAX];
    for (size_t i = 0; i < gl; i++)
        g[i] = (uint8_t)next_rand();
    for (size_t i = 0; i < bl; i++)
        b[i] = (uint8_t)next_rand();
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(xac_xid_set(x, (int32_t)next_rand(), g, gl, b, bl, &e), XAC_OK);
}

static void test_valid_name(void)
{
    CU_ASSERT_TRUE(xac_valid_name("node-1_A", 24));
    CU_ASSERT_FALSE(xac_valid_name("", 24));
    CU_ASSERT_FALSE(xac_valid_name(NULL, 24));
    CU_ASSERT_FALSE(xac_valid_name("a.b", 24));
    CU_ASSERT_FALSE(xac_valid_name("a b", 24));
    CU_ASSERT_FALSE(xac_valid_name("é", 24));
    CU_ASSERT_TRUE(xac_valid_name("abcd", 4));
    CU_ASSERT_FALSE(xac_valid_name("abcde", 4));
}

static void test_put_u64(void)
{
    char b[24];
    size_t n = xac_put_u64(b, 0, 10);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(b[0], '0');
    n = xac_put_u64(b, UINT64_MAX, 10);
    b[n] = '\0';
    CU_ASSERT_STRING_EQUAL(b, "18446744073709551615");
    n = xac_put_u64(b, UINT64_MAX, 16);
    b[n] = '\0';
    CU_ASSERT_STRING_EQUAL(b, "ffffffffffffffff");
    n = xac_put_u64(b, 0x5f3a, 16);
    b[n] = '\0';
    CU_ASSERT_STRING_EQUAL(b, "5f3a");
}

static void test_gtrid_make(void)
{
    char g[XAC_GTRID_MAX + 1];
    xac_err e;
    CU_ASSERT_EQUAL(xac_gtrid_make(g, "node1", 0x5f3a, 42, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(g, "node1.5f3a.2a");
    /* The longest node id with the largest numbers still fits. */
    const char *longest = "abcdefghijklmnopqrstuvwx";
    CU_ASSERT_EQUAL(xac_gtrid_make(g, longest, UINT64_MAX, UINT64_MAX, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(g, "abcdefghijklmnopqrstuvwx.ffffffffffffffff.ffffffffffffffff");
    CU_ASSERT_TRUE(strlen(g) <= XAC_GTRID_MAX);
    CU_ASSERT_EQUAL(xac_gtrid_make(g, "abcdefghijklmnopqrstuvwxy", 1, 1, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_gtrid_make(g, "bad.node", 1, 1, &e), XAC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bad.node"));
    CU_ASSERT_EQUAL(xac_gtrid_make(g, "", 1, 1, &e), XAC_EINVAL);
}

static void test_xid_make_limits(void)
{
    xac_xid x;
    xac_err e;
    CU_ASSERT_EQUAL(xac_xid_make(&x, "node1.1.1", "bank_a", &e), XAC_OK);
    CU_ASSERT_EQUAL(x.format_id, XAC_FORMAT_ID);
    CU_ASSERT_EQUAL(x.gtrid_len, 9);
    CU_ASSERT_EQUAL(x.bqual_len, 6);
    CU_ASSERT_STRING_EQUAL(x.gtrid, "node1.1.1");
    CU_ASSERT_STRING_EQUAL(x.bqual, "bank_a");
    CU_ASSERT_EQUAL(xac_xid_make(&x, "node1.1.1", "bad name", &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_xid_make(&x, "node1.1.1", "abcdefghijklmnopqrstuvwxyz0123456", &e),
                    XAC_EINVAL); /* 33 chars */
    CU_ASSERT_EQUAL(xac_xid_make(&x, "", "bank_a", &e), XAC_EINVAL);
    char big[XAC_GTRID_MAX + 2];
    memset(big, 'g', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CU_ASSERT_EQUAL(xac_xid_make(&x, big, "r", &e), XAC_EINVAL);
    big[XAC_GTRID_MAX] = '\0';
    CU_ASSERT_EQUAL(xac_xid_make(&x, big, "r", &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_xid_set(&x, 1, "g", 1, "b", XAC_BQUAL_MAX + 1, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_xid_set(&x, 1, "g", 0, "b", 1, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_xid_set(&x, 1, "g", 1, NULL, 0, &e), XAC_OK);
    CU_ASSERT_EQUAL(x.bqual_len, 0);
}

static void test_ownership(void)
{
    xac_xid x, y;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(xac_xid_make(&x, "node1.abc.1", "bank_a", &e), XAC_OK);
    CU_ASSERT_TRUE(xac_xid_is_ours(&x, "node1"));
    CU_ASSERT_TRUE(xac_xid_is_ours_on(&x, "node1", "bank_a"));
    CU_ASSERT_FALSE(xac_xid_is_ours_on(&x, "node1", "bank_b"));
    CU_ASSERT_FALSE(xac_xid_is_ours_on(&x, "node1", "bank_"));
    CU_ASSERT_FALSE(xac_xid_is_ours_on(&x, "node1", "bank_aa"));
    CU_ASSERT_FALSE(xac_xid_is_ours(&x, "node2"));
    /* The prefix trap: node1 must not claim node10's branches, nor the reverse. */
    CU_ASSERT_EQUAL_FATAL(xac_xid_make(&y, "node10.abc.1", "bank_a", &e), XAC_OK);
    CU_ASSERT_FALSE(xac_xid_is_ours(&y, "node1"));
    CU_ASSERT_TRUE(xac_xid_is_ours(&y, "node10"));
    CU_ASSERT_FALSE(xac_xid_is_ours(&x, "node10"));
    CU_ASSERT_FALSE(xac_xid_is_ours(&x, "node"));
    CU_ASSERT_FALSE(xac_xid_is_ours(&x, ""));
    /* Same gtrid, another transaction manager's format id. */
    CU_ASSERT_EQUAL_FATAL(xac_xid_set(&y, 1, "node1.abc.1", 11, "bank_a", 6, &e), XAC_OK);
    CU_ASSERT_FALSE(xac_xid_is_ours(&y, "node1"));
    CU_ASSERT_FALSE(xac_xid_is_ours_on(&y, "node1", "bank_a"));
    /* A gtrid that is only the node id, with or without the dot. */
    CU_ASSERT_EQUAL_FATAL(xac_xid_set(&y, XAC_FORMAT_ID, "node1", 5, "", 0, &e), XAC_OK);
    CU_ASSERT_FALSE(xac_xid_is_ours(&y, "node1"));
    /* The header's rule is the prefix "<node>.", so this one is claimed. */
    CU_ASSERT_EQUAL_FATAL(xac_xid_set(&y, XAC_FORMAT_ID, "node1.", 6, "", 0, &e), XAC_OK);
    CU_ASSERT_TRUE(xac_xid_is_ours(&y, "node1"));
    CU_ASSERT_EQUAL_FATAL(xac_xid_set(&y, XAC_FORMAT_ID, "node1.x", 7, "", 0, &e), XAC_OK);
    CU_ASSERT_TRUE(xac_xid_is_ours(&y, "node1"));
}

static void test_equal(void)
{
    xac_xid a, b;
    xac_err e;
    xac_xid_set(&a, 7, "g\0h", 3, "b", 1, &e);
    xac_xid_set(&b, 7, "g\0h", 3, "b", 1, &e);
    CU_ASSERT_TRUE(xac_xid_equal(&a, &b));
    xac_xid_set(&b, 7, "g\0i", 3, "b", 1, &e);
    CU_ASSERT_FALSE(xac_xid_equal(&a, &b));
    xac_xid_set(&b, 8, "g\0h", 3, "b", 1, &e);
    CU_ASSERT_FALSE(xac_xid_equal(&a, &b));
    xac_xid_set(&b, 7, "g\0h", 3, "bb", 2, &e);
    CU_ASSERT_FALSE(xac_xid_equal(&a, &b));
    /* gtrid/bqual boundary matters: "ab"+"c" is not "a"+"bc". */
    xac_xid_set(&a, 7, "ab", 2, "c", 1, &e);
    xac_xid_set(&b, 7, "a", 1, "bc", 2, &e);
    CU_ASSERT_FALSE(xac_xid_equal(&a, &b));
}

static void check_pg_round_trip(const xac_xid *x)
{
    char gid[XAC_PG_GID_MAX + 1];
    xac_xid y;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(xac_xid_to_pg_gid(x, gid, &e), XAC_OK);
    CU_ASSERT_TRUE(strlen(gid) <= XAC_PG_GID_MAX);
    CU_ASSERT_EQUAL_FATAL(xac_xid_from_pg_gid(gid, &y, &e), XAC_OK);
    CU_ASSERT_TRUE(xac_xid_equal(x, &y));
}

static void test_pg_gid(void)
{
    xac_xid x;
    xac_err e;
    char gid[XAC_PG_GID_MAX + 1];
    CU_ASSERT_EQUAL_FATAL(xac_xid_make(&x, "node1.5f3a.2a", "pg_main", &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_xid_to_pg_gid(&x, gid, &e), XAC_OK);
    /* 0x78616331 = 2019648305; base64url of "node1.5f3a.2a" and "pg_main". */
    CU_ASSERT_STRING_EQUAL(gid, "2019648305.bm9kZTEuNWYzYS4yYQ.cGdfbWFpbg");
    check_pg_round_trip(&x);

    /* The longest XID, in the worst format id, fits in 200 bytes. */
    random_xid(&x, XAC_GTRID_MAX, XAC_BQUAL_MAX);
    x.format_id = INT32_MIN;
    CU_ASSERT_EQUAL(xac_xid_to_pg_gid(&x, gid, &e), XAC_OK);
    CU_ASSERT_TRUE(strlen(gid) <= XAC_PG_GID_MAX);
    check_pg_round_trip(&x);
    x.format_id = INT32_MAX;
    check_pg_round_trip(&x);
    x.format_id = 0;
    check_pg_round_trip(&x);
    x.format_id = -1;
    check_pg_round_trip(&x);

    for (int i = 0; i < 5000; i++) {
        random_xid(&x, 1 + next_rand() % XAC_GTRID_MAX, next_rand() % (XAC_BQUAL_MAX + 1));
        check_pg_round_trip(&x);
    }
}

static void test_pg_gid_foreign(void)
{
    static const char *const bad[] = {
        "",
        "my-app-tx-1",
        "2019648305",
        "2019648305.bm9kZTE",
        "2019648305.bm9kZTE.cGc.extra",
        ".bm9kZTE.cGc",
        "x2019648305.bm9kZTE.cGc",
        "02019648305.bm9kZTE.cGc", /* leading zero: not canonical */
        "-0.bm9kZTE.cGc",          /* not canonical */
        "2147483648.bm9kZTE.cGc",  /* above INT32_MAX */
        "-2147483649.bm9kZTE.cGc", /* below INT32_MIN */
        "1.bm9kZTE=.cGc",          /* padding */
        "1.bm9k+TE.cGc",           /* standard alphabet, not url-safe */
        "1.bm9kZTF.cGc",           /* stray low bits: not canonical */
        "1.b.cGc",                 /* 1 char mod 4 */
        "1..cGc",                  /* empty gtrid */
        "1.bm9kZTE.cG c",
        "_pg_xact_42",
        "1."
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB."
        "YQ",
    };
    xac_xid x;
    xac_err e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = xac_xid_from_pg_gid(bad[i], &x, &e);
        CU_ASSERT_EQUAL(rc, XAC_EINVAL);
        if (rc != XAC_EINVAL)
            xac_loge("accepted foreign gid \"%s\"", bad[i]);
        else
            CU_ASSERT_TRUE(strlen(e.msg) > 0);
    }
    /* An empty bqual is fine, and the minimal gid decodes. */
    CU_ASSERT_EQUAL(xac_xid_from_pg_gid("1.YQ.", &x, &e), XAC_OK);
    CU_ASSERT_EQUAL(x.format_id, 1);
    CU_ASSERT_EQUAL(x.gtrid_len, 1);
    CU_ASSERT_EQUAL(x.gtrid[0], 'a');
    CU_ASSERT_EQUAL(x.bqual_len, 0);
}

static void test_mysql(void)
{
    xac_xid x;
    xac_err e;
    char out[300];
    CU_ASSERT_EQUAL_FATAL(xac_xid_make(&x, "n1.a.1", "db", &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_xid_to_mysql(&x, out, sizeof out, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(out, "X'6E312E612E31',X'6462',2019648305");
    CU_ASSERT_EQUAL(xac_xid_set(&x, -5, "\x00\xff", 2, "", 0, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_xid_to_mysql(&x, out, sizeof out, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(out, "X'00FF',X'',-5");
    /* Too small a buffer is an error, not a truncated literal. */
    CU_ASSERT_EQUAL(xac_xid_to_mysql(&x, out, 10, &e), XAC_EINVAL);
    random_xid(&x, XAC_GTRID_MAX, XAC_BQUAL_MAX);
    x.format_id = INT32_MIN;
    CU_ASSERT_EQUAL(xac_xid_to_mysql(&x, out, sizeof out, &e), XAC_OK);
    CU_ASSERT_EQUAL(strlen(out), 2 + 128 + 4 + 128 + 2 + 11);
    CU_ASSERT_STRING_EQUAL(out + strlen(out) - 13, "',-2147483648");
    x.format_id = 0;
    CU_ASSERT_EQUAL(xac_xid_to_mysql(&x, out, sizeof out, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(out + strlen(out) - 3, "',0");
}

static void check_text_round_trip(const xac_xid *x)
{
    char text[XAC_XID_TEXT_MAX];
    xac_xid y;
    xac_err e;
    xac_xid_format(x, text);
    CU_ASSERT_EQUAL_FATAL(xac_xid_parse(text, &y, &e), XAC_OK);
    CU_ASSERT_TRUE(xac_xid_equal(x, &y));
}

static void test_format_parse(void)
{
    xac_xid x, y;
    xac_err e;
    char text[XAC_XID_TEXT_MAX];
    CU_ASSERT_EQUAL_FATAL(xac_xid_make(&x, "node1.5f3a.2a", "bank_a", &e), XAC_OK);
    xac_xid_format(&x, text);
    CU_ASSERT_STRING_EQUAL(text, "'node1.5f3a.2a','bank_a',2019648305");
    check_text_round_trip(&x);

    CU_ASSERT_EQUAL(xac_xid_set(&x, 3, "a\x01", 2, "b", 1, &e), XAC_OK);
    xac_xid_format(&x, text);
    CU_ASSERT_STRING_EQUAL(text, "X'6101',X'62',3");
    check_text_round_trip(&x);

    /* Quotes and backslashes go out as hex, so nothing needs escaping. */
    CU_ASSERT_EQUAL(xac_xid_set(&x, 3, "it's", 4, "a\\b", 3, &e), XAC_OK);
    xac_xid_format(&x, text);
    CU_ASSERT_EQUAL(text[0], 'X');
    check_text_round_trip(&x);

    random_xid(&x, XAC_GTRID_MAX, XAC_BQUAL_MAX);
    x.format_id = INT32_MIN;
    xac_xid_format(&x, text);
    CU_ASSERT_TRUE(strlen(text) < XAC_XID_TEXT_MAX);
    check_text_round_trip(&x);
    for (int i = 0; i < 2000; i++) {
        random_xid(&x, 1 + next_rand() % XAC_GTRID_MAX, next_rand() % (XAC_BQUAL_MAX + 1));
        check_text_round_trip(&x);
    }

    /* A bare gtrid: our format id, empty bqual. */
    CU_ASSERT_EQUAL(xac_xid_parse("  node1.5f3a.2a ", &y, &e), XAC_OK);
    CU_ASSERT_EQUAL(y.format_id, XAC_FORMAT_ID);
    CU_ASSERT_STRING_EQUAL(y.gtrid, "node1.5f3a.2a");
    CU_ASSERT_EQUAL(y.bqual_len, 0);

    /* What MariaDB prints: spaces, lower-case hex, SQL escapes, fid omitted. */
    CU_ASSERT_EQUAL(xac_xid_parse("x'6162' , X'' , 7", &y, &e), XAC_OK);
    CU_ASSERT_EQUAL(y.format_id, 7);
    CU_ASSERT_STRING_EQUAL(y.gtrid, "ab");
    CU_ASSERT_EQUAL(y.bqual_len, 0);
    CU_ASSERT_EQUAL(xac_xid_parse("'it''s','a\\'b'", &y, &e), XAC_OK);
    CU_ASSERT_EQUAL(y.format_id, 1);
    CU_ASSERT_STRING_EQUAL(y.gtrid, "it's");
    CU_ASSERT_STRING_EQUAL(y.bqual, "a'b");

    static const char *const bad[] = {
        "",     "   ",        "'abc",     "'abc','d',", "'abc','d',x", "'abc','d',1 2",
        "X'6'", "X'zz'",      "'','b',1", "a b",        "'a',,1",      "'a','b',99999999999",
        "'a'x", "X'61',X'62", /* fine below */
    };
    for (size_t i = 0; i + 1 < sizeof bad / sizeof bad[0]; i++) {
        int rc = xac_xid_parse(bad[i], &y, &e);
        CU_ASSERT_EQUAL(rc, XAC_EINVAL);
        if (rc != XAC_EINVAL)
            xac_loge("accepted bad XID text \"%s\"", bad[i]);
    }
    CU_ASSERT_EQUAL(xac_xid_parse("X'61',X'62'", &y, &e), XAC_OK);
    char longg[XAC_GTRID_MAX + 2];
    memset(longg, 'a', sizeof longg - 1);
    longg[sizeof longg - 1] = '\0';
    CU_ASSERT_EQUAL(xac_xid_parse(longg, &y, &e), XAC_EINVAL);
}

/* Lines that MariaDB 10.11 printed for XA RECOVER FORMAT='SQL' (captured on
 * this project's fixture server): lower-case hex, quoted only for letters,
 * digits and spaces, and the format id left out when it is 1. */
static void test_parse_mariadb_output(void)
{
    static const struct {
        const char *text;
        int32_t fid;
        const char *g;
        size_t gl;
        const char *b;
        size_t bl;
    } cases[] = {
        {"X'69742773',X'615c62'", 1, "it's", 4, "a\\b", 3},
        {"X'6e6f6465312e356633612e3261',X'62616e6b5f61',2019648305", XAC_FORMAT_ID, "node1.5f3a.2a",
         13, "bank_a", 6},
        {"X'6101',X'62',3", 3, "a\x01", 2, "b", 1},
        {"'g1','',7", 7, "g1", 2, "", 0},
        {"'a b','c'", 1, "a b", 3, "c", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xac_xid x, want;
        xac_err e;
        CU_ASSERT_EQUAL_FATAL(
            xac_xid_set(&want, cases[i].fid, cases[i].g, cases[i].gl, cases[i].b, cases[i].bl, &e),
            XAC_OK);
        CU_ASSERT_EQUAL(xac_xid_parse(cases[i].text, &x, &e), XAC_OK);
        CU_ASSERT_TRUE(xac_xid_equal(&x, &want));
    }
}

static void test_hex(void)
{
    char out[16];
    uint8_t bin[8];
    size_t n = 0;
    xac_hex_encode("\x00\xab\x7f", 3, out);
    CU_ASSERT_STRING_EQUAL(out, "00AB7F");
    CU_ASSERT_EQUAL(xac_hex_decode("00ab7F", 6, bin, sizeof bin, &n), XAC_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_TRUE(memcmp(bin, "\x00\xab\x7f", 3) == 0);
    CU_ASSERT_NOT_EQUAL(xac_hex_decode("abc", 3, bin, sizeof bin, &n), XAC_OK);
    CU_ASSERT_NOT_EQUAL(xac_hex_decode("zz", 2, bin, sizeof bin, &n), XAC_OK);
    CU_ASSERT_NOT_EQUAL(xac_hex_decode("001122", 6, bin, 2, &n), XAC_OK);
    CU_ASSERT_EQUAL(xac_hex_decode("", 0, bin, 0, &n), XAC_OK);
    CU_ASSERT_EQUAL(n, 0);
}

static void test_err(void)
{
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(e.code, 0);
    CU_ASSERT_EQUAL(xac_err_setr(&e, XAC_ESQL, "bank_a", "error %d: %s", 1062, "dup"), XAC_ESQL);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_a");
    CU_ASSERT_STRING_EQUAL(e.msg, "error 1062: dup");
    CU_ASSERT_EQUAL(xac_err_prefix(&e, "EXEC on %s", "bank_a"), XAC_ESQL);
    CU_ASSERT_STRING_EQUAL(e.msg, "EXEC on bank_a: error 1062: dup");
    CU_ASSERT_EQUAL(xac_err_set(NULL, XAC_EIO, "x"), XAC_EIO);
    CU_ASSERT_STRING_EQUAL(xac_code_name(XAC_ESQL), "XAC_ESQL");
    CU_ASSERT_STRING_EQUAL(xac_code_name(XAC_ECONN), "XAC_ECONN");
    CU_ASSERT_PTR_NOT_NULL(xac_code_name(99));
    CU_ASSERT_PTR_NOT_NULL(xac_code_name(-1));
    /* A long prefix and message are cut, not overflowed. */
    char big[1000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    xac_err_set(&e, XAC_EIO, "%s", big);
    xac_err_prefix(&e, "%s", big);
    CU_ASSERT_EQUAL(strlen(e.msg), XAC_ERR_MSG_MAX - 1);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"valid name", test_valid_name},
                                    {"put_u64", test_put_u64},
                                    {"gtrid make", test_gtrid_make},
                                    {"xid make and limits", test_xid_make_limits},
                                    {"ownership", test_ownership},
                                    {"equal", test_equal},
                                    {"pg gid round trips", test_pg_gid},
                                    {"pg gid foreign rejected", test_pg_gid_foreign},
                                    {"mysql literal", test_mysql},
                                    {"format and parse", test_format_parse},
                                    {"parse MariaDB output", test_parse_mariadb_output},
                                    {"hex", test_hex},
                                    {"errors", test_err},
                                    {NULL, NULL}};
    return cu_add_suite("xid", tests);
}
