/* events: see events.h. */
#include "events.h"

#include "wire.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[EVENT_KINDS] = {"join", "alive", "failed", "left", "offline", "purged", "self"};

const char *event_kind_name(event_kind k) { return k < EVENT_KINDS ? kind_names[k] : "unknown"; }

static void entry_clear(event_entry *e) {
    free(e->url);
    free(e->json);
    *e = (event_entry){0};
}

void events_free(event_ring *r) {
    if (r->slot)
        for (size_t i = 0; i < EVENTS_RING; i++) entry_clear(&r->slot[i]);
    entry_clear(&r->scratch);
    free(r->slot);
    *r = (event_ring){0};
}

static void write_view(buf *b, const char *name, member_view v) {
    buf_printf(b, ",\"%s\":", name);
    if (!v.known) {
        buf_add_str(b, "null");
        return;
    }
    buf_printf(b, "{\"status\":\"%s\",\"lastUpdate\":%lld,\"monitor\":%s}",
               v.status == MEMBER_ONLINE ? "online" : "offline", (long long)v.last_update,
               v.monitor ? "true" : "false");
}

static void set_side(member_view v, int *has, int *online, int *monitor, long long *last_update) {
    *has = v.known;
    *online = v.known && v.status == MEMBER_ONLINE;
    *monitor = v.known && v.monitor;
    *last_update = v.known ? v.last_update : 0;
}

const shazbot_event *events_add(event_ring *r, event_kind kind, const char *url, size_t url_len, int64_t at_ms,
                                member_view before, member_view after) {
    if (r->keep && !r->slot && !(r->slot = calloc(EVENTS_RING, sizeof *r->slot))) return NULL;
    if (!r->next_seq) r->next_seq = 1;
    uint64_t seq = r->next_seq;
    buf json = {0};
    buf_printf(&json, "{\"seq\":%llu,\"kind\":\"%s\",\"baseUrl\":", (unsigned long long)seq, event_kind_name(kind));
    char *copy = strndup(url, url_len);
    wire_write_string(&json, copy ? copy : "");
    buf_printf(&json, ",\"time\":%lld", (long long)at_ms);
    write_view(&json, "before", before);
    write_view(&json, "after", after);
    buf_add(&json, "}", 1);
    char *text = buf_take(&json, NULL);
    if (!copy || !text) {
        free(copy);
        free(text);
        return NULL;
    }
    event_entry *e = r->keep ? &r->slot[seq % EVENTS_RING] : &r->scratch;
    entry_clear(e);
    e->url = copy;
    e->json = text;
    e->ev = (shazbot_event){.seq = seq, .kind = event_kind_name(kind), .base_url = copy, .time_ms = at_ms,
                            .json = text};
    set_side(before, &e->ev.has_before, &e->ev.before_online, &e->ev.before_monitor, &e->ev.before_last_update);
    set_side(after, &e->ev.has_after, &e->ev.after_online, &e->ev.after_monitor, &e->ev.after_last_update);
    r->next_seq++;
    r->counts[kind]++;
    return &e->ev;
}

void events_count(event_ring *r, event_kind kind) {
    if (!r->next_seq) r->next_seq = 1;
    r->next_seq++;
    r->counts[kind]++;
}

void events_write(const event_ring *r, uint64_t after, size_t max, buf *out) {
    uint64_t last = r->slot ? events_last(r) : 0;
    /* Asked after an event this node never had: a watcher of an earlier run of the node, at
     * the same address. It gets what this run has, from the start. */
    if (after > last) after = 0;
    /* The oldest still held: the ring keeps the last EVENTS_RING. */
    uint64_t oldest = last > EVENTS_RING ? last - EVENTS_RING + 1 : 1;
    uint64_t from = after + 1 > oldest ? after + 1 : oldest;
    uint64_t missed = after < last && from > after + 1 ? from - after - 1 : 0;
    uint64_t next = after;
    buf_add_str(out, "{\"events\":[");
    size_t n = 0;
    for (uint64_t s = from; s <= last && n < max; s++, n++) {
        if (n) buf_add(out, ",", 1);
        buf_add_str(out, r->slot[s % EVENTS_RING].json);
        next = s;
    }
    buf_printf(out, "],\"next\":%llu,\"missed\":%llu}", (unsigned long long)next, (unsigned long long)missed);
}
