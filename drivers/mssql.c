/* The SQL Server driver, on FreeTDS db-lib (sybdb), as a last resource: a
 * transaction's work runs in one local transaction (BEGIN TRANSACTION) that
 * lrc_commit commits together with a commit-marker row, so that recovery can
 * tell from the marker table whether the commit happened. Branches prepared
 * by other tools are still found and finished through SQL Server's
 * xp_sqljdbc_xa_* procedures, called the way the Microsoft JDBC driver calls
 * them. db-lib rather than ct-lib: everything here is a batch or one RPC
 * with positional output parameters, which dbrpcinit/dbrpcparam(DBRPCRETURN)
 * and dbretdata do directly; ct-lib's contexts, commands and bind layers buy
 * nothing for that. Thread safety: dbinit runs once (pthread_once); db-lib's
 * error and message handlers are process-wide, so they find the connection
 * they report on through dbsetuserdata/dbgetuserdata on the DBPROCESS, and
 * through a thread-local while there is no DBPROCESS of ours yet (during
 * dbopen and the login). A DBPROCESS is only ever used by one thread at a
 * time (the pool hands a connection to one caller). Any lost link marks the
 * connection broken, closes it, and answers XAER_RMFAIL. */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sybdb.h>

#include "mssql_internal.h"

#define MS_DEFAULT_PORT  1433
#define MS_DEFAULT_TABLE "xac_commit_marker"
#define MS_MSG_MAX       400
#define MS_FORGET_BATCH  100
/* @data of xp_sqljdbc_xa_recover is declared varbinary(8000): a record is at
 * most 134 bytes, so that is some 60 foreign branches or 140 of xac's. */
#define MS_RECOVER_MAX 8000

/* XA flags of the xp_sqljdbc_xa_* procedures. */
#define MS_TMNOFLAGS    0
#define MS_TMSTARTRSCAN 0x01000000
#define MS_TMENDRSCAN   0x00800000

/* TDS types db-lib's header does not name. */
#define MS_XSYBVARBINARY 165
#define MS_XSYBVARCHAR   167
#define MS_XSYBBINARY    173
#define MS_XSYBCHAR      175
#define MS_XSYBNVARCHAR  231
#define MS_XSYBNCHAR     239
#define MS_SYBMSXML      241

/* What the handlers saw during one operation. */
typedef struct ms_diag {
    int msgno;    /* the first server error (severity > 10); 0: none */
    int severity; /* its severity */
    char msg[MS_MSG_MAX];
    bool deadlock; /* a 1205 came, first or not */
    int dberr;     /* the first db-lib error other than SYBESMSG; 0: none */
    char dbmsg[MS_MSG_MAX];
    bool lost;    /* the link is gone */
    bool timeout; /* a statement or the login timed out */
} ms_diag;

/* MS_RBONLY: SQL Server rolled the local transaction back (deadlock victim)
 * and the engine has not heard of it yet. */
typedef enum ms_state { MS_NONE, MS_ACTIVE, MS_RBONLY } ms_state;

typedef struct ms_conn {
    drv_conn base;
    DBPROCESS *db;
    ms_diag diag;
    ms_state state;
    xac_xid xid; /* valid when state != MS_NONE */
    int rb_rc;   /* MS_RBONLY: why, as an XA_RB* code and the server's words */
    char rb_msg[XAC_ERR_MSG_MAX];
    bool xa_ready; /* xp_sqljdbc_xa_init_ex ran on this session */
    char where[300];
} ms_conn;

static pthread_once_t ms_once = PTHREAD_ONCE_INIT;
static RETCODE ms_lib_rc = FAIL;
/* The diagnostics of the dbopen running on this thread. */
static _Thread_local ms_diag *ms_tl_diag;

/* Marker tables known to exist: "host:port/database/table". */
#define MS_TABLES_MAX 64
static pthread_mutex_t ms_tables_mu = PTHREAD_MUTEX_INITIALIZER;
static char ms_tables[MS_TABLES_MAX][sizeof(((drv_conf *)0)->host) + 300];
static size_t ms_ntables;

/* ------------------------------------------------------------ handlers */

static ms_diag *ms_diag_of(DBPROCESS *p)
{
    ms_diag *d = p != NULL ? (ms_diag *)dbgetuserdata(p) : NULL;
    return d != NULL ? d : ms_tl_diag;
}

/* One line, without the newlines servers put in messages. */
static void ms_copy_line(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
    for (char *p = dst; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t len = strlen(dst);
    while (len > 0 && dst[len - 1] == ' ')
        dst[--len] = '\0';
}

static int ms_err_handler(DBPROCESS *p, int severity, int dberr, int oserr, char *dberrstr,
                          char *oserrstr)
{
    (void)severity;
    ms_diag *d = ms_diag_of(p);
    /* SYBESMSG only says "the server sent an error": the message handler
     * has it with its number. */
    if (d != NULL && dberr != SYBESMSG) {
        if (drv_mssql_dberr_is_connection_loss(dberr) || (p != NULL && DBDEAD(p)))
            d->lost = true;
        if (dberr == SYBETIME)
            d->timeout = true;
        if (d->dberr == 0) {
            d->dberr = dberr;
            char tmp[MS_MSG_MAX];
            if (oserr > 0 && oserrstr != NULL && oserrstr[0] != '\0')
                snprintf(tmp, sizeof tmp, "%s (%s)", dberrstr != NULL ? dberrstr : "", oserrstr);
            else
                snprintf(tmp, sizeof tmp, "%s", dberrstr != NULL ? dberrstr : "");
            ms_copy_line(d->dbmsg, sizeof d->dbmsg, tmp);
        }
    }
    /* Never INT_EXIT (db-lib would end the process); a timeout cancels the
     * call and the driver then closes the connection. */
    return INT_CANCEL;
}

static int ms_msg_handler(DBPROCESS *p, DBINT msgno, int msgstate, int severity, char *msgtext,
                          char *srvname, char *procname, int line)
{
    (void)msgstate;
    (void)srvname;
    (void)procname;
    (void)line;
    ms_diag *d = ms_diag_of(p);
    /* Severity 10 and below are informational ("Changed database context"). */
    if (d == NULL || severity <= 10)
        return 0;
    if (msgno == 1205)
        d->deadlock = true;
    /* The first error explains the failure; a deadlock always wins, since it
     * means the whole transaction is gone. */
    if (d->msgno == 0 || (msgno == 1205 && d->msgno != 1205)) {
        d->msgno = (int)msgno;
        d->severity = severity;
        ms_copy_line(d->msg, sizeof d->msg, msgtext);
    }
    return 0;
}

static void ms_lib_init(void)
{
    ms_lib_rc = dbinit();
    if (ms_lib_rc == SUCCEED) {
        dberrhandle(ms_err_handler);
        dbmsghandle(ms_msg_handler);
    }
}

/* ------------------------------------------------------------ settings */

static const char *ms_table(const drv_conf *cf)
{
    return cf->marker_table[0] != '\0' ? cf->marker_table : MS_DEFAULT_TABLE;
}

static int ms_port(const drv_conf *cf)
{
    return cf->port > 0 ? cf->port : MS_DEFAULT_PORT;
}

static int ms_tds_version(const drv_conf *cf)
{
    const char *v = cf->tds_version[0] != '\0' ? cf->tds_version : "7.4";
    if (strcmp(v, "7.1") == 0)
        return DBVERSION_71;
    if (strcmp(v, "7.2") == 0)
        return DBVERSION_72;
    if (strcmp(v, "7.3") == 0)
        return DBVERSION_73;
    if (strcmp(v, "7.4") == 0)
        return DBVERSION_74;
    return -1;
}

bool drv_mssql_can_set_encryption(const char *encryption)
{
#ifdef DBSETENCRYPTION
    (void)encryption;
    return true;
#else
    /* db-lib before FreeTDS 1.5 takes encryption only from freetds.conf; its
     * default is "request", so only "require" cannot be promised here. */
    return encryption == NULL || strcmp(encryption, "require") != 0;
#endif
}

static const char *rname(const ms_conn *c)
{
    return c->base.conf->name;
}

/* A message without its leading "resource NAME: ", to quote it in another. */
static const char *ms_tail(const ms_conn *c, const char *m)
{
    size_t nl = strlen(rname(c));
    if (strncmp(m, "resource ", 9) == 0 && strncmp(m + 9, rname(c), nl) == 0 &&
        strncmp(m + 9 + nl, ": ", 2) == 0)
        m += 9 + nl + 2;
    return m;
}

static unsigned ms_seconds(uint32_t ms)
{
    unsigned s = (unsigned)((ms + 999u) / 1000u);
    return s < 1 ? 1 : s;
}

/* ------------------------------------------------------------ pure parts */

bool drv_mssql_valid_gtrid(const char *s, bool empty_ok)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok || n >= XAC_GTRID_MAX)
            return false;
    }
    return n > 0 || empty_ok;
}

