/* wire: what is accepted, what is refused and how the refusal names the field, that the state
 * written out reads back the same, and that the cached fragments follow the records. */
#include "check.h"
#include "wire.h"

#include <stdlib.h>

#define NOW 1795478695140LL
#define SKEW 300000LL

static bool parse(const char *body, wire_kind kind, wire_message *msg, char *err, size_t err_len) {
    return wire_parse(body, strlen(body), kind, msg, err, err_len);
}

/* Parses a body that must be accepted; on failure says why. */
static bool accept_body(const char *body, wire_kind kind, wire_message *msg, int line) {
    char err[256];
    bool ok = parse(body, kind, msg, err, sizeof err);
    if (!check_that(ok, __FILE__, line, "accepted"))
        fprintf(stderr, "    body %s\n    error \"%s\"\n", body, err);
    return ok;
}
#define ACCEPT(body, kind, msg) accept_body((body), (kind), (msg), __LINE__)

static bool starts_with(const char *s, const char *prefix) {
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static member_entry entry(const char *url, int64_t last_update) {
    return (member_entry){.base_url = url, .url_len = strlen(url), .last_update = last_update,
                          .last_update_ok = true};
}

static void test_accepts(void) {
    wire_message msg;
    const char *body =
        "{\"message\":\"gossip\",\"extra\":{\"deep\":[1,[2,{\"x\":null}]]},"
        "\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":5,\"monitor\":true,\"zone\":[1]},"
        "{\"baseUrl\":\"http://b.test/\",\"lastUpdate\":null,\"monitor\":null},"
        "{\"baseUrl\":\"http://c.test/\",\"lastUpdate\":1.7e12},"
        "{\"baseUrl\":\"http://d.test/\",\"lastUpdate\":1.5}],"
        "\"offline\":[{\"baseUrl\":\"http://e.test/\",\"lastUpdate\":-3,\"monitor\":false}]}";
    if (ACCEPT(body, WIRE_GOSSIP, &msg)) {
        CHECK_INT(msg.count, 5);
        CHECK_STR(msg.entries[0].e.base_url, "http://a.test/");
        CHECK_INT(msg.entries[0].e.url_len, 14);
        CHECK(msg.entries[0].e.monitor);
        CHECK(msg.entries[0].e.last_update_ok);
        CHECK_INT(msg.entries[0].e.last_update, 5);
        CHECK_INT(msg.entries[0].status, MEMBER_ONLINE);
        CHECK(!msg.entries[1].e.monitor);          /* null monitor: false */
        CHECK(!msg.entries[1].e.last_update_ok);   /* JavaScript's NaN */
        CHECK(msg.entries[2].e.last_update_ok);    /* 1.7e12 denotes an integer */
        CHECK_INT(msg.entries[2].e.last_update, 1700000000000LL);
        CHECK(!msg.entries[2].e.monitor);          /* missing monitor: false */
        CHECK(!msg.entries[3].e.last_update_ok);   /* a fraction: skipped later, not refused */
        CHECK_STR(msg.entries[3].e.base_url, "http://d.test/");
        CHECK_INT(msg.entries[4].status, MEMBER_OFFLINE);
        CHECK_INT(msg.entries[4].e.last_update, -3);
        CHECK(msg.entries[4].e.last_update_ok);
        wire_message_free(&msg);
    }

    /* offline may be absent; empty lists are fine. */
    if (ACCEPT("{\"online\":[]}", WIRE_LIST, &msg)) {
        CHECK_INT(msg.count, 0);
        wire_message_free(&msg);
    }
    if (ACCEPT("{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":1}]}",
               WIRE_GOSSIP, &msg)) {
        CHECK_INT(msg.count, 1);
        wire_message_free(&msg);
    }
    if (ACCEPT(" {\"offline\":[],\"online\":[]} \n", WIRE_LIST, &msg)) wire_message_free(&msg);
    /* A list may carry the gossip message word: a gossip answer is a list too. */
    if (ACCEPT("{\"message\":\"gossip\",\"online\":[]}", WIRE_LIST, &msg)) wire_message_free(&msg);

    /* Control messages, both ways, unknown keys (an offline list among them) skipped. */
    if (ACCEPT("{\"message\":\"control\",\"online\":false}", WIRE_CONTROL, &msg)) {
        CHECK(!msg.control_online);
        CHECK_INT(msg.count, 0);
        wire_message_free(&msg);
    }
    if (ACCEPT("{\"online\":true,\"message\":\"control\",\"why\":{\"a\":[1,{\"b\":null}]}}",
               WIRE_CONTROL, &msg)) {
        CHECK(msg.control_online);
        wire_message_free(&msg);
    }
    if (ACCEPT("{\"message\":\"control\",\"online\":true,\"offline\":[{\"baseUrl\":\"http://a.test/\"}]}",
               WIRE_CONTROL, &msg)) {
        CHECK(msg.control_online);
        CHECK_INT(msg.count, 0);
        wire_message_free(&msg);
    }
}

