"""The neighbour cache of Neighbor Discovery (RFC 4861 7.3): IPv6 address -> link address.

Theory of operation
-------------------
The shape is the ARP cache's (iface/neighbor.py): one ``Neighbor6`` per (interface,
address), callbacks into the owner instead of frames, timers as data in a heap with lazy
invalidation, ``resolve``/``learn``/``add_static``/``delete``/``flush``/``show``. The states
are RFC 4861's Neighbor Unreachability Detection machine (7.3.2, appendix C)::

    (none) --resolve--> INCOMPLETE --solicited NA--> REACHABLE --ReachableTime--> STALE
    INCOMPLETE --MAX_MULTICAST_SOLICIT NS, RetransTimer apart, no answer--> (none),
               held packets back to the owner (ICMPv6 address unreachable, 7.2.2)
    STALE --a packet sent--> DELAY --DELAY_FIRST_PROBE_TIME--> PROBE
    PROBE --unicast NS every RetransTimer, MAX_UNICAST_SOLICIT times--> (none)
    DELAY/PROBE --solicited NA--> REACHABLE
    any --NS or unsolicited NA with a different link address--> STALE (7.2.3, 7.2.5)
    STATIC (ndp -s): never expires, never replaced by what the wire says.

Constants are RFC 4861 10's (QNX nd6.h has the same); ReachableTime is drawn from
[0.5, 1.5] x REACHABLE_TIME when the cache is made (6.3.2). STALE entries are collected
after ``STALE_GC`` unused. Packets waiting for an INCOMPLETE entry: at most
``hold_limit`` (QNX ``net.inet6.icmp6.maxqueuelen`` 1), the oldest dropped first.

Callbacks: ``solicit(iface, target, unicast_mac)`` sends an NS (multicast when
``unicast_mac`` is None), ``deliver(iface, mac, packets)``, ``unreachable(iface, target,
packets, now)`` and ``on_change()``.
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
from ..iface.interface import Interface
from ..time import Instant, seconds

RETRANS_TIMER = seconds(1)
REACHABLE_TIME = seconds(30)
DELAY_FIRST_PROBE_TIME = seconds(5)
MAX_MULTICAST_SOLICIT = 3
MAX_UNICAST_SOLICIT = 3
STALE_GC = seconds(20 * 60)


class Nud(enum.Enum):
    INCOMPLETE = "I"
    REACHABLE = "R"
    STALE = "S"
    DELAY = "D"
    PROBE = "P"
    STATIC = "N"      # ndp prints permanent entries with state N (no state)


@attrs.define
class Nd6Stat:
    solicits: int = 0       # NS sent for resolution or probing
    held: int = 0           # packets held waiting for resolution
    sent_held: int = 0      # ... and sent once it came
    dropped_held: int = 0   # ... dropped (overflow, failure, flush)
    timeouts: int = 0       # resolutions that failed
    overrides: int = 0      # link address changes learned from the wire
    overperm: int = 0       # the wire disagreed with a static entry


@attrs.define(eq=False)
class Neighbor6:
    iface: Interface
    ip: bytes
    mac: bytes | None = None
    state: Nud = Nud.INCOMPLETE
    expires: Instant | None = None
    asked: int = 0
    router: bool = False
    hold: deque = attrs.Factory(deque)

    @property
    def address(self) -> ipaddress.IPv6Address:
        return ipaddress.IPv6Address(self.ip)

    @property
    def usable(self) -> bool:
        return self.mac is not None

    def describe(self) -> dict:
        return {
            "address": str(self.address), "mac": ":".join(f"{b:02x}" for b in self.mac) if self.mac else None,
            "interface": self.iface.name, "state": self.state.value, "permanent": self.state is Nud.STATIC,
            "router": self.router, "expires": self.expires, "probes": self.asked,
        }


def _noop(*_a) -> None:
    return None


class NdCache:
    def __init__(self, *, solicit: Callable = _noop, deliver: Callable = _noop,
                 unreachable: Callable = _noop, on_change: Callable = _noop,
                 timers_changed: Callable = _noop,
                 hold_limit: Callable[[], int] = lambda: 1, rng=None,
                 retrans: Callable[[Interface], int] = lambda _iface: RETRANS_TIMER,
                 nud: Callable[[Interface], bool] = lambda _iface: True):
        self.solicit = solicit
        self.nud = nud                      # the link does NUD (ND6_IFF_PERFORMNUD, ndp -i IF nud)
        self.retrans = retrans              # RetransTimer of a link (an RA may set it, 6.3.4)
        self.deliver = deliver
        self.unreachable = unreachable
        self.on_change = on_change
        self.timers_changed = timers_changed   # a deadline moved (Stack.poll_at's cache)
        self.hold_limit = hold_limit
        self.stats = Nd6Stat()
        factor = 0.5 + (rng.random() if rng is not None else 0.5)
        self.reachable_time = int(REACHABLE_TIME * factor)
        self._entries: dict[tuple[int, bytes], Neighbor6] = {}
        self._timers: list = []
        self._seq = itertools.count()

    # -- timers ---------------------------------------------------------------------------

    def _arm(self, entry: Neighbor6, when: Instant | None) -> None:
        entry.expires = when
        if when is not None:
            heapq.heappush(self._timers, (when, next(self._seq), entry))
        self.timers_changed()

    def _live(self, entry: Neighbor6, when) -> bool:
        return entry.expires == when and self._entries.get((entry.iface.index, entry.ip)) is entry

    def poll_at(self) -> Instant | None:
        timers = self._timers
        while timers:
            when, _, entry = timers[0]
            if self._live(entry, when):
                return when
            heapq.heappop(timers)
        return None

    def poll(self, now: Instant) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, entry = heapq.heappop(timers)
            if self._live(entry, when):
                self._expire(entry, now)

    def _expire(self, entry: Neighbor6, now: Instant) -> None:
        state = entry.state
        if state is Nud.INCOMPLETE:
            if entry.asked < MAX_MULTICAST_SOLICIT:
                self._solicit(entry, now, None)
                return
            # RFC 4861 7.2.2: resolution failed; the held packets are answered with
            # ICMPv6 destination unreachable (address unreachable) by the owner.
            self.stats.timeouts += 1
            packets = list(entry.hold)
            entry.hold.clear()
            self.stats.dropped_held += len(packets)
            self._drop(entry)
            self.unreachable(entry.iface, entry.ip, packets, now)
        elif state is Nud.REACHABLE:
            entry.state = Nud.STALE
            self._arm(entry, now + STALE_GC)
            self.on_change()
        elif state is Nud.DELAY:
            entry.state = Nud.PROBE
            entry.asked = 0
            self._solicit(entry, now, entry.mac)
        elif state is Nud.PROBE:
            if entry.asked < MAX_UNICAST_SOLICIT:
                self._solicit(entry, now, entry.mac)
            else:
                self._drop(entry)
        else:   # STALE and unused for STALE_GC
            self._drop(entry)

    def _solicit(self, entry: Neighbor6, now: Instant, unicast_mac: bytes | None) -> None:
        entry.asked += 1
        self._arm(entry, now + self.retrans(entry.iface))
        self.stats.solicits += 1
        self.solicit(entry.iface, entry.ip, unicast_mac)

    def _drop(self, entry: Neighbor6) -> None:
        del self._entries[(entry.iface.index, entry.ip)]
        entry.expires = None
        self.timers_changed()
        if entry.hold:
            self.stats.dropped_held += len(entry.hold)
            entry.hold.clear()
        self.on_change()

    # -- output side ----------------------------------------------------------------------

    def get(self, iface: Interface, ip: bytes) -> Neighbor6 | None:
        return self._entries.get((iface.index, ip))

    def resolve(self, iface: Interface, ip: bytes, packet, now: Instant) -> bytes | None:
        """The MAC to send ``packet`` to, or None (held until resolution, 7.2.2)."""
        entry = self._entries.get((iface.index, ip))
        if entry is None:
            entry = Neighbor6(iface, ip)
            self._entries[(iface.index, ip)] = entry
            self._solicit(entry, now, None)
        elif entry.state is Nud.INCOMPLETE:
            pass
        else:
            if entry.state is Nud.STALE and self.nud(iface):
                # 7.3.3: the first packet to a STALE neighbour starts the DELAY timer
                # (KAME nd6_output: not on a link whose ND6_IFF_PERFORMNUD is off).
                entry.state = Nud.DELAY
                entry.asked = 0
                self._arm(entry, now + DELAY_FIRST_PROBE_TIME)
            return entry.mac
        self.stats.held += 1
        if len(entry.hold) >= max(1, self.hold_limit()):
            entry.hold.popleft()
            self.stats.dropped_held += 1
        entry.hold.append(packet)
        return None

    def _release(self, entry: Neighbor6) -> None:
        if entry.hold and entry.mac is not None:
            packets = list(entry.hold)
            entry.hold.clear()
            self.stats.sent_held += len(packets)
            self.deliver(entry.iface, entry.mac, packets)

    # -- input side -----------------------------------------------------------------------

    def learn(self, iface: Interface, ip: bytes, mac: bytes, now: Instant, *, create: bool = True,
              router: bool | None = None) -> Neighbor6 | None:
        """A Source Link-Layer Address option (NS, RS, RA; 7.2.3, 6.3.4): create the entry
        STALE, or make it STALE when the address changed; an INCOMPLETE one completes."""
        entry = self._entries.get((iface.index, ip))
        if entry is None:
            if not create:
                return None
            entry = Neighbor6(iface, ip, mac, Nud.STALE)
            self._entries[(iface.index, ip)] = entry
            self._arm(entry, now + STALE_GC)
        elif entry.state is Nud.STATIC:
            if entry.mac != mac:
                self.stats.overperm += 1
            return entry
        elif entry.mac != mac:
            if entry.mac is not None:
                self.stats.overrides += 1
            entry.mac = mac
            entry.state = Nud.STALE
            entry.asked = 0
            self._arm(entry, now + STALE_GC)
            self.on_change()
        if router is not None:
            entry.router = router
        self._release(entry)
        return entry

    def advert(self, iface: Interface, ip: bytes, mac: bytes | None, now: Instant, *,
               solicited: bool, override: bool, router: bool) -> Neighbor6 | None:
        """A Neighbor Advertisement for ``ip`` (RFC 4861 7.2.5)."""
        entry = self._entries.get((iface.index, ip))
        if entry is None or entry.state is Nud.STATIC:
            return entry            # unsolicited news of a stranger: no entry is made
        if entry.state is Nud.INCOMPLETE:
            if mac is None:
                return entry        # no TLLA: nothing learned
            entry.mac = mac
            entry.asked = 0
            self._set_confirmed(entry, now, solicited)
            entry.router = router
            self.on_change()
            self._release(entry)
            return entry
        changed = mac is not None and mac != entry.mac
        if not override and changed:
            # 7.2.5: a different address without Override only makes REACHABLE suspect.
            if entry.state is Nud.REACHABLE:
                entry.state = Nud.STALE
                self._arm(entry, now + STALE_GC)
            return entry
        if changed:
            entry.mac = mac
            self.stats.overrides += 1
            self.on_change()
        if solicited:
            entry.asked = 0
            self._set_confirmed(entry, now, True)
        elif changed:
            entry.state = Nud.STALE
            self._arm(entry, now + STALE_GC)
        entry.router = router
        return entry

    def _set_confirmed(self, entry: Neighbor6, now: Instant, solicited: bool) -> None:
        if solicited:
            entry.state = Nud.REACHABLE
            self._arm(entry, now + self.reachable_time)
        else:
            entry.state = Nud.STALE
            self._arm(entry, now + STALE_GC)

    def confirm(self, iface: Interface, ip: bytes, now: Instant) -> None:
        """Upper-layer reachability confirmation (7.3.1): forward progress."""
        entry = self._entries.get((iface.index, ip))
        if entry is not None and entry.mac is not None and entry.state is not Nud.STATIC:
            entry.asked = 0
            self._set_confirmed(entry, now, True)

    # -- ndp(8) ---------------------------------------------------------------------------

    def add_static(self, iface: Interface, ip: bytes, mac: bytes) -> Neighbor6:
        if len(mac) != 6:
            raise StackError(errno.EINVAL, "an Ethernet address has 6 bytes")
        old = self._entries.get((iface.index, ip))
        entry = Neighbor6(iface, ip, mac, Nud.STATIC)
        if old is not None:
            entry.hold = old.hold
        self._entries[(iface.index, ip)] = entry
        self.on_change()
        self.timers_changed()     # the old entry's timer is gone with it
        self._release(entry)
        return entry

    def delete(self, ip: bytes, iface: Interface | None = None) -> Neighbor6:
        for entry in list(self._entries.values()):
            if entry.ip == ip and (iface is None or entry.iface is iface):
                self._drop(entry)
                return entry
        raise StackError(errno.ESRCH, f"{ipaddress.IPv6Address(ip)}: not in table")

    def flush(self, iface: Interface | None = None, *, static: bool = False) -> int:
        gone = [e for e in self._entries.values()
                if (iface is None or e.iface is iface) and (static or e.state is not Nud.STATIC)]
        for entry in gone:
            self._drop(entry)
        return len(gone)

    def __iter__(self) -> Iterator[Neighbor6]:
        return iter(sorted(self._entries.values(), key=lambda e: (e.iface.index, e.ip)))

    def __len__(self) -> int:
        return len(self._entries)

    def show(self) -> list[dict]:
        return [e.describe() for e in self]
