"""ARP (RFC 826) for the IPv4 layer: input, requests, announcements, arp(8)'s calls.

``ArpInput`` is the ARP part of ``Ipv4Layer`` (ipv4.py), which extends it. The cache
itself (states, timers, held packets) is ``inet.arp``, an ``ArpCache``
(iface/neighbor.py), which calls back here to send a request (``_arp_request``), to
send the packets that waited once the answer came (``_arp_deliver``) and to answer them
with host unreachable when none came (``_arp_unreachable``).

``process_arp`` learns only from requests and replies about addresses that can be a
host's (never a group, a broadcast or one of ours: someone claiming our address is
logged, RFC 5227 2.4), creates an entry only when the message was aimed at us (RFC 826
"merge"), answers requests for our addresses on the interface they arrived by, and
answers an RFC 5227 probe (sender 0.0.0.0) without learning from it. ``_announce`` is
the gratuitous ARP an address gets when it is added or its interface comes up.
"""

import errno
import ipaddress

from ..errors import StackError
from ..iface.interface import IFF_NOARP, IFT_ETHER, Interface
from ..slog import INFO, WARNING
from ..time import Instant
from ..wire.arp import ArpRepr
from ..wire.errors import Malformed, Unsupported
from ..wire.ethernet import BROADCAST as ETHER_BROADCAST
from ..wire.ethernet import pad_frame
from ..wire.ipv4 import ANY
from .output import ETHERTYPE_IP, _int, _packed
from .stats import ICMP_UNREACH, UNREACH_HOST

ETHERTYPE_ARP_B = b"\x08\x06"


class ArpInput:
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

    # -- arp(8) --------------------------------------------------------------------------------

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
