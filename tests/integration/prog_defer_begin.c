/* A libxac client for test_defer_begin.sh: runs transactions with a deferred
 * BEGIN (XAC_BEGIN_DEFER) and deferred EXECs (XAC_EXEC_DEFER) against a real
 * xacd through a relay of its own, which
 * counts the client's turns to speak (a turn: the client sends after the
 * server did; a request/reply round trip is one turn) and can slip a request
 * of its own into the session while libxac is idle, so that xacd refuses the
 * deferred BEGIN (a session holding a transaction that libxac does not know
 * of answers BEGIN with ESTATE). Connection settings come from XAC_ADDR
 * (unix:PATH), XAC_CLIENT and XAC_TOKEN.
 *
 *   prog_defer_begin TABLE PROXY_SOCKET
 *
 * Updates account 1 of TABLE on resource bank_a; prints one line per check
 * and "EXPECT_BALANCE_DELTA N", the sum the committed transactions added.
 * Exit 0 when every check held, 1 otherwise, 2 on bad arguments. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "xac_common.h"
#include "xac.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("ok: " __VA_ARGS__);                                                            \
        } else {                                                                                   \
            printf("FAIL (line %d): ", __LINE__);                                                  \
            printf(__VA_ARGS__);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
        printf("\n");                                                                              \
    } while (0)

/* ------------------------------------------------------------ the relay */

typedef struct relay {
    int lfd, cfd, sfd;
    int cmd[2];  /* main -> relay: inject the frame in inj */
    int done[2]; /* relay -> main: the type of the reply it swallowed */
    xac_buf inj;
    atomic_int turns;
    pthread_t th;
} relay;

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return -1;
    memcpy(sa->sun_path, path, strlen(path));
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    return xac_write_all(fd, p, n, NULL) == XAC_OK ? 0 : -1;
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    bool client_spoke_last = false;
    uint8_t buf[65536];
    for (;;) {
        struct pollfd p[3] = {{.fd = r->cfd, .events = POLLIN},
                              {.fd = r->sfd, .events = POLLIN},
                              {.fd = r->cmd[0], .events = POLLIN}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents != 0) {
            ssize_t n = read(r->cfd, buf, sizeof buf);
            if (n <= 0)
                break;
            if (!client_spoke_last)
                atomic_fetch_add(&r->turns, 1);
            client_spoke_last = true;
            if (write_all(r->sfd, buf, (size_t)n) != 0)
                break;
        }
        if (p[1].revents != 0) {
            ssize_t n = read(r->sfd, buf, sizeof buf);
            if (n <= 0)
                break;
            client_spoke_last = false;
            if (write_all(r->cfd, buf, (size_t)n) != 0)
                break;
        }
        if (p[2].revents != 0) {
            char c;
            if (read(r->cmd[0], &c, 1) != 1)
                break;
            /* libxac is idle between calls: the next frame from xacd answers
             * this request. xac_frame_read reads no further than the frame. */
            uint8_t type = 0;
            xac_buf b;
            xac_buf_init(&b);
            if (write_all(r->sfd, r->inj.data, r->inj.len) != 0 ||
                xac_frame_read(r->sfd, XAC_FRAME_DEFAULT_MAX, &type, &b, NULL) != XAC_OK)
                type = 0;
            xac_buf_free(&b);
            if (write(r->done[1], &type, 1) != 1)
                break;
        }
    }
    close(r->cfd);
    close(r->sfd);
    return NULL;
}

static int relay_start(relay *r, const char *path, const char *upstream)
{
    memset(r, 0, sizeof *r);
    xac_buf_init(&r->inj);
    struct sockaddr_un sa, ua;
    if (unix_addr(path, &sa) != 0 || unix_addr(upstream, &ua) != 0)
        return -1;
    unlink(path);
    r->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(r->lfd, 1) != 0 || pipe(r->cmd) != 0 || pipe(r->done) != 0)
        return -1;
    r->sfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (r->sfd < 0 || connect(r->sfd, (struct sockaddr *)&ua, sizeof ua) != 0)
        return -1;
    return 0;
}

