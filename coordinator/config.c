/* Reads xacd's libconfig file into an xacd_config and validates all of it:
 * types, ranges, names, duplicates, unknown keys (with a "did you mean" hint)
 * and the permissions of secret files. Every error names the file and line so
 * an operator can fix it without guessing; on any error nothing is returned. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

/* What a loader step needs to report errors: the file and the error out. */
typedef struct loader {
    const char *path;
    char dir[PATH_MAX]; /* the config file's directory, for relative secret files */
    xac_err *err;
    bool allow_null_driver; /* testing.allow_null_driver, read before the resources */
} loader;

static int fail(loader *L, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(loader *L, const config_setting_t *s, const char *fmt, ...)
{
    char msg[XAC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unsigned line = s != NULL ? config_setting_source_line(s) : 0;
    if (line > 0)
        return xac_err_set(L->err, XAC_ECONFIG, "%s:%u: %s", L->path, line, msg);
    return xac_err_set(L->err, XAC_ECONFIG, "%s: %s", L->path, msg);
}

/* ------------------------------------------------------- unknown keys */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* Refuses any child of group whose name is not in known (NULL-terminated).
 * where is how the group is named in messages ("" for the top level). */
static int check_keys(loader *L, const config_setting_t *group, const char *const *known,
                      const char *where)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        if (name == NULL)
            continue;
        bool ok = false;
        const char *best = NULL;
        size_t best_d = 3;
        for (const char *const *k = known; *k != NULL; k++) {
            if (strcmp(*k, name) == 0) {
                ok = true;
                break;
            }
            size_t d = edit_distance(name, *k);
            if (d < best_d && d < strlen(*k)) {
                best_d = d;
                best = *k;
            }
        }
        if (ok)
            continue;
        char keys[256] = "";
        for (const char *const *k = known; *k != NULL; k++) {
            size_t used = strlen(keys);
            snprintf(keys + used, sizeof keys - used, "%s%s", used ? ", " : "", *k);
        }
        if (best != NULL)
            return fail(L, s, "unknown key %s%s%s; did you mean %s?", where, *where ? "." : "",
                        name, best);
        return fail(L, s, "unknown key %s%s%s (known keys: %s)", where, *where ? "." : "", name,
                    keys);
    }
    return XAC_OK;
}

/* ------------------------------------------------------ typed getters */

/* Looks key up in group. *s is NULL when absent (an error when required). */
static int lookup(loader *L, const config_setting_t *group, const char *where, const char *key,
                  bool required, config_setting_t **s)
{
    *s = config_setting_get_member(group, key);
    if (*s == NULL && required)
        return fail(L, group == NULL || config_setting_is_root(group) ? NULL : group,
                    "%s%s%s is missing", where, *where ? "." : "", key);
    return XAC_OK;
}

static int get_int(loader *L, const config_setting_t *group, const char *where, const char *key,
                   bool required, long long lo, long long hi, long long *out, bool *found)
{
    config_setting_t *s;
    if (found != NULL)
        *found = false;
    if (lookup(L, group, where, key, required, &s) != XAC_OK)
        return L->err->code;
    if (s == NULL)
        return XAC_OK;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return fail(L, s, "%s%s%s must be an integer", where, *where ? "." : "", key);
    long long v = config_setting_get_int64(s);
    if (v < lo || v > hi)
        return fail(L, s, "%s%s%s must be between %lld and %lld (got %lld)", where,
                    *where ? "." : "", key, lo, hi, v);
    *out = v;
    if (found != NULL)
        *found = true;
    return XAC_OK;
}

static int get_u32(loader *L, const config_setting_t *group, const char *where, const char *key,
                   long long lo, long long hi, uint32_t *out)
{
    long long v;
    bool found;
    int rc = get_int(L, group, where, key, false, lo, hi, &v, &found);
    if (rc == XAC_OK && found)
        *out = (uint32_t)v;
    return rc;
}

