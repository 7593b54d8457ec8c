"""Fuzz-style invariant: any bytes are either parsed or rejected with ``Malformed``.

``receive`` walks a frame the way the IPv4 core does (Ethernet -> ARP | IPv4 -> UDP |
ICMP -> the datagram quoted in an ICMP error) and touches every accessor, so a view that
passed ``new_checked`` but fails later is caught too. Seeded, a few thousand inputs a second.
"""

import random

import pytest

from iopkt_fs.stack.wire import Malformed
from iopkt_fs.stack.wire.arp import ArpPacket, ArpRepr
from iopkt_fs.stack.wire.ethernet import EtherType, EthernetPacket, EthernetRepr
from iopkt_fs.stack.wire.icmp import (
    IcmpDstUnreachable,
    IcmpEchoRequest,
    IcmpGeneric,
    IcmpPacket,
    IcmpRepr,
    IcmpTimeExceeded,
    quote_original,
)
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr, ip4
from iopkt_fs.stack.wire.udp import UdpPacket, UdpRepr

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
IP_A, IP_B = ip4("10.0.0.1"), ip4("10.0.0.2")

_ETH_FIELDS = ("dst", "src", "ethertype", "vlan_tci", "vlan_id", "header_len", "payload")
_ARP_FIELDS = ("operation", "sender_hw", "sender_ip", "target_hw", "target_ip")
_IP_FIELDS = (
    "version header_len tos total_len ident dont_frag more_frags frag_offset is_fragment"
    " ttl protocol checksum src dst options header payload datagram"
).split()
_ICMP_FIELDS = ("type", "code", "checksum", "rest", "ident", "seq", "next_hop_mtu", "payload")
_UDP_FIELDS = ("src_port", "dst_port", "length", "checksum", "payload")


def touch(view, names):
    return tuple(getattr(view, name) for name in names)


def receive(frame: bytes, verify: bool = True):
    """Parse ``frame`` completely; returns a summary or raises ``Malformed``."""
    eth = EthernetPacket.new_checked(frame)
    touch(eth, _ETH_FIELDS)
    eth_repr = EthernetRepr.parse(eth)
    if eth.ethertype == EtherType.ARP:
        arp = ArpPacket.new_checked(eth.payload)
        touch(arp, _ARP_FIELDS)
        return eth_repr, ArpRepr.parse(arp)
    if eth.ethertype != EtherType.IPV4:
        return (eth_repr,)
    ip = Ipv4Packet.new_checked(eth.payload)
    touch(ip, _IP_FIELDS)
    ip.verify_checksum()
    ip_repr = Ipv4Repr.parse(ip, verify=verify)
    if ip.is_fragment:
        return eth_repr, ip_repr, bytes(ip.payload)
    if ip.protocol == 17:
        udp = UdpPacket.new_checked(ip.payload)
        touch(udp, _UDP_FIELDS)
        return eth_repr, ip_repr, UdpRepr.parse(udp, ip.src, ip.dst, verify=verify)
    if ip.protocol == 1:
        icmp = IcmpPacket.new_checked(ip.payload)
        touch(icmp, _ICMP_FIELDS)
        icmp.verify_checksum()
        message = IcmpRepr.parse(icmp, verify=verify)
        if isinstance(message, (IcmpDstUnreachable, IcmpTimeExceeded)):
            inner = Ipv4Packet.new_quoted(message.original)
            touch(inner, _IP_FIELDS)
            if inner.protocol == 17:
                touch(UdpPacket.new_quoted(inner.payload), _UDP_FIELDS)
        return eth_repr, ip_repr, message
    return eth_repr, ip_repr, bytes(ip.payload)


def ip_frame(protocol: int, payload: bytes, tci=None, **ip_fields) -> bytes:
    ip = Ipv4Repr(IP_A, IP_B, protocol, len(payload), **ip_fields)
    return EthernetRepr(MAC_B, MAC_A, EtherType.IPV4, tci).to_bytes(ip.to_bytes(payload))


def udp(payload: bytes, **kw) -> bytes:
    return UdpRepr(4000, 53, payload).to_bytes(IP_A, IP_B, **kw)


