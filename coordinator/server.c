/* The client protocol server: the Unix and TCP listeners, a stoppable accept
 * loop, and one detached thread per session that enforces the session rules of
 * docs/protocol.md and turns requests into engine calls. The server keeps a
 * list of live sessions so that shutdown can wake idle ones and wait for all
 * of them, which rolls back whatever they still have open. */
#include "server.h"
#include "unixsock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A stuck client must not pin a session thread (and so shutdown) forever. */
#define SEND_TIMEOUT_S 30
/* An unauthenticated connection may not hold a thread for longer than this. */
#define HELLO_TIMEOUT_S 30
#define LISTEN_BACKLOG  128
/* After an error that closes the session, read and drop at most this much of
 * what the client is still sending, so that TCP does not reset the connection
 * before the client has read the ERROR frame. */
#define DRAIN_MAX (1024 * 1024)

typedef struct session session;

struct server {
    const xacd_config *cfg;
    engine *eng;
    int ufd; /* Unix listener, -1 when none */
    int tfd; /* TCP listener, -1 when none */
    int wake[2];
    atomic_bool stopping;
    bool unix_owned; /* we created the socket file: remove it on destroy */
    dev_t unix_dev;
    ino_t unix_ino;
    pthread_mutex_t mu;
    pthread_cond_t idle;
    size_t nsessions;
    session *sessions;    /* live sessions, under mu */
    uint32_t *per_client; /* open sessions per cfg->clients entry, under mu */
};

struct session {
    server *srv;
    int fd;
    char peer[128];
    int client; /* index into cfg->clients, -1 before a good HELLO */
    txn *t;
    session *prev, *next;
    xac_reader rd; /* requests: one read() takes what the client sent */
    xac_buf out;   /* the reply being sent, kept for the next one */
    size_t held;   /* bytes of out: a reply held back to go with the next */
};

/* ------------------------------------------------------------ listeners */

static int unix_listen(server *s, const char *path, xac_err *err)
{
    unixsock u;
    int rc = unixsock_listen(path, "listen.unix", 0660, LISTEN_BACKLOG, &u, err);
    if (rc != XAC_OK)
        return rc;
    s->ufd = u.fd;
    s->unix_owned = true;
    s->unix_dev = u.dev;
    s->unix_ino = u.ino;
    return XAC_OK;
}

static int tcp_listen(server *s, const char *host, int port, xac_err *err)
{
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int g = getaddrinfo(host, ports, &hints, &res);
    if (g != 0)
        return xac_err_set(err, XAC_ECONFIG, "listen.tcp %s:%d: cannot resolve %s: %s", host, port,
                           host, gai_strerror(g));
    int e = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
            e = errno;
            close(fd);
            continue;
        }
        freeaddrinfo(res);
        s->tfd = fd;
        return XAC_OK;
    }
    freeaddrinfo(res);
    return xac_err_set(err, XAC_EIO, "cannot listen on TCP %s:%d: %s (errno %d)", host, port,
                       strerror(e), e);
}

int server_create(const xacd_config *cfg, engine *e, server **out, xac_err *err)
{
    *out = NULL;
    server *s = calloc(1, sizeof *s);
    uint32_t *pc = calloc(cfg->nclients > 0 ? cfg->nclients : 1, sizeof *pc);
    if (s == NULL || pc == NULL) {
        free(s);
        free(pc);
        return xac_err_set(err, XAC_ENOMEM, "server: out of memory");
    }
    s->cfg = cfg;
    s->eng = e;
    s->ufd = s->tfd = -1;
    s->per_client = pc;
    atomic_init(&s->stopping, false);
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        int en = errno;
        free(pc);
        free(s);
        return xac_err_set(err, XAC_EIO, "server: pipe: %s (errno %d)", strerror(en), en);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    int rc = XAC_OK;
    if (cfg->unix_path[0] != '\0')
        rc = unix_listen(s, cfg->unix_path, err);
    if (rc == XAC_OK && cfg->tcp_host[0] != '\0')
        rc = tcp_listen(s, cfg->tcp_host, cfg->tcp_port, err);
    if (rc == XAC_OK && s->ufd < 0 && s->tfd < 0)
        rc = xac_err_set(err, XAC_ECONFIG,
                         "server: no listener configured (listen.unix, listen.tcp)");
    if (rc != XAC_OK) {
        server_destroy(s);
        return rc;
    }
    *out = s;
    return XAC_OK;
}

