/* The admin socket (admin.h): one thread accepts xacctl's connections and
 * answers their requests one at a time, with the client protocol's framing
 * and codec. Admin work is rare and slow (it talks to every resource), so a
 * single thread is enough, and it keeps manual resolutions from racing each
 * other. Every answer is built from the same code xacctl runs offline:
 * rec_list, rec_pass and rec_resolve on the engine's recovery context, so the
 * two modes cannot disagree about a branch. */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rec.h"
#include "unixsock.h"

/* An xacctl that stops reading or writing must not hold the admin thread. */
#define IO_TIMEOUT_S         30
#define MAX_RESOURCES_SHOWN  256
#define MAX_HEURISTICS_SHOWN 32

struct admin {
    const xacd_config *cfg;
    engine *eng;
    journal *j;
    int fd;
    int wake[2];
    atomic_bool stopping;
    pthread_mutex_t mu;
    int conn; /* the connection being served, -1 when none; under mu */
    pthread_t tid;
    bool started;
    dev_t dev;
    ino_t ino;
    uint64_t started_unix;
};

/* ------------------------------------------------------------- listener */

static int admin_listen(admin *a, xac_err *err)
{
    unixsock u;
    int rc = unixsock_listen(a->cfg->admin_socket, "admin_socket", 0600, 16, &u, err);
    if (rc != XAC_OK)
        return rc;
    a->fd = u.fd;
    a->dev = u.dev;
    a->ino = u.ino;
    return XAC_OK;
}

/* -------------------------------------------------------------- replies */

static int send_error(int fd, int code, const char *resource, const char *msg)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_ERROR);
    m.code = (uint16_t)(code >= 1 && code <= XAC_ECODE_MAX ? code : XAC_EINTERNAL);
    m.resource = (char *)(resource != NULL ? resource : "");
    m.message = (char *)(msg != NULL ? msg : "");
    xac_err err;
    xac_err_clear(&err);
    return xac_msg_send(fd, &m, &err);
}

static int send_rows(int fd, xac_rows *rows)
{
    xac_msg m;
    xac_msg_init(&m, XAC_MSG_RESULT);
    m.rows = *rows;
    xac_err err;
    xac_err_clear(&err);
    int rc = xac_msg_send(fd, &m, &err);
    if (rc != XAC_OK)
        xac_logd("admin: cannot send a reply: %s", err.msg);
    return rc;
}

/* The recovery context of the running engine, so that a listing and a pass
 * here judge branches exactly as the recovery loop does. */
static void admin_ctx(admin *a, rec_ctx *ctx)
{
    engine_rec_ctx(a->eng, ctx);
}

