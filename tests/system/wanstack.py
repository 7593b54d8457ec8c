"""A stack process whose TAP interface (named explicitly, so a change of the TAP driver's
default names cannot move it) faces the Linux kernel in a namespace the test makes."""

import os
import subprocess
import textwrap

import pytest

KERNEL, STACK = "10.204.0.1", "10.204.0.2"


def sh(*args, check=True, timeout=30, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check, **kw)


def in_ns(ns: str, *argv, check=True, **kw):
    return sh("ip", "netns", "exec", ns, *argv, check=check, **kw)


def wan_stack_fixture(tag: str, variant: str = "io-pkt-v4-hc"):
    @pytest.fixture
    def fixture(make_stack):
        """wan0 = 10.204.0.2/24 on a TAP whose other end (10.204.0.1) is in namespace sp.ns."""
        ns = f"{tag}-{os.getpid()}"
        dev = f"{tag[:4]}{os.getpid() % 100000}"
        sh("ip", "netns", "add", ns)
        sp = make_stack(args=["-d", "tap", f"dev={dev},netns={ns},name=wan"], variant=variant)
        try:
            out = sp.start()
            assert out.returncode == 0, out.stderr
            assert sp.run("iopkt", "ifconfig", "wan0", f"{STACK}/24").returncode == 0
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{KERNEL}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            assert sp.run("if_up", "-l", "-m", "100", "-r", "50", "wan0").returncode == 0
            sp.ns, sp.dev = ns, dev
            yield sp
        finally:
            sp.cleanup()
            sh("ip", "netns", "del", ns, check=False)

    return fixture


def sender(host: str, port: int, nbytes: int) -> str:
    """A kernel-side program: connect, send nbytes of a known pattern, print its SHA-256."""
    return textwrap.dedent(f"""\
        import hashlib, socket
        s = socket.create_connection(('{host}', {port}), timeout=60)
        h = hashlib.sha256(); block = bytes(range(256)) * 256
        left = {nbytes}; i = 0
        while left:
            n = min(left, len(block)); r = i % 251; chunk = (block[r:] + block[:r])[:n]
            h.update(chunk); s.sendall(chunk); left -= n; i += 1
        s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
        print(h.hexdigest())
        """)


def receive_all(listener, host: str, port: int, nbytes: int, ns: str) -> tuple[bytes, str]:
    """The kernel in ``ns`` sends nbytes to our announced ``listener``: (what we got, the
    sender's SHA-256)."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", sender(host, port, nbytes)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conn = listener.accept()
        got = conn.read_all()
        conn.close()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return got, out.strip()
    finally:
        proc.kill()
