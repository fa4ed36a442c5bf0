/* The MySQL/MariaDB driver, on MariaDB Connector/C. XA branches are driven with
 * the XA SQL statements and binary-safe hex XID literals. Each connection
 * remembers its own branch (XID and state) so that a rollback of an active
 * branch ends it first and commit/rollback know whether the XID is this
 * session's or another's. MariaDB lets only the preparing session commit a
 * prepared branch until that session disconnects, so the engine commits on the
 * pinned connection and recovery uses fresh connections. Any lost link marks the
 * connection broken and answers XAER_RMFAIL. Round trips are what a branch
 * costs, so the driver saves them where that changes nothing the engine can
 * see: parameterised statements that return no rows stay prepared in a small
 * per-connection cache (keyed by SQL text, LRU), so a repeated statement is one
 * COM_STMT_EXECUTE; and XA END is deferred: drv_end only notes it, and the
 * next PREPARE, one-phase COMMIT or ROLLBACK sends "XA END x; XA <verb> x" as
 * one multi-statement query (MariaDB refuses those verbs on an ACTIVE branch,
 * so END must lead the batch), an error from END reported as before. The
 * session therefore runs with multi-statements on; caller SQL that contains a
 * ';' is run with them off, so what it does never changes. XA START is
 * deferred too: drv_start only notes it, and the branch's first statement,
 * when it is an INSERT/UPDATE/DELETE/REPLACE whose every value has an exact
 * SQL literal (mysql_fold.c writes it), goes out as "XA START x; <statement,
 * values in place>" in one text-protocol query (an error of the first part is
 * START's, as drv_start gave it); any other first call sends START by itself first, and a rollback
 * of a branch the server never heard of asks nothing. A one-phase branch
 * costs 2 round trips (START+exec, END+COMMIT), a two-phase one 3. */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "drv_impl.h"

/* BR_RBONLY: the server rolled the branch back (deadlock, ...) and waits for
 * XA ROLLBACK. */
typedef enum br_state { BR_NONE, BR_ACTIVE, BR_IDLE, BR_PREPARED, BR_RBONLY } br_state;

static const char *const br_names[] = {"none", "active", "idle", "prepared", "rollback only"};

/* A bound on the statements one session keeps prepared (the server counts
 * them against max_prepared_stmt_count) and on the SQL text kept per entry. */
#define STMT_CACHE_MAX     32
#define STMT_CACHE_SQL_MAX 4096

typedef struct stmt_entry {
    MYSQL_STMT *st;
    char *sql;
    size_t len;
    uint64_t used; /* the connection's clock at the last use: the LRU order */
} stmt_entry;

typedef struct my_conn {
    drv_conn base;
    MYSQL *m;
    br_state state; /* of this session's branch */
    xac_xid xid;    /* valid when state != BR_NONE */
    int rb_rc;      /* BR_RBONLY: why, as an XA_RB* code and the server's words */
    char rb_msg[XAC_ERR_MSG_MAX];
    /* BR_IDLE for the caller, still ACTIVE on the server: XA END goes out
     * with the next XA statement. */
    bool end_due;
    /* The caller started the branch; the server has not heard of it yet.
     * XA START goes out with the first statement (see the top of the file). */
    bool start_due;
    bool multi_on; /* the server splits a query at ';' */
    stmt_entry cache[STMT_CACHE_MAX];
    size_t ncache;
    uint64_t clock;
} my_conn;

/* The largest query that carries XA START with a statement. */
#define FOLD_MAX 16384

#define XID_LIT_MAX 320 /* X'<128 hex>',X'<128 hex>',<int32> and some */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

/* mysql_library_init is not thread-safe; mysql_init would call it lazily. */
static void lib_init(void)
{
    lib_rc = mysql_library_init(0, NULL, NULL);
}

static const char *rname(const my_conn *c)
{
    return c->base.conf->name;
}

/* Fills err from the connection's last error; returns the XA code for it and
 * marks the connection broken when the link is gone. `what` names the step,
 * e.g. "XA PREPARE" or "exec". */
static int fail_with(my_conn *c, drv_step step, const char *what, unsigned no, const char *state,
                     const char *text, xac_err *err)
{
    int rc = drv_mysql_errno_to_xa(no, step);
    if (rc == XAER_RMFAIL || drv_mysql_errno_is_connection_loss(no))
        c->base.broken = true;
    xac_err_setr(err, drv_xa_to_code(rc), rname(c),
                 "resource %s: %s failed (%s%s): MariaDB error %u (%s): %s", rname(c), what,
                 drv_xa_name(rc), c->base.broken ? ", connection unusable" : "", no,
                 state != NULL && state[0] ? state : "HY000", text != NULL ? text : "");
    return rc;
}

/* Frees the cached statements. After mysql_close the library has detached
 * them, so this sends nothing; before it, each costs a COM_STMT_CLOSE, which
 * the server does not answer. */
static void cache_clear(my_conn *c)
{
    for (size_t i = 0; i < c->ncache; i++) {
        mysql_stmt_close(c->cache[i].st);
        free(c->cache[i].sql);
    }
    c->ncache = 0;
}

static void cache_drop(my_conn *c, size_t i)
{
    mysql_stmt_close(c->cache[i].st);
    free(c->cache[i].sql);
    c->cache[i] = c->cache[--c->ncache];
}

static int cache_find(my_conn *c, const char *sql, size_t len)
{
    for (size_t i = 0; i < c->ncache; i++)
        if (c->cache[i].len == len && memcmp(c->cache[i].sql, sql, len) == 0)
            return (int)i;
    return -1;
}

/* Keeps st prepared for the next exec of sql, evicting the least recently
 * used entry when full. Closes st when it cannot be kept. */
static void cache_add(my_conn *c, MYSQL_STMT *st, const char *sql, size_t len)
{
    char *copy = len <= STMT_CACHE_SQL_MAX ? malloc(len + 1) : NULL;
    if (copy == NULL) {
        mysql_stmt_close(st);
        return;
    }
    memcpy(copy, sql, len);
    copy[len] = '\0';
    if (c->ncache == STMT_CACHE_MAX) {
        size_t lru = 0;
        for (size_t i = 1; i < c->ncache; i++)
            if (c->cache[i].used < c->cache[lru].used)
                lru = i;
        cache_drop(c, lru);
    }
    c->cache[c->ncache++] = (stmt_entry){.st = st, .sql = copy, .len = len, .used = ++c->clock};
}

/* Closes the link of a broken connection at once rather than when the pool
 * gets it back: the server then detaches a prepared branch, which a fresh
 * connection can finish. Nothing uses the handle afterwards (drv.c refuses
 * broken connections); its prepared statements went with it. */
static void drop_if_broken(my_conn *c)
{
    if (c->base.broken && c->m != NULL) {
        mysql_close(c->m);
        c->m = NULL;
        cache_clear(c);
    }
}

static int fail(my_conn *c, drv_step step, const char *what, xac_err *err)
{
    int rc =
        fail_with(c, step, what, mysql_errno(c->m), mysql_sqlstate(c->m), mysql_error(c->m), err);
    drop_if_broken(c);
    return rc;
}

static int stmt_fail(my_conn *c, MYSQL_STMT *st, const char *what, xac_err *err)
{
    return fail_with(c, DRV_STEP_EXEC, what, mysql_stmt_errno(st), mysql_stmt_sqlstate(st),
                     mysql_stmt_error(st), err);
}

/* Runs a statement that returns no rows; drains any result so the connection
 * stays in sync. */
/* Frees what the current result of a multi-statement query holds. */
static void skip_result(my_conn *c)
{
    MYSQL_RES *res = mysql_store_result(c->m);
    if (res != NULL)
        mysql_free_result(res);
}

