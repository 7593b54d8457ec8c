"""netstat, in NetBSD's formats (reference/qnx.md §4.2).

    netstat [-an] [-f inet|inet6] sockets ("Active Internet connections", then Internet6)
    netstat -r [-n] [-f inet|inet6]  routing tables (Internet6 on io-pkt-v6-hc)
    netstat -i [-n]               interfaces and their counters (inet and inet6 address rows)
    netstat -s [-p proto] [-f F]  protocol statistics: ip, icmp, tcp, udp, arp (ip6, icmp6 on v6-hc)
    netstat -m                    packet-buffer (mbuf) statistics, from dev/socket/mbuf

Addresses are always numeric (the stack has no resolver), so -n changes nothing.
"""

import os

from .common import ToolError, parse_fields, read_text, require_stack, run

USAGE = """\
usage: netstat [-an] [-f address_family]
       netstat -r [-n] [-f address_family]
       netstat -i [-n]
       netstat -s [-p protocol]
       netstat -m"""


def _pl(n: int, word: str = "s") -> str:
    return "" if n == 1 else word


def _counts(sock: str, proto: str) -> dict[str, int]:
    path = os.path.join(sock, "stats", proto)
    if not os.path.exists(path):
        raise ToolError(f"netstat: {proto}: unknown or uninstrumented protocol")
    return {k: int(v) for k, v in parse_fields(read_text(path)).items()}


def _ip(s) -> list[str]:
    g = lambda k: s.get(k, 0)  # noqa: E731
    return [
        f"{g('total')} total packet{_pl(g('total'))} received",
        f"{g('badsum')} bad header checksum{_pl(g('badsum'))}",
        f"{g('toosmall')} with size smaller than minimum",
        f"{g('tooshort')} with data size < data length",
        f"{g('toolong')} with length > max ip packet size",
        f"{g('badhlen')} with header length < data size",
        f"{g('badlen')} with data length < header length",
        f"{g('badoptions')} with bad options",
        f"{g('badvers')} with incorrect version number",
        f"{g('fragments')} fragment{_pl(g('fragments'))} received",
        f"{g('fragdropped')} fragment{_pl(g('fragdropped'))} dropped (dup or out of space)",
        f"{g('rcvmemdrop')} fragment{_pl(g('rcvmemdrop'))} dropped (out of ipqent)",
        f"{g('badfrags')} malformed fragment{_pl(g('badfrags'))} dropped",
        f"{g('fragtimeout')} fragment{_pl(g('fragtimeout'))} dropped after timeout",
        f"{g('reassembled')} packet{_pl(g('reassembled'))} reassembled ok",
        f"{g('delivered')} packet{_pl(g('delivered'))} for this host",
        f"{g('noproto')} packet{_pl(g('noproto'))} for unknown/unsupported protocol",
        f"{g('forward')} packet{_pl(g('forward'))} forwarded ({g('fastforward')} packet{_pl(g('fastforward'))} fast forwarded)",
        f"{g('cantforward')} packet{_pl(g('cantforward'))} not forwardable",
        f"{g('redirectsent')} redirect{_pl(g('redirectsent'))} sent",
        f"{g('localout')} packet{_pl(g('localout'))} sent from this host",
        f"{g('rawout')} packet{_pl(g('rawout'))} sent with fabricated ip header",
        f"{g('odropped')} output packet{_pl(g('odropped'))} dropped due to no bufs, etc.",
        f"{g('noroute')} output packet{_pl(g('noroute'))} discarded due to no route",
        f"{g('fragmented')} output datagram{_pl(g('fragmented'))} fragmented",
        f"{g('ofragments')} fragment{_pl(g('ofragments'))} created",
        f"{g('cantfrag')} datagram{_pl(g('cantfrag'))} that can't be fragmented",
        f"{g('badaddr')} datagram{_pl(g('badaddr'))} with bad address in header",
    ]


