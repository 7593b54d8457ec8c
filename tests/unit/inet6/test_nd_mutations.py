"""Mutated RAs, Redirects, MLD queries and IGMP queries (seeded): the checksum is made
right again after each mutation so the bytes reach the parsers, not just the checksum
check. Nothing may raise, and the stack still answers an echo and keeps its addresses
usable afterwards."""

import ipaddress
import random

import pytest

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import seconds
from iopkt_fs.stack.wire.checksum import internet_checksum, ones_sum, pseudo_header_sum_v6
from iopkt_fs.stack.wire.igmp import v3_query

pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6MLQuery, ICMPv6MLQuery2, ICMPv6ND_RA, ICMPv6ND_Redirect,
    ICMPv6NDOptDstLLAddr, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRedirectedHdr,
    ICMPv6NDOptSrcLLAddr, IP, IPv6, IPv6ExtHdrHopByHop, Ether, RouterAlert, raw,
)

OUR_MAC = "02:00:00:00:00:01"
R_MAC = "02:00:00:00:00:fe"
R_LL = "fe80::ff:fe00:fe"
S = seconds(1)
ROUNDS = 1500


def host():
    stack = Stack(StackConfig(seed=12))
    stack.sysctl.set("net.inet6.ip6.accept_rtadv", 1)
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex(OUR_MAC.replace(":", "")),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address("10.0.0.1"), 24)
    stack.add_address(en0, ipaddress.ip_address("2001:db8:1::1"), 64)
    stack.poll(0)
    stack.poll(S)
    # R is our default router, so that Redirects from it can be taken.
    stack.input(en0, [_eth(IPv6(src=R_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=9000)
                           / ICMPv6NDOptSrcLLAddr(lladdr=R_MAC))], S)
    stack.inet.join_group("239.1.1.1")
    stack.inet6.join_group(en0, ipaddress.IPv6Address("ff05::1:3").packed)
    en0.txq.clear()
    return stack, en0


def _eth(p, dst="33:33:00:00:00:01"):
    return raw(Ether(src=R_MAC, dst=dst) / p)


SEEDS = {
    "ra": lambda: _eth(IPv6(src=R_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800)
                       / ICMPv6NDOptSrcLLAddr(lladdr=R_MAC) / ICMPv6NDOptMTU(mtu=1400)
                       / ICMPv6NDOptPrefixInfo(prefix="2001:db8:7::", prefixlen=64, validlifetime=600,
                                               preferredlifetime=300)),
    "redirect": lambda: _eth(IPv6(src=R_LL, dst="2001:db8:1::1", hlim=255)
                             / ICMPv6ND_Redirect(tgt="fe80::fd", dst="2001:db8:99::1")
                             / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:fd")
                             / ICMPv6NDOptRedirectedHdr(pkt=IPv6(src="2001:db8:1::1", dst="2001:db8:99::1")),
                             dst=OUR_MAC),
    "mld2": lambda: _eth(IPv6(src=R_LL, dst="ff02::1", hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()])
                         / ICMPv6MLQuery2(mrd=100, sources=["2001:db8::5"])),
    "mld1": lambda: _eth(IPv6(src=R_LL, dst="ff02::1", hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()])
                         / ICMPv6MLQuery(mrd=100)),
}


def _fix_icmp6(frame: bytearray, start: int) -> None:
    src, dst = bytes(frame[22:38]), bytes(frame[38:54])
    frame[start + 2:start + 4] = b"\0\0"
    body = bytes(frame[start:])
    ck = internet_checksum(body, pseudo_header_sum_v6(src, dst, 58, len(body)))
    frame[start + 2:start + 4] = ck.to_bytes(2, "big")


def _icmp_start(frame: bytes) -> int:
    return 14 + 40 + (8 if frame[14 + 6] == 0 else 0)


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_mutated_nd_and_mld_never_raise(kind):
    stack, en0 = host()
    rng = random.Random(kind)
    base = SEEDS[kind]()
    start = _icmp_start(base)
    t = 2 * S
    for _ in range(ROUNDS):
        frame = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(start, len(frame))
            frame[i] = rng.randrange(256)
        if rng.random() < 0.2:
            del frame[rng.randrange(start + 4, len(frame)):]
            frame[18:20] = (len(frame) - 54).to_bytes(2, "big")
        _fix_icmp6(frame, start)
        t += 1000
        stack.input(en0, [bytes(frame)], t)
        stack.poll(t)
        en0.txq.clear()
    stack.poll(t + seconds(5))
    en0.txq.clear()
    ping = raw(Ether(src="02:00:00:00:00:02", dst=OUR_MAC) / IPv6(src="2001:db8:1::2", dst="2001:db8:1::1")
               / ICMPv6EchoRequest(data=b"still here"))
    stack.inet6.nd.add_static(en0, ipaddress.IPv6Address("2001:db8:1::2").packed, bytes.fromhex("020000000002"))
    stack.input(en0, [ping], t + seconds(6))
    replies = [Ether(bytes(f)) for f in en0.txq]
    assert any(ICMPv6EchoReply in f and f[ICMPv6EchoReply].data == b"still here" for f in replies)
    # The mutations reached the parsers (the checksum was right), not only the checksum check.
    st = stack.inet6.statistics()
    assert st["icmp6"]["checksum"] == 0
    reached = {"ra": st["nd6_rtr"]["rain"], "redirect": st["redirect6"]["accepted"] + st["redirect6"]["bad"],
               "mld1": st["mld6"]["queries"], "mld2": st["mld6"]["queries"]}[kind]
    assert reached > ROUNDS // 2, st


def test_mutated_igmp_never_raises():
    stack, en0 = host()
    rng = random.Random(7)
    msg = v3_query(bytes(4), 50, (bytes((10, 0, 0, 9)),))
    base = raw(Ether(src=R_MAC, dst="01:00:5e:00:00:01") / IP(src="10.0.0.254", dst="224.0.0.1", ttl=1, proto=2)
               / msg)
    t = 2 * S
    for _ in range(ROUNDS):
        frame = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            frame[rng.randrange(34, len(frame))] = rng.randrange(256)
        frame[36:38] = b"\0\0"
        frame[36:38] = internet_checksum(bytes(frame[34:])).to_bytes(2, "big")
        assert ones_sum(bytes(frame[34:])) == 0xFFFF
        t += 1000
        stack.input(en0, [bytes(frame)], t)
        stack.poll(t)
        en0.txq.clear()
    st = stack.inet.igmp.stats
    assert st.rcv_total == ROUNDS and st.rcv_badsum == 0 and st.rcv_queries > ROUNDS // 2
