#!/usr/bin/python3
"""deploy/docker without a container engine: what a build and a run would depend on.

usage: check_docker.py --repo DIR --tickplane BIN --certs DIR --work DIR

* Dockerfile rules (hadolint's that matter here, and the project's): two stages on Debian 12;
  every apt-get install is -y --no-install-recommends and cleans its lists in the same layer; the
  runtime stage runs as a numeric non-root user, has an exec-form ENTRYPOINT and HEALTHCHECK, no
  ADD, no -dev package, copies no key or certificate; every COPY source is let through by
  .dockerignore.
* The build stage, emulated: only what it COPYs, built with its own RUN line (container paths
  mapped into --work). The runtime stage's packages are exactly those owning the libraries that
  binary needs (dpkg -S over its NEEDED entries), plus ca-certificates.
* The health check script against a live tickplane (200), a dead one and metrics off (1).
* compose.yaml and compose-cluster.yaml: `docker-compose config` (the Compose schema) over a
  copy with dev-secrets.sh's secrets; the tickplane service's resolved environment through
  `tickplane --check-config`, its container paths mapped through its volumes.

Prints "ok:"/"FAIL:" per check; exits 1 if any failed.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import yaml

failures = 0


def check(what, cond, detail=""):
    global failures
    print(f"{'ok' if cond else 'FAIL'}: {what}{'' if cond or not detail else ' -- ' + str(detail)}",
          flush=True)
    failures += 0 if cond else 1
    return cond


# ---- the Dockerfile ----------------------------------------------------------------------------

def instructions(path):
    """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in open(path):
        line = line.rstrip("\n")
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        buf += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
            buf = ""
    return out


def stages(instrs):
    """{stage name: [(INSTRUCTION, args)]} in order, and the ARGs before the first FROM."""
    result, pre, current = {}, [], None
    for ins, args in instrs:
        if ins == "FROM":
            current = args.split()[-1]
            result[current] = []
        elif current is None:
            pre.append((ins, args))
        else:
            result[current].append((ins, args))
    return result, pre


def apt_packages(run_args):
    m = re.search(r"apt-get install ((?:-\S+ )*)(.*?)(?:&&|$)", run_args)
    return m.group(1).split(), m.group(2).split()


def check_dockerfile(a, path):
    instrs = instructions(path)
    st, pre = stages(instrs)
    froms = [args for ins, args in instrs if ins == "FROM"]
    check("two stages, build and runtime", list(st) == ["build", "runtime"], list(st))
    check("both stages FROM ${DEBIAN_IMAGE}, which defaults to Debian 12 (bookworm) slim",
          all(f.startswith("${DEBIAN_IMAGE} ") for f in froms) and
          ("ARG", "DEBIAN_IMAGE=debian:bookworm-slim") in pre)
    for name, body in st.items():
        for ins, args in body:
            if ins == "RUN" and "apt-get install" in args:
                flags, _ = apt_packages(args)
                check(f"{name}: apt-get install -y --no-install-recommends",
                      "-y" in flags and "--no-install-recommends" in flags, flags)
                check(f"{name}: apt-get update in the same layer, lists removed after",
                      "apt-get update" in args and "rm -rf /var/lib/apt/lists/*" in args)
        check(f"{name}: no ADD (COPY says what it does)", all(i != "ADD" for i, _ in body))
    runtime = st.get("runtime", [])
    user = [args for ins, args in runtime if ins == "USER"]
    check("runtime: runs as a numeric non-root user",
          user and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user[-1]), user)
    last = lambda ins: [args for i, args in runtime if i == ins][-1:] or [""]
    entry = last("ENTRYPOINT")[0]
    check("runtime: exec-form ENTRYPOINT (tickplane is PID 1 and gets SIGTERM)",
          entry.startswith("[") and json.loads(entry) == ["/usr/local/bin/tickplane"], entry)
    health = last("HEALTHCHECK")[0]
    cmd = health.split(" CMD ", 1)[-1]
    check("runtime: exec-form HEALTHCHECK of the health check script",
          cmd.startswith("[") and json.loads(cmd) == ["/usr/local/bin/tickplane-healthcheck"], health)
    _, runtime_pkgs = apt_packages(next(a for i, a in runtime if i == "RUN"))
    check("runtime: no -dev packages", not [p for p in runtime_pkgs if p.endswith("-dev")])
    copies = [args for name, body in st.items() for ins, args in body if ins == "COPY"]
    check("no COPY of keys or certificates",
          not any(re.search(r"\.(key|pem|crt)\b|certs|secrets", c) for c in copies), copies)
    allowed = [l.strip()[1:].rstrip("/") for l in open(os.path.join(a.repo, ".dockerignore"))
               if l.startswith("!")]
    sources = [c.split()[:-1] for c in copies if not c.startswith("--from")]
    for src in (s.rstrip("/") for srcs in sources for s in srcs):
        check(f"COPY {src}: exists and .dockerignore lets it through",
              os.path.exists(os.path.join(a.repo, src)) and src in allowed)
    return st, runtime_pkgs


