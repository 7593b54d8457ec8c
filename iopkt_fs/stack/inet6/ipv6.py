"""The IPv6 layer (io-pkt-v6-hc): input with the extension-header walk, output, addresses.

Theory of operation
-------------------
``Ipv6Layer(stack)`` is made only on v6 variants. It joins ``stack.layers`` and sets
``stack.inet.inet6_input``: the IPv4 layer's Ethernet demux hands it EtherType 0x86dd,
and its loopback input hands it packets whose version nibble is 6. (On v4 variants that
hook stays None and IPv6 frames are counted as unknown protocol.)

Ingress (RFC 8200)::

    input6 -> checks (version, length, scope: no multicast source, ::1 only on lo0,
              no IPv4-mapped addresses) -> ours / a group we are in / else forward6.py
              (forwarding on: hop limit, Time Exceeded, Packet Too Big, redirects)
           -> _walk: hop-by-hop (first only, 4.3), destination options (4.6), routing
              (4.4: every type is unknown to a host, RH0 included, RFC 5095), fragment
              (4.5, frag6.py; atomic fragments alone, RFC 6946), at most
              net.inet6.ip6.hdrnestlimit headers
           -> protosw[next header].input(ctx, payload, now): 58 ICMPv6 (icmp6.py, ND in
              ndisc.py), 6 TCP, 17 UDP (the same UDP protocol as IPv4's)

Egress (output, routes, zones, path MTU, source fragmentation) is output6.py's
``Ipv6Output``, which this class extends. The layer also owns router discovery and SLAAC
(``rtr``, nd6_rtr.py), redirects (``redirect``, redirect6.py), the MLD listener (``mld``,
mld6.py) and forwarding (``forwarder``, forward6.py); its stack hooks and ``poll`` drive
them, and ``join_group``/``leave_group`` tell MLD of memberships.

Addresses: every address added is recorded with its ``IfAddr.flags6`` (IN6_IFF_*,
ndisc.py). On an Ethernet interface it goes through DAD (tentative until done) and its
solicited-node group is joined. An Ethernet interface coming up gets its EUI-64
link-local address (RFC 4862 5.3, RFC 4291 2.5.1). lo0 has ::1 and fe80::1 from the
start. Source selection is RFC 6724's (addrsel.py).

Rules as in the IPv4 layer: bad input is a counted drop (``ip6stat``), user errors are
``StackError``, time arrives as ``now``; hooks without a ``now`` schedule work for the
next ``poll`` (DAD starts there).
"""

import ipaddress

import attrs

from ..iface.interface import IFF_MULTICAST, IFT_ETHER, IFT_LOOP, IfAddr, Interface
from ..iface.route import RouteTable
from ..inet import gso
from ..time import Instant
from ..wire.errors import Malformed
from ..wire.icmpv6 import (
    PARAMPROB_HEADER, PARAMPROB_NEXTHEADER, PARAMPROB_OPTION, TIMXCEED_REASS, Icmpv6Type as T,
)
from ..wire.ipv6 import (
    ALL_NODES, ALL_ROUTERS, HEADER_LEN, LOOPBACK, NH_DSTOPTS, NH_FRAGMENT, NH_HOPOPTS, NH_NONE,
    NH_ROUTING, OPT_PAD1, OPT_PADN, OPT_ROUTER_ALERT, UNSPECIFIED, Ipv6FragmentRepr, Ipv6Packet,
    Ipv6Repr, eui64_link_local, ext_header_len, is_link_local, is_multicast, iter_options,
    solicited_node,
)
from ..wire.virtio import GSO_TCPV6, GSO_UDP_L4, HDR as _VH
from .forward6 import Forwarder6
from .frag6 import Reassembler6
from .icmp6 import Icmp6Protocol
from .ifconf import IfConf
from .mld6 import MldListener
from .nd6 import NdCache
from .nd6_rtr import RouterDiscovery
from .ndisc import IN6_IFF_ANYCAST, IN6_IFF_DUPLICATED, IN6_IFF_TENTATIVE, Ndisc
from .output6 import Ipv6Output
from .redirect6 import Redirects
from .stats import Ip6Stat
from .tunables import SYSCTLS

