/* http_server: an evhttp server fit to face the network, the one under both the node's listener
 * (http.c) and the master-list store (store.c), so that each gets every guarantee of the other:
 *
 * - one way to name an address (host:port, [v6]:port, :port) and to bind it: a host, or every
 *   interface, IPv4 and IPv6 side by side;
 * - TCP_NODELAY and the read-ahead of connections (libevent 2.1 alone reads 4 KiB a loop turn);
 * - the http_guard (http_guard.h): accept() pauses when descriptors run out, request deadlines;
 * - limits: the body size, the headers (64 KiB), an idle connection (10 s);
 * - chunked bodies read as RFC 9112 frames them (http_framing.h): extensions accepted, broken
 *   framing answered 400;
 * - JSON errors where evhttp writes HTML pages of its own (413, 400, 501);
 * - answers in JSON, without a body to HEAD, each counted;
 * - content codings (codec.h): request bodies decoded within the body limit (413 past it, 415
 *   for a coding it does not read, with the Accept-Encoding of RFC 7694 that every answer to
 *   a POST or PUT carries), answers compressed for the clients that accept it.
 *
 * Every method reaches the user's handler, which answers 405 itself to those it does not serve. */
#ifndef SHAZBOT_HTTP_SERVER_H
#define SHAZBOT_HTTP_SERVER_H

#include "buf.h"
#include "codec.h"
#include "config.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct evhttp_request;

typedef struct http_server http_server;

typedef struct http_server_options {
    size_t max_body;        /* bytes; a larger request gets 413 */
    double request_timeout; /* seconds from a request's first byte (http_guard.h) */
    log_level log_limit;    /* for the lines the server writes (log.h) */
    codec_kind compression; /* the best coding of its answers (SHAZBOT_COMPRESSION) */
    /* Every request that evhttp could parse. It answers with http_server_answer or
     * http_server_answer_error. */
    void (*handle)(struct evhttp_request *req, void *arg);
    /* The message of an error that evhttp answers itself (413, 400, 501), written into
     * `message`; left empty, or this NULL, the server's own is used. */
    void (*error_message)(int status, buf *message, void *arg);
    /* Told the status of every answer, evhttp's own errors included. May be NULL. */
    void (*count)(int status, void *arg);
    void *arg; /* handed to the three callbacks */
    /* PEM paths: with both, every connection is TLS (OpenSSL bufferevents). NULL: plain HTTP. */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_client_ca; /* set: every client must show a certificate signed by it */
} http_server_options;

/* An SSL_CTX (as void *) serving `cert` and `key`, checked to match, requiring client
 * certificates signed by `client_ca` unless NULL; NULL with a message naming the file and
 * OpenSSL's reason. Freed with http_tls_context_free (NULL is fine). */
void *http_tls_context_new(const char *cert, const char *key, const char *client_ca, char *err, size_t err_len);
void http_tls_context_free(void *ctx);
/* Reads the server's certificate, key and client CA again, for new connections; open ones keep
 * what they had. 1 when reloaded, 0 when the server has no TLS, -1 with a message when a file
 * is bad: then the old ones stay. */
int http_server_reload_tls(http_server *s, char *err, size_t err_len);

/* Serves on host:port; a NULL host means every interface: 0.0.0.0, and [::] beside it where the
 * machine has IPv6. Logs where it serves. NULL with a message naming the address on failure. */
http_server *http_server_new(struct event_base *base, const http_server_options *o, const char *host,
                             int port, char *err, size_t err_len);
/* Closes the listeners and every connection. NULL is fine. */
void http_server_free(http_server *s);

/* Answers `req` with `body` (JSON, taken over and emptied), no body to a HEAD, compressed when
 * the client accepts it and the body is worth it (http_server_answer_coding). Headers of the
 * user's own (Allow, ETag) are added to evhttp_request_get_output_headers(req) before. */
void http_server_answer(http_server *s, struct evhttp_request *req, int status, buf *body);
/* The coding an answer of `len` plain bytes gets: the best the request's Accept-Encoding takes
 * within the server's compression, CODEC_IDENTITY below CODEC_MIN_SIZE. */
codec_kind http_server_answer_coding(const http_server *s, struct evhttp_request *req, size_t len);
/* The server's compressors, for a caller that builds a coded answer itself (cached pieces). */
codec *http_server_codec(http_server *s);
/* Answers with `body` already in `coding` (its Content-Encoding), taken over. */
void http_server_answer_as(http_server *s, struct evhttp_request *req, int status, buf *body, codec_kind coding);
/* A piece of an answer's body: bytes to copy, or a whole block of shared bytes (buf_share:
 * `data` its start, `len` its length) to send by reference. */
typedef struct http_piece {
    const char *data;
    size_t len;
    bool shared;
} http_piece;

/* What answers being written may hold of shared blocks, besides the blocks of the answer at
 * hand, in the whole process. A client that does not read its answer keeps the blocks it
 * references (until evhttp's 10 s write timeout, or for as long as it reads a byte now and
 * then); while the state does not change they are the state's own cached bytes and cost
 * nothing, but each change leaves the old bytes to the slow clients that still hold them. */
#define HTTP_SHARED_ANSWERS_MAX ((size_t)64 << 20)

/* Answers `status` with the pieces joined (JSON, or a body of `coding` when the pieces are a
 * coded body's: wire_list_parts_coded), shared ones without a copy. While answers
 * that clients have not read yet hold more than HTTP_SHARED_ANSWERS_MAX bytes of other shared
 * blocks, refuses instead: 503 {"error":...} with Retry-After, logged every 10 s at most.
 * The pieces stay the caller's. */
void http_server_answer_pieces(http_server *s, struct evhttp_request *req, int status, const http_piece *pieces,
                               size_t count, codec_kind coding);
/* Answers {"error":"<message>"}. */
void http_server_answer_error(http_server *s, struct evhttp_request *req, int status, const char *message);

/* The request body as the pieces the input buffer holds it in. libevent 2.1 reads at most
 * 4 KiB a call, so a large body lies in hundreds of pieces, and joining them first
 * (evbuffer_pullup) copied it whole; the parser (wire_parse_chunks) reads them where they
 * are. Valid until the answer. */
typedef struct http_body {
    wire_chunk *chunks; /* `few`, or allocated for a large body */
    size_t count;
    wire_chunk few[8];
    buf decoded; /* a compressed body, decoded: then the one chunk */
} http_body;

/* The body as it came (a compressed one left compressed). False when out of memory. */
bool http_body_get(struct evhttp_request *req, http_body *b);
/* Whether the request names a coding of its body other than identity. */
bool http_body_is_coded(struct evhttp_request *req);
/* The body, decoded when its Content-Encoding names a coding, within the server's max_body:
 * 0, or the status of a refusal (413 inflating past the limit, 415 a coding the server does
 * not read, 400 not a body of its coding, 500 out of memory) with its message in `why`.
 * http_body_free after either. */
int http_body_read(http_server *s, struct evhttp_request *req, http_body *b, buf *why);
void http_body_free(http_body *b);

/* Reads "host:port", "[v6]:port" or ":port" (every interface: *host NULL). The host is
 * malloc'd. False, with nothing allocated, when `value` is none of these. */
bool http_parse_address(const char *value, char **host, int *port);

#endif
