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
 * missing ones are the default's). The hooks run on a thread of `L` under the same instruction
 * budget and checks as a SHAZBOT_POLICY script; SHAZBOT_POLICY itself is then ignored. The node
 * must be freed before `L` is closed, and used from the thread that runs `L`. */
shazbot *shazbot_new_lua(const shazbot_settings *s, struct event_base *base, lua_State *L,
                         int hooks_index, char *err, size_t err_len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
