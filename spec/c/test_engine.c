/* The engine's rules (PROTOCOL.md, "Timers and transfers") on virtual time (vclock.c) and a
 * transport scripted by the test: every request the engine starts is recorded, and the test
 * answers it, fails it or leaves it hanging, at the virtual time it chooses. No sockets, no
 * sleeps: the whole file runs in milliseconds.
 *
 * Each case says which rule it pins down; each was checked by breaking that rule in engine.c
 * (the mutation named beside it) and seeing the case fail. */
#include "check.h"
#include "config.h"
#include "engine.h"
#include "vclock.h"
#include "wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SELF "http://127.0.0.1:7001/"
#define PEER "http://127.0.0.1:7002/"
#define OTHER "http://127.0.0.1:7003/"
#define MASTER "http://127.0.0.1:7000/list.json"
#define START_MS 1795478695140LL
#define MAX_REQUESTS 1024

/* ---- the scripted transport ------------------------------------------------------------- */

typedef struct script script;

typedef struct request {
    char method[8];
    char url[256];
    char if_match[64];
    char *body;
    int64_t at_us; /* virtual time it was started */
    long timeout_ms;
    transfer_done_fn done;
    void *arg;
    bool answered;
    script *owner;
    /* Held to the end of the case, as a transport holds it: whether requests were given the
     * same bytes. */
    shared_body *shared;
} request;

struct script {
    vclock *clock;
    request requests[MAX_REQUESTS];
    size_t count;
    bool refuse_starts;
    /* Requests nobody answers fail at the end of their timeout, as libcurl's do. */
    bool time_out;
    size_t in_flight, max_in_flight; /* started and not answered; the most at any time */
};

static void fail(script *s, size_t i);

static void on_request_timeout(void *arg) {
    request *r = arg;
    if (!r->answered) fail(r->owner, (size_t)(r - r->owner->requests));
}

static bool scripted_start(void *ctx, const transfer_request *req, transfer_done_fn done, void *arg) {
    script *s = ctx;
    if (s->refuse_starts || s->count == MAX_REQUESTS) return false;
    request *r = &s->requests[s->count++];
    *r = (request){.done = done, .arg = arg, .at_us = vclock_now_us(s->clock), .timeout_ms = req->timeout_ms};
    snprintf(r->method, sizeof r->method, "%s", req->method);
    snprintf(r->url, sizeof r->url, "%s", req->url);
    snprintf(r->if_match, sizeof r->if_match, "%s", req->if_match ? req->if_match : "");
    size_t len;
    const char *body = transfer_request_body(req, &len);
    r->body = strndup(body ? body : "", len);
    r->timeout_ms = req->timeout_ms;
    r->owner = s;
    r->shared = req->shared ? shared_body_ref(req->shared) : NULL;
    if (++s->in_flight > s->max_in_flight) s->max_in_flight = s->in_flight;
    if (s->time_out) vclock_after(s->clock, (double)req->timeout_ms / 1000, on_request_timeout, r);
    return true;
}

static void answer(script *s, size_t i, long status, const char *body, const char *etag) {
    request *r = &s->requests[i];
    CHECK(!r->answered);
    r->answered = true;
    s->in_flight--;
    transfer_result res = {.ok = true, .status = status, .body = body, .body_len = strlen(body), .etag = etag};
    r->done(r->arg, &res);
}

static void fail(script *s, size_t i) {
    request *r = &s->requests[i];
    CHECK(!r->answered);
    r->answered = true;
    s->in_flight--;
    transfer_result res = {.error = "connection refused", .body = "", .body_len = 0};
    r->done(r->arg, &res);
}

/* The index of the first request since `from` of `method` to `url` (NULL: any), or -1. */
static long find_request(const script *s, size_t from, const char *method, const char *url) {
    for (size_t i = from; i < s->count; i++)
        if ((!method || strcmp(s->requests[i].method, method) == 0) && (!url || strcmp(s->requests[i].url, url) == 0))
            return (long)i;
    return -1;
}

/* ---- a node on virtual time -------------------------------------------------------------- */

typedef struct fixture {
    vclock *clock;
    script script;
    engine e;
    int stopped_calls;
} fixture;

static void set(shazbot_settings *cfg, const char *name, const char *value) {
    char err[256];
    if (!config_set(cfg, name, value, err, sizeof err)) {
        fprintf(stderr, "test setup: %s\n", err);
        exit(2);
    }
}

/* A node whose gossip interval is 10 s and whose announcements come every 100 s; `extra` are
 * more settings, name then value, NULL-terminated. `policy_script`: a user policy or NULL. */
