"""The IPv4 layer: Ethernet demux, ARP, IPv4 input/output, forwarding, the protocol switch.

Theory of operation
-------------------
``Ipv4Layer(stack)`` installs itself: it appends to ``stack.layers`` (address and
interface hooks, ``poll``/``poll_at``) and sets ``stack.frame_input`` (Ethernet frames
from drivers) and ``stack.loop_input`` (raw IP packets coming back from ``lo*``).

Ingress, named by layer as in smoltcp and BSD::

    frame_input -> process_arp                       (RFC 826, answers and learns)
                -> process_ipv4 -> reassembly        (RFC 791 3.2, inet/reass.py)
                                -> protosw[proto].input(ctx, payload, now)
                                -> forward / fast forward (RFC 1812)

Egress: ``output(payload, src, dst, proto, now, ...)`` (ip_output): route, source address
selection, header, fragmentation, then ``_link_output`` which resolves the next hop with
ARP (packets wait in the entry's bounded queue) and hands the frame to
``stack.transmit``. Our own addresses and 127/8 go out through ``lo0`` as bare IP
packets and come back in through ``loop_input`` at the next ``poll``.

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

import attrs

from ..errors import StackError
from ..iface.interface import (
    IFCAP_CSUM_TCPv4_Tx, IFCAP_CSUM_UDPv4_Tx, IFCAP_TSOv4, IFF_NOARP, IFF_UP, IFT_ETHER, IFT_LOOP,
    IfAddr, Interface,
)
from ..iface.neighbor import ArpCache, State
from ..iface.route import RTF_BLACKHOLE, RTF_DYNAMIC, RTF_MODIFIED, RTF_REJECT, Route, RouteTable
from ..slog import INFO, WARNING
from ..time import Instant
from ..wire.arp import ArpRepr
from ..wire.errors import Malformed, Unsupported
from ..wire.ethernet import BROADCAST as ETHER_BROADCAST
from ..wire.ethernet import EthernetPacket, ipv4_multicast_mac, pad_frame
from ..wire.ipv4 import ANY, BROADCAST, Ipv4Packet, Ipv4Repr
from ..wire.virtio import DATA_VALID, GSO_NONE, GSO_TCPV4, GSO_UDP_L4, HDR as _VH, NEEDS_CSUM
from . import gso
from .icmp import IcmpProtocol
from .igmp import IgmpProtocol
from .reass import Reassembler
from .stats import (
    ICMP_REDIRECT, ICMP_TIMXCEED, ICMP_UNREACH, TIMXCEED_INTRANS, TIMXCEED_REASS, UNREACH_HOST,
    UNREACH_NEEDFRAG, UNREACH_PROTOCOL, IpStat,
)

ETHERTYPE_IP = b"\x08\x00"
ETHERTYPE_ARP_B = b"\x08\x06"
_ETH_IP = 0x0800
_ETH_ARP = 0x0806
_ETH_IPV6 = 0x86DD
ALL_HOSTS = bytes((224, 0, 0, 1))      # RFC 1112 4: every host is a member, always
LOOPBACK = bytes((127, 0, 0, 1))
MAX_FLOWS = 1024                        # NetBSD ip_maxflows is 256; memory is cheaper here
_CSUM_OK = NEEDS_CSUM | DATA_VALID
# The virtio header loopback and software-cut packets are given: checksums trusted.
LOOP_VH = _VH.pack(DATA_VALID, GSO_NONE, 0, 0, 0, 0)
_PLAIN_VH = bytes(_VH.size)
# Per GSO type: the capability a link needs to take such super-segments whole, and the
# one it needs to finish their checksums (NetBSD IFCAP_* names what the device does).
_GSO_CAP = {GSO_TCPV4: IFCAP_TSOv4, GSO_UDP_L4: IFCAP_TSOv4}
_CSUM_CAP = {16: IFCAP_CSUM_TCPv4_Tx, 6: IFCAP_CSUM_UDPv4_Tx}
# The largest IPv4 packet one super-segment may be (the total length field's limit).
GSO_MAX = 65535


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


@attrs.define
class LinkStat:
    """Ethernet-level drops the IPv4 layer sees (no NetBSD counter exists for these)."""

    badlen: int = 0       # shorter than an Ethernet header
    notforus: int = 0     # unicast to another MAC (promiscuous mode)
    noproto: int = 0      # an EtherType we do not speak (IPv6 on v4 builds, LLC ...)
    vlan: int = 0         # 802.1Q tagged, no vlan interface


class IpInput:
    """What a protocol's ``input`` learns about the datagram besides its payload."""

    __slots__ = ("iface", "ip", "broadcast", "link_broadcast", "datagram", "csum_ok")

    def __init__(self, iface: Interface, ip: Ipv4Repr, broadcast: bool, link_broadcast: bool, datagram,
                 csum_ok: bool = False):
        self.iface = iface
        self.ip = ip                      # the header (src, dst, ttl, tos, ...)
        self.broadcast = broadcast        # sent to a broadcast or multicast address
        self.link_broadcast = link_broadcast
        self.datagram = datagram          # header + payload, for quoting in ICMP errors
        # The transport checksum need not be verified: the link said so (virtio
        # NEEDS_CSUM / DATA_VALID) or the packet never left this host (loopback).
        self.csum_ok = csum_ok


