"""bridge0 between two TAP members, each facing a kernel namespace the test makes: the
kernels ping each other through it, brconfig shows what it learned, static entries and
flush behave, the stack's own address on a member is reachable across the bridge."""

import os
import subprocess

import pytest

from iopkt_testutil import wait_until
from wanstack import in_ns, sender, sh

pytestmark = pytest.mark.system
A_IP, B_IP, OURS = "10.206.0.1", "10.206.0.3", "10.206.0.2"
# A kernel-side receiver: accept one connection, read to the end, print the SHA-256.
SINK = """\
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('{host}', 7100)); s.listen(1); s.settimeout(60); print('ready', flush=True)
c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256()
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
c.sendall(b'k'); c.close(); print(h.hexdigest())
"""


def in_ns_popen(ns, *argv):
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def bridged(make_stack):
    tag = os.getpid() % 100000
    ns_a, ns_b = f"brga-{os.getpid()}", f"brgb-{os.getpid()}"
    dev_a, dev_b = f"bga{tag}", f"bgb{tag}"
    for ns in (ns_a, ns_b):
        sh("ip", "netns", "add", ns)
    sp = make_stack(args=["-d", "tap", f"dev={dev_a},netns={ns_a},name=bra",
                          "-d", "tap", f"dev={dev_b},netns={ns_b},name=brb"])
    try:
        out = sp.start()
        assert out.returncode == 0, out.stderr
        for ns, dev, addr in ((ns_a, dev_a, A_IP), (ns_b, dev_b, B_IP)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        for name in ("bra0", "brb0"):
            assert sp.run("iopkt", "ifconfig", name, "up").returncode == 0
        for name in ("bra0", "brb0"):
            assert wait_until(lambda: "link: up" in open(sp.sock("if", name, "stats")).read(), 10)
        sp.ns_a, sp.ns_b, sp.dev_a, sp.dev_b = ns_a, ns_b, dev_a, dev_b
        yield sp
    finally:
        sp.cleanup()
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "del", ns, check=False)


def _mac(ns: str, dev: str) -> str:
    return in_ns(ns, "cat", f"/sys/class/net/{dev}/address").stdout.strip()


def _ping(ns: str, dst: str, count: int = 2) -> bool:
    return in_ns(ns, "ping", "-c", str(count), "-i", "0.2", "-W", "1", dst, check=False).returncode == 0


def _reaches(ns: str, dst: str, count: int = 2) -> bool:
    """Ping gets through, allowing a loaded machine a few tries (bounded: 10 s)."""
    return wait_until(lambda: _ping(ns, dst, count), 10)


def _brconfig(sp, *args):
    return sp.run("iopkt", "brconfig", *args)


def test_kernels_ping_each_other_through_our_bridge(bridged):
    sp = bridged
    assert sp.run("iopkt", "ifconfig", "bridge0", "create").returncode == 0
    assert sp.run("iopkt", "ifconfig", "bridge0").stdout == "bridge0: flags=0 mtu 1500\n"
    assert not _ping(sp.ns_a, B_IP, 1)          # no bridge yet: the two links are apart
    out = _brconfig(sp, "bridge0", "add", "bra0", "add", "brb0", "up")
    assert out.returncode == 0, out.stderr
    # Members are promiscuous, and so is each TAP's Linux side.
    assert "PROMISC" in sp.run("iopkt", "ifconfig", "bra0").stdout.splitlines()[0]
    assert "PROMISC" in in_ns(sp.ns_b, "ip", "link", "show", sp.dev_b).stdout
    assert _reaches(sp.ns_a, B_IP, 3)
    mac_a, mac_b = _mac(sp.ns_a, sp.dev_a), _mac(sp.ns_b, sp.dev_b)
    status = _brconfig(sp, "bridge0").stdout
    lines = status.splitlines()
    assert lines[:5] == ["bridge0: flags=41<UP,RUNNING>", "\tConfiguration:",
                         "\t\tpriority 32768 hellotime 2 fwddelay 15 maxage 20",
                         "\t\tipfilter disabled flags 0x0", "\tInterfaces:"]
    assert lines[5] == "\t\tbrb0 flags=3<LEARNING,DISCOVER>"     # the newest member first
    assert "\tAddress cache (max cache: 100, timeout: 1200):" in lines
    addr = _brconfig(sp, "bridge0", "addr").stdout.splitlines()
    learned = {line.split()[0]: line.split() for line in addr}
    assert learned[mac_a][1] == "bra0" and learned[mac_b][1] == "brb0"
    assert all(1190 <= int(learned[m][2]) <= 1200 and learned[m][3] == "flags=0<>" for m in (mac_a, mac_b))
    assert _brconfig(sp, "-a").stdout == _brconfig(sp, "bridge0").stdout
    # 10 MB of TCP from kernel A to kernel B: both TAPs carry virtio headers, so the
    # kernel's super-frames and partial checksums cross the bridge as they are.
    server = in_ns_popen(sp.ns_b, "python3", "-c", SINK.format(host=B_IP))
    try:
        assert server.stdout.readline().strip() == "ready"
        sent = in_ns(sp.ns_a, "python3", "-c", sender(B_IP, 7100, 10_000_000), timeout=120).stdout.strip()
        got = server.communicate(timeout=60)[0].strip()
    finally:
        server.kill()
    assert got == sent and len(got) == 64
    stats = dict(l.split(": ", 1) for l in open(sp.sock("if", "brb0", "stats")).read().splitlines())
    assert int(stats["obytes"]) > 10_000_000 > 1514 * int(stats["opackets"])   # frames larger than the MTU went out whole


