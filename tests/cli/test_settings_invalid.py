#!/usr/bin/python3
"""tests/cli/test_settings_invalid.py <tickplane>: every setting, invalid in turn.

The settings are read from `tickplane --help` (every module's group of the one registry,
core/include/tp/settings.h), so a setting added to any group without an invalid case below
fails this test. Each invalid value
is given as the environment variable, as --flag=VALUE and as --flag VALUE, on top of
an otherwise valid environment whose Redis is a listener this test owns and whose feed
and metrics ports are held by this test. Every run must:

  * exit 2, with nothing on stdout;
  * name the setting (the variable, or the flag it came from) and the value on stderr,
    and never a password (REDIS_PASSWORD is set in every run and must not appear);
  * open no socket: no network system call under strace, no connection to the Redis
    listener, no bind on the held ports (a bind there would fail and exit 1);
  * crash in no way (the ASan/UBSan build aborts on any report).

Free-form settings that accept every value in some form are listed in ALLOWED with the
reason; a form with neither a case nor an entry there is a failure.
"""
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

BIN = sys.argv[1]
SECRET = "hunter2-never-shown"
RUN_TIMEOUT = 10  # seconds; a value that was wrongly accepted starts the service

# ---- the invalid values ----------------------------------------------------------------------

ENV, FLAG = "env", "flag"


class Case:
    """value: the invalid value ({decoy}, {tmp}, {garbage}, {crt}, {key} are filled in);
    forms: where it is invalid (an empty variable means unset, so "" is a flag case);
    ctx: valid settings the case needs to reach its check (e.g. TLS on for a TLS file);
    shown: how the value appears in the message when it is redacted;
    late: the value is refused when the TLS files are loaded, after the configuration
    was logged, still before any socket."""

    def __init__(self, value, forms=(ENV, FLAG), ctx=None, shown=None, late=False):
        self.value, self.forms, self.ctx = value, forms, ctx or {}
        self.shown, self.late = shown, late


TLS = {"REDIS_TLS_ENABLED": "true"}
NUMBER_JUNK = ["abc", "-1", "1.5", "0x10", " 7", "7 ", "99999999999999999999999"]


def cases_for_ints(lo, hi, extra=()):
    values = [str(lo - 1) if lo > 0 else "-1", str(hi + 1)] + list(extra)
    return [Case(v) for v in values] + [Case(v) for v in NUMBER_JUNK if v not in values]


