"""Router and prefix discovery (RFC 4861 6) and stateless address autoconfiguration
(RFC 4862 5.5): Router Solicitations out, Router Advertisements in, the default router
list, the prefix list and the lifetimes of autoconfigured addresses (KAME nd6_rtr.c).

Theory of operation
-------------------
Whether an interface listens to RAs is QNX's rule (QSRC nd6_rtr.c): ``net.inet6.ip6.
accept_rtadv`` (default 0) or the interface's ``IFF_ACCEPTRTADV`` flag (the per-interface
node ``net.inet6.ip6.ifconf.IF.accept_rtadv``, ifconf.py), and the node is not a router for it
(``net.inet6.ip6.forwarding`` or ``IFF_IP6FORWARDING``, node ``...ifconf.IF.forwarding``).

Router Solicitation (6.3.7): when an accepting Ethernet interface comes up or starts to
accept, up to MAX_RTR_SOLICITATIONS RS go to ff02::2, RTR_SOLICITATION_INTERVAL apart,
the first after a random delay of at most MAX_RTR_SOLICITATION_DELAY; a link-local
address still under DAD postpones them (its end is at most a few RetransTimers away),
and then they go from :: without SLLA (6.3.7, RFC 4862 5.4.2). The first RA stops them.
On QNX the solicitations come from the rtsold daemon; here the stack sends them itself.

Router Advertisement (6.1.2 validity is checked by ndisc.py: hop limit 255, code 0,
option lengths, no fragments; here: a link-local source). What it teaches (6.3.4):

* SLLA -> the neighbour cache, with the router flag;
* Cur Hop Limit, Reachable Time, Retrans Timer -> the interface's ``NdIfInfo`` (0 means
  unspecified); a new Reachable Time draws a new ReachableTime for the cache; the Retrans
  Timer spaces that link's NS (resolution, NUD probes, DAD);
* MTU option -> the interface's IPv6 link MTU when 1280 <= MTU <= the link's own;
* Router Lifetime -> the default router list: a non-zero lifetime adds or refreshes the
  router, 0 removes it now. The first router in the list is the default route (a gateway
  route via its link-local address, UG in netstat); when it goes the next one takes over;
* Prefix Information -> the prefix list (L flag: an on-link prefix, its route kept for
  the valid lifetime; 0 removes it now) and SLAAC (A flag, RFC 4862 5.5.3): a prefix of
  length 64, not link-local, preferred lifetime <= valid lifetime, forms prefix + the
  interface's modified EUI-64 identifier, flagged ``autoconf`` and put through DAD. For an
  address formed before, the preferred lifetime is reset and the valid lifetime follows
  the two-hour rule (5.5.3 e): taken as advertised when over two hours or over what
  remains, otherwise left alone when at most two hours remain, else cut to two hours.

Timers as data: every entry holds the instants it expires at (None: infinite, lifetime
0xffffffff); ``poll`` deprecates addresses whose preferred lifetime ran out
(``IN6_IFF_DEPRECATED``: no longer chosen as a source, RFC 6724 rule 3), deletes those
whose valid lifetime did, and drops routers and prefixes past their time. ``poll_at`` is
the earliest of them. The lists are small (a handful per link), so they are scanned.
"""

import errno
import ipaddress

import attrs

from ..iface.interface import IFF_ACCEPTRTADV, IFF_IP6FORWARDING, IFT_ETHER, Interface
from ..iface.route import RTF_STATIC
from ..errors import StackError
from ..slog import INFO, WARNING
from ..time import Instant, ms, seconds
from ..wire.errors import Malformed
from ..wire.icmpv6 import (
    OPT_MTU, OPT_PREFIX_INFO, OPT_SOURCE_LLADDR, Icmpv6Type as T, NdMtu, NdOption, NdPrefixInfo,
    NdRouterSolicit, option_lladdr,
)
from ..wire.ipv6 import ALL_ROUTERS, MIN_MTU, UNSPECIFIED, eui64_link_local, is_link_local
from .nd6 import RETRANS_TIMER
from .ndisc import IN6_IFF_AUTOCONF, IN6_IFF_DEPRECATED, IN6_IFF_DUPLICATED, IN6_IFF_TENTATIVE

