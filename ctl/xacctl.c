/* xacctl: the DBA's tool. This first version works offline only, with xacd
 * stopped: `list` shows every in-doubt branch on every resource next to the
 * journal's decision, and `recover` runs one recovery pass. It reads xacd's own
 * config file and journal, and refuses to touch a journal that xacd holds. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "journal.h"
#include "rec.h"
#include "xac_common.h"

#define DEFAULT_CONFIG "/etc/xac/xacd.conf"

/* Exit codes. */
#define EXIT_DONE    0
#define EXIT_TROUBLE 1 /* an error, an unreachable resource or a failed action */
#define EXIT_USAGE   2

static void usage(void)
{
    xac_out("usage: xacctl [-c FILE] [-v|-q] COMMAND\n"
            "\n"
            "Inspects and resolves in-doubt XA branches for a stopped xacd. This version\n"
            "works offline only: xacd must not be running on the journal (the journal's\n"
            "lock is checked, and xacctl refuses when xacd holds it).\n"
            "\n"
            "Commands:\n"
            "  list      every in-doubt (prepared) branch on every configured resource:\n"
            "            gtrid, bqual, resource, age and the journal's decision:\n"
            "              committed             a COMMIT record exists; recover commits it\n"
            "              none: will roll back  no decision (presumed abort); recover rolls it\n"
            "                                    back\n"
            "              foreign: not ours     another node or transaction manager; never\n"
            "                                    touched\n"
            "            The journal is opened read-only.\n"
            "  recover   one recovery pass, as xacd runs at start-up: commits what has a\n"
            "            COMMIT record, rolls back the rest of this node's branches, writes\n"
            "            END records, and prints what it did.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE  xacd's configuration (default " DEFAULT_CONFIG ")\n"
            "  -v, --verbose      log at debug level (to stderr)\n"
            "  -q, --quiet        log warnings and errors only (the default for list)\n"
            "  -h, --help         this text\n"
            "      --version      the version\n"
            "\n"
            "Exit status: 0 done; 1 an error, an unreachable resource or a failed action\n"
            "(details on stderr); 2 bad usage.\n");
}

/* Opens the journal, turning "locked" into the advice a DBA needs. */
static int open_journal(const xacd_config *cfg, int flags, journal **j, xac_err *err)
{
    int rc = journal_open(cfg->journal_dir, flags, j, err);
    if (rc == XAC_OK)
        return rc;
    if (strstr(err->msg, "locked") != NULL) {
        char m[XAC_ERR_MSG_MAX];
        snprintf(m, sizeof m, "%s", err->msg);
        return xac_err_set(err, rc,
                           "xacd is running (or another xacctl); stop it first, or let xacd's "
                           "own recovery resolve the branches (xacctl has no online mode "
                           "yet): %.300s",
                           m);
    }
    return xac_err_prefix(err, "cannot open the journal %s", cfg->journal_dir);
}

