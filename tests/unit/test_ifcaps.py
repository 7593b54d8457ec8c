"""Interface capabilities (NetBSD IFCAP_*): the ifconfig lines, the ctl words, nicinfo's
rows, and devnp-tap's mapping between IFCAP bits and TUNSETOFFLOAD."""

import errno

import pytest

from iopkt_fs.cli import ifconfig, nicinfo
from iopkt_fs.cli.common import parse_fields
from iopkt_fs.drivers import _linux, tap
from iopkt_fs.resmgr import verbs
from iopkt_fs.resmgr.render import ifconfig_block, interface_stats
from iopkt_fs.stack.config import V4, StackConfig
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface import interface as ifc
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER
from iopkt_fs.stack.stack import Stack

# What devnp-tap offers when the kernel takes TUN_F_CSUM|TSO4|TSO6.
TAP_CAPS = 0x7FC80
TAP_NAMES = ("TSO4,TCP4CSUM_Rx,TCP4CSUM_Tx,UDP4CSUM_Rx,UDP4CSUM_Tx,"
             "TCP6CSUM_Rx,TCP6CSUM_Tx,UDP6CSUM_Rx,UDP6CSUM_Tx,TSO6")


class Changes:
    """A protocol layer that counts interface_changed (the manager's apply_config hook)."""

    def __init__(self):
        self.count = 0

    def interface_changed(self, iface):
        self.count += 1


def tap_like(caps=TAP_CAPS, enabled=TAP_CAPS):
    s = Stack(StackConfig(variant=V4))
    iface = s.new_interface("ltap", None, kind=IFT_ETHER, mac=bytes.fromhex("02000000000a"),
                            flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST,
                            capabilities=caps, enabled=enabled, vnet_hdr=10)
    changes = Changes()
    s.layers.append(changes)
    return s, iface, changes


def test_tap_caps_constant_is_what_the_driver_offers():
    assert tap.capabilities_for(_linux.TUN_F_CSUM | _linux.TUN_F_TSO4 | _linux.TUN_F_TSO6) == TAP_CAPS
    assert ifc.cap_names(TAP_CAPS) == TAP_NAMES


def test_ifconfig_prints_capabilities_and_enabled_after_the_flags_line():
    s, iface, _ = tap_like()
    assert ifconfig_block(iface) == (
        "ltap0: flags=8802<BROADCAST,SIMPLEX,MULTICAST> mtu 1500\n"
        f"\tcapabilities=7fc80<{TAP_NAMES}>\n"
        f"\tenabled=7fc80<{TAP_NAMES}>\n"
        "\taddress: 02:00:00:00:00:0a\n"
        "\tmedia: Ethernet autoselect\n"
        "\tstatus: active\n")
    s.set_capabilities(iface, disable=TAP_CAPS)
    assert ifconfig_block(iface).splitlines()[1:3] == [f"\tcapabilities=7fc80<{TAP_NAMES}>", "\tenabled=0"]
    s.set_capabilities(iface, enable=ifc.IFCAP_TSOv4 | ifc.IFCAP_CSUM_UDPv6_Rx)
    assert ifconfig_block(iface).splitlines()[2] == "\tenabled=10080<TSO4,UDP6CSUM_Rx>"


def test_no_capabilities_no_lines():
    s, iface, _ = tap_like(caps=0, enabled=0)
    assert "capabilities" not in ifconfig_block(iface) and "enabled" not in ifconfig_block(iface)


