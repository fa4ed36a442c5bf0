/* The wire codec of the client protocol (docs/protocol.md): frames, field
 * encodings and every message type, plus the socket reads and writes around
 * them. The decoder reads bytes from untrusted peers, so it checks every length
 * against what is left before it allocates or copies anything. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xac_common.h"

/* ------------------------------------------------------------------ buffer */

void xac_buf_init(xac_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void xac_buf_free(xac_buf *b)
{
    free(b->data);
    xac_buf_init(b);
}

int xac_buf_reserve(xac_buf *b, size_t extra, xac_err *err)
{
    if (extra > SIZE_MAX - b->len)
        return xac_err_set(err, XAC_ENOMEM, "buffer size overflow (%zu + %zu bytes)", b->len,
                           extra);
    size_t need = b->len + extra;
    if (need <= b->cap)
        return XAC_OK;
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for a buffer of %zu bytes", cap);
    b->data = d;
    b->cap = cap;
    return XAC_OK;
}

int xac_buf_put(xac_buf *b, const void *p, size_t n, xac_err *err)
{
    if (n == 0)
        return XAC_OK;
    int rc = xac_buf_reserve(b, n, err);
    if (rc != XAC_OK)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return XAC_OK;
}

/* --------------------------------------------------------------- messages */

static const char *msg_name(uint8_t type)
{
    switch (type) {
    case XAC_MSG_HELLO:
        return "HELLO";
    case XAC_MSG_BEGIN:
        return "BEGIN";
    case XAC_MSG_EXEC:
        return "EXEC";
    case XAC_MSG_COMMIT:
        return "COMMIT";
    case XAC_MSG_ROLLBACK:
        return "ROLLBACK";
    case XAC_MSG_STATUS:
        return "STATUS";
    case XAC_MSG_ADMIN_STATUS:
        return "ADMIN_STATUS";
    case XAC_MSG_ADMIN_LIST:
        return "ADMIN_LIST";
    case XAC_MSG_ADMIN_RESOLVE:
        return "ADMIN_RESOLVE";
    case XAC_MSG_ADMIN_RECOVER:
        return "ADMIN_RECOVER";
    case XAC_MSG_WELCOME:
        return "WELCOME";
    case XAC_MSG_BEGUN:
        return "BEGUN";
    case XAC_MSG_RESULT:
        return "RESULT";
    case XAC_MSG_OUTCOME:
        return "OUTCOME";
    case XAC_MSG_STATE:
        return "STATE";
    case XAC_MSG_ERROR:
        return "ERROR";
    default:
        return NULL;
    }
}

void xac_msg_init(xac_msg *m, uint8_t type)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->version = XAC_PROTO_VERSION;
    xac_rows_init(&m->rows);
}

void xac_msg_free(xac_msg *m)
{
    if (m == NULL)
        return;
    free(m->client);
    free(m->token);
    free(m->node_id);
    free(m->gtrid);
    free(m->resource);
    free(m->sql);
    free(m->message);
    free(m->xid);
    free(m->operator_name);
    for (size_t i = 0; m->params != NULL && i < m->nparams; i++)
        free((char *)m->params[i].s);
    free(m->params);
    xac_rows_free(&m->rows);
    xac_msg_init(m, m->type);
}

/* ---------------------------------------------------------------- encoder */

static int put_u8(xac_buf *b, uint8_t v, xac_err *err)
{
    return xac_buf_put(b, &v, 1, err);
}

static int put_u16(xac_buf *b, uint16_t v, xac_err *err)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return xac_buf_put(b, x, 2, err);
}

static int put_u32(xac_buf *b, uint32_t v, xac_err *err)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return xac_buf_put(b, x, 4, err);
}

static int put_u64(xac_buf *b, uint64_t v, xac_err *err)
{
    int rc = put_u32(b, (uint32_t)(v >> 32), err);
    return rc != XAC_OK ? rc : put_u32(b, (uint32_t)v, err);
}

static int put_strn(xac_buf *b, const char *s, size_t n, xac_err *err)
{
    if (n > UINT32_MAX)
        return xac_err_set(err, XAC_ELIMIT, "string of %zu bytes is too long for a frame", n);
    int rc = put_u32(b, (uint32_t)n, err);
    return rc != XAC_OK ? rc : xac_buf_put(b, s, n, err);
}

