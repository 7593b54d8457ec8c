"""IP tunnels of the hc variants: gre(4) and gif(4) (reference/pseudo-if.md §5, §6).

Theory of operation
-------------------
``install(stack)`` (hc variants) registers the ``gre`` and ``gif`` cloners, claims IP
protocols 47 (GRE), 4 (IPv4 in IPv4) and 41 (IPv6 in IPv4) in the IPv4 protocol switch and
joins ``stack.layers``. Each clone is an ``Interface`` (IFT_TUNNEL / IFT_GIF, raw IP, no
link address) whose ``driver`` is its ``Tunnel``: the endpoints, ``verbs`` for the
interface ctl (``tunnel SRC DST``, ``deletetunnel``: SIOCSLIFPHYADDR / SIOCDIFPHYADDR),
the MTU bounds and the ``tunnel inet SRC --> DST`` status line.

Out: the IP layers hand a tunnel's packets to ``stack.transmit``; ``if_output`` is
``Tunnel.output``, which counts and captures them on the tunnel, puts the tunnel header in
front and sends the result with ``inet.output`` from SRC to DST (TTL 30, QNX's
``ip_gre_ttl``/``ip_gif_ttl``; no DF, so the outer packet may be fragmented). A packet
whose outer route would come back into the tunnel itself is dropped (``oerrors``): the
loop NetBSD avoids with its route trick and gif with ``max_gif_nesting``.

In: the protocol handlers find the tunnel by the outer (dst, src) = (SRC, DST), check what
the reference says (gif: no martian outer source, the ingress filter unless ``link2``),
strip the header and hand the inner packet to ``stack.deliver`` on the tunnel interface,
inside the current input batch. Decapsulation nests at most ``MAX_NESTING`` deep, so a
packet of tunnels in tunnels cannot recurse without bound. Drops are counted in the
tunnel interface's ``ierrors``/``noproto``, or in ``TunnelStat`` when no tunnel matches.

RUNNING (NetBSD): set while both endpoints are set and (gre only) a route to DST exists
that does not use the tunnel itself; recomputed whenever addresses, routes' interfaces or
flags change (the layer hooks), so a tunnel configured before its underlay comes up.
"""

from __future__ import annotations

import errno
import ipaddress

import attrs

from ..errors import StackError
from ..inet.ipv4 import LOOP_VH
from ..wire.errors import Malformed, Unsupported
from ..wire.gre import PROTO_GRE, GreRepr
from .interface import (
    IFF_LINK0, IFF_LINK2, IFF_MULTICAST, IFF_POINTOPOINT, IFF_RUNNING, IFF_UP, IFT_GIF, IFT_TUNNEL,
    Interface,
)

PROTO_IPV4 = 4            # RFC 2003 IP in IP
PROTO_IPV6 = 41           # RFC 4213 IPv6 in IPv4
ETHERTYPE_IP = 0x0800
ETHERTYPE_IPV6 = 0x86DD
TUNNEL_TTL = 30           # GRE_TTL and GIF_TTL: QNX's default ip_gre_ttl / ip_gif_ttl
MAX_NESTING = 4           # decapsulations within one another before a packet is dropped


@attrs.define
class TunnelStat:
    """Tunnel packets no tunnel took (no NetBSD counter exists for these)."""

    nomatch: int = 0       # no tunnel has these endpoints
    badhdr: int = 0        # truncated or version != 0 GRE header
    routing: int = 0       # GRE with source routing (RFC 1701 R bit): ignored
    nesting: int = 0       # tunnels in tunnels deeper than MAX_NESTING
    martian: int = 0       # gif: outer source multicast, 0/8, 127/8, 255/8 or a broadcast
    ingress: int = 0       # gif: the route back to the outer source uses another interface


