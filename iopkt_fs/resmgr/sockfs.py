"""Sockets as files: ``P/dev/socket/{tcp,udp,raw,unix}/``, Plan 9 /net style.

::

    clone            open: a new connection N; read: "N\\n"; writes go to N's ctl
    stats            the protocol's counters
    N/ctl            verbs (connect, announce, bind, hangup, ...); read: "N\\n"
    N/data           the byte stream (tcp, unix) or one datagram per read/write (udp, raw)
    N/listen         open blocks until a call arrives; read: the new connection's number;
                     writes go to the new connection's ctl (Plan 9)
    N/local N/remote "ADDR!PORT\\n"
    N/status         one line: state, queues, rtt, cwnd ...
    N/err            the last error's text

Lifetime. A connection lives while any of its files is open or its protocol keeps it
(an established TCP connection, a listener). With nothing open it survives ``GRACE``
seconds more, because FUSE's release is asynchronous and shells work in separate opens
(``N=$(cat clone); echo connect ... > $N/ctl``). Then it is closed (a TCP peer that has
finished gets our FIN) and its number may be reused. Inodes are never reused.

Serving. A request that can be answered at once is: one socket call, then
``runtime.settle()`` (send what the call queued, wake whom it made ready; the loop task is
woken only when a deadline moved). Nothing on that path reads /proc or switches tasks.

Waiting (reference/fs.md B3, B4). A request that cannot be answered parks until the
runtime's readiness dispatcher names its socket (``Conv.wake``; the core reports through
the stack's one queue). pyfuse3 cannot be interrupted, so a parked request also looks at
its opener's pending signals every ``PROBE`` seconds, and once more when woken, before
data is taken: a signal the opener will act on (a fatal one, or one it has a handler
for: Python's SIGINT, a bash trap) is answered EINTR at once with the data left queued,
as a blocking read(2) is interrupted by a handled signal. Nothing else ends a wait: a
reader that waits for a slow sender keeps waiting (sha256sum and other stdio readers do
not retry EINTR). While parked, a request holds no io-pkt "thread" (``limiter.parked``).
The instance's ``status`` counts these EINTRs (``parked_signalled``).

Permissions. A connection's files belong to the uid that opened clone, mode 0660 (the
address, status and err files 0440: nothing writes them): the kernel refuses other users (EACCES). Announcing a TCP port below
1024 needs uid 0.
"""

import errno
import heapq
import os
import select

import outcome
import pyfuse3
import trio

from ..runtime import now_us
from ..stack.errors import StackError
from . import protos
from .nodes import DynamicDir, File, Handle, Namespace, TextFile

PROBE = 0.25       # s: how often a parked request looks for a signalled opener
GRACE = 5.0
CACHE = 60.0       # s: the kernel may keep a connection directory's entries and attributes
MIN_BLKSIZE = 4096  # st_blksize of a data file with little left to read (a page)


def _invalidate(batch) -> None:
    for table, n in batch:
        try:
            pyfuse3.invalidate_entry(table.dir.ino, str(n).encode())
        except OSError:
            pass   # ENOENT: the kernel had not cached it


def _mask(text: bytes, field: bytes) -> int:
    at = text.find(field)
    if at < 0:
        return 0
    return int(text[at + len(field):text.index(b"\n", at + len(field))], 16)


def dying(pid: int | None) -> bool:
    """Is ``pid`` gone, or has it a signal pending that it will act on - a fatal one
    (the kernel marks it as SIGKILL, 0x100) or one it neither blocks nor ignores (it has
    a handler: an answer must come now so the handler can run)?

    Only parked requests ask (it costs a /proc read). One binary read, no line loop."""
    if not pid:
        return False
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
    except OSError:
        return True
    try:
        text = os.read(fd, 4096)
    except OSError:
        return True
    finally:
        os.close(fd)
    pending = _mask(text, b"\nSigPnd:") | _mask(text, b"\nShdPnd:")
    if pending & 0x100:
        return True
    return bool(pending & ~_mask(text, b"\nSigBlk:") & ~_mask(text, b"\nSigIgn:"))


class _Parked:
    """A request parked until its connection's wake or the next probe tick: one
    ``wait_task_rescheduled``, no cancel scope or Event per wait."""

    __slots__ = ("task", "done")

    def __init__(self):
        self.task = trio.lowlevel.current_task()
        self.done = False

    def resume(self, tick: bool = False) -> None:
        if not self.done:
            self.done = True
            trio.lowlevel.reschedule(self.task, outcome.Value(tick))


