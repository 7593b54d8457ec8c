"""devnp-shim: runs old io-net style (``devn-*``) drivers under the native driver contract.

On QNX, io-pkt loads an io-net driver (a DLL exporting ``io_net_dll_entry``) through
devnp-shim.so, which translates io-net's calls into io-pkt's. Here the same: a module that
exports ``io_net_dll_entry`` is a *legacy* driver, ``registry`` says so, and
``runtime.load_driver`` calls ``wrap()`` below instead of constructing a native driver.

The legacy interface (io-net generation 1) - deliberately unlike ``drivers/base.py``:

* ``io_net_dll_entry`` is a class; the shim instantiates it with no arguments.
* ``drv.init(ion, options) -> int``: ``options`` is the raw option string (or ""), parsed
  by the driver itself. The driver registers each NIC with ``ion.reg(...)`` and returns
  0 (EOK) or an errno number; a failed init should ``ion.log`` why first.
* ``drv.rx_down(lan, frame) -> int``: transmit one frame (io-net named directions from
  the stack's side: a packet going *down* to the driver). 0 is sent; any errno (EAGAIN: no
  room) is a refusal the shim counts in ``oerrors``. Called once per frame.
* ``drv.pulse(now)`` (optional): the periodic timer io-net drivers lived on, called at the
  interval requested with ``ion.set_pulse(ms)``; here the driver polls its hardware and
  hands received frames up with ``ion.tx_up(lan, frame)``. No file descriptors, no trio.
* ``drv.shutdown()``: release everything; called once at unload.

What the shim offers the driver (``IonetSelf``, io-net's ``io_net_self_t``):
``reg(mac, mtu=1500, description="") -> lan``, ``tx_up(lan, frame)``,
``set_pulse(ms | None)``, ``is_up(lan) -> bool`` (the stack side is ``ifconfig ... up``),
``log(severity, text)``, ``now() -> float`` seconds.

Options: ``name=`` and ``unit=`` mean nothing to io-net drivers, so they are refused with
the "unknown option" error and the driver is not loaded, as on QNX. ``lan=N`` picks the
``enN`` number (io-net's own option); ``shimrxcopy=0|1`` (devnp-shim's) is accepted and
has no effect (frames are immutable ``bytes`` here, never loaned buffers). Generic
``fault_*`` options were already taken by the runtime.

Interfaces are named ``enN`` and carry the SHIM flag. For the filesystem: each shim driver
exposes ``ionet_nodes()`` -> ``{"enN": Interface}``; ``ionet_nodes(runtime)`` (module level)
gathers ``{"enN": (driver, iface)}`` over every loaded legacy driver. ``P/dev/io-net/enN``
should list exactly those, and ``umount P/dev/io-net/enN`` is
``runtime.unload_driver(driver)`` (which unloads the whole legacy driver, all its enN).
"""

import errno
import os
from typing import TYPE_CHECKING

import trio

from ..stack import slog
from ..stack.errors import StackError
from ..stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFF_UP, IFT_ETHER, Interface
from .base import Driver, DriverOptions

if TYPE_CHECKING:
    from ..runtime import Runtime

SHIM_OPTIONS = ("lan", "shimrxcopy")
REFUSED = ("name", "unit")
EOK = 0


class IonetSelf:
    """What a legacy driver may call (io-net's ``io_net_self_t``), bound to one shim."""

    def __init__(self, shim: "ShimDriver"):
        self._shim = shim

    def reg(self, mac: bytes, mtu: int = 1500, description: str = "") -> int:
        return self._shim._register(bytes(mac), int(mtu), description)

    def tx_up(self, lan: int, frame) -> None:
        self._shim._up(lan, frame)

    def set_pulse(self, ms: int | None) -> None:
        self._shim._set_pulse(ms)

    def is_up(self, lan: int) -> bool:
        iface = self._shim.lans.get(lan)
        return iface is not None and bool(iface.flags & IFF_UP)

    def log(self, severity: int, text: str) -> None:
        self._shim._log(severity, text)

    def now(self) -> float:
        return trio.current_time()


