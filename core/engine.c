/* engine: the node's lifecycle and timers (PROTOCOL.md, "Timers and transfers").
 *
 *   start ──► master list GET ──ok──► merge ──► bootstrap fan-out (answers merged)
 *                 └─fail─► retry after 1, 2, 4 ... 60 s
 *   gossip timer ──► one peer ──fail──► 3 s ──► same peer ──fail──► peer offline
 *   announce timer ──► GET, merge ──► PUT online records (If-Match when the store gives ETags)
 *   shutdown ──► self offline ──► fan-out, bounded ──► optional announcement ──► stopped
 *
 * Every step is a libevent callback; transfers never block the loop. Policy decisions (peers,
 * delays) come from policy.c, which always answers something usable. */
#include "engine.h"

#include "clustershazbot_lua.h"

#include "log.h"
#include "wire.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GOSSIP_TIMEOUT_MS 5000
#define MASTER_LIST_TIMEOUT_MS 10000
#define GOSSIP_RETRY_SECONDS 3.0
#define MASTER_BACKOFF_MAX 60.0
#define ANNOUNCE_MAX_CONFLICTS 5
/* Shutdown waits this long for the goodbye fan-out, and at most this long in all. */
#define SHUTDOWN_FANOUT_SECONDS 6.0
#define SHUTDOWN_TOTAL_SECONDS 25.0

int64_t engine_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The longest a timer is armed for. Delays come from the configuration (any finite number
 * of seconds) and, through the policy's fallbacks, may be huge: converting 1e300 to time_t is
 * undefined, and on x86-64 gave a negative timeout, so the timer fired at once, for ever. */
#define ARM_MAX_SECONDS (30.0 * 86400)

static void arm(struct event *ev, double seconds) {
    if (!(seconds > 0)) seconds = 0;
    if (seconds > ARM_MAX_SECONDS) seconds = ARM_MAX_SECONDS;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(ev, &tv);
}

static bool answer_ok(const transfer_result *r) { return r->ok && r->status >= 200 && r->status < 300; }

/* Parses an answer as `kind` and merges it; false if it is not one. */
static bool merge_answer(shazbot *node, const transfer_result *r, wire_kind kind, const char *from) {
    wire_message msg;
    char why[256];
    if (!answer_ok(r)) {
        log_debug(node->cfg.log_level, "%s: %s", from, r->ok ? "non-2xx answer" : r->error);
        return false;
    }
    if (!wire_parse(r->body, r->body_len, kind, &msg, why, sizeof why)) {
        log_warn(node->cfg.log_level, "%s: answer refused: %s", from, why);
        return false;
    }
    int64_t now = engine_now_ms();
    membership_merge_all(node->m, msg.entries, msg.count, now);
    wire_message_free(&msg);
    return true;
}

