"""Protocol adapters: what one kind of connection directory does with its core socket.

The file layer (``sockfs``) is the same for every protocol; these classes say how a ctl
verb, a read or a write on ``data``, and the ``local``/``remote``/``status`` texts map onto
the core's socket calls. Every method is synchronous and never blocks: "would block" is
answered with ``None`` and the file layer waits for the socket's next readiness event.

Addresses are Plan 9's ``ADDR!PORT`` (IPv6 as written, ``fe80::2%wan0!53`` with a zone,
``[...]`` brackets allowed); ``*`` is the wildcard. TCP, UDP and raw are one ``Inet``
shape over the core's one socket interface (bytes addresses, (level, name) options).
"""

import errno
import ipaddress
import socket as pysocket

from ..stack.errors import StackError
from ..stack.socket import opts
from ..stack.tcp import socket as tcpsock


def parse_sockaddr(stack, text: str, *, port_needed: bool = True):
    """``ADDR!PORT``, ``*!PORT``, ``PORT`` or (``port_needed=False``) ``ADDR`` ->
    (address bytes, port, scope). An IPv4 or, on v6 variants, IPv6 address, packed as the
    core takes it; ``*`` and a bare PORT are IPv4's wildcard, which takes both families
    (``::`` takes IPv6 only unless ``v6only 0``). A link-local address may name its zone
    (``fe80::2%wan0``, RFC 4007 11): the interface (ENXIO if there is none), else None."""
    host, sep, port = text.rpartition("!")
    if not sep:
        host, port = ("*", text) if port_needed or text.isdigit() else (text, "0")
    if host in ("*", ""):
        host = "0.0.0.0"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    scope = None
    if "%" in host:
        host, _, zone = host.partition("%")
        scope = stack.interface(zone)            # ENXIO: no such interface
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise StackError(errno.EINVAL, f"bad address {text!r}: want ADDR!PORT") from None
    if addr.version == 6 and not stack.variant.inet6:
        raise StackError(errno.EAFNOSUPPORT, f"{stack.variant.name} has no IPv6")
    if scope is not None and not (addr.version == 6 and (addr.is_link_local or addr.is_multicast)):
        raise StackError(errno.EINVAL, f"{text!r}: only a link-local address takes a %zone")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise StackError(errno.EINVAL, f"bad port in {text!r}")
    return addr.packed, int(port), scope


def parse_inet(stack, text: str) -> tuple[bytes, int]:
    """``ADDR!PORT`` as (address bytes, port): parse_sockaddr without the zone."""
    ip, port, _scope = parse_sockaddr(stack, text)
    return ip, port


def inet_text(ip: bytes, scope=None) -> str:
    """4 or 16 bytes as ``local``/``remote`` print them (``*`` for a wildcard; a
    link-local IPv6 address with its ``%zone``, KAME's getnameinfo form)."""
    if ip in (b"\0" * 4, b"\0" * 16):
        return "*"
    if len(ip) == 4:
        return pysocket.inet_ntoa(ip)
    if opts.is_mapped(ip):
        return "::ffff:" + pysocket.inet_ntoa(ip[12:])      # RFC 5952 5: mixed notation
    text = str(ipaddress.IPv6Address(ip))
    if scope is not None and ip[0] == 0xFE and ip[1] & 0xC0 == 0x80:
        text += f"%{scope.name}"
    return text


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


def _flag(word: str, what: str) -> int:
    if word not in ("0", "1"):
        raise StackError(errno.EINVAL, f"{what} takes 0 or 1, not {word!r}")
    return int(word)


class Protocol:
    name = "?"
    can_listen = False
    # Does read() take the reader's offset, to end short reads on a stdio block
    # boundary (stdio_short)? Byte streams with large transfers: TCP.
    aligns_reads = False

    def __init__(self, stack):
        self.stack = stack

    def new_socket(self):
        raise NotImplementedError

    def active(self, conv) -> bool:
        """Does the protocol keep this connection alive with no file open?"""
        return False

    def status(self, conv) -> str:
        return f"{'Announced' if conv.announced else 'Open'}\n"

    def datagrams(self, conv) -> bool:
        """Is each write one datagram (else a byte stream the file layer may split)?"""
        return False

    def rest(self, conv) -> int | None:
        """What a reader will still get, in bytes, once nothing more can arrive (the
        peer's FIN is in, or the receive half is shut); None while more may come."""
        return None


