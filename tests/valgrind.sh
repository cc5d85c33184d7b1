#!/usr/bin/env bash
# tests/valgrind.sh [ctest args...]: the test suite under valgrind memcheck. Fails on any leak
# (definite or indirect) and any invalid access in our code: the test binaries, every process a
# Criterion test runs in, and every tickplane process the tests start.
#
#   0. installs what is missing (deploy/install_packages.sh, then valgrind) with apt-get;
#   1. configures a Debug build without sanitizers (valgrind and ASan do not mix) in
#      build/valgrind (or $TP_VALGRIND_BUILD_DIR), with CMAKE_CROSSCOMPILING_EMULATOR set to this
#      script's --wrap mode, so CTest starts every C test binary through it;
#   2. builds it and puts a wrapper in place of the tickplane binary (the real one becomes
#      tickplane.bin), so the CLI, e2e and deploy tests, whatever starts tickplane, start it
#      under valgrind;
#   3. runs ctest with every CTest TIMEOUT scaled by TP_TEST_TIMEOUT_SCALE (default 10; the one
#      limit valgrind's slowness hits: test_settings_invalid starts tickplane ~1900 times).
#      Arguments are passed on. Excluded by label: fuzz (libFuzzer targets, a clang build of
#      their own with its own instrumentation, run for a fixed time) and soak (a fixed high load
#      for 90 s judged on RSS and queue gauges: valgrind cannot keep up with the load and its
#      shadow memory is in the RSS; leaks are what memcheck itself reports);
#   4. reads every valgrind log and fails if one reports an error.
#
# Why the logs and not only exit codes: Criterion runs each test in a child process and ignores
# that child's exit status once the test has ended, so --error-exitcode in a child fails nothing;
# tickplane's status is not checked by every test that starts it either. Each process valgrind
# runs writes build/valgrind/vg-logs/<program>-<run>/<pid>.log; --wrap fails its CTest test when
# one of its logs reports an error, and step 4 checks them all (tickplane's included).
#
# Programs that are not ours run natively (--trace-children-skip): redis-server, redis-cli,
# python3, shells, curl, openssl; so do the Python, shell and node test drivers (CTest starts
# them directly). tp_sim (bench/, the load generator deploy_redis_acl and soak drive tickplane
# with) runs natively too: it is the tests' load, not the code under test. One run at a time per
# build tree: a run starts by clearing its vg-logs.
#
# Environment: TP_VALGRIND_BUILD_DIR (build dir), TP_TEST_TIMEOUT_SCALE (time limits x this),
# TP_VALGRIND_TRACK_ORIGINS=1 (--track-origins=yes: where uninitialised values come from, about
# twice as slow), TP_VALGRIND_ERROR_EXIT (exit status of a process with errors, default 42).
#
# Internal modes (used by the build this script configures):
#   valgrind.sh --wrap <build> <program> [args...]   CTest's emulator for each test binary
#   valgrind.sh --exec <build> <program> [args...]   the tickplane wrapper: exec under valgrind
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
error_exit=${TP_VALGRIND_ERROR_EXIT:-42}

# memcheck's options. Child processes are traced (Criterion's workers are exec'd copies of the
# test binary) except for the programs that are not ours; the tickplane wrapper is skipped too,
# because it starts valgrind itself (with its own log directory).
vg_options() { # log file pattern
    local skip='*/redis-server,*/redis-cli,*/python3,*/python3.*,*/sh,*/bash,*/dash,*/env'
    skip+=',*/curl,*/openssl,*/tickplane'
    printf '%s\n' --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode="$error_exit" \
        --trace-children=yes --trace-children-skip="$skip" --child-silent-after-fork=yes \
        --num-callers=40 --suppressions="$repo/tests/valgrind.supp" --log-file="$1"
    if [[ ${TP_VALGRIND_TRACK_ORIGINS:-0} == 1 ]]; then
        echo --track-origins=yes
    fi
}

# True when a valgrind log reports an error. A process killed by a signal writes no ERROR
# SUMMARY; its log still counts if it printed an error before it died.
log_has_errors() {
    if grep -q 'ERROR SUMMARY: ' "$1"; then
        grep -q 'ERROR SUMMARY: [1-9]' "$1"
    else
        grep -qE '== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninit|Syscall param|Source and destination overlap|Argument .* of function|Jump to the invalid|Process terminating)' "$1"
    fi
}