ALL_NODES_IF = bytes.fromhex("ff010000000000000000000000000001")
_V4MAPPED = bytes(10) + b"\xff\xff"
_KNOWN_OPTIONS = frozenset((OPT_PAD1, OPT_PADN, OPT_ROUTER_ALERT))

class Ip6Input:
    """What a protocol's ``input`` learns about the packet besides its payload."""

    __slots__ = ("iface", "ip", "broadcast", "link_broadcast", "datagram", "csum_ok", "fragmented", "link_src")

    def __init__(self, iface, ip, broadcast, link_broadcast, datagram, csum_ok, fragmented, link_src):
        self.iface = iface
        self.ip = ip                        # Ipv6Repr of the fixed header
        self.broadcast = broadcast          # to a multicast address
        self.link_broadcast = link_broadcast
        self.datagram = datagram            # the whole packet, for ICMPv6 errors
        self.csum_ok = csum_ok              # looped back: checksums not verified
        self.fragmented = fragmented        # arrived with a Fragment header (RFC 6980)
        self.link_src = link_src            # the Ethernet source (looped-back ND)


class Ipv6Layer(Ipv6Output):
    def __init__(self, stack):
        self.stack = stack
        self.stats = Ip6Stat()
        sysctl = stack.sysctl
        for name, default, text, lo, hi in SYSCTLS:
            if name not in sysctl:
                sysctl.add(name, default, text, minimum=lo, maximum=hi)
        self._node_hlim = sysctl.node("net.inet6.ip6.hlim")
        self._node_mhlim = sysctl.node("net.inet6.ip6.defmcasthlim")
        self._node_nest = sysctl.node("net.inet6.ip6.hdrnestlimit")
        self._node_flow = sysctl.node("net.inet6.ip6.auto_flowlabel")
        self._node_forwarding = sysctl.node("net.inet6.ip6.forwarding")
        maxpkts = sysctl.node("net.inet6.ip6.maxfragpackets")
        maxfrags = sysctl.node("net.inet6.ip6.maxfrags")
        queuelen = sysctl.node("net.inet6.icmp6.maxqueuelen")
        self.routes = RouteTable(bits=128)
        self.reass = Reassembler6(self.stats, lambda: maxpkts.value, lambda: maxfrags.value)
        self.reass.timers_changed = stack.timers_changed
        self.icmp = Icmp6Protocol(self)
        self.ndisc = Ndisc(self)
        self.icmp.ndisc = self.ndisc
        self.nd = NdCache(solicit=self.ndisc.solicit, deliver=self._nd_deliver, unreachable=self._nd_unreachable,
                          hold_limit=lambda: queuelen.value, rng=stack.rng,
                          timers_changed=stack.timers_changed,
                          retrans=lambda iface: self.rtr.retrans_timer(iface),
                          nud=lambda iface: self.rtr.performs_nud(iface))
        self.rtr = RouterDiscovery(self)
        self.ifconf = IfConf(stack, self.rtr.policy_changed)
        self.forwarder = Forwarder6(self)
        self.redirect = Redirects(self)
        self.mld = MldListener(self)
        self.icmp.mld = self.mld
        self._local: dict[bytes, tuple[Interface, IfAddr]] = {}
        self.groups: dict[tuple[int, bytes], int] = {}
        self.pmtu: dict[bytes, tuple[int, Instant]] = {}
        self._was_up: dict[int, bool] = {}
        self._flow_key = stack.rng.randbytes(16)
        self.protosw: dict[int, object] = {self.icmp.proto: self.icmp}
        stack.layers.append(self)
        stack.inet.inet6_input = self.input6
        for iface in stack.interfaces.values():
            self._was_up[iface.index] = iface.is_up
            self.ifconf.add(iface)
            for ifa in iface.inet6_addrs():
                self.address_added(iface, ifa)

    # -- address facts ----------------------------------------------------------------------

    def is_local(self, addr: bytes) -> bool:
        return addr in self._local

    def is_usable_local(self, addr: bytes) -> bool:
        mine = self._local.get(addr)
        return mine is not None and not mine[1].flags6 & (IN6_IFF_TENTATIVE | IN6_IFF_DUPLICATED | IN6_IFF_ANYCAST)

    def is_tentative(self, addr: bytes) -> bool:
        mine = self._local.get(addr)
        return mine is not None and bool(mine[1].flags6 & (IN6_IFF_TENTATIVE | IN6_IFF_DUPLICATED))

    def local_on(self, iface: Interface, addr: bytes) -> IfAddr | None:
        mine = self._local.get(addr)
        return mine[1] if mine is not None and mine[0] is iface else None

    def interface_of(self, addr: bytes) -> Interface | None:
        mine = self._local.get(addr)
        return None if mine is None else mine[0]

    def local_addresses(self) -> list[bytes]:
        return [a for a in self._local if self.is_usable_local(a)]

    def is_broadcast_or_multicast(self, addr: bytes) -> bool:
        return is_multicast(addr) or addr == UNSPECIFIED

    def is_unique_host(self, addr: bytes, in_iface=None) -> bool:
        if addr == UNSPECIFIED or is_multicast(addr):
            return False
        return not (addr == LOOPBACK and in_iface is not None and not in_iface.is_loopback)

    @staticmethod
    def needs_zone(addr: bytes) -> bool:
        return is_link_local(addr) or (is_multicast(addr) and addr[1] & 0x0F <= 2)

    def join_group(self, iface: Interface, group: bytes) -> None:
        """Listen to ``group`` on ``iface`` (counted); the first join is reported (mld6.py)."""
        key = (iface.index, group)
        n = self.groups.get(key, 0)
        self.groups[key] = n + 1
        if n == 0:
            self.mld.joined(iface, group)

    def leave_group(self, iface: Interface, group: bytes) -> None:
        key = (iface.index, group)
        n = self.groups.get(key, 0)
        if n <= 1:
            if self.groups.pop(key, None) is not None:
                self.mld.left(iface, group)
        else:
            self.groups[key] = n - 1

    # -- stack hooks --------------------------------------------------------------------------

    def address_added(self, iface: Interface, ifa: IfAddr) -> None:
        if ifa.address.version != 6:
            return
        addr = ifa.address.packed
        self._local[addr] = (iface, ifa)
        self.join_group(iface, solicited_node(addr))
        a = int(ifa.address)
        if iface.kind == IFT_LOOP:
            self.routes.add_interface_route(iface, a, 128, a, host=True)
        elif ifa.dest is not None:
            # A point-to-point peer (tun, gif): a host route to it, as IPv4's in_ifinit.
            self.routes.add_interface_route(iface, int(ifa.dest), 128, a, host=True)
        elif ifa.prefixlen < 128 and not is_link_local(addr):
            self.routes.add_interface_route(iface, a, ifa.prefixlen, a)
        if iface.kind == IFT_ETHER and not ifa.flags6 & IN6_IFF_ANYCAST:
            ifa.flags6 |= IN6_IFF_TENTATIVE
            if iface.is_up:
                self.ndisc.start_dad(iface, ifa)

    def address_removed(self, iface: Interface, ifa: IfAddr) -> None:
        if ifa.address.version != 6:
            return
        addr = ifa.address.packed
        if self._local.get(addr, (None, None))[1] is ifa:
            del self._local[addr]
        self.leave_group(iface, solicited_node(addr))
        self.ndisc.cancel_dad(iface, ifa)
        self.rtr.address_removed(iface, ifa)
        self.routes.remove_interface_routes(iface, int(ifa.address))
        for other in self.stack.interfaces.values():
            for b in other.inet6_addrs():
                if b is not ifa and b.prefixlen < 128 and other.kind != IFT_LOOP and not is_link_local(b.address.packed):
                    self.routes.add_interface_route(other, int(b.address), b.prefixlen, int(b.address))

    def interface_changed(self, iface: Interface) -> None:
        if iface.index not in self._was_up:
            self.ifconf.add(iface)             # a new interface (attach)
        was_up = self._was_up.get(iface.index, False)
        self._was_up[iface.index] = iface.is_up
        self.rtr.interface_changed(iface, iface.is_up and not was_up)
        if not iface.is_up:
            if was_up:
                self.ndisc.cancel_dad(iface)
                self.nd.flush(iface)
                self.mld.interface_gone(iface)
            return
        if not was_up:
            self.mld.interface_up(iface)
        if was_up or iface.kind != IFT_ETHER or iface.mac is None:
            return
        # RFC 4862 5.3 / KAME in6_ifattach: a multicast-capable interface coming up gets
        # its link-local address; every address on it goes through DAD again (5.4).
        for ifa in iface.inet6_addrs():
            if not ifa.flags6 & IN6_IFF_ANYCAST:
                ifa.flags6 |= IN6_IFF_TENTATIVE
                self.ndisc.start_dad(iface, ifa)
        if iface.flags & IFF_MULTICAST and not any(is_link_local(a.address.packed) for a in iface.inet6_addrs()):
            self.stack.add_address(iface, ipaddress.IPv6Address(eui64_link_local(iface.mac)), 64)

    def interface_detached(self, iface: Interface) -> None:
        self._was_up.pop(iface.index, None)
        self.ndisc.cancel_dad(iface)
        self.rtr.interface_detached(iface)
        self.ifconf.remove(iface)
        self.redirect.interface_detached(iface)
        self.mld.interface_gone(iface)
        self.routes.remove_interface(iface)
        self.nd.flush(iface, static=True)
        self.groups = {k: v for k, v in self.groups.items() if k[0] != iface.index}

    def address_usable(self, iface: Interface, ifa: IfAddr) -> None:
        """DAD passed (ndisc.py): a link-local address lets Router Solicitations go."""
        self.rtr.address_usable(iface, ifa)

    def poll(self, now: Instant) -> None:
        self._now = now
        self.nd.poll(now)
        self.ndisc.poll(now)
        self.rtr.poll(now)
        self.redirect.poll(now)
        self.mld.poll(now)
        for expired in self.reass.poll(now):
            if expired.first is not None:
                # RFC 8200 4.5: Time Exceeded code 1, only if the first fragment came.
                _unfrag, packet, iface = expired.first
                self.icmp.error(packet, T.TIME_EXCEEDED, TIMXCEED_REASS, now, in_iface=iface)

    def poll_at(self) -> Instant | None:
        return _earliest(self.nd.poll_at(), self.ndisc.poll_at(), self.rtr.poll_at(),
                         self.redirect.poll_at(), self.mld.poll_at(), self.reass.poll_at())

    # -- input (RFC 8200) ---------------------------------------------------------------------

    def input6(self, iface: Interface, data, now: Instant, link_mcast: bool = False,
               link_src: bytes | None = None, vh=None) -> None:
        """``vh``: the frame's virtio_net_hdr when it says anything; NEEDS_CSUM or
        DATA_VALID makes the transport checksum trusted, as on IPv4. A GSO_TCPV6
        super-frame is one TCP segment of up to 64 KB (``igso``); a GSO_UDP_L4 one (the
        sender used UDP_SEGMENT) is cut into its datagrams first, as they are separate
        messages to the socket (Linux udp_rcv_segment)."""
        st = self.stats
        st.total += 1
        self._now = now
        if iface.inet6_disabled:
            st.ifdisabled += 1     # NetBSD ip6_input: IPv6 operation disabled here
            return
        try:
            pkt = Ipv6Packet.new_checked(data)
        except Malformed:
            if len(data) < HEADER_LEN:
                st.toosmall += 1
            elif data[0] >> 4 != 6:
                st.badvers += 1
            else:
                st.tooshort += 1
            return
        buf = pkt.datagram
        src = bytes(buf[8:24])
        dst = bytes(buf[24:40])
        loop = iface.kind == IFT_LOOP
        # RFC 4291 2.5.3 / 2.7, QSRC ip6_input.c: no multicast source, ::1 never from a
        # wire, no unspecified destination, no IPv4-mapped address on the wire.
        if (src[0] == 0xFF or dst == UNSPECIFIED or src[:12] == _V4MAPPED or dst[:12] == _V4MAPPED
                or (not loop and (src == LOOPBACK or dst == LOOPBACK))):
            st.badscope += 1
            return
        mine = self._local.get(dst)
        multicast = dst[0] == 0xFF
        if mine is not None:
            tentative = bool(mine[1].flags6 & (IN6_IFF_TENTATIVE | IN6_IFF_DUPLICATED))
        elif multicast:
            if dst[1] & 0x0F == 1 and not loop:
                st.badscope += 1             # interface-local scope never arrives from a link
                return
            if (dst != ALL_NODES and dst != ALL_NODES_IF and (iface.index, dst) not in self.groups
                    and not (dst == ALL_ROUTERS and self.rtr.forwarding(iface))):
                st.notmember += 1
                return
            tentative = False
        else:
            self.forwarder.forward(iface, pkt, now, link_mcast, vh)    # forward6.py; a host drops it
            return
        trusted = loop
        if vh is not None:
            trusted = trusted or bool(vh[0] & 3)
            gso_type = vh[1] & 0x7F
            if gso_type == GSO_UDP_L4 and buf[6] == 17:
                self._udp_gso(iface, pkt, vh, now, multicast, link_mcast, link_src, tentative)
                return
            if gso_type == GSO_TCPV6:
                st.igso += 1
        self._walk(iface, pkt, now, multicast, link_mcast, link_src, trusted, tentative, False)

    def _udp_gso(self, iface, pkt, vh, now, multicast, link_mcast, link_src, tentative) -> None:
        size = _VH.unpack_from(vh, 0)[3]
        buf = pkt.datagram
        if size <= 0 or len(buf) < HEADER_LEN + 8:
            self.stats.tooshort += 1
            return
        self.stats.igso += 1
        for piece in gso.segment6(buf, HEADER_LEN, GSO_UDP_L4, size):
            # The pieces' checksums were just computed here: trusted.
            self._walk(iface, Ipv6Packet(memoryview(piece)), now, multicast, link_mcast, link_src,
                       True, tentative, False)

    def _walk(self, iface, pkt: Ipv6Packet, now, multicast, link_mcast, link_src, loop, tentative,
              fragmented) -> None:
        st = self.stats
        buf = pkt.datagram
        nh = buf[6]
        off = HEADER_LEN
        nh_ptr = 6                           # where the Next Header naming ``nh`` sits
        limit = self._node_nest.value
        count = 0
        while True:
            if nh == NH_HOPOPTS and off != HEADER_LEN:
                # RFC 8200 4.1: hop-by-hop only right after the IPv6 header.
                self._param(buf, PARAMPROB_NEXTHEADER, nh_ptr, iface, now, link_mcast)
                return
            if nh == NH_HOPOPTS or nh == NH_DSTOPTS:
                try:
                    length = ext_header_len(nh, buf[off:])
                    verdict = self._options(buf, off, length, multicast, iface, now, link_mcast)
                except Malformed:
                    st.badoptions += 1
                    return
                if not verdict:
                    return
            elif nh == NH_ROUTING:
                try:
                    length = ext_header_len(nh, buf[off:])
                except Malformed:
                    st.tooshort += 1
                    return
                if buf[off + 3]:
                    # RFC 8200 4.4 / RFC 5095 3: no routing type is known to a host (type 0
                    # included); Segments Left != 0 -> Parameter Problem at Routing Type.
                    st.badoptions += 1
                    self._param(buf, PARAMPROB_HEADER, off + 2, iface, now, link_mcast)
                    return
            elif nh == NH_FRAGMENT:
                if len(buf) < off + 8:
                    st.tooshort += 1
                    return
                frag = Ipv6FragmentRepr.parse(buf[off:off + 8])
                if frag.is_atomic:
                    st.atomicfrags += 1      # RFC 6946 4: processed in isolation
                    fragmented = True
                    length = 8
                else:
                    self._fragment(iface, pkt, off, nh_ptr, frag, now, multicast, link_mcast, link_src,
                                   loop, tentative)
                    return
            elif nh == NH_NONE:
                return                       # RFC 8200 4.7: nothing follows
            else:
                break
            count += 1
            if count > limit:
                st.toomanyhdr += 1
                return
            nh_ptr = off
            nh = buf[off]
            off += length
        if tentative and not (nh == 58 and len(buf) > off and buf[off] in (T.NEIGHBOR_SOLICIT, T.NEIGHBOR_ADVERT)):
            st.tentative += 1                # RFC 4862 5.4: only DAD's ND reaches a tentative address
            return
        handler = self.protosw.get(nh)
        if handler is None:
            st.noproto += 1
            self._param(buf, PARAMPROB_NEXTHEADER, nh_ptr, iface, now, link_mcast)
            return
        st.delivered += 1
        ctx = Ip6Input(iface, Ipv6Repr.parse(pkt), multicast, link_mcast, buf, loop, fragmented, link_src)
        handler.input(ctx, buf[off:], now)

    def _param(self, buf, code: int, pointer: int, iface, now, link_mcast, allow_multicast=False) -> None:
        self.icmp.error(buf, T.PARAM_PROBLEM, code, now, pointer=pointer, in_iface=iface,
                        link_multicast=link_mcast, allow_multicast=allow_multicast)

    def _options(self, buf, off: int, length: int, multicast: bool, iface, now, link_mcast) -> bool:
        """RFC 8200 4.2: unknown options act by the two high bits of their type."""
        for i, kind, _data in iter_options(buf[off:off + length]):
            if kind in _KNOWN_OPTIONS:
                continue
            action = kind >> 6
            if action == 0:
                continue
            self.stats.badoptions += 1
            if action == 2 or (action == 3 and not multicast):
                self._param(buf, PARAMPROB_OPTION, off + i, iface, now, link_mcast, allow_multicast=action == 2)
            return False
        return True

    def _fragment(self, iface, pkt, off, nh_ptr, frag, now, multicast, link_mcast, link_src, loop, tentative):
        st = self.stats
        st.fragments += 1
        buf = pkt.datagram
        data = buf[off + 8:]
        if frag.more_frags and (len(data) & 7 or not data):
            # RFC 8200 4.5: not a multiple of 8 -> Parameter Problem at Payload Length
            # (zero-length fragments too: QNX's CVE-2018-6923 fix).
            st.fragdropped += 1
            self._param(buf, PARAMPROB_HEADER, 4, iface, now, link_mcast)
            return
        if frag.frag_offset + len(data) > 65535:
            st.fragdropped += 1
            self._param(buf, PARAMPROB_HEADER, off + 2, iface, now, link_mcast)
            return
        first = None
        if frag.frag_offset == 0:
            unfrag = bytearray(buf[:off])
            unfrag[nh_ptr] = frag.next_header
            first = (bytes(unfrag), bytes(buf), iface)
        done = self.reass.add((pkt.src, pkt.dst, frag.ident, iface.index), first, frag.frag_offset,
                              frag.more_frags, data, now)
        if done is None:
            return
        (unfrag, _packet, _iface), payload = done
        whole = bytearray(unfrag)
        whole += payload
        plen = len(whole) - HEADER_LEN
        if plen > 0xFFFF:
            st.fragdropped += 1
            return
        whole[4] = plen >> 8
        whole[5] = plen & 0xFF
        self._walk(iface, Ipv6Packet(memoryview(bytes(whole))), now, multicast, link_mcast, link_src, loop,
                   tentative, True)

    # -- tools ------------------------------------------------------------------------------------

    def statistics(self) -> dict:
        return {"ip6": self.stats.snapshot(), "icmp6": self.icmp.stats.snapshot(),
                "nd6": attrs.asdict(self.nd.stats), "nd6_rtr": attrs.asdict(self.rtr.stats),
                "redirect6": attrs.asdict(self.redirect.stats), "mld6": attrs.asdict(self.mld.stats)}

    def ndp_show(self) -> list[dict]:
        return self.nd.show()

    def ndp_routers(self) -> list[dict]:
        """The default router list (ndp -r)."""
        return self.rtr.show_routers(self._now)

    def ndp_prefixes(self) -> list[dict]:
        """The prefix list (ndp -p)."""
        return self.rtr.show_prefixes(self._now)

    def nd_routers_text(self, now: Instant) -> str:
        """``ndp -r`` text (the ndp file's ``routers`` request reads it)."""
        return self.rtr.routers_text(now)

    def nd_prefixes_text(self, now: Instant) -> str:
        """``ndp -p`` text (the ndp file's ``prefixes`` request reads it)."""
        return self.rtr.prefixes_text(now)


def _earliest(*times) -> Instant | None:
    """The smallest of ``times`` that is not None (poll_at runs after every request)."""
    best = None
    for t in times:
        if t is not None and (best is None or t < best):
            best = t
    return best
