/* The merge rules of PROTOCOL.md, one group of cases per rule; each case fails if its rule is
 * broken. Time is passed in, so every ordering is exact. */
#include "check.h"
#include "membership.h"

#include <stdlib.h>

#define SELF "http://self.test:3000/"
#define PEER "http://peer.test:3000/"
#define NOW 1795478695140LL
#define SKEW 300000LL

static membership *fresh(void) { return membership_new(SELF, false, NOW, SKEW); }

static member_entry entry(const char *url, int64_t last_update) {
    return (member_entry){.base_url = url, .url_len = strlen(url), .last_update = last_update,
                          .last_update_ok = true};
}

static merge_result merge(membership *m, const char *url, int64_t last_update, member_status s) {
    member_entry e = entry(url, last_update);
    return membership_merge(m, &e, s, NOW);
}

static member *find(membership *m, const char *url) { return membership_find(m, url, strlen(url)); }

/* Rule 3, and the improvement over the original library: an older online entry never brings
 * back a record held offline. */
static void test_no_resurrection(void) {
    membership *m = fresh();
    CHECK_INT(merge(m, PEER, 1000, MEMBER_ONLINE), MERGE_INSERTED);
    CHECK_INT(merge(m, PEER, 2000, MEMBER_OFFLINE), MERGE_UPDATED);
    CHECK_INT(find(m, PEER)->status, MEMBER_OFFLINE);

    CHECK_INT(merge(m, PEER, 1500, MEMBER_ONLINE), MERGE_KEPT); /* older: the dead stay dead */
    CHECK_INT(find(m, PEER)->status, MEMBER_OFFLINE);
    CHECK_INT(find(m, PEER)->last_update, 2000);

    CHECK_INT(merge(m, PEER, 2000, MEMBER_ONLINE), MERGE_KEPT); /* a tie keeps what is there */
    CHECK_INT(find(m, PEER)->status, MEMBER_OFFLINE);

    CHECK_INT(merge(m, PEER, 2001, MEMBER_ONLINE), MERGE_UPDATED); /* newer: back online */
    CHECK_INT(find(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(find(m, PEER)->last_update, 2001);

    /* And the other way: an older offline entry does not kill a newer online record. */
    CHECK_INT(merge(m, PEER, 1999, MEMBER_OFFLINE), MERGE_KEPT);
    CHECK_INT(find(m, PEER)->status, MEMBER_ONLINE);
    membership_free(m);
}

/* Rule 3, ties: the record, monitor flag included, stays as it is. */
static void test_ties_keep(void) {
    membership *m = fresh();
    member_entry e = entry(PEER, 5000);
    e.monitor = true;
    CHECK_INT(membership_merge(m, &e, MEMBER_ONLINE, NOW), MERGE_INSERTED);
    e.monitor = false;
    CHECK_INT(membership_merge(m, &e, MEMBER_OFFLINE, NOW), MERGE_KEPT);
    CHECK(find(m, PEER)->monitor);
    CHECK_INT(find(m, PEER)->status, MEMBER_ONLINE);
    membership_free(m);
}

/* Rule 2: records about this node never overwrite it; an offline claim at least as new is
 * refuted. */
static void test_self_refutation(void) {
    membership *m = fresh();
    member *self = find(m, SELF);
    CHECK(self == m->self);
    int64_t own = self->last_update;

    CHECK_INT(merge(m, SELF, own + 50, MEMBER_ONLINE), MERGE_SELF_IGNORED);
    CHECK_INT(self->last_update, own);

    CHECK_INT(merge(m, SELF, own - 1, MEMBER_OFFLINE), MERGE_SELF_IGNORED); /* older claim */
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(self->last_update, own);

    CHECK_INT(merge(m, SELF, own, MEMBER_OFFLINE), MERGE_SELF_REFUTED); /* as new: refuted */
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(self->last_update, own + 1); /* max(now, e + 1) with now == own */

    int64_t claim = NOW + 60000; /* a peer whose clock runs ahead, within the skew */
    CHECK_INT(merge(m, SELF, claim, MEMBER_OFFLINE), MERGE_SELF_REFUTED);
    CHECK_INT(self->last_update, claim + 1);
    CHECK_INT(self->status, MEMBER_ONLINE);
    CHECK_INT(m->stats.refutations, 2);

    /* A node that is offline on purpose does not argue. */
    CHECK(membership_set_self_online(m, false, NOW));
    int64_t gone = self->last_update;
    CHECK_INT(merge(m, SELF, gone + 10, MEMBER_OFFLINE), MERGE_SELF_IGNORED);
    CHECK_INT(self->status, MEMBER_OFFLINE);
    membership_free(m);
}

/* Rule 1, skew: one poisoned timestamp must not pin a record forever. */
static void test_future_skew(void) {
    membership *m = fresh();
    CHECK_INT(merge(m, PEER, NOW + SKEW + 1, MEMBER_ONLINE), MERGE_SKIPPED_FUTURE);
    CHECK(find(m, PEER) == NULL);
    CHECK_INT(m->stats.skipped_future, 1);
    CHECK_INT(merge(m, PEER, NOW + SKEW, MEMBER_ONLINE), MERGE_INSERTED); /* at the limit: fine */
    CHECK_INT(merge(m, PEER, NOW + 10 * SKEW, MEMBER_OFFLINE), MERGE_SKIPPED_FUTURE);
    CHECK_INT(find(m, PEER)->status, MEMBER_ONLINE);
    membership_free(m);
}

/* Rule 1, old timestamps are fine: hand-written master lists say "lastUpdate": 0. */
static void test_old_timestamps_bootstrap(void) {
    membership *m = fresh();
    CHECK_INT(merge(m, PEER, 0, MEMBER_ONLINE), MERGE_INSERTED);
    CHECK_INT(find(m, PEER)->status, MEMBER_ONLINE);
    CHECK_INT(merge(m, "http://older.test/", -5, MEMBER_ONLINE), MERGE_INSERTED);
    membership_free(m);
}

/* Rule 1, invalid entries: skipped, counted, nothing else touched. */
static void test_invalid_entries(void) {
    membership *m = fresh();
    char long_url[SHAZBOT_MAX_URL_LEN + 16];
    strcpy(long_url, "http://x.test/");
    while (strlen(long_url) < SHAZBOT_MAX_URL_LEN) strcat(long_url, "aaaaaaa/");
    const char *bad[] = {"ftp://x.test/", "http://x.test", "http:///", "http://", "",
                         "http://x y.test/", "http://x\".test/", "http://x\\.test/", "x.test/",
                         "https://", "http://x.test/\n", "HTTP://x.test/", long_url};
    size_t count = sizeof bad / sizeof *bad;
    for (size_t i = 0; i < count; i++) CHECK_INT(merge(m, bad[i], 1000, MEMBER_ONLINE), MERGE_SKIPPED_URL);
    CHECK_INT(m->stats.skipped_url, count);
    CHECK_INT(m->count, 1);

    member_entry e = entry(PEER, 0);
    e.last_update_ok = false;
    CHECK_INT(membership_merge(m, &e, MEMBER_ONLINE, NOW), MERGE_SKIPPED_TIME);
    CHECK_INT(m->stats.skipped_time, 1);
    CHECK(find(m, PEER) == NULL);

    /* The rest of a message still merges. */
    CHECK_INT(merge(m, PEER, 1000, MEMBER_ONLINE), MERGE_INSERTED);
    CHECK(membership_url_valid("https://[::1]:8443/base/", 24));
    membership_free(m);
}

/* Rule 4: offline records older than 24 h go; nothing else does. */
static void test_purge(void) {
    membership *m = fresh();
    int64_t day = SHAZBOT_OFFLINE_RETENTION_MS;
    merge(m, "http://old-offline.test/", NOW - day - 1, MEMBER_OFFLINE);
    merge(m, "http://young-offline.test/", NOW - day + 1000, MEMBER_OFFLINE);
    merge(m, "http://old-online.test/", NOW - 2 * day, MEMBER_ONLINE);
    CHECK(membership_set_self_online(m, false, NOW - 2 * day)); /* even an old self stays */
    CHECK_INT(membership_purge(m, NOW), 1);
    CHECK(find(m, "http://old-offline.test/") == NULL);
    CHECK(find(m, "http://young-offline.test/") != NULL);
    CHECK(find(m, "http://old-online.test/") != NULL);
    CHECK(find(m, SELF) == m->self);
    CHECK_INT(m->count, 3);
    membership_free(m);
}

static void test_own_record(void) {
    membership *m = fresh();
    CHECK(!membership_set_self_online(m, true, NOW + 5)); /* already online: no change */
    CHECK_INT(m->self->last_update, NOW);
    membership_refresh_self(m, NOW + 100);
    CHECK_INT(m->self->last_update, NOW + 100);
    membership_refresh_self(m, NOW + 50); /* never backwards */
    CHECK_INT(m->self->last_update, NOW + 100);
    CHECK(membership_set_self_online(m, false, NOW + 200));
    CHECK_INT(m->self->status, MEMBER_OFFLINE);
    CHECK_INT(m->self->last_update, NOW + 200);
    membership_refresh_self(m, NOW + 300); /* offline: not refreshed */
    CHECK_INT(m->self->last_update, NOW + 200);
    CHECK(membership_set_self_online(m, true, NOW + 150)); /* clock went back: still forward */
    CHECK(m->self->last_update > NOW + 200);
    membership_free(m);
}

static void test_mark_offline(void) {
    membership *m = fresh();
    merge(m, PEER, NOW - 10, MEMBER_ONLINE);
    CHECK(membership_mark_offline(m, PEER, strlen(PEER), NOW));
    CHECK_INT(find(m, PEER)->status, MEMBER_OFFLINE);
    CHECK_INT(find(m, PEER)->last_update, NOW);
    CHECK(!membership_mark_offline(m, SELF, strlen(SELF), NOW));
    CHECK(!membership_mark_offline(m, "http://unknown.test/", 20, NOW));
    /* The stale online entry of the failed peer, still held by others, is refused. */
    CHECK_INT(merge(m, PEER, NOW - 10, MEMBER_ONLINE), MERGE_KEPT);
    membership_free(m);
}

/* Many records: the hash table grows, finds stay right through removals. */
static void test_many_records(void) {
    membership *m = fresh();
    char url[64];
    int inserted = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        bool odd = i % 2;
        inserted += merge(m, url, odd ? NOW - SHAZBOT_OFFLINE_RETENTION_MS - 1 : NOW,
                          odd ? MEMBER_OFFLINE : MEMBER_ONLINE) == MERGE_INSERTED;
    }
    CHECK_INT(inserted, 10000);
    CHECK_INT(m->count, 10001);
    CHECK_INT(membership_purge(m, NOW), 5000);
    CHECK_INT(membership_count(m, MEMBER_ONLINE), 5001);
    int found = 0, gone = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(url, sizeof url, "http://node-%05d.test:3000/", i);
        member *r = find(m, url);
        if (i % 2) gone += r == NULL;
        else found += r != NULL && r == m->members[r->index];
    }
    CHECK_INT(found, 5000);
    CHECK_INT(gone, 5000);
    membership_free(m);
}

int main(void) {
    CHECK(membership_new("not a url", false, NOW, SKEW) == NULL);
    test_no_resurrection();
    test_ties_keep();
    test_self_refutation();
    test_future_skew();
    test_old_timestamps_bootstrap();
    test_invalid_entries();
    test_purge();
    test_own_record();
    test_mark_offline();
    test_many_records();
    return check_finish("test_membership");
}
