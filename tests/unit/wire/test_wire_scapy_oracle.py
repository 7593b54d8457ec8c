"""scapy as an independent oracle, both ways.

Ours -> scapy: scapy dissects our bytes to the same field values, and rebuilding the
dissection with every checksum cleared (scapy recomputes them) gives our bytes back, so
scapy agrees our checksums are right. scapy -> ours: frames scapy builds (IP options,
802.1Q tags, padded short frames, fragments, ICMP errors with quoted datagrams) parse to
the same values with our code. scapy costs ~1 ms a packet, so example counts are modest.
"""

import pytest
from hypothesis import assume, HealthCheck, given, settings
from hypothesis import strategies as st
from wire_strategies import arp_reprs, icmp_reprs, ip_addrs, macs, u8, u16, udp_reprs

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    ARP,
    ICMP,
    IP,
    UDP,
    Dot1Q,
    Ether,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
    Padding,
    Raw,
    fragment,
    raw,
)

from iopkt_fs.stack.wire.arp import ArpRepr  # noqa: E402
from iopkt_fs.stack.wire.ethernet import (
    EtherType,
    EthernetPacket,
    EthernetRepr,
    mac_to_str,
)  # noqa: E402
from iopkt_fs.stack.wire.icmp import (  # noqa: E402
    IcmpDstUnreachable,
    IcmpEchoReply,
    IcmpEchoRequest,
    IcmpGeneric,
    IcmpParamProblem,
    IcmpRepr,
    IcmpTimeExceeded,
    quote_original,
)
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr, ip4, ip4_str  # noqa: E402
from iopkt_fs.stack.wire.udp import UdpPacket, UdpRepr  # noqa: E402

oracle = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Well-formed options scapy can dissect and rebuild byte for byte: NOPs, Router Alert
# (RFC 2113) and Record Route, padded with End of Options List to a 4-byte boundary.
_option = st.one_of(
    st.just(b"\x01"),
    st.just(b"\x94\x04\x00\x00"),
    st.integers(0, 3).map(lambda n: bytes([7, 3 + 4 * n, 4]) + bytes(4 * n)),
)
well_formed_options = (
    st.lists(_option, max_size=4)
    .map(b"".join)
    .filter(lambda o: len(o) <= 40)
    .map(lambda o: o + bytes(-len(o) % 4))
)


def rebuilt(pkt, layers=(IP, UDP, ICMP)) -> bytes:
    """scapy's own bytes for a dissected packet, with the checksums of ``layers`` recomputed.

    Only the layers we built are cleared: random bytes after an IPv4 header may dissect
    as an ICMP or UDP header whose checksum was never meant to be right.
    """
    clone = pkt.copy()
    for layer in layers:
        if layer in clone:
            clone[layer].chksum = None
    return raw(clone)


# -- ours -> scapy ---------------------------------------------------------------------


@oracle
@given(
    macs,
    macs,
    st.sampled_from([0x0800, 0x0806, 0x86DD, 0x88CC]),
    st.one_of(st.none(), u16),
    st.binary(max_size=80),
)
def test_scapy_dissects_our_ethernet(dst, src, ethertype, tci, payload):
    frame = EthernetRepr(dst, src, ethertype, tci).to_bytes(payload)
    pkt = Ether(frame)
    assert (pkt.dst, pkt.src) == (mac_to_str(dst), mac_to_str(src))
    if tci is None:
        assert pkt.type == ethertype
    else:
        assert pkt.type == 0x8100
        tag = pkt[Dot1Q]
        assert (tag.prio, tag.dei, tag.vlan, tag.type) == (
            tci >> 13,
            (tci >> 12) & 1,
            tci & 0xFFF,
            ethertype,
        )
    assert len(frame) >= 60