/* Copies a string setting into out (cap bytes with the NUL). */
static int get_str(loader *L, const config_setting_t *group, const char *where, const char *key,
                   bool required, char *out, size_t cap, bool *found)
{
    config_setting_t *s;
    if (found != NULL)
        *found = false;
    if (lookup(L, group, where, key, required, &s) != XAC_OK)
        return L->err->code;
    if (s == NULL)
        return XAC_OK;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(L, s, "%s%s%s must be a string (in double quotes)", where, *where ? "." : "",
                    key);
    const char *v = config_setting_get_string(s);
    if (strlen(v) >= cap)
        return fail(L, s, "%s%s%s is too long (at most %zu bytes)", where, *where ? "." : "", key,
                    cap - 1);
    memcpy(out, v, strlen(v) + 1);
    if (found != NULL)
        *found = true;
    return XAC_OK;
}

static int get_group(loader *L, const config_setting_t *parent, const char *key,
                     config_setting_t **out)
{
    *out = config_setting_get_member(parent, key);
    if (*out != NULL && config_setting_type(*out) != CONFIG_TYPE_GROUP)
        return fail(L, *out, "%s must be a group: %s = { ... };", key, key);
    return XAC_OK;
}

/* ----------------------------------------------------------- secrets */

/* Reads the first line of a secret file into out, refusing a file that group
 * or others can read or write: a leaked password is a leaked database. */
static int read_secret(loader *L, const config_setting_t *s, const char *what, const char *file,
                       char *out, size_t cap)
{
    char full[PATH_MAX];
    if (file[0] == '/' || L->dir[0] == '\0')
        snprintf(full, sizeof full, "%s", file);
    else if ((size_t)snprintf(full, sizeof full, "%s/%s", L->dir, file) >= sizeof full)
        return fail(L, s, "%s %s: path too long", what, file);
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail(L, s, "%s %s cannot be opened: %s", what, full, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(L, s, "%s %s: fstat: %s", what, full, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(L, s, "%s %s is not a regular file", what, full);
    }
    if ((st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
        close(fd);
        return fail(L, s, "%s %s is %s by group or others (mode %04o); chmod 600 it", what, full,
                    (st.st_mode & (S_IRGRP | S_IROTH)) ? "readable" : "writable",
                    (unsigned)(st.st_mode & 07777));
    }
    char buf[1024];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return fail(L, s, "%s %s cannot be read: %s", what, full, strerror(e));
        }
        if (r == 0 || memchr(buf + len, '\n', (size_t)r) != NULL ||
            len + (size_t)r == sizeof buf - 1) {
            len += (size_t)r;
            break;
        }
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    size_t n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    int rc = XAC_OK;
    if (n >= cap)
        rc = fail(L, s, "%s %s: the first line is too long (at most %zu bytes)", what, full,
                  cap - 1);
    else
        memcpy(out, buf, n + 1);
    explicit_bzero(buf, sizeof buf);
    return rc;
}

/* A secret given inline (key) or in a file (key_file), never both. */
static int get_secret(loader *L, const config_setting_t *group, const char *where, const char *key,
                      const char *file_key, char *out, size_t cap, bool *found)
{
    bool inl, inf;
    char file[PATH_MAX];
    int rc = get_str(L, group, where, key, false, out, cap, &inl);
    if (rc == XAC_OK)
        rc = get_str(L, group, where, file_key, false, file, sizeof file, &inf);
    if (rc != XAC_OK)
        return rc;
    const config_setting_t *fs = config_setting_get_member(group, file_key);
    if (inl && inf)
        return fail(L, fs, "%s: give either %s or %s, not both", where, key, file_key);
    if (inf && (rc = read_secret(L, fs, file_key, file, out, cap)) != XAC_OK)
        return rc;
    *found = inl || inf;
    return XAC_OK;
}

/* ------------------------------------------------------------ sections */

static int load_listen(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {"unix", "tcp", NULL};
    config_setting_t *g;
    int rc = get_group(L, root, "listen", &g);
    if (rc != XAC_OK || g == NULL)
        return rc;
    if ((rc = check_keys(L, g, keys, "listen")) != XAC_OK)
        return rc;
    if ((rc = get_str(L, g, "listen", "unix", false, cfg->unix_path, sizeof cfg->unix_path,
                      NULL)) != XAC_OK)
        return rc;
    char tcp[300];
    bool has_tcp;
    if ((rc = get_str(L, g, "listen", "tcp", false, tcp, sizeof tcp, &has_tcp)) != XAC_OK)
        return rc;
    if (!has_tcp || tcp[0] == '\0')
        return XAC_OK;
    const config_setting_t *s = config_setting_get_member(g, "tcp");
    char *colon = strrchr(tcp, ':');
    if (colon == NULL || colon == tcp || colon[1] == '\0')
        return fail(L, s, "listen.tcp must be \"host:port\", e.g. \"127.0.0.1:7411\" (got \"%s\")",
                    tcp);
    *colon = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || errno != 0 || port < 1 || port > 65535)
        return fail(L, s, "listen.tcp: port \"%s\" must be a number from 1 to 65535", colon + 1);
    char *host = tcp;
    size_t hl = strlen(host);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') { /* [::1]:7411 */
        host[hl - 1] = '\0';
        host++;
    }
    if (host[0] == '\0')
        return fail(L, s, "listen.tcp: the host is empty (use \"0.0.0.0:PORT\" for every address)");
    if (strlen(host) >= sizeof cfg->tcp_host)
        return fail(L, s, "listen.tcp: the host is too long");
    memcpy(cfg->tcp_host, host, strlen(host) + 1);
    cfg->tcp_port = (int)port;
    return XAC_OK;
}

