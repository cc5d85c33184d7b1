#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in a build tree of their own, replays each target's
# committed corpus (tests/fuzz/corpus/<name>/), then fuzzes it for a while from a scratch copy
# of that corpus in the build tree (the source tree is never written).
#
#   tests/fuzz/run_fuzz.sh [seconds] [target...]    default 60 s each, every target;
#                                                   works from any directory
#
# Targets: frames (fuzz_frames: frame reassembly + decode), replies (fuzz_replies: the reply
# path against a fake Redis), router (fuzz_router: the same against the Cluster router and a
# one-node fake cluster that redirects) and cluster (fuzz_cluster: the Cluster slot-map parsers). The
# fuzz_ prefix may be given. A target's dictionary,
# tests/fuzz/<name>.dict, is passed with -dict when there is one. New inputs stay in
# <build>/corpus/<name>/; commit one (e.g. a fixed crash) by copying it into the corpus.
#
# Environment: TP_FUZZ_BUILD_DIR (default <repo>/build/fuzz), TP_FUZZ_CC / TP_FUZZ_CXX
# (default clang / clang++; CC and CXX are ignored, since CI may export gcc there),
# TP_FUZZ_JOBS (build parallelism) and TP_FUZZ_TIMEOUT (seconds one input may take before
# it counts as a hang; default 10).
#
# Exits non-zero when the build fails, a committed input crashes, or the fuzzer finds a crash,
# a leak or a hang. Reproducers are left in <build>/artifacts/<name>/ (crash-*, leak-*,
# timeout-*, oom-*); replay one with `<build>/tests/fuzz/fuzz_<name> <file>`.
set -euo pipefail

usage() {
    echo "usage: $0 [seconds] [frames|replies|router|cluster ...]" >&2
    exit 2
}

seconds=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
[ "$seconds" -ge 1 ] || usage
targets=()
for t in "${@:-frames replies router cluster}"; do
    for name in $t; do
        case ${name#fuzz_} in
        frames | replies | router | cluster) targets+=("${name#fuzz_}") ;;
        *) usage ;;
        esac
    done
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${TP_FUZZ_BUILD_DIR:-$src/build/fuzz}
jobs=${TP_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
timeout=${TP_FUZZ_TIMEOUT:-10}

mkdir -p "$build"
CC=${TP_FUZZ_CC:-clang} CXX=${TP_FUZZ_CXX:-clang++} cmake -S "$src" -B "$build" \
    -DCMAKE_BUILD_TYPE=Debug -DTP_FUZZ=ON -DTP_SANITIZE=ON -DTP_WERROR=ON \
    -DTP_TESTS=OFF -DTP_BENCH=OFF >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    exit 1
}
cmake --build "$build" --target "${targets[@]/#/fuzz_}" -j "$jobs"

# halt_on_error / abort_on_error: any sanitizer report ends the run as a crash.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
flags=(-rss_limit_mb=2048 -timeout="$timeout")

status=0
for name in "${targets[@]}"; do
    bin=$build/tests/fuzz/fuzz_$name
    committed=$here/corpus/$name
    corpus=$build/corpus/$name
    artifacts=$build/artifacts/$name
    log=$build/fuzz_$name.log
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    dict=()
    [ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")

    # Each committed input once, as given (no fuzzing): a regression corpus.
    mapfile -d '' files < <(find "$committed" -type f -print0 | sort -z)
    if [ "${#files[@]}" -eq 0 ]; then
        echo "fuzz_$name: no committed corpus in $committed" >&2
        exit 1
    fi
    if ! "$bin" "${flags[@]}" -artifact_prefix="$artifacts/" "${files[@]}" \
        >"$build/replay_$name.log" 2>&1; then
        tail -n 40 "$build/replay_$name.log" >&2
        echo "fuzz_$name: an input of $committed crashes" >&2
        status=1
        continue
    fi
    echo "fuzz_$name: replayed ${#files[@]} committed inputs"

    cp "${files[@]}" "$corpus/"
    set +e
    "$bin" "${flags[@]}" "${dict[@]}" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" 2>&1 | tee "$log" |
        grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE)'
    rc=${PIPESTATUS[0]}
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o -E 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
    echo "fuzz_$name: ${runs:-unknown} executions in ${seconds}s, ${cov:-no coverage line}," \
        "corpus $(find "$corpus" -type f | wc -l) files, exit status $rc"
    if [ "$rc" -ne 0 ]; then
        echo "fuzz_$name: crash, leak or hang; reproducers:" >&2
        ls -l "$artifacts" >&2
        status=1
    fi
done
exit $status
