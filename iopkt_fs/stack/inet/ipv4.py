"""The IPv4 layer: Ethernet demux, IPv4 input, addresses, the protocol switch.

Theory of operation
-------------------
``Ipv4Layer(stack)`` installs itself: it appends to ``stack.layers`` (address and
interface hooks, ``poll``/``poll_at``) and sets ``stack.frame_input`` (Ethernet frames
from drivers) and ``stack.loop_input`` (raw IP packets coming back from ``lo*``).

The layer is cut as inet6/ is: this module holds the state, the hooks and the input
path; the other halves are mixins it extends, each reading the layer's state and owning
none of its own but what it names:

* output.py ``Ipv4Output``: ip_output, source choice, fragmentation, ``_link_output``
  (Ethernet header, ARP resolution, virtio offload header), route(8)'s calls;
* forward.py ``Ipv4Forward``: ip_forward (RFC 1812) and the fast-forwarding flow cache;
* arp.py ``ArpInput``: ARP input, requests, announcements, arp(8)'s calls (the cache is
  ``arp``, iface/neighbor.py's ``ArpCache``);
* reass.py (reassembly), icmp.py, igmp.py are collaborators (``reass``, ``icmp``, ``igmp``).

Ingress, named by layer as in smoltcp and BSD::

    frame_input -> process_arp                       (arp.py; RFC 826, answers and learns)
                -> inet6_input                       (EtherType 0x86dd, v6 variants)
                -> process_ipv4 -> reassembly        (RFC 791 3.2, reass.py)
                                -> protosw[proto].input(ctx, payload, now)
                                -> _forward / _fastforward (forward.py, RFC 1812)

Egress: ``output(payload, src, dst, proto, now, ...)`` (output.py). Our own addresses
and 127/8 go out through ``lo0`` as bare IP packets and come back in through
``loop_input`` at the next ``poll``.

Rules:

1. Bad input is a counted drop, never an exception. Every early ``return`` on the receive
   path increments one counter in ``ipstat``/``icmpstat``/``udpstat``/``arpstat``.
2. User errors (``output`` from a socket, route(8) and arp(8) calls) raise
   ``StackError`` with BSD's errno.
3. Time arrives as ``now``; nothing here reads a clock or imports trio.
4. The protocol switch ``protosw`` maps an IP protocol number to an object with
   ``input(ctx, payload, now)`` and, optionally, ``ctlinput(icmp_type, code, quoted, now)``
   (BSD in_proto.c's pr_input / pr_ctlinput). TCP registers itself there.

Addresses inside are 4-byte ``bytes`` (what the wire modules give), ints only for the
route table's prefix arithmetic.
"""
import errno
import ipaddress
import struct

import attrs

from ..errors import StackError
from ..iface.interface import IFT_ETHER, IFT_LOOP, IfAddr, Interface
from ..iface.neighbor import ArpCache
from ..iface.route import RouteTable
from ..time import Instant
from ..wire.ethernet import HEADER_LEN as ETH_HEADER_LEN, VLAN_HEADER_LEN, EtherType
from ..wire.ipv4 import ANY, BROADCAST, Ipv4Packet, Ipv4Repr
from ..wire.virtio import DATA_VALID, GSO_UDP_L4, HDR as _VH, NEEDS_CSUM
from . import gso, icmp_reflect
from .arp import ArpInput
from .forward import Flow, Ipv4Forward
from .icmp import IcmpProtocol
from .igmp import IgmpProtocol
from .output import GSO_MAX, LOOP_VH, Ipv4Output, OutRoute, _int, _packed
from .reass import Reassembler
from .stats import ICMP_TIMXCEED, ICMP_UNREACH, TIMXCEED_REASS, UNREACH_PROTOCOL, IpStat

_ADDRS = struct.Struct("!4s4s")           # source and destination, at offset 12
_FIELDS = struct.Struct("!HxB2x4s4s")     # from offset 6: flags+offset, protocol, addresses

__all__ = ["GSO_MAX", "LOOP_VH", "Flow", "IpInput", "Ipv4Layer", "LinkStat"]

