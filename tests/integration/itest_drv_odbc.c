/* Integration tests of the ODBC driver against the real PostgreSQL (psqlodbc)
 * and MariaDB (Connector/ODBC) that tests/fixtures/db.sh starts, settings from
 * XAC_TEST_PG_* and XAC_TEST_MYSQL_*. The same XA paths run through both
 * dialects: bound parameters and results, two-phase and one-phase commit,
 * rollback of active and prepared branches, recovery from a fresh connection
 * after the preparing one closed, error mapping and messages; and the
 * PostgreSQL specifics (deferred constraints failing at PREPARE, foreign gids,
 * a branch that saw an error, transaction control and second statements
 * refused inside a branch). The PostgreSQL round trips per branch are counted
 * by a proxy between psqlodbc and the server that reads the frontend
 * protocol; the statement cache is seen on the wire (PostgreSQL with
 * server-side prepare asked for) and in MariaDB's Com_stmt_prepare. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cu.h"
#include "drv.h"
#include "drv_check.h"

#define RES "odbctest"

typedef struct dcase {
    const char *label;
    drv_conf conf;
    bool have_env;
    const char *blob_type;   /* column type of a BLOB */
    const char *double_type; /* column type of a DOUBLE */
    const char *text_type;
    const char *missing_table_state;
} dcase;

static dcase g_pg, g_my;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? v : "";
}

static void load_conf(dcase *d, bool pg)
{
    drv_conf *c = &d->conf;
    const char *pre = pg ? "XAC_TEST_PG_" : "XAC_TEST_MYSQL_";
    char name[64];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", RES);
    snprintf(c->driver, sizeof c->driver, "odbc");
    snprintf(c->dialect, sizeof c->dialect, "%s", pg ? "postgresql" : "mysql");
    snprintf(c->odbc_driver, sizeof c->odbc_driver, "%s",
             pg ? "PostgreSQL Unicode" : "MariaDB Unicode");
    snprintf(name, sizeof name, "%sHOST", pre);
    snprintf(c->host, sizeof c->host, "%s", env(name));
    snprintf(name, sizeof name, "%sPORT", pre);
    c->port = atoi(env(name));
    snprintf(name, sizeof name, "%sUSER", pre);
    snprintf(c->user, sizeof c->user, "%s", env(name));
    snprintf(name, sizeof name, "%sPASSWORD", pre);
    snprintf(c->password, sizeof c->password, "%s", env(name));
    snprintf(name, sizeof name, "%sDB", pre);
    snprintf(c->database, sizeof c->database, "%s", env(name));
    c->connect_timeout_ms = 5000;
    c->io_timeout_ms = 30000;
    c->pool_size = 4;
    d->label = pg ? "postgresql" : "mysql";
    d->have_env = c->host[0] && c->port > 0 && c->user[0] && c->database[0];
    d->blob_type = pg ? "bytea" : "longblob";
    d->double_type = pg ? "double precision" : "double";
    d->text_type = pg ? "text" : "longtext";
    d->missing_table_state = pg ? "SQLSTATE 42P01" : "SQLSTATE 42S02";
}

#define NEED_ENV(d)                                                                                \
    do {                                                                                           \
        if (!(d)->have_env)                                                                        \
            CU_FAIL_FATAL("XAC_TEST_PG_* / XAC_TEST_MYSQL_* (HOST, PORT, USER, PASSWORD, DB) "     \
                          "are not set: start the servers with tests/fixtures/db.sh start DIR "    \
                          "and source DIR/env.sh");                                                \
    } while (0)

static drv_conn *open_conn(dcase *d)
{
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&d->conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] drv_open: %s\n", d->label, e.msg);
    CU_ASSERT_FATAL(rc == XA_OK && c != NULL);
    return c;
}

static void new_xid(xac_xid *x)
{
    dt_new_xid(x, "itodbc", RES);
}

static int insert_row(drv_conn *c, long long id, const char *name, xac_err *e)
{
    return dt_insert_row(c, "odbc_t", id, name, e);
}

static long long count_id(drv_conn *c, long long id)
{
    return dt_count_id(c, "odbc_t", id);
}

/* Rolls back branches an earlier, interrupted run of this program left
 * prepared: they would hold locks on the tables. */
static void drop_leftovers(drv_conn *c)
{
    drv_indoubt *list = NULL;
    size_t n = 0;
    xac_err e;
    if (drv_recover(c, &list, &n, &e) != XA_OK)
        return;
    for (size_t i = 0; i < n; i++)
        if (list[i].decoded && xac_xid_is_ours(&list[i].xid, "itodbc"))
            drv_rollback(c, &list[i].xid, &e);
    free(list);
}

static void reset_table(dcase *d)
{
    drv_conn *c = open_conn(d);
    drop_leftovers(c);
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_t");
    dt_sql_ok(c, "CREATE TABLE odbc_t (id BIGINT PRIMARY KEY, name VARCHAR(200))");
    drv_close(c);
}

