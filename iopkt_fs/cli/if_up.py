"""if_up: wait for interfaces to be present, configured, and optionally linked.

    if_up [-alp] [-6 [-i]] [-m milliseconds] [-r retries] [-s seconds] interface...

QNX semantics (reference/qnx.md §2): walk the interface list up to ``-r`` times (5),
``-s``/``-m`` apart (1 s; the last given wins). "Configured" means UP with an IPv4
address (with ``-6``: an IPv6 address DAD has passed, not tentative or duplicated;
``-i`` also not link-local); ``-p`` waits only for presence; ``-l`` also for link; ``-a`` waits for all the
interfaces, otherwise any one is enough. Exit 0 on success, 1 on time-out.
"""

import argparse
import os
import time

from .common import ToolError, read_text, require_stack, run


def _usable6(block: str, non_link_local: bool) -> bool:
    """An inet6 address DAD has passed (not tentative or duplicated); with -i, not fe80::."""
    for line in block.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "inet6" or "tentative" in words or "duplicated" in words:
            continue
        if non_link_local and ("%" in words[1] or words[1].lower().startswith("fe80:")):
            continue
        return True
    return False


def _state(sock: str, name: str, v6: bool = False, non_link_local: bool = False) -> tuple[bool, bool, bool]:
    """(present, configured, link up) for one interface, from its status file."""
    try:
        block = read_text(os.path.join(sock, "if", name, "status"))
    except OSError:
        return False, False, False
    head = block.split("\n", 1)[0]
    flags = int(head.split("flags=", 1)[1].split("<", 1)[0].split(" ", 1)[0], 16)
    configured = bool(flags & 0x1) and (_usable6(block, non_link_local) if v6 else "\tinet " in block)
    link = "\tstatus: no carrier" not in block
    return True, configured, link


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="if_up", description="Wait for network interfaces to come up.")
    p.add_argument("-a", action="store_true", help="wait for all interfaces, not any one")
    p.add_argument("-l", action="store_true", help="also wait for the physical link")
    p.add_argument("-p", action="store_true", help="wait only until the interfaces are present")
    p.add_argument("-6", action="store_true", dest="v6", help="configured: a usable (non-tentative) IPv6 address")
    p.add_argument("-i", action="store_true", dest="non_ll", help="with -6: a usable non-link-local IPv6 address")
    p.add_argument("-m", type=int, metavar="ms", dest="interval_ms", help="interval between walks in ms")
    p.add_argument("-s", type=int, metavar="seconds", dest="interval_s", help="interval between walks in s")
    p.add_argument("-r", type=int, metavar="retries", default=5, help="number of walks (default 5)")
    p.add_argument("interfaces", nargs="+", metavar="interface")
    # -m and -s: the last one given wins (QNX).
    interval = 1.0
    for i, word in enumerate(argv):
        if word.startswith("-m") or word.startswith("-s"):
            value = word[2:] or (argv[i + 1] if i + 1 < len(argv) else "")
            if value.isdigit():
                interval = int(value) / 1000 if word.startswith("-m") else float(value)
    args = p.parse_args(argv)
    if args.r < 1:
        raise ToolError("if_up: -r must be at least 1")
    sock = require_stack("if_up")
    missing: list[str] = []
    for walk in range(args.r):
        missing = []
        for name in args.interfaces:
            present, configured, link = _state(sock, name, args.v6, args.non_ll)
            ok = present and (args.p or configured) and (not args.l or link)
            if not ok:
                why = "not present" if not present else ("not configured" if not configured else "no link")
                missing.append(f"{name} ({why})")
        done = not missing if args.a else len(missing) < len(args.interfaces)
        if done:
            return 0
        if walk + 1 < args.r:
            time.sleep(interval)
    raise ToolError(f"if_up: timed out waiting for {', '.join(missing)}")


def entry() -> int:
    return run(main)
