"""IPv6 through the files and the tools on a real io-pkt-v6-hc, the Linux kernel as the peer
over TAP in a namespace made here: UDP both ways (connected, announced with headers, a
link-local peer by %zone), ECONNREFUSED from the kernel's ICMPv6 port unreachable,
IPV6_V6ONLY's QNX default and `v6only 0`, ping6 on raw ICMPv6, ndp, route -inet6, netstat's
Internet6 sections, ifconfig inet6 (anycast, lifetimes, -L) and if_up -6; TCP 100 MB each
way with SHA-256, curl -6 to a shell server, a shell client to http.server on ::. Then what a v4 stack answers instead."""

import errno
import hashlib
import ipaddress
import os
import select
import subprocess
import textwrap

import pytest

from iopkt_fs import client
from iopkt_testutil import StackProcess, wait_until

pytestmark = pytest.mark.system
OURS, KERNEL = "fd00:205::2", "fd00:205::1"
OURS4, KERNEL4 = "10.205.0.2", "10.205.0.1"

# The kernel's UDP echo: every datagram back upper-cased, both families (v6only off).
ECHO = textwrap.dedent("""\
    import socket, sys
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', 7101)); print('ready', flush=True)
    while True:
        data, peer = s.recvfrom(2000)
        s.sendto(data.upper(), peer)
    """)


def sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)


def in_ns(ns, code: str):
    return sh("ip", "netns", "exec", ns, "python3", "-c", code)


@pytest.fixture(scope="module")
def v6(tmp_path_factory):
    ns, dev = f"sys6f-{os.getpid()}", f"s6f{os.getpid() % 100000}"
    sh("ip", "netns", "add", ns)
    sp = StackProcess(str(tmp_path_factory.mktemp("v6") / "stack"), variant="io-pkt-v6-hc",
                      args=["-d", "tap", f"dev={dev},netns={ns}"])
    echo = None
    try:
        assert sp.start().returncode == 0
        for args in (["ltap0", "inet6", f"{OURS}/64"], ["ltap0", OURS4 + "/24"]):
            out = sp.run("iopkt", "ifconfig", *args)
            assert out.returncode == 0, out.stderr
        for cmd in (["link", "set", "lo", "up"], ["addr", "add", f"{KERNEL}/64", "dev", dev, "nodad"],
                    ["addr", "add", f"{KERNEL4}/24", "dev", dev], ["link", "set", dev, "up"]):
            sh("ip", "-n", ns, *cmd)
        # if_up -6 -i: ltap0 has a global IPv6 address that passed DAD.
        up = sp.run("iopkt", "if_up", "-6", "-i", "-m", "100", "-r", "60", "ltap0")
        assert up.returncode == 0, up.stderr
        echo = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", ECHO], stdout=subprocess.PIPE, text=True)
        assert echo.stdout.readline() == "ready\n"
        sp.ns, sp.dev = ns, dev
        yield sp
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        sp.cleanup()
        sh("ip", "netns", "del", ns, check=False)


class Conv:
    """One connection directory, used with plain file calls."""

    def __init__(self, sp, proto: str):
        base = sp.sock(proto)
        self.ctl = os.open(os.path.join(base, "clone"), os.O_RDWR)
        self.dir = os.path.join(base, os.read(self.ctl, 32).decode().strip())

    def __call__(self, line: str) -> None:
        os.write(self.ctl, line.encode() + b"\n")

    def text(self, name: str) -> str:
        with open(os.path.join(self.dir, name)) as f:
            return f.read().strip()

    def data(self):
        return os.open(os.path.join(self.dir, "data"), os.O_RDWR | os.O_NONBLOCK)

    def close(self) -> None:
        os.close(self.ctl)


def read_within(fd: int, seconds: float = 10.0) -> bytes:
    p = select.poll()
    p.register(fd, select.POLLIN)
    assert p.poll(seconds * 1000), "nothing to read"
    return os.read(fd, 65536)


