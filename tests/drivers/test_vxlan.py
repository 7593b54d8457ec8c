"""devnp-vxlan: two instances over loopback (no root), and a Linux vxlan device joining."""

import errno
import random
import socket
import struct

import pytest
import trio
from scapy.layers.l2 import ARP, Ether

from iopkt_fs.drivers.vxlan import parse_endpoint
from iopkt_fs.stack.errors import StackError

from drvtest_util import needs_root, responder, sh, wait_until

MAC1 = "02:00:00:00:01:01"
MAC2 = "02:00:00:00:02:02"


def free_port() -> int:
    # A random high port, checked free on both addresses we use (loopback is ours).
    for _ in range(50):
        port = random.randrange(20000, 60000)
        try:
            for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port")


def bcast(src: str, tag: int) -> bytes:
    return bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=src, type=0x88B5) / struct.pack("!I", tag).ljust(46, b"\0"))


def unicast(dst: str, src: str, tag: int) -> bytes:
    return bytes(Ether(dst=dst, src=src, type=0x88B5) / struct.pack("!I", tag).ljust(46, b"\0"))


async def test_two_instances_exchange_frames(harness, harness2):
    port = free_port()
    d1 = await harness.load("devnp-vxlan", f"vni=4242,bind=127.0.0.2:{port},peer=127.0.0.3:{port},mac={MAC1}")
    d2 = await harness2.load("vxlan", f"vni=4242,bind=127.0.0.3:{port},peer=127.0.0.3:{port},peer=127.0.0.2,mac={MAC2}")
    vx1, vx2 = d1.interfaces[0], d2.interfaces[0]
    # Bound and peered on loopback: the underlay is lo, so the MTU is lo's less 50 (capped).
    assert vx1.name == "vx0" and vx1.mtu == 65000 and vx1.link_up

    # Broadcast floods to every peer (d2 also lists itself: its own copy is dropped).
    harness.send(vx1, bcast(MAC1, 1))
    await wait_until(lambda: len(harness2.frames.get("vx0", [])) == 1)
    assert harness2.frames["vx0"][0] == bcast(MAC1, 1)
    # d2 learnt MAC1 at 127.0.0.2: its unicast reply goes to that one endpoint.
    assert d2.fdb[bytes.fromhex(MAC1.replace(":", ""))][0] == ("127.0.0.2", port)
    harness2.send(vx2, unicast(MAC1, MAC2, 2))
    await wait_until(lambda: len(harness.frames.get("vx0", [])) == 1)
    assert harness.frames["vx0"][0] == unicast(MAC1, MAC2, 2)
    assert d2.stats.unicast == 1

    # Many frames both ways, delivered in batches, none lost on loopback.
    for i in range(300):
        harness.send(vx1, unicast(MAC2, MAC1, 1000 + i))
    await wait_until(lambda: len(harness2.frames["vx0"]) == 301)
    assert [struct.unpack_from("!I", f, 14)[0] for f in harness2.frames["vx0"][1:]] == list(range(1000, 1300))
    assert d1.stats.drops == 0 and d2.stats.drops == 0
    # They travelled as UDP GSO bursts and arrived as GRO reads (this kernel has both),
    # in order and whole, each datagram a plain VXLAN packet.
    assert d1.stats.gso_sends >= 1 and d2.stats.gro_reads >= 1
    # d2 floods to itself too (it is in its own peer list): that copy is dropped, not input.
    harness2.send(vx2, bcast(MAC2, 3))
    await wait_until(lambda: len(harness.frames["vx0"]) == 2 and d2.stats.drops_self == 1)
    assert len(harness2.frames["vx0"]) == 301


