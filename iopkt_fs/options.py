"""io-pkt's command line, parsed the way io-pkt parses it (reference/qnx.md §1.2, §1.3).

Two parts:

* ``parse_command_line`` - getopt with io-pkt's optstring ``p:P:d:t:vSDi:``. An unknown
  option prints ``<prog>: illegal option -- x`` and parsing goes on (QNX libc getopt; io-pkt
  ignores it). ``-d driver`` and ``-p protocol`` take the next word as their option string
  only if it does not start with ``-``. Stray words are skipped.
* ``parse_tcpip_options`` - the ``-p tcpip`` suboption table with io-pkt's defaults,
  clamping and log texts. Unknown names (and names of features the variant lacks, such as
  ``ipsec`` on v4) log ``tcpip: unrecognized option: "x"``; the stack never exits for a
  bad tcpip option.

Everything here is pure: messages are returned, not printed or logged, so the manager can
send them to the slog ring once it exists and tests can compare them exactly.
"""

import re

import attrs

from .stack import slog
from .stack.config import StackConfig, Variant

DEFAULT_PRIORITY = 21          # IO_PKT_MAIN_THREAD_PRIO
PRIORITY_RANGE = (1, 255)      # sched_get_priority_min/max(SCHED_RR) on QNX
THREADS_RANGE = (1, 100)       # NW_DEF_THREADS_MAX
SYSTEM_PAGESIZE = 4096         # sysconf(_SC_PAGESIZE)

Message = tuple[int, str]      # (slog severity, text)


@attrs.define
class CommandLine:
    variant: Variant
    prog: str
    drivers: list[tuple[str, str | None]] = attrs.Factory(list)
    protocols: list[tuple[str, str | None]] = attrs.Factory(list)   # non-tcpip lsm modules
    tcpip: str | None = None            # the last -p tcpip option string wins
    instance: int = 0
    priority: int = DEFAULT_PRIORITY
    no_sigsegv_handler: bool = False    # -S
    threads: int | None = None          # -t; None: one per CPU
    verbose: int = 0
    dedicated_stack_thread: bool = False  # -D
    foreground: bool = False            # ours: --foreground keeps the process attached
    help: bool = False
    stderr: list[str] = attrs.Factory(list)     # printed at once, as getopt does
    messages: list[Message] = attrs.Factory(list)  # logged once the log exists
    fatal: str | None = None            # a reason the stack cannot start at all

    @property
    def instance_name(self) -> str:
        return "io-pkt" if self.instance == 0 else f"io-pkt{self.instance}"


_WITH_ARG = set("pPdti")
_FLAGS = set("vSD")


def parse_command_line(argv: list[str], variant: Variant, prog: str | None = None) -> CommandLine:
    prog = prog or variant.name
    cl = CommandLine(variant=variant, prog=prog)
    i = 0
    n = len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if arg in ("--help", "-h"):
            cl.help = True
            continue
        if arg == "--foreground":
            cl.foreground = True
            continue
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue  # io-pkt skips words that are not options
        if arg.startswith("--"):
            cl.stderr.append(f"{prog}: illegal option -- {arg[2:]}")
            continue
        j = 1
        while j < len(arg):
            c = arg[j]
            j += 1
            if c in _FLAGS:
                if c == "v":
                    cl.verbose += 1
                elif c == "S":
                    cl.no_sigsegv_handler = True
                else:
                    cl.dedicated_stack_thread = True
                continue
            if c not in _WITH_ARG:
                cl.stderr.append(f"{prog}: illegal option -- {c}")
                continue
            if j < len(arg):
                value = arg[j:]
            elif i < n:
                value = argv[i]
                i += 1
            else:
                cl.stderr.append(f"{prog}: option requires an argument -- {c}")
                break
            # The next word is the option string only if it does not start with '-'.
            opts = None
            if c in "dp" and i < n and not argv[i].startswith("-"):
                opts = argv[i]
                i += 1
            _apply(cl, c, value, opts)
            break
    if cl.dedicated_stack_thread and cl.threads == 1:
        cl.messages.append((slog.WARNING, "Cannot have dedicated stack context core with only 1 core or thread : (-D option, -t option)"))
    return cl


