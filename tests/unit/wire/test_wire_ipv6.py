"""IPv6, its extension headers, ICMPv6, ND and UDP/IPv6: scapy as the oracle both ways,
plus truncations that must raise only ``Malformed``."""

import random

import pytest

from iopkt_fs.stack.wire import icmpv6 as w6
from iopkt_fs.stack.wire.errors import Malformed
from iopkt_fs.stack.wire.ipv6 import (
    Ipv6FragmentRepr, Ipv6OptionsRepr, Ipv6Packet, Ipv6Repr, Ipv6RoutingRepr, eui64_link_local,
    ext_header_len, ip6, ip6_str, iter_options, multicast_mac, scope, solicited_node,
)
from iopkt_fs.stack.wire.udp import UdpPacket, UdpRepr

scapy = pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA,
    ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr,
    ICMPv6PacketTooBig, ICMPv6ParamProblem, ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, PadN, RouterAlert, UDP, raw,
)

SRC = ip6("fe80::200:ff:fe00:100")
DST = ip6("2001:db8::1")
MAC = bytes.fromhex("001122334456")


def test_header_both_ways():
    ours = Ipv6Repr(SRC, DST, 59, 0, 255, 0xB8, 0x12345).to_bytes()
    theirs = IPv6(raw(IPv6(src=ip6_str(SRC), dst=ip6_str(DST), nh=59, hlim=255, tc=0xB8, fl=0x12345)))
    assert raw(theirs) == ours
    r = Ipv6Repr.parse(raw(IPv6(src="::1", dst="ff02::1", nh=17, hlim=1, tc=3, fl=7) / b"x"))
    assert (r.src, r.dst, r.next_header, r.hop_limit, r.traffic_class, r.flow_label) == (
        ip6("::1"), ip6("ff02::1"), 17, 1, 3, 7)


def test_padding_is_cut_and_lies_are_malformed():
    pkt = raw(IPv6(src="::1", dst="::2", nh=59, plen=4) / b"abcd") + b"\0" * 10
    assert len(Ipv6Packet.new_checked(pkt)) == 44
    with pytest.raises(Malformed):
        Ipv6Packet.new_checked(raw(IPv6(src="::1", dst="::2", nh=59, plen=10)) + b"abc")
    with pytest.raises(Malformed):
        Ipv6Packet.new_checked(b"\x45" + bytes(39))


def test_extension_headers_against_scapy():
    hbh = raw(IPv6ExtHdrHopByHop(nh=60, options=[RouterAlert(value=0)]))
    assert Ipv6OptionsRepr.parse(hbh) == Ipv6OptionsRepr(60, ((5, b"\0\0"),))
    assert Ipv6OptionsRepr(60, ((5, b"\0\0"),)).to_bytes() == hbh
    assert [(i, t) for i, t, _ in iter_options(hbh)] == [(2, 5), (6, 1)]
    dst = raw(IPv6ExtHdrDestOpt(nh=17, options=[PadN(optdata=b"\0" * 4)]))
    assert Ipv6OptionsRepr.parse(dst).next_header == 17 and ext_header_len(60, dst) == 8
    rh = raw(IPv6ExtHdrRouting(nh=58, type=0, segleft=1, addresses=["2001:db8::9"]))
    r = Ipv6RoutingRepr.parse(rh)
    assert (r.next_header, r.routing_type, r.segments_left, len(r.data)) == (58, 0, 1, 20)
    assert r.to_bytes() == rh
    fh = raw(IPv6ExtHdrFragment(nh=17, offset=185, m=1, id=0xDEADBEEF))
    f = Ipv6FragmentRepr.parse(fh)
    assert f == Ipv6FragmentRepr(17, 185 * 8, True, 0xDEADBEEF) and not f.is_atomic
    assert f.to_bytes() == fh
    assert Ipv6FragmentRepr.parse(raw(IPv6ExtHdrFragment(nh=6))).is_atomic


@pytest.mark.parametrize("parse,build", [
    (Ipv6OptionsRepr.parse, lambda: raw(IPv6ExtHdrHopByHop(nh=59, options=[RouterAlert()]))),
    (Ipv6RoutingRepr.parse, lambda: raw(IPv6ExtHdrRouting(nh=58, segleft=0, addresses=["::1"]))),
    (Ipv6FragmentRepr.parse, lambda: raw(IPv6ExtHdrFragment(nh=58, offset=1))),
])
def test_extension_truncations_raise_malformed(parse, build):
    data = build()
    parse(data)
    for n in range(len(data)):
        with pytest.raises(Malformed):
            parse(data[:n])


def test_option_running_past_header_is_malformed():
    bad = bytes((59, 0, 0x1E, 9, 0, 0, 0, 0))
    with pytest.raises(Malformed):
        list(iter_options(bad))


def _theirs(msg):
    return raw(IPv6(src=ip6_str(SRC), dst=ip6_str(DST)) / msg)[40:]


