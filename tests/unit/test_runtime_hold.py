"""Runtime.hold/release: inside a driver's poll loop each batch goes through the stack and
out at once, while waking waiters and the after-turn listeners waits for the outermost
release, and then happens once for each socket the batches named."""

from iopkt_fs.runtime import Runtime
from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_UP
from iopkt_fs.stack.stack import Stack


class Recorder:
    def __init__(self):
        self.sent: list[bytes] = []

    def transmit(self, iface, frames):
        self.sent.extend(bytes(f) for f in frames)


async def test_waiters_are_woken_once_at_the_outermost_release():
    stack = Stack(StackConfig(seed=3))
    rt = Runtime(stack)
    iface = stack.new_interface("tt", 0)
    iface.flags |= IFF_UP
    iface.driver = Recorder()
    sock_a, sock_b = stack.tcp.socket(), stack.tcp.socket()
    woken: list[str] = []
    turns: list[int] = []
    rt.readiness.watch(sock_a, lambda: woken.append("a"))
    rt.readiness.watch(sock_b, lambda: woken.append("b"))
    rt.after_turn.append(lambda: turns.append(len(woken)))

    rt.hold()
    rt.hold()                          # nested: two loops, one inside the other
    for i in range(3):
        stack.notify_socket(sock_a)    # what a protocol calls when a socket becomes ready
        stack.transmit(iface, b"frame%d" % i)
        rt.input(iface, [])
        # The batch's output left at once; nobody was woken yet.
        assert iface.driver.sent[-1] == b"frame%d" % i
        assert woken == [] and turns == []
    stack.notify_socket(sock_b)
    rt.input(iface, [])
    rt.release()
    assert woken == [] and turns == []     # still inside the outer loop
    rt.release()
    assert sorted(woken) == ["a", "b"]     # each named socket once, for four batches
    assert turns == [2]                    # after_turn ran once, after the wake-ups

    # Outside a hold every batch wakes at once, as before.
    stack.notify_socket(sock_a)
    rt.input(iface, [])
    assert sorted(woken) == ["a", "a", "b"] and turns == [2, 3]
