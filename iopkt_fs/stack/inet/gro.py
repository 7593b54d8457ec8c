"""Receive coalescing: a driver's batch of plain TCP/IPv4 and TCP/IPv6 frames joined into
fewer, larger segments before TCP sees them (Linux's GRO, net/ipv4/tcp_offload.c
tcp_gro_receive, net/ipv4/af_inet.c inet_gro_receive, net/ipv6/ip6_offload.c
ipv6_gro_receive).

A kernel sender at full speed hands a link runs of segments of one flow that differ only
in their sequence numbers: same ACK, window, flags and options (the timestamp option
changes once a millisecond). Running TCP input once per run instead of once per segment
is where the per-segment cost goes from tens of microseconds to a few: each frame costs
one header unpack, a few comparisons and its checksum check here.

Segments are joined only when Linux would join them, so that TCP learns nothing less:

* same Ethernet header, IPv4 without options or fragmentation, to one of our addresses
  (a forwarded frame is left alone: the next link would have to cut it again), the same
  TOS, TTL and DF bit (inet_gro_flush); IPv6 with TCP right after the fixed header (an
  extension header sends the frame up alone and, its flow not worked out here, closes
  every run), the same traffic class, flow label and hop limit (ipv6_gro_receive's
  first-word and hop-limit test);
* contiguous sequence numbers, carrying data, with ACK and the whole flag word (data
  offset, flags but PSH/FIN, window: tcp_gro_receive's tcp_flag_word test) equal, and
  the options byte-for-byte equal (a changed timestamp or a SACK block starts a new run);
* flags exactly ACK, or ACK with PSH/FIN on the segment that ends the run; URG, RST,
  SYN, CWR/ECE never join;
* every checksum verified; the joined segment is marked DATA_VALID. IPv6 has no header
  checksum: the TCP segment is summed with the 128-bit addresses (RFC 8200 8.1). The
  test is made once per run, on the sum of its segments' sums (below): a run that fails
  it goes up as the frames it was made of, each checked again on the normal path, which
  counts the bad one where it drops it.

A hole is never bridged, so out-of-order data still reaches TCP as its own segment and
is acknowledged at once.
"""

from __future__ import annotations

import struct

from ..wire.checksum import ones_sum
from ..wire.virtio import DATA_VALID, HDR as VNET

# What one unpack takes from a frame (struct skips what GRO does not look at):
#   IPv4: Ethernet destination+source, the IPv4 version/IHL+TOS word, total length,
#   fragment word, TTL+protocol word, addresses+ports (the flow), seq, ack, the TCP flag
#   word (data offset, reserved bits, flags), window, and the 12 bytes after the fixed
#   TCP header: the options of a segment with timestamps, the commonest kind.
_HEAD4 = struct.Struct("!12s2xHH2xHH2x12sIIHH4x12s")
_HEAD4_SHORT = struct.Struct("!12s2xHH2xHH2x12sIIHH")     # a frame shorter than that
#   IPv6: Ethernet, the first word (version, traffic class, flow label), payload length,
#   hop limit, addresses+ports, seq, ack, flag word, window, 12 option bytes.
_HEAD6 = struct.Struct("!12s2xIH1xB36sIIHH4x12s")
_HEAD6_SHORT = struct.Struct("!12s2xIH1xB36sIIHH")
_MIN4, _MIN6 = _HEAD4_SHORT.size + 4, _HEAD6_SHORT.size + 4   # 54, 74: Ethernet+IP+TCP
#   The commonest frame of all, the next plain-ACK segment of an IPv4 run with timestamps,
#   needs fewer, larger fields: Ethernet header with the IPv4 version/IHL+TOS word, total
#   length, fragment word+TTL+protocol, the flow, seq, ack+flag word+window, and the
#   12 option bytes - each compared whole with its run's.
_FAST4 = struct.Struct("!16sH2x4s2x12sI8s4x12s")
_ACK, _PSH, _FIN = 0x10, 0x08, 0x01
_ENDS_RUN = _PSH | _FIN
_WORD_KEEP = ~_ENDS_RUN & 0xFFFF  # the flag word a run's segments share
# The flag word's flags byte, PSH and FIN aside, must be exactly ACK.
_FLAGS_BUT_ENDS = 0xFF & ~_ENDS_RUN
# The header a joined segment carries: checked here, nothing left to do.
VALID_VH = VNET.pack(DATA_VALID, 0, 0, 0, 0, 0)
MAX_RUN = 65535 - 20 - 60     # the IPv4 total length bounds what one segment can hold
MAX_RUN6 = 65535 - 60         # the IPv6 payload length bounds TCP header and data
# Next headers after which no TCP of ours can hide: UDP, ICMPv6, No Next Header.
_NOT_TCP6 = frozenset((17, 58, 59))
_NEVER = -1                       # next_seq of a closed run: no sequence number equals it


