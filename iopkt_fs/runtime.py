"""The one place that reads a clock: drives ``Stack.poll`` and moves frames to drivers.

The loop is aioquic's ``transmit()`` written for trio: poll the stack, flush what it
queued to the drivers, sleep until the stack's next deadline or until someone calls
``kick()`` (a driver delivered frames, a file operation moved a deadline earlier).

Readiness. The core reports every socket whose readiness changed through one stack-wide
queue (``stack.notify_socket``). ``Readiness`` drains it once per turn (and after a
socket call, ``settle()``) and calls the one waker registered for each named socket: a
connection directory's readers, writers, pollers and listen opens, or a trio stream's
tasks. Nothing polls to notice data.
"""

import errno
import functools
import math
from time import perf_counter

import trio

from .drivers import fault, registry
from .drivers.base import Driver, DriverContext, DriverOptions
from .stack import slog
from .stack.errors import StackError
from .stack.iface.interface import IFF_SHIM, Interface
from .stack.stack import Stack
from .stack.time import MICROS_PER_SECOND, Instant


def now_us() -> Instant:
    return int(trio.current_time() * MICROS_PER_SECOND)


class _Context(DriverContext):
    """One per loaded driver: carries the stack's ``name=``/``unit=`` for that driver."""

    def __init__(self, runtime: "Runtime", name_prefix: str | None, unit: int | None):
        self.runtime = runtime
        self.stack = runtime.stack
        self.name_prefix = name_prefix
        self.unit = unit
        self.legacy = False
        # A driver's batch goes straight to the runtime's methods (Runtime.input, .hold,
        # .release): a ping's frame arrives after the CPU idled, when every Python call
        # costs microseconds, and a forwarding method per batch is one more before the
        # reply is written (docs/performance.md, "Ping, side by side"). hold/release:
        # a driver starts a poll loop of several ``input`` calls with no wait between
        # them; until ``release`` each batch is processed and its answers sent, and the
        # waking of waiters is left for the end.
        self.input = runtime.input
        # hold is Runtime.hold without its Python frame (a C call: devnp-tap holds right
        # before reading a ping's frame); release runs after the reply is written.
        self.hold = functools.partial(runtime._holds.append, None)
        self.release = runtime.release

    def new_interface(self, default_prefix: str, **fields) -> Interface:
        unit = self.unit
        # A driver making several interfaces numbers them upwards from unit=.
        self.unit = None if unit is None else unit + 1
        iface = self.stack.new_interface(self.name_prefix or default_prefix, unit, **fields)
        if self.legacy:
            iface.flags |= IFF_SHIM
        return iface

    def set_link(self, iface: Interface, up: bool, media: str | None = None) -> None:
        self.stack.set_link(iface, up, media)
        self.runtime.kick()

    def set_down(self, iface: Interface) -> None:
        """The driver lost its device: the interface goes down (if_down), routes through
        it stop being used, and sockets see EHOSTUNREACH instead of silence."""
        if iface.is_up:
            self.stack.down(iface)
            self.runtime.kick()

    def log(self, severity: int, text: str) -> None:
        self.runtime.log(severity, text, slog.SLOGC_NETWORK)

    def now(self) -> Instant:
        return now_us()


class Readiness:
    """Who waits on which socket: ``watch(sock, wake)`` until ``unwatch``; ``dispatch``
    calls ``wake()`` once for each socket the stack's queue names."""

    __slots__ = ("_stack", "_wakers")

    def __init__(self, stack: Stack):
        self._stack = stack
        # id(sock) -> (sock, wake): holding the socket keeps its id from being reused.
        self._wakers: dict[int, tuple[object, object]] = {}

    def watch(self, sock, wake) -> None:
        self._wakers[id(sock)] = (sock, wake)

    def unwatch(self, sock, wake=None) -> None:
        entry = self._wakers.get(id(sock))
        if entry is not None and entry[0] is sock and (wake is None or entry[1] == wake):
            del self._wakers[id(sock)]

    def dispatch(self) -> None:
        events = self._stack.take_socket_events()
        if not events:
            return
        wakers = self._wakers
        for sock in events:
            entry = wakers.get(id(sock))
            if entry is not None and entry[0] is sock:
                entry[1]()


