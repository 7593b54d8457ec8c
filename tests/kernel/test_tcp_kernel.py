"""The stack's TCP against the Linux kernel over TAP, in namespaces the tests create.

Byte-exact transfers (SHA-256 on both ends) in both directions over a clean link, under
kernel-side loss (nftables: this kernel has no netem) and under reordering, duplication
and corruption from our seeded fault injector (drivers/fault.py); the options Linux
negotiated with us (``ss -tin``); a SYN flood that real clients still get through (SYN
cookies, RFC 4987); keepalive probes the kernel answers (RFC 1122 4.2.3.6).

Sizes: 100 MB each way, clean and impaired, except 20 MB at 5 % loss (see IMPAIRED); the
folder takes about two minutes on a 2-vCPU machine.
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

pytestmark = [pytest.mark.kernel, needs_root]

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


@pytest.mark.parametrize("offloads", ["on", "off"])
@pytest.mark.parametrize("direction", ["kernel->stack", "stack->kernel"])
async def test_100mb_clean(kstack, knetns, direction, offloads, record_property):
    ns, _, driver = await tap_link(kstack, knetns, 10, "" if offloads == "on" else "offload=0")
    iface = driver.interfaces[0]
    assert iface.vnet_hdr == 10 and bool(iface.enabled) == (offloads == "on")
    tcp = kstack.stack.tcp.stats
    gso_before, gro_before = tcp.sndgso, tcp.rcvgso
    run = stack_server if direction == "kernel->stack" else stack_client
    kernel, ours, n, elapsed, status = await run(kstack, 5001, ns, 100 * MB, 7, "10.77.10.2", "10.77.10.1")
    assert n == 100 * MB
    assert kernel["sha256"] == ours
    if direction == "kernel->stack":
        # On: the kernel's super-frames arrive whole. Off: plain frames, joined by GRO
        # into segments larger than one MSS just the same.
        assert tcp.rcvgso > gro_before
    else:
        assert tcp.sndgso > gso_before       # super-segments, cut by the kernel or by us
    report(record_property, f"{direction}, offloads {offloads}", n, elapsed, status)


@pytest.mark.parametrize("direction", ["kernel->stack", "stack->kernel"])
async def test_capabilities_flipped_mid_transfer_lose_nothing(kstack, knetns, direction):
    """ifconfig ltap0 -tso4 -tcp4csum ... and back, every 5 ms while 40 MB cross (50 ms
    let a fast run finish between two flips): the
    kernel and the stack change framing under a live connection, byte-exact."""
    ns, _, driver = await tap_link(kstack, knetns, 11)
    iface = driver.interfaces[0]
    caps = iface.capabilities
    assert caps
    flips = 0
    done = trio.Event()

    async def flipper():
        nonlocal flips
        while not done.is_set() and flips < 400:
            kstack.stack.set_capabilities(iface, disable=caps) if flips % 2 == 0 else \
                kstack.stack.set_capabilities(iface, enable=caps)
            flips += 1
            await trio.sleep(0.005)

    run = stack_server if direction == "kernel->stack" else stack_client
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flipper)
        kernel, ours, n, _elapsed, _status = await run(kstack, 5002, ns, 40 * MB, 8,
                                                       "10.77.11.2", "10.77.11.1")
        done.set()
    assert kernel["sha256"] == ours and n == 40 * MB
    assert flips >= 4


# offload=0: the faults hit wire-sized frames, not 64 KB super-segments (one of which
# lost would be 45 segments lost at once).
COMBINED = "offload=0,fault_seed=6,fault_drop=1,fault_reorder=2,fault_dup=1,fault_corrupt=0.1"
COMBINED_MB = int(os.environ.get("IOPKT_COMBINED_MB", "20"))

# name -> (nftables loss %, fault-injector options, bytes). Reordering, duplication,
# corruption and 1 % loss: 100 MB each way, as on the clean link. At 5 % loss (of data
# and of ACKs) the window stays a few segments; a tail whose probe or last ACKs are lost
# still costs a 1 s RTO (RFC 6298's minimum; Linux's is 200 ms), so that case moves 20 MB
# (~10-15 s stack->kernel, well under a second the other way).
IMPAIRED = {
    "loss1": (1, "", 100 * MB),
    "loss5": (5, "", 20 * MB),
    "reorder25": (0, "fault_seed=3,fault_reorder=25", 100 * MB),
    "dup1": (0, "fault_seed=4,fault_dup=1", 100 * MB),
    "corrupt0.1": (0, "fault_seed=5,fault_corrupt=0.1", 100 * MB),
    # All at once, both directions (issue 12): 1 % loss, 2 % of frames held back 1-5 ms
    # (real reordering), 1 % duplicated, 0.1 % corrupted. CI moves COMBINED_MB; the
    # 100 MB figures for the note (next to Linux <-> Linux through the same faults) come
    # from scripts/impaired.py.
    "combined": (0, COMBINED, COMBINED_MB * MB),
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
    ofo_before = kernel_counter(ns, "TCPOFOQueue")
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
                                            "rcvduppack", "rcvbadsum", "sndacks", "rcvdupack",
                                            "rack_lost", "tlp_probes", "dsack_rcvd",
                                            "dsack_undo", "spurious_rto")},
          kernel["tcp"])
    if loss == 5 and direction == "stack->kernel":
        # RACK-TLP finds the losses by time (RFC 8985): the timer is left only tails whose
        # probe, or the ACKs for it, were lost as well (5-10 a run here, 27-50 before).
        assert stats.rack_lost > 100
        assert stats.rexmttimeo <= 20, stats.rexmttimeo
    if "reorder" in faults:
        # Frames really were passed by later ones (held back 1-5 ms), and the receiver
        # queued segments out of order: ours, or the kernel's TCPOFOQueue.
        least = 100 if "reorder=25" in faults else 10
        assert driver.fault.stats.overtaken > least, driver.fault.stats
        ofo = (stats.rcvoopack if direction == "kernel->stack"
               else kernel_counter(ns, "TCPOFOQueue") - ofo_before)
        assert ofo > least, ofo
    if "fault_drop" in faults:
        assert driver.fault.stats.dropped > 0
        assert (stats.sndrexmitpack if direction == "stack->kernel"
                else kernel["tcp"]["retrans"]) > 0
    if "corrupt" in faults:
        assert driver.fault.stats.corrupted > 0
    if "dup" in faults:
        assert driver.fault.stats.duplicated > 0
    report(record_property, f"{case} {direction}", n, elapsed, status)


def kernel_counter(ns: str, name: str) -> int:
    """A TcpExt counter of the namespace's kernel (/proc/net/netstat is per namespace)."""
    lines = sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").stdout.splitlines()
    for keys, values in zip(lines[::2], lines[1::2]):
        if keys.startswith("TcpExt:"):
            return int(dict(zip(keys.split(), values.split()))[name])
    raise AssertionError("no TcpExt line")