class Waitable:
    """What ``SocketFS.wait`` parks on (a connection directory, a device, a capture
    reader): its parked requests (``parked``) and the handles whose poll() asked to be
    notified (``pollers``); ``wake`` ends the one and notifies the other."""

    __slots__ = ()

    def wake(self) -> None:
        if self.parked:
            parked, self.parked = self.parked, []
            for p in parked:
                p.resume()
        if not self.pollers:
            return
        for handle in list(self.pollers):
            ph = getattr(handle, "poll_handle", None)
            handle.poll_handle = None
            if ph is not None:
                ph.notify()
        self.pollers.clear()


class Conv(Waitable):
    """One connection directory."""

    def __init__(self, table: "ConvTable", n: int, gen: int, uid: int, gid: int, sock):
        self.table = table
        self.n = n
        self.gen = gen
        self.uid = uid
        self.gid = gid
        self.sock = sock
        self.opens = 0
        self.idle_since = trio.current_time()
        self.announced = False
        self.headers = False
        self.connecting = False
        self.keepalive_ms = None
        self.err = ""
        self.gone = False
        self.parked: list[_Parked] = []   # requests waiting for this connection
        self.pollers: set = set()     # handles whose poll() asked to be notified

    def rebind(self, old) -> None:
        """The adapter replaced ``sock`` (unix ``dgram``): the new one's readiness wakes
        this connection, the old one's nobody."""
        readiness = self.table.fs.readiness
        readiness.unwatch(old, self.wake)
        readiness.watch(self.sock, self.wake)

    def hold(self) -> None:
        self.opens += 1

    def release(self) -> None:
        self.opens -= 1
        if self.opens <= 0:
            self.opens = 0
            self.idle_since = trio.current_time()


class ConvTable:
    def __init__(self, fs: "SocketFS", proto: protos.Protocol):
        self.fs = fs
        self.proto = proto
        self.convs: dict[int, Conv] = {}
        self.dir = None          # the protocol directory's node (SocketFS._proto_dir)
        self._gen = 0
        self._top = 0            # numbers from here up were never handed out
        self._free: list[int] = []   # heap: numbers below _top free again

    def _number(self) -> int:
        """The lowest free number (Plan 9). A freed number is free again only once the
        kernel has forgotten the old directory's entry (SocketFS.retire)."""
        if self._free:
            return heapq.heappop(self._free)
        self._top += 1
        return self._top - 1

    def reuse(self, n: int) -> None:
        heapq.heappush(self._free, n)

    def allocate(self, uid: int, gid: int, sock=None) -> Conv:
        self._gen += 1
        conv = Conv(self, self._number(), self._gen, uid, gid,
                    sock if sock is not None else self.proto.new_socket())
        self.convs[conv.n] = conv
        self.fs.readiness.watch(conv.sock, conv.wake)
        return conv

    def free(self, conv: Conv) -> None:
        if conv.gone:
            return
        conv.gone = True
        try:
            self.proto.close(conv, now_us())
        except StackError:
            pass
        self.convs.pop(conv.n, None)
        self.fs.readiness.unwatch(conv.sock, conv.wake)
        conv.wake()
        self.fs.after_call()
        self.fs.retire(self, conv.n)

    def sweep(self, now: float) -> None:
        for conv in list(self.convs.values()):
            if conv.opens == 0 and now - conv.idle_since >= GRACE and not self.proto.active(conv):
                self.free(conv)


