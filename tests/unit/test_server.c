/* Unit tests of coordinator/server.c: the session rules of docs/protocol.md
 * over a real Unix socket, against the real engine. No database is needed:
 * transactions without branches commit in the engine alone, and the one
 * resource points at a closed port, which exercises the ERMFAIL and
 * rollback-only paths. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "cu.h"
#include "engine.h"
#include "journal.h"
#include "server.h"

#define MAX_FRAME 65536

static char tmpdir[64];
static char sockpath[96];
static xacd_config cfg;
static journal *the_journal;
static engine *eng;
static server *srv;
static pthread_t run_tid;
static int run_rc = -1;
static bool run_joined;
static bool destroy_stuck; /* a destroy that never returned: leave the rest alone */

static void *run_main(void *arg)
{
    (void)arg;
    xac_err err;
    run_rc = server_run(srv, &err);
    return NULL;
}

static int write_config(const char *path)
{
    char text[2048];
    snprintf(text, sizeof text,
             "node_id = \"utest\";\n"
             "listen = { unix = \"%s\"; };\n"
             "journal_dir = \"%s/journal\";\n"
             "limits = { max_frame = %d; max_sessions_per_client = 2; };\n"
             "workers = 2;\n"
             "resources = ( { name = \"down\"; driver = \"mysql\"; host = \"127.0.0.1\";\n"
             "                port = 1; user = \"u\"; password = \"p\"; database = \"d\"; } );\n"
             "clients = ( { name = \"app\"; token = \"s3cret\"; },\n"
             "            { name = \"other\"; token = \"tok2\"; } );\n",
             sockpath, tmpdir, MAX_FRAME);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

static int setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xac-test-server-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(sockpath, sizeof sockpath, "%s/xacd.sock", tmpdir);
    char path[160];
    snprintf(path, sizeof path, "%s/xacd.conf", tmpdir);
    xac_err err;
    xac_log_init("test_server", XAC_LOG_OFF, NULL, &err);
    if (write_config(path) != 0 || config_load(path, &cfg, &err) != XAC_OK)
        return -1;
    if (journal_open(cfg.journal_dir, 0, &the_journal, &err) != XAC_OK ||
        engine_create(&cfg, the_journal, &eng, &err) != XAC_OK ||
        server_create(&cfg, eng, &srv, &err) != XAC_OK)
        return -1;
    return pthread_create(&run_tid, NULL, run_main, NULL) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ a client */

static int conn(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    /* A server that fails to reply or to close must fail the test, not hang it. */
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends m, reads the reply into r (caller frees). Returns the reply type, 0 on EOF. */
static uint8_t call(int fd, const xac_msg *m, xac_msg *r)
{
    xac_err err;
    xac_msg_init(r, 0);
    if (m != NULL && xac_msg_send(fd, m, &err) != XAC_OK)
        return 0;
    uint8_t type;
    xac_buf b;
    xac_buf_init(&b);
    int rc = xac_frame_read(fd, 1u << 30, &type, &b, &err);
    if (rc == XAC_OK)
        rc = xac_msg_decode(type, b.data, b.len, r, &err);
    xac_buf_free(&b);
    return rc == XAC_OK ? type : 0;
}

/* Sends raw bytes and reads the reply. */
static uint8_t call_raw(int fd, const void *p, size_t n, xac_msg *r)
{
    xac_err err;
    CU_ASSERT_FATAL(xac_write_all(fd, p, n, &err) == XAC_OK);
    return call(fd, NULL, r);
}

static bool closed_by_server(int fd)
{
    char c;
    ssize_t n = read(fd, &c, 1);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static uint8_t hello_as(int fd, const char *client, const char *token, uint16_t version, xac_msg *r)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_HELLO);
    m.version = version;
    m.client = (char *)client;
    m.token = (char *)token;
    return call(fd, &m, r);
}

/* HELLO as client, retrying while earlier tests' sessions still hold slots (the
 * server notices a close on its own time); -1 after ten seconds. */
static int hello_when_free(const char *client, const char *token)
{
    for (int i = 0; i < 1000; i++) {
        int fd = conn();
        xac_msg r;
        bool ok = hello_as(fd, client, token, 1, &r) == XAC_MSG_WELCOME;
        xac_msg_free(&r);
        if (ok)
            return fd;
        close(fd);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int hello(void)
{
    int fd = hello_when_free("app", "s3cret");
    CU_ASSERT_FATAL(fd >= 0);
    return fd;
}

static uint8_t simple(int fd, uint8_t type, xac_msg *r)
{
    xac_msg m;
    xac_msg_init(&m, type);
    return call(fd, &m, r);
}

static uint8_t exec_sql(int fd, const char *res, const char *sql, xac_msg *r)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_EXEC);
    m.resource = (char *)res;
    m.sql = (char *)sql;
    m.sql_len = strlen(sql);
    return call(fd, &m, r);
}

static uint8_t status(int fd, const char *gtrid, xac_msg *r)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_STATUS);
    m.gtrid = (char *)gtrid;
    return call(fd, &m, r);
}

