/* The load of test_torture.sh: many libxac clients that move money between
 * accounts in MariaDB (bank_a), PostgreSQL (bank_b) and, when TABLE_M is
 * given, SQL Server (bank_m, a last resource) while the test kills, freezes
 * and restarts xacd and the servers under them. Each transfer is one global
 * transaction that updates one account on each side and inserts a row with
 * the transfer's unique id and that side's amount on each side, so that the
 * test can check afterwards, from the databases alone, that every transfer
 * happened on all sides or on none: with two sides the amounts are +x and -x;
 * with three they are +x on bank_a, +y on bank_b and -(x+y) on bank_m (x and
 * y of either sign), so that money moves between all three. Whatever xacd
 * acknowledged as committed is appended to ACKED, one id a line, by write(2)
 * on an O_APPEND file as soon as the answer arrives: those lines survive
 * anything that happens to this program. When an outcome is unknown (the
 * connection to xacd was lost, or another error that is not a clean
 * rollback), nothing is recorded for it; the thread asks xacd for the gtrid's
 * state (at once if its connection survived, else once it has a connection
 * again) and appends "ID STATE MS" to STATUS (MS: when the answer came, Unix
 * time in milliseconds), which the test checks too (COMMITTED and COMMITTING
 * must be on every side, ROLLED_BACK on none).
 *
 *   prog_torture ACKED STATUS TABLE THREADS ACCOUNTS [TABLE_M]
 *
 * TABLE names the tables on bank_a and bank_b, TABLE_M those on bank_m:
 * X_acct(id, balance) with ids 1..ACCOUNTS and X_xfer(id, acct, amount). The
 * amounts come and go in every direction. Every transfer runs its statements
 * in one fixed order, bank_a, then bank_b, then bank_m: a global transaction
 * that locked a row on a later resource and waits for one on an earlier
 * resource could deadlock across servers, which no database can see. (bank_m
 * last also matches the commit: its local commit is the decision, after the
 * others are prepared.) Connection settings come from XAC_ADDR, XAC_CLIENT
 * and XAC_TOKEN. Runs until SIGTERM or SIGINT, then lets each thread finish
 * its transfer and prints one summary line: "attempts N committed N
 * rolled_back N abandoned N unknown N connect_failures N anomalies N"
 * (rolled_back: COMMIT answered rolled back; abandoned: BEGIN or a statement
 * failed, so COMMIT was never sent), then "failures by code:" with a count per
 * XAC_E* code of the calls that ended a transfer early, and logs the first
 * 20 messages of refused statements and commits. With XAC_TORTURE_GTRIDS set,
 * each transfer appends "ID GTRID" to that file as it begins, so that the
 * test can show xacd's log lines for a transfer it finds wrong. Exit 0, or 1
 * when an anomaly was seen (an UPDATE that did not find its account), 2 on
 * bad arguments. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xac_common.h"
#include "xac.h"

#define MAX_THREADS     256
#define BACKOFF_MIN_MS  20L
#define BACKOFF_MAX_MS  1000L
#define TX_TIMEOUT_MS   15000u
#define PENDING_MAX     64 /* unknown outcomes a thread keeps to ask about */
#define TRANSFER_PER_TH 1000000000LL

static volatile sig_atomic_t stop_flag;
static int acked_fd = -1, status_fd = -1, gtrids_fd = -1;
static const char *addr, *client, *token, *table, *table_m; /* table_m NULL: two sides */
static long accounts;

/* Why transfers did not commit, by XAC_E* code. */
#define NCODES 18
static atomic_ullong n_by_code[NCODES];

static void count_code(int rc)
{
    atomic_fetch_add(&n_by_code[rc >= 0 && rc < NCODES ? rc : 0], 1);
}

/* The first few messages of refused statements and commits go to the log,
 * so that a run shows what its failures were, not only how many. */
#define NOTES_MAX 20
static atomic_int n_notes;

static void note_failure(const char *what, int rc, const xac_error *e)
{
    if ((rc == XAC_ESQL || rc == XAC_EROLLBACK) && atomic_fetch_add(&n_notes, 1) < NOTES_MAX)
        xac_logi("%s failed (%s)%s%s: %s", what, xac_strerror(rc), e->resource[0] ? " on " : "",
                 e->resource, e->msg);
}

static atomic_ullong n_attempts, n_committed, n_rolled_back, n_abandoned, n_unknown, n_connect_fail,
    n_anomalies;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_flag)
        ;
}

/* One line in one write(2): with O_APPEND, lines of different threads never
 * interleave, and a line is in the file once the call returns. */
static void append_line(int fd, const char *line)
{
    size_t n = strlen(line);
    ssize_t w;
    do
        w = write(fd, line, n);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)n) {
        xac_loge("cannot append to the record file: %s", w < 0 ? strerror(errno) : "short write");
        atomic_fetch_add(&n_anomalies, 1);
    }
}