/* Unknown keys are skipped whole at every level, whatever they hold: even keys named like the
 * protocol's inside them mean nothing. */
static void test_unknown_keys(void) {
    wire_message msg;
    const char *body =
        "{\"version\":2,\"flags\":[true,false,null],\"note\":\"hi\","
        "\"shadow\":{\"online\":[{\"baseUrl\":\"http://evil.test/\",\"lastUpdate\":1}],\"message\":5},"
        "\"message\":\"gossip\","
        "\"online\":[{\"zone\":{\"baseUrl\":5,\"monitor\":\"x\",\"lastUpdate\":\"y\",\"deep\":[[[{}]]]},"
        "\"baseUrl\":\"http://a.test/\",\"tags\":[\"a\",{\"online\":[1]}],\"lastUpdate\":7,\"n\":1.5e999}],"
        "\"offline\":[],\"more\":[[{\"offline\":{}}]]}";
    if (ACCEPT(body, WIRE_GOSSIP, &msg)) {
        CHECK_INT(msg.count, 1);
        CHECK_STR(msg.entries[0].e.base_url, "http://a.test/");
        CHECK_INT(msg.entries[0].e.last_update, 7);
        CHECK(msg.entries[0].e.last_update_ok);
        CHECK(!msg.entries[0].e.monitor);
        wire_message_free(&msg);
    }
    /* In a list too, and with "message" holding anything a list does not check. */
    if (ACCEPT("{\"online\":[],\"x\":{\"y\":{\"z\":[]}}}", WIRE_LIST, &msg)) wire_message_free(&msg);
}

static void test_last_update_forms(void) {
    static const struct {
        const char *text;
        bool ok;
        int64_t value;
    } cases[] = {
        {"0", true, 0},
        {"1795478695140", true, 1795478695140LL},
        {"-3", true, -3},
        {"1.7e12", true, 1700000000000LL},
        {"1.7E+12", true, 1700000000000LL},
        {"5.0", true, 5},
        {"1e3", true, 1000},
        {"-2e0", true, -2},
        {"123456789012345678", true, 123456789012345678LL},  /* 18 digits: the fast path */
        {"1234567890123456789", true, 1234567890123456789LL}, /* 19 digits: strtoll */
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"1.5", false, 0},
        {"0.1", false, 0},
        {"-2.5e0", false, 0},
        {"5e-1", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":%s}]}", cases[i].text);
        wire_message msg;
        if (!ACCEPT(body, WIRE_LIST, &msg)) continue;
        if (!check_that(msg.count == 1 && msg.entries[0].e.last_update_ok == cases[i].ok &&
                            (!cases[i].ok || msg.entries[0].e.last_update == cases[i].value),
                        __FILE__, __LINE__, "lastUpdate read"))
            fprintf(stderr, "    lastUpdate %s: ok %d, value %lld\n", cases[i].text,
                    (int)msg.entries[0].e.last_update_ok, (long long)msg.entries[0].e.last_update);
        wire_message_free(&msg);
    }
    /* Missing lastUpdate: not a finite integer either, so the entry will be skipped. */
    wire_message msg;
    if (ACCEPT("{\"online\":[{\"baseUrl\":\"http://a.test/\",\"monitor\":true}]}", WIRE_LIST, &msg)) {
        CHECK(!msg.entries[0].e.last_update_ok);
        CHECK(msg.entries[0].e.monitor);
        wire_message_free(&msg);
    }
}

/* Strings are decoded (escapes), every entry's URL stays right when the arena grows. */
static void test_urls(void) {
    wire_message msg;
    if (ACCEPT("{\"online\":[{\"baseUrl\":\"http:\\/\\/a.test\\/\\u0078\\/\",\"lastUpdate\":1},"
               "{\"baseUrl\":\"http://first.test/\",\"baseUrl\":\"http://second.test/\",\"lastUpdate\":2}]}",
               WIRE_LIST, &msg)) {
        CHECK_STR(msg.entries[0].e.base_url, "http://a.test/x/");
        CHECK_INT(msg.entries[0].e.url_len, 16);
        CHECK_STR(msg.entries[1].e.base_url, "http://first.test/"); /* duplicate key: the first */
        wire_message_free(&msg);
    }
    /* An escaped NUL reaches membership with its length, which refuses it. */
    if (ACCEPT("{\"online\":[{\"baseUrl\":\"http://a.test/\\u0000/\",\"lastUpdate\":1}]}", WIRE_LIST, &msg)) {
        CHECK_INT(msg.entries[0].e.url_len, 16);
        CHECK(!membership_url_valid(msg.entries[0].e.base_url, msg.entries[0].e.url_len));
        wire_message_free(&msg);
    }

    enum { N = 2000 };
    buf body = {0};
    buf_add_str(&body, "{\"message\":\"gossip\",\"online\":[");
    for (int i = 0; i < N; i++)
        buf_printf(&body, "%s{\"baseUrl\":\"http://node-%04d.example.test:3000/\",\"lastUpdate\":%d}",
                   i ? "," : "", i, i);
    buf_add_str(&body, "],\"offline\":[{\"baseUrl\":\"http://last.test/\",\"lastUpdate\":9}]}");
    char err[256];
    bool ok = wire_parse(body.data, body.len, WIRE_GOSSIP, &msg, err, sizeof err);
    CHECK(ok);
    if (ok) {
        CHECK_INT(msg.count, N + 1);
        int right = 0;
        for (int i = 0; i < N; i++) {
            char want[64];
            snprintf(want, sizeof want, "http://node-%04d.example.test:3000/", i);
            right += strcmp(msg.entries[i].e.base_url, want) == 0 &&
                     msg.entries[i].e.url_len == strlen(want) && msg.entries[i].e.last_update == i &&
                     msg.entries[i].status == MEMBER_ONLINE;
        }
        CHECK_INT(right, N);
        CHECK_STR(msg.entries[N].e.base_url, "http://last.test/");
        CHECK_INT(msg.entries[N].status, MEMBER_OFFLINE);
        wire_message_free(&msg);
    }
    buf_free(&body);
}