static bool send_gossip(shazbot *node, const char *peer_url, transfer_done_fn done) {
    buf url = {0}, body = {0};
    buf_printf(&url, "%sclustershazbot/gossip", peer_url);
    wire_write_list(&body, node->m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    transfer_request req = {.method = "POST", .url = url.data, .authorization = node->cfg.secret,
                            .body = body.data, .body_len = body.len, .timeout_ms = GOSSIP_TIMEOUT_MS,
                            .direct = true};
    bool ok = !url.failed && !body.failed && transfer_start(node->pool, &req, done, node);
    buf_free(&url);
    buf_free(&body);
    return ok;
}

/* ---- fan-outs: bootstrap and shutdown --------------------------------------------------- */

static void shutdown_progress(shazbot *node);
static void announce(shazbot *node);

static void on_bootstrap_answer(void *arg, const transfer_result *r) {
    merge_answer(arg, r, WIRE_GOSSIP, "bootstrap gossip");
}

/* Sends our state to the targets of `kind`, all at once. Returns how many went out. */
static size_t fan_out(shazbot *node, targets_kind kind, transfer_done_fn done) {
    const member **targets = calloc(node->m->count, sizeof *targets);
    if (!targets) return 0;
    size_t n = policy_targets(node->pol, node->m, kind, targets), sent = 0;
    for (size_t i = 0; i < n; i++) sent += send_gossip(node, targets[i]->base_url, done);
    free(targets);
    return sent;
}

/* ---- start: the master list --------------------------------------------------------------- */

static void fetch_master_list(shazbot *node);

static void on_master_list(void *arg, const transfer_result *r) {
    shazbot *node = arg;
    if (node->state != NODE_RUNNING) return;
    if (!merge_answer(node, r, WIRE_LIST, "master list")) {
        log_warn(node->cfg.log_level, "master list %s unavailable (%s); retrying in %.0f s", node->cfg.master_list,
                 r->ok ? "bad answer" : r->error, node->master_backoff);
        arm(node->master_retry_timer, node->master_backoff);
        node->master_backoff = node->master_backoff * 2 > MASTER_BACKOFF_MAX ? MASTER_BACKOFF_MAX : node->master_backoff * 2;
        return;
    }
    size_t sent = fan_out(node, TARGETS_BOOTSTRAP, on_bootstrap_answer);
    log_info(node->cfg.log_level, "master list loaded: %zu known; bootstrap gossip to %zu peers", node->m->count, sent);
}

static void fetch_master_list(shazbot *node) {
    transfer_request req = {.method = "GET", .url = node->cfg.master_list, .timeout_ms = MASTER_LIST_TIMEOUT_MS};
    if (!transfer_start(node->pool, &req, on_master_list, node)) {
        transfer_result failed = {.error = "cannot start the request"};
        on_master_list(node, &failed);
    }
}

static void on_master_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    fetch_master_list(arg);
}

/* ---- gossip rounds ---------------------------------------------------------------------- */

static void end_round(shazbot *node) {
    free(node->round_peer);
    node->round_peer = NULL;
    if (node->state == NODE_RUNNING)
        arm(node->gossip_timer, policy_gossip_delay(node->pol, node->cfg.gossip_interval));
}

static void on_round_answer(void *arg, const transfer_result *r);

static void send_round(shazbot *node) {
    if (!send_gossip(node, node->round_peer, on_round_answer)) {
        transfer_result failed = {.error = "cannot start the request"};
        on_round_answer(node, &failed);
    }
}

static void on_round_answer(void *arg, const transfer_result *r) {
    shazbot *node = arg;
    if (!node->round_peer) return;
    if (merge_answer(node, r, WIRE_GOSSIP, node->round_peer)) {
        end_round(node);
        return;
    }
    if (node->state != NODE_RUNNING) {
        end_round(node);
        return;
    }
    if (!node->round_retried) {
        /* First failure: the same peer once more, 3 s later. */
        node->round_retried = true;
        arm(node->gossip_retry_timer, GOSSIP_RETRY_SECONDS);
        return;
    }
    if (membership_mark_offline(node->m, node->round_peer, strlen(node->round_peer), engine_now_ms()))
        log_info(node->cfg.log_level, "peer %s failed twice: now offline", node->round_peer);
    end_round(node);
}

static void on_gossip_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    shazbot *node = arg;
    if (node->round_peer) send_round(node);
}

static void on_gossip_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    shazbot *node = arg;
    int64_t now = engine_now_ms();
    membership_refresh_self(node->m, now);
    membership_purge(node->m, now);
    const member *peer = policy_gossip_target(node->pol, node->m);
    if (!peer) {
        end_round(node);
        return;
    }
    node->round_peer = strdup(peer->base_url);
    node->round_retried = false;
    if (!node->round_peer) {
        end_round(node);
        return;
    }
    send_round(node);
}

/* ---- master-list announcements ---------------------------------------------------------- */

static void end_announcement(shazbot *node) {
    node->announcing = false;
    if (node->state == NODE_RUNNING)
        arm(node->announce_timer, policy_announce_delay(node->pol, node->cfg.announce_minimum,
                                                         node->cfg.announce_interval));
    else
        shutdown_progress(node);
}