/* One pass of the rewrite: counts the output bytes (out NULL) or writes them. */
static size_t ms_rewrite_pass(const char *sql, size_t len, const char *const *subst, size_t nsubst,
                              char *out, size_t *nmarks)
{
    size_t o = 0, marks = 0;
    int depth = 0;     /* nesting of block comments (T-SQL nests them) */
    char quote = '\0'; /* ' " or ] while inside a literal or quoted name */
    bool line = false; /* inside a -- comment */
    for (size_t i = 0; i < len; i++) {
        char ch = sql[i];
        char next = i + 1 < len ? sql[i + 1] : '\0';
        if (line) {
            if (ch == '\n')
                line = false;
        } else if (depth > 0) {
            if (ch == '*' && next == '/') {
                depth--;
                if (out != NULL)
                    out[o] = ch;
                o++;
                i++;
                ch = next;
            } else if (ch == '/' && next == '*') {
                depth++;
                if (out != NULL)
                    out[o] = ch;
                o++;
                i++;
                ch = next;
            }
        } else if (quote != '\0') {
            if (ch == quote) {
                if (quote == ']' && next == ']') {
                    /* "]]" is a ']' inside the name */
                    if (out != NULL)
                        out[o] = ch;
                    o++;
                    i++;
                    ch = next;
                } else {
                    quote = '\0';
                }
            }
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if (ch == '[') {
            quote = ']';
        } else if (ch == '-' && next == '-') {
            line = true;
        } else if (ch == '/' && next == '*') {
            depth = 1;
            if (out != NULL)
                out[o] = ch;
            o++;
            i++;
            ch = next;
        } else if (ch == '?') {
            const char *s = marks < nsubst && subst != NULL ? subst[marks] : NULL;
            char name[24];
            if (s == NULL) {
                snprintf(name, sizeof name, "@P%zu", marks + 1);
                s = name;
            }
            size_t sl = strlen(s);
            if (out != NULL)
                memcpy(out + o, s, sl);
            o += sl;
            marks++;
            continue;
        }
        if (out != NULL)
            out[o] = ch;
        o++;
    }
    *nmarks = marks;
    return o;
}

int drv_mssql_rewrite(const char *sql, size_t len, const char *const *subst, size_t nsubst,
                      char **out, size_t *nmarks, xac_err *err)
{
    *out = NULL;
    size_t n = ms_rewrite_pass(sql, len, subst, nsubst, NULL, nmarks);
    char *buf = malloc(n + 1);
    if (buf == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory rewriting a %zu-byte statement", len);
    ms_rewrite_pass(sql, len, subst, nsubst, buf, nmarks);
    buf[n] = '\0';
    *out = buf;
    return XAC_OK;
}

int drv_mssql_decode_recover(const uint8_t *data, size_t len, drv_indoubt **out, size_t *n,
                             xac_err *err)
{
    *out = NULL;
    *n = 0;
    size_t count = 0, off = 0;
    while (off < len) {
        size_t left = len - off;
        if (left < 6)
            return xac_err_set(err, XAC_EPROTO,
                               "recover record %zu at byte %zu: a record header needs 6 bytes, "
                               "only %zu left of %zu",
                               count + 1, off, left, len);
        size_t gl = data[off + 4], bl = data[off + 5];
        if (gl > XAC_GTRID_MAX || bl > XAC_BQUAL_MAX)
            return xac_err_set(err, XAC_EPROTO,
                               "recover record %zu at byte %zu: gtrid length %zu or bqual length "
                               "%zu is over %d",
                               count + 1, off, gl, bl, XAC_GTRID_MAX);
        if (left - 6 < gl + bl)
            return xac_err_set(err, XAC_EPROTO,
                               "recover record %zu at byte %zu: gtrid and bqual need %zu bytes, "
                               "only %zu left of %zu",
                               count + 1, off, gl + bl, left - 6, len);
        off += 6 + gl + bl;
        count++;
    }
    if (count == 0)
        return XAC_OK;
    drv_indoubt *v = calloc(count, sizeof *v);
    if (v == NULL)
        return xac_err_set(err, XAC_ENOMEM, "out of memory for %zu recovered branches", count);
    off = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *r = data + off;
        uint32_t fid =
            (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
        size_t gl = r[4], bl = r[5];
        if (xac_xid_set(&v[i].xid, (int32_t)fid, r + 6, gl, r + 6 + gl, bl, err) != XAC_OK) {
            int code = err != NULL ? err->code : XAC_EPROTO;
            xac_err_prefix(err, "recover record %zu at byte %zu", i + 1, off);
            free(v);
            return code != XAC_OK ? code : XAC_EPROTO;
        }
        v[i].decoded = true;
        off += 6 + gl + bl;
    }
    *out = v;
    *n = count;
    return XAC_OK;
}

/* ------------------------------------------------------------ failures */

static void ms_begin(ms_conn *c)
{
    memset(&c->diag, 0, sizeof c->diag);
}

/* Closes the link of a broken connection at once: SQL Server then rolls its
 * local transaction back instead of holding its locks until the pool gets
 * the connection back. Nothing uses the handle afterwards (drv.c refuses
 * broken connections). */
static void ms_drop_if_broken(ms_conn *c)
{
    if (c->base.broken && c->db != NULL) {
        dbclose(c->db);
        c->db = NULL;
    }
}

/* Turns what the handlers saw into an XA code and a message, marks the
 * connection broken when the link is gone, and leaves a live connection with
 * no pending results. `what` names the step ("exec", "COMMIT TRANSACTION"). */
static int ms_fail(ms_conn *c, drv_step step, const char *what, xac_err *err)
{
    const ms_diag *d = &c->diag;
    const drv_conf *cf = c->base.conf;
    bool lost = d->lost || d->timeout || c->db == NULL || DBDEAD(c->db);
    int rc;
    if (lost) {
        c->base.broken = true;
        rc = XAER_RMFAIL;
        if (d->timeout)
            xac_err_setr(err, XAC_ERMFAIL, cf->name,
                         "resource %s: %s: no answer from SQL Server at %s within %u ms; the "
                         "connection is closed",
                         cf->name, what, c->where, cf->io_timeout_ms);
        else
            xac_err_setr(err, XAC_ERMFAIL, cf->name,
                         "resource %s: %s: connection to %s lost (%s)%s%s", cf->name, what,
                         c->where, d->dbmsg[0] ? d->dbmsg : "db-lib found the link closed or dead",
                         d->msgno ? "; last SQL Server message: " : "", d->msgno ? d->msg : "");
    } else if (d->msgno != 0) {
        const char *note = NULL;
        rc = drv_mssql_errno_to_xa(d->msgno, step, &note);
        if (rc == XAER_RMFAIL)
            c->base.broken = true;
        xac_err_setr(err, drv_xa_to_code(rc), cf->name,
                     "resource %s: %s: SQL Server error %d: %s%s%s%s", cf->name, what, d->msgno,
                     d->msg, note ? " (" : "", note ? note : "", note ? ")" : "");
    } else {
        rc = XAER_RMERR;
        xac_err_setr(err, XAC_ESQL, cf->name, "resource %s: %s failed: %s%s", cf->name, what,
                     d->dberr ? "db-lib error: " : "",
                     d->dberr ? d->dbmsg : "no message from SQL Server or db-lib");
    }
    if (!c->base.broken && c->db != NULL)
        dbcancel(c->db); /* discard what is left of the batch */
    ms_drop_if_broken(c);
    return rc;
}

/* ------------------------------------------------------------ results */

static bool ms_is_raw(int type)
{
    switch (type) {
    case SYBCHAR:
    case SYBVARCHAR:
    case SYBTEXT:
    case SYBNTEXT:
    case SYBNVARCHAR:
    case SYBBINARY:
    case SYBVARBINARY:
    case SYBIMAGE:
    case MS_XSYBVARBINARY:
    case MS_XSYBVARCHAR:
    case MS_XSYBBINARY:
    case MS_XSYBCHAR:
    case MS_XSYBNVARCHAR:
    case MS_XSYBNCHAR:
    case MS_SYBMSXML:
        return true;
    default:
        return false;
    }
}

/* The shortest of %.15g..%.17g that reads back as the same double. */
static void ms_format_double(double v, char *out, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static bool ms_is_date(int type)
{
    switch (type) {
    case SYBDATETIME:
    case SYBDATETIME4:
    case SYBDATETIMN:
    case SYBDATE:
    case SYBTIME:
    case SYBBIGDATETIME:
    case SYBBIGTIME:
    case SYBMSDATE:
    case SYBMSTIME:
    case SYBMSDATETIME2:
    case SYBMSDATETIMEOFFSET:
        return true;
    default:
        return false;
    }
}

/* ISO 8601 text of a date or time value, fractions without trailing zeros. */
static bool ms_format_date(ms_conn *c, int type, const BYTE *data, char *out, size_t n)
{
    DBDATEREC2 r;
    memset(&r, 0, sizeof r);
    if (dbanydatecrack(c->db, &r, type, data) != SUCCEED)
        return false;
    char frac[16] = "";
    if (r.datensecond > 0) {
        snprintf(frac, sizeof frac, ".%09d", (int)r.datensecond);
        size_t l = strlen(frac);
        while (l > 1 && frac[l - 1] == '0')
            frac[--l] = '\0';
    }
    if (type == SYBMSTIME || type == SYBTIME || type == SYBBIGTIME)
        snprintf(out, n, "%02d:%02d:%02d%s", (int)r.datehour, (int)r.dateminute, (int)r.datesecond,
                 frac);
    else if (type == SYBMSDATE || type == SYBDATE)
        snprintf(out, n, "%04d-%02d-%02d", (int)r.dateyear, (int)r.datemonth + 1,
                 (int)r.datedmonth);
    else
        snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d%s", (int)r.dateyear, (int)r.datemonth + 1,
                 (int)r.datedmonth, (int)r.datehour, (int)r.dateminute, (int)r.datesecond, frac);
    return true;
}

#define MS_CELL_TMP 128

/* The text of column col of the current row, as the other drivers give it:
 * numbers in decimal, character and binary data as their bytes. */
static int ms_cell(ms_conn *c, int col, char *tmp, const char **val, size_t *len, xac_err *err)
{
    BYTE *data = dbdata(c->db, col);
    DBINT dlen = dbdatlen(c->db, col);
    int type = dbcoltype(c->db, col);
    *val = NULL;
    *len = 0;
    if (data == NULL)
        return XA_OK; /* SQL NULL */
    if (ms_is_raw(type)) {
        *val = (const char *)data;
        *len = dlen > 0 ? (size_t)dlen : 0;
        return XA_OK;
    }
    bool ok = true;
    switch (type) {
    case SYBINT1:
    case SYBINT2:
    case SYBINT4:
    case SYBINT8:
    case SYBINTN:
    case SYBBIT:
    case SYBBITN: {
        DBBIGINT v = 0;
        ok = dbconvert(c->db, type, data, dlen, SYBINT8, (BYTE *)&v, (DBINT)sizeof v) >= 0;
        snprintf(tmp, MS_CELL_TMP, "%" PRId64, (int64_t)v);
        break;
    }
    case SYBFLT8:
    case SYBREAL:
    case SYBFLTN: {
        DBFLT8 v = 0;
        ok = dbconvert(c->db, type, data, dlen, SYBFLT8, (BYTE *)&v, (DBINT)sizeof v) >= 0;
        ms_format_double(v, tmp, MS_CELL_TMP);
        break;
    }
    default:
        if (ms_is_date(type)) {
            ok = ms_format_date(c, type, data, tmp, MS_CELL_TMP);
        } else {
            /* decimal, money, uniqueidentifier, ... */
            DBINT n = dbconvert(c->db, type, data, dlen, SYBCHAR, (BYTE *)tmp, MS_CELL_TMP - 1);
            ok = n >= 0;
            if (ok) {
                tmp[n] = '\0';
                size_t l = (size_t)n;
                while (l > 0 && tmp[l - 1] == ' ')
                    tmp[--l] = '\0';
            }
        }
        break;
    }
    if (!ok) {
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: exec: cannot convert column %d (%s, TDS type %d) to text",
                     rname(c), col, dbcolname(c->db, col) ? dbcolname(c->db, col) : "?", type);
        return XAER_RMERR;
    }
    *val = tmp;
    *len = strlen(tmp);
    return XA_OK;
}

/* Reads the current result set into rows. On a failure that leaves the link
 * alive, the rest of the set is discarded. */
static int ms_store_rows(ms_conn *c, drv_step step, const char *what, xac_rows *rows, xac_err *err)
{
    int nc = dbnumcols(c->db);
    size_t n = (size_t)nc;
    const char **names = calloc(n, sizeof *names);
    const char **vals = calloc(n, sizeof *vals);
    size_t *lens = calloc(n, sizeof *lens);
    char *tmp = calloc(n, MS_CELL_TMP);
    int rc = XA_OK;
    if (names == NULL || vals == NULL || lens == NULL || tmp == NULL) {
        rc = XAER_RMERR;
        xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: %s: out of memory for %zu columns",
                     rname(c), what, n);
        goto out;
    }
    for (int i = 0; i < nc; i++) {
        const char *nm = dbcolname(c->db, i + 1);
        names[i] = nm != NULL ? nm : "";
    }
    if (xac_rows_set_cols(rows, n, names, err) != XAC_OK) {
        rc = XAER_RMERR;
        goto out;
    }
    for (;;) {
        STATUS r = dbnextrow(c->db);
        if (r == NO_MORE_ROWS)
            break;
        if (r == FAIL) {
            rc = ms_fail(c, step, what, err);
            goto out;
        }
        if (r != REG_ROW)
            continue; /* a COMPUTE row */
        for (int i = 0; i < nc && rc == XA_OK; i++)
            rc = ms_cell(c, i + 1, tmp + (size_t)i * MS_CELL_TMP, &vals[i], &lens[i], err);
        if (rc == XA_OK && xac_rows_add(rows, vals, lens, err) != XAC_OK)
            rc = XAER_RMERR;
        if (rc != XA_OK)
            goto out;
    }
out:
    if (rc != XA_OK && !c->base.broken && c->db != NULL)
        dbcanquery(c->db);
    free(names);
    free(vals);
    free(lens);
    free(tmp);
    return rc;
}

