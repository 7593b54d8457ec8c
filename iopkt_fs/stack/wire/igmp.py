"""IGMP messages: v1/v2 (RFC 1112 appendix I, RFC 2236 2) and v3 (RFC 3376 4).

    Query (0x11): type | max resp code | checksum | group (4); v3 adds Resv|S|QRV, QQIC,
      number of sources (16) and the sources (12 bytes or more)
    v1 Report (0x12), v2 Report (0x16), Leave Group (0x17): 8 bytes, the group
    v3 Report (0x22): type | reserved | checksum | reserved (16) | records (16), then
      records: type | aux len (32-bit words) | sources (16) | group | sources | aux

The checksum is the Internet checksum of the message alone. A query's version is its
length and code (RFC 3376 7.1): 8 bytes with code 0 is IGMPv1, 8 bytes otherwise IGMPv2,
12 or more IGMPv3. ``IgmpQuery.max_resp`` is in tenths of a second (IGMPv1's "0" is
read as 100, 10 s; v3's floating-point codes from 128 decoded, 4.1.1).
"""

from __future__ import annotations

import struct

import attrs

from .checksum import internet_checksum, verify as _verify
from .errors import Malformed

QUERY = 0x11
V1_REPORT = 0x12
V2_REPORT = 0x16
V2_LEAVE = 0x17
V3_REPORT = 0x22

# Group Record types (RFC 3376 4.2.12), the same numbers as MLDv2's.
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE_MODE = 3
CHANGE_TO_EXCLUDE_MODE = 4

ALL_SYSTEMS = bytes((224, 0, 0, 1))
ALL_ROUTERS = bytes((224, 0, 0, 2))
ALL_V3_ROUTERS = bytes((224, 0, 0, 22))

_HDR = struct.Struct("!BBH4s")
_RECORD = struct.Struct("!BBH4s")


def decode_code(code: int) -> int:
    """RFC 3376 4.1.1: codes from 128 are 1|exp(3)|mant(4) -> (mant | 0x10) << (exp + 3)."""
    if code < 128:
        return code
    return ((code & 0x0F) | 0x10) << (((code >> 4) & 7) + 3)


def verify(buf) -> bool:
    return _verify(buf)


@attrs.frozen
class IgmpQuery:
    version: int
    max_resp: int            # tenths of a second
    group: bytes             # 0.0.0.0 for a general query
    sources: tuple = ()

    @classmethod
    def parse(cls, buf) -> IgmpQuery:
        n = len(buf)
        if n < 8 or buf[0] != QUERY:
            raise Malformed("igmp: not a query")
        _t, code, _ck, group = _HDR.unpack_from(buf, 0)
        if n == 8:
            return cls(1, 100, group) if code == 0 else cls(2, code, group)
        if n < 12:
            raise Malformed(f"igmp: query of {n} bytes")
        nsrc, = struct.unpack_from("!H", buf, 10)
        if n < 12 + 4 * nsrc:
            raise Malformed(f"igmp: query with {nsrc} sources in {n} bytes")
        sources = tuple(bytes(buf[12 + 4 * i:16 + 4 * i]) for i in range(nsrc))
        return cls(3, decode_code(code), group, sources)


def _finish(message: bytearray) -> bytes:
    message[2:4] = b"\0\0"
    message[2:4] = struct.pack("!H", internet_checksum(bytes(message)))
    return bytes(message)


def v2_message(kind: int, group: bytes, code: int = 0) -> bytes:
    """A v1/v2 Report, a Leave, or (kind QUERY) a v1/v2 query."""
    return _finish(bytearray(_HDR.pack(kind, code, 0, group)))


def v3_query(group: bytes, code: int, sources: tuple = (), qrv: int = 2, qqic: int = 125) -> bytes:
    return _finish(bytearray(_HDR.pack(QUERY, code, 0, group) + struct.pack("!BBH", qrv, qqic, len(sources))
                             + b"".join(sources)))


@attrs.frozen
class IgmpRecord:
    type: int
    group: bytes
    sources: tuple = ()


def v3_report(records) -> bytes:
    body = b"".join(_RECORD.pack(r.type, 0, len(r.sources), r.group) + b"".join(r.sources) for r in records)
    return _finish(bytearray(struct.pack("!BBHHH", V3_REPORT, 0, 0, 0, len(records)) + body))


def parse_v3_report(buf) -> tuple:
    if len(buf) < 8:
        raise Malformed("igmp: report cut")
    count, = struct.unpack_from("!H", buf, 6)
    out = []
    off = 8
    for _ in range(count):
        if off + 8 > len(buf):
            raise Malformed("igmp: record cut")
        kind, aux, nsrc, group = _RECORD.unpack_from(buf, off)
        end = off + 8 + 4 * nsrc + 4 * aux
        if end > len(buf):
            raise Malformed("igmp: record runs past the report")
        out.append(IgmpRecord(kind, group, tuple(bytes(buf[off + 8 + 4 * i:off + 12 + 4 * i]) for i in range(nsrc))))
        off = end
    return tuple(out)
