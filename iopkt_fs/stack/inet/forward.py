"""IPv4 forwarding (ip_forward, RFC 1812) and NetBSD's fast-forwarding flow cache (ip_flow.c).

``Ipv4Forward`` is the forwarding part of ``Ipv4Layer`` (ipv4.py), which extends it; it
uses the layer's routes, ARP cache, ICMP and ``_link_output`` (output.py) and owns only
the flow cache (``_flows``, emptied by ``_flush_flows`` on any route, ARP or interface
change).

A datagram for someone else, with ``net.inet.ip.forwarding`` on, is in order: never
forwarded when it came as a link broadcast, to 0/8 or class E, or as a directed broadcast
to one of our networks (RFC 1812 5.3.4, RFC 2644); TTL 1 -> Time Exceeded (5.3.1); no
route -> host unreachable; a blackhole route swallows it, never back into lo0; TTL - 1
with the checksum patched (RFC 1141); bigger than the next link's MTU: fragmented, or
with DF a fragmentation-needed error carrying the MTU (RFC 1191 4); a host redirect when
it leaves by the interface it came in on toward a next hop its sender could reach itself
(5.2.7.2). A frame the kernel left unfinished keeps that work (``gso.rx_offload``) for the
next link to do or for gso.py to finish. With ``net.inet.ip.fastforwarding`` the
forwarded destination's ready Ethernet header is cached per (input interface,
destination) and tried by the input path right after the header checksum.
"""

import attrs

from ..iface.interface import IFF_UP, IFT_ETHER, IFT_LOOP, Interface
from ..iface.neighbor import State
from ..iface.route import RTF_BLACKHOLE, RTF_DYNAMIC, RTF_MODIFIED, RTF_REJECT, Route
from ..time import Instant
from ..wire.ethernet import pad_frame
from ..wire.ipv4 import Ipv4Packet, Ipv4Repr
from . import gso
from .output import ETHERTYPE_IP, _int
from .stats import ICMP_REDIRECT, ICMP_TIMXCEED, ICMP_UNREACH, TIMXCEED_INTRANS, UNREACH_HOST, UNREACH_NEEDFRAG

MAX_FLOWS = 1024                        # NetBSD ip_maxflows is 256; memory is cheaper here


@attrs.define(eq=False)
class Flow:
    """A fast-forwarding flow (NetBSD ip_flow.c): where a destination goes, link header ready."""

    iface: Interface
    head: bytes           # Ethernet header: next hop MAC, our MAC, 0x0800
    mtu: int
    route: Route
    uses: int = 0


