/* store: the master-list store of clustershazbot_store.h, on http_server.
 *
 * The list is kept whole in memory, as the last accepted body, byte for byte: a GET answers it
 * as it was written, and its ETag is a hash of those bytes. A PUT is checked (secret, If-Match,
 * a valid master list) before anything is written, so a refused one changes nothing; an
 * accepted one is on disk (temp file, fsync, rename, fsync of the folder) before it is served. */
#include "clustershazbot_store.h"
#include "config.h"
#include "http_server.h"
#include "log.h"
#include "secret.h"
#include "store.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Far above any real list (10,000 records are about 1 MB), and a bound on what one PUT holds
 * in memory. */
#define STORE_MAX_BODY (64u << 20)
/* The store writes few lines, and each is worth seeing. */
#define STORE_LOG_LEVEL LOG_INFO

struct shazbot_store {
    char *host; /* NULL: every interface */
    int port;
    char *path, *auth;
    double request_timeout;
    /* The current content, shared bytes (buf.h): a GET sends them without a copy, and a PUT
     * replaces them while slow clients may still be reading the old ones. */
    char *list;
    size_t list_len;
    /* The list compressed, by codec_kind, made at the first GET that takes the coding. */
    codec_segment coded[CODEC_ZSTD + 1];
    char etag[STORE_ETAG_SIZE];
    struct event_base *base;
    http_server *server;
};

/* ---- the list and its file -------------------------------------------------------------- */

void store_etag(const char *list, size_t len, char out[STORE_ETAG_SIZE]) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)list[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, STORE_ETAG_SIZE, "\"%016llx\"", (unsigned long long)h);
}

int store_put_refusal(const char *authorization, const char *auth, const char *if_match, const char *etag) {
    if (!secret_matches(authorization, auth)) return 401;
    if (if_match && strcmp(if_match, "*") != 0 && strcmp(if_match, etag) != 0) return 412;
    return 0;
}

/* False when out of memory, the list unchanged. */
static bool set_list(shazbot_store *s, buf *list) {
    size_t len;
    char *shared = buf_share(list, &len);
    if (!shared) return false;
    buf_shared_drop(s->list);
    for (int k = 0; k <= CODEC_ZSTD; k++) codec_segment_drop(&s->coded[k]);
    s->list = shared;
    s->list_len = len;
    store_etag(s->list, s->list_len, s->etag);
    return true;
}

static bool write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* temp file beside the target, fsync, rename over it, fsync the folder. */
static bool save_atomically(const char *path, const buf *list, char *err, size_t err_len) {
    buf tmp = {0};
    buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = tmp.data ? open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    bool ok = fd >= 0 && write_all(fd, list->data, list->len) && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = false;
    if (ok && rename(tmp.data, path) != 0) ok = false;
    if (!ok) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        if (tmp.data) unlink(tmp.data);
    } else {
        char *copy = strdup(path);
        int dir = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY) : -1;
        if (dir >= 0) {
            fsync(dir);
            close(dir);
        }
        free(copy);
    }
    buf_free(&tmp);
    return ok;
}

/* Removes the temp files that stores killed in the middle of a write left beside `path`
 * (`<name>.tmp.<pid>` of a process that no longer exists): nothing else ever would. A temp
 * file of a living process is left alone, whatever that process is. */
