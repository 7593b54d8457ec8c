"""ICMPv4 (RFC 792): echo, errors with the quoted datagram, unknown types, checksum."""

import pytest

from iopkt_fs.stack.wire import Malformed
from iopkt_fs.stack.wire.checksum import internet_checksum
from iopkt_fs.stack.wire.icmp import (
    DstUnreachableCode,
    IcmpDstUnreachable,
    IcmpEchoReply,
    IcmpEchoRequest,
    IcmpGeneric,
    IcmpPacket,
    IcmpParamProblem,
    IcmpRepr,
    IcmpTimeExceeded,
    IcmpType,
    TimeExceededCode,
    quote_original,
)
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr, ip4
from iopkt_fs.stack.wire.udp import UdpPacket, UdpRepr


def message(type_: int, code: int, rest: bytes, payload: bytes = b"") -> bytes:
    """Build a message by hand, checksum included, without the module under test."""
    raw = bytes([type_, code, 0, 0]) + rest + payload
    return raw[:2] + internet_checksum(raw).to_bytes(2, "big") + raw[4:]


ECHO = message(8, 0, b"\x12\x34\x00\x07", b"abcdefgh")


def test_echo_request_fields():
    pkt = IcmpPacket.new_checked(ECHO)
    assert (pkt.type, pkt.code, pkt.ident, pkt.seq) == (IcmpType.ECHO_REQUEST, 0, 0x1234, 7)
    assert pkt.rest == 0x12340007 and bytes(pkt.payload) == b"abcdefgh"
    assert pkt.verify_checksum()
    assert IcmpRepr.parse(pkt) == IcmpEchoRequest(0x1234, 7, b"abcdefgh")


def test_echo_request_emits_same_bytes():
    assert IcmpEchoRequest(0x1234, 7, b"abcdefgh").to_bytes() == ECHO


def test_reply_mirrors_request():
    reply = IcmpRepr.parse(ECHO).reply()
    assert reply == IcmpEchoReply(0x1234, 7, b"abcdefgh")
    assert reply.to_bytes() == message(0, 0, b"\x12\x34\x00\x07", b"abcdefgh")


def test_odd_length_echo_checksum():
    odd = IcmpEchoRequest(1, 1, b"abc").to_bytes()
    assert IcmpPacket.new_checked(odd).verify_checksum()
    assert odd == message(8, 0, b"\x00\x01\x00\x01", b"abc")


def test_bad_checksum_is_malformed_unless_not_verified():
    bad = ECHO[:-1] + b"i"
    assert not IcmpPacket.new_checked(bad).verify_checksum()
    with pytest.raises(Malformed, match="checksum"):
        IcmpRepr.parse(bad)
    assert IcmpRepr.parse(bad, verify=False) == IcmpEchoRequest(0x1234, 7, b"abcdefgi")


@pytest.mark.parametrize("n", range(8))
def test_short_message_is_malformed(n):
    with pytest.raises(Malformed):
        IcmpPacket.new_checked(ECHO[:n])


def offending_datagram() -> bytes:
    udp = UdpRepr(40000, 33434, b"traceroute probe").to_bytes(ip4("10.0.0.1"), ip4("10.9.9.9"))
    return Ipv4Repr(ip4("10.0.0.1"), ip4("10.9.9.9"), 17, len(udp), ttl=1).to_bytes(udp)


def test_quote_original_is_header_plus_eight_bytes():
    datagram = offending_datagram()
    assert quote_original(datagram) == datagram[:28]
    assert quote_original(datagram, 100) == datagram  # never more than there is


def test_port_unreachable_carries_the_original():
    quote = quote_original(offending_datagram())
    msg = IcmpDstUnreachable(DstUnreachableCode.PORT_UNREACHABLE, quote).to_bytes()
    assert msg == message(3, 3, bytes(4), quote)
    parsed = IcmpRepr.parse(msg)
    assert parsed == IcmpDstUnreachable(3, quote, 0)
    # The core reads the quote back to find the socket (BSD ctlinput).
    inner = Ipv4Packet.new_quoted(parsed.original)
    assert inner.protocol == 17 and inner.dst == ip4("10.9.9.9")
    ports = UdpPacket.new_quoted(inner.payload)
    assert (ports.src_port, ports.dst_port) == (40000, 33434)


def test_frag_needed_carries_next_hop_mtu():
    quote = quote_original(offending_datagram())
    msg = IcmpDstUnreachable(DstUnreachableCode.FRAG_NEEDED, quote, 1400).to_bytes()
    assert msg[4:8] == b"\x00\x00\x05\x78"  # RFC 1191 4: unused(16) | next-hop MTU(16)
    assert IcmpPacket.new_checked(msg).next_hop_mtu == 1400
    assert IcmpRepr.parse(msg).next_hop_mtu == 1400


def test_time_exceeded():
    quote = quote_original(offending_datagram())
    msg = IcmpTimeExceeded(TimeExceededCode.TTL_EXCEEDED, quote).to_bytes()
    assert msg == message(11, 0, bytes(4), quote)
    assert IcmpRepr.parse(msg) == IcmpTimeExceeded(0, quote)
    assert IcmpRepr.parse(message(11, 1, bytes(4), quote)) == IcmpTimeExceeded(1, quote)


def test_parameter_problem_pointer():
    msg = message(12, 0, b"\x09\x00\x00\x00", b"orig")
    assert IcmpRepr.parse(msg) == IcmpParamProblem(9, b"orig")
    assert IcmpParamProblem(9, b"orig").to_bytes() == msg


@pytest.mark.parametrize("type_", [4, 5, 9, 10, 13, 14, 42, 255])
def test_unknown_types_are_generic_not_rejected(type_):
    msg = message(type_, 7, b"\xde\xad\xbe\xef", b"whatever")
    assert IcmpRepr.parse(msg) == IcmpGeneric(type_, 7, 0xDEADBEEF, b"whatever")
    assert IcmpGeneric(type_, 7, 0xDEADBEEF, b"whatever").to_bytes() == msg


def test_echo_with_nonzero_code_is_still_an_echo():
    assert IcmpRepr.parse(message(8, 1, b"\x00\x01\x00\x02")) == IcmpEchoRequest(1, 2)


def test_all_zero_message_checksum_is_ffff():
    assert IcmpGeneric(0x10, 0).to_bytes() == b"\x10\x00\xef\xff\x00\x00\x00\x00"
    assert IcmpEchoReply(0, 0).to_bytes() == b"\x00\x00\xff\xff\x00\x00\x00\x00"


def test_emit_and_buffer_len():
    repr_ = IcmpEchoRequest(1, 2, b"data")
    assert repr_.buffer_len() == 12
    buf = bytearray(20)
    repr_.emit(buf, 4)
    assert bytes(buf[4:16]) == repr_.to_bytes()