static void setup(fixture *f, const char *policy_script, const char *const *extra) {
    memset(f, 0, sizeof *f);
    f->clock = vclock_new(START_MS);
    f->script.clock = f->clock;
    shazbot_settings cfg;
    config_init(&cfg);
    const char *base[] = {"SHAZBOT_SECRET", "s3cret", "SHAZBOT_CONTROL_SECRET", "ctl",
                          "SHAZBOT_BASE_URL", SELF, "SHAZBOT_MASTER_LIST", MASTER,
                          "SHAZBOT_MASTER_LIST_UPDATE", MASTER, "SHAZBOT_MASTER_LIST_UPDATE_AUTH", "up",
                          "SHAZBOT_GOSSIP_INTERVAL", "10", "SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "100",
                          "SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "0", "SHAZBOT_LOG_LEVEL", "error", NULL};
    for (size_t i = 0; base[i]; i += 2) set(&cfg, base[i], base[i + 1]);
    for (size_t i = 0; extra && extra[i]; i += 2) set(&cfg, extra[i], extra[i + 1]);
    char err[512];
    policy *pol = policy_new(policy_script, err, sizeof err);
    if (!pol) {
        fprintf(stderr, "test setup: %s\n", err);
        exit(2);
    }
    engine_transport transport = {.ctx = &f->script, .start = scripted_start};
    if (!engine_init(&f->e, &cfg, vclock_clock(f->clock), transport, pol, err, sizeof err)) {
        fprintf(stderr, "test setup: %s\n", err);
        exit(2);
    }
    config_free(&cfg);
}

static void teardown(fixture *f) {
    engine_destroy(&f->e);
    for (size_t i = 0; i < f->script.count; i++) {
        free(f->script.requests[i].body);
        shared_body_unref(f->script.requests[i].shared);
    }
    vclock_free(f->clock);
}

static double now_s(const fixture *f) { return (double)(vclock_now_us(f->clock) - START_MS * 1000) / 1e6; }
static void run_until(fixture *f, double seconds) { vclock_run_until(f->clock, START_MS * 1000 + (int64_t)(seconds * 1e6)); }

/* Runs events one at a time until a request of `method` to `url` (NULL: any) appears after
 * the first `from`, or `limit` seconds have passed; its index or -1. Stepping one event at a
 * time leaves the clock at the moment the request was made, so that the test answers it
 * then. */
static long run_until_request(fixture *f, size_t from, const char *method, const char *url, double limit) {
    int64_t until = START_MS * 1000 + (int64_t)(limit * 1e6);
    long found;
    while ((found = find_request(&f->script, from, method, url)) < 0 && vclock_step(f->clock, until)) {
    }
    return found;
}

static const member *record(const fixture *f, const char *url) { return membership_find(f->e.m, url, strlen(url)); }

static const char *list_of(const char *online_url) {
    static char body[512];
    snprintf(body, sizeof body, "{\"online\":[{\"baseUrl\":\"%s\",\"monitor\":false,\"lastUpdate\":0}]}", online_url);
    return body;
}

/* Started, master list answered with PEER, bootstrap gossip answered: PEER is known online. */
static void start_with_peer(fixture *f) {
    CHECK_INT(engine_start(&f->e), 0);
    CHECK_INT(f->script.count, 1);
    CHECK_STR(f->script.requests[0].url, MASTER);
    answer(&f->script, 0, 200, list_of(PEER), NULL);
    long hello = find_request(&f->script, 1, "POST", PEER "clustershazbot/gossip");
    CHECK(hello == 1);
    if (hello >= 0) fail(&f->script, (size_t)hello);
    CHECK(record(f, PEER) && record(f, PEER)->status == MEMBER_ONLINE);
}

static void on_stopped(void *arg) { ((fixture *)arg)->stopped_calls++; }

/* ---- the cases ----------------------------------------------------------------------------- */

/* A failed round is retried once, 3 s later, at the same peer; the second failure moves the
 * peer offline, stamped with the time of the verdict. (Mutations: retry after 2 s; no retry;
 * offline after one failure.) */
static void test_retry_then_offline(void) {
    fixture f;
    /* The original rule: no suspicion window (test_suspicion_window has the window). */
    setup(&f, NULL, (const char *const[]){"SHAZBOT_SUSPICION_WINDOW", "0", NULL});
    start_with_peer(&f);
    size_t before = f.script.count;
    /* The first round comes within interval x [0.9, 1.1]. */
    long round = run_until_request(&f, before, "POST", PEER "clustershazbot/gossip", 11.01);
    CHECK(round >= 0);
    if (round < 0) return teardown(&f);
    double round_at = (double)(f.script.requests[round].at_us - START_MS * 1000) / 1e6;
    CHECK(round_at >= 9.0 && round_at <= 11.0);
    fail(&f.script, (size_t)round);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE); /* one failure is no verdict */
    size_t after_failure = f.script.count;
    run_until(&f, round_at + 2.999);
    CHECK_INT(f.script.count, after_failure); /* nothing before the 3 s */
    run_until(&f, round_at + 3.0);
    long retry = find_request(&f.script, after_failure, "POST", PEER "clustershazbot/gossip");
    CHECK(retry >= 0);
    if (retry < 0) return teardown(&f);
    CHECK(fabs((double)(f.script.requests[retry].at_us - START_MS * 1000) / 1e6 - (round_at + 3.0)) < 1e-3);
    fail(&f.script, (size_t)retry);
    const member *peer = record(&f, PEER);
    CHECK(peer && peer->status == MEMBER_OFFLINE);
    CHECK_INT(peer ? peer->last_update : 0, vclock_now_ms(f.clock));
    /* The next rounds have no online peer left: only probes go to the offline one (engine.c,
     * probes), never retried, and failing them changes nothing. */
    int64_t verdict_ms = vclock_now_ms(f.clock);
    size_t settled = f.script.count;
    for (long probe; (probe = run_until_request(&f, settled, "POST", PEER "clustershazbot/gossip", 60)) >= 0;) {
        settled = (size_t)probe + 1;
        fail(&f.script, (size_t)probe);
    }
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    CHECK_INT(record(&f, PEER)->last_update, verdict_ms);
    /* What /metrics shows of it (metrics.c): each transfer by kind and outcome, the round's
     * verdict, and its duration, the 3 s of the retry, in the (2.5, 5] bucket. (Mutations:
     * the retry counted as a round; the duration from the retry.) */
    const node_metrics *m = &f.e.metrics;
    CHECK_INT(m->transfers[TRANSFER_MASTER_LIST][OUTCOME_OK], 1);
    CHECK_INT(m->master_list_fetches[1], 1);
    CHECK_INT(m->transfers[TRANSFER_BOOTSTRAP][OUTCOME_FAILED], 1);
    CHECK_INT(m->transfers[TRANSFER_ROUND][OUTCOME_FAILED], 1);
    CHECK_INT(m->transfers[TRANSFER_RETRY][OUTCOME_FAILED], 1);
    CHECK_INT(m->transfers[TRANSFER_ROUND][OUTCOME_OK], 0);
    CHECK_INT(m->rounds[ROUND_OFFLINE], 1);
    CHECK_INT(m->rounds[ROUND_OK] + m->rounds[ROUND_RETRIED_OK] + m->rounds[ROUND_SPARED], 0);
    CHECK_INT(m->verdicts, 1);
    CHECK_INT(m->round_buckets[9], 1);
    CHECK(fabs(m->round_seconds - 3.0) < 1e-3);
    CHECK(m->bytes_sent > 0);
    CHECK_INT(m->bytes_received, strlen(list_of(PEER)));
    teardown(&f);
}

/* A retry that succeeds keeps the peer online and merges its answer. (Mutation: mark offline
 * on the retry whatever its outcome.) */
static void test_retry_success_keeps_peer(void) {
    fixture f;
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    size_t before = f.script.count;
    long round = run_until_request(&f, before, "POST", NULL, 11.01);
    CHECK(round >= 0);
    if (round < 0) return teardown(&f);
    fail(&f.script, (size_t)round);
    size_t mark = f.script.count;
    run_until(&f, now_s(&f) + 3.001);
    long retry = find_request(&f.script, mark, "POST", PEER "clustershazbot/gossip");
    CHECK(retry >= 0);
    if (retry < 0) return teardown(&f);
    char body[512];
    snprintf(body, sizeof body, "{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"%s\",\"lastUpdate\":%lld},"
             "{\"baseUrl\":\"%s\",\"lastUpdate\":%lld}],\"offline\":[]}", PEER, (long long)vclock_now_ms(f.clock),
             OTHER, (long long)vclock_now_ms(f.clock));
    answer(&f.script, (size_t)retry, 200, body, NULL);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE);
    CHECK(record(&f, OTHER) && record(&f, OTHER)->status == MEMBER_ONLINE);
    teardown(&f);
}

/* A peer that answers 200 with something that is not a gossip message fails like a peer
 * that does not answer. (Mutation: treat any 2xx as a success.) */
static void test_garbage_answer_is_a_failure(void) {
    const char *garbage[] = {"not json", "{\"online\":[]}" /* a list, not gossip */, "[1,2,3]",
                             "{\"message\":\"gossip\",\"online\":7}"};
    for (size_t g = 0; g < sizeof garbage / sizeof *garbage; g++) {
        fixture f;
        setup(&f, NULL, NULL);
        start_with_peer(&f);
        size_t before = f.script.count;
        long round = run_until_request(&f, before, "POST", NULL, 11.01);
        CHECK(round >= 0);
        if (round < 0) {
            teardown(&f);
            continue;
        }
        answer(&f.script, (size_t)round, 200, garbage[g], NULL);
        size_t mark = f.script.count;
        run_until(&f, now_s(&f) + 3.001);
        long retry = find_request(&f.script, mark, "POST", NULL);
        CHECK(retry >= 0);
        if (retry >= 0) answer(&f.script, (size_t)retry, 200, garbage[g], NULL);
        CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
        CHECK_INT(f.e.m->count, 2); /* nothing of the garbage entered the state */
        teardown(&f);
    }
}

/* The master list is retried after 1, 2, 4 ... seconds, capped at 60, until it loads; then
 * the bootstrap gossip goes out. (Mutations: no doubling; cap 30; give up.) */
static void test_master_list_backoff(void) {
    fixture f;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_GOSSIP_INTERVAL", "100000",
                                          "SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "100000", NULL});
    CHECK_INT(engine_start(&f.e), 0);
    double expected_gaps[] = {1, 2, 4, 8, 16, 32, 60, 60, 60};
    size_t n = sizeof expected_gaps / sizeof *expected_gaps;
    double last_at = 0;
    size_t seen = 0;
    for (size_t i = 0; i <= n; i++) {
        long get = find_request(&f.script, seen, "GET", MASTER);
        CHECK(get >= 0);
        if (get < 0) break;
        double at = (double)(f.script.requests[get].at_us - START_MS * 1000) / 1e6;
        if (i > 0) CHECK(fabs(at - last_at - expected_gaps[i - 1]) < 1e-3);
        last_at = at;
        seen = (size_t)get + 1;
        if (i == n) {
            answer(&f.script, (size_t)get, 200, list_of(PEER), NULL);
            break;
        }
        fail(&f.script, (size_t)get);
        vclock_step(f.clock, INT64_MAX); /* the next event: the retry */
    }
    CHECK(find_request(&f.script, seen, "POST", PEER "clustershazbot/gossip") >= 0);
    CHECK_INT(f.e.metrics.master_list_fetches[0], n);
    CHECK_INT(f.e.metrics.master_list_fetches[1], 1);
    teardown(&f);
}

