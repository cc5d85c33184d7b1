#!/usr/bin/env bash
# bench/run.sh [--quick] [--out DIR]: the p99 benchmark, everything in one run on this machine.
#
# One redis-server (plain TCP and TLS ports, no persistence) serves, one after another:
#   tickplane  over TLS, fed by tp_sim at several offered tick rates (open loop, frames stamped
#              with their intended send time), plus one run with order events and fills, one at
#              saturation, one with 100,000 symbols for RSS, and allocation counts per frame;
#   peers      the same job and the same tp_sim load: a hiredis async client on libuv (plain
#              TCP: hiredis 0.14 has no TLS) and ioredis with enableAutoPipelining over TLS,
#              each one HSET per tick and an ack once it is answered (bench/peer_*);
#   ceiling    redis-benchmark -P 256 with the same HSET, over TLS and plain TCP;
#   cluster    bench/cluster.sh, one round: standalone, 1 and 3 Cluster masters, over TLS.
# Every system is restarted and Redis flushed before each run. Latency is tp_sim's: intended
# send time -> FeedAck received; the first second of each run (new keys, TLS session caches) is
# sent and must be acked but is not measured. Results: DIR/*.json, *.hgrm, latency.png,
# throughput.png and summary.md (the ratio table, also printed). Default DIR:
# build/bench-results/<date>.
#
# Needs nothing installed beforehand: deploy/install_packages.sh and bench/install_peers.sh run
# first. Takes about 7 minutes (--quick: about 3).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0
out=
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --out)
        out=$2
        shift
        ;;
    *)
        echo "usage: bench/run.sh [--quick] [--out DIR]" >&2
        exit 2
        ;;
    esac
    shift
done
out=${out:-$repo/build/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${TP_BENCH_BUILD_DIR:-$repo/build/bench}

if ((quick)); then
    rates=(50000 100000)
    seconds=4
else
    rates=(25000 50000 100000 150000 200000)
    seconds=8
fi
symbols=10000
saturation_rate=2000000

"$repo/deploy/install_packages.sh" >/dev/null
"$repo/bench/install_peers.sh" >/dev/null
if ! command -v gnuplot >/dev/null 2>&1; then # the plots; not needed by anything else
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        gnuplot-nox >/dev/null
fi
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTP_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target tickplane tp_sim peer_hiredis tp_alloc_count >/dev/null

work=$(mktemp -d /tmp/tp-bench-XXXXXX)
redis_pid=
sut_pid=
stop_sut() {
    if [[ -n $sut_pid ]]; then
        kill -TERM "$sut_pid" 2>/dev/null || true
        wait "$sut_pid" 2>/dev/null || true
        sut_pid=
    fi
}
cleanup() {
    stop_sut
    [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
"$repo/tests/support/gen_certs.sh" "$work/certs" >/dev/null
ca=$work/certs/ca.crt

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
plain_port=$(free_port)
tls_port=$(free_port)
feed_port=$(free_port)
metrics_port=$(free_port)

redis-server --bind 127.0.0.1 --port "$plain_port" --tls-port "$tls_port" \
    --tls-cert-file "$work/certs/server.crt" --tls-key-file "$work/certs/server.key" \
    --tls-ca-cert-file "$ca" --tls-auth-clients no \
    --save '' --appendonly no --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
rcli() { redis-cli -h 127.0.0.1 -p "$plain_port" "$@"; }
for _ in $(seq 50); do
    rcli ping >/dev/null 2>&1 && break
    sleep 0.1
done

# ---- systems under test --------------------------------------------------------------------

wait_feed() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$feed_port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on the feed port; see $out/$1.log" >&2
    exit 1
}

# start_sut NAME SYSTEM [env...]: flushes Redis, starts SYSTEM on the feed port.
start_sut() {
    local name=$1 system=$2
    shift 2
    stop_sut
    rcli flushall >/dev/null
    case $system in
    tickplane)
        env "$@" REDIS_HOST=127.0.0.1 REDIS_PORT="$tls_port" REDIS_TLS_ENABLED=true \
            REDIS_TLS_CA_PATH="$ca" REDIS_TLS_SERVER_NAME=localhost TP_FEED_UDP=off \
            TP_FEED_TCP=127.0.0.1:$feed_port TP_METRICS_ADDR=127.0.0.1:$metrics_port \
            TP_LATENCY_LOG_INTERVAL=0 "$build/tickplane" >"$out/$name.log" 2>&1 &
        ;;
    hiredis)
        "$build/bench/peer_hiredis" --listen "127.0.0.1:$feed_port" \
            --redis "127.0.0.1:$plain_port" >"$out/$name.log" 2>&1 &
        ;;
    ioredis)
        node "$repo/bench/peer_ioredis/peer.js" --listen "127.0.0.1:$feed_port" \
            --redis "127.0.0.1:$tls_port" --tls-ca "$ca" --tls-servername localhost \
            >"$out/$name.log" 2>&1 &
        ;;
    esac
    sut_pid=$!
    wait_feed "$name"
}

