/* Unit tests of libxac against a scripted fake xacd: a thread that accepts one
 * connection on a temporary Unix (or TCP) socket and plays a fixed exchange
 * with common's codec, sometimes with hand-made bytes. It stands in for xacd,
 * not for a database. The server thread records its own failed checks; the
 * test asserts on them after joining it. The deferred BEGIN's cases that a
 * real xacd cannot be made to produce on demand (a refused BEGIN that keeps
 * or closes the session) are here too; test_defer_begin.sh has the rest. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cu.h"
#include "xac_common.h"
#include "xac.h"

/* ------------------------------------------------------ the fake xacd */

typedef struct fake fake;
typedef void (*script_fn)(fake *f, int fd);

struct fake {
    char dir[64];
    char path[100];
    char addr[160];
    int lfd;
    uint32_t max_frame; /* announced in WELCOME */
    script_fn script;
    pthread_t th;
    char fail[512]; /* first failed server-side check, "" when all held */
};

static void sfail(fake *f, int line, const char *what)
{
    if (f->fail[0] == '\0')
        snprintf(f->fail, sizeof f->fail, "fake server, line %d: %s", line, what);
}

#define SCHECK(f, cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            sfail((f), __LINE__, #cond);                                                           \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void *fake_main(void *arg)
{
    fake *f = arg;
    /* Safety net against a client bug that would hang the run; no check
     * depends on these times. */
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 20000) != 1) {
        sfail(f, __LINE__, "no client connected");
        return NULL;
    }
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) {
        sfail(f, __LINE__, "accept failed");
        return NULL;
    }
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    f->script(f, fd);
    close(fd);
    return NULL;
}

static int fake_start(fake *f, script_fn script, uint32_t max_frame, int tcp)
{
    memset(f, 0, sizeof *f);
    f->script = script;
    f->max_frame = max_frame;
    if (tcp) {
        f->lfd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof sa;
        if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
            getsockname(f->lfd, (struct sockaddr *)&sa, &sl) != 0)
            return -1;
        snprintf(f->addr, sizeof f->addr, "tcp:127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    } else {
        snprintf(f->dir, sizeof f->dir, "/tmp/xac-test-libxac-XXXXXX");
        if (mkdtemp(f->dir) == NULL)
            return -1;
        snprintf(f->path, sizeof f->path, "%s/xacd.sock", f->dir);
        snprintf(f->addr, sizeof f->addr, "unix:%s", f->path);
        f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
        if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) != 0)
            return -1;
    }
    if (listen(f->lfd, 4) != 0)
        return -1;
    return pthread_create(&f->th, NULL, fake_main, f) == 0 ? 0 : -1;
}

/* Joins the server; returns its failure text ("" when none). */
static const char *fake_stop(fake *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
    if (f->path[0] != '\0')
        unlink(f->path);
    if (f->dir[0] != '\0')
        rmdir(f->dir);
    return f->fail;
}

#define FAKE_OK(f)                                                                                 \
    do {                                                                                           \
        const char *why_ = fake_stop(f);                                                           \
        if (why_[0] != '\0')                                                                       \
            fprintf(stderr, "\n%s\n", why_);                                                       \
        CU_ASSERT_STRING_EQUAL(why_, "");                                                          \
    } while (0)

/* Reads one request and decodes it; 0 on success. */
static int srv_recv(int fd, xac_msg *m)
{
    xac_buf b;
    xac_buf_init(&b);
    uint8_t type;
    int rc = xac_frame_read(fd, XAC_FRAME_DEFAULT_MAX, &type, &b, NULL);
    if (rc == XAC_OK)
        rc = xac_msg_decode(type, b.data, b.len, m, NULL);
    else
        xac_msg_init(m, 0);
    xac_buf_free(&b);
    return rc;
}

/* Reads one raw frame (type + payload) into out; returns its length or -1. */
static long srv_recv_raw(int fd, uint8_t *out, size_t cap)
{
    xac_buf b;
    xac_buf_init(&b);
    uint8_t type;
    long n = -1;
    if (xac_frame_read(fd, XAC_FRAME_DEFAULT_MAX, &type, &b, NULL) == XAC_OK && b.len + 1 <= cap) {
        out[0] = type;
        if (b.len > 0)
            memcpy(out + 1, b.data, b.len);
        n = (long)b.len + 1;
    }
    xac_buf_free(&b);
    return n;
}

static int srv_send(int fd, const xac_msg *m)
{
    return xac_msg_send(fd, m, NULL);
}

static int srv_raw(int fd, const void *p, size_t n)
{
    return xac_write_all(fd, p, n, NULL);
}

/* True once the client has closed its end: EOF on the next read, or a reset
 * when it closed with our bytes unread. */
static int srv_eof(int fd)
{
    uint8_t c;
    ssize_t n = read(fd, &c, 1);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* HELLO from anyone, then WELCOME as node "n1". */
static int srv_hello(fake *f, int fd)
{
    xac_msg m;
    if (srv_recv(fd, &m) != XAC_OK || m.type != XAC_MSG_HELLO)
        return -1;
    xac_msg_free(&m);
    xac_msg w;
    xac_msg_init(&w, XAC_MSG_WELCOME);
    w.node_id = "n1";
    w.max_frame = f->max_frame;
    return srv_send(fd, &w);
}

/* Expects a request of the given type; answers BEGUN, OUTCOME, ... by caller. */
static int srv_expect(int fd, uint8_t type)
{
    xac_msg m;
    int rc = srv_recv(fd, &m);
    int ok = rc == XAC_OK && m.type == type;
    xac_msg_free(&m);
    return ok ? 0 : -1;
}

static int srv_begun(int fd, const char *gtrid)
{
    if (srv_expect(fd, XAC_MSG_BEGIN) != 0)
        return -1;
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_BEGUN);
    m.gtrid = (char *)gtrid;
    return srv_send(fd, &m);
}