def test_static_entries_flush_and_our_address_on_a_member(bridged):
    sp = bridged
    sp.run("iopkt", "ifconfig", "bridge0", "create", check=True)
    assert _brconfig(sp, "bridge0", "add", "bra0", "add", "brb0", "up").returncode == 0
    assert _reaches(sp.ns_a, B_IP)
    mac_b = _mac(sp.ns_b, sp.dev_b)
    # A static entry that puts B on A's port: frames for B are filtered there, B is lost.
    assert _brconfig(sp, "bridge0", "static", "bra0", mac_b).returncode == 0
    line = next(l for l in _brconfig(sp, "bridge0", "addr").stdout.splitlines() if l.startswith(f"\t{mac_b}"))
    assert line == f"\t{mac_b} bra0 0 flags=1<STATIC>"
    assert not _ping(sp.ns_a, B_IP, 1)
    # flush keeps static entries; flushall removes them too, and B is reachable again.
    assert _brconfig(sp, "bridge0", "flush").returncode == 0
    # The static entry stays; the learned ones are gone, though A or B may send again at
    # once (a late ARP, a neighbour probe) and be learned anew: such an entry is dynamic
    # and young (its expiry, 1200 s after learning, not yet moved).
    entries = [l.split() for l in _brconfig(sp, "bridge0", "addr").stdout.splitlines()]
    assert [e for e in entries if e[0] == mac_b] == [[mac_b, "bra0", "0", "flags=1<STATIC>"]]
    for mac, port, expire, flags in (e for e in entries if e[0] != mac_b):
        assert flags == "flags=0<>" and int(expire) >= 1195, (mac, port, expire, flags)
    assert _brconfig(sp, "bridge0", "flushall").returncode == 0
    # Gone, the static entry too. A's or B's kernel may send again at once (a late ARP or
    # a neighbour probe) and be learned anew on its own port: such an entry is dynamic and
    # young (its expiry, 1200 s after learning, not yet moved), never a static one.
    for entry in _brconfig(sp, "bridge0", "addr").stdout.splitlines():
        mac, port, expire, flags = entry.split()
        assert flags == "flags=0<>" and int(expire) >= 1195, entry
        assert (mac, port) != (mac_b, "bra0"), entry      # B is never again put on A's port
    assert _reaches(sp.ns_a, B_IP)
    # The stack's own address on member bra0 answers B, whose frames cross the bridge.
    assert sp.run("iopkt", "ifconfig", "bra0", f"{OURS}/24").returncode == 0
    assert _reaches(sp.ns_b, OURS)
    ours = sp.run("iopkt", "ping", "-c", "2", B_IP)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    # Errors in brconfig's words.
    assert _brconfig(sp, "bridge0", "add", "bra0").stderr.strip() == "brconfig: add bra0: File exists"
    assert _brconfig(sp, "bridge0", "add", "nope0").stderr.strip() == "brconfig: add nope0: No such file or directory"
    assert _brconfig(sp, "bridge0", "maxaddr", "x").stderr.strip() == "brconfig: maxaddr: invalid value: x"
    assert _brconfig(sp, "bridge0", "frob").stderr.strip() == "brconfig: unknown command: frob"
    assert _brconfig(sp, "bra0").stderr.strip() == "brconfig: bra0 is not a bridge"
    sp.run("iopkt", "ifconfig", "bridge1", "create", check=True)
    sp.run("iopkt", "ifconfig", "bridge1", "mtu", "1400", check=True)
    assert _brconfig(sp, "bridge1", "add", "bra0").stderr.strip() == "brconfig: add bra0: Invalid argument"
    # Deleting a member ends its promiscuous mode; destroying the bridge frees the rest.
    assert _brconfig(sp, "bridge0", "delete", "bra0").returncode == 0
    assert "PROMISC" not in sp.run("iopkt", "ifconfig", "bra0").stdout.splitlines()[0]
    assert sp.run("iopkt", "ifconfig", "bridge0", "destroy").returncode == 0
    assert wait_until(lambda: "PROMISC" not in sp.run("iopkt", "ifconfig", "brb0").stdout.splitlines()[0], 5)
    assert not _ping(sp.ns_a, B_IP, 1)
