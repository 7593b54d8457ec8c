"""gre0 and gif0 (hc variants) against the Linux kernel: the underlay is a TAP to a
namespace the test makes, where the kernel's ping and TCP run over its tunnel end. This
kernel has no gre/ipip devices, so that end is a TUN device plus tunpeer.py (the
encapsulation written from the RFCs in the test, raw sockets for the outer packets)."""

import hashlib
import os
import subprocess
import sys

import pytest

from iopkt_fs import client
from iopkt_fs.drivers.pcapfile import PcapReader
from iopkt_testutil import wait_until
from wanstack import KERNEL, STACK, in_ns, receive_all, wan_stack_fixture

pytestmark = pytest.mark.system
wan_stack = wan_stack_fixture("tunl")
OURS, THEIRS = "10.9.0.1", "10.9.0.2"
OURS6, THEIRS6 = "2001:db8:9::1", "2001:db8:9::2"
MB10 = 10_000_000
TUNPEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tunpeer.py")


@pytest.fixture
def linux_tunnel(wan_stack):
    """The kernel's tunnel end: ``ktun`` (THEIRS -> OURS) and the tunpeer.py relay."""
    relays = []

    def start(kind: str):
        sp = wan_stack
        relay = subprocess.Popen(["ip", "netns", "exec", sp.ns, sys.executable, TUNPEER, kind, KERNEL, STACK],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        relays.append(relay)
        assert relay.stdout.readline().strip() == "ready", relay.stderr.read()
        in_ns(sp.ns, "ip", "link", "set", "ktun", "mtu", "1476" if kind == "gre" else "1480")
        in_ns(sp.ns, "ip", "addr", "add", THEIRS, "peer", OURS, "dev", "ktun")
        in_ns(sp.ns, "ip", "link", "set", "ktun", "up")
        return relay

    yield start
    for relay in relays:
        relay.stdin.close()
        try:
            relay.wait(timeout=5)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()


def _our_tunnel(sp, name: str) -> str:
    for args in (["create"], ["tunnel", STACK, KERNEL], [OURS, THEIRS, "up"]):
        out = sp.run("iopkt", "ifconfig", name, *args)
        assert out.returncode == 0 and not out.stderr, out.stderr
    return sp.run("iopkt", "ifconfig", name).stdout


def _ping_both_ways(sp) -> None:
    ping = in_ns(sp.ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", OURS, check=False)
    assert ping.returncode == 0, ping.stdout
    ours = sp.run("iopkt", "ping", "-c", "2", THEIRS)
    assert ours.returncode == 0, ours.stdout + ours.stderr


def _transfer(sp, port: int) -> None:
    listener = client.announce(f"tcp!*!{port}", prefix=sp.prefix)
    try:
        got, sent_sha = receive_all(listener, OURS, port, MB10, sp.ns)
    finally:
        listener.close()
    assert len(got) == MB10
    assert hashlib.sha256(got).hexdigest() == sent_sha


def _outer_packets(sp, proto: int, count: int, action) -> list[bytes]:
    """``count`` IPv4 packets of protocol ``proto`` wan0 sends while ``action`` runs."""
    with open(sp.sock("if", "wan0", "pcap"), "rb") as f:
        reader = PcapReader(f, linktype=1)
        action()
        found = []
        for _, frame in reader:
            if frame[12:14] == b"\x08\x00" and frame[23] == proto and frame[26:30] == bytes(map(int, STACK.split("."))):
                found.append(frame[14:])
                if len(found) == count:
                    return found


def test_gre0_carries_ping_and_10mb_of_tcp_to_the_kernel(wan_stack, linux_tunnel):
    sp = wan_stack
    linux_tunnel("gre")
    status = _our_tunnel(sp, "gre0")
    assert status.splitlines()[:3] == [
        "gre0: flags=9051<UP,POINTOPOINT,RUNNING,LINK0,MULTICAST> mtu 1476",
        f"\ttunnel inet {STACK} --> {KERNEL}",
        f"\tinet {OURS} -> {THEIRS} netmask 0xff000000"]
    _ping_both_ways(sp)
    # On the wire: TTL 30, no DF, protocol 47, a bare 4-byte GRE header (no flags, v0, 0x0800).
    outer = _outer_packets(sp, 47, 1, lambda: sp.run("iopkt", "ping", "-c", "1", THEIRS))
    ip = outer[0]
    assert ip[8] == 30 and ip[6] & 0x40 == 0
    assert ip[20:24] == b"\x00\x00\x08\x00"
    _transfer(sp, 5060)
    # deletetunnel: the tunnel line goes, RUNNING goes, traffic stops.
    assert sp.run("iopkt", "ifconfig", "gre0", "deletetunnel").returncode == 0
    status = sp.run("iopkt", "ifconfig", "gre0").stdout
    assert "tunnel" not in status and "RUNNING" not in status.splitlines()[0]
    assert in_ns(sp.ns, "ping", "-c", "1", "-W", "1", OURS, check=False).returncode != 0


def test_gif0_carries_ping_and_10mb_of_tcp_to_the_kernel(wan_stack, linux_tunnel):
    sp = wan_stack
    linux_tunnel("ipip")
    status = _our_tunnel(sp, "gif0")
    assert status.splitlines()[:2] == [
        "gif0: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1280",
        f"\ttunnel inet {STACK} --> {KERNEL}"]
    _ping_both_ways(sp)
    outer = _outer_packets(sp, 4, 1, lambda: sp.run("iopkt", "ping", "-c", "1", THEIRS))
    assert outer[0][8] == 30 and outer[0][20] >> 4 == 4
    _transfer(sp, 5061)
    # A datagram bigger than gif0's MTU 1280 is fragmented (no DF from ping -M dont) and comes
    # back whole.
    big = in_ns(sp.ns, "ping", "-c", "1", "-W", "2", "-M", "dont", "-s", "3000", OURS, check=False)
    assert big.returncode == 0, big.stdout


wan6_stack = wan_stack_fixture("tun6", variant="io-pkt-v6-hc")


@pytest.fixture
def v6_tunnel(wan6_stack):
    """The kernel's end for IPv6 inside IPv4: ktun with THEIRS6/64 and tunpeer.py."""
    relays = []

    def start(kind: str):
        relay = subprocess.Popen(["ip", "netns", "exec", wan6_stack.ns, sys.executable, TUNPEER, kind, KERNEL, STACK],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        relays.append(relay)
        assert relay.stdout.readline().strip() == "ready", relay.stderr.read()
        ns = wan6_stack.ns
        in_ns(ns, "ip", "link", "set", "ktun", "mtu", "1476" if kind == "gre" else "1480")
        in_ns(ns, "ip", "addr", "add", f"{THEIRS6}/64", "dev", "ktun", "nodad")
        in_ns(ns, "ip", "link", "set", "ktun", "up")
        return wan6_stack

    yield start
    for relay in relays:
        relay.stdin.close()
        try:
            relay.wait(timeout=5)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()


@pytest.mark.parametrize("kind, name, proto", [("sit", "gif0", 41), ("gre", "gre0", 47)])
def test_ipv6_inside_ipv4_on_v6_hc(v6_tunnel, kind, name, proto):
    sp = v6_tunnel(kind)
    for args in (["create"], ["tunnel", STACK, KERNEL], ["inet6", OURS6, "prefixlen", "64"]):
        out = sp.run("iopkt", "ifconfig", name, *args)
        assert out.returncode == 0 and not out.stderr, out.stderr
    # A point-to-point link: KAME's in6_alias prints the destination, :: when none is set.
    assert f"\tinet6 {OURS6} -> :: prefixlen 64" in sp.run("iopkt", "ifconfig", name).stdout
    ping = in_ns(sp.ns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", OURS6, check=False)
    assert ping.returncode == 0, ping.stdout
    outer = _outer_packets(sp, proto, 1, lambda: in_ns(sp.ns, "ping", "-6", "-c", "1", "-W", "2", OURS6))
    inner = outer[0][20:] if proto == 41 else outer[0][24:]
    assert outer[0][8] == 30 and inner[0] >> 4 == 6
    if proto == 47:
        assert outer[0][20:24] == b"\x00\x00\x86\xdd"
    listener = client.announce("tcp!*!5062", prefix=sp.prefix)
    try:
        got, sent_sha = receive_all(listener, OURS6, 5062, 2_000_000, sp.ns)
    finally:
        listener.close()
    assert len(got) == 2_000_000 and hashlib.sha256(got).hexdigest() == sent_sha


def test_tunnel_errors_are_ifconfigs(wan_stack):
    sp = wan_stack
    out = sp.run("iopkt", "ifconfig", "gre7", "create")
    assert out.returncode == 0
    mixed = sp.run("iopkt", "ifconfig", "gre7", "tunnel", STACK, "2001:db8::1")
    assert mixed.returncode == 1
    assert mixed.stderr.strip() == "ifconfig: source and destination address families do not match"
    bad = sp.run("iopkt", "ifconfig", "gre7", "mtu", "500")
    assert bad.returncode == 1 and "SIOCSIFMTU: Invalid argument" in bad.stderr
    again = sp.run("iopkt", "ifconfig", "gre7", "create")
    assert again.returncode == 1 and again.stderr.strip() == "ifconfig: SIOCIFCREATE: File exists"
    notun = sp.run("iopkt", "ifconfig", "wan0", "tunnel", STACK, KERNEL)
    assert "ifconfig: SIOCSLIFPHYADDR: Invalid argument" in notun.stderr
    assert sp.run("iopkt", "ifconfig", "gre7", "destroy").returncode == 0
    assert wait_until(lambda: "gre7" not in sp.run("iopkt", "ifconfig", "-l").stdout, 5)
