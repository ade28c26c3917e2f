/* vclock: see vclock.h. A binary heap of (due time, sequence number) entries. Re-arming or
 * stopping a timer does not search the heap: the timer's generation moves on, and entries of
 * an older generation are dropped when they come up. A freed timer whose entries are still
 * in the heap is kept until they come up. */
#include "vclock.h"

#include <stdlib.h>

struct engine_timer {
    vclock *c;
    engine_timer_fn fire;
    void *arg;
    uint64_t generation; /* of the arming that counts */
    size_t in_heap;      /* entries naming this timer */
    bool freed;
};

typedef struct entry {
    int64_t due_us;
    uint64_t seq;
    engine_timer *timer; /* NULL for a one-shot (vclock_after) */
    uint64_t generation;
    void (*fn)(void *);
    void *arg;
} entry;

struct vclock {
    int64_t now_us;
    uint64_t seq;
    entry *heap;
    size_t count, capacity;
};

static bool before(const entry *a, const entry *b) {
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static bool push(vclock *c, entry e) {
    if (c->count == c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 256;
        entry *grown = realloc(c->heap, capacity * sizeof *grown);
        if (!grown) return false;
        c->heap = grown;
        c->capacity = capacity;
    }
    e.seq = c->seq++;
    size_t i = c->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&e, &c->heap[parent])) break;
        c->heap[i] = c->heap[parent];
        i = parent;
    }
    c->heap[i] = e;
    return true;
}

static entry pop(vclock *c) {
    entry top = c->heap[0], last = c->heap[--c->count];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= c->count) break;
        if (child + 1 < c->count && before(&c->heap[child + 1], &c->heap[child])) child++;
        if (!before(&c->heap[child], &last)) break;
        c->heap[i] = c->heap[child];
        i = child;
    }
    if (c->count > 0) c->heap[i] = last;
    return top;
}

static int64_t seconds_to_us(double seconds) { return seconds > 0 ? (int64_t)(seconds * 1e6 + 0.5) : 0; }

vclock *vclock_new(int64_t start_ms) {
    vclock *c = calloc(1, sizeof *c);
    if (c) c->now_us = start_ms * 1000;
    return c;
}

void vclock_free(vclock *c) {
    if (!c) return;
    for (size_t i = 0; i < c->count; i++) {
        engine_timer *t = c->heap[i].timer;
        if (t && --t->in_heap == 0 && t->freed) free(t);
    }
    free(c->heap);
    free(c);
}

int64_t vclock_now_ms(const vclock *c) { return c->now_us / 1000; }
int64_t vclock_now_us(const vclock *c) { return c->now_us; }

bool vclock_after(vclock *c, double seconds, void (*fn)(void *), void *arg) {
    return push(c, (entry){.due_us = c->now_us + seconds_to_us(seconds), .fn = fn, .arg = arg});
}

bool vclock_step(vclock *c, int64_t until_us) {
    while (c->count > 0 && c->heap[0].due_us <= until_us) {
        entry e = pop(c);
        c->now_us = e.due_us;
        engine_timer *t = e.timer;
        if (!t) {
            e.fn(e.arg);
            return true;
        }
        t->in_heap--;
        if (t->freed) {
            if (t->in_heap == 0) free(t);
            continue;
        }
        if (e.generation != t->generation) continue; /* re-armed or stopped since */
        t->generation++; /* fired: disarmed */
        t->fire(t->arg);
        return true;
    }
    if (until_us > c->now_us) c->now_us = until_us;
    return false;
}

void vclock_run_until(vclock *c, int64_t until_us) {
    while (vclock_step(c, until_us)) {
    }
}

/* ---- as the engine's clock ------------------------------------------------------------------ */

static int64_t clock_now_ms(void *ctx) { return vclock_now_ms(ctx); }

static engine_timer *timer_new(void *ctx, engine_timer_fn fire, void *arg) {
    engine_timer *t = calloc(1, sizeof *t);
    if (t) *t = (engine_timer){.c = ctx, .fire = fire, .arg = arg};
    return t;
}

static void timer_arm(void *ctx, engine_timer *t, double seconds) {
    vclock *c = ctx;
    t->generation++;
    if (push(c, (entry){.due_us = c->now_us + seconds_to_us(seconds), .timer = t, .generation = t->generation}))
        t->in_heap++;
}

static void timer_stop(void *ctx, engine_timer *t) {
    (void)ctx;
    t->generation++;
}

static void timer_free(void *ctx, engine_timer *t) {
    (void)ctx;
    if (!t) return;
    if (t->in_heap == 0) free(t);
    else t->freed = true;
}

engine_clock vclock_clock(vclock *c) {
    return (engine_clock){.ctx = c, .now_ms = clock_now_ms, .timer_new = timer_new, .timer_arm = timer_arm,
                          .timer_stop = timer_stop, .timer_free = timer_free};
}
