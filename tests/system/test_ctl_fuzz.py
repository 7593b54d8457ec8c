"""Every writable control file of a mounted io-pkt-v6-hc, fuzzed with Hypothesis
(ctl_fuzz.py): each refused line is a user errno with its reason in the log, nothing is
an internal error (EIO), and afterwards the stack still serves."""

import os

from hypothesis import HealthCheck, given, settings, strategies as st

from iopkt_fs import client

import ctl_fuzz

import pytest

pytestmark = pytest.mark.system


def test_every_writable_control_file_refuses_with_an_errno_and_a_logged_reason(make_stack):
    sp = make_stack("fuzz", variant="io-pkt-v6-hc")
    assert sp.start().returncode == 0
    held = [os.open(sp.sock(proto, "clone"), os.O_RDWR) for proto in ("tcp", "udp", "raw", "unix")]
    try:
        files = ctl_fuzz.writable_files(sp.prefix)
        kinds = {ctl_fuzz.kind_of(f) for f in files}
        print(len(files), "writable files:", sorted(f.split("/dev/socket/")[1] for f in files
                                                     if "sysctl" not in f))
        assert kinds == set(ctl_fuzz.VERBS), kinds     # every kind of control file is here
        outcomes = {"ok": 0, "refused": 0, "blocked": 0}

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.data())
        def fuzz(data):
            path = data.draw(st.sampled_from(files))
            kind = ctl_fuzz.kind_of(path)
            line = data.draw(ctl_fuzz.lines_for(kind))
            if ctl_fuzz.harmful(kind, line) or not os.path.exists(path):
                return      # a host device, or a file an earlier line destroyed
            outcomes[ctl_fuzz.write_one(sp.prefix, path, kind, line)] += 1

        fuzz()
        print(outcomes)
        assert outcomes["refused"] > 100 and outcomes["ok"] > 10
    finally:
        for fd in held:
            os.close(fd)
    # Still serving: the instance is up, its files answer, a new connection works.
    assert sp.alive()
    assert "pid: " in open(sp.sock("status")).read()
    assert sp.run("iopkt", "ifconfig", "-a").returncode == 0
    with client.announce("tcp!*!6100", prefix=sp.prefix) as lst:
        assert lst.dir
