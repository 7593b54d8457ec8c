"""Protocol adapters: what one kind of connection directory does with its core socket.

The file layer (``sockfs``) is the same for every protocol; these classes say how a ctl
verb, a read or a write on ``data``, and the ``local``/``remote``/``status`` texts map onto
the core's socket calls. Every method is synchronous and never blocks: "would block" is
answered with ``None`` and the file layer waits for the socket's next readiness event.

Addresses are Plan 9's ``ADDR!PORT``; ``*`` is the wildcard.
"""

import errno
import ipaddress
import socket as pysocket

from ..stack.errors import StackError
from ..stack.tcp import socket as tcpsock

SOL_SOCKET, SO_REUSEADDR, SO_KEEPALIVE, SO_REUSEPORT = 1, 2, 9, 15
IPPROTO_TCP, TCP_NODELAY = 6, 1


def parse_addr(text: str, *, need_port: bool = True) -> tuple[str, int]:
    """``ADDR!PORT``, ``*!PORT`` or ``PORT`` -> (address or "0.0.0.0", port)."""
    host, sep, port = text.rpartition("!")
    if not sep:
        host, port = "*", text
    if host in ("*", ""):
        host = "0.0.0.0"
    try:
        host = str(ipaddress.IPv4Address(host))
    except ValueError:
        raise StackError(errno.EINVAL, f"bad address {text!r}: want ADDR!PORT") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        if need_port or port:
            raise StackError(errno.EINVAL, f"bad port in {text!r}")
        return host, 0
    return host, int(port)


def parse_inet(stack, text: str) -> tuple[bytes, int]:
    """TCP's ``ADDR!PORT``: an IPv4 or (on v6 variants) IPv6 address, packed. ``*`` and
    a bare PORT are IPv4's wildcard, which accepts calls of both families. A link-local
    address may name its zone (``fe80::2%wan0``); the zone must be an interface of ours
    (ENXIO otherwise) and the core picks the link by the neighbour it knows."""
    host, sep, port = text.rpartition("!")
    if not sep:
        host, port = "*", text
    if host in ("*", ""):
        host = "0.0.0.0"
    if "%" in host:
        host, _, zone = host.partition("%")
        stack.interface(zone)                 # ENXIO: no such interface
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise StackError(errno.EINVAL, f"bad address {text!r}: want ADDR!PORT") from None
    if addr.version == 6 and not stack.variant.inet6:
        raise StackError(errno.EAFNOSUPPORT, f"{stack.variant.name} has no IPv6")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise StackError(errno.EINVAL, f"bad port in {text!r}")
    return addr.packed, int(port)


def inet_text(ip: bytes) -> str:
    """4 or 16 bytes as ``local``/``remote`` print them (``*`` for a wildcard)."""
    if ip in (b"\0" * 4, b"\0" * 16):
        return "*"
    if len(ip) == 4:
        return pysocket.inet_ntoa(ip)
    return str(ipaddress.IPv6Address(ip))


def addr_text(addr: tuple[str, int] | None) -> str:
    if addr is None:
        return "*!*\n"
    host, port = addr
    host = "*" if host in ("0.0.0.0", "") else host
    return f"{host}!{port}\n"


def _int(word: str, what: str) -> int:
    try:
        return int(word, 0)
    except ValueError:
        raise StackError(errno.EINVAL, f"{what} {word!r} is not a number") from None


class Protocol:
    name = "?"
    can_listen = False

    def __init__(self, stack):
        self.stack = stack

    def new_socket(self):
        raise NotImplementedError

    def active(self, conv) -> bool:
        """Does the protocol keep this connection alive with no file open?"""
        return False

    def status(self, conv) -> str:
        return f"{'Announced' if conv.announced else 'Open'}\n"


class Datagram(Protocol):
    """What udp and raw share: one datagram per read/write, and ``headers`` mode, where
    each datagram starts with a text line naming its peer (Plan 9's binary header,
    made readable for shells)."""

    def readable(self, conv):
        return conv.sock.readable

    def writable(self, conv):
        return True

    @staticmethod
    def split_header(data, form: str) -> tuple[str, bytes]:
        head, sep, body = bytes(data).partition(b"\n")
        if not sep:
            raise StackError(errno.EINVAL, f"with headers, a datagram starts with '{form}\\n'")
        return head.decode(errors="replace"), body

    def remote(self, conv):
        return addr_text(conv.sock.remote)

    def close(self, conv, now):
        conv.sock.close()

    hangup = close

    def counters(self):
        raise NotImplementedError

    def stats(self):
        from .tables import counters
        return counters(self.counters().snapshot())


