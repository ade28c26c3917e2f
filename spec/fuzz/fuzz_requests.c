/* The request path of a node (requests.h: gossip, control, list, /happy) on an engine without
 * network I/O: virtual time (vclock.h) and a transport that sends nothing, so that every
 * peer transfer fails at once (or hangs, see 'a') and its consequences (retries, peers marked
 * offline, the master-list backoff, the shutdown deadline) run on virtual time too.
 *
 * Input: requests separated by lines of "%%". Each starts with a byte naming what to do and a
 * byte choosing how its body is cut into pieces (fuzz.h), then the body:
 *   g n w   gossip with the secret, without one, with a wrong one (any other byte: g)
 *   c x     control with the control secret, with a wrong one
 *   l L     the list without and with the control secret
 *   h q     /happy, /happy/quick (503 with the payload in the last seconds of a leave)
 *   m       /metrics (text, not JSON: each line a comment or a clustershazbot_ sample)
 *   t       time moves on by the body's number of seconds (at most 26 h; a round is 300 s)
 *   s       the node starts leaving
 *   a       from now on transfers start and hang (a round, goodbyes, the master list wait
 *           for ever; a shutdown ends on its deadline), or fail to start again
 * Two nodes take the same requests, one each body whole and the other in pieces. Properties:
 *   - the two give the same status and the same answer, and keep the same state;
 *   - every answer is valid JSON; an error answer is {"error": "..."};
 *   - a refused request (status other than 200) changes nothing: the state written as a list
 *     (wire_write_list, offline records included) is the same before and after; the list
 *     and /happy change nothing either;
 *   - an accepted gossip message is answered with the state, and the same message again
 *     changes nothing;
 *   - the state is always a list this node would accept, each baseUrl valid and once. */
#define _GNU_SOURCE /* memmem */
#include "engine.h"
#include "fuzz.h"
#include "requests.h"
#include "vclock.h"

#include <yajl/yajl_tree.h>

#define SELF "http://127.0.0.1:7001/"
#define START_MS 1795478695140LL
/* Past the purge horizon of offline records (24 h), in few rounds: every round is a call to
 * the policy, which was most of the time of an input at a 10 s interval. */
#define MAX_ADVANCE_S (26 * 3600)

typedef struct node {
    vclock *clock;
    engine e;
    bool hang; /* transfers start and never end, rather than fail to start */
} node;

/* Nothing is sent either way; a transfer that "started" is never answered, which the
 * transport may do as long as it is freed first (driver.h). */
static bool start_nothing(void *ctx, const transfer_request *req, transfer_done_fn done, void *arg) {
    const node *n = ctx;
    return n->hang;
}

/* One policy per node for the whole run, seeded again for each input: loading a Lua state and
 * the default policy took two thirds of the time of an input, and the default policy keeps
 * nothing between calls but its random stream. */
static policy *shared_policy[2];

static void node_init(node *n, int which) {
    n->clock = vclock_new(START_MS);
    FUZZ_ASSERT(n->clock, "out of memory");
    shazbot_settings cfg;
    config_init(&cfg);
    static const char *const settings[] = {
        "SHAZBOT_SECRET", "s3cret", "SHAZBOT_CONTROL_SECRET", "ctl", "SHAZBOT_BASE_URL", SELF,
        "SHAZBOT_MASTER_LIST", "http://127.0.0.1:7000/list.json", "SHAZBOT_MASTER_LIST_UPDATE",
        "http://127.0.0.1:7000/list.json", "SHAZBOT_MASTER_LIST_UPDATE_AUTH", "up", "SHAZBOT_GOSSIP_INTERVAL", "300",
        "SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "3600", "SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "3600", "SHAZBOT_LOG_LEVEL", "error",
        "HAPPY_SECRET", "hs", NULL};
    char err[512];
    for (size_t i = 0; settings[i]; i += 2)
        FUZZ_ASSERT(config_set(&cfg, settings[i], settings[i + 1], err, sizeof err), "%s", err);
    if (!shared_policy[which]) FUZZ_ASSERT(shared_policy[which] = policy_new(NULL, err, sizeof err), "%s", err);
    policy *pol = shared_policy[which];
    /* Both nodes draw the same peers, input after input. */
    policy_seed_random(pol, 1);
    n->hang = false;
    engine_transport transport = {.ctx = n, .start = start_nothing};
    FUZZ_ASSERT(engine_init(&n->e, &cfg, vclock_clock(n->clock), transport, pol, err, sizeof err), "%s", err);
    config_free(&cfg);
    FUZZ_ASSERT(engine_start(&n->e) == 0, "engine_start");
}

static void node_free(node *n) {
    n->e.pol = NULL; /* kept for the next input */
    engine_destroy(&n->e);
    vclock_free(n->clock);
}

