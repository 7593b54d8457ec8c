"""Faults a running stack must survive or end cleanly (issue 12, item 7), against the
Linux kernel in a namespace over TAP (the tap_stack fixture):

- kill -9 with transfers in progress: the kernel's peers get an error or a timeout (never
  a hang), the processes using the files get an error at once (FUSE aborts the
  connection; none is left in D state), and the next start on the prefix serves again;
- SIGTERM with transfers in progress unmounts (the bound asserted is generous: 10 s);
- a TAP device deleted underneath its driver is logged, its interface goes down, and the
  stack keeps serving on its other interface.
"""

import errno
import os
import signal
import subprocess
import textwrap
import threading
import time

import pytest

from iopkt_fs import client
from iopkt_testutil import StackProcess, mounted, wait_until

pytestmark = pytest.mark.system
KERNEL, STACK = "10.203.0.1", "10.203.0.2"

# The kernel's peers bound every wait: a stack that dies sends no RST, so a peer learns of
# it from TCP_USER_TIMEOUT (sender) or a receive timeout; they print what ended them.
KSENDER = textwrap.dedent("""\
    import socket, sys, time
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 3000)
    s.settimeout(5)
    block = bytes(65536)
    print("sending", flush=True)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 60:
            s.sendall(block)
        print("finished")
    except OSError as exc:
        print("error", exc.errno or "timeout", flush=True)
    """)
KSINK = textwrap.dedent("""\
    import socket, sys
    lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("0.0.0.0", int(sys.argv[1]))); lst.listen(1)
    print("listening", flush=True)
    s, _ = lst.accept()
    s.settimeout(3)
    try:
        while s.recv(1 << 16):
            pass
        print("eof")
    except OSError as exc:
        print("error", exc.errno or "timeout", flush=True)
    """)


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=check)


def in_ns(sp, *argv, **kw):
    return subprocess.Popen(["ip", "netns", "exec", sp.ns, *argv], **kw)


