"""Helpers for system tests: the console scripts, and real io-pkt instances on FUSE.

Imported as ``iopkt_testutil`` (conftest.py puts this folder on sys.path); a plain
module, because several folders have a conftest.py of their own.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

BIN = os.path.dirname(sys.executable)


def tool(name: str) -> str:
    return os.path.join(BIN, name)


def can_run_system_tests() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root"
    if not os.path.exists("/dev/fuse"):
        return False, "needs /dev/fuse"
    if shutil.which("fusermount3") is None:
        return False, "needs fuse3 (fusermount3)"
    return True, ""


def can_run_kernel_tests() -> tuple[bool, str]:
    """Kernel tests mount nothing: root (namespaces, TAP) and the TUN device suffice."""
    if os.geteuid() != 0:
        return False, "needs root"
    if not os.path.exists("/dev/net/tun"):
        return False, "needs /dev/net/tun"
    if shutil.which("ip") is None:
        return False, "needs iproute2 (ip)"
    return True, ""


def mounted(prefix: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == prefix for line in f)


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class StackProcess:
    """One io-pkt instance started the way a user starts it (it returns once serving)."""

    def __init__(self, prefix: str, variant: str = "io-pkt-v4-hc", args: list[str] | None = None,
                 tcpip: str = ""):
        self.prefix = prefix
        self.variant = variant
        opts = f"prefix={prefix}" + (f",{tcpip}" if tcpip else "")
        self.argv = [tool(variant), "-ptcpip", opts] + (args or [])
        self.pid: int | None = None
        self.env = dict(os.environ, SOCK=prefix)

    def start(self) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run(self.argv, capture_output=True, text=True, timeout=30)
        self.start_seconds = time.monotonic() - started
        if proc.returncode == 0:
            self.pid = int(self.status()["pid"])
        return proc

    def status(self) -> dict[str, str]:
        with open(os.path.join(self.prefix, "dev", "socket", "status")) as f:
            return dict(line.rstrip("\n").split(": ", 1) for line in f if ": " in line)

    def sock(self, *parts: str) -> str:
        return os.path.join(self.prefix, "dev", "socket", *parts)

    def run(self, *argv: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
        """Run a tool against this instance (SOCK set), capturing text output."""
        cmd = list(argv)
        if not os.path.isabs(cmd[0]) and os.path.exists(tool(cmd[0])):
            cmd[0] = tool(cmd[0])
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=30,
                              check=check, **kw)

    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        # An exited daemon is reparented to PID 1, which may reap it late: a zombie has
        # finished (and unmounted) already.
        return state not in ("Z", "X")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> bool:
        if self.pid is None:
            return True
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        gone = wait_until(lambda: not self.alive(), timeout)
        return gone

    def cleanup(self) -> None:
        if self.alive():
            self.stop(signal.SIGTERM, 3.0)
        if self.alive():
            self.stop(signal.SIGKILL, 3.0)
        if mounted(self.prefix):
            subprocess.run(["fusermount3", "-u", "-z", self.prefix], capture_output=True)




@contextlib.contextmanager
def parked_udp_readers(prefix: str, count: int, first_port: int):
    """``count`` UDP connections announced on ``first_port`` on, each with a ``dd`` that
    reads one datagram from its data file (parked until one comes); yields the readers.
    ``answer_udp_readers`` sends each its datagram."""
    base = f"{prefix}/dev/socket/udp"
    ctls, readers = [], []
    try:
        for i in range(count):
            fd = os.open(f"{base}/clone", os.O_RDWR)
            n = os.read(fd, 16).decode().strip()
            os.write(fd, f"announce {first_port + i}\n".encode())
            ctls.append(fd)
            readers.append(subprocess.Popen(
                ["dd", f"if={base}/{n}/data", "bs=2048", "count=1", "status=none"],
                stdout=subprocess.PIPE))
        yield readers
    finally:
        for r in readers:
            r.kill()
            r.wait()
        for fd in ctls:
            os.close(fd)


def answer_udp_readers(prefix: str, readers: list, first_port: int) -> list[bytes]:
    """Send reader i the datagram ``datagram i`` over lo0; what each reader printed."""
    from iopkt_fs import client
    sender = client.dial(f"udp!127.0.0.1!{first_port}", prefix=prefix)
    try:
        for i in range(len(readers)):
            sender.ctl(f"connect 127.0.0.1!{first_port + i}")
            sender.write(f"datagram {i}".encode())
        return [r.communicate(timeout=10)[0] for r in readers]
    finally:
        sender.close()
