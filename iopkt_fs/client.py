"""A Python client for a stack's socket files: Plan 9's dial/announce/listen/accept.

Everything goes through the files under ``$SOCK/dev/socket`` (or the prefix given), so it
works against any instance, from any process, without linking the stack::

    from iopkt_fs import client

    with client.dial("tcp!10.0.0.2!80") as c:
        c.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
        page = c.read_all()

    with client.announce("tcp!*!8080") as server:
        conn = server.accept()               # blocks until a call arrives

    stream = await client.open_stream("tcp!10.0.0.2!80")   # a trio.abc.HalfCloseableStream

Addresses are ``PROTO!HOST!PORT`` (``*`` for any host) or ``unix!NAME``. Errors are
``OSError`` with the errno the stack answered; ``Connection.err`` has the stack's text.
"""

import errno
import os

import trio

from . import paths


def _split(address: str) -> tuple[str, str]:
    proto, sep, rest = address.partition("!")
    if not sep or proto not in ("tcp", "udp", "raw", "unix") or not rest:
        raise ValueError(f"bad address {address!r}: want PROTO!HOST!PORT or unix!NAME")
    return proto, rest


def _sockdir(prefix: str | None) -> str:
    return paths.socket_dir(prefix)


def _read_small(path: str) -> str:
    with open(path, "rb", buffering=0) as f:
        return f.read(4096).decode().strip()


class Connection:
    """One connection directory, with its ctl and data files open."""

    def __init__(self, directory: str, ctl_fd: int, *, nonblocking: bool = False):
        self.dir = directory
        self.number = int(os.path.basename(directory))
        self._ctl = ctl_fd
        flags = os.O_RDWR | (os.O_NONBLOCK if nonblocking else 0)
        self._data = os.open(os.path.join(directory, "data"), flags)
        self.closed = False

    # -- the files ----------------------------------------------------------------------

    def ctl(self, line: str) -> None:
        try:
            os.write(self._ctl, (line + "\n").encode())
        except OSError as exc:
            raise OSError(exc.errno, f"{line.split()[0]}: {self.err or os.strerror(exc.errno)}") from None

    @property
    def err(self) -> str:
        try:
            return _read_small(os.path.join(self.dir, "err"))
        except OSError:
            return ""

    @property
    def local(self) -> str:
        return _read_small(os.path.join(self.dir, "local"))

    @property
    def remote(self) -> str:
        return _read_small(os.path.join(self.dir, "remote"))

    @property
    def status(self) -> str:
        return _read_small(os.path.join(self.dir, "status"))

    def fileno(self) -> int:
        return self._data

    # -- data ---------------------------------------------------------------------------

    def read(self, n: int = 65536) -> bytes:
        """Up to n bytes (one datagram for udp/raw); b"" at end of stream."""
        return os.read(self._data, n)

    def read_all(self) -> bytes:
        chunks = []
        while True:
            data = self.read(1 << 20)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.write(self._data, view[done:done + (1 << 20)])
        return done

    def shutdown(self) -> None:
        """No more writes from us (TCP: our FIN); reading goes on."""
        self.ctl("shutdown wr")

    def close(self) -> None:
        """An orderly close (TCP FIN); the directory goes once the protocol is done."""
        if self.closed:
            return
        self.closed = True
        try:
            os.write(self._ctl, b"close\n")
        except OSError:
            pass
        os.close(self._data)
        os.close(self._ctl)

    def hangup(self) -> None:
        """An abortive close (TCP RST), Plan 9's hangup."""
        if not self.closed:
            try:
                os.write(self._ctl, b"hangup\n")
            except OSError:
                pass
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Listener:
    """An announced connection: ``accept()`` returns each call as a Connection."""

    def __init__(self, directory: str, ctl_fd: int):
        self.dir = directory
        self._ctl = ctl_fd

    def accept(self, *, nonblocking: bool = False) -> Connection:
        # Plan 9: the open listen file is the new connection's ctl (no second open).
        fd = os.open(os.path.join(self.dir, "listen"), os.O_RDWR)   # blocks until a call
        try:
            n = os.read(fd, 64).decode().strip()
            return Connection(os.path.join(os.path.dirname(self.dir), n), fd,
                              nonblocking=nonblocking)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        try:
            os.write(self._ctl, b"close\n")
        except OSError:
            pass
        os.close(self._ctl)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _clone(proto: str, prefix: str | None) -> tuple[str, int]:
    base = os.path.join(_sockdir(prefix), proto)
    if not os.path.isdir(base):
        raise OSError(errno.EAFNOSUPPORT, f"this stack serves no {proto} ({base})")
    # Plan 9: the open clone file is the new connection's ctl (no second open).
    fd = os.open(os.path.join(base, "clone"), os.O_RDWR)
    try:
        n = os.read(fd, 64).decode().strip()
    except BaseException:
        os.close(fd)
        raise
    return os.path.join(base, n), fd


