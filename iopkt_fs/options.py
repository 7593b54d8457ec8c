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
from typing import Callable

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
#
# One row per io-pkt 6.6 ``-p tcpip`` option (SRC init_main.c ``tcpip_opts[]``; reference/
# qnx.md §1.3), applied in command-line order, then the cross-field rules (``_RULES``).
# A row says how the value is read, where it goes, how io-pkt clamps it, which variant
# has it, what is logged, and - for options that do nothing on Linux - why not.

REQUIRED = object()     # ``bare``: the option needs ``=X``


class _Ignore(Exception):
    """A clamp refused the value: log ``text`` at ``severity``, keep the old value."""

    def __init__(self, severity: int, text: str):
        super().__init__(text)
        self.severity = severity
        self.text = text


Cur = Callable[[str], object]       # the value in force of another field


@attrs.frozen
class TcpipOption:
    name: str
    default: object                  # io-pkt's default (== StackConfig's, when a field there)
    read: str = "int"                # int: strtol ; bool: strtol != 0 ; text ; none: value unused
    bare: object = REQUIRED          # the value of the bare name (REQUIRED: "requires a value")
    field: str | None = ""           # "": the name itself ; None: stored nowhere
    # Applied to a given value (and to a bare text option's); may raise _Ignore.
    clamp: Callable[[object, Cur], object] | None = None
    gate: Callable[[Variant], bool] | None = None          # None: every variant has it
    log: str | Callable[[object, str | None], str | None] | None = None  # INFO once applied
    also: Callable[[object, Cur], dict] | None = None      # fields it sets as well
    linux: str | None = None         # None: takes effect ; else why it has none on Linux

    @property
    def target(self) -> str | None:
        return self.name if self.field == "" else self.field


def _pow2_floor(x: int) -> int:
    return 1 << (x.bit_length() - 1) if x > 0 else 0


def _between(lo: int, hi: int):
    return lambda n, cur: min(max(n, lo), hi)


def _at_least(lo: int):
    return lambda n, cur: max(n, lo)


def _prefix(v, cur):
    if not v:
        raise _Ignore(slog.WARNING, 'tcpip: option "prefix" requires a path')
    return v


def _typed_mem(v, cur):
    # Linux has no typed memory objects: report it as io-pkt does when open fails (ENOENT).
    raise _Ignore(slog.INFO, f"unable to open pkt typed memory {v}: 2")


def _bigstack(n, cur):
    if n <= cur("stacksize"):
        raise _Ignore(slog.INFO, f"tcpip: bigstack size {n} <= stacksize {cur('stacksize')}, ignoring")
    return n


def _timertol(n, cur):
    if n < 0:
        raise _Ignore(slog.INFO, f'tcpip: "timertol" option: {n} < 0.  Ignoring')
    if n > 1000:
        raise _Ignore(slog.INFO, f'tcpip: "timertol" option: {n} > 1000.  Ignoring')
    return n


def _has_inet6(v: Variant) -> bool:
    return v.inet6


def _has_crypto(v: Variant) -> bool:
    return v.crypto


_PRIO = _between(1, PRIORITY_RANGE[1])
_FLAG = dict(read="bool", bare=True)
_NO_THREADS = "one trio loop, no io-pkt threads to tune"

