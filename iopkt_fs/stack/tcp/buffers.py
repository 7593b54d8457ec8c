"""Socket buffers: a byte ring and a reassembly map (no per-byte Python loops).

``Ring`` is a fixed-capacity circular buffer over one ``bytearray``. Writes and reads are
at most two slice copies (done in C); ``peek`` hands back a ``memoryview`` when the range is
contiguous, so a 64 KB segment is sliced, not copied, until the wire layer joins it to its
header. The send buffer holds the bytes from SND.UNA on; the receive buffer holds the bytes
the user has not read yet, then a gap, then out-of-order data written in place at its
offset ("write_at"), exactly where it will sit once the gap is filled (smoltcp's
RingBuffer + Assembler design).

``Assembler`` remembers which ranges beyond the contiguous prefix have arrived, as a sorted
list of ``[start, end)`` offsets relative to RCV.NXT, bounded in count (``max_ranges``) so a
hostile peer cannot make us track unbounded holes; the bytes themselves are bounded by the
ring (RFC 9293 3.10.7.4: data is only kept inside the advertised window).
"""

from __future__ import annotations

import bisect

from ..mbuf import MT_DATA


class Ring:
    __slots__ = ("_buf", "_head", "cap", "pool", "used")

    def __init__(self, capacity: int, pool=None):
        # The storage is allocated on first write: an idle connection holds no buffers
        # (10,000 idle connections must not cost 10,000 x (sendspace + recvspace)).
        self._buf: bytearray | None = None
        # ``cap`` and ``used`` are read directly on the per-segment path (a property or
        # __len__ is a Python call each; ~30 a connection); only Ring's methods write them.
        self.cap = capacity
        self._head = 0
        self.used = 0
        # The stack's MbufPool (stack/mbuf.py): storage is charged as socket-buffer data
        # while allocated. Always granted: the bytes were already let into the window.
        self.pool = pool

    def _alloc(self, capacity: int) -> bytearray:
        if self.pool is not None:
            self.pool.take(capacity, MT_DATA, force=True)
        return bytearray(capacity)

    def _drop_storage(self) -> None:
        if self._buf is not None and self.pool is not None:
            self.pool.give(len(self._buf), MT_DATA)
        self._buf = None

    @property
    def allocated(self) -> bool:
        return self._buf is not None

    def __len__(self) -> int:
        return self.used

    @property
    def capacity(self) -> int:
        return self.cap

    @property
    def free(self) -> int:
        return self.cap - self.used

    def resize(self, capacity: int) -> None:
        """Change the capacity (SO_SNDBUF/SO_RCVBUF); never below what is stored."""
        capacity = max(capacity, self.used)
        if self._buf is not None:
            data = self.peek_bytes(0, self.used)
            self._drop_storage()
            self._buf = self._alloc(capacity)
            self._buf[:len(data)] = data
        self.cap, self._head = capacity, 0

    def grow(self, capacity: int) -> None:
        """Enlarge the ring (buffer autotuning), keeping every stored byte where it is
        relative to the read position - out-of-order data past the end included."""
        if capacity <= self.cap:
            return
        buf = self._buf
        if buf is not None:
            new = self._alloc(capacity)
            head = self._head
            tail = self.cap - head
            view = memoryview(buf)
            new[:tail] = view[head:]
            new[tail:self.cap] = view[:head]
            self._drop_storage()
            self._buf = new
        self.cap, self._head = capacity, 0

    def _copy_in(self, pos: int, data) -> None:
        """Copy ``data`` to absolute ring position ``pos`` (wrapping)."""
        if self._buf is None:
            self._buf = self._alloc(self.cap)
        n = len(data)
        first = min(n, self.cap - pos)
        self._buf[pos:pos + first] = data[:first]
        if first < n:
            self._buf[:n - first] = data[first:]

    def write(self, data) -> int:
        """Append as much of ``data`` as fits; returns the count taken."""
        n = min(len(data), self.cap - self.used)
        if n:
            mv = memoryview(data)[:n]
            self._copy_in((self._head + self.used) % self.cap, mv)
            self.used += n
        return n

    def write_at(self, offset: int, data) -> None:
        """Store ``data`` ``offset`` bytes past the end without committing it (reassembly).
        The caller guarantees ``offset + len(data) <= free``."""
        if data:
            self._copy_in((self._head + self.used + offset) % self.cap, memoryview(data))

    def commit(self, n: int) -> None:
        """Make ``n`` bytes written with ``write_at`` part of the readable data."""
        self.used += n

    def peek(self, offset: int, n: int):
        """``n`` bytes from ``offset``: a memoryview when contiguous, else one joined bytes."""
        n = min(n, self.used - offset)
        if n <= 0:
            return b""
        start = (self._head + offset) % self.cap
        end = start + n
        buf = memoryview(self._buf)
        if end <= self.cap:
            return buf[start:end]
        return b"".join((buf[start:], buf[:end - self.cap]))

    def peek_bytes(self, offset: int, n: int) -> bytes:
        return bytes(self.peek(offset, n))

    def consume(self, n: int) -> None:
        n = min(n, self.used)
        self._head = (self._head + n) % self.cap
        self.used -= n
        # (No rewinding of _head when empty: out-of-order bytes may sit past the end.)

    def read(self, n: int) -> bytes:
        data = self.peek_bytes(0, n)
        self.consume(len(data))
        return data

    def release(self) -> None:
        """Give the storage back if nothing is stored (an idle connection)."""
        if self.used == 0:
            self._drop_storage()
            self._head = 0

    def discard(self) -> None:
        """Drop what is stored and the storage (a closed connection's leftovers)."""
        self.used = 0
        self.release()

    def read_into(self, out) -> int:
        """Copy up to ``len(out)`` bytes into the writable buffer ``out``; returns the count."""
        n = min(len(out), self.used)
        if n:
            start = self._head
            first = min(n, self.cap - start)
            mv = memoryview(out)
            # From a view of the ring: slicing the bytearray itself would copy first.
            buf = memoryview(self._buf)
            mv[:first] = buf[start:start + first]
            if first < n:
                mv[first:n] = buf[:n - first]
            self._head = (start + n) % self.cap      # consume(n), written out
            self.used -= n
        return n


