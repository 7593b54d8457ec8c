"""ndp: the IPv6 neighbour cache and ND state, as KAME's ndp(8) (reference/ipv6.md 1.4).

    ndp [-n] HOST                   one entry
    ndp [-n] -a                     every entry (Neighbor, Linklayer Address, Netif, Expire, S, Flags)
    ndp -c                          delete every entry
    ndp -d HOST                     delete one entry
    ndp -s HOST ETHERADDR [temp] [proxy]   add a permanent entry
    ndp -r | -p                     the default router list, the prefix list
    ndp -i IF [[-]nud] [[-]accept_rtadv]   the interface's ND parameters (flags set first)

All through ``P/dev/socket/ndp``; a stack without IPv6 (no node 24) answers as ndp on a
QNX without INET6: socket() fails with EAFNOSUPPORT. Addresses are always numeric.
"""

import errno
import os

from .common import ToolError, read_text, require_stack, run

USAGE = """\
usage: ndp [-nt] hostname
       ndp [-nt] -a | -c | -p | -r | -H | -P | -R
       ndp [-nt] -A wait
       ndp [-nt] -d hostname
       ndp [-nt] -f filename
       ndp [-nt] -i interface [flags...]
       ndp [-nt] -I [interface|delete]
       ndp [-nt] -s nodename etheraddr [temp] [proxy]"""


def _ask(path: str, line: str) -> str:
    """A request on the ndp file; the answer is read back on the same open file."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.write(fd, (line + "\n").encode())
        chunks = []
        off = 0
        while True:
            data = os.pread(fd, 65536, off)
            if not data:
                break
            chunks.append(data)
            off += len(data)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    opts: set[str] = set()
    args: list[str] = []
    for w in argv:
        if w.startswith("-") and len(w) > 1 and not args:
            for c in w[1:]:
                if c not in "nacdsrpit":
                    raise ToolError(f"ndp: illegal option -- {c}\n{USAGE}")
                opts.add(c)
        else:
            args.append(w)
    sock = require_stack("ndp")
    if not os.path.exists(os.path.join(sock, "24")):
        raise ToolError("ndp: socket: Address family not supported by protocol family")
    path = os.path.join(sock, "ndp")
    try:
        return _run(path, opts - {"n", "t"}, args)
    except OSError as exc:
        target = args[0] if args else ""
        if exc.errno == errno.ESRCH:
            raise ToolError(f"delete: cannot locate {target}") from None
        if exc.errno == errno.ENXIO:
            raise ToolError(f"ndp: {target}: no such interface") from None
        raise ToolError(f"ndp: {target}: {os.strerror(exc.errno)}") from None


def _run(path: str, opts: set[str], args: list[str]) -> int:
    if opts == {"a"} and not args:
        print(read_text(path), end="")
    elif opts == {"c"} and not args:
        print(_ask(path, "flush"), end="")
    elif opts == {"d"} and len(args) == 1:
        print(_ask(path, f"delete {args[0]}"), end="")
    elif opts == {"s"} and len(args) >= 2:
        extra = [w for w in args[2:] if w in ("temp", "proxy")]
        if len(extra) != len(args) - 2:
            raise ToolError(USAGE)
        _ask(path, " ".join(["add", args[0], args[1], *extra]))
    elif opts in ({"r"}, {"p"}) and not args:
        print(_ask(path, "routers" if "r" in opts else "prefixes"), end="")
    elif opts == {"i"} and args:
        # KAME: the flags are set first (SIOCSIFINFO_FLAGS), then the result is shown.
        try:
            print(_ask(path, " ".join(["info", *args])), end="")
        except OSError as exc:
            if len(args) == 1 or exc.errno == errno.ENXIO:
                raise
            raise ToolError(f"ndp: ioctl(SIOCSIFINFO_FLAGS): {os.strerror(exc.errno)}") from None
    elif not opts and len(args) == 1:
        table = read_text(path).splitlines()
        host = args[0]
        rows = [line for line in table[1:] if line.split()[0] == host]
        if not rows:
            raise ToolError(f"{host} ({host}) -- no entry")
        print("\n".join([table[0], *rows]))
    else:
        raise ToolError(USAGE)
    return 0


def entry() -> int:
    return run(main)
