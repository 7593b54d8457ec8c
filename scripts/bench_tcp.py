#!/usr/bin/env python3
"""TCP figures against the Linux kernel, with same-run ratios (needs root; not a test).

    sudo .venv/bin/python scripts/bench_tcp.py [--mb 200] [--rr 2000] [--idle 10000]

* throughput at MTU 1500 over TAP: kernel -> stack and stack -> kernel, against kernel ->
  kernel over a veth pair measured in the same run (same sender/receiver programs);
* connections per second, kernel client -> stack server: connect, one request, the
  reply, close;
* memory per idle established connection: RSS growth of this process while the kernel
  holds N connections open to a stack listener, divided by N.

The stack runs in this process (Stack + Runtime + devnp-tap, the TCP core behind
``iopkt_fs.tcpstream``); the kernel's side is ``tests/kernel/kpeer.py`` in namespaces
named ``ktbench-<pid>-N``, deleted on exit. Everything stays inside those namespaces.
"""

import argparse
import gc
import ipaddress
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from iopkt_fs.runtime import Runtime  # noqa: E402
from iopkt_fs.stack.config import StackConfig  # noqa: E402
from iopkt_fs.stack.stack import Stack  # noqa: E402
from iopkt_fs.tcpstream import TcpListener, open_tcp_stream  # noqa: E402

KPEER = str(ROOT / "tests" / "kernel" / "kpeer.py")
MB = 1_000_000
BUF = 256 * 1024          # the stack's socket buffers for bulk transfer
_made: list[str] = []


def sh(*args, input=None):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=30,
                          input=input)


def netns() -> str:
    name = f"ktbench-{os.getpid()}-{len(_made)}"
    sh("ip", "netns", "add", name)
    _made.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return name


async def kpeer(ns: str, *args, timeout: float = 600) -> dict:
    with trio.fail_after(timeout):
        proc = await trio.run_process(
            ["ip", "netns", "exec", ns, sys.executable, KPEER, *map(str, args)],
            capture_stdout=True, capture_stderr=True, check=False)
    if proc.returncode:
        raise RuntimeError(proc.stderr.decode())
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def veth_kernel_to_kernel(nbytes: int) -> float:
    a, b = netns(), netns()
    sh("ip", "-n", a, "link", "add", "kbva", "type", "veth", "peer", "name", "kbvb", "netns", b)
    sh("ip", "-n", a, "addr", "add", "10.79.0.1/24", "dev", "kbva")
    sh("ip", "-n", b, "addr", "add", "10.79.0.2/24", "dev", "kbvb")
    sh("ip", "-n", a, "link", "set", "kbva", "up")
    sh("ip", "-n", b, "link", "set", "kbvb", "up")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(kpeer, b, "sink", 5100)
        await trio.sleep(0.3)
        out = await kpeer(a, "blast", "10.79.0.2", 5100, nbytes)
    return nbytes / out["transfer_seconds"]


