"""UDP datagrams (RFC 768) over IPv4 and IPv6.

Layout::

    0          2          4        6          8
    | src port | dst port | length | checksum | data ...

``length`` counts header and data; bytes beyond it (padding) are cut off the view. The
checksum covers the IPv4 pseudo-header (source, destination, zero, protocol 17, UDP
length), the header and the data (RFC 768 "Fields"). On IPv4 a transmitted checksum of 0
means "none was computed" and is accepted; a computed 0 is therefore sent as 0xffff.
On IPv6 (16-byte addresses) the pseudo-header is RFC 8200 8.1's and the checksum is
mandatory: 0 never verifies, and ``checksum=False`` is ignored.
"""

from __future__ import annotations

import struct

import attrs

from .checksum import internet_checksum, ones_sum, pseudo_header_sum_v4, pseudo_header_sum_v6
from .errors import Malformed

__all__ = ["HEADER_LEN", "UdpPacket", "UdpRepr"]

HEADER_LEN = 8
MAX_LEN = 0xFFFF
_PROTO_UDP = 17

_HDR = struct.Struct("!HHHH")
_U16 = struct.Struct("!H")


def _pseudo(src: bytes, dst: bytes, length: int) -> int:
    if len(src) == 16:
        return pseudo_header_sum_v6(src, dst, _PROTO_UDP, length)
    return pseudo_header_sum_v4(src, dst, _PROTO_UDP, length)


class UdpPacket:
    """A read-only view of one UDP datagram, cut to its length field."""

    __slots__ = ("_buf",)

    def __init__(self, buf):
        """Wrap ``buf`` unchecked: only for datagrams we built ourselves."""
        self._buf = buf if type(buf) is memoryview else memoryview(buf)

    @classmethod
    def new_checked(cls, buf) -> UdpPacket:
        """Wrap an untrusted datagram; raises ``Malformed`` if the length field lies."""
        mv = buf if type(buf) is memoryview else memoryview(buf)
        n = len(mv)
        if n < HEADER_LEN:
            raise Malformed(f"udp: {n} bytes, header needs {HEADER_LEN}")
        length = _U16.unpack_from(mv, 4)[0]
        if length < HEADER_LEN:
            raise Malformed(f"udp: length field {length} below {HEADER_LEN}")
        if length > n:
            raise Malformed(f"udp: length field {length} exceeds {n} bytes")
        return cls(mv[:length] if length < n else mv)

    @classmethod
    def new_quoted(cls, buf) -> UdpPacket:
        """Wrap the start of a datagram quoted in an ICMP error (RFC 792: 8 bytes).

        Only the header must be present: the length field describes the original
        datagram, not the quote, so it is not checked and ``payload`` is what was quoted.
        """
        mv = buf if type(buf) is memoryview else memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise Malformed(f"udp: quoted {len(mv)} bytes, header needs {HEADER_LEN}")
        return cls(mv)

    @property
    def src_port(self) -> int:
        return _U16.unpack_from(self._buf, 0)[0]

    @property
    def dst_port(self) -> int:
        return _U16.unpack_from(self._buf, 2)[0]

    @property
    def length(self) -> int:
        return _U16.unpack_from(self._buf, 4)[0]

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self._buf, 6)[0]

    @property
    def payload(self) -> memoryview:
        return self._buf[HEADER_LEN:]

    def __len__(self) -> int:
        return len(self._buf)

    def verify_checksum(self, src: bytes, dst: bytes) -> bool:
        """True if the checksum is absent (0, allowed on IPv4 only) or right for ``src``->``dst``."""
        if _U16.unpack_from(self._buf, 6)[0] == 0:
            return len(src) == 4      # RFC 8200 8.1: IPv6 receivers discard checksum 0
        pseudo = _pseudo(src, dst, len(self._buf))
        return ones_sum(self._buf, pseudo) == 0xFFFF


@attrs.frozen
class UdpRepr:
    """A UDP datagram as a value: ports and data (length and checksum are derived)."""

    src_port: int
    dst_port: int
    payload: bytes = b""

    @classmethod
    def parse(cls, packet_or_buf, src: bytes, dst: bytes, *, verify: bool = True) -> UdpRepr:
        """Read a datagram carried from IPv4 ``src`` to ``dst``.

        Raises ``Malformed`` on a lying length field or (when ``verify``) a bad checksum;
        checksum 0 means none and is accepted (RFC 768).
        """
        pkt = (
            packet_or_buf
            if isinstance(packet_or_buf, UdpPacket)
            else UdpPacket.new_checked(packet_or_buf)
        )
        if verify and not pkt.verify_checksum(src, dst):
            raise Malformed("udp: bad checksum")
        src_port, dst_port, _len, _ck = _HDR.unpack_from(pkt._buf, 0)
        return cls(src_port, dst_port, bytes(pkt._buf[HEADER_LEN:]))

    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.payload)

    def to_bytes(self, src: bytes, dst: bytes, *, checksum: bool = True) -> bytes:
        """The datagram sent from ``src`` to ``dst``.

        ``checksum=False`` sends 0, "no checksum" (RFC 768; for offloading devices or
        a socket that asked for it). Raises ValueError if the data cannot fit.
        """
        length = HEADER_LEN + len(self.payload)
        if length > MAX_LEN:
            raise ValueError(f"udp: {length} bytes do not fit the 16-bit length field")
        if not checksum and len(src) == 4:
            return _HDR.pack(self.src_port, self.dst_port, length, 0) + self.payload
        # Sum pseudo-header and header first, then the data once: no copy just to patch
        # the checksum field in.
        initial = _pseudo(src, dst, length) + ones_sum(
            _HDR.pack(self.src_port, self.dst_port, length, 0)
        )
        ck = internet_checksum(self.payload, initial) or 0xFFFF  # RFC 768: 0 is sent as ~0
        return _HDR.pack(self.src_port, self.dst_port, length, ck) + self.payload

    def emit(self, buf, offset: int, src: bytes, dst: bytes, *, checksum: bool = True) -> None:
        """Write the datagram into writable ``buf`` at ``offset``."""
        datagram = self.to_bytes(src, dst, checksum=checksum)
        buf[offset : offset + len(datagram)] = datagram
