#!/usr/bin/env bash
# bench/cluster.sh [--rounds N] [--seconds S] [--rate R] [--out DIR]: tickplane on Redis Cluster,
# 1 master against 3 masters, and against one standalone Redis (the reference row: what the
# Cluster router costs), over TLS, in alternated rounds (0, 1, 3, 0, 1, 3, ...) on this machine.
#
# Each round and size:
#   1. fresh redis-server nodes (TLS clients, TLS cluster bus with the test certificates
#      generated for the run, no persistence, no replicas): size 0 is one server without
#      cluster mode; 1 is one node that holds every slot (CLUSTER ADDSLOTSRANGE); 3 are made by
#      redis-cli --cluster create;
#   2. tickplane with REDIS_CLUSTER_NODES over TLS (REDIS_POOL_MAX_SIZE per master, default 4),
#      tp_sim offering --rate ticks/s (default 100,000) for --seconds over 10,000 symbols, open
#      loop: p50/p99 ack latency, CPU per acked tick of tickplane and of all redis-servers
#      together (user+sys from /proc/PID/stat over the run);
#   3. the same tickplane at saturation: 2,000,000 ticks/s offered for 3 s: acked ticks/s.
# Results: DIR/summary.md (also printed), the tp_sim JSON and logs per run. Default DIR:
# build/bench-results/cluster-<date>. Needs nothing installed beforehand (deploy/install_packages.sh
# runs first); tickplane and tp_sim are built (Release) in $TP_BENCH_BUILD_DIR (build/bench).
# Takes about 3 x rounds x (seconds + 15) seconds.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=3
seconds=8
rate=100000
out=
while (($#)); do
    (($# >= 2)) || {
        echo "usage: bench/cluster.sh [--rounds N] [--seconds S] [--rate R] [--out DIR]" >&2
        exit 2
    }
    case $1 in
    --rounds) rounds=$2 ;;
    --seconds) seconds=$2 ;;
    --rate) rate=$2 ;;
    --out) out=$2 ;;
    *)
        echo "usage: bench/cluster.sh [--rounds N] [--seconds S] [--rate R] [--out DIR]" >&2
        exit 2
        ;;
    esac
    shift 2