class Ipv4Forward:
    def _flush_flows(self) -> None:
        if self._flows:
            for flow in self._flows.values():
                flow.route.refs -= 1
            self._flows.clear()

    @property
    def flows(self) -> dict:
        return self._flows

    def _fastforward(self, flow: Flow, pkt: Ipv4Packet) -> bool:
        """ipflow_fastforward(): forward by the flow cache, before the rest of ip_input.

        A flow exists only for a destination that was forwarded (not ours, not a
        broadcast) through a resolved next hop; every change that could make it wrong
        empties the cache. What remains to check per packet is what the packet itself
        says: TTL, size, a martian source. Anything unusual falls back to the slow path.
        """
        ttl = pkt.ttl
        src = pkt.src
        if (ttl <= 1 or len(pkt) > flow.mtu or not flow.iface.flags & IFF_UP
                or not self._node_forwarding.value or not self._node_fastforwarding.value
                or src[0] >= 224 or src[0] == 127 or src in self._bcast):
            return False
        # TTL down by one and the checksum patched in place (RFC 1141), behind the cached
        # Ethernet header: no route lookup, no ARP.
        frame = bytearray(flow.head)
        frame += pkt.datagram
        frame[22] = ttl - 1
        ck = ((frame[24] << 8) | frame[25]) + 0x100
        ck = (ck & 0xFFFF) + (ck >> 16)
        frame[24] = ck >> 8
        frame[25] = ck & 0xFF
        flow.uses += 1
        flow.route.use += 1
        self.stats.fastforward += 1
        self.stack.transmit(flow.iface, pad_frame(bytes(frame)) if len(frame) < 60 else bytes(frame))
        return True

    def _forward(self, iface: Interface, pkt: Ipv4Packet, ip: Ipv4Repr, now: Instant, link_bcast: bool,
                 vh=None) -> None:
        st = self.stats
        if not self._node_forwarding.value:
            st.cantforward += 1               # a host: RFC 1122 3.3.4.2, silently discard
            return
        dst = ip.dst
        # RFC 1812 5.3.4: never forward what arrived as a link-layer broadcast; nothing
        # to 0/8 or class E; and no directed broadcast to one of our other networks
        # (RFC 2644, NetBSD net.inet.ip.directed-broadcast=0).
        if link_bcast or dst[0] == 0 or dst[0] >= 240 or dst in self._bcast:
            st.cantforward += 1
            return
        ttl = ip.ttl
        if ttl <= 1:
            # RFC 1812 5.3.1: time exceeded in transit.
            self.icmp.error(pkt.datagram, ICMP_TIMXCEED, TIMXCEED_INTRANS, now, in_iface=iface)
            return
        route = self.routes.lookup(_int(dst), self._usable)
        if route is None or route.flags & RTF_REJECT:
            st.noroute += 1
            self.icmp.error(pkt.datagram, ICMP_UNREACH, UNREACH_HOST, now, in_iface=iface)
            return
        if route.flags & RTF_BLACKHOLE:
            st.noroute += 1
            return
        out = route.iface
        if out.kind == IFT_LOOP:
            st.cantforward += 1
            return
        nexthop = dst if route.gateway is None else route.gateway.to_bytes(4, "big")
        buf = bytearray(pkt.datagram)
        buf[8] = ttl - 1
        ck = ((buf[10] << 8) | buf[11]) + 0x100
        ck = (ck & 0xFFFF) + (ck >> 16)
        buf[10] = ck >> 8
        buf[11] = ck & 0xFF
        datagram = bytes(buf)
        mtu = route.mtu or out.mtu
        route.use += 1
        tx = gso.rx_offload(vh, datagram) if vh is not None else None
        if tx is not None:
            # A frame the local kernel left unfinished (NEEDS_CSUM) or a super-segment:
            # passed on whole where the next link takes it, finished and cut otherwise.
            st.forward += 1
            self._link_output(out, nexthop, datagram, now, False, tx)
            return
        if len(datagram) > mtu:
            if ip.dont_frag:
                # RFC 1191 4: fragmentation needed, with the next-hop MTU.
                st.cantfrag += 1
                self.icmp.error(pkt.datagram, ICMP_UNREACH, UNREACH_NEEDFRAG, now, mtu=mtu, in_iface=iface)
                return
            packets = self._fragment(datagram, mtu)
            if packets is None:
                st.cantfrag += 1
                return
            st.fragmented += 1
            st.ofragments += len(packets)
        else:
            packets = [datagram]
        st.forward += 1
        for p in packets:
            self._link_output(out, nexthop, p, now)
        # RFC 1812 5.2.7.2 / NetBSD ip_forward(): the datagram leaves by the interface it
        # came in on, toward a next hop its sender could reach itself: tell the sender
        # (host redirect; never for the default route or a route a redirect made).
        if out is iface and self._node_redirect.value and route.prefixlen \
                and not route.flags & (RTF_DYNAMIC | RTF_MODIFIED) and self._on_link(iface, ip.src):
            st.redirectsent += 1
            self.icmp.error(pkt.datagram, ICMP_REDIRECT, 1, now, in_iface=iface, gateway=nexthop)
            return            # no flow: the sender should stop coming this way
        if self._node_fastforwarding.value and pkt.header_len == 20 and out.kind == IFT_ETHER:
            entry = self.arp.get(out, _int(nexthop))
            if entry is not None and (entry.state is State.REACHABLE or entry.state is State.STATIC):
                if len(self._flows) >= MAX_FLOWS:
                    self._flush_flows()
                route.refs += 1
                self._flows[(iface.index, dst)] = Flow(out, entry.mac + out.mac + ETHERTYPE_IP, mtu, route)

    @staticmethod
    def _on_link(iface: Interface, addr: bytes) -> bool:
        a = _int(addr)
        return any(a & ifa.netmask_int == int(ifa.address) & ifa.netmask_int for ifa in iface.inet_addrs())
