"""End to end with the stack's own IPv4 core: the Linux kernel (and Linux vxlan) as peers."""

import ipaddress
import subprocess
import sys

import pytest
import trio
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap, wrpcap

from iopkt_fs.runtime import now_us
from iopkt_fs.stack.errors import StackError

from drvtest_util import needs_root, sh, unique, wait_until



async def kernel(ns: str, *argv: str, timeout: float = 15):
    with trio.fail_after(timeout):
        return await trio.run_process(["ip", "netns", "exec", ns, *argv], capture_stdout=True,
                                      capture_stderr=True, check=False)


async def tap_host(host, netns, kernel_ip: str, our_ip: str, prefix: int = 24, ns: str | None = None,
                   opts: str = ""):
    """A tap whose Linux side (in a fresh namespace) has kernel_ip; the stack side has our_ip."""
    ns = ns or netns()
    dev = unique("dte")
    driver = await host.load("devnp-tap", f"dev={dev},netns={ns}" + (f",{opts}" if opts else ""))
    iface = driver.interfaces[0]
    host.stack.add_address(iface, ipaddress.ip_address(our_ip), prefix)
    sh("ip", "-n", ns, "addr", "add", f"{kernel_ip}/{prefix}", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    await wait_until(lambda: iface.link_up)
    return ns, dev, iface


def udp_script(body: str) -> list[str]:
    return [sys.executable, "-c", "import socket, sys\n" + body]


@pytest.mark.kernel
@needs_root
async def test_kernel_pings_stack_over_tap(host, netns):
    ns, dev, iface = await tap_host(host, netns, "10.90.0.1", "10.90.0.2")
    result = await kernel(ns, "ping", "-c", "5", "-i", "0.05", "-W", "2", "10.90.0.2")
    assert result.returncode == 0, result.stdout
    assert iface.mac.hex(":") in sh("ip", "-n", ns, "neigh", "show", "10.90.0.2").stdout
    # 4000 bytes over a 1500 MTU: fragments to us, reassembly, fragments back.
    result = await kernel(ns, "ping", "-c", "2", "-i", "0.1", "-W", "2", "-s", "4000", "10.90.0.2")
    assert result.returncode == 0 and b"4008 bytes from 10.90.0.2" in result.stdout, result.stdout


@pytest.mark.kernel
@needs_root
async def test_udp_both_ways_and_port_unreachable(host, netns):
    ns, dev, iface = await tap_host(host, netns, "10.91.0.1", "10.91.0.2")
    sock = host.stack.inet.udp.socket()
    sock.bind("10.91.0.2", 5000)

    async def echo_server():
        # Answer one datagram, upper-cased, from the stack's socket.
        while True:
            try:
                data, (addr, port) = sock.recvfrom()
            except StackError:
                await trio.sleep(0.01)
                continue
            sock.sendto(data.upper(), addr, port, now_us())
            host.runtime.kick()
            return

    script = udp_script(
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n"
        "s.sendto(b'hello stack', ('10.91.0.2', 5000)); print(s.recvfrom(100)[0].decode())\n"
        "c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(3)\n"
        "c.connect(('10.91.0.2', 5999)); c.send(b'anyone?')\n"
        "try:\n    c.recv(100); print('no error')\n"
        "except ConnectionRefusedError:\n    print('ECONNREFUSED')\n")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_server)
        result = await kernel(ns, *script)
    assert result.stdout.decode().split() == ["HELLO", "STACK", "ECONNREFUSED"], result.stderr


@pytest.mark.kernel
@needs_root
async def test_forwarding_between_two_taps(host, netns):
    a, _, _ = await tap_host(host, netns, "10.92.1.1", "10.92.1.2")
    b, _, _ = await tap_host(host, netns, "10.92.2.1", "10.92.2.2")
    sh("ip", "-n", a, "route", "add", "default", "via", "10.92.1.2")
    sh("ip", "-n", b, "route", "add", "default", "via", "10.92.2.2")
    host.stack.sysctl.set("net.inet.ip.forwarding", 1)
    result = await kernel(a, "ping", "-c", "3", "-i", "0.05", "-W", "2", "10.92.2.1")
    assert result.returncode == 0, result.stdout
    # B's kernel answers with TTL 64; one hop through the stack makes it 63.
    assert b"ttl=63" in result.stdout
    host.stack.sysctl.set("net.inet.ip.forwarding", 0)
    result = await kernel(a, "ping", "-c", "2", "-i", "0.1", "-W", "1", "10.92.2.1")
    assert result.returncode != 0


