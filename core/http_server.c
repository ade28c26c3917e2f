/* http_server: see http_server.h. */
#include "http_server.h"
#include "http_framing.h"
#include "http_guard.h"
#include "log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#define HTTP_TIMEOUT 10
#define HTTP_MAX_HEADERS (64 * 1024)

struct http_server {
    http_server *next; /* in `servers` */
    struct evhttp *http;
    http_guard *guard; /* over http */
    codec *codec;
    http_server_options o;
    bool replying; /* inside http_server_answer: the answer being written is ours */
    SSL_CTX *tls;  /* NULL: plain HTTP */
};

/* What the server keeps for one connection, from its first bytes to its close (below). */
typedef struct connection {
    http_server *s;
    struct bufferevent *bev;
    http_guard_clock *clock;
    http_framing framing;
    struct evbuffer_cb_entry *on_input, *on_output;
    bool adding; /* the server is adding bytes to the input buffer itself */
} connection;

static const char *reason_phrase(int status) {
    static const char *reasons[] = {[200] = "OK", [400] = "Bad Request", [401] = "Unauthorized",
                                    [404] = "Not Found", [405] = "Method Not Allowed",
                                    [412] = "Precondition Failed", [413] = "Payload Too Large",
                                    [415] = "Unsupported Media Type",
                                    [500] = "Internal Server Error", [501] = "Not Implemented",
                                    [503] = "Service Unavailable"};
    return status > 0 && status < (int)(sizeof reasons / sizeof *reasons) && reasons[status] ? reasons[status] : "Error";
}

static void count(http_server *s, int status) {
    if (s->o.count) s->o.count(status, s->o.arg);
}

static void write_error_message(http_server *s, int status, buf *message);

/* ---- answers ------------------------------------------------------------------------------ */

static void free_body(const void *data, size_t len, void *arg) {
    (void)len;
    (void)arg;
    free((void *)data);
}

/* Sends `body` (taken over, may be NULL when out of memory), in `coding`, as the answer: no
 * body to a HEAD. An answer to HEAD has no body, and evhttp writes whatever it is given
 * without a Content-Length: on a kept-alive connection those bytes would be read as the start
 * of the next answer. Answers to GET vary with the Accept-Encoding they were asked with (for
 * caches); answers to POST and PUT say which codings the server reads in requests (RFC 7694,
 * 3), which is how a peer learns it may send zstd. */
static void send_answer(http_server *s, struct evhttp_request *req, int status, struct evbuffer *body,
                        codec_kind coding) {
    count(s, status);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    /* JSON unless the handler said otherwise (/metrics is text). */
    if (!evhttp_find_header(headers, "Content-Type")) evhttp_add_header(headers, "Content-Type", "application/json");
    if (coding != CODEC_IDENTITY) evhttp_add_header(headers, "Content-Encoding", codec_name(coding));
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD) evhttp_add_header(headers, "Vary", "Accept-Encoding");
    else if (method == EVHTTP_REQ_POST || method == EVHTTP_REQ_PUT || status == 415)
        evhttp_add_header(headers, "Accept-Encoding", CODEC_READABLE);
    if (body && method == EVHTTP_REQ_HEAD) evbuffer_drain(body, evbuffer_get_length(body));
    s->replying = true;
    evhttp_send_reply(req, status, reason_phrase(status), body);
    s->replying = false;
    if (body) evbuffer_free(body);
}

codec_kind http_server_answer_coding(const http_server *s, struct evhttp_request *req, size_t len) {
    if (len < CODEC_MIN_SIZE || s->o.compression == CODEC_IDENTITY) return CODEC_IDENTITY;
    return codec_accepted(evhttp_find_header(evhttp_request_get_input_headers(req), "Accept-Encoding"),
                          s->o.compression);
}

codec *http_server_codec(http_server *s) { return s->codec; }

void http_server_answer_as(http_server *s, struct evhttp_request *req, int status, buf *b, codec_kind coding) {
    struct evbuffer *body = evbuffer_new();
    size_t len;
    char *data = buf_take(b, &len);
    if (body && data) evbuffer_add_reference(body, data, len, free_body, NULL);
    else free(data);
    send_answer(s, req, status, body, coding);
}

