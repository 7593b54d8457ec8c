"""A buildfile-style shell script end to end: start, if_up -p, ifconfig, sysctl -w,
mount -T io-pkt, sloginfo, SIGTERM - and nothing left mounted."""

import os
import pathlib
import subprocess

import pytest

from iopkt_testutil import BIN, mounted, wait_until

pytestmark = pytest.mark.system
SCRIPT = pathlib.Path(__file__).parent / "buildfile.sh"


def test_buildfile_script(tmp_path):
    prefix = str(tmp_path / "alt")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    env.pop("SOCK", None)
    try:
        out = subprocess.run(["sh", str(SCRIPT), prefix], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33192" in lines
        assert "\tinet 10.77.0.1 netmask 0xffff0000" in lines
        assert "net.inet.ip.forwarding: 0 -> 1" in lines
        assert "net.inet.ip.forwarding = 1" in lines
        assert "lo0 lo1" in lines                      # mount -T io-pkt loop made lo1
        assert "Time             Sev Major Minor Args" in lines
        assert any(l.endswith(" 14     0 devnp-loop (null)") or l.endswith("loop (null)") for l in lines)
        assert wait_until(lambda: not mounted(prefix), 3.0)
    finally:
        if mounted(prefix):
            subprocess.run(["fusermount3", "-u", "-z", prefix])