/* The answer to a statement sent with mysql_send_query, any rows dropped. */
static int answer(my_conn *c, drv_step step, const char *what, xac_err *err)
{
    if (mysql_read_query_result(c->m) != 0)
        return fail(c, step, what, err);
    MYSQL_RES *res = mysql_store_result(c->m);
    if (res != NULL)
        mysql_free_result(res);
    else if (mysql_errno(c->m) != 0)
        return fail(c, step, what, err);
    return XA_OK;
}

static int run(my_conn *c, drv_step step, const char *what, const char *sql, xac_err *err)
{
    if (mysql_send_query(c->m, sql, strlen(sql)) != 0)
        return fail(c, step, what, err);
    return answer(c, step, what, err);
}

/* Builds "XA <verb> <xid literal><suffix>". */
static int xa_sql(my_conn *c, const char *verb, const xac_xid *xid, const char *suffix, char *out,
                  size_t outlen, xac_err *err)
{
    char lit[XID_LIT_MAX];
    if (xac_xid_to_mysql(xid, lit, sizeof lit, err) != XAC_OK) {
        xac_err_prefix(err, "resource %s: XA %s", rname(c), verb);
        return XAER_INVAL;
    }
    /* "XA <verb> <lit><suffix>", without snprintf: it is on every branch. */
    size_t vl = strlen(verb), ll = strlen(lit), sl = strlen(suffix);
    if (3 + vl + 1 + ll + sl + 1 > outlen) {
        xac_err_setr(err, XAC_EINTERNAL, rname(c), "resource %s: XA %s: XID too long", rname(c),
                     verb);
        return XAER_INVAL;
    }
    memcpy(out, "XA ", 3);
    memcpy(out + 3, verb, vl);
    out[3 + vl] = ' ';
    memcpy(out + 4 + vl, lit, ll);
    memcpy(out + 4 + vl + ll, suffix, sl + 1);
    return XA_OK;
}

/* One XA statement on this connection. */
static int xa_run(my_conn *c, drv_step step, const char *verb, const xac_xid *xid,
                  const char *suffix, xac_err *err)
{
    char sql[XID_LIT_MAX + 64];
    int rc = xa_sql(c, verb, xid, suffix, sql, sizeof sql, err);
    if (rc != XA_OK)
        return rc;
    char what[48];
    snprintf(what, sizeof what, "XA %s%s", verb, suffix);
    return run(c, step, what, sql, err);
}

static int my_recover(drv_conn *dc, drv_indoubt **out, size_t *n, xac_err *err);

static bool own(const my_conn *c, const xac_xid *xid)
{
    return c->state != BR_NONE && xac_xid_equal(&c->xid, xid);
}

static unsigned ms_to_s(uint32_t ms)
{
    unsigned s = (unsigned)((ms + 999u) / 1000u);
    return s < 1 ? 1 : s;
}

static int my_open(const drv_conf *conf, drv_conn **out, xac_err *err)
{
    *out = NULL;
    pthread_once(&lib_once, lib_init);
    if (lib_rc != 0) {
        xac_err_setr(err, XAC_ERMFAIL, conf->name,
                     "resource %s: cannot initialise the MariaDB client library", conf->name);
        return XAER_RMFAIL;
    }
    my_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->m = mysql_init(NULL)) == NULL) {
        free(c);
        xac_err_setr(err, XAC_ENOMEM, conf->name, "resource %s: out of memory opening a connection",
                     conf->name);
        return XAER_RMFAIL;
    }
    c->base.ops = &drv_mysql_ops;
    c->base.conf = conf;
    /* 0 keeps the library's default (no timeout); otherwise whole seconds,
     * rounded up, because that is the option's unit. */
    unsigned t;
    if (conf->connect_timeout_ms > 0) {
        t = ms_to_s(conf->connect_timeout_ms);
        mysql_options(c->m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    }
    if (conf->io_timeout_ms > 0) {
        t = ms_to_s(conf->io_timeout_ms);
        mysql_options(c->m, MYSQL_OPT_READ_TIMEOUT, &t);
        mysql_options(c->m, MYSQL_OPT_WRITE_TIMEOUT, &t);
    }
    /* A silent reconnect would lose the branch and the engine would not know. */
    my_bool no = 0;
    mysql_options(c->m, MYSQL_OPT_RECONNECT, &no);
    mysql_options(c->m, MYSQL_SET_CHARSET_NAME, "utf8mb4");

    bool use_socket = conf->socket[0] != '\0';
    const char *host = use_socket ? "localhost" : conf->host;
    /* Multi-statements carry the batched XA END (see the top of the file). */
    if (mysql_real_connect(c->m, host, conf->user[0] ? conf->user : NULL, conf->password,
                           conf->database[0] ? conf->database : NULL,
                           use_socket ? 0 : (unsigned)conf->port, use_socket ? conf->socket : NULL,
                           CLIENT_MULTI_STATEMENTS) == NULL) {
        char where[PATH_MAX + 300];
        if (use_socket)
            snprintf(where, sizeof where, "socket %s", conf->socket);
        else
            snprintf(where, sizeof where, "%s:%d", conf->host, conf->port ? conf->port : 3306);
        xac_err_setr(err, XAC_ERMFAIL, conf->name,
                     "resource %s: cannot connect to MariaDB/MySQL at %s as user '%s'%s%s: "
                     "MariaDB error %u (%s): %s",
                     conf->name, where, conf->user, conf->database[0] ? ", database " : "",
                     conf->database, mysql_errno(c->m), mysql_sqlstate(c->m), mysql_error(c->m));
        mysql_close(c->m);
        free(c);
        return XAER_RMFAIL;
    }
    c->multi_on = true;
    *out = &c->base;
    return XA_OK;
}

static void my_close(drv_conn *dc)
{
    my_conn *c = (my_conn *)dc;
    if (c == NULL)
        return;
    /* A prepared branch survives the disconnect (the server detaches it);
     * an active or idle one is rolled back by the server. */
    if (c->state == BR_PREPARED)
        xac_logd("resource %s: closing a connection with a prepared branch; recovery will "
                 "finish it",
                 rname(c));
    /* COM_QUIT frees the server's statements; mysql_close detaches ours. */
    if (c->m != NULL)
        mysql_close(c->m);
    cache_clear(c);
    free(c);
}

static int my_start(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    if (c->state != BR_NONE) {
        char t[XAC_XID_TEXT_MAX];
        xac_xid_format(&c->xid, t);
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: XA START: the connection already has branch %s in state %s",
                     rname(c), t, br_names[c->state]);
        return XAER_PROTO;
    }
    /* Checked now, so that a bad XID still fails here and not at exec; the
     * statement's text is made when it goes out. */
    if (!xac_xid_lengths_ok(xid)) {
        char sql[XID_LIT_MAX + 64];
        return xa_sql(c, "START", xid, "", sql, sizeof sql, err);
    }
    c->xid = *xid;
    c->state = BR_ACTIVE;
    c->start_due = true;
    c->end_due = false;
    return XA_OK;
}

/* Sends a deferred XA START by itself, for a first call on the branch that
 * cannot carry it (anything but a foldable statement). A failure is START's,
 * as drv_start gave it; the branch then still does not exist on the server. */
static int flush_start(my_conn *c, xac_err *err)
{
    if (!c->start_due)
        return XA_OK;
    int rc = xa_run(c, DRV_STEP_START, "START", &c->xid, "", err);
    if (rc == XA_OK)
        c->start_due = false;
    return rc;
}

/* Remembers that the server rolled the branch back on its own (deadlock, lock
 * wait timeout): it now sits in ROLLBACK ONLY, where only XA ROLLBACK works. */
