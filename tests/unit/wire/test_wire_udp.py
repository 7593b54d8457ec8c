"""UDP (RFC 768): fields, length rules, the pseudo-header checksum and its zero cases."""

import pytest

from iopkt_fs.stack.wire import Malformed
from iopkt_fs.stack.wire.checksum import internet_checksum
from iopkt_fs.stack.wire.ipv4 import ip4
from iopkt_fs.stack.wire.udp import UdpPacket, UdpRepr

SRC = ip4("192.0.2.1")
DST = ip4("198.51.100.7")


def by_hand(sport: int, dport: int, payload: bytes, src=SRC, dst=DST) -> bytes:
    """RFC 768 spelled out: pseudo-header + header + data, summed and complemented."""
    length = 8 + len(payload)
    header = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + length.to_bytes(2, "big")
    pseudo = src + dst + b"\x00\x11" + length.to_bytes(2, "big")
    ck = internet_checksum(pseudo + header + b"\x00\x00" + payload) or 0xFFFF
    return header + ck.to_bytes(2, "big") + payload


DATAGRAM = by_hand(5353, 53, b"hello, world")


def test_fields():
    pkt = UdpPacket.new_checked(DATAGRAM)
    assert (pkt.src_port, pkt.dst_port, pkt.length) == (5353, 53, 20)
    assert bytes(pkt.payload) == b"hello, world"
    assert pkt.checksum == int.from_bytes(DATAGRAM[6:8], "big")
    assert pkt.verify_checksum(SRC, DST)
    assert UdpRepr.parse(pkt, SRC, DST) == UdpRepr(5353, 53, b"hello, world")


def test_emit_matches_rfc_by_hand():
    assert UdpRepr(5353, 53, b"hello, world").to_bytes(SRC, DST) == DATAGRAM
    odd = by_hand(1, 2, b"odd")
    assert UdpRepr(1, 2, b"odd").to_bytes(SRC, DST) == odd


def test_checksum_depends_on_the_pseudo_header():
    assert not UdpPacket.new_checked(DATAGRAM).verify_checksum(SRC, ip4("198.51.100.8"))
    with pytest.raises(Malformed, match="checksum"):
        UdpRepr.parse(DATAGRAM, DST, SRC[:3] + b"\x02")
    assert UdpRepr.parse(DATAGRAM, DST, ip4("9.9.9.9"), verify=False).payload == b"hello, world"


def test_zero_checksum_means_none():
    unchecked = UdpRepr(5353, 53, b"x").to_bytes(SRC, DST, checksum=False)
    assert unchecked[6:8] == b"\x00\x00"
    assert UdpPacket.new_checked(unchecked).verify_checksum(b"\x00" * 4, b"\x00" * 4)
    assert UdpRepr.parse(unchecked, SRC, DST) == UdpRepr(5353, 53, b"x")


def test_computed_zero_is_sent_as_ffff():
    # Find a payload whose checksum computes to 0 by making the data cancel the rest:
    # with the checksum field at 0xffff the sum must be 0xffff.
    base = UdpRepr(1000, 2000, b"\x00\x00").to_bytes(SRC, DST)
    ck = int.from_bytes(base[6:8], "big")
    # Adding (ck) to the data word lowers the complement by ck, to exactly 0.
    payload = ck.to_bytes(2, "big")
    datagram = UdpRepr(1000, 2000, payload).to_bytes(SRC, DST)
    assert datagram[6:8] == b"\xff\xff"
    assert UdpPacket.new_checked(datagram).verify_checksum(SRC, DST)


def test_trailing_bytes_beyond_length_are_cut():
    pkt = UdpPacket.new_checked(DATAGRAM + b"\x00" * 6)
    assert len(pkt) == 20 and bytes(pkt.payload) == b"hello, world"
    assert pkt.verify_checksum(SRC, DST)


@pytest.mark.parametrize("n", range(20))
def test_truncation_is_malformed(n):
    with pytest.raises(Malformed):
        UdpPacket.new_checked(DATAGRAM[:n])


@pytest.mark.parametrize("length", [0, 7, 21, 0xFFFF])
def test_length_field_lies(length):
    bad = DATAGRAM[:4] + length.to_bytes(2, "big") + DATAGRAM[6:]
    with pytest.raises(Malformed):
        UdpPacket.new_checked(bad)


def test_empty_payload():
    datagram = UdpRepr(7, 7).to_bytes(SRC, DST)
    assert len(datagram) == 8 and UdpRepr.parse(datagram, SRC, DST) == UdpRepr(7, 7, b"")


def test_oversized_payload_is_a_caller_error():
    with pytest.raises(ValueError):
        UdpRepr(1, 2, bytes(0xFFFF - 7)).to_bytes(SRC, DST)


def test_memoryview_payload_and_emit():
    repr_ = UdpRepr(1, 2, memoryview(b"view"))
    assert repr_.to_bytes(SRC, DST) == by_hand(1, 2, b"view")
    buf = bytearray(14)
    UdpRepr(1, 2, b"view").emit(buf, 2, SRC, DST)
    assert bytes(buf[2:]) == by_hand(1, 2, b"view")


def test_quoted_header_ignores_the_length_field():
    quote = DATAGRAM[:8]  # an ICMP error quotes only the first 8 bytes
    with pytest.raises(Malformed):
        UdpPacket.new_checked(quote)
    pkt = UdpPacket.new_quoted(quote)
    assert (pkt.src_port, pkt.dst_port, pkt.length) == (5353, 53, 20)
    with pytest.raises(Malformed):
        UdpPacket.new_quoted(quote[:7])
