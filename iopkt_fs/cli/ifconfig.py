"""ifconfig, in the NetBSD-4 form io-pkt ships (reference/qnx.md §4.1).

    ifconfig [-a] [-l [-u|-d]] [-C] [-v]
    ifconfig [-L] IF [inet|inet6] [ADDR[/LEN]] [netmask M] [broadcast B] [prefixlen N]
                [alias|-alias|delete] [up|down] [mtu N] [metric N] [debug|-debug] ...
                [[-]anycast] [[-]tentative] [[-]deprecated] [pltime N] [vltime N] [eui64]
                                                                          (inet6, SIOCAIFADDR_IN6)
                [[-]tso4] [[-]tso6] [[-]tcp4csum[-rx|-tx]] ...   (offloads, SIOCSIFCAP)
    ifconfig IF create | destroy
    ifconfig vlanN vlan TAG vlanif PARENT | -vlanif                (vlan(4), SIOCSETVLAN)
    ifconfig IF [inet] tunnel SRC DST | deletetunnel          (gre, gif)

Errors print as ifconfig does (``ifconfig: SIOCGIFFLAGS xx0: No such device or address``)
and exit 1.
"""

import errno
import ipaddress
import os
import sys

from .common import ToolError, parse_fields, read_text, require_stack, run, write_ctl
from .ifaddrs import inet6_rows

USAGE = """\
usage: ifconfig [-v] interface [address_family] [address [dest_address]] [parameters]
       ifconfig interface create | destroy
       ifconfig vlanN vlan tag vlanif parent | -vlanif
       ifconfig -a [-duv] [address_family]
       ifconfig -l [-du]
       ifconfig -C"""

_FLAG_WORDS = {"up", "down", "debug", "-debug", "promisc", "-promisc", "arp", "-arp",
               "link0", "-link0", "link1", "-link1", "link2", "-link2"}
# NetBSD's capability words (resmgr/verbs.py CAP_WORDS gives their bits; the tool only
# recognises them, so it need not import the stack), each also with a leading '-'.
_CAP_WORDS = {"tso4", "tso6"} | {f"{proto}csum{way}" for proto in ("ip4", "tcp4", "udp4", "tcp6", "udp6")
                                  for way in ("", "-rx", "-tx")}
_WITH_ARG = {"netmask", "broadcast", "mtu", "metric", "prefixlen", "dest", "pltime", "vltime"}
# inet6 address flags (ifra_flags), each also with a leading '-'.
_IN6_WORDS = {"anycast", "tentative", "deprecated"}


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _if_dir(sock: str, name: str) -> str:
    return os.path.join(sock, "if", name)


def _status(sock: str, name: str) -> str:
    try:
        return read_text(os.path.join(_if_dir(sock, name), "status"))
    except OSError as exc:
        code = errno.ENXIO if exc.errno in (errno.ENOENT, errno.ENXIO) else exc.errno
        raise ToolError(f"ifconfig: SIOCGIFFLAGS {name}: {os.strerror(code)}") from None


def _flags(block: str) -> int:
    head = block.split("\n", 1)[0]
    token = head.split("flags=", 1)[1].split("<", 1)[0].split(" ", 1)[0]
    return int(token, 16)


def _verbose_lines(sock: str, name: str) -> str:
    s = parse_fields(read_text(os.path.join(_if_dir(sock, name), "stats")))
    n = lambda k: int(s.get(k, 0))  # noqa: E731
    line = f"\tinput: {n('ipackets')} packets, {n('ibytes')} bytes"
    for key, label in (("imcasts", "multicasts"), ("ierrors", "errors"), ("iqdrops", "queue drops"),
                       ("noproto", "unknown protocol")):
        if n(key):
            line += f", {n(key)} {label}"
    line += f"\n\toutput: {n('opackets')} packets, {n('obytes')} bytes"
    for key, label in (("omcasts", "multicasts"), ("oerrors", "errors"), ("collisions", "collisions")):
        if n(key):
            line += f", {n(key)} {label}"
    return line + "\n"


