/* libxac: the client side of the xac protocol (docs/protocol.md) on top of
 * common's wire codec. One blocking socket per connection, one request and one
 * reply at a time, except that a deferred BEGIN and deferred EXECs travel in
 * the same write as the request behind them (xacd answers pipelined requests
 * in order). The library keeps no global state, never prints and never raises
 * SIGPIPE; every failure comes back as a code plus an xac_error. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "xac_common.h"
#include "xac.h"

/* Deferred EXECs are sent once this many are waiting, whatever comes next. */
#define PEND_MAX_EXECS 64
#define PEND_MAX_BYTES (32 * 1024)

/* Defined in result.c. */
__attribute__((visibility("hidden"))) xac_result *xac_result_adopt(xac_rows *rows);

struct xac_conn {
    int fd;             /* -1 once the connection is known to be unusable */
    char *addr;         /* for messages */
    char *node_id;      /* from WELCOME */
    uint32_t max_frame; /* the server's limit on what we send */
    uint32_t recv_max;  /* our limit on what we read */
    char broken[256];   /* why fd is -1, for later calls */
    xac_tx *tx;         /* the open transaction, if any */
    xac_buf out;
    xac_reader in; /* replies: one read() per reply, not three */
};

struct xac_tx {
    xac_conn *c;
    char gtrid[XAC_GTRID_MAX + 1]; /* "" while the BEGIN is deferred */
    /* XAC_BEGIN_DEFER: BEGIN not sent yet; it goes out with the first
     * request, so a transaction costs one round trip less. */
    bool deferred;
    uint32_t timeout_ms; /* for the deferred BEGIN */
    /* XAC_EXEC_DEFER: encoded EXECs not sent yet; they go out before the
     * next request, in the same write. */
    xac_buf pend;
    unsigned npend;
    /* The server already ended the transaction (EXEC got ETIMEOUT): commit
     * answers with this rollback without asking, rollback just succeeds. */
    bool ended;
    xac_error end_err;
};

/* ------------------------------------------------------------- errors */

static void err_clear(xac_error *e)
{
    if (e == NULL)
        return;
    e->code = XAC_OK;
    e->resource[0] = '\0';
    e->msg[0] = '\0';
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (src == NULL)
        src = "";
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

__attribute__((format(printf, 4, 5))) static int fail(xac_error *e, int code, const char *resource,
                                                      const char *fmt, ...)
{
    if (e == NULL)
        return code;
    e->code = code;
    copy_str(e->resource, sizeof e->resource, resource);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

static int from_err(xac_error *e, const xac_err *ce)
{
    int code = ce->code != XAC_OK ? ce->code : XAC_EINTERNAL;
    return fail(e, code, ce->resource, "%s", ce->msg);
}

static const char *errtext(int errnum, char *buf, size_t cap)
{
    /* GNU strerror_r: _GNU_SOURCE is set for the whole build. */
    return strerror_r(errnum, buf, cap);
}

/* ---------------------------------------------------------- transport */

static void conn_break(xac_conn *c, const char *why)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    copy_str(c->broken, sizeof c->broken, why);
}

static int check_usable(xac_conn *c, xac_error *e)
{
    if (c->fd >= 0)
        return XAC_OK;
    return fail(e, XAC_ECONN, NULL, "connection to xacd at %s is closed (%s); open a new one",
                c->addr, c->broken);
}

/* send() with MSG_NOSIGNAL so that a closed peer gives EPIPE, never SIGPIPE. */
static int send_all(xac_conn *c, const uint8_t *p, size_t n, xac_error *e)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            char buf[128];
            const char *why = w < 0 ? errtext(errno, buf, sizeof buf) : "short write";
            fail(e, XAC_ECONN, NULL, "cannot send to xacd at %s: %s", c->addr, why);
            conn_break(c, e != NULL ? e->msg : "send failed");
            return XAC_ECONN;
        }
        p += w;
        n -= (size_t)w;
    }
    return XAC_OK;
}

/* Appends req's frame to b, refusing one over xacd's frame limit. */
static int encode_request(xac_conn *c, const xac_msg *req, xac_buf *b, xac_error *e)
{
    xac_err ce;
    xac_err_clear(&ce);
    size_t at = b->len;
    if (xac_msg_encode(req, b, &ce) != XAC_OK)
        return from_err(e, &ce);
    size_t body = b->len - at >= 4 ? b->len - at - 4 : 0;
    if (body > c->max_frame) {
        b->len = at;
        return fail(e, XAC_ELIMIT, req->resource,
                    "request of %zu bytes exceeds xacd's frame limit of %u bytes "
                    "(limits.max_frame); nothing was sent",
                    body, (unsigned)c->max_frame);
    }
    return XAC_OK;
}

