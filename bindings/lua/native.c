/* clustershazbot.native: the Lua 5.4 binding of the C API. The facade lua/clustershazbot/
 * init.lua (`require "clustershazbot"`) is what hosts use; this file only maps calls.
 *
 * A node is a full userdata holding the C node; it is freed by node:close(), by a to-be-closed
 * variable, or by the garbage collector. Misuse (a bad option, start twice, shutdown of a node
 * not running, a closed node) raises a Lua error that says what was wrong. */
#include "clustershazbot.h"
#include "clustershazbot_lua.h"
#include "engine.h"
#include "policy.h"

#include <ctype.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#define NODE_METATABLE "clustershazbot.node"

typedef struct node_box {
    shazbot *node;
} node_box;

static shazbot *check_node(lua_State *L) {
    node_box *box = luaL_checkudata(L, 1, NODE_METATABLE);
    if (!box->node) luaL_error(L, "clustershazbot: this node has been closed");
    return box->node;
}

/* Option key -> setting name: base_url -> SHAZBOT_BASE_URL, happy_secret -> HAPPY_SECRET. */
static void setting_name(const char *key, char *out, size_t len) {
    snprintf(out, len, strcmp(key, "happy_secret") == 0 ? "%s" : "SHAZBOT_%s", key);
    for (char *c = out; *c; c++) *c = (char)toupper((unsigned char)*c);
}

/* Applies one option (key at -2, value at -1); false with a message on a bad one. */
static bool apply_option(lua_State *L, shazbot_settings *s, char *err, size_t err_len) {
    if (lua_type(L, -2) != LUA_TSTRING) {
        snprintf(err, err_len, "option keys must be strings");
        return false;
    }
    const char *key = lua_tostring(L, -2);
    if (strcmp(key, "policy") == 0 && lua_istable(L, -1)) return true; /* taken by l_new */
    const char *value;
    switch (lua_type(L, -1)) {
    case LUA_TBOOLEAN: value = lua_toboolean(L, -1) ? "true" : "false"; break;
    case LUA_TNUMBER:
    case LUA_TSTRING: value = lua_tostring(L, -1); break; /* converts the number in place */
    default:
        snprintf(err, err_len, "option '%s': expected a string, number or boolean, got %s", key, luaL_typename(L, -1));
        return false;
    }
    char name[128], why[400];
    setting_name(key, name, sizeof name);
    if (shazbot_settings_set(s, name, value, why, sizeof why) != 0) {
        snprintf(err, err_len, "option '%s': %s", key, why);
        return false;
    }
    return true;
}

/* shazbot.new(opts): opts nil reads the environment. */
static int l_new(lua_State *L) {
    char err[600] = "";
    shazbot_settings *s;
    int policy_index = 0;
    if (lua_isnoneornil(L, 1)) {
        s = shazbot_settings_from_env(err, sizeof err);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        s = shazbot_settings_new();
        lua_pushnil(L);
        while (s && lua_next(L, 1)) {
            if (!apply_option(L, s, err, sizeof err)) {
                lua_pop(L, 2);
                shazbot_settings_free(s);
                s = NULL;
                break;
            }
            lua_pop(L, 1);
        }
        if (s && lua_getfield(L, 1, "policy") == LUA_TTABLE) policy_index = lua_gettop(L);
    }
    if (!s) return luaL_error(L, "clustershazbot.new: %s", err[0] ? err : "out of memory");
    node_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->node = NULL;
    luaL_setmetatable(L, NODE_METATABLE);
    box->node = policy_index ? shazbot_new_lua(s, NULL, L, policy_index, err, sizeof err)
                             : shazbot_new(s, NULL, err, sizeof err);
    shazbot_settings_free(s);
    if (!box->node) return luaL_error(L, "clustershazbot.new: %s", err);
    return 1;
}

static int l_start(lua_State *L) {
    if (shazbot_start(check_node(L)) != 0)
        return luaL_error(L, "clustershazbot: node:start(): already started, or shut down");
    lua_pushboolean(L, 1);
    return 1;
}

/* A body argument: a JSON string, or a table written as JSON (empty tables as arrays: the
 * protocol's only empty containers are lists). */
static const char *body_arg(lua_State *L, int index, buf *scratch, size_t *len) {
    if (lua_type(L, index) == LUA_TSTRING) return lua_tolstring(L, index, len);
    luaL_argexpected(L, lua_istable(L, index), index, "JSON string or table");
    const char *why = policy_encode_json(L, index, scratch, true);
    if (why) luaL_error(L, "clustershazbot: the body table %s", why);
    *len = scratch->len;
    return scratch->data ? scratch->data : "";
}

