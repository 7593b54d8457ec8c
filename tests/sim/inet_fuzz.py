"""Mutation fuzzing of the IPv4 layer: seeded, deterministic, no exception may escape.

A corpus of valid frames (echo, UDP to open and closed ports, ARP, fragments, ICMP
errors, options, broadcasts, traffic to forward) is mutated (bit flips, interesting
bytes, truncation, extension, length-field lies) and, half the time, the IPv4 header
checksum is repaired so the mutation reaches the layers above it. The fuzzed stack is a
router (two interfaces, forwarding and fastforwarding on) with open UDP sockets, so
every path is exercised. Used by tests/sim/test_inet_fuzz.py and scripts/fuzz_inet.py.
"""

import ipaddress
import random

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.wire.arp import ArpOp, ArpRepr
from iopkt_fs.stack.wire.checksum import internet_checksum
from iopkt_fs.stack.wire.ethernet import BROADCAST, EthernetRepr
from iopkt_fs.stack.wire.icmp import IcmpDstUnreachable, IcmpEchoRequest, IcmpEchoReply
from iopkt_fs.stack.wire.ipv4 import Ipv4Repr
from iopkt_fs.stack.wire.udp import UdpRepr

US = bytes.fromhex("020000000001")
PEER = bytes.fromhex("020000000002")
OTHER = bytes.fromhex("020000000003")


def _ip(t):
    return ipaddress.IPv4Address(t).packed


def build_target(seed: int = 1):
    stack = Stack(StackConfig(seed=seed, forward=True))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=US, flags=IFF_BROADCAST | IFF_MULTICAST)
    en1 = stack.new_interface("en", 1, kind=IFT_ETHER, mac=bytes.fromhex("020000000011"),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address("10.0.0.1"), 24)
    stack.add_address(en1, ipaddress.ip_address("10.1.0.1"), 24)
    stack.inet.arp.learn(en0, int(ipaddress.IPv4Address("10.0.0.2")), PEER, 0, create=True)
    stack.inet.arp.learn(en1, int(ipaddress.IPv4Address("10.1.0.2")), OTHER, 0, create=True)
    socks = []
    for port in (53, 9000):
        s = stack.inet.udp.socket()
        s.setsockopt("SO_REUSEPORT", 1)
        s.bind(None, port)
        socks.append(s)
    return stack, en0, en1, socks


def _ipv4(src, dst, proto, payload, **kw):
    r = Ipv4Repr(_ip(src), _ip(dst), proto, len(payload), **kw)
    return r.to_bytes(payload)


def _eth(payload, dst=US, ethertype=0x0800):
    return EthernetRepr(dst, PEER, ethertype).to_bytes(payload)


def corpus() -> list[bytes]:
    me, peer = "10.0.0.1", "10.0.0.2"
    echo = IcmpEchoRequest(1, 1, b"fuzz" * 10).to_bytes()
    big = IcmpEchoRequest(1, 2, bytes(range(256)) * 12).to_bytes()
    udp = UdpRepr(1000, 53, b"query").to_bytes(_ip(peer), _ip(me))
    quoted = _ipv4(me, peer, 17, UdpRepr(53, 1000, b"").to_bytes(_ip(me), _ip(peer)))
    frames = [
        _eth(_ipv4(peer, me, 1, echo)),
        _eth(_ipv4(peer, me, 1, IcmpEchoReply(1, 1, b"r").to_bytes())),
        _eth(_ipv4(peer, me, 17, udp)),
        _eth(_ipv4(peer, me, 17, UdpRepr(1000, 4444, b"closed").to_bytes(_ip(peer), _ip(me)))),
        _eth(_ipv4(peer, "10.0.0.255", 17, UdpRepr(1, 9000, b"b").to_bytes(_ip(peer), _ip("10.0.0.255"))), dst=BROADCAST),
        _eth(_ipv4(peer, me, 1, IcmpDstUnreachable(3, quoted).to_bytes())),
        _eth(_ipv4(peer, me, 1, echo, options=b"\x94\x04\x00\x00\x01\x01\x01\x00")),
        _eth(_ipv4(peer, "10.1.0.2", 1, echo, ttl=5)),
        _eth(_ipv4(peer, "10.1.0.2", 17, udp, ttl=1)),
        _eth(_ipv4(peer, "172.16.0.1", 1, echo)),
        _eth(_ipv4(peer, me, 99, b"unknown protocol")),
        _eth(ArpRepr.request(PEER, _ip(peer), _ip(me)).to_bytes(), dst=BROADCAST, ethertype=0x0806),
        _eth(ArpRepr(ArpOp.REPLY, PEER, _ip(peer), US, _ip(me)).to_bytes(), ethertype=0x0806),
    ]
    for i, off in enumerate(range(0, len(big), 1480)):
        chunk = big[off:off + 1480]
        frames.append(_eth(_ipv4(peer, me, 1, chunk, ident=77, more_frags=off + 1480 < len(big), frag_offset=off)))
    return frames