/* Sends req (when not NULL) after first (when not NULL) and the encoded
 * frames in pre (when not NULL), all in one write, so that xacd finds them
 * in one read. Nothing is sent when a frame is over the limit. */
static int send_requests(xac_conn *c, const xac_msg *first, const xac_buf *pre, const xac_msg *req,
                         xac_error *e)
{
    xac_err ce;
    xac_err_clear(&ce);
    int rc = check_usable(c, e);
    if (rc != XAC_OK)
        return rc;
    c->out.len = 0;
    if (first != NULL && (rc = encode_request(c, first, &c->out, e)) != XAC_OK)
        return rc;
    if (pre != NULL && pre->len > 0 && xac_buf_put(&c->out, pre->data, pre->len, &ce) != XAC_OK)
        return from_err(e, &ce);
    if (req != NULL && (rc = encode_request(c, req, &c->out, e)) != XAC_OK)
        return rc;
    return send_all(c, c->out.data, c->out.len, e);
}

/* Reads one reply into *reply. ERROR replies are decoded like any other;
 * callers map them. */
static int read_reply(xac_conn *c, xac_msg *reply, xac_error *e)
{
    xac_err ce;
    xac_err_clear(&ce);
    int rc;
    uint8_t type = 0;
    const uint8_t *payload = NULL;
    size_t plen = 0;
    c->in.fd = c->fd;
    rc = xac_reader_frame(&c->in, c->recv_max, &type, &payload, &plen, &ce);
    if (rc != XAC_OK) {
        if (rc == XAC_ELIMIT) {
            fail(e, XAC_ELIMIT, NULL,
                 "reply from xacd at %s exceeds the client's frame limit of %u bytes (%s); "
                 "connection closed",
                 c->addr, (unsigned)c->recv_max, ce.msg);
        } else if (rc == XAC_EPROTO) {
            fail(e, XAC_EPROTO, NULL, "malformed frame from xacd at %s: %s; connection closed",
                 c->addr, ce.msg);
        } else {
            rc = XAC_ECONN;
            fail(e, XAC_ECONN, NULL, "connection to xacd at %s lost: %s", c->addr, ce.msg);
        }
        conn_break(c, e != NULL ? e->msg : "read failed");
        return rc;
    }
    xac_msg_init(reply, type);
    rc = xac_msg_decode(type, payload, plen, reply, &ce);
    if (rc != XAC_OK) {
        fail(e, XAC_EPROTO, NULL, "malformed reply from xacd at %s: %s; connection closed", c->addr,
             ce.msg);
        conn_break(c, e != NULL ? e->msg : "malformed reply");
        xac_msg_init(reply, type);
        return XAC_EPROTO;
    }
    return XAC_OK;
}

/* Sends one request and reads one reply into *reply. */
static int roundtrip(xac_conn *c, const xac_msg *req, xac_msg *reply, xac_error *e)
{
    int rc = send_requests(c, NULL, NULL, req, e);
    return rc != XAC_OK ? rc : read_reply(c, reply, e);
}

/* Maps an ERROR reply into *e. Codes after which xacd closes the session
 * also close our side, so later calls say why. */
static int map_error(xac_conn *c, const xac_msg *m, xac_error *e)
{
    int code = m->code;
    if (code == XAC_OK) {
        fail(e, XAC_EPROTO, NULL, "xacd sent an ERROR frame with code 0: %s",
             m->message != NULL ? m->message : "");
        conn_break(c, "protocol error");
        return XAC_EPROTO;
    }
    fail(e, code, m->resource, "%s", m->message != NULL ? m->message : "");
    /* An ELIMIT that names a resource is a transaction's limit (too many
     * resources, a second last resource): the session stays open. */
    bool txn_limit = code == XAC_ELIMIT && m->resource != NULL && m->resource[0] != '\0';
    if (code == XAC_EPROTO || code == XAC_EVERSION || code == XAC_EAUTH ||
        (code == XAC_ELIMIT && !txn_limit)) {
        char why[256];
        snprintf(why, sizeof why, "xacd closed the session after %s", xac_strerror(code));
        conn_break(c, why);
    }
    return code;
}

/* A reply of a type that does not answer the request desynchronises the
 * session: close it. */
static int unexpected(xac_conn *c, const xac_msg *m, const char *request, xac_error *e)
{
    fail(e, XAC_EPROTO, NULL, "xacd at %s answered %s with frame type 0x%02x; connection closed",
         c->addr, request, m->type);
    conn_break(c, "unexpected reply");
    return XAC_EPROTO;
}

/* ------------------------------------------------------------ connect */

static int parse_port(const char *s)
{
    if (*s == '\0')
        return -1;
    long v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return -1;
    }
    return v >= 1 ? (int)v : -1;
}

