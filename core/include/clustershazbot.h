/* clustershazbot: a gossip engine that keeps a cluster of services aware of each other.
 *
 * The C API of a node; beside it, clustershazbot_lua.h (a node with Lua hooks),
 * clustershazbot_store.h (the master-list store) and clustershazbot_sim.h (the simulator).
 * The shape mirrors the original TypeScript library (shazbotStart,
 * shazbotShutDown, shazbotGossipRequest, shazbotListRequest, shazbotControlRequest): a host
 * routes the three endpoints of the protocol to the three request functions, which take the
 * Authorization header and the body and give back an HTTP status and a JSON body. The engine
 * runs its timers and peer transfers on a libevent loop, its own or the host's; it can also
 * serve the endpoints itself (shazbot_listen), which is what the `clustershazbot` program does.
 *
 * Threading: one node is used from one thread, the one that runs its loop.
 *
 * Typical use:
 *     char err[512];
 *     shazbot_settings *s = shazbot_settings_from_env(err, sizeof err);
 *     shazbot *node = s ? shazbot_new(s, NULL, err, sizeof err) : NULL;
 *     shazbot_settings_free(s);
 *     if (!node || shazbot_listen(node, NULL, 0, err, sizeof err) != 0) { ...err... }
 *     shazbot_start(node);
 *     shazbot_run(node, 1);       // until shutdown has finished; SIGTERM/SIGINT start it
 *     shazbot_free(node);
 */
#ifndef CLUSTERSHAZBOT_H
#define CLUSTERSHAZBOT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden symbols; what this header declares is its whole ABI. */
#pragma GCC visibility push(default)

#define SHAZBOT_VERSION "0.1.0"

struct event_base;
typedef struct shazbot shazbot;
typedef struct shazbot_settings shazbot_settings;

/* ---- settings ---------------------------------------------------------------------------
 * Named by the environment variables of the README (SHAZBOT_SECRET, SHAZBOT_GOSSIP_INTERVAL,
 * HAPPY_SECRET, ...). Every error message names the variable and the bad value. */

/* Defaults only; the required variables still have to be set. */
shazbot_settings *shazbot_settings_new(void);
/* Every known variable from the environment; NULL and a message if one is missing or bad. */
shazbot_settings *shazbot_settings_from_env(char *err, size_t err_len);
/* Returns 0, or -1 with a message when the name is unknown or the value malformed (the
 * settings are then unchanged). */
int shazbot_settings_set(shazbot_settings *s, const char *name, const char *value, char *err,
                         size_t err_len);
void shazbot_settings_free(shazbot_settings *s);

/* ---- lifecycle --------------------------------------------------------------------------- */

/* Creates a node from complete settings (copied). `base`: the host's libevent loop, or NULL
 * for a loop of the node's own (then drive it with shazbot_step or shazbot_run). Loads the
 * policy script, if any. Returns NULL with a message on failure. Nothing runs yet. */
shazbot *shazbot_new(const shazbot_settings *s, struct event_base *base, char *err,
                     size_t err_len);

/* Serves the endpoints (gossip, list, control, /happy, /happy/quick) on host:port. host NULL
 * and port 0 take SHAZBOT_LISTEN, or else every interface (0.0.0.0 and [::]) on the port of the
 * base URL; a NULL host with a port means every interface too. Returns
 * 0, or -1 with a message. */
int shazbot_listen(shazbot *node, const char *host, int port, char *err, size_t err_len);

/* Starts the engine: master-list download (retried with backoff while it fails), bootstrap
 * gossip, gossip rounds, master-list announcements. Returns at once. Returns -1 when the node
 * was already started or has been shut down. */
int shazbot_start(shazbot *node);

/* Leaves the cluster: stops the timers, marks this node offline, tells the shutdown targets
 * and, if configured, uploads the master list. Returns at once; the work finishes on the loop
 * within a bounded time, after which shazbot_is_stopped() is true and `done` (if not NULL) is
 * called. Calling it again, or before start, does nothing and returns -1. */
int shazbot_shutdown(shazbot *node, void (*done)(void *arg), void *arg);

/* 1 once a shutdown has finished, else 0. */
int shazbot_is_stopped(const shazbot *node);
/* 1 between shazbot_start and the end of shutdown. */
int shazbot_is_running(const shazbot *node);

