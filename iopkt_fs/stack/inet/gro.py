"""Receive coalescing: a driver's batch of plain TCP/IPv4 and TCP/IPv6 frames joined into
fewer, larger segments before TCP sees them (Linux's GRO, net/ipv4/tcp_offload.c
tcp_gro_receive, net/ipv6/ip6_offload.c ipv6_gro_receive).

A kernel sender at full speed hands a link runs of segments of one flow that differ only
in their sequence numbers: same ACK, window, flags and options (the timestamp option
changes once a millisecond). Running TCP input once per run instead of once per segment
is where the per-segment cost goes from tens of microseconds to a few: each frame costs
one header unpack, a few comparisons and its checksum check here.

Segments are joined only when Linux would join them, so that TCP learns nothing less:

* same Ethernet header, IPv4 without options or fragmentation, to one of our addresses
  (a forwarded frame is left alone: the next link would have to cut it again); IPv6
  with TCP right after the fixed header (an extension header sends the frame up alone
  and, its flow not worked out here, closes every run), the same traffic class, flow
  label and hop limit (ipv6_gro_receive's first-word and hop-limit test);
* contiguous sequence numbers, carrying data, with ACK and window equal and the TCP
  header after the flags word byte-for-byte equal (options included: a changed
  timestamp or a SACK block starts a new run);
* flags exactly ACK, or ACK with PSH/FIN on the segment that ends the run; URG, RST,
  SYN, CWR/ECE never join;
* every checksum verified first (a bad one ends the run and the frame goes up alone, to
  be counted where it is dropped); the joined segment is marked DATA_VALID. IPv6 has no
  header checksum: the TCP segment is summed with the 128-bit addresses (RFC 8200 8.1).

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
# Ethernet + the IPv6 fixed header + the fixed TCP header.
_HEAD6 = struct.Struct("!12sHIHBB16s16sHHIIBBHHH")
_HEAD6_LEN = 74
MAX_RUN6 = 65535 - 60         # the IPv6 payload length bounds TCP header and data
# Next headers after which no TCP of ours can hide: UDP, ICMPv6, No Next Header.
_NOT_TCP6 = frozenset((17, 58, 59))


class _Run:
    """A run of TCP/IPv4 segments being joined: TCP at offset 34 (``L4``), the IPv4
    total length and header checksum to rewrite. ``end`` is where the first frame's TCP
    payload ends."""

    __slots__ = ("first", "parts", "size", "next_seq", "ack", "win", "flags", "opts", "head",
                 "closed", "thl")
    L4 = 34

    def __init__(self, frame, head, seq, ack, flags, win, thl: int, end: int):
        start = self.L4 + thl
        self.first = frame
        self.head = head
        self.thl = thl
        self.parts = [frame[start:end]]
        self.size = end - start
        self.next_seq = (seq + self.size) & 0xFFFFFFFF
        self.ack = ack
        self.win = win
        self.flags = flags
        self.opts = bytes(frame[self.L4 + 20:start])
        self.closed = bool(flags & _ENDS_RUN)

    def join(self, frame, seq, ack, win, head, flags, thl: int, end: int, limit: int) -> bool:
        """Append the segment if it continues the run (the next sequence number, the
        same ACK, window, header words and options, room under ``limit``); PSH/FIN/URG
        close the run after it. False: it does not continue it."""
        start = self.L4 + thl
        n = end - start
        if self.closed or seq != self.next_seq or ack != self.ack or win != self.win \
                or head != self.head or self.size + n > limit \
                or frame[self.L4 + 20:start] != self.opts:
            return False
        self.parts.append(frame[start:end])
        self.size += n
        self.next_seq = (seq + n) & 0xFFFFFFFF
        if flags & _ENDS_RUN:
            self.flags |= flags & _ENDS_RUN
            self.closed = True
        return True

    def _ip_header(self) -> bytearray:
        ip = bytearray(self.first[14:34])
        ip[2:4] = (20 + self.thl + self.size).to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        ip[10:12] = (~ones_sum(ip) & 0xFFFF).to_bytes(2, "big")
        return ip

    def frame(self):
        """The joined frame (the first frame itself when nothing joined it)."""
        first = self.first
        if len(self.parts) == 1:
            return first, VALID_VH
        tcp = bytearray(first[self.L4:self.L4 + self.thl])
        tcp[13] = self.flags
        return b"".join((first[:14], self._ip_header(), tcp, *self.parts)), VALID_VH


class _Run6(_Run):
    """A run of TCP/IPv6 segments: TCP at offset 54, the payload length to rewrite (IPv6
    has no header checksum)."""

    __slots__ = ()
    L4 = 54

    def _ip_header(self) -> bytearray:
        ip = bytearray(self.first[14:54])
        ip[4:6] = (self.thl + self.size).to_bytes(2, "big")
        return ip


def _take6(item, out: list, runs: dict, is_local6) -> None:
    """One IPv6 frame of the batch: joined to its flow's run, or a run of its own, or
    up alone (closing what must not overtake it)."""
    frame, vh = item
    nh = frame[20]
    if nh != 6:
        if nh not in _NOT_TCP6:
            runs.clear()              # extension headers: TCP may follow, flow unknown
        out.append(item)
        return
    (head, _t, first_word, plen, _nh, hlim, src, dst, sport, dport, seq, ack, doff, flags, win,
     _csum, _urg) = _HEAD6.unpack_from(frame, 0)
    key = (src, dst, sport, dport)
    thl = (doff >> 4) * 4
    end = 54 + plen
    ok = 20 <= thl < plen and end <= len(frame) and flags & ~_ENDS_RUN == _ACK \
        and not (vh is not None and vh[1]) and is_local6(dst)
    if ok and not (vh is not None and vh[0] & 3):
        n = int.from_bytes(frame[54:end], "big")
        if plen & 1:
            n <<= 8
        ok = (n + int.from_bytes(src + dst, "big") + 6 + plen) % 0xFFFF == 0
    if not ok:
        runs.pop(key, None)           # up alone, after its flow's earlier segments
        out.append(item)
        return
    head = (head, first_word, hlim)
    run = runs.get(key)
    if run is not None and run.join(frame, seq, ack, win, head, flags, thl, end, MAX_RUN6):
        return
    run = _Run6(frame, head, seq, ack, flags, win, thl, end)
    runs[key] = run
    out.append(run)


def coalesce(frames: list, is_local, is_local6=None) -> list:
    """``frames``: (memoryview, vh or None) from one driver batch. Returns the same, with
    runs of joinable TCP segments replaced by one joined frame each. ``is_local(dst)``
    says whether an IPv4 address is ours, ``is_local6`` an IPv6 one (None: IPv6 frames
    pass untouched, as on io-pkt-v4).

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
            if is_local6 is not None and len(frame) >= _HEAD6_LEN and frame[12] == 0x86 \
                    and frame[13] == 0xDD:
                _take6(item, out, runs, is_local6)
                continue
            out.append(item)          # not TCP: no flow of ours to keep in order
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
        if run is not None and run.join(frame, seq, ack, win, head, flags, thl, end, MAX_RUN):
            continue
        run = _Run(frame, head, seq, ack, flags, win, thl, end)
        runs[key] = run
        out.append(run)
    return [r.frame() if isinstance(r, _Run) else r for r in out]
