/* on_change: `serve --on-change CMD`, a handler program run per change event, the way
 * `serf agent -event-handler` runs one: `/bin/sh -c CMD` with the event in its environment
 * (SHAZBOT_EVENT_*) and as one line of JSON on its standard input. Never blocks the node's
 * loop: fork and exec, stdin written without blocking, children reaped on SIGCHLD through
 * libevent; at most ON_CHANGE_RUNNING at once, the events behind them queued (at most
 * ON_CHANGE_QUEUE), the rest dropped and counted. */
#ifndef SHAZBOT_CLI_ON_CHANGE_H
#define SHAZBOT_CLI_ON_CHANGE_H

#include "clustershazbot.h"

#define ON_CHANGE_RUNNING 4
#define ON_CHANGE_QUEUE 1024

typedef struct on_change on_change;

/* NULL with a message when the loop's SIGCHLD event cannot be set up. */
on_change *on_change_new(struct event_base *base, const char *command, char *err, size_t err_len);
/* The shazbot_on_change callback: queues the event's handler (`arg` is the on_change). */
void on_change_event(const shazbot_event *event, void *arg);
/* Runs the loop until the handlers started and queued have ended, at most `seconds`. */
void on_change_drain(on_change *h, double seconds);
/* Handlers still running are left to finish on their own. */
void on_change_free(on_change *h);

#endif
