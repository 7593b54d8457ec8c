#!/usr/bin/env python3
"""Micro-benchmark of the wire layer: microseconds per operation on this machine.

Prints the cost of receiving an Ethernet + IPv4 + UDP frame (views only, and with the
Reprs and both checksums), of building one, and of the Internet checksum over 1480 bytes.
A script, not a test: the figures and their ratios are for humans (DESIGN.md "Speed").

    .venv/bin/python scripts/bench_wire.py [--number N]
"""

import argparse
import timeit

from iopkt_fs.stack.wire.checksum import internet_checksum
from iopkt_fs.stack.wire.ethernet import EtherType, EthernetPacket, EthernetRepr
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr, ip4
from iopkt_fs.stack.wire.udp import UdpPacket, UdpRepr

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
SRC, DST = ip4("10.0.0.1"), ip4("10.0.0.2")


def build_frame(payload: bytes) -> bytes:
    udp = UdpRepr(40000, 5001, payload).to_bytes(SRC, DST)
    ip = Ipv4Repr(SRC, DST, 17, len(udp), ident=1).to_bytes(udp)
    return EthernetRepr(MAC_B, MAC_A, EtherType.IPV4).to_bytes(ip)


def parse_views(frame):
    """What the core's fast path does: views and accessors, no checksum."""
    eth = EthernetPacket.new_checked(frame)
    if eth.ethertype == EtherType.IPV4:
        ip = Ipv4Packet.new_checked(eth.payload)
        if ip.protocol == 17:
            udp = UdpPacket.new_checked(ip.payload)
            return ip.src, ip.dst, udp.src_port, udp.dst_port, udp.payload
    return None


def parse_headers_verified(frame):
    """Views plus the IPv4 header checksum, as a receive path with no offload does."""
    eth = EthernetPacket.new_checked(frame)
    ip = Ipv4Packet.new_checked(eth.payload)
    if not ip.verify_checksum():
        return None
    udp = UdpPacket.new_checked(ip.payload)
    return ip.src, ip.dst, udp.src_port, udp.dst_port


def parse_reprs(frame):
    """Reprs all the way, both checksums verified, payload copied out."""
    eth = EthernetPacket.new_checked(frame)
    EthernetRepr.parse(eth)
    ip = Ipv4Packet.new_checked(eth.payload)
    ip_repr = Ipv4Repr.parse(ip)
    return ip_repr, UdpRepr.parse(ip.payload, ip.src, ip.dst)


def bench(label: str, fn, number: int, baseline: float | None = None) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6
    ratio = f"  ({best / baseline:4.1f}x the checksum)" if baseline else ""
    print(f"  {label:<58} {best:8.2f} us{ratio}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run")
    n = parser.parse_args().number

    small = build_frame(b"x" * 18)
    full = build_frame(bytes(range(256)) * 5 + bytes(192))  # 1472-byte payload, 1514 frame
    block = bytes(range(256)) * 5 + bytes(200)  # 1480 bytes
    assert len(block) == 1480 and len(full) == 1514

    print(f"wire micro-benchmark, best of 5 x {n} calls")
    ck = bench("internet_checksum, 1480 bytes", lambda: internet_checksum(block), n)
    print("receive, Ethernet + IPv4 + UDP")
    bench("headers: views + accessors (64-byte frame)", lambda: parse_views(small), n, ck)
    bench("headers: views + accessors (1514-byte frame)", lambda: parse_views(full), n, ck)
    bench(
        "headers + IPv4 header checksum (1514-byte frame)",
        lambda: parse_headers_verified(full),
        n,
        ck,
    )
    bench("Reprs + IPv4 and UDP checksums (64-byte frame)", lambda: parse_reprs(small), n, ck)
    bench("Reprs + IPv4 and UDP checksums (1514-byte frame)", lambda: parse_reprs(full), n, ck)
    print("transmit, Ethernet + IPv4 + UDP")
    bench("build a 64-byte frame (UDP checksum included)", lambda: build_frame(b"x" * 18), n, ck)
    payload = full[42:]
    bench("build a 1514-byte frame (UDP checksum included)", lambda: build_frame(payload), n, ck)


if __name__ == "__main__":
    main()