/* Pushes answer, status and releases the response. */
static int push_response(lua_State *L, shazbot_response *r) {
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    lua_pushinteger(L, r->status);
    shazbot_response_free(r);
    return 2;
}

/* gossip and control: (auth, body) -> answer, status. */
typedef void (*body_request_fn)(shazbot *, const char *, const char *, size_t, shazbot_response *);

static int body_request(lua_State *L, body_request_fn request) {
    shazbot *node = check_node(L);
    const char *auth = luaL_optstring(L, 2, NULL);
    buf scratch = {0};
    size_t len;
    const char *body = body_arg(L, 3, &scratch, &len);
    shazbot_response r;
    request(node, auth, body, len, &r);
    buf_free(&scratch);
    return push_response(L, &r);
}

static int l_gossip_request(lua_State *L) { return body_request(L, shazbot_gossip_request); }
static int l_control_request(lua_State *L) { return body_request(L, shazbot_control_request); }

static int l_list_request(lua_State *L) {
    shazbot_response r;
    shazbot_list_request(check_node(L), luaL_optstring(L, 2, NULL), &r);
    return push_response(L, &r);
}

static int l_happy_request(lua_State *L) {
    shazbot_response r;
    shazbot_happy_request(check_node(L), luaL_optstring(L, 2, NULL), lua_toboolean(L, 3), &r);
    return push_response(L, &r);
}

/* node:server_list(include_offline) -> { online = { record... }, offline = { ... } } */
static int l_server_list(lua_State *L) {
    shazbot *node = check_node(L);
    bool with_offline = lua_toboolean(L, 2);
    lua_createtable(L, 0, 2);
    for (int s = MEMBER_ONLINE; s <= (with_offline ? MEMBER_OFFLINE : MEMBER_ONLINE); s++) {
        lua_newtable(L);
        lua_Integer n = 0;
        for (size_t i = 0; i < node->m->count; i++) {
            const member *r = node->m->members[i];
            if ((int)r->status != s) continue;
            policy_push_record(L, r);
            lua_rawseti(L, -2, ++n);
        }
        lua_setfield(L, -2, s == MEMBER_ONLINE ? "online" : "offline");
    }
    return 1;
}

static int l_step(lua_State *L) {
    if (shazbot_step(check_node(L), luaL_optnumber(L, 2, 0)) != 0) return luaL_error(L, "clustershazbot: node:step(): the event loop failed");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_listen(lua_State *L) {
    shazbot *node = check_node(L);
    char err[300];
    if (shazbot_listen(node, luaL_optstring(L, 2, NULL), (int)luaL_optinteger(L, 3, 0), err, sizeof err) != 0)
        return luaL_error(L, "clustershazbot: node:listen(): %s", err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_run(lua_State *L) {
    if (shazbot_run(check_node(L), 1) != 0) return luaL_error(L, "clustershazbot: node:run(): the event loop failed");
    lua_pushboolean(L, 1);
    return 1;
}

/* node:shutdown(): leaves the cluster and returns once the node has stopped (bounded by the
 * engine's shutdown deadline). */
static int l_shutdown(lua_State *L) {
    shazbot *node = check_node(L);
    if (shazbot_shutdown(node, NULL, NULL) != 0)
        return luaL_error(L, "clustershazbot: node:shutdown(): the node is not running (never started, or already shut down)");
    while (!shazbot_is_stopped(node))
        if (shazbot_step(node, 0.1) != 0) break;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_is_running(lua_State *L) {
    lua_pushboolean(L, shazbot_is_running(check_node(L)));
    return 1;
}

static int l_close(lua_State *L) {
    node_box *box = luaL_checkudata(L, 1, NODE_METATABLE);
    shazbot_free(box->node);
    box->node = NULL;
    return 0;
}

static const luaL_Reg node_methods[] = {
    {"start", l_start},
    {"gossip_request", l_gossip_request},
    {"list_request", l_list_request},
    {"control_request", l_control_request},
    {"happy_request", l_happy_request},
    {"server_list", l_server_list},
    {"step", l_step},
    {"listen", l_listen},
    {"run", l_run},
    {"shutdown", l_shutdown},
    {"is_running", l_is_running},
    {"close", l_close},
    {NULL, NULL},
};

__attribute__((visibility("default"))) int luaopen_clustershazbot_native(lua_State *L) {
    if (luaL_newmetatable(L, NODE_METATABLE)) {
        luaL_newlib(L, node_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    /* So that `require "clustershazbot.policy"` (the default, to reuse) works in the host. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, policy_open_core);
    lua_setfield(L, -2, "clustershazbot.core");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    lua_pushstring(L, SHAZBOT_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