def cases_for_durations(lo_ms, hi_ms):
    values = ["-1", str(hi_ms + 1), "%ds" % (hi_ms // 1000 + 1), "5m", "1h", "1.5s", "2 s",
              "soon", "10sec"]
    if lo_ms > 0:
        values += [str(lo_ms - 1), "0ms"]
    return [Case(v) for v in values]


CASES = {
    "REDIS_URL": [
        Case("http://127.0.0.1:{decoy}"),
        Case("127.0.0.1:{decoy}"),
        Case("redis://"),
        Case("redis://127.0.0.1:0"),
        Case("redis://127.0.0.1:65536"),
        Case("redis://127.0.0.1:{decoy}/db1"),
        Case("redis://127.0.0.1:{decoy}/1000001"),
        Case("redis://..:{decoy}"),
        Case("redis://[::g]:{decoy}"),
        Case("redis://bad host:{decoy}"),
        Case("rediss://trader:hunter2@127.0.0.1:99999",
             shown="rediss://trader:***@127.0.0.1:99999"),
        Case("redis://hunter2@127.0.0.1:{decoy}", shown="redis://***@127.0.0.1:{decoy}"),
        Case("redis://:hunter2%zz@127.0.0.1:{decoy}", shown="redis://:***@127.0.0.1:{decoy}"),
    ],
    "REDIS_CLUSTER_NODES": [Case(v) for v in [
        "localhost", "127.0.0.1:0", "127.0.0.1:65536", "[::1:7000", "host:port", "bad host:7000",
        ",127.0.0.1:7000", "127.0.0.1:7000,", "127.0.0.1:7000,,127.0.0.1:7001",
        "http://127.0.0.1:7000", "redis://127.0.0.1:7000/1",
        "rediss://127.0.0.1:7000"]] + [
        Case("redis://127.0.0.1:7000", ctx=TLS),
        Case("redis://user:pw@127.0.0.1:7000", shown="redis://user:***@127.0.0.1:7000"),
        Case("127.0.0.1:7000", ctx={"REDIS_DATABASE": "2"})],
    "REDIS_HOST": [Case(v) for v in ["bad host", "256.1.1.1", "10.0.0.1.2", "[::1]", "redis:6379",
                                     "a..b", ".a", "-a.b", "a-.b", "host/path", "h\tx",
                                     "x" * 254]],
    "REDIS_PORT": cases_for_ints(1, 65535),
    "REDIS_USERNAME": [Case("two words"), Case("tab\tbed"), Case("new\nline")],
    "REDIS_PASSWORD": [Case("", forms=(FLAG,), shown="***")],
    "REDIS_DATABASE": cases_for_ints(0, 1000000, ["db1"]),
    "REDIS_POOL_MAX_SIZE": cases_for_ints(1, 256, ["four"]),
    "REDIS_CONNECTION_TIMEOUT": cases_for_durations(1, 3600000),
    "REDIS_COMMAND_TIMEOUT": cases_for_durations(1, 3600000),
    "REDIS_MAX_RETRIES": cases_for_ints(0, 1000000, ["ten"]),
    "REDIS_RETRY_DELAY_MS": cases_for_durations(1, 3600000) + [
        # Valid alone, but above the cap: named with its value (in ms) and the cap's.
        Case("10s", ctx={"REDIS_RETRY_MAX_DELAY_MS": "5s"}, shown="10000ms")],
    "REDIS_RETRY_MAX_DELAY_MS": cases_for_durations(1, 3600000),
    "REDIS_MAX_QUEUED_BYTES": [Case(v) for v in ["4095", "2GiB", "1025MiB", "10X", "1kb", "64 MiB",
                                                 "-1", "big", "99999999999999G"]],
    "REDIS_TLS_ENABLED": [Case(v) for v in ["maybe", "2", "yes please", "enabled", "tru"]],
    "REDIS_TLS_CERT_PATH": [
        Case("{tmp}/missing.crt", ctx=dict(TLS, REDIS_TLS_KEY_PATH="{key}")),
        Case("{tmp}", ctx=dict(TLS, REDIS_TLS_KEY_PATH="{key}")),
        Case("{garbage}", ctx=dict(TLS, REDIS_TLS_KEY_PATH="{key}"), late=True),
        Case("{key}", ctx=dict(TLS, REDIS_TLS_KEY_PATH="{key}"), late=True),
    ],
    "REDIS_TLS_KEY_PATH": [
        Case("{tmp}/missing.key", ctx=dict(TLS, REDIS_TLS_CERT_PATH="{crt}")),
        Case("{tmp}", ctx=dict(TLS, REDIS_TLS_CERT_PATH="{crt}")),
        Case("{garbage}", ctx=dict(TLS, REDIS_TLS_CERT_PATH="{crt}"), late=True),
    ],
    "REDIS_TLS_CA_PATH": [
        Case("{tmp}/missing-ca.crt", ctx=TLS),
        Case("{tmp}", ctx=TLS),
        Case("{garbage}", ctx=TLS, late=True),
        Case("{key}", ctx=TLS, late=True),
    ],
    "REDIS_TLS_SERVER_NAME": [Case(v, ctx=TLS) for v in ["bad name", "x/y", "[::1]", "a..b",
                                                         "-redis", "redis.example.com:6380"]],
    "TP_KEY_PREFIX": [Case("p" * 65), Case("tickplane:" * 7)],
    "REDIS_DEFAULT_TTL": cases_for_ints(0, 2147483647, ["1h", "forever"]),
    "TP_FEED_TCP": [Case(v) for v in ["localhost:7400", "127.0.0.1", "127.0.0.1:65536", "::1:7400",
                                      "[::1]", "[::1:7400", "127.0.0.1:-1", ":7400", "on",
                                      "tcp://127.0.0.1:7400", "127.0.0.1:7400 "]],
    "TP_FEED_UDP": [Case(v) for v in ["[::1:7401", "127.0.0.1:-1", "udp://127.0.0.1:7401",
                                      "localhost:7401", "127.0.0.256:7401", "OFF"]],
    "TP_FEED_UDP_GROUP": [Case(v) for v in ["10.0.0.1", "not-a-group", "239.1.1.1.1",
                                            "239.1.1.1:5000", "fe80::1"]] + [
        # A group of the other family than the socket's: named with both values.
        Case("ff02::1")],
    "TP_FEED_REPLAY": [Case("{tmp}/missing.frames"), Case("{tmp}")],
    "TP_FEED_REPLAY_SPEED": [Case(v) for v in ["-1", "fast", "nan", "inf", "1e3", "0x10", "1,5",
                                               "1000001", " 1", ".5"]],
    "TP_MAX_FRAME_BYTES": [Case(v) for v in ["63", "17MiB", "16777217", "64KB", "big", "-1", "1.5k"]],
    "TP_FEED_MAX_CONNECTIONS": cases_for_ints(1, 100000, ["many"]),
    "TP_FEED_FRAME_TIMEOUT": cases_for_durations(0, 3600000),
    "TP_EVENT_FORMAT": [Case(v) for v in ["xml", "JSON", "protobuf", "flatbuffer"]],
    "TP_EVENT_STREAM": [Case(v) for v in ["maybe", "2", "stream", "enabled"]],
    "TP_EVENT_STREAM_MAXLEN": cases_for_ints(1, 1 << 30, ["1M"]),
    "TP_ACCOUNT_EVENT_RATE": cases_for_ints(0, 1000000, ["fast"]),
    "TP_ACCOUNT_EVENT_BURST": cases_for_ints(0, 1000000, ["1k"]),
    "TP_MD_PUBLISH": [Case(v) for v in ["maybe", "2", "published"]],
    "TP_MD_HISTORY": cases_for_ints(0, 2147483647, ["lots"]),
    "TP_BARS": [Case(v) for v in ["1x", "0m", "1m,", ",1m", "1m,1m", "m", "60", "1.5m", "01m",
                                  "1s,2s,3s,4s,5s,6s,7s,8s,9s", "1 m", "-1m"]],
    "TP_BARS_MAXLEN": cases_for_ints(1, 1 << 30, ["big"]),
    "TP_ORDER_QUEUE_MAX": cases_for_ints(16, 1 << 24, ["0"]),
    "TP_FINISHED_ORDERS_MAX": cases_for_ints(0, 1000000, ["1e6"]),
    "TP_MARK_PRICE": [Case(v) for v in ["bid", "ask", "LAST", "mid price", "bidask", "vwap"]],
    "TP_MARK_INTERVAL": cases_for_durations(0, 3600000),
    "TP_ACK_REPLICAS": cases_for_ints(0, 16, ["one"]),
    "TP_ACK_TIMEOUT": cases_for_durations(1, 3600000),
    "TP_SHUTDOWN_TIMEOUT": cases_for_durations(1, 3600000),
    "TP_METRICS_ADDR": [Case(v) for v in ["localhost:9108", ":9108", "127.0.0.1:", "[::1]:99999",
                                          "http://127.0.0.1:9108", "on"]],
    "TP_LATENCY_LOG_INTERVAL": cases_for_durations(0, 3600000),
    "TP_REDIS_HEALTH_INTERVAL": cases_for_durations(0, 3600000),
    "TP_LEADER_LEASE": [Case(v) for v in ["a{b}", "tp:lease", "two words", "x" * 49]] + [
        Case("tp", ctx=dict(REDIS_CLUSTER_NODES="127.0.0.1:7000"))],
    "TP_LEADER_LEASE_TTL": cases_for_durations(300, 60000),
    "TP_LOG_LEVEL": [Case(v) for v in ["verbose", "trace", "5", "warning", "in fo"]],
}

# Forms of a setting that have no invalid value at all, with the reason.
ALLOWED = {
    ("REDIS_PASSWORD", ENV): "any non-empty value is a valid AUTH password (AUTH is binary-safe) "
                             "and an empty variable means unset; the flag's empty value is "
                             "checked",
}

# Settings whose empty flag value is valid (every other one gets an empty --flag= case).
EMPTY_OK = {
    "TP_KEY_PREFIX": "an empty prefix is allowed: keys without a prefix",
}

# ---- the environment -------------------------------------------------------------------------

passes = 0
failures = []
lock = threading.Lock()  # the cases run on a thread per core


def check(ok, what):
    global passes
    with lock:
        if ok:
            passes += 1
        else:
            failures.append(what)
            print("FAIL: " + what, flush=True)
    return ok


def clean_environ():
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("REDIS_", "TP_")) and not k.startswith("LSAN")}
    keep.setdefault("PATH", "/usr/bin:/bin")
    return keep


