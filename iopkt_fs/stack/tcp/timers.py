"""A connection's timers, as data: deadlines in µs (or None) that the layer's heap files.

BSD's TCPT_REXMT, TCPT_PERSIST, TCPT_KEEP and TCPT_2MSL, plus the delayed-ACK timer and
RFC 8985's probe timeout (``t_tlp``) and reorder timer (``t_rack``, rack.py). ``poll_at`` is
their minimum; ``on_timer(now)`` runs the expired ones and ends in output. What each one does on expiry: retransmission timeout
(RFC 6298 5.4-5.7, RFC 5681 3.1, RFC 6582 4.1), tail loss probe (RFC 8985 7), persist
(RFC 9293 3.8.6.1, RFC 1122 4.2.2.17 and the 4.2.3.4 SWS override), keepalive and the
connection-establishment limit (RFC 1122 4.2.3.6, BSD tcp_keepinit), TIME-WAIT (3.10.8).

A mixin of ``Connection``; the core never reads a clock, ``now`` comes in.
"""

from __future__ import annotations

import errno as _errno

from ..time import Instant, seconds
from .seq import seq_add, seq_gt, seq_le, seq_lt, seq_sub
from .state import ACK, CLOSED, ESTABLISHED, TIME_WAIT

PERSIST_MIN = seconds(5)          # BSD TCPTV_PERSMIN
PERSIST_MAX = seconds(60)         # BSD TCPTV_PERSMAX
SWS_OVERRIDE = seconds(1)         # RFC 1122 4.2.3.4: 0.1 - 1.0 s
PTO_MIN = 10_000                  # µs: the probe timeout's floor (Linux TCP_TIMEOUT_MIN)


