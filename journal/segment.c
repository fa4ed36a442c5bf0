/* Segment files of the journal: naming, listing, atomic creation of
 * zero-filled (preallocated) segments, header checks, the copy a salvage
 * keeps, and the replay scan that tells the zero tail of a segment (its
 * normal end) and a torn record (truncated) from corruption (refused, or
 * skipped by salvage). Replay streams the file through a fixed buffer: memory
 * does not grow with the journal's history. Segments are preallocated so that
 * a commit's fdatasync writes data only, not the file's size. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal_int.h"

#define RBUF_LEN (64 * 1024)

void jseg_path(char *out, size_t outlen, const char *dir, uint64_t segno)
{
    snprintf(out, outlen, "%s/%016" PRIx64 JSEG_SUFFIX, dir, segno);
}

static bool parse_name(const char *name, uint64_t *segno)
{
    if (strlen(name) != JSEG_NAME_LEN || strcmp(name + 16, JSEG_SUFFIX) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    *segno = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int jseg_list(const char *dir, bool readonly, uint64_t **segs, size_t *n, xac_err *err)
{
    *segs = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return xac_err_set(err, XAC_EJOURNAL, "cannot list journal directory %s: %s (errno %d)",
                           dir, strerror(errno), errno);
    size_t cap = 0;
    struct dirent *e;
    int rc = XAC_OK;
    while ((e = readdir(d)) != NULL) {
        uint64_t segno;
        size_t nl = strlen(e->d_name);
        if (nl == JSEG_NAME_LEN + 4 && strcmp(e->d_name + JSEG_NAME_LEN, ".tmp") == 0) {
            /* A creation that never reached its rename: it holds no records. */
            if (!readonly) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                if (unlink(p) == 0)
                    xac_logw("journal: removed unfinished segment file %s", p);
            }
            continue;
        }
        if (!parse_name(e->d_name, &segno))
            continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            uint64_t *ns = realloc(*segs, nc * sizeof *ns);
            if (ns == NULL) {
                rc = xac_err_set(err, XAC_ENOMEM, "out of memory listing journal %s", dir);
                break;
            }
            *segs = ns;
            cap = nc;
        }
        (*segs)[(*n)++] = segno;
    }
    closedir(d);
    if (rc != XAC_OK) {
        free(*segs);
        *segs = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort(*segs, *n, sizeof **segs, cmp_u64);
    return XAC_OK;
}

static int write_full(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int jseg_fsync_dir(const char *dir, xac_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return xac_err_set(err, XAC_EJOURNAL, "cannot fsync journal directory %s: %s (errno %d)",
                           dir, strerror(e), e);
    }
    close(fd);
    return XAC_OK;
}

#define ZERO_CHUNK (1u << 20)

