"""tun(4): a layer-3 tunnel whose far end is a program reading and writing ``P/dev/tunN``.

NetBSD semantics as io-pkt 6.6 ships them (reference/pseudo-if.md §2):

* the stack makes the control nodes ``P/dev/tun0 .. tun(N-1)`` at start
  (``num_tun_control_interface``, default 4); the interfaces do not exist yet;
* ``tunK`` appears with ``ifconfig tunK create`` (K >= N also gets a node ``P/dev/tunK``)
  or when ``P/dev/tunK`` is opened; one opener at a time (EBUSY);
* the interface is IFT_TUNNEL, POINTOPOINT, MTU 1500 (576..1500), no link address; giving
  it an address brings it up and running (tuninit);
* a read returns one packet the stack sent out of ``tunK``, a write injects one as if it
  had arrived on ``tunK``; with nothing to send and the device not ready (no opener, no
  address) a read is EHOSTDOWN; more than the MTU in one write is EIO;
* framing: a bare IPv4 packet (IPv6 is not sent out of tun: EAFNOSUPPORT, dropped); with
  TUNSIFHEAD a 4-byte address family in network order first (AF_INET 2, AF_INET6 24), the
  only mode that carries IPv6; with TUNSLMODE a 16-byte ``struct sockaddr`` of the
  destination first (on write the sockaddr's family selects IPv4 or IPv6). Setting one
  of the two modes clears the other;
* the last close purges the queue, takes the interface down and deletes the routes of its
  addresses; the interface and its addresses stay.
  ``ifconfig tunK destroy`` while open leaves the opener a zombie whose calls get ENXIO.

FUSE carries no ioctls, so the modes are verbs on the sibling file ``P/dev/tunN.ctl``
(``modes``): ``ifhead``/``-ifhead`` (TUNSIFHEAD), ``slmode``/``-slmode`` (TUNSLMODE),
``ifmode pointopoint|broadcast`` (TUNSIFMODE), ``debug N`` (TUNSDEBUG). They belong to the
unit, as the softc's flags do on NetBSD, so they can be set before the device is opened
and survive a close.
"""

import errno
import struct

from ..errors import StackError
from .interface import (
    AF_INET, AF_INET6, IFF_BROADCAST, IFF_MULTICAST, IFF_POINTOPOINT, IFF_UP, IFT_TUNNEL, Interface,
)
from .pseudodev import PseudoDevice

TUNMTU = 1500
TUN_MIN_MTU = 576
_AF = struct.Struct("!I")
# struct sockaddr_in as BSD lays it out: sin_len, sin_family, sin_port, sin_addr, sin_zero[8].
_SOCKADDR_IN = struct.Struct("!BBH4s8x")
SOCKADDR_LEN = 16