/* Whether recover lists xid; *decoded gets the entry's flag. */
static bool in_doubt(drv_conn *c, const xac_xid *xid)
{
    drv_indoubt *list = NULL;
    size_t n = 0;
    xac_err e;
    int rc = drv_recover(c, &list, &n, &e);
    if (rc != XA_OK)
        fprintf(stderr, "recover: %s\n", e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (list[i].decoded && xac_xid_equal(&list[i].xid, xid))
            found = true;
    free(list);
    return found;
}

/* ------------------------------------------------- a counting PG proxy */

/* Relays one client connection at a time to the fixture's PostgreSQL and
 * counts what the client sends: a round trip each time the client speaks
 * after the server did, and the Query and Parse messages with their SQL.
 * The protocol is synchronous, so once a driver call returns, everything it
 * caused has been counted. */
typedef struct pgproxy {
    int lfd;
    int port;
    struct sockaddr_in target;
    pthread_t th;
    pthread_mutex_t mu;
    atomic_int stop;
    int rt;          /* round trips */
    int nquery;      /* 'Q' messages */
    int nparse;      /* 'P' messages */
    char sql[16384]; /* the SQL of each Q ("Q:...") and P ("P:...") message, one per line */
    /* the client stream being parsed */
    unsigned char buf[1 << 16];
    size_t blen;
    bool typed; /* past the startup packet */
    bool skip;  /* a message too long for buf is being skipped */
    size_t skip_left;
} pgproxy;

static void px_log(pgproxy *p, char kind, const char *sql, size_t n)
{
    size_t have = strlen(p->sql);
    if (have + n + 4 < sizeof p->sql) {
        p->sql[have++] = kind;
        p->sql[have++] = ':';
        memcpy(p->sql + have, sql, n);
        have += n;
        p->sql[have++] = '\n';
        p->sql[have] = '\0';
    }
}

/* Parses the client bytes buffered so far (under p->mu). */
static void px_parse(pgproxy *p)
{
    size_t off = 0;
    for (;;) {
        if (p->skip) {
            size_t k = p->blen - off < p->skip_left ? p->blen - off : p->skip_left;
            off += k;
            p->skip_left -= k;
            if (p->skip_left > 0)
                break;
            p->skip = false;
        }
        size_t hdr = p->typed ? 5 : 4;
        if (p->blen - off < hdr)
            break;
        const unsigned char *m = p->buf + off;
        uint32_t len =
            p->typed ? ((uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4])
                     : ((uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3]);
        size_t total = (p->typed ? 1 : 0) + (size_t)len;
        if (total > sizeof p->buf) {
            p->skip = true;
            p->skip_left = total - (p->blen - off);
            off = p->blen;
            p->typed = true;
            break;
        }
        if (p->blen - off < total)
            break;
        if (!p->typed) {
            uint32_t code =
                len >= 8
                    ? ((uint32_t)m[4] << 24 | (uint32_t)m[5] << 16 | (uint32_t)m[6] << 8 | m[7])
                    : 0;
            /* SSLRequest and GSSENCRequest come before the startup packet. */
            if (code != 80877103u && code != 80877104u)
                p->typed = true;
        } else if (m[0] == 'Q') {
            p->nquery++;
            px_log(p, 'Q', (const char *)m + 5, strnlen((const char *)m + 5, total - 5));
        } else if (m[0] == 'P') {
            const char *name = (const char *)m + 5;
            size_t nl = strnlen(name, total - 5);
            p->nparse++;
            if (nl + 1 < total - 5)
                px_log(p, 'P', name + nl + 1, strnlen(name + nl + 1, total - 5 - nl - 1));
        }
        off += total;
    }
    memmove(p->buf, p->buf + off, p->blen - off);
    p->blen -= off;
}

static void px_relay(pgproxy *p, int cfd)
{
    int sfd = socket(AF_INET, SOCK_STREAM, 0);
    if (sfd < 0 || connect(sfd, (const struct sockaddr *)&p->target, sizeof p->target) != 0) {
        if (sfd >= 0)
            close(sfd);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->blen = 0;
    p->typed = false;
    p->skip = false;
    pthread_mutex_unlock(&p->mu);
    bool server_spoke = true;
    unsigned char b[8192];
    while (!atomic_load(&p->stop)) {
        struct pollfd fds[2] = {{cfd, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(fds, 2, 100) < 0)
            break;
        if (fds[0].revents != 0) {
            ssize_t n = read(cfd, b, sizeof b);
            if (n <= 0)
                break;
            pthread_mutex_lock(&p->mu);
            if (server_spoke)
                p->rt++;
            server_spoke = false;
            /* A full buffer always parses to progress: a whole message goes,
             * or one longer than the buffer is skipped. */
            for (size_t done = 0; done < (size_t)n;) {
                size_t k = (size_t)n - done;
                if (k > sizeof p->buf - p->blen)
                    k = sizeof p->buf - p->blen;
                memcpy(p->buf + p->blen, b + done, k);
                p->blen += k;
                done += k;
                px_parse(p);
            }
            pthread_mutex_unlock(&p->mu);
            if (write(sfd, b, (size_t)n) != n)
                break;
        }
        if (fds[1].revents != 0) {
            ssize_t n = read(sfd, b, sizeof b);
            if (n <= 0)
                break;
            server_spoke = true;
            if (write(cfd, b, (size_t)n) != n)
                break;
        }
    }
    close(sfd);
}

static void *px_main(void *arg)
{
    pgproxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pf = {p->lfd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int cfd = accept(p->lfd, NULL, NULL);
        if (cfd < 0)
            continue;
        px_relay(p, cfd);
        close(cfd);
    }
    return NULL;
}

/* Starts a proxy to conf's server; conf then points at the proxy. */
static void px_start(pgproxy *p, drv_conf *conf)
{
    memset(p, 0, sizeof *p);
    atomic_init(&p->stop, 0);
    pthread_mutex_init(&p->mu, NULL);
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)conf->port);
    CU_ASSERT_FATAL(inet_pton(AF_INET, conf->host, &p->target.sin_addr) == 1);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(p->lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    CU_ASSERT_FATAL(bind(p->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(p->lfd, 4) == 0);
    CU_ASSERT_FATAL(getsockname(p->lfd, (struct sockaddr *)&a, &alen) == 0);
    p->port = ntohs(a.sin_port);
    CU_ASSERT_FATAL(pthread_create(&p->th, NULL, px_main, p) == 0);
    snprintf(conf->host, sizeof conf->host, "127.0.0.1");
    conf->port = p->port;
}

static void px_stop(pgproxy *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    close(p->lfd);
    pthread_mutex_destroy(&p->mu);
}

/* Starts a new counting window. */
static void px_mark(pgproxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->rt = p->nquery = p->nparse = 0;
    p->sql[0] = '\0';
    pthread_mutex_unlock(&p->mu);
}

/* The window's counts; sql (may be NULL) gets its statements. */
static void px_take(pgproxy *p, int *rt, int *nquery, int *nparse, char *sql, size_t sqlmax)
{
    pthread_mutex_lock(&p->mu);
    *rt = p->rt;
    *nquery = p->nquery;
    *nparse = p->nparse;
    if (sql != NULL && sqlmax > 0) {
        size_t n = strnlen(p->sql, sqlmax - 1);
        memcpy(sql, p->sql, n);
        sql[n] = '\0';
    }
    pthread_mutex_unlock(&p->mu);
}

/* Whether the Q/P lines in sql, in order, start with the given prefixes
 * (NULL-terminated) and there are no others. */
static bool px_lines(const char *sql, const char *const *want)
{
    const char *s = sql;
    for (size_t i = 0; want[i] != NULL; i++) {
        size_t n = strlen(want[i]);
        if (strncmp(s, want[i], n) != 0)
            return false;
        const char *nl = strchr(s, '\n');
        if (nl == NULL)
            return false;
        s = nl + 1;
    }
    return *s == '\0';
}

/* ------------------------------------------------------------------ tests */

static void t_exec_types(dcase *d)
{
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_err e;
    char sql[512];
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_types");
    snprintf(sql, sizeof sql,
             "CREATE TABLE odbc_types (id BIGINT PRIMARY KEY, i BIGINT, d %s, s %s, b %s, "
             "n TEXT)",
             d->double_type, d->text_type, d->blob_type);
    dt_sql_ok(c, sql);

    static const char blob[] = {'a', '\0', 'b', (char)0xff, '\n', '\''};
    static const char text[] = "h\xc3\xa9llo \xe2\x82\xac; 'quoted'";
    xac_value p[6];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    p[1].type = XAC_T_INT;
    p[1].i = -9007199254740993LL;
    p[2].type = XAC_T_DOUBLE;
    p[2].d = 2.5;
    p[3].type = XAC_T_TEXT;
    p[3].s = text;
    p[3].len = strlen(text);
    p[4].type = XAC_T_BLOB;
    p[4].s = blob;
    p[4].len = sizeof blob;
    p[5].type = XAC_T_NULL;
    static const char ins[] = "INSERT INTO odbc_types VALUES (?, ?, ?, ?, ?, ?)";
    xac_rows r;
    xac_rows_init(&r);
    int rc = drv_exec(c, ins, sizeof ins - 1, p, 6, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] insert: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_FALSE(r.has_rows);
    CU_ASSERT_EQUAL(r.affected, 1);
    xac_rows_free(&r);

    /* A long text, to take SQLGetData round more than once. */
    size_t biglen = 300000;
    char *big = malloc(biglen);
    CU_ASSERT_FATAL(big != NULL);
    for (size_t i = 0; i < biglen; i++)
        big[i] = (char)('a' + i % 26);
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 2;
    p[1].type = XAC_T_TEXT;
    p[1].s = big;
    p[1].len = biglen;
    static const char ins2[] = "INSERT INTO odbc_types (id, s) VALUES (?, ?)";
    rc = drv_exec(c, ins2, sizeof ins2 - 1, p, 2, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] insert big: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    xac_rows_free(&r);

    static const char sel[] = "SELECT id, i, d, s, b, n FROM odbc_types WHERE id >= ? ORDER BY id";
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    rc = drv_exec(c, sel, sizeof sel - 1, p, 1, &r, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] select: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_TRUE(r.has_rows);
    CU_ASSERT_EQUAL_FATAL(r.ncols, 6);
    CU_ASSERT_EQUAL_FATAL(r.nrows, 2);
    CU_ASSERT_STRING_EQUAL(r.cols[0], "id");
    CU_ASSERT_STRING_EQUAL(r.cols[5], "n");
    size_t len = 0;
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 0, NULL), "1");
    CU_ASSERT_STRING_EQUAL(xac_rows_cell(&r, 0, 1, NULL), "-9007199254740993");
    const char *dv = xac_rows_cell(&r, 0, 2, NULL);
    CU_ASSERT_FATAL(dv != NULL);
    CU_ASSERT_DOUBLE_EQUAL(strtod(dv, NULL), 2.5, 1e-12);
    const char *sv = xac_rows_cell(&r, 0, 3, &len);
    CU_ASSERT_FATAL(sv != NULL);
    CU_ASSERT_EQUAL(len, strlen(text));
    CU_ASSERT_STRING_EQUAL(sv, text);
    const char *bv = xac_rows_cell(&r, 0, 4, &len);
    CU_ASSERT_FATAL(bv != NULL);
    CU_ASSERT_EQUAL(len, sizeof blob);
    CU_ASSERT_TRUE(len == sizeof blob && memcmp(bv, blob, sizeof blob) == 0);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 0, 5, NULL));
    sv = xac_rows_cell(&r, 1, 3, &len);
    CU_ASSERT_FATAL(sv != NULL);
    CU_ASSERT_EQUAL(len, biglen);
    CU_ASSERT_TRUE(len == biglen && memcmp(sv, big, biglen) == 0);
    CU_ASSERT_PTR_NULL(xac_rows_cell(&r, 1, 1, NULL));
    xac_rows_free(&r);
    free(big);

    /* No rows, and an UPDATE that matches nothing. */
    static const char none[] = "SELECT id FROM odbc_types WHERE id < 0";
    rc = drv_exec(c, none, sizeof none - 1, NULL, 0, &r, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_TRUE(r.has_rows);
    CU_ASSERT_EQUAL(r.ncols, 1);
    CU_ASSERT_EQUAL(r.nrows, 0);
    xac_rows_free(&r);
    static const char upd[] = "UPDATE odbc_types SET i = 5 WHERE id < 0";
    rc = drv_exec(c, upd, sizeof upd - 1, NULL, 0, &r, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_FALSE(r.has_rows);
    CU_ASSERT_EQUAL(r.affected, 0);
    xac_rows_free(&r);
    static const char upd2[] = "UPDATE odbc_types SET i = ? WHERE id IN (1, 2)";
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 7;
    rc = drv_exec(c, upd2, sizeof upd2 - 1, p, 1, &r, &e);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(r.affected, 2);
    xac_rows_free(&r);
    dt_sql_ok(c, "DROP TABLE odbc_types");
    drv_close(c);
}

static void t_sql_error(dcase *d)
{
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_err e;
    int rc = dt_sql_rc(c, "SELECT * FROM odbc_no_such_table", &e);
    CU_ASSERT_EQUAL(rc, XAER_RMERR);
    CU_ASSERT_EQUAL(e.code, XAC_ESQL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, d->missing_table_state));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "native error"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "odbc_no_such_table"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "statement \"SELECT * FROM odbc_no_such_table\""));
    CU_ASSERT_STRING_EQUAL(e.resource, RES);
    CU_ASSERT_FALSE(c->broken);
    /* The connection is still good. */
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 41 + 1"), 42);
    CU_ASSERT_EQUAL(drv_ping(c, &e), XA_OK);
    drv_close(c);
}