/* Writes the header and zeros up to size. */
static int fill_segment(int fd, uint64_t segno, uint64_t size)
{
    uint8_t h[JSEG_HDR_LEN];
    memcpy(h, JSEG_MAGIC, 4);
    jrec_put_u32(h + 4, JOURNAL_FORMAT_VERSION);
    jrec_put_u64(h + 8, segno);
    jrec_put_u32(h + 16, xac_crc32c(0, h, 16));
    if (write_full(fd, h, sizeof h) != 0)
        return -1;
    uint8_t *z = calloc(1, ZERO_CHUNK);
    if (z == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    for (uint64_t at = JSEG_HDR_LEN; at < size && rc == 0;) {
        size_t n = size - at < ZERO_CHUNK ? (size_t)(size - at) : ZERO_CHUNK;
        rc = write_full(fd, z, n);
        at += n;
    }
    free(z);
    return rc;
}

int jseg_create(const char *dir, uint64_t segno, uint64_t size, const journal_opts *o, int *fdp,
                xac_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    jseg_path(path, sizeof path, dir, segno);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fault = o != NULL && o->io_fault != NULL ? o->io_fault(o->hook_ctx, JOURNAL_IO_CREATE) : 0;
    if (fault != 0)
        return xac_err_set(err, XAC_EJOURNAL, "cannot create journal segment %s: %s (errno %d)",
                           tmp, strerror(fault), fault);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return xac_err_set(err, XAC_EJOURNAL, "cannot create journal segment %s: %s (errno %d)",
                           tmp, strerror(errno), errno);
    if (fill_segment(fd, segno, size) != 0 || fsync(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return xac_err_set(err, XAC_EJOURNAL,
                           "cannot create journal segment %s (%" PRIu64
                           " bytes, preallocated): %s (errno %d)",
                           path, size, strerror(e), e);
    }
    int rc = jseg_fsync_dir(dir, err);
    if (rc != XAC_OK) {
        close(fd);
        return rc;
    }
    *fdp = fd;
    return XAC_OK;
}

int jseg_copy_aside(const char *dir, const char *path, char *copy, size_t copylen, xac_err *err)
{
    char ddir[PATH_MAX];
    snprintf(ddir, sizeof ddir, "%s/damaged", dir);
    if (mkdir(ddir, 0750) != 0 && errno != EEXIST)
        return xac_err_set(err, XAC_EJOURNAL, "cannot create %s: %s (errno %d)", ddir,
                           strerror(errno), errno);
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    snprintf(copy, copylen, "%s/%s.%lld", ddir, base, (long long)time(NULL));
    int in = open(path, O_RDONLY | O_CLOEXEC);
    int out = in >= 0 ? open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640) : -1;
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    uint8_t *buf = rc == 0 ? malloc(RBUF_LEN) : NULL;
    if (rc == 0 && buf == NULL) {
        errno = ENOMEM;
        rc = -1;
    }
    while (rc == 0) {
        ssize_t k = read(in, buf, RBUF_LEN);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -1 : 0;
            break;
        }
        rc = write_full(out, buf, (size_t)k);
    }
    if (rc == 0 && fsync(out) != 0)
        rc = -1;
    int e = errno;
    free(buf);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc != 0)
        return xac_err_set(err, XAC_EJOURNAL, "cannot copy damaged segment %s to %s: %s (errno %d)",
                           path, copy, strerror(e), e);
    return jseg_fsync_dir(ddir, err);
}

/* A window onto the file, refilled by pread as the scan moves forward. */
typedef struct reader {
    int fd;
    uint64_t size;
    uint8_t *buf;
    uint64_t boff;
    size_t blen;
} reader;

/* Makes [off, off+n) available (less at end of file); returns the count
 * available or -1 with errno set. */
static ssize_t rd_get(reader *r, uint64_t off, size_t n, const uint8_t **p)
{
    if (off >= r->size) {
        *p = r->buf;
        return 0;
    }
    uint64_t left = r->size - off;
    if (n > left)
        n = (size_t)left;
    if (!(off >= r->boff && off + n <= r->boff + r->blen)) {
        size_t want = RBUF_LEN;
        if (want > left)
            want = (size_t)left;
        size_t got = 0;
        while (got < want) {
            ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return -1;
            if (k == 0)
                break;
            got += (size_t)k;
        }
        r->boff = off;
        r->blen = got;
        if (n > got)
            n = got;
    }
    *p = r->buf + (off - r->boff);
    return (ssize_t)n;
}

/* 1 when every byte from off to the end of the file is zero, 0 if not, -1 on
 * a read error. */
static int zero_from(reader *r, uint64_t off)
{
    while (off < r->size) {
        const uint8_t *p;
        ssize_t k = rd_get(r, off, RBUF_LEN, &p);
        if (k <= 0)
            return -1;
        for (ssize_t i = 0; i < k; i++)
            if (p[i] != 0)
                return 0;
        off += (uint64_t)k;
    }
    return 1;
}

/* Whether a whole valid record starts in [from, from + one longest record).
 * Its callers have seen only zeros beyond that window, so no record can start
 * later, and the scan stays short. */
static bool valid_record_after(reader *r, uint64_t from)
{
    const uint8_t *p;
    ssize_t k = rd_get(r, from, JREC_MAX_LEN, &p);
    for (ssize_t i = 0; i + JREC_HDR_LEN <= k; i++)
        if (jrec_valid_at(p + i, (size_t)(k - i)))
            return true;
    return false;
}

static int bad_header(const char *path, const char *why, xac_err *err)
{
    return xac_err_set(err, XAC_EJOURNAL,
                       "journal segment %s has a bad header (%s); refusing to use it: it is not "
                       "an xac journal segment of format %d, or it is damaged. Do not delete it: "
                       "it may hold commit decisions",
                       path, why, JOURNAL_FORMAT_VERSION);
}

