"""IPv6 output (ip6_output): routes, zones, source selection, path MTU, fragmentation,
the link below (ND resolution), ND and the neighbour cache's callbacks.

``Ipv6Output`` is the egress half of ``Ipv6Layer`` (ipv6.py), which extends it; it reads
the layer's state (``routes``, ``nd``, ``pmtu``, ``rtr``, ``_local``) and never owns any.

Egress: ``output(payload, src, dst, proto, now, ...)`` routes (``routes``, a 128-bit
``RouteTable``; link-local destinations are not routed but belong to a zone, below),
fragments to the path MTU with a Fragment header (never forwarding, never an atomic
fragment: RFC 8021) and ``_link_output`` resolves the next hop through the ND cache
(nd6.py). Our own addresses go through lo0 and come back at the next ``poll``.

Offloads: a transport that leaves work for below passes ``tx`` (inet/gso.py ``Tx``: a
partial checksum at ``l4 + csum``, maybe a GSO_TCPV6 super-segment of ``gso_size``
pieces). ``_link_output`` hands it to a TAP in a virtio header when the link's enabled
capabilities cover it (TCP6CSUM_Tx / UDP6CSUM_Tx for the checksum, TSO6 for cutting),
as Linux's dev_queue_xmit would to a device with NETIF_F_TSO6; any other link gets the
finished packets ``gso.finalize`` makes (the software GSO fallback). lo0 carries them as
they are (its input trusts them); packets held for ND are finished first. A super-segment
is never fragmented: it is cut at the path MTU TCP built it for.

Zones (RFC 4007): a link-local destination leaves by the interface given, else the one
owning the link-local source address, else the one whose neighbour cache knows it, else
the only up non-loopback interface; ambiguity is EHOSTUNREACH.
"""

import errno
import hashlib
import ipaddress

from ..errors import StackError
from ..iface.interface import (
    IFCAP_CSUM_TCPv6_Tx, IFCAP_CSUM_UDPv6_Tx, IFCAP_TSOv6, IFT_ETHER, IFT_LOOP, Interface,
)
from ..iface.route import RTF_BLACKHOLE, RTF_REJECT
from ..inet import gso
from ..time import Instant, seconds
from ..wire.ethernet import pad_frame
from ..wire.icmpv6 import UNREACH_ADDR, Icmpv6Type as T
from ..wire.ipv6 import (
    HEADER_LEN, LOOPBACK, MIN_MTU, NH_FRAGMENT, Ipv6FragmentRepr, Ipv6Repr, is_link_local, is_multicast,
    multicast_mac,
)
from ..wire.virtio import GSO_NONE, GSO_TCPV6
from .addrsel import select_source
from .ndisc import IN6_IFF_ANYCAST, IN6_IFF_DEPRECATED, IN6_IFF_DUPLICATED, IN6_IFF_TENTATIVE

ETHERTYPE_IPV6 = b"\x86\xdd"
PMTU_EXPIRE = seconds(600)          # QNX pmtu_expire; RFC 8201 4: at least 5 min
# What a link must have enabled to finish our packets: the checksum (by its offset in the
# transport header) and the cutting of a super-segment (by GSO type). USO has no IFCAP
# bit of its own and is not sent yet.
_CSUM_CAP6 = {16: IFCAP_CSUM_TCPv6_Tx, 6: IFCAP_CSUM_UDPv6_Tx}
_GSO_CAP6 = {GSO_TCPV6: IFCAP_TSOv6}


