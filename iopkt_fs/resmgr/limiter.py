"""io-pkt's resource-manager threads, as a bound on requests being *served*.

A QNX client blocked in io-pkt (a read waiting for data) holds no thread; likewise a
request parked here waiting for data releases its slot while it waits (``parked``). When
every slot is busy, new requests wait, and the log says ``Threads exhausted.  See
"threads_max" option`` once (SRC receive.c).

pyfuse3's own worker count is set far higher (``max_tasks``) so that parked requests can
never starve the mount (reference/fs.md B4).

Every request passes through here, so the common case is two integer updates:
``try_enter()`` / ``leave()``; only a request that finds every slot busy awaits
``enter()``. A freed slot passes straight to the longest waiter (no barging).
"""

import trio

from ..stack import slog


class RequestLimiter:
    __slots__ = ("max", "serving", "peak", "exhausted", "parked_now", "parked_peak", "waiting",
                 "_lot", "_log")

    def __init__(self, threads_max: int, log=slog.discard):
        self.max = threads_max
        self.serving = 0
        self.peak = 0
        self.exhausted = 0
        self.parked_now = 0      # requests waiting for data (they hold no slot)
        self.parked_peak = 0
        # Requests waiting for a slot, kept here rather than asked of the parking lot:
        # its truth test is a Python call, and every request asks twice.
        self.waiting = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._log = log

    def try_enter(self) -> bool:
        """Take a slot if one is free (the fast path: no await)."""
        if self.serving >= self.max or self.waiting:
            return False
        self.serving += 1
        if self.serving > self.peak:
            self.peak = self.serving
        return True

    async def enter(self) -> None:
        """Take a slot, waiting for one; a waiter woken by ``leave`` holds it already."""
        if self.try_enter():
            return
        self.exhausted += 1
        if self.exhausted == 1:
            self._log(slog.WARNING, 'Threads exhausted.  See "threads_max" option')
        self.waiting += 1
        try:
            await self._lot.park()
        except BaseException:
            # Cancelled while parked: trio took it out of the lot, and no leave() will
            # count it (one that unparks it decrements for it: once woken, a task's park
            # can no longer be cancelled).
            self.waiting -= 1
            raise

    def leave(self) -> None:
        if self.waiting:
            self.waiting -= 1
            self._lot.unpark()      # the slot passes to the woken request
        else:
            self.serving -= 1

    def parked(self) -> "_ParkedSlot":
        """``async with limiter.parked():`` gives the slot back while waiting for data and
        takes one again to finish serving. A class, not an asynccontextmanager: every
        parked request enters it, and an async generator per park costs trio's asyncgen
        hooks and a frame more."""
        return _ParkedSlot(self)


class _ParkedSlot:
    __slots__ = ("limiter",)

    def __init__(self, limiter: RequestLimiter):
        self.limiter = limiter

    async def __aenter__(self) -> None:
        lim = self.limiter
        lim.leave()
        lim.parked_now += 1
        if lim.parked_now > lim.parked_peak:
            lim.parked_peak = lim.parked_now

    async def __aexit__(self, *exc) -> bool:
        lim = self.limiter
        lim.parked_now -= 1
        try:
            await lim.enter()
        except trio.Cancelled:
            # Shutdown cancelled the re-take: count the slot as held anyway, so the
            # request's own leave() on its way out balances it.
            lim.serving += 1
            raise
        return False