static void set_rbonly(my_conn *c, int rc, const xac_err *why)
{
    c->state = BR_RBONLY;
    c->rb_rc = rc;
    /* Drop a leading "resource NAME: ": rbonly_answer names the resource. */
    const char *m = why->msg;
    size_t nl = strlen(rname(c));
    if (strncmp(m, "resource ", 9) == 0 && strncmp(m + 9, rname(c), nl) == 0 &&
        strncmp(m + 9 + nl, ": ", 2) == 0)
        m += 9 + nl + 2;
    snprintf(c->rb_msg, sizeof c->rb_msg, "%s", m);
}

static int rbonly_answer(my_conn *c, const char *what, xac_err *err)
{
    xac_err_setr(err, XAC_EROLLBACK, rname(c),
                 "resource %s: %s: the server already rolled the branch back (%s): %s", rname(c),
                 what, drv_xa_name(c->rb_rc), c->rb_msg);
    return c->rb_rc;
}

/* The last query failed at XA END of the connection's own active branch:
 * reports it, and remembers a branch the server rolled back. */
static int end_failed(my_conn *c, xac_err *err)
{
    xac_err e;
    xac_err_clear(&e);
    if (mysql_errno(c->m) == 1399) {
        /* Our branch was active, so the one state that refuses END is ROLLBACK
         * ONLY: the server rolled it back behind our back. */
        xac_err_setr(&e, XAC_EROLLBACK, rname(c), "MariaDB error %u (%s): %s", mysql_errno(c->m),
                     mysql_sqlstate(c->m), mysql_error(c->m));
        set_rbonly(c, XA_RBROLLBACK, &e);
        return rbonly_answer(c, "XA END", err);
    }
    int rc = fail(c, DRV_STEP_END, "XA END", &e);
    if (XA_IS_RB(rc))
        set_rbonly(c, rc, &e);
    if (err != NULL)
        *err = e;
    return rc;
}

/* XA END of the connection's own active branch, on its own. */
static int end_own(my_conn *c, const xac_xid *xid, xac_err *err)
{
    char sql[XID_LIT_MAX + 64];
    int rc = xa_sql(c, "END", xid, "", sql, sizeof sql, err);
    if (rc != XA_OK)
        return rc;
    if (mysql_real_query(c->m, sql, strlen(sql)) != 0)
        return end_failed(c, err);
    c->state = BR_IDLE;
    c->end_due = false;
    return XA_OK;
}

/* Sends a deferred XA END by itself, for the rare call that needs the
 * server's branch idle before anything else (an exec after drv_end). */
static int flush_end(my_conn *c, xac_err *err)
{
    if (!c->end_due)
        return XA_OK;
    c->end_due = false;
    c->state = BR_ACTIVE;
    return end_own(c, &c->xid, err);
}

/* Whether the server has closed (or is closing) an idle link: anything to
 * read between two of our requests is an EOF, a reset or a goodbye error
 * packet. Costs a poll, not a round trip. */
