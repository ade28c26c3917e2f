#!/usr/bin/env bash
# Benchmark (not a test): what a gossip exchange costs, plain, gzip and zstd, at 1,000 and
# 10,000 records. Two nodes with SHAZBOT_COMPRESSION set alike gossip with each other every
# 50 ms for DURATION seconds (default 8); an exchange is one round, a request and its answer.
# Per exchange it prints the bytes on the wire (request + answer bodies, from the nodes' debug
# lines) and the CPU time of both nodes together (both ends: writing, compressing, decoding,
# parsing and merging). Every round changes the records the peer holds of the other node, so
# that each request and each answer is compressed anew, as in a live cluster (no cache hit).
#
#   bench/compression_bench.sh [path/to/clustershazbot]   default: a Release build in build-bench/
#   RECORDS="1000 10000" DURATION=8 bench/compression_bench.sh
#
# The records are offline ones on 10.0.0.0/8 addresses, in no order, that are never contacted (the nodes'
# policy probes no offline peer), with lastUpdates spread over a minute, as a live cluster's
# are. Everything runs on 127.0.0.1; whatever the script started is stopped on exit.
set -euo pipefail
case ${1:-} in "" | /*) bin=${1:-} ;; *) bin=$PWD/$1 ;; esac
cd "$(dirname "$0")/.."
bin=${bin:-$PWD/build-bench/clustershazbot}
duration=${DURATION:-8}
records=${RECORDS:-1000 10000}
if [ ! -x "$bin" ]; then
  [ -z "${1:-}" ] || { echo "no program at $bin" >&2; exit 2; }
  echo "building $bin (Release)..." >&2
  timeout 600 cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  timeout 600 cmake --build build-bench -j"$(nproc)" >/dev/null
fi
for tool in curl lua5.4; do
  command -v $tool >/dev/null || { echo "$tool is missing (Debian packages curl, lua5.4, lua-socket)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
echo 'return { probe_target = function() return nil end }' >"$work/no_probes.lua"

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
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# A gossip message of $1 - 2 offline records (the two nodes make up the rest).
make_filler() {
  timeout 60 lua5.4 - "$1" <<'EOF'
local n = tonumber(arg[1]) - 2
math.randomseed(7)
local now = os.time() * 1000
local parts = {}
for i = 1, n do
  -- Distinct addresses in no order (an odd multiplier permutes 0 .. 2^24 - 1), which
  -- compress less well than consecutive ones.
  local a = i * 2654435761 % 16777216
  parts[i] = string.format('{"baseUrl":"http://10.%d.%d.%d:3000/","monitor":%s,"lastUpdate":%d}',
    a // 65536, a // 256 % 256, a % 256, math.random(50) == 1 and "true" or "false", now - math.random(0, 60000))
end
io.write('{"message":"gossip","online":[],"offline":[', table.concat(parts, ","), ']}')
EOF
}

# Starts a node ($2: its port, $3: the other's) with SHAZBOT_COMPRESSION=$1; sets `pid`.
start_node() {
  env SHAZBOT_SECRET=bench SHAZBOT_CONTROL_SECRET=bench-control \
      SHAZBOT_BASE_URL="http://127.0.0.1:$2/" SHAZBOT_LISTEN="127.0.0.1:$2" \
      SHAZBOT_MASTER_LIST="http://127.0.0.1:9/" SHAZBOT_MASTER_LIST_UPDATE="http://127.0.0.1:9/" \
      SHAZBOT_MASTER_LIST_UPDATE_AUTH=bench SHAZBOT_GOSSIP_INTERVAL=0.05 SHAZBOT_GOSSIP_TIMEOUT=5 \
      SHAZBOT_MASTER_ANNOUNCE_MINIMUM=3600 SHAZBOT_MASTER_ANNOUNCE_INTERVAL=3600 \
      SHAZBOT_MAX_BODY=67108864 SHAZBOT_LOG_LEVEL=debug SHAZBOT_POLICY="$work/no_probes.lua" \
      SHAZBOT_COMPRESSION="$1" "$bin" serve 2>"$work/node-$2.log" &
  pid=$!
  pids+=("$pid")
}

printf "%-8s %-6s %10s %12s %12s %10s %14s\n" records coding exchanges "request B" "answer B" "ratio" "CPU/exchange"
for n in $records; do
  make_filler "$n" >"$work/filler.json"
  for coding in none gzip zstd; do
    pa=$(free_port); pb=$(free_port)
    start_node "$coding" "$pa"; a=$pid
    start_node "$coding" "$pb"; b=$pid
    wait_up "http://127.0.0.1:$pa/clustershazbot/list"
    wait_up "http://127.0.0.1:$pb/clustershazbot/list"
    # a learns of b and of the records; the first rounds carry them to b.
    printf '{"message":"gossip","online":[{"baseUrl":"http://127.0.0.1:%d/","monitor":false,"lastUpdate":%d}],"offline":[]}' \
      "$pb" "$(($(date +%s) * 1000))" |
      curl -sf -m 30 -o /dev/null -H "Authorization: bench" --data-binary @- "http://127.0.0.1:$pa/clustershazbot/gossip"
    curl -sf -m 30 -o /dev/null -H "Authorization: bench" --data-binary "@$work/filler.json" "http://127.0.0.1:$pa/clustershazbot/gossip"
    for _ in $(seq 100); do
      [ "$(curl -sf -m 5 -H 'Authorization: bench-control' "http://127.0.0.1:$pb/clustershazbot/list" | grep -o '"baseUrl"' | wc -l)" -ge "$n" ] && break
      sleep 0.1
    done
    lines_a=$(wc -l <"$work/node-$pa.log"); lines_b=$(wc -l <"$work/node-$pb.log")
    t0=$(( $(cpu_ticks "$a") + $(cpu_ticks "$b") ))
    sleep "$duration"
    t1=$(( $(cpu_ticks "$a") + $(cpu_ticks "$b") ))
    { tail -n +"$((lines_a + 1))" "$work/node-$pa.log"; tail -n +"$((lines_b + 1))" "$work/node-$pb.log"; } |
      awk -v n="$n" -v coding="$coding" -v ticks=$((t1 - t0)) -v hz="$hz" '
        /debug: gossip .*: sent .* answer 200 of/ {
          # "sent S bytes CODING (P plain), answer 200 of R bytes CODING (Q plain)"
          for (i = 1; i <= NF; i++) {
            if ($i == "sent" || $i == "of") {
              bytes += $(i + 1)
              p = $(i + 4); gsub(/\(/, "", p); plain += p
              if ($i == "sent") sent += $(i + 1); else got += $(i + 1)
            }
          }
          x++
        }
        END {
          if (!x) { print "no exchanges for " n " " coding > "/dev/stderr"; exit 1 }
          printf "%-8d %-6s %10d %12.0f %12.0f %9.1fx %11.0f us\n", n, coding, x, sent / x, got / x,
                 plain / bytes, ticks * 1e6 / hz / x
        }'
    kill -KILL "$a" "$b" 2>/dev/null || true
    wait "$a" "$b" 2>/dev/null || true
    pids=()
  done
done
