/* clustershazbot simulate: N virtual nodes in one process, each running the real engine (its
 * rounds, retries, verdicts, bootstrap, announcements and leave), the real merge rules, the
 * real request handlers and JSON, and the real policy hooks, over a virtual network with
 * settable latency, loss and partitions, on virtual time: minutes of a large cluster take as
 * long as their messages take to process, not minutes.
 *
 * What it shows a user before deploying a policy or a setting: how long a cluster takes to
 * converge, to agree on failures, to heal after a partition, how many false "offline"
 * verdicts it gives about live members (flaps), and what it sends. */
#ifndef CLUSTERSHAZBOT_SIM_H
#define CLUSTERSHAZBOT_SIM_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef struct shazbot_sim_options {
    int nodes;                 /* cluster size (default 50) */
    double interval;           /* SHAZBOT_GOSSIP_INTERVAL of every node, seconds (default NAN, unset: that
                                  of `settings`, SHAZBOT_GOSSIP_INTERVAL or SHAZBOT_PROFILE's, else 2) */
    double announce_minimum;   /* SHAZBOT_MASTER_ANNOUNCE_MINIMUM (default 300) */
    double announce_interval;  /* SHAZBOT_MASTER_ANNOUNCE_INTERVAL (default 600) */
    const char *scenario;      /* phases, comma-separated, run in order on one cluster
                                  (default "converge,kill,partition"; see SHAZBOT_SIM_PHASES) */
    int seeds;                 /* the master list holds the first `seeds` nodes (default 0: all) */
    int kill;                  /* nodes killed by "kill" and "longrun" (default 1 % of nodes, at least 1) */
    int leave;                 /* nodes leaving by "leave" (default as kill) */
    double partition_seconds;  /* how long "partition" and "asymmetric" last (default 60) */
    double loss;               /* share of messages lost during "loss" (default 0.05) */
    double loss_seconds;       /* how long "loss" lasts (default 120) */
    double latency_ms;         /* one way, every message (default 1) */
    double start_spread;       /* seconds over which the nodes start, in order (default 1) */
    double max_wait;           /* bound of each phase's wait, virtual seconds (default 900) */
    double longrun_hours;      /* virtual hours of "longrun" (default 48) */
    uint64_t seed;             /* same seed, same run (default 1) */
    const char *policy;        /* a policy script for every node, or NULL for the default */
    int json;                  /* results as one JSON object instead of a table */
    const char *csv_path;      /* if set: time series "t,node,online" every interval */
    /* More settings for every node, "NAME=VALUE" (SHAZBOT_SUSPICION_WINDOW=4, ...), NULL-
     * terminated; NULL for none. Applied after the ones above, checked as a node's are. */
    const char *const *settings;
} shazbot_sim_options;

#define SHAZBOT_SIM_PHASES "converge, kill, leave, partition, loss, asymmetric, longrun"

/* Defaults for every field. */
void shazbot_sim_options_init(shazbot_sim_options *o);

/* Runs the scenario and prints its figures to `out`. Returns 0; -1 with a message when the
 * options are not usable (nothing is run then). */
int shazbot_simulate(const shazbot_sim_options *o, FILE *out, char *err, size_t err_len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
