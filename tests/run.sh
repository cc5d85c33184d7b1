#!/usr/bin/env bash
# tests/run.sh [ctest args...]: the project's single test command (also what .ci/run runs).
#
#   1. installs, with apt-get, every Debian 12 package the build and the tests need that is not
#      installed yet (as root, or through sudo): deploy/install_packages.sh;
#   2. configures a Debug build with AddressSanitizer + UBSan and -Werror in build/ci (or in
#      $TP_BUILD_DIR);
#   3. builds it and runs ctest; any arguments are passed to ctest, e.g. tests/run.sh -R test_tls
#      or tests/run.sh -L unit.
#
# Exits non-zero on any failure (including a ctest filter that matches no test).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TP_BUILD_DIR:-$repo/build/ci}

section() {
    printf '\n==== %s ====\n' "$*"
}

# ---- 1. packages -------------------------------------------------------------------------------
section "packages"
"$repo/deploy/install_packages.sh"

# ---- 2. configure ------------------------------------------------------------------------------
section "configure ($build)"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTP_SANITIZE=ON -DTP_WERROR=ON

# ---- 3. build ----------------------------------------------------------------------------------
section "build"
cmake --build "$build" -j"$(nproc)"

# ---- 4. test -----------------------------------------------------------------------------------
section "test"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure --no-tests=error "$@"
