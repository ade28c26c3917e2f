/* accept_guard: keeps a listener from spinning when accept() fails.
 *
 * When a process runs out of file descriptors (EMFILE, ENFILE) or of socket memory, the
 * pending connection stays in the kernel's queue and the listening socket stays readable.
 * libevent 2.1 then calls accept() again on every loop turn and, with no error callback,
 * writes a warning each time: a node under a flood of connections used a whole core and wrote
 * about 700,000 log lines a second. The guard stops accepting on every listener it watches for
 * a moment (the shortage is the process's, not one socket's), says so at most once every few
 * seconds, and accepts again; meanwhile connections wait in the queue, and timers, transfers
 * and the connections already open go on. Shared by the node (http.c) and the store. */
#ifndef SHAZBOT_ACCEPT_GUARD_H
#define SHAZBOT_ACCEPT_GUARD_H

#include "config.h"

#include <stdbool.h>

struct event_base;
struct evconnlistener;

typedef struct accept_guard accept_guard;

/* Lines it writes are weighed against `log_limit` (log.h). NULL when out of memory. */
accept_guard *accept_guard_new(struct event_base *base, log_level log_limit);
/* Watches one more listener (at most ACCEPT_GUARD_LISTENERS). False if it cannot. */
bool accept_guard_watch(accept_guard *g, struct evconnlistener *listener);
/* Before the listeners it watches are freed. NULL is fine. */
void accept_guard_free(accept_guard *g);

#define ACCEPT_GUARD_LISTENERS 4

#endif
