"""One network interface as the stack sees it: name, flags, MTU, addresses, counters.

Flag bits and interface types are NetBSD's (sys/net/if.h, if_types.h) plus QNX's three
high bits (reference/qnx.md §4.1), so ``flags=8049<UP,LOOPBACK,RUNNING,MULTICAST>`` prints
exactly as on QNX.
"""

import collections
import ipaddress

import attrs

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_DEBUG = 0x4
IFF_LOOPBACK = 0x8
IFF_POINTOPOINT = 0x10
IFF_NOTRAILERS = 0x20
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
IFF_OACTIVE = 0x400
IFF_SIMPLEX = 0x800
IFF_LINK0 = 0x1000
IFF_LINK1 = 0x2000
IFF_LINK2 = 0x4000
IFF_MULTICAST = 0x8000
IFF_IP6FORWARDING = 0x20000000  # QNX
IFF_ACCEPTRTADV = 0x40000000    # QNX
IFF_SHIM = 0x80000000           # QNX: an io-net driver loaded through devnp-shim

FLAG_NAMES = (
    (IFF_UP, "UP"), (IFF_BROADCAST, "BROADCAST"), (IFF_DEBUG, "DEBUG"),
    (IFF_LOOPBACK, "LOOPBACK"), (IFF_POINTOPOINT, "POINTOPOINT"),
    (IFF_NOTRAILERS, "NOTRAILERS"), (IFF_RUNNING, "RUNNING"), (IFF_NOARP, "NOARP"),
    (IFF_PROMISC, "PROMISC"), (IFF_ALLMULTI, "ALLMULTI"), (IFF_OACTIVE, "OACTIVE"),
    (IFF_SIMPLEX, "SIMPLEX"), (IFF_LINK0, "LINK0"), (IFF_LINK1, "LINK1"),
    (IFF_LINK2, "LINK2"), (IFF_MULTICAST, "MULTICAST"),
    (IFF_IP6FORWARDING, "IP6FORWARDING"), (IFF_ACCEPTRTADV, "ACCEPTRTADV"),
    (IFF_SHIM, "SHIM"),
)

# Flags a user may change with ifconfig; the rest belong to the stack and driver.
USER_FLAGS = IFF_UP | IFF_DEBUG | IFF_NOARP | IFF_PROMISC | IFF_LINK0 | IFF_LINK1 | IFF_LINK2

# Interface capabilities (NetBSD sys/net/if.h IFCAP_*): what the driver can offload.
# ``Interface.capabilities`` is what it can do, ``Interface.enabled`` what is switched on
# (SIOCSIFCAP: ``ifconfig IF [-]tso4 [-]tcp4csum ...``); ifconfig prints both.
IFCAP_TSOv4 = 0x00080
IFCAP_CSUM_IPv4_Rx = 0x00100
IFCAP_CSUM_IPv4_Tx = 0x00200
IFCAP_CSUM_TCPv4_Rx = 0x00400
IFCAP_CSUM_TCPv4_Tx = 0x00800
IFCAP_CSUM_UDPv4_Rx = 0x01000
IFCAP_CSUM_UDPv4_Tx = 0x02000
IFCAP_CSUM_TCPv6_Rx = 0x04000
IFCAP_CSUM_TCPv6_Tx = 0x08000
IFCAP_CSUM_UDPv6_Rx = 0x10000
IFCAP_CSUM_UDPv6_Tx = 0x20000
IFCAP_TSOv6 = 0x40000

# NetBSD's IFCAPBITS order and names, as ifconfig prints them.
CAP_NAMES = (
    (IFCAP_TSOv4, "TSO4"), (IFCAP_CSUM_IPv4_Rx, "IP4CSUM_Rx"), (IFCAP_CSUM_IPv4_Tx, "IP4CSUM_Tx"),
    (IFCAP_CSUM_TCPv4_Rx, "TCP4CSUM_Rx"), (IFCAP_CSUM_TCPv4_Tx, "TCP4CSUM_Tx"),
    (IFCAP_CSUM_UDPv4_Rx, "UDP4CSUM_Rx"), (IFCAP_CSUM_UDPv4_Tx, "UDP4CSUM_Tx"),
    (IFCAP_CSUM_TCPv6_Rx, "TCP6CSUM_Rx"), (IFCAP_CSUM_TCPv6_Tx, "TCP6CSUM_Tx"),
    (IFCAP_CSUM_UDPv6_Rx, "UDP6CSUM_Rx"), (IFCAP_CSUM_UDPv6_Tx, "UDP6CSUM_Tx"),
    (IFCAP_TSOv6, "TSO6"),
)

