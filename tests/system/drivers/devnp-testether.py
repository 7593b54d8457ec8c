"""A driver for tests, loaded by path: Ethernet interfaces with no wire behind them.

Options: ``count=N`` interfaces (default 1), ``mac=``, ``nolink`` (carrier down),
``slowstats=MS`` (refreshing counters takes that long, off the loop: a slow device query).
Transmitted frames are kept in ``sent`` so a test could look at them.
"""

import errno

import trio

from iopkt_fs.drivers.base import Driver
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER


class TestEther(Driver):
    name = "devnp-testether"
    description = "Test Ethernet Controller"

    def attach(self):
        self.options.check_known({"count", "mac", "nolink", "slowstats", "fail"})
        if self.options.get_flag("fail"):
            raise StackError(errno.ENODEV, "no such device")
        count = self.options.get_int("count", 1, minimum=1, maximum=8)
        self.delay = self.options.get_int("slowstats", 0, minimum=0) / 1000
        base = bytes.fromhex(self.options.get("mac", "02:00:5e:00:00:10").replace(":", ""))
        self.sent = []
        for i in range(count):
            mac = base[:5] + bytes([(base[5] + i) & 0xFF])
            iface = self.ctx.new_interface(
                "te", kind=IFT_ETHER, mac=mac, mtu=1500,
                flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST,
                media="Ethernet autoselect (1000baseT full-duplex)", description=self.description,
                link_up=not self.options.get_flag("nolink"))
            self.interfaces.append(iface)
        return self.interfaces

    def transmit(self, iface, frames):
        self.sent.extend(frames)

    async def refresh_stats(self, iface):
        if self.delay:
            await trio.to_thread.run_sync(_sleep, self.delay)

    def destroy_interface(self, iface):
        self.interfaces.remove(iface)


def _sleep(seconds):
    import time
    time.sleep(seconds)


iopkt_drvr_entry = TestEther
