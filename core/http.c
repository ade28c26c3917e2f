/* http: the node's own listener. http_server does the serving (limits, deadlines, JSON errors
 * for what evhttp refuses itself); this file only routes the requests to the handlers of
 * requests.c and hands their answers back. */
#include "http.h"

#include "engine.h"
#include "http_server.h"
#include "requests.h"

#include <event2/http.h>
#include <stdio.h>
#include <string.h>

typedef enum { ROUTE_GOSSIP, ROUTE_LIST, ROUTE_CONTROL, ROUTE_HAPPY, ROUTE_HAPPY_QUICK, ROUTE_NONE } route;

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
    return ROUTE_NONE;
}

/* The list shares the state's cached bytes (wire_list_parts_get): the answers of any number of
 * clients weigh one copy of the state, however slowly they read. */
static void answer_list(shazbot *node, struct evhttp_request *req, const char *auth) {
    wire_list_parts parts;
    buf error = {0};
    int status = requests_list_parts(&node->e, auth, &parts, &error);
    if (status != 200) {
        http_server_answer(node->listener.server, req, status, &error);
        return;
    }
    http_piece pieces[5];
    for (int i = 0; i < 3; i++) {
        pieces[2 * i] = (http_piece){parts.text[i].data, parts.text[i].len, false};
        if (i < 2) pieces[2 * i + 1] = (http_piece){parts.peers[i], parts.peers_len[i], true};
    }
    http_server_answer_pieces(node->listener.server, req, 200, pieces, 5);
    wire_list_parts_free(&parts);
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
    if (post && !http_body_get(req, &body)) {
        http_server_answer_error(server, req, 500, "out of memory");
        return;
    }
    int status;
    switch (r) {
    case ROUTE_GOSSIP:
        status = requests_gossip(&node->e, auth, evhttp_find_header(evhttp_request_get_input_headers(req), ENGINE_SENDER_HEADER),
                                 body.chunks, body.count, out);
        break;
    case ROUTE_CONTROL: status = requests_control(&node->e, auth, body.chunks, body.count, out); break;
    case ROUTE_LIST: answer_list(node, req, auth); return;
    case ROUTE_HAPPY: status = requests_happy(&node->e, auth, false, out); break;
    default: status = requests_happy(&node->e, auth, true, out); break;
    }
    if (post) http_body_free(&body);
    http_server_answer(server, req, status, out);
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
