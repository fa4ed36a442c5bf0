/* The xac command: runs SQL statements given on the command line or in a
 * script as ONE global transaction through xacd, via libxac, and reports the
 * outcome in its last output line and its exit status (0 committed, 1 rolled
 * back, 2 usage error, 3 xacd unreachable or outcome unknown). Everything is
 * parsed before connecting, so a usage error never touches a database. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xac_common.h"
#include "xac.h"

#define EXIT_COMMITTED   0
#define EXIT_ROLLED_BACK 1
#define EXIT_USAGE       2
#define EXIT_UNKNOWN     3

#define DEFAULT_ADDR "unix:/run/xac/xacd.sock"

typedef struct stmt {
    char resource[XAC_RESOURCE_MAX + 1];
    char *sql;
    xac_param *params;
    char **texts; /* owned copies behind TEXT params, one per param (NULL if none) */
    size_t nparams;
    size_t cap;
    char where[300]; /* "argument 3" or "SCRIPT:LINE", for messages */
} stmt;

typedef struct opts {
    const char *addr;
    const char *client;
    const char *token;
    const char *token_file;
    const char *script;
    const char *status_gtrid;
    uint32_t timeout_ms;
    bool rollback;
    bool pipeline;
    bool quiet;
    bool verbose;
    stmt *stmts;
    size_t nstmts;
    size_t cap;
} opts;

static const char usage_text[] =
    "Usage: xac [OPTIONS] STATEMENT [PARAM...] [STATEMENT [PARAM...]]...\n"
    "       xac [OPTIONS] -f SCRIPT\n"
    "       xac [OPTIONS] --status GTRID\n"
    "\n"
    "Runs every STATEMENT in ONE global transaction through the xacd coordinator and\n"
    "commits it at the end: either every change on every database commits, or none.\n"
    "\n"
    "STATEMENT is \"RESOURCE: SQL\": the first ':' separates the resource name (as\n"
    "configured in xacd, [A-Za-z0-9_-]{1,32}) from the SQL. The PARAMs after a\n"
    "statement bind its '?' placeholders in order:\n"
    "  -i, --int N          a 64-bit integer\n"
    "  -d, --double X       a floating-point number\n"
    "  -s, --text TEXT      a text value\n"
    "  -n, --null           SQL NULL\n"
    "\n"
    "Options:\n"
    "  -a, --addr ADDR      xacd address: unix:/path, tcp:HOST:PORT or a socket path\n"
    "                       (default: $XAC_ADDR, else " DEFAULT_ADDR ")\n"
    "  -u, --client NAME    client name configured in xacd (default: $XAC_CLIENT)\n"
    "  -t, --token TOKEN    the client's token (default: $XAC_TOKEN)\n"
    "      --token-file FILE  read the token from FILE (first line)\n"
    "  -T, --timeout MS     transaction timeout in milliseconds (0: xacd's default)\n"
    "  -f, --file SCRIPT    read the statements from SCRIPT ('-' for stdin)\n"
    "      --status GTRID   print \"GTRID STATE\" for a transaction and exit\n"
    "      --rollback       roll the transaction back instead of committing\n"
    "      --pipeline       send the statements and the COMMIT in one write and read\n"
    "                       the replies after it: one round trip to xacd (a single\n"
    "                       INSERT/UPDATE/DELETE on MariaDB also commits in one round\n"
    "                       trip to the database). Results are not printed; an error\n"
    "                       still rolls everything back\n"
    "  -v, --verbose        print \"N rows affected\" for statements without rows\n"
    "  -q, --quiet          omit the last line when the transaction ends as asked\n"
    "  -h, --help           show this help\n"
    "      --version        show the version\n"
    "\n"
    "Script: one statement per line, \"RESOURCE: SQL\". A line below a statement\n"
    "binds its next parameter: \"? int 5\", \"? double 1.5\", \"? null\", or\n"
    "\"? text any text to end of line\" (everything after \"text \", spaces kept).\n"
    "Lines starting with '#' and blank lines are ignored. \"-f -\" reads stdin.\n"
    "\n"
    "Output: for a statement that returns rows, a line of column names, then one\n"
    "line per row, tab-separated, SQL NULL shown as NULL. The last line is\n"
    "  committed GTRID\n"
    "  rolled back GTRID: RESOURCE: REASON   (refused, or an SQL error: after an\n"
    "                                          error no further statement runs)\n"
    "  rolled back GTRID                     (with --rollback)\n"
    "  outcome unknown GTRID: REASON         (ask later with --status GTRID)\n"
    "Errors are also reported on stderr.\n"
    "\n"
    "Exit status: 0 committed (or rolled back as asked, or status printed);\n"
    "1 the transaction rolled back; 2 usage error; 3 cannot reach xacd,\n"
    "authentication failed, or the outcome is unknown.\n"
    "\n"
    "Example (moves 100 from account 1 in bank_a to account 2 in bank_b):\n"
    "  xac -u app --token-file ~/.xac-token \\\n"
    "      'bank_a: UPDATE acct SET bal = bal - ? WHERE id = ?' -i 100 -i 1 \\\n"
    "      'bank_b: UPDATE acct SET bal = bal + ? WHERE id = ?' -i 100 -i 2\n";

