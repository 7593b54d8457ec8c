"""Router and prefix discovery and SLAAC (RFC 4861 6, RFC 4862 5.5) at literal times.

RAs are built with scapy; the stack is driven by hand with a virtual clock, so every
lifetime (router, prefix, preferred, valid, the two-hour rule) is checked at the exact
microsecond it ends."""

import ipaddress

import pytest

from iopkt_fs.resmgr.render import ifconfig_block
from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_ACCEPTRTADV, IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.inet6.ndisc import IN6_IFF_AUTOCONF, IN6_IFF_DEPRECATED, IN6_IFF_TENTATIVE
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import seconds

pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    IPv6ExtHdrHopByHop,
    ICMPv6EchoRequest, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrFragment, Ether, raw,
)

OUR_MAC = "02:00:00:00:00:01"
ROUTER_MAC = "02:00:00:00:00:fe"
ROUTER_LL = "fe80::ff:fe00:fe"
OUR_LL = "fe80::ff:fe00:1"
PREFIX = "2001:db8:1::"
SLAAC = "2001:db8:1::ff:fe00:1"
S = seconds(1)
HOUR = 3600


def host(accept=1):
    stack = Stack(StackConfig(seed=5))
    stack.sysctl.set("net.inet6.ip6.accept_rtadv", accept)
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex(OUR_MAC.replace(":", "")),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.up(en0)
    return stack, en0


def frames(en0):
    """What the stack sent, MLD reports left out (hop-by-hop Router Alert; test_mld6.py)."""
    out = [Ether(bytes(f)) for f in en0.txq]
    en0.txq.clear()
    return [f for f in out if IPv6ExtHdrHopByHop not in f]


def settled(accept=1):
    """A host whose link-local address passed DAD (at 1 s), its solicitations cancelled."""
    stack, en0 = host(accept)
    stack.poll(0)
    stack.poll(S)
    stack.inet6.rtr.solicits.clear()
    frames(en0)
    return stack, en0


def ra(lifetime=1800, prefixes=(), src=ROUTER_LL, hlim=255, mtu=None, chlim=64, frag=False):
    p = IPv6(src=src, dst="ff02::1", hlim=hlim)
    if frag:
        p = p / IPv6ExtHdrFragment(nh=58)
    p = p / ICMPv6ND_RA(chlim=chlim, routerlifetime=lifetime) / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC)
    if mtu is not None:
        p = p / ICMPv6NDOptMTU(mtu=mtu)
    for prefix in prefixes:
        p = p / prefix
    return raw(Ether(src=ROUTER_MAC, dst="33:33:00:00:00:01") / p)


def pinfo(valid=10 * HOUR, preferred=5 * HOUR, prefix=PREFIX, plen=64, L=1, A=1):
    return ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=plen, L=L, A=A, validlifetime=valid,
                                 preferredlifetime=preferred)


def slaac_addr(en0):
    return next((a for a in en0.inet6_addrs() if str(a.address) == SLAAC), None)


def default_route(stack):
    return next((r for r in stack.inet6.routes if r.prefixlen == 0), None)


def test_router_solicitations_after_dad_three_four_seconds_apart():
    stack, en0 = host()
    stack.poll(0)                                   # DAD NS for the link-local address
    frames(en0)
    rs_times = []
    t = 0
    for _ in range(200):
        nxt = stack.poll_at()
        if nxt is None or nxt > 20 * S:
            break
        t = max(t, nxt)
        stack.poll(t)
        for f in frames(en0):
            if ICMPv6ND_RS in f:
                rs_times.append(t)
                assert f[IPv6].src == OUR_LL and f[IPv6].dst == "ff02::2" and f[IPv6].hlim == 255
                assert f.dst == "33:33:00:00:00:02" and f[ICMPv6NDOptSrcLLAddr].lladdr == OUR_MAC
    assert len(rs_times) == 3
    assert S <= rs_times[0] <= 2 * S                # after DAD, within the 1 s random delay
    assert [b - a for a, b in zip(rs_times, rs_times[1:])] == [4 * S, 4 * S]


def test_an_ra_stops_the_solicitations():
    stack, en0 = host()
    stack.poll(0)
    stack.poll(S)
    stack.input(en0, [ra()], S + 1)
    assert stack.inet6.rtr.solicits == {}


