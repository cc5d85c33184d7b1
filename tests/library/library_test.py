#!/usr/bin/python3
"""libtickplane as a user gets it: the examples of core/examples run against a real TLS
redis-server, and the installed package builds them on its own.

usage: library_test.py examples --bin DIR --certs DIR
       library_test.py install --build DIR --examples DIR --certs DIR --work DIR
                               [--consumer-flags FLAGS]

examples  runs the examples found in DIR (built in the tickplane tree).
install   runs `cmake --install DIR --component library` into WORK/prefix, checks the layout
          (headers, static and shared library, pkg-config file, CMake package), then builds
          the examples from that prefix alone: with the compiler and `pkg-config --cflags
          --libs tickplane` (and `--static`), and as a CMake project with find_package
          (tickplane::tickplane and tickplane::tickplane_static), and runs each build.
          FLAGS go to every consumer compile and link (the sanitizers, when the library
          was built with them).

Exit status: 0 every check passed, 1 a check failed (each printed), 2 error.
"""
import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A redis-server with a TLS port (client certificates optional) in a scratch directory."""

    def __init__(self, certs):
        self.certs = certs
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tp-library-redis-")
        args = [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", "0",
                "--tls-port", str(self.port), "--tls-cert-file", self.cert("server.crt"),
                "--tls-key-file", self.cert("server.key"),
                "--tls-ca-cert-file", self.cert("ca.crt"), "--tls-auth-clients", "optional",
                "--dir", self.dir, "--save", "", "--appendonly", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, ssl=True,
                                  ssl_ca_certs=self.cert("ca.crt"), decode_responses=True,
                                  socket_timeout=10)
        deadline = time.monotonic() + 30
        while not self.ping():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)

    def cert(self, name):
        return os.path.join(self.certs, name)

    def ping(self):
        try:
            return self.client.ping()
        except (redis.RedisError, OSError):
            return False

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def runner(binary, base_env):
    """run(args, env) runs binary with args and the environment plus base_env plus env, and
    returns the result; run.start(args, env) starts it with pipes and returns the process."""
    def run(args, env, timeout=60):
        full = dict(os.environ, **base_env, **env)
        return subprocess.run([binary] + args, env=full, capture_output=True, text=True,
                              timeout=timeout)

    def start(args, env):
        full = dict(os.environ, **base_env, **env)
        return subprocess.Popen([binary] + args, env=full, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    run.start = start
    return run


# ---- the examples ---------------------------------------------------------------------------


def check_connect_tls(run, srv, label):
    """Connects with TLS settings from the environment, writes a key and reads it back; a
    certificate from another CA, an unreachable server and a bad setting fail clearly and
    write nothing."""
    tls = {"REDIS_URL": f"rediss://127.0.0.1:{srv.port}",
           "REDIS_TLS_CA_PATH": srv.cert("ca.crt")}
    mtls = dict(tls, REDIS_TLS_CERT_PATH=srv.cert("client.crt"),
                REDIS_TLS_KEY_PATH=srv.cert("client.key"))
    key = f"example:{label}"
    r = run([key, "hello"], mtls)
    check(r.returncode == 0 and r.stdout == f"{key} = hello\n",
          f"{label}: connect_tls over mutual TLS writes and reads a key "
          f"(exit {r.returncode}, out {r.stdout!r}, err {r.stderr[-300:]!r})")
    check(srv.client.get("tp:" + key) == "hello",
          f"{label}: the key is in Redis, under the default TP_KEY_PREFIX")

    r = run([key, "prefixed"], dict(tls, TP_KEY_PREFIX="app:"))
    check(r.returncode == 0 and srv.client.get("app:" + key) == "prefixed",
          f"{label}: TP_KEY_PREFIX is applied (exit {r.returncode}, err {r.stderr[-300:]!r})")

    key = f"example:{label}:never"
    r = run([key, "never"], dict(tls, REDIS_TLS_CA_PATH=srv.cert("other-ca.crt"),
                                         REDIS_MAX_RETRIES="1"))
    check(r.returncode == 1 and "certificate" in r.stderr and srv.client.exists("tp:" + key) == 0,
          f"{label}: a server certificate from another CA is refused, nothing written "
          f"(exit {r.returncode}, err {r.stderr[-300:]!r})")

    r = run([key, "never"], {"REDIS_URL": f"rediss://127.0.0.1:{free_port()}",
                                     "REDIS_TLS_CA_PATH": srv.cert("ca.crt"),
                                     "REDIS_RETRY_DELAY_MS": "10"})
    check(r.returncode == 1 and "redis unreachable" in r.stderr,
          f"{label}: an unreachable server is reported (exit {r.returncode}, "
          f"err {r.stderr[-300:]!r})")

    r = run([key, "never"], dict(tls, REDIS_PORT="port"))
    check(r.returncode == 2 and "REDIS_PORT" in r.stderr and srv.client.exists("tp:" + key) == 0,
          f"{label}: a bad setting exits 2 and names it (exit {r.returncode}, "
          f"err {r.stderr[-300:]!r})")


def check_rate_limit(run, srv, label):
    """Three of five pipelined requests pass a limit of 3 per minute; a second process using the
    same name gets none; bad arguments exit 2."""
    tls = {"REDIS_URL": f"rediss://127.0.0.1:{srv.port}",
           "REDIS_TLS_CA_PATH": srv.cert("ca.crt"), "TP_LOG_LEVEL": "warn"}
    name = f"example:{label}"
    r = run([name, "3", "60000", "5"], tls)
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and len(lines) == 5
          and [line.split()[0] for line in lines] == ["allowed"] * 3 + ["refused"] * 2
          and lines[0].startswith("allowed remaining=2 "),
          f"{label}: 3 of 5 requests pass a limit of 3 (exit {r.returncode}, out {r.stdout!r}, "
          f"err {r.stderr[-300:]!r})")
    check(srv.client.exists(f"tp:rl:gcra:{name}") == 1, f"{label}: the limiter's key is in Redis")
    r = run([name, "3", "60000", "2"], tls)
    check(r.returncode == 0 and r.stdout.split().count("refused") == 2,
          f"{label}: another process shares the limit (exit {r.returncode}, out {r.stdout!r})")
    r = run([name, "0", "60000"], tls)
    check(r.returncode == 2, f"{label}: a zero limit exits 2 (exit {r.returncode})")


def check_lock(run, srv, label):
    """A second process cannot take a lock the first holds; once it is released the next
    acquisition gets a higher fencing token."""
    tls = {"REDIS_URL": f"rediss://127.0.0.1:{srv.port}",
           "REDIS_TLS_CA_PATH": srv.cert("ca.crt"), "TP_LOG_LEVEL": "warn"}
    name = f"example:{label}"
    holder = run.start([name, "1500"], tls)
    first = holder.stdout.readline()
    r = run([name, "0"], tls)
    check(r.returncode == 3 and r.stdout.startswith("locked retry_after_ms="),
          f"{label}: a second process finds it locked (exit {r.returncode}, out {r.stdout!r}, "
          f"err {r.stderr[-300:]!r})")
    rest, err = holder.communicate(timeout=30)
    check(holder.returncode == 0 and first.startswith("acquired fence=") and rest == "released\n",
          f"{label}: the holder acquires, holds and releases (exit {holder.returncode}, "
          f"out {first + rest!r}, err {err[-300:]!r})")
    r = run([name, "0"], tls)
    fence = int(first.split("=")[1]) if first.startswith("acquired fence=") else 0
    check(r.returncode == 0 and r.stdout.startswith(f"acquired fence={fence + 1}\n"),
          f"{label}: then it is free, with the next fencing token (exit {r.returncode}, "
          f"out {r.stdout!r})")
    check(run([name, "soon"], tls).returncode == 2, f"{label}: a bad HOLD_MS exits 2")


def value_of(line, key):
    """The value of a cache_aside line: "KEY VALUE ttl_ms=N"."""
    if not line.startswith(key + " ") or " ttl_ms=" not in line:
        return None
    return line[len(key) + 1:line.rindex(" ttl_ms=")]


def check_cache_aside(run, srv, label):
    """Five fetches of a cold key in each of two processes at once cost one load in all; the
    next run is a hit; after an invalidation it loads again; "not found" is cached too."""
    tls = {"REDIS_URL": f"rediss://127.0.0.1:{srv.port}",
           "REDIS_TLS_CA_PATH": srv.cert("ca.crt"), "TP_LOG_LEVEL": "warn"}
    key = f"example:{label}"
    both = [run.start(["get", key, "5", "300"], tls) for _ in range(2)]
    outs = [p.communicate(timeout=30) + (p.returncode,) for p in both]
    lines = [out.splitlines() for out, _, _ in outs]
    values = {value_of(line, key) for ls in lines for line in ls[:-1]}
    loads = sum(int(ls[-1].split("=")[1]) for ls in lines if ls and ls[-1].startswith("loads="))
    check(all(rc == 0 for _, _, rc in outs) and all(len(ls) == 6 for ls in lines)
          and len(values) == 1 and loads == 1,
          f"{label}: 10 fetches in two processes, one load, one value (loads {loads}, "
          f"out {[o for o, _, _ in outs]!r}, err {[e[-300:] for _, e, _ in outs]!r})")
    value = values.pop() if len(values) == 1 else None
    value = value or "{}"
    check(json.loads(value).get("key") == key, f"{label}: the value is the loader's JSON")
    check(srv.client.hget(f"tp:cache:{{{key}}}", "v") == value,
          f"{label}: the entry is in Redis, under the default TP_KEY_PREFIX")
    r = run(["get", key], tls)
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and len(lines) == 2 and value_of(lines[0], key) == value
          and lines[1] == "loads=0", f"{label}: the next run is a hit (out {r.stdout!r})")
    r = run(["invalidate", key], tls)
    check(r.returncode == 0 and srv.client.exists(f"tp:cache:{{{key}}}") == 0,
          f"{label}: invalidate drops the entry (exit {r.returncode}, err {r.stderr[-300:]!r})")
    r = run(["get", key], tls)
    check(r.returncode == 0 and r.stdout.endswith("loads=1\n"),
          f"{label}: then it loads again (out {r.stdout!r})")
    missing = f"missing:{label}"
    r = run(["get", missing], tls)
    again = run(["get", missing], tls)
    check(r.returncode == 0 and " not found " in r.stdout and r.stdout.endswith("loads=1\n")
          and again.stdout.endswith("loads=0\n"),
          f"{label}: not found is cached (out {r.stdout!r}, then {again.stdout!r})")
    srv.client.set(f"tp:cache:{{{label}:str}}", "x")
    r = run(["get", f"{label}:str"], tls)
    check(r.returncode == 1 and "WRONGTYPE" in r.stderr,
          f"{label}: a key of another type fails clearly (exit {r.returncode}, "
          f"err {r.stderr[-300:]!r})")
    check(run(["get", key, "0"], tls).returncode == 2, f"{label}: zero fetches exit 2")


def check_queue_worker(run, srv, label):
    """Three jobs enqueued; a worker runs them, the one that fails comes back until its third
    delivery; the queue's figures show it pending for its dead letter; bad arguments exit 2."""
    tls = {"REDIS_URL": f"rediss://127.0.0.1:{srv.port}",
           "REDIS_TLS_CA_PATH": srv.cert("ca.crt"), "TP_LOG_LEVEL": "warn"}
    queue = f"example:{label}"
    r = run(["enqueue", queue, "a", "fail", "b"], tls)
    ids = r.stdout.split()
    check(r.returncode == 0 and len(ids) == 3 and srv.client.xlen(f"tp:queue:{{{queue}}}") == 3,
          f"{label}: three jobs enqueued (exit {r.returncode}, out {r.stdout!r}, "
          f"err {r.stderr[-300:]!r})")
    r = run(["work", queue, "5"], tls)
    lines = sorted(r.stdout.splitlines(), key=lambda line: line.split()[2:])
    want = [f"job {ids[0]} a deliveries=1 done", f"job {ids[2]} b deliveries=1 done"] + [
        f"job {ids[1]} fail deliveries={n} failed" for n in (1, 2, 3)]
    check(r.returncode == 0 and lines == sorted(want, key=lambda line: line.split()[2:]),
          f"{label}: two jobs done, the failing one delivered three times (exit {r.returncode}, "
          f"out {r.stdout!r}, err {r.stderr[-300:]!r})")
    r = run(["stats", queue], tls)
    check(r.returncode == 0 and r.stdout == "length=1 pending=1 waiting=0 dead=0\n",
          f"{label}: only the failing job is left, pending (out {r.stdout!r})")
    check(run(["work", queue, "0"], tls).returncode == 2, f"{label}: zero jobs exit 2")
    check(run(["enqueue", queue], tls).returncode == 2, f"{label}: no payload exits 2")