def dial(address: str, *, local_port: int | None = None, prefix: str | None = None,
         nonblocking: bool = False) -> Connection:
    """Connect: ``tcp!10.0.0.2!80``, ``udp!10.0.0.2!53``, ``unix!name``."""
    proto, rest = _split(address)
    directory, ctl = _clone(proto, prefix)
    line = f"connect {rest}" + (f" {local_port}" if local_port else "")
    try:
        os.write(ctl, (line + "\n").encode())
    except OSError as exc:
        text = ""
        try:
            text = _read_small(os.path.join(directory, "err"))
        except OSError:
            pass
        os.close(ctl)
        raise OSError(exc.errno, f"dial {address}: {text or os.strerror(exc.errno)}") from None
    return Connection(directory, ctl, nonblocking=nonblocking)


def announce(address: str, *, prefix: str | None = None) -> Listener:
    """Listen: ``tcp!*!8080``, ``tcp!10.0.0.2!8080``, ``unix!name``."""
    proto, rest = _split(address)
    directory, ctl = _clone(proto, prefix)
    try:
        os.write(ctl, f"announce {rest}\n".encode())
    except OSError as exc:
        os.close(ctl)
        raise OSError(exc.errno, f"announce {address}: {os.strerror(exc.errno)}") from None
    return Listener(directory, ctl)


class FileStream(trio.abc.HalfCloseableStream):
    """A Connection as a trio stream: non-blocking data file, waits through poll()."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._send_guard = trio.lowlevel.ParkingLot()

    async def send_all(self, data) -> None:
        if self.conn.closed:
            raise trio.ClosedResourceError("the connection is closed")
        view = memoryview(bytes(data))
        while view:
            try:
                n = os.write(self.conn.fileno(), view[:1 << 20])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.conn.fileno())
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"send: {os.strerror(exc.errno)}") from exc
            view = view[n:]
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.conn.fileno())

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.conn.closed:
            raise trio.ClosedResourceError("the connection is closed")
        while True:
            try:
                data = os.read(self.conn.fileno(), max_bytes or 65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.conn.fileno())
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"receive: {os.strerror(exc.errno)}") from exc
            await trio.lowlevel.checkpoint()
            return data

    async def send_eof(self) -> None:
        await trio.to_thread.run_sync(self.conn.shutdown)

    async def aclose(self) -> None:
        if not self.conn.closed:
            trio.lowlevel.notify_closing(self.conn.fileno())
            self.conn.close()
        await trio.lowlevel.checkpoint()


async def open_stream(address: str, *, prefix: str | None = None) -> FileStream:
    """``dial`` for trio code: the connect (which blocks in the ctl write) runs in a thread."""
    conn = await trio.to_thread.run_sync(lambda: dial(address, prefix=prefix, nonblocking=True))
    return FileStream(conn)


async def accept_stream(listener: Listener) -> FileStream:
    conn = await trio.to_thread.run_sync(lambda: listener.accept(nonblocking=True))
    return FileStream(conn)
