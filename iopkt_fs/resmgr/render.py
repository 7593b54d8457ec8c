"""Stack state as text, in the formats QNX's tools print (reference/qnx.md §4).

The files serve these texts; the tools print them (adding only what their options ask
for), so ``cat P/dev/socket/if/lo0/status`` and ``iopkt ifconfig lo0`` agree.
"""

import os

import attrs

from ..stack.inet6.ndisc import FLAG_WORDS as IN6_FLAG_WORDS
from ..stack.iface.interface import IFF_POINTOPOINT, IFT_ETHER, Interface, cap_names, flag_names
from . import fuseloop


def ifconfig_block(iface: Interface, lifetimes=None) -> str:
    """One interface as NetBSD 4's ifconfig ``status()`` prints it, TAB-indented.

    ``lifetimes(ifa) -> (pltime, vltime) | None`` (seconds left, None infinite) adds what
    ``ifconfig -L`` adds to inet6 lines: `` pltime S vltime S``, ``infty`` when infinite.
    """
    names = flag_names(iface.flags)
    head = f"{iface.name}: flags={iface.flags:x}" + (f"<{names}>" if names else "")
    if iface.metric:
        head += f" metric {iface.metric}"
    lines = [head + f" mtu {iface.mtu}"]
    if iface.capabilities:
        lines += [f"\tcapabilities={_bits(iface.capabilities)}", f"\tenabled={_bits(iface.enabled)}"]
    # A pseudo-interface's own lines (NetBSD status(): vlan, then tunnel, before
    # the address lines).
    own = getattr(iface.driver, "status_lines", None)
    if own is not None:
        lines += own(iface)
    if iface.mac is not None:
        lines.append(f"\taddress: {iface.mac_text()}")
    media = getattr(iface.driver, "media_lines", None)
    if media is not None:
        lines += media(iface)     # tap: no status line; vlan: no media at all
    elif iface.media or iface.kind == IFT_ETHER:
        lines.append(f"\tmedia: {iface.media or 'Ethernet autoselect'}")
        lines.append(f"\tstatus: {'active' if iface.link_up else 'no carrier'}")
    for ifa in iface.inet_addrs():
        if iface.flags & IFF_POINTOPOINT and ifa.dest is not None:
            line = f"\tinet {ifa.address} -> {ifa.dest} netmask 0x{ifa.netmask_int:08x}"
        else:
            line = f"\tinet {ifa.address} netmask 0x{ifa.netmask_int:08x}"
            if ifa.broadcast is not None:
                line += f" broadcast {ifa.broadcast}"
        lines.append(line)
    for ifa in iface.inet6_addrs():
        # NetBSD af_inet6.c in6_alias(): address[%IF], prefixlen, the IN6_IFF_* words, then
        # the scope id (the interface index) for link-local addresses only.
        words = "".join(f" {w}" for bit, w in IN6_FLAG_WORDS if ifa.flags6 & bit)
        # On a point-to-point link the destination follows, "::" when none is set.
        dest = f" -> {ifa.dest or '::'}" if iface.flags & IFF_POINTOPOINT else ""
        if ifa.address.is_link_local:
            line = (f"\tinet6 {ifa.address}%{iface.name}{dest} prefixlen {ifa.prefixlen}{words}"
                    f" scopeid 0x{iface.index:x}")
        else:
            line = f"\tinet6 {ifa.address}{dest} prefixlen {ifa.prefixlen}{words}"
        if lifetimes is not None:
            # NB4 af_inet6.c (Lflag): plain seconds (its sec2str is compiled to "%lu").
            pl, vl = lifetimes(ifa) or (None, None)
            line += f" pltime {'infty' if pl is None else pl} vltime {'infty' if vl is None else vl}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _bits(caps: int) -> str:
    """NetBSD's snprintb form: ``7ff80<TSO4,...>``; no ``<>`` when zero (``enabled=0``)."""
    names = cap_names(caps)
    return f"{caps:x}" + (f"<{names}>" if names else "")


def interface_stats(iface: Interface) -> str:
    """Counters and identity, one ``Name: value`` per line (nicinfo and netstat -i read it)."""
    rows = [
        ("name", iface.name),
        ("index", iface.index),
        ("description", iface.description or "-"),
        ("type", f"0x{iface.kind:x}"),
        ("flags", f"0x{iface.flags:x}"),
        ("mtu", iface.mtu),
        ("address", iface.mac_text() or "-"),
        ("link", "up" if iface.link_up else "down"),
        ("media", iface.media or "-"),
        ("capabilities", f"0x{iface.capabilities:x}"),
        ("enabled", f"0x{iface.enabled:x}"),
    ]
    rows += list(attrs.asdict(iface.stats).items())
    return "".join(f"{k}: {v}\n" for k, v in rows)


def stack_status(instance) -> str:
    """``P/dev/socket/status``: what is running and with which options."""
    cfg = instance.stack.config
    rows = [
        ("variant", cfg.variant.name),
        ("instance", cfg.instance),
        ("name", instance.name),
        ("pid", os.getpid()),
        ("prefix", instance.prefix),
        ("tcpip", instance.tcpip_text or "(none)"),
        ("inet6", "yes" if cfg.variant.inet6 else "no"),
        ("forward", int(cfg.forward)),
        ("fastforward", int(cfg.fastforward)),
        ("random", "os" if cfg.random else "pseudo"),
        ("threads_min", cfg.threads_min),
        ("threads_max", cfg.threads_max),
        ("threads_serving", instance.limiter.serving),
        ("threads_peak", instance.limiter.peak),
        # Requests parked waiting for data (holding no thread), now and at most.
        ("parked", instance.limiter.parked_now),
        ("parked_peak", instance.limiter.parked_peak),
        # Parked requests answered EINTR for a signalled opener.
        ("parked_signalled", getattr(instance.sockets, "signalled", 0)),
        # pyfuse3's workers (resmgr/fuseloop.py): alive, parked in reserve, waits on
        # /dev/fuse begun by the worker that had just answered, hand-overs to a parked
        # one (a request that waited, a worker that ended), and requests whose frames
        # were sent after their reply.
        ("fuse_workers", fuseloop.BATON.workers),
        ("fuse_standby", fuseloop.BATON.standby),
        ("fuse_waits_kept", fuseloop.BATON.kept),
        ("fuse_waits_passed", fuseloop.BATON.passed),
        ("fuse_sent_after_reply", fuseloop.BATON.sent_after_reply),
        ("somaxconn", cfg.somaxconn),
        ("mclbytes", cfg.mclbytes),
        ("pagesize", cfg.pagesize),
        ("interfaces", " ".join(instance.stack.interface_names())),
        ("cloners", " ".join(sorted(instance.stack.cloners))),
    ]
    for driver, _ in instance.runtime.drivers:
        opts = driver.options.text
        rows.append(("driver", f"{driver.name} {opts if opts is not None else '(null)'}"))
    return "".join(f"{k}: {v}\n" for k, v in rows)
