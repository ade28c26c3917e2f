/* clustershazbot store: a master-list store, so that a cluster needs nothing else to start.
 *
 * GET (any path) answers the list; PUT (any path) replaces it when the Authorization header
 * matches and the body is a valid list. The file is replaced atomically (temp file, fsync,
 * rename, fsync of the folder): a crash leaves the old list or the new one, never a torn file,
 * and the next start removes the crashed store's temp file.
 * Every answer carries an ETag; a PUT with If-Match that no longer matches gets 412, so that
 * announcing nodes can merge and retry instead of overwriting each other. */
#include "cli.h"
#include "common.h"
#include "config.h"
#include "http_guard.h"
#include "secret.h"
#include "wire.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const store_usage =
    "usage: clustershazbot store --listen HOST:PORT --file PATH [--auth VALUE]\n"
    "\n"
    "Serves the master list kept in PATH at every path: GET reads it, PUT replaces it.\n"
    "PUT needs the Authorization header to equal VALUE (default: the environment's\n"
    "SHAZBOT_MASTER_LIST_UPDATE_AUTH) and a body of the form {\"online\":[...]}.\n"
    "Answers carry an ETag; a PUT whose If-Match no longer matches gets 412.\n"
    "A request must arrive within SHAZBOT_REQUEST_TIMEOUT seconds (default 20) of its first\n"
    "byte, plus one for every 16 KiB it carries.\n"
    "Stops on SIGTERM or SIGINT.\n";

#define STORE_MAX_BODY (64u << 20)

typedef struct store {
    const char *path;
    const char *auth;
    buf list; /* the current content */
    char etag[24];
    struct event_base *base;
} store;

static void compute_etag(store *s) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < s->list.len; i++) {
        h ^= (unsigned char)s->list.data[i];
        h *= 1099511628211ULL;
    }
    snprintf(s->etag, sizeof s->etag, "\"%016llx\"", (unsigned long long)h);
}

static void set_list(store *s, const char *data, size_t len) {
    s->list.len = 0;
    buf_add(&s->list, data, len);
    compute_etag(s);
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
static bool save_atomically(const char *path, const char *data, size_t len, char *err, size_t err_len) {
    buf tmp = {0};
    buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = tmp.data ? open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    bool ok = fd >= 0 && write_all(fd, data, len) && fsync(fd) == 0;
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
                fprintf(stderr, "clustershazbot store: removed %s, left by a store that stopped while writing\n", e->d_name);
        }
        buf_free(&prefix);
        closedir(dir);
    }
    free(dir_copy);
    free(name_copy);
}

static void answer(struct evhttp_request *req, int status, const char *reason, const char *body,
                   const char *etag) {
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (etag) evhttp_add_header(h, "ETag", etag);
    struct evbuffer *b = evbuffer_new();
    if (b) evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, status, reason, b);
    if (b) evbuffer_free(b);
}

static void answer_error(struct evhttp_request *req, int status, const char *reason, const char *message) {
    buf b = {0};
    wire_write_error(&b, message);
    answer(req, status, reason, b.data ? b.data : "{}", NULL);
    buf_free(&b);
}

static void on_put(store *s, struct evhttp_request *req) {
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(in, "Authorization");
    if (!secret_matches(auth, s->auth)) {
        answer_error(req, 401, "Unauthorized", "wrong or missing Authorization");
        return;
    }
    const char *if_match = evhttp_find_header(in, "If-Match");
    if (if_match && strcmp(if_match, "*") != 0 && strcmp(if_match, s->etag) != 0) {
        answer_error(req, 412, "Precondition Failed", "the list changed since it was read");
        return;
    }
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    const char *data = len ? (const char *)evbuffer_pullup(body, -1) : "";
    wire_message msg;
    char why[256];
    if (!wire_parse(data, len, WIRE_LIST, &msg, why, sizeof why)) {
        answer_error(req, 400, "Bad Request", why);
        return;
    }
    wire_message_free(&msg);
    char err[512];
    if (!save_atomically(s->path, data, len, err, sizeof err)) {
        fprintf(stderr, "clustershazbot store: %s\n", err);
        answer_error(req, 500, "Internal Server Error", "cannot save the list");
        return;
    }
    set_list(s, data, len);
    answer(req, 200, "OK", "{\"success\":true}", s->etag);
}

static void on_request(struct evhttp_request *req, void *arg) {
    store *s = arg;
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: answer(req, 200, "OK", s->list.data, s->etag); break;
    case EVHTTP_REQ_PUT: on_put(s, req); break;
    default:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, PUT");
        answer_error(req, 405, "Method Not Allowed", "use GET or PUT");
    }
}

