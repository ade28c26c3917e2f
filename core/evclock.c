/* evclock: see evclock.h. */
#include "evclock.h"

#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

struct evclock {
    struct event_base *base;
};

struct engine_timer {
    struct event *ev;
    engine_timer_fn fire;
    void *arg;
};

/* CLOCK_REALTIME in milliseconds: what the real node stamps records with. */
static int64_t now_ms(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    engine_timer *t = arg;
    t->fire(t->arg);
}

static engine_timer *timer_new(void *ctx, engine_timer_fn fire, void *arg) {
    evclock *c = ctx;
    engine_timer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->fire = fire;
    t->arg = arg;
    t->ev = evtimer_new(c->base, on_timer, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    return t;
}

static void timer_arm(void *ctx, engine_timer *t, double seconds) {
    (void)ctx;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    /* Fails only for an event libevent does not know, which ours always is. */
    evtimer_add(t->ev, &tv);
}

static void timer_stop(void *ctx, engine_timer *t) {
    (void)ctx;
    evtimer_del(t->ev);
}

static void timer_free(void *ctx, engine_timer *t) {
    (void)ctx;
    if (!t) return;
    event_free(t->ev);
    free(t);
}

evclock *evclock_new(struct event_base *base) {
    evclock *c = malloc(sizeof *c);
    if (c) c->base = base;
    return c;
}

void evclock_free(evclock *c) { free(c); }

engine_clock evclock_clock(evclock *c) {
    return (engine_clock){.ctx = c, .now_ms = now_ms, .timer_new = timer_new, .timer_arm = timer_arm,
                          .timer_stop = timer_stop, .timer_free = timer_free};
}