static void test_refuses(void) {
    static const struct {
        const char *body;
        wire_kind kind;
        const char *error_mentions;
    } cases[] = {
        /* Not JSON at all. */
        {"", WIRE_GOSSIP, "not valid JSON"},
        {"   ", WIRE_LIST, "not valid JSON"},
        {"{not json", WIRE_GOSSIP, "not valid JSON"},
        {"{\"message\":\"gossip\",\"online\":[", WIRE_GOSSIP, "not valid JSON"},
        {"{\"message\":\"gossip\",\"online\":[]} x", WIRE_GOSSIP, "not valid JSON"},
        {"{\"message\":\"gossip\",\"online\":[]}{}", WIRE_GOSSIP, "not valid JSON"},
        {"{\"online\":[],}", WIRE_LIST, "not valid JSON"},
        {"{'online':[]}", WIRE_LIST, "not valid JSON"},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":NaN}]}", WIRE_LIST, "not valid JSON"},
        /* Invalid UTF-8: in a value, in a key, in a skipped value. */
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://\xff.test/\"}]}", WIRE_GOSSIP, "not valid JSON"},
        {"{\"online\":[],\"\xc3\x28\":1}", WIRE_LIST, "not valid JSON"},
        {"{\"online\":[],\"x\":{\"y\":\"a\x80" "b\"}}", WIRE_LIST, "not valid JSON"},
        /* Not an object at the top. */
        {"[]", WIRE_GOSSIP, "body: expected a JSON object"},
        {"\"gossip\"", WIRE_GOSSIP, "body: expected a JSON object"},
        {"42", WIRE_LIST, "body: expected a JSON object"},
        {"null", WIRE_LIST, "body: expected a JSON object"},
        {"true", WIRE_CONTROL, "body: expected a JSON object"},
        /* The lists. */
        {"{}", WIRE_LIST, "online: missing"},
        {"{\"offline\":[]}", WIRE_LIST, "online: missing"},
        {"{\"message\":\"gossip\"}", WIRE_GOSSIP, "online: missing"},
        {"{\"message\":\"gossip\",\"online\":{}}", WIRE_GOSSIP, "online: expected an array"},
        {"{\"online\":\"http://a.test/\"}", WIRE_LIST, "online: expected an array, found a string"},
        {"{\"online\":null}", WIRE_LIST, "online: expected an array, found null"},
        {"{\"online\":3}", WIRE_LIST, "online: expected an array, found a number"},
        {"{\"online\":true}", WIRE_LIST, "online: expected an array, found a boolean"},
        {"{\"message\":\"gossip\",\"online\":[],\"offline\":7}", WIRE_GOSSIP, "offline: expected an array"},
        {"{\"online\":[],\"offline\":{}}", WIRE_LIST, "offline: expected an array, found an object"},
        {"{\"message\":\"gossip\",\"online\":[5]}", WIRE_GOSSIP, "online[0]: expected an object, found a number"},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\"},[]]}", WIRE_LIST, "online[1]: expected an object, found an array"},
        {"{\"online\":[\"http://a.test/\"]}", WIRE_LIST, "online[0]: expected an object, found a string"},
        {"{\"online\":[null]}", WIRE_LIST, "online[0]: expected an object, found null"},
        {"{\"online\":[],\"offline\":[{\"baseUrl\":\"http://a.test/\"},{\"baseUrl\":\"http://b.test/\"},true]}",
         WIRE_LIST, "offline[2]: expected an object, found a boolean"},
        /* The message word. */
        {"{\"online\":[]}", WIRE_GOSSIP, "message: missing"},
        {"{\"message\":\"hello\",\"online\":[]}", WIRE_GOSSIP, "message: expected \"gossip\""},
        {"{\"message\":\"control\",\"online\":[]}", WIRE_GOSSIP, "message: expected \"gossip\""},
        {"{\"message\":\"Gossip\",\"online\":[]}", WIRE_GOSSIP, "message: expected \"gossip\""},
        {"{\"message\":5,\"online\":[]}", WIRE_GOSSIP, "message: expected a string, found a number"},
        {"{\"message\":[\"gossip\"],\"online\":[]}", WIRE_GOSSIP, "message: expected a string, found an array"},
        {"{\"online\":true}", WIRE_CONTROL, "message: missing"},
        {"{\"message\":\"gossip\",\"online\":true}", WIRE_CONTROL, "message: expected \"control\""},
        {"{\"message\":null,\"online\":true}", WIRE_CONTROL, "message: expected a string, found null"},
        /* Control's online flag. */
        {"{\"message\":\"control\"}", WIRE_CONTROL, "online: missing"},
        {"{\"message\":\"control\",\"online\":\"no\"}", WIRE_CONTROL, "online: expected a boolean, found a string"},
        {"{\"message\":\"control\",\"online\":1}", WIRE_CONTROL, "online: expected a boolean, found a number"},
        {"{\"message\":\"control\",\"online\":null}", WIRE_CONTROL, "online: expected a boolean, found null"},
        {"{\"message\":\"control\",\"online\":[]}", WIRE_CONTROL, "online: expected a boolean, found an array"},
        {"{\"message\":\"control\",\"online\":{}}", WIRE_CONTROL, "online: expected a boolean, found an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wire_message msg;
        char err[256];
        bool ok = parse(cases[i].body, cases[i].kind, &msg, err, sizeof err);
        if (!check_that(!ok, __FILE__, __LINE__, "refused")) {
            fprintf(stderr, "    body %s\n", cases[i].body);
            wire_message_free(&msg);
            continue;
        }
        if (!check_that(strstr(err, cases[i].error_mentions) != NULL, __FILE__, __LINE__,
                        "error names what was wrong"))
            fprintf(stderr, "    body %s\n    error \"%s\"\n    want \"%s\"\n", cases[i].body, err,
                    cases[i].error_mentions);
        CHECK_NOT_CONTAINS(err, "\n"); /* one line, fit for a log and an error answer */
        /* Nothing half-parsed is handed out. */
        CHECK(msg.entries == NULL && msg.count == 0 && msg.urls == NULL);
    }

    /* A short error buffer is filled, not overrun. */
    wire_message msg;
    char small[12];
    memset(small, 'x', sizeof small);
    CHECK(!parse("{\"online\":[5]}", WIRE_LIST, &msg, small, 8));
    CHECK_INT(strlen(small), 7);
    CHECK_INT(small[8], 'x');
    CHECK(!parse("{x", WIRE_LIST, &msg, small, 8));
    CHECK_INT(strlen(small), 7);
    CHECK_INT(small[8], 'x');
}

