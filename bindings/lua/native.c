/* clustershazbot.native: the C API for Lua 5.4 as plain functions over handles (full userdata
 * that the garbage collector frees). Hosts use the facade, `require "clustershazbot"`
 * (lua/clustershazbot/init.lua over facade.lua, which the LuaJIT FFI binding shares): it owns
 * the interface and its errors. These functions only report: false, or nil and a message.
 *
 * What only this binding can do: policy hooks as Lua functions of the host (shazbot_new_lua),
 * server_list as Lua tables read straight from the membership, and body tables written as JSON
 * in C: clustershazbot_lua.h, the only header of the core this file sees. */
#include "clustershazbot.h"
#include "clustershazbot_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>

#define NODE_HANDLE "clustershazbot.node"
#define SETTINGS_HANDLE "clustershazbot.settings"

typedef struct node_box {
    shazbot *node;
} node_box;

typedef struct settings_box {
    shazbot_settings *settings;
} settings_box;

/* A node that has been freed is a bug of the facade, which checks first. */
static shazbot *check_node(lua_State *L) {
    node_box *box = luaL_checkudata(L, 1, NODE_HANDLE);
    if (!box->node) luaL_error(L, "clustershazbot.native: the node has been freed");
    return box->node;
}

static int push_bool(lua_State *L, bool value) {
    lua_pushboolean(L, value);
    return 1;
}

static int push_failure(lua_State *L, const char *why) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
}

/* ---- settings ------------------------------------------------------------------------------ */

static int push_settings(lua_State *L, shazbot_settings *s) {
    settings_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->settings = s;
    luaL_setmetatable(L, SETTINGS_HANDLE);
    return 1;
}

static int l_settings_new(lua_State *L) {
    shazbot_settings *s = shazbot_settings_new();
    if (!s) return luaL_error(L, "clustershazbot: out of memory");
    return push_settings(L, s);
}

static int l_settings_from_env(lua_State *L) {
    char err[600];
    shazbot_settings *s = shazbot_settings_from_env(err, sizeof err);
    return s ? push_settings(L, s) : push_failure(L, err);
}

static int l_settings_set(lua_State *L) {
    settings_box *box = luaL_checkudata(L, 1, SETTINGS_HANDLE);
    char err[600];
    if (shazbot_settings_set(box->settings, luaL_checkstring(L, 2), luaL_checkstring(L, 3), err, sizeof err) != 0)
        return push_failure(L, err);
    return push_bool(L, true);
}

static int l_settings_gc(lua_State *L) {
    settings_box *box = luaL_checkudata(L, 1, SETTINGS_HANDLE);
    shazbot_settings_free(box->settings);
    box->settings = NULL;
    return 0;
}

/* ---- nodes --------------------------------------------------------------------------------- */

/* node_new(settings, hooks): hooks is a table of policy functions, or nil. */
static int l_node_new(lua_State *L) {
    settings_box *s = luaL_checkudata(L, 1, SETTINGS_HANDLE);
    bool hosted = !lua_isnoneornil(L, 2);
    if (hosted) luaL_checktype(L, 2, LUA_TTABLE);
    /* The userdata first: were it to fail for memory, no node would be left behind. */
    node_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->node = NULL;
    luaL_setmetatable(L, NODE_HANDLE);
    char err[600];
    box->node = hosted ? shazbot_new_lua(s->settings, NULL, L, 2, err, sizeof err)
                       : shazbot_new(s->settings, NULL, err, sizeof err);
    return box->node ? 1 : push_failure(L, err);
}

static int l_node_free(lua_State *L) {
    node_box *box = luaL_checkudata(L, 1, NODE_HANDLE);
    shazbot_free(box->node);
    box->node = NULL;
    return 0;
}

static int l_start(lua_State *L) { return push_bool(L, shazbot_start(check_node(L)) == 0); }
static int l_shutdown(lua_State *L) { return push_bool(L, shazbot_shutdown(check_node(L), NULL, NULL) == 0); }
static int l_is_stopped(lua_State *L) { return push_bool(L, shazbot_is_stopped(check_node(L))); }
static int l_is_running(lua_State *L) { return push_bool(L, shazbot_is_running(check_node(L))); }
static int l_in_hook(lua_State *L) { return push_bool(L, shazbot_in_policy_hook(check_node(L))); }
static int l_step(lua_State *L) {
    shazbot *node = check_node(L);
    return push_bool(L, shazbot_step(node, luaL_optnumber(L, 2, 0)) == 0);
}
static int l_run(lua_State *L) { return push_bool(L, shazbot_run(check_node(L), 1) == 0); }

static int l_listen(lua_State *L) {
    shazbot *node = check_node(L);
    char err[300];
    if (shazbot_listen(node, luaL_optstring(L, 2, NULL), (int)luaL_optinteger(L, 3, 0), err, sizeof err) != 0)
        return push_failure(L, err);
    return push_bool(L, true);
}

/* ---- requests: (handle, auth, [body]) -> answer, status ------------------------------------- */

static int push_response(lua_State *L, shazbot_response *r) {
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    lua_pushinteger(L, r->status);
    shazbot_response_free(r);
    return 2;
}

typedef void (*body_request_fn)(shazbot *, const char *, const char *, size_t, shazbot_response *);

static int body_request(lua_State *L, body_request_fn request) {
    shazbot *node = check_node(L);
    const char *auth = luaL_optstring(L, 2, NULL);
    size_t len;
    const char *body = luaL_checklstring(L, 3, &len);
    shazbot_response r;
    request(node, auth, body, len, &r);
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

static int l_metrics_request(lua_State *L) {
    shazbot_response r;
    shazbot_metrics_request(check_node(L), luaL_optstring(L, 2, NULL), &r);
    return push_response(L, &r);
}

/* server_list(handle, include_offline) -> { online = { record... }, offline = { ... } } */
static int l_server_list(lua_State *L) {
    shazbot_push_server_list(L, check_node(L), lua_toboolean(L, 2));
    return 1;
}

/* encode(table) -> JSON text, with empty tables as arrays */
static int l_encode(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    char err[200];
    return shazbot_push_json(L, 1, err, sizeof err) == 0 ? 1 : push_failure(L, err);
}

static const luaL_Reg functions[] = {
    {"settings_new", l_settings_new},
    {"settings_from_env", l_settings_from_env},
    {"settings_set", l_settings_set},
    {"node_new", l_node_new},
    {"node_free", l_node_free},
    {"start", l_start},
    {"shutdown", l_shutdown},
    {"is_stopped", l_is_stopped},
    {"is_running", l_is_running},
    {"in_hook", l_in_hook},
    {"step", l_step},
    {"run", l_run},
    {"listen", l_listen},
    {"gossip_request", l_gossip_request},
    {"control_request", l_control_request},
    {"list_request", l_list_request},
    {"happy_request", l_happy_request},
    {"metrics_request", l_metrics_request},
    {"server_list", l_server_list},
    {"encode", l_encode},
    {NULL, NULL},
};

static void new_handle_type(lua_State *L, const char *name, lua_CFunction gc) {
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}

__attribute__((visibility("default"))) int luaopen_clustershazbot_native(lua_State *L) {
    new_handle_type(L, NODE_HANDLE, l_node_free);
    new_handle_type(L, SETTINGS_HANDLE, l_settings_gc);
    /* So that a host's policy functions can `require "clustershazbot.core"` (array, null). */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, shazbot_open_core);
    lua_setfield(L, -2, "clustershazbot.core");
    lua_pop(L, 1);
    luaL_newlib(L, functions);
    lua_pushstring(L, SHAZBOT_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
