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

tools/setup.sh build
bin=$PWD/build/clustershazbot
base_port=${BASE_PORT:-7400}
work=$(mktemp -d)
pids=()

stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping: the nodes leave the cluster..."
  for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
  kill -TERM "${pids[0]}" 2>/dev/null || true
  wait "${pids[0]}" 2>/dev/null || true
  echo "stopped; logs and the master list were in $work"
}
trap stop INT TERM EXIT

store_url="http://127.0.0.1:$base_port/"
"$bin" store --listen "127.0.0.1:$base_port" --file "$work/master-list.json" --auth local-update \
  2>"$work/store.log" &
pids+=($!)

for i in 1 2 3; do
  port=$((base_port + i))
  env SHAZBOT_SECRET=local-gossip SHAZBOT_CONTROL_SECRET=local-control \
      SHAZBOT_BASE_URL="http://127.0.0.1:$port/" SHAZBOT_LISTEN="127.0.0.1:$port" \
      SHAZBOT_MASTER_LIST="$store_url" SHAZBOT_MASTER_LIST_UPDATE="$store_url" \
      SHAZBOT_MASTER_LIST_UPDATE_AUTH=local-update \
      SHAZBOT_GOSSIP_INTERVAL=1 SHAZBOT_MASTER_ANNOUNCE_MINIMUM=1 SHAZBOT_MASTER_ANNOUNCE_INTERVAL=2 \
      HAPPY_SECRET=none "$bin" serve 2>"$work/node$i.log" &
  pids+=($!)
done

# Prints one node's list as a table; exits 1 until the node lists `want` nodes online.
show=$work/show.lua
cat >"$show" <<'LUA'
local cjson = require "cjson"
local text, want, label = io.read("a"), tonumber(arg[1]), arg[2]
local ok, list = pcall(cjson.decode, text)
if not ok or type(list) ~= "table" or #list.online < want then os.exit(1) end
print(label)
local now = os.time() * 1000
for _, status in ipairs({ "online", "offline" }) do
  for _, r in ipairs(list[status] or {}) do
    print(string.format("  %-28s %-8s monitor=%-5s updated %.1f s ago", r.baseUrl, status,
      tostring(r.monitor), math.max(0, now - r.lastUpdate) / 1000))
  end
end
LUA

echo "waiting for the three nodes to find each other..."
deadline=$((SECONDS + 30))
until all=$(for i in 1 2 3; do
              port=$((base_port + i))
              curl -sf -H "Authorization: local-control" "http://127.0.0.1:$port/clustershazbot/list" |
                lua5.4 "$show" 3 "node http://127.0.0.1:$port/ sees:" || exit 1
            done); do
  if ((SECONDS > deadline)); then
    echo "the cluster did not converge in 30 s; logs in $work" >&2
    exit 1
  fi
  sleep 0.5
done
echo "$all"
echo "master list ($store_url): $(curl -sf "$store_url")"
if $once; then exit 0; fi
echo
echo "cluster running: try 'curl http://127.0.0.1:$((base_port + 1))/happy'; Ctrl-C to stop"
wait "${pids[0]}"
