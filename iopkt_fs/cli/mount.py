"""mount -T io-pkt[N] and umount, as QNX's mount utility does them (reference/qnx.md §3.1).

    mount -T io-pkt[N] [-o options] driver     load a driver into that instance
    mount -T io-net[N] | tcpip ...             the same (compat names; tcpip: any instance)
    umount PREFIX/dev/io-net/enN               unload a legacy io-net driver

Any other type, or any other umount path, is handed to the system's mount/umount, so the
QNX-named command can sit first on PATH without breaking Linux.
"""

import errno
import os
import re
import sys

from .. import paths
from .common import ToolError, run, write_ctl

SYSTEM_MOUNT = "/bin/mount"
SYSTEM_UMOUNT = "/bin/umount"
_TYPE = re.compile(r"(io-pkt|io-net)(\d*)\Z")


def _instance_for(mtype: str) -> str | None:
    """The mount point of the instance that answers this type, or None (ENOENT)."""
    found = paths.instances()
    if mtype != "tcpip":
        m = _TYPE.match(mtype)
        want = "io-pkt" + (m.group(2) if m.group(2) not in ("", "0") else "")
        found = [(name, where) for name, where in found if name == want]
    # tcpip is accepted by every instance. Of the instances that answer, take the one SOCK
    # names, else the first: on QNX one node has one io-pkt of each number, here two
    # stacks at different prefixes can both be instance 0, and SOCK says which is meant.
    sock = os.path.realpath(paths.client_prefix())
    for _, where in found:
        if os.path.realpath(where) == sock:
            return where
    return found[0][1] if found else None


def _parse(argv: list[str]):
    mtype = options = None
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-T"):
            mtype = a[2:] or (argv[i + 1] if i + 1 < len(argv) else None)
            i += 1 if a[2:] else 2
        elif a.startswith("-o") and mtype is not None:
            options = a[2:] or (argv[i + 1] if i + 1 < len(argv) else None)
            i += 1 if a[2:] else 2
        else:
            rest.append(a)
            i += 1
    return mtype, options, rest


def mount_main(argv: list[str]) -> int:
    mtype, options, rest = _parse(argv)
    if mtype is None or not (mtype == "tcpip" or _TYPE.match(mtype)):
        os.execv(SYSTEM_MOUNT, [SYSTEM_MOUNT] + argv)   # not ours: the system's mount
    if len(rest) != 1:
        raise ToolError("usage: mount -T io-pkt[N] [-o options] driver")
    special = rest[0]
    where = _instance_for(mtype)
    try:
        if where is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        line = f"mount {special}" + (f" {options}" if options else "")
        write_ctl(os.path.join(where, "dev", "socket", "ctl"), line)
    except OSError as exc:
        code = errno.EINVAL if exc.errno == errno.ENOSYS else exc.errno
        raise ToolError(f"mount: Can't mount {special} (type {mtype}) \n"
                        f"mount: Possible reason: {os.strerror(code)} ") from None
    return 0


def umount_main(argv: list[str]) -> int:
    targets = [a for a in argv if not a.startswith("-")]
    if len(targets) != 1:
        os.execv(SYSTEM_UMOUNT, [SYSTEM_UMOUNT] + argv)
    target = os.path.abspath(targets[0])
    head, name = os.path.split(target.rstrip("/"))
    for _, where in paths.instances():
        if head == os.path.join(where, "dev", "io-net"):
            try:
                write_ctl(os.path.join(where, "dev", "socket", "ctl"), f"unmount {name}")
            except OSError as exc:
                raise ToolError(f"umount: Can't unmount {targets[0]}: {os.strerror(exc.errno)}") from None
            return 0
    os.execv(SYSTEM_UMOUNT, [SYSTEM_UMOUNT] + argv)
    return 1


def mount_entry() -> int:
    return run(mount_main)


def umount_entry() -> int:
    return run(umount_main)


if __name__ == "__main__":
    sys.exit(mount_entry())
