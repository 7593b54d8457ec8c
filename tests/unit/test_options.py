"""io-pkt's command line and every -p tcpip option: default, clamp, log text (qnx.md §1.2-1.3)."""

import pytest

import attrs

from iopkt_fs.options import REQUIRED, TCPIP_OPTIONS, no_effect_on_linux, parse_command_line, parse_tcpip_options, tcpip_defaults
from iopkt_fs.stack import slog
from iopkt_fs.stack.config import V4, V4_HC, V6_HC, StackConfig

DEFAULTS = StackConfig()


class Values:
    """Every option's value: the StackConfig field when the stack reads it, else the
    parsed value io-pkt would hold (TcpipResult.values)."""

    def __init__(self, result):
        self._r = result

    def __getattr__(self, name):
        if name in attrs.fields_dict(StackConfig):
            assert self._r.values[name] == getattr(self._r.config, name)
            return getattr(self._r.config, name)
        return self._r.values[name]


def opts(text, variant=V6_HC):
    r = parse_tcpip_options(text, variant)
    return Values(r), r.messages


def test_defaults_are_io_pkts():
    c, msgs = opts("")
    assert msgs == []
    assert (c.threads_min, c.threads_max, c.threads_incr) == (15, 200, 25)
    assert (c.mclbytes, c.pagesize, c.somaxconn) == (2048, 131072, 128)
    assert (c.recv_ctxt, c.reply_ctxt, c.stacksize, c.bigstack) == (135168, 90, 4096, 131072)
    assert (c.mbuf_cache, c.pkt_cache, c.mtag_cache) == (128, 64, 128)
    assert c.nmbclusters is None            # derived from mclbytes (stack/mbuf.py)
    assert (c.rx_prio, c.timer_pulse_prio) == (21, 21)
    assert (c.num_tap_interface, c.num_tun_control_interface) == (5, 4)
    assert c.enmap and c.cache and c.fastforward and c.cryptodev
    assert not (c.forward or c.forward6 or c.ipsec or c.random or c.reuseport_unicast)


# option text -> (field, expected value, expected log messages)
TABLE = [
    ("bigpage_strict", "bigpage_strict", True, []),
    ("bigpage_strict=0", "bigpage_strict", False, []),
    ("bigstack", "bigstack", 131072, [(slog.INFO, "tcpip: bigstack size default 131072")]),
    ("bigstack=262144", "bigstack", 262144, []),
    ("bigstack=1024", "bigstack", 131072, [(slog.INFO, "tcpip: bigstack size 1024 <= stacksize 4096, ignoring")]),
    ("cache=0", "cache", False, []),
    ("confstr_monitor", "confstr_monitor", True, []),
    ("enmap=0", "enmap", False, []),
    ("fastforward=0", "fastforward", False, []),
    ("fastforward=1", "forward", True, []),
    ("fastforward", "forward", True, []),
    ("forward", "forward", True, []),
    ("forward6", "forward6", True, []),
    ("ipsec", "ipsec", True, []),
    ("nocryptodev", "cryptodev", False, []),
    ("pfil_ipsec", "pfil_ipsec", True, []),
    ("mbuf_cache=-5", "mbuf_cache", 0, []),
    ("pkt_cache=1024", "pkt_cache", 1024, []),
    ("mtag_cache=7", "mtag_cache", 7, []),
    ("mclbytes=100", "mclbytes", 2048, []),
    ("mclbytes=5000", "mclbytes", 4096, []),
    ("mclbytes=100000", "mclbytes", 16384, []),
    ("pagesize=100", "pagesize", 4096, []),
    ("pagesize=65537", "pagesize", 65536, []),
    ("pagesize=999999999", "pagesize", 16 << 20, []),
    ("pkt_typed_mem=ram/dma", "pkt_typed_mem", None, [(slog.INFO, "unable to open pkt typed memory ram/dma: 2")]),
    ("prefix=/alt", "prefix", "/alt", []),
    ("random", "random", True, []),
    ("recv_ctxt=100", "recv_ctxt", 4096, []),
    ("recv_ctxt=10000", "recv_ctxt", 8192, []),
    ("recv_ctxt=9999999", "recv_ctxt", 524288, []),
    ("reply_ctxt=1", "reply_ctxt", 32, []),
    ("reply_ctxt=9999", "reply_ctxt", 512, []),
    ("reuseport_unicast", "reuseport_unicast", True, []),
    ("rx_prio=0", "rx_prio", 1, []),
    ("rx_pulse_prio=30", "rx_prio", 30, []),
    ("timer_pulse_prio=1000", "timer_pulse_prio", 255, []),
    ("somaxconn=5", "somaxconn", 128, []),
    ("somaxconn=1024", "somaxconn", 1024, []),
    ("so_txprio_enable", "so_txprio_enable", True, [(slog.INFO, "tcpip: option so_txprio_enable: SO_TXPRIO support enabled")]),
    ("stacksize=100", "stacksize", 4096, []),
    ("stacksize=5001", "stacksize", 5008, []),
    ("stackguard,stacksize=5001", "stacksize", 8192,
     [(slog.INFO, "tcpip: stackguard enabled and configured stacksize 5008 was not a multiple of pagesize 4096, increasing stacksize to 8192")]),
    ("strict_ts", "strict_ts", True, []),
    ("threads_min=2", "threads_min", 4, []),
    ("threads_min=500", "threads_min", 200, []),
    ("threads_max=2", "threads_max", 15, []),
    ("threads_max=1000", "threads_max", 1000, []),
    ("threads=50", "threads_max", 50, []),
    ("threads_min=4,threads_max=4", "threads_max", 4, []),
    ("threads_max=10,threads_min=50", "threads_min", 15, []),
    ("threads_incr=1", "threads_incr", 4, []),
    ("num_tap_interface=9", "num_tap_interface", 9, []),
    ("num_tun_control_interface=2", "num_tun_control_interface", 2, []),
    ("timertol=5", "timertol", 5, []),
    ("timertol=-1", "timertol", None, [(slog.INFO, 'tcpip: "timertol" option: -1 < 0.  Ignoring')]),
    ("timertol=1001", "timertol", None, [(slog.INFO, 'tcpip: "timertol" option: 1001 > 1000.  Ignoring')]),
    ("tickstop_min=5,tickstop_max=2", "tickstop_min", 0, [(slog.INFO, "tcpip: invalid tickstop combination (ignored)")]),
    ("tickstop_min=2,tickstop_max=5", "tickstop_max", 5, []),
    ("rgroup_allowed", "rgroup_allowed", 0, [(slog.INFO, "tcpip: option rgroup_allowed: allowing root-group access")]),
    ("rgroup_allowed=33", "rgroup_allowed", 33, [(slog.INFO, "tcpip: option rgroup_allowed: allowing root-group access")]),
    ("min_fperms=1", "prefix", "", []),
    ("seed=42", "seed", 42, []),
    ("nmbclusters=4", "nmbclusters", 16, []),
    ("nmbclusters=512", "nmbclusters", 512, []),
]


