"""ARP for IPv4 over Ethernet (RFC 826), the only combination this stack resolves.

Layout (RFC 826 "Packet format", with hlen 6 and plen 4)::

    0        2        4     5     6        8         14        18        24        28
    | htype=1 | ptype=0x0800 | 6 | 4 | oper | sha (6) | spa (4) | tha (6) | tpa (4) |

Any other hardware/protocol type or address length raises ``Unsupported`` (a subclass of
``Malformed``, so the core can count it apart); so does an operation other than request
or reply (RFC 903 RARP, RFC 2390 InARP). Bytes after the 28 (Ethernet padding) are ignored.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import attrs

from .errors import Malformed, Unsupported

__all__ = ["PACKET_LEN", "ArpOp", "ArpPacket", "ArpRepr"]

PACKET_LEN = 28
_HTYPE_ETHERNET = 1  # RFC 826 "ar$hrd": 1 = 10Mb Ethernet (IANA ARP parameters)
_PTYPE_IPV4 = 0x0800
_FIXED_LEN = 8  # htype, ptype, hlen, plen, oper: enough to know what follows

_FIXED = struct.Struct("!HHBBH")
_PACKET = struct.Struct("!HHBBH6s4s6s4s")
_U16 = struct.Struct("!H")
_MAC = struct.Struct("6s")
_ADDR = struct.Struct("4s")
_ZERO_MAC = b"\x00" * 6


class ArpOp(IntEnum):
    """RFC 826 "ar$op"."""

    REQUEST = 1
    REPLY = 2


class ArpPacket:
    """A read-only view of an Ethernet/IPv4 ARP packet."""

    __slots__ = ("_buf",)

    def __init__(self, buf):
        """Wrap ``buf`` unchecked: only for packets we built ourselves."""
        self._buf = buf if type(buf) is memoryview else memoryview(buf)

    @classmethod
    def new_checked(cls, buf) -> ArpPacket:
        """Wrap an untrusted packet.

        Raises ``Malformed`` if truncated, ``Unsupported`` for a hardware/protocol pair
        other than Ethernet/IPv4. The view is cut to 28 bytes.
        """
        mv = buf if type(buf) is memoryview else memoryview(buf)
        n = len(mv)
        if n < _FIXED_LEN:
            raise Malformed(f"arp: {n} bytes, fixed part needs {_FIXED_LEN}")
        htype, ptype, hlen, plen, _op = _FIXED.unpack_from(mv, 0)
        if htype != _HTYPE_ETHERNET or ptype != _PTYPE_IPV4 or hlen != 6 or plen != 4:
            raise Unsupported(f"arp: htype {htype} ptype {ptype:#06x} hlen {hlen} plen {plen}")
        if n < PACKET_LEN:
            raise Malformed(f"arp: {n} bytes, Ethernet/IPv4 ARP needs {PACKET_LEN}")
        return cls(mv[:PACKET_LEN] if n > PACKET_LEN else mv)

    @property
    def operation(self) -> int:
        return _U16.unpack_from(self._buf, 6)[0]

    @property
    def sender_hw(self) -> bytes:
        return _MAC.unpack_from(self._buf, 8)[0]

    @property
    def sender_ip(self) -> bytes:
        return _ADDR.unpack_from(self._buf, 14)[0]

    @property
    def target_hw(self) -> bytes:
        return _MAC.unpack_from(self._buf, 18)[0]

    @property
    def target_ip(self) -> bytes:
        return _ADDR.unpack_from(self._buf, 24)[0]

    def __len__(self) -> int:
        return len(self._buf)


@attrs.frozen
class ArpRepr:
    """An Ethernet/IPv4 ARP request or reply as a value."""

    operation: int
    sender_hw: bytes
    sender_ip: bytes
    target_hw: bytes
    target_ip: bytes

    @classmethod
    def parse(cls, packet_or_buf) -> ArpRepr:
        """Read an ARP packet; raises ``Malformed``, or ``Unsupported`` for RARP & co."""
        pkt = (
            packet_or_buf
            if isinstance(packet_or_buf, ArpPacket)
            else ArpPacket.new_checked(packet_or_buf)
        )
        _ht, _pt, _hl, _pl, op, sha, spa, tha, tpa = _PACKET.unpack_from(pkt._buf, 0)
        if op != ArpOp.REQUEST and op != ArpOp.REPLY:
            raise Unsupported(f"arp: operation {op}")
        return cls(op, sha, spa, tha, tpa)

    @classmethod
    def request(cls, sender_hw: bytes, sender_ip: bytes, target_ip: bytes) -> ArpRepr:
        """Who has ``target_ip``? (RFC 826: target hardware address unknown, sent as 0.)"""
        return cls(ArpOp.REQUEST, sender_hw, sender_ip, _ZERO_MAC, target_ip)

    @classmethod
    def gratuitous(cls, sender_hw: bytes, sender_ip: bytes) -> ArpRepr:
        """An announcement: a request for our own address (RFC 5227 2.3)."""
        return cls(ArpOp.REQUEST, sender_hw, sender_ip, _ZERO_MAC, sender_ip)

    def reply(self, our_hw: bytes) -> ArpRepr:
        """The answer to this request from the owner of ``target_ip`` (RFC 826)."""
        return ArpRepr(ArpOp.REPLY, our_hw, self.target_ip, self.sender_hw, self.sender_ip)

    @property
    def is_request(self) -> bool:
        return self.operation == ArpOp.REQUEST

    @property
    def is_reply(self) -> bool:
        return self.operation == ArpOp.REPLY

    def buffer_len(self) -> int:
        return PACKET_LEN

    def emit(self, buf, offset: int = 0) -> None:
        """Write the 28-byte packet into writable ``buf`` at ``offset``."""
        _PACKET.pack_into(buf, offset, *self._fields())

    def to_bytes(self) -> bytes:
        """The 28-byte packet (the Ethernet layer pads the frame to 60)."""
        return _PACKET.pack(*self._fields())

    def _fields(self) -> tuple:
        return (
            _HTYPE_ETHERNET,
            _PTYPE_IPV4,
            6,
            4,
            self.operation,
            self.sender_hw,
            self.sender_ip,
            self.target_hw,
            self.target_ip,
        )