static bool link_closing(my_conn *c)
{
    my_socket s = mysql_get_socket(c->m);
    if (s == (my_socket)-1)
        return true;
    struct pollfd p = {.fd = (int)s, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

/* The link answered part of a multi-statement query and then went away:
 * what failed, as its own call reports it. */
static int lost_after(my_conn *c, const char *what, const char *answered, const char *missing,
                      xac_err *err)
{
    c->base.broken = true;
    xac_err_setr(err, XAC_ERMFAIL, rname(c),
                 "resource %s: %s failed (XAER_RMFAIL, connection unusable): the server "
                 "answered %s but not %s",
                 rname(c), what, answered, missing);
    drop_if_broken(c);
    return XAER_RMFAIL;
}

/* "XA END x; XA <verb> x<suffix>" for the connection's own branch, active on
 * the server (state BR_ACTIVE, or BR_IDLE with END due), in one round trip.
 * *end_ok tells whether XA END succeeded: when it did not, the server ran
 * nothing after it and the answer is END's, exactly as end_own gives it;
 * when it did, the answer is the second statement's, as xa_run gives it. */
static int end_then(my_conn *c, drv_step step, const char *verb, const char *suffix, bool *end_ok,
                    xac_err *err)
{
    *end_ok = false;
    c->end_due = false;
    c->state = BR_ACTIVE;
    char end[XID_LIT_MAX + 64], then[XID_LIT_MAX + 64], sql[2 * XID_LIT_MAX + 140];
    int rc = xa_sql(c, "END", &c->xid, "", end, sizeof end, err);
    if (rc == XA_OK)
        rc = xa_sql(c, verb, &c->xid, suffix, then, sizeof then, err);
    if (rc != XA_OK)
        return rc;
    int n = snprintf(sql, sizeof sql, "%s; %s", end, then);
    if (!c->multi_on) {
        if (mysql_set_server_option(c->m, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0)
            return end_failed(c, err);
        c->multi_on = true;
    }
    if (mysql_real_query(c->m, sql, (unsigned long)n) != 0)
        return end_failed(c, err);
    *end_ok = true;
    c->state = BR_IDLE;
    char what[48];
    snprintf(what, sizeof what, "XA %s%s", verb, suffix);
    int nr = mysql_next_result(c->m);
    if (nr > 0)
        return fail(c, step, what, err);
    if (nr < 0)
        return lost_after(c, what, "XA END", what, err);
    /* XA statements return no rows; anything else leaves the link out of step. */
    MYSQL_RES *res = mysql_store_result(c->m);
    if (res != NULL)
        mysql_free_result(res);
    else if (mysql_errno(c->m) != 0)
        return fail(c, step, what, err);
    while (mysql_more_results(c->m)) {
        if ((nr = mysql_next_result(c->m)) > 0)
            return fail(c, step, what, err);
        if (nr < 0)
            break;
        skip_result(c);
    }
    return XA_OK;
}

static int my_end(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    if (own(c, xid)) {
        if (c->state == BR_ACTIVE && c->start_due) {
            /* Nothing ran: END follows START whenever that goes out. */
            c->state = BR_IDLE;
            c->end_due = true;
            return XA_OK;
        }
        if (c->state == BR_ACTIVE) {
            /* A link the server already dropped gets END now, so that its
             * error comes from drv_end as always: the engine knows nothing
             * was committed then. Otherwise END goes with the next step. */
            if (link_closing(c))
                return end_own(c, xid, err);
            c->state = BR_IDLE;
            c->end_due = true;
            return XA_OK;
        }
        if (c->state == BR_RBONLY)
            return rbonly_answer(c, "XA END", err);
        return XA_OK; /* already ended: ending twice is harmless */
    }
    char t[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, t);
    xac_err_setr(err, XAC_EINTERNAL, rname(c),
                 "resource %s: XA END: branch %s is not this connection's (it has %s)", rname(c), t,
                 c->state == BR_NONE ? "none" : br_names[c->state]);
    return XAER_NOTA;
}

static int my_prepare(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    int rc;
    if (own(c, xid)) {
        if (c->state == BR_PREPARED)
            return XA_OK;
        if (c->state == BR_RBONLY)
            return rbonly_answer(c, "XA PREPARE", err);
    } else if (c->state != BR_NONE) {
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: XA PREPARE of a branch that is not this connection's", rname(c));
        return XAER_PROTO;
    }
    if (own(c, xid) && (rc = flush_start(c, err)) != XA_OK)
        return rc;
    if (own(c, xid) && (c->state == BR_ACTIVE || c->end_due)) {
        bool end_ok;
        rc = end_then(c, DRV_STEP_PREPARE, "PREPARE", "", &end_ok, err);
        if (!end_ok)
            return rc;
    } else {
        rc = xa_run(c, DRV_STEP_PREPARE, "PREPARE", xid, "", err);
    }
    if (rc == XA_OK) {
        c->xid = *xid;
        c->state = BR_PREPARED;
    } else if (own(c, xid) && (XA_IS_RB(rc) || rc == XAER_NOTA)) {
        c->state = BR_NONE; /* a failed XA PREPARE rolls the branch back */
    }
    return rc;
}

/* MySQL bug #87836: XA COMMIT/ROLLBACK of another session's prepared branch
 * fails unless autocommit is on. The server reports its mode in every OK
 * packet, so this costs a round trip only when it is off. */
static int ensure_autocommit(my_conn *c, drv_step step, xac_err *err)
{
    unsigned int status = 0;
    if (mariadb_get_infov(c->m, MARIADB_CONNECTION_SERVER_STATUS, &status) == 0 &&
        (status & SERVER_STATUS_AUTOCOMMIT))
        return XA_OK;
    if (mysql_autocommit(c->m, 1) != 0)
        return fail(c, step, "SET autocommit=1", err);
    return XA_OK;
}

/* Clears a ROLLBACK ONLY branch off the connection, keeping the reason. */
static int clear_rbonly(my_conn *c, const xac_xid *xid, const char *what, xac_err *err)
{
    xac_err e;
    int rc = xa_run(c, DRV_STEP_ROLLBACK, "ROLLBACK", xid, "", &e);
    if (rc == XA_OK || XA_IS_RB(rc) || rc == XAER_NOTA) {
        int rb = rbonly_answer(c, what, err);
        c->state = BR_NONE;
        return rb;
    }
    if (err != NULL)
        *err = e;
    return rc;
}

static int not_own(my_conn *c, const char *what, const xac_xid *xid, xac_err *err)
{
    char t[XAC_XID_TEXT_MAX], o[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, t);
    xac_xid_format(&c->xid, o);
    xac_err_setr(err, XAC_EINTERNAL, rname(c),
                 "resource %s: %s of %s on a connection busy with branch %s (%s); use a "
                 "connection without a branch",
                 rname(c), what, t, o, br_names[c->state]);
    return XAER_PROTO;
}

/* XA RECOVER lists the XID: it is prepared on this server. */
static bool listed_prepared(my_conn *c, const xac_xid *xid)
{
    drv_indoubt *v = NULL;
    size_t n = 0;
    xac_err e;
    bool found = false;
    if (my_recover(&c->base, &v, &n, &e) != XA_OK)
        return false;
    for (size_t i = 0; i < n && !found; i++)
        found = xac_xid_equal(&v[i].xid, xid);
    free(v);
    return found;
}

/* Finishes another session's prepared branch. MariaDB answers 1397 (unknown
 * XID) while the branch is still attached to the session that prepared it;
 * the branch is then still listed by XA RECOVER. Reporting that as XAER_NOTA
 * would tell the caller "already finished", so it becomes XA_RETRY. */
static int finish_foreign(my_conn *c, drv_step step, const char *verb, const xac_xid *xid,
                          xac_err *err)
{
    int rc = ensure_autocommit(c, step, err);
    if (rc != XA_OK)
        return rc;
    rc = xa_run(c, step, verb, xid, "", err);
    if (rc == XAER_NOTA && !c->base.broken && listed_prepared(c, xid)) {
        char t[XAC_XID_TEXT_MAX];
        xac_xid_format(xid, t);
        xac_err_setr(err, drv_xa_to_code(XA_RETRY), rname(c),
                     "resource %s: XA %s of %s: the branch is prepared but still attached to "
                     "the session that prepared it (MariaDB lets only that session finish it "
                     "until it disconnects); retry later",
                     rname(c), verb, t);
        rc = XA_RETRY;
    }
    return rc;
}

static int my_commit(drv_conn *dc, const xac_xid *xid, bool one_phase, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    int rc;
    if (one_phase) {
        if (!own(c, xid)) {
            char t[XAC_XID_TEXT_MAX];
            xac_xid_format(xid, t);
            xac_err_setr(err, XAC_EINTERNAL, rname(c),
                         "resource %s: one-phase commit of %s: the branch is not this "
                         "connection's",
                         rname(c), t);
            return XAER_PROTO;
        }
        if ((rc = flush_start(c, err)) != XA_OK)
            return rc;
        if (c->state == BR_ACTIVE || c->end_due) {
            bool end_ok;
            rc = end_then(c, DRV_STEP_COMMIT, "COMMIT", " ONE PHASE", &end_ok, err);
            if (end_ok) {
                if (rc == XA_OK || XA_IS_RB(rc) || rc == XAER_NOTA)
                    c->state = BR_NONE;
                return rc;
            }
            if (c->state != BR_RBONLY)
                return rc;
        }
        if (c->state == BR_RBONLY)
            return clear_rbonly(c, xid, "one-phase commit", err);
        if (c->state == BR_PREPARED)
            rc = xa_run(c, DRV_STEP_COMMIT, "COMMIT", xid, "", err);
        else
            rc = xa_run(c, DRV_STEP_COMMIT, "COMMIT", xid, " ONE PHASE", err);
        if (rc == XA_OK || XA_IS_RB(rc) || rc == XAER_NOTA)
            c->state = BR_NONE;
        return rc;
    }
    if (own(c, xid)) {
        if (c->state == BR_RBONLY)
            return clear_rbonly(c, xid, "XA COMMIT", err);
        if (c->state != BR_PREPARED) {
            xac_err_setr(err, XAC_EINTERNAL, rname(c),
                         "resource %s: XA COMMIT: the branch is %s, not prepared; prepare it "
                         "first or commit in one phase",
                         rname(c), br_names[c->state]);
            return XAER_PROTO;
        }
    } else if (c->state != BR_NONE) {
        return not_own(c, "XA COMMIT", xid, err);
    } else {
        return finish_foreign(c, DRV_STEP_COMMIT, "COMMIT", xid, err);
    }
    rc = xa_run(c, DRV_STEP_COMMIT, "COMMIT", xid, "", err);
    if (rc == XA_OK || XA_IS_RB(rc) || rc == XAER_NOTA)
        c->state = BR_NONE;
    return rc;
}

/* XA COMMIT of the connection's own prepared branch, sent without waiting
 * for the answer (Connector/C sends and reads a query separately). */
static bool my_commit_send(drv_conn *dc, const xac_xid *xid)
{
    my_conn *c = (my_conn *)dc;
    if (!own(c, xid) || c->state != BR_PREPARED)
        return false;
    char sql[XID_LIT_MAX + 64];
    xac_err e;
    if (xa_sql(c, "COMMIT", xid, "", sql, sizeof sql, &e) != XA_OK)
        return false;
    if (mysql_send_query(c->m, sql, (unsigned long)strlen(sql)) != 0) {
        fail(c, DRV_STEP_COMMIT, "XA COMMIT", &e); /* a broken link is marked so */
        return false;
    }
    return true;
}

/* The answer to my_commit_send, as my_commit would have given it. */
static int my_commit_recv(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    (void)xid;
    my_conn *c = (my_conn *)dc;
    int rc = answer(c, DRV_STEP_COMMIT, "XA COMMIT", err);
    if (rc == XA_OK || XA_IS_RB(rc) || rc == XAER_NOTA)
        c->state = BR_NONE;
    return rc;
}

static int my_rollback(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    int rc;
    if (!own(c, xid)) {
        if (c->state != BR_NONE)
            return not_own(c, "XA ROLLBACK", xid, err);
        return finish_foreign(c, DRV_STEP_ROLLBACK, "ROLLBACK", xid, err);
    }
    if (c->start_due) {
        /* The server never heard of the branch: nothing to undo. */
        c->state = BR_NONE;
        c->start_due = false;
        c->end_due = false;
        xac_err_clear(err);
        return XA_OK;
    }
    bool end_ok = false;
    if (c->state == BR_ACTIVE || c->end_due) {
        rc = end_then(c, DRV_STEP_ROLLBACK, "ROLLBACK", "", &end_ok, err);
        if (!end_ok && c->state != BR_RBONLY)
            return rc;
    }
    if (!end_ok)
        rc = xa_run(c, DRV_STEP_ROLLBACK, "ROLLBACK", xid, "", err);
    /* Rolled back for a reason (XA_RB*) or already gone (XAER_NOTA): either way
     * the branch this connection owned is rolled back, which is what was asked. */
    if (rc == XA_OK || XA_IS_RB(rc) || rc == XAER_NOTA) {
        c->state = BR_NONE;
        xac_err_clear(err);
        return XA_OK;
    }
    return rc;
}

static int my_recover(drv_conn *dc, drv_indoubt **out, size_t *n, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    *out = NULL;
    *n = 0;
    int rc = flush_start(c, err);
    if (rc == XA_OK)
        rc = flush_end(c, err);
    if (rc != XA_OK)
        return rc;
    static const char sql[] = "XA RECOVER";
    if (mysql_real_query(c->m, sql, sizeof sql - 1) != 0)
        return fail(c, DRV_STEP_RECOVER, "XA RECOVER", err);
    MYSQL_RES *res = mysql_store_result(c->m);
    if (res == NULL)
        return fail(c, DRV_STEP_RECOVER, "XA RECOVER", err);
    unsigned nf = mysql_num_fields(res);
    if (nf < 4) {
        mysql_free_result(res);
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: XA RECOVER returned %u columns, expected formatID, "
                     "gtrid_length, bqual_length, data",
                     rname(c), nf);
        return XAER_RMERR;
    }
    size_t rows = (size_t)mysql_num_rows(res);
    drv_indoubt *v = rows > 0 ? calloc(rows, sizeof *v) : NULL;
    if (rows > 0 && v == NULL) {
        mysql_free_result(res);
        xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: XA RECOVER: out of memory", rname(c));
        return XAER_RMERR;
    }
    size_t k = 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(res);
        if (row[0] == NULL || row[1] == NULL || row[2] == NULL || row[3] == NULL || len == NULL)
            continue;
        long long fid = strtoll(row[0], NULL, 10);
        long glen = strtol(row[1], NULL, 10), blen = strtol(row[2], NULL, 10);
        if (glen < 0 || blen < 0 || (unsigned long)(glen + blen) > len[3]) {
            xac_logw("resource %s: XA RECOVER row with inconsistent lengths skipped "
                     "(gtrid_length %ld, bqual_length %ld, data %lu bytes)",
                     rname(c), glen, blen, len[3]);
            continue;
        }
        xac_err xe;
        if (xac_xid_set(&v[k].xid, (int32_t)fid, row[3], (size_t)glen, row[3] + glen, (size_t)blen,
                        &xe) != XAC_OK) {
            xac_logw("resource %s: XA RECOVER row skipped: %s", rname(c), xe.msg);
            continue;
        }
        v[k].decoded = true;
        v[k].raw[0] = '\0';
        v[k].prepared_at = 0; /* MySQL does not record when a branch was prepared */
        k++;
    }
    mysql_free_result(res);
    if (k == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = k;
    return XA_OK;
}

static int my_forget(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    /* MySQL and MariaDB never finish a branch heuristically, so there is
     * nothing to forget. */
    (void)dc;
    (void)xid;
    (void)err;
    return XA_OK;
}

/* Copies a text-protocol result into rows. */
static int store_text_result(my_conn *c, MYSQL_RES *res, xac_rows *rows, xac_err *err)
{
    unsigned nf = mysql_num_fields(res);
    MYSQL_FIELD *f = mysql_fetch_fields(res);
    const char **names = calloc(nf ? nf : 1, sizeof *names);
    if (names == NULL) {
        xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: exec: out of memory", rname(c));
        return XAER_RMERR;
    }
    for (unsigned i = 0; i < nf; i++)
        names[i] = f[i].name;
    int rc = xac_rows_set_cols(rows, nf, names, err);
    free(names);
    if (rc != XAC_OK)
        return XAER_RMERR;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned long *ul = mysql_fetch_lengths(res);
        size_t lens[nf ? nf : 1];
        for (unsigned i = 0; i < nf; i++)
            lens[i] = ul[i];
        if (xac_rows_add(rows, (const char *const *)row, lens, err) != XAC_OK)
            return XAER_RMERR;
    }
    return XA_OK;
}

/* Reads the results of a statement sent with mysql_real_query: the first
 * result set (or affected count) goes into rows, further ones (a CALL) are
 * drained so the connection stays usable. */
static int read_results(my_conn *c, xac_rows *rows, xac_err *err)
{
    int rc = XA_OK;
    bool first = true;
    for (;;) {
        MYSQL_RES *res = mysql_store_result(c->m);
        if (res == NULL && mysql_field_count(c->m) != 0)
            return fail(c, DRV_STEP_EXEC, "exec", err);
        if (first && rc == XA_OK) {
            if (res != NULL) {
                rc = store_text_result(c, res, rows, err);
            } else {
                rows->has_rows = false;
                rows->affected = (uint64_t)mysql_affected_rows(c->m);
            }
            first = false;
        }
        if (res != NULL)
            mysql_free_result(res);
        if (!mysql_more_results(c->m))
            return rc;
        int nr = mysql_next_result(c->m);
        if (nr > 0)
            return fail(c, DRV_STEP_EXEC, "exec", err);
        if (nr < 0)
            return rc;
    }
}

#define CELL_INIT 256

/* Fetches a prepared statement's rows as text: every column is bound as a
 * string; a value longer than its buffer is fetched again whole. */
static int store_stmt_result(my_conn *c, MYSQL_STMT *st, MYSQL_RES *meta, xac_rows *rows,
                             xac_err *err)
{
    unsigned nf = mysql_num_fields(meta);
    MYSQL_FIELD *f = mysql_fetch_fields(meta);
    int rc = XA_OK;
    MYSQL_BIND *b = calloc(nf, sizeof *b);
    unsigned long *len = calloc(nf, sizeof *len);
    my_bool *isnull = calloc(nf, sizeof *isnull);
    my_bool *trunc = calloc(nf, sizeof *trunc);
    char **buf = calloc(nf, sizeof *buf);
    const char **cells = calloc(nf, sizeof *cells);
    size_t *clens = calloc(nf, sizeof *clens);
    const char **names = calloc(nf, sizeof *names);
    bool ok = b && len && isnull && trunc && buf && cells && clens && names;
    for (unsigned i = 0; ok && i < nf; i++) {
        buf[i] = malloc(CELL_INIT);
        ok = buf[i] != NULL;
        b[i].buffer_type = MYSQL_TYPE_STRING;
        b[i].buffer = buf[i];
        b[i].buffer_length = CELL_INIT;
        b[i].length = &len[i];
        b[i].is_null = &isnull[i];
        b[i].error = &trunc[i];
        names[i] = f[i].name;
    }
    if (!ok) {
        rc = XAER_RMERR;
        xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: exec: out of memory", rname(c));
        goto out;
    }
    if (xac_rows_set_cols(rows, nf, names, err) != XAC_OK) {
        rc = XAER_RMERR;
        goto out;
    }
    if (mysql_stmt_bind_result(st, b) != 0) {
        rc = stmt_fail(c, st, "exec (binding result columns)", err);
        goto out;
    }
    for (;;) {
        int fr = mysql_stmt_fetch(st);
        if (fr == MYSQL_NO_DATA)
            break;
        if (fr == 1) {
            rc = stmt_fail(c, st, "exec (fetching a row)", err);
            goto out;
        }
        bool rebind = false;
        for (unsigned i = 0; i < nf; i++) {
            if (isnull[i]) {
                cells[i] = NULL;
                clens[i] = 0;
                continue;
            }
            if (len[i] > b[i].buffer_length) {
                char *nb = realloc(buf[i], len[i] + 1);
                if (nb == NULL) {
                    rc = XAER_RMERR;
                    xac_err_setr(err, XAC_ENOMEM, rname(c),
                                 "resource %s: exec: out of memory for a %lu-byte value", rname(c),
                                 len[i]);
                    goto out;
                }
                buf[i] = nb;
                b[i].buffer = nb;
                b[i].buffer_length = len[i] + 1;
                if (mysql_stmt_fetch_column(st, &b[i], i, 0) != 0) {
                    rc = stmt_fail(c, st, "exec (fetching a long value)", err);
                    goto out;
                }
                rebind = true;
            }
            cells[i] = buf[i];
            clens[i] = len[i];
        }
        if (xac_rows_add(rows, cells, clens, err) != XAC_OK) {
            rc = XAER_RMERR;
            goto out;
        }
        if (rebind && mysql_stmt_bind_result(st, b) != 0) {
            rc = stmt_fail(c, st, "exec (binding result columns)", err);
            goto out;
        }
    }
out:
    if (buf != NULL)
        for (unsigned i = 0; i < nf; i++)
            free(buf[i]);
    free(b);
    free(len);
    free(isnull);
    free(trunc);
    free(buf);
    free(cells);
    free(clens);
    free(names);
    return rc;
}

/* Whether a statement error leaves the statement itself usable: the server
 * refused this execution, as opposed to the client library losing its state
 * (client errors are 2000-2999 and 5000 on). */
static bool server_error(unsigned no)
{
    return no != 0 && !(no >= 2000 && no < 3000) && no < 5000;
}

/* A fresh prepared statement for sql. A server at max_prepared_stmt_count
 * gets this connection's cached statements back before the one retry. */
static MYSQL_STMT *prepare_stmt(my_conn *c, const char *sql, size_t sql_len, int *rc, xac_err *err)
{
    for (int attempt = 0;; attempt++) {
        MYSQL_STMT *st = mysql_stmt_init(c->m);
        if (st == NULL) {
            *rc = fail(c, DRV_STEP_EXEC, "exec (mysql_stmt_init)", err);
            return NULL;
        }
        if (mysql_stmt_prepare(st, sql, (unsigned long)sql_len) == 0)
            return st;
        if (mysql_stmt_errno(st) == 1461 && attempt == 0 && c->ncache > 0) {
            mysql_stmt_close(st);
            cache_clear(c);
            continue;
        }
        *rc = stmt_fail(c, st, "exec (prepare)", err);
        mysql_stmt_close(st);
        return NULL;
    }
}

/* Binds params to b, with the values' storage in plen, ints and dbls. */
static int bind_params(my_conn *c, const xac_value *params, size_t nparams, MYSQL_BIND *b,
                       unsigned long *plen, int64_t *ints, double *dbls, xac_err *err)
{
    static char empty[1] = "";
    for (size_t i = 0; i < nparams; i++) {
        const xac_value *v = &params[i];
        switch (v->type) {
        case XAC_T_NULL:
            b[i].buffer_type = MYSQL_TYPE_NULL;
            break;
        case XAC_T_INT:
            ints[i] = v->i;
            b[i].buffer_type = MYSQL_TYPE_LONGLONG;
            b[i].buffer = &ints[i];
            break;
        case XAC_T_DOUBLE:
            dbls[i] = v->d;
            b[i].buffer_type = MYSQL_TYPE_DOUBLE;
            b[i].buffer = &dbls[i];
            break;
        case XAC_T_TEXT:
        case XAC_T_BLOB:
            b[i].buffer_type = v->type == XAC_T_TEXT ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
            b[i].buffer = v->s != NULL ? (void *)v->s : empty;
            plen[i] = v->s != NULL ? (unsigned long)v->len : 0;
            b[i].buffer_length = plen[i];
            b[i].length = &plen[i];
            break;
        default:
            xac_err_setr(err, XAC_EINVAL, rname(c),
                         "resource %s: exec: parameter %zu has unknown type %d", rname(c), i + 1,
                         (int)v->type);
            return XAER_RMERR;
        }
    }
    return XA_OK;
}

/* Runs a statement with parameters on the binary protocol. A statement that
 * returned no rows (INSERT, UPDATE, DELETE) stays prepared in the cache for
 * the next exec of the same text; one that returned rows is closed, because
 * a later change of its result columns would break a kept handle. */
static int exec_stmt(my_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                     size_t nparams, xac_rows *rows, xac_err *err)
{
    int rc = XA_OK;
    MYSQL_BIND *b = calloc(nparams, sizeof *b);
    unsigned long *plen = calloc(nparams, sizeof *plen);
    int64_t *ints = calloc(nparams, sizeof *ints);
    double *dbls = calloc(nparams, sizeof *dbls);
    MYSQL_RES *meta = NULL;
    MYSQL_STMT *st = NULL;
    int slot = -1;           /* st's cache entry, or -1 when st is our own */
    bool keep = true;        /* a cached st stays cached */
    bool had_rows = false;   /* the statement produced a result set */
    bool reprepared = false; /* a stale cached handle was replaced once */
    if (b == NULL || plen == NULL || ints == NULL || dbls == NULL) {
        rc = XAER_RMERR;
        xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: exec: out of memory", rname(c));
        goto out;
    }
    rc = bind_params(c, params, nparams, b, plen, ints, dbls, err);
    if (rc != XA_OK)
        goto out;
    slot = cache_find(c, sql, sql_len);
again:
    if (slot >= 0) {
        st = c->cache[slot].st;
        c->cache[slot].used = ++c->clock;
    } else if ((st = prepare_stmt(c, sql, sql_len, &rc, err)) == NULL) {
        goto out;
    }
    unsigned long want = mysql_stmt_param_count(st);
    if (want != nparams) {
        rc = XAER_RMERR;
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: exec: the statement has %lu '?' placeholder(s) but %zu "
                     "parameter(s) were given",
                     rname(c), want, nparams);
        goto out;
    }
    if (nparams > 0 && mysql_stmt_bind_param(st, b) != 0) {
        rc = stmt_fail(c, st, "exec (binding parameters)", err);
        keep = false;
        goto out;
    }
    if (mysql_stmt_execute(st) != 0) {
        unsigned no = mysql_stmt_errno(st);
        /* A kept handle the server no longer knows (1243) or could not
         * re-prepare after DDL (1615): nothing ran, so prepare afresh once. */
        if (slot >= 0 && !reprepared && (no == 1243 || no == 1615)) {
            cache_drop(c, (size_t)slot);
            slot = -1;
            st = NULL;
            reprepared = true;
            goto again;
        }
        rc = stmt_fail(c, st, "exec", err);
        keep = server_error(no);
        goto out;
    }
    meta = mysql_stmt_result_metadata(st);
    if (meta != NULL) {
        had_rows = true;
        rc = store_stmt_result(c, st, meta, rows, err);
    } else if (mysql_stmt_errno(st) != 0) {
        rc = stmt_fail(c, st, "exec (result metadata)", err);
    } else {
        rows->has_rows = false;
        rows->affected = (uint64_t)mysql_stmt_affected_rows(st);
    }
    /* A CALL may return more result sets; drain them. */
    while (rc == XA_OK && mysql_stmt_more_results(st)) {
        had_rows = true;
        int nr = mysql_stmt_next_result(st);
        if (nr > 0)
            rc = stmt_fail(c, st, "exec (next result)", err);
        if (nr != 0)
            break;
        mysql_stmt_free_result(st);
    }
    if (had_rows || rc != XA_OK)
        keep = false;
out:
    if (meta != NULL)
        mysql_free_result(meta);
    if (st != NULL) {
        if (slot < 0 && rc == XA_OK && !had_rows && !c->base.broken)
            cache_add(c, st, sql, sql_len);
        else if (slot < 0)
            mysql_stmt_close(st);
        else if (!keep && !c->base.broken) /* a broken link's cache goes below */
            cache_drop(c, (size_t)slot);
    }
    drop_if_broken(c);
    free(b);
    free(plen);
    free(ints);
    free(dbls);
    return rc;
}

