"""Runtime.input, the way every driver batch enters: stamped with the run's clock, and the
batch's answers handed to the driver before input returns."""

import trio

from iopkt_fs.runtime import Runtime, _Context
from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_UP
from iopkt_fs.stack.stack import Stack


class Recorder:
    def __init__(self):
        self.sent: list[bytes] = []

    def transmit(self, iface, frames):
        self.sent.extend(bytes(f) for f in frames)


def setup():
    stack = Stack(StackConfig(seed=3))
    rt = Runtime(stack)
    iface = stack.new_interface("tt", 0)
    iface.flags |= IFF_UP
    iface.driver = Recorder()
    return stack, rt, iface


async def test_a_batch_is_stamped_with_the_runs_clock_in_microseconds(nursery, autojump_clock):
    """Runtime.input reads the clock of the trio run it drives (set by run()), and now_us()
    outside one: either way the stack sees trio.current_time() in microseconds."""
    stack, rt, iface = setup()
    rt.input(iface, [])                        # before run(): now_us()
    assert stack.last_now == int(trio.current_time() * 1_000_000)
    await nursery.start(rt.run)
    await trio.sleep(12.5)                     # the autojump clock moves on
    rt.input(iface, [])
    assert stack.last_now == int(trio.current_time() * 1_000_000)
    nursery.cancel_scope.cancel()


async def test_a_drivers_context_hands_batches_and_holds_to_the_runtime():
    stack, rt, iface = setup()
    ctx = _Context(rt, None, None)
    ctx.hold()
    stack.transmit(iface, b"answer")
    ctx.input(iface, [])
    assert iface.driver.sent == [b"answer"]    # out at once, inside the hold
    woken = []
    sock = stack.tcp.socket()
    rt.readiness.watch(sock, lambda: woken.append(1))
    stack.notify_socket(sock)
    ctx.input(iface, [])
    assert woken == []
    ctx.release()
    assert woken == [1]


async def test_with_trios_system_clock_a_batch_reads_the_same_time(nursery):
    """Under trio's SystemClock (offset + perf_counter) the runtime adds the offset
    itself: the stamp lies between two trio.current_time() reads around the batch."""
    stack, rt, iface = setup()
    await nursery.start(rt.run)
    assert rt._offset == trio.lowlevel.current_clock().offset
    before = int(trio.current_time() * 1_000_000)
    rt.input(iface, [])
    now = rt.now()
    after = int(trio.current_time() * 1_000_000)
    assert before <= stack.last_now <= now <= after
    nursery.cancel_scope.cancel()
