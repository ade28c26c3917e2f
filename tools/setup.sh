#!/usr/bin/env bash
# Installs what clustershazbot needs from Debian 12's archive (when something is missing) and
# builds it: `tools/setup.sh [--program] [BUILD_DIR [extra cmake options...]]`, default build/.
# Used by both commands of the README's quick start, and by CI through spec/run.sh.
#
# --program: only what the program needs to build and run (the quick start's local
# cluster): no test runner, nginx, valgrind, clang (spec/fuzz) or benchmark libraries, and a
# build without the tests and benchmarks. Without it: everything the tests and benchmarks use
# too.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config curl
          liblua5.4-dev libevent-dev libssl-dev libcurl4-openssl-dev libyajl-dev zlib1g-dev libzstd-dev)
configure=()
if [ "${1:-}" = "--program" ]; then
  shift
  configure=(-DBUILD_TESTING=OFF -DSHAZBOT_BENCH=OFF)
else
  packages+=(lua5.4 lua-cjson lua-busted lua-socket lua-zlib zstd
             libcjson-dev libjansson-dev libjson-c-dev libjsmn-dev valgrind wrk luarocks
             nginx libnginx-mod-http-lua clang-14 libclang-rt-14-dev prometheus gnuplot-nox)
  configure=(-DBUILD_TESTING=ON -DSHAZBOT_BENCH=ON)
fi

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
# A build folder configured before keeps its choices under --program: the local cluster run
# by spec/run.sh must not turn off the tests of the build it is about to test.
if [ ${#configure[@]} -gt 0 ] && [ "${configure[0]}" = -DBUILD_TESTING=OFF ] && [ -f "$build/CMakeCache.txt" ]; then
  configure=()
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${configure[@]}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "setup: built $build/clustershazbot" >&2