def state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def watch_exits(procs: list[subprocess.Popen], seconds: float) -> None:
    """Wait (bounded) for every process to end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.02)


class Load:
    """Transfers through the files both ways plus a parked reader, while they run:

    kernel sender -> stack (files: cat reads the data file to /dev/null)
    stack (files: dd writes the data file) -> kernel sink
    a reader parked on a connection that carries nothing
    """

    def __init__(self, sp):
        self.sp = sp
        self.procs: list[subprocess.Popen] = []
        self.listener = client.announce("tcp!*!5101", prefix=sp.prefix)
        self.ksender = in_ns(sp, "python3", "-c", KSENDER, STACK, "5101", stdout=subprocess.PIPE, text=True)
        assert self.ksender.stdout.readline() == "sending\n"
        self.inbound = self.listener.accept()
        self.reader = subprocess.Popen(["cat", f"{self.inbound.dir}/data"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
        self.ksink = in_ns(sp, "python3", "-c", KSINK, "5102", stdout=subprocess.PIPE, text=True)
        assert self.ksink.stdout.readline() == "listening\n"
        self.outbound = client.dial(f"tcp!{KERNEL}!5102", prefix=sp.prefix)
        self.writer = subprocess.Popen(["dd", "if=/dev/zero", f"of={self.outbound.dir}/data", "bs=64k"],
                                       stderr=subprocess.PIPE, text=True)
        self.kidle = in_ns(sp, "python3", "-c", "import socket, sys, time; s = socket.create_connection("
                           f"('{STACK}', 5101)); time.sleep(30)")
        self.quiet = self.listener.accept()
        self.parked = subprocess.Popen(["cat", f"{self.quiet.dir}/data"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        self.files = [self.reader, self.writer, self.parked]
        self.kernel = [self.ksender, self.ksink]
        self.procs = self.files + self.kernel + [self.kidle]

    def moving(self) -> bool:
        """Data is flowing both ways through the files (the stack's TCP counters grow)."""
        def counters():
            text = open(self.sp.sock("tcp", "stats")).read()
            got = dict(line.split(": ") for line in text.splitlines() if ": " in line)
            return int(got["tcps_rcvbyte"]), int(got["tcps_sndbyte"])
        a = counters()
        time.sleep(0.3)
        b = counters()
        return b[0] - a[0] > 100_000 and b[1] - a[1] > 100_000

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def test_kill_9_under_load_fails_everyone_fast_and_the_next_start_recovers(tap_stack):
    sp = tap_stack
    load = Load(sp)
    try:
        assert all(p.poll() is None for p in load.procs)
        assert wait_until(load.moving, 10)
        os.kill(sp.pid, signal.SIGKILL)
        # The file users: FUSE aborts the connection with the daemon gone, so each blocked
        # read or write returns an error (ENOTCONN) at once: no process left waiting.
        watch_exits(load.files, 5.0)
        for p in load.files:
            assert p.poll() is not None, (p.args, state(p.pid))   # not stuck (D or S)
            assert p.returncode != 0, p.args
            # ECONNABORTED for a request the kernel had queued, ENOTCONN after the abort.
            why = p.stderr.read()
            assert "Software caused connection abort" in why or \
                "Transport endpoint is not connected" in why, why
        # The kernel's peers: its sender's data goes nowhere (the tap died with the
        # stack), its receiver gets nothing more; both end on an error or a timeout.
        watch_exits(load.kernel, 20.0)
        for p in load.kernel:
            assert p.poll() is not None, "a kernel peer hangs"
            assert p.stdout.read().startswith("error"), p.args
        # The next start on the prefix clears what the dead instance left (root mounts
        # without auto_unmount: manager.py) and serves, a TCP port of the old one included.
        again = StackProcess(sp.prefix)
        try:
            out = again.start()
            assert out.returncode == 0, out.stderr
            assert mounted(sp.prefix) and again.alive()
            assert again.run("iopkt", "ifconfig", "lo0").returncode == 0
            with client.announce("tcp!*!5101", prefix=again.prefix):
                pass
        finally:
            again.cleanup()
    finally:
        load.close()


def test_sigterm_under_load_unmounts(tap_stack):
    sp = tap_stack
    load = Load(sp)
    try:
        assert wait_until(load.moving, 10)
        os.kill(sp.pid, signal.SIGTERM)
        # Functional bound only (the README says well under 2 s; speed is not asserted).
        assert wait_until(lambda: not mounted(sp.prefix) and not sp.alive(), 10)
        watch_exits(load.files, 5.0)
        assert all(p.poll() is not None for p in load.files)
        # An orderly stop closed the sockets: the kernel's receiver saw them end.
        watch_exits([load.ksink], 10.0)
        assert load.ksink.poll() is not None
    finally:
        load.close()


def test_tap_deleted_underneath_is_logged_and_the_rest_keeps_serving(make_stack):
    ns = f"sysfault-{os.getpid()}"
    gone, kept = f"sf{os.getpid() % 100000}a", f"sf{os.getpid() % 100000}b"
    sh("ip", "netns", "add", ns)
    sp = make_stack(args=["-d", "tap", f"dev={gone},netns={ns}", "-d", "tap", f"dev={kept},netns={ns}"])
    try:
        assert sp.start().returncode == 0
        assert sp.run("iopkt", "ifconfig", "ltap0", "10.204.0.2/24").returncode == 0
        assert sp.run("iopkt", "ifconfig", "ltap1", "10.205.0.2/24").returncode == 0
        for dev, net in ((gone, 204), (kept, 205)):
            sh("ip", "-n", ns, "addr", "add", f"10.{net}.0.1/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        assert sp.run("if_up", "-l", "-m", "100", "-r", "50", "ltap0").returncode == 0
        assert sp.run("if_up", "-l", "-m", "100", "-r", "50", "ltap1").returncode == 0
        # A connection on ltap1 that must outlive ltap0.
        listener = client.announce("tcp!*!5103", prefix=sp.prefix)
        peer = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", textwrap.dedent("""\
            import socket, sys
            s = socket.create_connection(("10.205.0.2", 5103), timeout=10)
            for line in sys.stdin:
                s.sendall(line.encode()); print(s.recv(100).decode().strip(), flush=True)
            """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            conn = listener.accept()

            def echo(word):
                peer.stdin.write(word + "\n")
                peer.stdin.flush()
                got = conn.read(100)
                conn.write(got.upper())
                return peer.stdout.readline().strip()
            assert echo("before") == "BEFORE"

            sh("ip", "-n", ns, "link", "del", gone)

            def tap0_flags():
                first = sp.run("iopkt", "ifconfig", "ltap0").stdout.split("\n", 1)[0]
                return first.split("<", 1)[1].split(">", 1)[0].split(",")
            # Down: neither UP nor RUNNING (if_down), and the log says why.
            assert wait_until(lambda: "UP" not in tap0_flags(), 5), tap0_flags()
            assert "RUNNING" not in tap0_flags()
            log = sp.run("sloginfo").stdout
            assert f"ltap0: {gone}: the Linux device is gone; interface down" in log, log
            assert sp.alive()
            # Traffic for ltap0's network fails at once instead of vanishing.
            with pytest.raises(OSError) as info:
                client.dial("tcp!10.204.0.1!80", prefix=sp.prefix)
            assert info.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), info.value
            # The other interface: ping, the live connection, and a new one.
            ping = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2",
                                   "10.205.0.2"], capture_output=True, text=True, timeout=20)
            assert ping.returncode == 0, ping.stdout
            assert echo("after") == "AFTER"
            assert sp.run("iopkt", "ifconfig", "-a").returncode == 0
        finally:
            peer.kill()
            peer.wait()
            listener.close()
    finally:
        sp.cleanup()
        sh("ip", "netns", "del", ns, check=False)


def test_out_of_packet_buffers_a_writer_waits_and_the_stack_keeps_serving(make_stack):
    """A pool of 48 clusters (96 KB): the first writes of a few loopback connections
    take all of it (each send ring is 32 KB). The next writer cannot get its ring: it
    waits, as BSD's sosend does for mbufs, while every other request is still served;
    once connections close and give their buffers back, its byte goes through."""
    sp = make_stack(tcpip="nmbclusters=48")
    assert sp.start().returncode == 0
    listener = client.announce("tcp!*!6200", prefix=sp.prefix)
    pairs = []
    try:
        for _ in range(6):
            box = []
            th = threading.Thread(target=lambda: box.append(listener.accept()), daemon=True)
            th.start()
            c = client.dial("tcp!127.0.0.1!6200", prefix=sp.prefix)
            th.join(10)
            pairs.append((c, box[0]))
        blocked = None
        for i, (c, s) in enumerate(pairs):
            done = threading.Event()
            th = threading.Thread(target=lambda c=c, done=done: (c.write(b"x"), done.set()), daemon=True)
            th.start()
            if not done.wait(2.0):
                blocked = (i, th, done, s)
                break
        assert blocked is not None, "the pool never ran out"
        i, th, done, peer = blocked
        # Meanwhile the stack serves: status, the pool's figures (denied > 0), ifconfig.
        got = {}
        reader = threading.Thread(target=lambda: got.update(
            status=open(sp.sock("status")).read(), mbuf=open(sp.sock("mbuf")).read()), daemon=True)
        reader.start()
        reader.join(5)
        assert "pid: " in got.get("status", ""), "the stack stopped serving"
        assert "denied" in got["mbuf"]
        assert sp.run("iopkt", "ifconfig", "lo0").returncode == 0
        # Give buffers back: the writer's byte goes through and arrives.
        for c, s in pairs[:i]:
            c.hangup()
            s.hangup()
        assert done.wait(10), "the writer never got its buffers"
        assert peer.read(10) == b"x"
        th.join(5)
    finally:
        for c, s in pairs:
            for end in (c, s):
                try:
                    end.close()
                except OSError:
                    pass
        listener.close()
