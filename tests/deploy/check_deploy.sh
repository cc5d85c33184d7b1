#!/usr/bin/env bash
# tests/deploy/check_deploy.sh <k8s|docker|systemd> <tickplane> <certs dir> <work dir>: the deploy
# files checked here, without a container engine or a cluster (CTest runs each part as a test).
#
#   k8s      the manifests against the Kubernetes schema, strict, and the rules of
#            deploy/README.md (check_k8s.mjs; npm ci of tests/deploy/package.json first)
#   docker   the Dockerfile linted (dockerfile-utils) and checked (check_docker.py), compose.yaml
#   systemd  systemd-analyze verify, systemd-analyze security (exposure at most 1.5), the
#            environment file through tickplane --check-config, the sysusers.d entry
set -euo pipefail

if [[ $# -ne 4 ]]; then
    echo "usage: $0 <k8s|docker|systemd> <tickplane> <certs dir> <work dir>" >&2
    exit 2
fi
part=$1 tickplane=$(realpath "$2") certs=$(realpath "$3") work=$(realpath -m "$4")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
failures=0
mkdir -p "$work"

check() { # description, command...
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        failures=$((failures + 1))
    fi
}

# The npm tools, at the versions of package-lock.json; reinstalled when the lock file changes.
node_tools() {
    local stamp=$here/node_modules/.tickplane-lock
    if ! cmp -s "$here/package-lock.json" "$stamp" 2>/dev/null; then
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$here/package-lock.json" "$stamp"
    fi
}

# ---- systemd -----------------------------------------------------------------------------------

# verify prints what it finds wrong but exits 0 for much of it ("Failed to parse ..., ignoring"),
# so any output is a failure. ExecStart must exist: the copy runs the built binary.
systemd_verify() {
    local out
    sed "s|^ExecStart=/usr/local/bin/tickplane|ExecStart=$tickplane|" \
        "$repo/deploy/systemd/tickplane.service" >"$work/tickplane.service"
    out=$(cd "$work" && systemd-analyze verify ./tickplane.service 2>&1) || {
        echo "$out"
        return 1
    }
    [[ -z $out ]] || {
        echo "$out"
        return 1
    }
}

systemd_security() {
    local out
    out=$(cd "$work" && systemd-analyze security --offline=yes --threshold=15 \
        ./tickplane.service 2>&1)
    local status=$?
    grep -E '^→ Overall exposure' <<<"$out" || true
    grep -E '^✗' <<<"$out" | sed 's/^/   /' || true
    return $status
}

# The environment file with its password filled in and its certificate paths pointed at the
# test's; as committed (no password) it must be refused.
env_file_config() {
    local lines
    mapfile -t lines < <(grep -v -e '^#' -e '^$' "$repo/deploy/systemd/tickplane.env")
    env -i PATH="$PATH" "${lines[@]}" "$@" "$tickplane" --check-config >"$work/env.out" 2>&1
}

systemd_stop_timeout_covers_drain() {
    local stop drain
    stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$repo/deploy/systemd/tickplane.service")
    drain=$(sed -n 's/^TP_SHUTDOWN_TIMEOUT=\([0-9]*\)s$/\1/p' "$repo/deploy/systemd/tickplane.env")
    [[ -n $stop && -n $drain ]] && ((stop >= drain + 5))
}

sysusers_creates_user() {
    local root=$work/sysroot
    rm -rf "$root"
    mkdir -p "$root/etc"
    systemd-sysusers --root="$root" "$repo/deploy/systemd/tickplane.sysusers" &&
        grep -q '^tickplane:x:[0-9]*:[0-9]*:.*:/nonexistent:/usr/sbin/nologin$' "$root/etc/passwd"
}

run_systemd() {
    check "systemd-analyze verify: no complaint" systemd_verify
    check "systemd-analyze security: exposure at most 1.5" systemd_security
    check "tickplane.env passes tickplane --check-config (password and certificates filled in)" \
        env_file_config REDIS_PASSWORD=from-the-operator REDIS_TLS_CA_PATH="$certs/ca.crt" \
        REDIS_TLS_CERT_PATH="$certs/client.crt" REDIS_TLS_KEY_PATH="$certs/client.key"
    check "tickplane.env as committed (no password) is refused" \
        eval '! env_file_config REDIS_TLS_CA_PATH="$certs/ca.crt" \
            REDIS_TLS_CERT_PATH="$certs/client.crt" REDIS_TLS_KEY_PATH="$certs/client.key" &&
            grep -q "REDIS_PASSWORD is not" "$work/env.out"'
    check "TimeoutStopSec covers TP_SHUTDOWN_TIMEOUT + 5 s" systemd_stop_timeout_covers_drain
    check "tickplane.sysusers creates an unprivileged user without a login" sysusers_creates_user
}

# ---- docker, k8s -------------------------------------------------------------------------------

dockerfile_lint() {
    local out
    out=$("$here/node_modules/.bin/dockerfile-utils" lint "$repo/deploy/docker/Dockerfile" 2>&1)
    [[ -z $out ]] || {
        echo "$out"
        return 1
    }
}

run_docker() {
    node_tools
    check "Dockerfile: dockerfile-utils lint finds nothing" dockerfile_lint
    "$py" "$here/check_docker.py" --repo "$repo" --tickplane "$tickplane" --certs "$certs" \
        --work "$work" || failures=$((failures + 1))
}

run_k8s() {
    node_tools
    node "$here/check_k8s.mjs" "$repo/deploy/k8s" "$tickplane" "$certs" ||
        failures=$((failures + 1))
}

case $part in
k8s) run_k8s ;;
docker) run_docker ;;
systemd) run_systemd ;;
*)
    echo "check_deploy.sh: unknown part \"$part\" (k8s, docker or systemd)" >&2
    exit 2
    ;;
esac
if ((failures > 0)); then
    echo "check_deploy.sh $part: $failures failed"
    exit 1
fi
echo "check_deploy.sh $part: all passed"
