/* metrics: see metrics.h.
 *
 * Names under clustershazbot_, in base units (seconds, bytes), counters ending in _total, each
 * family once with its HELP and TYPE, label values from fixed lists: nothing a peer sends ends
 * up in a label, so the number of series is fixed and the text needs no escaping. */
#include "metrics.h"

#include "clustershazbot.h"
#include "policy.h"

#include <inttypes.h>

static const char *const transfer_kinds[TRANSFER_KINDS] = {
    [TRANSFER_ROUND] = "round",         [TRANSFER_RETRY] = "retry",
    [TRANSFER_PROBE] = "probe",         [TRANSFER_CONFIRM] = "confirm",
    [TRANSFER_PUSH] = "push",           [TRANSFER_BOOTSTRAP] = "bootstrap",
    [TRANSFER_SHUTDOWN] = "shutdown",   [TRANSFER_MASTER_LIST] = "master_list",
    [TRANSFER_ANNOUNCE] = "announce",
};

static const char *const transfer_outcomes[OUTCOME_KINDS] = {
    [OUTCOME_OK] = "ok", [OUTCOME_STATUS] = "refused", [OUTCOME_FAILED] = "failed",
};

static const char *const round_results[ROUND_RESULTS] = {
    [ROUND_OK] = "ok",           [ROUND_RETRIED_OK] = "ok_after_retry", [ROUND_TOO_LARGE] = "too_large",
    [ROUND_SPARED] = "spared",   [ROUND_OFFLINE] = "peer_offline",      [ROUND_NO_PEER] = "no_peer",
    [ROUND_ABORTED] = "aborted",
};

static const char *const announce_results[ANNOUNCE_RESULTS] = {
    [ANNOUNCE_OK] = "ok", [ANNOUNCE_SKIPPED] = "skipped", [ANNOUNCE_FAILED] = "failed",
};

static void family(buf *out, const char *name, const char *type, const char *help) {
    buf_printf(out, "# HELP clustershazbot_%s %s\n# TYPE clustershazbot_%s %s\n", name, help, name, type);
}

/* One sample: `labels` is "" or `key="value"` pairs, without the braces. */
static void sample(buf *out, const char *name, const char *labels, uint64_t value) {
    if (*labels) buf_printf(out, "clustershazbot_%s{%s} %" PRIu64 "\n", name, labels, value);
    else buf_printf(out, "clustershazbot_%s %" PRIu64 "\n", name, value);
}

static void labelled(buf *out, const char *name, const char *key, const char *value, uint64_t v) {
    buf_printf(out, "clustershazbot_%s{%s=\"%s\"} %" PRIu64 "\n", name, key, value, v);
}