static int put_str(xac_buf *b, const char *s, xac_err *err)
{
    return put_strn(b, s != NULL ? s : "", s != NULL ? strlen(s) : 0, err);
}

/* Stops at the first failure but keeps the code flat. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != XAC_OK)                                                                         \
            return rc_;                                                                            \
    } while (0)

static int put_value(xac_buf *b, const xac_value *v, unsigned idx, xac_err *err)
{
    if ((int)v->type < XAC_T_NULL || v->type > XAC_T_BLOB)
        return xac_err_set(err, XAC_EINVAL, "EXEC: parameter %u: unknown value type %d", idx,
                           (int)v->type);
    TRY(put_u8(b, (uint8_t)v->type, err));
    switch (v->type) {
    case XAC_T_NULL:
        return XAC_OK;
    case XAC_T_INT:
        return put_u64(b, (uint64_t)v->i, err);
    case XAC_T_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->d, sizeof bits);
        return put_u64(b, bits, err);
    }
    default:
        if (v->s == NULL && v->len > 0)
            return xac_err_set(err, XAC_EINVAL, "EXEC: parameter %u: no data for %zu bytes", idx,
                               v->len);
        return put_strn(b, v->s != NULL ? v->s : "", v->len, err);
    }
}

static int put_rows(xac_buf *b, const xac_rows *r, xac_err *err)
{
    if (!r->has_rows) {
        TRY(put_u8(b, 0, err));
        return put_u64(b, r->affected, err);
    }
    if (r->ncols > UINT32_MAX || r->nrows > UINT32_MAX)
        return xac_err_set(err, XAC_ELIMIT, "RESULT: %zu columns x %zu rows is too large", r->ncols,
                           r->nrows);
    TRY(put_u8(b, 1, err));
    TRY(put_u32(b, (uint32_t)r->ncols, err));
    for (size_t c = 0; c < r->ncols; c++)
        TRY(put_str(b, r->cols[c], err));
    TRY(put_u32(b, (uint32_t)r->nrows, err));
    for (size_t i = 0; i < r->nrows * r->ncols; i++) {
        if (r->cells[i] == NULL) {
            TRY(put_u8(b, 1, err));
        } else {
            TRY(put_u8(b, 0, err));
            TRY(put_strn(b, r->cells[i], r->lens[i], err));
        }
    }
    return XAC_OK;
}

static int put_payload(const xac_msg *m, xac_buf *b, xac_err *err)
{
    switch (m->type) {
    case XAC_MSG_HELLO:
        TRY(put_u16(b, m->version, err));
        TRY(put_str(b, m->client, err));
        return put_str(b, m->token, err);
    case XAC_MSG_BEGIN:
        return put_u32(b, m->timeout_ms, err);
    case XAC_MSG_EXEC:
        if (m->params == NULL && m->nparams > 0)
            return xac_err_set(err, XAC_EINVAL, "EXEC: %u parameters announced, none given",
                               m->nparams);
        TRY(put_str(b, m->resource, err));
        TRY(put_strn(b, m->sql != NULL ? m->sql : "",
                     m->sql == NULL ? 0 : (m->sql_len > 0 ? m->sql_len : strlen(m->sql)), err));
        TRY(put_u16(b, m->nparams, err));
        for (unsigned i = 0; i < m->nparams; i++)
            TRY(put_value(b, &m->params[i], i + 1, err));
        return XAC_OK;
    case XAC_MSG_COMMIT:
    case XAC_MSG_ROLLBACK:
    case XAC_MSG_ADMIN_STATUS:
    case XAC_MSG_ADMIN_LIST:
    case XAC_MSG_ADMIN_RECOVER:
        return XAC_OK;
    case XAC_MSG_ADMIN_RESOLVE:
        if (m->action > XAC_ADMIN_ROLLBACK || m->force > 1)
            return xac_err_set(err, XAC_EINVAL, "ADMIN_RESOLVE: invalid action %u or force %u",
                               m->action, m->force);
        TRY(put_str(b, m->resource, err));
        TRY(put_str(b, m->xid, err));
        TRY(put_u8(b, m->action, err));
        TRY(put_u8(b, m->force, err));
        return put_str(b, m->operator_name, err);
    case XAC_MSG_STATUS:
    case XAC_MSG_BEGUN:
        return put_str(b, m->gtrid, err);
    case XAC_MSG_WELCOME:
        TRY(put_u16(b, m->version, err));
        TRY(put_str(b, m->node_id, err));
        return put_u32(b, m->max_frame, err);
    case XAC_MSG_RESULT:
        return put_rows(b, &m->rows, err);
    case XAC_MSG_OUTCOME:
        if (m->outcome > XAC_OUTCOME_ROLLED_BACK)
            return xac_err_set(err, XAC_EINVAL, "OUTCOME: invalid outcome %u", m->outcome);
        TRY(put_u8(b, m->outcome, err));
        TRY(put_str(b, m->resource, err));
        return put_str(b, m->message, err);
    case XAC_MSG_STATE:
        if (m->state > XAC_STATE_ROLLED_BACK)
            return xac_err_set(err, XAC_EINVAL, "STATE: invalid state %u", m->state);
        TRY(put_str(b, m->gtrid, err));
        return put_u8(b, m->state, err);
    case XAC_MSG_ERROR:
        if (m->code < 1 || m->code > XAC_ECODE_MAX)
            return xac_err_set(err, XAC_EINVAL, "ERROR: invalid error code %u", m->code);
        TRY(put_u16(b, m->code, err));
        TRY(put_str(b, m->resource, err));
        return put_str(b, m->message, err);
    default:
        return xac_err_set(err, XAC_EINVAL, "cannot encode unknown message type 0x%02X", m->type);
    }
}

int xac_msg_encode(const xac_msg *m, xac_buf *out, xac_err *err)
{
    size_t start = out->len;
    static const uint8_t zero[4] = {0, 0, 0, 0};
    int rc = xac_buf_put(out, zero, 4, err);
    if (rc == XAC_OK)
        rc = put_u8(out, m->type, err);
    if (rc == XAC_OK)
        rc = put_payload(m, out, err);
    if (rc == XAC_OK && out->len - start - 4 > UINT32_MAX)
        rc = xac_err_set(err, XAC_ELIMIT, "%s: frame of %zu bytes is too large", msg_name(m->type),
                         out->len - start - 4);
    if (rc != XAC_OK) {
        out->len = start;
        return rc;
    }
    uint32_t n = (uint32_t)(out->len - start - 4);
    out->data[start] = (uint8_t)(n >> 24);
    out->data[start + 1] = (uint8_t)(n >> 16);
    out->data[start + 2] = (uint8_t)(n >> 8);
    out->data[start + 3] = (uint8_t)n;
    return XAC_OK;
}

/* ---------------------------------------------------------------- decoder */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    const char *mname;
    xac_err *err;
} rd;