/* Nesting: refused beyond the limit (without reading on), accepted up to it. */
static void test_nesting(void) {
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    strcpy(deep, "{\"message\":\"gossip\",\"online\":[],\"x\":");
    size_t n = strlen(deep);
    memset(deep + n, '[', depth);
    memset(deep + n + depth, ']', depth);
    strcpy(deep + n + 2 * depth, "}");
    wire_message msg;
    char err[256];
    CHECK(!parse(deep, WIRE_GOSSIP, &msg, err, sizeof err));
    CHECK_CONTAINS(err, "nested deeper");

    /* The same inside a record, with objects. */
    buf b = {0};
    buf_add_str(&b, "{\"online\":[{\"baseUrl\":\"http://a.test/\",\"x\":");
    for (int i = 0; i < 100; i++) buf_add_str(&b, "{\"k\":");
    buf_add_str(&b, "1");
    for (int i = 0; i < 100; i++) buf_add_str(&b, "}");
    buf_add_str(&b, "}]}");
    CHECK(!wire_parse(b.data, b.len, WIRE_LIST, &msg, err, sizeof err));
    CHECK_CONTAINS(err, "nested deeper");
    buf_free(&b);

    /* Find the limit: the deepest body accepted is one level short of the first refused. */
    int accepted_max = 0, refused_min = 0;
    for (int levels = 1; levels < 200 && !refused_min; levels++) {
        /* top object (1) + `levels` arrays under an unknown key */
        n = strlen("{\"online\":[],\"x\":");
        memcpy(deep, "{\"online\":[],\"x\":", n);
        memset(deep + n, '[', (size_t)levels);
        memset(deep + n + levels, ']', (size_t)levels);
        strcpy(deep + n + 2 * levels, "}");
        if (parse(deep, WIRE_LIST, &msg, err, sizeof err)) {
            accepted_max = 1 + levels;
            wire_message_free(&msg);
        } else {
            CHECK_CONTAINS(err, "nested deeper");
            refused_min = 1 + levels;
        }
    }
    CHECK(accepted_max >= 8); /* records sit at depth 3: room to spare for extensions */
    CHECK_INT(refused_min, accepted_max + 1);
    free(deep);
}

/* Parses `text` as `kind` and checks that it holds exactly the records of `m` of the lists
 * that `flags` asks for. */