def _show(sock: str, name: str, verbose: bool, family: str | None = None, lifetimes: bool = False) -> str:
    block = _status(sock, name)
    if lifetimes:
        # -L: inet6 lines with pltime/vltime (the stack renders them at the moment of reading).
        try:
            block = read_text(os.path.join(_if_dir(sock, name), "lstatus"))
        except OSError:
            pass
    lines = block.splitlines()
    head, rest = lines[0], lines[1:]
    if family is not None:
        rest = [l for l in rest if not l.lstrip().startswith(("inet ", "inet6 ")) or l.lstrip().startswith(family + " ")]
    addr_at = next((i for i, l in enumerate(rest) if l.lstrip().startswith(("inet ", "inet6 "))), len(rest))
    out = head + "\n" + "".join(l + "\n" for l in rest[:addr_at])
    if verbose:
        out += _verbose_lines(sock, name)
    out += "".join(l + "\n" for l in rest[addr_at:])
    return out


def _names(sock: str) -> list[str]:
    try:
        entries = os.listdir(os.path.join(sock, "if"))
    except OSError as exc:
        raise ToolError(f"ifconfig: {_strerror(exc)}") from None
    # Attach order: the status file's index, so lo0 comes first as on QNX.
    def index(name):
        try:
            return int(parse_fields(read_text(os.path.join(sock, "if", name, "stats"))).get("index", 0))
        except (OSError, ValueError):
            return 1 << 30
    return sorted(entries, key=index)


def _ctl(sock: str, name: str, line: str, ioctl: str) -> None:
    try:
        write_ctl(os.path.join(_if_dir(sock, name), "ctl"), line)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ToolError(f"ifconfig: SIOCGIFFLAGS {name}: {os.strerror(errno.ENXIO)}") from None
        raise ToolError(f"ifconfig: {ioctl}: {_strerror(exc)}") from None


def main(argv: list[str]) -> int:
    sock = require_stack("ifconfig")
    opts = set()
    while argv and argv[0].startswith("-") and len(argv[0]) > 1 and argv[0] not in _FLAG_WORDS \
            and argv[0] not in ("-alias",):
        for c in argv.pop(0)[1:]:
            if c not in "aludCvbsmhLz":
                raise ToolError(f"ifconfig: unknown option -- {c}\n{USAGE}")
            opts.add(c)
    verbose = "v" in opts
    if "C" in opts:
        print(" ".join(_cloners(sock)))
        return 0
    if "l" in opts:
        names = _names(sock)
        if "u" in opts or "d" in opts:
            up = {n: bool(_flags(_status(sock, n)) & 1) for n in names}
            names = [n for n in names if ("u" in opts and up[n]) or ("d" in opts and not up[n])]
        print(" ".join(names))
        return 0
    if not argv or "a" in opts:
        family = argv[0] if argv and argv[0] in ("inet", "inet6") else None
        out = []
        for name in _names(sock):
            try:
                if "u" in opts or "d" in opts:
                    is_up = bool(_flags(_status(sock, name)) & 1)
                    if ("u" in opts and not is_up) or ("d" in opts and is_up):
                        continue
                out.append(_show(sock, name, verbose, family, "L" in opts))
            except ToolError:
                continue  # destroyed while we listed
        print("".join(out), end="")
        return 0
    name, args = argv[0], argv[1:]
    if args in (["create"], ["destroy"]):
        ioctl = "SIOCIFCREATE" if args[0] == "create" else "SIOCIFDESTROY"
        try:
            write_ctl(os.path.join(sock, "ctl"), f"{args[0]} {name}")
        except OSError as exc:
            raise ToolError(f"ifconfig: {ioctl}: {_strerror(exc)}") from None
        return 0
    _status(sock, name)   # SIOCGIFFLAGS first: unknown interfaces fail here
    real = _status(sock, name).split(":", 1)[0]   # enX names resolve to the real one
    if not args:
        print(_show(sock, real, verbose, lifetimes="L" in opts), end="")
        return 0
    return _configure(sock, real, args, verbose)


