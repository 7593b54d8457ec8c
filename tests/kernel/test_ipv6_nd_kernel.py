"""Router discovery and SLAAC against a real router: ``radvd`` in a namespace the test
makes advertises a prefix over TAP to the stack (io-pkt-v6-hc with accept_rtadv=1);
``ndisc6``/``rdisc6`` from the kernel's side ask the stack. Addresses are ULAs inside the
test's own namespace only."""

import ipaddress
import os
import shutil
import subprocess
import tempfile

import pytest
import trio

from iopkt_fs.resmgr.render import ifconfig_block
from iopkt_fs.runtime import now_us
from iopkt_fs.stack.inet6.ndisc import IN6_IFF_AUTOCONF

from drvtest_util import needs_root, wait_until
from ktest_util import sh, tap_link
from test_ipv6_kernel import run

pytestmark = [pytest.mark.system, needs_root,
              pytest.mark.skipif(not (shutil.which("radvd") and shutil.which("rdisc6")),
                                 reason="radvd and ndisc6 are installed by scripts/setup.sh")]

NET = 50
PREFIX = f"fd00:77:{NET}::"
FAR = "fd00:99::1"          # an address of the router's beyond the prefix: via the default route

RADVD_CONF = """interface {dev} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 30;
    MaxRtrAdvInterval 60;
    AdvDefaultLifetime 90;
    AdvCurHopLimit 61;
    AdvLinkMTU 1400;
    prefix {prefix}/64 {{
        AdvOnLink on;
        AdvAutonomous on;
        AdvValidLifetime 600;
        AdvPreferredLifetime 300;
    }};
}};
"""


def _eui64(mac: bytes) -> str:
    iid = bytes((mac[0] ^ 2, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))
    return ":".join(f"{int.from_bytes(iid[i:i + 2], 'big'):x}" for i in range(0, 8, 2))


def _kernel_ll(ns: str, dev: str) -> str | None:
    out = sh("ip", "-n", ns, "-6", "addr", "show", "dev", dev, "scope", "link").stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("inet6 ") and "tentative" not in line:
            return line.split()[1].split("/")[0]
    return None


async def test_radvd_slaac_default_route_and_lifetimes(kstack, knetns):
    stack = kstack.stack
    ns, dev, driver = await tap_link(kstack, knetns, NET)
    iface = driver.interfaces[0]
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    sh("ip", "-n", ns, "-6", "addr", "add", f"{PREFIX}1/64", "dev", dev, "nodad")
    sh("ip", "-n", ns, "-6", "addr", "add", f"{FAR}/128", "dev", "lo")
    await wait_until(lambda: _kernel_ll(ns, dev) is not None, timeout=10)
    router_ll = _kernel_ll(ns, dev)
    # Our link-local address passes DAD before anything else is asked of us.
    await wait_until(lambda: any(a.address.is_link_local and not a.flags6 for a in iface.inet6_addrs()),
                     timeout=5)
    ours_ll = next(str(a.address) for a in iface.inet6_addrs() if a.address.is_link_local)

    # rdisc6 asks us for an RA: a host stays silent (RFC 4861 6.2.6).
    p = await run(ns, "rdisc6", "-1", "-r", "1", "-w", "700", f"{ours_ll}", dev)
    assert p.returncode == 2 and b"No response." in p.stdout + p.stderr and b"Prefix" not in p.stdout, \
        p.stdout.decode() + p.stderr.decode()
    assert stack.inet6.icmp.stats.inhist.get(133, 0) >= 1          # it did reach us

    tmp = tempfile.mkdtemp(prefix="h-radvd-")
    conf = os.path.join(tmp, "radvd.conf")
    with open(conf, "w") as f:
        f.write(RADVD_CONF.format(dev=dev, prefix=PREFIX))
    radvd = subprocess.Popen(["ip", "netns", "exec", ns, "radvd", "-n", "-C", conf, "-p",
                              os.path.join(tmp, "radvd.pid"), "-m", "stderr", "-d", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # radvd's first RA comes at once and is not for us (accept_rtadv is 0); its next
        # unsolicited one is 16 s later. Accepting RAs starts our Router Solicitations,
        # and radvd's answer (at most 3 s after its last RA) is what configures us.
        await wait_until(lambda: stack.inet6.rtr.stats.raignored >= 1, timeout=10)
        stack.sysctl.set("net.inet6.ip6.accept_rtadv", 1)
        kstack.runtime.settle()
        slaac = str(ipaddress.IPv6Address(f"{PREFIX}{_eui64(iface.mac)}"))

        def formed():
            return any(str(a.address) == slaac and a.flags6 == IN6_IFF_AUTOCONF for a in iface.inet6_addrs())

        await wait_until(formed, timeout=15)
        assert stack.inet6.rtr.stats.rsout >= 1 and stack.inet6.rtr.stats.rain >= 1
        assert f"inet6 {slaac} prefixlen 64 autoconf" in ifconfig_block(iface)
        default = next(r for r in stack.inet6.routes if r.prefixlen == 0)
        assert default.describe()["gateway"] == router_ll and default.describe()["flags"] == "UG"
        assert default.iface is iface
        routers = stack.inet6.ndp_routers()
        assert [r["address"] for r in routers] == [router_ll] and 0 < routers[0]["expire"] <= 90
        text = stack.inet6.nd_routers_text(now_us())
        assert text.startswith(f"{router_ll}%{iface.name} if={iface.name}, flags=, pref=medium, expire="), text
        (prefix,) = stack.inet6.ndp_prefixes()
        assert prefix["prefix"] == f"{PREFIX}/64" and prefix["flags"] == "LA"
        assert 0 < prefix["vltime"] <= 600 and 0 < prefix["pltime"] <= 300
        # The RA's MTU and hop limit are the link's now.
        far = ipaddress.IPv6Address(FAR).packed
        assert stack.inet6.path_mtu(far) == 1400

        # The kernel reaches the autoconfigured address ...
        p = await run(ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", slaac)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
        # ... and we reach an address off the prefix through the default route, from it,
        # with the advertised hop limit.
        icmp = stack.inet6.icmp
        icmp.echo_replies.clear()
        for seq in range(2):
            icmp.send_echo(far, 0x55, seq, b"via the default router", now_us())
            kstack.runtime.settle()
            await trio.sleep(0.1)
        await wait_until(lambda: len(icmp.echo_replies) >= 2, timeout=5)
        assert icmp.echo_replies[0][1] == far
        assert stack.inet6.source_for(far) == ipaddress.IPv6Address(slaac).packed
        assert stack.inet6.rtr.hop_limit(iface) == 61
        # ndisc6 resolves our autoconfigured address to our MAC.
        p = await run(ns, "ndisc6", "-1", "-r", "3", "-w", "1000", slaac, dev)
        assert p.returncode == 0 and iface.mac_text().upper() in p.stdout.decode().upper(), p.stdout.decode()
    finally:
        radvd.terminate()
        try:
            _out, err = radvd.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            radvd.kill()
            radvd.communicate()
        shutil.rmtree(tmp, ignore_errors=True)
    # radvd's last RA on shutdown has router lifetime 0: the router and the default route go
    # at once (RFC 4861 6.3.4), while the address lives on (its valid lifetime is left).
    await wait_until(lambda: not stack.inet6.ndp_routers(), timeout=5)
    assert not any(r.prefixlen == 0 for r in stack.inet6.routes)
    assert any(str(a.address) == slaac for a in iface.inet6_addrs())
