/* clustershazbot: the command-line program.
 *
 *   clustershazbot serve            a standalone node, configured from the environment
 *   clustershazbot store ...        a master-list store (see store.c)
 *   clustershazbot members|control|health ...   ask a running node (see client.c)
 *
 * Exit statuses: 0 success, 1 a failed operation, 2 bad usage or configuration. */
#include "clustershazbot.h"
#include "cli.h"
#include "common.h"
#include "notify.h"
#include "on_change.h"

#include <signal.h>

#include <malloc.h>
#include <stdio.h>
#include <string.h>

static const char *const usage =
    "usage: clustershazbot <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve    run a node configured from the environment (SHAZBOT_* variables)\n"
    "  store    serve a master list from a file (GET and PUT)\n"
    "  members  show a node's view of the cluster\n"
    "  control  take a node offline or bring it back online\n"
    "  health   show a node's /happy payload\n"
    "  watch    stream a node's change events (join, failed, left, ...)\n"
    "  version  print the version\n"
    "\n"
    "'clustershazbot <command> --help' tells more about each.\n";

static const char *const serve_usage =
    "usage: clustershazbot serve [--on-change CMD]\n"
    "\n"
    "Runs a node until SIGTERM or SIGINT, then leaves the cluster gracefully (exit 0).\n"
    "--on-change CMD runs `/bin/sh -c CMD` for each change event, with SHAZBOT_EVENT_KIND,\n"
    "_URL, _SEQ, _TIME, _BEFORE, _AFTER, _LAST_UPDATE, _MONITOR and _JSON in its environment\n"
    "and the event as a line of JSON on its stdin; at most 4 at once, 1024 more queued.\n"
    "Configuration comes from the environment; required: SHAZBOT_SECRET,\n"
    "SHAZBOT_CONTROL_SECRET, SHAZBOT_BASE_URL, SHAZBOT_MASTER_LIST,\n"
    "SHAZBOT_MASTER_LIST_UPDATE, SHAZBOT_MASTER_LIST_UPDATE_AUTH. See the README for the\n"
    "optional ones. A missing or malformed value exits with status 2 and names it.\n"
    "Under systemd (Type=notify, $NOTIFY_SOCKET) it says READY=1 once listening with the\n"
    "master list loaded, STATUS= with the member counts, STOPPING=1 when it leaves, and\n"
    "WATCHDOG=1 at half of WatchdogSec= when that is set.\n";

static int serve(int argc, char **argv) {
    if (cli_wants_help(argc, argv, serve_usage)) return 0;
    const char *on_change_command = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--on-change") == 0 && i + 1 < argc && argv[i + 1][0]) {
            on_change_command = argv[++i];
            continue;
        }
        fprintf(stderr, "clustershazbot serve: %s '%s'\n%s",
                strcmp(argv[i], "--on-change") == 0 ? "missing command after" : "unexpected argument", argv[i],
                serve_usage);
        return 2;
    }
    /* Every gossip answer is a buffer as large as the whole state (about 1 MB at 10,000
     * records), allocated and freed per request. Left to glibc's defaults, such buffers are
     * mmapped or trimmed back to the kernel after each request and page-faulted in again for
     * the next; keeping them in the heap makes them reusable. An idle small node is not
     * affected: nothing large was ever allocated. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    cli_raise_fd_limit();
    char err[1024];
    shazbot_settings *settings = shazbot_settings_from_env(err, sizeof err);
    if (!settings) {
        fprintf(stderr, "clustershazbot serve: %s\n", err);
        return 2;
    }
    shazbot *node = shazbot_new(settings, NULL, err, sizeof err);
    shazbot_settings_free(settings);
    if (!node) {
        fprintf(stderr, "clustershazbot serve: %s\n", err);
        return 2;
    }
    if (shazbot_listen(node, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "clustershazbot serve: %s\n", err);
        shazbot_free(node);
        return 1;
    }
    on_change *handlers = NULL;
    if (on_change_command) {
        if (!(handlers = on_change_new(shazbot_event_base(node), on_change_command, err, sizeof err))) {
            fprintf(stderr, "clustershazbot serve: %s\n", err);
            shazbot_free(node);
            return 1;
        }
        signal(SIGPIPE, SIG_IGN); /* a handler that does not read its stdin */
        shazbot_on_change(node, on_change_event, handlers);
    }
    shazbot_start(node);
    cli_notify *notify = cli_notify_watch(node);
    int rc = shazbot_run(node, 1);
    /* The handlers of the last events (this node leaving) get a moment to run. */
    if (handlers) on_change_drain(handlers, 5);
    /* The handlers' events live on the node's loop: they go first. */
    shazbot_on_change(node, NULL, NULL);
    on_change_free(handlers);
    cli_notify_end(notify);
    shazbot_free(node);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *command = argv[1];
    if (strcmp(command, "serve") == 0) return serve(argc - 1, argv + 1);
    if (strcmp(command, "store") == 0) return cli_store(argc - 1, argv + 1);
    if (strcmp(command, "members") == 0) return cli_members(argc - 1, argv + 1);
    if (strcmp(command, "control") == 0) return cli_control(argc - 1, argv + 1);
    if (strcmp(command, "health") == 0) return cli_health(argc - 1, argv + 1);
    if (strcmp(command, "watch") == 0) return cli_watch(argc - 1, argv + 1);
    if (strcmp(command, "simulate") == 0) return cli_simulate(argc - 1, argv + 1);
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        printf("clustershazbot %s\n", SHAZBOT_VERSION);
        return 0;
    }
    fprintf(stderr, "clustershazbot: unknown command '%s'\n\n%s", command, usage);
    return 2;
}