static int srv_outcome(int fd, uint8_t outcome, const char *resource, const char *message)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_OUTCOME);
    m.outcome = outcome;
    m.resource = (char *)resource;
    m.message = (char *)message;
    return srv_send(fd, &m);
}

static int srv_error(int fd, uint16_t code, const char *resource, const char *message)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_ERROR);
    m.code = code;
    m.resource = (char *)resource;
    m.message = (char *)message;
    return srv_send(fd, &m);
}

static int srv_affected(int fd, uint64_t n)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_RESULT);
    m.rows.affected = n;
    return srv_send(fd, &m);
}

static xac_conn *connect_to(fake *f)
{
    xac_conn *c = NULL;
    xac_error e;
    int rc = xac_connect(f->addr, "app", "s3cret", &c, &e);
    CU_ASSERT_EQUAL(rc, XAC_OK);
    if (rc != XAC_OK)
        fprintf(stderr, "\nconnect: %s\n", e.msg);
    return c;
}

/* ---------------------------------------------------------- HELLO bytes */

/* docs/protocol.md's example: HELLO from client app with token s3cret. */
static const uint8_t hello_doc[] = {0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x61, 0x70, 0x70,
                                    0x00, 0x00, 0x00, 0x06, 0x73, 0x33, 0x63, 0x72, 0x65, 0x74};

static void script_hello_bytes(fake *f, int fd)
{
    uint8_t buf[256];
    long n = srv_recv_raw(fd, buf, sizeof buf);
    SCHECK(f, n == (long)sizeof hello_doc); /* the length field said 20 */
    SCHECK(f, memcmp(buf, hello_doc, sizeof hello_doc) == 0);
    xac_msg w;
    xac_msg_init(&w, XAC_MSG_WELCOME);
    w.node_id = "node7";
    w.max_frame = f->max_frame;
    SCHECK(f, srv_send(fd, &w) == XAC_OK);
    SCHECK(f, srv_eof(fd)); /* xac_close closes the socket */
}

static void test_hello_bytes(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_hello_bytes, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_STRING_EQUAL(xac_node_id(c), "node7");
    xac_close(c);
    FAKE_OK(&f);
}

/* A plain path is a Unix socket too. */
static void test_plain_path(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_hello_bytes, 1 << 20, 0) == 0);
    xac_conn *c = NULL;
    xac_error e;
    CU_ASSERT_EQUAL(xac_connect(f.path, "app", "s3cret", &c, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(xac_node_id(c), "node7");
    xac_close(c);
    FAKE_OK(&f);
}

static void test_tcp(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_hello_bytes, 1 << 20, 1) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_STRING_EQUAL(xac_node_id(c), "node7");
    xac_close(c);
    FAKE_OK(&f);
}

static void test_bad_addresses(void)
{
    xac_conn *c = (xac_conn *)1;
    xac_error e;
    CU_ASSERT_EQUAL(xac_connect("tcp:127.0.0.1", "app", "", &c, &e), XAC_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(e.code, XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_connect("tcp:127.0.0.1:99999", "app", "", &c, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_connect("tcp::7411", "app", "", &c, &e), XAC_EINVAL);
    char longp[300];
    memset(longp, 'x', sizeof longp);
    memcpy(longp, "unix:/", 6);
    longp[sizeof longp - 1] = '\0';
    CU_ASSERT_EQUAL(xac_connect(longp, "app", "", &c, &e), XAC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "too long"));
    CU_ASSERT_EQUAL(xac_connect("", "app", "", &c, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_connect("unix:/nonexistent/xacd.sock", "app", "", &c, &e), XAC_ECONN);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "/nonexistent/xacd.sock"));
    CU_ASSERT_PTR_NULL(c);
}

/* --------------------------------------------------------------- EAUTH */

static void script_eauth(fake *f, int fd)
{
    xac_msg m;
    SCHECK(f, srv_recv(fd, &m) == XAC_OK);
    int hello = m.type == XAC_MSG_HELLO && strcmp(m.client, "app") == 0;
    xac_msg_free(&m);
    SCHECK(f, hello);
    SCHECK(f, srv_error(fd, XAC_EAUTH, "", "client 'app': wrong token") == XAC_OK);
}

static void test_eauth(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_eauth, 1 << 20, 0) == 0);
    xac_conn *c = (xac_conn *)1;
    xac_error e;
    CU_ASSERT_EQUAL(xac_connect(f.addr, "app", "bad", &c, &e), XAC_EAUTH);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(e.code, XAC_EAUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "wrong token"));
    FAKE_OK(&f);
}

/* ------------------------------------------------ EXEC and RESULT bytes */

/* docs/protocol.md's example: EXEC on bank_a of "SELECT ?" with 7. */
static const uint8_t exec_doc[] = {0x03, 0, 0, 0,   6,   'b', 'a', 'n', 'k', '_', 'a', 0,
                                   0,    0, 8, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '?', 0,
                                   1,    1, 0, 0,   0,   0,   0,   0,   0,   7};
