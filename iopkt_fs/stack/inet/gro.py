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
    __slots__ = ("first", "parts", "size", "next_seq", "ack", "win", "flags", "opts", "head",
                 "closed", "thl")

    def __init__(self, frame, head, seq, ack, flags, win, thl: int, tot: int):
        self.first = frame
        self.head = head
        self.thl = thl
        self.parts = [frame[34 + thl:14 + tot]]
        self.size = tot - 20 - thl
        self.next_seq = (seq + self.size) & 0xFFFFFFFF
        self.ack = ack
        self.win = win
        self.flags = flags
        self.opts = bytes(frame[54:34 + thl])
        self.closed = bool(flags & _ENDS_RUN)

    def frame(self):
        """The joined frame (the first frame itself when nothing joined it)."""
        first = self.first
        if len(self.parts) == 1:
            return first, VALID_VH
        thl = self.thl
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
    says whether an IPv4 address is ours.

    The checksum test sums the IPv4 header and the TCP segment as one big integer with
    the pseudo-header: each is intact when its own sum is 0 modulo 0xffff, so the total
    is 0 when both are. (One error in either is always seen; two could cancel - as two
    errors inside one segment can for the checksum itself.) A frame that fails goes up
    alone, and the normal path tells which header was bad.
    """
    out: list = []
    runs: dict = {}
    unpack = _HEAD.unpack_from
    from_bytes = int.from_bytes
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
        (head, _t, _vihl, _tos, tot, _id, frag, _ttl, _proto, _ipsum, src, dst, sport, dport,
         seq, ack, doff, flags, win, _csum, _urg) = unpack(frame, 0)
        thl = (doff >> 4) * 4
        key = (src, dst, sport, dport)
        end = 14 + tot
        ok = not frag & 0x3FFF and 40 <= 20 + thl < tot and end <= len(frame) \
            and flags & ~_ENDS_RUN == _ACK and is_local(dst)
        if ok and not (vh is not None and vh[0] & 3):
            n = from_bytes(frame[14:end], "big")
            if tot & 1:
                n <<= 8
            ok = (n + from_bytes(src + dst, "big") + 6 + tot - 20) % 0xFFFF == 0
        if not ok:
            # Not joinable (or a bad checksum: the normal path counts it where it drops
            # it). It goes up alone, after what came before it in its flow: the flow's
            # run is closed, so nothing later joins it and overtakes this one.
            runs.pop(key, None)
            out.append(item)
            continue
        run = runs.get(key)
        n = tot - 20 - thl
        if run is not None and not run.closed and seq == run.next_seq and ack == run.ack \
                and win == run.win and head == run.head and run.size + n <= MAX_RUN \
                and frame[54:34 + thl] == run.opts:
            run.parts.append(frame[34 + thl:end])
            run.size += n
            run.next_seq = (seq + n) & 0xFFFFFFFF
            if flags & _ENDS_RUN:
                run.flags |= flags & _ENDS_RUN
                run.closed = True
            continue
        run = _Run(frame, head, seq, ack, flags, win, thl, tot)
        runs[key] = run
        out.append(run)
    return [r.frame() if r.__class__ is _Run else r for r in out]
