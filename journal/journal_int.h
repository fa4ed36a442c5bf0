/* Internals shared by the files of journal/: the record codec (record.c), the
 * segment files (segment.c), the committed-but-not-ended table (table.c) and
 * the writer thread (writer.c), which journal.c drives. Not installed and not
 * used outside journal/. The byte layout is in docs/journal.md. */
#ifndef XAC_JOURNAL_INT_H
#define XAC_JOURNAL_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "journal.h"

#define JOURNAL_FORMAT_VERSION 1
#define JSEG_MAGIC             "XACJ"
#define JSEG_HDR_LEN           20 /* magic, version, segment number, CRC */
#define JSEG_SUFFIX            ".xacj"
#define JSEG_NAME_LEN          21 /* 16 hex digits + ".xacj" */

#define JREC_HDR_LEN     9 /* payload length, CRC, type */
#define JREC_COMMIT      1
#define JREC_END         2
#define JREC_MIN_PAYLOAD 2 /* an END with a one-byte gtrid */
#define JREC_MAX_PAYLOAD (1 + XAC_GTRID_MAX + 8 + 1 + JOURNAL_MAX_BRANCHES * (1 + XAC_RESOURCE_MAX))
#define JREC_MAX_LEN     (JREC_HDR_LEN + JREC_MAX_PAYLOAD)

void jrec_put_u32(uint8_t *p, uint32_t v);
void jrec_put_u64(uint8_t *p, uint64_t v);
uint32_t jrec_get_u32(const uint8_t *p);
uint64_t jrec_get_u64(const uint8_t *p);

/* Checks what a caller hands to journal_commit (XAC_EINVAL on error). */
int jrec_check_txn(const journal_txn *t, xac_err *err);
bool jrec_valid_gtrid(const char *g, size_t len);
/* Encode one whole record (header included) into out[JREC_MAX_LEN]; the input
 * must already be checked. Return the record's length. */
size_t jrec_encode_commit(const journal_txn *t, uint64_t decided_us, uint8_t *out);
size_t jrec_encode_end(const char *gtrid, uint8_t *out);

/* A decoded record. For END only t.gtrid is set. */
typedef struct jrec {
    uint8_t type;
    journal_txn t;
} jrec;

/* Decodes and validates a payload whose CRC matched. Returns NULL, or why the
 * payload is invalid. */
const char *jrec_decode(uint8_t type, const uint8_t *p, size_t n, jrec *out);
/* Checks a whole record in memory (header, CRC, payload). */
bool jrec_valid_at(const uint8_t *p, size_t avail);

/* ------------------------------------------------------------- segments */

/* Every segment number in dir, ascending. Leftover "*.xacj.tmp" files from an
 * interrupted creation are removed unless readonly. *segs is malloc'd. */
int jseg_list(const char *dir, bool readonly, uint64_t **segs, size_t *n, xac_err *err);
void jseg_path(char *out, size_t outlen, const char *dir, uint64_t segno);
/* Makes the directory's entries durable. */
int jseg_fsync_dir(const char *dir, xac_err *err);
/* Creates segment segno atomically (temp file zero-filled to size, fsync,
 * rename, fsync dir) and returns it open for writing. o's io_fault hook may
 * fail it (JOURNAL_IO_CREATE). */
int jseg_create(const char *dir, uint64_t segno, uint64_t size, const journal_opts *o, int *fd,
                xac_err *err);
/* Copies a damaged segment into <dir>/damaged/ before salvage reads past the
 * damage; *copy gets the copy's path. */
int jseg_copy_aside(const char *dir, const char *path, char *copy, size_t copylen, xac_err *err);

typedef void (*jseg_apply_fn)(void *ctx, const jrec *r);

/* One segment's replay. A zero tail is the normal end of a (preallocated)
 * segment. A torn record at the tail is truncated when last and !readonly
 * (ignored when readonly); in a segment that is not the last it is
 * corruption. Corruption fails, unless salvage: then the scan skips to the
 * next valid record and counts the bytes it skipped. */
typedef struct jseg_scan {
    const char *path;
    uint64_t segno;
    bool last, readonly, salvage;
    jseg_apply_fn apply;
    void *ctx;
    uint64_t end;     /* out: offset after the last good record */
    uint64_t nrec;    /* in/out: records applied */
    uint64_t skipped; /* out: bytes salvage skipped */
} jseg_scan;
int jseg_replay(int fd, jseg_scan *s, xac_err *err);

