/* node: the state of a node, in two layers.
 *
 * `struct engine` is what the protocol logic (engine.c) and the request handlers (requests.c)
 * work on: the settings, the membership, the policy, the two drivers (driver.h), and one
 * sub-structure per activity of the engine. It knows nothing of libevent or libcurl, which is
 * what lets the simulator (sim.c) and the unit tests run it on virtual time.
 *
 * `struct shazbot` is the real node of the public API (shazbot.c): an engine plus what drives
 * it for real: a libevent loop, libcurl transfers, its own HTTP listener, signals. */
#ifndef SHAZBOT_NODE_H
#define SHAZBOT_NODE_H

#include "clustershazbot.h"
#include "config.h"
#include "driver.h"
#include "events.h"
#include "membership.h"
#include "policy.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { NODE_CREATED, NODE_RUNNING, NODE_STOPPING, NODE_STOPPED } node_state;

/* The gossip round: one peer, a retry, then the verdict. */
typedef struct node_round {
    engine_timer *timer;       /* the next round */
    engine_timer *retry_timer; /* the one retry after a failure */
    char *peer;                /* the peer of the round under way, NULL between rounds */
    bool retried;              /* its one retry has been used */
    int64_t last_push_ms;      /* the last verdict pushed to more peers (engine.c) */
    engine_timer *watch_timer; /* looks at a spared peer again (engine.c, watch_spared) */
    char *watched;             /* that peer, NULL when none */
    int64_t watched_heard_ms;  /* its heard_ms when it was spared */
    uint64_t spared;           /* verdicts withheld: peers others still heard from (engine.c) */
} node_round;

/* Probes of offline peers, beside the rounds (engine.c). */
typedef struct node_probe {
    char *peer; /* the probe under way, NULL when none */
} node_probe;

/* Offline claims held back until confirmed (engine.c, "third parties confirm"): a peer that
 * some other node moved offline, asked directly before this node believes it. */
#define ENGINE_CONFIRMS 4
struct engine;
typedef struct node_confirm {
    struct engine *e;
    char *peer;              /* the peer claimed offline; NULL: a free slot */
    int64_t claimed;         /* the newest claim's lastUpdate */
    bool asked;              /* its confirmation is under way */
} node_confirm;

typedef struct node_confirms {
    node_confirm slot[ENGINE_CONFIRMS];
    uint64_t refuted, confirmed; /* claims a live peer answered, claims applied after a failure */
} node_confirms;

/* One message to many targets (bootstrap, shutdown): one body for all of them, at most
 * ENGINE_FANOUT_CONCURRENCY transfers at once, the others waiting their turn in the
 * policy's order. */
typedef struct node_fanout {
    char **queue;       /* the targets' URLs; those from `next` on are still to start */
    size_t count;       /* targets */
    size_t next;        /* the first not started yet; == count once none is left to start */
    size_t active;      /* started and not answered yet */
    size_t sent;        /* started */
    shared_body *body;  /* the message (NULL for a transport that carries records) */
    int64_t ends_ms;    /* every transfer ends by then (engine_now); 0: no deadline */
    bool ended;         /* its end has been reported */
} node_fanout;

/* The master list's first download, retried with backoff until it succeeds, then the
 * bootstrap gossip. */
typedef struct node_bootstrap {
    engine_timer *retry_timer;
    double backoff; /* seconds before the next try */
    node_fanout fanout;
    bool loaded; /* the master list's first download succeeded */
} node_bootstrap;

/* Master-list announcements: GET, merge, PUT with If-Match, again on a conflict. */
typedef struct node_announcer {
    engine_timer *timer;
    int conflicts; /* within one announcement */
    bool busy;
} node_announcer;

/* Leaving: goodbyes, bounded in time, then the optional last announcement. */
typedef struct node_shutdown {
    engine_timer *deadline;
    node_fanout fanout; /* the goodbyes */
    bool goodbyes_done, announced;
    int64_t planned_end_ms; /* when the node will have stopped, at the latest (/happy) */
    void (*done)(void *);
    void *done_arg;
} node_shutdown;

/* Answers per second over the last four minutes, for the happy-style figures (the mean of
 * the last 10 complete seconds, and of the last 3 complete minutes: requests.c), and every
 * answer since the start by class, for /metrics. */
#define STATS_SECONDS 240
typedef struct node_stats {
    int64_t second[STATS_SECONDS]; /* which epoch second each slot counts */
    uint32_t requests[STATS_SECONDS], fails[STATS_SECONDS], errors[STATS_SECONDS];
    uint64_t answered[6]; /* by status / 100 (1xx to 5xx; 0: any other) */
} node_stats;

/* What the engine counts for /metrics (metrics.c writes them). Each is a counter since the
 * engine was made, bumped where the engine decides: nothing here costs more than an add. */

