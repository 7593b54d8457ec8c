"""trio streams over the stack's TCP: what Python callers and tests use instead of files.

    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        listener = await TcpListener.open(runtime, 8080)
        client = await open_tcp_stream(runtime, "127.0.0.1", 8080)
        server = await listener.accept()
        await client.send_all(b"hello")
        await server.receive_some()          # b"hello"

``TcpStream`` is a ``trio.abc.HalfCloseableStream`` over one ``TcpSocket`` (stack/tcp/
socket.py), whose calls never block: a call that would block raises ``StackError(EAGAIN)``
and the stream waits for the socket's readiness to change, then tries again.

Readiness. A task that must wait registers its socket with the runtime's one readiness
dispatcher (``runtime.readiness``, which drains the stack-wide queue every turn) and
parks until the dispatcher reschedules it when the core names the socket; the
file layer's connections are woken by the same dispatcher, so streams and a mounted
filesystem run side by side. No wait polls: closing a stream wakes its own waiters.

Every call that may have queued segments or changed a window settles the runtime: the
frames go to the drivers at once, and the loop is woken only when a deadline moved.

Errors. Calls on a stream we closed raise ``trio.ClosedResourceError``; a connection the
network broke (RST, timeout, EPIPE) raises ``trio.BrokenResourceError`` whose
``__cause__`` is an ``OSError`` with the errno; ``open_tcp_stream`` raises ``OSError``
(ECONNREFUSED, ETIMEDOUT, ENETUNREACH ...) as ``trio.open_tcp_stream`` does.
"""

from __future__ import annotations

import errno
import ipaddress
import operator
import os

import trio

from .runtime import Runtime
from .stack.errors import StackError
from .stack.tcp.socket import (IPPROTO_TCP, SHUT_WR, SO_KEEPALIVE, SO_RCVBUF, SO_REUSEADDR,
                               SO_SNDBUF, SOL_SOCKET, TCP_NODELAY, TcpSocket)

DEFAULT_RECEIVE = 65536       # receive_some() without max_bytes
MBUF_WAIT = 0.05             # s: retry period of a send the packet pool refused (m_wait)