/* Asserts an ERROR reply with this code, then frees it. */
static void expect_error(uint8_t type, xac_msg *r, int code)
{
    CU_ASSERT_EQUAL(type, XAC_MSG_ERROR);
    if (type == XAC_MSG_ERROR)
        CU_ASSERT_EQUAL(r->code, code);
    xac_msg_free(r);
}

/* Polls STATUS until gtrid reaches want (the server acts on a close
 * asynchronously); gives up after ten seconds. */
static int wait_state(int fd, const char *gtrid, int want)
{
    int st = -1;
    for (int i = 0; i < 1000 && st != want; i++) {
        xac_msg r;
        if (status(fd, gtrid, &r) == XAC_MSG_STATE)
            st = r.state;
        xac_msg_free(&r);
        if (st != want) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return st;
}

/* ------------------------------------------------------------- tests */

static void test_hello(void)
{
    int fd = conn();
    xac_msg r;
    CU_ASSERT_EQUAL_FATAL(hello_as(fd, "app", "s3cret", 1, &r), XAC_MSG_WELCOME);
    CU_ASSERT_EQUAL(r.version, 1);
    CU_ASSERT_STRING_EQUAL(r.node_id, "utest");
    CU_ASSERT_EQUAL(r.max_frame, MAX_FRAME);
    xac_msg_free(&r);
    /* A second HELLO is refused, and the session stays usable. */
    expect_error(hello_as(fd, "app", "s3cret", 1, &r), &r, XAC_EPROTO);
    CU_ASSERT_EQUAL(status(fd, "utest.1.1", &r), XAC_MSG_STATE);
    CU_ASSERT_EQUAL(r.state, XAC_STATE_UNKNOWN);
    xac_msg_free(&r);
    close(fd);
}

static void test_auth(void)
{
    xac_msg r;
    int fd = conn();
    expect_error(simple(fd, XAC_MSG_BEGIN, &r), &r, XAC_EAUTH);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    fd = conn();
    expect_error(hello_as(fd, "app", "s3cret", 2, &r), &r, XAC_EVERSION);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    fd = conn();
    expect_error(hello_as(fd, "app", "s3cre", 1, &r), &r, XAC_EAUTH);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    fd = conn();
    expect_error(hello_as(fd, "app", "s3cretX", 1, &r), &r, XAC_EAUTH);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    fd = conn();
    expect_error(hello_as(fd, "eve", "s3cret", 1, &r), &r, XAC_EAUTH);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    /* another client's token is not this client's */
    fd = conn();
    expect_error(hello_as(fd, "app", "tok2", 1, &r), &r, XAC_EAUTH);
    close(fd);
}

static void test_state_rules(void)
{
    int fd = hello();
    xac_msg r;
    expect_error(exec_sql(fd, "down", "SELECT 1", &r), &r, XAC_ESTATE);
    expect_error(simple(fd, XAC_MSG_COMMIT, &r), &r, XAC_ESTATE);
    expect_error(simple(fd, XAC_MSG_ROLLBACK, &r), &r, XAC_ESTATE);

    CU_ASSERT_EQUAL_FATAL(simple(fd, XAC_MSG_BEGIN, &r), XAC_MSG_BEGUN);
    char gtrid[XAC_GTRID_MAX + 1];
    snprintf(gtrid, sizeof gtrid, "%s", r.gtrid);
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(strncmp(gtrid, "utest.", 6), 0);
    expect_error(simple(fd, XAC_MSG_BEGIN, &r), &r, XAC_ESTATE);
    CU_ASSERT_EQUAL(status(fd, gtrid, &r), XAC_MSG_STATE);
    CU_ASSERT_STRING_EQUAL(r.gtrid, gtrid);
    CU_ASSERT_EQUAL(r.state, XAC_STATE_ACTIVE);
    xac_msg_free(&r);

    /* An unknown resource makes the transaction rollback-only. */
    CU_ASSERT_EQUAL(exec_sql(fd, "nosuch", "SELECT 1", &r), XAC_MSG_ERROR);
    CU_ASSERT_EQUAL(r.code, XAC_ERESOURCE);
    CU_ASSERT_STRING_EQUAL(r.resource, "nosuch");
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(simple(fd, XAC_MSG_COMMIT, &r), XAC_MSG_OUTCOME);
    CU_ASSERT_EQUAL(r.outcome, XAC_OUTCOME_ROLLED_BACK);
    CU_ASSERT_STRING_EQUAL(r.resource, "nosuch");
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(status(fd, gtrid, &r), XAC_MSG_STATE);
    CU_ASSERT_EQUAL(r.state, XAC_STATE_ROLLED_BACK);
    xac_msg_free(&r);
    expect_error(simple(fd, XAC_MSG_COMMIT, &r), &r, XAC_ESTATE);

    CU_ASSERT_EQUAL_FATAL(simple(fd, XAC_MSG_BEGIN, &r), XAC_MSG_BEGUN);
    snprintf(gtrid, sizeof gtrid, "%s", r.gtrid);
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(simple(fd, XAC_MSG_ROLLBACK, &r), XAC_MSG_OUTCOME);
    CU_ASSERT_EQUAL(r.outcome, XAC_OUTCOME_ROLLED_BACK);
    CU_ASSERT_STRING_EQUAL(r.resource, "");
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(status(fd, gtrid, &r), XAC_MSG_STATE);
    CU_ASSERT_EQUAL(r.state, XAC_STATE_ROLLED_BACK);
    xac_msg_free(&r);
    close(fd);
}

static void test_unreachable_resource(void)
{
    int fd = hello();
    xac_msg r;
    CU_ASSERT_EQUAL_FATAL(simple(fd, XAC_MSG_BEGIN, &r), XAC_MSG_BEGUN);
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(exec_sql(fd, "down", "SELECT 1", &r), XAC_MSG_ERROR);
    CU_ASSERT_EQUAL(r.code, XAC_ERMFAIL);
    CU_ASSERT_STRING_EQUAL(r.resource, "down");
    CU_ASSERT_TRUE(r.message != NULL && r.message[0] != '\0');
    xac_msg_free(&r);
    /* rollback-only from here on */
    expect_error(exec_sql(fd, "down", "SELECT 1", &r), &r, XAC_EROLLBACK);
    CU_ASSERT_EQUAL(simple(fd, XAC_MSG_COMMIT, &r), XAC_MSG_OUTCOME);
    CU_ASSERT_EQUAL(r.outcome, XAC_OUTCOME_ROLLED_BACK);
    CU_ASSERT_STRING_EQUAL(r.resource, "down");
    xac_msg_free(&r);
    close(fd);
}

static void test_malformed(void)
{
    xac_msg r;
    /* BEGIN with 2 of its 4 payload bytes */
    int fd = hello();
    static const uint8_t short_begin[] = {0, 0, 0, 3, XAC_MSG_BEGIN, 0, 0};
    expect_error(call_raw(fd, short_begin, sizeof short_begin, &r), &r, XAC_EPROTO);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    fd = hello();
    static const uint8_t unknown[] = {0, 0, 0, 1, 0x44};
    expect_error(call_raw(fd, unknown, sizeof unknown, &r), &r, XAC_EPROTO);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    fd = hello();
    static const uint8_t reply_type[] = {0, 0, 0, 1, XAC_MSG_RESULT};
    expect_error(call_raw(fd, reply_type, sizeof reply_type, &r), &r, XAC_EPROTO);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    fd = hello();
    static const uint8_t trailing[] = {0, 0, 0, 2, XAC_MSG_COMMIT, 7};
    expect_error(call_raw(fd, trailing, sizeof trailing, &r), &r, XAC_EPROTO);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);

    /* malformed before HELLO is a protocol error too */
    fd = conn();
    static const uint8_t zero[] = {0, 0, 0, 0};
    expect_error(call_raw(fd, zero, sizeof zero, &r), &r, XAC_EPROTO);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);
}