static int connect_unix(const char *path, const char *addr, int *fd_out, xac_error *e)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0)
        return fail(e, XAC_EINVAL, NULL, "xacd address '%s' has an empty socket path", addr);
    if (n >= sizeof sa.sun_path)
        return fail(e, XAC_EINVAL, NULL,
                    "xacd socket path '%s' is too long (%zu bytes, at most %zu)", path, n,
                    sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char buf[128];
    if (fd < 0)
        return fail(e, XAC_EIO, NULL, "cannot create a Unix socket: %s",
                    errtext(errno, buf, sizeof buf));
    int rc;
    do
        rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int en = errno;
        close(fd);
        return fail(e, XAC_ECONN, NULL, "cannot connect to xacd at unix:%s: %s", path,
                    errtext(en, buf, sizeof buf));
    }
    *fd_out = fd;
    return XAC_OK;
}

static int connect_tcp(const char *hostport, const char *addr, int *fd_out, xac_error *e)
{
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport)
        return fail(e, XAC_EINVAL, NULL,
                    "xacd address '%s' is not tcp:HOST:PORT (e.g. tcp:127.0.0.1:7411)", addr);
    char host[256];
    size_t hl = (size_t)(colon - hostport);
    const char *h = hostport;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [IPv6]:port */
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof host)
        return fail(e, XAC_EINVAL, NULL, "xacd address '%s' has a bad host part", addr);
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (parse_port(colon + 1) < 0)
        return fail(e, XAC_EINVAL, NULL, "xacd address '%s' has a bad port '%s' (1-65535)", addr,
                    colon + 1);

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai != 0)
        return fail(e, XAC_ECONN, NULL, "cannot resolve xacd host '%s': %s", host,
                    gai_strerror(gai));
    int last = 0, fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int rc;
        do
            rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        while (rc < 0 && errno == EINTR);
        if (rc == 0)
            break;
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        char buf[128];
        return fail(e, XAC_ECONN, NULL, "cannot connect to xacd at %s: %s", addr,
                    errtext(last, buf, sizeof buf));
    }
    /* Requests and replies alternate in small frames: Nagle only adds delay. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fd_out = fd;
    return XAC_OK;
}

static void conn_free(xac_conn *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    if (c->tx != NULL)
        xac_buf_free(&c->tx->pend);
    free(c->tx);
    free(c->addr);
    free(c->node_id);
    xac_buf_free(&c->out);
    xac_reader_free(&c->in);
    free(c);
}

int xac_connect(const char *addr, const char *client, const char *token, xac_conn **out,
                xac_error *err)
{
    err_clear(err);
    if (out == NULL)
        return fail(err, XAC_EINVAL, NULL, "xac_connect: out is NULL");
    *out = NULL;
    if (addr == NULL || *addr == '\0')
        return fail(err, XAC_EINVAL, NULL, "xac_connect: no xacd address given");
    if (client == NULL || *client == '\0')
        return fail(err, XAC_EINVAL, NULL, "xac_connect: no client name given");
    if (token == NULL)
        token = "";

    xac_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->addr = strdup(addr)) == NULL) {
        free(c);
        return fail(err, XAC_ENOMEM, NULL, "out of memory connecting to xacd");
    }
    c->fd = -1;
    c->max_frame = XAC_FRAME_DEFAULT_MAX;
    c->recv_max = XAC_FRAME_DEFAULT_MAX;
    xac_buf_init(&c->out);
    xac_reader_init(&c->in, -1);
    copy_str(c->broken, sizeof c->broken, "not connected");

    int rc;
    if (strncmp(addr, "unix:", 5) == 0)
        rc = connect_unix(addr + 5, addr, &c->fd, err);
    else if (strncmp(addr, "tcp:", 4) == 0)
        rc = connect_tcp(addr + 4, addr, &c->fd, err);
    else
        rc = connect_unix(addr, addr, &c->fd, err);
    if (rc != XAC_OK) {
        conn_free(c);
        return rc;
    }

    xac_msg req, rep;
    xac_msg_init(&req, XAC_MSG_HELLO);
    req.version = XAC_PROTO_VERSION;
    req.client = (char *)client;
    req.token = (char *)token;
    rc = roundtrip(c, &req, &rep, err);
    if (rc != XAC_OK) {
        conn_free(c);
        return rc;
    }
    if (rep.type == XAC_MSG_ERROR) {
        rc = map_error(c, &rep, err);
    } else if (rep.type != XAC_MSG_WELCOME) {
        rc = unexpected(c, &rep, "HELLO", err);
    } else if (rep.version != XAC_PROTO_VERSION) {
        rc = fail(err, XAC_EVERSION, NULL, "xacd at %s speaks protocol version %u, libxac %d", addr,
                  (unsigned)rep.version, XAC_PROTO_VERSION);
    } else if (rep.max_frame == 0) {
        rc = fail(err, XAC_EPROTO, NULL, "xacd at %s announced a frame limit of 0", addr);
    } else if ((c->node_id = strdup(rep.node_id != NULL ? rep.node_id : "")) == NULL) {
        rc = fail(err, XAC_ENOMEM, NULL, "out of memory connecting to xacd");
    } else {
        c->max_frame = rep.max_frame;
        /* Replies may carry large row sets; never accept less than the
         * protocol's default even if the server's own limit is lower. */
        c->recv_max = rep.max_frame > XAC_FRAME_DEFAULT_MAX ? rep.max_frame : XAC_FRAME_DEFAULT_MAX;
    }
    xac_msg_free(&rep);
    if (rc != XAC_OK) {
        conn_free(c);
        return rc;
    }
    *out = c;
    return XAC_OK;
}