def listener(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    return s


def connection_attempted(decoy):
    """True (and the connection dropped) when something connected to the decoy Redis. With
    cases running side by side, a connection may be blamed on a neighbour: it still fails."""
    hit = False
    with lock:
        while select.select([decoy], [], [], 0)[0]:
            conn, _ = decoy.accept()
            conn.close()
            hit = True
    return hit


def settings_from_help(environ):
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, env=environ, timeout=30)
    check(out.returncode == 0, "--help exits 0")
    rows = re.findall(r"^  (--[a-z0-9-]+)\s+([A-Z][A-Z0-9_]+)\s", out.stdout, re.M)
    check(len(rows) >= 30 and ("--redis-port", "REDIS_PORT") in rows,
          "--help lists the settings table (%d rows read)" % len(rows))
    return rows


def have_strace():
    return shutil.which("strace") is not None


def traced(argv, environ, trace_file):
    """argv under strace, network system calls only; LeakSanitizer cannot run under ptrace."""
    environ = dict(environ)
    environ["ASAN_OPTIONS"] = (environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    return ["strace", "-f", "-qq", "-e", "trace=%network", "-o", trace_file] + argv, environ


def network_calls(trace_file):
    with open(trace_file) as f:
        return [l.strip() for l in f if re.search(r"\b(socket|connect|bind|listen|accept4?|"
                                                  r"sendto|sendmsg|socketpair)\(", l)]


# ---- one run ----------------------------------------------------------------------------------


def run(argv, environ, timeout=RUN_TIMEOUT):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=timeout,
                           errors="replace")
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, out, err


