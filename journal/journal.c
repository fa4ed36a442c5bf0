/* The decision journal: directory lock, replay into the committed-but-not-
 * ended table, and group commit. Group commit uses one dedicated writer thread:
 * committers append their encoded record to a pending buffer under the mutex,
 * note the batch number it will go out in, wake the writer and sleep. The
 * writer swaps the pending buffer out, and with the mutex released does one
 * write and one fdatasync for the whole batch, then publishes the batch as
 * durable and wakes every waiter. A lone committer wakes the writer at once
 * (no timer); committers that arrive during a sync form the next batch. END
 * records wait in the buffer for the next sync or for close. A failed write or
 * sync marks the journal failed for good: after a failed fdatasync the kernel
 * may have dropped the dirty pages, so a retry could report success falsely. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_int.h"

/* A committed-but-not-ended transaction; sized to its branch count. */
typedef struct jent {
    struct jent *next;
    uint64_t hash;
    uint64_t decided_us;
    uint8_t nbranches;
    char gtrid[XAC_GTRID_MAX + 1];
    char res[][XAC_RESOURCE_MAX + 1];
} jent;

typedef struct jbuf {
    uint8_t *data;
    size_t len, cap;
} jbuf;

struct journal {
    char dir[PATH_MAX];
    char seg_path[PATH_MAX];
    bool readonly;
    int lock_fd;
    int seg_fd;
    uint64_t segno;
    uint64_t off; /* end of the durable-or-written data in the active segment */

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* writer: there is something to sync, or close */
    pthread_cond_t done_cv; /* committers: a batch finished */
    pthread_t writer;
    bool writer_started;
    jbuf pend;            /* records of the batch being filled */
    jbuf out;             /* records being written (writer only) */
    size_t pend_commits;  /* COMMIT records in pend */
    uint64_t fill_seq;    /* batch number of pend */
    uint64_t durable_seq; /* last batch covered by a successful fdatasync */
    bool closing;
    bool failed;
    char fail_msg[XAC_ERR_MSG_MAX];

    jent **buckets;
    size_t nbuckets;
    size_t count;
    journal_stats st;
};

/* ------------------------------------------------------------- the table */

static uint64_t hash_gtrid(const char *g)
{
    uint64_t h = 1469598103934665603ull;
    for (; *g; g++)
        h = (h ^ (unsigned char)*g) * 1099511628211ull;
    return h;
}

static jent *ent_new(const journal_txn *t, uint64_t decided_us)
{
    jent *e = malloc(sizeof *e + (size_t)t->nbranches * sizeof e->res[0]);
    if (e == NULL)
        return NULL;
    e->next = NULL;
    snprintf(e->gtrid, sizeof e->gtrid, "%s", t->gtrid);
    e->hash = hash_gtrid(e->gtrid);
    e->decided_us = decided_us;
    e->nbranches = t->nbranches;
    for (int i = 0; i < t->nbranches; i++)
        memcpy(e->res[i], t->resources[i], sizeof e->res[i]);
    return e;
}

static void ent_to_txn(const jent *e, journal_txn *t)
{
    memset(t, 0, sizeof *t);
    memcpy(t->gtrid, e->gtrid, sizeof t->gtrid);
    t->nbranches = e->nbranches;
    t->decided_us = e->decided_us;
    for (int i = 0; i < e->nbranches; i++)
        memcpy(t->resources[i], e->res[i], sizeof t->resources[i]);
}

static jent **tab_slot(journal *j, const char *gtrid, uint64_t h)
{
    jent **pp = &j->buckets[h & (j->nbuckets - 1)];
    while (*pp != NULL && !((*pp)->hash == h && strcmp((*pp)->gtrid, gtrid) == 0))
        pp = &(*pp)->next;
    return pp;
}

