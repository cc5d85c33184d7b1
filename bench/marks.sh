#!/usr/bin/env bash
# bench/marks.sh --before BIN --after BIN [options]: the mark-to-market benchmark. Compares two
# (or more) tickplane binaries on ticks against a book of open positions, in alternated rounds
# (before, after, before, after, ...) of one run on one machine.
#
# Every run, for each binary and round:
#   1. a fresh redis-server, started as bench/run.sh starts it (a TLS port with certificates
#      generated for the run and a plain port; no persistence), and the binary under test on it
#      (over TLS unless --tls off), with the allocation counter preloaded
#      (bench/alloc_count_preload.c; it costs one increment per malloc);
#   2. the preload: tp_sim --positions opens --positions positions, a NEW order and its full
#      FILL each, long or short, over --accounts accounts (by default 1,000 accounts x 100
#      positions, so every one of the 10,000 symbols is held by 10 accounts), sent as fast as
#      tickplane takes them; the run goes on once every frame is acked (FeedAck);
#   3. the ticks: tp_sim offers --rate ticks/s for --seconds over the same symbols, open loop
#      (every frame stamped with its intended send time; latency = intended send -> FeedAck
#      received). The first second is sent and must be acked but is not measured, as in
#      bench/run.sh. CPU (user+sys from /proc/PID/stat) of tickplane and redis-server and the
#      allocation count (SIGUSR2 makes the counter print it) are taken when that second ends
#      and again once every tick is acked: the measured window.
# Reported per round and as medians (min-max) with the ratio to the reference binary (--before):
# p50/p90/p99/p99.9 latency, acked ticks/s, CPU per measured tick of tickplane and redis-server,
# tickplane's peak RSS, allocations per measured tick, HSET calls in Redis (INFO commandstats)
# during the ticks, and the mark counters on tickplane's /metrics where the binary has them
# (tickplane_marks_written_total, tickplane_positions_remarked_total,
# tickplane_marks_conflated_total; "-" where it does not). Results: DIR/summary.md (also
# printed), DIR/<round>-<binary>.json per round and the raw files of each in
# DIR/<round>-<binary>/. Default DIR: build/bench-results/marks-<date>.
#
# Needs nothing installed beforehand: deploy/install_packages.sh runs first, and tp_sim and the
# allocation counter are built (Release) from this tree in $TP_BENCH_BUILD_DIR (default
# build/bench); the binaries under test are used as given. Takes about 20 s + --seconds per
# binary and round on an idle 2-core machine with the defaults (the preload of 100,000
# positions is most of the rest): about 3 minutes for 2 binaries, 3 rounds, --seconds 10.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { # [STATUS]: on stderr and exit 2, or with 0 (--help) on stdout
    local status=${1:-2}
    ((status == 0)) || exec >&2
    cat <<'EOF'
usage: bench/marks.sh --before BIN --after BIN [options]
  --before BIN        the reference tickplane binary (ratios are against it)
  --after BIN         the binary to compare
  --bin LABEL=BIN     another binary to compare (repeatable); at least one binary in all
  --rounds N          rounds, each running every binary once, alternated      3
  --seconds S         ticks sent per run (the first second is not measured)   10
  --rate R            ticks per second offered                                100000
  --symbols N         symbols SYM0000 ...                                     10000
  --positions N       open positions preloaded before the ticks               100000
  --accounts N        accounts holding them, positions/accounts symbols each  1000
  --tls on|off        tickplane -> Redis over TLS                             on
  --out DIR           results  (default build/bench-results/marks-<date>)
EOF
    exit "$status"
}

labels=()
bins=()
add_bin() { # LABEL PATH
    local label=$1 path=$2
    [[ $label =~ ^[A-Za-z0-9_.-]+$ ]] || {
        echo "marks.sh: binary label \"$label\" must be letters, digits, _ . -" >&2
        exit 2
    }
    for l in "${labels[@]}"; do
        [[ $l != "$label" ]] || {
            echo "marks.sh: two binaries labelled \"$label\"" >&2
            exit 2
        }
    done
    [[ -x $path && -f $path ]] || {
        echo "marks.sh: $label binary \"$path\" is not an executable file" >&2
        exit 2
    }
    labels+=("$label")
    bins+=("$(cd "$(dirname "$path")" && pwd)/$(basename "$path")")
}

rounds=3
seconds=10
rate=100000
symbols=10000
positions=100000
accounts=1000
tls=on
out=
before=
after=
extra=()
while (($#)); do
    [[ $1 != -h && $1 != --help ]] || usage 0
    (($# >= 2)) || usage
    case $1 in
    --before) before=$2 ;;
    --after) after=$2 ;;
    --bin) extra+=("$2") ;;
    --rounds) rounds=$2 ;;
    --seconds) seconds=$2 ;;
    --rate) rate=$2 ;;
    --symbols) symbols=$2 ;;
    --positions) positions=$2 ;;
    --accounts) accounts=$2 ;;
    --tls) tls=$2 ;;
    --out) out=$2 ;;
    *) usage ;;
    esac
    shift 2
