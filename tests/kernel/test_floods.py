"""Floods against an in-process stack over TAP, from the Linux kernel in a namespace the
test makes (issue 12, item 5): a SYN flood of 20,000 spoofed SYNs while 100 real clients
connect; an out-of-order-data flood into a live connection and a flood of fragments that
never complete, with memory held under the caps while ping and the other connections
keep working; one connection whose reader never reads while another moves its data.

The floods are raw sockets in kpeer.py (bounded counts, paced); the counters asserted are
the stack's own (TCP's SYN cache and cookies, IP's reassembly drops).
"""

import hashlib
import json
import resource
import sys

import pytest
import trio

from iopkt_fs.tcpstream import TcpListener

from drvtest_util import needs_root
from ktest_util import KPEER, MB, expected_sha, kpeer, sh, tap_link
from test_tcp_kernel import RCVBUF, echo_server

pytestmark = [pytest.mark.kernel, needs_root]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def ping(ns: str, host: str, count: int = 5) -> tuple[int, str]:
    """Replies the kernel's ping got (of ``count``, 0.2 s apart)."""
    proc = await trio.run_process(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2",
                                   "-W", "2", host], capture_stdout=True, check=False)
    out = proc.stdout.decode()
    line = next((x for x in out.splitlines() if "received" in x), "")
    return int(line.split(",")[1].split()[0]) if line else 0, out


async def test_syn_flood_of_20000_while_100_clients_all_get_served(kstack, knetns, record_property):
    """20,000 SYNs from spoofed sources that never answer (paced over ~4 s) on a
    listener with a backlog of 16, while 100 kernel clients connect at once: every SYN
    reaches the listener, cookies answer the overflow, and all 100 clients get their echo."""
    ns, _, _ = await tap_link(kstack, knetns, 20)
    lst = await TcpListener.open(kstack.runtime, 5201, backlog=16)
    stats = kstack.stack.tcp.stats
    syns_before = stats.sc_added + stats.sc_sendcookie + stats.listendrop
    served: list = []
    out: dict = {}
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_server, lst, served)

            async def flooder():
                out["flood"] = await kpeer(ns, "flood", "10.77.20.2", 5201, 20000, 4.0)

            async with trio.open_nursery() as inner:
                inner.start_soon(flooder)
                await trio.sleep(1.0)
                out["clients"] = await kpeer(ns, "echos", "10.77.20.2", 5201, 100, timeout=80)
            nursery.cancel_scope.cancel()
    flood, clients = out["flood"], out["clients"]
    syns = stats.sc_added + stats.sc_sendcookie + stats.listendrop - syns_before
    line = (f"SYN flood: {flood['sent']} SYNs in {flood['seconds']:.1f} s "
            f"({flood['sent'] / flood['seconds']:.0f}/s); {clients['served']}/100 clients served; "
            f"cookies {stats.sc_sendcookie}, listen drops {stats.listendrop}")
    print(line)
    record_property("syn_flood", line)
    assert flood["sent"] == 20000
    assert syns >= 20000 + 100, syns
    assert stats.sc_sendcookie > 10000
    assert clients["served"] == 100, clients["errors"]
    assert served.count(b"hello") == 100
    await lst.aclose()


class Victim:
    """A kernel client connected to our listener, idle until told to send NBYTES."""

    def __init__(self, h, ns: str, host: str, port: int, nbytes: int, seed: int):
        self.h, self.ns, self.host, self.port = h, ns, host, port
        self.nbytes, self.seed = nbytes, seed

    async def start(self, nursery, lst):
        self.proc = await nursery.start(self._run)
        self.stream = await lst.accept()
        line = await self._readline()
        self.kport = json.loads(line)["port"]
        conn, = [c for c in self.h.stack.tcp.connections.values()
                 if c.remote_port == self.kport and c.local_port == self.port]
        self.conn = conn

    async def _run(self, task_status):
        proc = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", self.ns, sys.executable, KPEER, "idlesend", self.host,
             str(self.port), str(self.nbytes), str(self.seed)], stdin=-1, stdout=-1)
        try:
            task_status.started(proc)
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()

    async def _readline(self) -> str:
        buf = b""
        with trio.fail_after(20):
            while not buf.endswith(b"\n"):
                buf += await self.proc.stdout.receive_some(1)
        return buf.decode()

    async def send_and_check(self) -> None:
        """Tell the kernel to send; read everything; the SHA-256 both sides agree on."""
        await self.proc.stdin.send_all(b"go\n")
        digest, n = hashlib.sha256(), 0
        with trio.fail_after(60):
            while chunk := await self.stream.receive_some(1 << 20):
                digest.update(chunk)
                n += len(chunk)
            await self.stream.aclose()
            result = json.loads(await self._readline())
        assert n == self.nbytes
        assert digest.hexdigest() == result["sha256"] == expected_sha(self.nbytes, self.seed)