/* ... and its RESULT, a whole frame. */
static const uint8_t result_doc[] = {0, 0,    0, 0x15, 0x83, 1, 0, 0, 0, 1, 0, 0,   0,
                                     1, 0x3f, 0, 0,    0,    1, 0, 0, 0, 0, 1, 0x37};

static void script_exec(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    xac_msg m;
    SCHECK(f, srv_recv(fd, &m) == XAC_OK);
    int begin_ok = m.type == XAC_MSG_BEGIN && m.timeout_ms == 2500;
    xac_msg_free(&m);
    SCHECK(f, begin_ok);
    xac_msg b;
    xac_msg_init(&b, XAC_MSG_BEGUN);
    b.gtrid = "n1.1.1";
    SCHECK(f, srv_send(fd, &b) == XAC_OK);

    uint8_t buf[512];
    long n = srv_recv_raw(fd, buf, sizeof buf);
    SCHECK(f, n == (long)sizeof exec_doc);
    SCHECK(f, memcmp(buf, exec_doc, sizeof exec_doc) == 0);
    SCHECK(f, srv_raw(fd, result_doc, sizeof result_doc) == XAC_OK);

    /* Every value kind, decoded by common's codec. */
    SCHECK(f, srv_recv(fd, &m) == XAC_OK);
    int ok = m.type == XAC_MSG_EXEC && strcmp(m.resource, "bank_b") == 0 &&
             strcmp(m.sql, "INSERT INTO t VALUES (?, ?, ?, ?, ?)") == 0 && m.nparams == 5 &&
             m.params[0].type == XAC_T_NULL && m.params[1].type == XAC_T_INT &&
             m.params[1].i == INT64_MIN && m.params[2].type == XAC_T_DOUBLE &&
             m.params[2].d == -0.25 && m.params[3].type == XAC_T_TEXT && m.params[3].len == 6 &&
             memcmp(m.params[3].s, "h\xc3\xa9llo", 6) == 0 && m.params[4].type == XAC_T_BLOB &&
             m.params[4].len == 3 && memcmp(m.params[4].s, "\0\1\2", 3) == 0;
    xac_msg_free(&m);
    SCHECK(f, ok);
    SCHECK(f, srv_affected(fd, 3) == XAC_OK);

    SCHECK(f, srv_expect(fd, XAC_MSG_ROLLBACK) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "", "rolled back as asked") == XAC_OK);
    SCHECK(f, srv_eof(fd));
}

static void test_exec_encoding(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_exec, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 2500, &tx, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "n1.1.1");

    xac_param p7[] = {xac_int(7)};
    xac_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(xac_exec(tx, "bank_a", "SELECT ?", p7, 1, &r, &e), XAC_OK);
    CU_ASSERT_TRUE(xac_result_has_rows(r));
    CU_ASSERT_EQUAL(xac_result_ncols(r), 1);
    CU_ASSERT_EQUAL(xac_result_nrows(r), 1);
    CU_ASSERT_STRING_EQUAL(xac_result_colname(r, 0), "?");
    size_t len = 0;
    CU_ASSERT_STRING_EQUAL(xac_result_value(r, 0, 0, &len), "7");
    CU_ASSERT_EQUAL(len, 1);
    xac_result_free(r);

    xac_param ps[] = {xac_null(), xac_int(INT64_MIN), xac_double(-0.25), xac_text("h\xc3\xa9llo"),
                      xac_blob("\0\1\2", 3)};
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_b", "INSERT INTO t VALUES (?, ?, ?, ?, ?)", ps, 5, &r, &e),
                    XAC_OK);
    CU_ASSERT_FALSE(xac_result_has_rows(r));
    CU_ASSERT_EQUAL(xac_result_affected(r), 3);
    CU_ASSERT_EQUAL(xac_result_ncols(r), 0);
    CU_ASSERT_PTR_NULL(xac_result_value(r, 0, 0, NULL));
    xac_result_free(r);

    CU_ASSERT_EQUAL(xac_rollback(tx, &e), XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

/* ---------------------------------------------------------- RESULT rows */

static void script_rows(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.1.2") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_RESULT);
    const char *cols[] = {"id", "name"};
    SCHECK(f, xac_rows_set_cols(&m.rows, 2, cols, NULL) == XAC_OK);
    const char *r1[] = {"1", "alice"};
    const char *r2[] = {"2", NULL};
    const char *r3[] = {"3", "a\0b"};
    size_t l3[] = {1, 3};
    const char *r4[] = {"4", ""};
    SCHECK(f, xac_rows_add(&m.rows, r1, NULL, NULL) == XAC_OK);
    SCHECK(f, xac_rows_add(&m.rows, r2, NULL, NULL) == XAC_OK);
    SCHECK(f, xac_rows_add(&m.rows, r3, l3, NULL) == XAC_OK);
    SCHECK(f, xac_rows_add(&m.rows, r4, NULL, NULL) == XAC_OK);
    int rc = srv_send(fd, &m);
    xac_msg_free(&m);
    SCHECK(f, rc == XAC_OK);
    /* An exec whose result is not wanted. */
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    SCHECK(f, srv_affected(fd, 1) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_COMMITTED, "", "") == XAC_OK);
}