static void check_matches(membership *m, const buf *text, wire_kind kind, unsigned flags, int line) {
    wire_message msg;
    char err[256];
    if (!check_that(wire_parse(text->data, text->len, kind, &msg, err, sizeof err), __FILE__, line,
                    "written list parses")) {
        fprintf(stderr, "    %s\n    %s\n", text->data, err);
        return;
    }
    size_t want = membership_count(m, MEMBER_ONLINE) +
                  (flags & WIRE_WITH_OFFLINE ? membership_count(m, MEMBER_OFFLINE) : 0);
    check_that(msg.count == want, __FILE__, line, "as many records as the state");
    size_t same = 0;
    for (size_t i = 0; i < msg.count; i++) {
        const wire_entry *we = &msg.entries[i];
        member *r = membership_find(m, we->e.base_url, we->e.url_len);
        same += r && we->e.last_update_ok && r->last_update == we->e.last_update &&
                r->monitor == we->e.monitor && r->status == we->status;
    }
    if (!check_that(same == msg.count, __FILE__, line, "every record read back as it is"))
        fprintf(stderr, "    %zu of %zu in %s\n", same, msg.count, text->data);
    wire_message_free(&msg);
}

static void test_round_trip(void) {
    membership *m = membership_new("http://self.test/", true, 1000, SKEW);
    member_entry a = entry("http://a.test/", 500);
    member_entry b = entry("https://b.test:8443/x/", 600);
    member_entry c = entry("http://[::1]:3000/", 0);
    c.monitor = true;
    membership_merge(m, &a, MEMBER_ONLINE, 1000);
    membership_merge(m, &b, MEMBER_OFFLINE, 1000);
    membership_merge(m, &c, MEMBER_ONLINE, 1000);

    static const unsigned variants[] = {0, WIRE_WITH_OFFLINE, WIRE_WITH_MESSAGE,
                                        WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE};
    for (size_t v = 0; v < 4; v++) {
        unsigned flags = variants[v];
        buf out = {0};
        wire_write_list(&out, m, flags);
        CHECK(!out.failed);
        check_matches(m, &out, flags & WIRE_WITH_MESSAGE ? WIRE_GOSSIP : WIRE_LIST, flags, __LINE__);
        /* Every variant reads as a list; only those with the word read as gossip. */
        check_matches(m, &out, WIRE_LIST, flags, __LINE__);
        if (flags & WIRE_WITH_OFFLINE) CHECK_CONTAINS(out.data, "\"offline\":[");
        else CHECK_NOT_CONTAINS(out.data, "offline");
        if (flags & WIRE_WITH_MESSAGE) CHECK(starts_with(out.data, "{\"message\":\"gossip\","));
        else {
            CHECK_NOT_CONTAINS(out.data, "message");
            wire_message msg;
            char err[256];
            CHECK(!wire_parse(out.data, out.len, WIRE_GOSSIP, &msg, err, sizeof err));
        }
        /* Written twice (from the caches the first write filled): the same bytes. */
        buf again = {0};
        wire_write_list(&again, m, flags);
        CHECK_STR(again.data, out.data);
        buf_free(&again);
        buf_free(&out);
    }

    /* The exact form, own record first. */
    buf out = {0};
    wire_write_list(&out, m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    CHECK_STR(out.data, "{\"message\":\"gossip\",\"online\":["
                        "{\"baseUrl\":\"http://self.test/\",\"monitor\":true,\"lastUpdate\":1000},"
                        "{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":500},"
                        "{\"baseUrl\":\"http://[::1]:3000/\",\"monitor\":true,\"lastUpdate\":0}],"
                        "\"offline\":[{\"baseUrl\":\"https://b.test:8443/x/\",\"monitor\":false,\"lastUpdate\":600}]}");
    buf_free(&out);
    membership_free(m);

    /* Edge shapes: only the own record, online then offline. */
    m = membership_new("http://self.test/", false, 7, SKEW);
    wire_write_list(&out, m, 0);
    CHECK_STR(out.data, "{\"online\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":false,\"lastUpdate\":7}]}");
    buf_free(&out);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_STR(out.data, "{\"online\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":false,\"lastUpdate\":7}],"
                        "\"offline\":[]}");
    buf_free(&out);
    membership_set_self_online(m, false, 8);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_STR(out.data, "{\"online\":[],\"offline\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":false,\"lastUpdate\":8}]}");
    check_matches(m, &out, WIRE_LIST, WIRE_WITH_OFFLINE, __LINE__);
    buf_free(&out);
    /* Offline self plus an offline peer: a comma between them. */
    member_entry p = entry("http://p.test/", 3);
    membership_merge(m, &p, MEMBER_OFFLINE, 8);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_CONTAINS(out.data, "\"offline\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":false,\"lastUpdate\":8},"
                             "{\"baseUrl\":\"http://p.test/\",\"monitor\":false,\"lastUpdate\":3}]}");
    check_matches(m, &out, WIRE_LIST, WIRE_WITH_OFFLINE, __LINE__);
    buf_free(&out);
    membership_free(m);
}

/* The cached fragments (each record's, and the joined peers of each list) follow every change
 * a record can go through. */