def _ip(host: str | bytes | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    if isinstance(host, bytes) and len(host) in (4, 16):
        return host
    return ipaddress.ip_address(host).packed


def _text(ip: bytes) -> str:
    return str(ipaddress.ip_address(ip))


def _oserror(exc: StackError) -> OSError:
    return OSError(exc.errno, exc.message)


class _ConflictDetector:
    """Two tasks in one direction at once is a caller bug: trio.BusyResourceError."""

    __slots__ = ("msg", "held")

    def __init__(self, msg: str):
        self.msg = msg
        self.held = False

    def __enter__(self) -> None:
        if self.held:
            raise trio.BusyResourceError(self.msg)
        self.held = True

    def __exit__(self, *exc) -> None:
        self.held = False


class _Waiter:
    """Parks the tasks waiting on one socket until the runtime's readiness dispatcher
    names it; registered with the dispatcher only while some task waits. The tasks park
    with trio's low-level primitives, which is what trio.Event does inside, without a
    new Event made on every wake-up and every close."""

    __slots__ = ("readiness", "sock", "tasks", "users")

    def __init__(self, runtime: Runtime, sock: TcpSocket):
        self.readiness = runtime.readiness
        self.sock = sock
        self.tasks: list = []      # parked: at most one sender and one receiver
        self.users = 0

    def wake(self) -> None:
        tasks = self.tasks
        if tasks:
            self.tasks = []
            for task in tasks:
                trio.lowlevel.reschedule(task)

    async def park(self) -> None:
        """Wait once until the dispatcher names the socket (or a close wakes us): for a
        caller that has just tried its operation, found it would block, and tries again
        after - so no ready() test before or after, which would only repeat the try."""
        task = trio.lowlevel.current_task()
        self.tasks.append(task)
        self.users += 1
        if self.users == 1:
            self.readiness.watch(self.sock, self.wake)

        def abort(_raise_cancel):
            self.tasks.remove(task)     # still parked: wake() empties the list it resumes
            return trio.lowlevel.Abort.SUCCEEDED
        try:
            await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            self.users -= 1
            if not self.users:
                self.readiness.unwatch(self.sock, self.wake)

    async def wait(self, ready) -> None:
        """Return once ``ready()`` holds; a checkpoint either way."""
        if ready():
            await trio.lowlevel.checkpoint()
            return
        self.users += 1
        if self.users == 1:
            self.readiness.watch(self.sock, self.wake)
        try:
            while not ready():
                task = trio.lowlevel.current_task()
                self.tasks.append(task)

                def abort(_raise_cancel, task=task):
                    # Still parked: wake() takes a task off the list when it resumes it.
                    self.tasks.remove(task)
                    return trio.lowlevel.Abort.SUCCEEDED
                await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            self.users -= 1
            if not self.users:
                self.readiness.unwatch(self.sock, self.wake)


class TcpStream(trio.abc.HalfCloseableStream):
    """One established (or establishing) TCP connection of the stack."""

    def __init__(self, runtime: Runtime, sock: TcpSocket):
        self.runtime = runtime
        self.socket = sock
        self._waiter = _Waiter(runtime, sock)
        self._closed = False
        self._eof_sent = False
        self._send_conflict = _ConflictDetector(
            "another task is using this stream for send")
        # receive_some's own check (a flag, not a context manager: two calls less a read)
        self._receiving = False

    def __repr__(self) -> str:
        return f"<TcpStream {self.socket!r}>"

    # -- addresses and options ------------------------------------------------------------

    @property
    def local_address(self) -> tuple[str, int] | None:
        ep = self.socket.local_address
        return None if ep is None else (_text(ep[0]), ep[1])

    @property
    def remote_address(self) -> tuple[str, int] | None:
        ep = self.socket.remote_address
        return None if ep is None else (_text(ep[0]), ep[1])

    def setsockopt(self, level: int, name: int, value: int) -> None:
        self.socket.setsockopt(level, name, value, self.runtime.now())
        self.runtime.settle()

    def getsockopt(self, level: int, name: int) -> int:
        return self.socket.getsockopt(level, name)

    def status(self):
        """The connection's ``TcpStatus`` (state, queues, srtt, cwnd ...), None if gone."""
        return self.socket.status()

    # -- sending --------------------------------------------------------------------------

    def _writable(self) -> bool:
        return self._closed or self.socket.writable

    async def send_all(self, data) -> None:
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("stream was closed")
            if self._eof_sent:
                raise trio.ClosedResourceError("send_eof() was called")
            await trio.lowlevel.checkpoint_if_cancelled()
            view = memoryview(data)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            sock, runtime, sent, total = self.socket, self.runtime, 0, len(view)
            while sent < total:
                # Flow control as BSD sosend() blocks: wait while less than the low-water
                # mark is free (or the handshake is not done); the peer's ACKs free room
                # and the layer reports it. An error shows as writable and raises below.
                if not sock.writable:
                    runtime.settle()
                    await self._waiter.wait(self._writable)
                    if self._closed:
                        raise trio.ClosedResourceError("stream was closed")
                try:
                    sent += sock.send(view[sent:], runtime.now())
                except StackError as exc:
                    if exc.errno != errno.EAGAIN:
                        raise trio.BrokenResourceError(exc.message) from _oserror(exc)
                    if sock.writable:
                        # Room in the ring, but the packet pool refused it buffers
                        # (mbufs exhausted): sleep as BSD's sosend does in m_wait and
                        # try again; nothing wakes us when a buffer is freed elsewhere.
                        await trio.sleep(MBUF_WAIT)
                    else:
                        await self._waiter.wait(self._writable)   # raced: wait again
                    continue
                runtime.settle()
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("stream was closed")
            await self._waiter.wait(self._writable)
            if self._closed:
                raise trio.ClosedResourceError("stream was closed")

    async def send_eof(self) -> None:
        """Shut down the sending half: a FIN follows the queued data (RFC 9293 3.10.4)."""
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("stream was closed")
            await trio.lowlevel.checkpoint()
            if self._eof_sent:
                return
            self._eof_sent = True
            try:
                self.socket.shutdown(SHUT_WR, self.runtime.now())
            except StackError:
                pass   # ENOTCONN: the connection is already gone; nothing left to end
            self.runtime.settle()

    # -- receiving ------------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE
        else:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is using this stream for receive")
        self._receiving = True
        try:
            if self._closed:
                raise trio.ClosedResourceError("stream was closed")
            await trio.lowlevel.checkpoint_if_cancelled()
            sock = self.socket
            runtime = self.runtime
            waited = False
            while True:
                conn = sock.conn
                avail = conn.rcv_buf.used if conn is not None else 0
                # Nothing buffered: a one-byte probe tells EOF or EAGAIN apart.
                buf = bytearray(min(max_bytes, avail) or 1)
                try:
                    n = sock.try_recv_into(buf, runtime.now())
                except StackError as exc:
                    raise trio.BrokenResourceError(exc.message) from _oserror(exc)
                if n is None:             # EAGAIN
                    await self._waiter.park()
                    waited = True
                    if self._closed:
                        raise trio.ClosedResourceError("stream was closed") from None
                    continue
                # Reading may have opened the window: a window update may be due (end of
                # stream read nothing, so it changed nothing).
                if n:
                    runtime.settle()
                if n < len(buf):
                    del buf[n:]
                if not waited:
                    # A call that did not block still yields once (trio's checkpoint
                    # rule). One that waited has already been a schedule and cancel
                    # point, and returns as trio's own socket streams do
                    # (_nonblocking_helper): no second trip through the run queue.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return buf
        finally:
            self._receiving = False

    # -- closing --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the socket: an orderly FIN, or a RST when unread data is left
        (RFC 1122 4.2.2.13). The connection finishes sending in the background."""
        if not self._closed:
            self._closed = True
            self.socket.close(self.runtime.now())
            self.runtime.settle()
            if self._waiter.tasks:      # (wake()'s own test: most closes have no waiter)
                self._waiter.wake()
        await trio.lowlevel.checkpoint()

    async def abort(self) -> None:
        """Close with a RST at once (SO_LINGER 0)."""
        if not self._closed:
            self._closed = True
            self.socket.abort(self.runtime.now())
            self.runtime.settle()
            if self._waiter.tasks:      # (wake()'s own test: most closes have no waiter)
                self._waiter.wake()
        await trio.lowlevel.checkpoint()


def _set_options(sock: TcpSocket, *, sndbuf=None, rcvbuf=None, nodelay=False,
                 keepalive=False, reuseaddr=False) -> None:
    if reuseaddr:
        sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    if sndbuf is not None:
        sock.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
    if rcvbuf is not None:
        sock.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
    if nodelay:
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    if keepalive:
        sock.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)


async def open_tcp_stream(runtime: Runtime, host, port: int, *, local: tuple | None = None,
                          sndbuf: int | None = None, rcvbuf: int | None = None,
                          nodelay: bool = False, keepalive: bool = False) -> TcpStream:
    """Connect to ``host:port`` (an address, not a name) through the stack.

    ``local`` is an optional ``(addr, port)`` to bind first. Raises ``OSError`` when the
    connection fails (ECONNREFUSED, ETIMEDOUT after the SYN retries, ENETUNREACH ...);
    a cancelled connect aborts the half-open connection."""
    sock = runtime.stack.tcp.socket()
    waiter = _Waiter(runtime, sock)
    try:
        _set_options(sock, sndbuf=sndbuf, rcvbuf=rcvbuf, nodelay=nodelay,
                     keepalive=keepalive)
        if local is not None:
            sock.bind(_ip(local[0]), local[1])
        sock.connect(_ip(host), port, runtime.now())
    except StackError as exc:
        sock.close(runtime.now())
        raise _oserror(exc) from None
    runtime.settle()
    try:
        # Completion shows as writable; failure as an error (RFC 9293 3.10.7.3).
        await waiter.wait(lambda: sock.writable or bool(sock.error)
                            or sock.state != "SYN-SENT")
    except BaseException:
        sock.abort(runtime.now())
        runtime.settle()
        raise
    err = sock.take_error()
    if err or sock.state not in ("ESTABLISHED", "CLOSE-WAIT"):
        sock.close(runtime.now())
        runtime.settle()
        err = err or errno.ECONNREFUSED
        raise OSError(err, os.strerror(err))
    return TcpStream(runtime, sock)


class TcpListener(trio.abc.Listener[TcpStream]):
    """A listening socket; ``accept()`` returns a ``TcpStream`` per connection."""

    def __init__(self, runtime: Runtime, sock: TcpSocket):
        self.runtime = runtime
        self.socket = sock
        self._waiter = _Waiter(runtime, sock)
        self._closed = False
        self._accepting = False       # (as TcpStream._receiving)

    @classmethod
    async def open(cls, runtime: Runtime, port: int = 0, host="0.0.0.0", *,
                   backlog: int = 128, reuseaddr: bool = True, sndbuf: int | None = None,
                   rcvbuf: int | None = None, nodelay: bool = False,
                   keepalive: bool = False) -> "TcpListener":
        """Listen on ``host:port`` (port 0: an ephemeral port, see ``.port``). Options
        given here pass to every accepted connection (BSD sonewconn)."""
        sock = runtime.stack.tcp.socket()
        try:
            _set_options(sock, sndbuf=sndbuf, rcvbuf=rcvbuf, nodelay=nodelay,
                         keepalive=keepalive, reuseaddr=reuseaddr)
            sock.bind(_ip(host), port)
            sock.listen(backlog)
        except StackError as exc:
            sock.close(runtime.now())
            raise _oserror(exc) from None
        await trio.lowlevel.checkpoint()
        return cls(runtime, sock)

    @property
    def port(self) -> int:
        return self.socket.local[1]

    async def accept(self) -> TcpStream:
        if self._accepting:
            raise trio.BusyResourceError("another task is accepting")
        self._accepting = True
        try:
            if self._closed:
                raise trio.ClosedResourceError("listener was closed")
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            while True:
                try:
                    child = self.socket.try_accept()
                except StackError as exc:
                    raise _oserror(exc) from None
                if child is None:         # EAGAIN
                    await self._waiter.park()
                    waited = True
                    if self._closed:
                        raise trio.ClosedResourceError("listener was closed") from None
                    continue
                if not waited:      # as in receive_some: a wait was the checkpoint
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return TcpStream(self.runtime, child)
        finally:
            self._accepting = False

    async def aclose(self) -> None:
        """Stop listening; connections not yet accepted are reset (BSD soclose)."""
        if not self._closed:
            self._closed = True
            self.socket.close(self.runtime.now())
            self.runtime.settle()
            if self._waiter.tasks:      # (wake()'s own test: most closes have no waiter)
                self._waiter.wake()
        await trio.lowlevel.checkpoint()
