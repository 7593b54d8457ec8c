"""The IPv6 layer at literal times: link-local + DAD, ND both ways, echo, extension
headers, fragments (RFC 5722, RFC 6946), ICMPv6 rules, v4 variants, UDP/TCP over IPv6.
Frames are built and read with scapy (the oracle); the stack is driven by hand."""

import errno
import ipaddress

import pytest

from iopkt_fs.stack.config import V4_HC, StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.inet6.nd6_rtr import ND6_IFF_IFDISABLED
from iopkt_fs.stack.inet6.ndisc import IN6_IFF_DUPLICATED, IN6_IFF_TENTATIVE
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import seconds

scapy = pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    IPv6ExtHdrHopByHop,
    ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, ICMPv6ParamProblem, ICMPv6TimeExceeded, IPv6,
    IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrRouting, Ether, HBHOptUnknown, UDP, TCP,
    fragment6, raw,
)

OUR_MAC = "02:00:00:00:00:01"
PEER_MAC = "02:00:00:00:00:02"
OUR_LL = "fe80::ff:fe00:1"
PEER_LL = "fe80::ff:fe00:2"
OUR = "2001:db8::1"
PEER = "2001:db8::2"
S = seconds(1)


def host(**config):
    stack = Stack(StackConfig(seed=3, **config))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex(OUR_MAC.replace(":", "")),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address(OUR), 64)
    return stack, en0


def frames(en0):
    """What the stack sent, MLD reports left out (hop-by-hop Router Alert; test_mld6.py)."""
    out = [Ether(bytes(f)) for f in en0.txq]
    en0.txq.clear()
    return [f for f in out if IPv6ExtHdrHopByHop not in f]


def ready(**config):
    """A host whose addresses passed DAD, with the peer's link address known."""
    stack, en0 = host(**config)
    stack.poll(0)
    stack.poll(S)
    frames(en0)
    stack.input(en0, [raw(ns(OUR, PEER))], S)
    frames(en0)
    return stack, en0


def eth(pkt, dst=OUR_MAC):
    return Ether(src=PEER_MAC, dst=dst) / pkt


def ns(target, src, dst=None, hlim=255, slla=True):
    dst = dst or target
    p = IPv6(src=src, dst=dst, hlim=hlim) / ICMPv6ND_NS(tgt=target)
    if slla:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
    return eth(p, dst="33:33:ff:00:00:01" if dst.startswith("ff") else OUR_MAC)


def echo(dst=OUR, src=PEER, data=b"ping", **ip):
    return IPv6(src=src, dst=dst, **ip) / ICMPv6EchoRequest(id=7, seq=1, data=data)


def test_link_local_and_dad():
    stack, en0 = host()
    lls = [a for a in en0.inet6_addrs() if a.address.is_link_local]
    assert [str(a.address) for a in lls] == [OUR_LL]
    assert all(a.flags6 & IN6_IFF_TENTATIVE for a in en0.inet6_addrs())
    assert stack.poll_at() == 0
    stack.poll(0)
    dads = frames(en0)
    assert sorted(f[ICMPv6ND_NS].tgt for f in dads) == sorted([OUR, OUR_LL])
    for f in dads:
        assert f[IPv6].src == "::" and f[IPv6].hlim == 255 and f[IPv6].dst.startswith("ff02::1:ff")
        assert f.dst.startswith("33:33:ff") and ICMPv6NDOptSrcLLAddr not in f
    # Tentative: no echo reply, no source address.
    stack.input(en0, [raw(eth(echo()))], 10)
    assert frames(en0) == [] and stack.inet6.stats.tentative == 1
    stack.poll(S)
    assert not any(a.flags6 for a in en0.inet6_addrs())
    assert stack.inet6.source_for(ipaddress.IPv6Address(PEER).packed) == ipaddress.IPv6Address(OUR).packed


def test_dad_duplicate_from_na_and_from_ns():
    stack, en0 = host()
    stack.poll(0)
    frames(en0)
    na = eth(IPv6(src=PEER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=OUR, S=0, O=1)
             / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC), dst="33:33:00:00:00:01")
    stack.input(en0, [raw(na)], 10)
    stack.input(en0, [raw(ns(OUR_LL, "::", dst="ff02::1:ff00:1", slla=False))], 20)
    stack.poll(S)
    flags = {str(a.address): a.flags6 for a in en0.inet6_addrs()}
    assert flags == {OUR: IN6_IFF_DUPLICATED, OUR_LL: IN6_IFF_DUPLICATED}
    assert stack.inet6.source_for(ipaddress.IPv6Address(PEER).packed, quiet=True) is None


