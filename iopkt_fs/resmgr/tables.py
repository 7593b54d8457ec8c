"""The stack-wide tables as files: routes, ARP, protocol counters, sockets.

Reads give the text NetBSD's tools print (``netstat -rn``'s Internet table, ``arp -an``),
so a shell user and the tools see the same thing. Writes are verbs, one per line::

    route:  add DEST[/LEN] [gateway GW] [interface IF] [mtu N] [reject] [blackhole]
            delete DEST[/LEN] [gateway GW]
            get DEST                      (the answer is read back on the same open file)
            flush
    arp:    add ADDR MAC [interface IF]   (a permanent entry, arp -s)
            delete ADDR                   (arp -d)
            flush

DEST is an address or ``default``; without /LEN it is a host route.
"""

import errno
import ipaddress

from ..stack.errors import StackError
from ..stack.iface.route import FLAG_LETTERS

ROUTE_HEADER = (f"{'Destination':<18.18} {'Gateway':<18.18} {'Flags':<6.6} {'Refs':>6.6} "
                f"{'Use':>8.8} {'Mtu':>6.6}  Interface")


def _net_text(dest: str) -> str:
    """NetBSD netstat's netname(): trailing zero octets dropped, /LEN unless classful.

    10.0.0.0/24 -> 10/24, 10.9.0.0/16 -> 10.9/16, 192.168.1.0/24 -> 192.168.1, 127.0.0.0/8 -> 127.
    """
    if dest == "default" or "/" not in dest:
        return dest
    net = ipaddress.IPv4Network(dest)
    i = int(net.network_address)
    if i & 0xFFFFFF == 0:
        short = str(i >> 24)
    elif i & 0xFFFF == 0:
        short = f"{i >> 24}.{(i >> 16) & 0xFF}"
    elif i & 0xFF == 0:
        short = f"{i >> 24}.{(i >> 16) & 0xFF}.{(i >> 8) & 0xFF}"
    else:
        short = str(net.network_address)
    first = i >> 24
    natural = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else 32
    return short if net.prefixlen == natural else f"{short}/{net.prefixlen}"


def route_table(stack) -> str:
    lines = [ROUTE_HEADER]
    for r in stack.inet.route_show():
        mtu = r["mtu"] or "-"
        lines.append(f"{_net_text(r['destination']):<18.18} {r['gateway']:<18.18} {r['flags']:<6.6} "
                     f"{r['refs']:>6} {r['use']:>8} {mtu!s:>6.6}  {r['interface']}")
    return "\n".join(lines) + "\n"


def _flag_names(letters: str) -> str:
    names = {"U": "UP", "G": "GATEWAY", "H": "HOST", "R": "REJECT", "D": "DYNAMIC", "M": "MODIFIED",
             "d": "DONE", "m": "MASK_PRESENT", "C": "CLONING", "X": "XRESOLVE", "L": "LLINFO",
             "S": "STATIC", "1": "PROTO1", "2": "PROTO2", "B": "BLACKHOLE", "c": "CLONED"}
    order = [letter for _, letter in FLAG_LETTERS]
    return ",".join(names[c] for c in order if c in letters)


def _route_get(stack, dest: str) -> str:
    route = stack.inet.route_get(_address(dest))
    d = route.describe()
    gateway = d["gateway"] if not d["gateway"].startswith("link#") else None
    mask = ipaddress.IPv4Network((0, route.prefixlen)).netmask if route.prefixlen else "default"
    lines = [f"   route to: {dest}",
             f"destination: {'default' if route.prefixlen == 0 else ipaddress.IPv4Address(route.dest)}",
             f"       mask: {mask}"]
    if gateway:
        lines.append(f"    gateway: {gateway}")
    lines += [f"  interface: {d['interface']}", f"      flags: <{_flag_names(d['flags'])}>",
              f"        mtu: {route.mtu or route.iface.mtu}"]
    return "\n".join(lines) + "\n"


