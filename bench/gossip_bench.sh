#!/usr/bin/env bash
# Benchmark (not a test): POST /clustershazbot/gossip driven by wrk (1 thread, 16 connections,
# 10 s) at 100, 1,000 and 10,000 records, with the node's CPU time per request; the same
# 100-record request with a wrong secret (the HTTP layer alone: read in full, answered 401,
# nothing parsed); the RSS of an idle node holding 20 records; and GET /happy on a node
# holding 100,000 records (the time to its first byte: the node builds the whole answer
# first, on its one thread, where gossip waits meanwhile).
#
#   bench/gossip_bench.sh [path/to/clustershazbot]     default: a Release build in build-bench/
#   RUNS=3 bench/gossip_bench.sh                       each configuration 3 times (default 1)
#   ONLY=happy bench/gossip_bench.sh                   the /happy figure alone
#   ONLY=gossip bench/gossip_bench.sh                  the gossip rows alone (100, 1,000, 10,000)
#
# Everything runs on 127.0.0.1, every step is bounded in time, and whatever the script started
# is stopped on exit. The nodes never gossip or announce during a run (both timers are set to
# an hour), and the records they are given name loopback addresses only (make_body.lua).
set -euo pipefail
case ${1:-} in "" | /*) bin=${1:-} ;; *) bin=$PWD/$1 ;; esac
cd "$(dirname "$0")/.."
bin=${bin:-$PWD/build-bench/clustershazbot}
runs=${RUNS:-1}
if [ ! -x "$bin" ]; then
  [ -z "${1:-}" ] || { echo "no program at $bin" >&2; exit 2; }
  echo "building $bin (Release)..." >&2
  timeout 600 cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  timeout 600 cmake --build build-bench -j"$(nproc)" >/dev/null
fi
for tool in wrk curl lua5.4; do
  command -v $tool >/dev/null || { echo "$tool is missing (Debian packages wrk, curl, lua5.4, lua-socket)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=() # still running
# SIGKILL, not SIGTERM: a node that leaves gracefully first tells its peers goodbye, and its
# peers here are made-up records; there is nothing to measure in that.
stop() {
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local left=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || left+=("$p"); done
  pids=("${left[@]}")
}
cleanup() {
  for p in "${pids[@]}"; do stop "$p"; done
  rm -rf "$work"
}
trap cleanup EXIT

# A free port below the kernel's ephemeral range, which outgoing connections draw from.
free_port() {
  timeout 10 lua5.4 -e 'local socket = require "socket"
    for _ = 1, 1000 do
      local p = math.random(20000, 32000)
      local s = socket.bind("127.0.0.1", p)
      if s then s:close(); print(p); return end
    end
    error("no free port")'
}
wait_up() {
  for _ in $(seq 100); do curl -sf -m 1 -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "no answer from $1 (logs in $work)" >&2
  exit 1
}

store_port=$(free_port)
"$bin" store --listen "127.0.0.1:$store_port" --file "$work/list.json" --auth bench >"$work/store.log" 2>&1 &
pids+=($!)
wait_up "http://127.0.0.1:$store_port/"

# Starts a quiet node and sets `port` and `pid`. Not in a subshell, so that cleanup knows
# the pid.
start_node() {
  port=$(free_port)
  env SHAZBOT_SECRET=bench SHAZBOT_CONTROL_SECRET=bench-control \
      SHAZBOT_BASE_URL="http://127.0.0.1:$port/" SHAZBOT_LISTEN="127.0.0.1:$port" \
      SHAZBOT_MASTER_LIST="http://127.0.0.1:$store_port/" \
      SHAZBOT_MASTER_LIST_UPDATE="http://127.0.0.1:$store_port/" \
      SHAZBOT_MASTER_LIST_UPDATE_AUTH=bench SHAZBOT_GOSSIP_INTERVAL=3600 \
      SHAZBOT_MASTER_ANNOUNCE_MINIMUM=3600 SHAZBOT_MASTER_ANNOUNCE_INTERVAL=3600 \
      SHAZBOT_MAX_BODY=67108864 SHAZBOT_LOG_LEVEL=error HAPPY_SECRET=none \
      "$bin" serve >>"$work/nodes.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_up "http://127.0.0.1:$port/clustershazbot/list"
}

# Gives the node the records of body file $2, so that the run measures a node that holds them.
post() {
  curl -sf -m 30 -o /dev/null -H "Authorization: bench" -H "Content-Type: application/json" \
       --data-binary "@$2" "http://127.0.0.1:$1/clustershazbot/gossip" ||
    { echo "the node refused $2 (logs in $work)" >&2; exit 1; }
}

# CPU time of a process in clock ticks (user + system), from /proc.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)

# "node CPU/request": the node's CPU time during the run divided by the requests. The node
# is one thread: at 100 % of a core, requests/s is about 1e6 / this figure, and on a shared
# machine this figure moves less than requests/s does.
# One wrk run of 10 s against a fresh node holding the records of body file $2, posting that
# body with secret $3; prints a row labelled $1. A wrong secret measures the HTTP layer alone:
# the same request read in full and answered 401, with nothing parsed.
measure() {
  local label=$1 body=$2 secret=$3 ticks_before ticks result rps p99 bad_status socket_errors requests cpu_us
  start_node
  post "$port" "$body"
  ticks_before=$(cpu_ticks "$pid")
  result=$(BODY_FILE="$body" SECRET=$secret timeout 60 wrk -t1 -c16 -d10s --latency -s bench/gossip.lua \
             "http://127.0.0.1:$port/clustershazbot/gossip" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}')
  ticks=$(( $(cpu_ticks "$pid") - ticks_before ))
  [ -n "$result" ] || { echo "wrk failed against $label (logs in $work)" >&2; exit 1; }
  read -r rps p99 bad_status socket_errors requests <<<"$result"
  cpu_us=$(awk -v t="$ticks" -v hz="$ticks_per_second" -v n="$requests" 'BEGIN { printf "%.1f us", n ? t * 1e6 / hz / n : 0 }')
  printf "%-12s %10s %12s %10s %18s" "$label" "$(stat -c %s "$body")" "$rps" "$p99" "$cpu_us"
  [ "$secret" = bench ] || bad_status=0 # every answer is a 401 there, as intended
  [ "$bad_status$socket_errors" = "00" ] || printf "   (non-2xx: %s, socket errors: %s)" "$bad_status" "$socket_errors"
  echo
  stop "$pid"
}

# GET /happy, 20 times one after the other, on a node holding 100,000 records.
happy() {
  local body=$work/body-100000.json times
  [ -s "$body" ] || timeout 60 lua5.4 bench/make_body.lua 100000 >"$body"
  start_node
  post "$port" "$body"
  times=$(for _ in $(seq 20); do
    curl -sf -m 30 -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$port/happy" ||
      { echo "no /happy from the node (logs in $work)" >&2; exit 1; }
  done | sort -n)
  awk '{ ms[NR] = $1 * 1000 } END { printf "GET /happy, 100,000 records: median %.1f ms, min %.1f, max %.1f (first byte, 20 requests)\n", ms[int((NR + 1) / 2)], ms[1], ms[NR] }' <<<"$times"
  stop "$pid"
}
if [ "${ONLY:-}" = happy ]; then
  for _ in $(seq "$runs"); do happy; done
  exit 0
fi

printf "%-12s %10s %12s %10s %18s\n" records "body bytes" "requests/s" "p99 ms" "node CPU/request"
for records in 100 1000 10000; do
  body="$work/body-$records.json"
  timeout 60 lua5.4 bench/make_body.lua "$records" >"$body"
  for _ in $(seq "$runs"); do measure "$records" "$body" bench; done
done
[ "${ONLY:-}" != gossip ] || exit 0
for _ in $(seq "$runs"); do measure "100, 401" "$work/body-100.json" wrong-secret; done

for _ in $(seq "$runs"); do
  start_node
  timeout 60 lua5.4 bench/make_body.lua 20 >"$work/body-20.json"
  post "$port" "$work/body-20.json"
  sleep 1 # idle: let the node settle after the request
  rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  anon_kb=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
  pss_kb=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
  printf "idle node, 20 records: RSS %d KB (%.2f MB); private (RssAnon) %d KB; PSS %d KB\n" \
    "$rss_kb" "$(awk -v kb="$rss_kb" 'BEGIN { print kb / 1024 }')" "$anon_kb" "$pss_kb"
  stop "$pid"
done
for _ in $(seq "$runs"); do happy; done
# The floor: what linking the same libraries costs a program that does nothing else.
floor=$(dirname "$bin")/bench_rss_floor
[ ! -x "$floor" ] || timeout 10 "$floor"
