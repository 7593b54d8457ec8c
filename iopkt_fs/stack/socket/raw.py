"""Raw ICMP and ICMPv6 sockets (BSD ``rip``/``rip6``, protocols 1 and 58): what ``ping``
and ``ping6`` are built on.

One ``RawIcmpProtocol`` per family: ``inet.raw`` (ICMP over IPv4) and, on v6 variants,
``inet6.raw`` (ICMPv6). Every message the family's ICMP input accepts (checksum good) is
also copied to each of its raw sockets whose filter matches - bound address, connected
peer - as rip_input/rip6_input do; the kernel-side handling (echo replies, errors to
TCP/UDP, ND) goes on as usual. Sending takes a whole ICMP message; its checksum is
computed here (for ICMPv6 over the IPv6 pseudo-header: RFC 3542 3.1 makes the kernel
compute it for every raw ICMPv6 socket), so a caller needs only type, code, rest of
header and data.

Addresses are ``bytes`` of the family's width (4 or 16), as in every core socket. A
link-local IPv6 peer carries its zone (``scope``: the interface, RFC 4007 ``sin6_scope_id``);
received link-local sources are handed up with the interface they came in on.
"""

import errno
from collections import deque

from ..errors import StackError
from ..time import Instant
from ..wire.checksum import internet_checksum, pseudo_header_sum_v6
from . import opts

RECV_QUEUE = 64     # datagrams; more are dropped (counted in ``drops``)


class RawSocket:
    def __init__(self, proto: "RawIcmpProtocol"):
        self._proto = proto
        self.laddr = proto.any
        self.faddr = proto.any
        self.scope = None                  # the interface of a link-local peer
        self.ttl: int | None = None
        self.rxq: deque = deque()
        self.drops = 0
        self.closed = False

    @property
    def family_width(self) -> int:
        return len(self._proto.any)

    @property
    def readable(self) -> bool:
        return bool(self.rxq) or self.closed

    @property
    def writable(self) -> bool:
        return not self.closed

    @property
    def local_address(self) -> tuple[bytes, int]:
        return self.laddr, 0

    @property
    def remote_address(self) -> tuple[bytes, int] | None:
        return (self.faddr, 0) if self.faddr != self._proto.any else None

    def _packed(self, addr) -> bytes:
        if isinstance(addr, (bytes, bytearray)) and len(addr) == len(self._proto.any):
            return bytes(addr)
        raise StackError(errno.EAFNOSUPPORT if isinstance(addr, (bytes, bytearray)) and len(addr) in (4, 16)
                         else errno.EINVAL, f"not an address of this socket's family: {addr!r}")

    def bind(self, addr: bytes, port: int = 0) -> None:
        addr = self._packed(addr)
        if addr != self._proto.any and not self._proto.ip.is_local(addr):
            raise StackError(errno.EADDRNOTAVAIL, f"{opts.addr_text(addr)} is not a local address")
        self.laddr = addr

    def connect(self, addr: bytes, port: int = 0, now: Instant = 0, *, scope=None) -> None:
        faddr = self._packed(addr)
        if self._proto.proto == 58 and self.laddr == self._proto.any:
            # rip6_connect: the source is chosen now (EHOSTUNREACH without a route), so
            # ``local`` names it and only replies to it are taken.
            self.laddr = self._proto.ip.source_for(faddr, scope)
        self.faddr = faddr
        self.scope = scope

    def send(self, message: bytes, now: Instant, dst: bytes | None = None, *, scope=None) -> int:
        if self.closed:
            raise StackError(errno.EBADF, "socket is closed")
        proto = self._proto
        if dst is None:
            target, scope = self.faddr, self.scope
        else:
            target = self._packed(dst)
        if target == proto.any:
            raise StackError(errno.EDESTADDRREQ, "no destination: connect first")
        if len(message) < 8:
            raise StackError(errno.EINVAL, "an ICMP message has at least 8 bytes")
        return proto.output(self, bytearray(message), target, scope, now)

    def recv(self) -> tuple[bytes, bytes, int, object]:
        """(ICMP message, source address, TTL or hop limit, arrival interface);
        EWOULDBLOCK when nothing is queued."""
        if not self.rxq:
            raise StackError(errno.EWOULDBLOCK, "no message")
        return self.rxq.popleft()

    def deliver(self, message: bytes, src: bytes, dst: bytes, ttl: int, iface) -> None:
        if self.faddr != self._proto.any and src != self.faddr:
            return
        if self.laddr != self._proto.any and dst != self.laddr:
            return
        if len(self.rxq) >= RECV_QUEUE:
            self.drops += 1
            return
        self.rxq.append((message, src, ttl, iface))
        self._proto.ip.stack.notify_socket(self)

    def setsockopt(self, level: int, name: int, value: int, now: Instant = 0) -> None:
        if (level, name) in ((opts.IPPROTO_IP, opts.IP_TTL), (opts.IPPROTO_IPV6, opts.IPV6_UNICAST_HOPS)):
            if not 1 <= value <= 255:
                raise StackError(errno.EINVAL, f"hop limit {value} out of range 1..255")
            self.ttl = value
        else:
            raise StackError(errno.ENOPROTOOPT, f"option {level}/{name} not supported")

    def close(self, now: Instant = 0) -> None:
        self.closed = True
        if self in self._proto.sockets:
            self._proto.sockets.remove(self)


class RawIcmpProtocol:
    """The raw sockets of one family: ``ip`` is the IPv4 or the IPv6 layer."""

    def __init__(self, ip, *, width: int = 4):
        self.ip = ip
        self.any = bytes(width)
        self.proto = 58 if width == 16 else 1
        self.sockets: list[RawSocket] = []

    def socket(self) -> RawSocket:
        sock = RawSocket(self)
        self.sockets.append(sock)
        return sock

    def output(self, sock: RawSocket, msg: bytearray, dst: bytes, scope, now: Instant) -> int:
        ip = self.ip
        msg[2:4] = b"\0\0"
        if self.proto == 1:
            src = sock.laddr if sock.laddr != self.any else None
            msg[2:4] = internet_checksum(msg).to_bytes(2, "big")
            ip.output(bytes(msg), src, dst, 1, now, ttl=sock.ttl)
            hist = ip.icmp.stats.outhist
            if msg[0] < len(hist):
                hist[msg[0]] += 1
            return len(msg)
        # The checksum covers the source, so choose it here as ip6_output would.
        src = sock.laddr if sock.laddr != self.any else ip.source_for(dst, scope)
        base = pseudo_header_sum_v6(src, dst, 58, len(msg))
        msg[2:4] = internet_checksum(msg, base).to_bytes(2, "big")
        ip.output(bytes(msg), src, dst, 58, now, hlim=sock.ttl, iface=scope)
        ip.icmp.stats.count_out(msg[0])
        return len(msg)

    def input(self, ctx, payload) -> None:
        """Called by ICMP/ICMPv6 input for every message with a good checksum."""
        if not self.sockets:
            return
        message = bytes(payload)
        ip = ctx.ip
        ttl = ip.hop_limit if self.proto == 58 else ip.ttl
        for sock in list(self.sockets):
            sock.deliver(message, ip.src, ip.dst, ttl, ctx.iface)