static int load_timeouts(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {"transaction_ms", "max_transaction_ms", "prepare_ms",
                                       "connect_ms",     "pool_wait_ms",       NULL};
    const long long max = 0x7fffffff;
    config_setting_t *g;
    int rc = get_group(L, root, "timeouts", &g);
    if (rc != XAC_OK || g == NULL)
        return rc;
    if ((rc = check_keys(L, g, keys, "timeouts")) != XAC_OK ||
        (rc = get_u32(L, g, "timeouts", "transaction_ms", 1, max, &cfg->tx_timeout_ms)) != XAC_OK ||
        (rc = get_u32(L, g, "timeouts", "max_transaction_ms", 1, max, &cfg->max_tx_timeout_ms)) !=
            XAC_OK ||
        (rc = get_u32(L, g, "timeouts", "prepare_ms", 1, max, &cfg->prepare_timeout_ms)) !=
            XAC_OK ||
        (rc = get_u32(L, g, "timeouts", "connect_ms", 1, max, &cfg->connect_timeout_ms)) !=
            XAC_OK ||
        (rc = get_u32(L, g, "timeouts", "pool_wait_ms", 0, max, &cfg->pool_wait_ms)) != XAC_OK)
        return rc;
    if (cfg->max_tx_timeout_ms < cfg->tx_timeout_ms) {
        const config_setting_t *s = config_setting_get_member(g, "max_transaction_ms");
        return fail(L, s != NULL ? s : g,
                    "timeouts.max_transaction_ms (%u) is less than timeouts.transaction_ms (%u)",
                    cfg->max_tx_timeout_ms, cfg->tx_timeout_ms);
    }
    return XAC_OK;
}

static int load_limits(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {"max_frame", "max_sessions_per_client", NULL};
    config_setting_t *g;
    int rc = get_group(L, root, "limits", &g);
    if (rc != XAC_OK || g == NULL)
        return rc;
    if ((rc = check_keys(L, g, keys, "limits")) != XAC_OK ||
        (rc = get_u32(L, g, "limits", "max_frame", 1024, 1024LL * 1024 * 1024, &cfg->max_frame)) !=
            XAC_OK ||
        (rc = get_u32(L, g, "limits", "max_sessions_per_client", 1, 1000000,
                      &cfg->max_sessions_per_client)) != XAC_OK)
        return rc;
    return XAC_OK;
}

static int load_log(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {"level", "file", NULL};
    config_setting_t *g;
    int rc = get_group(L, root, "log", &g);
    if (rc != XAC_OK || g == NULL)
        return rc;
    char level[16];
    bool found;
    if ((rc = check_keys(L, g, keys, "log")) != XAC_OK ||
        (rc = get_str(L, g, "log", "level", false, level, sizeof level, &found)) != XAC_OK ||
        (rc = get_str(L, g, "log", "file", false, cfg->log_file, sizeof cfg->log_file, NULL)) !=
            XAC_OK)
        return rc;
    if (found && xac_log_level_parse(level, &cfg->log_level) != XAC_OK)
        return fail(L, config_setting_get_member(g, "level"),
                    "log.level must be \"debug\", \"info\", \"warn\" or \"error\" (got \"%s\")",
                    level);
    return XAC_OK;
}