async def main(args) -> None:
    stack = Stack(StackConfig(seed=7))
    runtime = Runtime(stack)
    results = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        ns = netns()
        dev = f"kb{os.getpid() % 100000}"
        driver = await runtime.load_driver("devnp-tap", f"dev={dev},netns={ns},mtu=1500")
        iface = driver.interfaces[0]
        stack.add_address(iface, ipaddress.ip_address("10.79.1.2"), 24)
        stack.up(iface)
        sh("ip", "-n", ns, "addr", "add", "10.79.1.1/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        while not iface.link_up:
            await trio.sleep(0.02)
        nbytes = args.mb * MB

        # kernel -> stack: the kernel sends, the stack reads and discards.
        lst = await TcpListener.open(runtime, 5000, rcvbuf=BUF, sndbuf=BUF)

        async def drain():
            s = await lst.accept()
            while await s.receive_some(1 << 20):
                pass
            await s.send_eof()
            await s.aclose()
        nursery.start_soon(drain)
        out = await kpeer(ns, "blast", "10.79.1.2", 5000, nbytes)
        results["k2s"] = nbytes / out["transfer_seconds"]
        await lst.aclose()

        # stack -> kernel: the stack sends one reused buffer, the kernel discards.
        async with trio.open_nursery() as inner:
            inner.start_soon(kpeer, ns, "sink", 5001)
            for _ in range(200):
                try:
                    s = await open_tcp_stream(runtime, "10.79.1.1", 5001, sndbuf=BUF,
                                              rcvbuf=BUF)
                    break
                except OSError:
                    await trio.sleep(0.025)
            block = bytes(1 << 20)
            t0 = trio.current_time()
            left = nbytes
            while left:
                n = min(left, len(block))
                await s.send_all(memoryview(block)[:n])
                left -= n
            await s.send_eof()
            await s.receive_some()
            results["s2k"] = nbytes / (trio.current_time() - t0)
            await s.aclose()

        results["veth"] = await veth_kernel_to_kernel(nbytes)

        # connections per second: kernel client -> stack server.
        lst = await TcpListener.open(runtime, 5002, backlog=-1)

        async def rr_server():
            async def one(s):
                got = b""
                while not got.endswith(b"\n"):
                    chunk = await s.receive_some(64)
                    if not chunk:
                        break
                    got += chunk
                await s.send_all(b"HTTP/1.0 200 OK\r\n\r\nhello\n")
                await s.aclose()
            async with trio.open_nursery() as n2:
                while True:
                    n2.start_soon(one, await lst.accept())
        async with trio.open_nursery() as inner:
            inner.start_soon(rr_server)
            out = await kpeer(ns, "rr", "10.79.1.2", 5002, args.rr)
            inner.cancel_scope.cancel()
        results["cps"] = args.rr / out["rr_seconds"]
        await lst.aclose()

        # memory per idle established connection.
        lst = await TcpListener.open(runtime, 5003, backlog=-1)
        held = []

        async def acceptor():
            while True:
                held.append(await lst.accept())
        gc.collect()
        before = rss()
        async with trio.open_nursery() as inner:
            inner.start_soon(acceptor)
            hold_for = 5 + args.idle / 1000
            inner.start_soon(kpeer, ns, "hold", "10.79.1.2", 5003, args.idle, hold_for)
            with trio.fail_after(hold_for + 120):
                while len(held) < args.idle or any(
                        h.status().state != "ESTABLISHED" for h in held[-10:]):
                    await trio.sleep(0.1)
            gc.collect()
            after = rss()
            established = sum(1 for h in held if h.status().state == "ESTABLISHED")
            inner.cancel_scope.cancel()
        results["idle"] = (after - before) / args.idle
        results["established"] = established
        for h in held:
            await h.abort()
        await lst.aclose()
        runtime.shutdown()

    mbs = lambda v: f"{v / MB:8.1f} MB/s"  # noqa: E731
    print(f"TCP at MTU 1500, {args.mb} MB per transfer (Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs)")
    print(f"  kernel -> stack over TAP   {mbs(results['k2s'])}   "
          f"{results['k2s'] / results['veth']:.3f} x veth")
    print(f"  stack -> kernel over TAP   {mbs(results['s2k'])}   "
          f"{results['s2k'] / results['veth']:.3f} x veth")
    print(f"  kernel -> kernel over veth {mbs(results['veth'])}")
    print(f"  connections/s kernel client -> stack server (connect, request, reply, "
          f"close): {results['cps']:.0f} over {args.rr}")
    print(f"  memory per idle established connection: {results['idle']:.0f} bytes "
          f"(RSS growth / {args.idle}; {results['established']} established)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--rr", type=int, default=2000)
    p.add_argument("--idle", type=int, default=10000)
    try:
        trio.run(main, p.parse_args())
    finally:
        for name in _made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