/* Appends one (key, value) row unless an earlier one failed (*rc). */
static void add_kv(int *rc, xac_rows *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_kv(int *rc, xac_rows *r, const char *key, const char *fmt, ...)
{
    if (*rc != XAC_OK)
        return;
    char v[PATH_MAX + XAC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    const char *cells[2] = {key, v};
    xac_err err;
    xac_err_clear(&err);
    *rc = xac_rows_add(r, cells, NULL, &err);
}

/* ------------------------------------------------------------- requests */

static int on_status(admin *a, int fd)
{
    static const char *const cols[] = {"key", "value"};
    xac_rows r;
    xac_rows_init(&r);
    xac_err err;
    xac_err_clear(&err);
    int rc = xac_rows_set_cols(&r, 2, cols, &err);
    engine_health h;
    engine_get_health(a->eng, &h);
    journal_stats js;
    journal_get_stats(a->j, &js);
    uint64_t now = (uint64_t)time(NULL);
    if (rc == XAC_OK) {
        add_kv(&rc, &r, "daemon", "%s", js.failed ? "degraded (journal failed)" : "running");
        add_kv(&rc, &r, "node_id", "%s", a->cfg->node_id);
        add_kv(&rc, &r, "version", "%s", XAC_VERSION);
        add_kv(&rc, &r, "pid", "%ld", (long)getpid());
        add_kv(&rc, &r, "uptime_s", "%llu", (unsigned long long)(now - a->started_unix));
        add_kv(&rc, &r, "journal_dir", "%s", a->cfg->journal_dir);
        add_kv(&rc, &r, "journal_failed", "%s", js.failed ? "yes" : "no");
        add_kv(&rc, &r, "journal_pending", "%zu", js.pending);
        add_kv(&rc, &r, "journal_segments", "%llu", (unsigned long long)js.segments);
        add_kv(&rc, &r, "transactions_live", "%zu", h.live);
        add_kv(&rc, &r, "transactions_held", "%zu", h.held);
        add_kv(&rc, &r, "committed", "%llu", (unsigned long long)h.committed);
        add_kv(&rc, &r, "rolled_back", "%llu", (unsigned long long)h.rolled_back);
        add_kv(&rc, &r, "indoubt", "%zu", h.indoubt);
        add_kv(&rc, &r, "heuristics", "%llu", (unsigned long long)h.heuristics);
        add_kv(&rc, &r, "recovery_passes", "%llu", (unsigned long long)h.recovery_passes);
        add_kv(&rc, &r, "last_pass_unix", "%llu", (unsigned long long)h.last_pass_unix);
    }
    static engine_resource_health res[MAX_RESOURCES_SHOWN];
    size_t nres = engine_get_resources(a->eng, res, MAX_RESOURCES_SHOWN);
    if (nres > MAX_RESOURCES_SHOWN)
        nres = MAX_RESOURCES_SHOWN;
    size_t up = 0;
    for (size_t i = 0; i < nres; i++)
        up += res[i].up;
    if (rc == XAC_OK) {
        add_kv(&rc, &r, "resources", "%zu", nres);
        add_kv(&rc, &r, "resources_up", "%zu", up);
    }
    for (size_t i = 0; i < nres && rc == XAC_OK; i++) {
        char k[XAC_RESOURCE_MAX + 64];
        snprintf(k, sizeof k, "resource.%s", res[i].name);
        add_kv(&rc, &r, k, "%s", res[i].up ? "up" : "down");
        if (res[i].retry_ms > 0) {
            snprintf(k, sizeof k, "resource.%s.retry_ms", res[i].name);
            add_kv(&rc, &r, k, "%u", res[i].retry_ms);
        }
        if (res[i].last_ok_unix > 0) {
            snprintf(k, sizeof k, "resource.%s.last_ok_unix", res[i].name);
            add_kv(&rc, &r, k, "%llu", (unsigned long long)res[i].last_ok_unix);
        }
        if (res[i].last_fail_unix > 0) {
            snprintf(k, sizeof k, "resource.%s.last_fail_unix", res[i].name);
            add_kv(&rc, &r, k, "%llu", (unsigned long long)res[i].last_fail_unix);
        }
        if (res[i].last_error[0] != '\0') {
            snprintf(k, sizeof k, "resource.%s.last_error", res[i].name);
            add_kv(&rc, &r, k, "%s", res[i].last_error);
        }
    }
    static char heur[MAX_HEURISTICS_SHOWN][XAC_ERR_MSG_MAX];
    size_t nh = engine_get_heuristics(a->eng, heur, MAX_HEURISTICS_SHOWN);
    for (size_t i = 0; i < nh && i < MAX_HEURISTICS_SHOWN && rc == XAC_OK; i++) {
        char k[32];
        snprintf(k, sizeof k, "heuristic.%zu", i + 1);
        add_kv(&rc, &r, k, "%s", heur[i]);
    }
    int sent = rc == XAC_OK ? send_rows(fd, &r)
                            : send_error(fd, XAC_ENOMEM, "", "out of memory building the status");
    xac_rows_free(&r);
    return sent;
}

static int on_list(admin *a, int fd)
{
    rec_ctx ctx;
    admin_ctx(a, &ctx);
    xac_err err;
    xac_err_clear(&err);
    xac_rows r;
    xac_rows_init(&r);
    int rc = rec_list_rows(&ctx, "xacd's log", &r, &err);
    int sent = rc == XAC_OK ? send_rows(fd, &r) : send_error(fd, rc, err.resource, err.msg);
    xac_rows_free(&r);
    return sent;
}

static int on_resolve(admin *a, int fd, const xac_msg *m)
{
    rec_ctx ctx;
    admin_ctx(a, &ctx);
    rec_resolve_req req = {.resource = m->resource,
                           .xid = m->xid,
                           .commit = m->action == XAC_ADMIN_COMMIT,
                           .force = m->force != 0,
                           .operator_name = m->operator_name[0] ? m->operator_name : "unknown",
                           .online = true,
                           .audit_path = a->cfg->audit_log};
    char what[256];
    xac_err err;
    xac_err_clear(&err);
    int rc = rec_resolve(&ctx, &req, what, sizeof what, &err);
    if (rc != XAC_OK)
        return send_error(fd, rc, err.resource[0] ? err.resource : m->resource, err.msg);
    xac_msg r;
    xac_msg_init(&r, XAC_MSG_OUTCOME);
    r.outcome = req.commit ? XAC_OUTCOME_COMMITTED : XAC_OUTCOME_ROLLED_BACK;
    r.resource = m->resource;
    r.message = what;
    return xac_msg_send(fd, &r, &err);
}

static int on_recover(admin *a, int fd)
{
    xac_rows r;
    xac_rows_init(&r);
    xac_err err;
    xac_err_clear(&err);
    rec_ctx ctx;
    admin_ctx(a, &ctx);
    rec_report rep;
    xac_logi("admin: recovery pass requested through the admin socket");
    int rc = rec_pass_rows(&ctx, &r, &rep, &err);
    int sent = rc == XAC_OK ? send_rows(fd, &r) : send_error(fd, rc, err.resource, err.msg);
    xac_rows_free(&r);
    return sent;
}

/* Answers one connection's requests until it closes. */
static void serve(admin *a, int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    xac_buf payload;
    xac_buf_init(&payload);
    while (!atomic_load(&a->stopping)) {
        uint8_t type;
        xac_err err;
        xac_err_clear(&err);
        int rc = xac_frame_read(fd, a->cfg->max_frame, &type, &payload, &err);
        if (rc == XAC_ECONN)
            break;
        if (rc != XAC_OK) {
            send_error(fd, rc == XAC_ELIMIT ? XAC_ELIMIT : XAC_EPROTO, "", err.msg);
            break;
        }
        if (type < XAC_MSG_ADMIN_STATUS || type > XAC_MSG_ADMIN_RECOVER) {
            char msg[96];
            snprintf(msg, sizeof msg,
                     "message type 0x%02X is not an admin request (0x20..0x23); this is the "
                     "admin socket",
                     type);
            send_error(fd, XAC_EPROTO, "", msg);
            break;
        }
        xac_msg m;
        rc = xac_msg_decode(type, payload.data, payload.len, &m, &err);
        if (rc != XAC_OK) {
            send_error(fd, XAC_EPROTO, "", err.msg);
            break;
        }
        int sent;
        switch (type) {
        case XAC_MSG_ADMIN_STATUS:
            sent = on_status(a, fd);
            break;
        case XAC_MSG_ADMIN_LIST:
            sent = on_list(a, fd);
            break;
        case XAC_MSG_ADMIN_RESOLVE:
            sent = on_resolve(a, fd, &m);
            break;
        default:
            sent = on_recover(a, fd);
            break;
        }
        xac_msg_free(&m);
        if (sent != XAC_OK)
            break;
    }
    xac_buf_free(&payload);
}

static void *admin_main(void *arg)
{
    admin *a = arg;
    while (!atomic_load(&a->stopping)) {
        struct pollfd p[2] = {{.fd = a->wake[0], .events = POLLIN},
                              {.fd = a->fd, .events = POLLIN}};
        int r = poll(p, 2, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            xac_loge("admin: poll: %s; the admin socket stops answering", strerror(errno));
            break;
        }
        if (p[0].revents != 0)
            break;
        if ((p[1].revents & POLLIN) == 0)
            continue;
        int fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                xac_logw("admin: accept: %s; retrying shortly", strerror(errno));
                poll(NULL, 0, 100);
            }
            continue;
        }
        /* The listener is non-blocking; the connection must not be. */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        pthread_mutex_lock(&a->mu);
        a->conn = fd;
        pthread_mutex_unlock(&a->mu);
        serve(a, fd);
        pthread_mutex_lock(&a->mu);
        a->conn = -1;
        close(fd);
        pthread_mutex_unlock(&a->mu);
    }
    return NULL;
}

