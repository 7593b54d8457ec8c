"""The ACK field (RFC 9293 3.10.7.4 fifth) and loss recovery on the sender's side.

An acceptable ACK frees the send buffer, gives an RTT sample (RFC 7323 4.1 from TSecr, or
the timed segment under Karn's rule, RFC 6298 3) and restarts the retransmission timer and
the probe timeout (RFC 6298 5.3, RFC 8985 7.2). Duplicate ACKs (RFC 5681 2) and SACK news
start fast recovery: RFC 6675's conservative SACK recovery when SACK is in use (the
scoreboard is ``sack.py``, the pipe loop ``output.py``), NewReno (RFC 6582) without. The
congestion response itself is the controller's (``congestion.py``).

A mixin of ``Connection``, called from ``input.py`` for every segment with ACK set.
"""

from __future__ import annotations

from ..time import Instant
from .seq import _HALF, MASK, MOD, seq_add, seq_ge, seq_gt, seq_le, seq_lt, seq_sub
from .state import DUPTHRESH, ESTABLISHED, FIN, SYN, Segment

RACK_MIN_REO_WND = 1000           # µs: the reordering window's floor (RFC 8985 6.2)


class RecoveryMixin:
    __slots__ = ()

    def _process_ack(self, seg: Segment, now: Instant) -> None:
        stats = self.layer.stats
        ack = seg.ack
        old_una = self.snd_una
        # seq_sub and the comparisons written out (RFC 9293 3.4 modular arithmetic,
        # as seq.py's): every ACK runs this.
        acked = (ack - old_una) & MASK
        if acked >= _HALF:
            acked -= MOD
        wnd = seg.wnd << self.snd_wscale
        fack = self.sacked[-1][1] if self.sacked else None    # RACK.fack before this ACK
        if self.sack_ok and seg.opts.sack_blocks:
            stats.sack_rcvblocks += len(seg.opts.sack_blocks)
            sack_grew = self._update_scoreboard(seg.opts.sack_blocks, ack)
        else:
            sack_grew = False
        if acked > 0:
            stats.rcvackpack += 1
            stats.rcvackbyte += acked
            self._ack_advances(ack, now, seg)
        elif acked == 0 and not seg.payload and not seg.flags & (SYN | FIN) and self.flight > 0 \
                and (wnd == self.snd_wnd or sack_grew):
            # RFC 5681 2 "DUPLICATE ACKNOWLEDGMENT" (a)-(e); RFC 6675 5: with SACK, an ACK
            # that brings new SACK information counts too.
            stats.rcvdupack += 1
            self._dup_ack(now)
        # Window update (RFC 9293 3.10.7.4 fifth, ESTABLISHED): "If SND.UNA =< SEG.ACK =<
        # SND.NXT, the send window should be updated" - from newer segments only (WL1/WL2).
        wl1 = self.snd_wl1
        if acked >= 0 and (((wl1 - seg.seq) & MASK) >= _HALF or (wl1 == seg.seq and (
                (d := (self.snd_wl2 - ack) & MASK) == 0 or d >= _HALF))):
            if wnd != self.snd_wnd and acked <= 0 and not seg.payload:
                stats.rcvwinupd += 1
            self.snd_wnd = wnd
            self.max_sndwnd = max(self.max_sndwnd, wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            if wnd > 0 and self.t_persist is not None:
                # The window opened: leave persist mode. A probe byte beyond SND.UNA is
                # sent again as ordinary data (go back to SND.UNA, as after a timeout).
                self.t_persist = None
                self.persist_shift = 0
                self.snd_nxt = self.snd_una
        if self.rack_ok:
            if self.frto:
                self._frto_ack(acked, now)
            if acked > 0 or seg.opts.sack_blocks:
                # Only news of delivery moves RACK (time alone is the reorder timer's).
                lost_to = self.rack_lost_to
                self._rack_delivered(seg, acked, old_una, fack, now)
                if self.frto and self.rack_lost_to is not None and (
                        lost_to is None or seq_gt(self.rack_lost_to, lost_to)):
                    # RACK found what the timeout left lost (the resend was delivered
                    # and what was sent before it was not): no need to ask F-RTO.
                    self._frto_genuine()
                self._rack_lost_found(now)
        elif self.in_recovery and self.rxt_log:
            self._lost_retransmissions(now)

    def _ack_advances(self, ack: int, now: Instant, seg: Segment) -> None:
        """SND.UNA < SEG.ACK: new data (or our SYN/FIN) acknowledged."""
        # (RFC 9293 3.4 arithmetic written out, as in _process_ack)
        una = self.snd_una
        acked = (ack - una) & MASK
        if acked >= _HALF:
            acked -= MOD
        flight_before = (self.snd_max - una) & MASK          # self.flight, written out
        if flight_before >= _HALF:
            flight_before -= MOD
        if una == self.iss:
            acked -= 1   # the SYN's sequence number is not data for congestion control
        # Round-trip sample: RFC 7323 4.1 from TSecr, else the timed segment with Karn's
        # rule (RFC 6298 3: never from a retransmitted segment; rtt_seq is cleared then).
        ts = seg.opts.timestamp
        if self.ts_ok and ts is not None and ts[1]:
            r = ((now // 1000 + self.ts_offset - ts[1]) & MASK)   # seq_sub(ts_now(now), TSecr)
            if r >= _HALF:
                r -= MOD
            if self.rexmt_tsval is not None and seq_lt(ts[1], self.rexmt_tsval):
                # The ACK echoes a transmission older than our last timeout
                # retransmission: an ACK of the original that got lost, answered again
                # only because of the duplicate (the Eifel case, RFC 3522). Its "RTT"
                # includes the whole timeout; taking it would feed RTO into SRTT and
                # inflate RTO without bound. Karn's rule, applied to timestamps.
                self.layer.stats.rttskipped += 1
            elif r >= 0:
                self.rtt.sample(max(r, 1) * 1000)
                self.layer.stats.rttupdated += 1
            if self.rexmt_tsval is not None and seq_ge(ts[1], self.rexmt_tsval):
                self.rexmt_tsval = None
        elif self.rtt_seq is not None and seq_gt(ack, self.rtt_seq):
            self.rtt.sample(now - self.rtt_time)
            self.layer.stats.rttupdated += 1
            self.rtt_seq = None
        # Free acknowledged bytes from the send buffer.
        freed = (ack - self.snd_buf_seq) & MASK
        if 0 < freed < _HALF:
            n = min(freed, self.snd_buf.used)
            self.snd_buf.consume(n)
            self.snd_buf_seq = (self.snd_buf_seq + n) & MASK
            if n:
                self.layer.wake(self)
        self.snd_una = ack
        if ((self.snd_nxt - ack) & MASK) >= _HALF:      # seq_lt(SND.NXT, ack)
            self.snd_nxt = ack
        if self.sacked:
            self._prune_scoreboard()
        self.rexmt_shift = 0
        # Congestion control and loss recovery.
        if self.in_recovery:
            if self.rto_recovery and acked > 0:
                # Recovery after a timeout resends in slow start (RFC 5681 3.1).
                self.cc.on_ack(acked, now, self.rtt.srtt)
            if seq_ge(ack, self.recover):
                # Full acknowledgment: leave recovery. RFC 6582 3.2 step 3 option (1):
                # cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS); RFC 6675 likewise
                # ends recovery at RecoveryPoint.
                self.in_recovery = False
                if not self.rack_ok:
                    self.rxt_log = []    # (RACK still needs them for this ACK's verdicts)
                if self.rto_recovery:
                    self.rto_recovery = False
                    self.frto = 0
                else:
                    self.cc.cwnd = min(self.cc.ssthresh, max(self.flight, self.smss) + self.smss)
                if self.rack_ok:
                    # New data sent during recovery and already judged lost keeps its
                    # mark: the next ACK starts a new recovery for it.
                    if self.rack_lost_to is not None and seq_le(self.rack_lost_to, ack):
                        self.rack_lost_to = None
                    self._recovery_ended()
            else:
                self.layer.stats.partialack += 1
                if not self.sack_ok:
                    # RFC 6582 3.2 step 4: retransmit the first unacknowledged segment,
                    # deflate cwnd by the amount acked, add back one SMSS if >= SMSS.
                    self._retransmit_una(now)
                    back = self.smss if acked >= self.smss else 0
                    self.cc.cwnd = max(self.cc.cwnd - acked + back, self.smss)
        elif self.state >= ESTABLISHED and acked > 0 and self._cwnd_limited(flight_before):
            self.cc.on_ack(acked, now, self.rtt.srtt)
        self.dupacks = 0
        # RFC 6298 5.2/5.3: stop the timer when all is acked, else restart it.
        if self.snd_una == self.snd_max:
            self.t_rexmt = None
        else:
            self.t_rexmt = now + self.rtt.rto
        # RFC 8985 7.2: restart the PTO on an ACK of new data; a probe is answered.
        self.tlp_high = None
        if self.snd_una == self.snd_max:
            self.t_tlp = None
        else:
            self._arm_probe(now, self.snd_max)

    def _cwnd_limited(self, flight: int) -> bool:
        """Grow cwnd only while it is what limits sending (RFC 5681 3.1 / RFC 7661): an
        application- or receiver-limited sender would otherwise inflate it without ever
        testing it. In slow start, half used is enough (Linux tcp_is_cwnd_limited)."""
        cwnd = self.cc.cwnd
        if self.cc.in_slow_start:
            return 2 * flight >= cwnd
        return flight + self.smss >= cwnd

    def _dup_ack(self, now: Instant) -> None:
        self.dupacks += 1
        if self.rack_ok:
            return        # RACK, not a duplicate-ACK count, decides what is lost (rack.py)
        if self.in_recovery:
            if not self.sack_ok:
                # RFC 6582 3.2 step 3: inflate cwnd by SMSS for each additional dup ACK.
                self.cc.cwnd += self.smss
            return
        lost = self.sack_ok and self._is_lost(self.snd_una)
        if self.tlp_high is not None and self.sacked and \
                seq_ge(self.sacked[-1][1], self.tlp_high):
            # RFC 8985 7.4 with 6.2: the loss probe was delivered and SND.UNA, sent before
            # it, was not: lost, whatever the duplicate ACK count.
            lost = True
            self.tlp_high = None
        if self.dupacks >= DUPTHRESH or lost:
            # RFC 6582 3.2 step 2 / 4.1: no new recovery unless the ACK covers more than
            # "recover" (guards against a second reduction after a timeout).
            if not seq_gt(self.snd_una, self.recover) and self.recover != self.iss:
                if seq_lt(self.snd_una, self.recover):
                    return
            self._enter_recovery(now)

    def _enter_recovery(self, now: Instant) -> None:
        stats = self.layer.stats
        stats.fastrexmt += 1
        stats.recovery += 1
        self.in_recovery = True
        self.recover = self.snd_max
        if self.rack_ok:
            self._undo_arm()
        else:
            self.rxt_log = []
        self.cc.on_congestion(now, self.flight)
        self.rtt_seq = None
        if self.rack_ok:
            # RACK judged SND.UNA (at least) lost: resend it now unless a retransmission
            # of it from the last recovery is still in flight (HighRxt beyond it).
            stats.sack_recovery += 1
            self.rescue_rxt = None
            if seq_gt(self.high_rxt, self.snd_una):
                return
            self._retransmit_una(now)
            self.high_rxt = seq_add(self.snd_una, min(self.smss, self.flight))
        elif self.sack_ok:
            # RFC 6675 5 step (4): RecoveryPoint = HighData, cwnd = ssthresh, retransmit
            # the first segment presumed dropped whatever the pipe says, HighRxt = its end;
            # the pipe loop in _output does the rest.
            stats.sack_recovery += 1
            self.rescue_rxt = None
            self._retransmit_una(now)
            self.high_rxt = seq_add(self.snd_una, min(self.smss, self.flight))
        else:
            # RFC 6582 3.2 step 2-3: retransmit, cwnd = ssthresh + 3*SMSS.
            self._retransmit_una(now)
            self.cc.cwnd = self.cc.ssthresh + DUPTHRESH * self.smss

    def _retransmit_una(self, now: Instant) -> None:
        n = min(self.smss, seq_sub(self.snd_max, self.snd_una))
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        data_len = max(0, min(n, seq_sub(end_data, self.snd_una)))
        fin = self.fin_queued and seq_add(self.snd_una, data_len) == end_data and \
            seq_gt(self.snd_max, end_data)
        if data_len or fin:
            self._send_data(self.snd_una, data_len, fin, now)

    def _lost_retransmissions(self, now: Instant) -> None:
        """A retransmission lost during SACK recovery: RFC 6675 alone only finds it by
        the RTO (one second at least here, and the whole window stalls meanwhile).
        RFC 8985 (RACK) 6.2's rule, applied to our recovery retransmissions: a segment
        is lost once a segment sent after it was delivered and a reordering window has
        passed; an ACK arriving RTT + reo_wnd after the retransmission was sent was
        triggered by something sent later, so the retransmission, still neither ACKed
        nor SACKed, is deemed lost. HighRxt goes back to it and NextSeg (rule 1) sends
        it again; the pipe stops counting it."""
        srtt = self.rtt.srtt
        if srtt is None:
            return
        wait = srtt + max(srtt // 4, RACK_MIN_REO_WND)   # RACK.rtt + RACK.reo_wnd (6.2)
        una = self.snd_una
        lowest = None
        keep = []
        for entry in self.rxt_log:
            seq, end, sent = entry
            if seq_le(end, una) or any(seq_le(s, seq) and seq_le(end, e)
                                       for s, e in self.sacked):
                continue                  # delivered
            if now - sent < wait:
                keep.append(entry)
                continue
            if lowest is None or seq_lt(seq, lowest):
                lowest = seq
        self.rxt_log = keep
        if lowest is not None:
            self.layer.stats.rxtlost += 1
            if seq_lt(lowest, una):
                lowest = una
            if seq_lt(lowest, self.high_rxt):
                self.high_rxt = lowest

    # -- RACK's recovery entry, timeouts, F-RTO ------------------------------------------------

    def _rack_lost_found(self, now: Instant) -> None:
        """RACK judged something lost (rack.py): start SACK recovery (RFC 8985 5, with
        RFC 6675's pipe and NextSeg sending what is lost)."""
        lost_to = self.rack_lost_to
        if self.in_recovery or self.frto or lost_to is None or not seq_gt(lost_to, self.snd_una):
            return
        self._enter_recovery(now)

    def _undo_arm(self) -> None:
        """Remember what a recovery is about to take away, so that DSACKs proving all its
        retransmissions needless can give it back (rack.py ``_undo_recovery``)."""
        self.undo_cwnd = self.cc.cwnd
        self.undo_ssthresh = self.cc.ssthresh
        self.undo_retrans = 0
        self.undo_low, self.undo_high = self.snd_una, self.snd_max

    def _rto_recovery(self, now: Instant) -> bool:
        """RFC 8985 6.3 with SACK: after a timeout every unSACKed segment is lost; the SACK
        scoreboard is kept (as Linux keeps it) and RFC 6675's pipe resends the holes in slow
        start, RACK watching the resends. F-RTO (RFC 5682) first: only the first segment
        is marked lost until two ACKs show whether the timeout was spurious. False when a
        FIN is outstanding: the conventional go-back-N then resends it with the data."""
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        if seq_gt(self.snd_max, end_data):
            return False
        first = self.rexmt_shift == 1
        frto = first and self.config.frto and not self.in_recovery and \
            self.flight > self.smss
        if first:
            self._undo_arm()
            self.cc.on_rto(now, self.flight)
        else:
            self.undo_retrans = None
            self.cc.cwnd = self.smss
        self.in_recovery = True
        self.rto_recovery = True
        self.recover = self.snd_max
        self.high_rxt = self.snd_una
        self.rxt_log = []
        self.dupacks = 0
        self.rescue_rxt = None
        if frto:
            self.t_rack = None    # the log stays: if the timeout was spurious, RACK goes on
        else:
            self._rack_reset()
        self.snd_nxt = self.snd_max
        # RFC 6298 5.4: the earliest unacknowledged segment goes now, whatever the pipe.
        self._retransmit_una(now)
        self.high_rxt = seq_add(self.snd_una, min(self.smss, self.flight))
        if frto:
            # RFC 5682 2.1: retransmit the first unacknowledged segment only.
            self.frto = 1
            self.rack_lost_to = seq_add(self.snd_una, min(self.smss, self.flight))
        else:
            self.frto = 0
            self.rack_lost_to = self.snd_max
        return True

    def _frto_ack(self, acked: int, now: Instant) -> None:
        """RFC 5682 2.2-2.3 (SACK variant 3): the first ACK after the timeout's resend must
        advance SND.UNA (not to RecoveryPoint) and two new segments go out; if the next ACK
        advances SND.UNA again, the timeout was spurious: undo it. A duplicate ACK at either
        step, or no new data to send, means a real loss: every unSACKed segment is lost."""
        if not self.in_recovery:
            self.frto = 0
            return
        if self.frto == 1:
            end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
            usable = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_max)
            if acked > 0 and seq_gt(end_data, self.snd_max) and usable > 0:
                self.frto = 2
                self.cc.cwnd = self._pipe() + 2 * self.smss
                return
            self._frto_genuine()
            return
        if acked > 0:
            # 2.3b: the network only delayed the ACKs - nothing was lost.
            self.layer.stats.spurious_rto += 1
            self.frto = 0
            self.in_recovery = self.rto_recovery = False
            self.rack_lost_to = None
            if self.undo_retrans is not None:
                self.cc.cwnd = max(self.cc.cwnd, self.undo_cwnd)
                self.cc.ssthresh = max(self.cc.ssthresh, self.undo_ssthresh)
                self.undo_retrans = None
            return
        self._frto_genuine()

    def _frto_genuine(self) -> None:
        """A real loss: recovery after the timeout as without F-RTO - every unSACKed
        segment is lost and goes again in slow start (RFC 5682 2.2a/2.3a: cwnd at most
        3 * SMSS)."""
        self.frto = 0
        self._rack_reset()
        self.rack_lost_to = self.snd_max
        self.cc.cwnd = min(self.cc.cwnd, 3 * self.smss)
