/* notify: see notify.h. */
#define _GNU_SOURCE
#include "notify.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct cli_notify {
    shazbot *node;
    int fd;
    struct sockaddr_un addr;
    socklen_t addr_len;
    struct event *tick;
    bool ready, stopping, warned;
    char status[128];
    double watchdog_seconds; /* 0: not asked */
    double since_watchdog;
};

/* Until READY the node is looked at often, so that systemd hears of it soon after it is; then
 * once a second (counts change on the scale of gossip rounds). */
#define NOTIFY_SOON 0.1
#define NOTIFY_STEADY 1.0

static void send_line(cli_notify *n, const char *text) {
    /* Never blocks the loop: a datagram, or nothing. */
    if (sendto(n->fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&n->addr, n->addr_len) < 0 &&
        !n->warned) {
        n->warned = true;
        perror("clustershazbot serve: systemd notification (NOTIFY_SOCKET)");
    }
}

static double tick_seconds(const cli_notify *n) {
    double t = n->ready ? NOTIFY_STEADY : NOTIFY_SOON;
    if (n->watchdog_seconds > 0 && n->watchdog_seconds / 2 < t) t = n->watchdog_seconds / 2;
    return t;
}

static void arm(cli_notify *n) {
    double t = tick_seconds(n);
    struct timeval tv = {.tv_sec = (time_t)t, .tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    evtimer_add(n->tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    cli_notify *n = arg;
    shazbot_state s;
    shazbot_get_state(n->node, &s);
    char status[128];
    snprintf(status, sizeof status, "STATUS=%zu online, %zu offline%s", s.online, s.offline,
             s.master_list_loaded ? "" : " (master list not loaded yet)");
    char message[256] = "";
    if (!n->ready && s.master_list_loaded) {
        n->ready = true;
        strcat(message, "READY=1\n");
    }
    if (!n->stopping && s.leaving) {
        n->stopping = true;
        strcat(message, "STOPPING=1\n");
    }
    if (strcmp(status, n->status) != 0) {
        snprintf(n->status, sizeof n->status, "%s", status);
        strncat(message, status, sizeof message - strlen(message) - 2);
        strcat(message, "\n");
    }
    double passed = tick_seconds(n);
    if (n->watchdog_seconds > 0 && (n->since_watchdog += passed) >= n->watchdog_seconds / 2 - 1e-6) {
        n->since_watchdog = 0;
        strcat(message, "WATCHDOG=1\n");
    }
    if (*message) send_line(n, message);
    arm(n);
}

/* systemd's rules for WATCHDOG_USEC: meant for this process when WATCHDOG_PID is unset or is
 * our pid. */
static double watchdog_seconds(void) {
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!usec || (pid && atol(pid) != (long)getpid())) return 0;
    char *end;
    double v = strtod(usec, &end);
    return *end == '\0' && v > 0 ? v / 1e6 : 0;
}

cli_notify *cli_notify_watch(shazbot *node) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return NULL;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        fprintf(stderr, "clustershazbot serve: NOTIFY_SOCKET=%s is not a socket path (absolute, or @abstract): no "
                        "systemd notifications\n", path);
        return NULL;
    }
    cli_notify *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->node = node;
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, path, len);
    if (path[0] == '@') n->addr.sun_path[0] = '\0'; /* the abstract namespace */
    n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    n->watchdog_seconds = watchdog_seconds();
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    n->tick = n->fd >= 0 ? evtimer_new(shazbot_event_base(node), on_tick, n) : NULL;
    if (!n->tick) {
        perror("clustershazbot serve: systemd notifications");
        if (n->fd >= 0) close(n->fd);
        free(n);
        return NULL;
    }
    on_tick(-1, 0, n);
    return n;
}

void cli_notify_end(cli_notify *n) {
    if (!n) return;
    if (!n->stopping) send_line(n, "STOPPING=1\n");
    event_free(n->tick);
    close(n->fd);
    free(n);
}
