/* Unit tests of the mssql driver's parts that need no server: the '?' to @Pn
 * rewrite (which must leave literals, quoted names and comments alone), the
 * decoder of xp_sqljdbc_xa_recover's packed records (which must refuse any
 * record that runs past the data), the SQL Server error table and the gtrid
 * check that guards the marker table's SQL, and the mssql settings in
 * drv_check_conf and the config file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cu.h"
#include "drv.h"
#include "mssql_internal.h"

static char *rewrite(const char *sql, const char *const *subst, size_t nsubst, size_t *nmarks)
{
    char *out = NULL;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_mssql_rewrite(sql, strlen(sql), subst, nsubst, &out, nmarks, &e),
                          XAC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    return out;
}

static void expect_rewrite(const char *sql, const char *want, size_t want_marks)
{
    size_t n = 99;
    char *out = rewrite(sql, NULL, 0, &n);
    CU_ASSERT_STRING_EQUAL(out, want);
    CU_ASSERT_EQUAL(n, want_marks);
    free(out);
}

static void test_rewrite(void)
{
    expect_rewrite("SELECT 1", "SELECT 1", 0);
    expect_rewrite("", "", 0);
    expect_rewrite("INSERT INTO t VALUES (?, ?)", "INSERT INTO t VALUES (@P1, @P2)", 2);
    expect_rewrite("?", "@P1", 1);
    expect_rewrite("SELECT '?', ? FROM t", "SELECT '?', @P1 FROM t", 1);
    /* A doubled quote stays inside the literal. */
    expect_rewrite("SELECT 'it''s ?', ?", "SELECT 'it''s ?', @P1", 1);
    expect_rewrite("SELECT N'?' + ?", "SELECT N'?' + @P1", 1);
    expect_rewrite("SELECT \"a?b\", [c?d], ?", "SELECT \"a?b\", [c?d], @P1", 1);
    /* "]]" is a ']' inside a bracketed name, not its end. */
    expect_rewrite("SELECT [a]]?b] FROM t WHERE x = ?", "SELECT [a]]?b] FROM t WHERE x = @P1", 1);
    expect_rewrite("SELECT ? -- why?\n, ?", "SELECT @P1 -- why?\n, @P2", 2);
    /* T-SQL block comments nest. */
    expect_rewrite("SELECT /* a /* b? */ c? */ ?", "SELECT /* a /* b? */ c? */ @P1", 1);
    expect_rewrite("SELECT ? /* open ?", "SELECT @P1 /* open ?", 1);
    expect_rewrite("SELECT 'open ?", "SELECT 'open ?", 0);
    expect_rewrite("SELECT a/b, ?-?", "SELECT a/b, @P1-@P2", 2);

    char big[64 * 3 + 1];
    for (int i = 0; i < 64; i++)
        memcpy(big + i * 3, "?, ", 3);
    big[64 * 3] = '\0';
    size_t n = 0;
    char *out = rewrite(big, NULL, 0, &n);
    CU_ASSERT_EQUAL(n, 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "@P64, "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "@P10, @P11"));
    free(out);
}

static void test_rewrite_subst(void)
{
    const char *subst[] = {NULL, "N''", NULL, "0x"};
    size_t n = 0;
    char *out = rewrite("VALUES (?, ?, ?, ?, ?)", subst, 4, &n);
    /* Substituted marks keep their place in the numbering. */
    CU_ASSERT_STRING_EQUAL(out, "VALUES (@P1, N'', @P3, 0x, @P5)");
    CU_ASSERT_EQUAL(n, 5);
    free(out);
}

/* Appends one packed record. */
static size_t put_rec(uint8_t *p, uint32_t fid, const char *g, const char *b)
{
    size_t gl = strlen(g), bl = strlen(b);
    p[0] = (uint8_t)fid;
    p[1] = (uint8_t)(fid >> 8);
    p[2] = (uint8_t)(fid >> 16);
    p[3] = (uint8_t)(fid >> 24);
    p[4] = (uint8_t)gl;
    p[5] = (uint8_t)bl;
    memcpy(p + 6, g, gl);
    memcpy(p + 6 + gl, b, bl);
    return 6 + gl + bl;
}