void xac_close(xac_conn *c)
{
    conn_free(c);
}

const char *xac_node_id(const xac_conn *c)
{
    return (c != NULL && c->node_id != NULL) ? c->node_id : "";
}

/* -------------------------------------------------------- transactions */

/* Checks BEGIN's reply; on success the gtrid is in rep->gtrid. */
static int check_begun(xac_conn *c, const xac_msg *rep, xac_error *e)
{
    if (rep->type == XAC_MSG_ERROR)
        return map_error(c, rep, e);
    if (rep->type != XAC_MSG_BEGUN)
        return unexpected(c, rep, "BEGIN", e);
    if (rep->gtrid == NULL || !(*rep->gtrid != '\0' && strlen(rep->gtrid) <= XAC_GTRID_MAX)) {
        fail(e, XAC_EPROTO, NULL, "xacd at %s sent an empty or over-long gtrid", c->addr);
        conn_break(c, "bad gtrid");
        return XAC_EPROTO;
    }
    return XAC_OK;
}

int xac_begin(xac_conn *c, uint32_t timeout_ms, xac_tx **out, xac_error *err)
{
    return xac_begin_ex(c, timeout_ms, 0, out, err);
}

int xac_begin_ex(xac_conn *c, uint32_t timeout_ms, unsigned flags, xac_tx **out, xac_error *err)
{
    err_clear(err);
    if (out == NULL || c == NULL)
        return fail(err, XAC_EINVAL, NULL, "xac_begin: connection or out is NULL");
    *out = NULL;
    if ((flags & ~(unsigned)XAC_BEGIN_DEFER) != 0)
        return fail(err, XAC_EINVAL, NULL, "xac_begin_ex: unknown flags 0x%x",
                    flags & ~(unsigned)XAC_BEGIN_DEFER);
    if (c->tx != NULL && c->tx->gtrid[0] == '\0')
        return fail(err, XAC_ESTATE, NULL,
                    "a transaction (no gtrid yet: its BEGIN was deferred) is still open on this "
                    "connection; commit or roll it back first");
    if (c->tx != NULL)
        return fail(err, XAC_ESTATE, NULL,
                    "transaction %s is still open on this connection; commit or roll it back "
                    "first",
                    c->tx->gtrid);
    if (flags & XAC_BEGIN_DEFER) {
        /* A dead connection is reported now, as a BEGIN sent at once would. */
        int rc = check_usable(c, err);
        if (rc != XAC_OK)
            return rc;
        xac_tx *tx = calloc(1, sizeof *tx);
        if (tx == NULL)
            return fail(err, XAC_ENOMEM, NULL, "out of memory beginning a transaction");
        tx->c = c;
        tx->deferred = true;
        tx->timeout_ms = timeout_ms;
        c->tx = tx;
        *out = tx;
        return XAC_OK;
    }
    xac_msg req, rep;
    xac_msg_init(&req, XAC_MSG_BEGIN);
    req.timeout_ms = timeout_ms;
    int rc = roundtrip(c, &req, &rep, err);
    if (rc != XAC_OK)
        return rc;
    rc = check_begun(c, &rep, err);
    if (rc == XAC_OK) {
        xac_tx *tx = calloc(1, sizeof *tx);
        if (tx == NULL) {
            /* xacd has the transaction open; closing rolls it back. */
            conn_break(c, "out of memory");
            rc = fail(err, XAC_ENOMEM, NULL, "out of memory beginning a transaction");
        } else {
            tx->c = c;
            copy_str(tx->gtrid, sizeof tx->gtrid, rep.gtrid);
            c->tx = tx;
            *out = tx;
        }
    }
    xac_msg_free(&rep);
    return rc;
}

/* Reads the deferred BEGIN's reply. When the BEGIN failed, the transaction
 * has ended and nothing ran: its error is the result. */
