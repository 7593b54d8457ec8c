"""Interfaces as io-pkt keeps them: lo0, naming, clones, enmap, addresses, ifconfig text."""

import errno
import ipaddress

import pytest

from iopkt_fs.resmgr.render import ifconfig_block
from iopkt_fs.stack.config import V4, V6_HC, StackConfig
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER
from iopkt_fs.stack.stack import Stack


def ether(stack, prefix="wm", unit=None, **kw):
    return stack.new_interface(prefix, unit, kind=IFT_ETHER, mac=bytes.fromhex("02000000000a"),
                               flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST, **kw)


def test_lo0_on_v4_is_qnx_lo0():
    s = Stack(StackConfig(variant=V4))
    assert ifconfig_block(s.lo0) == (
        "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33192\n"
        "\tinet 127.0.0.1 netmask 0xff000000\n")


def test_lo0_on_v6_hc_has_inet6():
    s = Stack(StackConfig(variant=V6_HC))
    assert ifconfig_block(s.lo0) == (
        "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33192\n"
        "\tinet 127.0.0.1 netmask 0xff000000\n"
        "\tinet6 ::1 prefixlen 128\n"
        "\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x1\n")


def test_cloned_loopback_is_running_but_not_up():
    s = Stack(StackConfig(variant=V4))
    lo2 = s.create("lo2")
    assert ifconfig_block(lo2) == "lo2: flags=8048<LOOPBACK,RUNNING,MULTICAST> mtu 33192\n"
    with pytest.raises(StackError) as e:
        s.create("lo2")
    assert e.value.errno == errno.EEXIST
    with pytest.raises(StackError) as e:
        s.create("bogus0")
    assert e.value.errno == errno.EINVAL
    s.destroy("lo2")
    assert s.interface_names() == ["lo0"]
    with pytest.raises(StackError) as e:
        s.destroy("lo0")
    assert e.value.errno == errno.EPERM


def test_naming_rules():
    s = Stack()
    assert ether(s).name == "wm0" and ether(s).name == "wm1"
    assert ether(s, unit=5).name == "wm5"
    with pytest.raises(StackError) as e:
        ether(s, unit=5)
    assert e.value.errno == errno.EALREADY
    with pytest.raises(StackError) as e:
        ether(s, prefix="averyverylongname")
    assert e.value.errno == errno.ENAMETOOLONG


def test_unknown_interface_is_enxio():
    with pytest.raises(StackError) as e:
        Stack().interface("xx0")
    assert e.value.errno == errno.ENXIO


def test_enmap_maps_en_names_onto_ethernet_interfaces():
    s = Stack()
    wm0, wm1 = ether(s), ether(s)
    assert s.interface("en0") is wm0 and s.interface("en1") is wm1
    en0 = ether(s, prefix="en", unit=0)
    # A real en0 takes unit 0: the others shift past it.
    assert s.interface("en0") is en0 and s.interface("en1") is wm0 and s.interface("en2") is wm1
    s.sysctl.set("qnx.kern.enmap", "0")
    with pytest.raises(StackError):
        s.interface("en1")


def test_ethernet_status_and_addresses():
    s = Stack(StackConfig(variant=V4))
    wm0 = ether(s, media="Ethernet autoselect (1000baseT full-duplex)")
    assert not wm0.is_up
    s.add_address(wm0, "10.0.0.2", 24)
    assert wm0.is_up   # an address brings the interface up
    s.add_address(wm0, "10.0.1.2", 16)
    assert ifconfig_block(wm0) == (
        "wm0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
        "\taddress: 02:00:00:00:00:0a\n"
        "\tmedia: Ethernet autoselect (1000baseT full-duplex)\n"
        "\tstatus: active\n"
        "\tinet 10.0.0.2 netmask 0xffffff00 broadcast 10.0.0.255\n"
        "\tinet 10.0.1.2 netmask 0xffff0000 broadcast 10.0.255.255\n")
    s.add_address(wm0, "10.0.0.9", 24, replace_primary=True)
    assert [str(a.address) for a in wm0.addrs] == ["10.0.0.9", "10.0.1.2"]
    s.delete_address(wm0, "10.0.1.2")
    with pytest.raises(StackError) as e:
        s.delete_address(wm0, "10.0.1.2")
    assert e.value.errno == errno.EADDRNOTAVAIL
    s.down(wm0)
    s.set_link(wm0, False)
    assert ifconfig_block(wm0).splitlines()[0] == "wm0: flags=8802<BROADCAST,SIMPLEX,MULTICAST> mtu 1500"
    assert "\tstatus: no carrier" in ifconfig_block(wm0)


def test_address_validation():
    s = Stack(StackConfig(variant=V4))
    with pytest.raises(StackError) as e:
        s.add_address(s.lo0, "::2", 64)
    assert e.value.errno == errno.EAFNOSUPPORT
    for bad in [("224.0.0.1", 4), ("10.0.0.1", 33)]:
        with pytest.raises(StackError) as e:
            s.add_address(s.lo0, *bad)
        assert e.value.errno == errno.EINVAL
    # Classful default mask, as ifconfig without a netmask.
    ifa = s.add_address(s.lo0, "172.16.5.5")
    assert ifa.prefixlen == 16 and ifa.address == ipaddress.ip_address("172.16.5.5")


def test_mtu_limits():
    s = Stack()
    wm0 = ether(s)
    s.set_mtu(wm0, 9000)
    for bad in (67, 9001):
        with pytest.raises(StackError) as e:
            s.set_mtu(wm0, bad)
        assert e.value.errno == errno.EINVAL


def test_sysctl_tree():
    s = Stack(StackConfig(variant=V4, forward=True, somaxconn=256))
    t = s.sysctl
    assert t.get("net.inet.ip.forwarding") == 1 and t.get("kern.somaxconn") == 256
    assert "net.inet6.ip6.forwarding" not in t
    assert "net.inet6.ip6.forwarding" in Stack(StackConfig(variant=V6_HC)).sysctl
    t.set("net.inet.ip.ttl", "0x20")
    assert t.get("net.inet.ip.ttl") == 32
    t.set("kern.hostname", "router\n")
    assert t.get("kern.hostname") == "router"
    for name, value, code in [("net.inet.ip.ttl", "300", errno.EINVAL), ("net.inet.ip.ttl", "abc", errno.EINVAL),
                              ("kern.ostype", "Linux", errno.EPERM), ("net.nope", "1", errno.ENOENT)]:
        with pytest.raises(StackError) as e:
            t.set(name, value)
        assert e.value.errno == code, name
    assert ("inet", False) in t.children("net") and ("ttl", True) in t.children("net.inet.ip")