static void test_result_rows(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_rows, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    xac_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(xac_exec(tx, "bank_a", "SELECT id, name FROM t", NULL, 0, &r, &e),
                          XAC_OK);
    CU_ASSERT_TRUE(xac_result_has_rows(r));
    CU_ASSERT_EQUAL(xac_result_ncols(r), 2);
    CU_ASSERT_EQUAL(xac_result_nrows(r), 4);
    CU_ASSERT_STRING_EQUAL(xac_result_colname(r, 1), "name");
    CU_ASSERT_PTR_NULL(xac_result_colname(r, 2));
    size_t len = 99;
    CU_ASSERT_STRING_EQUAL(xac_result_value(r, 0, 1, &len), "alice");
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_PTR_NULL(xac_result_value(r, 1, 1, &len)); /* SQL NULL */
    const char *v = xac_result_value(r, 2, 1, &len);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_TRUE(v != NULL && memcmp(v, "a\0b", 3) == 0);
    v = xac_result_value(r, 3, 1, &len); /* empty, not NULL */
    CU_ASSERT_PTR_NOT_NULL(v);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_PTR_NULL(xac_result_value(r, 4, 0, &len));
    CU_ASSERT_EQUAL(xac_result_affected(r), 0);
    xac_result_free(r);
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "DELETE FROM t", NULL, 0, NULL, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

/* ------------------------------------------- OUTCOME 1 and status */

static void script_outcome_rb(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.1.3") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "bank_b",
                          "prepare refused: 1614 (40001): Deadlock found") == XAC_OK);
    /* The session goes on: a new transaction, then STATUS of the old one. */
    SCHECK(f, srv_begun(fd, "n1.1.4") == 0);
    xac_msg m;
    SCHECK(f, srv_recv(fd, &m) == XAC_OK);
    int ok = m.type == XAC_MSG_STATUS && strcmp(m.gtrid, "n1.1.3") == 0;
    xac_msg_free(&m);
    SCHECK(f, ok);
    xac_msg s;
    xac_msg_init(&s, XAC_MSG_STATE);
    s.gtrid = "n1.1.3";
    s.state = XAC_STATE_ROLLED_BACK;
    SCHECK(f, srv_send(fd, &s) == XAC_OK);
    SCHECK(f, srv_eof(fd)); /* closed with n1.1.4 open: xacd's job to roll back */
}

static void test_outcome_rollback(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_outcome_rb, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_EQUAL(e.code, XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_b");
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1614"));
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx, &e), XAC_OK); /* the old tx was released */
    xac_tx *tx2 = NULL;
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx2, &e), XAC_ESTATE); /* local: one at a time */
    CU_ASSERT_PTR_NULL(tx2);
    int state = -1;
    CU_ASSERT_EQUAL(xac_status(c, "n1.1.3", &state, &e), XAC_OK);
    CU_ASSERT_EQUAL(state, XAC_STATE_ROLLED_BACK);
    xac_close(c);
    FAKE_OK(&f);
}

/* ------------------------------------------------------- EXEC errors */

static void script_exec_errors(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.1.5") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    SCHECK(f, srv_error(fd, XAC_ESQL, "bank_a",
                        "1064 (42000): You have an error in your SQL syntax") == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    SCHECK(f, srv_error(fd, XAC_EROLLBACK, "bank_a", "transaction is rollback-only") == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "bank_a", "earlier SQL error") == XAC_OK);
    /* A timeout ends the transaction on the server: the commit must not be
     * sent, so the next request is STATUS. */
    SCHECK(f, srv_begun(fd, "n1.1.6") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    SCHECK(f,
           srv_error(fd, XAC_ETIMEOUT, "", "transaction n1.1.6 timed out after 50 ms") == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_STATUS) == 0);
    xac_msg s;
    xac_msg_init(&s, XAC_MSG_STATE);
    s.gtrid = "n1.1.6";
    s.state = XAC_STATE_UNKNOWN;
    SCHECK(f, srv_send(fd, &s) == XAC_OK);
}

static void test_exec_errors(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_exec_errors, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    xac_result *r = (xac_result *)1;
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELEC 1", NULL, 0, &r, &e), XAC_ESQL);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_a");
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1064"));
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT 1", NULL, 0, NULL, &e), XAC_EROLLBACK);
    /* Caught locally, nothing sent: a bad resource name. */
    CU_ASSERT_EQUAL(xac_exec(tx, "bank a", "SELECT 1", NULL, 0, NULL, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_a");

    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 50, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT SLEEP(1)", NULL, 0, NULL, &e), XAC_ETIMEOUT);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "timed out"));
    int state = -1;
    CU_ASSERT_EQUAL(xac_status(c, "n1.1.6", &state, &e), XAC_OK);
    CU_ASSERT_EQUAL(state, XAC_STATE_UNKNOWN);
    xac_close(c);
    FAKE_OK(&f);
}

static void script_commit_errors(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.1.10") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_error(fd, XAC_ETIMEOUT, "", "n1.1.10 timed out after 50 ms") == XAC_OK);
    SCHECK(f, srv_begun(fd, "n1.1.11") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_error(fd, XAC_ERMFAIL, "bank_a",
                        "bank_a went away during its one-phase commit: outcome unknown") == XAC_OK);
}

/* A timeout at COMMIT is a known rollback; ERMFAIL there is an unknown
 * outcome and keeps its code. */
static void test_commit_errors(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_commit_errors, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 50, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "timed out"));
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_ERMFAIL);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_a");
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "outcome unknown"));
    xac_close(c);
    FAKE_OK(&f);
}