/* xorshift64*: a per-thread generator, no shared state. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

typedef struct pending {
    long long id;
    char gtrid[XAC_GTRID_MAX + 1];
} pending;

typedef struct worker {
    int no;
    uint64_t seed;
    long long seq;
    xac_conn *c;
    pending pend[PENDING_MAX];
    size_t npend;
} worker;

/* Asks xacd, on a fresh connection, what became of the transfers whose
 * outcome was lost. A failed question keeps them for the next connection. */
static void ask_pending(worker *w)
{
    while (w->npend > 0 && !stop_flag) {
        pending *p = &w->pend[w->npend - 1];
        int state = 0;
        xac_error e;
        if (xac_status(w->c, p->gtrid, &state, &e) != XAC_OK)
            return;
        /* The answer's wall-clock time (ms), to set it against xacd's logs. */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        char line[128];
        snprintf(line, sizeof line, "%lld %s %lld\n", p->id, xac_state_name(state),
                 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        append_line(status_fd, line);
        w->npend--;
    }
}

static int exec_update(xac_tx *tx, const char *res, const char *tab, long long delta, long acct,
                       xac_error *e)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE %s_acct SET balance = balance + ? WHERE id = ?", tab);
    xac_param p[] = {xac_int(delta), xac_int(acct)};
    xac_result *r = NULL;
    int rc = xac_exec(tx, res, sql, p, 2, &r, e);
    if (rc != XAC_OK)
        return rc;
    uint64_t n = xac_result_affected(r);
    xac_result_free(r);
    if (n != 1) {
        xac_loge("%s: UPDATE of account %ld changed %llu rows, expected 1", res, acct,
                 (unsigned long long)n);
        atomic_fetch_add(&n_anomalies, 1);
        return XAC_EINTERNAL;
    }
    return XAC_OK;
}

static int exec_insert(xac_tx *tx, const char *res, const char *tab, long long id, long acct,
                       long long delta, xac_error *e)
{
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO %s_xfer (id, acct, amount) VALUES (?, ?, ?)", tab);
    xac_param p[] = {xac_int(id), xac_int(acct), xac_int(delta)};
    return xac_exec(tx, res, sql, p, 3, NULL, e);
}

enum { NEXT, PAUSE, RECONNECT };

/* One transfer. PAUSE after a refusal (a server is down: do not spin),
 * RECONNECT when the connection to xacd is gone. */
