/* lua_array: see lua_array.h. */
#include "lua_array.h"

/* The registry key of the metatable. */
static const char array_mt_key = 0;

void lua_array_push_mt(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
}

void lua_array_mark(lua_State *L) {
    lua_array_push_mt(L);
    lua_setmetatable(L, -2);
}
