#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in a build tree of their own and fuzzes frame
# reassembly and decoding for a while, starting from a fresh seed corpus.
#
#   tests/fuzz/run_fuzz.sh [seconds]      default 60; works from any directory
#
# Environment: TP_FUZZ_BUILD_DIR (default <repo>/build/fuzz), TP_FUZZ_CC / TP_FUZZ_CXX
# (default clang / clang++; CC and CXX are ignored, since CI may export gcc there) and
# TP_FUZZ_JOBS (build parallelism).
#
# Exits non-zero when the build fails or the fuzzer finds a crash. Reproducers are left in
# <build>/artifacts (crash-*, leak-*, timeout-*); replay one with
# `<build>/tests/fuzz/fuzz_frames <file>`.
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [seconds]" >&2
    exit 2
fi

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${TP_FUZZ_BUILD_DIR:-$src/build/fuzz}
jobs=${TP_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

mkdir -p "$build"
CC=${TP_FUZZ_CC:-clang} CXX=${TP_FUZZ_CXX:-clang++} cmake -S "$src" -B "$build" \
    -DCMAKE_BUILD_TYPE=Debug -DTP_FUZZ=ON -DTP_SANITIZE=ON -DTP_WERROR=ON \
    -DTP_TESTS=OFF -DTP_BENCH=OFF >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    exit 1
}
cmake --build "$build" --target fuzz_frames fuzz_seeds -j "$jobs"

corpus=$build/corpus
artifacts=$build/artifacts
rm -rf "$corpus" "$artifacts"
mkdir -p "$corpus" "$artifacts"
echo "seeds: $("$build/tests/fuzz/fuzz_seeds" "$corpus") files in $corpus"

log=$build/fuzz_frames.log
set +e
# halt_on_error / abort_on_error: any sanitizer report ends the run as a crash.
ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1} \
    "$build/tests/fuzz/fuzz_frames" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
echo "fuzz_frames: ${runs:-unknown} executions in ${seconds}s, exit status $status"
if [ "$status" -ne 0 ]; then
    echo "fuzz_frames: crash; reproducers:" >&2
    ls -l "$artifacts" >&2
    exit 1
fi
