"""Scale (issue 12, item 6): 10,000 TCP connections from the Linux kernel open at once
to an in-process server that echoes each one's 8-byte number; none lost, memory per
connection bounded and reported. (1,000 through the files and 1,000 parked FUSE readers
are in tests/system/test_scale_files.py.)"""

import os

import pytest
import trio

from iopkt_fs.tcpstream import TcpListener

from drvtest_util import needs_root
from ktest_util import kpeer, tap_link

pytestmark = [pytest.mark.kernel, needs_root]
N = int(os.environ.get("IOPKT_SCALE_N", "10000"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_10000_concurrent_connections_all_echoed(kstack, knetns, record_property):
    ns, _, _ = await tap_link(kstack, knetns, 30)
    stack = kstack.stack
    lst = await TcpListener.open(kstack.runtime, 5301, backlog=1024)
    rss0 = rss_bytes()
    counts = {"echoed": 0, "open": 0, "peak": 0, "rss_peak": rss0}

    async def echo(stream):
        got = b""
        with trio.move_on_after(150):
            while len(got) < 8:
                chunk = await stream.receive_some(8 - len(got))
                if not chunk:
                    break
                got += chunk
            await stream.send_all(got)
            counts["echoed"] += 1
            counts["open"] += 1
            if counts["open"] > counts["peak"]:
                counts["peak"] = counts["open"]
            while await stream.receive_some(64):     # open until the client closes
                pass
            counts["open"] -= 1
        await stream.aclose()

    async def server(nursery):
        while True:
            nursery.start_soon(echo, await lst.accept())

    async def sampler():
        while True:
            counts["rss_peak"] = max(counts["rss_peak"], rss_bytes())
            await trio.sleep(0.1)

    with trio.fail_after(240):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server, nursery)
            nursery.start_soon(sampler)
            result = await kpeer(ns, "echomany", "10.77.30.2", 5301, N, timeout=200)
            with trio.move_on_after(30):
                while stack.tcp.connections:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    per_conn = (counts["rss_peak"] - rss0) / max(counts["peak"], 1)
    line = (f"10,000 connections: {result['echoed']} echoed, {counts['peak']} established at "
            f"once; RSS +{(counts['rss_peak'] - rss0) / 1e6:.1f} MB = {per_conn / 1024:.1f} KB "
            f"per connection (stack, trio task and stream); {result['seconds']:.1f} s")
    print(line)
    record_property("scale_10000", line)
    assert result["connected"] == 10000 and result["nerrors"] == 0, result["errors"]
    assert result["echoed"] == 10000 and counts["echoed"] == 10000
    assert counts["peak"] >= 9990          # at once (a few may finish their handshake late)
    assert per_conn < 64 * 1024            # bounded: no buffers held by idle connections
    assert not stack.tcp.connections       # all closed again
    await lst.aclose()
