/* http: the node's own listener. http_server does the serving (limits, deadlines, JSON errors
 * for what evhttp refuses itself); this file only routes the requests to the handlers of
 * requests.c and hands their answers back. */
#include "http.h"

#include "engine.h"
#include "http_server.h"
#include "requests.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <string.h>

typedef enum { ROUTE_GOSSIP, ROUTE_LIST, ROUTE_CONTROL, ROUTE_EVENTS, ROUTE_HAPPY, ROUTE_HAPPY_QUICK, ROUTE_NONE } route;

static route find_route(const shazbot *node, const char *path) {
    if (strcmp(path, "/happy") == 0) return ROUTE_HAPPY;
    if (strcmp(path, "/happy/quick") == 0) return ROUTE_HAPPY_QUICK;
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

/* GET clustershazbot/events?after=N: `after` read from the query, other parameters ignored. */
static int answer_events(shazbot *node, const struct evhttp_uri *uri, const char *auth, buf *out) {
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) != 0) {
        wire_write_error(out, "the query is not a form of name=value pairs");
        return 400;
    }
    int status = requests_events(&node->e, auth, evhttp_find_header(&params, "after"), out);
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
    case ROUTE_EVENTS: status = answer_events(node, uri, auth, out); break;
    case ROUTE_HAPPY: status = requests_happy(&node->e, auth, false, out); break;
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
                             .arg = node};
    node->listener.server = http_server_new(node->base, &o, host, port, err, err_len);
    return node->listener.server ? 0 : -1;
}

void http_free(shazbot *node) {
    http_server_free(node->listener.server);
    node->listener.server = NULL;
}
