"""io-pkt-v4, io-pkt-v4-hc, io-pkt-v6-hc: start a stack instance.

Like io-pkt, the command returns to the shell by itself - but only once the filesystem is
mounted and answering, so the next line of a script can use it. ``--foreground`` keeps it
attached (systemd, tests).
"""

import os
import signal
import sys

import trio

from .. import paths
from ..drivers import registry
from ..manager import Instance, StartError
from ..options import no_effect_on_linux, parse_command_line, parse_tcpip_options
from ..slog import SlogRing
from ..stack.config import V4, V4_HC, V6_HC, Variant

_FEATURES = {
    "io-pkt-v4": "This is a memory reduced variant: no IPv6, crypto/IPsec, 802.11, bridging,\n"
                 "GRE/GIF, multicast routing or multipoint PPP.\n",
    "io-pkt-v4-hc": "IPv4 with the crypto API (ipsec, nocryptodev, pfil_ipsec options).\n",
    "io-pkt-v6-hc": "IPv6 and IPv4 with the crypto API; /dev/socket/24 is served.\n",
}


def _no_effect(variant: Variant) -> str:
    """The options io-pkt has that are accepted (clamped, logged) but change nothing here."""
    lines = ["                   Accepted as io-pkt does, with no effect on Linux:"]
    for name, why in no_effect_on_linux(variant):
        lines.append(f"                     {name:<26}{why}")
    return "\n".join(lines) + "\n"


def usage(variant: Variant) -> str:
    name = variant.name
    return f"""\
{name} - networking manager (QNX io-pkt on Linux, served as files).

{_FEATURES[name]}
Syntax:
{name} [-P priority] [-i instance] [-S] [-t threads] [-v] [--foreground]
       [-d driver [driver_options]] ... [-p protocol [protocol_options]] ...

Options:
 -d driver [opts]  Load a driver: a bare name means devnp-NAME, else the legacy devn-NAME
                   through the shim; a path (containing '/') is loaded as given. Options are
                   comma-separated; the stack takes name=, unit= and lan= itself.
                   Built in: {', '.join(registry.available())}
 -p tcpip [opts]   Options of the TCP/IP stack, comma-separated, e.g.
                   prefix=/path, forward, fastforward=0, random, enmap=0,
                   reuseport_unicast, somaxconn=N, threads_min=N, threads_max=N,
                   mclbytes=N, pagesize=N, pkt_cache=N, cache=0{', forward6' if variant.inet6 else ''}{', ipsec' if variant.crypto else ''}.
                   Unknown ones are logged as 'tcpip: unrecognized option'.
{_no_effect(variant)} -i instance       Instance number N: serves mount -T io-pktN. Its default prefix is
                   {paths.default_prefix(1)[:-1]}N.
 -P priority       Main thread priority (recorded; default 21).
 -S                Don't install the fault handler for SIGSEGV.
 -t threads        Processing threads, 1..100 (recorded).
 -v                Copy log messages to the console as well as the log.
 --foreground      Stay attached to the terminal instead of returning once serving.

The stack mounts a filesystem at the prefix (default {paths.default_prefix(0)}):
PREFIX/dev/socket/ holds the stack's files; tools find it through $SOCK=PREFIX.
Stop it with SIGTERM (kill PID; the pid is in PREFIX/dev/socket/status).
"""


def _run(argv: list[str], variant: Variant) -> int:
    prog = variant.name
    cl = parse_command_line(argv, variant, prog)
    for line in cl.stderr:
        print(line, file=sys.stderr)
    if cl.help:
        print(usage(variant), end="")
        return 0
    if cl.fatal:
        print(cl.fatal, file=sys.stderr)
        return 1
    tcpip = parse_tcpip_options(cl.tcpip, variant, instance=cl.instance)
    log = SlogRing(console=cl.verbose > 0, syslog_ident=cl.instance_name)
    if cl.foreground:
        return _serve(cl, tcpip, log, ready_fd=None)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return _wait_for_child(read_fd, prog)
    # The child: its own session, like procmgr_daemon() gives io-pkt.
    os.close(read_fd)
    os.setsid()
    code = _serve(cl, tcpip, log, ready_fd=write_fd)
    os._exit(code)


def _wait_for_child(read_fd: int, prog: str) -> int:
    chunks = []
    with os.fdopen(read_fd, "rb") as r:
        while True:
            data = r.read(4096)
            if not data:
                break
            chunks.append(data)
    message = b"".join(chunks).decode(errors="replace")
    if message.startswith("ok"):
        return 0
    print(message.strip() or f"{prog}: the stack exited before it was serving", file=sys.stderr)
    return 1


def _serve(cl, tcpip, log, ready_fd: int | None) -> int:
    # A background job of a non-interactive shell starts with SIGINT ignored (fs.md B4).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        inst = Instance(cl, tcpip, log)
    except StartError as exc:
        return _fail(ready_fd, str(exc))

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(inst.run)
            if ready_fd is not None:
                os.write(ready_fd, b"ok\n")
                os.close(ready_fd)
                _detach_stdio(keep_stderr=cl.verbose > 0)

    try:
        trio.run(main)
    except StartError as exc:
        return _fail(ready_fd, str(exc))
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt arrives in a group
        if _only_interrupts(exc):
            return 0
        message = f"{cl.prog}: {type(exc).__name__}: {exc}"
        if isinstance(exc, BaseExceptionGroup):
            start = [e for e in _leaves(exc) if isinstance(e, StartError)]
            if start:
                return _fail(ready_fd, str(start[0]))
        if ready_fd is not None:
            return _fail(ready_fd, message)
        raise
    return 0


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


def _only_interrupts(exc: BaseException) -> bool:
    return all(isinstance(e, KeyboardInterrupt) for e in _leaves(exc))


def _fail(ready_fd: int | None, message: str) -> int:
    if ready_fd is None:
        print(message, file=sys.stderr)
    else:
        try:
            os.write(ready_fd, message.encode() + b"\n")
            os.close(ready_fd)
        except OSError:
            pass
    return 1


def _detach_stdio(keep_stderr: bool) -> None:
    """Once serving, let go of the caller's terminal/pipes so `$(io-pkt ...)` returns."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if not keep_stderr:
        os.dup2(null, 2)
    os.close(null)


def main_v4() -> int:
    return _run(sys.argv[1:], V4)


def main_v4_hc() -> int:
    return _run(sys.argv[1:], V4_HC)


def main_v6_hc() -> int:
    return _run(sys.argv[1:], V6_HC)


if __name__ == "__main__":
    sys.exit(main_v6_hc())
