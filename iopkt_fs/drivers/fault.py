"""A seeded fault injector any driver can take: drop, duplicate, reorder, corrupt, delay.

This kernel has no netem, and the kernel-side nftables tricks only drop; the rest of a bad
network is made here, between a driver and the stack, reproducibly: the same seed and the
same frames give the same faults.

Options (generic: the runtime takes them out of *any* driver's option string before the
driver sees it, as the stack does with ``name=``/``unit=``)::

    fault_seed=N       seed (default 0); each interface and direction draws from its own
                       generator, seeded from (seed, direction, interface name)
    fault_drop=PCT     drop this percentage of frames
    fault_dup=PCT      send this percentage twice
    fault_reorder=PCT  hold this percentage back for a random 1..5 ms while the frames
                       behind them go on: real reordering, as a multipath link does it
    fault_reorder_ms=LO-HI   the hold-back range in ms (default 1-5)
    fault_corrupt=PCT  flip one random bit in this percentage (past the virtio_net_hdr of
                       an IFF_VNET_HDR link, whose flags it then clears: see FaultPlan)
    fault_delay=MS     delay every frame by MS milliseconds ...
    fault_jitter=MS    ... plus a uniform 0..MS more (jitter alone also reorders)
    fault_dir=rx|tx|both   which direction suffers (default both)

PCT is a float in 0..100. The draws for one frame happen in a fixed order (drop, corrupt,
dup, then per copy: jitter, reorder), so changing one rate does not reshuffle the others'
decisions for earlier frames more than necessary, and runs are reproducible.

The hook: ``take_options(opts)`` returns a ``FaultConfig`` (or None when no ``fault_*``
option is present) and ``install(driver, ctx, config)`` wraps three things on those two
objects: ``ctx.input`` (received frames, rx), ``driver.transmit`` (tx), and ``driver.run``
(which gains a timer task releasing delayed and held frames). Counters are on
``driver.fault.stats``: ``reordered`` counts the frames held back, ``overtaken`` those
of them that a later frame actually passed (a frame held while nothing followed arrives
in order, so only ``overtaken`` says reordering happened).
"""

import errno
import heapq
import random

import attrs
import trio

from ..stack.errors import StackError

PREFIX = "fault_"
KEYS = ("fault_seed", "fault_drop", "fault_dup", "fault_reorder", "fault_reorder_ms",
        "fault_corrupt", "fault_delay", "fault_jitter", "fault_dir")
REORDER_MS = (0.001, 0.005)    # seconds a reordered frame is held back: uniform in this range


@attrs.frozen
class FaultConfig:
    seed: int = 0
    drop: float = 0.0       # probabilities in 0..1 (the options are percentages)
    dup: float = 0.0
    reorder: float = 0.0
    reorder_range: tuple[float, float] = REORDER_MS   # seconds
    corrupt: float = 0.0
    delay: float = 0.0      # seconds
    jitter: float = 0.0     # seconds
    rx: bool = True
    tx: bool = True


@attrs.define
class FaultStats:
    frames: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0      # held back
    overtaken: int = 0      # held back and passed by a later frame: really reordered
    corrupted: int = 0
    delayed: int = 0


def _bounded(opts, key: str, limit: float, unit: str, scale: float) -> float:
    """``key=X`` as a number in 0..limit (its unit in the message), times ``scale``."""
    raw = opts.get(key)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise StackError(errno.EINVAL, f"option {key}={raw}: not a number") from None
    if not 0.0 <= value <= limit:
        raise StackError(errno.EINVAL, f"option {key}={raw}: out of range 0..{limit:g}{unit}")
    return value * scale


def _percent(opts, key: str) -> float:
    return _bounded(opts, key, 100.0, "", 0.01)


def _millis(opts, key: str) -> float:
    return _bounded(opts, key, 60000.0, " ms", 0.001)


def _range_ms(opts, key: str) -> tuple[float, float]:
    """``key=LO-HI`` (milliseconds, 0 <= LO <= HI <= 60000) as seconds."""
    raw = opts.get(key)
    if raw is None:
        return REORDER_MS
    lo, sep, hi = raw.partition("-")
    try:
        low, high = float(lo), float(hi if sep else lo)
    except ValueError:
        raise StackError(errno.EINVAL, f"option {key}={raw}: LO-HI in ms") from None
    if not 0.0 <= low <= high <= 60000.0:
        raise StackError(errno.EINVAL, f"option {key}={raw}: need 0 <= LO <= HI <= 60000 ms")
    return (low * 0.001, high * 0.001)


def take_options(opts) -> FaultConfig | None:
    """Remove the ``fault_*`` options from ``opts``; their config, or None if there were none.

    An unknown ``fault_xxx`` key is refused with the usual "unknown option" error.
    """
    ours = [(k, v) for k, v in opts.items if k.startswith(PREFIX)]
    if not ours:
        return None
    for k, _ in ours:
        if k not in KEYS:
            raise StackError(errno.EINVAL, f"unknown option {k!r}")
    view = type(opts)(",".join(k if v is None else f"{k}={v}" for k, v in ours))
    opts.items = [(k, v) for k, v in opts.items if not k.startswith(PREFIX)]
    direction = view.get("fault_dir") or "both"
    if direction not in ("rx", "tx", "both"):
        raise StackError(errno.EINVAL, f"option fault_dir={direction}: rx, tx or both")
    return FaultConfig(
        seed=view.get_int("fault_seed", 0),
        drop=_percent(view, "fault_drop"), dup=_percent(view, "fault_dup"),
        reorder=_percent(view, "fault_reorder"), reorder_range=_range_ms(view, "fault_reorder_ms"),
        corrupt=_percent(view, "fault_corrupt"),
        delay=_millis(view, "fault_delay"), jitter=_millis(view, "fault_jitter"),
        rx=direction in ("rx", "both"), tx=direction in ("tx", "both"))


