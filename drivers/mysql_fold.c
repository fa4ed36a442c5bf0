/* The text form of a statement for the MariaDB driver's first statement of
 * a branch, which goes out in one query with XA START (mysql.c): the SQL
 * with every '?' replaced by an SQL literal that the server reads as exactly
 * the value the binary protocol would bind. Only what is sure to read the
 * same is written: anything else (a value without such a literal, SQL whose
 * reading is in doubt) answers "no", and the driver prepares the statement
 * as usual. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>

#include "drv_impl.h"

/* Whether sql is a statement the fold may carry: INSERT, UPDATE, DELETE or
 * REPLACE (after blanks and comments), with no RETURNING (rows typed by the
 * text protocol could read differently from the binary one) and no ';'. */
static bool fold_kind(const char *sql, size_t len)
{
    if (memchr(sql, ';', len) != NULL || memchr(sql, '\0', len) != NULL)
        return false;
    size_t i = 0;
    for (;;) {
        while (i < len && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r'))
            i++;
        if (i + 1 < len && sql[i] == '/' && sql[i + 1] == '*') {
            if (i + 2 < len && (sql[i + 2] == '!' || sql[i + 2] == 'M'))
                return false; /* executable comments are SQL */
            const char *e = NULL;
            for (size_t k = i + 2; k + 1 < len; k++)
                if (sql[k] == '*' && sql[k + 1] == '/') {
                    e = sql + k;
                    break;
                }
            if (e == NULL)
                return false;
            i = (size_t)(e - sql) + 2;
            continue;
        }
        break;
    }
    static const char *const verbs[] = {"INSERT", "UPDATE", "DELETE", "REPLACE"};
    bool ok = false;
    for (size_t v = 0; v < 4 && !ok; v++) {
        size_t n = strlen(verbs[v]);
        if (len - i > n && strncasecmp(sql + i, verbs[v], n) == 0) {
            char next = sql[i + n];
            ok = next == ' ' || next == '\t' || next == '\n' || next == '\r' || next == '/';
        }
    }
    if (!ok)
        return false;
    for (size_t k = i; k + 9 <= len; k++)
        if ((sql[k] == 'R' || sql[k] == 'r') && strncasecmp(sql + k, "RETURNING", 9) == 0)
            return false;
    return true;
}

/* Whether s is well-formed UTF-8 (no overlong forms, surrogates or code
 * points past U+10FFFF): only such text reads the same as a literal. */
static bool utf8_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char b = s[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            n = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2;
            if (b == 0xE0)
                lo = 0xA0;
            else if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3;
            if (b == 0xF0)
                lo = 0x90;
            else if (b == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return false;
        i += n + 1;
    }
    return true;
}

/* Appends params[i] as an SQL literal that the server reads as the value the
 * binary protocol would bind: integers and doubles (in exponent form, which
 * is a DOUBLE literal, printed exactly) with a blank before a minus so that
 * "v -?" never becomes a "--" comment, text as a quoted string in the
 * connection's character set, blobs as binary strings. False when the value
 * has no such literal (NaN, infinities, -0, INT64_MIN, text that is not
 * UTF-8). out has room for what fold_size counted. */
static bool fold_value(MYSQL *m, const xac_value *v, char *out, size_t *pos)
{
    char *o = out + *pos;
    static const char hex[] = "0123456789ABCDEF";
    switch (v->type) {
    case XAC_T_NULL:
        memcpy(o, "NULL", 4);
        *pos += 4;
        return true;
    case XAC_T_INT: {
        if (v->i == INT64_MIN)
            return false;
        if (v->i < 0) {
            *o++ = ' ';
            *o++ = '-';
            *pos += 2;
        }
        *pos += xac_put_u64(o, v->i < 0 ? (uint64_t)-v->i : (uint64_t)v->i, 10);
        return true;
    }
    case XAC_T_DOUBLE:
        if (!isfinite(v->d) || (v->d == 0 && signbit(v->d)))
            return false;
        *pos += (size_t)sprintf(o, v->d < 0 ? " %.17e" : "%.17e", v->d);
        return true;
    case XAC_T_TEXT: {
        const char *s = v->s != NULL ? v->s : "";
        size_t n = v->s != NULL ? v->len : 0;
        if (!utf8_ok((const unsigned char *)s, n))
            return false;
        o[0] = '\'';
        unsigned long w = mysql_real_escape_string(m, o + 1, s, (unsigned long)n);
        if (w == (unsigned long)-1)
            return false;
        o[1 + w] = '\'';
        *pos += w + 2;
        return true;
    }
    case XAC_T_BLOB: {
        const unsigned char *s = (const unsigned char *)v->s;
        size_t n = v->s != NULL ? v->len : 0;
        memcpy(o, "CAST(X'", 7);
        o += 7;
        for (size_t k = 0; k < n; k++) {
            *o++ = hex[s[k] >> 4];
            *o++ = hex[s[k] & 15];
        }
        memcpy(o, "' AS BINARY)", 12);
        *pos += 7 + 2 * n + 12;
        return true;
    }
    default:
        return false;
    }
}

/* An upper bound on the bytes fold_value writes for v. */
static size_t fold_size(const xac_value *v)
{
    if (v->type == XAC_T_TEXT || v->type == XAC_T_BLOB)
        return 2 * (v->s != NULL ? v->len : 0) + 24;
    return 40;
}

/* Builds prefix followed by sql with the values in place of its '?' into a
 * new buffer (*out, *outlen), or returns false when the statement is not one to
 * fold: then nothing changes and the caller takes the usual path, whose
 * errors the caller knows. The '?' scan skips what the server's lexer skips:
 * quoted strings and identifiers and comments; anything it cannot be sure
 * of (an executable comment, a backslash in double quotes, which ANSI_QUOTES
 * would read differently, an unclosed quote) means no fold. */
bool drv_mysql_fold(struct st_mysql *m, const char *prefix, const char *sql, size_t len,
                    const xac_value *params, size_t nparams, const char *suffix, size_t max,
                    char **out, size_t *outlen)
{
    *out = NULL;
    if (!fold_kind(sql, len))
        return false;
    unsigned int status = 0;
    if (mariadb_get_infov(m, MARIADB_CONNECTION_SERVER_STATUS, &status) != 0)
        return false;
    bool nbs = (status & SERVER_STATUS_NO_BACKSLASH_ESCAPES) != 0;
    /* Escaping is only as good as the character set it assumes: the one the
     * library knows (the server reports a change of character_set_client),
     * and only UTF-8, where no multibyte character can hide a quote. */
    const char *cs = mysql_character_set_name(m);
    if (cs == NULL ||
        (strcmp(cs, "utf8mb4") != 0 && strcmp(cs, "utf8mb3") != 0 && strcmp(cs, "utf8") != 0))
        return false;
    size_t slen = strlen(suffix);
    size_t cap = strlen(prefix) + len + 2 + slen;
    for (size_t k = 0; k < nparams; k++)
        cap += fold_size(&params[k]);
    /* Text doubles as hex or escapes: leave big values to the binary
     * protocol, whose packet limit they would otherwise meet sooner. */
    if (cap > max)
        return false;
    char *b = malloc(cap);
    if (b == NULL)
        return false;
    size_t pos = strlen(prefix), used = 0;
    memcpy(b, prefix, pos);
    size_t i = 0;
    size_t copied = 0;         /* sql before this is in b; the rest up to i goes in one copy */
    bool open_comment = false; /* the text ends inside a line comment */
    while (i < len) {
        char ch = sql[i];
        size_t j = i + 1; /* the end of the token that starts at i */
        if (ch == '\'' || ch == '"' || ch == '`') {
            bool closed = false;
            while (j < len && !closed) {
                if (sql[j] == '\\' && ch != '`' && !nbs) {
                    if (ch == '"')
                        goto no;
                    j += 2;
                } else if (sql[j] == ch) {
                    if (j + 1 < len && sql[j + 1] == ch)
                        j += 2;
                    else
                        closed = true, j++;
                } else {
                    j++;
                }
            }
            if (!closed)
                goto no;
        } else if (ch == '#' || (ch == '-' && i + 1 < len && sql[i + 1] == '-' && i + 2 < len &&
                                 (unsigned char)sql[i + 2] <= ' ')) {
            if (ch == '-' && sql[i + 2] != ' ' && sql[i + 2] != '\t' && sql[i + 2] != '\n' &&
                sql[i + 2] != '\r')
                goto no;
            while (j < len && sql[j] != '\n')
                j++;
            open_comment = j == len;
        } else if (ch == '/' && i + 1 < len && sql[i + 1] == '*') {
            if (i + 2 < len && (sql[i + 2] == '!' || sql[i + 2] == 'M'))
                goto no;
            j = i + 2;
            while (j + 1 < len && !(sql[j] == '*' && sql[j + 1] == '/'))
                j++;
            if (j + 1 >= len)
                goto no;
            j += 2;
        } else if (ch == '-' && i + 1 < len && sql[i + 1] == '-' && i + 2 >= len) {
            goto no; /* "--" at the very end: leave the reading to the server */
        } else if (ch == '?') {
            memcpy(b + pos, sql + copied, i - copied);
            pos += i - copied;
            if (used == nparams || !fold_value(m, &params[used], b, &pos))
                goto no;
            used++;
            copied = i = j;
            continue;
        }
        if (j > len)
            goto no;
        i = j;
    }
    if (used != nparams)
        goto no;
    memcpy(b + pos, sql + copied, len - copied);
    pos += len - copied;
    /* A line comment must not swallow the statements of the suffix. */
    if (open_comment)
        b[pos++] = '\n';
    memcpy(b + pos, suffix, slen);
    pos += slen;
    *out = b;
    *outlen = pos;
    return true;
no:
    free(b);
    return false;
}
