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

#include "config.h"
#include "engine.h"
#include "fault.h"
#include "journal.h"
#include "rec.h"
#include "server.h"
#include "xac_common.h"

#define DEFAULT_CONFIG "/etc/xac/xacd.conf"

static void usage(void)
{
    xac_out("Usage: xacd [-c FILE] [--check-config] [--help] [--version]\n"
            "\n"
            "xac's XA two-phase-commit coordinator. It serves the xac client protocol on\n"
            "the listeners of its config file until SIGTERM or SIGINT.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "      --check-config  validate the configuration file and exit\n"
            "  -h, --help          show this help and exit\n"
            "  -V, --version       show the version and exit\n"
            "\n"
            "Environment:\n"
            "  XAC_CRASH_AT=POINT[:N]  for crash tests only: kill xacd with SIGKILL the N-th\n"
            "                          time (default 1st) it reaches POINT. Ignored unless the\n"
            "                          config sets testing.fault_injection = true. Points:\n");
    for (const char *const *n = fault_names(); n != NULL && *n != NULL; n++)
        xac_out("                            %s\n", *n);
    xac_out("\n"
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

static bool live_adapter(void *arg, const char *gtrid)
{
    return engine_is_live(arg, gtrid);
}

static void recovery_pass(const xacd_config *cfg, journal *j, engine *e)
{
    rec_ctx ctx = {.node_id = cfg->node_id,
                   .journal = j,
                   .resources = cfg->resources,
                   .nresources = cfg->nresources,
                   .is_live = live_adapter,
                   .live_arg = e};
    rec_report rep;
    memset(&rep, 0, sizeof rep);
    xac_err err;
    xac_err_clear(&err);
    if (rec_pass(&ctx, &rep, &err) != XAC_OK) {
        xac_loge("recovery pass failed: %s", err.msg);
        return;
    }
    xac_logi("recovery: committed %zu, rolled back %zu, live %zu, foreign %zu, failed %zu, "
             "resources down %zu, ended %zu",
             rep.committed, rep.rolled_back, rep.live, rep.foreign, rep.failed, rep.resources_down,
             rep.ended);
}

static int run(const xacd_config *cfg)
{
    xac_err err;
    xac_err_clear(&err);
    journal *j = NULL;
    engine *e = NULL;
    server *s = NULL;
    int status = 1;

    if (journal_open(cfg->journal_dir, 0, &j, &err) != XAC_OK) {
        xac_loge("cannot open the journal: %s", err.msg);
        return 1;
    }
    if (engine_create(cfg, j, &e, &err) != XAC_OK) {
        xac_loge("cannot start the engine: %s", err.msg);
        journal_close(j);
        return 1;
    }
    recovery_pass(cfg, j, e);
    if (server_create(cfg, e, &s, &err) != XAC_OK) {
        xac_loge("cannot start the server: %s", err.msg);
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
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = DEFAULT_CONFIG;
    bool check_only = false;
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
        case 'h':
            usage();
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
    int status = run(&cfg);
    config_free(&cfg);
    return status;
}
