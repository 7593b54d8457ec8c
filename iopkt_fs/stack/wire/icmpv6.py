"""ICMPv6 (RFC 4443) and Neighbor Discovery messages and options (RFC 4861 4).

Every message starts with type, code and checksum; the next 4 bytes depend on the type::

    0      1      2          4                 8
    | type | code | checksum | message body ...

The checksum covers the IPv6 pseudo-header (source, destination, 32-bit length, next
header 58; RFC 4443 2.3, RFC 8200 8.1) and the whole message, so parsing and building
take the two addresses. ``Icmpv6Repr.parse(buf, src, dst)`` returns one of the frozen
message types below, ``Icmpv6Generic`` for any other type.

ND options (RFC 4861 4.6) are TLVs counted in units of 8 bytes; a length of 0 makes
the whole message invalid (RFC 4861 6.1.1/7.1.1), which ``parse_options`` reports as
``Malformed``. Options are kept as ``NdOption(type, data)`` values (``data`` without
type and length); ``NdPrefixInfo`` and ``NdMtu`` read and build the two structured ones.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import ClassVar

import attrs

from .checksum import internet_checksum, ones_sum, pseudo_header_sum_v6
from .errors import Malformed
from .icmp import IcmpPacket

__all__ = [
    "HEADER_LEN",
    "Icmpv6DstUnreachable",
    "Icmpv6EchoReply",
    "Icmpv6EchoRequest",
    "Icmpv6Generic",
    "Icmpv6Packet",
    "Icmpv6PacketTooBig",
    "Icmpv6ParamProblem",
    "Icmpv6Repr",
    "Icmpv6TimeExceeded",
    "Icmpv6Type",
    "NdMtu",
    "NdNeighborAdvert",
    "NdNeighborSolicit",
    "NdOption",
    "NdPrefixInfo",
    "NdRedirect",
    "NdRouterAdvert",
    "NdRouterSolicit",
    "parse_options",
]

HEADER_LEN = 8
PROTO = 58


class Icmpv6Type(IntEnum):
    DST_UNREACH = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAM_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    MLD_QUERY = 130
    MLD_REPORT = 131
    MLD_DONE = 132
    ROUTER_SOLICIT = 133
    ROUTER_ADVERT = 134
    NEIGHBOR_SOLICIT = 135
    NEIGHBOR_ADVERT = 136
    REDIRECT = 137
    MLD2_REPORT = 143


# RFC 4443 3.1 / 3.3 / 3.4 codes the stack sends.
UNREACH_NOROUTE = 0
UNREACH_ADMIN = 1
UNREACH_BEYONDSCOPE = 2
UNREACH_ADDR = 3
UNREACH_PORT = 4
TIMXCEED_HOPLIMIT = 0
TIMXCEED_REASS = 1
PARAMPROB_HEADER = 0
PARAMPROB_NEXTHEADER = 1
PARAMPROB_OPTION = 2

# ND option types (RFC 4861 4.6).
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
OPT_PREFIX_INFO = 3
OPT_REDIRECTED = 4
OPT_MTU = 5

# NA flags (RFC 4861 4.4).
NA_ROUTER = 0x80000000
NA_SOLICITED = 0x40000000
NA_OVERRIDE = 0x20000000

_HDR = struct.Struct("!BBHI")
_PREFIX = struct.Struct("!BBIII16s")


def checksum_base(src: bytes, dst: bytes, length: int) -> int:
    return pseudo_header_sum_v6(src, dst, PROTO, length)


class Icmpv6Packet(IcmpPacket):
    """A read-only view of one ICMPv6 message: ICMP's layout (RFC 4443 2.1), with the
    IPv6 pseudo-header in the checksum (RFC 4443 2.3)."""

    __slots__ = ()

    @classmethod
    def new_checked(cls, buf) -> Icmpv6Packet:
        mv = buf if type(buf) is memoryview else memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise Malformed(f"icmpv6: {len(mv)} bytes, header needs {HEADER_LEN}")
        return cls(mv)

    def verify_checksum(self, src: bytes, dst: bytes) -> bool:  # type: ignore[override]
        return ones_sum(self._buf, checksum_base(src, dst, len(self._buf))) == 0xFFFF


def parse_options(buf) -> tuple:
    """ND options -> tuple of ``NdOption``; ``Malformed`` on a zero or overlong length."""
    mv = buf if type(buf) is memoryview else memoryview(buf)
    out = []
    i = 0
    n = len(mv)
    while i < n:
        if i + 2 > n:
            raise Malformed("nd: option header cut")
        length = mv[i + 1] * 8
        if length == 0:
            raise Malformed("nd: option with length 0")
        if i + length > n:
            raise Malformed(f"nd: option {mv[i]} of {length} bytes runs past the message")
        out.append(NdOption(mv[i], bytes(mv[i + 2:i + length])))
        i += length
    return tuple(out)


def _options_bytes(options) -> bytes:
    return b"".join(o.to_bytes() for o in options)


@attrs.frozen
class NdOption:
    """One ND option: ``type`` and ``data`` (the bytes after type and length)."""

    type: int
    data: bytes

    @classmethod
    def lladdr(cls, kind: int, mac: bytes) -> NdOption:
        """Source/Target Link-Layer Address (RFC 4861 4.6.1) for Ethernet: 8 bytes in all."""
        return cls(kind, mac)

    def to_bytes(self) -> bytes:
        total = -(-(2 + len(self.data)) // 8) * 8
        return bytes((self.type, total // 8)) + self.data + bytes(total - 2 - len(self.data))


def find_option(options, kind: int) -> NdOption | None:
    for o in options:
        if o.type == kind:
            return o
    return None


def option_lladdr(options, kind: int) -> bytes | None:
    """The Ethernet address of the first option of ``kind`` (SLLA/TLLA), None if absent."""
    o = find_option(options, kind)
    return None if o is None or len(o.data) < 6 else o.data[:6]


@attrs.frozen
class NdPrefixInfo:
    """Prefix Information (RFC 4861 4.6.2); lifetimes in seconds, 0xffffffff infinite."""

    prefix_len: int
    on_link: bool
    autonomous: bool
    valid_lifetime: int
    preferred_lifetime: int
    prefix: bytes

    @classmethod
    def from_option(cls, opt: NdOption) -> NdPrefixInfo:
        if len(opt.data) != 30:
            raise Malformed(f"nd: prefix information of {len(opt.data) + 2} bytes")
        plen, flags, valid, pref, _res, prefix = _PREFIX.unpack(opt.data)
        return cls(plen, bool(flags & 0x80), bool(flags & 0x40), valid, pref, prefix)

    def to_option(self) -> NdOption:
        flags = (0x80 if self.on_link else 0) | (0x40 if self.autonomous else 0)
        return NdOption(OPT_PREFIX_INFO, _PREFIX.pack(self.prefix_len, flags, self.valid_lifetime,
                                                      self.preferred_lifetime, 0, self.prefix))


@attrs.frozen
class NdMtu:
    """The MTU option (RFC 4861 4.6.4)."""

    mtu: int

    @classmethod
    def from_option(cls, opt: NdOption) -> NdMtu:
        if len(opt.data) != 6:
            raise Malformed("nd: MTU option of the wrong length")
        return cls(int.from_bytes(opt.data[2:6], "big"))

    def to_option(self) -> NdOption:
        return NdOption(OPT_MTU, bytes(2) + self.mtu.to_bytes(4, "big"))


class Icmpv6Repr:
    """Base of the ICMPv6 message values; ``Icmpv6Repr.parse`` picks the concrete type.

    Concrete classes define ``_type_code_rest()``, ``_body()`` and ``_from_fields``."""

    __slots__ = ()
    _BY_TYPE: ClassVar[dict[int, type]] = {}

    @staticmethod
    def parse(packet_or_buf, src: bytes, dst: bytes, *, verify: bool = True) -> Icmpv6Repr:
        """Read a message carried from ``src`` to ``dst``; ``Malformed`` if it is short,
        its checksum is wrong (when ``verify``) or its ND options are invalid."""
        pkt = packet_or_buf if isinstance(packet_or_buf, Icmpv6Packet) else Icmpv6Packet.new_checked(packet_or_buf)
        if verify and not pkt.verify_checksum(src, dst):
            raise Malformed("icmpv6: bad checksum")
        icmp_type, code, _ck, rest = _HDR.unpack_from(pkt._buf, 0)
        payload = bytes(pkt._buf[HEADER_LEN:])
        cls = Icmpv6Repr._BY_TYPE.get(icmp_type)
        if cls is None:
            return Icmpv6Generic(icmp_type, code, rest, payload)
        return cls._from_fields(code, rest, payload)

    def to_bytes(self, src: bytes, dst: bytes) -> bytes:
        icmp_type, code, rest = self._type_code_rest()
        body = self._body()
        head = _HDR.pack(icmp_type, code, 0, rest)
        ck = internet_checksum(body, ones_sum(head, checksum_base(src, dst, HEADER_LEN + len(body))))
        return _HDR.pack(icmp_type, code, ck, rest) + body

    def buffer_len(self) -> int:
        return HEADER_LEN + len(self._body())

    def _type_code_rest(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def _body(self) -> bytes:
        raise NotImplementedError


def _quote_class(icmp_type: int, doc: str):
    """Error messages that are (code, quoted packet) only."""

    @attrs.frozen
    class _Err(Icmpv6Repr):
        code: int
        original: bytes

        @classmethod
        def _from_fields(cls, code, rest, payload):
            return cls(code, payload)

        def _type_code_rest(self):
            return icmp_type, self.code, 0

        def _body(self):
            return self.original

    _Err.__doc__ = doc
    return _Err


Icmpv6DstUnreachable = _quote_class(Icmpv6Type.DST_UNREACH, "Destination Unreachable (RFC 4443 3.1).")
Icmpv6DstUnreachable.__name__ = Icmpv6DstUnreachable.__qualname__ = "Icmpv6DstUnreachable"
Icmpv6TimeExceeded = _quote_class(Icmpv6Type.TIME_EXCEEDED, "Time Exceeded (RFC 4443 3.3).")
Icmpv6TimeExceeded.__name__ = Icmpv6TimeExceeded.__qualname__ = "Icmpv6TimeExceeded"


@attrs.frozen
class Icmpv6PacketTooBig(Icmpv6Repr):
    """Packet Too Big (RFC 4443 3.2): the next-hop link's MTU."""

    mtu: int
    original: bytes
    code: int = 0

    @classmethod
    def _from_fields(cls, code, rest, payload):
        return cls(rest, payload, code)

    def _type_code_rest(self):
        return Icmpv6Type.PACKET_TOO_BIG, self.code, self.mtu

    def _body(self):
        return self.original


