"""iopkt: the QNX networking tools under one command, so they don't clobber Linux's.

    iopkt ifconfig|route|netstat|sysctl|arp|ndp|ping|ping6|mount|umount|if_up|sloginfo|nicinfo|tcpdump|brconfig [args]
    iopkt shell-path      print a directory of QNX-named commands for the front of PATH

A buildfile can run ``PATH=$(iopkt shell-path):$PATH`` and then call ``ifconfig`` and
``mount -T io-pkt`` as on QNX; that ``mount``/``umount`` hand every other type to the
system's.
"""

import importlib
import os
import sys

from .common import run

# subcommand -> (module, function)
COMMANDS = {
    "ifconfig": ("ifconfig", "main"),
    "sysctl": ("sysctl", "main"),
    "if_up": ("if_up", "main"),
    "sloginfo": ("sloginfo", "main"),
    "nicinfo": ("nicinfo", "main"),
    "mount": ("mount", "mount_main"),
    "umount": ("mount", "umount_main"),
    "route": ("route", "main"),
    "netstat": ("netstat", "main"),
    "arp": ("arp", "main"),
    "ping": ("ping", "main"),
    "ping6": ("ping6", "main"),
    "ndp": ("ndp", "main"),
    "tcpdump": ("tcpdump", "main"),
    "brconfig": ("brconfig", "main"),
}
SHELL_NAMES = ("ifconfig", "route", "netstat", "sysctl", "arp", "mount", "umount", "ndp", "ping6", "brconfig")

USAGE = """\
usage: iopkt COMMAND [ARGS...]

QNX io-pkt tools for an iopkt_fs stack (the stack is found through $SOCK):
  ifconfig   configure interfaces           sysctl     read/write tunables
  route      routing table                  netstat    connections, routes, statistics
  arp        ARP cache                      nicinfo    driver and counter report
  mount      mount -T io-pkt[N] DRIVER      umount     unload a legacy io-net driver
  if_up      wait for interfaces            sloginfo   the stack's log
  ping       ICMP echo from the stack's side
  ping6      ICMPv6 echo from the stack's side  ndp        IPv6 neighbour cache (KAME)
  tcpdump    watch an interface's frames (live capture, libpcap filters)
  brconfig   bridges: members, learned addresses (hc variants)
  shell-path print a directory of QNX-named commands to put first on PATH
"""


def shell_path() -> str:
    """Write (if needed) and return the directory of QNX-named wrapper commands."""
    candidates = [os.path.join(sys.prefix, "share", "iopkt_fs", "shell"),
                  os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                               "iopkt_fs", "shell")]
    for directory in candidates:
        try:
            os.makedirs(directory, exist_ok=True)
            for name in SHELL_NAMES:
                path = os.path.join(directory, name)
                body = f'#!/bin/sh\nexec "{sys.executable}" -m iopkt_fs.cli.iopkt {name} "$@"\n'
                try:
                    with open(path) as f:
                        if f.read() == body:
                            continue
                except OSError:
                    pass
                tmp = f"{path}.{os.getpid()}"
                with open(tmp, "w") as f:
                    f.write(body)
                os.chmod(tmp, 0o755)
                os.replace(tmp, path)
            return directory
        except OSError:
            continue
    raise SystemExit("iopkt shell-path: no writable place for the wrapper commands")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 1
    cmd, args = argv[0], argv[1:]
    if cmd == "shell-path":
        print(shell_path())
        return 0
    if cmd not in COMMANDS:
        print(f"iopkt: unknown command {cmd!r}\n{USAGE}", file=sys.stderr, end="")
        return 1
    module_name, fn_name = COMMANDS[cmd]
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
    except ModuleNotFoundError:
        print(f"iopkt {cmd}: not part of this build yet", file=sys.stderr)
        return 1
    return run(getattr(module, fn_name), args)


if __name__ == "__main__":
    sys.exit(main())