class Assembler:
    """Out-of-order ranges ``[start, end)`` as offsets from RCV.NXT, sorted and disjoint."""

    __slots__ = ("_ends", "max_ranges", "starts")

    def __init__(self, max_ranges: int = 32):
        self.starts: list[int] = []
        self._ends: list[int] = []
        self.max_ranges = max_ranges

    def __bool__(self) -> bool:
        return bool(self.starts)

    def __len__(self) -> int:
        return len(self.starts)

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self._ends))

    def buffered(self) -> int:
        return sum(e - s for s, e in zip(self.starts, self._ends))

    def add(self, start: int, end: int) -> bool:
        """Record ``[start, end)``; False (nothing recorded) if it would need a range too
        many. Overlapping and adjacent ranges merge."""
        if start >= end:
            return True
        starts, ends = self.starts, self._ends
        i = bisect.bisect_left(ends, start)          # first range that ends at/after start
        j = bisect.bisect_right(starts, end)         # ranges [i, j) touch [start, end)
        if i == j and len(starts) >= self.max_ranges:
            return False
        if i < j:
            start = min(start, starts[i])
            end = max(end, ends[j - 1])
        starts[i:j] = [start]
        ends[i:j] = [end]
        return True

    def take_front(self) -> int:
        """If a range starts at offset 0, remove it, rebase the rest past it and return its
        length (else 0)."""
        if self.starts and self.starts[0] == 0:
            n = self._ends[0]
            del self.starts[0], self._ends[0]
            self.shift(n)   # offsets are relative to RCV.NXT, which moves by n
            return n
        return 0

    def shift(self, n: int) -> None:
        """RCV.NXT advanced by ``n``: rebase every offset, dropping what falls before 0."""
        starts, ends = self.starts, self._ends
        k = 0
        while k < len(ends) and ends[k] <= n:
            k += 1
        del starts[:k], ends[:k]
        for i in range(len(starts)):
            starts[i] = max(0, starts[i] - n)
            ends[i] -= n