static int load_recovery(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {"interval_ms", "grace_ms", "retry_min_ms", "retry_max_ms",
                                       NULL};
    const long long max = 0x7fffffff;
    config_setting_t *g;
    int rc = get_group(L, root, "recovery", &g);
    if (rc != XAC_OK || g == NULL)
        return rc;
    if ((rc = check_keys(L, g, keys, "recovery")) != XAC_OK ||
        (rc = get_u32(L, g, "recovery", "interval_ms", 100, max, &cfg->recovery_interval_ms)) !=
            XAC_OK ||
        (rc = get_u32(L, g, "recovery", "grace_ms", 0, max, &cfg->recovery_grace_ms)) != XAC_OK ||
        (rc = get_u32(L, g, "recovery", "retry_min_ms", 10, max, &cfg->recovery_retry_min_ms)) !=
            XAC_OK ||
        (rc = get_u32(L, g, "recovery", "retry_max_ms", 10, max, &cfg->recovery_retry_max_ms)) !=
            XAC_OK)
        return rc;
    if (cfg->recovery_retry_max_ms < cfg->recovery_retry_min_ms) {
        const config_setting_t *s = config_setting_get_member(g, "retry_max_ms");
        return fail(L, s != NULL ? s : g,
                    "recovery.retry_max_ms (%u) is less than recovery.retry_min_ms (%u)",
                    cfg->recovery_retry_max_ms, cfg->recovery_retry_min_ms);
    }
    return XAC_OK;
}

static int load_testing(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {"fault_injection", "allow_null_driver", NULL};
    config_setting_t *g;
    int rc = get_group(L, root, "testing", &g);
    if (rc != XAC_OK || g == NULL)
        return rc;
    if ((rc = check_keys(L, g, keys, "testing")) != XAC_OK)
        return rc;
    config_setting_t *s = config_setting_get_member(g, "fault_injection");
    if (s != NULL) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return fail(L, s, "testing.fault_injection must be true or false");
        cfg->fault_injection = config_setting_get_bool(s) != 0;
    }
    s = config_setting_get_member(g, "allow_null_driver");
    if (s != NULL) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return fail(L, s, "testing.allow_null_driver must be true or false");
        L->allow_null_driver = config_setting_get_bool(s) != 0;
    }
    return XAC_OK;
}

/* "16777216", "64K", "16M", "1G" (also "16MiB"): binary multiples, as the
 * journal counts them. False on anything else, overflow included. */
static bool parse_size(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return false;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    unsigned shift = 0;
    switch (*s) {
    case '\0':
        break;
    case 'K':
    case 'k':
        shift = 10;
        break;
    case 'M':
    case 'm':
        shift = 20;
        break;
    case 'G':
    case 'g':
        shift = 30;
        break;
    default:
        return false;
    }
    if (shift > 0) {
        s++;
        if (strcmp(s, "iB") == 0 || strcmp(s, "B") == 0)
            s += strlen(s);
        if (*s != '\0' || v > (UINT64_MAX >> shift))
            return false;
        v <<= shift;
    }
    *out = v;
    return true;
}

/* journal_segment_size: bytes as an integer, or a string with K/M/G. */
static int load_segment_size(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    const config_setting_t *s = config_setting_get_member(root, "journal_segment_size");
    if (s == NULL)
        return XAC_OK;
    uint64_t v = 0;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        long long n = config_setting_get_int64(s);
        if (n < 0)
            return fail(L, s,
                        "journal_segment_size must be between %u (64K) and %u (1G) bytes (got "
                        "%lld)",
                        JOURNAL_SEGMENT_SIZE_MIN, JOURNAL_SEGMENT_SIZE_MAX, n);
        v = (uint64_t)n;
    } else if (t == CONFIG_TYPE_STRING) {
        const char *str = config_setting_get_string(s);
        if (!parse_size(str, &v))
            return fail(L, s,
                        "journal_segment_size \"%.64s\" is not a size: give bytes (16777216) or "
                        "a number with K, M or G (\"16M\")",
                        str);
    } else {
        return fail(L, s,
                    "journal_segment_size must be a number of bytes (16777216) or a string "
                    "with K, M or G (\"16M\")");
    }
    if (v < JOURNAL_SEGMENT_SIZE_MIN || v > JOURNAL_SEGMENT_SIZE_MAX)
        return fail(L, s,
                    "journal_segment_size must be between %u (64K) and %u (1G) bytes (got "
                    "%llu)",
                    JOURNAL_SEGMENT_SIZE_MIN, JOURNAL_SEGMENT_SIZE_MAX, (unsigned long long)v);
    cfg->journal_segment_size = v;
    return XAC_OK;
}

