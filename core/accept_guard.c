/* accept_guard: see accept_guard.h. */
#include "accept_guard.h"
#include "log.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Long enough that a shortage costs a few loop turns a second, short enough that a client
 * waiting in the queue hardly notices once descriptors are free again. */
#define PAUSE_MS 250
#define WARN_EVERY_MS 10000

struct accept_guard {
    accept_guard *next; /* in `guards` */
    struct event *resume;
    struct evconnlistener *listeners[ACCEPT_GUARD_LISTENERS];
    int count;
    log_level log_limit;
    unsigned pauses; /* since the last warning */
    int64_t last_warning_ms;
};

/* Every guard of the process. A listener's error callback gets the listener's own argument,
 * which evhttp set to itself, so the guard is found from the listener here. Searched only
 * when accept() fails; the lock is for hosts that run nodes in several threads. */
static accept_guard *guards;
static pthread_mutex_t guards_lock = PTHREAD_MUTEX_INITIALIZER;

static accept_guard *guard_of(const struct evconnlistener *listener) {
    for (accept_guard *g = guards; g; g = g->next)
        for (int i = 0; i < g->count; i++)
            if (g->listeners[i] == listener) return g;
    return NULL;
}

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_resume(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    accept_guard *g = arg;
    for (int i = 0; i < g->count; i++) evconnlistener_enable(g->listeners[i]);
}

static void on_accept_error(struct evconnlistener *listener, void *arg) {
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    pthread_mutex_lock(&guards_lock);
    accept_guard *g = guard_of(listener);
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

accept_guard *accept_guard_new(struct event_base *base, log_level log_limit) {
    accept_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->log_limit = log_limit;
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

bool accept_guard_watch(accept_guard *g, struct evconnlistener *listener) {
    if (!g || !listener || g->count == ACCEPT_GUARD_LISTENERS) return false;
    pthread_mutex_lock(&guards_lock);
    g->listeners[g->count++] = listener;
    pthread_mutex_unlock(&guards_lock);
    evconnlistener_set_error_cb(listener, on_accept_error);
    return true;
}

void accept_guard_free(accept_guard *g) {
    if (!g) return;
    pthread_mutex_lock(&guards_lock);
    accept_guard **at = &guards;
    while (*at && *at != g) at = &(*at)->next;
    if (*at) *at = g->next;
    pthread_mutex_unlock(&guards_lock);
    event_free(g->resume);
    free(g);
}
