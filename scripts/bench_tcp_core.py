#!/usr/bin/env python3
"""In-core TCP microbenchmark: prebuilt segments through ``Stack.input``, CPU time per segment.

    PYTHONPATH=. .venv/bin/python scripts/bench_tcp_core.py [--segments 20000] [--runs 5]
        [--only rx-gro,cps,...] [--mss 1448] [--vnet] [--batch 64] [--tick 32]
        [--connections 5000] [--profile (cps once, under cProfile)]

No trio, no FUSE, no driver: one stack with one Ethernet interface and a peer that exists only
as frames built in advance. Five paths, each timed with ``time.process_time`` (the best of
``--runs``), so a change to the TCP core can be compared before/after on the same machine:

* ``rx-batch``: in-order 1448-byte data segments in batches of 32 (GRO off, so every segment
  walks RFC 9293 3.10.7.4 on its own), one ACK per batch, the reader drains the socket;
* ``rx-single``: the same segments one per ``input`` call (an ACK each time, as a hole or a
  slow link produces);
* ``rx-gro``: in-order 1448-byte segments as a kernel sender makes them (the timestamp
  ticking every 32 segments) in driver batches of 64 with receive coalescing on
  (``inet/gro.py``): the per-segment cost of a plain TAP without offloads, less the driver
  (``--vnet``: the frames carry a virtio_net_hdr saying NEEDS_CSUM, as with offloads on,
  so no checksum is verified);
* ``ack``: the stack sends, each of its data segments is acknowledged by its own pure ACK
  (the sender's ACK clock: RTT samples, cwnd growth, freeing the send buffer, new output).
* ``cps``: ``--connections`` passive opens, each as a Linux client makes it (SYN with MSS,
  SACK, timestamps and window scale; then ACK, one byte and FIN in one batch; the ACK of
  our FIN) against a listener whose user accepts, reads the byte, reads EOF and closes,
  on an interface as devnp-tap makes it (virtio_net_hdr, checksum offloads: the frames
  carry NEEDS_CSUM, as the kernel writes them to a TAP). The client's frames are patched
  copies of templates (~1 µs each, inside the timed loop).
  After each input or user call the stack is settled as the runtime does it (``take_tx``,
  ``take_socket_events``, ``poll_at``). Reported: CPU time per connection.
"""

import argparse
import pathlib
import random
import struct
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))     # after PYTHONPATH: a tree given there is the one measured

from iopkt_fs.stack.config import StackConfig  # noqa: E402
from iopkt_fs.stack.errors import StackError  # noqa: E402
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFT_ETHER  # noqa: E402
from iopkt_fs.stack.stack import Stack  # noqa: E402
from iopkt_fs.stack.tcp.socket import SO_RCVBUF, SO_SNDBUF, SOL_SOCKET  # noqa: E402
from iopkt_fs.stack.wire.ipv4 import Ipv4Repr  # noqa: E402
from iopkt_fs.stack.wire.tcp import TcpPacket, build_segment, encode_options  # noqa: E402
from iopkt_fs.stack.wire.virtio import GSO_TCPV4, HDR as VNET, NEEDS_CSUM, VNET_HDR_LEN  # noqa: E402

ME, PEER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
MY_MAC, PEER_MAC = b"\x02\0\0\0\0\1", b"\x02\0\0\0\0\2"
S = 1_000_000
MSS = 1448
NEEDS_CSUM_HDR = VNET.pack(NEEDS_CSUM, 0, 0, 0, 34, 16)


class _Link:
    def transmit(self, iface, frames):
        pass


def frame(seq, ack, flags, payload=b"", ts=(100, 0), opts=None, win=65535):
    o = encode_options(timestamp=ts) if opts is None else opts
    seg = build_segment(PEER, ME, 40000, 5001, seq, ack, flags, win, o, payload)
    ip = Ipv4Repr(PEER, ME, 6, len(seg), 64, 0, 1, True).header_bytes()
    return MY_MAC + PEER_MAC + b"\x08\x00" + ip + seg


def vnet_frame(f: bytes, mss: int = MSS) -> bytes:
    """``f`` behind the virtio_net_hdr a kernel with TUN_F_CSUM writes: NEEDS_CSUM."""
    gso = GSO_TCPV4 if len(f) - 66 > mss else 0
    return VNET.pack(NEEDS_CSUM, gso, 66, mss, 34, 16) + f


def host(gro: bool = False, vnet: bool = False):
    stack = Stack(StackConfig(), rng=random.Random(3))
    iface = stack.new_interface("en", kind=IFT_ETHER, mtu=1500, mac=MY_MAC, flags=IFF_BROADCAST)
    iface.driver = _Link()
    if vnet:
        iface.vnet_hdr = VNET.size
    stack.add_address(iface, "10.0.0.1", 24)
    stack.inet.arp_add("10.0.0.2", PEER_MAC, iface=iface.name)
    stack.gro = gro
    iface.txq.clear()
    return stack, iface