static void remove_stale_temp_files(const char *path) {
    char *dir_copy = strdup(path), *name_copy = strdup(path);
    DIR *dir = dir_copy && name_copy ? opendir(dirname(dir_copy)) : NULL;
    if (dir) {
        buf prefix = {0};
        buf_printf(&prefix, "%s.tmp.", basename(name_copy));
        struct dirent *e;
        while (prefix.data && (e = readdir(dir)) != NULL) {
            if (strncmp(e->d_name, prefix.data, prefix.len) != 0) continue;
            const char *digits = e->d_name + prefix.len;
            char *end;
            long pid = strtol(digits, &end, 10);
            if (end == digits || *end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
            if (unlinkat(dirfd(dir), e->d_name, 0) == 0)
                log_info(STORE_LOG_LEVEL, "store: removed %s, left by a store that stopped while writing", e->d_name);
        }
        buf_free(&prefix);
        closedir(dir);
    }
    free(dir_copy);
    free(name_copy);
}

static bool load(shazbot_store *s, char *err, size_t err_len) {
    remove_stale_temp_files(s->path);
    buf content = {0};
    FILE *f = fopen(s->path, "rb");
    if (!f) {
        if (errno != ENOENT) {
            snprintf(err, err_len, "cannot read %s: %s", s->path, strerror(errno));
            return false;
        }
        buf_add_str(&content, "{\"online\":[]}");
    } else {
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_add(&content, chunk, n);
        bool read_error = ferror(f);
        fclose(f);
        if (read_error) {
            snprintf(err, err_len, "cannot read %s", s->path);
            buf_free(&content);
            return false;
        }
    }
    wire_message msg;
    char why[256];
    bool ok = !content.failed &&
              wire_parse(content.data ? content.data : "", content.len, WIRE_LIST, &msg, why, sizeof why);
    if (ok) {
        wire_message_free(&msg);
        ok = set_list(s, &content);
        if (!ok) snprintf(err, err_len, "cannot load %s: out of memory", s->path);
    } else {
        snprintf(err, err_len, "%s is not a master list: %s", s->path, content.failed ? "out of memory" : why);
    }
    buf_free(&content);
    return ok;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* The list as it is, or compressed once for every GET that takes the coding (shared like the
 * list itself): the coding's header, the segment, its end. */
static void answer_list(shazbot_store *s, struct evhttp_request *req) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "ETag", s->etag);
    codec_kind coding = http_server_answer_coding(s->server, req, s->list_len);
    codec_segment *seg = &s->coded[coding];
    if (coding != CODEC_IDENTITY && !seg->data &&
        !codec_segment_make(http_server_codec(s->server), coding, s->list, s->list_len, seg))
        coding = CODEC_IDENTITY; /* out of memory: the plain list still goes */
    if (coding == CODEC_IDENTITY) {
        http_piece list = {s->list, s->list_len, true};
        http_server_answer_pieces(s->server, req, 200, &list, 1, CODEC_IDENTITY);
        return;
    }
    buf head = {0}, end = {0};
    codec_writer w;
    codec_writer_begin(&w, http_server_codec(s->server), coding, &head);
    codec_writer_segment(&w, seg);
    codec_writer_end(&w, &end);
    if (head.failed || end.failed) {
        http_server_answer_error(s->server, req, 500, "out of memory");
    } else {
        http_piece pieces[3] = {{head.data, head.len, false}, {seg->data, seg->len, true}, {end.data, end.len, false}};
        http_server_answer_pieces(s->server, req, 200, pieces, 3, coding);
    }
    buf_free(&head);
    buf_free(&end);
}

/* The list a PUT carries, checked, joined in one block; false after answering why not. */
static bool read_list(shazbot_store *s, struct evhttp_request *req, buf *list) {
    http_body body;
    buf refusal = {0};
    int refused = http_body_read(s->server, req, &body, &refusal);
    if (refused) {
        http_body_free(&body);
        http_server_answer_error(s->server, req, refused, refusal.data ? refusal.data : "out of memory");
        buf_free(&refusal);
        return false;
    }
    wire_message msg;
    char why[256];
    bool valid = wire_parse_chunks(body.chunks, body.count, WIRE_LIST, &msg, why, sizeof why);
    if (valid) {
        wire_message_free(&msg);
        for (size_t i = 0; i < body.count; i++) buf_add(list, body.chunks[i].data, body.chunks[i].len);
    }
    http_body_free(&body);
    if (!valid) http_server_answer_error(s->server, req, 400, why);
    else if (list->failed) http_server_answer_error(s->server, req, 500, "out of memory");
    return valid && !list->failed;
}

static void on_put(shazbot_store *s, struct evhttp_request *req) {
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    int refusal = store_put_refusal(evhttp_find_header(in, "Authorization"), s->auth,
                                    evhttp_find_header(in, "If-Match"), s->etag);
    if (refusal) {
        http_server_answer_error(s->server, req, refusal,
                                 refusal == 401 ? "wrong or missing Authorization" : "the list changed since it was read");
        return;
    }
    buf list = {0};
    if (!read_list(s, req, &list)) {
        buf_free(&list);
        return;
    }
    char err[512];
    if (!save_atomically(s->path, &list, err, sizeof err)) {
        log_error(STORE_LOG_LEVEL, "store: %s", err);
        http_server_answer_error(s->server, req, 500, "cannot save the list");
        buf_free(&list);
        return;
    }
    if (!set_list(s, &list)) {
        /* Saved, but not served until a restart: said so, and logged. */
        log_error(STORE_LOG_LEVEL, "store: out of memory: the list saved to %s is served from the next start", s->path);
        http_server_answer_error(s->server, req, 500, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "ETag", s->etag);
    buf success = {0};
    buf_add_str(&success, "{\"success\":true}");
    http_server_answer(s->server, req, 200, &success);
}

static void on_request(struct evhttp_request *req, void *arg) {
    shazbot_store *s = arg;
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: answer_list(s, req); break;
    case EVHTTP_REQ_PUT: on_put(s, req); break;
    default:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, PUT");
        http_server_answer_error(s->server, req, 405, "method not allowed: use GET or PUT");
    }
}