@oracle
@given(arp_reprs)
def test_scapy_dissects_our_arp(repr_):
    pkt = ARP(repr_.to_bytes())
    assert (pkt.hwtype, pkt.ptype, pkt.hwlen, pkt.plen) == (1, 0x0800, 6, 4)
    assert pkt.op == repr_.operation
    assert (pkt.hwsrc, pkt.psrc) == (mac_to_str(repr_.sender_hw), ip4_str(repr_.sender_ip))
    assert (pkt.hwdst, pkt.pdst) == (mac_to_str(repr_.target_hw), ip4_str(repr_.target_ip))


@oracle
@given(
    ip_addrs,
    ip_addrs,
    u8,
    u8,
    u16,
    u8,
    st.booleans(),
    st.booleans(),
    st.integers(0, 0x1FFF),
    well_formed_options,
    st.binary(max_size=64),
)
def test_scapy_dissects_our_ipv4(
    src, dst, proto, ttl, ident, tos, df, mf, offset8, options, payload
):
    repr_ = Ipv4Repr(src, dst, proto, len(payload), ttl, tos, ident, df, mf, offset8 * 8, options)
    datagram = repr_.to_bytes(payload)
    pkt = IP(datagram)
    assert (pkt.version, pkt.ihl, pkt.len) == (4, repr_.header_len // 4, repr_.total_len)
    assert (pkt.tos, pkt.id, pkt.ttl, pkt.proto, pkt.frag) == (tos, ident, ttl, proto, offset8)
    assert (pkt.flags.DF, pkt.flags.MF, pkt.flags.evil) == (df, mf, False)
    assert (pkt.src, pkt.dst) == (ip4_str(src), ip4_str(dst))
    assert raw(IP(datagram))[20 : repr_.header_len] == options
    assert rebuilt(pkt, (IP,)) == datagram  # scapy computes the same header checksum


@oracle
@given(icmp_reprs, ip_addrs, ip_addrs)
def test_scapy_dissects_our_icmp(repr_, src, dst):
    # scapy's ICMP layer has fixed fields after the header for timestamps (12 bytes) and
    # address masks (4 bytes); shorter messages are ours to send but not scapy's to dissect.
    if isinstance(repr_, IcmpGeneric):
        assume(not (repr_.type in (13, 14) and len(repr_.payload) < 12))
        assume(not (repr_.type in (17, 18) and len(repr_.payload) < 4))
    message = repr_.to_bytes()
    ip = IP(Ipv4Repr(src, dst, 1, len(message)).to_bytes(message))
    icmp = ip[ICMP]
    assert rebuilt(ip, (IP, ICMP)) == raw(ip)  # both checksums agree with scapy's
    if isinstance(repr_, (IcmpEchoRequest, IcmpEchoReply)):
        assert (icmp.type, icmp.id, icmp.seq) == (
            8 if isinstance(repr_, IcmpEchoRequest) else 0,
            repr_.ident,
            repr_.seq,
        )
        assert bytes(icmp.payload) == repr_.data
    elif isinstance(repr_, IcmpDstUnreachable):
        assert (icmp.type, icmp.code, icmp.nexthopmtu) == (3, repr_.code, repr_.next_hop_mtu)
    elif isinstance(repr_, IcmpTimeExceeded):
        assert (icmp.type, icmp.code) == (11, repr_.code)
    elif isinstance(repr_, IcmpParamProblem):
        assert (icmp.type, icmp.code, icmp.ptr) == (12, repr_.code, repr_.pointer)
    else:
        assert (icmp.type, icmp.code) == (repr_.type, repr_.code)


@oracle
@given(udp_reprs, ip_addrs, ip_addrs)
def test_scapy_dissects_our_udp(repr_, src, dst):
    segment = repr_.to_bytes(src, dst)
    ip = IP(Ipv4Repr(src, dst, 17, len(segment)).to_bytes(segment))
    udp = ip[UDP]
    assert (udp.sport, udp.dport, udp.len) == (repr_.src_port, repr_.dst_port, len(segment))
    assert bytes(udp.payload) == repr_.payload
    assert rebuilt(ip, (IP, UDP)) == raw(ip)  # scapy computes the same pseudo-header checksum


# -- scapy -> ours ---------------------------------------------------------------------


@oracle
@given(
    macs,
    macs,
    st.one_of(st.none(), st.tuples(st.integers(0, 7), st.integers(0, 4095))),
    ip_addrs,
    ip_addrs,
    u16,
    u16,
    st.binary(max_size=40),
)
def test_we_parse_scapy_padded_udp_frames(dst, src, vlan, ip_src, ip_dst, sport, dport, data):
    l2 = Ether(dst=mac_to_str(dst), src=mac_to_str(src))
    if vlan is not None:
        l2 = l2 / Dot1Q(prio=vlan[0], vlan=vlan[1])
    frame = raw(
        l2
        / IP(src=ip4_str(ip_src), dst=ip4_str(ip_dst))
        / UDP(sport=sport, dport=dport)
        / Raw(data)
    )
    frame += bytes(max(0, 60 - len(frame)))  # what a NIC hands us for a short frame
    eth = EthernetPacket.new_checked(frame)
    assert EthernetRepr.parse(eth) == EthernetRepr(
        dst, src, EtherType.IPV4, None if vlan is None else vlan[0] << 13 | vlan[1]
    )
    ip = Ipv4Packet.new_checked(eth.payload)
    ip_repr = Ipv4Repr.parse(ip)
    assert (ip_repr.src, ip_repr.dst, ip_repr.protocol, ip_repr.payload_len) == (
        ip_src,
        ip_dst,
        17,
        8 + len(data),
    )
    assert UdpRepr.parse(ip.payload, ip.src, ip.dst) == UdpRepr(sport, dport, data)


_OPTION_SIZE = {"nop": 1, "ra": 4, "rr1": 7, "rr3": 15}


@oracle
@given(
    st.lists(st.sampled_from(["nop", "ra", "rr1", "rr3"]), min_size=1, max_size=4).filter(
        lambda kinds: sum(_OPTION_SIZE[k] for k in kinds) <= 40  # IHL caps options at 40
    ),
    ip_addrs,
    ip_addrs,
    st.binary(max_size=30),
)
def test_we_parse_scapy_ip_options(kinds, src, dst, data):
    make = {
        "nop": IPOption_NOP,
        "ra": IPOption_Router_Alert,
        "rr1": lambda: IPOption_RR(routers=["192.0.2.1"]),
        "rr3": lambda: IPOption_RR(routers=["192.0.2.1", "192.0.2.2", "192.0.2.3"]),
    }
    built = IP(src=ip4_str(src), dst=ip4_str(dst), options=[make[k]() for k in kinds]) / Raw(data)
    datagram = raw(built)
    again = IP(datagram)
    repr_ = Ipv4Repr.parse(datagram)
    assert repr_.header_len == again.ihl * 4
    assert repr_.options == datagram[20 : again.ihl * 4]
    assert repr_.payload_len == len(data)
    assert bytes(Ipv4Packet.new_checked(datagram).payload) == data


@oracle
@given(st.binary(min_size=1, max_size=3000), st.sampled_from([8, 16, 64, 576, 1480]), u16)
def test_we_parse_and_reassemble_scapy_fragments(data, fragsize, ident):
    original = IP(src="10.0.0.1", dst="10.0.0.2", id=ident, proto=17) / Raw(data)
    pieces = fragment(original, fragsize=fragsize)
    rebuilt_payload = bytearray(len(data))
    ends = []
    for piece in pieces:
        repr_ = Ipv4Repr.parse(raw(piece))
        assert repr_.ident == ident and repr_.protocol == 17
        assert repr_.frag_offset == piece.frag * 8
        assert repr_.more_frags == bool(piece.flags.MF)
        payload = bytes(Ipv4Packet.new_checked(raw(piece)).payload)
        rebuilt_payload[repr_.frag_offset : repr_.frag_offset + len(payload)] = payload
        ends.append((repr_.frag_offset + len(payload), repr_.more_frags))
    assert bytes(rebuilt_payload) == data
    assert max(ends) == (len(data), False)
    assert all(Ipv4Repr.parse(raw(p)).is_fragment for p in pieces) == (len(pieces) > 1)


@oracle
@given(macs, ip_addrs, macs, ip_addrs, st.sampled_from([1, 2]))
def test_we_parse_scapy_arp(hwsrc, psrc, hwdst, pdst, op):
    frame = raw(
        Ether(src=mac_to_str(hwsrc))
        / ARP(
            op=op,
            hwsrc=mac_to_str(hwsrc),
            psrc=ip4_str(psrc),
            hwdst=mac_to_str(hwdst),
            pdst=ip4_str(pdst),
        )
    )
    frame += bytes(60 - len(frame))
    eth = EthernetPacket.new_checked(frame)
    assert eth.ethertype == EtherType.ARP
    assert ArpRepr.parse(eth.payload) == ArpRepr(op, hwsrc, psrc, hwdst, pdst)


@oracle
@given(u16, u16, st.binary(max_size=100), st.booleans())
def test_we_parse_scapy_echo(ident, seq, data, request):
    datagram = raw(
        IP(src="10.0.0.1", dst="10.0.0.2")
        / ICMP(type=8 if request else 0, id=ident, seq=seq)
        / Raw(data)
    )
    ip = Ipv4Packet.new_checked(datagram)
    expected = (IcmpEchoRequest if request else IcmpEchoReply)(ident, seq, data)
    assert IcmpRepr.parse(ip.payload) == expected


@oracle
@given(
    st.sampled_from([(3, 3), (3, 4), (3, 13), (11, 0), (11, 1), (12, 0)]),
    u16,
    u16,
    st.binary(max_size=20),
)
def test_we_parse_scapy_icmp_errors(type_code, sport, dport, data):
    offending = raw(
        IP(src="10.0.0.1", dst="10.9.9.9", ttl=1) / UDP(sport=sport, dport=dport) / Raw(data)
    )
    icmp_type, code = type_code
    extra = {"nexthopmtu": 1280} if type_code == (3, 4) else {"ptr": 9} if icmp_type == 12 else {}
    error = raw(
        IP(src="10.0.0.254", dst="10.0.0.1")
        / ICMP(type=icmp_type, code=code, **extra)
        / Raw(quote_original(offending))
    )
    message = IcmpRepr.parse(Ipv4Packet.new_checked(error).payload)
    quote = quote_original(offending)
    expected = {
        3: lambda: IcmpDstUnreachable(code, quote, 1280 if code == 4 else 0),
        11: lambda: IcmpTimeExceeded(code, quote),
        12: lambda: IcmpParamProblem(9, quote, code),
    }[icmp_type]()
    assert message == expected
    inner = Ipv4Packet.new_quoted(message.original)
    assert (inner.src, inner.dst, inner.protocol) == (ip4("10.0.0.1"), ip4("10.9.9.9"), 17)
    udp = UdpPacket.new_quoted(inner.payload)
    assert (udp.src_port, udp.dst_port) == (sport, dport)


@oracle
@given(st.sampled_from([4, 5, 9, 10, 13, 14, 15, 16, 17, 18]), u8, st.binary(max_size=30))
def test_we_parse_scapy_unknown_icmp_generically(icmp_type, code, data):
    message = raw(ICMP(type=icmp_type, code=code) / Raw(data))
    parsed = IcmpRepr.parse(message)
    assert isinstance(parsed, IcmpGeneric)
    assert (parsed.type, parsed.code, parsed.rest) == (
        icmp_type,
        code,
        int.from_bytes(message[4:8], "big"),
    )
    assert parsed.payload == message[8:]
    assert parsed.to_bytes() == message
