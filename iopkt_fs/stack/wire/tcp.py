"""TCP segments (RFC 9293 3.1) and their options (RFC 9293 3.2, RFC 7323, RFC 2018).

Layout::

    0       2       4       8       12       13      14       16     18    20
    | sport | dport | seq   | ack   |doff|rsv| flags | window | csum | urg | options | data

``doff`` is the header length in 32-bit words (5..15), so options take 0..40 bytes.

Options understood (everything else is skipped by its length, RFC 9293 3.1 MUST-6/MUST-7):

==== ===== ===========================================================
kind len   meaning
==== ===== ===========================================================
0    1     End of option list (EOL)
1    1     No-operation (NOP), used for alignment
2    4     Maximum segment size, SYN only (RFC 9293 3.7.1)
3    3     Window scale shift, SYN only (RFC 7323 2.2), at most 14
4    2     SACK permitted, SYN only (RFC 2018 2)
5    2+8n  SACK blocks, n = 1..4 (RFC 2018 3)
8    10    Timestamps TSval, TSecr (RFC 7323 3.2)
==== ===== ===========================================================

The checksum covers a pseudo-header (RFC 9293 3.1: source, destination, zero, protocol 6,
TCP length) plus the whole segment; IPv6 uses RFC 8200 8.1's pseudo-header. Either family's
addresses are accepted: 4 bytes means IPv4, 16 bytes IPv6.

Emission goes through ``build_segment`` - one ``struct.pack`` for the header, the options
as pre-encoded bytes, two big-integer checksum passes and one join - so the connection code
can send 64 KB segments with no per-byte Python work.
"""

from __future__ import annotations

import struct
from enum import IntFlag

import attrs

from .checksum import ones_sum

try:  # the shared exception (wire/errors.py); kept importable on its own.
    from .errors import Malformed
except ImportError:  # pragma: no cover - only before wire/errors.py existed
    class Malformed(ValueError):
        pass

__all__ = [
    "HEADER_LEN",
    "IPPROTO_TCP",
    "MAX_HEADER_LEN",
    "TcpFlags",
    "TcpOptions",
    "TcpPacket",
    "TcpRepr",
    "build_segment",
    "encode_options",
    "parse_options",
    "pseudo_sum",
]

IPPROTO_TCP = 6
HEADER_LEN = 20
MAX_HEADER_LEN = 60

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8

# RFC 7323 2.3: "the shift.cnt value ... MUST be limited to 14"; a larger value received is
# used as 14 (and logged by some stacks). We clamp on parse so the Repr stays meaningful.
MAX_WSCALE = 14


