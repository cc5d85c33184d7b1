#!/usr/bin/python3
"""event_consumer.py: read tickplane's durable TradingEvents (TP_EVENT_STREAM=on) from the
accounts' streams in a consumer group, record each event once in a ledger, and ack it. The
same consumer as event_consumer.c, for teams that work in Python (Debian's python3-redis and
python3-flatbuffers; the TradingEvent classes come from `flatc --python schemas/*.fbs`, which
the build writes to build/<dir>/schemas/python: put that on PYTHONPATH).

  REDIS_URL=rediss://redis.internal:6380 REDIS_TLS_CA_PATH=/etc/redis/ca.crt \\
  event_consumer.py GROUP CONSUMER IDLE_EXIT_MS ACCOUNT...

Each event is read from <prefix>{ACCOUNT}:events (TP_KEY_PREFIX, default "tp:") and written to
the hash <prefix>GROUP:{ACCOUNT}:ledger, field = event id, value = "kind stream seq order_id
status", by one script that also XACKs the entry: record and ack happen together or not at
all. An event id seen before (tickplane appends a unit's entry again when it sent the unit
again after a lost reply) is recorded once (HSETNX). Started again under the same CONSUMER
name after a crash, it first reads the entries it was given and had not acked (id 0), then new
ones (>). It polls every 20 ms when there is nothing new, exits 0 after IDLE_EXIT_MS without a
new entry (0: until SIGINT/SIGTERM) printing "applied=N duplicates=M", 1 when Redis failed a
request it cannot retry or an entry is no FlatBuffers TradingEvent (left unacked: the consumer
reads TP_EVENT_FORMAT=flatbuffers, the default), 2 on bad arguments. An entry trimmed away
before it was read again is acked with no record. The connection settings are the service's:
REDIS_URL or REDIS_HOST/REDIS_PORT, REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS_ENABLED,
REDIS_TLS_CA_PATH, REDIS_TLS_CERT_PATH, REDIS_TLS_KEY_PATH, REDIS_TLS_SERVER_NAME.
"""
import os
import signal
import sys
import time

import redis
from tp.wire.TradingEvent import TradingEvent

POLL_S = 0.02
READ_COUNT = 200
# ARGV[3] "" (an entry trimmed away): acked only. 1 recorded, 0 a duplicate, -1 trimmed.
RECORD = """
local n = -1
if ARGV[3] ~= '' then n = redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4]) end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return n
"""


class Unreadable(Exception):
    """An entry that is no FlatBuffers TradingEvent: not acked (TP_EVENT_FORMAT=json?)."""


def connect():
    env = os.environ.get
    tls = env("REDIS_TLS_ENABLED", "false").lower() in ("1", "true", "yes", "on")
    kw = dict(username=env("REDIS_USERNAME"), password=env("REDIS_PASSWORD"),
              socket_timeout=5, socket_connect_timeout=5)
    if tls or env("REDIS_URL", "").startswith("rediss://"):
        kw.update(ssl_ca_certs=env("REDIS_TLS_CA_PATH"), ssl_certfile=env("REDIS_TLS_CERT_PATH"),
                  ssl_keyfile=env("REDIS_TLS_KEY_PATH"), ssl_cert_reqs="required")
        # redis-py 4.3 checks the name of the host it connects to and no other: with
        # REDIS_TLS_SERVER_NAME the chain is verified, the name is not.
        kw["ssl_check_hostname"] = env("REDIS_TLS_SERVER_NAME") is None
    if env("REDIS_URL"):
        return redis.Redis.from_url(env("REDIS_URL"), **kw)
    if tls:
        kw["ssl"] = True
    return redis.Redis(host=env("REDIS_HOST", "127.0.0.1"), port=int(env("REDIS_PORT", "6379")),
                       **kw)