/* ------------------------------------------------ XA START with the statement */

/* "XA START x; <the statement, values in place>" for the branch's first
 * statement, or false to take the usual path (mysql_fold.c says when). */
static bool fold_build(my_conn *c, const char *sql, size_t len, const xac_value *params,
                       size_t nparams, char **out, size_t *outlen)
{
    *out = NULL;
    if (!c->multi_on)
        return false;
    char start[XID_LIT_MAX + 64];
    xac_err e;
    if (xa_sql(c, "START", &c->xid, "; ", start, sizeof start, &e) != XA_OK)
        return false;
    return drv_mysql_fold(c->m, start, sql, len, params, nparams, "", FOLD_MAX, out, outlen);
}

/* Runs what fold_build made: an error of the first statement is XA START's,
 * exactly as drv_start gave it (the server then runs nothing after it, and
 * the branch still does not exist); one of the second is the statement's. */
static int exec_folded(my_conn *c, const char *q, size_t qlen, xac_rows *rows, xac_err *err)
{
    if (mysql_real_query(c->m, q, (unsigned long)qlen) != 0)
        return fail(c, DRV_STEP_START, "XA START", err);
    c->start_due = false;
    skip_result(c);
    int nr = mysql_next_result(c->m);
    if (nr > 0)
        return fail(c, DRV_STEP_EXEC, "exec", err);
    if (nr < 0)
        return lost_after(c, "exec", "XA START", "the statement sent with it", err);
    return read_results(c, rows, err);
}

