#!/usr/bin/env python3
"""Throughput under impairments, the stack next to Linux <-> Linux through the same ones,
in one run (a script, not a test: it asserts byte-exactness, never speed).

    sudo .venv/bin/python scripts/impaired.py              # 100 MB combined, 20 MB at 5 % loss
    sudo .venv/bin/python scripts/impaired.py --mb 20 --loss-mb 5

Cases (issue 12, item 4):

combined  1 % loss, 2 % of frames held back 1-5 ms (real reordering), 1 % duplicated,
          0.1 % corrupted, both directions, on wire-sized frames (offloads off). The
          stack: the fault injector on its tap (drivers/fault.py), the kernel in a
          namespace. Linux <-> Linux: two namespaces joined by a relay between two taps
          that applies the same FaultPlan (same code, same rates, its own seed) to every
          frame each way.
loss5     5 % of forwarded TCP dropped by nftables in a router namespace one hop from
          the kernel peer (tests/kernel/ktest_util.lossy_link). Linux <-> Linux: the
          same router between two kernel namespaces over veth.

Each row: MB/s, and for our sender its retransmission timeouts (what RACK-TLP should
make rare) and fast retransmits. Everything made here is in namespaces named
``impaired-PID-N`` and removed at the end.
"""

import argparse
import itertools
import json
import os
import random
import select
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("", "tests", "tests/drivers", "tests/kernel"):
    sys.path.insert(0, os.path.join(ROOT, sub))

import trio  # noqa: E402

from iopkt_fs.drivers.fault import FaultConfig, FaultPlan, FaultStats  # noqa: E402
from iopkt_fs.drivers.tap import IFF_NO_PI, IFF_TAP, open_tap  # noqa: E402

from drvtest_util import Harness  # noqa: E402
from ktest_util import KPEER, MB, lossy_link, sh, tap_link  # noqa: E402
from test_tcp_kernel import COMBINED, stack_client, stack_server  # noqa: E402

_n = itertools.count()
MADE: list[str] = []


def netns() -> str:
    name = f"impaired-{os.getpid()}-{next(_n)}"
    sh("ip", "netns", "add", name)
    MADE.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return name


def combined_config(seed: int) -> FaultConfig:
    rates = dict(kv.split("=") for kv in COMBINED.split(",") if kv.startswith("fault_"))
    return FaultConfig(seed=seed, drop=float(rates["fault_drop"]) / 100,
                       dup=float(rates["fault_dup"]) / 100,
                       reorder=float(rates["fault_reorder"]) / 100,
                       corrupt=float(rates["fault_corrupt"]) / 100)


class Relay(threading.Thread):
    """Two taps, one in each namespace, and between them a FaultPlan per direction: a
    wire with the injector's faults for two Linux kernels."""

    def __init__(self, ns_a: str, ns_b: str, config: FaultConfig):
        super().__init__(daemon=True)
        self.fds, self.names = [], []
        for ns in (ns_a, ns_b):
            fd, name = open_tap(f"ir{os.getpid() % 10000}x{next(_n)}", IFF_TAP | IFF_NO_PI)
            sh("ip", "link", "set", name, "netns", ns)
            self.fds.append(fd)
            self.names.append(name)
        self.stats = FaultStats()
        self.plans = [FaultPlan(config, random.Random(f"{config.seed}:{d}"), self.stats) for d in (0, 1)]
        self.stop = False

    def run(self):
        ep = select.epoll()
        for i, fd in enumerate(self.fds):
            ep.register(fd, select.EPOLLIN)
        while not self.stop:
            deadlines = [d for p in self.plans if (d := p.next_deadline()) is not None]
            now = time.monotonic()
            timeout = max(0.0, min(deadlines) - now) if deadlines else 0.1
            events = ep.poll(min(timeout, 0.1))
            now = time.monotonic()
            for fd, _ in events:
                src = self.fds.index(fd)
                frames = []
                for _ in range(256):
                    try:
                        frames.append(os.read(fd, 65536))
                    except BlockingIOError:
                        break
                self._send(1 - src, self.plans[src].apply(frames, now))
            for d, plan in enumerate(self.plans):
                self._send(1 - d, plan.release(now))
        ep.close()

    def _send(self, dst: int, frames) -> None:
        for f in frames:
            try:
                os.write(self.fds[dst], f)
            except OSError:
                pass        # the tap's queue is full: a drop, as on a wire

    def close(self):
        self.stop = True
        self.join(2)
        for fd in self.fds:
            os.close(fd)


def linux_pair_relay(config: FaultConfig):
    a, b = netns(), netns()
    relay = Relay(a, b, config)
    for ns, name, ip in ((a, relay.names[0], "10.79.0.1"), (b, relay.names[1], "10.79.0.2")):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", name)
        sh("ip", "-n", ns, "link", "set", name, "up")
    relay.start()
    return a, b, "10.79.0.2", relay