def test_no_solicitation_and_ra_ignored_when_not_accepting():
    stack, en0 = host(accept=0)
    for t in range(0, 15):
        stack.poll(t * S)
    assert not any(ICMPv6ND_RS in f for f in frames(en0))
    stack.input(en0, [ra(prefixes=[pinfo()])], 20 * S)
    assert stack.inet6.rtr.stats.raignored == 1
    assert slaac_addr(en0) is None and default_route(stack) is None


def test_slaac_address_default_route_and_ifconfig():
    stack, en0 = settled()
    stack.input(en0, [ra(prefixes=[pinfo()])], 2 * S)
    ifa = slaac_addr(en0)
    assert ifa is not None and ifa.flags6 == IN6_IFF_AUTOCONF | IN6_IFF_TENTATIVE
    route = default_route(stack)
    assert route.describe()["gateway"] == ROUTER_LL and route.describe()["flags"] == "UG"
    assert route.iface is en0
    # The router's link address came from its SLLA, marked as a router.
    entry = stack.inet6.nd.get(en0, ipaddress.IPv6Address(ROUTER_LL).packed)
    assert entry.router and entry.mac == bytes.fromhex(ROUTER_MAC.replace(":", ""))
    # The on-link prefix has its route.
    assert any(str(r.network) == "2001:db8:1::/64" and r.gateway is None for r in stack.inet6.routes)
    stack.poll(2 * S)                               # the DAD NS
    stack.poll(3 * S)                               # DAD done
    assert ifa.flags6 == IN6_IFF_AUTOCONF
    assert f"inet6 {SLAAC} prefixlen 64 autoconf" in ifconfig_block(en0)
    # Off-link traffic: from the SLAAC address, to the router's MAC.
    frames(en0)
    far = ipaddress.IPv6Address("2001:db8:99::7").packed
    stack.inet6.icmp.send_echo(far, 1, 1, b"x", 3 * S)
    (f,) = frames(en0)
    assert f[IPv6].src == SLAAC and f[IPv6].dst == "2001:db8:99::7" and f.dst == ROUTER_MAC
    assert stack.inet6.ndp_routers()[0]["address"] == ROUTER_LL
    assert stack.inet6.ndp_prefixes()[0]["prefix"] == "2001:db8:1::/64"


def test_router_lifetime_expires_and_zero_removes():
    stack, en0 = settled()
    stack.input(en0, [ra(lifetime=30)], 2 * S)
    assert default_route(stack) is not None
    assert stack.poll_at() <= 32 * S
    stack.poll(32 * S - 1)
    assert default_route(stack) is not None
    stack.poll(32 * S)
    assert default_route(stack) is None and stack.inet6.rtr.routers == []
    stack.input(en0, [ra(lifetime=600)], 40 * S)
    assert default_route(stack) is not None
    stack.input(en0, [ra(lifetime=0)], 41 * S)
    assert default_route(stack) is None