static int my_exec(drv_conn *dc, const char *sql, size_t sql_len, const xac_value *params,
                   size_t nparams, xac_rows *rows, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    if (c->state == BR_RBONLY)
        return rbonly_answer(c, "exec", err);
    xac_rows scratch;
    xac_rows_init(&scratch);
    xac_rows *r = rows != NULL ? rows : &scratch;
    char *folded = NULL;
    size_t folded_len = 0;
    int rc;
    if (c->start_due && c->state == BR_ACTIVE &&
        fold_build(c, sql, sql_len, params, nparams, &folded, &folded_len)) {
        xac_rows_free(r);
        rc = exec_folded(c, folded, folded_len, r, err);
        free(folded);
        goto done;
    }
    /* Work after drv_end meets an idle branch on the server, as it always did. */
    rc = flush_start(c, err);
    if (rc == XA_OK)
        rc = flush_end(c, err);
    if (rc != XA_OK)
        return rc;
    /* With a ';' the server could split the text into several statements;
     * without multi-statements it refuses that, as it always did here. */
    if (c->multi_on && memchr(sql, ';', sql_len) != NULL) {
        if (mysql_set_server_option(c->m, MYSQL_OPTION_MULTI_STATEMENTS_OFF) != 0)
            return fail(c, DRV_STEP_EXEC, "exec (switching multi-statements off)", err);
        c->multi_on = false;
    }
    xac_rows_free(r);
    if (nparams == 0) {
        /* One round trip, and statements the prepared API refuses work too. */
        if (mysql_real_query(c->m, sql, (unsigned long)sql_len) != 0)
            rc = fail(c, DRV_STEP_EXEC, "exec", err);
        else
            rc = read_results(c, r, err);
    } else {
        rc = exec_stmt(c, sql, sql_len, params, nparams, r, err);
    }
done:
    if (rc != XA_OK)
        xac_rows_free(r);
    if (rc != XA_OK && err != NULL && err->resource[0] == '\0') {
        /* Out of memory in the row set: still name the resource. */
        snprintf(err->resource, sizeof err->resource, "%s", rname(c));
        xac_err_prefix(err, "resource %s: exec", rname(c));
    }
    if (XA_IS_RB(rc) && c->state == BR_ACTIVE && !c->start_due && err != NULL)
        set_rbonly(c, rc, err);
    xac_rows_free(&scratch);
    return rc;
}