/* An announcement reads the list, merges it, and writes the online records with If-Match;
 * a 412 starts it over, at most 5 times in a row; the next one comes after the announce
 * delay. (Mutations: no If-Match; retry without reading again; no bound on conflicts.) */
static void test_announcement_conflicts(void) {
    fixture f;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_GOSSIP_INTERVAL", "100000", NULL});
    start_with_peer(&f);
    size_t mark = f.script.count;
    run_until(&f, 100.0);
    int conflicts = 0;
    for (;;) {
        long get = find_request(&f.script, mark, "GET", MASTER);
        CHECK(get >= 0);
        if (get < 0) break;
        char etag[32];
        snprintf(etag, sizeof etag, "\"v%d\"", conflicts);
        answer(&f.script, (size_t)get, 200, list_of(OTHER), etag);
        long put = find_request(&f.script, (size_t)get + 1, "PUT", MASTER);
        CHECK(put >= 0);
        if (put < 0) break;
        CHECK_STR(f.script.requests[put].if_match, etag);
        CHECK_CONTAINS(f.script.requests[put].body, OTHER); /* the merged entry is kept */
        CHECK_CONTAINS(f.script.requests[put].body, SELF);
        CHECK_NOT_CONTAINS(f.script.requests[put].body, "offline");
        mark = (size_t)put + 1;
        answer(&f.script, (size_t)put, 412, "{\"error\":\"changed\"}", NULL);
        conflicts++;
        if (conflicts > 10) break;
        if (find_request(&f.script, mark, "GET", MASTER) < 0) break; /* gave up */
    }
    CHECK_INT(conflicts, ENGINE_ANNOUNCE_MAX_CONFLICTS);
    /* One announcement, failed; every conflict but the last merged and written again. */
    CHECK_INT(f.e.metrics.announcements[ANNOUNCE_FAILED], 1);
    CHECK_INT(f.e.metrics.announcements[ANNOUNCE_OK], 0);
    CHECK_INT(f.e.metrics.announce_conflicts, ENGINE_ANNOUNCE_MAX_CONFLICTS - 1);
    CHECK_INT(f.e.metrics.transfers[TRANSFER_ANNOUNCE][OUTCOME_OK], ENGINE_ANNOUNCE_MAX_CONFLICTS);
    CHECK_INT(f.e.metrics.transfers[TRANSFER_ANNOUNCE][OUTCOME_STATUS], ENGINE_ANNOUNCE_MAX_CONFLICTS);
    /* The next announcement, 100 s later. */
    size_t settled = f.script.count;
    run_until(&f, now_s(&f) + 99.9);
    CHECK_INT(find_request(&f.script, settled, "GET", MASTER), -1);
    run_until(&f, now_s(&f) + 0.2);
    CHECK(find_request(&f.script, settled, "GET", MASTER) >= 0);
    teardown(&f);
}

/* Shutdown says goodbye (self offline) to its targets at once, waits at most 6 s for them,
 * then makes its last announcement if asked, and stops within 25 s in all, calling `done`
 * once. (Mutations: no fan-out deadline; deadline 60 s; done twice.) */
static void test_shutdown_bounded(void) {
    fixture f;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_UPDATE_MASTER_LIST_ON_SHUTDOWN", "true",
                                          "SHAZBOT_GOSSIP_INTERVAL", "100000", NULL});
    start_with_peer(&f);
    size_t mark = f.script.count;
    double t0 = now_s(&f);
    CHECK_INT(engine_shutdown(&f.e, on_stopped, &f), 0);
    CHECK_INT(engine_shutdown(&f.e, on_stopped, &f), -1);
    long goodbye = find_request(&f.script, mark, "POST", PEER "clustershazbot/gossip");
    CHECK(goodbye >= 0);
    if (goodbye >= 0) {
        CHECK_CONTAINS(f.script.requests[goodbye].body, "\"offline\":[{\"baseUrl\":\"" SELF "\"");
    }
    CHECK(f.e.state == NODE_STOPPING);
    run_until(&f, t0 + 5.99);
    CHECK_INT(find_request(&f.script, mark, "GET", MASTER), -1); /* still waiting for the peer */
    run_until(&f, t0 + 6.0);
    long get = find_request(&f.script, mark, "GET", MASTER); /* the last announcement starts */
    CHECK(get >= 0);
    CHECK_INT(f.stopped_calls, 0);
    run_until(&f, t0 + 24.99);
    CHECK_INT(f.stopped_calls, 0);
    run_until(&f, t0 + 25.0);
    CHECK_INT(f.stopped_calls, 1);
    CHECK(f.e.state == NODE_STOPPED);
    /* Late answers change nothing and call nothing again. */
    if (goodbye >= 0) fail(&f.script, (size_t)goodbye);
    if (get >= 0) fail(&f.script, (size_t)get);
    run_until(&f, t0 + 100);
    CHECK_INT(f.stopped_calls, 1);
    teardown(&f);
}

/* Goodbyes that are answered end the shutdown at once. (Mutation: always wait for the
 * deadline.) */
static void test_shutdown_answered_at_once(void) {
    fixture f;
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    size_t mark = f.script.count;
    CHECK_INT(engine_shutdown(&f.e, on_stopped, &f), 0);
    long goodbye = find_request(&f.script, mark, "POST", PEER "clustershazbot/gossip");
    CHECK(goodbye >= 0);
    if (goodbye >= 0) answer(&f.script, (size_t)goodbye, 200, "{\"message\":\"gossip\",\"online\":[]}", NULL);
    CHECK_INT(f.stopped_calls, 1);
    CHECK(f.e.state == NODE_STOPPED);
    teardown(&f);
}

/* ---- fan-outs ---- */

#define FANOUT_PEERS 30
#define FANOUT_MONITORS 300

static void fanout_url(char *out, size_t len, bool monitor, int i) {
    snprintf(out, len, "http://127.0.0.1:%d/%s%d/", 8000 + i, monitor ? "m" : "p", i);
}

/* The node learns FANOUT_PEERS peers and FANOUT_MONITORS monitors, all online. */
static void add_fanout_targets(fixture *f) {
    static char urls[FANOUT_PEERS + FANOUT_MONITORS][64];
    member_update u[FANOUT_PEERS + FANOUT_MONITORS];
    for (int i = 0; i < FANOUT_PEERS + FANOUT_MONITORS; i++) {
        bool monitor = i >= FANOUT_PEERS;
        fanout_url(urls[i], sizeof urls[i], monitor, i);
        u[i] = (member_update){.e = {.base_url = urls[i], .url_len = strlen(urls[i]), .monitor = monitor,
                                     .last_update = vclock_now_ms(f->clock), .last_update_ok = true},
                               .status = MEMBER_ONLINE};
    }
    engine_take_gossip(&f->e, u, FANOUT_PEERS + FANOUT_MONITORS, NULL);
}

static bool is_monitor_url(const char *url) { return strstr(url, "/m") != NULL; }

/* How many requests since `from` went to `url` (a gossip POST to that peer). */
static int posts_to(const fixture *f, size_t from, const char *peer_url) {
    char url[300];
    snprintf(url, sizeof url, "%sclustershazbot/gossip", peer_url);
    int n = 0;
    for (size_t i = from; i < f->script.count; i++) n += strcmp(f->script.requests[i].url, url) == 0;
    return n;
}

