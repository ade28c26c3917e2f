#!/usr/bin/env bash
# Installs what clustershazbot needs from Debian 12's archive (when something is missing) and
# builds it: `tools/setup.sh [BUILD_DIR [extra cmake options...]]`, default build/.
# Used by both commands of the README's quick start, and by CI through spec/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config curl
          liblua5.4-dev lua5.4 libevent-dev libcurl4-openssl-dev libyajl-dev
          lua-cjson lua-busted lua-socket
          libcjson-dev libjansson-dev libjson-c-dev libjsmn-dev valgrind wrk luarocks
          nginx libnginx-mod-http-lua)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=${1:-build}
shift || true
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "setup: built $build/clustershazbot" >&2