/* ------------------------------------------------------------ parsing */

static void opts_free(opts *o)
{
    for (size_t i = 0; i < o->nstmts; i++) {
        stmt *s = &o->stmts[i];
        free(s->sql);
        for (size_t j = 0; j < s->nparams; j++)
            free(s->texts[j]);
        free(s->texts);
        free(s->params);
    }
    free(o->stmts);
}

/* Splits "RESOURCE: SQL" and appends it. Returns 0, or -1 after logging. */
static int add_stmt(opts *o, const char *text, const char *where)
{
    const char *colon = strchr(text, ':');
    if (colon == NULL) {
        xac_loge("%s: '%s' is not \"RESOURCE: SQL\" (no ':')", where, text);
        return -1;
    }
    const char *b = text, *e = colon;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    char res[XAC_RESOURCE_MAX + 2];
    size_t rl = (size_t)(e - b);
    if (rl > XAC_RESOURCE_MAX)
        rl = XAC_RESOURCE_MAX + 1; /* invalid, reported below */
    memcpy(res, b, rl);
    res[rl] = '\0';
    if (!xac_valid_name(res, XAC_RESOURCE_MAX)) {
        xac_loge("%s: '%.*s' is not a resource name ([A-Za-z0-9_-], 1 to %d characters)", where,
                 (int)(e - b), b, XAC_RESOURCE_MAX);
        return -1;
    }
    const char *sql = colon + 1;
    while (*sql == ' ' || *sql == '\t')
        sql++;
    if (*sql == '\0') {
        xac_loge("%s: no SQL after '%s:'", where, res);
        return -1;
    }
    if (o->nstmts == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        stmt *n = realloc(o->stmts, cap * sizeof *n);
        if (n == NULL) {
            xac_loge("out of memory");
            return -1;
        }
        o->stmts = n;
        o->cap = cap;
    }
    stmt *s = &o->stmts[o->nstmts];
    memset(s, 0, sizeof *s);
    s->sql = strdup(sql);
    if (s->sql == NULL) {
        xac_loge("out of memory");
        return -1;
    }
    memcpy(s->resource, res, strlen(res) + 1);
    snprintf(s->where, sizeof s->where, "%s", where);
    o->nstmts++;
    return 0;
}