/* Checks that the gossip POSTs since `from` went to 20 non-monitor peers first, then to
 * every monitor, once each (PEER, a non-monitor too, may be among the 20), all given the same
 * body. */
static void check_fanout_targets(const fixture *f, size_t from, size_t expected) {
    CHECK_INT(f->script.count - from, expected);
    for (size_t i = from; i < f->script.count && i < from + 20; i++) CHECK(!is_monitor_url(f->script.requests[i].url));
    for (size_t i = from + 20; i < f->script.count; i++) CHECK(is_monitor_url(f->script.requests[i].url));
    for (size_t i = from; i < f->script.count; i++)
        if (!check_that(f->script.requests[i].shared && f->script.requests[i].shared == f->script.requests[from].shared,
                        __FILE__, __LINE__, "one body for the whole fan-out"))
            break;
    for (int i = FANOUT_PEERS; i < FANOUT_PEERS + FANOUT_MONITORS; i++) {
        char url[64];
        fanout_url(url, sizeof url, true, i);
        if (!check_that(posts_to(f, from, url) == 1, __FILE__, __LINE__, "one goodbye per monitor")) break;
    }
}

/* Shutdown with 330 targets that refuse at once: one body for all, at most
 * ENGINE_FANOUT_CONCURRENCY transfers at any time, the next one starting as one ends, every
 * target told, the node stopped as soon as the last has answered. (Mutations: every transfer
 * at once; a body per target; the policy's random 20 drawn among the monitors too.) */
static void test_fanout_bounded(void) {
    fixture f;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_GOSSIP_INTERVAL", "100000", NULL});
    start_with_peer(&f);
    add_fanout_targets(&f);
    size_t mark = f.script.count;
    f.script.max_in_flight = f.script.in_flight;
    CHECK_INT(engine_shutdown(&f.e, on_stopped, &f), 0);
    CHECK_INT(f.script.count - mark, ENGINE_FANOUT_CONCURRENCY); /* the first ones, at once */
    for (size_t i = mark; i < f.script.count; i++) {
        if (!check_that(f.script.requests[i].answered == false, __FILE__, __LINE__, "goodbye waits")) break;
        CHECK_CONTAINS(f.script.requests[i].body, "\"offline\":[{\"baseUrl\":\"" SELF "\"");
    }
    /* Answered one at a time, oldest first: each answer starts the next. */
    for (size_t i = mark; i < f.script.count && f.stopped_calls == 0; i++) {
        CHECK(f.script.in_flight <= ENGINE_FANOUT_CONCURRENCY);
        fail(&f.script, i);
    }
    CHECK_INT(f.script.max_in_flight, ENGINE_FANOUT_CONCURRENCY);
    check_fanout_targets(&f, mark, 20 + FANOUT_MONITORS);
    CHECK_INT(f.stopped_calls, 1);
    CHECK(f.e.shutdown.fanout.body == NULL && f.e.shutdown.fanout.queue == NULL); /* let go at the end */
    teardown(&f);
}

/* Shutdown with 330 targets that never answer: every transfer ends by the fan-out deadline
 * (its timeout cut to what is left), none starts with less than
 * ENGINE_FANOUT_MIN_TIMEOUT_MS left, the 20 non-monitor peers are all told, and the node
 * stops at the deadline. (Mutations: the gossip timeout whatever the deadline; no
 * ordering.) */
static void test_fanout_deadline(void) {
    fixture f;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_GOSSIP_INTERVAL", "100000", NULL});
    start_with_peer(&f);
    add_fanout_targets(&f);
    f.script.time_out = true;
    size_t mark = f.script.count;
    f.script.max_in_flight = f.script.in_flight;
    int64_t t0_us = vclock_now_us(f.clock);
    int64_t deadline_us = t0_us + (int64_t)(ENGINE_SHUTDOWN_FANOUT_SECONDS * 1e6);
    CHECK_INT(engine_shutdown(&f.e, on_stopped, &f), 0);
    for (size_t i = mark; i < mark + 20 && i < f.script.count; i++) CHECK(!is_monitor_url(f.script.requests[i].url));
    vclock_run_until(f.clock, deadline_us);
    CHECK_INT(f.stopped_calls, 1);
    CHECK(f.script.max_in_flight <= ENGINE_FANOUT_CONCURRENCY);
    CHECK(f.script.count - mark > ENGINE_FANOUT_CONCURRENCY); /* more started as the first timed out */
    CHECK(f.script.count - mark < 20 + FANOUT_MONITORS);      /* the rest were dropped at the deadline */
    for (size_t i = mark; i < f.script.count; i++) {
        const request *r = &f.script.requests[i];
        bool ok = r->at_us + r->timeout_ms * 1000 <= deadline_us &&
                  r->at_us + ENGINE_FANOUT_MIN_TIMEOUT_MS * 1000 <= deadline_us && r->answered;
        if (!check_that(ok, __FILE__, __LINE__, "a goodbye that ends by the deadline")) break;
    }
    teardown(&f);
}

/* The bootstrap gossip is bounded the same way and reaches every target, its answers merged
 * as they come. (Mutation: every transfer at once.) */
static void test_fanout_bootstrap(void) {
    fixture f;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_GOSSIP_INTERVAL", "100000", NULL});
    CHECK_INT(engine_start(&f.e), 0);
    static char list[(FANOUT_PEERS + FANOUT_MONITORS) * 100 + 64];
    size_t len = (size_t)snprintf(list, sizeof list, "{\"online\":[");
    for (int i = 0; i < FANOUT_PEERS + FANOUT_MONITORS; i++) {
        char url[64];
        fanout_url(url, sizeof url, i >= FANOUT_PEERS, i);
        len += (size_t)snprintf(list + len, sizeof list - len, "%s{\"baseUrl\":\"%s\",\"monitor\":%s,\"lastUpdate\":0}",
                                i ? "," : "", url, i >= FANOUT_PEERS ? "true" : "false");
    }
    snprintf(list + len, sizeof list - len, "]}");
    size_t mark = 1;
    answer(&f.script, 0, 200, list, NULL);
    CHECK_INT(f.script.count - mark, ENGINE_FANOUT_CONCURRENCY);
    char answer_body[256];
    snprintf(answer_body, sizeof answer_body, "{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"%s\",\"lastUpdate\":%lld}],"
             "\"offline\":[]}", OTHER, (long long)vclock_now_ms(f.clock));
    for (size_t i = mark; i < f.script.count; i++) {
        CHECK(f.script.in_flight <= ENGINE_FANOUT_CONCURRENCY);
        if (i == mark) answer(&f.script, i, 200, answer_body, NULL);
        else fail(&f.script, i);
    }
    check_fanout_targets(&f, mark, 20 + FANOUT_MONITORS);
    CHECK(record(&f, OTHER) && record(&f, OTHER)->status == MEMBER_ONLINE);
    CHECK(f.e.bootstrap.fanout.body == NULL);
    teardown(&f);
}

/* A request the transport cannot start fails the round at once, like a refused connection.
 * (Mutation: leave the round hanging.) */
static void test_unstartable_request(void) {
    fixture f;
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    f.script.refuse_starts = true;
    run_until(&f, 11.01 + 3.0);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    teardown(&f);
}

/* Delays a policy answers are clamped: 1e300 s arms the timer for 30 days, not for a
 * negative time that fires at once for ever. (Mutation: no clamp in engine_arm.) */
static void count_firing(void *arg) { ++*(int *)arg; }

