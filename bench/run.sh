#!/usr/bin/env bash
# bench/run.sh [--quick] [--rounds N] [--rates LIST] [--rows LIST] [--only SECTIONS] [--out DIR]:
# the p99 benchmark, everything in one run on this machine.
#
# One redis-server (plain TCP and TLS ports, no persistence) serves, one after another, the same
# open-loop tp_sim load (frames stamped with their intended send time) at 25k, 50k and 100k
# ticks/s, in N alternated rounds (3; --quick: 1 round at 50k and 100k), each round starting
# from the next row so that no row always runs first. The rows:
#   tickplane-tls  tickplane over TLS (the product);
#   tickplane-tcp  tickplane over plain TCP: what TLS costs it;
#   hiredis-tcp    a hiredis async client on libuv, one HSET per tick, plain TCP (bench/
#                  peer_hiredis.c; hiredis 0.14 has no TLS): the reference of the ratios;
#   floor          peer_hiredis --echo: acks each tick once decoded, no Redis: the cost of the
#                  harness itself;
#   ioredis-tls    ioredis with enableAutoPipelining, over TLS (bench/peer_node);
#   glide-tls      Valkey GLIDE (Rust core), over TLS (bench/peer_node).
# Each peer writes the same HSET per tick and acks once it is answered. For every run the CPU
# time (user + sys, /proc/PID/stat) of the system under test and of redis-server is kept, per
# acked frame. Then, once each: tickplane with order events and fills; saturation for
# tickplane (TLS, TCP) and hiredis; 100,000 symbols for RSS; allocation counts per frame; the
# ceiling, redis-benchmark -P 256 with the same HSET over TLS and plain TCP; and bench/cluster.sh,
# one round: standalone, 1 and 3 Cluster masters, over TLS.
# Every system is restarted and Redis flushed before each run. Latency is tp_sim's: intended
# send time -> FeedAck received; the first second of each run (new keys, TLS session caches) is
# sent and must be acked but is not measured. Results: DIR/*.json, *.hgrm, *.cpu, latency.png,
# throughput.png and summary.md (the ratio table, also printed; bench/report.py). Default DIR:
# build/bench-results/<date>. --only runs some of the sections, comma-separated: latency, mixed,
# events (TP_EVENT_STREAM off/on), saturation, rss, alloc, ceiling, cluster (to measure one lever; the report covers what ran;
# --rates and --rows, comma-separated too, narrow the latency section),
# and profile, which only runs when named: perf record -g (Debian's linux-perf, installed if
# missing) on tickplane (built with frame pointers in build/profile) and on redis-server, over
# TLS and plain TCP at 25k and 100k ticks/s; DIR/profile.md says where the CPU went
# (bench/perf_summary.py).
#
# Needs nothing installed beforehand: deploy/install_packages.sh and bench/install_peers.sh run
# first. Takes about 20 minutes (--quick: about 5).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0
rounds=
out=
only=
rates_opt=
rows_opt=
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --rounds)
        rounds=$2
        shift
        ;;
    --out)
        out=$2
        shift
        ;;
    --only)
        only=$2
        shift
        ;;
    --rates)
        rates_opt=$2
        shift
        ;;
    --rows)
        rows_opt=$2
        shift
        ;;
    *)
        echo "usage: bench/run.sh [--quick] [--rounds N] [--rates LIST] [--rows LIST]" \
            "[--only SECTIONS] [--out DIR]" >&2
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
    rounds=${rounds:-1}
else
    rates=(25000 50000 100000)
    seconds=8
    rounds=${rounds:-3}
