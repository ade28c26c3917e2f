/* engine: see engine.h.
 *
 *   start ──► master list GET ──ok──► merge ──► bootstrap fan-out (answers merged)
 *                 └─fail─► retry after 1, 2, 4 ... 60 s
 *   gossip timer ──► one peer ──fail──► 3 s ──► same peer ──fail──► peer offline
 *   announce timer ──► GET, merge ──► PUT online records (If-Match when the store gives ETags)
 *   shutdown ──► self offline ──► fan-out, bounded ──► optional announcement ──► stopped
 *   (a fan-out: one shared body, at most ENGINE_FANOUT_CONCURRENCY transfers at once)
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

/* `done` is called with `arg`, the engine itself but where a callback needs more. */
static bool start_transfer_with(engine *e, const transfer_request *req, transfer_done_fn done, void *arg) {
    bool started = e->transport.start(e->transport.ctx, req, done, arg);
    if (started) {
        size_t len;
        transfer_request_body(req, &len);
        e->metrics.bytes_sent += len;
    }
    return started;
}

static bool start_transfer(engine *e, const transfer_request *req, transfer_done_fn done) {
    return start_transfer_with(e, req, done, e);
}

static bool answer_ok(const transfer_result *r) { return r->ok && r->status >= 200 && r->status < 300; }

/* Every answer (or failure) of a transfer of ours is counted here, first thing in its
 * callback, for /metrics. */
static void count_transfer(engine *e, transfer_kind kind, const transfer_result *r) {
    transfer_outcome o = answer_ok(r) ? OUTCOME_OK : r->ok || r->too_large ? OUTCOME_STATUS : OUTCOME_FAILED;
    e->metrics.transfers[kind][o]++;
    e->metrics.bytes_received += r->body_len;
}

/* Parses an answer as `kind` and merges it; false if it is not one. */
static bool merge_answer(engine *e, const transfer_result *r, wire_kind kind, const char *from) {
    wire_message msg;
    char why[256];
    if (!answer_ok(r)) {
        log_debug(e->cfg.log_level, "%s: %s", from, r->ok ? "non-2xx answer" : r->error);
        return false;
    }
    /* What a peer's answer says of the peer is its own word (events: "left"); `from` is its
     * URL for the answers of a round, a probe or a confirmation, a description otherwise,
     * which names no record. */
    const char *speaker = e->events.speaker;
    e->events.speaker = from;
    if (r->records) {
        engine_merge(e, r->records, r->record_count);
    } else if (!wire_parse(r->body, r->body_len, kind, &msg, why, sizeof why)) {
        e->events.speaker = speaker;
        log_warn(e->cfg.log_level, "%s: answer refused: %s", from, why);
        return false;
    } else {
        engine_merge(e, msg.entries, msg.count);
        wire_message_free(&msg);
    }
    e->events.speaker = speaker;
    return true;
}

/* ---- change events: derived here only ---------------------------------------------------- */

/* The membership's change hook: classifies each change (events.h), stores it, and delivers it
 * to the policy hook, the host's callback and the listener, in that order, before the merge
 * goes on: every way sees the same sequence. */
static void on_member_change(void *ctx, const char *url, size_t url_len, bool self, bool dropped,
                             member_view before, member_view after) {
    engine *e = ctx;
    event_kind kind;
    if (self) kind = EVENT_SELF;
    else if (!after.known) kind = EVENT_PURGED;
    else if (!before.known) {
        if (after.status != MEMBER_ONLINE) return; /* first learnt offline: no change of anything known */
        kind = EVENT_JOIN;
    } else if (after.status == MEMBER_ONLINE) kind = EVENT_ALIVE;
    else if (e->events.cause == EVENT_CAUSE_VERDICT) kind = EVENT_FAILED;
    else if (e->events.cause == EVENT_CAUSE_CLAIM) kind = EVENT_OFFLINE;
    else if (e->events.speaker && strlen(e->events.speaker) == url_len && memcmp(e->events.speaker, url, url_len) == 0)
        kind = EVENT_LEFT;
    else kind = EVENT_OFFLINE;
    /* `dropped` (over the state's limit) or past the horizon, the event is the same: gone. */
    if (!e->events.ring.keep && !e->events.host_fn && !e->events.notify && !policy_has_on_change(e->pol)) {
        events_count(&e->events.ring, kind); /* a simulated node nobody listens to: no strings */
        return;
    }
    const shazbot_event *ev = events_add(&e->events.ring, kind, url, url_len, engine_now(e), before, after);
    if (!ev) return; /* out of memory: the event is lost, the state is not */
    log_debug(e->cfg.log_level, "event %llu: %s %s", ev->seq, ev->kind, ev->base_url);
    policy_on_change(e->pol, ev);
    if (e->events.host_fn) e->events.host_fn(ev, e->events.host_arg);
    if (e->events.notify) e->events.notify(e->events.notify_ctx);
}

