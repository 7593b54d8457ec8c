"""The native driver contract (what io-pkt calls ``iopkt_drvr_entry``).

Life of a driver, as the runtime drives it:

1. ``Driver(ctx, options)`` - cheap; keep the options.
2. ``attach()`` - synchronous: open devices, create interfaces through
   ``ctx.new_interface`` (which applies the stack's ``name=``/``unit=``/``lan=``).
   Returns the interfaces made. Raise ``StackError(errno, message)`` to refuse; the
   runtime logs ``Unable to init <driver>: <message>`` and the stack carries on.
3. ``run()`` - one long-lived trio task: wait for the fd to be readable, **drain it in a
   batch** (one trio wakeup costs ~10 us, so never one wakeup per frame), then call
   ``ctx.input(iface, frames)`` once per batch. Cancelled at detach/shutdown.
4. ``transmit(iface, frames)`` - synchronous, never blocks: write what the device takes;
   count what it refuses in ``iface.stats.oerrors``.
5. ``detach()`` - synchronous: close fds, remove what ``attach`` created.

A driver that supports ``ifconfig X destroy`` defines ``destroy_interface(iface)``.
"""

import errno
from typing import ClassVar

from ..stack.errors import StackError
from ..stack.iface.interface import Interface


class DriverOptions:
    """A driver's comma-separated option string, parsed once (``a=1,b,peer=x,peer=y``).

    ``name=``, ``unit=`` and ``lan=`` are consumed by the stack before the driver sees the
    options (reference/qnx.md §1.4); the rest stay, in order, repeatable keys included.
    """

    STACK_KEYS = ("name", "unit", "lan")

    def __init__(self, text: str | None):
        self.text = text
        self.items: list[tuple[str, str | None]] = []
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            self.items.append((key, value if sep else None))
        self._used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _ in self.items)

    def get(self, key: str, default: str | None = None) -> str | None:
        self._used.add(key)
        for k, v in self.items:
            if k == key:
                return v if v is not None else ""
        return default

    def get_all(self, key: str) -> list[str]:
        self._used.add(key)
        return [v or "" for k, v in self.items if k == key]

    def get_int(self, key: str, default: int | None = None, *, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        raw = self.get(key)
        if raw is None:
            return default
        try:
            value = int(raw, 0)
        except ValueError:
            raise StackError(errno.EINVAL, f"option {key}={raw}: not a number") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise StackError(errno.EINVAL, f"option {key}={raw}: out of range")
        return value

    def get_flag(self, key: str) -> bool:
        """A bare ``key`` or ``key=1`` is on; ``key=0`` is off."""
        raw = self.get(key)
        return raw is not None and raw not in ("0", "no", "off")

    def take_stack_options(self) -> tuple[str | None, int | None]:
        """Remove and return (name prefix, unit) for the stack (``lan=`` aliases ``unit=``)."""
        name = unit = None
        rest = []
        for k, v in self.items:
            if k == "name":
                name = v
            elif k in ("unit", "lan"):
                try:
                    unit = int(v or "", 0)
                except ValueError:
                    raise StackError(errno.EINVAL, f"option {k}={v}: not a number") from None
            else:
                rest.append((k, v))
        self.items = rest
        return name, (unit if unit is not None and unit >= 0 else None)

    def check_known(self, known: set[str] | frozenset[str]) -> None:
        """Refuse options the driver does not know, as QNX drivers do ("unknown option")."""
        for k, _ in self.items:
            if k not in known:
                raise StackError(errno.EINVAL, f"unknown option {k!r}")


class DriverContext:
    """What the runtime gives a driver: the stack, frame input, logging, naming."""

    def input(self, iface: Interface, frames: list) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def new_interface(self, default_prefix: str, **fields) -> Interface:  # pragma: no cover
        raise NotImplementedError

    def log(self, severity: int, text: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def hold(self) -> None:
        """A poll loop of several ``input`` calls with no wait between them starts: the
        runtime may leave waking waiters for ``release`` (Runtime.hold). A context
        without that saving does nothing here."""

    def release(self) -> None:
        """The poll loop that ``hold`` began has ended."""


class Driver:
    name: ClassVar[str] = "devnp-unnamed"
    legacy: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def __init__(self, ctx: DriverContext, options: DriverOptions):
        self.ctx = ctx
        self.options = options
        self.interfaces: list[Interface] = []

    def attach(self) -> list[Interface]:
        raise NotImplementedError

    async def run(self) -> None:
        """Receive loop; the default has nothing to receive."""

    def transmit(self, iface: Interface, frames: list) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        pass
