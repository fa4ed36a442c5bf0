/* A libxac client for test_sessions.sh that leaves transactions behind: it
 * holds row locks on bank_a and bank_b (an UPDATE of account 1 on each) and
 * then walks away in one of several ways, printing what libxac answered, so
 * the shell test can assert on xacd's side of the story. Connection settings
 * come from XAC_ADDR, XAC_CLIENT and XAC_TOKEN, as for the xac CLI.
 *
 *   prog_abandon TABLE exit             exit without COMMIT, ROLLBACK or close
 *   prog_abandon TABLE hang             print, then wait (120 s at most) to be
 *                                       killed with SIGKILL
 *   prog_abandon TABLE timeout-exec     BEGIN 500 ms, sleep 2 s, EXEC, COMMIT,
 *                                       STATUS, then BEGIN again on the session
 *   prog_abandon TABLE timeout-commit   BEGIN 500 ms, sleep 2 s, COMMIT, STATUS
 *
 * Output lines: "GTRID <gtrid>" once the locks are held, then
 * "<STEP> <XAC_E name or OK> resource=<r> message=<m>" per later call, and
 * "STATUS <state name>". Exit 0 when every call could be made, 1 when a setup
 * step (connect, BEGIN, the UPDATEs) failed, 2 on bad arguments. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xac_common.h"
#include "xac.h"

#define TIMEOUT_MS 500u
#define IDLE_MS    2000L
#define HANG_MS    120000L

static const char *code_name(int code)
{
    static const char *const names[] = {
        "OK",          "XAC_EPROTO",   "XAC_EVERSION",  "XAC_EAUTH",
        "XAC_ELIMIT",  "XAC_ESTATE",   "XAC_ERESOURCE", "XAC_ESQL",
        "XAC_ERMFAIL", "XAC_ETIMEOUT", "XAC_EROLLBACK", "XAC_EJOURNAL",
        "XAC_ECONFIG", "XAC_EIO",      "XAC_ENOMEM",    "XAC_EINTERNAL",
        "XAC_EINVAL",  "XAC_ECONN"};
    if (code < 0 || (size_t)code >= sizeof names / sizeof names[0])
        return "XAC_E?";
    return names[code];
}

static void report(const char *step, int rc, const xac_error *e)
{
    xac_out("%s %s resource=%s message=%s\n", step, code_name(rc), rc == XAC_OK ? "" : e->resource,
            rc == XAC_OK ? "" : e->msg);
    xac_out_flush();
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Debits bank_a and credits bank_b by 7 on account 1: row locks on both. */
static int hold_locks(xac_tx *tx, const char *table)
{
    char sql[256];
    xac_error e;
    xac_param p[] = {xac_int(7), xac_int(1)};
    snprintf(sql, sizeof sql, "UPDATE %s SET balance = balance - ? WHERE id = ?", table);
    int rc = xac_exec(tx, "bank_a", sql, p, 2, NULL, &e);
    if (rc != XAC_OK) {
        report("SETUP-EXEC-bank_a", rc, &e);
        return -1;
    }
    snprintf(sql, sizeof sql, "UPDATE %s SET balance = balance + ? WHERE id = ?", table);
    rc = xac_exec(tx, "bank_b", sql, p, 2, NULL, &e);
    if (rc != XAC_OK) {
        report("SETUP-EXEC-bank_b", rc, &e);
        return -1;
    }
    xac_out("GTRID %s\n", xac_tx_gtrid(tx));
    xac_out_flush();
    return 0;
}

static void status(xac_conn *c, const char *gtrid)
{
    int state = -1;
    xac_error e;
    int rc = xac_status(c, gtrid, &state, &e);
    if (rc != XAC_OK)
        report("STATUS", rc, &e);
    else
        xac_out("STATUS %s\n", xac_state_name(state));
    xac_out_flush();
}

int main(int argc, char **argv)
{
    xac_log_init("prog_abandon", XAC_LOG_INFO, NULL, NULL);
    if (argc != 3) {
        xac_loge("usage: prog_abandon TABLE exit|hang|timeout-exec|timeout-commit");
        return 2;
    }
    const char *table = argv[1], *mode = argv[2];
    bool timed = strncmp(mode, "timeout-", 8) == 0;
    if (strcmp(mode, "exit") != 0 && strcmp(mode, "hang") != 0 &&
        strcmp(mode, "timeout-exec") != 0 && strcmp(mode, "timeout-commit") != 0) {
        xac_loge("unknown mode '%s'", mode);
        return 2;
    }
    const char *addr = getenv("XAC_ADDR"), *client = getenv("XAC_CLIENT");
    const char *token = getenv("XAC_TOKEN");
    if (addr == NULL || client == NULL || token == NULL) {
        xac_loge("set XAC_ADDR, XAC_CLIENT and XAC_TOKEN");
        return 2;
    }

    xac_conn *c = NULL;
    xac_tx *tx = NULL;
    xac_error e;
    int rc = xac_connect(addr, client, token, &c, &e);
    if (rc != XAC_OK) {
        report("CONNECT", rc, &e);
        return 1;
    }
    rc = xac_begin(c, timed ? TIMEOUT_MS : 0, &tx, &e);
    if (rc != XAC_OK) {
        report("BEGIN", rc, &e);
        return 1;
    }
    char gtrid[XAC_GTRID_MAX + 1];
    snprintf(gtrid, sizeof gtrid, "%s", xac_tx_gtrid(tx));
    if (hold_locks(tx, table) != 0)
        return 1;

    if (strcmp(mode, "exit") == 0)
        return 0; /* the kernel closes the socket; xacd must roll back */
    if (strcmp(mode, "hang") == 0) {
        sleep_ms(HANG_MS); /* bounded, so a failed test never leaves it behind for long */
        return 0;
    }

    sleep_ms(IDLE_MS);
    if (strcmp(mode, "timeout-exec") == 0) {
        char sql[256];
        snprintf(sql, sizeof sql, "UPDATE %s SET balance = balance - 1 WHERE id = 1", table);
        rc = xac_exec(tx, "bank_a", sql, NULL, 0, NULL, &e);
        report("EXEC", rc, &e);
    }
    rc = xac_commit(tx, &e);
    report("COMMIT", rc, &e);
    status(c, gtrid);
    if (strcmp(mode, "timeout-exec") == 0) {
        /* The server must have dropped the timed-out transaction: a new one
         * can begin on the same session. */
        rc = xac_begin(c, 0, &tx, &e);
        report("BEGIN-AGAIN", rc, &e);
        if (rc == XAC_OK) {
            rc = xac_rollback(tx, &e);
            report("ROLLBACK-AGAIN", rc, &e);
        }
    }
    xac_close(c);
    return 0;
}