/* --------------------------------------------- connection lost, SIGPIPE */

static void script_close_mid_reply(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.1.7") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    /* A RESULT frame announced as 21 bytes, cut after 6. */
    SCHECK(f, srv_raw(fd, result_doc, 6) == XAC_OK);
}

static void test_close_mid_reply(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_close_mid_reply, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    xac_result *r = (xac_result *)1;
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT 7", NULL, 0, &r, &e), XAC_ECONN);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(e.code, XAC_ECONN);
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT 7", NULL, 0, NULL, &e), XAC_ECONN);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_ECONN); /* frees tx */
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "n1.1.7"));
    int state;
    CU_ASSERT_EQUAL(xac_status(c, "n1.1.7", &state, &e), XAC_ECONN);
    xac_close(c);
    FAKE_OK(&f);
}

static void script_close_at_commit(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.1.8") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
}

static void test_close_at_commit(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_close_at_commit, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_ECONN);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "unknown"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "n1.1.8"));
    xac_close(c);
    FAKE_OK(&f);
}

static void script_close_after_welcome(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
}

/* The server has closed before the client writes: the write fails with
 * EPIPE, which must come back as XAC_ECONN, not as a SIGPIPE that kills us. */
static void test_no_sigpipe(void)
{
    struct sigaction old, dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, &old);
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_close_after_welcome, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    FAKE_OK(&f); /* joined: the server side is closed now */
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx, &e), XAC_ECONN);
    CU_ASSERT_PTR_NULL(tx);
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx, &e), XAC_ECONN);
    xac_close(c);
    sigaction(SIGPIPE, &old, NULL);
}

/* ------------------------------------------------------ frame limits */

static void script_huge_reply(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_BEGIN) == 0);
    /* Announces 2 GiB; the body never comes. */
    static const uint8_t hdr[] = {0x7f, 0xff, 0xff, 0xf0, XAC_MSG_BEGUN, 0, 0, 0, 1};
    SCHECK(f, srv_raw(fd, hdr, sizeof hdr) == XAC_OK);
    SCHECK(f, srv_eof(fd));
}

static void test_reply_over_max(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_huge_reply, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx, &e), XAC_ELIMIT);
    CU_ASSERT_PTR_NULL(tx);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "limit"));
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx, &e), XAC_ECONN); /* stream is out of step: closed */
    xac_close(c);
    FAKE_OK(&f);
}

static void script_small_max(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.1.9") == 0);
    /* The over-long EXEC never arrives; the next request is ROLLBACK. */
    SCHECK(f, srv_expect(fd, XAC_MSG_ROLLBACK) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "", "") == XAC_OK);
}

static void test_request_over_server_max(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_small_max, 64, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    char sql[200];
    memset(sql, ' ', sizeof sql);
    memcpy(sql, "SELECT 1", 8);
    sql[sizeof sql - 1] = '\0';
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", sql, NULL, 0, NULL, &e), XAC_ELIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "64"));
    CU_ASSERT_EQUAL(xac_rollback(tx, &e), XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

/* ------------------------------------------------ protocol violations */

static void script_wrong_reply(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_BEGIN) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_COMMITTED, "", "") == XAC_OK);
    SCHECK(f, srv_eof(fd));
}

static void test_wrong_reply_type(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_wrong_reply, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx, &e), XAC_EPROTO);
    CU_ASSERT_PTR_NULL(tx);
    CU_ASSERT_EQUAL(xac_begin(c, 0, &tx, &e), XAC_ECONN);
    xac_close(c);
    FAKE_OK(&f);
}

static void script_bad_welcome(fake *f, int fd)
{
    SCHECK(f, srv_expect(fd, XAC_MSG_HELLO) == 0);
    /* WELCOME with a byte too many. */
    static const uint8_t w[] = {0, 0, 0, 13, 0x81, 0, 1, 0, 0, 0, 1, 'n', 0, 0, 1, 0, 9};
    SCHECK(f, srv_raw(fd, w, sizeof w) == XAC_OK);
    SCHECK(f, srv_eof(fd));
}

static void test_malformed_welcome(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_bad_welcome, 1 << 20, 0) == 0);
    xac_conn *c = (xac_conn *)1;
    xac_error e;
    CU_ASSERT_EQUAL(xac_connect(f.addr, "app", "s3cret", &c, &e), XAC_EPROTO);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "WELCOME"));
    FAKE_OK(&f);
}

/* ---------------------------------------------------- small helpers */

