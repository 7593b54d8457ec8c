"""The socket calls on TCP (BSD ``tcp_usrreq.c``): what a trio wrapper or the file layer
calls. Everything is synchronous and non-blocking: a call that would block raises
``StackError(EAGAIN)`` and the owner waits until the layer's ``notify`` names the socket
(the stack's readiness queue) with ``readable``/``writable`` set.

Errors follow POSIX: EADDRINUSE, EISCONN, ENOTCONN, EPIPE, EINVAL, ECONNREFUSED,
ECONNRESET, ETIMEDOUT (a failed connection reports its error once through
``error``/``SO_ERROR`` and then from the next send/recv).
"""

from __future__ import annotations

import errno as _errno
from collections import deque
from typing import TYPE_CHECKING

from ..errors import StackError
from ..mbuf import MT_DATA
from ..time import Instant
from .connection import Connection
from .state import CLOSED, SYN_RECEIVED, SYN_SENT

if TYPE_CHECKING:
    from .services import TcpHost

# Option names and values as Linux numbers them (what a file layer would pass through).
SOL_SOCKET = 1
IPPROTO_TCP = 6
SO_REUSEADDR = 2
SO_ERROR = 4
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_KEEPALIVE = 9
TCP_NODELAY = 1
IPPROTO_IPV6, IPV6_V6ONLY = 41, 26      # socket/opts.py has the whole table
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
SB_MAX = 256 * 1024 * 1024   # NetBSD kern.sbmax-like ceiling for SO_SNDBUF/SO_RCVBUF
SEND_LOWAT = 2048            # BSD so_snd.sb_lowat: writable once this much is free