void http_server_answer(http_server *s, struct evhttp_request *req, int status, buf *b) {
    codec_kind coding = http_server_answer_coding(s, req, b->len);
    if (coding != CODEC_IDENTITY) {
        buf coded = {0};
        codec_encode(s->codec, coding, b->data, b->len, &coded);
        if (!coded.failed) {
            buf_free(b);
            http_server_answer_as(s, req, status, &coded, coding);
            return;
        }
        buf_free(&coded); /* out of memory: the plain answer still goes */
    }
    http_server_answer_as(s, req, status, b, CODEC_IDENTITY);
}

/* ---- shared answers --------------------------------------------------------------------
 * Shared bytes are sent by reference: every answer that is being written holds the block, and
 * the block's memory is counted once in `held_bytes`, from its first writer to its last. The
 * figure is for the whole process (an answer may outlive its server: libevent frees a
 * connection's buffers when it gets round to it), hence the lock. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t held_bytes;
static time_t last_refusal_log;

static void release_shared(const void *data, size_t len, void *arg) {
    (void)arg;
    pthread_mutex_lock(&held_lock);
    if (buf_shared_writers(data, -1) == 0) held_bytes -= len;
    pthread_mutex_unlock(&held_lock);
    buf_shared_drop(data);
}

void http_server_answer_pieces(http_server *s, struct evhttp_request *req, int status, const http_piece *pieces,
                               size_t count, codec_kind coding) {
    bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
    pthread_mutex_lock(&held_lock);
    size_t others = held_bytes; /* what answers hold besides the blocks of this one */
    for (size_t i = 0; i < count; i++)
        if (pieces[i].shared && pieces[i].len && buf_shared_writers(pieces[i].data, 0) > 0) others -= pieces[i].len;
    bool refused = !head && others > HTTP_SHARED_ANSWERS_MAX;
    pthread_mutex_unlock(&held_lock);
    if (refused) {
        time_t now = time(NULL);
        if (now - last_refusal_log >= 10) {
            last_refusal_log = now;
            log_warn(s->o.log_limit, "answers not yet read by their clients hold %zu MiB of earlier lists: refusing "
                     "more with 503 until they are read or their connections time out", others >> 20);
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        http_server_answer_error(s, req, 503, "too many answers waiting for slow clients; retry later");
        return;
    }
    struct evbuffer *body = evbuffer_new();
    bool ok = body != NULL;
    for (size_t i = 0; ok && !head && i < count; i++) {
        const http_piece *p = &pieces[i];
        if (p->len == 0) continue;
        if (!p->shared) {
            ok = evbuffer_add(body, p->data, p->len) == 0;
            continue;
        }
        buf_shared_hold(p->data);
        pthread_mutex_lock(&held_lock);
        if (buf_shared_writers(p->data, +1) == 1) held_bytes += p->len;
        pthread_mutex_unlock(&held_lock);
        if (evbuffer_add_reference(body, p->data, p->len, release_shared, NULL) != 0) {
            release_shared(p->data, p->len, NULL);
            ok = false;
        }
    }
    if (!ok) {
        if (body) evbuffer_free(body);
        http_server_answer_error(s, req, 500, "out of memory");
        return;
    }
    send_answer(s, req, status, body, coding);
}

void http_server_answer_error(http_server *s, struct evhttp_request *req, int status, const char *message) {
    buf b = {0};
    wire_write_error(&b, message);
    http_server_answer(s, req, status, &b);
}

