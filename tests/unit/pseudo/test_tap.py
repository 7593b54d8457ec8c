"""tap(4) in the core: the cloning open, named units, frames both ways, errnos, lifetime
(reference/pseudo-if.md §3)."""

import errno

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from iopkt_fs.resmgr import verbs
from iopkt_fs.resmgr.render import ifconfig_block
from iopkt_fs.stack.errors import StackError

from .pseudo_helpers import pump, stack

PEER = "02:00:00:00:00:99"


def errno_of(fn, *args):
    with pytest.raises(StackError) as e:
        fn(*args)
    return e.value.errno


def test_cloning_open_takes_the_lowest_free_unit_and_last_close_destroys():
    s = stack()
    a, b = s.tap.clone(), s.tap.clone()
    assert (a.name, b.name) == ("tap0", "tap1") and s.tap.node_units() == [0, 1]
    s.tap.close(a)
    assert s.interface_names() == ["lo0", "tap1"] and s.tap.node_units() == [1]
    assert s.tap.clone().name == "tap0"


def test_created_tap_outlives_its_opener_and_is_exclusive():
    s = stack()
    s.create("tap3")
    dev = s.tap.open(3)
    assert errno_of(s.tap.open, 3) == errno.EBUSY
    s.tap.close(dev)
    assert "tap3" in s.interface_names()
    assert s.tap.clone().name == "tap0"
    assert errno_of(s.tap.open, 4) == errno.ENXIO


def test_units_are_bounded_by_num_tap_interface():
    s = stack(num_tap_interface=2)
    assert errno_of(s.create, "tap2") == errno.ENXIO
    s.tap.clone(), s.tap.clone()
    assert errno_of(s.tap.clone) == errno.ENXIO


def test_interface_looks_like_netbsd_tap():
    s = stack()
    dev = s.tap.clone()
    verbs.interface_ctl(s, dev.iface, "set 10.1.0.1 netmask 255.255.255.0")
    mac = dev.iface.mac_text()
    assert mac.startswith("f2:0b:a4:")
    assert ifconfig_block(dev.iface) == (
        "tap0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
        f"\taddress: {mac}\n"
        "\tmedia: Ethernet autoselect\n"
        "\tinet 10.1.0.1 netmask 0xffffff00 broadcast 10.1.0.255\n")


def test_arp_and_ping_through_the_device():
    s = stack()
    dev = s.tap.clone()
    assert errno_of(dev.read, 2000) == errno.EHOSTDOWN          # down: EHOSTDOWN
    verbs.interface_ctl(s, dev.iface, "set 10.1.0.1/24")
    pump(s)
    while dev.read(2000) is not None:      # the gratuitous ARP
        pass
    ours = dev.iface.mac_text()
    dev.write(bytes(Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff") /
                    ARP(op=1, hwsrc=PEER, psrc="10.1.0.2", pdst="10.1.0.1")), 0)
    pump(s)
    reply = Ether(dev.read(2000))
    assert reply[ARP].op == 2 and reply[ARP].hwsrc == ours and reply.dst == PEER
    dev.write(bytes(Ether(src=PEER, dst=ours) / IP(src="10.1.0.2", dst="10.1.0.1") / ICMP(id=4)), 0)
    pump(s)
    pong = Ether(dev.read(2000))
    assert pong[ICMP].type == 0 and pong[IP].dst == "10.1.0.2"
    assert dev.iface.stats.ipackets == 2


def test_writes_are_not_validated_and_bad_frames_are_counted_drops():
    s = stack()
    dev = s.tap.clone()
    s.up(dev.iface)
    assert dev.write(b"", 0) == 0 and dev.write(b"\x01" * 5, 0) == 5
    assert dev.iface.stats.ierrors == 2


def test_frames_with_nobody_reading_are_dropped():
    s = stack()
    s.create("tap0")
    iface = s.interface("tap0")
    verbs.interface_ctl(s, iface, "set 10.1.0.1/24")
    pump(s)
    assert iface.driver.drops >= 1 and iface.stats.oerrors >= 1 and not iface.driver.queue


def test_destroy_while_open_is_enxio():
    s = stack()
    s.create("tap1")
    dev = s.tap.open(1)
    s.destroy("tap1")
    assert errno_of(dev.read, 2000) == errno.ENXIO and errno_of(dev.write, b"x" * 60, 0) == errno.ENXIO
    s.tap.close(dev)
    assert s.interface_names() == ["lo0"]
