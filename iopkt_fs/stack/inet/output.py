"""IPv4 output (ip_output): routes, source choice, fragmentation, the link below.

``Ipv4Output`` is the egress half of ``Ipv4Layer`` (ipv4.py), which extends it, as
inet6/output6.py's ``Ipv6Output`` is for ``Ipv6Layer``; it reads the layer's state
(``routes``, ``arp``, ``_local``, ``_bcast``, ``groups``, ``stats``) and owns none.

Egress: ``output(payload, src, dst, proto, now, ...)`` routes (``route_to``: our own
addresses and 127/8 go to lo0; a limited broadcast to the first up interface with an
address), picks the source when the caller did not (``source_for`` is the same choice
for sockets), builds the header and fragments to the route's or interface's MTU (RFC 791
3.2, ``_fragment``). ``_link_output`` (shared with IGMP, and the forwarding path) puts
the Ethernet header on: broadcast, the group's MAC, or the next hop through ARP (packets
wait in the entry's bounded queue); with a virtio link whose enabled offloads cover the
transport's leftover work (``gso.Tx``) it goes in a virtio header (``_tx_header``), else
gso.py finishes it in software. route(8)'s calls are here too (``route_add`` ...).

Routes out are cached per destination (``OutRoute``, BSD's ``inp_route`` and Linux's
dst cache in one table for every socket): the route, next hop, source and the Ethernet
header toward a resolved neighbour, so a unicast datagram to a destination seen before
costs no route lookup, no ARP look-up and no header join. The table is emptied on every
route, ARP or interface change (``Ipv4Layer._routing_changed``: the same events that
drop the forwarding flow cache), and an entry is made only for what is settled: a
usable unicast route, and on Ethernet a REACHABLE or permanent neighbour (a STALE one
must be re-confirmed by ``arp.resolve``, which the cached path would skip).
"""

import errno
import ipaddress

import attrs

from ..errors import StackError
from ..iface.interface import (
    IFCAP_CSUM_TCPv4_Tx, IFCAP_CSUM_UDPv4_Tx, IFCAP_TSOv4, IFF_UP, IFT_ETHER, IFT_LOOP, Interface,
)
from ..iface.neighbor import State as ArpState
from ..iface.route import RTF_BLACKHOLE, RTF_REJECT, Route
from ..time import Instant
from ..wire.ethernet import BROADCAST as ETHER_BROADCAST
from ..wire.ethernet import ipv4_multicast_mac, pad_frame
from ..wire.ipv4 import ANY, BROADCAST, Ipv4Packet, Ipv4Repr, plain_header
from ..wire.virtio import DATA_VALID, GSO_NONE, GSO_TCPV4, GSO_UDP_L4, HDR as _VH, NEEDS_CSUM
from . import gso

ETHERTYPE_IP = b"\x08\x00"
LOOPBACK = bytes((127, 0, 0, 1))
# The virtio header loopback and software-cut packets are given: checksums trusted.
LOOP_VH = _VH.pack(DATA_VALID, GSO_NONE, 0, 0, 0, 0)
_PLAIN_VH = bytes(_VH.size)
# Per GSO type: the capability a link needs to take such super-segments whole, and the
# one it needs to finish their checksums (NetBSD IFCAP_* names what the device does).
_GSO_CAP = {GSO_TCPV4: IFCAP_TSOv4, GSO_UDP_L4: IFCAP_TSOv4}
_CSUM_CAP = {16: IFCAP_CSUM_TCPv4_Tx, 6: IFCAP_CSUM_UDPv4_Tx}
_SETTLED = (ArpState.REACHABLE, ArpState.STATIC)   # neighbours whose MAC may be cached
# The largest IPv4 packet one super-segment may be (the total length field's limit).
GSO_MAX = 65535
MAX_OUT_ROUTES = 1024                # destinations in the output route cache


class OutRoute:
    """Where locally sent unicast datagrams to one destination go (see the module text)."""

    __slots__ = ("iface", "nexthop", "route", "src", "head", "tx", "vh")

    def __init__(self, iface: Interface, nexthop: bytes, route: Route | None, src: bytes | None,
                 head: bytes | None):
        self.iface = iface
        self.nexthop = nexthop
        self.route = route        # None: to one of our addresses (lo0)
        self.src = src            # the source when the caller gives none (None: ask again)
        self.head = head          # the Ethernet header, or None: the link takes bare packets
        # The virtio header for a segment that is not cut (gso NONE) with transport work
        # ``tx``: it depends only on tx and the link's enabled offloads (_tx_header).
        self.tx = None
        self.vh = b""


