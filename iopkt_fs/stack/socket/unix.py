"""Unix-domain sockets between processes through the stack (AF_LOCAL, /dev/socket/1).

Names live in one flat namespace per stack (``announce NAME``); nothing touches the wire.
Stream sockets are pairs of byte queues with flow control (a writer may queue at most
``sndbuf`` bytes the reader has not taken); datagram sockets keep message boundaries and
the sender's name. Sans-IO like the rest of the core: readiness goes through
``stack.notify_socket``.
"""

import errno
from collections import deque

from ..errors import StackError

DEFAULT_BUF = 65536
MAX_NAME = 104      # sun_path's size on QNX and BSD


class _Queue:
    """Bytes in order, taken in any amount without joining everything (memoryview slices)."""

    def __init__(self) -> None:
        self.chunks: deque = deque()
        self.size = 0

    def put(self, data: bytes) -> None:
        if data:
            self.chunks.append(memoryview(bytes(data)))
            self.size += len(data)

    def take(self, n: int) -> bytes:
        out = []
        while n > 0 and self.chunks:
            head = self.chunks[0]
            part = head[:n]
            out.append(part)
            n -= len(part)
            if len(part) == len(head):
                self.chunks.popleft()
            else:
                self.chunks[0] = head[len(part):]
        data = b"".join(out)
        self.size -= len(data)
        return data


class UnixSocket:
    def __init__(self, proto: "UnixProtocol", kind: str):
        if kind not in ("stream", "dgram"):
            raise StackError(errno.EPROTOTYPE, f"no unix socket type {kind!r}")
        self._proto = proto
        self.kind = kind
        self.name: str | None = None
        self.peer: "UnixSocket | None" = None
        self.peer_name: str | None = None
        self.listening = False
        self.backlog: deque = deque()
        self.rx = _Queue()
        self.dgrams: deque = deque()
        self.sndbuf = DEFAULT_BUF
        self.eof = False           # the peer closed or shut down its writing side
        self.shut_wr = False
        self.closed = False
        self.error = 0

    # -- readiness ----------------------------------------------------------------------

    @property
    def readable(self) -> bool:
        if self.listening:
            return bool(self.backlog)
        return bool(self.rx.size) or bool(self.dgrams) or self.eof or self.closed

    @property
    def writable(self) -> bool:
        if self.kind == "dgram":
            return not self.closed
        return self.peer is not None and (self.peer.rx.size < self.sndbuf or self.peer.closed)

    @property
    def connected(self) -> bool:
        return self.peer is not None

    def _notify(self) -> None:
        self._proto.stack.notify_socket(self)

    # -- calls ----------------------------------------------------------------------------

    def announce(self, name: str) -> None:
        """bind() + listen() for stream sockets, bind() for datagram ones."""
        self._proto.register(self, name)
        if self.kind == "stream":
            self.listening = True

    def connect(self, name: str) -> None:
        target = self._proto.names.get(name)
        if target is None:
            raise StackError(errno.ECONNREFUSED, f"nobody announced {name!r}")
        if self.kind != target.kind:
            raise StackError(errno.EPROTOTYPE, f"{name!r} is a {target.kind} socket")
        if self.kind == "dgram":
            self.peer_name = name
            return
        if not target.listening:
            raise StackError(errno.ECONNREFUSED, f"{name!r} is not listening")
        if len(target.backlog) >= self._proto.somaxconn():
            raise StackError(errno.ECONNREFUSED, f"{name!r}: listen queue full")
        server = UnixSocket(self._proto, "stream")
        server.peer, self.peer = self, server
        server.peer_name, self.peer_name = None, name
        target.backlog.append(server)
        target._notify()

    def accept(self) -> "UnixSocket":
        if not self.listening:
            raise StackError(errno.EINVAL, "not announced")
        if not self.backlog:
            raise StackError(errno.EWOULDBLOCK, "no connection waiting")
        return self.backlog.popleft()

    def send(self, data, to: str | None = None) -> int:
        if self.closed:
            raise StackError(errno.EBADF, "socket is closed")
        if self.kind == "dgram":
            name = to or self.peer_name
            if name is None:
                raise StackError(errno.EDESTADDRREQ, "no destination: connect first")
            target = self._proto.names.get(name)
            if target is None or target.closed:
                raise StackError(errno.ECONNREFUSED, f"nobody announced {name!r}")
            if sum(len(d) for d, _ in target.dgrams) + len(data) > target.sndbuf:
                raise StackError(errno.ENOBUFS, f"{name!r}: receive queue full")
            target.dgrams.append((bytes(data), self.name or ""))
            target._notify()
            return len(data)
        peer = self.peer
        if peer is None:
            raise StackError(errno.ENOTCONN, "not connected")
        if self.shut_wr:
            raise StackError(errno.EPIPE, "writing side shut down")
        if peer.closed:
            raise StackError(errno.EPIPE, "the peer closed")
        room = self.sndbuf - peer.rx.size
        if room <= 0:
            raise StackError(errno.EWOULDBLOCK, "peer's queue full")
        chunk = bytes(data[:room])
        peer.rx.put(chunk)
        peer._notify()
        return len(chunk)

    def recv(self, n: int) -> bytes:
        """Up to n bytes (stream) or one datagram; b"" is end of stream."""
        if self.kind == "dgram":
            if not self.dgrams:
                raise StackError(errno.EWOULDBLOCK, "no datagram")
            return self.dgrams.popleft()[0][:n]
        if self.rx.size:
            data = self.rx.take(n)
            if self.peer is not None:
                self.peer._notify()     # room for the writer again
            return data
        if self.eof or self.closed:
            return b""
        raise StackError(errno.EWOULDBLOCK, "no data")

    def recvfrom(self, n: int) -> tuple[bytes, str]:
        if self.kind != "dgram":
            return self.recv(n), self.peer_name or ""
        if not self.dgrams:
            raise StackError(errno.EWOULDBLOCK, "no datagram")
        data, sender = self.dgrams.popleft()
        return data[:n], sender

    def shutdown_write(self) -> None:
        self.shut_wr = True
        if self.peer is not None:
            self.peer.eof = True
            self.peer._notify()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._proto.unregister(self)
        if self.peer is not None:
            self.peer.eof = True
            self.peer._notify()
        for pending in self.backlog:
            pending.close()
        self.backlog.clear()


class UnixProtocol:
    def __init__(self, stack):
        self.stack = stack
        self.names: dict[str, UnixSocket] = {}

    def somaxconn(self) -> int:
        return int(self.stack.sysctl.get("kern.somaxconn"))

    def socket(self, kind: str = "stream") -> UnixSocket:
        return UnixSocket(self, kind)

    def register(self, sock: UnixSocket, name: str) -> None:
        if not name or len(name) > MAX_NAME or "\0" in name or any(c.isspace() for c in name):
            raise StackError(errno.EINVAL, f"bad unix socket name {name!r}")
        if sock.name is not None:
            raise StackError(errno.EINVAL, "already announced")
        if name in self.names:
            raise StackError(errno.EADDRINUSE, f"{name!r} is in use")
        self.names[name] = sock
        sock.name = name

    def unregister(self, sock: UnixSocket) -> None:
        if sock.name is not None and self.names.get(sock.name) is sock:
            del self.names[sock.name]
