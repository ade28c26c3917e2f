/* notify: systemd's service notifications (sd_notify(3)) for `serve`, without libsystemd: a
 * datagram of "KEY=value" lines to the socket $NOTIFY_SOCKET names. Nothing happens when the
 * variable is unset (not started by systemd, or not Type=notify). */
#ifndef SHAZBOT_CLI_NOTIFY_H
#define SHAZBOT_CLI_NOTIFY_H

#include "clustershazbot.h"

/* Watches `node` on its event loop: READY=1 once the master list has been loaded (the
 * listener is up before the node starts), STATUS= with the member counts when they change,
 * STOPPING=1 when it begins to leave, and WATCHDOG=1 at half of $WATCHDOG_USEC when systemd
 * asks for it. Returns the watcher (NULL: nothing to do, or the reason was logged). */
typedef struct cli_notify cli_notify;
cli_notify *cli_notify_watch(shazbot *node);
/* After the loop: STOPPING=1 if not said yet, then frees the watcher. */
void cli_notify_end(cli_notify *n);

#endif
