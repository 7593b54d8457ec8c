"""Live capture, the bpf analogue: ``if/<name>/pcap`` and ``if/<name>/pcapstat``.

Each open of ``pcap`` is one reader (one bpf descriptor): it is served a classic pcap
stream (``drivers/pcapfile.py``: the 24-byte file header, then one record per frame the
interface received or sent, as it happens), so ``tshark -r - < P/dev/socket/if/wan0/pcap``
and ``wireshark -k -i <(cat ...)`` read it as they are. The link type is Ethernet for
Ethernet interfaces and raw IP (LINKTYPE_RAW, IPv4 or IPv6 by the version nibble) for the
others (lo0, tunnels).

The stack is never slowed by a reader. The core hands every frame to each reader's
``tap`` (``Interface.bpf``; an empty list costs one test per batch), which stamps it and
queues the record while the reader's queue holds less than ``QUEUE_BYTES`` (BSD's bpf
store buffer, larger here); otherwise the record is counted as dropped (``bs_drop``).
A reader parked on an empty queue is woken through the runtime's one readiness queue
(``stack.notify_socket`` -> ``Readiness``), exactly as a connection's data file is, and
parks with ``SocketFS.wait`` (no io-pkt thread held, EINTR for a signalled opener).

``pcapstat`` shows every open reader, one line each, BSD's ``struct bpf_stat`` names::

    pid 4242 recv 1200 drop 200 queued 35

``recv`` counts the frames the reader was handed, ``drop`` those it lost because it read
too slowly, ``queued`` those waiting. When the interface goes, readers get end of file.
"""

import collections
import errno
import os
import select
import time

import pyfuse3

from ..drivers.pcapfile import GLOBAL, LINKTYPE_ETHERNET, MAGIC_US, RECORD
from ..stack.iface.interface import IFT_ETHER, Interface
from .nodes import File, Handle
from .sockfs import Waitable

LINKTYPE_RAW = 101            # raw IPv4/IPv6, no link header (pcap-linktype(7))
SNAPLEN = 262144              # whole frames, super-segments included
QUEUE_BYTES = 1 << 20         # per reader: more unread than this and records are dropped

_pack_record = RECORD.pack


def linktype(iface: Interface) -> int:
    return LINKTYPE_ETHERNET if iface.kind == IFT_ETHER else LINKTYPE_RAW


class Reader(Waitable):
    """One open of ``pcap``: a bounded record queue the core feeds and a FUSE handle drains.

    What ``SocketFS.wait`` needs of a connection (``parked``, ``gone``, ``wake``).
    """

    def __init__(self, iface: Interface, stack, pid: int):
        self.iface = iface
        self.stack = stack
        self.pid = pid
        self.head = GLOBAL.pack(MAGIC_US, 2, 4, 0, 0, SNAPLEN, linktype(iface))
        self.queue: collections.deque = collections.deque()
        self.queued_bytes = 0
        self.recv = 0
        self.drop = 0
        self.gone = False
        self.parked: list = []
        self.pollers: set = set()

    def tap(self, frame) -> None:
        """Called by the core for each frame: queue a record or count a drop. Never blocks."""
        self.recv += 1
        n = len(frame)
        if self.queued_bytes + n + 16 > QUEUE_BYTES:
            self.drop += 1
            return
        ts = time.time()
        sec = int(ts)
        record = _pack_record(sec, int((ts - sec) * 1e6), n, n) + frame
        if not self.queue:
            # Empty -> readable: the runtime's readiness dispatcher wakes whoever waits.
            self.stack.notify_socket(self)
        self.queue.append(record)
        self.queued_bytes += len(record)

    @property
    def readable(self) -> bool:
        return bool(self.queue) or bool(self.head) or self.gone

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes of the stream: the file header first, then records (a record
        larger than what is left of ``size`` is split; the rest comes next read)."""
        parts = []
        room = size
        if self.head:
            parts.append(self.head[:room])
            self.head = self.head[room:]
            room -= len(parts[0])
        queue = self.queue
        while room > 0 and queue:
            record = queue[0]
            if len(record) <= room:
                queue.popleft()
                parts.append(record)
                room -= len(record)
                self.queued_bytes -= len(record)
            else:
                parts.append(record[:room])
                queue[0] = record[room:]
                self.queued_bytes -= room
                room = 0
        return b"".join(parts)

    def close(self) -> None:
        self.gone = True
        try:
            self.iface.bpf.remove(self)
        except ValueError:
            pass
        self.wake()

    def status(self) -> str:
        return f"pid {self.pid} recv {self.recv} drop {self.drop} queued {len(self.queue)}\n"


class Capture:
    """The capture files of one interface and its open readers."""

    def __init__(self, inst, iface: Interface):
        self.inst = inst
        self.iface = iface
        self.readers: list[Reader] = []

    def open(self, handle: Handle) -> Reader:
        reader = Reader(self.iface, self.inst.stack, handle.pid)
        self.readers.append(reader)
        self.iface.bpf.append(reader)
        self.inst.runtime.readiness.watch(reader, reader.wake)
        return reader

    def close(self, reader: Reader) -> None:
        if reader in self.readers:
            self.readers.remove(reader)
        self.inst.runtime.readiness.unwatch(reader, reader.wake)
        reader.close()

    def status(self) -> str:
        return "".join(r.status() for r in self.readers)


class PcapFile(File):
    """``if/<name>/pcap``: opening makes a reader; reads are the live pcap stream."""

    nonseekable = True
    blksize = 1 << 16

    def __init__(self, ns, name, key, *, capture: Capture, alive_fn, **kw):
        super().__init__(ns, name, key, mode=0o400, **kw)
        self.capture = capture
        self._alive = alive_fn

    def alive(self):
        return self._alive()

    def open(self, flags, ctx):
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EACCES)
        handle = Handle(self, flags, ctx)
        handle.nonseekable = True
        handle.nonblocking = bool(flags & os.O_NONBLOCK)
        handle.reader = self.capture.open(handle)
        return handle

    def poll(self, handle) -> int:
        reader = handle.reader
        if reader.gone:
            return select.POLLIN | select.POLLHUP
        reader.pollers.add(handle)
        return select.POLLIN if reader.readable else 0

    async def read(self, handle, off, size):
        reader = handle.reader
        sockets = self.capture.inst.sockets
        while True:
            data = reader.take(size)
            if data or reader.gone:
                return data           # b"" once the interface is gone: end of file
            if handle.nonblocking:
                raise pyfuse3.FUSEError(errno.EAGAIN)
            try:
                if await sockets.wait(reader, lambda: reader.readable, handle):
                    sockets.interrupt_if_dying(handle)
            except pyfuse3.FUSEError as exc:
                if exc.errno == errno.ECONNABORTED:
                    return b""
                raise

    def release(self, handle):
        self.capture.close(handle.reader)
