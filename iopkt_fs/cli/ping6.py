"""ping6 from the stack's side, KAME's output, built on its raw ICMPv6 files.

    iopkt ping6 [-c count] [-i wait] [-s size] [-I interface] [-W timeout] host

The connection is a raw ICMPv6 one because its address is IPv6 (``announce ::`` on
``P/dev/socket/raw``); ``headers`` gives each reply's source and hop limit, and each
request is written with its destination (``ADDR[%IF]``). Exit 0 if
any reply came, 2 otherwise (1 on bad usage); a stack without IPv6 (no node 24) answers
as a QNX ping6 without INET6 does: socket() fails with EAFNOSUPPORT.
"""

import argparse
import ipaddress
import os
import struct

from .common import ToolError, require_stack, run
from .echo import run_echo, summary

ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
DEFDATALEN = 8          # KAME ping6: room for the send time (ICMP6ECHOTMLEN)


def _request(ident: int, seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHH", ICMP6_ECHO_REQUEST, 0, 0, ident, seq) + payload


def _target(host: str, iface: str | None) -> str:
    addr_text, _, zone = host.partition("%")
    try:
        addr = ipaddress.IPv6Address(addr_text)
    except ValueError:
        raise ToolError(f"ping6: {host}: no address associated with name", 1) from None
    zone = zone or iface
    if zone and (addr.is_link_local or addr.is_multicast):
        return f"{addr}%{zone}"
    return str(addr)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ping6", description="Send ICMPv6 echo requests from the stack.")
    p.add_argument("-c", type=int, default=None, metavar="count", help="stop after this many requests")
    p.add_argument("-i", type=float, default=1.0, metavar="wait", help="seconds between requests")
    p.add_argument("-s", type=int, default=DEFDATALEN, metavar="size", help="data bytes per request")
    p.add_argument("-I", default=None, metavar="interface", help="the link of a link-local or multicast host")
    p.add_argument("-W", type=float, default=2.0, metavar="timeout", help="seconds to wait after the last request")
    p.add_argument("host")
    args = p.parse_args(argv)
    if not 0 <= args.s <= 65487 or args.i < 0.001 or (args.c is not None and args.c < 1):
        raise ToolError("ping6: bad count, interval or size", 1)
    sock = require_stack("ping6")
    if not os.path.exists(os.path.join(sock, "24")):
        raise ToolError("ping6: socket: Address family not supported by protocol family", 1)
    target = _target(args.host, args.I)
    try:
        source = _source(sock, target)
    except OSError as exc:
        raise ToolError(f"ping6: UDP connect: {os.strerror(exc.errno)}", 1) from None
    # The raw ICMPv6 connection is bound to :: and not connected, so replies to a
    # multicast destination (from each member) reach it; headers name each one's peer.
    conv, ctl = _clone(sock, "raw")
    try:
        try:
            os.write(ctl, b"announce ::\n")
            os.write(ctl, b"headers\n")
        except OSError as exc:
            raise ToolError(f"ping6: socket: {os.strerror(exc.errno)}", 1) from None
        data = os.open(os.path.join(conv, "data"), os.O_RDWR | os.O_NONBLOCK)
        try:
            return _ping6(args, target, source, data)
        finally:
            os.close(data)
    finally:
        os.close(ctl)


def _clone(sock: str, proto: str) -> tuple[str, int]:
    """A new connection: its directory and its ctl fd (the clone fd, Plan 9 style)."""
    base = os.path.join(sock, proto)
    ctl = os.open(os.path.join(base, "clone"), os.O_RDWR)
    return os.path.join(base, os.read(ctl, 32).decode().strip()), ctl


def _source(sock: str, target: str) -> str:
    """The source the stack picks toward ``target``: KAME ping6 connects a UDP socket
    and asks getsockname(); here a UDP connection's ``local`` file."""
    conv, ctl = _clone(sock, "udp")
    try:
        os.write(ctl, f"connect {target}!9\n".encode())
        with open(os.path.join(conv, "local")) as f:
            return f.read().strip().rpartition("!")[0]
    finally:
        os.close(ctl)


def _ping6(args, target: str, source: str, data: int) -> int:
    # KAME: PING6(total=IPv6 header+ICMPv6 header+data bytes) source --> destination
    print(f"PING6({40 + 8 + args.s}=40+8+{args.s} bytes) {source} --> {target}", flush=True)
    header = f"{target}\n".encode()

    def request(ident: int, seq: int, payload: bytes) -> bytes:
        return header + _request(ident, seq, payload)

    def reply(message: bytes):
        head, _, body = message.partition(b"\n")     # "SRC!HLIM" (headers), then ICMPv6
        if len(body) < 8:
            return None
        kind, _, _, rid, seq = struct.unpack_from("!BBHHH", body)
        if kind != ICMP6_ECHO_REPLY:
            return None
        src, _, hlim = head.decode().rpartition("!")
        return rid, seq, f"{len(body)} bytes from {src}, icmp_seq={seq} hlim={hlim}"
    sent, rtts = run_echo(args, data, request, reply, "ping6: sendmsg")
    return summary(f"\n--- {target} ping6 statistics ---", sent, rtts, "std-dev")


def entry() -> int:
    return run(main)
