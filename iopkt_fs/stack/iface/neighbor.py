"""The ARP cache (RFC 826): IPv4 address -> Ethernet address, with states and timers.

Theory of operation
-------------------
One ``Neighbor`` per (interface, IPv4 address). Its life, with NetBSD's timer values
(netinet/if_arp.c: ``arpt_keep`` 20 min, ``arp_maxtries`` 5, ``arpt_down`` 20 s) and
Linux's STALE idea so a long-lived entry is re-checked instead of silently trusted::

    (none) --lookup--> INCOMPLETE --reply/request heard--> REACHABLE --20 min--> STALE
    INCOMPLETE --5 requests, 1 s apart, no answer--> FAILED --20 s--> (none)
    STALE --used--> probes like INCOMPLETE but keeps sending to the old address;
                    answered -> REACHABLE, 5 unanswered probes -> (none)
    STALE --20 min unused--> (none)
    STATIC (arp -s): never expires, never replaced by what the wire says.

Packets that need an INCOMPLETE entry wait in a bounded per-entry queue
(``HOLD_LIMIT``; NetBSD holds one, Linux ``unres_qlen`` 101 by bytes): overflow drops the
oldest, counted. When the entry fails, the owner gets the packets back to answer with
ICMP host unreachable (RFC 1122 2.3.2.2 lets the queue be dropped; Linux answers, and an
application learns more from EHOSTUNREACH than from silence).

The cache knows no frames. It calls back into its owner (the IPv4 layer):
``send_request(iface, target, hint_mac)``, ``deliver(iface, mac, packets)`` when an entry
resolves, ``unreachable(iface, target, packets)`` when it fails, and ``on_change()`` when a
mapping changes (the flow cache is dropped). Timers are a heap of (deadline, seq, entry)
with lazy invalidation (trio's ``Deadlines``).
"""

import enum
import errno
import heapq
import ipaddress
import itertools
from collections import deque
from typing import Callable, Iterator

import attrs

from ..errors import StackError
from ..time import Instant, seconds
from .interface import Interface

# NetBSD netinet/if_arp.c defaults.
ARPT_KEEP = seconds(20 * 60)     # a complete entry is trusted this long
ARPT_DOWN = seconds(20)          # a failed entry suppresses new requests this long
ARP_RETRANS = seconds(1)         # between requests for an unresolved entry
ARP_MAXTRIES = 5                 # requests before giving up
HOLD_LIMIT = 16                  # packets queued per unresolved entry


class State(enum.Enum):
    INCOMPLETE = "incomplete"
    REACHABLE = "reachable"
    STALE = "stale"
    FAILED = "failed"
    STATIC = "permanent"


@attrs.define
class ArpStat:
    """NetBSD's arpstat counters (netinet/if_inarp.h ARP_STAT_*), lower-cased."""

    sndtotal: int = 0
    sndreply: int = 0
    sndrequest: int = 0
    rcvtotal: int = 0
    rcvrequest: int = 0
    rcvreply: int = 0
    rcvmcast: int = 0
    rcvbcast: int = 0
    rcvbadproto: int = 0
    rcvbadlen: int = 0
    rcvzerotpa: int = 0
    rcvzerospa: int = 0
    rcvnoint: int = 0
    rcvlocalsha: int = 0
    rcvbcastsha: int = 0
    rcvlocalspa: int = 0
    rcvbcastspa: int = 0    # ours: a sender protocol address that is a broadcast/multicast
    rcvoverperm: int = 0
    rcvover: int = 0
    dfrtotal: int = 0       # packets held waiting for resolution
    dfrsent: int = 0        # ... and sent once it came
    dfrdropped: int = 0     # ... and dropped (queue overflow, failure, flush)
    timeouts: int = 0       # entries that failed to resolve


