"""IPv4 reassembly (RFC 791 section 3.2, RFC 815), bounded in time and memory.

Theory of operation
-------------------
Fragments are queued per (src, dst, id, proto) (RFC 791: "the identification ... with the
source, destination and protocol"). A queue lives at most ``IPFRAGTTL`` (30 s, NetBSD's
60 slow ticks); when it times out and its first fragment had arrived, the owner answers
with ICMP time exceeded, code 1 (RFC 792, RFC 1122 3.3.2).

Overlaps: an exact duplicate of a fragment we hold is dropped and the queue kept; any
other overlap discards the whole datagram. That is Linux's policy for IPv4 since 4.19
(after RFC 5722's reasoning for IPv6): overlapping fragments have no legitimate use and
are the raw material of evasion attacks (teardrop, IDS evasion), so no byte choice is made.

Memory: at most ``maxfragpackets`` datagrams (NetBSD's ``net.inet.ip.maxfragpackets``; 0
turns reassembly off) and ``max_bytes`` bytes of fragment data at once. When a new
datagram would pass either limit the *oldest* queues are evicted (Linux's LRU
eviction), so a flood of incomplete datagrams cannot block fresh traffic for 30 s. Every
fragment discarded is counted in ``ipstat.fragdropped`` (``fragtimeout`` on timeout,
``rcvmemdrop`` on eviction, ``badfrags`` when malformed).

Queues are kept in a dict in creation order; their deadlines are creation + 30 s, so the
oldest is always first, both for timeouts and for eviction.
"""

from typing import Callable

import attrs

from ..time import Instant, seconds
from .stats import IpStat

IPFRAGTTL = seconds(30)
MAX_FRAG_BYTES = 1 << 20        # the global byte cap across all queues
IP_MAXPACKET = 65535


@attrs.define(eq=False)
class FragQueue:
    key: tuple
    deadline: Instant
    frags: list = attrs.Factory(list)     # [(start, end, bytes)] sorted by start
    total: int | None = None              # payload length, known once the last fragment came
    nbytes: int = 0
    first: object = None                  # the caller's record of the offset-0 fragment
    first_data: bytes = b""               # its first 8 data bytes (for ICMP time exceeded)


@attrs.frozen
class Expired:
    """A queue that timed out; ``first`` is None if fragment 0 never came."""

    key: tuple
    first: object
    data: bytes


def _noop() -> None:
    return None


class Reassembler:
    def __init__(self, stats: IpStat, max_packets: Callable[[], int], max_bytes: int = MAX_FRAG_BYTES):
        self.stats = stats
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.queues: dict[tuple, FragQueue] = {}
        self.nbytes = 0
        # The stack's MbufPool (stack/mbuf.py), set by Stack; each kept fragment is a
        # packet chain charged there.
        self.pool = None
        # Told when a queue (and its deadline) comes or goes: Stack.poll_at's cache.
        self.timers_changed = _noop

    def __len__(self) -> int:
        return len(self.queues)

    def _free(self, q: FragQueue) -> int:
        del self.queues[q.key]
        self.timers_changed()
        self.nbytes -= q.nbytes
        if self.pool is not None:
            for s, e, _ in q.frags:
                self.pool.give(e - s)
        return len(q.frags)

    def drain(self) -> None:
        """NetBSD ip_drain(): out of buffers, every queue is dropped (fragdropped)."""
        while self.queues:
            self.stats.fragdropped += self._free(next(iter(self.queues.values())))

    def add(self, key: tuple, first: object, hlen: int, offset: int, more: bool, data,
            now: Instant) -> tuple[object, bytes] | None:
        """Take one fragment; return (``first`` of fragment 0, whole payload) when done.

        Args:
            key: (src, dst, id, proto).
            first: what to keep if this is the first fragment (the layer keeps its header).
            hlen: this fragment's header length (for the 65535-byte bound).
            offset: fragment offset in bytes; ``more``: the MF bit; ``data``: its payload.
        """
        stats = self.stats
        end = offset + len(data)
        # RFC 791: every fragment but the last carries a multiple of 8 bytes, and the
        # datagram cannot outgrow 65535 bytes (the ping of death).
        if (more and (len(data) & 7 or not data)) or end + hlen > IP_MAXPACKET:
            stats.badfrags += 1
            return None
        q = self.queues.get(key)
        if q is None:
            limit = self.max_packets()
            if limit <= 0:
                stats.rcvmemdrop += 1
                return None
            while self.queues and (len(self.queues) >= limit or self.nbytes + len(data) > self.max_bytes):
                stats.rcvmemdrop += self._free(next(iter(self.queues.values())))
            if len(data) > self.max_bytes:
                stats.rcvmemdrop += 1
                return None
            q = FragQueue(key, now + IPFRAGTTL)
            self.queues[key] = q
            self.timers_changed()
        elif self.nbytes + len(data) > self.max_bytes:
            # Growing an existing queue past the cap: evict the others first, oldest first.
            for other in list(self.queues.values()):
                if self.nbytes + len(data) <= self.max_bytes:
                    break
                if other is not q:
                    stats.rcvmemdrop += self._free(other)
            if self.nbytes + len(data) > self.max_bytes:
                stats.rcvmemdrop += self._free(q) + 1
                return None

        if not more:
            if (q.total is not None and q.total != end) or any(e > end for _, e, _ in q.frags):
                stats.fragdropped += self._free(q) + 1     # two different ends: corrupt
                return None
            q.total = end
        elif q.total is not None and end > q.total:
            stats.fragdropped += self._free(q) + 1
            return None

        frags = q.frags
        i = 0
        for i, (s, e, _) in enumerate(frags):
            if s >= end:
                break
            if e > offset:                      # [s, e) and [offset, end) intersect
                if s == offset and e == end:
                    stats.fragdropped += 1      # a duplicate: keep what we have
                    return None
                stats.fragdropped += self._free(q) + 1
                return None
        else:
            i = len(frags)
        if self.pool is not None and not self.pool.take(len(data), drain=False):
            # No buffer to keep it in: NetBSD counts ips_rcvmemdrop ("out of ipqent").
            stats.rcvmemdrop += 1
            if not q.frags:
                del self.queues[key]
                self.timers_changed()
            return None
        frags.insert(i, (offset, end, bytes(data)))
        q.nbytes += len(data)
        self.nbytes += len(data)
        if offset == 0:
            q.first = first
            q.first_data = bytes(data[:8])

        if q.total is None or q.nbytes != q.total:
            return None
        # No overlaps are ever kept, so nbytes == total means the holes are all filled.
        self._free(q)
        stats.reassembled += 1
        return q.first, b"".join(f[2] for f in frags)

    def poll_at(self) -> Instant | None:
        for q in self.queues.values():
            return q.deadline
        return None

    def poll(self, now: Instant) -> list[Expired]:
        expired = []
        while self.queues:
            q = next(iter(self.queues.values()))
            if q.deadline > now:
                break
            self.stats.fragtimeout += self._free(q)
            expired.append(Expired(q.key, q.first, q.first_data))
        return expired
