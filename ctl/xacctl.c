/* xacctl: the DBA's tool for in-doubt XA branches. status, list, commit,
 * rollback and recover work online, through the running xacd's admin socket
 * (docs/protocol.md, "Admin socket"), or offline with xacd stopped: then
 * xacctl reads xacd's config and journal itself and connects to the resources
 * on its own. Which one is decided by whether xacd answers on its admin
 * socket; offline work refuses a journal that a live xacd holds. Both modes
 * run the same recovery/ code (rec_list, rec_pass, rec_resolve), so they
 * judge every branch alike, and manual actions land in the same audit log.
 * Output is a table, or JSON with --json. */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "journal.h"
#include "rec.h"
#include "xac_common.h"

#define DEFAULT_CONFIG "/etc/xac/xacd.conf"

/* Exit codes. */
#define EXIT_DONE    0
#define EXIT_TROUBLE 1 /* an error, an unreachable resource or a failed action */
#define EXIT_USAGE   2
#define EXIT_REFUSED 3 /* a safety rule refused a manual action; nothing was done */

/* How long xacctl waits for one answer of xacd: a pass or a resolution talks
 * to every resource, each bounded by the connect and statement timeouts. */
#define ONLINE_TIMEOUT_S 600

typedef struct opts {
    const char *conf_path;
    bool json;
    bool offline; /* --offline */
    bool online;  /* --online */
    bool force;
    const char *resource;
    const char *operator_name;
} opts;

/* The mode a command runs in: fd >= 0 online, else offline with j open. */
typedef struct session {
    const xacd_config *cfg;
    const opts *o;
    int fd;
    journal *j;
} session;

static void usage(void)
{
    xac_out("usage: xacctl [OPTIONS] COMMAND [XID]\n"
            "\n"
            "Inspects and resolves in-doubt (prepared) XA branches of an xac coordinator.\n"
            "Online, when xacd answers on its admin socket (config admin_socket, default\n"
            "JOURNAL_DIR/admin.sock), every command goes through the running xacd. Offline,\n"
            "when xacd is stopped, xacctl reads xacd's config and journal itself (the\n"
            "journal's lock keeps xacd from starting meanwhile) and connects to the\n"
            "resources on its own. When xacd runs but does not answer on its admin socket,\n"
            "xacctl refuses to work offline.\n"
            "\n"
            "Commands:\n"
            "  status        daemon health, resources up or down, transactions in flight and\n"
            "                in doubt, recovery passes, heuristic outcomes. Offline: the\n"
            "                journal's pending commits, which resources answer, the in-doubt\n"
            "                branch count.\n"
            "  list          every in-doubt branch on every resource: resource, XID (gtrid and\n"
            "                bqual), age, the journal's decision and what recovery will do:\n"
            "                  committed            a COMMIT record exists, or a last resource\n"
            "                                       (SQL Server) has the gtrid's commit\n"
            "                                       marker: recovery commits it\n"
            "                  none: will roll back no decision (presumed abort): recovery\n"
            "                                       rolls it back, at once or after the grace\n"
            "                                       period (action column)\n"
            "                  live: in progress    xacd is still running the transaction\n"
            "                  foreign: not ours    another node or transaction manager:\n"
            "                                       recovery never touches it\n"
            "                  unknown: held        no COMMIT record, but the journal failed or\n"
            "                                       was salvaged, or a last resource cannot be\n"
            "                                       asked for its marker: left prepared\n"
            "  commit XID    commit the branch(es) of XID by hand, on every resource where it\n"
            "                is in doubt (or only --resource). Refused without --force when\n"
            "                the journal has no COMMIT record for its gtrid (nor a last\n"
            "                resource a commit marker).\n"
            "  rollback XID  roll them back by hand. Refused without --force when the journal\n"
            "                has a COMMIT record for its gtrid, a last resource has its commit\n"
            "                marker, or a last resource cannot be asked. A last resource gets\n"
            "                an abort row for the gtrid first, so that its commit cannot land\n"
            "                afterwards.\n"
            "                Both refuse a foreign XID, or a transaction xacd still runs,\n"
            "                without --force. Every attempt, refusals included, is appended to\n"
            "                the audit log (config audit_log, default JOURNAL_DIR/audit.log).\n"
            "  recover       run one recovery pass now and print what it did.\n"
            "\n"
            "XID: a gtrid (every branch of it), or an XID as list prints it:\n"
            "'gtrid','bqual',formatid or X'hex',X'hex',formatid. A PostgreSQL prepared\n"
            "transaction whose gid is not an XID is listed by its gid; finish it in the\n"
            "database (COMMIT PREPARED / ROLLBACK PREPARED).\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE    xacd's configuration (default " DEFAULT_CONFIG ")\n"
            "  -j, --json           print JSON instead of a table\n"
            "      --offline        do not use the admin socket; refused while xacd runs\n"
            "      --online         only through the admin socket; fail if xacd does not answer\n"
            "  -r, --resource NAME  commit/rollback: only on this resource\n"
            "  -f, --force          commit/rollback: override the refusals above\n"
            "      --operator NAME  who acts, for the audit log (default: the login name)\n"
            "  -v, --verbose        log at debug level (to stderr)\n"
            "  -q, --quiet          log warnings and errors only (the default for status, list)\n"
            "  -h, --help           this text\n"
            "      --version        the version\n"
            "\n"
            "Exit status: 0 done; 1 an error, an unreachable resource, a failed action or\n"
            "(status) a degraded daemon (details on stderr); 2 bad usage; 3 a manual action\n"
            "was refused by a safety rule (nothing was done for it).\n");
}