/* Binds a parameter to the last statement; text is copied. */
static int add_param(opts *o, xac_param p, const char *text, const char *where)
{
    if (o->nstmts == 0) {
        xac_loge("%s: a parameter must follow a statement", where);
        return -1;
    }
    stmt *s = &o->stmts[o->nstmts - 1];
    if (s->nparams == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        xac_param *np = realloc(s->params, cap * sizeof *np);
        if (np != NULL)
            s->params = np;
        char **nt = realloc(s->texts, cap * sizeof *nt);
        if (nt != NULL)
            s->texts = nt;
        if (np == NULL || nt == NULL) {
            xac_loge("out of memory");
            return -1;
        }
        s->cap = cap;
    }
    char *copy = NULL;
    if (text != NULL) {
        copy = strdup(text);
        if (copy == NULL) {
            xac_loge("out of memory");
            return -1;
        }
        p = xac_text(copy);
    }
    s->texts[s->nparams] = copy;
    s->params[s->nparams++] = p;
    return 0;
}

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* Binds "int 5", "double 1.5", "text ...", "null" (the part after "? "). */
static int script_param(opts *o, const char *spec, const char *where)
{
    const char *kw = spec;
    size_t kl = strcspn(kw, " \t");
    const char *val = kw + kl;
    if (*val != '\0')
        val++; /* exactly one separator: text keeps any further spaces */
    if (kl == 4 && strncmp(kw, "text", 4) == 0)
        return add_param(o, xac_null(), val, where);
    const char *v = val;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    char tmp[128];
    if (vl >= sizeof tmp) {
        xac_loge("%s: parameter value too long", where);
        return -1;
    }
    memcpy(tmp, v, vl);
    tmp[vl] = '\0';
    if (kl == 3 && strncmp(kw, "int", 3) == 0) {
        int64_t i;
        if (parse_int(tmp, &i) != 0) {
            xac_loge("%s: '? int' needs a 64-bit integer, got '%s'", where, tmp);
            return -1;
        }
        return add_param(o, xac_int(i), NULL, where);
    }
    if (kl == 6 && strncmp(kw, "double", 6) == 0) {
        double d;
        if (parse_double(tmp, &d) != 0) {
            xac_loge("%s: '? double' needs a number, got '%s'", where, tmp);
            return -1;
        }
        return add_param(o, xac_double(d), NULL, where);
    }
    if (kl == 4 && strncmp(kw, "null", 4) == 0) {
        if (vl != 0) {
            xac_loge("%s: '? null' takes no value, got '%s'", where, tmp);
            return -1;
        }
        return add_param(o, xac_null(), NULL, where);
    }
    xac_loge("%s: unknown parameter kind '%.*s' (int, double, text or null)", where, (int)kl, kw);
    return -1;
}