static void test_decode(void)
{
    uint8_t buf[600];
    size_t len = 0;
    len += put_rec(buf + len, XAC_FORMAT_ID, "node1.5f.1", "ms1");
    len += put_rec(buf + len, 0xFFFFFFFFu, "foreign", "");
    char g64[65];
    memset(g64, 'g', 64);
    g64[64] = '\0';
    len += put_rec(buf + len, 7, g64, g64);
    drv_indoubt *v = NULL;
    size_t n = 0;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL_FATAL(drv_mssql_decode_recover(buf, len, &v, &n, &e), XAC_OK);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    xac_xid want;
    CU_ASSERT_EQUAL(xac_xid_make(&want, "node1.5f.1", "ms1", &e), XAC_OK);
    CU_ASSERT_TRUE(xac_xid_equal(&v[0].xid, &want));
    CU_ASSERT_TRUE(v[0].decoded);
    CU_ASSERT_EQUAL(v[1].xid.format_id, -1); /* little-endian, signed */
    CU_ASSERT_EQUAL(v[1].xid.gtrid_len, 7);
    CU_ASSERT_EQUAL(v[1].xid.bqual_len, 0);
    CU_ASSERT_EQUAL(v[2].xid.format_id, 7);
    CU_ASSERT_EQUAL(v[2].xid.gtrid_len, 64);
    CU_ASSERT_EQUAL(v[2].xid.bqual_len, 64);
    CU_ASSERT_EQUAL(memcmp(v[2].xid.bqual, g64, 64), 0);
    free(v);

    /* Nothing to decode. */
    v = (drv_indoubt *)1;
    CU_ASSERT_EQUAL(drv_mssql_decode_recover(NULL, 0, &v, &n, &e), XAC_OK);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(n, 0);
}

static void expect_bad(const uint8_t *buf, size_t len, const char *words)
{
    drv_indoubt *v = (drv_indoubt *)1;
    size_t n = 9;
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_NOT_EQUAL(drv_mssql_decode_recover(buf, len, &v, &n, &e), XAC_OK);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, words));
}

static void test_decode_overrun(void)
{
    uint8_t buf[300];
    size_t len = put_rec(buf, 1, "abc", "de");
    /* Every cut inside the second record is refused, naming record 2. */
    size_t len2 = len + put_rec(buf + len, 1, "fghij", "kl");
    for (size_t cut = len + 1; cut < len2; cut++)
        expect_bad(buf, cut, "record 2 at byte 11");
    expect_bad(buf, len + 3, "header needs 6 bytes");
    expect_bad(buf, len2 - 1, "only 6 left");
    /* A length over 64 is refused even when the bytes are there. */
    uint8_t big[6 + 65 + 1];
    memset(big, 'x', sizeof big);
    big[4] = 65;
    big[5] = 1;
    expect_bad(big, sizeof big, "over 64");
    /* An empty gtrid is not an XID. */
    uint8_t empty[6] = {1, 0, 0, 0, 0, 0};
    expect_bad(empty, sizeof empty, "record 1");
}

static void test_errmap(void)
{
    const char *note = NULL;
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(1205, DRV_STEP_EXEC, &note), XA_RBDEADLOCK);
    CU_ASSERT_PTR_NOT_NULL(note);
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(1205, DRV_STEP_COMMIT, NULL), XA_RBDEADLOCK);
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(2627, DRV_STEP_EXEC, &note), XAER_RMERR);
    CU_ASSERT_STRING_EQUAL(note, "duplicate key");
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(2601, DRV_STEP_EXEC, &note), XAER_RMERR);
    CU_ASSERT_STRING_EQUAL(note, "duplicate key");
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(2627, DRV_STEP_COMMIT, NULL), XA_RBINTEGRITY);
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(547, DRV_STEP_EXEC, &note), XAER_RMERR);
    CU_ASSERT_STRING_EQUAL(note, "constraint violation");
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(547, DRV_STEP_COMMIT, NULL), XA_RBINTEGRITY);
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(18456, DRV_STEP_OPEN, NULL), XAER_RMFAIL);
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(208, DRV_STEP_EXEC, &note), XAER_RMERR);
    CU_ASSERT_PTR_NULL(note);
    CU_ASSERT_EQUAL(drv_mssql_errno_to_xa(208, DRV_STEP_OPEN, NULL), XAER_RMFAIL);
    CU_ASSERT_TRUE(drv_mssql_errno_is_login_failure(18456));
    CU_ASSERT_FALSE(drv_mssql_errno_is_login_failure(2627));
    CU_ASSERT_TRUE(drv_mssql_dberr_is_connection_loss(20004));  /* SYBEREAD */
    CU_ASSERT_TRUE(drv_mssql_dberr_is_connection_loss(20017));  /* SYBESEOF */
    CU_ASSERT_FALSE(drv_mssql_dberr_is_connection_loss(20018)); /* SYBESMSG */
}

static void test_gtrid(void)
{
    CU_ASSERT_TRUE(drv_mssql_valid_gtrid("node_1.18c5.a-1", false));
    CU_ASSERT_FALSE(drv_mssql_valid_gtrid("", false));
    CU_ASSERT_TRUE(drv_mssql_valid_gtrid("", true));
    CU_ASSERT_FALSE(drv_mssql_valid_gtrid(NULL, true));
    CU_ASSERT_FALSE(drv_mssql_valid_gtrid("a'b", false));
    CU_ASSERT_FALSE(drv_mssql_valid_gtrid("a b", false));
    CU_ASSERT_FALSE(drv_mssql_valid_gtrid("a%", true));
    char g[66];
    memset(g, 'a', 65);
    g[65] = '\0';
    CU_ASSERT_FALSE(drv_mssql_valid_gtrid(g, false));
    g[64] = '\0';
    CU_ASSERT_TRUE(drv_mssql_valid_gtrid(g, false));
}

