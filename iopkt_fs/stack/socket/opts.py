"""What every core socket speaks: socket options as ``(level, name)`` and addresses as bytes.

TCP, UDP and raw sockets all take ``setsockopt(level, name, value)`` and
``getsockopt(level, name)`` with these numbers (Linux's, as tcp/socket.py has always
used: what a file layer or an in-process caller on Linux passes through), and addresses
as ``bytes`` of 4 (IPv4) or 16 (IPv6) with an int port; a link-local IPv6 peer may
carry its zone as ``scope=`` (the Interface, RFC 4007's ``sin6_scope_id``).

``IPV6_V6ONLY`` (RFC 3493 5.3): a socket bound to :: takes IPv6 only unless it is
cleared; a new socket starts from ``net.inet6.ip6.v6only`` (1 on QNX and NetBSD, so
unlike Linux an AF_INET6 wildcard does not hear IPv4 by default). IPv4 peers of a
dual-stack socket appear as IPv4-mapped addresses (``::ffff:a.b.c.d``).
"""

import ipaddress

SOL_SOCKET = 1
SO_REUSEADDR = 2
SO_ERROR = 4
SO_BROADCAST = 6
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_KEEPALIVE = 9
SO_REUSEPORT = 15

IPPROTO_IP = 0
IP_TOS = 1
IP_TTL = 2
IP_ADD_MEMBERSHIP = 35
IP_DROP_MEMBERSHIP = 36

IPPROTO_TCP = 6
TCP_NODELAY = 1

IPPROTO_IPV6 = 41
IPV6_UNICAST_HOPS = 16
IPV6_MULTICAST_HOPS = 18
IPV6_JOIN_GROUP = 20
IPV6_LEAVE_GROUP = 21
IPV6_V6ONLY = 26
IPV6_TCLASS = 67

ANY4 = bytes(4)
ANY6 = bytes(16)
MAPPED_PREFIX = bytes(10) + b"\xff\xff"     # ::ffff:0:0/96 (RFC 4291 2.5.5.2)


def is_mapped(addr: bytes) -> bool:
    return len(addr) == 16 and addr[:12] == MAPPED_PREFIX


def mapped(addr4: bytes) -> bytes:
    return MAPPED_PREFIX + addr4


def unmapped(addr: bytes) -> bytes:
    """An IPv4-mapped IPv6 address as the IPv4 address it stands for; others unchanged."""
    return addr[12:] if is_mapped(addr) else addr


def v6only_default(stack) -> bool:
    sysctl = stack.sysctl
    return "net.inet6.ip6.v6only" not in sysctl or bool(sysctl.get("net.inet6.ip6.v6only"))


def addr_text(addr: bytes) -> str:
    if len(addr) == 16:
        if is_mapped(addr):
            return "::ffff:" + addr_text(addr[12:])      # RFC 5952 5: mixed notation
        return ipaddress.IPv6Address(addr).compressed
    return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
