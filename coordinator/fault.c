/* Crash points and journal I/O faults for the tests (fault.h). XAC_CRASH_AT
 * and XAC_JOURNAL_FAULT are read once when xacd arms fault injection. At a
 * crash point xacd sends itself SIGKILL, so no atexit handler, buffered write
 * or core dump softens the crash. A journal fault only makes the journal's
 * hook report an errno; the journal treats it as the real failure. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "xac_common.h"

static const char *const fault_all[] = {FAULT_AFTER_START,
                                        FAULT_AFTER_EARLY_PREPARE,
                                        FAULT_AFTER_FIRST_PREPARE,
                                        FAULT_AFTER_PREPARE_ALL,
                                        FAULT_BEFORE_DECISION,
                                        FAULT_AFTER_DECISION,
                                        FAULT_AFTER_FIRST_COMMIT,
                                        FAULT_AFTER_COMMIT_ALL,
                                        FAULT_BEFORE_END,
                                        FAULT_BEFORE_ROLLBACK,
                                        FAULT_AFTER_FIRST_ROLLBACK,
                                        FAULT_LRC_BEFORE_COMMIT,
                                        FAULT_LRC_AFTER_COMMIT,
                                        FAULT_LRC_BEFORE_FORGET,
                                        FAULT_BEFORE_ONE_PHASE,
                                        FAULT_AFTER_ONE_PHASE,
                                        FAULT_JOURNAL_PREFIX "batch-written",
                                        FAULT_JOURNAL_PREFIX "batch-synced",
                                        FAULT_JOURNAL_PREFIX "segment-created",
                                        FAULT_JOURNAL_PREFIX "segment-switched",
                                        FAULT_JOURNAL_PREFIX "carried",
                                        FAULT_JOURNAL_PREFIX "segment-deleted",
                                        FAULT_REC_BEFORE_COMMIT,
                                        FAULT_REC_AFTER_COMMIT,
                                        FAULT_REC_BEFORE_ROLLBACK,
                                        FAULT_REC_AFTER_ROLLBACK,
                                        FAULT_REC_BEFORE_END,
                                        FAULT_REC_AFTER_FENCE,
                                        FAULT_REC_AFTER_ADOPT,
                                        NULL};

static char armed_name[64];
static long armed_at = 1;
static atomic_bool armed;
static atomic_long hits;

const char *const *fault_names(void)
{
    return fault_all;
}

static bool fault_known(const char *name)
{
    for (const char *const *n = fault_all; *n != NULL; n++)
        if (strcmp(*n, name) == 0)
            return true;
    return false;
}

/* Arms XAC_CRASH_AT (spec). */
static void arm_crash(const char *spec)
{
    const char *colon = strchr(spec, ':');
    size_t len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= sizeof armed_name) {
        xac_logw("XAC_CRASH_AT=%s: not a crash point name; nothing armed", spec);
        return;
    }
    memcpy(armed_name, spec, len);
    armed_name[len] = '\0';
    armed_at = 1;
    if (colon != NULL) {
        char *end = NULL;
        long n = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || n < 1) {
            xac_logw("XAC_CRASH_AT=%s: the count after ':' must be a number >= 1; nothing armed",
                     spec);
            return;
        }
        armed_at = n;
    }
    if (!fault_known(armed_name)) {
        char known[1024] = "";
        for (const char *const *n = fault_all; *n != NULL; n++) {
            size_t used = strlen(known);
            snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", *n);
        }
        xac_logw("XAC_CRASH_AT=%s: unknown crash point '%s' (known: %s); it will never fire", spec,
                 armed_name, known);
    }
    atomic_store(&hits, 0);
    atomic_store(&armed, true);
    xac_logw("fault injection ARMED: xacd will kill itself at '%s' (hit %ld)", armed_name,
             armed_at);
}

void fault_point(const char *name)
{
    if (!atomic_load(&armed) || strcmp(name, armed_name) != 0)
        return;
    long n = atomic_fetch_add(&hits, 1) + 1;
    if (n != armed_at)
        return;
    xac_loge("fault injection: crashing at '%s' (hit %ld)", name, n);
    raise(SIGKILL);
}

void fault_journal_step(void *ctx, const char *name)
{
    (void)ctx;
    if (!atomic_load(&armed))
        return;
    char full[64];
    snprintf(full, sizeof full, "%s%s", FAULT_JOURNAL_PREFIX, name);
    fault_point(full);
}

void fault_rec_step(void *ctx, const char *name)
{
    (void)ctx;
    if (!atomic_load(&armed))
        return;
    if (strncmp(name, FAULT_REC_PREFIX, strlen(FAULT_REC_PREFIX)) == 0) {
        fault_point(name);
        return;
    }
    char full[64];
    snprintf(full, sizeof full, "%s%s", FAULT_REC_PREFIX, name);
    fault_point(full);
}

/* ------------------------------------------------------- journal I/O faults */

#define IO_OPS 4

static const char *const io_names[IO_OPS] = {"write", "sync", "create", "cut"};
static const journal_io io_ops[IO_OPS] = {JOURNAL_IO_WRITE, JOURNAL_IO_SYNC, JOURNAL_IO_CREATE,
                                          JOURNAL_IO_CUT};

