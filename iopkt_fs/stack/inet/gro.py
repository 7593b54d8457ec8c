"""Receive coalescing: a driver's batch of plain TCP/IPv4 frames joined into fewer, larger
segments before TCP sees them (Linux's GRO, net/ipv4/tcp_offload.c tcp_gro_receive).

A kernel sender at full speed hands a link runs of segments of one flow that differ only
in their sequence numbers: same ACK, window, flags and options (the timestamp option
changes once a millisecond). Running TCP input once per run instead of once per segment
is where the per-segment cost goes from tens of microseconds to a few: each frame costs
one header unpack, a few comparisons and its checksum check here.

Segments are joined only when Linux would join them, so that TCP learns nothing less:

* same Ethernet header, IPv4 without options or fragmentation, to one of our addresses
  (a forwarded frame is left alone: the next link would have to cut it again);
* contiguous sequence numbers, carrying data, with ACK and window equal and the TCP
  header after the flags word byte-for-byte equal (options included: a changed
  timestamp or a SACK block starts a new run);
* flags exactly ACK, or ACK with PSH/FIN on the segment that ends the run; URG, RST,
  SYN, CWR/ECE never join;
* every checksum verified first (a bad one ends the run and the frame goes up alone, to
  be counted where it is dropped); the joined segment is marked DATA_VALID.

A hole is never bridged, so out-of-order data still reaches TCP as its own segment and
is acknowledged at once.
"""

from __future__ import annotations

import struct

from ..wire.checksum import ones_sum
from ..wire.virtio import DATA_VALID, HDR as VNET

# Ethernet + IPv4 (no options) + the fixed TCP header, in one unpack.
_HEAD = struct.Struct("!12sHBBHHHBBH4s4sHHIIBBHHH")
_HEAD_LEN = 54
_ETH_IP = 0x0800
_ACK, _PSH, _FIN = 0x10, 0x08, 0x01
_ENDS_RUN = _PSH | _FIN
# The header a joined segment carries: checked here, nothing left to do.
VALID_VH = VNET.pack(DATA_VALID, 0, 0, 0, 0, 0)
MAX_RUN = 65535 - 20 - 60     # the IPv4 total length bounds what one segment can hold


class _Run:
    __slots__ = ("first", "tail", "parts", "size", "next_seq", "ack", "win", "flags", "opts",
                 "head", "closed")

    def __init__(self, frame, fields, thl: int, tot: int):
        (head, _t, _vihl, _tos, _tot, _id, _frag, _ttl, _proto, _ipsum, _src, _dst, _sp, _dp,
         seq, ack, _doff, flags, win, _csum, _urg) = fields
        self.first = frame
        self.head = head
        self.parts = [frame[14 + 20 + thl:14 + tot]]
        self.size = tot - 20 - thl
        self.next_seq = (seq + self.size) & 0xFFFFFFFF
        self.ack = ack
        self.win = win
        self.flags = flags
        self.opts = bytes(frame[54:34 + thl])
        self.closed = bool(flags & _ENDS_RUN)

    def joinable(self, frame, fields, thl: int, tot: int) -> bool:
        seq, ack, flags, win = fields[14], fields[15], fields[17], fields[18]
        n = tot - 20 - thl
        return (not self.closed and seq == self.next_seq and ack == self.ack and win == self.win
                and flags & ~_ENDS_RUN == _ACK and fields[0] == self.head
                and self.size + n <= MAX_RUN and frame[54:34 + thl] == self.opts)

    def join(self, frame, fields, thl: int, tot: int) -> None:
        n = tot - 20 - thl
        self.parts.append(frame[34 + thl:14 + tot])
        self.size += n
        self.next_seq = (self.next_seq + n) & 0xFFFFFFFF
        self.flags |= fields[17] & _ENDS_RUN
        self.closed = bool(fields[17] & _ENDS_RUN)

    def frame(self):
        """The joined frame (the first frame itself when nothing joined it)."""
        first = self.first
        if len(self.parts) == 1:
            return first, VALID_VH
        thl = (first[46] >> 4) * 4
        ip = bytearray(first[14:34])
        ip[2:4] = (20 + thl + self.size).to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        ip[10:12] = (~ones_sum(ip) & 0xFFFF).to_bytes(2, "big")
        tcp = bytearray(first[34:34 + thl])
        tcp[13] = self.flags
        return b"".join((first[:14], ip, tcp, *self.parts)), VALID_VH


def coalesce(frames: list, is_local) -> list:
    """``frames``: (memoryview, vh or None) from one driver batch. Returns the same, with
    runs of joinable TCP segments replaced by one joined frame each. ``is_local(dst)``
    says whether an IPv4 address is ours."""
    out: list = []
    runs: dict = {}
    unpack = _HEAD.unpack_from
    for item in frames:
        frame, vh = item
        if len(frame) < _HEAD_LEN or frame[12] != 8 or frame[13] or frame[23] != 6:
            out.append(item)          # not TCP/IPv4: no flow of ours to keep in order
            continue
        if frame[14] != 0x45 or (vh is not None and vh[1]):
            # TCP behind IP options, or a super-segment: goes up alone, and since its
            # flow is not worked out here, no run may overtake it.
            runs.clear()
            out.append(item)
            continue
        fields = unpack(frame, 0)
        tot = fields[4]
        thl = (fields[16] >> 4) * 4
        flags = fields[17]
        key = (fields[10], fields[11], fields[12], fields[13])
        if fields[6] & 0x3FFF or tot < 20 + thl or thl < 20 or 14 + tot > len(frame) \
                or tot == 20 + thl or flags & ~_ENDS_RUN != _ACK or not is_local(fields[11]) or (
                not (vh is not None and vh[0] & 3) and (ones_sum(frame[14:34]) != 0xFFFF or ones_sum(
                    frame[34:14 + tot],
                    int.from_bytes(fields[10] + fields[11], "big") + 6 + tot - 20) != 0xFFFF)):
            # Not joinable (or a bad checksum: the normal path counts it where it drops
            # it). It goes up alone, after what came before it in its flow: the flow's
            # run is closed, so nothing later joins it and overtakes this one.
            runs.pop(key, None)
            out.append(item)
            continue
        run = runs.get(key)
        if run is not None and run.joinable(frame, fields, thl, tot):
            run.join(frame, fields, thl, tot)
            continue
        run = _Run(frame, fields, thl, tot)
        runs[key] = run
        out.append(run)
    return [r.frame() if r.__class__ is _Run else r for r in out]
