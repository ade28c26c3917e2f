/* clustershazbot for Lua 5.4 hosts: a node whose policy hooks are Lua functions of the host.
 * (The Lua module `clustershazbot` is built on this; C programs embedding Lua 5.4 may use it
 * directly.) */
#ifndef CLUSTERSHAZBOT_LUA_H
#define CLUSTERSHAZBOT_LUA_H

#include "clustershazbot.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lua_State lua_State;

#pragma GCC visibility push(default)

/* Like shazbot_new, with the policy hooks taken from the table at `hooks_index` of `L` (keys
 * gossip_target, bootstrap_targets, shutdown_targets, gossip_delay, announce_delay, health;
 * missing ones are the default's). The hooks run on a thread of `L` through the same code as a
 * SHAZBOT_POLICY script's: the instruction budget (coroutines they make included), the checks
 * of every answer, the failure count and the fallback to the default hook. What differs: they
 * allocate in `L`, so the 64 MiB cap of a script's own state is the host's business, and they
 * share the host's globals. SHAZBOT_POLICY itself is ignored. A hook must not step, run, shut
 * down or free its own node (it runs inside those calls). The node must be freed before `L` is
 * closed, and used from the thread that runs `L`. */
shazbot *shazbot_new_lua(const shazbot_settings *s, struct event_base *base, lua_State *L,
                         int hooks_index, char *err, size_t err_len);

/* 1 while one of the node's policy hooks runs, else 0: a host whose hooks call back into it
 * must refuse to step, run, shut down or free the node from there. */
int shazbot_in_policy_hook(const shazbot *node);

/* Pushes the records the node knows, as its hooks see them: { online = { record... } } and,
 * when `include_offline` is non-zero, `offline = { ... }` beside it; a record is
 * { baseUrl =, monitor =, lastUpdate = }. */
void shazbot_push_server_list(lua_State *L, const shazbot *node, int include_offline);

/* Pushes the Lua value at `index` written as JSON, for a request body built as a table. Empty
 * tables are written as arrays: the protocol's only empty containers are its lists. Returns
 * 0, or -1 with a message (and nothing pushed) when the value has no JSON form. */
int shazbot_push_json(lua_State *L, int index, char *err, size_t err_len);

/* The loader of the "clustershazbot.core" module (array(), null) that policy scripts require,
 * for a host's package.preload: a host's hooks may then require it before any node exists. */
int shazbot_open_core(lua_State *L);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
