#!/usr/bin/env bash
# deploy/quickstart.sh [seconds]: the service end to end on one machine, in one command.
#
#   1. installs missing Debian packages (deploy/install_packages.sh);
#   2. builds tickplane and tp_sim (Release) in build/quickstart;
#   3. generates throwaway TLS certificates into build/quickstart/certs;
#   4. starts redis-server on a free loopback port, TLS only, no persistence;
#   5. subscribes to tp:events with redis-cli, into build/quickstart/run/events.txt;
#   6. starts tickplane against that Redis (TLS, JSON events) with its TCP feed on a free port;
#   7. runs tp_sim (simulated market data + execution gateway) for [seconds] (default 10);
#   8. stops tickplane with SIGTERM (graceful shutdown: queued writes are flushed) and prints
#      the report: the simulator's summary, prices, open orders and a portfolio read back from
#      Redis, the events published, tickplane's exit;
#   9. stops whatever it started, on success, on error and on Ctrl-C alike.
#
# Ctrl-C during the traffic ends it early and still prints the report; at any other time it stops
# everything at once. The services run in sessions of their own (setsid), so the terminal's
# SIGINT reaches only this script and tp_sim, and tickplane is always stopped first, while Redis
# still takes its last writes.
#
# Everything it writes stays under build/quickstart (run/ holds the logs of this run). Exits
# non-zero when a step fails, tp_sim reports unacknowledged frames, or tickplane exits non-zero.
set -euo pipefail