def test_a_duplicated_hardware_link_local_disables_ipv6_on_the_interface():
    """RFC 4862 5.4.5: the link-local address made from the MAC is duplicated, so the
    MAC is too: IPv6 is switched off on en0 (ND6_IFF_IFDISABLED, logged as NetBSD does),
    and it cannot be switched back on while that address stays duplicated."""
    logged = []
    stack = Stack(StackConfig(seed=3), log=lambda sev, text: logged.append((sev, text)))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex(OUR_MAC.replace(":", "")),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address(OUR), 64)
    stack.poll(0)
    frames(en0)
    stack.input(en0, [raw(ns(OUR_LL, "::", dst="ff02::1:ff00:1", slla=False))], 20)
    assert en0.inet6_disabled and stack.inet6.rtr.info(en0).flags & ND6_IFF_IFDISABLED
    assert (2, "en0: possible hardware address duplication detected, disable IPv6") in logged
    stack.poll(S)
    stack.input(en0, [raw(eth(echo()))], S + 10)
    assert frames(en0) == [] and stack.inet6.stats.ifdisabled == 1
    with pytest.raises(StackError) as err:
        stack.inet6.rtr.set_disabled(en0, False)
    assert err.value.errno == errno.EINVAL and en0.inet6_disabled


def test_a_disabled_interface_takes_and_sends_no_ipv6_until_enabled():
    stack, en0 = ready()
    stack.inet6.rtr.set_disabled(en0, True)
    stack.input(en0, [raw(eth(echo()))], 2 * S)
    assert frames(en0) == [] and stack.inet6.stats.ifdisabled == 1
    dropped = stack.inet6.stats.odropped
    stack.inet6.output(b"x" * 8, ipaddress.IPv6Address(OUR).packed, ipaddress.IPv6Address(PEER).packed,
                       17, 2 * S)
    assert frames(en0) == [] and stack.inet6.stats.odropped == dropped + 1
    stack.inet6.rtr.set_disabled(en0, False)
    stack.input(en0, [raw(eth(echo()))], 3 * S)
    (reply,) = frames(en0)
    assert ICMPv6EchoReply in reply and reply[IPv6].dst == PEER


def test_own_looped_dad_ns_is_not_a_duplicate():
    stack, en0 = host()
    stack.poll(0)
    looped = frames(en0)
    stack.input(en0, [raw(f) for f in looped], 10)
    stack.poll(S)
    assert not any(a.flags6 for a in en0.inet6_addrs())


def test_ns_answered_and_echo_replied():
    stack, en0 = host()
    stack.poll(0)
    stack.poll(S)
    frames(en0)
    stack.input(en0, [raw(ns(OUR, PEER, dst="ff02::1:ff00:1"))], 2 * S)
    (na,) = frames(en0)
    assert na[IPv6].src == OUR and na[IPv6].dst == PEER and na[IPv6].hlim == 255
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O, na[ICMPv6ND_NA].R) == (1, 1, 0)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == OUR_MAC and na.dst == PEER_MAC
    stack.input(en0, [raw(eth(echo(data=b"x" * 100)))], 2 * S)
    (reply,) = frames(en0)
    assert reply[ICMPv6EchoReply].data == b"x" * 100 and reply[IPv6].dst == PEER
    assert reply[ICMPv6EchoReply].cksum == ICMPv6EchoReply(raw(reply[ICMPv6EchoReply])).cksum
    assert stack.inet6.nd.get(en0, ipaddress.IPv6Address(PEER).packed).state.name == "DELAY"


def test_resolution_holds_then_sends():
    stack, en0 = host()
    stack.poll(0)
    stack.poll(S)
    frames(en0)
    stack.input(en0, [raw(eth(echo(src=PEER_LL, dst=OUR_LL)))], 2 * S)
    (sol,) = frames(en0)
    assert sol[ICMPv6ND_NS].tgt == PEER_LL and sol[IPv6].dst == "ff02::1:ff00:2"
    assert sol[ICMPv6NDOptSrcLLAddr].lladdr == OUR_MAC and sol[IPv6].src == OUR_LL
    na = eth(IPv6(src=PEER_LL, dst=OUR_LL, hlim=255) / ICMPv6ND_NA(tgt=PEER_LL, S=1, O=1)
             / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC))
    stack.input(en0, [raw(na)], 2 * S + 10)
    (reply,) = frames(en0)
    assert ICMPv6EchoReply in reply and reply.dst == PEER_MAC
    assert stack.inet6.nd.get(en0, ipaddress.IPv6Address(PEER_LL).packed).state.name == "REACHABLE"


