/* sim: `clustershazbot simulate` (clustershazbot_sim.h).
 *
 * Every virtual node is a real engine (engine.c) with its own policy state (policy.c) and
 * membership, on one virtual clock (vclock.c). The engine's transport is the virtual network
 * below: a gossip POST travels for `latency`, is answered by the target's real request
 * handler (requests_gossip_records: the secret, the merge rules, the answer), and the answer
 * travels back. Gossip travels as records, not JSON (engine_transport.carries_records): the
 * wire format is the real nodes' business and has tests of its own, and writing and parsing
 * every body was most of the cost of a simulated round (a 5,000-node cluster exchanges 10,000
 * bodies of 5,000 records each per round). The bytes counted are what the JSON would weigh
 * (wire_list_size). The master list is a virtual store that answers GET with an ETag and honours
 * If-Match on PUT, as `clustershazbot store` does.
 *
 * Faults, as a real network shows them to libcurl:
 *   a killed node       the request fails one round trip later (connection refused, as for a
 *                       process gone on its host)
 *   a partition, a lost message, a blocked link
 *                       the request fails when its timeout runs out (nothing comes back)
 *
 * Nodes are named http://127.0.0.1:PORT/ like a cluster on one machine, so that bodies have
 * the sizes of a real loopback cluster's; nothing is sent anywhere. */
#include "clustershazbot_sim.h"

#include "block_pool.h"
#include "engine.h"
#include "requests.h"
#include "store.h"
#include "vclock.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define SIM_BASE_PORT 10000
#define SIM_MAX_NODES 50000
#define SIM_STORE_URL "http://127.0.0.1:9999/list.json"
/* Virtual time starts at 2026-01-01T00:00:00Z whatever the date: a seed is a run. */
#define SIM_EPOCH_MS 1767225600000LL
#define SIM_SECRET "sim-secret"
#define SIM_STORE_AUTH "sim-store"

typedef enum { PROC_NOT_STARTED, PROC_RUNNING, PROC_LEAVING, PROC_GONE } proc_state;

#define SPARE_BLOCKS 64

typedef struct sim sim;

/* A state as it was when sent: records with their URLs copied, in one block. */
typedef struct snapshot {
    member_update *records;
    size_t count;
    size_t capacity; /* bytes of the block */
} snapshot;


typedef struct sim_node {
    sim *s;
    int index;
    char url[40];
    engine e;
    bool engine_ready;
    proc_state proc;
    int group; /* side of a partition */
} sim_node;

/* What one phase measured. */
typedef struct phase_result {
    char name[32];
    char what[256];   /* the outcome in words */
    bool reached;     /* its goal (converged, detected, healed) within max_wait */
    double seconds;   /* to the goal, or the phase's length when it has none */
    double detected_seconds; /* kill/leave: agreed detection; < 0 when not */
    uint64_t verdicts, flaps;
    double bytes_per_node_round;
} phase_result;

struct sim {
    const shazbot_sim_options *o;
    vclock *clock;
    sim_node *nodes;
    int n;
    uint64_t rng;
    /* the network's faults */
    bool partitioned;
    double loss;
    int blocked_from, blocked_to; /* an asymmetric link, -1 when none */
    /* the master-list store */
    buf store_list;
    char store_etag[STORE_ETAG_SIZE];
    /* nodes that should be seen offline: killed, leaving or gone */
    int *down;
    int down_count;
    /* counters, reset by each phase */
    uint64_t bytes, verdicts, flaps;
    double live_node_seconds; /* integral of the live count over time, for bytes per round */
    FILE *csv;
    int64_t next_csv_us;
    snapshot spare[SPARE_BLOCKS];
    size_t spare_count;
    block_pool *lua_blocks; /* the small blocks of every node's policy state */
};

/* ---- randomness: one stream, seeded, so that a seed is a run ----------------------------- */