EXAMPLES = {"connect_tls": check_connect_tls, "rate_limit": check_rate_limit,
            "lock": check_lock, "cache_aside": check_cache_aside,
            "queue_worker": check_queue_worker}


def run_examples(bindir, srv, label, env=None):
    for name, checker in EXAMPLES.items():
        binary = os.path.join(bindir, name)
        if check(os.access(binary, os.X_OK), f"{label}: {name} was built"):
            checker(runner(binary, env or {}), srv, f"{label}/{name}")


# ---- the installed package ------------------------------------------------------------------


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        print(f"$ {shlex.join(cmd)}\n{r.stdout[-2000:]}{r.stderr[-4000:]}", flush=True)
    return r


def check_layout(prefix):
    libdir = next((d for d in ("lib", "lib64", "lib/x86_64-linux-gnu")
                   if os.path.exists(os.path.join(prefix, d, "libtickplane.a"))), None)
    if not check(libdir is not None, "the static library is installed"):
        return None
    lib = os.path.join(prefix, libdir)
    for path in ("libtickplane.so", "pkgconfig/tickplane.pc",
                 "cmake/tickplane/tickplaneConfig.cmake",
                 "cmake/tickplane/tickplaneConfigVersion.cmake",
                 "cmake/tickplane/tickplaneTargets.cmake"):
        check(os.path.exists(os.path.join(lib, path)), f"{libdir}/{path} is installed")
    for header in ("pool.h", "commands.h", "config.h", "error.h", "reply.h"):
        check(os.path.exists(os.path.join(prefix, "include", "tp", header)),
              f"include/tp/{header} is installed")
    check(not os.path.exists(os.path.join(prefix, "bin", "tickplane")),
          "the library component leaves the service binary out")
    return lib