static int load_resource(loader *L, const config_setting_t *g, size_t idx, xacd_config *cfg,
                         drv_conf *r)
{
    static const char *const keys[] = {
        "name",      "driver",      "dialect",       "host",         "port",        "socket",
        "user",      "password",    "password_file", "database",     "odbc_driver", "dsn",
        "pool_size", "tds_version", "encryption",    "marker_table", NULL};
    char where[64];
    snprintf(where, sizeof where, "resources[%zu]", idx);
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return fail(L, g, "%s must be a group: { name = \"...\"; driver = \"...\"; ... }", where);
    int rc;
    if ((rc = check_keys(L, g, keys, where)) != XAC_OK ||
        (rc = get_str(L, g, where, "name", true, r->name, sizeof r->name, NULL)) != XAC_OK)
        return rc;
    const config_setting_t *ns = config_setting_get_member(g, "name");
    if (!xac_valid_name(r->name, XAC_RESOURCE_MAX))
        return fail(L, ns, "%s.name \"%s\" is not a valid resource name ([A-Za-z0-9_-]{1,%d})",
                    where, r->name, XAC_RESOURCE_MAX);
    for (size_t i = 0; i < idx; i++)
        if (strcmp(cfg->resources[i].name, r->name) == 0)
            return fail(L, ns, "duplicate resource name \"%s\"", r->name);
    const char *w2 = where;
    long long v;
    bool found, has_pw;
    if ((rc = get_str(L, g, w2, "driver", true, r->driver, sizeof r->driver, NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "dialect", false, r->dialect, sizeof r->dialect, NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "host", false, r->host, sizeof r->host, NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "socket", false, r->socket, sizeof r->socket, NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "user", false, r->user, sizeof r->user, NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "database", false, r->database, sizeof r->database, NULL)) !=
            XAC_OK ||
        (rc = get_str(L, g, w2, "odbc_driver", false, r->odbc_driver, sizeof r->odbc_driver,
                      NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "dsn", false, r->dsn, sizeof r->dsn, NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "tds_version", false, r->tds_version, sizeof r->tds_version,
                      NULL)) != XAC_OK ||
        (rc = get_str(L, g, w2, "encryption", false, r->encryption, sizeof r->encryption, NULL)) !=
            XAC_OK ||
        (rc = get_str(L, g, w2, "marker_table", false, r->marker_table, sizeof r->marker_table,
                      NULL)) != XAC_OK ||
        (rc = get_secret(L, g, w2, "password", "password_file", r->password, sizeof r->password,
                         &has_pw)) != XAC_OK)
        return rc;
    if ((rc = get_int(L, g, w2, "port", false, 0, 65535, &v, &found)) != XAC_OK)
        return rc;
    r->port = found ? (int)v : 0;
    if ((rc = get_int(L, g, w2, "pool_size", false, 1, 1024, &v, &found)) != XAC_OK)
        return rc;
    r->pool_size = found ? (int)v : 8;
    r->io_timeout_ms = cfg->prepare_timeout_ms;
    r->connect_timeout_ms = cfg->connect_timeout_ms;

    if (drv_find(r->driver) == NULL)
        return fail(L, config_setting_get_member(g, "driver"),
                    "resource %s: unknown driver \"%s\" (expected \"mysql\", \"odbc\" or "
                    "\"mssql\")",
                    r->name, r->driver);
    /* A null resource "commits" without storing anything: a production
     * config that named it by mistake would lose every write silently. */
    if (strcmp(r->driver, "null") == 0 && !L->allow_null_driver)
        return fail(L, config_setting_get_member(g, "driver"),
                    "resource %s: driver \"null\" stores nothing and is for benchmarks and "
                    "tests only; to allow it, add testing = { allow_null_driver = true; };",
                    r->name);
    if (strcmp(r->driver, "mssql") == 0) {
        /* FreeTDS cannot prepare: SQL Server joins as the last resource. */
        r->last_resource = true;
        if (r->port == 0)
            r->port = 1433;
        if (r->tds_version[0] == '\0')
            snprintf(r->tds_version, sizeof r->tds_version, "7.4");
        if (r->encryption[0] == '\0')
            snprintf(r->encryption, sizeof r->encryption, "off");
        if (r->marker_table[0] == '\0')
            snprintf(r->marker_table, sizeof r->marker_table, "xac_commit_marker");
    }
    xac_err de;
    xac_err_clear(&de);
    if (drv_check_conf(r, &de) != XAC_OK)
        return fail(L, g, "%s", de.msg[0] ? de.msg : "invalid resource settings");
    return XAC_OK;
}

