"""A SYN flood while 100 real clients connect, served through the socket files (issue
12, item 5): the listener is ``client.announce`` on the FUSE mount, each call accepted
through ``N/listen`` and answered through ``M/data``; the flood (20,000 spoofed SYNs,
raw socket, tests/kernel/kpeer.py) comes from the kernel's namespace at the same time."""

import json
import os
import subprocess
import threading

import pytest

from iopkt_fs import client

pytestmark = pytest.mark.system
STACK = "10.203.0.2"
KPEER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernel", "kpeer.py")


def kpeer(sp, *args) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", sp.ns, "python3", KPEER, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen, timeout: float) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_syn_flood_while_100_clients_are_served_through_the_files(tap_stack, record_property):
    sp = tap_stack
    listener = client.announce("tcp!*!5301", prefix=sp.prefix)
    served, failures = [], []

    def serve():
        while len(served) + len(failures) < 100:
            try:
                conn = listener.accept()
            except OSError as exc:        # the listener closed at the end of the test
                failures.append(exc)
                return
            try:
                got = b""
                while len(got) < 5:
                    chunk = conn.read(5 - len(got))
                    if not chunk:
                        break
                    got += chunk
                conn.write(got)
                served.append(got)
            except OSError as exc:
                failures.append(exc)
            finally:
                conn.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    before = open(sp.sock("tcp", "stats")).read()
    try:
        flood = kpeer(sp, "flood", STACK, 5301, 20000, 4.0)
        clients = kpeer(sp, "echos", STACK, 5301, 100)
        got = result(clients, 90)
        flooded = result(flood, 60)
        server.join(30)
    finally:
        listener.close()
    stats = dict(line.split(": ") for line in open(sp.sock("tcp", "stats")).read().splitlines())
    old = dict(line.split(": ") for line in before.splitlines())
    cookies = int(stats["tcps_sc_sendcookie"]) - int(old["tcps_sc_sendcookie"])
    line = (f"SYN flood through the files: {flooded['sent']} SYNs in {flooded['seconds']:.1f} s; "
            f"{got['served']}/100 clients served; {cookies} cookies")
    print(line)
    record_property("syn_flood_files", line)
    assert flooded["sent"] == 20000
    assert cookies > 1000
    assert got["served"] == 100, got["errors"]
    assert served == [b"hello"] * 100 and not failures
