"""Offloads done in software: checksum completion and segmentation (Linux's GSO fallback).

TCP hands the IP layer *super-segments*: up to 64 KB of payload behind one header, the
checksum left partial (``build_segment(partial=True)``), with the MSS to cut at. A link
whose device takes them as they are (a TAP with IFF_VNET_HDR and TSO) gets them whole, with
a virtio_net_hdr saying how to finish them; every other link gets what this module makes:
ordinary packets of at most one MTU with finished checksums. Cutting here costs a slice, a
header and a checksum per piece - far less than running TCP output once per MSS.

An offload descriptor ``Tx`` travels with such a packet from TCP (or from a forwarded frame
that still needs work) to the link:

* ``l4`` - where the transport header starts in the IP packet;
* ``csum`` - the checksum field's offset from there (16 TCP, 6 UDP), or None when the
  checksum is already complete;
* ``gso_type`` / ``gso_size`` - virtio's GSO_TCPV4/GSO_UDP_L4 and the payload per piece
  (0: not a super-segment).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..wire.checksum import ones_sum
from ..wire.virtio import GSO_NONE, GSO_TCPV4, GSO_UDP_L4

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
FIN_PSH = 0x09


class Tx(NamedTuple):
    l4: int
    csum: int | None
    gso_type: int = GSO_NONE
    gso_size: int = 0


def _ip_header(header: bytes | bytearray, total: int, ident: int) -> bytes:
    """An IPv4 header with a new total length and ident, its checksum recomputed."""
    h = bytearray(header)
    h[2:4] = _U16.pack(total)
    h[4:6] = _U16.pack(ident & 0xFFFF)
    h[10:12] = b"\0\0"
    h[10:12] = _U16.pack(~ones_sum(h) & 0xFFFF)
    return bytes(h)


def _pseudo(packet, l4_len: int, proto: int) -> int:
    # IPv4 pseudo-header (RFC 9293 3.1): addresses summed as one integer (see wire/tcp.py
    # pseudo_sum: 2**16 == 1 mod 0xffff), protocol, transport length.
    return int.from_bytes(packet[12:20], "big") + proto + l4_len


def complete(packet, tx: Tx) -> bytes:
    """Finish a partial transport checksum in software (Linux skb_checksum_help).

    The field already holds the pseudo-header sum, so summing from the transport header
    to the end and storing the complement is all there is; UDP's 0 goes out as 0xffff
    (RFC 768)."""
    buf = bytearray(packet)
    at = tx.l4 + tx.csum
    csum = ~ones_sum(memoryview(buf)[tx.l4:]) & 0xFFFF
    if csum == 0 and tx.csum == 6:
        csum = 0xFFFF
    buf[at:at + 2] = _U16.pack(csum)
    return bytes(buf)


def tcp_segment(packet, tx: Tx) -> list[bytes]:
    """Cut an IPv4 TCP super-segment into MSS-sized packets, checksums finished.

    As Linux's tcp_gso_segment: every piece gets the header with its own sequence number;
    FIN and PSH stay on the last piece only; IP idents count up from the super-packet's
    (inet_gso_segment). The TCP checksum of each piece is computed from scratch."""
    mv = memoryview(packet)
    l4 = tx.l4
    thl = (mv[l4 + 12] >> 4) * 4
    ip_head = bytes(mv[:l4])
    tcp_head = bytearray(mv[l4:l4 + thl])
    tcp_head[16:18] = b"\0\0"
    payload = mv[l4 + thl:]
    seq0 = _U32.unpack_from(tcp_head, 4)[0]
    flags = tcp_head[13]
    ident = _U16.unpack_from(ip_head, 4)[0]
    size = tx.gso_size
    n = len(payload)
    pieces = []
    for i, off in enumerate(range(0, n, size)):
        chunk = payload[off:off + size]
        last = off + size >= n
        tcp_head[4:8] = _U32.pack((seq0 + off) & 0xFFFFFFFF)
        tcp_head[13] = flags if last else flags & ~FIN_PSH
        l4_len = thl + len(chunk)
        s = ones_sum(chunk, ones_sum(tcp_head, _pseudo(ip_head, l4_len, 6)))
        tcp_head[16:18] = _U16.pack(~s & 0xFFFF)
        pieces.append(b"".join((_ip_header(ip_head, l4 + l4_len, ident + i), tcp_head, chunk)))
        tcp_head[16:18] = b"\0\0"
    return pieces or [complete(packet, tx)]


def udp_segment(packet, tx: Tx) -> list[bytes]:
    """Cut an IPv4 UDP super-datagram (GSO_UDP_L4, UDP_SEGMENT) into datagrams of
    ``gso_size`` payload each (the last may be shorter), checksums finished."""
    mv = memoryview(packet)
    l4 = tx.l4
    ip_head = bytes(mv[:l4])
    udp_head = bytearray(mv[l4:l4 + 8])
    payload = mv[l4 + 8:]
    ident = _U16.unpack_from(ip_head, 4)[0]
    size = tx.gso_size
    pieces = []
    for i, off in enumerate(range(0, len(payload), size)):
        chunk = payload[off:off + size]
        l4_len = 8 + len(chunk)
        udp_head[4:6] = _U16.pack(l4_len)
        udp_head[6:8] = b"\0\0"
        csum = ~ones_sum(chunk, ones_sum(udp_head, _pseudo(ip_head, l4_len, 17))) & 0xFFFF
        udp_head[6:8] = _U16.pack(csum or 0xFFFF)
        pieces.append(b"".join((_ip_header(ip_head, l4 + l4_len, ident + i), udp_head, chunk)))
    return pieces


_SEGMENTERS = {GSO_TCPV4: tcp_segment, GSO_UDP_L4: udp_segment}


def finalize(packet, tx: Tx | None, mtu: int) -> list[bytes]:
    """What a link without offloads carries for ``packet``: finished packets of at most
    ``mtu`` bytes (the packet itself when there is nothing to do)."""
    if tx is None:
        return [packet]
    if tx.gso_type != GSO_NONE and len(packet) > mtu:
        return _SEGMENTERS[tx.gso_type](packet, tx)
    if tx.csum is None:
        return [packet]
    return [complete(packet, tx)]