static int short_read(rd *r, const char *field, size_t need)
{
    return xac_err_set(r->err, XAC_EPROTO, "%s: %s: truncated (needs %zu bytes, %zu left)",
                       r->mname, field, need, r->left);
}

static int get_u8(rd *r, const char *field, uint8_t *v)
{
    if (r->left < 1)
        return short_read(r, field, 1);
    *v = r->p[0];
    r->p++;
    r->left--;
    return XAC_OK;
}

static int get_u16(rd *r, const char *field, uint16_t *v)
{
    if (r->left < 2)
        return short_read(r, field, 2);
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    r->left -= 2;
    return XAC_OK;
}

static int get_u32(rd *r, const char *field, uint32_t *v)
{
    if (r->left < 4)
        return short_read(r, field, 4);
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    return XAC_OK;
}

static int get_u64(rd *r, const char *field, uint64_t *v)
{
    if (r->left < 8)
        return short_read(r, field, 8);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | r->p[i];
    *v = x;
    r->p += 8;
    r->left -= 8;
    return XAC_OK;
}

/* A str as a NUL-terminated heap copy. Fields without a length beside them
 * (names, gtrids, messages) must not hide a NUL that would cut them short. */
static int get_str(rd *r, const char *field, bool allow_nul, char **out, size_t *len)
{
    uint32_t n = 0;
    TRY(get_u32(r, field, &n));
    if (n > r->left)
        return xac_err_set(r->err, XAC_EPROTO, "%s: %s: length %u exceeds the %zu bytes left",
                           r->mname, field, n, r->left);
    if (!allow_nul && memchr(r->p, 0, n) != NULL)
        return xac_err_set(r->err, XAC_EPROTO, "%s: %s: contains a NUL byte", r->mname, field);
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return xac_err_set(r->err, XAC_ENOMEM, "%s: %s: out of memory for %u bytes", r->mname,
                           field, n);
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    r->left -= n;
    *out = s;
    if (len != NULL)
        *len = n;
    return XAC_OK;
}

