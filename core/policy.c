/* policy: see policy.h. The state the hooks run in, and its budgets, are sandbox.c's. */
#include "policy.h"

#include "clustershazbot.h"
#include "log.h"
#include "lua_array.h"
#include "sandbox.h"
#include "wire.h"

#include <inttypes.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ENCODE_MAX_DEPTH 32

extern const char shazbot_default_policy_lua[]; /* generated from lua/clustershazbot/policy.lua */
extern const size_t shazbot_default_policy_lua_len;

struct policy {
    sandbox *box;
    lua_State *L;    /* sandbox_state(box), at hand */
    int default_ref; /* the default policy table */
    int user_ref;    /* the user's table, or LUA_NOREF */
    uint64_t failures;
    uint64_t hook_failures[POLICY_HOOKS]; /* the same, by policy_hook_names */
    /* Whether the user's table has an on_change function: events are many (a master list of
     * 10,000 records is 10,000 joins), and the default's does nothing, so none is called
     * unless the user wants them. Looked up once, when the policy is made. */
    bool user_on_change;
    log_level log_limit; /* the node's SHAZBOT_LOG_LEVEL (policy_set_log_level) */
};

/* clustershazbot.core: what policies need from the engine to build JSON and the /happy
 * payload. */
static int core_array(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_array_push_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

int policy_open_core(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, core_array);
    lua_setfield(L, -2, "array");
    lua_pushlightuserdata(L, NULL); /* encodes as JSON null */
    lua_setfield(L, -2, "null");
    lua_pushcfunction(L, happy_lua_payload);
    lua_setfield(L, -2, "health_payload");
    return 1;
}

static int open_default_policy(lua_State *L) {
    if (luaL_loadbuffer(L, shazbot_default_policy_lua, shazbot_default_policy_lua_len,
                        "=clustershazbot/policy.lua") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

static int loaded_table_ref(lua_State *L, const char *what, char *err, size_t err_len) {
    if (!lua_istable(L, -1)) {
        snprintf(err, err_len, "%s: must return a table of hooks, returned %s", what, luaL_typename(L, -1));
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Makes "clustershazbot.core" and "clustershazbot.policy" loadable in p->L's state (unless
 * the host has its own) and loads the default policy. */
static bool load_default(policy *p, char *err, size_t err_len) {
    lua_State *L = p->L;
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "clustershazbot.core") == LUA_TNIL) {
        lua_pushcfunction(L, policy_open_core);
        lua_setfield(L, -3, "clustershazbot.core");
    }
    if (lua_getfield(L, -2, "clustershazbot.policy") == LUA_TNIL) {
        lua_pushcfunction(L, open_default_policy);
        lua_setfield(L, -4, "clustershazbot.policy");
    }
    lua_pop(L, 3);
    lua_getglobal(L, "require");
    lua_pushstring(L, "clustershazbot.policy");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        snprintf(err, err_len, "default policy: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return false;
    }
    return (p->default_ref = loaded_table_ref(L, "default policy", err, err_len)) != LUA_NOREF;
}

/* Takes `box`, which is NULL when there was none to be had. */
static policy *policy_alloc(sandbox *box, char *err, size_t err_len) {
    policy *p = box ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        snprintf(err, err_len, "policy: out of memory");
        sandbox_free(box);
        return NULL;
    }
    p->box = box;
    p->L = sandbox_state(box);
    p->default_ref = p->user_ref = LUA_NOREF;
    p->log_limit = LOG_INFO;
    return p;
}

void policy_set_log_level(policy *p, log_level level) { p->log_limit = level; }

static int find_on_change(lua_State *L) {
    const policy *p = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->user_ref);
    lua_getfield(L, -1, "on_change");
    lua_pushboolean(L, lua_isfunction(L, -1));
    return 1;
}