class Runtime:
    def __init__(self, stack: Stack, log=slog.discard):
        self.stack = stack
        self.log = log
        self.readiness = Readiness(stack)
        self._wakeup = trio.Event()
        self._planned = math.inf     # when the loop will next look at the stack (s)
        self._holds: list = []       # one entry per driver inside a poll loop (hold/release)
        # The run's clock (trio.current_time() without its two wrappers), set by run():
        # read once per driver batch.
        self._clock = None
        # trio's SystemClock reads ``offset + perf_counter()``: with that clock, its
        # offset, so a driver's batch reads the same time without a Python call.
        self._offset: float | None = None
        self._nursery: trio.Nursery | None = None
        self.drivers: list[tuple[Driver, trio.CancelScope]] = []
        # Listeners called after every turn, after the readiness dispatch (the resmgr
        # sweeps here).
        self.after_turn: list = []

    # -- the loop -------------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed outside the loop: poll and flush soon."""
        self._wakeup.set()

    def settle(self) -> None:
        """After a socket call from a request or a task: send what it queued, wake whom
        it made ready, and wake the loop only if a deadline moved earlier than planned
        (a request answered at once then costs no task switch)."""
        # (flush and dispatch are asked only when the stack has something for them: most
        # calls queued no frame, or made no socket ready - a call less each)
        stack = self.stack
        if stack.tx_pending:
            self.flush()
        if stack.socket_events:
            self.readiness.dispatch()
        self._wake_if_earlier()

    def settle_reply_first(self) -> None:
        """``settle`` for a FUSE request whose worker sends the queued frames after its
        reply (fuseloop.Baton.send_after_reply): the caller gets its answer before our
        TAP write runs the kernel's receive path for what the call sent."""
        stack = self.stack
        if stack.socket_events:
            self.readiness.dispatch()
        self._wake_if_earlier()

    def _wake_if_earlier(self) -> None:
        deadline = self.stack.poll_at()
        if deadline is not None and deadline / MICROS_PER_SECOND < self._planned:
            self._wakeup.set()

    def turn(self) -> None:
        """Run due timers, hand queued frames to drivers, wake waiters, tell listeners."""
        self.stack.poll(now_us())
        self.flush()
        self.readiness.dispatch()
        for fn in self.after_turn:
            fn()

    def flush(self, passes: int = 4) -> None:
        # A pseudo-interface's driver may queue on another interface (a vlan hands its
        # tagged frames to the parent): a few passes, one per level of nesting.
        stack = self.stack
        for _ in range(passes):
            if not stack.tx_pending:
                return
            self._flush()

    def _flush(self) -> None:
        # Stack.take_tx written out (a call less before a ping's reply is written).
        tx = self.stack.tx_pending
        pending = list(tx.values())
        tx.clear()
        for iface in pending:
            frames = list(iface.txq)
            iface.txq.clear()
            driver = iface.driver
            if driver is None or not hasattr(driver, "transmit"):
                iface.stats.oerrors += len(frames)
                continue
            try:
                driver.transmit(iface, frames)
            except Exception as exc:  # a broken driver loses its frames, not the stack
                iface.stats.oerrors += len(frames)
                self.log(slog.ERROR, f"{iface.name}: transmit failed: {exc}")

    def now(self) -> Instant:
        """``now_us()`` from the run's clock itself (the file layer stamps every socket
        call with it): trio.current_time() is two wrappers over the same read."""
        offset = self._offset
        if offset is not None:
            return int((perf_counter() + offset) * MICROS_PER_SECOND)
        clock = self._clock
        return now_us() if clock is None else int(clock() * MICROS_PER_SECOND)

    def input(self, iface: Interface, frames) -> None:
        """A driver's batch: in, out again, waiters woken - all in the driver's task. The
        loop is woken only when a deadline moved earlier than it planned for (a batch
        costs no second task switch; a new timer or looped-back frames still get one)."""
        stack = self.stack
        offset = self._offset
        if offset is not None:
            now = int((perf_counter() + offset) * MICROS_PER_SECOND)
        else:
            clock = self._clock
            now = now_us() if clock is None else int(clock() * MICROS_PER_SECOND)
        stack.input(iface, frames, now)
        # flush()'s first pass written out: the batch's answers (a ping's reply) are
        # written before anything else is looked at.
        if stack.tx_pending:
            self._flush()
            if stack.tx_pending:
                self.flush(3)
        if not self._holds:
            self._after_input()

    def _after_input(self) -> None:
        if self.stack.socket_events:
            self.readiness.dispatch()
        for fn in self.after_turn:
            fn()
        # Like settle: the loop task is woken only when a deadline moved earlier than
        # it planned to look (a batch of frames then costs no extra task switch).
        self._wake_if_earlier()

    def hold(self) -> None:
        """A driver reads several batches in a row without a wait (devnp-tap's poll
        loop): each is processed and flushed at once, so the kernel can answer what we
        sent, but the wake-ups and the deadline check run once, at ``release``. No task
        runs in between (the loop does not await), so a waiter woken at the end sees
        exactly what it would have seen woken after each batch."""
        self._holds.append(None)

    def release(self) -> None:
        self._holds.pop()
        if not self._holds:
            self._after_input()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        clock = trio.lowlevel.current_clock()
        self._clock = clock.current_time
        offset = getattr(clock, "offset", None)
        if type(clock).__name__ == "SystemClock" and type(clock).__module__.startswith("trio.") \
                and type(offset) is float:
            self._offset = offset
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    self.turn()
                    deadline = self.stack.poll_at()
                    when = math.inf if deadline is None else deadline / MICROS_PER_SECOND
                    self._planned = when
                    with trio.move_on_at(when):
                        await self._wakeup.wait()
                    self._planned = -math.inf   # about to turn: nothing needs a wakeup
                    self._wakeup = trio.Event()
        finally:
            self._clock = None
            self._offset = None

    # -- drivers --------------------------------------------------------------------------

    async def load_driver(self, spec: str, options: str | None) -> Driver:
        """Load and attach one driver (``-d`` or ``mount``); StackError on failure.

        Logged as io-pkt does: the attempt as ``<module> <options>``, a failure as
        ``Unable to load ...`` or ``Unable to init ...``. Finding and importing the module
        runs in a worker thread (io-pkt's dlopen does not stop the stack either); the
        attach itself runs on the loop, where stack state is safe to touch.
        """
        if self._nursery is None:
            raise StackError(errno.EAGAIN, "the runtime is not running")
        self.log(slog.INFO, f"{spec} {options if options is not None else '(null)'}")
        shim_only = False
        if registry.is_shim(spec):
            # QNX's explicit form: -d shim "/lib/dll/devn-epic.so transmit=1024,receive=1024"
            # (DOC-SHIM): the option string names the io-net driver, then its options.
            if not options or not options.split():
                self.log(slog.ERROR, f"Unable to init {spec}: no io-net driver named")
                raise StackError(errno.EINVAL, "shim: name the io-net driver to load")
            spec, _, rest = options.strip().partition(" ")
            options = rest.strip() or None
            shim_only = True
        try:
            found = await trio.to_thread.run_sync(registry.resolve, spec)
        except StackError as exc:
            self.log(slog.ERROR, f"Unable to load {spec}: {exc.message}")
            raise
        if shim_only and not found.legacy:
            self.log(slog.ERROR, f"Unable to init devnp-shim: {found.name} is not an io-net driver")
            raise StackError(errno.EINVAL, f"{found.name} is not an io-net driver")
        opts = DriverOptions(options)
        try:
            # Generic fault_* options (drivers/fault.py) are the runtime's, like name=/unit=:
            # taken out before any driver (native or legacy) parses its own.
            faults = fault.take_options(opts)
            if found.legacy:
                from .drivers import shim  # noqa: PLC0415 - only legacy loads need it
                driver, ctx = shim.wrap(self, found, opts)
            else:
                name, unit = opts.take_stack_options()
                ctx = _Context(self, name, unit)
                driver = found.entry(ctx, opts)
            if faults is not None:
                fault.install(driver, ctx, faults)
            interfaces = driver.attach()
        except StackError as exc:
            self.log(slog.ERROR, f"Unable to init {found.name}: {exc.message}")
            raise
        except Exception as exc:  # a buggy driver must never stop the stack
            self.log(slog.ERROR, f"Unable to init {found.name}: {type(exc).__name__}: {exc}")
            raise StackError(errno.EIO, f"{found.name}: {exc}") from None
        for iface in interfaces:
            iface.driver = iface.driver or driver
            self.log(slog.INFO, iface.name)
        scope = trio.CancelScope()
        self.drivers.append((driver, scope))
        self._nursery.start_soon(self._run_driver, driver, scope)
        self.kick()
        return driver

    async def _run_driver(self, driver: Driver, scope: trio.CancelScope) -> None:
        with scope:
            try:
                await driver.run()
            except Exception as exc:
                self.log(slog.ERROR, f"{driver.name}: receive task failed: {type(exc).__name__}: {exc}")

    def unload_driver(self, driver: Driver) -> None:
        for entry in list(self.drivers):
            if entry[0] is driver:
                self.drivers.remove(entry)
                entry[1].cancel()
        for iface in list(driver.interfaces):
            if iface.index in self.stack.interfaces:
                self.stack.detach(iface)
        try:
            driver.detach()
        except Exception as exc:
            self.log(slog.ERROR, f"{driver.name}: detach failed: {exc}")
        self.kick()

    def shutdown(self) -> None:
        """Stop drivers in order (SIGTERM path): cancel receive tasks, then detach."""
        for driver, _ in list(reversed(self.drivers)):
            self.unload_driver(driver)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