static int load_resources(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    config_setting_t *l;
    int rc = lookup(L, root, "", "resources", true, &l);
    if (rc != XAC_OK)
        return fail(L, NULL,
                    "resources is missing; expected resources = ( { name = \"...\"; "
                    "driver = \"...\"; ... } );");
    if (config_setting_type(l) != CONFIG_TYPE_LIST)
        return fail(L, l, "resources must be a list: resources = ( { ... }, { ... } );");
    int n = config_setting_length(l);
    if (n == 0)
        return fail(L, l, "resources is empty; configure at least one resource");
    cfg->resources = calloc((size_t)n, sizeof *cfg->resources);
    if (cfg->resources == NULL)
        return xac_err_set(L->err, XAC_ENOMEM, "%s: out of memory", L->path);
    for (int i = 0; i < n; i++) {
        rc = load_resource(L, config_setting_get_elem(l, (unsigned)i), (size_t)i, cfg,
                           &cfg->resources[i]);
        cfg->nresources = (size_t)i + 1;
        if (rc != XAC_OK)
            return rc;
    }
    return XAC_OK;
}

static int load_clients(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {"name", "token", "token_file", NULL};
    config_setting_t *l;
    int rc = lookup(L, root, "", "clients", true, &l);
    if (rc != XAC_OK)
        return fail(L, NULL,
                    "clients is missing; expected clients = ( { name = \"...\"; token_file = "
                    "\"...\"; } );");
    if (config_setting_type(l) != CONFIG_TYPE_LIST)
        return fail(L, l,
                    "clients must be a list: clients = ( { name = \"...\"; token = \"...\"; } );");
    int n = config_setting_length(l);
    if (n == 0)
        return fail(L, l, "clients is empty; configure at least one client");
    cfg->clients = calloc((size_t)n, sizeof *cfg->clients);
    if (cfg->clients == NULL)
        return xac_err_set(L->err, XAC_ENOMEM, "%s: out of memory", L->path);
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(l, (unsigned)i);
        xacd_client *c = &cfg->clients[i];
        cfg->nclients = (size_t)i + 1;
        char where[64];
        snprintf(where, sizeof where, "clients[%d]", i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP)
            return fail(L, g, "%s must be a group: { name = \"...\"; token = \"...\"; }", where);
        bool found;
        if ((rc = check_keys(L, g, keys, where)) != XAC_OK ||
            (rc = get_str(L, g, where, "name", true, c->name, sizeof c->name, NULL)) != XAC_OK)
            return rc;
        const config_setting_t *ns = config_setting_get_member(g, "name");
        if (!xac_valid_name(c->name, sizeof c->name - 1))
            return fail(L, ns, "%s.name \"%s\" is not a valid client name ([A-Za-z0-9_-]{1,%zu})",
                        where, c->name, sizeof c->name - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->clients[j].name, c->name) == 0)
                return fail(L, ns, "duplicate client name \"%s\"", c->name);
        if ((rc = get_secret(L, g, where, "token", "token_file", c->token, sizeof c->token,
                             &found)) != XAC_OK)
            return rc;
        if (!found || c->token[0] == '\0')
            return fail(L, g, "client %s has no token; set token_file (mode 0600) or token",
                        c->name);
    }
    return XAC_OK;
}