/* Protected and budgeted: a policy table's __index may be a function. */
static void look_up_on_change(policy *p) {
    if (p->user_ref == LUA_NOREF) return;
    lua_pushcfunction(p->L, find_on_change);
    lua_pushlightuserdata(p->L, p);
    p->user_on_change = sandbox_pcall(p->box, 1, 1) == LUA_OK && lua_toboolean(p->L, -1);
    lua_pop(p->L, 1);
}

policy *policy_new(const char *script, char *err, size_t err_len) {
    return policy_new_pooled(script, NULL, err, err_len);
}

policy *policy_new_pooled(const char *script, block_pool *pool, char *err, size_t err_len) {
    policy *p = policy_alloc(sandbox_new(pool), err, err_len);
    if (!p) return NULL;
    lua_State *L = p->L;
    if (!load_default(p, err, err_len)) goto fail;
    if (script) {
        /* The script's own top level runs under the same budget as a hook: a script that
         * never returns must not stop the node from starting, it must fail to load. */
        int rc = luaL_loadfile(L, script);
        if (rc == LUA_OK) rc = sandbox_pcall(p->box, 0, 1);
        if (rc != LUA_OK) {
            snprintf(err, err_len, "SHAZBOT_POLICY: \"%s\": %s", script, lua_tostring(L, -1));
            goto fail;
        }
        char what[300];
        snprintf(what, sizeof what, "SHAZBOT_POLICY: \"%s\"", script);
        if ((p->user_ref = loaded_table_ref(L, what, err, err_len)) == LUA_NOREF) goto fail;
        look_up_on_change(p);
    }
    lua_settop(L, 0);
    return p;
fail:
    policy_free(p);
    return NULL;
}

policy *policy_new_hosted(lua_State *host, int hooks_index, char *err, size_t err_len) {
    if (!lua_istable(host, hooks_index)) {
        snprintf(err, err_len, "policy: expected a table of hook functions, got %s", luaL_typename(host, hooks_index));
        return NULL;
    }
    hooks_index = lua_absindex(host, hooks_index);
    policy *p = policy_alloc(sandbox_new_thread(host), err, err_len);
    if (!p) return NULL;
    lua_pushvalue(host, hooks_index);
    p->user_ref = luaL_ref(host, LUA_REGISTRYINDEX);
    if (!load_default(p, err, err_len)) {
        policy_free(p);
        return NULL;
    }
    look_up_on_change(p);
    return p;
}

void policy_free(policy *p) {
    if (!p) return;
    /* A hosted policy's thread shares the host's registry: drop what we hold there. */
    luaL_unref(p->L, LUA_REGISTRYINDEX, p->user_ref);
    luaL_unref(p->L, LUA_REGISTRYINDEX, p->default_ref);
    sandbox_free(p->box);
    free(p);
}

uint64_t policy_failures(const policy *p) { return p->failures; }

const char *const policy_hook_names[POLICY_HOOKS] = {
    "gossip_target", "probe_target",  "bootstrap_targets", "shutdown_targets", "gossip_delay",
    "announce_delay", "health", "health_checks", "on_change", "other",
};

uint64_t policy_hook_failures(const policy *p, size_t hook) { return hook < POLICY_HOOKS ? p->hook_failures[hook] : 0; }

static size_t hook_index(const char *name) {
    size_t i = 0;
    while (i < POLICY_HOOKS - 1 && strcmp(policy_hook_names[i], name) != 0) i++;
    return i;
}

bool policy_in_call(const policy *p) { return sandbox_in_call(p->box); }

/* ---- calling hooks ------------------------------------------------------------------------ */

static void count_failure(policy *p, const char *name, bool user, const char *why) {
    p->failures++;
    p->hook_failures[hook_index(name)]++;
    log_warn(p->log_limit, "policy hook %s (%s) failed: %s; the default decides this time", name,
             user ? (sandbox_is_hosted(p->box) ? "host's function" : "user script") : "default", why);
}

static const char *error_message(lua_State *L) {
    return lua_isstring(L, -1) ? lua_tostring(L, -1) : "error object is not a string";
}