# ---- the build stage, emulated ------------------------------------------------------------------

def emulate_build(a, st):
    """Copies what the build stage COPYs into <work>/src and runs its RUN lines there, with its
    container directories (/src, /build, /out) under <work>. Returns the built binary."""
    root = os.path.join(a.work, "image")
    shutil.rmtree(root, ignore_errors=True)
    src = os.path.join(root, "src")
    os.makedirs(src)
    mapped = lambda text: re.sub(r"(?<![\w.])/(src|build|out)\b", lambda m: f"{root}/{m.group(1)}",
                                 text)
    for ins, args in st["build"]:
        if ins == "COPY":
            *sources, dest = args.split()
            for s in sources:
                if os.path.isdir(os.path.join(a.repo, s)):
                    shutil.copytree(os.path.join(a.repo, s), os.path.join(src, dest))
                else:
                    shutil.copy(os.path.join(a.repo, s), os.path.join(src, dest))
        elif ins == "RUN" and args.startswith("cmake "):
            r = subprocess.run(["bash", "-c", mapped(args)], cwd=src, capture_output=True,
                               text=True)
            if not check("build stage: its cmake RUN line builds and installs tickplane",
                         r.returncode == 0, (r.stdout + r.stderr)[-2000:]):
                return None
    binary = os.path.join(root, "out", "bin", "tickplane")
    check("build stage: /out/bin/tickplane is the binary the runtime stage copies",
          os.access(binary, os.X_OK) and
          any(i == "COPY" and a_.startswith("--from=build /out/bin/tickplane ")
              for i, a_ in st["runtime"]))
    return binary


def needed_packages(binary):
    """The Debian packages owning the shared libraries binary loads (ldd, then dpkg -S)."""
    pkgs = set()
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True).stdout.splitlines():
        m = re.search(r"=> (/\S+)", line)
        if not m:
            continue
        path = os.path.realpath(m.group(1))
        owner = ""
        for candidate in {m.group(1), path, re.sub(r"^/usr/lib/", "/lib/", path),
                          re.sub(r"^/lib/", "/usr/lib/", path)}:
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0]
                break
        pkgs.add(owner or f"(no package owns {m.group(1)})")
    return pkgs


def check_runtime_packages(binary, runtime_pkgs):
    needed = needed_packages(binary) - {"libc6"}  # libc6 is in every Debian image
    listed = set(runtime_pkgs) - {"ca-certificates"}
    check("runtime: installs every package whose library tickplane loads", needed <= listed,
          sorted(needed - listed))
    check("runtime: installs nothing else (but ca-certificates)", listed <= needed,
          sorted(listed - needed))
    print(f"   runtime libraries from: {' '.join(sorted(needed))}")


# ---- the health check ---------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthcheck(a, addr):
    env = dict(os.environ, TP_METRICS_ADDR=addr)
    r = subprocess.run([os.path.join(a.repo, "deploy", "docker", "healthcheck.sh")], env=env,
                       capture_output=True, text=True, timeout=10)
    return r.returncode, r.stderr.strip()