def test_udp6_both_ways_through_the_files(v6):
    # Connected: ours -> the kernel's echo and back; local/remote print IPv6 as written.
    c = Conv(v6, "udp")
    c(f"connect {KERNEL}!7101")
    assert c.text("remote") == f"{KERNEL}!7101" and c.text("local").startswith(f"{OURS}!")
    fd = c.data()
    os.write(fd, b"hello kernel")
    assert read_within(fd) == b"HELLO KERNEL"
    os.close(fd)
    c.close()
    # The Python client takes the same form.
    with client.dial(f"udp!{KERNEL}!7101", prefix=v6.prefix) as d:
        d.write(b"from the client")
        assert d.read() == b"FROM THE CLIENT"
    # Announced with headers: the kernel starts, each datagram names its peer.
    a = Conv(v6, "udp")
    a("announce 7102")
    a("headers")
    fd = a.data()
    in_ns(v6.ns, f"import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
                 f"s.bind(('{KERNEL}', 7103)); s.sendto(b'from the kernel', ('{OURS}', 7102))")
    assert read_within(fd) == f"{KERNEL}!7103\n".encode() + b"from the kernel"
    os.close(fd)
    a.close()


def test_udp6_addmulti_remmulti_through_the_files(v6):
    """``addmulti GROUP%IF`` on a udp connection (IPV6_JOIN_GROUP): the kernel's datagram
    to the group reaches it, a second join is EADDRINUSE, after ``remmulti`` the group's
    datagrams no longer arrive; IPv4 groups take the same verbs (MLD and IGMP reports on
    the wire are tests/kernel/test_multicast_kernel.py's)."""
    group = "ff05::1:3"
    send = (f"import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
            f"s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex('{v6.dev}')); "
            f"s.sendto(b'to the group', ('{group}', 7120))")
    a = Conv(v6, "udp")
    a("announce ::!7120")
    a("headers")
    a(f"addmulti {group}%ltap0")
    fd = a.data()
    in_ns(v6.ns, send)
    head, body = read_within(fd).split(b"\n", 1)
    assert body == b"to the group" and head.startswith(f"{KERNEL}!".encode())   # site scope: its global source
    with pytest.raises(OSError) as exc:
        a(f"addmulti {group}%ltap0")
    assert exc.value.errno == errno.EADDRINUSE
    a(f"remmulti {group}%ltap0")
    in_ns(v6.ns, send)
    p = select.poll()
    p.register(fd, select.POLLIN)
    assert not p.poll(500)                            # not a member any more
    with pytest.raises(OSError) as exc:
        a(f"remmulti {group}%ltap0")
    assert exc.value.errno == errno.EADDRNOTAVAIL
    os.close(fd)
    a.close()
    b = Conv(v6, "udp")
    b("addmulti 239.1.2.3")
    b("remmulti 239.1.2.3")
    with pytest.raises(OSError) as exc:
        b("addmulti 10.205.0.2")
    assert exc.value.errno == errno.EINVAL
    b.close()