static int transfer(worker *w)
{
    long long id = (long long)(w->no + 1) * TRANSFER_PER_TH + ++w->seq;
    long acct_a = (long)(rnd(&w->seed) % (uint64_t)accounts) + 1;
    long acct_b = (long)(rnd(&w->seed) % (uint64_t)accounts) + 1;
    long acct_m = (long)(rnd(&w->seed) % (uint64_t)accounts) + 1;
    long long amount = (long long)(rnd(&w->seed) % 100) + 1;
    long long delta_a = rnd(&w->seed) & 1 ? amount : -amount;
    long long delta_b = -delta_a, delta_m = 0;
    if (table_m != NULL) {
        long long amount_b = (long long)(rnd(&w->seed) % 100) + 1;
        delta_b = rnd(&w->seed) & 1 ? amount_b : -amount_b;
        delta_m = -(delta_a + delta_b);
    }
    xac_tx *tx = NULL;
    xac_error e;
    atomic_fetch_add(&n_attempts, 1);
    int rc = xac_begin(w->c, TX_TIMEOUT_MS, &tx, &e);
    if (rc != XAC_OK) {
        count_code(rc);
        return rc == XAC_ECONN ? RECONNECT : PAUSE; /* nothing began: no outcome to track */
    }
    char gtrid[XAC_GTRID_MAX + 1];
    snprintf(gtrid, sizeof gtrid, "%s", xac_tx_gtrid(tx));
    if (gtrids_fd >= 0) {
        char line[XAC_GTRID_MAX + 32];
        snprintf(line, sizeof line, "%lld %s\n", id, gtrid);
        append_line(gtrids_fd, line);
    }
    /* The fixed order of the header: bank_a, bank_b, bank_m. */
    if ((rc = exec_update(tx, "bank_a", table, delta_a, acct_a, &e)) != XAC_OK ||
        (rc = exec_insert(tx, "bank_a", table, id, acct_a, delta_a, &e)) != XAC_OK ||
        (rc = exec_update(tx, "bank_b", table, delta_b, acct_b, &e)) != XAC_OK ||
        (rc = exec_insert(tx, "bank_b", table, id, acct_b, delta_b, &e)) != XAC_OK ||
        (table_m != NULL &&
         ((rc = exec_update(tx, "bank_m", table_m, delta_m, acct_m, &e)) != XAC_OK ||
          (rc = exec_insert(tx, "bank_m", table_m, id, acct_m, delta_m, &e)) != XAC_OK))) {
        /* Nothing was prepared yet: the rollback is certain unless the
         * connection is gone, and then xacd rolls back as the session ends. */
        count_code(rc);
        note_failure("a statement", rc, &e);
        xac_error e2;
        int rrc = xac_rollback(tx, &e2);
        atomic_fetch_add(&n_abandoned, 1);
        return rc == XAC_ECONN || rrc == XAC_ECONN ? RECONNECT : PAUSE;
    }
    rc = xac_commit(tx, &e);
    if (rc == XAC_OK) {
        char line[64];
        snprintf(line, sizeof line, "%lld\n", id);
        append_line(acked_fd, line);
        atomic_fetch_add(&n_committed, 1);
        return NEXT;
    }
    count_code(rc);
    note_failure("COMMIT", rc, &e);
    if (rc == XAC_EROLLBACK) {
        atomic_fetch_add(&n_rolled_back, 1);
        return PAUSE;
    }
    atomic_fetch_add(&n_unknown, 1);
    if (w->npend < PENDING_MAX) {
        w->pend[w->npend].id = id;
        snprintf(w->pend[w->npend].gtrid, sizeof w->pend[w->npend].gtrid, "%s", gtrid);
        w->npend++;
    }
    return rc == XAC_ECONN ? RECONNECT : PAUSE;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    long backoff = BACKOFF_MIN_MS;
    while (!stop_flag) {
        if (w->c == NULL) {
            xac_error e;
            if (xac_connect(addr, client, token, &w->c, &e) != XAC_OK) {
                w->c = NULL;
                atomic_fetch_add(&n_connect_fail, 1);
                /* Jitter, so that the threads do not all come back at once. */
                sleep_ms(backoff / 2 + (long)(rnd(&w->seed) % (uint64_t)(backoff / 2 + 1)));
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            ask_pending(w);
        }
        int next = transfer(w);
        if (next == RECONNECT) {
            xac_close(w->c);
            w->c = NULL;
        } else if (next == PAUSE) {
            sleep_ms(BACKOFF_MIN_MS + (long)(rnd(&w->seed) % BACKOFF_MIN_MS));
            /* An outcome lost with the connection still up (ERMFAIL, say):
             * the same xacd is asked at once, as a client would. */
            ask_pending(w);
        }
    }
    if (w->c != NULL)
        xac_close(w->c);
    return NULL;
}

int main(int argc, char **argv)
{
    xac_log_init("prog_torture", XAC_LOG_INFO, NULL, NULL);
    if (argc != 6 && argc != 7) {
        xac_loge("usage: prog_torture ACKED STATUS TABLE THREADS ACCOUNTS [TABLE_M]");
        return 2;
    }
    table = argv[3];
    table_m = argc == 7 ? argv[6] : NULL;
    long nthreads = strtol(argv[4], NULL, 10);
    accounts = strtol(argv[5], NULL, 10);
    if (nthreads < 1 || nthreads > MAX_THREADS || accounts < 1) {
        xac_loge("THREADS must be 1..%d and ACCOUNTS at least 1", MAX_THREADS);
        return 2;
    }
    addr = getenv("XAC_ADDR");
    client = getenv("XAC_CLIENT");
    token = getenv("XAC_TOKEN");
    if (addr == NULL || client == NULL || token == NULL) {
        xac_loge("set XAC_ADDR, XAC_CLIENT and XAC_TOKEN");
        return 2;
    }
    acked_fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    status_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (acked_fd < 0 || status_fd < 0) {
        xac_loge("cannot open %s or %s: %s", argv[1], argv[2], strerror(errno));
        return 2;
    }
    const char *gf = getenv("XAC_TORTURE_GTRIDS");
    if (gf != NULL && gf[0] != '\0' &&
        (gtrids_fd = open(gf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        xac_loge("cannot open %s: %s", gf, strerror(errno));
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    static worker workers[MAX_THREADS];
    static pthread_t tids[MAX_THREADS];
    uint64_t base = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    long started = 0;
    for (long i = 0; i < nthreads; i++) {
        workers[i].no = (int)i;
        workers[i].seed = (base + (uint64_t)i * 0x9E3779B97F4A7C15ULL) | 1;
        int prc = pthread_create(&tids[i], NULL, worker_main, &workers[i]);
        if (prc != 0) {
            xac_loge("cannot start thread %ld: %s", i, strerror(prc));
            stop_flag = 1;
            break;
        }
        started++;
    }
    for (long i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    close(acked_fd);
    close(status_fd);
    if (gtrids_fd >= 0)
        close(gtrids_fd);
    xac_out("attempts %llu committed %llu rolled_back %llu abandoned %llu unknown %llu "
            "connect_failures %llu anomalies %llu\n",
            (unsigned long long)n_attempts, (unsigned long long)n_committed,
            (unsigned long long)n_rolled_back, (unsigned long long)n_abandoned,
            (unsigned long long)n_unknown, (unsigned long long)n_connect_fail,
            (unsigned long long)n_anomalies);
    xac_out("failures by code:");
    for (int i = 1; i < NCODES; i++)
        if (n_by_code[i] > 0)
            xac_out(" %s %llu", xac_strerror(i), (unsigned long long)n_by_code[i]);
    xac_out("\n");
    xac_out_flush();
    return n_anomalies > 0 ? 1 : 0;
}
