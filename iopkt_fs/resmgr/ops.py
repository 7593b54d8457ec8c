"""The pyfuse3 ``Operations`` adapter: every request is served under the request limiter,
every refusal is a FUSEError carrying an errno, and every StackError is also logged.
"""

import errno
import functools
import os
import select
import traceback
import types

import pyfuse3
import trio

from ..stack import slog
from ..stack.errors import StackError
from .fuseloop import BATON, resume
from .nodes import Dir, File, Handle, Namespace


def _bug(self, fn, exc: Exception) -> pyfuse3.FUSEError:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    self.log(slog.ERROR, f"internal error in {fn.__name__}: {type(exc).__name__}: {exc} "
                         f"({os.path.basename(where.filename)}:{where.lineno})")
    return pyfuse3.FUSEError(errno.EIO)


def _driven(fn, limited: bool):
    """The wrapper of every request handler. A bug in a handler must not take the
    filesystem down: pyfuse3 lets any exception other than FUSEError escape its worker
    and end the session, so it is logged and answered EIO. ``limited``: served under the
    request limiter, where a free slot costs two integer updates and no await
    (reference/speed.md: the fixed cost per request is what limits the file path).

    The handler's coroutine is driven here, not awaited: the first time it yields to
    trio, another pyfuse3 worker must take over waiting on /dev/fuse (fuseloop); a
    request answered at once never yields, and its worker goes back to waiting itself.
    One frame over the handler's, either way."""

    @functools.wraps(fn)
    @types.coroutine
    def handler(self, *args, **kwargs):
        limiter = self.limiter if limited else None
        if limiter is not None:
            # RequestLimiter.try_enter written out: a free slot is the common case.
            if limiter.serving < limiter.max and not limiter.waiting:
                limiter.serving += 1
                if limiter.serving > limiter.peak:
                    limiter.peak = limiter.serving
            else:
                BATON.suspending()
                yield from limiter.enter().__await__()
        try:
            coro = fn(self, *args, **kwargs)
            try:
                signal = coro.send(None)
            except StopIteration as done:
                return done.value
            BATON.suspending()
            return (yield from resume(coro, signal))
        except (pyfuse3.FUSEError, trio.Cancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - the point is to catch bugs
            raise _bug(self, fn, exc) from None
        finally:
            if limiter is not None:
                if limiter.waiting:
                    limiter.leave()         # the slot passes to the longest waiter
                else:
                    limiter.serving -= 1    # leave() written out
    handler.watched = True
    return handler


def _guarded(fn):
    """A handler that answers whatever the limiter says (forget, release, statfs ...)."""
    return _driven(fn, limited=False)


def _served(fn):
    """A handler served under the request limiter (io-pkt's threads)."""
    return _driven(fn, limited=True)


class Operations(pyfuse3.Operations):
    def __init__(self, ns: Namespace, limiter, log=slog.discard):
        super().__init__()
        self.ns = ns
        self.limiter = limiter
        self.log = log
        self._handles: dict[int, Handle] = {}
        self._dirs: dict[int, Dir] = {}
        self._next_fh = 1
        self._lookups: dict[int, int] = {}

    # -- helpers --------------------------------------------------------------------------

    def _fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def _refuse(self, exc: StackError, where: str):
        self.log(slog.WARNING, f"{where}: {exc.message}")
        return pyfuse3.FUSEError(exc.errno)

    # -- lookups --------------------------------------------------------------------------

    @_served
    async def lookup(self, parent_inode, name, ctx=None):
        parent = self.ns.get(parent_inode)
        if not parent.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        text = os.fsdecode(name)
        if text == ".":
            node = parent
        else:
            node = parent.child(text)
        if node is None or not node.alive():
            raise pyfuse3.FUSEError(errno.ENOENT)
        self._lookups[node.ino] = self._lookups.get(node.ino, 0) + 1
        attrs = node.attributes()
        if node.name != text and node is not parent:
            # An alias (enmap's en0 for wm0): never cached, the mapping can change.
            attrs.entry_timeout = 0
        return attrs

    def invalidate(self, parent, name: str) -> None:
        """Drop a cached directory entry (from the loop, never inside a handler's wait)."""
        try:
            pyfuse3.invalidate_entry_async(parent.ino, os.fsencode(name), ignore_enoent=True)
        except Exception:  # not mounted (unit use): nothing is cached
            pass

    @_guarded
    async def forget(self, inode_list):
        for ino, nlookup in inode_list:
            left = self._lookups.get(ino, 0) - nlookup
            if left > 0:
                self._lookups[ino] = left
            else:
                self._lookups.pop(ino, None)
                self.ns.forget(ino)

    @_served
    async def getattr(self, inode, ctx=None):
        return self.ns.get(inode).attributes()

    @_served
    async def setattr(self, inode, attr, fields, fh, ctx):
        # truncate(1)/O_TRUNC on a ctl file is accepted and means nothing (fs.md B6).
        node = self.ns.get(inode)
        if fields.update_mode or fields.update_uid or fields.update_gid:
            raise pyfuse3.FUSEError(errno.EPERM)
        return node.attributes()

    @_served
    async def getxattr(self, inode, name, ctx):
        # Only device nodes have one (user.ifname, TAPGIFNAME's stand-in: devices.py).
        # ENOATTR, never ENOSYS: that would switch xattrs off for the whole mount.
        fn = getattr(self.ns.get(inode), "getxattr", None)
        if fn is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return fn(os.fsdecode(name), ctx)

    @_guarded
    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s

    # -- directories ----------------------------------------------------------------------

    @_served
    async def opendir(self, inode, ctx):
        node = self.ns.get(inode)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        fh = self._fh()
        self._dirs[fh] = node
        return fh

    @_served
    async def readdir(self, fh, start_id, token):
        node = self._dirs.get(fh)
        if node is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        entries = list(node.entries())
        for i, (name, child) in enumerate(entries[start_id:], start_id):
            if not pyfuse3.readdir_reply(token, os.fsencode(name), child.attributes(), i + 1):
                break
            self._lookups[child.ino] = self._lookups.get(child.ino, 0) + 1

    @_guarded
    async def releasedir(self, fh):
        self._dirs.pop(fh, None)

    # -- files ----------------------------------------------------------------------------

    @_served
    async def open(self, inode, flags, ctx):
        node = self.ns.get(inode)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        assert isinstance(node, File)
        try:
            handle = node.open(flags, ctx)
            if hasattr(handle, "__await__"):
                handle = await handle   # listen: blocks until a call arrives
        except StackError as exc:
            raise self._refuse(exc, node.label) from None
        fh = self._fh()
        self._handles[fh] = handle
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False,
                                nonseekable=getattr(handle, "nonseekable", False))

    @_served
    async def read(self, fh, off, size):
        handle = self._handles.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        try:
            data = await handle.node.read(handle, off, size)
        except StackError as exc:
            raise self._refuse(exc, handle.node.label) from None
        # More bytes than asked is EIO for the reader (fs.md B5). pyfuse3 replies from
        # any contiguous buffer: no copy here (the one copy was ring -> reply buffer).
        return data if len(data) <= size else memoryview(data)[:size]

    @_served
    async def write(self, fh, off, buf):
        handle = self._handles.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        try:
            return await handle.node.write(handle, off, buf)
        except StackError as exc:
            raise self._refuse(exc, handle.node.label) from None

    @_guarded
    async def poll(self, inode, fh, poll_handle, ctx):
        """poll/select/epoll (pyfuse3 >= 3.5): live files say when they are ready and
        notify the kernel's newest handle once readiness changes; others are always ready."""
        handle = self._handles.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        fn = getattr(handle.node, "poll", None)
        if fn is None:
            return select.POLLIN | select.POLLOUT
        if poll_handle is not None:
            handle.poll_handle = poll_handle
        return fn(handle)

    @_guarded
    async def flush(self, fh):
        # Nothing to flush (every write is taken whole, at once). ENOSYS tells the kernel
        # so for the whole mount (fc->no_flush): close() then costs no FLUSH request at
        # all, and returns 0 as before.
        raise pyfuse3.FUSEError(errno.ENOSYS)

    @_guarded
    async def release(self, fh):
        handle = self._handles.pop(fh, None)
        if handle is not None:
            handle.release()