static int read_begun(xac_tx *tx, xac_error *e)
{
    xac_conn *c = tx->c;
    xac_msg b;
    int rc = read_reply(c, &b, e);
    if (rc != XAC_OK)
        return rc;
    xac_error be;
    err_clear(&be);
    rc = check_begun(c, &b, &be);
    if (rc == XAC_OK)
        copy_str(tx->gtrid, sizeof tx->gtrid, b.gtrid);
    xac_msg_free(&b);
    if (rc == XAC_OK)
        return XAC_OK;
    if (e != NULL)
        *e = be;
    tx->ended = true;
    fail(&tx->end_err, rc, be.resource, "its BEGIN failed: %s", be.msg);
    return rc;
}

/* Reads and drops n replies, so that the next reply read is the next
 * request's; stops when xacd closes the session. */
static void drop_replies(xac_conn *c, unsigned n)
{
    for (unsigned i = 0; i < n && c->fd >= 0; i++) {
        xac_msg drop;
        xac_error ignored;
        if (read_reply(c, &drop, &ignored) != XAC_OK)
            return;
        if (drop.type == XAC_MSG_ERROR)
            map_error(c, &drop, &ignored); /* closes our side if xacd closes */
        xac_msg_free(&drop);
    }
}

/* Reads a deferred EXEC's reply and drops its result. The first ERROR is
 * kept in *first; a timeout also ends the transaction (xacd rolled it back). */
static int read_deferred(xac_tx *tx, xac_error *first, xac_error *e)
{
    xac_conn *c = tx->c;
    xac_msg r;
    int rc = read_reply(c, &r, e);
    if (rc != XAC_OK)
        return rc;
    if (r.type == XAC_MSG_ERROR) {
        xac_error fe;
        int code = map_error(c, &r, &fe);
        if (first->code == XAC_OK)
            *first = fe;
        if (code == XAC_ETIMEOUT && !tx->ended) {
            tx->ended = true;
            tx->end_err = fe;
        }
    } else if (r.type != XAC_MSG_RESULT) {
        rc = unexpected(c, &r, "EXEC", e);
    }
    xac_msg_free(&r);
    return rc;
}

/* Sends req (NULL: only what is deferred) behind the deferred BEGIN and
 * EXECs in one write, reads their replies in order, then req's into *rep.
 * - A failed deferred BEGIN is the result: nothing ran, and the replies
 *   behind it (ERROR ESTATE: xacd had no transaction) are dropped.
 * - Deferred EXECs' results are dropped. With req NULL the first ERROR among
 *   them is the result; otherwise req's reply tells, since a failed EXEC
 *   makes the transaction rollback-only (a later EXEC gets EROLLBACK with its
 *   message, COMMIT rolls back).
 * - A deferred EXEC that timed out ended the transaction: req's reply (ERROR
 *   ESTATE) is dropped and the timeout is the result.
 * - After an ERROR that closes the session xacd sends nothing more. */
static int tx_roundtrip(xac_tx *tx, const xac_msg *req, xac_msg *rep, xac_error *e)
{
    xac_conn *c = tx->c;
    if (!tx->deferred && tx->npend == 0)
        return req != NULL ? roundtrip(c, req, rep, e) : XAC_OK;
    bool begin = tx->deferred;
    unsigned nexec = tx->npend;
    xac_msg bm;
    xac_msg_init(&bm, XAC_MSG_BEGIN);
    bm.timeout_ms = tx->timeout_ms;
    int rc = send_requests(c, begin ? &bm : NULL, &tx->pend, req, e);
    if (rc != XAC_OK && c->fd >= 0)
        return rc; /* nothing was sent: all of it is still deferred */
    tx->deferred = false;
    tx->npend = 0;
    tx->pend.len = 0;
    if (rc != XAC_OK)
        return rc;
    if (begin && (rc = read_begun(tx, e)) != XAC_OK) {
        if (c->fd >= 0)
            drop_replies(c, nexec + (req != NULL ? 1u : 0u));
        return rc;
    }
    xac_error first;
    err_clear(&first);
    for (unsigned i = 0; i < nexec; i++) {
        if ((rc = read_deferred(tx, &first, e)) != XAC_OK)
            return rc;
        if (c->fd < 0) { /* that ERROR closed the session */
            if (e != NULL)
                *e = first;
            return first.code;
        }
    }
    if (req == NULL) {
        if (first.code != XAC_OK && e != NULL)
            *e = first;
        return first.code;
    }
    if ((rc = read_reply(c, rep, e)) != XAC_OK)
        return rc;
    if (nexec > 0 && tx->ended) {
        xac_msg_free(rep);
        if (e != NULL)
            *e = tx->end_err;
        return tx->end_err.code;
    }
    return XAC_OK;
}

const char *xac_tx_gtrid(const xac_tx *tx)
{
    return tx != NULL ? tx->gtrid : "";
}

