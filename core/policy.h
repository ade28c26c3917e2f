/* policy: the policy hooks (which peers to talk to, the delays, the health payload), run in a
 * Lua 5.4 sandbox (sandbox.h).
 *
 * The default policy (lua/clustershazbot/policy.lua) is compiled into the library and always
 * loaded; a user script may override any hook and `require "clustershazbot.policy"` to reuse
 * the default. Every call is protected, bounded by the sandbox's instruction budget and memory
 * cap, and its answer is checked here; a hook that fails is logged and counted, and the
 * default hook decides that call instead. The engine never sees a bad answer. */
#ifndef SHAZBOT_POLICY_H
#define SHAZBOT_POLICY_H

#include "buf.h"
#include "config.h"
#include "happy.h"
#include "membership.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct policy policy;
typedef struct lua_State lua_State;

/* `script`: path of a user policy or NULL. */
policy *policy_new(const char *script, char *err, size_t err_len);
/* The same, its Lua state's small blocks from `pool` (block_pool.h), which must outlive it. */
typedef struct block_pool block_pool;
policy *policy_new_pooled(const char *script, block_pool *pool, char *err, size_t err_len);

/* The level its failures are logged against: the node's SHAZBOT_LOG_LEVEL (default info). */
void policy_set_log_level(policy *p, log_level level);
void policy_free(policy *p);

/* A known online peer to gossip with this round, or NULL when there is none. */
const member *policy_gossip_target(policy *p, membership *m);

/* An offline peer, younger than the purge horizon, to probe this round (the probe_target
 * hook chooses which, or none): NULL for none. See engine.c, probes. */
const member *policy_probe_target(policy *p, membership *m, int64_t now_ms);

typedef enum { TARGETS_BOOTSTRAP, TARGETS_SHUTDOWN } targets_kind;
/* Known online peers (never this node), without duplicates. Returns how many were written to
 * `out` (an array of m->count entries). */
size_t policy_targets(policy *p, membership *m, targets_kind kind, const member **out);

/* Seconds until the next gossip round / the next announcement (always > 0). */
double policy_gossip_delay(policy *p, double interval);
double policy_announce_delay(policy *p, double minimum, double interval);

/* Writes the /happy payload as JSON: the health hook's answer, else happy.c's fallback.
 * It fills in `info->policy_failures` itself. */
void policy_health(policy *p, const health_info *info, buf *out);

/* Seeds the generator behind math.random in the policy's state (math.randomseed), so that a
 * simulator running many nodes, each seeded, sees the same random choices (targets, delays)
 * again. A hosted policy's generator is the host's state's, shared by all it runs. */
void policy_seed_random(policy *p, uint64_t seed);

uint64_t policy_failures(const policy *p);

/* The hooks by name, for the failures by hook of /metrics; a hook not listed (one added by a
 * later feature before it is named here) is counted under the last, "other". */
#define POLICY_HOOKS 10
extern const char *const policy_hook_names[POLICY_HOOKS];
uint64_t policy_hook_failures(const policy *p, size_t hook);

/* The policy's quick checks (its health_checks hook, given the health info without the
 * records): the names of those that failed, sorted, in *names (an array of *count strings,
 * each to free, then the array; NULL and 0 when none failed). A hook that fails counts as
 * one failed check, named "health_checks"; a policy without the hook has none. */
void policy_health_checks(policy *p, const health_info *info, char ***names, size_t *count);

/* Runs the on_change hook on `ev` (clustershazbot.h, shazbot_event) when the user's policy
 * has one; its answer is ignored, a failure counted like any hook's. */
struct shazbot_event;
void policy_on_change(policy *p, const struct shazbot_event *ev);
/* Whether policy_on_change would call anything. */
bool policy_has_on_change(const policy *p);


/* True while one of the policy's hooks runs: a host's hook must not step, shut down or free
 * the node that called it. */
bool policy_in_call(const policy *p);

/* ---- for Lua hosts (bindings/lua) ---------------------------------------------------------- */

/* A policy whose hooks are the functions of the table at `hooks_index` in the host's state
 * (missing ones: the default's), run on a thread of that state with the same budget, checks
 * and fallback as a script's. The host's package.preload gains "clustershazbot.core" and
 * "clustershazbot.policy" unless it has them. */
policy *policy_new_hosted(lua_State *host, int hooks_index, char *err, size_t err_len);

/* Pushes the records of status `s` (this node's own too, with `with_self`) as a sequence of
 * records as the hooks see them, marked as a JSON array (policy_encode_json). */
void policy_push_records(lua_State *L, const membership *m, member_status s, bool with_self);

/* Pushes an event as on_change sees it: { seq =, kind =, baseUrl =, time =, before =, after = }. */
void policy_push_event(lua_State *L, const struct shazbot_event *ev);

/* Pushes a record as the hooks see it: { baseUrl =, monitor =, lastUpdate = }. */
void policy_push_record(lua_State *L, const member *r);

/* The loader of "clustershazbot.core" (array(), null, health_payload()), for a host's
 * package.preload. */
int policy_open_core(lua_State *L);

/* Writes the Lua value at `index` as JSON (see policy.c for tables); NULL or why not. */
const char *policy_encode_json(lua_State *L, int index, buf *out, bool empty_is_array);

#endif
