"""devnp-vxlan: an Ethernet segment carried in UDP with VXLAN framing (RFC 7348). No root.

Every frame travels as one UDP datagram: an 8-byte VXLAN header, then the whole inner
Ethernet frame (no FCS). RFC 7348 §5:

    0                   1                   2                   3
    |R|R|R|R|I|R|R|R|            Reserved (24 bits)                 |
    |        VXLAN Network Identifier (VNI)         |   Reserved    |

The I flag must be 1; the other flag bits and the reserved fields are sent as zero and
ignored on receipt. A datagram without the I flag, for another VNI, or too short to hold
an Ethernet header is a counted drop (``drops``).

Where frames go (the VTEP's job, RFC 7348 §4): a frame for a unicast MAC we have learnt
goes to the endpoint it was learnt from; everything else (broadcast, multicast, unknown
unicast) is flooded: head-end replication to every ``peer=`` plus one copy to ``group=``.
Learning maps an inner source MAC to the outer source *address*; the destination port is
that peer's configured port, else ``dstport`` - Linux sends from a hashed source port and
listens on the well-known one, so the source port says nothing about where to reply.

Options:

``vni=N``            the segment, 0..16777215 (required).
``bind=ADDR:PORT``   local UDP endpoint; default ``0.0.0.0:4789`` (IPv6 as ``[ADDR]:PORT``).
``peer=ADDR:PORT``   a remote endpoint; repeatable. PORT defaults to ``dstport``.
``group=ADDR``       a multicast group to join and flood to (port ``dstport``).
``dstport=PORT``     destination port for learnt and group endpoints (default: bind's port).
``ttl=N``            multicast TTL (default 1).
``netns=NS``         make the UDP socket in that network namespace.
``mac=MAC``, ``mtu=N``  our station address (default random, locally administered) and
                     MTU: by default the underlay's MTU less 50 bytes of outer headers, as
                     Linux's vxlan sizes itself from its lower device - 1450 over
                     Ethernet, 65000 when the socket and every peer are on loopback.
``learn=0``          turn learning off (every frame is flooded).

Batching (Linux UDP GSO/GRO, ``udp(7)``): frames to one endpoint leave as one
``sendmsg`` with ``UDP_SEGMENT`` - the kernel cuts the buffer into the datagrams, each
an ordinary VXLAN packet a Linux vxlan device takes - and the socket has ``UDP_GRO`` on,
so a burst arrives as one buffer with the datagram size in a control message. Over
loopback the kernel never cuts a GSO buffer at all: between two instances on one host a
64 KB burst crosses as one skb. Kernels without them fall back to one datagram a call.
"""

import errno
import ipaddress
import socket
import struct
import time

from ..stack.errors import StackError
from ..stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER
from . import _linux
from .base import Driver

VXLAN_PORT = 4789          # IANA-assigned (RFC 7348 §5)
VXLAN_HLEN = 8
LOOPBACK_MTU = 65536       # Linux lo
FLAG_I = 0x08
ETHER_HLEN = 14
MAX_VNI = (1 << 24) - 1
LEARN_MAX = 4096           # bounded table: a flood of random source MACs cannot grow us
LEARN_AGE = 300.0          # seconds, Linux vxlan's default ageing
# <linux/udp.h>
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
GSO_MAX_SEGS = 64          # UDP_MAX_SEGMENTS is 64 on older kernels, 128 on newer
GSO_MAX_BYTES = 65000      # one GSO buffer stays under the 64 KB IP datagram limit
_CMSG_SPACE = socket.CMSG_SPACE(4)
_INT = struct.Struct("@i")        # UDP_GRO reports the size as an int
_U16 = struct.Struct("@H")        # UDP_SEGMENT takes a __u16 (udp_cmsg_send checks the length)