/* Reads every result of the command just sent. rows, when not NULL, gets the
 * first result: a row set, or the first row count. */
static int ms_results(ms_conn *c, drv_step step, const char *what, xac_rows *rows, xac_err *err)
{
    bool have = false;
    int rc = XA_OK;
    RETCODE r;
    while ((r = dbresults(c->db)) != NO_MORE_RESULTS) {
        if (r == FAIL)
            return ms_fail(c, step, what, err);
        if (dbnumcols(c->db) > 0) {
            if (rows != NULL && !have && rc == XA_OK) {
                rc = ms_store_rows(c, step, what, rows, err);
                have = true;
                if (c->base.broken)
                    return rc;
            } else if (dbcanquery(c->db) == FAIL) {
                return ms_fail(c, step, what, err);
            }
        } else if (rows != NULL && !have && DBCOUNT(c->db) >= 0) {
            rows->has_rows = false;
            rows->affected = (uint64_t)DBCOUNT(c->db);
            have = true;
        }
    }
    if (c->diag.msgno != 0 || c->diag.lost || DBDEAD(c->db))
        return ms_fail(c, step, what, err);
    return rc;
}

/* Runs sql (NUL-terminated) as one batch. */
static int ms_batch(ms_conn *c, drv_step step, const char *what, const char *sql, xac_rows *rows,
                    xac_err *err)
{
    ms_begin(c);
    if (c->db == NULL)
        return ms_fail(c, step, what, err);
    dbfreebuf(c->db);
    if (dbcmd(c->db, sql) == FAIL || dbsqlexec(c->db) == FAIL)
        return ms_fail(c, step, what, err);
    return ms_results(c, step, what, rows, err);
}

