/* clustershazbot store: the master-list store of the core (clustershazbot_store.h) from the
 * command line. This file reads the arguments; the store itself is in core/store.c. */
#include "cli.h"
#include "clustershazbot_store.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const store_usage =
    "usage: clustershazbot store --listen HOST:PORT --file PATH [--auth VALUE]\n"
    "\n"
    "Serves the master list kept in PATH at every path: GET reads it, PUT replaces it.\n"
    "PUT needs the Authorization header to equal VALUE (default: the environment's\n"
    "SHAZBOT_MASTER_LIST_UPDATE_AUTH) and a body of the form {\"online\":[...]}.\n"
    "Answers carry an ETag; a PUT whose If-Match no longer matches gets 412.\n"
    "HOST:PORT may be [IPv6]:PORT, or :PORT for every interface (IPv4 and IPv6).\n"
    "A request must arrive within SHAZBOT_REQUEST_TIMEOUT seconds (default 20) of its first\n"
    "byte, plus one for every 16 KiB it carries.\n"
    "Stops on SIGTERM or SIGINT.\n";

int cli_store(int argc, char **argv) {
    if (cli_wants_help(argc, argv, store_usage)) return 0;
    shazbot_store_options o = {.auth = getenv("SHAZBOT_MASTER_LIST_UPDATE_AUTH"),
                               .request_timeout = getenv("SHAZBOT_REQUEST_TIMEOUT")};
    for (int i = 1; i < argc; i++) {
        const char **target = strcmp(argv[i], "--listen") == 0 ? &o.listen
                              : strcmp(argv[i], "--file") == 0 ? &o.file
                              : strcmp(argv[i], "--auth") == 0 ? &o.auth
                                                                : NULL;
        if (!target || i + 1 >= argc) {
            fprintf(stderr, "clustershazbot store: %s '%s'\n%s",
                    target ? "missing value after" : "unknown option", argv[i], store_usage);
            return 2;
        }
        *target = argv[++i];
    }
    char err[1024];
    shazbot_store *store = shazbot_store_new(&o, err, sizeof err);
    if (!store) {
        fprintf(stderr, "clustershazbot store: %s\n%s", err, store_usage);
        return 2;
    }
    cli_raise_fd_limit();
    int rc = 0;
    if (shazbot_store_serve(store, err, sizeof err) != 0) {
        fprintf(stderr, "clustershazbot store: %s\n", err);
        rc = 1;
    } else if (shazbot_store_run(store) != 0) {
        fprintf(stderr, "clustershazbot store: the event loop failed\n");
        rc = 1;
    }
    shazbot_store_free(store);
    return rc;
}
