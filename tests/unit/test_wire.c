/* Unit tests of the wire codec: every message type round-trips, the examples
 * of docs/protocol.md encode to exactly their bytes, malformed payloads are
 * refused with a message naming the field, random mutations never crash and
 * whatever decodes re-encodes to the same bytes, and frame reading over a
 * socket handles limits and half-closed peers. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cu.h"
#include "xac_common.h"

static uint32_t rng = 0xC0FFEEu;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t hex_bytes(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; *p != '\0';) {
        if (*p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        unsigned v;
        sscanf(p, "%2x", &v);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static void encode_ok(const xac_msg *m, xac_buf *b)
{
    xac_err e;
    xac_buf_init(b);
    int rc = xac_msg_encode(m, b, &e);
    CU_ASSERT_EQUAL_FATAL(rc, XAC_OK);
    CU_ASSERT_FATAL(b->len >= 5);
    uint32_t n = (uint32_t)b->data[0] << 24 | (uint32_t)b->data[1] << 16 |
                 (uint32_t)b->data[2] << 8 | b->data[3];
    CU_ASSERT_EQUAL(n, b->len - 4);
    CU_ASSERT_EQUAL(b->data[4], m->type);
}

/* Encodes m, decodes the frame into out. */
static void round_trip(const xac_msg *m, xac_msg *out)
{
    xac_buf b;
    xac_err e;
    encode_ok(m, &b);
    int rc = xac_msg_decode(b.data[4], b.data + 5, b.len - 5, out, &e);
    if (rc != XAC_OK)
        xac_loge("decode failed: %s", e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XAC_OK);
    CU_ASSERT_EQUAL(out->type, m->type);
    xac_buf_free(&b);
}

static void test_round_trip_requests(void)
{
    xac_msg m, d;
    xac_msg_init(&m, XAC_MSG_HELLO);
    m.client = "app";
    m.token = "s3cret";
    round_trip(&m, &d);
    CU_ASSERT_EQUAL(d.version, 1);
    CU_ASSERT_STRING_EQUAL(d.client, "app");
    CU_ASSERT_STRING_EQUAL(d.token, "s3cret");
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_BEGIN);
    m.timeout_ms = 0xDEADBEEF;
    round_trip(&m, &d);
    CU_ASSERT_EQUAL(d.timeout_ms, 0xDEADBEEF);
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_EXEC);
    m.resource = "bank_a";
    m.sql = "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)";
    m.sql_len = strlen(m.sql);
    xac_value p[6] = {{.type = XAC_T_NULL},
                      {.type = XAC_T_INT, .i = INT64_MIN},
                      {.type = XAC_T_DOUBLE, .d = -1.5e300},
                      {.type = XAC_T_TEXT, .s = "héllo", .len = strlen("héllo")},
                      {.type = XAC_T_BLOB, .s = "\0\1\2\xff", .len = 4},
                      {.type = XAC_T_TEXT, .s = "", .len = 0}};
    m.params = p;
    m.nparams = 6;
    round_trip(&m, &d);
    CU_ASSERT_STRING_EQUAL(d.resource, "bank_a");
    CU_ASSERT_EQUAL(d.sql_len, m.sql_len);
    CU_ASSERT_STRING_EQUAL(d.sql, m.sql);
    CU_ASSERT_EQUAL_FATAL(d.nparams, 6);
    CU_ASSERT_EQUAL(d.params[0].type, XAC_T_NULL);
    CU_ASSERT_EQUAL(d.params[1].type, XAC_T_INT);
    CU_ASSERT_EQUAL(d.params[1].i, INT64_MIN);
    CU_ASSERT_EQUAL(d.params[2].type, XAC_T_DOUBLE);
    CU_ASSERT_EQUAL(d.params[2].d, -1.5e300);
    CU_ASSERT_EQUAL(d.params[3].type, XAC_T_TEXT);
    CU_ASSERT_STRING_EQUAL(d.params[3].s, "héllo");
    CU_ASSERT_EQUAL(d.params[4].type, XAC_T_BLOB);
    CU_ASSERT_EQUAL(d.params[4].len, 4);
    CU_ASSERT_TRUE(memcmp(d.params[4].s, "\0\1\2\xff", 4) == 0);
    CU_ASSERT_EQUAL(d.params[5].len, 0);
    CU_ASSERT_PTR_NOT_NULL(d.params[5].s);
    xac_msg_free(&d);
    CU_ASSERT_PTR_NULL(d.params);

    /* SQL may hold NUL bytes; sql_len carries them. */
    xac_msg_init(&m, XAC_MSG_EXEC);
    m.resource = "r";
    m.sql = "a\0b";
    m.sql_len = 3;
    round_trip(&m, &d);
    CU_ASSERT_EQUAL(d.sql_len, 3);
    CU_ASSERT_TRUE(memcmp(d.sql, "a\0b", 4) == 0);
    CU_ASSERT_EQUAL(d.nparams, 0);
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_COMMIT);
    round_trip(&m, &d);
    xac_msg_free(&d);
    xac_msg_init(&m, XAC_MSG_ROLLBACK);
    round_trip(&m, &d);
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_STATUS);
    m.gtrid = "node1.5f3a.2a";
    round_trip(&m, &d);
    CU_ASSERT_STRING_EQUAL(d.gtrid, "node1.5f3a.2a");
    xac_msg_free(&d);
}

