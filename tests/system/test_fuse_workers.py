"""pyfuse3's worker loop with the baton (resmgr/fuseloop.py), through a real mount: a
request answered at once leaves its own worker to wait on /dev/fuse again; a request that
parks hands the wait to another worker, so the mount keeps answering."""

import hashlib
import os
import subprocess
import threading

import pytest

from iopkt_fs import client
from iopkt_testutil import wait_until

pytestmark = pytest.mark.system


def counters(stack) -> dict:
    return {k: int(v) for k, v in stack.status().items() if k.startswith("fuse_")}


def test_requests_answered_at_once_wait_again_in_the_same_worker(stack):
    status = f"{stack.prefix}/dev/socket/status"
    before = counters(stack)
    fd = os.open(status, os.O_RDONLY)
    try:
        for _ in range(300):
            assert os.pread(fd, 4096, 0).startswith(b"variant:")
    finally:
        os.close(fd)
    after = counters(stack)
    # Every one of the 300 READs (and the open, the release, the status reads) began the
    # next wait by taking the free baton; none needed another worker.
    assert after["fuse_waits_kept"] - before["fuse_waits_kept"] >= 300
    assert after["fuse_waits_passed"] == before["fuse_waits_passed"]
    assert after["fuse_workers"] == before["fuse_workers"]


def test_a_parked_request_passes_the_wait_to_another_worker(stack):
    listener = client.announce("tcp!*!5701", prefix=stack.prefix)
    try:
        before = counters(stack)
        listen = f"{stack.prefix}/dev/socket/tcp/{os.path.basename(listener.dir)}/listen"
        waiter = subprocess.Popen(["cat", listen], stdout=subprocess.PIPE)
        wait_until(lambda: int(stack.status()["parked"]) == 1, timeout=5)
        # The mount answers while the listen open is parked: another worker waits on
        # /dev/fuse, and it got the wait by a hand-over.
        mid = counters(stack)
        assert mid["fuse_waits_passed"] >= before["fuse_waits_passed"] + 1
        assert waiter.poll() is None
        conn_box = []
        th = threading.Thread(target=lambda: conn_box.append(client.dial(
            "tcp!127.0.0.1!5701", prefix=stack.prefix)))
        th.start()
        out, _ = waiter.communicate(timeout=10)
        th.join(10)
        assert out.strip().isdigit()            # the new connection's number
        conn_box[0].close()
    finally:
        listener.close()


def test_many_parked_readers_and_the_mount_still_answers(stack):
    """Twenty readers parked in data at once: each took a worker, the mount answered
    throughout, and every reader got its datagram."""
    base = f"{stack.prefix}/dev/socket/udp"
    ctls, readers = [], []
    try:
        for i in range(20):
            fd = os.open(f"{base}/clone", os.O_RDWR)
            n = os.read(fd, 16).decode().strip()
            os.write(fd, f"announce {7300 + i}\n".encode())
            ctls.append(fd)
            readers.append(subprocess.Popen(
                ["dd", f"if={base}/{n}/data", "bs=2048", "count=1", "status=none"],
                stdout=subprocess.PIPE))
        wait_until(lambda: int(stack.status()["parked"]) == 20, timeout=10)
        c = counters(stack)
        assert c["fuse_workers"] >= 21           # twenty parked, one waiting
        for _ in range(50):
            assert stack.status()["parked"] == "20"
        sender = client.dial("udp!127.0.0.1!7300", prefix=stack.prefix)
        for i in range(20):
            sender.ctl(f"connect 127.0.0.1!{7300 + i}")
            sender.write(f"datagram {i}".encode())
        outs = [r.communicate(timeout=10)[0] for r in readers]
        assert outs == [f"datagram {i}".encode() for i in range(20)]
        sender.close()
    finally:
        for r in readers:
            r.kill()
        for fd in ctls:
            os.close(fd)


KERNEL, STACK = "10.203.0.1", "10.203.0.2"


def test_a_requests_frames_go_out_after_its_reply(tap_stack):
    """A write to a TCP data file and the shutdown ctl write are answered first; the
    worker sends their segments after the reply, and the kernel gets every byte and the
    FIN."""
    sp = tap_stack
    sink = subprocess.Popen(
        ["ip", "netns", "exec", sp.ns, "python3", "-c",
         "import socket, hashlib\n"
         f"l = socket.create_server(('{KERNEL}', 7411)); print('ready', flush=True)\n"
         "c, _ = l.accept(); h = hashlib.sha256(); n = 0\n"
         "while (b := c.recv(65536)):\n    h.update(b); n += len(b)\n"
         "print(n, h.hexdigest(), flush=True)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        conn = client.dial(f"tcp!{KERNEL}!7411", prefix=sp.prefix)
        before = counters(sp)
        payload = os.urandom(200_000)
        conn.write(payload)
        conn.shutdown()                  # our FIN
        got = sink.stdout.readline().split()
        assert got == [str(len(payload)), hashlib.sha256(payload).hexdigest()]
        after = counters(sp)
        # Each of those requests queued segments and was answered before they left.
        assert after["fuse_sent_after_reply"] >= before["fuse_sent_after_reply"] + 2
        conn.close()
    finally:
        sink.kill()
        sink.wait()
