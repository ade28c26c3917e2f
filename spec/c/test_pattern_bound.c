/* pattern_bound: the bound on Lua's pattern functions in a policy's own state (issue 11, point
 * 5). A pathological pattern fails at once with an ordinary Lua error instead of holding the
 * loop; every other call gives what Lua's own function gives. */
#include "check.h"
#include "pattern_bound.h"
#include "sandbox.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs `code` in the sandbox through sandbox_pcall; the error message, or NULL, and the first
 * result as a string in `result`. */
static const char *run(sandbox *sb, const char *code, char *result, size_t result_len) {
    static char error[512];
    lua_State *L = sandbox_state(sb);
    result[0] = 0;
    if (luaL_loadstring(L, code) != LUA_OK || sandbox_pcall(sb, 0, 1) != LUA_OK) {
        snprintf(error, sizeof error, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return error;
    }
    snprintf(result, result_len, "%s", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
    return NULL;
}

/* `code` runs without an error, and its first result is `want`. A macro, so that a failure
 * names the line of the case. */
#define EXPECT_RESULT(sb, code, want)                                                          \
    do {                                                                                       \
        char result_[256];                                                                     \
        CHECK_STR(run((sb), (code), result_, sizeof result_), NULL);                           \
        CHECK_STR(result_, (want));                                                            \
    } while (0)

static void bounds(void) {
    /* Anchored with one repetition: linear in the subject. */
    CHECK(pattern_bound_steps("^(.*)$", 6, 4096) < 1e5);
    /* A plain pattern: starts x items. */
    CHECK(pattern_bound_steps("abc", 3, 100) == 101 * 4);
    /* Each repetition multiplies by the subject's length + 1; ? by 2. */
    CHECK(pattern_bound_steps("^a*", 3, 9) == 10 * 2);
    CHECK(pattern_bound_steps("^a?", 3, 9) == 2 * 2);
    CHECK(pattern_bound_steps("^%ba)", 5, 9) == 10 * 2);
    /* A set with ] and %] inside is one item; its repetition counts once. */
    CHECK(pattern_bound_steps("^[]%]x]*", 8, 9) == 10 * 2);
    /* The case of the issue: far over the bound. */
    CHECK(pattern_bound_steps("(.-)(.-)(.-)(.-)x", 17, 4096) > 1e15);
}

static void in_a_sandbox(void) {
    sandbox *sb = sandbox_new(NULL);
    CHECK(sb != NULL);
    char result[256];
    /* The case of the issue: one string.find with a pathological pattern on 4 KB. */
    double start = now();
    const char *error = run(sb, "return string.find(string.rep('a', 4096), '(.-)(.-)(.-)(.-)x')", result, sizeof result);
    double took = now() - start;
    CHECK_CONTAINS(error, "string.find: the pattern \"(.-)(.-)(.-)(.-)x\" on 4096 bytes");
    CHECK_CONTAINS(error, "over the sandbox's bound");
    CHECK(took < 0.5);
    /* The same through a method, gmatch, gsub and match. */
    CHECK_CONTAINS(run(sb, "local s = string.rep('a', 4096) return s:find('(.-)(.-)x')", result, sizeof result), "string.find");
    CHECK_CONTAINS(run(sb, "for x in string.rep('a', 4096):gmatch('(.-)(.-)x') do end", result, sizeof result), "string.gmatch");
    CHECK_CONTAINS(run(sb, "return (string.rep('a', 4096):gsub('(.-)(.-)x', ''))", result, sizeof result), "string.gsub");
    CHECK_CONTAINS(run(sb, "return string.rep('a', 4096):match('.*.*.*x')", result, sizeof result), "string.match");
    /* Ordinary calls answer as Lua's own functions do. */
    EXPECT_RESULT(sb, "return select('#', string.find('hello world', 'o w'))", "2");
    EXPECT_RESULT(sb, "return table.concat({string.find('http://a.b:80/', '^https?://([^/:]+):?(%d*)')}, ',')", "1,13,a.b,80");
    EXPECT_RESULT(sb, "local t = {} for k, v in ('a=1, b=2'):gmatch('(%w+)=(%w+)') do t[#t + 1] = k .. v end return table.concat(t, ' ')", "a1 b2");
    EXPECT_RESULT(sb, "return (('  x  '):gsub('^%s*(.-)%s*$', '%1'))", "x");
    EXPECT_RESULT(sb, "return ('x'):rep(3):match('(x)%1')", "x");
    /* A plain find is no pattern: any length. */
    EXPECT_RESULT(sb, "return (string.find(string.rep('(.-)', 2000), '(.-)(.-)', 1, true))", "1");
    /* Numbers are subjects, and a wrong argument gets Lua's own error. */
    EXPECT_RESULT(sb, "return (string.find(12345, '3'))", "3");
    CHECK_CONTAINS(run(sb, "return string.find({}, 'x')", result, sizeof result), "bad argument #1 to 'find'");
    /* The state is usable after a refusal. */
    EXPECT_RESULT(sb, "return ('abc'):upper()", "ABC");
    sandbox_free(sb);
}

int main(void) {
    bounds();
    in_a_sandbox();
    return check_finish("test_pattern_bound");
}
