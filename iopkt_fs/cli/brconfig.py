"""brconfig, NetBSD 4's as QNX ships it (reference/pseudo-if.md §4.2).

    brconfig -a
    brconfig BRIDGE                          status
    brconfig BRIDGE COMMAND [ARGS] ...       several commands, applied in order

The status is the stack's text (``if/BRIDGE/bridge``); each command is one line to the
bridge's ``if/BRIDGE/ctl``. ``up``/``down`` are collected and applied once at the end,
as brconfig sets the flags with one SIOCSIFFLAGS.
"""

import errno
import os
import re

from .common import ToolError, read_text, require_stack, write_ctl

USAGE = """\
usage: brconfig -a
       brconfig <bridge>
       brconfig <bridge> up|down
       brconfig <bridge> addr
       brconfig <bridge> add <interface>
       brconfig <bridge> delete <interface>
       brconfig <bridge> maxaddr <size>
       brconfig <bridge> timeout <time>
       brconfig <bridge> static <interface> <address>
       brconfig <bridge> deladdr <address>
       brconfig <bridge> flush
       brconfig <bridge> flushall
       brconfig <bridge> ipf|-ipf
       brconfig <bridge> discover|-discover <interface>
       brconfig <bridge> learn|-learn <interface>
       brconfig <bridge> stp|-stp <interface>
       brconfig <bridge> maxage <time>
       brconfig <bridge> fwddelay <time>
       brconfig <bridge> hellotime <time>
       brconfig <bridge> priority <value>
       brconfig <bridge> ifpriority <interface> <value>
       brconfig <bridge> ifpathcost <interface> <value>"""

# command -> number of arguments; numeric ones are checked here, as brconfig does.
COMMANDS = {
    "up": 0, "down": 0, "addr": 0, "add": 1, "delete": 1, "maxaddr": 1, "timeout": 1,
    "static": 2, "deladdr": 1, "flush": 0, "flushall": 0, "discover": 1, "-discover": 1,
    "learn": 1, "-learn": 1,
}
NUMERIC = {"maxaddr", "timeout"}
# Known to NetBSD's brconfig but not to this bridge (no STP, no ipf on bridges).
UNSUPPORTED = {"ipf": 0, "-ipf": 0, "stp": 1, "-stp": 1, "maxage": 1, "fwddelay": 1,
               "hellotime": 1, "priority": 1, "ifpriority": 2, "ifpathcost": 2}
_BRIDGE = re.compile(r"bridge\d+\Z")


def _status(sock: str, name: str) -> str:
    try:
        return read_text(os.path.join(sock, "if", name, "bridge"))
    except OSError as exc:
        code = errno.ENXIO if exc.errno == errno.ENOENT else exc.errno
        raise ToolError(f"brconfig: {name}: {os.strerror(code)}") from None


def _bridges(sock: str) -> list[str]:
    try:
        names = os.listdir(os.path.join(sock, "if"))
    except OSError as exc:
        raise ToolError(f"brconfig: {os.strerror(exc.errno)}") from None
    return sorted((n for n in names if _BRIDGE.match(n)), key=lambda n: int(n[6:]))


def main(argv: list[str]) -> int:
    sock = require_stack("brconfig")
    if not argv:
        raise ToolError(USAGE)
    if argv == ["-a"]:
        print("".join(_status(sock, name) for name in _bridges(sock)), end="")
        return 0
    name, words = argv[0], list(argv[1:])
    if not _BRIDGE.match(name):
        raise ToolError(f"brconfig: {name} is not a bridge")
    text = _status(sock, name)
    if not words:
        print(text, end="")
        return 0
    ctl = os.path.join(sock, "if", name, "ctl")
    flags = None
    while words:
        word = words.pop(0)
        if word in UNSUPPORTED:
            raise ToolError(f"brconfig: {word}: {os.strerror(errno.EOPNOTSUPP)}")
        if word not in COMMANDS:
            raise ToolError(f"brconfig: unknown command: {word}")
        n = COMMANDS[word]
        if len(words) < n:
            raise ToolError(f"brconfig: command {word} requires {n} argument{'s' if n != 1 else ''}")
        args = [words.pop(0) for _ in range(n)]
        if word in NUMERIC:
            try:
                if int(args[0], 0) < 0:
                    raise ValueError
            except ValueError:
                raise ToolError(f"brconfig: {word}: invalid value: {args[0]}") from None
        if word in ("up", "down"):
            flags = word
        elif word == "addr":
            body = _status(sock, name).split("\tAddress cache", 1)[1]
            print("".join(line[1:] + "\n" for line in body.splitlines()[1:]), end="")
        else:
            try:
                write_ctl(ctl, " ".join([word] + args))
            except OSError as exc:
                what = " ".join([word] + args[:1])
                raise ToolError(f"brconfig: {what}: {os.strerror(exc.errno)}") from None
    if flags is not None:
        try:
            write_ctl(ctl, flags)
        except OSError as exc:
            raise ToolError(f"brconfig: SIOCSIFFLAGS: {os.strerror(exc.errno)}") from None
    return 0