def _address(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise StackError(errno.EINVAL, f"bad address {text!r}") from None


def _destination(text: str) -> tuple[str, int]:
    if text == "default":
        return "0.0.0.0", 0
    addr, sep, plen = text.partition("/")
    if not sep:
        return _address(addr), 32
    try:
        return _address(addr), int(plen)
    except ValueError:
        raise StackError(errno.EINVAL, f"bad prefix length {plen!r}") from None


def _options(words: list[str], keyed: set[str], bare: set[str]) -> dict:
    out: dict = {}
    while words:
        w = words.pop(0)
        if w in bare:
            out[w] = True
        elif w in keyed:
            if not words:
                raise StackError(errno.EINVAL, f"'{w}' requires argument")
            out[w] = words.pop(0)
        else:
            raise StackError(errno.EINVAL, f"unknown route parameter {w!r}")
    return out


def route_ctl(stack, fields: list[str]) -> str | None:
    verb, args = fields[0], fields[1:]
    inet = stack.inet
    if verb == "flush" and not args:
        inet.route_flush()
        return None
    if verb == "get" and len(args) == 1:
        return _route_get(stack, args[0])
    if verb in ("add", "delete", "del") and args:
        dest, plen = _destination(args[0])
        if verb == "add":
            o = _options(args[1:], {"gateway", "interface", "mtu"}, {"reject", "blackhole"})
            try:
                mtu = int(o.get("mtu", 0))
            except ValueError:
                raise StackError(errno.EINVAL, f"bad mtu {o['mtu']!r}") from None
            if "gateway" in o:
                _address(o["gateway"])
            inet.route_add(dest, o.get("gateway"), iface=o.get("interface"), prefixlen=plen,
                           host=plen == 32, reject="reject" in o, blackhole="blackhole" in o, mtu=mtu)
        else:
            o = _options(args[1:], {"gateway"}, set())
            inet.route_delete(dest, o.get("gateway"), prefixlen=plen, host=plen == 32)
        return None
    raise StackError(errno.EINVAL, f"unknown route request {' '.join(fields)!r}")


def arp_table(stack) -> str:
    lines = []
    for e in stack.inet.arp_show():
        mac = e["mac"] or "(incomplete)"
        extra = " permanent" if e["permanent"] else ""
        lines.append(f"? ({e['address']}) at {mac} on {e['interface']}{extra}")
    return "".join(line + "\n" for line in lines)


def arp_ctl(stack, fields: list[str]) -> None:
    verb, args = fields[0], fields[1:]
    inet = stack.inet
    if verb == "flush" and not args:
        inet.arp_flush()
    elif verb == "add" and len(args) in (2, 4) and (len(args) == 2 or args[2] == "interface"):
        inet.arp_add(_address(args[0]), args[1], iface=args[3] if len(args) == 4 else None)
    elif verb in ("delete", "del") and len(args) == 1:
        inet.arp_delete(_address(args[0]))
    else:
        raise StackError(errno.EINVAL, f"unknown arp request {' '.join(fields)!r}")


def counters(snapshot: dict) -> str:
    """``Name: value`` lines; histograms (ICMP in/out by type) as ``name.N: value``."""
    out = []
    for key, value in snapshot.items():
        if isinstance(value, list):
            out += [f"{key}.{i}: {v}" for i, v in enumerate(value) if v]
        else:
            out.append(f"{key}: {value}")
    return "".join(line + "\n" for line in out)


def protocol_stats(stack) -> dict:
    """The protocols whose counters are served under ``stats/``, name -> renderer."""
    inet = stack.inet
    tables = {
        "ip": lambda: counters(inet.stats.snapshot()),
        "icmp": lambda: counters(inet.icmp.stats.snapshot()),
        "udp": lambda: counters(inet.udp.stats.snapshot()),
        "arp": lambda: counters(_fields(inet.arp.stats)),
    }
    tcp = getattr(stack, "tcp", None)
    if tcp is not None:
        tables["tcp"] = tcp.stats.render     # tcps_NAME: value, NetBSD's names
    return tables


def _fields(obj) -> dict:
    import attrs
    if attrs.has(type(obj)):
        return attrs.asdict(obj)
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _ep(ip: bytes, port: int) -> str:
    import socket as pysocket
    return f"{pysocket.inet_ntoa(ip) if len(ip) == 4 else pysocket.inet_ntop(pysocket.AF_INET6, ip)}:{port}"


def sockets(stack) -> str:
    """Every socket, one per line: proto recv-q send-q local remote state (netstat -a)."""
    lines = []
    tcp = getattr(stack, "tcp", None)
    if tcp is not None:
        for (ip, port), _ in sorted(tcp.listeners.items(), key=lambda kv: kv[0][1]):
            lines.append(f"tcp 0 0 {_ep(ip, port)} *:* LISTEN")
        for c in list(tcp.connections.values()):
            # netstat names states with underscores (TIME_WAIT), RFC 9293 with hyphens.
            state = str(c.state).replace("-", "_")
            lines.append(f"tcp {len(c.rcv_buf)} {len(c.snd_buf)} {_ep(c.local_ip, c.local_port)} "
                         f"{_ep(c.remote_ip, c.remote_port)} {state}")
    for s in list(stack.inet.udp.sockets):
        if not s.bound:
            continue
        laddr, lport = s.local
        remote = s.remote
        lines.append(f"udp {s.rx_bytes} 0 {laddr}:{lport} "
                     f"{f'{remote[0]}:{remote[1]}' if remote else '*:*'} -")
    return "".join(line + "\n" for line in lines)