class _Run:
    """A run of TCP/IPv4 segments being joined: TCP at offset 34 (``L4``), the IPv4
    total length and header checksum to rewrite. ``size`` counts the payload joined,
    ``next_seq`` is the sequence number that continues the run (``_NEVER`` once PSH or
    FIN closed it), ``same`` what every segment must share with the first one. ``items``
    keeps the frames as they came, and ``sum`` + ``small`` their checksum sums (the big
    integers, and the pseudo-headers and lengths), reduced once by ``coalesce``."""

    __slots__ = ("first", "items", "parts", "size", "next_seq", "same", "flags", "opts", "thl",
                 "pseudo", "limit", "sum", "small", "start", "fast")
    L4 = 34

    def __init__(self, item, same, seq, word, opts, thl: int, start: int, end: int,
                 pseudo: int, limit: int, total: int, small: int, fast):
        frame = item[0]
        self.first = frame
        self.items = [item]
        self.sum = total
        self.small = small
        self.start = start
        # What coalesce's fast path compares: (Ethernet+version/TOS, fragment/TTL/protocol,
        # ack/flags/window, options) as _FAST4 unpacked them from this first frame; None
        # where it does not apply (IPv6, or no timestamp-only option block there).
        self.fast = fast
        self.same = same
        self.thl = thl
        self.parts = [frame[start:end]]
        self.size = end - start
        self.flags = word & 0xFF
        self.next_seq = _NEVER if word & _ENDS_RUN else (seq + self.size) & 0xFFFFFFFF
        self.opts = opts
        self.pseudo = pseudo
        self.limit = limit

    def _ip_header(self) -> bytearray:
        ip = bytearray(self.first[14:34])
        ip[2:4] = (20 + self.thl + self.size).to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        ip[10:12] = (~ones_sum(ip) & 0xFFFF).to_bytes(2, "big")
        return ip

    def frame(self):
        """The joined frame (the first frame itself when nothing joined it). Only for a
        run whose checksum test passed."""
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


