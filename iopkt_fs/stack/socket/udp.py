"""UDP (RFC 768, RFC 1122 4.1): the protocol-switch entry and its sockets.

Theory of operation
-------------------
``UdpProtocol`` owns the binding table (``port -> [UdpSocket]``, in bind order) and is the
``protosw[17]`` entry: ``input`` demultiplexes a datagram to sockets, ``ctlinput`` turns
an ICMP error about a datagram we sent into a pending socket error.

Demultiplexing follows NetBSD's udp_input()/udp4_realinput():

* A datagram to a broadcast or multicast address goes to *every* socket whose local
  port matches, whose local address is the wildcard or that address, and whose remote
  end (if connected) matches the sender. The search stops after a socket that has
  neither SO_REUSEADDR nor SO_REUSEPORT, as in BSD.
* A unicast datagram goes to the one best match: connected sockets whose four-tuple
  matches beat sockets bound to the address, which beat wildcard binds; among equals,
  the most recent bind wins (BSD inserts at the head of its hash chain). With the
  ``reuseport_unicast`` tcpip option (QNX io-pkt, reference/qnx.md §1.3) a unicast
  datagram is delivered, like a broadcast, to every matching socket that set
  SO_REUSEPORT.
* No socket: ``udpstat.noport`` and ICMP port unreachable (RFC 1122 4.1.3.1), except
  for broadcasts (``noportbcast``, no ICMP: RFC 1122 3.2.2).

Binding follows in_pcbbind(): a second bind to the same port needs SO_REUSEPORT on both
sockets when the local addresses overlap (equal, or either is the wildcard), or
SO_REUSEADDR on the new socket when the addresses differ (a specific address next to
the wildcard). Port 0 picks an ephemeral port from NetBSD's anonymous range 49152-65535,
starting at a point drawn from ``stack.rng``.

A socket's receive queue holds at most ``rcvbuf`` bytes of data (SO_RCVBUF, default
``net.inet.udp.recvspace``); a datagram that does not fit is dropped and counted in
``udpstat.fullsock`` (sbappendaddr failing).

Readiness: every time a socket becomes readable, or gets an error, the socket calls
``stack.notify_socket(self)``; the file layer collects the set with
``stack.take_socket_events()`` after each turn and wakes the readers of those sockets.
A socket is always writable (UDP has no send buffer to fill).

Both families: addresses are 4 or 16 bytes and the same protocol object is entry 17 of
the IPv4 and the IPv6 protocol switches. A socket bound to the wildcard ``None``
(0.0.0.0) hears both families, one bound to :: only IPv6, one bound to an address only
that address's family; each datagram goes out through the layer of its destination's
family (``layer``). Over IPv6 the checksum is mandatory both ways (RFC 8200 8.1) and an
unreachable port is answered with ICMPv6 (RFC 4443 3.1 code 4). A socket bound to ::
with IPV6_V6ONLY cleared (the default comes from ``net.inet6.ip6.v6only``, 1 on QNX)
hears IPv4 as well and shows those peers IPv4-mapped (opts.py); ``scope`` (connect,
sendto) is the interface of a link-local peer.
"""

import errno
import ipaddress
from collections import deque

from ..errors import StackError
from ..mbuf import MT_HEADER, MT_SONAME
from ..time import Instant
from ..wire.errors import Malformed
from ..wire.icmp import DstUnreachableCode
from ..wire.ipv4 import ANY, BROADCAST
from ..wire.udp import UdpPacket, UdpRepr
from ..inet.stats import (
    ICMP_TIMXCEED, ICMP_UNREACH, UNREACH_HOST, UNREACH_NEEDFRAG, UNREACH_NET, UNREACH_PORT,
    UNREACH_PROTOCOL, UdpStat,
)
from . import opts

ANON_PORT_MIN = 49152          # NetBSD net.inet.ip.anonportmin
ANON_PORT_MAX = 65535          # NetBSD net.inet.ip.anonportmax
RESERVED_PORTS = 1024          # below this binding needs privilege (IPPORT_RESERVED)
MAX_DATAGRAM = 65535 - 20 - 8  # what one IPv4 datagram can carry

