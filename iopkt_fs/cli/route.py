"""route: manipulate the routing table, in BSD route(8)'s syntax (reference/qnx.md §4.5).

    route [-nq] add|delete [-net|-host] DEST [GATEWAY] [-netmask M] [-ifp IF|-interface IF]
                           [-mtu N] [-reject] [-blackhole]
    route [-n] get DEST
    route [-n] show
    route [-q] flush
    route [-nq] add|delete -inet6 [-net|-host] DEST[/LEN] [GATEWAY[%IF]] [-prefixlen N] [-ifp IF] ...
    route [-n] show -inet6 | flush -inet6      (the Internet6 table, io-pkt-v6-hc)

QNX 6.6+ keeps several routes to one destination with different gateways, tried in
insertion order; delete without a gateway removes the oldest. Success lines are BSD's:
``add net 10.1.0.0: gateway 10.0.0.1``.
"""

import errno
import ipaddress
import os

from .common import ToolError, read_text, require_stack, run, write_ctl
from .ifconfig_common import netmask_prefix

USAGE = """\
usage: route [-nq] add|delete [-net|-host] destination [gateway] [-netmask mask] [-ifp ifname] [-mtu n]
       route [-n] get destination
       route [-n] show
       route [-q] flush"""

_ROUTE_ERRORS = {errno.ESRCH: "not in table", errno.EBUSY: "entry in use", errno.ENOBUFS: "routing table overflow"}


def _classful(addr: int) -> int:
    first = addr >> 24
    return 8 if first < 128 else 16 if first < 192 else 24


def _destination(text: str, kind: str | None, mask: str | None) -> tuple[str, str, bool]:
    """-> (DEST[/LEN] for the file, text for messages, is_host)."""
    if text == "default":
        return "default", "default", False
    if "/" in text:
        addr, plen = text.split("/", 1)
        return f"{_full(addr)}/{plen}", _full(addr), plen == "32"
    short = text.count(".") < 3
    addr = _full(text)
    if mask is not None:
        return f"{addr}/{netmask_prefix(mask)}", addr, False
    if kind == "-host" or (kind is None and not short):
        return f"{addr}/32", addr, True
    value = int(ipaddress.IPv4Address(addr))
    plen = _classful(value)
    # A net given with more bits than its class (10.1.0.0) keeps them (inet_makenetandmask).
    while plen < 32 and value & ((1 << (32 - plen)) - 1):
        plen += 8
    return f"{addr}/{plen}", addr, False


def _full(text: str) -> str:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ToolError(f"route: bad address: {text}")
    return ".".join(parts + ["0"] * (4 - len(parts)))


def _write(sock: str, line: str) -> None:
    write_ctl(os.path.join(sock, "route"), line)


def main(argv: list[str]) -> int:
    opts = set()
    while argv and argv[0].startswith("-") and len(argv[0]) > 1:
        for c in argv.pop(0)[1:]:
            if c not in "dfnqSstv":
                raise ToolError(f"route: illegal option -- {c}\n{USAGE}")
            opts.add(c)
    if not argv:
        raise ToolError(USAGE)
    sock = require_stack("route")
    cmd, args = argv[0], argv[1:]
    if "-inet6" in args:
        args.remove("-inet6")
        return _inet6(sock, cmd, args, opts)
    if cmd == "show":
        print("Routing tables\n\nInternet:")
        print(read_text(os.path.join(sock, "route")), end="")
        return 0
    if cmd == "flush":
        try:
            _write(sock, "flush")
        except OSError as exc:
            raise ToolError(f"route: flush: {os.strerror(exc.errno)}") from None
        return 0
    if cmd == "get":
        if len(args) != 1:
            raise ToolError(USAGE)
        fd = os.open(os.path.join(sock, "route"), os.O_RDWR)
        try:
            os.write(fd, f"get {_full(args[0]) if args[0] != 'default' else '0.0.0.0'}\n".encode())
            print(os.pread(fd, 65536, 0).decode(), end="")
        except OSError as exc:
            raise ToolError(f"route: writing to routing socket: {os.strerror(exc.errno)}\n"
                            f"get {args[0]}: {_ROUTE_ERRORS.get(exc.errno, os.strerror(exc.errno))}") from None
        finally:
            os.close(fd)
        return 0
    if cmd not in ("add", "delete", "change"):
        raise ToolError(f"route: {cmd}: bad command\n{USAGE}")
    kind, given, flags, words = _modifiers(args, "-netmask")
    mask, iface, mtu = given.get("-netmask"), given.get("iface"), given.get("-mtu")
    dest, shown, host = _destination(words[0], kind, mask)
    gateway = _full(words[1]) if len(words) == 2 else None
    if cmd == "change":
        # BSD's change: replace the route's gateway; here delete then add.
        try:
            _write(sock, f"delete {dest}")
        except OSError:
            pass
        cmd = "add"
    line = f"{cmd} {dest}"
    if gateway:
        line += f" gateway {gateway}"
    if cmd == "add":
        if iface:
            line += f" interface {iface}"
        if mtu:
            line += f" mtu {mtu}"
        line += "".join(f" {f}" for f in flags)
    what = "host" if host else "net"
    tail = f": gateway {gateway}" if gateway else (f": interface {iface}" if iface else "")
    try:
        _write(sock, line)
    except OSError as exc:
        reason = _ROUTE_ERRORS.get(exc.errno, os.strerror(exc.errno))
        raise ToolError(f"route: writing to routing socket: {os.strerror(exc.errno)}\n"
                        f"{cmd} {what} {shown}{tail}: {reason}") from None
    if "q" not in opts:
        print(f"{cmd} {what} {shown}{tail}")
    return 0


