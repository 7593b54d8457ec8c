"""Two TCP layers over an in-memory link: a discrete-event simulation on a virtual clock.

Each direction of the link is a bottleneck of ``bandwidth`` bits/s with a drop-tail queue
of ``queue`` bytes, a one-way propagation ``delay`` and a seeded fault model applied per
segment: ``loss`` (dropped), ``dup`` (delivered twice), ``reorder`` (held back by an extra
1-3 delays so later segments overtake it), ``corrupt`` (one byte flipped; the receiver's
checksum must catch it). Everything is a pure function of the seed (smoltcp's netsim.rs).
"""

from __future__ import annotations

import hashlib
import heapq
import random

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.tcp import TcpConfig, TcpLayer

IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])
IP_OVERHEAD = 20


class Direction:
    def __init__(self, rng: random.Random, *, bandwidth: float, delay: int, queue: int,
                 loss=0.0, dup=0.0, reorder=0.0, corrupt=0.0):
        self.rng = rng
        self.bandwidth = bandwidth
        self.delay = delay
        self.queue = queue
        self.loss, self.dup, self.reorder, self.corrupt = loss, dup, reorder, corrupt
        self.busy_until = 0
        self.sent = self.dropped = self.queue_drops = self.corrupted = 0

    def schedule(self, now: int, size: int) -> list[tuple[int, bool]]:
        """Arrival times (and whether to corrupt) for one segment handed to the link."""
        self.sent += 1
        start = max(now, self.busy_until)
        backlog_bytes = (start - now) * self.bandwidth / 8e6
        if backlog_bytes > self.queue:
            self.queue_drops += 1
            return []
        tx = int((size + IP_OVERHEAD) * 8e6 / self.bandwidth)
        self.busy_until = start + tx
        rng = self.rng
        if rng.random() < self.loss:
            self.dropped += 1
            return []
        arrive = start + tx + self.delay
        if rng.random() < self.reorder:
            arrive += self.delay * rng.randint(1, 3)
        out = [(arrive, rng.random() < self.corrupt)]
        if rng.random() < self.dup:
            out.append((arrive + rng.randint(0, self.delay), False))
        return out


class NetSim:
    def __init__(self, seed: int = 1, *, bandwidth: float = 100e6, delay: int = 10_000,
                 queue: int = 256 * 1024, mtu: int = 1500, buffers: int = 512 * 1024,
                 congctl: str = "newreno", faults: dict | None = None, **cfg):
        self.now = 0
        self._events: list = []
        self._n = 0
        self.rng = random.Random(seed)
        # Fixed buffers unless a test asks for autosizing (the throughput snapshot is
        # a function of the buffer size).
        conf = dict(sendspace=buffers, recvspace=buffers, congctl=congctl, msl=1_000_000,
                    recvbuf_auto=False, sendbuf_auto=False)
        conf.update(cfg)
        config = TcpConfig(**conf)
        faults = faults or {}
        self.links = {
            IP_B: Direction(random.Random(seed * 7 + 1), bandwidth=bandwidth, delay=delay,
                            queue=queue, **faults),
            IP_A: Direction(random.Random(seed * 7 + 2), bandwidth=bandwidth, delay=delay,
                            queue=queue, **faults),
        }
        self.a = TcpLayer(lambda s, d, seg: self._send(s, d, seg), random.Random(seed * 7 + 3),
                          config=config, source_address=lambda dst: IP_A,
                          route_mtu=lambda dst: mtu)
        self.b = TcpLayer(lambda s, d, seg: self._send(s, d, seg), random.Random(seed * 7 + 4),
                          config=config, source_address=lambda dst: IP_B,
                          route_mtu=lambda dst: mtu)
        self.layers = {IP_A: self.a, IP_B: self.b}
        self.max_segment = 0
        self.void = 0

    def _send(self, src: bytes, dst: bytes, seg: bytes) -> None:
        self.max_segment = max(self.max_segment, len(seg))
        if dst not in self.links:
            self.void += 1        # addressed to a host that is not on this link
            return
        for t, corrupt in self.links[dst].schedule(self.now, len(seg)):
            if corrupt:
                b = bytearray(seg)
                i = self.rng.randrange(len(b))
                b[i] ^= self.rng.randrange(1, 256)
                seg = bytes(b)
                self.links[dst].corrupted += 1
            self._n += 1
            heapq.heappush(self._events, (t, self._n, src, dst, seg))

    def step(self, limit: int) -> bool:
        """Advance to the next event (a delivery or a timer); False if none before limit."""
        cands = [d for d in (self.a.poll_at(), self.b.poll_at()) if d is not None]
        if self._events:
            cands.append(self._events[0][0])
        if not cands:
            return False
        t = min(cands)
        if t > limit:
            return False
        self.now = max(self.now, t)
        while self._events and self._events[0][0] <= self.now:
            _, _, src, dst, seg = heapq.heappop(self._events)
            self.layers[dst].input(src, dst, memoryview(seg), self.now)
        self.a.poll(self.now)
        self.b.poll(self.now)
        return True

    def run(self, until, limit: int | None = None, pump=None) -> None:
        """Step until ``until()`` holds, nothing is left to do, or virtual time passes
        ``limit`` (default: 10 virtual minutes from now)."""
        if limit is None:
            limit = self.now + 600_000_000
        while not until():
            if pump is not None:
                pump()
                if until():
                    return
            if not self.step(limit):
                if pump is None:
                    return
                pump()
                if not self.step(limit):
                    return


class Transfer:
    """Push ``data`` through ``src`` socket and collect it (hashed) from ``dst``."""

    def __init__(self, sim: NetSim, src, dst, data: bytes, close: bool = True):
        self.sim, self.src, self.dst = sim, src, dst
        self.data = memoryview(data)
        self.sent = 0
        self.received = 0
        self.hash = hashlib.sha256()
        self.eof = False
        self.close = close
        self.closed = False
        self.buf = bytearray(256 * 1024)

    def pump(self) -> None:
        now = self.sim.now
        while self.sent < len(self.data):
            try:
                self.sent += self.src.send(self.data[self.sent:self.sent + 65536], now)
            except StackError:
                break
        if self.sent == len(self.data) and self.close and not self.closed:
            self.closed = True
            self.src.shutdown(1, now)
        while not self.eof:
            try:
                n = self.dst.recv_into(self.buf, now)
            except StackError:
                break
            if n == 0:
                self.eof = True
                break
            self.received += n
            self.hash.update(memoryview(self.buf)[:n])

    @property
    def done(self) -> bool:
        return self.eof if self.close else self.received == len(self.data)


def connect_pair(sim: NetSim, port: int = 5001):
    lst = sim.b.socket()
    lst.bind(IP_B, port)
    lst.listen(16)
    cli = sim.a.socket()
    cli.connect(IP_B, port, sim.now)
    server = []

    def accepted():
        if not server:
            try:
                server.append(lst.accept())
            except StackError:
                return False
        return cli.state == "ESTABLISHED"

    sim.run(accepted, limit=sim.now + 200_000_000)
    assert server, "handshake did not complete"
    return cli, server[0], lst


def transfer(sim: NetSim, size: int, seed: int = 0, close: bool = True):
    data = random.Random(seed).randbytes(size)
    cli, srv, lst = connect_pair(sim)
    start = sim.now
    x = Transfer(sim, cli, srv, data, close=close)
    sim.run(lambda: x.done, pump=x.pump, limit=start + 3_600_000_000)
    elapsed = sim.now - start
    assert x.received == size, (x.received, size)
    assert x.hash.digest() == hashlib.sha256(data).digest()
    return x, cli, srv, elapsed