static void test_cache_invalidation(void) {
    membership *m = membership_new("http://self.test/", true, 1000, SKEW);
    member_entry a = entry("http://a.test/", 500);
    member_entry b = entry("http://b.test/", 600);
    membership_merge(m, &a, MEMBER_ONLINE, 1000);
    membership_merge(m, &b, MEMBER_OFFLINE, 1000);

    buf out = {0};
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_CONTAINS(out.data, "{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":500}");
    CHECK_CONTAINS(out.data, "{\"baseUrl\":\"http://self.test/\",\"monitor\":true,\"lastUpdate\":1000}");
    buf_free(&out);
    size_t len;
    CHECK_STR(wire_member_json(membership_find(m, "http://a.test/", 14), &len),
              "{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":500}");
    CHECK_INT(len, strlen("{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":500}"));

    /* A newer entry, moving a to the offline list. */
    a.last_update = 700;
    CHECK_INT(membership_merge(m, &a, MEMBER_OFFLINE, 1000), MERGE_UPDATED);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_CONTAINS(out.data, "\"offline\":[{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":700},"
                             "{\"baseUrl\":\"http://b.test/\",\"monitor\":false,\"lastUpdate\":600}]");
    CHECK_NOT_CONTAINS(out.data, "\"lastUpdate\":500");
    CHECK(strstr(out.data, "\"online\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":true,\"lastUpdate\":1000}]") != NULL);
    buf_free(&out);

    /* A newer entry in the same list, changing the monitor flag. */
    b.last_update = 800;
    b.monitor = true;
    CHECK_INT(membership_merge(m, &b, MEMBER_OFFLINE, 1000), MERGE_UPDATED);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_CONTAINS(out.data, "{\"baseUrl\":\"http://b.test/\",\"monitor\":true,\"lastUpdate\":800}");
    CHECK_NOT_CONTAINS(out.data, "\"lastUpdate\":600");
    buf_free(&out);

    /* A tie changes nothing, and writes the same. */
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    buf before = out;
    out = (buf){0};
    b.monitor = false;
    CHECK_INT(membership_merge(m, &b, MEMBER_ONLINE, 1000), MERGE_KEPT);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_STR(out.data, before.data);
    buf_free(&before);
    buf_free(&out);

    /* The own record: refreshed, refuted, moved offline and back. */
    membership_refresh_self(m, 2000);
    wire_write_list(&out, m, 0);
    CHECK_STR(out.data, "{\"online\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":true,\"lastUpdate\":2000}]}");
    buf_free(&out);
    member_entry claim = entry("http://self.test/", 2500);
    CHECK_INT(membership_merge(m, &claim, MEMBER_OFFLINE, 2100), MERGE_SELF_REFUTED);
    wire_write_list(&out, m, 0);
    CHECK_CONTAINS(out.data, "\"lastUpdate\":2501");
    buf_free(&out);
    membership_set_self_online(m, false, 3000);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK(starts_with(out.data, "{\"online\":[],\"offline\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":true,"
                                "\"lastUpdate\":3000},"));
    buf_free(&out);
    membership_set_self_online(m, true, 3100);
    wire_write_list(&out, m, 0);
    CHECK_STR(out.data, "{\"online\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":true,\"lastUpdate\":3100}]}");
    buf_free(&out);

    /* A new record, a record marked offline, a purge. */
    member_entry c = entry("http://c.test/", 900);
    CHECK_INT(membership_merge(m, &c, MEMBER_ONLINE, 3100), MERGE_INSERTED);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_CONTAINS(out.data, "\"online\":[{\"baseUrl\":\"http://self.test/\",\"monitor\":true,\"lastUpdate\":3100},"
                             "{\"baseUrl\":\"http://c.test/\",\"monitor\":false,\"lastUpdate\":900}]");
    buf_free(&out);
    CHECK(membership_mark_offline(m, "http://c.test/", 14, 4000));
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_STR(strstr(out.data, "\"offline\":"),
              "\"offline\":[{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":700},"
              "{\"baseUrl\":\"http://b.test/\",\"monitor\":true,\"lastUpdate\":800},"
              "{\"baseUrl\":\"http://c.test/\",\"monitor\":false,\"lastUpdate\":4000}]}");
    check_matches(m, &out, WIRE_LIST, WIRE_WITH_OFFLINE, __LINE__);
    buf_free(&out);
    CHECK_INT(membership_purge(m, 800 + SHAZBOT_OFFLINE_RETENTION_MS + 1), 2); /* a and b */
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_NOT_CONTAINS(out.data, "a.test");
    CHECK_NOT_CONTAINS(out.data, "b.test");
    CHECK_CONTAINS(out.data, "c.test");
    check_matches(m, &out, WIRE_LIST, WIRE_WITH_OFFLINE, __LINE__);
    buf_free(&out);
    membership_free(m);
}

/* Records with a field of the wrong type, or without a baseUrl (PROTOCOL.md merge rule 1, as
 * clarified): the message is accepted, and the odd record is skipped and counted when merged
 * (a monitor that is not a boolean reads as false). A node of the original library relays
 * such a record as it got it; refusing the whole message cut every link to it. */
