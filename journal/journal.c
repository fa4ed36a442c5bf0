/* The decision journal's public operations: open (directory, lock, replay
 * into the committed-but-not-ended table, salvage), close, commit, end and the
 * lookups recovery uses. The writer thread (writer.c) does every write; the
 * table (table.c) and the segment files (segment.c) are its state. */
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

/* Replay callback. Out of memory here cannot be reported through the scan, so
 * it is remembered and open fails afterwards. */
typedef struct replay_ctx {
    journal *j;
    uint64_t segno;
    bool oom;
} replay_ctx;

static void replay_apply(void *vctx, const jrec *r)
{
    replay_ctx *c = vctx;
    if (r->type == JREC_END) {
        jtab_del(&c->j->tab, r->t.gtrid);
        return;
    }
    jent *e = jent_new(&r->t, r->t.decided_us);
    if (e == NULL) {
        c->oom = true;
        return;
    }
    e->segno = c->segno;
    jtab_put(&c->j->tab, e);
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

/* Replays every segment in order; the last one becomes the active segment.
 * *damaged is set when salvage skipped bytes. */
static int replay_all(journal *j, bool *damaged, xac_err *err)
{
    uint64_t *segs;
    size_t n;
    int rc = jseg_list(j->dir, j->readonly, &segs, &n, err);
    if (rc != XAC_OK)
        return rc;
    replay_ctx ctx = {.j = j, .oom = false};
    bool salvage = (j->o.flags & JOURNAL_SALVAGE) != 0;
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
        if (jtab_add_seg(&j->tab, segs[i]) != 0) {
            close(fd);
            rc = xac_err_set(err, XAC_ENOMEM, "out of memory replaying journal %s", j->dir);
            break;
        }
        ctx.segno = segs[i];
        jseg_scan sc = {.path = path,
                        .segno = segs[i],
                        .last = last,
                        .readonly = j->readonly,
                        .salvage = salvage,
                        .apply = replay_apply,
                        .ctx = &ctx,
                        .nrec = j->st.replayed};
        rc = jseg_replay(fd, &sc, err);
        j->st.replayed = sc.nrec;
        if (rc == XAC_OK && ctx.oom)
            rc = xac_err_set(err, XAC_ENOMEM, "out of memory replaying journal segment %s", path);
        if (rc == XAC_OK && sc.skipped > 0) {
            char copy[PATH_MAX + 64];
            rc = jseg_copy_aside(j->dir, path, copy, sizeof copy, err);
            if (rc == XAC_OK)
                xac_logw("journal segment %s: damaged; a copy is kept as %s", path, copy);
            j->st.salvaged += sc.skipped;
            *damaged = true;
        }
        struct stat sb;
        if (rc == XAC_OK && last && fstat(fd, &sb) != 0)
            rc = xac_err_set(err, XAC_EJOURNAL, "cannot stat journal segment %s: %s (errno %d)",
                             path, strerror(errno), errno);
        if (rc == XAC_OK && last) {
            j->seg_fd = fd;
            j->segno = segs[i];
            j->off = sc.end;
            j->seg_cap = (uint64_t)sb.st_size;
            snprintf(j->seg_path, sizeof j->seg_path, "%s", path);
        } else {
            close(fd);
        }
    }
    free(segs);
    return rc;
}

static int check_opts(const char *dir, const journal_opts *o, xac_err *err)
{
    if (dir == NULL || dir[0] == '\0')
        return xac_err_set(err, XAC_EINVAL, "no journal directory given");
    if (strlen(dir) > PATH_MAX - 64)
        return xac_err_set(err, XAC_EINVAL, "journal directory path is too long: %s", dir);
    if (o->segment_size < JOURNAL_SEGMENT_SIZE_MIN || o->segment_size > JOURNAL_SEGMENT_SIZE_MAX)
        return xac_err_set(err, XAC_EINVAL,
                           "journal segment size %" PRIu64 " is out of range (%u to %u bytes)",
                           o->segment_size, JOURNAL_SEGMENT_SIZE_MIN, JOURNAL_SEGMENT_SIZE_MAX);
    if ((o->flags & JOURNAL_READONLY) && (o->flags & JOURNAL_SALVAGE))
        return xac_err_set(err, XAC_EINVAL,
                           "journal %s: salvage rewrites the journal and cannot be read-only", dir);
    return XAC_OK;
}

int journal_open(const char *dir, int flags, journal **out, xac_err *err)
{
    journal_opts o = {.flags = flags};
    return journal_open_opts(dir, &o, out, err);
}