usage() {
    echo "usage: deploy/quickstart.sh [seconds]   (seconds of simulated traffic, default 10)"
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    usage
    exit 0
fi
if (($# > 1)); then
    usage >&2
    exit 2
fi
seconds=${1:-10}
if [[ ! $seconds =~ ^[0-9]+([.][0-9]+)?$ || $seconds =~ ^0+([.]0+)?$ ]]; then
    echo "quickstart.sh: \"$seconds\" is not a positive number of seconds" >&2
    usage >&2
    exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
qs=$repo/build/quickstart
certs=$qs/certs
run=$qs/run
# Debian's interpreter when there is one (DESIGN.md); only its socket module is used here.
py=/usr/bin/python3
[[ -x $py ]] || py=python3

redis_pid='' sub_pid='' tp_pid='' stop_status=0 interrupted=0
redis_port='' feed_port=''
tp_status=''

section() {
    printf '\n==== %s ====\n' "$*"
}

die() {
    echo "quickstart.sh: $*" >&2
    exit 1
}

# ---- processes ---------------------------------------------------------------------------------

alive() {
    [[ -n $1 ]] && kill -0 "$1" 2>/dev/null
}

# stop_pid <pid> <seconds>: SIGTERM, then SIGKILL if it is still there after <seconds>; reaps it
# and sets stop_status to its exit status (128 + signal for a signal). Not in a subshell: only
# this shell can wait for its children.
stop_pid() {
    local pid=$1 limit=$2 waited=0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && ((waited < limit * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$pid"; then
        echo "quickstart.sh: pid $pid still running after ${limit}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    stop_status=0
    wait "$pid" 2>/dev/null || stop_status=$?
}

# Stops tickplane gracefully (or reaps it if it died) and records its exit status.
stop_tickplane() {
    if [[ -n $tp_pid ]]; then
        stop_pid "$tp_pid" 30
        tp_status=$stop_status
        tp_pid=''
    fi
}

cleanup() {
    local status=$? stopped=()
    trap - EXIT INT TERM
    if [[ -n $tp_pid ]]; then
        stop_tickplane
        stopped+=("tickplane (exit $tp_status)")
    fi
    if [[ -n $sub_pid ]]; then
        stop_pid "$sub_pid" 5
        stopped+=(subscriber)
    fi
    if [[ -n $redis_pid ]]; then
        stop_pid "$redis_pid" 10
        stopped+=(redis-server)
    fi
    if ((${#stopped[@]} > 0)); then
        local list
        printf -v list '%s, ' "${stopped[@]}"
        echo "stopped: ${list%, }"
    fi
    if ((status != 0)); then
        echo "quickstart.sh: failed (exit $status); logs in $run" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two distinct free loopback ports, chosen by the kernel.
free_ports() {
    "$py" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
'
}

rcli() {
    redis-cli --tls --cacert "$certs/ca.crt" --sni localhost -h 127.0.0.1 -p "$redis_port" "$@"
}

# wait_for <seconds> <what> <pid> <command...>: polls the command until it succeeds; fails when
# the process <pid> dies or time runs out.
wait_for() {
    local limit=$1 what=$2 pid=$3 tries=0
    shift 3
    until "$@" >/dev/null 2>&1; do
        alive "$pid" || return 1
        ((tries++ < limit * 10)) || return 1
        sleep 0.1
    done
    echo "$what"
}

redis_pong() {
    [[ $(rcli ping 2>/dev/null) == PONG ]]
}

feed_accepts() {
    (exec 3<>"/dev/tcp/127.0.0.1/$feed_port") 2>/dev/null
}

pool_ready() {
    grep -q 'redis pool ready' "$run/tickplane.log"
}

subscribed() {
    [[ $(head -n 3 "$run/events.txt" 2>/dev/null | tr '\n' ' ') == "subscribe tp:events 1 " ]]
}

# ---- 1-3. packages, build, certificates --------------------------------------------------------

section "packages"
"$repo/deploy/install_packages.sh"

section "build (Release, $qs)"
mkdir -p "$qs"
if ! {
    cmake -S "$repo" -B "$qs" -DCMAKE_BUILD_TYPE=Release -DTP_TESTS=OFF &&
        cmake --build "$qs" -j"$(nproc)" --target tickplane tp_sim
} >"$qs/build.log" 2>&1; then
    tail -n 30 "$qs/build.log" >&2
    die "build failed (full log: $qs/build.log)"
fi
echo "built $qs/tickplane and $qs/bench/tp_sim (log: $qs/build.log)"
"$repo/tests/support/gen_certs.sh" "$certs"

# ---- 4-6. redis-server, subscriber, tickplane --------------------------------------------------

section "start"
rm -rf "$run"
mkdir -p "$run/redis"
read -r redis_port feed_port < <(free_ports) || true
[[ -n $redis_port && -n $feed_port ]] || die "cannot find free loopback ports ($py)"

setsid redis-server --bind 127.0.0.1 --port 0 --tls-port "$redis_port" \
    --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
    --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no \
    --save '' --appendonly no --dir "$run/redis" --daemonize no \
    --logfile "$run/redis.log" &
redis_pid=$!
wait_for 10 "redis-server  pid $redis_pid, TLS on 127.0.0.1:$redis_port (log: $run/redis.log)" \
    "$redis_pid" redis_pong || {
    tail -n 20 "$run/redis.log" >&2
    die "redis-server did not answer PING over TLS"
}

# redis-cli itself, not through rcli: $! must be its pid, not a subshell's. (setsid execs in
# place: a background job of a script is no process group leader.)
setsid redis-cli --tls --cacert "$certs/ca.crt" --sni localhost -h 127.0.0.1 -p "$redis_port" \
    SUBSCRIBE tp:events >"$run/events.txt" 2>"$run/subscriber.log" &
sub_pid=$!
wait_for 10 "subscriber    pid $sub_pid, tp:events -> $run/events.txt" "$sub_pid" subscribed ||
    die "redis-cli SUBSCRIBE tp:events failed: $(cat "$run/subscriber.log")"

REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port REDIS_TLS_ENABLED=true \
    REDIS_TLS_CA_PATH=$certs/ca.crt REDIS_TLS_SERVER_NAME=localhost \
    TP_EVENT_FORMAT=json TP_FEED_TCP=127.0.0.1:$feed_port TP_FEED_UDP=off \
    setsid "$qs/tickplane" >"$run/tickplane.log" 2>&1 &
tp_pid=$!
if ! wait_for 15 "tickplane     pid $tp_pid, feed on 127.0.0.1:$feed_port, redis pool ready" \
    "$tp_pid" eval 'feed_accepts && pool_ready'; then
    tail -n 20 "$run/tickplane.log" >&2
    die "tickplane did not start (feed port open and \"redis pool ready\" in its log)"
fi

# ---- 7. simulated traffic ----------------------------------------------------------------------

section "traffic"
echo "tp_sim: ${seconds}s of ticks and order events (every 50th order event invalid) ..."
sim_status=0
# Ctrl-C now: tp_sim stops sending, collects the last acks and prints its summary; the report
# follows.
trap 'interrupted=1' INT
"$qs/bench/tp_sim" --connect "127.0.0.1:$feed_port" --duration "$seconds" --invalid-every 50 \
    --json "$run/sim.json" >"$run/sim.txt" 2>&1 || sim_status=$?
trap 'exit 130' INT
# Bash skips the trap when tp_sim itself caught the SIGINT (and exited normally); it says so.
if grep -q '"stopped_by_signal":true' "$run/sim.json" 2>/dev/null; then
    interrupted=1
fi

# A graceful stop flushes what tickplane still holds, so the report reads the final state.
echo "tickplane: SIGTERM ..."
stop_tickplane
sleep 0.3 # the subscriber writes the last events

# ---- 8. report ---------------------------------------------------------------------------------

# hash_line <key>: a hash's fields on one line, field=value.
hash_line() {
    rcli HGETALL "$1" | paste -d= - - | awk '$0 != "=" { line = line " " $0 }
        END { print line == "" ? " (missing)" : line }'
}

# Portfolio fields are SYM:field or totals; one row per symbol (sorted, at most 5), then the
# totals.
show_portfolio() {
    rcli HGETALL "$1" | paste -d' ' - - | LC_ALL=C sort | awk '
        { split($1, p, ":") }
        length(p) == 2 { if (!(p[1] in row)) { order[n++] = p[1] }
                         row[p[1]] = row[p[1]] " " p[2] "=" $2; next }
        { totals = totals " " $1 "=" $2 }
        END {
            for (i = 0; i < n && i < 5; i++) printf "    %s%s\n", order[i], row[order[i]]
            if (n > 5) printf "    ... %d symbols in all\n", n
            if (totals != "") printf "    totals:%s\n", totals
            if (n == 0 && totals == "") print "    (empty)"
        }'
}

# The count and the first 3 payloads in events.txt, where redis-cli printed message, channel,
# payload, a line each. One pass over the whole file: an early-closed pipe would be SIGPIPE.
show_events() {
    awk 'prev2 == "message" && prev1 == "tp:events" { if (n++ < 3) first[n] = $0 }
         { prev2 = prev1; prev1 = $0 }
         END { printf "  count: %d\n", n
               for (i = 1; i <= n && i <= 3; i++) print "  " first[i] }' "$run/events.txt"
}

section "report"
echo "-- tp_sim (exit $sim_status)"
cat "$run/sim.txt"

echo "-- redis (read back over TLS)"
px_keys=$(rcli --scan --pattern 'tp:px:*') || true
px_count=$(grep -c . <<<"$px_keys" || true)
echo "  price keys tp:px:*: $px_count"
for i in 0 1 2 3 4; do
    key="tp:px:SYM000$i"
    echo "  $key$(hash_line "$key")"
done
echo "  open orders SCARD tp:{ACC01}:open: $(rcli SCARD 'tp:{ACC01}:open')"
echo "  portfolio HGETALL tp:{ACC01}:pf:"
show_portfolio 'tp:{ACC01}:pf'

echo "-- events on tp:events ($run/events.txt)"
show_events

echo "-- tickplane"
echo "  exit status after SIGTERM: ${tp_status:-unknown}"
grep -E '"(order totals|shutting down|stopped)"|"level":"(error|warn)"' "$run/tickplane.log" |
    tail -n 6 |
    sed 's/^/  /' || true
echo "  log: $run/tickplane.log"

# ---- 9. result (the EXIT trap stops the subscriber and redis-server) ----------------------------

section "result"
failed=0
if [[ $tp_status != 0 ]]; then
    echo "tickplane exited with status ${tp_status:-unknown}"
    failed=1
fi
if ((sim_status != 0)); then
    echo "tp_sim exited with status $sim_status (see its summary above)"
    failed=1
fi
if ((interrupted)); then
    echo "interrupted (Ctrl-C)"
    exit 130
fi
if ((failed)); then
    exit 1
fi
echo "ok: every frame acked, tickplane stopped cleanly"