static void error_message(int status, buf *message, void *arg) {
    (void)arg;
    if (status == 501) buf_printf(message, "method not supported: use GET or PUT");
}

/* ---- the store ------------------------------------------------------------------------------ */

static bool bad_option(char *err, size_t err_len, const char *name, const char *value, const char *why) {
    if (value) snprintf(err, err_len, "%s: \"%s\" %s", name, value, why);
    else snprintf(err, err_len, "%s: missing", name);
    return false;
}

static bool check_options(shazbot_store *s, const shazbot_store_options *o, char *err, size_t err_len) {
    if (!o->listen || !http_parse_address(o->listen, &s->host, &s->port) || s->port == 0)
        return bad_option(err, err_len, "listen", o->listen, "is not host:port, [v6]:port or :port (a port from 1 to 65535)");
    if (!o->file || !*o->file) return bad_option(err, err_len, "file", o->file, "names no file");
    if (!o->auth || !*o->auth) return bad_option(err, err_len, "auth", o->auth, "must not be empty");
    /* The node's variable and its checks: one deadline for every server of a cluster. */
    shazbot_settings settings;
    config_init(&settings);
    bool ok = !o->request_timeout ||
              config_set(&settings, "SHAZBOT_REQUEST_TIMEOUT", o->request_timeout, err, err_len);
    s->request_timeout = settings.request_timeout;
    config_free(&settings);
    return ok;
}

shazbot_store *shazbot_store_new(const shazbot_store_options *o, char *err, size_t err_len) {
    shazbot_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (!check_options(s, o, err, err_len)) {
        shazbot_store_free(s);
        return NULL;
    }
    s->path = strdup(o->file);
    s->auth = strdup(o->auth);
    s->base = event_base_new();
    if (!s->path || !s->auth || !s->base) {
        snprintf(err, err_len, "cannot set up the store (out of memory?)");
        shazbot_store_free(s);
        return NULL;
    }
    return s;
}

int shazbot_store_serve(shazbot_store *s, char *err, size_t err_len) {
    if (s->server) {
        snprintf(err, err_len, "already serving");
        return -1;
    }
    if (!load(s, err, err_len)) return -1;
    http_server_options o = {.max_body = STORE_MAX_BODY,
                             .request_timeout = s->request_timeout,
                             .log_limit = STORE_LOG_LEVEL,
                             .compression = CODEC_ZSTD,
                             .handle = on_request,
                             .error_message = error_message,
                             .arg = s};
    s->server = http_server_new(s->base, &o, s->host, s->port, err, err_len);
    if (!s->server) return -1;
    log_info(STORE_LOG_LEVEL, "store: serving %s", s->path);
    return 0;
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    log_info(STORE_LOG_LEVEL, "store: signal %d: stopping", (int)fd);
    event_base_loopbreak(arg);
}

int shazbot_store_run(shazbot_store *s) {
    /* A client that goes away while its answer is written must not end the store. */
    signal(SIGPIPE, SIG_IGN);
    struct event *term = evsignal_new(s->base, SIGTERM, on_signal, s->base);
    struct event *intr = evsignal_new(s->base, SIGINT, on_signal, s->base);
    int rc = term && intr && evsignal_add(term, NULL) == 0 && evsignal_add(intr, NULL) == 0
                 ? event_base_dispatch(s->base)
                 : -1;
    if (term) event_free(term);
    if (intr) event_free(intr);
    return rc < 0 ? -1 : 0;
}

void shazbot_store_free(shazbot_store *s) {
    if (!s) return;
    http_server_free(s->server);
    if (s->base) event_base_free(s->base);
    buf_shared_drop(s->list);
    for (int k = 0; k <= CODEC_ZSTD; k++) codec_segment_drop(&s->coded[k]);
    free(s->host);
    free(s->path);
    free(s->auth);
    free(s);
}
