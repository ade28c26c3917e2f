/* The merge rules of PROTOCOL.md ("Merge rules"), one group of cases per rule, each case
 * written so that it fails if its rule is broken; then the own record, mark_offline and the
 * hash table. Time is passed in, so every ordering is exact.
 *
 * PROTOCOL.md numbers the rules 1 to 4; the tests below follow the finer split:
 *   no resurrection (rule 3), self-refutation (rule 2), clock skew and old timestamps
 *   (rule 1), ties (rule 3), purge (rule 4), invalid entries (rule 1). */
#include "check.h"
#include "membership.h"

#include <stdio.h>
#include <stdlib.h>

#define SELF "http://self.test:3000/"
#define PEER "http://peer.test:3000/"
#define OTHER "https://other.test/"
#define NOW 1795478695140LL
#define SKEW 300000LL
#define DAY SHAZBOT_OFFLINE_RETENTION_MS
/* A time shortly before NOW: records stamped then are young, offline ones included (an
 * offline record past the purge horizon never enters, rule 4). */
#define T(ms) (NOW - 100000 + (ms))

static membership *fresh(void) { return membership_new(SELF, false, NOW, SKEW); }

static member_entry entry(const char *url, int64_t last_update) {
    return (member_entry){.base_url = url, .url_len = strlen(url), .last_update = last_update,
                          .last_update_ok = true};
}

static merge_result merge_at(membership *m, const char *url, int64_t last_update, member_status s,
                             int64_t now) {
    member_entry e = entry(url, last_update);
    return membership_merge(m, &e, s, now);
}

static merge_result merge(membership *m, const char *url, int64_t last_update, member_status s) {
    return merge_at(m, url, last_update, s, NOW);
}

static merge_result merge_monitor(membership *m, const char *url, int64_t last_update, bool monitor,
                                  member_status s) {
    member_entry e = entry(url, last_update);
    e.monitor = monitor;
    return membership_merge(m, &e, s, NOW);
}

static member *find(membership *m, const char *url) { return membership_find(m, url, strlen(url)); }

/* The record for `url`, or when there is none a stand-in that matches no expectation (no
 * status, the oldest time), so that a missing record fails the checks instead of crashing. */
static const member *get(membership *m, const char *url) {
    static member missing;
    missing.status = (member_status)-1;
    missing.last_update = INT64_MIN;
    missing.monitor = false;
    const member *r = find(m, url);
    if (!r) fprintf(stderr, "    (no record for %s)\n", url);
    return r ? r : &missing;
}

/* Every record is reachable through the table and sits where its index says. */
static bool consistent(const membership *m) {
    for (size_t i = 0; i < m->count; i++) {
        member *r = m->members[i];
        if (r->index != i || membership_find(m, r->base_url, r->url_len) != r) return false;
    }
    return true;
}

/* Rule 3 and the improvement over the original library: an older (or equally old) online entry
 * never brings back a record held offline; only a strictly newer one does. */
