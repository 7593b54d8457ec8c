"""IPv4 headers (RFC 791 3.1).

Layout::

    0       4       8              16    19               32
    | ver=4 | IHL   | TOS (DSCP/ECN) | total length            |
    | identification               | flags | fragment offset  |
    | TTL           | protocol     | header checksum           |
    | source address                                           |
    | destination address                                      |
    | options (IHL > 5) ...                                    |

``Ipv4Packet.new_checked`` checks version, IHL and total length against the buffer and
slices the view to the total length, so Ethernet padding after a short datagram never
reaches the next layer. The header checksum is verified by ``Ipv4Repr.parse`` (or
``Ipv4Packet.verify_checksum``), not by ``new_checked``. Options are exposed raw and never
interpreted here. Reassembly bounds (offset + length <= 65535) are the reassembler's job.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import attrs

from .checksum import internet_checksum, ones_sum
from .errors import Malformed

__all__ = [
    "ANY",
    "BROADCAST",
    "HEADER_LEN",
    "MAX_HEADER_LEN",
    "IpProtocol",
    "Ipv4Packet",
    "Ipv4Repr",
    "ip4",
    "ip4_str",
    "is_multicast",
]

HEADER_LEN = 20
MAX_HEADER_LEN = 60  # IHL is 4 bits of 32-bit words
MAX_TOTAL_LEN = 0xFFFF
DEFAULT_TTL = 64  # RFC 1700 / Linux net.ipv4.ip_default_ttl

ANY = b"\x00\x00\x00\x00"
BROADCAST = b"\xff\xff\xff\xff"

# Flag bits of the 16-bit flags/fragment-offset word (RFC 791 3.1 "Flags").
_FLAG_RESERVED = 0x8000
_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF  # in 8-byte units


class IpProtocol(IntEnum):
    """IP protocol numbers the stack knows (IANA "Assigned Internet Protocol Numbers")."""

    ICMP = 1
    IGMP = 2
    TCP = 6
    UDP = 17
    IPV6 = 41
    ICMPV6 = 58


# version/IHL, TOS, total length, ident, flags/offset, TTL, protocol, checksum, src, dst
_HDR = struct.Struct("!BBHHHBBH4s4s")
_U16 = struct.Struct("!H")
_VER_LEN = struct.Struct("!BxH")  # version/IHL and total length, read together
_ADDR = struct.Struct("4s")


def _check_header(mv: memoryview) -> int:
    """Validate version and IHL against ``mv``; return the header length in bytes."""
    n = len(mv)
    if n < HEADER_LEN:
        raise Malformed(f"ipv4: {n} bytes, header needs {HEADER_LEN}")
    ver_ihl = mv[0]
    if ver_ihl >> 4 != 4:
        raise Malformed(f"ipv4: version {ver_ihl >> 4}")
    header_len = (ver_ihl & 0x0F) * 4
    if header_len < HEADER_LEN:
        raise Malformed(f"ipv4: IHL {header_len // 4} below 5")
    if header_len > n:
        raise Malformed(f"ipv4: header length {header_len} exceeds {n} bytes")
    return header_len


class Ipv4Packet:
    """A read-only view of one IPv4 datagram (or fragment), sliced to its total length."""

    __slots__ = ("_buf", "_header_len", "datagram")

    def __init__(self, buf, header_len: int | None = None):
        """Wrap ``buf`` unchecked: only for datagrams we built ourselves."""
        self._buf = buf if type(buf) is memoryview else memoryview(buf)
        # The whole datagram (header and payload), cut at the total length: an attribute,
        # not a property - the IP input path reads it for every datagram delivered.
        self.datagram: memoryview = self._buf
        self._header_len = (self._buf[0] & 0x0F) * 4 if header_len is None else header_len

    @classmethod
    def new_checked(cls, buf) -> Ipv4Packet:
        """Wrap an untrusted datagram; raises ``Malformed`` on any length inconsistency.

        Bytes beyond the total length (Ethernet padding) are cut off the view.
        """
        mv = buf if type(buf) is memoryview else memoryview(buf)
        n = len(mv)
        if n < HEADER_LEN:
            raise Malformed(f"ipv4: {n} bytes, header needs {HEADER_LEN}")
        ver_ihl, total_len = _VER_LEN.unpack_from(mv, 0)
        header_len = (ver_ihl & 0x0F) << 2
        if ver_ihl >> 4 != 4 or header_len < HEADER_LEN or header_len > n:
            _check_header(mv)  # raises with the precise reason
        if total_len < header_len:
            raise Malformed(f"ipv4: total length {total_len} below header length {header_len}")
        if total_len > n:
            raise Malformed(f"ipv4: total length {total_len} exceeds {n} bytes")
        if total_len < n:
            mv = mv[:total_len]
        return cls(mv, header_len)

    @classmethod
    def new_quoted(cls, buf) -> Ipv4Packet:
        """Wrap the datagram quoted in an ICMP error (RFC 792: header + first 8 bytes).

        Only the header must be complete; the payload is whatever follows it, up to the
        total length. Raises ``Malformed`` on a bad version or IHL or a cut header.
        """
        mv = buf if type(buf) is memoryview else memoryview(buf)
        header_len = _check_header(mv)
        total_len = _U16.unpack_from(mv, 2)[0]
        if header_len <= total_len < len(mv):
            mv = mv[:total_len]
        return cls(mv, header_len)

    # -- fields (RFC 791 3.1) ------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._buf[0] >> 4

    @property
    def header_len(self) -> int:
        """Header length in bytes (IHL * 4)."""
        return self._header_len

    @property
    def tos(self) -> int:
        """The whole type-of-service octet: DSCP (6 bits) and ECN (2 bits), RFC 2474/3168."""
        return self._buf[1]

    @property
    def total_len(self) -> int:
        return _U16.unpack_from(self._buf, 2)[0]

    @property
    def ident(self) -> int:
        return _U16.unpack_from(self._buf, 4)[0]

    @property
    def dont_frag(self) -> bool:
        return bool(self._buf[6] & 0x40)

    @property
    def more_frags(self) -> bool:
        return bool(self._buf[6] & 0x20)

    @property
    def frag_offset(self) -> int:
        """Fragment offset in bytes (the field counts 8-byte units)."""
        return (_U16.unpack_from(self._buf, 6)[0] & _OFFSET_MASK) << 3

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram: MF set or a non-zero offset."""
        return bool(_U16.unpack_from(self._buf, 6)[0] & (_FLAG_MF | _OFFSET_MASK))

    @property
    def ttl(self) -> int:
        return self._buf[8]

    @property
    def protocol(self) -> int:
        return self._buf[9]

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self._buf, 10)[0]

    @property
    def src(self) -> bytes:
        return _ADDR.unpack_from(self._buf, 12)[0]

    @property
    def dst(self) -> bytes:
        return _ADDR.unpack_from(self._buf, 16)[0]

    @property
    def options(self) -> bytes:
        """The raw option bytes (empty when IHL is 5); never interpreted here."""
        return bytes(self._buf[HEADER_LEN : self._header_len])

    @property
    def header(self) -> memoryview:
        return self._buf[: self._header_len]

    @property
    def payload(self) -> memoryview:
        """The data after the header, cut at the total length."""
        return self._buf[self._header_len :]

    def __len__(self) -> int:
        return len(self._buf)

    def verify_checksum(self) -> bool:
        """True if the header checksum is intact (RFC 791 3.1 "Header Checksum")."""
        return ones_sum(self._buf[: self._header_len]) == 0xFFFF