def check_healthcheck(a):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TP_"))}
    # Redis is unreachable on purpose: /livez answers while the pool keeps retrying.
    env.update(REDIS_PORT=str(free_port()), REDIS_MAX_RETRIES="0", TP_FEED_TCP="127.0.0.1:0",
               TP_FEED_UDP="off", TP_METRICS_ADDR=f"0.0.0.0:{port}")
    log = open(os.path.join(a.work, "healthcheck-tickplane.log"), "w+")
    tp = subprocess.Popen([a.tickplane], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "metrics listening" not in open(log.name).read() and time.monotonic() < deadline:
            time.sleep(0.05)
        code, err = healthcheck(a, f"0.0.0.0:{port}")
        check("healthcheck.sh: 0 against a running tickplane (wildcard address -> loopback)",
              code == 0, err)
        code, err = healthcheck(a, f"[::]:{port}")
        check("healthcheck.sh: [::] is asked on ::1 (refused: tickplane listens on IPv4 here)",
              code == 1 and "::1" in err, err)
    finally:
        tp.terminate()
        tp.wait(30)
    code, err = healthcheck(a, f"127.0.0.1:{port}")
    check("healthcheck.sh: 1 with the reason when nothing answers", code == 1 and "/livez" in err,
          err)
    code, err = healthcheck(a, "off")
    check("healthcheck.sh: 1 when TP_METRICS_ADDR=off", code == 1 and "off" in err, err)


# ---- compose ------------------------------------------------------------------------------------

def check_compose(a):
    """docker-compose over a copy of deploy/ (dev-secrets.sh writes next to compose.yaml)."""
    root = os.path.join(a.work, "compose")
    shutil.rmtree(root, ignore_errors=True)
    for d in ("deploy/docker", "deploy/redis"):
        shutil.copytree(os.path.join(a.repo, d), os.path.join(root, d),
                        ignore=shutil.ignore_patterns("secrets"))
    os.makedirs(os.path.join(root, "tests", "support"))
    shutil.copy(os.path.join(a.repo, "tests", "support", "gen_certs.sh"),
                os.path.join(root, "tests", "support"))
    docker = os.path.join(root, "deploy", "docker")
    r = subprocess.run([os.path.join(docker, "dev-secrets.sh")], capture_output=True, text=True)
    check("dev-secrets.sh writes the development secrets", r.returncode == 0, r.stderr)
    for name in ("compose.yaml", "compose-cluster.yaml"):
        check_compose_file(a, docker, name)


def check_compose_file(a, docker, name):
    r = subprocess.run(["docker-compose", "-f", name, "config"], cwd=docker,
                       capture_output=True, text=True)
    if not check(f"{name} is valid (docker-compose config)", r.returncode == 0, r.stderr):
        return
    svc = yaml.safe_load(r.stdout)["services"]["tickplane"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TP_"))}
    env.update(svc["environment"])
    for v in svc.get("volumes", []):  # container paths -> the host directories mounted there
        src, dst = (v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
        for k, val in env.items():
            if val.startswith(dst + "/"):
                env[k] = src + val[len(dst):]
    r = subprocess.run([a.tickplane, "--check-config"], env=env, capture_output=True, text=True)
    check(f"{name}: the tickplane service's environment passes tickplane --check-config",
          r.returncode == 0, (r.stdout + r.stderr).strip()[-400:])
    check(f"{name}: stop_grace_period is longer than TP_SHUTDOWN_TIMEOUT",
          svc.get("stop_grace_period", "") and
          seconds(svc["stop_grace_period"]) > seconds(svc["environment"]["TP_SHUTDOWN_TIMEOUT"]))


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s)?", str(text))
    return int(m.group(1)) / (1000 if m.group(2) == "ms" else 1) if m else float("nan")


def main():
    p = argparse.ArgumentParser()
    for opt in ("--repo", "--tickplane", "--certs", "--work"):
        p.add_argument(opt, required=True)
    a = p.parse_args()
    for k, v in vars(a).items():
        setattr(a, k, os.path.abspath(v))
    os.makedirs(a.work, exist_ok=True)
    st, runtime_pkgs = check_dockerfile(a, os.path.join(a.repo, "deploy", "docker", "Dockerfile"))
    binary = emulate_build(a, st)
    if binary:
        check_runtime_packages(binary, runtime_pkgs)
    check_healthcheck(a)
    check_compose(a)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
