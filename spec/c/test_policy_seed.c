/* policy_seed_random: a seeded policy makes the same random choices again (here the default
 * gossip_delay's jitter), which is what lets a simulator of many nodes repeat a run. */
#include "check.h"
#include "policy.h"

#include <stdbool.h>

#define ROUNDS 8
#define INTERVAL 10.0

static void gossip_delays(policy *p, uint64_t seed, double out[ROUNDS]) {
    policy_seed_random(p, seed);
    for (int i = 0; i < ROUNDS; i++) out[i] = policy_gossip_delay(p, INTERVAL);
}

static bool same(const double a[ROUNDS], const double b[ROUNDS]) {
    for (int i = 0; i < ROUNDS; i++)
        if (a[i] != b[i]) return false;
    return true;
}

int main(void) {
    char err[256] = "";
    policy *a = policy_new(NULL, err, sizeof err);
    policy *b = policy_new(NULL, err, sizeof err);
    CHECK_STR(err, "");
    if (!a || !b) return check_finish("test_policy_seed");

    double first[ROUNDS], reseeded[ROUNDS], other_state[ROUNDS], other_seed[ROUNDS];
    gossip_delays(a, 42, first);
    gossip_delays(a, 42, reseeded);
    gossip_delays(b, 42, other_state); /* another node of the same simulation */
    gossip_delays(b, UINT64_MAX, other_seed);

    CHECK(same(first, reseeded));
    CHECK(same(first, other_state));
    CHECK(!same(first, other_seed));
    /* The delays are the default hook's (the interval +-10%), not the engine's fallback. */
    for (int i = 0; i < ROUNDS; i++) CHECK(first[i] >= 0.9 * INTERVAL && first[i] <= 1.1 * INTERVAL);
    CHECK(first[0] != first[1]);
    CHECK_INT(policy_failures(a), 0);
    CHECK_INT(policy_failures(b), 0);

    policy_free(a);
    policy_free(b);
    return check_finish("test_policy_seed");
}
