/* The journal's record codec: COMMIT and END records to and from bytes, with
 * every length, count and name checked on the way in, since replay must never
 * trust a payload just because its CRC matched. Integers are little-endian. */
#include <string.h>

#include "journal_int.h"

void jrec_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void jrec_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t jrec_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t jrec_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* gtrids are xac's own "<node>.<boot>.<seq>", but any visible ASCII is kept so
 * that the journal does not need to change when the gtrid format does. */
bool jrec_valid_gtrid(const char *g, size_t len)
{
    if (len < 1 || len > XAC_GTRID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)g[i] < 0x21 || (unsigned char)g[i] > 0x7e)
            return false;
    return true;
}

static int dup_resource(const journal_txn *t)
{
    for (int a = 0; a < t->nbranches; a++)
        for (int b = a + 1; b < t->nbranches; b++)
            if (strcmp(t->resources[a], t->resources[b]) == 0)
                return a;
    return -1;
}

int jrec_check_txn(const journal_txn *t, xac_err *err)
{
    if (t == NULL)
        return xac_err_set(err, XAC_EINVAL, "journal commit: no transaction given");
    size_t glen = strnlen(t->gtrid, sizeof t->gtrid);
    if (glen > XAC_GTRID_MAX || !jrec_valid_gtrid(t->gtrid, glen))
        return xac_err_set(err, XAC_EINVAL,
                           "journal commit: invalid gtrid \"%.64s\" (need 1 to %d visible ASCII "
                           "characters)",
                           t->gtrid, XAC_GTRID_MAX);
    if (t->nbranches < 1 || t->nbranches > JOURNAL_MAX_BRANCHES)
        return xac_err_set(err, XAC_EINVAL, "journal commit of %s: %u branches (need 1 to %d)",
                           t->gtrid, t->nbranches, JOURNAL_MAX_BRANCHES);
    for (int i = 0; i < t->nbranches; i++) {
        if (!xac_valid_name(t->resources[i], XAC_RESOURCE_MAX))
            return xac_err_set(err, XAC_EINVAL,
                               "journal commit of %s: branch %d has an invalid resource name "
                               "\"%.32s\" (use 1 to %d of A-Z a-z 0-9 _ -)",
                               t->gtrid, i, t->resources[i], XAC_RESOURCE_MAX);
    }
    int d = dup_resource(t);
    if (d >= 0)
        return xac_err_set(err, XAC_EINVAL, "journal commit of %s: resource %s appears twice",
                           t->gtrid, t->resources[d]);
    return XAC_OK;
}

static size_t finish(uint8_t *out, uint8_t type, size_t plen)
{
    jrec_put_u32(out, (uint32_t)plen);
    out[8] = type;
    jrec_put_u32(out + 4, xac_crc32c(0, out + 8, plen + 1));
    return JREC_HDR_LEN + plen;
}

size_t jrec_encode_commit(const journal_txn *t, uint64_t decided_us, uint8_t *out)
{
    uint8_t *p = out + JREC_HDR_LEN;
    size_t glen = strlen(t->gtrid);
    *p++ = (uint8_t)glen;
    memcpy(p, t->gtrid, glen);
    p += glen;
    jrec_put_u64(p, decided_us);
    p += 8;
    *p++ = t->nbranches;
    for (int i = 0; i < t->nbranches; i++) {
        size_t n = strlen(t->resources[i]);
        *p++ = (uint8_t)n;
        memcpy(p, t->resources[i], n);
        p += n;
    }
    return finish(out, JREC_COMMIT, (size_t)(p - (out + JREC_HDR_LEN)));
}

size_t jrec_encode_end(const char *gtrid, uint8_t *out)
{
    size_t glen = strlen(gtrid);
    out[JREC_HDR_LEN] = (uint8_t)glen;
    memcpy(out + JREC_HDR_LEN + 1, gtrid, glen);
    return finish(out, JREC_END, 1 + glen);
}

const char *jrec_decode(uint8_t type, const uint8_t *p, size_t n, jrec *out)
{
    memset(out, 0, sizeof *out);
    out->type = type;
    if (type != JREC_COMMIT && type != JREC_END)
        return "unknown record type";
    size_t at = 0;
    if (n < 1)
        return "empty payload";
    size_t glen = p[at++];
    if (glen > n - at)
        return "gtrid runs past the end of the payload";
    if (!jrec_valid_gtrid((const char *)p + at, glen))
        return "invalid gtrid";
    memcpy(out->t.gtrid, p + at, glen);
    at += glen;
    if (type == JREC_END)
        return at == n ? NULL : "trailing bytes after the gtrid of an END record";
    if (n - at < 9)
        return "COMMIT record too short for its decision time and branch count";
    out->t.decided_us = jrec_get_u64(p + at);
    at += 8;
    out->t.nbranches = p[at++];
    if (out->t.nbranches < 1 || out->t.nbranches > JOURNAL_MAX_BRANCHES)
        return "branch count out of range";
    for (int i = 0; i < out->t.nbranches; i++) {
        if (at >= n)
            return "resource names run past the end of the payload";
        size_t rlen = p[at++];
        if (rlen < 1 || rlen > XAC_RESOURCE_MAX || rlen > n - at)
            return "resource name length out of range";
        memcpy(out->t.resources[i], p + at, rlen);
        at += rlen;
        if (strlen(out->t.resources[i]) != rlen ||
            !xac_valid_name(out->t.resources[i], XAC_RESOURCE_MAX))
            return "invalid resource name";
    }
    if (at != n)
        return "trailing bytes after the resource names";
    if (dup_resource(&out->t) >= 0)
        return "resource named twice";
    return NULL;
}

bool jrec_valid_at(const uint8_t *p, size_t avail)
{
    if (avail < JREC_HDR_LEN)
        return false;
    uint32_t len = jrec_get_u32(p);
    if (len < JREC_MIN_PAYLOAD || len > JREC_MAX_PAYLOAD || len > avail - JREC_HDR_LEN)
        return false;
    if (xac_crc32c(0, p + 8, (size_t)len + 1) != jrec_get_u32(p + 4))
        return false;
    jrec r;
    return jrec_decode(p[8], p + JREC_HDR_LEN, len, &r) == NULL;
}
