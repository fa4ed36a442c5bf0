/* Internals shared by the files of journal/: the record codec (record.c) and
 * the segment files (segment.c), which journal.c drives. Not installed and not
 * used outside journal/. The byte layout is in docs/journal.md. */
#ifndef XAC_JOURNAL_INT_H
#define XAC_JOURNAL_INT_H

#include <stdbool.h>
#include <stddef.h>
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
/* Creates segment segno atomically (temp file, fsync, rename, fsync dir) and
 * returns it open for writing. */
int jseg_create(const char *dir, uint64_t segno, int *fd, xac_err *err);

typedef void (*jseg_apply_fn)(void *ctx, const jrec *r);
/* Checks the header of the open segment fd, then applies every record. A torn
 * tail is truncated when last and !readonly (ignored when readonly); in a
 * segment that is not the last it is corruption. *end is the offset after the
 * last good record. */
int jseg_replay(int fd, const char *path, uint64_t segno, bool last, bool readonly,
                jseg_apply_fn apply, void *ctx, uint64_t *end, uint64_t *nrec, xac_err *err);

#endif