bool http_body_get(struct evhttp_request *req, http_body *b) {
    b->decoded = (buf){0};
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

bool http_body_is_coded(struct evhttp_request *req) {
    codec_kind k;
    const char *header = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Encoding");
    return !codec_from_content_encoding(header, &k) || k != CODEC_IDENTITY;
}

int http_body_read(http_server *s, struct evhttp_request *req, http_body *b, buf *why) {
    *b = (http_body){0};
    const char *header = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Encoding");
    codec_kind k;
    if (!codec_from_content_encoding(header, &k)) {
        b->chunks = b->few;
        buf_printf(why, "Content-Encoding \"%s\" is not one this server reads (%s)", header, CODEC_READABLE);
        return 415;
    }
    if (!http_body_get(req, b)) {
        buf_printf(why, "out of memory");
        return 500;
    }
    if (k == CODEC_IDENTITY) return 0;
    buf decoded = {0};
    codec_result r = codec_decode(s->codec, k, b->chunks, b->count, s->o.max_body, &decoded);
    http_body_free(b); /* the compressed pieces: the body is `decoded` from here on */
    b->decoded = decoded;
    switch (r) {
    case CODEC_DECODED:
        b->count = 1;
        b->few[0] = (wire_chunk){b->decoded.data, b->decoded.len};
        return 0;
    case CODEC_OVER_LIMIT: {
        buf limit = {0};
        write_error_message(s, 413, &limit);
        buf_printf(why, "%s once decoded (Content-Encoding: %s)", limit.data ? limit.data : "body over the limit", header);
        buf_free(&limit);
        return 413;
    }
    case CODEC_CORRUPT: buf_printf(why, "body: not valid %s (Content-Encoding: %s)", codec_name(k), header); return 400;
    default: buf_printf(why, "out of memory"); return 500;
    }
}

void http_body_free(http_body *b) {
    if (b->chunks != b->few) free(b->chunks);
    b->chunks = b->few;
    b->count = 0;
    buf_free(&b->decoded);
}

/* ---- evhttp's own error pages -------------------------------------------------------------
 * evhttp answers some requests itself, before the handler sees them: 413 for a body over the
 * limit, 400 for a request it cannot parse, 501 for a method it does not know. It writes those
 * as HTML pages, and libevent 2.1 has no hook to change them (2.2 has evhttp_set_errorcb),
 * while the errors of both the protocol and the store are JSON. So each connection's output
 * buffer is watched: evhttp puts a page in it whole, status line to closing tag, before the
 * socket is written, and once the closing tag of such a page is in, the page is replaced by the
 * same status in JSON. Our own answers (s->replying) are not looked at. A 413 that evhttp
 * gives to a chunked body whose framing the connection's tracker refused (http_framing.h) is
 * that body's 400, with the tracker's reason.
 *
 * The page need not be alone in the buffer: answers to pipelined requests that the client has
 * not read yet may lie before it. It is found from its body, "\r\n\r\n<HTML><HEAD>\n", which
 * no answer of ours can hold (JSON has no raw line breaks in strings, and no '<' outside
 * them), and its status line is the last "HTTP/1." before that body: between the two there
 * are only evhttp's own headers. Everything in front of the page stays as it is. */
static const char html_page_end[] = "</BODY></HTML>\n";
static const char html_page_body[] = "\r\n\r\n<HTML><HEAD>\n";

static void write_error_message(http_server *s, int status, buf *message) {
    if (s->o.error_message) s->o.error_message(status, message, s->o.arg);
    if (message->len > 0 || message->failed) return;
    if (status == 413) buf_printf(message, "body over the limit of %zu bytes", s->o.max_body);
    else if (status == 400) buf_printf(message, "malformed HTTP request");
    else if (status == 501) buf_printf(message, "method not supported");
    else buf_printf(message, "%s", reason_phrase(status));
}

/* Where evhttp's page starts in `out`, -1 if there is none. */
static ev_ssize_t find_error_page(struct evbuffer *out) {
    struct evbuffer_ptr body = evbuffer_search(out, html_page_body, sizeof html_page_body - 1, NULL);
    if (body.pos < 0) return -1;
    ev_ssize_t start = -1;
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(out, &at, 0, EVBUFFER_PTR_SET) != 0) return -1;
    for (;;) {
        struct evbuffer_ptr found = evbuffer_search_range(out, "HTTP/1.", 7, &at, &body);
        if (found.pos < 0) break;
        start = found.pos;
        at = found;
        if (evbuffer_ptr_set(out, &at, 1, EVBUFFER_PTR_ADD) != 0) break;
    }
    return start;
}

