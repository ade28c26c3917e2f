/* clustershazbot simulate: reads the options of a simulation (clustershazbot_sim.h) from the
 * command line and runs it. */
#include "clustershazbot_sim.h"
#include "cli.h"
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const simulate_usage =
    "usage: clustershazbot simulate [options]\n"
    "\n"
    "Runs N virtual nodes in this process, each with the real engine, merge rules, request\n"
    "handlers and policy hooks, over a virtual network on virtual time, and prints per phase\n"
    "the virtual seconds and rounds to its goal, the offline verdicts given (flaps: about\n"
    "nodes that were alive and reachable) and the gossip bytes per node per round.\n"
    "\n"
    "  --nodes N               cluster size (default 50)\n"
    "  --interval S            gossip interval, seconds (default: the profile's or --set one, else 2)\n"
    "  --scenario LIST         phases in order, comma-separated (default converge,kill,partition):\n"
    "                          converge    start from a master list of every node, until all agree\n"
    "                          kill        kill -9 of --kill nodes, until all agree they are offline\n"
    "                          leave       --leave nodes leave gracefully, until all agree\n"
    "                          partition   two random halves cut apart for --partition-seconds, then healed\n"
    "                          loss        --loss of the messages lost for --loss-seconds\n"
    "                          asymmetric  two nodes cannot reach each other for --partition-seconds\n"
    "                          longrun     --kill nodes gone for good, --hours of virtual time (purge)\n"
    "  --seeds K               the master list holds the first K nodes (default: every node)\n"
    "  --kill K                nodes killed (default 1 % of the nodes, at least 1)\n"
    "  --leave K               nodes leaving (default as --kill)\n"
    "  --partition-seconds T   (default 60)\n"
    "  --loss P                share of messages lost, 0 to 1 (default 0.05)\n"
    "  --loss-seconds T        (default 120)\n"
    "  --latency-ms MS         one-way latency of every message (default 1)\n"
    "  --start-spread S        the nodes start one after the other over S seconds (default 1)\n"
    "  --max-wait S            longest wait of a phase for its goal, virtual seconds (default 900)\n"
    "  --hours H               length of longrun (default 48)\n"
    "  --announce-minimum S, --announce-interval S   master-list announcements (default 300, 600)\n"
    "  --policy FILE           a policy script for every node (default: the built-in policy)\n"
    "  --set NAME=VALUE        a setting for every node (SHAZBOT_SUSPICION_WINDOW=0, ...); repeatable\n"
    "  --seed N                the same seed gives the same run (default 1)\n"
    "  --json                  one JSON object instead of the table\n"
    "  --csv FILE              time series: every interval, each running node's online count\n";

static bool read_number(const char *flag, const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v)) {
        fprintf(stderr, "clustershazbot simulate: %s: \"%s\" is not a number\n", flag, text);
        return false;
    }
    *out = v;
    return true;
}

static bool read_count(const char *flag, const char *text, int *out) {
    double v;
    if (!read_number(flag, text, &v)) return false;
    if (v != floor(v) || v < 0 || v > 1e9) {
        fprintf(stderr, "clustershazbot simulate: %s: \"%s\" is not a whole number >= 0\n", flag, text);
        return false;
    }
    *out = (int)v;
    return true;
}

int cli_simulate(int argc, char **argv) {
    if (cli_wants_help(argc, argv, simulate_usage)) return 0;
    shazbot_sim_options o;
    shazbot_sim_options_init(&o);
    struct { const char *flag; double *value; } numbers[] = {
        {"--interval", &o.interval}, {"--partition-seconds", &o.partition_seconds}, {"--loss", &o.loss},
        {"--loss-seconds", &o.loss_seconds}, {"--latency-ms", &o.latency_ms}, {"--start-spread", &o.start_spread},
        {"--max-wait", &o.max_wait}, {"--hours", &o.longrun_hours}, {"--announce-minimum", &o.announce_minimum},
        {"--announce-interval", &o.announce_interval},
    };
    struct { const char *flag; int *value; } counts[] = {
        {"--nodes", &o.nodes}, {"--seeds", &o.seeds}, {"--kill", &o.kill}, {"--leave", &o.leave}};
    const char *settings[33] = {0};
    size_t set_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--json") == 0) {
            o.json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "clustershazbot simulate: unknown option or missing value: %s\n\n%s", flag, simulate_usage);
            return 2;
        }
        const char *value = argv[++i];
        bool known = false, ok = true;
        for (size_t k = 0; !known && k < sizeof numbers / sizeof *numbers; k++)
            if ((known = strcmp(flag, numbers[k].flag) == 0)) ok = read_number(flag, value, numbers[k].value);
        for (size_t k = 0; !known && k < sizeof counts / sizeof *counts; k++)
            if ((known = strcmp(flag, counts[k].flag) == 0)) ok = read_count(flag, value, counts[k].value);
        if (!known && strcmp(flag, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(value, &end, 10);
            known = true;
            ok = !errno && end != value && !*end && value[0] >= '0' && value[0] <= '9'; /* strtoull takes "-1" */
            if (ok) o.seed = seed;
            else fprintf(stderr, "clustershazbot simulate: --seed: \"%s\" is not a whole number\n", value);
        }
        if (!known && (known = strcmp(flag, "--scenario") == 0)) o.scenario = value;
        if (!known && (known = strcmp(flag, "--policy") == 0)) o.policy = value;
        if (!known && (known = strcmp(flag, "--csv") == 0)) o.csv_path = value;
        if (!known && (known = strcmp(flag, "--set") == 0)) {
            if (set_count + 1 >= sizeof settings / sizeof *settings) {
                fprintf(stderr, "clustershazbot simulate: --set: at most %zu settings\n", sizeof settings / sizeof *settings - 1);
                return 2;
            }
            settings[set_count++] = value;
            o.settings = settings;
        }
        if (!known) {
            fprintf(stderr, "clustershazbot simulate: unknown option %s\n\n%s", flag, simulate_usage);
            return 2;
        }
        if (!ok) return 2;
    }
    char err[1024];
    if (shazbot_simulate(&o, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "clustershazbot simulate: %s\n", err);
        return 2;
    }
    return 0;
}