# NetBSD inetctlerrmap[]: what an ICMP error becomes on the socket.
_CTL_ERRNO = {
    (ICMP_UNREACH, UNREACH_NET): errno.EHOSTUNREACH,
    (ICMP_UNREACH, UNREACH_HOST): errno.EHOSTUNREACH,
    (ICMP_UNREACH, UNREACH_PROTOCOL): errno.ECONNREFUSED,
    (ICMP_UNREACH, UNREACH_PORT): errno.ECONNREFUSED,
    (ICMP_UNREACH, UNREACH_NEEDFRAG): errno.EMSGSIZE,
    (ICMP_TIMXCEED, 0): errno.EHOSTUNREACH,
}
for _code in (DstUnreachableCode.NET_UNKNOWN, DstUnreachableCode.HOST_UNKNOWN,
              DstUnreachableCode.SOURCE_HOST_ISOLATED, DstUnreachableCode.NET_PROHIBITED,
              DstUnreachableCode.HOST_PROHIBITED, DstUnreachableCode.NET_UNREACHABLE_TOS,
              DstUnreachableCode.HOST_UNREACHABLE_TOS, DstUnreachableCode.COMM_PROHIBITED):
    _CTL_ERRNO[(ICMP_UNREACH, int(_code))] = errno.EHOSTUNREACH

# Shorthand names for (level, name) (opts.py numbers), what tests and tools may pass.
_OPTION_NAMES = {
    "SO_BROADCAST": (opts.SOL_SOCKET, opts.SO_BROADCAST), "SO_REUSEADDR": (opts.SOL_SOCKET, opts.SO_REUSEADDR),
    "SO_REUSEPORT": (opts.SOL_SOCKET, opts.SO_REUSEPORT), "SO_RCVBUF": (opts.SOL_SOCKET, opts.SO_RCVBUF),
    "SO_SNDBUF": (opts.SOL_SOCKET, opts.SO_SNDBUF), "SO_ERROR": (opts.SOL_SOCKET, opts.SO_ERROR),
    "IP_TTL": (opts.IPPROTO_IP, opts.IP_TTL), "IP_TOS": (opts.IPPROTO_IP, opts.IP_TOS),
    "IP_ADD_MEMBERSHIP": (opts.IPPROTO_IP, opts.IP_ADD_MEMBERSHIP),
    "IP_DROP_MEMBERSHIP": (opts.IPPROTO_IP, opts.IP_DROP_MEMBERSHIP),
    "IPV6_JOIN_GROUP": (opts.IPPROTO_IPV6, opts.IPV6_JOIN_GROUP),
    "IPV6_LEAVE_GROUP": (opts.IPPROTO_IPV6, opts.IPV6_LEAVE_GROUP),
    "IPV6_UNICAST_HOPS": (opts.IPPROTO_IPV6, opts.IPV6_UNICAST_HOPS),
    "IPV6_TCLASS": (opts.IPPROTO_IPV6, opts.IPV6_TCLASS), "IPV6_V6ONLY": (opts.IPPROTO_IPV6, opts.IPV6_V6ONLY),
}
SOCKET_OPTIONS = tuple(_OPTION_NAMES)
# Boolean options and the attribute each sets.
_FLAGS = {
    (opts.SOL_SOCKET, opts.SO_BROADCAST): "broadcast", (opts.SOL_SOCKET, opts.SO_REUSEADDR): "reuseaddr",
    (opts.SOL_SOCKET, opts.SO_REUSEPORT): "reuseport",
}


ANY6 = bytes(16)
_WILD = (ANY, ANY6)


def _addr(value, *, allow_none: bool = True) -> bytes:
    if value is None or value == "" or value == "*":
        if allow_none:
            return ANY
    try:
        if isinstance(value, bytes) and len(value) in (4, 16):
            return value
        return ipaddress.ip_address(value).packed
    except (ValueError, ipaddress.AddressValueError):
        raise StackError(errno.EINVAL, f"bad IP address {value!r}") from None


def _overlap(a: bytes, b: bytes, a_dual: bool = False, b_dual: bool = False) -> bool:
    """Do two local addresses take some datagram in common? (ANY: both families; :: both
    when the socket has IPV6_V6ONLY cleared, ``*_dual``.)"""
    return a == b or a == ANY or b == ANY or (a == ANY6 and (len(b) == 16 or a_dual)) \
        or (b == ANY6 and (len(a) == 16 or b_dual))


