"""Inodes and node kinds.

Inode numbers are never reused: a node made for an interface or connection incarnation
keeps its number until the kernel forgets it, and a new incarnation gets a new number (the
kernel caches by inode; pyfuse3's readdirplus bumps lookup counts, reference/fs.md B1).
Nodes are cached by a key describing what they show (``("if", ifindex, "status")``), so
repeated lookups find the same inode.

Every live file is opened ``direct_io`` with ``keep_cache=False``: its size is 0 and the
page cache must not answer for it (reference/fs.md B5). Text is rendered once per open
handle at offset 0 and then served by offset, so bash's read-ahead-and-seek-back works.
"""

import errno
import stat
from typing import Callable, Iterable

import pyfuse3

from ..stack.errors import StackError

ROOT_INODE = pyfuse3.ROOT_INODE


class Namespace:
    def __init__(self, uid: int, gid: int):
        import time
        self.uid = uid
        self.gid = gid
        # Files have no history of their own: they all carry the instance's start time.
        self.started_ns = time.time_ns()
        self._next = ROOT_INODE + 1
        self.by_ino: dict[int, "Node"] = {}
        self._by_key: dict[object, "Node"] = {}

    def register(self, node: "Node", key: object | None, root: bool = False) -> int:
        if root:
            ino = ROOT_INODE
        else:
            ino = self._next
            self._next += 1
        self.by_ino[ino] = node
        if key is not None:
            self._by_key[key] = node
        return ino

    def cached(self, key: object, factory: Callable[[], "Node"]) -> "Node":
        node = self._by_key.get(key)
        if node is None or not node.alive():
            node = factory()
        return node

    def get(self, ino: int) -> "Node":
        node = self.by_ino.get(ino)
        if node is None or not node.alive():
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def forget(self, ino: int) -> None:
        node = self.by_ino.get(ino)
        if node is not None and not node.alive() and ino != ROOT_INODE:
            del self.by_ino[ino]
            if self._by_key.get(node.key) is node:
                del self._by_key[node.key]


class Node:
    is_dir = False
    # How long the kernel may cache this node's entry and attributes (s). Structural
    # nodes are stable; anything that comes and goes is 0 so the kernel always asks.
    timeout = 0.0
    # st_blksize, the "preferred I/O size" readers size their buffers by.
    blksize = 4096

    def __init__(self, ns: Namespace, name: str, mode: int, key: object | None = None,
                 *, root: bool = False, uid: int | None = None, label: str | None = None):
        self.ns = ns
        self.name = name
        self.label = label or name   # how the log names this node ("if/lo0/ctl")
        self.mode = mode
        self.key = key
        self.uid = ns.uid if uid is None else uid
        self.gid = ns.gid
        self.ino = ns.register(self, key, root)

    def alive(self) -> bool:
        return True

    def attributes(self) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = self.ino
        a.st_mode = self.mode
        a.st_nlink = 2 if self.is_dir else 1
        a.st_uid = self.uid
        a.st_gid = self.gid
        a.st_size = 0
        a.st_blksize = self.blksize
        a.st_blocks = 0
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self.ns.started_ns
        a.entry_timeout = self.timeout
        a.attr_timeout = self.timeout
        return a


class Dir(Node):
    is_dir = True

    def __init__(self, ns, name, key=None, *, mode=0o555, **kw):
        super().__init__(ns, name, stat.S_IFDIR | mode, key, **kw)

    def entries(self) -> Iterable[tuple[str, Node]]:
        return ()

    def child(self, name: str) -> Node | None:
        for n, node in self.entries():
            if n == name:
                return node
        return None


class StaticDir(Dir):
    timeout = 60.0

    def __init__(self, ns, name, key=None, **kw):
        super().__init__(ns, name, key, **kw)
        self.children: dict[str, Node] = {}

    def add(self, node: Node) -> Node:
        self.children[node.name] = node
        return node

    def entries(self):
        return list(self.children.items())

    def child(self, name):
        return self.children.get(name)