static int check_header(reader *r, const char *path, uint64_t segno, xac_err *err)
{
    const uint8_t *h;
    ssize_t k = rd_get(r, 0, JSEG_HDR_LEN, &h);
    if (k < 0)
        return xac_err_set(err, XAC_EJOURNAL, "cannot read journal segment %s: %s (errno %d)", path,
                           strerror(errno), errno);
    if (k < JSEG_HDR_LEN)
        return bad_header(path, "file shorter than a segment header", err);
    if (memcmp(h, JSEG_MAGIC, 4) != 0)
        return bad_header(path, "no XACJ magic", err);
    if (xac_crc32c(0, h, 16) != jrec_get_u32(h + 16))
        return bad_header(path, "header CRC mismatch", err);
    uint32_t ver = jrec_get_u32(h + 4);
    if (ver != JOURNAL_FORMAT_VERSION) {
        char why[64];
        snprintf(why, sizeof why, "format version %" PRIu32, ver);
        return bad_header(path, why, err);
    }
    if (jrec_get_u64(h + 8) != segno)
        return bad_header(path, "segment number differs from the file name", err);
    return XAC_OK;
}

static int corrupt(const char *path, uint64_t off, const char *why, xac_err *err)
{
    return xac_err_set(err, XAC_EJOURNAL,
                       "journal segment %s is corrupt at byte offset %" PRIu64
                       ": %s. Refusing to start: records after it would be lost. Keep the "
                       "file for inspection and restore the journal from a copy",
                       path, off, why);
}

/* The tail from off is torn: zero it in place, so that the segment keeps
 * its preallocated size (or ignore it when read-only). By the torn rule only
 * the longest record's worth of bytes after off can be non-zero. */
static int torn(reader *r, const jseg_scan *sc, uint64_t off, const char *why, xac_err *err)
{
    if (!sc->last)
        return corrupt(sc->path, off, "torn record in a segment that is not the last", err);
    if (sc->readonly) {
        xac_logw("journal segment %s: torn record at byte offset %" PRIu64
                 " (%s); ignored, not repaired (read-only)",
                 sc->path, off, why);
        return XAC_OK;
    }
    uint64_t n = r->size - off < JREC_MAX_LEN ? r->size - off : JREC_MAX_LEN;
    uint8_t zeros[JREC_MAX_LEN];
    memset(zeros, 0, sizeof zeros);
    if (pwrite(r->fd, zeros, (size_t)n, (off_t)off) != (ssize_t)n || fdatasync(r->fd) != 0)
        return xac_err_set(err, XAC_EJOURNAL,
                           "cannot zero the torn tail of journal segment %s at byte offset "
                           "%" PRIu64 ": %s (errno %d)",
                           sc->path, off, strerror(errno), errno);
    xac_logw("journal segment %s: torn record at byte offset %" PRIu64 " (%s); zeroed %" PRIu64
             " bytes",
             sc->path, off, why, n);
    return XAC_OK;
}

/* Salvage: the offset of the next whole valid record after off, or the end
 * of the file. */
static int resync(reader *r, uint64_t off, uint64_t *next)
{
    for (uint64_t pos = off + 1; pos + JREC_HDR_LEN <= r->size; pos++) {
        const uint8_t *p;
        ssize_t k = rd_get(r, pos, JREC_MAX_LEN, &p);
        if (k < 0)
            return -1;
        if (jrec_valid_at(p, (size_t)k)) {
            *next = pos;
            return 0;
        }
    }
    *next = r->size;
    return 0;
}

typedef enum { REC_OK, REC_END, REC_TORN, REC_CORRUPT, REC_IOERR } rec_verdict;

/* A bad record at off is a torn write when nothing but zeros lies beyond the
 * longest record that could start there and no whole record starts after it:
 * a crash cuts a write short and leaves the rest of the (zero-filled or
 * ended) file as it was. Anything else is damage. */
static rec_verdict torn_or_corrupt(reader *r, uint64_t off)
{
    int z = zero_from(r, off + JREC_MAX_LEN);
    if (z < 0)
        return REC_IOERR;
    return z && !valid_record_after(r, off + 1) ? REC_TORN : REC_CORRUPT;
}

