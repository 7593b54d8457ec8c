"""netstat, in NetBSD's formats (reference/qnx.md §4.2).

    netstat [-an]                 sockets ("Active Internet connections")
    netstat -r [-n]               routing tables
    netstat -i [-n]               interfaces and their counters
    netstat -s [-p proto]         protocol statistics: ip, icmp, tcp, udp, arp
    netstat -m                    packet-buffer (mbuf) statistics, from dev/socket/mbuf

Addresses are always numeric (the stack has no resolver), so -n changes nothing.
"""

import os

from .common import ToolError, parse_fields, read_text, require_stack, run

USAGE = """\
usage: netstat [-an]
       netstat -r [-n]
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


def _generic(s) -> list[str]:
    return [f"{v} {k}" for k, v in s.items()]


RENDER = {"ip": _ip, "icmp": _icmp, "udp": _udp, "arp": _arp}


def stats(sock: str, proto: str | None) -> str:
    available = sorted(os.listdir(os.path.join(sock, "stats")))
    order = [p for p in ("ip", "icmp", "tcp", "udp", "arp") if p in available]
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
    from .ifaddrs import inet_rows
    for _, name, s, block in sorted(entries):
        counts = f"{int(s['ipackets']):8d} {int(s['ierrors']):5d} {int(s['opackets']):8d} {int(s['oerrors']):5d} {int(s['collisions']):5d}"
        mac = s.get("address", "-")
        link = mac if mac != "-" else ""
        rows.append(f"{name:<5.5} {s['mtu']:<5.5} {'<Link>':<13.13} {link:<17.17} {counts}")
        for network, address in inet_rows(block):
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


def connections(sock: str, all_: bool) -> str:
    out = ["Active Internet connections" + (" (including servers)" if all_ else ""),
           f"{'Proto':<5.5} {'Recv-Q':<6.6} {'Send-Q':<6.6}  {'Local Address':<22.22} {'Foreign Address':<22.22} State"]
    for line in read_text(os.path.join(sock, "pcb")).splitlines():
        proto, recvq, sendq, local, remote, state = line.split()
        if not all_ and (remote == "*:*" or state == "LISTEN"):
            continue   # servers (and unconnected UDP) only with -a
        row = f"{proto:<5.5} {int(recvq):6d} {int(sendq):6d}  {_addr(local):<22.22} {_addr(remote):<22.22}"
        out.append(row + (f" {state}" if state != "-" else ""))
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    opts: set[str] = set()
    proto = None
    i = 0
    while i < len(argv):
        w = argv[i]
        if not w.startswith("-") or len(w) < 2:
            raise ToolError(USAGE)
        j = 1
        while j < len(w):
            c = w[j]
            if c == "p":
                proto = w[j + 1:] or (argv[i + 1] if i + 1 < len(argv) else None)
                if proto is None:
                    raise ToolError("netstat: option requires an argument -- p\n" + USAGE)
                if not w[j + 1:]:
                    i += 1
                break
            if c not in "anrisvfm":
                raise ToolError(f"netstat: illegal option -- {c}\n{USAGE}")
            opts.add(c)
            j += 1
        i += 1
    sock = require_stack("netstat")
    if "m" in opts:
        print(mbufs(sock), end="")
    elif "r" in opts:
        print("Routing tables\n\nInternet:")
        print(read_text(os.path.join(sock, "route")), end="")
    elif "i" in opts:
        print(interfaces(sock), end="")
    elif "s" in opts or proto:
        print(stats(sock, proto), end="")
    else:
        print(connections(sock, "a" in opts), end="")
    return 0


def entry() -> int:
    return run(main)
