/* The journal's writer thread: group commit, segment rotation, carry-forward
 * and deletion of dead segments. Committers queue an encoded record and a
 * waiter in the batch being filled and sleep on that batch's condition
 * variable. The writer takes the whole batch, does one write and one
 * fdatasync for it with the mutex released, then publishes every waiter's
 * result and wakes that batch alone; committers that arrived meanwhile are
 * already the next batch. A lone committer is written at once (no timer).
 *
 * A failed write or fdatasync fails the journal for good: after a failed
 * fdatasync the kernel may have dropped the dirty pages, so a retry could
 * report success for data that is gone. The writer then cuts the failed batch
 * off again (ftruncate + fsync, which do not depend on those pages); only if
 * that works may the batch's committers roll back. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal_int.h"

static void jw_step(journal *j, const char *name)
{
    if (j->o.step != NULL)
        j->o.step(j->o.hook_ctx, name);
}

static int jw_fault(journal *j, journal_io op)
{
    return j->o.io_fault != NULL ? j->o.io_fault(j->o.hook_ctx, op) : 0;
}

static void wake(jwait *w)
{
    if (w == NULL)
        return;
    atomic_store_explicit(&w->done, 1, memory_order_release);
    /* w may return as soon as done is set; a wake on its stack word after
     * that is harmless (the stack stays mapped, and futex waiters recheck). */
    syscall(SYS_futex, &w->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void jw_wait(jwait *w)
{
    while (atomic_load_explicit(&w->done, memory_order_acquire) == 0)
        syscall(SYS_futex, &w->done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    /* Read both before waking either: a woken kid may return at once. */
    jwait *a = w->kid[0], *b = w->kid[1];
    wake(a);
    wake(b);
}

int jbuf_put(jbuf *b, const void *p, size_t n)
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

/* What happened to one batch. */
typedef struct wres {
    int rc;        /* XAC_OK or XAC_EJOURNAL */
    bool in_doubt; /* the batch may be on disk although it failed */
    bool fail;     /* the journal is failed for good */
    uint64_t carried;
    char msg[XAC_ERR_MSG_MAX];
} wres;

/* A path longer than 300 bytes is cut short in messages. */
#define PATHF(p) (int)strnlen((p), 300), (p)

static int pwritev_all(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ rotation */

typedef struct carry_ctx {
    journal *j;
    jbuf *buf;
    uint64_t below; /* carry entries in segments numbered below this */
    uint64_t to;
    uint64_t n;
    bool oom;
} carry_ctx;

static void carry_one(void *vctx, jent *e)
{
    carry_ctx *c = vctx;
    if (e->segno >= c->below || c->oom)
        return;
    journal_txn t;
    jent_to_txn(e, &t);
    uint8_t rec[JREC_MAX_LEN];
    size_t n = jrec_encode_commit(&t, e->decided_us, rec);
    if (jbuf_put(c->buf, rec, n) != 0) {
        c->oom = true;
        return;
    }
    e->carry_to = c->to;
    c->n++;
}

static void carry_undo(void *ctx, jent *e)
{
    (void)ctx;
    e->carry_to = 0;
}

/* Switches to a new segment. Live COMMITs in segments below carry_below are
 * encoded into carry, to be written ahead of the batch; they count as moved
 * once that write is synced. Failing to create the segment fails only this
 * batch: nothing was written. */
static int rotate(journal *j, uint64_t carry_below, jbuf *carry, wres *r)
{
    uint64_t next = j->segno + 1;
    int fd;
    xac_err err;
    xac_err_clear(&err);
    if (jseg_create(j->dir, next, j->o.segment_size, &j->o, &fd, &err) != XAC_OK) {
        snprintf(r->msg, sizeof r->msg, "%.*s; this commit was not written", XAC_ERR_MSG_MAX - 40,
                 err.msg);
        return -1;
    }
    jw_step(j, "segment-created");
    pthread_mutex_lock(&j->mu);
    if (jtab_add_seg(&j->tab, next) != 0) {
        pthread_mutex_unlock(&j->mu);
        close(fd);
        snprintf(r->msg, sizeof r->msg, "out of memory switching to journal segment %" PRIu64,
                 next);
        return -1;
    }
    int old = j->seg_fd;
    j->seg_fd = fd;
    j->segno = next;
    j->off = JSEG_HDR_LEN;
    j->seg_cap = j->o.segment_size;
    jseg_path(j->seg_path, sizeof j->seg_path, j->dir, next);
    j->st.created++;
    carry_ctx c = {.j = j, .buf = carry, .below = carry_below, .to = next};
    jtab_each(&j->tab, carry_one, &c);
    if (c.oom) {
        /* Not fatal: they stay where they are, and are carried next time. */
        xac_logw("journal %s: out of memory carrying live commits forward", j->dir);
        carry->len = 0;
        c.n = 0;
        jtab_each(&j->tab, carry_undo, NULL);
    }
    pthread_mutex_unlock(&j->mu);
    if (old >= 0)
        close(old);
    r->carried = c.n;
    jw_step(j, "segment-switched");
    return 0;
}

/* ------------------------------------------------------------- one batch */

/* Cuts a failed batch off the segment again. True when that is durable. */
static bool cut(journal *j, uint64_t off)
{
    int e = jw_fault(j, JOURNAL_IO_CUT);
    if (e == 0 && ftruncate(j->seg_fd, (off_t)off) == 0 && fsync(j->seg_fd) == 0)
        return true;
    if (e != 0)
        errno = e;
    xac_loge("journal segment %.*s: cannot cut the failed batch off at byte offset %" PRIu64
             ": %s (errno %d); its commits are in doubt until xacd restarts",
             PATHF(j->seg_path), off, strerror(errno), errno);
    return false;
}

/* Writes carry + b and syncs; called without the mutex. */
static void write_out(journal *j, jbuf *carry, jbatch *b, bool force_rotate, uint64_t carry_below,
                      wres *r)
{
    memset(r, 0, sizeof *r);
    size_t len = b->buf.len;
    /* The file's own size counts, not the configured one: a segment cut
     * short or made with another size must not grow by appends. */
    if (force_rotate || (j->off > JSEG_HDR_LEN && j->off + len > j->seg_cap)) {
        if (rotate(j, force_rotate ? j->segno + 1 : carry_below, carry, r) != 0) {
            r->rc = XAC_EJOURNAL;
            return;
        }
    }
    uint64_t off = j->off;
    if (carry->len + len == 0)
        return; /* a compaction with nothing live: the new segment is synced */
    struct iovec iov[2] = {{carry->data, carry->len}, {b->buf.data, len}};
    int e = jw_fault(j, JOURNAL_IO_WRITE);
    if (e == 0 && pwritev_all(j->seg_fd, iov, 2, off) != 0)
        e = errno;
    if (e != 0) {
        snprintf(r->msg, sizeof r->msg,
                 "journal segment %.*s: write of %zu bytes at offset %" PRIu64
                 " failed: %s (errno %d); the journal is stopped, restart xacd once the cause "
                 "is fixed",
                 PATHF(j->seg_path), carry->len + len, off, strerror(e), e);
        goto failed;
    }
    jw_step(j, "batch-written");
    e = jw_fault(j, JOURNAL_IO_SYNC);
    if (e == 0 && fdatasync(j->seg_fd) != 0)
        e = errno;
    if (e != 0) {
        snprintf(r->msg, sizeof r->msg,
                 "journal segment %.*s: fdatasync failed: %s (errno %d); the journal is stopped, "
                 "restart xacd once the cause is fixed",
                 PATHF(j->seg_path), strerror(e), e);
        goto failed;
    }
    j->off = off + carry->len + len;
    jw_step(j, "batch-synced");
    if (r->carried > 0)
        jw_step(j, "carried");
    return;
failed:
    xac_loge("%s", r->msg);
    r->rc = XAC_EJOURNAL;
    r->fail = true;
    r->in_doubt = !cut(j, off);
}

static void batch_reset(jbatch *b)
{
    b->buf.len = 0;
    b->head = NULL;
    b->tail = &b->head;
    b->commits = 0;
}

static void move_carried(void *vctx, jent *e)
{
    journal *j = vctx;
    if (e->carry_to != 0) {
        jtab_move(&j->tab, e, e->carry_to);
        e->carry_to = 0;
    }
}

/* Links the waiters of b into a binary tree in list order (waiter i wakes
 * 2i+1 and 2i+2), or into a chain if there is no memory for the order. */
static void wake_tree(journal *j, jbatch *b)
{
    size_t n = 0;
    for (jwait *w = b->head; w != NULL; w = w->next)
        n++;
    if (n > j->wcap) {
        jwait **v = realloc(j->wvec, n * 2 * sizeof *v);
        if (v != NULL) {
            j->wvec = v;
            j->wcap = n * 2;
        }
    }
    if (n > j->wcap) {
        for (jwait *w = b->head; w != NULL; w = w->next) {
            w->kid[0] = w->next;
            w->kid[1] = NULL;
        }
        return;
    }
    size_t i = 0;
    for (jwait *w = b->head; w != NULL; w = w->next)
        j->wvec[i++] = w;
    for (i = 0; i < n; i++) {
        j->wvec[i]->kid[0] = 2 * i + 1 < n ? j->wvec[2 * i + 1] : NULL;
        j->wvec[i]->kid[1] = 2 * i + 2 < n ? j->wvec[2 * i + 2] : NULL;
    }
}

/* Publishes a batch's outcome to its waiters; called with the mutex held. */
static void publish(journal *j, jbatch *b, const wres *r)
{
    if (r->rc == XAC_OK) {
        if (r->carried > 0) {
            jtab_each(&j->tab, move_carried, j);
            j->st.carried += r->carried;
        }
        for (jwait *w = b->head; w != NULL; w = w->next) {
            w->ent->segno = j->segno;
            jtab_put(&j->tab, w->ent);
            w->rc = XAC_OK;
        }
        j->st.commits += b->commits;
    } else {
        for (jwait *w = b->head; w != NULL; w = w->next) {
            w->rc = XAC_EJOURNAL;
            w->in_doubt = r->in_doubt;
            snprintf(w->msg, sizeof w->msg, "%s", r->msg);
        }
        if (r->fail && !j->failed) {
            j->failed = true;
            snprintf(j->fail_msg, sizeof j->fail_msg, "%s", r->msg);
        }
    }
    wake_tree(j, b);
}

/* The batch being filled when the journal fails was never written. Returns
 * the waiter to wake. */
static jwait *refuse_fill(journal *j)
{
    for (jwait *w = j->fill.head; w != NULL; w = w->next) {
        w->rc = XAC_EJOURNAL;
        w->in_doubt = false;
        snprintf(w->msg, sizeof w->msg, "not written: %.*s", XAC_ERR_MSG_MAX - 20, j->fail_msg);
    }
    wake_tree(j, &j->fill);
    jwait *head = j->fill.head;
    batch_reset(&j->fill);
    return head;
}

void jw_delete_dead(journal *j)
{
    pthread_mutex_lock(&j->mu);
    size_t n = jtab_deletable(&j->tab);
    uint64_t first = n > 0 ? j->tab.segs[0].no : 0;
    if (n > 0) {
        jtab_drop_segs(&j->tab, n);
        j->st.deleted += n;
    }
    pthread_mutex_unlock(&j->mu);
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        jseg_path(path, sizeof path, j->dir, first + i);
        /* A segment that comes back after a crash only replays commits that
         * ended; recovery finds their branches done. */
        if (unlink(path) != 0 && errno != ENOENT)
            xac_logw("journal: cannot delete dead segment %.*s: %s (errno %d)", PATHF(path),
                     strerror(errno), errno);
        jw_step(j, "segment-deleted");
    }
    xac_err err;
    xac_err_clear(&err);
    if (jseg_fsync_dir(j->dir, &err) != XAC_OK)
        xac_logw("%s", err.msg);
}

static void *writer_main(void *arg)
{
    journal *j = arg;
    jbuf carry = {0};
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->closing && j->fill.commits == 0)
            pthread_cond_wait(&j->work_cv, &j->mu);
        if (j->failed) {
            jwait *head = refuse_fill(j);
            pthread_mutex_unlock(&j->mu);
            wake(head);
            pthread_mutex_lock(&j->mu);
            if (j->closing)
                break;
            continue;
        }
        if (j->fill.buf.len == 0)
            break; /* closing with nothing left */
        jbatch t = j->out;
        j->out = j->fill;
        j->fill = t;
        batch_reset(&j->fill);
        /* Segments older than the one before the active one get their live
         * commits carried forward at the next rotation. */
        uint64_t carry_below = j->segno;
        pthread_mutex_unlock(&j->mu);

        wres r;
        carry.len = 0;
        write_out(j, &carry, &j->out, false, carry_below, &r);

        pthread_mutex_lock(&j->mu);
        j->st.syncs += r.rc == XAC_OK ? 1 : 0;
        publish(j, &j->out, &r);
        jwait *head = j->out.head;
        bool dead = r.rc == XAC_OK && jtab_deletable(&j->tab) > 0;
        pthread_mutex_unlock(&j->mu);
        wake(head);
        if (dead)
            jw_delete_dead(j);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    free(carry.data);
    return NULL;
}

int jw_start(journal *j, xac_err *err)
{
    batch_reset(&j->fill);
    batch_reset(&j->out);
    int e = pthread_create(&j->writer, NULL, writer_main, j);
    if (e != 0)
        return xac_err_set(err, XAC_EJOURNAL, "cannot start the journal writer thread: %s",
                           strerror(e));
    j->writer_started = true;
    return XAC_OK;
}

void jw_stop(journal *j)
{
    if (!j->writer_started)
        return;
    pthread_mutex_lock(&j->mu);
    j->closing = true;
    pthread_cond_signal(&j->work_cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->writer, NULL);
    j->writer_started = false;
    if (j->fill.buf.len > 0 && !j->failed)
        xac_loge("journal %s: %zu bytes of END records were not written", j->dir, j->fill.buf.len);
}

int jw_compact_all(journal *j, xac_err *err)
{
    jbuf carry = {0};
    jbatch empty;
    memset(&empty, 0, sizeof empty);
    batch_reset(&empty);
    wres r;
    write_out(j, &carry, &empty, true, 0, &r);
    free(carry.data);
    if (r.rc != XAC_OK)
        return xac_err_set(err, XAC_EJOURNAL, "compacting the journal into a new segment: %s",
                           r.msg);
    publish(j, &empty, &r);
    j->st.syncs++;
    jw_delete_dead(j);
    return XAC_OK;
}
