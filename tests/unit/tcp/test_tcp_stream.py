"""The trio stream wrapper (iopkt_fs/tcpstream.py) over lo0, in process: trio's own
conformance checks for half-closeable streams, plus connect errors and flow control."""

import errno
import hashlib
import random

import pytest
import trio
import trio.testing

from iopkt_fs.runtime import Runtime
from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.stack import Stack
from iopkt_fs.tcpstream import TcpListener, TcpStream, open_tcp_stream


@pytest.fixture
async def runtime(nursery):
    rt = Runtime(Stack(StackConfig(seed=21)))
    await nursery.start(rt.run)
    yield rt
    rt.shutdown()


async def _pair(runtime, listener, **kw):
    async with trio.open_nursery() as nursery:
        got = {}

        async def accept():
            got["server"] = await listener.accept()
        nursery.start_soon(accept)
        got["client"] = await open_tcp_stream(runtime, "127.0.0.1", listener.port, **kw)
    return got["client"], got["server"]


async def _clog(stream: TcpStream) -> None:
    """Fill the connection until send_all would block: the peer's receive buffer and our
    send buffer are full, and it stays so (the runtime's stack has no delayed ACKs, so
    nothing arrives later to open either)."""
    sock = stream.socket
    for _ in range(100):
        while sock.writable:
            await stream.send_all(b"x" * 512)
        await trio.sleep(0.02)
        if not sock.writable:
            return
    raise AssertionError("the connection never clogged")


async def test_check_half_closeable_stream(runtime):
    # Immediate ACKs: a clogged pair settles in milliseconds, not after 200 ms timers.
    runtime.stack.sysctl.set("qnx.net.inet.tcp.qnx_delack", 0)
    listener = await TcpListener.open(runtime, 0, "127.0.0.1")
    small = await TcpListener.open(runtime, 0, "127.0.0.1", sndbuf=4096, rcvbuf=4096)

    async def maker():
        return await _pair(runtime, listener)

    async def clogged():
        a, b = await _pair(runtime, small, sndbuf=4096, rcvbuf=4096)
        await _clog(a)
        await _clog(b)
        return a, b

    with trio.fail_after(60):
        await trio.testing.check_half_closeable_stream(maker, clogged)
    await listener.aclose()
    await small.aclose()


async def test_megabytes_both_ways_and_addresses(runtime):
    listener = await TcpListener.open(runtime, 7070, "127.0.0.1")
    client, server = await _pair(runtime, listener)
    assert client.remote_address == ("127.0.0.1", 7070) == server.local_address
    assert server.remote_address == client.local_address
    data = random.Random(5).randbytes(3_000_000)

    async def pump(src, dst, payload, out):
        async with trio.open_nursery() as nursery:
            async def send():
                await src.send_all(payload)
                await src.send_eof()
            nursery.start_soon(send)
            got = bytearray()
            while chunk := await dst.receive_some():
                got += chunk
            out.append(hashlib.sha256(got).hexdigest())

    out: list[str] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, server, data, out)
            nursery.start_soon(pump, server, client, data[::-1], out)
    assert sorted(out) == sorted([hashlib.sha256(data).hexdigest(),
                                  hashlib.sha256(data[::-1]).hexdigest()])
    assert client.status().state in ("TIME-WAIT", "CLOSED", "FIN-WAIT-2", "CLOSING",
                                     "LAST-ACK")
    await client.aclose()
    await server.aclose()
    await listener.aclose()


async def test_connect_refused_and_listener_close(runtime):
    with pytest.raises(OSError) as info:
        with trio.fail_after(5):
            await open_tcp_stream(runtime, "127.0.0.1", 9)
    assert info.value.errno == errno.ECONNREFUSED
    listener = await TcpListener.open(runtime, 0, "127.0.0.1")

    async def accept_then_close(task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        with pytest.raises(trio.ClosedResourceError):
            await listener.accept()

    async with trio.open_nursery() as nursery:
        await nursery.start(accept_then_close)
        await trio.testing.wait_all_tasks_blocked()
        await listener.aclose()
    with pytest.raises(OSError) as info:
        await open_tcp_stream(runtime, "127.0.0.1", listener.port)
    assert info.value.errno == errno.ECONNREFUSED


async def test_peer_reset_is_broken_resource(runtime):
    listener = await TcpListener.open(runtime, 0, "127.0.0.1")
    client, server = await _pair(runtime, listener)
    await server.abort()
    with trio.fail_after(5):
        with pytest.raises(trio.BrokenResourceError) as info:
            await client.receive_some()
    assert info.value.__cause__.errno == errno.ECONNRESET
    await client.aclose()
    await listener.aclose()


async def test_one_dispatcher_wakes_streams_and_other_watchers(runtime):
    """Streams and the file layer's connections are woken by one dispatcher
    (runtime.readiness) from the stack's one queue: neither takes the other's wakeups."""
    plain = runtime.stack.tcp.socket()          # what a connection directory would hold
    plain.bind(b"\x7f\0\0\1", 0)
    plain.listen(4)
    woken = trio.Event()
    runtime.readiness.watch(plain, lambda: woken.set() if plain.readable else None)
    listener = await TcpListener.open(runtime, 0, "127.0.0.1")
    with trio.fail_after(5):
        client, server = await _pair(runtime, listener)
        caller = await open_tcp_stream(runtime, "127.0.0.1", plain.local[1])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, b"z" * 200_000)
            got = 0
            while got < 200_000:
                got += len(await server.receive_some())
        await woken.wait()                      # the call arrived: the watcher was told
    assert plain.accept() is not None
    runtime.readiness.unwatch(plain)
    plain.close(0)
    for s in (client, server, listener, caller):
        await s.aclose()