/* ------------------------------------------------------------------ JSON */

static void json_str(const char *s, size_t n)
{
    xac_out("\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            xac_out("\\%c", c);
        else if (c == '\n')
            xac_out("\\n");
        else if (c == '\t')
            xac_out("\\t");
        else if (c < 0x20 || c == 0x7f || c >= 0x80)
            /* Bytes, not necessarily UTF-8 (gtrids of other managers): one
             * escape per byte keeps the output valid JSON. */
            xac_out("\\u%04x", c);
        else
            xac_out("%c", c);
    }
    xac_out("\"");
}

static void json_cstr(const char *s)
{
    if (s == NULL)
        xac_out("null");
    else
        json_str(s, strlen(s));
}

/* A number when s is one (digits, optional minus), else a string. */
static void json_val(const char *s)
{
    if (s == NULL) {
        xac_out("null");
        return;
    }
    size_t i = s[0] == '-' ? 1 : 0;
    bool num = s[i] != '\0' && strlen(s) < 19;
    for (; s[i] != '\0' && num; i++)
        num = s[i] >= '0' && s[i] <= '9';
    if (num)
        xac_out("%s", s);
    else
        json_cstr(s);
}

/* --------------------------------------------------------------- helpers */

static const char *who(const opts *o)
{
    if (o->operator_name != NULL && o->operator_name[0] != '\0')
        return o->operator_name;
    const char *s = getlogin();
    if (s == NULL || s[0] == '\0')
        s = getenv("USER");
    if (s == NULL || s[0] == '\0')
        s = "unknown";
    return s;
}

static void format_age(const char *age_s, char *out, size_t len)
{
    if (age_s == NULL || age_s[0] == '\0') {
        snprintf(out, len, "-");
        return;
    }
    long long s = atoll(age_s);
    if (s < 0)
        snprintf(out, len, "-");
    else if (s < 120)
        snprintf(out, len, "%llds", s);
    else if (s < 7200)
        snprintf(out, len, "%lldm", s / 60);
    else if (s < 172800)
        snprintf(out, len, "%lldh", s / 3600);
    else
        snprintf(out, len, "%lldd", s / 86400);
}

/* The table's text of a decision key ("none" -> "none: will roll back"). */
static const char *decision_text(const char *key)
{
    static const rec_decision all[] = {REC_COMMIT, REC_ROLLBACK, REC_LIVE, REC_FOREIGN, REC_HELD};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (key != NULL && strcmp(key, rec_decision_key(all[i])) == 0)
            return rec_decision_name(all[i]);
    return key != NULL ? key : "?";
}

/* --------------------------------------------------------- online mode */

/* Connects to xacd's admin socket: the fd, or -1 when nothing answers. */
static int admin_connect(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = ONLINE_TIMEOUT_S, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends req and reads one reply into *rep (caller frees). */
static int admin_call(int fd, const xac_msg *req, xac_msg *rep, xac_err *err)
{
    int rc = xac_msg_send(fd, req, err);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "sending to xacd's admin socket");
    xac_buf b;
    xac_buf_init(&b);
    uint8_t type;
    rc = xac_frame_read(fd, 1u << 30, &type, &b, err);
    if (rc == XAC_OK)
        rc = xac_msg_decode(type, b.data, b.len, rep, err);
    xac_buf_free(&b);
    if (rc != XAC_OK)
        return xac_err_prefix(err, "reading xacd's answer on its admin socket");
    return XAC_OK;
}

