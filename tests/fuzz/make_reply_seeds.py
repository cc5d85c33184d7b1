#!/usr/bin/python3
"""Writes the committed seed corpora of fuzz_replies and fuzz_router (tests/fuzz/corpus/replies/
and corpus/router/): scripts for the fake Redis of fuzz_replies.c, in the input layout its
header comment describes. Each seed is a valid exchange or one edge case (corrupt, truncated,
wrong type, huge, split, unsolicited, late, refused handshake...; for the router: MOVED, ASK,
TRYAGAIN, CLUSTERDOWN, redirect loops), named after what it shows.

    /usr/bin/python3 tests/fuzz/make_reply_seeds.py [replies dir [router dir]]

Files of the directories whose names start with "seed-" are replaced; other files (inputs the
fuzzer found and someone committed) are left alone.
"""
import os
import sys

# byte 0
AUTH, ACL, SELECT = 0x01, 0x03, 0x04
RETRIES_1, RETRIES_2, RETRIES_4 = 0x08, 0x10, 0x18
NO_PREFIX, TTL, LATENCY = 0x20, 0x40, 0x80
# byte 1
HSETS, UNIT, PUBLISH, SCAN, HGETALL, MGET, GET_INCR_SET, SUB = (1 << i for i in range(8))
# ops
SEND, SLOW, CLOSE, HUGE, HELLO, STALL, ISSUE = 0, 2, 3, 4, 5, 6, 7
TO_SUB = 0x08
# ISSUE arguments (fuzz_replies.c issue())
I_HSET, I_UNIT, I_PUBLISH, I_SCAN, I_HGETALL, I_MGET, I_GET, I_INCR, I_SET, I_MSET = range(10)
I_PING, I_NOCB, I_ZRANGE, I_SUBSCRIBE, I_SMEMBERS, I_SADD = range(10, 16)


def bulk(s):
    b = s.encode() if isinstance(s, str) else s
    return b"$%d\r\n%s\r\n" % (len(b), b)