static void test_timers_clamped(void) {
    char path[] = "/tmp/shazbot-test-engine-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *huge_delay = "return { gossip_delay = function() return 1e300 end }\n";
    CHECK(write(fd, huge_delay, strlen(huge_delay)) == (ssize_t)strlen(huge_delay));
    close(fd);
    fixture f;
    setup(&f, path, NULL);
    start_with_peer(&f);
    size_t mark = f.script.count;
    run_until(&f, ENGINE_ARM_MAX_SECONDS - 1);
    CHECK_INT(find_request(&f.script, mark, "POST", NULL), -1);
    run_until(&f, ENGINE_ARM_MAX_SECONDS + 1);
    CHECK(find_request(&f.script, mark, "POST", NULL) >= 0);
    /* And the other way: arming for a negative or NaN time means now, not never. */
    int fired = 0;
    engine_timer *t = f.e.clock.timer_new(f.e.clock.ctx, count_firing, &fired);
    engine_arm(&f.e, t, -5);
    vclock_step(f.clock, vclock_now_us(f.clock));
    engine_arm(&f.e, t, NAN);
    vclock_step(f.clock, vclock_now_us(f.clock));
    CHECK_INT(fired, 2);
    f.e.clock.timer_free(f.e.clock.ctx, t);
    teardown(&f);
    unlink(path);
}

/* A halted engine (the simulator's kill -9) runs no timer again. (Mutation: halt without
 * stopping the round timer.) */
static void test_halt_stops_everything(void) {
    fixture f;
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    engine_halt(&f.e);
    size_t mark = f.script.count;
    run_until(&f, 1000);
    CHECK_INT(f.script.count, mark);
    teardown(&f);
}

/* ---- issue 10: suspicion, probes, size refusals, timings, the state's limit ----------------- */

/* Brings news of `url`: a gossip message whose record of it is stamped now, as a third party
 * relaying a live peer's refresh would. */
static void news_of(fixture *f, const char *url, member_status s) {
    member_update u = {.e = {.base_url = url, .url_len = strlen(url), .last_update = vclock_now_ms(f->clock),
                             .last_update_ok = true},
                       .status = s};
    engine_take_gossip(&f->e, &u, 1, NULL);
}

/* Fails every round request to PEER until `until` seconds, bringing news of it every
 * `news_every` seconds (0: never); returns when PEER goes offline, or at `until`. */
static void fail_rounds(fixture *f, double until, double news_every) {
    double next_news = news_every > 0 ? now_s(f) : until + 1;
    size_t from = f->script.count;
    while (now_s(f) < until && record(f, PEER)->status == MEMBER_ONLINE) {
        double step_to = next_news < until ? next_news : until;
        long req = run_until_request(f, from, "POST", PEER "clustershazbot/gossip", step_to);
        if (req >= 0) {
            from = (size_t)req + 1;
            fail(&f->script, (size_t)req);
        } else if (now_s(f) >= next_news - 1e-9) {
            news_of(f, PEER, MEMBER_ONLINE);
            next_news += news_every;
        }
    }
}

/* A peer that fails twice while others keep bringing news of it (the asymmetric link) stays
 * online; once the news stops, the verdict falls after the window, stamped "offline since at
 * least" twice the window before, or just after the last news if that is later. (Mutations:
 * no window; the verdict stamped now; news not recorded.) */
static void test_suspicion_window(void) {
    fixture f;
    setup(&f, NULL, NULL); /* interval 10 s: window 15 s */
    start_with_peer(&f);
    fail_rounds(&f, 120, 4); /* news every 4 s, for two minutes */
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE);
    CHECK(f.e.round.spared >= 3);
    /* Silence from now on: offline at the end of the first round that fails once the window
     * has passed without news. */
    double silent_from = now_s(&f);
    int64_t last_news = record(&f, PEER)->last_update;
    fail_rounds(&f, silent_from + 15 + 11 + 8.1, 0);
    const member *peer = record(&f, PEER);
    CHECK(peer->status == MEMBER_OFFLINE);
    CHECK(now_s(&f) - silent_from >= 15);
    /* The clock may have moved on since the verdict by a round at most. */
    CHECK(peer->last_update > last_news);
    CHECK(peer->last_update == last_news + 1 || peer->last_update <= vclock_now_ms(f.clock) - 2 * 15000);
    teardown(&f);
    /* With the window 0: the original rule, offline after two failures, stamped now. */
    setup(&f, NULL, (const char *const[]){"SHAZBOT_SUSPICION_WINDOW", "0", NULL});
    start_with_peer(&f);
    fail_rounds(&f, 40, 4);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    CHECK_INT(record(&f, PEER)->last_update, vclock_now_ms(f.clock));
    teardown(&f);
}

/* A peer spared for its news is looked at again once the window has passed since that news:
 * without newer news the verdict falls then, not at our next attempt on it, rounds later (the
 * last record of a peer that just died, still reaching us). (Mutation: no second look.) */
static void test_spared_peer_looked_at_again(void) {
    fixture f;
    setup(&f, NULL, NULL); /* interval 10 s: window 15 s */
    start_with_peer(&f);
    long round = run_until_request(&f, f.script.count, "POST", PEER "clustershazbot/gossip", 12);
    CHECK(round >= 0);
    if (round < 0) return teardown(&f);
    news_of(&f, PEER, MEMBER_ONLINE); /* its last record arrives just now */
    double heard_at = now_s(&f);
    fail(&f.script, (size_t)round);
    long retry = run_until_request(&f, (size_t)round + 1, "POST", PEER "clustershazbot/gossip", heard_at + 4);
    CHECK(retry >= 0);
    if (retry >= 0) fail(&f.script, (size_t)retry);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE); /* spared */
    /* The next round on it fails too, and its retry is due after the window: by then the
     * second look has moved it offline. */
    size_t from = f.script.count;
    while (now_s(&f) < heard_at + 15.2) {
        long next = run_until_request(&f, from, "POST", PEER "clustershazbot/gossip", heard_at + 15.2);
        if (next < 0) break;
        from = (size_t)next + 1;
        fail(&f.script, (size_t)next);
    }
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    teardown(&f);
}

/* Rounds also probe an offline peer now and then; one that answers is online again at once
 * with what it said, and a probe is never retried. (Mutations: no probes; probes retried.) */
static void test_probe_brings_back(void) {
    fixture f;
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    /* PEER goes offline through a third party's verdict, once it fails to confirm it. */
    size_t claimed_at = f.script.count;
    news_of(&f, PEER, MEMBER_OFFLINE);
    long confirm = find_request(&f.script, claimed_at, "POST", PEER "clustershazbot/gossip");
    CHECK(confirm >= 0);
    if (confirm >= 0) fail(&f.script, (size_t)confirm);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    size_t from = f.script.count;
    long probe = run_until_request(&f, from, "POST", PEER "clustershazbot/gossip", 200);
    CHECK(probe >= 0);
    if (probe < 0) return teardown(&f);
    CHECK_CONTAINS(f.script.requests[probe].body, "\"offline\":[{\"baseUrl\":\"" PEER "\""); /* it can refute */
    /* A failed probe changes nothing and is not retried. */
    fail(&f.script, (size_t)probe);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    size_t after = f.script.count;
    run_until(&f, now_s(&f) + 3.5);
    long again = find_request(&f.script, after, "POST", PEER "clustershazbot/gossip");
    CHECK(again < 0 || (double)(f.script.requests[again].at_us - f.script.requests[probe].at_us) / 1e6 > 8);
    /* The next probe is answered by a live peer: online at once. */
    probe = run_until_request(&f, after, "POST", PEER "clustershazbot/gossip", now_s(&f) + 200);
    CHECK(probe >= 0);
    if (probe < 0) return teardown(&f);
    char body[512];
    snprintf(body, sizeof body, "{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"%s\",\"lastUpdate\":%lld}]}", PEER,
             (long long)vclock_now_ms(f.clock) + 1);
    answer(&f.script, (size_t)probe, 200, body, NULL);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE);
    teardown(&f);
}