class Udp(Datagram):
    name = "udp"

    def new_socket(self):
        return self.stack.inet.udp.socket()

    def counters(self):
        return self.stack.inet.udp.stats

    def ctl(self, conv, verb, args, handle, now):
        s = conv.sock
        privileged = handle.uid == 0
        if verb == "connect" and len(args) in (1, 2):
            host, port = parse_addr(args[0])
            if len(args) == 2 and not s.bound:
                s.bind(None, _int(args[1], "local port"), privileged=privileged)
            s.connect(host, port, now=now)
        elif verb in ("announce", "bind") and len(args) == 1:
            host, port = parse_addr(args[0])
            s.bind(None if host == "0.0.0.0" else host, port, privileged=privileged)
            conv.announced = verb == "announce"
        elif verb == "headers" and not args:
            conv.headers = True
        elif verb == "reuseport" and not args:
            s.setsockopt("SO_REUSEPORT", 1)
        elif verb == "broadcast" and not args:
            s.setsockopt("SO_BROADCAST", 1)
        elif verb in ("ttl", "tos") and len(args) == 1:
            s.setsockopt("IP_TTL" if verb == "ttl" else "IP_TOS", _int(args[0], verb))
        else:
            return False
        return True

    def read(self, conv, size, now):
        s = conv.sock
        if s.error:
            s.recv()   # raises the pending error (ECONNREFUSED ...) once
        if not s.rxq:
            return None
        data, (host, port) = s.recvfrom()
        if conv.headers:
            data = f"{host}!{port}\n".encode() + data
        return data[:size]

    def write(self, conv, data, now):
        s = conv.sock
        if conv.headers:
            peer, body = self.split_header(data, "ADDR!PORT")
            host, port = parse_addr(peer)
            s.sendto(body, host, port, now)
        else:
            if not s.connected:
                raise StackError(errno.EDESTADDRREQ, "not connected (write 'connect ADDR!PORT' to ctl, or 'headers')")
            s.send(bytes(data), now)
        return len(data)

    def local(self, conv):
        return addr_text(conv.sock.local if conv.sock.bound else None)


class Raw(Datagram):
    """ICMP: each write is one ICMP message (checksum filled in), each read one received.
    With ``headers`` a received message starts with ``SOURCE!TTL``, a sent one with ``DEST``."""

    name = "raw"

    def new_socket(self):
        return self.stack.inet.raw.socket()

    def counters(self):
        return self.stack.inet.icmp.stats

    def ctl(self, conv, verb, args, handle, now):
        s = conv.sock
        if verb == "connect" and len(args) == 1:
            s.connect(args[0].partition("!")[0])
        elif verb in ("announce", "bind") and len(args) == 1:
            host = args[0].partition("!")[0]
            s.bind("0.0.0.0" if host == "*" else host)
            conv.announced = verb == "announce"
        elif verb == "ttl" and len(args) == 1:
            s.ttl = _int(args[0], "ttl")
        elif verb == "headers" and not args:
            conv.headers = True
        else:
            return False
        return True

    def read(self, conv, size, now):
        if not conv.sock.rxq:
            return None
        message, src, ttl = conv.sock.recv()
        if conv.headers:
            message = f"{src}!{ttl}\n".encode() + message
        return message[:size]

    def write(self, conv, data, now):
        dst = None
        if conv.headers:
            dst, data = self.split_header(data, "ADDR")
            dst = dst.partition("!")[0]
        return conv.sock.send(bytes(data), now, dst)

    def local(self, conv):
        return addr_text(conv.sock.local)


