"""The IPv6 tables as files (io-pkt-v6-hc only): ``route6``, ``ndp``, ``stats/ip6``,
``stats/icmp6``. Reads give KAME's text (``netstat -rn -f inet6``'s Internet6 table,
``ndp -an``), writes are verbs, one per line::

    route6: add DEST[/LEN] [gateway GW[%IF]] [interface IF] [mtu N] [reject] [blackhole]
            delete DEST[/LEN] [gateway GW]
            flush
    ndp:    add ADDR[%IF] MAC [interface IF]   (a permanent entry, ndp -s)
            delete ADDR[%IF]                   (ndp -d; the answer names what went)
            flush                              (ndp -c; the answer lists what went)
            info IF [[-]nud] [[-]accept_rtadv] | routers | prefixes
                                          (ndp -i / -r / -p, read back on the same open)

DEST is an address or ``default``; without /LEN it is a host route (/128). A link-local
address takes its zone as ``%IF`` (RFC 4007 11), which is also how both tables print one.
"""

import errno
import ipaddress

from ..stack.errors import StackError
from ..stack.iface.interface import IFF_ACCEPTRTADV
from ..stack.inet6.nd6 import REACHABLE_TIME, RETRANS_TIMER
from ..stack.inet6.nd6_rtr import ND6_IFF_IFDISABLED, ND6_IFF_PERFORMNUD, sec2str
from ..stack.time import seconds
from .tables import _options, counters

# NetBSD netstat show.c: WID_DST/WID_GW are 34/30 for AF_INET6 with -n (reference qnx.md 4.2).
ROUTE6_HEADER = (f"{'Destination':<34.34} {'Gateway':<30.30} {'Flags':<6.6} {'Refs':>6.6} "
                 f"{'Use':>8.8} {'Mtu':>6.6}  Interface")
# NetBSD ndp.c dump(): W_ADDR 36, W_LL 17, W_IF 6 (reference ipv6.md 1.4).
NDP_HEADER = f"{'Neighbor':<36.36} {'Linklayer Address':<17.17} {'Netif':>6.6} {'Expire':<9.9} S Flags"


def _inet6(stack):
    if stack.inet6 is None:
        raise StackError(errno.EAFNOSUPPORT, f"{stack.variant.name} has no IPv6")
    return stack.inet6


def _scoped(addr: ipaddress.IPv6Address, iface) -> str:
    # Link-local unicast, and multicast of interface- or link-local scope, need a zone.
    zoned = addr.is_link_local or (addr.is_multicast and addr.packed[1] & 0x0F <= 2)
    return f"{addr}%{iface.name}" if zoned else str(addr)


def _address(stack, text: str) -> tuple[ipaddress.IPv6Address, object]:
    """ADDR[%IF] -> (address, interface or None)."""
    host, _, zone = text.partition("%")
    try:
        addr = ipaddress.IPv6Address(host)
    except ValueError:
        raise StackError(errno.EINVAL, f"bad IPv6 address {text!r}") from None
    return addr, stack.interface(zone) if zone else None


# -- routes ----------------------------------------------------------------------------------


def route6_table(stack) -> str:
    lines = [ROUTE6_HEADER]
    inet6 = stack.inet6
    for route in inet6.routes if inet6 is not None else ():
        d = route.describe()
        dest = d["destination"]
        if route.prefixlen and route.network.network_address.is_link_local:
            net = route.network
            dest = f"{net.network_address}%{route.iface.name}" + ("" if route.is_host else f"/{net.prefixlen}")
        gateway = d["gateway"]
        if route.gateway is not None:
            gateway = _scoped(ipaddress.IPv6Address(route.gateway), route.iface)
        mtu = d["mtu"] or "-"
        lines.append(f"{dest:<34.34} {gateway:<30.30} {d['flags']:<6.6} {d['refs']:>6} {d['use']:>8} "
                     f"{mtu!s:>6.6}  {d['interface']}")
    return "\n".join(lines) + "\n"


def _destination(text: str) -> tuple[str, int]:
    if text == "default":
        return "::", 0
    addr, sep, plen = text.partition("/")
    try:
        ipaddress.IPv6Address(addr)
        return addr, int(plen) if sep else 128
    except ValueError:
        raise StackError(errno.EINVAL, f"bad IPv6 destination {text!r}") from None