static void t_bad_login(dcase *d)
{
    NEED_ENV(d);
    drv_conf conf = d->conf;
    snprintf(conf.password, sizeof conf.password, "wrong;pw}");
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, d->conf.odbc_driver));
    CU_ASSERT_PTR_NULL(strstr(e.msg, "wrong;pw"));
}

static void t_commit_2pc(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 1, "two-phase", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    int rc = drv_prepare(c, &x, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] prepare: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_TRUE(in_doubt(other, &x));
    CU_ASSERT_EQUAL(count_id(other, 1), 0);
    rc = drv_commit(c, &x, false, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] commit: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 1), 1);
    CU_ASSERT_FALSE(in_doubt(other, &x));
    /* The connection is ready for its next branch. */
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 2, "next", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 2), 1);
    drv_close(c);
    drv_close(other);
}

static void t_commit_one_phase(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 10, "one-phase", &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 10), 0);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    int rc = drv_commit(c, &x, true, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] commit one phase: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 10), 1);
    CU_ASSERT_FALSE(in_doubt(other, &x));
    drv_close(c);
    drv_close(other);
}

static void t_rollback_active(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 20, "active", &e), XA_OK);
    int rc = drv_rollback(c, &x, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] rollback active: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(c, 20), 0);
    /* Ended but not prepared. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 21, "ended", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(c, 21), 0);
    /* And the connection goes on. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 22, "after", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(c, 22), 1);
    drv_close(c);
}

static void t_rollback_prepared(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 30, "prepared", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_prepare(c, &x, &e), XA_OK);
    int rc = drv_rollback(c, &x, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] rollback prepared: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 30), 0);
    CU_ASSERT_FALSE(in_doubt(other, &x));
    /* A second rollback finds nothing. */
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XAER_NOTA);
    CU_ASSERT_FALSE(c->broken);
    drv_close(c);
    drv_close(other);
}

static void t_recover_after_close(dcase *d)
{
    NEED_ENV(d);
    reset_table(d);
    /* Two branches prepared on two sessions (MariaDB keeps a session in
     * its prepared branch until it ends), both sessions then gone. */
    drv_conn *c = open_conn(d);
    drv_conn *c2 = open_conn(d);
    xac_xid x, y;
    xac_err e;
    new_xid(&x);
    new_xid(&y);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 40, "recovered", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_start(c2, &y, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c2, 41, "recovered too", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c2, &y, &e), XA_OK);
    CU_ASSERT_EQUAL_FATAL(drv_prepare(c2, &y, &e), XA_OK);
    drv_close(c);
    drv_close(c2);

    drv_conn *r = open_conn(d);
    drv_indoubt *list = NULL;
    size_t n = 0;
    int rc = drv_recover(r, &list, &n, &e);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].decoded && xac_xid_equal(&list[i].xid, &x)) {
            seen++;
            if (strcmp(d->label, "postgresql") == 0) {
                char gid[XAC_PG_GID_MAX + 1];
                CU_ASSERT_EQUAL(xac_xid_to_pg_gid(&x, gid, &e), XAC_OK);
                CU_ASSERT_STRING_EQUAL(list[i].raw, gid);
                CU_ASSERT_TRUE(list[i].prepared_at > 1700000000);
            }
        }
        if (list[i].decoded && xac_xid_equal(&list[i].xid, &y))
            seen++;
    }
    free(list);
    CU_ASSERT_EQUAL(seen, 2);
    rc = drv_commit(r, &x, false, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] commit from a fresh connection: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(r, &y, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(r, 40), 1);
    CU_ASSERT_EQUAL(count_id(r, 41), 0);
    CU_ASSERT_FALSE(in_doubt(r, &x));
    CU_ASSERT_FALSE(in_doubt(r, &y));
    /* Committing again: the branch is unknown now. */
    CU_ASSERT_EQUAL(drv_commit(r, &x, false, &e), XAER_NOTA);
    drv_close(r);
}

static void t_nota(dcase *d)
{
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    xac_err_clear(&e);
    int rc = drv_commit(c, &x, false, &e);
    CU_ASSERT_EQUAL(rc, XAER_NOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE"));
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XAER_NOTA);
    CU_ASSERT_FALSE(c->broken);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 7"), 7);
    drv_close(c);
}

/* A password with ';', '}' and '=' must reach the server intact: the driver
 * braces such values in the connection string. */
static void t_braced_password(dcase *d)
{
    NEED_ENV(d);
    static const char pw[] = "p;w}d={x";
    bool pg = strcmp(d->label, "postgresql") == 0;
    drv_conn *admin = open_conn(d);
    char sql[256];
    if (pg) {
        dt_sql_ok(admin, "DROP ROLE IF EXISTS xac_odbc_brace");
        snprintf(sql, sizeof sql, "CREATE ROLE xac_odbc_brace LOGIN PASSWORD '%s'", pw);
    } else {
        dt_sql_ok(admin, "DROP USER IF EXISTS 'xac_odbc_brace'@'%'");
        snprintf(sql, sizeof sql, "CREATE USER 'xac_odbc_brace'@'%%' IDENTIFIED BY '%s'", pw);
    }
    dt_sql_ok(admin, sql);
    if (!pg) {
        snprintf(sql, sizeof sql, "GRANT SELECT ON %s.* TO 'xac_odbc_brace'@'%%'",
                 d->conf.database);
        dt_sql_ok(admin, sql);
    }
    drv_conf conf = d->conf;
    snprintf(conf.user, sizeof conf.user, "xac_odbc_brace");
    snprintf(conf.password, sizeof conf.password, "%s", pw);
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] login with a braced password: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL(rc, XA_OK);
    if (c != NULL) {
        CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT 5"), 5);
        drv_close(c);
    }
    dt_sql_ok(admin, pg ? "DROP ROLE xac_odbc_brace" : "DROP USER 'xac_odbc_brace'@'%'");
    drv_close(admin);
}

/* The Unix socket instead of TCP (PostgreSQL: its directory). */
static void t_socket(dcase *d)
{
    NEED_ENV(d);
    bool pg = strcmp(d->label, "postgresql") == 0;
    const char *sock = env(pg ? "XAC_TEST_PG_SOCKETDIR" : "XAC_TEST_MYSQL_SOCKET");
    if (sock[0] == '\0')
        return; /* servers reached over TCP only (XAC_TEST_EXTERNAL) */
    drv_conf conf = d->conf;
    snprintf(conf.socket, sizeof conf.socket, "%s", sock);
    conf.port = pg ? d->conf.port : 0; /* PostgreSQL names its socket by the port */
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] socket: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    /* Connected over the socket, not TCP: the server sees no client address. */
    long long tcp =
        dt_sql_int(c, pg ? "SELECT CASE WHEN inet_client_addr() IS NULL THEN 0 ELSE 1 END"
                         : "SELECT COUNT(*) FROM information_schema.processlist WHERE "
                           "id = CONNECTION_ID() AND host LIKE '127.0.0.1%'");
    CU_ASSERT_EQUAL(tcp, 0);
    drv_close(c);
}

/* conf->dsn pairs reach the driver (here without a final ';'). */
static void t_dsn_extras(dcase *d)
{
    NEED_ENV(d);
    bool pg = strcmp(d->label, "postgresql") == 0;
    drv_conf conf = d->conf;
    snprintf(conf.dsn, sizeof conf.dsn, "%s",
             pg ? "ConnSettings={SET application_name='xacodbc'}" : "INITSTMT={SET @xac_t=77}");
    drv_conn *c = NULL;
    xac_err e;
    xac_err_clear(&e);
    int rc = drv_open(&conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "[%s] dsn extras: %s\n", d->label, e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, pg ? "SELECT CASE WHEN current_setting('application_name') = "
                                       "'xacodbc' THEN 77 ELSE 0 END"
                                     : "SELECT @xac_t"),
                    77);
    drv_close(c);
}

