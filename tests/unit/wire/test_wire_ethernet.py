"""Ethernet II: header fields, 802.1Q tags, padding, address helpers."""

import pytest

from iopkt_fs.stack.wire import Malformed
from iopkt_fs.stack.wire.ethernet import (
    BROADCAST,
    MIN_FRAME_LEN,
    EtherType,
    EthernetPacket,
    EthernetRepr,
    ipv4_multicast_mac,
    is_broadcast,
    is_multicast,
    is_unicast,
    mac_from_str,
    mac_to_str,
    pad_frame,
)

DST = bytes.fromhex("ffffffffffff")
SRC = bytes.fromhex("020000000001")
UNTAGGED = DST + SRC + b"\x08\x06" + b"payload"
TAGGED = DST + SRC + b"\x81\x00" + b"\xa0\x2a" + b"\x08\x00" + b"payload"


def test_untagged_fields():
    pkt = EthernetPacket.new_checked(UNTAGGED)
    assert (pkt.dst, pkt.src, pkt.ethertype) == (DST, SRC, EtherType.ARP)
    assert pkt.vlan_tci is None and pkt.vlan_id is None
    assert pkt.header_len == 14
    assert bytes(pkt.payload) == b"payload"
    assert EthernetRepr.parse(pkt) == EthernetRepr(DST, SRC, 0x0806)


def test_tagged_frame_exposes_tag_and_inner_type():
    pkt = EthernetPacket.new_checked(TAGGED)
    assert pkt.ethertype == EtherType.IPV4
    assert pkt.vlan_tci == 0xA02A
    assert pkt.vlan_id == 42  # PCP 5, DEI 0, VID 42
    assert pkt.header_len == 18
    assert bytes(pkt.payload) == b"payload"
    assert EthernetRepr.parse(TAGGED) == EthernetRepr(DST, SRC, 0x0800, 0xA02A)


@pytest.mark.parametrize("frame", [UNTAGGED[:14], TAGGED[:18]])
def test_header_only_frame_has_empty_payload(frame):
    assert bytes(EthernetPacket.new_checked(frame).payload) == b""


@pytest.mark.parametrize("n", range(14))
def test_short_frame_is_malformed(n):
    with pytest.raises(Malformed):
        EthernetPacket.new_checked(UNTAGGED[:n])


@pytest.mark.parametrize("n", range(14, 18))
def test_cut_vlan_tag_is_malformed(n):
    with pytest.raises(Malformed):
        EthernetPacket.new_checked(TAGGED[:n])


def test_8023_length_field_is_not_ethernet_ii():
    llc = DST + SRC + b"\x00\x2e" + bytes(46)
    assert EthernetPacket.new_checked(llc).ethertype == 0x2E
    with pytest.raises(Malformed):
        EthernetRepr.parse(llc)


def test_emit_pads_to_60_bytes_with_zeros():
    frame = EthernetRepr(DST, SRC, EtherType.ARP).to_bytes(b"abc")
    assert len(frame) == MIN_FRAME_LEN
    assert frame[:17] == DST + SRC + b"\x08\x06abc"
    assert frame[17:] == bytes(MIN_FRAME_LEN - 17)


def test_emit_does_not_pad_long_frames():
    payload = bytes(range(100))
    frame = EthernetRepr(DST, SRC, EtherType.IPV4).to_bytes(payload)
    assert frame == DST + SRC + b"\x08\x00" + payload


def test_emit_tagged():
    repr_ = EthernetRepr(DST, SRC, 0x0800, 0xA02A)
    assert repr_.buffer_len() == 18
    assert repr_.header_bytes() == TAGGED[:18]
    buf = bytearray(20)
    repr_.emit(buf, 2)
    assert bytes(buf[2:]) == TAGGED[:18]


def test_pad_frame():
    assert pad_frame(b"") == bytes(60)
    assert pad_frame(bytes(59) + b"x") == bytes(59) + b"x"
    assert pad_frame(b"x" * 61) == b"x" * 61


def test_address_helpers():
    assert is_broadcast(BROADCAST) and is_multicast(BROADCAST)
    assert is_multicast(bytes.fromhex("01005e000001")) and not is_broadcast(
        bytes.fromhex("01005e000001")
    )
    assert is_unicast(SRC) and not is_multicast(SRC)
    # RFC 1112 6.4: 224.128.1.2 and 224.0.1.2 share 01:00:5e:00:01:02
    assert ipv4_multicast_mac(bytes([224, 128, 1, 2])) == bytes.fromhex("01005e000102")
    assert ipv4_multicast_mac(bytes([239, 255, 255, 250])) == bytes.fromhex("01005e7ffffa")
    assert mac_to_str(SRC) == "02:00:00:00:00:01"
    assert mac_from_str("02:00:00:00:00:01") == SRC
    assert mac_from_str("02-00-00-00-00-01") == SRC
    with pytest.raises(ValueError):
        mac_from_str("02:00:00:00:00")