# sim NAME RATE [tp_sim options...]: one open-loop run against whatever listens.
sim() {
    local name=$1 rate=$2
    shift 2
    "$build/bench/tp_sim" --connect "127.0.0.1:$feed_port" --duration "$seconds" \
        --tick-rate "$rate" --order-rate 0 --symbols "$symbols" --seed 7 --ack-timeout 30 \
        --warmup 1 \
        --json "$out/$name.json" --hgrm "$out/$name.hgrm" "$@" >"$out/$name.txt" || true
    printf '  %-28s %s\n' "$name" "$(grep 'ack latency' "$out/$name.txt" || echo FAILED)"
}

scrape() { curl -sS "127.0.0.1:$metrics_port/metrics" >"$out/$1.prom" || true; }

run_tickplane() { # name rate [tp_sim options...]
    local name=$1
    start_sut "$name" tickplane
    sim "$@"
    scrape "$name"
    stop_sut
}

echo "bench: results in $out"
date -u +%Y-%m-%dT%H:%M:%SZ >"$out/date.txt"
{
    uname -srm
    grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- || true
    echo "cores: $(nproc)"
    echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    redis-server --version | cut -d' ' -f1-3
    echo "node $(node --version)"
} >"$out/machine.txt"

for rate in "${rates[@]}"; do
    echo "offered $rate ticks/s"
    run_tickplane "tickplane-$rate" "$rate"
    start_sut "hiredis-$rate" hiredis
    sim "hiredis-$rate" "$rate"
    start_sut "ioredis-$rate" ioredis
    sim "ioredis-$rate" "$rate"
done
stop_sut

echo "order events with fills, 100k ticks/s + 2k events/s over 50 accounts"
run_tickplane tickplane-mixed-100000 100000 --order-rate 2000 --accounts 50

echo "saturation: offered $saturation_rate ticks/s"
seconds=3
run_tickplane "tickplane-sat" "$saturation_rate"
for peer in hiredis ioredis; do
    start_sut "$peer-sat" "$peer"
    sim "$peer-sat" "$saturation_rate"
done
stop_sut

echo "RSS with 100,000 symbols"
start_sut tickplane-rss tickplane
symbols=100000 sim tickplane-rss 100000
grep VmHWM "/proc/$sut_pid/status" | awk '{ print $2 }' >"$out/tickplane-rss.kb"
stop_sut

echo "allocations per frame (LD_PRELOAD counter, a short and a long run)"
for d in 2 6; do
    seconds=$d
    start_sut "alloc-$d" tickplane LD_PRELOAD="$build/bench/libtp_alloc_count.so"
    sim "alloc-$d" 100000 --order-rate 1000 --accounts 20
    stop_sut
done

echo "ceiling: redis-benchmark -P 256, the same HSET"
hset=(HSET 'tp:px:SYM__rand_int__' bid 101.25000000 ask 101.27000000 bid_sz 300.00000000
      ask_sz 500.00000000 last 101.26000000 last_sz 100.00000000 seq 123456 exch_ts
      1763690000000000000 recv_ts 1763690000000100000)
for mode in tls plain; do
    args=(-p "$plain_port")
    [[ $mode == tls ]] && args=(-p "$tls_port" --tls --cacert "$ca" --sni localhost)
    rcli flushall >/dev/null
    redis-benchmark -h 127.0.0.1 "${args[@]}" -P 256 -r "$symbols" -n 3000000 --csv \
        "${hset[@]}" | tail -1 >"$out/redis-benchmark-$mode.csv"
    echo "  $mode: $(cat "$out/redis-benchmark-$mode.csv")"
done

python3 "$repo/bench/report.py" "$out"

# The cluster row: bench/cluster.sh starts nodes of its own, so this Redis goes first (it would
# only sit idle, but the run should have the machine to itself).
kill "$redis_pid" && wait "$redis_pid" 2>/dev/null || true
redis_pid=
echo "cluster: tickplane on Redis Cluster, 1 and 3 masters against standalone (bench/cluster.sh)"
"$repo/bench/cluster.sh" --rounds 1 --seconds "$seconds" --out "$out/cluster" >/dev/null
{
    printf '\n## Redis Cluster (bench/cluster.sh --rounds 1; more rounds: run it alone)\n\n'
    cat "$out/cluster/summary.md"
} | tee -a "$out/summary.md"