/* Judges the record at off; fills why for TORN and CORRUPT. */
static rec_verdict judge(reader *r, uint64_t off, jrec *rec, uint32_t *len, char *why,
                         size_t whylen)
{
    uint64_t rem = r->size - off;
    const uint8_t *p;
    if (rem == 0)
        return REC_END;
    /* A record's header is never all zero, so the scan of the rest of the
     * file for zeros starts only where the header is. */
    ssize_t k = rd_get(r, off, JREC_HDR_LEN, &p);
    if (k < 0)
        return REC_IOERR;
    bool zhdr = true;
    for (ssize_t i = 0; i < k; i++)
        zhdr = zhdr && p[i] == 0;
    int z = zhdr ? zero_from(r, off) : 0;
    if (z < 0)
        return REC_IOERR;
    if (z)
        return REC_END; /* the preallocated rest of the segment */
    if (rem < JREC_HDR_LEN) {
        snprintf(why, whylen, "record header cut short");
        return REC_TORN;
    }
    if (rd_get(r, off, JREC_HDR_LEN, &p) < JREC_HDR_LEN)
        return REC_IOERR;
    *len = jrec_get_u32(p);
    uint32_t crc = jrec_get_u32(p + 4);
    uint8_t type = p[8];
    if (*len < JREC_MIN_PAYLOAD || *len > JREC_MAX_PAYLOAD) {
        snprintf(why, whylen, "record length %" PRIu32 " out of range", *len);
        return torn_or_corrupt(r, off);
    }
    if (rem < JREC_HDR_LEN + (uint64_t)*len) {
        snprintf(why, whylen, "record cut short");
        return torn_or_corrupt(r, off);
    }
    if (rd_get(r, off, JREC_HDR_LEN + *len, &p) < (ssize_t)(JREC_HDR_LEN + *len))
        return REC_IOERR;
    uint32_t calc = xac_crc32c(0, p + 8, (size_t)*len + 1);
    if (calc != crc) {
        snprintf(why, whylen, "CRC mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")", crc,
                 calc);
        return torn_or_corrupt(r, off);
    }
    /* A write cut short never yields a matching CRC: this is damage. */
    const char *bad = jrec_decode(type, p + JREC_HDR_LEN, *len, rec);
    if (bad != NULL) {
        snprintf(why, whylen, "%s", bad);
        return REC_CORRUPT;
    }
    return REC_OK;
}

static int scan(reader *r, jseg_scan *sc, xac_err *err)
{
    uint64_t off = JSEG_HDR_LEN;
    for (;;) {
        sc->end = off;
        jrec rec;
        uint32_t len = 0;
        char why[128];
        switch (judge(r, off, &rec, &len, why, sizeof why)) {
        case REC_OK:
            sc->apply(sc->ctx, &rec);
            sc->nrec++;
            off += JREC_HDR_LEN + len;
            continue;
        case REC_END:
            return XAC_OK;
        case REC_TORN:
            if (!sc->salvage || sc->last)
                return torn(r, sc, off, why, err);
            break;
        case REC_CORRUPT:
            if (!sc->salvage)
                return corrupt(sc->path, off, why, err);
            break;
        case REC_IOERR:
            return xac_err_set(err, XAC_EJOURNAL,
                               "cannot read journal segment %s at byte offset %" PRIu64
                               ": %s (errno %d)",
                               sc->path, off, strerror(errno), errno);
        }
        uint64_t next;
        if (resync(r, off, &next) != 0)
            return xac_err_set(err, XAC_EJOURNAL,
                               "cannot read journal segment %s at byte offset %" PRIu64
                               ": %s (errno %d)",
                               sc->path, off, strerror(errno), errno);
        xac_logw("journal segment %s: SALVAGE skipped bytes %" PRIu64 " to %" PRIu64
                 " (%s); commit decisions in them are lost",
                 sc->path, off, next, why);
        sc->skipped += next - off;
        off = next;
    }
}

int jseg_replay(int fd, jseg_scan *sc, xac_err *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return xac_err_set(err, XAC_EJOURNAL, "cannot stat journal segment %s: %s (errno %d)",
                           sc->path, strerror(errno), errno);
    reader r = {.fd = fd, .size = (uint64_t)sb.st_size, .buf = malloc(RBUF_LEN)};
    if (r.buf == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory replaying journal segment %s", sc->path);
    int rc = check_header(&r, sc->path, sc->segno, err);
    if (rc == XAC_OK)
        rc = scan(&r, sc, err);
    free(r.buf);
    return rc;
}