/* Sends the RPC built with dbrpcinit/dbrpcparam and reads its results. */
static int ms_rpc_run(ms_conn *c, drv_step step, const char *what, xac_rows *rows, xac_err *err)
{
    if (dbrpcsend(c->db) == FAIL || dbsqlok(c->db) == FAIL)
        return ms_fail(c, step, what, err);
    return ms_results(c, step, what, rows, err);
}

/* Before an RPC is built: the handle may be gone after an earlier failure
 * in the same operation. */
static bool ms_have_db(ms_conn *c)
{
    return c->db != NULL && !DBDEAD(c->db);
}

/* A failure while the RPC is being built: nothing was sent. */
static int ms_rpc_build_fail(ms_conn *c, drv_step step, const char *what, xac_err *err)
{
    if (c->db != NULL && !DBDEAD(c->db))
        dbrpcinit(c->db, "", DBRPCRESET);
    if (c->db != NULL && !DBDEAD(c->db) && c->diag.dberr == 0 && c->diag.msgno == 0) {
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: %s: db-lib refused a parameter of the call", rname(c), what);
        return XAER_RMERR;
    }
    return ms_fail(c, step, what, err);
}

/* ------------------------------------------------------------ open, close */

static void ms_key(const drv_conf *cf, char *out, size_t n)
{
    snprintf(out, n, "%s:%d/%s/%s", cf->host, ms_port(cf), cf->database, ms_table(cf));
}

/* Creates the marker table when missing; once per process and resource. */
static int ms_ensure_table(ms_conn *c, xac_err *err)
{
    const drv_conf *cf = c->base.conf;
    char key[sizeof ms_tables[0]];
    ms_key(cf, key, sizeof key);
    pthread_mutex_lock(&ms_tables_mu);
    bool known = false;
    for (size_t i = 0; i < ms_ntables && !known; i++)
        known = strcmp(ms_tables[i], key) == 0;
    pthread_mutex_unlock(&ms_tables_mu);
    if (known)
        return XA_OK;
    const char *t = ms_table(cf);
    char sql[512];
    snprintf(sql, sizeof sql,
             "IF OBJECT_ID(N'%s', N'U') IS NULL CREATE TABLE %s (gtrid VARCHAR(128) NOT NULL "
             "PRIMARY KEY, outcome CHAR(1) NOT NULL, created_unix BIGINT NOT NULL)",
             t, t);
    char what[128];
    snprintf(what, sizeof what, "creating the marker table %s", t);
    /* As a statement, not a login step: an error leaves the connection
     * usable for the check below. */
    int rc = ms_batch(c, DRV_STEP_EXEC, what, sql, NULL, err);
    if (rc != XA_OK && !c->base.broken) {
        /* Another connection may have created it at the same moment. */
        xac_err e2;
        xac_err_clear(&e2);
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s WHERE 1 = 0", t);
        if (ms_batch(c, DRV_STEP_EXEC, what, sql, NULL, &e2) == XA_OK) {
            xac_err_clear(err);
            rc = XA_OK;
        }
    }
    if (rc != XA_OK)
        return rc;
    pthread_mutex_lock(&ms_tables_mu);
    if (ms_ntables < MS_TABLES_MAX)
        snprintf(ms_tables[ms_ntables++], sizeof ms_tables[0], "%s", key);
    pthread_mutex_unlock(&ms_tables_mu);
    return XA_OK;
}

static void ms_free(ms_conn *c)
{
    if (c->db != NULL)
        dbclose(c->db);
    free(c);
}

/* The message for a failed dbopen. */
static void ms_open_error(const drv_conf *cf, const ms_conn *c, xac_err *err)
{
    const ms_diag *d = &c->diag;
    if (d->msgno != 0 && drv_mssql_errno_is_login_failure(d->msgno))
        xac_err_setr(err, XAC_ERMFAIL, cf->name,
                     "resource %s: login failed for user '%s' on %s: check user and password "
                     "(SQL Server error %d: %s)",
                     cf->name, cf->user, c->where, d->msgno, d->msg);
    else if (d->msgno == 4060)
        xac_err_setr(err, XAC_ERMFAIL, cf->name,
                     "resource %s: user '%s' cannot open database \"%s\" on %s (SQL Server "
                     "error %d: %s)",
                     cf->name, cf->user, cf->database, c->where, d->msgno, d->msg);
    else if (d->msgno != 0)
        xac_err_setr(err, XAC_ERMFAIL, cf->name,
                     "resource %s: cannot log in to SQL Server at %s as '%s': SQL Server error "
                     "%d: %s",
                     cf->name, c->where, cf->user, d->msgno, d->msg);
    else
        xac_err_setr(err, XAC_ERMFAIL, cf->name,
                     "resource %s: cannot connect to SQL Server at %s: %s%s", cf->name, c->where,
                     d->timeout ? "timed out: " : "",
                     d->dbmsg[0] ? d->dbmsg : "db-lib gave no reason");
}

static int ms_open(const drv_conf *conf, drv_conn **out, xac_err *err)
{
    *out = NULL;
    pthread_once(&ms_once, ms_lib_init);
    if (ms_lib_rc != SUCCEED) {
        xac_err_setr(err, XAC_ERMFAIL, conf->name,
                     "resource %s: cannot initialise FreeTDS db-lib (dbinit failed)", conf->name);
        return XAER_RMFAIL;
    }
    int ver = ms_tds_version(conf);
    if (ver < 0 || !drv_mssql_can_set_encryption(conf->encryption)) {
        xac_err_setr(err, XAC_ECONFIG, conf->name,
                     "resource %s: tds_version \"%s\" or encryption \"%s\" is not usable here",
                     conf->name, conf->tds_version, conf->encryption);
        return XAER_INVAL;
    }
    ms_conn *c = calloc(1, sizeof *c);
    LOGINREC *login = c != NULL ? dblogin() : NULL;
    if (login == NULL) {
        free(c);
        xac_err_setr(err, XAC_ENOMEM, conf->name, "resource %s: out of memory opening a connection",
                     conf->name);
        return XAER_RMFAIL;
    }
    c->base.ops = &drv_mssql_ops;
    c->base.conf = conf;
    snprintf(c->where, sizeof c->where, "%s:%d", conf->host, ms_port(conf));
    bool ok = DBSETLUSER(login, conf->user) == SUCCEED &&
              DBSETLPWD(login, conf->password) == SUCCEED && DBSETLAPP(login, "xacd") == SUCCEED &&
              DBSETLCHARSET(login, "UTF-8") == SUCCEED &&
              DBSETLVERSION(login, (BYTE)ver) == SUCCEED &&
              (conf->database[0] == '\0' || DBSETLDBNAME(login, conf->database) == SUCCEED);
#ifdef DBSETENCRYPTION
    if (ok)
        ok = dbsetlname(login, conf->encryption[0] ? conf->encryption : "off", DBSETENCRYPTION) ==
             SUCCEED;
#endif
    if (!ok) {
        dbloginfree(login);
        free(c);
        xac_err_setr(err, XAC_ECONFIG, conf->name,
                     "resource %s: db-lib refused the login settings (user, password or "
                     "database too long?)",
                     conf->name);
        return XAER_INVAL;
    }
    /* Process-wide in db-lib; xacd has one connect timeout for all resources. */
    if (conf->connect_timeout_ms > 0)
        dbsetlogintime((int)ms_seconds(conf->connect_timeout_ms));

    ms_begin(c);
    ms_tl_diag = &c->diag;
    DBPROCESS *db = dbopen(login, c->where);
    ms_tl_diag = NULL;
    dbloginfree(login);
    if (db == NULL) {
        ms_open_error(conf, c, err);
        free(c);
        return XAER_RMFAIL;
    }
    dbsetuserdata(db, (BYTE *)&c->diag);
    c->db = db;
    if (conf->io_timeout_ms > 0) {
        char secs[16];
        snprintf(secs, sizeof secs, "%u", ms_seconds(conf->io_timeout_ms));
        dbsetopt(db, DBSETTIME, secs, 0);
    }
    const char *cur = dbname(db);
    if (conf->database[0] != '\0' && (cur == NULL || strcmp(cur, conf->database) != 0)) {
        ms_begin(c);
        if (dbuse(db, conf->database) == FAIL) {
            xac_err e1;
            ms_fail(c, DRV_STEP_OPEN, "USE", &e1);
            xac_err_setr(err, XAC_ERMFAIL, conf->name,
                         "resource %s: cannot use database \"%s\" on %s: %s", conf->name,
                         conf->database, c->where, ms_tail(c, e1.msg));
            ms_free(c);
            return XAER_RMFAIL;
        }
    }
    /* Without it SQL Server cuts (n)varchar(max) and varbinary(max) values
     * to 4096 bytes (or freetds.conf's "text size") without saying so. */
    int rc = ms_batch(c, DRV_STEP_OPEN, "SET TEXTSIZE", "SET TEXTSIZE 2147483647", NULL, err);
    if (rc == XA_OK)
        rc = ms_ensure_table(c, err);
    if (rc != XA_OK) {
        ms_free(c);
        if (err != NULL)
            err->code = XAC_ERMFAIL;
        return XAER_RMFAIL;
    }
    *out = &c->base;
    return XA_OK;
}