/* Another node's word that a peer is offline is not taken at once: the peer is asked first
 * (a gossip message), and the claim applies only if that fails. A live peer's answer keeps
 * it online; a peer's own word that it is offline (its goodbye, in the answer) is taken; with
 * more claims than confirmations at once, or with the window 0, claims apply at once.
 * (Mutations: claims never held; a claim applied though the peer answered; the peer's own
 * word held.) */
static const char *gossip_answer_of(const char *url, member_status status, int64_t last_update) {
    static char body[1024];
    char record[300];
    snprintf(record, sizeof record, "{\"baseUrl\":\"%s\",\"monitor\":false,\"lastUpdate\":%lld}", url, (long long)last_update);
    snprintf(body, sizeof body, "{\"message\":\"gossip\",\"online\":[%s],\"offline\":[%s]}",
             status == MEMBER_ONLINE ? record : "", status == MEMBER_OFFLINE ? record : "");
    return body;
}

static void test_third_party_claims_confirmed(void) {
    fixture f;
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    /* A live peer: asked, it answers, it stays online with its own fresher record. */
    size_t from = f.script.count;
    news_of(&f, PEER, MEMBER_OFFLINE);
    int64_t claim = vclock_now_ms(f.clock);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE);
    long ask = find_request(&f.script, from, "POST", PEER "clustershazbot/gossip");
    CHECK(ask >= 0);
    if (ask < 0) return teardown(&f);
    CHECK_INT(f.script.requests[ask].timeout_ms, 1250); /* a quarter of the gossip timeout (5 s at 10 s) */
    run_until(&f, now_s(&f) + 0.2);
    answer(&f.script, (size_t)ask, 200, gossip_answer_of(PEER, MEMBER_ONLINE, vclock_now_ms(f.clock)), NULL);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE);
    CHECK(record(&f, PEER)->last_update > claim);
    CHECK_INT(f.e.confirms.refuted, 1);
    /* A claim repeated while it is being confirmed asks once. */
    from = f.script.count;
    run_until(&f, now_s(&f) + 0.2);
    news_of(&f, PEER, MEMBER_OFFLINE);
    news_of(&f, PEER, MEMBER_OFFLINE);
    claim = vclock_now_ms(f.clock);
    ask = find_request(&f.script, from, "POST", PEER "clustershazbot/gossip");
    CHECK(ask >= 0 && find_request(&f.script, (size_t)ask + 1, "POST", PEER "clustershazbot/gossip") < 0);
    if (ask < 0) return teardown(&f);
    /* It does not answer: the claim applies, with its own stamp. */
    fail(&f.script, (size_t)ask);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    CHECK_INT(record(&f, PEER)->last_update, claim);
    CHECK_INT(f.e.confirms.confirmed, 1);
    /* Back online; then a claim whose confirmation the peer answers with its goodbye. */
    run_until(&f, now_s(&f) + 0.2);
    news_of(&f, PEER, MEMBER_ONLINE);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE);
    from = f.script.count;
    run_until(&f, now_s(&f) + 0.2);
    news_of(&f, PEER, MEMBER_OFFLINE);
    ask = find_request(&f.script, from, "POST", PEER "clustershazbot/gossip");
    CHECK(ask >= 0);
    if (ask < 0) return teardown(&f);
    answer(&f.script, (size_t)ask, 200, gossip_answer_of(PEER, MEMBER_OFFLINE, vclock_now_ms(f.clock) + 1), NULL);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    CHECK_INT(record(&f, PEER)->last_update, vclock_now_ms(f.clock) + 1); /* its word, not the claim */
    teardown(&f);

    /* A goodbye straight from the peer (its Clustershazbot-From header) is its own word. */
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    run_until(&f, now_s(&f) + 0.2);
    from = f.script.count;
    member_update bye = {.e = {.base_url = PEER, .url_len = strlen(PEER), .last_update = vclock_now_ms(f.clock),
                               .last_update_ok = true},
                         .status = MEMBER_OFFLINE};
    engine_take_gossip(&f.e, &bye, 1, OTHER);
    CHECK(record(&f, PEER)->status == MEMBER_ONLINE); /* another's word about it: held */
    engine_take_gossip(&f.e, &bye, 1, PEER);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    teardown(&f);

    /* More claims at once than confirmations: the ones past ENGINE_CONFIRMS apply at once. */
    setup(&f, NULL, NULL);
    start_with_peer(&f);
    enum { PEERS = ENGINE_CONFIRMS + 2 };
    char urls[PEERS][64];
    member_update u[PEERS];
    for (int i = 0; i < PEERS; i++) {
        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d/", 7100 + i);
        u[i] = (member_update){.e = {.base_url = urls[i], .url_len = strlen(urls[i]),
                                     .last_update = vclock_now_ms(f.clock), .last_update_ok = true},
                              .status = MEMBER_ONLINE};
    }
    engine_take_gossip(&f.e, u, PEERS, NULL);
    run_until(&f, now_s(&f) + 0.2);
    from = f.script.count;
    for (int i = 0; i < PEERS; i++) {
        u[i].status = MEMBER_OFFLINE;
        u[i].e.last_update = vclock_now_ms(f.clock);
    }
    engine_take_gossip(&f.e, u, PEERS, NULL);
    int held = 0, asked = 0;
    for (int i = 0; i < PEERS; i++) {
        char url[512];
        snprintf(url, sizeof url, "%sclustershazbot/gossip", urls[i]);
        held += record(&f, urls[i])->status == MEMBER_ONLINE;
        asked += find_request(&f.script, from, "POST", url) >= 0;
    }
    CHECK_INT(held, ENGINE_CONFIRMS);
    CHECK_INT(asked, ENGINE_CONFIRMS);
    teardown(&f);

    /* With the suspicion window 0: as in the original, taken at once, nobody asked. */
    setup(&f, NULL, (const char *const[]){"SHAZBOT_SUSPICION_WINDOW", "0", NULL});
    start_with_peer(&f);
    from = f.script.count;
    news_of(&f, PEER, MEMBER_OFFLINE);
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    CHECK(find_request(&f.script, from, "POST", PEER "clustershazbot/gossip") < 0);
    teardown(&f);
}

/* A peer that refuses our state as too large (413), or whose answer is over our limit, is
 * alive: no retry, no verdict. (Mutation: a 413 handled as a failure.) */
static void test_size_refusal_is_no_verdict(void) {
    for (int kind = 0; kind < 2; kind++) {
        fixture f;
        setup(&f, NULL, (const char *const[]){"SHAZBOT_SUSPICION_WINDOW", "0", NULL});
        start_with_peer(&f);
        for (int round = 0; round < 3; round++) {
            long req = run_until_request(&f, f.script.count, "POST", PEER "clustershazbot/gossip", now_s(&f) + 12);
            CHECK(req >= 0);
            if (req < 0) break;
            request *r = &f.script.requests[req];
            r->answered = true;
            transfer_result res = kind == 0 ? (transfer_result){.ok = true, .status = 413, .body = "{\"error\":\"too big\"}",
                                                                .body_len = 19}
                                            : (transfer_result){.error = "answer larger than the body limit",
                                                                .too_large = true, .body = ""};
            r->done(r->arg, &res);
            size_t mark = f.script.count;
            run_until(&f, now_s(&f) + 3.5);
            CHECK_INT(find_request(&f.script, mark, "POST", PEER "clustershazbot/gossip"), -1); /* no retry */
        }
        CHECK(record(&f, PEER)->status == MEMBER_ONLINE);
        teardown(&f);
    }
}

/* The gossip timeout and retry follow the interval unless set: 1 s and 0.5 s at a 1 s
 * interval; 5 s and 3 s from a 10 s interval on; as set when set. (Mutation: fixed 5 s.) */
