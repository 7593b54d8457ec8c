"""Packet formats: thin views over memoryview plus frozen value types.

Contract (smoltcp's, see docs/architecture.md): ``XxxPacket.new_checked(buf)`` validates
lengths once and raises ``Malformed``; its accessors then read with ``struct.unpack_from``
and never fail. ``XxxPacket(buf)`` skips the checks and is only for buffers we built.
``XxxRepr`` is a frozen value with ``parse`` (which may also raise ``Malformed``: a bad
checksum, a bad version) and ``emit(buf, offset)``/``to_bytes()``/``buffer_len()``. Only
code on the receive path catches ``Malformed`` - and turns it into a counted drop.

Addresses are plain ``bytes`` (6 for MAC, 4 for IPv4): no ``ipaddress`` objects in the hot
path. This package never imports trio and never reads a clock.

Modules: ``ethernet`` (Ethernet II, 802.1Q), ``arp`` (RFC 826), ``ipv4`` (RFC 791),
``icmp`` (RFC 792), ``udp`` (RFC 768), ``tcp``, ``checksum`` (RFC 1071).
"""

from .errors import Malformed, Unsupported

__all__ = ["Malformed", "Unsupported"]