def _int(addr: bytes) -> int:
    return int.from_bytes(addr, "big")


def _packed(value) -> bytes:
    """bytes / str / IPv4Address -> 4 bytes; StackError(EINVAL) otherwise."""
    if isinstance(value, bytes) and len(value) == 4:
        return value
    try:
        return ipaddress.IPv4Address(value).packed
    except (ValueError, ipaddress.AddressValueError):
        raise StackError(errno.EINVAL, f"bad IPv4 address {value!r}") from None


class Ipv4Output:
    # -- IPv4 output (ip_output) ----------------------------------------------------------------

    def next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def output_failed(self, exc: StackError) -> None:
        self.stats.odropped += 1

    def route_to(self, dst: bytes) -> tuple[Interface, bytes, Route | None]:
        """(interface, next hop, route) a locally sent datagram to ``dst`` takes.

        Raises:
            StackError(EHOSTUNREACH): no route, or a reject route.
            StackError(ENETUNREACH): a limited broadcast with no interface to send it on.
        """
        ro = self._out_routes.get(dst) if type(dst) is bytes else None
        if ro is not None:
            return ro.iface, ro.nexthop, ro.route      # what the lookup below said, cached
        if dst in self._local or dst[0] == 127:
            return self.stack.lo0, dst, None
        if dst == BROADCAST:
            for iface in self.stack.interfaces.values():
                if iface.is_up and not iface.is_loopback and iface.inet_addrs():
                    return iface, dst, None
            self.stats.noroute += 1
            raise StackError(errno.ENETUNREACH, "no interface for the limited broadcast")
        route = self.routes.lookup(_int(dst), self._usable)
        if route is None or route.flags & RTF_REJECT:
            self.stats.noroute += 1
            raise StackError(errno.EHOSTUNREACH, f"no route to host {ipaddress.IPv4Address(dst)}")
        nexthop = dst if route.gateway is None else route.gateway.to_bytes(4, "big")
        return route.iface, nexthop, route

    def source_for(self, dst: bytes) -> bytes:
        """The source address a datagram to ``dst`` gets (in_pcbconnect's choice)."""
        if dst in self._local:
            return dst
        if dst[0] == 127:
            return LOOPBACK
        iface, nexthop, route = self.route_to(dst)
        if route is not None and route.ifa_address is not None:
            return route.ifa_address.to_bytes(4, "big")
        src = self.interface_address(iface, nexthop)
        if src is None:
            raise StackError(errno.EADDRNOTAVAIL, f"{iface.name} has no IPv4 address")
        return src

    def output(self, payload, src, dst, proto: int, now: Instant, *, ttl: int | None = None,
               tos: int = 0, df: bool = False, iface: Interface | None = None,
               tx: gso.Tx | None = None) -> None:
        """Send ``payload`` as one datagram (fragmented if it must be).

        ``src`` None picks our address toward ``dst``. ``iface`` forces the interface (a
        limited broadcast on a bound socket, IP_MULTICAST_IF). ``tx`` says the transport
        left work for below (a partial checksum, a super-segment to cut: gso.py); its
        ``l4`` is then 20, our header having no options.

        Raises:
            StackError(EHOSTUNREACH / ENETUNREACH): no route.
            StackError(EMSGSIZE): DF set and the datagram exceeds the MTU, or > 65535.
            StackError(EADDRNOTAVAIL): no source address to use.
        """
        if iface is None and type(dst) is bytes:
            ro = self._out_routes.get(dst)
            if ro is not None and (src is not None or ro.src is not None):
                self._output_cached(ro, payload, src, dst, proto, now, ttl, tos, df, tx)
                return
        st = self.stats
        dst = _packed(dst)
        epoch = self._route_epoch
        forced = iface
        if iface is not None:
            nexthop, route = dst, None
        else:
            iface, nexthop, route = self.route_to(dst)
            if route is not None:
                route.use += 1
                if route.flags & RTF_BLACKHOLE:
                    return
        if src is None:
            src = self._source_for(dst, iface, nexthop, route)
            if src is None:
                if dst != BROADCAST:
                    raise StackError(errno.EADDRNOTAVAIL, f"{iface.name} has no IPv4 address")
                src = ANY         # RFC 2131 4.1: a DHCP client broadcasts from 0.0.0.0
        else:
            src = _packed(src)
        if ttl is None:
            ttl = 1 if 224 <= dst[0] < 240 else self._node_ttl.value
        length = 20 + len(payload)
        if length > 0xFFFF:
            raise StackError(errno.EMSGSIZE, f"datagram of {length} bytes")
        st.localout += 1
        header = plain_header(src, dst, proto, len(payload), ttl, tos, self.next_ident(), df)
        datagram = header + bytes(payload)
        mtu = (route.mtu if route is not None and route.mtu else 0) or iface.mtu
        link_bcast = dst == BROADCAST or (dst in self._bcast and iface.kind != IFT_LOOP)
        if (link_bcast or (224 <= dst[0] < 240 and dst in self.groups)) and self.stack.lo0.is_up:
            # IFF_SIMPLEX (BSD ether_output): the interface does not hear itself, so a
            # broadcast we send is also looped to our own sockets, as BSD and Linux do;
            # likewise a multicast to a group we are in (IP_MULTICAST_LOOP's default).
            self.stack.transmit(self.stack.lo0, datagram)
        if length <= mtu or (tx is not None and tx.gso_type != GSO_NONE):
            self._link_output(iface, nexthop, datagram, now, link_bcast, tx)
            if forced is None and epoch == self._route_epoch:     # nothing moved meanwhile
                self._remember_route(dst, iface, nexthop, route, link_bcast)
            return
        if df:
            st.cantfrag += 1
            raise StackError(errno.EMSGSIZE, f"{length} bytes exceed the MTU {mtu} of {iface.name}")
        packets = self._fragment(datagram, mtu)
        if packets is None:
            st.cantfrag += 1
            raise StackError(errno.EMSGSIZE, f"cannot fragment for MTU {mtu}")
        st.fragmented += 1
        st.ofragments += len(packets)
        for p in packets:
            self._link_output(iface, nexthop, p, now, link_bcast)

    def _remember_route(self, dst: bytes, iface: Interface, nexthop: bytes, route: Route | None,
                        link_bcast: bool) -> None:
        """Cache where ``dst`` went, when that is settled (see the module text)."""
        if link_bcast or dst == BROADCAST or 224 <= dst[0] < 240 or dst in self._out_routes or \
                (route is not None and route.flags & (RTF_BLACKHOLE | RTF_REJECT)):
            return
        head = None
        if iface.kind == IFT_ETHER and iface.mac is not None:
            if 224 <= nexthop[0] < 240 or nexthop == BROADCAST:
                return
            entry = self.arp.get(iface, _int(nexthop))
            if entry is None or entry.mac is None or entry.state not in _SETTLED:
                return
            head = entry.mac + iface.mac + ETHERTYPE_IP
        src = self._source_for(dst, iface, nexthop, route)
        if len(self._out_routes) >= MAX_OUT_ROUTES:
            self._out_routes.clear()
        self._out_routes[dst] = OutRoute(iface, nexthop, route, src, head)

    def _source_for(self, dst: bytes, iface: Interface, nexthop: bytes,
                    route: Route | None) -> bytes | None:
        """The source of a datagram sent without one (None: the interface has no address):
        the destination itself if it is ours, 127.0.0.1 for loopback, the route's address
        (route add -ifa), else the interface's address toward the next hop."""
        if dst in self._local:
            return dst
        if dst[0] == 127:
            return LOOPBACK
        if route is not None and route.ifa_address is not None:
            return route.ifa_address.to_bytes(4, "big")
        return self.interface_address(iface, nexthop)

    def _output_cached(self, ro: OutRoute, payload, src, dst: bytes, proto: int, now: Instant,
                       ttl, tos: int, df: bool, tx) -> None:
        """``output`` to a destination in the route cache: the same steps, in the same
        order, with the route, source and link header taken from ``ro``."""
        route = ro.route
        if route is not None:
            route.use += 1
        if src is None:
            src = ro.src
        elif type(src) is not bytes or len(src) != 4:
            src = _packed(src)
        if ttl is None:
            ttl = self._node_ttl.value
        n = len(payload)
        if n > 0xFFFF - 20:
            raise StackError(errno.EMSGSIZE, f"datagram of {20 + n} bytes")
        self.stats.localout += 1
        self._ident = ident = (self._ident + 1) & 0xFFFF        # next_ident(), written out
        datagram = plain_header(src, dst, proto, n, ttl, tos, ident, df) + bytes(payload)
        iface = ro.iface
        mtu = (route.mtu if route is not None and route.mtu else 0) or iface.mtu
        if 20 + n > mtu and (tx is None or tx.gso_type == GSO_NONE):
            if df:
                self.stats.cantfrag += 1
                raise StackError(errno.EMSGSIZE, f"{20 + n} bytes exceed the MTU {mtu} of {iface.name}")
            packets = self._fragment(datagram, mtu)
            if packets is None:
                self.stats.cantfrag += 1
                raise StackError(errno.EMSGSIZE, f"cannot fragment for MTU {mtu}")
            self.stats.fragmented += 1
            self.stats.ofragments += len(packets)
            for p in packets:
                self._link_output(iface, ro.nexthop, p, now)
            return
        head = ro.head
        if head is None:
            self._bare_output(iface, datagram, tx)
        elif tx is not None and tx is ro.tx and iface.vnet_hdr:
            frame = b"".join((ro.vh, head, datagram))
            if iface.if_output is None:       # Stack.transmit's test, a call less a segment
                self.stack.link_transmit(iface, frame, True)
            else:
                self.stack.transmit(iface, frame, framed=True)
        else:
            if tx is not None and tx.gso_type == GSO_NONE and iface.vnet_hdr:
                vh = self._tx_header(iface, datagram, tx)
                if vh is not None:
                    ro.tx, ro.vh = tx, vh
            self._ether_output(iface, head, datagram, tx)

    def _fragment(self, datagram: bytes, mtu: int) -> list[bytes] | None:
        """ip_fragment() (RFC 791 3.2 "Fragmentation"): pieces of at most ``mtu`` bytes.

        Data per piece is a multiple of 8; the first piece keeps all options, the others
        only those with the copied flag (RFC 791 3.1 "Options"). Fragmenting a fragment
        keeps its offset and, on the last piece, its MF bit.
        """
        pkt = Ipv4Packet(datagram)
        ip = Ipv4Repr.parse(pkt, verify=False)
        payload = pkt.payload
        later_options = _copied_options(ip.options)
        pieces = []
        off = 0
        n = len(payload)
        while off < n:
            options = ip.options if off == 0 else later_options
            room = (mtu - 20 - len(options)) & ~7
            if room <= 0:
                return None
            chunk = payload[off:off + room]
            last = off + len(chunk) >= n
            piece = attrs.evolve(ip, payload_len=len(chunk), options=options,
                                 more_frags=ip.more_frags if last else True,
                                 frag_offset=ip.frag_offset + off)
            try:
                header = piece.header_bytes()
            except ValueError:
                return None       # a forwarded fragment whose offsets pass 65528: unsendable
            pieces.append(header + bytes(chunk))
            off += len(chunk)
        return pieces

    def _usable(self, route: Route) -> bool:
        """A route's interface is up and its gateway not known dead (multi-gateway choice)."""
        iface = route.iface
        if not iface.flags & IFF_UP:
            return False
        gw = route.gateway
        return gw is None or not self.arp.is_down(iface, gw)

    # -- the link below (ether_output, arpresolve) ----------------------------------------------

    def _link_output(self, iface: Interface, nexthop: bytes, packet: bytes, now: Instant,
                     link_bcast: bool = False, tx: gso.Tx | None = None) -> None:
        if iface.kind != IFT_ETHER or iface.mac is None:
            self._bare_output(iface, packet, tx)
            return
        if link_bcast or nexthop == BROADCAST:
            mac = ETHER_BROADCAST
        elif 224 <= nexthop[0] < 240:
            mac = ipv4_multicast_mac(nexthop)
        else:
            ip = _int(nexthop)
            if tx is not None:
                entry = self.arp.get(iface, ip)
                if entry is None or not entry.usable:
                    # Held packets wait for ARP as ordinary packets: finish them first.
                    for p in gso.finalize(packet, tx, iface.mtu):
                        self.arp.resolve(iface, ip, p, now)
                    return
            mac = self.arp.resolve(iface, ip, packet, now)
            if mac is None:
                return                            # held until ARP answers (or counted)
        self._ether_output(iface, mac + iface.mac + ETHERTYPE_IP, packet, tx)

    def _bare_output(self, iface: Interface, packet: bytes, tx: gso.Tx | None) -> None:
        """A link without an Ethernet header: lo0 carries partial checksums and whole
        super-segments as they are (its input trusts them); a tun gets them finished."""
        if tx is None or iface.kind == IFT_LOOP:
            self.stack.transmit(iface, packet)
        else:
            for p in gso.finalize(packet, tx, iface.mtu):
                self.stack.transmit(iface, p)

    def _ether_output(self, iface: Interface, head: bytes, packet: bytes, tx: gso.Tx | None) -> None:
        if iface.vnet_hdr:
            vh = self._tx_header(iface, packet, tx)
            if vh is not None:
                self.stack.transmit(iface, b"".join((vh, head, packet)), framed=True)
                return
        elif tx is None:
            frame = head + packet
            self.stack.transmit(iface, pad_frame(frame) if len(frame) < 60 else frame)
            return
        for p in gso.finalize(packet, tx, iface.mtu):
            frame = head + p
            self.stack.transmit(iface, pad_frame(frame) if len(frame) < 60 else frame)

    @staticmethod
    def _tx_header(iface: Interface, packet, tx: gso.Tx | None) -> bytes | None:
        """The virtio_net_hdr that lets the device finish ``packet``, or None when the
        link's enabled offloads do not cover the work (it is then done in software)."""
        if tx is None:
            return _PLAIN_VH if len(packet) >= 46 else None
        enabled = iface.enabled
        if tx.csum is None or not enabled & _CSUM_CAP.get(tx.csum, 0):
            return None
        flags = NEEDS_CSUM
        gso_type = GSO_NONE
        gso_size = hdr_len = 0
        if tx.gso_type != GSO_NONE and len(packet) > iface.mtu:
            if not enabled & _GSO_CAP[tx.gso_type]:
                return None
            gso_type, gso_size = tx.gso_type, tx.gso_size
            l4_head = (packet[tx.l4 + 12] >> 4) * 4 if tx.gso_type == GSO_TCPV4 else 8
            hdr_len = 14 + tx.l4 + l4_head
        return _VH.pack(flags, gso_type, hdr_len, gso_size, 14 + tx.l4, tx.csum)

    # -- route(8) -------------------------------------------------------------------------------

    def _iface_arg(self, iface) -> Interface | None:
        if iface is None or isinstance(iface, Interface):
            return iface
        return self.stack.interface(iface)

    def route_add(self, dest, gateway=None, *, iface=None, prefixlen: int | None = None,
                  host: bool = False, reject: bool = False, blackhole: bool = False, mtu: int = 0) -> Route:
        iface = self._iface_arg(iface)
        if gateway is not None:
            mine = self._local.get(_packed(gateway))
            if mine is not None:
                # route(8): a gateway that is one of our addresses means "directly through
                # that interface" (rtrequest's ifa_ifwithaddr case; no RTF_GATEWAY).
                gateway, iface = None, iface or mine[0]
        return self.routes.add(dest, gateway, iface=iface, prefixlen=prefixlen,
                               host=host, reject=reject, blackhole=blackhole, mtu=mtu)

    def route_delete(self, dest, gateway=None, *, prefixlen: int | None = None, host: bool = False) -> Route:
        return self.routes.delete(dest, gateway, prefixlen=prefixlen, host=host)

    def route_get(self, dst) -> Route:
        return self.routes.get(dst, self._usable)

    def route_flush(self) -> list[Route]:
        return self.routes.flush()

    def route_show(self) -> list[dict]:
        return self.routes.show()


def _copied_options(options: bytes) -> bytes:
    """The options with the "copied" flag (RFC 791 3.1), padded to a multiple of 4."""
    out = bytearray()
    i = 0
    n = len(options)
    while i < n:
        kind = options[i]
        if kind == 0:              # end of option list
            break
        if kind == 1:              # no-operation
            i += 1
            continue
        if i + 1 >= n or options[i + 1] < 2:
            break                  # a broken length: copy nothing more
        length = options[i + 1]
        if kind & 0x80:
            out += options[i:i + length]
        i += length
    out += bytes(-len(out) % 4)
    return bytes(out)
