#!/usr/bin/python3
"""The redis-py peer of bench/utility_ops.c: the same operation with Debian's python3-redis.

usage: peer_utilities.py --op gcra|bucket|log|window|lock|cache|enqueue|counter|session|ping
                         --seconds S --inflight K --port P
                         --ca FILE [--script FILE]

gcra, bucket, log, window: the very script tp_rate_check() runs for that algorithm
      (utility_ops --print-script ALG, given as FILE), through redis-py's Script (EVALSHA,
      loading on NOSCRIPT), on the same keys and arguments; K checks per pipeline round trip.
lock: redis-py's Lock (SET NX PX with a token, a Lua compare-and-delete release), acquire and
      release in turn on one name: redis-py is synchronous, so K must be 1.
cache: a cache hit as tp_cache_fetch() reads it, PTTL and HMGET pipelined, on keys the run
      stores first; K hits per pipeline round trip.
enqueue: XADD MAXLEN ~ 100000 of a 64-byte job; K per pipeline round trip.
counter: a windowed count the way a redis-py user writes it: HINCRBY of the window's field and
      PEXPIRE, pipelined (tickplane's script also drops fields of old windows); K per round trip.
session: a session read: PTTL and HGETALL of a two-field hash, pipelined (what tp_session_get's
      script returns); K per round trip.
ping: PING; K per round trip.
Prints the line utility_ops prints: "ops N seconds S ops_per_s R errors E"."""
import argparse
import sys
import time

import redis

LIMIT = ["1000000000", "1000", "1000000000", "1"]  # limit, period_ms, burst, cost


def run_rate(r, op, script, seconds, inflight):
    check = r.register_script(script)
    ops = errors = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pipe = r.pipeline(transaction=False)
        for i in range(inflight):
            check(keys=[f"tp:rl:{op}:bench:{(ops + i) % 1000}"], args=LIMIT, client=pipe)
        for reply in pipe.execute():
            if reply[0] == 1:
                ops += 1
            else:
                errors += 1
    return ops, errors, time.monotonic() - start


PAYLOAD = "0123456789abcdef" * 4


def run_cache(r, seconds, inflight):
    keys = [f"tp:cache:{{bench:{i}}}" for i in range(1000)]
    for key in keys:
        r.hset(key, mapping={"v": PAYLOAD, "d": "0"})
        r.pexpire(key, 3600000)
    ops = errors = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pipe = r.pipeline(transaction=False)
        for i in range(inflight):
            key = keys[(ops + i) % 1000]
            pipe.pttl(key)
            pipe.hmget(key, "v", "d", "n")
        replies = pipe.execute()
        for ttl, (value, _, _) in zip(replies[::2], replies[1::2]):
            if ttl > 0 and value == PAYLOAD.encode():
                ops += 1
            else:
                errors += 1
    return ops, errors, time.monotonic() - start


def run_enqueue(r, seconds, inflight):
    ops = errors = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pipe = r.pipeline(transaction=False)
        for _ in range(inflight):
            pipe.xadd("tp:queue:{bench:py}", {"p": PAYLOAD}, maxlen=100000, approximate=True)
        for reply in pipe.execute():
            ops += 1 if reply else 0
            errors += 0 if reply else 1
    return ops, errors, time.monotonic() - start


def run_pipelined(r, seconds, inflight, queue, check):
    """K operations per round trip: queue(pipe, i) adds one, check(replies) counts them."""
    ops = errors = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pipe = r.pipeline(transaction=False)
        for i in range(inflight):
            queue(pipe, ops + i)
        good = check(pipe.execute())
        ops += good
        errors += inflight - good
    return ops, errors, time.monotonic() - start


def run_counter(r, seconds, inflight):
    def queue(pipe, i):
        window = int(time.time() * 1000) // 60000
        key = f"tp:ctr:{{bench:{i % 1000}}}"
        pipe.hincrby(key, str(window), 1)
        pipe.pexpire(key, 120000)
    return run_pipelined(r, seconds, inflight, queue,
                         lambda replies: sum(1 for v in replies[::2] if v > 0))


def run_session(r, seconds, inflight):
    key = "tp:sess:{bench}:py"
    r.hset(key, mapping={"ip": "10.0.0.7", "agent": "bench/1.0"})
    r.pexpire(key, 3600000)

    def queue(pipe, i):
        pipe.pttl(key)
        pipe.hgetall(key)
    return run_pipelined(r, seconds, inflight, queue,
                         lambda replies: sum(1 for h in replies[1::2] if len(h) == 2))


def run_ping(r, seconds, inflight):
    return run_pipelined(r, seconds, inflight, lambda pipe, i: pipe.ping(),
                         lambda replies: sum(1 for v in replies if v is True))


def run_lock(r, seconds):
    lock = r.lock("tp:lock:{bench:py}", timeout=10)
    ops = errors = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if lock.acquire(blocking=False):
            lock.release()
            ops += 1
        else:
            errors += 1
    return ops, errors, time.monotonic() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--op", required=True, choices=(
        "gcra", "bucket", "log", "window", "lock", "cache", "enqueue", "counter", "session", "ping"))
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--inflight", type=int, default=1)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--script")
    a = p.parse_args()
    r = redis.Redis(host="127.0.0.1", port=a.port, ssl=True, ssl_ca_certs=a.ca)
    if a.op == "cache":
        ops, errors, elapsed = run_cache(r, a.seconds, a.inflight)
    elif a.op == "enqueue":
        ops, errors, elapsed = run_enqueue(r, a.seconds, a.inflight)
    elif a.op in ("counter", "session", "ping"):
        run = {"counter": run_counter, "session": run_session, "ping": run_ping}[a.op]
        ops, errors, elapsed = run(r, a.seconds, a.inflight)
    elif a.op != "lock":
        with open(a.script) as f:
            ops, errors, elapsed = run_rate(r, a.op, f.read(), a.seconds, a.inflight)
    else:
        if a.inflight != 1:
            print("lock: redis-py's Lock is synchronous, --inflight must be 1", file=sys.stderr)
            return 2
        ops, errors, elapsed = run_lock(r, a.seconds)
    print(f"ops {ops} seconds {elapsed:.3f} ops_per_s {ops / elapsed:.0f} errors {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