class Ipv6Output:
    def output_failed(self, exc: StackError) -> None:
        self.stats.odropped += 1

    def _zone(self, dst: bytes, src: bytes | None) -> Interface:
        if src is not None:
            mine = self._local.get(src)
            if mine is not None and is_link_local(src) and not mine[0].is_loopback:
                return mine[0]
        if not is_multicast(dst):
            for iface in self.stack.interfaces.values():
                if iface.is_up and self.nd.get(iface, dst) is not None:
                    return iface
        links = [i for i in self.stack.interfaces.values() if i.is_up and not i.is_loopback and i.inet6_addrs()]
        if len(links) == 1:
            return links[0]
        self.stats.noroute += 1
        raise StackError(errno.EHOSTUNREACH, f"{ipaddress.IPv6Address(dst)} needs a zone (%interface)")

    def route_to(self, dst: bytes, iface: Interface | None = None, src: bytes | None = None):
        """(interface, next hop, route) for a packet we send to ``dst``."""
        if dst in self._local or dst == LOOPBACK:
            return self.stack.lo0, dst, None
        if iface is not None:
            return iface, dst, None
        if self.needs_zone(dst):
            return self._zone(dst, src), dst, None
        route = self.routes.lookup(int.from_bytes(dst, "big"))
        if route is None or route.flags & RTF_REJECT:
            self.stats.noroute += 1
            raise StackError(errno.EHOSTUNREACH, f"no route to host {ipaddress.IPv6Address(dst)}")
        nexthop = dst if route.gateway is None else route.gateway.to_bytes(16, "big")
        return route.iface, nexthop, route

    def _candidates(self, out: Interface):
        # Loopback's addresses (::1, fe80::1%lo0) are candidates only for lo0 itself.
        for addr, (iface, ifa) in self._local.items():
            if iface.is_loopback and not out.is_loopback:
                continue
            if not ifa.flags6 & (IN6_IFF_TENTATIVE | IN6_IFF_DUPLICATED | IN6_IFF_ANYCAST):
                yield addr, iface.index, bool(ifa.flags6 & IN6_IFF_DEPRECATED)

    def source_for(self, dst: bytes, iface: Interface | None = None, *, quiet: bool = False) -> bytes | None:
        """The source address for a packet to ``dst`` (RFC 6724 5, addrsel.py)."""
        if self.is_usable_local(dst) or dst == LOOPBACK:
            return dst
        try:
            out, _nexthop, _route = self.route_to(dst, iface)
        except StackError:
            if quiet:
                return None
            raise
        src = select_source(dst, self._candidates(out), out.index)
        if src is None and not quiet:
            raise StackError(errno.EADDRNOTAVAIL, f"no usable IPv6 address toward {ipaddress.IPv6Address(dst)}")
        return src

    def path_mtu(self, dst: bytes) -> int:
        try:
            iface, _nh, route = self.route_to(dst)
        except StackError:
            return MIN_MTU
        mtu = (route.mtu if route is not None and route.mtu else 0) or self.rtr.link_mtu(iface)
        cached = self.pmtu.get(dst)
        return min(mtu, cached[0]) if cached is not None else mtu

    def lower_pmtu(self, dst: bytes, mtu: int, now: Instant) -> int | None:
        """RFC 8201 4: Packet Too Big lowers the path MTU, never below 1280 and never up."""
        mtu = max(mtu, MIN_MTU)
        cached = self.pmtu.get(dst)
        if cached is not None and cached[1] <= now:
            cached = None
        current = cached[0] if cached is not None else self.path_mtu(dst)
        if mtu >= current:
            return None
        self.pmtu[dst] = (mtu, now + PMTU_EXPIRE)
        return mtu

    def _flow_label(self, src: bytes, dst: bytes, proto: int) -> int:
        """RFC 6437 3: a per-flow pseudo-random label from a keyed hash."""
        if not self._node_flow.value:
            return 0
        h = hashlib.blake2s(src + dst + bytes((proto,)), key=self._flow_key, digest_size=4).digest()
        return int.from_bytes(h, "big") & 0xFFFFF

    def output(self, payload, src, dst, proto: int, now: Instant, *, ttl: int | None = None, tos: int = 0,
               iface: Interface | None = None, dontfrag: bool = False, tclass: int | None = None,
               hlim: int | None = None, tx: gso.Tx | None = None) -> None:
        """Send ``payload`` (an upper-layer message) from ``src`` to ``dst``.

        ``ttl``/``hlim`` is the hop limit, ``tos``/``tclass`` the traffic class (the IPv4
        layer's names work too, so transports call both layers alike). ``tx`` says the
        transport left work for below (a partial checksum, a super-segment: gso.py); its
        ``l4`` is then 40, as we add no extension headers.

        Raises StackError(EHOSTUNREACH) without a route, EMSGSIZE when too big for
        ``dontfrag`` or 65535 bytes, EADDRNOTAVAIL when ``src`` is None and none fits.
        """
        st = self.stats
        if src is None:
            src = self.source_for(dst, iface)
        out, nexthop, route = self.route_to(dst, iface, src)
        if route is not None:
            route.use += 1
            if route.flags & RTF_BLACKHOLE:
                return
        if hlim is None:
            # RFC 4861 6.3.4: a Cur Hop Limit from an RA is the link's default.
            hlim = ttl if ttl is not None else (self._node_mhlim.value if is_multicast(dst)
                                                else self.rtr.hop_limit(out) or self._node_hlim.value)
        if tclass is None:
            tclass = tos
        n = len(payload)
        if n > 0xFFFF:
            raise StackError(errno.EMSGSIZE, f"{n} bytes do not fit one IPv6 packet")
        st.localout += 1
        header = Ipv6Repr(src, dst, proto, n, hlim, tclass, self._flow_label(src, dst, proto)).header_bytes()
        mtu = out.mtu if out.kind == IFT_LOOP else self.path_mtu(dst) if iface is None else out.mtu
        if tx is not None:
            if HEADER_LEN + n <= mtu or tx.gso_type != GSO_NONE:
                self._link_output(out, nexthop, header + bytes(payload), now, tx=tx, mtu=mtu)
                return
            # Too big and not a super-segment: finished here, then fragmented as any other.
            payload = gso.complete(header + bytes(payload), tx)[HEADER_LEN:]
        if HEADER_LEN + n <= mtu:
            self._link_output(out, nexthop, header + bytes(payload), now)
            return
        if dontfrag:
            st.cantfrag += 1
            raise StackError(errno.EMSGSIZE, f"{HEADER_LEN + n} bytes exceed the path MTU {mtu}")
        # RFC 8200 4.5: the unfragmentable part is our fixed header (we add no extension
        # headers); each piece carries a multiple of 8 bytes; the ID is unpredictable
        # (RFC 7739).
        room = (mtu - HEADER_LEN - 8) & ~7
        ident = self.stack.rng.getrandbits(32)
        data = bytes(payload)
        st.fragmented += 1
        for start in range(0, n, room):
            chunk = data[start:start + room]
            more = start + room < n
            fh = Ipv6FragmentRepr(proto, start, more, ident).to_bytes()
            head = Ipv6Repr(src, dst, NH_FRAGMENT, 8 + len(chunk), hlim, tclass,
                            self._flow_label(src, dst, proto)).header_bytes()
            st.ofragments += 1
            self._link_output(out, nexthop, head + fh + chunk, now)

    def _link_output(self, iface: Interface, nexthop: bytes, packet: bytes, now: Instant,
                     mac: bytes | None = None, tx: gso.Tx | None = None, mtu: int = 0) -> None:
        """``tx``: work left for the link (see the module docstring); ``mtu`` the path
        MTU the packets it stands for must fit (the link's when 0)."""
        if iface.inet6_disabled:
            self.stats.odropped += 1      # NetBSD nd6_output: ENETDOWN, nothing sent
            return
        kind = iface.kind
        if kind != IFT_ETHER or iface.mac is None:
            if tx is None or kind == IFT_LOOP:
                self.stack.transmit(iface, packet)
            else:
                for p in self._finish(packet, tx, mtu or iface.mtu):
                    self.stack.transmit(iface, p)
            return
        if mac is None:
            if nexthop[0] == 0xFF:
                mac = multicast_mac(nexthop)
            else:
                if tx is not None:
                    entry = self.nd.get(iface, nexthop)
                    if entry is None or not entry.usable:
                        # Held packets wait for ND as ordinary packets: finish them first.
                        for p in self._finish(packet, tx, mtu or iface.mtu):
                            self.nd.resolve(iface, nexthop, p, now)
                        return
                mac = self.nd.resolve(iface, nexthop, packet, now)
                if mac is None:
                    return                   # held until ND answers
        head = mac + iface.mac + ETHERTYPE_IPV6
        if tx is not None:
            mtu = mtu or iface.mtu
            if iface.vnet_hdr:
                vh = gso.device_header(iface.enabled, mtu, packet, tx, _CSUM_CAP6, _GSO_CAP6)
                if vh is not None:
                    if vh[1] != GSO_NONE:
                        self.stats.otso += 1
                    self.stack.transmit(iface, b"".join((vh, head, packet)), framed=True)
                    return
            for p in self._finish(packet, tx, mtu):
                self.stack.transmit(iface, head + p)   # IPv6 + L4 header: >= 62 bytes, no pad
            return
        frame = head + packet
        self.stack.transmit(iface, pad_frame(frame) if len(frame) < 60 else frame)

    def _finish(self, packet, tx: gso.Tx, mtu: int) -> list:
        """gso.finalize, counted: a super-segment cut here is ``ogso``."""
        pieces = gso.finalize(packet, tx, mtu)
        if len(pieces) > 1:
            self.stats.ogso += 1
        return pieces

    def send_nd(self, iface: Interface, src: bytes, dst: bytes, message: bytes, mac: bytes | None) -> None:
        """An ND message: hop limit 255 (RFC 4861 6.1.2/7.1.2), straight onto ``iface``."""
        header = Ipv6Repr(src, dst, 58, len(message), 255).header_bytes()
        self.stats.localout += 1
        self._link_output(iface, dst, header + message, self.stack_now(), mac)

    def stack_now(self) -> Instant:
        """The latest ``now`` seen (input or poll): hooks and ND replies carry none."""
        return self._now

    _now = 0

    def _nd_deliver(self, iface: Interface, mac: bytes, packets: list) -> None:
        head = mac + iface.mac + ETHERTYPE_IPV6
        for packet in packets:
            frame = head + packet
            self.stack.transmit(iface, pad_frame(frame) if len(frame) < 60 else frame)

    def _nd_unreachable(self, iface: Interface, target: bytes, packets: list, now: Instant) -> None:
        # RFC 4861 7.2.2: address unreachable for each packet that waited.
        for packet in packets:
            self.stats.odropped += 1
            self.icmp.error(packet, T.DST_UNREACH, UNREACH_ADDR, now)

