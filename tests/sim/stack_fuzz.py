"""Mutation fuzzing of the whole stack while live connections carry checked data.

The target T (io-pkt-v6-hc's feature set, forwarding on) has three interfaces:

    en0  10.0.0.1 fd00::1   the fuzzed side: mutated frames arrive here
    en1  10.1.0.1           a forwarding target (unlinked; its peer's ARP entry pinned)
    en2  10.9.0.1 fd09::1   the checked side: stack B over an in-memory wire, with one
                            IPv4 and one IPv6 connection moving seeded data both ways

The corpus is inet_fuzz's IPv4 frames plus everything a real peer F sent to en0 during
a warm-up: ARP and Neighbor Discovery, ICMPv6 echo, UDP, and TCP handshakes, data,
SACK/timestamp/window-scale options and a FIN over IPv4 and IPv6, to a listener on
7001 whose connections stay open. Then F is unplugged and the mutations of its frames
(inet_fuzz.mutate, then, half the time, the IPv4 header checksum and the TCP, UDP or
ICMP(v6) checksum repaired so the mutation gets past them) keep arriving on en0 for
those connections, the listener and every other protocol, while B and T go on talking
on en2.

``run`` raises on the first exception that escapes the stack, and checks that every
byte the checked connections delivered is the byte sent, in order. Deterministic per
seed (a virtual clock: 1 ms per batch of 32 frames). Used by tests/sim/test_stack_fuzz.py
(100,000 frames) and scripts/fuzz.py (a million, bounded in time).
"""

import ipaddress
import random
import struct
import time

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.wire.checksum import internet_checksum

import inet_fuzz
from inet_netsim import Net, add_ether, make_stack

BLOCK = random.Random(20261201).randbytes(1_000_003)   # the checked streams repeat it
CHECKED_PORT = 40000
BATCH = 32


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


class Stream:
    """One direction of a checked connection: the sender writes BLOCK over and over
    (from an offset of its own), the receiver compares every byte it reads."""

    def __init__(self, sender, receiver, offset: int):
        self.tx, self.rx = sender, receiver
        self.sent = self.got = 0
        self.offset = offset

    def pump(self, now: int, quantum: int = 1448) -> None:
        """Offer ``quantum`` more bytes (a trickle: the fuzz, not the transfer, is what
        costs time), and check whatever arrived."""
        n = len(BLOCK)
        if self.tx.writable:
            at = (self.offset + self.sent) % n
            self.sent += self.tx.send(BLOCK[at:at + quantum], now)
        while self.rx.readable:
            data = self.rx.recv(65536, now)
            if not data:
                break
            at = (self.offset + self.got) % n
            want = (BLOCK[at:] + BLOCK)[:len(data)] if at + len(data) > n else BLOCK[at:at + len(data)]
            if data != want:
                raise AssertionError(f"checked stream corrupted at byte {self.got}")
            self.got += len(data)


