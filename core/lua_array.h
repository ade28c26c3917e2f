/* lua_array: the mark that makes a Lua table a JSON array (an empty one encodes as [], not
 * {}): a metatable, one per Lua state, shared by every node in it. Used by the policy layer's
 * encoder and core.array (policy.c) and by the /happy payload's tables (happy.c). */
#ifndef SHAZBOT_LUA_ARRAY_H
#define SHAZBOT_LUA_ARRAY_H

#include <lua.h>

/* Pushes the metatable (made on first use). */
void lua_array_push_mt(lua_State *L);
/* Marks the table on top of the stack as a JSON array. */
void lua_array_mark(lua_State *L);

#endif
