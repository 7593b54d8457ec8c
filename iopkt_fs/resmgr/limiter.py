"""io-pkt's resource-manager threads, as a bound on requests being *served*.

A QNX client blocked in io-pkt (a read waiting for data) holds no thread; likewise a
request parked here waiting for data releases its slot while it waits (``parked``). When
every slot is busy, new requests wait, and the log says ``Threads exhausted.  See
"threads_max" option`` once (SRC receive.c).

pyfuse3's own worker count is set far higher (``max_tasks``) so that parked requests can
never starve the mount (reference/fs.md B4).
"""

import contextlib

import trio

from ..stack import slog


class RequestLimiter:
    def __init__(self, threads_max: int, log=slog.discard):
        self._limiter = trio.CapacityLimiter(threads_max)
        # Tasks whose re-acquire after a parked wait was cancelled: they hold no slot.
        self._unheld: set = set()
        self._log = log
        self.peak = 0
        self.exhausted = 0

    @property
    def serving(self) -> int:
        return self._limiter.borrowed_tokens

    @contextlib.asynccontextmanager
    async def serve(self):
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            self.exhausted += 1
            if self.exhausted == 1:
                self._log(slog.WARNING, 'Threads exhausted.  See "threads_max" option')
            await self._limiter.acquire()
        self.peak = max(self.peak, self._limiter.borrowed_tokens)
        try:
            yield
        finally:
            task = trio.lowlevel.current_task()
            if task in self._unheld:
                self._unheld.discard(task)
            else:
                self._limiter.release()

    @contextlib.asynccontextmanager
    async def parked(self):
        """Give the slot back while waiting for data; take one again to finish serving."""
        self._limiter.release()
        task = trio.lowlevel.current_task()
        try:
            yield
        finally:
            self._unheld.add(task)
            await self._limiter.acquire()   # may be cancelled (shutdown): then no slot held
            self._unheld.discard(task)
