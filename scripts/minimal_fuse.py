"""The FUSE ceiling for benchmarks: pyfuse3 + trio answering at once, with nothing behind.

    python scripts/minimal_fuse.py MOUNTPOINT [STREAM_BYTES]     (stop with SIGTERM)

It does nothing but answer, so what a reader gets through it is what any pyfuse3
filesystem on this machine can give that reader. The files:

    status          a small direct_io file (bench_fuse.py's control-file reads)
    zero            a stream: each open reads STREAM_BYTES zero bytes (default 1 GiB),
                    a READ returning as much as it asks for, then EOF (the ceiling of
                    `sha256sum < data`)
    listen, 1/data, 1/ctl
                    the shape of a bash server's turn (`M=$(cat listen)`, `cat $M/data`,
                    `echo close > $M/ctl`): "1\\n", "x", and a file that takes any write;
                    their names and attributes cached by the kernel, as the stack's are
"""

import errno
import os
import signal
import stat
import sys

import pyfuse3
import trio

TEXT = b"lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33192\n\tinet 127.0.0.1 netmask 0xff000000\n"
ROOT = pyfuse3.ROOT_INODE
STATUS, ZERO, LISTEN, CONN, DATA, CTL = range(ROOT + 1, ROOT + 7)
# (parent, name) -> inode; inode -> (mode, what a READ gives)
NAMES = {(ROOT, b"status"): STATUS, (ROOT, b"zero"): ZERO, (ROOT, b"listen"): LISTEN,
         (ROOT, b"1"): CONN, (CONN, b"data"): DATA, (CONN, b"ctl"): CTL}
NODES = {ROOT: (stat.S_IFDIR | 0o555, b""), STATUS: (stat.S_IFREG | 0o444, TEXT),
         ZERO: (stat.S_IFREG | 0o444, b""), LISTEN: (stat.S_IFREG | 0o444, b"1\n"),
         CONN: (stat.S_IFDIR | 0o555, b""), DATA: (stat.S_IFREG | 0o444, b"x"),
         CTL: (stat.S_IFREG | 0o666, b"")}
ZEROS = bytes(1 << 20)
# The bash tree's names never change, so the kernel may keep them, as the stack lets it
# keep its own fixed names (sockfs.py's CACHE); status and zero are asked every time.
CACHED = {LISTEN: 60.0, CONN: 60.0, DATA: 60.0, CTL: 60.0}


class Minimal(pyfuse3.Operations):
    def __init__(self, stream_bytes: int):
        super().__init__()
        self.stream_bytes = stream_bytes
        self.left: dict[int, int] = {}      # a zero stream's fh -> bytes it still gives
        self.next_fh = 1 << 20

    def _attr(self, ino):
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.st_mode = NODES[ino][0]
        a.entry_timeout = a.attr_timeout = CACHED.get(ino, 0)
        return a

    async def getattr(self, inode, ctx=None):
        return self._attr(inode)

    async def setattr(self, inode, attr, fields, fh, ctx):
        return self._attr(inode)            # `>` truncates ctl first: nothing to do

    async def lookup(self, parent_inode, name, ctx=None):
        ino = NAMES.get((parent_inode, name))
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(ino)

    async def open(self, inode, flags, ctx):
        if inode == ZERO:                   # each open its own stream
            self.next_fh += 1
            self.left[self.next_fh] = self.stream_bytes
            return pyfuse3.FileInfo(fh=self.next_fh, direct_io=True, keep_cache=False)
        return pyfuse3.FileInfo(fh=inode, direct_io=True, keep_cache=False)

    async def read(self, fh, off, size):
        if fh == STATUS:
            return TEXT[off:off + size]
        left = self.left.get(fh)
        if left is None:
            return NODES[fh][1][off:off + size]
        n = min(size, left, len(ZEROS))
        self.left[fh] = left - n
        return ZEROS[:n]

    async def write(self, fh, off, buf):
        return len(buf)

    async def release(self, fh):
        self.left.pop(fh, None)


async def main(mountpoint, stream_bytes):
    pyfuse3.init(Minimal(stream_bytes), mountpoint, {"fsname=minimal"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pyfuse3.main)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        pyfuse3.terminate()
    pyfuse3.close(unmount=True)


if __name__ == "__main__":
    os.makedirs(sys.argv[1], exist_ok=True)
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 30)
