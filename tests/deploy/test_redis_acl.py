#!/usr/bin/python3
"""The production Redis configuration of deploy/redis, proven with the real service.

usage: test_redis_acl.py --tickplane BIN --sim BIN --certs DIR --deploy DIR

1. Renders deploy/redis/users.acl.in with deploy/redis/render_acl.sh (a random password), adds a
   test-only admin user, and starts redis-server with deploy/redis/redis.conf unchanged but for
   paths and the port (TLS only, client certificates required, ACL, AOF everysec, noeviction).
2. Sufficient: tickplane, as the ACL user `tickplane` over mutual TLS with every write path on
   (prices, market-data publish and history, orders, events), takes two tp_sim runs and a restart
   in between (the restore path); in the second, Redis is frozen (SIGSTOP) past
   REDIS_COMMAND_TIMEOUT, so tickplane reconnects and fences its previous connections (CLIENT
   KILL). Every frame is acknowledged, both runs exit 0, the ACL log has no denial and no
   command was rejected.
3. Least: the set of commands Redis counted (INFO commandstats, reset before the runs, only
   tickplane connected) equals the set the ACL grants, so nothing granted is unused; writes,
   reads, publishes and admin commands outside tp:* are refused with NOPERM; the default user
   is off; a client without a certificate is refused; tickplane itself, given another key
   prefix, is refused and stops, naming the NOPERM.
4. The development overlay (redis.conf + redis-dev.conf) starts and accepts a client that has
   only the CA.

Exit status 0 when every check passed, 1 otherwise; each check prints "ok:" or "FAIL:".
"""
import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis

failures = 0


def check(what, cond, detail=""):
    global failures
    print(f"{'ok' if cond else 'FAIL'}: {what}{'' if cond else ' -- ' + str(detail)}", flush=True)
    failures += 0 if cond else 1
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server with deploy/redis/redis.conf (+ overlays), paths and port overridden."""

    def __init__(self, a, work, acl, overlays=()):
        self.a, self.port, self.dir = a, free_port(), os.path.join(work, "data")
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(work, "redis.log")
        args = [shutil.which("redis-server"), os.path.join(a.deploy, "redis", "redis.conf")]
        for o in overlays:
            args += ["--include", os.path.join(a.deploy, "redis", o)]
        args += ["--bind", "127.0.0.1", "--tls-port", str(self.port),
                 "--tls-cert-file", cert(a, "server.crt"), "--tls-key-file", cert(a, "server.key"),
                 "--tls-ca-cert-file", cert(a, "ca.crt"), "--aclfile", acl, "--dir", self.dir,
                 "--logfile", self.log]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def client(self, user=None, password=None, client_cert=True, **kw):
        extra = dict(ssl_certfile=cert(self.a, "client.crt"),
                     ssl_keyfile=cert(self.a, "client.key")) if client_cert else {}
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True,
                           ssl_ca_certs=cert(self.a, "ca.crt"), ssl_cert_reqs="required",
                           username=user, password=password, decode_responses=True,
                           socket_timeout=10, **extra, **kw)

    def wait_ready(self, admin):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                return admin.ping()
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        if os.path.exists(self.log):
            print(open(self.log).read()[-3000:], file=sys.stderr)
        raise SystemExit("redis-server with deploy/redis/redis.conf did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def cert(a, name):
    return os.path.join(a.certs, name)


def render_acl(a, work, password, admin_password, **render_env):
    acl = os.path.join(work, "users.acl")
    env = dict(os.environ, TICKPLANE_REDIS_PASSWORD=password, **render_env)
    subprocess.run([os.path.join(a.deploy, "redis", "render_acl.sh"),
                    os.path.join(a.deploy, "redis", "users.acl.in"), acl], env=env, check=True)
    rendered = open(acl).read()
    check("the rendered ACL file holds the password's hash, not the password",
          password not in rendered and re.search(r"^user tickplane on #[0-9a-f]{64} ", rendered,
                                                 re.M), rendered)
    check("the rendered ACL file is mode 0600", os.stat(acl).st_mode & 0o777 == 0o600)
    with open(acl, "a") as f:  # the test's own operator; production adds its own users
        f.write(f"user tp-test-admin on >{admin_password} ~* &* +@all\n")
    return acl


def tickplane_env(a, srv, password, feed, **settings):
    """tickplane as the ACL user over mutual TLS, every write path on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TP_"))}
    env.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(srv.port), REDIS_TLS_ENABLED="true",
               REDIS_TLS_CA_PATH=cert(a, "ca.crt"), REDIS_TLS_CERT_PATH=cert(a, "client.crt"),
               REDIS_TLS_KEY_PATH=cert(a, "client.key"), REDIS_TLS_SERVER_NAME="localhost",
               REDIS_USERNAME="tickplane", REDIS_PASSWORD=password,
               TP_FEED_TCP=f"127.0.0.1:{feed}", TP_FEED_UDP="off", TP_METRICS_ADDR="off",
               TP_MD_PUBLISH="true", TP_MD_HISTORY="100", TP_REDIS_HEALTH_INTERVAL="200ms",
               **settings)
    return env