/* Rolls back the local transaction my_exec_one_phase opened; the server does
 * the same if the link is gone. */
static void local_rollback(my_conn *c)
{
    if (!c->base.broken && mysql_real_query(c->m, "ROLLBACK", 8) != 0) {
        c->base.broken = true;
        drop_if_broken(c);
    }
}

/* The end of a one-query commit that went out: a link lost on the way leaves
 * the outcome unknown (the server may have run the query to the end, commit
 * included), and once at the commit the branch is gone from the connection,
 * whatever the answer. */
static void one_phase_settled(my_conn *c, int rc, drv_onephase_at *at)
{
    if (rc == XAER_RMFAIL)
        *at = DRV_ONEPHASE_COMMIT;
    if (*at == DRV_ONEPHASE_COMMIT) {
        c->state = BR_NONE;
        c->start_due = false;
    }
}

/* my_exec_one_phase on a session in autocommit mode (the server's default):
 * the statement alone is a transaction that commits when it succeeds and
 * leaves nothing when it fails, and there is one answer to wait for instead
 * of three. */
static int one_phase_autocommit(my_conn *c, const char *sql, size_t sql_len,
                                const xac_value *params, size_t nparams, xac_rows *rows,
                                drv_onephase_at *at, xac_err *err)
{
    char *q = NULL;
    size_t qlen = 0;
    if (!drv_mysql_fold(c->m, "", sql, sql_len, params, nparams, "", FOLD_MAX, &q, &qlen))
        return XA_OK;
    xac_rows_free(rows);
    *at = DRV_ONEPHASE_EXEC;
    int rc = XA_OK;
    if (mysql_real_query(c->m, q, (unsigned long)qlen) != 0) {
        rc = fail(c, DRV_STEP_EXEC, "exec", err);
    } else {
        skip_result(c); /* a foldable statement returns no rows */
        rows->has_rows = false;
        rows->affected = (uint64_t)mysql_affected_rows(c->m);
    }
    if (rc == XA_OK)
        *at = DRV_ONEPHASE_COMMIT;
    one_phase_settled(c, rc, at);
    free(q);
    return rc;
}

/* The branch's only statement, its commit known to follow at once: a branch
 * that will never be prepared needs no XA, and a plain local transaction does
 * the same (a link lost before COMMIT rolls back either) for less work on the
 * server: the statement alone in autocommit mode (one_phase_autocommit), else
 * "START TRANSACTION; <statement, values in place>; COMMIT" as one query.
 * Only a foldable statement (see fold_build) goes this way.
 * The server stops at the first statement that fails: a failed statement's
 * transaction is rolled back here, and the branch is left as one the server
 * never heard of (a rollback asks nothing); a failed COMMIT is rolled back
 * too and answers XA_RBROLLBACK. A link lost anywhere after the query went
 * out answers XAER_RMFAIL at COMMIT: the outcome is unknown. A link the
 * server already closed is left to the usual path, which reports it. */
