"""Neighbor Discovery messages (RFC 4861) and Duplicate Address Detection (RFC 4862 5.4).

Validation (RFC 4861 6.1, 7.1) before anything is learned; a message failing it is a
counted drop: IP hop limit 255, ICMP code 0, a body long enough for its type, every
option length non-zero (``wire.icmpv6.parse_options``), never inside a fragmented packet
(RFC 6980 5). NS: target not multicast; from :: only to a solicited-node group and
without a Source Link-Layer Address option. NA: target not multicast; to a multicast
address only with S clear.

NS for one of our addresses: the sender's SLLA is learned (STALE, 7.2.3) and an NA goes
back (7.2.4): to the sender, S set, or to ff02::1 with S clear when the NS came from ::;
O set (we have no anycast or proxy addresses), R when forwarding; TLLA always.

DAD (RFC 4862 5.4): a new unicast address is ``tentative`` (``IN6_IFF_TENTATIVE``): it is
not used as a source and answers no NS. ``net.inet6.ip6.dad_count`` NS (QNX 1) go out
RetransTimer (1 s, or what an RA said) apart, from ::, to the address's solicited-node group, without SLLA;
one RetransTimer after the last the address becomes usable. Meanwhile an NA for it, or
an NS for it from :: (someone else doing DAD), means a duplicate: the address is marked
``duplicated`` and never used (5.4.5). An NS for it from a unicast source is ignored
(5.4.3). Our own NS looped back by the link (a bridge, a TAP in a hub) is recognised by
its source MAC and does not count (RFC 7527 2's concern). The first NS is sent at once
rather than after the random 0-1 s delay 5.4.2 recommends on interface start-up.

Router Advertisements, once valid here, go to nd6_rtr.py (router and prefix discovery,
SLAAC); a host silently discards Router Solicitations (6.2.6).
"""

import ipaddress

import attrs

from ..slog import ERROR, INFO, WARNING
from ..time import Instant
from ..wire.errors import Malformed
from ..wire.icmpv6 import (
    OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR, Icmpv6Repr, Icmpv6Type as T, NdNeighborAdvert,
    NdNeighborSolicit, NdOption, option_lladdr,
)
from ..wire.ipv6 import UNSPECIFIED, ALL_NODES, eui64_link_local, is_multicast, solicited_node

ND_HLIM = 255

IN6_IFF_ANYCAST = 0x01
IN6_IFF_TENTATIVE = 0x02
IN6_IFF_DUPLICATED = 0x04
IN6_IFF_DEPRECATED = 0x10
IN6_IFF_AUTOCONF = 0x40
# NetBSD af_inet6.c in6_alias(): the words ifconfig prints, in its order.
FLAG_WORDS = ((IN6_IFF_ANYCAST, "anycast"), (IN6_IFF_TENTATIVE, "tentative"),
              (IN6_IFF_DUPLICATED, "duplicated"), (IN6_IFF_DEPRECATED, "deprecated"),
              (IN6_IFF_AUTOCONF, "autoconf"))


@attrs.define(eq=False)
class Dad:
    iface: object
    ifa: object
    addr: bytes
    left: int               # NS still to send
    deadline: int


