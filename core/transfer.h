/* transfer: the real node's transport (driver.h): asynchronous HTTP requests to peers and to
 * the master-list store, on libcurl's multi interface driven by the node's libevent loop (the
 * pattern of curl's hiperfifo.c). Nothing here blocks: a request is started, and its callback
 * runs later from the loop with the status and body. Many requests run at once over reused
 * connections. */
#ifndef SHAZBOT_TRANSFER_H
#define SHAZBOT_TRANSFER_H

#include "config.h"
#include "driver.h"

struct event_base;
typedef struct transfer_pool transfer_pool;

/* `max_response` bounds the bytes kept of an answer (decoded: a compressed one too); a
 * longer one fails the transfer. `compression`: the best coding of gossip bodies and of the
 * answers asked for (SHAZBOT_COMPRESSION); `log_limit`: the node's log level. */
transfer_pool *transfer_pool_new(struct event_base *base, size_t max_response, codec_kind compression,
                                 log_level log_limit);
/* TLS for every later transfer: a CA file (CURLOPT_CAINFO), a client certificate and key,
 * a pinned public key; NULL leaves curl's default. Copies them; false when out of memory,
 * the pool then unchanged. */
bool transfer_pool_tls(transfer_pool *pool, const char *ca, const char *cert, const char *key, const char *pin);
/* Cancels whatever is under way; their callbacks are not called. */
void transfer_pool_free(transfer_pool *pool);

/* Starts a request (engine_transport.start). The callback may start other requests but must
 * not free the pool. */
bool transfer_start(transfer_pool *pool, const transfer_request *req, transfer_done_fn done,
                    void *arg);

/* The pool as the engine's transport. */
engine_transport transfer_transport(transfer_pool *pool);

#endif