void server_stop(server *s)
{
    /* Only async-signal-safe calls: this may run in a signal handler. */
    atomic_store(&s->stopping, true);
    char b = 1;
    ssize_t w = write(s->wake[1], &b, 1);
    (void)w; /* a full pipe already holds a wake-up */
}

/* ------------------------------------------------------------- sessions */

static void describe_peer(int fd, bool is_unix, char *out, size_t cap)
{
    if (is_unix) {
        struct ucred uc;
        socklen_t l = sizeof uc;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) == 0)
            snprintf(out, cap, "unix:pid=%ld,uid=%ld", (long)uc.pid, (long)uc.uid);
        else
            snprintf(out, cap, "unix");
        return;
    }
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &l) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(out, cap, "tcp:%s:%d", host, port);
}

/* Compares in time that depends only on the configured token's length, so a
 * client cannot find the token byte by byte. */
static bool token_equal(const char *given, const char *want)
{
    size_t lg = strlen(given), lw = strlen(want);
    volatile unsigned char d = (unsigned char)(lg != lw);
    for (size_t i = 0; i < lw; i++)
        d |= (unsigned char)want[i] ^ (unsigned char)(i < lg ? given[i] : 0);
    return d == 0;
}

/* Codes 12..17 are local to libxac and never travel; a server fault is EINTERNAL. */
static uint16_t wire_code(int code)
{
    if ((code >= XAC_EPROTO && code <= XAC_EJOURNAL) || code == XAC_EINTERNAL)
        return (uint16_t)code;
    return XAC_EINTERNAL;
}

/* A reply buffer that grew for a large result is not kept. */
#define OUT_KEEP (64 * 1024)

/* Writes the replies held back, if any. */
static int flush_held(session *ss, xac_err *err)
{
    int rc = XAC_OK;
    if (ss->held > 0)
        rc = xac_write_all(ss->fd, ss->out.data, ss->held, err) == XAC_OK ? XAC_OK : XAC_ECONN;
    ss->held = 0;
    ss->out.len = 0;
    if (ss->out.cap > OUT_KEEP)
        xac_buf_free(&ss->out);
    return rc;
}

/* Encodes m after the held replies, if any, and writes them in one write.
 * While the next request is already buffered (the client pipelined), replies
 * are held back and go out with the reply of the last request it sent: the
 * client, which waits for that one anyway, reads them all with one wake-up.
 * OUT_KEEP bounds what is held. */
static int send_encoded(session *ss, const xac_msg *m, size_t limit, xac_err *err)
{
    size_t base = ss->held;
    ss->out.len = base;
    int rc = xac_msg_encode(m, &ss->out, err);
    if (rc == XAC_OK && ss->out.len - base - 4 > limit) {
        rc = xac_err_set(err, XAC_ELIMIT,
                         "the reply of %zu bytes is larger than the frame limit of %zu bytes; "
                         "the session is closed and its transaction rolled back",
                         ss->out.len - base - 4, limit);
        ss->out.len = base;
        return rc;
    }
    if (rc != XAC_OK)
        return rc;
    if (ss->out.len < OUT_KEEP && xac_reader_has_frame(&ss->rd)) {
        ss->held = ss->out.len;
        return XAC_OK;
    }
    ss->held = ss->out.len;
    return flush_held(ss, err);
}

static int send_error(session *ss, int code, const char *resource, const char *msg)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_ERROR);
    m.code = wire_code(code);
    m.resource = (char *)(resource != NULL ? resource : "");
    m.message = (char *)(msg != NULL ? msg : "");
    xac_err err;
    xac_err_clear(&err);
    int rc = send_encoded(ss, &m, SIZE_MAX, &err);
    if (rc != XAC_OK)
        xac_logd("session %s: cannot send ERROR: %s", ss->peer, err.msg);
    return rc;
}

static int send_outcome(session *ss, uint8_t outcome, const char *resource, const char *msg)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_OUTCOME);
    m.outcome = outcome;
    m.resource = (char *)(resource != NULL ? resource : "");
    m.message = (char *)(msg != NULL ? msg : "");
    xac_err err;
    xac_err_clear(&err);
    int rc = send_encoded(ss, &m, SIZE_MAX, &err);
    if (rc != XAC_OK)
        xac_logd("session %s: cannot send OUTCOME: %s", ss->peer, err.msg);
    return rc;
}

/* Sends a reply. One larger than a client accepts (the larger of max_frame
 * and the protocol default) becomes ERROR ELIMIT, which closes the session
 * and so rolls back its transaction. */