ICMP_NAMES = ["echo reply", "#1", "#2", "destination unreachable", "source quench", "routing redirect",
              "alternate host address", "#7", "echo", "router advertisement", "router solicitation",
              "time exceeded", "parameter problem", "time stamp", "time stamp reply",
              "information request", "information request reply", "address mask request",
              "address mask reply"]


def _histogram(s, prefix: str, title: str) -> list[str]:
    rows = sorted((int(k.split(".")[1]), v) for k, v in s.items() if k.startswith(prefix + ".") and v)
    if not rows:
        return []
    out = [title]
    for t, v in rows:
        name = ICMP_NAMES[t] if t < len(ICMP_NAMES) else f"#{t}"
        out.append(f"\t{name}: {v}")
    return out


def _icmp(s) -> list[str]:
    g = lambda k: s.get(k, 0)  # noqa: E731
    out = [f"{g('error')} call{_pl(g('error'))} to icmp_error",
           f"{g('oldicmp')} error{_pl(g('oldicmp'))} not generated because old message was icmp"]
    out += _histogram(s, "outhist", "Output histogram:")
    out += [f"{g('badcode')} message{_pl(g('badcode'))} with bad code fields",
            f"{g('tooshort')} message{_pl(g('tooshort'))} < minimum length",
            f"{g('checksum')} bad checksum{_pl(g('checksum'))}",
            f"{g('badlen')} message{_pl(g('badlen'))} with bad length"]
    out += _histogram(s, "inhist", "Input histogram:")
    out += [f"{g('reflect')} message response{_pl(g('reflect'))} generated",
            f"{g('bmcastecho')} broadcast/multicast echo request{_pl(g('bmcastecho'))} ignored",
            f"{g('pmtuchg')} path MTU change{_pl(g('pmtuchg'))}"]
    return out


def _udp(s) -> list[str]:
    g = lambda k: s.get(k, 0)  # noqa: E731
    delivered = g("ipackets") - g("hdrops") - g("badlen") - g("badsum") - g("noport") - g("noportbcast") - g("fullsock")
    return [f"{g('ipackets')} datagram{_pl(g('ipackets'))} received",
            f"{g('hdrops')} with incomplete header",
            f"{g('badlen')} with bad data length field",
            f"{g('badsum')} with bad checksum",
            f"{g('noport')} dropped due to no socket",
            f"{g('noportbcast')} broadcast/multicast datagram{_pl(g('noportbcast'))} dropped due to no socket",
            f"{g('fullsock')} dropped due to full socket buffers",
            f"{max(delivered, 0)} delivered",
            f"{g('opackets')} datagram{_pl(g('opackets'))} output"]


def _arp(s) -> list[str]:
    g = lambda k: s.get(k, 0)  # noqa: E731
    return [f"{g('sndtotal')} packet{_pl(g('sndtotal'))} sent",
            f"\t{g('sndreply')} reply packet{_pl(g('sndreply'))}",
            f"\t{g('sndrequest')} request packet{_pl(g('sndrequest'))}",
            f"{g('rcvtotal')} packet{_pl(g('rcvtotal'))} received",
            f"\t{g('rcvreply')} reply packet{_pl(g('rcvreply'))}",
            f"\t{g('rcvrequest')} valid request packet{_pl(g('rcvrequest'))}",
            f"\t{g('rcvmcast') + g('rcvbcast')} broadcast/multicast packet{_pl(g('rcvmcast') + g('rcvbcast'))}",
            f"\t{g('rcvbadproto')} packet{_pl(g('rcvbadproto'))} with unknown protocol type",
            f"\t{g('rcvbadlen')} packet{_pl(g('rcvbadlen'))} with bad (short) length",
            f"\t{g('rcvzerotpa')} packet{_pl(g('rcvzerotpa'))} with null target IP address",
            f"\t{g('rcvzerospa')} packet{_pl(g('rcvzerospa'))} with null source IP address",
            f"\t{g('rcvnoint')} could not be mapped to an interface",
            f"\t{g('rcvlocalsha')} packet{_pl(g('rcvlocalsha'))} sourced from a local hardware address",
            f"\t{g('rcvbcastsha')} packet{_pl(g('rcvbcastsha'))} with a broadcast source hardware address",
            f"\t{g('rcvlocalspa')} duplicate{_pl(g('rcvlocalspa'))} for a local IP address",
            f"\t{g('rcvoverperm')} attempt{_pl(g('rcvoverperm'))} to overwrite a static entry",
            f"\t{g('timeouts')} entr{'y' if g('timeouts') == 1 else 'ies'} timed out",
            f"\t{g('dfrtotal')} packet{_pl(g('dfrtotal'))} deferred pending ARP resolution",
            f"\t\t{g('dfrsent')} sent",
            f"\t\t{g('dfrdropped')} dropped"]


