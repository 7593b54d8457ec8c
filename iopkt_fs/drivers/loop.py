"""devnp-loop: software loopback interfaces (lo0 is made by the stack itself at start).

``-d loop`` (or ``mount -T io-pkt devnp-loop``) attaches one more ``loN``; so does
``ifconfig loN create`` through the stack's ``lo`` cloner. Frames never leave the core:
``Stack.transmit`` loops them back at the next poll, so ``transmit`` here is never called.
"""

from .base import Driver


class LoopDriver(Driver):
    name = "devnp-loop"
    description = "Software Loopback"

    def attach(self):
        self.options.check_known(set())
        iface = self.ctx.stack.create_loopback(self.ctx.name_prefix or "lo", self.ctx.unit)
        iface.driver = self
        self.interfaces = [iface]
        return self.interfaces

    def transmit(self, iface, frames):  # pragma: no cover - the core loops frames back
        pass

    def destroy_interface(self, iface):
        self.interfaces.remove(iface)

    def detach(self):
        for iface in self.interfaces:
            if iface.index in self.ctx.stack.interfaces:
                self.ctx.stack.detach(iface)
        self.interfaces = []


iopkt_drvr_entry = LoopDriver
