/* Unit tests of libxac's deferred BEGIN (XAC_BEGIN_DEFER) against a scripted
 * fake xacd (the same kind as test_libxac.c's): what a real xacd cannot be
 * made to do on demand, such as refusing a BEGIN with an error that keeps the
 * session or one that closes it. The fake checks that the BEGIN and the
 * request behind it arrive together, before it has answered anything.
 * tests/integration/test_defer_begin.sh covers the same against xacd. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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
static int srv_send(int fd, const xac_msg *m)
{
    return xac_msg_send(fd, m, NULL);
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

/* ------------------------------------------------------------ deferred */

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

int cu_register(void)
{
    static const cu_test tests[] = {{"BEGIN rides with EXEC", test_exec_commit},
                                    {"BEGIN refused, session kept", test_begin_refused},
                                    {"BEGIN refused, session closed", test_begin_closes},
                                    {"first request over the limit", test_over_max},
                                    {NULL, NULL}};
    return cu_add_suite("libxac deferred BEGIN", tests);
}
