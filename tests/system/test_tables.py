"""route, arp, netstat and nicinfo against a stack whose TAP peer is the Linux kernel in a
namespace this test makes (and deletes)."""

import os
import subprocess

import pytest

from iopkt_testutil import wait_until

pytestmark = pytest.mark.system


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=check)


def kernel_mac(sp) -> str:
    out = sh("ip", "-n", sp.ns, "-o", "link", "show", sp.dev).stdout
    return out.split("link/ether ")[1].split()[0]


def test_route_tool(tap_stack):
    r = tap_stack.run
    assert r("iopkt", "route", "add", "default", "10.203.0.1").stdout == "add net default: gateway 10.203.0.1\n"
    assert r("iopkt", "route", "add", "-net", "10.9", "10.203.0.1").stdout == "add net 10.9.0.0: gateway 10.203.0.1\n"
    assert r("iopkt", "route", "add", "-host", "10.8.8.8", "10.203.0.1").stdout == "add host 10.8.8.8: gateway 10.203.0.1\n"
    dup = r("iopkt", "route", "add", "-net", "10.9", "10.203.0.1")
    assert dup.returncode == 1
    assert dup.stderr == ("route: writing to routing socket: File exists\n"
                          "add net 10.9.0.0: gateway 10.203.0.1: File exists\n")
    far = r("iopkt", "route", "add", "-net", "10.10", "192.0.2.1")
    assert far.returncode == 1 and "Network is unreachable" in far.stderr
    table = r("iopkt", "netstat", "-rn").stdout.splitlines()
    assert table[:4] == ["Routing tables", "", "Internet:",
                         "Destination        Gateway            Flags    Refs      Use    Mtu  Interface"]
    rows = {line.split()[0]: line.split() for line in table[4:]}
    assert rows["default"][1:3] == ["10.203.0.1", "UGS"] and rows["default"][-1] == "ltap0"
    assert rows["10.9/16"][1:3] == ["10.203.0.1", "UGS"]
    assert rows["10.8.8.8"][1:3] == ["10.203.0.1", "UGHS"]
    assert rows["10.203/24"][1:3] == ["link#2", "UC"]
    got = r("iopkt", "route", "get", "10.9.1.1").stdout
    assert "destination: 10.9.0.0\n       mask: 255.255.0.0\n    gateway: 10.203.0.1\n  interface: ltap0\n" in got
    miss = r("iopkt", "route", "delete", "-net", "10.77")
    assert miss.returncode == 1 and miss.stderr.endswith("delete net 10.77.0.0: not in table\n")
    assert r("iopkt", "route", "delete", "-net", "10.9").returncode == 0
    assert r("iopkt", "route", "flush").returncode == 0
    assert [l.split()[0] for l in r("iopkt", "route", "show").stdout.splitlines()[4:]] == ["10.203/24", "127.0.0.1"]


def test_arp_tool_sees_the_kernel(tap_stack):
    sp = tap_stack
    ping = sh("ip", "netns", "exec", sp.ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.203.0.2", check=False)
    assert ping.returncode == 0, ping.stdout
    entries = sp.run("iopkt", "arp", "-a").stdout
    assert f"? (10.203.0.1) at {kernel_mac(sp)} on ltap0\n" in entries
    assert sp.run("iopkt", "arp", "-s", "10.203.0.77", "02:00:00:00:00:77").returncode == 0
    assert "? (10.203.0.77) at 02:00:00:00:00:77 on ltap0 permanent" in sp.run("iopkt", "arp", "-a").stdout
    assert sp.run("iopkt", "arp", "10.203.0.77").stdout.startswith("? (10.203.0.77)")
    assert sp.run("iopkt", "arp", "-d", "10.203.0.77").stdout == "10.203.0.77 (10.203.0.77) deleted\n"
    gone = sp.run("iopkt", "arp", "-d", "10.203.0.77")
    assert gone.returncode == 1 and gone.stderr == "delete: cannot locate 10.203.0.77\n"
    bad = sp.run("iopkt", "arp", "-s", "10.99.0.1", "02:00:00:00:00:01")
    assert bad.returncode == 1 and "Network is unreachable" in bad.stderr
    # The stack's own address is in the kernel's neighbour table, with our MAC.
    ours = sp.run("iopkt", "ifconfig", "ltap0").stdout.split("address: ")[1].split()[0]
    assert ours in sh("ip", "-n", sp.ns, "neigh", "show", "10.203.0.2").stdout


def test_netstat_counts_what_the_kernel_sent(tap_stack):
    sp = tap_stack
    before = sp.run("iopkt", "netstat", "-s", "-p", "icmp").stdout
    assert before.startswith("icmp:\n\t0 calls to icmp_error\n")
    sh("ip", "netns", "exec", sp.ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.203.0.2")
    icmp = sp.run("iopkt", "netstat", "-s", "-p", "icmp").stdout
    assert "\tOutput histogram:\n\t\techo reply: 3\n" in icmp and "\tInput histogram:\n\t\techo: 3\n" in icmp
    # A UDP datagram to a closed port: counted and answered with port unreachable.
    sh("ip", "netns", "exec", sp.ns, "python3", "-c",
       "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('10.203.0.2', 9))")
    assert wait_until(lambda: "\t1 dropped due to no socket\n" in sp.run("iopkt", "netstat", "-s", "-p", "udp").stdout, 3)
    ip = sp.run("iopkt", "netstat", "-s", "-p", "ip").stdout
    assert "\t4 total packets received\n" in ip
    every = sp.run("iopkt", "netstat", "-s").stdout
    assert [l for l in every.splitlines() if not l.startswith("\t")] == ["ip:", "icmp:", "tcp:", "udp:", "arp:"]
    ifs = sp.run("iopkt", "netstat", "-i").stdout.splitlines()
    assert ifs[0] == "Name  Mtu   Network       Address              Ipkts Ierrs    Opkts Oerrs Colls"
    tap = [l.split() for l in ifs if l.startswith("ltap0")]
    assert tap[0][2] == "<Link>" and tap[1][2:4] == ["10.203/24", "10.203.0.2"]
    assert int(tap[0][4]) >= 4 and int(tap[0][6]) >= 4
    unknown = sp.run("iopkt", "netstat", "-s", "-p", "sctp")
    assert unknown.returncode == 1 and "unknown or uninstrumented protocol" in unknown.stderr


def test_nicinfo_for_a_tap(tap_stack):
    nic = tap_stack.run("nicinfo").stdout
    assert nic.startswith("ltap0:\n")
    assert "Link is UP" in nic
    mac = tap_stack.run("iopkt", "ifconfig", "ltap0").stdout.split("address: ")[1].split()[0]
    node = mac.replace(":", "").upper()
    assert f"Physical Node ID ........................... {node[:6]} {node[6:]}\n" in nic
    assert "Maximum Transmittable data Unit ............ 1514\n" in nic


def test_mtu_change_reaches_the_tap(tap_stack):
    sp = tap_stack
    assert sp.run("iopkt", "ifconfig", "ltap0", "mtu", "9000").returncode == 0
    link = sh("ip", "-n", sp.ns, "-o", "link", "show", sp.dev).stdout
    assert " mtu 9000 " in link
    # A jumbo ping, unfragmented both ways.
    ping = sh("ip", "netns", "exec", sp.ns, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "8000", "10.203.0.2",
              check=False)
    assert ping.returncode == 0, ping.stdout
