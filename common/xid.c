/* XIDs: how xac names its branches, how it tells its own from anyone else's,
 * and the three text forms a branch takes (PostgreSQL gid, MySQL literal, the
 * DBA form of xacctl). Every form must map back to the exact same bytes, or
 * recovery would commit or roll back the wrong branch. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xac_common.h"

static bool name_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool xac_valid_name(const char *s, size_t maxlen)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= maxlen || !name_char((unsigned char)s[n]))
            return false;
    }
    return n >= 1;
}

size_t xac_put_u64(char *o, uint64_t v, unsigned base)
{
    static const char digits[] = "0123456789abcdef";
    char d[20];
    size_t n = 0;
    do
        d[n++] = digits[v % base];
    while ((v /= base) != 0);
    for (size_t k = 0; k < n; k++)
        o[k] = d[n - 1 - k];
    return n;
}

int xac_gtrid_make(char out[XAC_GTRID_MAX + 1], const char *node_id, uint64_t boot, uint64_t seq,
                   xac_err *err)
{
    if (!xac_valid_name(node_id, XAC_NODE_ID_MAX))
        return xac_err_set(err, XAC_EINVAL,
                           "invalid node id \"%s\": use 1 to %d of A-Z a-z 0-9 _ -",
                           node_id != NULL ? node_id : "(null)", XAC_NODE_ID_MAX);
    /* "<node>.<boot hex>.<seq hex>": at most 24 + 1 + 16 + 1 + 16 = 58 bytes,
     * so it always fits. */
    size_t n = strlen(node_id);
    memcpy(out, node_id, n);
    out[n++] = '.';
    n += xac_put_u64(out + n, boot, 16);
    out[n++] = '.';
    n += xac_put_u64(out + n, seq, 16);
    out[n] = '\0';
    return XAC_OK;
}

int xac_xid_set(xac_xid *x, int32_t format_id, const void *gtrid, size_t gtrid_len,
                const void *bqual, size_t bqual_len, xac_err *err)
{
    if (gtrid_len < 1 || gtrid_len > XAC_GTRID_MAX)
        return xac_err_set(err, XAC_EINVAL, "XID gtrid length %zu is outside 1..%d", gtrid_len,
                           XAC_GTRID_MAX);
    if (bqual_len > XAC_BQUAL_MAX)
        return xac_err_set(err, XAC_EINVAL, "XID bqual length %zu is above %d", bqual_len,
                           XAC_BQUAL_MAX);
    if (gtrid == NULL || (bqual == NULL && bqual_len > 0))
        return xac_err_set(err, XAC_EINVAL, "XID part missing");
    memset(x, 0, sizeof *x);
    x->format_id = format_id;
    x->gtrid_len = (uint8_t)gtrid_len;
    x->bqual_len = (uint8_t)bqual_len;
    memcpy(x->gtrid, gtrid, gtrid_len);
    if (bqual_len > 0)
        memcpy(x->bqual, bqual, bqual_len);
    return XAC_OK;
}

int xac_xid_make(xac_xid *x, const char *gtrid, const char *resource, xac_err *err)
{
    if (gtrid == NULL || gtrid[0] == '\0' || strlen(gtrid) > XAC_GTRID_MAX)
        return xac_err_set(err, XAC_EINVAL, "invalid gtrid \"%s\": need 1 to %d bytes",
                           gtrid != NULL ? gtrid : "(null)", XAC_GTRID_MAX);
    if (!xac_valid_name(resource, XAC_RESOURCE_MAX))
        return xac_err_set(err, XAC_EINVAL,
                           "invalid resource name \"%s\": use 1 to %d of A-Z a-z 0-9 _ -",
                           resource != NULL ? resource : "(null)", XAC_RESOURCE_MAX);
    return xac_xid_set(x, XAC_FORMAT_ID, gtrid, strlen(gtrid), resource, strlen(resource), err);
}

