"""GRE headers (RFC 2784, with RFC 2890's key and sequence number and RFC 1701's bits).

Layout::

    0                   1                   2                   3
    |C|R|K|S|s|Recur|  Flags  | Ver |         Protocol Type         |
    |      Checksum (optional)      |       Offset/Reserved1        |   C or R set
    |                         Key (optional)                        |   K set
    |                 Sequence Number (optional)                    |   S set

We send only the first word: flags 0, version 0, the inner packet's EtherType (QNX's
if_gre: no key, checksum or sequence number, ever). On input the optional words are
stepped over without being checked, as QNX's gre_input does; a packet with R set
(RFC 1701 source routing) is refused as it refuses it. Version 1 is PPTP's enhanced GRE
(RFC 2637): RFC 2784 2.3.1 says a version other than 0 MUST be discarded, and so we do,
as Linux's ip_gre does (QNX's code ignores the field; the difference only matters for
PPTP frames, which gre0 could not carry anyway).
"""

from __future__ import annotations

import struct

import attrs

from .errors import Malformed, Unsupported

GRE_C = 0x8000          # checksum present
GRE_R = 0x4000          # routing present (RFC 1701)
GRE_K = 0x2000          # key present (RFC 2890)
GRE_S = 0x1000          # sequence number present
GRE_VERSION = 0x0007
PROTO_GRE = 47
_HEAD = struct.Struct("!HH")


@attrs.frozen
class GreRepr:
    """A GRE header as we read it: the protocol type and how long the header was."""

    protocol: int
    header_len: int = 4
    key: int | None = None

    @classmethod
    def parse(cls, buf) -> "GreRepr":
        """Raises ``Malformed`` (truncated, a version other than 0) or ``Unsupported``
        (source routing present)."""
        if len(buf) < 4:
            raise Malformed("GRE header truncated")
        flags, protocol = _HEAD.unpack_from(buf, 0)
        if flags & GRE_VERSION:
            raise Malformed(f"GRE version {flags & GRE_VERSION}")
        if flags & GRE_R:
            raise Unsupported("GRE source routing")
        length = 4
        if flags & (GRE_C | GRE_R):
            length += 4
        key = None
        if flags & GRE_K:
            if len(buf) < length + 4:
                raise Malformed("GRE key truncated")
            key = int.from_bytes(buf[length:length + 4], "big")
            length += 4
        if flags & GRE_S:
            length += 4
        if len(buf) < length:
            raise Malformed("GRE header truncated")
        return cls(protocol, length, key)

    @staticmethod
    def header(protocol: int) -> bytes:
        """The 4-byte header we send: no flags, version 0."""
        return _HEAD.pack(0, protocol)