/* admin_socket and audit_log: both default to files in the journal directory,
 * which only xacd's user can reach; the socket's path must fit a sun_path. */
static int load_admin(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    bool found;
    char path[PATH_MAX];
    int rc = get_str(L, root, "", "admin_socket", false, path, sizeof path, &found);
    if (rc != XAC_OK)
        return rc;
    const config_setting_t *s = config_setting_get_member(root, "admin_socket");
    if (found && path[0] == '\0')
        return fail(L, s, "admin_socket is empty (xacctl needs it to reach a running xacd)");
    if (!found &&
        (size_t)snprintf(path, sizeof path, "%s/admin.sock", cfg->journal_dir) >= sizeof path)
        return fail(L, NULL, "journal_dir is too long to hold admin.sock; set admin_socket");
    if (strlen(path) >= sizeof cfg->admin_socket)
        return fail(L, s, "%s %.64s... is too long for a Unix socket (at most %zu bytes)%s",
                    found ? "admin_socket" : "the default admin socket", path,
                    sizeof cfg->admin_socket - 1, found ? "" : "; set admin_socket");
    memcpy(cfg->admin_socket, path, strlen(path) + 1);
    rc = get_str(L, root, "", "audit_log", false, cfg->audit_log, sizeof cfg->audit_log, &found);
    if (rc != XAC_OK)
        return rc;
    if (found && cfg->audit_log[0] == '\0')
        return fail(L, config_setting_get_member(root, "audit_log"),
                    "audit_log is empty (every manual resolution must be recorded)");
    if (!found && (size_t)snprintf(cfg->audit_log, sizeof cfg->audit_log, "%s/audit.log",
                                   cfg->journal_dir) >= sizeof cfg->audit_log)
        return fail(L, NULL, "journal_dir is too long to hold audit.log; set audit_log");
    return XAC_OK;
}

static void set_defaults(xacd_config *cfg)
{
    snprintf(cfg->unix_path, sizeof cfg->unix_path, "%s", "/run/xac/xacd.sock");
    cfg->tx_timeout_ms = 60000;
    cfg->max_tx_timeout_ms = 600000;
    cfg->prepare_timeout_ms = 10000;
    cfg->connect_timeout_ms = 5000;
    cfg->pool_wait_ms = 5000;
    cfg->max_frame = XAC_FRAME_DEFAULT_MAX;
    cfg->max_sessions_per_client = 256;
    cfg->workers = 16;
    cfg->journal_segment_size = JOURNAL_SEGMENT_SIZE_DEFAULT;
    cfg->log_level = XAC_LOG_INFO;
    cfg->recovery_interval_ms = 30000;
    cfg->recovery_grace_ms = 60000;
    cfg->recovery_retry_min_ms = 1000;
    cfg->recovery_retry_max_ms = 60000;
}

