/* sandbox: see sandbox.h.
 *
 * Budgets: a count hook fires every HOOK_STEP VM instructions and raises an error once a call
 * has used HOOK_BUDGET; the allocator refuses to grow an own state beyond MEMORY_CAP. Both
 * turn a runaway policy into an ordinary Lua error, caught by the protected call. Once over
 * budget the count hook fires at every instruction, so that code catching the error with
 * pcall is stopped at its next instruction outside the pcall. */
#include "sandbox.h"

#include "block_pool.h"
#include "pattern_bound.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define HOOK_STEP 1000
#define HOOK_BUDGET 10000000 /* instructions per call */
#define MEMORY_CAP (64u << 20)

struct sandbox {
    lua_State *L;      /* our own state, or a thread of the host's */
    bool hosted;       /* L is a thread of a host's state */
    int thread_ref;    /* keeps that thread alive in the host's registry */
    size_t memory;     /* our own state's allocation, against MEMORY_CAP */
    long instructions; /* used by the call under way */
    int calls;         /* calls under way */
    block_pool *pool;  /* where the own state's small blocks come from; NULL: malloc */
};

/* The registry key of the sandbox whose call is under way in a state (light userdata). The
 * budget hook finds the sandbox to charge there rather than on the running thread: a
 * coroutine that a policy creates inherits the hook but not our thread, and in a host's state
 * its extra space is the host's. */
static const char running_sandbox_key = 0;

/* realloc, through the block pool for small blocks when the state has one. */
static void *pooled_realloc(block_pool *pool, void *ptr, size_t old_size, size_t new_size) {
    bool was_small = ptr && old_size <= BLOCK_POOL_MAX, small = new_size <= BLOCK_POOL_MAX;
    if (!pool || (!was_small && !small)) return realloc(ptr, new_size);
    if (was_small && small && block_pool_same_class(old_size, new_size)) return ptr;
    void *n = small ? block_pool_get(pool, new_size) : malloc(new_size);
    if (!n) return NULL;
    if (ptr) {
        memcpy(n, ptr, old_size < new_size ? old_size : new_size);
        if (was_small) block_pool_put(pool, ptr, old_size);
        else free(ptr);
    }
    return n;
}

static void *capped_alloc(void *ud, void *ptr, size_t old_size, size_t new_size) {
    sandbox *sb = ud;
    if (!ptr) old_size = 0; /* then old_size names the type of object, not a size */
    if (new_size == 0) {
        if (ptr && sb->pool && old_size <= BLOCK_POOL_MAX) block_pool_put(sb->pool, ptr, old_size);
        else free(ptr);
        sb->memory -= old_size;
        return NULL;
    }
    if (new_size > old_size && sb->memory + (new_size - old_size) > MEMORY_CAP) return NULL;
    void *n = pooled_realloc(sb->pool, ptr, old_size, new_size);
    if (n) sb->memory += new_size - old_size;
    return n;
}

static sandbox *running_sandbox(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &running_sandbox_key);
    sandbox *sb = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return sb;
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    sandbox *sb = running_sandbox(L);
    if (!sb) {
        /* A coroutine made by a policy, resumed by the host after the call: not ours to stop. */
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    sb->instructions += HOOK_STEP;
    if (sb->instructions > HOOK_BUDGET) {
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "instruction budget of %d exceeded", HOOK_BUDGET);
    }
}

/* What a budgeted call replaces, put back when it ends. */
typedef struct budget_scope {
    sandbox *outer_sandbox;
    lua_Hook outer_hook;
    int outer_mask, outer_count;
    long outer_instructions;
} budget_scope;

static void budget_begin(sandbox *sb, budget_scope *scope) {
    lua_State *L = sb->L;
    *scope = (budget_scope){running_sandbox(L), lua_gethook(L), lua_gethookmask(L),
                            lua_gethookcount(L), sb->instructions};
    lua_pushlightuserdata(L, sb);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &running_sandbox_key);
    sb->instructions = 0;
    sb->calls++;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
}