typedef struct io_fault {
    atomic_bool on;
    long at;  /* fails from this call on (1 = the first) */
    int errn; /* what it fails with */
    atomic_long calls;
    atomic_bool told; /* the first failure was logged */
} io_fault;

static io_fault io_faults[IO_OPS];

static const struct {
    const char *name;
    int value;
} errno_names[] = {{"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}};

/* "EIO", "ENOSPC", ... or a number from 1 to 4095. */
static bool parse_errno(const char *s, int *out)
{
    for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
        if (strcmp(s, errno_names[i].name) == 0) {
            *out = errno_names[i].value;
            return true;
        }
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 1 || v > 4095)
        return false;
    *out = (int)v;
    return true;
}

/* Parses one "op[:N[:errno]]" into io_faults' pending copy. why gets the
 * problem on failure. */
static bool parse_io_item(char *item, io_fault *pending, const char **why)
{
    char *f[3] = {item, NULL, NULL};
    for (int k = 1; k < 3; k++) {
        char *c = strchr(f[k - 1], ':');
        if (c == NULL)
            break;
        *c = '\0';
        f[k] = c + 1;
    }
    if (f[2] != NULL && strchr(f[2], ':') != NULL) {
        *why = "too many ':' (expected op[:N[:errno]])";
        return false;
    }
    int op = -1;
    for (int i = 0; i < IO_OPS; i++)
        if (strcmp(f[0], io_names[i]) == 0)
            op = i;
    if (op < 0) {
        *why = "unknown operation (expected write, sync, create or cut)";
        return false;
    }
    if (pending[op].on) {
        *why = "an operation is named twice";
        return false;
    }
    long at = 1;
    if (f[1] != NULL) {
        char *end = NULL;
        at = strtol(f[1], &end, 10);
        if (end == f[1] || *end != '\0' || at < 1) {
            *why = "the count after the operation must be a number >= 1";
            return false;
        }
    }
    int errn = EIO;
    if (f[2] != NULL && !parse_errno(f[2], &errn)) {
        *why = "the errno must be EIO, ENOSPC, EDQUOT, EROFS or a number from 1 to 4095";
        return false;
    }
    pending[op].on = true;
    pending[op].at = at;
    pending[op].errn = errn;
    return true;
}

/* Arms XAC_JOURNAL_FAULT (spec): all of it or, on any mistake, nothing. */
static void arm_io(const char *spec)
{
    char buf[256];
    if (strlen(spec) >= sizeof buf) {
        xac_logw("XAC_JOURNAL_FAULT is too long; no journal fault armed");
        return;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    io_fault pending[IO_OPS];
    memset(pending, 0, sizeof pending);
    for (char *item = buf, *next; item != NULL; item = next) {
        next = strchr(item, ',');
        if (next != NULL)
            *next++ = '\0';
        const char *why = "";
        char shown[256];
        snprintf(shown, sizeof shown, "%s", item);
        if (!parse_io_item(item, pending, &why)) {
            xac_logw("XAC_JOURNAL_FAULT=%s: '%s': %s; no journal fault armed", spec, shown, why);
            return;
        }
    }
    for (int i = 0; i < IO_OPS; i++) {
        if (!pending[i].on)
            continue;
        io_faults[i].at = pending[i].at;
        io_faults[i].errn = pending[i].errn;
        atomic_store(&io_faults[i].calls, 0);
        atomic_store(&io_faults[i].told, false);
        atomic_store(&io_faults[i].on, true);
        xac_logw("fault injection ARMED: the journal's %s fails with %s from call %ld on",
                 io_names[i], strerror(pending[i].errn), pending[i].at);
    }
}

int fault_journal_io(void *ctx, journal_io op)
{
    (void)ctx;
    for (int i = 0; i < IO_OPS; i++) {
        if (io_ops[i] != op)
            continue;
        io_fault *f = &io_faults[i];
        if (!atomic_load(&f->on))
            return 0;
        long n = atomic_fetch_add(&f->calls, 1) + 1;
        if (n < f->at)
            return 0;
        if (!atomic_exchange(&f->told, true))
            xac_logw("fault injection: failing the journal's %s (call %ld) with %s", io_names[i], n,
                     strerror(f->errn));
        return f->errn;
    }
    return 0;
}

void fault_arm(bool enabled)
{
    atomic_store(&armed, false);
    for (int i = 0; i < IO_OPS; i++)
        atomic_store(&io_faults[i].on, false);
    if (!enabled)
        return;
    const char *crash = getenv("XAC_CRASH_AT");
    const char *io = getenv("XAC_JOURNAL_FAULT");
    bool has_crash = crash != NULL && crash[0] != '\0';
    bool has_io = io != NULL && io[0] != '\0';
    if (!has_crash && !has_io) {
        xac_logi("fault injection enabled, but neither XAC_CRASH_AT nor XAC_JOURNAL_FAULT is set: "
                 "nothing armed");
        return;
    }
    if (has_crash)
        arm_crash(crash);
    if (has_io)
        arm_io(io);
}
