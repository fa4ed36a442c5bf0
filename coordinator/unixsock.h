/* Listening on a Unix socket path, for the client listener (server.c) and the
 * admin socket (admin.c). */
#ifndef XAC_UNIXSOCK_H
#define XAC_UNIXSOCK_H

#include <sys/types.h>

#include "xac_common.h"

typedef struct unixsock {
    int fd;    /* listening, non-blocking, close-on-exec */
    dev_t dev; /* the socket file we created, so that only it is removed */
    ino_t ino;
} unixsock;

/* Binds and listens on path with the file mode given. A socket file left by a
 * crash is replaced; one that a live process answers on is refused, as is a
 * path that is not a socket. what names the setting in messages
 * ("listen.unix", "admin_socket"). */
int unixsock_listen(const char *path, const char *what, mode_t mode, int backlog, unixsock *out,
                    xac_err *err);

#endif
