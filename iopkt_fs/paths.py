"""Where instances live, and how clients find them (QNX's SOCK, reference/qnx.md §3.5).

QNX's default prefix is empty (the stack owns /dev/socket). On Linux /dev belongs to the
host, so an instance with no ``prefix=`` mounts at a documented default instead:
``/run/iopkt`` (root) or ``$XDG_RUNTIME_DIR/iopkt`` / ``/tmp/iopkt-<uid>`` (others), with
the instance number appended for ``-i N`` (``/run/iopkt1``). Clients use ``$SOCK`` when set,
else the same default, exactly as libsocket prepends ``$SOCK`` to ``/dev/socket``.
"""

import os


def default_prefix(instance: int = 0) -> str:
    if os.geteuid() == 0:
        base = "/run/iopkt"
    else:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
        base = os.path.join(runtime_dir, "iopkt") if runtime_dir else f"/tmp/iopkt-{os.getuid()}"
    return base if instance == 0 else f"{base}{instance}"


def client_prefix() -> str:
    """The prefix a tool talks to: ``$SOCK`` if set (even empty means "/"), else the default."""
    sock = os.environ.get("SOCK")
    if sock is None:
        return default_prefix(0)
    return sock or "/"


def socket_dir(prefix: str | None = None) -> str:
    return os.path.join(prefix if prefix is not None else client_prefix(), "dev", "socket")


def instances() -> list[tuple[str, str]]:
    """(instance name, mount point) of every io-pkt instance mounted, from mountinfo.

    The FUSE fsname is the instance name (io-pkt, io-pkt1 ...), which mountinfo shows as
    the mount source.
    """
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                rfields = right.split()
                if len(fields) < 5 or len(rfields) < 2:
                    continue
                fstype, source = rfields[0], rfields[1]
                if fstype.startswith("fuse") and source.startswith("io-pkt"):
                    found.append((source, _unescape(fields[4])))
    except OSError:
        pass
    return found


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and i + 3 < len(path) + 0 and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)
