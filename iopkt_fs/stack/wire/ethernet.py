"""Ethernet II frames (DIX / IEEE 802.3 with an EtherType), with one optional 802.1Q tag.

Layout (IEEE 802.3 clause 3.1.1; the FCS is never present, drivers strip it)::

    0      6      12           14
    | dst  | src  | ethertype  | payload ...
                  | 0x8100 | TCI | ethertype | payload ...    (802.1Q, IEEE 802.1Q 9.6)

A tagged frame is recognised and its tag exposed (``vlan_tci``), so ``ethertype`` and
``payload`` always describe what follows the tag. Frames shorter than 60 bytes are padded
with zeros on emission (IEEE 802.3 4.2.3.3 minFrameSize 64 minus the 4-byte FCS); on
reception the padding is the next layer's problem, which is why IPv4, ARP and UDP slice
their payload to their own length field.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import attrs

from .errors import Malformed

__all__ = [
    "BROADCAST",
    "HEADER_LEN",
    "MIN_FRAME_LEN",
    "VLAN_HEADER_LEN",
    "EtherType",
    "EthernetPacket",
    "EthernetRepr",
    "ipv4_multicast_mac",
    "is_broadcast",
    "is_multicast",
    "is_unicast",
    "mac_from_str",
    "mac_to_str",
    "pad_frame",
]

HEADER_LEN = 14
VLAN_HEADER_LEN = 18
MIN_FRAME_LEN = 60  # without the FCS
BROADCAST = b"\xff\xff\xff\xff\xff\xff"


class EtherType(IntEnum):
    """The EtherTypes the stack looks at (IEEE registry)."""

    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100  # IEEE 802.1Q customer tag
    IPV6 = 0x86DD


_HDR = struct.Struct("!6s6sH")
_VLAN_HDR = struct.Struct("!6s6sHHH")  # dst, src, TPID 0x8100, TCI, inner ethertype
_U16 = struct.Struct("!H")
_MAC = struct.Struct("6s")

# The smallest EtherType; a value below it in the type field is an 802.3 length (IEEE
# 802.3 3.2.6), i.e. an LLC frame this stack does not speak.
_MIN_ETHERTYPE = 0x0600


class EthernetPacket:
    """A read-only view of an Ethernet II frame in ``buf`` (bytes-like)."""

    __slots__ = ("_buf", "_header_len")

    def __init__(self, buf, header_len: int = HEADER_LEN):
        """Wrap ``buf`` unchecked: only for frames we built ourselves."""
        self._buf = buf if type(buf) is memoryview else memoryview(buf)
        self._header_len = header_len

    @classmethod
    def new_checked(cls, buf) -> EthernetPacket:
        """Wrap an untrusted frame; raises ``Malformed`` if it is too short for its header."""
        mv = buf if type(buf) is memoryview else memoryview(buf)
        n = len(mv)
        if n < HEADER_LEN:
            raise Malformed(f"ethernet: {n} bytes, header needs {HEADER_LEN}")
        if _U16.unpack_from(mv, 12)[0] == EtherType.VLAN:
            if n < VLAN_HEADER_LEN:
                raise Malformed(f"ethernet: {n} bytes, 802.1Q header needs {VLAN_HEADER_LEN}")
            return cls(mv, VLAN_HEADER_LEN)
        return cls(mv, HEADER_LEN)

    @property
    def dst(self) -> bytes:
        return _MAC.unpack_from(self._buf, 0)[0]

    @property
    def src(self) -> bytes:
        return _MAC.unpack_from(self._buf, 6)[0]

    @property
    def ethertype(self) -> int:
        """The EtherType of the payload (the inner one for a tagged frame)."""
        return _U16.unpack_from(self._buf, self._header_len - 2)[0]

    @property
    def vlan_tci(self) -> int | None:
        """The 802.1Q tag control information (PCP:3 DEI:1 VID:12), or None if untagged."""
        if self._header_len == HEADER_LEN:
            return None
        return _U16.unpack_from(self._buf, 14)[0]

    @property
    def vlan_id(self) -> int | None:
        tci = self.vlan_tci
        return None if tci is None else tci & 0x0FFF

    @property
    def header_len(self) -> int:
        return self._header_len

    @property
    def payload(self) -> memoryview:
        """Everything after the header, Ethernet padding included."""
        return self._buf[self._header_len :]

    @property
    def frame(self) -> memoryview:
        return self._buf

    def __len__(self) -> int:
        return len(self._buf)


@attrs.frozen
class EthernetRepr:
    """An Ethernet II header as a value. The payload is not part of it."""

    dst: bytes
    src: bytes
    ethertype: int
    vlan_tci: int | None = None

    @classmethod
    def parse(cls, packet_or_buf) -> EthernetRepr:
        """Read the header of a frame (raises ``Malformed`` if truncated)."""
        pkt = (
            packet_or_buf
            if isinstance(packet_or_buf, EthernetPacket)
            else EthernetPacket.new_checked(packet_or_buf)
        )
        if pkt._header_len == HEADER_LEN:
            dst, src, ethertype = _HDR.unpack_from(pkt._buf, 0)
            tci = None
        else:
            dst, src, _tpid, tci, ethertype = _VLAN_HDR.unpack_from(pkt._buf, 0)
        if ethertype < _MIN_ETHERTYPE:
            raise Malformed(f"ethernet: 802.3 length field {ethertype} instead of an EtherType")
        return cls(dst, src, ethertype, tci)

    def buffer_len(self) -> int:
        """Length of the header ``emit`` writes."""
        return HEADER_LEN if self.vlan_tci is None else VLAN_HEADER_LEN

    def emit(self, buf, offset: int = 0) -> None:
        """Write the header into the writable ``buf`` at ``offset``."""
        if self.vlan_tci is None:
            _HDR.pack_into(buf, offset, self.dst, self.src, self.ethertype)
        else:
            _VLAN_HDR.pack_into(
                buf, offset, self.dst, self.src, EtherType.VLAN, self.vlan_tci, self.ethertype
            )

    def header_bytes(self) -> bytes:
        if self.vlan_tci is None:
            return _HDR.pack(self.dst, self.src, self.ethertype)
        return _VLAN_HDR.pack(self.dst, self.src, EtherType.VLAN, self.vlan_tci, self.ethertype)

    def to_bytes(self, payload=b"") -> bytes:
        """The whole frame: header, payload, zero padding up to ``MIN_FRAME_LEN``."""
        return pad_frame(self.header_bytes() + bytes(payload))


def pad_frame(frame: bytes) -> bytes:
    """``frame`` zero-padded to the 60-byte minimum (IEEE 802.3 4.2.3.3, FCS excluded)."""
    short = MIN_FRAME_LEN - len(frame)
    return frame + bytes(short) if short > 0 else frame


def is_broadcast(mac: bytes) -> bool:
    return mac == BROADCAST


def is_multicast(mac: bytes) -> bool:
    """True for group addresses, broadcast included (I/G bit, IEEE 802 8.2)."""
    return bool(mac[0] & 0x01)


def is_unicast(mac: bytes) -> bool:
    return not mac[0] & 0x01


def ipv4_multicast_mac(group: bytes) -> bytes:
    """The MAC for an IPv4 multicast group: 01:00:5e + low 23 bits (RFC 1112 6.4)."""
    return b"\x01\x00\x5e" + bytes((group[1] & 0x7F, group[2], group[3]))


def mac_to_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or with ``-``); raises ValueError otherwise."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)