def _cloners(sock: str) -> list[str]:
    status = parse_fields(read_text(os.path.join(sock, "status")))
    return status.get("cloners", "lo").split()


def _configure(sock: str, name: str, args: list[str], verbose: bool) -> int:
    family = None
    if args and args[0] in ("inet", "inet6"):
        family = args.pop(0)
    address = None
    params: dict[str, str] = {}
    mode = None
    flag_words = []
    cap_words = []
    in6_words = []
    vlan: dict[str, str] = {}
    tunnel = None
    while args:
        word = args.pop(0)
        if word in _VLAN_WORDS:
            vlan_word(name, word, args, vlan)
        elif word == "tunnel":
            if len(args) < 2:
                raise ToolError("ifconfig: 'tunnel' requires 2 arguments")
            tunnel = (args.pop(0), args.pop(0))
        elif word == "deletetunnel":
            tunnel = ()
        elif word in _WITH_ARG:
            if not args:
                raise ToolError(f"ifconfig: '{word}' requires argument")
            params[word] = args.pop(0)
        elif word in ("alias", "-alias", "delete", "remove"):
            if mode is not None:
                raise ToolError("ifconfig: Only one use of alias, -alias or delete is valid.")
            mode = "-alias" if word in ("delete", "remove") else word
        elif word in _FLAG_WORDS:
            flag_words.append(word)
        elif word.removeprefix("-") in _IN6_WORDS:
            in6_words.append(word)
        elif word == "eui64":
            params["eui64"] = ""
        elif word.removeprefix("-") in _CAP_WORDS:
            cap_words.append(word)
        elif address is None and not word.startswith("-"):
            address = word
        elif address is not None and "dest" not in params and not word.startswith("-"):
            params["dest"] = word   # ifconfig IF ADDR DEST (point-to-point)
        else:
            raise ToolError(f"ifconfig: {word}: bad value\n{USAGE}")
    if vlan:
        # NB4 vlan.c: both words or neither; the ioctl is SIOCSETVLAN.
        if "-vlanif" in vlan:
            _ctl(sock, name, "-vlanif", "SIOCSETVLAN")
        elif "vlanif" in vlan and "vlan" not in vlan:
            raise ToolError("ifconfig: must specify both ``vlan'' and ``vlanif''")
        elif "vlanif" in vlan:
            _ctl(sock, name, f"vlan {vlan['vlan']} vlanif {vlan['vlanif']}", "SIOCSETVLAN")
        else:
            _ctl(sock, name, f"vlan {vlan['vlan']}", "SIOCSETVLAN")
    if tunnel is not None:
        _tunnel(sock, name, tunnel)
    if family == "inet6" and address is not None and "netmask" in params:
        raise ToolError("ifconfig: use prefixlen with inet6")
    inet6 = _inet6_request(sock, family, address)
    in6_only = in6_words + [k for k in ("pltime", "vltime", "eui64") if k in params]
    if in6_only and not inet6:
        raise ToolError(f"ifconfig: {in6_only[0]}: bad value\n{USAGE}")
    if "eui64" in params and address is not None:
        address = _eui64(sock, name, address)
    if address is not None:
        if mode == "-alias":
            _ctl(sock, name, f"del {address}", "SIOCDIFADDR_IN6" if inet6 else "SIOCDIFADDR")
        else:
            # KAME: an inet6 address is always added (SIOCAIFADDR_IN6); there is no
            # primary one to replace, least of all the link-local address.
            line = f"{'add' if mode == 'alias' or inet6 else 'set'} {address}"
            for key in ("netmask", "prefixlen", "broadcast", "dest", "pltime", "vltime"):
                if key in params:
                    line += f" {key} {params[key]}"
            line += "".join(f" {w}" for w in in6_words)
            _ctl(sock, name, line, "SIOCAIFADDR_IN6" if inet6 else "SIOCAIFADDR")
    elif mode is not None or in6_only or any(k in params for k in ("netmask", "broadcast", "prefixlen")):
        raise ToolError(f"ifconfig: an address is required\n{USAGE}")
    if "mtu" in params:
        _ctl(sock, name, f"mtu {params['mtu']}", "SIOCSIFMTU")
    if "metric" in params:
        _ctl(sock, name, f"metric {params['metric']}", "SIOCSIFMETRIC")
    for word in flag_words:
        _ctl(sock, name, word, "SIOCSIFFLAGS")
    if cap_words:
        _ctl(sock, name, " ".join(cap_words), "SIOCSIFCAP")   # one SIOCSIFCAP, as NetBSD
    return 0


