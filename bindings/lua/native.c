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
#include <stdio.h>

#define NODE_HANDLE "clustershazbot.node"
#define SETTINGS_HANDLE "clustershazbot.settings"

typedef struct node_box {
    shazbot *node;
    /* node:on_change(fn): the function and the thread it is called on, both anchored in the
     * registry (LUA_NOREF when none). The thread is the host's state's own, so that the call
     * can be made while the host's code is inside node:step() or node:run(). */
    lua_State *thread;
    int thread_ref, fn_ref;
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
    *box = (node_box){.thread_ref = LUA_NOREF, .fn_ref = LUA_NOREF};
    luaL_setmetatable(L, NODE_HANDLE);
    char err[600];
    box->node = hosted ? shazbot_new_lua(s->settings, NULL, L, 2, err, sizeof err)
                       : shazbot_new(s->settings, NULL, err, sizeof err);
    return box->node ? 1 : push_failure(L, err);
}

static void drop_on_change(lua_State *L, node_box *box) {
    luaL_unref(L, LUA_REGISTRYINDEX, box->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, box->thread_ref);
    box->fn_ref = box->thread_ref = LUA_NOREF;
    box->thread = NULL;
}

static int l_node_free(lua_State *L) {
    node_box *box = luaL_checkudata(L, 1, NODE_HANDLE);
    shazbot_free(box->node);
    box->node = NULL;
    drop_on_change(L, box);
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

/* ---- change events ---------------------------------------------------------------------------- */

static void push_side(lua_State *L, const char *name, int has, int online, int monitor, long long last_update) {
    if (!has) return;
    lua_createtable(L, 0, 3);
    lua_pushstring(L, online ? "online" : "offline");
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)last_update);
    lua_setfield(L, -2, "lastUpdate");
    lua_pushboolean(L, monitor);
    lua_setfield(L, -2, "monitor");
    lua_setfield(L, -2, name);
}

/* The C callback: the host's function with the event as the policy hook gets it. An error in
 * it is reported on stderr and does not reach the engine. */
static void deliver_event(const shazbot_event *ev, void *arg) {
    node_box *box = arg;
    lua_State *T = box->thread;
    if (!T || !lua_checkstack(T, 4)) return;
    lua_rawgeti(T, LUA_REGISTRYINDEX, box->fn_ref);
    lua_createtable(T, 0, 6);
    lua_pushinteger(T, (lua_Integer)ev->seq);
    lua_setfield(T, -2, "seq");
    lua_pushstring(T, ev->kind);
    lua_setfield(T, -2, "kind");
    lua_pushstring(T, ev->base_url);
    lua_setfield(T, -2, "baseUrl");
    lua_pushinteger(T, (lua_Integer)ev->time_ms);
    lua_setfield(T, -2, "time");
    push_side(T, "before", ev->has_before, ev->before_online, ev->before_monitor, ev->before_last_update);
    push_side(T, "after", ev->has_after, ev->after_online, ev->after_monitor, ev->after_last_update);
    if (lua_pcall(T, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "clustershazbot: node:on_change function failed on event %llu: %s\n", ev->seq,
                lua_isstring(T, -1) ? lua_tostring(T, -1) : "error object is not a string");
        lua_pop(T, 1);
    }
}

/* on_change(handle, fn | nil) */
static int l_on_change(lua_State *L) {
    shazbot *node = check_node(L);
    node_box *box = lua_touserdata(L, 1);
    drop_on_change(L, box);
    if (lua_isnoneornil(L, 2)) {
        shazbot_on_change(node, NULL, NULL);
        return push_bool(L, true);
    }
    luaL_checktype(L, 2, LUA_TFUNCTION);
    box->thread = lua_newthread(L);
    box->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    box->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    shazbot_on_change(node, deliver_event, box);
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
    {"on_change", l_on_change},
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
