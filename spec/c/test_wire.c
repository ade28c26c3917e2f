/* wire: what is accepted, what is refused and how the refusal names the field, and that the
 * state written out reads back the same. */
#include "check.h"
#include "wire.h"

#include <stdlib.h>

static bool parse(const char *body, wire_kind kind, wire_message *msg, char *err, size_t err_len) {
    return wire_parse(body, strlen(body), kind, msg, err, err_len);
}

static void test_accepts(void) {
    wire_message msg;
    char err[256];
    const char *body =
        "{\"message\":\"gossip\",\"extra\":{\"deep\":[1,[2,{\"x\":null}]]},"
        "\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":5,\"monitor\":true,\"zone\":[1]},"
        "{\"baseUrl\":\"http://b.test/\",\"lastUpdate\":null,\"monitor\":null},"
        "{\"baseUrl\":\"http://c.test/\",\"lastUpdate\":1.7e12},"
        "{\"baseUrl\":\"http://d.test/\",\"lastUpdate\":1.5}],"
        "\"offline\":[{\"baseUrl\":\"http://e.test/\",\"lastUpdate\":-3}]}";
    CHECK(parse(body, WIRE_GOSSIP, &msg, err, sizeof err));
    CHECK_INT(msg.count, 5);
    CHECK(strcmp(msg.entries[0].e.base_url, "http://a.test/") == 0);
    CHECK(msg.entries[0].e.monitor && msg.entries[0].e.last_update_ok);
    CHECK_INT(msg.entries[0].e.last_update, 5);
    CHECK(!msg.entries[1].e.monitor && !msg.entries[1].e.last_update_ok); /* JavaScript's NaN */
    CHECK(msg.entries[2].e.last_update_ok);
    CHECK_INT(msg.entries[2].e.last_update, 1700000000000LL);
    CHECK(!msg.entries[3].e.last_update_ok); /* a fraction: skipped later, not refused */
    CHECK_INT(msg.entries[4].status, MEMBER_OFFLINE);
    CHECK_INT(msg.entries[4].e.last_update, -3);
    wire_message_free(&msg);

    CHECK(parse("{\"online\":[]}", WIRE_LIST, &msg, err, sizeof err)); /* offline may be absent */
    wire_message_free(&msg);
    CHECK(parse("{\"message\":\"control\",\"online\":false}", WIRE_CONTROL, &msg, err, sizeof err));
    CHECK(!msg.control_online);
    wire_message_free(&msg);
}