static void ms_close(drv_conn *dc)
{
    ms_conn *c = (ms_conn *)dc;
    if (c == NULL)
        return;
    /* SQL Server rolls back a local transaction left open at logout. */
    ms_free(c);
}

/* ------------------------------------------------------------ branch ops */

static bool own(const ms_conn *c, const xac_xid *xid)
{
    return c->state != MS_NONE && xac_xid_equal(&c->xid, xid);
}

static int ms_rb_answer(ms_conn *c, const char *what, xac_err *err)
{
    xac_err_setr(err, XAC_EROLLBACK, rname(c),
                 "resource %s: %s: SQL Server already rolled the transaction back (%s): %s",
                 rname(c), what, drv_xa_name(c->rb_rc), c->rb_msg);
    return c->rb_rc;
}

static void ms_set_rbonly(ms_conn *c, int rc, const xac_err *why)
{
    c->state = MS_RBONLY;
    c->rb_rc = rc;
    snprintf(c->rb_msg, sizeof c->rb_msg, "%s", ms_tail(c, why->msg));
}

static const char ms_rollback_sql[] = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

/* Rolls the connection's local transaction back, keeping err for the
 * caller's own error. */
static int ms_local_rollback(ms_conn *c, xac_err *err)
{
    int rc = ms_batch(c, DRV_STEP_ROLLBACK, "ROLLBACK TRANSACTION", ms_rollback_sql, NULL, err);
    if (rc == XA_OK || !c->base.broken)
        c->state = MS_NONE;
    return rc;
}

static int ms_start(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (c->state != MS_NONE) {
        char t[XAC_XID_TEXT_MAX];
        xac_xid_format(&c->xid, t);
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: start: the connection already has transaction %s open", rname(c),
                     t);
        return XAER_PROTO;
    }
    int rc = ms_batch(c, DRV_STEP_START, "BEGIN TRANSACTION", "BEGIN TRANSACTION", NULL, err);
    if (rc == XA_OK) {
        c->state = MS_ACTIVE;
        c->xid = *xid;
    }
    return rc;
}

static int ms_end(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (own(c, xid))
        return c->state == MS_RBONLY ? ms_rb_answer(c, "end", err) : XA_OK;
    char t[XAC_XID_TEXT_MAX];
    xac_xid_format(xid, t);
    xac_err_setr(err, XAC_EINTERNAL, rname(c),
                 "resource %s: end: %s is not this connection's transaction", rname(c), t);
    return XAER_NOTA;
}

static int ms_prepare(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    (void)xid;
    ms_conn *c = (ms_conn *)dc;
    xac_err_setr(err, XAC_EINTERNAL, rname(c),
                 "resource %s: prepare: driver mssql is a last resource and has no prepare "
                 "step; it is committed with its commit marker after the other branches are "
                 "prepared",
                 rname(c));
    return XAER_PROTO;
}

/* Output parameters of an xp_sqljdbc_xa_* call. */
typedef struct ms_xa_out {
    int status;
    char text[256];
    uint8_t *data; /* recover's @data, malloc'd */
    size_t data_len;
} ms_xa_out;

static int ms_ret_int(ms_conn *c, int i, int *out)
{
    BYTE *d = dbretdata(c->db, i);
    int len = dbretlen(c->db, i);
    if (d == NULL || len <= 0)
        return -1;
    DBINT v = 0;
    if (dbconvert(c->db, dbrettype(c->db, i), d, len, SYBINT4, (BYTE *)&v, (DBINT)sizeof v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* Reads the output parameters, in the order they were declared: status,
 * error text, and (recover) the data. */
static int ms_xa_outputs(ms_conn *c, const char *proc, bool want_data, ms_xa_out *o, xac_err *err)
{
    int n = dbnumrets(c->db);
    if (n < (want_data ? 3 : 2) || ms_ret_int(c, 1, &o->status) != 0) {
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: %s returned %d output parameter(s) without a status; is it "
                     "installed (SQL Server's XA support)?",
                     rname(c), proc, n);
        return XAER_RMERR;
    }
    BYTE *t = dbretdata(c->db, 2);
    int tl = dbretlen(c->db, 2);
    if (t != NULL && tl > 0) {
        char raw[sizeof o->text];
        size_t k = (size_t)tl < sizeof raw - 1 ? (size_t)tl : sizeof raw - 1;
        memcpy(raw, t, k);
        raw[k] = '\0';
        ms_copy_line(o->text, sizeof o->text, raw);
    }
    if (want_data) {
        BYTE *d = dbretdata(c->db, 3);
        int dl = dbretlen(c->db, 3);
        if (d != NULL && dl > 0) {
            o->data = malloc((size_t)dl);
            if (o->data == NULL) {
                xac_err_setr(err, XAC_ENOMEM, rname(c),
                             "resource %s: %s: out of memory for %d bytes", rname(c), proc, dl);
                return XAER_RMERR;
            }
            memcpy(o->data, d, (size_t)dl);
            o->data_len = (size_t)dl;
        }
    }
    return XA_OK;
}

/* Adds the two leading output parameters every xp_sqljdbc_xa_* has. */
static bool ms_xa_head(ms_conn *c, DBINT *status)
{
    return dbrpcparam(c->db, NULL, DBRPCRETURN, SYBINT4, -1, -1, (BYTE *)status) == SUCCEED &&
           dbrpcparam(c->db, NULL, DBRPCRETURN, SYBVARCHAR, 255, 0, NULL) == SUCCEED;
}

/* xp_sqljdbc_xa_init_ex, once per session before its first XA procedure
 * (the JDBC driver does the same). */
static int ms_xa_init(ms_conn *c, xac_err *err)
{
    if (c->xa_ready)
        return XA_OK;
    static const char proc[] = "master..xp_sqljdbc_xa_init_ex";
    DBINT status = 0;
    ms_begin(c);
    if (!ms_have_db(c) || dbrpcinit(c->db, proc, 0) == FAIL || !ms_xa_head(c, &status) ||
        dbrpcparam(c->db, NULL, DBRPCRETURN, SYBVARCHAR, 255, 0, NULL) == FAIL)
        return ms_rpc_build_fail(c, DRV_STEP_RECOVER, proc + 8, err);
    int rc = ms_rpc_run(c, DRV_STEP_RECOVER, proc + 8, NULL, err);
    if (rc != XA_OK)
        return rc;
    ms_xa_out o = {0};
    rc = ms_xa_outputs(c, proc + 8, false, &o, err);
    if (rc != XA_OK)
        return rc;
    if (o.status != 0) {
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: %s returned status %d: %s; SQL Server's XA support is not "
                     "enabled or not installed",
                     rname(c), proc + 8, o.status, o.text[0] ? o.text : "no text");
        return XAER_RMERR;
    }
    c->xa_ready = true;
    return XA_OK;
}

/* The XA code for an xp_sqljdbc_xa_* status. */
static int ms_xa_status(ms_conn *c, const char *proc, const char *what, const xac_xid *xid,
                        const ms_xa_out *o, xac_err *err)
{
    int st = o->status;
    if (st == XA_OK || st == XA_RDONLY)
        return st;
    bool known = (st >= XAER_OUTSIDE && st <= XAER_ASYNC) || (st >= XA_RETRY && st <= XA_HEURHAZ) ||
                 XA_IS_RB(st);
    int rc = known ? st : XAER_RMERR;
    if (rc == XAER_RMFAIL) {
        c->base.broken = true;
        ms_drop_if_broken(c);
    }
    char t[XAC_XID_TEXT_MAX] = "";
    if (xid != NULL)
        xac_xid_format(xid, t);
    xac_err_setr(err, drv_xa_to_code(rc), rname(c), "resource %s: %s%s%s: %s returned %s (%d)%s%s",
                 rname(c), what, t[0] ? " of " : "", t, proc, drv_xa_name(rc), st,
                 o->text[0] ? ": " : "", o->text);
    return rc;
}

/* commit, rollback or forget of a prepared branch by XID. */
static int ms_xa_by_xid(ms_conn *c, drv_step step, const char *op, const xac_xid *xid,
                        bool with_flags, DBINT flags, xac_err *err)
{
    char proc[64];
    snprintf(proc, sizeof proc, "master..xp_sqljdbc_xa_%s", op);
    const char *pname = proc + 8;
    int rc = ms_xa_init(c, err);
    if (rc != XA_OK)
        return rc;
    DBINT status = 0, fid = xid->format_id;
    ms_begin(c);
    bool ok =
        ms_have_db(c) && dbrpcinit(c->db, proc, 0) == SUCCEED && ms_xa_head(c, &status) &&
        dbrpcparam(c->db, NULL, 0, SYBVARBINARY, -1, xid->gtrid_len,
                   (BYTE *)(uintptr_t)xid->gtrid) == SUCCEED &&
        dbrpcparam(c->db, NULL, 0, SYBVARBINARY, -1, xid->bqual_len,
                   (BYTE *)(uintptr_t)xid->bqual) == SUCCEED &&
        (!with_flags || dbrpcparam(c->db, NULL, 0, SYBINT4, -1, -1, (BYTE *)&flags) == SUCCEED) &&
        dbrpcparam(c->db, NULL, 0, SYBINT4, -1, -1, (BYTE *)&fid) == SUCCEED;
    if (!ok)
        return ms_rpc_build_fail(c, step, pname, err);
    rc = ms_rpc_run(c, step, pname, NULL, err);
    if (rc != XA_OK)
        return rc;
    ms_xa_out o = {0};
    rc = ms_xa_outputs(c, pname, false, &o, err);
    if (rc != XA_OK)
        return rc;
    return ms_xa_status(c, pname, op, xid, &o, err);
}

static int ms_commit(drv_conn *dc, const xac_xid *xid, bool one_phase, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (!one_phase) {
        if (c->state != MS_NONE && !own(c, xid)) {
            xac_err_setr(err, XAC_EINTERNAL, rname(c),
                         "resource %s: commit by XID on a connection busy with its own "
                         "transaction; use a connection without one",
                         rname(c));
            return XAER_PROTO;
        }
        return ms_xa_by_xid(c, DRV_STEP_COMMIT, "commit", xid, true, MS_TMNOFLAGS, err);
    }
    if (!own(c, xid)) {
        char t[XAC_XID_TEXT_MAX];
        xac_xid_format(xid, t);
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: one-phase commit of %s: it is not this connection's "
                     "transaction",
                     rname(c), t);
        return XAER_PROTO;
    }
    if (c->state == MS_RBONLY) {
        int rb = ms_rb_answer(c, "one-phase commit", err);
        xac_err e2;
        ms_local_rollback(c, &e2);
        c->state = MS_NONE;
        return rb;
    }
    int rc = ms_batch(c, DRV_STEP_COMMIT, "COMMIT TRANSACTION", "COMMIT TRANSACTION", NULL, err);
    if (rc == XA_OK) {
        c->state = MS_NONE;
        return XA_OK;
    }
    if (c->base.broken)
        return rc; /* XAER_RMFAIL: the outcome is unknown */
    /* The commit failed and did not happen: end the transaction. */
    xac_err e2;
    ms_local_rollback(c, &e2);
    c->state = MS_NONE;
    if (!XA_IS_RB(rc)) {
        rc = XA_RBROLLBACK;
        if (err != NULL)
            err->code = XAC_EROLLBACK;
    }
    return rc;
}