class Inet(Protocol):
    """TCP, UDP and raw ICMP/ICMPv6: one shape. Each core socket takes ``bind(ip, port)``,
    ``connect(ip, port, now, scope=)``, ``setsockopt(level, name, value, now)`` with
    addresses as bytes (4 or 16) and options as (level, name) (stack/socket/opts.py), and
    shows ``local_address``/``remote_address``; what differs is declared, not coded:

    * ``OPTIONS``: ctl verb -> (level, name, arguments), ``arguments`` ``None`` (no
      argument, value 1), ``int`` or ``flag`` (0/1);
    * ``VERBS``: the protocol's own verbs (hangup, shutdown, headers ...) -> method name;
    * ``_announce``/``_connected`` hooks (TCP listens, marks a connect in progress);
    * ``PORTS``: False for raw sockets (``ADDR`` alone, no ``!PORT``).
    """

    OPTIONS: dict = {}
    VERBS: dict = {}
    PORTS = True

    def ctl(self, conv, verb, args, handle, now):
        if verb == "connect" and len(args) in (1, 2):
            self._connect(conv, args, handle, now)
        elif verb in ("announce", "bind") and len(args) == 1:
            ip, port, scope = parse_sockaddr(self.stack, args[0], port_needed=self.PORTS)
            if 0 < port < 1024 and handle.uid != 0:
                raise StackError(errno.EACCES, f"port {port} needs root")
            sock = self._socket_for(conv, ip)
            sock.bind(ip, port)
            if verb == "announce":
                self._announce(conv, sock)
                conv.announced = True
        elif verb in self.OPTIONS and len(args) == (0 if self.OPTIONS[verb][2] is None else 1):
            level, name, kind = self.OPTIONS[verb]
            value = 1 if kind is None else _flag(args[0], verb) if kind == "flag" else _int(args[0], verb)
            if level is not None:
                conv.sock.setsockopt(level, name, value, now)
        elif verb in self.VERBS:
            return getattr(self, self.VERBS[verb])(conv, args, now)
        else:
            return False
        return True

    def _connect(self, conv, args, handle, now) -> None:
        ip, port, scope = parse_sockaddr(self.stack, args[0], port_needed=self.PORTS)
        sock = self._socket_for(conv, ip)
        if len(args) == 2:
            lport = _int(args[1], "local port")
            if 0 < lport < 1024 and handle.uid != 0:
                raise StackError(errno.EACCES, f"port {lport} needs root")
            sock.bind(bytes(len(ip)), lport)
        sock.connect(ip, port, now, scope=scope)

    def _socket_for(self, conv, ip: bytes):
        return conv.sock

    def _announce(self, conv, sock) -> None:
        pass

    def _zone(self, sock, ip: bytes):
        """The interface a link-local address of this socket belongs to (for ``%zone``)."""
        if len(ip) != 16 or self.stack.inet6 is None:
            return None
        scope = getattr(sock, "scope", None)
        if scope is not None:
            return scope
        local = sock.local_address
        return self.stack.inet6.interface_of(local[0]) if local is not None else None

    def _text(self, sock, pair) -> str:
        if pair is None:
            return "*!*\n"
        ip, port = pair
        return f"{inet_text(ip, self._zone(sock, ip))}!{port}\n"

    def local(self, conv):
        return self._text(conv.sock, conv.sock.local_address)

    def remote(self, conv):
        return self._text(conv.sock, conv.sock.remote_address)