static void test_refuses(void) {
    static const struct {
        const char *body;
        wire_kind kind;
        const char *error_mentions;
    } cases[] = {
        {"", WIRE_GOSSIP, "not valid JSON"},
        {"{not json", WIRE_GOSSIP, "not valid JSON"},
        {"[]", WIRE_GOSSIP, "expected a JSON object"},
        {"\"gossip\"", WIRE_GOSSIP, "expected a JSON object"},
        {"{\"message\":\"gossip\"}", WIRE_GOSSIP, "online: missing"},
        {"{\"online\":[]}", WIRE_GOSSIP, "message: missing"},
        {"{\"message\":\"hello\",\"online\":[]}", WIRE_GOSSIP, "message: expected \"gossip\""},
        {"{\"message\":\"gossip\",\"online\":{}}", WIRE_GOSSIP, "online: expected an array"},
        {"{\"message\":\"gossip\",\"online\":[],\"offline\":7}", WIRE_GOSSIP, "offline: expected an array"},
        {"{\"message\":\"gossip\",\"online\":[5]}", WIRE_GOSSIP, "online[0]: expected an object"},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":1},{\"baseUrl\":\"http://b.test/\",\"monitor\":\"yes\"}]}",
         WIRE_GOSSIP, "online[1].monitor: expected a boolean"},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":5}]}", WIRE_GOSSIP, "online[0].baseUrl: expected a string"},
        {"{\"message\":\"gossip\",\"online\":[{\"lastUpdate\":5}]}", WIRE_GOSSIP, "online[0].baseUrl: missing"},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":\"5\"}]}", WIRE_GOSSIP,
         "online[0].lastUpdate: expected an integer"},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":1e400}]}", WIRE_GOSSIP,
         "out of range"},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://a.test/\",\"lastUpdate\":99999999999999999999999}]}",
         WIRE_GOSSIP, "out of range"},
        {"{\"message\":\"gossip\",\"online\":[]} x", WIRE_GOSSIP, "not valid JSON"},
        {"{\"message\":\"gossip\",\"online\":[{\"baseUrl\":\"http://\xff.test/\"}]}", WIRE_GOSSIP, "not valid JSON"},
        {"{\"message\":\"control\"}", WIRE_CONTROL, "online: missing"},
        {"{\"message\":\"control\",\"online\":\"no\"}", WIRE_CONTROL, "online: expected a boolean"},
        {"{\"message\":\"gossip\",\"online\":true}", WIRE_CONTROL, "message: expected \"control\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wire_message msg;
        char err[256];
        bool ok = parse(cases[i].body, cases[i].kind, &msg, err, sizeof err);
        if (!check_that(!ok, __FILE__, __LINE__, cases[i].body)) wire_message_free(&msg);
        CHECK_CONTAINS(err, cases[i].error_mentions);
        CHECK(msg.entries == NULL && msg.count == 0); /* nothing half-parsed is handed out */
    }

    /* Deep nesting is refused at the limit, without reading on. */
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
    free(deep);
}

static void test_round_trip(void) {
    membership *m = membership_new("http://self.test/", true, 1000, 300000);
    member_entry a = {.base_url = "http://a.test/", .url_len = 14, .last_update = 500, .last_update_ok = true};
    member_entry b = {.base_url = "http://b.test/", .url_len = 14, .last_update = 600, .last_update_ok = true};
    membership_merge(m, &a, MEMBER_ONLINE, 1000);
    membership_merge(m, &b, MEMBER_OFFLINE, 1000);

    unsigned variants[] = {0, WIRE_WITH_OFFLINE, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE};
    for (size_t v = 0; v < 3; v++) {
        buf out = {0};
        wire_write_list(&out, m, variants[v]);
        wire_message msg;
        char err[256];
        bool ok = wire_parse(out.data, out.len, variants[v] & WIRE_WITH_MESSAGE ? WIRE_GOSSIP : WIRE_LIST,
                             &msg, err, sizeof err);
        CHECK(ok);
        CHECK_INT(msg.count, variants[v] & WIRE_WITH_OFFLINE ? 3 : 2);
        if (ok) wire_message_free(&msg);
        buf_free(&out);
    }

    /* The cached fragment follows the record. */
    buf out = {0};
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_CONTAINS(out.data, "{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":500}");
    CHECK_CONTAINS(out.data, "{\"baseUrl\":\"http://self.test/\",\"monitor\":true,\"lastUpdate\":1000}");
    buf_free(&out);
    a.last_update = 700;
    membership_merge(m, &a, MEMBER_OFFLINE, 1000);
    wire_write_list(&out, m, WIRE_WITH_OFFLINE);
    CHECK_CONTAINS(out.data, "\"offline\":[{\"baseUrl\":\"http://a.test/\",\"monitor\":false,\"lastUpdate\":700}");
    CHECK(strstr(out.data, "\"lastUpdate\":500") == NULL);
    buf_free(&out);
    membership_free(m);
}

static void test_error_escaping(void) {
    buf out = {0};
    wire_write_error(&out, "a \"quoted\" \\ thing\n");
    CHECK(strcmp(out.data, "{\"error\":\"a \\\"quoted\\\" \\\\ thing\\u000a\"}") == 0);
    buf_free(&out);
}

int main(void) {
    test_accepts();
    test_refuses();
    test_round_trip();
    test_error_escaping();
    return check_finish("test_wire");
}
