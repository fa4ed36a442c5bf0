/* Unit tests of coordinator/config.c: a full config loads with its values and
 * defaults, and each kind of mistake is refused with the file, the line and a
 * message that says what was expected. Config files are written to a fresh
 * temporary directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "cu.h"

static char tmpdir[64];
static char cfgpath[128];

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
    CU_ASSERT_FATAL(chmod(path, mode) == 0);
}

/* 1-based line of the first line of text containing needle, 0 if none. */
static int line_of(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (p == NULL)
        return 0;
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

/* Loads text as a config; returns the status and leaves the error in *err. */
static int load_text(const char *text, xacd_config *cfg, xac_err *err)
{
    write_file(cfgpath, text, 0600);
    return config_load(cfgpath, cfg, err);
}

/* Asserts err->msg begins with "PATH:LINE:" and contains want. */
static void expect_error(const xac_err *err, int line, const char *want)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d:", cfgpath, line);
    CU_ASSERT_EQUAL(err->code, XAC_ECONFIG);
    CU_ASSERT_EQUAL(strncmp(err->msg, prefix, strlen(prefix)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, want));
}

#define RES_A                                                                                      \
    "  { name = \"bank_a\"; driver = \"mysql\"; host = \"127.0.0.1\"; port = 3306;\n"              \
    "    user = \"xac\"; password = \"pw\"; database = \"bank\"; }"

static const char *const minimal = "node_id = \"n1\";\n"
                                   "journal_dir = \"/tmp/j\";\n"
                                   "resources = (\n" RES_A "\n);\n"
                                   "clients = ( { name = \"app\"; token = \"t0k\"; } );\n";

static void test_valid_full(void)
{
    char tokfile[160], text[4096];
    snprintf(tokfile, sizeof tokfile, "%s/app.token", tmpdir);
    write_file(tokfile, "sekrit-token\nsecond line ignored\n", 0600);
    snprintf(text, sizeof text,
             "node_id = \"node-7\";\n"
             "listen = { unix = \"%s/x.sock\"; tcp = \"127.0.0.1:7411\"; };\n"
             "journal_dir = \"%s/journal\";\n"
             "journal_segment_size = \"1M\";\n"
             "timeouts = { transaction_ms = 1000; max_transaction_ms = 2000; prepare_ms = 300;\n"
             "             connect_ms = 400; pool_wait_ms = 0; };\n"
             "limits = { max_frame = 65536; max_sessions_per_client = 3; };\n"
             "workers = 4;\n"
             "log = { level = \"debug\"; file = \"%s/xacd.log\"; };\n"
             "resources = (\n" RES_A ",\n"
             "  { name = \"bank_b\"; driver = \"odbc\"; dialect = \"postgresql\";\n"
             "    odbc_driver = \"PostgreSQL Unicode\"; host = \"127.0.0.1\"; port = 5432;\n"
             "    user = \"xac\"; password = \"pw2\"; database = \"bank\"; pool_size = 2;\n"
             "    dsn = \"SSLmode=disable;\"; }\n"
             ");\n"
             "clients = ( { name = \"app\"; token_file = \"%s\"; },\n"
             "            { name = \"other\"; token = \"abc\"; } );\n"
             "testing = { fault_injection = true; };\n",
             tmpdir, tmpdir, tmpdir, tokfile);
    xacd_config cfg;
    xac_err err;
    int rc = load_text(text, &cfg, &err);
    CU_ASSERT_EQUAL_FATAL(rc, XAC_OK);
    if (rc != XAC_OK)
        return;
    CU_ASSERT_STRING_EQUAL(cfg.node_id, "node-7");
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg.unix_path, "/x.sock"));
    CU_ASSERT_STRING_EQUAL(cfg.tcp_host, "127.0.0.1");
    CU_ASSERT_EQUAL(cfg.tcp_port, 7411);
    CU_ASSERT_EQUAL(cfg.tx_timeout_ms, 1000);
    CU_ASSERT_EQUAL(cfg.max_tx_timeout_ms, 2000);
    CU_ASSERT_EQUAL(cfg.prepare_timeout_ms, 300);
    CU_ASSERT_EQUAL(cfg.connect_timeout_ms, 400);
    CU_ASSERT_EQUAL(cfg.pool_wait_ms, 0);
    CU_ASSERT_EQUAL(cfg.max_frame, 65536);
    CU_ASSERT_EQUAL(cfg.max_sessions_per_client, 3);
    CU_ASSERT_EQUAL(cfg.workers, 4);
    CU_ASSERT_EQUAL(cfg.journal_segment_size, 1u << 20);
    CU_ASSERT_EQUAL(cfg.log_level, XAC_LOG_DEBUG);
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg.log_file, "/xacd.log"));
    CU_ASSERT_TRUE(cfg.fault_injection);
    CU_ASSERT_EQUAL_FATAL(cfg.nresources, 2);
    const drv_conf *a = config_resource(&cfg, "bank_a");
    const drv_conf *b = config_resource(&cfg, "bank_b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NULL(config_resource(&cfg, "bank_c"));
    CU_ASSERT_STRING_EQUAL(a->driver, "mysql");
    CU_ASSERT_EQUAL(a->port, 3306);
    CU_ASSERT_STRING_EQUAL(a->password, "pw");
    CU_ASSERT_EQUAL(a->pool_size, 8); /* default */
    CU_ASSERT_EQUAL(a->io_timeout_ms, 300);
    CU_ASSERT_EQUAL(a->connect_timeout_ms, 400);
    CU_ASSERT_STRING_EQUAL(b->dialect, "postgresql");
    CU_ASSERT_STRING_EQUAL(b->odbc_driver, "PostgreSQL Unicode");
    CU_ASSERT_STRING_EQUAL(b->dsn, "SSLmode=disable;");
    CU_ASSERT_EQUAL(b->pool_size, 2);
    CU_ASSERT_EQUAL_FATAL(cfg.nclients, 2);
    CU_ASSERT_STRING_EQUAL(cfg.clients[0].name, "app");
    CU_ASSERT_STRING_EQUAL(cfg.clients[0].token, "sekrit-token");
    CU_ASSERT_STRING_EQUAL(cfg.clients[1].token, "abc");
    config_free(&cfg);
    CU_ASSERT_PTR_NULL(cfg.resources);
    CU_ASSERT_EQUAL(cfg.nresources, 0);
}

