"""The baton pyfuse3's workers wait under (resmgr/fuseloop.py) and the handler wrappers
that tell it when a request suspends (resmgr/ops.py)."""

import errno
import inspect

import pyfuse3
import pytest
import trio

from iopkt_fs.resmgr import fuseloop, ops
from iopkt_fs.resmgr.limiter import RequestLimiter


async def _standby(baton: fuseloop.Baton, got: list, task_status=trio.TASK_STATUS_IGNORED):
    """A second worker: parks on the baton until it is passed, then holds it."""
    task_status.started()
    async with baton:
        got.append("took")
        await trio.sleep_forever()


async def test_a_released_baton_wakes_nobody_and_its_worker_takes_it_back(nursery):
    baton = fuseloop.Baton()
    got = []
    async with baton:                       # worker 1 waits on /dev/fuse
        await nursery.start(_standby, baton, got)
        await trio.testing.wait_all_tasks_blocked()
        assert baton.standby == 1
    # Worker 1 read a request and answered it without yielding: nobody was woken, and
    # the next wait is worker 1's again.
    await trio.testing.wait_all_tasks_blocked()
    assert got == [] and baton.standby == 1
    async with baton:
        assert baton.kept == 2 and baton.passed == 0
    nursery.cancel_scope.cancel()


async def test_a_suspending_request_passes_the_baton(nursery):
    baton = fuseloop.Baton()
    got = []
    async with baton:
        await nursery.start(_standby, baton, got)
        await trio.testing.wait_all_tasks_blocked()
    baton.suspending()                      # worker 1's handler is about to park
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["took"] and baton.passed == 1 and baton.held
    baton.suspending()                      # held already: nothing more to pass
    assert baton.passed == 1
    nursery.cancel_scope.cancel()


async def test_a_failed_wait_passes_the_baton_at_once(nursery):
    baton = fuseloop.Baton()
    got = []
    with pytest.raises(trio.ClosedResourceError):
        async with baton:
            await nursery.start(_standby, baton, got)
            await trio.testing.wait_all_tasks_blocked()
            raise trio.ClosedResourceError("terminate")
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["took"] and baton.passed == 1
    nursery.cancel_scope.cancel()


async def test_a_worker_that_ends_passes_the_baton(nursery):
    baton = fuseloop.Baton()
    got = []

    async def session_loop():
        async with baton:
            await nursery.start(_standby, baton, got)
            await trio.testing.wait_all_tasks_blocked()
        # ends between taking a request and coming back (unmount, exit flag)

    saved = fuseloop.BATON
    fuseloop.BATON = baton
    try:
        await fuseloop._wrap_session_loop(session_loop)()
    finally:
        fuseloop.BATON = saved
    await trio.testing.wait_all_tasks_blocked()
    assert got == ["took"] and baton.passed == 1 and baton.workers == 0
    nursery.cancel_scope.cancel()


class _Adapter:
    """What the wrappers need of Operations: a limiter and a log."""

    def __init__(self):
        self.limiter = RequestLimiter(4)
        self.logged = []

    def log(self, level, text):
        self.logged.append(text)

    @ops._served
    async def at_once(self, x):
        return x * 2

    @ops._served
    async def after_a_wait(self, x):
        await trio.sleep(1)
        return x * 3

    @ops._served
    async def broken_after_a_wait(self):
        await trio.sleep(1)
        raise ValueError("a bug")

    @ops._guarded
    async def forever(self):
        await trio.sleep_forever()


@pytest.fixture
def baton(monkeypatch):
    b = fuseloop.Baton()
    monkeypatch.setattr(ops, "BATON", b)
    monkeypatch.setattr(fuseloop, "BATON", b)     # resume() looks it up there
    return b


async def test_a_handler_answered_at_once_never_passes_the_baton(baton, nursery):
    got = []
    async with baton:
        await nursery.start(_standby, baton, got)
    a = _Adapter()
    assert await a.at_once(21) == 42
    assert baton.passed == 0 and a.limiter.serving == 0
    nursery.cancel_scope.cancel()


async def test_a_handler_that_waits_passes_it_and_still_answers(baton, nursery, autojump_clock):
    got = []
    async with baton:
        await nursery.start(_standby, baton, got)
    a = _Adapter()
    assert await a.after_a_wait(5) == 15
    assert baton.passed == 1 and got == ["took"] and a.limiter.serving == 0
    nursery.cancel_scope.cancel()


async def test_a_bug_after_a_wait_is_eio_and_logged(baton, autojump_clock):
    a = _Adapter()
    with pytest.raises(pyfuse3.FUSEError) as err:
        await a.broken_after_a_wait()
    assert err.value.errno == errno.EIO
    assert "ValueError: a bug" in a.logged[0]


async def test_cancellation_reaches_a_suspended_handler(baton, autojump_clock):
    a = _Adapter()
    with trio.move_on_after(5) as scope:
        await a.forever()
    assert scope.cancelled_caught


def test_every_request_handler_tells_the_baton_when_it_suspends():
    """A handler that yielded without passing the baton would stall the mount."""
    for name, fn in vars(ops.Operations).items():
        stock = getattr(pyfuse3.Operations, name, None)
        if stock is not None and inspect.iscoroutinefunction(stock):
            assert getattr(fn, "watched", False), name


async def test_frames_queued_before_each_wait_are_sent_before_it(baton, autojump_clock):
    """A handler that queues frames and then waits (perhaps for the answer to them) has
    them sent at each of its yields, not only once it is answered."""
    queued, log = {}, []

    def send():
        log.append(sorted(queued))
        queued.clear()
    baton.send_after_reply(queued, send)

    class Handler(_Adapter):
        @ops._served
        async def two_waits(self):
            queued["first"] = 1
            await trio.sleep(1)
            log.append("resumed")
            queued["second"] = 1
            await trio.sleep(1)
            log.append("resumed")
            queued["last"] = 1          # answered: the worker sends it after the reply
            return "done"

    assert await Handler().two_waits() == "done"
    assert log == [["first"], "resumed", ["second"], "resumed"]
    assert queued == {"last": 1}
    async with baton:                   # the worker comes back for the next request
        pass
    assert log[-1] == ["last"] and baton.sent_after_reply == 1