/* The admin socket's requests (docs/protocol.md, "Admin socket"). */
static void test_round_trip_admin(void)
{
    xac_msg m, d;
    const uint8_t empty[] = {XAC_MSG_ADMIN_STATUS, XAC_MSG_ADMIN_LIST, XAC_MSG_ADMIN_RECOVER};
    for (size_t i = 0; i < sizeof empty; i++) {
        xac_msg_init(&m, empty[i]);
        round_trip(&m, &d);
        xac_msg_free(&d);
    }
    xac_msg_init(&m, XAC_MSG_ADMIN_RESOLVE);
    m.resource = "bank_a";
    m.xid = "'n1.18f.2a','bank_a',2019648305";
    m.action = XAC_ADMIN_ROLLBACK;
    m.force = 1;
    m.operator_name = "alice";
    round_trip(&m, &d);
    CU_ASSERT_STRING_EQUAL(d.resource, "bank_a");
    CU_ASSERT_STRING_EQUAL(d.xid, m.xid);
    CU_ASSERT_EQUAL(d.action, XAC_ADMIN_ROLLBACK);
    CU_ASSERT_EQUAL(d.force, 1);
    CU_ASSERT_STRING_EQUAL(d.operator_name, "alice");
    xac_msg_free(&d);

    /* The bytes of docs/protocol.md's layout: str resource, str xid, u8
     * action, u8 force, str operator. */
    xac_buf b;
    encode_ok(&m, &b);
    const uint8_t want[] = {0x00, 0x00, 0x00, 0x06, 'b', 'a', 'n', 'k', '_', 'a'};
    CU_ASSERT_EQUAL(b.data[4], XAC_MSG_ADMIN_RESOLVE);
    CU_ASSERT_TRUE(memcmp(b.data + 5, want, sizeof want) == 0);
    size_t at = 5 + sizeof want + 4 + strlen(m.xid);
    CU_ASSERT_EQUAL_FATAL(b.len, at + 2 + 4 + 5);
    CU_ASSERT_EQUAL(b.data[at], XAC_ADMIN_ROLLBACK);
    CU_ASSERT_EQUAL(b.data[at + 1], 1);
    xac_buf_free(&b);
}

static void test_round_trip_replies(void)
{
    xac_msg m, d;
    xac_err e;
    xac_msg_init(&m, XAC_MSG_WELCOME);
    m.node_id = "node1";
    m.max_frame = XAC_FRAME_DEFAULT_MAX;
    round_trip(&m, &d);
    CU_ASSERT_EQUAL(d.version, XAC_PROTO_VERSION);
    CU_ASSERT_STRING_EQUAL(d.node_id, "node1");
    CU_ASSERT_EQUAL(d.max_frame, XAC_FRAME_DEFAULT_MAX);
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_BEGUN);
    m.gtrid = "node1.1.1";
    round_trip(&m, &d);
    CU_ASSERT_STRING_EQUAL(d.gtrid, "node1.1.1");
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_RESULT);
    m.rows.affected = 0x1122334455667788ull;
    round_trip(&m, &d);
    CU_ASSERT_FALSE(d.rows.has_rows);
    CU_ASSERT_EQUAL(d.rows.affected, 0x1122334455667788ull);
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_RESULT);
    const char *names[] = {"id", "note", "bin"};
    CU_ASSERT_EQUAL_FATAL(xac_rows_set_cols(&m.rows, 3, names, &e), XAC_OK);
    const char *r1[] = {"1", NULL, "x\0y"};
    size_t l1[] = {1, 0, 3};
    const char *r2[] = {"2", "", NULL};
    CU_ASSERT_EQUAL(xac_rows_add(&m.rows, r1, l1, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_rows_add(&m.rows, r2, NULL, &e), XAC_OK);
    round_trip(&m, &d);
    CU_ASSERT_TRUE(d.rows.has_rows);
    CU_ASSERT_EQUAL_FATAL(d.rows.ncols, 3);
    CU_ASSERT_EQUAL_FATAL(d.rows.nrows, 2);
    CU_ASSERT_STRING_EQUAL(d.rows.cols[2], "bin");
    size_t len;
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&d.rows, 0, 0, &len), "1");
    CU_ASSERT_PTR_NULL(xac_rows_cell(&d.rows, 0, 1, &len));
    const char *c = xac_rows_cell(&d.rows, 0, 2, &len);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_TRUE(c != NULL && memcmp(c, "x\0y", 3) == 0);
    c = xac_rows_cell(&d.rows, 1, 1, &len);
    CU_ASSERT_TRUE(c != NULL && len == 0 && c[0] == '\0'); /* empty string, not NULL */
    CU_ASSERT_PTR_NULL(xac_rows_cell(&d.rows, 1, 2, &len));
    xac_msg_free(&d);
    /* Rows can keep growing after decode: cap_rows is honest. */
    xac_msg_init(&d, 0);
    xac_rows_free(&m.rows);

    xac_msg_init(&m, XAC_MSG_RESULT);
    CU_ASSERT_EQUAL_FATAL(xac_rows_set_cols(&m.rows, 1, names, &e), XAC_OK);
    round_trip(&m, &d); /* a SELECT that found nothing */
    CU_ASSERT_TRUE(d.rows.has_rows);
    CU_ASSERT_EQUAL(d.rows.ncols, 1);
    CU_ASSERT_EQUAL(d.rows.nrows, 0);
    CU_ASSERT_EQUAL(xac_rows_add(&d.rows, r1, l1, &e), XAC_OK);
    CU_ASSERT_EQUAL(d.rows.nrows, 1);
    xac_msg_free(&d);
    xac_rows_free(&m.rows);

    xac_msg_init(&m, XAC_MSG_OUTCOME);
    m.outcome = XAC_OUTCOME_ROLLED_BACK;
    m.resource = "bank_b";
    m.message = "prepare voted no: 1614 deadlock";
    round_trip(&m, &d);
    CU_ASSERT_EQUAL(d.outcome, XAC_OUTCOME_ROLLED_BACK);
    CU_ASSERT_STRING_EQUAL(d.resource, "bank_b");
    CU_ASSERT_STRING_EQUAL(d.message, m.message);
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_STATE);
    m.gtrid = "g";
    m.state = XAC_STATE_COMMITTING;
    round_trip(&m, &d);
    CU_ASSERT_STRING_EQUAL(d.gtrid, "g");
    CU_ASSERT_EQUAL(d.state, XAC_STATE_COMMITTING);
    xac_msg_free(&d);

    xac_msg_init(&m, XAC_MSG_ERROR);
    m.code = XAC_ESQL;
    m.resource = NULL; /* encodes as empty */
    m.message = "1062: Duplicate entry";
    round_trip(&m, &d);
    CU_ASSERT_EQUAL(d.code, XAC_ESQL);
    CU_ASSERT_STRING_EQUAL(d.resource, "");
    CU_ASSERT_STRING_EQUAL(d.message, m.message);
    xac_msg_free(&d);
}

