"""The FUSE ceiling for benchmarks: pyfuse3 + trio serving one small direct_io file.

    python scripts/minimal_fuse.py MOUNTPOINT     (stop with SIGTERM)

It does nothing but answer, so requests/s through it is what any pyfuse3 filesystem on
this machine can reach; bench_fuse.py compares the stack's files against it.
"""

import errno
import os
import signal
import stat
import sys

import pyfuse3
import trio

TEXT = b"lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33192\n\tinet 127.0.0.1 netmask 0xff000000\n"


class Minimal(pyfuse3.Operations):
    FILE = pyfuse3.ROOT_INODE + 1

    def _attr(self, ino):
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.st_mode = (stat.S_IFDIR | 0o555) if ino == pyfuse3.ROOT_INODE else (stat.S_IFREG | 0o444)
        a.entry_timeout = a.attr_timeout = 0
        return a

    async def getattr(self, inode, ctx=None):
        return self._attr(inode)

    async def lookup(self, parent_inode, name, ctx=None):
        if name != b"status":
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(self.FILE)

    async def open(self, inode, flags, ctx):
        return pyfuse3.FileInfo(fh=inode, direct_io=True, keep_cache=False)

    async def read(self, fh, off, size):
        return TEXT[off:off + size]


async def main(mountpoint):
    pyfuse3.init(Minimal(), mountpoint, {"fsname=minimal"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pyfuse3.main)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        pyfuse3.terminate()
    pyfuse3.close(unmount=True)


if __name__ == "__main__":
    os.makedirs(sys.argv[1], exist_ok=True)
    trio.run(main, sys.argv[1])