bool xac_xid_equal(const xac_xid *a, const xac_xid *b)
{
    return a->format_id == b->format_id && a->gtrid_len == b->gtrid_len &&
           a->bqual_len == b->bqual_len && memcmp(a->gtrid, b->gtrid, a->gtrid_len) == 0 &&
           memcmp(a->bqual, b->bqual, a->bqual_len) == 0;
}

bool xac_xid_is_ours(const xac_xid *x, const char *node_id)
{
    if (x == NULL || node_id == NULL || x->format_id != XAC_FORMAT_ID)
        return false;
    size_t n = strlen(node_id);
    /* The '.' after the node id is what keeps node1 from claiming node10's XIDs. */
    return n > 0 && x->gtrid_len > n && memcmp(x->gtrid, node_id, n) == 0 && x->gtrid[n] == '.';
}

bool xac_xid_is_ours_on(const xac_xid *x, const char *node_id, const char *resource)
{
    if (!xac_xid_is_ours(x, node_id) || resource == NULL)
        return false;
    size_t n = strlen(resource);
    return x->bqual_len == n && memcmp(x->bqual, resource, n) == 0;
}

/* ------------------------------------------------------------ hex, base64 */

void xac_hex_encode(const void *p, size_t n, char *out)
{
    static const char digits[] = "0123456789ABCDEF";
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 0xF];
    }
    out[2 * n] = '\0';
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int xac_hex_decode(const char *s, size_t slen, void *out, size_t outcap, size_t *outlen)
{
    if (slen % 2 != 0 || slen / 2 > outcap)
        return XAC_EINVAL;
    uint8_t *o = out;
    for (size_t i = 0; i < slen; i += 2) {
        int hi = hex_val((unsigned char)s[i]);
        int lo = hex_val((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return XAC_EINVAL;
        o[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    if (outlen != NULL)
        *outlen = slen / 2;
    return XAC_OK;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url; returns the number of characters written (NUL added). */
static size_t b64_encode(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64_val(int c)
{
    const char *p = c != '\0' ? strchr(b64url, c) : NULL;
    return p != NULL ? (int)(p - b64url) : -1;
}

/* Strict unpadded base64url: only the canonical encoding of some bytes is
 * accepted (no padding, no stray low bits), so decode-then-encode is identity. */
static int b64_decode(const char *s, size_t slen, uint8_t *out, size_t outcap, size_t *outlen)
{
    if (slen % 4 == 1)
        return -1;
    size_t n = slen / 4 * 3 + (slen % 4 == 0 ? 0 : slen % 4 - 1);
    if (n > outcap)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    *outlen = o;
    return 0;
}

/* ----------------------------------------------------------- text forms */

/* Canonical decimal int32: optional '-', no leading zeros, no "-0". */
static int parse_i32(const char *s, size_t n, int32_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == n || n - i > 10)
        return -1;
    if (s[i] == '0' && (n - i > 1 || neg))
        return -1;
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (neg)
        v = -v;
    if (v < INT32_MIN || v > INT32_MAX)
        return -1;
    *out = (int32_t)v;
    return 0;
}

int xac_xid_to_pg_gid(const xac_xid *x, char out[XAC_PG_GID_MAX + 1], xac_err *err)
{
    if (!xac_xid_lengths_ok(x))
        return xac_err_set(err, XAC_EINVAL, "cannot make a PostgreSQL gid: bad XID lengths %u/%u",
                           x->gtrid_len, x->bqual_len);
    /* 11 + 1 + 86 + 1 + 86 = 185 bytes at most, under PostgreSQL's 200. */
    int n = snprintf(out, XAC_PG_GID_MAX + 1, "%" PRId32 ".", x->format_id);
    size_t o = (size_t)n;
    o += b64_encode((const uint8_t *)x->gtrid, x->gtrid_len, out + o);
    out[o++] = '.';
    b64_encode((const uint8_t *)x->bqual, x->bqual_len, out + o);
    return XAC_OK;
}

int xac_xid_from_pg_gid(const char *gid, xac_xid *x, xac_err *err)
{
    if (gid == NULL)
        return xac_err_set(err, XAC_EINVAL, "no PostgreSQL gid given");
    size_t len = strlen(gid);
    const char *d1 = memchr(gid, '.', len);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - gid)) : NULL;
    if (len > XAC_PG_GID_MAX || d1 == NULL || d2 == NULL)
        return xac_err_set(err, XAC_EINVAL,
                           "PostgreSQL gid \"%.200s\" is not an xac gid "
                           "(expected formatid.gtrid.bqual)",
                           gid);
    int32_t fid;
    uint8_t g[XAC_GTRID_MAX], b[XAC_BQUAL_MAX];
    size_t gl = 0, bl = 0;
    if (parse_i32(gid, (size_t)(d1 - gid), &fid) != 0 ||
        b64_decode(d1 + 1, (size_t)(d2 - d1 - 1), g, sizeof g, &gl) != 0 || gl == 0 ||
        b64_decode(d2 + 1, len - (size_t)(d2 + 1 - gid), b, sizeof b, &bl) != 0)
        return xac_err_set(err, XAC_EINVAL,
                           "PostgreSQL gid \"%.200s\" is not an xac gid "
                           "(expected formatid.gtrid.bqual, base64url without padding)",
                           gid);
    return xac_xid_set(x, fid, g, gl, b, bl, err);
}

bool xac_xid_lengths_ok(const xac_xid *x)
{
    return x->gtrid_len >= 1 && x->gtrid_len <= XAC_GTRID_MAX && x->bqual_len <= XAC_BQUAL_MAX;
}

int xac_xid_to_mysql(const xac_xid *x, char *out, size_t outlen, xac_err *err)
{
    if (!xac_xid_lengths_ok(x))
        return xac_err_set(err, XAC_EINVAL, "cannot make a MySQL XID: bad XID lengths %u/%u",
                           x->gtrid_len, x->bqual_len);
    /* X'<hex>',X'<hex>',<format id>: built by hand, as it goes out with
     * every XA statement. */
    size_t need = 2 + 2u * x->gtrid_len + 4 + 2u * x->bqual_len + 2 + 11 + 1;
    if (need > outlen)
        return xac_err_set(err, XAC_EINVAL,
                           "MySQL XID literal needs up to %zu bytes, buffer has %zu", need, outlen);
    size_t n = 0;
    memcpy(out, "X'", 2);
    n += 2;
    xac_hex_encode(x->gtrid, x->gtrid_len, out + n);
    n += 2u * x->gtrid_len;
    memcpy(out + n, "',X'", 4);
    n += 4;
    xac_hex_encode(x->bqual, x->bqual_len, out + n);
    n += 2u * x->bqual_len;
    memcpy(out + n, "',", 2);
    n += 2;
    if (x->format_id < 0)
        out[n++] = '-';
    n += xac_put_u64(out + n,
                     x->format_id < 0 ? (uint64_t)(-(int64_t)x->format_id) : (uint64_t)x->format_id,
                     10);
    out[n] = '\0';
    return XAC_OK;
}

/* Printable and free of the quote and backslash, so it can be shown quoted
 * without any escaping that MariaDB and xacctl might read differently. */
static bool plain(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c > 0x7E || c == '\'' || c == '\\')
            return false;
    }
    return true;
}

void xac_xid_format(const xac_xid *x, char out[XAC_XID_TEXT_MAX])
{
    size_t gl = x->gtrid_len <= XAC_GTRID_MAX ? x->gtrid_len : XAC_GTRID_MAX;
    size_t bl = x->bqual_len <= XAC_BQUAL_MAX ? x->bqual_len : XAC_BQUAL_MAX;
    if (plain(x->gtrid, gl) && plain(x->bqual, bl)) {
        snprintf(out, XAC_XID_TEXT_MAX, "'%.*s','%.*s',%" PRId32, (int)gl, x->gtrid, (int)bl,
                 x->bqual, x->format_id);
        return;
    }
    char gh[2 * XAC_GTRID_MAX + 1], bh[2 * XAC_BQUAL_MAX + 1];
    xac_hex_encode(x->gtrid, gl, gh);
    xac_hex_encode(x->bqual, bl, bh);
    snprintf(out, XAC_XID_TEXT_MAX, "X'%s',X'%s',%" PRId32, gh, bh, x->format_id);
}

/* One quoted part: 'text' (with '' or \ escapes) or X'hex'. Advances *sp. */
static int parse_part(const char **sp, char *out, size_t cap, size_t *outlen)
{
    const char *s = *sp;
    if ((s[0] == 'X' || s[0] == 'x') && s[1] == '\'') {
        const char *end = strchr(s + 2, '\'');
        if (end == NULL || xac_hex_decode(s + 2, (size_t)(end - s - 2), out, cap, outlen) != 0)
            return -1;
        *sp = end + 1;
        return 0;
    }
    if (s[0] != '\'')
        return -1;
    size_t n = 0;
    s++;
    for (;;) {
        char c = *s;
        if (c == '\0')
            return -1;
        if (c == '\'') {
            if (s[1] != '\'')
                break;
            s++;
        } else if (c == '\\') {
            if (s[1] == '\0')
                return -1;
            s++;
        }
        if (n >= cap)
            return -1;
        out[n++] = *s++;
    }
    *outlen = n;
    *sp = s + 1;
    return 0;
}

static const char *skip_ws(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

int xac_xid_parse(const char *text, xac_xid *x, xac_err *err)
{
    if (text == NULL)
        return xac_err_set(err, XAC_EINVAL, "no XID given");
    const char *s = skip_ws(text);
    bool quoted = s[0] == '\'' || ((s[0] == 'X' || s[0] == 'x') && s[1] == '\'');
    if (!quoted) {
        /* A bare gtrid: one word of printable characters. */
        const char *e = s;
        while (*e > 0x20 && *e < 0x7F && *e != '\'' && *e != ',')
            e++;
        if (e == s || *skip_ws(e) != '\0' || (size_t)(e - s) > XAC_GTRID_MAX)
            return xac_err_set(err, XAC_EINVAL,
                               "cannot read XID \"%.200s\": expected a gtrid, "
                               "'gtrid','bqual',formatid or X'hex',X'hex',formatid",
                               text);
        return xac_xid_set(x, XAC_FORMAT_ID, s, (size_t)(e - s), "", 0, err);
    }
    char g[XAC_GTRID_MAX], b[XAC_BQUAL_MAX];
    size_t gl = 0, bl = 0;
    int32_t fid = 1; /* what MySQL and MariaDB assume when it is left out */
    bool ok = parse_part(&s, g, sizeof g, &gl) == 0 && gl > 0;
    if (ok && *(s = skip_ws(s)) == ',') {
        s = skip_ws(s + 1);
        ok = parse_part(&s, b, sizeof b, &bl) == 0;
        if (ok && *(s = skip_ws(s)) == ',') {
            s = skip_ws(s + 1);
            const char *e = s;
            if (*e == '-')
                e++;
            while (*e >= '0' && *e <= '9')
                e++;
            ok = parse_i32(s, (size_t)(e - s), &fid) == 0;
            s = e;
        }
    }
    if (ok)
        ok = *skip_ws(s) == '\0';
    if (!ok)
        return xac_err_set(err, XAC_EINVAL,
                           "cannot read XID \"%.200s\": expected 'gtrid','bqual',formatid or "
                           "X'hex',X'hex',formatid (gtrid 1-%d bytes, bqual 0-%d bytes)",
                           text, XAC_GTRID_MAX, XAC_BQUAL_MAX);
    return xac_xid_set(x, fid, g, gl, b, bl, err);
}
