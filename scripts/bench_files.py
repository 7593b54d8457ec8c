"""TCP throughput through the socket files, against the stack's in-core TCP in the same run.

    sudo .venv/bin/python scripts/bench_files.py [--mb 50]

* in-core: two Stack objects in this process joined by an in-memory Ethernet link
  (MTU 1500), bytes moved with the core socket calls - no files, no drivers, no kernel;
* kernel -> stack over TAP: a kernel sender in a namespace, ``dd bs=1M`` reading our
  ``tcp/N/data``;
* stack -> stack over devnp-vxlan: two instances on loopback addresses, ``dd bs=1M``
  writing one's ``data`` and reading the other's.

Prints MB/s and ratios; asserts nothing. Namespaces and instances are removed at the end.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

BIN = os.path.dirname(sys.executable)
TAG = f"bf{os.getpid() % 10000}"


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


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


def dd_read(path: str) -> tuple[int, float]:
    t = time.perf_counter()
    out = sh("dd", f"if={path}", "of=/dev/null", "bs=1M", timeout=300).stderr
    return int(out.split(" bytes")[0].split("\n")[-1].strip()), time.perf_counter() - t


class Instance:
    def __init__(self, prefix, args, instance=None):
        self.prefix = prefix
        cmd = [os.path.join(BIN, "io-pkt-v4-hc")] + (["-i", str(instance)] if instance else [])
        sh(*cmd, *args, "-ptcpip", f"prefix={prefix}")
        self.env = dict(os.environ, SOCK=prefix)

    def tool(self, *args):
        return sh(os.path.join(BIN, args[0]), *args[1:], env=self.env)

    def clone(self):
        return open(f"{self.prefix}/dev/socket/tcp/clone").read().strip()

    def ctl(self, n, line):
        with open(f"{self.prefix}/dev/socket/tcp/{n}/ctl", "w") as f:
            f.write(line + "\n")

    def stop(self):
        pid = int(open(f"{self.prefix}/dev/socket/status").read().split("pid: ")[1].split()[0])
        os.kill(pid, signal.SIGTERM)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=50)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_files: needs root (namespace, TAP)")
    core = in_core(args.mb)
    ns = f"{TAG}-k"
    base = tempfile.mkdtemp(prefix="iopkt-bench-files-")
    insts = []
    try:
        sh("ip", "netns", "add", ns)
        one = Instance(f"{base}/tap", ["-d", "tap", f"dev={TAG}t,netns={ns}"])
        insts.append(one)
        one.tool("iopkt", "ifconfig", "tap0", "10.214.0.2/24")
        sh("ip", "-n", ns, "addr", "add", "10.214.0.1/24", "dev", f"{TAG}t")
        sh("ip", "-n", ns, "link", "set", f"{TAG}t", "up")
        one.tool("if_up", "-l", "-m", "100", "-r", "50", "tap0")
        n = one.clone()
        one.ctl(n, "announce 5001")
        sender = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(f"""\
            import socket
            s = socket.create_connection(('10.214.0.2', 5001)); b = bytes(1 << 20)
            for _ in range({args.mb}): s.sendall(b)
            s.close()
            """)])
        m = open(f"{base}/tap/dev/socket/tcp/{n}/listen").read().strip()
        nbytes, took = dd_read(f"{base}/tap/dev/socket/tcp/{m}/data")
        sender.wait(60)
        tap = nbytes / took / 1e6
        # Two instances over devnp-vxlan on loopback.
        a = Instance(f"{base}/a", ["-d", "vxlan", "vni=7,bind=127.0.0.2:4789,peer=127.0.0.3:4789"], instance=1)
        b = Instance(f"{base}/b", ["-d", "vxlan", "vni=7,bind=127.0.0.3:4789,peer=127.0.0.2:4789"], instance=2)
        insts += [a, b]
        a.tool("iopkt", "ifconfig", "vx0", "10.215.0.1/24")
        b.tool("iopkt", "ifconfig", "vx0", "10.215.0.2/24")
        nb = b.clone()
        b.ctl(nb, "announce 5002")
        result = {}

        def reader():
            mb_ = open(f"{base}/b/dev/socket/tcp/{nb}/listen").read().strip()
            result["rx"] = dd_read(f"{base}/b/dev/socket/tcp/{mb_}/data")
        th = threading.Thread(target=reader)
        th.start()
        na = a.clone()
        a.ctl(na, "connect 10.215.0.2!5002")
        sh("dd", "if=/dev/zero", f"of={base}/a/dev/socket/tcp/{na}/data", "bs=1M", f"count={args.mb}", timeout=300)
        a.ctl(na, "close")
        th.join(300)
        vx = result["rx"][0] / result["rx"][1] / 1e6
        print(f"in-core TCP, two stacks, MTU 1500:            {core:7.1f} MB/s")
        print(f"kernel -> stack over TAP, dd of tcp/N/data:   {tap:7.1f} MB/s  ({tap / core:.2f} of in-core)")
        print(f"stack -> stack over devnp-vxlan, dd both ends: {vx:7.1f} MB/s  ({vx / core:.2f} of in-core)")
    finally:
        for inst in insts:
            try:
                inst.stop()
            except Exception:
                pass
        time.sleep(0.5)
        sh("ip", "netns", "del", ns, check=False)


if __name__ == "__main__":
    main()