# Prints the logs under the given directories that report errors; returns 1 if there is one.
report_logs() {
    local bad=0 f
    while IFS= read -r -d '' f; do
        if log_has_errors "$f"; then
            bad=1
            echo "valgrind: errors in $f:"
            sed 's/^/    /' "$f"
        fi
    done < <(find "$@" -name '*.log' -type f -print0 2>/dev/null | sort -z)
    return $bad
}

run_under_valgrind() { # --wrap|--exec build program args...
    local mode=$1 build=$2 program=$3
    shift 3
    local dir
    dir=$build/vg-logs/$(basename "$program")-$(date +%s%N)-$$
    mkdir -p "$dir"
    local opts
    mapfile -t opts < <(vg_options "$dir/%p.log")
    if [[ $mode == --exec ]]; then
        exec valgrind "${opts[@]}" "$program" "$@"
    fi
    local status=0
    valgrind "${opts[@]}" "$program" "$@" || status=$?
    if ! report_logs "$dir"; then
        echo "valgrind: $(basename "$program") fails: memcheck errors (logs in $dir)"
        ((status != 0)) || status=$error_exit
    fi
    return "$status"
}

if [[ ${1:-} == --wrap || ${1:-} == --exec ]]; then
    run_under_valgrind "$@"
    exit $?
fi

build=${TP_VALGRIND_BUILD_DIR:-$repo/build/valgrind}
scale=${TP_TEST_TIMEOUT_SCALE:-10}
section() {
    printf '\n==== %s ====\n' "$*"
}

# ---- 0. packages: the build's and the tests' (as tests/run.sh), then valgrind ----------------
section "packages"
"$repo/deploy/install_packages.sh"
if ! command -v valgrind >/dev/null; then
    as_root=()
    [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    "${as_root[@]}" apt-get install -y --no-install-recommends valgrind
fi

section "configure ($build)"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTP_SANITIZE=OFF -DTP_WERROR=ON \
    "-DCMAKE_CROSSCOMPILING_EMULATOR=$repo/tests/valgrind.sh;--wrap;$build"

section "build"
cmake --build "$build" -j"$(nproc)"

# tickplane is started by a path the tests get from CMake (TP_TICKPLANE_BIN, the CLI and deploy
# test arguments); in this build tree that path is a wrapper that execs valgrind on the real
# binary. The wrapper keeps the PID (signals reach tickplane) and valgrind writes to its log file,
# not to tickplane's output. A relink replaces the wrapper with a new binary: wrap that again.
section "tickplane wrapper"
bin=$build/tickplane
if [[ $(head -c 4 "$bin") == $'\x7fELF' ]]; then
    mv -f "$bin" "$bin.bin"
    cat >"$bin" <<EOF
#!/bin/sh
# Written by tests/valgrind.sh: tickplane under valgrind memcheck (the binary is tickplane.bin).
exec "$repo/tests/valgrind.sh" --exec "$build" "$bin.bin" "\$@"
EOF
    chmod +x "$bin"
    touch -r "$bin.bin" "$bin" # the link's time: a library newer than it still relinks
fi
echo "$bin -> valgrind $bin.bin"

# Time limits: CTest's TIMEOUT properties, scaled in the CTestTestfile.cmake files of this build
# tree only (configure regenerates them, so the scaling never compounds). The tests' own waits
# (Criterion's .timeout, test_service's start/stop/scenario limits, the Python drivers') did not
# fire under valgrind and are left as they are.
section "time limits x$scale"
while IFS= read -r -d '' f; do
    perl -pi -e 's/ TIMEOUT "(\d+)"/" TIMEOUT \"" . ($1 * '"$scale"') . "\""/ge' "$f"
done < <(find "$build" -name CTestTestfile.cmake -print0)

section "test"
rm -rf "$build/vg-logs"
mkdir -p "$build/vg-logs"
status=0
ctest --test-dir "$build" --output-on-failure --no-tests=error -LE '^(fuzz|soak)$' "$@" ||
    status=$?

section "valgrind logs"
logs=$(find "$build/vg-logs" -name '*.log' | wc -l)
if report_logs "$build/vg-logs"; then
    echo "valgrind: $logs process logs, no errors"
else
    echo "valgrind: errors found (above)"
    status=1
fi
exit $status
