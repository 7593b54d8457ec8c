"""RACK (RFC 8985): time-based loss detection for SACK connections, with DSACK (RFC 2883)
adapting the reordering window.

A segment is lost once a segment sent after it has been delivered and more than RACK.rtt
+ reo_wnd has passed since it was sent (6.2): no duplicate-ACK count, so a lost
retransmission, a lost tail or reordering deeper than three segments are all judged by
time. What the sender must remember for that, kept small:

* ``tx_log``: one ``(seq, end, sent)`` per segment of new data, sent in sequence order:
  their send times grow with their sequence numbers, so "sent before" is "lower in the
  log" and the log is walked from its head, each entry judged once (``rack_scan``). ``rack_lost_to`` is the end of the last original judged lost: every
  byte below it that is not SACKed is lost, which is what RFC 6675's pipe and NextSeg ask
  (``sack.py``); retransmissions since are below HighRxt.
* ``rxt_log``: the retransmissions and probes, in send order, judged by the same rule (a
  lost one sends HighRxt back to it and marks it lost again, so NextSeg resends it).

RACK.xmit_ts/end_seq/rtt (``rack_xmit``, ``rack_end``, ``rack_rtt``) come from the most
recently sent segment the peer has delivered (6.1), skipping retransmissions whose delivery
is ambiguous. The reordering window (6.2 step 4) is min_RTT/4 times a multiplier that each
round with a DSACK raises (and 16 DSACK-free recoveries reset), 0 while no reordering has
been seen and enough is SACKed (DupThresh's own case). A segment not yet old enough arms the
reorder timer ``t_rack`` (6.3): timers are data, ``now`` comes in.

A mixin of ``Connection``.
"""

from __future__ import annotations

from bisect import bisect_right

from ..time import Instant
from .seq import seq_ge, seq_gt, seq_le, seq_lt, seq_sub
from .state import DUPTHRESH

RACK_MIN_REO_WND = 1000           # µs: a reordering window's floor once one is used
TX_LOG_COMPACT = 1024             # drop judged entries from the head in chunks this large
REO_WND_PERSIST = 16              # RFC 8985 6.2: recoveries a widened window survives
REO_WND_MULT_MAX = 255            # the multiplier's ceiling (Linux keeps it in a byte)