/* A connection the server drops gives XAER_RMFAIL and is marked broken. */
static void t_conn_lost(dcase *d)
{
    NEED_ENV(d);
    bool pg = strcmp(d->label, "postgresql") == 0;
    drv_conn *victim = open_conn(d);
    drv_conn *killer = open_conn(d);
    long long id = dt_sql_int(victim, pg ? "SELECT pg_backend_pid()" : "SELECT CONNECTION_ID()");
    CU_ASSERT_FATAL(id > 0);
    char sql[128];
    snprintf(sql, sizeof sql, pg ? "SELECT pg_terminate_backend(%lld)" : "KILL %lld", id);
    dt_sql_ok(killer, sql);
    usleep(200 * 1000); /* let the server close the socket; the check below does not depend on it */
    xac_err e;
    int rc = XA_OK;
    /* The first statement may still be answered from a half-closed socket;
     * one of a few must notice. */
    for (int i = 0; i < 3 && rc == XA_OK; i++)
        rc = dt_sql_rc(victim, "SELECT 1", &e);
    if (rc != XAER_RMFAIL)
        fprintf(stderr, "[%s] after the kill: rc %d: %s\n", d->label, rc, e.msg);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_EQUAL(e.code, XAC_ERMFAIL);
    CU_ASSERT_TRUE(victim->broken);
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL(drv_start(victim, &x, &e), XAER_RMFAIL);
    drv_close(victim);
    drv_close(killer);
}

/* ------------------------------------------------------- PostgreSQL only */

static void t_pg_deferred_fk(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_child");
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_parent");
    dt_sql_ok(c, "CREATE TABLE odbc_parent (id BIGINT PRIMARY KEY)");
    dt_sql_ok(c, "CREATE TABLE odbc_child (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES "
                 "odbc_parent(id) DEFERRABLE INITIALLY DEFERRED)");
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_child VALUES (1, 99)", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    int rc = drv_prepare(c, &x, &e);
    CU_ASSERT_EQUAL(rc, XA_RBINTEGRITY);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23503"));
    CU_ASSERT_FALSE(c->broken);
    CU_ASSERT_FALSE(in_doubt(c, &x));
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 0);
    /* The same failure in one phase. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_child VALUES (2, 99)", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_RBINTEGRITY);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 0);
    /* And a good branch afterwards. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_parent VALUES (99)", &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_child VALUES (3, 99)", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 1);
    dt_sql_ok(c, "DROP TABLE odbc_child");
    dt_sql_ok(c, "DROP TABLE odbc_parent");
    drv_close(c);
}

/* drv_exec_one_phase (one_phase) or drv_exec_prepare of sql with no
 * parameters; *at is how far it got. */
static int sql_fused(drv_conn *c, const xac_xid *x, const char *sql, bool one_phase, int *at,
                     xac_err *e)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(e);
    int rc;
    if (one_phase) {
        drv_onephase_at oat;
        rc = drv_exec_one_phase(c, x, sql, strlen(sql), NULL, 0, &r, &oat, e);
        *at = (int)oat;
    } else {
        drv_prepare_at pat;
        rc = drv_exec_prepare(c, x, sql, strlen(sql), NULL, 0, &r, &pat, e);
        *at = (int)pat;
    }
    xac_rows_free(&r);
    return rc;
}

/* The statement with its PREPARE TRANSACTION, or (one_phase) a fresh
 * branch's only statement with its COMMIT, in one query: a failing
 * statement, or a refused PREPARE TRANSACTION or COMMIT (psqlodbc reports
 * either at execute, as the statement's failure), is an error at EXEC with
 * nothing prepared or committed, and the branch rolls back; a trailing ';' or
 * line comment changes nothing; a statement the dialect refuses, or (one
 * phase) one after another statement of the branch, is not sent this way;
 * the connection goes on. */
static void pg_fused(bool one_phase)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    drv_conn *c = open_conn(d), *o = open_conn(d);
    const int at_exec = one_phase ? (int)DRV_ONEPHASE_EXEC : (int)DRV_PREPARE_EXEC;
    const int at_done = one_phase ? (int)DRV_ONEPHASE_COMMIT : (int)DRV_PREPARE_VOTE;
    const int not_sent = one_phase ? (int)DRV_ONEPHASE_NOT_SENT : (int)DRV_PREPARE_NOT_SENT;
    xac_xid x;
    xac_err e;
    int at;
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_child");
    dt_sql_ok(c, "DROP TABLE IF EXISTS odbc_parent");
    dt_sql_ok(c, "CREATE TABLE odbc_parent (id BIGINT PRIMARY KEY)");
    dt_sql_ok(c, "CREATE TABLE odbc_child (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES "
                 "odbc_parent(id) DEFERRABLE INITIALLY DEFERRED)");
    dt_sql_ok(c, "INSERT INTO odbc_parent VALUES (1)");
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(sql_fused(c, &x, "INSERT INTO odbc_parent VALUES (1)", one_phase, &at, &e),
                    XAER_RMERR);
    CU_ASSERT_EQUAL(at, at_exec);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23505"));
    CU_ASSERT_FALSE(in_doubt(o, &x));
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(sql_fused(c, &x, "INSERT INTO odbc_child VALUES (1, 99)", one_phase, &at, &e),
                    XAER_RMERR);
    CU_ASSERT_EQUAL(at, at_exec);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, one_phase ? "with COMMIT" : "with PREPARE TRANSACTION"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23503"));
    CU_ASSERT_FALSE(c->broken);
    CU_ASSERT_FALSE(in_doubt(o, &x));
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 0);
    static const char *const good[] = {"INSERT INTO odbc_child VALUES (2, 1);",
                                       "INSERT INTO odbc_child VALUES (3, 1) -- note",
                                       "INSERT INTO odbc_child VALUES (4, 1); -- note"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        new_xid(&x);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(sql_fused(c, &x, good[i], one_phase, &at, &e), XA_OK);
        CU_ASSERT_EQUAL(at, at_done);
        CU_ASSERT_EQUAL(in_doubt(o, &x), !one_phase);
        if (!one_phase)
            CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    }
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 3);
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(sql_fused(c, &x, "DELETE FROM odbc_child; COMMIT", one_phase, &at, &e), XA_OK);
    CU_ASSERT_EQUAL(at, not_sent);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    if (one_phase) {
        new_xid(&x);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(dt_sql_rc(c, "INSERT INTO odbc_child VALUES (5, 1)", &e), XA_OK);
        CU_ASSERT_EQUAL(sql_fused(c, &x, "DELETE FROM odbc_child", true, &at, &e), XA_OK);
        CU_ASSERT_EQUAL(at, not_sent);
        CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    }
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_child"), 3);
    dt_sql_ok(c, "DROP TABLE odbc_child");
    dt_sql_ok(c, "DROP TABLE odbc_parent");
    drv_close(c);
    drv_close(o);
}

static void t_pg_exec_prepare(void)
{
    pg_fused(false);
}

static void t_pg_exec_one_phase(void)
{
    pg_fused(true);
}

static void t_pg_error_dooms_branch(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 50, "before the error", &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 50, "duplicate", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23505"));
    /* PostgreSQL refuses the rest of the transaction. */
    CU_ASSERT_EQUAL(insert_row(c, 51, "after the error", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 25P02"));
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_RBROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "23505"));
    CU_ASSERT_FALSE(in_doubt(c, &x));
    CU_ASSERT_EQUAL(count_id(c, 50), 0);
    /* One phase after an error also refuses to pretend. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 52, "x", &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_rc(c, "SELECT 1/0", &e), XAER_RMERR);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_RBROLLBACK);
    CU_ASSERT_EQUAL(count_id(c, 52), 0);
    /* A branch with no statement is read-only. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_RDONLY);
    /* Two branches at once on one connection are refused. */
    xac_xid y;
    new_xid(&x);
    new_xid(&y);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_start(c, &y, &e), XAER_PROTO);
    CU_ASSERT_EQUAL(drv_prepare(c, &y, &e), XAER_NOTA);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    drv_close(c);
}

/* io_timeout_ms bounds a statement: a sleep far past it is cut short with
 * an error, and the branch it ran in cannot be prepared. */