static void test_no_resurrection(void) {
    membership *m = fresh();
    CHECK_INT(merge(m, PEER, T(2000), MEMBER_OFFLINE), MERGE_INSERTED);
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);

    CHECK_INT(merge(m, PEER, T(1999), MEMBER_ONLINE), MERGE_KEPT); /* older: the dead stay dead */
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);
    CHECK_INT(get(m, PEER)->last_update, T(2000));

    CHECK_INT(merge(m, PEER, 0, MEMBER_ONLINE), MERGE_KEPT); /* a master list's 0 neither */
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);

    CHECK_INT(merge(m, PEER, T(2000), MEMBER_ONLINE), MERGE_KEPT); /* a tie keeps what is there */
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);
    CHECK_INT(get(m, PEER)->last_update, T(2000));

    CHECK_INT(merge(m, PEER, T(2001), MEMBER_ONLINE), MERGE_UPDATED); /* newer: back online */
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, T(2001));

    /* The other way: an online record is replaced by a newer offline entry... */
    CHECK_INT(merge(m, OTHER, T(5000), MEMBER_ONLINE), MERGE_INSERTED);
    CHECK_INT(merge(m, OTHER, T(5001), MEMBER_OFFLINE), MERGE_UPDATED);
    CHECK_INT(get(m, OTHER)->status, MEMBER_OFFLINE);
    CHECK_INT(get(m, OTHER)->last_update, T(5001));
    /* ...but not by an older or equally old one. */
    CHECK_INT(merge(m, PEER, T(2000), MEMBER_OFFLINE), MERGE_KEPT);
    CHECK_INT(merge(m, PEER, T(2001), MEMBER_OFFLINE), MERGE_KEPT);
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, T(2001));

    /* Same status, newer: the record follows (monitor flag included). */
    CHECK_INT(merge_monitor(m, PEER, T(3000), true, MEMBER_ONLINE), MERGE_UPDATED);
    CHECK_INT(get(m, PEER)->last_update, T(3000));
    CHECK(get(m, PEER)->monitor);
    CHECK_INT(merge(m, OTHER, T(6000), MEMBER_OFFLINE), MERGE_UPDATED);
    CHECK_INT(get(m, OTHER)->last_update, T(6000));
    CHECK_INT(get(m, OTHER)->status, MEMBER_OFFLINE);

    /* The measured failure of the original: a peer is moved offline here, then another peer
     * relays the online entry it still holds. The dead peer stays offline. */
    CHECK(membership_mark_offline(m, PEER, strlen(PEER), NOW));
    CHECK_INT(merge(m, PEER, T(3000), MEMBER_ONLINE), MERGE_KEPT);
    CHECK_INT(merge(m, PEER, NOW, MEMBER_ONLINE), MERGE_KEPT);
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);
    CHECK_INT(membership_count(m, MEMBER_ONLINE), 1);
    CHECK_INT(membership_count(m, MEMBER_OFFLINE), 2);
    membership_free(m);
}

/* Rule 3, ties: the record stays exactly as it is, monitor flag and status included. */
static void test_ties_keep(void) {
    membership *m = fresh();
    CHECK_INT(merge_monitor(m, PEER, T(5000), true, MEMBER_ONLINE), MERGE_INSERTED);
    CHECK_INT(merge_monitor(m, PEER, T(5000), false, MEMBER_OFFLINE), MERGE_KEPT);
    CHECK_INT(merge_monitor(m, PEER, T(5000), false, MEMBER_ONLINE), MERGE_KEPT);
    CHECK(get(m, PEER)->monitor);
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, T(5000));

    CHECK_INT(merge_monitor(m, OTHER, T(7000), false, MEMBER_OFFLINE), MERGE_INSERTED);
    CHECK_INT(merge_monitor(m, OTHER, T(7000), true, MEMBER_ONLINE), MERGE_KEPT);
    CHECK_INT(merge_monitor(m, OTHER, T(7000), true, MEMBER_OFFLINE), MERGE_KEPT);
    CHECK(!get(m, OTHER)->monitor);
    CHECK_INT(get(m, OTHER)->status, MEMBER_OFFLINE);
    membership_free(m);
}

/* Rule 2: records about this node never overwrite it; an offline claim at least as new as the
 * own record, while online, is refuted with max(now, e.lastUpdate + 1). */
