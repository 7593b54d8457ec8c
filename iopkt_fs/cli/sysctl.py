"""sysctl: read and write the stack's tunables (NetBSD's tool, as QNX ships it).

    sysctl [-ne] [-q] name ...          print (a branch name prints everything under it)
    sysctl [-ne] [-q] -w name=value ... write; prints "name: old -> new" as NetBSD does
    sysctl [-ne] -a | -A                 print everything

Values come from PREFIX/dev/socket/sysctl/<a>/<b>/<c>, one file per tunable.
"""

import errno
import os

from .common import ToolError, read_text, require_stack, run, write_ctl

USAGE = """\
usage: sysctl [-ne] [-q] variable ...
       sysctl [-ne] [-q] -w variable=value ...
       sysctl [-ne] -a
       sysctl [-ne] -A"""

_LEVELS = ("top", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _root(sock: str) -> str:
    return os.path.join(sock, "sysctl")


def _walk(base: str, prefix: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        rel = os.path.relpath(dirpath, base)
        parts = [] if rel == "." else rel.split(os.sep)
        for f in filenames:
            out.append(".".join(parts + [f]))
    names = sorted((prefix + "." + n) if prefix else n for n in out)
    return names


def _invalid(name: str, root: str) -> ToolError:
    parts = name.split(".")
    path = root
    for i, comp in enumerate(parts):
        path = os.path.join(path, comp)
        if not os.path.exists(path):
            level = _LEVELS[i] if i < len(_LEVELS) else f"level {i + 1}"
            return ToolError(f"sysctl: {level} level name '{comp}' in '{name}' is invalid")
    return ToolError(f"sysctl: {name}: {os.strerror(errno.ENOENT)}")


def _value(root: str, name: str) -> str:
    return read_text(os.path.join(root, *name.split("."))).rstrip("\n")


def _line(name: str, value: str, opts: set[str]) -> str:
    if "n" in opts:
        return value
    return f"{name}={value}" if "e" in opts else f"{name} = {value}"


def main(argv: list[str]) -> int:
    opts: set[str] = set()
    args = []
    for word in argv:
        if word.startswith("-") and len(word) > 1 and not args:
            for c in word[1:]:
                if c not in "neqwaA":
                    raise ToolError(f"sysctl: unknown option -- {c}\n{USAGE}")
                opts.add(c)
        else:
            args.append(word)
    sock = require_stack("sysctl")
    root = _root(sock)
    status = 0
    if "a" in opts or "A" in opts:
        for name in _walk(root, ""):
            print(_line(name, _value(root, name), opts))
        return 0
    if not args:
        raise ToolError(USAGE)
    for arg in args:
        if "w" in opts or "=" in arg:
            name, sep, value = arg.partition("=")
            if not sep:
                print(f"sysctl: {arg}: must be of the form name=value")
                status = 1
                continue
            path = os.path.join(root, *name.split("."))
            if not os.path.isfile(path):
                print(_invalid(name, root), file=_stderr())
                status = 1
                continue
            old = _value(root, name)
            try:
                write_ctl(path, value)
            except OSError as exc:
                print(f"sysctl: {name}: {os.strerror(exc.errno)}", file=_stderr())
                status = 1
                continue
            if "q" not in opts:
                new = _value(root, name)
                print(new if "n" in opts else f"{name}: {old} -> {new}")
            continue
        path = os.path.join(root, *arg.split("."))
        if os.path.isdir(path):
            for name in _walk(path, arg):
                print(_line(name, _value(root, name), opts))
        elif os.path.isfile(path):
            print(_line(arg, _value(root, arg), opts))
        else:
            if "q" not in opts:
                print(_invalid(arg, root), file=_stderr())
            status = 1
    return status


def _stderr():
    import sys
    return sys.stderr


def entry() -> int:
    return run(main)
