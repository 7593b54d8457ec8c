"""IPv6 forwarding and redirects at literal times: hop limit, Time Exceeded, Packet Too
Big, beyond-scope, no route, super-frames cut, Redirects sent (RFC 4861 8.2) and taken
as a host (8.1, 8.3). Frames are built and checked with scapy."""

import ipaddress

import pytest

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import (
    IFCAP_CSUM_TCPv6_Rx, IFCAP_CSUM_TCPv6_Tx, IFCAP_TSOv6, IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER,
)
from iopkt_fs.stack.wire.checksum import pseudo_header_sum_v6
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import seconds
from iopkt_fs.stack.wire.virtio import GSO_NONE, GSO_TCPV6, HDR, NEEDS_CSUM, VirtioNetHdr

pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    IPv6ExtHdrHopByHop,
    ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6ND_RA, ICMPv6ND_Redirect, ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptRedirectedHdr, ICMPv6NDOptSrcLLAddr, ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPerror6,
    IPv6,
    TCP, Ether, raw,
)

MAC0, MAC1 = "02:00:00:00:00:01", "02:00:00:00:01:01"
A_MAC, B_MAC, C_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
A, B = "2001:db8:a::2", "2001:db8:b::2"
C_LL = "fe80::ff:fe00:c"
S = seconds(1)


def _mac(text):
    return bytes.fromhex(text.replace(":", ""))


def _ip(text):
    return ipaddress.IPv6Address(text).packed


def router(forwarding=1):
    """en0 2001:db8:a::1/64 (A on it), en1 2001:db8:b::1/64 (B on it), addresses through DAD."""
    stack = Stack(StackConfig(seed=9))
    stack.sysctl.set("net.inet6.ip6.forwarding", forwarding)
    ifs = []
    for unit, mac, addr in ((0, MAC0, "2001:db8:a::1"), (1, MAC1, "2001:db8:b::1")):
        en = stack.new_interface("en", unit, kind=IFT_ETHER, mac=_mac(mac), flags=IFF_BROADCAST | IFF_MULTICAST)
        stack.add_address(en, ipaddress.IPv6Address(addr), 64)
        ifs.append(en)
    en0, en1 = ifs
    stack.poll(0)
    stack.poll(S)
    nd = stack.inet6.nd
    nd.add_static(en0, _ip(A), _mac(A_MAC))
    nd.add_static(en0, _ip(C_LL), _mac(C_MAC))
    nd.add_static(en1, _ip(B), _mac(B_MAC))
    for en in ifs:
        en.txq.clear()
    return stack, en0, en1


def frames(en):
    """What the stack sent, MLD reports left out (hop-by-hop Router Alert; test_mld6.py)."""
    out = [Ether(bytes(f)) for f in en.txq]
    en.txq.clear()
    return [f for f in out if IPv6ExtHdrHopByHop not in f]


def from_a(pkt, dst_mac=MAC0):
    return raw(Ether(src=A_MAC, dst=dst_mac) / pkt)


def test_forwarded_with_hop_limit_decremented():
    stack, en0, en1 = router()
    stack.input(en0, [from_a(IPv6(src=A, dst=B, hlim=64) / ICMPv6EchoRequest(data=b"through"))], 2 * S)
    (f,) = frames(en1)
    assert f[IPv6].hlim == 63 and f[IPv6].src == A and f[IPv6].dst == B
    assert f.dst == B_MAC and f.src == MAC1 and f[ICMPv6EchoRequest].data == b"through"
    assert frames(en0) == [] and stack.inet6.stats.forward == 1


def test_host_does_not_forward():
    stack, en0, en1 = router(forwarding=0)
    stack.input(en0, [from_a(IPv6(src=A, dst=B) / ICMPv6EchoRequest())], 2 * S)
    assert frames(en1) == [] and frames(en0) == [] and stack.inet6.stats.cantforward == 1


def test_per_interface_forwarding_node():
    stack, en0, en1 = router(forwarding=0)
    stack.sysctl.set("net.inet6.ip6.ifconf.en0.forwarding", 1)
    stack.input(en0, [from_a(IPv6(src=A, dst=B) / ICMPv6EchoRequest())], 2 * S)
    assert len(frames(en1)) == 1


