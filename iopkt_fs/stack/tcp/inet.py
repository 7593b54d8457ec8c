"""TCP on the IPv4 layer: the protocol-switch entry for protocol 6 (BSD ``inetsw``).

``TcpProtosw.install(stack)`` builds the ``TcpLayer`` with the stack's RNG, sysctl tree and
log, registers itself as ``stack.inet.protosw[6]``, joins ``stack.layers`` (so the
runtime's ``poll``/``poll_at`` reach the TCP timers) and reports readiness through
``stack.notify_socket``. The TCP core itself knows nothing of IPv4: everything it needs
goes through the four callables given here.

* input: ``input(ctx, payload, now)``; TCP never answers datagrams sent to a broadcast or
  multicast address (RFC 9293 3.9.1.3 / RFC 1122 4.2.3.10): a counted drop.
* output: ``inet.output(segment, src, dst, 6, now)``; a routing failure is the IP
  layer's counted drop (``output_failed``) and TCP's retransmission timer recovers.
* ctlinput: ICMP errors quoting one of our segments; fragmentation-needed carries no MTU
  through the switch's ``ctlinput(type, code, quoted, now)``, so the next lower RFC 1191
  plateau below the route MTU is used.
* source address and MTU: ``inet.source_for(dst)`` and the route's (or interface's) MTU.
"""

from __future__ import annotations

from ..errors import StackError
from ..iface.interface import IFT_ETHER
from ..inet.gso import Tx
from ..inet.ipv4 import GSO_MAX
from ..wire.virtio import GSO_NONE, GSO_TCPV4
from ..time import Instant
from .layer import TcpLayer

PROTO = 6
ICMP_UNREACH = 3
ICMP_TIMXCEED = 11
UNREACH_PROTOCOL, UNREACH_PORT, UNREACH_NEEDFRAG = 2, 3, 4
# RFC 1191 7.1: MTU plateaus for routers that do not report the next-hop MTU.
PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)


def _tcp6_output():
    """inet6/glue.py's tcp_output, imported on first use (inet6 imports this package)."""
    global _TCP6_OUTPUT
    if _TCP6_OUTPUT is None:
        from ..inet6.glue import tcp_output   # noqa: PLC0415 - import cycle
        _TCP6_OUTPUT = tcp_output
    return _TCP6_OUTPUT


_TCP6_OUTPUT = None


_TX_PLAIN = Tx(20, 16, GSO_NONE, 0)     # a partial checksum, no segmentation


class TcpProtosw:
    proto = PROTO

    def __init__(self, stack, inet=None, **layer_options):
        self.stack = stack
        self.inet = inet if inet is not None else stack.inet
        self.layer = TcpLayer(self._output, stack.rng, sysctl=stack.sysctl, log=stack.log,
                              source_address=self._source, route_mtu=self._mtu,
                              notify=getattr(stack, "notify_socket", None),
                              route_tso=self._tso, csum_offload=True, **layer_options)
        self.broadcast_drops = 0
        # ``input`` of a unicast datagram, as ipv4._deliver calls it (src, dst, payload,
        # now, csum_ok): straight to the layer, which reads nothing else of the datagram.
        self.input_unicast = self.layer.input

    @classmethod
    def install(cls, stack, **layer_options) -> TcpLayer:
        self = cls(stack, **layer_options)
        self.inet.protosw[PROTO] = self
        stack.layers.append(self.layer)
        stack.tcp = self.layer
        self.layer.mbufs = getattr(stack, "mbufs", None)   # ring storage is charged there
        if self.layer.mbufs is not None:
            self.layer.mbufs.drain_routines.append(self.layer.drain)
        return self.layer

    def input(self, ctx, payload, now: Instant) -> None:
        if ctx.broadcast or ctx.link_broadcast:     # (IpInput has both)
            self.broadcast_drops += 1
            return
        self.layer.input(ctx.src, ctx.dst, payload, now, ctx.csum_ok)

    def ctlinput(self, icmp_type: int, code: int, quoted, now: Instant) -> None:
        if icmp_type == ICMP_UNREACH and code == UNREACH_NEEDFRAG:
            kind = "frag_needed"
        elif icmp_type == ICMP_UNREACH and code in (UNREACH_PROTOCOL, UNREACH_PORT):
            kind = "refused"
        elif icmp_type in (ICMP_UNREACH, ICMP_TIMXCEED):
            kind = "unreachable"
        else:
            return
        mtu = None
        if kind == "frag_needed":
            current = self._mtu(quoted.dst)
            mtu = next((p for p in PLATEAUS if p < current), 68)
        self.layer.icmp_error(quoted.src, quoted.dst, quoted.payload, kind, mtu, now)

    def _source(self, dst: bytes) -> bytes:
        if len(dst) == 16:
            return self.stack.inet6.source_for(dst)
        return self.inet.source_for(dst)

    def _output(self, src: bytes, dst: bytes, segment: bytes, gso_size: int | None = None) -> None:
        if len(dst) == 16:
            _tcp6_output()(self.stack.inet6, src, dst, segment, gso_size, self.layer.now)
            return
        # A partial checksum (gso_size not None) sits at offset 16 of the TCP header,
        # which starts at 20: our IPv4 header has no options.
        # Nearly every segment is one MSS or less: its Tx (an immutable NamedTuple) is shared.
        tx = None if gso_size is None else _TX_PLAIN if not gso_size else Tx(20, 16, GSO_TCPV4, gso_size)
        try:
            self.inet.output(segment, src, dst, PROTO, self.layer.now, tx=tx)
        except StackError as exc:
            self.inet.output_failed(exc)

    def _tso(self, dst: bytes) -> int:
        """Super-segments go to every Ethernet link: the device cuts them if it can
        (TSO4/TSO6), the IP layer in software otherwise - cheaper than one TCP output
        per MSS (Linux keeps GSO on for the same reason). lo0 has a 33 KB MTU: no need.
        The limit is the whole IP packet, for IPv6 as for IPv4 (65,535 bytes)."""
        try:
            if len(dst) == 16:
                iface = self.stack.inet6.route_to(dst)[0]
            else:
                iface = self.inet.route_to(dst)[0]
        except StackError:
            return 0
        return GSO_MAX if iface.kind == IFT_ETHER else 0

    def _mtu(self, dst: bytes) -> int:
        if len(dst) == 16:
            return self.stack.inet6.path_mtu(dst)
        try:
            iface, _nexthop, route = self.inet.route_to(dst)
        except StackError:
            return 1500
        return (route.mtu if route is not None and route.mtu else 0) or iface.mtu
