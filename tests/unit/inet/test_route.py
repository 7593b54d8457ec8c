"""The routing table: longest prefix match, default, interface routes, several gateways."""

import errno
import ipaddress

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import Interface, IFF_UP
from iopkt_fs.stack.iface.route import RTF_GATEWAY, RTF_STATIC, RouteTable, flag_letters

from inet_helpers import host, learn_peer


def n(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


@pytest.fixture
def table():
    t = RouteTable()
    en0 = Interface("en0", 1, flags=IFF_UP)
    en1 = Interface("en1", 2, flags=IFF_UP)
    t.add_interface_route(en0, n("10.0.0.1"), 24, n("10.0.0.1"))
    t.add_interface_route(en1, n("192.168.1.1"), 24, n("192.168.1.1"))
    return t, en0, en1


def test_longest_prefix_wins(table):
    t, en0, en1 = table
    t.add("default", "10.0.0.254")
    t.add("172.16.0.0/12", "10.0.0.253")
    t.add("172.16.5.0/24", "192.168.1.254")
    t.add("172.16.5.7", "10.0.0.252", host=True)
    assert t.lookup(n("172.16.5.7")).gateway == n("10.0.0.252")
    assert t.lookup(n("172.16.5.8")).gateway == n("192.168.1.254")
    assert t.lookup(n("172.17.0.1")).gateway == n("10.0.0.253")
    assert t.lookup(n("8.8.8.8")).gateway == n("10.0.0.254")
    assert t.lookup(n("10.0.0.77")).gateway is None and t.lookup(n("10.0.0.77")).iface is en0


def test_no_default_no_route(table):
    t, *_ = table
    assert t.lookup(n("8.8.8.8")) is None
    with pytest.raises(StackError) as e:
        t.get("8.8.8.8")
    assert e.value.errno == errno.ESRCH


def test_flags_and_show(table):
    t, en0, en1 = table
    r = t.add("default", "10.0.0.254")
    assert r.flags & RTF_GATEWAY and r.flags & RTF_STATIC
    assert flag_letters(r.flags) == "UGS"
    rows = t.show()
    assert rows[0]["destination"] == "default" and rows[0]["flags"] == "UGS"
    assert {row["flags"] for row in rows[1:]} == {"UC"}
    assert t.add("10.9.9.9", "10.0.0.254", host=True).describe()["flags"] == "UGHS"


def test_add_errors(table):
    t, *_ = table
    t.add("default", "10.0.0.254")
    with pytest.raises(StackError) as e:
        t.add("default", "10.0.0.254")
    assert e.value.errno == errno.EEXIST
    with pytest.raises(StackError) as e:
        t.add("default", "172.31.0.1")         # not on any connected network
    assert e.value.errno == errno.ENETUNREACH
    with pytest.raises(StackError) as e:
        t.add("10.5.0.0/16")                  # neither gateway nor interface
    assert e.value.errno == errno.EINVAL
    with pytest.raises(StackError) as e:
        t.add("10.5.0.0/33", "10.0.0.1")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(StackError) as e:
        t.delete("10.7.0.0/16")
    assert e.value.errno == errno.ESRCH


def test_several_gateways_in_insertion_order(table):
    t, en0, en1 = table
    t.add("default", "10.0.0.254")
    t.add("default", "192.168.1.254")
    dead = set()

    def usable(route):
        return route.gateway not in dead

    assert t.lookup(n("8.8.8.8"), usable).gateway == n("10.0.0.254")
    dead.add(n("10.0.0.254"))
    assert t.lookup(n("8.8.8.8"), usable).gateway == n("192.168.1.254")
    dead.clear()
    # delete without a gateway removes the oldest; naming one removes that one.
    t.delete("default", "192.168.1.254")
    assert [r.gateway for r in t.exact(0, 0)] == [n("10.0.0.254")]


def test_dead_specific_falls_back_to_shorter(table):
    t, *_ = table
    t.add("172.16.0.0/16", "10.0.0.9")
    t.add("default", "192.168.1.254")
    assert t.lookup(n("172.16.1.1"), lambda r: r.gateway != n("10.0.0.9")).gateway == n("192.168.1.254")


def test_down_interface_is_skipped(table):
    t, en0, en1 = table
    t.add("default", "10.0.0.254")
    t.add("default", "192.168.1.254")
    en0.flags = 0
    assert t.lookup(n("8.8.8.8")).iface is en1


def test_flush_keeps_interface_routes(table):
    t, *_ = table
    t.add("default", "10.0.0.254")
    t.add("172.16.0.0/12", "10.0.0.253")
    gen = t.generation
    assert len(t.flush()) == 2
    assert len(t) == 2 and t.generation > gen


def test_interface_routes_follow_addresses():
    stack, en0 = host()
    routes = stack.inet.routes
    assert routes.lookup(n("10.0.0.9")).iface is en0
    stack.add_address(en0, ipaddress.ip_address("10.0.1.1"), 24)
    assert routes.lookup(n("10.0.1.9")).iface is en0
    stack.delete_address(en0, "10.0.1.1")
    assert routes.lookup(n("10.0.1.9")) is None
    stack.inet.route_add("default", "10.0.0.254")
    stack.detach(en0)
    assert all(r.iface is stack.lo0 for r in routes)


def test_route_get_uses_arp_failure_for_gateway_choice():
    stack, en0 = host()
    inet = stack.inet
    inet.route_add("default", "10.0.0.254")
    inet.route_add("default", "10.0.0.253")
    assert inet.route_get("8.8.8.8").gateway == n("10.0.0.254")
    # Five unanswered requests for 10.0.0.254: the next packets take 10.0.0.253.
    inet.icmp.send_echo("8.8.8.8", 1, 1, b"x", 0)
    for t in range(1, 7):
        stack.poll(t * 1_000_000)
    assert inet.arp.is_down(en0, n("10.0.0.254"))
    assert inet.route_get("8.8.8.8").gateway == n("10.0.0.253")
    learn_peer(stack, en0, "10.0.0.253")
    en0.txq.clear()
    inet.icmp.send_echo("8.8.8.8", 1, 2, b"x", 6_000_000)
    (frame,) = list(en0.txq)
    assert frame[:6] == bytes.fromhex("020000000002")
    # After arpt_down (20 s) the first gateway is tried again.
    stack.poll(27_000_000)
    assert inet.route_get("8.8.8.8").gateway == n("10.0.0.254")


def test_gateway_that_is_our_address_makes_an_interface_route():
    stack, en0 = host()
    r = stack.inet.route_add("10.50.0.0/16", "10.0.0.1")
    assert r.gateway is None and r.iface is en0 and flag_letters(r.flags) == "US"


def test_route_get_skips_down_interfaces_and_output_fails():
    stack, en0 = host()
    stack.inet.route_add("default", "10.0.0.254")
    stack.down(en0)
    with pytest.raises(StackError) as e:
        stack.inet.route_get("8.8.8.8")
    assert e.value.errno == errno.ESRCH
    with pytest.raises(StackError) as e:
        stack.inet.icmp.send_echo("8.8.8.8", 1, 1, b"", 0)
    assert e.value.errno == errno.EHOSTUNREACH


def test_reject_and_blackhole_routes():
    stack, en0 = host()
    learn_peer(stack, en0)
    stack.inet.route_add("172.16.0.0/16", "10.0.0.2", reject=True)
    stack.inet.route_add("172.17.0.0/16", "10.0.0.2", blackhole=True)
    with pytest.raises(StackError) as e:
        stack.inet.icmp.send_echo("172.16.0.1", 1, 1, b"", 0)
    assert e.value.errno == errno.EHOSTUNREACH
    stack.inet.icmp.send_echo("172.17.0.1", 1, 1, b"", 0)     # silently discarded
    assert not en0.txq
