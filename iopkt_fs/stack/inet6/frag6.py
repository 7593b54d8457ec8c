"""IPv6 reassembly (RFC 8200 4.5) with RFC 5722's overlap rule, bounded.

Theory of operation
-------------------
Fragments are queued per (source, destination, identification) plus the arrival
interface (link-local addresses are only unique per link). The unfragmentable part (the
headers before the Fragment header) is taken from the offset-0 fragment (RFC 8200 4.5).
A queue lives ``FRAGTTL`` (60 s, RFC 8200 4.5; QNX's IPV6_FRAGTTL of 120 half-second
ticks); when it times out and its first fragment had arrived the owner sends Time
Exceeded code 1.

Overlaps (RFC 5722, folded into RFC 8200 4.5): a fragment overlapping another discards
the whole datagram, no ICMP, and the key is remembered until the queue would have timed
out, so every later fragment of it is dropped too. An exact duplicate may be dropped alone
(RFC 8200 4.5 note) and is. QNX 6.6 keeps reassembling instead ("we trust fragment that
came in earlier"): here the RFC wins, since only an attacker can see the difference.

Atomic fragments (offset 0, M clear; RFC 6946) never reach this module: the layer
processes them in isolation.

Bounds: ``net.inet6.ip6.maxfragpackets`` datagrams and ``maxfrags`` fragments in all
(QNX 200/200; -1 unlimited, 0 refuse all). A new datagram past either limit evicts the
oldest queue; a fragment that would pass ``maxfrags`` on its own queue is dropped
(``fragoverflow``).
"""

from typing import Callable

import attrs

from ..time import Instant, seconds
from .stats import Ip6Stat

FRAGTTL = seconds(60)
MAX_PACKET = 65535


@attrs.define(eq=False)
class FragQueue6:
    key: tuple
    deadline: Instant
    frags: list = attrs.Factory(list)     # [(start, end, bytes)] sorted by start
    total: int | None = None
    nbytes: int = 0
    first: object = None                  # (unfragmentable part, next header, iface, whole first packet)
    dead: bool = False                    # RFC 5722: overlapped, dropping the rest until timeout


@attrs.frozen
class Expired6:
    key: tuple
    first: object


def _noop() -> None:
    return None


class Reassembler6:
    def __init__(self, stats: Ip6Stat, max_packets: Callable[[], int], max_frags: Callable[[], int]):
        self.stats = stats
        self.max_packets = max_packets
        self.max_frags = max_frags
        self.queues: dict[tuple, FragQueue6] = {}
        self.nfrags = 0
        # Told when a queue (and its deadline) comes or goes: Stack.poll_at's cache.
        self.timers_changed = _noop

    def __len__(self) -> int:
        return sum(1 for q in self.queues.values() if not q.dead)

    def _free(self, q: FragQueue6) -> int:
        self.queues.pop(q.key, None)
        self.timers_changed()
        n = len(q.frags)
        self.nfrags -= n
        q.frags = []
        return n

    def _kill(self, q: FragQueue6) -> int:
        """RFC 5722: drop what is held, keep the key until the deadline."""
        n = len(q.frags)
        self.nfrags -= n
        q.frags = []
        q.dead = True
        q.first = None
        return n

    def add(self, key: tuple, first: object, offset: int, more: bool, data,
            now: Instant) -> tuple[object, bytes] | None:
        """Take one fragment; (``first`` of fragment 0, whole fragmentable part) when done.

        The caller has checked the RFC 8200 4.5 Parameter Problem cases (length not a
        multiple of 8 with M set, offset + length past 65535).
        """
        st = self.stats
        end = offset + len(data)
        q = self.queues.get(key)
        if q is not None and q.dead:
            st.fragdropped += 1
            return None
        limit_p, limit_f = self.max_packets(), self.max_frags()
        if q is None:
            if limit_p == 0 or limit_f == 0:
                st.fragoverflow += 1
                return None
            while self.queues and ((0 < limit_p <= len(self.queues)) or (0 < limit_f <= self.nfrags)):
                st.fragoverflow += self._free(next(iter(self.queues.values())))
            q = FragQueue6(key, now + FRAGTTL)
            self.queues[key] = q
            self.timers_changed()
        elif 0 < limit_f <= self.nfrags:
            st.fragoverflow += 1
            return None
        if not more:
            if (q.total is not None and q.total != end) or any(e > end for _, e, _ in q.frags):
                st.fragdropped += self._kill(q) + 1
                return None
            q.total = end
        elif q.total is not None and end > q.total:
            st.fragdropped += self._kill(q) + 1
            return None
        frags = q.frags
        i = len(frags)
        for j, (s, e, _) in enumerate(frags):
            if s >= end:
                i = j
                break
            if e > offset:
                if s == offset and e == end:
                    st.fragdropped += 1         # exact duplicate: dropped alone
                    return None
                st.fragdropped += self._kill(q) + 1
                return None
        frags.insert(i, (offset, end, bytes(data)))
        q.nbytes += len(data)
        self.nfrags += 1
        if offset == 0:
            q.first = first
        if q.total is None or q.nbytes != q.total or q.first is None:
            return None
        self._free(q)
        st.reassembled += 1
        return q.first, b"".join(f[2] for f in frags)

    def poll_at(self) -> Instant | None:
        for q in self.queues.values():
            return q.deadline
        return None

    def poll(self, now: Instant) -> list[Expired6]:
        expired = []
        while self.queues:
            q = next(iter(self.queues.values()))
            if q.deadline > now:
                break
            dead = q.dead
            self.stats.fragtimeout += self._free(q)
            if not dead:
                expired.append(Expired6(q.key, q.first))
        return expired