class TcpFlags(IntFlag):
    """Control bits (RFC 9293 3.1; ECE/CWR from RFC 3168 23.2)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80

    def __str__(self) -> str:
        return "".join(ch for bit, ch in _FLAG_LETTERS if self & bit) or "."


_FLAG_LETTERS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "."),
                 (0x20, "U"), (0x40, "E"), (0x80, "W"))

_HDR = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TS = struct.Struct("!II")
_MSS_OPT = struct.Struct("!BBH")
_TS_OPT = struct.Struct("!BBBBII")  # NOP NOP kind len (the RFC 7323 Appendix A layout)
_SACK_BLOCK = struct.Struct("!II")
_TS_LAYOUT = b"\x01\x01\x08\x0a"
# For TCP input's own test of that layout (parse_options' first case, without the call).
TS_ONLY_LAYOUT, TS_FIELDS = _TS_LAYOUT, _TS
# Linux's SYN and SYN-ACK (tcp_options_write): MSS, SACK_PERM + TS, NOP WS - 20 bytes.
_SYN_SACK_TS = b"\x04\x02\x08\x0a"
_SYN_WS = b"\x01\x03\x03"
_SYN_LAYOUT = struct.Struct("!2xH4xII3xB")     # MSS, TSval, TSecr, shift


def pseudo_sum(src_ip: bytes, dst_ip: bytes, length: int) -> int:
    """The pseudo-header's contribution to a TCP segment's checksum, as an integer to pass
    as ``initial`` to ``ones_sum`` (congruent modulo 0xffff to what
    ``pseudo_header_sum_v4``/``_v6`` give, see checksum.py: 2**16 == 1 mod 0xffff, so the
    addresses read as one big integer sum like their 16-bit words; the zero/protocol word
    is 6 and the length word is the length for segments up to 65535 bytes; IPv6's 32-bit
    length field sums the same way)."""
    return int.from_bytes(src_ip + dst_ip, "big") + IPPROTO_TCP + length


# -- options ------------------------------------------------------------------------------

@attrs.frozen
class TcpOptions:
    """The options of one segment, decoded. ``None``/empty means absent."""

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None  # (TSval, TSecr)


NO_OPTIONS = TcpOptions()


def parse_options(data) -> TcpOptions:
    """Decode an option area; raises ``Malformed`` for a length that lies.

    A well-formed but unknown option is skipped. A known option with the wrong length is
    malformed (RFC 9293 3.1 MUST-7 asks to handle an illegal option length "without
    crashing"; dropping the segment is what Linux and the BSDs do).
    """
    mv = memoryview(data)
    n = len(mv)
    if n == 0:
        return NO_OPTIONS
    if n == 12 and mv[:4] == _TS_LAYOUT:
        # RFC 7323 Appendix A's layout (NOP NOP TS), on nearly every segment of a
        # connection that uses timestamps: no loop.
        return TcpOptions(timestamp=_TS.unpack_from(mv, 4))
    if n == 20 and mv[0] == OPT_MSS and mv[1] == 4 and mv[4:8] == _SYN_SACK_TS and \
            mv[16:19] == _SYN_WS:
        # The SYN of every Linux (and our own) connection: the loop's result, without it.
        mss, tsval, tsecr, shift = _SYN_LAYOUT.unpack_from(mv, 0)
        return TcpOptions(mss, min(shift, MAX_WSCALE), True, (), (tsval, tsecr))
    mss = wscale = timestamp = None
    sack_permitted = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    i = 0
    while i < n:
        kind = mv[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise Malformed(f"tcp: option {kind} has no length byte")
        length = mv[i + 1]
        if length < 2 or i + length > n:
            raise Malformed(f"tcp: option {kind} length {length} overruns the option area")
        if kind == OPT_MSS:
            if length != 4:
                raise Malformed(f"tcp: MSS option length {length}")
            mss = _U16.unpack_from(mv, i + 2)[0]
        elif kind == OPT_WSCALE:
            if length != 3:
                raise Malformed(f"tcp: window scale option length {length}")
            wscale = min(mv[i + 2], MAX_WSCALE)
        elif kind == OPT_SACK_PERMITTED:
            if length != 2:
                raise Malformed(f"tcp: SACK-permitted option length {length}")
            sack_permitted = True
        elif kind == OPT_SACK:
            if (length - 2) % 8 or length == 2:
                raise Malformed(f"tcp: SACK option length {length}")
            sack_blocks = tuple(_SACK_BLOCK.unpack_from(mv, j) for j in range(i + 2, i + length, 8))
        elif kind == OPT_TIMESTAMP:
            if length != 10:
                raise Malformed(f"tcp: timestamp option length {length}")
            timestamp = _TS.unpack_from(mv, i + 2)
        i += length
    return TcpOptions(mss, wscale, sack_permitted, sack_blocks, timestamp)


def encode_options(mss: int | None = None, wscale: int | None = None,
                   sack_permitted: bool = False, timestamp: tuple[int, int] | None = None,
                   sack_blocks=()) -> bytes:
    """Encode options in the layout Linux uses, padded to a multiple of 4 bytes.

    SYN: ``MSS, SACK_PERM+TS | NOP NOP TS | NOP NOP SACK_PERM, NOP WS``; data: ``NOP NOP TS,
    NOP NOP SACK`` (RFC 7323 Appendix A alignment). At most 40 bytes: with timestamps only
    three SACK blocks fit (RFC 2018 3), so extra blocks are dropped here.
    """
    parts = []
    if mss is not None:
        parts.append(_MSS_OPT.pack(OPT_MSS, 4, mss))
    if timestamp is not None:
        if sack_permitted:
            parts.append(bytes((OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10)) + _TS.pack(*timestamp))
        else:
            parts.append(_TS_OPT.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, *timestamp))
    elif sack_permitted:
        parts.append(bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2)))
    if wscale is not None:
        parts.append(bytes((OPT_NOP, OPT_WSCALE, 3, wscale)))
    if sack_blocks:
        used = sum(map(len, parts))
        room = (40 - used - 4) // 8
        blocks = sack_blocks[:max(0, min(4, room))]
        if blocks:
            parts.append(bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks))))
            parts.extend(_SACK_BLOCK.pack(l, r) for l, r in blocks)
    out = b"".join(parts)
    if len(out) & 3:
        out += bytes(4 - (len(out) & 3))  # EOL padding
    return out


def encode_timestamp(tsval: int, tsecr: int) -> bytes:
    """``encode_options(timestamp=(tsval, tsecr))``, the option area of nearly every
    segment of a connection with timestamps (NOP NOP TS), without the general path."""
    return _TS_OPT.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, tsval, tsecr)


# -- the packet view ----------------------------------------------------------------------

class TcpPacket:
    """A read-only view of a TCP segment in ``buf``."""

    __slots__ = ("_buf",)

    def __init__(self, buf):
        """Wrap ``buf`` unchecked: only for segments we built ourselves."""
        self._buf = memoryview(buf)

    @classmethod
    def new_checked(cls, buf) -> TcpPacket:
        """Wrap an untrusted segment; raises ``Malformed`` if its header does not fit."""
        mv = memoryview(buf)
        n = len(mv)
        if n < HEADER_LEN:
            raise Malformed(f"tcp: {n} bytes, header needs {HEADER_LEN}")
        hl = (mv[12] >> 4) * 4
        if hl < HEADER_LEN:
            raise Malformed(f"tcp: data offset {hl // 4} below 5")
        if hl > n:
            raise Malformed(f"tcp: header length {hl} exceeds segment length {n}")
        return cls(mv)

    @property
    def src_port(self) -> int:
        return _U16.unpack_from(self._buf, 0)[0]

    @property
    def dst_port(self) -> int:
        return _U16.unpack_from(self._buf, 2)[0]

    @property
    def seq(self) -> int:
        return _U32.unpack_from(self._buf, 4)[0]

    @property
    def ack(self) -> int:
        return _U32.unpack_from(self._buf, 8)[0]

    @property
    def header_len(self) -> int:
        return (self._buf[12] >> 4) * 4

    @property
    def flags(self) -> TcpFlags:
        return TcpFlags(self._buf[13])

    @property
    def window(self) -> int:
        return _U16.unpack_from(self._buf, 14)[0]

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self._buf, 16)[0]

    @property
    def urgent(self) -> int:
        return _U16.unpack_from(self._buf, 18)[0]

    @property
    def options_raw(self) -> memoryview:
        return self._buf[HEADER_LEN:self.header_len]

    @property
    def payload(self) -> memoryview:
        return self._buf[self.header_len:]

    @property
    def seg_len(self) -> int:
        """SEG.LEN (RFC 9293 3.4): payload length plus one for each of SYN and FIN."""
        flags = self._buf[13]
        return len(self._buf) - self.header_len + ((flags & 0x02) >> 1) + (flags & 0x01)

    def options(self) -> TcpOptions:
        return parse_options(self.options_raw)

    def fields(self) -> tuple[int, int, int, int, int, int, int, int, int]:
        """All fixed fields at once: (sport, dport, seq, ack, offset byte, flags, window,
        checksum, urgent); one ``unpack_from`` for the receive hot path."""
        return _HDR.unpack_from(self._buf, 0)

    def verify_checksum(self, src_ip: bytes, dst_ip: bytes) -> bool:
        buf = self._buf
        return ones_sum(buf, pseudo_sum(src_ip, dst_ip, len(buf))) == 0xFFFF


# -- building -----------------------------------------------------------------------------

def build_segment(src_ip: bytes, dst_ip: bytes, src_port: int, dst_port: int, seq: int,
                  ack: int, flags: int, window: int, options: bytes = b"", payload=b"",
                  urgent: int = 0, partial: bool = False) -> bytes:
    """One segment. ``options`` must be a multiple of 4 bytes.

    ``partial`` leaves the checksum to be completed below (Linux CHECKSUM_PARTIAL, virtio
    NEEDS_CSUM): the field holds only the folded pseudo-header sum, not complemented, so
    whoever sums the segment from the TCP header on and stores the complement gets the
    right checksum - a NIC, the host kernel behind a TAP, or the IP layer in software.
    """
    hl = HEADER_LEN + len(options)
    total = hl + len(payload)
    if partial:
        csum = pseudo_sum(src_ip, dst_ip, total) % 0xFFFF or 0xFFFF
        header = _HDR.pack(src_port, dst_port, seq, ack, (hl // 4) << 4, flags, window, csum, urgent)
        if options:
            header += options
        return header + payload if isinstance(payload, bytes) else b"".join((header, payload))
    header = _HDR.pack(src_port, dst_port, seq, ack, (hl // 4) << 4, flags, window, 0, urgent)
    if options:
        header += options
    s = ones_sum(header, pseudo_sum(src_ip, dst_ip, total))
    if payload:
        s = ones_sum(payload, s)
    csum = ~s & 0xFFFF
    header = header[:16] + _U16.pack(csum) + header[18:]
    return header + payload if isinstance(payload, bytes) else b"".join((header, payload))


@attrs.frozen
class TcpRepr:
    """A TCP segment as a value: fixed fields, decoded options and the payload bytes."""

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: TcpFlags
    window: int
    urgent: int = 0
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None
    payload: bytes = b""

    @classmethod
    def parse(cls, pkt: TcpPacket, src_ip: bytes | None = None,
              dst_ip: bytes | None = None) -> TcpRepr:
        """Decode ``pkt``; with addresses given, a bad checksum raises ``Malformed``."""
        if src_ip is not None and dst_ip is not None and not pkt.verify_checksum(src_ip, dst_ip):
            raise Malformed("tcp: bad checksum")
        sport, dport, seq, ack, _off, flags, window, _csum, urgent = pkt.fields()
        o = pkt.options()
        return cls(sport, dport, seq, ack, TcpFlags(flags), window, urgent, o.mss, o.wscale,
                   o.sack_permitted, o.sack_blocks, o.timestamp, bytes(pkt.payload))

    def options_bytes(self) -> bytes:
        return encode_options(self.mss, self.wscale, self.sack_permitted, self.timestamp,
                              self.sack_blocks)

    def header_len(self) -> int:
        return HEADER_LEN + len(self.options_bytes())

    def buffer_len(self) -> int:
        return self.header_len() + len(self.payload)

    @property
    def seg_len(self) -> int:
        return len(self.payload) + bool(self.flags & TcpFlags.SYN) + bool(self.flags & TcpFlags.FIN)

    def to_bytes(self, src_ip: bytes, dst_ip: bytes) -> bytes:
        return build_segment(src_ip, dst_ip, self.src_port, self.dst_port, self.seq, self.ack,
                             int(self.flags), self.window, self.options_bytes(),
                             bytes(self.payload), self.urgent)

    def emit(self, buf, offset: int, src_ip: bytes, dst_ip: bytes) -> int:
        """Write the segment into ``buf`` at ``offset``; returns the bytes written."""
        data = self.to_bytes(src_ip, dst_ip)
        buf[offset:offset + len(data)] = data
        return len(data)

    def __str__(self) -> str:
        return (f"{self.src_port} > {self.dst_port} [{self.flags}] seq {self.seq} "
                f"ack {self.ack} win {self.window} len {len(self.payload)}")