/* Requests that arrive together (one write) are answered one by one, in
 * order, and a request split over two writes is answered once it is whole:
 * the session reads what the client sent, not one frame per read. */
static void test_pipelined(void)
{
    xac_err err;
    xac_buf b;
    xac_buf_init(&b);
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_HELLO);
    m.version = 1;
    m.client = "app";
    m.token = "s3cret";
    CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);
    xac_msg_init(&m, XAC_MSG_BEGIN);
    CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);
    xac_msg_init(&m, XAC_MSG_COMMIT);
    CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);
    xac_msg_init(&m, XAC_MSG_BEGIN);
    CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);
    size_t whole = b.len;
    xac_msg_init(&m, XAC_MSG_ROLLBACK);
    CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);

    int fd = -1;
    xac_msg r;
    for (int i = 0; i < 1000 && fd < 0; i++) { /* earlier tests' sessions may hold the slots */
        fd = conn();
        /* Everything up to the second BEGIN and the first 2 bytes of ROLLBACK. */
        CU_ASSERT_FATAL(xac_write_all(fd, b.data, whole + 2, &err) == XAC_OK);
        if (call(fd, NULL, &r) == XAC_MSG_WELCOME)
            break;
        xac_msg_free(&r);
        close(fd);
        fd = -1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_FATAL(fd >= 0);
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(call(fd, NULL, &r), XAC_MSG_BEGUN);
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(call(fd, NULL, &r), XAC_MSG_OUTCOME);
    CU_ASSERT_EQUAL(r.outcome, XAC_OUTCOME_COMMITTED);
    xac_msg_free(&r);
    CU_ASSERT_EQUAL(call(fd, NULL, &r), XAC_MSG_BEGUN);
    xac_msg_free(&r);
    /* The rest of ROLLBACK a little later. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CU_ASSERT_EQUAL(call_raw(fd, b.data + whole + 2, b.len - whole - 2, &r), XAC_MSG_OUTCOME);
    CU_ASSERT_EQUAL(r.outcome, XAC_OUTCOME_ROLLED_BACK);
    xac_msg_free(&r);

    /* BEGIN, two more BEGINs (ERROR ESTATE, the session stays) and ROLLBACK
     * in one write: the first three replies are held back and go out in the
     * same write as OUTCOME, so the first read gets all four frames. */
    b.len = 0;
    for (int i = 0; i < 3; i++) {
        xac_msg_init(&m, XAC_MSG_BEGIN);
        CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);
    }
    xac_msg_init(&m, XAC_MSG_ROLLBACK);
    CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);
    CU_ASSERT_FATAL(xac_write_all(fd, b.data, b.len, &err) == XAC_OK);
    uint8_t got[512];
    ssize_t k = recv(fd, got, sizeof got, 0);
    CU_ASSERT_FATAL(k > 5);
    size_t frames = 0;
    for (size_t at = 0; at + 4 <= (size_t)k;) {
        uint32_t n = (uint32_t)got[at] << 24 | (uint32_t)got[at + 1] << 16 |
                     (uint32_t)got[at + 2] << 8 | got[at + 3];
        at += 4 + n;
        if (at <= (size_t)k)
            frames++;
    }
    CU_ASSERT_EQUAL(frames, 4);
    CU_ASSERT_EQUAL(got[4], XAC_MSG_BEGUN);

    /* A good request and a bad frame in one write: the first is answered,
     * then the bad one gets EPROTO and the session is closed. */
    b.len = 0;
    xac_msg_init(&m, XAC_MSG_BEGIN);
    CU_ASSERT_FATAL(xac_msg_encode(&m, &b, &err) == XAC_OK);
    const uint8_t zero[4] = {0, 0, 0, 0};
    CU_ASSERT_FATAL(xac_buf_put(&b, zero, sizeof zero, &err) == XAC_OK);
    CU_ASSERT_EQUAL(call_raw(fd, b.data, b.len, &r), XAC_MSG_BEGUN);
    xac_msg_free(&r);
    expect_error(call(fd, NULL, &r), &r, XAC_EPROTO);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);
    xac_buf_free(&b);
}