@attrs.frozen
class Icmpv6ParamProblem(Icmpv6Repr):
    """Parameter Problem (RFC 4443 3.4): ``pointer`` is the octet at fault (32 bits)."""

    code: int
    pointer: int
    original: bytes

    @classmethod
    def _from_fields(cls, code, rest, payload):
        return cls(code, rest, payload)

    def _type_code_rest(self):
        return Icmpv6Type.PARAM_PROBLEM, self.code, self.pointer

    def _body(self):
        return self.original


@attrs.frozen
class Icmpv6EchoRequest(Icmpv6Repr):
    """Echo Request (RFC 4443 4.1)."""

    ident: int
    seq: int
    data: bytes = b""

    @classmethod
    def _from_fields(cls, code, rest, payload):
        return cls(rest >> 16, rest & 0xFFFF, payload)

    def reply(self) -> Icmpv6EchoReply:
        return Icmpv6EchoReply(self.ident, self.seq, self.data)

    def _type_code_rest(self):
        return Icmpv6Type.ECHO_REQUEST, 0, (self.ident << 16) | self.seq

    def _body(self):
        return self.data


@attrs.frozen
class Icmpv6EchoReply(Icmpv6Repr):
    """Echo Reply (RFC 4443 4.2)."""

    ident: int
    seq: int
    data: bytes = b""

    @classmethod
    def _from_fields(cls, code, rest, payload):
        return cls(rest >> 16, rest & 0xFFFF, payload)

    def _type_code_rest(self):
        return Icmpv6Type.ECHO_REPLY, 0, (self.ident << 16) | self.seq

    def _body(self):
        return self.data


