/* http_guard: what keeps an evhttp server (the node's, the store's) open to everyone when some
 * clients misbehave. libevent 2.1 leaves two holes:
 *
 * - Out of file descriptors (EMFILE, ENFILE) or socket memory, accept() fails while the
 *   pending connection stays queued and the listening socket stays readable; libevent then
 *   calls accept() again on every loop turn and, with no error callback, writes a warning each
 *   time: a node under a flood of connections used a whole core and wrote about 700,000 log
 *   lines a second. The guard stops accepting on every listener it watches for a moment (the
 *   shortage is the process's, not one socket's), says so at most once every few seconds, and
 *   accepts again; meanwhile connections wait in the queue, and timers, transfers and open
 *   connections go on.
 *
 * - evhttp's timeout is an idle timeout: a client that sends one byte every few seconds keeps
 *   its request, and a descriptor, for as long as it likes, and enough such clients leave no
 *   descriptor for anyone else. The guard gives each request a deadline instead: it must
 *   arrive within `request_timeout` seconds of its first byte, plus one second for every
 *   HTTP_GUARD_MIN_RATE bytes it carries (so that a large body on a slow link still gets
 *   through). A late request's connection is shut down; evhttp then sees the end of the
 *   stream and frees it. */
#ifndef SHAZBOT_HTTP_GUARD_H
#define SHAZBOT_HTTP_GUARD_H

#include "config.h"

#include <stdbool.h>

struct bufferevent;
struct event_base;
struct evconnlistener;

typedef struct http_guard http_guard;
typedef struct http_guard_clock http_guard_clock;

#define HTTP_GUARD_LISTENERS 4
#define HTTP_GUARD_MIN_RATE 16384 /* bytes a second, beyond the request timeout */

/* A guard for one server's listeners and connections. Lines it writes are weighed against
 * `log_limit` (log.h). NULL when out of memory. */
http_guard *http_guard_new(struct event_base *base, log_level log_limit, double request_timeout);
/* Watches one more of the server's listeners (at most HTTP_GUARD_LISTENERS). */
bool http_guard_watch_listener(http_guard *g, struct evconnlistener *listener);
/* Puts a deadline on the requests of a connection, from its first bytes (`first` of them, already
 * in its input buffer) to http_guard_clock_free, which the server calls when evhttp closes the
 * connection. NULL when out of memory. */
http_guard_clock *http_guard_clock_new(http_guard *g, struct bufferevent *bev, size_t first);
void http_guard_clock_free(http_guard_clock *c); /* NULL is fine */
/* Before evhttp_free. NULL is fine. */
void http_guard_free(http_guard *g);

#endif