/* After the client connected to path: accepts it and starts relaying. */
static int relay_run(relay *r)
{
    r->cfd = accept(r->lfd, NULL, NULL);
    if (r->cfd < 0)
        return -1;
    return pthread_create(&r->th, NULL, relay_main, r) == 0 ? 0 : -1;
}

/* Sends m to xacd in the client's session; returns the reply's type. */
static int relay_inject(relay *r, const xac_msg *m)
{
    r->inj.len = 0;
    if (xac_msg_encode(m, &r->inj, NULL) != XAC_OK)
        return -1;
    char c = 1;
    uint8_t type = 0;
    if (write(r->cmd[1], &c, 1) != 1 || read(r->done[0], &type, 1) != 1)
        return -1;
    return type;
}

/* The HELLO exchange is done before the relay runs; connect in a thread. */
typedef struct conn_job {
    const char *addr, *client, *token;
    xac_conn *c;
    xac_error e;
    int rc;
} conn_job;

static void *connect_main(void *arg)
{
    conn_job *j = arg;
    j->rc = xac_connect(j->addr, j->client, j->token, &j->c, &j->e);
    return NULL;
}

/* ---------------------------------------------------------- the checks */

static char sql_add[256];

static int add(xac_tx *tx, long v, xac_error *e)
{
    xac_param p[] = {xac_int(v)};
    return xac_exec(tx, "bank_a", sql_add, p, 1, NULL, e);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* BEGIN, sql_add on bank_a, bad on resource mid, sql_add on bank_a again,
 * and COMMIT, all deferred: the COMMIT must roll back, naming mid and the
 * missing table, in one client turn. */
static void failing_between(xac_conn *c, relay *r, const char *mid, const char *bad,
                            const char *what)
{
    xac_param p[] = {xac_int(2048)};
    xac_tx *tx = NULL;
    xac_error e;
    int t0 = atomic_load(&r->turns);
    int rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p, 1, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, mid, bad, NULL, 0, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p, 1, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_EROLLBACK && strcmp(e.resource, mid) == 0 && strstr(e.msg, "_missing") != NULL,
          "%s: %s: %s: %s", what, xac_strerror(rc), e.resource, e.msg);
    CHECK(atomic_load(&r->turns) - t0 == 1, "... in %d client turns, expected 1",
          atomic_load(&r->turns) - t0);
}