class TcpSocket:
    __slots__ = ("layer", "conn", "local", "listening", "backlog", "accept_queue",
                 "embryonic", "reuseaddr", "keepalive", "nodelay", "sndbuf", "rcvbuf",
                 "sndbuf_set", "rcvbuf_set",
                 "closed", "_error", "shut_rd", "shut_wr", "v6only", "af6", "__weakref__")

    def __init__(self, layer: TcpHost):
        cfg = layer.config
        self.layer = layer
        self.conn: Connection | None = None
        self.local: tuple[bytes, int] | None = None
        self.listening = False
        self.backlog = 0
        self.accept_queue: deque[TcpSocket] | tuple = ()   # a deque once listening
        self.embryonic = 0
        self.reuseaddr = False
        self.keepalive = False
        self.nodelay = False
        self.sndbuf = cfg.sendspace
        self.rcvbuf = cfg.recvspace
        # Set by SO_SNDBUF/SO_RCVBUF: an explicit size turns autosizing off (BSD clears
        # SB_AUTOSIZE), for this socket and the connections a listener spawns.
        self.sndbuf_set = self.rcvbuf_set = False
        self.closed = False
        self._error = 0
        self.shut_rd = False
        self.shut_wr = False
        self.v6only = layer.v6only_default()   # IPV6_V6ONLY (socket/opts.py)
        self.af6 = False        # bound as IPv6: IPv4 peers (v6only 0) are shown IPv4-mapped

    @classmethod
    def _for_connection(cls, layer: TcpHost, conn: Connection, parent: TcpSocket) -> TcpSocket:
        # Every field set here, not in __init__: what it reads from the configuration and
        # sysctl tree the parent's values replace anyway (one accept per connection).
        s = cls.__new__(cls)
        s.layer = layer
        s.conn = conn
        s.local = (conn.local_ip, conn.local_port)
        s.listening = False
        s.backlog = s.embryonic = s._error = 0
        s.accept_queue = ()
        s.reuseaddr, s.keepalive, s.nodelay = parent.reuseaddr, parent.keepalive, parent.nodelay
        s.sndbuf, s.rcvbuf = parent.sndbuf, parent.rcvbuf
        s.sndbuf_set, s.rcvbuf_set = parent.sndbuf_set, parent.rcvbuf_set
        s.closed = s.shut_rd = s.shut_wr = False
        s.v6only, s.af6 = parent.v6only, parent.af6
        conn.socket = s
        return s

    @property
    def explicit_sndbuf(self) -> int | None:
        """The SO_SNDBUF a connection must keep, None to autosize (from sendspace)."""
        return self.sndbuf if self.sndbuf_set else None

    @property
    def explicit_rcvbuf(self) -> int | None:
        return self.rcvbuf if self.rcvbuf_set else None

    def inherit(self, conn: Connection) -> None:
        """A listener's options pass to the connections it spawns (BSD sonewconn)."""
        conn.nodelay = self.nodelay
        conn.keepalive = self.keepalive

    def __repr__(self) -> str:
        what = "LISTEN" if self.listening else (str(self.conn.state) if self.conn else "CLOSED")
        return f"<TcpSocket {self.local} {what}>"

    # -- addresses --------------------------------------------------------------------------

    def bind(self, ip: bytes, port: int) -> None:
        if self.local is not None or self.closed:
            raise StackError(_errno.EINVAL, "socket is already bound")
        layer = self.layer
        if port == 0:
            port = layer.ephemeral_port(ip)
        elif self._conflicts(ip, port):
            raise StackError(_errno.EADDRINUSE, f"{layer.fmt_ep(ip, port)} is in use")
        self.local = (ip, port)
        self.af6 = len(ip) == 16
        layer.bound.setdefault(self.local, set()).add(self)

    def _conflicts(self, ip: bytes, port: int) -> bool:
        layer = self.layer
        anys = (bytes(4), bytes(16))
        for (lip, lport) in layer.listeners:
            if lport == port and (lip == ip or lip in anys or ip in anys):
                return True     # a listener is never shared, SO_REUSEADDR or not
        if self.reuseaddr:
            return False        # SO_REUSEADDR: TIME-WAIT and other bound sockets may share
        for (bip, bport), socks in layer.bound.items():
            if socks and bport == port and (bip == ip or bip in anys or ip in anys):
                return True
        return layer._port_taken(ip, port)

    def _unbind(self) -> None:
        if self.local is not None:
            socks = self.layer.bound.get(self.local)
            if socks is not None:
                socks.discard(self)
                if not socks:
                    del self.layer.bound[self.local]

    @property
    def local_address(self) -> tuple[bytes, int] | None:
        return self.local

    @property
    def remote_address(self) -> tuple[bytes, int] | None:
        c = self.conn
        return None if c is None else (c.remote_ip, c.remote_port)

    # -- passive open ---------------------------------------------------------------------

    def listen(self, backlog: int = 128) -> None:
        layer = self.layer
        if self.conn is not None or self.closed:
            raise StackError(_errno.EINVAL, "socket is connected")
        if self.local is None:
            self.bind(bytes(4), 0)
        somaxconn = layer.config.somaxconn
        # NetBSD solisten: a negative or too large backlog becomes somaxconn.
        self.backlog = max(1, somaxconn if backlog < 0 or backlog > somaxconn else backlog)
        if self.listening:
            return
        if self.local in layer.listeners:
            raise StackError(_errno.EADDRINUSE, "address already listening")
        self._unbind()
        self.listening = True
        self.accept_queue = deque()
        layer.listeners[self.local] = self

    def accept(self) -> TcpSocket:
        child = self.try_accept()
        if child is None:
            raise StackError(_errno.EAGAIN, "no connection waiting")
        return child

    def try_accept(self) -> TcpSocket | None:
        """``accept`` that answers None where it would raise EAGAIN (for callers that
        wait, such as trio streams: no exception made and caught per connection)."""
        if not self.listening:
            raise StackError(_errno.EINVAL, "socket is not listening")
        if self.accept_queue:
            # A connection reset while it waited is still handed over (BSD behaviour);
            # its error shows on the first call.
            return self.accept_queue.popleft()
        return None

    # -- active open ----------------------------------------------------------------------

    def connect(self, ip: bytes, port: int, now: Instant) -> None:
        """Start an active open; completion shows as ``writable`` (or ``error``)."""
        layer = self.layer
        if self.listening or self.closed:
            raise StackError(_errno.EINVAL, "socket is listening or closed")
        if self.conn is not None:
            if self.conn.state == SYN_SENT:
                raise StackError(_errno.EALREADY, "connection in progress")
            raise StackError(_errno.EISCONN, "socket is already connected")
        if port == 0:
            raise StackError(_errno.EADDRNOTAVAIL, "port 0")
        if self.local is not None and self.local[0] not in (bytes(4), bytes(16)):
            lip = self.local[0]
        else:
            lip = layer.source_address(ip) if layer.source_address else None
            if lip is None:
                raise StackError(_errno.ENETUNREACH, f"no route to {layer.fmt_ep(ip, port)}")
        if self.local is not None:
            lport = self.local[1]
            self._unbind()
        else:
            lport = layer.ephemeral_port(lip, ip, port)
        if (lip, lport, ip, port) in layer.connections:
            raise StackError(_errno.EADDRINUSE, "connection exists")
        self.local = (lip, lport)
        conn = Connection(layer, layer.config, lip, lport, ip, port, now,
                          sndbuf=self.explicit_sndbuf, rcvbuf=self.explicit_rcvbuf,
                          mtu=layer.route_mtu(ip))
        conn.socket = self
        conn.nodelay, conn.keepalive = self.nodelay, self.keepalive
        self.conn = conn
        layer.register(conn)
        conn.open_active(layer.isn(lip, lport, ip, port, now), now)
        layer.touch(conn)

    # -- data -----------------------------------------------------------------------------

    def _check_error(self) -> None:
        if self._error:
            err, self._error = self._error, 0
            raise StackError(err)
        c = self.conn
        if c is not None and c.error:
            err, c.error = c.error, 0
            self._error = 0
            raise StackError(err)

    def send(self, data, now: Instant) -> int:
        """Queue bytes; returns how many were taken (EAGAIN if none fit)."""
        self._check_error()
        c = self.conn
        if self.shut_wr or self.closed:
            raise StackError(_errno.EPIPE, "socket is shut down for writing")
        if c is None:
            raise StackError(_errno.ENOTCONN)
        if not c.state.can_send_data:
            if c.state in (SYN_SENT, SYN_RECEIVED):
                raise StackError(_errno.EAGAIN, "connection in progress")
            # POSIX send(): EPIPE once a connection-mode socket is no longer connected.
            raise StackError(_errno.EPIPE, "connection is closed for sending")
        if not len(data):
            return 0
        pool = c.snd_buf.pool
        if pool is not None and not c.snd_buf.allocated and not pool.room(c.snd_buf.capacity, MT_DATA):
            # No buffers for the send ring: a blocking sosend would wait (mbstat.m_wait).
            pool.delay()
            raise StackError(_errno.EAGAIN, "no buffers (Mbufs exhausted)")
        n = c.send(data, now)
        self.layer.touch(c)
        if n == 0:
            raise StackError(_errno.EAGAIN, "send buffer full")
        return n

    def recv_into(self, out, now: Instant) -> int:
        """Read into ``out``; 0 means end of stream (EAGAIN if nothing yet)."""
        n = self.try_recv_into(out, now)
        if n is None:
            raise StackError(_errno.EAGAIN, "no data")
        return n

    def try_recv_into(self, out, now: Instant) -> int | None:
        """``recv_into`` that answers None where it would raise EAGAIN."""
        c = self.conn
        if c is None:
            raise StackError(_errno.ENOTCONN)
        if c.rcv_buf.used:
            n = c.recv_into(out, now)   # (it tells the layer if its timers moved)
            if c.state == CLOSED:
                c.rcv_buf.release()     # the last of a closed connection's data
            return n
        self._check_error()
        if c.peer_fin or self.shut_rd or c.state == CLOSED:
            return 0
        if not c.state.synchronized and c.state != SYN_SENT:
            raise StackError(_errno.ENOTCONN)
        return None

    def recv(self, n: int, now: Instant) -> bytes:
        buf = bytearray(min(n, max(len(self.conn.rcv_buf), 1)) if self.conn else n)
        got = self.recv_into(buf, now)
        return bytes(buf[:got])

    def shutdown(self, how: int, now: Instant) -> None:
        c = self.conn
        if c is None or c.state == CLOSED:
            raise StackError(_errno.ENOTCONN)
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise StackError(_errno.EINVAL, f"shutdown how={how}")
        if how in (SHUT_RD, SHUT_RDWR):
            self.shut_rd = True
            c.rcv_shut = True
            c.rcv_buf.consume(len(c.rcv_buf))
        if how in (SHUT_WR, SHUT_RDWR):
            self.shut_wr = True
            c.shutdown_send(now)
        self.layer.touch(c)
        self.layer.signal(self)

    def close(self, now: Instant) -> None:
        if self.closed:
            return
        self.closed = True
        layer = self.layer
        if self.listening:
            self.listening = False
            layer.listeners.pop(self.local, None)
            # Connections not yet accepted are reset (BSD soclose -> soabort).
            for child in self.accept_queue:
                if child.conn is not None:
                    child.conn.abort(now)
            self.accept_queue = ()
            for conn in list(layer.connections.values()):
                if conn.listener is self:
                    conn.abort(now)
        self._unbind()
        c = self.conn
        if c is not None and c.state != CLOSED:
            c.close(now)                # (which re-files the connection's timers)
        if c is not None and c.state == CLOSED:
            c.rcv_buf.discard()         # unread and unreadable now: the buffers go back

    def abort(self, now: Instant) -> None:
        """Close with a RST (SO_LINGER with a zero timeout)."""
        if self.conn is not None and self.conn.state != CLOSED:
            self.conn.abort(now)
        self.close(now)

    # -- options --------------------------------------------------------------------------

    def setsockopt(self, level: int, name: int, value: int, now: Instant = 0) -> None:
        if level == SOL_SOCKET and name == SO_REUSEADDR:
            self.reuseaddr = bool(value)
        elif level == SOL_SOCKET and name == SO_KEEPALIVE:
            self.keepalive = bool(value)
            if self.conn is not None:
                self.conn.set_keepalive(self.keepalive, now)
        elif level == IPPROTO_TCP and name == TCP_NODELAY:
            self.nodelay = bool(value)
            if self.conn is not None:
                self.conn.nodelay = self.nodelay
                if self.nodelay and self.conn.state.can_send_data:
                    self.conn._output(now)
                    self.layer.touch(self.conn)
        elif level == IPPROTO_IPV6 and name == IPV6_V6ONLY:
            if self.local is not None:
                raise StackError(_errno.EINVAL, "IPV6_V6ONLY must be set before bind")
            self.v6only = bool(value)
        elif level == SOL_SOCKET and name in (SO_SNDBUF, SO_RCVBUF):
            if not 512 <= value <= SB_MAX:
                raise StackError(_errno.EINVAL, f"buffer size {value} out of range")
            if name == SO_SNDBUF:
                self.sndbuf, self.sndbuf_set = value, True
                if self.conn is not None:
                    self.conn.snd_buf.resize(value)
                    self.conn.snd_auto = False
            else:
                # The receive buffer fixes the window scale, which the SYN carries: like
                # Linux, a change after connect applies to future connections only.
                self.rcvbuf, self.rcvbuf_set = value, True
        else:
            raise StackError(_errno.ENOPROTOOPT, f"option {level}/{name} not supported")

    def getsockopt(self, level: int, name: int) -> int:
        if level == SOL_SOCKET and name == SO_REUSEADDR:
            return int(self.reuseaddr)
        if level == SOL_SOCKET and name == SO_KEEPALIVE:
            return int(self.keepalive)
        if level == IPPROTO_TCP and name == TCP_NODELAY:
            return int(self.nodelay)
        if level == SOL_SOCKET and name == SO_SNDBUF:
            return self.conn.snd_buf.capacity if self.conn is not None else self.sndbuf
        if level == SOL_SOCKET and name == SO_RCVBUF:
            return self.conn.rcv_buf.capacity if self.conn is not None else self.rcvbuf
        if level == SOL_SOCKET and name == SO_ERROR:
            return self.take_error()
        if level == IPPROTO_IPV6 and name == IPV6_V6ONLY:
            return int(self.v6only)
        raise StackError(_errno.ENOPROTOOPT, f"option {level}/{name} not supported")

    def take_error(self) -> int:
        """SO_ERROR: the pending error, cleared by reading it."""
        err = self._error
        c = self.conn
        if not err and c is not None and c.error:
            err = c.error
            c.error = 0
        self._error = 0
        return err

    # -- readiness ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.listening:
            return "LISTEN"
        return str(self.conn.state) if self.conn is not None else "CLOSED"

    @property
    def readable(self) -> bool:
        if self.listening:
            return bool(self.accept_queue)
        c = self.conn
        if c is None:
            return False
        return bool(c.rcv_buf.used) or c.peer_fin or bool(c.error) or c.state == CLOSED \
            or self.shut_rd

    @property
    def cantrcvmore(self) -> bool:
        """Nothing more can arrive (BSD's SBS_CANTRCVMORE): the peer's FIN is in, the
        receive half is shut, or the connection is gone; what is buffered is the rest."""
        c = self.conn
        return c is None or c.peer_fin or self.shut_rd or c.state == CLOSED

    @property
    def writable(self) -> bool:
        c = self.conn
        if c is None or self.listening:
            return False
        if c.error or c.state == CLOSED:
            return True
        return c.state.can_send_data and not self.shut_wr and \
            c.snd_buf.cap - c.snd_buf.used >= min(SEND_LOWAT, c.snd_buf.cap)

    @property
    def error(self) -> int:
        """The pending error without clearing it."""
        return self._error or (self.conn.error if self.conn is not None else 0)

    def status(self):
        return self.conn.status() if self.conn is not None else None
