"""devnp-tap against the real Linux kernel in a namespace the test owns."""

import errno
import sys

import pytest
import trio
from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP, Ether

from iopkt_fs.stack.errors import StackError

from drvtest_util import needs_root, responder, sh, unique, wait_until

pytestmark = [pytest.mark.kernel, needs_root]

OUR_MAC = "02:00:5e:10:00:02"
OUR_IP = "10.77.0.2"
KERNEL_IP = "10.77.0.1"


def link_exists(ns: str, dev: str) -> bool:
    return sh("ip", "-n", ns, "link", "show", dev, check=False).returncode == 0


async def test_tap_created_in_netns_kernel_arp_and_ping(harness, netns):
    ns = netns()
    dev = unique("dtt")
    driver = await harness.load("devnp-tap", f"dev={dev},netns={ns},mac={OUR_MAC},mtu=1400")
    iface = driver.interfaces[0]
    assert iface.name == "ltap0" and iface.mac.hex(":") == OUR_MAC and iface.mtu == 1400
    assert link_exists(ns, dev) and driver.created
    assert "mtu 1400" in sh("ip", "-n", ns, "link", "show", dev).stdout
    # The Linux side starts down: no carrier for us.
    assert iface.link_up is False
    sh("ip", "-n", ns, "addr", "add", f"{KERNEL_IP}/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    await wait_until(lambda: iface.link_up)

    counts = responder(harness, OUR_IP, OUR_MAC)
    result = await trio.run_process(
        ["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", OUR_IP],
        capture_stdout=True, check=False)
    assert result.returncode == 0, result.stdout
    assert counts["arp"] >= 1 and counts["echo"] == 3
    # The kernel learnt our MAC from the ARP reply we transmitted.
    neigh = sh("ip", "-n", ns, "neigh", "show", OUR_IP, "dev", dev).stdout
    assert OUR_MAC in neigh
    assert iface.stats.ipackets >= 4 and iface.stats.opackets >= 4 and iface.stats.oerrors == 0

    # Carrier follows the Linux side.
    sh("ip", "-n", ns, "link", "set", dev, "down")
    await wait_until(lambda: not iface.link_up)
    assert "none" in iface.media
    sh("ip", "-n", ns, "link", "set", dev, "up")
    await wait_until(lambda: iface.link_up)

    harness.runtime.unload_driver(driver)
    assert not link_exists(ns, dev)   # we made it, so it is gone


async def _tap_in(harness, ns: str, prefix: str):
    """devnp-tap into ``ns`` with our MAC; the kernel's side KERNEL_IP/24 and up.
    Returns (device name, driver, interface)."""
    dev = unique(prefix)
    driver = await harness.load("devnp-tap", f"dev={dev},netns={ns},mac={OUR_MAC}")
    sh("ip", "-n", ns, "addr", "add", f"{KERNEL_IP}/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    return dev, driver, driver.interfaces[0]


async def test_tap_gratuitous_arp_reaches_neighbour_table(harness, netns):
    ns = netns()
    dev, _, iface = await _tap_in(harness, ns, "dtt")
    # Without arp_accept the kernel only updates entries it has; with it, a gratuitous
    # ARP creates one (RFC 5227 announcement semantics).
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.conf.{dev}.arp_accept=1")
    await wait_until(lambda: iface.link_up)
    garp = Ether(dst="ff:ff:ff:ff:ff:ff", src=OUR_MAC) / ARP(
        op=1, hwsrc=OUR_MAC, psrc=OUR_IP, hwdst="00:00:00:00:00:00", pdst=OUR_IP)
    harness.send(iface, bytes(garp))

    def learnt():
        return OUR_MAC in sh("ip", "-n", ns, "neigh", "show", OUR_IP, "dev", dev).stdout
    await wait_until(learnt, timeout=3)


BURST = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    s.sendto(b"n%d" % i, ("{ip}", 9999))
"""


async def test_tap_reads_every_frame_of_a_burst_after_lone_frames(harness, netns):
    """Single datagrams some time apart (each wake-up takes one frame, as a ping does),
    then bursts sent faster than one wake-up reads: every datagram reaches the stack once,
    in the order sent, lone frame or burst."""
    ns = netns()
    dev, driver, iface = await _tap_in(harness, ns, "dtl")
    sh("ip", "-n", ns, "neigh", "replace", OUR_IP, "lladdr", OUR_MAC, "dev", dev, "nud", "permanent")
    await wait_until(lambda: iface.link_up)
    got: list[int] = []

    def on_frame(_iface, data):
        pkt = Ether(data)
        if UDP in pkt and pkt[UDP].dport == 9999:
            got.append(int(bytes(pkt[UDP].payload)[1:]))
    harness.on_frame = on_frame

    async def send(first, end):
        await trio.run_process(["ip", "netns", "exec", ns, sys.executable, "-c",
                                BURST.format(ip=OUR_IP), str(first), str(end)])
        await wait_until(lambda: len(got) >= end)

    sent = 0
    for burst in (1, 1, 1, 200, 1, 1, 50, 1, 300):
        for _ in range(3 if burst == 1 else 1):
            await send(sent, sent + burst)
            sent += burst
            await trio.sleep(0.01)
    assert got == list(range(sent))
    assert iface.stats.ierrors == 0
    harness.runtime.unload_driver(driver)


async def test_tap_existing_device_is_kept(harness, netns):
    ns = netns()
    dev = unique("dtp")
    sh("ip", "-n", ns, "tuntap", "add", "dev", dev, "mode", "tap")
    sh("ip", "-n", ns, "link", "set", dev, "mtu", "9000")
    driver = await harness.load("devnp-tap", f"dev={dev},netns={ns}")
    iface = driver.interfaces[0]
    assert not driver.created and iface.mtu == 9000   # a device we found keeps its MTU
    assert iface.mac[0] & 0x02 and not iface.mac[0] & 0x01   # random, locally administered
    harness.runtime.unload_driver(driver)
    assert link_exists(ns, dev)   # a persistent tap someone else made stays


async def test_tap_default_name_and_option_errors(harness, netns):
    ns = netns()
    driver = await harness.load("tap", f"netns={ns}")
    assert driver.dev.startswith("tap") and link_exists(ns, driver.dev)
    assert driver.interfaces[0].mtu == 1500
    harness.runtime.unload_driver(driver)
    assert not link_exists(ns, driver.dev)

    for options, text in [("dev=x,speed=10", "unknown option"), ("netns=drvtest-none-such", "no such network namespace"),
                          ("mac=01:00:00:00:00:01", "multicast"), ("mtu=20", "out of range")]:
        with pytest.raises(StackError) as info:
            await harness.runtime.load_driver("devnp-tap", options)
        assert text in info.value.message
    assert "Unable to init devnp-tap: unknown option 'speed'" in harness.log_text()
    with pytest.raises(StackError) as info:
        await harness.runtime.load_driver("devnp-tap", "dev=x,speed=10")
    assert info.value.errno == errno.EINVAL
