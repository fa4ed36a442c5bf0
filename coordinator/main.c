/* xacd's entry point: parses the command line, loads the config, opens the
 * journal, starts the engine, runs one recovery pass and then serves clients
 * until SIGTERM or SIGINT. Exit status: 0 clean shutdown, 1 runtime failure,
 * 2 usage or configuration error. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "engine.h"
#include "fault.h"
#include "journal.h"
#include "server.h"
#include "xac_common.h"

#define DEFAULT_CONFIG "/etc/xac/xacd.conf"

static void usage(void)
{
    xac_out("Usage: xacd [-c FILE] [--check-config] [--salvage-journal] [--list-crash-points]\n"
            "            [--help] [--version]\n"
            "\n"
            "xac's XA two-phase-commit coordinator. It serves the xac client protocol on\n"
            "the listeners of its config file until SIGTERM or SIGINT.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "      --check-config  validate the configuration file and exit\n"
            "      --salvage-journal\n"
            "                      start on a damaged decision journal: copy each damaged\n"
            "                      segment into JOURNAL_DIR/damaged/, skip the bad bytes and\n"
            "                      replay the rest. Commit decisions in the skipped bytes\n"
            "                      are LOST: a transaction whose COMMIT was there may be\n"
            "                      committed on some resources and prepared on others. So\n"
            "                      in this run recovery commits what the journal still\n"
            "                      knows but leaves every other in-doubt branch prepared\n"
            "                      (its locks stay held). Stop xacd, check those branches\n"
            "                      with 'xacctl list' and the databases, settle the ones\n"
            "                      you know by hand, and only then restart without this\n"
            "                      option: its recovery rolls the rest back (presumed\n"
            "                      abort). Use it only after xacd refused to start on a\n"
            "                      corrupt journal\n"
            "      --list-crash-points\n"
            "                      print the names of the crash points (XAC_CRASH_AT\n"
            "                      below), one a line, and exit\n"
            "  -h, --help          show this help and exit\n"
            "  -V, --version       show the version and exit\n"
            "\n"
            "Environment (for tests only; ignored unless the config sets\n"
            "testing.fault_injection = true):\n"
            "  XAC_CRASH_AT=POINT[:N]  kill xacd with SIGKILL the N-th time (default 1st)\n"
            "                          it reaches POINT. Points:\n");
    for (const char *const *n = fault_names(); n != NULL && *n != NULL; n++)
        xac_out("                            %s\n", *n);
    xac_out("  XAC_JOURNAL_FAULT=OP[:N[:ERRNO]][,...]\n"
            "                          make the journal's OP (write, sync, create, cut) fail\n"
            "                          with ERRNO (EIO, ENOSPC, EDQUOT, EROFS or a number;\n"
            "                          default EIO) from its N-th call (default 1st) on\n"
            "\n"
            "Exit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on a usage\n"
            "or configuration error.\n");
}

/* Waits for SIGTERM/SIGINT (blocked in every thread) and stops the server. */
static void *signal_main(void *arg)
{
    server *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig;
    if (sigwait(&set, &sig) == 0) {
        xac_logi("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        server_stop(s);
    }
    return NULL;
}

/* Whether a failed open was a damaged record, which --salvage-journal can get
 * past. Not its lock, its directory or the disk, and not a bad segment header:
 * that may be a journal of another format, which salvage would throw away. */
static bool journal_damaged(const xac_err *err)
{
    return err->code == XAC_EJOURNAL && strstr(err->msg, " is corrupt at byte offset ") != NULL;
}

/* Opens the journal; *salvaged says whether a salvage open skipped bytes. */
static int open_journal(const xacd_config *cfg, bool salvage, journal **j, bool *salvaged)
{
    *salvaged = false;
    journal_opts o = {.flags = salvage ? JOURNAL_SALVAGE : 0,
                      .segment_size = cfg->journal_segment_size};
    if (cfg->fault_injection) {
        o.io_fault = fault_journal_io;
        o.step = fault_journal_step;
    }
    xac_err err;
    xac_err_clear(&err);
    if (journal_open_opts(cfg->journal_dir, &o, j, &err) != XAC_OK) {
        xac_loge("cannot open the journal: %s", err.msg);
        if (!salvage && journal_damaged(&err))
            xac_loge("the journal in %s is damaged. 'xacd --salvage-journal' starts anyway: it "
                     "keeps a copy of the damaged segment in %s/damaged/ and skips the bad "
                     "bytes, and the commit decisions in them are lost. See 'xacd --help' "
                     "before you use it",
                     cfg->journal_dir, cfg->journal_dir);
        return XAC_EJOURNAL;
    }
    if (salvage) {
        journal_stats st;
        journal_get_stats(*j, &st);
        *salvaged = st.salvaged > 0;
        if (st.salvaged > 0)
            xac_logw("journal salvaged: %llu damaged byte(s) skipped (a copy is in %s/damaged/); "
                     "commit decisions in them are lost. Recovery in this run leaves branches "
                     "without a COMMIT record prepared; check them with 'xacctl list' (xacd "
                     "stopped) before you let recovery roll them back",
                     (unsigned long long)st.salvaged, cfg->journal_dir);
        else
            xac_logi("--salvage-journal: the journal had no damage to skip");
    }
    return XAC_OK;
}

static int run(const xacd_config *cfg, bool salvage)
{
    xac_err err;
    xac_err_clear(&err);
    journal *j = NULL;
    engine *e = NULL;
    server *s = NULL;
    admin *adm = NULL;
    int status = 1;

    bool salvaged = false;
    if (open_journal(cfg, salvage, &j, &salvaged) != XAC_OK)
        return 1;
    if (engine_create(cfg, j, &e, &err) != XAC_OK) {
        xac_loge("cannot start the engine: %s", err.msg);
        journal_close(j);
        return 1;
    }
    /* The engine's recovery threads make the start-up pass, one per resource,
     * so that a resource that hangs does not hold up serving. */
    if (salvaged) {
        engine_hold_undecided(e);
        xac_logw("recovery: branches without a COMMIT record stay prepared in this run because the "
                 "journal was salvaged: list them with 'xacctl list' and settle them by hand, or "
                 "restart xacd without --salvage-journal to roll them back (presumed abort)");
    }
    if (server_create(cfg, e, &s, &err) != XAC_OK) {
        xac_loge("cannot start the server: %s", err.msg);
        engine_destroy(e);
        journal_close(j);
        return 1;
    }
    if (admin_create(cfg, e, j, &adm, &err) != XAC_OK) {
        xac_loge("cannot start the admin socket: %s", err.msg);
        server_destroy(s);
        engine_destroy(e);
        journal_close(j);
        return 1;
    }

    pthread_t sig_tid;
    int prc = pthread_create(&sig_tid, NULL, signal_main, s);
    if (prc != 0) {
        xac_loge("cannot start the signal thread: %s", strerror(prc));
    } else {
        char tcp[300] = "";
        if (cfg->tcp_host[0] != '\0')
            snprintf(tcp, sizeof tcp, "%stcp %s:%d", cfg->unix_path[0] ? ", " : "", cfg->tcp_host,
                     cfg->tcp_port);
        xac_logi("xacd ready: node %s, listening on %s%s%s", cfg->node_id,
                 cfg->unix_path[0] ? "unix " : "", cfg->unix_path, tcp);
        if (server_run(s, &err) != XAC_OK)
            xac_loge("server failed: %s", err.msg);
        else
            status = 0;
        /* sigwait is a cancellation point; the thread holds no resources. */
        pthread_cancel(sig_tid);
        pthread_join(sig_tid, NULL);
    }
    admin_destroy(adm);
    server_destroy(s);
    engine_destroy(e);
    journal_close(j);
    if (status == 0)
        xac_logi("xacd stopped");
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'C'},
                                         {"salvage-journal", no_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"list-crash-points", no_argument, NULL, 'L'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = DEFAULT_CONFIG;
    bool check_only = false;
    bool salvage = false;
    xac_err err;
    xac_err_clear(&err);
    xac_log_init("xacd", XAC_LOG_INFO, NULL, &err);

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'C':
            check_only = true;
            break;
        case 'S':
            salvage = true;
            break;
        case 'h':
            usage();
            return 0;
        case 'L':
            for (const char *const *n = fault_names(); *n != NULL; n++)
                xac_out("%s\n", *n);
            return 0;
        case 'V':
            xac_out("xacd %s\n", XAC_VERSION);
            return 0;
        case ':':
            xac_loge("xacd: option %s needs an argument; see xacd --help", argv[optind - 1]);
            return 2;
        default:
            xac_loge("xacd: unknown option %s; see xacd --help", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        xac_loge("xacd: unexpected argument \"%s\"; see xacd --help", argv[optind]);
        return 2;
    }

    /* Block the stop signals before any thread exists, so that every thread
     * inherits the mask and only the signal thread receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    xacd_config cfg;
    if (config_load(path, &cfg, &err) != XAC_OK) {
        xac_loge("xacd: %s", err.msg);
        return 2;
    }
    if (check_only) {
        xac_out("%s: configuration OK (node %s, %zu resources, %zu clients)\n", path, cfg.node_id,
                cfg.nresources, cfg.nclients);
        config_free(&cfg);
        return 0;
    }
    if (xac_log_init("xacd", cfg.log_level, cfg.log_file, &err) != XAC_OK) {
        xac_loge("xacd: %s (log.file in %s)", err.msg, path);
        config_free(&cfg);
        return 2;
    }
    fault_arm(cfg.fault_injection);
    int status = run(&cfg, salvage);
    config_free(&cfg);
    return status;
}