static void rewrite_page_at_end(connection *c, struct evbuffer *out, size_t len) {
    http_server *s = c->s;
    const size_t end_len = sizeof html_page_end - 1;
    char end[sizeof html_page_end], head[14] = {0};
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(out, &at, len - end_len, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(out, &at, end, end_len) != (ev_ssize_t)end_len ||
        memcmp(end, html_page_end, end_len) != 0)
        return;
    ev_ssize_t start = find_error_page(out);
    /* "HTTP/1.1 413 ": the version and the status evhttp chose. */
    if (start < 0 || evbuffer_ptr_set(out, &at, (size_t)start, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(out, &at, head, 13) != 13 || head[8] != ' ')
        return;
    int status = atoi(head + 9);
    struct evbuffer_ptr html = evbuffer_search(out, "\r\nContent-Type: text/html\r\n", 27, &at);
    if (status < 400 || status > 599 || html.pos < 0) return;

    buf message = {0}, json = {0}, answer = {0};
    /* evhttp answers a refused chunked frame with 413, a refused head with 400. */
    const char *refusal = status == 413 || status == 400 ? http_framing_refusal(&c->framing) : NULL;
    if (refusal) {
        status = 400;
        buf_add_str(&message, refusal);
    } else {
        write_error_message(s, status, &message);
    }
    wire_write_error(&json, message.data ? message.data : "error");
    /* evhttp closes the connection after such a page: the answer says so. */
    buf_printf(&answer, "HTTP/1.%c %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        "Content-Length: %zu\r\n\r\n",
               head[7], status, reason_phrase(status), json.len);
    buf_add(&answer, json.data, json.len);
    struct evbuffer *before = evbuffer_new();
    if (answer.data && json.data && before) {
        s->replying = true; /* the JSON answer is ours: not to be looked at again */
        /* The answers in front of the page are moved aside (their chains, not copies), the page
         * dropped, and they come back with the JSON answer behind them. */
        evbuffer_remove_buffer(out, before, (size_t)start);
        evbuffer_drain(out, evbuffer_get_length(out));
        evbuffer_add_buffer(out, before);
        evbuffer_add(out, answer.data, answer.len);
        s->replying = false;
        count(s, status);
    }
    if (before) evbuffer_free(before);
    buf_free(&message);
    buf_free(&json);
    buf_free(&answer);
}

static void rewrite_error_page(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg) {
    connection *c = arg;
    size_t len = evbuffer_get_length(out);
    if (c->s->replying || info->n_added == 0 || len < sizeof html_page_end + 16) return;
    /* After its first write the socket's bufferevent leaves the start of its output buffer
     * frozen (libevent 2.1 unfreezes it only around its own writes), and a frozen buffer
     * refuses to be read from or drained: every page but a connection's first answer stayed
     * HTML. Thawed for the rewrite, frozen again as it was. */
    char probe;
    bool frozen = evbuffer_copyout(out, &probe, 1) < 0;
    if (frozen) evbuffer_unfreeze(out, 1);
    rewrite_page_at_end(c, out, len);
    if (frozen) evbuffer_freeze(out, 1);
}

/* ---- connections ---------------------------------------------------------------------------
 * libevent 2.1 reads a socket at most 4 KiB a call (EVBUFFER_MAX_READ), each read after a
 * FIONREAD ioctl and in a loop turn of its own: an 8 KB gossip request took 6 system calls to
 * read, a 10,000-record one over 400. So when one of its reads fills those 4 KiB, more is
 * probably waiting, and the connection's input buffer reads it at once, before evhttp looks
 * at the buffer: up to READ_AHEAD_CHUNK bytes a call while calls fill their space, at most
 * READ_AHEAD_MAX in all, so that one sender cannot keep the loop from the others. The data
 * lands where libevent's own read would have put it; an end of file or an error is left for
 * libevent's next read to find. */
#define LIBEVENT_MAX_READ 4096
#define READ_AHEAD_CHUNK (64 * 1024)
#define READ_AHEAD_MAX (1024 * 1024)

static void read_ahead(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg) {
    /* Our own additions call back too: only libevent's full reads are followed. */
    static _Thread_local bool reading;
    if (reading || info->n_added != LIBEVENT_MAX_READ) return;
    evutil_socket_t fd = bufferevent_getfd(arg);
    if (fd < 0) return;
    reading = true;
    for (size_t total = 0; total < READ_AHEAD_MAX;) {
        struct evbuffer_iovec space[2];
        int n = evbuffer_reserve_space(in, READ_AHEAD_CHUNK, space, 2);
        if (n <= 0) break;
        struct iovec iov[2];
        size_t wanted = 0;
        for (int i = 0; i < n; i++) {
            iov[i] = (struct iovec){space[i].iov_base, space[i].iov_len};
            wanted += space[i].iov_len;
        }
        ssize_t got = readv(fd, iov, n);
        if (got <= 0) {
            evbuffer_commit_space(in, space, 0);
            break;
        }
        size_t left = (size_t)got;
        int used = 0;
        for (; used < n && left > 0; used++) {
            if (space[used].iov_len > left) space[used].iov_len = left;
            left -= space[used].iov_len;
        }
        evbuffer_commit_space(in, space, used);
        total += (size_t)got;
        if ((size_t)got < wanted) break; /* the socket is drained */
    }
    reading = false;
}

/* ---- framing --------------------------------------------------------------------------------
 * Every byte a connection receives goes through its framing tracker (http_framing.h) before
 * evhttp reads it: the input callbacks run inside libevent's read, before the bufferevent's
 * own read callback hands the buffer to evhttp. The tracker's callback is the newest on the
 * buffer, so it runs first, also when read_ahead reads more from inside the callbacks.
 * Changes are made in place: the input buffer's chains are the memory of the socket reads,
 * and a rewritten chunk-size line keeps its length. */

/* Not freed from inside the connection's own callbacks: shut, so that evhttp's next read finds
 * the end of the stream and frees the connection itself. */
static void shut(struct bufferevent *bev) {
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

/* Writes `len` bytes over the buffer from `offset`: `bytes`, or the filler of a refused line. */
static void overwrite(struct evbuffer *in, size_t offset, const char *bytes, size_t len) {
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(in, &at, offset, EVBUFFER_PTR_SET) != 0) return;
    while (len > 0) {
        struct evbuffer_iovec vec[8];
        int n = evbuffer_peek(in, (ev_ssize_t)len, &at, vec, 8);
        if (n <= 0) return;
        size_t done = 0;
        for (int i = 0; i < n && i < 8 && len > 0; i++) {
            size_t k = vec[i].iov_len < len ? vec[i].iov_len : len;
            if (bytes) memcpy(vec[i].iov_base, bytes + done, k);
            else memset(vec[i].iov_base, HTTP_FRAMING_FILLER, k);
            done += k;
            len -= k;
        }
        if (len > 0 && evbuffer_ptr_set(in, &at, done, EVBUFFER_PTR_ADD) != 0) return;
    }
}

/* Makes the line evhttp reads next, at `offset`, one it refuses: filler up to the end of the
 * buffer, then CRLF. Whatever arrives later lies behind it, and evhttp never reads that far. */
static void refuse_from(connection *c, struct evbuffer *in, size_t offset) {
    overwrite(in, offset, NULL, evbuffer_get_length(in) - offset);
    c->adding = true;
    bool added = evbuffer_add(in, "\r\n", 2) == 0;
    c->adding = false;
    if (!added) shut(c->bev); /* cannot happen inside libevent's read; without the line, no answer */
}

/* Hands the tracker the bytes of `in` from `from` on; false once it refused the framing. */
static bool frame_bytes(connection *c, struct evbuffer *in, size_t from) {
    http_framing *f = &c->framing;
    size_t len = evbuffer_get_length(in);
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(in, &at, from, EVBUFFER_PTR_SET) != 0) return true;
    while (from < len) {
        struct evbuffer_iovec vec[8];
        int n = evbuffer_peek(in, (ev_ssize_t)(len - from), &at, vec, 8);
        if (n <= 0) break;
        size_t seen = 0;
        for (int i = 0; i < n && i < 8 && from + seen < len; i++) {
            const char *data = vec[i].iov_base;
            size_t size = vec[i].iov_len < len - from - seen ? vec[i].iov_len : len - from - seen;
            for (size_t done = 0; done < size;) {
                http_framing_edit edit;
                done += http_framing_read(f, data + done, size - done, &edit);
                if (edit.action != HTTP_FRAMING_NONE && edit.at < f->drained) {
                    /* evhttp read past a line the tracker had not finished: cannot happen, as
                     * it reads whole lines only; should it, nothing it reads can be trusted. */
                    shut(c->bev);
                    return false;
                }
                if (edit.action == HTTP_FRAMING_REWRITE) {
                    overwrite(in, (size_t)(edit.at - f->drained), edit.bytes, edit.len);
                } else if (edit.action == HTTP_FRAMING_REFUSE) {
                    refuse_from(c, in, (size_t)(edit.at - f->drained));
                    return false;
                }
            }
            seen += size;
        }
        from += seen;
        if (from < len && evbuffer_ptr_set(in, &at, seen, EVBUFFER_PTR_ADD) != 0) break;
    }
    return true;
}