IFT_OTHER = 0x1
IFT_ETHER = 0x6
IFT_LOOP = 0x18
IFT_GIF = 0x37
IFT_TUNNEL = 0x83
IFT_BRIDGE = 0xD1

AF_INET = 2
AF_INET6 = 24   # QNX's number, which is also what the /dev/socket/24 node is called

# Interface names are at most 15 characters (sys/device.h dv_xname[16]).
IFNAMSIZ = 16

# lo0's MTU on io-pkt: 32768 + MHLEN + MLEN (SRC net/if_loop.c).
LOMTU = 33192


def flag_names(flags: int) -> str:
    return ",".join(name for bit, name in FLAG_NAMES if flags & bit)


def cap_names(caps: int) -> str:
    return ",".join(name for bit, name in CAP_NAMES if caps & bit)


@attrs.define(eq=False)
class IfAddr:
    """One address on an interface (NetBSD's struct ifaddr, reduced)."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefixlen: int
    broadcast: ipaddress.IPv4Address | None = None
    dest: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None  # point-to-point peer
    flags6: int = 0       # IPv6: IN6_IFF_* (tentative, duplicated ...; inet6/ndisc.py)

    @property
    def family(self) -> int:
        return AF_INET if self.address.version == 4 else AF_INET6

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_interface(f"{self.address}/{self.prefixlen}").network

    @property
    def netmask_int(self) -> int:
        bits = 32 if self.address.version == 4 else 128
        return ((1 << bits) - 1) ^ ((1 << (bits - self.prefixlen)) - 1)


@attrs.define
class IfStats:
    """Per-interface counters (struct if_data), what ``netstat -i`` and nicinfo read."""

    ipackets: int = 0
    ierrors: int = 0
    iqdrops: int = 0
    ibytes: int = 0
    imcasts: int = 0
    opackets: int = 0
    oerrors: int = 0
    obytes: int = 0
    omcasts: int = 0
    collisions: int = 0
    noproto: int = 0


@attrs.define(eq=False)
class Interface:
    name: str
    index: int
    kind: int = IFT_ETHER
    flags: int = 0
    mtu: int = 1500
    mac: bytes | None = None
    metric: int = 0
    addrs: list[IfAddr] = attrs.Factory(list)
    stats: IfStats = attrs.Factory(IfStats)
    link_up: bool = True              # carrier, as the driver reports it
    media: str = ""                   # e.g. "Ethernet autoselect (1000baseT full-duplex)"
    description: str = ""             # nicinfo's second line
    driver: object | None = None      # opaque to the core; the runtime hands it frames
    cloner: str | None = None         # set for interfaces made by "ifconfig X create"
    txq: collections.deque = attrs.Factory(collections.deque)
    capabilities: int = 0             # IFCAP_* the driver can offload
    enabled: int = 0                  # IFCAP_* switched on (a subset of capabilities)
    # Bytes of struct virtio_net_hdr in front of every frame, both ways (0 or 10): the
    # offload metadata of a TAP opened with IFF_VNET_HDR (wire/virtio.py). The stack
    # strips it on input and writes it on output; the driver moves buffers untouched.
    vnet_hdr: int = 0
    # Live capture (the bpf analogue): objects with ``tap(frame)``, each handed every
    # frame entering or leaving this interface, link header on, virtio header off. Empty
    # (falsy) when nobody captures: one attribute test per batch is all it costs.
    bpf: list = attrs.Factory(list)
    # A pseudo-interface's output routine inside the core (gre, gif: encapsulate and send
    # on; a bridge member: choose the ports): ``if_output(iface, frame)`` takes the frame
    # instead of the transmit queue. None for interfaces a driver moves.
    if_output: object | None = None
    # The bridge (iface/if_bridge.py) this interface is a member of: its frames go there first.
    bridge: object | None = None
    # IPv6 switched off on this interface (ND6_IFF_IFDISABLED, kept in nd6_rtr's
    # NdIfInfo.flags; mirrored here for the per-packet test on the IPv6 paths).
    inet6_disabled: bool = False

    @property
    def is_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def is_loopback(self) -> bool:
        return self.kind == IFT_LOOP

    def inet_addrs(self) -> list[IfAddr]:
        return [a for a in self.addrs if a.address.version == 4]

    def inet6_addrs(self) -> list[IfAddr]:
        return [a for a in self.addrs if a.address.version == 6]

    def mac_text(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac) if self.mac else ""
