#!/usr/bin/env bash
# bench/pool_vs_redis_benchmark.sh [rounds] [seconds]
#
# The pool's throughput for a 6-field HSET against redis-benchmark's with the
# same command and -P 256, over TLS (and plain TCP for reference), against one
# redis-server started here. Rounds alternate the two clients so that a noisy
# neighbour hurts both alike; the summary is the median ratio. Needs what
# tests/run.sh installs.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
seconds=${2:-5}
build=${TP_BENCH_BUILD_DIR:-$repo/build/bench}
work=$(mktemp -d /tmp/tp-bench-XXXXXX)
redis_pid=
cleanup() {
    [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTP_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target pool_hset >/dev/null
"$repo/tests/support/gen_certs.sh" "$work/certs" >/dev/null

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
plain_port=$(free_port)
tls_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$plain_port" --tls-port "$tls_port" \
    --tls-cert-file "$work/certs/server.crt" --tls-key-file "$work/certs/server.key" \
    --tls-ca-cert-file "$work/certs/ca.crt" --tls-auth-clients no \
    --save '' --appendonly no --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 50); do
    redis-cli -p "$plain_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done

hset=(HSET 'px:{SYM__rand_int__}' bid 101.25 ask 101.27 bid_sz 300 ask_sz 500 last 101.26
      last_sz 100)
tls_args=(--tls --cacert "$work/certs/ca.crt" --sni localhost)

# Requests per second from redis-benchmark, sized to run about as long as ours.
redis_benchmark() { # port [tls args...]
    local port=$1
    shift
    redis-benchmark -h 127.0.0.1 -p "$port" "$@" -P 256 -r 1000 -n 3000000 -q "${hset[@]}" |
        tr '\r' '\n' | awk '/requests per second/ { for (i = 1; i <= NF; i++)
            if ($(i + 1) == "requests") { print $i; exit } }'
}

pool() { # port tls [ca-path server-name]
    REDIS_PORT=$1 REDIS_TLS_ENABLED=$2 REDIS_TLS_CA_PATH=${3:-} REDIS_TLS_SERVER_NAME=${4:-} \
        REDIS_POOL_MAX_SIZE=${TP_BENCH_POOL_SIZE:-4} \
        "$build/bench/pool_hset" "$seconds" 20000 1024 1000
}

rate_of() { sed -n 's/.* rate \([0-9.]*\).*/\1/p'; }

echo "machine: $(nproc) cores, $(uname -r); redis $(redis-server --version | awk '{print $3}')"
for transport in tls plain; do
    ratios=()
    for round in $(seq "$rounds"); do
        if [[ $transport == tls ]]; then
            peer=$(redis_benchmark "$tls_port" "${tls_args[@]}")
            out=$(pool "$tls_port" true "$work/certs/ca.crt" localhost)
        else
            peer=$(redis_benchmark "$plain_port")
            out=$(pool "$plain_port" false)
        fi
        ours=$(rate_of <<<"$out")
        ratio=$(awk -v a="$ours" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')
        ratios+=("$ratio")
        echo "$transport round $round: redis-benchmark -P 256 $peer/s, pool $ours/s," \
            "ratio $ratio; pool: $out"
    done
    median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    echo "$transport: median ratio pool / redis-benchmark = $median over $rounds rounds"
done