static int get_value(rd *r, unsigned idx, xac_value *v)
{
    char field[32];
    snprintf(field, sizeof field, "parameter %u", idx);
    uint8_t tag = 0;
    TRY(get_u8(r, field, &tag));
    switch (tag) {
    case XAC_T_NULL:
        v->type = XAC_T_NULL;
        return XAC_OK;
    case XAC_T_INT: {
        uint64_t u = 0;
        TRY(get_u64(r, field, &u));
        v->type = XAC_T_INT;
        v->i = (int64_t)u;
        return XAC_OK;
    }
    case XAC_T_DOUBLE: {
        uint64_t u = 0;
        TRY(get_u64(r, field, &u));
        v->type = XAC_T_DOUBLE;
        memcpy(&v->d, &u, sizeof v->d);
        return XAC_OK;
    }
    case XAC_T_TEXT:
    case XAC_T_BLOB: {
        char *s = NULL;
        TRY(get_str(r, field, true, &s, &v->len));
        v->type = (xac_type)tag;
        v->s = s;
        return XAC_OK;
    }
    default:
        return xac_err_set(r->err, XAC_EPROTO, "%s: %s: unknown value tag %u", r->mname, field,
                           tag);
    }
}

static int get_exec(rd *r, xac_msg *m)
{
    TRY(get_str(r, "resource", false, &m->resource, NULL));
    TRY(get_str(r, "sql", true, &m->sql, &m->sql_len));
    uint16_t n = 0;
    TRY(get_u16(r, "parameter count", &n));
    if (n > r->left) /* every value takes at least its tag byte */
        return xac_err_set(r->err, XAC_EPROTO,
                           "EXEC: parameter count %u cannot fit in the %zu bytes left", n, r->left);
    if (n == 0)
        return XAC_OK;
    m->params = calloc(n, sizeof *m->params);
    if (m->params == NULL)
        return xac_err_set(r->err, XAC_ENOMEM, "EXEC: out of memory for %u parameters", n);
    for (unsigned i = 0; i < n; i++) {
        TRY(get_value(r, i + 1, &m->params[i]));
        m->nparams = (uint16_t)(i + 1); /* so xac_msg_free sees what was decoded */
    }
    return XAC_OK;
}

