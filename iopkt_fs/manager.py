"""One io-pkt instance: Stack + Runtime + filesystem under one trio nursery.

Start order (what io-pkt does, then what FUSE needs): log ``tcpip starting`` and the
option messages, build the stack (lo0), clear a stale mount left by a killed instance,
mount, serve, load the ``-d`` drivers in command-line order, then report "serving" so the
launching command can return. Stop order on SIGTERM/SIGINT: stop drivers, close sockets,
answer parked requests, unmount.
"""

import errno
import faulthandler
import gc
import os
import random
import signal
import socket
import subprocess

import pyfuse3
import trio

from . import paths
from .options import CommandLine, TcpipResult
from .resmgr import fuseloop, tree, verbs
from .resmgr.limiter import RequestLimiter
from .resmgr.nodes import Namespace
from .resmgr.ops import Operations
from .runtime import Runtime
from .slog import SlogRing
from .stack import slog
from .stack.errors import StackError
from .stack.iface.interface import IFF_SHIM
from .stack.stack import Stack


class StartError(Exception):
    """The instance cannot run at all (prefix unusable, no FUSE): a message and exit 1."""


class Instance:
    def __init__(self, cl: CommandLine, tcpip: TcpipResult, log: SlogRing):
        self.cl = cl
        self.slog = log
        config = tcpip.config
        self.name = cl.instance_name
        self.prefix = os.path.abspath(config.prefix) if config.prefix else paths.default_prefix(cl.instance)
        self.tcpip_text = cl.tcpip
        log(slog.INFO, "tcpip starting")
        if config.random:
            rng: random.Random = random.SystemRandom()
        else:
            log(slog.WARNING, 'Using pseudo random generator.  See "random" option')
            rng = random.Random(config.seed if config.seed is not None else os.urandom(16))
        for severity, text in cl.messages + tcpip.messages:
            log(severity, text)
        self.stack = Stack(config, rng=rng, log=log, hostname=socket.gethostname())
        self.runtime = Runtime(self.stack, log=log)
        self.limiter = RequestLimiter(config.threads_max, log)
        self.ns = Namespace(os.getuid(), os.getgid())
        self.root = tree.build(self.ns, self)
        self.ops = Operations(self.ns, self.limiter, log)
        self.stack.layers.append(self)   # told when interfaces go (interface_detached)
        self._mounted = False

    def interface_changed(self, iface) -> None:
        """Configuration a driver may have to carry to its device (MTU on a TAP)."""
        apply = getattr(iface.driver, "apply_config", None)
        if apply is not None:
            try:
                apply(iface)
            except OSError as exc:
                self.slog(slog.WARNING, f"{iface.name}: the device did not take the change: {exc.strerror}")

    def interface_detached(self, iface) -> None:
        """Forget the kernel's cached entries for a departed interface (ENTRY_CACHE);
        its capture readers reach end of file."""
        for reader in list(iface.bpf):
            reader.close()
        if not self._mounted:
            return
        sock = self.root.children["dev"].children["socket"]
        self.ops.invalidate(sock.children["if"], iface.name)
        self.ops.invalidate(self.root.children["dev"].children["io-net"], iface.name)

    # -- stack-wide verbs (P/dev/socket/ctl) ----------------------------------------------

    async def stack_ctl(self, text: str, handle) -> None:
        for fields in verbs.lines(text):
            verb, args = fields[0], fields[1:]
            if verb == "mount" and len(args) in (1, 2):
                # Only root may mount (SRC msg.c: EACCES).
                if handle.uid != 0:
                    raise StackError(errno.EACCES, f"mount {args[0]}: only root may load drivers")
                await self.runtime.load_driver(args[0], args[1] if len(args) == 2 else None)
            elif verb == "unmount" and len(args) == 1:
                if handle.uid != 0:
                    raise StackError(errno.EACCES, f"unmount {args[0]}: only root may unload drivers")
                self.unmount_ionet(args[0])
            elif verb == "create" and len(args) == 1:
                self.stack.create(args[0])
            elif verb == "destroy" and len(args) == 1:
                self.destroy(args[0])
            else:
                raise StackError(errno.EINVAL, f"unknown control request {' '.join(fields)!r}")
            self.runtime.kick()

    def destroy(self, name: str) -> None:
        iface = self.stack.interface(name)
        driver = iface.driver
        self.stack.destroy(iface.name)
        # When the last interface of a driver goes, the driver is unloaded (DOC-DRVINT-66).
        if driver is not None and not any(i.driver is driver for i in self.stack.interfaces.values()):
            for loaded, _ in list(self.runtime.drivers):
                if loaded is driver:
                    self.runtime.unload_driver(driver)

    def unmount_ionet(self, name: str) -> None:
        """``umount P/dev/io-net/enN``: unload the legacy driver behind that node."""
        name = os.path.basename(name.rstrip("/"))
        for iface in self.stack.interfaces.values():
            if iface.name == name:
                if not iface.flags & IFF_SHIM:
                    raise StackError(errno.EINVAL, f"{name} is a native interface; use ifconfig {name} destroy")
                self.runtime.unload_driver(iface.driver)
                return
        raise StackError(errno.ENOENT, f"no io-net interface {name}")

    # -- mount and serve ------------------------------------------------------------------

    def _prepare_mountpoint(self) -> None:
        # io-pkt mounts at the prefix may be live (refuse) or left by a killed instance
        # (clear them: fs.md B8). The mount root's attributes can stay cached after the
        # daemon dies, so ask a file inside, not the prefix itself.
        for _ in range(8):
            here = [inst for inst, where in paths.instances() if where == self.prefix]
            if not here:
                break
            if _answers(self.prefix):
                raise StartError(f"{self.cl.prog}: prefix {self.prefix} is already served by {here[-1]}; "
                                 f"stop it first or give -ptcpip prefix=")
            self.slog(slog.INFO, f"clearing stale mount on {self.prefix}")
            _lazy_unmount(self.prefix)
        try:
            os.makedirs(self.prefix, exist_ok=True)
        except OSError as exc:
            raise StartError(f"{self.cl.prog}: prefix {self.prefix}: {exc.strerror}") from None
        if not os.path.isdir(self.prefix):
            raise StartError(f"{self.cl.prog}: prefix {self.prefix} is not a directory")
        if not os.path.exists("/dev/fuse"):
            raise StartError(f"{self.cl.prog}: /dev/fuse is missing: this machine has no FUSE")

    def mount(self) -> None:
        self._prepare_mountpoint()
        options = set(pyfuse3.default_options)
        options |= {f"fsname={self.name}", "subtype=iopkt"}
        if os.geteuid() == 0 or _user_allow_other():
            options.add("allow_other")
        if os.geteuid() != 0:
            options.add("auto_unmount")  # root unmounts in shutdown(); kill -9 is handled at restart
        try:
            pyfuse3.init(self.ops, self.prefix, options)
        except RuntimeError as exc:
            raise StartError(f"{self.cl.prog}: cannot mount on {self.prefix}: {exc}") from None
        self._mounted = True

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if not self.cl.no_sigsegv_handler:
            faulthandler.enable()   # -S: don't register the SIGSEGV handler
        self.mount()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.runtime.run)
                cfg = self.stack.config
                served = trio.Event()
                # One task step a request, and a request's reply before its frames
                # (resmgr/fuseloop.py); pyfuse3 as it is if not the release it knows.
                if fuseloop.install():
                    fuseloop.BATON.send_after_reply(self.stack.tx_pending, self.runtime.flush)
                    self.sockets.reply_first = True
                nursery.start_soon(_serve, cfg.threads_min, max(10000, cfg.threads_max * 8), served)
                # Serving means a request through the kernel is answered.
                await trio.to_thread.run_sync(os.stat, os.path.join(self.prefix, "dev", "socket", "status"))
                for spec, opts in self.cl.drivers:
                    try:
                        await self.runtime.load_driver(spec, opts)
                    except StackError:
                        pass  # logged; a failed driver never stops the stack
                for proto, opts in self.cl.protocols:
                    self.slog(slog.ERROR, f"Unable to load lsm-{proto}.so: no such protocol module in iopkt_fs")
                nursery.start_soon(self.sockets.sweeper)
                # What start-up made lives as long as the stack: out of the collector's
                # sight, a full collection walks only what serving made. With the ~70,000
                # objects of a running stack in view, one took ~30 ms here (gc.callbacks
                # over a bash server), a stall for whichever request it lands in.
                gc.collect()
                gc.freeze()
                task_status.started()
                await _wait_for_stop_signal()
                self.slog(slog.INFO, "tcpip stopping")
                self.sockets.stop()          # parked requests answer at once
                self.runtime.shutdown()
                pyfuse3.terminate()
                with trio.move_on_after(0.5):
                    await served.wait()      # requests in flight finish
                nursery.cancel_scope.cancel()
        finally:
            self.unmount()

    def unmount(self) -> None:
        if self._mounted:
            self._mounted = False
            try:
                pyfuse3.close(unmount=True)
            except Exception:
                _lazy_unmount(self.prefix)


async def _serve(min_tasks: int, max_tasks: int, served: trio.Event) -> None:
    try:
        await pyfuse3.main(min_tasks=min_tasks, max_tasks=max_tasks)
    finally:
        served.set()


async def _wait_for_stop_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for _ in signals:
            return


def _answers(prefix: str) -> bool:
    try:
        with open(os.path.join(prefix, "dev", "socket", "status")) as f:
            f.read(16)
        return True
    except OSError:
        return False


def _lazy_unmount(path: str) -> None:
    for cmd in (["fusermount3", "-u", "-z", "-q", path], ["umount", "-l", path]):
        try:
            if subprocess.run(cmd, capture_output=True, timeout=5).returncode == 0:
                return
        except (OSError, subprocess.TimeoutExpired):
            continue


def _user_allow_other() -> bool:
    try:
        with open("/etc/fuse.conf") as f:
            return any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        return False