# route(8)'s modifiers: those taking a value (-ifp and -interface both name the
# interface), the flags carried to the route, and those accepted with no effect here.
_VALUE_WORDS = {"-netmask": "-netmask", "-prefixlen": "-prefixlen", "-mtu": "-mtu",
                "-ifp": "iface", "-interface": "iface"}
_ROUTE_FLAGS = ("-reject", "-blackhole")
_NO_EFFECT = ("-static", "-cloning")


def _modifiers(args: list[str], mask_word: str):
    """-> (-net/-host or None, {value word: value}, [flags], [destination, gateway?]);
    ``mask_word`` is the family's: -netmask (inet) or -prefixlen (inet6)."""
    kind, given, flags, words = None, {}, [], []
    while args:
        w = args.pop(0)
        key = _VALUE_WORDS.get(w)
        if w in ("-net", "-host"):
            kind = w
        elif key is not None and (key == "iface" or key == "-mtu" or w == mask_word):
            if not args:
                raise ToolError(f"route: {w}: requires an argument")
            given[key] = args.pop(0)
        elif w in _ROUTE_FLAGS:
            flags.append(w[1:])
        elif w in _NO_EFFECT:
            pass
        elif w.startswith("-"):
            raise ToolError(f"route: {w}: bad keyword\n{USAGE}")
        else:
            words.append(w)
    if not words or len(words) > 2:
        raise ToolError(USAGE)
    return kind, given, flags, words


_AFNOSUPPORT = "Address family not supported by protocol family"   # NetBSD's strerror


def _inet6(sock: str, cmd: str, args: list[str], opts: set[str]) -> int:
    """``route ... -inet6``: the same verbs on the Internet6 table (P/dev/socket/route6)."""
    path = os.path.join(sock, "route6")
    v6 = os.path.exists(os.path.join(sock, "24"))
    if cmd == "show":
        print("Routing tables\n\nInternet6:")
        if v6:
            print(read_text(path), end="")
        return 0
    if cmd == "flush":
        if v6:
            write_ctl(path, "flush")
        return 0
    if cmd not in ("add", "delete", "change"):
        raise ToolError(f"route: {cmd}: bad command\n{USAGE}")
    kind, given, flags, words = _modifiers(args, "-prefixlen")
    plen, iface, mtu = given.get("-prefixlen"), given.get("iface"), given.get("-mtu")
    shown = words[0]
    dest = shown
    try:
        if dest != "default":
            host, _, given = dest.partition("/")
            ipaddress.IPv6Address(host)
            length = given or plen or ("128" if kind == "-host" or kind is None else "64")
            dest = f"{host}/{length}"
        gateway = words[1] if len(words) == 2 else None
        if gateway is not None:
            ipaddress.IPv6Address(gateway.partition("%")[0])
    except ValueError:
        raise ToolError(f"route: bad address: {shown}") from None
    is_host = dest.endswith("/128")
    if cmd == "change":
        try:
            write_ctl(path, f"delete {dest}")
        except OSError:
            pass
        cmd = "add"
    line = f"{cmd} {dest}" + (f" gateway {gateway}" if gateway else "")
    if cmd == "add":
        line += (f" interface {iface}" if iface else "") + (f" mtu {mtu}" if mtu else "")
        line += "".join(f" {f}" for f in flags)
    what = "host" if is_host else "net"
    tail = f": gateway {gateway}" if gateway else (f": interface {iface}" if iface else "")
    try:
        if not v6:
            raise OSError(errno.EAFNOSUPPORT, _AFNOSUPPORT)
        write_ctl(path, line)
    except OSError as exc:
        text = _AFNOSUPPORT if exc.errno == errno.EAFNOSUPPORT else os.strerror(exc.errno)
        reason = _ROUTE_ERRORS.get(exc.errno, text)
        raise ToolError(f"route: writing to routing socket: {text}\n{cmd} {what} {shown}{tail}: {reason}") from None
    if "q" not in opts:
        print(f"{cmd} {what} {shown}{tail}")
    return 0


def entry() -> int:
    return run(main)
