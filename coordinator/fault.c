/* Crash points for the crash tests (fault.h). XAC_CRASH_AT is read once when
 * xacd arms fault injection; at the named step xacd sends itself SIGKILL, so
 * no atexit handler, buffered write or core dump softens the crash. */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "xac_common.h"

static const char *const fault_all[] = {FAULT_AFTER_FIRST_PREPARE, FAULT_BEFORE_DECISION,
                                        FAULT_AFTER_DECISION,      FAULT_AFTER_FIRST_COMMIT,
                                        FAULT_BEFORE_END,          NULL};

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

void fault_arm(bool enabled)
{
    if (!enabled)
        return;
    const char *spec = getenv("XAC_CRASH_AT");
    if (spec == NULL || spec[0] == '\0') {
        xac_logi("fault injection enabled, but XAC_CRASH_AT is not set: no crash point armed");
        return;
    }
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
    if (!fault_known(armed_name))
        xac_logw("XAC_CRASH_AT=%s: unknown crash point '%s' (known: %s, %s, %s, %s, %s); it will "
                 "never fire",
                 spec, armed_name, fault_all[0], fault_all[1], fault_all[2], fault_all[3],
                 fault_all[4]);
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