def test_unanswered_resolution_gives_up_after_three():
    stack, en0 = host()
    stack.poll(0)
    stack.poll(S)
    frames(en0)
    stack.input(en0, [raw(eth(echo(src="2001:db8::9")))], 2 * S)
    for t in (3, 4, 5):
        stack.poll(t * S)
    assert len([f for f in frames(en0) if ICMPv6ND_NS in f]) == 3
    assert stack.inet6.nd.stats.timeouts == 1


@pytest.mark.parametrize("bad", [
    lambda: ns(OUR, PEER, hlim=254),
    lambda: eth(IPv6(src=PEER, dst=OUR, hlim=255) / IPv6ExtHdrFragment(nh=58) / ICMPv6ND_NS(tgt=OUR)),
    lambda: eth(IPv6(src=PEER, dst=OUR, hlim=255) / ICMPv6ND_NS(tgt=OUR, code=1)),
    lambda: eth(IPv6(src="::", dst=OUR, hlim=255) / ICMPv6ND_NS(tgt=OUR)),
])
def test_invalid_nd_is_dropped(bad):
    stack, en0 = host()
    stack.poll(0)
    stack.poll(S)
    frames(en0)
    stack.input(en0, [raw(bad())], 2 * S)
    assert frames(en0) == []


def test_extension_headers():
    stack, en0 = ready()
    # Unknown option, action 10: Parameter Problem code 2 at the option type.
    bad_opt = IPv6(src=PEER, dst=OUR) / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x9E, optdata=b"ab")]) \
        / ICMPv6EchoRequest()
    # Routing header type 0 with segments left: Parameter Problem code 0 at 0x2a.
    rh0 = IPv6(src=PEER, dst=OUR) / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::9"]) \
        / ICMPv6EchoRequest()
    rh0_done = IPv6(src=PEER, dst=OUR) / IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::9"]) \
        / ICMPv6EchoRequest()
    unknown_nh = IPv6(src=PEER, dst=OUR, nh=253) / b"12345678"
    skip_opt = IPv6(src=PEER, dst=OUR) / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"ab")]) \
        / ICMPv6EchoRequest()
    stack.input(en0, [raw(eth(p)) for p in (bad_opt, rh0, rh0_done, unknown_nh, skip_opt)], 2 * S)
    out = frames(en0)
    pp = [(f[ICMPv6ParamProblem].code, f[ICMPv6ParamProblem].ptr) for f in out if ICMPv6ParamProblem in f]
    assert pp == [(2, 42), (0, 42), (1, 6)]
    assert len([f for f in out if ICMPv6EchoReply in f]) == 2


def test_reassembly_overlap_and_atomic():
    stack, en0 = ready()
    big = echo(data=bytes(range(256)) * 12) / b""
    big[IPv6].nh = 44
    pieces = fragment6(IPv6(src=PEER, dst=OUR) / IPv6ExtHdrFragment(id=5) / ICMPv6EchoRequest(
        id=7, seq=1, data=bytes(range(256)) * 12), 1280)
    stack.input(en0, [raw(eth(p)) for p in reversed(pieces)], 2 * S)
    out = frames(en0)
    replies = [f for f in out if IPv6ExtHdrFragment in f]
    assert len(replies) == 3 and stack.inet6.stats.reassembled == 1   # the reply goes out in pieces
    # RFC 6946: an atomic fragment is processed alone, even next to a queue with its ID.
    stack.input(en0, [raw(eth(pieces[0]))], 3 * S)
    atomic = IPv6(src=PEER, dst=OUR) / IPv6ExtHdrFragment(id=5, m=0, offset=0) / ICMPv6EchoRequest(data=b"a")
    stack.input(en0, [raw(eth(atomic))], 3 * S)
    assert [f[ICMPv6EchoReply].data for f in frames(en0)] == [b"a"]
    # RFC 5722: an overlap kills the datagram; its later fragments are dropped too.
    overlap = IPv6(raw(pieces[1]))
    overlap[IPv6ExtHdrFragment].offset -= 1
    stack.input(en0, [raw(eth(overlap))], 3 * S)
    stack.input(en0, [raw(eth(p)) for p in pieces[1:]], 3 * S)
    assert frames(en0) == [] and stack.inet6.stats.reassembled == 1
    stack.poll(3 * S + seconds(60))
    # A killed datagram sends no Time Exceeded (only NUD's probe of the peer goes out).
    assert [f for f in frames(en0) if ICMPv6ND_NS not in f] == []