def _target_and_options(payload: bytes, what: str) -> tuple[bytes, tuple]:
    if len(payload) < 16:
        raise Malformed(f"nd: {what} of {len(payload) + 8} bytes, needs 24")
    return payload[:16], parse_options(payload[16:])


@attrs.frozen
class NdNeighborSolicit(Icmpv6Repr):
    """Neighbor Solicitation (RFC 4861 4.3)."""

    target: bytes
    options: tuple = ()
    code: int = 0

    @classmethod
    def _from_fields(cls, code, rest, payload):
        target, options = _target_and_options(payload, "NS")
        return cls(target, options, code)

    def _type_code_rest(self):
        return Icmpv6Type.NEIGHBOR_SOLICIT, self.code, 0

    def _body(self):
        return self.target + _options_bytes(self.options)


@attrs.frozen
class NdNeighborAdvert(Icmpv6Repr):
    """Neighbor Advertisement (RFC 4861 4.4): Router, Solicited, Override flags."""

    target: bytes
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: tuple = ()
    code: int = 0

    @classmethod
    def _from_fields(cls, code, rest, payload):
        target, options = _target_and_options(payload, "NA")
        return cls(target, bool(rest & NA_ROUTER), bool(rest & NA_SOLICITED), bool(rest & NA_OVERRIDE),
                   options, code)

    def _type_code_rest(self):
        flags = ((NA_ROUTER if self.router else 0) | (NA_SOLICITED if self.solicited else 0)
                 | (NA_OVERRIDE if self.override else 0))
        return Icmpv6Type.NEIGHBOR_ADVERT, self.code, flags

    def _body(self):
        return self.target + _options_bytes(self.options)