def arr(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


def integer(n):
    return b":%d\r\n" % n


OK = b"+OK\r\n"
QUEUED = b"+QUEUED\r\n"

# The correct answer to each ISSUE kind (and to byte 1's commands), without TTL.
R_HSET = integer(3)
R_UNIT = OK + QUEUED * 4 + arr(integer(0), integer(1), integer(0), integer(1))
R_PUBLISH = integer(1)
R_HGETALL = arr(bulk("bid"), bulk("101.25000000"), bulk("ask"), bulk("101.27000000"))
R_MGET = arr(bulk("1"), b"$-1\r\n", bulk("3"))
R_GET, R_INCR, R_SET = bulk("v"), integer(7), OK


def r_scan_done(prefix="tp:"):
    return arr(bulk("0"), arr(bulk(prefix + "px:AAPL"), bulk(prefix + "px:MSFT")))


def client_info(client_id=1, addr="127.0.0.1:40000"):
    """What Redis answers to CLIENT INFO (in the pool connection's handshake)."""
    return bulk("id=%d addr=%s laddr=127.0.0.1:6379 fd=9 name= db=0 cmd=client|info\n" %
                (client_id, addr))


INFO = client_info()


def send(data, to_sub=False):
    """SEND ops of at most 255 bytes each."""
    out = b""
    for i in range(0, len(data), 255):
        piece = data[i:i + 255]
        out += bytes([SEND | (TO_SUB if to_sub else 0), len(piece)]) + piece
    if not data:
        out += bytes([SEND, 0])
    return out


def slow(data, piece=1, to_sub=False):
    assert len(data) <= 255 and 1 <= piece <= 16
    return bytes([SLOW | (TO_SUB if to_sub else 0) | (piece - 1) << 4, len(data)]) + data


def op(kind, arg=0, to_sub=False):
    return bytes([kind | (TO_SUB if to_sub else 0) | arg << 4])


def huge(shape, size):
    return bytes([HUGE | shape << 4, size])


def hello(data):
    return bytes([HELLO, len(data)]) + data


def issue(what):
    return op(ISSUE, what)


def stall(ms):
    """STALL lasts 1 + A / 4 ms: 1 to 4 ms."""
    return op(STALL, min(15, max(0, (ms - 1) * 4)))


def seed(flags, cmds, script):
    return bytes([flags, cmds]) + script


ALL = HSETS | UNIT | PUBLISH | SCAN | HGETALL | MGET | GET_INCR_SET


def all_replies(prefix="tp:"):
    return (R_HSET * 3 + R_UNIT + R_PUBLISH + r_scan_done(prefix) + R_HGETALL + R_MGET + R_GET +
            R_INCR + R_SET)


ALL_REPLIES = all_replies()

SUB_CONFIRM = (arr(bulk("subscribe"), bulk("tp:ch"), integer(1)) +
               arr(bulk("psubscribe"), bulk("tp:p*"), integer(2)))

SEEDS = {
    # Valid exchanges.
    "valid-hset": seed(0, HSETS, send(R_HSET * 3)),
    "valid-all": seed(0, ALL, send(ALL_REPLIES)),
    "valid-all-auth-select": seed(AUTH | SELECT, ALL, send(ALL_REPLIES)),
    "valid-all-acl-latency": seed(ACL | LATENCY, ALL, send(ALL_REPLIES)),
    "valid-all-noprefix": seed(NO_PREFIX, ALL, send(all_replies(""))),
    "valid-ttl": seed(TTL, HSETS | GET_INCR_SET,
                      send((R_HSET + integer(1)) * 3 + R_GET + R_INCR + integer(1) + R_SET)),
    "valid-unit": seed(0, UNIT, send(R_UNIT)),
    "valid-unit-execabort": seed(0, UNIT, send(OK + QUEUED * 2 + b"-ERR unknown command\r\n" +
                                               QUEUED + b"-EXECABORT Transaction discarded\r\n")),
    "valid-unit-nil-exec": seed(0, UNIT, send(OK + QUEUED * 4 + b"*-1\r\n")),
    "valid-scan-pages": seed(0, SCAN, send(arr(bulk("17"), arr(bulk("tp:px:A")))) +
                             send(arr(bulk("0"), arr()))),
    "valid-mset": seed(0, 0, issue(I_MSET) + send(OK)),
    "valid-zrange-smembers": seed(0, 0, issue(I_ZRANGE) + issue(I_SMEMBERS) + issue(I_SADD) +
                                  send(arr(bulk("m"), bulk("1.5")) + arr(bulk("ORD-1")) +
                                       integer(2))),
    "valid-subscriber": seed(0, SUB | HSETS, send(SUB_CONFIRM, True) + send(R_HSET * 3) + send(
        arr(bulk("message"), bulk("tp:ch"), bulk("hello")) +
        arr(bulk("pmessage"), bulk("tp:p*"), bulk("tp:px"), bulk(b"\x00bin")), True)),
    "sub-more-channels": seed(0, SUB, issue(I_SUBSCRIBE) + issue(I_SUBSCRIBE) + send(
        SUB_CONFIRM + arr(bulk("subscribe"), bulk("tp:ch2"), integer(3)), True) + send(
        arr(bulk("message"), bulk("tp:nope"), bulk("x")) + arr(bulk("message"), bulk("tp:ch")) +
        arr(bulk("pmessage"), bulk("tp:ch"), bulk("a"), bulk("b")) + b"-ERR wrong\r\n" +
        integer(5), True)),
    "sub-corrupt": seed(0, SUB, send(SUB_CONFIRM[:20], True) + op(CLOSE, to_sub=True) +
                        send(SUB_CONFIRM + b"*3\r\n$7\r\nmessage\r\n$5\r\ntp:ch\r\n$99\r\nx",
                             True) + op(CLOSE, to_sub=True)),
    # Errors and wrong types.
    "error-replies": seed(0, ALL, send(b"-ERR a\r\n" * 3 + b"-WRONGTYPE x\r\n" * 12)),
    "wrong-types": seed(0, ALL, send(b"+OK\r\n" * 3 + integer(1) * 6 + b"+OK\r\n" + integer(1) +
                                     b"$-1\r\n" + integer(4) + arr() + b"*-1\r\n" + b"$-1\r\n")),
    "mget-wrong-shapes": seed(0, MGET, send(arr(integer(1), arr(), b"+OK\r\n")) + issue(I_MGET) +
                              send(arr(bulk("1"))) + issue(I_MGET) + send(b"+OK\r\n")),
    "scan-malformed": seed(0, SCAN, send(arr(bulk("12345678901234567890123456789"), arr())) +
                           issue(I_SCAN) + send(arr(integer(0), arr())) + issue(I_SCAN) +
                           send(arr(bulk("5"), arr(integer(1), b"$-1\r\n", arr())) +
                                b"-ERR no\r\n")),
    # Corrupt RESP.
    "corrupt-type-byte": seed(0, HSETS, send(b"?what\r\n")),
    "corrupt-bulk-overrun": seed(0, GET_INCR_SET, send(b"$3\r\nabcdef\r\n:1\r\n+OK\r\n")),
    "corrupt-bad-integer": seed(0, GET_INCR_SET, send(b":12a\r\n")),
    "corrupt-negative-count": seed(0, HGETALL, send(b"*-5\r\n")),
    "corrupt-negative-bulk": seed(0, HGETALL, send(b"$-2\r\n")),
    "corrupt-lf-only": seed(0, HSETS, send(b"+OK\n:1\n:2\r\n:3\r\n")),
    "corrupt-binary": seed(0, ALL, send(bytes(range(256))[:200])),
    "corrupt-then-recover": seed(RETRIES_4, HSETS, send(b":1\r\n*x\r\n") + send(R_HSET * 2)),
    # Truncation: the connection closed mid-reply, then replay on the next one.
    "truncated-array": seed(0, HGETALL, send(R_HGETALL[:25]) + op(CLOSE) + send(R_HGETALL)),
    "truncated-bulk": seed(0, GET_INCR_SET, send(b"$10\r\nabc") + op(CLOSE) +
                           send(R_GET + R_INCR + R_SET)),
    "truncated-unit": seed(0, UNIT | PUBLISH, send(R_UNIT[:30]) + op(CLOSE) +
                           send(R_UNIT + R_PUBLISH)),
    "truncated-down": seed(RETRIES_1, ALL, send(R_HSET) + op(CLOSE) + issue(I_GET)),
    "close-before-reply": seed(RETRIES_2, HSETS, op(CLOSE) + op(CLOSE) + send(R_HSET * 3)),
    # Huge sizes.
    "huge-bulk": seed(0, GET_INCR_SET, huge(0, 255) + send(R_INCR + R_SET)),
    "huge-array": seed(0, HGETALL, huge(1, 255)),
    "huge-array-count": seed(0, HGETALL, huge(2 | 4, 0) + send(integer(1) * 3)),
    "huge-bulk-length": seed(0, GET_INCR_SET, huge(2, 4) + send(b"abc")),
    "huge-numbers": seed(0, ALL, huge(2 | 4, 14) + op(CLOSE) + huge(2, 15) + op(CLOSE) +
                         huge(2 | 4, 10) + huge(2, 10)),
    "nested-deep": seed(0, HGETALL | GET_INCR_SET, huge(3, 7) + huge(3, 9) + send(R_INCR)),
    # Split points.
    "split-every-byte": seed(0, HGETALL | MGET, slow(R_HGETALL + R_MGET[:60], 1)),
    "split-threes": seed(0, UNIT, slow(R_UNIT, 3)),
    # Unsolicited and extra replies.
    "unsolicited": seed(0, 0, send(integer(1))),
    "extra-reply": seed(0, HSETS, send(R_HSET * 4) + issue(I_HSET) + send(R_HSET)),
    "reply-before-command": seed(0, 0, issue(I_GET) + send(R_GET + R_GET)),
    # Late replies: command timeouts, connect timeouts.
    "timeout-then-late": seed(0, GET_INCR_SET, stall(4) + send(R_GET + R_INCR + R_SET)),
    "timeout-unit": seed(0, UNIT | HSETS, send(R_HSET) + stall(4) + send(R_HSET * 2 + R_UNIT)),
    "timeout-down": seed(RETRIES_1, HSETS, stall(4) + stall(4) + issue(I_GET)),
    # The handshake answered wrongly.
    # (handshake.c's handshake today: [AUTH] [SELECT] PING [CLIENT KILL] CLIENT INFO, the CLIENT
    # commands on the pool's connection only; the fake Redis follows whatever order it sends)
    "hello-noauth": seed(0, HSETS, hello(b"-NOAUTH Authentication required.\r\n" + INFO) +
                         send(R_HSET * 3)),
    "hello-auth-refused": seed(ACL, HSETS, hello(b"-WRONGPASS invalid\r\n+PONG\r\n" + INFO) +
                               send(R_HSET * 3)),
    "hello-select-refused": seed(SELECT, GET_INCR_SET, hello(b"-ERR DB index out of range\r\n")),
    "hello-wrong-types": seed(AUTH | SELECT, HSETS, hello(b":1\r\n$2\r\nOK\r\n*0\r\n") +
                              hello(OK + OK + b"+PONG\r\n" + INFO + b"+EXTRA\r\n") +
                              send(R_HSET * 3)),
    "hello-silent": seed(RETRIES_2, HSETS, hello(b"+PONG") + stall(4) + stall(4) +
                         send(R_HSET * 3)),
    "hello-client-info-refused": seed(0, HSETS, hello(b"+PONG\r\n-NOPERM no CLIENT for you\r\n") +
                                      send(R_HSET) + op(CLOSE) + send(R_HSET * 3)),
    "hello-client-info-odd": seed(0, HSETS | UNIT, hello(
        b"+PONG\r\n" + bulk("addr=1.2.3.4:5 id=99999999999999999999999")) + send(R_HSET) +
        op(CLOSE) + hello(b"+PONG\r\n" + bulk("xid=3 id= addr=" + "a" * 70 + " id=-4")) +
        send(R_HSET) + op(CLOSE) + hello(b"+PONG\r\n" + bulk("id=7 addr=127.0.0.1:1")) +
        send(R_HSET) + op(CLOSE) + send(R_HSET * 3 + R_UNIT)),
    "fence-refused": seed(AUTH, HSETS, send(R_HSET) + op(CLOSE) +
                          hello(OK + b"+PONG\r\n-NOPERM no\r\n" + INFO) + send(R_HSET * 2)),
    "fence-wrong-type": seed(0, HSETS, send(R_HSET) + op(CLOSE) +
                             hello(b"+PONG\r\n+OK\r\n" + INFO) + send(R_HSET * 2)),
    # Backpressure: more units than REDIS_MAX_QUEUED_BYTES holds, then the replies.
    "backpressure": seed(0, UNIT, issue(I_UNIT) * 16 + send(R_UNIT * 17) + issue(I_NOCB) +
                         issue(I_PING) + send(OK + b"+PONG\r\n")),
}


# fuzz_router: '@' in SEND bytes is the fake node's address.
MOVED = b"-MOVED 1234 @\r\n"
ROUTER_SEEDS = {
    "valid-all": seed(0, ALL, send(ALL_REPLIES)),
    "valid-sub": seed(0, SUB | HSETS, send(SUB_CONFIRM, True) + send(R_HSET * 3)),
    # The first HSET is redirected to the node itself; the next two drain into the hold, then
    # go again one at a time.
    "moved-self": seed(0, HSETS, send(MOVED + MOVED * 2) + send(R_HSET) + send(R_HSET * 2)),
    "moved-then-ran": seed(0, HSETS, send(MOVED + R_HSET * 2) + send(R_HSET)),
    "moved-unit": seed(0, UNIT | HSETS, send(R_HSET + MOVED + R_HSET * 2 + OK + MOVED + QUEUED * 3 +
                                             b"-EXECABORT Transaction discarded because of "
                                             b"previous errors.\r\n") + send(R_UNIT)),
    "ask-self": seed(0, UNIT, send(OK + b"-ASK 99 @\r\n" + QUEUED * 3 +
                                   b"-EXECABORT Transaction discarded\r\n") +
                     send(OK + R_UNIT)),
    "moved-away": seed(RETRIES_1, HSETS, send(b"-MOVED 5 127.0.0.1:1\r\n" + R_HSET * 2) +
                       stall(4) + send(R_HSET)),
    "moved-loop": seed(0, HSETS, send(MOVED * 3) + send(MOVED) * 20),
    "tryagain": seed(RETRIES_2, HSETS | MGET,
                     send(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n" +
                          R_HSET * 2 + R_MGET) + stall(2) + send(R_HSET)),
    "clusterdown": seed(RETRIES_4, UNIT | PUBLISH,
                        send(b"-CLUSTERDOWN The cluster is down\r\n" + R_PUBLISH) + stall(3) +
                        send(b"-CLUSTERDOWN The cluster is down\r\n") + stall(3) +
                        send(R_UNIT)),
    "redirect-then-close": seed(0, HSETS | UNIT, send(MOVED) + op(CLOSE) + send(R_HSET * 3 + R_UNIT)),
    "scan-masters": seed(0, SCAN, send(arr(bulk("17"), arr(bulk("tp:px:A")))) +
                         send(arr(bulk("0"), arr()))),
}


def write(out, seeds):
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.startswith("seed-"):
            os.remove(os.path.join(out, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    print(len(seeds), "seeds in", out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "replies"), SEEDS)
    write(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "corpus", "router"),
          ROUTER_SEEDS)


if __name__ == "__main__":
    main()