@pytest.mark.parametrize("hlim", [1, 0])
def test_time_exceeded(hlim):
    stack, en0, en1 = router()
    stack.input(en0, [from_a(IPv6(src=A, dst=B, hlim=hlim) / ICMPv6EchoRequest())], 2 * S)
    assert frames(en1) == []
    (f,) = frames(en0)
    assert f[ICMPv6TimeExceeded].code == 0 and f[IPv6].src == "2001:db8:a::1" and f[IPv6].dst == A
    assert f[IPerror6].dst == B


def test_packet_too_big_with_the_next_link_mtu():
    stack, en0, en1 = router()
    stack.set_mtu(en1, 1280)
    stack.input(en0, [from_a(IPv6(src=A, dst=B) / ICMPv6EchoRequest(data=b"x" * 1300))], 2 * S)
    assert frames(en1) == []
    (f,) = frames(en0)
    assert f[ICMPv6PacketTooBig].mtu == 1280 and f[IPv6].dst == A
    assert len(raw(f[IPv6])) <= 1280


def test_no_route_and_beyond_scope():
    stack, en0, en1 = router()
    stack.input(en0, [from_a(IPv6(src=A, dst="2001:db8:ee::1") / ICMPv6EchoRequest()),
                      from_a(IPv6(src=C_LL, dst=B) / ICMPv6EchoRequest())], 2 * S)
    codes = sorted(f[ICMPv6DestUnreach].code for f in frames(en0))
    assert codes == [0, 2] and frames(en1) == []


def test_link_local_destination_is_never_forwarded():
    stack, en0, en1 = router()
    stack.input(en0, [from_a(IPv6(src=A, dst="fe80::99") / ICMPv6EchoRequest())], 2 * S)
    assert frames(en0) == [] and frames(en1) == [] and stack.inet6.stats.cantforward == 1


def test_super_frame_is_cut_and_finished():
    stack, en0, en1 = router()
    en0.vnet_hdr = 10
    seg = IPv6(src=A, dst=B, hlim=64) / TCP(sport=1000, dport=2000, seq=100, flags="PA") / (b"z" * 3000)
    frame = bytearray(raw(Ether(src=A_MAC, dst=MAC0) / seg))
    # NEEDS_CSUM: the field holds only the pseudo-header sum, as the kernel leaves it.
    frame[14 + 40 + 16:14 + 40 + 18] = b"\0\0"
    vh = VirtioNetHdr(NEEDS_CSUM, GSO_TCPV6, 14 + 40 + 20, 1000, 14 + 40, 16).to_bytes()
    stack.input(en0, [vh + bytes(frame)], 2 * S)
    out = frames(en1)
    assert [len(f[TCP].payload) for f in out] == [1000, 1000, 1000]
    assert [f[TCP].seq for f in out] == [100, 1100, 2100]
    assert [str(f[TCP].flags) for f in out] == ["A", "A", "PA"]
    for f in out:
        ck = f[TCP].chksum
        del f[TCP].chksum
        assert Ether(raw(f))[TCP].chksum == ck and f[IPv6].hlim == 63 and f[IPv6].plen == 1020


def _super_frame(payload_len, gso_size):
    """A's TCP super-frame to B as the local kernel hands it over: NEEDS_CSUM, the field
    holding the pseudo-header sum."""
    seg = IPv6(src=A, dst=B, hlim=64) / TCP(sport=1000, dport=2000, seq=100, flags="PA") / (b"z" * payload_len)
    frame = bytearray(raw(Ether(src=A_MAC, dst=MAC0) / seg))
    psum = pseudo_header_sum_v6(_ip(A), _ip(B), 6, 20 + payload_len)
    frame[14 + 40 + 16:14 + 40 + 18] = psum.to_bytes(2, "big")
    gso_type = GSO_TCPV6 if payload_len > gso_size else GSO_NONE
    vh = VirtioNetHdr(NEEDS_CSUM, gso_type, 14 + 40 + 20, gso_size, 14 + 40, 16).to_bytes()
    return vh + bytes(frame)