static void format_age(int64_t prepared_at, char *out, size_t len)
{
    if (prepared_at <= 0) {
        snprintf(out, len, "-");
        return;
    }
    int64_t s = (int64_t)time(NULL) - prepared_at;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(out, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(out, len, "%lldm", (long long)(s / 60));
    else if (s < 172800)
        snprintf(out, len, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, len, "%lldd", (long long)(s / 86400));
}

/* gtrid and bqual as text: printable bytes as they are, otherwise hex. */
static void part_text(const char *p, size_t n, char *out, size_t len)
{
    bool printable = true;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            printable = false;
    if (printable) {
        snprintf(out, len, "%.*s", (int)n, p);
    } else if (2 * n + 3 < len) {
        char hex[2 * XAC_GTRID_MAX + 1];
        xac_hex_encode(p, n, hex);
        snprintf(out, len, "X'%s'", hex);
    } else {
        snprintf(out, len, "?");
    }
}

static int cmd_list(const xacd_config *cfg)
{
    xac_err err;
    xac_err_clear(&err);
    journal *j = NULL;
    if (open_journal(cfg, JOURNAL_READONLY, &j, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }
    rec_ctx ctx = {.node_id = cfg->node_id,
                   .journal = j,
                   .resources = cfg->resources,
                   .nresources = cfg->nresources};
    rec_branch *b = NULL;
    size_t n = 0, down = 0;
    int rc = rec_list(&ctx, &b, &n, &down, &err);
    journal_close(j);
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }
    xac_out("%-40s %-20s %-16s %6s  %s\n", "GTRID", "BQUAL", "RESOURCE", "AGE", "DECISION");
    for (size_t i = 0; i < n; i++) {
        char g[XAC_PG_GID_MAX + 8], q[2 * XAC_BQUAL_MAX + 8], age[32];
        const drv_indoubt *d = &b[i].branch;
        if (d->decoded) {
            part_text(d->xid.gtrid, d->xid.gtrid_len, g, sizeof g);
            part_text(d->xid.bqual, d->xid.bqual_len, q, sizeof q);
        } else {
            snprintf(g, sizeof g, "%s", d->raw);
            snprintf(q, sizeof q, "-");
        }
        format_age(d->prepared_at, age, sizeof age);
        xac_out("%-40s %-20s %-16s %6s  %s\n", g, q, b[i].resource, age,
                rec_decision_name(b[i].decision));
    }
    xac_out("%zu in-doubt branch(es) on %zu resource(s)", n, cfg->nresources - down);
    if (down > 0)
        xac_out("; %zu resource(s) unreachable: see the log above", down);
    xac_out("\n");
    free(b);
    return down > 0 ? EXIT_TROUBLE : EXIT_DONE;
}

static int cmd_recover(const xacd_config *cfg)
{
    xac_err err;
    xac_err_clear(&err);
    journal *j = NULL;
    if (open_journal(cfg, 0, &j, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }
    rec_ctx ctx = {.node_id = cfg->node_id,
                   .journal = j,
                   .resources = cfg->resources,
                   .nresources = cfg->nresources};
    rec_report r;
    int rc = rec_pass(&ctx, &r, &err);
    journal_close(j);
    if (rc != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }
    xac_out("committed:       %zu\n"
            "rolled back:     %zu\n"
            "live (skipped):  %zu\n"
            "foreign:         %zu\n"
            "failed:          %zu\n"
            "resources down:  %zu\n"
            "END written:     %zu\n",
            r.committed, r.rolled_back, r.live, r.foreign, r.failed, r.resources_down, r.ended);
    return (r.failed > 0 || r.resources_down > 0) ? EXIT_TROUBLE : EXIT_DONE;
}

int main(int argc, char **argv)
{
    const char *conf_path = DEFAULT_CONFIG;
    xac_log_level level = XAC_LOG_INFO;
    bool level_set = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    xac_err err;
    xac_err_clear(&err);
    xac_log_init("xacctl", XAC_LOG_INFO, NULL, &err);
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+c:vqh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf_path = optarg;
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
        case 'V':
            xac_out("xacctl %s\n", XAC_VERSION);
            return EXIT_DONE;
        default:
            xac_loge("unknown option or missing argument: %s (see xacctl --help)",
                     argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        xac_loge("no command given: use 'list' or 'recover' (see xacctl --help)");
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    if (optind + 1 < argc) {
        xac_loge("unexpected argument '%s' after %s (see xacctl --help)", argv[optind + 1], cmd);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "help") == 0) {
        usage();
        return EXIT_DONE;
    }
    if (strcmp(cmd, "list") != 0 && strcmp(cmd, "recover") != 0) {
        xac_loge("unknown command '%s': xacctl knows 'list' and 'recover' (see xacctl --help)",
                 cmd);
        return EXIT_USAGE;
    }
    /* list's output is the table; recover's actions are worth seeing. */
    if (!level_set && strcmp(cmd, "list") == 0)
        level = XAC_LOG_WARN;
    if (xac_log_init("xacctl", level, NULL, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }

    xacd_config cfg;
    if (config_load(conf_path, &cfg, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return EXIT_TROUBLE;
    }
    int rc = strcmp(cmd, "list") == 0 ? cmd_list(&cfg) : cmd_recover(&cfg);
    xac_out_flush();
    config_free(&cfg);
    return rc;
}
