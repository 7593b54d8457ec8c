"""What every tool shares: finding the stack through SOCK, reading and writing its files.

The tools are thin clients: they read text the stack renders and write one ctl line per
request, so anything they do a shell can do with cat and echo.
"""

import errno
import os
import sys

from .. import paths


class ToolError(Exception):
    """A message for stderr and an exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def socket_dir() -> str:
    return paths.socket_dir()


def require_stack(tool: str) -> str:
    """The stack's dev/socket directory, or the error libsocket's socket() would give."""
    d = socket_dir()
    if not os.path.isfile(os.path.join(d, "status")):
        prefix = paths.client_prefix()
        raise ToolError(f"{tool}: socket: {os.strerror(errno.EAFNOSUPPORT)} "
                        f"(no io-pkt serves {prefix}; start one or set SOCK)")
    return d


def read_text(path: str) -> str:
    with open(path, "rb", buffering=0) as f:
        chunks = []
        while True:
            data = f.read(1 << 16)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def write_ctl(path: str, line: str) -> None:
    """One request, one write (a ctl file takes a whole message per write)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def parse_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = value
    return out


def run(fn, argv: list[str] | None = None) -> int:
    """Run a tool's main, turning ToolError into stderr + status and ^C into 130."""
    try:
        return fn(sys.argv[1:] if argv is None else argv) or 0
    except ToolError as exc:
        if str(exc):
            print(str(exc), file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # The stack went away mid-command, or refused something we did not expect.
        tool = getattr(fn, "__module__", "iopkt").rsplit(".", 1)[-1]
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{tool}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