def test_super_frame_goes_on_whole_to_a_tso6_link():
    stack, en0, en1 = router()
    en0.vnet_hdr = en1.vnet_hdr = 10
    en1.capabilities = en1.enabled = IFCAP_TSOv6 | IFCAP_CSUM_TCPv6_Tx | IFCAP_CSUM_TCPv6_Rx
    stack.input(en0, [_super_frame(3000, 1000)], 2 * S)
    (sent,) = list(en1.txq)
    flags, gso_type, hdr_len, gso_size, start, off = HDR.unpack_from(sent, 0)
    assert (flags, gso_type, gso_size, start, off) == (NEEDS_CSUM, GSO_TCPV6, 1000, 54, 16)
    f = Ether(bytes(sent[10:]))
    assert f[IPv6].hlim == 63 and f[IPv6].plen == 3020 and len(f[TCP].payload) == 3000
    assert stack.inet6.stats.otso == 1 and stack.inet6.stats.ogso == 0


def test_partial_checksum_is_finished_for_a_link_without_the_offload():
    stack, en0, en1 = router()
    en0.vnet_hdr = 10
    stack.input(en0, [_super_frame(500, 1000)], 2 * S)
    (f,) = frames(en1)
    ck = f[TCP].chksum
    del f[TCP].chksum
    assert Ether(raw(f))[TCP].chksum == ck and f[IPv6].hlim == 63


def test_redirect_sent_when_leaving_by_the_same_link():
    stack, en0, en1 = router()
    stack.inet6.routes.add("2001:db8:c::", ipaddress.IPv6Address(C_LL), prefixlen=64, iface=en0)
    stack.input(en0, [from_a(IPv6(src=A, dst="2001:db8:c::5") / ICMPv6EchoRequest(data=b"r"))], 2 * S)
    out = frames(en0)
    fwd = [f for f in out if ICMPv6EchoRequest in f and ICMPv6ND_Redirect not in f]
    red = [f for f in out if ICMPv6ND_Redirect in f]
    assert len(fwd) == 1 and fwd[0].dst == C_MAC and fwd[0][IPv6].hlim == 63
    (r,) = red
    assert r[IPv6].src == "fe80::ff:fe00:1" and r[IPv6].dst == A and r[IPv6].hlim == 255
    assert r[ICMPv6ND_Redirect].tgt == C_LL and r[ICMPv6ND_Redirect].dst == "2001:db8:c::5"
    assert r[ICMPv6NDOptDstLLAddr].lladdr == C_MAC
    assert r[ICMPv6NDOptRedirectedHdr].pkt[IPv6].dst == "2001:db8:c::5"
    assert stack.inet6.redirect.stats.sent == 1
    # Not for a global gateway (KAME names routers by link-local address only) ...
    stack.inet6.routes.add("2001:db8:d::", ipaddress.IPv6Address(A), prefixlen=64, iface=en0)
    stack.input(en0, [from_a(IPv6(src=A, dst="2001:db8:d::5") / ICMPv6EchoRequest())], 3 * S)
    assert not any(ICMPv6ND_Redirect in f for f in frames(en0))
    # ... nor when forwarding to another link.
    stack.input(en0, [from_a(IPv6(src=A, dst=B) / ICMPv6EchoRequest())], 4 * S)
    assert not any(ICMPv6ND_Redirect in f for f in frames(en0)) and stack.inet6.redirect.stats.sent == 1


# -- a host taking redirects ----------------------------------------------------------------

OUR_MAC = "02:00:00:00:00:01"
R1_LL, R1_MAC = "fe80::ff:fe00:fe", "02:00:00:00:00:fe"
R2_LL, R2_MAC = "fe80::ff:fe00:fd", "02:00:00:00:00:fd"
FAR = "2001:db8:99::7"


def host():
    stack = Stack(StackConfig(seed=4))
    stack.sysctl.set("net.inet6.ip6.accept_rtadv", 1)
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=_mac(OUR_MAC), flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.IPv6Address("2001:db8:1::1"), 64)
    stack.poll(0)
    stack.poll(S)
    stack.inet6.rtr.solicits.clear()
    ra = (Ether(src=R1_MAC, dst="33:33:00:00:00:01") / IPv6(src=R1_LL, dst="ff02::1", hlim=255)
          / ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=R1_MAC))
    stack.input(en0, [raw(ra)], S)
    en0.txq.clear()
    return stack, en0


def redirect(src=R1_LL, target=R2_LL, dest=FAR, hlim=255, tlla=R2_MAC):
    p = IPv6(src=src, dst="2001:db8:1::1", hlim=hlim) / ICMPv6ND_Redirect(tgt=target, dst=dest)
    if tlla:
        p = p / ICMPv6NDOptDstLLAddr(lladdr=tlla)
    return raw(Ether(src=R1_MAC, dst=OUR_MAC) / p)