static void write_rounds(buf *out, const node_metrics *m) {
    family(out, "gossip_rounds_total", "counter", "Gossip rounds by how they ended.");
    for (int r = 0; r < ROUND_RESULTS; r++) labelled(out, "gossip_rounds_total", "result", round_results[r], m->rounds[r]);
    family(out, "gossip_round_duration_seconds", "histogram",
           "Time from a round's first message to its verdict, the retry included (rounds with a peer).");
    static const double bounds[ROUND_BUCKETS] = ROUND_BUCKET_BOUNDS;
    uint64_t cumulative = 0;
    for (int b = 0; b < ROUND_BUCKETS; b++) {
        cumulative += m->round_buckets[b];
        buf_printf(out, "clustershazbot_gossip_round_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", bounds[b],
                   cumulative);
    }
    cumulative += m->round_buckets[ROUND_BUCKETS];
    buf_printf(out, "clustershazbot_gossip_round_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    buf_printf(out, "clustershazbot_gossip_round_duration_seconds_sum %.6f\n", m->round_seconds);
    buf_printf(out, "clustershazbot_gossip_round_duration_seconds_count %" PRIu64 "\n", cumulative);
}

static void write_transfers(buf *out, const node_metrics *m) {
    family(out, "transfers_total", "counter",
           "Transfers this node started, by kind and result (ok: 2xx; refused: another status or an answer "
           "over the limit; failed: no answer).");
    for (int k = 0; k < TRANSFER_KINDS; k++)
        for (int o = 0; o < OUTCOME_KINDS; o++)
            buf_printf(out, "clustershazbot_transfers_total{kind=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                       transfer_kinds[k], transfer_outcomes[o], m->transfers[k][o]);
    family(out, "transfer_bytes_total", "counter",
           "Body bytes of this node's transfers, plain (before any content coding): sent and received.");
    labelled(out, "transfer_bytes_total", "direction", "sent", m->bytes_sent);
    labelled(out, "transfer_bytes_total", "direction", "received", m->bytes_received);
}

static void write_state(buf *out, const engine *e) {
    const membership *ms = e->m;
    family(out, "members", "gauge", "Records of the state by status, this node's own included.");
    labelled(out, "members", "status", "online", ms->online);
    labelled(out, "members", "status", "offline", ms->count - ms->online);
    family(out, "state_records", "gauge", "Records in the state.");
    sample(out, "state_records", "", ms->count);
    family(out, "state_bytes", "gauge", "The most bytes the state's records take in a gossip message.");
    sample(out, "state_bytes", "", ms->wire_bytes);
    family(out, "state_limit_bytes", "gauge", "The most the state may take (from SHAZBOT_MAX_BODY; 0: none).");
    sample(out, "state_limit_bytes", "", ms->max_wire_bytes);
    family(out, "skipped_entries_total", "counter", "Records of messages skipped, by reason.");
    labelled(out, "skipped_entries_total", "reason", "url", ms->stats.skipped_url);
    labelled(out, "skipped_entries_total", "reason", "time", ms->stats.skipped_time);
    labelled(out, "skipped_entries_total", "reason", "future", ms->stats.skipped_future);
    labelled(out, "skipped_entries_total", "reason", "expired", ms->stats.skipped_expired);
    family(out, "dropped_records_total", "counter", "Records dropped to keep the state within its limit.");
    sample(out, "dropped_records_total", "", ms->stats.dropped_over_limit);
    family(out, "refutations_total", "counter", "Claims that this node was offline, refuted by refreshing its record.");
    sample(out, "refutations_total", "", ms->stats.refutations);
    family(out, "peers_failed_total", "counter", "Peers this node moved offline after their transfers failed twice.");
    sample(out, "peers_failed_total", "", e->metrics.verdicts);
    family(out, "offline_claims_total", "counter",
           "Other nodes' claims that an online peer is offline: held to be confirmed, then refuted by the peer "
           "or confirmed.");
    labelled(out, "offline_claims_total", "result", "held", ms->stats.held_offline);
    labelled(out, "offline_claims_total", "result", "refuted", e->confirms.refuted);
    labelled(out, "offline_claims_total", "result", "confirmed", e->confirms.confirmed);
}

static void write_master_list(buf *out, const node_metrics *m) {
    family(out, "master_list_fetches_total", "counter", "Downloads of the master list at start, by result.");
    labelled(out, "master_list_fetches_total", "result", "ok", m->master_list_fetches[1]);
    labelled(out, "master_list_fetches_total", "result", "failed", m->master_list_fetches[0]);
    family(out, "master_list_announcements_total", "counter",
           "Announcements to the master list, by result (skipped: the list could not be read).");
    for (int r = 0; r < ANNOUNCE_RESULTS; r++)
        labelled(out, "master_list_announcements_total", "result", announce_results[r], m->announcements[r]);
    family(out, "master_list_conflicts_total", "counter", "Uploads the store refused (412), read and written again.");
    sample(out, "master_list_conflicts_total", "", m->announce_conflicts);
}

static void write_http(buf *out, const engine *e) {
    static const char *const classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    family(out, "http_responses_total", "counter", "Answers of this node's listener, by status class.");
    for (int c = 0; c < 6; c++) labelled(out, "http_responses_total", "code", classes[c], e->stats.answered[c]);
}

void metrics_write(buf *out, const engine *e) {
    family(out, "info", "gauge", "The version of this node's build.");
    sample(out, "info", "version=\"" SHAZBOT_VERSION "\"", 1);
    family(out, "running", "gauge", "1 while the node is part of its cluster (leaving included).");
    sample(out, "running", "", e->state == NODE_RUNNING || e->state == NODE_STOPPING);
    family(out, "leaving", "gauge", "1 while the node leaves its cluster.");
    sample(out, "leaving", "", e->state == NODE_STOPPING);
    write_state(out, e);
    write_rounds(out, &e->metrics);
    write_transfers(out, &e->metrics);
    write_master_list(out, &e->metrics);
    family(out, "policy_failures_total", "counter", "Policy hooks that failed (the default decided), by hook.");
    for (size_t h = 0; h < POLICY_HOOKS; h++)
        labelled(out, "policy_failures_total", "hook", policy_hook_names[h], policy_hook_failures(e->pol, h));
    write_http(out, e);
    family(out, "events_total", "counter", "Change events of the membership, by kind (README, \"Events\").");
    for (int k = 0; k < EVENT_KINDS; k++)
        labelled(out, "events_total", "kind", event_kind_name((event_kind)k), e->events.ring.counts[k]);
}
