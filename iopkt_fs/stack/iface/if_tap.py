"""tap(4): a virtual Ethernet interface whose wire is a program on ``P/dev/tap``/``tapK``.

NetBSD's "hybrid device" as io-pkt 6.6 ships it (reference/pseudo-if.md §3):

* the stack makes the cloning node ``P/dev/tap`` at start; at most ``num_tap_interface``
  units (default 5), a unit beyond is ENXIO;
* ``ifconfig tapK create`` makes tapK and its node ``P/dev/tapK``; opening that node marks
  it in use (EBUSY for a second opener) and closing it leaves the interface;
* opening ``P/dev/tap`` makes the lowest free tapK (none free: ENXIO) bound to that open
  file, and its last close destroys tapK again. The name is what TAPGIFNAME would answer:
  FUSE has no ioctls, so the file layer gives it as the extended attribute ``user.ifname``
  of the open file (``os.getxattr(fd, "user.ifname")``) and ``P/dev/tapK`` appears;
* the interface is Ethernet: BROADCAST|SIMPLEX|MULTICAST, MTU 1500, a MAC
  ``f2:0b:a4:xx:xx:xx`` (the last three bytes random), ``media: Ethernet autoselect`` and
  no ``status:`` line (the media status has no IFM_AVALID), VLAN_MTU and JUMBO_MTU;
* one read is one frame the stack sent (EHOSTDOWN while the interface is down), one write
  one frame handed to Ethernet input as received on tapK, not validated here (a short or
  broken frame is the input path's counted drop).
"""

import errno

from ..errors import StackError
from .interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFF_UP, IFT_ETHER, Interface
from .pseudodev import PseudoDevice

# NetBSD sys/net/if_ether.h ec_capabilities: the device takes 802.1Q frames of a full
# MTU (a vlan over it keeps 1500) and jumbo frames.
ETHERCAP_VLAN_MTU = 0x1
ETHERCAP_JUMBO_MTU = 0x4

TAP_OUI = b"\xf2\x0b\xa4"   # if_tap.c: 0xf2 has the locally administered bit set


class TapDevice(PseudoDevice):
    """One tap unit: the device state, and the driver of its interface."""

    prefix = "tap"
    ethercap = ETHERCAP_VLAN_MTU | ETHERCAP_JUMBO_MTU
    max_mtu = 9000

    def __init__(self, stack, unit: int):
        super().__init__(stack, unit)
        self.cloned = False     # made by an open of P/dev/tap: its last close destroys it

    @property
    def ready(self) -> bool:
        return self.iface is not None and bool(self.iface.flags & IFF_UP)

    def media_lines(self, iface: Interface) -> list[str]:
        # tap_mediastatus sets no IFM_AVALID: ifconfig prints the media, no status line.
        return [f"\tmedia: {iface.media}"]

    def transmit(self, iface: Interface, frames) -> None:
        """Frames the stack sends out of tapK: queued for the reader, if there is one."""
        if not self.opened:
            self.drops += len(frames)          # tap_start purges with nobody reading
            iface.stats.oerrors += len(frames)
            return
        for frame in frames:
            self.enqueue(bytes(frame))

    not_ready = "is down"

    def write(self, buf, now) -> int:
        if self.zombie or self.iface is None:
            raise StackError(errno.ENXIO, f"{self.name} was destroyed")
        self.stack.input(self.iface, [memoryview(buf)], now)
        return len(buf)


class TapCloner:
    """The ``tap`` cloner and its units (``stack.tap``)."""

    prefix = "tap"

    def __init__(self, stack, limit: int):
        self.stack = stack
        self.limit = limit            # num_tap_interface
        self.units: dict[int, TapDevice] = {}

    def node_units(self) -> list[int]:
        return sorted(u for u, d in self.units.items() if d.iface is not None)

    def create(self, prefix: str, unit: int) -> Interface:
        """``ifconfig tapK create``: ENXIO beyond ``num_tap_interface`` units (QNX)."""
        if unit >= self.limit:
            raise StackError(errno.ENXIO, f"tap{unit}: at most {self.limit} tap units "
                                          f"(num_tap_interface)")
        if unit in self.units:
            raise StackError(errno.EEXIST, f"interface tap{unit} already exists")
        dev = TapDevice(self.stack, unit)
        mac = TAP_OUI + bytes(self.stack.rng.getrandbits(8) for _ in range(3))
        iface = self.stack.new_interface(
            self.prefix, unit, kind=IFT_ETHER, mtu=1500, mac=mac,
            flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST, media="Ethernet autoselect",
            description="Virtual Ethernet (tap)")
        iface.driver = dev
        iface.cloner = self.prefix
        dev.iface = iface
        self.units[unit] = dev
        return iface

    def clone(self) -> TapDevice:
        """open("/dev/tap"): the lowest free unit, bound to the opener."""
        names = set(self.stack.interface_names())
        for unit in range(self.limit):
            if unit not in self.units and f"{self.prefix}{unit}" not in names:
                break
        else:
            raise StackError(errno.ENXIO, f"all {self.limit} tap units are in use (num_tap_interface)")
        self.create(self.prefix, unit)
        dev = self.units[unit]
        dev.cloned = True
        dev.open()
        return dev

    def open(self, unit: int) -> TapDevice:
        """open("/dev/tapK") of a tap made by ``ifconfig tapK create`` (or a clone)."""
        dev = self.units.get(unit)
        if dev is None or dev.iface is None:
            raise StackError(errno.ENXIO, f"tap{unit} does not exist")
        dev.open()
        return dev

    def close(self, dev: TapDevice) -> None:
        dev.close()
        if dev.cloned and dev.iface is not None:
            self.stack.destroy(dev.iface.name)   # the clone's last close destroys it


def install(stack) -> TapCloner:
    cloner = TapCloner(stack, stack.config.num_tap_interface)
    stack.cloners[cloner.prefix] = cloner.create
    stack.tap = cloner
    return cloner