async def test_wire_format_and_bad_datagrams(harness):
    port = free_port()
    driver = await harness.load("devnp-vxlan", f"vni=0x123456,bind=127.0.0.2:{port},peer=127.0.0.4:{port},mac={MAC1}")
    iface = driver.interfaces[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.4", port))
        raw.settimeout(2)
        frame = bcast(MAC1, 7)
        harness.send(iface, frame)
        data = await trio.to_thread.run_sync(raw.recv, 2048)
        # RFC 7348 §5: flags 0x08 (I), 24 reserved bits, 24-bit VNI, 8 reserved bits.
        assert data[:8] == bytes([0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]) and data[8:] == frame

        good = unicast(MAC1, MAC2, 9)
        dst = ("127.0.0.2", port)
        raw.sendto(struct.pack("!B3xI", 0x08, 0x123457 << 8) + good, dst)   # another VNI
        raw.sendto(struct.pack("!B3xI", 0x00, 0x123456 << 8) + good, dst)   # I flag clear
        raw.sendto(struct.pack("!B3xI", 0x08, 0x123456 << 8) + good[:10], dst)  # short
        # Reserved bits set are ignored on receipt (RFC 7348 §5).
        raw.sendto(struct.pack("!B3sI", 0xFF, b"\x01\x02\x03", (0x123456 << 8) | 0x99) + good, dst)
        await wait_until(lambda: driver.stats.drops == 3 and len(harness.frames.get("vx0", [])) == 1)
        assert (driver.stats.drops_vni, driver.stats.drops_flags, driver.stats.drops_short) == (1, 1, 1)
        assert harness.frames["vx0"] == [good]


async def test_option_errors(harness):
    for options, text in [("bind=127.0.0.2:1", "vni= is required"), ("vni=16777216", "out of range"),
                          ("vni=1,bind=nowhere", "not ADDR:PORT"), ("vni=1,group=10.0.0.1", "not a multicast"),
                          ("vni=1,peer=::1", "address family"), ("vni=1,colour=blue", "unknown option")]:
        with pytest.raises(StackError) as info:
            await harness.runtime.load_driver("devnp-vxlan", options)
        assert info.value.errno == errno.EINVAL and text in info.value.message
    assert parse_endpoint("[::1]:99", 4789, "peer") == ("::1", 99)
    assert parse_endpoint("10.1.2.3", 4789, "peer") == ("10.1.2.3", 4789)


def _segment(netns, mode: str):
    """Namespace A: a Linux vxlan device; namespace B: where our socket lives; a veth between."""
    a, b = netns(), netns()
    sh("ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
    sh("ip", "-n", a, "addr", "add", "10.78.0.1/24", "dev", "va")
    sh("ip", "-n", b, "addr", "add", "10.78.0.2/24", "dev", "vb")
    sh("ip", "-n", a, "link", "set", "va", "up")
    sh("ip", "-n", b, "link", "set", "vb", "up")
    where = ["remote", "10.78.0.2"] if mode == "unicast" else ["group", "239.7.7.7"]
    sh("ip", "-n", a, "link", "add", "vx0", "type", "vxlan", "id", "77", "local", "10.78.0.1", *where,
       "dev", "va", "dstport", "4789")
    sh("ip", "-n", a, "addr", "add", "10.79.0.1/24", "dev", "vx0")
    sh("ip", "-n", a, "link", "set", "vx0", "up")
    ours = "peer=10.78.0.1:4789" if mode == "unicast" else "group=239.7.7.7"
    return a, b, f"vni=77,bind=10.78.0.2:4789,{ours},netns={b},mac={MAC1}"


@pytest.mark.kernel
@needs_root
@pytest.mark.parametrize("mode", ["unicast", "multicast"])
async def test_linux_vxlan_device_joins(harness, netns, mode):
    a, _, options = _segment(netns, mode)
    driver = await harness.load("devnp-vxlan", options)
    counts = responder(harness, "10.79.0.2", MAC1)
    # The kernel's ARP request crosses as a flood (Linux -> us), our reply and the echo
    # replies go back to the endpoint learnt from it (us -> Linux).
    result = await trio.run_process(
        ["ip", "netns", "exec", a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.79.0.2"],
        capture_stdout=True, check=False)
    assert result.returncode == 0, result.stdout
    assert counts["arp"] >= 1 and counts["echo"] == 3
    assert MAC1 in sh("ip", "-n", a, "neigh", "show", "10.79.0.2").stdout
    assert driver.fdb and driver.stats.drops == 0
    # Our broadcast reaches the Linux side too: a gratuitous ARP for a new address.
    sh("ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv4.conf.vx0.arp_accept=1")
    harness.send(driver.interfaces[0], bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC1) / ARP(
        op=1, hwsrc=MAC1, psrc="10.79.0.9", pdst="10.79.0.9")))
    await wait_until(lambda: MAC1 in sh("ip", "-n", a, "neigh", "show", "10.79.0.9").stdout, timeout=3)
