"""What IGMP (RFC 3376) and MLD (RFC 3810) listeners share: reports waiting to be sent.

Both keep one pending report per (interface, group) - or per interface for the answer to
a general query (group None) - with a deadline, and send an unsolicited report
[Robustness Variable] times, a random part of the unsolicited report interval apart
(RFC 3376 5.1, RFC 3810 6.1). A query's answer replaces a pending report only when it
is due earlier (RFC 3376 5.2, RFC 3810 6.2). Timers are data; ``now`` is passed in.
"""

import attrs

from ..iface.interface import Interface
from ..time import Instant


@attrs.define(eq=False)
class Pending:
    iface: Interface
    group: bytes | None          # None: the answer to a general query
    kind: int                    # the record type, or a v1/v2 message type
    left: int                    # transmissions still to make
    deadline: Instant
    sources: tuple = ()


class ReportTimers:
    """The pending reports of a group membership protocol; a subclass says who speaks
    it (``_speaks``), how a report is sent (``_send``) and how far apart its
    retransmissions go (``_span``). Every change to ``pending`` outside ``poll`` tells
    ``stack.timers_changed`` (Stack.poll_at caches the earliest deadline)."""

    def __init__(self, stack):
        self.stack = stack
        self.pending: dict[tuple, Pending] = {}

    def _speaks(self, iface: Interface) -> bool:
        raise NotImplementedError

    def _send(self, p: Pending, now: Instant) -> None:
        raise NotImplementedError

    def _span(self, p: Pending) -> int:
        raise NotImplementedError

    def _random(self, span: int) -> int:
        return int(self.stack.rng.random() * span) if span > 0 else 0

    def _schedule(self, iface, group, kind, when: Instant, sources=()) -> None:
        key = (iface.index, group)
        p = self.pending.get(key)
        if p is not None and p.deadline <= when:
            return                             # an earlier answer is due already
        self.pending[key] = Pending(iface, group, kind, 1, when, sources)
        self.stack.timers_changed()

    def interface_gone(self, iface: Interface) -> None:
        self.pending = {k: p for k, p in self.pending.items() if p.iface is not iface}
        self.stack.timers_changed()

    def poll(self, now: Instant) -> None:
        for key, p in [(k, p) for k, p in self.pending.items() if p.deadline <= now]:
            if not self._speaks(p.iface):
                del self.pending[key]
                continue
            self._send(p, now)
            p.left -= 1
            if p.left <= 0:
                del self.pending[key]
            else:
                p.deadline = now + max(1, self._random(self._span(p)))
        # (Stack.poll invalidates its deadline cache after every layer's poll.)

    def poll_at(self) -> Instant | None:
        if not self.pending:         # the usual case, asked after every request
            return None
        return min(p.deadline for p in self.pending.values())