static int send_msg(session *ss, const xac_msg *m)
{
    xac_err err;
    xac_err_clear(&err);
    size_t limit = ss->srv->cfg->max_frame > XAC_FRAME_DEFAULT_MAX ? ss->srv->cfg->max_frame
                                                                   : XAC_FRAME_DEFAULT_MAX;
    int rc = send_encoded(ss, m, limit, &err);
    if (rc == XAC_ECONN) {
        xac_logd("session %s: cannot send reply: %s", ss->peer, err.msg);
    } else if (rc != XAC_OK) {
        xac_logw("session %s: %s", ss->peer, err.msg);
        send_error(ss, rc == XAC_ELIMIT ? XAC_ELIMIT : XAC_EINTERNAL, "", err.msg);
    }
    return rc;
}

/* Lets the client read the final ERROR before the connection goes away. */
static void close_after_error(session *ss)
{
    xac_err err;
    xac_err_clear(&err);
    flush_held(ss, &err);
    shutdown(ss->fd, SHUT_WR);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(ss->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[8192];
    size_t total = 0;
    while (total < DRAIN_MAX) {
        ssize_t r = read(ss->fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        total += (size_t)r;
    }
}

static bool is_request(uint8_t type)
{
    return type >= XAC_MSG_HELLO && type <= XAC_MSG_STATUS;
}

/* The result of handling one request: keep the session or close it. */
enum { KEEP = 0, CLOSE = 1 };

static int on_hello(session *ss, const xac_msg *m)
{
    server *s = ss->srv;
    const xacd_config *cfg = s->cfg;
    if (ss->client >= 0) {
        send_error(ss, XAC_EPROTO, "", "HELLO was already received in this session");
        return KEEP;
    }
    if (m->version != XAC_PROTO_VERSION) {
        char msg[128];
        snprintf(msg, sizeof msg, "protocol version %u is not supported; this server speaks %d",
                 m->version, XAC_PROTO_VERSION);
        xac_logw("session %s: %s", ss->peer, msg);
        send_error(ss, XAC_EVERSION, "", msg);
        return CLOSE;
    }
    int idx = -1;
    for (size_t i = 0; i < cfg->nclients; i++)
        if (strcmp(cfg->clients[i].name, m->client) == 0)
            idx = (int)i;
    bool ok = token_equal(m->token, idx >= 0 ? cfg->clients[idx].token : "no-such-client-token");
    if (idx < 0 || !ok) {
        xac_logw("authentication failed from %s: %s \"%.64s\"", ss->peer,
                 idx < 0 ? "unknown client" : "wrong token for client", m->client);
        send_error(ss, XAC_EAUTH, "", "authentication failed: unknown client or wrong token");
        return CLOSE;
    }
    pthread_mutex_lock(&s->mu);
    bool over = s->per_client[idx] >= cfg->max_sessions_per_client;
    if (!over)
        s->per_client[idx]++;
    pthread_mutex_unlock(&s->mu);
    if (over) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "client %s already has %u sessions, the limit (limits.max_sessions_per_client)",
                 m->client, cfg->max_sessions_per_client);
        xac_logw("session %s: %s", ss->peer, msg);
        send_error(ss, XAC_ELIMIT, "", msg);
        return CLOSE;
    }
    ss->client = idx;
    struct timeval none = {.tv_sec = 0, .tv_usec = 0};
    setsockopt(ss->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    xac_logd("session %s: client %s authenticated", ss->peer, m->client);
    xac_msg w;
    xac_msg_init(&w, XAC_MSG_WELCOME);
    w.version = XAC_PROTO_VERSION;
    w.node_id = (char *)cfg->node_id;
    w.max_frame = cfg->max_frame;
    return send_msg(ss, &w) == XAC_OK ? KEEP : CLOSE;
}

static int on_begin(session *ss, const xac_msg *m)
{
    server *s = ss->srv;
    if (ss->t != NULL) {
        send_error(ss, XAC_ESTATE, "",
                   "a transaction is already open in this session; COMMIT or ROLLBACK it first");
        return KEEP;
    }
    uint32_t timeout = m->timeout_ms == 0 ? s->cfg->tx_timeout_ms : m->timeout_ms;
    if (timeout > s->cfg->max_tx_timeout_ms)
        timeout = s->cfg->max_tx_timeout_ms;
    xac_err err;
    xac_err_clear(&err);
    int rc = engine_begin(s->eng, s->cfg->clients[ss->client].name, timeout, &ss->t, &err);
    if (rc != XAC_OK) {
        ss->t = NULL;
        send_error(ss, rc, err.resource, err.msg);
        return KEEP;
    }
    xac_msg r;
    xac_msg_init(&r, XAC_MSG_BEGUN);
    r.gtrid = (char *)engine_gtrid(ss->t);
    return send_msg(ss, &r) == XAC_OK ? KEEP : CLOSE;
}

/* Frames a pipelining client may have buffered behind an EXEC that are
 * looked at for commit_ahead (libxac sends at most 64 deferred EXECs). */
#define AHEAD_MAX 128

/* Whether the client has already sent a COMMIT (a well-formed one: no
 * payload) behind the EXEC of resource, with only EXECs between, and what
 * those name: the engine may then fold the commit's work for the branch
 * into this statement. */
static bool commit_ahead(const session *ss, const char *resource, engine_ahead *out)
{
    const char *names[AHEAD_MAX];
    size_t lens[AHEAD_MAX];
    size_t rlen = strlen(resource);
    *out = (engine_ahead){.last_on_resource = true, .other_resources = 0};
    for (size_t k = 0; k < AHEAD_MAX; k++) {
        uint8_t type;
        const uint8_t *p;
        size_t len;
        if (!xac_reader_peek(&ss->rd, k, &type, &p, &len))
            return false;
        if (type == XAC_MSG_COMMIT)
            return len == 0;
        if (type != XAC_MSG_EXEC || !xac_exec_resource(p, len, &names[k], &lens[k]))
            return false;
        if (lens[k] == rlen && memcmp(names[k], resource, rlen) == 0) {
            out->last_on_resource = false;
            continue;
        }
        bool seen = false;
        for (size_t i = 0; i < k && !seen; i++)
            seen = lens[i] == lens[k] && memcmp(names[i], names[k], lens[k]) == 0;
        if (!seen)
            out->other_resources++;
    }
    return false;
}

static int on_exec(session *ss, const xac_msg *m)
{
    server *s = ss->srv;
    if (ss->t == NULL) {
        send_error(ss, XAC_ESTATE, "", "EXEC without an open transaction; send BEGIN first");
        return KEEP;
    }
    xac_rows rows;
    xac_rows_init(&rows);
    xac_err err;
    xac_err_clear(&err);
    engine_ahead ahead;
    int rc = commit_ahead(ss, m->resource, &ahead)
                 ? engine_exec_ahead(s->eng, ss->t, m->resource, m->sql, m->sql_len, m->params,
                                     m->nparams, &ahead, &rows, &err)
                 : engine_exec(s->eng, ss->t, m->resource, m->sql, m->sql_len, m->params,
                               m->nparams, &rows, &err);
    if (rc != XAC_OK) {
        xac_rows_free(&rows);
        int sent = send_error(ss, rc, err.resource, err.msg);
        if (rc == XAC_ETIMEOUT) {
            /* The reaper rolled it back; release it so the session can BEGIN again. */
            xac_err e2;
            xac_err_clear(&e2);
            engine_rollback(s->eng, ss->t, &e2);
            ss->t = NULL;
        }
        return sent == XAC_OK ? KEEP : CLOSE;
    }
    xac_msg r;
    xac_msg_init(&r, XAC_MSG_RESULT);
    r.rows = rows;
    rc = send_msg(ss, &r);
    xac_rows_free(&rows);
    return rc == XAC_OK ? KEEP : CLOSE;
}

static int on_commit(session *ss)
{
    server *s = ss->srv;
    if (ss->t == NULL) {
        send_error(ss, XAC_ESTATE, "", "COMMIT without an open transaction");
        return KEEP;
    }
    xac_err err;
    xac_err_clear(&err);
    txn *t = ss->t;
    ss->t = NULL; /* engine_commit_ex frees it, whatever it returns */
    char end[XAC_GTRID_MAX + 1];
    int rc = engine_commit_ex(s->eng, t, end, &err);
    int sent;
    if (rc == XAC_OK)
        sent = send_outcome(ss, XAC_OUTCOME_COMMITTED, "", "");
    else if (rc == XAC_EROLLBACK || rc == XAC_ETIMEOUT)
        sent = send_outcome(ss, XAC_OUTCOME_ROLLED_BACK, err.resource, err.msg);
    else
        sent = send_error(ss, rc, err.resource, err.msg);
    /* END only after the reply: had xacd died before it, the COMMIT record
     * would still answer the client's STATUS after a restart. */
    if (end[0] != '\0')
        engine_end(s->eng, end);
    return sent == XAC_OK ? KEEP : CLOSE;
}

static int on_rollback(session *ss)
{
    server *s = ss->srv;
    if (ss->t == NULL) {
        send_error(ss, XAC_ESTATE, "", "ROLLBACK without an open transaction");
        return KEEP;
    }
    xac_err err;
    xac_err_clear(&err);
    txn *t = ss->t;
    ss->t = NULL;
    int rc = engine_rollback(s->eng, t, &err);
    if (rc != XAC_OK)
        xac_logw("session %s: rollback: %s", ss->peer, err.msg);
    return send_outcome(ss, XAC_OUTCOME_ROLLED_BACK, "", rc == XAC_OK ? "" : err.msg) == XAC_OK
               ? KEEP
               : CLOSE;
}

static int on_status(session *ss, const xac_msg *m)
{
    int state = engine_status(ss->srv->eng, m->gtrid);
    if (state < XAC_STATE_UNKNOWN || state > XAC_STATE_ROLLED_BACK)
        state = XAC_STATE_UNKNOWN;
    xac_msg r;
    xac_msg_init(&r, XAC_MSG_STATE);
    r.gtrid = m->gtrid;
    r.state = (uint8_t)state;
    return send_msg(ss, &r) == XAC_OK ? KEEP : CLOSE;
}

static int dispatch(session *ss, const xac_msg *m)
{
    if (m->type == XAC_MSG_HELLO)
        return on_hello(ss, m);
    if (ss->client < 0) {
        xac_logw("session %s: request before HELLO", ss->peer);
        send_error(ss, XAC_EAUTH, "", "the first request must be HELLO");
        return CLOSE;
    }
    switch (m->type) {
    case XAC_MSG_BEGIN:
        return on_begin(ss, m);
    case XAC_MSG_EXEC:
        return on_exec(ss, m);
    case XAC_MSG_COMMIT:
        return on_commit(ss);
    case XAC_MSG_ROLLBACK:
        return on_rollback(ss);
    case XAC_MSG_STATUS:
        return on_status(ss, m);
    default:
        send_error(ss, XAC_EPROTO, "", "not a request type");
        return CLOSE;
    }
}

/* Reads and answers requests until the client leaves or a rule closes it. */
static const char *session_loop(session *ss, char *why, size_t cap)
{
    server *s = ss->srv;
    for (;;) {
        uint8_t type;
        const uint8_t *payload = NULL;
        size_t plen = 0;
        xac_err err;
        xac_err_clear(&err);
        int rc = xac_reader_frame(&ss->rd, s->cfg->max_frame, &type, &payload, &plen, &err);
        if (rc == XAC_ECONN) {
            snprintf(why, cap, "%s", err.msg);
            break;
        }
        if (rc != XAC_OK) {
            int code = rc == XAC_ELIMIT ? XAC_ELIMIT : XAC_EPROTO;
            snprintf(why, cap, "%s: %s", code == XAC_ELIMIT ? "frame too large" : "bad frame",
                     err.msg);
            send_error(ss, code, "", err.msg);
            close_after_error(ss);
            break;
        }
        xac_msg m;
        if (!is_request(type)) {
            snprintf(err.msg, sizeof err.msg, "message type 0x%02X is not a request", type);
            rc = XAC_EPROTO;
        } else {
            rc = xac_msg_decode(type, payload, plen, &m, &err);
        }
        if (rc != XAC_OK) {
            snprintf(why, cap, "malformed request: %s", err.msg);
            send_error(ss, rc == XAC_EPROTO ? XAC_EPROTO : XAC_EINTERNAL, "", err.msg);
            close_after_error(ss);
            break;
        }
        int next = dispatch(ss, &m);
        xac_msg_free(&m);
        if (next == CLOSE) {
            snprintf(why, cap, "closed by the server after a refused request");
            close_after_error(ss);
            break;
        }
    }
    return why;
}

static void *session_main(void *arg)
{
    session *ss = arg;
    server *s = ss->srv;
    char why[XAC_ERR_MSG_MAX + 64] = "";
    xac_logd("session %s: connected", ss->peer);
    session_loop(ss, why, sizeof why);
    xac_err ferr;
    xac_err_clear(&ferr);
    flush_held(ss, &ferr);
    if (ss->t != NULL) {
        xac_err err;
        xac_err_clear(&err);
        xac_logi("session %s closed with transaction %s open: rolling it back", ss->peer,
                 engine_gtrid(ss->t));
        if (engine_rollback(s->eng, ss->t, &err) != XAC_OK)
            xac_logw("session %s: rollback: %s", ss->peer, err.msg);
        ss->t = NULL;
    }
    xac_logd("session %s: disconnected (%s)", ss->peer, why);
    pthread_mutex_lock(&s->mu);
    if (ss->client >= 0)
        s->per_client[ss->client]--;
    if (ss->prev != NULL)
        ss->prev->next = ss->next;
    else
        s->sessions = ss->next;
    if (ss->next != NULL)
        ss->next->prev = ss->prev;
    close(ss->fd);
    s->nsessions--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    xac_reader_free(&ss->rd);
    xac_buf_free(&ss->out);
    free(ss);
    return NULL;
}

static void start_session(server *s, int fd, bool is_unix)
{
    struct timeval tv = {.tv_sec = SEND_TIMEOUT_S, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct timeval hello = {.tv_sec = HELLO_TIMEOUT_S, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &hello, sizeof hello);
    session *ss = calloc(1, sizeof *ss);
    if (ss == NULL) {
        xac_loge("out of memory for a new session; connection closed");
        close(fd);
        return;
    }
    ss->srv = s;
    ss->fd = fd;
    ss->client = -1;
    xac_reader_init(&ss->rd, fd);
    xac_buf_init(&ss->out);
    describe_peer(fd, is_unix, ss->peer, sizeof ss->peer);

    pthread_mutex_lock(&s->mu);
    ss->next = s->sessions;
    if (s->sessions != NULL)
        s->sessions->prev = ss;
    s->sessions = ss;
    s->nsessions++;
    pthread_mutex_unlock(&s->mu);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    int rc = pthread_create(&tid, &attr, session_main, ss);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        xac_loge("cannot start a session thread for %s: %s; connection closed", ss->peer,
                 strerror(rc));
        pthread_mutex_lock(&s->mu);
        if (ss->prev != NULL)
            ss->prev->next = ss->next;
        else
            s->sessions = ss->next;
        if (ss->next != NULL)
            ss->next->prev = ss->prev;
        s->nsessions--;
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->mu);
        close(fd);
        free(ss);
    }
}