def _eui64(sock: str, name: str, address: str) -> str:
    """NetBSD ifconfig's ``eui64`` (setia6eui64): the address's interface identifier, its
    low 64 bits, which must be zero, is filled from the interface's link-local address."""
    host, slash, plen = address.partition("/")
    try:
        addr = ipaddress.IPv6Address(host)
    except ValueError:
        raise ToolError(f"ifconfig: {host}: bad value") from None
    if int(addr) & (1 << 64) - 1:
        raise ToolError("ifconfig: interface index is already filled")
    link_local = next((ipaddress.IPv6Address(a.partition("%")[0]) for _, a in inet6_rows(_status(sock, name))
                       if ipaddress.IPv6Address(a.partition("%")[0]).is_link_local), None)
    if link_local is None:
        raise ToolError("ifconfig: could not determine link local address")
    filled = ipaddress.IPv6Address(int(addr) | int(link_local) & (1 << 64) - 1)
    return f"{filled}{slash}{plen}"


def _inet6_request(sock: str, family: str | None, address: str | None) -> bool:
    """Is this an inet6 request? Without IPv6 (no node 24: v4 and v4-hc) ifconfig's
    socket(AF_INET6) fails, as on a QNX stack built without INET6."""
    inet6 = family == "inet6" or (address is not None and ":" in address)
    if inet6 and not os.path.exists(os.path.join(sock, "24")):
        raise ToolError("ifconfig: socket: Address family not supported by protocol family")
    return inet6


_VLAN_WORDS = {"vlan", "vlanif", "-vlanif"}


def vlan_word(name: str, word: str, args: list[str], vlan: dict[str, str]) -> None:
    """``vlan TAG``, ``vlanif IF``, ``-vlanif`` (NB4 vlan.c): vlan(4) interfaces only."""
    if not (name.startswith("vlan") and name[4:5].isdigit()):
        raise ToolError("ifconfig: valid only with vlan(4) interfaces")
    if word == "-vlanif":
        vlan[word] = ""
        return
    if not args:
        raise ToolError(f"ifconfig: '{word}' requires argument")
    value = args.pop(0)
    if word == "vlan" and not value.isdigit():
        raise ToolError(f"ifconfig: {value}: bad value")
    vlan[word] = value


def _tunnel(sock: str, name: str, endpoints: tuple) -> None:
    """NetBSD tunnel.c: ``tunnel SRC DST`` (SIOCSLIFPHYADDR), ``deletetunnel``
    (SIOCDIFPHYADDR). A refused SIOCSLIFPHYADDR is only a warning, as there."""
    if not endpoints:
        _ctl(sock, name, "deletetunnel", "SIOCDIFPHYADDR")
        return
    families = []
    for text in endpoints:
        try:
            families.append(ipaddress.ip_address(text.split("%")[0]).version)
        except ValueError:
            raise ToolError(f"ifconfig: {text}: bad value") from None
    if families[0] != families[1]:
        raise ToolError("ifconfig: source and destination address families do not match")
    try:
        _ctl(sock, name, f"tunnel {endpoints[0]} {endpoints[1]}", "SIOCSLIFPHYADDR")
    except ToolError as exc:
        print(exc, file=sys.stderr)


def entry() -> int:
    return run(main)
