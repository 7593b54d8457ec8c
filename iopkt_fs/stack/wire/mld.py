"""Multicast Listener Discovery messages: MLDv1 (RFC 2710 3) and MLDv2 (RFC 3810 5).

All are ICMPv6 messages (the checksum covers the IPv6 pseudo-header, so building takes
the two addresses)::

    MLDv1 Query/Report/Done (130/131/132), 24 bytes:
      type | code | checksum | max response delay (ms, 16) | reserved (16) | address (128)
    MLDv2 Query (130, 28 bytes or more): the v1 layout with the Maximum Response Code in
      place of the delay, then Resv|S|QRV (8), QQIC (8), number of sources (16), sources
    MLDv2 Report (143): type | reserved | checksum | reserved (16) | records (16), then
      records: type (8) | aux data len (8, 32-bit words) | sources (16) | address | sources | aux

A query's version is its length (RFC 3810 8.1): 24 bytes is MLDv1, 28 or more MLDv2,
anything else is not a query. ``MldQuery.max_resp`` is in milliseconds for both (the v2
code's floating-point form decoded, 5.1.3).
"""

from __future__ import annotations

import struct

import attrs

from .errors import Malformed
from .icmpv6 import Icmpv6Generic, Icmpv6Type

# Multicast Address Record types (RFC 3810 5.2.12).
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE_MODE = 3
CHANGE_TO_EXCLUDE_MODE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6

ALL_MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")

_V2_TAIL = struct.Struct("!BBH")
_RECORD = struct.Struct("!BBH16s")


def decode_max_resp(code: int) -> int:
    """RFC 3810 5.1.3: codes from 32768 are 1|exp(3)|mant(12) -> (mant | 0x1000) << (exp + 3)."""
    if code < 0x8000:
        return code
    return ((code & 0xFFF) | 0x1000) << (((code >> 12) & 7) + 3)


@attrs.frozen
class MldQuery:
    version: int                 # 1 or 2, by length
    max_resp: int                # ms
    group: bytes                 # :: for a general query
    sources: tuple = ()
    suppress: bool = False       # S flag (v2)
    qrv: int = 0
    qqic: int = 0

    @classmethod
    def parse(cls, msg) -> MldQuery:
        """From an ICMPv6 message of type 130 (a view or bytes, header included)."""
        n = len(msg)
        if n == 24:
            delay, = struct.unpack_from("!H", msg, 4)
            return cls(1, delay, bytes(msg[8:24]))
        if n < 28:
            raise Malformed(f"mld: query of {n} bytes")
        code, = struct.unpack_from("!H", msg, 4)
        flags, qqic, nsrc = _V2_TAIL.unpack_from(msg, 24)
        if n < 28 + 16 * nsrc:
            raise Malformed(f"mld: query with {nsrc} sources in {n} bytes")
        sources = tuple(bytes(msg[28 + 16 * i:44 + 16 * i]) for i in range(nsrc))
        return cls(2, decode_max_resp(code), bytes(msg[8:24]), sources, bool(flags & 8), flags & 7, qqic)

    def to_bytes(self, src: bytes, dst: bytes) -> bytes:
        if self.version == 1:
            return Icmpv6Generic(Icmpv6Type.MLD_QUERY, 0, self.max_resp << 16, self.group).to_bytes(src, dst)
        tail = _V2_TAIL.pack((8 if self.suppress else 0) | self.qrv, self.qqic, len(self.sources))
        return Icmpv6Generic(Icmpv6Type.MLD_QUERY, 0, self.max_resp << 16,
                             self.group + tail + b"".join(self.sources)).to_bytes(src, dst)


def mldv1(kind: int, group: bytes, src: bytes, dst: bytes) -> bytes:
    """An MLDv1 Report (131) or Done (132) for ``group``."""
    return Icmpv6Generic(kind, 0, 0, group).to_bytes(src, dst)


@attrs.frozen
class Mld2Record:
    type: int
    group: bytes
    sources: tuple = ()

    def to_bytes(self) -> bytes:
        return _RECORD.pack(self.type, 0, len(self.sources), self.group) + b"".join(self.sources)


@attrs.frozen
class Mld2Report:
    records: tuple

    @classmethod
    def parse(cls, msg) -> Mld2Report:
        if len(msg) < 8:
            raise Malformed("mld: report cut")
        count, = struct.unpack_from("!H", msg, 6)
        records = []
        off = 8
        for _ in range(count):
            if off + 20 > len(msg):
                raise Malformed("mld: record cut")
            kind, aux, nsrc, group = _RECORD.unpack_from(msg, off)
            end = off + 20 + 16 * nsrc + 4 * aux
            if end > len(msg):
                raise Malformed("mld: record runs past the message")
            sources = tuple(bytes(msg[off + 20 + 16 * i:off + 36 + 16 * i]) for i in range(nsrc))
            records.append(Mld2Record(kind, group, sources))
            off = end
        return cls(tuple(records))

    def to_bytes(self, src: bytes, dst: bytes = ALL_MLDV2_ROUTERS) -> bytes:
        body = b"".join(r.to_bytes() for r in self.records)
        return Icmpv6Generic(Icmpv6Type.MLD2_REPORT, 0, len(self.records), body).to_bytes(src, dst)