def _apply(cl: CommandLine, c: str, value: str, opts: str | None) -> None:
    if c == "d":
        cl.drivers.append((value, opts))
    elif c == "p":
        # Any protocol name containing "tcpip" is the built-in stack (SRC main.c).
        if "tcpip" in value:
            if opts is not None:
                cl.tcpip = opts
        else:
            cl.protocols.append((value, opts))
    elif c == "P":
        prio = _strtol(value)
        if prio is None or not PRIORITY_RANGE[0] <= prio <= PRIORITY_RANGE[1]:
            cl.messages.append((slog.WARNING, f"{cl.prog}: ignoring invalid value {value} for option -P"))
            cl.priority = DEFAULT_PRIORITY
        else:
            cl.priority = prio
    elif c == "t":
        threads = _strtol(value)
        if threads is None:
            cl.messages.append((slog.WARNING, f"{cl.prog}: ignoring invalid value {value} for option -t"))
        else:
            cl.threads = min(max(threads, THREADS_RANGE[0]), THREADS_RANGE[1])
    elif c == "i":
        # strtoul base 10; trailing junk is fatal (SRC main.c: exit 1).
        if not re.fullmatch(r"\d+", value):
            cl.fatal = f"{cl.prog}: Invalid instance number: {value}"
        else:
            cl.instance = int(value)


