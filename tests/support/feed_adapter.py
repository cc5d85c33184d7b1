#!/usr/bin/python3
"""A market-data adapter and execution gateway in Python, for the feed tests.

Frames are encoded by Python's flatbuffers runtime with the code flatc generated
from schemas/*.fbs (put the build's schemas/python directory on PYTHONPATH), so
what tickplane decodes was written by code nobody here wrote. The content of
tick i and order j is a formula (tick_fields / order_fields below; UDP ticks use symbols UDP0..UDP9) that the C
test (tests/integration/test_feeds.c) recomputes on its side.

usage: feed_adapter.py --tcp PORT [--udp PORT] [--ticks N] [--orders M] [--udp-ticks K]
                       [--expect-ack SEQ] [--bad]
"""
import argparse
import socket
import struct
import sys
import time

import flatbuffers
from tp.wire import Body, FeedAck, Frame, OrderEvent, OrdType, Side, Tick

IDENT = b"TPF1"
TICK_STREAM, ORDER_STREAM, UDP_STREAM = 1, 2, 3
NSYM = 10
SCALE = 100_000_000
EPOCH_NS = 1_700_000_000_000_000_000


def tick_fields(i, prefix):
    bid = 100 * SCALE + i * 1000
    return dict(symbol=f"{prefix}{i % NSYM}", bid=bid, ask=bid + 500, bid_size=100 + i,
                ask_size=200 + i, last=bid + 250, last_size=i % 7 + 1,
                exchange_ts_ns=EPOCH_NS + i, sent_ns=i)


def order_fields(j):
    price = 50 * SCALE + j
    return dict(order_id=f"O{j}", cl_ord_id=f"C{j}", account=f"ACC{j % 3}",
                symbol=f"SYM{j % 5}", side=Side.Side.Buy if j % 2 == 0 else Side.Side.Sell,
                ord_type=OrdType.OrdType.Limit, price=price, quantity=(j + 1) * SCALE,
                exec_type=j % 16, ord_status=j % 15, last_qty=j * 10, last_px=price,
                exec_id=f"E{j}", transact_ts_ns=EPOCH_NS + j,
                text=f"t{j}" if j % 4 == 0 else None)


def frame(b, stream_id, seq, body_type, body):
    Frame.Start(b)
    Frame.AddStreamId(b, stream_id)
    Frame.AddSeq(b, seq)
    Frame.AddBodyType(b, body_type)
    if body is not None:
        Frame.AddBody(b, body)
    b.FinishSizePrefixed(Frame.End(b), IDENT)
    return bytes(b.Output())


def tick_frame(stream_id, seq, i, prefix="SYM"):
    t = tick_fields(i, prefix)
    b = flatbuffers.Builder(128)
    sym = b.CreateString(t["symbol"])
    Tick.Start(b)
    Tick.AddSymbol(b, sym)
    Tick.AddBid(b, t["bid"])
    Tick.AddAsk(b, t["ask"])
    Tick.AddBidSize(b, t["bid_size"])
    Tick.AddAskSize(b, t["ask_size"])
    Tick.AddLast(b, t["last"])
    Tick.AddLastSize(b, t["last_size"])
    Tick.AddExchangeTsNs(b, t["exchange_ts_ns"])
    Tick.AddSentNs(b, t["sent_ns"])
    return frame(b, stream_id, seq, Body.Body.Tick, Tick.End(b))


def order_frame(stream_id, seq, j):
    o = order_fields(j)
    b = flatbuffers.Builder(256)
    s = {k: b.CreateString(o[k]) for k in
         ("order_id", "cl_ord_id", "account", "symbol", "exec_id", "text") if o[k] is not None}
    OrderEvent.Start(b)
    OrderEvent.AddOrderId(b, s["order_id"])
    OrderEvent.AddClOrdId(b, s["cl_ord_id"])
    OrderEvent.AddAccount(b, s["account"])
    OrderEvent.AddSymbol(b, s["symbol"])
    OrderEvent.AddSide(b, o["side"])
    OrderEvent.AddOrdType(b, o["ord_type"])
    OrderEvent.AddPrice(b, o["price"])
    OrderEvent.AddQuantity(b, o["quantity"])
    OrderEvent.AddExecType(b, o["exec_type"])
    OrderEvent.AddOrdStatus(b, o["ord_status"])
    OrderEvent.AddLastQty(b, o["last_qty"])
    OrderEvent.AddLastPx(b, o["last_px"])
    OrderEvent.AddExecId(b, s["exec_id"])
    OrderEvent.AddTransactTsNs(b, o["transact_ts_ns"])
    if "text" in s:
        OrderEvent.AddText(b, s["text"])
    return frame(b, stream_id, seq, Body.Body.OrderEvent, OrderEvent.End(b))