def test_second_router_takes_over():
    stack, en0 = settled()
    other = raw(Ether(src="02:00:00:00:00:fd", dst="33:33:00:00:00:01")
                / IPv6(src="fe80::ff:fe00:fd", dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=900)
                / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:fd"))
    stack.input(en0, [ra(lifetime=60), other], 2 * S)
    assert default_route(stack).describe()["gateway"] == ROUTER_LL
    stack.poll(62 * S)
    assert default_route(stack).describe()["gateway"] == "fe80::ff:fe00:fd"


def test_preferred_then_valid_lifetime():
    stack, en0 = settled()
    stack.input(en0, [ra(prefixes=[pinfo(valid=100, preferred=40)])], 2 * S)
    ifa = slaac_addr(en0)
    stack.poll(42 * S - 1)
    assert not ifa.flags6 & IN6_IFF_DEPRECATED
    stack.poll(42 * S)
    assert ifa.flags6 & IN6_IFF_DEPRECATED and slaac_addr(en0) is ifa
    stack.poll(102 * S - 1)
    assert slaac_addr(en0) is ifa
    stack.poll(102 * S)
    assert slaac_addr(en0) is None and stack.inet6.rtr.stats.expired == 1
    assert not stack.inet6.is_local(ipaddress.IPv6Address(SLAAC).packed)


@pytest.mark.parametrize("remaining_h, advertised, left_s", [
    (10, 60, 2 * HOUR),              # remaining > 2 h, new value small: cut to two hours
    (10, 0, 2 * HOUR),               # even a valid lifetime of 0 (RFC 4862 5.5.3 e.3)
    (1, 60, 1 * HOUR),               # remaining <= 2 h: the RA is ignored
    (1, 3 * HOUR, 3 * HOUR),         # over two hours: taken as advertised
    (10, 20 * HOUR, 20 * HOUR),      # over what remains: taken
    (1, 90 * 60, 90 * 60),           # over what remains (1 h), under 2 h: taken
])
def test_two_hour_rule(remaining_h, advertised, left_s):
    stack, en0 = settled()
    stack.input(en0, [ra(prefixes=[pinfo(valid=remaining_h * HOUR, preferred=0)])], 0)
    stack.input(en0, [ra(prefixes=[pinfo(valid=advertised, preferred=0)])], 10 * S)
    ifa = slaac_addr(en0)
    assert ifa is not None
    end = 10 * S + seconds(left_s) if left_s != remaining_h * HOUR else seconds(remaining_h * HOUR)
    stack.poll(end - 1)
    assert slaac_addr(en0) is ifa
    stack.poll(end)
    assert slaac_addr(en0) is None


def test_on_link_prefix_lifetime_without_autonomous():
    stack, en0 = settled()
    stack.input(en0, [ra(prefixes=[pinfo(valid=50, preferred=50, A=0)])], 2 * S)
    assert slaac_addr(en0) is None
    assert any(str(r.network) == "2001:db8:1::/64" for r in stack.inet6.routes)
    stack.poll(52 * S)
    assert not any(str(r.network) == "2001:db8:1::/64" for r in stack.inet6.routes)


def test_autonomous_without_on_link_installs_no_prefix_route():
    stack, en0 = settled()
    stack.input(en0, [ra(prefixes=[pinfo(L=0)])], 2 * S)
    assert slaac_addr(en0) is not None
    assert not any(str(r.network) == "2001:db8:1::/64" for r in stack.inet6.routes)


@pytest.mark.parametrize("bad, counter", [
    (lambda: ra(src="2001:db8::fe", prefixes=[pinfo()]), ("rtr", "badra")),
    (lambda: ra(hlim=64, prefixes=[pinfo()]), ("icmp", "badhlim")),
    (lambda: ra(frag=True, prefixes=[pinfo()]), ("icmp", "fragnd")),
    (lambda: ra(lifetime=0, prefixes=[pinfo(valid=10, preferred=20)]), ("rtr", "badprefix")),
    (lambda: ra(lifetime=0, prefixes=[pinfo(plen=48)]), ("rtr", "badprefix")),
    (lambda: ra(lifetime=0, prefixes=[pinfo(prefix="fe80::")]), ("rtr", "badprefix")),
])
def test_invalid_ra_or_prefix_is_dropped(bad, counter):
    stack, en0 = settled()
    stack.input(en0, [bad()], 2 * S)
    assert slaac_addr(en0) is None and default_route(stack) is None
    layer, name = counter
    stats = stack.inet6.rtr.stats if layer == "rtr" else stack.inet6.icmp.stats
    assert getattr(stats, name) == 1


def test_per_interface_accept_rtadv_and_forwarding():
    stack, en0 = settled(accept=0)
    stack.sysctl.set("net.inet6.ip6.ifconf.en0.accept_rtadv", 1)
    assert en0.flags & IFF_ACCEPTRTADV and "ACCEPTRTADV" in ifconfig_block(en0).splitlines()[0]
    stack.inet6.rtr.solicits.clear()
    stack.input(en0, [ra(prefixes=[pinfo()])], 2 * S)
    assert slaac_addr(en0) is not None
    # A router for this interface processes no RA (QSRC nd6_rtr.c).
    stack.sysctl.set("net.inet6.ip6.ifconf.en0.forwarding", 1)
    stack.input(en0, [ra(lifetime=0)], 3 * S)
    assert default_route(stack) is not None and stack.inet6.rtr.stats.raignored == 1


def test_ifconf_nodes_follow_the_interface():
    stack, en0 = settled()
    assert stack.sysctl.names("net.inet6.ip6.ifconf") == [
        "net.inet6.ip6.ifconf.en0.accept_rtadv", "net.inet6.ip6.ifconf.en0.dad_count",
        "net.inet6.ip6.ifconf.en0.forwarding"]        # none for lo0 (QSRC: IFT_LOOP skipped)
    stack.detach(en0)
    assert stack.sysctl.names("net.inet6.ip6.ifconf") == []


@pytest.mark.parametrize("own, count", [(-1, 1), (0, 0), (3, 3)])
def test_per_interface_dad_count(own, count):
    from scapy.all import ICMPv6ND_NS
    stack, en0 = settled()
    stack.sysctl.set("net.inet6.ip6.ifconf.en0.dad_count", own)
    ifa = stack.add_address(en0, ipaddress.IPv6Address("2001:db8:1::1"), 64)
    sent = 0
    for k in range(6):
        stack.poll(2 * S + k * S)
        sent += sum(1 for f in frames(en0) if ICMPv6ND_NS in f and f[ICMPv6ND_NS].tgt == "2001:db8:1::1")
    assert sent == count and ifa.flags6 == 0


def test_mtu_and_hop_limit_options():
    stack, en0 = settled()
    stack.input(en0, [ra(mtu=1400, chlim=17, prefixes=[pinfo()])], 2 * S)
    stack.poll(2 * S)
    stack.poll(3 * S)
    far = ipaddress.IPv6Address("2001:db8:99::7").packed
    assert stack.inet6.path_mtu(far) == 1400
    frames(en0)
    stack.inet6.icmp.send_echo(far, 1, 1, b"x", 4 * S)
    (f,) = frames(en0)
    assert f[IPv6].hlim == 17
    # An MTU above the link's is ignored.
    stack.input(en0, [ra(mtu=9000)], 5 * S)
    assert stack.inet6.rtr.stats.badmtu == 1 and stack.inet6.path_mtu(far) == 1400


def test_manual_address_is_not_taken_over():
    stack, en0 = settled()
    stack.add_address(en0, ipaddress.IPv6Address(SLAAC), 64)
    stack.input(en0, [ra(prefixes=[pinfo(valid=10, preferred=10)])], 2 * S)
    stack.poll(20 * S)
    assert slaac_addr(en0) is not None and not slaac_addr(en0).flags6 & IN6_IFF_AUTOCONF


def test_echo_to_slaac_address_is_answered():
    stack, en0 = settled()
    stack.input(en0, [ra(prefixes=[pinfo()])], 2 * S)
    stack.poll(2 * S)
    stack.poll(3 * S)
    frames(en0)
    ping = Ether(src=ROUTER_MAC, dst=OUR_MAC) / IPv6(src="2001:db8:5::1", dst=SLAAC) / ICMPv6EchoRequest()
    stack.input(en0, [raw(ping)], 4 * S)
    out = frames(en0)
    assert len(out) == 1 and out[0].dst == ROUTER_MAC and out[0][IPv6].src == SLAAC


def test_default_route_comes_back_after_route_flush():
    stack, en0 = settled()
    stack.input(en0, [ra()], 2 * S)
    stack.inet6.routes.flush()
    assert default_route(stack) is None
    stack.input(en0, [ra()], 3 * S)
    assert default_route(stack).describe()["gateway"] == ROUTER_LL


def test_ndp_router_and_prefix_text_in_kame_format():
    stack, en0 = settled()
    stack.input(en0, [ra(prefixes=[pinfo()])], 2 * S)
    # scapy's RA says Prf 1 unless told: "high" (RFC 4191).
    assert stack.inet6.nd_routers_text(62 * S) == (
        "fe80::ff:fe00:fe%en0 if=en0, flags=, pref=high, expire=29m0s\n")
    assert stack.inet6.nd_prefixes_text(62 * S) == (
        "2001:db8:1::/64 if=en0\n"
        "flags=LAO vltime=36000, pltime=18000, expire=9h59m0s, ref=1\n"
        "  advertised by\n"
        "    fe80::ff:fe00:fe%en0 (reachable)\n")


def test_retrans_timer_from_the_ra_spaces_solicitations():
    from scapy.all import ICMPv6ND_NS
    stack, en0 = settled()
    p = (IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=0, retranstimer=250)
         / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC))
    stack.input(en0, [raw(Ether(src=ROUTER_MAC, dst="33:33:00:00:00:01") / p)], 2 * S)
    assert stack.inet6.rtr.info(en0).retrans == 250
    frames(en0)
    # Resolution of an unknown on-link neighbour: 3 NS 250 ms apart, then it gives up
    # 250 ms after the last.
    stack.add_address(en0, ipaddress.IPv6Address("2001:db8:1::1"), 64)
    t = 2 * S
    for k in range(3):                               # its DAD, on the same timer
        stack.poll(t + k * seconds(0.25))
    assert not slaac_addr(en0) and not any(a.flags6 for a in en0.inet6_addrs())
    frames(en0)
    t0 = t + seconds(0.5)
    stack.inet6.icmp.send_echo(ipaddress.IPv6Address("2001:db8:1::9").packed, 1, 1, b"x", t0,
                               src=ipaddress.IPv6Address("2001:db8:1::1").packed)
    sent = [0 for f in frames(en0) if ICMPv6ND_NS in f]
    for i in range(1, 5):
        stack.poll(t0 + i * seconds(0.25))
        sent += [i for f in frames(en0) if ICMPv6ND_NS in f]
        if i == 2:
            assert stack.inet6.nd.stats.timeouts == 0
    assert sent == [0, 1, 2] and stack.inet6.nd.stats.timeouts == 1