def connect(stack, iface, now, wrap=lambda f: f):
    lst = stack.tcp.socket()
    lst.bind(b"\0\0\0\0", 5001)
    lst.setsockopt(SOL_SOCKET, SO_RCVBUF, 4 << 20)
    lst.setsockopt(SOL_SOCKET, SO_SNDBUF, 4 << 20)
    lst.listen(4)
    syn = encode_options(mss=1460, wscale=7, sack_permitted=True, timestamp=(100, 0))
    stack.input(iface, [wrap(frame(100, 0, 0x02, opts=syn))], now)
    synack = bytes(iface.txq[0])[iface.vnet_hdr:]
    iface.txq.clear()
    iss = TcpPacket(memoryview(synack)[34:]).seq
    stack.input(iface, [wrap(frame(101, iss + 1, 0x10))], now)
    iface.txq.clear()
    return lst.accept(), iss


def drain(sock, buf, now) -> None:
    try:
        while sock.recv_into(buf, now):
            pass
    except StackError:            # EAGAIN: all read
        pass


def bench_rx(n: int, batch: int) -> float:
    stack, iface = host()
    now = S
    sock, iss = connect(stack, iface, now)
    payload = bytes(MSS)
    frames = [frame(101 + i * MSS, iss + 1, 0x10, payload, ts=(101 + i // 64, 0)) for i in range(n)]
    buf = bytearray(1 << 20)
    t0 = time.process_time()
    for i in range(0, n, batch):
        now += 100
        stack.input(iface, frames[i:i + batch], now)
        iface.txq.clear()
        drain(sock, buf, now)
    assert sock.conn.rcv_nxt == (101 + n * MSS) & 0xFFFFFFFF, "segments were not all taken"
    return (time.process_time() - t0) / n * 1e6


def bench_rx_gro(n: int, mss: int, vnet: bool, batch: int = 64, tick: int = 32) -> float:
    """Segments as a kernel sender at full speed makes them: one flow, contiguous, the
    timestamp option changing every ``tick`` segments (by default a batch of 64 holds two
    runs; a sender at ~170 MB/s ticks every ~117 and the TAP driver reads up to 256)."""
    stack, iface = host(gro=True, vnet=vnet)
    wrap = (lambda f: vnet_frame(f, mss)) if vnet else (lambda f: f)
    now = S
    sock, iss = connect(stack, iface, now, wrap)
    payload = bytes(mss)
    frames = [wrap(frame(101 + i * mss, iss + 1, 0x10, payload, ts=(2000 + i // tick, 0)))
              for i in range(n)]
    buf = bytearray(1 << 20)
    t0 = time.process_time()
    for i in range(0, n, batch):
        now += 500
        stack.input(iface, frames[i:i + batch], now)
        drain(sock, buf, now)
        stack.poll(now)
        iface.txq.clear()
    spent = time.process_time() - t0
    assert sock.conn.rcv_nxt == (101 + n * mss) & 0xFFFFFFFF, "segments were not all taken"
    return spent / n * 1e6


def bench_ack(n: int) -> float:
    stack, iface = host()
    now = S
    sock, iss = connect(stack, iface, now)
    data = bytes(64 * 1024)
    acked = 0
    spent = 0.0
    while acked < n:
        try:
            while sock.send(data, now):
                pass
        except StackError:        # EAGAIN: the send buffer is full
            pass
        stack.poll(now)
        out = [bytes(f) for f in iface.txq]
        iface.txq.clear()
        ends = []
        for f in out:
            p = TcpPacket(memoryview(f)[34:])
            length = len(p.payload)
            if length:
                ends.append(((p.seq + length) & 0xFFFFFFFF, p.options().timestamp[0]))
        if not ends:
            now += 1000
            stack.poll(now)
            continue
        acks = [frame(101, e, 0x10, ts=(200, tsval), win=0xFFFF) for e, tsval in ends]
        now += 500
        t0 = time.process_time()
        for a in acks:
            stack.input(iface, [a], now)
        spent += time.process_time() - t0
        acked += len(acks)
    return spent / acked * 1e6


def _settle(stack, iface) -> list:
    """What the runtime does after every input batch or socket call (runtime.py)."""
    out = []
    for i in stack.take_tx():
        out.extend(i.txq)
        i.txq.clear()
    stack.take_socket_events()
    stack.poll_at()
    return out


def tap_host():
    """A stack with an interface as devnp-tap makes it on this kernel: a virtio_net_hdr in
    front of every frame, checksum and TSO offloads enabled (the kernel finishes our
    checksums, and vouches for the ones of the segments it sends us)."""
    from iopkt_fs.drivers.tap import capabilities_for  # noqa: PLC0415
    from iopkt_fs.drivers._linux import TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6  # noqa: PLC0415
    stack = Stack(StackConfig(), rng=random.Random(3))
    caps = capabilities_for(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    iface = stack.new_interface("en", kind=IFT_ETHER, mtu=1500, mac=MY_MAC, flags=IFF_BROADCAST,
                                capabilities=caps, enabled=caps, vnet_hdr=VNET_HDR_LEN)
    iface.driver = _Link()
    stack.add_address(iface, "10.0.0.1", 24)
    stack.inet.arp_add("10.0.0.2", PEER_MAC, iface=iface.name)
    iface.txq.clear()
    return stack, iface


def _cps_template(flags, payload=b"", opts=None):
    """A frame from the kernel client, as the kernel writes it to a TAP (NEEDS_CSUM: the
    checksum field holds the pseudo-header sum, which ports, sequence numbers and
    timestamps do not enter), and the offset of its TSval (TSecr follows)."""
    o = encode_options(timestamp=(0x11223344, 0)) if opts is None else opts
    seg = build_segment(PEER, ME, 0, 5001, 0, 0, flags, 0xFAF0, o, payload, partial=True)
    ip = Ipv4Repr(PEER, ME, 6, len(seg), 64, 0, 1, True).header_bytes()
    frame = NEEDS_CSUM_HDR + MY_MAC + PEER_MAC + b"\x08\x00" + ip + seg
    return frame, frame.index(b"\x11\x22\x33\x44")


def bench_cps(n: int, profile=None) -> float:
    stack, iface = tap_host()
    lst = stack.tcp.socket()
    lst.bind(b"\0\0\0\0", 5001)
    lst.listen(-1)
    syn_opts = encode_options(mss=1460, wscale=7, sack_permitted=True, timestamp=(0x11223344, 0))
    kinds = {"syn": (0x02, b"", syn_opts), "ack": (0x10, b"", None), "data": (0x18, b"x", None),
             "fin": (0x11, b"", None)}
    tmpl = {k: _cps_template(*v) for k, v in kinds.items()}
    tcp = VNET_HDR_LEN + 34
    pack = struct.pack_into

    def frame(kind, port, seq, ack, tsv, tse):
        t, ts_at = tmpl[kind]
        f = bytearray(t)
        pack("!H", f, tcp, port)
        pack("!II", f, tcp + 4, seq, ack)
        pack("!II", f, ts_at, tsv, tse)
        return f

    buf = bytearray(4096)
    now = S
    if profile is not None:
        profile.enable()
    t0 = time.process_time()
    for i in range(n):
        port = 10000 + i % 50000
        now += 200
        tsv = 1000 + i
        stack.input(iface, [frame("syn", port, 100, 0, tsv, 0)], now)
        out = _settle(stack, iface)
        synack = TcpPacket(memoryview(out[0])[tcp:])
        iss, ecr = synack.seq, synack.options().timestamp[0]
        now += 100
        stack.input(iface, [frame("ack", port, 101, iss + 1, tsv, ecr),
                            frame("data", port, 101, iss + 1, tsv, ecr),
                            frame("fin", port, 102, iss + 1, tsv, ecr)], now)
        out = _settle(stack, iface)
        c = lst.accept()
        out += _settle(stack, iface)
        got = c.recv_into(buf, now)
        out += _settle(stack, iface)
        eof = c.recv_into(buf, now)
        out += _settle(stack, iface)
        c.close(now)
        out += _settle(stack, iface)
        assert got == 1 and eof == 0 and out and out[-1][tcp + 13] & 0x01, out  # ... FIN
        now += 100
        stack.input(iface, [frame("ack", port, 103, iss + 2, tsv, ecr)], now)
        _settle(stack, iface)
        assert c.conn.state == 0, "the connection did not close"
    spent = time.process_time() - t0
    if profile is not None:
        profile.disable()
    assert not stack.tcp.connections
    return spent / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="rx-batch,rx-single,rx-gro,ack,cps",
                    help="comma-separated modes (default: all)")
    ap.add_argument("--mss", type=int, default=MSS, help="rx-gro segment size")
    ap.add_argument("--vnet", action="store_true", help="rx-gro frames behind NEEDS_CSUM virtio headers")
    ap.add_argument("--batch", type=int, default=64, help="rx-gro frames per Stack.input")
    ap.add_argument("--tick", type=int, default=32, help="rx-gro segments per timestamp value")
    ap.add_argument("--connections", type=int, default=5000, help="cps connections per run")
    ap.add_argument("--profile", action="store_true", help="cProfile the cps path once")
    args = ap.parse_args()
    n = args.segments
    modes = {
        "rx-batch": lambda: bench_rx(n, 32),
        "rx-single": lambda: bench_rx(n, 1),
        "rx-gro": lambda: bench_rx_gro(n, args.mss, args.vnet, args.batch, args.tick),
        "ack": lambda: bench_ack(n),
        "cps": lambda: bench_cps(args.connections),
    }
    if args.profile:
        import cProfile  # noqa: PLC0415
        import pstats  # noqa: PLC0415
        pr = cProfile.Profile()
        bench_cps(args.connections, pr)
        pstats.Stats(pr).sort_stats("tottime").print_stats(40)
        return
    for name in args.only.split(","):
        us = min(modes[name]() for _ in range(args.runs))
        unit = "connection" if name == "cps" else "segment"
        print(f"{name:10s} {us:6.2f} µs/{unit}")


if __name__ == "__main__":
    main()