/* The three examples of docs/protocol.md, copied byte for byte. */
static void test_doc_examples(void)
{
    uint8_t want[128];
    size_t n;
    xac_buf b;
    xac_msg m, d;
    xac_err e;

    n = hex_bytes("00 00 00 14  01  00 01  00 00 00 03 61 70 70  00 00 00 06 73 33 63 72 65 74",
                  want);
    xac_msg_init(&m, XAC_MSG_HELLO);
    m.version = 1;
    m.client = "app";
    m.token = "s3cret";
    encode_ok(&m, &b);
    CU_ASSERT_EQUAL(b.len, n);
    CU_ASSERT_TRUE(b.len == n && memcmp(b.data, want, n) == 0);
    xac_buf_free(&b);

    n = hex_bytes("00 00 00 22  03  00 00 00 06 62 61 6e 6b 5f 61  00 00 00 08 53 45 4c 45 43 54 "
                  "20 3f\n"
                  "             00 01  01 00 00 00 00 00 00 00 07",
                  want);
    xac_value seven = {.type = XAC_T_INT, .i = 7};
    xac_msg_init(&m, XAC_MSG_EXEC);
    m.resource = "bank_a";
    m.sql = "SELECT ?";
    m.sql_len = 8;
    m.params = &seven;
    m.nparams = 1;
    encode_ok(&m, &b);
    CU_ASSERT_EQUAL(b.len, n);
    CU_ASSERT_TRUE(b.len == n && memcmp(b.data, want, n) == 0);
    xac_buf_free(&b);
    CU_ASSERT_EQUAL_FATAL(xac_msg_decode(want[4], want + 5, n - 5, &d, &e), XAC_OK);
    CU_ASSERT_EQUAL(d.nparams, 1);
    CU_ASSERT_EQUAL(d.params[0].i, 7);
    xac_msg_free(&d);

    n = hex_bytes(
        "00 00 00 15  83  01  00 00 00 01  00 00 00 01 3f  00 00 00 01  00  00 00 00 01 37", want);
    xac_msg_init(&m, XAC_MSG_RESULT);
    const char *col[] = {"?"};
    const char *val[] = {"7"};
    CU_ASSERT_EQUAL_FATAL(xac_rows_set_cols(&m.rows, 1, col, &e), XAC_OK);
    CU_ASSERT_EQUAL_FATAL(xac_rows_add(&m.rows, val, NULL, &e), XAC_OK);
    encode_ok(&m, &b);
    CU_ASSERT_EQUAL(b.len, n);
    CU_ASSERT_TRUE(b.len == n && memcmp(b.data, want, n) == 0);
    xac_buf_free(&b);
    xac_rows_free(&m.rows);
}