/* Calls hook `name`, whose arguments `push_args` pushes, with the budget, leaving its one
 * result on the stack for `check`. `check` returns NULL if the result is acceptable, else why
 * not. Tries the user's hook, then the default. Returns true with the accepted result on the
 * stack; false (stack as before) if even the default failed. */
typedef void (*push_args_fn)(policy *p, void *ctx, int *nargs);
typedef const char *(*check_fn)(policy *p, void *ctx);

typedef struct hook_call {
    policy *p;
    const char *name;
    int table_ref;
    push_args_fn push_args;
    check_fn check;
    void *ctx;
    bool missing;    /* the table has no such function */
    const char *why; /* what check found wrong, or NULL */
} hook_call;

/* Everything that may raise a Lua error happens in this protected function: the lookup (a
 * policy table's __index may be a function), the arguments (they allocate, and our own
 * state is capped), the call, and the check of the answer. */
static int run_hook(lua_State *L) {
    hook_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->table_ref);
    lua_getfield(L, -1, c->name);
    if (!lua_isfunction(L, -1)) {
        c->missing = true;
        return 0;
    }
    int nargs = 0;
    c->push_args(c->p, c->ctx, &nargs);
    lua_call(L, nargs, 1);
    c->why = c->check(c->p, c->ctx);
    return 1;
}

static bool call_hook(policy *p, const char *name, push_args_fn push_args, check_fn check,
                      void *ctx) {
    lua_State *L = p->L;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool user = attempt == 0;
        hook_call c = {p, name, user ? p->user_ref : p->default_ref, push_args, check, ctx, false, NULL};
        if (c.table_ref == LUA_NOREF) continue;
        lua_pushcfunction(L, run_hook);
        lua_pushlightuserdata(L, &c);
        int rc = sandbox_pcall(p->box, 1, 1);
        if (rc == LUA_OK && !c.missing && !c.why) return true;
        if (rc != LUA_OK) count_failure(p, name, user, error_message(L));
        else if (!c.missing) count_failure(p, name, user, c.why);
        lua_pop(L, 1);
    }
    return false;
}

static int seed_random(lua_State *L) {
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);
    return 0;
}

void policy_seed_random(policy *p, uint64_t seed) {
    lua_State *L = p->L;
    lua_pushcfunction(L, seed_random);
    lua_pushinteger(L, (lua_Integer)seed);
    /* math.randomseed is looked up where the hooks find math.random, in the globals, which a
     * user's script may have changed: the call is protected and budgeted like a hook's. */
    if (sandbox_pcall(p->box, 1, 0) != LUA_OK) {
        log_warn(p->log_limit, "policy: cannot seed math.random: %s", error_message(L));
        lua_pop(L, 1);
    }
}

void policy_push_record(lua_State *L, const member *r) {
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, r->base_url, r->url_len);
    lua_setfield(L, -2, "baseUrl");
    lua_pushboolean(L, r->monitor);
    lua_setfield(L, -2, "monitor");
    lua_pushinteger(L, r->last_update);
    lua_setfield(L, -2, "lastUpdate");
}

/* An array (marked for JSON) of the records of status `s`, self included or not. */
void policy_push_records(lua_State *L, const membership *m, member_status s, bool with_self) {
    lua_createtable(L, (int)m->count, 0);
    lua_Integer n = 0;
    for (size_t i = 0; i < m->count; i++) {
        const member *r = m->members[i];
        if (r->status != s || (!with_self && r == m->self)) continue;
        policy_push_record(L, r);
        lua_rawseti(L, -2, ++n);
    }
    lua_array_push_mt(L);
    lua_setmetatable(L, -2);
}

static void push_peers_and_self(policy *p, void *ctx, int *nargs) {
    membership *m = ctx;
    policy_push_records(p->L, m, MEMBER_ONLINE, false);
    policy_push_record(p->L, m->self);
    *nargs = 2;
}