static void test_defaults(void)
{
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL_FATAL(load_text(minimal, &cfg, &err), XAC_OK);
    CU_ASSERT_STRING_EQUAL(cfg.unix_path, "/run/xac/xacd.sock");
    CU_ASSERT_STRING_EQUAL(cfg.tcp_host, "");
    CU_ASSERT_EQUAL(cfg.tx_timeout_ms, 60000);
    CU_ASSERT_EQUAL(cfg.max_tx_timeout_ms, 600000);
    CU_ASSERT_EQUAL(cfg.prepare_timeout_ms, 10000);
    CU_ASSERT_EQUAL(cfg.connect_timeout_ms, 5000);
    CU_ASSERT_EQUAL(cfg.pool_wait_ms, 5000);
    CU_ASSERT_EQUAL(cfg.max_frame, 16u * 1024 * 1024);
    CU_ASSERT_EQUAL(cfg.max_sessions_per_client, 256);
    CU_ASSERT_EQUAL(cfg.workers, 16);
    CU_ASSERT_EQUAL(cfg.journal_segment_size, 16u << 20);
    CU_ASSERT_EQUAL(cfg.log_level, XAC_LOG_INFO);
    CU_ASSERT_STRING_EQUAL(cfg.log_file, "");
    CU_ASSERT_FALSE(cfg.fault_injection);
    CU_ASSERT_EQUAL_FATAL(cfg.nresources, 1);
    CU_ASSERT_EQUAL(cfg.resources[0].pool_size, 8);
    CU_ASSERT_EQUAL(cfg.resources[0].io_timeout_ms, 10000);
    CU_ASSERT_EQUAL(cfg.resources[0].connect_timeout_ms, 5000);
    config_free(&cfg);
}

static void test_syntax_error(void)
{
    const char *text = "node_id = \"n1\";\n"
                       "journal_dir = \"/tmp/j\"\n" /* missing ';' */
                       "workers = = 3;\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_NOT_EQUAL(load_text(text, &cfg, &err), XAC_OK);
    expect_error(&err, 3, "syntax error");
    CU_ASSERT_PTR_NULL(cfg.resources);
}