def test_udp6_link_local_zone_and_econnrefused(v6):
    out = sh("ip", "-n", v6.ns, "-6", "-o", "addr", "show", "dev", v6.dev, "scope", "link").stdout
    kernel_ll = out.split("inet6 ")[1].split("/")[0]
    c = Conv(v6, "udp")
    c(f"connect {kernel_ll}%ltap0!7101")
    assert c.text("remote") == f"{kernel_ll}%ltap0!7101"
    assert c.text("local").startswith("fe80::") and "%ltap0!" in c.text("local")
    fd = c.data()
    os.write(fd, b"over the link")
    assert read_within(fd) == b"OVER THE LINK"
    os.close(fd)
    c.close()
    # TCP to the same link-local peer: the zone binds our link-local source on ltap0.
    server = subprocess.Popen(["ip", "netns", "exec", v6.ns, "python3", "-c", textwrap.dedent("""\
        import socket
        s = socket.socket(socket.AF_INET6); s.bind(('::', 7108)); s.listen(1); print('ready', flush=True)
        c, _ = s.accept(); c.sendall(b'hello over the link'); c.close()
        """)], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "ready\n"
    t = Conv(v6, "tcp")
    t(f"connect {kernel_ll}%ltap0!7108")
    assert t.text("remote") == f"{kernel_ll}%ltap0!7108" and "%ltap0!" in t.text("local")
    with open(os.path.join(t.dir, "data"), "rb") as f:
        assert f.read() == b"hello over the link"
    assert server.wait(timeout=10) == 0
    t.close()
    # No socket on the kernel's port 7999: its ICMPv6 port unreachable -> ECONNREFUSED.
    r = Conv(v6, "udp")
    r(f"connect [{KERNEL}]!7999")
    fd = r.data()
    os.write(fd, b"anyone?")
    with pytest.raises(OSError) as e:
        read_within(fd)
    assert e.value.errno == errno.ECONNREFUSED
    os.close(fd)
    r.close()
    # A zone must be one of our interfaces; only a link-local address takes one.
    z = Conv(v6, "udp")
    for line, code in ((f"connect {kernel_ll}%nope0!7101", errno.ENXIO), (f"connect {KERNEL}%ltap0!7101", errno.EINVAL)):
        with pytest.raises(OSError) as e:
            z(line)
        assert e.value.errno == code
    z.close()


def test_v6only_default_and_cleared(v6):
    send4 = (f"import socket; s = socket.socket(); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
             f"s.bind(('{KERNEL4}', 7105)); s.sendto(b'v4 datagram', ('{OURS4}', PORT))")
    only6 = Conv(v6, "udp")
    only6("announce ::!7104")
    fd = only6.data()
    in_ns(v6.ns, send4.replace("PORT", "7104"))
    assert not select.select([fd], [], [], 0.5)[0]      # QNX's v6only=1: IPv4 is not ours
    os.close(fd)
    only6.close()
    dual = Conv(v6, "udp")
    dual("v6only 0")
    dual("announce ::!7106")
    dual("headers")
    fd = dual.data()
    in_ns(v6.ns, send4.replace("PORT", "7106"))
    assert read_within(fd) == f"::ffff:{KERNEL4}!7105\n".encode() + b"v4 datagram"
    os.close(fd)
    dual.close()
    # TCP likewise: a :: listener with v6only 0 takes the kernel's IPv4 call, and the
    # accepted connection reads as an AF_INET6 socket (IPv4-mapped addresses).
    lst = Conv(v6, "tcp")
    lst("v6only 0")
    lst("announce ::!7107")
    caller = subprocess.Popen(["ip", "netns", "exec", v6.ns, "python3", "-c",
                               f"import socket; c = socket.create_connection(('{OURS4}', 7107), timeout=10); "
                               f"c.sendall(b'v4 call'); c.close()"])
    with open(os.path.join(lst.dir, "listen")) as f:
        n = f.read().strip()
    accepted = os.path.join(os.path.dirname(lst.dir), n)
    with open(os.path.join(accepted, "remote")) as f:
        assert f.read().startswith(f"::ffff:{KERNEL4}!")
    with open(os.path.join(accepted, "local")) as f:
        assert f.read() == f"::ffff:{OURS4}!7107\n"
    with open(os.path.join(accepted, "data"), "rb") as f:
        assert f.read() == b"v4 call"
    assert caller.wait(timeout=10) == 0
    lst.close()


def test_ping6_on_raw_icmpv6(v6):
    out = v6.run("iopkt", "ping6", "-c", "3", "-i", "0.2", "-s", "100", KERNEL)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"PING6(148=40+8+100 bytes) {OURS} --> {KERNEL}"
    assert sum(1 for x in lines if x.startswith(f"108 bytes from {KERNEL}, icmp_seq=") and "hlim=64" in x) == 3
    assert "3 packets transmitted, 3 packets received, 0.0% packet loss" in out.stdout
    ll = v6.run("iopkt", "ping6", "-c", "1", "-I", "ltap0", "ff02::1")
    assert ll.returncode == 0 and "%ltap0, icmp_seq=0" in ll.stdout, ll.stdout + ll.stderr
    # Nothing answers at an unused address: no reply, exit 2.
    none = v6.run("iopkt", "ping6", "-c", "1", "-W", "0.5", "fd00:205::99")
    assert none.returncode == 2 and "1 packets transmitted, 0 packets received" in none.stdout


def _netstat_counter(v6, name: str) -> str:
    """A counter of ``P/dev/socket/stats/ip6`` (the lines netstat -s formats)."""
    text = open(os.path.join(v6.prefix, "dev", "socket", "stats", "ip6")).read()
    return next(line.split(":")[1].strip() for line in text.splitlines() if line.split(":")[0].strip() == name)


def test_ndp_route_netstat_ifconfig(v6):
    v6.run("iopkt", "ping6", "-c", "1", KERNEL)
    kmac = sh("ip", "-n", v6.ns, "link", "show", v6.dev).stdout.split("link/ether")[1].split()[0]
    table = v6.run("iopkt", "ndp", "-an").stdout.splitlines()
    assert table[0].split() == ["Neighbor", "Linklayer", "Address", "Netif", "Expire", "S", "Flags"]
    row = next(x for x in table if x.startswith(KERNEL + " "))
    assert row.split()[1:3] == [kmac, "ltap0"] and row.split()[4] in "RSDP"
    info = v6.run("iopkt", "ndp", "-i", "ltap0").stdout
    assert info.startswith("linkmtu=1500, maxmtu=1500, curhlim=64, basereachable=30s0ms") and "Flags: nud" in info
    # ndp -i IF [-]flag: set first, then shown (SIOCSIFINFO_FLAGS).
    assert v6.run("iopkt", "ndp", "-i", "ltap0", "-nud").stdout.endswith("\nFlags: \n")
    assert v6.run("iopkt", "ndp", "-i", "ltap0", "nud", "accept_rtadv").stdout.endswith("\nFlags: nud accept_rtadv \n")
    assert v6.run("iopkt", "sysctl", "net.inet6.ip6.ifconf.ltap0.accept_rtadv").stdout.split()[-1] == "1"
    assert v6.run("iopkt", "ndp", "-i", "ltap0", "-accept_rtadv").stdout.endswith("\nFlags: nud \n")
    bad = v6.run("iopkt", "ndp", "-i", "ltap0", "prefer_source")
    assert bad.returncode == 1 and bad.stderr.strip() == "ndp: ioctl(SIOCSIFINFO_FLAGS): Operation not supported"
    # disabled (ND6_IFF_IFDISABLED): IPv6 neither in nor out by ltap0 until -disabled.
    kping = ["ip", "netns", "exec", v6.ns, "ping", "-6", "-c", "1", "-W", "1", OURS]
    assert sh(*kping, check=False).returncode == 0
    dropped = int(_netstat_counter(v6, "ifdisabled"))
    assert v6.run("iopkt", "ndp", "-i", "ltap0", "disabled").stdout.endswith("\nFlags: nud disabled \n")
    assert sh(*kping, check=False).returncode != 0
    assert v6.run("iopkt", "ping6", "-c", "1", "-W", "0.5", KERNEL).returncode != 0
    assert int(_netstat_counter(v6, "ifdisabled")) > dropped
    assert v6.run("iopkt", "ndp", "-i", "ltap0", "-disabled").stdout.endswith("\nFlags: nud \n")
    assert sh(*kping, check=False).returncode == 0
    assert v6.run("iopkt", "ndp", "-s", "fd00:205::77", "02:00:00:00:00:77").returncode == 0
    assert "fd00:205::77 " in v6.run("iopkt", "ndp", "-an").stdout
    gone = v6.run("iopkt", "ndp", "-d", "fd00:205::77")
    assert gone.stdout == "fd00:205::77 (fd00:205::77) deleted\n"
    assert v6.run("iopkt", "ndp", "-d", "fd00:205::77").stderr.strip() == "delete: cannot locate fd00:205::77"
    # route -inet6 through the kernel to an address only it has; ping6 then reaches it.
    sh("ip", "-n", v6.ns, "-6", "addr", "add", "fd00:999::1/128", "dev", "lo")
    add = v6.run("iopkt", "route", "add", "-inet6", "fd00:999::/64", KERNEL)
    assert add.returncode == 0 and add.stdout == f"add net fd00:999::/64: gateway {KERNEL}\n", add.stderr
    assert v6.run("iopkt", "ping6", "-c", "1", "fd00:999::1").returncode == 0
    routes = v6.run("iopkt", "netstat", "-rn", "-f", "inet6").stdout
    assert routes.startswith("Routing tables\n\nInternet6:\nDestination")
    assert any(x.split()[:3] == ["fd00:999::/64", KERNEL, "UGS"] for x in routes.splitlines()), routes
    assert any(x.startswith("fd00:205::/64 ") and x.endswith("ltap0") for x in routes.splitlines())
    assert v6.run("iopkt", "route", "delete", "-inet6", "fd00:999::/64").returncode == 0
    # netstat -an: an announced UDP socket on :: is a udp6 row in the Internet6 section.
    u = Conv(v6, "udp")
    u("announce ::!7110")
    sockets = v6.run("iopkt", "netstat", "-an").stdout
    inet6 = sockets.split("Active Internet6 connections (including servers)\n", 1)[1]
    assert any(x.split()[0] == "udp6" and x.split()[3] == "*.7110" for x in inet6.splitlines()[1:])
    u.close()
    rows = [x.split() for x in v6.run("iopkt", "netstat", "-i").stdout.splitlines() if x.startswith("ltap0 ")]
    assert ["fd00:205::/64", OURS] in [r[2:4] for r in rows]
    assert any(r[2] == "fe80::%ltap0/" and r[3].startswith("fe80::") for r in rows)   # %-13.13s, as NetBSD cuts it
    stats = v6.run("iopkt", "netstat", "-s", "-f", "inet6").stdout
    assert stats.startswith("ip6:\n") and "\nicmp6:\n" in stats and "echo reply:" in stats
    # ifconfig inet6 alias / delete: KAME's inet6 line appears and goes.
    assert v6.run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:206::2", "prefixlen", "80", "alias").returncode == 0
    assert "\tinet6 fd00:206::2 prefixlen 80" in v6.run("iopkt", "ifconfig", "ltap0").stdout
    assert v6.run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:206::2", "delete").returncode == 0
    shown = v6.run("iopkt", "ifconfig", "ltap0").stdout
    assert "fd00:206::2" not in shown and f"\tinet6 {OURS} prefixlen 64" in shown and "%ltap0" in shown


def _inet6_line(text: str, addr: str) -> str | None:
    return next((x for x in text.splitlines() if x.startswith(f"\tinet6 {addr} ")), None)


def test_ifconfig_inet6_anycast_lifetimes_and_minus_L(v6):
    """``ifconfig IF inet6 ADDR anycast | pltime N vltime N`` and ``ifconfig -L``: the
    address flags and lifetimes KAME's SIOCAIFADDR_IN6 carries, the lifetimes counting down
    in the stack (the deprecated address then goes away), the kernel reaching what is left."""
    run = v6.run
    assert run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:205::78", "prefixlen", "64", "anycast").returncode == 0
    add = run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:205::77", "prefixlen", "64", "pltime", "100",
              "vltime", "200")
    assert add.returncode == 0, add.stderr
    plain = run("iopkt", "ifconfig", "ltap0").stdout
    assert _inet6_line(plain, "fd00:205::78") == "\tinet6 fd00:205::78 prefixlen 64 anycast"
    assert "pltime" not in plain
    shown = run("iopkt", "ifconfig", "-L", "ltap0").stdout
    words = _inet6_line(shown, "fd00:205::77").split()
    pl, vl = int(words[words.index("pltime") + 1]), int(words[words.index("vltime") + 1])
    assert 95 <= pl <= 100 and vl - pl == 100, shown
    assert _inet6_line(shown, OURS).endswith(" pltime infty vltime infty")
    assert _inet6_line(shown, "fd00:205::78").endswith("anycast pltime infty vltime infty")
    # The kernel reaches the address once DAD is over (ping -6 to it).
    ping = sh("ip", "netns", "exec", v6.ns, "ping", "-6", "-c", "1", "-W", "3", "fd00:205::77", check=False)
    for _ in range(3):
        if ping.returncode == 0:
            break
        ping = sh("ip", "netns", "exec", v6.ns, "ping", "-6", "-c", "1", "-W", "3", "fd00:205::77", check=False)
    assert ping.returncode == 0, ping.stdout
    # Short lifetimes: deprecated after 1 s, removed after 2 s, by the stack's own timers.
    assert run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:205::79", "pltime", "1", "vltime", "2").returncode == 0
    seen_deprecated = False
    for _ in range(60):
        line = _inet6_line(run("iopkt", "ifconfig", "ltap0").stdout, "fd00:205::79")
        if line is None:
            break
        seen_deprecated |= "deprecated" in line
        subprocess.run(["sleep", "0.1"], check=True)
    assert line is None and seen_deprecated
    # Words that only inet6 takes, and lifetimes that contradict, are refused.
    bad = run("iopkt", "ifconfig", "ltap0", "10.205.0.9", "anycast")
    assert bad.returncode == 1 and "anycast: bad value" in bad.stderr
    bad = run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:205::7a", "pltime", "9", "vltime", "3")
    assert bad.returncode == 1 and bad.stderr.strip() == "ifconfig: SIOCAIFADDR_IN6: Invalid argument"
    for addr in ("fd00:205::77", "fd00:205::78"):
        assert run("iopkt", "ifconfig", "ltap0", "inet6", addr, "delete").returncode == 0