def _port(value) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise StackError(errno.EINVAL, f"bad port {value!r}")
    return value


def _text(addr: bytes) -> str:
    if len(addr) == 16:
        return opts.addr_text(addr)
    return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"   # 5x cheaper than ipaddress, per datagram


class UdpSocket:
    """One UDP endpoint. Made by ``UdpProtocol.socket()``; methods raise ``StackError``."""

    def __init__(self, proto: "UdpProtocol"):
        self._proto = proto
        self.laddr = ANY
        self.lport = 0
        self.faddr = ANY
        self.fport = 0
        self.broadcast = False
        self.reuseaddr = False
        self.reuseport = False
        self.ttl: int | None = None
        self.tos = 0
        self.rcvbuf = proto.ip.stack.sysctl.get("net.inet.udp.recvspace")
        self.sndbuf = proto.ip.stack.sysctl.get("net.inet.udp.sendspace")
        self.rxq: deque = deque()        # (data, (addr, port))
        self.rx_bytes = 0
        self.error = 0                   # so_error: reported (and cleared) by the next call
        self.groups: list[bytes] = []    # multicast groups joined through this socket
        self.groups6: list[tuple] = []   # (interface, group) joined with IPV6_JOIN_GROUP
        self.closed = False
        self.bound = False
        # IPV6_V6ONLY (opts.py): a socket bound to :: hears IPv4 too only when cleared.
        self.v6only = opts.v6only_default(proto.ip.stack)
        self.af6 = False                 # addressed as IPv6: IPv4 peers shown IPv4-mapped
        self.scope = None                # the interface of a link-local peer (connect)

    # -- state -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.fport != 0

    @property
    def local(self) -> tuple[str, int]:
        return _text(self.local_address[0]), self.lport

    @property
    def remote(self) -> tuple[str, int] | None:
        return (_text(self._shown(self.faddr)), self.fport) if self.connected else None

    @property
    def local_address(self) -> tuple[bytes, int]:
        """(address bytes, port); an IPv6 socket's IPv4 side as an IPv4-mapped address."""
        if self.laddr == ANY and self.af6:
            return ANY6, self.lport
        return self._shown(self.laddr), self.lport

    @property
    def remote_address(self) -> tuple[bytes, int] | None:
        return (self._shown(self.faddr), self.fport) if self.connected else None

    def _shown(self, addr: bytes) -> bytes:
        return opts.mapped(addr) if self.af6 and len(addr) == 4 and addr != ANY else addr

    def _peer(self, addr: bytes) -> bytes:
        """A destination as the IP layer takes it: IPv4-mapped -> IPv4 (dual-stack only)."""
        if opts.is_mapped(addr):
            if self.v6only:
                raise StackError(errno.EINVAL, f"{_text(addr)}: IPv4-mapped peer on an IPV6_V6ONLY socket")
            return addr[12:]
        return addr

    @property
    def readable(self) -> bool:
        return bool(self.rxq) or bool(self.error) or self.closed

    @property
    def writable(self) -> bool:
        return not self.closed

    def _check_open(self) -> None:
        if self.closed:
            raise StackError(errno.EBADF, "socket is closed")

    def _take_error(self) -> None:
        if self.error:
            err, self.error = self.error, 0
            raise StackError(err)

    # -- options -----------------------------------------------------------------------

    def setsockopt(self, level, name, value=None, now: Instant = 0) -> None:
        """``setsockopt(level, name, value)`` with opts.py's numbers (the names of
        ``SOCKET_OPTIONS`` are accepted for ``level`` as a shorthand: ``("SO_BROADCAST", 1)``)."""
        self._check_open()
        if isinstance(level, str):
            level, name, value = (*_OPTION_NAMES.get(level, (None, level)), name)
        key = (level, name)
        if key in _FLAGS:
            setattr(self, _FLAGS[key], bool(value))
        elif key in ((opts.SOL_SOCKET, opts.SO_RCVBUF), (opts.SOL_SOCKET, opts.SO_SNDBUF)):
            if not isinstance(value, int) or not 1 <= value <= (1 << 24):
                raise StackError(errno.EINVAL, f"buffer size {value!r} out of range")
            if name == opts.SO_RCVBUF:
                self.rcvbuf = value
            else:
                self.sndbuf = value
        elif key in ((opts.IPPROTO_IP, opts.IP_TTL), (opts.IPPROTO_IPV6, opts.IPV6_UNICAST_HOPS)):
            if not isinstance(value, int) or not 1 <= value <= 255:
                raise StackError(errno.EINVAL, f"hop limit {value!r} out of range 1..255")
            self.ttl = value
        elif key in ((opts.IPPROTO_IP, opts.IP_TOS), (opts.IPPROTO_IPV6, opts.IPV6_TCLASS)):
            if not isinstance(value, int) or not 0 <= value <= 255:
                raise StackError(errno.EINVAL, f"traffic class {value!r} out of range")
            self.tos = value
        elif key == (opts.IPPROTO_IPV6, opts.IPV6_V6ONLY):
            if self.bound:
                raise StackError(errno.EINVAL, "IPV6_V6ONLY must be set before bind")   # in6_pcbbind
            self.v6only = bool(value)
        elif key == (opts.IPPROTO_IP, opts.IP_ADD_MEMBERSHIP):
            group = self._proto.ip.join_group(value)
            self.groups.append(group)
        elif key == (opts.IPPROTO_IP, opts.IP_DROP_MEMBERSHIP):
            group = _addr(value, allow_none=False)
            if group not in self.groups:
                raise StackError(errno.EADDRNOTAVAIL, f"not a member of {_text(group)}")
            self.groups.remove(group)
            self._proto.ip.leave_group(group)
        elif key == (opts.IPPROTO_IPV6, opts.IPV6_JOIN_GROUP):
            inet6, membership = self._mreq6(value)
            if membership in self.groups6:
                raise StackError(errno.EADDRINUSE, f"already a member of {_text(membership[1])}")
            inet6.join_group(*membership)           # the first join is reported (MLD)
            self.groups6.append(membership)
        elif key == (opts.IPPROTO_IPV6, opts.IPV6_LEAVE_GROUP):
            inet6, membership = self._mreq6(value)
            if membership not in self.groups6:
                raise StackError(errno.EADDRNOTAVAIL, f"not a member of {_text(membership[1])}")
            self.groups6.remove(membership)
            inet6.leave_group(*membership)
        else:
            raise StackError(errno.ENOPROTOOPT, f"option {level}/{name} not supported")

    def _mreq6(self, value):
        """RFC 3493 5.2's ipv6_mreq as ``(group, ifindex | ifname | Interface)``: the
        layer and (interface, group). Interface 0 is the one a packet to the group would
        leave by (KAME in6_setmoptions: the route, here the zone of a scoped group)."""
        try:
            group, which = value
        except (TypeError, ValueError):
            raise StackError(errno.EINVAL, f"ipv6_mreq {value!r}: want (group, interface)") from None
        group = _addr(group, allow_none=False)
        if len(group) != 16 or group[0] != 0xFF:
            raise StackError(errno.EINVAL, f"{_text(group)} is not an IPv6 multicast group")
        inet6 = self._proto.layer(group)
        stack = inet6.stack
        if which in (0, None):
            try:
                iface = inet6.route_to(group)[0]
            except StackError:
                raise StackError(errno.EADDRNOTAVAIL, f"no interface for {_text(group)}") from None
        elif isinstance(which, int):
            iface = stack.interfaces.get(which)
            if iface is None:
                raise StackError(errno.ENXIO, f"no interface with index {which}")
        else:
            iface = stack.interface(which) if isinstance(which, str) else which
        return inet6, (iface, group)

    def getsockopt(self, level, name=None) -> int:
        if isinstance(level, str):
            level, name = _OPTION_NAMES.get(level, (None, level))
        key = (level, name)
        if key == (opts.SOL_SOCKET, opts.SO_ERROR):
            err, self.error = self.error, 0
            return err
        if key in _FLAGS:
            return int(getattr(self, _FLAGS[key]))
        if key == (opts.IPPROTO_IPV6, opts.IPV6_V6ONLY):
            return int(self.v6only)
        values = {
            (opts.SOL_SOCKET, opts.SO_RCVBUF): self.rcvbuf, (opts.SOL_SOCKET, opts.SO_SNDBUF): self.sndbuf,
            (opts.IPPROTO_IP, opts.IP_TOS): self.tos, (opts.IPPROTO_IPV6, opts.IPV6_TCLASS): self.tos,
        }
        if key in values:
            return values[key]
        if key == (opts.IPPROTO_IP, opts.IP_TTL):
            return self.ttl or self._proto.ip.stack.sysctl.get("net.inet.ip.ttl")
        if key == (opts.IPPROTO_IPV6, opts.IPV6_UNICAST_HOPS):
            return self.ttl or self._proto.ip.stack.sysctl.get("net.inet6.ip6.hlim")
        raise StackError(errno.ENOPROTOOPT, f"option {level}/{name} not supported")

    # -- calls --------------------------------------------------------------------------

    def bind(self, addr=None, port: int = 0, *, privileged: bool = True) -> tuple[str, int]:
        """bind(2). ``addr`` None/"0.0.0.0" is the wildcard; ``port`` 0 picks one.

        Raises EINVAL (already bound), EADDRNOTAVAIL (not our address), EACCES (port
        below 1024 without privilege), EADDRINUSE.
        """
        self._check_open()
        if self.bound:
            raise StackError(errno.EINVAL, "socket is already bound")
        laddr = _addr(addr)
        port = _port(port)
        if len(laddr) == 16:
            self.af6 = True
            if opts.is_mapped(laddr):
                laddr = self._peer(laddr)
        self._proto.bind(self, laddr, port, privileged)
        return self.local

    def connect(self, addr, port: int | None = None, now: Instant = 0, *, scope=None) -> None:
        """connect(2): fix the peer (and our address toward it). ``addr`` None disconnects.

        Raises EADDRNOTAVAIL (port 0), EHOSTUNREACH/ENETUNREACH (no route), EADDRINUSE.
        """
        self._check_open()
        proto = self._proto
        if addr is None:                     # AF_UNSPEC: dissolve the association
            self.faddr, self.fport = ANY, 0
            if self.bound and proto.layer(self.laddr).is_local(self.laddr) and self._implicit_laddr:
                self.laddr = ANY
            return
        faddr = _addr(addr, allow_none=False)
        port = _port(port if port is not None else 0)
        if port == 0:
            raise StackError(errno.EADDRNOTAVAIL, "cannot connect to port 0")
        if len(faddr) == 16:
            self.af6 = True
            faddr = self._peer(faddr)
        if faddr == ANY:
            # in_pcbconnect(): INADDR_ANY means "this host".
            faddr = proto.ip.local_addresses()[0] if proto.ip.local_addresses() else bytes((127, 0, 0, 1))
        ip = proto.layer(faddr)
        laddr = self.laddr
        implicit = False
        if laddr not in _WILD and len(laddr) != len(faddr):
            raise StackError(errno.EINVAL, "the peer is not of the bound address's family")
        if laddr == ANY6 and len(faddr) == 4 and self.v6only:
            raise StackError(errno.EINVAL, "a socket bound to :: speaks IPv6 only")
        if laddr in _WILD:
            if len(faddr) == 4 and (faddr == BROADCAST or ip.is_broadcast_or_multicast(faddr)):
                laddr = ANY
            else:
                laddr = ip.source_for(faddr, scope) if len(faddr) == 16 else ip.source_for(faddr)
                implicit = True
        for other in proto.ports.get(self.lport, ()) if self.bound else ():
            if other is not self and other.connected and other.faddr == faddr and other.fport == port \
                    and other.laddr == laddr:
                raise StackError(errno.EADDRINUSE, "that four-tuple is in use")
        if not self.bound:
            proto.bind(self, ANY, 0, True)
        self.laddr = laddr
        self._implicit_laddr = implicit
        self.faddr, self.fport = faddr, port
        self.scope = scope if len(faddr) == 16 else None

    _implicit_laddr = False

    def send(self, data, now: Instant) -> int:
        self._check_open()
        if not self.connected:
            raise StackError(errno.EDESTADDRREQ, "socket is not connected")
        return self._output(data, self.faddr, self.fport, now, self.scope)

    def sendto(self, data, addr, port: int, now: Instant, *, scope=None) -> int:
        """sendto(2): EISCONN on a connected socket, as BSD answers."""
        self._check_open()
        if self.connected:
            raise StackError(errno.EISCONN, "socket is connected")
        faddr = _addr(addr, allow_none=False)
        port = _port(port)
        if port == 0:
            raise StackError(errno.EADDRNOTAVAIL, "cannot send to port 0")
        return self._output(data, self._peer(faddr), port, now, scope)

    def _output(self, data, faddr: bytes, fport: int, now: Instant, scope=None) -> int:
        proto = self._proto
        ip = proto.layer(faddr)
        v6 = len(faddr) == 16
        self._take_error()
        n = len(data)
        if n > MAX_DATAGRAM or n > self.sndbuf:
            raise StackError(errno.EMSGSIZE, f"datagram of {n} bytes is too long")
        if self.laddr not in _WILD and len(self.laddr) != len(faddr) or (self.laddr == ANY6 and not v6
                                                                         and self.v6only):
            raise StackError(errno.EINVAL, "the peer is not of the bound address's family")
        if not v6 and ip.is_broadcast_or_multicast(faddr) and not 224 <= faddr[0] < 240 and not self.broadcast:
            # BSD ip_output(): a broadcast needs SO_BROADCAST.
            raise StackError(errno.EACCES, "broadcast needs SO_BROADCAST")
        if not self.bound:
            proto.bind(self, ANY, 0, True)
        src = self.laddr
        if src in _WILD:
            if faddr == BROADCAST:
                # The checksum covers the source, so pick it here as ip_output will.
                iface, _, _ = ip.route_to(faddr)
                src = ip.interface_address(iface) or ANY
            elif v6:
                src = ip.source_for(faddr, scope)
            else:
                src = ip.source_for(faddr)
        datagram = UdpRepr(self.lport, fport, bytes(data)).to_bytes(
            src, faddr, checksum=v6 or bool(proto.checksum_node.value))
        # A limited broadcast from a socket bound to one of our addresses leaves by that
        # address's interface (BSD picks it from the bound address as well).
        out = ip.interface_of(self.laddr) if faddr == BROADCAST else scope if v6 else None
        ip.output(datagram, src, faddr, proto.proto, now, ttl=self.ttl, tos=self.tos, iface=out)
        proto.stats.opackets += 1
        return n

    def recvfrom(self) -> tuple[bytes, tuple[str, int]]:
        """One datagram and its sender's (address text, port); EWOULDBLOCK when none is queued.

        A pending error (ECONNREFUSED after a port unreachable ...) is reported once the
        queue is empty, and then cleared (soreceive()).
        """
        data, (addr, port, _iface) = self.recvmsg()
        return data, (_text(addr), port)

    def recvmsg(self) -> tuple[bytes, tuple[bytes, int, object]]:
        """One datagram and its sender as (address bytes, port, arrival interface)."""
        if self.rxq:
            data, (addr, port, iface) = self.rxq.popleft()
            self.rx_bytes -= len(data)
            self._release(data)
            return data, (self._shown(addr), port, iface)
        self._take_error()
        self._check_open()
        raise StackError(errno.EWOULDBLOCK, "no datagram queued")

    def recv(self) -> bytes:
        return self.recvfrom()[0]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for group in self.groups:
            self._proto.ip.leave_group(group)
        self.groups.clear()
        for iface, group in self.groups6:
            if self._proto.ip.stack.interfaces.get(iface.index) is iface:   # not detached since
                self._proto.layer(group).leave_group(iface, group)
        self.groups6.clear()
        self._proto.unbind(self)
        for data, _ in self.rxq:
            self._release(data)
        self.rxq.clear()
        self.rx_bytes = 0

    # -- from the protocol -------------------------------------------------------------

    def _enqueue(self, data: bytes, sender: tuple[bytes, int], iface=None) -> bool:
        if self.rx_bytes + len(data) > self.rcvbuf:
            return False
        # sbappendaddr: the datagram's chain and an MT_SONAME mbuf for the sender; no
        # buffers -> refused like a full buffer (udpstat.fullsock, NetBSD udp_input).
        pool = self._proto.ip.stack.mbufs
        if not pool.take(len(data), MT_HEADER):
            return False
        if not pool.take(0, MT_SONAME):
            pool.give(len(data), MT_HEADER)
            return False
        was_readable = bool(self.rxq)
        self.rxq.append((data, (sender[0], sender[1], iface)))
        self.rx_bytes += len(data)
        if not was_readable:
            self._proto.ip.stack.notify_socket(self)
        return True

    def _release(self, data: bytes) -> None:
        pool = self._proto.ip.stack.mbufs
        pool.give(len(data), MT_HEADER)
        pool.give(0, MT_SONAME)

    def _set_error(self, err: int) -> None:
        self.error = err
        self._proto.ip.stack.notify_socket(self)

    def __repr__(self) -> str:
        peer = f" -> {_text(self.faddr)}:{self.fport}" if self.connected else ""
        return f"<UdpSocket {_text(self.laddr)}:{self.lport}{peer}>"