def _ip6(s) -> list[str]:
    """NetBSD netstat inet6.c ip6_stats(), for the counters the IPv6 layer keeps."""
    g = lambda k: s.get(k, 0)  # noqa: E731
    return [
        f"{g('total')} total packet{_pl(g('total'))} received",
        f"{g('toosmall')} with size smaller than minimum",
        f"{g('tooshort')} with data size < data length",
        f"{g('badoptions')} with bad options",
        f"{g('badvers')} with incorrect version number",
        f"{g('fragments')} fragment{_pl(g('fragments'))} received",
        f"{g('fragdropped')} fragment{_pl(g('fragdropped'))} dropped (dup or out of space)",
        f"{g('fragtimeout')} fragment{_pl(g('fragtimeout'))} dropped after timeout",
        f"{g('fragoverflow')} fragment{_pl(g('fragoverflow'))} that exceeded limit",
        f"{g('reassembled')} packet{_pl(g('reassembled'))} reassembled ok",
        f"{g('atomicfrags')} atomic fragment{_pl(g('atomicfrags'))} processed alone",
        f"{g('delivered')} packet{_pl(g('delivered'))} for this host",
        f"{g('forward')} packet{_pl(g('forward'))} forwarded",
        f"{g('cantforward')} packet{_pl(g('cantforward'))} not forwardable",
        f"{g('localout')} packet{_pl(g('localout'))} sent from this host",
        f"{g('odropped')} output packet{_pl(g('odropped'))} dropped due to no bufs, etc.",
        f"{g('noroute')} output packet{_pl(g('noroute'))} discarded due to no route",
        f"{g('fragmented')} output datagram{_pl(g('fragmented'))} fragmented",
        f"{g('ofragments')} fragment{_pl(g('ofragments'))} created",
        f"{g('cantfrag')} datagram{_pl(g('cantfrag'))} that can't be fragmented",
        f"{g('toomanyhdr')} packet{_pl(g('toomanyhdr'))} discarded due to too many headers",
        f"{g('badscope')} packet{_pl(g('badscope'))} that violated scope rules",
        f"{g('notmember')} multicast packet{_pl(g('notmember'))} which we don't join",
        f"{g('noproto')} packet{_pl(g('noproto'))} for unknown/unsupported protocol",
    ]


ICMP6_NAMES = {1: "unreach", 2: "packet too big", 3: "time exceed", 4: "parameter problem",
               128: "echo", 129: "echo reply", 130: "multicast listener query",
               131: "multicast listener report", 132: "multicast listener done", 133: "router solicitation",
               134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement",
               137: "redirect", 143: "MLDv2 listener report"}


def _histogram6(s, prefix: str, title: str) -> list[str]:
    rows = sorted((int(k.split(".")[1]), v) for k, v in s.items() if k.startswith(prefix + ".") and v)
    if not rows:
        return []
    return [title] + [f"\t\t{ICMP6_NAMES.get(t, f'#{t}')}: {v}" for t, v in rows]


