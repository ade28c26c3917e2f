/* engine: the node itself (struct shazbot), shared by the lifecycle and timers (engine.c), the
 * request handlers (requests.c) and the evhttp adapter (http.c). Not a public header. */
#ifndef SHAZBOT_ENGINE_H
#define SHAZBOT_ENGINE_H

#include "buf.h"
#include "clustershazbot.h"
#include "config.h"
#include "http.h"
#include "membership.h"
#include "policy.h"
#include "transfer.h"
#include "wire.h"

#include <stdint.h>

typedef enum { NODE_CREATED, NODE_RUNNING, NODE_STOPPING, NODE_STOPPED } node_state;

/* Answers per second over the last minute, for the happy-style figures. */
#define STATS_SECONDS 60
typedef struct request_stats {
    int64_t second[STATS_SECONDS]; /* which epoch second each slot counts */
    uint32_t requests[STATS_SECONDS], fails[STATS_SECONDS], errors[STATS_SECONDS];
} request_stats;

struct shazbot {
    shazbot_settings cfg;
    struct event_base *base;
    bool own_base;
    membership *m;
    policy *pol;
    transfer_pool *pool;
    node_listener listener;
    node_state state;

    struct event *gossip_timer, *gossip_retry_timer, *announce_timer, *master_retry_timer;
    struct event *shutdown_deadline, *sigterm, *sigint, *step_timer;
    char *round_peer; /* the peer of the gossip round under way, NULL between rounds */
    bool round_retried; /* its one retry has been used */
    double master_backoff;
    int announce_attempts; /* within one announcement, for If-Match conflicts */
    bool announcing;
    size_t shutdown_pending; /* goodbyes not answered yet */
    bool goodbyes_done, shutdown_announced;
    void (*shutdown_done)(void *);
    void *shutdown_arg;

    request_stats stats;
};

int64_t engine_now_ms(void);

/* Handlers shared by the C API and evhttp: write the answer body into `out`, return the HTTP
 * status. */
int requests_gossip(shazbot *node, const char *auth, const wire_chunk *body, size_t chunks, buf *out);
int requests_list(shazbot *node, const char *auth, buf *out);
int requests_control(shazbot *node, const char *auth, const wire_chunk *body, size_t chunks,
                     buf *out);
int requests_happy(shazbot *node, const char *auth, bool quick, buf *out);
/* Counts one answer of `status` in the per-second figures. */
void requests_count(shazbot *node, int status);

#endif