static void ask_confirmations(engine *e);

void engine_merge(engine *e, const member_update *u, size_t count) {
    uint64_t dropped = e->m->stats.dropped_over_limit;
    membership_merge_all(e->m, u, count, engine_now(e));
    ask_confirmations(e);
    if (e->m->stats.dropped_over_limit != dropped)
        log_warn(e->cfg.log_level,
                 "state over its limit (SHAZBOT_MAX_BODY %zu bytes, which peers refuse beyond): dropped %llu "
                 "records, the oldest offline first (%llu in all)",
                 e->cfg.max_body, (unsigned long long)(e->m->stats.dropped_over_limit - dropped),
                 (unsigned long long)e->m->stats.dropped_over_limit);
}

static long gossip_timeout_ms(const engine *e) { return (long)(config_gossip_timeout(&e->cfg) * 1000); }

/* POSTs a gossip message to a peer: `body`, shared with other transfers (NULL for a
 * transport that carries records: the state as it is when the transfer starts). */
static bool post_gossip(engine *e, const char *peer_url, shared_body *body, long timeout_ms, transfer_done_fn done,
                        void *arg) {
    buf url = {0};
    buf_printf(&url, "%sclustershazbot/gossip", peer_url);
    transfer_request req = {.method = "POST", .url = url.data, .authorization = e->cfg.secret, .shared = body,
                            .sender = e->cfg.base_url,
                            .records = e->transport.carries_records ? e->m : NULL,
                            .timeout_ms = timeout_ms, .direct = true, .compressible = true};
    bool ok = !url.failed && start_transfer_with(e, &req, done, arg);
    buf_free(&url);
    return ok;
}

/* Our state as a gossip message, in *out (NULL for a transport that carries records). False
 * when out of memory. */