def test_reassembly_timeout_sends_time_exceeded():
    stack, en0 = ready()
    pieces = fragment6(IPv6(src=PEER, dst=OUR) / IPv6ExtHdrFragment(id=9) / ICMPv6EchoRequest(data=bytes(3000)), 1280)
    stack.input(en0, [raw(eth(pieces[0]))], 2 * S)
    stack.poll(2 * S + seconds(60))
    (te,) = frames(en0)
    assert te[ICMPv6TimeExceeded].code == 1


def test_no_errors_about_multicast_or_errors_and_rate_limited():
    stack, en0 = ready()
    mcast = eth(IPv6(src=PEER, dst="ff02::1", nh=253) / b"12345678", dst="33:33:00:00:00:01")
    err = IPv6(src=PEER, dst=OUR) / ICMPv6DestUnreach() / IPv6(src=OUR, dst=PEER, nh=253)
    stack.input(en0, [raw(mcast), raw(eth(err))], 2 * S)
    assert frames(en0) == []
    stack.sysctl.set("net.inet6.icmp6.errppslimit", 3)
    stack.input(en0, [raw(eth(IPv6(src=PEER, dst=OUR, nh=253) / b"12345678"))] * 10, 3 * S)
    assert len(frames(en0)) == 3 and stack.inet6.icmp.stats.toofreq == 7


def test_v4_variant_counts_ipv6_as_unknown():
    stack = Stack(StackConfig(seed=3, variant=V4_HC))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex("020000000001"),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address("10.0.0.1"), 24)
    en0.txq.clear()
    stack.input(en0, [raw(eth(echo()))], 0)
    assert stack.inet6 is None and en0.stats.noproto == 1 and stack.inet.link_stats.noproto == 1
    assert not en0.inet6_addrs()


def test_udp_over_ipv6_both_ways():
    stack, en0 = ready()
    sock = stack.inet.udp.socket()
    sock.bind(None, 5353)
    good = IPv6(src=PEER, dst=OUR) / UDP(sport=9, dport=5353) / b"hello"
    zero = IPv6(src=PEER, dst=OUR) / UDP(sport=9, dport=5353, chksum=0) / b"zero"
    stack.input(en0, [raw(eth(good)), raw(eth(zero))], 2 * S)
    data, (host_, port) = sock.recvfrom()
    assert (data, host_, port) == (b"hello", PEER, 9) and not sock.rxq
    sock.sendto(b"back", PEER, 9, 2 * S)
    (f,) = frames(en0)
    assert f[UDP].payload.load == b"back" and f[IPv6].src == OUR
    assert UDP(raw(f[UDP])).chksum == f[UDP].chksum
    # A closed port: ICMPv6 port unreachable.
    stack.input(en0, [raw(eth(IPv6(src=PEER, dst=OUR) / UDP(sport=9, dport=1) / b"x"))], 2 * S)
    (pu,) = frames(en0)
    assert (pu[ICMPv6DestUnreach].code, pu[IPv6].dst) == (4, PEER)


def test_tcp_over_ipv6_handshake():
    stack, en0 = ready()
    lst = stack.tcp.socket()
    lst.bind(bytes(4), 80)
    lst.listen(8)
    syn = IPv6(src=PEER, dst=OUR) / TCP(sport=4000, dport=80, flags="S", seq=100, options=[("MSS", 1440)])
    stack.input(en0, [raw(eth(syn))], 2 * S)
    (synack,) = frames(en0)
    assert synack[TCP].flags == "SA" and synack[TCP].ack == 101
    assert dict(synack[TCP].options)["MSS"] == 1500 - 60
    assert TCP(raw(synack[TCP])).chksum == synack[TCP].chksum


def test_ifconfig_prints_kame_inet6_lines():
    from iopkt_fs.resmgr.render import ifconfig_block
    stack, en0 = host()
    text = ifconfig_block(en0)
    assert f"\tinet6 {OUR_LL}%en0 prefixlen 64 tentative scopeid 0x{en0.index:x}" in text
    assert f"\tinet6 {OUR} prefixlen 64 tentative" in text
    stack.poll(0)
    stack.poll(S)
    text = ifconfig_block(en0)
    assert f"\tinet6 {OUR_LL}%en0 prefixlen 64 scopeid 0x{en0.index:x}" in text and "tentative" not in text
