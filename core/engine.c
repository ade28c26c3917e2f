/* engine: see engine.h.
 *
 *   start ──► master list GET ──ok──► merge ──► bootstrap fan-out (answers merged)
 *                 └─fail─► retry after 1, 2, 4 ... 60 s
 *   gossip timer ──► one peer ──fail──► 3 s ──► same peer ──fail──► peer offline
 *   announce timer ──► GET, merge ──► PUT online records (If-Match when the store gives ETags)
 *   shutdown ──► self offline ──► fan-out, bounded ──► optional announcement ──► stopped
 *
 * Every step is a timer or a transfer callback of the drivers; nothing here waits. Policy
 * decisions (peers, delays) come from policy.c, which always answers something usable. */
#include "engine.h"

#include "log.h"
#include "wire.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void engine_arm(engine *e, engine_timer *t, double seconds) {
    if (!(seconds > 0)) seconds = 0;
    if (seconds > ENGINE_ARM_MAX_SECONDS) seconds = ENGINE_ARM_MAX_SECONDS;
    e->clock.timer_arm(e->clock.ctx, t, seconds);
}

static void stop(engine *e, engine_timer *t) { e->clock.timer_stop(e->clock.ctx, t); }

static bool start_transfer(engine *e, const transfer_request *req, transfer_done_fn done) {
    return e->transport.start(e->transport.ctx, req, done, e);
}

static bool answer_ok(const transfer_result *r) { return r->ok && r->status >= 200 && r->status < 300; }

/* Parses an answer as `kind` and merges it; false if it is not one. */
static bool merge_answer(engine *e, const transfer_result *r, wire_kind kind, const char *from) {
    wire_message msg;
    char why[256];
    if (!answer_ok(r)) {
        log_debug(e->cfg.log_level, "%s: %s", from, r->ok ? "non-2xx answer" : r->error);
        return false;
    }
    if (r->records) {
        engine_merge(e, r->records, r->record_count);
        return true;
    }
    if (!wire_parse(r->body, r->body_len, kind, &msg, why, sizeof why)) {
        log_warn(e->cfg.log_level, "%s: answer refused: %s", from, why);
        return false;
    }
    engine_merge(e, msg.entries, msg.count);
    wire_message_free(&msg);
    return true;
}

void engine_merge(engine *e, const member_update *u, size_t count) {
    uint64_t dropped = e->m->stats.dropped_over_limit;
    membership_merge_all(e->m, u, count, engine_now(e));
    if (e->m->stats.dropped_over_limit != dropped)
        log_warn(e->cfg.log_level,
                 "state over its limit (SHAZBOT_MAX_BODY %zu bytes, which peers refuse beyond): dropped %llu "
                 "records, the oldest offline first (%llu in all)",
                 e->cfg.max_body, (unsigned long long)(e->m->stats.dropped_over_limit - dropped),
                 (unsigned long long)e->m->stats.dropped_over_limit);
}

static long gossip_timeout_ms(const engine *e) { return (long)(config_gossip_timeout(&e->cfg) * 1000); }