static void on_announce_put(void *arg, const transfer_result *r) {
    shazbot *node = arg;
    if (r->ok && r->status == 412 && ++node->announce_attempts < ANNOUNCE_MAX_CONFLICTS) {
        /* The list changed since we read it: read, merge and write again. */
        log_debug(node->cfg.log_level, "master list changed during the announcement; merging again");
        announce(node);
        return;
    }
    if (answer_ok(r)) log_debug(node->cfg.log_level, "master list announced");
    else log_warn(node->cfg.log_level, "master list upload failed: %s", r->ok ? "non-2xx answer" : r->error);
    end_announcement(node);
}

static void on_announce_get(void *arg, const transfer_result *r) {
    shazbot *node = arg;
    /* Uploading without having read the list would throw away every entry we do not know. */
    if (!merge_answer(node, r, WIRE_LIST, "master list")) {
        log_warn(node->cfg.log_level, "announcement skipped: master list unavailable (%s)", r->ok ? "bad answer" : r->error);
        end_announcement(node);
        return;
    }
    membership_refresh_self(node->m, engine_now_ms());
    buf body = {0};
    wire_write_list(&body, node->m, 0);
    transfer_request req = {.method = "PUT", .url = node->cfg.master_list_update,
                            .authorization = node->cfg.master_list_update_auth,
                            .if_match = r->etag, .body = body.data, .body_len = body.len,
                            .timeout_ms = MASTER_LIST_TIMEOUT_MS};
    bool started = !body.failed && transfer_start(node->pool, &req, on_announce_put, node);
    buf_free(&body);
    if (!started) end_announcement(node);
}

static void announce(shazbot *node) {
    node->announcing = true;
    transfer_request req = {.method = "GET", .url = node->cfg.master_list, .timeout_ms = MASTER_LIST_TIMEOUT_MS};
    if (!transfer_start(node->pool, &req, on_announce_get, node)) end_announcement(node);
}

static void on_announce_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    shazbot *node = arg;
    node->announce_attempts = 0;
    announce(node);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* With epoll's change list, the add/remove of read and write interest that every HTTP
 * exchange makes is sent to the kernel once per loop iteration instead of once per change. */
static struct event_base *new_event_base(void) {
    struct event_config *cfg = event_config_new();
    if (!cfg) return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* Both constructors: the policy comes from a host's Lua state when `host` is given, else from
 * SHAZBOT_POLICY (or the default alone). */
static shazbot *create(const shazbot_settings *s, struct event_base *base, lua_State *host,
                       int hooks_index, char *err, size_t err_len) {
    if (!config_check(s, err, err_len)) return NULL;
    shazbot *node = calloc(1, sizeof *node);
    if (!node) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    /* A deep copy: the host may free its settings at once. */
    if (!config_copy(&node->cfg, s)) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    node->base = base ? base : new_event_base();
    node->own_base = base == NULL;
    const char *path = strchr(strstr(node->cfg.base_url, "://") + 3, '/');
    node->listener.base_path = strdup(path);
    node->m = membership_new(node->cfg.base_url, node->cfg.monitor, engine_now_ms(),
                             (int64_t)(node->cfg.max_clock_skew * 1000));
    node->pol = host ? policy_new_hosted(host, hooks_index, err, err_len)
                     : policy_new(node->cfg.policy_path, err, err_len);
    if (!node->pol) goto fail;
    policy_set_log_level(node->pol, node->cfg.log_level);
    node->pool = node->base ? transfer_pool_new(node->base, node->cfg.max_body) : NULL;
    if (!node->base || !node->listener.base_path || !node->m || !node->pool) {
        snprintf(err, err_len, "cannot set up the node (out of memory?)");
        goto fail;
    }
    node->gossip_timer = evtimer_new(node->base, on_gossip_timer, node);
    node->gossip_retry_timer = evtimer_new(node->base, on_gossip_retry, node);
    node->announce_timer = evtimer_new(node->base, on_announce_timer, node);
    node->master_retry_timer = evtimer_new(node->base, on_master_retry, node);
    node->master_backoff = 1;
    return node;
fail:
    shazbot_free(node);
    return NULL;
}

shazbot *shazbot_new(const shazbot_settings *s, struct event_base *base, char *err, size_t err_len) {
    return create(s, base, NULL, 0, err, err_len);
}

shazbot *shazbot_new_lua(const shazbot_settings *s, struct event_base *base, lua_State *L,
                         int hooks_index, char *err, size_t err_len) {
    return create(s, base, L, hooks_index, err, err_len);
}

int shazbot_listen(shazbot *node, const char *host, int port, char *err, size_t err_len) {
    if (!host && !port) {
        host = node->cfg.listen_host;
        port = node->cfg.listen_port ? node->cfg.listen_port : config_url_port(node->cfg.base_url);
    }
    return http_listen(node, host, port, err, err_len);
}

int shazbot_start(shazbot *node) {
    if (node->state != NODE_CREATED) return -1;
    node->state = NODE_RUNNING;
    membership_refresh_self(node->m, engine_now_ms());
    log_info(node->cfg.log_level, "starting as %s", node->cfg.base_url);
    fetch_master_list(node);
    arm(node->gossip_timer, policy_gossip_delay(node->pol, node->cfg.gossip_interval));
    arm(node->announce_timer, policy_announce_delay(node->pol, node->cfg.announce_minimum,
                                                     node->cfg.announce_interval));
    return 0;
}

static void stop_timers(shazbot *node) {
    struct event *timers[] = {node->gossip_timer, node->gossip_retry_timer, node->announce_timer,
                              node->master_retry_timer, node->shutdown_deadline};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++)
        if (timers[i]) evtimer_del(timers[i]);
}

