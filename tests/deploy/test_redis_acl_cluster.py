#!/usr/bin/python3
"""deploy/redis on a Redis Cluster, proven with the real service.

usage: test_redis_acl_cluster.py --tickplane BIN --sim BIN --certs DIR --deploy DIR

1. Renders deploy/redis/users.acl.in with TICKPLANE_REDIS_CLUSTER=yes and an operator password,
   and starts 6 nodes with redis.conf + redis-cluster.conf unchanged but for paths and ports;
   redis-cli --cluster create, as the rendered "operator" user, makes 3 masters + 3 replicas.
   The replicas sync as the ACL user "replication" (masterauth from an included file, as the
   overlay says).
2. The slot of tp:px:SYM0000 is left MIGRATING from its master to another, with no key moved,
   so that tickplane's commands on it are answered ASK and go on with ASKING.
3. Sufficient: tickplane, as the ACL user over mutual TLS with REDIS_CLUSTER_NODES and
   TP_ACK_REPLICAS=1, takes two tp_sim runs with a restart between (the restore path, SCAN on
   every master); in the second, a master is frozen past REDIS_COMMAND_TIMEOUT (the fence,
   CLIENT KILL). Every frame is acked, both runs exit 0, no ACL log has a denial and the only
   error replies were the ASK redirections.
4. Least: the commands the masters counted from the start of tickplane's runs (INFO
   commandstats; the replicas' REPLCONF ACKs, the replication user's, left out) equal the
   tickplane user's grant; PSYNC and REPLCONF, the replication user's, were counted on the
   masters while the replicas synced.
5. The tickplane user is refused cluster administration, the replication user any key.

Exit status 0 when every check passed, 1 otherwise; each check prints "ok:" or "FAIL:".
"""
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import redis

import test_redis_acl as acl
from test_redis_acl import cert, check, free_port

MASTERS = 3


class Node:
    """One cluster node: redis-server with redis.conf + redis-cluster.conf."""

    def __init__(self, a, work, i, aclfile, masterauth):
        self.a, self.port, self.bus = a, free_port(), free_port()
        self.dir = os.path.join(work, f"node-{i}")
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "redis.log")
        conf = os.path.join(a.deploy, "redis")
        args = [shutil.which("redis-server"), os.path.join(conf, "redis.conf"),
                "--include", os.path.join(conf, "redis-cluster.conf"), "--include", masterauth,
                "--bind", "127.0.0.1", "--tls-port", str(self.port),
                "--cluster-port", str(self.bus),
                "--tls-cert-file", cert(a, "server.crt"), "--tls-key-file", cert(a, "server.key"),
                "--tls-client-cert-file", cert(a, "client.crt"),
                "--tls-client-key-file", cert(a, "client.key"),
                "--tls-ca-cert-file", cert(a, "ca.crt"), "--aclfile", aclfile,
                "--dir", self.dir, "--logfile", self.log]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def client(self, user, password):
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True,
                           ssl_ca_certs=cert(self.a, "ca.crt"), ssl_cert_reqs="required",
                           ssl_certfile=cert(self.a, "client.crt"),
                           ssl_keyfile=cert(self.a, "client.key"), username=user,
                           password=password, decode_responses=True, socket_timeout=10)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except (redis.exceptions.RedisError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out: {what}")


def create_cluster(a, nodes, admin_password):
    env = dict(os.environ, REDISCLI_AUTH=admin_password)
    r = subprocess.run([shutil.which("redis-cli"), "--tls", "--cacert", cert(a, "ca.crt"),
                        "--cert", cert(a, "client.crt"), "--key", cert(a, "client.key"),
                        "--user", "operator", "--cluster", "create",
                        *[f"127.0.0.1:{n.port}" for n in nodes], "--cluster-replicas", "1",
                        "--cluster-yes"], capture_output=True, text=True, env=env, timeout=120)
    if "[OK] All 16384 slots covered" not in r.stdout:
        raise SystemExit(f"redis-cli --cluster create: {r.stdout[-800:]} {r.stderr[-400:]}")


def masters_of(admins):
    return [c for c in admins if c.info("replication")["role"] == "master"]


def synced(admins):
    """cluster_state:ok everywhere, and every master has its replica online."""
    if not all(c.cluster("info")["cluster_state"] == "ok" for c in admins):
        return False
    masters = masters_of(admins)
    return len(masters) == MASTERS and all(
        c.info("replication").get("slave0", {}).get("state") == "online" for c in masters)


def leave_slot_migrating(admins, key):
    """key's slot: MIGRATING on its master, IMPORTING on the next master. Returns both."""
    slot = admins[0].cluster("keyslot", key)
    masters = masters_of(admins)
    src = next(c for c in masters if owns(c, slot))
    dst = next(c for c in masters if c is not src)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.cluster("myid"))
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.cluster("myid"))
    return src, dst


def owns(c, slot):
    me = c.cluster("myid")
    return any(lo <= slot <= hi and nodes[0][2] == me
               for lo, hi, *nodes in c.execute_command("CLUSTER", "SLOTS"))


def commandstats(clients):
    used = {}
    for c in clients:
        for k, v in c.info("commandstats").items():
            name = k[len("cmdstat_"):]
            used[name] = used.get(name, 0) + v["calls"]
    return used