int admin_create(const xacd_config *cfg, engine *e, journal *j, admin **out, xac_err *err)
{
    *out = NULL;
    admin *a = calloc(1, sizeof *a);
    if (a == NULL)
        return xac_err_set(err, XAC_ENOMEM, "admin: out of memory");
    a->cfg = cfg;
    a->eng = e;
    a->j = j;
    a->fd = -1;
    a->conn = -1;
    pthread_mutex_init(&a->mu, NULL);
    a->started_unix = (uint64_t)time(NULL);
    atomic_init(&a->stopping, false);
    if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        int en = errno;
        free(a);
        return xac_err_set(err, XAC_EIO, "admin: pipe: %s (errno %d)", strerror(en), en);
    }
    int rc = admin_listen(a, err);
    if (rc == XAC_OK) {
        int prc = pthread_create(&a->tid, NULL, admin_main, a);
        if (prc != 0)
            rc = xac_err_set(err, XAC_EINTERNAL, "admin: cannot start its thread: %s",
                             strerror(prc));
        else
            a->started = true;
    }
    if (rc != XAC_OK) {
        admin_destroy(a);
        return rc;
    }
    xac_logi("admin socket %s ready (audit log %s)", cfg->admin_socket, cfg->audit_log);
    *out = a;
    return XAC_OK;
}

void admin_destroy(admin *a)
{
    if (a == NULL)
        return;
    atomic_store(&a->stopping, true);
    char b = 1;
    ssize_t w = write(a->wake[1], &b, 1);
    (void)w;
    /* An xacctl idling between requests must not hold up the shutdown; one
     * whose request is being answered gets its answer first. */
    pthread_mutex_lock(&a->mu);
    if (a->conn >= 0)
        shutdown(a->conn, SHUT_RD);
    pthread_mutex_unlock(&a->mu);
    if (a->started)
        pthread_join(a->tid, NULL);
    if (a->fd >= 0) {
        close(a->fd);
        struct stat st;
        /* Remove the file only while it is still ours, not a successor's. */
        if (lstat(a->cfg->admin_socket, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
            unlink(a->cfg->admin_socket);
    }
    close(a->wake[0]);
    close(a->wake[1]);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