def linux_pair_router(pct: int):
    """client -- router (nftables drops pct % of forwarded TCP) -- server, all veth."""
    client, router, server = netns(), netns(), netns()
    pairs = ((client, "10.80.1.1", router, "10.80.1.2"), (server, "10.80.2.1", router, "10.80.2.2"))
    for i, (ns, ip, rns, rip) in enumerate(pairs):
        x, y = f"ia{os.getpid() % 10000}x{i}", f"ib{os.getpid() % 10000}x{i}"
        sh("ip", "-n", ns, "link", "add", x, "type", "veth", "peer", "name", y, "netns", rns)
        sh("ip", "-n", ns, "link", "set", x, "gso_max_segs", "1")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", x)
        sh("ip", "-n", rns, "addr", "add", f"{rip}/24", "dev", y)
        sh("ip", "-n", ns, "link", "set", x, "up")
        sh("ip", "-n", rns, "link", "set", y, "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", rip)
    sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    rules = ("table inet impaired {\n  chain f {\n    type filter hook forward priority 0; policy accept;\n"
             f"    meta l4proto tcp numgen random mod 100 < {pct} counter drop\n  }}\n}}\n")
    sh("ip", "netns", "exec", router, "nft", "-f", "-", input=rules)
    return client, server, "10.80.2.1"


def linux_transfer(client: str, server: str, server_ip: str, nbytes: int, seed: int) -> dict:
    """kpeer recv in one namespace, kpeer send in the other: MB/s and both hashes."""
    rx = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, KPEER, "recv", "5400"],
                          stdout=subprocess.PIPE, text=True)
    assert json.loads(rx.stdout.readline())["listening"]
    t0 = time.monotonic()
    tx = subprocess.run(["ip", "netns", "exec", client, sys.executable, KPEER, "send", server_ip,
                         "5400", str(nbytes), str(seed)], capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - t0
    got = json.loads(rx.communicate(timeout=60)[0].strip().splitlines()[-1])
    sent = json.loads(tx.stdout.strip().splitlines()[-1])
    assert got["sha256"] == sent["sha256"] and got["bytes"] == nbytes, (got, sent)
    return {"rate": nbytes / elapsed / MB, "retrans": sent["tcp"]["retrans"]}


async def ours(case: str, direction: str, nbytes: int) -> dict:
    h = Harness(seed=41, raw=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(h.runtime.run)
        try:
            if case == "combined":
                ns, _, driver = await tap_link(h, netns, 11, COMBINED)
                kernel_ip = "10.77.11.1"
            else:
                ns, _, kernel_ip = await lossy_link(h, netns, 11, 5)
            run = stack_server if direction == "kernel->stack" else stack_client
            kernel, sha, n, elapsed, _ = await run(h, 5002, ns, nbytes, 8, "10.77.11.2", kernel_ip)
            assert kernel["sha256"] == sha and n == nbytes
            st = h.stack.tcp.stats
            return {"rate": nbytes / elapsed / MB, "rto": st.rexmttimeo, "fast": st.fastrexmt,
                    "rexmit": st.sndrexmitpack, "kernel_retrans": kernel["tcp"]["retrans"]}
        finally:
            h.runtime.shutdown()
            nursery.cancel_scope.cancel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=100, help="MB per transfer, combined impairments")
    ap.add_argument("--loss-mb", type=int, default=20, help="MB per transfer at 5 %% loss")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("impaired: run as root (namespaces, taps, nftables)")
    rows = []
    try:
        for case, mb in (("combined", args.mb), ("loss5", args.loss_mb)):
            nbytes = mb * MB
            for direction in ("kernel->stack", "stack->kernel"):
                r = trio.run(ours, case, direction, nbytes)
                sender = "stack" if direction == "stack->kernel" else "kernel"
                extra = (f"RTOs {r['rto']}, fast retransmits {r['fast']}, retransmitted {r['rexmit']}"
                         if sender == "stack" else f"kernel retransmitted {r['kernel_retrans']}")
                rows.append((case, mb, direction, r["rate"], extra))
                print(f"{case:9} {mb:4} MB  {direction:14} {r['rate']:7.1f} MB/s  {extra}", flush=True)
            if case == "combined":
                a, b, ip, relay = linux_pair_relay(combined_config(6))
                try:
                    r = linux_transfer(a, b, ip, nbytes, 8)
                finally:
                    relay.close()
                extra = f"kernel retransmitted {r['retrans']}; relay {relay.stats}"
            else:
                c, s, ip = linux_pair_router(5)
                r = linux_transfer(c, s, ip, nbytes, 8)
                extra = f"kernel retransmitted {r['retrans']}"
            rows.append((case, mb, "linux->linux", r["rate"], extra))
            print(f"{case:9} {mb:4} MB  {'linux->linux':14} {r['rate']:7.1f} MB/s  {extra}", flush=True)
    finally:
        for name in MADE:
            sh("ip", "netns", "del", name, check=False)
    print("\n| case | MB | direction | MB/s | notes |\n|---|---|---|---|---|")
    for case, mb, direction, rate, extra in rows:
        print(f"| {case} | {mb} | {direction} | {rate:.1f} | {extra} |")


if __name__ == "__main__":
    main()