static int get_rows(rd *r, xac_rows *rows)
{
    uint8_t kind = 0;
    TRY(get_u8(r, "kind", &kind));
    if (kind == 0)
        return get_u64(r, "affected rows", &rows->affected);
    if (kind != 1)
        return xac_err_set(r->err, XAC_EPROTO, "RESULT: kind: unknown result kind %u", kind);
    uint32_t nc = 0, nr = 0;
    TRY(get_u32(r, "column count", &nc));
    if (nc > r->left / 4) /* every name takes at least its length */
        return xac_err_set(r->err, XAC_EPROTO,
                           "RESULT: column count %u cannot fit in the %zu bytes left", nc, r->left);
    rows->has_rows = true;
    rows->cols = calloc(nc > 0 ? nc : 1, sizeof *rows->cols);
    if (rows->cols == NULL)
        return xac_err_set(r->err, XAC_ENOMEM, "RESULT: out of memory for %u columns", nc);
    for (uint32_t c = 0; c < nc; c++) {
        char field[40];
        snprintf(field, sizeof field, "column %u name", c + 1);
        TRY(get_str(r, field, false, &rows->cols[c], NULL));
        rows->ncols = c + 1;
    }
    TRY(get_u32(r, "row count", &nr));
    /* every cell takes at least its null flag; rows of no columns are nonsense */
    if ((nc == 0 && nr > 0) || (nc > 0 && nr > r->left / nc))
        return xac_err_set(r->err, XAC_EPROTO,
                           "RESULT: row count %u of %u columns cannot fit in the %zu bytes left",
                           nr, nc, r->left);
    size_t ncell = (size_t)nr * nc;
    rows->cells = calloc(ncell > 0 ? ncell : 1, sizeof *rows->cells);
    rows->lens = calloc(ncell > 0 ? ncell : 1, sizeof *rows->lens);
    if (rows->cells == NULL || rows->lens == NULL)
        return xac_err_set(r->err, XAC_ENOMEM, "RESULT: out of memory for %u rows", nr);
    rows->cap_rows = nr;
    for (uint32_t i = 0; i < nr; i++) {
        rows->nrows = i + 1; /* cells are zeroed, so a half-read row frees cleanly */
        for (uint32_t c = 0; c < nc; c++) {
            char field[48];
            snprintf(field, sizeof field, "row %u column %u", i + 1, c + 1);
            uint8_t null = 0;
            TRY(get_u8(r, field, &null));
            if (null == 1)
                continue;
            if (null != 0)
                return xac_err_set(r->err, XAC_EPROTO, "RESULT: %s: bad null flag %u", field, null);
            size_t k = (size_t)i * nc + c;
            TRY(get_str(r, field, true, &rows->cells[k], &rows->lens[k]));
        }
    }
    return XAC_OK;
}

static int get_payload(rd *r, xac_msg *m)
{
    switch (m->type) {
    case XAC_MSG_HELLO:
        TRY(get_u16(r, "version", &m->version));
        TRY(get_str(r, "client", false, &m->client, NULL));
        return get_str(r, "token", false, &m->token, NULL);
    case XAC_MSG_BEGIN:
        return get_u32(r, "timeout", &m->timeout_ms);
    case XAC_MSG_EXEC:
        return get_exec(r, m);
    case XAC_MSG_COMMIT:
    case XAC_MSG_ROLLBACK:
    case XAC_MSG_ADMIN_STATUS:
    case XAC_MSG_ADMIN_LIST:
    case XAC_MSG_ADMIN_RECOVER:
        return XAC_OK;
    case XAC_MSG_ADMIN_RESOLVE:
        TRY(get_str(r, "resource", false, &m->resource, NULL));
        TRY(get_str(r, "xid", false, &m->xid, NULL));
        TRY(get_u8(r, "action", &m->action));
        if (m->action > XAC_ADMIN_ROLLBACK)
            return xac_err_set(r->err, XAC_EPROTO, "ADMIN_RESOLVE: action: unknown value %u",
                               m->action);
        TRY(get_u8(r, "force", &m->force));
        if (m->force > 1)
            return xac_err_set(r->err, XAC_EPROTO, "ADMIN_RESOLVE: force: %u is not 0 or 1",
                               m->force);
        return get_str(r, "operator", false, &m->operator_name, NULL);
    case XAC_MSG_STATUS:
    case XAC_MSG_BEGUN:
        return get_str(r, "gtrid", false, &m->gtrid, NULL);
    case XAC_MSG_WELCOME:
        TRY(get_u16(r, "version", &m->version));
        TRY(get_str(r, "node id", false, &m->node_id, NULL));
        return get_u32(r, "max frame", &m->max_frame);
    case XAC_MSG_RESULT:
        return get_rows(r, &m->rows);
    case XAC_MSG_OUTCOME:
        TRY(get_u8(r, "outcome", &m->outcome));
        if (m->outcome > XAC_OUTCOME_ROLLED_BACK)
            return xac_err_set(r->err, XAC_EPROTO, "OUTCOME: outcome: unknown value %u",
                               m->outcome);
        TRY(get_str(r, "resource", false, &m->resource, NULL));
        return get_str(r, "message", false, &m->message, NULL);
    case XAC_MSG_STATE:
        TRY(get_str(r, "gtrid", false, &m->gtrid, NULL));
        TRY(get_u8(r, "state", &m->state));
        if (m->state > XAC_STATE_ROLLED_BACK)
            return xac_err_set(r->err, XAC_EPROTO, "STATE: state: unknown value %u", m->state);
        return XAC_OK;
    case XAC_MSG_ERROR:
        TRY(get_u16(r, "code", &m->code));
        if (m->code < 1 || m->code > XAC_ECODE_MAX)
            return xac_err_set(r->err, XAC_EPROTO, "ERROR: code: %u is out of range 1..%d", m->code,
                               XAC_ECODE_MAX);
        TRY(get_str(r, "resource", false, &m->resource, NULL));
        return get_str(r, "message", false, &m->message, NULL);
    default:
        return XAC_EINTERNAL;
    }
}