def test_ifconfig_inet6_eui64_fills_the_interface_id_from_the_link_local(v6):
    """NetBSD's ``eui64``: the low 64 bits of the given address come from the
    interface's link-local address; an address that has them already is refused."""
    run = v6.run
    shown = run("iopkt", "ifconfig", "ltap0").stdout
    ll = next(w.split()[1].partition("%")[0] for w in shown.splitlines() if w.lstrip().startswith("inet6 fe80:"))
    iid = int(ipaddress.IPv6Address(ll)) & (1 << 64) - 1
    want = ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd00:205:e::")) | iid)
    add = run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:205:e::", "prefixlen", "64", "eui64")
    assert add.returncode == 0, add.stderr
    assert _inet6_line(run("iopkt", "ifconfig", "ltap0").stdout, str(want)) is not None
    bad = run("iopkt", "ifconfig", "ltap0", "inet6", "fd00:205:e::1", "prefixlen", "64", "eui64")
    assert bad.returncode == 1 and bad.stderr.strip() == "ifconfig: interface index is already filled"
    bad = run("iopkt", "ifconfig", "ltap0", "10.205.0.9", "eui64")
    assert bad.returncode == 1 and "eui64: bad value" in bad.stderr
    assert run("iopkt", "ifconfig", "ltap0", "inet6", str(want), "delete").returncode == 0