/* A baseUrl that names a known online peer other than this node, else NULL. */
static const member *online_peer(membership *m, lua_State *L, int index) {
    size_t len;
    const char *url = lua_tolstring(L, index, &len);
    const member *r = url ? membership_find(m, url, len) : NULL;
    return r && r != m->self && r->status == MEMBER_ONLINE ? r : NULL;
}

static const char *check_target(policy *p, void *ctx) {
    if (lua_isnil(p->L, -1)) return NULL;
    if (lua_type(p->L, -1) != LUA_TSTRING) return "returned neither a baseUrl nor nil";
    return online_peer(ctx, p->L, -1) ? NULL : "returned a baseUrl that is not a known online peer";
}

const member *policy_gossip_target(policy *p, membership *m) {
    if (!call_hook(p, "gossip_target", push_peers_and_self, check_target, m)) return NULL;
    const member *r = lua_isnil(p->L, -1) ? NULL : online_peer(m, p->L, -1);
    lua_pop(p->L, 1);
    return r;
}

static const char *check_target_list(policy *p, void *ctx) {
    lua_State *L = p->L;
    if (!lua_istable(L, -1)) return "returned something other than a list of baseUrls";
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        bool ok = lua_type(L, -1) == LUA_TSTRING && online_peer(ctx, L, -1);
        lua_pop(L, 1);
        if (!ok) return "returned a list holding something other than known online peers";
    }
    return NULL;
}

size_t policy_targets(policy *p, membership *m, targets_kind kind, const member **out) {
    const char *name = kind == TARGETS_BOOTSTRAP ? "bootstrap_targets" : "shutdown_targets";
    if (!call_hook(p, name, push_peers_and_self, check_target_list, m)) return 0;
    lua_State *L = p->L;
    size_t count = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n && count < m->count; i++) {
        lua_rawgeti(L, -1, i);
        const member *r = online_peer(m, L, -1);
        lua_pop(L, 1);
        bool duplicate = false;
        for (size_t j = 0; j < count && !duplicate; j++) duplicate = out[j] == r;
        if (!duplicate) out[count++] = r;
    }
    lua_pop(L, 1);
    return count;
}

/* ---- probes of offline peers -------------------------------------------------------------- */

typedef struct probe_args {
    membership *m;
    int64_t now_ms;
    size_t count; /* offline peers younger than the purge horizon */
} probe_args;

static bool probe_candidate(const probe_args *a, const member *r) {
    return r != a->m->self && r->status == MEMBER_OFFLINE && !membership_expired(r->last_update, a->now_ms);
}

static void push_probe_args(policy *p, void *ctx, int *nargs) {
    lua_pushinteger(p->L, (lua_Integer)((probe_args *)ctx)->count);
    *nargs = 1;
}

static const char *check_probe(policy *p, void *ctx) {
    if (lua_isnil(p->L, -1)) return NULL;
    int isnum;
    lua_Integer k = lua_tointegerx(p->L, -1, &isnum);
    return isnum && k >= 1 && (lua_Unsigned)k <= ((probe_args *)ctx)->count
               ? NULL
               : "returned neither nil nor a position among the offline peers (1..count)";
}

/* Only a count goes to the hook, not the records: a state of 100,000 offline records would
 * otherwise be copied into Lua every round for one choice. */
const member *policy_probe_target(policy *p, membership *m, int64_t now_ms) {
    probe_args a = {m, now_ms, 0};
    for (size_t i = 0; i < m->count; i++) a.count += probe_candidate(&a, m->members[i]);
    if (a.count == 0 || !call_hook(p, "probe_target", push_probe_args, check_probe, &a)) return NULL;
    lua_Integer k = lua_isnil(p->L, -1) ? 0 : lua_tointeger(p->L, -1);
    lua_pop(p->L, 1);
    for (size_t i = 0; k > 0 && i < m->count; i++)
        if (probe_candidate(&a, m->members[i]) && --k == 0) return m->members[i];
    return NULL;
}

typedef struct delay_args {
    double a, b;
    int count;
} delay_args;

