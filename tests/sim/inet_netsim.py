"""A discrete-event network of Stacks joined by in-memory Ethernet links (virtual clock).

Each ``Link`` is a wire between two interfaces: frames a stack queues on one end's
``txq`` are handed to the other stack's ``input`` (smoltcp's netsim, h11's
ConnectionPair). ``Net.run(until)`` alternates delivery and timers: it polls every stack
at ``now``, moves frames until nothing moves, then jumps the clock to the earliest
``poll_at`` (or ``until``). Everything is deterministic for a given seed.
"""

import ipaddress

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER
from iopkt_fs.stack.stack import Stack


def mac(n: int) -> bytes:
    return bytes((0x02, 0, 0, 0, 0, n))


def make_stack(seed: int = 1, **config) -> Stack:
    return Stack(StackConfig(seed=seed, **config))


def add_ether(stack: Stack, n: int, address: str | None = None, prefix: str = "en"):
    """An Ethernet interface with MAC 02:00:00:00:00:n and, optionally, ``address/len``."""
    iface = stack.new_interface(prefix, None, kind=IFT_ETHER, mac=mac(n),
                                flags=IFF_BROADCAST | IFF_MULTICAST | IFF_SIMPLEX)
    if address is not None:
        addr, plen = address.split("/")
        stack.add_address(iface, ipaddress.ip_address(addr), int(plen))
    return iface


class Link:
    def __init__(self, a, a_iface, b, b_iface):
        self.ends = {id(a_iface): (b, b_iface), id(b_iface): (a, a_iface)}
        self.frames = 0
        self.tap: list | None = None      # set to a list to record (src iface, frame)
        self.drop = None                  # callable(frame) -> True to lose it


class Net:
    def __init__(self):
        self.stacks: list[Stack] = []
        self.links: list[Link] = []
        self._peer: dict[int, tuple[Link, Stack, object]] = {}
        self.now = 0
        self.unlinked: list[tuple[object, bytes]] = []   # frames sent on unconnected ifaces

    def add(self, stack: Stack) -> Stack:
        self.stacks.append(stack)
        return stack

    def link(self, a: Stack, a_iface, b: Stack, b_iface) -> Link:
        link = Link(a, a_iface, b, b_iface)
        self.links.append(link)
        self._peer[id(a_iface)] = (link, b, b_iface)
        self._peer[id(b_iface)] = (link, a, a_iface)
        return link

    def hub(self, *members) -> Link:
        """A shared segment: every frame reaches every other (stack, iface) member."""
        link = Link.__new__(Link)
        link.frames, link.tap, link.drop = 0, None, None
        for stack, iface in members:
            others = [(s, i) for s, i in members if i is not iface]
            self._peer[id(iface)] = (link, None, others)
        self.links.append(link)
        return link

    def step(self) -> int:
        """Poll every stack at ``now`` and deliver frames until quiet; frames moved."""
        moved = 0
        for _ in range(1000):
            batch = 0
            for stack in self.stacks:
                stack.poll(self.now)
                for iface in stack.take_tx():
                    frames = list(iface.txq)
                    iface.txq.clear()
                    peer = self._peer.get(id(iface))
                    if peer is None:
                        self.unlinked.extend((iface, f) for f in frames)
                        continue
                    link, other, other_iface = peer
                    if link.tap is not None:
                        link.tap.extend((iface, bytes(f)) for f in frames)
                    if link.drop is not None:
                        frames = [f for f in frames if not link.drop(f)]
                    link.frames += len(frames)
                    batch += len(frames)
                    if other is None:             # a hub: everyone else hears it
                        for s, i in other_iface:
                            s.input(i, frames, self.now)
                    else:
                        other.input(other_iface, frames, self.now)
            moved += batch
            if not batch and all(s.poll_at() != 0 for s in self.stacks):
                break
        return moved

    def run(self, until: int | None = None, *, duration: int | None = None) -> None:
        """Advance the clock to ``until`` (or by ``duration``), firing timers on the way."""
        if duration is not None:
            until = self.now + duration
        assert until is not None
        while True:
            self.step()
            deadlines = [d for s in self.stacks if (d := s.poll_at()) is not None]
            nxt = min(deadlines, default=None)
            if nxt is None or nxt > until:
                self.now = max(self.now, until)
                self.step()
                return
            self.now = max(self.now, nxt)


def pair(seed: int = 1, **config):
    """Two stacks, A (10.0.0.1) and B (10.0.0.2) on 10.0.0.0/24."""
    net = Net()
    a = net.add(make_stack(seed, **config))
    b = net.add(make_stack(seed + 1, **config))
    ea = add_ether(a, 1, "10.0.0.1/24")
    eb = add_ether(b, 2, "10.0.0.2/24")
    net.link(a, ea, b, eb)
    return net, a, b, ea, eb


def triple(seed: int = 1, forward: bool = True, **config):
    """A (10.1.0.1) -- R (10.1.0.254 | 10.2.0.254) -- B (10.2.0.1), default routes via R."""
    net = Net()
    a = net.add(make_stack(seed, **config))
    r = net.add(make_stack(seed + 1, forward=forward, **config))
    b = net.add(make_stack(seed + 2, **config))
    ea = add_ether(a, 1, "10.1.0.1/24")
    r1 = add_ether(r, 2, "10.1.0.254/24")
    r2 = add_ether(r, 3, "10.2.0.254/24")
    eb = add_ether(b, 4, "10.2.0.1/24")
    net.link(a, ea, r, r1)
    net.link(r, r2, b, eb)
    a.inet.route_add("default", "10.1.0.254")
    b.inet.route_add("default", "10.2.0.254")
    return net, a, r, b