class UdpProtocol:
    """The UDP entry of the protocol switch, and the table of bound sockets."""

    proto = 17

    def __init__(self, ip):
        self.ip = ip
        self.stats = UdpStat()
        self.ports: dict[int, list[UdpSocket]] = {}
        self.sockets: list[UdpSocket] = []
        self.checksum_node = ip.stack.sysctl.node("net.inet.udp.checksum")

    def socket(self) -> UdpSocket:
        sock = UdpSocket(self)
        self.sockets.append(sock)
        return sock

    # -- binding ------------------------------------------------------------------------

    def layer(self, addr: bytes):
        """The IP layer of ``addr``'s family (EAFNOSUPPORT for IPv6 on a v4 variant)."""
        if len(addr) == 16:
            inet6 = self.ip.stack.inet6
            if inet6 is None:
                raise StackError(errno.EAFNOSUPPORT, f"{self.ip.stack.variant.name} has no IPv6")
            return inet6
        return self.ip

    def _conflict(self, sock: UdpSocket, laddr: bytes, port: int) -> bool:
        multicast = 224 <= laddr[0] < 240 or laddr[0] == 0xFF
        for other in self.ports.get(port, ()):
            if other is sock:
                continue
            same = other.laddr == laddr
            overlap = _overlap(other.laddr, laddr, not other.v6only, not sock.v6only)
            if not overlap:
                continue
            if sock.reuseport and other.reuseport:
                continue
            if multicast and sock.reuseaddr and other.reuseaddr:
                continue      # SO_REUSEADDR means SO_REUSEPORT for multicast (in_pcbbind)
            if not same and sock.reuseaddr:
                continue      # a specific address beside a wildcard, asked for
            return True
        return False

    def bind(self, sock: UdpSocket, laddr: bytes, port: int, privileged: bool) -> None:
        ip = self.layer(laddr)
        if laddr not in _WILD and not ip.is_local(laddr) and not ip.is_broadcast_or_multicast(laddr):
            raise StackError(errno.EADDRNOTAVAIL, f"{_text(laddr)} is not a local address")
        if port == 0:
            port = self._ephemeral(sock, laddr)
        else:
            if port < RESERVED_PORTS and not privileged:
                raise StackError(errno.EACCES, f"port {port} needs privilege")
            if self._conflict(sock, laddr, port):
                raise StackError(errno.EADDRINUSE, f"{_text(laddr)}:{port} is in use")
        sock.laddr, sock.lport, sock.bound = laddr, port, True
        self.ports.setdefault(port, []).append(sock)

    def _ephemeral(self, sock: UdpSocket, laddr: bytes) -> int:
        span = ANON_PORT_MAX - ANON_PORT_MIN + 1
        start = self.ip.stack.rng.randrange(span)
        for i in range(span):
            port = ANON_PORT_MIN + (start + i) % span
            if port not in self.ports or not self._conflict(sock, laddr, port):
                return port
        raise StackError(errno.EADDRINUSE, "no ephemeral port left")

    def unbind(self, sock: UdpSocket) -> None:
        bound = self.ports.get(sock.lport)
        if bound is not None and sock in bound:
            bound.remove(sock)
            if not bound:
                del self.ports[sock.lport]
        if sock in self.sockets:
            self.sockets.remove(sock)
        sock.bound = False

    # -- input ---------------------------------------------------------------------------

    def input(self, ctx, payload, now: Instant) -> None:
        st = self.stats
        st.ipackets += 1
        try:
            pkt = UdpPacket.new_checked(payload)
        except Malformed:
            if len(payload) < 8:
                st.hdrops += 1
            else:
                st.badlen += 1
            return
        ip = ctx.ip
        src, dst = ip.src, ip.dst
        if len(pkt) != len(payload):
            # RFC 1122 4.1.3.4 lets the IP length exceed the UDP one; the rest is ignored.
            pass
        # A checksum the link vouched for (or left partial: virtio NEEDS_CSUM) is not
        # verified. Otherwise IPv4's 0 means none was computed (RFC 768); IPv6's 0 is
        # invalid (RFC 8200 8.1) whatever the link says, so it is dropped here (NetBSD
        # udp6_input counts it as udp6s_nosum) and other IPv6 sums are always verified.
        if len(src) == 16 and pkt.checksum == 0:
            st.badsum += 1
            return
        if not ctx.csum_ok and (pkt.checksum or len(src) == 16) \
                and not pkt.verify_checksum(src, dst):
            st.badsum += 1
            return
        sport = pkt.src_port
        dport = pkt.dst_port
        bound = self.ports.get(dport)
        if ctx.broadcast:
            delivered = False
            if bound:
                data = bytes(pkt.payload)
                for sock in reversed(bound):
                    if self._matches(sock, src, sport, dst):
                        delivered = True
                        if not sock._enqueue(data, (src, sport), ctx.iface):
                            st.fullsock += 1
                        if not (sock.reuseport or sock.reuseaddr):
                            break
            if not delivered:
                st.noportbcast += 1
                st.noport += 1
            return
        target = None
        best = -1
        if bound:
            for sock in reversed(bound):      # most recent bind first (BSD hash order)
                if not self._matches(sock, src, sport, dst):
                    continue
                score = (2 if sock.connected else 0) + (1 if sock.laddr not in _WILD else 0)
                if score > best:
                    best, target = score, sock
        if target is None:
            st.noport += 1
            if len(src) == 16:    # RFC 4443 3.1: destination unreachable, port unreachable
                self.ip.stack.inet6.icmp.error(ctx.datagram, 1, 4, now, in_iface=ctx.iface,
                                               link_multicast=ctx.link_broadcast)
            else:
                self.ip.icmp.error(ctx.datagram, ICMP_UNREACH, UNREACH_PORT, now,
                                   link_broadcast=ctx.link_broadcast, in_iface=ctx.iface)
            return
        data = bytes(pkt.payload)
        if self.ip.stack.config.reuseport_unicast and target.reuseport:
            # QNX reuseport_unicast: every SO_REUSEPORT socket on the port gets a copy.
            for sock in reversed(bound):
                if sock.reuseport and self._matches(sock, src, sport, dst):
                    if not sock._enqueue(data, (src, sport), ctx.iface):
                        st.fullsock += 1
            return
        if not target._enqueue(data, (src, sport), ctx.iface):
            st.fullsock += 1

    @staticmethod
    def _matches(sock: UdpSocket, src: bytes, sport: int, dst: bytes) -> bool:
        laddr = sock.laddr
        if laddr != dst and laddr != ANY and not (laddr == ANY6 and (len(dst) == 16 or not sock.v6only)):
            return False
        if sock.fport and (sock.faddr != src or sock.fport != sport):
            return False
        return True

    def ctlinput(self, icmp_type: int, code: int, quoted, now: Instant) -> None:
        """An ICMP error about a datagram we sent: tell the connected socket (in_pcbnotify).

        Unconnected sockets are not told: they cannot know which of their peers failed
        (BSD and Linux agree; RFC 1122 4.1.3.3 leaves it to the application).
        """
        err = _CTL_ERRNO.get((icmp_type, code))
        if err is None:
            return
        head = quoted.payload
        sport = (head[0] << 8) | head[1]
        dport = (head[2] << 8) | head[3]
        src, dst = quoted.src, quoted.dst
        for sock in self.ports.get(sport, ()):
            if sock.connected and sock.faddr == dst and sock.fport == dport \
                    and (sock.laddr in _WILD or sock.laddr == src):
                sock._set_error(err)