def route6_ctl(stack, fields: list[str]) -> None:
    inet6 = _inet6(stack)
    verb, args = fields[0], fields[1:]
    routes = inet6.routes
    if verb == "flush" and not args:
        routes.flush()
        return None
    if verb in ("add", "delete", "del") and args:
        dest, plen = _destination(args[0])
        if verb == "add":
            o = _options(args[1:], {"gateway", "interface", "mtu"}, {"reject", "blackhole"})
            try:
                mtu = int(o.get("mtu", 0))
            except ValueError:
                raise StackError(errno.EINVAL, f"bad mtu {o['mtu']!r}") from None
            iface = stack.interface(o["interface"]) if "interface" in o else None
            gateway = None
            if "gateway" in o:
                gw, zone = _address(stack, o["gateway"])
                if gw.is_link_local and (zone or iface) is None:
                    raise StackError(errno.EINVAL, f"link-local gateway {gw} needs a %zone")
                iface = iface or zone
                # A link-local address is ours only on its own link (fe80::1 is lo0's).
                mine = inet6.local_on(iface, gw.packed) if gw.is_link_local else inet6.is_local(gw.packed)
                if mine:
                    # route(8): one of our addresses as gateway means "through its interface".
                    iface = iface or inet6.interface_of(gw.packed)
                else:
                    gateway = str(gw)
            routes.add(dest, gateway, iface=iface, prefixlen=plen, reject="reject" in o,
                       blackhole="blackhole" in o, mtu=mtu)
        else:
            o = _options(args[1:], {"gateway"}, set())
            gateway = str(_address(stack, o["gateway"])[0]) if "gateway" in o else None
            routes.delete(dest, gateway, prefixlen=plen)
        return None
    raise StackError(errno.EINVAL, f"unknown route6 request {' '.join(fields)!r}")


# -- neighbours ------------------------------------------------------------------------------


def _row(address: str, mac: str, ifname: str, expire: str, state: str, flags: str, probes: int) -> str:
    row = f"{address:<36} {mac:<17} {ifname:>6} {expire:<9.9} {state} {flags}"
    return row + (f" {probes}" if probes else "")


