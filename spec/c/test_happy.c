/* happy: the three forms of the /happy payload, to the byte: the health hook's (a Lua table,
 * seen here through the engine's encoder, which sorts keys), the fallback and the quick one. */
#include "check.h"
#include "happy.h"
#include "policy.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

/* Each list of records as a one-element array naming its status, so that the payload shows
 * which list went where. */
static void push_status_names(lua_State *L, membership *m, member_status status) {
    (void)m;
    lua_createtable(L, 1, 0);
    lua_pushstring(L, status == MEMBER_ONLINE ? "online" : "offline");
    lua_rawseti(L, -2, 1);
}

/* The default hook's payload for `info`, as the engine would encode it. */
static const char *hook_payload(lua_State *L, const health_info *info, buf *json) {
    lua_pushcfunction(L, happy_lua_payload);
    happy_push_info(L, info, push_status_names);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return lua_tostring(L, -1);
    json->len = 0;
    const char *why = policy_encode_json(L, -1, json, false);
    lua_pop(L, 1);
    buf_add(json, "", 1);
    return why ? why : json->data;
}

static const char *quick(const health_info *info, buf *json) {
    json->len = 0;
    happy_write_quick(json, info);
    buf_add(json, "", 1);
    return json->data;
}

static const char *fallback(const health_info *info, buf *json) {
    json->len = 0;
    happy_write_fallback(json, info);
    buf_add(json, "", 1);
    return json->data;
}

/* Two JSON values equal as values: objects whatever the order of their members. */
static bool same_json(yajl_val a, yajl_val b) {
    if (!a || !b || a->type != b->type) return false;
    switch (a->type) {
    case yajl_t_string: return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number: return strcmp(a->u.number.r, b->u.number.r) == 0;
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!same_json(a->u.array.values[i], b->u.array.values[i])) return false;
        return true;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) return false;
        for (size_t i = 0; i < a->u.object.len; i++) {
            const char *path[] = {a->u.object.keys[i], NULL};
            if (!same_json(a->u.object.values[i], yajl_tree_get(b, path, yajl_t_any))) return false;
        }
        return true;
    default: return true; /* true, false, null: the type says it all */
    }
}

static bool same_json_text(const char *a, const char *b) {
    char err[128];
    yajl_val va = yajl_tree_parse(a, err, sizeof err), vb = yajl_tree_parse(b, err, sizeof err);
    bool same = same_json(va, vb);
    yajl_tree_free(va);
    yajl_tree_free(vb);
    return same;
}

static membership *membership_of(size_t records) {
    membership *m = membership_new("http://127.0.0.1:3000/", false, 1795478695140LL, 10000);
    member_update *u = calloc(records, sizeof *u);
    char (*urls)[48] = calloc(records, sizeof *urls);
    for (size_t i = 0; i < records; i++) {
        snprintf(urls[i], sizeof urls[i], "http://127.0.%zu.%zu:%zu/", i / 250 % 250 + 1, i % 250 + 1, 20000 + i % 30000);
        u[i] = (member_update){.e = {.base_url = urls[i], .url_len = strlen(urls[i]), .monitor = i % 50 == 0,
                                     .last_update = 1795478695140LL - (int64_t)i, .last_update_ok = true},
                               .status = i % 3 == 0 ? MEMBER_OFFLINE : MEMBER_ONLINE};
    }
    membership_merge_all(m, u, records, 1795478695140LL);
    free(u);
    free(urls);
    return m;
}

static policy *policy_or_die(const char *script) {
    char err[512];
    policy *p = policy_new(script, err, sizeof err);
    if (!p) {
        fprintf(stderr, "test setup: %s\n", err);
        exit(2);
    }
    return p;
}

/* The default health hook's payload is written without entering Lua (issue 10, A8: 130 to
 * 205 ms at 100,000 records): the same JSON values as the hook builds in Lua, and a call at
 * 100,000 records leaves the Lua state's memory as it was, where building it there takes
 * tens of MB. (Mutation: policy_health always through call_hook.) */