def freeze(srv, after, seconds):
    """SIGSTOP Redis after `after` seconds, SIGCONT it `seconds` later (on a thread)."""
    def run():
        time.sleep(after)
        srv.proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        srv.proc.send_signal(signal.SIGCONT)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def run_tickplane_and_sim(a, work, srv, password, run, seed, freeze_redis=False, **settings):
    """One tickplane process and one tp_sim run against it; returns tp_sim's JSON summary."""
    feed = free_port()
    env = tickplane_env(a, srv, password, feed, REDIS_COMMAND_TIMEOUT="500ms",
                        REDIS_CONNECTION_TIMEOUT="500ms", **settings)
    log = open(os.path.join(work, f"tickplane-{run}.log"), "w")
    tp = subprocess.Popen([a.tickplane], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    # The feed listens once the books are restored, after "redis pool ready": tp_sim needs it.
    while '"msg":"feed listening"' not in open(log.name).read():
        if tp.poll() is not None or time.monotonic() > deadline:
            tp.kill()
            check(f"run {run}: tickplane connects to Redis and listens (\"feed listening\")", False,
                  f"exit {tp.wait()}; log: {open(log.name).read()[-1500:]}")
            return {}
        time.sleep(0.05)
    result = os.path.join(work, f"sim-{run}.json")
    frozen = freeze(srv, 0.8, 1.2) if freeze_redis else None
    sim = subprocess.run([a.sim, "--connect", f"127.0.0.1:{feed}", "--duration", "2",
                          "--tick-rate", "2000", "--order-rate", "400", "--symbols", "50",
                          "--invalid-every", "25", "--seed", str(seed), "--json", result],
                         capture_output=True, text=True, timeout=60)
    print(sim.stdout[-600:], end="", flush=True)
    if frozen:
        frozen.join()
    tp.terminate()
    status = tp.wait(30)
    log.close()
    summary = json.load(open(result)) if os.path.exists(result) else {}
    check(f"run {run}: tp_sim saw every frame acknowledged", sim.returncode == 0,
          sim.stdout[-400:] + sim.stderr[-400:])
    check(f"run {run}: tickplane exits 0 after SIGTERM", status == 0, status)
    if freeze_redis:
        text = open(log.name).read()
        check(f"run {run}: the reconnect after the freeze fenced the previous connection",
              "redis connection fenced" in text and "cannot be fenced" not in text, text[-1500:])
    return summary


def check_service_refused_outside_prefix(a, work, srv, password):
    """The service itself, pointed at keys outside tp:*, is refused and says why."""
    log = os.path.join(work, "tickplane-other-prefix.log")
    env = tickplane_env(a, srv, password, free_port(), TP_KEY_PREFIX="other:")
    with open(log, "w") as out:
        status = subprocess.run([a.tickplane], env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=60).returncode
    text = open(log).read()
    check("tickplane with TP_KEY_PREFIX=other: is refused by the ACL and stops (exit 1)",
          status == 1, status)
    check("... naming Redis's NOPERM", "NOPERM" in text, text[-500:])


def granted_commands(admin):
    rules = admin.execute_command("ACL", "GETUSER", "tickplane")
    rules = dict(zip(rules[::2], rules[1::2]))["commands"]
    return {tok[1:] for tok in rules.split() if tok.startswith("+")}


def used_commands(admin):
    stats = admin.info("commandstats")
    used = {k[len("cmdstat_"):]: v for k, v in stats.items()}
    used.pop("config|resetstat", None)  # the test's own reset
    return used


def check_sufficient_and_least(admin):
    used = used_commands(admin)
    rejected = {c: s for c, s in used.items() if s.get("rejected_calls") or s.get("failed_calls")}
    check("no command was rejected or failed", not rejected, rejected)
    check("the ACL log has no denial", admin.execute_command("ACL", "LOG") == [],
          admin.execute_command("ACL", "LOG"))
    used = set(used) - {"auth"}  # AUTH needs no permission
    granted = granted_commands(admin)
    check("every granted command was used (least)", granted <= used, sorted(granted - used))
    check("every used command is granted (sufficient)", used <= granted, sorted(used - granted))
    print(f"   commands: {' '.join(sorted(used))}")


def check_state(admin, sims):
    keys = list(admin.scan_iter(count=1000))
    check("tickplane wrote keys", len(keys) > 100, len(keys))
    check("every key is under tp:", all(k.startswith("tp:") for k in keys),
          [k for k in keys if not k.startswith("tp:")][:5])
    check("50 price hashes", len([k for k in keys if k.startswith("tp:px:")]) == 50)
    check("market-data history streams", admin.type("tp:hist:SYM0000") == "stream")
    check("order hashes of every account",
          all(any(k.startswith(f"tp:{{ACC0{i}}}:ord:") for k in keys) for i in range(1, 5)))
    check("the event-id generation went up at each start", admin.get("tp:evgen") == "2",
          admin.get("tp:evgen"))
    sent = sum(s.get("orders", {}).get("sent", 0) for s in sims)
    check("tp_sim sent order events", sent > 0, sims)


def check_refused(srv, password):
    tp = srv.client("tickplane", password)
    refused = [("SET", "other", "x"), ("HSET", "other:px:X", "f", "v"), ("GET", "tp:evgen"),
               ("DEL", "tp:evgen"), ("PUBLISH", "other", "x"), ("KEYS", "*"), ("FLUSHALL",),
               ("FLUSHDB",), ("CONFIG", "GET", "maxmemory"), ("DEBUG", "SLEEP", "0"),
               ("EVAL", "return 1", "0"), ("SHUTDOWN",), ("ACL", "LIST"), ("SCRIPT", "FLUSH"),
               ("CLIENT", "LIST"), ("SELECT", "1"), ("EXPIRE", "tp:evgen", "1"),
               ("XADD", "other", "*", "f", "v"), ("HSET", "TP:px:X", "f", "v")]
    # It publishes events but never listens. Last: had it been allowed, the connection would be
    # in subscriber mode.
    refused.append(("SUBSCRIBE", "tp:events"))
    for cmd in refused:
        what = f"tickplane user: {' '.join(cmd)} refused"
        try:
            tp.execute_command(*cmd)
            check(what, False, "it was allowed")
        except redis.exceptions.ResponseError as e:
            # DEBUG is off for everyone (enable-debug-command no), before the ACL is asked.
            denied = isinstance(e, redis.exceptions.NoPermissionError)
            check(what, denied or (cmd[0] == "DEBUG" and "not allowed" in str(e)), e)
        tp = srv.client("tickplane", password)
    check("tickplane user: HSET inside tp:* allowed", tp.hset("tp:acl-probe", "f", "v") == 1)
    tp.close()
    for who, args in (("the default user", (None, None)),
                      ("a wrong password", ("tickplane", "wrong-password-0123456789"))):
        try:
            srv.client(*args).ping()
            check(f"{who} is refused", False, "PING answered")
        except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as e:
            check(f"{who} is refused", True, e)
    try:
        srv.client("tickplane", password, client_cert=False).ping()
        check("a client without a certificate is refused (mutual TLS)", False, "PING answered")
    except (redis.exceptions.ConnectionError, OSError):
        check("a client without a certificate is refused (mutual TLS)", True)


def check_config(admin, srv):
    want = {"port": "0", "appendonly": "yes", "appendfsync": "everysec",
            "maxmemory-policy": "noeviction", "tls-auth-clients": "yes", "save": ""}
    for k, v in want.items():
        got = admin.config_get(k).get(k)
        check(f"redis.conf: {k} {v!r}", got == v, got)
    aof = os.path.join(srv.dir, "appendonlydir")
    size = sum(os.path.getsize(os.path.join(aof, f)) for f in os.listdir(aof)) \
        if os.path.isdir(aof) else 0
    check("the append-only file holds the writes", size > 100_000, size)


def check_dev_overlay(a, work, acl, password):
    d = os.path.join(work, "dev")
    os.makedirs(d)
    srv = Redis(a, d, acl, overlays=("redis-dev.conf",))
    try:
        srv.wait_ready(srv.client("tickplane", password))
        c = srv.client("tickplane", password, client_cert=False)
        check("redis-dev.conf: a client with only the CA gets in", c.ping())
    finally:
        srv.stop()


def parse_args():
    p = argparse.ArgumentParser()
    for opt in ("--tickplane", "--sim", "--certs", "--deploy"):
        p.add_argument(opt, required=True)
    a = p.parse_args()
    # Absolute: redis-server changes into its data directory before it reads the certificates.
    for k, v in vars(a).items():
        setattr(a, k, os.path.abspath(v))
    return a


def main():
    a = parse_args()
    work = tempfile.mkdtemp(prefix="tp-acl-")
    password, admin_password = secrets.token_hex(24), secrets.token_hex(24)
    acl = render_acl(a, work, password, admin_password)
    srv = Redis(a, work, acl)
    keep = True
    try:
        admin = srv.client("tp-test-admin", admin_password)
        srv.wait_ready(admin)
        admin.config_resetstat()
        # From here until INFO only tickplane sends commands, so commandstats is its own.
        sims = [run_tickplane_and_sim(a, work, srv, password, 1, 11),
                run_tickplane_and_sim(a, work, srv, password, 2, 12, freeze_redis=True)]
        check_sufficient_and_least(admin)
        check_state(admin, sims)
        check_config(admin, srv)
        check_refused(srv, password)
        check_service_refused_outside_prefix(a, work, srv, password)
        check_dev_overlay(a, work, acl, password)
        keep = failures > 0
    finally:
        srv.stop()
        if keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
