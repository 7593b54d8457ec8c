"""Congestion control: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438).

The controller owns only ``cwnd`` and ``ssthresh`` (bytes) and how they move; *when* an ACK
counts, when loss is declared and what is retransmitted belongs to the connection (fast
retransmit, NewReno partial ACKs, RFC 6675 pipe). Interface::

    on_ack(acked, now, srtt)      new data acknowledged outside recovery: grow
    on_congestion(now, flight)    entering loss recovery (3 dupacks / SACK loss): shrink
    on_rto(now, flight)           the retransmission timer expired
    after_idle(now, rto)          RFC 5681 4.1 restart window after an idle period
"""

from __future__ import annotations

from ..time import Instant, MICROS_PER_SECOND

INFINITE_SSTHRESH = 1 << 30


def initial_window(smss: int) -> int:
    """RFC 5681 3.1, equation (1): IW = min(4*SMSS, max(2*SMSS, 4380 bytes))."""
    return min(4 * smss, max(2 * smss, 4380))


class NewReno:
    __slots__ = ("smss", "cwnd", "ssthresh", "_acc")
    name = "newreno"

    def __init__(self, smss: int):
        self.smss = smss
        self.cwnd = initial_window(smss)
        # RFC 5681 3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
        self.ssthresh = INFINITE_SSTHRESH
        self._acc = 0  # bytes acked toward the next congestion-avoidance increase

    def set_smss(self, smss: int) -> None:
        self.smss = smss
        self.cwnd = initial_window(smss)

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def on_ack(self, acked: int, now: Instant, srtt: int | None) -> None:
        if self.cwnd < self.ssthresh:
            # RFC 5681 3.1 (2): cwnd += min(N, SMSS) per ACK during slow start.
            self.cwnd += min(acked, self.smss)
        else:
            self._avoid(acked, now, srtt)

    def _avoid(self, acked: int, now: Instant, srtt: int | None) -> None:
        # RFC 5681 3.1: one SMSS per RTT, counted in bytes (RFC 3465 appropriate byte
        # counting): increase by SMSS once a full cwnd of data has been acknowledged.
        self._acc += acked
        if self._acc >= self.cwnd:
            self._acc -= self.cwnd
            self.cwnd += self.smss

    def on_congestion(self, now: Instant, flight: int) -> None:
        # RFC 5681 (4): ssthresh = max(FlightSize / 2, 2*SMSS); RFC 6582 3.2 step 2.
        self.ssthresh = max(flight // 2, 2 * self.smss)
        self.cwnd = self.ssthresh
        self._acc = 0

    def on_rto(self, now: Instant, flight: int) -> None:
        # RFC 5681 (4) and 3.1: cwnd = LW = 1 SMSS after a retransmission timeout.
        self.ssthresh = max(flight // 2, 2 * self.smss)
        self.cwnd = self.smss
        self._acc = 0

    def after_idle(self, now: Instant) -> None:
        # RFC 5681 4.1: after an idle period longer than RTO, cwnd = min(RW, cwnd), RW = IW.
        self.cwnd = min(self.cwnd, initial_window(self.smss))


class Cubic(NewReno):
    """RFC 9438, in bytes. W values are kept in segments as the RFC writes them."""

    __slots__ = ("w_max", "_w_last_max", "_k", "_epoch", "_w_est", "_cwnd_epoch")
    name = "cubic"
    C = 0.4              # RFC 9438 4.1: C SHOULD be 0.4
    BETA = 0.7           # RFC 9438 4.6: beta_cubic SHOULD be 0.7
    ALPHA = 3 * (1 - BETA) / (1 + BETA)   # RFC 9438 4.3 (the Reno-friendly slope)

    def __init__(self, smss: int):
        super().__init__(smss)
        self.w_max = 0.0           # segments
        self._w_last_max = 0.0
        self._k = 0.0
        self._epoch: Instant | None = None
        self._w_est = 0.0
        self._cwnd_epoch = 0.0

    def _avoid(self, acked: int, now: Instant, srtt: int | None) -> None:
        smss = self.smss
        cwnd_seg = self.cwnd / smss
        if self._epoch is None:
            # RFC 9438 4.2: a congestion-avoidance epoch starts now.
            self._epoch = now
            if self.w_max <= cwnd_seg:
                self._k = 0.0
                self.w_max = cwnd_seg
            else:
                self._k = ((self.w_max - cwnd_seg) / self.C) ** (1 / 3)
            self._w_est = cwnd_seg
        rtt = (srtt or 100_000) / MICROS_PER_SECOND
        t = (now - self._epoch) / MICROS_PER_SECOND
        # RFC 9438 4.3: W_est += alpha_cubic * segments_acked / cwnd
        self._w_est += self.ALPHA * (acked / smss) / cwnd_seg
        w_cubic = self.C * (t + rtt - self._k) ** 3 + self.w_max   # eq. (1) at t + RTT
        if w_cubic < self._w_est:
            # 4.3: Reno-friendly region: cwnd = W_est.
            target = self._w_est
        else:
            # 4.4/4.5: concave/convex: target clamped to [cwnd, 1.5 cwnd]; each ACK
            # moves cwnd by (target - cwnd) / cwnd segments per acked segment.
            target = min(max(w_cubic, cwnd_seg), 1.5 * cwnd_seg)
        inc = (target - cwnd_seg) / cwnd_seg * (acked / smss) * smss
        self._acc += inc
        if self._acc >= 1:
            whole = int(self._acc)
            self.cwnd += whole
            self._acc -= whole

    def _reduce(self) -> None:
        cwnd_seg = self.cwnd / self.smss
        # RFC 9438 4.7 fast convergence.
        if cwnd_seg < self._w_last_max:
            self._w_last_max = cwnd_seg
            self.w_max = cwnd_seg * (1 + self.BETA) / 2
        else:
            self._w_last_max = cwnd_seg
            self.w_max = cwnd_seg
        self._epoch = None
        self._acc = 0

    def on_congestion(self, now: Instant, flight: int) -> None:
        # RFC 9438 4.6: ssthresh = cwnd * beta_cubic (flight-size based, as 4.6 allows),
        # never below 2 segments.
        self._reduce()
        self.ssthresh = max(int(flight * self.BETA), 2 * self.smss)
        self.cwnd = self.ssthresh

    def on_rto(self, now: Instant, flight: int) -> None:
        # RFC 9438 4.8: on RTO as RFC 5681, with CUBIC's reduction of ssthresh.
        self._reduce()
        self.ssthresh = max(int(flight * self.BETA), 2 * self.smss)
        self.cwnd = self.smss

    def after_idle(self, now: Instant) -> None:
        super().after_idle(now)
        self._epoch = None


ALGORITHMS = {"newreno": NewReno, "reno": NewReno, "cubic": Cubic}


def make(name: str, smss: int) -> NewReno:
    return ALGORITHMS.get(name.lower(), NewReno)(smss)
