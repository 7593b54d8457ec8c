"""forward6 against the Linux kernel: two namespaces the test makes route through the
stack (io-pkt-v6-hc with net.inet6.ip6.forwarding=1), each over its own TAP.

    ns A (fd00:77:61::1) --tap-- stack (fd00:77:61::2 | fd00:77:62::2) --tap-- ns B (fd00:77:62::1)

The hop limit is decremented (the kernel's ping sees ttl=63), hop limit 1 gets Time
Exceeded, a packet over the far link's MTU gets Packet Too Big (ping -M do, and TCP from A
to B whose PMTU the kernel then lowers: byte-exact, SHA-256). Then the stack is the TCP
sender behind a Linux router with a 1280-byte link: the kernel's Packet Too Big lowers our
path MTU and our MSS follows. Redirects both ways on a three-node link (a bridge in ns X
with a veth to ns C): a Linux router redirects us to C, and we redirect a Linux host."""

import ipaddress
import os

import pytest
import trio

from iopkt_fs.runtime import now_us

from drvtest_util import needs_root, wait_until
from ktest_util import MB, kpeer, sh, tap_link
from test_e2e_inet import csum_errors  # TCP InCsumErrors: IPv6 counts there too
from test_ipv6_kernel import run
from test_tcp_kernel import stack_client

pytestmark = [pytest.mark.system, needs_root]


async def _v6_tap(h, knetns, net, opts=""):
    ns, dev, driver = await tap_link(h, knetns, net, opts)
    iface = driver.interfaces[0]
    h.stack.add_address(iface, ipaddress.ip_address(f"fd00:77:{net}::2"), 64)
    sh("ip", "-n", ns, "-6", "addr", "add", f"fd00:77:{net}::1/64", "dev", dev, "nodad")
    return ns, dev, iface


async def _kernel_to_kernel(ns_a, ns_b, dst, port, nbytes, seed):
    """TCP from A's kernel to B's (kpeer send/recv) through the stack: every byte, SHA-256."""
    out = {}

    async def receiver():
        out["recv"] = await kpeer(ns_b, "recv", port)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.sleep(0.3)
        out["send"] = await kpeer(ns_a, "send", dst, port, nbytes, seed)
    assert out["recv"]["sha256"] == out["send"]["sha256"] and out["recv"]["bytes"] == nbytes


async def _dad_done(iface):
    await wait_until(lambda: len(iface.inet6_addrs()) == 2 and all(not a.flags6 for a in iface.inet6_addrs()),
                     timeout=5)