int xac_msg_decode(uint8_t type, const uint8_t *payload, size_t len, xac_msg *m, xac_err *err)
{
    xac_msg_init(m, type);
    const char *name = msg_name(type);
    if (name == NULL)
        return xac_err_set(err, XAC_EPROTO, "unknown message type 0x%02X", type);
    if (payload == NULL && len > 0)
        return xac_err_set(err, XAC_EINVAL, "%s: no payload buffer", name);
    rd r = {payload, len, name, err};
    int rc = get_payload(&r, m);
    if (rc == XAC_OK && r.left > 0)
        rc = xac_err_set(err, XAC_EPROTO, "%s: %zu unexpected bytes after the last field", name,
                         r.left);
    if (rc != XAC_OK)
        xac_msg_free(m);
    return rc;
}

/* ----------------------------------------------------------------- socket */

/* 0 when all n bytes arrived; 1 on EOF (with *got bytes read); -1 on error. */
static int read_full(int fd, uint8_t *p, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t k = read(fd, p + *got, n - *got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            return 1;
        *got += (size_t)k;
    }
    return 0;
}

static int read_failed(int rc, bool started, xac_err *err)
{
    if (rc > 0)
        return xac_err_set(err, XAC_ECONN,
                           started ? "connection closed mid-frame" : "connection closed");
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return xac_err_set(err, XAC_ECONN, "read from the connection timed out");
    return xac_err_set(err, XAC_ECONN, "read from the connection failed: %s (errno %d)",
                       strerror(errno), errno);
}

int xac_frame_read(int fd, uint32_t max_frame, uint8_t *type, xac_buf *payload, xac_err *err)
{
    uint8_t hdr[4];
    size_t got;
    int rc = read_full(fd, hdr, 4, &got);
    if (rc != 0)
        return read_failed(rc, got > 0, err);
    uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (n == 0)
        return xac_err_set(err, XAC_EPROTO, "frame length 0: a frame holds at least its type");
    if (n > max_frame)
        return xac_err_set(err, XAC_ELIMIT, "frame of %u bytes exceeds the limit of %u bytes", n,
                           max_frame);
    rc = read_full(fd, type, 1, &got);
    if (rc != 0)
        return read_failed(rc, true, err);
    payload->len = 0;
    TRY(xac_buf_reserve(payload, n - 1, err));
    rc = read_full(fd, payload->data, n - 1, &got);
    if (rc != 0)
        return read_failed(rc, true, err);
    payload->len = n - 1;
    return XAC_OK;
}

/* A reader starts with this much room, and gives back a buffer that grew
 * beyond READER_KEEP for a large frame once that frame is consumed. */
#define READER_MIN  4096
#define READER_KEEP (64 * 1024)

void xac_reader_init(xac_reader *r, int fd)
{
    r->fd = fd;
    r->data = NULL;
    r->cap = 0;
    r->start = 0;
    r->end = 0;
}

void xac_reader_free(xac_reader *r)
{
    free(r->data);
    xac_reader_init(r, r->fd);
}

size_t xac_reader_pending(const xac_reader *r)
{
    return r->end - r->start;
}

bool xac_reader_has_frame(const xac_reader *r)
{
    size_t n = r->end - r->start;
    if (n < 4)
        return false;
    const uint8_t *h = r->data + r->start;
    uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return n - 4 >= len;
}

