"""The stack: interfaces, tunables and the protocol layers, driven by (frames, calls, now).

Theory of operation
-------------------
The runtime owns the only clock and the only event loop. It calls, and nothing else does:

* ``input(iface, frames, now)`` with a batch a driver read;
* ``poll(now)`` to run due timers and deliver loopback traffic;
* ``poll_at()`` for the next deadline (``None``: nothing scheduled);
* ``take_tx()`` for the frames each interface has queued, which it hands to drivers.

User requests (``add_address``, ``create``, a socket call ...) are plain synchronous methods:
under trio's cooperative scheduling each call is atomic, so there are no locks. A refused
request raises ``StackError``; a bad frame is counted and dropped, never raised.

Protocol layers (IPv4, IPv6, TCP ...) plug in as objects in ``self.layers`` and are told
about configuration changes through the hooks named in ``Layer``.
"""

import errno
import ipaddress
import random
import re
from typing import Callable, Iterable, Protocol

from . import slog
from .config import StackConfig
from .errors import StackError
from .inet.ipv4 import Ipv4Layer
from .mbuf import MbufPool
from .socket.unix import UnixProtocol
from .tcp.inet import TcpProtosw
from .iface import if_tap, if_tun, if_vlan
from .iface.interface import (
    AF_INET, IFF_BROADCAST, IFF_LOOPBACK, IFF_MULTICAST, IFF_RUNNING, IFF_UP, IFNAMSIZ,
    IFT_ETHER, IFT_LOOP, LOMTU, USER_FLAGS, IfAddr, Interface, cap_names,
)
from .inet import gro
from .sysctl import SysctlTree
from .tcp.config import TcpConfig
from .wire.virtio import PLAIN as PLAIN_VNET_HDR
from .time import Instant

LogFn = Callable[..., None]
_EN_NAME = re.compile(r"en(\d+)\Z")
_IF_NAME = re.compile(r"([A-Za-z_][A-Za-z_0-9]*?)(\d+)\Z")


# The longest frame with no payload to join: Ethernet 14 + IPv6 40 + TCP 60 (stack.input).
GRO_MIN_FRAME = 114

class Layer(Protocol):
    """What a protocol layer may implement; every hook is optional."""

    def address_added(self, iface: Interface, ifa: IfAddr) -> None: ...
    def address_removed(self, iface: Interface, ifa: IfAddr) -> None: ...
    def interface_changed(self, iface: Interface) -> None: ...
    def interface_detached(self, iface: Interface) -> None: ...
    def poll(self, now: Instant) -> None: ...
    def poll_at(self) -> Instant | None: ...