static int decode_hex(uint8_t type, const char *hex, xac_err *e)
{
    uint8_t buf[256];
    size_t n = hex_bytes(hex, buf);
    xac_msg d;
    int rc = xac_msg_decode(type, buf, n, &d, e);
    if (rc == XAC_OK)
        xac_msg_free(&d);
    return rc;
}

static void test_strict_rejection(void)
{
    xac_err e;
    /* The message names the type, the field and what is wrong. */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_EXEC, "00000001 72  00000000  0002  00  09 00000000", &e),
                    XAC_EPROTO);
    CU_ASSERT_STRING_EQUAL(e.msg, "EXEC: parameter 2: unknown value tag 9");
    CU_ASSERT_EQUAL(decode_hex(0x07, "", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "unknown message type 0x07"));
    CU_ASSERT_EQUAL(decode_hex(0x00, "", &e), XAC_EPROTO);
    CU_ASSERT_EQUAL(decode_hex(0x80, "", &e), XAC_EPROTO);
    /* trailing bytes */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_COMMIT, "00", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "COMMIT"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_BEGIN, "00000000 00", &e), XAC_EPROTO);
    /* truncated */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_BEGIN, "000000", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "BEGIN: timeout"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_HELLO, "0001 00000003 617070", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "HELLO: token"));
    /* string longer than what is left: never allocated */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_STATUS, "FFFFFFFF 41", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "STATUS: gtrid: length 4294967295"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_STATUS, "00000002 41", &e), XAC_EPROTO);
    /* NUL hidden in a name */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_STATUS, "00000003 41 00 42", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "NUL"));
    /* ERROR codes out of range */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_ERROR, "0000 00000000 00000000", &e), XAC_EPROTO);
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_ERROR, "0012 00000000 00000000", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "ERROR: code"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_ERROR, "0011 00000000 00000000", &e), XAC_OK);
    /* enumerations out of range */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_OUTCOME, "02 00000000 00000000", &e), XAC_EPROTO);
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_STATE, "00000001 67 06", &e), XAC_EPROTO);
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_RESULT, "02", &e), XAC_EPROTO);
    /* counts that cannot fit in what is left */
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_EXEC, "00000001 72 00000000 FFFF 00", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "EXEC: parameter count 65535"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_RESULT, "01 FFFFFFFF 00000000", &e), XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "RESULT: column count"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_RESULT, "01 00000001 00000001 41 FFFFFFFF 01 01", &e),
                    XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "RESULT: row count"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_RESULT, "01 00000000 00000005", &e), XAC_EPROTO);
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_RESULT, "01 00000000 00000000", &e), XAC_OK);
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_RESULT, "01 00000001 00000001 41 00000001 02", &e),
                    XAC_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "null flag"));
    CU_ASSERT_EQUAL(decode_hex(XAC_MSG_RESULT, "01 00000001 00000001 41 00000001 01", &e), XAC_OK);
    /* a failing decode in the middle of cells frees what it built (ASan/valgrind) */
    CU_ASSERT_EQUAL(
        decode_hex(XAC_MSG_RESULT, "01 00000001 00000001 41 00000002 00 00000001 42 00 000009", &e),
        XAC_EPROTO);

    /* Every strict prefix of a valid payload is refused. */
    xac_msg m;
    xac_buf b;
    xac_value p[2] = {{.type = XAC_T_TEXT, .s = "x", .len = 1}, {.type = XAC_T_INT, .i = 3}};
    xac_msg_init(&m, XAC_MSG_EXEC);
    m.resource = "bank_a";
    m.sql = "UPDATE t SET a=? WHERE b=?";
    m.params = p;
    m.nparams = 2;
    encode_ok(&m, &b);
    for (size_t len = 0; len < b.len - 5; len++) {
        xac_msg d;
        CU_ASSERT_EQUAL(xac_msg_decode(b.data[4], b.data + 5, len, &d, &e), XAC_EPROTO);
    }
    xac_buf_free(&b);

    /* The encoder refuses what the decoder would refuse. */
    xac_msg_init(&m, XAC_MSG_ERROR);
    m.code = 0;
    xac_buf_init(&b);
    CU_ASSERT_EQUAL(xac_msg_encode(&m, &b, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(b.len, 0);
    xac_msg_init(&m, 0x42);
    CU_ASSERT_EQUAL(xac_msg_encode(&m, &b, &e), XAC_EINVAL);
    xac_value bad = {.type = (xac_type)7};
    xac_msg_init(&m, XAC_MSG_EXEC);
    m.resource = "r";
    m.sql = "x";
    m.params = &bad;
    m.nparams = 1;
    CU_ASSERT_EQUAL(xac_msg_encode(&m, &b, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(b.len, 0);
    xac_buf_free(&b);
}

/* One valid frame of each type, for the mutation loop. */
static size_t sample_frames(xac_buf *out, size_t max)
{
    static xac_value p[5] = {{.type = XAC_T_NULL},
                             {.type = XAC_T_INT, .i = -2},
                             {.type = XAC_T_DOUBLE, .d = 0.25},
                             {.type = XAC_T_TEXT, .s = "text", .len = 4},
                             {.type = XAC_T_BLOB, .s = "\0b", .len = 2}};
    xac_msg m[12];
    xac_err e;
    for (int i = 0; i < 12; i++)
        xac_msg_init(&m[i], 0);
    m[0].type = XAC_MSG_HELLO, m[0].client = "app", m[0].token = "tok";
    m[1].type = XAC_MSG_BEGIN, m[1].timeout_ms = 5000;
    m[2].type = XAC_MSG_EXEC, m[2].resource = "bank_a", m[2].sql = "SELECT ?,?,?,?,?";
    m[2].params = p, m[2].nparams = 5;
    m[3].type = XAC_MSG_COMMIT;
    m[4].type = XAC_MSG_ROLLBACK;
    m[5].type = XAC_MSG_STATUS, m[5].gtrid = "node1.1.2";
    m[6].type = XAC_MSG_WELCOME, m[6].node_id = "node1", m[6].max_frame = 1024;
    m[7].type = XAC_MSG_BEGUN, m[7].gtrid = "node1.1.2";
    m[8].type = XAC_MSG_RESULT;
    const char *names[] = {"a", "b"};
    const char *row[] = {"1", NULL};
    xac_rows_set_cols(&m[8].rows, 2, names, &e);
    xac_rows_add(&m[8].rows, row, NULL, &e);
    xac_rows_add(&m[8].rows, names, NULL, &e);
    m[9].type = XAC_MSG_OUTCOME, m[9].outcome = 1, m[9].resource = "r", m[9].message = "no";
    m[10].type = XAC_MSG_STATE, m[10].gtrid = "g", m[10].state = 4;
    m[11].type = XAC_MSG_ERROR, m[11].code = 7, m[11].resource = "r", m[11].message = "bad";
    size_t n = 0;
    for (int i = 0; i < 12 && n < max; i++, n++)
        encode_ok(&m[i], &out[n]);
    xac_rows_free(&m[8].rows);
    return n;
}

static void test_mutation(void)
{
    xac_buf frames[12];
    size_t nf = sample_frames(frames, 12);
    uint8_t buf[512];
    size_t accepted = 0, rejected = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const xac_buf *f = &frames[next_rand() % nf];
        size_t n = f->len;
        memcpy(buf, f->data, n);
        int muts = 1 + (int)(next_rand() % 4);
        for (int k = 0; k < muts; k++) {
            switch (next_rand() % 5) {
            case 0: /* flip a byte */
                buf[next_rand() % n] = (uint8_t)next_rand();
                break;
            case 1: /* flip a bit */
                buf[next_rand() % n] ^= (uint8_t)(1u << (next_rand() % 8));
                break;
            case 2: /* truncate */
                if (n > 5)
                    n = 5 + next_rand() % (n - 5);
                break;
            case 3: /* append junk */
                for (int j = (int)(next_rand() % 8); j > 0 && n < sizeof buf; j--)
                    buf[n++] = (uint8_t)next_rand();
                break;
            default: /* a big number where a length likely is */
                if (n > 9) {
                    size_t at = 5 + next_rand() % (n - 9);
                    buf[at] = 0xFF;
                    buf[at + 1] = (uint8_t)next_rand();
                }
                break;
            }
        }
        xac_msg d;
        xac_err e;
        int rc = xac_msg_decode(buf[4], buf + 5, n - 5, &d, &e);
        if (rc != XAC_OK) {
            CU_ASSERT_EQUAL(rc, XAC_EPROTO);
            rejected++;
            continue;
        }
        accepted++;
        /* Strict decoding means one encoding per message: it re-encodes exactly. */
        xac_buf b;
        xac_buf_init(&b);
        rc = xac_msg_encode(&d, &b, &e);
        CU_ASSERT_EQUAL(rc, XAC_OK);
        CU_ASSERT_TRUE(rc != XAC_OK ||
                       (b.len == n - 4 + 4 && memcmp(b.data + 4, buf + 4, n - 4) == 0));
        xac_buf_free(&b);
        xac_msg_free(&d);
    }
    if (getenv("XAC_TEST_VERBOSE") != NULL)
        xac_logi("mutation: %zu accepted, %zu rejected", accepted, rejected);
    CU_ASSERT_TRUE(accepted > 0);
    CU_ASSERT_TRUE(rejected > 0);
    for (size_t i = 0; i < nf; i++)
        xac_buf_free(&frames[i]);
}

static void test_frame_read(void)
{
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    xac_err e;
    xac_buf payload;
    xac_buf_init(&payload);
    uint8_t type = 0;

    /* Two frames back to back; the second reuses the payload buffer. */
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_STATUS);
    m.gtrid = "node1.2.3";
    CU_ASSERT_EQUAL(xac_msg_send(sv[0], &m, &e), XAC_OK);
    xac_msg_init(&m, XAC_MSG_COMMIT);
    CU_ASSERT_EQUAL(xac_msg_send(sv[0], &m, &e), XAC_OK);
    CU_ASSERT_EQUAL_FATAL(xac_frame_read(sv[1], 1024, &type, &payload, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_STATUS);
    xac_msg d;
    CU_ASSERT_EQUAL_FATAL(xac_msg_decode(type, payload.data, payload.len, &d, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(d.gtrid, "node1.2.3");
    xac_msg_free(&d);
    CU_ASSERT_EQUAL_FATAL(xac_frame_read(sv[1], 1024, &type, &payload, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_COMMIT);
    CU_ASSERT_EQUAL(payload.len, 0);

    /* Oversize: refused from the header alone; the body stays unread. */
    const uint8_t big[] = {0, 0, 4, 1, XAC_MSG_EXEC};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], big, sizeof big, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_frame_read(sv[1], 1024, &type, &payload, &e), XAC_ELIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1025"));
    uint8_t rest;
    CU_ASSERT_EQUAL(read(sv[1], &rest, 1), 1); /* the type byte was not consumed */
    CU_ASSERT_EQUAL(rest, XAC_MSG_EXEC);

    /* Exactly at the limit is fine. */
    const uint8_t at[] = {0, 0, 0, 5, XAC_MSG_BEGIN, 0, 0, 0, 1};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], at, sizeof at, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_frame_read(sv[1], 5, &type, &payload, &e), XAC_OK);
    CU_ASSERT_EQUAL(payload.len, 4);

    /* Zero length. */
    const uint8_t zero[] = {0, 0, 0, 0};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], zero, 4, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_frame_read(sv[1], 1024, &type, &payload, &e), XAC_EPROTO);

    /* Closed mid-frame, in the body. */
    const uint8_t part[] = {0, 0, 0, 10, XAC_MSG_STATUS, 0, 0};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], part, sizeof part, &e), XAC_OK);
    close(sv[0]);
    CU_ASSERT_EQUAL(xac_frame_read(sv[1], 1024, &type, &payload, &e), XAC_ECONN);
    CU_ASSERT_STRING_EQUAL(e.msg, "connection closed mid-frame");
    /* Then closed before any byte. */
    CU_ASSERT_EQUAL(xac_frame_read(sv[1], 1024, &type, &payload, &e), XAC_ECONN);
    CU_ASSERT_STRING_EQUAL(e.msg, "connection closed");
    close(sv[1]);

    /* Closed mid-header. */
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL(xac_write_all(sv[0], zero, 2, &e), XAC_OK);
    close(sv[0]);
    CU_ASSERT_EQUAL(xac_frame_read(sv[1], 1024, &type, &payload, &e), XAC_ECONN);
    CU_ASSERT_STRING_EQUAL(e.msg, "connection closed mid-frame");
    close(sv[1]);
    xac_buf_free(&payload);
}