static void t_pg_statement_timeout(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    drv_conf conf = d->conf;
    conf.io_timeout_ms = 1000;
    drv_conn *c = NULL;
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(drv_open(&conf, &c, &e), XA_OK);
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    int rc = dt_sql_rc(c, "SELECT pg_sleep(30)", &e);
    CU_ASSERT_NOT_EQUAL(rc, XA_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE"));
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    rc = drv_prepare(c, &x, &e);
    CU_ASSERT_TRUE(rc == XA_RBROLLBACK || rc == XAER_RMFAIL);
    drv_close(c);
}

static void t_pg_foreign_gid(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    char gid[64], sql[256];
    snprintf(gid, sizeof gid, "foo-%ld", (long)getpid());
    /* Another program's prepared transaction, made by hand outside any
     * branch (inside one, PREPARE TRANSACTION is refused). */
    drv_conn *f = open_conn(d);
    xac_err e;
    snprintf(sql, sizeof sql,
             "BEGIN; INSERT INTO odbc_t (id, name) VALUES (60, 'foreign'); "
             "PREPARE TRANSACTION '%s'",
             gid);
    CU_ASSERT_EQUAL(dt_sql_rc(f, sql, &e), XA_OK);
    drv_close(f);

    drv_conn *c = open_conn(d);
    drv_indoubt *list = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(drv_recover(c, &list, &n, &e), XA_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].raw, gid) == 0) {
            found++;
            CU_ASSERT_FALSE(list[i].decoded);
        }
    free(list);
    CU_ASSERT_EQUAL(found, 1);
    snprintf(sql, sizeof sql, "ROLLBACK PREPARED '%s'", gid);
    dt_sql_ok(c, sql);
    CU_ASSERT_EQUAL(count_id(c, 60), 0);
    drv_close(c);
}

/* Runs sql with the given parameters inside the branch; the XA code. */
static int exec_params(drv_conn *c, const char *sql, const xac_value *p, size_t np, xac_err *e)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(e);
    int rc = drv_exec(c, sql, strlen(sql), p, np, &r, e);
    xac_rows_free(&r);
    return rc;
}

/* sql is refused inside a branch with msg in the message. */
static void expect_refused(drv_conn *c, const char *sql, const char *msg)
{
    xac_err e;
    int rc = dt_sql_rc(c, sql, &e);
    if (rc != XAER_RMERR || strstr(e.msg, msg) == NULL || strstr(e.msg, RES) == NULL)
        fprintf(stderr, "expected refusal of [%s] with \"%s\", got %d: %s\n", sql, msg, rc, e.msg);
    CU_ASSERT_EQUAL(rc, XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, msg));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, RES));
}

/* Transaction control and second statements are refused inside a branch
 * before anything reaches the server, so the branch's work stays
 * uncommitted and rolls back; ';' inside quotes and comments is fine. */
static void t_pg_tx_control(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    drv_conn *other = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 70, "before COMMIT", &e), XA_OK);
    static const char *const tx[][2] = {
        {"COMMIT", "transaction control (COMMIT)"},
        {"  /* c */ -- x\n commit work", "transaction control (COMMIT)"},
        {"END", "transaction control (END)"},
        {"ABORT", "transaction control (ABORT)"},
        {"ROLLBACK", "transaction control (ROLLBACK)"},
        {"ROLLBACK PREPARED 'x'", "transaction control (ROLLBACK)"},
        {"COMMIT PREPARED 'x'", "transaction control (COMMIT)"},
        {"BEGIN", "transaction control (BEGIN)"},
        {"START TRANSACTION", "transaction control (START)"},
        {"PREPARE TRANSACTION 'x'", "transaction control (PREPARE TRANSACTION)"},
        {"UPDATE odbc_t SET name = 'u' WHERE id = 70; COMMIT", "after ';' at byte 43"},
        {"SELECT 1;;", "one statement per EXEC"},
        {"SELECT '\\'; COMMIT; --'", "one statement per EXEC"},
        {"SELECT $a$ x $a$; COMMIT", "one statement per EXEC"},
        {"SELECT a$$; COMMIT; $$", "one statement per EXEC"},
        {"SELECT 1 /* /* */ ; COMMIT; /* */ */", "block comments did not nest"},
        {"SELECT '\\''; COMMIT; SELECT '''", "if a backslash escaped a quote"},
        {"SELECT 'C:\\' /* /* */ ; COMMIT; /* */ */", "one statement per EXEC"},
        {"SELECT 'C:\\', ';'", "if a backslash escaped a quote"},
        {"SELECT 'open", "is not closed"},
        {"SELECT $$ open", "is not closed"},
        {"SELECT 1 /* /* */", "is not closed"},
    };
    for (size_t i = 0; i < sizeof tx / sizeof tx[0]; i++)
        expect_refused(c, tx[i][0], tx[i][1]);
    /* Nothing was committed: another connection does not see the row. */
    CU_ASSERT_EQUAL(count_id(other, 70), 0);

    /* ';' inside quotes and comments, and a trailing ';', are allowed. */
    static const char *const ok[] = {
        "SELECT 'a;b', 'it''s; COMMIT'",
        "SELECT 'C:\\'",
        "SELECT E'C:\\\\', ';'",
        "SELECT E'x\\'; COMMIT; y'",
        "SELECT $$; COMMIT;$$, $t$ $$; $t$",
        "SELECT 1 -- ; COMMIT\n",
        "SELECT 1 /* ; COMMIT */",
        "SELECT \"?column?\" FROM (SELECT 1) AS \"a;b\"",
        "SELECT 1; -- done\n /* end */ ",
        "SAVEPOINT s",
        "UPDATE odbc_t SET name = 'after savepoint' WHERE id = 70",
        "ROLLBACK TO SAVEPOINT s",
        "RELEASE SAVEPOINT s",
        "SAVEPOINT s2",
        "ROLLBACK TRANSACTION TO s2",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        dt_sql_ok(c, ok[i]);
    CU_ASSERT_EQUAL(dt_sql_int(c, "SELECT COUNT(*) FROM odbc_t WHERE id = 70 AND name = 'before "
                                  "COMMIT'"),
                    1);

    /* TEXT with a NUL byte is refused; the same bytes as BLOB are fine. */
    xac_value p[2];
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_TEXT;
    p[0].s = "a\0b";
    p[0].len = 3;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?", p, 1, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "send it as BLOB"));
    p[0].type = XAC_T_BLOB;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT length(?::bytea)", p, 1, &e), XA_OK);

    /* Parameter counts must match the placeholders. */
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    p[1].type = XAC_T_INT;
    p[1].i = 2;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?::bigint", p, 2, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1 '?' placeholder(s) but 2 parameter(s)"));
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?::bigint + ?::bigint", p, 1, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2 '?' placeholder(s) but 1 parameter(s)"));

    /* A COMMIT inside a DO block passes the check; the server refuses it
     * inside a transaction block. */
    CU_ASSERT_EQUAL(dt_sql_rc(c, "DO $$BEGIN COMMIT; END$$", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 2D000"));

    /* The refusals doomed the branch; rolling it back removes the row. */
    CU_ASSERT_EQUAL(count_id(other, 70), 0);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_RBROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "transaction control (COMMIT)"));
    CU_ASSERT_FALSE(in_doubt(c, &x));
    CU_ASSERT_EQUAL(count_id(c, 70), 0);
    CU_ASSERT_EQUAL(count_id(other, 70), 0);

    /* An explicit rollback after a refused COMMIT also leaves nothing. */
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 71, "x", &e), XA_OK);
    expect_refused(c, "COMMIT", "transaction control (COMMIT)");
    CU_ASSERT_EQUAL(count_id(other, 71), 0);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(count_id(other, 71), 0);

    /* Outside a branch a statement is its own transaction: not checked. */
    dt_sql_ok(c, "SELECT 1; SELECT 2");
    drv_close(other);
    drv_close(c);
}

/* The MariaDB dialect refuses a parameter count mismatch too. */
static void t_my_param_count(void)
{
    dcase *d = &g_my;
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_value p[2];
    xac_err e;
    memset(p, 0, sizeof p);
    p[0].type = XAC_T_INT;
    p[0].i = 1;
    p[1].type = XAC_T_INT;
    p[1].i = 2;
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ?", p, 2, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1 '?' placeholder(s) but 2 parameter(s)"));
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ? + ?", p, 1, &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2 '?' placeholder(s) but 1 parameter(s)"));
    CU_ASSERT_EQUAL(exec_params(c, "SELECT ? + ?", p, 2, &e), XA_OK);
    drv_close(c);
}

/* Connector/ODBC must never be handed a second statement inside a branch:
 * it was seen to leave its connection locked after one failed. */
static void t_my_one_statement(void)
{
    dcase *d = &g_my;
    NEED_ENV(d);
    drv_conn *c = open_conn(d);
    xac_xid x;
    xac_err e;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    static const char *const refused[] = {"SELECT 1; SELECT 2",     "SELECT 'a\\'; SELECT 2",
                                          "SELECT 'a\\'; SELECT '", "SELECT 'open",
                                          "SELECT 1; -- more",      NULL};
    for (int i = 0; refused[i] != NULL; i++) {
        xac_rows r;
        xac_rows_init(&r);
        CU_ASSERT_EQUAL(drv_exec(c, refused[i], strlen(refused[i]), NULL, 0, &r, &e), XAER_RMERR);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "one statement per EXEC"));
        xac_rows_free(&r);
    }
    static const char *const allowed[] = {"SELECT 'a;b'", "SELECT 1;",
                                          "SELECT `x;y` FROM (SELECT 1 AS `x;y`) t ;  ", NULL};
    for (int i = 0; allowed[i] != NULL; i++) {
        xac_rows r;
        xac_rows_init(&r);
        CU_ASSERT_EQUAL(drv_exec(c, allowed[i], strlen(allowed[i]), NULL, 0, &r, &e), XA_OK);
        xac_rows_free(&r);
    }
    /* The connection still works after the refusals. */
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
    drv_close(c);
}

