#!/usr/bin/env bash
# deploy/install_packages.sh: installs, with apt-get, every Debian 12 package that building,
# testing and running tickplane needs and that is not installed yet (as root, or through sudo),
# then checks that the tools the scripts call are on PATH. Prints what it found and did; does
# nothing (and needs no root) when everything is there.
#
# Used by tests/run.sh and deploy/quickstart.sh; safe to run on its own at any time.
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    # the API reference of the library (tests/library: library_docs)
    doxygen
    libuv1-dev libhiredis-dev libssl-dev openssl ca-certificates
    # JSON values of the cache (tp/cache.h)
    libjansson-dev
    flatbuffers-compiler libflatbuffers-dev
    libcriterion-dev
    redis-server redis-tools
    clang libclang-rt-14-dev
    python3-flatbuffers python3-redis python3-prometheus-client curl
    # the deploy checks (tests/deploy): systemd-analyze, docker-compose's Compose schema, YAML
    systemd docker-compose python3-yaml
    # tests/cli/test_settings_invalid.py: a bad setting must not reach a network syscall
    strace
)
# Node.js and npm for the Kubernetes schema check and the Dockerfile lint (tests/deploy): Debian's,
# unless the machine already has a node of its own.
if ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
fi

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
        echo "install_packages.sh: not root and no sudo: install ${missing[*]} first" >&2
        exit 1
    fi

    # Keep apt from starting services (redis-server would start on port 6379; without systemd
    # its init script may even fail the install). The tests and the quickstart start their own
    # redis-server on free ports, so a system service is never needed. An existing policy-rc.d
    # (Docker images ship one) is left alone.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from tickplane deploy/install_packages.sh\nexit 101\n' |
            "${as_root[@]}" tee "$policy" >/dev/null
        "${as_root[@]}" chmod 0755 "$policy"
        trap '"${as_root[@]}" rm -f "$policy"' EXIT
    fi

    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    echo "installed: ${missing[*]}"
fi

for tool in cmake ctest redis-server redis-cli openssl node npm systemd-analyze docker-compose; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install_packages.sh: $tool not found after installing packages" >&2
        exit 1
    fi
done
