/* A C host: a node with a loop of its own, configured from the environment, that serves the
 * endpoints itself and leaves the cluster on SIGTERM or SIGINT. Build against an installed
 * clustershazbot:
 *
 *     cc main.c $(pkg-config --cflags --libs clustershazbot) -o c-host
 */
#include <clustershazbot.h>
#include <stdio.h>

int main(void) {
    char err[512];
    shazbot_settings *settings = shazbot_settings_from_env(err, sizeof err);
    if (!settings) {
        fprintf(stderr, "c-host: %s\n", err);
        return 2;
    }
    /* A host may also set values itself, by the names of the environment variables. */
    if (shazbot_settings_set(settings, "SHAZBOT_LOG_LEVEL", "warn", err, sizeof err) != 0) {
        fprintf(stderr, "c-host: %s\n", err);
        return 2;
    }
    shazbot *node = shazbot_new(settings, NULL, err, sizeof err);
    shazbot_settings_free(settings);
    if (!node) {
        fprintf(stderr, "c-host: %s\n", err);
        return 2;
    }
    if (shazbot_listen(node, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "c-host: %s\n", err);
        shazbot_free(node);
        return 1;
    }
    shazbot_start(node);
    printf("c-host: node running; SIGTERM leaves the cluster\n");
    fflush(stdout);
    int rc = shazbot_run(node, 1);
    shazbot_free(node);
    return rc == 0 ? 0 : 1;
}
