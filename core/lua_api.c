/* lua_api: what clustershazbot_lua.h offers Lua 5.4 hosts beyond shazbot_new_lua, so that a
 * binding (bindings/lua/native.c) needs no private header. The work is policy.c's (the records
 * as hooks see them, the JSON encoder, the core module); this file only reaches into the node
 * for it. */
#include "clustershazbot_lua.h"
#include "node.h"
#include "membership.h"
#include "policy.h"

#include <lua.h>
#include <stdio.h>

int shazbot_in_policy_hook(const shazbot *node) { return policy_in_call(node->e.pol); }

void shazbot_push_server_list(lua_State *L, const shazbot *node, int include_offline) {
    const membership *m = node->e.m;
    lua_createtable(L, 0, 2);
    policy_push_records(L, m, MEMBER_ONLINE, true);
    lua_setfield(L, -2, "online");
    if (include_offline) {
        policy_push_records(L, m, MEMBER_OFFLINE, true);
        lua_setfield(L, -2, "offline");
    }
}

int shazbot_push_json(lua_State *L, int index, char *err, size_t err_len) {
    buf json = {0};
    const char *why = policy_encode_json(L, index, &json, true);
    if (!why && json.failed) why = "could not be written: out of memory";
    if (why) {
        snprintf(err, err_len, "%s", why);
        buf_free(&json);
        return -1;
    }
    lua_pushlstring(L, json.data, json.len); /* never empty: at least "null" */
    buf_free(&json);
    return 0;
}

int shazbot_open_core(lua_State *L) { return policy_open_core(L); }