def errorstats(clients):
    errs = {}
    for c in clients:
        for k, v in c.info("errorstats").items():
            # "errorstat_ASK:count=5": redis-py leaves a lone key=value unparsed.
            n = v["count"] if isinstance(v, dict) else int(str(v).rpartition("=")[2])
            errs[k[len("errorstat_"):]] = errs.get(k[len("errorstat_"):], 0) + n
    return errs


def check_least(admins, masters):
    used = commandstats(masters)
    for own in ("config|resetstat", "auth", "replconf", "psync"):
        used.pop(own, None)  # the test's reset; AUTH needs no permission; the replicas'
    granted = acl.granted_commands(admins[0])
    check("every granted command was used (least)", granted <= set(used),
          sorted(granted - set(used)))
    check("every used command is granted (sufficient)", set(used) <= granted,
          sorted(set(used) - granted))
    print(f"   commands: {' '.join(sorted(used))}")
    errs = errorstats(masters)
    check("the only error replies were ASK redirections", set(errs) <= {"ASK"}, errs)
    check("... and there were some", errs.get("ASK", 0) > 0, errs)
    logs = {c.connection_pool.connection_kwargs["port"]: c.execute_command("ACL", "LOG")
            for c in admins}
    check("no ACL log has a denial", not any(logs.values()), logs)


def expect_refused(node, user, password, commands):
    for cmd in commands:
        what = f"{user} user: {' '.join(cmd)} refused"
        try:
            node.client(user, password).execute_command(*cmd)
            check(what, False, "it was allowed")
        except redis.exceptions.NoPermissionError:
            check(what, True)


def check_refused(nodes, password, replication_password):
    expect_refused(nodes[0], "tickplane", password, (
        ("CLUSTER", "NODES"), ("CLUSTER", "SETSLOT", "0", "STABLE"), ("CLUSTER", "FAILOVER"),
        ("CLUSTER", "RESET"), ("CLUSTER", "FORGET", "x"), ("CLUSTER", "SLOTS"), ("READONLY",),
        ("MIGRATE", "h", "1", "k", "0", "1"), ("PSYNC", "?", "-1")))
    expect_refused(nodes[0], "replication", replication_password, (
        ("GET", "tp:evgen"), ("HSET", "tp:x", "f", "v"), ("CLUSTER", "SHARDS"),
        ("PUBLISH", "tp:events", "x")))


def check_state(masters, dst):
    keys = sum(c.dbsize() for c in masters)
    check("tickplane wrote keys on the masters", keys > 100, keys)
    check("every master holds some", all(c.dbsize() > 0 for c in masters),
          [c.dbsize() for c in masters])
    # The migrating slot's keys were written where ASK sent them.
    dst.execute_command("ASKING")
    check("tp:px:SYM0000 is on the node ASK named", dst.exists("tp:px:SYM0000") == 1)


def main():
    a = acl.parse_args()
    work = tempfile.mkdtemp(prefix="tp-acl-cluster-")
    password, admin_password, replication_password = (secrets.token_hex(24) for _ in range(3))
    aclfile = acl.render_acl(a, work, password, admin_password, TICKPLANE_REDIS_CLUSTER="yes",
                             TICKPLANE_REDIS_REPLICATION_PASSWORD=replication_password,
                             TICKPLANE_REDIS_OPERATOR_PASSWORD=admin_password)
    masterauth = os.path.join(work, "masterauth.conf")
    with open(os.open(masterauth, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(f'masterauth "{replication_password}"\n')
    nodes = [Node(a, work, i, aclfile, masterauth) for i in range(2 * MASTERS)]
    keep = True
    try:
        admins = [n.client("operator", admin_password) for n in nodes]
        for n, c in zip(nodes, admins):
            wait_for(c.ping, 20, f"node {n.port} starts with deploy/redis")
        create_cluster(a, nodes, admin_password)
        wait_for(lambda: synced(admins), 60, "the replicas sync as the replication user")
        masters = masters_of(admins)
        if admins[0] not in masters:  # redis-cli makes the first nodes masters
            raise SystemExit("node 0, the one the test freezes, is not a master")
        synced_with = commandstats(masters)
        check("the replicas synced with PSYNC and REPLCONF as the replication user",
              synced_with.get("psync", 0) > 0 and synced_with.get("replconf", 0) > 0,
              synced_with)
        src, dst = leave_slot_migrating(admins, "tp:px:SYM0000")
        for c in admins:
            c.config_resetstat()
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in nodes[:MASTERS])
        cluster = dict(REDIS_CLUSTER_NODES=seeds, TP_ACK_REPLICAS="1")
        acl.run_tickplane_and_sim(a, work, nodes[0], password, 1, 21, **cluster)
        # Frozen past REDIS_COMMAND_TIMEOUT, not past cluster-node-timeout: tickplane fences
        # its previous connections to the node (CLIENT KILL), and no failover starts.
        acl.run_tickplane_and_sim(a, work, nodes[0], password, 2, 22, freeze_redis=True,
                                  **cluster)
        check_least(admins, masters)
        check_state(masters, dst)
        check_refused(nodes, password, replication_password)
        keep = acl.failures > 0
    finally:
        for n in nodes:
            n.stop()
        if keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work)
    print(f"{acl.failures} failed")
    return 1 if acl.failures else 0


if __name__ == "__main__":
    sys.exit(main())