class DynamicDir(Dir):
    """A directory whose listing comes from a function each time it is read."""

    def __init__(self, ns, name, key, list_fn: Callable[[], Iterable[tuple[str, Node]]],
                 lookup_fn: Callable[[str], Node | None] | None = None,
                 alive_fn: Callable[[], bool] | None = None, *, timeout: float = 0.0, **kw):
        super().__init__(ns, name, key, **kw)
        self._list = list_fn
        self._lookup = lookup_fn
        self._alive = alive_fn
        self.timeout = timeout

    def alive(self):
        return self._alive is None or self._alive()

    def entries(self):
        return list(self._list())

    def child(self, name):
        if self._lookup is not None:
            return self._lookup(name)
        return super().child(name)


class Handle:
    """One open of a file: who opened it and the text snapshot it is being served."""

    def __init__(self, node: "File", flags: int, ctx):
        self.node = node
        self.flags = flags
        self.uid = ctx.uid
        self.gid = ctx.gid
        self.pid = ctx.pid
        self.snapshot = b""
        self.answered = False    # a write left a response to be read back (route get)

    @property
    def writable(self) -> bool:
        import os
        return (self.flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)

    async def read(self, off: int, size: int) -> bytes:
        return await self.node.read(self, off, size)

    async def write(self, off: int, buf: bytes) -> int:
        return await self.node.write(self, off, buf)

    def release(self) -> None:
        self.node.release(self)


class File(Node):
    def __init__(self, ns, name, key=None, *, mode=0o444, **kw):
        super().__init__(ns, name, stat.S_IFREG | mode, key, **kw)

    def open(self, flags: int, ctx) -> Handle:
        return Handle(self, flags, ctx)

    async def read(self, handle: Handle, off: int, size: int) -> bytes:
        raise pyfuse3.FUSEError(errno.EINVAL)

    async def write(self, handle: Handle, off: int, buf: bytes) -> int:
        raise pyfuse3.FUSEError(errno.EBADF)

    def release(self, handle: Handle) -> None:
        pass


class TextFile(File):
    """Text rendered at offset 0 of each handle; optional ``write_fn`` for ctl verbs.

    ``write_fn(text, handle)`` gets each write() whole (a ctl message); it raises
    StackError to refuse, which becomes the caller's errno.
    """

    def __init__(self, ns, name, key=None, *, render: Callable[[], str],
                 write_fn: Callable[[str, Handle], object] | None = None,
                 alive_fn: Callable[[], bool] | None = None, timeout: float = 0.0, **kw):
        if "mode" not in kw:
            kw["mode"] = 0o644 if write_fn is not None else 0o444
        super().__init__(ns, name, key, **kw)
        self._render = render
        self._write = write_fn
        self._alive = alive_fn
        self.timeout = timeout

    def alive(self):
        return self._alive is None or self._alive()

    def open(self, flags, ctx):
        handle = super().open(flags, ctx)
        if handle.writable and self._write is None:
            # Root passes the kernel's mode check; the node still takes no writes.
            raise StackError(errno.EACCES, f"{self.label} is read-only")
        return handle

    async def read(self, handle, off, size):
        if not handle.answered and (off == 0 or not handle.snapshot):
            text = self._render()
            if hasattr(text, "__await__"):
                text = await text   # e.g. a driver asked for live counters
            handle.snapshot = text.encode()
        return handle.snapshot[off:off + size]

    async def write(self, handle, off, buf):
        if self._write is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        try:
            text = bytes(buf).decode("utf-8")
        except UnicodeDecodeError:
            raise StackError(errno.EINVAL, "control messages must be UTF-8 text") from None
        result = self._write(text, handle)
        if hasattr(result, "__await__"):
            result = await result
        if isinstance(result, str):
            # Request/response on one open file (Plan 9's cs): read the answer back.
            handle.snapshot = result.encode()
            handle.answered = True
        # A ctl write consumes the whole message (bash re-writes a short remainder).
        return len(buf)