static int read_script(opts *o, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        xac_loge("cannot open script %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if ((size_t)n != strlen(line)) {
            xac_loge("%s:%u: the line holds a NUL byte", path, lineno);
            rc = -1;
            break;
        }
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char where[300];
        snprintf(where, sizeof where, "%.280s:%u", path, lineno);
        if (*p == '?') {
            if (p[1] != ' ' && p[1] != '\t') {
                xac_loge("%s: expected '? int N', '? double X', '? text TEXT' or '? null'", where);
                rc = -1;
                break;
            }
            const char *spec = p + 2;
            while (*spec == ' ' || *spec == '\t')
                spec++;
            rc = script_param(o, spec, where);
        } else {
            rc = add_stmt(o, p, where);
        }
    }
    if (rc == 0 && ferror(f)) {
        xac_loge("cannot read script %s: %s", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && o->nstmts == 0) {
        xac_loge("%s: no statement in the script", path);
        rc = -1;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

/* Reads the first line of FILE as the token into a heap string. */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        xac_loge("cannot open token file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n < 0) {
        free(line);
        xac_loge("token file %s is empty", path);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

/* An option's value: "--opt=V", "-oV" or the next argument. */
static const char *opt_value(int argc, char **argv, int *i, const char *inl, const char *name)
{
    if (inl != NULL)
        return inl;
    if (*i + 1 >= argc) {
        xac_loge("option %s needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

/* Returns -1 on a usage error, 1 when help or version was printed, 0 to run. */
static int parse_args(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char where[32];
        snprintf(where, sizeof where, "argument %d", i);
        if (a[0] != '-' || a[1] == '\0') {
            if (add_stmt(o, a, where) != 0)
                return -1;
            continue;
        }
        /* Normalise to a short letter with an optional inline value. */
        char c = 0;
        const char *inl = NULL;
        if (a[1] == '-') {
            static const struct {
                const char *name;
                char c;
                bool arg;
            } longs[] = {
                {"addr", 'a', true},       {"client", 'u', true},   {"token", 't', true},
                {"token-file", 'K', true}, {"timeout", 'T', true},  {"rollback", 'R', false},
                {"quiet", 'q', false},     {"verbose", 'v', false}, {"help", 'h', false},
                {"version", 'V', false},   {"file", 'f', true},     {"status", 'S', true},
                {"int", 'i', true},        {"double", 'd', true},   {"text", 's', true},
                {"null", 'n', false},      {"pipeline", 'P', false}};
            const char *name = a + 2;
            size_t nl = strcspn(name, "=");
            for (size_t k = 0; k < sizeof longs / sizeof longs[0]; k++) {
                if (strlen(longs[k].name) == nl && strncmp(longs[k].name, name, nl) == 0) {
                    c = longs[k].c;
                    if (name[nl] == '=') {
                        if (!longs[k].arg) {
                            xac_loge("option --%s takes no value", longs[k].name);
                            return -1;
                        }
                        inl = name + nl + 1;
                    }
                }
            }
            if (c == 0) {
                xac_loge("unknown option '%s'", a);
                return -1;
            }
        } else {
            c = a[1];
            if (strchr("autTfids", c) != NULL) {
                if (a[2] != '\0')
                    inl = a + 2;
            } else if (a[2] != '\0' || strchr("qvhn", c) == NULL) {
                xac_loge("unknown option '%s'", a);
                return -1;
            }
        }
        const char *v = NULL;
        if (strchr("autKTfSids", c) != NULL && (v = opt_value(argc, argv, &i, inl, a)) == NULL)
            return -1;
        switch (c) {
        case 'a':
            o->addr = v;
            break;
        case 'u':
            o->client = v;
            break;
        case 't':
            o->token = v;
            break;
        case 'K':
            o->token_file = v;
            break;
        case 'T': {
            int64_t t;
            if (parse_int(v, &t) != 0 || t < 0 || t > (int64_t)UINT32_MAX) {
                xac_loge("%s: timeout must be 0 to %u milliseconds, got '%s'", a,
                         (unsigned)UINT32_MAX, v);
                return -1;
            }
            o->timeout_ms = (uint32_t)t;
            break;
        }
        case 'f':
            o->script = v;
            break;
        case 'S':
            o->status_gtrid = v;
            break;
        case 'R':
            o->rollback = true;
            break;
        case 'P':
            o->pipeline = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            xac_out("%s", usage_text);
            return 1;
        case 'V':
            xac_out("xac %s\n", XAC_VERSION);
            return 1;
        case 'i': {
            int64_t n;
            if (parse_int(v, &n) != 0) {
                xac_loge("%s %s: not a 64-bit integer", a, v);
                return -1;
            }
            if (add_param(o, xac_int(n), NULL, where) != 0)
                return -1;
            break;
        }
        case 'd': {
            double d;
            if (parse_double(v, &d) != 0) {
                xac_loge("%s %s: not a number", a, v);
                return -1;
            }
            if (add_param(o, xac_double(d), NULL, where) != 0)
                return -1;
            break;
        }
        case 's':
            if (add_param(o, xac_null(), v, where) != 0)
                return -1;
            break;
        case 'n':
            if (add_param(o, xac_null(), NULL, where) != 0)
                return -1;
            break;
        }
    }

    int modes = (o->nstmts > 0) + (o->script != NULL) + (o->status_gtrid != NULL);
    if (o->script != NULL && o->nstmts > 0) {
        xac_loge("give statements either on the command line or with -f, not both");
        return -1;
    }
    if (modes > 1 && o->status_gtrid != NULL) {
        xac_loge("--status takes no statements");
        return -1;
    }
    if (modes == 0) {
        xac_loge("no statement given");
        return -1;
    }
    if (o->status_gtrid != NULL &&
        (*o->status_gtrid == '\0' || strlen(o->status_gtrid) > XAC_GTRID_MAX)) {
        xac_loge("--status: a gtrid has 1 to %d characters", XAC_GTRID_MAX);
        return -1;
    }
    if (o->token != NULL && o->token_file != NULL) {
        xac_loge("give either --token or --token-file, not both");
        return -1;
    }
    if (o->script != NULL && read_script(o, o->script) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------ running */

static void print_result(const xac_result *r, bool verbose)
{
    if (!xac_result_has_rows(r)) {
        if (verbose)
            xac_out("%llu rows affected\n", (unsigned long long)xac_result_affected(r));
        return;
    }
    size_t nc = xac_result_ncols(r), nr = xac_result_nrows(r);
    for (size_t c = 0; c < nc; c++)
        xac_out("%s%s", c ? "\t" : "", xac_result_colname(r, c));
    xac_out("\n");
    for (size_t row = 0; row < nr; row++) {
        for (size_t c = 0; c < nc; c++) {
            size_t len = 0;
            const char *v = xac_result_value(r, row, c, &len);
            if (c > 0)
                xac_out_write("\t", 1);
            if (v == NULL)
                xac_out_write("NULL", 4);
            else
                xac_out_write(v, len);
        }
        xac_out_write("\n", 1);
    }
}

static void print_rolled_back(const char *gtrid, const xac_error *e)
{
    if (e->resource[0] != '\0')
        xac_out("rolled back %s: %s: %s\n", gtrid, e->resource, e->msg);
    else
        xac_out("rolled back %s: %s\n", gtrid, e->msg);
}

static int run_status(xac_conn *c, const char *gtrid)
{
    int state = 0;
    xac_error e;
    if (xac_status(c, gtrid, &state, &e) != XAC_OK) {
        xac_loge("cannot get the state of %s: %s: %s", gtrid, xac_strerror(e.code), e.msg);
        return EXIT_UNKNOWN;
    }
    xac_out("%s %s\n", gtrid, xac_state_name(state));
    return EXIT_COMMITTED;
}

static int run_tx(xac_conn *c, const opts *o)
{
    xac_tx *tx = NULL;
    xac_error e;
    if (xac_begin(c, o->timeout_ms, &tx, &e) != XAC_OK) {
        xac_loge("cannot begin a transaction: %s: %s", xac_strerror(e.code), e.msg);
        return e.code == XAC_ECONN ? EXIT_UNKNOWN : EXIT_ROLLED_BACK;
    }
    char gtrid[128];
    snprintf(gtrid, sizeof gtrid, "%s", xac_tx_gtrid(tx));

    for (size_t i = 0; i < o->nstmts; i++) {
        const stmt *s = &o->stmts[i];
        xac_result *r = NULL;
        unsigned flags = o->pipeline ? XAC_EXEC_DEFER : 0;
        if (xac_exec_ex(tx, s->resource, s->sql, s->params, s->nparams, flags,
                        o->pipeline ? NULL : &r, &e) == XAC_OK) {
            if (r != NULL)
                print_result(r, o->verbose);
            xac_result_free(r);
            continue;
        }
        xac_loge("%s: %s: %s", s->where, e.resource[0] ? e.resource : s->resource, e.msg);
        if (e.code == XAC_ECONN) {
            /* COMMIT was never sent, so it cannot have committed: xacd (or
             * its recovery after a restart) rolls back a closed session's work. */
            xac_rollback(tx, NULL);
            xac_out("rolled back %s: %s\n", gtrid, e.msg);
            return EXIT_UNKNOWN;
        }
        /* Roll back rather than commit: after a failed EXEC xacd would roll
         * back anyway, and a ROLLBACK says what the user means. */
        xac_error re;
        if (xac_rollback(tx, &re) != XAC_OK)
            xac_loge("rolling back %s: %s (xacd rolls it back when the session closes)", gtrid,
                     re.msg);
        if (e.resource[0] == '\0')
            snprintf(e.resource, sizeof e.resource, "%s", s->resource);
        print_rolled_back(gtrid, &e); /* the last line: scripts read it */
        return EXIT_ROLLED_BACK;
    }

    if (o->rollback) {
        if (xac_rollback(tx, &e) != XAC_OK) {
            /* Never committed either way; the exit status tells whether xacd
             * confirmed it. */
            xac_loge("rolling back %s: %s: %s", gtrid, xac_strerror(e.code), e.msg);
            print_rolled_back(gtrid, &e);
            return e.code == XAC_ECONN ? EXIT_UNKNOWN : EXIT_ROLLED_BACK;
        }
        if (!o->quiet)
            xac_out("rolled back %s\n", gtrid);
        return EXIT_COMMITTED;
    }
    int rc = xac_commit(tx, &e);
    if (rc == XAC_OK) {
        if (!o->quiet)
            xac_out("committed %s\n", gtrid);
        return EXIT_COMMITTED;
    }
    if (rc == XAC_EROLLBACK) {
        xac_loge("%s rolled back: %s%s%s", gtrid, e.resource, e.resource[0] ? ": " : "", e.msg);
        print_rolled_back(gtrid, &e);
        return EXIT_ROLLED_BACK;
    }
    xac_loge("commit of %s: %s%s%s; check with: xac --status %s", gtrid, e.resource,
             e.resource[0] ? ": " : "", e.msg, gtrid);
    xac_out("outcome unknown %s: %s\n", gtrid, e.msg);
    return EXIT_UNKNOWN;
}

int main(int argc, char **argv)
{
    xac_err lerr;
    if (xac_log_init("xac", XAC_LOG_ERROR, NULL, &lerr) != XAC_OK)
        return EXIT_USAGE; /* cannot even report it */

    opts o;
    memset(&o, 0, sizeof o);
    int prc = parse_args(argc, argv, &o);
    if (prc != 0) {
        if (prc < 0)
            xac_loge("try 'xac --help'");
        opts_free(&o);
        xac_out_flush();
        return prc < 0 ? EXIT_USAGE : EXIT_COMMITTED;
    }

    const char *addr = o.addr ? o.addr : getenv("XAC_ADDR");
    if (addr == NULL || *addr == '\0')
        addr = DEFAULT_ADDR;
    const char *client = o.client ? o.client : getenv("XAC_CLIENT");
    if (client == NULL || *client == '\0') {
        xac_loge("no client name: give -u NAME or set XAC_CLIENT; try 'xac --help'");
        opts_free(&o);
        return EXIT_USAGE;
    }
    char *token_buf = NULL;
    const char *token = o.token;
    if (o.token_file != NULL) {
        token_buf = read_token(o.token_file);
        if (token_buf == NULL) {
            opts_free(&o);
            return EXIT_USAGE;
        }
        token = token_buf;
    }
    if (token == NULL)
        token = getenv("XAC_TOKEN");
    if (token == NULL)
        token = "";

    xac_conn *c = NULL;
    xac_error e;
    int status;
    if (xac_connect(addr, client, token, &c, &e) != XAC_OK) {
        if (e.code == XAC_ECONN || e.code == XAC_EINVAL)
            xac_loge("%s", e.msg);
        else
            xac_loge("cannot connect to xacd at %s as client '%s': %s: %s", addr, client,
                     xac_strerror(e.code), e.msg);
        status = e.code == XAC_EINVAL ? EXIT_USAGE : EXIT_UNKNOWN;
    } else {
        status = o.status_gtrid != NULL ? run_status(c, o.status_gtrid) : run_tx(c, &o);
        xac_close(c);
    }
    if (token_buf != NULL) {
        memset(token_buf, 0, strlen(token_buf));
        free(token_buf);
    }
    opts_free(&o);
    xac_out_flush();
    return status;
}
