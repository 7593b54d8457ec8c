"""Raw ICMP sockets (BSD ``rip``, protocol 1 only): what ``ping`` is built on.

Every ICMP message the stack accepts (checksum good) is also copied to each raw socket
whose filter matches - bound address, connected peer - as BSD's rip_input does; the
kernel-side handling (echo replies, errors to TCP/UDP) goes on as usual. Sending takes a
whole ICMP message; its checksum is computed here (like Linux's ICMP datagram sockets),
so a caller needs only type, code, rest of header and data.
"""

import errno
import ipaddress
from collections import deque

from ..errors import StackError
from ..time import Instant
from ..wire.checksum import internet_checksum

ICMP = 1
RECV_QUEUE = 64     # datagrams; more are dropped (counted in ``drops``)


def _packed(addr) -> bytes:
    if isinstance(addr, bytes) and len(addr) == 4:
        return addr
    try:
        return ipaddress.IPv4Address(addr).packed
    except ValueError:
        raise StackError(errno.EINVAL, f"bad address {addr!r}") from None


class RawSocket:
    def __init__(self, proto: "RawIcmpProtocol"):
        self._proto = proto
        self.laddr = b"\0\0\0\0"
        self.faddr = b"\0\0\0\0"
        self.ttl: int | None = None
        self.rxq: deque = deque()
        self.drops = 0
        self.closed = False

    @property
    def readable(self) -> bool:
        return bool(self.rxq) or self.closed

    @property
    def writable(self) -> bool:
        return not self.closed

    @property
    def local(self) -> tuple[str, int]:
        return str(ipaddress.IPv4Address(self.laddr)), 0

    @property
    def remote(self) -> tuple[str, int] | None:
        return (str(ipaddress.IPv4Address(self.faddr)), 0) if self.faddr != b"\0\0\0\0" else None

    def bind(self, addr) -> None:
        addr = _packed(addr)
        if addr != b"\0\0\0\0" and not self._proto.ip.is_local(addr):
            raise StackError(errno.EADDRNOTAVAIL, f"{ipaddress.IPv4Address(addr)} is not a local address")
        self.laddr = addr

    def connect(self, addr) -> None:
        self.faddr = _packed(addr)

    def send(self, message: bytes, now: Instant, dst=None) -> int:
        if self.closed:
            raise StackError(errno.EBADF, "socket is closed")
        target = self.faddr if dst is None else _packed(dst)
        if target == b"\0\0\0\0":
            raise StackError(errno.EDESTADDRREQ, "no destination: connect first")
        if len(message) < 8:
            raise StackError(errno.EINVAL, "an ICMP message has at least 8 bytes")
        msg = bytearray(message)
        msg[2:4] = b"\0\0"
        csum = internet_checksum(msg)
        msg[2:4] = csum.to_bytes(2, "big")
        src = self.laddr if self.laddr != b"\0\0\0\0" else None
        self._proto.ip.output(bytes(msg), src, target, ICMP, now, ttl=self.ttl)
        hist = self._proto.ip.icmp.stats.outhist
        if msg[0] < len(hist):
            hist[msg[0]] += 1
        return len(message)

    def recv(self) -> tuple[bytes, str, int]:
        """(ICMP message, source address, TTL); EWOULDBLOCK when nothing is queued."""
        if not self.rxq:
            raise StackError(errno.EWOULDBLOCK, "no message")
        return self.rxq.popleft()

    def deliver(self, message: bytes, src: bytes, dst: bytes, ttl: int) -> None:
        if self.faddr != b"\0\0\0\0" and src != self.faddr:
            return
        if self.laddr != b"\0\0\0\0" and dst != self.laddr:
            return
        if len(self.rxq) >= RECV_QUEUE:
            self.drops += 1
            return
        self.rxq.append((message, str(ipaddress.IPv4Address(src)), ttl))
        self._proto.ip.stack.notify_socket(self)

    def close(self) -> None:
        self.closed = True
        if self in self._proto.sockets:
            self._proto.sockets.remove(self)


class RawIcmpProtocol:
    def __init__(self, ip):
        self.ip = ip
        self.sockets: list[RawSocket] = []

    def socket(self) -> RawSocket:
        sock = RawSocket(self)
        self.sockets.append(sock)
        return sock

    def input(self, ctx, payload) -> None:
        """Called by ICMP input for every message with a good checksum."""
        if not self.sockets:
            return
        message = bytes(payload)
        for sock in list(self.sockets):
            sock.deliver(message, ctx.ip.src, ctx.ip.dst, ctx.ip.ttl)