/* The transfers this node starts, by what they are for. */
typedef enum {
    TRANSFER_ROUND,       /* a gossip round's first try */
    TRANSFER_RETRY,       /* its one retry */
    TRANSFER_PROBE,       /* our state to an offline peer */
    TRANSFER_CONFIRM,     /* asking a peer claimed offline */
    TRANSFER_PUSH,        /* a verdict pushed to more peers */
    TRANSFER_BOOTSTRAP,   /* the hello after the master list */
    TRANSFER_SHUTDOWN,    /* the goodbyes */
    TRANSFER_MASTER_LIST, /* the master list's first download */
    TRANSFER_ANNOUNCE,    /* an announcement's GET or PUT */
    TRANSFER_KINDS
} transfer_kind;

/* How a transfer ended: a 2xx answer; another status or an answer over the limit; no answer. */
typedef enum { OUTCOME_OK, OUTCOME_STATUS, OUTCOME_FAILED, OUTCOME_KINDS } transfer_outcome;

/* How a gossip round ended. */
typedef enum {
    ROUND_OK,          /* answered at the first try */
    ROUND_RETRIED_OK,  /* answered at the retry */
    ROUND_TOO_LARGE,   /* alive, but the states are too large for one of the two */
    ROUND_SPARED,      /* failed twice, kept online: others heard from the peer lately */
    ROUND_OFFLINE,     /* failed twice: the peer moved offline */
    ROUND_NO_PEER,     /* no online peer to talk to */
    ROUND_ABORTED,     /* the node left meanwhile */
    ROUND_RESULTS
} round_result;

/* Upper bounds of the round duration histogram, in seconds; a last bucket, +Inf, beyond. */
#define ROUND_BUCKETS 11
#define ROUND_BUCKET_BOUNDS {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

typedef enum { ANNOUNCE_OK, ANNOUNCE_SKIPPED, ANNOUNCE_FAILED, ANNOUNCE_RESULTS } announce_result;

typedef struct node_metrics {
    uint64_t transfers[TRANSFER_KINDS][OUTCOME_KINDS];
    uint64_t bytes_sent, bytes_received; /* bodies of our transfers, plain (before coding) */
    uint64_t rounds[ROUND_RESULTS];
    uint64_t round_buckets[ROUND_BUCKETS + 1]; /* not cumulative: metrics.c adds them up */
    double round_seconds;                      /* the histogram's sum */
    int64_t round_started_ms;                  /* of the round under way */
    uint64_t master_list_fetches[2];           /* failed, ok */
    uint64_t announcements[ANNOUNCE_RESULTS];
    uint64_t announce_conflicts;               /* 412 answers, merged and written again */
    uint64_t verdicts;                         /* peers moved offline after failing twice */
} node_metrics;

/* Who wants to know what the engine decided, besides its state (the simulator counts verdicts
 * here). Called synchronously; must not call back into the engine. */
typedef struct engine_observer {
    void *ctx;
    /* This node moved `url` offline after its transfers failed twice. */
    void (*peer_failed)(void *ctx, const char *url);
} engine_observer;

/* Change events (events.h), derived in one place: engine.c, on_member_change. */
typedef enum { EVENT_CAUSE_MERGE, EVENT_CAUSE_VERDICT, EVENT_CAUSE_CLAIM } event_cause;
typedef struct node_events {
    event_ring ring;
    event_cause cause;   /* what the change under way comes from */
    const char *speaker; /* the node whose own word is being merged (its goodbye, its answer), or NULL */
    void (*host_fn)(const shazbot_event *event, void *arg); /* the host's callback (shazbot_on_change) */
    void *host_arg;
    /* Told after each event, for the listener's waiting watchers (http.c); may be NULL. */
    void (*notify)(void *ctx);
    void *notify_ctx;
} node_events;

typedef struct engine {
    shazbot_settings cfg;
    engine_clock clock;
    engine_transport transport;
    membership *m;
    policy *pol;
    node_state state;
    node_round round;
    node_probe probe;
    node_confirms confirms;
    node_bootstrap bootstrap;
    node_announcer announcer;
    node_shutdown shutdown;
    node_stats stats;
    node_metrics metrics;
    engine_observer observer;
    node_events events;
} engine;

/* The node's own HTTP listener (http.c). */
struct events_waiting;
typedef struct node_listener {
    struct http_server *server; /* NULL until the node listens */
    struct events_waiting *waiting; /* GET clustershazbot/events held until an event (http.c) */
    char *base_path;            /* the path of the base URL ("/" or "/prefix/"), under which the endpoints lie */
} node_listener;

struct shazbot {
    engine e;
    struct event_base *base;
    bool own_base;
    struct evclock *clock; /* the engine's clock, on base */
    struct transfer_pool *pool; /* the engine's transport, on base */
    node_listener listener;
    struct event *sigterm, *sigint, *sighup;
    engine_timer *step_timer; /* ends the wait of shazbot_step */
    void (*shutdown_done)(void *); /* the host's, called after ours */
    void *shutdown_arg;
};

#endif