static void test_self_refutation(void) {
    /* The own record is 1000 ms old, so that max(now, e + 1) has two distinct branches. */
    membership *m = membership_new(SELF, false, NOW - 1000, SKEW);
    member *self = find(m, SELF);
    CHECK(self == m->self);
    CHECK_INT(self->last_update, NOW - 1000);

    /* An older offline claim changes nothing. */
    CHECK_INT(merge(m, SELF, NOW - 1001, MEMBER_OFFLINE), MERGE_SELF_IGNORED);
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(self->last_update, NOW - 1000);
    CHECK_INT(m->stats.refutations, 0);

    /* As new as the own record: refuted, now > e + 1, so lastUpdate = now. */
    CHECK_INT(merge(m, SELF, NOW - 1000, MEMBER_OFFLINE), MERGE_SELF_REFUTED);
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(self->last_update, NOW);
    CHECK_INT(m->stats.refutations, 1);

    /* Newer, from a clock running ahead within the skew: e + 1 > now, so e + 1. */
    int64_t claim = NOW + 60000;
    CHECK_INT(merge(m, SELF, claim, MEMBER_OFFLINE), MERGE_SELF_REFUTED);
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(self->last_update, claim + 1);
    CHECK_INT(m->stats.refutations, 2);

    /* Exactly e + 1 = now: either branch gives now. */
    membership *n = membership_new(SELF, false, NOW - 5, SKEW);
    CHECK_INT(merge(n, SELF, NOW - 1, MEMBER_OFFLINE), MERGE_SELF_REFUTED);
    CHECK_INT(n->self->last_update, NOW);
    membership_free(n);

    /* An online claim about this node never overwrites it, however new, whatever it says. */
    CHECK_INT(merge_monitor(m, SELF, claim + 100, true, MEMBER_ONLINE), MERGE_SELF_IGNORED);
    CHECK_INT(self->last_update, claim + 1);
    CHECK(!self->monitor);
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(m->count, 1); /* and no second record for the same baseUrl */

    /* A refutation never moves the own record backwards either. */
    CHECK_INT(merge(m, SELF, claim + 1, MEMBER_OFFLINE), MERGE_SELF_REFUTED);
    CHECK_INT(self->last_update, claim + 2);

    /* A poisoned timestamp about this node is skipped, not refuted: it would pin the own
     * lastUpdate far in the future. */
    CHECK_INT(merge(m, SELF, NOW + SKEW + 1, MEMBER_OFFLINE), MERGE_SKIPPED_FUTURE);
    CHECK_INT(self->last_update, claim + 2);
    member_entry nan_claim = entry(SELF, 0);
    nan_claim.last_update_ok = false;
    CHECK_INT(membership_merge(m, &nan_claim, MEMBER_OFFLINE, NOW), MERGE_SKIPPED_TIME);
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(m->stats.refutations, 3);

    /* A node that is offline on purpose does not argue, and is not brought back by peers. */
    CHECK(membership_set_self_online(m, false, NOW));
    int64_t gone = self->last_update;
    CHECK_INT(merge(m, SELF, gone + 10, MEMBER_OFFLINE), MERGE_SELF_IGNORED);
    CHECK_INT(merge(m, SELF, gone + 10, MEMBER_ONLINE), MERGE_SELF_IGNORED);
    CHECK_INT(self->status, MEMBER_OFFLINE);
    CHECK_INT(self->last_update, gone);
    CHECK_INT(m->stats.refutations, 3);
    membership_free(m);
}

/* Rule 1, clock skew: one poisoned timestamp must not pin a record forever. */
static void test_future_skew(void) {
    membership *m = fresh();
    CHECK_INT(merge(m, PEER, NOW + SKEW + 1, MEMBER_ONLINE), MERGE_SKIPPED_FUTURE);
    CHECK(find(m, PEER) == NULL);
    CHECK_INT(m->stats.skipped_future, 1);
    CHECK_INT(merge(m, PEER, INT64_MAX, MEMBER_ONLINE), MERGE_SKIPPED_FUTURE);
    CHECK_INT(m->stats.skipped_future, 2);
    CHECK(find(m, PEER) == NULL);

    CHECK_INT(merge(m, PEER, NOW + SKEW, MEMBER_ONLINE), MERGE_INSERTED); /* at the limit: fine */
    CHECK_INT(get(m, PEER)->last_update, NOW + SKEW);
    CHECK_INT(merge(m, OTHER, NOW + 1000, MEMBER_ONLINE), MERGE_INSERTED); /* within: fine */

    /* A skipped entry leaves a known record alone, even if it is "newer". */
    CHECK_INT(merge(m, PEER, NOW + 10 * SKEW, MEMBER_OFFLINE), MERGE_SKIPPED_FUTURE);
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, NOW + SKEW);
    CHECK_INT(m->stats.skipped_future, 3);
    CHECK_INT(m->stats.skipped_url + m->stats.skipped_time, 0);

    /* The limit moves with the clock: the same entry is fine a minute later. */
    CHECK_INT(merge_at(m, PEER, NOW + SKEW + 60000, MEMBER_OFFLINE, NOW + 60000), MERGE_UPDATED);
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);

    /* With no skew allowed, one millisecond ahead is too much. */
    membership *strict = membership_new(SELF, false, NOW, 0);
    CHECK_INT(merge(strict, PEER, NOW + 1, MEMBER_ONLINE), MERGE_SKIPPED_FUTURE);
    CHECK_INT(merge(strict, PEER, NOW, MEMBER_ONLINE), MERGE_INSERTED);
    membership_free(strict);
    membership_free(m);
}

