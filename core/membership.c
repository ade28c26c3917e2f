/* membership: records and the merge rules of PROTOCOL.md (see membership.h).
 *
 * Records live in a dense array (cheap iteration for the wire output, removal by swapping the
 * last one in) and in a chained hash table keyed by baseUrl (cheap lookup while merging a
 * message of thousands of records). */
#include "membership.h"
#include "buf.h"

#include <stdlib.h>
#include <string.h>

/* Eight bytes at a time, each word mixed in by a multiply and a shift that folds the high
 * bits (where a multiply puts its entropy) down to the low ones the buckets are chosen by.
 * Every record of a gossip message is looked up, so this runs 10,000 times for a large one:
 * FNV-1a, a byte at a time, was half the cost of a merge. No keyed hash: an adversary able to
 * choose baseUrls could lengthen some chains, but lookups are bounded by the body limit. */
static uint64_t url_hash(const char *s, size_t len) {
    const uint64_t k = 0x9e3779b97f4a7c15ULL;
    uint64_t h = len * k, w;
    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * k;
    return h ^ (h >> 29);
}

static void member_invalidate_wire(member *r) {
    free(r->wire);
    r->wire = NULL;
    r->wire_len = 0;
}

static void invalidate_peers_json(membership *m) {
    for (int s = 0; s < 2; s++) {
        buf_shared_drop(m->peers[s].text); /* answers still being written hold their own */
        m->peers[s].text = NULL;
        m->peers[s].len = 0;
        for (int k = 0; k <= CODEC_ZSTD; k++) codec_segment_drop(&m->peers[s].coded[k]);
    }
}

static void member_free(member *r) {
    member_invalidate_wire(r);
    free(r);
}

static bool grow_buckets(membership *m) {
    size_t n = m->bucket_count ? m->bucket_count * 2 : 64;
    member **b = calloc(n, sizeof *b);
    if (!b) return false;
    for (size_t i = 0; i < m->count; i++) {
        member *r = m->members[i];
        size_t slot = r->hash & (n - 1);
        r->hash_next = b[slot];
        b[slot] = r;
    }
    free(m->buckets);
    m->buckets = b;
    m->bucket_count = n;
    return true;
}

static member_view view_of(const member *r) {
    return (member_view){.known = true, .status = r->status, .last_update = r->last_update, .monitor = r->monitor};
}

static void tell_change(membership *m, const member *r, bool dropped, member_view before, member_view after) {
    if (m->change) m->change(m->change_ctx, r->base_url, r->url_len, r == m->self, dropped, before, after);
}

static member *insert(membership *m, const char *url, size_t len, bool monitor,
                      int64_t last_update, member_status s) {
    if (m->count == m->capacity) {
        size_t cap = m->capacity ? m->capacity * 2 : 16;
        member **a = realloc(m->members, cap * sizeof *a);
        if (!a) return NULL;
        m->members = a;
        m->capacity = cap;
    }
    if (m->count + 1 > m->bucket_count * 3 / 4 && !grow_buckets(m)) return NULL;
    member *r = calloc(1, sizeof *r + len + 1);
    if (!r) return NULL;
    memcpy(r->base_url, url, len);
    r->base_url[len] = '\0';
    r->url_len = len;
    r->monitor = monitor;
    r->last_update = last_update;
    r->status = s;
    m->online += s == MEMBER_ONLINE;
    r->index = m->count;
    r->seq = m->next_seq++;
    r->hash = url_hash(url, len);
    m->wire_bytes += membership_wire_bound(len);
    m->members[m->count++] = r;
    size_t slot = r->hash & (m->bucket_count - 1);
    r->hash_next = m->buckets[slot];
    m->buckets[slot] = r;
    invalidate_peers_json(m);
    return r;
}