TCPIP_OPTIONS: tuple[TcpipOption, ...] = (
    TcpipOption("prefix", "", read="text", bare=None, clamp=_prefix),
    TcpipOption("forward", False, **_FLAG),
    # "This option enables, and is enabled by, forward" (fastforward=X, X != 0).
    TcpipOption("fastforward", True, **_FLAG, also=lambda v, cur: {"forward": True} if v else {}),
    TcpipOption("forward6", False, **_FLAG, gate=_has_inet6),
    TcpipOption("ipsec", False, **_FLAG, gate=_has_crypto),
    TcpipOption("nocryptodev", True, read="none", bare=False, field="cryptodev", gate=_has_crypto,
                linux="no /dev/crypto is served"),
    TcpipOption("pfil_ipsec", False, **_FLAG, gate=_has_crypto, linux="there is no IPsec path yet"),
    TcpipOption("random", False, **_FLAG),
    TcpipOption("reuseport_unicast", False, **_FLAG),
    TcpipOption("confstr_monitor", False, **_FLAG,
                linux="kern.hostname is the stack's own"),
    TcpipOption("strict_ts", False, **_FLAG, linux="there is no BPF"),
    TcpipOption("stackguard", False, **_FLAG, linux="no io-pkt thread stacks to guard"),
    TcpipOption("cache", True, **_FLAG),
    TcpipOption("enmap", True, **_FLAG),
    TcpipOption("bigpage_strict", False, **_FLAG,
                linux="mbufs and clusters are the only pools, and they use pagesize already"),
    TcpipOption("mbuf_cache", 128, clamp=_at_least(0)),
    TcpipOption("pkt_cache", 64, clamp=_at_least(0)),
    TcpipOption("mtag_cache", 128, clamp=_at_least(0), linux="the stack keeps no mbuf tags"),
    # [2048, 16384], rounded down to a power of 2, then at most the pagesize in force.
    TcpipOption("mclbytes", 2048,
                clamp=lambda n, cur: min(_pow2_floor(min(max(n, 2048), 16384)), cur("pagesize"))),
    # [sysconf(_SC_PAGESIZE), 16 MiB], rounded down to a power of 2; lowers mclbytes.
    TcpipOption("pagesize", 131072,
                clamp=lambda n, cur: _pow2_floor(min(max(n, SYSTEM_PAGESIZE), 16 << 20)),
                also=lambda v, cur: {"mclbytes": v} if cur("mclbytes") > v else {}),
    TcpipOption("pkt_typed_mem", None, read="text", bare=None, clamp=_typed_mem,
                linux="Linux has no typed memory"),
    # SRC clamps [4096, 524288] and masks to a 2048 multiple (the .use says "Min is 2048").
    TcpipOption("recv_ctxt", 135168,
                clamp=lambda n, cur: min(max(n, 4096), 524288) & ~2047,
                linux="FUSE hands requests over whole: no receive buffer"),
    TcpipOption("reply_ctxt", 90, clamp=_between(32, 512),
                linux="FUSE replies are not gathered from reply parts"),
    TcpipOption("rx_prio", 21, clamp=_PRIO, linux=_NO_THREADS),
    TcpipOption("rx_pulse_prio", 21, field="rx_prio", clamp=_PRIO, linux=_NO_THREADS),
    TcpipOption("timer_pulse_prio", 21, clamp=_PRIO, linux=_NO_THREADS),
    TcpipOption("somaxconn", 128, clamp=_at_least(128)),       # max(SOMAXCONN, X)
    TcpipOption("so_txprio_enable", False, read="none", bare=True,
                log="tcpip: option so_txprio_enable: SO_TXPRIO support enabled",
                linux="no driver has transmit priority queues"),
    TcpipOption("stacksize", 4096, clamp=lambda n, cur: (max(4096, n) + 7) & ~7, linux=_NO_THREADS),
    TcpipOption("bigstack", 131072, bare=131072, clamp=_bigstack,
                log=lambda v, raw: f"tcpip: bigstack size default {v}" if raw is None else None,
                linux="drivers load on the trio loop, with Python's stack"),
    TcpipOption("threads_min", 15, clamp=lambda n, cur: min(max(4, n), cur("threads_max"))),
    TcpipOption("threads_max", 200, clamp=lambda n, cur: max(max(4, n), cur("threads_min"))),
    TcpipOption("threads", 200, field="threads_max",
                clamp=lambda n, cur: max(max(4, n), cur("threads_min"))),
    TcpipOption("threads_incr", 25, clamp=_at_least(4),
                linux="the request limit does not grow in steps"),
    TcpipOption("num_tap_interface", 5, clamp=_at_least(0)),
    TcpipOption("num_tun_control_interface", 4, clamp=_at_least(0)),
    TcpipOption("timertol", None, clamp=_timertol, linux="the runtime sleeps to the exact deadline"),
    TcpipOption("tickstop_min", 0, linux="there is no clock tick to stop"),
    TcpipOption("tickstop_max", 0, linux="there is no clock tick to stop"),
    TcpipOption("rgroup_allowed", None, bare=0,
                log="tcpip: option rgroup_allowed: allowing root-group access",
                linux="writes are the stack owner's; no group access yet"),
    # In io-pkt 6.6.0's table but silently ignored.
    TcpipOption("min_fperms", None, read="none", bare=None, field=None, linux="ignored by io-pkt too"),
    # NetBSD's cluster-pool limit (kern.mbuf.nmbclusters): io-pkt sets an exported variable
    # named as an option (its nlist fallback), so this works there too. The bound of the
    # packet-buffer pool (stack/mbuf.py).
    TcpipOption("nmbclusters", None, clamp=_at_least(16)),
    # Ours, not io-pkt's: pins the stack's pseudo-random generator (tests, replays).
    TcpipOption("seed", None),
)
_BY_NAME = {o.name: o for o in TCPIP_OPTIONS}