static void on_connection_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg) {
    connection *c = arg;
    if (c->adding) return;
    http_framing *f = &c->framing;
    http_framing_drained(f, info->n_deleted);
    size_t len = evbuffer_get_length(in);
    /* Past a refusal evhttp drains the filler, which the tracker never read. */
    if (f->read < f->drained || f->read - f->drained >= len) return;
    size_t from = (size_t)(f->read - f->drained);
    /* A body's bytes are skipped by their count, without a look at the buffer. */
    size_t unseen = (size_t)(http_framing_unseen(f) < len - from ? http_framing_unseen(f) : len - from);
    http_framing_skip(f, unseen);
    if (from + unseen < len) frame_bytes(c, in, from + unseen);
}

/* ---- connections' lives ----------------------------------------------------------------------
 * A connection's own state (its request clock, its framing tracker) is made at its first
 * bytes: by then evhttp has set the connection up, and its bufferevent's callback argument is
 * the evhttp_connection, which leads to the server and takes the close callback that frees
 * the state. A connection that never sends a byte is closed by evhttp's idle timeout and needs
 * none. The server is found from its evhttp here, once per connection; the lock is for hosts
 * that run nodes in several threads. */
static http_server *servers;
static pthread_mutex_t servers_lock = PTHREAD_MUTEX_INITIALIZER;