static void remove_at(membership *m, size_t i, bool dropped) {
    member *r = m->members[i];
    tell_change(m, r, dropped, view_of(r), (member_view){0});
    size_t slot = r->hash & (m->bucket_count - 1);
    for (member **p = &m->buckets[slot]; *p; p = &(*p)->hash_next) {
        if (*p == r) {
            *p = r->hash_next;
            break;
        }
    }
    m->online -= r->status == MEMBER_ONLINE;
    m->wire_bytes -= membership_wire_bound(r->url_len);
    m->members[i] = m->members[--m->count];
    m->members[i]->index = i;
    member_free(r);
    invalidate_peers_json(m);
}

membership *membership_new(const char *self_url, bool self_monitor, int64_t now_ms,
                           int64_t max_skew_ms) {
    size_t len = strlen(self_url);
    if (!membership_url_valid(self_url, len)) return NULL;
    membership *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->max_skew_ms = max_skew_ms;
    m->self = insert(m, self_url, len, self_monitor, now_ms, MEMBER_ONLINE);
    if (!m->self) {
        membership_free(m);
        return NULL;
    }
    return m;
}

void membership_free(membership *m) {
    if (!m) return;
    for (size_t i = 0; i < m->count; i++) member_free(m->members[i]);
    invalidate_peers_json(m);
    free(m->members);
    free(m->buckets);
    free(m);
}

bool membership_url_valid(const char *url, size_t len) {
    size_t scheme;
    if (len > 7 && memcmp(url, "http://", 7) == 0) scheme = 7;
    else if (len > 8 && memcmp(url, "https://", 8) == 0) scheme = 8;
    else return false;
    if (len > SHAZBOT_MAX_URL_LEN || url[len - 1] != '/') return false;
    /* A host must follow the scheme: "http:///" names nothing. */
    if (url[scheme] == '/' || url[scheme] == ':' || url[scheme] == '?' || url[scheme] == '#')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        /* Restricting to printable ASCII minus '"' and '\' keeps every valid URL safe to
         * write into JSON as it is (see wire.c) and in an HTTP header. */
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\') return false;
    }
    return true;
}

/* Older than the retention of offline records (PROTOCOL.md rule 4). A comparison with a bound
 * rather than `now - last_update > retention`, which overflowed (undefined, and the record was
 * never purged) for a lastUpdate near INT64_MIN. */
bool membership_expired(int64_t last_update, int64_t now_ms) {
    return last_update < now_ms - SHAZBOT_OFFLINE_RETENTION_MS;
}

static member *find_hashed(const membership *m, const char *url, size_t len, uint64_t h) {
    if (!m->bucket_count) return NULL;
    for (member *r = m->buckets[h & (m->bucket_count - 1)]; r; r = r->hash_next)
        if (r->hash == h && r->url_len == len && memcmp(r->base_url, url, len) == 0) return r;
    return NULL;
}

member *membership_find(const membership *m, const char *url, size_t len) {
    return find_hashed(m, url, len, url_hash(url, len));
}

static void set_record(membership *m, member *r, bool monitor, int64_t last_update, member_status s) {
    member_view before = view_of(r);
    r->monitor = monitor;
    r->last_update = last_update;
    m->online += (s == MEMBER_ONLINE) - (r->status == MEMBER_ONLINE);
    r->status = s;
    member_invalidate_wire(r);
    if (r != m->self) invalidate_peers_json(m);
    if (before.status != s) tell_change(m, r, false, before, view_of(r));
}

/* The own record only moves forward in time, so that a change this node makes always beats
 * whatever its peers hold about it. */
static void stamp_self(membership *m, member_status s, int64_t at_least) {
    member *self = m->self;
    int64_t stamp = at_least > self->last_update ? at_least : self->last_update;
    set_record(m, self, self->monitor, stamp, s);
}

