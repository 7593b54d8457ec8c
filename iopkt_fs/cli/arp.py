"""arp: show and change the ARP cache, as NetBSD's arp(8).

    arp -a [-n]                      every entry: ? (ADDR) at MAC on IF [permanent]
    arp [-n] HOST                    one entry
    arp -d HOST | -d -a              delete one entry, or all dynamic ones
    arp -s HOST MAC [ifscope IF]     add a permanent entry
"""

import errno
import os

from .common import ToolError, read_text, require_stack, run, write_ctl

USAGE = """\
usage: arp [-n] hostname
       arp [-n] -a
       arp -d [-a|hostname]
       arp -s hostname ether_addr [ifscope interface]"""


def main(argv: list[str]) -> int:
    opts = set()
    args = []
    for w in argv:
        if w.startswith("-") and len(w) > 1 and not args:
            for c in w[1:]:
                if c not in "nads":
                    raise ToolError(f"arp: illegal option -- {c}\n{USAGE}")
                opts.add(c)
        else:
            args.append(w)
    sock = require_stack("arp")
    path = os.path.join(sock, "arp")
    if "s" in opts:
        if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "ifscope"):
            raise ToolError(USAGE)
        line = f"add {args[0]} {args[1]}" + (f" interface {args[3]}" if len(args) == 4 else "")
        try:
            write_ctl(path, line)
        except OSError as exc:
            raise ToolError(f"arp: {args[0]}: {os.strerror(exc.errno)}") from None
        return 0
    if "d" in opts:
        if "a" in opts and not args:
            write_ctl(path, "flush")
            return 0
        if len(args) != 1:
            raise ToolError(USAGE)
        try:
            write_ctl(path, f"delete {args[0]}")
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ToolError(f"delete: cannot locate {args[0]}") from None
            raise ToolError(f"arp: {args[0]}: {os.strerror(exc.errno)}") from None
        print(f"{args[0]} ({args[0]}) deleted")
        return 0
    table = read_text(path)
    if "a" in opts:
        print(table, end="")
        return 0
    if len(args) != 1:
        raise ToolError(USAGE)
    for line in table.splitlines():
        if f"({args[0]}) " in line:
            print(line)
            return 0
    raise ToolError(f"{args[0]} ({args[0]}) -- no entry")


def entry() -> int:
    return run(main)
