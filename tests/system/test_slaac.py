"""SLAAC through the files and the tools: a real io-pkt-v6-hc on FUSE with a TAP into a
namespace where radvd advertises a prefix. QNX's per-interface node turns RAs on
(`sysctl -w net.inet6.ip6.ifconf.ltap0.accept_rtadv=1`, ifconfig then shows ACCEPTRTADV),
`ifconfig ltap0` shows the autoconfigured address as KAME prints it, and the kernel pings it."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from iopkt_testutil import can_run_system_tests, wait_until

ok, why = can_run_system_tests()
pytestmark = [pytest.mark.system, pytest.mark.skipif(not ok, reason=why),
              pytest.mark.skipif(shutil.which("radvd") is None, reason="radvd is installed by scripts/setup.sh")]

PREFIX = "fd00:204::"
RADVD_CONF = """interface {dev} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
    prefix {prefix}/64 {{ AdvValidLifetime 600; AdvPreferredLifetime 300; }};
}};
"""


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=check)


def test_slaac_from_radvd_shown_by_ifconfig(make_stack):
    ns = f"sysra-{os.getpid()}"
    dev = f"sr{os.getpid() % 100000}"
    sh("ip", "netns", "add", ns)
    tmp = tempfile.mkdtemp(prefix="h-sysra-")
    radvd = None
    sp = make_stack(variant="io-pkt-v6-hc", args=["-d", "tap", f"dev={dev},netns={ns}"])
    try:
        assert sp.start().returncode == 0
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        sh("ip", "-n", ns, "-6", "addr", "add", f"{PREFIX}1/64", "dev", dev, "nodad")
        assert sp.run("iopkt", "ifconfig", "ltap0", "up").returncode == 0
        # Off by default, as on QNX.
        out = sp.run("iopkt", "sysctl", "net.inet6.ip6.accept_rtadv", "net.inet6.ip6.ifconf.ltap0.accept_rtadv")
        assert out.stdout.split() == ["net.inet6.ip6.accept_rtadv", "=", "0",
                                      "net.inet6.ip6.ifconf.ltap0.accept_rtadv", "=", "0"], out.stdout
        conf = os.path.join(tmp, "radvd.conf")
        with open(conf, "w") as f:
            f.write(RADVD_CONF.format(dev=dev, prefix=PREFIX))
        radvd = subprocess.Popen(["ip", "netns", "exec", ns, "radvd", "-n", "-C", conf, "-p",
                                  os.path.join(tmp, "radvd.pid"), "-m", "stderr"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        w = sp.run("iopkt", "sysctl", "-w", "net.inet6.ip6.ifconf.ltap0.accept_rtadv=1")
        assert w.returncode == 0, w.stderr
        head = sp.run("iopkt", "ifconfig", "ltap0").stdout.splitlines()[0]
        assert "ACCEPTRTADV" in head, head

        def autoconf_line():
            text = sp.run("iopkt", "ifconfig", "ltap0").stdout
            return next((line for line in text.splitlines()
                         if line.strip().startswith(f"inet6 {PREFIX.rstrip(':')}") and "autoconf" in line), None)

        assert wait_until(lambda: (line := autoconf_line()) is not None and "tentative" not in line, timeout=20)
        line = autoconf_line()
        m = re.fullmatch(r"\tinet6 (fd00:204::[0-9a-f:]+) prefixlen 64 autoconf", line)
        assert m, repr(line)
        p = sh("ip", "netns", "exec", ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", m.group(1), check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        # ndp -rn / -pn list what the RA taught: the router by its link-local address on
        # ltap0, the prefix with the on-link and autonomous flags and our one address.
        routers = sp.run("iopkt", "ndp", "-rn").stdout
        assert re.search(r"^fe80::[0-9a-f:]+%ltap0 if=ltap0, flags=\S*, pref=medium, expire=", routers, re.M), routers
        prefixes = sp.run("iopkt", "ndp", "-pn").stdout
        assert re.search(r"^fd00:204::/64 if=ltap0\nflags=LAO? vltime=\d+, pltime=\d+, expire=\S+, ref=1\n", prefixes), prefixes
    finally:
        if radvd is not None:
            radvd.terminate()
            try:
                radvd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                radvd.kill()
                radvd.wait()
        sp.cleanup()
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