def _v4(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise StackError(errno.EAFNOSUPPORT, f"tunnel endpoints must be IPv4 addresses, not {text!r}") from None


class Tunnel:
    """One gre or gif interface's state (NetBSD's gre_softc / gif_softc)."""

    kind = IFT_TUNNEL
    min_mtu = 576
    max_mtu = 9000
    default_mtu = 1476
    default_flags = IFF_POINTOPOINT | IFF_MULTICAST
    needs_route = False       # gre: RUNNING needs a route to DST that avoids the tunnel

    def __init__(self, layer: "TunnelLayer", iface: Interface):
        self.layer = layer
        self.stack = layer.stack
        self.iface = iface
        self.src: bytes | None = None
        self.dst: bytes | None = None
        self._sending = False
        self.verbs = {"tunnel": self._set_tunnel, "deletetunnel": self._delete_tunnel}
        self.interfaces = [iface]

    # -- configuration (ifconfig IF tunnel SRC DST | deletetunnel) -----------------------

    def _set_tunnel(self, args: list[str]) -> None:
        if len(args) != 2:
            raise StackError(errno.EINVAL, "tunnel takes a source and a destination address")
        src, dst = _v4(args[0]), _v4(args[1])
        for other in self.layer.tunnels.values():
            if other is not self and type(other) is type(self) and (other.src, other.dst) == (src, dst):
                # if_gif.c: the same pair on two interfaces would split the traffic.
                raise StackError(errno.EADDRNOTAVAIL, f"{other.iface.name} already has that tunnel")
        self.src, self.dst = src, dst
        self.layer.update(self)

    def _delete_tunnel(self, args: list[str]) -> None:
        if args:
            raise StackError(errno.EINVAL, "deletetunnel takes no arguments")
        self.src = self.dst = None
        self.layer.update(self)

    def status_lines(self, iface) -> list[str]:
        # NetBSD tunnel_status(): "\ttunnel %s %s%s --> %s%s", only with both endpoints.
        if self.src is None or self.dst is None:
            return []
        return [f"\ttunnel inet {ipaddress.IPv4Address(self.src)} --> {ipaddress.IPv4Address(self.dst)}"]

    def running(self) -> bool:
        if not self.iface.flags & IFF_UP or self.src is None or self.dst is None:
            return False
        if not self.needs_route:
            return True
        out = self.outer_interface()
        return out is not None and out is not self.iface

    def outer_interface(self) -> Interface | None:
        """Where a packet to DST would leave (None: no route); counts nothing."""
        inet = self.stack.inet
        if inet.is_local(self.dst):
            return self.stack.lo0
        route = inet.routes.lookup(int.from_bytes(self.dst, "big"), inet._usable)
        return None if route is None else route.iface

    def destroy_interface(self, iface: Interface) -> None:
        self.layer.tunnels.pop(iface.index, None)

    # -- output -------------------------------------------------------------------------

    def header(self, packet) -> tuple[bytes, int, int]:
        """(tunnel header, outer protocol, outer TOS) for one inner packet."""
        raise NotImplementedError

    def output(self, iface: Interface, packet, framed: bool = False) -> None:
        stats = iface.stats
        if not iface.flags & IFF_RUNNING or self._sending or not packet:
            stats.oerrors += 1
            return
        version = packet[0] >> 4
        if version not in (4, 6):
            stats.oerrors += 1
            return
        stats.opackets += 1
        stats.obytes += len(packet)
        if iface.bpf:
            for tap in iface.bpf:
                tap.tap(packet)
        try:
            head, proto, tos = self.header(packet)
        except StackError:
            stats.oerrors += 1
            return
        inet = self.stack.inet
        if self.outer_interface() is iface:
            stats.oerrors += 1          # the outer packet would come back in here: a loop
            return
        self._sending = True
        try:
            inet.output(head + bytes(packet), self.src, self.dst, proto, self.stack.last_now,
                        ttl=TUNNEL_TTL, tos=tos, df=False)
        except StackError as exc:
            stats.oerrors += 1
            inet.output_failed(exc)
        finally:
            self._sending = False

    # -- input --------------------------------------------------------------------------

    def deliver(self, inner, ctx, now) -> None:
        """The inner packet enters the tunnel interface. Checksums the outer link vouched
        for (virtio NEEDS_CSUM/DATA_VALID from the peer's kernel) stay vouched for."""
        layer = self.layer
        if layer.depth >= MAX_NESTING:
            layer.stats.nesting += 1
            return
        layer.depth += 1
        try:
            self.stack.deliver(self.iface, bytes(inner), now, LOOP_VH if ctx.csum_ok else None)
        finally:
            layer.depth -= 1


class GreTunnel(Tunnel):
    """gre(4): RFC 2784 GRE over IPv4, IPv4 or IPv6 inside (link0, the default mode)."""

    default_flags = IFF_POINTOPOINT | IFF_MULTICAST | IFF_LINK0
    needs_route = True

    def header(self, packet):
        if packet[0] >> 4 == 4:
            return GreRepr.header(ETHERTYPE_IP), PROTO_GRE, packet[1]
        return GreRepr.header(ETHERTYPE_IPV6), PROTO_GRE, 0


class GifTunnel(Tunnel):
    """gif(4): IPv4 (protocol 4, RFC 2003) or IPv6 (protocol 41, RFC 4213) in IPv4."""

    kind = IFT_GIF
    min_mtu = 1280
    max_mtu = 8192
    default_mtu = 1280

    def header(self, packet):
        # ECN_NOCARE (RFC 3168 9.1.1 limited functionality): the inner TOS without its
        # ECN bits. (link1's full-functionality option is not implemented.)
        if packet[0] >> 4 == 4:
            return b"", PROTO_IPV4, packet[1] & ~3
        tclass = ((packet[0] & 0x0F) << 4) | (packet[1] >> 4)
        return b"", PROTO_IPV6, tclass & ~3


CLASSES = {"gre": GreTunnel, "gif": GifTunnel}


class _Switch:
    """One IPv4 protocol switch entry (47, 4 or 41) for the tunnels."""

    def __init__(self, layer: "TunnelLayer", proto: int):
        self.layer = layer
        self.proto = proto

    def input(self, ctx, payload, now) -> None:
        self.layer.input(self.proto, ctx, payload, now)


class TunnelLayer:
    def __init__(self, stack):
        self.stack = stack
        self.stats = TunnelStat()
        self.tunnels: dict[int, Tunnel] = {}
        self.depth = 0
        inet = stack.inet
        for proto in (PROTO_GRE, PROTO_IPV4, PROTO_IPV6):
            inet.protosw[proto] = _Switch(self, proto)
        for name in CLASSES:
            stack.cloners[name] = self.create
        stack.layers.append(self)

    def create(self, prefix: str, unit: int) -> Interface:
        cls = CLASSES[prefix]
        iface = Interface(name=f"{prefix}{unit}", index=0, kind=cls.kind, mtu=cls.default_mtu,
                          flags=cls.default_flags, description=f"{prefix} tunnel")
        tunnel = cls(self, iface)
        iface.driver = tunnel
        iface.if_output = tunnel.output
        self.stack.attach(iface)
        self.tunnels[iface.index] = tunnel
        return iface

    def update(self, tunnel: Tunnel) -> None:
        iface = tunnel.iface
        running = tunnel.running()
        if bool(iface.flags & IFF_RUNNING) != running:
            iface.flags ^= IFF_RUNNING
            self.stack._notify("interface_changed", iface)

    def _refresh(self) -> None:
        for tunnel in list(self.tunnels.values()):
            running = tunnel.running()
            if bool(tunnel.iface.flags & IFF_RUNNING) != running:
                tunnel.iface.flags ^= IFF_RUNNING

    # Layer hooks: an underlay address, route or flag change may make or break a tunnel.
    def address_added(self, iface, ifa) -> None:
        self._refresh()

    def address_removed(self, iface, ifa) -> None:
        self._refresh()

    def interface_changed(self, iface) -> None:
        self._refresh()

    def interface_detached(self, iface) -> None:
        self.tunnels.pop(iface.index, None)
        self._refresh()

    # -- input --------------------------------------------------------------------------

    def _find(self, cls, ctx) -> Tunnel | None:
        ip = ctx.ip
        for tunnel in self.tunnels.values():
            if type(tunnel) is cls and tunnel.src == ip.dst and tunnel.dst == ip.src:
                return tunnel
        return None

    def input(self, proto: int, ctx, payload, now) -> None:
        if proto == PROTO_GRE:
            tunnel = self._find(GreTunnel, ctx)
            if tunnel is None:
                self._unclaimed(ctx, now)
                return
            try:
                gre = GreRepr.parse(payload)
            except Unsupported:
                self.stats.routing += 1
                return
            except Malformed:
                self.stats.badhdr += 1
                tunnel.iface.stats.ierrors += 1
                return
            inner = payload[gre.header_len:]
            if gre.protocol not in (ETHERTYPE_IP, ETHERTYPE_IPV6):
                # gre_input3: unhandled ethertype (0x6558 transparent Ethernet included).
                tunnel.iface.stats.noproto += 1
                return
            tunnel.deliver(inner, ctx, now)
            return
        tunnel = self._find(GifTunnel, ctx)
        if tunnel is None:
            self._unclaimed(ctx, now)
            return
        if not self._gif_valid(tunnel, ctx):
            return
        if not payload or payload[0] >> 4 != (4 if proto == PROTO_IPV4 else 6):
            tunnel.iface.stats.ierrors += 1
            return
        tunnel.deliver(payload, ctx, now)

    def _unclaimed(self, ctx, now) -> None:
        """No tunnel: as with no protocol at all, protocol unreachable (rip_input)."""
        self.stats.nomatch += 1
        inet = self.stack.inet
        inet.stats.noproto += 1
        if not ctx.broadcast:
            inet.icmp.error(ctx.datagram, 3, 2, now, link_broadcast=ctx.link_broadcast, in_iface=ctx.iface)

    def _gif_valid(self, tunnel: Tunnel, ctx) -> bool:
        """gif_validate4: no martian outer source; the ingress filter (unless link2)."""
        src = ctx.ip.src
        inet = self.stack.inet
        if src[0] >= 224 or src[0] in (0, 127, 255) or src in inet._bcast:
            self.stats.martian += 1
            return False
        if not tunnel.iface.flags & IFF_LINK2:
            try:
                back, _, _ = inet.route_to(src)
            except StackError:
                back = None
            if back is not ctx.iface:
                self.stats.ingress += 1
                return False
        return True


def install(stack) -> TunnelLayer:
    return TunnelLayer(stack)