async def test_forward6_hop_limit_time_exceeded_packet_too_big(kstack, knetns):
    stack = kstack.stack
    stack.sysctl.set("net.inet6.ip6.forwarding", 1)
    ns_a, dev_a, if_a = await _v6_tap(kstack, knetns, 61)
    ns_b, dev_b, if_b = await _v6_tap(kstack, knetns, 62)
    sh("ip", "-n", ns_a, "-6", "route", "add", "fd00:77:62::/64", "via", "fd00:77:61::2")
    sh("ip", "-n", ns_b, "-6", "route", "add", "fd00:77:61::/64", "via", "fd00:77:62::2")
    await _dad_done(if_a)
    await _dad_done(if_b)

    p = await run(ns_a, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:77:62::1")
    assert p.returncode == 0 and b"ttl=63" in p.stdout, p.stdout.decode() + p.stderr.decode()
    assert stack.inet6.stats.forward >= 6

    p = await run(ns_a, "ping", "-6", "-c", "1", "-W", "2", "-t", "1", "fd00:77:62::1")
    out = p.stdout.decode()
    assert p.returncode != 0 and "From fd00:77:61::2" in out and "Time exceeded: Hop limit" in out, out

    stack.set_mtu(if_b, 1280)
    p = await run(ns_a, "ping", "-6", "-c", "1", "-W", "2", "-M", "do", "-s", "1300", "fd00:77:62::1")
    out = p.stdout.decode() + p.stderr.decode()
    assert "Packet too big: mtu=1280" in out, out
    # TCP from A to B: the kernel's 1500-byte segments (super-frames over the TAP) meet
    # Packet Too Big; the kernel lowers its path MTU and everything arrives.
    await _kernel_to_kernel(ns_a, ns_b, "fd00:77:62::1", 5061, 4 * MB, 17)
    route = sh("ip", "-n", ns_a, "-6", "route", "get", "fd00:77:62::1").stdout
    assert "mtu 1280" in route, route


@pytest.mark.parametrize("far", ["offloads", "plain"])
async def test_forwarded_super_frames_go_on_whole_or_finished(kstack, knetns, far):
    """A's kernel sends TCP to B through the stack; A's TAP offloads, so its frames come
    as NEEDS_CSUM super-frames. With offloads on B's TAP too they leave whole (TSO6 on
    the far side: otso counts them, frames far over one MTU); with offload=0 they are
    cut and checksummed here (ogso). Either way B's kernel takes every byte (SHA-256)
    with no checksum error."""
    stack = kstack.stack
    stack.sysctl.set("net.inet6.ip6.forwarding", 1)
    ns_a, dev_a, if_a = await _v6_tap(kstack, knetns, 63)
    ns_b, dev_b, if_b = await _v6_tap(kstack, knetns, 64, "" if far == "offloads" else "offload=0")
    assert if_a.enabled and bool(if_b.enabled) == (far == "offloads")
    sh("ip", "-n", ns_a, "-6", "route", "add", "fd00:77:64::/64", "via", "fd00:77:63::2")
    sh("ip", "-n", ns_b, "-6", "route", "add", "fd00:77:63::/64", "via", "fd00:77:64::2")
    await _dad_done(if_a)
    await _dad_done(if_b)
    ip6 = stack.inet6.stats
    before = (ip6.otso, ip6.ogso, csum_errors(ns_b))
    await _kernel_to_kernel(ns_a, ns_b, "fd00:77:64::1", 5063, 20 * MB, 23)
    otso, ogso = ip6.otso - before[0], ip6.ogso - before[1]
    assert csum_errors(ns_b) == before[2]
    assert if_a.stats.ibytes > 4 * 1514 * if_a.stats.ipackets       # super-frames came in
    if far == "offloads":
        assert otso > 0 and ogso == 0
        assert if_b.stats.obytes > 4 * 1514 * if_b.stats.opackets   # and left whole
    else:
        assert ogso > 0 and otso == 0
        assert if_b.stats.obytes <= 1514 * if_b.stats.opackets      # cut to the MTU


async def test_packet_too_big_lowers_our_path_mtu_and_mss(kstack, knetns):
    """stack --tap-- ns R (Linux router) --veth-- ns C: the stack sends 4 MB to C. C's end
    of the veth keeps 1500 (so C announces MSS 1440); R's end has 1280, so R answers our
    full-sized segments with Packet Too Big."""
    stack = kstack.stack
    router, dev, iface = await _v6_tap(kstack, knetns, 63)
    client = knetns()
    a, b = f"kc{os.getpid() % 100000}x63"[:15], f"kr{os.getpid() % 100000}x63"[:15]
    sh("ip", "-n", client, "link", "add", a, "type", "veth", "peer", "name", b, "netns", router)
    sh("ip", "-n", router, "link", "set", b, "mtu", "1280")
    for ns, d, addr in ((client, a, "fd00:78:63::1/64"), (router, b, "fd00:78:63::2/64")):
        sh("ip", "-n", ns, "-6", "addr", "add", addr, "dev", d, "nodad")
        sh("ip", "-n", ns, "link", "set", d, "up")
    sh("ip", "-n", client, "-6", "route", "add", "default", "via", "fd00:78:63::2")
    sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    stack.inet6.routes.add("fd00:78:63::", ipaddress.IPv6Address("fd00:77:63::1"), prefixlen=64)
    await _dad_done(iface)
    far = ipaddress.IPv6Address("fd00:78:63::1").packed
    assert stack.inet6.path_mtu(far) == 1500
    kernel, ours, n, _elapsed, status = await stack_client(kstack, 5063, client, 4 * MB, 19,
                                                           "fd00:77:63::2", "fd00:78:63::1")
    assert n == 4 * MB and kernel["sha256"] == ours
    assert stack.inet6.path_mtu(far) == 1280
    assert status.smss <= 1280 - 60


async def _three_on_a_link(h, knetns, net):
    """The stack, ns X and ns C on one link: X's br0 holds the tap and a veth to C.
    X has fd00:77:NET::1, C fd00:77:NET::3 and fd00:99:NET::1 (on its lo), the stack
    fd00:77:NET::2. Returns (X, C, our interface, X's link-local, C's link-local)."""
    x, dev, iface = await _v6_tap(h, knetns, net)
    sh("ip", "-n", x, "-6", "addr", "flush", "dev", dev)
    c = knetns()
    for ns in (x, c):
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
    a, b = f"kc{os.getpid() % 100000}x{net}"[:15], f"kr{os.getpid() % 100000}x{net}"[:15]
    sh("ip", "-n", c, "link", "add", a, "type", "veth", "peer", "name", b, "netns", x)
    sh("ip", "-n", x, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    for port in (dev, b):
        sh("ip", "-n", x, "link", "set", port, "master", "br0")
        sh("ip", "-n", x, "link", "set", port, "up")
    sh("ip", "-n", x, "link", "set", "br0", "up")
    sh("ip", "-n", x, "-6", "addr", "add", f"fd00:77:{net}::1/64", "dev", "br0", "nodad")
    sh("ip", "-n", c, "link", "set", a, "up")
    sh("ip", "-n", c, "-6", "addr", "add", f"fd00:77:{net}::3/64", "dev", a, "nodad")
    sh("ip", "-n", c, "-6", "addr", "add", f"fd00:99:{net}::1/128", "dev", "lo")
    await _dad_done(iface)

    def ll(ns, d):
        out = sh("ip", "-n", ns, "-6", "addr", "show", "dev", d, "scope", "link").stdout
        return next((w.split("/")[0] for w in out.split() if w.startswith("fe80:")), None)

    await wait_until(lambda: ll(x, "br0") and ll(c, a), timeout=5)
    return x, c, iface, ll(x, "br0"), ll(c, a)


async def test_linux_router_redirects_us(kstack, knetns):
    """We are a host whose default router (Linux, X) sends our packets to C on the same
    link: X's Redirect makes a host route via C, and our packets then go to C directly."""
    stack = kstack.stack
    x, c, iface, x_ll, c_ll = await _three_on_a_link(kstack, knetns, 64)
    sh("ip", "netns", "exec", x, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    sh("ip", "-n", x, "-6", "route", "add", "fd00:99:64::/64", "via", c_ll, "dev", "br0")
    stack.inet6.routes.add("default", ipaddress.IPv6Address(x_ll), iface=iface)
    far = ipaddress.IPv6Address("fd00:99:64::1").packed
    icmp = stack.inet6.icmp
    for seq in range(4):
        icmp.send_echo(far, 0x64, seq, b"redirect me", now_us())
        kstack.runtime.settle()
        await trio.sleep(0.2)
    await wait_until(lambda: stack.inet6.redirect.stats.accepted >= 1, timeout=5)
    await wait_until(lambda: len(icmp.echo_replies) >= 3, timeout=5)
    route = stack.inet6.routes.lookup(int.from_bytes(far, "big"))
    assert route.prefixlen == 128 and route.describe()["gateway"] == c_ll and route.describe()["flags"] == "UGHD"
    _out, nexthop, _r = stack.inet6.route_to(far)
    assert nexthop == ipaddress.IPv6Address(c_ll).packed


async def test_we_redirect_a_linux_host(kstack, knetns):
    """We are X's default router and send its packets for fd00:99::/64 on to C, on the link
    they came from: our Redirect makes X's kernel go to C directly."""
    stack = kstack.stack
    stack.sysctl.set("net.inet6.ip6.forwarding", 1)
    x, c, iface, x_ll, c_ll = await _three_on_a_link(kstack, knetns, 65)
    ours_ll = next(str(a.address) for a in iface.inet6_addrs() if a.address.is_link_local)
    stack.inet6.routes.add("fd00:99:65::", ipaddress.IPv6Address(c_ll), prefixlen=64, iface=iface)
    sh("ip", "-n", x, "-6", "route", "add", "default", "via", ours_ll, "dev", "br0")
    p = await run(x, "ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", "fd00:99:65::1")
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    assert stack.inet6.redirect.stats.sent >= 1
    route = sh("ip", "-n", x, "-6", "route", "get", "fd00:99:65::1").stdout
    assert f"via {c_ll}" in route, route
