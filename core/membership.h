/* membership: the node's knowledge of the cluster, one record per baseUrl, and the merge
 * rules of PROTOCOL.md.
 *
 * Pure on purpose: no clock, no randomness, no I/O. Every function that needs the time takes
 * `now_ms`, so the unit tests can replay any ordering of events exactly. The wire form of each
 * record is cached beside it (see wire.c), because the answer to every gossip request is the
 * whole state and between two requests almost none of it changes. */
#ifndef SHAZBOT_MEMBERSHIP_H
#define SHAZBOT_MEMBERSHIP_H

#include "codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHAZBOT_MAX_URL_LEN 2048
#define SHAZBOT_OFFLINE_RETENTION_MS (24LL * 3600 * 1000)

typedef enum { MEMBER_ONLINE = 0, MEMBER_OFFLINE = 1 } member_status;

typedef struct member {
    uint64_t hash; /* of base_url, kept so that lookups compare it before the text */
    size_t url_len;
    bool monitor;
    int64_t last_update;
    member_status status;
    /* Cached `{"baseUrl":...,"monitor":...,"lastUpdate":...}`; NULL when stale. */
    char *wire;
    size_t wire_len;
    struct member *hash_next;
    size_t index; /* position in membership.members */
    uint64_t seq; /* insertion order: see membership_enforce_limit */
    /* This node's clock when a merge last brought news of the record (a newer lastUpdate;
     * for a record inserted, its lastUpdate): how recently someone heard from the peer.
     * Local, never on the wire. */
    int64_t heard_ms;
    char base_url[]; /* in the same allocation: one cache miss less per lookup */
} member;

/* An incoming record, before it is checked. `last_update_ok` is false when the peer sent a
 * value that is not a finite integer (null, a fraction, ...). */
typedef struct member_entry {
    const char *base_url;
    size_t url_len;
    bool monitor;
    int64_t last_update;
    bool last_update_ok;
} member_entry;

typedef enum {
    MERGE_INSERTED,
    MERGE_UPDATED,
    MERGE_KEPT,            /* not newer than what is there */
    MERGE_SELF_IGNORED,    /* a record about this node that needs no answer */
    MERGE_SELF_REFUTED,    /* a peer said this node is offline; it refreshed itself */
    MERGE_SKIPPED_URL,     /* baseUrl is not an http(s) URL ending in '/' */
    MERGE_SKIPPED_TIME,    /* lastUpdate is not a finite integer */
    MERGE_SKIPPED_FUTURE,  /* lastUpdate beyond the allowed clock skew */
    MERGE_SKIPPED_EXPIRED, /* an offline record past the purge horizon (rule 4) */
    MERGE_HELD,            /* an offline claim about an online peer, held back (offline_claim) */
} merge_result;

typedef struct membership_stats {
    uint64_t skipped_url, skipped_time, skipped_future, skipped_expired, refutations;
    uint64_t dropped_over_limit; /* records dropped to keep the state within its limit */
    uint64_t held_offline;       /* offline claims held back to be confirmed (offline_claim) */
} membership_stats;

/* Asked when a merge would move an online peer offline (an offline record newer than the
 * online one, learned from someone else): true holds the claim back, the record staying as
 * it is, for the caller to confirm and apply later (membership_mark_offline); false applies
 * it now. */
typedef bool (*offline_claim_fn)(void *ctx, const struct member *r, int64_t claimed_last_update);

/* A record as it was or is, for a change hook: `known` false when there was none (inserted)
 * or is none any more (removed). */
typedef struct member_view {
    bool known;
    member_status status;
    int64_t last_update;
    bool monitor;
} member_view;

/* Told of every change that events are made of (engine.c classifies them): a record inserted,
 * a record whose status changed, a record removed (purged, or dropped over the limit:
 * `dropped`), and the own record refuting a claim (its status unchanged, its lastUpdate
 * newer). Called after the change (a removal: just before the record is freed); must not change
 * the membership. */
typedef void (*member_change_fn)(void *ctx, const char *url, size_t url_len, bool self, bool dropped,
                                 member_view before, member_view after);