def describe(fields):
    """ "kind stream seq order_id status" of an entry, or None when it cannot be read."""
    data, kind = fields.get(b"event"), fields.get(b"kind")
    if data is None or kind is None or not TradingEvent.TradingEventBufferHasIdentifier(data, 0):
        return None
    e = TradingEvent.GetRootAs(data, 0)
    o = e.Order()
    oid = o.OrderId().decode() if o is not None and o.OrderId() is not None else ""
    status = o.Status() if o is not None else 0
    return f"{kind.decode()} {e.StreamId()} {e.Seq()} {oid} {status}"


class Consumer:
    def __init__(self, r, prefix, group, consumer, accounts):
        self.r, self.group, self.consumer = r, group, consumer
        self.prefix = prefix
        self.record = r.register_script(RECORD)
        self.accounts = accounts
        self.pending_read = {a: False for a in accounts}  # our unacked entries were read
        self.applied = self.duplicates = 0

    def key(self, acct):
        return f"{self.prefix}{{{acct}}}:events"

    def create_group(self, acct):
        """From the stream's start: a new group records every event the stream still holds."""
        try:
            self.r.xgroup_create(self.key(acct), self.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if not str(e).startswith("BUSYGROUP"):
                raise

    def read(self, acct):
        """Reads and records one batch; returns how many entries it held."""
        start = ">" if self.pending_read[acct] else "0"
        try:
            got = self.r.xreadgroup(self.group, self.consumer, {self.key(acct): start},
                                    count=READ_COUNT)
        except redis.ResponseError as e:
            if not str(e).startswith("NOGROUP"):
                raise
            self.create_group(acct)  # the stream or the group was deleted
            self.pending_read[acct] = False
            return 0
        entries = got[0][1] if got else []
        if not entries:
            self.pending_read[acct] = True  # none of ours is pending: on to new entries
            return 0
        for entry_id, fields in entries:
            self.record_entry(acct, entry_id, fields or {})
        return len(entries)

    def record_entry(self, acct, entry_id, fields):
        """Records and acks; an entry trimmed away (no fields) is acked with no record, one
        that does not read is not acked and stops the consumer (skipping it loses an event)."""
        line = describe(fields) if fields else ""
        if line is None or (fields and b"id" not in fields):
            raise Unreadable(f"{self.key(acct)}: entry {entry_id.decode()} is not a FlatBuffers "
                             "TradingEvent; not acked")
        eid = fields.get(b"id", b"")
        n = self.record(keys=[self.key(acct), f"{self.prefix}{self.group}:{{{acct}}}:ledger"],
                        args=[self.group, entry_id, eid, line])
        self.applied += n == 1
        self.duplicates += n == 0

    def run(self, idle_exit_s, stop):
        for acct in self.accounts:
            self.create_group(acct)
        last_new = time.monotonic()
        while not stop():
            try:
                n = sum(self.read(acct) for acct in self.accounts)
            except (redis.ConnectionError, redis.TimeoutError):
                # Lost with the connection: a read reply may have given us entries; read ours
                # again once Redis answers.
                self.pending_read = dict.fromkeys(self.accounts, False)
                n = 0
            if n:
                last_new = time.monotonic()
            elif idle_exit_s and time.monotonic() - last_new >= idle_exit_s:
                return
            else:
                time.sleep(POLL_S)


def main(argv):
    if len(argv) < 5 or not argv[3].isdigit() or any(c in argv[1] for c in "{}"):
        print(f"usage: {argv[0]} GROUP CONSUMER IDLE_EXIT_MS ACCOUNT...", file=sys.stderr)
        return 2
    group, consumer, idle_ms, accounts = argv[1], argv[2], int(argv[3]), argv[4:]
    if any(not a or len(a) > 64 or "{" in a or "}" in a for a in accounts):
        print("an account must be 1 to 64 characters without braces", file=sys.stderr)
        return 2
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(1))
    c = Consumer(connect(), os.environ.get("TP_KEY_PREFIX", "tp:"), group, consumer, accounts)
    try:
        c.run(idle_ms / 1000, lambda: bool(stopping))
    except redis.RedisError as e:
        print(f"redis: {e}", file=sys.stderr)
        return 1
    except Unreadable as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        print(f"applied={c.applied} duplicates={c.duplicates}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