static http_server *server_of(const struct evhttp *http) {
    pthread_mutex_lock(&servers_lock);
    http_server *s = servers;
    while (s && s->http != http) s = s->next;
    pthread_mutex_unlock(&servers_lock);
    return s;
}

static void connection_free(connection *c) {
    if (!c) return;
    /* evhttp may still empty the buffers after the close: they must not call a freed state. */
    if (c->on_input) evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->on_input);
    if (c->on_output) evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->on_output);
    http_guard_clock_free(c->clock);
    http_framing_free(&c->framing);
    free(c);
}

static void on_connection_close(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    connection_free(arg);
}

static void on_first_bytes(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg) {
    struct bufferevent *bev = arg;
    if (info->n_added == 0) return;
    evbuffer_remove_cb(in, on_first_bytes, bev);
    void *cbarg = NULL;
    bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
    struct evhttp_connection *evcon = cbarg;
    http_server *s = evcon ? server_of(evhttp_connection_get_server(evcon)) : NULL;
    connection *c = s ? calloc(1, sizeof *c) : NULL;
    if (c) {
        *c = (connection){.s = s, .bev = bev};
        http_framing_init(&c->framing, s->o.max_body, HTTP_MAX_HEADERS);
        c->clock = http_guard_clock_new(s->guard, bev, info->n_added);
        c->on_output = evbuffer_add_cb(bufferevent_get_output(bev), rewrite_error_page, c);
        c->on_input = evbuffer_add_cb(in, on_connection_input, c); /* the newest: it runs first */
    }
    if (!c || !c->clock || !c->on_output || !c->on_input) {
        /* Out of memory: without its state the connection would take broken framing and answer
         * HTML. */
        connection_free(c);
        shut(bev);
        return;
    }
    evhttp_connection_set_closecb(evcon, on_connection_close, c);
    on_connection_input(in, info, c); /* these first bytes */
}