static void test_timings_follow_interval(void) {
    const struct {
        const char *interval, *timeout, *retry;
        long want_timeout_ms;
        double want_retry;
    } cases[] = {{"1", NULL, NULL, 1000, 0.5}, {"10", NULL, NULL, 5000, 3}, {"4", NULL, NULL, 4000, 2},
                 {"1", "2.5", "0.25", 2500, 0.25}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *extra[10] = {"SHAZBOT_GOSSIP_INTERVAL", cases[i].interval, "SHAZBOT_SUSPICION_WINDOW", "0", NULL};
        if (cases[i].timeout) {
            extra[4] = "SHAZBOT_GOSSIP_TIMEOUT", extra[5] = cases[i].timeout;
            extra[6] = "SHAZBOT_GOSSIP_RETRY", extra[7] = cases[i].retry;
        }
        fixture f;
        setup(&f, NULL, extra);
        start_with_peer(&f);
        long round = run_until_request(&f, f.script.count, "POST", PEER "clustershazbot/gossip", 20);
        CHECK(round >= 0);
        if (round < 0) {
            teardown(&f);
            continue;
        }
        CHECK_INT(f.script.requests[round].timeout_ms, cases[i].want_timeout_ms);
        fail(&f.script, (size_t)round);
        long retry = run_until_request(&f, (size_t)round + 1, "POST", PEER "clustershazbot/gossip", 40);
        CHECK(retry >= 0);
        if (retry >= 0)
            CHECK(fabs((double)(f.script.requests[retry].at_us - f.script.requests[round].at_us) / 1e6 - cases[i].want_retry) < 1e-3);
        teardown(&f);
    }
}

/* The state stays within what a peer with the same SHAZBOT_MAX_BODY accepts: past it, the
 * oldest offline records go first, the own record and the online peers stay, and our gossip
 * body fits. (Mutations: no limit; the newest offline dropped first.) */
