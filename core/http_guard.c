/* http_guard: see http_guard.h. */
#include "http_guard.h"
#include "log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h> /* strerror: evutil_socket_error_to_string */
#include <sys/socket.h>
#include <time.h>

/* Long enough that a shortage costs a few loop turns a second, short enough that a client
 * waiting in the queue hardly notices once descriptors are free again. */
#define PAUSE_MS 250
#define WARN_EVERY_MS 10000

struct http_guard {
    http_guard *next; /* in `guards` */
    struct event *resume;
    struct evconnlistener *listeners[HTTP_GUARD_LISTENERS];
    int count;
    log_level log_limit;
    int64_t request_timeout_ms;
    unsigned pauses; /* since the last warning */
    int64_t last_warning_ms;
};

/* Every guard of the process. libevent hands a listener's error callback what evhttp gave the
 * listener, so the guard is found here, from its listener. Searched when accept() fails; the
 * lock is for hosts that run nodes in several threads. */
static http_guard *guards;
static pthread_mutex_t guards_lock = PTHREAD_MUTEX_INITIALIZER;

static http_guard *guard_of_listener(const struct evconnlistener *listener) {
    for (http_guard *g = guards; g; g = g->next)
        for (int i = 0; i < g->count; i++)
            if (g->listeners[i] == listener) return g;
    return NULL;
}

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* a few ms of resolution is plenty here */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- accept() failures ------------------------------------------------------------------ */

static void on_resume(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    http_guard *g = arg;
    for (int i = 0; i < g->count; i++) evconnlistener_enable(g->listeners[i]);
}

static void on_accept_error(struct evconnlistener *listener, void *arg) {
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    pthread_mutex_lock(&guards_lock);
    http_guard *g = guard_of_listener(listener);
    pthread_mutex_unlock(&guards_lock);
    if (!g) return; /* cannot happen: only watched listeners have this callback */
    for (int i = 0; i < g->count; i++) evconnlistener_disable(g->listeners[i]);
    struct timeval pause = {0, PAUSE_MS * 1000};
    evtimer_add(g->resume, &pause);
    g->pauses++;
    int64_t now = monotonic_ms();
    if (g->last_warning_ms == 0 || now - g->last_warning_ms >= WARN_EVERY_MS) {
        if (g->pauses > 1)
            log_warn(g->log_limit, "cannot accept connections (%s): paused for %d ms (%u pauses in the last %.0f s)",
                     evutil_socket_error_to_string(err), PAUSE_MS, g->pauses, (now - g->last_warning_ms) / 1000.0);
        else
            log_warn(g->log_limit, "cannot accept connections (%s): paused for %d ms",
                     evutil_socket_error_to_string(err), PAUSE_MS);
        g->pauses = 0;
        g->last_warning_ms = now;
    }
}

/* ---- request deadlines ------------------------------------------------------------------- */

/* One connection's clock. It lives from the connection's first byte (a connection that never
 * sends one is closed by evhttp's own timeout and needs none) to its close (http_server.c). */
struct http_guard_clock {
    struct bufferevent *bev;
    struct evbuffer_cb_entry *on_input, *on_output;
    int64_t timeout_ms;
    log_level log_limit;
    int64_t started_ms; /* the first byte of the request under way; 0 between requests */
    size_t received;    /* bytes of it so far */
    bool cut;
};

static void count_request_bytes(http_guard_clock *c, size_t added) {
    if (added == 0 || c->cut) return;
    int64_t now = monotonic_ms();
    if (c->started_ms == 0) {
        c->started_ms = now;
        c->received = 0;
    }
    c->received += added;
    int64_t allowed = c->timeout_ms + (int64_t)(c->received / HTTP_GUARD_MIN_RATE) * 1000;
    if (now - c->started_ms <= allowed) return;
    /* Not freed from here, inside the connection's own read: shut, so that evhttp's next read
     * finds the end of the stream and frees the connection itself. */
    c->cut = true;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    log_info(c->log_limit, "closing a connection whose request took over %.0f s (%zu bytes in %.1f s)",
             allowed / 1000.0, c->received, (now - c->started_ms) / 1000.0);
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

static void on_request_bytes(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg) {
    (void)in;
    count_request_bytes(arg, info->n_added);
}

/* evhttp writes an answer once the request is in whole (or refused): the next byte that
 * arrives starts the next request's clock. */
static void on_answer_bytes(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg) {
    (void)out;
    http_guard_clock *c = arg;
    if (info->n_added > 0) c->started_ms = 0;
}

http_guard_clock *http_guard_clock_new(http_guard *g, struct bufferevent *bev, size_t first) {
    http_guard_clock *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = (http_guard_clock){.bev = bev, .timeout_ms = g->request_timeout_ms, .log_limit = g->log_limit};
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    c->on_input = evbuffer_add_cb(in, on_request_bytes, c);
    c->on_output = evbuffer_add_cb(out, on_answer_bytes, c);
    if (!c->on_input || !c->on_output) {
        http_guard_clock_free(c);
        return NULL;
    }
    count_request_bytes(c, first);
    return c;
}

void http_guard_clock_free(http_guard_clock *c) {
    if (!c) return;
    /* evhttp may still empty the buffers after the close: they must not call a freed clock. */
    if (c->on_input) evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->on_input);
    if (c->on_output) evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->on_output);
    free(c);
}

/* ---- the guard ----------------------------------------------------------------------------- */

http_guard *http_guard_new(struct event_base *base, log_level log_limit, double request_timeout) {
    http_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->log_limit = log_limit;
    g->request_timeout_ms = (int64_t)(request_timeout * 1000);
    g->resume = evtimer_new(base, on_resume, g);
    if (!g->resume) {
        free(g);
        return NULL;
    }
    pthread_mutex_lock(&guards_lock);
    g->next = guards;
    guards = g;
    pthread_mutex_unlock(&guards_lock);
    return g;
}

bool http_guard_watch_listener(http_guard *g, struct evconnlistener *listener) {
    if (!g || !listener || g->count == HTTP_GUARD_LISTENERS) return false;
    pthread_mutex_lock(&guards_lock);
    g->listeners[g->count++] = listener;
    pthread_mutex_unlock(&guards_lock);
    evconnlistener_set_error_cb(listener, on_accept_error);
    return true;
}

void http_guard_free(http_guard *g) {
    if (!g) return;
    pthread_mutex_lock(&guards_lock);
    http_guard **at = &guards;
    while (*at && *at != g) at = &(*at)->next;
    if (*at) *at = g->next;
    pthread_mutex_unlock(&guards_lock);
    event_free(g->resume);
    free(g);
}