/* Connection buffers that read what is waiting in one go (read_ahead), write a whole answer
 * in as few calls as the socket takes, rather than libevent's default of 16 KiB a call (a
 * 10,000-record answer is about 850 KB), and get their state at their first bytes: a
 * framing tracker, JSON for evhttp's error pages (above), a deadline for their requests
 * (http_guard). */
static struct bufferevent *new_connection_buffer(struct event_base *base, void *arg) {
    http_server *s = arg;
    struct bufferevent *bev;
    if (s->tls) {
        /* Over TLS the socket carries records, not the request: read_ahead, which reads the
         * socket itself into the input buffer, stays off (OpenSSL reads whole records anyway).
         * The framing tracker and the rest see the decrypted bytes, as in plain HTTP. */
        SSL *ssl = SSL_new(s->tls);
        if (!ssl) return NULL;
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            SSL_free(ssl);
            return NULL;
        }
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) return NULL;
    }
    bufferevent_set_max_single_write(bev, 4 << 20);
    if ((!s->tls && !evbuffer_add_cb(bufferevent_get_input(bev), read_ahead, bev)) ||
        !evbuffer_add_cb(bufferevent_get_input(bev), on_first_bytes, bev)) {
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}

/* ---- listening ------------------------------------------------------------------------------ */

/* evhttp writes the headers and the body of an answer separately; with Nagle's algorithm the
 * body then waits for the client's delayed ACK (40 ms on Linux). Accepted sockets inherit the
 * option from their listener. */
static void set_nodelay(evutil_socket_t fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void watch(http_server *s, struct evhttp_bound_socket *bound) {
    set_nodelay(evhttp_bound_socket_get_fd(bound));
    http_guard_watch_listener(s->guard, evhttp_bound_socket_get_listener(bound));
}

/* "Every interface" includes IPv6 ones: a node whose base URL is http://[::1]:3000/ must be
 * reachable there. A second listener on [::] with IPV6_V6ONLY, beside 0.0.0.0, whatever the
 * system's net.ipv6.bindv6only says. Without IPv6 on the machine the server serves IPv4
 * only: said in the log, not an error. */
static bool listen_ipv6_too(http_server *s, int port) {
    evutil_socket_t fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0 &&
              bind(fd, (struct sockaddr *)&any, sizeof any) == 0 && listen(fd, 128) == 0;
    struct evhttp_bound_socket *bound = ok ? evhttp_accept_socket_with_handle(s->http, fd) : NULL;
    if (bound) {
        watch(s, bound);
        return true;
    }
    log_warn(s->o.log_limit, "not serving on [::]:%d (IPv6): %s", port, strerror(errno));
    if (fd >= 0) evutil_closesocket(fd);
    return false;
}

http_server *http_server_new(struct event_base *base, const http_server_options *o, const char *host,
                             int port, char *err, size_t err_len) {
    http_server *s = calloc(1, sizeof *s);
    if (s) {
        s->o = *o;
        s->http = evhttp_new(base);
    }
    if (s && s->http) s->guard = http_guard_new(base, o->log_limit, o->request_timeout);
    if (s) s->codec = codec_new();
    if (!s || !s->guard || !s->codec) {
        snprintf(err, err_len, "cannot create the HTTP server (out of memory?)");
        http_server_free(s);
        return NULL;
    }
    if (o->tls_cert && !(s->tls = http_tls_context_new(o->tls_cert, o->tls_key, o->tls_client_ca, err, err_len))) {
        http_server_free(s);
        return NULL;
    }
    pthread_mutex_lock(&servers_lock);
    s->next = servers;
    servers = s;
    pthread_mutex_unlock(&servers_lock);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)o->max_body);
    evhttp_set_max_headers_size(s->http, HTTP_MAX_HEADERS);
    evhttp_set_timeout(s->http, HTTP_TIMEOUT);
    /* Read and drop the rest of an oversized body before answering 413, so that the client
     * sees the answer rather than a reset connection. */
    evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s->http, o->handle, o->arg);
    evhttp_set_bevcb(s->http, new_connection_buffer, s);
    const char *bind_host = host ? host : "0.0.0.0";
    bool bracket = strchr(bind_host, ':') != NULL;
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(s->http, bind_host, (ev_uint16_t)port);
    if (!bound) {
        snprintf(err, err_len, "cannot listen on %s%s%s:%d: %s", bracket ? "[" : "", bind_host,
                 bracket ? "]" : "", port, strerror(errno));
        http_server_free(s);
        return NULL;
    }
    watch(s, bound);
    if (!host && listen_ipv6_too(s, port)) log_info(o->log_limit, "serving on 0.0.0.0:%d and [::]:%d", port, port);
    else log_info(o->log_limit, "serving on %s%s%s:%d", bracket ? "[" : "", bind_host, bracket ? "]" : "", port);
    return s;
}