static void test_oversize(void)
{
    xac_msg r;
    int fd = hello();
    uint32_t n = MAX_FRAME + 1;
    uint8_t hdr[5] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n,
                      XAC_MSG_EXEC};
    expect_error(call_raw(fd, hdr, sizeof hdr, &r), &r, XAC_ELIMIT);
    CU_ASSERT_TRUE(closed_by_server(fd));
    close(fd);
}

static void test_session_limit(void)
{
    xac_msg r;
    int a = hello_when_free("app", "s3cret"), b = hello_when_free("app", "s3cret");
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    int c = conn();
    expect_error(hello_as(c, "app", "s3cret", 1, &r), &r, XAC_ELIMIT);
    CU_ASSERT_TRUE(closed_by_server(c));
    close(c);
    /* the cap is per client name */
    int o = hello_when_free("other", "tok2");
    CU_ASSERT_FATAL(o >= 0);

    /* Once a session ends its slot is free again (the server notices the close
     * on its own time, so retry for a while). */
    close(a);
    c = hello_when_free("app", "s3cret");
    CU_ASSERT_TRUE(c >= 0);
    if (c >= 0)
        close(c);
    close(b);
    close(o);
}

static void test_close_rolls_back(void)
{
    xac_msg r;
    int a = hello_when_free("other", "tok2");
    CU_ASSERT_FATAL(a >= 0);
    CU_ASSERT_EQUAL_FATAL(simple(a, XAC_MSG_BEGIN, &r), XAC_MSG_BEGUN);
    char gtrid[XAC_GTRID_MAX + 1];
    snprintf(gtrid, sizeof gtrid, "%s", r.gtrid);
    xac_msg_free(&r);
    close(a);
    int b = hello_when_free("other", "tok2");
    CU_ASSERT_FATAL(b >= 0);
    CU_ASSERT_EQUAL(wait_state(b, gtrid, XAC_STATE_ROLLED_BACK), XAC_STATE_ROLLED_BACK);
    close(b);
}

