"""ICMPv6 Redirects (RFC 4861 8): sent when forwarding, accepted as a host.

Sending (8.2, KAME icmp6_redirect_output): a packet we forward leaves by the interface
it came in on, its source is on that link (link-local, or inside a prefix the link's
routes hold without a gateway), and ``net.inet6.ip6.redirect`` is 1. The target is the
route's gateway, which must be link-local (8.2: the router is named by its link-local
address; KAME sends nothing otherwise), or the destination itself when it is on-link.
The Redirect goes from our link-local address to the packet's source with hop limit 255,
the target's link-layer address when the neighbour cache has it, and as much of the
packet as fits in 1280 bytes (Redirected Header); ``errppslimit`` bounds them with the
other ICMPv6 errors.

Accepting (8.1 validity, 8.3): only while not forwarding on that interface and with
``net.inet6.icmp6.rediraccept`` 1. Beyond ndisc.py's checks (hop limit 255, code 0,
option lengths, no fragments): a link-local source that is our current first hop for
the destination, a destination that is not multicast, a target that is link-local or the
destination itself. The redirect becomes a host route (``RTF_DYNAMIC``, "UGHD" / "UHD"
in netstat) through the target, or straight onto the link when target = destination,
for ``net.inet6.icmp6.redirtimeout`` seconds (QNX 600; 0 keeps it), and the target's
link-layer address, if given, is learned (a router unless target = destination).
"""

import ipaddress

import attrs

from ..errors import StackError
from ..iface.route import RTF_DYNAMIC, RTF_STATIC
from ..time import Instant, seconds
from ..wire.icmpv6 import (
    OPT_TARGET_LLADDR, Icmpv6Type as T, NdOption, NdRedirect, option_lladdr, redirected_header,
)
from ..wire.ipv6 import is_link_local, is_multicast


@attrs.define(eq=False)
class Learned:
    route: object
    expires: Instant | None


@attrs.define
class RedirStat:
    sent: int = 0           # Redirects sent
    accepted: int = 0       # Redirects that made a route
    ignored: int = 0        # while forwarding, or rediraccept 0
    bad: int = 0            # failing 8.1 validity (source, target, destination)


class Redirects:
    def __init__(self, ip):
        self.ip = ip
        self.stats = RedirStat()
        sysctl = ip.stack.sysctl
        self._node_send = sysctl.node("net.inet6.ip6.redirect")
        self._node_accept = sysctl.node("net.inet6.icmp6.rediraccept")
        self._node_timeout = sysctl.node("net.inet6.icmp6.redirtimeout")
        self.learned: dict[bytes, Learned] = {}

    # -- sending (8.2) --------------------------------------------------------------------

    def _on_link(self, iface, addr: bytes) -> bool:
        if is_link_local(addr):
            return True
        route = self.ip.routes.lookup(int.from_bytes(addr, "big"))
        return route is not None and route.iface is iface and route.gateway is None

    def send(self, iface, packet, route, nexthop: bytes, now: Instant) -> None:
        ip = self.ip
        src = bytes(packet[8:24])
        dst = bytes(packet[24:40])
        if not self._node_send.value or route.flags & RTF_DYNAMIC or not self._on_link(iface, src):
            return
        if route.gateway is not None and not is_link_local(nexthop):
            return
        ours = next((a.address.packed for a in iface.inet6_addrs()
                     if is_link_local(a.address.packed) and ip.is_usable_local(a.address.packed)), None)
        if ours is None or not ip.icmp._rate_ok(now):
            return
        options = []
        entry = ip.nd.get(iface, nexthop)
        if entry is not None and entry.mac is not None:
            options.append(NdOption(OPT_TARGET_LLADDR, entry.mac))
        options.append(redirected_header(packet))
        message = NdRedirect(nexthop, dst, tuple(options)).to_bytes(ours, src)
        self.stats.sent += 1
        ip.icmp.stats.count_out(T.REDIRECT)
        ip.send_nd(iface, ours, src, message, None)

    # -- accepting (8.1, 8.3) --------------------------------------------------------------

    def input(self, ctx, msg: NdRedirect, now: Instant) -> None:
        ip = self.ip
        st = self.stats
        iface = ctx.iface
        if ip.rtr.forwarding(iface) or not self._node_accept.value:
            st.ignored += 1
            return
        src = ctx.ip.src
        target, dest = msg.target, msg.destination
        if not is_link_local(src) or is_multicast(dest) or not (is_link_local(target) or target == dest):
            st.bad += 1
            return
        try:
            out, first_hop, _route = ip.route_to(dest, None, None)
        except StackError:
            st.bad += 1
            return
        if out is not iface or first_hop != src:
            st.bad += 1                     # 8.1: only our current first hop may redirect us
            return
        tlla = option_lladdr(msg.options, OPT_TARGET_LLADDR)
        if tlla is not None:
            ip.nd.learn(iface, target, tlla, now, router=target != dest)
        old = self.learned.pop(dest, None)
        self.ip.stack.timers_changed()     # every change to learned tells Stack.poll_at
        if old is not None:
            ip.routes.remove(old.route)
        text = ipaddress.IPv6Address(dest)
        try:
            if target == dest:
                route = ip.routes.add(text, iface=iface, host=True)
            else:
                route = ip.routes.add(text, ipaddress.IPv6Address(target), iface=iface, host=True)
        except StackError:
            st.bad += 1                     # a route to it by hand is there: it stays
            return
        route.flags = (route.flags & ~RTF_STATIC) | RTF_DYNAMIC
        timeout = self._node_timeout.value
        self.learned[dest] = Learned(route, now + seconds(timeout) if timeout else None)
        self.ip.stack.timers_changed()
        st.accepted += 1

    # -- timers ---------------------------------------------------------------------------

    def poll(self, now: Instant) -> None:
        for dest, entry in list(self.learned.items()):
            if entry.expires is not None and entry.expires <= now:
                del self.learned[dest]
                self.ip.stack.timers_changed()
                self.ip.routes.remove(entry.route)

    def poll_at(self) -> Instant | None:
        if not self.learned:         # the usual case, asked after every request
            return None
        return min((e.expires for e in self.learned.values() if e.expires is not None), default=None)

    def interface_detached(self, iface) -> None:
        self.learned = {d: e for d, e in self.learned.items() if e.route.iface is not iface}
        self.ip.stack.timers_changed()
