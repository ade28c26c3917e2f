#!/usr/bin/env bash
# A local cluster on loopback: a master-list store and three nodes, with short intervals.
# Builds what is needed first (tools/setup.sh), shows each node's view once they agree, and
# stops everything cleanly on Ctrl-C (the nodes say goodbye to each other).
#
#   examples/local-cluster.sh          run until Ctrl-C
#   examples/local-cluster.sh --once   show the converged cluster, stop, exit (used by CI)
#
# Ports: BASE_PORT (default 7400) for the store, the next three for the nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[ "${1:-}" = "--once" ] && once=true

tools/setup.sh --program build
bin=$PWD/build/clustershazbot
base_port=${BASE_PORT:-7400}
work=$(mktemp -d)
pids=()

# The store and the nodes run in sessions of their own (setsid): Ctrl-C in the terminal then
# reaches this script only, which sends each node one SIGTERM and lets it say goodbye. Were
# they in the terminal's process group, they would get the SIGINT too, and the SIGTERM after
# it would be a second signal: stop at once, without goodbyes. A second Ctrl-C is passed on
# as exactly that, for whoever does not want to wait.
stop() {
  trap - TERM EXIT
  trap 'echo " (stopping at once)"; kill -TERM "${pids[@]:1}" 2>/dev/null || true' INT
  echo
  echo "stopping: the nodes leave the cluster..."
  for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
  kill -TERM "${pids[0]}" 2>/dev/null || true
  wait "${pids[0]}" 2>/dev/null || true
  trap - INT
  echo "stopped; logs and the master list were in $work"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

store_url="http://127.0.0.1:$base_port/"
setsid "$bin" store --listen "127.0.0.1:$base_port" --file "$work/master-list.json" --auth local-update \
  2>"$work/store.log" &
pids+=($!)

for i in 1 2 3; do
  port=$((base_port + i))
  setsid env SHAZBOT_SECRET=local-gossip SHAZBOT_CONTROL_SECRET=local-control \
      SHAZBOT_BASE_URL="http://127.0.0.1:$port/" SHAZBOT_LISTEN="127.0.0.1:$port" \
      SHAZBOT_MASTER_LIST="$store_url" SHAZBOT_MASTER_LIST_UPDATE="$store_url" \
      SHAZBOT_MASTER_LIST_UPDATE_AUTH=local-update \
      SHAZBOT_GOSSIP_INTERVAL=1 SHAZBOT_MASTER_ANNOUNCE_MINIMUM=1 SHAZBOT_MASTER_ANNOUNCE_INTERVAL=2 \
      HAPPY_SECRET=none "$bin" serve 2>"$work/node$i.log" &
  pids+=($!)
done

echo "waiting for the three nodes to find each other..."
deadline=$((SECONDS + 30))
converged() {
  for i in 1 2 3; do
    "$bin" members --url "http://127.0.0.1:$((base_port + i))/" --control-secret local-control 2>/dev/null |
      grep -q "^3 online, 0 offline$" || return 1
  done
}
until converged; do
  if ((SECONDS > deadline)); then
    echo "the cluster did not converge in 30 s; logs in $work" >&2
    exit 1
  fi
  sleep 0.2
done
for i in 1 2 3; do
  echo
  echo "node http://127.0.0.1:$((base_port + i))/ sees:"
  "$bin" members --url "http://127.0.0.1:$((base_port + i))/" --control-secret local-control
done
echo
echo "master list ($store_url): $(curl -sf "$store_url")"
if $once; then exit 0; fi
echo
echo "cluster running; try: $bin members --url http://127.0.0.1:$((base_port + 1))/ --control-secret local-control"
echo "                 or: $bin health --url http://127.0.0.1:$((base_port + 1))/ ; Ctrl-C stops everything"
wait "${pids[0]}"
