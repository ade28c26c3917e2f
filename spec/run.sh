#!/usr/bin/env bash
# Runs every test: the suite on a normal build, the same suite on a build with
# AddressSanitizer and UndefinedBehaviorSanitizer, and one cluster run under valgrind (part of
# the normal build's suite). Installs what is missing first (tools/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh build
# The README's first command, bounded and non-interactive: a local cluster must converge.
BASE_PORT=${BASE_PORT:-17400} timeout 120 examples/local-cluster.sh --once
ctest --test-dir build --output-on-failure --timeout 300

tools/setup.sh build-asan -DSHAZBOT_SANITIZE=ON -DSHAZBOT_BENCH=OFF
ctest --test-dir build-asan --output-on-failure --timeout 300
