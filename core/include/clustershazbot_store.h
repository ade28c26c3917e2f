/* clustershazbot's master-list store: what `clustershazbot store` runs, so that a cluster needs
 * nothing else to start. It serves one list at every path: GET reads it, PUT replaces it when
 * the Authorization header matches and the body is a master list. Answers carry an ETag, and a
 * PUT whose If-Match no longer matches gets 412, so that announcing nodes merge and retry
 * instead of overwriting each other. The file is replaced atomically: a crash leaves the old
 * list or the new one. The store's listener is the node's: the same limits, request deadlines,
 * accept() pauses and JSON errors.
 *
 * Typical use:
 *     char err[512];
 *     shazbot_store_options o = {.listen = "127.0.0.1:7400", .file = "list.json", .auth = "Bearer x"};
 *     shazbot_store *store = shazbot_store_new(&o, err, sizeof err);      // NULL: bad options
 *     if (!store || shazbot_store_serve(store, err, sizeof err) != 0) { ...err... }
 *     shazbot_store_run(store);   // until SIGTERM or SIGINT
 *     shazbot_store_free(store);
 */
#ifndef CLUSTERSHAZBOT_STORE_H
#define CLUSTERSHAZBOT_STORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef struct shazbot_store shazbot_store;

typedef struct shazbot_store_options {
    /* "host:port", "[v6]:port", or ":port" for every interface (IPv4 and IPv6). */
    const char *listen;
    /* The file that keeps the list; until the first PUT, a missing one is an empty list. */
    const char *file;
    /* The Authorization header that a PUT must carry, whole (scheme word included). */
    const char *auth;
    /* Seconds a request may take from its first byte, plus one for every 16 KiB, written as
     * SHAZBOT_REQUEST_TIMEOUT is (and checked the same way); NULL: that variable's default. */
    const char *request_timeout;
} shazbot_store_options;

/* Checks the options (copied) and sets the store up; nothing is read or served yet. NULL with
 * a message naming the option (by its field's name: `listen: "x" is not host:port ...`,
 * `auth: missing`; SHAZBOT_REQUEST_TIMEOUT for request_timeout) when one is missing or
 * malformed. */
shazbot_store *shazbot_store_new(const shazbot_store_options *o, char *err, size_t err_len);

/* Reads the file (removing first the temp files that stores killed while writing left beside
 * it), then listens. Returns 0, or -1 with a message: a file that cannot be read or is not a
 * master list, an address that cannot be bound. */
int shazbot_store_serve(shazbot_store *s, char *err, size_t err_len);

/* Serves until SIGTERM or SIGINT. Returns 0, -1 on error. */
int shazbot_store_run(shazbot_store *s);

/* Closes the listener and every connection. NULL is fine. */
void shazbot_store_free(shazbot_store *s);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