class Datagram(Inet):
    """What udp and raw share: one datagram per read/write, and ``headers`` mode, where
    each datagram starts with a text line naming its peer (Plan 9's binary header,
    made readable for shells)."""

    VERBS = {"headers": "_headers"}

    def datagrams(self, conv) -> bool:
        return True

    def _headers(self, conv, args, now):
        if args:
            return False
        conv.headers = True
        return True

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
    OPTIONS = {
        "reuseport": (opts.SOL_SOCKET, opts.SO_REUSEPORT, None),
        "broadcast": (opts.SOL_SOCKET, opts.SO_BROADCAST, None),
        "ttl": (opts.IPPROTO_IP, opts.IP_TTL, int),
        "tos": (opts.IPPROTO_IP, opts.IP_TOS, int),
        "v6only": (opts.IPPROTO_IPV6, opts.IPV6_V6ONLY, "flag"),
    }

    VERBS = {**Datagram.VERBS, "addmulti": "_addmulti", "remmulti": "_remmulti"}

    def new_socket(self):
        return self.stack.inet.udp.socket()

    def _membership(self, conv, args, now, join: bool):
        """``addmulti GROUP[%IF]`` / ``remmulti GROUP[%IF]`` (Plan 9's udp ctl names):
        IP_ADD/DROP_MEMBERSHIP for an IPv4 group, IPV6_JOIN/LEAVE_GROUP for an IPv6 one
        on the interface named (else the one the group's packets leave by)."""
        if len(args) != 1:
            return False
        ip, _port, scope = parse_sockaddr(self.stack, args[0], port_needed=False)
        if len(ip) == 16:
            name = opts.IPV6_JOIN_GROUP if join else opts.IPV6_LEAVE_GROUP
            conv.sock.setsockopt(opts.IPPROTO_IPV6, name, (ip, scope or 0), now)
        else:
            name = opts.IP_ADD_MEMBERSHIP if join else opts.IP_DROP_MEMBERSHIP
            conv.sock.setsockopt(opts.IPPROTO_IP, name, ip, now)
        return True

    def _addmulti(self, conv, args, now):
        return self._membership(conv, args, now, True)

    def _remmulti(self, conv, args, now):
        return self._membership(conv, args, now, False)

    def counters(self):
        return self.stack.inet.udp.stats

    def _connect(self, conv, args, handle, now) -> None:
        ip, port, scope = parse_sockaddr(self.stack, args[0])
        s = conv.sock
        if len(args) == 2 and not s.bound:
            s.bind(None, _int(args[1], "local port"), privileged=handle.uid == 0)
        s.connect(ip, port, now, scope=scope)

    def read(self, conv, size, now):
        s = conv.sock
        if s.error:
            s.recv()   # raises the pending error (ECONNREFUSED ...) once
        if not s.rxq:
            return None
        data, (ip, port, iface) = s.recvmsg()
        if conv.headers:
            data = f"{inet_text(ip, iface)}!{port}\n".encode() + data
        return data[:size]

    def write(self, conv, data, now):
        s = conv.sock
        if conv.headers:
            peer, body = self.split_header(data, "ADDR!PORT")
            ip, port, scope = parse_sockaddr(self.stack, peer)
            s.sendto(body, ip, port, now, scope=scope)
        else:
            if not s.connected:
                raise StackError(errno.EDESTADDRREQ, "not connected (write 'connect ADDR!PORT' to ctl, or 'headers')")
            s.send(bytes(data), now)
        return len(data)

    def local(self, conv):
        s = conv.sock
        return self._text(s, s.local_address) if s.bound else "*!*\n"


class Raw(Datagram):
    """ICMP or ICMPv6: each write is one message (checksum filled in), each read one
    received. The first address written decides the family: ``connect fd00::2`` (or
    ``announce ::``) makes the connection a raw ICMPv6 socket. With ``headers`` a received
    message starts with ``SOURCE!TTL`` (a link-local source with its %zone), a sent one
    with ``DEST``."""

    name = "raw"
    PORTS = False
    OPTIONS = {"ttl": (opts.IPPROTO_IP, opts.IP_TTL, int)}

    def new_socket(self):
        return self.stack.inet.raw.socket()

    def counters(self):
        return self.stack.inet.icmp.stats

    def _socket_for(self, conv, ip: bytes):
        s = conv.sock
        if len(ip) == s.family_width:
            return s
        if s.remote_address is not None or s.local_address[0] != bytes(s.family_width):
            raise StackError(errno.EAFNOSUPPORT, "this connection is already of the other family")
        raw = self.stack.inet6.raw if len(ip) == 16 else self.stack.inet.raw
        s.close()
        old, conv.sock = s, raw.socket()
        conv.sock.ttl = old.ttl
        conv.rebind(old)
        return conv.sock

    def read(self, conv, size, now):
        if not conv.sock.rxq:
            return None
        message, src, ttl, iface = conv.sock.recv()
        if conv.headers:
            message = f"{inet_text(src, iface)}!{ttl}\n".encode() + message
        return message[:size]

    def write(self, conv, data, now):
        if conv.headers:
            dst, data = self.split_header(data, "ADDR")
            ip, _port, scope = parse_sockaddr(self.stack, dst.partition("!")[0], port_needed=False)
            return conv.sock.send(bytes(data), now, ip, scope=scope)
        return conv.sock.send(bytes(data), now)

    def local(self, conv):
        return self._text(conv.sock, conv.sock.local_address)


# glibc's fread asks read() for whole multiples of its buffer (BUFSIZ, 8 KiB, for a
# file whose st_blksize is larger, as data's is), counted from where the reader stands.
# One short read that ends off such a boundary leaves stdio misaligned for good: every
# later 32 KiB fread of sha256sum became an 8 KiB and a 24 KiB request, twice the FUSE
# round trips for the same bytes (docs/performance.md, "Short reads and stdio").
STDIO_BLOCK = 8192


