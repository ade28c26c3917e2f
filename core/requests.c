/* requests: see requests.h. The hot path (gossip, list, control) never enters Lua; /happy
 * does, through the health hook. */
#include "requests.h"

#include "engine.h"
#include "metrics.h"
#include "secret.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int error(buf *out, int status, const char *message) {
    wire_write_error(out, message);
    return status;
}

/* What refuses a gossip request before its body is read: 0, or the status with its error. */
static int gossip_refused(engine *e, const char *auth, buf *out) {
    if (!engine_serving(e)) return error(out, 503, "engine not started");
    if (!secret_matches(auth, e->cfg.secret)) return error(out, 401, "wrong or missing secret");
    return 0;
}

int requests_gossip_take(engine *e, const char *auth, const char *sender, const wire_chunk *body, size_t chunks,
                         buf *error_out) {
    int refused = gossip_refused(e, auth, error_out);
    if (refused) return refused;
    wire_message msg;
    char why[256];
    if (!wire_parse_chunks(body, chunks, WIRE_GOSSIP, &msg, why, sizeof why)) return error(error_out, 400, why);
    engine_take_gossip(e, msg.entries, msg.count, sender);
    wire_message_free(&msg);
    return 200;
}

int requests_gossip(engine *e, const char *auth, const char *sender, const wire_chunk *body, size_t chunks, buf *out) {
    int status = requests_gossip_take(e, auth, sender, body, chunks, out);
    if (status == 200) wire_write_list(out, e->m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    return status;
}

int requests_post_refused(engine *e, bool control, const char *auth, buf *out) {
    if (!control) return gossip_refused(e, auth, out);
    if (!engine_serving(e)) return error(out, 503, "engine not started");
    if (!secret_matches(auth, e->cfg.control_secret)) return error(out, 401, "wrong or missing control secret");
    return 0;
}

int requests_gossip_records(engine *e, const char *auth, const char *sender, const member_update *u, size_t count,
                            buf *error_out) {
    int refused = gossip_refused(e, auth, error_out);
    if (refused) return refused;
    engine_take_gossip(e, u, count, sender);
    return 200;
}

unsigned requests_list_flags(engine *e, const char *auth) {
    return secret_matches(auth, e->cfg.control_secret) ? WIRE_WITH_OFFLINE : 0;
}

bool requests_events_after(const char *after, uint64_t *out) {
    *out = 0;
    if (!after) return true;
    if (!*after || strlen(after) > 19) return false;
    for (const char *c = after; *c; c++) {
        if (*c < '0' || *c > '9') return false;
        *out = *out * 10 + (uint64_t)(*c - '0');
    }
    return true;
}

int requests_events(engine *e, const char *auth, const char *after, buf *out) {
    if (!secret_matches(auth, e->cfg.control_secret)) return error(out, 401, "wrong or missing control secret");
    uint64_t seq;
    if (!requests_events_after(after, &seq)) return error(out, 400, "after: expected a decimal event number");
    events_write(&e->events.ring, seq, EVENTS_PAGE, out);
    return 200;
}

int requests_list(engine *e, const char *auth, buf *out) {
    if (!engine_serving(e)) return error(out, 503, "engine not started");
    wire_write_list(out, e->m, requests_list_flags(e, auth));
    return 200;
}

int requests_list_parts(engine *e, const char *auth, wire_list_parts *parts, buf *error_out) {
    if (!engine_serving(e)) return error(error_out, 503, "engine not started");
    wire_list_parts_get(parts, e->m, requests_list_flags(e, auth));
    if (!parts->failed) return 200;
    wire_list_parts_free(parts);
    return error(error_out, 500, "out of memory");
}

int requests_control(engine *e, const char *auth, const wire_chunk *body, size_t chunks,
                     buf *out) {
    int refused = requests_post_refused(e, true, auth, out);
    if (refused) return refused;
    wire_message msg;
    char why[256];
    if (!wire_parse_chunks(body, chunks, WIRE_CONTROL, &msg, why, sizeof why)) return error(out, 400, why);
    membership_set_self_online(e->m, msg.control_online, engine_now(e));
    wire_message_free(&msg);
    buf_add_str(out, "{\"success\":true}");
    return 200;
}

/* ---- the happy-style figures --------------------------------------------------------------- */

static int stats_slot(node_stats *s, int64_t second) {
    int slot = (int)(second % STATS_SECONDS);
    if (s->second[slot] != second) {
        s->second[slot] = second;
        s->requests[slot] = s->fails[slot] = s->errors[slot] = 0;
    }
    return slot;
}

void requests_count(engine *e, int status) {
    int slot = stats_slot(&e->stats, engine_now(e) / 1000);
    e->stats.requests[slot]++;
    if (status >= 400 && status < 500) e->stats.fails[slot]++;
    if (status >= 500) e->stats.errors[slot]++;
    e->stats.answered[status >= 100 && status < 600 ? status / 100 : 0]++;
}

/* As happy-server has them: per second, the mean over the last 10 complete seconds; per
 * minute, the mean over the last 3 complete minutes, taken as the 180 complete seconds
 * before this one (a rolling window, so that the figure moves every second rather than
 * once a minute). Seconds the node was not up count as none. */
#define RATE_SECONDS 10
#define RATE_MINUTES 3
static void stats_figures(engine *e, health_info *info) {
    const node_stats *s = &e->stats;
    int64_t now = engine_now(e) / 1000;
    uint64_t per_sec = 0, requests = 0, fails = 0, errors = 0;
    for (int64_t sec = now - RATE_MINUTES * 60; sec < now; sec++) {
        int slot = (int)(sec % STATS_SECONDS);
        if (s->second[slot] != sec) continue;
        requests += s->requests[slot];
        fails += s->fails[slot];
        errors += s->errors[slot];
        if (sec >= now - RATE_SECONDS) per_sec += s->requests[slot];
    }
    info->req_per_sec = (double)per_sec / RATE_SECONDS;
    info->req_per_min = (double)requests / RATE_MINUTES;
    info->fails_per_min = (double)fails / RATE_MINUTES;
    info->err_per_min = (double)errors / RATE_MINUTES;
}

/* HAPPY_SECRET's rules, for /happy, /happy/quick and /metrics: 0, or the refusal's status. */
static int happy_refused(engine *e, const char *auth, buf *out) {
    const char *secret = e->cfg.happy_secret;
    bool open = secret && strcmp(secret, "none") == 0;
    if (!open && (!secret || !secret_matches(auth, secret)))
        return error(out, 401, secret ? "wrong or missing HAPPY_SECRET" : "HAPPY_SECRET is not set");
    return 0;
}

int requests_happy(engine *e, const char *auth, bool quick, buf *out) {
    int refused = happy_refused(e, auth, out);
    if (refused) return refused;
    bool running = engine_serving(e);
    health_info info = {.running = running, .m = running ? e->m : NULL};
    info.error = running ? NULL : e->state == NODE_CREATED ? "engine not started" : "engine stopped";
    info.skipped_entries = e->m->stats.skipped_url + e->m->stats.skipped_time + e->m->stats.skipped_future +
                          e->m->stats.skipped_expired;
    info.refutations = e->m->stats.refutations;
    info.members_online = e->m->online;
    info.members_offline = e->m->count - e->m->online;
    if (e->state == NODE_STOPPING) {
        double left = (double)(e->shutdown.planned_end_ms - engine_now(e)) / 1000;
        info.shutdown_planned = true;
        /* To the millisecond: the engine's clock counts no finer. */
        info.planned_shutdown_in = left > 0 ? round(left * 1000) / 1000 : 0;
    }
    stats_figures(e, &info);
    policy_health_checks(e->pol, &info, &info.check_failures, &info.check_failure_count);
    if (quick) happy_write_quick(out, &info);
    else policy_health(e->pol, &info, out);
    for (size_t i = 0; i < info.check_failure_count; i++) free(info.check_failures[i]);
    free(info.check_failures);
    /* As happy-server: in its last seconds the node says so to whoever still sends it
     * traffic, with the payload (and its countdown) in the answer. */
    if (info.shutdown_planned && info.planned_shutdown_in <= HAPPY_SHUTDOWN_REFUSAL_SECONDS) return 503;
    return 200;
}

int requests_metrics(engine *e, const char *auth, buf *out) {
    int refused = happy_refused(e, auth, out);
    if (refused) return refused;
    metrics_write(out, e);
    return 200;
}