class Ndisc:
    def __init__(self, ip):
        self.ip = ip
        self.stack = ip.stack
        self.dad: dict[tuple[int, bytes], Dad] = {}

    # -- output ---------------------------------------------------------------------------

    def solicit(self, iface, target: bytes, unicast_mac: bytes | None, *, dad: bool = False) -> None:
        """An NS for ``target``: multicast to its solicited-node group, or unicast to
        ``unicast_mac`` (NUD probe); from :: without SLLA for DAD (RFC 4862 5.4.2)."""
        ip = self.ip
        if dad:
            src = UNSPECIFIED
        else:
            src = ip.source_for(target, iface, quiet=True)
            if src is None:
                return
        dst = target if unicast_mac is not None else solicited_node(target)
        options = () if dad else (NdOption(OPT_SOURCE_LLADDR, iface.mac),)
        message = NdNeighborSolicit(target, options).to_bytes(src, dst)
        ip.icmp.stats.count_out(T.NEIGHBOR_SOLICIT)
        ip.send_nd(iface, src, dst, message, unicast_mac)

    def _advertise(self, iface, target: bytes, to: bytes, solicited: bool, mac: bytes | None) -> None:
        # R: we forward for this interface (the sysctl or QNX's IFF_IP6FORWARDING).
        message = NdNeighborAdvert(target, self.ip.rtr.forwarding(iface), solicited, True,
                                   (NdOption(OPT_TARGET_LLADDR, iface.mac),)).to_bytes(target, to)
        self.ip.icmp.stats.count_out(T.NEIGHBOR_ADVERT)
        self.ip.send_nd(iface, target, to, message, mac)

    # -- input ----------------------------------------------------------------------------

    def input(self, ctx, pkt, now: Instant) -> None:
        st = self.ip.icmp.stats
        ip6 = ctx.ip
        if ctx.fragmented:
            st.fragnd += 1                   # RFC 6980 5
            return
        if ip6.hop_limit != ND_HLIM:
            st.badhlim += 1
            return
        if pkt.code != 0:
            st.badcode += 1
            return
        try:
            msg = Icmpv6Repr.parse(pkt, ip6.src, ip6.dst, verify=False)
        except Malformed:
            st.badlen += 1
            return
        if pkt.type == T.NEIGHBOR_SOLICIT:
            self._ns_input(ctx, msg, now)
        elif pkt.type == T.NEIGHBOR_ADVERT:
            self._na_input(ctx, msg, now)
        elif pkt.type == T.ROUTER_ADVERT:
            self.ip.rtr.ra_input(ctx, msg, now)
        elif pkt.type == T.REDIRECT:
            self.ip.redirect.input(ctx, msg, now)
        # A host discards Router Solicitations (6.2.6).

    def _ns_input(self, ctx, ns: NdNeighborSolicit, now: Instant) -> None:
        st = self.ip.icmp.stats
        ip6 = ctx.ip
        iface = ctx.iface
        slla = option_lladdr(ns.options, OPT_SOURCE_LLADDR)
        from_dad = ip6.src == UNSPECIFIED
        if is_multicast(ns.target) or (from_dad and (slla is not None or ip6.dst != solicited_node(ns.target))):
            st.badns += 1
            return
        mine = self.ip.local_on(iface, ns.target)
        if mine is None:
            return                            # not for us (no proxy ND)
        if ctx.link_src == iface.mac:
            return                            # our own NS, looped back
        dad = self.dad.get((iface.index, ns.target))
        if dad is not None:
            if from_dad:
                self._duplicate(dad, "NS from another node doing DAD")
            return                            # 5.4.3: unicast-sourced NS for a tentative address
        if mine.flags6 & IN6_IFF_DUPLICATED:
            return
        if from_dad:
            self._advertise(iface, ns.target, ALL_NODES, False, None)
            return
        if slla is not None:
            self.ip.nd.learn(iface, ip6.src, slla, now)
        entry = self.ip.nd.get(iface, ip6.src)
        self._advertise(iface, ns.target, ip6.src, True, slla or (entry.mac if entry is not None else None))

    def _na_input(self, ctx, na: NdNeighborAdvert, now: Instant) -> None:
        st = self.ip.icmp.stats
        ip6 = ctx.ip
        iface = ctx.iface
        if is_multicast(na.target) or (is_multicast(ip6.dst) and na.solicited):
            st.badna += 1
            return
        if ctx.link_src == iface.mac:
            return
        dad = self.dad.get((iface.index, na.target))
        if dad is not None:
            self._duplicate(dad, "NA")
            return
        mine = self.ip.local_on(iface, na.target)
        if mine is not None:
            mac = option_lladdr(na.options, OPT_TARGET_LLADDR) or ctx.link_src
            self.stack.log(WARNING, f"{iface.name}: {ipaddress.IPv6Address(na.target)} is also claimed by "
                                    f"{':'.join(f'{b:02x}' for b in mac)}")
            return
        self.ip.nd.advert(iface, na.target, option_lladdr(na.options, OPT_TARGET_LLADDR), now,
                          solicited=na.solicited, override=na.override, router=na.router)

    # -- DAD ------------------------------------------------------------------------------

    def start_dad(self, iface, ifa) -> None:
        """Begin DAD for ``ifa``: the first NS goes out at the next poll."""
        addr = ifa.address.packed
        count = self.ip.ifconf.dad_count(iface)     # QNX's ifconf.IF.dad_count, else the global
        if count <= 0 or iface.mac is None:
            ifa.flags6 &= ~IN6_IFF_TENTATIVE
            return
        ifa.flags6 = (ifa.flags6 | IN6_IFF_TENTATIVE) & ~IN6_IFF_DUPLICATED
        self.dad[(iface.index, addr)] = Dad(iface, ifa, addr, count, 0)
        self.stack.timers_changed()        # every DAD deadline change tells Stack.poll_at

    def _dad_step(self, dad: Dad, now: Instant) -> None:
        if dad.left > 0:
            dad.left -= 1
            dad.deadline = now + self.ip.rtr.retrans_timer(dad.iface)
            self.stack.timers_changed()
            self.solicit(dad.iface, dad.addr, None, dad=True)
            return
        del self.dad[(dad.iface.index, dad.addr)]
        self.stack.timers_changed()
        dad.ifa.flags6 &= ~IN6_IFF_TENTATIVE
        self.ip.address_usable(dad.iface, dad.ifa)
        self.stack.log(INFO, f"{dad.iface.name}: {dad.ifa.address} passed DAD")

    def _duplicate(self, dad: Dad, why: str) -> None:
        del self.dad[(dad.iface.index, dad.addr)]
        self.stack.timers_changed()
        dad.ifa.flags6 = (dad.ifa.flags6 & ~IN6_IFF_TENTATIVE) | IN6_IFF_DUPLICATED
        self.ip.icmp.stats.dupaddr += 1
        # RFC 4862 5.4.5: log it; the address stays, marked, and is never used.
        self.stack.log(WARNING, f"{dad.iface.name}: DAD detected duplicate IPv6 address {dad.ifa.address}: {why}")
        iface = dad.iface
        if iface.mac is not None and dad.addr == eui64_link_local(iface.mac):
            # 5.4.5: a duplicate of the link-local address made from the hardware address
            # means the hardware address is duplicated too: IP operation on the interface
            # SHOULD be disabled (NetBSD nd6_dad_duplicated sets ND6_IFF_IFDISABLED).
            self.ip.rtr.set_disabled(iface, True)
            self.stack.log(ERROR, f"{iface.name}: possible hardware address duplication detected, disable IPv6")

    def cancel_dad(self, iface, ifa=None) -> None:
        for key, dad in list(self.dad.items()):
            if dad.iface is iface and (ifa is None or dad.ifa is ifa):
                del self.dad[key]
                self.stack.timers_changed()

    def poll(self, now: Instant) -> None:
        for dad in [d for d in self.dad.values() if d.deadline <= now]:
            self._dad_step(dad, now)

    def poll_at(self) -> Instant | None:
        if not self.dad:             # the usual case, asked after every request
            return None
        return min(d.deadline for d in self.dad.values())
