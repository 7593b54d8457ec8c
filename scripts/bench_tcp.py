#!/usr/bin/env python3
"""In-process TCP against the Linux kernel: the measuring functions behind scripts/bench.py.

    sudo .venv/bin/python scripts/bench_tcp.py [--seconds 5]
    (the same as: scripts/bench.py --only inproc,cps,memory)

The stack runs in the calling process (Stack + Runtime + devnp-tap, the TCP core behind
``iopkt_fs.tcpstream``); the kernel's side is ``tests/kernel/kpeer.py`` in a namespace the
caller makes (``mkns``) and deletes. Everything stays inside that namespace.

* ``k2s``: the kernel sends for N seconds, a TcpListener reads and discards;
* ``s2k``: open_tcp_stream sends one reused buffer for N seconds, the kernel discards;
* ``cps``: connections/s, kernel client -> stack server (connect, one byte, shut down; the
  server reads to EOF and closes);
* ``idle_memory``: RSS growth of this process per idle established connection.

Throughput results carry this process's CPU seconds and the frames the kernel put on / took
off the TAP (``ip -s -j link``) during the transfer, for CPU per segment.
"""

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
BUF = 256 * 1024          # the stack's socket buffers for bulk transfer
TICK = os.sysconf("SC_CLK_TCK")


def sh(*args, input=None):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=30,
                          input=input)


