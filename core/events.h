/* events: the changes of membership as events (issue 12, part 1), kept in a bounded ring with
 * sequence numbers, each with its JSON form, for the four ways they are delivered: the Lua
 * policy hook on_change, the host's C callback (shazbot_on_change), the polling API and the
 * GET clustershazbot/events endpoint that `clustershazbot watch` reads.
 *
 * engine.c derives them, in one place (its membership change hook), so that every way sees
 * the same sequence; this file only stores and writes them. Pure: no clock, no I/O. */
#ifndef SHAZBOT_EVENTS_H
#define SHAZBOT_EVENTS_H

#include "buf.h"
#include "clustershazbot.h"
#include "membership.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    EVENT_JOIN,    /* a peer first learnt online */
    EVENT_ALIVE,   /* a peer offline here came back online */
    EVENT_FAILED,  /* this node moved the peer offline: its transfers failed (the verdict) */
    EVENT_LEFT,    /* the peer said so itself: its goodbye, or its own answer */
    EVENT_OFFLINE, /* learnt from another node (a claim applied after a failed confirmation too) */
    EVENT_PURGED,  /* an offline record past the purge horizon, or dropped over the state's limit */
    EVENT_SELF,    /* this node's own status: control, shutdown, or a refutation */
    EVENT_KINDS
} event_kind;

const char *event_kind_name(event_kind k);

/* Events kept for the pollers (watchers, the FFI binding); older ones are told as missed. */
#define EVENTS_RING 4096
/* The most events one answer of the endpoint carries (the next call gets the rest). */
#define EVENTS_PAGE 512

typedef struct event_entry {
    shazbot_event ev; /* its base_url and json point into the two below */
    char *url;
    char *json;
} event_entry;

typedef struct event_ring {
    /* Whether events are kept for pollers: a real node's are (shazbot.c); the simulator's
     * thousand engines keep none, each event only built in `scratch` for the hooks. */
    bool keep;
    event_entry *slot; /* EVENTS_RING entries, allocated on the first event kept */
    event_entry scratch;
    uint64_t next_seq; /* the seq the next event gets; the first is 1 */
    uint64_t counts[EVENT_KINDS];
} event_ring;

void events_free(event_ring *r);

/* Stores an event (its url and json copied) and returns the stored one, or NULL when out of
 * memory (then the event is lost, its seq not used). `before`/`after`: known false for none. */
const shazbot_event *events_add(event_ring *r, event_kind kind, const char *url, size_t url_len, int64_t at_ms,
                                member_view before, member_view after);

/* Numbers and counts an event that nobody is to be told of (nothing kept, no hook, no
 * callback: the simulator's engines), without building it. */
void events_count(event_ring *r, event_kind kind);

/* Writes {"events":[...],"next":N,"missed":M}: the events with seq > after still held, at most
 * `max` of them; `next` is the seq to ask after the next time (the last one written, or
 * `after` when none), `missed` how many events after `after` the ring no longer holds. An
 * `after` beyond the newest (a watcher of an earlier run of the node) counts as 0. */
void events_write(const event_ring *r, uint64_t after, size_t max, buf *out);

/* The seq of the newest event, 0 when none. */
static inline uint64_t events_last(const event_ring *r) { return r->next_seq ? r->next_seq - 1 : 0; }

#endif