class FaultPlan:
    """The faults of one direction of one interface: pure, clocked by the caller's ``now``."""

    def __init__(self, config: FaultConfig, rng: random.Random, stats: FaultStats, vnet_hdr: int = 0):
        self.config = config
        self.vnet_hdr = vnet_hdr             # the interface's header bytes, never corrupted
        self.rng = rng
        self.stats = stats
        # (due, n, frame, held): n numbers the frames (copies too) in arrival order;
        # held marks a frame held back to reorder it. A frame was overtaken when, as it
        # leaves, a frame that arrived after it has left already (``newest`` > n).
        self.heap: list = []
        self.arrived = 0
        self.newest = -1                     # the highest n handed on so far

    def apply(self, frames, now: float) -> list:
        """Frames that go through now; the rest are dropped or queued for ``release``."""
        c = self.config
        rng = self.rng
        stats = self.stats
        out: list = []
        lo, hi = c.reorder_range
        for frame in frames:
            stats.frames += 1
            if c.drop and rng.random() < c.drop:
                stats.dropped += 1
                continue
            if c.corrupt and rng.random() < c.corrupt and len(frame) > self.vnet_hdr:
                frame = self._corrupt(frame)
                stats.corrupted += 1
            copies = 1
            if c.dup and rng.random() < c.dup:
                copies = 2
                stats.duplicated += 1
            for _ in range(copies):
                delay = c.delay + (rng.uniform(0.0, c.jitter) if c.jitter else 0.0)
                n = self.arrived
                self.arrived += 1
                if c.reorder and rng.random() < c.reorder:
                    stats.reordered += 1
                    heapq.heappush(self.heap, (now + delay + rng.uniform(lo, hi), n, frame, True))
                elif delay > 0.0:
                    stats.delayed += 1
                    heapq.heappush(self.heap, (now + delay, n, frame, False))
                else:
                    self.newest = n
                    out.append(frame)
        return out

    def _corrupt(self, frame) -> bytes:
        """Flip one bit of the frame proper. On a link with a virtio_net_hdr its flags are
        cleared too: NEEDS_CSUM/DATA_VALID say the bytes never crossed a wire, so the
        receiver would complete or trust a checksum over the flipped bit; without them it
        checks the field, as a NIC checks what came off the wire, and drops the frame.
        (A GSO frame the kernel gets this way may still be re-checksummed by its
        segmentation: wire corruption of our super-segments is best effort.)"""
        hdr = self.vnet_hdr
        buf = bytearray(frame)
        bit = self.rng.randrange((len(buf) - hdr) * 8)
        buf[hdr + (bit >> 3)] ^= 1 << (bit & 7)
        if hdr:
            buf[0] = 0      # struct virtio_net_hdr.flags
        return bytes(buf)

    def release(self, now: float) -> list:
        """Frames whose time has come (delays expired, held-back frames), in due order."""
        out = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, n, frame, held = heapq.heappop(heap)
            if n < self.newest:
                if held:
                    self.stats.overtaken += 1
            else:
                self.newest = n
            out.append(frame)
        return out

    def next_deadline(self) -> float | None:
        return self.heap[0][0] if self.heap else None


class FaultInjector:
    """The per-driver state: plans per (direction, interface), one timer task."""

    def __init__(self, config: FaultConfig):
        self.config = config
        self.stats = FaultStats()
        self.plans: dict[tuple[str, object], FaultPlan] = {}
        self._changed = trio.Event()

    def plan(self, direction: str, iface) -> FaultPlan:
        key = (direction, iface)
        plan = self.plans.get(key)
        if plan is None:
            # A string seed is hashed deterministically by random.Random (version 2).
            rng = random.Random(f"{self.config.seed}:{direction}:{iface.name}")
            plan = self.plans[key] = FaultPlan(self.config, rng, self.stats, getattr(iface, "vnet_hdr", 0))
        return plan

    def filter(self, direction: str, iface, frames) -> list:
        plan = self.plan(direction, iface)
        out = plan.apply(frames, trio.current_time())
        if plan.heap:
            self._changed.set()
        return out

    async def pump(self, deliver_rx, deliver_tx) -> None:
        """Release delayed/held frames on time; runs beside the driver's receive task."""
        while True:
            deadlines = [d for p in self.plans.values() if (d := p.next_deadline()) is not None]
            with trio.move_on_at(min(deadlines) if deadlines else float("inf")):
                await self._changed.wait()
            self._changed = trio.Event()
            now = trio.current_time()
            for (direction, iface), plan in list(self.plans.items()):
                frames = plan.release(now)
                if frames:
                    (deliver_rx if direction == "rx" else deliver_tx)(iface, frames)


def install(driver, ctx, config: FaultConfig) -> FaultInjector:
    """Put the injector between ``driver`` and the stack (see the module docstring)."""
    injector = FaultInjector(config)
    orig_input = ctx.input
    orig_transmit = driver.transmit
    orig_run = driver.run

    if config.rx:
        def faulty_input(iface, frames):
            out = injector.filter("rx", iface, frames)
            if out:
                orig_input(iface, out)
        ctx.input = faulty_input

    if config.tx:
        def faulty_transmit(iface, frames):
            out = injector.filter("tx", iface, frames)
            if out:
                orig_transmit(iface, out)
        driver.transmit = faulty_transmit

    async def faulty_run():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(injector.pump, orig_input, orig_transmit)
            # A driver with nothing to receive returns at once; delayed tx frames still
            # need the pump, which runs until the runtime cancels us at unload.
            await orig_run()

    driver.run = faulty_run
    driver.fault = injector
    return injector