/* For messages: " GTRID", or "" while the transaction has none. */
static const char *gtrid_sp(const xac_tx *tx, char *buf, size_t cap)
{
    if (tx->gtrid[0] == '\0')
        return "";
    snprintf(buf, cap, " %s", tx->gtrid);
    return buf;
}

int xac_exec(xac_tx *tx, const char *resource, const char *sql, const xac_param *params,
             size_t nparams, xac_result **out, xac_error *err)
{
    return xac_exec_ex(tx, resource, sql, params, nparams, 0, out, err);
}

int xac_exec_ex(xac_tx *tx, const char *resource, const char *sql, const xac_param *params,
                size_t nparams, unsigned flags, xac_result **out, xac_error *err)
{
    err_clear(err);
    if (out != NULL)
        *out = NULL;
    if (tx == NULL)
        return fail(err, XAC_EINVAL, NULL, "xac_exec: no transaction");
    if ((flags & ~(unsigned)XAC_EXEC_DEFER) != 0)
        return fail(err, XAC_EINVAL, resource, "xac_exec_ex: unknown flags 0x%x",
                    flags & ~(unsigned)XAC_EXEC_DEFER);
    bool defer = (flags & XAC_EXEC_DEFER) != 0;
    if (defer && out != NULL)
        return fail(err, XAC_EINVAL, resource,
                    "xac_exec_ex: a deferred EXEC returns no result; pass out = NULL");
    if (resource == NULL || !xac_valid_name(resource, XAC_RESOURCE_MAX))
        return fail(err, XAC_EINVAL, resource,
                    "xac_exec: '%s' is not a resource name ([A-Za-z0-9_-], 1 to %d characters)",
                    resource != NULL ? resource : "(null)", XAC_RESOURCE_MAX);
    if (sql == NULL || *sql == '\0')
        return fail(err, XAC_EINVAL, resource, "xac_exec: empty SQL");
    if (nparams > UINT16_MAX)
        return fail(err, XAC_EINVAL, resource, "xac_exec: %zu parameters, at most %u", nparams,
                    (unsigned)UINT16_MAX);
    if (nparams > 0 && params == NULL)
        return fail(err, XAC_EINVAL, resource, "xac_exec: %zu parameters but params is NULL",
                    nparams);
    if (tx->ended) {
        char g[XAC_GTRID_MAX + 2];
        return fail(err, XAC_EROLLBACK, tx->end_err.resource, "transaction%s already ended: %s",
                    gtrid_sp(tx, g, sizeof g), tx->end_err.msg);
    }

    xac_value *vals = NULL;
    if (nparams > 0) {
        vals = calloc(nparams, sizeof *vals);
        if (vals == NULL)
            return fail(err, XAC_ENOMEM, resource, "out of memory binding %zu parameters", nparams);
    }
    for (size_t i = 0; i < nparams; i++) {
        const xac_param *p = &params[i];
        switch (p->type) {
        case XAC_T_NULL:
        case XAC_T_INT:
        case XAC_T_DOUBLE:
            break;
        case XAC_T_TEXT:
        case XAC_T_BLOB:
            if (p->s == NULL && p->len > 0) {
                free(vals);
                return fail(err, XAC_EINVAL, resource,
                            "xac_exec: parameter %zu has a NULL pointer and length %zu", i + 1,
                            p->len);
            }
            break;
        default:
            free(vals);
            return fail(err, XAC_EINVAL, resource, "xac_exec: parameter %zu has unknown type %d",
                        i + 1, p->type);
        }
        vals[i].type = (xac_type)p->type;
        vals[i].i = p->i;
        vals[i].d = p->d;
        vals[i].s = p->s != NULL ? p->s : "";
        vals[i].len = p->len;
    }

    xac_msg req, rep;
    xac_msg_init(&req, XAC_MSG_EXEC);
    req.resource = (char *)resource;
    req.sql = (char *)sql;
    req.sql_len = strlen(sql);
    req.params = vals;
    req.nparams = (uint16_t)nparams;
    if (defer) {
        /* A dead connection is reported now, as an EXEC sent at once would. */
        int rc = check_usable(tx->c, err);
        if (rc == XAC_OK && (rc = encode_request(tx->c, &req, &tx->pend, err)) == XAC_OK)
            tx->npend++;
        free(vals);
        /* Bounded, so that neither side's socket buffer fills while the
         * other waits: a long run of deferred EXECs is sent in parts. */
        if (rc == XAC_OK && (tx->pend.len >= PEND_MAX_BYTES || tx->npend >= PEND_MAX_EXECS))
            rc = tx_roundtrip(tx, NULL, NULL, err);
        return rc;
    }
    int rc = tx_roundtrip(tx, &req, &rep, err);
    free(vals);
    if (rc != XAC_OK)
        return rc;
    if (rep.type == XAC_MSG_ERROR) {
        rc = map_error(tx->c, &rep, err);
        if (rc == XAC_ETIMEOUT) {
            tx->ended = true;
            fail(&tx->end_err, XAC_ETIMEOUT, rep.resource, "%s",
                 rep.message != NULL ? rep.message : "timed out");
        }
    } else if (rep.type != XAC_MSG_RESULT) {
        rc = unexpected(tx->c, &rep, "EXEC", err);
    } else if (out != NULL) {
        *out = xac_result_adopt(&rep.rows);
        if (*out == NULL)
            rc = fail(err, XAC_ENOMEM, resource,
                      "out of memory keeping the result; the statement itself ran");
    }
    xac_msg_free(&rep);
    return rc;
}