/* Rule 1, old timestamps are fine: hand-written master lists say "lastUpdate": 0. */
static void test_old_timestamps_bootstrap(void) {
    membership *m = fresh();
    CHECK_INT(merge(m, PEER, 0, MEMBER_ONLINE), MERGE_INSERTED);
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, 0);
    CHECK_INT(merge(m, "http://older.test/", -5, MEMBER_ONLINE), MERGE_INSERTED);
    CHECK_INT(m->count, 3);
    /* And the first real news about it replaces the bootstrap entry. */
    CHECK_INT(merge(m, PEER, 1, MEMBER_ONLINE), MERGE_UPDATED);
    CHECK_INT(get(m, PEER)->last_update, 1);
    CHECK_INT(m->stats.skipped_url + m->stats.skipped_time + m->stats.skipped_future, 0);
    /* Rule 4, though: an offline record past the purge horizon never enters, whatever its
     * source. It was purged at the start of each round and taken back from the next answer,
     * so that it stayed in the cluster for ever (54 of 54 samples over a minute). */
    CHECK_INT(merge(m, OTHER, 0, MEMBER_OFFLINE), MERGE_SKIPPED_EXPIRED);
    CHECK_INT(merge(m, OTHER, NOW - DAY - 1, MEMBER_OFFLINE), MERGE_SKIPPED_EXPIRED);
    CHECK(find(m, OTHER) == NULL);
    CHECK_INT(m->stats.skipped_expired, 2);
    CHECK_INT(merge(m, OTHER, NOW - DAY, MEMBER_OFFLINE), MERGE_INSERTED); /* not *more* than 24 h */
    /* Known records too: a stale offline claim changes nothing, even about an older online. */
    CHECK_INT(merge(m, PEER, NOW - DAY - 1, MEMBER_OFFLINE), MERGE_SKIPPED_EXPIRED);
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, 1);
    membership_free(m);
}

/* Rule 1, invalid entries: skipped, counted, nothing else touched, the rest still merged. */
static void test_invalid_entries(void) {
    membership *m = fresh();
    /* Exactly SHAZBOT_MAX_URL_LEN is fine, one more is not. */
    static char max_url[SHAZBOT_MAX_URL_LEN + 1], long_url[SHAZBOT_MAX_URL_LEN + 2];
    memcpy(max_url, "http://x.test/", 14);
    memset(max_url + 14, 'a', SHAZBOT_MAX_URL_LEN - 15);
    max_url[SHAZBOT_MAX_URL_LEN - 1] = '/';
    memcpy(long_url, "http://x.test/", 14);
    memset(long_url + 14, 'a', SHAZBOT_MAX_URL_LEN - 14);
    long_url[SHAZBOT_MAX_URL_LEN] = '/';
    CHECK_INT(strlen(max_url), SHAZBOT_MAX_URL_LEN);
    CHECK_INT(strlen(long_url), SHAZBOT_MAX_URL_LEN + 1);
    CHECK(membership_url_valid(max_url, strlen(max_url)));

    const char *bad[] = {
        "ftp://x.test/",     "http://x.test",      "http:///",           "http://",
        "",                  "http://x y.test/",   "http://x.test/a b/", " http://x.test/",
        "http://x\".test/",  "http://x'\".test/",  "http://x\\.test/",   "x.test/",
        "https://",          "https:///",          "http://x.test/\n",   "http://x.test/\t/",
        "HTTP://x.test/",    "http:/x.test/",      "http://:80/",        "http://?q/",
        "http://#f/",        "http://x.t\x7f/",    "http://\xc3\xa9.test/", "mailto:x@y/",
        "//x.test/",         "/",                  long_url,
    };
    size_t count = sizeof bad / sizeof *bad;
    for (size_t i = 0; i < count; i++) {
        if (!check_that(merge(m, bad[i], 1000, MEMBER_ONLINE) == MERGE_SKIPPED_URL, __FILE__,
                        __LINE__, "bad URL skipped"))
            fprintf(stderr, "    url \"%s\"\n", bad[i]);
        CHECK(!membership_url_valid(bad[i], strlen(bad[i])));
    }
    /* An embedded NUL is not hidden by the length. */
    CHECK(!membership_url_valid("http://x.test/\0/", 16));
    CHECK_INT(m->stats.skipped_url, count);
    CHECK_INT(m->count, 1);

    member_entry e = entry(PEER, 0);
    e.last_update_ok = false;
    CHECK_INT(membership_merge(m, &e, MEMBER_ONLINE, NOW), MERGE_SKIPPED_TIME);
    CHECK_INT(m->stats.skipped_time, 1);
    CHECK(find(m, PEER) == NULL);

    /* A message of good and bad entries mixed: every good one is merged, every bad one
     * counted, in whatever order they come. */
    member_entry msg[] = {
        entry("ftp://bad.test/", 10),
        entry("http://good-1.test/", 10),
        entry("http://bad.test", 10),
        entry(PEER, 20),
        entry("http://good-2.test/", NOW + 2 * SKEW),
        entry("http://good-3.test/", 30),
        entry(max_url, 40),
    };
    msg[3].last_update_ok = false;
    merge_result want[] = {MERGE_SKIPPED_URL, MERGE_INSERTED, MERGE_SKIPPED_URL, MERGE_SKIPPED_TIME,
                           MERGE_SKIPPED_FUTURE, MERGE_INSERTED, MERGE_INSERTED};
    for (size_t i = 0; i < sizeof msg / sizeof *msg; i++)
        CHECK_INT(membership_merge(m, &msg[i], MEMBER_ONLINE, NOW), want[i]);
    CHECK(find(m, "http://good-1.test/") != NULL);
    CHECK(find(m, "http://good-3.test/") != NULL);
    CHECK(find(m, max_url) != NULL);
    CHECK(find(m, "http://good-2.test/") == NULL);
    CHECK_INT(m->stats.skipped_url, count + 2);
    CHECK_INT(m->stats.skipped_time, 2);
    CHECK_INT(m->stats.skipped_future, 1);

    /* A known record and an entry about it without a usable time: the record stays. */
    CHECK_INT(merge(m, PEER, 1000, MEMBER_ONLINE), MERGE_INSERTED);
    e.last_update = 5000;
    CHECK_INT(membership_merge(m, &e, MEMBER_OFFLINE, NOW), MERGE_SKIPPED_TIME);
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, 1000);

    CHECK(membership_url_valid("https://[::1]:8443/base/", 24));
    CHECK(membership_url_valid("http://a/", 9));
    membership_free(m);
}

