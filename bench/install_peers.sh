#!/usr/bin/env bash
# bench/install_peers.sh: makes the benchmark peers runnable; safe to run at any time.
#
#   * bench/peer_hiredis.c is a CMake target (peer_hiredis) and needs only what tickplane needs
#     (libhiredis-dev, libuv1-dev: deploy/install_packages.sh);
#   * bench/peer_node/ is a Node.js program: this script checks for node (>= 18) and npm,
#     installing the Debian packages nodejs / npm with apt-get only when a command is missing
#     (as root, or through sudo), then runs `npm ci` there when node_modules is missing or does
#     not match package-lock.json (a stamp holds the hash of the lock file it was installed from).
#
# Prints what it found and did; does nothing (and needs no root) when everything is in place.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$repo/bench/peer_node
stamp=$dir/node_modules/.tickplane-lock.sha256
min_node_major=18

die() {
    echo "install_peers.sh: $*" >&2
    exit 1
}

# ---- node and npm ------------------------------------------------------------------------------

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]} > 0)); then
    echo "missing: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 ||
        die "no apt-get here: install Node.js >= $min_node_major and npm first"
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        die "not root and no sudo: install ${missing[*]} first"
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    echo "installed: ${missing[*]}"
    command -v node >/dev/null 2>&1 || die "node not found after installing nodejs"
    command -v npm >/dev/null 2>&1 || die "npm not found after installing npm"
fi

node_version=$(node --version) || die "node --version failed"
node_major=${node_version#v}
node_major=${node_major%%.*}
if [[ ! $node_major =~ ^[0-9]+$ ]] || ((node_major < min_node_major)); then
    die "node $node_version is too old: bench/peer_node needs Node.js >= $min_node_major"
fi
npm_version=$(npm --version 2>/dev/null) || die "npm --version failed"
echo "node $node_version, npm $npm_version"

# ---- bench/peer_node/node_modules -----------------------------------------------------------

[[ -f $dir/package-lock.json ]] || die "$dir/package-lock.json is missing"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
have=''
[[ -f $stamp ]] && have=$(<"$stamp")

if [[ -d $dir/node_modules && $have == "$want" ]]; then
    echo "bench/peer_node: node_modules up to date"
else
    if [[ -d $dir/node_modules ]]; then
        echo "bench/peer_node: node_modules does not match package-lock.json: npm ci"
    else
        echo "bench/peer_node: no node_modules: npm ci"
    fi
    (cd "$dir" && npm ci --no-audit --no-fund) || die "npm ci failed in $dir"
    echo "$want" >"$stamp"
fi

# The dependencies load: a broken install fails here, not in the middle of a benchmark.
(cd "$dir" && node -e "require('ioredis'); require('@valkey/valkey-glide'); require('flatbuffers')") ||
    die "bench/peer_node: ioredis, valkey-glide or flatbuffers does not load after npm ci"
echo "bench/peer_node: ready (node $dir/peer.js --help)"
