#!/bin/sh
# Runs one harness of spec/fuzz for a bounded time, as ctest does (spec/CMakeLists.txt):
#   spec/fuzz/run.sh HARNESS SEEDS WORK SECONDS [more libFuzzer options]
# The seeds are copied to WORK/corpus, which the run grows; whatever it finds goes to
# WORK/artifacts/. Fails (exit 77, or the sanitizer's) on a crash, a failed property, a leak,
# undefined behaviour, an input slower than 10 s or a run over 2 GB. SHAZBOT_FUZZ_SECONDS,
# when set, replaces SECONDS (0: no time limit).
set -eu
harness=$1 seeds=$2 work=$3 seconds=${SHAZBOT_FUZZ_SECONDS:-$4}
shift 4
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
dict=$(dirname "$0")/$(basename "$harness").dict
set -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -error_exitcode=77 -timeout_exitcode=77 \
       -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@"
[ -f "$dict" ] && set -- -dict="$dict" "$@"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$harness" "$@" "$work/corpus"