static void finish_shutdown(shazbot *node) {
    if (node->state == NODE_STOPPED) return;
    node->state = NODE_STOPPED;
    stop_timers(node);
    log_info(node->cfg.log_level, "stopped");
    if (node->own_base) event_base_loopbreak(node->base);
    if (node->shutdown_done) node->shutdown_done(node->shutdown_arg);
}

/* Shutdown moves on when the goodbyes are answered (or timed out) and no announcement is
 * under way: then the optional master-list upload, then the end. */
static void shutdown_progress(shazbot *node) {
    if (node->state != NODE_STOPPING || !node->goodbyes_done || node->announcing) return;
    if (node->cfg.update_master_list_on_shutdown && !node->shutdown_announced) {
        node->shutdown_announced = true;
        node->announce_attempts = 0;
        announce(node); /* comes back here through end_announcement */
        return;
    }
    finish_shutdown(node);
}

static void on_goodbye_answer(void *arg, const transfer_result *r) {
    shazbot *node = arg;
    merge_answer(node, r, WIRE_GOSSIP, "shutdown gossip");
    if (!node->goodbyes_done && --node->shutdown_pending == 0) {
        node->goodbyes_done = true;
        shutdown_progress(node);
    }
}

static void on_shutdown_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    shazbot *node = arg;
    if (!node->goodbyes_done) {
        log_warn(node->cfg.log_level, "shutdown: %zu peers did not answer in time", node->shutdown_pending);
        node->goodbyes_done = true;
        arm(node->shutdown_deadline, SHUTDOWN_TOTAL_SECONDS - SHUTDOWN_FANOUT_SECONDS);
        shutdown_progress(node);
    } else {
        log_warn(node->cfg.log_level, "shutdown: master-list upload did not finish in time");
        finish_shutdown(node);
    }
}

int shazbot_shutdown(shazbot *node, void (*done)(void *), void *arg) {
    if (node->state != NODE_RUNNING) return -1;
    node->state = NODE_STOPPING;
    node->shutdown_done = done;
    node->shutdown_arg = arg;
    stop_timers(node);
    free(node->round_peer);
    node->round_peer = NULL;
    membership_set_self_online(node->m, false, engine_now_ms());
    node->shutdown_deadline = evtimer_new(node->base, on_shutdown_deadline, node);
    node->shutdown_pending = fan_out(node, TARGETS_SHUTDOWN, on_goodbye_answer);
    log_info(node->cfg.log_level, "shutting down: goodbye to %zu peers", node->shutdown_pending);
    if (node->shutdown_deadline) arm(node->shutdown_deadline, SHUTDOWN_FANOUT_SECONDS);
    node->goodbyes_done = node->shutdown_pending == 0;
    shutdown_progress(node);
    return 0;
}

