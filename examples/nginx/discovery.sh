#!/usr/bin/env bash
# nginx service discovery on loopback: a master-list store, three members (each a
# `clustershazbot serve` node beside a backend.lua that answers with its member's name) and
# nginx (2 workers) running examples/nginx/nginx.conf, which balances /app/ over the live
# members with no reload. Shows who answers, kills a member with kill -9, shows the answers
# again once the cluster agreed, and stops everything on Ctrl-C (or at once with --once).
#
#   examples/nginx/discovery.sh          run until Ctrl-C
#   examples/nginx/discovery.sh --once   the demonstration, then stop
#
# Needs what tools/setup.sh installs (nginx, libnginx-mod-http-lua, lua-socket, lua-cjson).
# Ports: BASE_PORT (default 7500) for the store, +10/+20/+30 for the nodes (their backends
# one above), +80 for nginx, +81 for nginx's engine.
set -euo pipefail
cd "$(dirname "$0")/../.."
once=false
[ "${1:-}" = "--once" ] && once=true

tools/setup.sh build
base_port=${BASE_PORT:-7500}
work=$(mktemp -d)
cmake --install build --prefix "$work/prefix" >/dev/null
bin=$work/prefix/bin/clustershazbot
pids=()
nginx_port=$((base_port + 80))

stop() {
  trap - INT TERM EXIT
  nginx -p "$work/nginx" -c conf/nginx.conf -s quit 2>/dev/null || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped; logs in $work"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

export SHAZBOT_SECRET=demo-gossip SHAZBOT_CONTROL_SECRET=demo-control \
       SHAZBOT_MASTER_LIST="http://127.0.0.1:$base_port/" SHAZBOT_MASTER_LIST_UPDATE="http://127.0.0.1:$base_port/" \
       SHAZBOT_MASTER_LIST_UPDATE_AUTH=demo-update SHAZBOT_GOSSIP_INTERVAL=1 \
       SHAZBOT_MASTER_ANNOUNCE_MINIMUM=1 SHAZBOT_MASTER_ANNOUNCE_INTERVAL=2 HAPPY_SECRET=none \
       APP_HYSTERESIS=5
"$bin" store --listen "127.0.0.1:$base_port" --file "$work/master-list.json" --auth demo-update 2>"$work/store.log" &
pids+=($!)

declare -A node_pid backend_pid
for i in 1 2 3; do
  port=$((base_port + 10 * i))
  lua5.4 examples/nginx/backend.lua "member $i (http://127.0.0.1:$port/)" 127.0.0.1 $((port + 1)) >"$work/backend$i.log" 2>&1 &
  backend_pid[$i]=$!
  pids+=($!)
  SHAZBOT_BASE_URL="http://127.0.0.1:$port/" SHAZBOT_LISTEN="127.0.0.1:$port" "$bin" serve 2>"$work/node$i.log" &
  node_pid[$i]=$!
  pids+=($!)
done

mkdir -p "$work/nginx/conf" "$work/nginx/logs"
# As root, nginx's workers would run as nobody, who cannot read this user's temporary files.
{ [ "$(id -u)" -eq 0 ] && echo "user root;"
  sed -e "s|@NGINX_PORT@|$nginx_port|" -e "s|@ENGINE_PORT@|$((base_port + 81))|" \
      -e "s|@LUA_PATH@|$work/prefix/share/lua/5.1/?.lua;$PWD/examples/nginx/?.lua|" examples/nginx/nginx.conf
} >"$work/nginx/conf/nginx.conf"
SHAZBOT_BASE_URL="http://127.0.0.1:$nginx_port/" SHAZBOT_LISTEN="127.0.0.1:$((base_port + 81))" \
  nginx -p "$work/nginx" -c conf/nginx.conf

# Polls `condition` every 0.2 s for up to 30 s.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + 30))
  until "$@"; do
    if ((SECONDS > deadline)); then echo "timed out waiting for $what; logs in $work" >&2; exit 1; fi
    sleep 0.2
  done
}
all_three_online() { [ "$(curl -sf "http://127.0.0.1:$nginx_port/members" | grep -o '"online":\[[^]]*\]' | grep -o baseUrl | wc -l)" -eq 3 ]; }
member_3_offline() { curl -sf "http://127.0.0.1:$nginx_port/members" | grep -q "\"offline\":\[[^]]*:$((base_port + 30))"; }
answers() { for _ in 1 2 3 4 5 6; do curl -sf "http://127.0.0.1:$nginx_port/app/"; done; }

wait_for "nginx to list the three members" all_three_online
echo "six requests to http://127.0.0.1:$nginx_port/app/:"
answers
echo
echo "kill -9 of member 3..."
{ kill -9 "${node_pid[3]}" "${backend_pid[3]}"; wait "${node_pid[3]}" "${backend_pid[3]}"; } 2>/dev/null || true
wait_for "the cluster to agree member 3 is offline" member_3_offline
echo "the cluster agreed; six requests:"
answers
if $once; then exit 0; fi
echo
echo "running; try: curl http://127.0.0.1:$nginx_port/app/   curl http://127.0.0.1:$nginx_port/members"
echo "Ctrl-C stops everything"
wait "${pids[0]}"