static void test_params_and_names(void)
{
    CU_ASSERT_EQUAL(xac_null().type, 0);
    xac_param p = xac_int(-5);
    CU_ASSERT_TRUE(p.type == 1 && p.i == -5);
    p = xac_double(2.5);
    CU_ASSERT_TRUE(p.type == 2 && p.d == 2.5);
    p = xac_text("abc");
    CU_ASSERT_TRUE(p.type == 3 && p.len == 3 && strcmp(p.s, "abc") == 0);
    CU_ASSERT_EQUAL(xac_text(NULL).type, 0); /* NULL string binds SQL NULL */
    p = xac_blob("\0x", 2);
    CU_ASSERT_TRUE(p.type == 4 && p.len == 2);
    CU_ASSERT_STRING_EQUAL(xac_state_name(XAC_STATE_COMMITTED), "COMMITTED");
    CU_ASSERT_STRING_EQUAL(xac_state_name(XAC_STATE_ROLLED_BACK), "ROLLED_BACK");
    CU_ASSERT_STRING_EQUAL(xac_state_name(42), "INVALID");
    for (int code = 0; code <= XAC_ECONN; code++)
        CU_ASSERT_STRING_NOT_EQUAL(xac_strerror(code), "unknown error");
    CU_ASSERT_STRING_EQUAL(xac_strerror(999), "unknown error");
    xac_error e;
    CU_ASSERT_EQUAL(xac_commit(NULL, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_exec(NULL, "a", "x", NULL, 0, NULL, &e), XAC_EINVAL);
    xac_close(NULL);
    xac_result_free(NULL);
}

/* ------------------------------------------ deferred BEGIN (XAC_BEGIN_DEFER) */

/* True when more bytes are waiting: the client sent the next request without
 * waiting for a reply. */
static int srv_pending(int fd)
{
    uint8_t b;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

/* BEGIN with this timeout, the next request already behind it. */
static int srv_begin_pipelined(int fd, uint32_t timeout_ms)
{
    xac_msg m;
    if (srv_recv(fd, &m) != XAC_OK)
        return -1;
    int ok = m.type == XAC_MSG_BEGIN && m.timeout_ms == timeout_ms && srv_pending(fd);
    xac_msg_free(&m);
    return ok ? 0 : -1;
}

static void script_exec_commit(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begin_pipelined(fd, 1234) == 0);
    xac_msg b;
    xac_msg_init(&b, XAC_MSG_BEGUN);
    b.gtrid = "n1.1.1";
    SCHECK(f, srv_send(fd, &b) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    SCHECK(f, srv_affected(fd, 1) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_COMMITTED, "", "") == XAC_OK);
    /* A deferred transaction that the client closes sends nothing. */
    SCHECK(f, srv_eof(fd));
}

static void test_exec_commit(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_exec_commit, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 1234, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "");
    xac_result *r = NULL;
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "UPDATE t SET v = 1", NULL, 0, &r, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "n1.1.1");
    CU_ASSERT(r != NULL && xac_result_affected(r) == 1);
    xac_result_free(r);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_OK);
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

#define OOM "engine: out of memory for a new transaction"

static void script_begin_refused(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begin_pipelined(fd, 0) == 0);
    SCHECK(f, srv_error(fd, XAC_EINTERNAL, "", OOM) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    SCHECK(f, srv_error(fd, XAC_ESTATE, "", "EXEC without an open transaction") == XAC_OK);
    /* The same as ROLLBACK's first request. */
    SCHECK(f, srv_begin_pipelined(fd, 0) == 0);
    SCHECK(f, srv_error(fd, XAC_EINTERNAL, "", OOM) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_ROLLBACK) == 0);
    SCHECK(f, srv_error(fd, XAC_ESTATE, "", "ROLLBACK without an open transaction") == XAC_OK);
    /* In step: the next BEGIN is answered as such. */
    SCHECK(f, srv_begun(fd, "n1.1.2") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_ROLLBACK) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "", "") == XAC_OK);
}

static void test_begin_refused(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_begin_refused, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT 1", NULL, 0, NULL, &e), XAC_EINTERNAL);
    CU_ASSERT_EQUAL(e.code, XAC_EINTERNAL);
    CU_ASSERT_STRING_EQUAL(e.msg, OOM);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "");
    /* Nothing is sent for it any more. */
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT 1", NULL, 0, NULL, &e), XAC_EROLLBACK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, OOM));
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_rollback(tx, &e), XAC_EINTERNAL);
    CU_ASSERT_STRING_EQUAL(e.msg, OOM);
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "n1.1.2");
    CU_ASSERT_EQUAL(xac_rollback(tx, &e), XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

/* An ERROR after which xacd closes the session: no reply follows it. */
static void script_begin_closes(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begin_pipelined(fd, 0) == 0);
    SCHECK(f, srv_error(fd, XAC_EPROTO, "", "bad frame") == XAC_OK);
    shutdown(fd, SHUT_WR);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_eof(fd));
}

static void test_begin_closes(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_begin_closes, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EPROTO);
    CU_ASSERT_STRING_EQUAL(e.msg, "bad frame");
    CU_ASSERT_EQUAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_ECONN);
    xac_close(c);
    FAKE_OK(&f);
}

/* A first request over the server's frame limit is not sent, and neither is
 * the BEGIN: it waits for the next request. */
static void script_over_max(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begin_pipelined(fd, 0) == 0);
    xac_msg b;
    xac_msg_init(&b, XAC_MSG_BEGUN);
    b.gtrid = "n1.1.3";
    SCHECK(f, srv_send(fd, &b) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_EXEC) == 0);
    SCHECK(f, srv_affected(fd, 0) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_ROLLBACK) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "", "") == XAC_OK);
}

