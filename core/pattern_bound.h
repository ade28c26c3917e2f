/* pattern_bound: Lua's pattern functions (string.find, match, gmatch, gsub) with a bound on
 * how long one call may take, for the policy sandbox.
 *
 * The instruction budget (sandbox.c) is a count hook, and a hook never fires inside a C
 * function: one string.find of "(.-)(.-)(.-)(.-)x" on 4 KB backtracks for hours with the
 * node's loop blocked (measured: more than 120 s before it was stopped). Lua's matcher tries,
 * at each start position, every length of each repetition in turn, so a call makes at most
 *
 *   starts x (product over the pattern's items of their choices) x (items + 1)
 *
 * steps, where starts is 1 for a pattern anchored with ^ and the subject's length + 1
 * otherwise, and an item's choices are the subject's length + 1 for *, + and - (and for %b
 * and a back-reference %1-%9, which scan), 2 for ?, and 1 otherwise. A call whose bound is
 * over PATTERN_BOUND_STEPS is refused with an ordinary Lua error before it starts, so that the
 * hook fails and is counted as a policy failure; every other call runs Lua's own matcher,
 * unchanged. The bound is an upper one: a refused call might have been quick (a three-part
 * ".-" pattern on a long subject that happens to match early), and a policy that needs one
 * anchors its pattern or shortens the subject. */
#ifndef SHAZBOT_PATTERN_BOUND_H
#define SHAZBOT_PATTERN_BOUND_H

#include <stddef.h>

typedef struct lua_State lua_State;

/* 10^8 steps of Lua's matcher: at most 0.11 s on one core of the machine the tests run on
 * (README, "The policy sandbox"). */
#define PATTERN_BOUND_STEPS 1e8

/* The upper bound above, for `pattern` (`pattern_len` bytes) on a subject of `subject_len`. */
double pattern_bound_steps(const char *pattern, size_t pattern_len, size_t subject_len);

/* Replaces find, match, gmatch and gsub in the `string` table of L (which is also what
 * methods on strings reach) with bounded ones that call the originals. */
void pattern_bound_install(lua_State *L);

#endif