_ETH_IP = 0x0800
_ETH_ARP = 0x0806
_ETH_IPV6 = 0x86DD
_ETH_VLAN = int(EtherType.VLAN)
ALL_HOSTS = bytes((224, 0, 0, 1))      # RFC 1112 4: every host is a member, always
_CSUM_OK = NEEDS_CSUM | DATA_VALID


@attrs.define
class LinkStat:
    """Ethernet-level drops the IPv4 layer sees (no NetBSD counter exists for these)."""

    badlen: int = 0       # shorter than an Ethernet header
    notforus: int = 0     # unicast to another MAC (promiscuous mode)
    noproto: int = 0      # an EtherType we do not speak (IPv6 on v4 builds, LLC ...)
    vlan: int = 0         # 802.1Q tagged, no vlan interface


class IpInput:
    """What a protocol's ``input`` learns about the datagram besides its payload.

    ``src``/``dst`` are always there; ``ip``, the whole header as an ``Ipv4Repr``, is made
    from ``pkt`` when first asked for: TCP needs only the addresses, and the value costs
    more to build than the rest of IPv4 input (RFC 791 fields; BSD hands tcp_input the
    mbuf, not a parsed header, for the same reason)."""

    __slots__ = ("iface", "_ip", "_pkt", "src", "dst", "broadcast", "link_broadcast",
                 "datagram", "csum_ok")

    def __init__(self, iface: Interface, ip: Ipv4Repr | None, broadcast: bool, link_broadcast: bool,
                 datagram, csum_ok: bool = False, pkt: Ipv4Packet | None = None,
                 src: bytes | None = None, dst: bytes | None = None):
        self.iface = iface
        self._ip = ip                     # the header (src, dst, ttl, tos, ...), or None: from pkt
        self._pkt = pkt
        self.src = ip.src if ip is not None else src
        self.dst = ip.dst if ip is not None else dst
        self.broadcast = broadcast        # sent to a broadcast or multicast address
        self.link_broadcast = link_broadcast
        self.datagram = datagram          # header + payload, for quoting in ICMP errors
        # The transport checksum need not be verified: the link said so (virtio
        # NEEDS_CSUM / DATA_VALID) or the packet never left this host (loopback).
        self.csum_ok = csum_ok

    @property
    def ip(self) -> Ipv4Repr:
        ip = self._ip
        if ip is None:
            ip = self._ip = Ipv4Repr.parse(self._pkt, verify=False)
        return ip