class SocketFS:
    """The protocol directories of one instance and the plumbing they share."""

    def __init__(self, ns: Namespace, inst):
        self.ns = ns
        self.inst = inst
        self.stack = inst.stack
        self.limiter = inst.limiter
        self.runtime = inst.runtime
        self.readiness = inst.runtime.readiness
        self.stopping = trio.Event()
        self.signalled = 0     # parked requests answered EINTR for a signalled opener
        # Set by the manager when pyfuse3 runs with fuseloop's baton: a socket call leaves
        # its frames queued and the worker sends them after the reply.
        self.reply_first = False
        self._retiring: list[tuple[ConvTable, int]] = []   # freed, entry still cached
        self._retired = trio.Event()
        self._parked: set[_Parked] = set()    # every parked request (probe ticks)
        self._ticking = trio.Event()          # set while something is parked
        self.tables: dict[str, ConvTable] = {}
        kinds = [protos.Udp, protos.Raw, protos.Unix]
        if getattr(self.stack, "tcp", None) is not None:
            kinds.insert(0, protos.Tcp)
        for kind in kinds:
            proto = kind(self.stack)
            self.tables[proto.name] = ConvTable(self, proto)

    # -- plumbing -------------------------------------------------------------------------

    def after_call(self) -> None:
        """Send what a socket call queued, wake whom it made ready (runtime.settle)."""
        self.runtime.settle()

    async def sweeper(self) -> None:
        """Free idle connections once a second; have the kernel forget freed ones."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._invalidator)
            nursery.start_soon(self._ticker)
            while True:
                await trio.sleep(1.0)
                now = trio.current_time()
                for table in self.tables.values():
                    table.sweep(now)

    async def _ticker(self) -> None:
        """Every PROBE seconds while anything is parked, resume every parked request so
        it looks for a signalled opener."""
        while True:
            if not self._parked:
                self._ticking = trio.Event()
                await self._ticking.wait()
            await trio.sleep(PROBE)
            for p in list(self._parked):
                p.resume(tick=True)

    async def _park(self, conv: Conv) -> bool:
        """Wait for the connection's next wake (False) or the next probe tick (True)."""
        p = _Parked()
        conv.parked.append(p)
        self._parked.add(p)
        self._ticking.set()

        def abort(_):
            p.done = True
            return trio.lowlevel.Abort.SUCCEEDED
        try:
            return await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            self._parked.discard(p)
            if conv.parked and p in conv.parked:    # resumed by a tick, not a wake
                conv.parked.remove(p)

    def retire(self, table: ConvTable, n: int) -> None:
        """A freed connection's number: the kernel may hold its directory entry (CACHE
        seconds), so the number is reused only after that entry has been invalidated;
        a new connection N can never be reached through the old N's cached entries."""
        if not getattr(self.inst, "_mounted", False) or table.dir is None:
            table.reuse(n)
            return
        self._retiring.append((table, n))
        self._retired.set()

    async def _invalidator(self) -> None:
        while True:
            await self._retired.wait()
            self._retired = trio.Event()
            batch, self._retiring = self._retiring, []
            # pyfuse3.invalidate_entry blocks (until a lookup in flight in that directory
            # is answered): a worker thread does it, the loop keeps serving meanwhile.
            await trio.to_thread.run_sync(_invalidate, batch, abandon_on_cancel=True)
            for table, n in batch:
                table.reuse(n)

    def stop(self) -> None:
        """Shutdown: answer every parked request, close every connection."""
        self.stopping.set()
        for table in self.tables.values():
            for conv in list(table.convs.values()):
                conv.wake()
                table.free(conv)

    async def wait(self, conv: Conv, ready, handle: Handle) -> bool:
        """Park until ``ready()``; EINTR for a signalled opener or shutdown.
        Returns whether it parked (then the caller checks the opener once more before
        taking data: a signal may have come with the wakeup)."""
        if ready():
            return False
        async with self.limiter.parked():
            while True:
                if self.stopping.is_set():
                    raise pyfuse3.FUSEError(errno.EINTR)
                if conv.gone:
                    raise pyfuse3.FUSEError(errno.ECONNABORTED)
                tick = await self._park(conv)
                if ready():     # asked once per wakeup (connect's ready takes the error)
                    break
                # Readiness wakes a parked request; the probe tick looks for a signal.
                if tick:
                    self.interrupt_if_dying(handle)
        return True

    async def wait_buffers(self, conv: Conv, handle: Handle) -> None:
        """The socket is writable but the packet pool refused it buffers (mbufs
        exhausted): park, as BSD's sosend sleeps in m_wait, until the next wakeup of the
        connection or the next probe tick, then let the caller try again. A buffer freed
        elsewhere wakes nobody, hence the tick; a signal still interrupts. Without this
        the writer would retry at once, forever, and the loop would never turn."""
        async with self.limiter.parked():
            if self.stopping.is_set():
                raise pyfuse3.FUSEError(errno.EINTR)
            if conv.gone:
                raise pyfuse3.FUSEError(errno.ECONNABORTED)
            if await self._park(conv):
                self.interrupt_if_dying(handle)

    def interrupt_if_dying(self, handle: Handle) -> None:
        """EINTR now if the opener is dying: an answer to it would be lost (fs.md B3)."""
        if dying(handle.pid):
            self.signalled += 1
            raise pyfuse3.FUSEError(errno.EINTR)

    def call(self, conv: Conv, fn, *args):
        """A socket call; its error becomes the connection's err text."""
        try:
            return fn(*args)
        except StackError as exc:
            conv.err = exc.message
            raise
        finally:
            # after_call, one frame less: every request passes here. Under pyfuse3's
            # worker loop with the baton, the frames go after the reply (fuseloop).
            if self.reply_first:
                self.runtime.settle_reply_first()
            else:
                self.runtime.settle()

    # -- the tree ------------------------------------------------------------------------

    def directories(self) -> list[DynamicDir]:
        return [self._proto_dir(table) for table in self.tables.values()]

    def _proto_dir(self, table: ConvTable) -> DynamicDir:
        ns, name = self.ns, table.proto.name
        clone = CloneFile(ns, "clone", (name, "clone"), fs=self, table=table)
        stats = TextFile(ns, "stats", (name, "stats"), render=table.proto.stats, label=f"{name}/stats")

        def listing():
            fixed = [("clone", clone), ("stats", stats)]
            return fixed + [(str(n), self._conv_dir(c)) for n, c in sorted(table.convs.items())]

        def lookup(child):
            if child == "clone":
                return clone
            if child == "stats":
                return stats
            if child.isdigit() and int(child) in table.convs:
                return self._conv_dir(table.convs[int(child)])
            return None

        table.dir = DynamicDir(self.ns, name, (name,), listing, lookup, timeout=60.0)
        return table.dir

    def _conv_dir(self, conv: Conv) -> DynamicDir:
        key = ("conv", conv.table.proto.name, conv.gen)
        return self.ns.cached(key, lambda: self._make_conv_dir(conv, key))

    def _make_conv_dir(self, conv: Conv, key) -> DynamicDir:
        names = _CONV_FILES if conv.table.proto.can_listen else _CONV_FILES[:-1]
        made: dict[str, File] = {}

        def child(name):
            # Files are made when first looked up: most connections only ever see
            # ctl and data (or none at all: a clone fd and a listen fd are ctl files).
            f = made.get(name)
            if f is None and name in names:
                f = made[name] = self._conv_file(conv, key, name)
            return f

        alive = lambda: not conv.gone  # noqa: E731
        # Cached by the kernel (no LOOKUP/GETATTR per path walk); freeing the connection
        # invalidates the entry before its number is reused (SocketFS.retire).
        d = DynamicDir(self.ns, str(conv.n), key, lambda: [(n, child(n)) for n in names], child,
                       alive, uid=conv.uid, timeout=CACHE)
        d.gid = conv.gid
        return d

    def _conv_file(self, conv: Conv, key, name: str) -> File:
        ns, proto = self.ns, conv.table.proto
        label = f"{proto.name}/{conv.n}/{name}"
        own = dict(fs=self, conv=conv, uid=conv.uid, alive_fn=lambda: not conv.gone)
        k = key + (name,)
        if name == "ctl":
            f = CtlFile(ns, name, k, label=label, **own)
        elif name == "data":
            f = DataFile(ns, name, k, label=label, **own)
        elif name == "listen":
            f = ListenFile(ns, name, k, label=label, **own)
        elif name == "err":
            f = ConvText(ns, name, k, mode=0o440, render=lambda: conv.err + ("\n" if conv.err else ""), **own)
        else:
            render = getattr(proto, name)    # local, remote, status
            f = ConvText(ns, name, k, mode=0o440, render=lambda: render(conv), **own)
        f.gid = conv.gid
        return f