/* The buffered reader (xac_reader): the same errors as xac_frame_read, one
 * read() for whatever the peer sent, frames that came in one write served
 * one after the other, and frames larger than its buffer. */
static void test_reader(void)
{
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    xac_err e;
    xac_reader r;
    xac_reader_init(&r, sv[1]);
    uint8_t type = 0;
    const uint8_t *p = NULL;
    size_t len = 0;

    /* Two frames in one write: the first read takes both (the second is
     * pending, not left in the socket), and both come out in order. */
    xac_buf two;
    xac_buf_init(&two);
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_STATUS);
    m.gtrid = "node1.2.3";
    CU_ASSERT_EQUAL_FATAL(xac_msg_encode(&m, &two, &e), XAC_OK);
    size_t first = two.len;
    xac_msg_init(&m, XAC_MSG_COMMIT);
    CU_ASSERT_EQUAL_FATAL(xac_msg_encode(&m, &two, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_write_all(sv[0], two.data, two.len, &e), XAC_OK);
    CU_ASSERT_EQUAL_FATAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_STATUS);
    CU_ASSERT_EQUAL(xac_reader_pending(&r), two.len - first);
    uint8_t ptype = 0;
    const uint8_t *pp = NULL;
    size_t plen = 99;
    CU_ASSERT_TRUE(xac_reader_peek(&r, 0, &ptype, &pp, &plen)); /* the buffered one */
    CU_ASSERT_EQUAL(ptype, XAC_MSG_COMMIT);
    CU_ASSERT_EQUAL(plen, 0);
    CU_ASSERT_FALSE(xac_reader_peek(&r, 1, &ptype, &pp, &plen));
    xac_msg d;
    CU_ASSERT_EQUAL_FATAL(xac_msg_decode(type, p, len, &d, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(d.gtrid, "node1.2.3");
    xac_msg_free(&d);
    CU_ASSERT_EQUAL_FATAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_COMMIT);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(xac_reader_pending(&r), 0);
    CU_ASSERT_FALSE(xac_reader_peek(&r, 0, &ptype, &pp, &plen)); /* nothing buffered */

    /* A frame that arrives a few bytes at a time (split in the header and in
     * the body), after a partial frame already sits in the buffer. */
    CU_ASSERT_EQUAL(xac_write_all(sv[0], two.data, 2, &e), XAC_OK);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        for (size_t i = 2; i < two.len; i += 3) {
            usleep(2000);
            size_t n = two.len - i < 3 ? two.len - i : 3;
            if (xac_write_all(sv[0], two.data + i, n, NULL) != XAC_OK)
                _exit(1);
        }
        _exit(0);
    }
    CU_ASSERT_EQUAL_FATAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_STATUS);
    CU_ASSERT_EQUAL(len, first - 5);
    CU_ASSERT_EQUAL_FATAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_COMMIT);
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    xac_buf_free(&two);

    /* A frame larger than the buffer's first size and than what it keeps,
     * then a small one behind it in the same stream. */
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        char *sql = malloc(300000);
        if (sql == NULL)
            _exit(1);
        memset(sql, 'q', 300000);
        xac_msg x;
        xac_msg_init(&x, XAC_MSG_EXEC);
        x.resource = "r";
        x.sql = sql;
        x.sql_len = 300000;
        xac_msg c;
        xac_msg_init(&c, XAC_MSG_ROLLBACK);
        _exit(xac_msg_send(sv[0], &x, NULL) == XAC_OK && xac_msg_send(sv[0], &c, NULL) == XAC_OK
                  ? 0
                  : 1);
    }
    CU_ASSERT_EQUAL_FATAL(xac_reader_frame(&r, 1u << 20, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_EXEC);
    CU_ASSERT_EQUAL(len, 4 + 1 + 4 + 300000 + 2);
    CU_ASSERT_EQUAL_FATAL(xac_msg_decode(type, p, len, &d, &e), XAC_OK);
    CU_ASSERT_EQUAL(d.sql_len, 300000);
    CU_ASSERT_EQUAL(d.sql[299999], 'q');
    xac_msg_free(&d);
    CU_ASSERT_EQUAL_FATAL(xac_reader_frame(&r, 1u << 20, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_ROLLBACK);
    CU_ASSERT_TRUE(r.cap <= 1u << 20);
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Peeking behind the next frame: two EXECs, a COMMIT, and a frame whose
     * tail has not arrived, which is not there yet. */
    xac_buf pipe;
    xac_buf_init(&pipe);
    const char *const rs[] = {"bank_a", "bank_b"};
    for (int i = 0; i < 2; i++) {
        xac_msg_init(&m, XAC_MSG_EXEC);
        m.resource = (char *)rs[i];
        m.sql = "UPDATE t SET v = 1";
        CU_ASSERT_EQUAL_FATAL(xac_msg_encode(&m, &pipe, &e), XAC_OK);
    }
    xac_msg_init(&m, XAC_MSG_COMMIT);
    CU_ASSERT_EQUAL_FATAL(xac_msg_encode(&m, &pipe, &e), XAC_OK);
    const uint8_t half[] = {0, 0, 0, 9, XAC_MSG_STATUS, 0};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], pipe.data, pipe.len, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_write_all(sv[0], half, sizeof half, &e), XAC_OK);
    CU_ASSERT_EQUAL_FATAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_EXEC);
    const char *name = NULL;
    size_t nlen = 0;
    CU_ASSERT_TRUE(xac_exec_resource(p, len, &name, &nlen));
    CU_ASSERT_TRUE(nlen == 6 && memcmp(name, "bank_a", 6) == 0);
    CU_ASSERT_FALSE(xac_exec_resource(p, 3, &name, &nlen)); /* too short for the length */
    CU_ASSERT_FALSE(xac_exec_resource(p, 8, &name, &nlen)); /* shorter than the name */
    CU_ASSERT_TRUE(xac_reader_peek(&r, 0, &ptype, &pp, &plen));
    CU_ASSERT_EQUAL(ptype, XAC_MSG_EXEC);
    CU_ASSERT_TRUE(xac_exec_resource(pp, plen, &name, &nlen));
    CU_ASSERT_TRUE(nlen == 6 && memcmp(name, "bank_b", 6) == 0);
    CU_ASSERT_TRUE(xac_reader_peek(&r, 1, &ptype, &pp, &plen));
    CU_ASSERT_EQUAL(ptype, XAC_MSG_COMMIT);
    CU_ASSERT_EQUAL(plen, 0);
    CU_ASSERT_FALSE(xac_reader_peek(&r, 2, &ptype, &pp, &plen)); /* 6 of its 13 bytes */
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_COMMIT);
    xac_buf_free(&pipe);
    const uint8_t rest[] = {0, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], rest, sizeof rest, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(type, XAC_MSG_STATUS);

    /* Oversize: refused from the header, before its body arrives. */
    const uint8_t big[] = {0, 0, 4, 1, XAC_MSG_EXEC};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], big, sizeof big, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_ELIMIT);
    CU_ASSERT_STRING_EQUAL(e.msg, "frame of 1025 bytes exceeds the limit of 1024 bytes");
    CU_ASSERT_TRUE(r.cap > 0 && r.cap < 65536); /* the large frame's room was given back */
    xac_reader_free(&r);
    xac_reader_init(&r, sv[1]);

    /* Exactly at the limit is fine. */
    const uint8_t at[] = {0, 0, 0, 5, XAC_MSG_BEGIN, 0, 0, 0, 1};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], at, sizeof at, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 5, &type, &p, &len, &e), XAC_OK);
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT_EQUAL(p[3], 1);

    /* Zero length. */
    const uint8_t zero[] = {0, 0, 0, 0};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], zero, 4, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_EPROTO);
    CU_ASSERT_STRING_EQUAL(e.msg, "frame length 0: a frame holds at least its type");
    xac_reader_free(&r);
    xac_reader_init(&r, sv[1]);

    /* A timeout (SO_RCVTIMEO) is a failed read that says so. */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    CU_ASSERT_EQUAL(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_ECONN);
    CU_ASSERT_STRING_EQUAL(e.msg, "read from the connection timed out");

    /* Closed mid-frame, in the body; then closed before any byte. */
    const uint8_t part[] = {0, 0, 0, 10, XAC_MSG_STATUS, 0, 0};
    CU_ASSERT_EQUAL(xac_write_all(sv[0], part, sizeof part, &e), XAC_OK);
    close(sv[0]);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_ECONN);
    CU_ASSERT_STRING_EQUAL(e.msg, "connection closed mid-frame");
    xac_reader_free(&r);
    xac_reader_init(&r, sv[1]);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_ECONN);
    CU_ASSERT_STRING_EQUAL(e.msg, "connection closed");
    close(sv[1]);

    /* Closed mid-header. */
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    xac_reader_init(&r, sv[1]);
    CU_ASSERT_EQUAL(xac_write_all(sv[0], zero, 2, &e), XAC_OK);
    close(sv[0]);
    CU_ASSERT_EQUAL(xac_reader_frame(&r, 1024, &type, &p, &len, &e), XAC_ECONN);
    CU_ASSERT_STRING_EQUAL(e.msg, "connection closed mid-frame");
    close(sv[1]);
    xac_reader_free(&r);
    CU_ASSERT_PTR_NULL(r.data);
}