int journal_open_opts(const char *dir, const journal_opts *opts, journal **out, xac_err *err)
{
    *out = NULL;
    journal_opts o = opts != NULL ? *opts : (journal_opts){0};
    if (o.segment_size == 0)
        o.segment_size = JOURNAL_SEGMENT_SIZE_DEFAULT;
    int rc = check_opts(dir, &o, err);
    if (rc != XAC_OK)
        return rc;
    journal *j = calloc(1, sizeof *j);
    if (j == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory opening journal %s", dir);
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    j->o = o;
    j->readonly = (o.flags & JOURNAL_READONLY) != 0;
    j->lock_fd = -1;
    j->seg_fd = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->work_cv, NULL);
    if (jtab_init(&j->tab) != 0)
        rc = xac_err_set(err, XAC_ENOMEM, "out of memory opening journal %s", dir);
    struct stat sb;
    if (rc == XAC_OK && j->readonly && stat(dir, &sb) != 0)
        rc = xac_err_set(err, XAC_EJOURNAL, "cannot open journal directory %s: %s (errno %d)", dir,
                         strerror(errno), errno);
    if (rc == XAC_OK && !j->readonly)
        rc = mkdir_p(dir, err);
    if (rc == XAC_OK)
        rc = take_lock(j, err);
    bool damaged = false;
    if (rc == XAC_OK)
        rc = replay_all(j, &damaged, err);
    if (rc == XAC_OK && !j->readonly && j->seg_fd < 0) {
        j->segno = 1;
        j->off = JSEG_HDR_LEN;
        j->seg_cap = o.segment_size;
        jseg_path(j->seg_path, sizeof j->seg_path, dir, j->segno);
        rc = jseg_create(dir, j->segno, o.segment_size, &j->o, &j->seg_fd, err);
        if (rc == XAC_OK && jtab_add_seg(&j->tab, j->segno) != 0)
            rc = xac_err_set(err, XAC_ENOMEM, "out of memory opening journal %s", dir);
        if (rc == XAC_OK)
            j->st.created++;
    }
    /* After salvage every live commit moves to a clean segment, so that the
     * damaged bytes stop being part of the journal. */
    if (rc == XAC_OK && damaged)
        rc = jw_compact_all(j, err);
    if (rc == XAC_OK && !j->readonly) {
        jw_delete_dead(j);
        rc = jw_start(j, err);
    }
    if (rc != XAC_OK) {
        journal_close(j);
        return rc;
    }
    xac_logi("journal %s: %" PRIu64 " records replayed from %zu segment(s), %zu committed "
             "transactions not ended%s",
             dir, j->st.replayed, j->tab.nsegs, j->tab.count, j->readonly ? " (read-only)" : "");
    *out = j;
    return XAC_OK;
}

void journal_close(journal *j)
{
    if (j == NULL)
        return;
    jw_stop(j);
    if (j->seg_fd >= 0)
        close(j->seg_fd);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the flock */
    jtab_free(&j->tab);
    free(j->fill.buf.data);
    free(j->out.buf.data);
    free(j->wvec);
    pthread_cond_destroy(&j->work_cv);
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
    jwait w = {.ent = jent_new(t, decided)};
    if (w.ent == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory committing %s", t->gtrid);

    pthread_mutex_lock(&j->mu);
    rc = refuse(j, "commit", t->gtrid, err);
    if (rc == XAC_OK && jbuf_put(&j->fill.buf, rec, n) != 0)
        rc = xac_err_set(err, XAC_ENOMEM, "out of memory queueing the commit of %s", t->gtrid);
    if (rc != XAC_OK) {
        pthread_mutex_unlock(&j->mu);
        free(w.ent);
        return rc;
    }
    *j->fill.tail = &w;
    j->fill.tail = &w.next;
    if (j->fill.commits++ == 0)
        pthread_cond_signal(&j->work_cv);
    pthread_mutex_unlock(&j->mu);
    jw_wait(&w);
    if (w.rc == XAC_OK)
        return XAC_OK; /* the table owns w.ent now */
    free(w.ent);
    *in_doubt = w.in_doubt;
    if (w.in_doubt)
        return xac_err_set(err, XAC_EJOURNAL,
                           "commit of %s may or may not be durable (its outcome is settled at the "
                           "next start-up; do not roll its branches back): %s",
                           t->gtrid, w.msg);
    return xac_err_set(err, XAC_EJOURNAL, "commit of %s was not made durable: %s", t->gtrid, w.msg);
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
    if (rc == XAC_OK && jtab_get(&j->tab, gtrid) != NULL) {
        if (jbuf_put(&j->fill.buf, rec, n) != 0) {
            rc = xac_err_set(err, XAC_ENOMEM, "out of memory queueing the end of %s", gtrid);
        } else {
            jtab_del(&j->tab, gtrid);
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
    bool r = jtab_get(&j->tab, gtrid) != NULL;
    pthread_mutex_unlock(&j->mu);
    return r;
}

bool journal_lookup(journal *j, const char *gtrid, journal_txn *out)
{
    if (j == NULL || gtrid == NULL)
        return false;
    pthread_mutex_lock(&j->mu);
    jent *e = jtab_get(&j->tab, gtrid);
    if (e != NULL && out != NULL)
        jent_to_txn(e, out);
    pthread_mutex_unlock(&j->mu);
    return e != NULL;
}

typedef struct snap_ctx {
    journal_txn *a;
    size_t k;
} snap_ctx;

static void snap_one(void *vctx, jent *e)
{
    snap_ctx *c = vctx;
    jent_to_txn(e, &c->a[c->k++]);
}

int journal_pending(journal *j, journal_txn **out, size_t *n, xac_err *err)
{
    *out = NULL;
    *n = 0;
    if (j == NULL)
        return xac_err_set(err, XAC_EINVAL, "journal pending: no journal");
    pthread_mutex_lock(&j->mu);
    size_t cnt = j->tab.count;
    snap_ctx c = {.a = cnt > 0 ? malloc(cnt * sizeof *c.a) : NULL, .k = 0};
    if (cnt > 0 && c.a == NULL) {
        pthread_mutex_unlock(&j->mu);
        return xac_err_set(err, XAC_ENOMEM, "out of memory listing %zu committed transactions",
                           cnt);
    }
    jtab_each(&j->tab, snap_one, &c);
    pthread_mutex_unlock(&j->mu);
    *out = c.a;
    *n = c.k;
    return XAC_OK;
}

void journal_get_stats(journal *j, journal_stats *st)
{
    memset(st, 0, sizeof *st);
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    *st = j->st;
    st->pending = j->tab.count;
    st->segments = j->tab.nsegs;
    st->failed = j->failed;
    pthread_mutex_unlock(&j->mu);
}
