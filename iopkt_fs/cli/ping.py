"""ping from the stack's side, built on its raw ICMP files (``P/dev/socket/raw``).

    iopkt ping [-c count] [-i wait] [-s size] [-t ttl] [-W timeout] host

Output as BSD ping prints it; exit 0 if any reply came, 2 otherwise (1 on bad usage).
"""

import argparse
import os
import struct

from .common import ToolError, require_stack, run
from .echo import run_echo, summary


def _checksum_free(ident: int, seq: int, payload: bytes) -> bytes:
    # Type 8 (echo request), code 0; the stack fills in the checksum.
    return struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ping", description="Send ICMP echo requests from the stack.")
    p.add_argument("-c", type=int, default=None, metavar="count", help="stop after this many replies")
    p.add_argument("-i", type=float, default=1.0, metavar="wait", help="seconds between requests")
    p.add_argument("-s", type=int, default=56, metavar="size", help="data bytes per request")
    p.add_argument("-t", type=int, default=None, metavar="ttl")
    p.add_argument("-W", type=float, default=2.0, metavar="timeout", help="seconds to wait after the last request")
    p.add_argument("host")
    args = p.parse_args(argv)
    if not 0 <= args.s <= 65507 or args.i < 0.001 or (args.c is not None and args.c < 1):
        raise ToolError("ping: bad count, interval or size", 1)
    sock = require_stack("ping")
    base = os.path.join(sock, "raw")
    fd = os.open(os.path.join(base, "clone"), os.O_RDWR)
    try:
        n = os.read(fd, 32).decode().strip()
    finally:
        os.close(fd)
    conv = os.path.join(base, n)
    ctl = os.open(os.path.join(conv, "ctl"), os.O_RDWR)
    try:
        try:
            os.write(ctl, f"connect {args.host}\n".encode())
            if args.t:
                os.write(ctl, f"ttl {args.t}\n".encode())
        except OSError as exc:
            raise ToolError(f"ping: {args.host}: {os.strerror(exc.errno)}", 1) from None
        data = os.open(os.path.join(conv, "data"), os.O_RDWR | os.O_NONBLOCK)
        try:
            return _ping(args, data)
        finally:
            os.close(data)
    finally:
        os.close(ctl)


def _ping(args, data: int) -> int:
    print(f"PING {args.host} ({args.host}): {args.s} data bytes", flush=True)

    def reply(message: bytes):
        if len(message) < 8:
            return None
        kind, _, _, rid, seq = struct.unpack_from("!BBHHH", message)
        if kind != 0:
            return None
        return rid, seq, f"{len(message)} bytes from {args.host}: icmp_seq={seq}"
    sent, rtts = run_echo(args, data, _checksum_free, reply, "ping: sendto")
    return summary(f"\n----{args.host} PING Statistics----", sent, rtts, "stddev")


def entry() -> int:
    return run(main)
