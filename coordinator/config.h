/* xacd's configuration: the libconfig file, validated as a whole. Every
 * mistake is reported as "FILE:LINE: what was expected", and nothing half-read
 * is ever used. xacctl reads the same file for offline work. */
#ifndef XACD_CONFIG_H
#define XACD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "drv.h"
#include "xac_common.h"

typedef struct xacd_client {
    char name[65];
    char token[256];
} xacd_client;

typedef struct xacd_config {
    char path[PATH_MAX];
    char node_id[XAC_NODE_ID_MAX + 1];
    char unix_path[108]; /* "" = no Unix socket */
    char tcp_host[256];  /* "" = no TCP listener */
    int tcp_port;
    char journal_dir[PATH_MAX];
    uint64_t journal_segment_size; /* bytes per journal segment file */
    uint32_t tx_timeout_ms;        /* default transaction timeout */
    uint32_t max_tx_timeout_ms;    /* upper bound a client may ask for */
    uint32_t prepare_timeout_ms;   /* per-branch statement timeout in phase one */
    uint32_t connect_timeout_ms;
    uint32_t pool_wait_ms; /* how long EXEC waits for a pooled connection */
    uint32_t max_frame;
    uint32_t max_sessions_per_client;
    int workers; /* phase one / phase two worker threads */
    drv_conf *resources;
    size_t nresources;
    xacd_client *clients;
    size_t nclients;
    bool fault_injection; /* testing.fault_injection: arms XAC_CRASH_AT */
    xac_log_level log_level;
    char log_file[PATH_MAX];
    /* recovery = {...}: the background recovery loop (engine.c). */
    uint32_t recovery_interval_ms;  /* a pass on every resource this often */
    uint32_t recovery_grace_ms;     /* undecided branches of this run wait this long */
    uint32_t recovery_retry_min_ms; /* first retry of a resource that is down */
    uint32_t recovery_retry_max_ms; /* the backoff doubles up to this */
    char admin_socket[108];         /* xacd's admin socket (default <journal_dir>/admin.sock) */
    char audit_log[PATH_MAX];       /* manual resolutions (default <journal_dir>/audit.log) */
} xacd_config;

/* Loads and validates path into *cfg (zeroed first). Passwords and tokens may
 * come from files (password_file, token_file); such a file must not be
 * readable by group or others. */
int config_load(const char *path, xacd_config *cfg, xac_err *err);
void config_free(xacd_config *cfg);
const drv_conf *config_resource(const xacd_config *cfg, const char *name);

#endif