static void test_state_limit(void) {
    fixture f;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_MAX_BODY", "65536", NULL});
    start_with_peer(&f);
    enum { N = 2000 };
    static member_update u[N];
    static char urls[N][48];
    int64_t now = vclock_now_ms(f.clock);
    for (int i = 0; i < N; i++) {
        snprintf(urls[i], sizeof urls[i], "http://10.9.%d.%d:3000/", i / 250, i % 250);
        u[i] = (member_update){.e = {.base_url = urls[i], .url_len = strlen(urls[i]), .last_update = now - 1000 * (N - i),
                                     .last_update_ok = true},
                               .status = MEMBER_OFFLINE};
    }
    engine_take_gossip(&f.e, u, N, NULL);
    buf body = {0};
    wire_write_list(&body, f.e.m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    CHECK(body.len <= 65536);
    CHECK(f.e.m->wire_bytes <= engine_state_limit(65536));
    CHECK(f.e.m->stats.dropped_over_limit > 0);
    CHECK(record(&f, PEER) && record(&f, PEER)->status == MEMBER_ONLINE);
    CHECK(record(&f, SELF) == f.e.m->self);
    /* The newest offline records are the ones kept. */
    CHECK(membership_find(f.e.m, urls[N - 1], strlen(urls[N - 1])) != NULL);
    CHECK(membership_find(f.e.m, urls[0], strlen(urls[0])) == NULL);
    buf_free(&body);
    teardown(&f);
}


/* ---- change events ------------------------------------------------------------------------ */

/* What the host's callback saw: "kind port" per event, ports of 127.0.0.1 named by their last
 * digit (7001 is SELF, 7002 PEER, 7003 OTHER), joined by spaces. */
typedef struct event_log {
    char text[2048];
    unsigned long long last_seq;
    bool out_of_order;
} event_log;

static void record_event(const shazbot_event *ev, void *arg) {
    event_log *log = arg;
    if (ev->seq != log->last_seq + 1) log->out_of_order = true;
    log->last_seq = ev->seq;
    size_t len = strlen(log->text), url_len = strlen(ev->base_url);
    snprintf(log->text + len, sizeof log->text - len, "%s%s %c", len ? " " : "", ev->kind,
             url_len >= 2 ? ev->base_url[url_len - 2] : '?');
}

static void watch_events(fixture *f, event_log *log) {
    memset(log, 0, sizeof *log);
    f->e.events.ring.keep = true;
    f->e.events.host_fn = record_event;
    f->e.events.host_arg = log;
}

static member_update update_of(const char *url, member_status s, int64_t last_update) {
    return (member_update){.e = {.base_url = url, .url_len = strlen(url), .last_update = last_update,
                                 .last_update_ok = true},
                           .status = s};
}

/* Each change is classified by where it comes from (engine.c, on_member_change): join, alive,
 * failed (our verdict), left (the peer's own word: its goodbye, or its own answer), offline
 * (another's word), purged, self (control, refutation); a record first learnt offline is no
 * event. (Mutations: every offline change "offline"; the speaker not compared; the verdict's
 * cause not set; an event for a record first learnt offline.) */
static void test_events_classified(void) {
    fixture f;
    event_log log;
    setup(&f, NULL, (const char *const[]){"SHAZBOT_SUSPICION_WINDOW", "0", NULL});
    watch_events(&f, &log);
    start_with_peer(&f);
    CHECK_STR(log.text, "join 2");
    /* Our verdict on PEER (its only peer): its round and its retry fail. */
    for (int attempt = 0; attempt < 2 && record(&f, PEER)->status == MEMBER_ONLINE; attempt++) {
        long req = run_until_request(&f, f.script.count, "POST", PEER "clustershazbot/gossip", now_s(&f) + 20);
        CHECK(req >= 0);
        if (req < 0) break;
        fail(&f.script, (size_t)req);
    }
    CHECK(record(&f, PEER)->status == MEMBER_OFFLINE);
    CHECK_STR(log.text, "join 2 failed 2");
    /* Another node's word that OTHER is online; then that a fourth, unknown, is offline. */
    run_until(&f, now_s(&f) + 0.1);
    member_update other = update_of(OTHER, MEMBER_ONLINE, vclock_now_ms(f.clock));
    engine_take_gossip(&f.e, &other, 1, PEER);
    member_update unknown = update_of("http://127.0.0.1:7004/", MEMBER_OFFLINE, vclock_now_ms(f.clock));
    engine_take_gossip(&f.e, &unknown, 1, PEER);
    CHECK_STR(log.text, "join 2 failed 2 join 3");
    /* PEER back, then its goodbye from itself; back, and OTHER says PEER is offline. */
    run_until(&f, now_s(&f) + 0.1);
    news_of(&f, PEER, MEMBER_ONLINE);
    run_until(&f, now_s(&f) + 0.1);
    member_update bye = update_of(PEER, MEMBER_OFFLINE, vclock_now_ms(f.clock));
    engine_take_gossip(&f.e, &bye, 1, PEER);
    run_until(&f, now_s(&f) + 0.1);
    news_of(&f, PEER, MEMBER_ONLINE);
    run_until(&f, now_s(&f) + 0.1);
    member_update claim = update_of(PEER, MEMBER_OFFLINE, vclock_now_ms(f.clock));
    engine_take_gossip(&f.e, &claim, 1, OTHER);
    CHECK_STR(log.text, "join 2 failed 2 join 3 alive 2 left 2 alive 2 offline 2");
    /* A peer's own answer saying it is offline is its word too (a round to OTHER). */
    long round = run_until_request(&f, f.script.count, "POST", OTHER "clustershazbot/gossip", now_s(&f) + 20);
    CHECK(round >= 0);
    if (round >= 0)
        answer(&f.script, (size_t)round, 200, gossip_answer_of(OTHER, MEMBER_OFFLINE, vclock_now_ms(f.clock)), NULL);
    CHECK_CONTAINS(log.text, "offline 2 left 3");
    /* This node: a refutation (someone says it is offline), then control offline. */
    size_t len = strlen(log.text);
    member_update about_self = update_of(SELF, MEMBER_OFFLINE, vclock_now_ms(f.clock) + 5);
    engine_take_gossip(&f.e, &about_self, 1, PEER);
    CHECK(f.e.m->self->status == MEMBER_ONLINE);
    membership_set_self_online(f.e.m, false, vclock_now_ms(f.clock));
    CHECK_STR(log.text + len, " self 1 self 1");
    /* A day later the offline records are purged: PEER, OTHER and the unknown fourth. */
    len = strlen(log.text);
    membership_purge(f.e.m, vclock_now_ms(f.clock) + SHAZBOT_OFFLINE_RETENTION_MS + 1000);
    CHECK_CONTAINS(log.text + len, "purged 2");
    CHECK_CONTAINS(log.text + len, "purged 3");
    CHECK_CONTAINS(log.text + len, "purged 4");
    CHECK(!log.out_of_order);
    /* The ring holds the same sequence, in the same order, as JSON lines. */
    buf all = {0};
    events_write(&f.e.events.ring, 0, EVENTS_PAGE, &all);
    CHECK_CONTAINS(all.data, "{\"events\":[{\"seq\":1,\"kind\":\"join\",\"baseUrl\":\"" PEER "\",\"time\":");
    CHECK_CONTAINS(all.data, "\"before\":null,\"after\":{\"status\":\"online\",\"lastUpdate\":0,\"monitor\":false}}");
    char tail[64];
    snprintf(tail, sizeof tail, "],\"next\":%llu,\"missed\":0}", log.last_seq);
    CHECK_CONTAINS(all.data, tail);
    buf_free(&all);
    teardown(&f);
}

/* With the suspicion window, another node's claim is confirmed first: applied after the peer
 * fails to answer, it is "offline" (learnt, not our verdict); answered with the peer's
 * goodbye, it is "left"; answered alive, no event. (Mutation: the claim's cause not set.) */
static void test_events_of_confirmed_claims(void) {
    fixture f;
    event_log log;
    setup(&f, NULL, NULL);
    watch_events(&f, &log);
    start_with_peer(&f);
    for (int outcome = 0; outcome < 3; outcome++) {
        run_until(&f, now_s(&f) + 0.2);
        size_t from = f.script.count;
        news_of(&f, PEER, MEMBER_OFFLINE);
        long ask = find_request(&f.script, from, "POST", PEER "clustershazbot/gossip");
        CHECK(ask >= 0);
        if (ask < 0) break;
        run_until(&f, now_s(&f) + 0.1);
        if (outcome == 0)
            answer(&f.script, (size_t)ask, 200, gossip_answer_of(PEER, MEMBER_ONLINE, vclock_now_ms(f.clock)), NULL);
        else if (outcome == 1)
            fail(&f.script, (size_t)ask);
        else
            answer(&f.script, (size_t)ask, 200, gossip_answer_of(PEER, MEMBER_OFFLINE, vclock_now_ms(f.clock) + 1),
                   NULL);
        if (outcome == 1) {
            run_until(&f, now_s(&f) + 0.1);
            news_of(&f, PEER, MEMBER_ONLINE);
        }
    }
    CHECK_STR(log.text, "join 2 offline 2 alive 2 left 2");
    teardown(&f);
}

/* The ring keeps the last EVENTS_RING events: a poller that fell behind is told how many it
 * missed, and gets the rest a page at a time; one asking past the newest (an earlier run of
 * the node) starts again from the first held. (Mutations: missed not counted; no page limit.) */
static void test_events_ring(void) {
    event_ring r = {.keep = true};
    member_view none = {0}, online = {.known = true, .status = MEMBER_ONLINE};
    for (int i = 0; i < EVENTS_RING + 100; i++) {
        char url[64];
        snprintf(url, sizeof url, "http://10.0.%d.%d/", i / 256, i % 256);
        CHECK(events_add(&r, EVENT_JOIN, url, strlen(url), i, none, online) != NULL);
    }
    CHECK_INT(events_last(&r), EVENTS_RING + 100);
    buf b = {0};
    events_write(&r, 50, 3, &b);
    CHECK_CONTAINS(b.data, "\"seq\":101,");
    CHECK_CONTAINS(b.data, "\"seq\":103,");
    CHECK_NOT_CONTAINS(b.data, "\"seq\":104,");
    CHECK_CONTAINS(b.data, "\"next\":103,\"missed\":50}");
    buf_free(&b);
    events_write(&r, EVENTS_RING + 100, EVENTS_PAGE, &b);
    CHECK_STR(b.data, "{\"events\":[],\"next\":4196,\"missed\":0}");
    buf_free(&b);
    events_write(&r, 999999, 1, &b); /* past the newest: from the oldest held */
    CHECK_CONTAINS(b.data, "\"seq\":101,");
    buf_free(&b);
    CHECK_INT(r.counts[EVENT_JOIN], EVENTS_RING + 100);
    events_free(&r);
}

/* The on_change hook runs under the rules of every hook: one that raises or runs past its
 * budget is counted, the default decides (nothing), and the events still reach the host and
 * the ring; the hook gets each event's fields. (Mutations: the hook not called; its failure
 * stopping the delivery.) */
static void test_events_hook(void) {
    char path[] = "/tmp/shazbot-test-engine-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *hook_script =
        "local seen = {}\n"
        "return {\n"
        "  on_change = function(ev)\n"
        "    if ev.kind == 'failed' then error('on purpose') end\n"
        "    if ev.kind == 'alive' then while true do end end\n"
        "    seen[#seen + 1] = ev.seq .. ' ' .. ev.kind .. ' ' .. ev.baseUrl .. ' ' ..\n"
        "      tostring(ev.before and ev.before.status) .. '->' .. tostring(ev.after and ev.after.status)\n"
        "  end,\n"
        "  gossip_target = function(peers) return nil end,\n"
        "  probe_target = function() return nil end,\n"
        "  health = function(info) return { seen = seen } end,\n"
        "}\n";
    CHECK(write(fd, hook_script, strlen(hook_script)) == (ssize_t)strlen(hook_script));
    close(fd);
    fixture f;
    event_log log;
    setup(&f, path, (const char *const[]){"SHAZBOT_SUSPICION_WINDOW", "0", NULL});
    watch_events(&f, &log);
    start_with_peer(&f);
    uint64_t failures = policy_failures(f.e.pol);
    f.e.events.cause = EVENT_CAUSE_VERDICT; /* as give_verdict does */
    membership_mark_offline(f.e.m, PEER, strlen(PEER), vclock_now_ms(f.clock));
    f.e.events.cause = EVENT_CAUSE_MERGE;
    run_until(&f, 0.5);
    news_of(&f, PEER, MEMBER_ONLINE);
    CHECK_INT(policy_failures(f.e.pol), failures + 2);
    CHECK_STR(log.text, "join 2 failed 2 alive 2");
    health_info info = {0};
    buf payload = {0};
    policy_health(f.e.pol, &info, &payload);
    CHECK_STR(payload.data, "{\"seen\":[\"1 join " PEER " nil->online\"]}");
    buf_free(&payload);
    teardown(&f);
    unlink(path);
}

int main(void) {
    test_retry_then_offline();
    test_retry_success_keeps_peer();
    test_garbage_answer_is_a_failure();
    test_master_list_backoff();
    test_announcement_conflicts();
    test_shutdown_bounded();
    test_shutdown_answered_at_once();
    test_fanout_bounded();
    test_fanout_deadline();
    test_fanout_bootstrap();
    test_unstartable_request();
    test_timers_clamped();
    test_halt_stops_everything();
    test_suspicion_window();
    test_spared_peer_looked_at_again();
    test_probe_brings_back();
    test_third_party_claims_confirmed();
    test_size_refusal_is_no_verdict();
    test_timings_follow_interval();
    test_state_limit();
    test_events_classified();
    test_events_of_confirmed_claims();
    test_events_ring();
    test_events_hook();
    return check_finish("test_engine");
}