static bool load(store *s, char *err, size_t err_len) {
    remove_stale_temp_files(s->path);
    FILE *f = fopen(s->path, "rb");
    if (!f) {
        if (errno != ENOENT) {
            snprintf(err, err_len, "cannot read %s: %s", s->path, strerror(errno));
            return false;
        }
        set_list(s, "{\"online\":[]}", 13);
        return true;
    }
    buf content = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_add(&content, chunk, n);
    fclose(f);
    wire_message msg;
    char why[256];
    bool ok = wire_parse(content.data ? content.data : "", content.len, WIRE_LIST, &msg, why, sizeof why);
    if (ok) {
        wire_message_free(&msg);
        set_list(s, content.data, content.len);
    } else {
        snprintf(err, err_len, "%s is not a master list: %s", s->path, why);
    }
    buf_free(&content);
    return ok;
}

/* evhttp's own connection buffer, with a deadline on each request. */
static struct bufferevent *new_connection_buffer(struct event_base *base, void *arg) {
    (void)arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev && !http_guard_watch_connection(bev)) {
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

int cli_store(int argc, char **argv) {
    if (cli_wants_help(argc, argv, store_usage)) return 0;
    const char *listen = NULL, *path = NULL, *auth = getenv("SHAZBOT_MASTER_LIST_UPDATE_AUTH");
    for (int i = 1; i < argc; i++) {
        const char **target = strcmp(argv[i], "--listen") == 0 ? &listen
                              : strcmp(argv[i], "--file") == 0 ? &path
                              : strcmp(argv[i], "--auth") == 0 ? &auth
                                                                : NULL;
        if (!target || i + 1 >= argc) {
            fprintf(stderr, "clustershazbot store: %s '%s'\n%s",
                    target ? "missing value after" : "unknown option", argv[i], store_usage);
            return 2;
        }
        *target = argv[++i];
    }
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == listen || !end || *end || port <= 0 || port > 65535) {
        fprintf(stderr, "clustershazbot store: --listen: \"%s\" is not HOST:PORT\n%s", listen ? listen : "", store_usage);
        return 2;
    }
    if (!path || !*path) {
        fprintf(stderr, "clustershazbot store: --file is required\n%s", store_usage);
        return 2;
    }
    if (!auth || !*auth) {
        fprintf(stderr, "clustershazbot store: --auth is required (or SHAZBOT_MASTER_LIST_UPDATE_AUTH)\n%s", store_usage);
        return 2;
    }
    /* The node's variable and its checks: one deadline for every server of a cluster. */
    shazbot_settings settings;
    config_init(&settings);
    const char *timeout = getenv("SHAZBOT_REQUEST_TIMEOUT");
    char err[512];
    if (timeout && !config_set(&settings, "SHAZBOT_REQUEST_TIMEOUT", timeout, err, sizeof err)) {
        fprintf(stderr, "clustershazbot store: %s\n", err);
        return 2;
    }
    double request_timeout = settings.request_timeout;
    config_free(&settings);
    store s = {.path = path, .auth = auth};
    if (!load(&s, err, sizeof err)) {
        fprintf(stderr, "clustershazbot store: %s\n", err);
        buf_free(&s.list);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    cli_raise_fd_limit();
    char *host = strndup(listen, (size_t)(colon - listen));
    s.base = event_base_new();
    struct evhttp *http = evhttp_new(s.base);
    evhttp_set_max_body_size(http, STORE_MAX_BODY);
    evhttp_set_timeout(http, 10);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(http, on_request, &s);
    evhttp_set_bevcb(http, new_connection_buffer, NULL);
    int rc = 0;
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    http_guard *guard = bound ? http_guard_new(s.base, http, LOG_INFO, request_timeout) : NULL;
    if (guard) http_guard_watch_listener(guard, evhttp_bound_socket_get_listener(bound));
    if (!bound) {
        fprintf(stderr, "clustershazbot store: cannot listen on %s: %s\n", listen, strerror(errno));
        rc = 1;
    } else {
        fprintf(stderr, "clustershazbot store: serving %s on %s\n", path, listen);
        struct event *term = evsignal_new(s.base, SIGTERM, on_signal, s.base);
        struct event *intr = evsignal_new(s.base, SIGINT, on_signal, s.base);
        evsignal_add(term, NULL);
        evsignal_add(intr, NULL);
        event_base_dispatch(s.base);
        event_free(term);
        event_free(intr);
    }
    http_guard_free(guard);
    evhttp_free(http);
    event_base_free(s.base);
    free(host);
    buf_free(&s.list);
    return rc;
}
