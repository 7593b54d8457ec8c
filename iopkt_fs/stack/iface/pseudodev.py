"""What tun(4) and tap(4) share: a character device bound to one interface.

The device's reader takes what the interface sends, one packet (tun) or frame (tap) per
read, from a bounded queue (NetBSD's ``if_snd``, ``IFQ_MAXLEN`` long); its writer injects
one per write. Sans-IO like the rest of the core: the file layer (resmgr/devices.py) calls
``read``/``write`` and learns of readiness through the stack's one queue
(``stack.notify_socket(dev)``), exactly as for a socket, so ``runtime.Readiness`` wakes
its parked readers and pollers.
"""

import collections
import errno

from ..errors import StackError

# NetBSD sys/net/if.h: the default length of an interface send queue.
IFQ_MAXLEN = 256


class PseudoDevice:
    """One unit's device state (NetBSD's softc, the parts the device node uses)."""

    def __init__(self, stack, unit: int):
        self.stack = stack
        self.unit = unit
        self.iface = None             # the interface, while it exists
        self.opened = False           # TUN_OPEN / TAP_INUSE: one opener at a time
        self.zombie = False           # destroyed while open: reads and writes get ENXIO
        self.queue: collections.deque = collections.deque()
        self.drops = 0                # queue full, or nobody reading

    # -- readiness ---------------------------------------------------------------------

    @property
    def readable(self) -> bool:
        """poll(): POLLIN while something is queued (tunpoll/tap_poll), or destroyed."""
        return bool(self.queue) or self.zombie

    @property
    def read_returns(self) -> bool:
        """A blocked read goes on: something queued, destroyed, or no longer ready
        (then it fails: EHOSTDOWN)."""
        return bool(self.queue) or self.zombie or not self.ready

    @property
    def ready(self) -> bool:
        return self.opened and self.iface is not None

    def _changed(self) -> None:
        self.stack.notify_socket(self)

    def enqueue(self, data: bytes) -> None:
        if len(self.queue) >= IFQ_MAXLEN:
            self.drops += 1
            self._dropped()
            return
        self.queue.append(data)
        if len(self.queue) == 1:
            self._changed()

    def _dropped(self) -> None:
        if self.iface is not None:
            self.iface.stats.oerrors += 1

    # -- the device's calls ------------------------------------------------------------

    def open(self) -> None:
        if self.opened:
            raise StackError(errno.EBUSY, f"{self.name} is already open")
        self.opened = True
        self._changed()

    def close(self) -> None:
        self.opened = False
        self.drops += len(self.queue)
        self.queue.clear()
        self._changed()

    def take(self, size: int) -> bytes | None:
        """The next queued item cut to ``size`` (the rest is lost, as tun/tap read do),
        None when nothing is queued; ENXIO after a destroy."""
        if self.zombie:
            raise StackError(errno.ENXIO, f"{self.name} was destroyed")
        if not self.queue:
            return None
        data = self.queue.popleft()
        return data if len(data) <= size else data[:size]

    def destroyed(self) -> None:
        """The interface went (``ifconfig X destroy``): an opener keeps a zombie."""
        self.iface = None
        self.zombie = self.opened
        self.queue.clear()
        self._changed()

    def destroy_interface(self, iface) -> None:
        """``ifconfig X destroy`` (the driver hook): the softc goes, an opener keeps it as
        a zombie, so the next open or create of the unit starts afresh."""
        self.destroyed()
        units = getattr(self.stack, self.prefix).units
        if units.get(self.unit) is self:
            del units[self.unit]

    # Why a read cannot wait while nothing is queued (tun: no address; tap: down).
    not_ready = "is not ready"

    def read(self, size: int) -> bytes | None:
        """One packet or frame, or None to wait; EHOSTDOWN while not ready, ENXIO once
        destroyed."""
        if self.zombie:
            raise StackError(errno.ENXIO, f"{self.name} was destroyed")
        if not self.queue and not self.ready:
            raise StackError(errno.EHOSTDOWN, f"{self.name} {self.not_ready}")
        return self.take(size)

    @property
    def name(self) -> str:
        return f"{self.prefix}{self.unit}"

    prefix = "?"