def coalesce(frames: list, is_local, is_local6=None) -> list:
    """``frames``: (memoryview, vh or None) from one driver batch. Returns the same, with
    runs of joinable TCP segments replaced by one joined frame each. ``is_local(dst)``
    says whether an IPv4 address is ours, ``is_local6`` an IPv6 one (None: IPv6 frames
    pass untouched, as on io-pkt-v4).

    The checksum test reads each datagram (IPv4: its header too) as one big integer and
    adds it, with its pseudo-header, to its run's sum; the run is tested once, when the
    batch is done. A header or segment is intact when its own sum is 0 modulo 0xffff
    (2**16 == 1 modulo 0xffff, so a big integer's value is its 16-bit words' sum), so
    the run's total is 0 when all of them are. One error anywhere in a run is always
    seen; two could cancel, as two errors inside one segment can for the checksum
    itself (RFC 1071 2.(B): the sum is commutative and associative, so where it is split
    and reduced does not matter). The division - one hardware divide per 30-bit digit,
    the dear part - is then paid once per run instead of once per segment. A run that
    fails goes up as the frames it was made of, and the normal path tells which header
    of which frame was bad.

    One loop for both families: each parses into the same few values (the flow, what
    must stay the same along a run, where TCP and its payload start and end), then one
    continuation test; a segment that continues its flow's run is checked only for what
    the run's first one does not vouch for (its lengths and its checksum).
    """
    out: list = []
    runs: dict = {}
    from_bytes = int.from_bytes
    fast4 = _FAST4.unpack_from
    for item in frames:
        frame, vh = item
        flen = len(frame)
        if flen >= 66 and (vh is None or not vh[1]):
            # The fast path: a plain ACK segment continuing an IPv4 run with the same
            # header fields, flag word and options as the run's first (any other bytes
            # under the flow's place - IPv6, ARP - differ from it in the EtherType, so
            # never match). Anything else, PSH or FIN included, takes the full path.
            h0, tot, ftp, flow, seq, awin, fopts = fast4(frame, 0)
            run = runs.get(flow)
            if run is not None and seq == run.next_seq:
                fast = run.fast
                if (fast is not None and awin == fast[2] and fopts == fast[3]
                        and h0 == fast[0] and ftp == fast[1]):
                    end = 14 + tot
                    start = run.start
                    n = end - start
                    if 0 < n and end <= flen and run.size + n <= MAX_RUN:
                        if vh is None or not vh[0] & 3:
                            total = from_bytes(frame[14:end], "big")
                            if tot & 1:
                                total <<= 8
                            run.sum += total
                            run.small += run.pseudo + tot    # one big addition, not two
                        run.items.append(item)
                        run.parts.append(frame[start:end])
                        run.size += n
                        run.next_seq = (seq + n) & 0xFFFFFFFF
                        continue
        if flen >= _MIN4 and frame[12] == 8 and not frame[13] and frame[23] == 6:
            if frame[14] != 0x45 or (vh is not None and vh[1]):
                # TCP behind IP options, or a super-segment: goes up alone, and since its
                # flow is not worked out here, no run may overtake it.
                runs.clear()
                out.append(item)
                continue
            if flen >= 66:
                mac, vt, tot, frag, tp, flow, seq, ack, word, win, opts = _HEAD4.unpack_from(frame, 0)
            else:
                mac, vt, tot, frag, tp, flow, seq, ack, word, win = _HEAD4_SHORT.unpack_from(frame, 0)
                opts = b""
            l4, end, limit = 34, 14 + tot, MAX_RUN
            same = (mac, vt, frag, tp, ack, word & _WORD_KEEP, win)
        elif is_local6 is not None and flen >= _MIN6 and frame[12] == 0x86 and frame[13] == 0xDD:
            nh = frame[20]
            if nh != 6:
                if nh not in _NOT_TCP6:
                    runs.clear()          # extension headers: TCP may follow, flow unknown
                out.append(item)
                continue
            if flen >= 86:
                mac, fw, plen, hlim, flow, seq, ack, word, win, opts = _HEAD6.unpack_from(frame, 0)
            else:
                mac, fw, plen, hlim, flow, seq, ack, word, win = _HEAD6_SHORT.unpack_from(frame, 0)
                opts = b""
            if vh is not None and vh[1]:
                runs.pop(flow, None)      # a super-segment: up alone, after its flow's run
                out.append(item)
                continue
            l4, end, limit = 54, 54 + plen, MAX_RUN6
            same = (mac, fw, hlim, ack, word & _WORD_KEEP, win)
        else:
            out.append(item)              # not TCP: no flow of ours to keep in order
            continue
        thl = word >> 10 & 0x3C
        start = l4 + thl
        n = end - start
        if thl != 32:                     # the 12 bytes unpacked were not (all) options
            opts = bytes(frame[l4 + 20:start]) if thl > 20 else b""
        run = runs.get(flow)
        if run is not None and seq == run.next_seq and same == run.same and opts == run.opts:
            # It continues the run: the flow, header fields and flags the run's first
            # segment was admitted with are this one's too. Left to check: its lengths.
            cont = True
            ok = 0 < n and end <= flen and run.size + n <= limit
            pseudo = run.pseudo
        else:
            cont = False
            ok = 20 <= thl and 0 < n and end <= flen and word & _FLAGS_BUT_ENDS == _ACK
            if ok and word & _ENDS_RUN:
                # PSH or FIN: a run it started would be closed at once and nothing could
                # join it. It goes up as it came (the normal path checks it), after what
                # came before it in its flow, whose run it closes.
                if run is not None:
                    del runs[flow]
                out.append(item)
                continue
            if run is not None:
                pseudo = run.pseudo
            elif ok:
                if l4 == 34:
                    # An IPv4 datagram to us, not a fragment; the pseudo-header less the
                    # TCP length (the total length counts the 20-byte IP header too).
                    ok = not frag & 0x3FFF and is_local(flow[4:8])
                    pseudo = from_bytes(flow[:8], "big") + 6 - 20
                else:
                    ok = is_local6(flow[16:32])
                    pseudo = from_bytes(flow[:32], "big") + 6     # addresses, next header
        if not ok:
            # Not joinable: it goes up alone (the normal path checks it), after what came
            # before it in its flow: the flow's run is closed, so nothing later joins it
            # and overtakes this one.
            if run is not None:
                del runs[flow]
            out.append(item)
            continue
        total = small = 0
        if vh is None or not vh[0] & 3:
            # The IP datagram (IPv4: its header too; IPv6 has none to check) as one number,
            # a zero byte after an odd length (RFC 1071 4.1), with its pseudo-header; only
            # the run's total is reduced (frame()'s caller, below).
            first = 14 if l4 == 34 else 54
            length = end - first            # IPv4 total length, or IPv6 payload length
            total = from_bytes(frame[first:end], "big")
            if length & 1:
                total <<= 8
            small = pseudo + length         # kept apart: one big addition, not two
        if cont:
            run.sum += total
            run.small += small
            run.items.append(item)
            run.parts.append(frame[start:end])
            run.size += n
            if word & _ENDS_RUN:
                run.flags |= word & _ENDS_RUN
                run.next_seq = _NEVER
            else:
                run.next_seq = (seq + n) & 0xFFFFFFFF
            continue
        if l4 == 34:
            # thl == 32 and data after it mean flen >= 66 and no GSO type, so the fast
            # path's unpack at the top of this turn was of this very frame.
            fast = (h0, ftp, awin, fopts) if thl == 32 else None
            run = _Run(item, same, seq, word, opts, thl, start, end, pseudo, limit, total, small, fast)
        else:
            run = _Run6(item, same, seq, word, opts, thl, start, end, pseudo, limit, total, small, None)
        runs[flow] = run
        out.append(run)
    joined: list = []
    for r in out:
        if r.__class__ is tuple:
            joined.append(r)
        elif (r.sum + r.small) % 0xFFFF == 0:
            joined.append(r.frame())
        else:
            joined.extend(r.items)     # a bad checksum in the run: each frame on its own
    return joined