class Tcp(Protocol):
    name = "tcp"
    can_listen = True

    def new_socket(self):
        return self.stack.tcp.socket()

    def active(self, conv):
        state = conv.sock.state
        if state in ("CLOSED", "TIME-WAIT"):
            return False
        # A peer that has finished while nobody holds a file: close our side too (below).
        return state != "CLOSE-WAIT"

    def ctl(self, conv, verb, args, handle, now):
        s = conv.sock
        if verb == "connect" and len(args) in (1, 2):
            ip, port = parse_inet(self.stack, args[0])
            if len(args) == 2:
                s.bind(b"\0" * len(ip), _int(args[1], "local port"))
            s.connect(ip, port, now)
            conv.connecting = True
        elif verb in ("announce", "bind") and len(args) == 1:
            ip, port = parse_inet(self.stack, args[0])
            if 0 < port < 1024 and handle.uid != 0:
                raise StackError(errno.EACCES, f"port {port} needs root")
            s.bind(ip, port)
            if verb == "announce":
                s.listen(int(self.stack.sysctl.get("kern.somaxconn")))
                conv.announced = True
        elif verb == "hangup" and not args:
            s.abort(now)        # Plan 9: hangup sends RST
        elif verb == "close" and not args:
            s.close(now)        # ours: an orderly release (FIN)
        elif verb == "shutdown" and len(args) == 1 and args[0] in ("rd", "wr", "rdwr"):
            s.shutdown({"rd": tcpsock.SHUT_RD, "wr": tcpsock.SHUT_WR, "rdwr": tcpsock.SHUT_RDWR}[args[0]], now)
        elif verb == "keepalive" and len(args) <= 1:
            s.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1, now)
            if args:
                conv.keepalive_ms = _int(args[0], "keepalive")
        elif verb == "nodelay" and not args:
            s.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1, now)
        elif verb == "reuseport" and not args:
            s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1, now)
        elif verb in ("ttl", "tos") and len(args) == 1:
            _int(args[0], verb)   # accepted, as Inferno does; the core uses the defaults
        else:
            return False
        return True

    def connect_done(self, conv):
        """None while connecting; else 0 or the errno the connect failed with."""
        s = conv.sock
        if s.error:
            return s.take_error()
        if s.state in ("SYN-SENT", "SYN-RECEIVED"):
            return None
        return 0

    def readable(self, conv):
        return conv.sock.readable

    def writable(self, conv):
        return conv.sock.writable

    def read(self, conv, size, now):
        """Everything buffered up to ``size`` (never capped at a window or buffer size),
        copied once: from the receive ring into the buffer pyfuse3 replies from."""
        s = conv.sock
        c = s.conn
        # Nothing buffered: a one-byte probe tells end of stream from "would block".
        buf = bytearray(min(size, len(c.rcv_buf)) or 1 if c is not None else 1)
        try:
            n = s.recv_into(buf, now)
        except StackError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        if n < len(buf):
            del buf[n:]
        return buf

    def write(self, conv, data, now):
        try:
            n = conv.sock.send(data, now)
        except StackError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        return n or None

    def accept(self, conv):
        try:
            return conv.sock.accept()
        except StackError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise

    def _addr(self, pair):
        if pair is None:
            return None
        ip, port = pair
        return inet_text(ip), port

    def local(self, conv):
        return addr_text(self._addr(conv.sock.local_address))

    def remote(self, conv):
        return addr_text(self._addr(conv.sock.remote_address))

    def status(self, conv):
        st = conv.sock.status()
        if st is None:   # a listener or a socket never connected has no TCB
            return f"{'Listen' if conv.sock.state == 'LISTEN' else 'Closed'}\n"
        return st.render().rstrip("\n") + "\n"

    def close(self, conv, now):
        conv.sock.close(now)

    def hangup(self, conv, now):
        conv.sock.abort(now)

    def stats(self):
        return self.stack.tcp.stats.render()


class Unix(Protocol):
    """AF_LOCAL: ``announce NAME`` / ``connect NAME``; stream by default, ``dgram`` first
    for datagrams (then ``headers`` gives each datagram its sender's name)."""

    name = "unix"
    can_listen = True

    def new_socket(self):
        return self.stack.unix.socket("stream")

    def active(self, conv):
        s = conv.sock
        return (s.listening or s.connected) and not s.closed and not s.eof

    def ctl(self, conv, verb, args, handle, now):
        s = conv.sock
        if verb == "dgram" and not args:
            if s.name is not None or s.connected:
                raise StackError(errno.EINVAL, "dgram must come first")
            old, conv.sock = conv.sock, self.stack.unix.socket("dgram")
            conv.rebind(old)
        elif verb == "announce" and len(args) == 1:
            s.announce(args[0])
            conv.announced = True
        elif verb == "connect" and len(args) == 1:
            s.connect(args[0])
        elif verb == "headers" and not args:
            conv.headers = True
        elif verb in ("hangup", "close") and not args:
            s.close()
        elif verb == "shutdown" and args == ["wr"]:
            s.shutdown_write()
        else:
            return False
        return True

    def readable(self, conv):
        return conv.sock.readable

    def writable(self, conv):
        return conv.sock.writable

    def read(self, conv, size, now):
        s = conv.sock
        try:
            if s.kind == "dgram":
                data, sender = s.recvfrom(size)
                return (f"{sender}\n".encode() + data) if conv.headers else data
            return s.recv(size)
        except StackError as exc:
            if exc.errno == errno.EWOULDBLOCK:
                return None
            raise

    def write(self, conv, data, now):
        s = conv.sock
        to = None
        if s.kind == "dgram" and conv.headers:
            head, sep, data = bytes(data).partition(b"\n")
            if not sep:
                raise StackError(errno.EINVAL, "with headers, a datagram starts with 'NAME\\n'")
            to = head.decode(errors="replace")
        try:
            return s.send(bytes(data), to)
        except StackError as exc:
            if exc.errno == errno.EWOULDBLOCK:
                return None
            raise

    def accept(self, conv):
        try:
            return conv.sock.accept()
        except StackError as exc:
            if exc.errno == errno.EWOULDBLOCK:
                return None
            raise

    def local(self, conv):
        return f"{conv.sock.name or '*'}\n"

    def remote(self, conv):
        return f"{conv.sock.peer_name or '*'}\n"

    def status(self, conv):
        s = conv.sock
        state = "Listen" if s.listening else "Established" if s.connected else "Closed" if s.closed else "Open"
        return f"{state} {s.kind} qin {s.rx.size + sum(len(d) for d, _ in s.dgrams)}\n"

    def close(self, conv, now):
        conv.sock.close()

    hangup = close

    def stats(self):
        return f"Names: {len(self.stack.unix.names)}\n"
