#!/usr/bin/python3
"""The library's utilities against redis-py doing the same, operations per second over TLS.

usage: bench/utilities.py [--rounds N] [--seconds S] [--inflight K] [--only OP,...] [--out DIR]

Builds bench/utility_ops.c (Release, in $TP_BENCH_BUILD_DIR, default build/bench), generates
certificates, starts a TLS redis-server (no persistence) on a free port, then runs in
alternated rounds, each for S seconds:
  gcra   tp_rate_check() (GCRA) and redis-py running the very same script (EVALSHA), with 1
         and with K operations in flight (redis-py: K per pipeline round trip);
  bucket, log, window   the same for the token bucket and the two sliding windows, K in flight;
  lock   tp_lock acquire + release and redis-py's Lock acquire + release, 1 in flight (redis-py
         is synchronous), and tp_lock with K locks cycling at once;
  cache  tp_cache_fetch() hits (value + TTL) and redis-py's PTTL + HMGET pipelined, 1 and K;
  enqueue  tp_queue_enqueue() and redis-py's XADD MAXLEN ~, 1 and K in flight;
  counter, session, ping  tp_counter_incr(), tp_session_get(), tp_health_ping() and redis-py's
         pipelined equivalents (bench/peer_utilities.py), 1 and K in flight.
--only runs just the rows of those operations.
Prints (and writes to DIR/summary.md) the median ops/s per row with the spread, and the ratio
tickplane / redis-py at the same depth. Needs a quiet machine: run nothing else beside it."""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(build_dir):
    subprocess.run(["cmake", "-S", REPO, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "--target", "utility_ops", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "bench", "utility_ops")


def start_redis(work, certs):
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", "0", "--tls-port",
         str(port), "--tls-cert-file", f"{certs}/server.crt", "--tls-key-file",
         f"{certs}/server.key", "--tls-ca-cert-file", f"{certs}/ca.crt", "--tls-auth-clients",
         "no", "--save", "", "--appendonly", "no", "--dir", work, "--logfile",
         f"{work}/redis.log"], stdin=subprocess.DEVNULL)
    for _ in range(300):
        r = subprocess.run(["redis-cli", "--tls", "--cacert", f"{certs}/ca.crt", "-p", str(port),
                            "PING"], capture_output=True, text=True)
        if r.stdout.strip() == "PONG":
            return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def parse(out):
    f = out.split()
    return float(f[f.index("ops_per_s") + 1]), int(f[f.index("errors") + 1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--only", help="comma-separated operations (default: all)")
    p.add_argument("--out", default=os.path.join(
        REPO, "build", "bench-results", "utilities-" + time.strftime("%Y%m%dT%H%M%SZ",
                                                                     time.gmtime())))
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ops_bin = build(os.environ.get("TP_BENCH_BUILD_DIR", os.path.join(REPO, "build", "bench")))
    work = tempfile.mkdtemp(prefix="tp-utilities-")
    certs = os.path.join(work, "certs")
    subprocess.run([os.path.join(REPO, "tests", "support", "gen_certs.sh"), certs], check=True,
                   stdout=subprocess.DEVNULL)
    scripts = {}
    for alg in ("gcra", "bucket", "log", "window"):
        scripts[alg] = os.path.join(work, f"{alg}.lua")
        with open(scripts[alg], "w") as f:
            f.write(subprocess.run([ops_bin, "--print-script", alg], capture_output=True,
                                   text=True, check=True).stdout)
    redis_proc, port = start_redis(work, certs)
    env = dict(os.environ, REDIS_URL=f"rediss://127.0.0.1:{port}",
               REDIS_TLS_CA_PATH=f"{certs}/ca.crt", REDIS_TLS_SERVER_NAME="localhost")
    peer = [sys.executable, os.path.join(REPO, "bench", "peer_utilities.py"), "--port",
            str(port), "--ca", f"{certs}/ca.crt"]
    k = str(a.inflight)
    rows = [("gcra", "tickplane", "1"), ("gcra", "redis-py", "1")]
    for alg in ("gcra", "bucket", "log", "window"):
        rows += [(alg, "tickplane", k), (alg, "redis-py", k)]
    rows += [("lock", "tickplane", "1"), ("lock", "redis-py", "1"), ("lock", "tickplane", k)]
    for op in ("cache", "enqueue", "counter", "session", "ping"):
        rows += [(op, "tickplane", "1"), (op, "redis-py", "1"), (op, "tickplane", k),
                 (op, "redis-py", k)]
    if a.only:
        rows = [row for row in rows if row[0] in a.only.split(",")]
    results = {row: [] for row in rows}
    try:
        for rnd in range(a.rounds):
            for op, system, depth in rows:
                base = [ops_bin] if system == "tickplane" else peer + (
                    ["--script", scripts[op]] if op in scripts else [])
                cmd = base + ["--op", op, "--seconds", str(a.seconds), "--inflight", depth]
                r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                   timeout=a.seconds * 10 + 30)
                if r.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)}: {r.stdout}{r.stderr}")
                rate, _ = parse(r.stdout)
                results[(op, system, depth)].append(rate)
                print(f"round {rnd + 1}: {op} {system} in flight {depth}: {rate:,.0f} ops/s",
                      flush=True)
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
    lines = [f"Run {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, {a.rounds} alternated "
             f"rounds of {a.seconds:g} s, TLS, one redis-server on loopback "
             f"(`bench/utilities.py --rounds {a.rounds} --seconds {a.seconds:g} "
             f"--inflight {a.inflight}" + (f" --only {a.only}" if a.only else "") + "`).", "",
             "| operation | system | in flight | ops/s (median, min-max) | tickplane / redis-py |",
             "|---|---|--:|--:|--:|"]
    for op, system, depth in rows:
        v = results[(op, system, depth)]
        med = statistics.median(v)
        peer_v = results.get((op, "redis-py", depth))
        ratio = (f"{med / statistics.median(peer_v):.2f}x"
                 if system == "tickplane" and peer_v else "")
        lines.append(f"| {op} | {system} | {depth} | {med:,.0f} ({min(v):,.0f}-{max(v):,.0f}) "
                     f"| {ratio} |")
    summary = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