static int load_root(loader *L, const config_setting_t *root, xacd_config *cfg)
{
    static const char *const keys[] = {
        "node_id",   "listen",   "journal_dir", "journal_segment_size",
        "timeouts",  "limits",   "workers",     "log",
        "resources", "clients",  "testing",     "admin_socket",
        "audit_log", "recovery", NULL};
    int rc;
    if ((rc = check_keys(L, root, keys, "")) != XAC_OK)
        return rc;
    const config_setting_t *ns = config_setting_get_member(root, "node_id");
    if (ns == NULL)
        return fail(L, NULL,
                    "node_id is missing; expected node_id = \"name\"; "
                    "([A-Za-z0-9_-]{1,24}, unique per coordinator)");
    if (config_setting_type(ns) != CONFIG_TYPE_STRING)
        return fail(L, ns, "node_id must be a string (in double quotes)");
    const char *node = config_setting_get_string(ns);
    if (!xac_valid_name(node, XAC_NODE_ID_MAX))
        return fail(L, ns, "node_id \"%.64s\" is not a valid node id ([A-Za-z0-9_-]{1,%d})", node,
                    XAC_NODE_ID_MAX);
    snprintf(cfg->node_id, sizeof cfg->node_id, "%s", node);
    if (config_setting_get_member(root, "journal_dir") == NULL)
        return fail(L, NULL,
                    "journal_dir is missing; expected journal_dir = \"/var/lib/xac/journal\";");
    if ((rc = get_str(L, root, "", "journal_dir", true, cfg->journal_dir, sizeof cfg->journal_dir,
                      NULL)) != XAC_OK)
        return rc;
    if (cfg->journal_dir[0] == '\0')
        return fail(L, config_setting_get_member(root, "journal_dir"), "journal_dir is empty");
    if ((rc = load_admin(L, root, cfg)) != XAC_OK)
        return rc;
    long long workers;
    bool found;
    if ((rc = load_segment_size(L, root, cfg)) != XAC_OK ||
        (rc = load_listen(L, root, cfg)) != XAC_OK ||
        (rc = load_timeouts(L, root, cfg)) != XAC_OK ||
        (rc = load_limits(L, root, cfg)) != XAC_OK || (rc = load_log(L, root, cfg)) != XAC_OK ||
        (rc = load_testing(L, root, cfg)) != XAC_OK ||
        (rc = load_recovery(L, root, cfg)) != XAC_OK ||
        (rc = get_int(L, root, "", "workers", false, 1, 1024, &workers, &found)) != XAC_OK)
        return rc;
    if (found)
        cfg->workers = (int)workers;
    if (cfg->unix_path[0] == '\0' && cfg->tcp_host[0] == '\0')
        return fail(L, config_setting_get_member(root, "listen"),
                    "no listener: listen.unix is \"\" and listen.tcp is not set");
    if ((rc = load_resources(L, root, cfg)) != XAC_OK ||
        (rc = load_clients(L, root, cfg)) != XAC_OK)
        return rc;
    return XAC_OK;
}

int config_load(const char *path, xacd_config *cfg, xac_err *err)
{
    xac_err local;
    if (err == NULL)
        err = &local;
    xac_err_clear(err);
    memset(cfg, 0, sizeof *cfg);
    if (strlen(path) >= sizeof cfg->path)
        return xac_err_set(err, XAC_ECONFIG, "config file path is too long: %.64s...", path);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    set_defaults(cfg);

    loader L = {.path = path, .err = err};
    const char *slash = strrchr(path, '/');
    if (slash != NULL)
        snprintf(L.dir, sizeof L.dir, "%.*s", (int)(slash - path == 0 ? 1 : slash - path), path);

    /* Open it ourselves first: libconfig does not keep errno for I/O errors. */
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return xac_err_set(err, XAC_ECONFIG, "%s: cannot open config file: %s", path,
                           strerror(errno));
    fclose(fp);

    config_t lc;
    config_init(&lc);
    int rc;
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        const char *f = config_error_file(&lc);
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            rc = xac_err_set(err, XAC_ECONFIG, "%s: cannot read config file", f ? f : path);
        else
            rc = xac_err_set(err, XAC_ECONFIG, "%s:%d: syntax error: %s", f ? f : path,
                             config_error_line(&lc), config_error_text(&lc));
    } else {
        rc = load_root(&L, config_root_setting(&lc), cfg);
    }
    config_destroy(&lc);
    if (rc != XAC_OK) {
        char keep[PATH_MAX];
        snprintf(keep, sizeof keep, "%s", cfg->path);
        config_free(cfg);
        snprintf(cfg->path, sizeof cfg->path, "%s", keep);
    }
    return rc;
}

void config_free(xacd_config *cfg)
{
    if (cfg == NULL)
        return;
    if (cfg->resources != NULL) {
        explicit_bzero(cfg->resources, cfg->nresources * sizeof *cfg->resources);
        free(cfg->resources);
    }
    if (cfg->clients != NULL) {
        explicit_bzero(cfg->clients, cfg->nclients * sizeof *cfg->clients);
        free(cfg->clients);
    }
    memset(cfg, 0, sizeof *cfg);
}

const drv_conf *config_resource(const xacd_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nresources; i++)
        if (strcmp(cfg->resources[i].name, name) == 0)
            return &cfg->resources[i];
    return NULL;
}