class Ipv4Layer(Ipv4Output, Ipv4Forward, ArpInput):
    def __init__(self, stack):
        self.stack = stack
        self.stats = IpStat()
        self.link_stats = LinkStat()
        sysctl = stack.sysctl
        self._node_forwarding = sysctl.node("net.inet.ip.forwarding")
        self._node_fastforwarding = sysctl.node("net.inet.ip.fastforwarding")
        self._node_ttl = sysctl.node("net.inet.ip.ttl")
        self._node_redirect = sysctl.node("net.inet.ip.redirect")
        maxfrag = sysctl.node("net.inet.ip.maxfragpackets")
        self.routes = RouteTable()
        self.routes.on_change = self._routing_changed
        self.arp = ArpCache(send_request=self._arp_request, deliver=self._arp_deliver,
                            unreachable=self._arp_unreachable, on_change=self._routing_changed,
                            timers_changed=stack.timers_changed)
        self.reass = Reassembler(self.stats, lambda: maxfrag.value)
        self.reass.timers_changed = stack.timers_changed
        self._local: dict[bytes, tuple[Interface, IfAddr]] = {}
        self._bcast: dict[bytes, Interface] = {}
        # Multicast groups we accept, with the number of joins (224.0.0.1 always).
        self.groups: dict[bytes, int] = {ALL_HOSTS: 1}
        self._flows: dict[tuple[int, bytes], Flow] = {}
        # Where local output to each destination goes (output.py OutRoute), and a count of
        # the changes that empty it (an output that saw one meanwhile caches nothing).
        self._out_routes: dict[bytes, OutRoute] = {}
        self._route_epoch = 0
        self._was_up: dict[int, bool] = {}
        # (ifindex, address) announced since the interface last came up: adding an
        # address brings the interface up first, and one announcement is enough.
        self._announced: set[tuple[int, bytes]] = set()
        self._ident = stack.rng.randrange(0x10000)
        # IPv6 input (inet6/ipv6.py) on v6 variants: Ethernet type 0x86dd and version-6
        # packets from loopback go there; None on v4 variants (counted as noproto).
        self.inet6_input = None
        self.icmp = IcmpProtocol(self)
        self.protosw: dict[int, object] = {self.icmp.proto: self.icmp}
        from ..socket.udp import UdpProtocol    # noqa: PLC0415 - socket/ imports this module
        self.udp = UdpProtocol(self)
        self.protosw[self.udp.proto] = self.udp
        from ..socket.raw import RawIcmpProtocol   # noqa: PLC0415 - same reason
        self.raw = RawIcmpProtocol(self)
        # Plain echo requests answered in place (icmp_reflect.py); off only to compare paths.
        self.fast_echo = True
        # IGMP reports for the groups sockets join (igmp.py).
        self.igmp = IgmpProtocol(self)
        self.protosw[self.igmp.proto] = self.igmp
        stack.layers.append(self)
        stack.frame_input = self.frame_input
        stack.loop_input = self.loop_input
        # Interfaces and addresses made before us (lo0 and 127.0.0.1 come first).
        for iface in stack.interfaces.values():
            self._was_up[iface.index] = iface.is_up
            for ifa in iface.inet_addrs():
                self.address_added(iface, ifa)

    def _routing_changed(self) -> None:
        """A route, ARP entry, address or interface changed: the forwarding flows and
        the output route cache are dropped (the next packet looks everything up)."""
        self._route_epoch += 1
        self._out_routes.clear()
        self._flush_flows()

    # -- address facts ----------------------------------------------------------------------

    def is_local(self, addr: bytes) -> bool:
        return addr in self._local

    def interface_of(self, addr: bytes) -> Interface | None:
        """The interface carrying our address ``addr`` (None if it is not ours)."""
        mine = self._local.get(addr)
        return None if mine is None else mine[0]

    def local_addresses(self) -> list[bytes]:
        return list(self._local)

    def is_broadcast_or_multicast(self, addr: bytes) -> bool:
        return addr == BROADCAST or addr == ANY or 224 <= addr[0] < 240 or addr in self._bcast

    def is_unique_host(self, addr: bytes, *, from_outside: bool = True) -> bool:
        """RFC 1122 3.2.1.3 / 3.2.2: may this be the source of a datagram we answer?"""
        first = addr[0]
        if addr == ANY or first >= 224 or addr in self._bcast:
            return False
        return not (first == 127 and from_outside)

    def interface_address(self, iface: Interface | None, toward: bytes | None = None) -> bytes | None:
        """Our address on ``iface``: the one whose subnet holds ``toward``, else the first."""
        if iface is None:
            return None
        addrs = iface.inet_addrs()
        if not addrs:
            return None
        if toward is not None and len(addrs) > 1:
            t = _int(toward)
            for ifa in addrs:
                if t & ifa.netmask_int == int(ifa.address) & ifa.netmask_int:
                    return ifa.address.packed
        return addrs[0].address.packed

    def join_group(self, group) -> bytes:
        """Accept datagrams to a multicast group (IP_ADD_MEMBERSHIP).

        Joins are counted: the group stays until every joiner left; the first join and
        the last leave are reported (igmp.py).
        """
        group = _packed(group)
        if not 224 <= group[0] < 240:
            raise StackError(errno.EINVAL, f"{ipaddress.IPv4Address(group)} is not a multicast group")
        n = self.groups.get(group, 0)
        self.groups[group] = n + 1
        if n == 0:
            self.igmp.joined(group)
        return group

    def leave_group(self, group) -> None:
        group = _packed(group)
        count = self.groups.get(group)
        if count is None:
            raise StackError(errno.EADDRNOTAVAIL, f"not a member of {ipaddress.IPv4Address(group)}")
        if count <= 1 and group != ALL_HOSTS:
            del self.groups[group]
            self.igmp.left(group)
        elif group != ALL_HOSTS:
            self.groups[group] = count - 1

    # -- stack hooks --------------------------------------------------------------------------

    def address_added(self, iface: Interface, ifa: IfAddr) -> None:
        if ifa.address.version != 4:
            return
        addr = ifa.address.packed
        self._local[addr] = (iface, ifa)
        if ifa.broadcast is not None:
            self._bcast[ifa.broadcast.packed] = iface
        self._install_routes(iface, ifa)
        self._routing_changed()
        if iface.kind == IFT_ETHER and iface.is_up:
            self._announce(iface, addr)
            if len(iface.inet_addrs()) == 1:
                self.igmp.interface_up(iface)     # its first address: it can report now

    def address_removed(self, iface: Interface, ifa: IfAddr) -> None:
        if ifa.address.version != 4:
            return
        addr = ifa.address.packed
        if self._local.get(addr, (None, None))[1] is ifa:
            del self._local[addr]
        if ifa.broadcast is not None and self._bcast.get(ifa.broadcast.packed) is iface:
            if not any(a.broadcast == ifa.broadcast for a in iface.inet_addrs() if a is not ifa):
                del self._bcast[ifa.broadcast.packed]
        self._announced.discard((iface.index, addr))
        self.routes.remove_interface_routes(iface, int(ifa.address))
        # Another address in the same subnet (maybe on another interface) may now own
        # the prefix (NetBSD in_scrubprefix re-adds it).
        for other in self.stack.interfaces.values():
            for a in other.inet_addrs():
                if a is not ifa:
                    self._install_routes(other, a)
        self._routing_changed()

    def interface_changed(self, iface: Interface) -> None:
        was_up = self._was_up.get(iface.index, False)
        self._was_up[iface.index] = iface.is_up
        self._routing_changed()
        if not iface.is_up:
            self._announced = {k for k in self._announced if k[0] != iface.index}
            self.igmp.interface_gone(iface)
        elif not was_up and iface.kind == IFT_ETHER:
            for ifa in iface.inet_addrs():
                self._announce(iface, ifa.address.packed)
            self.igmp.interface_up(iface)

    def interface_detached(self, iface: Interface) -> None:
        self._was_up.pop(iface.index, None)
        self._announced = {k for k in self._announced if k[0] != iface.index}
        self.igmp.interface_gone(iface)
        self.routes.remove_interface(iface)
        self.arp.flush(iface, static=True)
        self._routing_changed()

    def _install_routes(self, iface: Interface, ifa: IfAddr) -> None:
        a = int(ifa.address)
        if iface.kind == IFT_LOOP:
            # in_ifinit(): a loopback address gets a host route to itself.
            self.routes.add_interface_route(iface, a, 32, a, host=True)
        elif ifa.dest is not None:
            self.routes.add_interface_route(iface, int(ifa.dest), 32, a, host=True)
        elif ifa.prefixlen < 32:
            self.routes.add_interface_route(iface, a, ifa.prefixlen, a)

    def poll(self, now: Instant) -> None:
        self.arp.poll(now)
        self.igmp.poll(now)
        for expired in self.reass.poll(now):
            # RFC 1122 3.3.2: time exceeded (reassembly) only if fragment zero arrived.
            if expired.first is not None:
                header, in_iface = expired.first
                self.icmp.error(header + expired.data, ICMP_TIMXCEED, TIMXCEED_REASS, now,
                                in_iface=in_iface)

    def poll_at(self) -> Instant | None:
        best = None
        for t in (self.arp.poll_at(), self.reass.poll_at(), self.igmp.poll_at()):
            if t is not None and (best is None or t < best):
                best = t
        return best

    # -- link layer ----------------------------------------------------------------------------

    def frame_input(self, iface: Interface, frame, now: Instant, vh=None) -> None:
        """One frame from a driver; ``vh`` is its virtio_net_hdr when it says anything
        (a checksum left to us or already checked, a super-segment), else None."""
        if iface.kind != IFT_ETHER:
            if frame and frame[0] >> 4 == 6 and self.inet6_input is not None:
                self.inet6_input(iface, frame, now, vh=vh)
                return
            self.process_ipv4(iface, frame, now, False, vh)
            return
        # EthernetPacket.new_checked's checks, read here directly: every frame passes this
        # way (no view object, no property calls; the frame is a driver's memoryview).
        n = len(frame)
        ethertype = frame[12] << 8 | frame[13] if n >= ETH_HEADER_LEN else 0
        if n < ETH_HEADER_LEN or (ethertype == _ETH_VLAN and n < VLAN_HEADER_LEN):
            self.link_stats.badlen += 1
            iface.stats.ierrors += 1
            return
        link_bcast = bool(frame[0] & 1)
        if link_bcast:
            iface.stats.imcasts += 1
        elif frame[:6] != iface.mac:
            # Only a promiscuous interface hands us other hosts' frames; we do not take them.
            self.link_stats.notforus += 1
            return
        if ethertype == _ETH_VLAN:
            # 802.1Q: the vlan (stack/iface/if_vlan.py) with this tag on iface takes it.
            vlan_input = getattr(self.stack, "vlan_input", None)
            if vlan_input is None or not vlan_input(iface, frame, now, vh):
                self.link_stats.vlan += 1
                iface.stats.noproto += 1
            return
        if ethertype == _ETH_IP:
            # The plain echo request (IHL 5, ICMP type 8), unicast to us: answered in place
            # (icmp_reflect.py) unless anything about it needs the general path.
            if (frame[34:35] == b"\x08" and frame[14] == 0x45 and frame[23] == 1 and not link_bcast
                    and vh is None and self.fast_echo and icmp_reflect.reflect(self, iface, frame, now)):
                return
            self.process_ipv4(iface, frame[14:], now, link_bcast, vh)
        elif ethertype == _ETH_ARP:
            self.process_arp(iface, frame[14:], now)
        elif ethertype == _ETH_IPV6 and self.inet6_input is not None:
            self.inet6_input(iface, frame[14:], now, link_bcast, bytes(frame[6:12]), vh)
        else:
            self.link_stats.noproto += 1
            iface.stats.noproto += 1

    def loop_input(self, iface: Interface, packet, now: Instant) -> None:
        # Nothing on lo0 ever left the host: its checksums may be partial (Linux's
        # loopback does the same), so they are not verified. IPv6 packets to our own
        # addresses come back this way too (v6 variants).
        if packet and packet[0] >> 4 == 6 and self.inet6_input is not None:
            self.inet6_input(iface, packet, now, vh=LOOP_VH)
            return
        self.process_ipv4(iface, packet, now, False, LOOP_VH)

    # -- IPv4 input (RFC 791, RFC 1122 3.2.1) ---------------------------------------------------

    def process_ipv4(self, iface: Interface, data, now: Instant, link_bcast: bool, vh=None) -> None:
        st = self.stats
        st.total += 1
        n = len(data)
        if n < 20:
            st.toosmall += 1
            return
        b0 = data[0]
        if b0 >> 4 != 4:
            st.badvers += 1
            return
        hlen = (b0 & 0x0F) << 2
        if hlen < 20 or hlen > n:
            st.badhlen += 1
            return
        # The rest of Ipv4Packet.new_checked's checks, here: the view is then made
        # unchecked (every datagram passes this way).
        total = data[2] << 8 | data[3]
        if total < hlen:
            st.badlen += 1
            return
        if total > n:
            st.tooshort += 1
            return
        mv = data if type(data) is memoryview else memoryview(data)
        if total < n:
            mv = mv[:total]              # Ethernet padding is not part of the datagram
        pkt = Ipv4Packet(mv, hlen)
        # RFC 791 3.1 "Header Checksum": ones_sum(header) == 0xffff written out (checksum.py:
        # a sum that is a non-zero multiple of 0xffff; an all-zero header is no IPv4 one).
        if int.from_bytes(mv[:hlen], "big") % 0xFFFF:
            st.badsum += 1
            return
        if self._flows and not link_bcast and hlen == 20 and vh is None:
            flow = self._flows.get((iface.index, pkt.dst))
            if flow is not None and self._fastforward(flow, pkt):
                return
        # The addresses only: the Ipv4Repr is made where the whole header is wanted.
        src, dst = _ADDRS.unpack_from(data, 12)
        loop = iface.kind == IFT_LOOP
        # RFC 1122 3.2.1.3 and RFC 1812 5.3.7: no datagram comes from a broadcast,
        # multicast or class E source, and 127/8 never arrives from a wire.
        if src[0] >= 224 or src in self._bcast or (not loop and (src[0] == 127 or dst[0] == 127)):
            st.badaddr += 1
            return
        if dst in self._local:
            self._deliver(iface, pkt, None, now, False, link_bcast, vh)
        elif dst == BROADCAST or dst == ANY or self._bcast.get(dst) is iface:
            self._deliver(iface, pkt, None, now, True, link_bcast, vh)
        elif 224 <= dst[0] < 240:
            if dst in self.groups:
                self._deliver(iface, pkt, None, now, True, True, vh)
            else:
                st.cantforward += 1   # no multicast routing; a group we are not in
        elif loop:
            if dst in self._bcast:
                self._deliver(iface, pkt, None, now, True, False, vh)    # our own broadcast, looped
            else:
                st.cantforward += 1
        else:
            self._forward(iface, pkt, Ipv4Repr.parse(pkt, verify=False), now, link_bcast, vh)

    def _deliver(self, iface: Interface, pkt: Ipv4Packet, ip: Ipv4Repr | None, now: Instant,
                 broadcast: bool, link_bcast: bool, vh=None) -> None:
        """``ip`` None: the header is read from ``pkt`` as far as needed (IpInput)."""
        st = self.stats
        csum_ok = False
        datagram = pkt.datagram
        if ip is None:
            flags_off, proto, src, dst = _FIELDS.unpack_from(datagram, 6)
            frag = flags_off & 0x3FFF       # MF or an offset
        else:
            proto, src, dst = ip.protocol, ip.src, ip.dst
            frag = ip.more_frags or ip.frag_offset
        if vh is not None:
            csum_ok = bool(vh[0] & _CSUM_OK)
            if vh[1] == GSO_UDP_L4 and proto == 17 and not frag:
                # A UDP super-datagram (the sender used UDP_SEGMENT): its datagrams are
                # separate messages to the socket, so they are cut apart here.
                self._deliver_udp_gso(iface, pkt, ip or Ipv4Repr.parse(pkt, verify=False), now,
                                      broadcast, link_bcast, vh)
                return
        if frag:
            if ip is None:
                ip = Ipv4Repr.parse(pkt, verify=False)
            st.fragments += 1
            header = bytes(pkt.header)
            done = self.reass.add((ip.src, ip.dst, ip.ident, ip.protocol), (header, iface),
                                  len(header), ip.frag_offset, ip.more_frags, pkt.payload, now)
            if done is None:
                return
            (header, _), payload = done
            ip = attrs.evolve(ip, payload_len=len(payload), more_frags=False, frag_offset=0)
            datagram = header + payload[:8]
            csum_ok = False
        else:
            payload = datagram[(datagram[0] & 0x0F) << 2:]     # pkt.payload
        handler = self.protosw.get(proto)
        if handler is None:
            st.noproto += 1
            if not broadcast:
                self.icmp.error(datagram, ICMP_UNREACH, UNREACH_PROTOCOL, now,
                                link_broadcast=link_bcast, in_iface=iface)
            return
        st.delivered += 1
        if not broadcast and not link_bcast:
            # A protocol that reads only the addresses of a unicast datagram (TCP) takes
            # them as arguments: no IpInput is made for it.
            unicast = getattr(handler, "input_unicast", None)
            if unicast is not None:
                unicast(src, dst, payload, now, csum_ok)
                return
        handler.input(IpInput(iface, ip, broadcast or link_bcast, link_bcast, datagram, csum_ok,
                              pkt, src, dst), payload, now)

    def _deliver_udp_gso(self, iface: Interface, pkt: Ipv4Packet, ip: Ipv4Repr, now: Instant,
                         broadcast: bool, link_bcast: bool, vh) -> None:
        size = _VH.unpack_from(vh, 0)[3]
        if size <= 0:
            self.stats.badlen += 1
            return
        for piece in gso.udp_segment(pkt.datagram, gso.Tx(pkt.header_len, 6, GSO_UDP_L4, size)):
            p = Ipv4Packet(memoryview(piece))
            self._deliver(iface, p, attrs.evolve(ip, payload_len=len(p.payload)), now,
                          broadcast, link_bcast, LOOP_VH)

    def statistics(self) -> dict:
        """Snapshots for ``netstat -s``: ip, icmp, udp, arp."""
        return {
            "ip": self.stats.snapshot(),
            "icmp": self.icmp.stats.snapshot(),
            "udp": self.udp.stats.snapshot(),
            "arp": attrs.asdict(self.arp.stats),
        }
