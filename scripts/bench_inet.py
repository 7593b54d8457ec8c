#!/usr/bin/env python3
"""In-core IPv4 throughput: frames per second through ``Stack.input`` (no I/O, no trio).

Measures, on one stack with a resolved peer:

* ICMP echo: request in, reply built and queued on the interface;
* UDP input: datagram in, demultiplexed and queued on a bound socket (drained as we go);
* forwarding: a router stack, slow path (fastforwarding off) and flow cache (on).

Frames are fed in batches of 64, as a driver would after draining its fd. Figures are
frames/s and µs/frame, best of three runs. Usage: ``.venv/bin/python scripts/bench_inet.py [N]``.
"""

import ipaddress
import sys
import time

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.wire.ethernet import EthernetRepr
from iopkt_fs.stack.wire.icmp import IcmpEchoRequest
from iopkt_fs.stack.wire.ipv4 import Ipv4Repr
from iopkt_fs.stack.wire.udp import UdpRepr

US = bytes.fromhex("020000000001")
PEER = bytes.fromhex("020000000002")
BATCH = 64


def ip(t):
    return ipaddress.IPv4Address(t).packed


def frame(src, dst, proto, payload, ttl=64):
    packet = Ipv4Repr(ip(src), ip(dst), proto, len(payload), ttl).to_bytes(payload)
    return EthernetRepr(US, PEER, 0x0800).to_bytes(packet)


def make(forward=False, fast=True):
    stack = Stack(StackConfig(seed=1, forward=forward, fastforward=fast))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=US, flags=IFF_BROADCAST | IFF_MULTICAST)
    en1 = stack.new_interface("en", 1, kind=IFT_ETHER, mac=bytes.fromhex("020000000011"),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address("10.0.0.1"), 24)
    stack.add_address(en1, ipaddress.ip_address("10.1.0.1"), 24)
    stack.inet.arp.learn(en0, int(ipaddress.IPv4Address("10.0.0.2")), PEER, 0, create=True)
    stack.inet.arp.learn(en1, int(ipaddress.IPv4Address("10.1.0.2")), bytes.fromhex("020000000003"), 0, create=True)
    stack.sysctl.set("net.inet.ip.fastforwarding", int(forward and fast))
    return stack, en0, en1


def measure(name, stack, iface, frames, n, after_batch=None):
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        done = 0
        while done < n:
            stack.input(iface, frames, 0)
            for out in stack.take_tx():
                out.txq.clear()
            if after_batch is not None:
                after_batch()
            done += len(frames)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    rate = done / best
    print(f"{name:<34} {rate:>10,.0f} frames/s  {1e6 / rate:6.2f} µs/frame")
    return rate


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"{n:,} frames per run, batches of {BATCH}, best of 3\n")

    stack, en0, _ = make()
    echo = frame("10.0.0.2", "10.0.0.1", 1, IcmpEchoRequest(1, 1, b"x" * 56).to_bytes())
    r_echo = measure("ICMP echo 64 B (reply queued)", stack, en0, [echo] * BATCH, n)
    big = frame("10.0.0.2", "10.0.0.1", 1, IcmpEchoRequest(1, 1, b"x" * 1472).to_bytes())
    measure("ICMP echo 1480 B", stack, en0, [big] * BATCH, n)

    stack, en0, _ = make()
    sock = stack.inet.udp.socket()
    sock.bind(None, 9000)
    sock.setsockopt("SO_RCVBUF", 1 << 24)
    payload = b"u" * 64
    udp = frame("10.0.0.2", "10.0.0.1", 17, UdpRepr(1234, 9000, payload).to_bytes(ip("10.0.0.2"), ip("10.0.0.1")))

    def drain():
        sock.rxq.clear()
        sock.rx_bytes = 0
        stack.take_socket_events()

    r_udp = measure("UDP input 64 B (socket queue)", stack, en0, [udp] * BATCH, n, drain)
    payload = b"u" * 1472
    udp_big = frame("10.0.0.2", "10.0.0.1", 17, UdpRepr(1234, 9000, payload).to_bytes(ip("10.0.0.2"), ip("10.0.0.1")))
    measure("UDP input 1472 B", stack, en0, [udp_big] * BATCH, n, drain)

    fwd = frame("10.0.0.2", "10.1.0.2", 17, UdpRepr(1, 2, b"f" * 64).to_bytes(ip("10.0.0.2"), ip("10.1.0.2")))
    stack, en0, _ = make(forward=True, fast=False)
    r_slow = measure("forward, slow path", stack, en0, [fwd] * BATCH, n)
    stack, en0, _ = make(forward=True, fast=True)
    r_fast = measure("forward, fastforward flow cache", stack, en0, [fwd] * BATCH, n)
    print(f"\nfastforward / slow path: {r_fast / r_slow:.2f}x;  UDP / echo: {r_udp / r_echo:.2f}x")


if __name__ == "__main__":
    main()
