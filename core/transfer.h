/* transfer: asynchronous HTTP requests to peers and to the master-list store, on libcurl's
 * multi interface driven by the engine's libevent loop (the pattern of curl's hiperfifo.c).
 * Nothing here blocks: a request is started, and its callback runs later from the loop with
 * the status and body. Many requests run at once over reused connections. */
#ifndef SHAZBOT_TRANSFER_H
#define SHAZBOT_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
typedef struct transfer_pool transfer_pool;

typedef struct transfer_result {
    bool ok;         /* the exchange completed (any HTTP status) */
    long status;     /* HTTP status, 0 when !ok */
    const char *body; /* NUL-terminated; valid during the callback only */
    size_t body_len;
    const char *error; /* what went wrong when !ok */
    const char *etag;  /* the answer's ETag header, NULL if none */
} transfer_result;

typedef void (*transfer_done_fn)(void *arg, const transfer_result *result);

typedef struct transfer_request {
    const char *method; /* "GET", "POST" or "PUT" */
    const char *url;
    const char *authorization; /* NULL: no Authorization header */
    const char *if_match;      /* NULL: no If-Match header */
    const char *body;          /* copied; NULL for none */
    size_t body_len;
    long timeout_ms;
    /* Straight to the URL, past any proxy the environment names (http_proxy, ALL_PROXY...):
     * set for peers, which are the cluster's own servers. Unset, libcurl's usual rules apply,
     * which a master list on another network may need. */
    bool direct;
} transfer_request;

/* `max_response` bounds the bytes kept of an answer; a longer one fails the transfer. */
transfer_pool *transfer_pool_new(struct event_base *base, size_t max_response);
/* Cancels whatever is under way; their callbacks are not called. */
void transfer_pool_free(transfer_pool *pool);

/* Starts a request. Returns false (and calls nothing) if it could not even be started. The
 * callback may start other requests but must not free the pool. */
bool transfer_start(transfer_pool *pool, const transfer_request *req, transfer_done_fn done,
                    void *arg);

#endif
