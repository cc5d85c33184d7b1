#!/usr/bin/python3
"""Fault tests: the tickplane binary, a real TLS redis-server, adapters and a
subscriber, all real processes and sockets on loopback, with one fault injected
per scenario while order events and ticks stream in. Afterwards the state in
Redis is compared with an offline oracle computed from the exact frames sent.

usage: fault_suite.py SCENARIO --tickplane BIN --certs DIR --work DIR [--seed N]
  SCENARIO: redis_kill | redis_stop | proxy | tls_stall | tickplane_kill | marks_freeze |
            event_consumers | redis_misconf | bars | leader_lease | cluster_reshard | cluster_failover |
            cluster_majority_down

Every scenario then checks:
  * every order hash, open set and portfolio hash equals the reference model of
    tests/support/trading_oracle.py (the order flow includes invalid transitions,
    duplicates and venue rejects, which must change nothing);
  * every price hash holds the last tick sent for its symbol;
  * every event the model expects was received by a subscriber at least once, each
    (stream, seq, kind) under a single event id, copies of an id byte-identical,
    nothing unexpected;
  * with TP_EVENT_STREAM=on (redis_kill, tickplane_kill, cluster_failover): every expected
    event is in its account's stream, Redis kills or not, once after dropping copies of an id;
  * every frame was acked; tickplane never crashed (its only deaths are our
    SIGKILLs, its last run exits 0 on SIGTERM, its log has no sanitizer report);
  * its RSS stayed under a bound (see RSS_BOUND_MB).

Redis runs with appendonly yes / appendfsync no: Redis writes its AOF before it
replies, so whatever it acknowledged survives a SIGKILL of the process (the page
cache keeps it); fsync policy only matters for a host crash, which is not tested.

Exit status: 0 all checks passed, 1 a check failed (each printed), 2 error.
"""
import argparse
import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, HERE)

import redis  # noqa: E402
from redis.cluster import ClusterNode, RedisCluster  # noqa: E402

import metrics_client  # noqa: E402
import trading_oracle as to  # noqa: E402
import trading_scenario as ts  # noqa: E402
from feed_adapter import hang_up, parse_ack, split_frames  # noqa: E402
from tcp_proxy import Proxy  # noqa: E402

CK, log = ts.CK, ts.log
TICK_STREAM, ORDER_STREAM = ts.TICK_STREAM, ts.ORDER_STREAM
MARK_STREAM = 3  # ticks of traded symbols (marks_freeze)
SCALE = to.SCALE
PREFIX = "tp:"
# tickplane runs with REDIS_MAX_QUEUED_BYTES=8MiB on each of 4 connections: its
# Redis buffers can legitimately hold 64 MiB, the rest is the books and ASan.
RSS_BOUND_MB = 400
# How far behind the acks a subscriber may be when Redis is killed: events acked up
# to this many order frames before a SIGKILL (or sent before it and acked after it)
# may be lost to it, at most CRASH_LOSS_MAX per kill (crash_window_losses). Runs
# have lost 0 or 1.
CRASH_LAG = 500
CRASH_LOSS_MAX = 20
CLEANUP = []  # run at exit, whatever happened: no process outlives the test
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ---- processes ------------------------------------------------------------------------------