static int my_exec_one_phase(drv_conn *dc, const xac_xid *xid, const char *sql, size_t sql_len,
                             const xac_value *params, size_t nparams, xac_rows *rows,
                             drv_onephase_at *at, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    *at = DRV_ONEPHASE_NOT_SENT;
    if (!own(c, xid) || c->state != BR_ACTIVE || !c->start_due || !c->multi_on || link_closing(c))
        return XA_OK;
    unsigned int status = 0;
    if (mariadb_get_infov(c->m, MARIADB_CONNECTION_SERVER_STATUS, &status) == 0 &&
        (status & SERVER_STATUS_AUTOCOMMIT) && !(status & SERVER_STATUS_IN_TRANS))
        return one_phase_autocommit(c, sql, sql_len, params, nparams, rows, at, err);
    char *q = NULL;
    size_t qlen = 0;
    if (!drv_mysql_fold(c->m, "START TRANSACTION; ", sql, sql_len, params, nparams, "; COMMIT",
                        FOLD_MAX, &q, &qlen))
        return XA_OK;

    xac_rows_free(rows);
    *at = DRV_ONEPHASE_EXEC;
    int rc;
    if (mysql_real_query(c->m, q, (unsigned long)qlen) != 0) {
        rc = fail(c, DRV_STEP_START, "START TRANSACTION", err);
        goto out;
    }
    skip_result(c);
    int nr = mysql_next_result(c->m);
    if (nr != 0) {
        rc = nr > 0 ? fail(c, DRV_STEP_EXEC, "exec", err)
                    : lost_after(c, "exec", "START TRANSACTION", "the statement sent with it", err);
        local_rollback(c);
        goto out;
    }
    /* A foldable statement returns no rows. */
    MYSQL_RES *res = mysql_store_result(c->m);
    if (res != NULL) {
        mysql_free_result(res);
        rc = lost_after(c, "COMMIT", "the statement with rows", "COMMIT", err);
        goto out;
    }
    rows->has_rows = false;
    rows->affected = (uint64_t)mysql_affected_rows(c->m);
    *at = DRV_ONEPHASE_COMMIT;
    if ((nr = mysql_next_result(c->m)) == 0) {
        skip_result(c);
        rc = XA_OK;
    } else if (nr < 0) {
        rc = lost_after(c, "COMMIT", "the statement", "COMMIT", err);
    } else {
        rc = fail(c, DRV_STEP_COMMIT, "COMMIT", err);
        if (rc != XAER_RMFAIL) {
            local_rollback(c);
            if (c->base.broken)
                rc = XAER_RMFAIL;
            else if (!XA_IS_RB(rc))
                rc = XA_RBROLLBACK;
        }
    }
out:
    one_phase_settled(c, rc, at);
    free(q);
    return rc;
}

/* The branch's last statement, its two-phase commit known to follow:
 * "[XA START x; ]<statement, values in place>; XA END x; XA PREPARE x" as one
 * query, for a foldable statement (see fold_build) on the connection's active
 * branch, with or without its deferred START. The server stops at the first
 * statement that fails. Until the statement has run, the answer is XA START's
 * or the statement's, as my_exec gives it, and the branch is as my_exec would
 * leave it; after, it is XA END's or XA PREPARE's, as my_prepare gives it. A
 * link lost anywhere after the query went out is XAER_RMFAIL as the vote:
 * the branch may be prepared. */
static int my_exec_prepare(drv_conn *dc, const xac_xid *xid, const char *sql, size_t sql_len,
                           const xac_value *params, size_t nparams, xac_rows *rows,
                           drv_prepare_at *at, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    *at = DRV_PREPARE_NOT_SENT;
    if (!own(c, xid) || c->state != BR_ACTIVE || c->end_due || !c->multi_on || link_closing(c))
        return XA_OK;
    xac_err e;
    char start[XID_LIT_MAX + 64] = "", tail[2 * XID_LIT_MAX + 140], end[XID_LIT_MAX + 64],
                             prep[XID_LIT_MAX + 64];
    if ((c->start_due && xa_sql(c, "START", xid, "; ", start, sizeof start, &e) != XA_OK) ||
        xa_sql(c, "END", xid, "", end, sizeof end, &e) != XA_OK ||
        xa_sql(c, "PREPARE", xid, "", prep, sizeof prep, &e) != XA_OK)
        return XA_OK;
    snprintf(tail, sizeof tail, "; %s; %s", end, prep);
    char *q = NULL;
    size_t qlen = 0;
    if (!drv_mysql_fold(c->m, start, sql, sql_len, params, nparams, tail, FOLD_MAX, &q, &qlen))
        return XA_OK;

    xac_rows_free(rows);
    *at = DRV_PREPARE_EXEC;
    bool started = c->start_due;
    int rc, nr;
    if (mysql_real_query(c->m, q, (unsigned long)qlen) != 0) {
        rc = started ? fail(c, DRV_STEP_START, "XA START", err)
                     : fail(c, DRV_STEP_EXEC, "exec", err);
        goto out;
    }
    if (started) {
        c->start_due = false;
        skip_result(c);
        if ((nr = mysql_next_result(c->m)) != 0) {
            rc = nr > 0 ? fail(c, DRV_STEP_EXEC, "exec", err)
                        : lost_after(c, "exec", "XA START", "the statement sent with it", err);
            goto out;
        }
    }
    /* A foldable statement returns no rows. */
    skip_result(c);
    rows->has_rows = false;
    rows->affected = (uint64_t)mysql_affected_rows(c->m);
    *at = DRV_PREPARE_VOTE;
    if ((nr = mysql_next_result(c->m)) != 0) {
        rc = nr > 0 ? end_failed(c, err) : lost_after(c, "XA END", "the statement", "XA END", err);
        goto out;
    }
    skip_result(c);
    c->state = BR_IDLE;
    if ((nr = mysql_next_result(c->m)) != 0) {
        rc = nr > 0 ? fail(c, DRV_STEP_PREPARE, "XA PREPARE", err)
                    : lost_after(c, "XA PREPARE", "XA END", "XA PREPARE", err);
        if (XA_IS_RB(rc) || rc == XAER_NOTA)
            c->state = BR_NONE; /* a failed XA PREPARE rolls the branch back */
        goto out;
    }
    skip_result(c);
    c->state = BR_PREPARED;
    rc = XA_OK;
out:
    if (rc == XAER_RMFAIL) {
        /* The link went away with the query sent: the server may have run it
         * to the end, XA PREPARE included. */
        *at = DRV_PREPARE_VOTE;
        c->start_due = false;
    } else if (*at == DRV_PREPARE_EXEC && XA_IS_RB(rc) && c->state == BR_ACTIVE && !c->start_due) {
        set_rbonly(c, rc, err);
    }
    free(q);
    return rc;
}

static int my_ping(drv_conn *dc, xac_err *err)
{
    my_conn *c = (my_conn *)dc;
    if (mysql_ping(c->m) != 0) {
        fail(c, DRV_STEP_EXEC, "ping", err);
        /* A failed ping always means the connection is unusable. */
        c->base.broken = true;
        if (err != NULL)
            err->code = XAC_ERMFAIL;
        return XAER_RMFAIL;
    }
    return XA_OK;
}

const drv_ops drv_mysql_ops = {
    .name = "mysql",
    .open = my_open,
    .close = my_close,
    .start = my_start,
    .end = my_end,
    .prepare = my_prepare,
    .commit = my_commit,
    .rollback = my_rollback,
    .recover = my_recover,
    .forget = my_forget,
    .exec = my_exec,
    .ping = my_ping,
    .exec_one_phase = my_exec_one_phase,
    .exec_prepare = my_exec_prepare,
    .commit_send = my_commit_send,
    .commit_recv = my_commit_recv,
};
