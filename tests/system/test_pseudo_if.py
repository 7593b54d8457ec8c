"""tun, tap and vlan against real programs and the Linux kernel (reference/pseudo-if.md §2,
§3, §7, §8): through the FUSE device nodes, relayed to Linux TUN/TAP devices and vlans in
network namespaces these tests make (``pif-<pid>-N``; devices ``pf<pid>xN``) and delete.
"""

import errno
import hashlib
import itertools
import os
import select
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from iopkt_fs import client
from iopkt_testutil import wait_until

pytestmark = pytest.mark.system
RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pseudo_relay.py")
TRUNK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vlan_trunk.py")
_n = itertools.count()


def sh(*args, check=True, timeout=30):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture
def netns():
    made = []

    def make():
        name = f"pif-{os.getpid()}-{next(_n)}"
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        made.append(name)
        return name

    yield make
    for name in made:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def procs():
    """Child processes, stopped (SIGTERM, then SIGKILL) after the test."""
    started = []

    def start(argv, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def devname() -> str:
    return f"pf{os.getpid() % 100000}x{next(_n)}"[:15]


def relay(procs, ns, node, dev, mode, *extra):
    """pseudo_relay.py in the namespace's network (our mount stays visible); returns the
    process once it has opened both ends, and the interface name our node gave it."""
    p = procs(["nsenter", f"--net=/run/netns/{ns}", sys.executable, RELAY, node, dev, mode, *extra])
    first = p.stdout.readline().split()
    assert first[:1] == ["ifname"], p.stderr.read()
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p, first[1]


def stopped(p) -> str:
    p.terminate()
    out, _ = p.communicate(timeout=10)
    return out


def in_ns(ns, *argv, timeout=60):
    return sh("ip", "netns", "exec", ns, *argv, check=False, timeout=timeout)


# -- tun ------------------------------------------------------------------------------

def test_tun_node_errnos_poll_and_nonblocking(stack):
    tun0 = os.path.join(stack.prefix, "dev", "tun0")
    assert {"tun0", "tun1", "tun2", "tun3", "tun0.ctl", "tap"} <= set(os.listdir(os.path.dirname(tun0)))
    assert "tun0" not in stack.run("iopkt", "ifconfig", "-l").stdout      # no interface yet
    fd = os.open(tun0, os.O_RDWR | os.O_NONBLOCK)
    try:
        assert os.getxattr(fd, "user.ifname") == b"tun0"
        other = []          # another thread of the same process asks too (FUSE sends its tid)
        t = threading.Thread(target=lambda: other.append(os.getxattr(fd, "user.ifname")))
        t.start()
        t.join(10)
        assert other == [b"tun0"]
        with pytest.raises(OSError) as none:
            os.getxattr(stack.sock("status"), "user.ifname")
        assert none.value.errno == errno.ENODATA
        assert stack.run("iopkt", "ifconfig", "tun0").stdout == "tun0: flags=10<POINTOPOINT> mtu 1500\n"
        with pytest.raises(OSError) as busy:
            os.open(tun0, os.O_RDWR)
        assert busy.value.errno == errno.EBUSY
        with pytest.raises(OSError) as down:
            os.read(fd, 2000)
        assert down.value.errno == errno.EHOSTDOWN
        assert stack.run("iopkt", "ifconfig", "tun0", "10.0.0.1", "10.0.0.2").returncode == 0
        assert stack.run("iopkt", "ifconfig", "tun0").stdout == (
            "tun0: flags=51<UP,POINTOPOINT,RUNNING> mtu 1500\n"
            "\tinet 10.0.0.1 -> 10.0.0.2 netmask 0xff000000\n")
        with pytest.raises(BlockingIOError):
            os.read(fd, 2000)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(0) == []                        # nothing queued: not readable
        # A UDP datagram the stack sends toward 10.0.0.2 leaves through tun0.
        udp = client.dial("udp!10.0.0.2!9", prefix=stack.prefix)
        try:
            udp.write(b"through the tunnel")
        finally:
            udp.close()
        assert poller.poll(5000) == [(fd, select.POLLIN)]
        packet = os.read(fd, 2000)
        assert packet[0] == 0x45 and packet[9] == 17 and packet.endswith(b"through the tunnel")
        with pytest.raises(OSError) as big:
            os.write(fd, b"\x45" + bytes(1500))
        assert big.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert wait_until(lambda: stack.run("iopkt", "ifconfig", "tun0").stdout.startswith(
        "tun0: flags=10<POINTOPOINT> mtu 1500\n\tinet 10.0.0.1 -> 10.0.0.2"), 5)   # down, kept
    assert stack.run("iopkt", "ifconfig", "tun9", "create").returncode == 0
    assert "tun9" in os.listdir(os.path.dirname(tun0))
    assert stack.run("iopkt", "ifconfig", "tun9", "destroy").returncode == 0
    assert "tun9" not in os.listdir(os.path.dirname(tun0))


ANSWERER = textwrap.dedent("""\
    import os, sys
    from scapy.layers.inet import ICMP, IP
    fd = os.open(sys.argv[1], os.O_RDWR)
    print("open", flush=True)
    answered = 0
    while answered < int(sys.argv[2]):
        try:
            pkt = IP(os.read(fd, 2000))
        except OSError:
            continue                  # EHOSTDOWN until the address is set, EINTR
        if pkt.haslayer(ICMP) and pkt[ICMP].type == 8:
            reply = IP(src=pkt.dst, dst=pkt.src) / ICMP(type=0, id=pkt[ICMP].id, seq=pkt[ICMP].seq) / pkt[ICMP].payload
            os.write(fd, bytes(reply))
            answered += 1
    print("answered", answered, flush=True)
    """)


def test_a_program_on_tun0_answers_the_stacks_ping(stack, procs):
    p = procs([sys.executable, "-c", ANSWERER, os.path.join(stack.prefix, "dev", "tun0"), "3"])
    assert p.stdout.readline().strip() == "open", p.stderr.read()
    assert stack.run("iopkt", "ifconfig", "tun0", "10.0.0.1", "10.0.0.2").returncode == 0
    ping = stack.run("iopkt", "ping", "-c", "3", "-i", "0.2", "10.0.0.2")
    assert ping.returncode == 0 and "3 packets transmitted, 3 packets received" in ping.stdout, ping.stdout
    assert p.communicate(timeout=10)[0].strip() == "answered 3"
    stats = dict(l.split(": ", 1) for l in open(stack.sock("if", "tun0", "stats")).read().splitlines())
    assert int(stats["ipackets"]) == 3 and int(stats["opackets"]) >= 3


def _tun_pair(stack, procs, ns, *mode):
    dev = devname()
    if mode:
        with open(os.path.join(stack.prefix, "dev", "tun0.ctl"), "w") as f:
            f.write(" ".join(mode) + "\n")
    p, name = relay(procs, ns, os.path.join(stack.prefix, "dev", "tun0"), dev, "tun", *mode)
    assert name == "tun0"
    assert stack.run("iopkt", "ifconfig", "tun0", "10.0.0.1", "10.0.0.2").returncode == 0
    sh("ip", "-n", ns, "addr", "add", "10.0.0.2", "peer", "10.0.0.1", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    return p, dev


def test_relay_to_a_linux_tun_carries_ping_and_10mb_of_tcp(stack, procs, netns):
    ns = netns()
    p, _ = _tun_pair(stack, procs, ns)
    ping = in_ns(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.1")
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
    sender = textwrap.dedent("""\
        import hashlib, socket
        s = socket.create_connection(('10.0.0.1', 5011), timeout=60)
        h = hashlib.sha256(); block = bytes(range(256)) * 4096
        for i in range(10):
            chunk = block[i:] + block[:i]
            h.update(chunk); s.sendall(chunk)
        s.shutdown(socket.SHUT_WR); s.recv(1)
        print(h.hexdigest())
        """)
    listener = client.announce("tcp!*!5011", prefix=stack.prefix)
    try:
        kernel = procs(["ip", "netns", "exec", ns, sys.executable, "-c", sender])
        conn = listener.accept()
        got = subprocess.run(["bash", "-c", f"dd if=$SOCK/dev/socket/tcp/{conn.number}/data bs=1M "
                              "2>/dev/null | sha256sum"], capture_output=True, text=True, env=stack.env,
                             timeout=120)
        conn.close()
        sent, err = kernel.communicate(timeout=60)
        assert sent.strip() and got.stdout.split()[0] == sent.strip(), err
    finally:
        listener.close()
    stats = dict(l.split(": ", 1) for l in open(stack.sock("if", "tun0", "stats")).read().splitlines())
    assert int(stats["ibytes"]) > 10 * 1024 * 1024            # all of it came in on tun0
    assert stopped(p).startswith("done")


def test_tunsifhead_framing_between_our_tun_and_linux(make_stack, procs, netns):
    """With ifhead every packet on our node carries its address family first, AF_INET (2)
    or AF_INET6 (24); the relay checks each one and translates, and the kernel's ping and
    ping -6 work across (IPv6 leaves a tun only in this mode)."""
    stack = make_stack(variant="io-pkt-v6-hc")
    assert stack.start().returncode == 0
    ns = netns()
    p, dev = _tun_pair(stack, procs, ns, "ifhead")
    assert "ifhead: 1\n" in open(os.path.join(stack.prefix, "dev", "tun0.ctl")).read()
    assert stack.run("iopkt", "ifconfig", "tun0", "inet6", "2001:db8:7::1", "2001:db8:7::2",
                     "prefixlen", "128", "alias").returncode == 0
    sh("ip", "-n", ns, "-6", "addr", "add", "2001:db8:7::2", "peer", "2001:db8:7::1", "dev", dev, "nodad")
    ping = in_ns(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.1")
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
    ping6 = in_ns(ns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8:7::1")
    assert ping6.returncode == 0 and " 0% packet loss" in ping6.stdout, ping6.stdout
    done = dict(w.split("=") for w in stopped(p).split()[1:])
    assert done["bad"] == "0" and int(done["inet"]) >= 3 and int(done["inet6"]) >= 3


# -- tap ------------------------------------------------------------------------------

def test_a_tap_clone_is_an_ethernet_nic_and_closing_it_destroys_it(stack, procs, netns):
    ns = netns()
    dev = devname()
    p, name = relay(procs, ns, os.path.join(stack.prefix, "dev", "tap"), dev, "tap")
    assert name == "tap0"
    assert "tap0" in os.listdir(os.path.join(stack.prefix, "dev"))
    assert stack.run("iopkt", "ifconfig", "tap0", "10.1.0.1/24").returncode == 0
    shown = stack.run("iopkt", "ifconfig", "tap0")
    assert shown.returncode == 0, shown.stderr
    shown = shown.stdout
    assert shown.startswith("tap0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
                            "\taddress: f2:0b:a4:")
    mac = shown.split("address: ")[1].split()[0]
    sh("ip", "-n", ns, "addr", "add", "10.1.0.2/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    ping = in_ns(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.0.1")
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
    neigh = in_ns(ns, "ip", "neigh", "show", "10.1.0.1").stdout
    assert mac in neigh                                      # ARP resolved us over the clone
    assert "? (10.1.0.2) at " in stack.run("iopkt", "arp", "-a").stdout
    second = os.open(os.path.join(stack.prefix, "dev", "tap"), os.O_RDWR)    # the next clone
    try:
        assert os.getxattr(second, "user.ifname") == b"tap1"
    finally:
        os.close(second)
    stopped(p)
    assert wait_until(lambda: "tap0" not in stack.run("iopkt", "ifconfig", "-l").stdout.split(), 5)
    assert "tap0" not in os.listdir(os.path.join(stack.prefix, "dev"))
    assert stack.run("iopkt", "ifconfig", "tap7", "create").stderr == \
        "ifconfig: SIOCIFCREATE: No such device or address\n"
    # A created tap outlives its openers; its node is exclusive while open.
    assert stack.run("iopkt", "ifconfig", "tap2", "create").returncode == 0
    node = os.path.join(stack.prefix, "dev", "tap2")
    fd = os.open(node, os.O_RDWR)
    try:
        with pytest.raises(OSError) as busy:
            os.open(node, os.O_RDWR)
        assert busy.value.errno == errno.EBUSY
    finally:
        os.close(fd)
    time.sleep(0.2)                  # release is asynchronous
    assert "tap2" in stack.run("iopkt", "ifconfig", "-l").stdout.split() and os.path.exists(node)


# -- vlan -----------------------------------------------------------------------------

def test_vlan_over_a_tap_against_the_kernel_with_tags_on_the_wire(make_stack, procs, netns):
    ns = netns()
    dev = devname()
    sp = make_stack(args=["-d", "tap", f"dev={dev},netns={ns}"])
    assert sp.start().returncode == 0
    r = sp.run
    assert r("iopkt", "ifconfig", "ltap0", "up").returncode == 0
    assert r("iopkt", "ifconfig", "vlan0", "create").returncode == 0
    assert r("iopkt", "ifconfig", "vlan0", "vlanif", "ltap0").stderr == \
        "ifconfig: must specify both ``vlan'' and ``vlanif''\n"
    assert r("iopkt", "ifconfig", "ltap0", "vlan", "5").stderr == "ifconfig: valid only with vlan(4) interfaces\n"
    assert r("iopkt", "ifconfig", "vlan0", "vlan", "5", "vlanif", "ltap0").returncode == 0
    assert r("iopkt", "ifconfig", "vlan0", "10.5.0.1/24").returncode == 0
    shown = r("iopkt", "ifconfig", "vlan0").stdout.splitlines()
    assert shown[0] == "vlan0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500"
    assert shown[1] == "\tvlan: 5 parent: ltap0"
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
    sh("ip", "-n", ns, "link", "set", dev, "up")
    # The kernel's own vlan device where it has one; this machine's kernel is built
    # without CONFIG_VLAN_8021Q, so there a trunk helper tags for the kernel instead.
    vlan = sh("ip", "-n", ns, "link", "add", "link", dev, "name", "v5", "type", "vlan", "id", "5", check=False)
    if vlan.returncode != 0:
        trunk = procs(["ip", "netns", "exec", ns, sys.executable, TRUNK, dev, "v5", "5"])
        assert trunk.stdout.readline().strip() == "ready", trunk.stderr.read()
    sh("ip", "-n", ns, "addr", "add", "10.5.0.2/24", "dev", "v5")
    sh("ip", "-n", ns, "link", "set", "v5", "up")
    # Untagged ICMP is captured too: every ICMP frame on the tap's wire must carry tag 5.
    shark = procs(["ip", "netns", "exec", ns, "tshark", "-n", "-l", "-i", dev, "-f", "icmp or (vlan and icmp)",
                   "-T", "fields", "-e", "vlan.id", "-e", "ip.src", "-e", "icmp.type", "-a", "duration:30"])
    assert wait_until(lambda: "Capturing on" in _peek(shark), 15)
    os.set_blocking(shark.stderr.fileno(), True)
    time.sleep(0.5)
    ping = in_ns(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.5.0.1")
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
    ours = r("iopkt", "ping", "-c", "3", "-i", "0.2", "10.5.0.2")
    assert ours.returncode == 0 and "3 packets received" in ours.stdout, ours.stdout
    time.sleep(0.5)
    shark.terminate()
    out, _ = shark.communicate(timeout=30)
    rows = [tuple(line.split("\t")) for line in out.splitlines() if line]
    assert rows and {vid for vid, _, _ in rows} == {"5"}, out
    # Both ways: the kernel's echoes and our replies, our echoes and the kernel's replies.
    assert {(src, kind) for _, src, kind in rows} == {
        ("10.5.0.2", "8"), ("10.5.0.1", "0"), ("10.5.0.1", "8"), ("10.5.0.2", "0")}, out
    assert r("iopkt", "ifconfig", "vlan0", "-vlanif").returncode == 0
    assert "\tvlan:" not in r("iopkt", "ifconfig", "vlan0").stdout
    assert in_ns(ns, "ping", "-c", "1", "-W", "1", "10.5.0.1").returncode != 0


def _peek(proc) -> str:
    """What a running process wrote to stderr so far (non-blocking)."""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    try:
        chunk = os.read(fd, 65536).decode(errors="replace")
    except BlockingIOError:
        chunk = ""
    proc._seen = getattr(proc, "_seen", "") + chunk
    return proc._seen


def test_the_tcpip_options_size_the_device_nodes(make_stack):
    sp = make_stack(tcpip="num_tun_control_interface=2,num_tap_interface=1")
    assert sp.start().returncode == 0
    dev = os.path.join(sp.prefix, "dev")
    assert sorted(n for n in os.listdir(dev) if n.startswith(("tun", "tap"))) == [
        "tap", "tun0", "tun0.ctl", "tun1", "tun1.ctl"]
    fd = os.open(os.path.join(dev, "tap"), os.O_RDWR)
    try:
        with pytest.raises(OSError) as full:
            os.open(os.path.join(dev, "tap"), os.O_RDWR)
        assert full.value.errno == errno.ENXIO          # one tap unit, in use
    finally:
        os.close(fd)