int shazbot_is_stopped(const shazbot *node) { return node->state == NODE_STOPPED; }
int shazbot_is_running(const shazbot *node) {
    return node->state == NODE_RUNNING || node->state == NODE_STOPPING;
}

struct event_base *shazbot_event_base(shazbot *node) { return node->base; }

static void on_step_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg; /* only there to end the wait of shazbot_step */
}

int shazbot_step(shazbot *node, double max_wait) {
    if (max_wait <= 0) return event_base_loop(node->base, EVLOOP_NONBLOCK) < 0 ? -1 : 0;
    /* A timer of our own rather than event_base_loopexit, whose pending exit would outlive
     * this call and cut a later loop short. */
    if (!node->step_timer && !(node->step_timer = evtimer_new(node->base, on_step_timeout, NULL)))
        return -1;
    arm(node->step_timer, max_wait);
    int rc = event_base_loop(node->base, EVLOOP_ONCE);
    evtimer_del(node->step_timer);
    return rc < 0 ? -1 : 0;
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    shazbot *node = arg;
    if (node->state == NODE_STOPPING) {
        log_warn(node->cfg.log_level, "second signal %d: stopping at once", (int)fd);
        finish_shutdown(node);
        return;
    }
    log_info(node->cfg.log_level, "signal %d: leaving the cluster", (int)fd);
    if (shazbot_shutdown(node, NULL, NULL) != 0) event_base_loopbreak(node->base); /* never started */
}

int shazbot_run(shazbot *node, int handle_signals) {
    if (handle_signals) {
        signal(SIGPIPE, SIG_IGN);
        if (!node->sigterm) node->sigterm = evsignal_new(node->base, SIGTERM, on_signal, node);
        if (!node->sigint) node->sigint = evsignal_new(node->base, SIGINT, on_signal, node);
        evsignal_add(node->sigterm, NULL);
        evsignal_add(node->sigint, NULL);
    }
    int rc = 0;
    while (node->state != NODE_STOPPED && rc == 0) {
        rc = event_base_loop(node->base, 0);
        if (rc == 1) rc = 0; /* nothing left to wait for: only possible before start */
        if (node->state == NODE_CREATED) break;
    }
    if (node->sigterm) evsignal_del(node->sigterm);
    if (node->sigint) evsignal_del(node->sigint);
    return rc < 0 ? -1 : 0;
}

void shazbot_free(shazbot *node) {
    if (!node) return;
    http_free(node);
    transfer_pool_free(node->pool);
    struct event *events[] = {node->gossip_timer, node->gossip_retry_timer, node->announce_timer,
                              node->master_retry_timer, node->shutdown_deadline, node->sigterm,
                              node->sigint, node->step_timer};
    for (size_t i = 0; i < sizeof events / sizeof *events; i++)
        if (events[i]) event_free(events[i]);
    policy_free(node->pol);
    membership_free(node->m);
    free(node->round_peer);
    free(node->listener.base_path);
    if (node->own_base && node->base) event_base_free(node->base);
    config_free(&node->cfg);
    free(node);
}

/* ---- settings ---------------------------------------------------------------------------- */

shazbot_settings *shazbot_settings_new(void) {
    shazbot_settings *s = malloc(sizeof *s);
    if (s) config_init(s);
    return s;
}

shazbot_settings *shazbot_settings_from_env(char *err, size_t err_len) {
    shazbot_settings *s = shazbot_settings_new();
    if (s && !config_from_env(s, err, err_len)) {
        shazbot_settings_free(s);
        return NULL;
    }
    return s;
}

int shazbot_settings_set(shazbot_settings *s, const char *name, const char *value, char *err,
                         size_t err_len) {
    return config_set(s, name, value, err, err_len) ? 0 : -1;
}

void shazbot_settings_free(shazbot_settings *s) {
    if (!s) return;
    config_free(s);
    free(s);
}
