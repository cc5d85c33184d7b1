#!/usr/bin/python3
"""A loopback TCP proxy for the fault tests: it sits between tickplane and Redis,
forwards bytes both ways (TLS passes through untouched) and, on request, misbehaves
the way networks and load balancers do.

    proxy = Proxy(upstream_port)       # listens on 127.0.0.1:<proxy.port>
    proxy.set(gate="refuse")           # new connections accepted and closed at once
    proxy.set(down_delay_s=0.2)        # every chunk from Redis held 200 ms
    proxy.set(up_delay_s=1.5)          # every chunk to Redis held 1.5 s (a late path)
    proxy.set(stall_handshake=3)       # the next 3 connections never hear from Redis
    proxy.cut_all()                    # every connection reset (RST), both sides
    proxy.set(cut_mid_reply=2)         # the next 2 chunks from Redis: half forwarded, then RST
    proxy.set(corrupt_next=1)          # one byte of the next chunk from Redis flipped
    proxy.close()

Python threads, one per direction and connection: the traffic of one tickplane is a
few MB/s, well within what blocking sockets in Python move. Standalone, for trying a
fault by hand: tcp_proxy.py LISTEN_PORT UPSTREAM_PORT (forwards until interrupted).
"""
import random
import socket
import struct
import sys
import threading
import time

CHUNK = 65536


def _shut(sock, reset):
    """Wakes a thread blocked in recv() on sock; close() alone would not. With reset, the
    close that follows sends an RST (SO_LINGER 0), as a crashed peer or a middlebox would,
    and no FIN goes before it."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _reset(sock):
    """Closes a socket no thread uses with an RST."""
    _shut(sock, reset=True)
    sock.close()


class _Link:
    """One proxied connection: client <-> upstream, a pump thread per direction. Its sockets
    are closed only once both pumps have returned: closed while a pump may still be about to
    use one, the freed fd number could go to the next socket or pipe this process opens, and
    the pump would read or poll that instead (a poll holds the file it polls)."""

    def __init__(self, proxy, client, upstream, stalled):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.stalled = stalled  # Redis's bytes are read and thrown away
        self.closed = False
        self.pumps = 2  # running
        self.lock = threading.Lock()

    def start(self):
        for pump in (self._pump_up, self._pump_down):
            threading.Thread(target=self._run, args=(pump,), daemon=True).start()

    def _run(self, pump):
        try:
            pump()
        finally:
            self.close(reset=False)  # ends the other direction too
            with self.lock:
                self.pumps -= 1
                last = self.pumps == 0
            if last:
                self.client.close()  # sends the RST when close(reset=True) came first
                self.upstream.close()
                self.proxy._forget(self)

    def _pump_up(self):
        """tickplane -> Redis. What was read before tickplane closed its end still
        goes out, after the delay: what a slow network path delivers late."""
        try:
            while not self.closed:
                data = self.client.recv(CHUNK)
                if not data:
                    break
                if self.proxy.up_delay_s:
                    time.sleep(self.proxy.up_delay_s)
                    self.proxy._count("delayed_up")
                self.upstream.sendall(data)
        except OSError:
            pass

    def _pump_down(self):
        """Redis -> tickplane. A tickplane that left stops only this direction: the
        other one still drains what it holds."""
        while not self.closed:
            try:
                data = self.upstream.recv(CHUNK)
            except OSError:
                break
            if not data:
                break
            try:
                if not self._forward_down(self.client, data):
                    return
            except OSError:
                return

    def _forward_down(self, dst, data):
        """Redis -> tickplane, through the faults; False when the link was cut."""
        if self.stalled:
            return True
        fault = self.proxy._take_down_fault()
        if fault == "cut":
            dst.sendall(data[:len(data) // 2])
            self.close(reset=True)
            return False
        if fault == "corrupt":
            i = random.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
        if self.proxy.down_delay_s:
            time.sleep(self.proxy.down_delay_s)
        dst.sendall(data)
        return True

    def close(self, reset):
        """Ends both directions: shutdown wakes the pumps, and the last to return closes the
        sockets (_run), with an RST when reset."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            _shut(s, reset)


class Proxy:
    def __init__(self, upstream_port, listen_port=0, host="127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.gate = "open"  # "open" | "refuse"
        self.down_delay_s = self.up_delay_s = 0.0
        self.stall_handshake = 0
        self.cut_mid_reply = 0
        self.corrupt_next = 0
        self.stats = dict(accepted=0, refused=0, stalled=0, cut_mid_reply=0, corrupted=0,
                          reset=0, upstream_failed=0, delayed_up=0)
        self.links = set()
        self.lock = threading.Lock()
        self.listener = socket.create_server((host, listen_port))
        self.port = self.listener.getsockname()[1]
        self.running = True
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def set(self, **kw):
        with self.lock:
            for k, v in kw.items():
                if not hasattr(self, k) or k in ("upstream", "links", "lock", "stats"):
                    raise AttributeError(k)
                setattr(self, k, v)

    def _count(self, what, n=1):
        with self.lock:
            self.stats[what] += n

    def _take_down_fault(self):
        with self.lock:
            if self.cut_mid_reply > 0:
                self.cut_mid_reply -= 1
                self.stats["cut_mid_reply"] += 1
                return "cut"
            if self.corrupt_next > 0:
                self.corrupt_next -= 1
                self.stats["corrupted"] += 1
                return "corrupt"
        return None

    def _accept(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refuse = self.gate == "refuse"
                stalled = self.stall_handshake > 0
                if stalled:
                    self.stall_handshake -= 1
            if refuse:
                self._count("refused")
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._count("upstream_failed")
                _reset(client)
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, upstream, stalled)
            with self.lock:
                self.stats["accepted"] += 1
                self.stats["stalled"] += stalled
                self.links.add(link)  # before its threads run: they may forget it at once
            link.start()

    def _forget(self, link):
        with self.lock:
            self.links.discard(link)

    def connections(self):
        with self.lock:
            return len(self.links)

    def cut_all(self):
        """Every open connection reset at once: a middlebox that lost its state."""
        with self.lock:
            links = list(self.links)
        for link in links:
            link.close(reset=True)
        self._count("reset", len(links))
        return len(links)

    def close(self):
        self.running = False
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
        except OSError:
            pass
        self.acceptor.join()  # before the close frees the fd number (see _Link)
        self.listener.close()
        self.cut_all()


def main():
    if len(sys.argv) != 3:
        print("usage: tcp_proxy.py LISTEN_PORT UPSTREAM_PORT", file=sys.stderr)
        return 2
    p = Proxy(int(sys.argv[2]), listen_port=int(sys.argv[1]))
    print(f"proxy 127.0.0.1:{p.port} -> 127.0.0.1:{sys.argv[2]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        p.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
