"""SACK (RFC 2018) both ways: the sender's scoreboard with RFC 6675's IsLost, pipe and
NextSeg, and the receiver's choice of blocks to report.

The scoreboard ``sacked`` is a sorted list of disjoint ``[start, end)`` sequence ranges above
SND.UNA, at most ``MAX_SACK_SCOREBOARD`` of them; the computations convert it to offsets
from SND.UNA once (``_offsets``) and walk the holes between blocks, so their cost is in
blocks, not in segments.

A mixin of ``Connection``.
"""

from __future__ import annotations

from .seq import seq_add, seq_ge, seq_gt, seq_le, seq_lt, seq_sub
from .state import DUPTHRESH

MAX_SACK_SCOREBOARD = 64


class SackMixin:
    __slots__ = ()

    def _update_scoreboard(self, blocks, ack: int) -> bool:
        """Merge reported blocks; True if any byte is newly SACKed. A first block below
        the cumulative ACK, or inside the second, is a D-SACK (RFC 2883 4): it reports
        data that arrived twice and is handed to RACK (``rack.py``), not the scoreboard."""
        grew = False
        base = ack if seq_gt(ack, self.snd_una) else self.snd_una
        first = blocks[0]
        if seq_le(first[1], ack) or (len(blocks) > 1 and seq_le(blocks[1][0], first[0]) and
                                     seq_le(first[1], blocks[1][1])):
            if seq_lt(first[0], first[1]):
                self._dsack_arrived(first[0], first[1])
            blocks = blocks[1:]
        for left, right in blocks:
            # Ignore blocks below the cumulative ACK (D-SACK, RFC 2883) or beyond SND.MAX.
            if not seq_lt(left, right) or seq_le(right, base) or seq_gt(right, self.snd_max):
                continue
            if seq_lt(left, base):
                left = base
            grew |= self._sack_insert(left, right)
        return grew

    def _sack_insert(self, left: int, right: int) -> bool:
        sb = self.sacked
        una = self.snd_una
        lo, hi = seq_sub(left, una), seq_sub(right, una)
        before = sum(seq_sub(e, s) for s, e in sb)
        out = []
        placed = False
        for s, e in sb:
            so, eo = seq_sub(s, una), seq_sub(e, una)
            if eo < lo:
                out.append([s, e])
            elif so > hi:
                if not placed:
                    out.append([seq_add(una, lo), seq_add(una, hi)])
                    placed = True
                out.append([s, e])
            else:
                lo, hi = min(lo, so), max(hi, eo)
        if not placed:
            out.append([seq_add(una, lo), seq_add(una, hi)])
        if len(out) > MAX_SACK_SCOREBOARD:
            out = out[:MAX_SACK_SCOREBOARD]
        self.sacked = out
        return sum(seq_sub(e, s) for s, e in out) > before

    def _prune_scoreboard(self) -> None:
        una = self.snd_una
        out = []
        for s, e in self.sacked:
            if seq_le(e, una):
                continue
            out.append([una if seq_lt(s, una) else s, e])
        self.sacked = out

    def _offsets(self) -> list[tuple[int, int]]:
        """The scoreboard as offsets from SND.UNA (one conversion per computation)."""
        una = self.snd_una
        return [(seq_sub(s, una), seq_sub(e, una)) for s, e in self.sacked]

    def _is_lost(self, seq: int) -> bool:
        """RFC 6675 4 IsLost: DupThresh SACKed segments above, counted in bytes: more than
        (DupThresh - 1) * SMSS bytes SACKed above ``seq``."""
        if not self.sacked:
            return False
        x = seq_sub(seq, self.snd_una)
        above = 0
        for s, e in self._offsets():
            if s <= x < e:
                return False
            if e > x:
                above += e - max(s, x)
        return above > (DUPTHRESH - 1) * self.smss

    def _holes(self):
        """(start, end, sacked_above) offsets of each unSACKed range below the highest
        SACKed byte; ``sacked_above`` is the same for every byte of a hole."""
        blocks = self._offsets()
        above = sum(e - s for s, e in blocks)
        pos = 0
        for s, e in blocks:
            if s > pos:
                yield pos, s, above
            above -= e - s
            pos = max(pos, e)

    def _rack_holes(self):
        """(start, end, lost_end) offsets from SND.UNA of each unSACKed range up to
        SND.MAX, the part above the highest SACKed byte included; bytes below
        ``lost_end`` were judged lost by RACK (``rack_lost_to``)."""
        una = self.snd_una
        lost_to = self.rack_lost_to
        lost = seq_sub(lost_to, una) if lost_to is not None else 0
        total = seq_sub(self.snd_max, una)
        pos = 0
        for s, e in self.sacked:
            so = seq_sub(s, una)
            if so > pos:
                yield pos, so, lost
            eo = seq_sub(e, una)
            if eo > pos:
                pos = eo
        if total > pos:
            yield pos, total, lost

    def _pipe(self) -> int:
        """RFC 6675 4 SetPipe, hole by hole: octets not lost count once, octets
        retransmitted (below HighRxt) count again; all octets above the highest SACKed
        one are in flight."""
        if self.rack_ok:
            # RFC 8985 with RFC 6675: RACK's marks replace IsLost. An unSACKed octet
            # counts once unless lost, once more if retransmitted (below HighRxt).
            hr = seq_sub(self.high_rxt, self.snd_una)
            pipe = 0
            for a, b, lost in self._rack_holes():
                if b > lost:
                    pipe += b - max(a, lost)
                if hr > a:
                    pipe += min(b, hr) - a
            return pipe
        thresh = (DUPTHRESH - 1) * self.smss
        hr = seq_sub(self.high_rxt, self.snd_una)
        pipe = 0
        for a, b, above in self._holes():
            if above <= thresh:
                pipe += b - a
            if hr > a:
                pipe += min(b, hr) - a
        top = seq_sub(self.sacked[-1][1], self.snd_una) if self.sacked else 0
        return pipe + max(0, seq_sub(self.snd_max, self.snd_una) - max(top, 0))

    def _next_seg(self) -> tuple[int, int, int] | None:
        """RFC 6675 4 NextSeg for retransmissions: ``(seq, length, rule)`` with rule 1 (a
        lost octet) or 3 (an unSACKed octet below the highest SACKed one), or None. Rule
        (2), new data, is the caller's and goes before rule 3."""
        if self.rack_ok:
            # Only what RACK judged lost is retransmitted: rule 3's speculative resends
            # of holes would defeat the reordering window (as Linux's RACK does).
            hr = max(0, seq_sub(self.high_rxt, self.snd_una))
            for a, b, lost in self._rack_holes():
                start = max(a, hr)
                if start >= b or start >= lost:
                    continue
                return seq_add(self.snd_una, start), min(self.smss, min(b, lost) - start), 1
            return None
        thresh = (DUPTHRESH - 1) * self.smss
        hr = max(0, seq_sub(self.high_rxt, self.snd_una))
        rule3 = None
        for a, b, above in self._holes():
            start = max(a, hr)
            if start >= b:
                continue
            n = min(self.smss, b - start)
            if above > thresh:
                return seq_add(self.snd_una, start), n, 1
            if rule3 is None:
                rule3 = (seq_add(self.snd_una, start), n, 3)
        return rule3

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """RFC 2018 4: the block holding the most recent segment first, then the others
        most recently reported first."""
        nxt = self.rcv_nxt
        ranges = [(seq_add(nxt, s), seq_add(nxt, e)) for s, e in self.ooo.ranges()]
        out = []
        for recent in self.sack_recent:
            for r in ranges:
                if r not in out and seq_ge(recent, r[0]) and seq_lt(recent, r[1]):
                    out.append(r)
        out.extend(r for r in ranges if r not in out)
        dsack = self.dsack
        if dsack is not None:
            # RFC 2883 4: the duplicate goes first, in the one ACK that answers it.
            self.dsack = None
            self.layer.stats.dsack_sent += 1
            return (dsack,) + tuple(out[:3])
        return tuple(out[:4])