# nd6.h's per-interface ND flags (SIOCSIFINFO_FLAGS, ndp -i IF [-]flag).
ND6_IFF_PERFORMNUD = 0x1
ND6_IFF_ACCEPT_RTADV = 0x2
ND6_IFF_PREFER_SOURCE = 0x4
ND6_IFF_IFDISABLED = 0x8
MAX_RTR_SOLICITATION_DELAY = seconds(1)
RTR_SOLICITATION_INTERVAL = seconds(4)
MAX_RTR_SOLICITATIONS = 3
TWO_HOURS = seconds(2 * 3600)          # RFC 4862 5.5.3 e; QSRC nd6_rtr.c TWOHOUR
INFINITE = 0xFFFFFFFF
DAD_WAIT = seconds(1)


def _until(now: Instant, lifetime: int) -> Instant | None:
    return None if lifetime == INFINITE else now + seconds(lifetime)


def _left(now: Instant, until: Instant | None) -> int | None:
    """Seconds left (what ndp -r/-p and ifconfig -L print); None for infinite."""
    return None if until is None else max(0, (until - now) // 1_000_000)


_PREF = ("medium", "high", "reserved", "low")      # RFC 4191 Prf, KAME rtpref_str order


def _sec2str(total: int | None) -> str:
    """sec2str, with "Never" for a lifetime that does not run out."""
    return "Never" if total is None else sec2str(total)


def sec2str(total: int) -> str:
    """NetBSD ndp.c sec2str(): 1d2h3m4s, each unit once a larger one was printed."""
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    out, started = "", False
    for value, unit in ((days, "d"), (hours, "h"), (mins, "m")):
        if value or started:
            out += f"{value}{unit}"
            started = True
    return out + f"{secs}s"


def _zoned(addr: bytes, iface) -> str:
    text = str(ipaddress.IPv6Address(addr))
    return f"{text}%{iface.name}" if is_link_local(addr) else text


@attrs.define
class NdIfInfo:
    """What RAs taught about one link (KAME struct nd_ifinfo), and its ND6_IFF_* flags."""

    chlim: int = 0            # Cur Hop Limit, 0: the sysctl's
    basereachable: int = 0    # ms, 0: never advertised
    retrans: int = 0          # ms, 0: never advertised
    linkmtu: int = 0          # 0: the interface's MTU
    flags: int = ND6_IFF_PERFORMNUD     # nd6.h; ndp -i IF [-]nud


@attrs.define(eq=False)
class DefRouter:
    iface: Interface
    addr: bytes
    expires: Instant
    managed: bool = False
    other: bool = False
    preference: int = 0       # RFC 4191 Prf bits as received
    route: object = None      # the default route through it, while it is the chosen one


@attrs.define(eq=False)
class Prefix:
    iface: Interface
    prefix: bytes
    prefixlen: int
    onlink: bool
    autonomous: bool
    expires: Instant | None   # on-link validity (None: infinite)
    preferred: Instant | None
    router: bytes
    route: object = None
    vltime: int = 0           # as advertised (ndp -p prints them)
    pltime: int = 0


@attrs.define(eq=False)
class AutoAddr:
    """The lifetimes of one autoconfigured address (KAME in6_addrlifetime)."""

    iface: Interface
    ifa: object
    prefix: bytes | None      # None: lifetimes given by hand (set_lifetimes)
    valid: Instant | None
    preferred: Instant | None


@attrs.define(eq=False)
class Solicit:
    iface: Interface
    left: int
    deadline: Instant


@attrs.define
class RtrStat:
    rsout: int = 0          # Router Solicitations sent
    rain: int = 0           # Router Advertisements processed
    raignored: int = 0      # RAs while not accepting (accept_rtadv off, or forwarding)
    badra: int = 0          # RAs failing validation (non-link-local source)
    badprefix: int = 0      # prefix options ignored (malformed, link-local, pltime > vltime, length)
    badmtu: int = 0         # MTU options outside 1280..link MTU
    autoconf: int = 0       # addresses formed
    expired: int = 0        # addresses removed at the end of their valid lifetime


class RouterDiscovery:
    def __init__(self, ip):
        self.ip = ip
        self.stack = ip.stack
        self.stats = RtrStat()
        sysctl = self.stack.sysctl
        self._node_accept = sysctl.node("net.inet6.ip6.accept_rtadv")
        self._node_forwarding = sysctl.node("net.inet6.ip6.forwarding")
        self._node_accept.on_change = lambda _v: self.policy_changed()
        self.ifinfo: dict[int, NdIfInfo] = {}
        self.routers: list[DefRouter] = []
        self.prefixes: list[Prefix] = []
        self.addrs: dict[tuple[int, bytes], AutoAddr] = {}
        self.solicits: dict[int, Solicit] = {}

    # -- policy ---------------------------------------------------------------------------

    def forwarding(self, iface: Interface) -> bool:
        return bool(self._node_forwarding.value or iface.flags & IFF_IP6FORWARDING)

    def accepting(self, iface: Interface) -> bool:
        """QSRC nd6_rtr.c: (accept_rtadv || IFF_ACCEPTRTADV) && !IP6FORWARDING(ifp)."""
        return bool((self._node_accept.value or iface.flags & IFF_ACCEPTRTADV) and not self.forwarding(iface))

    def info(self, iface: Interface) -> NdIfInfo:
        ndi = self.ifinfo.get(iface.index)
        if ndi is None:
            ndi = self.ifinfo[iface.index] = NdIfInfo()
        return ndi

    def set_disabled(self, iface: Interface, on: bool) -> None:
        """ND6_IFF_IFDISABLED (``ndp -i IF [-]disabled``, or DAD below): IPv6 neither in
        nor out by this interface. Not cleared while a link-local address of it is
        marked duplicated (RFC 4862 5.4.5; NetBSD's SIOCSIFINFO_FLAGS refuses it)."""
        ndi = self.info(iface)
        if not on and any(a.flags6 & IN6_IFF_DUPLICATED and is_link_local(a.address.packed)
                          for a in iface.inet6_addrs()):
            raise StackError(errno.EINVAL, "Cannot enable an interface with a link-local address marked duplicate")
        ndi.flags = ndi.flags | ND6_IFF_IFDISABLED if on else ndi.flags & ~ND6_IFF_IFDISABLED
        iface.inet6_disabled = on

    def performs_nud(self, iface: Interface) -> bool:
        ndi = self.ifinfo.get(iface.index)
        return ndi is None or bool(ndi.flags & ND6_IFF_PERFORMNUD)

    def policy_changed(self) -> None:
        """accept_rtadv or forwarding moved (a sysctl, global or per interface)."""
        # Every method here that moves a deadline first tells Stack.poll_at (its cache).
        self.stack.timers_changed()
        for iface in self.stack.interfaces.values():
            if iface.is_up and self.accepting(iface):
                self.start_solicit(iface)
            else:
                self.solicits.pop(iface.index, None)

    # -- Router Solicitation (RFC 4861 6.3.7) --------------------------------------------

    def start_solicit(self, iface: Interface) -> None:
        self.stack.timers_changed()
        if iface.kind != IFT_ETHER or iface.mac is None or iface.index in self.solicits:
            return
        delay = int(self.stack.rng.random() * MAX_RTR_SOLICITATION_DELAY)
        self.solicits[iface.index] = Solicit(iface, MAX_RTR_SOLICITATIONS, self.ip.stack_now() + delay)

    def _solicit_step(self, s: Solicit, now: Instant) -> None:
        self.stack.timers_changed()
        iface = s.iface
        if not iface.is_up or not self.accepting(iface):
            del self.solicits[iface.index]
            return
        lls = [a for a in iface.inet6_addrs() if is_link_local(a.address.packed)]
        if any(a.flags6 & IN6_IFF_TENTATIVE for a in lls) and not any(
                not a.flags6 & (IN6_IFF_TENTATIVE | IN6_IFF_DUPLICATED) for a in lls):
            s.deadline = now + DAD_WAIT      # wait for DAD to end: the RS then has a source
            return
        src = next((a.address.packed for a in lls if not a.flags6 & (IN6_IFF_TENTATIVE | IN6_IFF_DUPLICATED)),
                   UNSPECIFIED)
        options = () if src == UNSPECIFIED else (NdOption(OPT_SOURCE_LLADDR, iface.mac),)
        self.ip.icmp.stats.count_out(T.ROUTER_SOLICIT)
        self.stats.rsout += 1
        self.ip.send_nd(iface, src, ALL_ROUTERS, NdRouterSolicit(options).to_bytes(src, ALL_ROUTERS), None)
        s.left -= 1
        if s.left <= 0:
            del self.solicits[iface.index]
        else:
            s.deadline = now + RTR_SOLICITATION_INTERVAL

    # -- Router Advertisement (RFC 4861 6.3.4) -------------------------------------------

    def ra_input(self, ctx, ra, now: Instant) -> None:
        st = self.stats
        iface = ctx.iface
        src = ctx.ip.src
        if not self.accepting(iface):
            st.raignored += 1
            return
        if not is_link_local(src):
            st.badra += 1                     # 6.1.2: the source MUST be link-local
            return
        st.rain += 1
        self.solicits.pop(iface.index, None)
        slla = option_lladdr(ra.options, OPT_SOURCE_LLADDR)
        nd = self.ip.nd
        if slla is not None:
            nd.learn(iface, src, slla, now, router=True)
        else:
            entry = nd.get(iface, src)
            if entry is not None:
                entry.router = True
        ndi = self.info(iface)
        if ra.hop_limit:
            ndi.chlim = ra.hop_limit
        if ra.reachable_time and ra.reachable_time != ndi.basereachable:
            ndi.basereachable = ra.reachable_time
            nd.reachable_time = int(ms(ra.reachable_time) * (0.5 + self.stack.rng.random()))
        if ra.retrans_time:
            ndi.retrans = ra.retrans_time
        for opt in ra.options:
            if opt.type == OPT_MTU:
                self._mtu_option(iface, opt, ndi)
        self._router(iface, src, ra, now)
        for opt in ra.options:
            if opt.type == OPT_PREFIX_INFO:
                try:
                    pi = NdPrefixInfo.from_option(opt)
                except Malformed:
                    st.badprefix += 1
                    continue
                self._prefix(iface, src, pi, now)

    def _mtu_option(self, iface: Interface, opt, ndi: NdIfInfo) -> None:
        try:
            mtu = NdMtu.from_option(opt).mtu
        except Malformed:
            self.stats.badmtu += 1
            return
        if MIN_MTU <= mtu <= iface.mtu:
            ndi.linkmtu = mtu
        else:
            self.stats.badmtu += 1

    def _router(self, iface: Interface, src: bytes, ra, now: Instant) -> None:
        self.stack.timers_changed()
        router = next((r for r in self.routers if r.iface is iface and r.addr == src), None)
        if ra.router_lifetime == 0:
            if router is not None:
                self._drop_router(router)
            return
        if router is None:
            router = DefRouter(iface, src, 0)
            self.routers.append(router)
            self.stack.log(INFO, f"{iface.name}: default router {ipaddress.IPv6Address(src)}")
        router.expires = now + seconds(ra.router_lifetime)
        router.managed, router.other, router.preference = ra.managed, ra.other, ra.preference
        self._select_default()

    def _drop_router(self, router: DefRouter) -> None:
        self.stack.timers_changed()
        self.routers.remove(router)
        self._unroute(router)
        self._select_default()

    def _unroute(self, entry) -> None:
        if entry.route is not None:
            self.ip.routes.remove(entry.route)
            entry.route = None

    def _select_default(self) -> None:
        """KAME defrouter_select(): the first router on an up interface is the default."""
        chosen = next((r for r in self.routers if r.iface.is_up), None)
        for r in self.routers:
            if r is not chosen:
                self._unroute(r)
        if chosen is None:
            return
        if chosen.route is not None and chosen.route in self.ip.routes.exact(0, 0):
            return                            # (route flush may have taken it: then again)
        try:
            route = self.ip.routes.add("default", ipaddress.IPv6Address(chosen.addr), iface=chosen.iface)
        except StackError:
            return                            # the same route is there (route add by hand)
        route.flags &= ~RTF_STATIC            # learned, not configured: "UG"
        chosen.route = route

    def _prefix(self, iface: Interface, router: bytes, pi: NdPrefixInfo, now: Instant) -> None:
        st = self.stats
        plen = pi.prefix_len
        if plen > 128 or is_link_local(pi.prefix) or pi.preferred_lifetime > pi.valid_lifetime:
            st.badprefix += 1                 # 4861 6.3.4, 4862 5.5.3 a/c
            return
        prefix = (int.from_bytes(pi.prefix, "big") & ~((1 << (128 - plen)) - 1)).to_bytes(16, "big")
        if pi.on_link:
            self._onlink(iface, router, prefix, plen, pi, now)
        if pi.autonomous:
            if plen != 64:
                # 5.5.3 d: prefix length + the 64-bit identifier must make 128.
                st.badprefix += 1
                self.stack.log(WARNING, f"{iface.name}: prefix {ipaddress.IPv6Address(prefix)}/{plen} "
                                        f"cannot be autoconfigured (the identifier has 64 bits)")
                return
            self._slaac(iface, prefix, pi, now)

    def _onlink(self, iface, router, prefix, plen, pi, now) -> None:
        self.stack.timers_changed()
        entry = next((p for p in self.prefixes if p.iface is iface and p.prefix == prefix
                      and p.prefixlen == plen), None)
        if entry is None:
            if pi.valid_lifetime == 0:
                return
            entry = Prefix(iface, prefix, plen, True, pi.autonomous, None, None, router)
            self.prefixes.append(entry)
            entry.route = self.ip.routes.add_interface_route(iface, int.from_bytes(prefix, "big"), plen, 0)
        elif pi.valid_lifetime == 0:
            self._drop_prefix(entry)
            return
        entry.expires = _until(now, pi.valid_lifetime)
        entry.preferred = _until(now, pi.preferred_lifetime)
        entry.vltime, entry.pltime = pi.valid_lifetime, pi.preferred_lifetime
        entry.autonomous = pi.autonomous
        entry.router = router

    def _drop_prefix(self, entry: Prefix) -> None:
        self.stack.timers_changed()
        self.prefixes.remove(entry)
        self._unroute(entry)

    def _slaac(self, iface: Interface, prefix: bytes, pi: NdPrefixInfo, now: Instant) -> None:
        self.stack.timers_changed()
        addr = prefix[:8] + eui64_link_local(iface.mac)[8:]
        auto = self.addrs.get((iface.index, addr))
        if auto is not None and auto.prefix is None:
            return                            # configured by hand with lifetimes: stays so
        if auto is None:
            if pi.valid_lifetime == 0 or self.ip.is_local(addr):
                return                        # 5.5.3 d; an address configured by hand stays so
            ifa = self.stack.add_address(iface, ipaddress.IPv6Address(addr), 64)
            ifa.flags6 |= IN6_IFF_AUTOCONF
            if not pi.on_link:
                # An address is not an on-link claim (RFC 5942 4): only the L flag is.
                self.ip.routes.remove_interface_routes(iface, int.from_bytes(addr, "big"))
            auto = AutoAddr(iface, ifa, prefix, _until(now, pi.valid_lifetime), None)
            self.addrs[(iface.index, addr)] = auto
            self.stats.autoconf += 1
            self.stack.log(INFO, f"{iface.name}: autoconfigured {ifa.address}")
        else:
            # 5.5.3 e: the two-hour rule guards the valid lifetime against a forged RA.
            received = None if pi.valid_lifetime == INFINITE else seconds(pi.valid_lifetime)
            remaining = None if auto.valid is None else auto.valid - now
            if received is None or received > TWO_HOURS or (remaining is not None and received > remaining):
                auto.valid = _until(now, pi.valid_lifetime)
            elif remaining is None or remaining > TWO_HOURS:
                auto.valid = now + TWO_HOURS
        auto.preferred = _until(now, pi.preferred_lifetime)
        if pi.preferred_lifetime == 0:
            auto.ifa.flags6 |= IN6_IFF_DEPRECATED
        else:
            auto.ifa.flags6 &= ~IN6_IFF_DEPRECATED

    # -- hooks from the layer --------------------------------------------------------------

    def address_usable(self, iface: Interface, ifa) -> None:
        if is_link_local(ifa.address.packed) and iface.is_up and self.accepting(iface):
            self.start_solicit(iface)

    def address_removed(self, iface: Interface, ifa) -> None:
        self.stack.timers_changed()
        self.addrs.pop((iface.index, ifa.address.packed), None)

    def interface_changed(self, iface: Interface, came_up: bool) -> None:
        self.stack.timers_changed()
        if not iface.is_up:
            self.solicits.pop(iface.index, None)
            self._select_default()
            return
        if came_up and self.accepting(iface):
            self.start_solicit(iface)
        self._select_default()

    def interface_detached(self, iface: Interface) -> None:
        self.stack.timers_changed()
        self.solicits.pop(iface.index, None)
        self.ifinfo.pop(iface.index, None)
        self.routers = [r for r in self.routers if r.iface is not iface]
        self.prefixes = [p for p in self.prefixes if p.iface is not iface]
        self.addrs = {k: v for k, v in self.addrs.items() if v.iface is not iface}
        self._select_default()

    def hop_limit(self, iface: Interface) -> int:
        ndi = self.ifinfo.get(iface.index)
        return ndi.chlim if ndi is not None else 0

    def retrans_timer(self, iface: Interface) -> int:
        """RetransTimer for NS (resolution, NUD, DAD): the RA's, else RFC 4861 10's 1 s."""
        ndi = self.ifinfo.get(iface.index)
        return ms(ndi.retrans) if ndi is not None and ndi.retrans else RETRANS_TIMER

    def link_mtu(self, iface: Interface) -> int:
        ndi = self.ifinfo.get(iface.index)
        return ndi.linkmtu if ndi is not None and ndi.linkmtu else iface.mtu

    # -- timers -----------------------------------------------------------------------------

    def poll(self, now: Instant) -> None:
        self.stack.timers_changed()
        for s in [s for s in self.solicits.values() if s.deadline <= now]:
            self._solicit_step(s, now)
        for router in [r for r in self.routers if r.expires <= now]:
            self.stack.log(INFO, f"{router.iface.name}: default router {ipaddress.IPv6Address(router.addr)} expired")
            self._drop_router(router)
        for entry in [p for p in self.prefixes if p.expires is not None and p.expires <= now]:
            self._drop_prefix(entry)
        for key, auto in list(self.addrs.items()):
            if auto.valid is not None and auto.valid <= now:
                del self.addrs[key]
                self.stats.expired += 1
                self.stack.log(INFO, f"{auto.iface.name}: {auto.ifa.address} valid lifetime expired")
                try:
                    self.stack.delete_address(auto.iface, auto.ifa.address)
                except StackError:
                    pass
            elif auto.preferred is not None and auto.preferred <= now:
                auto.ifa.flags6 |= IN6_IFF_DEPRECATED   # 5.5.4: valid, no longer preferred
                auto.preferred = None

    def poll_at(self) -> Instant | None:
        if not (self.solicits or self.routers or self.prefixes or self.addrs):
            return None              # the usual case, asked after every request
        times = [s.deadline for s in self.solicits.values()]
        times += [r.expires for r in self.routers]
        times += [p.expires for p in self.prefixes if p.expires is not None]
        for auto in self.addrs.values():
            times += [t for t in (auto.valid, auto.preferred) if t is not None]
        return min(times, default=None)

    # -- tools (ndp -r, ndp -p, ifconfig -L) ------------------------------------------------

    def show_routers(self, now: Instant) -> list[dict]:
        return [{"address": str(ipaddress.IPv6Address(r.addr)), "interface": r.iface.name,
                 "flags": ("M" if r.managed else "") + ("O" if r.other else ""),
                 "expire": _left(now, r.expires), "default": r.route is not None} for r in self.routers]

    def show_prefixes(self, now: Instant) -> list[dict]:
        return [{"prefix": f"{ipaddress.IPv6Address(p.prefix)}/{p.prefixlen}", "interface": p.iface.name,
                 "flags": ("L" if p.onlink else "") + ("A" if p.autonomous else ""),
                 "vltime": _left(now, p.expires), "pltime": _left(now, p.preferred),
                 "router": str(ipaddress.IPv6Address(p.router))} for p in self.prefixes]

    def routers_text(self, now: Instant) -> str:
        """``ndp -rn`` as NetBSD's ndp.c rtrlist() prints it."""
        lines = []
        for r in self.routers:
            flags = ("M" if r.managed else "") + ("O" if r.other else "")
            lines.append(f"{_zoned(r.addr, r.iface)} if={r.iface.name}, flags={flags}, "
                         f"pref={_PREF[r.preference]}, expire={_sec2str(_left(now, r.expires))}\n")
        return "".join(lines)

    def prefixes_text(self, now: Instant) -> str:
        """``ndp -pn`` as NetBSD's ndp.c plist() prints it: the advertised lifetimes, the
        time left, the addresses formed from it, and who advertised it."""
        out = []
        for p in self.prefixes:
            refs = sum(1 for a in self.addrs.values() if a.iface is p.iface and a.prefix == p.prefix)
            vl = "infinity" if p.vltime == INFINITE else str(p.vltime)
            pl = "infinity" if p.pltime == INFINITE else str(p.pltime)
            expire = "Never" if p.expires is None else _sec2str(_left(now, p.expires))
            out.append(f"{ipaddress.IPv6Address(p.prefix)}/{p.prefixlen} if={p.iface.name}\n"
                       f"flags={'L' if p.onlink else ''}{'A' if p.autonomous else ''}"
                       f"{'O' if p.route is not None else ''} vltime={vl}, pltime={pl}, expire={expire}, "
                       f"ref={refs}\n  advertised by\n")
            entry = self.ip.nd.get(p.iface, p.router)
            state = ("no neighbor state" if entry is None
                     else "reachable" if entry.state.name in ("REACHABLE", "STALE", "DELAY", "PROBE", "STATIC")
                     else "unreachable")
            out.append(f"    {_zoned(p.router, p.iface)} ({state})\n")
        return "".join(out)

    def set_lifetimes(self, iface: Interface, ifa, pltime: int | None, vltime: int | None,
                      now: Instant) -> None:
        """Lifetimes given by hand (``ifconfig IF inet6 ADDR pltime N vltime N``, KAME's
        ifra_lifetime): the address is deprecated, then removed, by the same timers as an
        autoconfigured one; it belongs to no prefix (``prefix`` None), so RAs leave it be."""
        self.stack.timers_changed()
        key = (iface.index, ifa.address.packed)
        until = lambda t: None if t is None else now + seconds(t)  # noqa: E731
        self.addrs[key] = AutoAddr(iface, ifa, None, until(vltime), until(pltime))
        if pltime == 0:
            ifa.flags6 |= IN6_IFF_DEPRECATED
            self.addrs[key].preferred = None

    def lifetimes(self, iface: Interface, ifa, now: Instant) -> tuple[int | None, int | None] | None:
        """(pltime, vltime) left in seconds for an autoconfigured address, else None."""
        auto = self.addrs.get((iface.index, ifa.address.packed))
        if auto is None:
            return None
        pl = 0 if ifa.flags6 & IN6_IFF_DEPRECATED else _left(now, auto.preferred)
        return pl, _left(now, auto.valid)
