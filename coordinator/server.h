/* The client protocol server: listens on a Unix socket and/or TCP, runs one
 * thread per session, authenticates HELLO against the configured clients and
 * turns frames into engine calls (docs/protocol.md). */
#ifndef XACD_SERVER_H
#define XACD_SERVER_H

#include "config.h"
#include "engine.h"
#include "xac_common.h"

typedef struct server server;

int server_create(const xacd_config *cfg, engine *e, server **out, xac_err *err);
/* Accepts until server_stop is called (from a signal handler's thread or
 * another thread). */
int server_run(server *s, xac_err *err);
void server_stop(server *s);
/* Closes the listeners, waits for sessions to end (their transactions are
 * rolled back), removes the Unix socket file. */
void server_destroy(server *s);

#endif