done
out=${out:-$repo/build/bench-results/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${TP_BENCH_BUILD_DIR:-$repo/build/bench}

"$repo/deploy/install_packages.sh" >/dev/null
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTP_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target tickplane tp_sim >/dev/null

work=$(mktemp -d /tmp/tp-cluster-bench-XXXXXX)
node_pids=()
sut_pid=
stop_pid() { # PID: ends one process this script started and reaps it
    [[ -n $1 ]] || return 0
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
stop_cluster() {
    for p in "${node_pids[@]}"; do stop_pid "$p"; done
    node_pids=()
}
cleanup() {
    stop_pid "$sut_pid"
    stop_cluster
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$repo/tests/support/gen_certs.sh" "$work/certs" >/dev/null
certs=$work/certs

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

plain_ports=()
tls_ports=()
start_cluster() { # MASTERS
    local n=$1
    plain_ports=()
    tls_ports=()
    rm -rf "$work/nodes"
    local cluster=yes
    if ((n == 0)); then
        cluster=no
        n=1
    fi
    for i in $(seq "$n"); do
        local d=$work/nodes/$i plain tls bus
        mkdir -p "$d"
        plain=$(free_port) tls=$(free_port) bus=$(free_port)
        plain_ports+=("$plain")
        tls_ports+=("$tls")
        redis-server --bind 127.0.0.1 --port "$plain" --tls-port "$tls" --cluster-port "$bus" \
            --cluster-enabled "$cluster" --cluster-config-file "$d/nodes.conf" \
            --cluster-node-timeout 5000 \
            --tls-cluster yes --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
            --tls-client-cert-file "$certs/client.crt" --tls-client-key-file "$certs/client.key" \
            --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no \
            --save '' --appendonly no --dir "$d" --logfile "$d/redis.log" &
        node_pids+=($!)
    done
    for p in "${plain_ports[@]}"; do
        for _ in $(seq 100); do
            redis-cli -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
    done
    if [[ $cluster == no ]]; then
        return 0
    elif ((n == 1)); then
        redis-cli -p "${plain_ports[0]}" cluster addslotsrange 0 16383 >/dev/null
    else
        local hosts=()
        for p in "${plain_ports[@]}"; do hosts+=("127.0.0.1:$p"); done
        redis-cli --cluster create "${hosts[@]}" --cluster-replicas 0 --cluster-yes \
            >"$work/create.log" 2>&1
    fi
    for p in "${plain_ports[@]}"; do
        for _ in $(seq 200); do
            redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
            sleep 0.05
        done
    done
}

cpu_ticks() { # PID...: user+sys clock ticks, summed
    local sum=0
    for p in "$@"; do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$sum"
}

feed_port=$(free_port)
metrics_port=$(free_port)
start_tickplane() { # LOG MASTERS
    local seeds= where=()
    for p in "${tls_ports[@]}"; do seeds+="${seeds:+,}127.0.0.1:$p"; done
    if (($2 == 0)); then
        where=(REDIS_HOST=127.0.0.1 "REDIS_PORT=${tls_ports[0]}")
    else
        where=("REDIS_CLUSTER_NODES=$seeds")
    fi
    env "${where[@]}" REDIS_TLS_ENABLED=true REDIS_TLS_CA_PATH="$certs/ca.crt" \
        REDIS_TLS_SERVER_NAME=localhost TP_FEED_UDP=off TP_FEED_TCP=127.0.0.1:$feed_port \
        TP_METRICS_ADDR=127.0.0.1:$metrics_port TP_LATENCY_LOG_INTERVAL=0 \
        "$build/tickplane" >"$1" 2>&1 &
    sut_pid=$!
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$feed_port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "cluster.sh: tickplane does not listen; see $1" >&2
    exit 1
}

sim() { # NAME RATE DURATION
    "$build/bench/tp_sim" --connect "127.0.0.1:$feed_port" --duration "$3" --tick-rate "$2" \
        --order-rate 0 --symbols 10000 --seed 7 --ack-timeout 30 --warmup 1 \
        --json "$out/$1.json" >"$out/$1.txt" || true
}

echo "cluster.sh: results in $out"
{
    date -u +%Y-%m-%dT%H:%M:%SZ
    uname -srm
    grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- || true
    echo "cores: $(nproc)"
    redis-server --version | cut -d' ' -f1-3
    echo "git $(git -C "$repo" rev-parse --short HEAD)"
} >"$out/machine.txt"

for round in $(seq "$rounds"); do
    for masters in 0 1 3; do
        name=r$round-m$masters
        start_cluster "$masters"
        start_tickplane "$out/$name.log" "$masters"
        c0=$(cpu_ticks "$sut_pid") r0=$(cpu_ticks "${node_pids[@]}")
        sim "$name-p99" "$rate" "$seconds"
        echo "$(($(cpu_ticks "$sut_pid") - c0)) $(($(cpu_ticks "${node_pids[@]}") - r0))" \
            >"$out/$name-p99.cpu"
        sim "$name-sat" 2000000 3
        stop_pid "$sut_pid"
        sut_pid=
        stop_cluster
        printf '  %-8s %s | %s\n' "$name" "$(grep 'ack latency' "$out/$name-p99.txt" || echo FAILED)" \
            "$(grep -m1 'acked' "$out/$name-sat.txt" || echo FAILED)"
    done
done

python3 - "$out" "$rounds" "$(getconf CLK_TCK)" <<'EOF' | tee "$out/summary.md"
import json, os, statistics, sys
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)

def med(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = statistics.median(vals)
    return f"{m:,.1f} ({min(vals):,.1f}-{max(vals):,.1f})" if len(vals) > 1 else f"{m:,.1f}"

rows = {}
for m in (0, 1, 3):
    r = rows[m] = {"p50": [], "p99": [], "sat": [], "tp_cpu": [], "redis_cpu": []}
    for i in range(1, rounds + 1):
        p = load(f"r{i}-m{m}-p99.json")
        s = load(f"r{i}-m{m}-sat.json")
        lat = p["ack_latency_us"]
        r["p50"].append(lat.get("p50"))
        r["p99"].append(lat.get("p99"))
        acked = s["ticks"]["acked_seq"]
        r["sat"].append(acked / s["end_s"] if s["end_s"] else None)
        with open(os.path.join(out, f"r{i}-m{m}-p99.cpu")) as f:
            tp, rd = (int(x) for x in f.read().split())
        n = p["ticks"]["acked_seq"] or 1
        r["tp_cpu"].append(tp / hz / n * 1e6)
        r["redis_cpu"].append(rd / hz / n * 1e6)
print("| Redis | p50 us | p99 us | acked ticks/s at saturation | tickplane CPU us/tick | Redis CPU us/tick (all nodes) |")
print("| --: | --: | --: | --: | --: | --: |")
for m in (0, 1, 3):
    r = rows[m]
    label = "standalone" if m == 0 else f"{m} (Cluster)"
    print(f"| {label} | {med(r['p50'])} | {med(r['p99'])} | {med(r['sat'])} | {med(r['tp_cpu'])} | {med(r['redis_cpu'])} |")
def ratio(k, a, b):
    return statistics.median(rows[a][k]) / statistics.median(rows[b][k])
print(f"\n3 / 1 masters: p99 {ratio('p99', 3, 1):.2f}x, saturation {ratio('sat', 3, 1):.2f}x; "
      f"1-master Cluster / standalone: p99 {ratio('p99', 1, 0):.2f}x, "
      f"saturation {ratio('sat', 1, 0):.2f}x, tickplane CPU {ratio('tp_cpu', 1, 0):.2f}x "
      f"(medians of {rounds} alternated rounds; min-max in brackets)")
EOF
