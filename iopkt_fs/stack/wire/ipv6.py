"""IPv6 headers and extension headers (RFC 8200 3, 4), addresses (RFC 4291).

Fixed header::

    0       4               12      16              24              32
    | ver=6 | traffic class | flow label                              |
    | payload length                | next header   | hop limit       |
    | source address (128 bits)                                       |
    | destination address (128 bits)                                  |

``Ipv6Packet.new_checked`` checks the version and that the payload length fits the
buffer, and cuts the view to 40 + payload length (RFC 8200 3: bytes past it are link
padding). There is no header checksum. Jumbograms (RFC 2675, payload length 0 plus a
hop-by-hop option) are not supported: length 0 means an empty payload.

Extension headers (RFC 8200 4) are parsed one at a time, by the layer that walks the
chain: ``Ipv6OptionsRepr`` (hop-by-hop, 0; destination options, 60), ``Ipv6RoutingRepr``
(43) and ``Ipv6FragmentRepr`` (44). Each ``parse`` raises ``Malformed`` if the header
does not fit; ``ext_header_len(nh, buf)`` gives a header's length without parsing it.
``iter_options`` walks an options header's TLVs with their offsets (the Parameter Problem
pointer needs them, RFC 8200 4.2).

Addresses are 16-byte ``bytes``; ``ip6``/``ip6_str`` convert from/to RFC 5952 text.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

from .errors import Malformed

__all__ = [
    "ALL_NODES",
    "ALL_ROUTERS",
    "HEADER_LEN",
    "LOOPBACK",
    "UNSPECIFIED",
    "Ipv6FragmentRepr",
    "Ipv6OptionsRepr",
    "Ipv6Packet",
    "Ipv6Repr",
    "Ipv6RoutingRepr",
    "eui64_link_local",
    "ext_header_len",
    "ip6",
    "ip6_str",
    "is_link_local",
    "is_multicast",
    "iter_options",
    "multicast_mac",
    "scope",
    "solicited_node",
]

HEADER_LEN = 40
MIN_MTU = 1280          # RFC 8200 5
DEFAULT_HLIM = 64

# Next Header values (IANA); the extension headers are RFC 8200 4.1's list.
NH_HOPOPTS = 0
NH_TCP = 6
NH_UDP = 17
NH_ROUTING = 43
NH_FRAGMENT = 44
NH_ICMPV6 = 58
NH_NONE = 59
NH_DSTOPTS = 60
OPTION_HEADERS = frozenset((NH_HOPOPTS, NH_DSTOPTS))
EXT_HEADERS = frozenset((NH_HOPOPTS, NH_ROUTING, NH_FRAGMENT, NH_DSTOPTS))

# Options (RFC 8200 4.2).
OPT_PAD1 = 0
OPT_PADN = 1
OPT_ROUTER_ALERT = 5     # RFC 2711

UNSPECIFIED = bytes(16)
LOOPBACK = bytes(15) + b"\x01"
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
_SOLICITED_PREFIX = bytes.fromhex("ff0200000000000000000001ff")

# ver/tc/flow, payload length, next header, hop limit, src, dst
_HDR = struct.Struct("!IHBB16s16s")
_U16 = struct.Struct("!H")
_FRAG = struct.Struct("!BxHI")
_ROUTING = struct.Struct("!BBBB")


class Ipv6Packet:
    """A read-only view of one IPv6 packet, cut to 40 + payload length."""

    __slots__ = ("_buf",)

    def __init__(self, buf):
        """Wrap ``buf`` unchecked: only for packets we built ourselves."""
        self._buf = buf if type(buf) is memoryview else memoryview(buf)

    @classmethod
    def new_checked(cls, buf) -> Ipv6Packet:
        """Wrap an untrusted packet; ``Malformed`` on a bad version or a lying length."""
        mv = buf if type(buf) is memoryview else memoryview(buf)
        n = len(mv)
        if n < HEADER_LEN:
            raise Malformed(f"ipv6: {n} bytes, header needs {HEADER_LEN}")
        if mv[0] >> 4 != 6:
            raise Malformed(f"ipv6: version {mv[0] >> 4}")
        total = HEADER_LEN + _U16.unpack_from(mv, 4)[0]
        if total > n:
            raise Malformed(f"ipv6: payload length {total - HEADER_LEN} exceeds {n - HEADER_LEN} bytes")
        return cls(mv[:total] if total < n else mv)

    @classmethod
    def new_quoted(cls, buf) -> Ipv6Packet:
        """The packet quoted in an ICMPv6 error (RFC 4443 2.4(c)): as much as fitted.

        Only the fixed header must be complete; the payload is whatever was quoted.
        """
        mv = buf if type(buf) is memoryview else memoryview(buf)
        if len(mv) < HEADER_LEN or mv[0] >> 4 != 6:
            raise Malformed("ipv6: quoted header cut or not version 6")
        return cls(mv)

    @property
    def version(self) -> int:
        return self._buf[0] >> 4

    @property
    def traffic_class(self) -> int:
        return (_U16.unpack_from(self._buf, 0)[0] >> 4) & 0xFF

    @property
    def flow_label(self) -> int:
        return int.from_bytes(self._buf[1:4], "big") & 0xFFFFF

    @property
    def payload_len(self) -> int:
        return _U16.unpack_from(self._buf, 4)[0]

    @property
    def next_header(self) -> int:
        return self._buf[6]

    @property
    def hop_limit(self) -> int:
        return self._buf[7]

    @property
    def src(self) -> bytes:
        return bytes(self._buf[8:24])

    @property
    def dst(self) -> bytes:
        return bytes(self._buf[24:40])

    @property
    def header(self) -> memoryview:
        return self._buf[:HEADER_LEN]

    @property
    def payload(self) -> memoryview:
        return self._buf[HEADER_LEN:]

    @property
    def datagram(self) -> memoryview:
        return self._buf

    def __len__(self) -> int:
        return len(self._buf)


@attrs.frozen
class Ipv6Repr:
    """The fixed IPv6 header as a value; ``payload_len`` stands in for the payload
    (extension headers included)."""

    src: bytes
    dst: bytes
    next_header: int
    payload_len: int
    hop_limit: int = DEFAULT_HLIM
    traffic_class: int = 0
    flow_label: int = 0

    @classmethod
    def parse(cls, packet_or_buf) -> Ipv6Repr:
        pkt = packet_or_buf if isinstance(packet_or_buf, Ipv6Packet) else Ipv6Packet.new_checked(packet_or_buf)
        word, plen, nh, hlim, src, dst = _HDR.unpack_from(pkt._buf, 0)
        return cls(src, dst, nh, plen, hlim, (word >> 20) & 0xFF, word & 0xFFFFF)

    def buffer_len(self) -> int:
        return HEADER_LEN

    def header_bytes(self) -> bytes:
        if self.payload_len > 0xFFFF:
            raise ValueError(f"ipv6: payload of {self.payload_len} bytes needs a jumbogram")
        word = (6 << 28) | (self.traffic_class << 20) | (self.flow_label & 0xFFFFF)
        return _HDR.pack(word, self.payload_len, self.next_header, self.hop_limit, self.src, self.dst)

    def emit(self, buf, offset: int = 0) -> None:
        buf[offset:offset + HEADER_LEN] = self.header_bytes()

    def to_bytes(self, payload=b"") -> bytes:
        if len(payload) != self.payload_len:
            raise ValueError(f"ipv6: payload is {len(payload)} bytes, repr says {self.payload_len}")
        return self.header_bytes() + bytes(payload)


# -- extension headers ---------------------------------------------------------------------

def ext_header_len(nh: int, buf) -> int:
    """Length in bytes of the extension header ``nh`` at the start of ``buf``.

    ``Malformed`` if the header (as its own length field says) does not fit.
    """
    n = len(buf)
    if n < 8:
        raise Malformed(f"ipv6: extension header {nh} cut at {n} bytes")
    length = 8 if nh == NH_FRAGMENT else (buf[1] + 1) * 8
    if length > n:
        raise Malformed(f"ipv6: extension header {nh} of {length} bytes in {n}")
    return length


def iter_options(buf):
    """(offset, type, data) of every TLV in a hop-by-hop or destination options header
    ``buf`` (its first two bytes are Next Header and Hdr Ext Len), pads included.

    RFC 8200 4.2: Pad1 is a lone zero byte; every other option is type, length, data.
    ``Malformed`` if an option runs past the header.
    """
    length = ext_header_len(NH_HOPOPTS, buf)
    i = 2
    while i < length:
        kind = buf[i]
        if kind == OPT_PAD1:
            yield i, kind, b""
            i += 1
            continue
        if i + 2 > length or i + 2 + buf[i + 1] > length:
            raise Malformed(f"ipv6: option {kind} at {i} runs past the header")
        yield i, kind, bytes(buf[i + 2:i + 2 + buf[i + 1]])
        i += 2 + buf[i + 1]


def _pad(n: int) -> bytes:
    """Pad1 or PadN filling ``n`` bytes (RFC 8200 4.2)."""
    if n == 0:
        return b""
    if n == 1:
        return b"\x00"
    return bytes((OPT_PADN, n - 2)) + bytes(n - 2)


@attrs.frozen
class Ipv6OptionsRepr:
    """A hop-by-hop (0) or destination options (60) header: its options, pads left out.

    ``options`` is a tuple of (type, data); ``to_bytes`` pads the header to a multiple
    of 8 bytes with Pad1/PadN.
    """

    next_header: int
    options: tuple = ()

    @classmethod
    def parse(cls, buf) -> Ipv6OptionsRepr:
        mv = buf if type(buf) is memoryview else memoryview(buf)
        opts = tuple((kind, data) for _i, kind, data in iter_options(mv) if kind not in (OPT_PAD1, OPT_PADN))
        return cls(mv[0], opts)

    def to_bytes(self) -> bytes:
        body = b"".join(bytes((kind, len(data))) + data for kind, data in self.options)
        total = -(-(2 + len(body)) // 8) * 8
        return bytes((self.next_header, total // 8 - 1)) + body + _pad(total - 2 - len(body))

    def buffer_len(self) -> int:
        return len(self.to_bytes())


@attrs.frozen
class Ipv6RoutingRepr:
    """A routing header (43): type, segments left and the type-specific data (RFC 8200
    4.4). Type 0 is deprecated (RFC 5095) and is treated by the layer as unknown."""

    next_header: int
    routing_type: int
    segments_left: int
    data: bytes = bytes(4)

    @classmethod
    def parse(cls, buf) -> Ipv6RoutingRepr:
        mv = buf if type(buf) is memoryview else memoryview(buf)
        length = ext_header_len(NH_ROUTING, mv)
        nh, _len, rtype, left = _ROUTING.unpack_from(mv, 0)
        return cls(nh, rtype, left, bytes(mv[4:length]))

    def to_bytes(self) -> bytes:
        if (4 + len(self.data)) % 8:
            raise ValueError("ipv6: routing header data must fill a multiple of 8 bytes")
        return _ROUTING.pack(self.next_header, (4 + len(self.data)) // 8 - 1, self.routing_type,
                             self.segments_left) + self.data


@attrs.frozen
class Ipv6FragmentRepr:
    """The fragment header (44, RFC 8200 4.5): offset in bytes (multiple of 8), M flag, id."""

    next_header: int
    frag_offset: int
    more_frags: bool
    ident: int

    @classmethod
    def parse(cls, buf) -> Ipv6FragmentRepr:
        mv = buf if type(buf) is memoryview else memoryview(buf)
        ext_header_len(NH_FRAGMENT, mv)
        nh, off_m, ident = _FRAG.unpack_from(mv, 0)
        return cls(nh, off_m & 0xFFF8, bool(off_m & 1), ident)

    @property
    def is_atomic(self) -> bool:
        """Offset 0 and M clear: a whole packet with a fragment header (RFC 6946)."""
        return self.frag_offset == 0 and not self.more_frags

    def to_bytes(self) -> bytes:
        if self.frag_offset & 7 or self.frag_offset > 0xFFF8:
            raise ValueError(f"ipv6: fragment offset {self.frag_offset}")
        return _FRAG.pack(self.next_header, self.frag_offset | int(self.more_frags), self.ident)


# -- addresses (RFC 4291) ------------------------------------------------------------------

def ip6(text: str) -> bytes:
    """IPv6 text to 16 bytes (tests and tools; ValueError when bad)."""
    return ipaddress.IPv6Address(text).packed


def ip6_str(addr: bytes) -> str:
    """RFC 5952 text (lowercase, longest zero run compressed)."""
    return ipaddress.IPv6Address(addr).compressed


def is_multicast(addr: bytes) -> bool:
    return addr[0] == 0xFF


def is_link_local(addr: bytes) -> bool:
    """fe80::/10 (RFC 4291 2.5.6)."""
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def scope(addr: bytes) -> int:
    """RFC 6724 3.1 scope: a multicast address's own nibble; link-local and ::1 are 2
    (link), everything else (ULAs included, RFC 4193) global 0xe."""
    if addr[0] == 0xFF:
        return addr[1] & 0x0F
    if is_link_local(addr) or addr == LOOPBACK:
        return 2
    return 0xE


def solicited_node(addr: bytes) -> bytes:
    """ff02::1:ffXX:XXXX from the low 24 bits (RFC 4291 2.7.1)."""
    return _SOLICITED_PREFIX + addr[13:]


def multicast_mac(group: bytes) -> bytes:
    """33:33 + the low 32 bits of the group (RFC 2464 7)."""
    return b"\x33\x33" + group[12:]


def eui64_link_local(mac: bytes) -> bytes:
    """fe80::/64 + modified EUI-64 from a 48-bit MAC, universal/local bit flipped
    (RFC 4291 2.5.1 and appendix A)."""
    return bytes.fromhex("fe80000000000000") + bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE,
                                                        mac[3], mac[4], mac[5]))