/* -------------------------------------------- round trips and the cache */

/* DRV_ODBC_STMT_CACHE in drivers/odbc_dialect.h. */
#define STMT_CACHE 16

static const char UPD[] = "UPDATE odbc_t SET name = ? WHERE id = ?";

/* UPD's parameters. */
static void upd_params(xac_value p[2], const char *name, long long id)
{
    memset(p, 0, 2 * sizeof *p);
    p[0].type = XAC_T_TEXT;
    p[0].s = name;
    p[0].len = strlen(name);
    p[1].type = XAC_T_INT;
    p[1].i = id;
}

/* drv_exec_prepare of UPD. */
static int exec_upd_prepare(drv_conn *c, const xac_xid *x, const char *name, long long id,
                            drv_prepare_at *at, xac_rows *r, xac_err *e)
{
    xac_value p[2];
    upd_params(p, name, id);
    xac_err_clear(e);
    return drv_exec_prepare(c, x, UPD, sizeof UPD - 1, p, 2, r, at, e);
}

static int exec_upd(drv_conn *c, const char *name, long long id, xac_err *e)
{
    xac_value p[2];
    upd_params(p, name, id);
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(e);
    int rc = drv_exec(c, UPD, sizeof UPD - 1, p, 2, &r, e);
    if (rc != XA_OK)
        fprintf(stderr, "update: %s\n", e->msg);
    xac_rows_free(&r);
    return rc;
}

/* The proxied connection to the fixture's PostgreSQL; extra: dsn pairs. */
static drv_conn *open_proxied(pgproxy *px, drv_conf *conf, const char *extra)
{
    *conf = g_pg.conf;
    px_start(px, conf);
    snprintf(conf->dsn, sizeof conf->dsn, "SSLmode=disable;%s", extra);
    drv_conn *c = NULL;
    xac_err e;
    int rc = drv_open(conf, &c, &e);
    if (rc != XA_OK)
        fprintf(stderr, "open through the proxy: %s\n", e.msg);
    CU_ASSERT_FATAL(rc == XA_OK);
    /* psqlodbc sets the statement timeout before the first statement of a
     * connection: a cost per connection, not per branch. */
    px_mark(px);
    dt_sql_ok(c, "SELECT 1");
    return c;
}

/* Asserts the window's round trips (unless rt < 0), Parse messages and
 * statements (unless lines is NULL), printing them on a mismatch. */
static void px_expect(pgproxy *px, const char *what, int rt, int nparse, const char *const *lines)
{
    int got_rt = 0, nq = 0, np = 0;
    char sql[4096];
    px_take(px, &got_rt, &nq, &np, sql, sizeof sql);
    if (rt < 0)
        rt = got_rt; /* not counted here */
    bool ok = got_rt == rt && np == nparse && (lines == NULL || px_lines(sql, lines));
    if (!ok)
        fprintf(stderr, "%s: %d round trip(s) (want %d), %d Parse (want %d), statements:\n%s", what,
                got_rt, rt, np, nparse, sql);
    CU_ASSERT_EQUAL(got_rt, rt);
    CU_ASSERT_EQUAL(np, nparse);
    if (lines != NULL)
        CU_ASSERT_TRUE(px_lines(sql, lines));
}

/* What psqlodbc sends for a branch, counted on the wire: one round trip per
 * statement with the BEGIN in the first one's message, then COMMIT (one
 * phase), PREPARE TRANSACTION and COMMIT PREPARED (two phases) or ROLLBACK.
 * No SAVEPOINT, DEALLOCATE, Parse or Describe; the same the first time a
 * text runs on the connection and after. */