def test_ndp_i_shows_what_the_ra_taught():
    from iopkt_fs.resmgr.tables6 import ndp_ctl
    stack, en0 = settled(accept=0)
    assert ndp_ctl(stack, ["info", "en0"], 2 * S).startswith(
        "linkmtu=1500, maxmtu=1500, curhlim=64, basereachable=30s0ms")
    stack.sysctl.set("net.inet6.ip6.ifconf.en0.accept_rtadv", 1)
    p = IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(
        chlim=17, routerlifetime=1800, reachabletime=45000, retranstimer=2500) / \
        ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC) / ICMPv6NDOptMTU(mtu=1400)
    stack.input(en0, [raw(Ether(src=ROUTER_MAC, dst="33:33:00:00:00:01") / p)], 2 * S)
    reach = stack.inet6.nd.reachable_time // S
    assert 22 <= reach <= 67                                  # [0.5, 1.5] x 45 s (6.3.2)
    assert ndp_ctl(stack, ["info", "en0"], 3 * S) == (
        f"linkmtu=1400, maxmtu=1500, curhlim=17, basereachable=45s0ms, reachable={reach}s, "
        "retrans=2s500ms\nFlags: nud accept_rtadv \n")


def test_ndp_i_sets_nud_and_accept_rtadv():
    from iopkt_fs.resmgr.tables6 import ndp_ctl
    from iopkt_fs.stack.errors import StackError
    stack, en0 = settled(accept=0)
    assert ndp_ctl(stack, ["info", "en0", "accept_rtadv"], 2 * S).endswith("Flags: nud accept_rtadv \n")
    assert en0.flags & IFF_ACCEPTRTADV and stack.sysctl.get("net.inet6.ip6.ifconf.en0.accept_rtadv") == 1
    assert stack.inet6.rtr.solicits                            # accepting now: it solicits
    assert ndp_ctl(stack, ["info", "en0", "-nud", "-accept_rtadv"], 2 * S).endswith("Flags: \n")
    assert not en0.flags & IFF_ACCEPTRTADV
    # NUD off (KAME nd6_output): a STALE neighbour is used as it is, never DELAY/PROBE.
    peer = ipaddress.IPv6Address("fe80::99").packed
    nd = stack.inet6.nd
    nd.learn(en0, peer, b"\x02\x00\x00\x00\x00\x99", 2 * S)
    assert nd.resolve(en0, peer, b"p", 3 * S) == b"\x02\x00\x00\x00\x00\x99"
    assert nd.get(en0, peer).state.name == "STALE"
    ndp_ctl(stack, ["info", "en0", "nud"], 4 * S)
    nd.resolve(en0, peer, b"p", 4 * S)
    assert nd.get(en0, peer).state.name == "DELAY"
    for words, code in ((["prefer_source"], 95), (["bogus"], 22)):
        with pytest.raises(StackError) as exc:
            ndp_ctl(stack, ["info", "en0", *words], 5 * S)
        assert exc.value.errno == code
    with pytest.raises(StackError):
        ndp_ctl(stack, ["info", "lo0", "accept_rtadv"], 5 * S)   # lo0 has no ifconf node