static void test_over_max(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_over_max, 64, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    char sql[200];
    memset(sql, ' ', sizeof sql);
    memcpy(sql, "SELECT 1", 8);
    sql[sizeof sql - 1] = '\0';
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", sql, NULL, 0, NULL, &e), XAC_ELIMIT);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "");
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT 1", NULL, 0, NULL, &e), XAC_OK);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "n1.1.3");
    CU_ASSERT_EQUAL(xac_rollback(tx, &e), XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

/* ------------------------------------------------------ deferred EXECs */

/* Expects an EXEC with the statement sql and, when pending, more bytes behind
 * it in the same write; 0 when so. */
static int srv_exec_is(int fd, const char *sql, int pending)
{
    xac_msg m;
    if (srv_recv(fd, &m) != XAC_OK)
        return -1;
    int ok = m.type == XAC_MSG_EXEC && m.sql_len == strlen(sql) &&
             memcmp(m.sql, sql, m.sql_len) == 0 && (!pending || srv_pending(fd));
    xac_msg_free(&m);
    return ok ? 0 : -1;
}

static void script_defer_commit(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    /* BEGIN, two EXECs and COMMIT arrive together. */
    SCHECK(f, srv_begin_pipelined(fd, 0) == 0);
    xac_msg b;
    xac_msg_init(&b, XAC_MSG_BEGUN);
    b.gtrid = "n1.2.1";
    SCHECK(f, srv_send(fd, &b) == XAC_OK);
    xac_msg m;
    SCHECK(f, srv_recv(fd, &m) == XAC_OK);
    int ok = m.type == XAC_MSG_EXEC && strcmp(m.resource, "bank_a") == 0 && m.nparams == 2 &&
             m.params[0].type == XAC_T_INT && m.params[0].i == 5 &&
             m.params[1].type == XAC_T_TEXT && m.params[1].len == 3 &&
             memcmp(m.params[1].s, "abc", 3) == 0 && srv_pending(fd);
    xac_msg_free(&m);
    SCHECK(f, ok);
    SCHECK(f, srv_affected(fd, 1) == XAC_OK);
    SCHECK(f, srv_exec_is(fd, "UPDATE b", 1) == 0);
    SCHECK(f, srv_affected(fd, 1) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_COMMITTED, "", "") == XAC_OK);
    /* Second transaction: a deferred EXEC fails; the EXEC sent behind it
     * gets EROLLBACK, as xacd answers a rollback-only transaction. */
    SCHECK(f, srv_begun(fd, "n1.2.2") == 0);
    SCHECK(f, srv_exec_is(fd, "INSERT dup", 1) == 0);
    SCHECK(f, srv_error(fd, XAC_ESQL, "bank_a", "duplicate key") == XAC_OK);
    SCHECK(f, srv_exec_is(fd, "SELECT 1", 0) == 0);
    SCHECK(f, srv_error(fd, XAC_EROLLBACK, "bank_a", "duplicate key") == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "bank_a", "duplicate key") == XAC_OK);
    /* Third: deferred, then COMMIT; the EXEC fails, COMMIT rolls back. */
    SCHECK(f, srv_begun(fd, "n1.2.3") == 0);
    SCHECK(f, srv_exec_is(fd, "INSERT dup", 1) == 0);
    SCHECK(f, srv_error(fd, XAC_ESQL, "bank_b", "duplicate key") == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "bank_b", "duplicate key") == XAC_OK);
    /* Fourth: ROLLBACK drops the deferred EXEC unsent. */
    SCHECK(f, srv_begun(fd, "n1.2.4") == 0);
    SCHECK(f, srv_expect(fd, XAC_MSG_ROLLBACK) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "", "") == XAC_OK);
    SCHECK(f, srv_eof(fd));
}

static void test_defer_commit(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_defer_commit, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    char text[4] = "abc";
    xac_param p[2] = {xac_int(5), xac_text(text)};
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE a", p, 2, XAC_EXEC_DEFER, NULL, &e), XAC_OK);
    memcpy(text, "xyz", 3); /* the parameters were copied */
    /* Refused without sending anything: a result asked for, unknown flags. */
    xac_result *r = NULL;
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE a", NULL, 0, XAC_EXEC_DEFER, &r, &e),
                    XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE a", NULL, 0, 6, NULL, &e), XAC_EINVAL);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_b", "UPDATE b", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    CU_ASSERT_STRING_EQUAL(xac_tx_gtrid(tx), "");
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_OK);

    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "INSERT dup", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "SELECT 1", NULL, 0, NULL, &e), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_a");
    CU_ASSERT_STRING_EQUAL(e.msg, "duplicate key");
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);

    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_b", "INSERT dup", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_b");
    CU_ASSERT_STRING_EQUAL(e.msg, "duplicate key");

    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_b", "UPDATE b", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    CU_ASSERT_EQUAL(xac_rollback(tx, &e), XAC_OK);
    /* Closed with a deferred BEGIN and EXEC queued: nothing is sent. */
    CU_ASSERT_EQUAL_FATAL(xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_b", "UPDATE b", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

#define TIMED_OUT "transaction n1.3.1 timed out after 5 ms and was rolled back"

/* A deferred EXEC that times out: xacd has no transaction any more and
 * answers what follows with ESTATE; the client reports the timeout. */
static void script_defer_timeout(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.3.1") == 0);
    SCHECK(f, srv_exec_is(fd, "UPDATE a", 1) == 0);
    SCHECK(f, srv_error(fd, XAC_ETIMEOUT, "", TIMED_OUT) == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_error(fd, XAC_ESTATE, "", "COMMIT without an open transaction") == XAC_OK);
    SCHECK(f, srv_begun(fd, "n1.3.2") == 0);
    SCHECK(f, srv_exec_is(fd, "UPDATE a", 1) == 0);
    SCHECK(f, srv_error(fd, XAC_ETIMEOUT, "", TIMED_OUT) == XAC_OK);
    SCHECK(f, srv_exec_is(fd, "UPDATE b", 0) == 0);
    SCHECK(f, srv_error(fd, XAC_ESTATE, "", "EXEC without an open transaction") == XAC_OK);
    SCHECK(f, srv_eof(fd));
}

static void test_defer_timeout(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_defer_timeout, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 5, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE a", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(e.msg, TIMED_OUT);
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 5, &tx, &e), XAC_OK);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE a", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "UPDATE b", NULL, 0, NULL, &e), XAC_ETIMEOUT);
    CU_ASSERT_STRING_EQUAL(e.msg, TIMED_OUT);
    /* Ended: nothing more is sent for it. */
    CU_ASSERT_EQUAL(xac_exec(tx, "bank_a", "UPDATE c", NULL, 0, NULL, &e), XAC_EROLLBACK);
    CU_ASSERT_EQUAL(xac_rollback(tx, &e), XAC_OK);
    xac_close(c);
    FAKE_OK(&f);
}

