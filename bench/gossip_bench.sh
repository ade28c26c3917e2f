#!/usr/bin/env bash
# Benchmark (not a test): POST /clustershazbot/gossip driven by wrk (1 thread, 16 connections,
# 10 s) at 100, 1,000 and 10,000 records, and the RSS of an idle node holding 20 records.
#
#   bench/gossip_bench.sh [path/to/clustershazbot]     default: a Release build in build-bench/
#
# Everything runs on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build-bench/clustershazbot}
if [ ! -x "$bin" ]; then
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  cmake --build build-bench -j"$(nproc)" >/dev/null
fi
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A free port below the kernel's ephemeral range, which outgoing connections draw from.
free_port() {
  lua5.4 -e 'local socket = require "socket"
    for _ = 1, 1000 do
      local p = math.random(20000, 32000)
      local s = socket.bind("127.0.0.1", p)
      if s then s:close(); print(p); return end
    end
    error("no free port")'
}
wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

store_port=$(free_port)
"$bin" store --listen "127.0.0.1:$store_port" --file "$work/list.json" --auth bench >"$work/store.log" 2>&1 &
pids+=($!)
wait_up "http://127.0.0.1:$store_port/"

# Starts a quiet node (no gossip rounds or announcements during the run) and sets port and
# pid. Not in a subshell, so that cleanup knows the pid.
start_node() {
  port=$(free_port)
  env SHAZBOT_SECRET=bench SHAZBOT_CONTROL_SECRET=bench-control \
      SHAZBOT_BASE_URL="http://127.0.0.1:$port/" SHAZBOT_LISTEN="127.0.0.1:$port" \
      SHAZBOT_MASTER_LIST="http://127.0.0.1:$store_port/" SHAZBOT_MASTER_LIST_UPDATE="http://127.0.0.1:$store_port/" \
      SHAZBOT_MASTER_LIST_UPDATE_AUTH=bench SHAZBOT_GOSSIP_INTERVAL=3600 \
      SHAZBOT_MASTER_ANNOUNCE_MINIMUM=3600 SHAZBOT_MAX_BODY=67108864 SHAZBOT_LOG_LEVEL=error \
      "$bin" serve >>"$work/nodes.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_up "http://127.0.0.1:$port/clustershazbot/list"
}

post() { curl -sf -o /dev/null -H "Authorization: bench" --data-binary "@$2" "http://127.0.0.1:$1/clustershazbot/gossip"; }

printf "%-8s %10s %12s %10s\n" records "body bytes" "requests/s" "p99 ms"
for records in 100 1000 10000; do
  start_node
  body="$work/body-$records.json"
  lua5.4 bench/make_body.lua "$records" >"$body"
  post "$port" "$body"
  result=$(BODY_FILE="$body" SECRET=bench timeout 60 wrk -t1 -c16 -d10s --latency -s bench/gossip.lua \
             "http://127.0.0.1:$port/clustershazbot/gossip" | awk '/^RESULT/ {print $2, $3, $4, $5}')
  read -r rps p99 bad_status socket_errors <<<"$result"
  printf "%-8s %10s %12s %10s" "$records" "$(stat -c %s "$body")" "$rps" "$p99"
  [ "$bad_status$socket_errors" = "00" ] || printf "   (non-2xx: %s, socket errors: %s)" "$bad_status" "$socket_errors"
  echo
  kill "$pid"
done

start_node
lua5.4 bench/make_body.lua 20 >"$work/body-20.json"
post "$port" "$work/body-20.json"
sleep 1 # idle: let the node settle after the request
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
anon_kb=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
pss_kb=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
printf "idle node, 20 records: RSS %d KB (%.2f MB); private (RssAnon) %d KB; PSS %d KB\n" \
  "$rss_kb" "$(echo "$rss_kb / 1024" | bc -l)" "$anon_kb" "$pss_kb"
# The floor: what linking the same libraries costs a program that does nothing else.
if [ -x build-bench/bench_rss_floor ]; then build-bench/bench_rss_floor; fi
