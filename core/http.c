/* http: the node's own listener. evhttp parses the requests (keep-alive included); this file
 * only routes them to the handlers of requests.c and writes their answers.
 *
 * Limits: bodies over SHAZBOT_MAX_BODY are refused by evhttp before they are read (413; note
 * that libevent 2.1 writes that one answer as HTML, it offers no hook to change it), headers
 * over 64 KiB likewise, and a connection that stalls for HTTP_TIMEOUT seconds is closed, so a
 * slow client holds nothing for long. */
#include "engine.h"
#include "log.h"
#include "wire.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_TIMEOUT 10
#define HTTP_MAX_HEADERS (64 * 1024)

static void free_body(const void *data, size_t len, void *arg) {
    (void)len;
    (void)arg;
    free((void *)data);
}

static void reply(shazbot *node, struct evhttp_request *req, int status, buf *b) {
    requests_count(node, status);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    struct evbuffer *body = evbuffer_new();
    size_t len;
    char *data = buf_take(b, &len);
    /* An answer to HEAD has no body, and evhttp writes whatever it is given without a
     * Content-Length: on a kept-alive connection those bytes would be read as the start of
     * the next answer. */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        free(data);
        data = NULL;
    }
    if (body && data) evbuffer_add_reference(body, data, len, free_body, NULL);
    else free(data);
    static const char *reasons[] = {[200] = "OK", [400] = "Bad Request", [401] = "Unauthorized",
                                    [404] = "Not Found", [405] = "Method Not Allowed",
                                    [413] = "Payload Too Large", [500] = "Internal Server Error",
                                    [503] = "Service Unavailable"};
    const char *reason = status > 0 && status <= 503 && reasons[status] ? reasons[status] : "Error";
    evhttp_send_reply(req, status, reason, body);
    if (body) evbuffer_free(body);
}

static void reply_error(shazbot *node, struct evhttp_request *req, int status, const char *message) {
    buf b = {0};
    wire_write_error(&b, message);
    reply(node, req, status, &b);
}

/* The request body as the pieces the input buffer holds it in. libevent 2.1 reads at most
 * 4 KiB a call, so a large body lies in hundreds of pieces, and joining them first
 * (evbuffer_pullup) copied it whole; the parser reads them where they are. */
typedef struct body_pieces {
    wire_chunk *chunks; /* `few`, or allocated for a large body */
    size_t count;
    wire_chunk few[8];
} body_pieces;

static bool body_pieces_get(struct evhttp_request *req, body_pieces *b) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    int n = evbuffer_peek(in, -1, NULL, NULL, 0);
    b->chunks = b->few;
    b->count = n > 0 ? (size_t)n : 0;
    struct evbuffer_iovec few[8], *vec = few;
    if (b->count > 8) {
        b->chunks = malloc(b->count * sizeof *b->chunks);
        vec = malloc(b->count * sizeof *vec);
        if (!b->chunks || !vec) {
            free(vec);
            free(b->chunks);
            b->chunks = NULL;
            return false;
        }
    }
    evbuffer_peek(in, -1, NULL, vec, n);
    for (size_t i = 0; i < b->count; i++) b->chunks[i] = (wire_chunk){vec[i].iov_base, vec[i].iov_len};
    if (vec != few) free(vec);
    return true;
}

static void body_pieces_free(body_pieces *b) {
    if (b->chunks != b->few) free(b->chunks);
}

typedef enum { ROUTE_GOSSIP, ROUTE_LIST, ROUTE_CONTROL, ROUTE_HAPPY, ROUTE_HAPPY_QUICK, ROUTE_NONE } route;

static route find_route(const shazbot *node, const char *path) {
    if (strcmp(path, "/happy") == 0) return ROUTE_HAPPY;
    if (strcmp(path, "/happy/quick") == 0) return ROUTE_HAPPY_QUICK;
    size_t prefix = strlen(node->base_path);
    if (strncmp(path, node->base_path, prefix) != 0) return ROUTE_NONE;
    path += prefix;
    if (strcmp(path, "clustershazbot/gossip") == 0) return ROUTE_GOSSIP;
    if (strcmp(path, "clustershazbot/list") == 0) return ROUTE_LIST;
    if (strcmp(path, "clustershazbot/control") == 0) return ROUTE_CONTROL;
    return ROUTE_NONE;
}

static void on_request(struct evhttp_request *req, void *arg) {
    shazbot *node = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    route r = find_route(node, path && *path ? path : "/");
    if (r == ROUTE_NONE) {
        reply_error(node, req, 404, "no such endpoint");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool post = r == ROUTE_GOSSIP || r == ROUTE_CONTROL;
    if (method != (post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", post ? "POST" : "GET");
        reply_error(node, req, 405, post ? "method not allowed: use POST" : "method not allowed: use GET");
        return;
    }
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    buf answer = {0}, *out = &answer;
    body_pieces body;
    if (post && !body_pieces_get(req, &body)) {
        reply_error(node, req, 500, "out of memory");
        return;
    }
    int status;
    switch (r) {
    case ROUTE_GOSSIP: status = requests_gossip(node, auth, body.chunks, body.count, out); break;
    case ROUTE_CONTROL: status = requests_control(node, auth, body.chunks, body.count, out); break;
    case ROUTE_LIST: status = requests_list(node, auth, out); break;
    case ROUTE_HAPPY: status = requests_happy(node, auth, false, out); break;
    default: status = requests_happy(node, auth, true, out); break;
    }
    if (post) body_pieces_free(&body);
    reply(node, req, status, out);
}

/* Connection buffers that write a whole answer in as few calls as the socket takes, rather
 * than libevent's default of 16 KiB a call (a 10,000-record answer is about 850 KB). */
static struct bufferevent *new_connection_buffer(struct event_base *base, void *arg) {
    (void)arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev) bufferevent_set_max_single_write(bev, 4 << 20);
    return bev;
}

int http_listen(shazbot *node, const char *host, int port, char *err, size_t err_len) {
    if (node->http) {
        snprintf(err, err_len, "already listening");
        return -1;
    }
    node->http = evhttp_new(node->base);
    if (!node->http) {
        snprintf(err, err_len, "cannot create the HTTP server");
        return -1;
    }
    evhttp_set_max_body_size(node->http, (ev_ssize_t)node->cfg.max_body);
    evhttp_set_max_headers_size(node->http, HTTP_MAX_HEADERS);
    evhttp_set_timeout(node->http, HTTP_TIMEOUT);
    /* Read and drop the rest of an oversized body before answering 413, so that the client
     * sees the answer rather than a reset connection. */
    evhttp_set_flags(node->http, EVHTTP_SERVER_LINGERING_CLOSE);
    /* Every method reaches on_request, which answers 405 in JSON itself. */
    evhttp_set_allowed_methods(node->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                               EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                               EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(node->http, on_request, node);
    evhttp_set_bevcb(node->http, new_connection_buffer, NULL);
    const char *bind_host = host ? host : "0.0.0.0";
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(node->http, bind_host, (ev_uint16_t)port);
    if (!bound) {
        snprintf(err, err_len, "cannot listen on %s:%d: %s", bind_host, port, strerror(errno));
        http_free(node);
        return -1;
    }
    /* evhttp writes the headers and the body of an answer separately; with Nagle's algorithm
     * the body then waits for the client's delayed ACK (40 ms on Linux). Accepted sockets
     * inherit the option from the listener. */
    int one = 1;
    setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    log_info("serving on %s:%d", bind_host, port);
    return 0;
}

void http_free(shazbot *node) {
    if (node->http) evhttp_free(node->http);
    node->http = NULL;
}