/* Rule 4: offline records whose lastUpdate is more than 24 h old go; nothing else does. */
static void test_purge(void) {
    /* The own record is made long ago and moved offline two days ago: old enough to be
     * purged if it were anyone else's. */
    membership *m = membership_new(SELF, false, NOW - 3 * DAY, SKEW);
    /* Each merged while it was young: past the horizon it would not enter at all. */
    merge_at(m, "http://old-offline.test/", NOW - DAY - 1, MEMBER_OFFLINE, NOW - DAY - 1);
    merge_at(m, "http://very-old-offline.test/", 0, MEMBER_OFFLINE, 0);
    merge(m, "http://day-offline.test/", NOW - DAY, MEMBER_OFFLINE); /* not *more* than 24 h */
    merge(m, "http://young-offline.test/", NOW - DAY + 1000, MEMBER_OFFLINE);
    merge(m, "http://old-online.test/", NOW - 2 * DAY, MEMBER_ONLINE);
    merge(m, "http://zero-online.test/", 0, MEMBER_ONLINE);
    CHECK(membership_set_self_online(m, false, NOW - 2 * DAY));
    CHECK_INT(m->self->last_update, NOW - 2 * DAY);
    CHECK_INT(m->count, 7);

    CHECK_INT(membership_purge(m, NOW), 2);
    CHECK(find(m, "http://old-offline.test/") == NULL);
    CHECK(find(m, "http://very-old-offline.test/") == NULL);
    CHECK(find(m, "http://day-offline.test/") != NULL);
    CHECK(find(m, "http://young-offline.test/") != NULL);
    CHECK(find(m, "http://old-online.test/") != NULL);
    CHECK(find(m, "http://zero-online.test/") != NULL);
    CHECK(find(m, SELF) == m->self);
    CHECK_INT(m->self->status, MEMBER_OFFLINE);
    CHECK_INT(m->count, 5);
    CHECK(consistent(m));

    /* Nothing more to do now; a millisecond later the 24 h one goes too. */
    CHECK_INT(membership_purge(m, NOW), 0);
    CHECK_INT(membership_purge(m, NOW + 1), 1);
    CHECK(find(m, "http://day-offline.test/") == NULL);
    CHECK(consistent(m));

    /* An offline record at INT64_MIN (a peer with a broken clock) is purged, and purging it
     * does not overflow (the sanitizer build stops on `now - lastUpdate`). */
    CHECK_INT(merge_at(m, "http://broken-clock.test/", INT64_MIN, MEMBER_OFFLINE, INT64_MIN + DAY), MERGE_INSERTED);
    CHECK_INT(membership_purge(m, NOW + 1), 1);
    CHECK(find(m, "http://broken-clock.test/") == NULL);

    /* A purged record is unknown again: an old entry about it bootstraps it anew. */
    CHECK_INT(merge(m, "http://old-offline.test/", 5, MEMBER_ONLINE), MERGE_INSERTED);
    CHECK(consistent(m));
    membership_free(m);
}