@attrs.frozen
class Ipv4Repr:
    """An IPv4 header as a value; ``payload_len`` stands in for the payload.

    Fragmentation metadata: ``dont_frag``, ``more_frags`` and ``frag_offset`` (in bytes, a
    multiple of 8). ``options`` are raw bytes, a multiple of 4 long, at most 40.
    The reserved flag bit is ignored on parse and sent as zero (RFC 791 3.1).
    """

    src: bytes
    dst: bytes
    protocol: int
    payload_len: int
    ttl: int = DEFAULT_TTL
    tos: int = 0
    ident: int = 0
    dont_frag: bool = False
    more_frags: bool = False
    frag_offset: int = 0
    options: bytes = b""

    @classmethod
    def parse(cls, packet_or_buf, *, verify: bool = True) -> Ipv4Repr:
        """Read a datagram's header.

        Raises ``Malformed`` on bad lengths, a version other than 4, or (when ``verify``,
        the default; pass False when the device already checked it) a bad checksum.
        """
        pkt = (
            packet_or_buf
            if isinstance(packet_or_buf, Ipv4Packet)
            else Ipv4Packet.new_checked(packet_or_buf)
        )
        buf = pkt._buf
        header_len = pkt._header_len
        if verify and ones_sum(buf[:header_len]) != 0xFFFF:
            raise Malformed("ipv4: bad header checksum")
        _vi, tos, total_len, ident, flags_off, ttl, proto, _ck, src, dst = _HDR.unpack_from(buf, 0)
        return cls(
            src,
            dst,
            proto,
            total_len - header_len,
            ttl,
            tos,
            ident,
            bool(flags_off & _FLAG_DF),
            bool(flags_off & _FLAG_MF),
            (flags_off & _OFFSET_MASK) << 3,
            bytes(buf[HEADER_LEN:header_len]) if header_len > HEADER_LEN else b"",
        )

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    @property
    def total_len(self) -> int:
        return HEADER_LEN + len(self.options) + self.payload_len

    @property
    def is_fragment(self) -> bool:
        return self.more_frags or self.frag_offset != 0

    def buffer_len(self) -> int:
        """Length of the header ``emit`` writes (options included)."""
        return HEADER_LEN + len(self.options)

    def emit(self, buf, offset: int = 0) -> None:
        """Write the header, checksum computed, into writable ``buf`` at ``offset``.

        Raises ValueError (a caller bug, not a wire error) for unrepresentable values.
        """
        header = self.header_bytes()
        buf[offset : offset + len(header)] = header

    def header_bytes(self) -> bytes:
        """The header as bytes, checksum computed (RFC 791 3.1, RFC 1071)."""
        opt_len = len(self.options)
        if opt_len & 3 or opt_len > MAX_HEADER_LEN - HEADER_LEN:
            raise ValueError(f"ipv4: options must be a multiple of 4 up to 40 bytes, got {opt_len}")
        if self.frag_offset & 7 or self.frag_offset > (_OFFSET_MASK << 3):
            raise ValueError(
                f"ipv4: fragment offset {self.frag_offset} not a multiple of 8 <= 65528"
            )
        header_len = HEADER_LEN + opt_len
        total_len = header_len + self.payload_len
        if total_len > MAX_TOTAL_LEN:
            raise ValueError(f"ipv4: total length {total_len} exceeds 65535")
        flags_off = (
            (_FLAG_DF if self.dont_frag else 0)
            | (_FLAG_MF if self.more_frags else 0)
            | (self.frag_offset >> 3)
        )
        header = _HDR.pack(
            0x40 | (header_len >> 2),
            self.tos,
            total_len,
            self.ident,
            flags_off,
            self.ttl,
            self.protocol,
            0,
            self.src,
            self.dst,
        )
        if opt_len:
            header += self.options
        checksum = internet_checksum(header)
        return header[:10] + _U16.pack(checksum) + header[12:]

    def to_bytes(self, payload=b"") -> bytes:
        """Header plus ``payload``; ``len(payload)`` must equal ``payload_len``."""
        if len(payload) != self.payload_len:
            raise ValueError(f"ipv4: payload is {len(payload)} bytes, repr says {self.payload_len}")
        return self.header_bytes() + bytes(payload)


