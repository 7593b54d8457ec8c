"""Output: the one place that decides what a connection transmits (BSD's ``tcp_output``).

``_output(now)`` ends every entry point. In order: a SYN or SYN-ACK when one is due; in
the states that carry no data, an owed ACK; during SACK recovery RFC 6675's pipe loop
(step C: NextSeg rules 1-4); otherwise new or go-back-N data from SND.NXT within
min(SND.WND, cwnd) with limited transmit (RFC 3042), sender SWS avoidance and Nagle
(RFC 9293 3.8.6.2.1, RFC 896), zero-window handling (3.8.6.1), super-segments for TSO and
send-buffer autosizing; then a bare ACK or window update if one is still owed. Segments are
built here (window field with receiver SWS avoidance, RFC 7323 options, SACK blocks) and
leave through ``layer.emit``.

A mixin of ``Connection``.
"""

from __future__ import annotations

from ..time import Instant
from ..wire.tcp import build_segment, encode_options, encode_timestamp
from .seq import _HALF, MASK, MOD, seq_add, seq_gt, seq_le, seq_lt, seq_sub
from .state import (
    ACK, CLOSED, CLOSING, DUPTHRESH, FIN, FIN_WAIT_1, LAST_ACK, LISTEN, PSH, RST, SYN,
    SYN_RECEIVED, SYN_SENT, TIME_WAIT,
)

MAX_RXT_LOG = 256                 # retransmissions watched for loss (RACK, rack.py)