static int ms_rollback(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (own(c, xid)) {
        int rc = ms_local_rollback(c, err);
        if (rc == XA_OK || !c->base.broken) {
            /* Rolled back now or earlier by SQL Server: what was asked. */
            xac_err_clear(err);
            c->state = MS_NONE;
            return XA_OK;
        }
        return rc;
    }
    if (c->state != MS_NONE) {
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: rollback by XID on a connection busy with its own "
                     "transaction; use a connection without one",
                     rname(c));
        return XAER_PROTO;
    }
    return ms_xa_by_xid(c, DRV_STEP_ROLLBACK, "rollback", xid, false, 0, err);
}

static int ms_recover(drv_conn *dc, drv_indoubt **out, size_t *n, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    *out = NULL;
    *n = 0;
    static const char proc[] = "master..xp_sqljdbc_xa_recover";
    const char *pname = proc + 8;
    int rc = ms_xa_init(c, err);
    if (rc != XA_OK)
        return rc;
    DBINT status = 0, flags = MS_TMSTARTRSCAN | MS_TMENDRSCAN;
    ms_begin(c);
    bool ok =
        ms_have_db(c) && dbrpcinit(c->db, proc, 0) == SUCCEED && ms_xa_head(c, &status) &&
        dbrpcparam(c->db, NULL, 0, SYBINT4, -1, -1, (BYTE *)&flags) == SUCCEED &&
        dbrpcparam(c->db, NULL, DBRPCRETURN, SYBVARBINARY, MS_RECOVER_MAX, 0, NULL) == SUCCEED;
    if (!ok)
        return ms_rpc_build_fail(c, DRV_STEP_RECOVER, pname, err);
    rc = ms_rpc_run(c, DRV_STEP_RECOVER, pname, NULL, err);
    if (rc != XA_OK)
        return rc;
    ms_xa_out o = {0};
    rc = ms_xa_outputs(c, pname, true, &o, err);
    if (rc == XA_OK && o.status != XA_OK)
        rc = ms_xa_status(c, pname, "recover", NULL, &o, err);
    if (rc == XA_OK && drv_mssql_decode_recover(o.data, o.data_len, out, n, err) != XAC_OK) {
        xac_err_prefix(err, "resource %s: %s returned malformed data (%zu bytes)", rname(c), pname,
                       o.data_len);
        if (err != NULL) {
            err->code = XAC_ESQL;
            snprintf(err->resource, sizeof err->resource, "%s", rname(c));
        }
        rc = XAER_RMERR;
    }
    free(o.data);
    return rc;
}

static int ms_forget(drv_conn *dc, const xac_xid *xid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    return ms_xa_by_xid(c, DRV_STEP_ROLLBACK, "forget", xid, false, 0, err);
}

/* ------------------------------------------------------------ exec */

static const char *ms_param_decl(const xac_value *v)
{
    switch (v->type) {
    case XAC_T_INT:
        return "bigint";
    case XAC_T_DOUBLE:
        return "float";
    case XAC_T_TEXT:
        return "nvarchar(max)";
    case XAC_T_BLOB:
        return "varbinary(max)";
    default:
        return "nvarchar(1)";
    }
}

/* Adds one value as an sp_executesql parameter. db-lib keeps the pointer
 * until dbrpcsend, and reads a zero length as NULL, which is why empty
 * strings never come here (they are written into the statement). */
static bool ms_rpc_value(ms_conn *c, const xac_value *v)
{
    BYTE *p = (BYTE *)(uintptr_t)v->s;
    switch (v->type) {
    case XAC_T_INT:
        return dbrpcparam(c->db, NULL, 0, SYBINT8, -1, -1, (BYTE *)(uintptr_t)&v->i) == SUCCEED;
    case XAC_T_DOUBLE:
        return dbrpcparam(c->db, NULL, 0, SYBFLT8, -1, -1, (BYTE *)(uintptr_t)&v->d) == SUCCEED;
    case XAC_T_TEXT:
        /* db-lib sends varchar up to 4000 bytes as nvarchar; longer as
         * nvarchar(max) (ntext before TDS 7.2). */
        return dbrpcparam(c->db, NULL, 0, v->len <= 4000 ? SYBVARCHAR : SYBNTEXT, -1, (DBINT)v->len,
                          p) == SUCCEED;
    case XAC_T_BLOB:
        return dbrpcparam(c->db, NULL, 0, v->len <= 8000 ? SYBVARBINARY : SYBIMAGE, -1,
                          (DBINT)v->len, p) == SUCCEED;
    default:
        return dbrpcparam(c->db, NULL, 0, SYBVARCHAR, -1, 0, NULL) == SUCCEED;
    }
}