static void test_own_record(void) {
    membership *m = fresh();
    CHECK(!membership_set_self_online(m, true, NOW + 5)); /* already online: no change */
    CHECK_INT(m->self->last_update, NOW);
    CHECK_INT(m->self->status, MEMBER_ONLINE);

    membership_refresh_self(m, NOW + 100);
    CHECK_INT(m->self->last_update, NOW + 100);
    membership_refresh_self(m, NOW + 50); /* never backwards */
    CHECK_INT(m->self->last_update, NOW + 100);

    CHECK(membership_set_self_online(m, false, NOW + 200));
    CHECK_INT(m->self->status, MEMBER_OFFLINE);
    CHECK_INT(m->self->last_update, NOW + 200);
    CHECK(!membership_set_self_online(m, false, NOW + 250)); /* already offline: no change */
    CHECK_INT(m->self->last_update, NOW + 200);
    CHECK_INT(m->self->status, MEMBER_OFFLINE);

    membership_refresh_self(m, NOW + 300); /* offline: not refreshed */
    CHECK_INT(m->self->last_update, NOW + 200);
    CHECK_INT(m->self->status, MEMBER_OFFLINE);

    CHECK(membership_set_self_online(m, true, NOW + 150)); /* clock went back: still forward */
    CHECK_INT(m->self->status, MEMBER_ONLINE);
    CHECK(m->self->last_update > NOW + 200);
    CHECK(membership_set_self_online(m, false, NOW + 400));
    CHECK(membership_set_self_online(m, true, NOW + 500));
    CHECK_INT(m->self->last_update, NOW + 500);

    /* The own record keeps its monitor flag through all of it. */
    membership *mon = membership_new(SELF, true, NOW, SKEW);
    CHECK(mon->self->monitor);
    membership_refresh_self(mon, NOW + 1);
    CHECK(membership_set_self_online(mon, false, NOW + 2));
    CHECK(mon->self->monitor);
    membership_free(mon);
    membership_free(m);
}

static void test_mark_offline(void) {
    membership *m = fresh();
    merge_monitor(m, PEER, NOW - 10, true, MEMBER_ONLINE);
    CHECK(membership_mark_offline(m, PEER, strlen(PEER), NOW));
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);
    CHECK_INT(get(m, PEER)->last_update, NOW);
    CHECK(get(m, PEER)->monitor); /* what it is does not change */
    CHECK(!membership_mark_offline(m, SELF, strlen(SELF), NOW));
    CHECK_INT(m->self->status, MEMBER_ONLINE);
    CHECK(!membership_mark_offline(m, "http://unknown.test/", 20, NOW));
    CHECK(find(m, "http://unknown.test/") == NULL);
    /* The stale online entry of the failed peer, still held by others, is refused. */
    CHECK_INT(merge(m, PEER, NOW - 10, MEMBER_ONLINE), MERGE_KEPT);
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);

    /* A peer whose clock runs ahead: its record is newer than our now. Marking it still wins
     * over the entry it last sent, or the next relay of that entry would bring it back. */
    merge(m, OTHER, NOW + 1000, MEMBER_ONLINE);
    CHECK(membership_mark_offline(m, OTHER, strlen(OTHER), NOW));
    CHECK_INT(get(m, OTHER)->status, MEMBER_OFFLINE);
    CHECK(get(m, OTHER)->last_update > NOW + 1000);
    CHECK_INT(merge(m, OTHER, NOW + 1000, MEMBER_ONLINE), MERGE_KEPT);
    CHECK_INT(get(m, OTHER)->status, MEMBER_OFFLINE);
    /* The peer itself, alive after all, refreshes and comes back with a newer entry. */
    CHECK_INT(merge(m, OTHER, NOW + 5000, MEMBER_ONLINE), MERGE_UPDATED);
    CHECK_INT(get(m, OTHER)->status, MEMBER_ONLINE);
    membership_free(m);
}