def hang_up(sock, reader):
    """Closes a connection that reader (a thread) receives on. shutdown() wakes the reader with
    EOF, and the fd is closed only once it has returned: closed earlier, its number could go to
    the next fd this process opens (curl's stdout pipe, say) while the reader is about to
    poll() it, and a poll holds the file it polls, here the pipe's write end, so curl's output
    would not end until the poll timed out. Until then the socket itself stayed open too."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    reader.join()
    sock.close()


def split_frames(buf):
    """The bodies of the whole size-prefixed frames at the start of buf, and the bytes
    after them (the start of a frame still arriving)."""
    bodies, at = [], 0
    while len(buf) - at >= 4:
        (n,) = struct.unpack_from("<I", buf, at)
        if len(buf) - at < 4 + n:
            break
        bodies.append(buf[at + 4:at + 4 + n])
        at += 4 + n
    return bodies, buf[at:]


def parse_ack(body):
    """(stream_id, acked_seq) of a frame tickplane sent back; ValueError when it is not a
    FeedAck."""
    if not Frame.Frame.FrameBufferHasIdentifier(body, 0):
        raise ValueError("a frame from tickplane without the TPF1 identifier")
    f = Frame.Frame.GetRootAs(body, 0)
    if f.BodyType() != Body.Body.FeedAck:
        raise ValueError(f"tickplane sent body type {f.BodyType()}, expected FeedAck")
    ack = FeedAck.FeedAck()
    ack.Init(f.Body().Bytes, f.Body().Pos)
    return f.StreamId(), ack.AckedSeq()


def read_acks(sock, stream_id, want, timeout_s):
    """Reads FeedAck frames until stream_id is acked up to want; returns the highest seen."""
    sock.settimeout(timeout_s)
    buf, best = b"", 0
    deadline = time.monotonic() + timeout_s
    while best < want and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        bodies, buf = split_frames(buf + chunk)
        for body in bodies:
            try:
                sid, seq = parse_ack(body)
            except ValueError as e:
                sys.exit(str(e))
            if sid == stream_id:
                best = max(best, seq)
    return best


def send_bad(tcp_port, udp_port):
    """One connection per kind of bad stream, then bad datagrams."""
    good = tick_frame(9, 1, 0)
    b = flatbuffers.Builder(64)
    unknown = frame(b, 9, 2, 99, None)  # a union type this schema does not have
    wrong_ident = good[:8] + b"XXXX" + good[12:]  # prefix, root offset, then the identifier
    for payload in (unknown, wrong_ident):
        with socket.create_connection(("127.0.0.1", tcp_port)) as s:
            s.sendall(payload)
            s.settimeout(10)
            if s.recv(1) != b"":  # tickplane closes the connection
                sys.exit("expected the connection to be closed")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"\x01\x02", ("127.0.0.1", udp_port))                   # truncated
        u.sendto(good + b"\x00" * 8, ("127.0.0.1", udp_port))            # length
        u.sendto(order_frame(9, 3, 0), ("127.0.0.1", udp_port))          # unexpected
        u.sendto(good[:4] + b"\xff" * (len(good) - 4), ("127.0.0.1", udp_port))  # verify


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int, required=True)
    p.add_argument("--udp", type=int)
    p.add_argument("--ticks", type=int, default=0)
    p.add_argument("--orders", type=int, default=0)
    p.add_argument("--udp-ticks", type=int, default=0)
    p.add_argument("--expect-ack", type=int, default=0)
    p.add_argument("--bad", action="store_true")
    a = p.parse_args()

    if a.bad:
        send_bad(a.tcp, a.udp)
        return 0
    with socket.create_connection(("127.0.0.1", a.tcp)) as s:
        # All in one stream, written in odd-sized pieces so frames straddle reads.
        data = b"".join(tick_frame(TICK_STREAM, i + 1, i) for i in range(a.ticks))
        data += b"".join(order_frame(ORDER_STREAM, j + 1, j) for j in range(a.orders))
        for k in range(0, len(data), 997):
            s.sendall(data[k:k + 997])
        if a.udp_ticks:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                for i in range(a.udp_ticks):
                    u.sendto(tick_frame(UDP_STREAM, i + 1, i, "UDP"), ("127.0.0.1", a.udp))
                    if i % 50 == 49:
                        time.sleep(0.005)  # stay well inside the socket buffer
        if a.expect_ack:
            got = read_acks(s, ORDER_STREAM, a.expect_ack, 20)
            print(f"acked {got}")
            if got != a.expect_ack:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