static bool gossip_body(engine *e, shared_body **out) {
    *out = NULL;
    if (e->transport.carries_records) return true;
    buf body = {0};
    wire_write_list(&body, e->m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    return (*out = shared_body_take(&body)) != NULL;
}

static bool send_gossip(engine *e, const char *peer_url, transfer_done_fn done) {
    shared_body *body;
    bool ok = gossip_body(e, &body) && post_gossip(e, peer_url, body, gossip_timeout_ms(e), done, e);
    shared_body_unref(body);
    return ok;
}

/* ---- fan-outs: bootstrap and shutdown --------------------------------------------------- */

static void shutdown_progress(engine *e);
static void announce(engine *e);

/* No more transfers start: what was still waiting is dropped, and the body let go (those
 * under way hold their own references). */
static void fanout_close(node_fanout *f) {
    for (size_t i = f->next; i < f->count; i++) free(f->queue[i]);
    free(f->queue);
    f->queue = NULL;
    f->next = f->count;
    shared_body_unref(f->body);
    f->body = NULL;
}

/* Starts waiting transfers while fewer than ENGINE_FANOUT_CONCURRENCY are under way. A
 * transfer gets the gossip timeout, cut to what is left before the deadline; with less than
 * ENGINE_FANOUT_MIN_TIMEOUT_MS left, the rest are dropped. */
static void fanout_pump(engine *e, node_fanout *f, transfer_done_fn done) {
    while (f->active < ENGINE_FANOUT_CONCURRENCY && f->next < f->count) {
        long timeout_ms = gossip_timeout_ms(e);
        if (f->ends_ms) {
            int64_t left = f->ends_ms - engine_now(e);
            if (left < ENGINE_FANOUT_MIN_TIMEOUT_MS) break;
            if (left < timeout_ms) timeout_ms = (long)left;
        }
        char *url = f->queue[f->next];
        f->queue[f->next++] = NULL;
        /* One that cannot start is dropped like one that failed; the transport calls
         * nothing for it. */
        if (url && post_gossip(e, url, f->body, timeout_ms, done, e)) {
            f->active++;
            f->sent++;
        }
        free(url);
    }
    if (f->next == f->count || (f->ends_ms && f->ends_ms - engine_now(e) < ENGINE_FANOUT_MIN_TIMEOUT_MS))
        fanout_close(f);
}

/* Sends our state to the targets of `kind` through `f`, each transfer ending by `ends_ms`
 * (0: no deadline); `done` gets every answer and must call fanout_answered. Returns how many
 * targets the policy named. */
static size_t fanout_begin(engine *e, node_fanout *f, targets_kind kind, int64_t ends_ms, transfer_done_fn done) {
    fanout_close(f);
    /* Transfers of an earlier fan-out may still be under way: they stay counted in `active`. */
    f->count = f->next = f->sent = 0;
    f->ends_ms = ends_ms;
    f->ended = false;
    const member **targets = calloc(e->m->count, sizeof *targets);
    size_t n = targets ? policy_targets(e->pol, e->m, kind, targets) : 0;
    /* The URLs are copied: the records may be purged while their turn comes. */
    f->queue = n ? calloc(n, sizeof *f->queue) : NULL;
    if (f->queue && gossip_body(e, &f->body)) {
        f->count = n;
        for (size_t i = 0; i < n; i++) f->queue[i] = strdup(targets[i]->base_url);
    }
    free(targets);
    fanout_pump(e, f, done);
    return n;
}

/* An answer (or failure) of a transfer of `f` came back: the next one starts. */
static void fanout_answered(engine *e, node_fanout *f, transfer_done_fn done) {
    if (f->active > 0) f->active--;
    fanout_pump(e, f, done);
}

/* True once, when every transfer of `f` has started and been answered. */
static bool fanout_ended(node_fanout *f) {
    if (f->ended || f->next < f->count || f->active > 0) return false;
    f->ended = true;
    return true;
}

static void on_bootstrap_answer(void *arg, const transfer_result *r) {
    engine *e = arg;
    count_transfer(e, TRANSFER_BOOTSTRAP, r);
    merge_answer(e, r, WIRE_GOSSIP, "bootstrap gossip");
    node_fanout *f = &e->bootstrap.fanout;
    fanout_answered(e, f, on_bootstrap_answer);
    if (fanout_ended(f)) log_info(e->cfg.log_level, "bootstrap gossip sent to %zu of %zu peers", f->sent, f->count);
}

/* ---- start: the master list --------------------------------------------------------------- */

static void fetch_master_list(engine *e);

static void on_master_list(void *arg, const transfer_result *r) {
    engine *e = arg;
    count_transfer(e, TRANSFER_MASTER_LIST, r);
    if (e->state != NODE_RUNNING) return;
    bool loaded = merge_answer(e, r, WIRE_LIST, "master list");
    e->metrics.master_list_fetches[loaded]++;
    if (!loaded) {
        log_warn(e->cfg.log_level, "master list %s unavailable (%s); retrying in %.0f s", e->cfg.master_list,
                 r->ok ? "bad answer" : r->error, e->bootstrap.backoff);
        engine_arm(e, e->bootstrap.retry_timer, e->bootstrap.backoff);
        e->bootstrap.backoff = e->bootstrap.backoff * 2 > ENGINE_MASTER_BACKOFF_MAX ? ENGINE_MASTER_BACKOFF_MAX
                                                                                   : e->bootstrap.backoff * 2;
        return;
    }
    e->bootstrap.loaded = true;
    node_fanout *f = &e->bootstrap.fanout;
    size_t n = fanout_begin(e, f, TARGETS_BOOTSTRAP, 0, on_bootstrap_answer);
    log_info(e->cfg.log_level, "master list loaded: %zu known; bootstrap gossip to %zu peers", e->m->count, n);
    if (fanout_ended(f)) log_info(e->cfg.log_level, "bootstrap gossip sent to %zu of %zu peers", f->sent, f->count);
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

/* The next round comes after the policy's delay, or `at_once`. */
static void end_round_then(engine *e, bool at_once) {
    free(e->round.peer);
    e->round.peer = NULL;
    if (e->state == NODE_RUNNING)
        engine_arm(e, e->round.timer, at_once ? 0 : policy_gossip_delay(e->pol, e->cfg.gossip_interval));
}

static void end_round(engine *e) { end_round_then(e, false); }

/* A round (or a round's transfers) came to `result`: counted, with its duration. */
static void round_over(engine *e, round_result result) {
    node_metrics *m = &e->metrics;
    m->rounds[result]++;
    if (result == ROUND_NO_PEER) return;
    static const double bounds[ROUND_BUCKETS] = ROUND_BUCKET_BOUNDS;
    double seconds = (double)(engine_now(e) - m->round_started_ms) / 1000;
    if (seconds < 0) seconds = 0; /* the wall clock stepped back */
    int b = 0;
    while (b < ROUND_BUCKETS && seconds > bounds[b]) b++;
    m->round_buckets[b]++;
    m->round_seconds += seconds;
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
 * it (a record newer than ours, which only the peer itself makes) within the suspicion
 * window, by our clock: then only the link from here is broken, and declaring it offline
 * would have every other node drop a live peer until it refuted (the asymmetric link). A
 * dead peer makes no news, so once the window has passed since the last (its last record
 * may still be spreading for a round or two), the verdict falls as before. With the window
 * 0: never spared, as in the original. */
static bool heard_of_lately(engine *e, const char *url) {
    const member *p = membership_find(e->m, url, strlen(url));
    double window_ms = config_suspicion_window(&e->cfg) * 1000;
    return p && window_ms > 0 && (double)(engine_now(e) - p->heard_ms) < window_ms;
}

/* A verdict is news every node needs: besides the round that follows at once, it goes to a
 * few more distinct random online peers, whose answers are merged: log2 of the peers plus
 * one, at most 4 (4 of 5 peers in a 6-node cluster), so that in a small cluster nearly
 * everyone has it at once. Each holds it while it confirms (third parties confirm, below)
 * and only then passes it on, so every hop saved is a confirmation saved. At most 4 and at
 * most once an interval, so that a node losing half its peers at once (a partition) sends a
 * handful more messages a round, not a storm: with 11 pushes at 1,000 nodes, the simulator
 * measured 2.6 times the bytes of before during a partition. */
#define ENGINE_VERDICT_PUSH_MAX 4

static int verdict_push_count(const engine *e) {
    size_t peers = membership_count(e->m, MEMBER_ONLINE) - (e->m->self->status == MEMBER_ONLINE);
    int k = 1;
    while (k < ENGINE_VERDICT_PUSH_MAX && ((size_t)1 << (k - 1)) <= peers) k++;
    return k; /* floor(log2(peers)) + 2 for peers >= 1, at most ENGINE_VERDICT_PUSH_MAX */
}

static void on_push_answer(void *arg, const transfer_result *r) {
    count_transfer(arg, TRANSFER_PUSH, r);
    merge_answer(arg, r, WIRE_GOSSIP, "verdict push");
}

static void push_verdict(engine *e) {
    int64_t now = engine_now(e);
    if (e->round.last_push_ms && now - e->round.last_push_ms < (int64_t)(e->cfg.gossip_interval * 1000)) return;
    e->round.last_push_ms = now;
    /* One body for every push: the state is the same for all of them. */
    shared_body *body;
    if (!gossip_body(e, &body)) return;
    const member *sent[ENGINE_VERDICT_PUSH_MAX];
    int want = verdict_push_count(e), count = 0;
    /* Distinct peers, drawn as a round's target is (the policy's choice): a few draws more
     * than wanted, since random draws repeat. */
    for (int draw = 0; draw < 3 * want && count < want; draw++) {
        const member *p = policy_gossip_target(e->pol, e->m);
        if (!p) break;
        bool again = false;
        for (int i = 0; i < count; i++) again |= sent[i] == p;
        if (again) continue;
        sent[count++] = p;
        post_gossip(e, p->base_url, body, gossip_timeout_ms(e), on_push_answer, e);
    }
    shared_body_unref(body);
}

/* The lastUpdate of an offline verdict: not "now" (PROTOCOL.md), but twice the suspicion
 * window ago, "offline since at least then" (later than the record it replaces here, in any
 * case). A node that heard from the peer after that, by its own timestamp, keeps it online
 * (rule 3: newer wins), and the peer itself does not need to refute; a node with no news that
 * fresh asks the peer before it takes the verdict ("third parties confirm", below). With the
 * window 0 it is "now", as in the original. */
static int64_t verdict_stamp(engine *e) {
    /* Twice the window: the verdict falls once this node has heard nothing for a window;
     * a node that heard from the peer within twice that keeps it online. */
    return engine_now(e) - (int64_t)(2 * config_suspicion_window(&e->cfg) * 1000);
}

/* Moves `url` offline (stamped by verdict_stamp), tells the observer and pushes the verdict;
 * false when it was not an online peer. */
static bool give_verdict(engine *e, const char *url) {
    e->events.cause = EVENT_CAUSE_VERDICT;
    bool marked = membership_mark_offline(e->m, url, strlen(url), verdict_stamp(e));
    e->events.cause = EVENT_CAUSE_MERGE;
    if (!marked) return false;
    e->metrics.verdicts++;
    log_info(e->cfg.log_level, "peer %s failed twice: now offline", url);
    if (e->observer.peer_failed) e->observer.peer_failed(e->observer.ctx, url);
    push_verdict(e);
    return true;
}

static void watch_spared(engine *e, const char *url);

static void on_round_answer(void *arg, const transfer_result *r) {
    engine *e = arg;
    count_transfer(e, e->round.retried ? TRANSFER_RETRY : TRANSFER_ROUND, r);
    if (!e->round.peer) return;
    if (merge_answer(e, r, WIRE_GOSSIP, e->round.peer)) {
        round_over(e, e->round.retried ? ROUND_RETRIED_OK : ROUND_OK);
        end_round(e);
        return;
    }
    if (e->state != NODE_RUNNING) {
        round_over(e, ROUND_ABORTED);
        end_round(e);
        return;
    }
    if (refused_for_size(r)) {
        log_warn(e->cfg.log_level, "peer %s is alive but %s: not moved offline", e->round.peer,
                 r->ok ? "refused our state as too large (413)" : "answered more than SHAZBOT_MAX_BODY");
        round_over(e, ROUND_TOO_LARGE);
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
        round_over(e, ROUND_SPARED);
        e->round.spared++;
        log_debug(e->cfg.log_level, "peer %s failed twice but others heard from it lately: still online", e->round.peer);
        watch_spared(e, e->round.peer);
        end_round(e);
        return;
    }
    /* Counted as a verdict even when the peer had gone offline meanwhile (by news). */
    round_over(e, ROUND_OFFLINE);
    if (give_verdict(e, e->round.peer)) {
        /* The round went to a dead peer and took the timeouts and the retry: the next one
         * goes at once, to a live peer, and carries the verdict on a round early. A verdict
         * takes an online peer away, so this cannot repeat without end. */
        end_round_then(e, true);
        return;
    }
    end_round(e);
}

/* ---- a spared peer, looked at again ------------------------------------------------------ */

/* A spared peer failed twice: only its news kept it online. If that news was the last record
 * of a peer that just died, still reaching us, no more comes: so once the window has passed
 * since that news, the peer is looked at again, and without newer news the verdict falls
 * then, rather than at our next attempt on it, rounds later. One peer watched at a time. */
static void watch_spared(engine *e, const char *url) {
    const member *p = membership_find(e->m, url, strlen(url));
    if (!p || e->round.watched || !(e->round.watched = strdup(url))) return;
    e->round.watched_heard_ms = p->heard_ms;
    double due = (double)(p->heard_ms - engine_now(e)) / 1000 + config_suspicion_window(&e->cfg);
    engine_arm(e, e->round.watch_timer, due + 0.05);
}

static void on_watch_timer(void *arg) {
    engine *e = arg;
    char *url = e->round.watched;
    e->round.watched = NULL;
    if (!url) return;
    const member *p = membership_find(e->m, url, strlen(url));
    if (e->state == NODE_RUNNING && p && p->status == MEMBER_ONLINE && p->heard_ms == e->round.watched_heard_ms)
        give_verdict(e, url);
    free(url);
}

/* ---- third parties confirm ---------------------------------------------------------------
 * A node that cannot reach a peer (a link cut between those two alone) spares it while news
 * of it keeps coming (spared_until), but news is random: now and then it has had none for
 * long enough and gives its verdict, stamped older than the news most nodes hold, yet newer
 * than what a few of them hold. Those few would drop a live peer until it refuted. So a node
 * does not take another node's word that a peer it lists online is offline: the claim is
 * held (the record stays online), the peer itself is asked (a gossip message, as a round's),
 * and the claim applies only if that fails. A live peer answers with its fresh record, which
 * replaces the claim here and, spreading, at the node that made it; a dead one fails to
 * answer, a quarter of a gossip timeout later than without the check (confirm_timeout_ms). What the peer itself says in its
 * answer (its goodbye, when it is leaving) is its own word, taken at once. At most
 * ENGINE_CONFIRMS peers are asked at once; past that (a partition, many peers lost at once)
 * claims apply at once, as in the original. With the suspicion window 0, never held. */
static bool hold_offline_claim(void *ctx, const member *r, int64_t claimed) {
    engine *e = ctx;
    if (e->state != NODE_RUNNING || config_suspicion_window(&e->cfg) <= 0) return false;
    node_confirms *c = &e->confirms;
    if (e->events.speaker && strcmp(e->events.speaker, r->base_url) == 0) return false;
    node_confirm *free_slot = NULL;
    for (int i = 0; i < ENGINE_CONFIRMS; i++) {
        node_confirm *slot = &c->slot[i];
        if (!slot->peer) {
            if (!free_slot) free_slot = slot;
        } else if (strcmp(slot->peer, r->base_url) == 0) {
            if (claimed > slot->claimed) slot->claimed = claimed;
            return true;
        }
    }
    if (!free_slot || !(free_slot->peer = strdup(r->base_url))) return false;
    *free_slot = (node_confirm){.e = e, .peer = free_slot->peer, .claimed = claimed};
    return true;
}

static void release_confirm(node_confirm *slot) {
    free(slot->peer);
    *slot = (node_confirm){0};
}

/* The held claim applies unless newer news of the peer came in meanwhile. */
static void apply_claim(engine *e, node_confirm *slot) {
    const member *p = membership_find(e->m, slot->peer, strlen(slot->peer));
    if (!p || p->status != MEMBER_ONLINE || p->last_update >= slot->claimed) return;
    e->events.cause = EVENT_CAUSE_CLAIM;
    membership_mark_offline(e->m, slot->peer, strlen(slot->peer), slot->claimed);
    e->events.cause = EVENT_CAUSE_MERGE;
    e->confirms.confirmed++;
    log_info(e->cfg.log_level, "peer %s, reported offline, did not answer: now offline", slot->peer);
}

static void on_confirm_answer(void *arg, const transfer_result *r) {
    node_confirm *slot = arg;
    engine *e = slot->e;
    if (!e) return; /* released: the engine is gone */
    count_transfer(e, TRANSFER_CONFIRM, r);
    bool answered = merge_answer(e, r, WIRE_GOSSIP, slot->peer);
    if (answered || refused_for_size(r)) {
        e->confirms.refuted++;
        log_debug(e->cfg.log_level, "peer %s, reported offline, answered: kept online", slot->peer);
    } else if (e->state == NODE_RUNNING) {
        apply_claim(e, slot);
    }
    release_confirm(slot);
}

/* A quarter of the gossip timeout, 100 ms at least: the claim comes from a node that already
 * waited out two of them, and a live peer answers in milliseconds (what the check is for is
 * a peer that only the claimant cannot reach); one slower than this is taken for dead, as it
 * would have been without the check, and refutes. Every hop of a verdict waits this long. */
#define ENGINE_CONFIRM_MIN_TIMEOUT_MS 100
static long confirm_timeout_ms(const engine *e) {
    long t = gossip_timeout_ms(e) / 4;
    return t > ENGINE_CONFIRM_MIN_TIMEOUT_MS ? t : ENGINE_CONFIRM_MIN_TIMEOUT_MS;
}

static void ask_confirmations(engine *e) {
    shared_body *body = NULL;
    bool written = false;
    for (int i = 0; i < ENGINE_CONFIRMS; i++) {
        node_confirm *slot = &e->confirms.slot[i];
        if (!slot->peer || slot->asked) continue;
        slot->asked = true;
        /* One body for every confirmation asked now: the state is the same for all. */
        if (!written) written = gossip_body(e, &body);
        if (!written || !post_gossip(e, slot->peer, body, confirm_timeout_ms(e), on_confirm_answer, slot)) {
            apply_claim(e, slot);
            release_confirm(slot);
        }
    }
    shared_body_unref(body);
}

/* ---- probes: now and then a round also sends our state to an offline peer --------------- */

/* Gossip goes only to online peers, so two sides of a partition that each moved the other
 * offline never spoke again once the links came back (only an announcement, minutes later,
 * or a restart reconnected them). A probe answered is a live peer: its answer carries its
 * own fresh record and its side's, merged at once, and our message carries its offline
 * record, which it refutes. A probe that fails changes nothing. */
static void on_probe_answer(void *arg, const transfer_result *r) {
    engine *e = arg;
    count_transfer(e, TRANSFER_PROBE, r);
    if (merge_answer(e, r, WIRE_GOSSIP, e->probe.peer ? e->probe.peer : "probe"))
        log_info(e->cfg.log_level, "offline peer %s answered a probe", e->probe.peer);
    free(e->probe.peer);
    e->probe.peer = NULL;
}

static void probe_offline_peer(engine *e) {
    if (e->probe.peer) return; /* one at a time */
    const member *p = policy_probe_target(e->pol, e->m, engine_now(e));
    if (!p || !(e->probe.peer = strdup(p->base_url))) return;
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
        round_over(e, ROUND_NO_PEER);
        end_round(e);
        return;
    }
    e->metrics.round_started_ms = now;
    e->round.retried = false;
    send_round(e);
}

/* ---- master-list announcements ---------------------------------------------------------- */

static void end_announcement(engine *e, announce_result result) {
    e->metrics.announcements[result]++;
    e->announcer.busy = false;
    if (e->state == NODE_RUNNING)
        engine_arm(e, e->announcer.timer,
                   policy_announce_delay(e->pol, e->cfg.announce_minimum, e->cfg.announce_interval));
    else
        shutdown_progress(e);
}

static void on_announce_put(void *arg, const transfer_result *r) {
    engine *e = arg;
    count_transfer(e, TRANSFER_ANNOUNCE, r);
    if (r->ok && r->status == 412 && ++e->announcer.conflicts < ENGINE_ANNOUNCE_MAX_CONFLICTS) {
        /* The list changed since we read it: read, merge and write again. */
        e->metrics.announce_conflicts++;
        log_debug(e->cfg.log_level, "master list changed during the announcement; merging again");
        announce(e);
        return;
    }
    if (answer_ok(r)) log_debug(e->cfg.log_level, "master list announced");
    else log_warn(e->cfg.log_level, "master list upload failed: %s", r->ok ? "non-2xx answer" : r->error);
    end_announcement(e, answer_ok(r) ? ANNOUNCE_OK : ANNOUNCE_FAILED);
}

static void on_announce_get(void *arg, const transfer_result *r) {
    engine *e = arg;
    count_transfer(e, TRANSFER_ANNOUNCE, r);
    /* Uploading without having read the list would throw away every entry we do not know. */
    if (!merge_answer(e, r, WIRE_LIST, "master list")) {
        log_warn(e->cfg.log_level, "announcement skipped: master list unavailable (%s)", r->ok ? "bad answer" : r->error);
        end_announcement(e, ANNOUNCE_SKIPPED);
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
    if (!started) end_announcement(e, ANNOUNCE_FAILED);
}

static void announce(engine *e) {
    e->announcer.busy = true;
    transfer_request req = {.method = "GET", .url = e->cfg.master_list, .timeout_ms = ENGINE_MASTER_LIST_TIMEOUT_MS};
    if (!start_transfer(e, &req, on_announce_get)) end_announcement(e, ANNOUNCE_SKIPPED);
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
    {offsetof(engine, round.watch_timer), on_watch_timer},
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
    if (ok) {
        membership_set_limit(e->m, engine_state_limit(e->cfg.max_body));
        e->m->offline_claim = hold_offline_claim;
        e->m->offline_claim_ctx = e;
        e->m->change = on_member_change;
        e->m->change_ctx = e;
    }
    for (size_t i = 0; ok && i < ENGINE_TIMER_COUNT; i++)
        ok = (*timer_slot(e, i) = clock.timer_new(clock.ctx, engine_timers[i].fire, e)) != NULL;
    if (!ok) snprintf(err, err_len, "cannot set up the node (out of memory?)");
    return ok;
}

void engine_destroy(engine *e) {
    for (size_t i = 0; i < ENGINE_TIMER_COUNT; i++)
        if (*timer_slot(e, i)) e->clock.timer_free(e->clock.ctx, *timer_slot(e, i));
    fanout_close(&e->bootstrap.fanout);
    fanout_close(&e->shutdown.fanout);
    policy_free(e->pol);
    membership_free(e->m);
    free(e->round.peer);
    free(e->round.watched);
    free(e->probe.peer);
    for (int i = 0; i < ENGINE_CONFIRMS; i++) release_confirm(&e->confirms.slot[i]);
    events_free(&e->events.ring);
    config_free(&e->cfg);
    *e = (engine){0};
}

int engine_start(engine *e) {
    if (e->state != NODE_CREATED) return -1;
    e->state = NODE_RUNNING;
    membership_refresh_self(e->m, engine_now(e));
    /* The timings in effect, wherever they came from (set, a profile, the interval). */
    const char *profile = config_profile_name(e->cfg.profile);
    log_info(e->cfg.log_level, "starting as %s: gossip every %g s, timeout %g s, retry %g s, suspicion window %g s%s%s",
             e->cfg.base_url, e->cfg.gossip_interval, config_gossip_timeout(&e->cfg), config_gossip_retry(&e->cfg),
             config_suspicion_window(&e->cfg), profile ? ", profile " : "", profile ? profile : "");
    fetch_master_list(e);
    engine_arm(e, e->round.timer, policy_gossip_delay(e->pol, e->cfg.gossip_interval));
    engine_arm(e, e->announcer.timer, policy_announce_delay(e->pol, e->cfg.announce_minimum, e->cfg.announce_interval));
    return 0;
}

void engine_take_gossip(engine *e, const member_update *u, size_t count, const char *sender) {
    membership_refresh_self(e->m, engine_now(e));
    /* A goodbye comes straight from the node leaving: its own word (hold_offline_claim). */
    const char *speaker = e->events.speaker;
    if (sender) e->events.speaker = sender;
    engine_merge(e, u, count);
    e->events.speaker = speaker;
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
    fanout_close(&e->bootstrap.fanout);
    fanout_close(&e->shutdown.fanout);
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

/* The goodbyes are over once each has been answered or has failed. */
static void check_goodbyes(engine *e) {
    node_fanout *f = &e->shutdown.fanout;
    if (e->shutdown.goodbyes_done || !fanout_ended(f)) return;
    log_info(e->cfg.log_level, "shutdown: goodbyes sent to %zu of %zu peers", f->sent, f->count);
    e->shutdown.goodbyes_done = true;
    shutdown_progress(e);
}

static void on_goodbye_answer(void *arg, const transfer_result *r) {
    engine *e = arg;
    count_transfer(e, TRANSFER_SHUTDOWN, r);
    merge_answer(e, r, WIRE_GOSSIP, "shutdown gossip");
    fanout_answered(e, &e->shutdown.fanout, on_goodbye_answer);
    check_goodbyes(e);
}

static void on_shutdown_deadline(void *arg) {
    engine *e = arg;
    if (!e->shutdown.goodbyes_done) {
        node_fanout *f = &e->shutdown.fanout;
        log_warn(e->cfg.log_level, "shutdown: goodbyes sent to %zu of %zu peers, %zu of them not answered in time",
                 f->sent, f->count, f->active);
        fanout_close(f);
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
    if (e->round.peer) round_over(e, ROUND_ABORTED);
    free(e->round.peer);
    e->round.peer = NULL;
    /* A hello still waiting its turn must not follow the goodbye. */
    fanout_close(&e->bootstrap.fanout);
    membership_set_self_online(e->m, false, engine_now(e));
    int64_t ends_ms = engine_now(e) + (int64_t)(ENGINE_SHUTDOWN_FANOUT_SECONDS * 1000);
    /* The goodbyes' deadline, or the whole shutdown's when the master list is uploaded after
     * them: what /happy counts down (plannedShutdownIn). */
    e->shutdown.planned_end_ms = e->cfg.update_master_list_on_shutdown
                                     ? engine_now(e) + (int64_t)(ENGINE_SHUTDOWN_TOTAL_SECONDS * 1000)
                                     : ends_ms;
    size_t n = fanout_begin(e, &e->shutdown.fanout, TARGETS_SHUTDOWN, ends_ms, on_goodbye_answer);
    log_info(e->cfg.log_level, "shutting down: goodbye to %zu peers", n);
    engine_arm(e, e->shutdown.deadline, ENGINE_SHUTDOWN_FANOUT_SECONDS);
    check_goodbyes(e);
    return 0;
}
