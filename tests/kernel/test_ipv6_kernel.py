"""IPv6 against the Linux kernel over TAP (io-pkt-v6-hc), in namespaces the tests create.

The kernel in the namespace has fd00:77:N::1/64 (nodad: it does not wait for its own
DAD) and its own link-local address; the stack has fd00:77:N::2/64 and its EUI-64
link-local address, both through DAD. ``ping -6`` both addresses (ND both ways: the
kernel's neighbour table learns our MAC and ours the kernel's), ``ping -6 -s 4000``
(fragments both ways), TCP 100 MB each way with SHA-256 with the TAP's offloads on
(the kernel's GSO_TCPV6 super-frames taken whole, ours cut by the kernel: TSO6) and off
(plain frames: GRO joins them coming in, software GSO cuts ours), and again with the
capabilities flipped mid-transfer; UDP both ways with the kernel's socket module. Addresses are ULAs inside the test's own namespace only.
"""

import ipaddress
import json
import sys

import pytest
import trio

from iopkt_fs.runtime import now_us

from drvtest_util import needs_root, wait_until
from ktest_util import MB, sh, tap_link
from test_tcp_kernel import stack_client, stack_server

pytestmark = [pytest.mark.kernel, needs_root]

NET = 40


async def v6_link(h, knetns, faults: str = ""):
    ns, dev, driver = await tap_link(h, knetns, NET, faults)
    iface = driver.interfaces[0]
    h.stack.add_address(iface, ipaddress.ip_address(f"fd00:77:{NET}::2"), 64)
    sh("ip", "-n", ns, "-6", "addr", "add", f"fd00:77:{NET}::1/64", "dev", dev, "nodad")
    # Ours pass DAD one RetransTimer after the first NS.
    await wait_until(lambda: all(not a.flags6 for a in iface.inet6_addrs()) and len(iface.inet6_addrs()) == 2,
                     timeout=5)
    ll = next(str(a.address) for a in iface.inet6_addrs() if a.address.is_link_local)
    return ns, dev, iface, ll


async def run(ns, *argv, timeout=30):
    with trio.fail_after(timeout):
        return await trio.run_process(["ip", "netns", "exec", ns, *argv], capture_stdout=True,
                                      capture_stderr=True, check=False)


