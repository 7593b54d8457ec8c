"""Driver figures, measured in one run (not timed tests): run with IOPKT_BENCH=1 -s.

* ping RTT kernel -> stack over TAP (median of 100) against kernel -> kernel over a veth;
* frames/s kernel -> driver (raw harness: driver + runtime only) and UDP datagrams/s
  kernel -> stack (full IPv4/UDP input) over TAP;
* frames/s between two instances over devnp-vxlan on loopback.
"""

import os
import statistics

import pytest
import trio

from test_e2e_inet import kernel, tap_host, udp_script
from test_vxlan import MAC1, MAC2, free_port, unicast
from drvtest_util import needs_root, sh, unique, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("IOPKT_BENCH"), reason="set IOPKT_BENCH=1")]


def rtts(stdout: bytes) -> list[float]:
    return [float(line.split(b"time=")[1].split()[0]) for line in stdout.splitlines() if b"time=" in line]


def flood(dst: str, seconds: float, size: int = 64) -> list[str]:
    return udp_script(
        "import time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"data = b'x' * {size}; end = time.monotonic() + {seconds}; n = 0\n"
        "while time.monotonic() < end:\n"
        "    for _ in range(200):\n"
        "        try:\n"
        f"            s.sendto(data, ('{dst}', 5000)); n += 1\n"
        "        except OSError:\n            pass\n"
        "print(n)\n")


@needs_root
async def test_bench_tap_ping_and_udp(host, netns):
    ns, dev, iface = await tap_host(host, netns, "10.96.0.1", "10.96.0.2")
    r = await kernel(ns, "ping", "-c", "100", "-i", "0.005", "-W", "2", "10.96.0.2", timeout=30)
    stack_rtt = statistics.median(rtts(r.stdout))
    # kernel -> kernel: a veth pair into a second namespace.
    other = netns()
    sh("ip", "-n", ns, "link", "add", "ka", "type", "veth", "peer", "name", "kb", "netns", other)
    sh("ip", "-n", ns, "addr", "add", "10.97.0.1/24", "dev", "ka")
    sh("ip", "-n", other, "addr", "add", "10.97.0.2/24", "dev", "kb")
    sh("ip", "-n", ns, "link", "set", "ka", "up")
    sh("ip", "-n", other, "link", "set", "kb", "up")
    r = await kernel(ns, "ping", "-c", "100", "-i", "0.005", "-W", "2", "10.97.0.2", timeout=30)
    veth_rtt = statistics.median(rtts(r.stdout))

    sock = host.stack.inet.udp.socket()
    sock.bind("10.96.0.2", 5000)
    frames_before = iface.stats.ipackets
    start = trio.current_time()
    r = await kernel(ns, *flood("10.96.0.2", 2.0), timeout=30)
    elapsed = trio.current_time() - start
    sent = int(r.stdout)
    received = iface.stats.ipackets - frames_before
    print(f"\nping kernel->stack over TAP median {stack_rtt:.3f} ms; kernel->kernel veth {veth_rtt:.3f} ms "
          f"(ratio {stack_rtt / veth_rtt:.1f})")
    print(f"UDP kernel->stack over TAP: sent {sent / elapsed:,.0f}/s, stack took in {received / elapsed:,.0f} frames/s "
          f"({received / max(sent, 1):.0%})")


@needs_root
async def test_bench_tap_raw_driver(harness, netns):
    ns = netns()
    dev = unique("dtb")
    driver = await harness.load("devnp-tap", f"dev={dev},netns={ns},mac=02:00:00:00:0b:02")
    iface = driver.interfaces[0]
    sh("ip", "-n", ns, "addr", "add", "10.98.0.1/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    sh("ip", "-n", ns, "neigh", "add", "10.98.0.2", "lladdr", "02:00:00:00:0b:02", "dev", dev)
    await wait_until(lambda: iface.link_up)
    count = [0]
    harness.stack.frame_input = lambda i, f, now: count.__setitem__(0, count[0] + 1)
    start = trio.current_time()
    r = await kernel(ns, *flood("10.98.0.2", 2.0), timeout=30)
    elapsed = trio.current_time() - start
    print(f"\nTAP driver alone: kernel sent {int(r.stdout) / elapsed:,.0f}/s, driver delivered "
          f"{count[0] / elapsed:,.0f} frames/s in batches")


async def test_bench_vxlan(harness, harness2):
    port = free_port()
    d1 = await harness.load("devnp-vxlan", f"vni=5,bind=127.0.0.2:{port},peer=127.0.0.3:{port},mac={MAC1}")
    await harness2.load("devnp-vxlan", f"vni=5,bind=127.0.0.3:{port},peer=127.0.0.2:{port},mac={MAC2}")
    count = [0]
    harness2.stack.frame_input = lambda i, f, now: count.__setitem__(0, count[0] + 1)
    frame = unicast(MAC2, MAC1, 1)
    vx = d1.interfaces[0]
    start = trio.current_time()
    sent = 0
    while trio.current_time() - start < 2.0:
        d1.transmit(vx, [frame] * 128)
        sent += 128
        await trio.sleep(0)
    await trio.sleep(0.1)
    elapsed = trio.current_time() - start
    print(f"\nVXLAN loopback: sent {sent / elapsed:,.0f} frames/s, received {count[0] / elapsed:,.0f} frames/s")
