"""SEGMENT ARRIVES (RFC 9293 3.10.7): the input steps of a connection, in the RFC's order.

``segment_arrived`` is the entry point for every state but LISTEN and CLOSED (the layer
handles those). SYN-SENT has its own steps (3.10.7.3); the synchronized states follow
3.10.7.4 "first, check sequence number" ... "eighth, check the FIN bit", with RFC 7323's
PAWS check in front and RFC 5961's challenge ACKs in place of the old RST/SYN handling.
The fifth step, the ACK field, is ``recovery.py``'s; the seventh, the text, ends here in the
receive buffer (in order, or in place past a hole) with receive-buffer autosizing.

A mixin of ``Connection``: the methods take the connection as ``self`` (no delegation
object on the per-segment path).
"""

from __future__ import annotations

import errno as _errno

from ..time import Instant
from .seq import _HALF, MASK, MOD, seq_add, seq_gt, seq_le
from .state import (
    ACK, CLOSED, CLOSE_WAIT, CLOSING, ESTABLISHED, FIN, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, RST,
    SYN, SYN_RECEIVED, SYN_SENT, TIME_WAIT, Segment,
)

OOW_ACK_INTERVAL = 500_000        # Linux net.ipv4.tcp_invalid_ratelimit (500 ms)
TS_24_DAYS_MS = 24 * 86400 * 1000  # RFC 7323 5.5: TS.Recent is invalid after 24 days idle
AUTOSIZE_MIN_INTERVAL = 1000      # µs: shortest receive-autosizing measurement


