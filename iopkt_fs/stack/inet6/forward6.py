"""IPv6 forwarding (ip6_forward): io-pkt's ``forward6`` / ``net.inet6.ip6.forwarding``,
or QNX's per-interface ``IFF_IP6FORWARDING`` (node ``net.inet6.ip6.ifconf.IF.forwarding``)
on the interface the packet came in by.

Theory of operation
-------------------
The IPv6 layer hands over a unicast packet that is for none of our addresses. In order:

* never forwarded: a host's packet (forwarding off: counted ``cantforward``, RFC 8200
  has a host drop it), one that came as a link-layer multicast, one from ::, one to a
  link-local address (RFC 4291 2.5.6), one that would go back into lo0;
* hop limit 1 or 0: Time Exceeded code 0 to the source (RFC 8200 3, RFC 4443 3.3);
* no route (or a reject route): Destination Unreachable code 0 (RFC 4443 3.1); a
  blackhole route swallows it;
* a link-local source leaving by another interface than it came: Destination Unreachable
  code 2, beyond the scope of the source (RFC 4007 9);
* bigger than the next link's MTU (the route's, else the link's, RA-taught or not):
  Packet Too Big with that MTU (RFC 8200 5: routers never fragment; RFC 8201);
* leaving by the interface it came in on toward a next hop the sender could reach itself:
  a Redirect to the sender (redirect6.py), and the packet still goes on (RFC 4861 8.2).

Otherwise the hop limit is decremented and the packet goes to the next hop through the
ND cache. A frame the local kernel handed over unfinished (virtio NEEDS_CSUM) or as a
GSO_TCPV6/GSO_UDP_L4 super-frame keeps that work (``gso.rx_offload``, as IPv4's forward
does): the MTU check is made on the packets it stands for, and the output path passes it
on whole to a link that takes the offload (TSO6, partial checksums) or finishes and cuts
it in software (inet/gso.py, shared with our own output). Hop-by-hop options are not
examined on the way through (RFC 8200 4.3 lets a router skip them).
"""

from ..iface.interface import IFT_LOOP, Interface
from ..iface.route import RTF_BLACKHOLE, RTF_REJECT
from ..inet import gso
from ..time import Instant
from ..wire.icmpv6 import (
    TIMXCEED_HOPLIMIT, UNREACH_BEYONDSCOPE, UNREACH_NOROUTE, Icmpv6Type as T,
)
from ..wire.ipv6 import UNSPECIFIED, is_link_local
from ..wire.virtio import GSO_NONE, GSO_TCPV6


class Forwarder6:
    def __init__(self, ip):
        self.ip = ip

    def forward(self, iface: Interface, pkt, now: Instant, link_mcast: bool, vh=None) -> None:
        ip = self.ip
        st = ip.stats
        buf = pkt.datagram
        src = bytes(buf[8:24])
        dst = bytes(buf[24:40])
        if (not ip.rtr.forwarding(iface) or link_mcast or src == UNSPECIFIED or is_link_local(dst)
                or iface.kind == IFT_LOOP):
            st.cantforward += 1
            return
        hlim = buf[7]
        if hlim <= 1:
            st.cantforward += 1
            ip.icmp.error(buf, T.TIME_EXCEEDED, TIMXCEED_HOPLIMIT, now, in_iface=iface)
            return
        route = ip.routes.lookup(int.from_bytes(dst, "big"))
        if route is None or route.flags & RTF_REJECT:
            st.noroute += 1
            ip.icmp.error(buf, T.DST_UNREACH, UNREACH_NOROUTE, now, in_iface=iface)
            return
        out = route.iface
        if route.flags & RTF_BLACKHOLE or out.kind == IFT_LOOP:
            st.cantforward += 1
            return
        if is_link_local(src) and out is not iface:
            st.badscope += 1                   # RFC 4007 9
            ip.icmp.error(buf, T.DST_UNREACH, UNREACH_BEYONDSCOPE, now, in_iface=iface)
            return
        tx = gso.rx_offload(vh, buf) if vh is not None else None
        mtu = route.mtu or ip.rtr.link_mtu(out)
        if tx is not None and tx.gso_type != GSO_NONE and tx.gso_size:
            # A super-frame: what must fit is each packet it stands for.
            thl = (buf[tx.l4 + 12] >> 4) * 4 if tx.gso_type == GSO_TCPV6 else 8
            wire_size = min(len(buf), tx.l4 + thl + tx.gso_size)
        else:
            wire_size = len(buf)
        if wire_size > mtu:
            st.cantfrag += 1
            ip.icmp.error(buf, T.PACKET_TOO_BIG, 0, now, mtu=mtu, in_iface=iface)
            return
        nexthop = dst if route.gateway is None else route.gateway.to_bytes(16, "big")
        packet = bytearray(buf)
        packet[7] = hlim - 1
        route.use += 1
        st.forward += 1
        if out is iface:
            ip.redirect.send(iface, buf, route, nexthop, now)
        ip._link_output(out, nexthop, bytes(packet), now, tx=tx, mtu=mtu)
