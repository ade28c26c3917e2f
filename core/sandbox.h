/* sandbox: the Lua state a policy runs in, and the limits on what runs there.
 *
 * Either a state of its own (the standard libraries, at most MEMORY_CAP bytes, debug.sethook
 * refused) or a thread of a host's state (bindings/lua), whose memory is the host's to limit.
 * Code run through sandbox_pcall is bounded by an instruction budget, so that a runaway
 * policy ends in an ordinary Lua error, caught there, rather than in a node that never gets
 * its loop back. */
#ifndef SHAZBOT_SANDBOX_H
#define SHAZBOT_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lua_State lua_State;
typedef struct sandbox sandbox;

typedef struct block_pool block_pool;

/* A state of its own, its small blocks from `pool` (block_pool.h: for many states in one
 * thread, freed after them) or, with NULL, from malloc; NULL when out of memory. */
sandbox *sandbox_new(block_pool *pool);

/* A new thread of `host`'s state: its stack and its budget hook are the sandbox's, whatever
 * the host is running when a policy is called. NULL when out of memory. */
sandbox *sandbox_new_thread(lua_State *host);

/* Closes the own state, or lets the host's collect the thread. */
void sandbox_free(sandbox *sb);

/* Where the policy's code runs (for a thread: one that shares the host's registry). */
lua_State *sandbox_state(const sandbox *sb);
bool sandbox_is_hosted(const sandbox *sb);

/* lua_pcall(L, nargs, nresults, 0) on the sandbox's state, bounded by the instruction budget.
 * Calls may nest (a host's Lua function, called by a policy, may call into its node again):
 * an inner call is charged to the outer one too. Each puts back the debug hook it found, so
 * that a host's own hook on the thread survives. */
int sandbox_pcall(sandbox *sb, int nargs, int nresults);

/* True while a sandbox_pcall on `sb` is under way. */
bool sandbox_in_call(const sandbox *sb);

#endif