static void tx_end(xac_tx *tx)
{
    if (tx->c != NULL && tx->c->tx == tx)
        tx->c->tx = NULL;
    xac_buf_free(&tx->pend);
    free(tx);
}

/* COMMIT or ROLLBACK: both end the transaction whatever the reply. */
static int finish(xac_tx *tx, bool commit, xac_error *err)
{
    xac_conn *c = tx->c;
    char gtrid[XAC_GTRID_MAX + 1];
    copy_str(gtrid, sizeof gtrid, tx->gtrid);
    if (tx->deferred && c->fd < 0) {
        tx_end(tx);
        return fail(err, XAC_ECONN, NULL,
                    "connection to xacd at %s was lost before the transaction's deferred BEGIN "
                    "was sent (%s); nothing ran",
                    c->addr, c->broken);
    }
    if (tx->ended) {
        int rc = XAC_OK;
        if (commit)
            rc = fail(err, XAC_EROLLBACK, tx->end_err.resource, "%s", tx->end_err.msg);
        tx_end(tx);
        return rc;
    }
    if (c->fd < 0) {
        tx_end(tx);
        if (commit)
            return fail(err, XAC_ECONN, NULL,
                        "connection to xacd at %s was lost before COMMIT of %s was sent (%s); "
                        "xacd rolls back the transactions of a closed session: check with "
                        "xac_status",
                        c->addr, gtrid, c->broken);
        return fail(err, XAC_ECONN, NULL,
                    "connection to xacd at %s was lost (%s); xacd rolls back %s as its session "
                    "closed",
                    c->addr, c->broken, gtrid);
    }

    xac_msg req, rep;
    xac_msg_init(&req, commit ? XAC_MSG_COMMIT : XAC_MSG_ROLLBACK);
    if (!commit) { /* deferred EXECs never sent never ran: nothing to undo */
        tx->pend.len = 0;
        tx->npend = 0;
    }
    bool deferred = tx->deferred;
    int rc = tx_roundtrip(tx, &req, &rep, err);
    bool begin_failed = deferred && tx->ended && tx->gtrid[0] == '\0';
    copy_str(gtrid, sizeof gtrid, tx->gtrid);
    tx_end(tx);
    if (begin_failed)
        return rc; /* BEGIN's own error: the transaction never existed */
    /* A deferred EXEC timed out: xacd has rolled the transaction back. Only
     * a COMMIT gets here with it, since a ROLLBACK sends no deferred EXEC. */
    if (rc == XAC_ETIMEOUT) {
        if (err != NULL)
            err->code = XAC_EROLLBACK;
        return XAC_EROLLBACK;
    }
    if (rc != XAC_OK) {
        if (rc == XAC_ECONN && err != NULL && commit) {
            char m[sizeof err->msg];
            copy_str(m, sizeof m, err->msg);
            fail(err, XAC_ECONN, NULL,
                 "%s; the outcome of %s is unknown (ask xac_status on a new connection)", m,
                 gtrid[0] != '\0' ? gtrid : "the transaction (its gtrid never arrived)");
        }
        return rc;
    }
    if (rep.type == XAC_MSG_ERROR) {
        rc = map_error(c, &rep, err);
        /* A timed-out transaction is rolled back: that outcome is known. */
        if (rc == XAC_ETIMEOUT && commit)
            rc = fail(err, XAC_EROLLBACK, rep.resource, "%s", rep.message);
    } else if (rep.type != XAC_MSG_OUTCOME) {
        rc = unexpected(c, &rep, commit ? "COMMIT" : "ROLLBACK", err);
    } else if (rep.outcome == XAC_OUTCOME_COMMITTED) {
        rc = commit ? XAC_OK
                    : fail(err, XAC_EPROTO, NULL,
                           "xacd at %s answered ROLLBACK of %s with \"committed\"", c->addr, gtrid);
    } else if (rep.outcome == XAC_OUTCOME_ROLLED_BACK) {
        rc = commit
                 ? fail(err, XAC_EROLLBACK, rep.resource, "%s",
                        rep.message != NULL && *rep.message != '\0' ? rep.message : "rolled back")
                 : XAC_OK;
    } else {
        rc = fail(err, XAC_EPROTO, NULL, "xacd at %s sent unknown outcome %u for %s", c->addr,
                  (unsigned)rep.outcome, gtrid);
    }
    xac_msg_free(&rep);
    return rc;
}

