"""Helpers for the TCP-against-the-Linux-kernel tests.

Every namespace is ``ktcp-<pid>-<n>`` and every tap ``kt<pid>x<n>``; both are deleted by
name afterwards (a tap we create dies with its fd, the namespace with ``ip netns del``).
Traffic stays inside those namespaces: the stack's end of each tap is in this process,
the kernel's end in the namespace.
"""

import hashlib
import ipaddress
import itertools
import json
import os
import subprocess
import sys

import pytest
import trio

from drvtest_util import Harness, netns_fixture, wait_until

KPEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kpeer.py")
_counter = itertools.count()
MB = 1_000_000


def sh(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=20,
                          input=input)


knetns = netns_fixture("ktcp")


@pytest.fixture
async def kstack(nursery):
    """A Stack + Runtime with its IPv4 and TCP layers, running for the test."""
    h = Harness(seed=41, raw=False)
    await nursery.start(h.runtime.run)
    try:
        yield h
    finally:
        h.runtime.shutdown()
    await trio.sleep(0)


async def tap_link(h, netns, net: int, faults: str = "", ns: str | None = None):
    """A tap between the stack (10.77.NET.2) and a namespace's kernel (10.77.NET.1)."""
    ns = ns or netns()
    dev = f"kt{os.getpid() % 100000}x{next(_counter)}"[:15]
    opts = f"dev={dev},netns={ns}" + (f",{faults}" if faults else "")
    driver = await h.load("devnp-tap", opts)
    iface = driver.interfaces[0]
    h.stack.add_address(iface, ipaddress.ip_address(f"10.77.{net}.2"), 24)
    sh("ip", "-n", ns, "addr", "add", f"10.77.{net}.1/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    await wait_until(lambda: iface.link_up)
    return ns, dev, driver


async def lossy_link(h, netns, net: int, pct: int):
    """Kernel-side loss without netem: the kernel peer sits one routed hop away and the
    router namespace drops pct % of forwarded TCP in its nftables ``forward`` hook.

        client ns (10.78.NET.1) --veth-- router ns (10.78.NET.2 | 10.77.NET.1) --tap-- stack

    A routed hop, because the peer's own hooks cannot lose its packets: Linux TCP sees a
    packet refused in its ``output`` (or egress) hook as a local error and sends it again,
    so nothing is lost on the wire. Dropped in another namespace's ``forward`` hook it is
    gone as on a real link, in both directions. ``gso_max_segs 1`` on the client's veth
    keeps 64 KB GSO bursts away from the hook: each drop is one segment.
    Returns (client namespace, router namespace, the client's address).
    """
    router, dev, driver = await tap_link(h, netns, net)
    client = netns()
    a, b = f"kc{os.getpid() % 100000}x{next(_counter)}"[:15], f"kr{os.getpid() % 100000}x{next(_counter)}"[:15]
    sh("ip", "-n", client, "link", "add", a, "type", "veth", "peer", "name", b, "netns", router)
    sh("ip", "-n", client, "link", "set", a, "gso_max_segs", "1")
    sh("ip", "-n", client, "addr", "add", f"10.78.{net}.1/24", "dev", a)
    sh("ip", "-n", router, "addr", "add", f"10.78.{net}.2/24", "dev", b)
    sh("ip", "-n", client, "link", "set", a, "up")
    sh("ip", "-n", router, "link", "set", b, "up")
    sh("ip", "-n", client, "route", "add", "default", "via", f"10.78.{net}.2")
    sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    h.stack.inet.route_add(f"10.78.{net}.0", f"10.77.{net}.1", prefixlen=24)
    rules = (
        "table inet ktcploss {\n"
        "  chain kfwd {\n    type filter hook forward priority 0; policy accept;\n"
        f"    meta l4proto tcp numgen random mod 100 < {pct} counter drop\n  }}\n"
        "}\n")
    sh("ip", "netns", "exec", router, "nft", "-f", "-", input=rules)
    return client, router, f"10.78.{net}.1"


def nft_drops(ns: str) -> int:
    """Packets dropped by lossy_link's rule."""
    out = sh("ip", "netns", "exec", ns, "nft", "list", "ruleset").stdout
    return sum(int(line.split("packets")[1].split()[0]) for line in out.splitlines()
               if "counter packets" in line)


async def kpeer(ns: str, *args, timeout: float = 120) -> dict:
    """Run kpeer.py in the namespace; its last stdout line, parsed."""
    with trio.fail_after(timeout):
        proc = await trio.run_process(
            ["ip", "netns", "exec", ns, sys.executable, KPEER, *map(str, args)],
            capture_stdout=True, capture_stderr=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def expected_sha(nbytes: int, seed: int) -> str:
    from kpeer import chunks
    h = hashlib.sha256()
    for c in chunks(nbytes, seed):
        h.update(c)
    return h.hexdigest()
