/* The SQL Server connection, on FreeTDS db-lib (sybdb): db-lib's one-time
 * init, the login, running a batch or an RPC and reading its results into
 * xac_rows as text, and turning what db-lib and the server reported into an
 * XA code and a message. Thread safety: dbinit runs once (pthread_once);
 * db-lib's error and message handlers are process-wide, so they find the
 * connection they report on through dbsetuserdata/dbgetuserdata on the
 * DBPROCESS, and through a thread-local while there is no DBPROCESS of ours
 * yet (during dbopen and the login). A DBPROCESS is only ever used by one
 * thread at a time (the pool hands a connection to one caller). Any lost
 * link marks the connection broken, closes it, and answers XAER_RMFAIL. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sybdb.h>

#include "mssql_internal.h"

#define MS_DEFAULT_PORT 1433

/* TDS types db-lib's header does not name. */
#define MS_XSYBVARBINARY 165
#define MS_XSYBVARCHAR   167
#define MS_XSYBBINARY    173
#define MS_XSYBCHAR      175
#define MS_XSYBNVARCHAR  231
#define MS_XSYBNCHAR     239
#define MS_SYBMSXML      241

static pthread_once_t ms_once = PTHREAD_ONCE_INIT;
static RETCODE ms_lib_rc = FAIL;
/* The diagnostics of the dbopen running on this thread. */
static _Thread_local ms_diag *ms_tl_diag;

/* ------------------------------------------------------------ handlers */

static ms_diag *ms_diag_of(DBPROCESS *p)
{
    ms_diag *d = p != NULL ? (ms_diag *)dbgetuserdata(p) : NULL;
    return d != NULL ? d : ms_tl_diag;
}

/* One line, without the newlines servers put in messages. */
void ms_copy_line(char *dst, size_t n, const char *src)
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

int ms_port(const drv_conf *cf)
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

const char *ms_rname(const ms_conn *c)
{
    return c->base.conf->name;
}

/* A message without its leading "resource NAME: ", to quote it in another. */
const char *ms_tail(const ms_conn *c, const char *m)
{
    size_t nl = strlen(ms_rname(c));
    if (strncmp(m, "resource ", 9) == 0 && strncmp(m + 9, ms_rname(c), nl) == 0 &&
        strncmp(m + 9 + nl, ": ", 2) == 0)
        m += 9 + nl + 2;
    return m;
}

static unsigned ms_seconds(uint32_t ms)
{
    unsigned s = (unsigned)((ms + 999u) / 1000u);
    return s < 1 ? 1 : s;
}

/* ------------------------------------------------------------ failures */

void ms_begin(ms_conn *c)
{
    memset(&c->diag, 0, sizeof c->diag);
}

/* Closes the link of a broken connection at once: SQL Server then rolls its
 * local transaction back instead of holding its locks until the pool gets
 * the connection back. Nothing uses the handle afterwards (drv.c refuses
 * broken connections). */
void ms_drop_if_broken(ms_conn *c)
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
        xac_err_setr(err, XAC_ESQL, ms_rname(c),
                     "resource %s: exec: cannot convert column %d (%s, TDS type %d) to text",
                     ms_rname(c), col, dbcolname(c->db, col) ? dbcolname(c->db, col) : "?", type);
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
        xac_err_setr(err, XAC_ENOMEM, ms_rname(c), "resource %s: %s: out of memory for %zu columns",
                     ms_rname(c), what, n);
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
int ms_batch(ms_conn *c, drv_step step, const char *what, const char *sql, xac_rows *rows,
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
int ms_rpc_run(ms_conn *c, drv_step step, const char *what, xac_rows *rows, xac_err *err)
{
    if (dbrpcsend(c->db) == FAIL || dbsqlok(c->db) == FAIL)
        return ms_fail(c, step, what, err);
    return ms_results(c, step, what, rows, err);
}

/* Before an RPC is built: the handle may be gone after an earlier failure
 * in the same operation. */
bool ms_have_db(ms_conn *c)
{
    return c->db != NULL && !DBDEAD(c->db);
}

/* A failure while the RPC is being built: nothing was sent. */
int ms_rpc_build_fail(ms_conn *c, drv_step step, const char *what, xac_err *err)
{
    if (c->db != NULL && !DBDEAD(c->db))
        dbrpcinit(c->db, "", DBRPCRESET);
    if (c->db != NULL && !DBDEAD(c->db) && c->diag.dberr == 0 && c->diag.msgno == 0) {
        xac_err_setr(err, XAC_EINTERNAL, ms_rname(c),
                     "resource %s: %s: db-lib refused a parameter of the call", ms_rname(c), what);
        return XAER_RMERR;
    }
    return ms_fail(c, step, what, err);
}

/* ------------------------------------------------------------ open, close */

void ms_free(ms_conn *c)
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

int ms_connect(const drv_conf *conf, ms_conn **out, xac_err *err)
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
    if (rc != XA_OK) {
        ms_free(c);
        if (err != NULL)
            err->code = XAC_ERMFAIL;
        return XAER_RMFAIL;
    }
    *out = c;
    return XA_OK;
}