_CONV_FILES = ("ctl", "data", "local", "remote", "status", "err", "listen")


# -- file kinds --------------------------------------------------------------------------

class ConvFile(File):
    """A file of one connection: holds the connection while open."""

    timeout = CACHE

    def __init__(self, ns, name, key, *, fs: SocketFS, conv: Conv, alive_fn=None, mode=0o660, **kw):
        super().__init__(ns, name, key, mode=mode, **kw)
        self.fs = fs
        self.conv = conv
        self._alive = alive_fn

    def alive(self):
        return self._alive is None or self._alive()

    def open(self, flags, ctx):
        if self.conv.gone:
            raise StackError(errno.ENOENT, f"{self.label}: connection closed")
        handle = Handle(self, flags, ctx)
        handle.conv = self.conv
        self.conv.hold()
        return handle

    def release(self, handle):
        handle.conv.release()


class ConvText(ConvFile):
    def __init__(self, ns, name, key, *, render, **kw):
        super().__init__(ns, name, key, **kw)
        self._render = render

    async def read(self, handle, off, size):
        if off == 0 or not handle.snapshot:
            handle.snapshot = self._render().encode()
        return handle.snapshot[off:off + size]


class CtlFile(ConvFile):
    async def read(self, handle, off, size):
        return f"{self.conv.n}\n".encode()[off:off + size]

    async def write(self, handle, off, buf):
        await ctl(self.fs, handle.conv, bytes(buf), handle)
        return len(buf)