class Stack:
    def __init__(self, config: StackConfig | None = None, *, rng: random.Random | None = None,
                 log: LogFn = slog.discard, hostname: str = "localhost"):
        self.config = config or StackConfig()
        self.variant = self.config.variant
        self.rng = rng or random.Random(self.config.seed)
        self.log = log
        self.interfaces: dict[int, Interface] = {}
        self._by_name: dict[str, Interface] = {}
        self._next_index = 1
        self.layers: list[object] = []
        # poll_at: the layers' poll_at methods, split into those asked every time (a layer
        # with ``poll_at_live``: TCP, whose deadlines move with every segment) and the rest,
        # whose earliest deadline is cached until one of their timers changes
        # (``timers_changed``) - the runtime asks after every batch and request.
        self._poll_fns: tuple = ()
        self._live_fns: tuple = ()
        self._poll_layers: list | None = None
        self._poll_count = -1
        self._timers_ok = False
        self._timers_at: Instant | None = None
        # Interface factories for "ifconfig NAME create", keyed by name prefix.
        self.cloners: dict[str, Callable[[str, int], Interface]] = {"lo": self._clone_loopback}
        # Interfaces with frames queued (take_tx drains it; so does the runtime, take_tx
        # written out): an empty one answers "nothing to send" without a call.
        self.tx_pending: dict[int, Interface] = {}
        # Receive coalescing of plain TCP frames (inet/gro.py); off only to compare paths.
        self.gro = True
        self._loop_pending: list[tuple[Interface, bytes]] = []
        # The latest ``now`` the runtime passed in (input or poll): what pseudo-interfaces
        # sending from ``transmit`` (which carries none) hand the layers below them.
        self.last_now: Instant = 0
        # Set by a protocol layer; receives (iface, frame, now) for frames the core accepts.
        self.frame_input: Callable[[Interface, memoryview, Instant], None] | None = None
        self.loop_input: Callable[[Interface, memoryview, Instant], None] | None = None
        # Packet buffers: every retained buffer is charged here, bounded (stack/mbuf.py).
        self.mbufs = MbufPool.from_config(self.config, log)
        self.sysctl = SysctlTree()
        self._init_sysctl(hostname)
        self.lo0 = self.create_loopback("lo", 0)
        # Sockets whose readiness changed since the last take_socket_events(), in order
        # (read by the runtime as tx_pending is).
        self.socket_events: dict[int, object] = {}
        # IPv4: ARP, IP, ICMP, UDP, routes; sets frame_input/loop_input (stack/inet/).
        self.inet = Ipv4Layer(self)
        self.inet.reass.pool = self.mbufs
        # NetBSD ip_drain: out of buffers, the reassembly queues go first.
        self.mbufs.drain_routines.append(self.inet.reass.drain)
        # TCP on IPv4: protocol 6 in the protocol switch; sets self.tcp (stack/tcp/).
        TcpProtosw.install(self)
        # IPv6 on v6 variants only: input, ND, ICMPv6, TCP/UDP over IPv6 (stack/inet6/).
        self.inet6 = None
        if self.variant.inet6:
            from .inet6.glue import install as install_inet6   # noqa: PLC0415 - v6 only
            self.inet6 = install_inet6(self)
        # Unix-domain sockets (AF_LOCAL): a name space and byte queues, no wire.
        self.unix = UnixProtocol(self)
        # Cloned pseudo-interfaces: each module registers its cloner in self.cloners.
        for module in (if_tun, if_tap, if_vlan):
            module.install(self)
        # The hc variants' pseudo-interfaces: gre and gif tunnels (iface/tunnel.py), the
        # learning bridge (iface/if_bridge.py).
        if self.variant.extras:
            from .iface import if_bridge, tunnel   # noqa: PLC0415 - hc only
            self.tunnels = tunnel.install(self)
            if_bridge.install(self)            # sets self.bridges

    # -- tunables -------------------------------------------------------------------------

    def _init_sysctl(self, hostname: str) -> None:
        c = self.config
        t = self.sysctl
        t.add("kern.hostname", hostname, "Host name")
        t.add("kern.ostype", "QNX", "Operating system type", writable=False)
        t.add("kern.somaxconn", c.somaxconn, "Maximum listen queue length", minimum=0)
        t.add("kern.mbuf.mclbytes", c.mclbytes, "mbuf cluster size", writable=False)
        t.add("kern.mbuf.msize", 256, "mbuf size", writable=False)
        t.add("kern.mbuf.nmbclusters", self.mbufs.nmbclusters, "Limit on the number of mbuf clusters",
              writable=False)
        t.add("net.inet.ip.forwarding", int(c.forward), "Enable forwarding of INET datagrams",
              minimum=0, maximum=1)
        t.add("net.inet.ip.fastforwarding", int(c.forward and c.fastforward),
              "Use the flow cache on the forwarding path", minimum=0, maximum=1)
        t.add("net.inet.ip.ttl", 64, "Default TTL for an INET datagram", minimum=1, maximum=255)
        t.add("net.inet.ip.redirect", 1, "Enable sending of ICMP redirect messages",
              minimum=0, maximum=1)
        t.add("net.inet.ip.maxfragpackets", 200, "Maximum number of fragments to retain",
              minimum=0)
        t.add("net.inet.icmp.maskrepl", 0, "Respond to ICMP netmask requests", minimum=0, maximum=1)
        t.add("net.inet.tcp.sendspace", 32768, "Default TCP send buffer size", minimum=512)
        t.add("net.inet.tcp.recvspace", 32768, "Default TCP receive buffer size", minimum=512)
        # Buffer autosizing (NetBSD's names and descriptions); defaults are TcpConfig's.
        tcp_defaults = TcpConfig()
        for way, word in (("recv", "receive"), ("send", "send")):
            t.add(f"net.inet.tcp.{way}buf_auto", int(getattr(tcp_defaults, f"{way}buf_auto")),
                  f"Enable automatic {word} buffer sizing", minimum=0, maximum=1)
            t.add(f"net.inet.tcp.{way}buf_inc", getattr(tcp_defaults, f"{way}buf_inc"),
                  f"Incrementor step size of automatic {word} buffer", minimum=1)
            t.add(f"net.inet.tcp.{way}buf_max", getattr(tcp_defaults, f"{way}buf_max"),
                  f"Max size of automatic {word} buffer", minimum=512)
        t.add("net.inet.tcp.debug", 0, "Log TCP state changes (TCP_DEBUG)", minimum=0, maximum=1)
        t.add("net.inet.tcp.mssdflt", 536, "Default maximum segment size", minimum=64)
        t.add("net.inet.tcp.keepidle", 14400, "Keepalive idle time (s)", minimum=1)
        t.add("net.inet.tcp.keepintvl", 150, "Keepalive probe interval (s)", minimum=1)
        t.add("net.inet.tcp.keepcnt", 8, "Keepalive probe count", minimum=1)
        t.add("net.inet.tcp.msl", 30, "Maximum segment lifetime (s)", minimum=0)
        t.add("net.inet.tcp.sack.enable", 1, "Enable RFC 2018 SACK", minimum=0, maximum=1)
        t.add("net.inet.tcp.win_scale", 1, "Use RFC 7323 window scaling", minimum=0, maximum=1)
        t.add("net.inet.tcp.timestamps", 1, "Use RFC 7323 timestamps", minimum=0, maximum=1)
        t.add("net.inet.tcp.congctl.selected", "newreno", "Congestion control algorithm")
        t.add("net.inet.tcp.syncookies", 1, "Use SYN cookies when the listen queue is full",
              minimum=0, maximum=1)
        t.add("net.inet.udp.sendspace", 9216, "Default UDP send buffer size", minimum=512)
        t.add("net.inet.udp.recvspace", 41600, "Default UDP receive buffer size", minimum=512)
        t.add("net.inet.udp.checksum", 1, "Compute UDP checksums", minimum=0, maximum=1)
        t.add("qnx.kern.enmap", int(c.enmap), "Map enX names onto Ethernet interfaces",
              minimum=0, maximum=1)
        t.add("qnx.net.inet.tcp.qnx_delack", 1, "Delayed ACK", minimum=0, maximum=1)
        t.add("qnx.net.inet.tcp.rto", 1000, "Initial retransmission timeout (ms)", minimum=1)
        t.add("qnx.net.inet.tcp.drop_synfin", 1, "Drop segments with both SYN and FIN",
              minimum=0, maximum=1)
        if self.variant.inet6:
            t.add("net.inet6.ip6.forwarding", int(c.forward6), "Enable forwarding of INET6 datagrams",
                  minimum=0, maximum=1)
            t.add("net.inet6.ip6.hlim", 64, "Default hop limit", minimum=1, maximum=255)

    # -- interfaces -----------------------------------------------------------------------

    def interface(self, name: str) -> Interface:
        """Look an interface up by name, mapping ``enN`` as io-pkt's enmap does."""
        iface = self._by_name.get(name)
        if iface is None and self.sysctl.get("qnx.kern.enmap"):
            iface = self._enmap().get(name)
        if iface is None:
            # What SIOCGIFFLAGS answers for an unknown name: ENXIO.
            raise StackError(errno.ENXIO, f"no interface {name}")
        return iface

    def _enmap(self) -> dict[str, Interface]:
        """en<N> -> the N-th Ethernet interface not itself named enX (reference §3.5)."""
        taken = {int(m.group(1)) for n in self._by_name if (m := _EN_NAME.match(n))}
        mapping: dict[str, Interface] = {}
        unit = 0
        for iface in self.interfaces.values():
            if iface.kind != IFT_ETHER or _EN_NAME.match(iface.name):
                continue
            while unit in taken:
                unit += 1
            mapping[f"en{unit}"] = iface
            unit += 1
        return mapping

    def mapped_name(self, iface: Interface) -> str | None:
        for alias, other in self._enmap().items():
            if other is iface:
                return alias
        return None

    def interface_names(self) -> list[str]:
        return [i.name for i in self.interfaces.values()]

    def allocate_name(self, prefix: str, unit: int | None = None) -> str:
        """Name a new interface as io-pkt does (SRC device_qnx.c).

        No unit: the lowest unused one for the prefix. An explicit unit that is taken fails
        with EALREADY; a name that would not fit in 15 characters with ENAMETOOLONG.
        """
        if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", prefix) or prefix[-1].isdigit():
            raise StackError(errno.EINVAL, f"bad interface name prefix {prefix!r}")
        if unit is None or unit < 0:
            unit = 0
            while f"{prefix}{unit}" in self._by_name:
                unit += 1
        name = f"{prefix}{unit}"
        if len(name) >= IFNAMSIZ:
            raise StackError(errno.ENAMETOOLONG, f"interface name {name} is too long")
        if name in self._by_name:
            raise StackError(errno.EALREADY, f"interface {name} already exists")
        return name

    def attach(self, iface: Interface) -> Interface:
        if iface.name in self._by_name:
            raise StackError(errno.EALREADY, f"interface {iface.name} already exists")
        iface.index = self._next_index
        self._next_index += 1
        self.interfaces[iface.index] = iface
        self._by_name[iface.name] = iface
        self._notify("interface_changed", iface)
        return iface

    def new_interface(self, prefix: str, unit: int | None = None, **fields) -> Interface:
        """Name, build and attach an interface in one step (what drivers call)."""
        name = self.allocate_name(prefix, unit)
        return self.attach(Interface(name=name, index=0, **fields))

    def detach(self, iface: Interface) -> None:
        for ifa in list(iface.addrs):
            self._remove_address(iface, ifa)
        self.interfaces.pop(iface.index, None)
        self._by_name.pop(iface.name, None)
        self.tx_pending.pop(iface.index, None)
        iface.txq.clear()
        self._notify("interface_detached", iface)

    def create_loopback(self, prefix: str = "lo", unit: int | None = None) -> Interface:
        iface = self.new_interface(
            prefix, unit, kind=IFT_LOOP, mtu=LOMTU,
            flags=IFF_LOOPBACK | IFF_RUNNING | IFF_MULTICAST, description="Software Loopback")
        if iface.name == "lo0":
            # loopconfig(): lo0 comes up with 127.0.0.1/8 (and ::1 on v6) at start.
            iface.flags |= IFF_UP
            self.add_address(iface, ipaddress.ip_address("127.0.0.1"), 8)
            if self.variant.inet6:
                self.add_address(iface, ipaddress.ip_address("::1"), 128)
                self.add_address(iface, ipaddress.ip_address("fe80::1"), 64)
        return iface

    def _clone_loopback(self, prefix: str, unit: int) -> Interface:
        return self.create_loopback(prefix, unit)

    def create(self, name: str) -> Interface:
        """``ifconfig NAME create``: make a clone interface (NetBSD if_clone_create)."""
        m = _IF_NAME.match(name)
        if m is None or m.group(1) not in self.cloners:
            raise StackError(errno.EINVAL, f"no interface cloner for {name!r}")
        if name in self._by_name:
            raise StackError(errno.EEXIST, f"interface {name} already exists")
        iface = self.cloners[m.group(1)](m.group(1), int(m.group(2)))
        iface.cloner = m.group(1)
        return iface

    def destroy(self, name: str) -> None:
        """``ifconfig NAME destroy``: cloned interfaces, and drivers that allow it."""
        iface = self._by_name.get(name)
        if iface is None:
            raise StackError(errno.ENXIO, f"no interface {name}")
        if iface is self.lo0:
            raise StackError(errno.EPERM, "lo0 cannot be destroyed")
        detach = getattr(iface.driver, "destroy_interface", None)
        if iface.cloner is None and detach is None:
            raise StackError(errno.EOPNOTSUPP, f"{name} was not created by a cloner and its driver cannot detach it")
        self.detach(iface)
        if detach is not None:
            detach(iface)

    # -- configuration --------------------------------------------------------------------

    def set_flags(self, iface: Interface, set_bits: int = 0, clear_bits: int = 0) -> None:
        for bits in (set_bits, clear_bits):
            if bits & ~USER_FLAGS:
                raise StackError(errno.EINVAL, f"flags {bits:#x} are not settable")
        old = iface.flags
        flags = (old | set_bits) & ~clear_bits
        if not iface.is_loopback:
            # if_up()/if_down(): the driver's init sets RUNNING, its stop clears it.
            flags = flags | IFF_RUNNING if flags & IFF_UP else flags & ~IFF_RUNNING
        iface.flags = flags
        if flags != old:
            self._notify("interface_changed", iface)

    def up(self, iface: Interface) -> None:
        self.set_flags(iface, set_bits=IFF_UP)

    def down(self, iface: Interface) -> None:
        self.set_flags(iface, clear_bits=IFF_UP)

    def set_mtu(self, iface: Interface, mtu: int) -> None:
        limit = getattr(iface.driver, "max_mtu", None) or (LOMTU if iface.is_loopback else 9000)
        low = getattr(iface.driver, "min_mtu", 68)    # tun/gre 576, gif 1280 (if_tun.c, if_gre.c, if_gif.c)
        if not low <= mtu <= limit:
            raise StackError(errno.EINVAL, f"mtu {mtu} out of range {low}..{limit} for {iface.name}")
        iface.mtu = mtu
        self._notify("interface_changed", iface)

    def set_capabilities(self, iface: Interface, enable: int = 0, disable: int = 0) -> None:
        """SIOCSIFCAP (``ifconfig IF [-]tso4 [-]tcp4csum ...``): switch offloads on or off.

        As NetBSD's ether_ioctl: asking for a capability the driver does not have is
        EINVAL. The driver hears of it through ``interface_changed`` (apply_config).
        """
        missing = (enable | disable) & ~iface.capabilities
        if missing:
            raise StackError(errno.EINVAL, f"{iface.name} cannot offload "
                                           f"{cap_names(missing) or hex(missing)}")
        enabled = (iface.enabled | enable) & ~disable
        if enabled != iface.enabled:
            iface.enabled = enabled
            self._notify("interface_changed", iface)

    def add_address(self, iface: Interface, address, prefixlen: int | None = None, *,
                    broadcast=None, dest=None, replace_primary: bool = False, flags6: int = 0,
                    pltime: int | None = None, vltime: int | None = None,
                    now: Instant | None = None) -> IfAddr:
        """SIOCAIFADDR: add (or, for an address already there, update) one address.

        ``replace_primary`` is ``ifconfig IF ADDR`` without ``alias``: the interface's first
        address of that family is replaced instead of a new one added (NetBSD ifconfig).
        IPv6 only (SIOCAIFADDR_IN6's ifra_flags and ifra_lifetime): ``flags6`` the
        IN6_IFF_ANYCAST / TENTATIVE / DEPRECATED the user asked for, ``pltime``/``vltime``
        seconds (None: infinite) after which the address is deprecated / removed, counted
        from ``now`` (the latest input or poll when not given).
        """
        address = ipaddress.ip_address(address)
        bits = address.max_prefixlen
        if address.version == 6 and not self.variant.inet6:
            raise StackError(errno.EAFNOSUPPORT, f"{self.variant.name} has no IPv6")
        if prefixlen is None:
            prefixlen = _classful_prefix(address) if address.version == 4 else 64
        if not 0 <= prefixlen <= bits:
            raise StackError(errno.EINVAL, f"prefix length {prefixlen} out of range 0..{bits}")
        if address.is_multicast or (address.version == 4 and address == ipaddress.IPv4Address(0xFFFFFFFF)):
            raise StackError(errno.EINVAL, f"{address} is not a unicast address")
        if address.version == 4 and (flags6 or pltime is not None or vltime is not None):
            raise StackError(errno.EINVAL, "anycast, tentative, pltime and vltime are inet6 parameters")
        if pltime is not None and (vltime is not None and pltime > vltime or pltime < 0) or \
                vltime is not None and vltime < 0:
            raise StackError(errno.EINVAL, f"bad lifetimes: pltime {pltime} vltime {vltime}")
        if broadcast is not None:
            broadcast = ipaddress.ip_address(broadcast)
        if dest is not None:
            dest = ipaddress.ip_address(dest)
        if address.version == 4 and broadcast is None and iface.flags & IFF_BROADCAST and prefixlen < 31:
            broadcast = ipaddress.ip_interface(f"{address}/{prefixlen}").network.broadcast_address
        for ifa in iface.addrs:
            if ifa.address == address:
                self._remove_address(iface, ifa)
                break
        else:
            if replace_primary:
                same = [a for a in iface.addrs if a.address.version == address.version]
                if same:
                    self._remove_address(iface, same[0])
        ifa = IfAddr(address, prefixlen, broadcast, dest, flags6)
        # The primary address stays first: ifconfig without alias replaces it.
        if replace_primary:
            iface.addrs.insert(0, ifa)
        else:
            iface.addrs.append(ifa)
        # SIOCINITIFADDR: giving an interface an address brings it up (NetBSD ether_ioctl,
        # loioctl), so "ifconfig wm0 10.0.0.2" alone is enough. Up first, so the layers
        # told about the address (a gratuitous ARP) can already send.
        if not iface.flags & IFF_UP:
            self.up(iface)
        self._notify("address_added", iface, ifa)
        if pltime is not None or vltime is not None:
            self.inet6.rtr.set_lifetimes(iface, ifa, pltime, vltime, self.last_now if now is None else now)
        return ifa

    def delete_address(self, iface: Interface, address) -> None:
        address = ipaddress.ip_address(address)
        for ifa in iface.addrs:
            if ifa.address == address:
                self._remove_address(iface, ifa)
                return
        raise StackError(errno.EADDRNOTAVAIL, f"{address} is not configured on {iface.name}")

    def _remove_address(self, iface: Interface, ifa: IfAddr) -> None:
        iface.addrs.remove(ifa)
        self._notify("address_removed", iface, ifa)

    def set_link(self, iface: Interface, up: bool, media: str | None = None) -> None:
        """Drivers report carrier changes here (``status: active`` / ``no carrier``)."""
        changed = iface.link_up != up or (media is not None and media != iface.media)
        iface.link_up = up
        if media is not None:
            iface.media = media
        if changed:
            self._notify("interface_changed", iface)

    def local_address(self, address) -> tuple[Interface, IfAddr] | None:
        address = ipaddress.ip_address(address)
        for iface in self.interfaces.values():
            for ifa in iface.addrs:
                if ifa.address == address:
                    return iface, ifa
        return None

    def _notify(self, hook: str, *args) -> None:
        for layer in self.layers:
            fn = getattr(layer, hook, None)
            if fn is not None:
                fn(*args)

    # -- packets --------------------------------------------------------------------------

    def input(self, iface: Interface, frames: Iterable[bytes | memoryview], now: Instant) -> None:
        """Frames a driver read from ``iface``; counted, then handed to the protocol layer.

        The batch stays a batch: TCP holds back what each connection would send until
        the whole batch is in (``TcpLayer.begin_input``/``end_input``), so a burst of
        segments is acknowledged once, as Linux does under GRO. On a link that carries a
        virtio_net_hdr (``iface.vnet_hdr``) the header is taken off here and passed up
        only when it says something (a checksum to trust, a super-segment).
        """
        self.last_now = now
        stats = iface.stats
        handler = self.frame_input
        hl = iface.vnet_hdr
        if iface.bpf:
            frames = list(frames)
            _tap(iface, frames, hl)
        if not iface.flags & IFF_UP or handler is None:
            for frame in frames:
                stats.ipackets += 1
                stats.ibytes += max(0, len(frame) - hl)
                if iface.flags & IFF_UP:
                    stats.noproto += 1
                else:
                    stats.iqdrops += 1
            return
        pool = self.mbufs
        items = []
        append = items.append
        count = nbytes = 0
        # The driver needs a chain for each frame (io-pkt receive.c): none -> dropped,
        # counted in the interface's iqdrops and the pool's denied requests. Fast test
        # first: a chain never costs more than 2n + MSIZE + mclbytes, and nothing in
        # this loop takes from the pool, so the room is worked out once (again after
        # admit(), which may drain).
        room = pool.limit - pool.in_use - pool.slack
        for frame in frames:
            n = len(frame)
            count += 1
            nbytes += n
            if 2 * n > room:
                if not pool.admit(n):
                    stats.iqdrops += 1
                    continue
                room = pool.limit - pool.in_use - pool.slack
            mv = memoryview(frame)
            vh = None
            if hl:
                if n < hl:
                    stats.ierrors += 1
                    continue
                if mv[0] or mv[1]:
                    vh = mv[:hl]
                mv = mv[hl:]
            append((mv, vh))
        stats.ipackets += count
        stats.ibytes += nbytes - count * hl
        if iface.bridge is not None:
            # A bridge member: the bridge forwards, and says what is ours and on which port.
            self.deliver_batch(iface.bridge.input(iface, items, now), now)
            return
        if self.gro and len(items) > 1 and iface.kind == IFT_ETHER:
            # Joining needs two segments with data; a frame no longer than a bare header
            # (Ethernet, IPv6, TCP with 40 bytes of options) carries at most a few bytes,
            # and Linux marks such writes PSH, which ends a run. A batch without two longer
            # ones (a connection's ACK, byte and FIN) goes up unparsed by GRO: the result
            # is the same either way (tests/unit/inet/test_offload.py), only cheaper.
            big = 0
            for mv, _vh in items:
                if len(mv) > GRO_MIN_FRAME:
                    big += 1
                    if big == 2:
                        break
            if big == 2:
                inet6 = self.inet6
                items = gro.coalesce(items, self.inet.is_local, inet6.is_local if inet6 is not None else None)
        # TcpLayer.begin_input and end_input written out where they do nothing: a batch
        # that touched no connection (a ping) has nothing for end_input to send, and each
        # call before the reply is written adds to its latency (docs/performance.md,
        # "Ping, side by side").
        tcp = self.tcp
        if tcp.pending is None:
            tcp.pending = {}
        try:
            for mv, vh in items:
                handler(iface, mv, now, vh)
        finally:
            if tcp.pending:
                tcp.end_input(now)
            else:
                tcp.pending = None

    def deliver_batch(self, items, now: Instant) -> None:
        """``(iface, frame, vh)`` items for the protocol layer, as one input batch."""
        handler = self.frame_input
        tcp = self.tcp
        tcp.begin_input()
        try:
            for iface, mv, vh in items:
                handler(iface, mv, now, vh)
        finally:
            tcp.end_input(now)

    def deliver(self, iface: Interface, frame, now: Instant, vh=None) -> None:
        """A frame entering ``iface`` from inside the core (a tunnel's inner packet): counted,
        captured and handed up as a driver's would be, inside the current input batch."""
        stats = iface.stats
        stats.ipackets += 1
        stats.ibytes += len(frame)
        if iface.bpf:
            _tap(iface, (frame,), 0)
        if not iface.flags & IFF_UP or self.frame_input is None:
            stats.iqdrops += 1
            return
        self.frame_input(iface, memoryview(frame), now, vh)

    def transmit(self, iface: Interface, frame: bytes, framed: bool = False) -> None:
        """Send one frame on ``iface``: a pseudo-interface's ``if_output`` takes it (a
        tunnel encapsulates, a bridge picks its ports), any other is queued for its driver
        (``link_transmit``)."""
        out = iface.if_output
        if out is not None:
            out(iface, frame, framed)
            return
        self.link_transmit(iface, frame, framed)

    def link_transmit(self, iface: Interface, frame: bytes, framed: bool = False) -> None:
        """Queue one frame on ``iface``; loopback frames come back in at the next poll.

        On a link with ``vnet_hdr`` every frame needs the header in front: ``framed``
        says the caller put it there (with offload work for the device), otherwise an
        all-zero one is added."""
        stats = iface.stats
        if not iface.flags & IFF_UP:
            stats.oerrors += 1
            return
        if iface.bpf:
            _tap(iface, (frame,), iface.vnet_hdr if framed else 0)
        stats.opackets += 1
        hl = iface.vnet_hdr
        if hl:
            if framed:
                stats.obytes += len(frame) - hl
            else:
                stats.obytes += len(frame)
                frame = PLAIN_VNET_HDR + frame
        else:
            stats.obytes += len(frame)
        if iface.kind == IFT_LOOP:
            self._loop_pending.append((iface, frame))
            return
        iface.txq.append(frame)
        self.tx_pending[iface.index] = iface

    def take_tx(self) -> list[Interface]:
        """Interfaces with queued frames; the caller drains each ``iface.txq``."""
        if not self.tx_pending:
            return []
        pending = list(self.tx_pending.values())
        self.tx_pending.clear()
        return pending

    def notify_socket(self, sock: object) -> None:
        """A socket became readable, writable or got an error (called by protocols)."""
        self.socket_events[id(sock)] = sock

    def take_socket_events(self) -> list:
        """Sockets whose readiness changed since the last call (the file layer wakes them)."""
        if not self.socket_events:
            return []
        events = list(self.socket_events.values())
        self.socket_events.clear()
        return events

    def poll(self, now: Instant) -> None:
        self.last_now = now
        # Loopback delivery is deferred to here so a reply never recurses into its request.
        while self._loop_pending:
            batch, self._loop_pending = self._loop_pending, []
            self.tcp.begin_input()
            try:
                for iface, frame in batch:
                    iface.stats.ipackets += 1
                    iface.stats.ibytes += len(frame)
                    if self.loop_input is None:
                        iface.stats.noproto += 1
                    else:
                        self.loop_input(iface, memoryview(frame), now)
            finally:
                self.tcp.end_input(now)
        for layer in self.layers:
            fn = getattr(layer, "poll", None)
            if fn is not None:
                fn(now)
        # What ran re-armed its timers through timers_changed; expired entries a layer
        # dropped lazily are re-read here too, once per poll.
        self._timers_ok = False

    def timers_changed(self) -> None:
        """A deadline of a layer other than TCP was armed, moved or cancelled: the next
        ``poll_at`` asks those layers again. Every timer change outside TCP calls this."""
        self._timers_ok = False

    # Tests set this: every poll_at then also asks every layer and checks the cache.
    check_timers = False

    def poll_at(self) -> Instant | None:
        # Asked after every request and every driver batch (Runtime.settle/input): the
        # layers' bound poll_at methods are looked up once per change of self.layers, and
        # the non-live layers are asked only after one of their timers changed.
        if self._loop_pending:
            return 0
        layers = self.layers
        if self._poll_layers is not layers or self._poll_count != len(layers):
            fns = [(getattr(layer, "poll_at_live", False), fn) for layer in layers
                   if (fn := getattr(layer, "poll_at", None)) is not None]
            self._poll_fns = tuple(fn for live, fn in fns if not live)
            self._live_fns = tuple(fn for live, fn in fns if live)
            self._poll_layers, self._poll_count = layers, len(layers)
            self._timers_ok = False
        if self._timers_ok:
            best = self._timers_at
            if self.check_timers:
                assert best == self._earliest(self._poll_fns), \
                    f"cached deadline {best}, layers say {self._earliest(self._poll_fns)}"
        else:
            best = self._timers_at = self._earliest(self._poll_fns)
            self._timers_ok = True
        for fn in self._live_fns:
            d = fn()
            if d is not None and (best is None or d < best):
                best = d
        return best

    @staticmethod
    def _earliest(fns) -> Instant | None:
        best = None
        for fn in fns:
            d = fn()
            if d is not None and (best is None or d < best):
                best = d
        return best


def _tap(iface: Interface, frames, hl: int) -> None:
    """Hand each frame, without its virtio header, to every capture on ``iface``."""
    taps = iface.bpf
    for frame in frames:
        data = memoryview(frame)[hl:] if hl else frame
        for t in taps:
            t.tap(data)


def _classful_prefix(address: ipaddress.IPv4Address) -> int:
    """The netmask ifconfig assumes when none is given (class A/B/C, as in_ifinit did)."""
    first = int(address) >> 24
    if first < 128:
        return 8
    if first < 192:
        return 16
    return 24