async def test_out_of_order_and_fragment_floods_stay_under_the_caps(kstack, knetns, record_property):
    """Into one idle connection, 30,000 raw 100-byte segments at random offsets with
    holes between them (the right bytes, so the stream can still be checked); then
    20,000 first fragments that never complete. Meanwhile and after: the holes tracked
    stay at max_ooo_ranges, the buffered data inside the receive buffer, reassembly
    under maxfragpackets and its byte cap, the packet pool under nmbclusters; ping
    answers, the victim still delivers its 1 MB byte-exact, and a second connection
    moves 4 MB byte-exact."""
    ns, _, _ = await tap_link(kstack, knetns, 21)
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_timestamps=0")
    stack = kstack.stack
    lst = await TcpListener.open(kstack.runtime, 5202, rcvbuf=RCVBUF)
    tcp, ip = stack.tcp.stats, stack.inet.stats
    reass = stack.inet.reass
    cfg = stack.tcp.config
    rss0 = rss_mb()
    peaks = {"ranges": 0, "ooo_bytes": 0, "frag_queues": 0, "frag_bytes": 0}
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            victim = Victim(kstack, ns, "10.77.21.2", 5202, MB, 31)
            await victim.start(nursery, lst)
            conn = victim.conn
            assert conn.rcv_buf.capacity >= 200_000

            async def sample():
                while True:
                    peaks["ranges"] = max(peaks["ranges"], len(conn.ooo))
                    peaks["ooo_bytes"] = max(peaks["ooo_bytes"], conn.ooo.buffered())
                    peaks["frag_queues"] = max(peaks["frag_queues"], len(reass))
                    peaks["frag_bytes"] = max(peaks["frag_bytes"], reass.nbytes)
                    await trio.sleep(0.005)
            nursery.start_soon(sample)

            ooo_before, oodrop_before = tcp.rcvoopack, tcp.rcvoodrop
            flood = await kpeer(ns, "oooflood", "10.77.21.2", 5202, victim.kport,
                                (conn.irs + 1) & 0xFFFFFFFF, conn.snd_nxt, 30000, MB, 31)
            assert flood["sent"] == 30000
            got, text = await ping(ns, "10.77.21.2")
            assert got == 5, text
            frag_before = ip.fragments, ip.rcvmemdrop
            async with trio.open_nursery() as during:
                during.start_soon(kpeer, ns, "fragflood", "10.77.21.2", 20000, 3.0)
                await trio.sleep(1.0)
                got_during, text = await ping(ns, "10.77.21.2", 5)
            assert got_during >= 1, text
            got, text = await ping(ns, "10.77.21.2")
            assert got == 5, text
            # Another connection, made and used after the floods.
            other = Victim(kstack, ns, "10.77.21.2", 5202, 4 * MB, 32)
            await other.start(nursery, lst)
            await other.send_and_check()
            await victim.send_and_check()
            nursery.cancel_scope.cancel()
    line = (f"floods: {tcp.rcvoopack - ooo_before} out-of-order segments queued, "
            f"{tcp.rcvoodrop - oodrop_before} refused (holes); "
            f"{ip.fragments - frag_before[0]} fragments, {ip.rcvmemdrop - frag_before[1]} evicted; "
            f"peaks {peaks}; packet pool peak {stack.mbufs.peak_bytes} of {stack.mbufs.limit} B; "
            f"RSS +{rss_mb() - rss0:.0f} MB")
    print(line)
    record_property("floods", line)
    # Out-of-order data was queued until the holes ran out, then refused and counted.
    assert tcp.rcvoopack - ooo_before > 30 and tcp.rcvoodrop - oodrop_before > 1000
    assert peaks["ranges"] <= cfg.max_ooo_ranges
    assert peaks["ooo_bytes"] <= RCVBUF
    # Every fragment was seen; the queues were evicted oldest first, within the caps.
    assert ip.fragments - frag_before[0] >= 20000
    assert ip.rcvmemdrop - frag_before[1] > 0
    assert peaks["frag_queues"] <= stack.sysctl.get("net.inet.ip.maxfragpackets")
    assert peaks["frag_bytes"] <= reass.max_bytes
    assert stack.mbufs.peak_bytes <= stack.mbufs.limit
    assert rss_mb() - rss0 < 200
    await lst.aclose()


async def test_a_reader_that_never_reads_does_not_stall_another_connection(kstack, knetns):
    """Two kernel senders to one listener: the first connection is never read (its
    receive buffer fills, its window closes, the kernel probes it); the second moves
    20 MB byte-exact meanwhile, and the first still delivers its data once read."""
    ns, _, _ = await tap_link(kstack, knetns, 22)
    lst = await TcpListener.open(kstack.runtime, 5203, rcvbuf=RCVBUF)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            slow = Victim(kstack, ns, "10.77.22.2", 5203, 2 * MB, 41)
            await slow.start(nursery, lst)
            await slow.proc.stdin.send_all(b"go\n")      # it sends; nobody reads
            with trio.fail_after(20):
                while slow.conn.rcv_buf.free:
                    await trio.sleep(0.02)
            fast = Victim(kstack, ns, "10.77.22.2", 5203, 20 * MB, 42)
            await fast.start(nursery, lst)
            await fast.send_and_check()
            assert slow.conn.rcv_buf.free == 0               # still full: never read
            # Now read the slow one: everything, in order.
            digest, n = hashlib.sha256(), 0
            while chunk := await slow.stream.receive_some(1 << 20):
                digest.update(chunk)
                n += len(chunk)
            await slow.stream.aclose()
            result = json.loads(await slow._readline())
            assert n == 2 * MB and digest.hexdigest() == result["sha256"]
            nursery.cancel_scope.cancel()
    await lst.aclose()
