"""Packet formats: thin views over memoryview plus frozen value types.

Contract (smoltcp's, see docs/architecture.md): ``XxxPacket.new_checked(buf)`` validates
lengths once and raises ``Malformed``; its accessors then read with ``struct.unpack_from``
and never fail. ``XxxRepr`` is a frozen value with ``parse`` and ``emit``. Only code on the
receive path catches ``Malformed`` - and turns it into a counted drop.
"""
