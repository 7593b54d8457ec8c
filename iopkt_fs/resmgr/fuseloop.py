"""pyfuse3's request loop at one trio task step a request.

pyfuse3 3.5 serves requests with a pool of worker tasks. A worker takes a lock, waits for
``/dev/fuse`` to become readable, releases the lock, reads one request and runs its
handler inline. With trio's ``Lock`` the release wakes the next worker at once, so every
request costs two task steps: the worker the request woke, and the next one, which only
re-arms the wait and sleeps again. Most requests here are answered without waiting (a
status read, a data READ from a full buffer), so the worker that served one could just
wait again itself; the second step, the lock's bookkeeping and the second epoll re-arm
are pure overhead (about a quarter of the user CPU of a minimal pyfuse3 file's READ).

The ``Baton`` is that lock, lazy: released normally, it wakes nobody, because the worker
that released it will be back for it as soon as its request is answered. It is passed
to a waiting worker only when that is no longer true:

* the request's handler suspends (it parks for data, waits for a slot): ``ops`` drives
  each handler coroutine and calls ``Baton.suspending`` the first time it yields;
* the worker ends (unmount, the session's exit flag, too many idle workers): the session
  loop is wrapped so its end always passes the baton on;
* the wait itself failed (``ClosedResourceError`` on terminate): passed at once, as
  trio's lock would.

So at any moment either a worker waits on ``/dev/fuse``, or the one that will is running
without having yielded. pyfuse3's own accounting (``active_readers``, which starts a new
worker when none is waiting) is untouched: a worker parked here still counts as waiting.

The same points order a request's reply before the frames it queued
(``send_after_reply``): a socket call from a handler leaves its frames in the stack's
transmit queues, and they are written when the worker comes back for the baton, just
after pyfuse3 sent the reply, or before the handler first yields (it may be waiting for
the answer to them), or when the worker ends. The closing ``echo close > ctl`` of a
shell server then returns before our TAP write of its FIN runs the kernel's receive
path (three quarters of that request's time, py-spy), and bash's next fork overlaps it.

The hook is pyfuse3's own seam for its event loop (``pyfuse3.asyncio`` replaces the
module's ``trio`` the same way): the module global ``trio`` becomes a copy of trio's
namespace whose ``Lock`` is the baton, and ``_session_loop`` (looked up as a module global
when a worker starts) is wrapped. ``install`` checks the version it was written for and
otherwise leaves pyfuse3 as it is.
"""

import types

import pyfuse3
import trio

# The pyfuse3 releases whose worker loop this module was written against (internal.pxi:
# _wait_fuse_readable and _session_loop).
SUPPORTED = ("3.5.",)


class Baton:
    """The lock pyfuse3's workers take around waiting for /dev/fuse (see the module)."""

    __slots__ = ("held", "_lot", "workers", "kept", "passed", "queued", "send_queued",
                 "sent_after_reply")

    def __init__(self):
        self.held = False
        self._lot = trio.lowlevel.ParkingLot()
        self.workers = 0     # worker tasks alive
        self.kept = 0        # waits begun by taking a free baton (no task step of their own)
        self.passed = 0      # times it went to a parked worker
        # send_after_reply: true while frames wait to be sent (the stack's tx_pending),
        # and what sends them (Runtime.flush); None: handlers send their own.
        self.queued = None
        self.send_queued = None
        self.sent_after_reply = 0     # times a worker sent frames once its reply was out

    def send_after_reply(self, queued, send) -> None:
        self.queued, self.send_queued = queued, send

    def send_now(self) -> None:
        """Write the frames the running request queued (see the module)."""
        if self.queued:
            self.send_queued()

    async def __aenter__(self):
        if self.queued:                 # back from a reply: its frames go now
            self.sent_after_reply += 1
            self.send_queued()
        if not self.held:
            self.held = True
            self.kept += 1
            return
        await self._lot.park()          # woken holding it (_pass)

    async def __aexit__(self, exc_type, exc, tb):
        self.held = False
        if exc_type is not None:        # the wait failed (terminate): the next one sees why
            self._pass()

    def _pass(self) -> None:
        if not self.held and self._lot:
            self.held = True
            self.passed += 1
            self._lot.unpark()

    def suspending(self) -> None:
        """The running worker's request is about to yield to trio: if nobody waits on
        /dev/fuse, a parked worker must, or the mount stalls behind this request. Its
        frames go first: what it waits for may be the answer to them."""
        if self.queued:
            self.send_queued()
        if not self.held and self._lot:
            self._pass()

    @property
    def standby(self) -> int:
        return len(self._lot)


BATON = Baton()


def _trio_for_pyfuse3() -> types.ModuleType:
    # A module, not a proxy: pyfuse3 looks up trio.lowlevel.wait_readable on every
    # request, and a __getattr__ would be a Python call each time.
    mod = types.ModuleType("trio", "trio, as pyfuse3's worker loop sees it")
    mod.__dict__.update({k: v for k, v in vars(trio).items() if not k.startswith("__")})
    mod.Lock = lambda: BATON
    return mod


def _wrap_session_loop(stock):
    # pyfuse3 wraps its Cython loop in a Python coroutine (async_wrapper: trio wants a
    # Python one at the top of a task); this wrapper is one already, so it awaits the
    # Cython loop itself - a frame less to resume on every request.
    loop = getattr(stock, "__wrapped__", stock)

    async def _session_loop(*args, **kwargs):
        BATON.workers += 1
        try:
            return await loop(*args, **kwargs)
        finally:
            BATON.workers -= 1
            BATON.send_now()
            BATON._pass()   # it may have ended between taking a request and coming back
    _session_loop.stock = stock
    return _session_loop


def install() -> bool:
    """Put the baton into pyfuse3's worker loop; False (and pyfuse3 untouched) if this
    pyfuse3 is not one the loop was written for. Idempotent."""
    loop = getattr(pyfuse3, "_session_loop", None)
    if loop is None or not hasattr(pyfuse3, "_wait_fuse_readable") \
            or not getattr(pyfuse3, "__version__", "").startswith(SUPPORTED):
        return False
    if not hasattr(loop, "stock"):
        pyfuse3.trio = _trio_for_pyfuse3()
        pyfuse3._session_loop = _wrap_session_loop(loop)
    return True


@types.coroutine
def resume(coro, signal):
    """Drive ``coro``, which has just yielded ``signal`` to trio, to its end, passing
    trio's answers through (send, throw, close) unchanged. Each time it yields again,
    the frames it queued since are sent first, as on its first yield."""
    while True:
        BATON.send_now()
        try:
            answer = yield signal
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:    # noqa: BLE001 - thrown in: the coroutine decides
            try:
                signal = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                signal = coro.send(answer)
            except StopIteration as done:
                return done.value
