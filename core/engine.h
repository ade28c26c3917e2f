/* engine: the protocol logic of a node (PROTOCOL.md, "Timers and transfers"), written once
 * against a clock and a transport (driver.h), so that the real node, the simulator and the
 * unit tests all run the same rules. Not a public header. */
#ifndef SHAZBOT_ENGINE_H
#define SHAZBOT_ENGINE_H

#include "node.h"

#define ENGINE_MASTER_LIST_TIMEOUT_MS 10000
#define ENGINE_MASTER_BACKOFF_MAX 60.0
#define ENGINE_ANNOUNCE_MAX_CONFLICTS 5
/* The gossip timeout and retry follow the interval: config_gossip_timeout, _retry. */
/* A fan-out (bootstrap, shutdown) runs at most this many transfers at once: each holds a
 * connection and libcurl's buffers, and a secret holder can make a node know thousands of
 * monitors. The others wait their turn, in the policy's order (the default policy's: its
 * random peers first, then the monitors). */
#define ENGINE_FANOUT_CONCURRENCY 64
/* A waiting goodbye is not started with less than this left before the fan-out deadline:
 * it could not complete, and the node is about to go. */
#define ENGINE_FANOUT_MIN_TIMEOUT_MS 100
/* Shutdown waits this long for the goodbye fan-out, and at most this long in all. */
#define ENGINE_SHUTDOWN_FANOUT_SECONDS 6.0
#define ENGINE_SHUTDOWN_TOTAL_SECONDS 25.0
/* The most bytes of records the state holds: what a peer with the same SHAZBOT_MAX_BODY
 * accepts as a gossip message, less room for the message's own framing. */
static inline size_t engine_state_limit(size_t max_body) {
    return max_body > 4096 ? max_body - 1024 : max_body / 2;
}
/* The longest a timer is armed for (see engine_arm). */
#define ENGINE_ARM_MAX_SECONDS (30.0 * 86400)

/* Sets up `e` from complete settings (copied) with its drivers and its policy (which it then
 * owns, even on failure). Nothing runs yet. False with a message on failure; `e` must then
 * still be given to engine_destroy. */
bool engine_init(engine *e, const shazbot_settings *s, engine_clock clock, engine_transport transport,
                 policy *pol, char *err, size_t err_len);
void engine_destroy(engine *e);

/* 0, or -1 when not in the created state. */
int engine_start(engine *e);
/* Leaves the cluster; done(arg) is called once stopped. -1 when not running. */
int engine_shutdown(engine *e, void (*done)(void *), void *arg);
/* Stops at once, goodbyes or not (a second signal). */
void engine_stop_now(engine *e);

/* A gossip message that was accepted (PROTOCOL.md, POST clustershazbot/gossip): the own
 * record is refreshed, then the entries merged. */
/* `sender`: the Clustershazbot-From header of the request, NULL when none. */
void engine_take_gossip(engine *e, const member_update *u, size_t count, const char *sender);

/* Merges records from anywhere (a peer's message or answer, the master list), logging what
 * the state's limit made it drop (membership_set_limit). */
void engine_merge(engine *e, const member_update *u, size_t count);

/* The process is gone at once (a simulated kill -9): every timer stops, nothing is sent and
 * no callback runs; answers still on their way must not be delivered. */
void engine_halt(engine *e);

/* Gossip, list and control are answered while the node is part of the cluster, and during
 * its shutdown, when answering spreads its goodbye. */
bool engine_serving(const engine *e);

static inline int64_t engine_now(const engine *e) { return e->clock.now_ms(e->clock.ctx); }

/* Arms `t` for `seconds`, clamped to [0, ENGINE_ARM_MAX_SECONDS]: delays come from the
 * configuration and from policy hooks, may be huge, and converting 1e300 to time_t is
 * undefined (on x86-64 it gave a negative timeout, so the timer fired at once, for ever). */
void engine_arm(engine *e, engine_timer *t, double seconds);

#endif
