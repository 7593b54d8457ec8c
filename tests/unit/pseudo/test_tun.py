"""tun(4) in the core: units, the device's read/write framing, errnos, modes, lifetime
(reference/pseudo-if.md §2). scapy builds and reads the packets."""

import errno
import struct

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from iopkt_fs.resmgr import verbs
from iopkt_fs.resmgr.render import ifconfig_block
from iopkt_fs.stack.config import V6_HC
from iopkt_fs.stack.errors import StackError

from .pseudo_helpers import addr, pump, stack


def echo(src="10.0.0.2", dst="10.0.0.1", payload=b"ping"):
    return bytes(IP(src=src, dst=dst) / ICMP(id=9, seq=1) / payload)


def configured(s, mode=None):
    dev = s.tun.open(0)
    if mode:
        dev.mode_ctl([mode])
    verbs.interface_ctl(s, dev.iface, "set 10.0.0.1 dest 10.0.0.2")
    return dev


def errno_of(fn, *args):
    with pytest.raises(StackError) as e:
        fn(*args)
    return e.value.errno


def test_open_makes_the_interface_and_a_second_opener_is_busy():
    s = stack()
    assert s.interface_names() == ["lo0"] and s.tun.node_units() == [0, 1, 2, 3]
    dev = s.tun.open(0)
    assert s.interface_names() == ["lo0", "tun0"]
    assert ifconfig_block(dev.iface) == "tun0: flags=10<POINTOPOINT> mtu 1500\n"
    assert errno_of(s.tun.open, 0) == errno.EBUSY
    assert errno_of(dev.read, 1500) == errno.EHOSTDOWN      # no address yet: not ready


def test_point_to_point_address_brings_it_up_with_the_classful_mask():
    s = stack()
    dev = configured(s)
    assert ifconfig_block(dev.iface) == ("tun0: flags=51<UP,POINTOPOINT,RUNNING> mtu 1500\n"
                                        "\tinet 10.0.0.1 -> 10.0.0.2 netmask 0xff000000\n")
    route = s.inet.route_get("10.0.0.2")
    assert route.iface is dev.iface and route.prefixlen == 32


def test_a_written_echo_request_is_answered_with_one_read():
    s = stack()
    dev = configured(s)
    assert dev.write(echo(), 0) == len(echo())
    assert dev.iface.stats.ipackets == 1
    pump(s)
    reply = IP(dev.read(1500))
    assert reply.src == "10.0.0.1" and reply.dst == "10.0.0.2" and reply[ICMP].type == 0
    assert bytes(reply[ICMP].payload) == b"ping"
    assert dev.read(1500) is None                               # one packet per read


def test_a_short_read_truncates_and_loses_the_rest():
    s = stack()
    dev = configured(s)
    dev.write(echo(payload=bytes(100)), 0)
    pump(s)
    assert len(dev.read(20)) == 20 and dev.read(1500) is None


def test_ifhead_frames_with_the_bsd_address_family():
    s = stack()
    dev = configured(s, "ifhead")
    dev.write(struct.pack("!I", 2) + echo(), 0)
    pump(s)
    got = dev.read(1500)
    assert got[:4] == b"\x00\x00\x00\x02" and IP(got[4:])[ICMP].type == 0
    assert errno_of(dev.write, b"\x00\x00", 0) == errno.EIO               # header cut short
    assert errno_of(dev.write, struct.pack("!I", 28) + echo(), 0) == errno.EAFNOSUPPORT


def test_ipv6_needs_ifhead_and_uses_family_24():
    s = stack(variant=V6_HC)
    dev = configured(s, "ifhead")
    verbs.interface_ctl(s, dev.iface, "add 2001:db8::1/64")
    req = bytes(IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6EchoRequest(id=3, data=b"six"))
    dev.write(struct.pack("!I", 24) + req, 0)
    pump(s)
    got = dev.read(1500)
    assert got[:4] == struct.pack("!I", 24) and IPv6(got[4:]).haslayer(ICMPv6EchoReply)
    # Without TUNSIFHEAD an IPv6 packet cannot leave through tun: dropped, counted.
    dev.mode_ctl(["-ifhead"])
    errors = dev.iface.stats.oerrors
    dev.write(req, 0)            # a bare packet: injected as IPv4 mode would (version 6 wins)
    pump(s)
    assert dev.read(1500) is None and dev.iface.stats.oerrors == errors + 1


def test_slmode_prepends_the_destination_sockaddr():
    s = stack()
    dev = configured(s, "slmode")
    sa = struct.pack("!BBH4s8x", 16, 2, 0, addr("10.0.0.1").packed)
    dev.write(sa + echo(), 0)
    pump(s)
    got = dev.read(1500)
    assert got[:16] == struct.pack("!BBH4s8x", 16, 2, 0, addr("10.0.0.2").packed)
    assert IP(got[16:])[ICMP].type == 0
    assert errno_of(dev.write, sa[:10], 0) == errno.EIO
    dev.mode_ctl(["ifhead"])
    assert dev.ifhead and not dev.slmode                    # the modes exclude each other