class CloneFile(File):
    """Opening allocates a connection; the handle then acts on it (Plan 9's clone fd)."""

    def __init__(self, ns, name, key, *, fs: SocketFS, table: ConvTable):
        super().__init__(ns, name, key, mode=0o666)
        self.fs = fs
        self.table = table
        self.timeout = 60.0

    def open(self, flags, ctx):
        handle = Handle(self, flags, ctx)
        handle.conv = self.table.allocate(ctx.uid, ctx.gid)
        handle.conv.hold()
        return handle

    async def read(self, handle, off, size):
        return f"{handle.conv.n}\n".encode()[off:off + size]

    async def write(self, handle, off, buf):
        await ctl(self.fs, handle.conv, bytes(buf), handle)
        return len(buf)

    def release(self, handle):
        handle.conv.release()


async def ctl(fs: SocketFS, conv: Conv, buf: bytes, handle: Handle) -> None:
    proto = conv.table.proto
    try:
        text = buf.decode()
    except UnicodeDecodeError:
        raise StackError(errno.EINVAL, "control messages must be UTF-8 text") from None
    for fields in [line.split() for line in text.splitlines()]:
        if not fields:
            continue
        verb, args = fields[0], fields[1:]
        if conv.gone:
            raise StackError(errno.ECONNABORTED, "connection closed")
        done = fs.call(conv, proto.ctl, conv, verb, args, handle, now_us())
        if not done:
            conv.err = f"unknown control request {' '.join(fields)!r}"
            raise StackError(errno.EINVAL, conv.err)
        if verb == "connect" and hasattr(proto, "connect_done"):
            # The ctl write returns when the connection is made or has failed (Plan 9).
            outcome: list[int] = []

            def finished() -> bool:
                code = proto.connect_done(conv)   # takes (clears) a pending error: ask once
                if code is not None:
                    outcome.append(code)
                return bool(outcome)

            await fs.wait(conv, finished, handle)
            code = outcome[0]
            conv.connecting = False
            if code:
                conv.err = os.strerror(code)
                raise StackError(code, f"connect {args[0]}: {conv.err}")


