/* happy: the three forms of the /happy payload, to the byte: the health hook's (a Lua table,
 * seen here through the engine's encoder, which sorts keys), the fallback and the quick one. */
#include "check.h"
#include "happy.h"
#include "policy.h"

#include <lauxlib.h>
#include <lualib.h>

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

int main(void) {
    membership *m = membership_new("http://127.0.0.1:3000/", false, 1, 10000);
    health_info running = {.running = true, .m = m, .req_per_sec = 3, .req_per_min = 120,
                           .fails_per_min = 2, .err_per_min = 1, .skipped_entries = 4,
                           .refutations = 5, .policy_failures = 6};
    health_info stopped = {.running = false, .error = "engine stopped", .req_per_min = 7};
    health_info fractional = running;
    fractional.req_per_sec = 2.5;

    lua_State *L = luaL_newstate();
    buf json = {0};

    CHECK_STR(hook_payload(L, &running, &json),
              "{\"currentErrPerMin\":1,\"currentFailsPerMin\":2,\"currentReqPerMin\":120,\"currentReqPerSec\":3,"
              "\"extensionFailures\":0,\"extensions\":{\"clustershazbot\":{\"cluster\":{\"offline\":[\"offline\"],"
              "\"online\":[\"online\"]},\"policyFailures\":6,\"refutations\":5,\"skippedEntries\":4,\"status\":\"ok\"}},"
              "\"plannedShutdownIn\":null,\"running\":true}");
    CHECK_STR(hook_payload(L, &stopped, &json),
              "{\"currentErrPerMin\":0,\"currentFailsPerMin\":0,\"currentReqPerMin\":7,\"currentReqPerSec\":0,"
              "\"extensionFailures\":1,\"extensions\":{\"clustershazbot\":{\"error\":\"engine stopped\","
              "\"status\":\"error\"}},\"plannedShutdownIn\":null,\"running\":false}");
    CHECK_CONTAINS(hook_payload(L, &fractional, &json), "\"currentReqPerSec\":2.5,");

    /* An info of a user's hook: values as they are there, a missing reason named for it. */
    lua_pushcfunction(L, happy_lua_payload);
    luaL_dostring(L, "return { running = false, reqPerSec = 'many' }");
    CHECK_INT(lua_pcall(L, 1, 1, 0), LUA_OK);
    json.len = 0;
    CHECK(policy_encode_json(L, -1, &json, false) == NULL);
    buf_add(&json, "", 1);
    CHECK_STR(json.data, "{\"currentReqPerSec\":\"many\",\"extensionFailures\":1,\"extensions\":{\"clustershazbot\":"
                         "{\"error\":\"engine not started\",\"status\":\"error\"}},\"plannedShutdownIn\":null,\"running\":false}");
    lua_pop(L, 1);

    CHECK_STR(quick(&running, &json), "{\"currentReqPerSec\":3,\"currentReqPerMin\":120,\"currentFailsPerMin\":2,"
                                      "\"currentErrPerMin\":1,\"extensionFailures\":0}");
    CHECK_STR(quick(&stopped, &json), "{\"currentReqPerSec\":0,\"currentReqPerMin\":7,\"currentFailsPerMin\":0,"
                                      "\"currentErrPerMin\":0,\"extensionFailures\":1}");

    CHECK_STR(fallback(&running, &json), "{\"running\":true,\"extensionFailures\":1,\"extensions\":{\"clustershazbot\":"
                                         "{\"status\":\"error\",\"error\":\"the health hook failed\"}}}");
    CHECK_STR(fallback(&stopped, &json), "{\"running\":false,\"extensionFailures\":1,\"extensions\":{\"clustershazbot\":"
                                         "{\"status\":\"error\",\"error\":\"the health hook failed\"}}}");

    buf_free(&json);
    lua_close(L);
    membership_free(m);
    return check_finish("test_happy");
}