static uint64_t next_random(sim *s) {
    /* xorshift64*: small, fast, and good enough to pick peers and drop messages. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

static double random_unit(sim *s) { return (double)(next_random(s) >> 11) / 9007199254740992.0; }

static double now_s(const sim *s) { return (double)vclock_now_us(s->clock) / 1e6; }

/* ---- the virtual network ------------------------------------------------------------------ */

/* Blocks of finished snapshots, for the next ones: a snapshot of a large cluster is hundreds
 * of kilobytes, which malloc would map and unmap for every message (a fifth of the run time
 * went to it). Few messages are in flight at once, so a few blocks serve them all. */
static void snapshot_release(sim *s, snapshot *sn) {
    if (!sn->records) return;
    if (s->spare_count < SPARE_BLOCKS) s->spare[s->spare_count++] = *sn;
    else free(sn->records);
    *sn = (snapshot){0};
}

static void *block_for(sim *s, size_t bytes, size_t *capacity) {
    for (size_t i = s->spare_count; i-- > 0;) {
        if (s->spare[i].capacity >= bytes) {
            void *block = s->spare[i].records;
            *capacity = s->spare[i].capacity;
            s->spare[i] = s->spare[--s->spare_count];
            return block;
        }
    }
    *capacity = bytes + bytes / 4; /* room for the cluster to grow */
    return malloc(*capacity);
}

static void spare_blocks_free(sim *s) {
    while (s->spare_count > 0) free(s->spare[--s->spare_count].records);
}

static bool snapshot_take(sim *s, const membership *m, snapshot *out) {
    size_t url_bytes = 0;
    for (size_t i = 0; i < m->count; i++) url_bytes += m->members[i]->url_len + 1;
    size_t capacity;
    member_update *u = block_for(s, m->count * sizeof *u + url_bytes, &capacity);
    if (!u) return false;
    char *urls = (char *)(u + m->count);
    for (size_t i = 0; i < m->count; i++) {
        const member *r = m->members[i];
        memcpy(urls, r->base_url, r->url_len + 1);
        u[i] = (member_update){.e = {.base_url = urls, .url_len = r->url_len, .monitor = r->monitor,
                                     .last_update = r->last_update, .last_update_ok = true},
                               .status = r->status};
        urls += r->url_len + 1;
    }
    *out = (snapshot){u, m->count, capacity};
    return true;
}

typedef struct message {
    sim *s;
    sim_node *from;
    int to; /* node index, or -1 for the store */
    transfer_done_fn done;
    void *arg;
    const char *method;
    char *authorization, *if_match, *body, *sender;
    size_t body_len;
    snapshot sent, answered; /* gossip as records */
    int64_t deadline_us; /* when the sender's timeout runs out */
    /* the answer */
    bool ok;
    long status;
    buf answer;
    char etag[24];
    const char *error;
} message;

static void message_free(message *msg) {
    free(msg->authorization);
    free(msg->sender);
    free(msg->if_match);
    free(msg->body);
    snapshot_release(msg->s, &msg->sent);
    snapshot_release(msg->s, &msg->answered);
    buf_free(&msg->answer);
    free(msg);
}

static bool running(const sim_node *n) { return n->proc == PROC_RUNNING || n->proc == PROC_LEAVING; }

/* Whether a message from node `from` reaches node `to` now (-1: the store, which every node
 * reaches: it stands for a service outside the cluster's network). */
static bool link_up(sim *s, int from, int to) {
    if (to < 0 || from < 0) return true;
    if (s->partitioned && s->nodes[from].group != s->nodes[to].group) return false;
    if ((from == s->blocked_from && to == s->blocked_to) || (from == s->blocked_to && to == s->blocked_from))
        return false;
    if (s->loss > 0 && random_unit(s) < s->loss) return false;
    return true;
}

static void deliver(void *arg) {
    message *msg = arg;
    /* A process that is gone reads no answers. */
    if (msg->from->proc != PROC_GONE) {
        transfer_result r = {.ok = msg->ok, .status = msg->status, .error = msg->error,
                             .body = msg->answer.data ? msg->answer.data : "", .body_len = msg->answer.len,
                             .etag = msg->etag[0] ? msg->etag : NULL, .records = msg->answered.records,
                             .record_count = msg->answered.count};
        msg->done(msg->arg, &r);
    }
    message_free(msg);
}

/* The answer (or the failure) travels back; past the sender's timeout it is a timeout. The
 * request's records are no longer needed by then: a message that waits for its timeout
 * (seconds, in a partition) would otherwise hold a copy of the sender's whole state. */
static void send_back(message *msg, bool lost) {
    sim *s = msg->s;
    snapshot_release(s, &msg->sent);
    int64_t at = vclock_now_us(s->clock) + (int64_t)(s->o->latency_ms * 1000);
    if (lost || at > msg->deadline_us) {
        msg->ok = false;
        msg->status = 0;
        msg->error = "Operation timed out";
        msg->answer.len = 0;
        snapshot_release(s, &msg->answered);
        at = msg->deadline_us;
    }
    vclock_after(s->clock, (double)(at - vclock_now_us(s->clock)) / 1e6, deliver, msg);
}

static void answer_from_store(message *msg) {
    sim *s = msg->s;
    msg->ok = true;
    if (strcmp(msg->method, "GET") == 0) {
        msg->status = 200;
        buf_add(&msg->answer, s->store_list.data, s->store_list.len);
        snprintf(msg->etag, sizeof msg->etag, "%s", s->store_etag);
    } else if ((msg->status = store_put_refusal(msg->authorization, SIM_STORE_AUTH, msg->if_match, s->store_etag))) {
        wire_write_error(&msg->answer, msg->status == 401 ? "wrong or missing Authorization" : "the list changed since it was read");
    } else {
        s->store_list.len = 0;
        buf_add(&s->store_list, msg->body, msg->body_len);
        store_etag(s->store_list.data, s->store_list.len, s->store_etag);
        msg->status = 200;
        buf_add_str(&msg->answer, "{\"success\":true}");
    }
}

static void arrive(void *arg) {
    message *msg = arg;
    sim *s = msg->s;
    if (msg->to < 0) {
        answer_from_store(msg);
        send_back(msg, false);
        return;
    }
    sim_node *target = &s->nodes[msg->to];
    if (!running(target)) {
        msg->ok = false;
        msg->error = "Connection refused";
        send_back(msg, false);
        return;
    }
    msg->ok = true;
    msg->status = requests_gossip_records(&target->e, msg->authorization, msg->sender, msg->sent.records, msg->sent.count, &msg->answer);
    if (msg->status == 200) {
        if (!snapshot_take(s, target->e.m, &msg->answered)) {
            msg->status = 500;
            buf_add_str(&msg->answer, "{\"error\":\"out of memory\"}");
        }
        s->bytes += wire_list_size(target->e.m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    }
    send_back(msg, !link_up(s, msg->to, msg->from->index));
}

/* The node a URL names: its index, -1 for the store, -2 for nothing known. */
static int resolve(const sim *s, const char *url) {
    if (strcmp(url, SIM_STORE_URL) == 0) return -1;
    static const char prefix[] = "http://127.0.0.1:";
    if (strncmp(url, prefix, sizeof prefix - 1) != 0) return -2;
    char *end;
    long index = strtol(url + sizeof prefix - 1, &end, 10) - SIM_BASE_PORT;
    if (*end != '/') return -2;
    return index >= 0 && index < s->n ? index : -2;
}

static bool sim_start(void *ctx, const transfer_request *req, transfer_done_fn done, void *arg) {
    sim_node *from = ctx;
    sim *s = from->s;
    message *msg = calloc(1, sizeof *msg);
    if (!msg) return false;
    size_t body_len;
    const char *body = transfer_request_body(req, &body_len);
    *msg = (message){.s = s, .from = from, .to = resolve(s, req->url), .done = done, .arg = arg,
                     .method = strcmp(req->method, "GET") == 0 ? "GET" : strcmp(req->method, "PUT") == 0 ? "PUT" : "POST",
                     .body_len = body_len,
                     .deadline_us = vclock_now_us(s->clock) + (int64_t)req->timeout_ms * 1000};
    msg->authorization = req->authorization ? strdup(req->authorization) : NULL;
    msg->sender = req->sender ? strdup(req->sender) : NULL;
    msg->if_match = req->if_match ? strdup(req->if_match) : NULL;
    msg->body = malloc(body_len + 1);
    if (!msg->body || (req->authorization && !msg->authorization) || (req->sender && !msg->sender) || (req->if_match && !msg->if_match)) {
        message_free(msg);
        return false;
    }
    memcpy(msg->body, body ? body : "", body_len);
    msg->body[body_len] = '\0';
    if (req->records) {
        if (!snapshot_take(s, req->records, &msg->sent)) {
            message_free(msg);
            return false;
        }
        s->bytes += wire_list_size(req->records, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    }
    if (msg->to == -2) {
        msg->error = "Could not resolve host";
        send_back(msg, false);
    } else if (!link_up(s, from->index, msg->to)) {
        send_back(msg, true);
    } else {
        vclock_after(s->clock, s->o->latency_ms / 1000, arrive, msg);
    }
    return true;
}

/* ---- the nodes ------------------------------------------------------------------------------ */

static void on_peer_failed(void *ctx, const char *url) {
    sim_node *n = ctx;
    sim *s = n->s;
    s->verdicts++;
    int target = resolve(s, url);
    if (target >= 0 && s->nodes[target].proc == PROC_RUNNING) s->flaps++;
}

static bool node_init(sim *s, sim_node *n, char *err, size_t err_len) {
    shazbot_settings cfg;
    config_init(&cfg);
    char interval[32], minimum[32], spread[32];
    snprintf(interval, sizeof interval, "%.17g", s->o->interval);
    snprintf(minimum, sizeof minimum, "%.17g", s->o->announce_minimum);
    snprintf(spread, sizeof spread, "%.17g", s->o->announce_interval);
    const char *settings[] = {"SHAZBOT_SECRET", SIM_SECRET, "SHAZBOT_CONTROL_SECRET", "sim-control",
                              "SHAZBOT_BASE_URL", n->url, "SHAZBOT_MASTER_LIST", SIM_STORE_URL,
                              "SHAZBOT_MASTER_LIST_UPDATE", SIM_STORE_URL,
                              "SHAZBOT_MASTER_LIST_UPDATE_AUTH", SIM_STORE_AUTH,
                              "SHAZBOT_GOSSIP_INTERVAL", interval, "SHAZBOT_MASTER_ANNOUNCE_MINIMUM", minimum,
                              "SHAZBOT_MASTER_ANNOUNCE_INTERVAL", spread, "SHAZBOT_LOG_LEVEL", "error", NULL};
    bool ok = true;
    for (size_t i = 0; ok && settings[i]; i += 2) ok = config_set(&cfg, settings[i], settings[i + 1], err, err_len);
    for (size_t i = 0; ok && s->o->settings && s->o->settings[i]; i++) {
        const char *item = s->o->settings[i], *eq = strchr(item, '=');
        char name[128];
        if (!eq || eq == item || (size_t)(eq - item) >= sizeof name) {
            snprintf(err, err_len, "--set: \"%s\" is not NAME=VALUE", item);
            ok = false;
            break;
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - item), item);
        ok = config_set(&cfg, name, eq + 1, err, err_len);
    }
    policy *pol = ok ? policy_new_pooled(s->o->policy, s->lua_blocks, err, err_len) : NULL;
    if (pol) {
        policy_seed_random(pol, s->o->seed * 1000003u + (uint64_t)n->index);
        engine_transport transport = {.ctx = n, .start = sim_start, .carries_records = true};
        ok = engine_init(&n->e, &cfg, vclock_clock(s->clock), transport, pol, err, err_len);
        n->engine_ready = true; /* to be destroyed, even when init failed */
        n->e.observer = (engine_observer){.ctx = n, .peer_failed = on_peer_failed};
    } else {
        ok = false;
    }
    config_free(&cfg);
    return ok;
}

static void start_node(void *arg) {
    sim_node *n = arg;
    n->proc = PROC_RUNNING;
    engine_start(&n->e);
}

static void on_left(void *arg) { ((sim_node *)arg)->proc = PROC_GONE; }

static void mark_down(sim *s, sim_node *n) { s->down[s->down_count++] = n->index; }

static int live_count(const sim *s) {
    int live = 0;
    for (int i = 0; i < s->n; i++) live += s->nodes[i].proc == PROC_RUNNING;
    return live;
}

/* `count` distinct running nodes, chosen at random, into `out`. Returns how many. */
static int pick_running(sim *s, int count, int *out) {
    int *pool = malloc((size_t)s->n * sizeof *pool), m = 0;
    if (!pool) return 0;
    for (int i = 0; i < s->n; i++)
        if (s->nodes[i].proc == PROC_RUNNING) pool[m++] = i;
    int picked = 0;
    for (; picked < count && m > 0; picked++) {
        int j = (int)(next_random(s) % (uint64_t)m);
        out[picked] = pool[j];
        pool[j] = pool[--m];
    }
    free(pool);
    return picked;
}

/* ---- what the cluster agrees on ------------------------------------------------------------ */

static bool listed_online(const sim_node *viewer, const sim_node *subject) {
    const member *r = membership_find(viewer->e.m, subject->url, strlen(subject->url));
    return r && r->status == MEMBER_ONLINE;
}

/* Every node of `set` (indexes) is not listed online by any running node. */
static bool agreed_down(const sim *s, const int *set, int count) {
    for (int i = 0; i < s->n; i++) {
        const sim_node *viewer = &s->nodes[i];
        if (viewer->proc != PROC_RUNNING) continue;
        for (int j = 0; j < count; j++)
            if (listed_online(viewer, &s->nodes[set[j]])) return false;
    }
    return true;
}

/* Every running node lists every running node online, and nothing else: its online count is
 * the number of running nodes and no node that is down is among them. Only once all have
 * started. */
static bool converged(const sim *s) {
    int live = live_count(s);
    for (int i = 0; i < s->n; i++) {
        const sim_node *viewer = &s->nodes[i];
        if (viewer->proc == PROC_NOT_STARTED) return false;
        if (viewer->proc != PROC_RUNNING) continue;
        if (membership_count(viewer->e.m, MEMBER_ONLINE) != (size_t)live) return false;
    }
    return agreed_down(s, s->down, s->down_count);
}

/* How many running nodes still hold any record of the nodes in `set`. */
static int holders(const sim *s, const int *set, int count) {
    int holding = 0;
    for (int i = 0; i < s->n; i++) {
        const sim_node *viewer = &s->nodes[i];
        if (viewer->proc != PROC_RUNNING) continue;
        for (int j = 0; j < count; j++) {
            const char *url = s->nodes[set[j]].url;
            if (membership_find(viewer->e.m, url, strlen(url))) {
                holding++;
                break;
            }
        }
    }
    return holding;
}

/* ---- time ------------------------------------------------------------------------------------ */

static void write_csv_rows(sim *s) {
    while (s->csv && vclock_now_us(s->clock) >= s->next_csv_us) {
        double t = (double)s->next_csv_us / 1e6;
        for (int i = 0; i < s->n; i++)
            if (s->nodes[i].proc == PROC_RUNNING)
                fprintf(s->csv, "%.3f,%d,%zu\n", t, i, membership_count(s->nodes[i].e.m, MEMBER_ONLINE));
        s->next_csv_us += (int64_t)(s->o->interval * 1e6);
    }
}

/* Runs the cluster for `seconds` of virtual time. */
static void advance(sim *s, double seconds) {
    int live_before = live_count(s);
    vclock_run_until(s->clock, vclock_now_us(s->clock) + (int64_t)(seconds * 1e6));
    /* The live count may change within the step (nodes start, leave): its mean. */
    s->live_node_seconds += (live_before + live_count(s)) / 2.0 * seconds;
    write_csv_rows(s);
}

/* How often agreement is looked at: to a tenth of a round, and at least every 0.25 s (so
 * that long intervals are timed as finely as a poller of a real cluster would). */
static double sample_step(const sim *s) { return s->o->interval / 10 < 0.25 ? s->o->interval / 10 : 0.25; }

/* Advances until `goal` holds or `max_wait` has passed; the seconds it took, or -1. */
static double wait_for(sim *s, bool (*goal)(sim *, void *), void *ctx, double max_wait) {
    double t0 = now_s(s);
    for (;;) {
        if (goal(s, ctx)) return now_s(s) - t0;
        if (now_s(s) - t0 >= max_wait) return -1;
        advance(s, sample_step(s));
    }
}

static bool goal_converged(sim *s, void *ctx) {
    (void)ctx;
    return converged(s);
}

typedef struct node_set {
    int *nodes;
    int count;
} node_set;

static bool goal_down(sim *s, void *ctx) {
    node_set *set = ctx;
    return agreed_down(s, set->nodes, set->count);
}

/* ---- the phases ------------------------------------------------------------------------------ */

static void phase_begin(sim *s, phase_result *r, const char *name) {
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->detected_seconds = -1;
    s->bytes = s->verdicts = s->flaps = 0;
    s->live_node_seconds = 0;
}

static void phase_end(sim *s, phase_result *r) {
    r->verdicts = s->verdicts;
    r->flaps = s->flaps;
    double node_rounds = s->live_node_seconds / s->o->interval;
    r->bytes_per_node_round = node_rounds > 0 ? (double)s->bytes / node_rounds : 0;
}

static void phase_converge(sim *s, phase_result *r) {
    phase_begin(s, r, "converge");
    for (int i = 0; i < s->n; i++)
        vclock_after(s->clock, s->n > 1 ? s->o->start_spread * i / (s->n - 1) : 0, start_node, &s->nodes[i]);
    double t = wait_for(s, goal_converged, NULL, s->o->max_wait + s->o->start_spread);
    r->reached = t >= 0;
    r->seconds = r->reached ? t : now_s(s);
    snprintf(r->what, sizeof r->what, "%s", r->reached ? "every node lists every node online" : "not converged");
    phase_end(s, r);
}

/* `count` running nodes, at random, stop dead (kill -9) or start leaving (SIGTERM). False
 * when out of memory. */
static bool remove_nodes(sim *s, int count, bool graceful, node_set *set) {
    set->nodes = malloc((size_t)count * sizeof(int));
    if (!set->nodes) return false;
    set->count = pick_running(s, count, set->nodes);
    for (int i = 0; i < set->count; i++) {
        sim_node *n = &s->nodes[set->nodes[i]];
        mark_down(s, n);
        if (graceful) {
            n->proc = PROC_LEAVING;
            engine_shutdown(&n->e, on_left, n);
        } else {
            n->proc = PROC_GONE;
            engine_halt(&n->e);
        }
    }
    return true;
}

/* Kill or make leave `count` running nodes; then wait for agreement and for the rest of the
 * cluster to converge. */
static void phase_remove(sim *s, phase_result *r, bool graceful, int count) {
    phase_begin(s, r, graceful ? "leave" : "kill");
    node_set set;
    if (!remove_nodes(s, count, graceful, &set)) return;
    double t = wait_for(s, goal_down, &set, s->o->max_wait);
    r->detected_seconds = t;
    double rest = t >= 0 ? wait_for(s, goal_converged, NULL, s->o->max_wait) : -1;
    r->reached = rest >= 0;
    r->seconds = r->reached ? t + rest : s->o->max_wait;
    snprintf(r->name, sizeof r->name, "%s %d", graceful ? "leave" : "kill", set.count);
    if (t < 0) snprintf(r->what, sizeof r->what, "not agreed within %.0f s", s->o->max_wait);
    else snprintf(r->what, sizeof r->what, "all agree in %.1f s (%.1f rounds)%s", t, t / s->o->interval,
                  r->reached ? "" : "; not converged");
    phase_end(s, r);
    free(set.nodes);
}

/* Of the views of running third parties (neither node of the cut link), how many list one
 * of its two nodes offline: sampled through an asymmetric fault, since those nodes are alive
 * and reachable for everyone else. */
static void sample_third_parties(sim *s, uint64_t *views, uint64_t *offline) {
    int pair[2] = {s->blocked_from, s->blocked_to};
    for (int i = 0; i < s->n; i++) {
        if (s->nodes[i].proc != PROC_RUNNING || i == pair[0] || i == pair[1]) continue;
        for (int k = 0; k < 2; k++) {
            const member *r = membership_find(s->nodes[i].e.m, s->nodes[pair[k]].url, strlen(s->nodes[pair[k]].url));
            ++*views;
            *offline += !r || r->status != MEMBER_ONLINE;
        }
    }
}

/* A fault for `seconds`, then the time the cluster takes to converge again. */
static void fault_then_heal(sim *s, phase_result *r, double seconds, void (*heal)(sim *)) {
    uint64_t views = 0, offline = 0;
    if (s->blocked_from >= 0) {
        for (double t = 0; t < seconds; t += sample_step(s)) {
            advance(s, sample_step(s) < seconds - t ? sample_step(s) : seconds - t);
            sample_third_parties(s, &views, &offline);
        }
    } else {
        advance(s, seconds);
    }
    uint64_t during = s->verdicts, flaps_during = s->flaps;
    heal(s);
    double t = wait_for(s, goal_converged, NULL, s->o->max_wait);
    r->reached = t >= 0;
    r->seconds = r->reached ? t : s->o->max_wait;
    uint64_t after = s->verdicts - during;
    if (views) {
        snprintf(r->what, sizeof r->what, "third parties listed the cut pair offline in %" PRIu64 " of %" PRIu64
                 " views (%.2f %%), %" PRIu64 " verdicts during, %s", offline, views, 100.0 * (double)offline / (double)views,
                 during, r->reached ? "healed after" : "not healed after");
        return;
    }
    if (r->reached)
        snprintf(r->what, sizeof r->what, "%" PRIu64 " verdicts during, healed in %.1f s (%.1f rounds), %" PRIu64 " after",
                 during, t, t / s->o->interval, after);
    else
        snprintf(r->what, sizeof r->what, "%" PRIu64 " verdicts during (%" PRIu64 " false), not healed within %.0f s",
                 during, flaps_during, s->o->max_wait);
}

static void heal_partition(sim *s) { s->partitioned = false; }
static void heal_loss(sim *s) { s->loss = 0; }
static void heal_link(sim *s) { s->blocked_from = s->blocked_to = -1; }

static void phase_partition(sim *s, phase_result *r) {
    phase_begin(s, r, "partition");
    /* Two halves, chosen at random among the running nodes. */
    int *order = malloc((size_t)s->n * sizeof *order);
    if (!order) return;
    int m = pick_running(s, s->n, order);
    for (int i = 0; i < m; i++) s->nodes[order[i]].group = i < m / 2 ? 0 : 1;
    free(order);
    s->partitioned = true;
    snprintf(r->name, sizeof r->name, "partition %.0f s", s->o->partition_seconds);
    fault_then_heal(s, r, s->o->partition_seconds, heal_partition);
    phase_end(s, r);
}

static void phase_loss(sim *s, phase_result *r) {
    phase_begin(s, r, "loss");
    s->loss = s->o->loss;
    snprintf(r->name, sizeof r->name, "loss %.0f%% %.0f s", s->o->loss * 100, s->o->loss_seconds);
    fault_then_heal(s, r, s->o->loss_seconds, heal_loss);
    phase_end(s, r);
}

static void phase_asymmetric(sim *s, phase_result *r) {
    phase_begin(s, r, "asymmetric");
    int pair[2];
    if (pick_running(s, 2, pair) < 2) {
        snprintf(r->what, sizeof r->what, "needs two running nodes");
        return;
    }
    s->blocked_from = pair[0];
    s->blocked_to = pair[1];
    snprintf(r->name, sizeof r->name, "asymmetric %.0f s", s->o->partition_seconds);
    fault_then_heal(s, r, s->o->partition_seconds, heal_link);
    phase_end(s, r);
}

/* Nodes gone for good: after the 24 h retention, every node should have purged them. */
static void phase_longrun(sim *s, phase_result *r, int count) {
    phase_begin(s, r, "longrun");
    node_set set;
    if (!remove_nodes(s, count, false, &set)) return;
    double hours = s->o->longrun_hours, first_purged = -1, t0 = now_s(s);
    int holding = 0;
    /* The largest state (records) of a running node: over the first half, the second half,
     * and at the end, to show it flat once the dead are purged. */
    size_t largest[2] = {0, 0}, at_end = 0;
    /* Looked at every virtual minute: a purge is a matter of hours. */
    for (double t = 0; t < hours * 3600; t += 60) {
        advance(s, 60);
        holding = holders(s, set.nodes, set.count);
        if (holding == 0 && first_purged < 0) first_purged = now_s(s) - t0;
        at_end = 0;
        for (int i = 0; i < s->n; i++)
            if (s->nodes[i].proc == PROC_RUNNING && s->nodes[i].e.m->count > at_end) at_end = s->nodes[i].e.m->count;
        size_t *half = &largest[t + 60 > hours * 1800];
        if (at_end > *half) *half = at_end;
    }
    r->seconds = now_s(s) - t0;
    r->reached = holding == 0;
    snprintf(r->name, sizeof r->name, "longrun %.0f h", hours);
    if (first_purged >= 0)
        snprintf(r->what, sizeof r->what, "purged everywhere after %.1f h; at the end %d nodes hold it; largest state %zu, %zu, %zu records (1st half, 2nd half, end)",
                 first_purged / 3600, holding, largest[0], largest[1], at_end);
    else
        snprintf(r->what, sizeof r->what, "never purged everywhere: at the end %d of %d nodes hold it", holding, live_count(s));
    phase_end(s, r);
    free(set.nodes);
}

/* ---- the run --------------------------------------------------------------------------------- */

void shazbot_sim_options_init(shazbot_sim_options *o) {
    *o = (shazbot_sim_options){.nodes = 50, .interval = NAN, .announce_minimum = 300, .announce_interval = 600,
                               .scenario = "converge,kill,partition", .kill = -1, .leave = -1,
                               .partition_seconds = 60, .loss = 0.05, .loss_seconds = 120, .latency_ms = 1,
                               .start_spread = 1, .max_wait = 900, .longrun_hours = 48, .seed = 1};
}

static bool known_phase(const char *name, size_t len) {
    const char *phases[] = {"converge", "kill", "leave", "partition", "loss", "asymmetric", "longrun"};
    for (size_t i = 0; i < sizeof phases / sizeof *phases; i++)
        if (strlen(phases[i]) == len && strncmp(phases[i], name, len) == 0) return true;
    return false;
}

static bool check_options(const shazbot_sim_options *o, char *err, size_t err_len) {
    struct { const char *name; double value, min, max; } ranges[] = {
        {"--nodes", o->nodes, 2, SIM_MAX_NODES}, {"--interval", o->interval, 0.01, 86400},
        {"--partition-seconds", o->partition_seconds, 0, 7 * 86400}, {"--loss", o->loss, 0, 1},
        {"--loss-seconds", o->loss_seconds, 0, 7 * 86400}, {"--latency-ms", o->latency_ms, 0, 60000},
        {"--start-spread", o->start_spread, 0, 86400}, {"--max-wait", o->max_wait, 1, 7 * 86400},
        {"--hours", o->longrun_hours, 0, 24 * 30},
        {"--announce-minimum", o->announce_minimum, 0, 1e9}, {"--announce-interval", o->announce_interval, 0, 1e9},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
        if (!(ranges[i].value >= ranges[i].min && ranges[i].value <= ranges[i].max)) {
            snprintf(err, err_len, "%s: %g is outside [%g, %g]", ranges[i].name, ranges[i].value, ranges[i].min, ranges[i].max);
            return false;
        }
    }
    if (o->seeds < 0) {
        snprintf(err, err_len, "--seeds: must be 0 (every node) or more");
        return false;
    }
    if (o->kill > o->nodes - 1 || o->leave > o->nodes - 1) {
        snprintf(err, err_len, "--kill and --leave: at most %d of %d nodes", o->nodes - 1, o->nodes);
        return false;
    }
    const char *p = o->scenario;
    if (!p || !*p) {
        snprintf(err, err_len, "--scenario: empty; phases are %s", SHAZBOT_SIM_PHASES);
        return false;
    }
    bool first = true;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (!known_phase(p, len)) {
            snprintf(err, err_len, "--scenario: unknown phase \"%.*s\"; phases are %s", (int)len, p, SHAZBOT_SIM_PHASES);
            return false;
        }
        if (first && strncmp(p, "converge", len) != 0) {
            snprintf(err, err_len, "--scenario: must begin with converge (the nodes start there)");
            return false;
        }
        first = false;
        p += len + (p[len] == ',');
    }
    return true;
}

/* The master list an operator would write: every node (or the first --seeds), online, with
 * lastUpdate 0. */
static void write_master_list(sim *s) {
    int listed = s->o->seeds > 0 && s->o->seeds < s->n ? s->o->seeds : s->n;
    buf_add_str(&s->store_list, "{\"online\":[");
    for (int i = 0; i < listed; i++)
        buf_printf(&s->store_list, "%s{\"baseUrl\":\"%s\",\"monitor\":false,\"lastUpdate\":0}", i ? "," : "", s->nodes[i].url);
    buf_add_str(&s->store_list, "]}");
    store_etag(s->store_list.data, s->store_list.len, s->store_etag);
}

/* The JSON object, or the table's last line (its rows went out as their phases ended). */
static void print_results(const sim *s, const phase_result *r, int count, double wall, long rss_kb, FILE *out) {
    const shazbot_sim_options *o = s->o;
    if (o->json) {
        fprintf(out, "{\"nodes\":%d,\"interval\":%.17g,\"latencyMs\":%.17g,\"seed\":%" PRIu64 ",\"policy\":", o->nodes,
                o->interval, o->latency_ms, o->seed);
        buf policy_name = {0};
        wire_write_string(&policy_name, o->policy ? o->policy : "default");
        fprintf(out, "%s,\"phases\":[", policy_name.data ? policy_name.data : "null");
        buf_free(&policy_name);
        for (int i = 0; i < count; i++) {
            buf name = {0}, what = {0};
            wire_write_string(&name, r[i].name);
            wire_write_string(&what, r[i].what);
            fprintf(out, "%s{\"phase\":%s,\"reached\":%s,\"seconds\":%.3f,\"rounds\":%.2f,", i ? "," : "",
                    name.data ? name.data : "null", r[i].reached ? "true" : "false", r[i].seconds, r[i].seconds / o->interval);
            if (r[i].detected_seconds >= 0)
                fprintf(out, "\"detectedSeconds\":%.3f,\"detectedRounds\":%.2f,", r[i].detected_seconds,
                        r[i].detected_seconds / o->interval);
            fprintf(out, "\"verdicts\":%" PRIu64 ",\"flaps\":%" PRIu64 ",\"bytesPerNodeRound\":%.0f,\"result\":%s}",
                    r[i].verdicts, r[i].flaps, r[i].bytes_per_node_round, what.data ? what.data : "null");
            buf_free(&name);
            buf_free(&what);
        }
        fprintf(out, "],\"wallSeconds\":%.3f,\"peakRssKb\":%ld}\n", wall, rss_kb);
        return;
    }
    fprintf(out, "wall time %.1f s, peak RSS %.1f MB\n", wall, rss_kb / 1024.0);
}

/* The table is written as the run goes, a large one taking minutes: the heading first, then
 * each phase's row as it ends. */
static void print_heading(const shazbot_sim_options *o, FILE *out) {
    if (o->json) return;
    fprintf(out, "simulated %d nodes, interval %g s, latency %g ms, seed %" PRIu64 ", policy %s\n", o->nodes, o->interval,
            o->latency_ms, o->seed, o->policy ? o->policy : "default");
    fprintf(out, "%-18s %10s %8s %9s %7s %12s  %s\n", "phase", "virtual s", "rounds", "verdicts", "flaps", "bytes/node/rd",
            "result");
    fflush(out);
}

static void print_row(const shazbot_sim_options *o, const phase_result *r, FILE *out) {
    if (o->json) return;
    fprintf(out, "%-18s %10.1f %8.1f %9" PRIu64 " %7" PRIu64 " %12.0f  %s\n", r->name, r->seconds,
            r->seconds / o->interval, r->verdicts, r->flaps, r->bytes_per_node_round, r->what);
    fflush(out);
}

/* --interval unset (NAN): the interval of the nodes' settings, a profile's or one --set gives,
 * else 2 s. The nodes are then given it explicitly, as every round count and sample step uses
 * it. A bad setting is left for node_init to report. */
static double settings_interval(const shazbot_sim_options *o) {
    shazbot_settings cfg;
    config_init(&cfg);
    char err[256], name[128];
    for (size_t i = 0; o->settings && o->settings[i]; i++) {
        const char *eq = strchr(o->settings[i], '=');
        if (!eq || (size_t)(eq - o->settings[i]) >= sizeof name) continue;
        snprintf(name, sizeof name, "%.*s", (int)(eq - o->settings[i]), o->settings[i]);
        config_set(&cfg, name, eq + 1, err, sizeof err);
    }
    double interval = cfg.profile != PROFILE_NONE || config_was_set(&cfg, "SHAZBOT_GOSSIP_INTERVAL") ? cfg.gossip_interval : 2;
    config_free(&cfg);
    return interval;
}

int shazbot_simulate(const shazbot_sim_options *given, FILE *out, char *err, size_t err_len) {
    shazbot_sim_options resolved = *given;
    if (isnan(resolved.interval)) resolved.interval = settings_interval(given);
    const shazbot_sim_options *o = &resolved;
    if (!check_options(o, err, err_len)) return -1;
    struct timespec wall0;
    clock_gettime(CLOCK_MONOTONIC, &wall0);
    sim s = {.o = o, .n = o->nodes, .rng = o->seed * 0x9E3779B97F4A7C15ULL + 1, .blocked_from = -1, .blocked_to = -1};
    s.clock = vclock_new(SIM_EPOCH_MS);
    s.lua_blocks = block_pool_new();
    s.nodes = calloc((size_t)s.n, sizeof *s.nodes);
    s.down = calloc((size_t)s.n, sizeof *s.down);
    int rc = -1;
    if (!s.clock || !s.nodes || !s.down || !s.lua_blocks) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    if (o->csv_path && !(s.csv = fopen(o->csv_path, "w"))) {
        snprintf(err, err_len, "--csv: cannot write %s", o->csv_path);
        goto done;
    }
    if (s.csv) fputs("t,node,online\n", s.csv);
    s.next_csv_us = vclock_now_us(s.clock);
    for (int i = 0; i < s.n; i++) {
        sim_node *n = &s.nodes[i];
        n->s = &s;
        n->index = i;
        snprintf(n->url, sizeof n->url, "http://127.0.0.1:%d/", SIM_BASE_PORT + i);
    }
    for (int i = 0; i < s.n; i++) {
        char why[512];
        if (!node_init(&s, &s.nodes[i], why, sizeof why)) {
            snprintf(err, err_len, "node %d: %s", i, why);
            goto done;
        }
    }
    write_master_list(&s);
    int one_percent = o->nodes / 100 > 0 ? o->nodes / 100 : 1;
    int kill = o->kill >= 0 ? o->kill : one_percent, leave = o->leave >= 0 ? o->leave : kill;
    phase_result results[32];
    int count = 0;
    print_heading(o, out);
    for (const char *p = o->scenario; *p && count < 32;) {
        size_t len = strcspn(p, ",");
        phase_result *r = &results[count++];
        if (strncmp(p, "converge", len) == 0) phase_converge(&s, r);
        else if (strncmp(p, "kill", len) == 0) phase_remove(&s, r, false, kill);
        else if (strncmp(p, "leave", len) == 0) phase_remove(&s, r, true, leave);
        else if (strncmp(p, "partition", len) == 0) phase_partition(&s, r);
        else if (strncmp(p, "loss", len) == 0) phase_loss(&s, r);
        else if (strncmp(p, "asymmetric", len) == 0) phase_asymmetric(&s, r);
        else phase_longrun(&s, r, kill);
        print_row(o, r, out);
        p += len + (p[len] == ',');
    }
    struct timespec wall1;
    clock_gettime(CLOCK_MONOTONIC, &wall1);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    print_results(&s, results, count, (double)(wall1.tv_sec - wall0.tv_sec) + (wall1.tv_nsec - wall0.tv_nsec) / 1e9,
                  usage.ru_maxrss, out);
    rc = 0;
done:
    /* Every process ends; the messages still in flight then reach nobody and are freed as
     * they come up, and only then do the engines go. */
    for (int i = 0; s.nodes && i < s.n; i++) {
        if (!s.nodes[i].engine_ready) continue;
        s.nodes[i].proc = PROC_GONE;
        engine_halt(&s.nodes[i].e);
    }
    if (s.clock) vclock_run_until(s.clock, INT64_MAX);
    for (int i = 0; s.nodes && i < s.n; i++)
        if (s.nodes[i].engine_ready) engine_destroy(&s.nodes[i].e);
    vclock_free(s.clock);
    spare_blocks_free(&s);
    block_pool_free(s.lua_blocks); /* after the engines: their policy states were in it */
    free(s.nodes);
    free(s.down);
    buf_free(&s.store_list);
    if (s.csv) fclose(s.csv);
    return rc;
}