/* ---------------------------------------------------------- accept loop */

int server_run(server *s, xac_err *err)
{
    struct pollfd p[3];
    bool backoff = false;
    while (!atomic_load(&s->stopping)) {
        nfds_t n = 0;
        p[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        if (!backoff) {
            if (s->ufd >= 0)
                p[n++] = (struct pollfd){.fd = s->ufd, .events = POLLIN};
            if (s->tfd >= 0)
                p[n++] = (struct pollfd){.fd = s->tfd, .events = POLLIN};
        }
        /* Out of descriptors: pause accepting a little instead of spinning. */
        int r = poll(p, n, backoff ? 100 : -1);
        backoff = false;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return xac_err_set(err, XAC_EIO, "server: poll: %s (errno %d)", strerror(errno), errno);
        if (p[0].revents != 0) {
            char buf[64];
            while (read(s->wake[0], buf, sizeof buf) > 0) {
            }
        }
        for (nfds_t i = 1; i < n && !atomic_load(&s->stopping); i++) {
            if ((p[i].revents & POLLIN) == 0)
                continue;
            int fd = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                start_session(s, fd, p[i].fd == s->ufd);
                continue;
            }
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                xac_logw("accept: %s (errno %d); pausing new connections", strerror(e), e);
                backoff = true;
                continue;
            }
            return xac_err_set(err, XAC_EIO, "server: accept: %s (errno %d)", strerror(e), e);
        }
    }
    return XAC_OK;
}

void server_destroy(server *s)
{
    if (s == NULL)
        return;
    if (s->ufd >= 0)
        close(s->ufd);
    if (s->tfd >= 0)
        close(s->tfd);
    s->ufd = s->tfd = -1;
    pthread_mutex_lock(&s->mu);
    if (s->nsessions > 0)
        xac_logi("waiting for %zu session(s) to end", s->nsessions);
    /* Wake sessions blocked on a read; one inside a commit finishes first and
     * still sends its reply, since only the read side is shut. */
    for (session *ss = s->sessions; ss != NULL; ss = ss->next)
        shutdown(ss->fd, SHUT_RD);
    while (s->nsessions > 0)
        pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->unix_owned) {
        struct stat st;
        /* Remove the socket only if it is still ours, not a successor's. */
        if (lstat(s->cfg->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
            st.st_ino == s->unix_ino)
            unlink(s->cfg->unix_path);
    }
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    free(s->per_client);
    free(s);
}