static void test_second_server_refused(void)
{
    server *s2 = NULL;
    xac_err err;
    xac_err_clear(&err);
    CU_ASSERT_NOT_EQUAL(server_create(&cfg, eng, &s2, &err), XAC_OK);
    CU_ASSERT_PTR_NULL(s2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "another process is listening"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, sockpath));
    /* the running server still answers */
    int fd = hello();
    close(fd);
}

static void test_stale_socket_replaced(void)
{
    xacd_config c2 = cfg;
    char path[96];
    snprintf(path, sizeof path, "%s/stale.sock", tmpdir);
    snprintf(c2.unix_path, sizeof c2.unix_path, "%s", path);
    /* a socket file nobody listens on, as a crash leaves it */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    close(fd);
    server *s2 = NULL;
    xac_err err;
    CU_ASSERT_EQUAL_FATAL(server_create(&c2, eng, &s2, &err), XAC_OK);
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);
    server_destroy(s2);
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0); /* removed on destroy */

    /* a plain file in the way is not removed */
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fclose(f);
    CU_ASSERT_NOT_EQUAL(server_create(&c2, eng, &s2, &err), XAC_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a socket"));
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    unlink(path);
}

static void *destroy_main(void *arg)
{
    server_destroy(arg);
    return NULL;
}