static bool ms_rpc_text(ms_conn *c, const char *s)
{
    size_t n = strlen(s);
    return dbrpcparam(c->db, NULL, 0, n <= 4000 ? SYBVARCHAR : SYBNTEXT, -1, (DBINT)n,
                      (BYTE *)(uintptr_t)s) == SUCCEED;
}

/* sp_executesql with '?' rewritten to @Pn and typed parameters. */
static int ms_exec_params(ms_conn *c, const char *sql, size_t sql_len, const xac_value *params,
                          size_t nparams, xac_rows *rows, xac_err *err)
{
    if (nparams > DRV_MSSQL_MAX_PARAMS) {
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: exec: %zu parameters; SQL Server takes at most %d", rname(c),
                     nparams, DRV_MSSQL_MAX_PARAMS);
        return XAER_RMERR;
    }
    const char **subst = calloc(nparams, sizeof *subst);
    char *decl = malloc(nparams * 32 + 1);
    char *stmt = NULL;
    int rc = XA_OK;
    if (subst == NULL || decl == NULL) {
        xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: exec: out of memory", rname(c));
        rc = XAER_RMERR;
        goto out;
    }
    size_t dl = 0;
    decl[0] = '\0';
    for (size_t i = 0; i < nparams; i++) {
        const xac_value *v = &params[i];
        if ((v->type == XAC_T_TEXT || v->type == XAC_T_BLOB) && v->len > (size_t)INT32_MAX / 2) {
            xac_err_setr(err, XAC_EINVAL, rname(c),
                         "resource %s: exec: parameter %zu is too long (%zu bytes)", rname(c),
                         i + 1, v->len);
            rc = XAER_RMERR;
            goto out;
        }
        if (v->type == XAC_T_TEXT && v->len == 0)
            subst[i] = "N''";
        else if (v->type == XAC_T_BLOB && v->len == 0)
            subst[i] = "0x";
        else if (v->type != XAC_T_NULL && v->type != XAC_T_INT && v->type != XAC_T_DOUBLE &&
                 v->type != XAC_T_TEXT && v->type != XAC_T_BLOB) {
            xac_err_setr(err, XAC_EINVAL, rname(c),
                         "resource %s: exec: parameter %zu has unknown type %d", rname(c), i + 1,
                         (int)v->type);
            rc = XAER_RMERR;
            goto out;
        } else
            dl += (size_t)snprintf(decl + dl, 32, "%s@P%zu %s", dl ? "," : "", i + 1,
                                   ms_param_decl(v));
    }
    size_t nmarks = 0;
    if (drv_mssql_rewrite(sql, sql_len, subst, nparams, &stmt, &nmarks, err) != XAC_OK) {
        xac_err_prefix(err, "resource %s: exec", rname(c));
        rc = XAER_RMERR;
        goto out;
    }
    if (nmarks != nparams) {
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: exec: the statement has %zu '?' placeholder(s) but %zu "
                     "parameter(s) were given",
                     rname(c), nmarks, nparams);
        rc = XAER_RMERR;
        goto out;
    }
    if (memchr(sql, '\0', sql_len) != NULL) {
        xac_err_setr(err, XAC_EINVAL, rname(c), "resource %s: exec: the statement has a NUL byte",
                     rname(c));
        rc = XAER_RMERR;
        goto out;
    }
    ms_begin(c);
    bool ok = ms_have_db(c) && dbrpcinit(c->db, "sp_executesql", 0) == SUCCEED &&
              ms_rpc_text(c, stmt) && (dl == 0 || ms_rpc_text(c, decl));
    for (size_t i = 0; ok && i < nparams; i++)
        if (subst[i] == NULL)
            ok = ms_rpc_value(c, &params[i]);
    if (!ok) {
        rc = ms_rpc_build_fail(c, DRV_STEP_EXEC, "exec", err);
        goto out;
    }
    rc = ms_rpc_run(c, DRV_STEP_EXEC, "exec", rows, err);
out:
    free(subst);
    free(decl);
    free(stmt);
    return rc;
}

static int ms_exec(drv_conn *dc, const char *sql, size_t sql_len, const xac_value *params,
                   size_t nparams, xac_rows *rows, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (c->state == MS_RBONLY)
        return ms_rb_answer(c, "exec", err);
    xac_rows scratch;
    xac_rows_init(&scratch);
    xac_rows *r = rows != NULL ? rows : &scratch;
    xac_rows_free(r);
    int rc;
    if (nparams > 0) {
        rc = ms_exec_params(c, sql, sql_len, params, nparams, r, err);
    } else if (memchr(sql, '\0', sql_len) != NULL) {
        xac_err_setr(err, XAC_EINVAL, rname(c), "resource %s: exec: the statement has a NUL byte",
                     rname(c));
        rc = XAER_RMERR;
    } else {
        char *buf = malloc(sql_len + 1);
        if (buf == NULL) {
            xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: exec: out of memory", rname(c));
            rc = XAER_RMERR;
        } else {
            memcpy(buf, sql, sql_len);
            buf[sql_len] = '\0';
            rc = ms_batch(c, DRV_STEP_EXEC, "exec", buf, r, err);
            free(buf);
        }
    }
    if (rc != XA_OK)
        xac_rows_free(r);
    if (XA_IS_RB(rc) && c->state == MS_ACTIVE && err != NULL)
        ms_set_rbonly(c, rc, err);
    xac_rows_free(&scratch);
    return rc;
}

static int ms_ping(drv_conn *dc, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = ms_batch(c, DRV_STEP_EXEC, "health check (SELECT 1)", "SELECT 1", &rows, err);
    xac_rows_free(&rows);
    return rc;
}

/* ------------------------------------------------------------ last resource */

static int ms_bad_gtrid(ms_conn *c, const char *what, const char *gtrid, xac_err *err)
{
    xac_err_setr(err, XAC_EINVAL, rname(c),
                 "resource %s: %s: gtrid \"%.80s\" is not 1 to %d characters of A-Z a-z 0-9 . _ -",
                 rname(c), what, gtrid != NULL ? gtrid : "(null)", XAC_GTRID_MAX);
    return XAER_INVAL;
}

static bool ms_is_dup(const ms_conn *c)
{
    return !c->base.broken && (c->diag.msgno == 2627 || c->diag.msgno == 2601);
}

static int ms_lrc_commit(drv_conn *dc, const char *gtrid, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    if (!drv_mssql_valid_gtrid(gtrid, false))
        return ms_bad_gtrid(c, "commit", gtrid, err);
    if (c->state == MS_RBONLY) {
        int rb = ms_rb_answer(c, "commit", err);
        xac_err e2;
        ms_local_rollback(c, &e2);
        c->state = MS_NONE;
        return rb;
    }
    if (c->state != MS_ACTIVE) {
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: commit of %s: the connection has no local transaction open",
                     rname(c), gtrid);
        return XAER_PROTO;
    }
    /* The marker and the COMMIT go in two batches: SQL Server carries on
     * with a batch after a statement error such as 2627, so a COMMIT in the
     * same batch would commit the work without its marker. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (gtrid, outcome, created_unix) VALUES ('%s', 'C', %" PRId64 ")",
             ms_table(c->base.conf), gtrid, (int64_t)time(NULL));
    xac_err e1;
    xac_err_clear(&e1);
    int rc = ms_batch(c, DRV_STEP_EXEC, "commit marker insert", sql, NULL, &e1);
    if (rc != XA_OK) {
        if (c->base.broken) {
            if (err != NULL)
                *err = e1;
            return XAER_RMFAIL;
        }
        bool fenced = ms_is_dup(c);
        xac_err e2;
        ms_local_rollback(c, &e2);
        c->state = MS_NONE;
        if (fenced) {
            xac_err_setr(err, XAC_EROLLBACK, rname(c),
                         "resource %s: commit of %s refused: recovery fenced the transaction "
                         "(its abort marker is in %s: %s); the local transaction is rolled back",
                         rname(c), gtrid, ms_table(c->base.conf), ms_tail(c, e1.msg));
            return XA_RBROLLBACK;
        }
        xac_err_setr(err, XAC_EROLLBACK, rname(c),
                     "resource %s: commit of %s: %s; the local transaction is rolled back",
                     rname(c), gtrid, ms_tail(c, e1.msg));
        return XA_IS_RB(rc) ? rc : XA_RBROLLBACK;
    }
    rc = ms_batch(c, DRV_STEP_COMMIT, "COMMIT TRANSACTION", "COMMIT TRANSACTION", NULL, err);
    if (rc == XA_OK) {
        c->state = MS_NONE;
        return XA_OK;
    }
    if (c->base.broken)
        return XAER_RMFAIL; /* the outcome is unknown: the marker tells */
    xac_err e2;
    ms_local_rollback(c, &e2);
    c->state = MS_NONE;
    if (err != NULL)
        err->code = XAC_EROLLBACK;
    return XA_IS_RB(rc) ? rc : XA_RBROLLBACK;
}