def _icmp6(s) -> list[str]:
    """NetBSD netstat inet6.c icmp6_stats(), for the counters ICMPv6 keeps."""
    g = lambda k: s.get(k, 0)  # noqa: E731
    out = [f"{g('error')} call{_pl(g('error'))} to icmp6_error",
           f"{g('canterror')} error{_pl(g('canterror'))} not generated because old message was icmp6 or so",
           f"{g('toofreq')} error{_pl(g('toofreq'))} not generated because of rate limitation"]
    out += _histogram6(s, "outhist", "Output histogram:")
    out += [f"{g('badcode')} message{_pl(g('badcode'))} with bad code fields",
            f"{g('tooshort')} message{_pl(g('tooshort'))} < minimum length",
            f"{g('checksum')} bad checksum{_pl(g('checksum'))}",
            f"{g('badlen')} message{_pl(g('badlen'))} with bad length"]
    out += _histogram6(s, "inhist", "Input histogram:")
    out += [f"{g('reflect')} message response{_pl(g('reflect'))} generated",
            f"{g('badns')} bad neighbor solicitation message{_pl(g('badns'))}",
            f"{g('badna')} bad neighbor advertisement message{_pl(g('badna'))}",
            f"{g('dupaddr')} duplicate address{_pl(g('dupaddr'), 'es')} detected"]
    return out


def _generic(s) -> list[str]:
    return [f"{v} {k}" for k, v in s.items()]


RENDER = {"ip": _ip, "icmp": _icmp, "udp": _udp, "arp": _arp, "ip6": _ip6, "icmp6": _icmp6}


def stats(sock: str, proto: str | None, family: str | None = None) -> str:
    available = sorted(os.listdir(os.path.join(sock, "stats")))
    # NetBSD: the inet protocols, then (INET6) ip6 and icmp6.
    wanted = {None: ("ip", "icmp", "tcp", "udp", "arp", "ip6", "icmp6"), "inet": ("ip", "icmp", "tcp", "udp", "arp"),
              "inet6": ("ip6", "icmp6")}[family]
    order = [p for p in wanted if p in available]
    protos = [proto] if proto else order
    out = []
    for p in protos:
        s = _counts(sock, p)
        if p == "tcp":
            # NetBSD's wording, rendered by the TCP core from its own counters rebuilt
            # from the tcps_NAME lines of stats/tcp.
            from ..stack.tcp.stats import TcpStats, render_netstat  # noqa: PLC0415
            out.append(render_netstat(TcpStats.from_dict(s)).rstrip("\n"))
            continue
        out.append(f"{p}:")
        out += [f"\t{line}" for line in RENDER.get(p, _generic)(s)]
    return "\n".join(out) + "\n"


def mbufs(sock: str) -> str:
    """``netstat -m``: NetBSD's mbuf report (qnx.md §4.2) from the stack's pool figures."""
    from ..stack.mbuf import render_netstat  # noqa: PLC0415
    path = os.path.join(sock, "mbuf")
    return render_netstat({k: int(v) for k, v in parse_fields(read_text(path)).items()})


def interfaces(sock: str) -> str:
    head = f"{'Name':<5.5} {'Mtu':<5.5} {'Network':<13.13} {'Address':<17.17} {'Ipkts':>8.8} {'Ierrs':>5.5} {'Opkts':>8.8} {'Oerrs':>5.5} {'Colls':>5.5}"
    rows = [head]
    names = os.listdir(os.path.join(sock, "if"))
    entries = []
    for name in names:
        try:
            s = parse_fields(read_text(os.path.join(sock, "if", name, "stats")))
            block = read_text(os.path.join(sock, "if", name, "status"))
        except OSError:
            continue
        entries.append((int(s.get("index", 0)), name, s, block))
    from .ifaddrs import inet6_rows, inet_rows
    for _, name, s, block in sorted(entries):
        counts = f"{int(s['ipackets']):8d} {int(s['ierrors']):5d} {int(s['opackets']):8d} {int(s['oerrors']):5d} {int(s['collisions']):5d}"
        mac = s.get("address", "-")
        link = mac if mac != "-" else ""
        rows.append(f"{name:<5.5} {s['mtu']:<5.5} {'<Link>':<13.13} {link:<17.17} {counts}")
        for network, address in inet_rows(block) + inet6_rows(block):
            rows.append(f"{name:<5.5} {s['mtu']:<5.5} {network:<13.13} {address:<17.17} {counts}")
    return "\n".join(rows) + "\n"


