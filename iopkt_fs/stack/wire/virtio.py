"""struct virtio_net_hdr (<linux/virtio_net.h>): the offload metadata in front of a frame.

A TAP opened with ``IFF_VNET_HDR`` (and an AF_PACKET socket with ``PACKET_VNET_HDR``)
carries these 10 bytes before every Ethernet frame in both directions. They say whether
the L4 checksum still has to be completed (``NEEDS_CSUM``: the field holds only the
pseudo-header sum, the rest is to be summed from ``csum_start`` and stored at
``csum_start + csum_offset``), whether it was already checked (``DATA_VALID``), and
whether the frame is a super-segment (``gso_type`` != NONE) to be cut into ``gso_size``
pieces of payload each. Legacy TUN uses the host's byte order, little-endian here
(``TUNSETVNETLE`` would make that explicit; gVisor writes LE too).
"""

import struct

import attrs

from .errors import Malformed

VNET_HDR_LEN = 10

# flags
NEEDS_CSUM = 0x01
DATA_VALID = 0x02
RSC_INFO = 0x04
# gso_type
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3          # UFO: gone from Linux, refused here
GSO_TCPV6 = 4
GSO_UDP_L4 = 5       # USO (Linux 6.2+)
GSO_ECN = 0x80

HDR = struct.Struct("<BBHHHH")
# What a plain frame gets on a link that carries headers: nothing to do.
PLAIN = bytes(VNET_HDR_LEN)


@attrs.frozen
class VirtioNetHdr:
    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @classmethod
    def parse(cls, buf) -> "VirtioNetHdr":
        if len(buf) < VNET_HDR_LEN:
            raise Malformed(f"virtio_net_hdr: {len(buf)} bytes")
        return cls(*HDR.unpack_from(buf, 0))

    def to_bytes(self) -> bytes:
        return HDR.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size,
                        self.csum_start, self.csum_offset)

    @property
    def csum_ok(self) -> bool:
        """The L4 checksum need not be verified (local sender, or already checked)."""
        return bool(self.flags & (NEEDS_CSUM | DATA_VALID))
