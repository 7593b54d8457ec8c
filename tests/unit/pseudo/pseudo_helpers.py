"""Driving the core's pseudo-interfaces without a runtime: what runtime.flush does."""

import ipaddress

from iopkt_fs.stack.config import V4_HC, StackConfig
from iopkt_fs.stack.stack import Stack


def stack(variant=V4_HC, **config) -> Stack:
    return Stack(StackConfig(variant=variant, seed=5, **config))


def pump(s: Stack, now: int = 0) -> None:
    """One runtime turn: timers and loopback, then every queued frame to its driver
    (several passes: a vlan queues on its parent)."""
    s.poll(now)
    for _ in range(4):
        pending = s.take_tx()
        if not pending:
            return
        for iface in pending:
            frames = list(iface.txq)
            iface.txq.clear()
            iface.driver.transmit(iface, frames)


def addr(text: str):
    return ipaddress.ip_address(text)