/* membership_merge, given the hash of e->base_url. */
static merge_result merge_hashed(membership *m, const member_entry *e, member_status s,
                                 int64_t now_ms, uint64_t hash) {
    /* A known baseUrl was valid when it was inserted: only unknown ones need the check, which
     * keeps the common case (a peer repeating what we know) to one hash lookup. */
    member *r = find_hashed(m, e->base_url, e->url_len, hash);
    if (!r && !membership_url_valid(e->base_url, e->url_len)) {
        m->stats.skipped_url++;
        return MERGE_SKIPPED_URL;
    }
    if (!e->last_update_ok) {
        m->stats.skipped_time++;
        return MERGE_SKIPPED_TIME;
    }
    if (e->last_update > now_ms && e->last_update - now_ms > m->max_skew_ms) {
        m->stats.skipped_future++;
        return MERGE_SKIPPED_FUTURE;
    }
    /* An offline record past the purge horizon would be purged at the next round and taken
     * back from the next peer that still holds it, for ever: it never enters (rule 4). Online
     * records of any age still do: hand-written master lists say "lastUpdate": 0. */
    if (s == MEMBER_OFFLINE && membership_expired(e->last_update, now_ms)) {
        m->stats.skipped_expired++;
        return MERGE_SKIPPED_EXPIRED;
    }
    if (r == m->self) {
        if (s == MEMBER_OFFLINE && r->status == MEMBER_ONLINE &&
            e->last_update >= r->last_update) {
            int64_t refute = e->last_update + 1 > now_ms ? e->last_update + 1 : now_ms;
            member_view before = view_of(r);
            stamp_self(m, MEMBER_ONLINE, refute);
            tell_change(m, r, false, before, view_of(r));
            m->stats.refutations++;
            return MERGE_SELF_REFUTED;
        }
        return MERGE_SELF_IGNORED;
    }
    if (!r) {
        r = insert(m, e->base_url, e->url_len, e->monitor, e->last_update, s);
        if (!r) return MERGE_KEPT; /* out of memory: knowing less is the safe failure */
        /* A record first learned is only as much news as its own timestamp: a hand-written
         * master list's "lastUpdate": 0 says nothing of the peer being alive now. */
        r->heard_ms = e->last_update < now_ms ? e->last_update : now_ms;
        tell_change(m, r, false, (member_view){0}, view_of(r));
        return MERGE_INSERTED;
    }
    if (e->last_update > r->last_update) {
        if (s == MEMBER_OFFLINE && r->status == MEMBER_ONLINE && m->offline_claim &&
            m->offline_claim(m->offline_claim_ctx, r, e->last_update)) {
            m->stats.held_offline++;
            return MERGE_HELD;
        }
        set_record(m, r, e->monitor, e->last_update, s);
        r->heard_ms = now_ms;
        return MERGE_UPDATED;
    }
    return MERGE_KEPT;
}

/* The order records are dropped in when the state outgrows its limit: offline ones first,
 * the oldest first (the least likely to matter again); then online ones, the most recently
 * learned first, so that a flood of new names cannot push out the members known before it.
 * The own record is never a candidate. */
static int by_drop_order(const void *pa, const void *pb) {
    const member *a = *(member *const *)pa, *b = *(member *const *)pb;
    if (a->status != b->status) return a->status == MEMBER_OFFLINE ? -1 : 1;
    if (a->status == MEMBER_OFFLINE)
        return (a->last_update > b->last_update) - (a->last_update < b->last_update);
    return (a->seq < b->seq) - (a->seq > b->seq);
}

size_t membership_enforce_limit(membership *m) {
    if (!m->max_wire_bytes || m->wire_bytes <= m->max_wire_bytes || m->count < 2) return 0;
    size_t n = 0;
    member **order = malloc((m->count - 1) * sizeof *order);
    if (!order) return 0; /* out of memory: over the limit until the next merge */
    for (size_t i = 0; i < m->count; i++)
        if (m->members[i] != m->self) order[n++] = m->members[i];
    qsort(order, n, sizeof *order, by_drop_order);
    /* A little under the limit, so that a state at its limit does not sort itself again for
     * every record a message adds. */
    size_t target = m->max_wire_bytes - m->max_wire_bytes / 32, dropped = 0;
    for (size_t i = 0; i < n && m->wire_bytes > target; i++, dropped++) remove_at(m, order[i]->index, true);
    free(order);
    m->stats.dropped_over_limit += dropped;
    return dropped;
}

