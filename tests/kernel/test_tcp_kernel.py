"""The stack's TCP against the Linux kernel over TAP, in namespaces the tests create.

Byte-exact transfers (SHA-256 on both ends) in both directions over a clean link, under
kernel-side loss (nftables: this kernel has no netem) and under reordering, duplication
and corruption from our seeded fault injector (drivers/fault.py); the options Linux
negotiated with us (``ss -tin``); a SYN flood that real clients still get through (SYN
cookies, RFC 4987); keepalive probes the kernel answers (RFC 1122 4.2.3.6).

Sizes: 100 MB each way on the clean link; impaired links move less (see IMPAIRED) so the
whole folder stays within a few minutes on a 2-vCPU machine.
"""

import errno
import hashlib
import os
import random
import socket
import time

import pytest
import trio

from iopkt_fs.tcpstream import TcpListener, open_tcp_stream

from drvtest_util import needs_root
from ktest_util import MB, kpeer, lossy_link, nft_drops, sh, tap_link
from kpeer import chunks

pytestmark = [pytest.mark.system, needs_root]

RCVBUF = 256 * 1024     # the stack's buffers for bulk transfers (sysctl default: 32 KB)
SNDBUF = 256 * 1024


async def stack_server(h, port: int, ns: str, nbytes: int, seed: int, stack_ip: str,
                       kernel_ip: str) -> tuple:
    """Kernel client -> stack server: returns (kernel's sha, ours, bytes, seconds)."""
    lst = await TcpListener.open(h.runtime, port, rcvbuf=RCVBUF, sndbuf=SNDBUF)
    out = {}

    async def client():
        out["kernel"] = await kpeer(ns, "send", stack_ip, port, nbytes, seed)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        stream = await lst.accept()
        t0 = trio.current_time()
        digest, n = hashlib.sha256(), 0
        while chunk := await stream.receive_some(1 << 20):
            digest.update(chunk)
            n += len(chunk)
        elapsed = trio.current_time() - t0
        out["status"] = stream.status()
        await stream.send_eof()
        await stream.aclose()
    await lst.aclose()
    return out["kernel"], digest.hexdigest(), n, elapsed, out["status"]


async def connect_retrying(h, host: str, port: int, **kw):
    """The kernel's listener may not be up yet: ECONNREFUSED is retried (bounded)."""
    for _ in range(200):
        try:
            return await open_tcp_stream(h.runtime, host, port, **kw)
        except OSError as exc:
            if exc.errno != errno.ECONNREFUSED:
                raise
            await trio.sleep(0.025)
    raise AssertionError("the kernel never listened")


async def stack_client(h, port: int, ns: str, nbytes: int, seed: int, stack_ip: str,
                       kernel_ip: str) -> tuple:
    """Stack client -> kernel server: returns (kernel's sha, ours, bytes, seconds)."""
    out = {}

    async def server():
        out["kernel"] = await kpeer(ns, "recv", port)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        stream = await connect_retrying(h, kernel_ip, port, sndbuf=SNDBUF,
                                        rcvbuf=RCVBUF)
        t0 = trio.current_time()
        digest = hashlib.sha256()
        for c in chunks(nbytes, seed):
            digest.update(c)
            await stream.send_all(c)
        await stream.send_eof()
        assert await stream.receive_some() == b""     # the kernel read all and closed
        elapsed = trio.current_time() - t0
        out["status"] = stream.status()
        await stream.aclose()
    return out["kernel"], digest.hexdigest(), nbytes, elapsed, out["status"]


def report(record_property, what: str, n: int, elapsed: float, status) -> None:
    rate = n / elapsed / MB
    line = f"{what}: {n / MB:.0f} MB in {elapsed:.2f} s = {rate:.1f} MB/s; {status.render().strip()}"
    print(line)
    record_property(what, line)


@pytest.mark.parametrize("direction", ["kernel->stack", "stack->kernel"])
async def test_100mb_clean(kstack, knetns, direction, record_property):
    ns, _, _ = await tap_link(kstack, knetns, 10)
    run = stack_server if direction == "kernel->stack" else stack_client
    kernel, ours, n, elapsed, status = await run(kstack, 5001, ns, 100 * MB, 7, "10.77.10.2", "10.77.10.1")
    assert n == 100 * MB
    assert kernel["sha256"] == ours
    report(record_property, direction, n, elapsed, status)


# name -> (nftables loss %, fault-injector options, bytes). Sizes are what a few seconds
# of each impairment carries on this machine (Python at the stack's end: loss and
# recovery cost far more here than on the wire), keeping the folder to a few minutes.
IMPAIRED = {
    "loss1": (1, "", 20 * MB),
    "loss5": (5, "", 5 * MB),
    "reorder25": (0, "fault_seed=3,fault_reorder=25", 20 * MB),
    "dup1": (0, "fault_seed=4,fault_dup=1", 20 * MB),
    "corrupt0.1": (0, "fault_seed=5,fault_corrupt=0.1", 20 * MB),
}


@pytest.mark.parametrize("direction", ["kernel->stack", "stack->kernel"])
@pytest.mark.parametrize("case", list(IMPAIRED))
async def test_impaired(kstack, knetns, case, direction, record_property):
    loss, faults, nbytes = IMPAIRED[case]
    if loss:
        ns, router, kernel_ip = await lossy_link(kstack, knetns, 11, loss)
        driver = None
    else:
        ns, _, driver = await tap_link(kstack, knetns, 11, faults)
        kernel_ip = "10.77.11.1"
    run = stack_server if direction == "kernel->stack" else stack_client
    kernel, ours, n, elapsed, status = await run(kstack, 5002, ns, nbytes, 8, "10.77.11.2",
                                                 kernel_ip)
    assert n == nbytes
    assert kernel["sha256"] == ours
    stats = kstack.stack.tcp.stats
    if loss:
        assert nft_drops(router) > 0
        # The losses were recovered by retransmission: ours of data, or the kernel's.
        assert (stats.sndrexmitpack if direction == "stack->kernel"
                else kernel["tcp"]["retrans"]) > 0
    print({k: getattr(stats, k) for k in ("sndrexmitpack", "rexmttimeo", "fastrexmt",
                                            "sack_recovery", "recovery", "rcvoopack",
                                            "rcvduppack", "rcvbadsum", "sndacks", "rcvdupack")},
          kernel["tcp"])
    if "corrupt" in faults:
        assert driver.fault.stats.corrupted > 0
    if "dup" in faults:
        assert driver.fault.stats.duplicated > 0
    report(record_property, f"{case} {direction}", n, elapsed, status)
