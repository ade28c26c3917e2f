/* happy: the /happy payload. The one place that says which fields it has, in which order, of
 * which type and from which figure, for the three that write it: the default health hook (as
 * a Lua table, which a user's hook may extend before the engine encodes it), the answer when
 * every health hook failed, and /happy/quick (both as JSON, without entering Lua). The health
 * hook's info, from which the payload is built, is built here too. */
#ifndef SHAZBOT_HAPPY_H
#define SHAZBOT_HAPPY_H

#include "buf.h"
#include "membership.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct lua_State lua_State;

/* The name of our quick check (and of our entry in `extensions`): it fails when the engine
 * is not running. */
#define HAPPY_ENTRY_NAME "clustershazbot"

/* happy-server answers 503 to requests this many seconds or less before a planned shutdown. */
#define HAPPY_SHUTDOWN_REFUSAL_SECONDS 10.0

/* What /happy says, and what the health hook is given. */
typedef struct health_info {
    bool running;
    const char *error; /* when the engine is not running, why */
    membership *m;     /* NULL when not running */
    /* Means: per second over the last 10 complete seconds, per minute over the last 3
     * complete minutes (requests.c). */
    double req_per_sec, req_per_min, fails_per_min, err_per_min;
    uint64_t skipped_entries, refutations;
    uint64_t policy_failures; /* policy_health fills it in */
    bool shutdown_planned;    /* the node is leaving: */
    double planned_shutdown_in; /* seconds until it will have stopped, at the latest */
    uint64_t members_online, members_offline; /* trackedValues; this node's record included */
    /* The names of the quick checks of the policy's health_checks hook that failed
     * (policy_health_checks), ours aside. */
    char **check_failures;
    size_t check_failure_count;
} health_info;

/* How the hooks see a list of records: those of `status`, this node's included. */
typedef void happy_push_records_fn(lua_State *L, membership *m, member_status status);

/* Pushes the health hook's info: { running, error, online, offline, reqPerSec, reqPerMin,
 * failsPerMin, errPerMin, skippedEntries, refutations, policyFailures, plannedShutdownIn (when
 * leaving), checkFailures (an array of names), membersOnline, membersOffline }. */
void happy_push_info(lua_State *L, const health_info *info, happy_push_records_fn *push_records);

/* core.health_payload(info): the payload as a table, from an info such as the health hook
 * gets (values taken as they are there: a user's hook may have changed them). */
int happy_lua_payload(lua_State *L);

/* The default health hook's payload (what happy_lua_payload builds from the info
 * happy_push_info pushes) written straight from `info`, without entering Lua: the same fields
 * and values, in the order listed here rather than sorted, the records as the wire writes
 * them (from the membership's cached JSON). At 100,000 records the hook's way took 130 to
 * 205 ms of the node's one thread: a table per record, then each encoded. */
void happy_write_payload(buf *out, const health_info *info);

/* The payload when no health hook could answer. */
void happy_write_fallback(buf *out, const health_info *info);

/* The payload of /happy/quick. */
void happy_write_quick(buf *out, const health_info *info);

#endif