def one(var, flag, form, case, fill, base, decoy, tmp, use_strace, job):
    value = fill(case.value)
    shown = fill(case.shown) if case.shown is not None else value
    environ = dict(base)
    for k, v in case.ctx.items():
        environ[k] = fill(v)
    argv = [BIN]
    if form == ENV:
        environ[var] = value
        label = "%s=%r" % (var, value)
    elif form == "flag=":
        argv.append("%s=%s" % (flag, value))
        label = "%s=%r" % (flag, value)
    else:
        argv += [flag, value]
        label = "%s %r" % (flag, value)

    code, out, err = run(argv, environ)
    check(code == 2, "%s: exit %s, expected 2 (stderr: %s)" % (label, code, err.strip()[-300:]))
    names = [re.escape(var)] + ([re.escape(flag)] if form != ENV else [])
    pattern = r"(%s)[= ]%s" % ("|".join(names), re.escape(shown))
    check(re.search(pattern, err) is not None,
          "%s: stderr does not name the setting and the value %r: %s" % (label, shown,
                                                                        err.strip()[-300:]))
    check(SECRET not in err + out and "hunter2" not in err + out,
          "%s: a password reached the output" % label)
    check(out == "", "%s: printed on stdout: %r" % (label, out[:200]))
    if not case.late:
        check('"msg"' not in err, "%s: the service started logging: %s" % (label, err[:300]))
    check("Sanitizer" not in err and "runtime error" not in err, "%s: sanitizer report" % label)
    check(not connection_attempted(decoy), "%s: connected to REDIS_PORT" % label)
    if use_strace:
        trace_file = os.path.join(tmp, "trace-%d" % job)
        targv, tenv = traced(argv, environ, trace_file)
        tcode, _, terr = run(targv, tenv)
        calls = network_calls(trace_file)
        check(tcode == 2 and not calls,
              "%s under strace: exit %s, network calls %s %s" % (label, tcode, calls[:3],
                                                                 terr.strip()[-200:]))
        check(not connection_attempted(decoy), "%s: connected to REDIS_PORT (traced)" % label)


# ---- controls: the checks can see what they look for ------------------------------------------


