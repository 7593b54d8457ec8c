"""The retransmission timer's estimator (RFC 6298).

All values are microseconds. ``min_rto`` defaults to RFC 6298 (2.4)'s one second but is a
parameter (Linux uses 200 ms); ``max_rto`` is the optional upper bound of (2.5), 60 s.
"""

from __future__ import annotations

from ..time import Duration, seconds

RTO_INITIAL = seconds(1)   # RFC 6298 (2.1): "set RTO <- 1 second"
RTO_MIN = seconds(1)       # RFC 6298 (2.4): "RTO SHOULD be rounded up to 1 second"
RTO_MAX = seconds(60)      # RFC 6298 (2.5): "a maximum value MAY be placed ... at least 60 s"
CLOCK_G = 1000             # the granularity G of (2.2)/(2.3): our timestamps tick in ms
ALPHA_SHIFT = 3            # alpha = 1/8 (RFC 6298 2.3)
BETA_SHIFT = 2             # beta = 1/4
K = 4


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "_rto", "min_rto", "max_rto", "backoff", "samples")

    def __init__(self, initial: Duration = RTO_INITIAL, min_rto: Duration = RTO_MIN,
                 max_rto: Duration = RTO_MAX):
        self.srtt: Duration | None = None
        self.rttvar: Duration = 0
        self._rto = initial
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.backoff = 0           # how many times the timer expired since the last sample
        self.samples = 0

    def sample(self, r: Duration) -> None:
        """Take one RTT measurement R (already filtered by Karn's rule by the caller)."""
        r = max(r, 1)
        if self.srtt is None:
            # (2.2) first measurement: SRTT <- R, RTTVAR <- R/2
            self.srtt = r
            self.rttvar = r // 2
        else:
            # (2.3) RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
            self.rttvar += (abs(self.srtt - r) - self.rttvar) >> BETA_SHIFT
            self.srtt += (r - self.srtt) >> ALPHA_SHIFT
        self._rto = self.srtt + max(CLOCK_G, K * self.rttvar)
        self.backoff = 0           # (5.7) a new sample ends the backed-off period
        self.samples += 1

    def reset(self, rto: Duration) -> None:
        """Forget the backoff and start again from ``rto`` (RFC 6298 5.7)."""
        self._rto = rto
        self.backoff = 0

    @property
    def rto(self) -> Duration:
        """The current RTO: the estimate, clamped to [min, max], times the backoff (5.5)."""
        base = min(max(self._rto, self.min_rto), self.max_rto)
        return min(base << self.backoff, self.max_rto)

    def back_off(self) -> None:
        """(5.5) The retransmission timer expired: double the RTO (bounded by max_rto)."""
        if (min(max(self._rto, self.min_rto), self.max_rto) << self.backoff) < self.max_rto:
            self.backoff += 1
