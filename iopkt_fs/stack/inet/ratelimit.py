"""The ICMP error rate limit both ICMPs share (NetBSD icmp_ratelimit / icmp6_ratelimit):
at most ``limit()`` errors per one-second window; a negative limit means none."""

from ..time import Instant, seconds


class ErrorRate:
    __slots__ = ("_limit", "_window", "_sent")

    def __init__(self, limit):
        self._limit = limit          # a callable: the sysctl's current value
        self._window = -seconds(1)
        self._sent = 0

    def allow(self, now: Instant) -> bool:
        limit = self._limit()
        if limit < 0:
            return True
        if now - self._window >= seconds(1):
            self._window = now
            self._sent = 0
        self._sent += 1
        return self._sent <= limit
