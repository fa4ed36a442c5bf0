/* Unix socket listeners. The socket file is created with its final mode (the
 * umask is narrowed around bind), because for the admin socket the file's
 * permissions are the only access control: there must be no moment at which
 * others may connect. A leftover file is probed first, so that a second xacd
 * never steals the socket of a live one. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unixsock.h"

/* Removes a socket file left by a crash; refuses one that is in use. */
static int clear_stale(const char *path, const char *what, const struct sockaddr_un *sa,
                       xac_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return XAC_OK;
        return xac_err_set(err, XAC_EIO, "%s %s: %s (errno %d)", what, path, strerror(errno),
                           errno);
    }
    if (!S_ISSOCK(st.st_mode))
        return xac_err_set(err, XAC_EIO, "%s %s exists and is not a socket; remove it", what, path);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return xac_err_set(err, XAC_EIO, "socket(AF_UNIX): %s (errno %d)", strerror(errno), errno);
    int rc = connect(probe, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(probe);
    if (rc == 0 || e == EAGAIN)
        return xac_err_set(err, XAC_EIO,
                           "%s %s: another process is listening on it (is xacd already running?)",
                           what, path);
    if (e != ECONNREFUSED && e != ENOENT)
        return xac_err_set(err, XAC_EIO, "%s: cannot probe the existing socket %s: %s (errno %d)",
                           what, path, strerror(e), e);
    if (unlink(path) != 0 && errno != ENOENT)
        return xac_err_set(err, XAC_EIO, "%s: cannot remove the stale socket %s: %s (errno %d)",
                           what, path, strerror(errno), errno);
    xac_logi("removed stale socket %s", path);
    return XAC_OK;
}

int unixsock_listen(const char *path, const char *what, mode_t mode, int backlog, unixsock *out,
                    xac_err *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return xac_err_set(err, XAC_ECONFIG, "%s %s: path too long (at most %zu bytes)", what, path,
                           sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int rc = clear_stale(path, what, &sa, err);
    if (rc != XAC_OK)
        return rc;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return xac_err_set(err, XAC_EIO, "socket(AF_UNIX): %s (errno %d)", strerror(errno), errno);
    mode_t old = umask((mode_t)(~mode & 0777));
    int brc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int be = errno;
    umask(old);
    if (brc != 0) {
        close(fd);
        return xac_err_set(err, XAC_EIO, "%s: cannot bind Unix socket %s: %s (errno %d)", what,
                           path, strerror(be), be);
    }
    struct stat st;
    if (chmod(path, mode) != 0 || lstat(path, &st) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return xac_err_set(err, XAC_EIO, "%s: cannot set up Unix socket %s: %s (errno %d)", what,
                           path, strerror(e), e);
    }
    out->fd = fd;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    return XAC_OK;
}