@pytest.mark.parametrize("text,field,value,messages", TABLE, ids=[t[0] for t in TABLE])
def test_tcpip_option(text, field, value, messages):
    c, msgs = opts(text)
    assert getattr(c, field) == value
    assert msgs == messages


@pytest.mark.parametrize("text", ["bogus", "bogus=1", "xtcpip=1", "tcpipfoo"])
def test_unrecognized_options_are_logged(text):
    r = parse_tcpip_options(text, V6_HC)
    assert r.messages == [(slog.INFO, f'tcpip: unrecognized option: "{text}"')]
    assert r.config == StackConfig(variant=V6_HC)
    assert r.values == tcpip_defaults()


@pytest.mark.parametrize("variant,text", [
    (V4, "ipsec"), (V4, "nocryptodev"), (V4, "pfil_ipsec"), (V4, "forward6"), (V4_HC, "forward6"),
])
def test_features_the_variant_lacks_are_unrecognized(variant, text):
    c, msgs = opts(text, variant)
    assert msgs == [(slog.INFO, f'tcpip: unrecognized option: "{text}"')]
    assert not c.ipsec and not c.forward6 and c.cryptodev


def test_bad_numbers_are_reported_and_defaults_kept():
    c, msgs = opts("threads_max=lots,somaxconn")
    assert c.threads_max == 200 and c.somaxconn == 128
    assert msgs == [(slog.WARNING, 'tcpip: invalid value for option "threads_max": "lots"'),
                    (slog.WARNING, 'tcpip: option "somaxconn" requires a value')]


def test_options_apply_in_order():
    # mclbytes is capped by the pagesize in force when it is parsed.
    assert opts("pagesize=4096,mclbytes=16384")[0].mclbytes == 4096
    assert opts("mclbytes=16384,pagesize=8192")[0].mclbytes == 8192
    # ... and a later, larger pagesize does not raise it again.
    assert opts("pagesize=4096,mclbytes=16384,pagesize=65536")[0].mclbytes == 4096


# -- the table itself --------------------------------------------------------------------

def test_table_defaults_are_stackconfigs():
    fields = attrs.fields_dict(StackConfig)
    for name, value in tcpip_defaults().items():
        if name in fields:
            assert fields[name].default == value, name


def test_every_stackconfig_option_field_is_in_the_table():
    # variant and instance come from the command line, not -p tcpip.
    assert set(attrs.fields_dict(StackConfig)) - set(tcpip_defaults()) == {"variant", "instance"}