def build_with_pkg_config(examples, prefix, lib, out, flags, static):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(lib, "pkgconfig"))
    query = ["pkg-config", "--cflags", "--libs"] + (["--static"] if static else []) + ["tickplane"]
    r = sh(query, env=env)
    if not check(r.returncode == 0, f"{shlex.join(query)} answers"):
        return False
    pc = shlex.split(r.stdout)
    paths = [os.path.normpath(f[2:]) for f in pc if f[:2] in ("-I", "-L")]
    tree = os.path.dirname(os.path.dirname(os.path.abspath(examples)))
    ours = [path for path in paths if path.startswith(prefix)]
    check(len(ours) == 2 and all(path.startswith(prefix) or not path.startswith(tree)
                                 for path in paths),
          f"{shlex.join(query)} names the prefix's include and lib directories and nothing else "
          f"of the tree: {paths}")
    if static:
        # -ltickplane would pick the shared library beside the static one.
        pc = ["-l:libtickplane.a" if f == "-ltickplane" else f for f in pc]
    os.makedirs(out, exist_ok=True)
    ok = True
    for name in EXAMPLES:
        cmd = ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *shlex.split(flags),
               os.path.join(examples, name + ".c"), "-o", os.path.join(out, name), *pc]
        ok &= check(sh(cmd).returncode == 0, f"{name} builds with {shlex.join(query)}")
    return ok