def test_oversize_write_is_eio_and_mtu_range_is_576_to_1500():
    s = stack()
    dev = configured(s)
    assert errno_of(dev.write, echo(payload=bytes(1500 - 28 + 1)), 0) == errno.EIO
    assert dev.write(echo(payload=bytes(1500 - 28)), 0) == 1500
    for bad in (575, 1501):
        assert errno_of(s.set_mtu, dev.iface, bad) == errno.EINVAL
    s.set_mtu(dev.iface, 576)
    assert errno_of(dev.write, echo(payload=bytes(576 - 28 + 1)), 0) == errno.EIO


def test_full_queue_counts_collisions_as_netbsd_tun_does():
    s = stack()
    dev = configured(s)
    for i in range(300):
        dev.write(bytes(IP(src="10.0.0.2", dst="10.0.0.1", id=i) / ICMP(id=1, seq=i)), 0)
    pump(s)
    assert len(dev.queue) == 256 and dev.iface.stats.collisions == 300 - 256


def test_last_close_takes_it_down_and_keeps_the_address():
    s = stack()
    dev = configured(s, "ifhead")
    dev.write(struct.pack("!I", 2) + echo(), 0)
    pump(s)
    s.tun.close(dev)
    assert not dev.queue and dev.drops == 1
    assert ifconfig_block(dev.iface).startswith("tun0: flags=10<POINTOPOINT> mtu 1500\n\tinet 10.0.0.1 -> 10.0.0.2")
    assert [r for r in s.inet.route_show() if r["interface"] == "tun0"] == []   # tunclose
    again = s.tun.open(0)
    assert again is dev and again.ifhead                    # the unit's modes stay
    verbs.interface_ctl(s, dev.iface, "set 10.0.0.1 dest 10.0.0.2")
    assert s.inet.route_get("10.0.0.2").iface is dev.iface and dev.iface.flags & 1


def test_destroy_while_open_leaves_a_zombie_and_a_fresh_unit():
    s = stack()
    dev = configured(s, "ifhead")
    s.destroy("tun0")
    assert s.interface_names() == ["lo0"]
    assert errno_of(dev.read, 1500) == errno.ENXIO and errno_of(dev.write, echo(), 0) == errno.ENXIO
    fresh = s.tun.open(0)
    assert fresh is not dev and not fresh.ifhead and s.interface_names() == ["lo0", "tun0"]


def test_create_beyond_the_control_nodes_adds_a_node_and_destroy_removes_it():
    s = stack(num_tun_control_interface=2)
    assert s.tun.node_units() == [0, 1]
    s.create("tun7")
    assert s.tun.node_units() == [0, 1, 7]
    assert errno_of(s.create, "tun7") == errno.EEXIST
    s.destroy("tun7")
    assert s.tun.node_units() == [0, 1]
    assert errno_of(s.destroy, "tun7") == errno.ENXIO


def test_ifmode_only_while_down():
    s = stack()
    dev = configured(s)
    assert errno_of(dev.mode_ctl, ["ifmode", "broadcast"]) == errno.EBUSY
    s.down(dev.iface)
    dev.mode_ctl(["ifmode", "broadcast"])
    assert ifconfig_block(dev.iface).startswith("tun0: flags=8002<BROADCAST,MULTICAST> mtu 1500\n")
    assert errno_of(dev.mode_ctl, ["ifmode", "loopback"]) == errno.EINVAL


def test_readiness_goes_through_the_stacks_one_queue():
    s = stack()
    dev = configured(s)
    s.take_socket_events()
    dev.write(echo(), 0)
    pump(s)
    assert dev in s.take_socket_events() and dev.readable
    dev.read(1500)
    assert not dev.readable


def test_inet6_on_a_point_to_point_tun_prints_its_destination():
    s = stack(variant=V6_HC)
    dev = s.tun.open(0)
    verbs.interface_ctl(s, dev.iface, "add 2001:db8:9::1/128 dest 2001:db8:9::2")
    verbs.interface_ctl(s, dev.iface, "add 2001:db8:8::1/64")
    assert ifconfig_block(dev.iface).splitlines()[1:] == [
        "\tinet6 2001:db8:9::1 -> 2001:db8:9::2 prefixlen 128",
        "\tinet6 2001:db8:8::1 -> :: prefixlen 64"]


def test_unknown_interface_verbs_on_a_tun_are_einval():
    s = stack()
    dev = s.tun.open(0)
    assert errno_of(verbs.interface_ctl, s, dev.iface, "ifhead") == errno.EINVAL   # modes: tunN.ctl
    assert not dev.ifhead


def test_an_inet6_point_to_point_destination_gets_a_host_route():
    s = stack(variant=V6_HC)
    dev = configured(s, "ifhead")
    verbs.interface_ctl(s, dev.iface, "add 2001:db8:7::1/128 dest 2001:db8:7::2")
    route = s.inet6.routes.get("2001:db8:7::2")
    assert route.iface is dev.iface and route.prefixlen == 128