static void budget_end(sandbox *sb, const budget_scope *scope) {
    lua_State *L = sb->L;
    lua_sethook(L, scope->outer_hook, scope->outer_mask, scope->outer_count);
    sb->calls--;
    /* An outer call of ours, if any, paid for this one too. */
    sb->instructions = sb->calls > 0 ? scope->outer_instructions + sb->instructions : 0;
    if (scope->outer_sandbox) lua_pushlightuserdata(L, scope->outer_sandbox);
    else lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &running_sandbox_key);
}

int sandbox_pcall(sandbox *sb, int nargs, int nresults) {
    budget_scope scope;
    budget_begin(sb, &scope);
    int rc = lua_pcall(sb->L, nargs, nresults, 0);
    budget_end(sb, &scope);
    /* The arguments of a hook (a table of every online peer) are garbage once it returns: a
     * young collection now frees them, rather than leaving each node's state holding its last
     * calls' tables until allocation triggers one (in the simulator, 5,000 states held 6 GB of
     * such tables). A host's state collects as its host decides. */
    if (!sb->hosted && sb->calls == 0) lua_gc(sb->L, LUA_GCSTEP, 0);
    return rc;
}

bool sandbox_in_call(const sandbox *sb) { return sb->calls > 0; }

lua_State *sandbox_state(const sandbox *sb) { return sb->L; }

bool sandbox_is_hosted(const sandbox *sb) { return sb->hosted; }

/* debug.sethook in our own state: the instruction budget is a count hook, and a policy that
 * set a hook of its own (or none) would lift its budget for good, so that one endless loop
 * would stop the node. The rest of the debug library stays. */
static int refuse_sethook(lua_State *L) {
    return luaL_error(L, "debug.sethook is not available to policies: the engine's instruction budget uses the hook");
}

/* Lua 5.4 seeds math.random from time(NULL), in seconds, and the address of the state: without
 * address randomisation (AddressSanitizer builds, valgrind, `setarch -R`, some containers)
 * every node started in the same second then drew the same numbers, picked the same peers in
 * the same rounds and jittered its timers alike, and a dead peer went unnoticed for rounds on
 * end, then was found by most nodes at once (measured: 15 s instead of 4 for 2 of 50 nodes).
 * A seed from the kernel makes each state's choices its own. */
static void seed_from_entropy(lua_State *L) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)L;
    }
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, (lua_Integer)seed);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1); /* out of memory: Lua's own seed stays */
    lua_pop(L, 1);
}

sandbox *sandbox_new(block_pool *pool) {
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return NULL;
    sb->pool = pool;
    sb->thread_ref = LUA_NOREF;
    sb->L = lua_newstate(capped_alloc, sb);
    if (!sb->L) {
        free(sb);
        return NULL;
    }
    luaL_openlibs(sb->L);
    /* The count hook never fires inside a C function: a pathological pattern would hold the
     * loop for as long as it backtracks. */
    pattern_bound_install(sb->L);
    seed_from_entropy(sb->L);
    /* Every hook call makes a table of records that is garbage when the call returns: a
     * generational collector frees such young objects in a young collection (see
     * sandbox_pcall), without going over the long-lived policy itself. */
    lua_gc(sb->L, LUA_GCGEN, 0, 0);
    lua_getglobal(sb->L, "debug");
    lua_pushcfunction(sb->L, refuse_sethook);
    lua_setfield(sb->L, -2, "sethook");
    lua_pop(sb->L, 1);
    return sb;
}

sandbox *sandbox_new_thread(lua_State *host) {
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return NULL;
    sb->hosted = true;
    sb->L = lua_newthread(host);
    sb->thread_ref = luaL_ref(host, LUA_REGISTRYINDEX);
    return sb;
}

void sandbox_free(sandbox *sb) {
    if (!sb) return;
    if (sb->hosted) luaL_unref(sb->L, LUA_REGISTRYINDEX, sb->thread_ref);
    else lua_close(sb->L);
    free(sb);
}
