"""Multicast membership on the wire: MLD (RFC 3810, MLDv1 after a v1 query) and IGMPv3
reports from the stack, captured by tshark in the kernel's namespace, and learned by a
Linux bridge with multicast snooping on (what breaks when a host does not report).

    stack --tap-- [ns: br0 (mcast_snooping 1) with the tap as its port]

Groups: the solicited-node group of a new address, ff05::1:3 joined in the core, and
239.1.2.3 joined by a UDP socket with IP_ADD_MEMBERSHIP."""

import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import trio

from iopkt_fs.stack.wire.ipv6 import solicited_node

from drvtest_util import needs_root, wait_until
from ktest_util import sh, tap_link
from test_ipv6_kernel import run

pytestmark = [pytest.mark.system, needs_root,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by scripts/setup.sh")]

NET = 70
GROUP6 = "ff05::1:3"
GROUP4 = "239.1.2.3"

V1_QUERY = (
    "import sys\n"
    "from scapy.all import Ether, IPv6, IPv6ExtHdrHopByHop, RouterAlert, ICMPv6MLQuery, sendp\n"
    "sendp(Ether(dst='33:33:00:00:00:01') / IPv6(src='fe80::77', dst='ff02::1', hlim=1)\n"
    "      / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) / ICMPv6MLQuery(mrd=300),\n"
    "      iface=sys.argv[1], verbose=False)\n")


def _fields(pcap: str, display: str, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", pcap, "-Y", display, "-T", "fields", "-E", "separator=|"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    return [line.split("|") for line in out.splitlines() if line]


async def test_mld_and_igmp_reports_seen_by_tshark_and_a_snooping_bridge(kstack, knetns):
    stack = kstack.stack
    ns, dev, driver = await tap_link(kstack, knetns, NET)
    iface = driver.interfaces[0]
    sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "1")
    sh("ip", "-n", ns, "link", "set", dev, "master", "br0")
    sh("ip", "-n", ns, "link", "set", "br0", "up")
    await wait_until(lambda: any(a.address.is_link_local and not a.flags6 for a in iface.inet6_addrs()),
                     timeout=5)
    tmp = tempfile.mkdtemp(prefix="h-mcast-")
    pcap = os.path.join(tmp, "mcast.pcapng")
    tshark = subprocess.Popen(["ip", "netns", "exec", ns, "tshark", "-i", dev, "-n", "-q", "-w", pcap,
                               "-a", "duration:30"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # tshark writes the capture file's header once it captures.
        await wait_until(lambda: os.path.exists(pcap) and os.path.getsize(pcap) > 0, timeout=15)
        await trio.sleep(0.3)
        stack.add_address(iface, ipaddress.ip_address(f"fd00:77:{NET}::2"), 64)
        stack.inet6.join_group(iface, ipaddress.IPv6Address(GROUP6).packed)
        sock = stack.inet.udp.socket()
        sock.bind(None, 7070)
        sock.setsockopt("IP_ADD_MEMBERSHIP", GROUP4)
        kstack.runtime.settle()
        # Both robustness copies go within the 1 s Unsolicited Report Interval.
        await wait_until(lambda: stack.inet6.mld.stats.reports >= 4 and stack.inet.igmp.stats.snd_reports >= 2,
                         timeout=5)
        await trio.sleep(1.2)
        mdb = sh("bridge", "-n", ns, "mdb", "show", "dev", "br0").stdout
        assert GROUP6 in mdb and GROUP4 in mdb, mdb
        # An MLDv1 querier appears: we answer in MLDv1 (what QNX speaks).
        p = await run(ns, sys.executable, "-c", V1_QUERY, dev)
        assert p.returncode == 0, p.stderr.decode()
        await wait_until(lambda: stack.inet6.mld.stats.v1queries == 1, timeout=5)
        await trio.sleep(0.8)
    finally:
        tshark.terminate()
        try:
            tshark.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            tshark.kill()
            tshark.communicate()
    try:
        ours = f"ipv6.src == {next(str(a.address) for a in iface.inet6_addrs() if a.address.is_link_local)}"
        v2 = _fields(pcap, f"icmpv6.type == 143 and ({ours} or ipv6.src == ::)", "ipv6.hlim",
                     "icmpv6.mldr.mar.record_type", "icmpv6.mldr.mar.multicast_address")
        sn = str(ipaddress.IPv6Address(solicited_node(ipaddress.IPv6Address(f"fd00:77:{NET}::2").packed)))
        joins = [(hlim, group) for hlim, rtype, group in v2 if rtype == "4"]
        assert joins.count(("1", GROUP6)) == 2 and joins.count(("1", sn)) == 2, v2
        assert not any("ff02::1" == g for _h, _t, g in v2)
        v1 = _fields(pcap, f"icmpv6.type == 131 and {ours}", "ipv6.dst", "icmpv6.mld.multicast_address")
        assert (GROUP6, GROUP6) in {tuple(r) for r in v1} and (sn, sn) in {tuple(r) for r in v1}, v1
        igmp = _fields(pcap, f"igmp.type == 0x22 and ip.src == 10.77.{NET}.2", "ip.dst", "ip.ttl",
                       "igmp.record_type", "igmp.maddr")
        assert igmp.count(["224.0.0.22", "1", "4", GROUP4]) == 2, igmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