static void test_check_conf(void)
{
    drv_conf c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "ms1");
    snprintf(c.driver, sizeof c.driver, "mssql");
    snprintf(c.host, sizeof c.host, "127.0.0.1");
    snprintf(c.database, sizeof c.database, "bank");
    c.pool_size = 2;
    xac_err e;
    CU_ASSERT_PTR_EQUAL(drv_find("mssql"), drv_find(c.driver));
    CU_ASSERT_PTR_NOT_NULL(drv_find("mssql"));
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_OK);
    snprintf(c.tds_version, sizeof c.tds_version, "7.0");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "tds_version"));
    snprintf(c.tds_version, sizeof c.tds_version, "7.1");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_OK);
    snprintf(c.encryption, sizeof c.encryption, "strict");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "encryption"));
    snprintf(c.encryption, sizeof c.encryption, "request");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_OK);
    snprintf(c.marker_table, sizeof c.marker_table, "dbo.markers");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "marker_table"));
    snprintf(c.marker_table, sizeof c.marker_table, "1abc");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    snprintf(c.marker_table, sizeof c.marker_table, "_markers2");
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_OK);
    c.database[0] = '\0';
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "database"));
    snprintf(c.database, sizeof c.database, "bank");
    c.host[0] = '\0';
    CU_ASSERT_EQUAL(drv_check_conf(&c, &e), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "host"));
}

/* Loads a config whose only resource is res; returns config_load's status. */
static int load_res(const char *res, xacd_config *cfg, xac_err *err)
{
    char path[] = "/tmp/xac-test-mssql-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f,
            "node_id = \"n1\";\njournal_dir = \"/tmp/j\";\nresources = (\n%s\n);\n"
            "clients = ( { name = \"app\"; token = \"t0k\"; } );\n",
            res);
    fclose(f);
    int rc = config_load(path, cfg, err);
    unlink(path);
    return rc;
}

static void test_config_file(void)
{
    xacd_config cfg;
    xac_err e;
    memset(&cfg, 0, sizeof cfg);
    CU_ASSERT_EQUAL_FATAL(load_res("{ name = \"ms1\"; driver = \"mssql\"; host = \"h\"; user = "
                                   "\"sa\"; password = \"pw\"; database = \"bank\"; }",
                                   &cfg, &e),
                          XAC_OK);
    const drv_conf *r = config_resource(&cfg, "ms1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_TRUE(r->last_resource);
    CU_ASSERT_EQUAL(r->port, 1433);
    CU_ASSERT_STRING_EQUAL(r->tds_version, "7.4");
    CU_ASSERT_STRING_EQUAL(r->encryption, "off");
    CU_ASSERT_STRING_EQUAL(r->marker_table, "xac_commit_marker");
    config_free(&cfg);

    memset(&cfg, 0, sizeof cfg);
    CU_ASSERT_EQUAL_FATAL(load_res("{ name = \"ms1\"; driver = \"mssql\"; host = \"h\"; port = "
                                   "2433; database = \"bank\"; tds_version = \"7.2\"; "
                                   "encryption = \"request\"; marker_table = \"mk\"; }",
                                   &cfg, &e),
                          XAC_OK);
    r = config_resource(&cfg, "ms1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->port, 2433);
    CU_ASSERT_STRING_EQUAL(r->tds_version, "7.2");
    CU_ASSERT_STRING_EQUAL(r->encryption, "request");
    CU_ASSERT_STRING_EQUAL(r->marker_table, "mk");
    config_free(&cfg);

    /* A mysql resource is not a last resource. */
    memset(&cfg, 0, sizeof cfg);
    CU_ASSERT_EQUAL_FATAL(load_res("{ name = \"a\"; driver = \"mysql\"; host = \"h\"; }", &cfg, &e),
                          XAC_OK);
    CU_ASSERT_FALSE(config_resource(&cfg, "a")->last_resource);
    config_free(&cfg);

    memset(&cfg, 0, sizeof cfg);
    CU_ASSERT_EQUAL(load_res("{ name = \"ms1\"; driver = \"mssql\"; host = \"h\"; database = "
                             "\"b\"; marker_table = \"a;b\"; }",
                             &cfg, &e),
                    XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "marker_table"));
    config_free(&cfg);
    memset(&cfg, 0, sizeof cfg);
    CU_ASSERT_EQUAL(load_res("{ name = \"ms1\"; driver = \"sqlserver\"; host = \"h\"; }", &cfg, &e),
                    XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "\"mssql\""));
    config_free(&cfg);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"rewrite", test_rewrite},
                                    {"rewrite with literals", test_rewrite_subst},
                                    {"decode recover", test_decode},
                                    {"decode recover overrun", test_decode_overrun},
                                    {"error map", test_errmap},
                                    {"gtrid check", test_gtrid},
                                    {"check conf", test_check_conf},
                                    {"config file", test_config_file},
                                    {NULL, NULL}};
    return cu_add_suite("mssql parts", tests);
}