int xac_commit(xac_tx *tx, xac_error *err)
{
    err_clear(err);
    if (tx == NULL)
        return fail(err, XAC_EINVAL, NULL, "xac_commit: no transaction");
    return finish(tx, true, err);
}

int xac_rollback(xac_tx *tx, xac_error *err)
{
    err_clear(err);
    if (tx == NULL)
        return fail(err, XAC_EINVAL, NULL, "xac_rollback: no transaction");
    return finish(tx, false, err);
}

int xac_status(xac_conn *c, const char *gtrid, int *state, xac_error *err)
{
    err_clear(err);
    if (c == NULL || state == NULL)
        return fail(err, XAC_EINVAL, NULL, "xac_status: connection or state is NULL");
    if (gtrid == NULL || *gtrid == '\0' || strlen(gtrid) > XAC_GTRID_MAX)
        return fail(err, XAC_EINVAL, NULL, "xac_status: gtrid must be 1 to %d bytes",
                    XAC_GTRID_MAX);
    xac_msg req, rep;
    xac_msg_init(&req, XAC_MSG_STATUS);
    req.gtrid = (char *)gtrid;
    int rc = roundtrip(c, &req, &rep, err);
    if (rc != XAC_OK)
        return rc;
    if (rep.type == XAC_MSG_ERROR) {
        rc = map_error(c, &rep, err);
    } else if (rep.type != XAC_MSG_STATE) {
        rc = unexpected(c, &rep, "STATUS", err);
    } else if (rep.state > XAC_STATE_ROLLED_BACK) {
        rc = fail(err, XAC_EPROTO, NULL, "xacd at %s sent unknown state %u for %s", c->addr,
                  (unsigned)rep.state, gtrid);
    } else {
        *state = rep.state;
    }
    xac_msg_free(&rep);
    return rc;
}

/* ------------------------------------------------------------- names */

const char *xac_state_name(int state)
{
    switch (state) {
    case XAC_STATE_UNKNOWN:
        return "UNKNOWN";
    case XAC_STATE_ACTIVE:
        return "ACTIVE";
    case XAC_STATE_PREPARING:
        return "PREPARING";
    case XAC_STATE_COMMITTING:
        return "COMMITTING";
    case XAC_STATE_COMMITTED:
        return "COMMITTED";
    case XAC_STATE_ROLLED_BACK:
        return "ROLLED_BACK";
    default:
        return "INVALID";
    }
}

const char *xac_strerror(int code)
{
    switch (code) {
    case XAC_OK:
        return "success";
    case XAC_EPROTO:
        return "protocol error";
    case XAC_EVERSION:
        return "unsupported protocol version";
    case XAC_EAUTH:
        return "authentication failed";
    case XAC_ELIMIT:
        return "limit exceeded";
    case XAC_ESTATE:
        return "request not valid in this state";
    case XAC_ERESOURCE:
        return "unknown resource";
    case XAC_ESQL:
        return "SQL error";
    case XAC_ERMFAIL:
        return "resource unreachable";
    case XAC_ETIMEOUT:
        return "transaction timed out";
    case XAC_EROLLBACK:
        return "transaction rolled back";
    case XAC_EJOURNAL:
        return "decision journal failed";
    case XAC_ECONFIG:
        return "configuration error";
    case XAC_EIO:
        return "I/O error";
    case XAC_ENOMEM:
        return "out of memory";
    case XAC_EINTERNAL:
        return "internal error";
    case XAC_EINVAL:
        return "invalid argument";
    case XAC_ECONN:
        return "connection to xacd lost";
    default:
        return "unknown error";
    }
}

/* -------------------------------------------------------- parameters */

xac_param xac_null(void)
{
    xac_param p = {.type = XAC_T_NULL};
    return p;
}

xac_param xac_int(int64_t v)
{
    xac_param p = {.type = XAC_T_INT, .i = v};
    return p;
}

xac_param xac_double(double v)
{
    xac_param p = {.type = XAC_T_DOUBLE, .d = v};
    return p;
}

/* A NULL string binds SQL NULL: C code often means "no value" by it. */
xac_param xac_text(const char *s)
{
    if (s == NULL)
        return xac_null();
    xac_param p = {.type = XAC_T_TEXT, .s = s, .len = strlen(s)};
    return p;
}

xac_param xac_blob(const void *ptr, size_t len)
{
    xac_param p = {.type = XAC_T_BLOB, .s = ptr, .len = len};
    return p;
}