/* A request that answers RESULT: the rows, or the ERROR as err. */
static int admin_rows(int fd, uint8_t type, xac_rows *rows, xac_err *err)
{
    xac_msg req, rep;
    xac_msg_init(&req, type);
    int rc = admin_call(fd, &req, &rep, err);
    if (rc != XAC_OK)
        return rc;
    if (rep.type == XAC_MSG_ERROR) {
        rc = xac_err_setr(err, rep.code, rep.resource, "xacd: %s", rep.message);
    } else if (rep.type != XAC_MSG_RESULT || !rep.rows.has_rows) {
        rc = xac_err_set(err, XAC_EPROTO, "xacd answered message type 0x%02X, not a row set",
                         rep.type);
    } else {
        *rows = rep.rows;
        xac_rows_init(&rep.rows);
    }
    xac_msg_free(&rep);
    return rc;
}

static int col_index(const xac_rows *r, const char *name)
{
    for (size_t c = 0; c < r->ncols; c++)
        if (strcmp(r->cols[c], name) == 0)
            return (int)c;
    return -1;
}

static const char *cell(const xac_rows *r, size_t row, const char *col)
{
    int c = col_index(r, col);
    return c < 0 ? NULL : xac_rows_cell(r, row, (size_t)c, NULL);
}

/* -------------------------------------------------------- offline mode */

/* Opens the journal, turning "locked" into the advice a DBA needs. */
static int open_journal(const session *s, int flags, journal **j, xac_err *err)
{
    int rc = journal_open(s->cfg->journal_dir, flags, j, err);
    if (rc == XAC_OK)
        return rc;
    if (strstr(err->msg, "locked") != NULL) {
        char m[XAC_ERR_MSG_MAX];
        snprintf(m, sizeof m, "%s", err->msg);
        if (s->o->offline)
            return xac_err_set(err, rc,
                               "xacd is running (it holds the journal %s): --offline works only "
                               "with xacd stopped; drop --offline to go through its admin socket "
                               "%s",
                               s->cfg->journal_dir, s->cfg->admin_socket);
        return xac_err_set(err, rc,
                           "xacd is running but its admin socket %s does not answer, and the "
                           "journal is locked, so xacctl cannot work offline either (%.200s). "
                           "Check admin_socket in %s and xacd's log",
                           s->cfg->admin_socket, m, s->cfg->path);
    }
    return xac_err_prefix(err, "cannot open the journal %s", s->cfg->journal_dir);
}

static rec_ctx offline_ctx(const session *s)
{
    /* boot 0: no coordinator runs, so every gtrid of ours is of an earlier
     * boot, and its undecided branches are rolled back without waiting. */
    rec_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.node_id = s->cfg->node_id;
    ctx.journal = s->j;
    ctx.resources = s->cfg->resources;
    ctx.nresources = s->cfg->nresources;
    return ctx;
}

/* rec_list's branches as the rows ADMIN_LIST answers, so that one printer
 * serves both modes. */
static int list_rows(const session *s, xac_rows *rows, xac_err *err)
{
    rec_ctx ctx = offline_ctx(s);
    return rec_list_rows(&ctx, "the log above", rows, err);
}

/* ---------------------------------------------------------------- list */

static bool is_marker(const xac_rows *r, size_t i)
{
    const char *d = cell(r, i, "decision");
    return d != NULL && strcmp(d, "unreachable") == 0;
}

static int get_list(const session *s, xac_rows *rows, xac_err *err)
{
    if (s->fd >= 0)
        return admin_rows(s->fd, XAC_MSG_ADMIN_LIST, rows, err);
    return list_rows(s, rows, err);
}

static const char *mode_text(const session *s)
{
    return s->fd >= 0 ? "online" : "offline";
}