@pytest.mark.parametrize("ours,theirs", [
    (w6.Icmpv6EchoRequest(7, 9, b"ping"), lambda: ICMPv6EchoRequest(id=7, seq=9, data=b"ping")),
    (w6.Icmpv6EchoReply(7, 9, b"pong"), lambda: ICMPv6EchoReply(id=7, seq=9, data=b"pong")),
    (w6.Icmpv6DstUnreachable(4, b"q" * 48), lambda: ICMPv6DestUnreach(code=4) / (b"q" * 48)),
    (w6.Icmpv6PacketTooBig(1280, b"q" * 48), lambda: ICMPv6PacketTooBig(mtu=1280) / (b"q" * 48)),
    (w6.Icmpv6TimeExceeded(1, b"q" * 48), lambda: ICMPv6TimeExceeded(code=1) / (b"q" * 48)),
    (w6.Icmpv6ParamProblem(0, 0x2A, b"q" * 48), lambda: ICMPv6ParamProblem(code=0, ptr=0x2A) / (b"q" * 48)),
    (w6.NdNeighborSolicit(DST, (w6.NdOption(1, MAC),)),
     lambda: ICMPv6ND_NS(tgt=ip6_str(DST)) / ICMPv6NDOptSrcLLAddr(lladdr="00:11:22:33:44:56")),
    (w6.NdNeighborAdvert(DST, False, True, True, (w6.NdOption(2, MAC),)),
     lambda: ICMPv6ND_NA(tgt=ip6_str(DST), R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr="00:11:22:33:44:56")),
    (w6.NdRouterAdvert(64, False, True, 1800, 0, 0, (
        w6.NdPrefixInfo(64, True, True, 86400, 14400, ip6("2001:db8::")).to_option(),
        w6.NdMtu(1500).to_option())),
     lambda: ICMPv6ND_RA(chlim=64, M=0, O=1, prf=0, routerlifetime=1800)
     / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=14400,
                             prefix="2001:db8::") / ICMPv6NDOptMTU(mtu=1500)),
])
def test_icmpv6_both_ways(ours, theirs):
    data = _theirs(theirs())
    assert ours.to_bytes(SRC, DST) == data
    assert w6.Icmpv6Repr.parse(data, SRC, DST) == ours
    bad = bytearray(data)
    bad[-1] ^= 1
    with pytest.raises(Malformed):
        w6.Icmpv6Repr.parse(bytes(bad), SRC, DST)


def test_nd_option_length_zero_is_malformed():
    body = w6.NdNeighborSolicit(DST).to_bytes(SRC, DST) + bytes((1, 0, 0, 0, 0, 0, 0, 0))
    with pytest.raises(Malformed):
        w6.Icmpv6Repr.parse(body, SRC, DST, verify=False)
    assert w6.option_lladdr((w6.NdOption(1, MAC),), 1) == MAC
    info = w6.NdPrefixInfo.from_option(w6.NdPrefixInfo(64, True, False, 5, 3, DST).to_option())
    assert (info.on_link, info.autonomous, info.valid_lifetime) == (True, False, 5)


def test_udp_over_ipv6_checksum():
    theirs = raw(IPv6(src=ip6_str(SRC), dst=ip6_str(DST)) / UDP(sport=5, dport=7) / b"hello")[40:]
    assert UdpRepr(5, 7, b"hello").to_bytes(SRC, DST) == theirs
    assert UdpRepr.parse(theirs, SRC, DST).payload == b"hello"
    zero = bytearray(theirs)
    zero[6:8] = b"\0\0"
    assert not UdpPacket.new_checked(bytes(zero)).verify_checksum(SRC, DST)   # RFC 8200 8.1
    assert UdpPacket.new_checked(UdpRepr(1, 2).to_bytes(SRC, DST, checksum=False)).checksum != 0


def test_zero_sum_is_sent_as_ffff():
    rng = random.Random(3)
    for _ in range(2000):
        data = rng.randbytes(2)
        d = UdpRepr(1, 2, data).to_bytes(SRC, DST)
        assert d[6:8] != b"\0\0"
        assert UdpPacket.new_checked(d).verify_checksum(SRC, DST)


def test_address_helpers():
    assert eui64_link_local(bytes.fromhex("1c69a5d010cd")) == ip6("fe80::1e69:a5ff:fed0:10cd")
    assert solicited_node(ip6("2001:db8::12:3456")) == ip6("ff02::1:ff12:3456")
    assert multicast_mac(ip6("ff02::1:ff12:3456")) == bytes.fromhex("3333ff123456")
    assert (scope(ip6("fe80::1")), scope(ip6("::1")), scope(ip6("fd00::1")), scope(ip6("ff05::2"))) == (2, 2, 14, 5)
    assert ip6_str(ip6("2001:0db8:0:0:1:0:0:1")) == "2001:db8::1:0:0:1"


def test_mutations_raise_only_malformed():
    rng = random.Random(11)
    seeds = [
        w6.NdNeighborAdvert(DST, True, True, False, (w6.NdOption(2, MAC),)).to_bytes(SRC, DST),
        w6.NdRouterAdvert(64, options=(w6.NdMtu(1500).to_option(),)).to_bytes(SRC, DST),
        w6.Icmpv6EchoRequest(1, 2, b"x" * 20).to_bytes(SRC, DST),
    ]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[: rng.randrange(len(data) + 1)])
        try:
            w6.Icmpv6Repr.parse(data, SRC, DST, verify=False)
        except Malformed:
            pass