static void push_delay_args(policy *p, void *ctx, int *nargs) {
    delay_args *d = ctx;
    lua_pushnumber(p->L, d->a);
    if (d->count > 1) lua_pushnumber(p->L, d->b);
    *nargs = d->count;
}

static const char *check_delay(policy *p, void *ctx) {
    (void)ctx;
    int isnum;
    double d = lua_tonumberx(p->L, -1, &isnum);
    /* Any finite positive delay: the configured intervals may be days long, and the engine
     * arms no timer for more than 30 days (engine.c, ARM_MAX_SECONDS), which keeps the
     * timeval arithmetic safe whatever a hook answers. */
    return isnum && isfinite(d) && d > 0 ? NULL : "returned something other than a finite number of seconds > 0";
}

static double delay_hook(policy *p, const char *name, delay_args *args, double fallback) {
    if (!call_hook(p, name, push_delay_args, check_delay, args)) return fallback;
    double d = lua_tonumber(p->L, -1);
    lua_pop(p->L, 1);
    return d;
}

double policy_gossip_delay(policy *p, double interval) {
    delay_args args = {interval, 0, 1};
    return delay_hook(p, "gossip_delay", &args, interval);
}

double policy_announce_delay(policy *p, double minimum, double interval) {
    delay_args args = {minimum, interval, 2};
    return delay_hook(p, "announce_delay", &args, minimum + interval > 0 ? minimum + interval : 1);
}

/* ---- change events ----------------------------------------------------------------------- */

static void push_side(lua_State *L, const char *name, int has, int online, int monitor, long long last_update) {
    if (!has) return; /* nil */
    lua_createtable(L, 0, 3);
    lua_pushstring(L, online ? "online" : "offline");
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)last_update);
    lua_setfield(L, -2, "lastUpdate");
    lua_pushboolean(L, monitor);
    lua_setfield(L, -2, "monitor");
    lua_setfield(L, -2, name);
}

void policy_push_event(lua_State *L, const shazbot_event *ev) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)ev->seq);
    lua_setfield(L, -2, "seq");
    lua_pushstring(L, ev->kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, ev->base_url);
    lua_setfield(L, -2, "baseUrl");
    lua_pushinteger(L, (lua_Integer)ev->time_ms);
    lua_setfield(L, -2, "time");
    push_side(L, "before", ev->has_before, ev->before_online, ev->before_monitor, ev->before_last_update);
    push_side(L, "after", ev->has_after, ev->after_online, ev->after_monitor, ev->after_last_update);
}

static void push_event_arg(policy *p, void *ctx, int *nargs) {
    policy_push_event(p->L, ctx);
    *nargs = 1;
}

static const char *accept_anything(policy *p, void *ctx) { return NULL; }

bool policy_has_on_change(const policy *p) { return p->user_on_change; }

void policy_on_change(policy *p, const shazbot_event *ev) {
    if (!p->user_on_change) return;
    if (call_hook(p, "on_change", push_event_arg, accept_anything, (void *)ev)) lua_pop(p->L, 1);
}

/* ---- Lua values as JSON ------------------------------------------------------------------ */

static int compare_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lua value -> JSON. Tables marked with array() or holding 1..n are arrays (and empty ones
 * when `empty_is_array`), other tables objects with string keys. Returns NULL, or why the
 * value cannot be written. */