/* The most bytes one record can take in a gossip message, its separator included:
 * {"baseUrl":"<url>","monitor":false,"lastUpdate":-9223372036854775808}, */
#define MEMBER_WIRE_OVERHEAD 66
static inline size_t membership_wire_bound(size_t url_len) { return url_len + MEMBER_WIRE_OVERHEAD; }

/* The wire form of every record but this node's own, one list per status, joined and cached
 * by wire.c: the own record changes with nearly every request, the others rarely. */
typedef struct peers_json {
    char *text; /* NULL when stale; shared bytes (buf_share), which answers may still hold */
    size_t len;
    /* The same text compressed, by codec_kind (gzip, zstd), made when first asked for and
     * dropped with the text (codec.h). */
    codec_segment coded[CODEC_ZSTD + 1];
} peers_json;

typedef struct membership {
    member **members; /* dense array: iteration order of the wire output */
    size_t count, capacity;
    size_t online; /* records of status online: kept, so that counting them costs nothing */
    member **buckets;
    size_t bucket_count;
    member *self;
    int64_t max_skew_ms;
    membership_stats stats;
    /* The bound of the state's gossip message (membership_wire_bound of every record), and
     * the most it may be: 0 for no limit (membership_set_limit). */
    size_t wire_bytes, max_wire_bytes;
    uint64_t next_seq;
    peers_json peers[2]; /* by member_status */
    offline_claim_fn offline_claim; /* NULL: every claim applied at once */
    void *offline_claim_ctx;
    member_change_fn change; /* NULL: nobody is told */
    void *change_ctx;
} membership;

membership *membership_new(const char *self_url, bool self_monitor, int64_t now_ms,
                           int64_t max_skew_ms);
void membership_free(membership *m);

/* True when `url` is an absolute http:// or https:// URL with a host, ending in '/', made of
 * printable ASCII without quotes, backslashes or spaces, and not longer than
 * SHAZBOT_MAX_URL_LEN. */
bool membership_url_valid(const char *url, size_t len);

merge_result membership_merge(membership *m, const member_entry *e, member_status s,
                              int64_t now_ms);

/* An incoming record and the list it arrived in. */
typedef struct member_update {
    member_entry e;
    member_status status;
} member_update;

/* Merges `count` updates in order, exactly as membership_merge one by one, but faster for a
 * large message (it prefetches; see membership.c). */
void membership_merge_all(membership *m, const member_update *u, size_t count, int64_t now_ms);

member *membership_find(const membership *m, const char *url, size_t len);

/* The own record: refresh (lastUpdate = now, only while online) and control. */
void membership_refresh_self(membership *m, int64_t now_ms);
/* Returns true when the status changed. */
bool membership_set_self_online(membership *m, bool online, int64_t now_ms);

/* A peer that failed twice: offline, lastUpdate = `stamp_ms` (engine.c, verdict_stamp), or
 * its lastUpdate + 1 when that is later, so that the verdict replaces the record everywhere
 * the record is not newer. Returns false if unknown or self. */
bool membership_mark_offline(membership *m, const char *url, size_t len, int64_t stamp_ms);

/* True when an offline record of this lastUpdate is past the purge horizon at `now_ms`. */
bool membership_expired(int64_t last_update, int64_t now_ms);

/* Removes offline records older than SHAZBOT_OFFLINE_RETENTION_MS; returns how many. */
size_t membership_purge(membership *m, int64_t now_ms);

size_t membership_count(const membership *m, member_status s);

/* Keeps the state's gossip message within `bytes` (0: no limit): a peer refuses a body over
 * its SHAZBOT_MAX_BODY, and a state that outgrew it would cut every link for good. Every
 * merge enforces it; records past it are dropped in the order of membership_enforce_limit
 * (membership.c), counted in stats.dropped_over_limit. */
void membership_set_limit(membership *m, size_t bytes);
/* Drops records until the state is within its limit; returns how many. */
size_t membership_enforce_limit(membership *m);

#endif