def plain_header(src: bytes, dst: bytes, protocol: int, payload_len: int, ttl: int, tos: int,
                 ident: int, dont_frag: bool) -> bytes:
    """``Ipv4Repr(...).header_bytes()`` for the header every locally sent datagram has: no
    options, not a fragment. The output path builds one per packet, and a frozen attrs
    value costs more to make than the header itself."""
    total_len = HEADER_LEN + payload_len
    if total_len > MAX_TOTAL_LEN:
        raise ValueError(f"ipv4: total length {total_len} exceeds 65535")
    flags_off = _FLAG_DF if dont_frag else 0
    header = _HDR.pack(0x45, tos, total_len, ident, flags_off, ttl, protocol, 0, src, dst)
    # internet_checksum(header) written out (checksum.py: the header as one integer, the
    # end-around carry by % 0xffff; never 0, its first byte being 0x45): two calls less
    # for every datagram we send.
    r = int.from_bytes(header, "big") % 0xFFFF
    return _HDR.pack(0x45, tos, total_len, ident, flags_off, ttl, protocol,
                     ~(r or 0xFFFF) & 0xFFFF, src, dst)


def is_multicast(addr: bytes) -> bool:
    """224.0.0.0/4 (RFC 5771)."""
    return addr[0] & 0xF0 == 0xE0


def ip4(text: str) -> bytes:
    """Dotted quad to 4 bytes (for humans and tests, not the hot path); ValueError if bad."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return bytes(int(p) for p in parts)  # bytes() rejects a part above 255


def ip4_str(addr: bytes) -> str:
    return "%d.%d.%d.%d" % tuple(addr)