/* Doubling keeps chains short; a failed grow only makes them longer. */
static void tab_grow(journal *j)
{
    size_t nb = j->nbuckets * 2;
    jent **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < j->nbuckets; i++) {
        jent *e = j->buckets[i];
        while (e != NULL) {
            jent *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(j->buckets);
    j->buckets = b;
    j->nbuckets = nb;
}

/* Takes ownership of e; a COMMIT seen twice keeps the later one. */
static void tab_put(journal *j, jent *e)
{
    jent **pp = tab_slot(j, e->gtrid, e->hash);
    if (*pp != NULL) {
        e->next = (*pp)->next;
        free(*pp);
        *pp = e;
        return;
    }
    *pp = e;
    j->count++;
    if (j->count > j->nbuckets)
        tab_grow(j);
}

static bool tab_del(journal *j, const char *gtrid)
{
    jent **pp = tab_slot(j, gtrid, hash_gtrid(gtrid));
    if (*pp == NULL)
        return false;
    jent *e = *pp;
    *pp = e->next;
    free(e);
    j->count--;
    return true;
}

static jent *tab_get(journal *j, const char *gtrid)
{
    return *tab_slot(j, gtrid, hash_gtrid(gtrid));
}

static void tab_free(journal *j)
{
    for (size_t i = 0; i < j->nbuckets; i++) {
        jent *e = j->buckets[i];
        while (e != NULL) {
            jent *next = e->next;
            free(e);
            e = next;
        }
    }
    free(j->buckets);
    j->buckets = NULL;
    j->count = 0;
}

/* Replay callback. Out of memory here cannot be reported through the scan, so
 * it is remembered and open fails afterwards. */
typedef struct replay_ctx {
    journal *j;
    bool oom;
} replay_ctx;

static void replay_apply(void *vctx, const jrec *r)
{
    replay_ctx *c = vctx;
    if (r->type == JREC_END) {
        tab_del(c->j, r->t.gtrid);
        return;
    }
    jent *e = ent_new(&r->t, r->t.decided_us);
    if (e == NULL) {
        c->oom = true;
        return;
    }
    tab_put(c->j, e);
}

/* --------------------------------------------------------------- buffers */

static int jbuf_put(jbuf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->len < n)
            nc *= 2;
        uint8_t *nd = realloc(b->data, nc);
        if (nd == NULL)
            return -1;
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* ---------------------------------------------------------------- writer */

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Writes and syncs out; called without the mutex. Fills msg on failure. */
static int flush_out(journal *j, uint64_t off, bool *sync_called, char *msg, size_t msglen)
{
    *sync_called = false;
    if (pwrite_all(j->seg_fd, j->out.data, j->out.len, off) != 0) {
        int e = errno;
        /* A path longer than 300 bytes is cut short in the message. */
        snprintf(msg, msglen,
                 "journal segment %.*s: write of %zu bytes at offset %" PRIu64
                 " failed: %s (errno %d); the journal is stopped, restart xacd once the cause "
                 "is fixed",
                 (int)strnlen(j->seg_path, 300), j->seg_path, j->out.len, off, strerror(e), e);
        return -1;
    }
    *sync_called = true;
    if (fdatasync(j->seg_fd) != 0) {
        int e = errno;
        snprintf(msg, msglen,
                 "journal segment %.*s: fdatasync failed: %s (errno %d); the journal is stopped, "
                 "restart xacd once the cause is fixed",
                 (int)strnlen(j->seg_path, 300), j->seg_path, strerror(e), e);
        return -1;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    journal *j = arg;
    char msg[XAC_ERR_MSG_MAX];
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->closing && !j->failed && j->pend_commits == 0)
            pthread_cond_wait(&j->work_cv, &j->mu);
        if (j->failed || j->pend.len == 0)
            break; /* failed, or closing with nothing left */
        jbuf t = j->out;
        j->out = j->pend;
        j->pend = t;
        j->pend.len = 0;
        j->pend_commits = 0;
        uint64_t batch = j->fill_seq++;
        uint64_t off = j->off;
        pthread_mutex_unlock(&j->mu);

        bool sync_called;
        int rc = flush_out(j, off, &sync_called, msg, sizeof msg);

        pthread_mutex_lock(&j->mu);
        if (sync_called)
            j->st.syncs++;
        if (rc == 0) {
            j->off += j->out.len;
            j->durable_seq = batch;
        } else {
            j->failed = true;
            snprintf(j->fail_msg, sizeof j->fail_msg, "%s", msg);
            xac_loge("%s", msg);
        }
        j->out.len = 0;
        pthread_cond_broadcast(&j->done_cv);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ------------------------------------------------------------------ open */

static int mkdir_p(const char *dir, xac_err *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0750) == 0) {
            /* The new entry must survive a crash along with what goes in it. */
            char parent[PATH_MAX];
            snprintf(parent, sizeof parent, "%s", p);
            char *slash = strrchr(parent, '/');
            if (slash == parent)
                slash[1] = '\0';
            else if (slash != NULL)
                *slash = '\0';
            else
                snprintf(parent, sizeof parent, ".");
            int rc = jseg_fsync_dir(parent, err);
            if (rc != XAC_OK)
                return rc;
        } else if (errno != EEXIST) {
            return xac_err_set(err, XAC_EJOURNAL,
                               "cannot create journal directory %s: %s (errno %d)", p,
                               strerror(errno), errno);
        }
        p[i] = c;
    }
    return XAC_OK;
}

