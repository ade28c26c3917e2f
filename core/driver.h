/* driver: the two small interfaces the engine's protocol logic runs on, so that the same code
 * runs a real node (libevent timers, libcurl transfers: evclock.c, transfer.c) and the
 * simulator's virtual nodes (virtual time, a virtual network: sim.c), and the engine's unit
 * tests (a clock and a transport scripted by the test).
 *
 * Both are asynchronous in the same way: nothing the engine asks of them calls back into the
 * engine before the call returns. A timer fires, and a transfer's answer arrives, later, from
 * the driver's loop. That is what lets the engine keep its state simple: it never re-enters
 * itself. */
#ifndef SHAZBOT_DRIVER_H
#define SHAZBOT_DRIVER_H

#include "membership.h"
#include "shared_body.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the clock ------------------------------------------------------------------------- */

typedef struct engine_timer engine_timer; /* the driver's */
typedef void (*engine_timer_fn)(void *arg);

typedef struct engine_clock {
    void *ctx;
    /* Wall-clock milliseconds since the Unix epoch: what lastUpdate values are made of. */
    int64_t (*now_ms)(void *ctx);
    /* A stopped timer that calls fire(arg) each time it runs out; NULL when out of memory. */
    engine_timer *(*timer_new)(void *ctx, engine_timer_fn fire, void *arg);
    /* (Re)starts the timer: it fires once, `seconds` from now (0 <= seconds, already
     * clamped by the engine), unless armed again or stopped before. */
    void (*timer_arm)(void *ctx, engine_timer *t, double seconds);
    void (*timer_stop)(void *ctx, engine_timer *t);
    void (*timer_free)(void *ctx, engine_timer *t); /* NULL is fine */
} engine_clock;

/* ---- the transport ---------------------------------------------------------------------- */

typedef struct transfer_result {
    bool ok;          /* the exchange completed (any HTTP status) */
    long status;      /* HTTP status, 0 when !ok */
    const char *body; /* NUL-terminated; valid during the callback only */
    size_t body_len;
    const char *error; /* what went wrong when !ok */
    bool too_large;    /* !ok because the answer was over the limit: the peer did answer */
    const char *etag;  /* the answer's ETag header, NULL if none */
    /* From a transport that carries records (engine_transport.carries_records): the answer's
     * records, in place of a JSON body, valid during the callback only. */
    const member_update *records;
    size_t record_count;
} transfer_result;

typedef void (*transfer_done_fn)(void *arg, const transfer_result *result);

/* The header that names a gossip message's sender: an addition to PROTOCOL.md that nodes of
 * the original library ignore (and do not send). */
#define ENGINE_SENDER_HEADER "Clustershazbot-From"

typedef struct transfer_request {
    const char *method; /* "GET", "POST" or "PUT" */
    const char *url;
    const char *authorization; /* NULL: no Authorization header */
    const char *if_match;      /* NULL: no If-Match header */
    /* The sender's base URL, as the Clustershazbot-From header (NULL: none): what a message
     * says of its sender is the sender's own word (engine.c, "third parties confirm"). */
    const char *sender;
    const char *body;          /* copied; NULL for none */
    size_t body_len;
    /* In place of body: bytes the transport holds a reference to (shared_body_ref) for as
     * long as it needs them, not a copy. What a fan-out sends, one body for every target. */
    shared_body *shared;
    long timeout_ms;
    /* Straight to the URL, past any proxy the environment names (http_proxy, ALL_PROXY...):
     * set for peers, which are the cluster's own servers. Unset, libcurl's usual rules apply,
     * which a master list on another network may need. */
    bool direct;
    /* A peer's gossip: the transport may send the body compressed, in a coding the peer takes
     * (transfer.c says how it learns which). Unset, the body goes as it is. */
    bool compressible;
    /* For a transport that carries records: a gossip message is this state, in place of its
     * JSON body (which is then not written). */
    const membership *records;
} transfer_request;

/* The bytes of a request's body, whichever way it was given (NULL, 0 for none). */
static inline const char *transfer_request_body(const transfer_request *req, size_t *len) {
    *len = req->shared ? shared_body_len(req->shared) : req->body_len;
    return req->shared ? shared_body_data(req->shared) : req->body;
}

typedef struct engine_transport {
    void *ctx;
    /* Starts a request; `done` is called exactly once, later, with the answer or the failure
     * (a timeout included), unless the transport is freed first. Returns false, and will call
     * nothing, when the request could not even be started. */
    bool (*start)(void *ctx, const transfer_request *req, transfer_done_fn done, void *arg);
    /* Gossip goes as records rather than JSON (the simulator: the merge rules and every
     * decision are the same, only the serialisation is skipped, which is most of the cost
     * of a round once a cluster has thousands of members). */
    bool carries_records;
} engine_transport;

#endif
