/* http: the node's own listener. http_server does the serving (limits, deadlines, JSON errors
 * for what evhttp refuses itself); this file only routes the requests to the handlers of
 * requests.c and hands their answers back. */
#include "http.h"

#include "engine.h"
#include "http_server.h"
#include "metrics.h"
#include "log.h"
#include "secret.h"
#include "requests.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ROUTE_GOSSIP, ROUTE_LIST, ROUTE_CONTROL, ROUTE_EVENTS, ROUTE_HAPPY, ROUTE_HAPPY_QUICK, ROUTE_METRICS, ROUTE_NONE } route;

static route find_route(const shazbot *node, const char *path) {
    if (strcmp(path, "/happy") == 0) return ROUTE_HAPPY;
    if (strcmp(path, "/happy/quick") == 0) return ROUTE_HAPPY_QUICK;
    if (strcmp(path, "/metrics") == 0) return ROUTE_METRICS; /* at the root, where Prometheus looks */
    const char *base_path = node->listener.base_path;
    size_t prefix = strlen(base_path);
    if (strncmp(path, base_path, prefix) != 0) return ROUTE_NONE;
    path += prefix;
    if (strcmp(path, "clustershazbot/gossip") == 0) return ROUTE_GOSSIP;
    if (strcmp(path, "clustershazbot/list") == 0) return ROUTE_LIST;
    if (strcmp(path, "clustershazbot/control") == 0) return ROUTE_CONTROL;
    if (strcmp(path, "clustershazbot/events") == 0) return ROUTE_EVENTS;
    return ROUTE_NONE;
}

/* Five parts of a list (wire_list_parts) as the server's pieces, the peers' shared. */
static void answer_parts(http_server *server, struct evhttp_request *req, const wire_list_parts *parts,
                         codec_kind coding) {
    http_piece pieces[5];
    for (int i = 0; i < 3; i++) {
        pieces[2 * i] = (http_piece){parts->text[i].data, parts->text[i].len, false};
        if (i < 2) pieces[2 * i + 1] = (http_piece){parts->peers[i], parts->peers_len[i], true};
    }
    http_server_answer_pieces(server, req, 200, pieces, 5, coding);
}

static size_t parts_len(const wire_list_parts *p) {
    return p->text[0].len + p->peers_len[0] + p->text[1].len + p->peers_len[1] + p->text[2].len;
}

/* The state in the coding the client takes: `parts` (plain, taken over) as they are, or the
 * same list compressed from the cached segments (wire_list_parts_coded). */
static codec_kind list_in_coding(shazbot *node, struct evhttp_request *req, unsigned flags, wire_list_parts *parts) {
    http_server *server = node->listener.server;
    codec_kind coding = http_server_answer_coding(server, req, parts_len(parts));
    if (coding == CODEC_IDENTITY) return coding;
    wire_list_parts coded;
    wire_list_parts_coded(&coded, node->e.m, flags, http_server_codec(server), coding);
    if (coded.failed) { /* out of memory: the plain answer still goes */
        wire_list_parts_free(&coded);
        return CODEC_IDENTITY;
    }
    wire_list_parts_free(parts);
    *parts = coded;
    return coding;
}

/* The list shares the state's cached bytes (wire_list_parts_get), plain or compressed: the
 * answers of any number of clients weigh one copy of the state, however slowly they read. */
static void answer_list(shazbot *node, struct evhttp_request *req, const char *auth) {
    wire_list_parts parts;
    buf error = {0};
    int status = requests_list_parts(&node->e, auth, &parts, &error);
    if (status != 200) {
        http_server_answer(node->listener.server, req, status, &error);
        return;
    }
    codec_kind coding = list_in_coding(node, req, requests_list_flags(&node->e, auth), &parts);
    answer_parts(node->listener.server, req, &parts, coding);
    wire_list_parts_free(&parts);
}

/* The gossip answer is the state joined into one block, as before compression came (a copy,
 * not shared pieces: it is not held back by slow list readers' 503), compressed from the
 * cached segments when the client takes a coding. */
static void answer_gossip(shazbot *node, struct evhttp_request *req) {
    const unsigned flags = WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE;
    wire_list_parts parts;
    wire_list_parts_get(&parts, node->e.m, flags);
    codec_kind coding = parts.failed ? CODEC_IDENTITY : list_in_coding(node, req, flags, &parts);
    buf answer = {0};
    wire_list_parts_join(&parts, &answer);
    wire_list_parts_free(&parts);
    if (answer.failed) {
        buf_free(&answer);
        http_server_answer_error(node->listener.server, req, 500, "out of memory");
        return;
    }
    http_server_answer_as(node->listener.server, req, 200, &answer, coding);
}