def parse_endpoint(text: str, default_port: int | None, what: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``ADDR``, ``[V6]:PORT`` -> (address text, port)."""
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        addr = ipaddress.ip_address(host)
        port_num = default_port if port in (None, "") else int(port, 10)
    except ValueError:
        raise StackError(errno.EINVAL, f"option {what}={text}: not ADDR:PORT") from None
    if port_num is None or not 0 <= port_num <= 65535:
        raise StackError(errno.EINVAL, f"option {what}={text}: bad port")
    return str(addr), port_num


class VxlanStats:
    """Driver-level counters (the interface's own counters are the stack's)."""

    def __init__(self):
        self.drops_short = 0     # too short for VXLAN + Ethernet headers
        self.drops_flags = 0     # I flag clear
        self.drops_vni = 0       # another segment
        self.drops_self = 0      # our own multicast looped back
        self.flooded = 0         # datagrams sent by flooding (one per copy)
        self.unicast = 0         # frames sent to one learnt endpoint
        self.gso_sends = 0       # sendmsg calls that carried several datagrams (UDP_SEGMENT)
        self.gro_reads = 0       # reads that brought several datagrams (UDP_GRO)

    @property
    def drops(self) -> int:
        return self.drops_short + self.drops_flags + self.drops_vni + self.drops_self


class VxlanDriver(Driver):
    name = "devnp-vxlan"
    description = "VXLAN (RFC 7348) virtual Ethernet"
    KNOWN = frozenset({"vni", "bind", "peer", "group", "dstport", "ttl", "netns", "mac", "mtu", "learn"})
    max_mtu = 65000

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        self.sock: socket.socket | None = None
        self.vni = 0
        self.peers: list[tuple[str, int]] = []
        self.group: tuple[str, int] | None = None
        self.local: tuple[str, int] = ("0.0.0.0", VXLAN_PORT)
        self.learn = True
        self.fdb: dict[bytes, tuple[tuple[str, int], float]] = {}   # MAC -> (endpoint, seen)
        self.stats = VxlanStats()
        self.header = b""
        self.dstport = VXLAN_PORT
        self.gro = False           # the socket has UDP_GRO on
        self.gso = True            # sendmsg takes UDP_SEGMENT (until it says otherwise)

    # -- attach / detach --------------------------------------------------------------------

    def attach(self):
        opts = self.options
        opts.check_known(self.KNOWN)
        vni = opts.get_int("vni", None, minimum=0, maximum=MAX_VNI)
        if vni is None:
            raise StackError(errno.EINVAL, "option vni= is required")
        self.vni = vni
        self.header = struct.pack("!B3xI", FLAG_I, vni << 8)
        bind_addr, bind_port = parse_endpoint(opts.get("bind") or f"0.0.0.0:{VXLAN_PORT}", VXLAN_PORT, "bind")
        dstport = opts.get_int("dstport", bind_port or VXLAN_PORT, minimum=1, maximum=65535)
        self.dstport = dstport
        self.peers = [parse_endpoint(p, dstport, "peer") for p in opts.get_all("peer")]
        group = opts.get("group")
        family = ipaddress.ip_address(bind_addr).version
        if group:
            gaddr, _ = parse_endpoint(group, dstport, "group")
            if not ipaddress.ip_address(gaddr).is_multicast:
                raise StackError(errno.EINVAL, f"option group={group}: not a multicast address")
            self.group = (gaddr, dstport)
        for addr, _ in self.peers + ([self.group] if self.group else []):
            if ipaddress.ip_address(addr).version != family:
                raise StackError(errno.EINVAL, f"{addr}: not the same address family as bind={bind_addr}")
        ttl = opts.get_int("ttl", 1, minimum=0, maximum=255)
        self.learn = opts.get("learn") is None or opts.get_flag("learn")
        mtu = opts.get_int("mtu", None, minimum=68, maximum=self.max_mtu)
        if mtu is None:
            mtu = self._default_mtu(bind_addr)
        mac = _linux.mac_option(opts, getattr(self.ctx.stack, "rng", None))
        netns = opts.get("netns") or None

        self.sock = _linux.in_netns(netns, self._open, family, bind_addr, bind_port, ttl)
        self.local = self.sock.getsockname()[:2]
        try:
            iface = self.ctx.new_interface(
                "vx", kind=IFT_ETHER, mtu=mtu, mac=mac,
                flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST,
                media="Ethernet autoselect (vxlan)",
                description=f"VXLAN vni {vni} on {self.local[0]}:{self.local[1]}")
        except BaseException:
            _linux.close_fd(self.sock)
            raise
        iface.driver = self
        self.interfaces = [iface]
        return self.interfaces

    def _default_mtu(self, bind_addr: str) -> int:
        """Linux's rule: the lower device's MTU less the 50 bytes of outer headers. An
        underlay wholly on loopback (bound there, every peer there, no group) has lo's
        65536; anything else is assumed to be 1500 Ethernet, hence 1450. Instances on one
        host then carry 64 KB frames - one TCP segment where 1450 would need 45."""
        ends = [bind_addr] + [a for a, _ in self.peers]
        if self.group is None and all(ipaddress.ip_address(a).is_loopback for a in ends):
            return min(LOOPBACK_MTU - 50, self.max_mtu)
        return 1450

    def _open(self, family: int, addr: str, port: int, ttl: int) -> socket.socket:
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        sock = socket.socket(af, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            if self.group is not None:
                # Several instances on one host may listen to one group: share the port.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                # A socket bound to a unicast address never sees multicast (Linux matches
                # the destination); listen on the wildcard, send via the given interface.
                bind_to = "0.0.0.0" if family == 4 else "::"
            else:
                bind_to = addr
            # Room for bursts: a default 200 KB buffer holds only ~130 full frames.
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
                except OSError:
                    pass
            sock.bind((bind_to, port))
            if self.group is not None:
                self._join(sock, family, addr, ttl)
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1)
                self.gro = True
            except OSError:
                self.gro = False   # pre-5.0 kernel: one datagram a read
            return sock
        except OSError as exc:
            sock.close()
            raise StackError(exc.errno or errno.EINVAL, f"bind {addr}:{port}: {exc.strerror}") from None

    def _join(self, sock: socket.socket, family: int, local: str, ttl: int) -> None:
        gaddr = self.group[0]
        if family == 4:
            local_n = socket.inet_aton(local)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(gaddr) + local_n)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            if local != "0.0.0.0":
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local_n)
        else:
            mreq = socket.inet_pton(socket.AF_INET6, gaddr) + struct.pack("@I", 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        # Loopback stays on so instances on one host hear each other; our own copies are
        # recognised by their source endpoint and dropped.

    def detach(self):
        if self.sock is not None:
            _linux.close_fd(self.sock)
            self.sock = None
        self.interfaces = []

    # -- receive --------------------------------------------------------------------------

    async def run(self):
        sock = self.sock
        if sock is None:
            return   # detached before the task first ran
        iface = self.interfaces[0]
        recvmsg = sock.recvmsg
        while await _linux.wait_readable(sock) and self.sock is sock:
            frames = []
            now = time.monotonic()
            for _ in range(_linux.BATCH):
                try:
                    data, ancdata, _flags, src = recvmsg(65536, _CMSG_SPACE)
                except BlockingIOError:
                    break
                except OSError:
                    # An ICMP error queued on the socket (e.g. a peer's port unreachable).
                    iface.stats.ierrors += 1
                    continue
                size = len(data)
                for level, kind, value in ancdata:
                    if level == SOL_UDP and kind == UDP_GRO:
                        size = _INT.unpack_from(value)[0] or size   # GRO: datagrams of this size
                if size >= len(data):
                    frame = self._decap(data, src, now, iface.mac)
                    if frame is not None:
                        frames.append(frame)
                    continue
                self.stats.gro_reads += 1
                view = memoryview(data)
                for off in range(0, len(data), size):
                    frame = self._decap(view[off:off + size], src, now, iface.mac)
                    if frame is not None:
                        frames.append(frame)
                if len(frames) >= _linux.BATCH:
                    break
            if frames:
                self.ctx.input(iface, frames)

    def _decap(self, data: bytes, src, now: float, mac: bytes):
        stats = self.stats
        if len(data) < VXLAN_HLEN + ETHER_HLEN:
            stats.drops_short += 1
            return None
        flags, vni_word = struct.unpack_from("!B3xI", data)
        if not flags & FLAG_I:
            stats.drops_flags += 1
            return None
        if vni_word >> 8 != self.vni:
            stats.drops_vni += 1
            return None
        # Our own datagrams come back to us through multicast loopback (or a peer= naming
        # ourselves); instances sharing a host and port are told apart by the inner source.
        if (src[0], src[1]) == self.local or data[VXLAN_HLEN + 6:VXLAN_HLEN + 12] == mac:
            stats.drops_self += 1
            return None
        frame = memoryview(data)[VXLAN_HLEN:] if isinstance(data, bytes) else data[VXLAN_HLEN:]
        if self.learn and not data[VXLAN_HLEN + 6] & 1:
            self._learn(bytes(data[VXLAN_HLEN + 6:VXLAN_HLEN + 12]), src[0], now)
        return frame

    def _learn(self, mac: bytes, addr: str, now: float) -> None:
        fdb = self.fdb
        old = fdb.get(mac)
        if old is not None and old[0][0] == addr:
            if now - old[1] > 1.0:
                fdb[mac] = (old[0], now)   # refresh the age at most once a second
            return
        port = next((p for a, p in self.peers if a == addr), self.dstport)
        if old is None and len(fdb) >= LEARN_MAX:
            self._expire(now)
            if len(fdb) >= LEARN_MAX:
                return
        fdb[mac] = ((addr, port), now)

    def _expire(self, now: float) -> None:
        for mac in [m for m, (_, seen) in self.fdb.items() if now - seen > LEARN_AGE]:
            del self.fdb[mac]

    # -- transmit -------------------------------------------------------------------------

    def transmit(self, iface, frames):
        sock = self.sock
        if sock is None:
            iface.stats.oerrors += len(frames)
            return
        header = self.header
        fdb = self.fdb
        flood = self.peers + ([self.group] if self.group else [])
        now = time.monotonic()
        sendto = sock.sendto
        # Consecutive datagrams of one size to one endpoint go out as one GSO send.
        burst: list = []
        burst_to = None
        for frame in frames:
            datagram = header + bytes(frame)
            targets = flood
            if not frame[0] & 1:
                hit = fdb.get(bytes(frame[:6]))
                if hit is not None and now - hit[1] <= LEARN_AGE:
                    targets = (hit[0],)
            if targets is flood:
                self.stats.flooded += len(flood)
            else:
                self.stats.unicast += 1
            if not targets:
                iface.stats.oerrors += 1   # nowhere to send it: no peer, no group, not learnt
                continue
            if len(targets) == 1 and self.gso:
                target = targets[0]
                if burst and (target != burst_to or len(datagram) > len(burst[0])
                              or len(burst[-1]) != len(burst[0]) or len(burst) >= GSO_MAX_SEGS
                              or (len(burst) + 1) * len(burst[0]) > GSO_MAX_BYTES):
                    self._send_burst(sock, burst, burst_to, iface)
                    burst = []
                burst.append(datagram)
                burst_to = target
                continue
            if burst:                  # keep the order: what waits goes first
                self._send_burst(sock, burst, burst_to, iface)
                burst = []
            for target in targets:
                try:
                    sendto(datagram, target)
                except (BlockingIOError, OSError):
                    # A full socket buffer or an unreachable peer: that copy is lost, as a
                    # full transmit ring would lose it.
                    iface.stats.oerrors += 1
        if burst:
            self._send_burst(sock, burst, burst_to, iface)

    def _send_burst(self, sock, burst: list, target, iface) -> None:
        """Datagrams of one size (the last may be shorter) to one endpoint: one sendmsg
        with UDP_SEGMENT when there are several, the kernel cutting them apart."""
        try:
            if len(burst) == 1:
                sock.sendto(burst[0], target)
            else:
                sock.sendmsg([b"".join(burst)], [(SOL_UDP, UDP_SEGMENT, _U16.pack(len(burst[0])))],
                             0, target)
                self.stats.gso_sends += 1
        except BlockingIOError:
            iface.stats.oerrors += len(burst)
        except OSError as exc:
            if len(burst) > 1 and exc.errno in (errno.EINVAL, errno.ENOPROTOOPT, errno.EIO):
                self.gso = False       # no UDP GSO here: one datagram a call from now on
                for datagram in burst:
                    try:
                        sock.sendto(datagram, target)
                    except OSError:
                        iface.stats.oerrors += 1
                return
            iface.stats.oerrors += len(burst)


iopkt_drvr_entry = VxlanDriver