class RackMixin:
    __slots__ = ()

    # -- what was sent ------------------------------------------------------------------

    def _rack_reset(self) -> None:
        """A timeout that is not (or no longer) being checked by F-RTO: every unSACKed
        segment is lost (RFC 8985 6.3), so the log has nothing left to judge."""
        self.tx_log = []
        self.tx_head = self.rack_scan = 0
        self.rack_lost_to = None
        self.t_rack = None

    # -- what was delivered (6.1) ---------------------------------------------------------

    def _rack_find(self, seq: int):
        """The logged original holding ``seq`` (or None): a bisection over the live log."""
        log = self.tx_log
        una = self.snd_una
        x = seq_sub(seq, una)
        i = bisect_right(log, x, self.tx_head, len(log), key=lambda e: seq_sub(e[0], una)) - 1
        if i >= self.tx_head:
            e = log[i]
            if seq_le(e[0], seq) and seq_lt(seq, e[1]):
                return e
        return None

    def _rack_update(self, xmit: Instant, end: int, now: Instant) -> None:
        """RFC 8985 6.1 step 2: RACK follows the most recently sent delivered segment."""
        if self.rack_xmit is not None and (xmit < self.rack_xmit or (
                xmit == self.rack_xmit and seq_le(end, self.rack_end))):
            return
        rtt = now - xmit
        self.rack_xmit, self.rack_end, self.rack_rtt = xmit, end, rtt
        if self.rack_min_rtt is None or rtt < self.rack_min_rtt:
            self.rack_min_rtt = rtt

    def _rack_delivered(self, seg, acked: int, old_una: int, fack: int | None,
                        now: Instant) -> None:
        """Fold one ACK into RACK's state: the segments it newly delivers (cumulatively,
        or by the SACK blocks it carries), then judge what was sent before them. ``fack``
        is the highest SACKed sequence before this ACK (RACK.fack)."""
        una = self.snd_una
        log = self.tx_log
        head = self.tx_head
        last = None
        # Cumulatively acknowledged originals leave the log's head.
        while head < len(log) and seq_le(log[head][1], una):
            last = log[head]
            head += 1
        if self.rack_scan < head:
            self.rack_scan = head
        self.tx_head = head
        if head > TX_LOG_COMPACT and head * 2 > len(log):
            del log[:head]
            self.rack_scan -= head
            self.tx_head = 0
        rxt = self.rxt_log
        if acked > 0 and fack is not None and seq_lt(old_una, fack) and not any(
                seq_lt(s, una) and seq_lt(old_una, t) for s, t, _ in rxt):
            # A hole below SACKed data filled by an original, never retransmitted: the
            # network reordered it (RFC 8985 6.2 step 3).
            self.rack_reord = True
            self.layer.stats.sack_reorder += 1
        if last is not None and not rxt:
            # The common case, one cumulative ACK and nothing retransmitted: RACK moves
            # to the newest segment it covers (6.1 step 2, inline).
            xmit = last[2]
            if self.rack_xmit is None or xmit > self.rack_xmit or (
                    xmit == self.rack_xmit and seq_gt(last[1], self.rack_end)):
                rtt = now - xmit
                self.rack_xmit, self.rack_end, self.rack_rtt = xmit, last[1], rtt
                if self.rack_min_rtt is None or rtt < self.rack_min_rtt:
                    self.rack_min_rtt = rtt
            cands = ()
        else:
            cands = [last] if last is not None else []
        blocks = seg.opts.sack_blocks
        if blocks and self.sack_ok:
            cands = list(cands)
            for left, right in blocks:
                if seq_gt(right, una) and seq_le(right, self.snd_max) and seq_lt(left, right):
                    e = self._rack_find((right - 1) & 0xFFFFFFFF)
                    if e is not None:
                        cands.append(e)
        for e in cands:
            if rxt and any(seq_lt(s, e[1]) and seq_lt(e[0], t) for s, t, _ in rxt):
                continue          # also retransmitted: whose delivery this is, is unknown
            self._rack_update(e[2], e[1], now)
        if rxt:
            self._rack_rxt_delivered(seg.opts.timestamp if self.ts_ok else None, now)
        if self.sacked or self.rxt_log or self.rack_lost_to is not None:
            self._rack_detect(now)

    def _rack_rxt_delivered(self, ts, now: Instant) -> None:
        """Retransmissions the peer now holds update RACK unless ambiguous (6.1 step 2:
        an echo older than the retransmission, or an RTT below the minimum, means the
        original was what arrived)."""
        una = self.snd_una
        keep = []
        for entry in self.rxt_log:
            seq, end, sent = entry
            if seq_le(end, una) or any(seq_le(s, seq) and seq_le(end, e) for s, e in self.sacked):
                ambiguous = (ts is not None and ts[1] and seq_lt(ts[1], self.ts_now(sent))) or (
                    self.rack_min_rtt is not None and now - sent < self.rack_min_rtt)
                if not ambiguous:
                    self._rack_update(sent, end, now)
                continue
            keep.append(entry)
        self.rxt_log = keep

    # -- loss detection (6.2) and the reorder timer (6.3) -----------------------------------

    def _rack_reo_wnd(self) -> int:
        """RFC 8985 6.2 step 4's RACK_update_reo_wnd, the value half."""
        if not self.rack_reord:
            if self.in_recovery:
                return 0
            sacked = sum(seq_sub(e, s) for s, e in self.sacked)
            if sacked >= DUPTHRESH * self.smss:
                return 0
        base = self.rack_min_rtt if self.rack_min_rtt is not None else (self.rtt.srtt or 0)
        wnd = max(base // 4, RACK_MIN_REO_WND) * self.rack_reo_mult
        srtt = self.rtt.srtt
        return min(wnd, srtt) if srtt else wnd

    def _rack_detect(self, now: Instant) -> None:
        """RFC 8985 6.2 RACK_detect_loss: every segment sent before RACK.xmit_ts and still
        undelivered RACK.rtt + reo_wnd after its send is lost; the soonest of the others
        arms the reorder timer."""
        xmit = self.rack_xmit
        if xmit is None:
            return
        wait = self.rack_rtt + self._rack_reo_wnd()
        rack_end = self.rack_end
        stats = self.layer.stats
        una = self.snd_una
        sacked = self.sacked
        timer = None
        log = self.tx_log
        i = self.rack_scan
        n = len(log)
        lost_to = self.rack_lost_to
        while i < n:
            seq, end, sent = log[i]
            if sent > xmit or (sent == xmit and seq_gt(end, rack_end)):
                break                   # sent after the newest delivered one: not judged
            if seq_le(end, una) or any(seq_le(s, seq) and seq_le(end, e) for s, e in sacked):
                i += 1                  # delivered
                continue
            left = sent + wait - now
            if left > 0:
                timer = left
                break
            stats.rack_lost += 1
            if lost_to is None or seq_gt(end, lost_to):
                lost_to = end
            i += 1
        self.rack_scan = i
        if lost_to is not None and seq_le(lost_to, una):
            lost_to = None
        self.rack_lost_to = lost_to
        # Retransmissions: the same rule, in their own (send-ordered) log.
        if self.rxt_log:
            keep = []
            lowest = top = None
            for entry in self.rxt_log:
                seq, end, sent = entry
                if sent > xmit or (sent == xmit and seq_gt(end, rack_end)):
                    keep.append(entry)
                    continue
                left = sent + wait - now
                if left > 0:
                    keep.append(entry)
                    if timer is None or left < timer:
                        timer = left
                    continue
                if lowest is None or seq_lt(seq, lowest):
                    lowest = seq
                if top is None or seq_gt(end, top):
                    top = end
            self.rxt_log = keep
            if lowest is not None:
                # A lost retransmission: HighRxt goes back to it and its bytes are lost
                # again, so NextSeg (rule 1) sends it once more.
                stats.rxtlost += 1
                stats.rack_lost += 1
                if seq_lt(lowest, una):
                    lowest = una
                if seq_lt(lowest, self.high_rxt):
                    self.high_rxt = lowest
                if seq_gt(top, una) and (self.rack_lost_to is None or
                                         seq_gt(top, self.rack_lost_to)):
                    self.rack_lost_to = top
        self.t_rack = None if timer is None else now + timer

    def _rack_timeout(self, now: Instant) -> None:
        """RFC 8985 6.3: the reorder timer fired: judge again, and start recovery if
        something is now lost."""
        self.layer.stats.rack_reo_timeo += 1
        self._rack_detect(now)
        self._rack_lost_found(now)

    # -- DSACK (RFC 2883 4, RFC 8985 6.2 step 4) --------------------------------------------

    def _dsack_arrived(self, left: int, right: int) -> None:
        """The peer got [left, right) twice: a retransmission was spurious (the original
        was only late) or the network duplicated it. Widen the reordering window once per
        round trip that sees one, and count it towards undoing the recovery it came from."""
        self.layer.stats.dsack_rcvd += 1
        if not self.rack_ok:
            return
        if self.rack_dsack_round is not None and seq_gt(self.snd_una, self.rack_dsack_round):
            self.rack_dsack_round = None
        if self.rack_dsack_round is None:
            self.rack_dsack_round = self.snd_max
            if self.rack_reo_mult < REO_WND_MULT_MAX:
                self.rack_reo_mult += 1
            self.rack_reo_persist = REO_WND_PERSIST
        undo = self.undo_retrans
        if undo is not None and seq_ge(left, self.undo_low) and seq_le(right, self.undo_high):
            undo -= 1
            self.undo_retrans = undo
            if undo <= 0:
                self._undo_recovery()

    def _undo_recovery(self) -> None:
        """Every retransmission of the last recovery came back as a duplicate: nothing was
        lost, the congestion response was a mistake - restore cwnd and ssthresh (what Linux
        does on DSACK, tcp_try_undo_dsack; RFC 8985 leaves the response open)."""
        cc = self.cc
        cc.cwnd = max(cc.cwnd, self.undo_cwnd)
        cc.ssthresh = max(cc.ssthresh, self.undo_ssthresh)
        self.undo_retrans = None
        self.layer.stats.dsack_undo += 1

    def _recovery_ended(self) -> None:
        """RFC 8985 6.2 step 4: a widened window outlives 16 DSACK-free recoveries."""
        if self.rack_reo_persist > 0:
            self.rack_reo_persist -= 1
            if self.rack_reo_persist == 0:
                self.rack_reo_mult = 1
