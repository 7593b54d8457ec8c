"""parse(emit(x)) == x for every wire Repr (Hypothesis), through both to_bytes and emit."""

from hypothesis import given
from hypothesis import strategies as st
from wire_strategies import (
    arp_reprs,
    ethernet_reprs,
    icmp_reprs,
    ip_addrs,
    ipv4_reprs,
    udp_reprs,
)

from iopkt_fs.stack.wire.arp import ArpPacket, ArpRepr
from iopkt_fs.stack.wire.checksum import verify
from iopkt_fs.stack.wire.ethernet import MIN_FRAME_LEN, EthernetPacket, EthernetRepr
from iopkt_fs.stack.wire.icmp import IcmpPacket, IcmpRepr
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from iopkt_fs.stack.wire.udp import UdpPacket, UdpRepr


@given(ethernet_reprs, st.binary(max_size=100))
def test_ethernet_roundtrip(repr_, payload):
    frame = repr_.to_bytes(payload)
    assert len(frame) == max(MIN_FRAME_LEN, repr_.buffer_len() + len(payload))
    assert EthernetRepr.parse(frame) == repr_
    pkt = EthernetPacket.new_checked(frame)
    assert bytes(pkt.payload[: len(payload)]) == payload
    assert pkt.vlan_tci == repr_.vlan_tci

    buf = bytearray(repr_.buffer_len())
    repr_.emit(buf)
    assert EthernetRepr.parse(buf) == repr_


@given(arp_reprs, st.binary(max_size=40))
def test_arp_roundtrip(repr_, padding):
    packet = repr_.to_bytes()
    assert len(packet) == repr_.buffer_len() == 28
    assert ArpRepr.parse(packet + padding) == repr_
    assert len(ArpPacket.new_checked(packet + padding)) == 28

    buf = bytearray(30)
    repr_.emit(buf, 2)
    assert ArpRepr.parse(memoryview(buf)[2:]) == repr_


@given(ipv4_reprs(), st.binary(max_size=30))
def test_ipv4_roundtrip(repr_, padding):
    payload = bytes(repr_.payload_len)
    datagram = repr_.to_bytes(payload)
    assert len(datagram) == repr_.total_len
    assert verify(datagram[: repr_.header_len])
    assert Ipv4Repr.parse(datagram + padding) == repr_
    pkt = Ipv4Packet.new_checked(datagram + padding)
    assert len(pkt.payload) == repr_.payload_len
    assert pkt.options == repr_.options
    assert pkt.is_fragment == repr_.is_fragment

    buf = bytearray(repr_.buffer_len() + repr_.payload_len)
    repr_.emit(buf)
    assert Ipv4Repr.parse(buf) == repr_


@given(icmp_reprs)
def test_icmp_roundtrip(repr_):
    message = repr_.to_bytes()
    assert len(message) == repr_.buffer_len()
    assert IcmpPacket.new_checked(message).verify_checksum()
    assert IcmpRepr.parse(message) == repr_

    buf = bytearray(repr_.buffer_len() + 3)
    repr_.emit(buf, 3)
    assert IcmpRepr.parse(memoryview(buf)[3:]) == repr_


@given(udp_reprs, ip_addrs, ip_addrs, st.binary(max_size=10), st.booleans())
def test_udp_roundtrip(repr_, src, dst, padding, checksum):
    datagram = repr_.to_bytes(src, dst, checksum=checksum)
    assert len(datagram) == repr_.buffer_len()
    pkt = UdpPacket.new_checked(datagram + padding)
    assert pkt.verify_checksum(src, dst)
    assert (pkt.checksum != 0) == checksum  # a computed 0 goes out as 0xffff
    assert UdpRepr.parse(datagram + padding, src, dst) == repr_

    buf = bytearray(repr_.buffer_len())
    repr_.emit(buf, 0, src, dst, checksum=checksum)
    assert bytes(buf) == datagram


@given(udp_reprs, ipv4_reprs(max_payload=0), ethernet_reprs)
def test_stacked_roundtrip(udp, ip, eth):
    """Ethernet + IPv4 + UDP built layer by layer parse back layer by layer."""
    segment = udp.to_bytes(ip.src, ip.dst)
    ip = Ipv4Repr(ip.src, ip.dst, 17, len(segment), ip.ttl, ip.tos, ip.ident, options=ip.options)
    frame = eth.to_bytes(ip.to_bytes(segment))

    epkt = EthernetPacket.new_checked(frame)
    assert EthernetRepr.parse(epkt) == eth
    ipkt = Ipv4Packet.new_checked(epkt.payload)
    assert Ipv4Repr.parse(ipkt) == ip
    assert UdpRepr.parse(ipkt.payload, ipkt.src, ipkt.dst) == udp
