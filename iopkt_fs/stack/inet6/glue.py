"""The transports on IPv6: TCP and UDP entries of the IPv6 protocol switch.

TCP is one ``TcpLayer`` for both families (addresses are 4 or 16 bytes): ``Tcp6`` feeds
it IPv6 segments and ICMPv6 errors, and ``tcp_output`` is where the TCP glue
(tcp/inet.py) sends segments with 16-byte addresses. A segment with a partial checksum
(CHECKSUM_PARTIAL: the field holds the pseudo-header sum), maybe a super-segment of
``gso_size`` pieces, goes down with a ``gso.Tx`` (TCP at offset 40, its checksum at 16,
GSO_TCPV6): output6.py hands it to a TSO6 link whole or finishes it in software. UDP is the IPv4 layer's ``UdpProtocol`` itself, which speaks both
families (socket/udp.py). Raw ICMPv6 sockets are ``inet6.raw`` (socket/raw.py).
"""

from ..errors import StackError
from ..inet.gso import Tx
from ..socket.raw import RawIcmpProtocol
from ..wire.ipv6 import HEADER_LEN
from ..wire.virtio import GSO_NONE, GSO_TCPV6
from .ipv6 import Ipv6Layer

PROTO_TCP = 6


class Tcp6:
    proto = PROTO_TCP

    def __init__(self, stack):
        self.stack = stack
        self.broadcast_drops = 0

    def input(self, ctx, payload, now) -> None:
        if ctx.broadcast or ctx.link_broadcast:
            self.broadcast_drops += 1        # RFC 9293 3.9.1.3: never to a multicast address
            return
        self.stack.tcp.input(ctx.ip.src, ctx.ip.dst, payload, now, ctx.csum_ok)

    def ctlinput6(self, kind: str, mtu, quoted, now) -> None:
        self.stack.tcp.icmp_error(quoted.src, quoted.dst, quoted.payload, kind, mtu, now)


def tcp_output(inet6: Ipv6Layer, src: bytes, dst: bytes, segment: bytes, gso_size, now) -> None:
    """``gso_size`` None: the checksum is complete; 0: partial; > 0: partial, and the
    segment is a super-segment of that many payload bytes per piece."""
    tx = None if gso_size is None else Tx(HEADER_LEN, 16, GSO_TCPV6 if gso_size else GSO_NONE, gso_size)
    try:
        inet6.output(segment, src, dst, PROTO_TCP, now, tx=tx)
    except StackError as exc:
        inet6.output_failed(exc)


def install(stack) -> Ipv6Layer:
    inet6 = Ipv6Layer(stack)
    inet6.protosw[PROTO_TCP] = Tcp6(stack)
    inet6.udp = stack.inet.udp
    inet6.protosw[17] = stack.inet.udp
    inet6.raw = RawIcmpProtocol(inet6, width=16)     # raw ICMPv6 sockets (ping6)
    return inet6