/* Runs the node's loop once, waiting at most `max_wait` seconds for something to do (0: do
 * what is ready and return). For nodes with a loop of their own. Returns 0, -1 on error. */
int shazbot_step(shazbot *node, double max_wait);

/* Runs the loop until shutdown has finished, shutting down gracefully on SIGTERM or SIGINT
 * when `handle_signals` is non-zero. Returns 0, -1 on error. */
int shazbot_run(shazbot *node, int handle_signals);

/* Frees everything; an unfinished shutdown is abandoned. */
void shazbot_free(shazbot *node);

struct event_base *shazbot_event_base(shazbot *node);

/* What a supervisor is told of a node (the serve command's systemd notifications). */
typedef struct shazbot_state {
    int master_list_loaded; /* its first download of the master list has succeeded */
    int leaving;            /* shutdown begun and not finished */
    size_t online, offline; /* records of each status, this node's own included */
} shazbot_state;
void shazbot_get_state(const shazbot *node, shazbot_state *out);

/* ---- requests ------------------------------------------------------------------------------
 * For hosts that route the endpoints themselves. `auth` is the Authorization header (NULL if
 * absent). The answer body is JSON, malloc'd, to be released with shazbot_response_free. */

typedef struct shazbot_response {
    int status;
    char *body;
    size_t body_len;
} shazbot_response;

/* POST {baseUrl}clustershazbot/gossip */
void shazbot_gossip_request(shazbot *node, const char *auth, const char *body, size_t body_len,
                            shazbot_response *out);
/* GET {baseUrl}clustershazbot/list (the offline list too when auth is the control secret) */
void shazbot_list_request(shazbot *node, const char *auth, shazbot_response *out);
/* POST {baseUrl}clustershazbot/control */
void shazbot_control_request(shazbot *node, const char *auth, const char *body,
                             size_t body_len, shazbot_response *out);
/* GET /happy (quick = 0) and GET /happy/quick (quick = 1); auth against HAPPY_SECRET. */
void shazbot_happy_request(shazbot *node, const char *auth, int quick, shazbot_response *out);
/* GET /metrics: Prometheus text format 0.0.4 (Content-Type "text/plain; version=0.0.4;
 * charset=utf-8") on 200, a JSON error otherwise; auth against HAPPY_SECRET. */
void shazbot_metrics_request(shazbot *node, const char *auth, shazbot_response *out);

void shazbot_response_free(shazbot_response *r);

/* ---- change events ----------------------------------------------------------------------------
 * Every change of a record's status is an event, numbered from 1 in the order this node saw it
 * (README, "Events"). `kind` is one of:
 *   "join"     a peer first learnt online          "alive"   a peer offline here is online again
 *   "failed"   this node moved the peer offline after its transfers failed
 *   "left"     the peer said itself it is offline (its goodbye, or its own answer)
 *   "offline"  learnt offline from another node    "purged"  an offline record forgotten
 *   "self"     this node's own status: control online/offline, shutdown, or a refutation
 * A record first learnt offline is no event; its purge, later, is. */
typedef struct shazbot_event {
    unsigned long long seq;
    const char *kind;
    const char *base_url;
    long long time_ms; /* this node's clock when it saw the change, ms since the epoch */
    /* The record before and after: has_* 0 when there was none (join) or is none (purged). */
    int has_before, before_online, before_monitor;
    long long before_last_update;
    int has_after, after_online, after_monitor;
    long long after_last_update;
    /* The whole event as one line of JSON: {"seq":..,"kind":..,"baseUrl":..,"time":..,
     * "before":{"status":"online","lastUpdate":..,"monitor":false}|null,"after":...}. */
    const char *json;
} shazbot_event;

/* Called for each event as the engine derives it, after the Lua hook on_change; the event and
 * its strings are valid during the call only. Like a policy hook, it runs inside the engine:
 * it may read the node (shazbot_list_request) but must not step, shut down or free it. NULL
 * fn: no callback. One callback per node; a second call replaces the first. */
void shazbot_on_change(shazbot *node, void (*fn)(const shazbot_event *event, void *arg), void *arg);

/* The events after `after` the node still holds (the last 4096), at most 512 per call, for a
 * host that polls instead (the FFI binding): out->body is {"events":[...],"next":N,"missed":M},
 * `next` to pass the next time, `missed` how many were lost past the ring. status 200. */
void shazbot_events(shazbot *node, unsigned long long after, shazbot_response *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