def echo_mac(stack, en0, now):
    stack.inet6.icmp.send_echo(_ip(FAR), 1, 1, b"x", now)
    (f,) = [f for f in frames(en0) if ICMPv6EchoRequest in f]
    return f.dst


def test_redirect_accepted_then_expires():
    stack, en0 = host()
    assert echo_mac(stack, en0, 2 * S) == R1_MAC
    stack.input(en0, [redirect()], 3 * S)
    assert stack.inet6.redirect.stats.accepted == 1
    route = next(r for r in stack.inet6.routes if r.prefixlen == 128 and r.gateway is not None)
    assert route.describe()["flags"] == "UGHD" and route.describe()["gateway"] == R2_LL
    assert echo_mac(stack, en0, 4 * S) == R2_MAC
    assert stack.inet6.nd.get(en0, _ip(R2_LL)).router
    stack.poll(3 * S + seconds(600) - 1)
    assert echo_mac(stack, en0, 3 * S + seconds(600) - 1) == R2_MAC
    stack.poll(3 * S + seconds(600))
    assert echo_mac(stack, en0, 3 * S + seconds(600)) == R1_MAC


def test_redirect_to_on_link_destination():
    stack, en0 = host()
    stack.input(en0, [redirect(target=FAR, tlla="02:00:00:00:00:77")], 3 * S)
    assert echo_mac(stack, en0, 4 * S) == "02:00:00:00:00:77"


@pytest.mark.parametrize("bad", [
    lambda: redirect(src=R2_LL),                       # not our first hop for FAR
    lambda: redirect(target="2001:db8:5::1"),          # target neither link-local nor the destination
    lambda: redirect(dest="ff0e::1"),                  # multicast destination
    lambda: redirect(hlim=64),                         # ND hop limit
])
def test_invalid_redirect_ignored(bad):
    stack, en0 = host()
    stack.input(en0, [bad()], 3 * S)
    assert stack.inet6.redirect.stats.accepted == 0
    assert echo_mac(stack, en0, 4 * S) == R1_MAC


def test_redirects_ignored_when_rediraccept_is_off():
    stack, en0 = host()
    stack.sysctl.set("net.inet6.icmp6.rediraccept", 0)
    stack.input(en0, [redirect()], 3 * S)
    assert stack.inet6.redirect.stats.ignored == 1 and echo_mac(stack, en0, 4 * S) == R1_MAC


@pytest.mark.parametrize("how", ["sysctl", "ifconf", "host"])
def test_neighbor_advertisements_carry_the_router_flag(how):
    from scapy.all import ICMPv6ND_NA, ICMPv6ND_NS
    stack, en0, en1 = router(forwarding=int(how == "sysctl"))
    if how == "ifconf":
        stack.sysctl.set("net.inet6.ip6.ifconf.en0.forwarding", 1)
    ns = (Ether(src=A_MAC, dst=MAC0) / IPv6(src=A, dst="2001:db8:a::1", hlim=255) / ICMPv6ND_NS(tgt="2001:db8:a::1")
          / ICMPv6NDOptSrcLLAddr(lladdr=A_MAC))
    stack.input(en0, [raw(ns)], 2 * S)
    (na,) = [f for f in frames(en0) if ICMPv6ND_NA in f]
    assert na[ICMPv6ND_NA].R == (how != "host")


def test_a_learned_redirect_and_its_expiry_reach_stack_poll_at():
    stack, en0 = host()
    stack.poll_at()                       # cached now: the redirect must say it moved
    stack.input(en0, [redirect()], 3 * S)
    assert stack.inet6.redirect.poll_at() == 3 * S + seconds(600)
    layers = [d for d in (stack.inet.poll_at(), stack.inet6.poll_at(), stack.tcp.poll_at()) if d is not None]
    assert stack.poll_at() == min(layers)
    stack.inet6.redirect.interface_detached(en0)
    assert stack.inet6.redirect.poll_at() is None
    layers = [d for d in (stack.inet.poll_at(), stack.inet6.poll_at(), stack.tcp.poll_at()) if d is not None]
    assert stack.poll_at() == (min(layers) if layers else None)