def controls(base, decoy, tmp):
    """A valid start against the decoy connects to it; one with the metrics port held fails to
    bind it, and strace shows the sockets. Returns whether strace can be used."""
    environ = dict(base, TP_FEED_TCP="off", TP_FEED_UDP="off", TP_METRICS_ADDR="off")
    p = subprocess.Popen([BIN], env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = select.select([decoy], [], [], 20)[0] != []
    finally:
        p.kill()
        p.wait()
    check(seen, "control: a valid start connects to the decoy REDIS_PORT")
    connection_attempted(decoy)

    code, _, err = run([BIN], base, timeout=30)
    check(code == 1 and "cannot" in err,
          "control: a valid start fails to bind the held metrics port (exit %s)" % code)
    connection_attempted(decoy)

    if not have_strace():
        print("note: strace not installed; network system calls are not traced (the decoy "
              "listener and the held ports still are checked)")
        return False
    trace_file = os.path.join(tmp, "trace")
    targv, tenv = traced([BIN], base, trace_file)
    run(targv, tenv, timeout=30)
    calls = network_calls(trace_file) if os.path.exists(trace_file) else []
    connection_attempted(decoy)
    if not calls:
        print("note: strace cannot trace here (no network calls seen in a valid start); "
              "relying on the decoy listener and the held ports")
        return False
    check(any("bind(" in c for c in calls), "control: strace shows the bind of a valid start")
    return True


# ---- main -------------------------------------------------------------------------------------


def main():
    tmp = tempfile.mkdtemp(prefix="tp_settings_invalid_")
    decoy, feed_tcp, metrics = listener(), listener(), listener()
    feed_udp = listener(socket.SOCK_DGRAM)
    try:
        garbage = os.path.join(tmp, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("not a PEM file\n")
        crt, key = os.path.join(tmp, "a.crt"), os.path.join(tmp, "a.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=a",
                        "-keyout", key, "-out", crt], check=True, capture_output=True)
        port = decoy.getsockname()[1]
        subst = {"{decoy}": str(port), "{tmp}": tmp, "{garbage}": garbage, "{crt}": crt,
                 "{key}": key}

        def fill(text):
            for k, v in subst.items():
                text = text.replace(k, v)
            return text

        base = clean_environ()
        base.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(port), REDIS_PASSWORD=SECRET,
                    TP_FEED_TCP="127.0.0.1:%d" % feed_tcp.getsockname()[1],
                    TP_FEED_UDP="127.0.0.1:%d" % feed_udp.getsockname()[1],
                    TP_METRICS_ADDR="127.0.0.1:%d" % metrics.getsockname()[1])

        rows = settings_from_help(clean_environ())
        use_strace = controls(base, decoy, tmp)
        known = {var for _, var in rows}
        for var in sorted(set(CASES) | {v for v, _ in ALLOWED} | set(EMPTY_OK)):
            check(var in known, "%s has cases here but is not in --help (renamed?)" % var)

        jobs = []
        for flag, var in rows:
            cases = list(CASES.get(var, []))
            for form in (ENV, FLAG):
                has = any(form in c.forms for c in cases)
                check(has or (var, form) in ALLOWED,
                      "%s has no invalid %s value: add one to CASES, or to ALLOWED with the "
                      "reason" % (var, "variable" if form == ENV else "flag"))
            if var not in EMPTY_OK and not any(c.value == "" for c in cases):
                cases.append(Case("", forms=(FLAG,)))
            for case in cases:
                forms = [ENV] if ENV in case.forms else []
                if FLAG in case.forms:
                    forms += ["flag="] + (["flag"] if case.value and not
                                          case.value.startswith("--") else [])
                jobs += [(var, flag, form, case) for form in forms]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for f in [pool.submit(one, *job, fill, base, decoy, tmp, use_strace, i)
                      for i, job in enumerate(jobs)]:
                f.result()  # an exception in a case is a failure of the test
        runs = len(jobs)
        for (var, form), why in sorted(ALLOWED.items()):
            print("allowed: %s as %s accepts any value: %s" % (var, form, why))
        for var, why in sorted(EMPTY_OK.items()):
            print("allowed: %s accepts an empty flag value: %s" % (var, why))
        print("%d settings, %d runs (%s), %d checks passed, %d failed" % (
            len(rows), runs, "each also under strace" if use_strace else "strace not used",
            passes, len(failures)))
    finally:
        for s in (decoy, feed_tcp, metrics, feed_udp):
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