def proc_cpu(pid="self") -> float:
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def link_stats(ns: str, dev: str) -> dict:
    """The kernel side's counters of a device in a namespace: {"tx": {...}, "rx": {...}}."""
    out = sh("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev).stdout
    return json.loads(out)[0]["stats64"]


async def kpeer(ns: str, *args, timeout: float = 120) -> dict:
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


class InProcess:
    """One in-process stack with one TAP to namespace ``ns``: us .2, the kernel .1."""

    def __init__(self, ns: str, dev: str, net: str = "10.79.1", driver_opts: str = ""):
        self.ns, self.dev, self.net, self.driver_opts = ns, dev, net, driver_opts
        self.stack = Stack(StackConfig(seed=7))
        self.runtime = Runtime(self.stack)
        self.host, self.peer = f"{net}.2", f"{net}.1"

    async def start(self, nursery) -> None:
        await nursery.start(self.runtime.run)
        opts = f"dev={self.dev},netns={self.ns},mtu=1500" + (f",{self.driver_opts}" if self.driver_opts else "")
        driver = await self.runtime.load_driver("devnp-tap", opts)
        iface = driver.interfaces[0]
        self.stack.add_address(iface, ipaddress.ip_address(self.host), 24)
        self.stack.up(iface)
        sh("ip", "-n", self.ns, "addr", "add", f"{self.peer}/24", "dev", self.dev)
        sh("ip", "-n", self.ns, "link", "set", self.dev, "up")
        with trio.fail_after(10):
            while not iface.link_up:
                await trio.sleep(0.02)

    def snapshot(self) -> tuple[float, dict]:
        return proc_cpu(), link_stats(self.ns, self.dev)

    def delta(self, before, nbytes: int, seconds: float, way: str) -> dict:
        cpu, stats = self.snapshot()
        return {"bytes": nbytes, "seconds": seconds, "cpu": cpu - before[0],
                "frames": stats[way]["packets"] - before[1][way]["packets"],
                "acks": stats["rx" if way == "tx" else "tx"]["packets"]
                - before[1]["rx" if way == "tx" else "tx"]["packets"]}

    async def k2s(self, seconds: float, port: int = 5000) -> dict:
        """The kernel sends for ``seconds``; the stack reads and discards."""
        # Defaults, as a user gets them: the buffers autosize (net.inet.tcp.*buf_auto).
        lst = await TcpListener.open(self.runtime, port)
        got = 0

        async def drain():
            nonlocal got
            s = await lst.accept()
            while chunk := await s.receive_some(1 << 20):
                got += len(chunk)
            await s.send_eof()
            await s.aclose()
        async with trio.open_nursery() as inner:
            inner.start_soon(drain)
            before = self.snapshot()
            out = await kpeer(self.ns, "blastfor", self.host, port, seconds, timeout=seconds + 60)
        result = self.delta(before, got, out["transfer_seconds"], "tx")
        await lst.aclose()
        return result

    async def s2k(self, seconds: float, port: int = 5001) -> dict:
        """The stack sends one reused buffer for ``seconds``; the kernel discards."""
        result = {}

        async def send():
            for _ in range(200):
                try:
                    s = await open_tcp_stream(self.runtime, self.peer, port)
                    break
                except OSError:
                    await trio.sleep(0.025)
            else:
                raise RuntimeError("the kernel sink never listened")
            block = memoryview(bytes(1 << 20))
            before = self.snapshot()
            t0 = trio.current_time()
            sent = 0
            while trio.current_time() - t0 < seconds:
                await s.send_all(block)
                sent += len(block)
            await s.send_eof()
            await s.receive_some()
            result.update(self.delta(before, sent, trio.current_time() - t0, "rx"))
            await s.aclose()
        async with trio.open_nursery() as inner:
            inner.start_soon(send)
            out = await kpeer(self.ns, "sink", port, timeout=seconds + 60)
        result["kernel_bytes"] = out["bytes"]
        return result

    async def cps(self, seconds: float, port: int = 5002, most: int = 50000) -> dict:
        """Kernel client -> stack server: accept, read to EOF, close."""
        lst = await TcpListener.open(self.runtime, port, backlog=-1)

        async def one(s):
            while await s.receive_some(4096):
                pass
            await s.aclose()

        async def serve():
            async with trio.open_nursery() as n2:
                while True:
                    n2.start_soon(one, await lst.accept())
        async with trio.open_nursery() as inner:
            inner.start_soon(serve)
            cpu = proc_cpu()
            out = await kpeer(self.ns, "cps", self.host, port, seconds, most, timeout=seconds + 60)
            out["cpu"] = proc_cpu() - cpu
            inner.cancel_scope.cancel()
        await lst.aclose()
        return out

    async def idle_memory(self, count: int, port: int = 5003) -> dict:
        """RSS growth of this process per idle established connection."""
        lst = await TcpListener.open(self.runtime, port, backlog=-1)
        held = []

        async def acceptor():
            while True:
                held.append(await lst.accept())
        gc.collect()
        before = rss()
        async with trio.open_nursery() as inner:
            inner.start_soon(acceptor)
            hold_for = 5 + count / 1000
            inner.start_soon(kpeer, self.ns, "hold", self.host, port, count, hold_for)
            with trio.fail_after(hold_for + 120):
                while len(held) < count or any(
                        h.status().state != "ESTABLISHED" for h in held[-10:]):
                    await trio.sleep(0.1)
            gc.collect()
            after = rss()
            established = sum(1 for h in held if h.status().state == "ESTABLISHED")
            inner.cancel_scope.cancel()
        for h in held:
            await h.abort()
        await lst.aclose()
        return {"per_connection": (after - before) / count, "established": established,
                "count": count}


async def run(ns: str, dev: str, jobs: dict, net: str = "10.79.1", driver_opts: str = "") -> dict:
    """Start one in-process stack on a TAP into ``ns`` and run ``jobs`` ({name: (method,
    args)}) in order; returns {name: result}. The stack is shut down before returning."""
    results = {}
    bench = InProcess(ns, dev, net, driver_opts)
    async with trio.open_nursery() as nursery:
        await bench.start(nursery)
        for name, (method, args) in jobs.items():
            results[name] = await getattr(bench, method)(*args)
        bench.runtime.shutdown()
    return results


if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, str(ROOT / "scripts" / "bench.py"),
                              "--only", "inproc,cps,memory", *sys.argv[1:]])
