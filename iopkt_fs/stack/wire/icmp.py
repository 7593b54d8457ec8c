"""ICMP for IPv4 (RFC 792), with the RFC 1191 and RFC 1812 additions the stack uses.

Every message starts with the same 8 bytes::

    0      1      2          4                 8
    | type | code | checksum | rest of header  | payload ...

The checksum covers the whole message (RFC 792 "Checksum"). ``IcmpRepr.parse`` returns
one of the frozen message types below; a type it has no class for comes back as
``IcmpGeneric`` (type, code, rest-of-header, payload) rather than being rejected, so the
core can count or ignore it as it likes.

Error messages carry the "original" datagram: its IP header plus at least the first 8
bytes of its payload (RFC 792; RFC 1812 4.3.2.3 allows more, up to 576 bytes in all).
It is kept opaque here; ``Ipv4Packet.new_quoted`` reads it.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import ClassVar

import attrs

from .checksum import internet_checksum, ones_sum
from .errors import Malformed

__all__ = [
    "HEADER_LEN",
    "DstUnreachableCode",
    "IcmpDstUnreachable",
    "IcmpEchoReply",
    "IcmpEchoRequest",
    "IcmpGeneric",
    "IcmpPacket",
    "IcmpParamProblem",
    "IcmpRepr",
    "IcmpTimeExceeded",
    "IcmpType",
    "TimeExceededCode",
    "quote_original",
]

HEADER_LEN = 8


class IcmpType(IntEnum):
    """RFC 792 message types (plus RFC 1256 router discovery)."""

    ECHO_REPLY = 0
    DST_UNREACHABLE = 3
    SOURCE_QUENCH = 4  # deprecated by RFC 6633
    REDIRECT = 5
    ECHO_REQUEST = 8
    ROUTER_ADVERT = 9
    ROUTER_SOLICIT = 10
    TIME_EXCEEDED = 11
    PARAM_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14


class DstUnreachableCode(IntEnum):
    """RFC 792 codes 0-5, RFC 1122 3.2.2.1 and RFC 1812 5.2.7.1 codes 6-15."""

    NET_UNREACHABLE = 0
    HOST_UNREACHABLE = 1
    PROTO_UNREACHABLE = 2
    PORT_UNREACHABLE = 3
    FRAG_NEEDED = 4  # with the next-hop MTU, RFC 1191 4
    SOURCE_ROUTE_FAILED = 5
    NET_UNKNOWN = 6
    HOST_UNKNOWN = 7
    SOURCE_HOST_ISOLATED = 8
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    NET_UNREACHABLE_TOS = 11
    HOST_UNREACHABLE_TOS = 12
    COMM_PROHIBITED = 13
    HOST_PRECEDENCE_VIOLATION = 14
    PRECEDENCE_CUTOFF = 15


class TimeExceededCode(IntEnum):
    """RFC 792 "Time Exceeded Message"."""

    TTL_EXCEEDED = 0
    REASSEMBLY_EXCEEDED = 1


_HDR = struct.Struct("!BBHI")  # type, code, checksum, rest of header as one 32-bit word
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class IcmpPacket:
    """A read-only view of one ICMP message (the IP payload, already cut to length)."""

    __slots__ = ("_buf",)

    def __init__(self, buf):
        """Wrap ``buf`` unchecked: only for messages we built ourselves."""
        self._buf = buf if type(buf) is memoryview else memoryview(buf)

    @classmethod
    def new_checked(cls, buf) -> IcmpPacket:
        """Wrap an untrusted message; raises ``Malformed`` if shorter than 8 bytes."""
        mv = buf if type(buf) is memoryview else memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise Malformed(f"icmp: {len(mv)} bytes, header needs {HEADER_LEN}")
        return cls(mv)

    @property
    def type(self) -> int:
        return self._buf[0]

    @property
    def code(self) -> int:
        return self._buf[1]

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self._buf, 2)[0]

    @property
    def rest(self) -> int:
        """The 32-bit rest-of-header word; its meaning depends on the type."""
        return _U32.unpack_from(self._buf, 4)[0]

    @property
    def ident(self) -> int:
        """Echo identifier (RFC 792 "Echo or Echo Reply Message")."""
        return _U16.unpack_from(self._buf, 4)[0]

    @property
    def seq(self) -> int:
        """Echo sequence number."""
        return _U16.unpack_from(self._buf, 6)[0]

    @property
    def next_hop_mtu(self) -> int:
        """The low 16 bits of the rest word: the MTU in "fragmentation needed" (RFC 1191 4)."""
        return _U16.unpack_from(self._buf, 6)[0]

    @property
    def payload(self) -> memoryview:
        return self._buf[HEADER_LEN:]

    def __len__(self) -> int:
        return len(self._buf)

    def verify_checksum(self) -> bool:
        return ones_sum(self._buf) == 0xFFFF


class IcmpRepr:
    """Base of the ICMP message values; ``IcmpRepr.parse`` picks the concrete type.

    Concrete classes define ``_type_code_rest()`` and ``_body()``; emission is shared.
    """

    __slots__ = ()

    _BY_TYPE: ClassVar[dict[int, type]] = {}

    @staticmethod
    def parse(packet_or_buf, *, verify: bool = True) -> IcmpRepr:
        """Read an ICMP message into its value type.

        Raises ``Malformed`` if shorter than the header or (when ``verify``) the checksum
        is wrong. Unknown types are returned as ``IcmpGeneric``.
        """
        pkt = (
            packet_or_buf
            if isinstance(packet_or_buf, IcmpPacket)
            else IcmpPacket.new_checked(packet_or_buf)
        )
        buf = pkt._buf
        if verify and ones_sum(buf) != 0xFFFF:
            raise Malformed("icmp: bad checksum")
        icmp_type, code, _ck, rest = _HDR.unpack_from(buf, 0)
        payload = bytes(buf[HEADER_LEN:])
        cls = IcmpRepr._BY_TYPE.get(icmp_type)
        if cls is None:
            return IcmpGeneric(icmp_type, code, rest, payload)
        return cls._from_fields(code, rest, payload)

    def buffer_len(self) -> int:
        return HEADER_LEN + len(self._body())

    def to_bytes(self) -> bytes:
        """The message with its checksum computed (RFC 792, RFC 1071)."""
        icmp_type, code, rest = self._type_code_rest()
        body = self._body()
        checksum = internet_checksum(body, ones_sum(_HDR.pack(icmp_type, code, 0, rest)))
        return _HDR.pack(icmp_type, code, checksum, rest) + body

    def emit(self, buf, offset: int = 0) -> None:
        """Write the message into writable ``buf`` at ``offset``."""
        message = self.to_bytes()
        buf[offset : offset + len(message)] = message

    def _type_code_rest(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def _body(self) -> bytes:
        raise NotImplementedError


@attrs.frozen
class IcmpEchoRequest(IcmpRepr):
    """Echo (RFC 792 type 8): what ping sends."""

    ident: int
    seq: int
    data: bytes = b""

    @classmethod
    def _from_fields(cls, code: int, rest: int, payload: bytes) -> IcmpEchoRequest:
        # RFC 792 names only code 0; RFC 1122 3.2.2.6 still answers any code, so do we.
        return cls(rest >> 16, rest & 0xFFFF, payload)

    def reply(self) -> IcmpEchoReply:
        """The echo reply: same identifier, sequence and data (RFC 792, RFC 1122 3.2.2.6)."""
        return IcmpEchoReply(self.ident, self.seq, self.data)

    def _type_code_rest(self) -> tuple[int, int, int]:
        return IcmpType.ECHO_REQUEST, 0, (self.ident << 16) | self.seq

    def _body(self) -> bytes:
        return self.data


@attrs.frozen
class IcmpEchoReply(IcmpRepr):
    """Echo Reply (RFC 792 type 0)."""

    ident: int
    seq: int
    data: bytes = b""

    @classmethod
    def _from_fields(cls, code: int, rest: int, payload: bytes) -> IcmpEchoReply:
        return cls(rest >> 16, rest & 0xFFFF, payload)

    def _type_code_rest(self) -> tuple[int, int, int]:
        return IcmpType.ECHO_REPLY, 0, (self.ident << 16) | self.seq

    def _body(self) -> bytes:
        return self.data


@attrs.frozen
class IcmpDstUnreachable(IcmpRepr):
    """Destination Unreachable (RFC 792 type 3).

    ``next_hop_mtu`` is the low half of the rest word, meaningful for ``FRAG_NEEDED``
    (RFC 1191 4) and zero otherwise.
    """

    code: int
    original: bytes
    next_hop_mtu: int = 0

    @classmethod
    def _from_fields(cls, code: int, rest: int, payload: bytes) -> IcmpDstUnreachable:
        return cls(code, payload, rest & 0xFFFF)

    def _type_code_rest(self) -> tuple[int, int, int]:
        return IcmpType.DST_UNREACHABLE, self.code, self.next_hop_mtu

    def _body(self) -> bytes:
        return self.original


@attrs.frozen
class IcmpTimeExceeded(IcmpRepr):
    """Time Exceeded (RFC 792 type 11): TTL expired in transit, or reassembly timed out."""

    code: int
    original: bytes

    @classmethod
    def _from_fields(cls, code: int, rest: int, payload: bytes) -> IcmpTimeExceeded:
        return cls(code, payload)

    def _type_code_rest(self) -> tuple[int, int, int]:
        return IcmpType.TIME_EXCEEDED, self.code, 0

    def _body(self) -> bytes:
        return self.original


@attrs.frozen
class IcmpParamProblem(IcmpRepr):
    """Parameter Problem (RFC 792 type 12): ``pointer`` is the octet at fault."""

    pointer: int
    original: bytes
    code: int = 0

    @classmethod
    def _from_fields(cls, code: int, rest: int, payload: bytes) -> IcmpParamProblem:
        return cls(rest >> 24, payload, code)

    def _type_code_rest(self) -> tuple[int, int, int]:
        return IcmpType.PARAM_PROBLEM, self.code, self.pointer << 24

    def _body(self) -> bytes:
        return self.original


@attrs.frozen
class IcmpGeneric(IcmpRepr):
    """Any other message: type, code, the raw 32-bit rest-of-header and the payload."""

    type: int
    code: int
    rest: int = 0
    payload: bytes = b""

    def _type_code_rest(self) -> tuple[int, int, int]:
        return self.type, self.code, self.rest

    def _body(self) -> bytes:
        return self.payload


IcmpRepr._BY_TYPE.update(
    {
        IcmpType.ECHO_REQUEST: IcmpEchoRequest,
        IcmpType.ECHO_REPLY: IcmpEchoReply,
        IcmpType.DST_UNREACHABLE: IcmpDstUnreachable,
        IcmpType.TIME_EXCEEDED: IcmpTimeExceeded,
        IcmpType.PARAM_PROBLEM: IcmpParamProblem,
    }
)


def quote_original(datagram, data_len: int = 8) -> bytes:
    """The part of ``datagram`` an ICMP error quotes: its IP header + ``data_len`` bytes.

    RFC 792 asks for the header and 64 bits of data; RFC 1812 4.3.2.3 allows more (BSD's
    ``net.inet.icmp.returndatabytes``). The datagram is one we accepted, so its IHL is sane.
    """
    header_len = (datagram[0] & 0x0F) * 4
    return bytes(datagram[: header_len + data_len])