typedef enum { ODD_URL, ODD_TIME, ODD_MONITOR } odd_kind;

static void test_odd_records_skipped(void) {
    static const struct {
        const char *body;
        wire_kind kind;
        odd_kind odd;
    } cases[] = {
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":1},"
         "{\"baseUrl\":\"http://b.test/\",\"monitor\":\"yes\",\"lastUpdate\":1}]}", WIRE_GOSSIP, ODD_MONITOR},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"monitor\":1,\"lastUpdate\":1}]}", WIRE_LIST, ODD_MONITOR},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"monitor\":{},\"lastUpdate\":1}]}", WIRE_LIST, ODD_MONITOR},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":5}]}", WIRE_GOSSIP, ODD_URL},
        {"{\"online\":[{\"baseUrl\":null}]}", WIRE_LIST, ODD_URL},
        {"{\"online\":[{\"baseUrl\":[\"http://a.test/\"]}]}", WIRE_LIST, ODD_URL},
        {"{\"online\":[{\"baseUrl\":true}]}", WIRE_LIST, ODD_URL},
        {"{\"message\":\"gossip\",\"online\":[{\"lastUpdate\":5}]}", WIRE_GOSSIP, ODD_URL},
        {"{\"online\":[],\"offline\":[{\"baseUrl\":\"http://a.test/\"},{}]}", WIRE_LIST, ODD_URL},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":\"5\"}]}", WIRE_GOSSIP, ODD_TIME},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":true}]}", WIRE_LIST, ODD_TIME},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":[1]}]}", WIRE_LIST, ODD_TIME},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":1e400}]}", WIRE_GOSSIP, ODD_TIME},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":-1e400}]}", WIRE_LIST, ODD_TIME},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":99999999999999999999999}]}", WIRE_GOSSIP, ODD_TIME},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":9223372036854775808}]}", WIRE_LIST, ODD_TIME},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":-9223372036854775809}]}", WIRE_LIST, ODD_TIME},
        {"{\"online\":[],\"offline\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":1e19}]}", WIRE_LIST, ODD_TIME},
        {"{\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":"
         "1000000000000000000000000000000000000000000000000000000000000000000000000}]}", WIRE_LIST, ODD_TIME},
        {"{\"online\":[{\"baseUrl\":{\"a\":[1,{\"b\":2}]},\"lastUpdate\":1}]}", WIRE_LIST, ODD_URL},
        {"{\"online\":[{\"baseUrl\":7,\"baseUrl\":\"http://a.test/\",\"lastUpdate\":1}]}", WIRE_LIST, ODD_URL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wire_message msg;
        char err[256];
        if (!check_that(parse(cases[i].body, cases[i].kind, &msg, err, sizeof err), __FILE__, __LINE__, "accepted")) {
            fprintf(stderr, "    body %s\n    error \"%s\"\n", cases[i].body, err);
            continue;
        }
        membership *m = membership_new("http://self.test/", false, NOW, SKEW);
        membership_merge_all(m, msg.entries, msg.count, NOW);
        const member *a = membership_find(m, "http://a.test/", 14);
        const membership_stats *st = &m->stats;
        bool any_monitor = false;
        for (size_t r = 0; r < m->count; r++) any_monitor |= m->members[r]->monitor;
        bool right = cases[i].odd == ODD_URL    ? st->skipped_url >= 1 && !a
                     : cases[i].odd == ODD_TIME ? st->skipped_time >= 1 && !a
                                                : a != NULL && !any_monitor;
        if (!check_that(right, __FILE__, __LINE__, "the odd record skipped and counted"))
            fprintf(stderr, "    body %s\n    skipped url %llu time %llu, a.test %s\n", cases[i].body,
                    (unsigned long long)st->skipped_url, (unsigned long long)st->skipped_time, a ? "merged" : "absent");
        membership_free(m);
        wire_message_free(&msg);
    }
    /* The other records of the message are still merged. */
    wire_message msg;
    if (ACCEPT("{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":\"1\"},"
               "{\"baseUrl\":[],\"lastUpdate\":1},{\"baseUrl\":\"http://b.test/\",\"monitor\":\"yes\",\"lastUpdate\":1},"
               "{\"baseUrl\":\"http://c.test/\",\"lastUpdate\":1}]}", WIRE_GOSSIP, &msg)) {
        CHECK_INT(msg.count, 4);
        membership *m = membership_new("http://self.test/", false, NOW, SKEW);
        membership_merge_all(m, msg.entries, msg.count, NOW);
        CHECK(membership_find(m, "http://c.test/", 14) != NULL);
        CHECK(membership_find(m, "http://b.test/", 14) != NULL && !membership_find(m, "http://b.test/", 14)->monitor);
        CHECK(membership_find(m, "http://a.test/", 14) == NULL);
        CHECK_INT(m->stats.skipped_time, 1);
        CHECK_INT(m->stats.skipped_url, 1);
        membership_free(m);
        wire_message_free(&msg);
    }
}