static void test_default_payload_without_lua(void) {
    char path[] = "/tmp/shazbot-test-happy-XXXXXX";
    int fd = mkstemp(path);
    const char *through_lua = "local core = require 'clustershazbot.core'\n"
                              "return { health = function(info) return core.health_payload(info) end }\n";
    CHECK(fd >= 0 && write(fd, through_lua, strlen(through_lua)) == (ssize_t)strlen(through_lua));
    if (fd >= 0) close(fd);
    policy *builtin = policy_or_die(NULL), *lua = policy_or_die(path);
    unlink(path);
    membership *m = membership_of(60);
    health_info infos[] = {
        {.running = true, .m = m, .req_per_sec = 3, .req_per_min = 120, .fails_per_min = 2, .skipped_entries = 4,
         .refutations = 5},
        {.running = false, .error = "engine stopped", .req_per_min = 7},
    };
    for (size_t i = 0; i < sizeof infos / sizeof *infos; i++) {
        buf direct = {0}, hooked = {0};
        policy_health(builtin, &infos[i], &direct);
        policy_health(lua, &infos[i], &hooked);
        CHECK(direct.data && hooked.data && same_json_text(direct.data, hooked.data));
        CHECK_INT(policy_failures(lua), 0);
        buf_free(&direct);
        buf_free(&hooked);
    }
    policy_free(builtin);
    policy_free(lua);
    membership_free(m);

    /* At 100,000 records, through a policy on a state of ours, whose memory we can read. */
    lua_State *host = luaL_newstate();
    luaL_openlibs(host);
    lua_newtable(host); /* no hooks of the host's: the default's */
    char err[512];
    policy *hosted = policy_new_hosted(host, -1, err, sizeof err);
    CHECK(hosted != NULL);
    m = membership_of(100000);
    health_info info = {.running = true, .m = m};
    lua_gc(host, LUA_GCCOLLECT);
    int before_kib = lua_gc(host, LUA_GCCOUNT);
    buf out = {0};
    if (hosted) policy_health(hosted, &info, &out);
    int grown_kib = lua_gc(host, LUA_GCCOUNT) - before_kib;
    CHECK(grown_kib < 64);
    CHECK(out.len > 100000 * 60); /* every record is there */
    CHECK_CONTAINS(out.data, "\"status\":\"ok\"");
    printf("/happy at 100,000 records: %zu bytes, the Lua state grew by %d KiB\n", out.len, grown_kib);
    buf_free(&out);
    policy_free(hosted);
    membership_free(m);
    lua_close(host);
}


static policy *policy_of_script(const char *text) {
    char path[] = "/tmp/shazbot-test-happy-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    if (fd >= 0) close(fd);
    policy *p = policy_or_die(path);
    unlink(path);
    return p;
}

/* The names of the failed checks of `p`, joined by commas. */
static const char *failed_checks(policy *p, const health_info *info, char *out, size_t len) {
    char **names;
    size_t count;
    policy_health_checks(p, info, &names, &count);
    out[0] = 0;
    for (size_t i = 0; i < count; i++) {
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", names[i]);
        free(names[i]);
    }
    free(names);
    return out;
}

/* The policy's quick checks (health_checks): failures named, sorted; a hook that raises or
 * answers nonsense is itself a failed check, counted under its name; none by default. The
 * checks see the info without the records. (Mutations: names unsorted; a raising hook
 * reported as passing.) */
static void test_health_checks(void) {
    health_info info = {.running = true, .members_online = 3};
    char names[256];
    policy *none = policy_or_die(NULL);
    CHECK_STR(failed_checks(none, &info, names, sizeof names), "");
    CHECK_INT(policy_failures(none), 0);
    policy_free(none);

    policy *checks = policy_of_script("return { health_checks = function(info)\n"
                                      "  return { zeta = info.membersOnline < 3, alpha = 'disk full', ok = true,\n"
                                      "           records = info.online == nil } end }\n");
    CHECK_STR(failed_checks(checks, &info, names, sizeof names), "alpha,zeta");
    CHECK_INT(policy_failures(checks), 0);
    info.members_online = 2;
    CHECK_STR(failed_checks(checks, &info, names, sizeof names), "alpha");
    policy_free(checks);

    const char *bad[] = {"return { health_checks = function() error('boom') end }\n",
                         "return { health_checks = function() return 7 end }\n",
                         "return { health_checks = function() return { [1] = true } end }\n",
                         "return { health_checks = function() return { a = 1 } end }\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        policy *p = policy_of_script(bad[i]);
        CHECK_STR(failed_checks(p, &info, names, sizeof names), "health_checks");
        CHECK_INT(policy_failures(p), 1);
        size_t hook = 0;
        while (strcmp(policy_hook_names[hook], "health_checks") != 0) hook++;
        CHECK_INT(policy_hook_failures(p, hook), 1);
        policy_free(p);
    }
}