async def test_ping6_link_local_global_and_fragments(kstack, knetns):
    ns, dev, iface, ll = await v6_link(kstack, knetns)
    assert ll == "fe80::" + ":".join(f"{w:x}" for w in _eui64_words(iface.mac))
    for target in (f"{ll}%{dev}", f"fd00:77:{NET}::2"):
        p = await run(ns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", target)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
        assert b" 0% packet loss" in p.stdout
    big = await run(ns, "ping", "-6", "-c", "2", "-i", "0.3", "-W", "2", "-s", "4000", f"fd00:77:{NET}::2")
    assert big.returncode == 0, big.stdout.decode()
    assert kstack.stack.inet6.stats.reassembled >= 2 and kstack.stack.inet6.stats.fragmented >= 2
    # ND both ways: the kernel knows our MAC, we know the kernel's.
    neigh = sh("ip", "-n", ns, "-6", "neigh", "show", "dev", dev).stdout
    assert iface.mac_text() in neigh.lower()
    kmac = sh("ip", "-n", ns, "link", "show", dev).stdout.split("link/ether")[1].split()[0]
    macs = {e["mac"] for e in kstack.stack.inet6.ndp_show()}
    assert kmac in macs


async def test_ping6_from_the_stack(kstack, knetns):
    ns, dev, iface, ll = await v6_link(kstack, knetns)
    icmp = kstack.stack.inet6.icmp
    dst = ipaddress.IPv6Address(f"fd00:77:{NET}::1").packed
    for seq in range(3):
        icmp.send_echo(dst, 0x77, seq, b"from the stack", now_us())
        kstack.runtime.settle()
        await trio.sleep(0.1)
    await wait_until(lambda: len(icmp.echo_replies) >= 3, timeout=5)
    assert {r[3] for r in icmp.echo_replies} == {0, 1, 2} and icmp.echo_replies[0][1] == dst


@pytest.mark.parametrize("offloads", ["on", "off"])
@pytest.mark.parametrize("direction", ["kernel->stack", "stack->kernel"])
async def test_tcp6_100mb(kstack, knetns, direction, offloads):
    ns, dev, iface, ll = await v6_link(kstack, knetns, "" if offloads == "on" else "offload=0")
    assert iface.vnet_hdr == 10 and bool(iface.enabled) == (offloads == "on")
    ip6, tcp = kstack.stack.inet6.stats, kstack.stack.tcp.stats
    before = (ip6.igso, ip6.otso, ip6.ogso, tcp.rcvgso)
    fn = stack_server if direction == "kernel->stack" else stack_client
    kernel, ours, n, elapsed, status = await fn(kstack, 5006, ns, 100 * MB, 11, f"fd00:77:{NET}::2",
                                                f"fd00:77:{NET}::1")
    assert n == 100 * MB and kernel["sha256"] == ours
    assert status.smss <= 1500 - 60 - 12   # MSS from the IPv6 MTU, less timestamps
    igso, otso, ogso, rcvgso = (a - b for a, b in zip((ip6.igso, ip6.otso, ip6.ogso, tcp.rcvgso), before))
    if direction == "kernel->stack":
        # On: the kernel's GSO_TCPV6 super-frames arrive whole. Off: plain frames, joined
        # by GRO into segments larger than one MSS just the same.
        assert igso > 0 if offloads == "on" else (igso == 0 and rcvgso > 0)
    else:
        # On: super-segments leave whole for the kernel to cut (TSO6). Off: cut here.
        assert (otso > 0 and ogso == 0) if offloads == "on" else (otso == 0 and ogso > 0)
    print(f"IPv6 {direction}, offloads {offloads}: {n / MB:.0f} MB in {elapsed:.2f} s; "
          f"igso {igso} otso {otso} ogso {ogso} rcvgso {rcvgso}")


@pytest.mark.parametrize("direction", ["kernel->stack", "stack->kernel"])
async def test_tcp6_capabilities_flipped_mid_transfer_lose_nothing(kstack, knetns, direction):
    """ifconfig ltap0 -tso6 -tcp6csum ... and back every 5 ms while 40 MB cross over
    IPv6: our output moves between TSO6 and software GSO under a live connection."""
    ns, dev, iface, ll = await v6_link(kstack, knetns)
    caps = iface.capabilities
    assert caps
    flips = 0
    done = trio.Event()

    async def flipper():
        nonlocal flips
        while not done.is_set() and flips < 400:
            if flips % 2 == 0:
                kstack.stack.set_capabilities(iface, disable=caps)
            else:
                kstack.stack.set_capabilities(iface, enable=caps)
            flips += 1
            await trio.sleep(0.005)

    fn = stack_server if direction == "kernel->stack" else stack_client
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flipper)
        kernel, ours, n, _elapsed, _status = await fn(kstack, 5007, ns, 40 * MB, 12, f"fd00:77:{NET}::2",
                                                      f"fd00:77:{NET}::1")
        done.set()
    assert kernel["sha256"] == ours and n == 40 * MB
    assert flips >= 4


async def test_udp6_both_ways(kstack, knetns):
    ns, dev, iface, ll = await v6_link(kstack, knetns)
    stack = kstack.stack
    sock = stack.inet.udp.socket()
    sock.bind(None, 7007)
    code = (
        "import socket, json, sys\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "s.bind(('::', 7008)); s.settimeout(10)\n"
        f"s.sendto(b'kernel says hi', ('fd00:77:{NET}::2', 7007))\n"
        "data, peer = s.recvfrom(100)\n"
        "print(json.dumps({'data': data.decode(), 'peer': peer[0], 'port': peer[1]}))\n")
    result = {}

    async def kernel():
        p = await run(ns, sys.executable, "-c", code)
        assert p.returncode == 0, p.stderr.decode()
        result.update(json.loads(p.stdout.decode().strip().splitlines()[-1]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel)
        await wait_until(lambda: bool(sock.rxq), timeout=10)
        data, (host, port) = sock.recvfrom()
        assert (data, host, port) == (b"kernel says hi", f"fd00:77:{NET}::1", 7008)
        sock.sendto(b"stack says hi", host, port, now_us())
        kstack.runtime.settle()
    assert result == {"data": "stack says hi", "peer": f"fd00:77:{NET}::2", "port": 7007}


def _eui64_words(mac: bytes):
    b = bytes((mac[0] ^ 2, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))
    return [int.from_bytes(b[i:i + 2], "big") for i in range(0, 8, 2)]