def _tickstop_rule(cur: Cur) -> tuple[dict, str | None]:
    tmin, tmax = cur("tickstop_min"), cur("tickstop_max")
    if tmin < 0 or tmax < 0 or (tmax and tmin > tmax):
        return {"tickstop_min": 0, "tickstop_max": 0}, "tcpip: invalid tickstop combination (ignored)"
    return {}, None


def _stackguard_rule(cur: Cur) -> tuple[dict, str | None]:
    size = cur("stacksize")
    if cur("stackguard") and size % SYSTEM_PAGESIZE:
        raised = -(-size // SYSTEM_PAGESIZE) * SYSTEM_PAGESIZE
        return {"stacksize": raised}, (
            f"tcpip: stackguard enabled and configured stacksize {size} was not a "
            f"multiple of pagesize {SYSTEM_PAGESIZE}, increasing stacksize to {raised}")
    return {}, None


# Cross-field rules io-pkt applies once every option is read, in this order.
_RULES = (_tickstop_rule, _stackguard_rule)


def tcpip_defaults() -> dict[str, object]:
    """Every option field with io-pkt's default (an alias shares its field's)."""
    values: dict[str, object] = {}
    for o in TCPIP_OPTIONS:
        if o.target is not None:
            values.setdefault(o.target, o.default)
    return values


@attrs.define
class TcpipResult:
    config: StackConfig                  # what the stack reads
    messages: list[Message]
    values: dict[str, object] = attrs.Factory(dict)   # every option's value, as io-pkt holds it


def _read_value(opt: TcpipOption, name: str, raw: str | None, msgs: list[Message]):
    """The option's value before clamping, or ``_Ignore``'s sentinel ``None`` + a message."""
    if opt.read == "none" or raw is None:
        if opt.read != "none" and opt.bare is REQUIRED:
            msgs.append((slog.WARNING, f'tcpip: option "{name}" requires a value'))
            return _MISSING
        return opt.bare
    if opt.read == "text":
        return raw
    n = _strtol(raw)
    if n is None:
        msgs.append((slog.WARNING, f'tcpip: invalid value for option "{name}": "{raw}"'))
        return _MISSING
    return n != 0 if opt.read == "bool" else n


_MISSING = object()


def parse_tcpip_options(text: str | None, variant: Variant, *, instance: int = 0) -> TcpipResult:
    """Apply ``-p tcpip`` options in order (some clamps depend on earlier options), then
    the cross-field rules. Unknown names, names containing ``tcpip`` (the io-net2
    compatibility rule would eat them) and options of features the variant lacks are
    logged as unrecognized, as io-pkt's nlist fallback does when no symbol matches."""
    values = tcpip_defaults()
    msgs: list[Message] = []
    cur = values.__getitem__

    for item in (text or "").split(","):
        if not item:
            continue
        name, has_value, raw = item.partition("=")
        opt = _BY_NAME.get(name)
        if opt is None or "tcpip" in name or (opt.gate is not None and not opt.gate(variant)):
            msgs.append((slog.INFO, f'tcpip: unrecognized option: "{item}"'))
            continue
        raw = raw if has_value else None
        value = _read_value(opt, name, raw, msgs)
        if value is _MISSING:
            continue
        if opt.clamp is not None and (raw is not None or opt.read == "text"):
            try:
                value = opt.clamp(value, cur)
            except _Ignore as refused:
                msgs.append((refused.severity, refused.text))
                continue
        if opt.target is None:
            continue
        values[opt.target] = value
        if opt.also is not None:
            values.update(opt.also(value, cur))
        log = opt.log(value, raw) if callable(opt.log) else opt.log
        if log:
            msgs.append((slog.INFO, log))

    for rule in _RULES:
        changes, log = rule(cur)
        if log:
            msgs.append((slog.INFO, log))
        values.update(changes)
    fields = attrs.fields_dict(StackConfig)
    config = StackConfig(variant=variant, instance=instance,
                         **{k: v for k, v in values.items() if k in fields})
    return TcpipResult(config, msgs, values)


def no_effect_on_linux(variant: Variant | None = None) -> list[tuple[str, str]]:
    """(option, why) for the options accepted for io-pkt's sake that change nothing here
    (those ``variant`` has, when given)."""
    return [(o.name, o.linux) for o in TCPIP_OPTIONS
            if o.linux and (variant is None or o.gate is None or o.gate(variant))]