@pytest.mark.parametrize("word, bits", [
    ("tso4", ifc.IFCAP_TSOv4), ("tso6", ifc.IFCAP_TSOv6),
    ("ip4csum", ifc.IFCAP_CSUM_IPv4_Rx | ifc.IFCAP_CSUM_IPv4_Tx),
    ("ip4csum-rx", ifc.IFCAP_CSUM_IPv4_Rx), ("ip4csum-tx", ifc.IFCAP_CSUM_IPv4_Tx),
    ("tcp4csum", ifc.IFCAP_CSUM_TCPv4_Rx | ifc.IFCAP_CSUM_TCPv4_Tx),
    ("tcp4csum-rx", ifc.IFCAP_CSUM_TCPv4_Rx), ("tcp4csum-tx", ifc.IFCAP_CSUM_TCPv4_Tx),
    ("udp4csum", ifc.IFCAP_CSUM_UDPv4_Rx | ifc.IFCAP_CSUM_UDPv4_Tx),
    ("udp4csum-rx", ifc.IFCAP_CSUM_UDPv4_Rx), ("udp4csum-tx", ifc.IFCAP_CSUM_UDPv4_Tx),
    ("tcp6csum", ifc.IFCAP_CSUM_TCPv6_Rx | ifc.IFCAP_CSUM_TCPv6_Tx),
    ("tcp6csum-rx", ifc.IFCAP_CSUM_TCPv6_Rx), ("tcp6csum-tx", ifc.IFCAP_CSUM_TCPv6_Tx),
    ("udp6csum", ifc.IFCAP_CSUM_UDPv6_Rx | ifc.IFCAP_CSUM_UDPv6_Tx),
    ("udp6csum-rx", ifc.IFCAP_CSUM_UDPv6_Rx), ("udp6csum-tx", ifc.IFCAP_CSUM_UDPv6_Tx),
])
def test_cap_words_table(word, bits):
    assert verbs.CAP_WORDS[word] == bits
    assert verbs.parse_caps([word]) == (bits, 0)
    assert verbs.parse_caps(["-" + word]) == (0, bits)


def test_cap_words_are_all_and_only_netbsds():
    assert len(verbs.CAP_WORDS) == 17
    assert set(verbs.CAP_WORDS) == ifconfig._CAP_WORDS   # the tool accepts exactly these


def test_later_words_win():
    tso = ifc.IFCAP_TSOv4
    assert verbs.parse_caps(["tso4", "-tso4"]) == (0, tso)
    assert verbs.parse_caps(["-tso4", "tso4"]) == (tso, 0)
    assert verbs.parse_caps(["-tcp4csum", "tcp4csum-rx"]) == (ifc.IFCAP_CSUM_TCPv4_Rx, ifc.IFCAP_CSUM_TCPv4_Tx)


def test_ctl_words_set_capabilities_several_a_line():
    s, iface, changes = tap_like()
    verbs.interface_ctl(s, iface, "-tso4 -tcp4csum\n-udp6csum-rx\n")
    off = ifc.IFCAP_TSOv4 | ifc.IFCAP_CSUM_TCPv4_Rx | ifc.IFCAP_CSUM_TCPv4_Tx | ifc.IFCAP_CSUM_UDPv6_Rx
    assert iface.enabled == TAP_CAPS & ~off
    assert changes.count == 2   # one SIOCSIFCAP per line
    verbs.interface_ctl(s, iface, "-tso4")
    assert changes.count == 2   # nothing changed, nobody told
    verbs.interface_ctl(s, iface, "tso4 tcp4csum udp6csum")
    assert iface.enabled == TAP_CAPS and changes.count == 3


def test_ctl_refuses_what_the_driver_cannot_do():
    s, iface, changes = tap_like()
    for line, what in [("ip4csum", "IP4CSUM_Rx,IP4CSUM_Tx"), ("-tso4 -ip4csum-tx", "IP4CSUM_Tx")]:
        with pytest.raises(StackError) as e:
            verbs.interface_ctl(s, iface, line)
        assert e.value.errno == errno.EINVAL and what in e.value.message
    # A refused line changes nothing, not even its valid words.
    assert iface.enabled == TAP_CAPS and changes.count == 0
    for line in ("tso4 up", "tso4 tso5", "--tso4"):
        with pytest.raises(StackError) as e:
            verbs.interface_ctl(s, iface, line)
        assert e.value.errno == errno.EINVAL
    s2, lo, _ = tap_like(caps=0, enabled=0)
    with pytest.raises(StackError):
        verbs.interface_ctl(s2, lo, "-tso4")