class Redis:
    """A TLS redis-server on a fixed port and directory, so that a restart after a
    SIGKILL loads what the killed one wrote."""

    def __init__(self, a, extra_args=()):
        self.a = a
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.dir = os.path.join(a.work, "redis")
        os.makedirs(self.dir)
        self.proc = None
        self.starts = 0

    def cert(self, name):
        return os.path.join(self.a.certs, name)

    def start(self):
        self.starts += 1
        args = [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", "0",
                "--tls-port", str(self.port), "--tls-cert-file", self.cert("server.crt"),
                "--tls-key-file", self.cert("server.key"),
                "--tls-ca-cert-file", self.cert("ca.crt"), "--tls-auth-clients", "no",
                "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "no", "--save", "",
                "--logfile", os.path.join(self.dir, f"redis-{self.starts}.log")] + self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        if not wait_for(self.ping, 30, 0.05):
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def client(self, decode=True):
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True,
                           ssl_ca_certs=self.cert("ca.crt"), ssl_cert_reqs="required",
                           decode_responses=decode, socket_timeout=30,
                           socket_connect_timeout=5)

    def subscriber_clients(self):
        return [lambda: self.client(decode=False)]

    def ping(self):
        try:
            return self.client().ping()
        except (redis.RedisError, OSError):
            return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ClusterRedis:
    """A Redis Cluster of TLS-only masters on loopback (TLS bus and replication, client
    certificates for the node links), made by redis-cli --cluster create: the same shape as
    tests/support/redis_cluster.c. port is the first node's; seeds lists them all."""

    def __init__(self, a, masters=3, replicas=0, aof=False):
        self.a = a
        self.replicas = replicas
        self.aof = aof  # appendfsync always: a node killed and restarted keeps what it answered
        self.nodes = []
        for i in range(masters * (1 + replicas)):
            d = os.path.join(a.work, f"redis-{i}")
            os.makedirs(d)
            self.nodes.append(dict(port=free_port(), bus=free_port(), dir=d, proc=None))
        self.port = self.nodes[0]["port"]
        self.seeds = ",".join(f"127.0.0.1:{n['port']}" for n in self.nodes)

    def cert(self, name):
        return os.path.join(self.a.certs, name)

    def cli(self, port, *args, timeout=120):
        return subprocess.run([shutil.which("redis-cli"), "--tls", "--cacert", self.cert("ca.crt"),
                               "-h", "127.0.0.1", "-p", str(port), *args],
                              capture_output=True, text=True, timeout=timeout)

    def start_node(self, n):
        args = [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", "0",
                "--tls-port", str(n["port"]), "--cluster-port", str(n["bus"]),
                "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                "--cluster-config-file", os.path.join(n["dir"], "nodes.conf"),
                "--tls-cluster", "yes", "--tls-replication", "yes",
                "--tls-cert-file", self.cert("server.crt"),
                "--tls-key-file", self.cert("server.key"),
                "--tls-client-cert-file", self.cert("client.crt"),
                "--tls-client-key-file", self.cert("client.key"),
                "--tls-ca-cert-file", self.cert("ca.crt"), "--tls-auth-clients", "no",
                "--dir", n["dir"], "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "always", "--save", "",
                "--logfile", os.path.join(n["dir"], "redis.log")]
        n["proc"] = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        if not wait_for(lambda: self.cli(n["port"], "ping").stdout.strip() == "PONG", 30):
            raise RuntimeError(f"cluster node {n['port']} did not start")

    def start(self):
        for n in self.nodes:
            self.start_node(n)
        r = self.cli(self.port, "--cluster", "create",
                     *[f"127.0.0.1:{n['port']}" for n in self.nodes],
                     "--cluster-replicas", str(self.replicas), "--cluster-yes")
        if "[OK] All 16384 slots covered" not in r.stdout:
            raise RuntimeError(f"redis-cli --cluster create: {r.stdout[-500:]} {r.stderr}")
        if not self.wait_healthy(30):
            raise RuntimeError("the cluster did not reach cluster_state:ok with every replica "
                               "in sync")

    def wait_healthy(self, timeout):
        """Every running node says cluster_state:ok and every master that should have a
        replica has one with its link up."""
        def healthy():
            for n in self.nodes:
                if n["proc"] and n["proc"].poll() is None and \
                        "cluster_state:ok" not in self.cli(n["port"], "cluster", "info").stdout:
                    return False
            for i, n in enumerate(self.nodes):
                info = self.cli(n["port"], "info", "replication").stdout
                if "role:master" in info and any(self.own_ranges(i)) and \
                        self.replicas and "state=online" not in info:
                    return False
            return True
        return wait_for(healthy, timeout, 0.1)

    def own_ranges(self, i):
        """The slot ranges node i serves, from its own CLUSTER NODES line (after its 8th
        field; importing/migrating markers in brackets are skipped)."""
        for line in self.cli(self.nodes[i]["port"], "cluster", "nodes").stdout.splitlines():
            f = line.split()
            if len(f) > 2 and "myself" in f[2]:
                for rng in f[8:]:
                    if not rng.startswith("["):
                        lo, _, hi = rng.partition("-")
                        yield int(lo), int(hi or lo)

    def kill(self, i):
        self.nodes[i]["proc"].send_signal(signal.SIGKILL)
        self.nodes[i]["proc"].wait()

    def node_id(self, i):
        return self.cli(self.nodes[i]["port"], "cluster", "myid").stdout.strip()

    def owner(self, key):
        """The index of the running master that serves key's slot, or -1."""
        slot = int(self.cli(self.port_up(), "cluster", "keyslot", key).stdout)
        for i, n in enumerate(self.nodes):
            if n["proc"].poll() is None and any(lo <= slot <= hi
                                                for lo, hi in self.own_ranges(i)):
                return i
        return -1

    def port_up(self):
        return next(n["port"] for n in self.nodes if n["proc"].poll() is None)

    def reshard(self, src, dst, slots):
        """redis-cli --cluster reshard of `slots` slots from master src to master dst."""
        return self.cli(self.port, "--cluster", "reshard", f"127.0.0.1:{self.port}",
                        "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
                        "--cluster-slots", str(slots), "--cluster-yes", timeout=300)

    def client(self, decode=True):
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n["port"])
                                           for n in self.nodes],
                            ssl=True, ssl_ca_certs=self.cert("ca.crt"), ssl_cert_reqs="required",
                            decode_responses=decode, socket_timeout=30, socket_connect_timeout=5)

    def subscriber_clients(self):
        """A plain client of each node. A node hands what it publishes to its own subscribers
        at once, but to the other nodes only over its cluster bus links, and a node just
        restarted serves commands (2 s after its start) before those links may be up: a
        subscriber on one node alone misses what the other nodes published meanwhile."""
        def client(n):
            return lambda: redis.Redis(host="127.0.0.1", port=n["port"], ssl=True,
                                       ssl_ca_certs=self.cert("ca.crt"),
                                       ssl_cert_reqs="required", socket_timeout=30,
                                       socket_connect_timeout=5)
        return [client(n) for n in self.nodes]

    def stop(self):
        for n in self.nodes:
            p = n["proc"]
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class Tickplane:
    """The service under test; every run logs to its own file. A thread samples
    its RSS every 100 ms."""

    def __init__(self, a, name="tickplane"):
        self.a = a
        self.name = name
        self.runs = 0
        self.proc = None
        self.feed_port = self.metrics_port = 0
        self.rss_max_kb = 0
        self.logs = []
        self.expected_deaths = 0

    def start(self, redis_port, wait_feed=True, **settings):
        """With wait_feed False (a standby of TP_LEADER_LEASE), returns once /metrics listens;
        find_feed_port() then finds the feed when it opens."""
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TP_"))}
        env.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_port), REDIS_TLS_ENABLED="true",
                   REDIS_TLS_CA_PATH=os.path.join(self.a.certs, "ca.crt"),
                   REDIS_TLS_SERVER_NAME="localhost", REDIS_MAX_QUEUED_BYTES="8MiB",
                   REDIS_MAX_RETRIES="0", REDIS_RETRY_MAX_DELAY_MS="500ms",
                   TP_FEED_TCP="127.0.0.1:0", TP_FEED_UDP="off", TP_METRICS_ADDR="127.0.0.1:0",
                   TP_KEY_PREFIX=PREFIX, TP_LATENCY_LOG_INTERVAL="0", TP_LOG_LEVEL="info",
                   TP_SHUTDOWN_TIMEOUT="20s")
        # A small quarantine: RSS then follows tickplane's own memory, not ASan's.
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
                               ).lstrip(":")
        env.update({k: str(v) for k, v in settings.items()})
        path = os.path.join(self.a.work, f"{self.name}-{self.runs}.log")
        self.logs.append(path)
        out = open(path, "wb")
        self.proc = subprocess.Popen([self.a.tickplane], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        self.feed_port = self.metrics_port = 0
        deadline = time.monotonic() + 60
        while not ((self.feed_port or not wait_feed) and self.metrics_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tickplane exited {self.proc.returncode} at start: "
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"tickplane did not listen: {self.log_tail()}")
            for rec in self.log_records():
                if rec.get("msg") == "feed listening" and rec.get("source") == "tcp":
                    self.feed_port = rec["port"]
                elif rec.get("msg") == "metrics listening":
                    self.metrics_port = rec["port"]
            time.sleep(0.05)
        threading.Thread(target=self._sample_rss, args=(self.proc,), daemon=True).start()
        log(f"tickplane run {self.runs}: pid {self.proc.pid}, feed {self.feed_port}, "
            f"metrics {self.metrics_port}")

    def find_feed_port(self):
        for rec in self.log_records():
            if rec.get("msg") == "feed listening" and rec.get("source") == "tcp":
                self.feed_port = rec["port"]
        return self.feed_port

    def _sample_rss(self, proc):
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.rss_max_kb = max(self.rss_max_kb, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.1)

    def log_records(self, path=None):
        with open(path or self.logs[-1], "rb") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def saw_hang_up(self, port):
        """Whether the log says the adapter connected from this local port closed it."""
        return any(r.get("msg") == "feed connection closed"
                   and r.get("peer") == f"127.0.0.1:{port}"
                   and r.get("reason") == "closed by the adapter" for r in self.log_records())

    def log_tail(self, n=15):
        with open(self.logs[-1], "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        CK.expect(self.alive(), f"tickplane died before the planned SIGKILL: exit "
                                f"{self.proc.returncode}: {self.log_tail()}")
        self.expected_deaths += 1
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def term(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "timeout"

    def metrics(self):
        return metrics_client.Scrape(self.metrics_port)

    def readyz(self):
        """/readyz's HTTP status."""
        return metrics_client.get(self.metrics_port, "/readyz")[0]


# ---- adapters and the subscriber ------------------------------------------------------------


class Adapter:
    """One adapter: a TCP connection carrying one stream at a fixed rate. When the
    connection is lost (tickplane killed) it connects again, to whatever port
    port_fn() names, and resends everything after the last FeedAck it received.
    With first, frames[:first] were sent and acked already (by another adapter): it
    goes on from there."""

    BATCH = 2000

    def __init__(self, name, stream, frames, rate, port_fn, first=0):
        self.name, self.stream, self.frames, self.rate = name, stream, frames, rate
        self.port_fn = port_fn
        self.first = first
        self.acked = first
        self.sent_hi = first
        self.resent = 0
        self.connections = 0
        self.local_port = None  # of the latest connection
        self.sock = None
        self.ack_regressions = 0
        self.error = None
        self.done = threading.Event()
        self.cv = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t0 = time.monotonic()
        self.thread.start()

    def _connect(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                s = socket.create_connection(("127.0.0.1", self.port_fn()), timeout=2)
                s.settimeout(120)  # a send blocked by backpressure may wait this long
                return s
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name}: cannot connect to tickplane")

    def _read_acks(self, sock, dead):
        buf = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                bodies, buf = split_frames(buf + chunk)
                for body in bodies:
                    self._ack(body)
        except OSError:
            pass
        dead.set()
        with self.cv:
            self.cv.notify_all()

    def _ack(self, body):
        try:
            sid, seq = parse_ack(body)
        except ValueError as e:
            CK.fail(f"{self.name}: {e}")
            return
        if sid != self.stream:
            CK.fail(f"{self.name}: an ack for stream {sid}, not {self.stream}")
            return
        with self.cv:
            if seq > self.sent_hi:
                CK.fail(f"{self.name}: acked {seq}, beyond the {self.sent_hi} frames sent")
            if seq < self.acked:
                self.ack_regressions += 1
            self.acked = max(self.acked, seq)
            self.cv.notify_all()

    def _run(self):
        n = len(self.frames)
        try:
            while self.acked < n:
                sock = self.sock = self._connect()
                self.connections += 1
                self.local_port = sock.getsockname()[1]
                dead = threading.Event()
                reader = threading.Thread(target=self._read_acks, args=(sock, dead), daemon=True)
                reader.start()
                nxt = self.acked + 1  # resume from the last ack
                self.resent += max(0, self.sent_hi - nxt + 1)
                while not dead.is_set() and self.acked < n:
                    due = min(n, self.first + int((time.monotonic() - self.t0) * self.rate))
                    if nxt <= due:
                        hi = min(due, nxt + self.BATCH - 1)
                        with self.cv:
                            self.sent_hi = max(self.sent_hi, hi)
                        try:
                            sock.sendall(b"".join(self.frames[nxt - 1:hi]))
                        except OSError:
                            break
                        nxt = hi + 1
                    else:
                        with self.cv:
                            self.cv.wait(0.005 if nxt <= n else 0.1)
                hang_up(sock, reader)
        except Exception as e:  # noqa: BLE001 - reported by the scenario
            self.error = e
        self.done.set()

    def cut(self):
        """Ends the connection: the adapter connects again, to port_fn()'s port."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass

    def wait(self, timeout):
        self.done.wait(timeout)
        if self.error:
            raise RuntimeError(f"{self.name}: {self.error}")
        return self.acked


class Subscriber:
    """Subscribers to the events channel, one per client the server names (one Redis: one;
    a cluster: one per node), each reconnecting whenever its connection is lost. ready(gen)
    tells when a subscription newer than gen is confirmed."""

    def __init__(self, srv, channel):
        self.channel = channel
        self.msgs = []
        self.generation = 0
        self.stop = False
        self.cv = threading.Condition()
        clients = srv.subscriber_clients()
        self.subscribed = [0] * len(clients)  # confirmations per client
        self.threads = [threading.Thread(target=self._run, args=(c, i), daemon=True)
                        for i, c in enumerate(clients)]
        for t in self.threads:
            t.start()

    def _run(self, client, i):
        while not self.stop:
            try:
                ps = client().pubsub()
                ps.subscribe(self.channel)
                while not self.stop:
                    m = ps.get_message(timeout=0.2)
                    if not m:
                        continue
                    if m["type"] == b"subscribe" or m["type"] == "subscribe":
                        with self.cv:
                            self.generation += 1
                            self.subscribed[i] += 1
                            self.cv.notify_all()
                    elif m["type"] in (b"message", "message"):
                        with self.cv:
                            self.msgs.append(m["data"])
                ps.close()
            except (redis.RedisError, OSError, ValueError):
                time.sleep(0.02)

    def ready(self, after, timeout=30):
        with self.cv:
            if not self.cv.wait_for(lambda: self.generation > after, timeout):
                raise RuntimeError("the subscriber did not subscribe again")
            return self.generation

    def ready_all(self, timeout=30):
        """Every client has subscribed once."""
        with self.cv:
            if not self.cv.wait_for(lambda: all(self.subscribed), timeout):
                raise RuntimeError("a subscriber did not subscribe")

    def finish(self, want, linger=1.0, timeout=60):
        """Waits until the messages cover every (stream, seq, kind) of want (or the
        timeout; replayed copies do not count twice), lingers for stragglers, stops."""
        deadline = time.monotonic() + timeout
        seen, done = set(), 0
        while time.monotonic() < deadline:
            with self.cv:
                new = self.msgs[done:]
            done += len(new)
            for data in new:
                try:
                    d = ts.decode_fb_event(data)
                    seen.add((d["stream_id"], d["seq"], d["kind"]))
                except Exception:  # noqa: BLE001 - check_events reports it
                    pass
            if want.keys() <= seen:
                break
            time.sleep(0.1)
        time.sleep(linger)
        self.stop = True
        for t in self.threads:
            t.join(10)
        with self.cv:
            return list(self.msgs)


# ---- the workload and its oracle ------------------------------------------------------------


class Workload:
    def __init__(self, seed, n_ticks, n_orders, n_symbols=500):
        rng = random.Random(seed)
        order_syms = ts.SYMBOLS8 + [f"OS{i}" for i in range(12)]
        # These ticks never move a traded symbol: which fills a tick precedes depends on how
        # two connections interleave, and so would the mark a flat position keeps (that of
        # its closing fill) and the upnl each fill event carries. MarkWorkload ticks traded
        # symbols where no fill can meet the ticks.
        syms = [s for s in ts.symbols_for(n_symbols + 8) if s not in order_syms][:n_symbols]
        mid = {s: rng.randint(10, 5000) * SCALE for s in syms}
        self.ticks, self.last = [], {}
        t0 = time.time_ns()
        for i in range(n_ticks):
            s = rng.choice(syms)
            mid[s] = max(SCALE, mid[s] + rng.randint(-50, 50) * 10**6)
            bid = mid[s] - rng.randint(1, 20) * 10**6
            ask = mid[s] + rng.randint(1, 20) * 10**6
            t = dict(symbol=s, bid=bid, ask=ask, bid_sz=rng.randint(1, 10**4) * SCALE,
                     ask_sz=rng.randint(1, 10**4) * SCALE, last=rng.choice((bid, ask, 0)),
                     last_sz=rng.randint(0, 10**3) * SCALE, exch_ts=to.EPOCH_NS + i,
                     sent_ns=t0)
            self.ticks.append(t)
            self.last[s] = (i + 1, t)
        self.accounts = [f"ACC{i}" for i in range(8)]
        self.gen = to.FlowGen(seed, self.accounts, order_syms, max_live=80)
        self.orders = self.flow(n_orders)
        self.expected_events = ts.expected_events(self.gen.outcomes, self.orders,
                                                  range(1, len(self.orders) + 1))
        self.tick_frames = [ts.tick_frame(TICK_STREAM, i + 1, t) for i, t in
                            enumerate(self.ticks)]
        self.order_frames = [ts.order_frame(ORDER_STREAM, i + 1, ev) for i, ev in
                             enumerate(self.orders)]
        kinds = collections.Counter(i.split(":")[0] for i in self.gen.intent)
        log(f"workload: {n_ticks} ticks on {len(self.last)} symbols, {len(self.orders)} order "
            f"events {dict(kinds)}")

    def flow(self, n_orders):
        return self.gen.generate(n_orders)


class MarkWorkload(Workload):
    """The Workload in two phases, and ticks that move traded symbols in the second.

    Phase 1 (order frames [:phase1]): the flow over every traded symbol, ending with a cancel
    of each order still open in MARKED, whose positions stay open. Phase 2: the flow goes on
    in the other traded symbols only, while MARK_TICKS ticks of every kind (stream
    MARK_STREAM) move MARKED, the last tick of each two-sided. Sent after phase 1 is acked,
    no tick meets a fill of its symbol, so the oracle says every mark exactly: each fill's
    (and a flat position's) at its fill price, each open MARKED position's at its symbol's
    last tick, however tickplane conflated the ticks before it."""

    MARKED = ts.SYMBOLS8
    MARK_TICKS = 6000

    def __init__(self, seed, n_ticks, n_orders):
        super().__init__(seed, n_ticks, n_orders)
        rng = random.Random(seed + 1)
        mids = {s: rng.randint(20, 400) * SCALE for s in self.MARKED}
        picks = list(self.MARKED) + [rng.choice(self.MARKED)
                                     for _ in range(self.MARK_TICKS - len(self.MARKED))]
        rng.shuffle(picks)
        final = {s: i for i, s in enumerate(picks)}
        book = self.gen.model.book
        self.mark_ticks = []
        for i, sym in enumerate(picks):
            kind = rng.choice(ts.TWO_SIDED if final[sym] == i else ts.TICK_KINDS)
            t = ts.walk_tick(rng, mids, sym, kind, to.EPOCH_NS + i)
            book.tick(sym, t["bid"], t["ask"], t["last"])
            self.mark_ticks.append(t)
            self.last[sym] = (i + 1, t)
        self.mark_frames = [ts.tick_frame(MARK_STREAM, i + 1, t) for i, t in
                            enumerate(self.mark_ticks)]
        self.open_marked = sorted(k for k, p in book.pos.items()
                                  if k[1] in self.MARKED and p.qty != 0)
        log(f"marks: {len(self.mark_ticks)} ticks on {self.MARKED}, {len(self.open_marked)} "
            f"open positions in them after phase 1 (of {self.phase1} order frames)")

    def flow(self, n_orders):
        gen = self.gen
        gen.generate(n_orders // 2)
        for o in [o for o in gen.live() if o.symbol in self.MARKED]:
            gen.cancel(o)
        self.phase1 = len(gen.events)
        gen.symbols = [s for s in gen.symbols if s not in self.MARKED]
        return gen.generate(self.phase1 + n_orders - n_orders // 2)


def check_prices(st, w):
    bad = 0
    want_keys = {f"{PREFIX}px:{s}" for s in w.last}
    CK.expect(set(st["px"]) == want_keys,
              f"price keys: {len(want_keys - set(st['px']))} missing, "
              f"{len(set(st['px']) - want_keys)} unexpected")
    for sym, (seq, t) in w.last.items():
        got = st["px"].get(f"{PREFIX}px:{sym}", {})
        exp = {"bid": to.fmt(t["bid"]), "ask": to.fmt(t["ask"]), "bid_sz": to.fmt(t["bid_sz"]),
               "ask_sz": to.fmt(t["ask_sz"]), "last": to.fmt(t["last"]),
               "last_sz": to.fmt(t["last_sz"]), "seq": str(seq), "exch_ts": str(t["exch_ts"])}
        d = ts.diff_hash(exp, got)
        if d:
            bad += 1
            if bad <= 5:
                CK.fail(f"{PREFIX}px:{sym}: not the last tick: (field: (want, got)) {d}")
    CK.expect(bad == 0, f"{bad} of {len(w.last)} price hashes are not the last tick")


def crash_window_losses(decoded, exp, crash_windows):
    """Expected events no subscriber received whose transactions a Redis that was then
    SIGKILLed may have run: per kill (acked, sent), the order frames acknowledged within
    CRASH_LAG of the last ack before it, and those sent before it but acked only after
    (units of other accounts go out on other connections: one may have run while the
    ack waited for an earlier frame, whose unit was then replayed on the new Redis).

    Their PUBLISH ran: it is in the same MULTI/EXEC as the order's writes, which the
    state check proves applied. What Redis loses when killed is its output
    buffers, the subscriber's included (Redis pub/sub is at most once across a
    server crash). Anything missing outside such a window is a failure."""
    got = {(d["stream_id"], d["seq"], d["kind"]) for d in decoded}
    lost = []
    for key in exp:
        seq = key[1]
        if key not in got and any(acked - CRASH_LAG < seq <= sent
                                  for acked, sent in crash_windows):
            lost.append(key)
    return lost


def check_events(raw, w, t_lo, t_hi, crash_windows=()):
    """At least once: copies of one event id must be identical; then the distinct
    events must be exactly what the model expects, one id each, but for what a
    Redis SIGKILL took from the subscriber (crash_window_losses)."""
    by_id = {}
    copies = 0
    for data in raw:
        try:
            eid = ts.decode_fb_event(data)["event_id"]
        except Exception as e:  # noqa: BLE001 - any decode problem is a failure
            CK.fail(f"an event does not decode: {e}")
            continue
        if eid in by_id:
            copies += 1
            CK.expect(by_id[eid] == data, f"event id {eid} published with different contents")
        else:
            by_id[eid] = data
    exp = dict(w.expected_events)
    lost = crash_window_losses([ts.decode_fb_event(d) for d in by_id.values()], exp,
                               crash_windows)
    CK.expect(len(lost) <= CRASH_LOSS_MAX * len(crash_windows),
              f"{len(lost)} events lost to {len(crash_windows)} Redis kills, more than "
              f"{CRASH_LOSS_MAX} each")
    for key in lost:
        del exp[key]
    ts.check_events(list(by_id.values()), "flatbuffers", exp, [], t_lo, t_hi, "events")
    log(f"events: {len(raw)} received, {len(by_id)} distinct ids, {copies} copies (replays, other nodes), "
        f"{len(w.expected_events)} expected, {len(lost)} undelivered (run by a Redis then "
        f"SIGKILLed: {sorted(k[1] for k in lost)[:10]})")


def read_event_streams(cl, accounts):
    """Every entry of every account's event stream (TP_EVENT_STREAM), in stream order."""
    out = {}
    for acct in accounts:
        out[acct] = [f for _, f in cl.xrange(f"{PREFIX}{{{acct}}}:events")]
    return out


def check_event_streams(streams, w, t_lo, t_hi):
    """The durable copy: every expected event is in its account's stream, whatever Redis
    SIGKILLs took from the subscriber (no crash window here). Entries with one id (a unit
    sent again after a lost EXEC reply) are identical; after dropping them, each event is
    there once, under one id, and an account's events are in the order of their frames."""
    by_id, copies = {}, 0
    for acct, entries in streams.items():
        last_seq = 0
        for f in entries:
            eid, data = int(f[b"id"]), f[b"event"]
            if eid in by_id:
                copies += 1
                CK.expect(by_id[eid] == data, f"stream {acct}: id {eid} with other contents")
                continue
            by_id[eid] = data
            d = ts.decode_fb_event(data)
            # A reject's snapshot is the order as it stands, which may be another account's
            # (the reason "account mismatch"): the entry goes where the event was routed.
            CK.expect(d["event_id"] == eid and f[b"kind"].decode() == d["kind"]
                      and (d["order"]["account"] == acct or d["kind"] == "reject"),
                      f"stream {acct}: entry {eid} does not match its event {d}")
            CK.expect(d["seq"] > last_seq, f"stream {acct}: seq {d['seq']} after {last_seq}")
            last_seq = d["seq"]
    ts.check_events(list(by_id.values()), "flatbuffers", dict(w.expected_events), [], t_lo,
                    t_hi, "event stream")
    log(f"event streams: {sum(map(len, streams.values()))} entries, {len(by_id)} distinct "
        f"ids, {copies} copies, {len(w.expected_events)} expected")


def check_logs(tp):
    for path in tp.logs:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
        for mark in SANITIZER_MARKS:
            CK.expect(mark not in text, f"{os.path.basename(path)}: '{mark}' in the log")


class Run:
    """One scenario's processes: Redis, tickplane (direct or through a proxy),
    the subscriber and two adapters."""

    def __init__(self, a, n_ticks, n_orders, tick_rate, order_rate, proxy=False,
                 stall_handshake=0, workload=None, cluster=False, replicas=0, aof=False,
                 event_stream=False, redis_args=(), **settings):
        CLEANUP.append(self.close)
        self.a = a
        self.tp = self.proxy = None
        self.w = (workload or Workload)(a.seed, n_ticks, n_orders)
        self.redis = (ClusterRedis(a, replicas=replicas, aof=aof) if cluster
                      else Redis(a, redis_args))
        self.redis.start()
        if cluster:
            settings["REDIS_CLUSTER_NODES"] = self.redis.seeds
        if proxy:
            self.proxy = Proxy(self.redis.port)
            self.proxy.set(stall_handshake=stall_handshake)
        self.event_stream = event_stream
        if event_stream:
            settings["TP_EVENT_STREAM"] = "on"
        self.settings = settings
        # Per Redis SIGKILL: the order feed's acked seq after it, and its sent seq at it.
        self.crash_windows = []
        self.sub = Subscriber(self.redis, PREFIX + "events")
        self.sub.ready_all()
        self.tp = Tickplane(a)
        self.start_tickplane()
        self.t_lo = time.time_ns()
        port = lambda: self.tp.feed_port  # noqa: E731 - follows tickplane restarts
        self.ticks = Adapter("md adapter", TICK_STREAM, self.w.tick_frames, tick_rate, port)
        self.orders = Adapter("gateway", ORDER_STREAM, self.w.order_frames, order_rate, port)

    def start_tickplane(self):
        port = self.proxy.port if self.proxy else self.redis.port
        self.tp.start(port, **self.settings)

    def go(self):
        self.ticks.start()
        self.orders.start()
        self.t_start = time.monotonic()

    def at(self, t):
        """Sleeps until t seconds after go()."""
        time.sleep(max(0.0, self.t_start + t - time.monotonic()))

    def acked(self):
        return self.ticks.acked, self.orders.acked

    def finish(self, timeout=240):
        for ad in (self.ticks, self.orders):
            try:
                got = ad.wait(timeout)
            except RuntimeError as e:
                # An adapter that cannot reach tickplane is most often a tickplane that died.
                if not self.tp.alive():
                    raise RuntimeError(f"{e}; tickplane died: exit {self.tp.proc.returncode} "
                                       "(negative: the signal)") from None
                raise
            CK.expect(got == len(ad.frames), f"{ad.name}: acked {got} of {len(ad.frames)}")
            log(f"{ad.name}: {len(ad.frames)} frames, {ad.connections} connections, "
                f"{ad.resent} resent, {ad.ack_regressions} ack regressions")
        CK.expect(self.tp.alive(), f"tickplane died: exit {self.tp.proc.returncode}: "
                                   f"{self.tp.log_tail()}")
        # An adapter that is done hangs up at once (hang_up), and tickplane sees it.
        for ad in (self.ticks, self.orders):
            CK.expect(wait_for(lambda: self.tp.saw_hang_up(ad.local_port), 10),
                      f"{ad.name}: tickplane did not see its connection from port "
                      f"{ad.local_port} close")
        m = self.metrics = self.tp.metrics()
        log("metrics: " + ", ".join(f"{k.replace('tickplane_', '')}={m.value(k):.0f}" for k in (
            "tickplane_redis_reconnects_total", "tickplane_redis_replays_total",
            "tickplane_redis_timeouts_total", "tickplane_redis_fenced_total",
            "tickplane_redis_errors_total", "tickplane_conflated_prices_total",
            "tickplane_order_feed_pauses_total")))
        CK.expect(m.value("tickplane_redis_fence_failures_total") == 0,
                  "a reconnect could not be fenced")
        raw = self.sub.finish(self.w.expected_events)
        t_hi = time.time_ns()
        status = self.tp.term()
        CK.expect(status == 0, f"tickplane after SIGTERM: exit {status}, want 0: "
                               f"{self.tp.log_tail()}")
        check_logs(self.tp)
        rss_mb = self.tp.rss_max_kb / 1024
        CK.expect(rss_mb <= RSS_BOUND_MB, f"tickplane RSS reached {rss_mb:.0f} MiB, "
                                          f"bound {RSS_BOUND_MB} MiB")
        log(f"tickplane: {self.tp.runs} runs, {self.tp.expected_deaths} killed by the test, "
            f"max RSS {rss_mb:.0f} MiB")
        st = ts.read_state(self.redis.client(), PREFIX)
        ts.compare_model(self.w.gen.model, st, PREFIX, self.w.accounts, "state vs oracle")
        check_prices(st, self.w)
        check_events(raw, self.w, self.t_lo - 10**9, t_hi + 10**9, self.crash_windows)
        if self.event_stream:
            check_event_streams(read_event_streams(self.redis.client(decode=False),
                                                   self.w.accounts),
                                self.w, self.t_lo - 10**9, t_hi + 10**9)
        if self.proxy:
            log(f"proxy: {self.proxy.stats}")

    def close(self):
        if self.tp and self.tp.alive():
            self.tp.proc.kill()
        if self.proxy:
            self.proxy.close()
        self.redis.stop()


# ---- scenarios ------------------------------------------------------------------------------


def expect_fenced(r):
    """Command timeouts happened and the reconnects fenced the old connections:
    the fault reached the code it tests. (In the proxy scenario the old links are
    still open in the proxy, so CLIENT KILL has something to kill; after a freeze
    Redis has usually read and closed them first.)"""
    m = r.metrics
    CK.expect(m.value("tickplane_redis_timeouts_total") > 0, "no command timed out")
    CK.expect(m.value("tickplane_redis_fenced_total") > 0,
              "no reconnect fenced its previous connection (CLIENT KILL)")
    killed = sum(rec.get("killed", 0) for path in r.tp.logs for rec in r.tp.log_records(path)
                 if rec.get("msg") == "redis connection fenced")
    log(f"fences: {m.value('tickplane_redis_fenced_total'):.0f}, connections killed {killed}")
    return killed


def scenario_redis_kill(a):
    """Redis SIGKILLed and restarted four times during 200,000 ticks and 20,000
    order events. tickplane reaches Redis through the proxy, used only as a gate:
    closed while Redis is down, opened once the subscriber is back, so that no
    event replayed after a restart is published before anyone listens."""
    r = Run(a, 200_000, 20_000, tick_rate=10_000, order_rate=1_000, proxy=True,
            event_stream=True)
    r.go()
    for i, (t, down) in enumerate(((3, 0.3), (7, 1.5), (11, 0.1), (15, 3.0))):
        r.at(t)
        r.proxy.set(gate="refuse")
        before = r.acked()
        r.redis.kill()
        sent = r.orders.sent_hi  # the killed Redis can have run only frames sent by now
        r.proxy.cut_all()
        time.sleep(down)
        r.crash_windows.append((r.orders.acked, sent))  # no reply arrives while Redis is down
        gen = r.sub.generation
        r.redis.start()
        r.sub.ready(gen)
        r.proxy.set(gate="open")
        log(f"kill {i + 1}: Redis down {down}s; acked (ticks, orders) {before} before")
    r.finish()


def scenario_redis_stop(a):
    """Redis frozen (SIGSTOP) for 6 s mid-stream, longer than REDIS_COMMAND_TIMEOUT:
    prices conflate, the order queue fills and the order feed pauses, acks stop;
    after SIGCONT everything is written and acked."""
    r = Run(a, 60_000, 8_000, tick_rate=6_000, order_rate=800, REDIS_COMMAND_TIMEOUT="2s",
            REDIS_CONNECTION_TIMEOUT="1s", TP_ORDER_QUEUE_MAX=1000)
    r.go()
    r.at(3)
    m0 = r.tp.metrics()
    r.redis.signal(signal.SIGSTOP)
    frozen_at = r.acked()
    time.sleep(1.0)
    held = r.acked()
    queue_max = 0
    for _ in range(10):
        time.sleep(0.5)
        queue_max = max(queue_max, r.tp.metrics().value("tickplane_order_queue"))
    acked_frozen = r.acked()
    r.redis.signal(signal.SIGCONT)
    m1 = r.tp.metrics()
    CK.expect(acked_frozen == held, f"acks moved while Redis was frozen: {held} -> {acked_frozen}")
    CK.expect(queue_max >= 1000, f"order queue reached {queue_max}, want the cap (1000)")
    for name in ("tickplane_conflated_prices_total", "tickplane_order_feed_pauses_total"):
        CK.expect(m1.value(name) > m0.value(name), f"{name} did not rise during the freeze")
    log(f"freeze: acked {frozen_at} at SIGSTOP, {acked_frozen} at SIGCONT; order queue max "
        f"{queue_max:.0f}")
    r.finish()
    expect_fenced(r)


def scenario_proxy(a):
    """tickplane -> proxy -> Redis: replies delayed (past REDIS_COMMAND_TIMEOUT once),
    connections reset, cut in the middle of a reply, a reply byte corrupted (TLS
    must notice), while the flow goes on."""
    r = Run(a, 60_000, 8_000, tick_rate=5_000, order_rate=700, proxy=True,
            REDIS_COMMAND_TIMEOUT="1s", REDIS_CONNECTION_TIMEOUT="1s")
    r.go()
    # A write to a connection the peer has reset raises SIGPIPE, which ends a process that
    # does not ignore it: the resets below race for one, so send one for certain.
    r.tp.proc.send_signal(signal.SIGPIPE)
    plan = [(1.5, dict(down_delay_s=0.2)), (3.0, dict(down_delay_s=0.0)), (3.5, "cut_all"),
            (4.5, dict(cut_mid_reply=3)), (6.0, dict(corrupt_next=2)),
            (7.5, dict(down_delay_s=1.5)), (8.5, dict(down_delay_s=0.0)), (9.0, "cut_all"),
            (9.2, dict(cut_mid_reply=2)), (10.5, dict(corrupt_next=1)),
            (11.0, dict(up_delay_s=1.5)), (12.0, dict(up_delay_s=0.0))]
    for t, what in plan:
        r.at(t)
        if what == "cut_all":
            log(f"proxy: reset {r.proxy.cut_all()} connections")
        else:
            r.proxy.set(**what)
            log(f"proxy: {what}")
    r.finish()
    s = r.proxy.stats
    CK.expect(s["cut_mid_reply"] == 5 and s["corrupted"] == 3 and s["delayed_up"] > 0,
              f"not every planned fault happened: {s}")
    CK.expect(expect_fenced(r) > 0, "no fence killed a connection the proxy still held open")


def scenario_tls_stall(a):
    """TLS handshakes that never complete (the proxy swallows Redis's replies): at
    start, and for every reconnect after the connections were reset mid-run.
    REDIS_CONNECTION_TIMEOUT must give up on them and the next attempt succeed."""
    t = time.monotonic()
    r = Run(a, 40_000, 5_000, tick_rate=5_000, order_rate=600, proxy=True, stall_handshake=6,
            REDIS_CONNECTION_TIMEOUT="500ms")
    CK.expect(r.proxy.stats["stalled"] >= 6,
              f"{r.proxy.stats['stalled']} handshakes stalled at start, want 6")
    log(f"start through 6 stalled handshakes: {time.monotonic() - t:.1f}s")
    r.go()
    r.at(3)
    r.proxy.set(stall_handshake=8)
    log(f"proxy: reset {r.proxy.cut_all()} connections, the next 8 handshakes stall")
    CK.expect(wait_for(lambda: r.proxy.stats["stalled"] == 14, 30),
              f"{r.proxy.stats['stalled'] - 6} reconnect handshakes stalled, want 8")
    r.finish()


def node_gauges(m, name):
    """{node: value} of one tickplane_redis_* gauge."""
    return {dict(lab)["node"]: v for (n, lab), v in m.samples.items() if n == name}


def check_health_gauges(r):
    """The tickplane_redis_* gauges against what redis-py reads from INFO itself."""
    m = r.tp.metrics()
    node = f"127.0.0.1:{r.proxy.port if r.proxy else r.redis.port}"
    info = r.redis.client().info()
    CK.expect(node_gauges(m, "tickplane_redis_info_up") == {node: 1},
              f"INFO per node: {node_gauges(m, 'tickplane_redis_info_up')}, want {node}")
    CK.expect(node_gauges(m, "tickplane_redis_maxmemory_bytes").get(node) == info["maxmemory"],
              f"maxmemory: {node_gauges(m, 'tickplane_redis_maxmemory_bytes')}, "
              f"INFO {info['maxmemory']}")
    used = node_gauges(m, "tickplane_redis_used_memory_bytes").get(node, 0)
    CK.expect(0.5 * info["used_memory"] < used < 2 * info["used_memory"],
              f"used memory {used}, INFO now {info['used_memory']}")
    clients = node_gauges(m, "tickplane_redis_connected_clients").get(node, 0)
    CK.expect(clients >= 4, f"connected clients {clients}: tickplane alone has 4 connections")
    CK.expect(node_gauges(m, "tickplane_redis_aof_enabled").get(node) == 1, "AOF not reported on")
    log(f"health gauges: used memory {used:.0f} (INFO {info['used_memory']}), clients "
        f"{clients:.0f}, samples {m.value('tickplane_redis_health_samples_total'):.0f}")


def scenario_redis_misconf(a):
    """Redis stops accepting writes because it cannot persist: a BGSAVE fails (its file name
    is a directory, so the rename fails, as root too) with save points set, and Redis answers
    every write with MISCONF. /readyz goes 503 naming the node, the can_persist gauge goes 0,
    no order frame is acked and the order feed pauses; once a BGSAVE succeeds again,
    everything queued is written and the state equals the oracle."""
    # dbfilename is a protected setting: CONFIG SET cannot change it.
    r = Run(a, 30_000, 4_000, tick_rate=3_000, order_rate=400,
            redis_args=["--dbfilename", "misconf.rdb"], TP_REDIS_HEALTH_INTERVAL="300ms")
    cl = r.redis.client()
    cl.config_set("maxmemory", "1gb")
    r.go()
    r.at(3)
    check_health_gauges(r)
    blocker = os.path.join(r.redis.dir, "misconf.rdb")
    os.makedirs(os.path.join(blocker, "keep"))
    cl.config_set("save", "3600 1")
    cl.bgsave()
    CK.expect(wait_for(lambda: cl.info("persistence")["rdb_last_bgsave_status"] == "err", 20),
              "the BGSAVE did not fail")
    code, body = wait_for_readyz(r, 503, 5)
    CK.expect(code == 503 and "cannot persist" in body, f"/readyz {code} {body!r} with MISCONF")
    m = r.tp.metrics()
    CK.expect(set(node_gauges(m, "tickplane_redis_can_persist").values()) == {0},
              f"can_persist {node_gauges(m, 'tickplane_redis_can_persist')}")
    acked = r.orders.acked
    time.sleep(2)
    CK.expect(r.orders.acked - acked <= 0, f"{r.orders.acked - acked} order frames acked while "
                                           "Redis refused writes")
    shutil.rmtree(blocker)
    cl.bgsave()
    CK.expect(wait_for(lambda: cl.info("persistence")["rdb_last_bgsave_status"] == "ok", 20),
              "the BGSAVE did not succeed again")
    code, body = wait_for_readyz(r, 200, 5)
    CK.expect(code == 200, f"/readyz {code} {body!r} after the save succeeded")
    log(f"misconf: {r.orders.acked - acked} order frames acked in the 2 s refused; /readyz "
        "back to 200")
    r.finish()
    CK.expect(r.metrics.value("tickplane_order_feed_pauses_total") > 0,
              "the order feed was not paused while Redis refused writes")
    CK.expect(set(node_gauges(r.metrics, "tickplane_redis_can_persist").values()) == {1},
              "can_persist did not return to 1")


def wait_for_readyz(r, want, timeout):
    """/readyz until it answers want (or the timeout): (status, body)."""
    deadline = time.monotonic() + timeout
    while True:
        code, _, body = metrics_client.get(r.tp.metrics_port, "/readyz")
        if code == want or time.monotonic() > deadline:
            return code, body
        time.sleep(0.05)


# ---- bars -----------------------------------------------------------------------------------

BAR_INTERVALS = {"1m": 60 * 10**9, "5m": 300 * 10**9}


def bar_day(seed, n_ticks, n_symbols=40):
    """A trading day (6.5 h of exchange time) of ticks in time order: about half are trades
    (last and last_sz both set); the others are quotes, some with a last price but no size or
    a size but no price, which are no trades. Every 500th tick is a trade stamped 90 s before
    the one before it: late for its 1m bar."""
    rng = random.Random(seed)
    syms = [f"BAR{i}" for i in range(n_symbols)]
    mid = {s: rng.randint(10, 900) * SCALE for s in syms}
    ts, ticks = to.EPOCH_NS - to.EPOCH_NS % BAR_INTERVALS["5m"], []
    step = 23_400 * 10**9 // n_ticks
    for i in range(n_ticks):
        ts += rng.randint(1, 2 * step)
        s = rng.choice(syms)
        mid[s] = max(SCALE, mid[s] + rng.randint(-40, 40) * 10**6)
        kind = rng.random()
        last, last_sz = (mid[s], rng.randint(1, 10**4) * 10**6) if kind < 0.5 else (
            (mid[s], 0) if kind < 0.6 else (0, rng.randint(1, 99) * SCALE) if kind < 0.7 else (0, 0))
        t = dict(symbol=s, bid=mid[s] - 10**6, ask=mid[s] + 10**6, bid_sz=SCALE, ask_sz=SCALE,
                 last=last, last_sz=last_sz, exch_ts=ts, sent_ns=0)
        if i % 500 == 499:
            t.update(exch_ts=ts - 90 * 10**9, last=mid[s], last_sz=SCALE)
        ticks.append(t)
    return ticks


def bar_oracle(ticks, iv):
    """The bars tp/bars.h promises, computed here: ({sym: [closed bars]}, {sym: latest bar},
    late trades)."""
    closed, latest, open_, late, wm = collections.defaultdict(list), {}, {}, 0, None
    for i, t in enumerate(ticks):
        if t["last"] > 0 and t["last_sz"] > 0:
            s, start = t["symbol"], t["exch_ts"] - t["exch_ts"] % iv
            b = open_.get(s)
            if b and start > b["start_ns"]:
                closed[s].append(open_.pop(s))
                b = None
            if b and start < b["start_ns"] or not b and wm is not None and start + iv <= wm:
                late += 1
            else:
                if not b:
                    b = open_[s] = dict(start_ns=start, open=t["last"], high=t["last"],
                                        low=t["last"], close=0, volume=0, trades=0)
                b.update(high=max(b["high"], t["last"]), low=min(b["low"], t["last"]),
                         close=t["last"], volume=b["volume"] + t["last_sz"],
                         trades=b["trades"] + 1, seq=i + 1)
                latest[s] = b
        if wm is None or t["exch_ts"] > wm:
            wm = t["exch_ts"]
            for s in [s for s, b in open_.items() if b["start_ns"] + iv <= wm]:
                closed[s].append(open_.pop(s))
    return closed, latest, late


def bar_fields(b):
    return {"start_ns": str(b["start_ns"]), "open": to.fmt(b["open"]), "high": to.fmt(b["high"]),
            "low": to.fmt(b["low"]), "close": to.fmt(b["close"]), "volume": to.fmt(b["volume"]),
            "trades": str(b["trades"])}


def scenario_bars(a):
    """A replayed day of ticks (TP_FEED_REPLAY, 2000x exchange time: ~12 s) with TP_BARS=1m,5m,
    and Redis SIGKILLed (AOF) and restarted mid-replay. Every closed bar in its stream, every
    symbol's latest bar in its hash and every published bar equals the oracle's (bar_oracle),
    exactly, nothing twice; the late trades are counted as late."""
    ticks = bar_day(a.seed, 60_000)
    path = os.path.join(a.work, "day.frames")
    with open(path, "wb") as f:
        for i, t in enumerate(ticks):
            f.write(ts.tick_frame(TICK_STREAM, i + 1, t))
    srv = Redis(a)
    CLEANUP.append(srv.stop)
    srv.start()
    sub = srv.client(decode=False).pubsub()
    sub.psubscribe(f"{PREFIX}bars:*")
    got = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                m = sub.get_message(timeout=0.2)
            except (redis.RedisError, OSError, ValueError):
                time.sleep(0.05)  # Redis is down: it comes back, the pattern with it
                try:
                    sub.psubscribe(f"{PREFIX}bars:*")
                except (redis.RedisError, OSError, ValueError):
                    pass
                continue
            if m and m["type"] == "pmessage":
                got.append(json.loads(m["data"]))

    threading.Thread(target=listen, daemon=True).start()
    tp = Tickplane(a)
    CLEANUP.append(lambda: tp.alive() and tp.proc.kill())
    tp.start(srv.port, TP_FEED_REPLAY=path, TP_FEED_REPLAY_SPEED="2000", TP_BARS="1m,5m")
    time.sleep(4)
    srv.kill()
    time.sleep(1)
    srv.start()
    CK.expect(wait_for(lambda: tp.metrics().value("tickplane_ticks_total") == len(ticks), 60),
              "the replay did not finish")
    CK.expect(wait_for(lambda: tp.metrics().value("tickplane_redis_inflight_commands") == 0
                       and tp.metrics().value("tickplane_dirty_symbols") == 0, 30),
              "the writes did not settle")
    time.sleep(0.5)
    m = tp.metrics()
    CK.expect(tp.term() == 0, "tickplane after SIGTERM: not exit 0")
    stop.set()
    check_logs(tp)
    cl = srv.client()
    n_closed = n_late = 0
    for name, iv in BAR_INTERVALS.items():
        closed, latest, late = bar_oracle(ticks, iv)
        n_late += late
        for sym in sorted({t["symbol"] for t in ticks}):
            want = [(f"{b['start_ns'] // 10**6}-1", bar_fields(b)) for b in closed[sym]]
            have = cl.xrange(f"{PREFIX}bars:{name}:{sym}")
            CK.expect(have == want, f"bars:{name}:{sym}: {len(have)} closed bars, want "
                                    f"{len(want)}; first difference: "
                                    f"{next((h, w) for h, w in zip(have + [None] * len(want), want) if h != w) if have != want else None}")
            n_closed += len(want)
            want_latest = dict(bar_fields(latest[sym]), stream=str(TICK_STREAM),
                               seq=str(latest[sym]["seq"])) if sym in latest else {}
            CK.expect(cl.hgetall(f"{PREFIX}bar:{name}:{sym}") == want_latest,
                      f"bar:{name}:{sym} is not the latest bar {want_latest}")
        seen = collections.Counter()
        for p in got:
            if p["interval"] == name:
                key = (p["symbol"], p["start_ns"])
                seen[key] += 1
        oracle_keys = {(s, b["start_ns"]) for s, bars in closed.items() for b in bars}
        CK.expect(set(seen) <= oracle_keys, f"{name}: published bars the oracle does not have")
        CK.expect(all(v == 1 for v in seen.values()), f"{name}: a bar published twice")
        log(f"bars {name}: {sum(map(len, closed.values()))} closed, {len(seen)} published, "
            f"{late} late trades")
    CK.expect(m.value("tickplane_bars_closed_total") == n_closed,
              f"tickplane_bars_closed_total {m.value('tickplane_bars_closed_total')}, want "
              f"{n_closed}")
    CK.expect(m.value("tickplane_bar_late_trades_total") == n_late,
              f"late trades {m.value('tickplane_bar_late_trades_total')}, want {n_late}")
    CK.expect(m.value("tickplane_redis_reconnects_total") > 0, "the Redis kill reached nothing")


# ---- leader lease ----------------------------------------------------------------------------

LEASE = dict(TP_LEADER_LEASE="tp", TP_LEADER_LEASE_TTL="1s")
# What the data path writes with. The lease's own scripts (EVALSHA on the lock's connection of
# each replica: renewals that change nothing once the lock is another's) are not data.
WRITES = {"MULTI", "EXEC", "HSET", "HDEL", "SADD", "SREM", "XADD", "PUBLISH", "DEL", "SET",
          "INCR"}


class Monitor:
    """MONITOR on Redis in a thread: every command it ran, as (time, client addr, name)."""

    def __init__(self, srv):
        self.cmds, self.stop = [], False
        self.conn = srv.client()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()
        self.thread.start()
        self.ready.wait(10)

    def _run(self):
        with self.conn.monitor() as m:
            self.ready.set()
            for c in m.listen():
                if self.stop:
                    return
                self.cmds.append((c["time"], f"{c['client_address']}:{c['client_port']}",
                                  c["command"].split(" ", 1)[0].upper()))


def lease_clients(cl):
    """Addresses of the connections named for the lease tp (of database 0, prefix tp:)."""
    return {c["addr"] for c in cl.client_list()
            if c.get("name", "").startswith("tp-lease:0:tp:lock:{tp}:")}


def scenario_leader_lease(a):
    """Two replicas with TP_LEADER_LEASE (TTL 1 s): A leads, B waits as a standby (/readyz
    503). A is SIGSTOPped mid-stream with order frames in its socket buffers and writes
    queued; B takes the lease, ends A's connections and starts; the adapters move to B. A is
    resumed 2 s after B's first write. Redis's MONITOR then shows no write from anyone but B
    after B's first one, A exits 3 (lease lost), and the state equals the oracle."""
    w = Workload(a.seed, 30_000, 6_000)
    srv = Redis(a)
    CLEANUP.append(srv.stop)
    srv.start()
    cl = srv.client()
    sub = Subscriber(srv, PREFIX + "events")
    sub.ready_all()
    t_lo = time.time_ns()
    tp_a, tp_b = Tickplane(a, "replica-a"), Tickplane(a, "replica-b")
    for t in (tp_a, tp_b):
        CLEANUP.append(lambda t=t: t.alive() and (os.kill(t.proc.pid, signal.SIGCONT),
                                                 t.proc.kill()))
    tp_a.start(srv.port, **LEASE)
    tp_b.start(srv.port, wait_feed=False, **LEASE)
    code, _, body = metrics_client.get(tp_b.metrics_port, "/readyz")
    CK.expect(code == 503 and "standby" in body, f"the standby's /readyz: {code} {body!r}")
    CK.expect(tp_b.metrics().value("tickplane_leader") == 0, "the standby says it leads")
    leader = [tp_a]
    port = lambda: leader[0].feed_port  # noqa: E731 - follows the election
    ticks = Adapter("md adapter", TICK_STREAM, w.tick_frames, 3_000, port)
    orders = Adapter("gateway", ORDER_STREAM, w.order_frames, 600, port)
    mon = Monitor(srv)
    ticks.start()
    orders.start()
    time.sleep(3)
    fence_a = tp_a.metrics().value("tickplane_leader_fence")
    os.kill(tp_a.proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    CK.expect(wait_for(lambda: tp_b.find_feed_port() and tp_b.readyz() == 200, 15),
              "the standby did not take over")
    log(f"lease: A (fence {fence_a:.0f}) stopped; B ready after "
        f"{time.monotonic() - stopped:.2f} s")
    # A is stopped and its connections ended: every connection named for the lease is B's.
    b_addrs = lease_clients(cl)
    CK.expect(len(b_addrs) == 4, f"B's connections: {b_addrs}")
    leader[0] = tp_b
    time.sleep(0.5)  # frames keep going to the stopped A meanwhile
    ticks.cut()
    orders.cut()
    CK.expect(wait_for(lambda: any(c[1] in b_addrs and c[2] in WRITES for c in mon.cmds), 10),
              "B wrote nothing")
    time.sleep(2)
    os.kill(tp_a.proc.pid, signal.SIGCONT)
    status = tp_a.proc.wait(30)
    CK.expect(status == 3, f"the deposed leader exited {status}, want 3 (lease lost)")
    for ad in (ticks, orders):
        CK.expect(ad.wait(240) == len(ad.frames), f"{ad.name}: acked {ad.acked} of "
                                                  f"{len(ad.frames)}")
    mon.stop = True
    cmds = list(mon.cmds)
    first_b = next(i for i, c in enumerate(cmds) if c[1] in b_addrs and c[2] in WRITES)
    late = [c for c in cmds[first_b:] if c[2] in WRITES and c[1] not in b_addrs]
    CK.expect(not late, f"{len(late)} writes after B's first one came from another "
                        f"connection, e.g. {late[:3]}")
    m = tp_b.metrics()
    log(f"lease: {len(cmds)} commands monitored, {len(cmds) - first_b} after B's first write, "
        f"all B's; B ended {m.value('tickplane_leader_fenced_connections_total'):.0f} of A's "
        "connections")
    CK.expect(m.value("tickplane_leader_fenced_connections_total") > 0,
              "B ended none of A's connections")
    raw = sub.finish(w.expected_events)
    t_hi = time.time_ns()
    CK.expect(tp_b.term() == 0, "B after SIGTERM: not exit 0")
    check_logs(tp_a)
    check_logs(tp_b)
    st = ts.read_state(srv.client(), PREFIX)
    ts.compare_model(w.gen.model, st, PREFIX, w.accounts, "state vs oracle")
    check_prices(st, w)
    check_events(raw, w, t_lo - 10**9, t_hi + 10**9)


def scenario_tickplane_kill(a):
    """tickplane SIGKILLed twice mid-run and started again on the same Redis; the
    adapters reconnect and resend everything after their last ack."""
    r = Run(a, 60_000, 8_000, tick_rate=5_000, order_rate=700, event_stream=True)
    r.go()
    for t in (3, 7.5):
        r.at(t)
        before = r.acked()
        r.tp.kill()
        r.start_tickplane()
        log(f"tickplane killed at {t}s with acked (ticks, orders) {before}; restarted")
    r.finish()
    # At least one per tickplane; more when a reconnect lands in the backlog of a
    # listener whose process is still being torn down.
    CK.expect(r.ticks.connections >= 3 and r.orders.connections >= 3,
              f"adapter connections {r.ticks.connections}, {r.orders.connections}, want >= 3")
    CK.expect(r.ticks.resent + r.orders.resent > 0, "no frame was resent: the kills hit nothing")


def settled(r):
    """Every portfolio hash equals the oracle's and tickplane is idle."""
    cl = r.redis.client()
    want = r.w.gen.model.pf_hashes(PREFIX, r.w.accounts)
    if any(ts.diff_hash(e, cl.hgetall(k)) for k, e in want.items()):
        return False
    m = r.tp.metrics()
    return (m.value("tickplane_redis_inflight_commands") == 0
            and m.value("tickplane_order_queue") == 0)


def scenario_marks_freeze(a):
    """Marks to market through a Redis freeze (MarkWorkload): once phase 1 is acked, ticks
    move the traded symbols that have open positions while the flow goes on in others, and
    Redis is frozen (SIGSTOP) for 5 s, longer than REDIS_COMMAND_TIMEOUT; the last of those
    ticks arrive while it is. After SIGCONT, once tickplane is idle, every SYM:mark, SYM:upnl
    and total equals the oracle at the newest quotes, while tickplane runs and after its
    SIGTERM."""
    r = Run(a, 40_000, 6_000, tick_rate=4_000, order_rate=1_000, workload=MarkWorkload,
            REDIS_COMMAND_TIMEOUT="2s", REDIS_CONNECTION_TIMEOUT="1s")
    w = r.w
    CK.expect(w.open_marked, "the workload leaves no open position in a ticked symbol")
    port = lambda: r.tp.feed_port  # noqa: E731
    r.orders = Adapter("gateway (phase 1)", ORDER_STREAM, w.order_frames[:w.phase1], 1_000, port)
    r.go()
    got = r.orders.wait(120)
    CK.expect(got == w.phase1, f"phase 1: acked {got} of {w.phase1} order frames")
    marks = Adapter("md adapter (traded)", MARK_STREAM, w.mark_frames, 1_500, port)
    r.orders = Adapter("gateway (phase 2)", ORDER_STREAM, w.order_frames, 700, port,
                       first=w.phase1)
    marks.start()
    r.orders.start()
    time.sleep(1.0)
    r.redis.signal(signal.SIGSTOP)
    time.sleep(0.5)  # replies Redis sent before it stopped may still come in
    held, m0 = marks.acked, r.tp.metrics()
    time.sleep(4.5)
    frozen = marks.acked, marks.sent_hi
    r.redis.signal(signal.SIGCONT)
    m1 = r.tp.metrics()
    CK.expect(frozen == (held, len(w.mark_frames)),
              f"during the freeze: traded ticks acked {held} -> {frozen[0]} (want no change), "
              f"{frozen[1]} of {len(w.mark_frames)} sent (want all)")
    conflated = [m.value("tickplane_marks_conflated_total") for m in (m0, m1)]
    CK.expect(conflated[1] > conflated[0], f"no mark was conflated while Redis was frozen: "
                                           f"{conflated}")
    log(f"freeze: traded ticks acked {held}, all {len(w.mark_frames)} sent before SIGCONT")
    got = marks.wait(120)
    CK.expect(got == len(w.mark_frames), f"{marks.name}: acked {got} of {len(w.mark_frames)}")
    for ad in (r.ticks, r.orders):
        ad.wait(120)
    t = time.monotonic()
    ok = wait_for(lambda: settled(r), 60, 0.1)
    m2 = r.tp.metrics()
    log(f"marks: settled {ok} {time.monotonic() - t:.1f}s after the last ack; " + ", ".join(
        f"{k}={m2.value('tickplane_' + k):.0f}" for k in (
            "positions_remarked_total", "marks_conflated_total", "marks_written_total",
            "mark_write_errors_total")))
    written = [m.value("tickplane_marks_written_total") for m in (m1, m2)]
    CK.expect(written[1] > written[0], f"no mark was written after the thaw: {written}")
    st = ts.read_state(r.redis.client(), PREFIX)
    ts.compare_model(w.gen.model, st, PREFIX, w.accounts, "marks after the thaw (running)")
    r.finish()
    expect_fenced(r)


def scenario_cluster_reshard(a):
    """tickplane on a 3-master TLS Redis Cluster while redis-cli --cluster reshard moves every
    slot of the master that holds ACC0 to another one, and later half of those on to the
    third, mid-stream: MOVED and ASK reach tickplane, and orders, portfolios, prices and
    events still equal the oracle (nothing lost, no account's writes reordered)."""
    r = Run(a, 90_000, 12_000, tick_rate=3_000, order_rate=400, cluster=True)
    src = r.redis.owner(f"{PREFIX}{{ACC0}}:pf")
    dst, third = (src + 1) % 3, (src + 2) % 3
    r.go()
    r.at(2)
    out = r.redis.reshard(src, dst, 5461)
    CK.expect(out.returncode == 0, f"reshard {src} -> {dst}: {out.stdout[-300:]} {out.stderr}")
    log(f"reshard: every slot of master {src} moved to {dst}, acked {r.acked()}")
    out = r.redis.reshard(dst, third, 2000)
    CK.expect(out.returncode == 0, f"reshard {dst} -> {third}: {out.stdout[-300:]} {out.stderr}")
    log(f"reshard: 2000 slots of master {dst} moved to {third}, acked {r.acked()}")
    r.finish()
    m = r.metrics
    moved, asked = m.value("tickplane_redis_moved_total"), m.value("tickplane_redis_ask_total")
    log(f"cluster: moved {moved:.0f}, ask {asked:.0f}, "
        f"retries {m.value('tickplane_redis_cluster_retries_total'):.0f}, "
        f"maps {m.value('tickplane_redis_slot_map_refreshes_total'):.0f}")
    CK.expect(moved > 0, "no MOVED reached tickplane: the reshard missed the active slots")
    CK.expect(m.value("tickplane_redis_redirect_failures_total") == 0,
              "commands failed after redirections")


def scenario_cluster_failover(a):
    """A 3+3 TLS Redis Cluster; the master that holds ACC0 is SIGKILLed while orders flow
    with TP_ACK_REPLICAS=1, its replica is promoted, and the old master comes back as a
    replica. Every acked order survives (state equals the oracle) and the feeds resume."""
    r = Run(a, 60_000, 12_000, tick_rate=2_000, order_rate=400, cluster=True, replicas=1,
            event_stream=True, TP_ACK_REPLICAS="1", TP_ACK_TIMEOUT="500ms",
            TP_REDIS_HEALTH_INTERVAL="500ms")
    key = f"{PREFIX}{{ACC0}}:pf"
    src = r.redis.owner(key)
    r.go()
    r.at(5)
    m = r.tp.metrics()
    lags = [dict(lab) for (n, lab), _ in m.samples.items()
            if n == "tickplane_redis_replica_lag_seconds"]
    CK.expect(sorted(node_gauges(m, "tickplane_redis_connected_replicas").values()) == [1] * 3,
              f"replicas per master: {node_gauges(m, 'tickplane_redis_connected_replicas')}")
    CK.expect(len({(d["node"], d["replica"]) for d in lags}) == 3, f"replica lags: {lags}")
    before = r.acked()
    r.redis.kill(src)
    # PUBLISHes the killed master had not relayed yet
    r.crash_windows.append((r.orders.acked, r.orders.sent_hi))
    CK.expect(wait_for(lambda: r.redis.owner(key) not in (-1, src), 30, 0.2),
              "no replica was promoted")
    log(f"failover: master {src} killed with acked (ticks, orders) {before}, "
        f"replica {r.redis.owner(key)} promoted, acked {r.acked()}")
    r.redis.start_node(r.redis.nodes[src])
    CK.expect(r.redis.wait_healthy(60), "the old master did not rejoin as a replica")
    log(f"failover: node {src} back as a replica, acked {r.acked()}")
    r.finish()
    m = r.metrics
    log(f"cluster: moved {m.value('tickplane_redis_moved_total'):.0f}, "
        f"retries {m.value('tickplane_redis_cluster_retries_total'):.0f}, "
        f"maps {m.value('tickplane_redis_slot_map_refreshes_total'):.0f}, "
        f"waits {m.value('tickplane_redis_waits_total'):.0f} "
        f"({m.value('tickplane_redis_waits_short_total'):.0f} short)")
    CK.expect(m.value("tickplane_redis_waits_total") > 0, "no order unit carried a WAIT")
    CK.expect(m.value("tickplane_redis_redirect_failures_total") == 0,
              "commands failed after redirections")


class EventConsumer:
    """One of the example consumers (orders/examples/event_consumer.{c,py}) as a process of its
    own, under a fixed consumer name, so that a restart after a SIGKILL resumes its entries."""

    def __init__(self, a, argv, group, redis_port, accounts):
        self.a, self.argv, self.group, self.accounts = a, argv, group, accounts
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TP_"))}
        self.env.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_port),
                        REDIS_TLS_ENABLED="true", REDIS_TLS_SERVER_NAME="localhost",
                        REDIS_TLS_CA_PATH=os.path.join(a.certs, "ca.crt"), TP_KEY_PREFIX=PREFIX,
                        TP_LOG_LEVEL="warn")
        self.proc, self.runs, self.kills = None, 0, 0

    def start(self, idle_exit_ms=0):
        self.runs += 1
        self.out = os.path.join(self.a.work, f"consumer-{self.group}-{self.runs}.log")
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(self.argv + [self.group, "c1", str(idle_exit_ms)]
                                         + self.accounts, env=self.env, stdout=f,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self):
        CK.expect(self.proc.poll() is None, f"{self.group} consumer died: exit "
                                            f"{self.proc.returncode}: {self.tail()}")
        self.proc.kill()
        self.proc.wait()
        self.kills += 1

    def tail(self):
        with open(self.out, "rb") as f:
            return f.read()[-800:].decode(errors="replace")

    def stop(self):
        """SIGTERM: its exit status and output."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30), self.tail()

    def drain(self, timeout=120):
        """A last run that exits once nothing new came for 2 s: its exit status and output."""
        self.start(idle_exit_ms=2000)
        return self.proc.wait(timeout), self.tail()


def ledger_line(d):
    """What the example consumers record of an event, computed here from the stream entry."""
    o = d.get("order") or {}
    return f"{d['kind']} {d['stream_id']} {d['seq']} {o.get('order_id', '')} {o.get('status', 0)}"


def scenario_event_consumers(a):
    """The C and the Python example consumers follow the durable event streams in two groups
    while orders flow. They start 2 s late, with a backlog, and are SIGKILLed three times while
    catching up (once XPENDING shows they hold entries), each time staying down for 1 s while a
    new backlog builds, then started again under their names. Before their last run every
    stream gets a
    copy of its first entry (what a unit sent again after a lost EXEC reply appends). After it,
    each group's ledger holds every distinct event id of every stream once, with the record the
    test derives from the entry itself, and no entry is left pending: nothing skipped, nothing
    applied twice."""
    r = Run(a, 20_000, 8_000, tick_rate=2_000, order_rate=800, event_stream=True)
    accounts = r.w.accounts
    consumers = [EventConsumer(a, [a.event_consumer], "risk", r.redis.port, accounts),
                 EventConsumer(a, [sys.executable, a.event_consumer_py], "ledger", r.redis.port,
                               accounts)]
    cl = r.redis.client(decode=False)

    def pending(group):
        n = 0
        for acct in accounts:
            try:
                n += cl.xpending(f"{PREFIX}{{{acct}}}:events", group)["pending"]
            except redis.ResponseError:  # NOGROUP: the consumer has not created it yet
                pass
        return n

    rng = random.Random(a.seed)
    hit = collections.Counter()  # entries pending at the kills, per group
    r.go()
    r.at(2)
    for c in consumers:
        c.start()
    for _ in range(3):
        for c in consumers:
            # Once it has entries in hand (it is catching up), a moment later.
            wait_for(lambda: pending(c.group) > 0, 3, 0.001)
            time.sleep(rng.uniform(0, 0.01))
            c.kill()
            hit[c.group] += pending(c.group)
        time.sleep(1.0)
        for c in consumers:
            c.start()
    r.finish()
    for c in consumers:
        status, out = c.stop()
        CK.expect(status == 0, f"{c.group} consumer after SIGTERM: exit {status}: {out}")
    for acct in accounts:
        _, first = cl.xrange(f"{PREFIX}{{{acct}}}:events", count=1)[0]
        cl.xadd(f"{PREFIX}{{{acct}}}:events", first)
    streams = read_event_streams(cl, accounts)
    for c in consumers:
        status, out = c.drain()
        CK.expect(status == 0, f"{c.group} consumer: exit {status}: {out}")
        CK.expect(f"duplicates={len(accounts)}" in out,
                  f"{c.group} consumer: want duplicates={len(accounts)} (the copies): {out}")
        CK.expect(hit[c.group] > 0, f"{c.group}: no kill found an entry pending")
        recorded = 0
        for acct, entries in streams.items():
            want = {}
            for f in entries:
                want.setdefault(f[b"id"].decode(), ledger_line(ts.decode_fb_event(f[b"event"])))
            got = {k.decode(): v.decode()
                   for k, v in cl.hgetall(f"{PREFIX}{c.group}:{{{acct}}}:ledger").items()}
            recorded += len(got)
            CK.expect(got == want, f"{c.group} ledger of {acct}: {len(set(want) - set(got))} "
                                   f"missing, {len(set(got) - set(want))} unexpected, "
                                   f"{sum(got[k] != want[k] for k in set(got) & set(want))} "
                                   "differ")
        CK.expect(pending(c.group) == 0, f"{c.group}: {pending(c.group)} entries left pending")
        log(f"{c.group} consumer: {c.runs} runs, {c.kills} SIGKILLed with {hit[c.group]} "
            f"entries pending in all, {recorded} events recorded; last run: {out.strip()}")


def scenario_cluster_majority_down(a):
    """3 TLS masters with AOF (appendfsync always); 2 of them SIGKILLed mid-stream, restarted
    5 s later. The survivor, in a minority, answers CLUSTERDOWN; /readyz is 503, order acks
    stop (nothing acked that Redis does not have) and the order feed pauses at
    TP_ORDER_QUEUE_MAX; after the restart everything is written and state equals the oracle."""
    r = Run(a, 40_000, 8_000, tick_rate=2_000, order_rate=400, cluster=True, aof=True,
            TP_ORDER_QUEUE_MAX="1000")
    r.go()
    r.at(4)
    for i in (0, 1):
        r.redis.kill(i)
    # PUBLISHes the killed masters had not relayed yet
    r.crash_windows.append((r.orders.acked, r.orders.sent_hi))
    log(f"majority down: masters 0 and 1 killed, acked (ticks, orders) {r.acked()}")
    time.sleep(1)
    CK.expect(r.tp.readyz() == 503, "/readyz not 503 with two masters down")
    paused = r.orders.acked
    time.sleep(3)
    CK.expect(r.orders.acked == paused,
              f"order events acked while the cluster was down: {paused} -> {r.orders.acked}")
    CK.expect(r.tp.readyz() == 503, "/readyz not 503 with the cluster still down")
    for i in (0, 1):
        r.redis.start_node(r.redis.nodes[i])
    CK.expect(r.redis.wait_healthy(60), "the cluster did not recover")
    CK.expect(wait_for(lambda: r.tp.readyz() == 200, 30, 0.2), "/readyz not 200 after recovery")
    log(f"majority down: back after {paused} order events acked, acked {r.acked()}")
    r.finish()
    m = r.metrics
    log(f"cluster: retries {m.value('tickplane_redis_cluster_retries_total'):.0f}, "
        f"maps {m.value('tickplane_redis_slot_map_refreshes_total'):.0f}, "
        f"pauses {m.value('tickplane_order_feed_pauses_total'):.0f}")
    CK.expect(m.value("tickplane_order_feed_pauses_total") > 0,
              "the order feed was not paused while the cluster was down")
    CK.expect(m.value("tickplane_redis_redirect_failures_total") == 0,
              "commands failed after redirections")


SCENARIOS = dict(redis_kill=scenario_redis_kill, redis_stop=scenario_redis_stop,
                 proxy=scenario_proxy, tls_stall=scenario_tls_stall,
                 tickplane_kill=scenario_tickplane_kill, marks_freeze=scenario_marks_freeze,
                 event_consumers=scenario_event_consumers,
                 redis_misconf=scenario_redis_misconf, bars=scenario_bars,
                 leader_lease=scenario_leader_lease, cluster_reshard=scenario_cluster_reshard,
                 cluster_failover=scenario_cluster_failover,
                 cluster_majority_down=scenario_cluster_majority_down)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--tickplane", required=True)
    p.add_argument("--certs", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--event-consumer", help="orders/examples/event_consumer (C), built")
    p.add_argument("--event-consumer-py", help="orders/examples/event_consumer.py")
    a = p.parse_args()
    a.tickplane, a.certs = os.path.abspath(a.tickplane), os.path.abspath(a.certs)
    a.work = os.path.join(os.path.abspath(a.work), a.scenario)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    try:
        SCENARIOS[a.scenario](a)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"ERROR: {a.scenario}: {e} (logs in {a.work})", file=sys.stderr, flush=True)
        return 2
    finally:
        for f in reversed(CLEANUP):
            f()
    if CK.failures:
        print(f"{a.scenario}: {CK.failures} check(s) failed (logs in {a.work})",
              file=sys.stderr, flush=True)
        return 1
    log(f"{a.scenario}: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
