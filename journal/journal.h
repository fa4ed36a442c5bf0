/* The whole public face of journal/: the decision journal. A commit decision
 * becomes a fact when journal_commit returns: its record is written and covered
 * by fdatasync. END records are written lazily. On open the journal is replayed
 * into the set of committed-but-not-ended transactions, which is all that
 * recovery needs. One process owns a journal directory at a time (flock).
 * The on-disk format is in docs/journal.md. */
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
    JOURNAL_READONLY = 1 /* replay only; no writes. Still takes the lock. */
};

/* Creates the directory if needed, takes the lock and replays. A torn last
 * record is truncated (logged). A bad record before the end fails with a
 * message naming the file and the offset. Another process holding the lock
 * fails with XAC_EJOURNAL "journal ... is locked by another process". */
int journal_open(const char *dir, int flags, journal **out, xac_err *err);
void journal_close(journal *j);

/* Makes the decision durable. Blocks until the record's fdatasync returns.
 * Concurrent callers may share one write and one sync (group commit). On any
 * write or sync failure nothing is acknowledged, XAC_EJOURNAL is returned and
 * the journal refuses every later commit (it is failed, not retried). */
int journal_commit(journal *j, const journal_txn *t, xac_err *err);
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
    bool failed;
} journal_stats;
void journal_get_stats(journal *j, journal_stats *st);

#endif