/* Last: stops the server with a session idle and one in a transaction. */
static void test_stop(void)
{
    xac_msg r;
    int idle = hello();
    int busy = hello_when_free("other", "tok2");
    CU_ASSERT_FATAL(busy >= 0);
    CU_ASSERT_EQUAL_FATAL(simple(busy, XAC_MSG_BEGIN, &r), XAC_MSG_BEGUN);
    char gtrid[XAC_GTRID_MAX + 1];
    snprintf(gtrid, sizeof gtrid, "%s", r.gtrid);
    xac_msg_free(&r);

    server_stop(srv);
    pthread_join(run_tid, NULL);
    run_joined = true;
    CU_ASSERT_EQUAL(run_rc, XAC_OK);
    /* server_destroy must wake idle sessions, not wait for the clients to hang
     * up; a destroy still blocked after ten seconds fails the test. */
    pthread_t tid;
    CU_ASSERT_FATAL(pthread_create(&tid, NULL, destroy_main, srv) == 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int jr = pthread_timedjoin_np(tid, NULL, &until);
    srv = NULL;
    destroy_stuck = jr != 0;
    CU_ASSERT_EQUAL_FATAL(jr, 0);
    CU_ASSERT_TRUE(closed_by_server(idle));
    CU_ASSERT_TRUE(closed_by_server(busy));
    CU_ASSERT_EQUAL(engine_status(eng, gtrid), XAC_STATE_ROLLED_BACK);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(sockpath, &st), 0);
    close(idle);
    close(busy);
}

static void teardown(void)
{
    if (destroy_stuck)
        return;
    if (srv != NULL) {
        server_stop(srv);
        if (!run_joined)
            pthread_join(run_tid, NULL);
        server_destroy(srv);
    }
    engine_destroy(eng);
    journal_close(the_journal);
    config_free(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return;
}

int cu_register(void)
{
    static const cu_test tests[] = {
        {"HELLO and a second HELLO", test_hello},
        {"authentication and version", test_auth},
        {"ESTATE rules, BEGIN/COMMIT/ROLLBACK/STATUS", test_state_rules},
        {"unreachable resource: ERMFAIL, rollback-only", test_unreachable_resource},
        {"malformed frames close the session", test_malformed},
        {"oversize frame: ELIMIT", test_oversize},
        {"pipelined and split requests", test_pipelined},
        {"max_sessions_per_client", test_session_limit},
        {"close with a transaction open rolls back", test_close_rolls_back},
        {"a live socket refuses a second server", test_second_server_refused},
        {"stale socket replaced, mode 0660", test_stale_socket_replaced},
        {"stop with sessions open", test_stop},
        {NULL, NULL}};
    if (setup() != 0)
        return CUE_SINIT_FAILED;
    atexit(teardown);
    return cu_add_suite("server", tests);
}