async def echo_server(lst: TcpListener, served: list) -> None:
    """Accept forever; each connection: read 5 bytes, send them back, close."""
    async def one(stream):
        got = b""
        with trio.move_on_after(10):
            while len(got) < 5:
                chunk = await stream.receive_some(5 - len(got))
                if not chunk:
                    break
                got += chunk
            await stream.send_all(got)
        served.append(got)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        while True:
            nursery.start_soon(one, await lst.accept())


def ss_line(ns: str, port: int) -> str:
    """``ss -tin`` in the namespace: the established connection to ``port`` and its
    details (ss prints them on the next, indented, line)."""
    lines = sh("ip", "netns", "exec", ns, "ss", "-tin").stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ESTAB") and f":{port} " in f"{line} " and i + 1 < len(lines):
            return f"{line.strip()} {lines[i + 1].strip()}"
    return "\n".join(lines)


async def test_ss_shows_options_and_keepalive_probes_answered(kstack, knetns):
    """The kernel's view of the connection (ss -tin, TCP_INFO) shows SACK, window scaling
    and timestamps negotiated with us; with keepalive at 1 s idle / 1 s interval the kernel answers our probes
    (its segs_in grows while its application sends nothing) and the connection lives."""
    sysctl = kstack.stack.sysctl
    sysctl.set("net.inet.tcp.keepidle", 1)
    sysctl.set("net.inet.tcp.keepintvl", 1)
    ns, _, _ = await tap_link(kstack, knetns, 12)
    lst = await TcpListener.open(kstack.runtime, 5003, keepalive=True)
    out = {}

    async def client():
        out["idle"] = await kpeer(ns, "idle", "10.77.12.2", 5003, 4.5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        stream = await lst.accept()
        await trio.sleep(0.3)
        first = ss_line(ns, 5003)
        await trio.sleep(3.5)
        later = ss_line(ns, 5003)
    # ss -tin shows the window scales; this machine's ss (iproute2 6.1) prints no
    # "ts"/"sack" even between two kernel sockets, so those come from TCP_INFO's
    # tcpi_options, the field ss reads (TIMESTAMPS 1 | SACK 2 | WSCALE 4).
    assert "wscale:" in first, first
    assert out["idle"]["tcp"]["options"] == 7, out["idle"]
    st = stream.status()
    assert st.sack and st.timestamps and st.wscale is not None
    # The kernel's wscale:SND,RCV is ours mirrored.
    ws = first.split("wscale:")[1].split()[0]
    assert ws == f"{st.wscale[1]},{st.wscale[0]}", (ws, st.wscale)

    def segs_in(line):
        return int(line.split("segs_in:")[1].split()[0])
    probes = kstack.stack.tcp.stats.keepprobe
    assert probes >= 2
    assert segs_in(later) - segs_in(first) >= 2, (first, later)
    assert out["idle"]["alive"]
    await stream.aclose()
    await lst.aclose()


async def test_syn_flood_real_client_still_connects(kstack, knetns):
    """A bounded SYN flood (3,000 spoofed SYNs, paced over about 1.5 s) on a listener with
    a backlog of 8: all 3,000 reach the listener, the queue fills, SYN cookies answer
    (RFC 4987 3.6), and every kernel client connecting during the flood is served."""
    ns, _, _ = await tap_link(kstack, knetns, 13)
    lst = await TcpListener.open(kstack.runtime, 5004, backlog=8)
    stats = kstack.stack.tcp.stats
    syns_before = stats.sc_added + stats.sc_sendcookie + stats.listendrop
    served: list = []
    results: list = []
    clients = 5
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_server, lst, served)
            flood = {}

            async def flooder():
                # Paced over ~1.5 s, stopped at 6 s: the count, not the clock, ends it.
                flood.update(await kpeer(ns, "flood", "10.77.13.2", 5004, 3000, 1.5))

            async with trio.open_nursery() as inner:
                inner.start_soon(flooder)
                await trio.sleep(0.5)
                for _ in range(clients):
                    results.append(await kpeer(ns, "echo", "10.77.13.2", 5004, timeout=30))
                    await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    assert flood["sent"] == 3000
    # Every SYN that reached the listener went one of three ways: a SYN-cache entry, a
    # cookie, or a drop because even the accept queue was full. The flood's and the
    # clients' SYNs all arrived (the client's own retransmitted SYNs may add a few).
    syns = stats.sc_added + stats.sc_sendcookie + stats.listendrop - syns_before
    assert syns >= 3000 + clients, syns
    assert stats.sc_sendcookie > 0
    assert [r["echo"] for r in results] == ["hello"] * clients
    assert served.count(b"hello") == clients
    await lst.aclose()
