"""The request limiter (resmgr/limiter.py): io-pkt's threads_max as a bound on requests
being served, and the handler wrapper's written-out fast path (resmgr/ops.py)."""

import pyfuse3
import trio
import trio.testing

from iopkt_fs.resmgr import ops
from iopkt_fs.resmgr.limiter import RequestLimiter


async def _waiter(lim: RequestLimiter, got: list, name: str, task_status=trio.TASK_STATUS_IGNORED):
    task_status.started()
    await lim.enter()
    got.append(name)


async def test_a_freed_slot_passes_to_the_longest_waiter(nursery):
    logged = []
    lim = RequestLimiter(1, log=lambda level, text: logged.append(text))
    assert lim.try_enter()
    got = []
    await nursery.start(_waiter, lim, got, "first")
    await nursery.start(_waiter, lim, got, "second")
    await trio.testing.wait_all_tasks_blocked()
    assert (lim.serving, lim.waiting, lim.exhausted) == (1, 2, 2)
    assert logged == ['Threads exhausted.  See "threads_max" option']   # once
    assert not lim.try_enter()      # no barging past the waiters
    lim.leave()
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["first"] and (lim.serving, lim.waiting) == (1, 1)
    lim.leave()
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["first", "second"] and (lim.serving, lim.waiting) == (1, 0)
    lim.leave()
    assert (lim.serving, lim.waiting) == (0, 0)


async def test_a_cancelled_waiter_is_no_longer_counted(nursery):
    lim = RequestLimiter(1)
    assert lim.try_enter()
    got = []
    await nursery.start(_waiter, lim, got, "kept")
    await trio.testing.wait_all_tasks_blocked()     # parked first
    gone = trio.CancelScope()

    async def cancelled():
        with gone:
            await lim.enter()
        got.append("cancelled")
    nursery.start_soon(cancelled)
    await trio.testing.wait_all_tasks_blocked()
    assert lim.waiting == 2
    gone.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["cancelled"] and lim.waiting == 1
    # The slot goes to the waiter still there, not to the one that left.
    lim.leave()
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["cancelled", "kept"] and (lim.serving, lim.waiting) == (1, 0)
    lim.leave()
    assert lim.try_enter() and lim.serving == 1


class _Ops:
    def __init__(self, slots):
        self.limiter = RequestLimiter(slots)
        self.log = lambda *a: None

    @ops._served
    async def answer(self, value):
        return value

    @ops._served
    async def park(self, event):
        await event.wait()
        return "woken"


async def test_a_served_request_takes_and_returns_its_slot(nursery):
    o = _Ops(1)
    assert await o.answer(7) == 7
    assert (o.limiter.serving, o.limiter.peak) == (0, 1)
    # With the one slot held by a request that waits, the next waits for the slot and
    # gets it when the first returns it.
    event, got = trio.Event(), []

    async def run(fn, *args):
        got.append(await fn(*args))
    nursery.start_soon(run, o.park, event)
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(run, o.answer, "second")
    await trio.testing.wait_all_tasks_blocked()
    assert (o.limiter.serving, o.limiter.waiting, got) == (1, 1, [])
    event.set()
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["woken", "second"]
    assert (o.limiter.serving, o.limiter.waiting, o.limiter.peak) == (0, 0, 1)


async def test_a_refused_request_returns_its_slot():
    o = _Ops(1)

    @ops._served
    async def refuse(self):
        raise pyfuse3.FUSEError(13)
    try:
        await refuse(o)
    except pyfuse3.FUSEError as exc:
        assert exc.errno == 13
    else:
        raise AssertionError("no FUSEError")
    assert o.limiter.serving == 0 and o.limiter.try_enter()