done
[[ -z $before ]] || add_bin before "$before"
[[ -z $after ]] || add_bin after "$after"
for b in "${extra[@]}"; do
    [[ $b == *=* ]] || usage
    add_bin "${b%%=*}" "${b#*=}"
done
((${#bins[@]} > 0)) || usage
for v in rounds rate symbols positions accounts; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
        echo "marks.sh: --$v \"${!v}\" is not a positive integer" >&2
        exit 2
    }
done
# tp_sim's --warmup 1: a run must send for longer than the second that is not measured.
awk -v s="$seconds" 'BEGIN { exit !(s ~ /^[0-9]+(\.[0-9]+)?$/ && s > 1.5) }' || {
    echo "marks.sh: --seconds \"$seconds\" must be a number of seconds above 1.5" >&2
    exit 2
}
[[ $tls == on || $tls == off ]] || {
    echo "marks.sh: --tls must be on or off" >&2
    exit 2
}
# tp_sim's own limits, checked before anything starts.
awk -v r="$rate" -v s="$seconds" 'BEGIN { exit !(r <= 10000000 && r * s <= 20000000) }' || {
    echo "marks.sh: --rate $rate for --seconds $seconds: at most 10,000,000 ticks/s and" \
        "20,000,000 ticks a run" >&2
    exit 2
}
((symbols <= 100000 && accounts <= 10000 && positions <= 1000000)) || {
    echo "marks.sh: at most 100,000 symbols, 10,000 accounts and 1,000,000 positions" >&2
    exit 2
}
(((positions + accounts - 1) / accounts <= symbols)) || {
    echo "marks.sh: $positions positions over $accounts accounts need at least" \
        "$(((positions + accounts - 1) / accounts)) symbols (one per account and symbol)" >&2
    exit 2
}

out=${out:-$repo/build/bench-results/marks-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${TP_BENCH_BUILD_DIR:-$repo/build/bench}
report=(python3 "$repo/bench/marks_report.py")

"$repo/deploy/install_packages.sh" >/dev/null
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTP_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target tp_sim tp_alloc_count >/dev/null
sim_bin=$build/bench/tp_sim
alloc_lib=$build/bench/libtp_alloc_count.so

work=$(mktemp -d /tmp/tp-marks-XXXXXX)
redis_pid=
sut_pid=
sim_pid=
stop_pid() { # PID [SIGNAL]: ends one process this script started and reaps it
    [[ -n $1 ]] || return 0
    kill "-${2:-TERM}" "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop_pid "$sim_pid" INT
    stop_pid "$sut_pid"
    stop_pid "$redis_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$repo/tests/support/gen_certs.sh" "$work/certs" >/dev/null
ca=$work/certs/ca.crt

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_redis() { # DIR
    plain_port=$(free_port)
    tls_port=$(free_port)
    mkdir -p "$work/redis"
    redis-server --bind 127.0.0.1 --port "$plain_port" --tls-port "$tls_port" \
        --tls-cert-file "$work/certs/server.crt" --tls-key-file "$work/certs/server.key" \
        --tls-ca-cert-file "$ca" --tls-auth-clients no \
        --save '' --appendonly no --dir "$work/redis" --logfile "$1/redis.log" &
    redis_pid=$!
    for _ in $(seq 100); do
        rcli ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "marks.sh: redis-server did not start; see $1/redis.log" >&2
    exit 1
}
rcli() { redis-cli -h 127.0.0.1 -p "$plain_port" "$@"; }

start_sut() { # BIN DIR
    local bin=$1 d=$2 redis_env
    feed_port=$(free_port)
    metrics_port=$(free_port)
    if [[ $tls == on ]]; then
        redis_env=(REDIS_PORT="$tls_port" REDIS_TLS_ENABLED=true REDIS_TLS_CA_PATH="$ca"
            REDIS_TLS_SERVER_NAME=localhost)
    else
        redis_env=(REDIS_PORT="$plain_port" REDIS_TLS_ENABLED=false)
    fi
    env LD_PRELOAD="$alloc_lib" REDIS_HOST=127.0.0.1 "${redis_env[@]}" TP_FEED_UDP=off \
        TP_FEED_TCP="127.0.0.1:$feed_port" TP_METRICS_ADDR="127.0.0.1:$metrics_port" \
        TP_LATENCY_LOG_INTERVAL=0 "$bin" >"$d/tickplane.log" 2>&1 &
    sut_pid=$!
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$feed_port") 2>/dev/null; then
            # Without the counter, the SIGUSR2 of a snapshot would end the process.
            grep -q libtp_alloc_count "/proc/$sut_pid/maps" && return 0
            echo "marks.sh: $alloc_lib is not loaded in $bin" >&2
            exit 1
        fi
        kill -0 "$sut_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "marks.sh: tickplane does not listen on its feed port; see $d/tickplane.log" >&2
    exit 1
}

alloc_marks() { # LOG: the SIGUSR2 counts tickplane has logged so far
    { grep -o '"count":[0-9]*,"signal":"SIGUSR2"' "$1" || true; } | wc -l
}
# snapshot DIR NAME [full]: CPU of both processes, the allocation count, and with "full" also
# commandstats, /metrics and tickplane's peak RSS so far.
snapshot() {
    local d=$1 name=$2 full=${3:-} n page
    date +%s.%N >"$d/time-$name.txt"
    cat "/proc/$sut_pid/stat" >"$d/stat-$name-tickplane.txt"
    cat "/proc/$redis_pid/stat" >"$d/stat-$name-redis.txt"
    n=$(alloc_marks "$d/tickplane.log")
    kill -USR2 "$sut_pid"
    for _ in $(seq 500); do
        (($(alloc_marks "$d/tickplane.log") > n)) && break
        sleep 0.01
    done
    { grep -o '"count":[0-9]*,"signal":"SIGUSR2"' "$d/tickplane.log" || true; } | tail -1 |
        sed 's/^"count":\([0-9]*\),.*/\1/' >"$d/alloc-$name.txt"
    if [[ -n $full ]]; then
        # Writes that no ack waits for (marks, say) may still be in flight: let them land.
        for _ in $(seq 100); do
            page=$(curl -sS --max-time 2 "127.0.0.1:$metrics_port/metrics" 2>/dev/null || true)
            [[ $page == *$'\ntickplane_redis_inflight_commands 0\n'* ]] && break
            sleep 0.02
        done
        rcli info commandstats >"$d/cmdstats-$name.txt"
        curl -sS --max-time 10 "127.0.0.1:$metrics_port/metrics" >"$d/metrics-$name.prom" ||
            true
        awk '/^VmHWM/ { print $2 }' "/proc/$sut_pid/status" >"$d/vmhwm-$name-kb.txt"
    fi
}

# run_one ROUND INDEX: one binary, one round.
run_one() {
    local round=$1 i=$2 name d status
    name=r$round-${labels[$i]}
    d=$out/$name
    rm -rf "$d"
    mkdir -p "$d"
    start_redis "$d"
    start_sut "${bins[$i]}" "$d"
    if ! "$sim_bin" --connect "127.0.0.1:$feed_port" --tick-rate 0 --order-rate 0 \
        --positions "$positions" --accounts "$accounts" --symbols "$symbols" --seed 7 \
        --ack-timeout 120 --json "$d/preload.json" >"$d/preload.txt" 2>&1; then
        echo "marks.sh: $name: the preload failed; see $d/preload.txt and $d/tickplane.log" >&2
        exit 1
    fi
    snapshot "$d" preloaded full
    # The same seed: the ticks' random walks start at the prices the positions were filled at.
    "$sim_bin" --connect "127.0.0.1:$feed_port" --duration "$seconds" --tick-rate "$rate" \
        --order-rate 0 --symbols "$symbols" --seed 7 --ack-timeout 30 \
        --warmup 1 --json "$d/ticks.json" --hgrm "$d/ticks.hgrm" >"$d/ticks.txt" 2>&1 &
    sim_pid=$!
    sleep 1
    snapshot "$d" window_start
    status=0
    wait "$sim_pid" || status=$?
    sim_pid=
    echo "$status" >"$d/tp_sim-status.txt"
    snapshot "$d" window_end full
    stop_pid "$sut_pid"
    sut_pid=
    stop_pid "$redis_pid"
    redis_pid=
    "${report[@]}" round "$out" "$name" "${labels[$i]}" "${bins[$i]}" "$round"
}

{
    uname -srm
    grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- || true
    echo "cores: $(nproc)"
    echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    redis-server --version | cut -d' ' -f1-3
} >"$out/machine.txt"
date -u +%Y-%m-%dT%H:%M:%SZ >"$out/date.txt"
bin_args=()
for i in "${!labels[@]}"; do
    bin_args+=("bin:${labels[$i]}=${bins[$i]}")
done
"${report[@]}" init "$out" rounds="$rounds" seconds="$seconds" rate="$rate" \
    symbols="$symbols" positions="$positions" accounts="$accounts" tls="$tls" "${bin_args[@]}"

echo "marks: results in $out"
echo "marks: ${labels[*]} x $rounds round(s); $rate ticks/s for $seconds s over $symbols" \
    "symbols, $positions positions over $accounts accounts, TLS $tls"
for round in $(seq "$rounds"); do
    for i in "${!labels[@]}"; do
        run_one "$round" "$i"
    done
done
"${report[@]}" summary "$out"