static void test_missing_file(void)
{
    xacd_config cfg;
    xac_err err;
    char path[160];
    snprintf(path, sizeof path, "%s/nope.conf", tmpdir);
    CU_ASSERT_EQUAL(config_load(path, &cfg, &err), XAC_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "No such file"));
}

static void test_typo_suggests(void)
{
    const char *text = "node_id = \"n1\";\n"
                       "journal_dir = \"/tmp/j\";\n"
                       "resources = (\n" RES_A ",\n"
                       "  { name = \"b\"; driver = \"mysql\"; host = \"h\"; user = \"u\";\n"
                       "    pool_sise = 4; database = \"d\"; }\n"
                       ");\n"
                       "clients = ( { name = \"app\"; token = \"t\"; } );\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, line_of(text, "pool_sise"), "pool_sise");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "did you mean pool_size?"));
    CU_ASSERT_PTR_NULL(cfg.resources);

    /* top level and in a group, and a key too far from any known one */
    const char *t2 = "node_id = \"n1\";\njournal_dir = \"/j\";\nworkrs = 3;\n";
    CU_ASSERT_EQUAL(load_text(t2, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 3, "did you mean workers?");
    const char *t3 = "node_id = \"n1\";\njournal_dir = \"/j\";\n"
                     "timeouts = {\n  prepare_ms = 5;\n  zzzzzzzz = 1;\n};\n";
    CU_ASSERT_EQUAL(load_text(t3, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, line_of(t3, "zzz"), "unknown key timeouts.zzzzzzzz");
    CU_ASSERT_PTR_NULL(strstr(err.msg, "did you mean"));
}

static void test_wrong_type(void)
{
    const char *text = "node_id = \"n1\";\n"
                       "journal_dir = \"/tmp/j\";\n"
                       "timeouts = {\n"
                       "  transaction_ms = 1000;\n"
                       "  prepare_ms = \"10000\";\n"
                       "};\n"
                       "resources = (\n" RES_A "\n);\n"
                       "clients = ( { name = \"app\"; token = \"t\"; } );\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 5, "timeouts.prepare_ms must be an integer");

    const char *t2 =
        "node_id = \"n1\";\njournal_dir = \"/j\";\ntesting = { fault_injection = 1; };\n";
    CU_ASSERT_EQUAL(load_text(t2, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 3, "testing.fault_injection must be true or false");

    const char *t3 = "node_id = \"n1\";\njournal_dir = \"/j\";\nworkers = 0;\n";
    CU_ASSERT_EQUAL(load_text(t3, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 3, "workers must be between 1 and");
}

static void test_missing_node_id(void)
{
    const char *text = "journal_dir = \"/tmp/j\";\n"
                       "resources = (\n" RES_A "\n);\n"
                       "clients = ( { name = \"app\"; token = \"t\"; } );\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    CU_ASSERT_EQUAL(strncmp(err.msg, cfgpath, strlen(cfgpath)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node_id is missing"));

    const char *t2 = "node_id = \"bad node\";\njournal_dir = \"/j\";\n";
    CU_ASSERT_EQUAL(load_text(t2, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 1, "not a valid node id");
}

static void test_missing_in_resource(void)
{
    const char *text = "node_id = \"n1\";\n"
                       "journal_dir = \"/tmp/j\";\n"
                       "resources = (\n"
                       "  { name = \"x\"; host = \"h\"; }\n"
                       ");\n"
                       "clients = ( { name = \"app\"; token = \"t\"; } );\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 4, "driver is missing");
}

static void test_bad_resource_name(void)
{
    const char *text = "node_id = \"n1\";\n"
                       "journal_dir = \"/tmp/j\";\n"
                       "resources = (\n"
                       "  { name = \"bank a\"; driver = \"mysql\"; host = \"h\"; }\n"
                       ");\n"
                       "clients = ( { name = \"app\"; token = \"t\"; } );\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 4, "\"bank a\" is not a valid resource name");
}

static void test_duplicate_resource(void)
{
    const char *text = "node_id = \"n1\";\n"
                       "journal_dir = \"/tmp/j\";\n"
                       "resources = (\n" RES_A ",\n"
                       "  { name = \"bank_a\"; driver = \"mysql\"; host = \"h\"; user = \"u\";\n"
                       "    database = \"d\"; }\n"
                       ");\n"
                       "clients = ( { name = \"app\"; token = \"t\"; }, { name = \"app\"; token = "
                       "\"u\"; } );\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, line_of(text, "name = \"bank_a\"; driver = \"mysql\"; host = \"h\""),
                 "duplicate resource name \"bank_a\"");

    const char *t2 = "node_id = \"n1\";\n"
                     "journal_dir = \"/tmp/j\";\n"
                     "resources = (\n" RES_A "\n);\n"
                     "clients = (\n { name = \"app\"; token = \"t\"; },\n { name = \"app\"; "
                     "token = \"u\"; } );\n";
    CU_ASSERT_EQUAL(load_text(t2, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, line_of(t2, "\"u\""), "duplicate client name \"app\"");
}

static void test_unknown_driver(void)
{
    const char *text = "node_id = \"n1\";\n"
                       "journal_dir = \"/tmp/j\";\n"
                       "resources = (\n"
                       "  { name = \"ora\";\n"
                       "    driver = \"oracle\"; host = \"h\"; }\n"
                       ");\n"
                       "clients = ( { name = \"app\"; token = \"t\"; } );\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 5, "unknown driver \"oracle\"");
}