static bool send_gossip(engine *e, const char *peer_url, transfer_done_fn done) {
    buf url = {0}, body = {0};
    buf_printf(&url, "%sclustershazbot/gossip", peer_url);
    bool as_records = e->transport.carries_records;
    if (!as_records) wire_write_list(&body, e->m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    transfer_request req = {.method = "POST", .url = url.data, .authorization = e->cfg.secret,
                            .body = body.data, .body_len = body.len, .records = as_records ? e->m : NULL,
                            .timeout_ms = gossip_timeout_ms(e), .direct = true};
    bool ok = !url.failed && !body.failed && start_transfer(e, &req, done);
    buf_free(&url);
    buf_free(&body);
    return ok;
}

/* ---- fan-outs: bootstrap and shutdown --------------------------------------------------- */

static void shutdown_progress(engine *e);
static void announce(engine *e);

static void on_bootstrap_answer(void *arg, const transfer_result *r) {
    merge_answer(arg, r, WIRE_GOSSIP, "bootstrap gossip");
}

/* Sends our state to the targets of `kind`, all at once. Returns how many went out. */
static size_t fan_out(engine *e, targets_kind kind, transfer_done_fn done) {
    const member **targets = calloc(e->m->count, sizeof *targets);
    if (!targets) return 0;
    size_t n = policy_targets(e->pol, e->m, kind, targets), sent = 0;
    for (size_t i = 0; i < n; i++) sent += send_gossip(e, targets[i]->base_url, done);
    free(targets);
    return sent;
}

/* ---- start: the master list --------------------------------------------------------------- */

static void fetch_master_list(engine *e);

static void on_master_list(void *arg, const transfer_result *r) {
    engine *e = arg;
    if (e->state != NODE_RUNNING) return;
    if (!merge_answer(e, r, WIRE_LIST, "master list")) {
        log_warn(e->cfg.log_level, "master list %s unavailable (%s); retrying in %.0f s", e->cfg.master_list,
                 r->ok ? "bad answer" : r->error, e->bootstrap.backoff);
        engine_arm(e, e->bootstrap.retry_timer, e->bootstrap.backoff);
        e->bootstrap.backoff = e->bootstrap.backoff * 2 > ENGINE_MASTER_BACKOFF_MAX ? ENGINE_MASTER_BACKOFF_MAX
                                                                                   : e->bootstrap.backoff * 2;
        return;
    }
    size_t sent = fan_out(e, TARGETS_BOOTSTRAP, on_bootstrap_answer);
    log_info(e->cfg.log_level, "master list loaded: %zu known; bootstrap gossip to %zu peers", e->m->count, sent);
}

static void fetch_master_list(engine *e) {
    transfer_request req = {.method = "GET", .url = e->cfg.master_list, .timeout_ms = ENGINE_MASTER_LIST_TIMEOUT_MS};
    if (!start_transfer(e, &req, on_master_list)) {
        transfer_result failed = {.error = "cannot start the request"};
        on_master_list(e, &failed);
    }
}

static void on_master_retry(void *arg) { fetch_master_list(arg); }

/* ---- gossip rounds ---------------------------------------------------------------------- */

static void end_round(engine *e) {
    free(e->round.peer);
    e->round.peer = NULL;
    if (e->state == NODE_RUNNING)
        engine_arm(e, e->round.timer, policy_gossip_delay(e->pol, e->cfg.gossip_interval));
}

static void on_round_answer(void *arg, const transfer_result *r);

static void send_round(engine *e) {
    if (!send_gossip(e, e->round.peer, on_round_answer)) {
        transfer_result failed = {.error = "cannot start the request"};
        on_round_answer(e, &failed);
    }
}

/* A peer that answered, only not with a message we take: it refused our body as too large
 * (413), or its answer was over our limit. It is alive, so this says nothing of its liveness:
 * moving it offline would cut a healthy link over one oversized state (the states are kept
 * within SHAZBOT_MAX_BODY, so this is a peer whose limit is lower than ours, or one whose
 * state grew before it had the limit). */
static bool refused_for_size(const transfer_result *r) {
    return (r->ok && r->status == 413) || (!r->ok && r->too_large);
}

/* Whether a peer that failed twice is moved offline. Not while others keep bringing news of
 * it (a newer lastUpdate, which only the peer itself makes) within the suspicion window: then
 * only the link from here is broken, and declaring it offline would make every other node
 * drop a live peer until it refutes, again and again (the asymmetric link). A dead peer makes
 * no news, so once the window has passed since the last, the verdict falls as before. */
static bool heard_of_lately(engine *e, const char *url) {
    const member *p = membership_find(e->m, url, strlen(url));
    double window_ms = config_suspicion_window(&e->cfg) * 1000;
    return p && (double)(engine_now(e) - p->heard_ms) < window_ms;
}

/* The lastUpdate of an offline verdict: not "now" (PROTOCOL.md), but the start of the
 * suspicion window, "offline since at least then" (later than the record it replaces here, in
 * any case). A node that heard from the peer after that, by its own timestamp, keeps it
 * online (rule 3: newer wins), and the peer itself does not need to refute; a node that has
 * no news that fresh either takes the verdict. So the verdict spreads only as far as the
 * peer is silent: everywhere for a dead peer, nowhere else for one that only this node
 * cannot reach. With the window 0 it is "now", as in the original. */
static int64_t verdict_stamp(engine *e) {
    return engine_now(e) - (int64_t)(config_suspicion_window(&e->cfg) * 1000);
}

static void on_round_answer(void *arg, const transfer_result *r) {
    engine *e = arg;
    if (!e->round.peer) return;
    if (merge_answer(e, r, WIRE_GOSSIP, e->round.peer)) {
        end_round(e);
        return;
    }
    if (e->state != NODE_RUNNING) {
        end_round(e);
        return;
    }
    if (refused_for_size(r)) {
        log_warn(e->cfg.log_level, "peer %s is alive but %s: not moved offline", e->round.peer,
                 r->ok ? "refused our state as too large (413)" : "answered more than SHAZBOT_MAX_BODY");
        end_round(e);
        return;
    }
    if (!e->round.retried) {
        /* First failure: the same peer once more, a little later. */
        e->round.retried = true;
        engine_arm(e, e->round.retry_timer, config_gossip_retry(&e->cfg));
        return;
    }
    if (heard_of_lately(e, e->round.peer)) {
        e->round.spared++;
        log_debug(e->cfg.log_level, "peer %s failed twice but others heard from it lately: still online", e->round.peer);
    } else if (membership_mark_offline(e->m, e->round.peer, strlen(e->round.peer), verdict_stamp(e))) {
        log_info(e->cfg.log_level, "peer %s failed twice: now offline", e->round.peer);
        if (e->observer.peer_failed) e->observer.peer_failed(e->observer.ctx, e->round.peer);
    }
    end_round(e);
}

/* ---- probes: now and then a round also sends our state to an offline peer --------------- */

/* Gossip goes only to online peers, so two sides of a partition that each moved the other
 * offline never spoke again once the links came back (only an announcement, minutes later,
 * or a restart reconnected them). A probe answered is a live peer: its answer carries its
 * own fresh record and its side's, merged at once, and our message carries its offline
 * record, which it refutes. A probe that fails changes nothing. */
static void on_probe_answer(void *arg, const transfer_result *r) {
    engine *e = arg;
    if (merge_answer(e, r, WIRE_GOSSIP, e->probe.peer ? e->probe.peer : "probe"))
        log_info(e->cfg.log_level, "offline peer %s answered a probe", e->probe.peer);
    free(e->probe.peer);
    e->probe.peer = NULL;
}

static void probe_offline_peer(engine *e) {
    if (e->probe.peer) return; /* one at a time */
    const member *p = policy_probe_target(e->pol, e->m, engine_now(e));
    if (!p || !(e->probe.peer = strdup(p->base_url))) return;
    e->probe.sent++;
    if (!send_gossip(e, e->probe.peer, on_probe_answer)) {
        free(e->probe.peer);
        e->probe.peer = NULL;
    }
}

static void on_gossip_retry(void *arg) {
    engine *e = arg;
    if (e->round.peer) send_round(e);
}

static void on_gossip_timer(void *arg) {
    engine *e = arg;
    int64_t now = engine_now(e);
    membership_refresh_self(e->m, now);
    membership_purge(e->m, now);
    probe_offline_peer(e);
    const member *peer = policy_gossip_target(e->pol, e->m);
    if (!peer || !(e->round.peer = strdup(peer->base_url))) {
        end_round(e);
        return;
    }
    e->round.retried = false;
    send_round(e);
}

/* ---- master-list announcements ---------------------------------------------------------- */

static void end_announcement(engine *e) {
    e->announcer.busy = false;
    if (e->state == NODE_RUNNING)
        engine_arm(e, e->announcer.timer,
                   policy_announce_delay(e->pol, e->cfg.announce_minimum, e->cfg.announce_interval));
    else
        shutdown_progress(e);
}

static void on_announce_put(void *arg, const transfer_result *r) {
    engine *e = arg;
    if (r->ok && r->status == 412 && ++e->announcer.conflicts < ENGINE_ANNOUNCE_MAX_CONFLICTS) {
        /* The list changed since we read it: read, merge and write again. */
        log_debug(e->cfg.log_level, "master list changed during the announcement; merging again");
        announce(e);
        return;
    }
    if (answer_ok(r)) log_debug(e->cfg.log_level, "master list announced");
    else log_warn(e->cfg.log_level, "master list upload failed: %s", r->ok ? "non-2xx answer" : r->error);
    end_announcement(e);
}

static void on_announce_get(void *arg, const transfer_result *r) {
    engine *e = arg;
    /* Uploading without having read the list would throw away every entry we do not know. */
    if (!merge_answer(e, r, WIRE_LIST, "master list")) {
        log_warn(e->cfg.log_level, "announcement skipped: master list unavailable (%s)", r->ok ? "bad answer" : r->error);
        end_announcement(e);
        return;
    }
    membership_refresh_self(e->m, engine_now(e));
    buf body = {0};
    wire_write_list(&body, e->m, 0);
    transfer_request req = {.method = "PUT", .url = e->cfg.master_list_update,
                            .authorization = e->cfg.master_list_update_auth,
                            .if_match = r->etag, .body = body.data, .body_len = body.len,
                            .timeout_ms = ENGINE_MASTER_LIST_TIMEOUT_MS};
    bool started = !body.failed && start_transfer(e, &req, on_announce_put);
    buf_free(&body);
    if (!started) end_announcement(e);
}

static void announce(engine *e) {
    e->announcer.busy = true;
    transfer_request req = {.method = "GET", .url = e->cfg.master_list, .timeout_ms = ENGINE_MASTER_LIST_TIMEOUT_MS};
    if (!start_transfer(e, &req, on_announce_get)) end_announcement(e);
}

static void on_announce_timer(void *arg) {
    engine *e = arg;
    e->announcer.conflicts = 0;
    announce(e);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void on_shutdown_deadline(void *arg);

/* Every timer of the engine and what it runs, listed once for creating, stopping and freeing
 * them. */
static const struct {
    size_t offset;
    engine_timer_fn fire;
} engine_timers[] = {
    {offsetof(engine, round.timer), on_gossip_timer},
    {offsetof(engine, round.retry_timer), on_gossip_retry},
    {offsetof(engine, announcer.timer), on_announce_timer},
    {offsetof(engine, bootstrap.retry_timer), on_master_retry},
    {offsetof(engine, shutdown.deadline), on_shutdown_deadline},
};
#define ENGINE_TIMER_COUNT (sizeof engine_timers / sizeof *engine_timers)

static engine_timer **timer_slot(engine *e, size_t i) {
    return (engine_timer **)((char *)e + engine_timers[i].offset);
}

bool engine_init(engine *e, const shazbot_settings *s, engine_clock clock, engine_transport transport,
                 policy *pol, char *err, size_t err_len) {
    *e = (engine){.clock = clock, .transport = transport, .pol = pol, .bootstrap.backoff = 1};
    /* A deep copy: the host may free its settings at once. */
    if (!config_copy(&e->cfg, s)) {
        snprintf(err, err_len, "out of memory");
        return false;
    }
    policy_set_log_level(pol, e->cfg.log_level);
    e->m = membership_new(e->cfg.base_url, e->cfg.monitor, engine_now(e), (int64_t)(e->cfg.max_clock_skew * 1000));
    bool ok = e->m != NULL;
    if (ok) membership_set_limit(e->m, engine_state_limit(e->cfg.max_body));
    for (size_t i = 0; ok && i < ENGINE_TIMER_COUNT; i++)
        ok = (*timer_slot(e, i) = clock.timer_new(clock.ctx, engine_timers[i].fire, e)) != NULL;
    if (!ok) snprintf(err, err_len, "cannot set up the node (out of memory?)");
    return ok;
}

void engine_destroy(engine *e) {
    for (size_t i = 0; i < ENGINE_TIMER_COUNT; i++)
        if (*timer_slot(e, i)) e->clock.timer_free(e->clock.ctx, *timer_slot(e, i));
    policy_free(e->pol);
    membership_free(e->m);
    free(e->round.peer);
    free(e->probe.peer);
    config_free(&e->cfg);
    *e = (engine){0};
}

int engine_start(engine *e) {
    if (e->state != NODE_CREATED) return -1;
    e->state = NODE_RUNNING;
    membership_refresh_self(e->m, engine_now(e));
    log_info(e->cfg.log_level, "starting as %s", e->cfg.base_url);
    fetch_master_list(e);
    engine_arm(e, e->round.timer, policy_gossip_delay(e->pol, e->cfg.gossip_interval));
    engine_arm(e, e->announcer.timer, policy_announce_delay(e->pol, e->cfg.announce_minimum, e->cfg.announce_interval));
    return 0;
}

void engine_take_gossip(engine *e, const member_update *u, size_t count) {
    membership_refresh_self(e->m, engine_now(e));
    engine_merge(e, u, count);
}

bool engine_serving(const engine *e) { return e->state == NODE_RUNNING || e->state == NODE_STOPPING; }

static void stop_timers(engine *e) {
    for (size_t i = 0; i < ENGINE_TIMER_COUNT; i++) stop(e, *timer_slot(e, i));
}

static void finish_shutdown(engine *e) {
    if (e->state == NODE_STOPPED) return;
    e->state = NODE_STOPPED;
    stop_timers(e);
    log_info(e->cfg.log_level, "stopped");
    if (e->shutdown.done) e->shutdown.done(e->shutdown.done_arg);
}

void engine_stop_now(engine *e) { finish_shutdown(e); }

void engine_halt(engine *e) {
    stop_timers(e);
    free(e->round.peer);
    e->round.peer = NULL;
    e->state = NODE_STOPPED;
}

/* Shutdown moves on when the goodbyes are answered (or timed out) and no announcement is
 * under way: then the optional master-list upload, then the end. */
static void shutdown_progress(engine *e) {
    if (e->state != NODE_STOPPING || !e->shutdown.goodbyes_done || e->announcer.busy) return;
    if (e->cfg.update_master_list_on_shutdown && !e->shutdown.announced) {
        e->shutdown.announced = true;
        e->announcer.conflicts = 0;
        announce(e); /* comes back here through end_announcement */
        return;
    }
    finish_shutdown(e);
}

static void on_goodbye_answer(void *arg, const transfer_result *r) {
    engine *e = arg;
    merge_answer(e, r, WIRE_GOSSIP, "shutdown gossip");
    if (!e->shutdown.goodbyes_done && --e->shutdown.pending == 0) {
        e->shutdown.goodbyes_done = true;
        shutdown_progress(e);
    }
}

static void on_shutdown_deadline(void *arg) {
    engine *e = arg;
    if (!e->shutdown.goodbyes_done) {
        log_warn(e->cfg.log_level, "shutdown: %zu peers did not answer in time", e->shutdown.pending);
        e->shutdown.goodbyes_done = true;
        engine_arm(e, e->shutdown.deadline, ENGINE_SHUTDOWN_TOTAL_SECONDS - ENGINE_SHUTDOWN_FANOUT_SECONDS);
        shutdown_progress(e);
    } else {
        log_warn(e->cfg.log_level, "shutdown: master-list upload did not finish in time");
        finish_shutdown(e);
    }
}

int engine_shutdown(engine *e, void (*done)(void *), void *arg) {
    if (e->state != NODE_RUNNING) return -1;
    e->state = NODE_STOPPING;
    e->shutdown.done = done;
    e->shutdown.done_arg = arg;
    stop_timers(e);
    free(e->round.peer);
    e->round.peer = NULL;
    membership_set_self_online(e->m, false, engine_now(e));
    e->shutdown.pending = fan_out(e, TARGETS_SHUTDOWN, on_goodbye_answer);
    log_info(e->cfg.log_level, "shutting down: goodbye to %zu peers", e->shutdown.pending);
    engine_arm(e, e->shutdown.deadline, ENGINE_SHUTDOWN_FANOUT_SECONDS);
    e->shutdown.goodbyes_done = e->shutdown.pending == 0;
    shutdown_progress(e);
    return 0;
}