static const char *encode(lua_State *L, int index, buf *out, bool empty_is_array, int depth) {
    index = lua_absindex(L, index);
    if (depth > ENCODE_MAX_DEPTH) return "nested too deeply (a cycle?)";
    switch (lua_type(L, index)) {
    case LUA_TNIL:
    case LUA_TLIGHTUSERDATA:
        buf_add_str(out, "null");
        return NULL;
    case LUA_TBOOLEAN:
        buf_add_str(out, lua_toboolean(L, index) ? "true" : "false");
        return NULL;
    case LUA_TNUMBER:
        if (lua_isinteger(L, index)) buf_printf(out, "%lld", (long long)lua_tointeger(L, index));
        else if (isfinite(lua_tonumber(L, index))) buf_printf(out, "%.17g", lua_tonumber(L, index));
        else buf_add_str(out, "null");
        return NULL;
    case LUA_TSTRING:
        wire_write_string(out, lua_tostring(L, index));
        return NULL;
    case LUA_TTABLE:
        break;
    default:
        return "holds a value that JSON cannot represent";
    }
    /* Each level holds a few values on the stack, which a C function must reserve. */
    if (!lua_checkstack(L, 4)) return "could not be written: out of memory";
    lua_Integer n = (lua_Integer)lua_rawlen(L, index);
    bool marked = false;
    if (lua_getmetatable(L, index)) {
        lua_array_push_mt(L);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    bool empty = false;
    if (empty_is_array && n == 0) {
        lua_pushnil(L);
        if (lua_next(L, index)) lua_pop(L, 2);
        else empty = true;
    }
    if (marked || n > 0 || empty) {
        buf_add(out, "[", 1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1) buf_add(out, ",", 1);
            lua_rawgeti(L, index, i);
            const char *why = encode(L, -1, out, empty_is_array, depth + 1);
            lua_pop(L, 1);
            if (why) return why;
        }
        buf_add(out, "]", 1);
        return NULL;
    }
    /* Keys in sorted order, so that the same payload always reads the same. The key strings
     * stay alive: the table holds them. */
    size_t count = 0, capacity = 16;
    const char **keys = malloc(capacity * sizeof *keys);
    if (!keys) return "could not be written: out of memory";
    lua_pushnil(L);
    while (lua_next(L, index)) {
        lua_pop(L, 1);
        const char *problem = lua_type(L, -1) != LUA_TSTRING ? "holds a table with keys that are not strings" : NULL;
        if (!problem && count == capacity) {
            const char **grown = realloc(keys, (capacity *= 2) * sizeof *keys);
            if (grown) keys = grown;
            else problem = "could not be written: out of memory";
        }
        if (problem) {
            lua_pop(L, 1);
            free(keys);
            return problem;
        }
        keys[count++] = lua_tostring(L, -1);
    }
    qsort(keys, count, sizeof *keys, compare_keys);
    buf_add(out, "{", 1);
    const char *why = NULL;
    for (size_t i = 0; i < count && !why; i++) {
        if (i) buf_add(out, ",", 1);
        wire_write_string(out, keys[i]);
        buf_add(out, ":", 1);
        lua_getfield(L, index, keys[i]);
        why = encode(L, -1, out, empty_is_array, depth + 1);
        lua_pop(L, 1);
    }
    free(keys);
    buf_add(out, "}", 1);
    return why;
}

const char *policy_encode_json(lua_State *L, int index, buf *out, bool empty_is_array) {
    return encode(L, index, out, empty_is_array, 0);
}

/* ---- the health payload (its shape is happy.c's) ----------------------------------------- */

static void push_records_with_self(lua_State *L, membership *m, member_status s) {
    policy_push_records(L, m, s, true);
}

typedef struct health_ctx {
    health_info info;
    buf json;
} health_ctx;

static void push_health_info(policy *p, void *ctx, int *nargs) {
    health_ctx *h = ctx;
    /* As of this attempt: the default's info counts the failure of the user's hook. */
    h->info.policy_failures = p->failures;
    happy_push_info(p->L, &h->info, push_records_with_self);
    *nargs = 1;
}

static const char *check_health(policy *p, void *ctx) {
    health_ctx *h = ctx;
    if (!lua_istable(p->L, -1)) return "returned something other than a table";
    buf_free(&h->json);
    /* The instruction budget does not cover the encoding, but the memory cap bounds it. */
    return policy_encode_json(p->L, -1, &h->json, false);
}

/* Whether the health hook call_hook would try first is core.health_payload itself (the
 * default policy's): its payload can then be written without building it in Lua. */