static void test_write_all(void)
{
    xac_err e;
    /* Writing to a socket whose peer is gone fails with ECONN and no SIGPIPE
     * (the default SIGPIPE action would end this program). */
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    char data[4096];
    memset(data, 'x', sizeof data);
    CU_ASSERT_EQUAL(xac_write_all(sv[0], data, sizeof data, &e), XAC_ECONN);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "write to the connection failed"));
    close(sv[0]);

    /* Not a socket: falls back to write(). */
    int pf[2];
    CU_ASSERT_EQUAL_FATAL(pipe(pf), 0);
    CU_ASSERT_EQUAL(xac_write_all(pf[1], "hello", 5, &e), XAC_OK);
    char got[8] = {0};
    CU_ASSERT_EQUAL(read(pf[0], got, sizeof got), 5);
    CU_ASSERT_STRING_EQUAL(got, "hello");
    close(pf[0]);
    close(pf[1]);

    /* A frame far larger than the socket buffer: short writes must loop
     * while a child process reads it. */
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        xac_buf p;
        xac_buf_init(&p);
        uint8_t t;
        int rc = xac_frame_read(sv[1], XAC_FRAME_DEFAULT_MAX, &t, &p, NULL);
        _exit(rc == XAC_OK && t == XAC_MSG_EXEC && p.len == 1000000 + 4 + 1 + 4 + 2 ? 0 : 1);
    }
    close(sv[1]);
    char *sql = malloc(1000000);
    CU_ASSERT_FATAL(sql != NULL);
    memset(sql, ' ', 1000000);
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_EXEC);
    m.resource = "r";
    m.sql = sql;
    m.sql_len = 1000000;
    CU_ASSERT_EQUAL(xac_msg_send(sv[0], &m, &e), XAC_OK);
    free(sql);
    close(sv[0]);
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_buf(void)
{
    xac_buf b;
    xac_err e;
    xac_buf_init(&b);
    for (int i = 0; i < 10000; i++)
        CU_ASSERT_EQUAL_FATAL(xac_buf_put(&b, &i, sizeof i, &e), XAC_OK);
    CU_ASSERT_EQUAL(b.len, 10000 * sizeof(int));
    int v;
    memcpy(&v, b.data + 9999 * sizeof(int), sizeof v);
    CU_ASSERT_EQUAL(v, 9999);
    CU_ASSERT_EQUAL(xac_buf_reserve(&b, SIZE_MAX, &e), XAC_ENOMEM);
    xac_buf_free(&b);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"round trip requests", test_round_trip_requests},
                                    {"round trip replies", test_round_trip_replies},
                                    {"round trip admin requests", test_round_trip_admin},
                                    {"protocol.md examples", test_doc_examples},
                                    {"strict rejection", test_strict_rejection},
                                    {"random mutation", test_mutation},
                                    {"frame read", test_frame_read},
                                    {"buffered reader", test_reader},
                                    {"write all", test_write_all},
                                    {"buffer", test_buf},
                                    {NULL, NULL}};
    return cu_add_suite("wire", tests);
}