/* The body of a POST, decoded; false after answering why not. A compressed body is decoded
 * only for a client that holds the secret: a refusal costs no inflating. */
static bool read_body(shazbot *node, struct evhttp_request *req, route r, const char *auth, http_body *body) {
    http_server *server = node->listener.server;
    buf why = {0};
    int refused = http_body_is_coded(req) ? requests_post_refused(&node->e, r == ROUTE_CONTROL, auth, &why) : 0;
    if (refused) {
        http_server_answer(server, req, refused, &why);
        return false;
    }
    refused = http_body_read(server, req, body, &why);
    if (refused) {
        http_body_free(body);
        http_server_answer_error(server, req, refused, why.data ? why.data : "out of memory");
        buf_free(&why);
        return false;
    }
    return true;
}

/* ---- GET clustershazbot/events: a long poll --------------------------------------------------
 * With `wait=S` (seconds, at most EVENTS_WAIT_MAX) a request that finds no event after its
 * `after` is held until one comes or the wait ends, then answered as without it: a watcher
 * gets each event at once without asking in a loop. At most EVENTS_WAITERS are held; the
 * others are answered at once. The wait stays under evhttp's 10 s idle timeout; a client that
 * goes away meanwhile leaves its request to evhttp, which frees it at the answer. */
#define EVENTS_WAITERS 64
#define EVENTS_WAIT_MAX 5.0

typedef struct events_waiter {
    struct evhttp_request *req; /* NULL: a free slot */
    uint64_t after;
    struct event *timer;
    struct events_waiting *all;
} events_waiter;

struct events_waiting {
    shazbot *node;
    struct event *wake; /* made active by an event: the held requests are answered on the loop,
                           not inside the merge that made the event */
    events_waiter slot[EVENTS_WAITERS];
};

static void answer_waiter(events_waiter *w) {
    shazbot *node = w->all->node;
    buf out = {0};
    events_write(&node->e.events.ring, w->after, EVENTS_PAGE, &out);
    struct evhttp_request *req = w->req;
    event_free(w->timer);
    *w = (events_waiter){.all = w->all};
    http_server_answer(node->listener.server, req, 200, &out);
}

static void on_waiter_timeout(evutil_socket_t fd, short what, void *arg) { answer_waiter(arg); }

static void on_events_wake(evutil_socket_t fd, short what, void *arg) {
    struct events_waiting *all = arg;
    uint64_t last = events_last(&all->node->e.events.ring);
    for (int i = 0; i < EVENTS_WAITERS; i++)
        if (all->slot[i].req && all->slot[i].after < last) answer_waiter(&all->slot[i]);
}

static void notify_waiters(void *ctx) {
    struct events_waiting *all = ctx;
    event_active(all->wake, EV_TIMEOUT, 0);
}

static struct events_waiting *waiting_new(shazbot *node) {
    struct events_waiting *all = calloc(1, sizeof *all);
    if (!all) return NULL;
    all->node = node;
    for (int i = 0; i < EVENTS_WAITERS; i++) all->slot[i].all = all;
    if (!(all->wake = event_new(node->base, -1, 0, on_events_wake, all))) {
        free(all);
        return NULL;
    }
    node->e.events.notify = notify_waiters;
    node->e.events.notify_ctx = all;
    return all;
}

/* Answers whatever is held (evhttp_free would free the requests unanswered). */
static void waiting_free(shazbot *node) {
    struct events_waiting *all = node->listener.waiting;
    if (!all) return;
    for (int i = 0; i < EVENTS_WAITERS; i++)
        if (all->slot[i].req) answer_waiter(&all->slot[i]);
    node->e.events.notify = NULL;
    node->e.events.notify_ctx = NULL;
    event_free(all->wake);
    free(all);
    node->listener.waiting = NULL;
}

/* Holds `req` when it asks to wait and nothing is there yet; false when it is to be answered now. */
static bool hold_events_request(shazbot *node, struct evhttp_request *req, const char *after_text,
                                const char *wait_text) {
    uint64_t after;
    char *end;
    double wait = wait_text ? strtod(wait_text, &end) : 0;
    struct events_waiting *all = node->listener.waiting;
    if (!all || !wait_text || *end || !(wait > 0) || !requests_events_after(after_text, &after) ||
        after != events_last(&node->e.events.ring))
        return false; /* events there already (or an earlier run's number): at once */
    if (wait > EVENTS_WAIT_MAX) wait = EVENTS_WAIT_MAX;
    for (int i = 0; i < EVENTS_WAITERS; i++) {
        events_waiter *w = &all->slot[i];
        if (w->req) continue;
        struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
        if (!(w->timer = evtimer_new(node->base, on_waiter_timeout, w)) || evtimer_add(w->timer, &tv) != 0) {
            if (w->timer) event_free(w->timer);
            w->timer = NULL;
            return false;
        }
        w->req = req;
        w->after = after;
        return true;
    }
    return false;
}