static int take_lock(journal *j, xac_err *err)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/LOCK", j->dir);
    /* A read-only open creates LOCK only when missing: an empty file, never a
     * change to the journal's contents. */
    j->lock_fd = open(path, (j->readonly ? O_RDONLY : O_RDWR) | O_CREAT | O_CLOEXEC, 0640);
    if (j->lock_fd < 0)
        return xac_err_set(err, XAC_EJOURNAL, "cannot open journal lock file %s: %s (errno %d)",
                           path, strerror(errno), errno);
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(j->lock_fd);
        j->lock_fd = -1;
        if (e == EWOULDBLOCK)
            return xac_err_set(err, XAC_EJOURNAL,
                               "journal %s is locked by another process (is xacd running?)",
                               j->dir);
        return xac_err_set(err, XAC_EJOURNAL, "cannot lock journal lock file %s: %s (errno %d)",
                           path, strerror(e), e);
    }
    return XAC_OK;
}

/* Replays every segment in order; the last one becomes the active segment. */
static int replay_all(journal *j, xac_err *err)
{
    uint64_t *segs;
    size_t n;
    int rc = jseg_list(j->dir, j->readonly, &segs, &n, err);
    if (rc != XAC_OK)
        return rc;
    replay_ctx ctx = {.j = j, .oom = false};
    for (size_t i = 0; i < n && rc == XAC_OK; i++) {
        char path[PATH_MAX];
        jseg_path(path, sizeof path, j->dir, segs[i]);
        bool last = i + 1 == n;
        int fd = open(path, (j->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (fd < 0) {
            rc = xac_err_set(err, XAC_EJOURNAL, "cannot open journal segment %s: %s (errno %d)",
                             path, strerror(errno), errno);
            break;
        }
        uint64_t end = 0;
        rc = jseg_replay(fd, path, segs[i], last, j->readonly, replay_apply, &ctx, &end,
                         &j->st.replayed, err);
        if (rc == XAC_OK && ctx.oom)
            rc = xac_err_set(err, XAC_ENOMEM, "out of memory replaying journal segment %s", path);
        if (rc == XAC_OK && last) {
            j->seg_fd = fd;
            j->segno = segs[i];
            j->off = end;
            snprintf(j->seg_path, sizeof j->seg_path, "%s", path);
        } else {
            close(fd);
        }
    }
    free(segs);
    return rc;
}

int journal_open(const char *dir, int flags, journal **out, xac_err *err)
{
    journal_opts o = {.flags = flags};
    return journal_open_opts(dir, &o, out, err);
}

int journal_open_opts(const char *dir, const journal_opts *o, journal **out, xac_err *err)
{
    int flags = o != NULL ? o->flags : 0;
    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return xac_err_set(err, XAC_EINVAL, "no journal directory given");
    if (strlen(dir) > PATH_MAX - 64)
        return xac_err_set(err, XAC_EINVAL, "journal directory path is too long: %s", dir);
    journal *j = calloc(1, sizeof *j);
    if (j == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory opening journal %s", dir);
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    j->readonly = (flags & JOURNAL_READONLY) != 0;
    j->lock_fd = -1;
    j->seg_fd = -1;
    j->nbuckets = 64;
    j->buckets = calloc(j->nbuckets, sizeof *j->buckets);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->work_cv, NULL);
    pthread_cond_init(&j->done_cv, NULL);
    j->fill_seq = 1;
    int rc = XAC_OK;
    if (j->buckets == NULL)
        rc = xac_err_set(err, XAC_ENOMEM, "out of memory opening journal %s", dir);
    struct stat sb;
    if (rc == XAC_OK && j->readonly && stat(dir, &sb) != 0)
        rc = xac_err_set(err, XAC_EJOURNAL, "cannot open journal directory %s: %s (errno %d)", dir,
                         strerror(errno), errno);
    if (rc == XAC_OK && !j->readonly)
        rc = mkdir_p(dir, err);
    if (rc == XAC_OK)
        rc = take_lock(j, err);
    if (rc == XAC_OK)
        rc = replay_all(j, err);
    if (rc == XAC_OK && !j->readonly && j->seg_fd < 0) {
        j->segno = 1;
        j->off = JSEG_HDR_LEN;
        jseg_path(j->seg_path, sizeof j->seg_path, dir, j->segno);
        rc = jseg_create(dir, j->segno, &j->seg_fd, err);
    }
    if (rc == XAC_OK && !j->readonly) {
        int e = pthread_create(&j->writer, NULL, writer_main, j);
        if (e != 0)
            rc = xac_err_set(err, XAC_EJOURNAL, "cannot start the journal writer thread: %s",
                             strerror(e));
        else
            j->writer_started = true;
    }
    if (rc != XAC_OK) {
        journal_close(j);
        return rc;
    }
    j->st.pending = j->count;
    xac_logi("journal %s: %" PRIu64 " records replayed, %zu committed transactions not ended%s",
             dir, j->st.replayed, j->count, j->readonly ? " (read-only)" : "");
    *out = j;
    return XAC_OK;
}

void journal_close(journal *j)
{
    if (j == NULL)
        return;
    if (j->writer_started) {
        pthread_mutex_lock(&j->mu);
        j->closing = true;
        pthread_cond_signal(&j->work_cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->writer, NULL);
        if (j->pend.len > 0 && !j->failed)
            xac_loge("journal %s: %zu bytes of END records were not written", j->dir, j->pend.len);
    }
    if (j->seg_fd >= 0)
        close(j->seg_fd);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the flock */
    tab_free(j);
    free(j->pend.data);
    free(j->out.data);
    pthread_cond_destroy(&j->work_cv);
    pthread_cond_destroy(&j->done_cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* ---------------------------------------------------------- operations */

/* Why this journal takes no writes now; called with the mutex held. */
static int refuse(journal *j, const char *what, const char *gtrid, xac_err *err)
{
    if (j->readonly)
        return xac_err_set(err, XAC_EJOURNAL, "journal %s is open read-only: cannot %s %s", j->dir,
                           what, gtrid);
    if (j->failed)
        return xac_err_set(err, XAC_EJOURNAL, "cannot %s %s: %s", what, gtrid, j->fail_msg);
    if (j->closing)
        return xac_err_set(err, XAC_EJOURNAL, "journal %s is closing: cannot %s %s", j->dir, what,
                           gtrid);
    return XAC_OK;
}

int journal_commit(journal *j, const journal_txn *t, bool *in_doubt, xac_err *err)
{
    *in_doubt = false;
    if (j == NULL)
        return xac_err_set(err, XAC_EINVAL, "journal commit: no journal");
    int rc = jrec_check_txn(t, err);
    if (rc != XAC_OK)
        return rc;
    uint64_t decided = t->decided_us != 0 ? t->decided_us : xac_now_wall_us();
    uint8_t rec[JREC_MAX_LEN];
    size_t n = jrec_encode_commit(t, decided, rec);
    /* Allocated up front so that nothing can fail once the record is durable. */
    jent *e = ent_new(t, decided);
    if (e == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory committing %s", t->gtrid);

    pthread_mutex_lock(&j->mu);
    rc = refuse(j, "commit", t->gtrid, err);
    if (rc == XAC_OK && jbuf_put(&j->pend, rec, n) != 0)
        rc = xac_err_set(err, XAC_ENOMEM, "out of memory queueing the commit of %s", t->gtrid);
    if (rc != XAC_OK) {
        pthread_mutex_unlock(&j->mu);
        free(e);
        return rc;
    }
    uint64_t my = j->fill_seq;
    j->pend_commits++;
    pthread_cond_signal(&j->work_cv);
    while (j->durable_seq < my && !j->failed)
        pthread_cond_wait(&j->done_cv, &j->mu);
    if (j->durable_seq >= my) {
        tab_put(j, e);
        j->st.commits++;
    } else {
        *in_doubt = true;
        rc = xac_err_set(err, XAC_EJOURNAL,
                         "commit of %s is not durable (its outcome is settled at the next "
                         "start-up; do not roll its branches back): %s",
                         t->gtrid, j->fail_msg);
        free(e);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int journal_end(journal *j, const char *gtrid, xac_err *err)
{
    if (j == NULL)
        return xac_err_set(err, XAC_EINVAL, "journal end: no journal");
    if (gtrid == NULL || !jrec_valid_gtrid(gtrid, strnlen(gtrid, XAC_GTRID_MAX + 1)))
        return xac_err_set(err, XAC_EINVAL, "journal end: invalid gtrid \"%.64s\"",
                           gtrid != NULL ? gtrid : "(null)");
    uint8_t rec[JREC_MAX_LEN];
    size_t n = jrec_encode_end(gtrid, rec);
    pthread_mutex_lock(&j->mu);
    int rc = refuse(j, "end", gtrid, err);
    /* An END for a gtrid the journal does not hold would change nothing. */
    if (rc == XAC_OK && tab_get(j, gtrid) != NULL) {
        if (jbuf_put(&j->pend, rec, n) != 0) {
            rc = xac_err_set(err, XAC_ENOMEM, "out of memory queueing the end of %s", gtrid);
        } else {
            tab_del(j, gtrid);
            j->st.ends++;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

bool journal_is_committed(journal *j, const char *gtrid)
{
    if (j == NULL || gtrid == NULL)
        return false;
    pthread_mutex_lock(&j->mu);
    bool r = tab_get(j, gtrid) != NULL;
    pthread_mutex_unlock(&j->mu);
    return r;
}

bool journal_lookup(journal *j, const char *gtrid, journal_txn *out)
{
    if (j == NULL || gtrid == NULL)
        return false;
    pthread_mutex_lock(&j->mu);
    jent *e = tab_get(j, gtrid);
    if (e != NULL && out != NULL)
        ent_to_txn(e, out);
    pthread_mutex_unlock(&j->mu);
    return e != NULL;
}

int journal_pending(journal *j, journal_txn **out, size_t *n, xac_err *err)
{
    *out = NULL;
    *n = 0;
    if (j == NULL)
        return xac_err_set(err, XAC_EINVAL, "journal pending: no journal");
    pthread_mutex_lock(&j->mu);
    size_t cnt = j->count;
    journal_txn *a = cnt > 0 ? malloc(cnt * sizeof *a) : NULL;
    if (cnt > 0 && a == NULL) {
        pthread_mutex_unlock(&j->mu);
        return xac_err_set(err, XAC_ENOMEM, "out of memory listing %zu committed transactions",
                           cnt);
    }
    size_t k = 0;
    for (size_t i = 0; i < j->nbuckets; i++)
        for (jent *e = j->buckets[i]; e != NULL; e = e->next)
            ent_to_txn(e, &a[k++]);
    pthread_mutex_unlock(&j->mu);
    *out = a;
    *n = k;
    return XAC_OK;
}

void journal_get_stats(journal *j, journal_stats *st)
{
    memset(st, 0, sizeof *st);
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    *st = j->st;
    st->pending = j->count;
    st->failed = j->failed;
    pthread_mutex_unlock(&j->mu);
}