static int cmd_list(const session *s)
{
    xac_err err;
    xac_err_clear(&err);
    xac_rows r;
    xac_rows_init(&r);
    if (get_list(s, &r, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        xac_rows_free(&r);
        return EXIT_TROUBLE;
    }
    size_t n = 0;
    const char *unreachable = NULL;
    for (size_t i = 0; i < r.nrows; i++) {
        if (is_marker(&r, i))
            unreachable = cell(&r, i, "action");
        else
            n++;
    }
    if (s->o->json) {
        static const char *const keys[] = {"resource",  "xid",   "gtrid",    "bqual",
                                           "format_id", "age_s", "decision", "action"};
        xac_out("{\"mode\": \"%s\", \"branches\": [", mode_text(s));
        bool first = true;
        for (size_t i = 0; i < r.nrows; i++) {
            if (is_marker(&r, i))
                continue;
            xac_out("%s\n  {", first ? "" : ",");
            first = false;
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
                int c = col_index(&r, keys[k]);
                size_t len = 0;
                const char *v = c < 0 ? NULL : xac_rows_cell(&r, i, (size_t)c, &len);
                xac_out("%s\"%s\": ", k ? ", " : "", keys[k]);
                if (v == NULL)
                    xac_out("null");
                else if (strcmp(keys[k], "age_s") == 0 || strcmp(keys[k], "format_id") == 0)
                    json_val(v);
                else
                    json_str(v, len);
            }
            xac_out("}");
        }
        xac_out("%s], \"unreachable\": ", first ? "" : "\n");
        json_cstr(unreachable);
        xac_out("}\n");
    } else {
        xac_out("%-16s %-58s %6s  %-20s %s\n", "RESOURCE", "XID", "AGE", "DECISION", "ACTION");
        for (size_t i = 0; i < r.nrows; i++) {
            if (is_marker(&r, i))
                continue;
            char age[32];
            format_age(cell(&r, i, "age_s"), age, sizeof age);
            const char *x = cell(&r, i, "xid");
            xac_out("%-16s %-58s %6s  %-20s %s\n", cell(&r, i, "resource"), x ? x : "?", age,
                    decision_text(cell(&r, i, "decision")), cell(&r, i, "action"));
        }
        xac_out("%zu in-doubt branch(es) (%s)", n,
                s->fd >= 0 ? "online, through xacd" : "offline, xacd stopped");
        if (unreachable != NULL)
            xac_out("; %s", unreachable);
        xac_out("\n");
    }
    if (unreachable != NULL)
        xac_logw("the list is incomplete: %s", unreachable);
    xac_rows_free(&r);
    return unreachable != NULL ? EXIT_TROUBLE : EXIT_DONE;
}

/* ---------------------------------------------------- commit, rollback */

typedef struct result {
    char resource[XAC_RESOURCE_MAX + 1];
    char xid[XAC_XID_TEXT_MAX];
    int code; /* XAC_OK or the error */
    char message[XAC_ERR_MSG_MAX];
} result;

static int resolve_one(const session *s, bool commit, const char *resource, const char *xid,
                       result *res)
{
    snprintf(res->resource, sizeof res->resource, "%s", resource);
    snprintf(res->xid, sizeof res->xid, "%s", xid);
    xac_err err;
    xac_err_clear(&err);
    if (s->fd < 0) {
        rec_ctx ctx = offline_ctx(s);
        rec_resolve_req req = {.resource = resource,
                               .xid = xid,
                               .commit = commit,
                               .force = s->o->force,
                               .operator_name = who(s->o),
                               .online = false,
                               .audit_path = s->cfg->audit_log};
        res->code = rec_resolve(&ctx, &req, res->message, sizeof res->message, &err);
    } else {
        xac_msg req, rep;
        xac_msg_init(&req, XAC_MSG_ADMIN_RESOLVE);
        req.resource = (char *)resource;
        req.xid = (char *)xid;
        req.action = commit ? XAC_ADMIN_COMMIT : XAC_ADMIN_ROLLBACK;
        req.force = s->o->force ? 1 : 0;
        req.operator_name = (char *)who(s->o);
        res->code = admin_call(s->fd, &req, &rep, &err);
        if (res->code == XAC_OK) {
            if (rep.type == XAC_MSG_OUTCOME) {
                snprintf(res->message, sizeof res->message, "%s", rep.message);
            } else if (rep.type == XAC_MSG_ERROR) {
                res->code = rep.code;
                snprintf(err.msg, sizeof err.msg, "%s", rep.message);
            } else {
                res->code =
                    xac_err_set(&err, XAC_EPROTO, "xacd answered message type 0x%02X", rep.type);
            }
            xac_msg_free(&rep);
        }
    }
    if (res->code != XAC_OK)
        snprintf(res->message, sizeof res->message, "%s", err.msg);
    return res->code;
}

/* Whether row i of a listing is the branch (or, for a bare gtrid, one of the
 * branches) that arg names. */
static bool row_matches(const xac_rows *r, size_t i, const char *arg, bool bare, const char *normal)
{
    size_t glen = 0;
    int gc = col_index(r, "gtrid");
    const char *g = gc < 0 ? NULL : xac_rows_cell(r, i, (size_t)gc, &glen);
    const char *x = cell(r, i, "xid");
    if (x != NULL && strcmp(x, arg) == 0)
        return true;
    if (bare)
        return g != NULL && glen == strlen(arg) && memcmp(g, arg, glen) == 0;
    return normal != NULL && x != NULL && strcmp(x, normal) == 0;
}

