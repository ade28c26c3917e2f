/* A C host: a program with a loop of its own that runs a clustershazbot node inside it. The
 * node is configured from the environment (the SHAZBOT_* variables of the README), serves the
 * endpoints itself (SHAZBOT_LISTEN, or the port of SHAZBOT_BASE_URL), and leaves the cluster
 * on SIGTERM or SIGINT. Build against an installed clustershazbot:
 *
 *     cc main.c $(pkg-config --cflags --libs clustershazbot) -o c-host
 *
 * A host with a libevent loop of its own would hand it to shazbot_new instead; one that has
 * none at all can call shazbot_run(node, 1), which does all of this. */
#define _POSIX_C_SOURCE 200809L /* sigaction, also under -std=c11 */
#include <clustershazbot.h>
#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void fail(const char *what, const char *err) { fprintf(stderr, "c-host: %s: %s\n", what, err); }

/* Told of every change event (a member joined, failed, left, ...), as the engine derives it.
 * It runs inside the engine: it reads what it is given and returns; it must not step, shut
 * down or free the node. */
static void on_change(const shazbot_event *event, void *arg) {
    (void)arg;
    printf("c-host: event %s\n", event->json); /* also: event->kind, event->base_url, ... */
    fflush(stdout);
}

int main(void) {
    char err[512];
    shazbot_settings *settings = shazbot_settings_from_env(err, sizeof err);
    if (!settings) {
        fail("configuration", err);
        return 2;
    }
    /* A host may also set values itself, by the names of the environment variables. */
    if (shazbot_settings_set(settings, "SHAZBOT_LOG_LEVEL", "warn", err, sizeof err) != 0) {
        fail("configuration", err);
        shazbot_settings_free(settings);
        return 2;
    }
    shazbot *node = shazbot_new(settings, NULL, err, sizeof err);
    shazbot_settings_free(settings);
    if (!node) {
        fail("configuration", err);
        return 2;
    }
    if (shazbot_listen(node, NULL, 0, err, sizeof err) != 0) {
        fail("listen", err);
        shazbot_free(node);
        return 1;
    }

    /* The host's own signal handling: the handler only sets a flag, the loop acts on it. */
    struct sigaction stop = {0};
    stop.sa_handler = on_stop_signal;
    sigemptyset(&stop.sa_mask);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    signal(SIGPIPE, SIG_IGN); /* a peer closing early must not kill the host */

    shazbot_on_change(node, on_change, NULL);
    shazbot_start(node);
    printf("c-host: node running; SIGTERM leaves the cluster\n");
    fflush(stdout);

    /* The host's loop. Each turn gives the node up to 200 ms (it returns sooner when it has
     * handled something), then does the host's own work: here, noticing a stop request. */
    int rc = 0;
    int leaving = 0;
    while (!shazbot_is_stopped(node)) {
        if (shazbot_step(node, 0.2) != 0) {
            fail("loop", "shazbot_step failed");
            rc = 1;
            break;
        }
        if (stop_requested && !leaving) {
            leaving = 1;
            printf("c-host: leaving the cluster\n");
            fflush(stdout);
            shazbot_shutdown(node, NULL, NULL); /* finishes on the loop, bounded in time */
        }
    }
    shazbot_free(node);
    return rc;
}