int main(void) {
    test_default_payload_without_lua();
    test_health_checks();

    membership *m = membership_new("http://127.0.0.1:3000/", false, 1, 10000);
    char *failed_checks[] = {"disk", "queue"};
    health_info running = {.running = true, .m = m, .req_per_sec = 3, .req_per_min = 120,
                           .fails_per_min = 2, .err_per_min = 1, .skipped_entries = 4,
                           .refutations = 5, .policy_failures = 6, .members_online = 1};
    health_info stopped = {.running = false, .error = "engine stopped", .req_per_min = 7};
    health_info fractional = running;
    fractional.req_per_sec = 2.5;
    /* Leaving, with two quick checks of the policy's failing. */
    health_info leaving = running;
    leaving.shutdown_planned = true;
    leaving.planned_shutdown_in = 4.25;
    leaving.check_failures = failed_checks;
    leaving.check_failure_count = 2;

    lua_State *L = luaL_newstate();
    buf json = {0};

    CHECK_STR(hook_payload(L, &running, &json),
              "{\"currentErrPerMin\":1,\"currentFailsPerMin\":2,\"currentReqPerMin\":120,\"currentReqPerSec\":3,"
              "\"extensionFailures\":[],\"extensions\":{\"clustershazbot\":{\"cluster\":{\"offline\":[\"offline\"],"
              "\"online\":[\"online\"]},\"policyFailures\":6,\"refutations\":5,\"skippedEntries\":4,\"status\":\"ok\"}},"
              "\"plannedShutdownIn\":null,\"running\":true,\"trackedValues\":{\"membersOffline\":0,\"membersOnline\":1}}");
    CHECK_STR(hook_payload(L, &stopped, &json),
              "{\"currentErrPerMin\":0,\"currentFailsPerMin\":0,\"currentReqPerMin\":7,\"currentReqPerSec\":0,"
              "\"extensionFailures\":[\"clustershazbot\"],\"extensions\":{\"clustershazbot\":{\"error\":\"engine stopped\","
              "\"status\":\"error\"}},\"plannedShutdownIn\":null,\"running\":false,"
              "\"trackedValues\":{\"membersOffline\":0,\"membersOnline\":0}}");
    CHECK_CONTAINS(hook_payload(L, &fractional, &json), "\"currentReqPerSec\":2.5,");
    CHECK_CONTAINS(hook_payload(L, &leaving, &json), "\"extensionFailures\":[\"disk\",\"queue\"],");
    CHECK_CONTAINS(hook_payload(L, &leaving, &json), "\"plannedShutdownIn\":4.25,");

    /* An info of a user's hook: values as they are there, a missing reason named for it,
     * what is not a name left out of extensionFailures. */
    lua_pushcfunction(L, happy_lua_payload);
    luaL_dostring(L, "return { running = false, reqPerSec = 'many', checkFailures = { 'mine', 7 } }");
    CHECK_INT(lua_pcall(L, 1, 1, 0), LUA_OK);
    json.len = 0;
    CHECK(policy_encode_json(L, -1, &json, false) == NULL);
    buf_add(&json, "", 1);
    CHECK_STR(json.data, "{\"currentReqPerSec\":\"many\",\"extensionFailures\":[\"clustershazbot\",\"mine\"],"
                         "\"extensions\":{\"clustershazbot\":{\"error\":\"engine not started\",\"status\":\"error\"}},"
                         "\"plannedShutdownIn\":null,\"running\":false,\"trackedValues\":{}}");
    lua_pop(L, 1);

    CHECK_STR(quick(&running, &json), "{\"currentReqPerSec\":3,\"currentReqPerMin\":120,\"currentFailsPerMin\":2,"
                                      "\"currentErrPerMin\":1,\"extensionFailures\":[],"
                                      "\"trackedValues\":{\"membersOnline\":1,\"membersOffline\":0}}");
    CHECK_STR(quick(&stopped, &json), "{\"currentReqPerSec\":0,\"currentReqPerMin\":7,\"currentFailsPerMin\":0,"
                                      "\"currentErrPerMin\":0,\"extensionFailures\":[\"clustershazbot\"],"
                                      "\"trackedValues\":{\"membersOnline\":0,\"membersOffline\":0}}");
    CHECK_STR(quick(&leaving, &json), "{\"currentReqPerSec\":3,\"currentReqPerMin\":120,\"currentFailsPerMin\":2,"
                                      "\"currentErrPerMin\":1,\"extensionFailures\":[\"disk\",\"queue\"],"
                                      "\"trackedValues\":{\"membersOnline\":1,\"membersOffline\":0}}");

    /* The fallback has every field of the payload: a dashboard reads it without a special case. */
    CHECK_STR(fallback(&running, &json),
              "{\"running\":true,\"plannedShutdownIn\":null,\"currentReqPerSec\":3,\"currentReqPerMin\":120,"
              "\"currentFailsPerMin\":2,\"currentErrPerMin\":1,\"extensionFailures\":[\"clustershazbot\"],"
              "\"trackedValues\":{\"membersOnline\":1,\"membersOffline\":0},\"extensions\":{\"clustershazbot\":"
              "{\"status\":\"error\",\"error\":\"the health hook failed\"}}}");
    CHECK_STR(fallback(&stopped, &json),
              "{\"running\":false,\"plannedShutdownIn\":null,\"currentReqPerSec\":0,\"currentReqPerMin\":7,"
              "\"currentFailsPerMin\":0,\"currentErrPerMin\":0,\"extensionFailures\":[\"clustershazbot\"],"
              "\"trackedValues\":{\"membersOnline\":0,\"membersOffline\":0},\"extensions\":{\"clustershazbot\":"
              "{\"status\":\"error\",\"error\":\"the health hook failed\"}}}");
    CHECK_CONTAINS(fallback(&leaving, &json), "\"plannedShutdownIn\":4.25,");

    buf_free(&json);
    lua_close(L);
    membership_free(m);
    return check_finish("test_happy");
}