def test_every_row_is_exercised_by_the_value_table():
    tested = {item.partition("=")[0] for t in TABLE for item in t[0].split(",")}
    assert {o.name for o in TCPIP_OPTIONS} <= tested


@pytest.mark.parametrize("opt", [o for o in TCPIP_OPTIONS if o.read == "int" and o.bare is REQUIRED],
                         ids=lambda o: o.name)
def test_numbers_need_a_value_and_a_number(opt):
    r = parse_tcpip_options(f"{opt.name},{opt.name}=x", V6_HC)
    assert r.messages == [(slog.WARNING, f'tcpip: option "{opt.name}" requires a value'),
                          (slog.WARNING, f'tcpip: invalid value for option "{opt.name}": "x"')]
    assert r.values == tcpip_defaults()


@pytest.mark.parametrize("opt", [o for o in TCPIP_OPTIONS if o.read == "bool"], ids=lambda o: o.name)
def test_flags_bare_zero_and_one(opt):
    assert parse_tcpip_options(f"{opt.name}", V6_HC).values[opt.target] is True
    assert parse_tcpip_options(f"{opt.name}=0", V6_HC).values[opt.target] is False
    assert parse_tcpip_options(f"{opt.name}=0x10", V6_HC).values[opt.target] is True


def test_options_without_effect_on_linux_are_documented_and_not_in_the_config():
    fields = attrs.fields_dict(StackConfig)
    quiet = dict(no_effect_on_linux())
    assert {"rx_prio", "stacksize", "recv_ctxt", "timertol", "mtag_cache"} <= set(quiet)
    for o in TCPIP_OPTIONS:
        if o.name in quiet:
            assert o.target not in fields, o.name
            assert quiet[o.name]


# -- the command line --------------------------------------------------------------------

def test_driver_option_strings_follow_getopt_rules():
    cl = parse_command_line(["-d", "tap", "dev=t0,mtu=9000", "-d", "loop", "-v", "-dvxlan", "vni=5"], V4)
    assert cl.drivers == [("tap", "dev=t0,mtu=9000"), ("loop", None), ("vxlan", "vni=5")]
    assert cl.verbose == 1


def test_illegal_option_is_reported_and_parsing_goes_on():
    cl = parse_command_line(["-x", "-d", "loop", "-Q"], V4_HC)
    assert cl.stderr == ["io-pkt-v4-hc: illegal option -- x", "io-pkt-v4-hc: illegal option -- Q"]
    assert cl.drivers == [("loop", None)] and cl.fatal is None


def test_missing_argument():
    cl = parse_command_line(["-d"], V4)
    assert cl.stderr == ["io-pkt-v4: option requires an argument -- d"]


def test_last_tcpip_string_wins_and_other_protocols_are_modules():
    cl = parse_command_line(["-ptcpip", "prefix=/a", "-p", "tcpip", "prefix=/b", "-p", "qnet"], V6_HC)
    assert cl.tcpip == "prefix=/b"
    assert cl.protocols == [("qnet", None)]


def test_instance_priority_threads():
    cl = parse_command_line(["-i1", "-P", "300", "-t", "500", "-S"], V4)
    assert cl.instance == 1 and cl.instance_name == "io-pkt1"
    assert cl.priority == 21
    assert (slog.WARNING, "io-pkt-v4: ignoring invalid value 300 for option -P") in cl.messages
    assert cl.threads == 100 and cl.no_sigsegv_handler
    assert parse_command_line(["-t0"], V4).threads == 1


def test_bad_instance_is_fatal():
    cl = parse_command_line(["-i", "1x"], V4)
    assert cl.fatal == "io-pkt-v4: Invalid instance number: 1x"


def test_clustered_flags_and_words_between_options():
    cl = parse_command_line(["stray", "-vvS", "word", "-i2"], V4)
    assert cl.verbose == 2 and cl.no_sigsegv_handler and cl.instance == 2


def test_dedicated_thread_warning_with_one_thread():
    cl = parse_command_line(["-t1", "-D"], V4)
    assert (slog.WARNING, "Cannot have dedicated stack context core with only 1 core or thread : (-D option, -t option)") in cl.messages


def test_help_says_which_options_do_nothing_on_linux():
    from iopkt_fs.cli.iopkt_manager import usage
    text = usage(V4)
    assert "no effect on Linux" in text
    for name in ("rx_prio", "stacksize", "recv_ctxt"):
        assert any(line.split()[:1] == [name] for line in text.splitlines()), name
    assert "pfil_ipsec" not in text          # v4 has no crypto options at all
    assert "pfil_ipsec" in usage(V6_HC)