class Target:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        net = self.net = Net()
        t = self.t = net.add(make_stack(seed, forward=True))
        self.en0 = add_ether(t, 1, "10.0.0.1/24")            # inet_fuzz.US
        self.en1 = add_ether(t, 0x11, "10.1.0.1/24")
        self.en2 = add_ether(t, 0x21, "10.9.0.1/24")
        t.add_address(self.en0, ipaddress.ip_address("fd00::1"), 64)
        t.add_address(self.en2, ipaddress.ip_address("fd09::1"), 64)
        t.inet.arp.learn(self.en1, int(ipaddress.IPv4Address("10.1.0.2")), inet_fuzz.OTHER, 0, create=True)
        b = self.b = net.add(make_stack(seed + 1))
        eb = add_ether(b, 0x22, "10.9.0.2/24")
        b.add_address(eb, ipaddress.ip_address("fd09::2"), 64)
        net.link(t, self.en2, b, eb)
        f = net.add(make_stack(seed + 2))
        self.ef = ef = add_ether(f, 2, "10.0.0.2/24")          # inet_fuzz.PEER
        f.add_address(ef, ipaddress.ip_address("fd00::2"), 64)
        link = net.link(t, self.en0, f, ef)
        link.tap = []
        net.run(duration=3_000_000)                            # DAD, on both wires
        self.udp = []
        for port in (53, 9000):
            s = t.inet.udp.socket()
            s.setsockopt("SO_REUSEPORT", 1)
            s.bind(None, port)
            self.udp.append(s)
        self.listener = t.tcp.socket()
        self.listener.bind(bytes(4), 7001)
        self.listener.listen(64)
        checked = t.tcp.socket()
        checked.bind(bytes(4), CHECKED_PORT)
        checked.listen(4)
        self.accepted = []
        self._warm_up(f)
        self.corpus = inet_fuzz.corpus() + [fr for iface, fr in link.tap if iface is ef]
        # Unplug F: from now on en0 hears only the fuzzer (what T sends there is dropped).
        net.stacks.remove(f)
        del net._peer[id(self.en0)], net._peer[id(ef)]
        self.streams = []
        for remote, lport in (("10.9.0.1", 45000), ("fd09::1", 45001)):
            c = b.tcp.socket()
            c.bind(bytes(4) if "." in remote else bytes(16), lport)
            c.connect(_ip(remote), CHECKED_PORT, net.now)
            net.run(duration=100_000)
            s = checked.accept()
            assert c.state == "ESTABLISHED", c.state
            self.streams += [Stream(c, s, 0), Stream(s, c, 500_000)]
        self.checked = checked

    def _warm_up(self, f) -> None:
        """F talks to T on en0 the way real peers do; the tap keeps every frame."""
        net, t = self.net, self.t
        clients = []
        for remote in ("10.0.0.1", "10.0.0.1", "10.0.0.1", "fd00::1"):
            c = f.tcp.socket()
            c.connect(_ip(remote), 7001, net.now)
            clients.append(c)
        net.run(duration=200_000)
        while self.listener.readable:
            self.accepted.append(self.listener.accept())
        for i, c in enumerate(clients):
            c.send(bytes([65 + i]) * (3000 + 1000 * i), net.now)
        for s in self.accepted:
            s.send(b"server says hello " * 50, net.now)
        net.run(duration=200_000)
        for s in self.accepted + clients:
            assert s.readable and s.recv(1 << 20, net.now)
        clients[0].close(net.now)              # a FIN (and T's answer) in the corpus
        refused = f.tcp.socket()
        refused.connect(_ip("10.0.0.1"), 7999, net.now)          # a RST in answer
        u = f.inet.udp.socket()
        u.bind(None, 0)
        u.sendto(b"query", "10.0.0.1", 53, net.now)
        u.sendto(b"closed port", "10.0.0.1", 4444, net.now)
        u.sendto(b"v6 query", "fd00::1", 53, net.now)
        net.run(duration=300_000)
        self.clients = clients

    def inject(self, frames) -> None:
        self.t.input(self.en0, frames, self.net.now)

    def service(self) -> None:
        """What the applications do between batches: read, write, accept, drain."""
        net, t, now = self.net, self.t, self.net.now
        for st in self.streams:
            st.pump(now)
        while self.listener.readable:
            try:
                self.accepted.append(self.listener.accept())
            except StackError:       # the fuzz may reset a queued call: an errno, fine
                break
        alive = []
        for s in self.accepted:
            # Fuzzed connections may be reset or refused: a StackError (an errno) is
            # their fate; anything else escaping is a bug.
            try:
                while s.readable and s.recv(1 << 16, now):
                    pass
                alive.append(s)
            except StackError:
                s.close(now)
        self.accepted = alive
        for s in self.udp:
            while s.rxq:
                s.recvfrom()
            s.error = 0
        net.unlinked.clear()

    def still_answers_ping(self) -> bool:
        now = self.net.now + 1
        self.t.inet.arp.learn(self.en0, 0x0A000002, inet_fuzz.PEER, now, create=True)
        return inet_fuzz.still_answers_ping(self.t, now)

    def still_answers_ping6(self) -> bool:
        """B's raw ICMPv6 echo to fd09::1 across the unfuzzed link gets T's reply."""
        sock = self.b.inet6.raw.socket()
        sock.connect(_ip("fd09::1"))
        sock.send(struct.pack("!BBHHH", 128, 0, 0, 0xBEEF, 6) + b"alive6?", self.net.now)
        self.net.run(duration=200_000)
        while sock.readable:
            message, src, _, _ = sock.recv()
            if message[0] == 129 and message[4:6] == b"\xbe\xef" and src == _ip("fd09::1"):
                return True
        return False


def repair(frame: bytes) -> bytes:
    """Recompute the transport checksum of an IPv4 or IPv6 frame, when its headers still
    parse well enough to find it (TCP, UDP, ICMP, ICMPv6)."""
    b = bytearray(frame)
    if len(b) < 34:
        return frame
    ethertype = b[12:14]
    if ethertype == b"\x08\x00":
        hlen = (b[14] & 0x0F) * 4
        proto = b[23]
        start = 14 + hlen
        if hlen < 20 or start > len(b) or (b[20] & 0x1F) or b[21]:     # fragments: skip
            return frame
        end = min(len(b), 14 + int.from_bytes(b[16:18], "big"))
        pseudo = bytes(b[26:34]) + bytes((0, proto)) + max(0, end - start).to_bytes(2, "big")
    elif ethertype == b"\x86\xdd" and len(b) >= 54:
        proto = b[20]
        start = 54
        end = min(len(b), 54 + int.from_bytes(b[18:20], "big"))
        pseudo = bytes(b[22:54]) + max(0, end - start).to_bytes(4, "big") + bytes((0, 0, 0, proto))
    else:
        return frame
    if end < start:
        return frame
    field = {6: 16, 17: 6, 1: 2, 58: 2}.get(proto)
    if field is None or start + field + 2 > end:
        return frame
    b[start + field:start + field + 2] = b"\0\0"
    body = bytes(b[start:end])
    covered = body if proto == 1 else pseudo + body
    value = internet_checksum(covered)
    if proto == 17 and value == 0:
        value = 0xFFFF
    b[start + field:start + field + 2] = value.to_bytes(2, "big")
    return bytes(b)


def run(frames: int, seed: int = 1, *, seconds: float | None = None, target: Target | None = None):
    """Feed up to ``frames`` mutated frames (stopping after ``seconds`` of wall time if
    given); returns (target, frames fed). Raises on any escaped exception or bad byte."""
    tgt = target or Target(seed)
    rng = random.Random(seed * 1000 + 7)
    corpus = tgt.corpus
    net = tgt.net
    deadline = None if seconds is None else time.monotonic() + seconds
    fed = 0
    while fed < frames:
        batch = []
        for _ in range(min(BATCH, frames - fed)):
            frame = inet_fuzz.mutate(rng, rng.choice(corpus))
            if rng.random() < 0.5:
                frame = repair(frame)
            batch.append(frame)
        tgt.inject(batch)
        fed += len(batch)
        net.now += 1000
        net.step()
        tgt.service()
        if deadline is not None and fed % 3200 == 0 and time.monotonic() > deadline:
            break
    net.run(duration=200_000)
    tgt.service()
    return tgt, fed
