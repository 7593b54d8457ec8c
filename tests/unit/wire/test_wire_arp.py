"""ARP (RFC 826) for Ethernet/IPv4: fields, helpers, what is unsupported."""

import pytest

from iopkt_fs.stack.wire import Malformed, Unsupported
from iopkt_fs.stack.wire.arp import ArpOp, ArpPacket, ArpRepr

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])

# A who-has 10.0.0.2 tell 10.0.0.1, byte by byte (RFC 826 "Packet format").
REQUEST = b"\x00\x01" b"\x08\x00" b"\x06" b"\x04" b"\x00\x01" + MAC_A + IP_A + bytes(6) + IP_B


def test_request_fields():
    pkt = ArpPacket.new_checked(REQUEST)
    assert pkt.operation == ArpOp.REQUEST
    assert (pkt.sender_hw, pkt.sender_ip) == (MAC_A, IP_A)
    assert (pkt.target_hw, pkt.target_ip) == (bytes(6), IP_B)
    repr_ = ArpRepr.parse(pkt)
    assert repr_ == ArpRepr.request(MAC_A, IP_A, IP_B)
    assert repr_.is_request and not repr_.is_reply
    assert repr_.to_bytes() == REQUEST


def test_reply_swaps_roles():
    reply = ArpRepr.parse(REQUEST).reply(MAC_B)
    assert reply == ArpRepr(ArpOp.REPLY, MAC_B, IP_B, MAC_A, IP_A)
    assert reply.is_reply


def test_gratuitous():
    g = ArpRepr.gratuitous(MAC_A, IP_A)
    assert g.sender_ip == g.target_ip == IP_A and g.is_request


def test_ethernet_padding_is_ignored():
    padded = REQUEST + bytes(18)
    assert len(ArpPacket.new_checked(padded)) == 28
    assert ArpRepr.parse(padded) == ArpRepr.parse(REQUEST)


@pytest.mark.parametrize("n", range(28))
def test_truncated_is_malformed(n):
    with pytest.raises(Malformed):
        ArpPacket.new_checked(REQUEST[:n])


@pytest.mark.parametrize(
    "offset, value",
    [(0, b"\x00\x06"), (2, b"\x86\xdd"), (4, b"\x08"), (5, b"\x10")],
    ids=["htype-ieee802", "ptype-ipv6", "hlen-8", "plen-16"],
)
def test_other_hardware_or_protocol_is_unsupported(offset, value):
    bad = REQUEST[:offset] + value + REQUEST[offset + len(value) :]
    with pytest.raises(Unsupported):
        ArpPacket.new_checked(bad)


@pytest.mark.parametrize("op", [0, 3, 4, 8, 0xFFFF], ids=lambda op: f"op{op}")
def test_other_operations_are_unsupported(op):
    bad = REQUEST[:6] + op.to_bytes(2, "big") + REQUEST[8:]
    assert ArpPacket.new_checked(bad).operation == op
    with pytest.raises(Unsupported):
        ArpRepr.parse(bad)


def test_unsupported_is_a_malformed():
    assert issubclass(Unsupported, Malformed) and issubclass(Malformed, ValueError)


def test_emit_into_buffer():
    buf = bytearray(40)
    ArpRepr.parse(REQUEST).emit(buf, 12)
    assert bytes(buf[12:40]) == REQUEST