def _strtol(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


# -- the tcpip option table -------------------------------------------------------------

@attrs.define
class TcpipResult:
    config: StackConfig
    messages: list[Message]


def _pow2_floor(x: int) -> int:
    return 1 << (x.bit_length() - 1) if x > 0 else 0


def parse_tcpip_options(text: str | None, variant: Variant, *, instance: int = 0) -> TcpipResult:
    """Apply ``-p tcpip`` options in order (some clamps depend on earlier options)."""
    v: dict = {}
    defaults = StackConfig()
    msgs: list[Message] = []

    def cur(name):
        return v.get(name, getattr(defaults, name))

    def info(text):
        msgs.append((slog.INFO, text))

    for item in (text or "").split(","):
        if not item:
            continue
        name, has_value, raw = item.partition("=")
        value = raw if has_value else None

        def number(*, required=True):
            if value is None:
                if required:
                    msgs.append((slog.WARNING, f'tcpip: option "{name}" requires a value'))
                return None
            n = _strtol(value)
            if n is None:
                msgs.append((slog.WARNING, f'tcpip: invalid value for option "{name}": "{value}"'))
            return n

        def flag():
            # Bare name: on. name=X: X != 0.
            if value is None:
                return True
            n = number()
            return None if n is None else n != 0

        if "tcpip" in name:
            info(f'tcpip: unrecognized option: "{item}"')
        elif name == "prefix":
            if not value:
                msgs.append((slog.WARNING, 'tcpip: option "prefix" requires a path'))
            else:
                v["prefix"] = value
        elif name in ("forward", "random", "reuseport_unicast", "confstr_monitor", "strict_ts",
                      "stackguard"):
            f = flag()
            if f is not None:
                v[name] = f
        elif name == "fastforward":
            f = flag()
            if f is not None:
                v["fastforward"] = f
                if f:
                    v["forward"] = True   # "This option enables, and is enabled by, forward"
        elif name == "forward6" and variant.inet6:
            f = flag()
            if f is not None:
                v["forward6"] = f
        elif name == "ipsec" and variant.crypto:
            f = flag()
            if f is not None:
                v["ipsec"] = f
        elif name == "nocryptodev" and variant.crypto:
            v["cryptodev"] = False
        elif name == "pfil_ipsec" and variant.crypto:
            f = flag()
            if f is not None:
                v["pfil_ipsec"] = f
        elif name in ("cache", "enmap", "bigpage_strict"):
            f = flag()
            if f is not None:
                v[name] = f
        elif name in ("mbuf_cache", "pkt_cache", "mtag_cache"):
            n = number()
            if n is not None:
                v[name] = max(0, n)
        elif name == "mclbytes":
            n = number()
            if n is not None:
                v["mclbytes"] = min(_pow2_floor(min(max(n, 2048), 16384)), cur("pagesize"))
        elif name == "pagesize":
            n = number()
            if n is not None:
                v["pagesize"] = _pow2_floor(min(max(n, SYSTEM_PAGESIZE), 16 << 20))
                if cur("mclbytes") > v["pagesize"]:
                    v["mclbytes"] = v["pagesize"]
        elif name == "pkt_typed_mem":
            # Linux has no typed memory objects: report it as io-pkt does when open fails.
            info(f"unable to open pkt typed memory {value}: 2")
        elif name == "recv_ctxt":
            n = number()
            if n is not None:
                v["recv_ctxt"] = min(max(n, 4096), 524288) & ~2047
        elif name == "reply_ctxt":
            n = number()
            if n is not None:
                v["reply_ctxt"] = min(max(n, 32), 512)
        elif name in ("rx_prio", "rx_pulse_prio", "timer_pulse_prio"):
            n = number()
            if n is not None:
                key = "timer_pulse_prio" if name == "timer_pulse_prio" else "rx_prio"
                v[key] = min(max(n, 1), PRIORITY_RANGE[1])
        elif name == "somaxconn":
            n = number()
            if n is not None:
                v["somaxconn"] = max(128, n)   # max(SOMAXCONN, X)
        elif name == "so_txprio_enable":
            v["so_txprio_enable"] = True
            info("tcpip: option so_txprio_enable: SO_TXPRIO support enabled")
        elif name == "stacksize":
            n = number()
            if n is not None:
                v["stacksize"] = (max(4096, n) + 7) & ~7
        elif name == "bigstack":
            if value is None:
                v["bigstack"] = defaults.bigstack
                info(f"tcpip: bigstack size default {defaults.bigstack}")
            else:
                n = number()
                if n is not None:
                    if n <= cur("stacksize"):
                        info(f"tcpip: bigstack size {n} <= stacksize {cur('stacksize')}, ignoring")
                    else:
                        v["bigstack"] = n
        elif name == "threads_min":
            n = number()
            if n is not None:
                v["threads_min"] = min(max(4, n), cur("threads_max"))
        elif name in ("threads_max", "threads"):
            n = number()
            if n is not None:
                v["threads_max"] = max(max(4, n), cur("threads_min"))
        elif name == "threads_incr":
            n = number()
            if n is not None:
                v["threads_incr"] = max(4, n)
        elif name in ("num_tap_interface", "num_tun_control_interface"):
            n = number()
            if n is not None:
                v[name] = max(0, n)
        elif name == "timertol":
            n = number()
            if n is not None:
                if n < 0:
                    info(f'tcpip: "timertol" option: {n} < 0.  Ignoring')
                elif n > 1000:
                    info(f'tcpip: "timertol" option: {n} > 1000.  Ignoring')
                else:
                    v["timertol"] = n
        elif name in ("tickstop_min", "tickstop_max"):
            n = number()
            if n is not None:
                v[name] = n
        elif name == "rgroup_allowed":
            n = 0 if value is None else number()
            if n is not None:
                v["rgroup_allowed"] = n
                info("tcpip: option rgroup_allowed: allowing root-group access")
        elif name == "min_fperms":
            pass  # in io-pkt 6.6.0's table but silently ignored
        elif name == "seed":
            # Ours, not io-pkt's: pins the stack's pseudo-random generator (tests, replays).
            n = number()
            if n is not None:
                v["seed"] = n
        else:
            info(f'tcpip: unrecognized option: "{item}"')

    tmin, tmax = cur("tickstop_min"), cur("tickstop_max")
    if tmin < 0 or tmax < 0 or (tmax and tmin > tmax):
        info("tcpip: invalid tickstop combination (ignored)")
        v["tickstop_min"] = v["tickstop_max"] = 0
    if cur("stackguard") and cur("stacksize") % SYSTEM_PAGESIZE:
        raised = -(-cur("stacksize") // SYSTEM_PAGESIZE) * SYSTEM_PAGESIZE
        info(f"tcpip: stackguard enabled and configured stacksize {cur('stacksize')} was not a "
             f"multiple of pagesize {SYSTEM_PAGESIZE}, increasing stacksize to {raised}")
        v["stacksize"] = raised
    config = StackConfig(variant=variant, instance=instance, **v)
    return TcpipResult(config, msgs)