@attrs.frozen
class NdRouterSolicit(Icmpv6Repr):
    """Router Solicitation (RFC 4861 4.1)."""

    options: tuple = ()
    code: int = 0

    @classmethod
    def _from_fields(cls, code, rest, payload):
        return cls(parse_options(payload), code)

    def _type_code_rest(self):
        return Icmpv6Type.ROUTER_SOLICIT, self.code, 0

    def _body(self):
        return _options_bytes(self.options)


@attrs.frozen
class NdRouterAdvert(Icmpv6Repr):
    """Router Advertisement (RFC 4861 4.2); times in ms (reachable, retrans), lifetime s."""

    hop_limit: int = 0
    managed: bool = False
    other: bool = False
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_time: int = 0
    options: tuple = ()
    code: int = 0
    preference: int = 0         # RFC 4191 2.2 Prf: 1 high, 0 medium, 3 low (2 reserved)

    @classmethod
    def _from_fields(cls, code, rest, payload):
        if len(payload) < 8:
            raise Malformed(f"nd: RA of {len(payload) + 8} bytes, needs 16")
        reach, retrans = struct.unpack_from("!II", payload, 0)
        return cls(rest >> 24, bool(rest & 0x800000), bool(rest & 0x400000), rest & 0xFFFF,
                   reach, retrans, parse_options(payload[8:]), code, (rest >> 19) & 3)

    def _type_code_rest(self):
        rest = ((self.hop_limit << 24) | (0x800000 if self.managed else 0)
                | (0x400000 if self.other else 0) | (self.preference & 3) << 19 | self.router_lifetime)
        return Icmpv6Type.ROUTER_ADVERT, self.code, rest

    def _body(self):
        return struct.pack("!II", self.reachable_time, self.retrans_time) + _options_bytes(self.options)


@attrs.frozen
class NdRedirect(Icmpv6Repr):
    """Redirect (RFC 4861 4.5): a better first hop (``target``) toward ``destination``;
    ``target == destination`` says the destination is on-link."""

    target: bytes
    destination: bytes
    options: tuple = ()
    code: int = 0

    @classmethod
    def _from_fields(cls, code, rest, payload):
        if len(payload) < 32:
            raise Malformed(f"nd: redirect of {len(payload) + 8} bytes, needs 40")
        return cls(payload[:16], payload[16:32], parse_options(payload[32:]), code)

    def _type_code_rest(self):
        return Icmpv6Type.REDIRECT, self.code, 0

    def _body(self):
        return self.target + self.destination + _options_bytes(self.options)


def redirected_header(packet: bytes) -> NdOption:
    """The Redirected Header option (RFC 4861 4.6.3): 6 reserved bytes, then as much of
    the redirected packet as keeps the Redirect within the minimum MTU (1280), cut to a
    multiple of 8 so the option needs no padding."""
    room = 1280 - 40 - 40 - 8 - 8      # IPv6, Redirect, a TLLA option, this option's head
    data = bytes(packet[:room])
    return NdOption(OPT_REDIRECTED, bytes(6) + data[:len(data) & ~7])


@attrs.frozen
class Icmpv6Generic(Icmpv6Repr):
    """Any other message: type, code, the raw 32-bit word after the checksum, the rest."""

    type: int
    code: int
    rest: int = 0
    payload: bytes = b""

    def _type_code_rest(self):
        return self.type, self.code, self.rest

    def _body(self):
        return self.payload


Icmpv6Repr._BY_TYPE.update({
    Icmpv6Type.DST_UNREACH: Icmpv6DstUnreachable,
    Icmpv6Type.PACKET_TOO_BIG: Icmpv6PacketTooBig,
    Icmpv6Type.TIME_EXCEEDED: Icmpv6TimeExceeded,
    Icmpv6Type.PARAM_PROBLEM: Icmpv6ParamProblem,
    Icmpv6Type.ECHO_REQUEST: Icmpv6EchoRequest,
    Icmpv6Type.ECHO_REPLY: Icmpv6EchoReply,
    Icmpv6Type.ROUTER_SOLICIT: NdRouterSolicit,
    Icmpv6Type.ROUTER_ADVERT: NdRouterAdvert,
    Icmpv6Type.NEIGHBOR_SOLICIT: NdNeighborSolicit,
    Icmpv6Type.NEIGHBOR_ADVERT: NdNeighborAdvert,
    Icmpv6Type.REDIRECT: NdRedirect,
})