class TimerMixin:
    # ``self.state >= ESTABLISHED`` is State.established (BSD TCPS_HAVEESTABLISHED) written
    # out: the property is a call, and these run for every segment sent or received.
    __slots__ = ()

    def poll_at(self) -> Instant | None:
        # (asked after every entry point, by layer.touch: no list, no min())
        best = None
        for t in (self.t_rexmt, self.t_persist, self.t_keep, self.t_2msl, self.t_delack,
                  self.t_tlp, self.t_rack):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def on_timer(self, now: Instant) -> None:
        if self.t_2msl is not None and now >= self.t_2msl:
            self.t_2msl = None
            # TIME-WAIT over (RFC 9293 3.10.8), or an orphaned FIN-WAIT-2 gave up.
            self._set_state(CLOSED, now)
            return
        if self.t_rexmt is not None and now >= self.t_rexmt:
            self.t_rexmt = None
            self._rexmt_timeout(now)
            if self.state == CLOSED:
                return
        if self.t_rack is not None and now >= self.t_rack:
            self.t_rack = None
            self._rack_timeout(now)          # RFC 8985 6.3, rack.py
        if self.t_tlp is not None and now >= self.t_tlp:
            self.t_tlp = None
            self._probe_timeout(now)
        if self.t_persist is not None and now >= self.t_persist:
            self.t_persist = None
            self._persist_timeout(now)
        if self.t_keep is not None and now >= self.t_keep:
            self.t_keep = None
            self._keep_timeout(now)
            if self.state == CLOSED:
                return
        if self.t_delack is not None and now >= self.t_delack:
            self.t_delack = None
            if self.unacked_bytes:
                self.layer.stats.delack += 1
                self.ack_now = True
        self._output(now)

    def _rexmt_timeout(self, now: Instant) -> None:
        """RFC 6298 5.4-5.6 plus RFC 5681 3.1 and RFC 6582 4.1 on timeout."""
        stats = self.layer.stats
        self.rexmt_shift += 1
        limit = self.config.syn_retries if self.state < ESTABLISHED else self.config.data_retries
        if self.rexmt_shift > limit:
            stats.timeoutdrop += 1
            if self.state.synchronized:
                self._send_rst(self.snd_nxt, now)
            self._drop(self.soft_error or _errno.ETIMEDOUT, now)
            return
        stats.rexmttimeo += 1
        self.t_tlp = None
        self.tlp_high = None
        self.rtt.back_off()                  # (5.5) RTO <- RTO * 2
        self.rtt_seq = None                  # Karn: no sample from retransmitted data
        self.rexmt_tsval = self.ts_now(now)  # ... nor from ACKs echoing older TSvals
        if self.snd_una == self.iss:
            # Our SYN is not acknowledged yet (SYN-SENT, SYN-RECEIVED, or a FIN-WAIT-1
            # reached from SYN-RECEIVED): the SYN goes again, data and FIN after it.
            self.snd_nxt = self.iss
            self.syn_queued = True
            return
        if self.rack_ok:
            if self._rto_recovery(now):      # recovery.py: SACK-based, F-RTO first
                return
            self._rack_reset()
            self.rto_recovery = False
            self.frto = 0
            self.undo_retrans = None
        if self.rexmt_shift == 1:
            self.cc.on_rto(now, self.flight)
        else:
            self.cc.cwnd = self.smss
        self.in_recovery = False
        self.rxt_log = []
        self.dupacks = 0
        self.recover = self.snd_max          # RFC 6582 4.1
        self.sacked = []                     # RFC 2018 8: forget SACKed bits after RTO
        self.high_rxt = self.snd_una
        self.snd_nxt = self.snd_una          # (5.4) retransmit from the earliest unacked

    def _arm_probe(self, now: Instant, end: int) -> None:
        """RFC 8985 7.2: PTO = 2 * SRTT (+ the worst-case delayed ACK when one segment is
        in flight), no later than the RTO; only with SACK and an RTT sample."""
        srtt = self.rtt.srtt
        if not self.sack_ok or srtt is None or self.state < ESTABLISHED or \
                self.t_persist is not None:
            self.t_tlp = None
            return
        pto = max(2 * srtt, PTO_MIN)
        if seq_sub(end, self.snd_una) <= self.smss:
            pto += self.config.delack_time
        deadline = now + pto
        if self.t_rexmt is not None and deadline >= self.t_rexmt:
            self.t_tlp = None
            return
        self.t_tlp = deadline

    def _probe_timeout(self, now: Instant) -> None:
        """RFC 8985 7.3: the PTO fired with data outstanding and no ACK since. Send one
        probe: new data if the windows allow, else the last segment sent again; then wait
        for the RTO, not another PTO. In SACK recovery (our extension) the probe is the
        oldest recovery retransmission still undelivered, which 6.2 cannot judge while
        nothing sent later is acknowledged."""
        if self.snd_una == self.snd_max or self.state < ESTABLISHED or \
                self.t_persist is not None:
            return
        stats = self.layer.stats
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        if self.in_recovery and (self.rxt_log or not self.rack_ok):
            if not self.rxt_log:
                return
            seq, end, _sent = self.rxt_log.pop(0)
            if seq_lt(seq, self.snd_una):
                seq = self.snd_una
            if not seq_lt(seq, end):
                return
            stats.tlp_probes += 1
            self._send_data(seq, seq_sub(end, seq), False, now)
        else:
            avail = seq_sub(end_data, self.snd_nxt)
            usable = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
            if avail > 0 and usable > 0 and self.snd_nxt == self.snd_max:
                n = min(avail, usable, self.smss)
                stats.tlp_probes += 1
                self._send_data(self.snd_nxt, n, False, now)
                self.snd_nxt = seq_add(self.snd_nxt, n)
            else:
                last = self.snd_max if seq_le(self.snd_max, end_data) else end_data
                if not seq_gt(last, self.snd_una):
                    return            # only a FIN is outstanding: the RTO resends it
                start = seq_add(last, -min(self.smss, seq_sub(last, self.snd_una)))
                stats.tlp_probes += 1
                self._send_data(start, seq_sub(last, start), False, now)
        self.tlp_high = self.snd_max
        self.t_tlp = None
        if self.t_rexmt is None:
            self.t_rexmt = now + self.rtt.rto

    def _arm_persist(self, now: Instant) -> None:
        if self.snd_wnd > 0:
            # The window is open but too small to use (sender SWS avoidance): RFC 1122
            # 4.2.3.4's override timeout, "in the range 0.1 - 1.0 seconds".
            self.t_persist = now + min(self.rtt.rto, SWS_OVERRIDE)
            return
        # A shut window: probe with BSD's backed-off persist interval (5 s .. 60 s).
        base = max(self.rtt.srtt or self.rtt.rto, self.config.rto_min)
        t = min(max(base << self.persist_shift, PERSIST_MIN), PERSIST_MAX)
        self.t_persist = now + t

    def _persist_timeout(self, now: Instant) -> None:
        """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: probe a zero window with one byte."""
        stats = self.layer.stats
        stats.persisttimeo += 1
        off = seq_sub(self.snd_nxt, self.snd_buf_seq)
        avail = len(self.snd_buf) - off
        usable = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
        if avail > 0 and usable > 0 and self.snd_una == self.snd_max:
            # RFC 1122 4.2.3.4: the sender's SWS "override timeout": a window too small
            # for a full segment is used after all once the timer runs out.
            n = min(avail, usable, self.smss)
            self._send_data(self.snd_nxt, n, False, now)
            self.snd_nxt = seq_add(self.snd_nxt, n)
            return
        if self.snd_wnd == 0 and avail > 0:
            stats.sndprobe += 1
            self._send_data(self.snd_nxt, 1, False, now)
            self.snd_nxt = seq_add(self.snd_nxt, 1)
            if seq_gt(self.snd_nxt, self.snd_max):
                self.snd_max = self.snd_nxt
        if self.persist_shift < 12:
            self.persist_shift += 1
        self._arm_persist(now)

    def _arm_keep(self, now: Instant) -> None:
        if self.keepalive or self.state < ESTABLISHED:
            # Before ESTABLISHED the keep timer is the connection-establishment limit (BSD
            # TCPTV_KEEP_INIT, 75 s); after, the keepalive idle time.
            self.t_keep = now + (self.config.keepidle if self.state >= ESTABLISHED else seconds(75))
        else:
            self.t_keep = None

    def set_keepalive(self, on: bool, now: Instant) -> None:
        self.keepalive = on
        if self.state >= ESTABLISHED and self.state != TIME_WAIT:
            self._arm_keep(now)
            self.layer.touch(self)

    def _keep_timeout(self, now: Instant) -> None:
        stats = self.layer.stats
        if self.state < ESTABLISHED:
            # Connection-establishment timer expired (BSD tcp_keepinit).
            stats.keeptimeo += 1
            self._drop(_errno.ETIMEDOUT, now)
            return
        if not self.keepalive or self.state == TIME_WAIT:
            return
        idle = now - self.last_rcv
        if idle < self.config.keepidle:
            self.t_keep = self.last_rcv + self.config.keepidle
            return
        stats.keeptimeo += 1
        if self.keep_probes >= self.config.keepcnt:
            stats.keepdrops += 1
            self._send_rst(self.snd_nxt, now)
            self._drop(_errno.ETIMEDOUT, now)
            return
        # RFC 1122 4.2.3.6: a probe is a segment with SEG.SEQ = SND.NXT - 1 and no data;
        # the peer answers with an ACK for the sequence it expects.
        stats.keepprobe += 1
        self.keep_probes += 1
        self._emit(seq_add(self.snd_una, -1), ACK, b"", now)
        self.t_keep = now + self.config.keepintvl
