#!/usr/bin/env bash
# tests/run.sh [ctest args...]: the project's single test command (also what .ci/run runs).
#
#   1. installs, with apt-get, every Debian 12 package the build and the tests need that is not
#      installed yet (as root, or through sudo);
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

packages=(
    build-essential cmake pkg-config
    libuv1-dev libhiredis-dev libssl-dev openssl ca-certificates
    flatbuffers-compiler libflatbuffers-dev
    libcriterion-dev
    redis-server redis-tools
    clang libclang-rt-14-dev
    python3-flatbuffers python3-redis
)

# ---- 1. packages -------------------------------------------------------------------------------
section "packages"
missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ $status != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "all ${#packages[@]} packages installed"
else
    echo "missing: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "run.sh: not root and no sudo: install ${missing[*]} first" >&2
        exit 1
    fi

    # Keep apt from starting services (redis-server would start on port 6379; without systemd
    # its init script may even fail the install). The tests start their own redis-server on
    # free ports, so a system service is never needed. An existing policy-rc.d (Docker images
    # ship one) is left alone.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from tickplane tests/run.sh\nexit 101\n' |
            "${as_root[@]}" tee "$policy" >/dev/null
        "${as_root[@]}" chmod 0755 "$policy"
        trap '"${as_root[@]}" rm -f "$policy"' EXIT
    fi

    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for tool in cmake ctest redis-server redis-cli openssl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: $tool not found after installing packages" >&2
        exit 1
    fi
done

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
