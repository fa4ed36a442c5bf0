/* The one place that prints: timestamped diagnostics to stderr or a log file,
 * a tool's own output to stdout, and the clocks. Each log line goes out in a
 * single write() so lines from concurrent threads never interleave. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "xac_common.h"

#define LINE_MAX_BYTES 8192

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_prog[64] = "xac";
/* Read without the lock: a disabled debug line on the hot path must not
 * take a global mutex. */
static _Atomic int log_level = XAC_LOG_INFO;
static int log_fd = STDERR_FILENO;

int xac_log_init(const char *prog, xac_log_level level, const char *path, xac_err *err)
{
    int fd = STDERR_FILENO;
    if (path != NULL && path[0] != '\0') {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return xac_err_set(err, XAC_EIO, "cannot open log file %s: %s (errno %d)", path,
                               strerror(errno), errno);
    }
    pthread_mutex_lock(&log_mu);
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    atomic_store(&log_level, (int)level);
    if (prog != NULL && prog[0] != '\0')
        snprintf(log_prog, sizeof log_prog, "%s", prog);
    pthread_mutex_unlock(&log_mu);
    return XAC_OK;
}

int xac_log_level_parse(const char *s, xac_log_level *out)
{
    static const struct {
        const char *name;
        xac_log_level level;
    } names[] = {{"debug", XAC_LOG_DEBUG},  {"info", XAC_LOG_INFO},   {"warn", XAC_LOG_WARN},
                 {"warning", XAC_LOG_WARN}, {"error", XAC_LOG_ERROR}, {"off", XAC_LOG_OFF}};
    if (s == NULL || out == NULL)
        return XAC_EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return XAC_OK;
        }
    }
    return XAC_EINVAL;
}

static void write_full(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere left to report a logging failure */
        p += w;
        n -= (size_t)w;
    }
}

void xac_log(xac_log_level level, const char *fmt, ...)
{
    static const char *const lvl[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < XAC_LOG_DEBUG || level >= XAC_LOG_OFF || (int)level < atomic_load(&log_level))
        return;
    pthread_mutex_lock(&log_mu);
    char line[LINE_MAX_BYTES];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s[%ld] %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000,
                     log_prog, (long)getpid(), lvl[level]);
    if (n < 0)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n;
    if (m > 0)
        len += (size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2;
    while (len > (size_t)n && line[len - 1] == '\n')
        len--;
    line[len++] = '\n';
    write_full(log_fd, line, len);
    pthread_mutex_unlock(&log_mu);
}

void xac_out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
}

void xac_out_write(const void *p, size_t n)
{
    fwrite(p, 1, n, stdout);
}

void xac_out_flush(void)
{
    fflush(stdout);
}

uint64_t xac_now_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t xac_now_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