class InputMixin:
    __slots__ = ()

    def segment_arrived(self, seg: Segment, now: Instant) -> None:
        """SEGMENT ARRIVES for every state but LISTEN and CLOSED (RFC 9293 3.10.7.3-4)."""
        if self.state == SYN_SENT:
            self._input_syn_sent(seg, now)
        else:
            self._input_synchronized(seg, now)
        pending = self.layer.pending
        if pending is not None and not self.ooo.starts:
            # Output once, at the end of the input batch. While there is a hole every
            # segment is answered at once (RFC 5681 4.2: duplicate ACKs, SACK news).
            pending[self] = None
            return
        if self.state != CLOSED:
            self._output(now)
        self.layer.touch(self)

    def _input_syn_sent(self, seg: Segment, now: Instant) -> None:
        f = seg.flags
        # first, check the ACK bit
        if f & ACK and (seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max)):
            # "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is
            # set, if so drop the segment and return) <SEQ=SEG.ACK><CTL=RST>".
            if not f & RST:
                self._send_rst(seg.ack, now, with_ack=False)
            return
        # second, check the RST bit
        if f & RST:
            # RFC 5961 3.2 / RFC 9293: a RST is only believed if it acknowledges our SYN.
            if f & ACK:
                self.layer.stats.conndrops += 1
                self.error = _errno.ECONNREFUSED
                self._set_state(CLOSED, now)
            return
        # fourth, check the SYN bit
        if not f & SYN:
            return  # fifth: "if neither of the SYN or RST bits is set, drop the segment"
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        # Our SYN offered min(buffer, 65535), unscaled (RFC 7323 2.2).
        self.rcv_adv = seq_add(self.rcv_nxt, min(self.rcv_buf.free, 0xFFFF))
        self._take_syn_options(seg, now)
        self.last_rcv = now
        if f & ACK:
            # Our SYN is acknowledged: ESTABLISHED. RFC 9293: SND.WND <- SEG.WND (unscaled
            # in a SYN), SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK.
            self._ack_advances(seg.ack, now, seg)
            self.snd_wnd = seg.wnd
            self.max_sndwnd = max(self.max_sndwnd, seg.wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            self._set_state(ESTABLISHED, now)
            self.layer.stats.connects += 1
            self._arm_keep(now)
            self.ack_now = True
            # "If there are other controls or text in the segment then continue processing
            # at the sixth step below where the URG bit is checked".
            if seg.payload or f & FIN:
                rest = Segment(seq_add(seg.seq, 1), seg.ack, f & ~SYN, seg.wnd, seg.opts,
                               seg.payload)
                self._trim_to_window(rest)
                self._process_text(rest, now)
        else:
            # Simultaneous open (RFC 9293 3.5 figure 8, MUST-10): SYN-RECEIVED and a SYN,ACK.
            self.snd_wnd = seg.wnd
            self.max_sndwnd = seg.wnd
            self.snd_wl1 = seg.seq
            self.snd_nxt = self.iss      # the SYN-ACK reuses our ISS
            self.syn_queued = True
            self._set_state(SYN_RECEIVED, now)

    def _input_synchronized(self, seg: Segment, now: Instant) -> None:
        f = seg.flags
        stats = self.layer.stats
        st = self.state
        ts = seg.opts.timestamp if self.ts_ok else None

        if self.ts_ok and seg.opts.timestamp is None and not f & RST:
            # RFC 7323 3.2: "If a non-<RST> segment is received without a TSopt, a TCP
            # SHOULD silently drop the segment."
            stats.rcvnots += 1
            return

        # The sequence comparisons on this path are written out, not called: they are
        # RFC 9293 3.4's modular ones, exactly seq.py's (``(a - b) & MASK`` is the
        # unsigned distance; a < b iff it is >= 2**31), here run on every segment.
        # RFC 7323 5.3 R1: PAWS, before the sequence number check.
        if ts is not None and not f & RST and ((ts[0] - self.ts_recent) & MASK) >= _HALF:
            if (now // 1000 - self.ts_recent_age) < TS_24_DAYS_MS:
                stats.pawsdrop += 1
                self._ack_and_drop(now)
                return
            self.ts_recent = ts[0]  # 5.5: an idle connection's TS.Recent is stale

        if st == SYN_RECEIVED and f & SYN and not f & (ACK | RST) and seg.seq == self.irs:
            # The peer repeats its SYN: our SYN-ACK was lost. Repeat it (what BSD's
            # syncache does) rather than treating the old SYN as out of window.
            self.snd_nxt = self.iss
            self.syn_queued = True
            return

        # first, check sequence number (RFC 9293 3.10.7.4 table). RCV.WND is what we
        # advertised or, if more, the room we really have (BSD tcp_input: a window held
        # back for SWS avoidance still takes the data it has room for).
        rcv_nxt = self.rcv_nxt
        # _accept_window() and seg.seg_len, written out (every segment asks).
        d = (self.rcv_adv - rcv_nxt) & MASK
        rbuf = self.rcv_buf
        wnd = rbuf.cap - rbuf.used
        if d < _HALF and wnd <= d:
            wnd = d
        seg_len = len(seg.payload) + (f & SYN and 1) + (f & FIN)
        if seg_len == 0:
            # seq_in(SEG.SEQ, RCV.NXT, RCV.NXT + RCV.WND): the distance from RCV.NXT < RCV.WND
            ok = seg.seq == rcv_nxt if wnd == 0 else ((seg.seq - rcv_nxt) & MASK) < wnd
        elif wnd == 0:
            ok = False
            if seg.seq == rcv_nxt and f & ACK and not f & (SYN | RST):
                # "special allowance should be made to accept valid ACKs, URGs, and RSTs":
                # a zero-window probe - process its ACK, keep none of its data.
                stats.rcvwinprobe += 1
                seg = Segment(seg.seq, seg.ack, f & ~FIN, seg.wnd, seg.opts, b"")
                self.ack_now = True
                ok = True
        else:
            # seq_in(SEG.SEQ, ...) or seq_in(SEG.SEQ + SEG.LEN - 1, ...), as above
            ok = ((seg.seq - rcv_nxt) & MASK) < wnd or \
                ((seg.seq + seg_len - 1 - rcv_nxt) & MASK) < wnd
        if not ok:
            if seg_len and seq_le(seq_add(seg.seq, seg_len), rcv_nxt):
                stats.rcvduppack += 1
                stats.rcvdupbyte += len(seg.payload)
                if seg.payload and self.sack_ok:
                    # RFC 2883 4: tell the sender it sent this twice (D-SACK).
                    self.dsack = (seg.seq, seq_add(seg.seq, len(seg.payload)))
            elif seg_len:
                stats.rcvpackafterwin += 1
                stats.rcvbyteafterwin += len(seg.payload)
            if not f & RST:
                if st == TIME_WAIT and f & FIN:
                    # A retransmitted FIN: ACK it and restart the 2 MSL timer.
                    self.t_2msl = now + 2 * self.config.msl
                if seg.payload or f & FIN or now - self.last_oow_ack >= OOW_ACK_INTERVAL:
                    # Out-of-window pure ACKs and SYNs get at most one answer per 500 ms
                    # (Linux tcp_invalid_ratelimit): two ends answering each other's
                    # unacceptable ACKs would otherwise loop for ever (an "ACK war").
                    if not seg.payload and not f & FIN:
                        self.last_oow_ack = now
                    self._ack_and_drop(now)
            return
        # (nothing above moved RCV.NXT or the buffer). A segment at RCV.NXT that fits the
        # window has nothing to trim: the in-order case, tested without the call.
        if seg.seq != rcv_nxt or len(seg.payload) > wnd:
            self._trim_to_window(seg, wnd)

        # RFC 7323 4.3 (2): remember TSval if the segment covers Last.ACK.sent.
        if ts is not None and ((ts[0] - self.ts_recent) & MASK) < _HALF and (
                (d := (seg.seq - self.last_ack_sent) & MASK) == 0 or d >= _HALF):
            self.ts_recent = ts[0]
            self.ts_recent_age = now // 1000

        # second, check the RST bit (RFC 5961 3.2).
        if f & RST:
            if seg.seq != rcv_nxt:
                # In the window but not exact: a challenge ACK, the peer must prove itself.
                self._challenge_ack(now)
                return
            if st == SYN_RECEIVED:
                # "If this connection was initiated with a passive OPEN, return to LISTEN"
                # (for us: forget the embryonic connection); if active, "connection
                # refused".
                self._drop(0 if self.listener is not None else _errno.ECONNREFUSED, now)
            elif st in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
                self._drop(_errno.ECONNRESET, now)
            else:  # CLOSING, LAST-ACK, TIME-WAIT
                self._set_state(CLOSED, now)
            return

        # fourth, check the SYN bit (RFC 5961 4.2; RFC 9293 3.10.7.4 fourth).
        if f & SYN:
            stats.badsyn += 1
            self._challenge_ack(now)
            return

        # fifth, check the ACK field.
        if not f & ACK:
            return  # "if the ACK bit is off, drop the segment and return"
        self.last_rcv = now
        self.keep_probes = 0
        ack = seg.ack
        if st == SYN_RECEIVED:
            if seq_gt(ack, self.snd_una) and seq_le(ack, self.snd_max):
                # RFC 9293: "enter ESTABLISHED state and continue processing with the
                # variables SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
                self.snd_wnd = seg.wnd << self.snd_wscale
                self.max_sndwnd = max(self.max_sndwnd, self.snd_wnd)
                self.snd_wl1, self.snd_wl2 = seg.seq, ack
                stats.connects += 1     # NetBSD: "established (including accepts)"
                self._set_state(ESTABLISHED, now)
            else:
                # "If the segment acknowledgment is not acceptable, form a reset segment
                # <SEQ=SEG.ACK><CTL=RST> and send it".
                self._send_rst(ack, now, with_ack=False)
                return
            st = self.state
            if self.fin_queued and st == ESTABLISHED:
                self._set_state(FIN_WAIT_1, now)
                st = self.state
        # RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.MAX.
        if 0 < ((ack - self.snd_max) & MASK) < _HALF:       # SEG.ACK > SND.MAX
            stats.rcvacktoomuch += 1
            self._challenge_ack(now)
            return
        if ((ack - self.snd_una + self.max_sndwnd) & MASK) >= _HALF:  # < SND.UNA - MAX.SND.WND
            self._challenge_ack(now)
            return
        self._process_ack(seg, now)
        if self.state == CLOSED:
            return
        st = self.state
        # seq_gt(SND.MAX, end of data), written out: SND.MAX is past it by the FIN's one
        fin_acked = self.fin_queued and self.snd_una == self.snd_max and \
            0 < ((self.snd_max - self.snd_buf_seq - self.snd_buf.used) & MASK) < _HALF
        if st == FIN_WAIT_1 and fin_acked:
            self._set_state(FIN_WAIT_2, now)
        elif st == CLOSING and fin_acked:
            self._set_state(TIME_WAIT, now)
        elif st == LAST_ACK and fin_acked:
            self._set_state(CLOSED, now)
            return
        elif st == TIME_WAIT:
            # "The only thing that can arrive in this state is a retransmission of the
            # remote FIN. Acknowledge it, and restart the 2 MSL timeout."
            if f & FIN:
                self.ack_now = True
                self.t_2msl = now + 2 * self.config.msl
            return

        # sixth, URG: we implement no urgent mode (RFC 6093: treat as ordinary data).
        # seventh, process the segment text; eighth, the FIN bit.
        if seg.payload or f & FIN:
            self._process_text(seg, now)

    def _trim_to_window(self, seg: Segment, wnd: int | None = None) -> None:
        """Cut what lies before RCV.NXT or past the window (RFC 9293 3.10.7.4 first)."""
        d = (self.rcv_nxt - seg.seq) & MASK       # seq_sub, inline (every segment)
        if 0 < d < _HALF:
            if seg.flags & SYN:
                seg.flags &= ~SYN
                seg.seq = seq_add(seg.seq, 1)
                d -= 1
            if d > 0:
                if self.sack_ok and seg.payload:
                    # RFC 2883 4: report the part that arrived twice.
                    self.dsack = (seg.seq, seq_add(seg.seq, min(d, len(seg.payload))))
                if d >= len(seg.payload) and not (seg.flags & FIN and d == len(seg.payload)):
                    self.layer.stats.rcvduppack += 1
                    self.layer.stats.rcvdupbyte += len(seg.payload)
                    seg.flags &= ~FIN
                else:
                    self.layer.stats.rcvpartduppack += 1
                    self.layer.stats.rcvpartdupbyte += d
                seg.payload = seg.payload[d:]
                seg.seq = seq_add(seg.seq, d)
        if wnd is None:
            wnd = self._accept_window()
        room = (self.rcv_nxt + wnd - seg.seq) & MASK
        if room >= _HALF:
            room -= MOD
        if len(seg.payload) > room:
            cut = len(seg.payload) - max(room, 0)
            self.layer.stats.rcvpackafterwin += 1
            self.layer.stats.rcvbyteafterwin += cut
            seg.payload = seg.payload[:max(room, 0)]
            seg.flags &= ~FIN

    def _ack_and_drop(self, now: Instant) -> None:
        self.ack_now = True
        self._output(now)

    def _challenge_ack(self, now: Instant) -> None:
        """RFC 5961 3.2/4.2/5.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, rate limited (7)."""
        if self.layer.challenge_ack_allowed(now):
            self.layer.stats.challenge_ack += 1
            self.ack_now = True
            self._output(now)
        else:
            self.layer.stats.challenge_ack_limited += 1

    def _process_text(self, seg: Segment, now: Instant) -> None:
        stats = self.layer.stats
        payload = seg.payload
        st = self.state
        if payload and not st.can_receive_data:
            payload = b""  # CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "ignore the text"
        if payload and self.orphaned:
            # RFC 9293 3.10.7.4 / RFC 1122 4.2.2.13: data for a closed socket cannot be
            # delivered: reset the connection (what Linux and BSD do).
            stats.rcvafterclose += 1
            self._send_rst(self.snd_nxt, now)
            self._drop(_errno.ECONNRESET, now)
            return
        off = (seg.seq - self.rcv_nxt) & MASK      # seq_sub, inline
        if off >= _HALF:
            off -= MOD
        n = len(payload)
        rbuf = self.rcv_buf
        room = rbuf.cap - rbuf.used
        fin = bool(seg.flags & FIN)
        if off + n > room:
            n = max(0, room - off)
            payload = payload[:n]
            fin = False
        if n:
            if off == 0:
                self.rcv_buf.write(payload)
                stats.rcvpack += 1
                stats.rcvbyte += n
                if n > self.smss:
                    stats.rcvgso += 1
                advance = n
                if self.ooo.starts:
                    self.ooo.shift(n)
                    extra = self.ooo.take_front()
                    if extra:
                        self.rcv_buf.commit(extra)
                        advance += extra
                        # RFC 5681 4.2: an ACK SHOULD be sent at once when a segment
                        # fills in all or part of a gap.
                        self.ack_now = True
                self.rcv_nxt = (self.rcv_nxt + advance) & MASK      # seq_add, inline
                if self.rcv_shut:
                    # shutdown(SHUT_RD): acknowledge and discard (BSD sorflush).
                    self.rcv_buf.consume(len(self.rcv_buf))
                if self.sack_recent:   # (usually empty: no list built per segment)
                    self.sack_recent = [s for s in self.sack_recent if seq_gt(s, self.rcv_nxt)]
                self.unacked_bytes += n
                if self.rcv_auto:
                    self._autosize_rcv(n, seg, now)
                # RFC 1122 4.2.3.2 / RFC 5681 4.2: ACK at least every second full-sized
                # segment; otherwise delay up to delack_time (< 500 ms).
                if not self.config.delack or self.unacked_bytes >= 2 * self._rcv_mss():
                    self.ack_now = True
                elif self.t_delack is None:
                    self.t_delack = now + self.config.delack_time
                self.layer.wake(self)
            else:
                # Out of order: keep it in place if a hole can be tracked (bounded memory),
                # and ACK at once so the sender sees the duplicate (RFC 5681 4.2 / 3.2).
                if self.sack_ok and any(s <= off and off + n <= e for s, e in self.ooo.ranges()):
                    # Out of order and already held: a D-SACK inside its SACK block.
                    self.dsack = (seg.seq, seq_add(seg.seq, n))
                if self.ooo.add(off, off + n):
                    self.rcv_buf.write_at(off, payload)
                    stats.rcvoopack += 1
                    stats.rcvoobyte += n
                    self.sack_recent = [seg.seq] + [s for s in self.sack_recent if s != seg.seq][:3]
                else:
                    stats.rcvoodrop += 1
                    fin = False
                self.ack_now = True
        if fin:
            self.fin_seq = seq_add(seg.seq, n)
        if self.fin_seq is not None and self.fin_seq == self.rcv_nxt and not self.peer_fin:
            self._fin_arrived(now)

    def _autosize_rcv(self, n: int, seg: Segment, now: Instant) -> None:
        """Receive buffer autosizing (NetBSD tcp_input, after FreeBSD): count the bytes
        that arrive in one round trip; when the peer filled more than 7/8 of the buffer
        in it, the buffer is what holds the transfer back, so it grows - doubling, as
        FreeBSD and Linux grow it, by at least recvbuf_inc - up to recvbuf_max.

        A pure receiver has no RTT samples of its own; the echoed timestamp gives one
        (Linux tcp_rcv_rtt_measure_ts), at millisecond resolution, so 1 ms is the floor.
        """
        ts = seg.opts.timestamp
        if ts is not None and ts[1]:
            sample = ((self.ts_now(now) - ts[1]) & MASK) * 1000
            if sample < 60_000_000:
                self.rcv_rtt = sample
        if not self.rfbuf_ts:
            self.rfbuf_ts, self.rfbuf_cnt = now, n
            return
        self.rfbuf_cnt += n
        if now - self.rfbuf_ts < max(self.rtt.srtt or 0, self.rcv_rtt, AUTOSIZE_MIN_INTERVAL):
            return
        cap = self.rcv_buf.capacity
        top = self.config.recvbuf_max
        if self.rfbuf_cnt > cap // 8 * 7 and cap < top:
            self.rcv_buf.grow(min(max(cap + self.config.recvbuf_inc, 2 * cap), top))
            self.layer.stats.rcvbufauto += 1
            self.ack_now = True       # tell the sender about the room at once
        self.rfbuf_ts, self.rfbuf_cnt = now, 0

    def _fin_arrived(self, now: Instant) -> None:
        """Eighth, check the FIN bit (RFC 9293 3.10.7.4)."""
        self.peer_fin = True
        self.rcv_nxt = (self.rcv_nxt + 1) & MASK
        st = self.state
        if st == ESTABLISHED and self.config.delack and not self.ack_now and self.t_delack is None:
            # NetBSD acknowledges a FIN through TCP_SETUP_ACK, as it does data: at once
            # when an ACK is already being delayed, else delayed itself - so the FIN of a
            # peer that sent nothing since our last ACK waits for what our user does
            # next (typically close, whose FIN then carries it: one segment less), at
            # most the delayed-ACK time. The FIN counts as an unacknowledged byte, so the
            # timer sends the ACK if nothing else does.
            self.unacked_bytes += 1
            self.t_delack = now + self.config.delack_time
        else:
            self.ack_now = True
        if st in (SYN_RECEIVED, ESTABLISHED):
            self._set_state(CLOSE_WAIT, now)
        elif st == FIN_WAIT_1:
            fin_acked = self.snd_una == self.snd_max and self.fin_queued and seq_gt(
                self.snd_max, seq_add(self.snd_buf_seq, len(self.snd_buf)))
            # "If our FIN has been ACKed (perhaps in this segment), then enter TIME-WAIT
            # ... otherwise enter the CLOSING state" (simultaneous close, figure 13).
            self._set_state(TIME_WAIT if fin_acked else CLOSING, now)
        elif st == FIN_WAIT_2:
            self._set_state(TIME_WAIT, now)
        else:
            self.layer.wake(self)     # (a state change above has woken it already)