static int cmd_resolve(const session *s, bool commit, const char *arg)
{
    xac_err err;
    xac_err_clear(&err);
    xac_xid want;
    const char *p = arg;
    while (*p == ' ')
        p++;
    bool bare = !(p[0] == '\'' || ((p[0] == 'X' || p[0] == 'x') && p[1] == '\''));
    char normal[XAC_XID_TEXT_MAX] = "";
    bool parsed = xac_xid_parse(arg, &want, &err) == XAC_OK;
    if (parsed && !bare)
        xac_xid_format(&want, normal);
    if (!parsed && !bare) {
        xac_loge("%s", err.msg);
        return EXIT_USAGE;
    }
    if (s->o->resource != NULL && config_resource(s->cfg, s->o->resource) == NULL) {
        xac_loge("unknown resource \"%s\" (not in %s)", s->o->resource, s->cfg->path);
        return EXIT_USAGE;
    }
    xac_rows r;
    xac_rows_init(&r);
    if (get_list(s, &r, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }
    result *res = calloc(r.nrows > 0 ? r.nrows : 1, sizeof *res);
    if (res == NULL) {
        xac_loge("out of memory");
        xac_rows_free(&r);
        return EXIT_TROUBLE;
    }
    size_t nres = 0;
    const char *unreachable = NULL;
    for (size_t i = 0; i < r.nrows; i++) {
        if (is_marker(&r, i)) {
            unreachable = cell(&r, i, "action");
            continue;
        }
        const char *rn = cell(&r, i, "resource");
        if (rn == NULL || !row_matches(&r, i, arg, bare, normal[0] ? normal : NULL))
            continue;
        if (s->o->resource != NULL && strcmp(rn, s->o->resource) != 0)
            continue;
        /* A foreign XID shows under every resource on its database server;
         * once it is resolved through one, it is gone from all of them. */
        const char *x = cell(&r, i, "xid");
        bool done = false;
        for (size_t k = 0; k < nres && !done; k++)
            done = res[k].code == XAC_OK && x != NULL && strcmp(res[k].xid, x) == 0;
        if (done)
            continue;
        resolve_one(s, commit, rn, x != NULL ? x : arg, &res[nres++]);
    }
    int rc = EXIT_DONE;
    if (nres == 0) {
        xac_loge("%s is not in doubt on %s%s%s (see xacctl list)", arg,
                 s->o->resource != NULL ? "resource " : "any reachable resource",
                 s->o->resource != NULL ? s->o->resource : "",
                 unreachable != NULL ? "; some resources were unreachable" : "");
        rc = EXIT_TROUBLE;
    }
    bool refused = false, failed = false;
    for (size_t i = 0; i < nres; i++) {
        if (res[i].code == XAC_ESTATE && strncmp(res[i].message, "refused: ", 9) == 0)
            refused = true;
        else if (res[i].code != XAC_OK)
            failed = true;
    }
    if (s->o->json) {
        xac_out("{\"mode\": \"%s\", \"action\": \"%s\", \"results\": [", mode_text(s),
                commit ? "commit" : "rollback");
        for (size_t i = 0; i < nres; i++) {
            bool ref = res[i].code == XAC_ESTATE && strncmp(res[i].message, "refused: ", 9) == 0;
            xac_out("%s\n  {\"resource\": ", i ? "," : "");
            json_cstr(res[i].resource);
            xac_out(", \"xid\": ");
            json_cstr(res[i].xid);
            xac_out(", \"outcome\": \"%s\", \"code\": ", res[i].code == XAC_OK ? "done"
                                                         : ref                 ? "refused"
                                                                               : "failed");
            json_cstr(res[i].code == XAC_OK ? NULL : xac_code_name(res[i].code));
            xac_out(", \"message\": ");
            json_cstr(res[i].message);
            xac_out("}");
        }
        xac_out("%s]}\n", nres ? "\n" : "");
    } else {
        for (size_t i = 0; i < nres; i++) {
            if (res[i].code == XAC_OK)
                xac_out("%s %s on %s: %s\n", commit ? "committed" : "rolled back", res[i].xid,
                        res[i].resource, res[i].message);
            else
                xac_out("%s %s on %s: %s\n",
                        res[i].code == XAC_ESTATE && strncmp(res[i].message, "refused: ", 9) == 0
                            ? "REFUSED"
                            : "FAILED",
                        res[i].xid, res[i].resource, res[i].message);
        }
    }
    if (failed)
        rc = EXIT_TROUBLE;
    else if (refused)
        rc = EXIT_REFUSED;
    free(res);
    xac_rows_free(&r);
    return rc;
}

/* ------------------------------------------------------------- recover */

static int cmd_recover(const session *s)
{
    xac_err err;
    xac_err_clear(&err);
    xac_rows r;
    xac_rows_init(&r);
    rec_report rep;
    memset(&rep, 0, sizeof rep);
    int rc;
    if (s->fd >= 0) {
        rc = admin_rows(s->fd, XAC_MSG_ADMIN_RECOVER, &r, &err);
    } else {
        rec_ctx ctx = offline_ctx(s);
        rc = rec_pass_rows(&ctx, &r, &rep, &err);
    }
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        xac_rows_free(&r);
        return EXIT_TROUBLE;
    }
    size_t committed = 0, rolled = 0, failed = 0, other = 0, skipped = 0;
    for (size_t i = 0; i < r.nrows; i++) {
        const char *a = cell(&r, i, "action"), *o = cell(&r, i, "outcome");
        if (a != NULL && strcmp(a, "skip") == 0)
            skipped++;
        else if (o != NULL && strcmp(o, "committed") == 0)
            committed++;
        else if (o != NULL && strcmp(o, "rolled back") == 0)
            rolled++;
        else if (o != NULL && strncmp(o, "failed", 6) == 0)
            failed++;
        else
            other++;
    }
    if (s->o->json) {
        xac_out("{\"mode\": \"%s\", \"actions\": [", mode_text(s));
        for (size_t i = 0; i < r.nrows; i++) {
            xac_out("%s\n  {\"resource\": ", i ? "," : "");
            json_cstr(cell(&r, i, "resource"));
            xac_out(", \"xid\": ");
            json_cstr(cell(&r, i, "xid"));
            xac_out(", \"action\": ");
            json_cstr(cell(&r, i, "action"));
            xac_out(", \"outcome\": ");
            json_cstr(cell(&r, i, "outcome"));
            xac_out("}");
        }
        xac_out("%s], \"committed\": %zu, \"rolled_back\": %zu, \"failed\": %zu, "
                "\"heuristic\": %zu, \"unreachable\": %zu}\n",
                r.nrows ? "\n" : "", committed, rolled, failed, other, skipped);
    } else {
        if (r.nrows > 0)
            xac_out("%-16s %-58s %-10s %s\n", "RESOURCE", "XID", "ACTION", "OUTCOME");
        for (size_t i = 0; i < r.nrows; i++)
            xac_out("%-16s %-58s %-10s %s\n", cell(&r, i, "resource"), cell(&r, i, "xid"),
                    cell(&r, i, "action"), cell(&r, i, "outcome"));
        xac_out("mode:            %s\n"
                "committed:       %zu\n"
                "rolled back:     %zu\n"
                "failed:          %zu\n"
                "heuristic:       %zu\n",
                s->fd >= 0 ? "online, through xacd" : "offline, xacd stopped", committed, rolled,
                failed, other);
        if (s->fd < 0)
            xac_out("live (skipped):  %zu\n"
                    "foreign:         %zu\n"
                    "held:            %zu\n"
                    "resources down:  %zu\n"
                    "END written:     %zu\n",
                    rep.live, rep.foreign, rep.held, rep.resources_down, rep.ended);
        else
            xac_out("resources down:  %zu\n", skipped);
    }
    xac_rows_free(&r);
    return (failed > 0 || skipped > 0) ? EXIT_TROUBLE : EXIT_DONE;
}