class DataFile(ConvFile):
    nonseekable = True
    # coreutils (cat, cp, tee ...) read and write in buffers of max(128 KiB, st_blksize):
    # saying 1 MiB - the largest FUSE request on this kernel (docs/performance.md) - makes
    # `cat data` as cheap per byte as `dd bs=1M`, one request per MiB instead of eight.
    blksize = 1 << 20

    def attributes(self):
        # Once nothing more can arrive, the preferred size is what is left to read: a
        # shell server's `cat data` on a connection whose request and FIN are already in
        # then sizes its buffer at 128 KiB, coreutils' floor, instead of 1 MiB. A direct_io
        # READ pins the reader's whole buffer before it goes out, and each new process
        # faults a fresh buffer in: 256 pages for 1 MiB, 330-390 us (docs/performance.md).
        a = super().attributes()
        rest = self.conv.table.proto.rest(self.conv)
        if rest is not None:
            a.st_blksize = min(self.blksize, max(MIN_BLKSIZE, 1 << (rest - 1).bit_length()))
        return a

    def open(self, flags, ctx):
        handle = super().open(flags, ctx)
        handle.nonseekable = True
        # O_NONBLOCK is only visible at open (fs.md B1): such a handle never waits.
        handle.nonblocking = bool(flags & os.O_NONBLOCK)
        return handle

    def poll(self, handle) -> int:
        conv = handle.conv
        proto = conv.table.proto
        mask = 0
        if conv.gone:
            return select.POLLHUP | select.POLLIN
        if proto.readable(conv):
            mask |= select.POLLIN
        if proto.writable(conv):
            mask |= select.POLLOUT
        conv.pollers.add(handle)
        return mask

    async def read(self, handle, off, size):
        conv, fs = handle.conv, self.fs
        proto = conv.table.proto
        stream = proto.aligns_reads
        # Each pass takes data, or parks until readiness, a signal or shutdown.
        while True:
            data = (fs.call(conv, proto.read, conv, size, fs.runtime.now(), off) if stream
                    else fs.call(conv, proto.read, conv, size, fs.runtime.now()))
            if fs.reply_first:
                # A read's frames (its window update) go before its reply, not after:
                # the sender then runs while the reader is still in read(), on the CPU
                # the reader is not using. After the reply, a reader that computes
                # (sha256sum, hashing each 32 KiB) shares its CPU with the sender the
                # update woke: `sha256sum < data` fell from 0.42-0.47 to 0.25-0.30 of
                # sha256sum's own rate that way (bench.py --only files, two pairs).
                # Most reads queue nothing (a window update comes every ~14 of 4 KiB).
                if fs.runtime.stack.tx_pending:
                    fs.runtime.flush()
            if data is not None:
                return data
            if handle.nonblocking:
                raise pyfuse3.FUSEError(errno.EAGAIN)
            if await fs.wait(conv, lambda: proto.readable(conv), handle):
                fs.interrupt_if_dying(handle)   # keep the data for someone alive

    async def write(self, handle, off, buf):
        conv, fs = handle.conv, self.fs
        proto = conv.table.proto
        view = memoryview(buf)     # pyfuse3's bytes: the send ring copies from it once
        if proto.datagrams(conv):
            return await self._write_datagram(handle, conv, proto, view)
        # A byte stream: take it all, parking while the send buffer is full (flow
        # control: nothing is dropped). Bounded: each pass takes bytes or parks.
        done = 0
        while done < len(view):
            n = fs.call(conv, proto.write, conv, view[done:] if done else view, fs.runtime.now())
            if n:
                done += n
                continue
            if handle.nonblocking:
                if done:
                    return done
                raise pyfuse3.FUSEError(errno.EAGAIN)
            try:
                if proto.writable(conv):
                    await fs.wait_buffers(conv, handle)     # room, but no mbufs
                else:
                    await fs.wait(conv, lambda: proto.writable(conv), handle)
            except pyfuse3.FUSEError as exc:
                if done and exc.errno == errno.EINTR:
                    return done    # what was taken is sent: say so
                raise
        return done

    async def _write_datagram(self, handle, conv, proto, view):
        """One write is one datagram."""
        fs = self.fs
        if not proto.writable(conv):
            if handle.nonblocking:
                raise pyfuse3.FUSEError(errno.EAGAIN)
            await fs.wait(conv, lambda: proto.writable(conv), handle)
        n = fs.call(conv, proto.write, conv, view, now_us())
        if n is None and handle.nonblocking:
            raise pyfuse3.FUSEError(errno.EAGAIN)
        return len(view)


class ListenFile(ConvFile):
    """Opening blocks until a call arrives on the announced connection, then accepts it."""

    async def open(self, flags, ctx):
        conv, fs = self.conv, self.fs
        proto = conv.table.proto
        if not conv.announced:
            raise StackError(errno.EINVAL, f"{self.label}: not announced")
        handle = super().open(flags, ctx)
        try:
            # Bounded: each pass accepts, or parks until a call, a signal or shutdown.
            while True:
                child = fs.call(conv, proto.accept, conv)
                if child is not None:
                    break
                if await fs.wait(conv, lambda: conv.sock.readable, handle):
                    fs.interrupt_if_dying(handle)   # leave the call for a live opener
        except BaseException:
            handle.conv.release()
            raise
        # From here the handle belongs to the new connection (reads give its number,
        # writes go to its ctl), not to the listener.
        handle.accepted = handle.conv = conv.table.allocate(ctx.uid, ctx.gid, sock=child)
        handle.accepted.hold()
        conv.release()
        return handle

    async def read(self, handle, off, size):
        return f"{handle.accepted.n}\n".encode()[off:off + size]

    async def write(self, handle, off, buf):
        # Plan 9: the opened listen file is the new connection's ctl.
        await ctl(self.fs, handle.accepted, bytes(buf), handle)
        return len(buf)

    def release(self, handle):
        handle.conv.release()   # the new connection (or the listener, if none came)