static void password_config(char *text, size_t cap, const char *extra)
{
    snprintf(text, cap,
             "node_id = \"n1\";\n"
             "journal_dir = \"/tmp/j\";\n"
             "resources = (\n"
             "  { name = \"a\"; driver = \"mysql\"; host = \"127.0.0.1\"; user = \"xac\";\n"
             "    database = \"d\";\n"
             "    %s }\n"
             ");\n"
             "clients = ( { name = \"app\"; token = \"t\"; } );\n",
             extra);
}

static void test_password_file_mode(void)
{
    char pw[160], extra[256], text[1024];
    snprintf(pw, sizeof pw, "%s/a.password", tmpdir);
    snprintf(extra, sizeof extra, "password_file = \"%s\";", pw);
    password_config(text, sizeof text, extra);
    xacd_config cfg;
    xac_err err;

    write_file(pw, "hunter2\n", 0644);
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 6, "is readable by group or others (mode 0644); chmod 600 it");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, pw));

    write_file(pw, "hunter2\n", 0620); /* group-writable is refused too */
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 6, "is writable by group or others (mode 0620)");

    write_file(pw, "hunter2\r\nnot this\n", 0600);
    CU_ASSERT_EQUAL_FATAL(load_text(text, &cfg, &err), XAC_OK);
    CU_ASSERT_STRING_EQUAL(cfg.resources[0].password, "hunter2");
    config_free(&cfg);

    /* relative to the config file's directory */
    password_config(text, sizeof text, "password_file = \"a.password\";");
    CU_ASSERT_EQUAL_FATAL(load_text(text, &cfg, &err), XAC_OK);
    CU_ASSERT_STRING_EQUAL(cfg.resources[0].password, "hunter2");
    config_free(&cfg);

    unlink(pw);
    password_config(text, sizeof text, "password_file = \"a.password\";");
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 6, "cannot be opened");
}

static void test_password_and_file(void)
{
    char pw[160], extra[256], text[1024];
    snprintf(pw, sizeof pw, "%s/b.password", tmpdir);
    write_file(pw, "x\n", 0600);
    snprintf(extra, sizeof extra, "password = \"y\"; password_file = \"%s\";", pw);
    password_config(text, sizeof text, extra);
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 6, "either password or password_file, not both");
    unlink(pw);
}

static void test_token_file_mode(void)
{
    char tok[160], text[1024];
    snprintf(tok, sizeof tok, "%s/t.token", tmpdir);
    write_file(tok, "tok\n", 0640);
    snprintf(text, sizeof text,
             "node_id = \"n1\";\njournal_dir = \"/j\";\nresources = (\n" RES_A "\n);\n"
             "clients = ( { name = \"app\";\n token_file = \"%s\"; } );\n",
             tok);
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, line_of(text, "token_file"), "(mode 0640)");
    unlink(tok);
}

