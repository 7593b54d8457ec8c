"""ping from the stack's side, built on its raw ICMP files (``P/dev/socket/raw``).

    iopkt ping [-c count] [-i wait] [-s size] [-t ttl] [-W timeout] host

Output as BSD ping prints it; exit 0 if any reply came, 2 otherwise (1 on bad usage).
"""

import argparse
import os
import select
import statistics
import struct
import time

from .common import ToolError, require_stack, run


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
    ident = os.getpid() & 0xFFFF
    print(f"PING {args.host} ({args.host}): {args.s} data bytes", flush=True)
    sent = 0
    rtts: list[float] = []
    outstanding: dict[int, float] = {}
    next_send = time.monotonic()
    last_send = None
    poller = select.poll()
    poller.register(data, select.POLLIN)
    try:
        while True:
            now = time.monotonic()
            if (args.c is None or sent < args.c) and now >= next_send:
                payload = struct.pack("!d", time.time()) + bytes(max(0, args.s - 8))
                try:
                    os.write(data, _checksum_free(ident, sent & 0xFFFF, payload[:args.s]))
                except OSError as exc:
                    print(f"ping: sendto: {os.strerror(exc.errno)}", flush=True)
                outstanding[sent & 0xFFFF] = now
                sent += 1
                last_send = now
                next_send = now + args.i
            if args.c is not None and sent >= args.c and (len(rtts) >= args.c or now - last_send >= args.W):
                break
            timeout = max(0.0, min(next_send, (last_send or now) + args.W) - time.monotonic())
            if poller.poll(timeout * 1000):
                while True:
                    try:
                        message = os.read(data, 65536)
                    except BlockingIOError:
                        break
                    if len(message) < 8:
                        continue
                    kind, _, _, rid, seq = struct.unpack_from("!BBHHH", message)
                    if kind != 0 or rid != ident or seq not in outstanding:
                        continue
                    rtt = (time.monotonic() - outstanding.pop(seq)) * 1000
                    rtts.append(rtt)
                    print(f"{len(message)} bytes from {args.host}: icmp_seq={seq} time={rtt:.3f} ms", flush=True)
    except KeyboardInterrupt:
        pass
    print(f"\n----{args.host} PING Statistics----")
    loss = 100.0 * (sent - len(rtts)) / sent if sent else 0.0
    print(f"{sent} packets transmitted, {len(rtts)} packets received, {loss:.1f}% packet loss")
    if rtts:
        sd = statistics.pstdev(rtts)
        print(f"round-trip min/avg/max/stddev = {min(rtts):.3f}/{statistics.mean(rtts):.3f}/{max(rtts):.3f}/{sd:.3f} ms")
    return 0 if rtts else 2


def entry() -> int:
    return run(main)
