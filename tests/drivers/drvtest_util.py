"""Helpers shared by the driver tests (imported by conftest.py and the test modules).

Every namespace, veth and tap a test makes is named with the ``drvtest-`` prefix (or
``dt`` for Linux interface names, which must fit in 15 characters) plus our pid, and is
deleted by name in a ``finally``; nothing else on the machine is touched.
"""

import itertools
import os
import subprocess

import pytest
import trio
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from iopkt_fs.runtime import Runtime
from iopkt_fs.stack.config import StackConfig, V4_HC
from iopkt_fs.stack.stack import Stack

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (network namespaces, TAP)")
_counter = itertools.count()


def unique(prefix: str = "dt") -> str:
    """A Linux-interface-sized name unique to this test process (<= 15 characters)."""
    return f"{prefix}{os.getpid() % 100000}x{next(_counter)}"[:15]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=20)


def netns_fixture(prefix: str):
    """A fixture factory: ``netns()`` makes a fresh namespace named PREFIX-PID-N (lo up)
    and returns its name; every one made is deleted after the test."""

    @pytest.fixture
    def fixture():
        made: list[str] = []

        def make() -> str:
            name = f"{prefix}-{os.getpid()}-{next(_counter)}"
            sh("ip", "netns", "add", name)
            made.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            return name

        try:
            yield make
        finally:
            for name in made:
                sh("ip", "netns", "del", name, check=False)

    return fixture


netns = netns_fixture("drvtest")


class Harness:
    """A Stack + Runtime pair, a log, and the frames the stack was handed, per interface."""

    def __init__(self, seed: int = 1, raw: bool = True):
        self.logs: list[tuple[int, str]] = []
        # Frame-level tests count every frame: io-pkt-v4-hc, so no IPv6 link-local
        # address and DAD solicitation appear when an interface comes up.
        self.stack = Stack(StackConfig(seed=seed, variant=V4_HC) if raw else StackConfig(seed=seed))
        self.runtime = Runtime(self.stack, log=self._log)
        self.frames: dict[str, list[bytes]] = {}
        self.on_frame = None
        if raw:
            # Frame-level tests: we stand in for the protocol layer, recording what arrives
            # (the stack's own IPv4 layer would answer too). ``raw=False`` keeps the stack's.
            self.stack.frame_input = self._frame

    def _log(self, severity, text, major=None):
        self.logs.append((severity, text))

    def _frame(self, iface, frame, now, vh=None):
        data = bytes(frame)
        self.frames.setdefault(iface.name, []).append(data)
        if self.on_frame is not None:
            self.on_frame(iface, data)

    async def load(self, spec: str, options: str | None):
        driver = await self.runtime.load_driver(spec, options)
        for iface in driver.interfaces:
            self.stack.up(iface)
        return driver

    def send(self, iface, frame: bytes) -> None:
        self.stack.transmit(iface, bytes(frame))
        self.runtime.kick()

    def log_text(self) -> str:
        return "\n".join(text for _, text in self.logs)


async def _run(nursery, h):
    await nursery.start(h.runtime.run)
    try:
        yield h
    finally:
        h.runtime.shutdown()
    await trio.sleep(0)
    assert "task failed" not in h.log_text() and "detach failed" not in h.log_text(), h.log_text()


@pytest.fixture
async def host(nursery):
    """A stack with its real IPv4 layer (ARP, ICMP, UDP, forwarding)."""
    async for h in _run(nursery, Harness(seed=11, raw=False)):
        yield h


@pytest.fixture
async def host2(nursery):
    async for h in _run(nursery, Harness(seed=12, raw=False)):
        yield h


@pytest.fixture
async def harness(nursery):
    h = Harness()
    await nursery.start(h.runtime.run)
    try:
        yield h
    finally:
        h.runtime.shutdown()
    # Detaching must end receive tasks quietly (no ClosedResourceError, no EBADF).
    await trio.sleep(0)
    assert "task failed" not in h.log_text() and "detach failed" not in h.log_text(), h.log_text()


@pytest.fixture
async def harness2(nursery):
    h = Harness(seed=2)
    await nursery.start(h.runtime.run)
    try:
        yield h
    finally:
        h.runtime.shutdown()
    # Detaching must end receive tasks quietly (no ClosedResourceError, no EBADF).
    await trio.sleep(0)
    assert "task failed" not in h.log_text() and "detach failed" not in h.log_text(), h.log_text()


async def wait_until(predicate, timeout: float = 5.0, step: float = 0.02):
    """Poll ``predicate`` until true; fails the test after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(step)
        return True
    raise AssertionError(f"condition not met within {timeout}s")


def responder(h, our_ip: str, our_mac: str):
    """A tiny scapy host at our_ip: answers ARP and ICMP echo (standing in for the IPv4 core)."""
    counts = {"arp": 0, "echo": 0}

    def on_frame(iface, data):
        pkt = Ether(data)
        if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst == our_ip:
            counts["arp"] += 1
            reply = Ether(dst=pkt.src, src=our_mac) / ARP(
                op=2, hwsrc=our_mac, psrc=our_ip, hwdst=pkt[ARP].hwsrc, pdst=pkt[ARP].psrc)
            h.send(iface, bytes(reply))
        elif IP in pkt and ICMP in pkt and pkt[IP].dst == our_ip and pkt[ICMP].type == 8:
            counts["echo"] += 1
            ip = pkt[IP]
            reply = (Ether(dst=pkt.src, src=our_mac) / IP(src=our_ip, dst=ip.src) /
                     ICMP(type=0, id=pkt[ICMP].id, seq=pkt[ICMP].seq) / bytes(pkt[ICMP].payload))
            h.send(iface, bytes(reply))

    h.on_frame = on_frame
    return counts