static int find_health(lua_State *L) {
    const policy *p = lua_touserdata(L, 1);
    int refs[2] = {p->user_ref, p->default_ref};
    for (int i = 0; i < 2; i++) {
        if (refs[i] == LUA_NOREF) continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, refs[i]);
        lua_getfield(L, -1, "health");
        if (lua_isfunction(L, -1)) {
            lua_pushboolean(L, lua_tocfunction(L, -1) == happy_lua_payload);
            return 1;
        }
        lua_pop(L, 2);
    }
    lua_pushboolean(L, 0);
    return 1;
}

static bool health_is_builtin(policy *p) {
    lua_State *L = p->L;
    lua_pushcfunction(L, find_health);
    lua_pushlightuserdata(L, p);
    /* Protected and budgeted: a policy table's __index may be a function. */
    bool builtin = sandbox_pcall(p->box, 1, 1) == LUA_OK && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return builtin;
}

void policy_health(policy *p, const health_info *info, buf *out) {
    health_ctx h = {*info, {0}};
    if (health_is_builtin(p)) {
        h.info.policy_failures = p->failures;
        happy_write_payload(out, &h.info);
        return;
    }
    if (call_hook(p, "health", push_health_info, check_health, &h)) {
        lua_pop(p->L, 1);
        buf_add(out, h.json.data, h.json.len);
    } else {
        h.info.policy_failures = p->failures;
        happy_write_fallback(out, &h.info);
    }
    buf_free(&h.json);
}

/* ---- the quick checks ------------------------------------------------------------------------ */

/* At most this many failed checks are named: /happy stays small whatever a hook answers. */
#define HEALTH_CHECKS_MAX 64

typedef struct checks_ctx {
    health_info info; /* without the records */
    bool called;      /* a health_checks function was found and called */
    char **names;
    size_t count;
} checks_ctx;

static void push_checks_info(policy *p, void *ctx, int *nargs) {
    checks_ctx *c = ctx;
    c->called = true;
    c->info.policy_failures = p->failures;
    happy_push_info(p->L, &c->info, NULL);
    *nargs = 1;
}

static void drop_names(checks_ctx *c) {
    for (size_t i = 0; i < c->count; i++) free(c->names[i]);
    free(c->names);
    c->names = NULL;
    c->count = 0;
}

/* { [name] = true } passes; false or a string (why) fails. Runs protected (run_hook): the
 * iteration may raise (memory), and the names are copied as they are found. */
static const char *check_checks(policy *p, void *ctx) {
    checks_ctx *c = ctx;
    lua_State *L = p->L;
    drop_names(c);
    if (!lua_istable(L, -1)) return "returned something other than a table";
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING) return "returned a table with a key that is not a name";
        int t = lua_type(L, -1);
        if (t != LUA_TBOOLEAN && t != LUA_TSTRING) return "returned a check that is neither a boolean nor a string";
        if (!(t == LUA_TBOOLEAN && lua_toboolean(L, -1)) && c->count < HEALTH_CHECKS_MAX) {
            if (!c->names && !(c->names = calloc(HEALTH_CHECKS_MAX, sizeof *c->names))) return "out of memory";
            if (!(c->names[c->count] = strdup(lua_tostring(L, -2)))) return "out of memory";
            c->count++;
        }
        lua_pop(L, 1);
    }
    return NULL;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void policy_health_checks(policy *p, const health_info *info, char ***names, size_t *count) {
    checks_ctx c = {.info = *info};
    c.info.m = NULL;
    if (call_hook(p, "health_checks", push_checks_info, check_checks, &c)) {
        lua_pop(p->L, 1);
    } else {
        drop_names(&c);
        if (c.called && (c.names = calloc(1, sizeof *c.names)) && !(c.names[0] = strdup("health_checks"))) {
            free(c.names);
            c.names = NULL;
        }
        if (c.names) c.count = 1;
    }
    if (c.count) qsort(c.names, c.count, sizeof *c.names, compare_names);
    *names = c.names;
    *count = c.count;
}