static void t_pg_round_trips(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *plain = open_conn(d);
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(insert_row(plain, 60, "seed", &e), XA_OK);
    pgproxy px;
    drv_conf conf;
    drv_conn *c = open_proxied(&px, &conf, "");
    static const char *const setup[] = {"Q:SET statement_timeout = 30000", "Q:SELECT 1", NULL};
    px_expect(&px, "the first statement of the connection", 2, 0, setup);
    static const char *const one[] = {"Q:BEGIN;UPDATE odbc_t SET name = 'a' WHERE id = '60'",
                                      "Q:COMMIT", NULL};
    static const char *const two[] = {"Q:BEGIN;UPDATE odbc_t SET name = 'b' WHERE id = '60'",
                                      "Q:PREPARE TRANSACTION '", "Q:COMMIT PREPARED '", NULL};
    static const char *const rb[] = {"Q:BEGIN;UPDATE odbc_t SET name = 'c' WHERE id = '60'",
                                     "Q:ROLLBACK", NULL};
    static const char *const sel[] = {"Q:BEGIN;UPDATE odbc_t SET name = 'd' WHERE id = '60'",
                                      "Q:SELECT name FROM odbc_t WHERE id = '60'", "Q:COMMIT",
                                      NULL};
    for (int round = 0; round < 2; round++) {
        xac_xid x;
        new_xid(&x);
        px_mark(&px);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(exec_upd(c, "a", 60, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
        px_expect(&px, "one phase", 2, 0, one);

        new_xid(&x);
        px_mark(&px);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(exec_upd(c, "b", 60, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
        px_expect(&px, "two phases", 3, 0, two);
        CU_ASSERT_EQUAL(dt_sql_int(plain, "SELECT COUNT(*) FROM odbc_t WHERE name = 'b'"), 1);

        new_xid(&x);
        px_mark(&px);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(exec_upd(c, "c", 60, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_rollback(c, &x, &e), XA_OK);
        px_expect(&px, "rollback", 2, 0, rb);

        new_xid(&x);
        px_mark(&px);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(exec_upd(c, "d", 60, &e), XA_OK);
        xac_value p;
        memset(&p, 0, sizeof p);
        p.type = XAC_T_INT;
        p.i = 60;
        xac_rows r;
        xac_rows_init(&r);
        static const char q[] = "SELECT name FROM odbc_t WHERE id = ?";
        CU_ASSERT_EQUAL(drv_exec(c, q, sizeof q - 1, &p, 1, &r, &e), XA_OK);
        CU_ASSERT_TRUE(r.has_rows && r.nrows == 1);
        const char *v = r.nrows == 1 ? xac_rows_cell(&r, 0, 0, NULL) : NULL;
        CU_ASSERT_TRUE(v != NULL && strcmp(v, "d") == 0);
        xac_rows_free(&r);
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
        px_expect(&px, "two statements", 3, 0, sel);
        CU_ASSERT_EQUAL(dt_sql_int(plain, "SELECT COUNT(*) FROM odbc_t WHERE name = 'd'"), 1);

        /* The last statement with its PREPARE TRANSACTION (drv_exec_prepare):
         * one message, then COMMIT PREPARED. */
        static const char *const early[] = {"Q:BEGIN;UPDATE odbc_t SET name = 'e' WHERE id = '60'",
                                            "; PREPARE TRANSACTION '", "Q:COMMIT PREPARED '", NULL};
        new_xid(&x);
        px_mark(&px);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        drv_prepare_at at;
        CU_ASSERT_EQUAL(exec_upd_prepare(c, &x, "e", 60, &at, &r, &e), XA_OK);
        CU_ASSERT_EQUAL(at, DRV_PREPARE_VOTE);
        CU_ASSERT_EQUAL(r.affected, 1);
        CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
        px_expect(&px, "the statement with its prepare", 2, 0, early);
        CU_ASSERT_EQUAL(dt_sql_int(plain, "SELECT COUNT(*) FROM odbc_t WHERE name = 'e'"), 1);

        /* A fresh branch's only statement with its COMMIT
         * (drv_exec_one_phase): one message, nothing after it. */
        static const char *const fused[] = {"Q:BEGIN;UPDATE odbc_t SET name = 'f' WHERE id = '60'",
                                            "; COMMIT", NULL};
        new_xid(&x);
        px_mark(&px);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        drv_onephase_at oat;
        xac_value up[2];
        upd_params(up, "f", 60);
        CU_ASSERT_EQUAL(drv_exec_one_phase(c, &x, UPD, sizeof UPD - 1, up, 2, &r, &oat, &e), XA_OK);
        CU_ASSERT_EQUAL(oat, DRV_ONEPHASE_COMMIT);
        CU_ASSERT_EQUAL(r.affected, 1);
        px_expect(&px, "the statement with its commit", 1, 0, fused);
        CU_ASSERT_EQUAL(dt_sql_int(plain, "SELECT COUNT(*) FROM odbc_t WHERE name = 'f'"), 1);
        xac_rows_free(&r);
    }
    drv_close(c);
    px_stop(&px);
    drv_close(plain);
}

typedef struct killed_arg {
    drv_conn *c;
    xac_xid x;
    bool one_phase;
    int rc, at;
    xac_err err;
} killed_arg;

/* Runs UPD on row 70, fused with the commit or the prepare, in a thread of
 * its own: it waits for the row's lock until its link is cut. */
static void *killed_main(void *p)
{
    killed_arg *a = p;
    xac_value up[2];
    upd_params(up, "killed", 70);
    xac_rows r;
    xac_rows_init(&r);
    xac_err_clear(&a->err);
    if (a->one_phase) {
        drv_onephase_at at;
        a->rc = drv_exec_one_phase(a->c, &a->x, UPD, sizeof UPD - 1, up, 2, &r, &at, &a->err);
        a->at = (int)at;
    } else {
        drv_prepare_at at;
        a->rc = drv_exec_prepare(a->c, &a->x, UPD, sizeof UPD - 1, up, 2, &r, &at, &a->err);
        a->at = (int)at;
    }
    xac_rows_free(&r);
    return NULL;
}

/* The link cut while the fused query waits for a row lock (the server got
 * it): the outcome is not known to the driver, which says so (XAER_RMFAIL
 * at COMMIT, or a vote that may be a prepare), and nothing is claimed. */
static void t_pg_fused_link_killed(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *h = open_conn(d), *k = open_conn(d);
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(insert_row(k, 70, "seed", &e), XA_OK);
    for (int one_phase = 0; one_phase < 2; one_phase++) {
        xac_xid hx;
        new_xid(&hx);
        CU_ASSERT_EQUAL_FATAL(drv_start(h, &hx, &e), XA_OK);
        CU_ASSERT_EQUAL_FATAL(exec_upd(h, "holder", 70, &e), XA_OK); /* holds the row */
        killed_arg a = {.c = open_conn(d), .one_phase = one_phase != 0};
        long long victim = dt_sql_int(a.c, "SELECT pg_backend_pid()");
        new_xid(&a.x);
        CU_ASSERT_EQUAL_FATAL(drv_start(a.c, &a.x, &e), XA_OK);
        pthread_t th;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, killed_main, &a), 0);
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = %lld AND wait_event_type = "
                 "'Lock'",
                 victim);
        CU_ASSERT_TRUE_FATAL(dt_wait_int(k, sql, 1));
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)::int", victim);
        CU_ASSERT_EQUAL(dt_sql_int(k, sql), 1);
        pthread_join(th, NULL);
        fprintf(stderr, "\n    %s, link cut: %s at %d: %s\n",
                one_phase ? "with its commit" : "with its prepare", drv_xa_name(a.rc), a.at,
                a.err.msg);
        CU_ASSERT_EQUAL(a.rc, XAER_RMFAIL);
        CU_ASSERT_EQUAL(a.at, one_phase ? (int)DRV_ONEPHASE_COMMIT : (int)DRV_PREPARE_VOTE);
        CU_ASSERT_TRUE(a.c->broken);
        drv_close(a.c);
        CU_ASSERT_EQUAL(drv_end(h, &hx, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_rollback(h, &hx, &e), XA_OK);
        CU_ASSERT_FALSE(in_doubt(k, &a.x));
    }
    CU_ASSERT_EQUAL(dt_sql_int(k, "SELECT COUNT(*) FROM odbc_t WHERE id = 70 AND name = 'seed'"),
                    1);
    drv_close(h);
    drv_close(k);
}

/* With server-side prepare asked for, each Parse on the wire is a statement
 * prepared by the driver: a text is prepared once per connection, the least
 * recently used of more than STMT_CACHE texts is prepared again, and so is a
 * statement whose last exec failed. */
static void t_pg_stmt_cache(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *plain = open_conn(d);
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(insert_row(plain, 60, "seed", &e), XA_OK);
    pgproxy px;
    drv_conf conf;
    drv_conn *c = open_proxied(&px, &conf, "UseServerSidePrepare=1;");
    px_mark(&px);
    for (int i = 0; i < 3; i++) {
        xac_xid x;
        new_xid(&x);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(exec_upd(c, i == 2 ? "last" : "x", 60, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        if (i % 2 == 1)
            CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
        int rc = drv_commit(c, &x, i % 2 == 0, &e);
        if (rc != XA_OK)
            fprintf(stderr, "commit: %s\n", e.msg);
        CU_ASSERT_EQUAL(rc, XA_OK);
    }
    px_expect(&px, "three branches, one text", -1, 1, NULL);
    CU_ASSERT_EQUAL(dt_sql_int(plain, "SELECT COUNT(*) FROM odbc_t WHERE name = 'last'"), 1);

    /* STMT_CACHE other texts push UPD out; the latest stays. */
    char sql[64];
    for (int k = 1; k <= STMT_CACHE; k++) {
        xac_value p;
        memset(&p, 0, sizeof p);
        p.type = XAC_T_INT;
        p.i = 1000;
        xac_rows r;
        xac_rows_init(&r);
        int n = snprintf(sql, sizeof sql, "SELECT ? + %d", k);
        CU_ASSERT_EQUAL(drv_exec(c, sql, (size_t)n, &p, 1, &r, &e), XA_OK);
        const char *v = r.nrows == 1 ? xac_rows_cell(&r, 0, 0, NULL) : NULL;
        CU_ASSERT_TRUE(v != NULL && atoi(v) == 1000 + k);
        xac_rows_free(&r);
    }
    px_mark(&px);
    CU_ASSERT_EQUAL(exec_upd(c, "y", 60, &e), XA_OK);
    px_expect(&px, "the least recently used text again", -1, 1, NULL);
    px_mark(&px);
    xac_value p;
    memset(&p, 0, sizeof p);
    p.type = XAC_T_INT;
    p.i = 1;
    CU_ASSERT_EQUAL(drv_exec(c, sql, strlen(sql), &p, 1, NULL, &e), XA_OK);
    px_expect(&px, "the most recently used text again", -1, 0, NULL);

    /* A failed exec does not leave its statement in the cache. */
    CU_ASSERT_EQUAL(insert_row(c, 61, "first", &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 61, "duplicate", &e), XAER_RMERR);
    px_mark(&px);
    CU_ASSERT_EQUAL(insert_row(c, 62, "after", &e), XA_OK);
    int rt = 0, nq = 0, np = 0;
    px_take(&px, &rt, &nq, &np, NULL, 0);
    CU_ASSERT_EQUAL(np, 1);
    drv_close(c);
    px_stop(&px);
    drv_close(plain);
}

/* The cache belongs to a server session: when the server ends it (as a
 * restart does), the pool's next connection prepares its statements anew
 * and they work. */
static void t_pg_cache_reconnect(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *plain = open_conn(d);
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(insert_row(plain, 60, "seed", &e), XA_OK);
    pgproxy px;
    drv_conf conf = g_pg.conf;
    px_start(&px, &conf);
    snprintf(conf.dsn, sizeof conf.dsn, "SSLmode=disable;UseServerSidePrepare=1;");
    drv_pool *pool = NULL;
    CU_ASSERT_FATAL(drv_pool_create(&conf, &pool, &e) == XAC_OK);
    drv_conn *c = NULL;
    CU_ASSERT_FATAL(drv_pool_get(pool, 5000, &c, &e) == XA_OK);
    CU_ASSERT_EQUAL(exec_upd(c, "before", 60, &e), XA_OK);
    long long pid = dt_sql_int(c, "SELECT pg_backend_pid()");
    CU_ASSERT_FATAL(pid > 0);
    drv_pool_put(pool, c);

    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", pid);
    dt_sql_ok(plain, sql);
    usleep(200 * 1000);
    CU_ASSERT_FATAL(drv_pool_get(pool, 5000, &c, &e) == XA_OK);
    int rc = XA_OK;
    for (int i = 0; i < 3 && rc == XA_OK; i++)
        rc = exec_upd(c, "lost", 60, &e);
    CU_ASSERT_EQUAL(rc, XAER_RMFAIL);
    CU_ASSERT_TRUE(c->broken);
    drv_pool_put(pool, c); /* closes it */

    px_mark(&px);
    CU_ASSERT_FATAL(drv_pool_get(pool, 5000, &c, &e) == XA_OK);
    CU_ASSERT_FALSE(c->broken);
    xac_xid x;
    new_xid(&x);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(exec_upd(c, "after", 60, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, false, &e), XA_OK);
    int rt = 0, nq = 0, np = 0;
    px_take(&px, &rt, &nq, &np, NULL, 0);
    CU_ASSERT_EQUAL(np, 1); /* prepared again on the new session */
    CU_ASSERT_NOT_EQUAL(dt_sql_int(c, "SELECT pg_backend_pid()"), pid);
    drv_pool_put(pool, c);
    CU_ASSERT_EQUAL(dt_sql_int(plain, "SELECT COUNT(*) FROM odbc_t WHERE name = 'after'"), 1);
    drv_pool_destroy(pool);
    px_stop(&px);
    drv_close(plain);
}

/* A unique violation inside a branch, in its first statement (sent with the
 * BEGIN) or a later one: the error names the resource and the SQLSTATE, the
 * branch rolls back on the server, and the connection runs the next branch
 * in the usual two round trips. */
static void t_pg_error_mid_branch(void)
{
    dcase *d = &g_pg;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *plain = open_conn(d);
    xac_err e;
    CU_ASSERT_EQUAL_FATAL(insert_row(plain, 70, "taken", &e), XA_OK);
    pgproxy px;
    drv_conf conf;
    drv_conn *c = open_proxied(&px, &conf, "");
    static const char *const later[] = {"Q:BEGIN;INSERT INTO odbc_t", "Q:INSERT INTO odbc_t",
                                        "Q:ROLLBACK", NULL};
    static const char *const first[] = {"Q:BEGIN;INSERT INTO odbc_t", "Q:ROLLBACK", NULL};
    static const char *const good[] = {"Q:BEGIN;INSERT INTO odbc_t", "Q:COMMIT", NULL};

    xac_xid x;
    new_xid(&x);
    px_mark(&px);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 71, "in the failed branch", &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 70, "duplicate", &e), XAER_RMERR);
    CU_ASSERT_EQUAL(e.code, drv_xa_to_code(XAER_RMERR));
    CU_ASSERT_STRING_EQUAL(e.resource, RES);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(e.msg, "on resource " RES " failed (XAER_RMERR): SQLSTATE 23505"));
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_RBROLLBACK);
    CU_ASSERT_EQUAL(e.code, drv_xa_to_code(XA_RBROLLBACK));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "PREPARE TRANSACTION on resource " RES));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23505"));
    CU_ASSERT_FALSE(c->broken);
    px_expect(&px, "error in a later statement", 3, 0, later);

    new_xid(&x);
    px_mark(&px);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 70, "duplicate first", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23505"));
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_RBROLLBACK);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "COMMIT on resource " RES));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "SQLSTATE 23505"));
    CU_ASSERT_FALSE(c->broken);
    px_expect(&px, "error in the first statement", 2, 0, first);

    new_xid(&x);
    px_mark(&px);
    CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(insert_row(c, 72, "good", &e), XA_OK);
    CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
    CU_ASSERT_EQUAL(drv_commit(c, &x, true, &e), XA_OK);
    px_expect(&px, "the next branch", 2, 0, good);

    CU_ASSERT_EQUAL(count_id(plain, 70), 1);
    CU_ASSERT_EQUAL(count_id(plain, 71), 0);
    CU_ASSERT_EQUAL(count_id(plain, 72), 1);
    CU_ASSERT_EQUAL(dt_sql_int(plain, "SELECT COUNT(*) FROM odbc_t WHERE name = 'taken'"), 1);
    drv_close(c);
    px_stop(&px);
    drv_close(plain);
}