class ShimDriver(Driver):
    """A native driver whose work is done by a legacy io-net driver object."""

    legacy = True

    def __init__(self, ctx, options: DriverOptions, entry: type, name: str):
        super().__init__(ctx, options)
        self.name = name
        self.description = getattr(entry, "description", "") or f"io-net driver {name}"
        self.entry = entry
        self.obj = None
        self.ion = IonetSelf(self)
        self.lans: dict[int, Interface] = {}
        self._lan_of: dict[int, int] = {}      # id(iface) -> lan
        self._pending: dict[int, list] = {}
        self._pulse: float | None = None
        self._next_pulse = float("inf")
        self._wake = trio.Event()
        self._last_error: str | None = None

    # -- attach / detach --------------------------------------------------------------------

    def attach(self):
        rest = [(k, v) for k, v in self.options.items if k not in SHIM_OPTIONS]
        text = ",".join(k if v is None else f"{k}={v}" for k, v in rest)
        obj = self.entry()
        try:
            rc = obj.init(self.ion, text)
            if rc != EOK:
                raise StackError(rc, self._last_error or os.strerror(rc))
            if not self.interfaces:
                raise StackError(errno.ENODEV, "the driver registered no device")
        except BaseException:
            # Nothing of a failed init stays: the driver's state, nor the enN it registered.
            self._shutdown(obj)
            for iface in self.interfaces:
                if iface.index in self.ctx.stack.interfaces:
                    self.ctx.stack.detach(iface)
            self.interfaces, self.lans, self._lan_of = [], {}, {}
            raise
        self.obj = obj
        return self.interfaces

    def _shutdown(self, obj) -> None:
        try:
            obj.shutdown()
        except Exception as exc:  # a legacy driver failing to clean up must not stop us
            self._log(slog.ERROR, f"shutdown: {type(exc).__name__}: {exc}")

    def detach(self):
        obj, self.obj = self.obj, None
        if obj is not None:
            self._shutdown(obj)
        self._wake.set()
        self.interfaces = []
        self.lans, self._lan_of = {}, {}

    def ionet_nodes(self) -> dict[str, Interface]:
        """``enN`` -> interface: the ``/dev/io-net`` entries this driver owns."""
        return {iface.name: iface for iface in self.interfaces}

    # -- the io-net side ----------------------------------------------------------------------

    def _register(self, mac: bytes, mtu: int, description: str) -> int:
        if len(mac) != 6 or mac[0] & 1:
            raise StackError(errno.EINVAL, "reg: a station MAC is 6 bytes, unicast")
        iface = self.ctx.new_interface(
            "en", kind=IFT_ETHER, mtu=mtu, mac=mac,
            flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST,
            media="Ethernet autoselect", description=description or self.description)
        iface.driver = self
        lan = int(iface.name[2:])
        self.lans[lan] = iface
        self._lan_of[id(iface)] = lan
        self.interfaces.append(iface)
        return lan

    def _up(self, lan: int, frame) -> None:
        if lan not in self.lans:
            return
        self._pending.setdefault(lan, []).append(frame)
        self._wake.set()

    def _set_pulse(self, ms: int | None) -> None:
        self._pulse = None if ms is None else max(ms, 1) / 1000.0
        self._next_pulse = float("inf") if ms is None else trio.current_time() + self._pulse
        self._wake.set()

    def _log(self, severity: int, text: str) -> None:
        if severity <= slog.ERROR or "unknown option" in text:
            self._last_error = text
        self.ctx.log(severity, f"{self.name}: {text}")

    # -- the native side ----------------------------------------------------------------------

    async def run(self):
        while self.obj is not None:
            with trio.move_on_at(self._next_pulse):
                await self._wake.wait()
            self._wake = trio.Event()
            obj = self.obj
            if obj is None:
                return
            now = trio.current_time()
            if now >= self._next_pulse and self._pulse is not None:
                self._next_pulse = now + self._pulse
                pulse = getattr(obj, "pulse", None)
                if pulse is not None:
                    try:
                        pulse(now)
                    except Exception as exc:
                        self._log(slog.ERROR, f"pulse: {type(exc).__name__}: {exc}")
            self._deliver()

    def _deliver(self) -> None:
        """One ``ctx.input`` per lan per turn: the batch io-net's tx_up calls added up to."""
        pending, self._pending = self._pending, {}
        for lan, frames in pending.items():
            iface = self.lans.get(lan)
            if iface is not None and frames:
                self.ctx.input(iface, frames)

    def transmit(self, iface, frames):
        obj = self.obj
        lan = self._lan_of.get(id(iface), -1)
        if obj is None or self.lans.get(lan) is not iface:
            iface.stats.oerrors += len(frames)
            return
        for frame in frames:
            try:
                rc = obj.rx_down(lan, bytes(frame))
            except Exception:
                rc = errno.EIO
            if rc != EOK:
                iface.stats.oerrors += 1


def wrap(runtime: "Runtime", resolved, opts: DriverOptions) -> tuple[ShimDriver, object]:
    """Build the shim around legacy driver ``resolved`` (what ``runtime.load_driver`` calls).

    Refuses ``name=``/``unit=`` (StackError EINVAL "unknown option ..."); the caller logs it
    as ``Unable to init <driver>: ...`` and nothing is loaded.
    """
    from ..runtime import _Context  # noqa: PLC0415 - runtime imports us lazily; no cycle

    for key, _ in opts.items:
        if key in REFUSED:
            raise StackError(errno.EINVAL, f"unknown option {key!r}")
    lan = opts.get_int("lan", None, minimum=0)
    ctx = _Context(runtime, "en", lan)
    ctx.legacy = True   # new_interface sets IFF_SHIM
    return ShimDriver(ctx, opts, resolved.entry, resolved.name), ctx


def ionet_nodes(runtime: "Runtime") -> dict[str, tuple[ShimDriver, Interface]]:
    """Every ``/dev/io-net/enN`` of ``runtime``: name -> (the shim driver, its interface)."""
    nodes = {}
    for driver, _scope in runtime.drivers:
        if isinstance(driver, ShimDriver):
            for name, iface in driver.ionet_nodes().items():
                nodes[name] = (driver, iface)
    return nodes
