"""The tun/tap device nodes under ``P/dev`` (reference/pseudo-if.md §2, §3).

::

    dev/tun0 .. tun(N-1)      tun control nodes (num_tun_control_interface), always there;
    dev/tunK                  also for any tunK made beyond them (ifconfig tunK create)
    dev/tunK.ctl              the unit's modes: ifhead, slmode, ifmode, debug (the ioctls)
    dev/tap                   the cloning node: each open makes the lowest free tapK
    dev/tapK                  while tapK exists

A device file is a regular file (FUSE serves no character devices), mode 0600, direct_io
and non-seekable: a read returns one packet or frame, a write takes one. Reads park, as
a socket's data reads do, until the stack queues something: the device object is
registered with ``runtime.Readiness`` like a socket (the core names it through
``stack.notify_socket``), and the parking, the signal probes and the EINTR rules are
SocketFS's. ``O_NONBLOCK`` handles never wait (EAGAIN) and ``poll()`` says POLLIN while
something is queued, POLLOUT always (writes never block).

FUSE has no ioctls: the modes are verbs on ``tunK.ctl`` (stack/iface/if_tun.py), and
TAPGIFNAME/"which tun is this" is the extended attribute ``user.ifname`` of the open file
(``os.getxattr(fd, "user.ifname")``), answered for the calling process's newest open of
that node.
"""

import errno
import os
import select

import pyfuse3

from ..runtime import now_us
from .nodes import File, Handle, StaticDir, TextFile
from .sockfs import Waitable
from .verbs import lines


def _tgid(tid: int) -> int:
    """The process a thread belongs to (FUSE requests carry the thread's id)."""
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


class _Waiters(Waitable):
    """What SocketFS.wait parks on for one device (the shape of a Conv)."""

    __slots__ = ("parked", "pollers", "gone")

    def __init__(self):
        self.parked = []
        self.pollers = set()
        self.gone = False


class DeviceFile(File):
    """``P/dev/tunK``, ``P/dev/tapK`` or the cloning ``P/dev/tap``."""

    nonseekable = True
    blksize = 65536

    def __init__(self, ns, name, key, *, inst, opener, closer, alive_fn=None):
        super().__init__(ns, name, key, mode=0o600)
        self.inst = inst
        self._opener = opener       # () -> device (StackError to refuse)
        self._closer = closer       # (device) -> None
        self._alive = alive_fn
        self.handles: list[Handle] = []

    def alive(self):
        return self._alive is None or self._alive()

    def open(self, flags, ctx):
        handle = Handle(self, flags, ctx)
        handle.nonseekable = True
        handle.nonblocking = bool(flags & os.O_NONBLOCK)
        handle.dev = None
        if flags & os.O_ACCMODE not in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
            return handle           # neither read nor write: binds, creates nothing
        handle.dev = dev = self._opener()
        handle.tgid = _tgid(ctx.pid)
        handle.waiters = _Waiters()
        self.inst.runtime.readiness.watch(dev, handle.waiters.wake)
        self.handles.append(handle)
        self.inst.runtime.kick()
        return handle

    def release(self, handle):
        dev = handle.dev
        if dev is None:
            return
        if handle in self.handles:
            self.handles.remove(handle)
        self.inst.runtime.readiness.unwatch(dev, handle.waiters.wake)
        handle.waiters.gone = True
        handle.waiters.wake()
        self._closer(dev)
        self.inst.runtime.kick()

    def getxattr(self, name: str, ctx) -> bytes:
        """``user.ifname``: the interface of the calling process's newest open of this
        node (FUSE names the calling thread; its thread group is the process)."""
        if name != "user.ifname":
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        tgid = _tgid(ctx.pid)
        for handle in reversed(self.handles):
            if handle.tgid == tgid and handle.dev is not None:
                return handle.dev.name.encode()
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    def poll(self, handle) -> int:
        dev = handle.dev
        if dev is None:
            return select.POLLOUT
        mask = select.POLLOUT | (select.POLLIN if dev.readable else 0)
        handle.waiters.pollers.add(handle)
        return mask

    async def read(self, handle, off, size):
        dev = handle.dev
        if dev is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        fs = self.inst.sockets
        # Each pass takes a packet, fails, or parks until readiness, a signal or shutdown.
        while True:
            data = dev.read(size)
            if data is not None:
                return data
            if handle.nonblocking:
                raise pyfuse3.FUSEError(errno.EAGAIN)
            if await fs.wait(handle.waiters, lambda: dev.read_returns, handle):
                fs.interrupt_if_dying(handle)    # leave the packet for a live reader

    async def write(self, handle, off, buf):
        dev = handle.dev
        if dev is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        try:
            return dev.write(buf, now_us())
        finally:
            self.inst.runtime.settle()