/* The 64th deferred EXEC sends the 64 waiting; its call returns the first
 * error among them. */
static void script_defer_many(fake *f, int fd)
{
    SCHECK(f, srv_hello(f, fd) == 0);
    SCHECK(f, srv_begun(fd, "n1.4.1") == 0);
    for (int i = 0; i < 64; i++) {
        SCHECK(f, srv_exec_is(fd, "UPDATE a", i < 63) == 0);
        if (i == 10)
            SCHECK(f, srv_error(fd, XAC_ESQL, "bank_a", "deadlock") == XAC_OK);
        else if (i > 10)
            SCHECK(f, srv_error(fd, XAC_EROLLBACK, "bank_a", "deadlock") == XAC_OK);
        else
            SCHECK(f, srv_affected(fd, 1) == XAC_OK);
    }
    SCHECK(f, srv_exec_is(fd, "UPDATE z", 1) == 0);
    SCHECK(f, srv_error(fd, XAC_EROLLBACK, "bank_a", "deadlock") == XAC_OK);
    SCHECK(f, srv_expect(fd, XAC_MSG_COMMIT) == 0);
    SCHECK(f, srv_outcome(fd, XAC_OUTCOME_ROLLED_BACK, "bank_a", "deadlock") == XAC_OK);
}

static void test_defer_many(void)
{
    fake f;
    CU_ASSERT_FATAL(fake_start(&f, script_defer_many, 1 << 20, 0) == 0);
    xac_conn *c = connect_to(&f);
    CU_ASSERT_FATAL(c != NULL);
    xac_tx *tx = NULL;
    xac_error e;
    CU_ASSERT_EQUAL_FATAL(xac_begin(c, 0, &tx, &e), XAC_OK);
    for (int i = 0; i < 63; i++)
        CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE a", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                        XAC_OK);
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE a", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_ESQL);
    CU_ASSERT_STRING_EQUAL(e.resource, "bank_a");
    CU_ASSERT_STRING_EQUAL(e.msg, "deadlock");
    CU_ASSERT_EQUAL(xac_exec_ex(tx, "bank_a", "UPDATE z", NULL, 0, XAC_EXEC_DEFER, NULL, &e),
                    XAC_OK);
    CU_ASSERT_EQUAL(xac_commit(tx, &e), XAC_EROLLBACK);
    CU_ASSERT_STRING_EQUAL(e.msg, "deadlock");
    xac_close(c);
    FAKE_OK(&f);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"HELLO bytes and WELCOME", test_hello_bytes},
                                    {"plain path address", test_plain_path},
                                    {"tcp address", test_tcp},
                                    {"bad addresses", test_bad_addresses},
                                    {"EAUTH surfaced with its message", test_eauth},
                                    {"EXEC parameter encoding", test_exec_encoding},
                                    {"RESULT rows decode", test_result_rows},
                                    {"OUTCOME 1 gives EROLLBACK", test_outcome_rollback},
                                    {"EXEC errors and timeout", test_exec_errors},
                                    {"COMMIT errors", test_commit_errors},
                                    {"server closes mid-reply", test_close_mid_reply},
                                    {"server closes at commit", test_close_at_commit},
                                    {"no SIGPIPE", test_no_sigpipe},
                                    {"reply over the client's max", test_reply_over_max},
                                    {"request over the server's max", test_request_over_server_max},
                                    {"wrong reply type", test_wrong_reply_type},
                                    {"malformed WELCOME", test_malformed_welcome},
                                    {"parameters and names", test_params_and_names},
                                    {"deferred BEGIN rides with EXEC", test_exec_commit},
                                    {"deferred BEGIN refused, session kept", test_begin_refused},
                                    {"deferred BEGIN refused, session closed", test_begin_closes},
                                    {"deferred BEGIN: first request over the limit", test_over_max},
                                    {"deferred EXECs ride with COMMIT", test_defer_commit},
                                    {"deferred EXEC times out", test_defer_timeout},
                                    {"64 deferred EXECs are sent", test_defer_many},
                                    {NULL, NULL}};
    return cu_add_suite("libxac", tests);
}