def csum_errors(ns: str) -> int:
    """InCsumErrors of a namespace's TCP (/proc/net/snmp "Tcp:" rows)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"], capture_output=True,
                         text=True, check=True).stdout
    rows = [line.split()[1:] for line in out.splitlines() if line.startswith("Tcp:")]
    return int(dict(zip(rows[0], rows[1]))["InCsumErrors"])


@pytest.mark.kernel
@needs_root
async def test_forwarded_offloaded_frames_reach_a_plain_link_finished(host, netns):
    """A's kernel sends TCP through the stack to B. A's TAP offloads (its frames come
    NEEDS_CSUM, as 64 KB super-frames); B's has none (offload=0): the stack finishes the
    checksums and cuts the super-frames in software, and B's kernel takes every byte
    with no checksum error."""
    a, _, ia = await tap_host(host, netns, "10.92.3.1", "10.92.3.2")
    b, _, ib = await tap_host(host, netns, "10.92.4.1", "10.92.4.2", opts="offload=0")
    assert ia.enabled and not ib.enabled
    sh("ip", "-n", a, "route", "add", "default", "via", "10.92.3.2")
    sh("ip", "-n", b, "route", "add", "default", "via", "10.92.4.2")
    host.stack.sysctl.set("net.inet.ip.forwarding", 1)
    before = csum_errors(b)
    nbytes = 8_000_000
    recv = await trio.lowlevel.open_process(["ip", "netns", "exec", b, *udp_script("")[:1], "-c",
        "import socket, hashlib\n"
        "s = socket.socket(); s.bind(('10.92.4.1', 7100)); s.listen(1); print('ready', flush=True)\n"
        "c, _ = s.accept(); h = hashlib.sha256(); n = 0\n"
        "while (d := c.recv(1 << 20)):\n    h.update(d); n += len(d)\n"
        "print(n, h.hexdigest(), flush=True)\n"], stdout=subprocess.PIPE)
    try:
        ready = b""
        with trio.fail_after(10):
            while not ready.endswith(b"\n"):
                ready += await recv.stdout.receive_some(64)
        payload_sha = __import__("hashlib").sha256(bytes(range(256)) * (nbytes // 256)).hexdigest()
        sent = await kernel(a, sys.executable, "-c",
                            "import socket\n"
                            f"s = socket.create_connection(('10.92.4.1', 7100), timeout=20)\n"
                            f"s.sendall(bytes(range(256)) * {nbytes // 256}); s.close()\n", timeout=60)
        assert sent.returncode == 0, sent.stderr
        out = b""
        with trio.fail_after(30):
            while not out.endswith(b"\n"):
                chunk = await recv.stdout.receive_some(256)
                if not chunk:
                    break
                out += chunk
        n, digest = out.split()
        assert int(n) == nbytes and digest.decode() == payload_sha
        assert csum_errors(b) == before
        assert host.stack.inet.stats.forward > 0
        # What came in from A were super-frames (mean frame far above one MTU) ...
        assert ia.stats.ibytes > 4 * 1514 * ia.stats.ipackets
        # ... and what left for B were plain frames of at most one MTU.
        assert ib.stats.obytes <= 1514 * ib.stats.opackets
    finally:
        recv.kill()
        await recv.wait()
        host.stack.sysctl.set("net.inet.ip.forwarding", 0)


@pytest.mark.kernel
@needs_root
async def test_vxlan_instances_and_linux_vxlan_one_segment(host, host2, netns):
    """Namespace A: Linux vx0 (10.95.0.1); B: two stacks' sockets. One VXLAN segment, VNI 99."""
    a, b = netns(), netns()
    sh("ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
    sh("ip", "-n", a, "addr", "add", "10.94.0.1/24", "dev", "va")
    for addr in ("10.94.0.2/24", "10.94.0.3/24"):
        sh("ip", "-n", b, "addr", "add", addr, "dev", "vb")
    sh("ip", "-n", a, "link", "set", "va", "up")
    sh("ip", "-n", b, "link", "set", "vb", "up")
    sh("ip", "-n", a, "link", "add", "vx0", "type", "vxlan", "id", "99", "local", "10.94.0.1",
       "remote", "10.94.0.2", "dev", "va", "dstport", "4789")
    # Head-end replication on the Linux side: flood to the second instance too.
    sh("bridge", "-n", a, "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", "10.94.0.3")
    sh("ip", "-n", a, "addr", "add", "10.95.0.1/24", "dev", "vx0")
    sh("ip", "-n", a, "link", "set", "vx0", "up")
    await trio.sleep(0.3)   # DAD-free, but let vb's addresses settle before binding
    d1 = await host.load("devnp-vxlan", f"vni=99,bind=10.94.0.2:4789,peer=10.94.0.1,peer=10.94.0.3,netns={b}")
    d2 = await host2.load("devnp-vxlan", f"vni=99,bind=10.94.0.3:4789,peer=10.94.0.1,peer=10.94.0.2,netns={b}")
    host.stack.add_address(d1.interfaces[0], ipaddress.ip_address("10.95.0.2"), 24)
    host2.stack.add_address(d2.interfaces[0], ipaddress.ip_address("10.95.0.3"), 24)

    for target in ("10.95.0.2", "10.95.0.3"):
        result = await kernel(a, "ping", "-c", "3", "-i", "0.05", "-W", "2", target)
        assert result.returncode == 0, (target, result.stdout)

    # Stack to stack UDP over the segment.
    s1, s2 = host.stack.inet.udp.socket(), host2.stack.inet.udp.socket()
    s1.bind("10.95.0.2", 7000)
    s2.bind("10.95.0.3", 7000)
    s1.sendto(b"ping over vxlan", "10.95.0.3", 7000, now_us())
    host.runtime.kick()
    await wait_until(lambda: s2.readable)
    data, (addr, port) = s2.recvfrom()
    assert (data, addr, port) == (b"ping over vxlan", "10.95.0.2", 7000)
    s2.sendto(b"pong", addr, port, now_us())
    host2.runtime.kick()
    await wait_until(lambda: s1.readable)
    assert s1.recvfrom()[0] == b"pong"


async def test_pcap_replay_answered_by_the_stack(host, tmp_path):
    mac, peer_mac = "02:00:00:00:00:01", "02:aa:bb:cc:dd:ee"
    pkts = [Ether(dst="ff:ff:ff:ff:ff:ff", src=peer_mac) / ARP(op=1, hwsrc=peer_mac, psrc="10.9.0.2", pdst="10.9.0.1")]
    pkts += [Ether(dst=mac, src=peer_mac) / IP(src="10.9.0.2", dst="10.9.0.1") / ICMP(id=99, seq=i) / (b"q" * (40 + i))
             for i in range(3)]
    wrpcap(str(tmp_path / "in.pcap"), pkts)
    out = tmp_path / "out.pcap"
    driver = await host.runtime.load_driver("devn-pcap", f"in={tmp_path / 'in.pcap'},out={out}")
    en0 = driver.interfaces[0]
    host.stack.add_address(en0, ipaddress.ip_address("10.9.0.1"), 24)
    host.stack.up(en0)

    def replies():
        got = rdpcap(str(out))
        return ([p for p in got if ARP in p and p[ARP].op == 2],
                [p for p in got if ICMP in p and p[ICMP].type == 0])

    await wait_until(lambda: len(replies()[1]) == 3)
    arp, echo = replies()
    assert len(arp) == 1 and arp[0][ARP].hwsrc == mac and arp[0][ARP].psrc == "10.9.0.1"
    assert arp[0][ARP].pdst == "10.9.0.2" and arp[0].dst == peer_mac
    for i, p in enumerate(echo):
        assert (p.src, p.dst, p[IP].src, p[IP].dst) == (mac, peer_mac, "10.9.0.1", "10.9.0.2")
        assert (p[ICMP].id, p[ICMP].seq, bytes(p[ICMP].payload)) == (99, i, b"q" * (40 + i))
        # Checksums as scapy computes them.
        fresh = p[IP].copy()
        del fresh[IP].chksum, fresh[ICMP].chksum
        fresh = IP(bytes(fresh))
        assert (fresh.chksum, fresh[ICMP].chksum) == (p[IP].chksum, p[ICMP].chksum)


@pytest.mark.kernel
@needs_root
async def test_fault_injector_on_a_tap_against_the_kernel(host, netns):
    """Delay and corruption from our driver layer, seen by the kernel's ping (no netem here)."""
    ns = netns()
    dev = unique("dtf")
    driver = await host.load("devnp-tap", f"dev={dev},netns={ns},fault_seed=4,fault_delay=40,fault_dir=tx")
    iface = driver.interfaces[0]
    host.stack.add_address(iface, ipaddress.ip_address("10.93.0.2"), 24)
    sh("ip", "-n", ns, "addr", "add", "10.93.0.1/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    await wait_until(lambda: iface.link_up)
    result = await kernel(ns, "ping", "-c", "3", "-i", "0.05", "-W", "2", "10.93.0.2")
    assert result.returncode == 0, result.stdout
    times = [float(line.split(b"time=")[1].split()[0]) for line in result.stdout.splitlines() if b"time=" in line]
    assert len(times) == 3 and min(times) >= 40.0
    host.runtime.unload_driver(driver)

    # Every received frame corrupted by one bit: the stack drops them as counted errors
    # (no exception escapes), so the kernel's pings go unanswered.
    dev2 = unique("dtf")
    driver = await host.load("devnp-tap", f"dev={dev2},netns={ns},fault_seed=4,fault_corrupt=100,fault_dir=rx")
    iface = driver.interfaces[0]
    host.stack.add_address(iface, ipaddress.ip_address("10.93.1.2"), 24)
    sh("ip", "-n", ns, "addr", "add", "10.93.1.1/24", "dev", dev2)
    sh("ip", "-n", ns, "link", "set", dev2, "up")
    sh("ip", "-n", ns, "neigh", "add", "10.93.1.2", "lladdr", iface.mac.hex(":"), "dev", dev2)
    await wait_until(lambda: iface.link_up)
    result = await kernel(ns, "ping", "-c", "3", "-i", "0.05", "-W", "1", "10.93.1.2")
    assert driver.fault.stats.corrupted >= 3
    # A one-bit flip lands in a checksummed field, or in the MAC/type; either way no reply
    # is *correct*: the kernel sees no valid echo reply for all three, or the stack dropped.
    assert b" 0% packet loss" not in result.stdout
