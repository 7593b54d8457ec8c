"""In-core TCP (two stacks over an in-memory link) for scripts/bench.py.

    sudo .venv/bin/python scripts/bench_files.py [--seconds 5]
    (the same as: scripts/bench.py --only files,vxlan,inproc)

``in_core(mb)``: two Stack objects in this process joined by an in-memory Ethernet link
(MTU 1500), bytes moved with the core socket calls - no files, no drivers, no kernel: what
the TCP code costs by itself. The file paths (TAP, devnp-vxlan) are measured by bench.py.
"""

import os
import socket
import sys
import time


def in_core(mb: int) -> float:
    """Two stacks over an in-memory wire; returns MB/s of a one-way transfer."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from iopkt_fs.stack.config import StackConfig
    from iopkt_fs.stack.errors import StackError
    from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER
    from iopkt_fs.stack.stack import Stack

    t0 = time.perf_counter()
    now = lambda: int((time.perf_counter() - t0) * 1e6)  # noqa: E731
    stacks = []
    for i in (1, 2):
        s = Stack(StackConfig(seed=i))
        eth = s.new_interface("eth", kind=IFT_ETHER, mac=bytes([2, 0, 0, 0, 0, i]),
                              flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST)
        s.add_address(eth, f"10.99.0.{i}", 24)
        stacks.append((s, eth))
    (a, ea), (b, eb) = stacks

    def pump():
        moved = True
        while moved:
            moved = False
            for (src, se), (dst, de) in (((a, ea), (b, eb)), ((b, eb), (a, ea))):
                src.poll(now())
                for iface in src.take_tx():
                    frames = list(iface.txq)
                    iface.txq.clear()
                    if frames:
                        dst.input(de, frames, now())
                        moved = True
    listener = b.tcp.socket()
    listener.bind(socket.inet_aton("10.99.0.2"), 5000)
    listener.listen(8)
    client = a.tcp.socket()
    client.connect(socket.inet_aton("10.99.0.2"), 5000, now())
    for _ in range(20):
        pump()
    server = listener.accept()
    total = mb << 20
    block = memoryview(bytes(1 << 16))
    sent = got = 0
    buf = bytearray(1 << 20)
    start = time.perf_counter()
    while got < total:
        while sent < total:
            try:
                sent += client.send(block[:min(len(block), total - sent)], now())
            except StackError:
                break
        pump()
        while True:
            try:
                n = server.recv_into(buf, now())
            except StackError:
                break
            if not n:
                break
            got += n
        pump()
    return total / (time.perf_counter() - start) / 1e6


if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                           "bench.py"),
                              "--only", "files,vxlan,inproc", *sys.argv[1:]])
