"""Shared fixtures. System tests (``@pytest.mark.system``) need root and /dev/fuse; kernel
tests (``@pytest.mark.kernel``: an in-process stack against the Linux kernel over TAP,
veth or VXLAN, nothing mounted) need root and /dev/net/tun. Each kind skips where its
needs are missing, so the unit and simulation layers still run on any machine.
"""

import os
import subprocess
import sys

import pytest
from hypothesis import settings

# Property tests are deterministic in CI and locally alike: the same examples every run
# (the standards ask for seeded randomness); run with HYPOTHESIS_PROFILE=explore to search.
settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from iopkt_testutil import StackProcess, can_run_kernel_tests, can_run_system_tests  # noqa: E402
from iopkt_fs.stack.stack import Stack  # noqa: E402

# Every Stack.poll_at in the unit and simulation tests also asks every layer and fails if
# the cached deadline differs: a timer change that forgot Stack.timers_changed shows here.
Stack.check_timers = True


def pytest_collection_modifyitems(config, items):
    for marker, check in (("system", can_run_system_tests), ("kernel", can_run_kernel_tests)):
        ok, why = check()
        if ok:
            continue
        skip = pytest.mark.skip(reason=why)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def make_stack(tmp_path):
    """Start instances on prefixes under tmp_path; all are stopped and unmounted after."""
    made: list[StackProcess] = []

    def make(name: str = "stack", **kw) -> StackProcess:
        sp = StackProcess(str(tmp_path / name), **kw)
        made.append(sp)
        return sp

    yield make
    for sp in made:
        sp.cleanup()


@pytest.fixture
def stack(make_stack):
    sp = make_stack()
    proc = sp.start()
    assert proc.returncode == 0, proc.stderr
    return sp


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=check)


@pytest.fixture
def tap_stack(make_stack):
    """A stack with ltap0 = 10.203.0.2/24; the kernel side 10.203.0.1 in a private netns."""
    ns = f"systest-{os.getpid()}"
    dev = f"st{os.getpid() % 100000}"
    sh("ip", "netns", "add", ns)
    sp = make_stack(args=["-d", "tap", f"dev={dev},netns={ns}"])
    try:
        out = sp.start()
        assert out.returncode == 0, out.stderr
        assert sp.run("iopkt", "ifconfig", "ltap0", "10.203.0.2/24").returncode == 0
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", "10.203.0.1/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        assert sp.run("if_up", "-l", "-m", "100", "-r", "50", "ltap0").returncode == 0
        sp.ns, sp.dev = ns, dev
        yield sp
    finally:
        sp.cleanup()   # the stack (and its tap) go first, then the namespace
        sh("ip", "netns", "del", ns, check=False)
