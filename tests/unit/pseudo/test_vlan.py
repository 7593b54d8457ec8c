"""vlan(4) in the core: configuration and its errnos, MTU rules, 802.1Q tagging on output
and untagging on input (reference/pseudo-if.md §7)."""

import errno

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from iopkt_fs.resmgr import verbs
from iopkt_fs.resmgr.render import ifconfig_block
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER

from .pseudo_helpers import pump, stack

PEER = "02:00:00:00:00:99"


def errno_of(fn, *args):
    with pytest.raises(StackError) as e:
        fn(*args)
    return e.value.errno


def over_tap(s, tag=5, name="vlan0"):
    tap = s.tap.clone()
    s.up(tap.iface)
    vlan = s.create(name)
    verbs.interface_ctl(s, vlan, f"vlan {tag} vlanif {tap.iface.name}")
    verbs.interface_ctl(s, vlan, "set 10.5.0.1/24")
    pump(s)
    while tap.read(2000) is not None:
        pass
    return tap, vlan


def test_configuration_and_netbsd_status_line():
    s = stack()
    tap, vlan = over_tap(s)
    mac = tap.iface.mac_text()
    assert ifconfig_block(vlan) == (
        "vlan0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
        "\tvlan: 5 parent: tap0\n"
        f"\taddress: {mac}\n"
        "\tinet 10.5.0.1 netmask 0xffffff00 broadcast 10.5.0.255\n")
    verbs.interface_ctl(s, vlan, "-vlanif")
    assert ifconfig_block(vlan) == ("vlan0: flags=8802<BROADCAST,SIMPLEX,MULTICAST> mtu 0\n"
                                    "\tinet 10.5.0.1 netmask 0xffffff00 broadcast 10.5.0.255\n")


def test_errnos():
    s = stack()
    tap, vlan = over_tap(s)
    other = s.create("vlan1")
    assert errno_of(verbs.interface_ctl, s, vlan, "vlan 6 vlanif tap0") == errno.EBUSY
    assert errno_of(verbs.interface_ctl, s, other, "vlan 5 vlanif tap0") == errno.EEXIST
    assert errno_of(verbs.interface_ctl, s, other, "vlan 4096 vlanif tap0") == errno.EINVAL
    assert errno_of(verbs.interface_ctl, s, other, "vlan 7 vlanif lo0") == errno.EPROTONOSUPPORT
    assert errno_of(verbs.interface_ctl, s, other, "vlan 7 vlanif xx0") == errno.ENXIO
    assert errno_of(verbs.interface_ctl, s, tap.iface, "vlan 7 vlanif vlan1") == errno.EINVAL


def test_mtu_is_the_parents_less_four_without_vlan_mtu():
    s = stack()
    plain = s.new_interface("wm", 0, kind=IFT_ETHER, mac=bytes.fromhex("020000000001"),
                            flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST, mtu=1500)
    vlan = s.create("vlan0")
    verbs.interface_ctl(s, vlan, "vlan 9 vlanif wm0")
    assert vlan.mtu == 1496
    assert errno_of(s.set_mtu, vlan, 1497) == errno.EINVAL
    s.set_mtu(vlan, 1400)
    tap, vlan2 = over_tap(s, tag=10, name="vlan1")      # tap says ETHERCAP_VLAN_MTU: the full 1500
    assert vlan2.mtu == 1500 and plain.mtu == 1500


def test_output_is_tagged_and_padded_input_untagged():
    s = stack()
    tap, vlan = over_tap(s)
    ours = tap.iface.mac_text()
    sent = vlan.stats.opackets
    tap.write(bytes(Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=5) /
                    ARP(op=1, hwsrc=PEER, psrc="10.5.0.2", pdst="10.5.0.1")), 0)
    pump(s)
    raw = tap.read(2000)
    reply = Ether(raw)
    assert len(raw) == 64 and reply.type == 0x8100 and reply[Dot1Q].vlan == 5 and reply[Dot1Q].prio == 0
    assert reply[ARP].op == 2 and reply[ARP].hwsrc == ours
    tap.write(bytes(Ether(src=PEER, dst=ours) / Dot1Q(vlan=5) /
                    IP(src="10.5.0.2", dst="10.5.0.1") / ICMP(id=2) / bytes(1000)), 0)
    pump(s)
    pong = Ether(tap.read(2000))
    assert pong[Dot1Q].vlan == 5 and pong[ICMP].type == 0 and len(pong[ICMP].payload) == 1000
    assert vlan.stats.ipackets == 2 and vlan.stats.opackets == sent + 2


def test_unknown_tags_are_the_parents_noproto_and_parent_removal_detaches():
    s = stack()
    tap, vlan = over_tap(s)
    tap.write(bytes(Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=6) /
                    ARP(op=1, psrc="10.5.0.2", pdst="10.5.0.1")), 0)
    assert tap.iface.stats.noproto == 1 and s.inet.link_stats.vlan == 1
    s.tap.close(tap)                      # the clone goes, and vlan0 loses its parent
    assert vlan.mtu == 0 and not vlan.flags & 1 and "\tvlan:" not in ifconfig_block(vlan)