class OutputMixin:
    __slots__ = ()

    def _output(self, now: Instant) -> None:
        st = self.state
        if st in (CLOSED, LISTEN):
            return
        sent = False
        if self.syn_queued and self.snd_nxt == self.iss:
            self.syn_queued = False
            flags = SYN if st == SYN_SENT else SYN | ACK
            if seq_lt(self.iss, self.snd_max):
                self.layer.stats.sndrexmitpack += 1
                self.retransmits += 1
            else:
                self.layer.stats.sndctrl += 1
                if st == SYN_SENT:
                    self.layer.stats.connattempt += 1
                # Time the SYN (RFC 6298 2 allows it); Karn's rule clears this on a
                # retransmission.
                self.rtt_seq = self.iss
                self.rtt_time = now
                self.layer.stats.segstimed += 1
            self._emit(self.iss, flags, b"", now)
            self.snd_nxt = seq_add(self.iss, 1)
            if seq_gt(self.snd_nxt, self.snd_max):
                self.snd_max = self.snd_nxt
            if self.t_rexmt is None:
                self.t_rexmt = now + self.rtt.rto
            return
        if st in (SYN_SENT, SYN_RECEIVED, TIME_WAIT):
            if self.ack_now and st != SYN_SENT:
                self._emit(self._ack_seq(), ACK, b"", now)
            return
        if self.in_recovery and self.sack_ok:
            # Conservative SACK recovery sends everything, new data included; a FIN
            # waits for the end of recovery.
            sent = self._output_sack_recovery(now)
        else:
            sent = self._output_window(now)
        if not sent and self.ack_now:
            self.layer.stats.sndacks += 1
            self._emit(self._ack_seq(), ACK, b"", now)
        if self.t_rexmt is None and self.t_persist is None and self.snd_max != self.snd_una:
            # Invariant: data in flight always has a timer that will recover it.
            self.t_rexmt = now + self.rtt.rto

    def _ack_seq(self) -> int:
        """The sequence number of a bare ACK: SND.MAX, not SND.NXT, while retransmitting
        after a timeout (BSD tcp_output): SND.NXT then points into data the peer may
        already hold, the ACK would be out of its window, dropped with its news, and
        answered - by an ACK just as unacceptable. In persist state SND.MAX may lie
        beyond the window, so SND.NXT it is."""
        return self.snd_nxt if self.t_persist is not None else self.snd_max

    def _output_window(self, now: Instant) -> bool:
        """Send new (or go-back-N retransmitted) data from SND.NXT within min(wnd, cwnd)."""
        if not self.fin_queued and not self.snd_buf.used:
            return False        # nothing to send (most calls: an ACK came, or data to read)
        sent = False
        if self.snd_una == self.snd_max and self.last_data_snd and self.snd_buf.used and \
                now - self.last_data_snd > self.rtt.rto:
            # RFC 5681 4.1: restart from the restart window after an idle period > RTO.
            self.cc.after_idle(now)
        if self.snd_auto:
            self._autosize_snd()
        maxseg = self.tso if self.tso_gen == self.layer.route_gen else self._tso_payload()
        smss = self.smss
        if maxseg > smss:
            # A window is never one super-segment: a quarter of cwnd each, two segments
            # at least (Linux sizes TSO bursts to ~1 ms of sending, two segments at
            # least: tcp_tso_autosize), so one lost frame is not a lost flight that only
            # the RTO can recover.
            quarter = max(self.cc.cwnd // 4 // smss, 2) * smss
            if quarter < maxseg:
                maxseg = quarter
        if maxseg < smss:
            maxseg = smss
        st = self.state
        fin_allowed = self.fin_queued and st in (FIN_WAIT_1, CLOSING, LAST_ACK)
        for _ in range(10_000):
            # RFC 9293 3.4's modular arithmetic written out (seq_sub: the unsigned
            # distance, less 2**32 from 2**31 up): this loop runs on every output.
            snd_nxt = self.snd_nxt
            buffered = self.snd_buf.used
            end_data = (self.snd_buf_seq + buffered) & MASK
            off = (snd_nxt - self.snd_buf_seq) & MASK
            if off >= _HALF:
                break       # SND.NXT is still on our SYN: nothing but the SYN may go
            avail = buffered - off
            cwnd = self.cc.cwnd
            if not self.in_recovery and 0 < self.dupacks < DUPTHRESH:
                # RFC 3042 limited transmit (RFC 5681 3.2 SHOULD): each of the first two
                # duplicate ACKs lets one new segment out beyond cwnd.
                cwnd += self.dupacks * self.smss
            usable = (self.snd_una + min(self.snd_wnd, cwnd) - snd_nxt) & MASK
            if usable >= _HALF:
                usable -= MOD
            # seq_le(SND.NXT, end of data) and SND.NXT is not past the FIN already
            fin_pending = fin_allowed and ((d := (snd_nxt - end_data) & MASK) == 0 or d >= _HALF)
            if avail <= 0 and not (fin_pending and avail == 0):
                break
            if self.snd_wnd == 0 and avail > 0:
                # Zero window (RFC 9293 3.8.6.1): pull back what lies beyond it, stop the
                # retransmission timer and let the persist timer probe (BSD tcp_output).
                if seq_gt(self.snd_nxt, self.snd_una) and self.t_persist is None:
                    self.snd_nxt = self.snd_una
                    self.t_rexmt = None
                if self.t_persist is None and self.t_rexmt is None:
                    self._arm_persist(now)
                break
            n = max(0, min(avail, usable, maxseg))
            if n > smss and n < avail:
                n -= n % smss         # a super-segment is whole MSS pieces, but for the tail
            fin = fin_pending and n == avail
            if avail > 0 and n == 0:
                if self.t_rexmt is None and self.t_persist is None and self.snd_una == self.snd_max:
                    self._arm_persist(now)
                break
            if n < self.smss and n == avail and not fin:
                # Sender SWS avoidance (RFC 9293 3.8.6.2.1) and Nagle (RFC 896, RFC 1122
                # 4.2.3.4): a short segment only if it empties the buffer and either
                # nothing is in flight or TCP_NODELAY is set; or if it is at least half
                # the largest window the peer offered.
                idle = self.snd_una == self.snd_max
                retransmitting = seq_lt(self.snd_nxt, self.snd_max)
                if not (idle or self.nodelay or retransmitting or
                        (self.max_sndwnd and n >= self.max_sndwnd // 2)):
                    break
            elif n < self.smss and n < avail:
                # Window- or cwnd-limited short segment: only with half the max window.
                if not (self.max_sndwnd and n >= self.max_sndwnd // 2) and \
                        not seq_lt(self.snd_nxt, self.snd_max):
                    if self.t_rexmt is None and self.t_persist is None:
                        self._arm_persist(now)
                    break
            if n == 0 and not fin:
                break
            self._send_data(self.snd_nxt, n, fin, now)
            self.snd_nxt = (self.snd_nxt + n + (1 if fin else 0)) & MASK
            sent = True
            if fin:
                break
        return sent

    def _output_sack_recovery(self, now: Instant) -> bool:
        """RFC 6675 5 step (C): while cwnd - pipe >= 1 SMSS, send NextSeg: a lost
        octet (rule 1), else new data (rule 2), else an unSACKed octet (rule 3)."""
        sent = False
        for _ in range(64):
            if self.cc.cwnd - self._pipe() < self.smss:
                break
            nxt = self._next_seg()
            if nxt is None or nxt[2] == 3:
                end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
                avail = seq_sub(end_data, self.snd_nxt)
                usable = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
                if avail > 0 and usable >= min(avail, self.smss) and self.snd_nxt == self.snd_max:
                    n = min(avail, usable, self.smss)
                    self._send_data(self.snd_nxt, n, False, now)
                    self.snd_nxt = seq_add(self.snd_nxt, n)
                    sent = True
                    continue
                if nxt is None:
                    sent |= self._rescue_retransmission(now)
                    break
            seq, length, _rule = nxt
            self._send_data(seq, length, False, now)
            end = seq_add(seq, length)
            if seq_gt(end, self.high_rxt):
                self.high_rxt = end
            sent = True
        return sent

    def _rescue_retransmission(self, now: Instant) -> bool:
        """RFC 6675 4 NextSeg rule (4): once per recovery, resend the segment holding the
        highest outstanding unSACKed octet, so a lost tail does not wait for the RTO."""
        if self.rescue_rxt is not None and not seq_gt(self.snd_una, self.rescue_rxt):
            return False
        top = self.sacked[-1][1] if self.sacked else self.snd_una
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        last = self.snd_max if seq_le(self.snd_max, end_data) else end_data  # data only
        if not seq_gt(last, top):
            return False
        start = seq_add(last, -min(self.smss, seq_sub(last, top)))
        self._send_data(start, seq_sub(last, start), False, now)
        self.rescue_rxt = self.recover     # RescueRxt = RecoveryPoint; HighRxt untouched
        return True

    def _send_data(self, seq: int, length: int, fin: bool, now: Instant) -> None:
        """Transmit ``length`` bytes from the send buffer starting at ``seq`` (+ FIN)."""
        stats = self.layer.stats
        payload = self.snd_buf.peek(seq_sub(seq, self.snd_buf_seq), length) if length else b""
        flags = ACK | (FIN if fin else 0)
        # (seq_add, seq_lt and seq_gt on this path written out: every segment sent)
        if length and (seq + length) & MASK == (self.snd_buf_seq + self.snd_buf.used) & MASK:
            flags |= PSH   # BSD: push when this segment empties the send buffer
        rexmit = ((seq - self.snd_max) & MASK) >= _HALF
        if rexmit:
            stats.sndrexmitpack += 1
            stats.sndrexmitbyte += length
            self.retransmits += 1
            if self.rack_ok and length:
                # Every retransmission is watched by RACK (its delivery moves RACK.xmit_ts,
                # its loss is found by the same rule as an original's).
                log = self.rxt_log
                if len(log) >= MAX_RXT_LOG:
                    del log[0]
                log.append((seq, seq_add(seq, length), now))
                if self.undo_retrans is not None:
                    self.undo_retrans += 1
            elif self.in_recovery and self.sack_ok and length:
                log = self.rxt_log
                if len(log) >= MAX_RXT_LOG:
                    del log[0]
                log.append((seq, seq_add(seq, length), now))
            if self.rtt_seq is not None and seq_le(seq, self.rtt_seq):
                self.rtt_seq = None  # Karn's rule
        elif length:
            if self.rack_ok:
                self.tx_log.append((seq, seq_add(seq, length), now))   # RACK's send times
            stats.sndpack += 1
            stats.sndbyte += length
            if length > self.smss:
                stats.sndgso += 1
            if not self.ts_ok and self.rtt_seq is None:
                self.rtt_seq = seq
                self.rtt_time = now
                stats.segstimed += 1
        if length and self.tlp_high is None:
            self._arm_probe(now, seq_add(seq, length))
        self._emit(seq, flags, payload, now, self.smss if length > self.smss else 0)
        self.last_data_snd = now
        end = (seq + length + (1 if fin else 0)) & MASK
        if 0 < ((end - self.snd_max) & MASK) < _HALF:
            self.snd_max = end
        if self.t_rexmt is None and self.t_persist is None:
            self.t_rexmt = now + self.rtt.rto    # RFC 6298 5.1

    def _emit(self, seq: int, flags: int, payload, now: Instant, gso: int = 0) -> None:
        syn = bool(flags & SYN)
        if self.state != SYN_SENT or not syn:
            flags |= ACK
        opts = self._options(syn, now)
        rbuf = self.rcv_buf
        win = self._window_field() if not syn else min(rbuf.cap - rbuf.used, 0xFFFF)
        if syn:
            edge = seq_add(self.rcv_nxt, win)
            if self.state != SYN_SENT and seq_gt(edge, self.rcv_adv):
                self.rcv_adv = edge
        ack = self.rcv_nxt if flags & ACK else 0
        partial = self.layer.csum_offload
        seg = build_segment(self.local_ip, self.remote_ip, self.local_port, self.remote_port,
                            seq, ack, flags, win, opts, payload, partial=partial)
        if flags & ACK:
            self.last_ack_sent = ack
            self.ack_now = False
            self.unacked_bytes = 0
            self.t_delack = None
        self.last_snd = now
        self.layer.emit(self, seg, now, gso if partial else None)

    def _send_rst(self, seq: int, now: Instant, with_ack: bool = True) -> None:
        flags = RST | (ACK if with_ack else 0)
        ack = self.rcv_nxt if with_ack else 0
        seg = build_segment(self.local_ip, self.remote_ip, self.local_port, self.remote_port,
                            seq, ack, flags, 0)
        self.layer.stats.sndrst += 1
        self.layer.emit(self, seg, now)

    def _options(self, syn: bool, now: Instant) -> bytes:
        ts = None
        if self.ts_ok or (syn and self.req_ts and self.state == SYN_SENT):
            # (ts_now(now), written out: every segment sent asks)
            ts = ((now // 1000 + self.ts_offset) & MASK, self.ts_recent)
        if syn:
            active = self.state == SYN_SENT
            ws = self.rcv_wscale if (self.ws_ok or (active and self.req_ws)) else None
            sack = self.sack_ok or (active and self.req_sack)
            if active and not self.ts_ok and ts is not None:
                ts = (ts[0], 0)
            return encode_options(self.our_mss, ws, sack, ts)
        blocks = ()
        if self.sack_ok and (self.ooo.starts or self.dsack is not None):
            blocks = self._sack_blocks()
            if blocks:
                self.layer.stats.sackblocks_sent += 1
        if not blocks:
            return b"" if ts is None else encode_timestamp(*ts)
        return encode_options(timestamp=ts, sack_blocks=blocks)

    def _advertisable_window(self) -> int:
        buf = self.rcv_buf
        return min(buf.cap - buf.used, 0xFFFF << self.rcv_wscale)

    def _window_field(self) -> int:
        """The window to send, never shrinking the right edge (RFC 9293 3.8.6.2.2 MUST-34 /
        RFC 7323 2.4) and not moving it by less than an SMSS (receiver SWS avoidance)."""
        shift = self.rcv_wscale
        # rcv_wnd, _advertisable_window and _rcv_mss written out: every segment sent.
        cur = (self.rcv_adv - self.rcv_nxt) & MASK
        if cur >= _HALF:
            cur = 0
        buf = self.rcv_buf
        win = min(buf.cap - buf.used, 0xFFFF << shift)
        if win < cur:
            win = cur
        elif win - cur < min(buf.cap // 2, max(self.our_mss - (12 if self.ts_ok else 0), 64)):
            win = cur
        field = win >> shift
        if field > 0xFFFF:
            field = 0xFFFF
        # seq_gt(edge, RCV.ADV), written out (RFC 9293 3.4): this runs for every segment sent
        edge = (self.rcv_nxt + (field << shift)) & MASK
        if 0 < ((edge - self.rcv_adv) & MASK) < _HALF:
            self.rcv_adv = edge
        return field

    def _autosize_snd(self) -> None:
        """Send buffer autosizing (NetBSD tcp_output): grow when the peer's window is
        most of the buffer, the buffer is nearly full and the windows would let all of
        its unsent data go - the buffer, not the network, is then the limit."""
        buf = self.snd_buf
        cap = buf.cap
        top = self.config.sendbuf_max
        queued = buf.used
        if cap < top and self.snd_wnd // 4 * 5 >= cap and queued >= cap // 8 * 7 and \
                min(self.snd_wnd, self.cc.cwnd) >= queued - self.flight:
            buf.grow(min(max(cap + self.config.sendbuf_inc, 2 * cap), top))
            self.layer.stats.sndbufauto += 1
            self.layer.wake(self)     # room for the writer

    def _tso_payload(self) -> int:
        """Bytes of payload one super-segment may carry on the current route: a whole
        number of SMSS under the IP packet limit, 0 where the route takes none."""
        layer = self.layer
        limit = layer.route_tso(self.remote_ip) if layer.csum_offload else 0
        self.tso_gen = layer.route_gen
        hdr = self.ip_header + 20 + (12 if self.ts_ok else 0)
        n = (limit - hdr) // self.smss * self.smss if limit else 0
        self.tso = n if n >= 2 * self.smss else 0
        return self.tso