def build_with_cmake(examples, prefix, out, flags, static):
    cfg = ["cmake", "-S", examples, "-B", out, f"-DCMAKE_PREFIX_PATH={prefix}",
           "-DCMAKE_BUILD_TYPE=Debug", f"-DTP_EXAMPLES_STATIC={'ON' if static else 'OFF'}",
           f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_EXE_LINKER_FLAGS={flags}"]
    target = "tickplane::tickplane_static" if static else "tickplane::tickplane"
    if not check(sh(cfg).returncode == 0, f"find_package(tickplane) configures ({target})"):
        return False
    return check(sh(["cmake", "--build", out]).returncode == 0,
                 f"the examples build against {target}")


def linked_shared(binary):
    r = sh(["ldd", binary])
    return "libtickplane.so" in r.stdout


def run_install(a, srv):
    prefix = os.path.join(a.work, "prefix")
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    r = sh(["cmake", "--install", a.build, "--prefix", prefix, "--component", "library"])
    if not check(r.returncode == 0, "cmake --install --component library succeeds"):
        return
    lib = check_layout(prefix)
    if lib is None:
        return
    runtime = {"LD_LIBRARY_PATH": lib}
    for static in (False, True):
        kind = "static" if static else "shared"
        out = os.path.join(a.work, f"pkg-config-{kind}")
        if build_with_pkg_config(a.examples, prefix, lib, out, a.consumer_flags, static):
            check(linked_shared(os.path.join(out, "connect_tls")) != static,
                  f"pkg-config {kind}: connect_tls links libtickplane {kind}")
            run_examples(out, srv, f"pkg-config {kind}", runtime)
        out = os.path.join(a.work, f"cmake-{kind}")
        if build_with_cmake(a.examples, prefix, out, a.consumer_flags, static):
            check(linked_shared(os.path.join(out, "connect_tls")) != static,
                  f"find_package {kind}: connect_tls links libtickplane {kind}")
            run_examples(out, srv, f"find_package {kind}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("examples")
    e.add_argument("--bin", required=True)
    e.add_argument("--certs", required=True)
    i = sub.add_parser("install")
    i.add_argument("--build", required=True)
    i.add_argument("--examples", required=True)
    i.add_argument("--certs", required=True)
    i.add_argument("--work", required=True)
    i.add_argument("--consumer-flags", default="")
    a = p.parse_args()
    try:
        srv = Redis(a.certs)
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if a.mode == "examples":
            run_examples(a.bin, srv, "in-tree")
        else:
            run_install(a, srv)
    finally:
        srv.close()
    print(f"{len(FAILURES)} check(s) failed" if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