fi
[[ $rounds =~ ^[1-9][0-9]?$ ]] || {
    echo "bench/run.sh: --rounds $rounds: expected 1-99" >&2
    exit 2
}
# want SECTION: whether --only (or its absence) asks for it.
want() { [[ ( -z $only && $1 != profile ) || ",$only," == *",$1,"* ]]; }
for section in ${only//,/ }; do
    [[ $section =~ ^(latency|mixed|events|saturation|rss|alloc|ceiling|cluster|profile)$ ]] || {
        echo "bench/run.sh: --only: unknown section '$section'" >&2
        exit 2
    }
done
rows=(tickplane-tls tickplane-tcp hiredis-tcp floor ioredis-tls glide-tls)
if [[ -n $rows_opt ]]; then
    for row in ${rows_opt//,/ }; do
        [[ " ${rows[*]} " == *" $row "* ]] || {
            echo "bench/run.sh: --rows: unknown row '$row' (${rows[*]})" >&2
            exit 2
        }
    done
    read -ra rows <<<"${rows_opt//,/ }"
fi
if [[ -n $rates_opt ]]; then
    read -ra rates <<<"${rates_opt//,/ }"
    for rate in "${rates[@]}"; do
        [[ $rate =~ ^[1-9][0-9]*$ ]] || {
            echo "bench/run.sh: --rates: '$rate' is not a rate in ticks/s" >&2
            exit 2
        }
    done
fi
symbols=10000
saturation_rate=2000000

"$repo/deploy/install_packages.sh" >/dev/null
"$repo/bench/install_peers.sh" >/dev/null
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
if ! command -v gnuplot >/dev/null 2>&1; then # the plots; not needed by anything else
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        gnuplot-nox >/dev/null
fi
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTP_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target tickplane tp_sim peer_hiredis tp_alloc_count >/dev/null

tickplane=$build/tickplane # the system under test; the profile section builds its own
if want profile; then
    command -v perf >/dev/null 2>&1 || "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends linux-perf >/dev/null
    cmake -S "$repo" -B "$repo/build/profile" -DCMAKE_BUILD_TYPE=Release -DTP_TESTS=OFF \
        -DCMAKE_C_FLAGS="-g -fno-omit-frame-pointer" >/dev/null
    cmake --build "$repo/build/profile" -j"$(nproc)" --target tickplane >/dev/null
fi

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

tickplane_env=(REDIS_HOST=127.0.0.1 TP_FEED_UDP=off TP_FEED_TCP=127.0.0.1:$feed_port
    TP_METRICS_ADDR=127.0.0.1:$metrics_port TP_LATENCY_LOG_INTERVAL=0)
tls_env=(REDIS_PORT="$tls_port" REDIS_TLS_ENABLED=true REDIS_TLS_CA_PATH="$ca"
    REDIS_TLS_SERVER_NAME=localhost)
node_tls=(--redis "127.0.0.1:$tls_port" --tls-ca "$ca" --tls-servername localhost)

# start_sut NAME SYSTEM [env...]: flushes Redis, starts SYSTEM (a row) on the feed port, with
# the settings in sut_env too (tickplane rows).
sut_env=()
start_sut() {
    local name=$1 system=$2
    shift 2
    set -- "$@" "${sut_env[@]}"
    stop_sut
    rcli flushall >/dev/null
    case $system in
    tickplane-tls)
        env "$@" "${tickplane_env[@]}" "${tls_env[@]}" "$tickplane" >"$out/$name.log" 2>&1 &
        ;;
    tickplane-tcp)
        env "$@" "${tickplane_env[@]}" REDIS_PORT="$plain_port" REDIS_TLS_ENABLED=false \
            "$tickplane" >"$out/$name.log" 2>&1 &
        ;;
    hiredis-tcp)
        "$build/bench/peer_hiredis" --listen "127.0.0.1:$feed_port" \
            --redis "127.0.0.1:$plain_port" >"$out/$name.log" 2>&1 &
        ;;
    floor)
        "$build/bench/peer_hiredis" --echo --listen "127.0.0.1:$feed_port" >"$out/$name.log" 2>&1 &
        ;;
    ioredis-tls | glide-tls)
        node "$repo/bench/peer_node/peer.js" --client "${system%-tls}" \
            --listen "127.0.0.1:$feed_port" "${node_tls[@]}" >"$out/$name.log" 2>&1 &
        ;;
    esac
    sut_pid=$!
    wait_feed "$name"
}