static buf state_of(node *n) {
    buf b = {0};
    wire_write_list(&b, n->e.m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    FUZZ_ASSERT(!b.failed, "out of memory");
    return b;
}

static bool same_buf(const buf *a, const buf *b) { return a->len == b->len && memcmp(a->data, b->data, a->len) == 0; }

/* The state parses as a gossip message of exactly its records, each valid, none twice. */
static void check_state(node *n) {
    buf s = state_of(n);
    FUZZ_ASSERT(fuzz_json_valid(s.data, s.len), "state is not JSON: %s", s.data);
    wire_message msg;
    char err[256];
    FUZZ_ASSERT(wire_parse(s.data, s.len, WIRE_GOSSIP, &msg, err, sizeof err), "state refused: %s\n%s", err, s.data);
    FUZZ_ASSERT(msg.count == n->e.m->count, "%zu records, %zu written", n->e.m->count, msg.count);
    for (size_t i = 0; i < msg.count; i++) {
        const wire_entry *x = &msg.entries[i];
        FUZZ_ASSERT(membership_url_valid(x->e.base_url, x->e.url_len), "invalid baseUrl in state");
        const member *r = membership_find(n->e.m, x->e.base_url, x->e.url_len);
        FUZZ_ASSERT(r && r->status == x->status && r->last_update == x->e.last_update, "record %zu", i);
    }
    FUZZ_ASSERT(n->e.m->self && n->e.m->self == membership_find(n->e.m, SELF, strlen(SELF)), "own record lost");
    wire_message_free(&msg);
    buf_free(&s);
}

/* An error answer is an object holding the error as a string. */
static void check_error_answer(const buf *out, int status) {
    char *text = strndup(out->data ? out->data : "", out->len);
    FUZZ_ASSERT(text, "out of memory");
    yajl_val doc = yajl_tree_parse(text, NULL, 0);
    const char *path[] = {"error", NULL};
    FUZZ_ASSERT(doc && YAJL_IS_OBJECT(doc) && yajl_tree_get(doc, path, yajl_t_string), "answer %d: %s", status, text);
    yajl_tree_free(doc);
    free(text);
}

typedef enum { OP_GOSSIP, OP_CONTROL, OP_LIST, OP_HAPPY, OP_METRICS } op_kind;

/* Prometheus's text: lines, each "# ..." or "clustershazbot_<name>[{labels}] <number>". */
static void check_metrics_text(const buf *out) {
    const char *at = out->data ? out->data : "", *end = at + out->len;
    FUZZ_ASSERT(out->len > 0 && end[-1] == '\n', "metrics text does not end in a newline");
    while (at < end) {
        const char *eol = memchr(at, '\n', (size_t)(end - at));
        FUZZ_ASSERT(eol, "unterminated line");
        const char *space = memrchr(at, ' ', (size_t)(eol - at));
        bool comment = eol - at > 2 && at[0] == '#' && at[1] == ' ';
        FUZZ_ASSERT(comment || (strncmp(at, "clustershazbot_", 15) == 0 && space && space + 1 < eol),
                    "not a metrics line: %.*s", (int)(eol - at), at);
        at = eol + 1;
    }
}

static int run(node *n, op_kind op, const char *auth, bool flag, const wire_chunk *c, size_t count, buf *out) {
    switch (op) {
    case OP_GOSSIP: return requests_gossip(&n->e, auth, NULL, c, count, out);
    case OP_CONTROL: return requests_control(&n->e, auth, c, count, out);
    case OP_LIST: return requests_list(&n->e, auth, out);
    case OP_HAPPY: return requests_happy(&n->e, auth, flag, out);
    case OP_METRICS: return requests_metrics(&n->e, auth, out);
    }
    abort();
}

static void request(node *whole, node *pieces, uint8_t what, uint8_t split, const char *body, size_t len) {
    op_kind op = OP_GOSSIP;
    const char *auth = "s3cret";
    bool flag = false;
    switch (what) {
    case 'n': auth = NULL; break;
    case 'w': auth = "s3cret "; break;
    case 'c': op = OP_CONTROL, auth = "ctl"; break;
    case 'x': op = OP_CONTROL, auth = "s3cret"; break;
    case 'l': op = OP_LIST, auth = NULL; break;
    case 'L': op = OP_LIST, auth = "ctl"; break;
    case 'h': op = OP_HAPPY, auth = "hs"; break;
    case 'q': op = OP_HAPPY, auth = "hs", flag = true; break;
    case 'm': op = OP_METRICS, auth = "hs"; break;
    case 'M': op = OP_METRICS, auth = "s3cret"; break;
    default: break;
    }
    buf before = state_of(whole);
    buf out_whole = {0}, out_pieces = {0};
    wire_chunk one = {body, len};
    size_t count;
    wire_chunk *chunks = fuzz_split_alloc(body, len, split, &count);
    int status = run(whole, op, auth, flag, &one, 1, &out_whole);
    int status_pieces = run(pieces, op, auth, flag, chunks, count, &out_pieces);
    FUZZ_ASSERT(!out_whole.failed && !out_pieces.failed, "out of memory");
    FUZZ_ASSERT(status == status_pieces, "status %d whole, %d in pieces", status, status_pieces);
    /* /happy reports the uptime and request figures of the moment: the same on both nodes. */
    FUZZ_ASSERT(same_buf(&out_whole, &out_pieces), "answers differ:\n%.*s\n%.*s", (int)out_whole.len, out_whole.data,
                (int)out_pieces.len, out_pieces.data);
    bool text = op == OP_METRICS && status == 200;
    if (text) check_metrics_text(&out_whole);
    else
        FUZZ_ASSERT(fuzz_json_valid(out_whole.data, out_whole.len), "answer %d is not JSON: %.*s", status,
                    (int)out_whole.len, out_whole.data);
    buf after = state_of(whole), after_pieces = state_of(pieces);
    FUZZ_ASSERT(same_buf(&after, &after_pieces), "states differ after a request whole and in pieces:\n%s\n%s",
                after.data, after_pieces.data);
    /* A node leaving answers /happy 503 with the payload, as happy-server does. */
    bool leaving_payload = op == OP_HAPPY && status == 503 && whole->e.state == NODE_STOPPING;
    if (status != 200) {
        if (!leaving_payload) check_error_answer(&out_whole, status);
        FUZZ_ASSERT(same_buf(&before, &after), "refused with %d but changed the state:\n%s\n%s", status, before.data,
                    after.data);
    } else if (op == OP_LIST || op == OP_HAPPY || op == OP_METRICS) {
        FUZZ_ASSERT(same_buf(&before, &after), "a GET changed the state");
    } else if (op == OP_GOSSIP) {
        FUZZ_ASSERT(same_buf(&out_whole, &after), "the answer is not the state:\n%s\n%s", out_whole.data, after.data);
        /* Sent to both nodes, which keep the same counts of skipped entries for /happy. */
        buf again = {0}, again_pieces = {0};
        FUZZ_ASSERT(requests_gossip(&whole->e, auth, NULL, &one, 1, &again) == 200 &&
                        requests_gossip(&pieces->e, auth, NULL, chunks, count, &again_pieces) == 200,
                    "the same message refused the second time");
        buf_free(&again_pieces);
        FUZZ_ASSERT(same_buf(&after, &again), "the same message changed the state the second time:\n%s\n%s",
                    after.data, again.data);
        buf_free(&again);
    }
    free(chunks);
    requests_count(&whole->e, status);
    requests_count(&pieces->e, status);
    buf_free(&before);
    buf_free(&after);
    buf_free(&after_pieces);
    buf_free(&out_whole);
    buf_free(&out_pieces);
}

static void advance(node *a, node *b, const char *body, size_t len) {
    int64_t seconds = 0;
    for (size_t i = 0; i < len && i < 7 && body[i] >= '0' && body[i] <= '9'; i++) seconds = seconds * 10 + (body[i] - '0');
    if (seconds > MAX_ADVANCE_S) seconds = MAX_ADVANCE_S;
    int64_t until = vclock_now_us(a->clock) + seconds * 1000000;
    vclock_run_until(a->clock, until);
    vclock_run_until(b->clock, until);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char separator[] = "\n%%\n";
    node a, b;
    node_init(&a, 0);
    node_init(&b, 1);
    const char *at = (const char *)data, *end = at + size;
    while (at < end) {
        const char *next = memmem(at, (size_t)(end - at), separator, sizeof separator - 1);
        const char *stop = next ? next : end;
        size_t len = (size_t)(stop - at);
        uint8_t what = len > 0 ? (uint8_t)at[0] : 'g', split = len > 1 ? (uint8_t)at[1] : 0;
        const char *body = at + (len > 2 ? 2 : len);
        size_t body_len = len > 2 ? len - 2 : 0;
        if (what == 't') advance(&a, &b, body, body_len);
        else if (what == 'a') a.hang = b.hang = !a.hang;
        else if (what == 's') {
            int ra = engine_shutdown(&a.e, NULL, NULL), rb = engine_shutdown(&b.e, NULL, NULL);
            FUZZ_ASSERT(ra == rb, "shutdown %d and %d", ra, rb);
        } else request(&a, &b, what, split, body, body_len);
        check_state(&a);
        at = next ? next + sizeof separator - 1 : end;
    }
    node_free(&a);
    node_free(&b);
    return 0;
}