/* GET clustershazbot/events?after=N[&wait=S]: `after` and `wait` read from the query, other
 * parameters ignored. Returns 0 when the request is held (answered later), else its status. */
static int answer_events(shazbot *node, struct evhttp_request *req, const struct evhttp_uri *uri, const char *auth,
                         buf *out) {
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) != 0) {
        wire_write_error(out, "the query is not a form of name=value pairs");
        return 400;
    }
    const char *after = evhttp_find_header(&params, "after"), *wait = evhttp_find_header(&params, "wait");
    char *end = NULL;
    double seconds = wait ? strtod(wait, &end) : 0;
    int status;
    if (wait && (end == wait || *end || !(seconds >= 0 && seconds <= 3600)) && secret_matches(auth, node->e.cfg.control_secret)) {
        wire_write_error(out, "wait: expected a number of seconds (held at most 5)");
        status = 400;
    } else {
        status = requests_events(&node->e, auth, after, out);
    }
    if (status == 200 && hold_events_request(node, req, after, wait)) {
        buf_free(out);
        status = 0;
    }
    evhttp_clear_headers(&params);
    return status;
}

static void on_request(struct evhttp_request *req, void *arg) {
    shazbot *node = arg;
    http_server *server = node->listener.server;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    route r = find_route(node, path && *path ? path : "/");
    if (r == ROUTE_NONE) {
        http_server_answer_error(server, req, 404, "no such endpoint");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool post = r == ROUTE_GOSSIP || r == ROUTE_CONTROL;
    if (method != (post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", post ? "POST" : "GET");
        http_server_answer_error(server, req, 405, post ? "method not allowed: use POST" : "method not allowed: use GET");
        return;
    }
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    buf answer = {0}, *out = &answer;
    http_body body;
    if (post && !read_body(node, req, r, auth, &body)) return;
    int status;
    switch (r) {
    case ROUTE_GOSSIP:
        status = requests_gossip_take(&node->e, auth,
                                      evhttp_find_header(evhttp_request_get_input_headers(req), ENGINE_SENDER_HEADER),
                                      body.chunks, body.count, out);
        break;
    case ROUTE_CONTROL: status = requests_control(&node->e, auth, body.chunks, body.count, out); break;
    case ROUTE_LIST: answer_list(node, req, auth); return;
    case ROUTE_EVENTS:
        if (!(status = answer_events(node, req, uri, auth, out))) return; /* held */
        break;
    case ROUTE_HAPPY: status = requests_happy(&node->e, auth, false, out); break;
    case ROUTE_METRICS:
        status = requests_metrics(&node->e, auth, out);
        if (status == 200)
            evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", METRICS_CONTENT_TYPE);
        break;
    default: status = requests_happy(&node->e, auth, true, out); break;
    }
    if (post) http_body_free(&body);
    if (r == ROUTE_GOSSIP && status == 200) answer_gossip(node, req);
    else http_server_answer(server, req, status, out);
}

/* The refusals of evhttp name what the node's configuration and routes allow. */
static void error_message(int status, buf *message, void *arg) {
    const shazbot *node = arg;
    if (status == 413) buf_printf(message, "body over the limit of %zu bytes (SHAZBOT_MAX_BODY)", node->e.cfg.max_body);
    else if (status == 501) buf_printf(message, "method not supported: use GET or POST");
}

static void count_answer(int status, void *arg) { requests_count(arg, status); }

int http_listen(shazbot *node, const char *host, int port, char *err, size_t err_len) {
    if (node->listener.server) {
        snprintf(err, err_len, "already listening");
        return -1;
    }
    http_server_options o = {.max_body = node->e.cfg.max_body,
                             .request_timeout = node->e.cfg.request_timeout,
                             .log_limit = node->e.cfg.log_level,
                             .compression = node->e.cfg.compression,
                             .handle = on_request,
                             .error_message = error_message,
                             .count = count_answer,
                             .arg = node,
                             .tls_cert = node->e.cfg.tls_cert,
                             .tls_key = node->e.cfg.tls_key,
                             .tls_client_ca = node->e.cfg.tls_client_ca};
    node->listener.server = http_server_new(node->base, &o, host, port, err, err_len);
    if (node->listener.server && !(node->listener.waiting = waiting_new(node)))
        log_warn(node->e.cfg.log_level, "events: out of memory: GET clustershazbot/events answers at once");
    return node->listener.server ? 0 : -1;
}

void http_free(shazbot *node) {
    waiting_free(node);
    http_server_free(node->listener.server);
    node->listener.server = NULL;
}