# CPU seconds (user + sys, all threads) of a process so far, in clock ticks.
cpu_ticks() {
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# sim NAME RATE [tp_sim options...]: one open-loop run against whatever listens.
sim() {
    local name=$1 rate=$2
    shift 2
    local sut0 redis0
    sut0=$(cpu_ticks "$sut_pid")
    redis0=$(cpu_ticks "$redis_pid")
    "$build/bench/tp_sim" --connect "127.0.0.1:$feed_port" --duration "$seconds" \
        --tick-rate "$rate" --order-rate 0 --symbols "$symbols" --seed 7 --ack-timeout 30 \
        --warmup 1 \
        --json "$out/$name.json" --hgrm "$out/$name.hgrm" "$@" >"$out/$name.txt" || true
    echo "$(getconf CLK_TCK) $sut0 $(cpu_ticks "$sut_pid") $redis0 $(cpu_ticks "$redis_pid")" \
        >"$out/$name.cpu"
    printf '  %-28s %s\n' "$name" "$(grep 'ack latency' "$out/$name.txt" || echo FAILED)"
}

scrape() { curl -sS "127.0.0.1:$metrics_port/metrics" >"$out/$1.prom" || true; }

run_row() { # row name rate [tp_sim options...]
    local row=$1 name=$2
    shift
    start_sut "$name" "$row"
    sim "$@"
    [[ $row == tickplane-* ]] && scrape "$name"
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

echo "$rounds" >"$out/rounds.txt"
asked_rounds=$rounds
want latency || rounds=0
for ((round = 1; round <= rounds; round++)); do
    for rate in "${rates[@]}"; do
        echo "round $round of $rounds: offered $rate ticks/s"
        for ((i = 0; i < ${#rows[@]}; i++)); do
            row=${rows[(i + round - 1) % ${#rows[@]}]}
            run_row "$row" "$row-$rate-r$round" "$rate"
        done
    done
done

if want mixed; then
    echo "order events with fills, 100k ticks/s + 2k events/s over 50 accounts"
    run_row tickplane-tls tickplane-mixed-100000 100000 --order-rate 2000 --accounts 50
fi

# What the durable event stream costs the order path: the same mixed load with TP_EVENT_STREAM
# off and on, alternated (not in the report's tables: compare the two rows' lines).
if want events; then
    echo "durable events: 50k ticks/s + 2k order events/s over 50 accounts, TP_EVENT_STREAM off/on"
    for round in $(seq 1 "$asked_rounds"); do
        for stream in off on; do
            sut_env=(TP_EVENT_STREAM=$stream)
            run_row tickplane-tls "tickplane-events-$stream-r$round" 50000 --order-rate 2000 \
                --accounts 50
        done
    done
    sut_env=()
fi

# The Node.js peers are left out: at this rate their backlog takes minutes to drain.
if want saturation; then
    echo "saturation: offered $saturation_rate ticks/s"
    for row in tickplane-tls tickplane-tcp hiredis-tcp; do
        seconds=3 run_row "$row" "$row-sat" "$saturation_rate"
    done
fi

# rss_run NAME [tp_sim options...]: peak RSS (VmHWM) of tickplane over TLS with 100,000 symbols
# at 100k ticks/s, at the default settings.
rss_run() {
    local name=$1
    shift
    start_sut "$name" tickplane-tls
    symbols=100000 seconds=4 sim "$name" 100000 "$@"
    grep VmHWM "/proc/$sut_pid/status" | awk '{ print $2 }' >"$out/$name.kb"
    echo "  peak RSS $(($(cat "$out/$name.kb") / 1024)) MiB"
    stop_sut
}
if want rss; then
    echo "RSS with 100,000 symbols"
    rss_run tickplane-rss
    echo "RSS with 100,000 symbols and 100,000 open orders"
    rss_run tickplane-rss-book --open-orders 100000 --accounts 100
fi

if want alloc; then
    echo "allocations per frame (LD_PRELOAD counter, a short and a long run)"
    for d in 2 6; do
        start_sut "alloc-$d" tickplane-tls LD_PRELOAD="$build/bench/libtp_alloc_count.so"
        seconds=$d sim "alloc-$d" 100000 --order-rate 1000 --accounts 20
        stop_sut
    done
fi

if want ceiling; then
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
fi

python3 "$repo/bench/report.py" "$out"

# The cluster row: bench/cluster.sh starts nodes of its own, so this Redis goes first (it would
# only sit idle, but the run should have the machine to itself).
if want profile; then
    echo "profile: perf record -g on tickplane and redis-server"
    tickplane=$repo/build/profile/tickplane
    for row in tickplane-tls tickplane-tcp; do
        for rate in 25000 100000; do
            name=profile-$row-$rate
            start_sut "$name" "$row"
            pids=()
            for who in tickplane:$sut_pid redis:$redis_pid; do
                perf record -q -F 1999 -g -p "${who#*:}" -o "$work/$name.${who%:*}.data" \
                    2>/dev/null &
                pids+=($!)
            done
            sim "$name" "$rate"
            kill -INT "${pids[@]}" && wait "${pids[@]}" || true
            stop_sut
            for who in tickplane redis; do
                perf script -i "$work/$name.$who.data" 2>/dev/null |
                    python3 "$repo/bench/perf_summary.py" "$who, $row at $rate ticks/s" \
                        >>"$out/profile.md"
            done
        done
    done
    tickplane=$build/tickplane
    echo "  $out/profile.md"
fi

want cluster || exit 0
kill "$redis_pid" && wait "$redis_pid" 2>/dev/null || true
redis_pid=
echo "cluster: tickplane on Redis Cluster, 1 and 3 masters against standalone (bench/cluster.sh)"
"$repo/bench/cluster.sh" --rounds 1 --seconds 6 --out "$out/cluster" >/dev/null
{
    printf '\n## Redis Cluster (bench/cluster.sh --rounds 1; more rounds: run it alone)\n\n'
    cat "$out/cluster/summary.md"
} | tee -a "$out/summary.md"