/* ---------------------------------------------------------------- table */

/* A committed-but-not-ended transaction; sized to its branch count. */
typedef struct jent {
    struct jent *next;
    uint64_t hash;
    uint64_t decided_us;
    uint64_t segno;    /* the segment holding its newest COMMIT copy */
    uint64_t carry_to; /* nonzero while a carried copy waits for its sync */
    uint8_t nbranches;
    char gtrid[XAC_GTRID_MAX + 1];
    char res[][XAC_RESOURCE_MAX + 1];
} jent;

typedef struct jseg_live {
    uint64_t no;
    uint64_t live; /* entries whose segno is this segment */
} jseg_live;

typedef struct jtab {
    jent **buckets;
    size_t nbuckets;
    size_t count;
    jseg_live *segs; /* ascending; the last is the active segment */
    size_t nsegs, capsegs;
} jtab;

jent *jent_new(const journal_txn *t, uint64_t decided_us);
void jent_to_txn(const jent *e, journal_txn *t);
int jtab_init(jtab *t);
void jtab_free(jtab *t);
/* Takes ownership of e and counts it in segment e->segno. */
void jtab_put(jtab *t, jent *e);
bool jtab_del(jtab *t, const char *gtrid);
jent *jtab_get(jtab *t, const char *gtrid);
void jtab_each(jtab *t, void (*fn)(void *ctx, jent *e), void *ctx);
void jtab_move(jtab *t, jent *e, uint64_t segno);
int jtab_add_seg(jtab *t, uint64_t segno);
jseg_live *jtab_seg(jtab *t, uint64_t segno);
/* How many of the oldest segments hold nothing live (never the last). */
size_t jtab_deletable(const jtab *t);
void jtab_drop_segs(jtab *t, size_t n);

/* ---------------------------------------------------------------- writer */

typedef struct jbuf {
    uint8_t *data;
    size_t len, cap;
} jbuf;
int jbuf_put(jbuf *b, const void *p, size_t n);

/* A committer waiting for its batch; lives on the committer's stack. The
 * writer fills in the result of every waiter of a batch, then wakes only the
 * first; each waiter wakes two more (jw_wait), a binary tree over the batch,
 * so that the writer is back at its next write at once instead of waking
 * dozens of threads itself, and wake-ups run on every CPU. */
typedef struct jwait {
    struct jwait *next;
    struct jwait *kid[2]; /* whom this waiter wakes */
    jent *ent;            /* inserted into the table by the writer once durable */
    atomic_int done;      /* futex word: 1 once woken */
    bool in_doubt;
    int rc;
    char msg[XAC_ERR_MSG_MAX];
} jwait;

typedef struct jbatch {
    jbuf buf;
    jwait *head;
    jwait **tail;
    size_t commits;
} jbatch;

struct journal {
    char dir[PATH_MAX];
    char seg_path[PATH_MAX];
    journal_opts o;
    bool readonly;
    int lock_fd;
    int seg_fd;
    uint64_t segno;
    uint64_t off;     /* end of the records in the active segment */
    uint64_t seg_cap; /* the active segment file's size: rotate past it */

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* writer: a commit is waiting, or close */
    pthread_t writer;
    bool writer_started;
    jbatch fill;  /* the batch being filled */
    jbatch out;   /* the batch being written (writer only) */
    jwait **wvec; /* the waiters of out in order, to build the wake tree */
    size_t wcap;
    bool closing;
    bool failed;
    char fail_msg[XAC_ERR_MSG_MAX];

    jtab tab;
    journal_stats st;
};

/* Sleeps until w's batch is published, then wakes the next waiter. Called
 * without the mutex. */
void jw_wait(jwait *w);
/* Starts and stops the writer thread. Stop writes what is pending. */
int jw_start(journal *j, xac_err *err);
void jw_stop(journal *j);
/* Moves every live COMMIT into a fresh segment and deletes the older
 * segments; used before the writer starts (after salvage). */
int jw_compact_all(journal *j, xac_err *err);
/* Deletes the oldest segments that hold nothing live. */
void jw_delete_dead(journal *j);

#endif