def test_help_lists_the_words():
    assert "tso4 | -tso4" in verbs.IF_HELP and "udp6csum[-rx|-tx]" in verbs.IF_HELP


def test_nicinfo_rows():
    s, iface, _ = tap_like()
    s.set_capabilities(iface, disable=ifc.IFCAP_TSOv6 | ifc.IFCAP_CSUM_UDPv6_Tx | ifc.IFCAP_CSUM_UDPv4_Tx)
    stats = parse_fields(interface_stats(iface))
    assert stats["capabilities"] == "0x7fc80" and stats["enabled"] == f"0x{iface.enabled:x}"
    out = nicinfo.report(stats)
    assert ("Maximum Receivable data Unit ............... 1514\n"
            "Receive Checksumming Enabled ............... TCPv4 UDPv4 TCPv6 UDPv6\n"
            "Transmit Checksumming Enabled .............. TCPv4 TCPv6\n"
            "TCP Segmentation Offload Enabled ........... TSOv4\n") in out
    s.set_capabilities(iface, disable=TAP_CAPS)
    out = nicinfo.report(parse_fields(interface_stats(iface)))
    assert "Receive Checksumming Enabled ............... None\n" in out
    assert "TCP Segmentation Offload Enabled ........... None\n" in out
    _, plain, _ = tap_like(caps=0, enabled=0)
    assert "Checksumming" not in nicinfo.report(parse_fields(interface_stats(plain)))


ALL_TUN = _linux.TUN_F_CSUM | _linux.TUN_F_TSO4 | _linux.TUN_F_TSO6 | _linux.TUN_F_USO


@pytest.mark.parametrize("enabled, accepted, flags", [
    (TAP_CAPS, ALL_TUN, ALL_TUN),
    (TAP_CAPS, ALL_TUN & ~_linux.TUN_F_USO, ALL_TUN & ~_linux.TUN_F_USO),   # an older kernel
    (0, ALL_TUN, 0),                                                        # plain frames
    (TAP_CAPS & ~ifc.IFCAP_TSOv4, ALL_TUN, _linux.TUN_F_CSUM | _linux.TUN_F_TSO6),  # USO rides on tso4
    (TAP_CAPS & ~ifc.IFCAP_CSUM_UDPv6_Rx, ALL_TUN, ALL_TUN & ~_linux.TUN_F_USO),
    (ifc.IFCAP_TSOv4 | ifc.IFCAP_TSOv6, ALL_TUN, 0),                         # TSO needs CSUM
    (ifc.IFCAP_CSUM_TCPv4_Tx | ifc.IFCAP_CSUM_UDPv6_Tx, ALL_TUN, 0),          # Tx only: nothing from the kernel
    (ifc.IFCAP_CSUM_UDPv4_Rx, ALL_TUN, _linux.TUN_F_CSUM),
    (ifc.IFCAP_CSUM_TCPv4_Rx | ifc.IFCAP_TSOv4, ALL_TUN, _linux.TUN_F_CSUM | _linux.TUN_F_TSO4),
])
def test_tun_offload_for_enabled(enabled, accepted, flags):
    assert tap.tun_offload_for(enabled, accepted) == flags


def test_capabilities_for_tun_flags():
    assert tap.capabilities_for(0) == 0
    assert tap.capabilities_for(_linux.TUN_F_CSUM) == tap.IFCAP_RX_CSUM | tap.IFCAP_TX_CSUM
    assert tap.capabilities_for(ALL_TUN) == TAP_CAPS
    assert _linux.tun_flag_names(_linux.TUN_F_USO) == "USO4|USO6"
    assert _linux.tun_flag_names(0) == "none"
