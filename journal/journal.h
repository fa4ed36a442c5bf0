/* The whole public face of journal/: the decision journal. A commit decision
 * becomes a fact when journal_commit returns: its record is written and covered
 * by fdatasync. END records are written lazily. The journal is a directory of
 * preallocated segment files; a segment whose commits have all ended is
 * deleted, and live commits in old segments are carried forward, so disk use
 * follows the committed-but-not-ended set. On open the journal is replayed
 * into that set, which is all that recovery needs. One process owns a journal
 * directory at a time (flock). The on-disk format is in docs/journal.md. */
#ifndef XAC_JOURNAL_H
#define XAC_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xac_common.h"

#define JOURNAL_MAX_BRANCHES 64

typedef struct journal journal;

/* A committed transaction as the journal knows it. */
typedef struct journal_txn {
    char gtrid[XAC_GTRID_MAX + 1];
    uint8_t nbranches;
    char resources[JOURNAL_MAX_BRANCHES][XAC_RESOURCE_MAX + 1];
    uint64_t decided_us; /* wall clock of the decision */
} journal_txn;

enum journal_flags {
    JOURNAL_READONLY = 1, /* replay only; no writes. Still takes the lock. */
    /* On a corrupt record: copy the segment into <dir>/damaged/, skip the bad
     * bytes to the next valid record, and start anyway. Decisions in the
     * skipped bytes are lost; the log names the range. */
    JOURNAL_SALVAGE = 2
};

#define JOURNAL_SEGMENT_SIZE_DEFAULT (16u << 20)
#define JOURNAL_SEGMENT_SIZE_MIN     (64u << 10)
#define JOURNAL_SEGMENT_SIZE_MAX     (1u << 30)

/* I/O operations a test hook may fail. */
typedef enum journal_io {
    JOURNAL_IO_WRITE,  /* the pwrite of a batch */
    JOURNAL_IO_SYNC,   /* the fdatasync of a batch */
    JOURNAL_IO_CREATE, /* creating and zero-filling a segment file */
    JOURNAL_IO_CUT     /* cutting a failed batch off again (ftruncate + fsync) */
} journal_io;

/* Named steps of the writer, for crash tests (see journal_opts.step):
 *   "batch-written"   a batch is written, not yet synced
 *   "batch-synced"    a batch is synced, its committers not yet woken
 *   "segment-created" a new segment file is in place, not yet in use
 *   "segment-switched" records now go to the new segment
 *   "carried"         live COMMITs of old segments are copied forward and
 *                     synced; the old segments are not yet deleted
 *   "segment-deleted" an old segment was unlinked, directory not yet synced */
typedef struct journal_opts {
    int flags;             /* enum journal_flags */
    uint64_t segment_size; /* bytes per segment file; 0 = the default */
    /* Test hooks, NULL in production. io_fault returns 0 to let op run, or an
     * errno to fail it with. step is called at each named step above, from
     * the writer thread, without the journal's mutex held. */
    int (*io_fault)(void *ctx, journal_io op);
    void (*step)(void *ctx, const char *name);
    void *hook_ctx;
} journal_opts;

/* Creates the directory if needed, takes the lock and replays. A torn last
 * record is truncated (logged). A bad record before the end fails with a
 * message naming the file and the offset. Another process holding the lock
 * fails with XAC_EJOURNAL "journal ... is locked by another process". */
int journal_open(const char *dir, int flags, journal **out, xac_err *err);
/* The same with options; o may be NULL. A segment_size out of range fails
 * with XAC_EINVAL. */
int journal_open_opts(const char *dir, const journal_opts *o, journal **out, xac_err *err);
void journal_close(journal *j);

/* Makes the decision durable. Blocks until the record's fdatasync returns.
 * Concurrent callers share one write and one sync (group commit); a lone
 * caller is written at once, with no timer. On failure XAC_EJOURNAL is
 * returned and *in_doubt says what the caller may do:
 *   false: the record is not on disk and never will be (it was never written,
 *          or the failed batch was cut off the segment and that was synced).
 *          The transaction did not commit; roll its branches back.
 *   true:  the record may be on disk. Do not roll back and do not report an
 *          outcome; the next start-up's replay settles it.
 * A failed write or fdatasync fails the journal for good: every later commit
 * is refused (in_doubt false) until the process reopens it. A segment that
 * cannot be created fails only the batch that needed it. */
int journal_commit(journal *j, const journal_txn *t, bool *in_doubt, xac_err *err);
/* Notes that every branch of gtrid is done. Not forced. */
int journal_end(journal *j, const char *gtrid, xac_err *err);

/* Whether gtrid has a COMMIT record and no END record. */
bool journal_is_committed(journal *j, const char *gtrid);
/* Copies out the committed-but-not-ended transaction, if any. */
bool journal_lookup(journal *j, const char *gtrid, journal_txn *out);
/* A snapshot of every committed-but-not-ended transaction. *out is malloc'd. */
int journal_pending(journal *j, journal_txn **out, size_t *n, xac_err *err);

/* Counters for tests and status. */
typedef struct journal_stats {
    uint64_t commits;  /* COMMIT records written by this process */
    uint64_t ends;     /* END records written by this process */
    uint64_t syncs;    /* fdatasync calls */
    uint64_t replayed; /* records read at open */
    size_t pending;    /* committed, not ended */
    uint64_t segments; /* segment files in use now (the spare not counted) */
    uint64_t created;  /* segment files created by this process */
    uint64_t deleted;  /* segment files deleted by this process */
    uint64_t carried;  /* COMMIT records carried forward by this process */
    uint64_t salvaged; /* bytes skipped by a JOURNAL_SALVAGE open */
    bool failed;
} journal_stats;
void journal_get_stats(journal *j, journal_stats *st);

#endif
