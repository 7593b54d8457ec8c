"""scripts/bench.py and scripts/rawtap_peer.py parse their command lines (no measuring)."""

import os
import subprocess
import sys

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, script), *args],
                          capture_output=True, text=True, timeout=60)


def test_bench_help_lists_the_groups():
    r = run("bench.py", "--help")
    assert r.returncode == 0, r.stderr
    for word in ("--quick", "--only", "--json", "--markdown", "files", "vxlan", "memory"):
        assert word in r.stdout


def test_bench_rejects_an_unknown_group():
    r = run("bench.py", "--only", "files,nosuch")
    assert r.returncode == 2 and "nosuch" in r.stderr


def test_rawtap_peer_help():
    r = run("rawtap_peer.py", "--help")
    assert r.returncode == 0 and "--vnet" in r.stdout