int main(int argc, char **argv)
{
    const char *addr = getenv("XAC_ADDR"), *client = getenv("XAC_CLIENT"),
               *token = getenv("XAC_TOKEN");
    if (argc != 3 || addr == NULL || strncmp(addr, "unix:", 5) != 0 || client == NULL ||
        token == NULL) {
        fprintf(stderr, "usage: XAC_ADDR=unix:PATH XAC_CLIENT=.. XAC_TOKEN=.. "
                        "prog_defer_begin TABLE PROXY_SOCKET\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(sql_add, sizeof sql_add, "UPDATE %s SET balance = balance + ? WHERE id = 1", argv[1]);

    relay r;
    if (relay_start(&r, argv[2], addr + 5) != 0) {
        printf("FAIL: cannot set up the relay at %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    char paddr[160];
    snprintf(paddr, sizeof paddr, "unix:%s", argv[2]);
    conn_job j = {.addr = paddr, .client = client, .token = token};
    pthread_t cth;
    if (pthread_create(&cth, NULL, connect_main, &j) != 0 || relay_run(&r) != 0) {
        printf("FAIL: cannot start the relay\n");
        return 1;
    }
    pthread_join(cth, NULL);
    if (j.rc != XAC_OK) {
        printf("FAIL: connect: %s\n", j.e.msg);
        return 1;
    }
    xac_conn *c = j.c;
    xac_tx *tx;
    xac_error e;
    long delta = 0;
    int t0, rc;

    /* The baseline: BEGIN on its own costs a turn. */
    t0 = atomic_load(&r.turns);
    rc = xac_begin(c, 0, &tx, &e);
    if (rc == XAC_OK)
        rc = add(tx, 1, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK, "plain BEGIN, EXEC, COMMIT committed (%s)", e.msg);
    delta += 1;
    int plain = atomic_load(&r.turns) - t0;
    CHECK(plain == 3, "plain BEGIN, EXEC, COMMIT: %d client turns, expected 3", plain);

    /* Deferred BEGIN + EXEC + COMMIT. */
    t0 = atomic_load(&r.turns);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    CHECK(rc == XAC_OK, "deferred BEGIN accepted (%s)", e.msg);
    if (rc != XAC_OK)
        return 1;
    CHECK(atomic_load(&r.turns) == t0, "deferred BEGIN sent nothing");
    CHECK(strcmp(xac_tx_gtrid(tx), "") == 0, "gtrid before the first EXEC is \"\" (\"%s\")",
          xac_tx_gtrid(tx));
    rc = add(tx, 2, &e);
    CHECK(rc == XAC_OK, "EXEC after a deferred BEGIN ran (%s)", e.msg);
    char gtrid[XAC_GTRID_MAX + 1];
    snprintf(gtrid, sizeof gtrid, "%s", xac_tx_gtrid(tx));
    CHECK(gtrid[0] != '\0', "gtrid after the first EXEC is \"%s\"", gtrid);
    rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK, "deferred BEGIN, EXEC, COMMIT committed (%s)", e.msg);
    delta += 2;
    int deferred = atomic_load(&r.turns) - t0;
    CHECK(deferred == 2, "deferred BEGIN, EXEC, COMMIT: %d client turns, expected 2", deferred);
    int state = -1;
    rc = xac_status(c, gtrid, &state, &e);
    CHECK(rc == XAC_OK && state == XAC_STATE_COMMITTED, "STATUS %s: %s", gtrid,
          xac_state_name(state));

    /* Deferred BEGIN, then COMMIT or ROLLBACK without an EXEC. */
    t0 = atomic_load(&r.turns);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK, "deferred BEGIN then COMMIT committed (%s)", e.msg);
    CHECK(atomic_load(&r.turns) - t0 == 1, "deferred BEGIN then COMMIT: %d client turns",
          atomic_load(&r.turns) - t0);
    t0 = atomic_load(&r.turns);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_rollback(tx, &e);
    CHECK(rc == XAC_OK, "deferred BEGIN then ROLLBACK rolled back (%s)", e.msg);
    CHECK(atomic_load(&r.turns) - t0 == 1, "deferred BEGIN then ROLLBACK: %d client turns",
          atomic_load(&r.turns) - t0);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = add(tx, 4, &e);
    if (rc == XAC_OK)
        rc = xac_rollback(tx, &e);
    CHECK(rc == XAC_OK, "deferred BEGIN, EXEC, ROLLBACK rolled back (%s)", e.msg);
    rc = xac_begin_ex(c, 0, 2, &tx, &e);
    CHECK(rc == XAC_EINVAL, "an unknown flag is refused (%s)", e.msg);

    /* xacd refuses the BEGIN: the session holds a transaction of the relay's. */
    xac_msg begin, rollback;
    xac_msg_init(&begin, XAC_MSG_BEGIN);
    xac_msg_init(&rollback, XAC_MSG_ROLLBACK);
    CHECK(relay_inject(&r, &begin) == XAC_MSG_BEGUN, "the relay opened a hidden transaction");
    xac_error plain_err;
    rc = xac_begin(c, 0, &tx, &plain_err);
    CHECK(rc == XAC_ESTATE, "plain BEGIN refused: %s: %s", xac_strerror(rc), plain_err.msg);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    CHECK(rc == XAC_OK, "deferred BEGIN accepted locally (%s)", e.msg);
    t0 = atomic_load(&r.turns);
    rc = add(tx, 8, &e);
    CHECK(rc == XAC_ESTATE && e.code == XAC_ESTATE && strcmp(e.msg, plain_err.msg) == 0 &&
              strcmp(e.resource, plain_err.resource) == 0,
          "the EXEC behind it reports BEGIN's error: %s: %s", xac_strerror(rc), e.msg);
    CHECK(strcmp(xac_tx_gtrid(tx), "") == 0, "gtrid after the failed BEGIN is \"\"");
    rc = xac_exec(tx, "bank_a", sql_add, NULL, 0, NULL, &e);
    CHECK(rc == XAC_EROLLBACK && strstr(e.msg, plain_err.msg) != NULL, "a second EXEC: %s: %s",
          xac_strerror(rc), e.msg);
    rc = xac_commit(tx, &e);
    CHECK(rc == XAC_EROLLBACK && strstr(e.msg, plain_err.msg) != NULL, "its COMMIT: %s: %s",
          xac_strerror(rc), e.msg);
    CHECK(atomic_load(&r.turns) - t0 == 1, "only the first EXEC reached xacd (%d turns)",
          atomic_load(&r.turns) - t0);
    /* The EXEC ran in the hidden transaction (the reply libxac dropped); the
     * relay rolls that back. */
    CHECK(relay_inject(&r, &rollback) == XAC_MSG_OUTCOME, "the relay rolled back its transaction");
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = add(tx, 16, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK,
          "the session is in step after the failed BEGIN: next transaction "
          "committed (%s)",
          e.msg);
    delta += 16;

    /* The same with COMMIT as the first request. */
    CHECK(relay_inject(&r, &begin) == XAC_MSG_BEGUN, "the relay opened a hidden transaction");
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_ESTATE && strcmp(e.msg, plain_err.msg) == 0,
          "deferred BEGIN then COMMIT reports BEGIN's error: %s: %s", xac_strerror(rc), e.msg);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = add(tx, 32, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK, "next transaction committed (%s)", e.msg);
    delta += 32;

    /* Timeouts: counted from when the BEGIN reaches xacd, with the first
     * request. The idle time before it is not counted (2.5 s > 2 s). */
    rc = xac_begin_ex(c, 2000, XAC_BEGIN_DEFER, &tx, &e);
    sleep_ms(2500);
    if (rc == XAC_OK)
        rc = add(tx, 128, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK, "2 s timeout, 2.5 s idle before the first EXEC: committed (%s)", e.msg);
    delta += 128;
    rc = xac_begin_ex(c, 300, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = add(tx, 64, &e);
    CHECK(rc == XAC_OK, "300 ms timeout: first EXEC ran (%s)", e.msg);
    sleep_ms(1500);
    rc = add(tx, 64, &e);
    CHECK(rc == XAC_ETIMEOUT, "300 ms timeout, EXEC 1.5 s later: %s: %s", xac_strerror(rc), e.msg);
    rc = xac_commit(tx, &e);
    CHECK(rc == XAC_EROLLBACK, "its COMMIT: %s: %s", xac_strerror(rc), e.msg);
    rc = xac_begin_ex(c, 300, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = add(tx, 256, &e);
    sleep_ms(1500);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_EROLLBACK && strstr(e.msg, "timed out") != NULL,
          "300 ms timeout, COMMIT 1.5 s after the first EXEC: %s: %s", xac_strerror(rc), e.msg);

    /* Deferred EXECs (XAC_EXEC_DEFER): BEGIN, the statements and COMMIT in
     * one turn; a failed one makes the COMMIT behind it roll back. */
    xac_param p512[] = {xac_int(512)}, p1024[] = {xac_int(1024)}, p2048[] = {xac_int(2048)};
    t0 = atomic_load(&r.turns);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p512, 1, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p1024, 1, XAC_EXEC_DEFER, NULL, &e);
    CHECK(rc == XAC_OK && atomic_load(&r.turns) == t0, "two deferred EXECs sent nothing (%s)",
          e.msg);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK, "deferred BEGIN, two deferred EXECs, COMMIT committed (%s)", e.msg);
    CHECK(atomic_load(&r.turns) - t0 == 1, "... in %d client turns, expected 1",
          atomic_load(&r.turns) - t0);
    delta += 512 + 1024;

    char bad[300];
    snprintf(bad, sizeof bad, "UPDATE %s_missing SET balance = 0", argv[1]);
    failing_between(c, &r, "bank_a", bad, "a failed deferred EXEC rolls the pipelined COMMIT back");

    /* One deferred statement and its COMMIT: xacd runs them in one query
     * (in autocommit mode, a local transaction: one branch needs no XA). */
    xac_param p4096[] = {xac_int(4096)};
    t0 = atomic_load(&r.turns);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p4096, 1, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK && atomic_load(&r.turns) - t0 == 1,
          "one deferred EXEC and COMMIT: committed in %d client turn(s) (%s)",
          atomic_load(&r.turns) - t0, e.msg);
    delta += 4096;
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", bad, NULL, 0, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_EROLLBACK && strstr(e.msg, "_missing") != NULL,
          "one failing deferred EXEC and COMMIT: %s: %s", xac_strerror(rc), e.msg);
    snprintf(bad, sizeof bad, "SELECT balance FROM %s WHERE id = 1", argv[1]);
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", bad, NULL, 0, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_OK, "one deferred SELECT and COMMIT: committed (%s)", e.msg);

    /* Two resources, the second one's statement failing between two on the
     * first: the failure, then the rollback-only refusal of the EXEC behind
     * it; the COMMIT rolls back the bank_a branch, which was not prepared
     * (its last statement was refused). The script checks the balance and
     * that no branch is left prepared. */
    char bad_b[300];
    snprintf(bad_b, sizeof bad_b, "UPDATE %s_missing SET balance = 0", argv[1]);
    failing_between(c, &r, "bank_b", bad_b,
                    "a failed statement between two on another resource rolls the pipelined "
                    "COMMIT back, naming bank_b");

    /* Another resource follows, so xacd prepares bank_a's branch with its
     * statement (XA END; XA PREPARE in the same query); the failure after
     * it must roll that prepared branch back (the script checks that no
     * branch is left prepared and the balance). */
    rc = xac_begin_ex(c, 0, XAC_BEGIN_DEFER, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p2048, 1, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "nosuch", "SELECT 1", NULL, 0, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_commit(tx, &e);
    CHECK(rc == XAC_EROLLBACK && strcmp(e.resource, "nosuch") == 0,
          "a deferred EXEC on an unknown resource rolls the COMMIT back: %s: %s: %s",
          xac_strerror(rc), e.resource, e.msg);

    t0 = atomic_load(&r.turns);
    rc = xac_begin(c, 0, &tx, &e);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p512, 1, XAC_EXEC_DEFER, NULL, &e);
    xac_result *res = NULL;
    if (rc == XAC_OK)
        rc = xac_exec(tx, "bank_a", sql_add, p1024, 1, &res, &e);
    CHECK(rc == XAC_OK && res != NULL && xac_result_affected(res) == 1,
          "an EXEC behind a deferred one gets its own result (%s)", e.msg);
    xac_result_free(res);
    if (rc == XAC_OK)
        rc = xac_exec_ex(tx, "bank_a", sql_add, p2048, 1, XAC_EXEC_DEFER, NULL, &e);
    if (rc == XAC_OK)
        rc = xac_rollback(tx, &e);
    CHECK(rc == XAC_OK, "ROLLBACK with a deferred EXEC waiting (%s)", e.msg);
    CHECK(atomic_load(&r.turns) - t0 == 3, "BEGIN, deferred + EXEC, ROLLBACK: %d client turns",
          atomic_load(&r.turns) - t0);

    xac_close(c);
    pthread_join(r.th, NULL);
    close(r.lfd);
    unlink(argv[2]);
    xac_buf_free(&r.inj);
    printf("EXPECT_BALANCE_DELTA %ld\n", delta);
    printf("%s\n", failures == 0 ? "ALL OK" : "SOME CHECKS FAILED");
    return failures == 0 ? 0 : 1;
}