def ndp_table(stack, now: int) -> str:
    """``ndp -an``: the neighbour cache, then our own addresses (KAME keeps them as
    permanent reachable entries with our MAC)."""
    lines = [NDP_HEADER]
    inet6 = stack.inet6
    if inet6 is None:
        return lines[0] + "\n"
    for entry in inet6.nd:
        mac = ":".join(f"{b:02x}" for b in entry.mac) if entry.mac else "(incomplete)"
        if entry.state.name == "STATIC":
            expire = "permanent"
        elif entry.expires is not None and entry.expires > now:
            expire = sec2str((entry.expires - now) // seconds(1))
        else:
            expire = "expired"
        state = "N" if entry.state.name == "STATIC" else entry.state.value
        lines.append(_row(_scoped(entry.address, entry.iface), mac, entry.iface.name, expire, state,
                          "R" if entry.router else "", entry.asked if entry.state.name != "STATIC" else 0))
    for iface in stack.interfaces.values():
        if iface.mac is None or iface.is_loopback:
            continue
        for ifa in iface.inet6_addrs():
            lines.append(_row(_scoped(ifa.address, iface), iface.mac_text(), iface.name, "permanent", "R", "", 0))
    return "\n".join(lines) + "\n"


def _ndp_info(stack, iface) -> str:
    """``ndp -i IF``: the interface's ND parameters (NetBSD ndp.c ifinfo()): what RAs
    taught the link (``rtr.info``), else the defaults, and its ND6_IFF_* flags."""
    inet6 = stack.inet6
    rtr = inet6.rtr
    ndi = rtr.info(iface)
    base = ndi.basereachable or REACHABLE_TIME // 1000            # ms
    reach = inet6.nd.reachable_time // 1000
    retrans = ndi.retrans or RETRANS_TIMER // 1000
    hlim = ndi.chlim or stack.sysctl.get("net.inet6.ip6.hlim")
    flags = ["nud"] if ndi.flags & ND6_IFF_PERFORMNUD else []
    if stack.sysctl.get("net.inet6.ip6.accept_rtadv") or iface.flags & IFF_ACCEPTRTADV:
        flags.append("accept_rtadv")
    if ndi.flags & ND6_IFF_IFDISABLED:
        flags.append("disabled")
    return (f"linkmtu={rtr.link_mtu(iface)}, maxmtu={iface.mtu}, curhlim={hlim}, "
            f"basereachable={base // 1000}s{base % 1000}ms, reachable={reach // 1000}s, "
            f"retrans={retrans // 1000}s{retrans % 1000}ms\n"
            f"Flags: {''.join(f + ' ' for f in flags)}\n")


def _ndp_flags(stack, iface, words: list[str]) -> None:
    """``ndp -i IF [-]nud [-]accept_rtadv [-]disabled`` (SIOCSIFINFO_FLAGS). accept_rtadv
    is QNX's IFF_ACCEPTRTADV, the bit behind ``net.inet6.ip6.ifconf.IF.accept_rtadv``;
    disabled is ND6_IFF_IFDISABLED (nd6_rtr.set_disabled)."""
    ndi = stack.inet6.rtr.info(iface)
    for word in words:
        on = not word.startswith("-")
        flag = word.removeprefix("-")
        if flag == "nud":
            ndi.flags = ndi.flags | ND6_IFF_PERFORMNUD if on else ndi.flags & ~ND6_IFF_PERFORMNUD
        elif flag == "accept_rtadv":
            node = f"net.inet6.ip6.ifconf.{iface.name}.accept_rtadv"
            if node not in stack.sysctl:
                raise StackError(errno.EINVAL, f"{iface.name} takes no router advertisements")
            stack.sysctl.set(node, int(on))
        elif flag == "disabled":
            stack.inet6.rtr.set_disabled(iface, on)
        elif flag == "prefer_source":
            raise StackError(errno.EOPNOTSUPP, f"ND flag {flag} is not implemented")
        else:
            raise StackError(errno.EINVAL, f"unknown ND flag {word!r}")


def ndp_ctl(stack, fields: list[str], now: int) -> str | None:
    inet6 = _inet6(stack)
    verb, args = fields[0], fields[1:]
    nd = inet6.nd
    if verb == "info" and args:
        iface = stack.interface(args[0])
        _ndp_flags(stack, iface, args[1:])
        return _ndp_info(stack, iface)
    if verb in ("routers", "prefixes") and not args:
        # ndp -r / -p: the default router and prefix lists RA processing keeps
        # (``inet6.nd_routers()``/``nd_prefixes()`` text once it exists); none yet.
        fn = getattr(inet6, f"nd_{verb}_text", None)
        return fn(now) if fn is not None else ""
    if verb == "add" and len(args) >= 2:
        addr, zone = _address(stack, args[0])
        o = _options(args[2:], {"interface"}, {"temp", "proxy"})
        iface = zone or (stack.interface(o["interface"]) if "interface" in o else None)
        if iface is None:
            try:
                iface, _nh, _route = inet6.route_to(addr.packed)
            except StackError:
                raise StackError(errno.ENETUNREACH, f"{addr}: no interface reaches it") from None
        try:
            mac = bytes(int(x, 16) for x in args[1].split(":"))
        except ValueError:
            raise StackError(errno.EINVAL, f"bad link-layer address {args[1]!r}") from None
        nd.add_static(iface, addr.packed, mac)
        return None
    if verb in ("delete", "del") and len(args) == 1:
        addr, zone = _address(stack, args[0])
        entry = nd.delete(addr.packed, zone)
        return f"{_scoped(entry.address, entry.iface)} ({_scoped(entry.address, entry.iface)}) deleted\n"
    if verb == "flush" and not args:
        gone = [e for e in nd]
        nd.flush(static=True)
        return "".join(f"{_scoped(e.address, e.iface)} ({_scoped(e.address, e.iface)}) deleted\n" for e in gone)
    raise StackError(errno.EINVAL, f"unknown ndp request {' '.join(fields)!r}")


# -- counters --------------------------------------------------------------------------------


def stats6(stack) -> dict:
    """``stats/ip6`` and ``stats/icmp6`` (histograms as ``inhist.N``/``outhist.N``)."""
    inet6 = stack.inet6
    if inet6 is None:
        return {}

    def icmp6() -> str:
        snap = dict(inet6.icmp.stats.snapshot())
        hists = {k: snap.pop(k) for k in ("inhist", "outhist")}
        text = counters(snap)
        for name, hist in hists.items():
            text += "".join(f"{name}.{int(t)}: {v}\n" for t, v in sorted(hist.items()) if v)
        return text

    return {"ip6": lambda: counters(inet6.stats.snapshot()), "icmp6": icmp6}