@attrs.define(eq=False)
class Neighbor:
    iface: Interface
    ip: int
    mac: bytes | None = None
    state: State = State.INCOMPLETE
    expires: Instant | None = None     # next timer: retransmit, stale, removal
    asked: int = 0                     # requests sent in the current resolution
    hold: deque = attrs.Factory(deque)
    used: Instant = 0                  # last time a packet went to it (STALE garbage collection)

    @property
    def address(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(self.ip)

    @property
    def usable(self) -> bool:
        return self.mac is not None and self.state is not State.FAILED

    def describe(self) -> dict:
        return {
            "address": str(self.address),
            "mac": ":".join(f"{b:02x}" for b in self.mac) if self.mac else None,
            "interface": self.iface.name,
            "state": self.state.value,
            "permanent": self.state is State.STATIC,
            "expires": self.expires,
        }


def _noop(*_a) -> None:
    return None


class ArpCache:
    def __init__(self, *, send_request: Callable = _noop, deliver: Callable = _noop,
                 unreachable: Callable = _noop, on_change: Callable = _noop,
                 timers_changed: Callable = _noop,
                 hold_limit: int = HOLD_LIMIT):
        self.send_request = send_request
        self.deliver = deliver
        self.unreachable = unreachable
        self.on_change = on_change
        self.timers_changed = timers_changed   # a deadline moved (Stack.poll_at's cache)
        self.hold_limit = hold_limit
        self.stats = ArpStat()
        self._entries: dict[tuple[int, int], Neighbor] = {}
        self._timers: list[tuple[Instant, int, Neighbor]] = []
        self._seq = itertools.count()

    # -- timers ---------------------------------------------------------------------------

    def _arm(self, entry: Neighbor, when: Instant | None) -> None:
        entry.expires = when
        if when is not None:
            heapq.heappush(self._timers, (when, next(self._seq), entry))
        self.timers_changed()

    def poll_at(self) -> Instant | None:
        timers = self._timers
        while timers:
            when, _, entry = timers[0]
            if entry.expires == when and self._entries.get((entry.iface.index, entry.ip)) is entry:
                return when
            heapq.heappop(timers)    # stale timer: the entry moved on or is gone
        return None

    def poll(self, now: Instant) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, entry = heapq.heappop(timers)
            if entry.expires != when or self._entries.get((entry.iface.index, entry.ip)) is not entry:
                continue
            self._expire(entry, now)

    def _expire(self, entry: Neighbor, now: Instant) -> None:
        state = entry.state
        if state is State.INCOMPLETE or (state is State.STALE and entry.asked):
            if entry.asked < ARP_MAXTRIES:
                self._request(entry, now)
                return
            if state is State.STALE:
                self._drop(entry)       # the old address stopped answering
                return
            # RFC 1122 2.3.2.1: give up; remember the failure for arpt_down so a flood of
            # packets to a dead host does not become a flood of requests.
            self.stats.timeouts += 1
            packets = list(entry.hold)
            entry.hold.clear()
            self.stats.dfrdropped += len(packets)
            entry.state = State.FAILED
            entry.asked = 0
            self._arm(entry, now + ARPT_DOWN)
            self.on_change()
            self.unreachable(entry.iface, entry.ip, packets, now)
        elif state is State.REACHABLE:
            entry.state = State.STALE
            self._arm(entry, now + ARPT_KEEP)
            self.on_change()        # caches that bypass resolution must look again
        else:  # FAILED after arpt_down, or STALE and unused for another arpt_keep
            self._drop(entry)

    def _request(self, entry: Neighbor, now: Instant) -> None:
        entry.asked += 1
        self._arm(entry, now + ARP_RETRANS)
        self.stats.sndrequest += 1
        self.stats.sndtotal += 1
        self.send_request(entry.iface, entry.ip, entry.mac)

    def _drop(self, entry: Neighbor) -> None:
        del self._entries[(entry.iface.index, entry.ip)]
        entry.expires = None
        self.timers_changed()
        if entry.hold:
            self.stats.dfrdropped += len(entry.hold)
            entry.hold.clear()
        self.on_change()

    # -- output side ----------------------------------------------------------------------

    def get(self, iface: Interface, ip: int) -> Neighbor | None:
        return self._entries.get((iface.index, ip))

    def resolve(self, iface: Interface, ip: int, packet, now: Instant) -> bytes | None:
        """The MAC to send ``packet`` to, or None (the packet is then held or refused).

        Refused packets (the entry FAILED) go to ``unreachable`` at once, as BSD's
        arpresolve answers EHOSTDOWN during arpt_down.
        """
        entry = self._entries.get((iface.index, ip))
        if entry is not None:
            state = entry.state
            if state is State.REACHABLE or state is State.STATIC:
                return entry.mac
            if state is State.STALE:
                entry.used = now
                if not entry.asked:
                    self._request(entry, now)    # re-confirm, keep sending meanwhile
                return entry.mac
            if state is State.FAILED:
                self.stats.dfrdropped += 1
                self.unreachable(iface, ip, [packet], now)
                return None
        else:
            entry = Neighbor(iface, ip, used=now)
            self._entries[(iface.index, ip)] = entry
            self._request(entry, now)
        self._hold(entry, packet)
        return None

    def _hold(self, entry: Neighbor, packet) -> None:
        self.stats.dfrtotal += 1
        if len(entry.hold) >= self.hold_limit:
            entry.hold.popleft()
            self.stats.dfrdropped += 1
        entry.hold.append(packet)

    def is_down(self, iface: Interface, ip: int) -> bool:
        """True while ``ip`` failed to resolve recently (gateway selection skips it)."""
        entry = self._entries.get((iface.index, ip))
        return entry is not None and entry.state is State.FAILED

    # -- input side -----------------------------------------------------------------------

    def learn(self, iface: Interface, ip: int, mac: bytes, now: Instant, *, create: bool) -> Neighbor | None:
        """RFC 826's merge step: update an entry we have; add one if ``create``.

        ``create`` is true when the packet was addressed to us (the sender will surely
        talk to us soon). Static entries are never overwritten from the wire.
        """
        entry = self._entries.get((iface.index, ip))
        if entry is None:
            if not create:
                return None
            entry = Neighbor(iface, ip)
            self._entries[(iface.index, ip)] = entry
        elif entry.state is State.STATIC:
            if entry.mac != mac:
                self.stats.rcvoverperm += 1
            return entry
        elif entry.mac is not None and entry.mac != mac:
            self.stats.rcvover += 1
        changed = entry.mac != mac
        entry.mac = mac
        entry.state = State.REACHABLE
        entry.asked = 0
        entry.used = now
        self._arm(entry, now + ARPT_KEEP)
        if changed:
            self.on_change()
        if entry.hold:
            packets = list(entry.hold)
            entry.hold.clear()
            self.stats.dfrsent += len(packets)
            self.deliver(iface, mac, packets)
        return entry

    # -- arp(8) -----------------------------------------------------------------------------

    def add_static(self, iface: Interface, ip, mac: bytes) -> Neighbor:
        """``arp -s``: a permanent entry (replaces whatever was there)."""
        addr = int(ipaddress.IPv4Address(ip))
        if len(mac) != 6:
            raise StackError(errno.EINVAL, "an Ethernet address has 6 bytes")
        old = self._entries.get((iface.index, addr))
        entry = Neighbor(iface, addr, mac, State.STATIC)
        self._entries[(iface.index, addr)] = entry
        self.on_change()
        self.timers_changed()     # the old entry's timer is gone with it
        if old is not None and old.hold:
            packets = list(old.hold)
            self.stats.dfrsent += len(packets)
            self.deliver(iface, mac, packets)
        return entry

    def delete(self, ip, iface: Interface | None = None) -> Neighbor:
        """``arp -d``: remove the entry for ``ip`` (ESRCH if there is none, as arp(8) says)."""
        addr = int(ipaddress.IPv4Address(ip))
        for entry in list(self._entries.values()):
            if entry.ip == addr and (iface is None or entry.iface is iface):
                self._drop(entry)
                return entry
        raise StackError(errno.ESRCH, f"{ipaddress.IPv4Address(addr)}: not in table")

    def flush(self, iface: Interface | None = None, *, static: bool = False) -> int:
        """Remove dynamic entries (and static ones too if ``static``); returns how many."""
        gone = [e for e in self._entries.values()
                if (iface is None or e.iface is iface) and (static or e.state is not State.STATIC)]
        for entry in gone:
            self._drop(entry)
        return len(gone)

    def __iter__(self) -> Iterator[Neighbor]:
        return iter(sorted(self._entries.values(), key=lambda e: (e.iface.index, e.ip)))

    def __len__(self) -> int:
        return len(self._entries)

    def show(self) -> list[dict]:
        return [e.describe() for e in self]