/* -------------------------------------------------------------- status */

/* What xacctl can tell with xacd stopped, as ADMIN_STATUS's rows. */
static int offline_status(const session *s, xac_rows *r, bool *degraded, xac_err *err)
{
    static const char *const cols[] = {"key", "value"};
    int rc = xac_rows_set_cols(r, 2, cols, err);
    journal_stats js;
    journal_get_stats(s->j, &js);
    char v[PATH_MAX + 64];
#define KV(k, ...)                                                                                 \
    do {                                                                                           \
        snprintf(v, sizeof v, __VA_ARGS__);                                                        \
        const char *cells_[2] = {(k), v};                                                          \
        if (rc == XAC_OK)                                                                          \
            rc = xac_rows_add(r, cells_, NULL, err);                                               \
    } while (0)
    KV("daemon", "not running");
    KV("node_id", "%s", s->cfg->node_id);
    KV("journal_dir", "%s", s->cfg->journal_dir);
    KV("journal_failed", "%s", js.failed ? "yes" : "no");
    KV("journal_pending", "%zu", js.pending);
    KV("journal_segments", "%llu", (unsigned long long)js.segments);
    size_t up = 0;
    bool *ok = calloc(s->cfg->nresources + 1, sizeof *ok);
    char(*why)[XAC_ERR_MSG_MAX] = calloc(s->cfg->nresources + 1, sizeof *why);
    if (ok == NULL || why == NULL) {
        free(ok);
        free(why);
        return xac_err_set(err, XAC_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < s->cfg->nresources; i++) {
        drv_conn *c = NULL;
        xac_err e;
        xac_err_clear(&e);
        if (drv_open(&s->cfg->resources[i], &c, &e) == XA_OK) {
            ok[i] = drv_ping(c, &e) == XA_OK;
            drv_close(c);
        }
        if (!ok[i])
            snprintf(why[i], sizeof why[i], "%s", e.msg);
        up += ok[i];
    }
    rec_ctx ctx = offline_ctx(s);
    rec_branch *b = NULL;
    size_t n = 0, down = 0;
    xac_err le;
    xac_err_clear(&le);
    bool listed = rec_list(&ctx, &b, &n, &down, &le) == XAC_OK;
    free(b);
    if (listed)
        KV("indoubt", "%zu", n);
    else
        KV("indoubt", "unknown: %s", le.msg);
    KV("resources", "%zu", s->cfg->nresources);
    KV("resources_up", "%zu", up);
    for (size_t i = 0; i < s->cfg->nresources; i++) {
        char k[XAC_RESOURCE_MAX + 32];
        snprintf(k, sizeof k, "resource.%s", s->cfg->resources[i].name);
        KV(k, "%s", ok[i] ? "up" : "down");
        if (!ok[i]) {
            snprintf(k, sizeof k, "resource.%s.last_error", s->cfg->resources[i].name);
            KV(k, "%s", why[i]);
        }
    }
#undef KV
    *degraded = up < s->cfg->nresources || js.failed;
    free(ok);
    free(why);
    return rc;
}

static int cmd_status(const session *s)
{
    xac_err err;
    xac_err_clear(&err);
    xac_rows r;
    xac_rows_init(&r);
    bool degraded = false;
    int rc = s->fd >= 0 ? admin_rows(s->fd, XAC_MSG_ADMIN_STATUS, &r, &err)
                        : offline_status(s, &r, &degraded, &err);
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        xac_rows_free(&r);
        return EXIT_TROUBLE;
    }
    if (s->fd >= 0) {
        for (size_t i = 0; i < r.nrows; i++) {
            const char *k = xac_rows_cell(&r, i, 0, NULL), *v = xac_rows_cell(&r, i, 1, NULL);
            if (k == NULL || v == NULL)
                continue;
            if ((strncmp(k, "resource.", 9) == 0 && strchr(k + 9, '.') == NULL &&
                 strcmp(v, "down") == 0) ||
                (strcmp(k, "journal_failed") == 0 && strcmp(v, "yes") == 0))
                degraded = true;
        }
    }
    const char *mode = s->fd >= 0 ? "online" : "offline";
    if (s->o->json) {
        xac_out("{\"mode\": \"%s\"", mode);
        for (size_t i = 0; i < r.nrows; i++) {
            const char *k = xac_rows_cell(&r, i, 0, NULL), *v = xac_rows_cell(&r, i, 1, NULL);
            if (k == NULL)
                continue;
            xac_out(",\n ");
            json_cstr(k);
            xac_out(": ");
            json_val(v);
        }
        xac_out("}\n");
    } else {
        xac_out("%-28s %s%s%s\n", "mode", mode, s->fd >= 0 ? ", admin socket " : "",
                s->fd >= 0 ? s->cfg->admin_socket : "");
        for (size_t i = 0; i < r.nrows; i++) {
            const char *k = xac_rows_cell(&r, i, 0, NULL), *v = xac_rows_cell(&r, i, 1, NULL);
            xac_out("%-28s %s\n", k != NULL ? k : "?", v != NULL ? v : "");
        }
    }
    xac_rows_free(&r);
    return degraded ? EXIT_TROUBLE : EXIT_DONE;
}