void http_server_free(http_server *s) {
    if (!s) return;
    pthread_mutex_lock(&servers_lock);
    http_server **at = &servers;
    while (*at && *at != s) at = &(*at)->next;
    if (*at) *at = s->next;
    pthread_mutex_unlock(&servers_lock);
    http_guard_free(s->guard); /* before the server it watches */
    if (s->http) evhttp_free(s->http);
    codec_free(s->codec);
    SSL_CTX_free(s->tls); /* connections still open hold their own reference */
    free(s);
}

/* ---- TLS -------------------------------------------------------------------------------------- */

static void tls_reason(char *err, size_t err_len, const char *what, const char *path) {
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown reason";
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    snprintf(err, err_len, "%s '%s': %s", what, path, reason);
}

void *http_tls_context_new(const char *cert, const char *key, const char *client_ca, char *err, size_t err_len) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, err_len, "cannot create a TLS context (out of memory?)");
        return NULL;
    }
    /* TLS 1.2 at least: older versions have known breaks. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_reason(err, err_len, "SHAZBOT_TLS_CERT: cannot load", cert);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tls_reason(err, err_len, "SHAZBOT_TLS_KEY: cannot load (or not the key of SHAZBOT_TLS_CERT)", key);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_reason(err, err_len, "SHAZBOT_TLS_KEY: does not match SHAZBOT_TLS_CERT", key);
    } else if (client_ca && SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
        tls_reason(err, err_len, "SHAZBOT_TLS_CLIENT_CA: cannot load", client_ca);
    } else {
        if (client_ca) {
            /* Mutual TLS: the handshake fails without a certificate the CA signed, before a
             * byte of a request is read. The CA's name is sent so that clients pick theirs. */
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
            if (names) SSL_CTX_set_client_CA_list(ctx, names);
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
            ERR_clear_error();
        }
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

void http_tls_context_free(void *ctx) { SSL_CTX_free(ctx); }

int http_server_reload_tls(http_server *s, char *err, size_t err_len) {
    if (!s || !s->tls) return 0;
    SSL_CTX *fresh = http_tls_context_new(s->o.tls_cert, s->o.tls_key, s->o.tls_client_ca, err, err_len);
    if (!fresh) return -1; /* the old context goes on serving */
    /* Open connections hold a reference of their own (SSL_new): they keep the old one. */
    SSL_CTX_free(s->tls);
    s->tls = fresh;
    return 1;
}

/* ---- addresses -------------------------------------------------------------------------------
 * The port is digits only: strtol alone also took " 80" and "+80". A host with a ':' must be
 * bracketed and brackets must pair, so that "::1:8080" or "[::1:8080" is refused with the value
 * named instead of being read one way or the other and failing later at bind time. */
bool http_parse_address(const char *value, char **host, int *port) {
    const char *colon = strrchr(value, ':');
    if (!colon) return false;
    size_t digits = strspn(colon + 1, "0123456789");
    if (digits == 0 || digits > 5 || colon[1 + digits] != '\0') return false;
    long p = strtol(colon + 1, NULL, 10);
    if (p > 65535) return false;
    const char *h = value;
    size_t hlen = (size_t)(colon - value);
    bool bracketed = hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']';
    if (bracketed) {
        h++;
        hlen -= 2;
        if (hlen == 0) return false; /* "[]:80" names no host */
    }
    for (size_t i = 0; i < hlen; i++)
        if (h[i] == '[' || h[i] == ']' || (h[i] == ':' && !bracketed)) return false;
    *host = hlen ? strndup(h, hlen) : NULL;
    *port = (int)p;
    return true;
}
