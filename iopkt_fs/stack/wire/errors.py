"""The one exception of the wire layer.

``Malformed`` means "these bytes are not a packet we can read": truncated, a length field
that lies, a bad version or checksum. The receive path catches it and counts a drop.
``Unsupported`` is the well-formed-but-not-ours case (an ARP for Token Ring, an RARP
operation): still a ``Malformed`` for code that only wants to drop, distinct for code that
counts the two apart.
"""


class Malformed(ValueError):
    """Bytes from the wire that do not form a valid packet of the expected kind."""


class Unsupported(Malformed):
    """A valid packet of a variant this stack does not implement."""