/* SELECT outcome for gtrid: *found false when there is no row. */
static int ms_marker_select(ms_conn *c, const char *gtrid, bool *found, drv_marker *out,
                            xac_err *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT outcome FROM %s WHERE gtrid = '%s'", ms_table(c->base.conf),
             gtrid);
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = ms_batch(c, DRV_STEP_RECOVER, "marker lookup", sql, &rows, err);
    *found = false;
    if (rc == XA_OK && rows.has_rows && rows.nrows > 0 && rows.ncols > 0) {
        size_t len = 0;
        const char *v = xac_rows_cell(&rows, 0, 0, &len);
        *found = true;
        if (v != NULL && len >= 1 && v[0] == 'C') {
            *out = DRV_MARKER_COMMITTED;
        } else if (v != NULL && len >= 1 && v[0] == 'R') {
            *out = DRV_MARKER_ABORTED;
        } else {
            xac_err_setr(err, XAC_ESQL, rname(c),
                         "resource %s: marker lookup of %s: outcome \"%.8s\" is neither 'C' nor "
                         "'R'",
                         rname(c), gtrid, v != NULL ? v : "NULL");
            rc = XAER_RMERR;
        }
    }
    xac_rows_free(&rows);
    return rc;
}

static int ms_lrc_marker(drv_conn *dc, const char *gtrid, bool fence, drv_marker *out, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    *out = DRV_MARKER_NONE;
    if (!drv_mssql_valid_gtrid(gtrid, false))
        return ms_bad_gtrid(c, "marker lookup", gtrid, err);
    if (c->state != MS_NONE) {
        xac_err_setr(err, XAC_EINTERNAL, rname(c),
                     "resource %s: marker lookup of %s on a connection with a transaction of "
                     "its own; use a connection without one",
                     rname(c), gtrid);
        return XAER_PROTO;
    }
    bool found = false;
    int rc = ms_marker_select(c, gtrid, &found, out, err);
    if (rc != XA_OK || found || !fence)
        return rc;
    /* No row: fence. The insert waits for a commit in flight that holds the
     * key, and then fails with a duplicate key: look again. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (gtrid, outcome, created_unix) VALUES ('%s', 'R', %" PRId64 ")",
             ms_table(c->base.conf), gtrid, (int64_t)time(NULL));
    rc = ms_batch(c, DRV_STEP_EXEC, "marker fence insert", sql, NULL, err);
    if (rc == XA_OK) {
        *out = DRV_MARKER_ABORTED;
        return XA_OK;
    }
    if (!ms_is_dup(c))
        return rc;
    xac_err_clear(err);
    rc = ms_marker_select(c, gtrid, &found, out, err);
    if (rc == XA_OK && !found) {
        xac_err_setr(err, XAC_ESQL, rname(c),
                     "resource %s: marker fence of %s: the insert found a row that the lookup "
                     "then did not",
                     rname(c), gtrid);
        rc = XAER_RMERR;
    }
    return rc;
}

static int ms_lrc_forget(drv_conn *dc, const char *const *gtrids, size_t n,
                         int64_t aborted_before_unix, xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    for (size_t i = 0; i < n; i++)
        if (!drv_mssql_valid_gtrid(gtrids[i], false))
            return ms_bad_gtrid(c, "marker removal", gtrids[i], err);
    const char *t = ms_table(c->base.conf);
    size_t cap = 64 + strlen(t) + MS_FORGET_BATCH * (XAC_GTRID_MAX + 3);
    char *sql = malloc(cap);
    if (sql == NULL) {
        xac_err_setr(err, XAC_ENOMEM, rname(c), "resource %s: marker removal: out of memory",
                     rname(c));
        return XAER_RMERR;
    }
    int rc = XA_OK;
    for (size_t i = 0; i < n && rc == XA_OK; i += MS_FORGET_BATCH) {
        size_t end = i + MS_FORGET_BATCH < n ? i + MS_FORGET_BATCH : n;
        size_t o = (size_t)snprintf(sql, cap, "DELETE FROM %s WHERE gtrid IN (", t);
        for (size_t k = i; k < end; k++)
            o += (size_t)snprintf(sql + o, cap - o, "%s'%s'", k > i ? "," : "", gtrids[k]);
        snprintf(sql + o, cap - o, ")");
        rc = ms_batch(c, DRV_STEP_EXEC, "marker removal", sql, NULL, err);
    }
    if (rc == XA_OK && aborted_before_unix > 0) {
        snprintf(sql, cap, "DELETE FROM %s WHERE outcome = 'R' AND created_unix < %" PRId64, t,
                 aborted_before_unix);
        rc = ms_batch(c, DRV_STEP_EXEC, "abort marker removal", sql, NULL, err);
    }
    free(sql);
    return rc;
}

static int ms_lrc_list(drv_conn *dc, const char *prefix, char (**out)[XAC_GTRID_MAX + 1], size_t *n,
                       xac_err *err)
{
    ms_conn *c = (ms_conn *)dc;
    *out = NULL;
    *n = 0;
    const char *p = prefix != NULL ? prefix : "";
    if (!drv_mssql_valid_gtrid(p, true))
        return ms_bad_gtrid(c, "marker listing", p, err);
    /* '_' is a LIKE wildcard: the pattern may match more, the strncmp
     * below keeps the exact prefix. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT gtrid FROM %s WHERE outcome = 'C' AND gtrid LIKE '%s%%' ORDER BY gtrid",
             ms_table(c->base.conf), p);
    xac_rows rows;
    xac_rows_init(&rows);
    int rc = ms_batch(c, DRV_STEP_RECOVER, "marker listing", sql, &rows, err);
    if (rc == XA_OK && rows.nrows > 0) {
        char(*v)[XAC_GTRID_MAX + 1] = calloc(rows.nrows, sizeof *v);
        if (v == NULL) {
            xac_err_setr(err, XAC_ENOMEM, rname(c),
                         "resource %s: marker listing: out of memory for %zu gtrids", rname(c),
                         rows.nrows);
            rc = XAER_RMERR;
        } else {
            size_t k = 0, pl = strlen(p);
            for (size_t i = 0; i < rows.nrows; i++) {
                size_t len = 0;
                const char *g = xac_rows_cell(&rows, i, 0, &len);
                if (g == NULL || len > XAC_GTRID_MAX || strncmp(g, p, pl) != 0)
                    continue;
                memcpy(v[k], g, len);
                v[k][len] = '\0';
                k++;
            }
            if (k == 0) {
                free(v);
                v = NULL;
            }
            *out = v;
            *n = k;
        }
    }
    xac_rows_free(&rows);
    return rc;
}

const drv_ops drv_mssql_ops = {
    .name = "mssql",
    .open = ms_open,
    .close = ms_close,
    .start = ms_start,
    .end = ms_end,
    .prepare = ms_prepare,
    .commit = ms_commit,
    .rollback = ms_rollback,
    .recover = ms_recover,
    .forget = ms_forget,
    .exec = ms_exec,
    .ping = ms_ping,
    .lrc_commit = ms_lrc_commit,
    .lrc_marker = ms_lrc_marker,
    .lrc_forget = ms_lrc_forget,
    .lrc_list = ms_lrc_list,
};