bool xac_reader_peek(const xac_reader *r, size_t k, uint8_t *type, const uint8_t **payload,
                     size_t *len)
{
    size_t at = r->start;
    for (;;) {
        if (r->end - at < 5)
            return false;
        const uint8_t *h = r->data + at;
        uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (n == 0 || r->end - at - 4 < n)
            return false;
        if (k-- == 0) {
            *type = h[4];
            *payload = h + 5;
            *len = n - 1;
            return true;
        }
        at += 4 + (size_t)n;
    }
}

bool xac_exec_resource(const uint8_t *payload, size_t len, const char **name, size_t *name_len)
{
    if (len < 4)
        return false;
    uint32_t n = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 |
                 (uint32_t)payload[2] << 8 | payload[3];
    if (n > len - 4)
        return false;
    *name = (const char *)payload + 4;
    *name_len = n;
    return true;
}

/* Makes room for need bytes from start on: moves what is pending to the front
 * and grows the buffer when that is not enough. */
static int reader_room(xac_reader *r, size_t need, xac_err *err)
{
    if (r->cap - r->start >= need)
        return XAC_OK;
    size_t pending = r->end - r->start;
    if (r->start > 0) {
        memmove(r->data, r->data + r->start, pending);
        r->start = 0;
        r->end = pending;
    }
    if (r->cap >= need)
        return XAC_OK;
    size_t cap = need < READER_MIN ? READER_MIN : need;
    uint8_t *d = realloc(r->data, cap);
    if (d == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for a frame of %zu bytes", need);
    r->data = d;
    r->cap = cap;
    return XAC_OK;
}

/* Reads until need bytes are pending; each read takes as much as fits. */
static int reader_fill(xac_reader *r, size_t need, xac_err *err)
{
    while (r->end - r->start < need) {
        ssize_t k = read(r->fd, r->data + r->end, r->cap - r->end);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return read_failed(k < 0 ? -1 : 1, r->end > r->start, err);
        r->end += (size_t)k;
    }
    return XAC_OK;
}

int xac_reader_frame(xac_reader *r, uint32_t max_frame, uint8_t *type, const uint8_t **payload,
                     size_t *len, xac_err *err)
{
    if (r->start == r->end) {
        r->start = r->end = 0;
        if (r->cap > READER_KEEP) {
            free(r->data);
            r->data = NULL;
            r->cap = 0;
        }
    }
    TRY(reader_room(r, 4, err));
    TRY(reader_fill(r, 4, err));
    const uint8_t *h = r->data + r->start;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n == 0)
        return xac_err_set(err, XAC_EPROTO, "frame length 0: a frame holds at least its type");
    if (n > max_frame)
        return xac_err_set(err, XAC_ELIMIT, "frame of %u bytes exceeds the limit of %u bytes", n,
                           max_frame);
    size_t total = 4 + (size_t)n;
    TRY(reader_room(r, total, err));
    TRY(reader_fill(r, total, err));
    *type = r->data[r->start + 4];
    *payload = r->data + r->start + 5;
    *len = n - 1;
    r->start += total;
    return XAC_OK;
}

int xac_write_all(int fd, const void *p, size_t n, xac_err *err)
{
    const uint8_t *b = p;
    bool sock = true;
    while (n > 0) {
        ssize_t k = sock ? send(fd, b, n, MSG_NOSIGNAL) : write(fd, b, n);
        if (k < 0 && sock && errno == ENOTSOCK) {
            sock = false;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return xac_err_set(err, XAC_ECONN, "write to the connection failed: %s (errno %d)",
                               strerror(errno), errno);
        if (k == 0)
            return xac_err_set(err, XAC_ECONN, "write to the connection made no progress");
        b += k;
        n -= (size_t)k;
    }
    return XAC_OK;
}

int xac_msg_send(int fd, const xac_msg *m, xac_err *err)
{
    xac_buf b;
    xac_buf_init(&b);
    int rc = xac_msg_encode(m, &b, err);
    if (rc == XAC_OK)
        rc = xac_write_all(fd, b.data, b.len, err);
    xac_buf_free(&b);
    return rc;
}