def _seed_frames() -> dict[str, tuple[bytes, int]]:
    """Valid frames, each with the length it needs (beyond that is Ethernet padding)."""
    offending = Ipv4Repr(IP_B, IP_A, 17, 12).to_bytes(udp(b"four"))
    frames = {
        "arp": EthernetRepr(MAC_B, MAC_A, EtherType.ARP).to_bytes(
            ArpRepr.request(MAC_A, IP_A, IP_B).to_bytes()
        ),
        "udp": ip_frame(17, udp(b"hello, world, this is a datagram")),
        "udp-short-padded": ip_frame(17, udp(b"x")),
        "udp-no-checksum": ip_frame(17, udp(b"unchecked", checksum=False)),
        "udp-options": ip_frame(17, udp(b"opts"), options=bytes([7, 7, 4]) + bytes(4) + b"\x01"),
        "vlan-echo": ip_frame(1, IcmpEchoRequest(7, 1, bytes(range(56))).to_bytes(), tci=0x002A),
        "unreachable": ip_frame(1, IcmpDstUnreachable(3, quote_original(offending)).to_bytes()),
        "time-exceeded": ip_frame(1, IcmpTimeExceeded(0, quote_original(offending)).to_bytes()),
        "icmp-generic": ip_frame(1, IcmpGeneric(13, 0, 0x01020304, bytes(12)).to_bytes()),
        "fragment-first": ip_frame(17, bytes(48), more_frags=True, ident=9),
        "fragment-last": ip_frame(17, bytes(20), frag_offset=48, ident=9),
        "other-proto": ip_frame(89, b"ospf"),
    }
    needed = {}
    for name, frame in frames.items():
        if name == "arp":
            needed[name] = (frame, 14 + 28)
        else:
            header = 18 if name.startswith("vlan") else 14
            needed[name] = (frame, header + int.from_bytes(frame[header + 2 : header + 4], "big"))
    return needed


SEEDS = _seed_frames()


@pytest.mark.parametrize("name", SEEDS)
def test_every_truncation_is_malformed_or_the_same_packet(name):
    frame, needed = SEEDS[name]
    full = receive(frame)
    for n in range(len(frame)):
        if n < needed:
            with pytest.raises(Malformed):
                receive(frame[:n])
        else:  # only Ethernet padding was cut
            assert receive(frame[:n]) == full


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if not data:
            data.append(rng.randrange(256))
            continue
        pos = rng.randrange(len(data))
        if op == 0:  # flip one bit
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # random byte
            data[pos] = rng.randrange(256)
        elif op == 2:  # an interesting 16-bit value, e.g. into a length field
            value = rng.choice(
                [0, 1, 7, 8, 19, 20, 21, 0x45, 0x7FFF, 0x8000, 0xFFFF, len(data), len(data) - 14]
            )
            data[pos : pos + 2] = (value & 0xFFFF).to_bytes(2, "big")
        elif op == 3:  # cut
            del data[pos:]
        elif op == 4:  # delete a run
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 5:  # insert a run
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:  # nibble games on the version/IHL octets
            data[pos] = (rng.randrange(16) << 4) | rng.randrange(16)
    return bytes(data)


def _accepts_or_malformed(data: bytes, context: str) -> None:
    for verify in (True, False):
        try:
            receive(data, verify)
        except Malformed:
            pass
        except Exception as exc:  # pragma: no cover - the point of the test
            pytest.fail(f"{context} verify={verify}: {type(exc).__name__}: {exc}\n{data.hex()}")


@pytest.mark.parametrize("name", SEEDS)
def test_seeded_mutations_raise_only_malformed(name):
    frame, _ = SEEDS[name]
    rng = random.Random(f"wire-fuzz-{name}")
    for i in range(4000):
        _accepts_or_malformed(_mutate(rng, frame), f"{name} mutation {i}")


def test_random_bytes_raise_only_malformed():
    rng = random.Random("wire-fuzz-random")
    ethertypes = [b"\x08\x00", b"\x08\x06", b"\x81\x00", b"\x86\xdd"]
    for i in range(3000):
        body = rng.randbytes(rng.randrange(80))
        if rng.random() < 0.7:  # steer most inputs past the Ethernet demux
            body = body[:12].ljust(12, b"\x00") + rng.choice(ethertypes) + body[12:]
            if rng.random() < 0.5:  # and make the IPv4 header plausible
                body = (
                    body[:14]
                    + bytes([0x45 if rng.random() < 0.8 else rng.randrange(256)])
                    + body[15:]
                )
        _accepts_or_malformed(body, f"random input {i}")


def test_mutations_do_find_accepted_and_rejected_inputs():
    """Guard the fuzzer itself: it must exercise both outcomes, not only one."""
    frame, _ = SEEDS["udp"]
    rng = random.Random("wire-fuzz-guard")
    outcomes = set()
    for _ in range(300):
        try:
            receive(_mutate(rng, frame), verify=False)
            outcomes.add("accepted")
        except Malformed:
            outcomes.add("malformed")
    assert outcomes == {"accepted", "malformed"}
