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
* ``gso_type`` / ``gso_size`` - virtio's GSO_TCPV4/GSO_TCPV6/GSO_UDP_L4 and the payload
  per piece (0: not a super-segment).

IPv6 packets (version nibble 6) are cut by ``segment6``: no header checksum and no ident,
the payload length rewritten per piece, the pseudo-header from the 128-bit addresses (RFC
8200 8.1); the same function cuts what forward6.py passes on. ``device_header`` writes
the virtio header for a link whose enabled capabilities cover the work, for either family.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..wire.checksum import ones_sum, pseudo_header_sum_v6
from ..wire.virtio import GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, HDR as _VH, NEEDS_CSUM

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
FIN_PSH = 0x09
CWR = 0x80
_IPV6_HEADER = 40


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


def segment6(packet, l4: int, gso_type: int, size: int) -> list[bytes]:
    """Cut an IPv6 TCP or UDP super-packet (GSO_TCPV6 / GSO_UDP_L4) into the packets of
    ``size`` payload bytes it stands for (Linux tcp_gso_segment / __udp_gso_segment):
    TCP sequence numbers advance, FIN and PSH only on the last piece, CWR only on the
    first; each payload length and checksum from scratch (UDP's 0 sent as 0xffff, RFC
    8200 8.1). Whatever sits between the fixed header and ``l4`` (extension headers)
    is copied into every piece, as the unfragmentable part is."""
    mv = memoryview(packet)
    src, dst = bytes(mv[8:24]), bytes(mv[24:40])
    ip_head = bytearray(mv[:l4])
    tcp = gso_type == GSO_TCPV6
    thl = (mv[l4 + 12] >> 4) * 4 if tcp else 8
    head = bytearray(mv[l4:l4 + thl])
    payload = mv[l4 + thl:]
    seq0 = _U32.unpack_from(head, 4)[0] if tcp else 0
    flags = head[13] if tcp else 0
    proto, at = (6, 16) if tcp else (17, 6)
    n = len(payload)
    pieces = []
    for off in range(0, n, size):
        chunk = payload[off:off + size]
        l4_len = thl + len(chunk)
        if tcp:
            head[4:8] = _U32.pack((seq0 + off) & 0xFFFFFFFF)
            f = flags if off + size >= n else flags & ~FIN_PSH
            head[13] = f if off == 0 else f & ~CWR
        else:
            head[4:6] = _U16.pack(l4_len)
        head[at:at + 2] = b"\0\0"
        s = ones_sum(chunk, ones_sum(head, pseudo_header_sum_v6(src, dst, proto, l4_len)))
        value = ~s & 0xFFFF
        head[at:at + 2] = _U16.pack(value or (0 if tcp else 0xFFFF))
        ip_head[4:6] = _U16.pack(l4 - _IPV6_HEADER + l4_len)
        pieces.append(b"".join((ip_head, head, chunk)))
    return pieces


def _segment6(packet, tx: Tx) -> list[bytes]:
    return segment6(packet, tx.l4, tx.gso_type, tx.gso_size) or [complete(packet, tx)]


_SEGMENTERS = {GSO_TCPV4: tcp_segment, GSO_UDP_L4: udp_segment}
_SEGMENTERS6 = {GSO_TCPV6: _segment6, GSO_UDP_L4: _segment6}


def finalize(packet, tx: Tx | None, mtu: int) -> list[bytes]:
    """What a link without offloads carries for ``packet``: finished packets of at most
    ``mtu`` bytes (the packet itself when there is nothing to do). IPv6 packets are
    told apart by their version nibble. A UDP super-datagram is always cut, even when it
    would fit: its pieces are separate messages (a kernel sender's UDP_SEGMENT makes
    one of two 100-byte datagrams)."""
    if tx is None:
        return [packet]
    if tx.gso_type != GSO_NONE and (len(packet) > mtu or tx.gso_type == GSO_UDP_L4) and tx.gso_size > 0:
        table = _SEGMENTERS6 if packet[0] >> 4 == 6 else _SEGMENTERS
        pieces = table[tx.gso_type](packet, tx)
        if pieces:
            return pieces
    if tx.csum is None:
        return [packet]
    return [complete(packet, tx)]


_RX_GSO = {4: (GSO_TCPV4, GSO_UDP_L4), 6: (GSO_TCPV6, GSO_UDP_L4)}


def rx_offload(vh, packet) -> Tx | None:
    """The work a received frame's virtio header leaves for whoever sends ``packet``
    (the IP packet, Ethernet header off) on: a checksum to finish (NEEDS_CSUM), a
    super-frame to cut; None when it is finished. GSO types that do not fit the
    packet's family are ignored (GSO_ECN is a modifier)."""
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = _VH.unpack_from(vh, 0)
    version = packet[0] >> 4
    gso_type &= 0x7F
    if gso_type not in _RX_GSO.get(version, ()):
        gso_type, gso_size = GSO_NONE, 0
    if flags & NEEDS_CSUM:
        return Tx(csum_start - 14, csum_offset, gso_type, gso_size)
    if gso_type != GSO_NONE:
        l4 = (packet[0] & 0x0F) * 4 if version == 4 else _IPV6_HEADER
        return Tx(l4, None, gso_type, gso_size)
    return None


def device_header(enabled: int, mtu: int, packet, tx: Tx, csum_cap: dict, gso_cap: dict) -> bytes | None:
    """The virtio_net_hdr asking the device to finish ``packet`` (its checksum, and the
    cutting of a super-segment longer than ``mtu``), or None when the link's ``enabled``
    capabilities (IFCAP_*) do not cover that work: ``csum_cap`` maps the checksum offset
    (16 TCP, 6 UDP) to the capability it needs, ``gso_cap`` the GSO type. Offsets in the
    header count the Ethernet header (csum_start = 14 + l4)."""
    if tx.csum is None or not enabled & csum_cap.get(tx.csum, 0):
        return None
    gso_type = GSO_NONE
    gso_size = hdr_len = 0
    if tx.gso_type != GSO_NONE and len(packet) > mtu:
        if not enabled & gso_cap.get(tx.gso_type, 0):
            return None
        gso_type, gso_size = tx.gso_type, tx.gso_size
        l4_head = (packet[tx.l4 + 12] >> 4) * 4 if gso_type != GSO_UDP_L4 else 8
        hdr_len = 14 + tx.l4 + l4_head
    return _VH.pack(NEEDS_CSUM, gso_type, hdr_len, gso_size, 14 + tx.l4, tx.csum)

