/* requests: the endpoints of PROTOCOL.md as plain functions, (auth, body) -> (status, JSON),
 * used by evhttp (http.c) and by hosts through the C API alike. The hot path (gossip, list,
 * control) never enters Lua; /happy does, through the health hook. */
#include "engine.h"
#include "secret.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

static int error(buf *out, int status, const char *message) {
    wire_write_error(out, message);
    return status;
}

/* Gossip, list and control are answered while the node is part of the cluster, and during
 * its shutdown, when answering spreads its goodbye. */
static bool serving(const shazbot *node) {
    return node->state == NODE_RUNNING || node->state == NODE_STOPPING;
}

int requests_gossip(shazbot *node, const char *auth, const wire_chunk *body, size_t chunks, buf *out) {
    if (!serving(node)) return error(out, 503, "engine not started");
    if (!secret_matches(auth, node->cfg.secret)) return error(out, 401, "wrong or missing secret");
    wire_message msg;
    char why[256];
    if (!wire_parse_chunks(body, chunks, WIRE_GOSSIP, &msg, why, sizeof why)) return error(out, 400, why);
    int64_t now = engine_now_ms();
    membership_refresh_self(node->m, now);
    membership_merge_all(node->m, msg.entries, msg.count, now);
    wire_message_free(&msg);
    wire_write_list(out, node->m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    return 200;
}

int requests_list(shazbot *node, const char *auth, buf *out) {
    if (!serving(node)) return error(out, 503, "engine not started");
    bool full = secret_matches(auth, node->cfg.control_secret);
    wire_write_list(out, node->m, full ? WIRE_WITH_OFFLINE : 0);
    return 200;
}

int requests_control(shazbot *node, const char *auth, const wire_chunk *body, size_t chunks,
                     buf *out) {
    if (!serving(node)) return error(out, 503, "engine not started");
    if (!secret_matches(auth, node->cfg.control_secret))
        return error(out, 401, "wrong or missing control secret");
    wire_message msg;
    char why[256];
    if (!wire_parse_chunks(body, chunks, WIRE_CONTROL, &msg, why, sizeof why)) return error(out, 400, why);
    membership_set_self_online(node->m, msg.control_online, engine_now_ms());
    wire_message_free(&msg);
    buf_add_str(out, "{\"success\":true}");
    return 200;
}

/* ---- the happy-style figures --------------------------------------------------------------- */

static int stats_slot(request_stats *s, int64_t second) {
    int slot = (int)(second % STATS_SECONDS);
    if (s->second[slot] != second) {
        s->second[slot] = second;
        s->requests[slot] = s->fails[slot] = s->errors[slot] = 0;
    }
    return slot;
}

void requests_count(shazbot *node, int status) {
    int slot = stats_slot(&node->stats, engine_now_ms() / 1000);
    node->stats.requests[slot]++;
    if (status >= 400 && status < 500) node->stats.fails[slot]++;
    if (status >= 500) node->stats.errors[slot]++;
}

/* Per second: the last complete second. Per minute: the 60 seconds before this one. */
static void stats_figures(request_stats *s, health_info *info) {
    int64_t now = engine_now_ms() / 1000;
    for (int64_t sec = now - STATS_SECONDS; sec < now; sec++) {
        int slot = (int)(sec % STATS_SECONDS);
        if (s->second[slot] != sec) continue;
        info->req_per_min += s->requests[slot];
        info->fails_per_min += s->fails[slot];
        info->err_per_min += s->errors[slot];
        if (sec == now - 1) info->req_per_sec = s->requests[slot];
    }
}

int requests_happy(shazbot *node, const char *auth, bool quick, buf *out) {
    const char *secret = node->cfg.happy_secret;
    bool open = secret && strcmp(secret, "none") == 0;
    if (!open && (!secret || !secret_matches(auth, secret)))
        return error(out, 401, secret ? "wrong or missing HAPPY_SECRET" : "HAPPY_SECRET is not set");
    bool running = serving(node);
    health_info info = {.running = running, .m = running ? node->m : NULL};
    info.error = running ? NULL : node->state == NODE_CREATED ? "engine not started" : "engine stopped";
    info.skipped_entries = node->m->stats.skipped_url + node->m->stats.skipped_time + node->m->stats.skipped_future;
    info.refutations = node->m->stats.refutations;
    stats_figures(&node->stats, &info);
    if (quick) happy_write_quick(out, &info);
    else policy_health(node->pol, &info, out);
    return 200;
}

/* ---- the C API ------------------------------------------------------------------------------ */

static void respond(shazbot *node, int status, buf *b, shazbot_response *out) {
    requests_count(node, status);
    out->status = status;
    out->body = buf_take(b, &out->body_len);
    if (!out->body) {
        out->status = 500;
        out->body = strdup("{\"error\":\"out of memory\"}");
        out->body_len = out->body ? strlen(out->body) : 0;
    }
}

void shazbot_gossip_request(shazbot *node, const char *auth, const char *body, size_t body_len,
                            shazbot_response *out) {
    buf b = {0};
    wire_chunk whole = {body ? body : "", body ? body_len : 0};
    respond(node, requests_gossip(node, auth, &whole, 1, &b), &b, out);
}

void shazbot_list_request(shazbot *node, const char *auth, shazbot_response *out) {
    buf b = {0};
    respond(node, requests_list(node, auth, &b), &b, out);
}

void shazbot_control_request(shazbot *node, const char *auth, const char *body,
                             size_t body_len, shazbot_response *out) {
    buf b = {0};
    wire_chunk whole = {body ? body : "", body ? body_len : 0};
    respond(node, requests_control(node, auth, &whole, 1, &b), &b, out);
}

void shazbot_happy_request(shazbot *node, const char *auth, int quick, shazbot_response *out) {
    buf b = {0};
    respond(node, requests_happy(node, auth, quick != 0, &b), &b, out);
}

void shazbot_response_free(shazbot_response *r) {
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