@attrs.define(eq=False)
class Flow:
    """A fast-forwarding flow (NetBSD ip_flow.c): where a destination goes, link header ready."""

    iface: Interface
    head: bytes           # Ethernet header: next hop MAC, our MAC, 0x0800
    mtu: int
    route: Route
    uses: int = 0


class Ipv4Layer:
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
        self.routes.on_change = self._flush_flows
        self.arp = ArpCache(send_request=self._arp_request, deliver=self._arp_deliver,
                            unreachable=self._arp_unreachable, on_change=self._flush_flows)
        self.reass = Reassembler(self.stats, lambda: maxfrag.value)
        self._local: dict[bytes, tuple[Interface, IfAddr]] = {}
        self._bcast: dict[bytes, Interface] = {}
        # Multicast groups we accept, with the number of joins (224.0.0.1 always).
        self.groups: dict[bytes, int] = {ALL_HOSTS: 1}
        self._flows: dict[tuple[int, bytes], Flow] = {}
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
        self._flush_flows()
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
        self._flush_flows()

    def interface_changed(self, iface: Interface) -> None:
        was_up = self._was_up.get(iface.index, False)
        self._was_up[iface.index] = iface.is_up
        self._flush_flows()
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
        self._flush_flows()

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
        times = [t for t in (self.arp.poll_at(), self.reass.poll_at(), self.igmp.poll_at()) if t is not None]
        return min(times, default=None)

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
        try:
            eth = EthernetPacket.new_checked(frame)
        except Malformed:
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
        if eth.header_len != 14:
            # 802.1Q: the vlan (stack/iface/if_vlan.py) with this tag on iface takes it.
            vlan_input = getattr(self.stack, "vlan_input", None)
            if vlan_input is None or not vlan_input(iface, frame, now, vh):
                self.link_stats.vlan += 1
                iface.stats.noproto += 1
            return
        ethertype = eth.ethertype
        if ethertype == _ETH_IP:
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

    def _link_output(self, iface: Interface, nexthop: bytes, packet: bytes, now: Instant,
                     link_bcast: bool = False, tx: gso.Tx | None = None) -> None:
        kind = iface.kind
        if kind != IFT_ETHER or iface.mac is None:
            # lo0 carries partial checksums and whole super-segments as they are (its
            # input trusts them); a tun gets them finished.
            if tx is None or kind == IFT_LOOP:
                self.stack.transmit(iface, packet)
            else:
                for p in gso.finalize(packet, tx, iface.mtu):
                    self.stack.transmit(iface, p)
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
        head = mac + iface.mac + ETHERTYPE_IP
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

    # -- ARP (RFC 826) ---------------------------------------------------------------------------

    def process_arp(self, iface: Interface, data, now: Instant) -> None:
        st = self.arp.stats
        st.rcvtotal += 1
        if iface.flags & IFF_NOARP:
            return
        try:
            arp = ArpRepr.parse(data)
        except Unsupported:
            st.rcvbadproto += 1
            return
        except Malformed:
            st.rcvbadlen += 1
            return
        sha, spa, tpa = arp.sender_hw, arp.sender_ip, arp.target_ip
        if sha == iface.mac:
            st.rcvlocalsha += 1           # our own broadcast, looped by a bridge
            return
        if sha[0] & 1:
            st.rcvbcastsha += 1           # no host has a group address
            return
        if tpa == ANY:
            st.rcvzerotpa += 1
            return
        if arp.is_request:
            st.rcvrequest += 1
        else:
            st.rcvreply += 1
        mine = self._local.get(tpa)
        ours = mine is not None and mine[0] is iface
        spa_mine = self._local.get(spa)
        if spa_mine is not None and spa_mine[0] is iface:
            # Someone else claims our address (RFC 5227 2.4): never learn it, say so.
            st.rcvlocalspa += 1
            self.stack.log(WARNING, f"arp: {ipaddress.IPv4Address(spa)} is claimed by "
                                    f"{':'.join(f'{b:02x}' for b in sha)} on {iface.name}")
            return
        if spa[0] >= 224 or spa in self._bcast:
            st.rcvbcastspa += 1           # in_arpinput(): "is broadcast", never learned
            return
        if spa == ANY:
            st.rcvzerospa += 1            # an RFC 5227 probe: answer it, learn nothing
        else:
            # RFC 826 "merge": refresh what we know; add an entry if it was aimed at us.
            self.arp.learn(iface, _int(spa), sha, now, create=ours)
        if arp.is_request and ours:
            reply = arp.reply(iface.mac).to_bytes()
            st.sndreply += 1
            st.sndtotal += 1
            self.stack.transmit(iface, pad_frame(sha + iface.mac + ETHERTYPE_ARP_B + reply))

    def _arp_request(self, iface: Interface, target: int, hint_mac: bytes | None) -> None:
        tpa = target.to_bytes(4, "big")
        spa = self.interface_address(iface, tpa)
        if spa is None or iface.mac is None:
            return
        request = ArpRepr.request(iface.mac, spa, tpa).to_bytes()
        # RFC 1122 2.3.2.1: re-validate a stale entry with a unicast poll first.
        dst = hint_mac or ETHER_BROADCAST
        self.stack.transmit(iface, pad_frame(dst + iface.mac + ETHERTYPE_ARP_B + request))

    def _announce(self, iface: Interface, addr: bytes) -> None:
        """Gratuitous ARP (RFC 5227 2.3): tell the segment that ``addr`` is here now."""
        if iface.mac is None or iface.flags & IFF_NOARP or (iface.index, addr) in self._announced:
            return
        self._announced.add((iface.index, addr))
        st = self.arp.stats
        st.sndrequest += 1
        st.sndtotal += 1
        announcement = ArpRepr.gratuitous(iface.mac, addr).to_bytes()
        self.stack.transmit(iface, pad_frame(ETHER_BROADCAST + iface.mac + ETHERTYPE_ARP_B + announcement))
        self.stack.log(INFO, f"{iface.name}: announced {ipaddress.IPv4Address(addr)}")

    def _arp_deliver(self, iface: Interface, mac: bytes, packets: list) -> None:
        head = mac + iface.mac + ETHERTYPE_IP
        for packet in packets:
            frame = head + packet
            self.stack.transmit(iface, pad_frame(frame) if len(frame) < 60 else frame)

    def _arp_unreachable(self, iface: Interface, target: int, packets: list, now: Instant) -> None:
        # RFC 1122 2.3.2.2 / Linux: the waiting datagrams are answered with host
        # unreachable, which reaches a local sender's socket as EHOSTUNREACH.
        for packet in packets:
            self.stats.odropped += 1
            self.icmp.error(packet, ICMP_UNREACH, UNREACH_HOST, now)

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
        try:
            pkt = Ipv4Packet.new_checked(data)
        except Malformed:
            if (data[2] << 8 | data[3]) < hlen:
                st.badlen += 1
            else:
                st.tooshort += 1
            return
        if not pkt.verify_checksum():
            st.badsum += 1
            return
        if self._flows and not link_bcast and hlen == 20 and vh is None:
            flow = self._flows.get((iface.index, pkt.dst))
            if flow is not None and self._fastforward(flow, pkt):
                return
        ip = Ipv4Repr.parse(pkt, verify=False)
        src = ip.src
        dst = ip.dst
        loop = iface.kind == IFT_LOOP
        # RFC 1122 3.2.1.3 and RFC 1812 5.3.7: no datagram comes from a broadcast,
        # multicast or class E source, and 127/8 never arrives from a wire.
        if src[0] >= 224 or src in self._bcast or (not loop and (src[0] == 127 or dst[0] == 127)):
            st.badaddr += 1
            return
        if dst in self._local:
            self._deliver(iface, pkt, ip, now, False, link_bcast, vh)
        elif dst == BROADCAST or dst == ANY or self._bcast.get(dst) is iface:
            self._deliver(iface, pkt, ip, now, True, link_bcast, vh)
        elif 224 <= dst[0] < 240:
            if dst in self.groups:
                self._deliver(iface, pkt, ip, now, True, True, vh)
            else:
                st.cantforward += 1   # no multicast routing; a group we are not in
        elif loop:
            if dst in self._bcast:
                self._deliver(iface, pkt, ip, now, True, False, vh)    # our own broadcast, looped
            else:
                st.cantforward += 1
        else:
            self._forward(iface, pkt, ip, now, link_bcast, vh)

    def _deliver(self, iface: Interface, pkt: Ipv4Packet, ip: Ipv4Repr, now: Instant,
                 broadcast: bool, link_bcast: bool, vh=None) -> None:
        st = self.stats
        csum_ok = False
        if vh is not None:
            csum_ok = bool(vh[0] & _CSUM_OK)
            if vh[1] == GSO_UDP_L4 and ip.protocol == 17 and not (ip.more_frags or ip.frag_offset):
                # A UDP super-datagram (the sender used UDP_SEGMENT): its datagrams are
                # separate messages to the socket, so they are cut apart here.
                self._deliver_udp_gso(iface, pkt, ip, now, broadcast, link_bcast, vh)
                return
        if ip.more_frags or ip.frag_offset:
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
            payload = pkt.payload
            datagram = pkt.datagram
        handler = self.protosw.get(ip.protocol)
        if handler is None:
            st.noproto += 1
            if not broadcast:
                self.icmp.error(datagram, ICMP_UNREACH, UNREACH_PROTOCOL, now,
                                link_broadcast=link_bcast, in_iface=iface)
            return
        st.delivered += 1
        handler.input(IpInput(iface, ip, broadcast or link_bcast, link_bcast, datagram, csum_ok),
                      payload, now)

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

    # -- forwarding (RFC 1812) ---------------------------------------------------------------------

    def _flush_flows(self) -> None:
        if self._flows:
            for flow in self._flows.values():
                flow.route.refs -= 1
            self._flows.clear()

    @property
    def flows(self) -> dict:
        return self._flows

    def _usable(self, route: Route) -> bool:
        """A route's interface is up and its gateway not known dead (multi-gateway choice)."""
        iface = route.iface
        if not iface.flags & IFF_UP:
            return False
        gw = route.gateway
        return gw is None or not self.arp.is_down(iface, gw)

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
        tx = self._rx_offload(vh, pkt.header_len) if vh is not None else None
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
    def _rx_offload(vh, l4: int) -> gso.Tx | None:
        """The work a received frame's virtio header leaves for whoever sends it on."""
        flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = _VH.unpack_from(vh, 0)
        gso_type &= 0x7F      # GSO_ECN is a modifier
        if gso_type not in _GSO_CAP:
            gso_type, gso_size = GSO_NONE, 0
        if flags & NEEDS_CSUM:
            return gso.Tx(csum_start - 14, csum_offset, gso_type, gso_size)
        if gso_type != GSO_NONE:
            return gso.Tx(l4, None, gso_type, gso_size)
        return None

    @staticmethod
    def _on_link(iface: Interface, addr: bytes) -> bool:
        a = _int(addr)
        return any(a & ifa.netmask_int == int(ifa.address) & ifa.netmask_int for ifa in iface.inet_addrs())

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
        st = self.stats
        dst = _packed(dst)
        if iface is not None:
            nexthop, route = dst, None
        else:
            iface, nexthop, route = self.route_to(dst)
            if route is not None:
                route.use += 1
                if route.flags & RTF_BLACKHOLE:
                    return
        if src is None:
            if dst in self._local:
                src = dst
            elif dst[0] == 127:
                src = LOOPBACK
            elif route is not None and route.ifa_address is not None:
                src = route.ifa_address.to_bytes(4, "big")
            else:
                src = self.interface_address(iface, nexthop)
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
        header = Ipv4Repr(src, dst, proto, len(payload), ttl, tos, self.next_ident(), df).header_bytes()
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

    # -- route(8) and arp(8) -------------------------------------------------------------------

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

    def arp_add(self, address, mac: bytes | str, *, iface=None):
        """``arp -s``: the interface is the one whose subnet holds ``address`` by default."""
        if isinstance(mac, str):
            try:
                mac = bytes(int(p, 16) for p in mac.replace("-", ":").split(":"))
            except ValueError:
                raise StackError(errno.EINVAL, f"bad Ethernet address {mac!r}") from None
        addr = _packed(address)
        target = self._iface_arg(iface)
        if target is None:
            route = self.routes.lookup(_int(addr), self._usable)
            if route is None or route.gateway is not None or route.iface.kind != IFT_ETHER:
                raise StackError(errno.ENETUNREACH, f"{ipaddress.IPv4Address(addr)}: no directly connected network")
            target = route.iface
        return self.arp.add_static(target, addr, mac)

    def arp_delete(self, address, *, iface=None):
        return self.arp.delete(_packed(address), self._iface_arg(iface))

    def arp_flush(self, *, iface=None) -> int:
        return self.arp.flush(self._iface_arg(iface))

    def arp_show(self) -> list[dict]:
        return self.arp.show()

    def statistics(self) -> dict:
        """Snapshots for ``netstat -s``: ip, icmp, udp, arp."""
        return {
            "ip": self.stats.snapshot(),
            "icmp": self.icmp.stats.snapshot(),
            "udp": self.udp.stats.snapshot(),
            "arp": attrs.asdict(self.arp.stats),
        }


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