static void test_listen_tcp(void)
{
    const char *text = "node_id = \"n1\";\njournal_dir = \"/j\";\n"
                       "listen = { unix = \"\"; tcp = \"localhost\"; };\n";
    xacd_config cfg;
    xac_err err;
    CU_ASSERT_EQUAL(load_text(text, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 3, "listen.tcp must be \"host:port\"");
    const char *t2 = "node_id = \"n1\";\njournal_dir = \"/j\";\nlisten = { unix = \"\"; };\n";
    CU_ASSERT_EQUAL(load_text(t2, &cfg, &err), XAC_ECONFIG);
    expect_error(&err, 3, "no listener");
}

/* Loads a config whose third line is "journal_segment_size = VALUE;". */
static int load_segment_size(const char *value, xacd_config *cfg, xac_err *err)
{
    char text[1024];
    snprintf(text, sizeof text,
             "node_id = \"n1\";\njournal_dir = \"/j\";\njournal_segment_size = %s;\n"
             "resources = (\n" RES_A "\n);\n"
             "clients = ( { name = \"app\"; token = \"t\"; } );\n",
             value);
    return load_text(text, cfg, err);
}

static void test_segment_size(void)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {{"65536", 65536},          {"16777216", 16u << 20},   {"1073741824", 1u << 30},
                {"\"64K\"", 64u << 10},    {"\"64k\"", 64u << 10},    {"\"16M\"", 16u << 20},
                {"\"16MiB\"", 16u << 20},  {"\"256MB\"", 256u << 20}, {"\"1G\"", 1u << 30},
                {"\"131072\"", 128u << 10}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        xacd_config cfg;
        xac_err err;
        int rc = load_segment_size(good[i].text, &cfg, &err);
        if (rc != XAC_OK)
            fprintf(stderr, "\n%s: %s\n", good[i].text, err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, XAC_OK);
        CU_ASSERT_EQUAL(cfg.journal_segment_size, good[i].bytes);
        config_free(&cfg);
    }

    static const struct {
        const char *text, *want;
    } bad[] = {{"65535", "must be between 65536 (64K) and 1073741824 (1G) bytes (got 65535)"},
               {"0", "must be between 65536"},
               {"-1", "must be between 65536"},
               {"1073741825", "(got 1073741825)"},
               {"\"63K\"", "(got 64512)"},
               {"\"2G\"", "(got 2147483648)"},
               {"\"99999999999999999999G\"", "is not a size"},
               {"\"16X\"", "journal_segment_size \"16X\" is not a size"},
               {"\"16 M\"", "is not a size"},
               {"\"M\"", "is not a size"},
               {"\"\"", "is not a size"},
               {"\"16Mi\"", "is not a size"},
               {"1.5", "must be a number of bytes"},
               {"true", "must be a number of bytes"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        xacd_config cfg;
        xac_err err;
        CU_ASSERT_EQUAL(load_segment_size(bad[i].text, &cfg, &err), XAC_ECONFIG);
        expect_error(&err, 3, bad[i].want);
        if (strstr(err.msg, bad[i].want) == NULL)
            fprintf(stderr, "\n%s: %s\n", bad[i].text, err.msg);
        CU_ASSERT_PTR_NULL(cfg.resources);
    }
}

static int setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xac-test-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(cfgpath, sizeof cfgpath, "%s/xacd.conf", tmpdir);
    return 0;
}

static void teardown(void)
{
    unlink(cfgpath);
    char p[160];
    snprintf(p, sizeof p, "%s/app.token", tmpdir);
    unlink(p);
    rmdir(tmpdir);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"valid config, every key", test_valid_full},
                                    {"defaults", test_defaults},
                                    {"syntax error names file and line", test_syntax_error},
                                    {"missing file", test_missing_file},
                                    {"typo'd key suggests the right one", test_typo_suggests},
                                    {"wrong type", test_wrong_type},
                                    {"missing node_id", test_missing_node_id},
                                    {"missing key in a resource", test_missing_in_resource},
                                    {"bad resource name", test_bad_resource_name},
                                    {"duplicate resource and client", test_duplicate_resource},
                                    {"unknown driver", test_unknown_driver},
                                    {"password_file mode", test_password_file_mode},
                                    {"password and password_file", test_password_and_file},
                                    {"token_file mode", test_token_file_mode},
                                    {"listen", test_listen_tcp},
                                    {"journal_segment_size", test_segment_size},
                                    {NULL, NULL}};
    if (setup() != 0)
        return CUE_SINIT_FAILED;
    atexit(teardown);
    return cu_add_suite("config", tests);
}
