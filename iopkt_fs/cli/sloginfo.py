"""sloginfo: print the stack's log in QNX's format.

    sloginfo [-c] [-w] [-m major] [-s severity]

``Time Sev Major Minor Args`` then one line per message (reference/qnx.md §1.6); ``-s N``
shows severities up to N, ``-m N`` one major code, ``-c`` clears the log after printing,
``-w`` keeps printing new messages until interrupted.
"""

import argparse
import os
import re
import time

from ..slog import HEADER
from .common import ToolError, read_text, require_stack, run, write_ctl

_LINE = re.compile(r"^\w{3} \d\d \d\d:\d\d:\d\d\s+(\d+)\s+(\d+)\s+(\d+) ")


def _keep(line: str, args) -> bool:
    m = _LINE.match(line)
    if m is None:
        return True
    sev, major = int(m.group(1)), int(m.group(2))
    if args.s is not None and sev > args.s:
        return False
    return args.m is None or major == args.m


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="sloginfo", description="Print the io-pkt stack's log.")
    p.add_argument("-c", action="store_true", help="clear the log after printing it")
    p.add_argument("-w", action="store_true", help="wait for new messages and print them")
    p.add_argument("-m", type=int, metavar="major", help="only this major code (14 tcpip, 10 drivers)")
    p.add_argument("-s", type=int, metavar="severity", help="only severities 0..N (2 error, 3 warning, 5 info)")
    args = p.parse_args(argv)
    sock = require_stack("sloginfo")
    path = os.path.join(sock, "log")
    text = read_text(path)
    lines = text.splitlines()
    print(HEADER)
    for line in lines:
        if _keep(line, args):
            print(line, flush=args.w)
    if args.c:
        try:
            write_ctl(path, "clear")
        except OSError as exc:
            raise ToolError(f"sloginfo: clear: {os.strerror(exc.errno)}") from None
    if args.w:
        seen = len(lines)
        last = lines[-1] if lines else None
        while True:
            time.sleep(0.25)
            try:
                now = read_text(path).splitlines()
            except OSError:
                return 0   # the stack went away
            # The ring may have wrapped or been cleared: resume after the last line seen.
            start = now.index(last) + 1 if last in now else (0 if len(now) < seen else seen)
            for line in now[start:]:
                if _keep(line, args):
                    print(line, flush=True)
            seen, last = len(now), (now[-1] if now else last)
    return 0


def entry() -> int:
    return run(main)