/* MariaDB prepares on the server: Com_stmt_prepare counts the prepares of
 * the session. One per text, one more after a failed exec. */
static void t_my_stmt_cache(void)
{
    dcase *d = &g_my;
    NEED_ENV(d);
    reset_table(d);
    drv_conn *c = open_conn(d);
    static const char q[] = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
                            "VARIABLE_NAME = 'COM_STMT_PREPARE'";
    xac_err e;
    /* Connector/ODBC prepares the SELECT that reads the counter too: the
     * counter goes up by one per reading with nothing else run. */
    long long before = dt_sql_int(c, q);
    CU_ASSERT_FATAL(before >= 0);
    long long self = dt_sql_int(c, q) - before;
    before += self;
    for (int i = 0; i < 3; i++) {
        xac_xid x;
        new_xid(&x);
        CU_ASSERT_EQUAL_FATAL(drv_start(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(insert_row(c, 80 + i, "x", &e), XA_OK);
        CU_ASSERT_EQUAL(drv_end(c, &x, &e), XA_OK);
        if (i == 1)
            CU_ASSERT_EQUAL(drv_prepare(c, &x, &e), XA_OK);
        CU_ASSERT_EQUAL(drv_commit(c, &x, i != 1, &e), XA_OK);
    }
    long long mid = dt_sql_int(c, q);
    CU_ASSERT_EQUAL(mid - before - self, 1);
    CU_ASSERT_EQUAL(insert_row(c, 80, "duplicate", &e), XAER_RMERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "on resource " RES));
    CU_ASSERT_EQUAL(insert_row(c, 90, "after", &e), XA_OK);
    CU_ASSERT_EQUAL(dt_sql_int(c, q) - mid - self, 1);
    CU_ASSERT_EQUAL(count_id(c, 81), 1);
    CU_ASSERT_EQUAL(count_id(c, 90), 1);
    drv_close(c);
}

/* -------------------------------------------------------------- register */

#define BOTH(fn)                                                                                   \
    static void pg_##fn(void)                                                                      \
    {                                                                                              \
        fn(&g_pg);                                                                                 \
    }                                                                                              \
    static void my_##fn(void)                                                                      \
    {                                                                                              \
        fn(&g_my);                                                                                 \
    }

BOTH(t_exec_types)
BOTH(t_sql_error)
BOTH(t_bad_login)
BOTH(t_commit_2pc)
BOTH(t_commit_one_phase)
BOTH(t_rollback_active)
BOTH(t_rollback_prepared)
BOTH(t_recover_after_close)
BOTH(t_nota)
BOTH(t_braced_password)
BOTH(t_conn_lost)
BOTH(t_socket)
BOTH(t_dsn_extras)

int cu_register(void)
{
    load_conf(&g_pg, true);
    load_conf(&g_my, false);
    static const cu_test pg[] = {
        {"exec with rows, NULLs and every parameter type", pg_t_exec_types},
        {"SQL error carries SQLSTATE", pg_t_sql_error},
        {"failed login", pg_t_bad_login},
        {"two-phase commit", pg_t_commit_2pc},
        {"one-phase commit", pg_t_commit_one_phase},
        {"rollback of an active branch", pg_t_rollback_active},
        {"rollback of a prepared branch", pg_t_rollback_prepared},
        {"recover after close, commit from a fresh connection", pg_t_recover_after_close},
        {"XAER_NOTA for unknown XIDs", pg_t_nota},
        {"password that needs braces", pg_t_braced_password},
        {"lost connection is XAER_RMFAIL", pg_t_conn_lost},
        {"Unix socket", pg_t_socket},
        {"extra connection-string pairs", pg_t_dsn_extras},
        {"deferred foreign key fails at prepare", t_pg_deferred_fk},
        {"the last statement with its PREPARE TRANSACTION", t_pg_exec_prepare},
        {"a lone statement with its COMMIT", t_pg_exec_one_phase},
        {"a fused query whose link is cut: outcome unknown", t_pg_fused_link_killed},
        {"an error dooms the branch", t_pg_error_dooms_branch},
        {"foreign gid is listed undecoded", t_pg_foreign_gid},
        {"statement timeout", t_pg_statement_timeout},
        {"transaction control and second statements are refused in a branch", t_pg_tx_control},
        {"round trips per branch, counted on the wire", t_pg_round_trips},
        {"a prepared statement is kept per connection (LRU)", t_pg_stmt_cache},
        {"after the session ends, a new connection prepares anew", t_pg_cache_reconnect},
        {"an error mid-branch is reported and the connection goes on", t_pg_error_mid_branch},
        {NULL, NULL},
    };
    static const cu_test my[] = {
        {"exec with rows, NULLs and every parameter type", my_t_exec_types},
        {"SQL error carries SQLSTATE", my_t_sql_error},
        {"failed login", my_t_bad_login},
        {"two-phase commit", my_t_commit_2pc},
        {"one-phase commit", my_t_commit_one_phase},
        {"rollback of an active branch", my_t_rollback_active},
        {"rollback of a prepared branch", my_t_rollback_prepared},
        {"recover after close, commit from a fresh connection", my_t_recover_after_close},
        {"XAER_NOTA for unknown XIDs", my_t_nota},
        {"password that needs braces", my_t_braced_password},
        {"lost connection is XAER_RMFAIL", my_t_conn_lost},
        {"Unix socket", my_t_socket},
        {"extra connection-string pairs", my_t_dsn_extras},
        {"parameter count must match the placeholders", t_my_param_count},
        {"one statement per EXEC inside a branch", t_my_one_statement},
        {"a prepared statement is kept per connection", t_my_stmt_cache},
        {NULL, NULL},
    };
    int rc = cu_add_suite("odbc.postgresql", pg);
    if (rc == CUE_SUCCESS)
        rc = cu_add_suite("odbc.mysql", my);
    return rc;
}