class DevDir(StaticDir):
    """``P/dev``: the fixed children (socket, io-net) and the tun/tap nodes."""

    def __init__(self, ns, inst):
        super().__init__(ns, "dev")
        self.inst = inst
        self.stack = inst.stack

    def _tun(self, unit: int) -> DeviceFile:
        tun = self.stack.tun

        def alive():
            return unit in tun.node_units()

        return self.ns.cached(("dev", "tun", unit), lambda: DeviceFile(
            self.ns, f"tun{unit}", ("dev", "tun", unit), inst=self.inst, alive_fn=alive,
            opener=lambda: tun.open(unit), closer=tun.close))

    def _tun_ctl(self, unit: int) -> TextFile:
        tun = self.stack.tun

        def write(text, handle):
            dev = tun.device(unit)
            for fields in lines(text):
                dev.mode_ctl(fields)
            self.inst.runtime.kick()

        return self.ns.cached(("dev", "tun", unit, "ctl"), lambda: TextFile(
            self.ns, f"tun{unit}.ctl", ("dev", "tun", unit, "ctl"), mode=0o600,
            render=lambda: tun.device(unit).modes(), write_fn=write,
            alive_fn=lambda: unit in tun.node_units(), label=f"dev/tun{unit}.ctl"))

    def _tap_clone(self) -> DeviceFile:
        tap = self.stack.tap
        return self.ns.cached(("dev", "tap"), lambda: DeviceFile(
            self.ns, "tap", ("dev", "tap"), inst=self.inst, opener=tap.clone, closer=tap.close))

    def _tap(self, unit: int) -> DeviceFile:
        tap = self.stack.tap
        return self.ns.cached(("dev", "tap", unit), lambda: DeviceFile(
            self.ns, f"tap{unit}", ("dev", "tap", unit), inst=self.inst,
            alive_fn=lambda: unit in tap.node_units(),
            opener=lambda: tap.open(unit), closer=tap.close))

    def _devices(self):
        out = []
        for unit in self.stack.tun.node_units():
            out += [(f"tun{unit}", self._tun(unit)), (f"tun{unit}.ctl", self._tun_ctl(unit))]
        out.append(("tap", self._tap_clone()))
        out += [(f"tap{unit}", self._tap(unit)) for unit in self.stack.tap.node_units()]
        return out

    def entries(self):
        return list(self.children.items()) + self._devices()

    def child(self, name):
        node = self.children.get(name)
        if node is not None:
            return node
        base, dot, rest = name.partition(".")
        for prefix, units, make in (("tun", self.stack.tun.node_units, self._tun),
                                    ("tap", self.stack.tap.node_units, self._tap)):
            digits = base[len(prefix):]
            if base.startswith(prefix) and digits.isdigit() and str(int(digits)) == digits:
                unit = int(digits)
                if unit not in units() or (dot and (prefix != "tun" or rest != "ctl")):
                    return None
                return self._tun_ctl(unit) if dot else make(unit)
        if name == "tap":
            return self._tap_clone()
        return None