class TunDevice(PseudoDevice):
    """One tun unit: the device state, and the driver of its interface."""

    prefix = "tun"
    min_mtu = TUN_MIN_MTU
    max_mtu = TUNMTU

    def __init__(self, stack, unit: int):
        super().__init__(stack, unit)
        self.ifhead = False     # TUN_IFHEAD
        self.slmode = False     # TUN_PREPADDR
        self.debug = 0

    @property
    def ready(self) -> bool:
        """TUN_READY: open, initialised and an address set (NetBSD if_tun.c)."""
        return self.opened and self.iface is not None and bool(self.iface.addrs)

    def _dropped(self) -> None:
        # NetBSD tun_output counts a full send queue as a collision.
        if self.iface is not None:
            self.iface.stats.collisions += 1

    # -- the interface's driver side --------------------------------------------------

    def transmit(self, iface: Interface, frames) -> None:
        """Packets the stack sends out of tunK: queued for the reader, framed per mode."""
        for packet in frames:
            if not self.ready:
                self.drops += 1            # EHOSTDOWN inside tun_output; nobody to read
                continue
            version = packet[0] >> 4 if packet else 0
            if version == 6 and not self.ifhead:
                iface.stats.oerrors += 1   # EAFNOSUPPORT: only TUNSIFHEAD carries IPv6
                continue
            if self.ifhead:
                packet = _AF.pack(AF_INET6 if version == 6 else AF_INET) + bytes(packet)
            elif self.slmode:
                packet = _SOCKADDR_IN.pack(SOCKADDR_LEN, AF_INET, 0, bytes(packet[16:20])) + bytes(packet)
            self.enqueue(bytes(packet))

    not_ready = "is not ready (no address set)"

    # -- the device's calls ------------------------------------------------------------

    def write(self, buf, now) -> int:
        """One packet from the program, handed to IP as if ``tunK`` had received it."""
        if self.zombie or self.iface is None:
            raise StackError(errno.ENXIO, f"{self.name} was destroyed")
        n = len(buf)
        if n == 0:
            return 0
        view = memoryview(buf)
        if self.ifhead:
            if n < _AF.size:
                raise StackError(errno.EIO, f"{self.name}: {n} bytes, the address family needs 4")
            family = _AF.unpack_from(view)[0]
            view = view[_AF.size:]
        elif self.slmode:
            if n < SOCKADDR_LEN:
                raise StackError(errno.EIO, f"{self.name}: {n} bytes, the sockaddr needs {SOCKADDR_LEN}")
            family = view[1]
            skip = max(SOCKADDR_LEN, view[0])    # sa_len beyond struct sockaddr is skipped
            view = view[skip:]
        else:
            family = AF_INET
        if family not in (AF_INET, AF_INET6):
            raise StackError(errno.EAFNOSUPPORT, f"{self.name}: address family {family}")
        if len(view) > self.iface.mtu:
            raise StackError(errno.EIO, f"{self.name}: {len(view)} bytes exceed the mtu {self.iface.mtu}")
        self.stack.input(self.iface, [view], now)
        return n

    def close(self) -> None:
        """Last close (NetBSD tunclose): the queue is purged, the interface goes down and
        the routes of its addresses are deleted; the addresses stay (setting one again
        brings them back)."""
        super().close()
        iface = self.iface
        if iface is None or not iface.flags & IFF_UP:
            return
        for ifa in iface.addrs:
            layer = self.stack.inet if ifa.address.version == 4 else self.stack.inet6
            if layer is not None:
                layer.routes.remove_interface_routes(iface, int(ifa.address))
        self.stack.down(iface)

    # -- modes (the ioctls, as verbs) ---------------------------------------------------

    def mode_ctl(self, fields: list[str]) -> None:
        verb, args = fields[0], fields[1:]
        if verb in ("ifhead", "-ifhead") and not args:
            self.ifhead = verb == "ifhead"
            self.slmode = self.slmode and not self.ifhead
        elif verb in ("slmode", "-slmode") and not args:
            self.slmode = verb == "slmode"
            self.ifhead = self.ifhead and not self.slmode
        elif verb == "ifmode" and len(args) == 1 and args[0] in _IFMODES:
            self._set_ifmode(_IFMODES[args[0]])
        elif verb == "debug" and len(args) == 1 and args[0].isdigit():
            self.debug = int(args[0])
        else:
            raise StackError(errno.EINVAL, f"unknown {self.name} request {' '.join(fields)!r}")

    def _set_ifmode(self, flags: int) -> None:
        """TUNSIFMODE: POINTOPOINT or BROADCAST, only while the interface is down."""
        iface = self.iface
        if iface is None:
            raise StackError(errno.ENXIO, f"{self.name} does not exist")
        if iface.flags & IFF_UP:
            raise StackError(errno.EBUSY, f"{self.name} is up: take it down first")
        iface.flags = (iface.flags & ~(IFF_BROADCAST | IFF_POINTOPOINT | IFF_MULTICAST)) | flags
        self.stack._notify("interface_changed", iface)

    def modes(self) -> str:
        """What ``P/dev/tunN.ctl`` reads: one ``name: value`` per line."""
        rows = [("name", self.name), ("interface", "yes" if self.iface is not None else "no"),
                ("open", int(self.opened)), ("ready", int(self.ready)),
                ("ifhead", int(self.ifhead)), ("slmode", int(self.slmode)), ("debug", self.debug),
                ("queued", len(self.queue)), ("drops", self.drops)]
        return "".join(f"{k}: {v}\n" for k, v in rows)


_IFMODES = {"pointopoint": IFF_POINTOPOINT, "broadcast": IFF_BROADCAST | IFF_MULTICAST}


class TunCloner:
    """The ``tun`` cloner and the table of units (``stack.tun``)."""

    prefix = "tun"

    def __init__(self, stack, controls: int):
        self.stack = stack
        self.controls = controls          # num_tun_control_interface: P/dev/tun0..N-1
        self.units: dict[int, TunDevice] = {}

    def device(self, unit: int) -> TunDevice:
        dev = self.units.get(unit)
        if dev is None:
            dev = self.units[unit] = TunDevice(self.stack, unit)
        return dev

    def node_units(self) -> list[int]:
        """Units that have a node: the control nodes, and any tunK made beyond them."""
        extra = [u for u, d in self.units.items() if u >= self.controls and d.iface is not None]
        return sorted(set(range(self.controls)) | set(extra))

    def create(self, prefix: str, unit: int) -> Interface:
        """``ifconfig tunK create`` (and the first open of ``P/dev/tunK``)."""
        dev = self.device(unit)
        if dev.iface is not None:
            raise StackError(errno.EEXIST, f"interface {dev.name} already exists")
        iface = self.stack.new_interface(self.prefix, unit, kind=IFT_TUNNEL, mtu=TUNMTU,
                                         flags=IFF_POINTOPOINT, description="Tunnel device")
        iface.driver = dev
        iface.cloner = self.prefix
        dev.iface = iface
        return iface

    def open(self, unit: int) -> TunDevice:
        """open("/dev/tunK"): the interface is made if it does not exist yet (NetBSD)."""
        dev = self.device(unit)
        if dev.opened:
            raise StackError(errno.EBUSY, f"{dev.name} is already open")
        if dev.iface is None:
            self.create(self.prefix, unit)
        dev.open()
        return dev

    def close(self, dev: TunDevice) -> None:
        dev.close()


def install(stack) -> TunCloner:
    cloner = TunCloner(stack, stack.config.num_tun_control_interface)
    stack.cloners[cloner.prefix] = cloner.create
    stack.tun = cloner
    return cloner
