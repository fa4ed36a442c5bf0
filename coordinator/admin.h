/* xacd's admin socket: a Unix socket (config admin_socket, mode 0600) on which
 * xacctl asks the running daemon for its status, its in-doubt branches, a
 * manual resolution or a recovery pass (docs/protocol.md, "Admin socket"). The
 * socket file's permissions are the access control: there is no HELLO. */
#ifndef XACD_ADMIN_H
#define XACD_ADMIN_H

#include "config.h"
#include "engine.h"
#include "journal.h"
#include "xac_common.h"

typedef struct admin admin;

/* Binds the socket (replacing a stale file a crash left behind, refusing one
 * a live process answers on) and starts the thread that serves it. cfg, e and
 * j must outlive the admin. */
int admin_create(const xacd_config *cfg, engine *e, journal *j, admin **out, xac_err *err);
/* Stops serving (a request in progress finishes first), closes the socket and
 * removes its file if it is still ours. NULL is a no-op. */
void admin_destroy(admin *a);

#endif
