/* pattern_bound: see pattern_bound.h. The pattern is read item by item as Lua 5.4 reads it
 * (lstrlib.c's grammar, written here from the manual, section 6.4.1): a single character
 * class (a character, ".", "%x" or a set "[...]") with an optional repetition, or %b, %f, a
 * back-reference, a capture parenthesis, or the anchors. Malformed patterns are left to Lua's
 * matcher, which refuses them with its own message. */
#include "pattern_bound.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Index just past the set starting at p[i] == '[' (Lua: a ']' right after "[" or "[^" is a
 * member; "%x" escapes one character), or len when it is not closed. */
static size_t skip_set(const char *p, size_t len, size_t i) {
    i++;
    if (i < len && p[i] == '^') i++;
    if (i < len && p[i] == ']') i++;
    while (i < len && p[i] != ']') i += p[i] == '%' && i + 1 < len ? 2 : 1;
    return i < len ? i + 1 : len;
}

double pattern_bound_steps(const char *p, size_t len, size_t subject_len) {
    double scan = (double)subject_len + 1; /* the choices of an item that scans the subject */
    size_t i = 0;
    double steps = 1, items = 1;
    if (len > 0 && p[0] == '^') i = 1;
    else steps = scan; /* every start position is tried */
    while (i < len) {
        items++;
        char c = p[i];
        if (c == '(' || c == ')') { /* a capture, or "()" a position: no choice */
            i++;
            continue;
        }
        if (c == '$' && i + 1 == len) break;
        if (c == '%' && i + 1 < len) {
            char k = p[i + 1];
            if (k == 'b') { /* %bxy scans to the balancing y */
                steps *= scan;
                i += 4;
                continue;
            }
            if (k == 'f') { /* %f[set]: a test at one position */
                i = i + 2 < len && p[i + 2] == '[' ? skip_set(p, len, i + 2) : i + 2;
                continue;
            }
            if (k >= '0' && k <= '9') { /* a back-reference compares a capture's length */
                steps *= scan;
                i += 2;
                continue;
            }
            i += 2;
        } else if (c == '[') {
            i = skip_set(p, len, i);
        } else {
            i++;
        }
        /* A single character class: its repetition, if any. */
        if (i < len) {
            char q = p[i];
            if (q == '*' || q == '+' || q == '-') {
                steps *= scan;
                i++;
            } else if (q == '?') {
                steps *= 2;
                i++;
            }
        }
    }
    return steps * items;
}

/* The bounded function: upvalue 1 the original, upvalue 2 its name. */
static int bounded_call(lua_State *L) {
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    size_t subject_len, pattern_len;
    /* Checked here, as the original would, so that a wrong argument is named after this
     * function (the original, called from C, would be "?"). */
    luaL_checklstring(L, 1, &subject_len);
    const char *pattern = luaL_checklstring(L, 2, &pattern_len);
    bool plain = strcmp(name, "find") == 0 && lua_toboolean(L, 4); /* find(s, p, init, true): no pattern */
    if (!plain) {
        double steps = pattern_bound_steps(pattern, pattern_len, subject_len);
        if (steps > PATTERN_BOUND_STEPS) {
            char message[256];
            snprintf(message, sizeof message,
                     "string.%s: the pattern \"%.40s%s\" on %zu bytes may take up to %.1e steps, over the "
                     "sandbox's bound of %.0e (anchor it with ^, repeat fewer items, or shorten the subject)",
                     name, pattern, pattern_len > 40 ? "..." : "", subject_len, steps, PATTERN_BOUND_STEPS);
            return luaL_error(L, "%s", message);
        }
    }
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L);
}

void pattern_bound_install(lua_State *L) {
    static const char *const names[] = {"find", "match", "gmatch", "gsub"};
    lua_getglobal(L, "string");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        lua_getfield(L, -1, names[i]);
        lua_pushstring(L, names[i]);
        lua_pushcclosure(L, bounded_call, 2);
        lua_setfield(L, -2, names[i]);
    }
    lua_pop(L, 1);
}