/* ---------------------------------------------------------------- main */

enum { OPT_VERSION = 256, OPT_OFFLINE, OPT_ONLINE, OPT_OPERATOR };

int main(int argc, char **argv)
{
    opts o = {.conf_path = DEFAULT_CONFIG};
    xac_log_level level = XAC_LOG_INFO;
    bool level_set = false;
    static const struct option lopts[] = {{"config", required_argument, NULL, 'c'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"offline", no_argument, NULL, OPT_OFFLINE},
                                          {"online", no_argument, NULL, OPT_ONLINE},
                                          {"resource", required_argument, NULL, 'r'},
                                          {"force", no_argument, NULL, 'f'},
                                          {"operator", required_argument, NULL, OPT_OPERATOR},
                                          {"verbose", no_argument, NULL, 'v'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, OPT_VERSION},
                                          {NULL, 0, NULL, 0}};
    xac_err err;
    xac_err_clear(&err);
    xac_log_init("xacctl", XAC_LOG_INFO, NULL, &err);
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "c:jr:fvqh", lopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.conf_path = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case OPT_OFFLINE:
            o.offline = true;
            break;
        case OPT_ONLINE:
            o.online = true;
            break;
        case 'r':
            o.resource = optarg;
            break;
        case 'f':
            o.force = true;
            break;
        case OPT_OPERATOR:
            o.operator_name = optarg;
            break;
        case 'v':
            level = XAC_LOG_DEBUG;
            level_set = true;
            break;
        case 'q':
            level = XAC_LOG_WARN;
            level_set = true;
            break;
        case 'h':
            usage();
            return EXIT_DONE;
        case OPT_VERSION:
            xac_out("xacctl %s\n", XAC_VERSION);
            return EXIT_DONE;
        default:
            xac_loge("unknown option or missing argument: %s (see xacctl --help)",
                     argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        xac_loge("no command given: status, list, commit, rollback or recover (see xacctl "
                 "--help)");
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "help") == 0) {
        usage();
        return EXIT_DONE;
    }
    bool resolve = strcmp(cmd, "commit") == 0 || strcmp(cmd, "rollback") == 0;
    if (!resolve && strcmp(cmd, "list") != 0 && strcmp(cmd, "recover") != 0 &&
        strcmp(cmd, "status") != 0) {
        xac_loge("unknown command '%s': xacctl knows status, list, commit, rollback and recover "
                 "(see xacctl --help)",
                 cmd);
        return EXIT_USAGE;
    }
    int want_args = resolve ? 1 : 0;
    if (argc - optind - 1 < want_args) {
        xac_loge("%s needs an XID (a gtrid, or one as xacctl list prints it)", cmd);
        return EXIT_USAGE;
    }
    if (argc - optind - 1 > want_args) {
        xac_loge("unexpected argument '%s' after %s (see xacctl --help)",
                 argv[optind + 1 + want_args], cmd);
        return EXIT_USAGE;
    }
    if (o.online && o.offline) {
        xac_loge("--online and --offline exclude each other");
        return EXIT_USAGE;
    }
    if (!resolve && (o.force || o.resource != NULL)) {
        xac_loge("--force and --resource go with commit and rollback only");
        return EXIT_USAGE;
    }
    /* The table (or JSON) is the output; recover's and the actions' log
     * lines are worth seeing. */
    if (!level_set && (strcmp(cmd, "list") == 0 || strcmp(cmd, "status") == 0))
        level = XAC_LOG_WARN;
    if (xac_log_init("xacctl", level, NULL, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }

    xacd_config cfg;
    if (config_load(o.conf_path, &cfg, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }
    session s = {.cfg = &cfg, .o = &o, .fd = -1, .j = NULL};
    int rc = EXIT_DONE;
    if (!o.offline)
        s.fd = admin_connect(cfg.admin_socket);
    if (s.fd >= 0) {
        xac_logd("online: through xacd's admin socket %s", cfg.admin_socket);
    } else if (o.online) {
        xac_loge("xacd does not answer on its admin socket %s (%s); is it running? (drop "
                 "--online to work offline with xacd stopped)",
                 cfg.admin_socket, strerror(errno));
        rc = EXIT_TROUBLE;
    } else {
        /* Offline: only recover writes to the journal (END records);
         * everything else reads it, holding its lock so xacd cannot start. */
        int flags = strcmp(cmd, "recover") == 0 ? 0 : JOURNAL_READONLY;
        if (open_journal(&s, flags, &s.j, &err) != XAC_OK) {
            xac_loge("%s", err.msg);
            rc = EXIT_TROUBLE;
        } else {
            xac_logd("offline: xacd is not running; journal %s opened%s", cfg.journal_dir,
                     flags ? " read-only" : "");
        }
    }
    if (rc == EXIT_DONE) {
        if (strcmp(cmd, "list") == 0)
            rc = cmd_list(&s);
        else if (strcmp(cmd, "status") == 0)
            rc = cmd_status(&s);
        else if (strcmp(cmd, "recover") == 0)
            rc = cmd_recover(&s);
        else
            rc = cmd_resolve(&s, strcmp(cmd, "commit") == 0, argv[optind + 1]);
    }
    if (s.fd >= 0)
        close(s.fd);
    if (s.j != NULL)
        journal_close(s.j);
    xac_out_flush();
    config_free(&cfg);
    return rc;
}