def stdio_short(off: int, size: int, avail: int) -> int:
    """How much a read of ``size`` at offset ``off`` takes when ``avail`` are buffered:
    all it asked for if they are there; else up to the last stdio block boundary, so
    the rest of the reader's fread is a whole number of blocks; else (less than a block
    past the boundary, e.g. a short message) all there is, at once."""
    if avail >= size:
        return size
    end = (off + avail) & ~(STDIO_BLOCK - 1)
    return end - off if end > off else avail


class Tcp(Inet):
    name = "tcp"
    aligns_reads = True
    can_listen = True
    OPTIONS = {
        "nodelay": (opts.IPPROTO_TCP, opts.TCP_NODELAY, None),
        "reuseport": (opts.SOL_SOCKET, opts.SO_REUSEADDR, None),
        "v6only": (opts.IPPROTO_IPV6, opts.IPV6_V6ONLY, "flag"),
        # accepted, as Inferno does; the core uses the defaults
        "ttl": (None, None, int), "tos": (None, None, int),
    }
    VERBS = {"hangup": "_hangup", "close": "_close", "shutdown": "_shutdown", "keepalive": "_keepalive"}

    def new_socket(self):
        return self.stack.tcp.socket()

    def active(self, conv):
        state = conv.sock.state
        if state in ("CLOSED", "TIME-WAIT"):
            return False
        # A peer that has finished while nobody holds a file: close our side too (below).
        return state != "CLOSE-WAIT"

    def _connect(self, conv, args, handle, now) -> None:
        ip, port, scope = parse_sockaddr(self.stack, args[0])
        s = conv.sock
        if len(args) == 2:
            s.bind(b"\0" * len(ip), _int(args[1], "local port"))
        elif scope is not None and s.local_address is None:
            # The zone picks the link through our link-local source there: the core routes
            # a link-local destination by its source's interface (inet6 route_to).
            src = self.stack.inet6.source_for(ip, scope)
            s.bind(src, 0)
        s.connect(ip, port, now)
        conv.connecting = True

    def _announce(self, conv, sock) -> None:
        sock.listen(int(self.stack.sysctl.get("kern.somaxconn")))

    def _hangup(self, conv, args, now):
        if args:
            return False
        conv.sock.abort(now)        # Plan 9: hangup sends RST
        return True

    def _close(self, conv, args, now):
        if args:
            return False
        conv.sock.close(now)        # ours: an orderly release (FIN)
        return True

    def _shutdown(self, conv, args, now):
        how = {"rd": tcpsock.SHUT_RD, "wr": tcpsock.SHUT_WR, "rdwr": tcpsock.SHUT_RDWR}
        if len(args) != 1 or args[0] not in how:
            return False
        conv.sock.shutdown(how[args[0]], now)
        return True

    def _keepalive(self, conv, args, now):
        if len(args) > 1:
            return False
        conv.sock.setsockopt(opts.SOL_SOCKET, opts.SO_KEEPALIVE, 1, now)
        if args:
            conv.keepalive_ms = _int(args[0], "keepalive")
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

    def rest(self, conv):
        s = conv.sock
        if not s.cantrcvmore:
            return None
        return len(s.conn.rcv_buf) if s.conn is not None else 0

    def read(self, conv, size, now, off=0):
        """Everything buffered up to ``size`` (never capped at a window or buffer size),
        copied once: from the receive ring into the buffer pyfuse3 replies from. A short
        read ends on a stdio block boundary of the reader's offset ``off`` (stdio_short)."""
        s = conv.sock
        c = s.conn
        if c is None:
            buf = bytearray(1)
        else:
            # All of size if it is there (stdio_short's first case, written out: a READ
            # from a full buffer is the common one); nothing buffered: a one-byte probe
            # tells end of stream from "would block".
            avail = c.rcv_buf.used
            buf = bytearray(size if avail >= size else stdio_short(off, size, avail) or 1)
        n = s.try_recv_into(buf, now)
        if n is None:                  # would block
            return None
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

    def _text(self, sock, pair) -> str:
        # A connection an IPv6 listener with v6only 0 took over IPv4 is an AF_INET6
        # socket: its addresses read IPv4-mapped (RFC 3493 3.7).
        if pair is not None and sock.af6 and len(pair[0]) == 4:
            pair = (opts.mapped(pair[0]), pair[1])
        return super()._text(sock, pair)

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

    def datagrams(self, conv) -> bool:
        return conv.sock.kind == "dgram"

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