def bash(sp, script: str, timeout: float = 60):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=sp.env, timeout=timeout)


def test_tcp6_100mb_each_way_through_the_files(v6):
    """100 MB the kernel sends over IPv6, read by dd from a data file, and 100 MB written
    to a data file, read by the kernel: SHA-256 equal both ways."""
    sender = textwrap.dedent(f"""\
        import hashlib, socket
        s = socket.create_connection(('{OURS}', 5061), timeout=60)
        h = hashlib.sha256(); block = bytes(range(256)) * 4096
        for i in range(100):
            chunk = block[i:] + block[:i]
            h.update(chunk); s.sendall(chunk)
        s.shutdown(socket.SHUT_WR); s.recv(1)
        print(h.hexdigest())
        """)
    listener = client.announce("tcp!*!5061", prefix=v6.prefix)
    try:
        proc = subprocess.Popen(["ip", "netns", "exec", v6.ns, "python3", "-c", sender], stdout=subprocess.PIPE,
                                text=True)
        conn = listener.accept()
        got = bash(v6, f"dd if=$SOCK/dev/socket/tcp/{conn.number}/data bs=1M 2>/dev/null | sha256sum", 120)
        assert conn.remote.strip().startswith(f"{KERNEL}!")
        conn.close()
        assert got.stdout.split()[0] == proc.communicate(timeout=60)[0].strip()
    finally:
        listener.close()
    receiver = textwrap.dedent(f"""\
        import hashlib, socket
        s = socket.socket(socket.AF_INET6); s.bind(('{KERNEL}', 5062)); s.listen(1)
        print('ready', flush=True)
        c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
        while True:
            data = c.recv(1 << 20)
            if not data:
                break
            h.update(data); n += len(data)
        print(n, h.hexdigest(), flush=True)
        """)
    proc = subprocess.Popen(["ip", "netns", "exec", v6.ns, "python3", "-c", receiver], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        c = Conv(v6, "tcp")
        c(f"connect {KERNEL}!5062")
        fd = os.open(os.path.join(c.dir, "data"), os.O_WRONLY)
        h = hashlib.sha256()
        block = bytes(range(256)) * 4096
        for i in range(100):
            chunk = block[-i:] + block[:-i] if i else block
            h.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.close(fd)
        c("close")                                        # FIN after the data
        assert proc.communicate(timeout=120)[0].split() == [str(100 * len(block)), h.hexdigest()]
        c.close()
    finally:
        proc.kill()
        proc.wait()


def test_curl6_to_a_shell_server_on_the_files(v6):
    server = textwrap.dedent("""\
        S=$SOCK/dev/socket/tcp
        N=$(cat $S/clone)
        echo "announce 8086" > $S/$N/ctl
        M=$(cat $S/$N/listen)
        cat $S/$M/remote
        exec 3<>$S/$M/data
        while IFS= read -r line <&3; do [ "${line%$'\\r'}" = "" ] && break; done
        printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 15\\r\\n\\r\\nhello over v6!\\n' >&3
        exec 3>&-
        echo close > $S/$M/ctl
        """)
    srv = subprocess.Popen(["bash", "-c", server], env=v6.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: "8086" in v6.run("iopkt", "netstat", "-an").stdout, 5)
        curl = subprocess.run(["ip", "netns", "exec", v6.ns, "curl", "-6", "-sS", "--max-time", "10", "-g",
                               f"http://[{OURS}]:8086/"], capture_output=True, text=True, timeout=20)
        assert curl.returncode == 0, curl.stderr
        assert curl.stdout == "hello over v6!\n"
        out, err = srv.communicate(timeout=10)
        assert srv.returncode == 0, err
        assert out.startswith(f"{KERNEL}!")                # remote: the caller, IPv6 as written
    finally:
        srv.kill()
        srv.wait()


def test_shell_client_to_the_kernels_http_server_bound_to_any6(v6, tmp_path):
    (tmp_path / "page.txt").write_text("served over IPv6 by the kernel\n")
    http = subprocess.Popen(["ip", "netns", "exec", v6.ns, "python3", "-m", "http.server", "8006", "--bind", "::",
                             "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: ":8006" in sh("ip", "netns", "exec", v6.ns, "ss", "-ltn").stdout, 10)
        out = bash(v6, textwrap.dedent(f"""\
            S=$SOCK/dev/socket/tcp
            N=$(cat $S/clone)
            echo "connect {KERNEL}!8006" > $S/$N/ctl
            exec 3<>$S/$N/data
            printf 'GET /page.txt HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3
            cat <&3
            """))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("HTTP/1.0 200 OK")
        assert out.stdout.endswith("\nserved over IPv6 by the kernel\n")
    finally:
        http.kill()
        http.wait()


def test_a_v4_stack_answers_as_qnx_without_inet6(stack):
    afno = "Address family not supported by protocol family"
    for argv in (["ping6", "-c", "1", "::1"], ["ndp", "-an"], ["ifconfig", "lo0", "inet6", "fd00::1"]):
        out = stack.run("iopkt", *argv)
        assert out.returncode == 1 and out.stderr.strip().endswith(f"socket: {afno}"), (argv, out.stderr)
    r = stack.run("iopkt", "route", "add", "-inet6", "fd00::/64", "fd00::1")
    assert r.returncode == 1 and f"writing to routing socket: {afno}" in r.stderr
    assert "Internet6" not in stack.run("iopkt", "netstat", "-rn").stdout
    assert "Internet6" not in stack.run("iopkt", "netstat", "-an").stdout
    c = Conv(stack, "udp")
    with pytest.raises(OSError) as e:
        c("connect fd00::1!53")
    assert e.value.errno == errno.EAFNOSUPPORT
    c.close()