/* The offline_claim hook: asked only when a merge would move an online peer offline; true
 * holds the claim (the record unchanged, counted), false applies it. */
typedef struct claims_seen {
    int asked;
    bool hold;
    int64_t last_claim;
} claims_seen;

static bool record_claim(void *ctx, const member *r, int64_t claimed) {
    claims_seen *seen = ctx;
    (void)r;
    seen->asked++;
    seen->last_claim = claimed;
    return seen->hold;
}

static void test_offline_claims(void) {
    membership *m = fresh();
    claims_seen seen = {.hold = true};
    m->offline_claim = record_claim;
    m->offline_claim_ctx = &seen;
    merge(m, PEER, T(1000), MEMBER_ONLINE);
    CHECK_INT(merge(m, PEER, T(2000), MEMBER_OFFLINE), MERGE_HELD);
    CHECK_INT(seen.asked, 1);
    CHECK_INT(seen.last_claim, T(2000));
    CHECK_INT(get(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(get(m, PEER)->last_update, T(1000));
    CHECK_INT(m->stats.held_offline, 1);
    /* Not asked: an older claim, an unknown peer, a peer already offline, the own record. */
    CHECK_INT(merge(m, PEER, T(500), MEMBER_OFFLINE), MERGE_KEPT);
    CHECK_INT(merge(m, OTHER, T(2000), MEMBER_OFFLINE), MERGE_INSERTED);
    CHECK_INT(merge(m, OTHER, T(3000), MEMBER_OFFLINE), MERGE_UPDATED);
    CHECK_INT(merge(m, SELF, NOW, MEMBER_OFFLINE), MERGE_SELF_REFUTED);
    CHECK_INT(seen.asked, 1);
    /* Applied when the hook says so. */
    seen.hold = false;
    CHECK_INT(merge(m, PEER, T(2000), MEMBER_OFFLINE), MERGE_UPDATED);
    CHECK_INT(seen.asked, 2);
    CHECK_INT(get(m, PEER)->status, MEMBER_OFFLINE);
    membership_free(m);
}

/* Many records: the hash table grows, finds stay right through removals and purges. */
static void test_many_records(void) {
    membership *m = fresh();
    enum { N = 10000 };
    char url[64];
    int inserted = 0;
    for (int i = 0; i < N; i++) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        bool odd = i % 2;
        inserted += merge(m, url, odd ? NOW - DAY + 1 : NOW - i, odd ? MEMBER_OFFLINE : MEMBER_ONLINE) ==
                    MERGE_INSERTED;
    }
    CHECK_INT(inserted, N);
    CHECK_INT(m->count, N + 1);
    CHECK(m->bucket_count >= m->count); /* it grew (load factor 3/4) */
    CHECK_INT(m->bucket_count & (m->bucket_count - 1), 0); /* a power of two: slots are masks */
    CHECK(consistent(m));

    int found = 0;
    for (int i = 0; i < N; i++) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        member *r = find(m, url);
        found += r != NULL && strcmp(r->base_url, url) == 0 && r->url_len == strlen(url) &&
                 r->last_update == (i % 2 ? NOW - DAY + 1 : NOW - i);
    }
    CHECK_INT(found, N);
    CHECK(find(m, "http://node-10000.test:3000/") == NULL);
    CHECK(find(m, "http://node-00001.test:3000") == NULL); /* a prefix is not a match */
    /* Merging them again changes nothing. */
    int kept = 0;
    for (int i = 0; i < N; i += 7) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        kept += merge(m, url, 0, MEMBER_ONLINE) == MERGE_KEPT;
    }
    CHECK_INT(kept, (N + 6) / 7);
    CHECK_INT(m->count, N + 1);

    CHECK_INT(membership_purge(m, NOW), 0); /* young yet */
    CHECK_INT(membership_purge(m, NOW + 2), N / 2);
    CHECK_INT(m->count, N / 2 + 1);
    CHECK_INT(membership_count(m, MEMBER_ONLINE), N / 2 + 1);
    CHECK_INT(membership_count(m, MEMBER_OFFLINE), 0);
    CHECK(consistent(m));
    CHECK(m->self == find(m, SELF));
    found = 0;
    int gone = 0;
    for (int i = 0; i < N; i++) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        member *r = find(m, url);
        if (i % 2) gone += r == NULL;
        else found += r != NULL && r == m->members[r->index] && strcmp(r->base_url, url) == 0;
    }
    CHECK_INT(found, N / 2);
    CHECK_INT(gone, N / 2);

    /* Purge the rest piecewise (mark offline, then a day later), and insert anew. */
    for (int i = 0; i < N; i += 4) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        membership_mark_offline(m, url, strlen(url), NOW);
    }
    CHECK_INT(membership_purge(m, NOW + DAY + 2), N / 4); /* node 0 was marked at NOW + 1 */
    CHECK_INT(m->count, N / 4 + 1);
    CHECK(consistent(m));
    int right = 0;
    for (int i = 0; i < N; i++) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        right += (find(m, url) != NULL) == (i % 4 == 2);
    }
    CHECK_INT(right, N);
    inserted = 0;
    for (int i = 0; i < N; i++) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        merge_result r = merge(m, url, NOW, MEMBER_ONLINE);
        inserted += r == MERGE_INSERTED;
    }
    CHECK_INT(inserted, N - N / 4);
    CHECK_INT(m->count, N + 1);
    CHECK(consistent(m));
    membership_free(m);
}

