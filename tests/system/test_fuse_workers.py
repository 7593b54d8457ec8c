"""pyfuse3's worker loop with the baton (resmgr/fuseloop.py), through a real mount: a
request answered at once leaves its own worker to wait on /dev/fuse again; a request that
parks hands the wait to another worker, so the mount keeps answering."""

import hashlib
import os
import subprocess
import threading

import pytest

from iopkt_fs import client
from iopkt_testutil import answer_udp_readers, parked_udp_readers, wait_until

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
    with parked_udp_readers(stack.prefix, 20, 7300) as readers:
        wait_until(lambda: int(stack.status()["parked"]) == 20, timeout=10)
        c = counters(stack)
        assert c["fuse_workers"] >= 21           # twenty parked, one waiting
        for _ in range(50):
            assert stack.status()["parked"] == "20"
        outs = answer_udp_readers(stack.prefix, readers, 7300)
        assert outs == [f"datagram {i}".encode() for i in range(20)]


KERNEL, STACK = "10.203.0.1", "10.203.0.2"


def test_a_requests_frames_go_out_after_its_reply(tap_stack):
    """A write to a TCP data file and the shutdown ctl write are each answered first;
    the worker sends their segments after the reply, and the kernel gets every byte and
    the FIN. (The payload fits the initial window, so each request's segments leave at
    once: a write that waits for the window sends at its yields instead.)"""
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
        payload = os.urandom(1000)
        before = counters(sp)["fuse_sent_after_reply"]
        conn.write(payload)
        assert counters(sp)["fuse_sent_after_reply"] == before + 1
        conn.shutdown()                  # our FIN
        assert counters(sp)["fuse_sent_after_reply"] == before + 2
        got = sink.stdout.readline().split()
        assert got == [str(len(payload)), hashlib.sha256(payload).hexdigest()]
        conn.close()
    finally:
        sink.kill()
        sink.wait()