def _addr(text: str) -> str:
    """ADDR:PORT -> netstat's ADDR.PORT, with * for the wildcard."""
    if text == "*:*":
        return "*.*"
    host, _, port = text.rpartition(":")
    host = "*" if host in ("0.0.0.0", "::", "*") else host
    port = "*" if port in ("0", "*") else port
    return f"{host}.{port}"


def _is6(endpoint: str) -> bool:
    return endpoint.count(":") > 1


def connections(sock: str, all_: bool, family: str | None = None) -> str:
    """``netstat [-a]``: the Internet section, then (v6-hc) the Internet6 one, whose rows
    are ``tcp6``/``udp6`` (NetBSD inet6.c); ``-f inet``/``-f inet6`` picks one."""
    head = f"{'Proto':<5.5} {'Recv-Q':<6.6} {'Send-Q':<6.6}  {'Local Address':<22.22} {'Foreign Address':<22.22} State"
    sections: dict[str, list[str]] = {"inet": [], "inet6": []}
    for line in read_text(os.path.join(sock, "pcb")).splitlines():
        proto, recvq, sendq, local, remote, state = line.split()
        if not all_ and (remote == "*:*" or state == "LISTEN"):
            continue   # servers (and unconnected UDP) only with -a
        v6 = _is6(local) or _is6(remote)
        name = proto + "6" if v6 else proto
        row = f"{name:<5.5} {int(recvq):6d} {int(sendq):6d}  {_addr(local):<22.22} {_addr(remote):<22.22}"
        sections["inet6" if v6 else "inet"].append(row + (f" {state}" if state != "-" else ""))
    out = []
    v6 = os.path.exists(os.path.join(sock, "24"))
    for name, title in (("inet", "Internet"), ("inet6", "Internet6")):
        if family not in (None, name) or (name == "inet6" and not v6):
            continue
        if out:
            out.append("")
        out += [f"Active {title} connections" + (" (including servers)" if all_ else ""), head, *sections[name]]
    return "\n".join(out) + "\n"


def routes(sock: str, family: str | None) -> str:
    out = ["Routing tables"]
    if family in (None, "inet"):
        out += ["", "Internet:", read_text(os.path.join(sock, "route")).rstrip("\n")]
    if family in (None, "inet6") and os.path.exists(os.path.join(sock, "route6")):
        out += ["", "Internet6:", read_text(os.path.join(sock, "route6")).rstrip("\n")]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    opts: set[str] = set()
    proto = None
    family = None
    i = 0
    while i < len(argv):
        w = argv[i]
        if not w.startswith("-") or len(w) < 2:
            raise ToolError(USAGE)
        j = 1
        while j < len(w):
            c = w[j]
            if c in "pf":
                value = w[j + 1:] or (argv[i + 1] if i + 1 < len(argv) else None)
                if value is None:
                    raise ToolError(f"netstat: option requires an argument -- {c}\n" + USAGE)
                if c == "p":
                    proto = value
                else:
                    family = value
                if not w[j + 1:]:
                    i += 1
                break
            if c not in "anrisvm":
                raise ToolError(f"netstat: illegal option -- {c}\n{USAGE}")
            opts.add(c)
            j += 1
        i += 1
    if family not in (None, "inet", "inet6"):
        raise ToolError(f"netstat: {family}: unknown address family")
    sock = require_stack("netstat")
    if "m" in opts:
        print(mbufs(sock), end="")
    elif "r" in opts:
        print(routes(sock, family), end="")
    elif "i" in opts:
        print(interfaces(sock), end="")
    elif "s" in opts or proto:
        print(stats(sock, proto, family), end="")
    else:
        print(connections(sock, "a" in opts, family), end="")
    return 0


def entry() -> int:
    return run(main)
