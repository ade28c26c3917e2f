/* policy_seed_random: a seeded policy makes the same random choices again (here the default
 * gossip_delay's jitter), which is what lets a simulator of many nodes repeat a run. And an
 * unseeded one makes choices of its own: two processes started in the same second without
 * address randomisation (setarch -R) draw different numbers. */
#include "check.h"
#include "policy.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* `--draw`: prints the first gossip delays of a fresh, unseeded policy. */
static int draw(void) {
    char err[256];
    policy *p = policy_new(NULL, err, sizeof err);
    if (!p) return 1;
    for (int i = 0; i < ROUNDS; i++) printf("%.17g\n", policy_gossip_delay(p, INTERVAL));
    policy_free(p);
    return 0;
}

/* What `setarch -R <this program> --draw` printed, or NULL where setarch cannot run it. */
static char *draw_without_aslr(void) {
    char self[4096], cmd[4200];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return NULL;
    self[len] = '\0';
    snprintf(cmd, sizeof cmd, "setarch -R '%s' --draw 2>/dev/null", self);
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    char *text = calloc(1, 4096);
    size_t n = text ? fread(text, 1, 4095, f) : 0;
    int status = pclose(f);
    if (!text || status != 0 || n == 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void test_unseeded_states_differ(void) {
    /* Within one second, as nodes started together are: Lua's own seed is the time in
     * seconds and an address, which setarch -R makes the same in every process. */
    time_t start = time(NULL);
    char *a = draw_without_aslr(), *b = draw_without_aslr();
    if (!a || !b) {
        printf("test_policy_seed: setarch -R is not available here; two unseeded processes not compared\n");
    } else if (time(NULL) == start) {
        CHECK(strcmp(a, b) != 0);
    } else {
        printf("test_policy_seed: the second turned between the two draws; not compared\n");
    }
    free(a);
    free(b);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--draw") == 0) return draw();
    test_unseeded_states_differ();
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