INTERESTING = (0x00, 0x01, 0x05, 0x08, 0x0F, 0x10, 0x40, 0x45, 0x7F, 0x80, 0xFE, 0xFF)


def mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.35 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.6 and b:
            b[rng.randrange(len(b))] = rng.choice(INTERESTING)
        elif op < 0.7:
            del b[rng.randrange(len(b) + 1):]
        elif op < 0.78:
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        elif op < 0.9 and len(b) >= 18:
            # Lie in a 16-bit length/offset field of the IP, UDP or ICMP header.
            i = rng.choice((16, 18, 20, 38, 14 + 24 + 4))
            if i + 2 <= len(b):
                v = rng.choice((0, 1, 7, 8, 19, 20, 21, 0x1FFF, 0x2000, 0x3FFF, 0xFFFF, rng.randrange(65536)))
                b[i:i + 2] = v.to_bytes(2, "big")
        elif len(b) > 24:
            j = rng.randrange(14, len(b))
            b[j:j + 4] = bytes(rng.randrange(256) for _ in range(4))
    if rng.random() < 0.5 and len(b) >= 34 and b[12:14] == b"\x08\x00":
        hlen = (b[14] & 0x0F) * 4
        if 20 <= hlen and 14 + hlen <= len(b):
            b[24:26] = b"\x00\x00"
            b[24:26] = internet_checksum(b[14:14 + hlen]).to_bytes(2, "big")
    return bytes(b)


def run(iterations: int, seed: int = 1) -> Stack:
    """Feed ``iterations`` mutated frames; return the stack for inspection."""
    rng = random.Random(seed)
    stack, en0, en1, socks = build_target(seed)
    base = corpus()
    now = 0
    batch = []
    for i in range(iterations):
        frame = mutate(rng, rng.choice(base))
        iface = en0 if rng.random() < 0.9 else en1
        if iface is en0:
            batch.append(frame)
        else:
            stack.input(en1, [frame], now)
        if len(batch) >= 32:
            stack.input(en0, batch, now)
            batch = []
        if i % 64 == 0:
            now += rng.randrange(0, 2_000_000)
            stack.poll(now)
            for iface in stack.take_tx():
                iface.txq.clear()
            for s in socks:
                while s.rxq:
                    s.recvfrom()
                s.error = 0
    stack.input(en0, batch, now)
    stack.poll(now)
    for iface in stack.take_tx():
        iface.txq.clear()
    return stack


def still_answers_ping(stack: Stack, now: int) -> bool:
    en0 = stack.interface("en0")
    en0.txq.clear()
    echo = IcmpEchoRequest(0xBEEF, 1, b"alive?").to_bytes()
    stack.input(en0, [_eth(_ipv4("10.0.0.2", "10.0.0.1", 1, echo))], now)
    for frame in list(en0.txq):
        if frame[12:14] == b"\x08\x00" and frame[14 + 20] == 0 and frame[14 + 24:14 + 26] == b"\xbe\xef":
            return True
    # Our peer's ARP entry may have been replaced by fuzzed ARP; answer after re-learning.
    return False