/* The change hook (engine.c's events): told of an insertion, of a status change and of a
 * removal (purge, or the limit: `dropped`), with the record before and after; of a
 * refutation (status unchanged); not of a lastUpdate that moves on, a record kept, a tie, the
 * own record refreshed. (Mutations: no call from set_record; a call for every update.) */
typedef struct change_log {
    char text[1024];
} change_log;

static void log_change(void *ctx, const char *url, size_t url_len, bool self, bool dropped, member_view before,
                       member_view after) {
    change_log *log = ctx;
    size_t len = strlen(log->text);
    snprintf(log->text + len, sizeof log->text - len, "%s%.*s%s%s %s->%s", len ? "; " : "", (int)url_len, url,
             self ? " (self)" : "", dropped ? " (dropped)" : "",
             !before.known ? "none" : before.status == MEMBER_ONLINE ? "online" : "offline",
             !after.known ? "none" : after.status == MEMBER_ONLINE ? "online" : "offline");
}

static void test_change_hook(void) {
    membership *m = fresh();
    change_log log = {""};
    m->change = log_change;
    m->change_ctx = &log;
    merge(m, PEER, T(1), MEMBER_ONLINE);
    merge(m, PEER, T(2), MEMBER_ONLINE);  /* newer, same status: no change of status */
    merge(m, PEER, T(2), MEMBER_OFFLINE); /* a tie: kept */
    merge(m, PEER, T(3), MEMBER_OFFLINE);
    merge(m, OTHER, T(3), MEMBER_OFFLINE); /* first learnt offline: told, the engine decides */
    membership_refresh_self(m, NOW + 5);
    merge(m, SELF, NOW + 10, MEMBER_OFFLINE); /* refuted */
    membership_set_self_online(m, false, NOW + 20);
    CHECK_STR(log.text, PEER " none->online; " PEER " online->offline; " OTHER " none->offline; "
                        SELF " (self) online->online; " SELF " (self) online->offline");
    log.text[0] = '\0';
    membership_purge(m, NOW + DAY + 100000);
    CHECK_CONTAINS(log.text, PEER " offline->none");
    CHECK_CONTAINS(log.text, OTHER " offline->none");
    CHECK_NOT_CONTAINS(log.text, "(self)");
    /* Over the limit: the dropped records are told as such. */
    log.text[0] = '\0';
    membership_set_self_online(m, true, NOW + 30);
    merge(m, PEER, NOW, MEMBER_ONLINE);
    merge(m, OTHER, NOW, MEMBER_ONLINE);
    log.text[0] = '\0';
    membership_set_limit(m, membership_wire_bound(strlen(SELF)) + membership_wire_bound(strlen(PEER)));
    CHECK_CONTAINS(log.text, "(dropped) online->none");
    membership_free(m);
}

int main(void) {
    test_change_hook();
    CHECK(membership_new("not a url", false, NOW, SKEW) == NULL);
    CHECK(membership_new("http://no-slash.test", false, NOW, SKEW) == NULL);
    test_no_resurrection();
    test_ties_keep();
    test_self_refutation();
    test_future_skew();
    test_old_timestamps_bootstrap();
    test_invalid_entries();
    test_purge();
    test_own_record();
    test_mark_offline();
    test_offline_claims();
    test_many_records();
    return check_finish("test_membership");
}