merge_result membership_merge(membership *m, const member_entry *e, member_status s,
                              int64_t now_ms) {
    merge_result r = merge_hashed(m, e, s, now_ms, url_hash(e->base_url, e->url_len));
    membership_enforce_limit(m);
    return r;
}

/* Merging a large message is bound by memory rather than by work: once the state outgrows
 * the cache (10,000 records beside the buffers of many connections), each entry's bucket and
 * then the record it leads to are cache misses, one after the other. So the loop asks for
 * them ahead of their turn: the bucket of the entry 2 * MERGE_AHEAD places ahead, and the
 * record of the entry MERGE_AHEAD places ahead, whose bucket has arrived by then. Only hints:
 * a prefetch made stale by an insertion just fetches something useless. */
#define MERGE_AHEAD 8

/* There is always a bucket array: the own record is in it from membership_new on. */
static member **bucket_of(const membership *m, uint64_t hash) {
    return &m->buckets[hash & (m->bucket_count - 1)];
}

void membership_merge_all(membership *m, const member_update *u, size_t count, int64_t now_ms) {
    /* The hashes of entries i .. i + 2 * MERGE_AHEAD - 1, by position modulo the window. */
    enum { WINDOW = 2 * MERGE_AHEAD };
    uint64_t hashes[WINDOW];
    for (size_t j = 0; j < count && j < WINDOW; j++) {
        hashes[j] = url_hash(u[j].e.base_url, u[j].e.url_len);
        __builtin_prefetch(bucket_of(m, hashes[j]));
    }
    for (size_t i = 0; i < count; i++) {
        uint64_t hash = hashes[i % WINDOW];
        size_t far = i + WINDOW, near = i + MERGE_AHEAD;
        if (far < count) {
            hashes[far % WINDOW] = url_hash(u[far].e.base_url, u[far].e.url_len);
            __builtin_prefetch(bucket_of(m, hashes[far % WINDOW]));
        }
        if (near < count) {
            const member *r = *bucket_of(m, hashes[near % WINDOW]);
            if (r) {
                __builtin_prefetch(r);
                __builtin_prefetch(r->base_url); /* past the first cache line */
            }
        }
        merge_hashed(m, &u[i].e, u[i].status, now_ms, hash);
    }
    membership_enforce_limit(m);
}

void membership_refresh_self(membership *m, int64_t now_ms) {
    if (m->self->status == MEMBER_ONLINE && now_ms > m->self->last_update)
        stamp_self(m, MEMBER_ONLINE, now_ms);
}

bool membership_set_self_online(membership *m, bool online, int64_t now_ms) {
    member_status want = online ? MEMBER_ONLINE : MEMBER_OFFLINE;
    if (m->self->status == want) return false;
    stamp_self(m, want, now_ms > m->self->last_update ? now_ms : m->self->last_update + 1);
    return true;
}

bool membership_mark_offline(membership *m, const char *url, size_t len, int64_t stamp_ms) {
    member *r = membership_find(m, url, len);
    if (!r || r == m->self) return false;
    int64_t stamp = stamp_ms > r->last_update ? stamp_ms : r->last_update + 1;
    set_record(m, r, r->monitor, stamp, MEMBER_OFFLINE);
    return true;
}

size_t membership_purge(membership *m, int64_t now_ms) {
    size_t removed = 0;
    for (size_t i = m->count; i-- > 0;) {
        member *r = m->members[i];
        if (r != m->self && r->status == MEMBER_OFFLINE && membership_expired(r->last_update, now_ms)) {
            remove_at(m, i, false);
            removed++;
        }
    }
    return removed;
}

size_t membership_count(const membership *m, member_status s) {
    return s == MEMBER_ONLINE ? m->online : m->count - m->online;
}

void membership_set_limit(membership *m, size_t bytes) {
    m->max_wire_bytes = bytes;
    membership_enforce_limit(m);
}