/* A parsed message merged whole: the odd entries are skipped and counted, the rest merged. */
static void test_message_merge(void) {
    const char *body =
        "{\"message\":\"gossip\",\"online\":["
        "{\"baseUrl\":\"ftp://bad.test/\",\"lastUpdate\":1},"
        "{\"baseUrl\":\"http://good.test/\",\"lastUpdate\":0},"
        "{\"baseUrl\":\"http://nan.test/\",\"lastUpdate\":null},"
        "{\"baseUrl\":\"http://frac.test/\",\"lastUpdate\":2.5},"
        "{\"baseUrl\":\"http://future.test/\",\"lastUpdate\":99999999999999},"
        "{\"baseUrl\":\"http://no-slash.test\",\"lastUpdate\":1},"
        "{\"baseUrl\":\"http://good-too.test/\",\"lastUpdate\":5,\"monitor\":true}],"
        "\"offline\":[{\"baseUrl\":\"http://dead.test/\",\"lastUpdate\":1795478600000}]}"; /* young */
    wire_message msg;
    if (!ACCEPT(body, WIRE_GOSSIP, &msg)) return;
    membership *m = membership_new("http://self.test/", false, NOW, SKEW);
    for (size_t i = 0; i < msg.count; i++) membership_merge(m, &msg.entries[i].e, msg.entries[i].status, NOW);
    wire_message_free(&msg);
    CHECK_INT(m->count, 4);
    CHECK(membership_find(m, "http://good.test/", 17) != NULL);
    CHECK(membership_find(m, "http://good-too.test/", 21) != NULL && membership_find(m, "http://good-too.test/", 21)->monitor);
    CHECK(membership_find(m, "http://dead.test/", 17) != NULL &&
          membership_find(m, "http://dead.test/", 17)->status == MEMBER_OFFLINE);
    CHECK_INT(m->stats.skipped_url, 2);
    CHECK_INT(m->stats.skipped_time, 2);
    CHECK_INT(m->stats.skipped_future, 1);
    membership_free(m);
}

static void test_error_escaping(void) {
    buf out = {0};
    wire_write_error(&out, "a \"quoted\" \\ thing\n");
    CHECK_STR(out.data, "{\"error\":\"a \\\"quoted\\\" \\\\ thing\\u000a\"}");
    buf_free(&out);

    wire_write_error(&out, "\x01\x1f\t\r end \x7f caf\xc3\xa9 /");
    CHECK_STR(out.data, "{\"error\":\"\\u0001\\u001f\\u0009\\u000d end \x7f caf\xc3\xa9 /\"}");
    buf_free(&out);

    wire_write_error(&out, "");
    CHECK_STR(out.data, "{\"error\":\"\"}");
    buf_free(&out);

    wire_write_string(&out, "\\\"\\");
    CHECK_STR(out.data, "\"\\\\\\\"\\\\\"");
    buf_free(&out);

    /* What is written reads back: an error answer is JSON like any other. A control message
     * whose message word is the escaped text would not be one, so read it as a list's
     * unknown key instead. */
    buf body = {0};
    buf_add_str(&body, "{\"online\":[],\"error\":");
    wire_write_string(&body, "x\"y\\z\n\x01");
    buf_add_str(&body, "}");
    wire_message msg;
    if (ACCEPT(body.data, WIRE_LIST, &msg)) wire_message_free(&msg);
    buf_free(&body);
}

/* wire_list_size, which the simulator counts bytes with, weighs exactly what wire_write_list
 * writes: monitors or not, offline records or not, lastUpdate of every number of digits, 0
 * and negative ones included. */
static void test_list_size(void) {
    membership *m = membership_new("http://self.test:3000/", true, 1795478695140LL, 300000);
    int64_t stamps[] = {0, 7, -3, 10, 99, 100, INT64_MAX, INT64_MIN, 1795478695140LL};
    for (size_t i = 0; i < sizeof stamps / sizeof *stamps; i++) {
        for (int flags = 0; flags < 4; flags++) {
            buf out = {0};
            wire_write_list(&out, m, (unsigned)flags);
            CHECK_INT(wire_list_size(m, (unsigned)flags), out.len);
            buf_free(&out);
        }
        char url[64];
        snprintf(url, sizeof url, "http://peer%zu.test/", i);
        member_entry e = {.base_url = url, .url_len = strlen(url), .monitor = i % 2, .last_update = stamps[i],
                          .last_update_ok = true};
        membership_merge(m, &e, i % 3 ? MEMBER_ONLINE : MEMBER_OFFLINE, 1795478695140LL);
    }
    membership_free(m);
}

int main(void) {
    test_list_size();
    test_accepts();
    test_unknown_keys();
    test_last_update_forms();
    test_urls();
    test_refuses();
    test_nesting();
    test_round_trip();
    test_cache_invalidation();
    test_odd_records_skipped();
    test_message_merge();
    test_error_escaping();
    return check_finish("test_wire");
}
