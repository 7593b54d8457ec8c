"""Stack.poll_at's cached deadline: every layer's timers reach it, armed or cancelled.

The layers other than TCP are asked only after one of their timers changed
(``Stack.timers_changed``); TCP is asked every time. Each test arms a timer in one layer
through that layer's own path, checks that poll_at says so, cancels it and checks again.
``conftest`` also sets ``Stack.check_timers``, so every poll_at in the suite compares the
cache with the layers' own answers; here that check is what a missing call would trip.
"""

import ipaddress

from iopkt_fs.stack.config import StackConfig, V4_HC
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.iface.neighbor import ARP_RETRANS, ARPT_KEEP
from iopkt_fs.stack.inet.reass import IPFRAGTTL
from iopkt_fs.stack.inet6.frag6 import FRAGTTL
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import MICROS_PER_SECOND as S
from iopkt_fs.stack.time import seconds

MAC = bytes.fromhex("020000000001")
PEER = int(ipaddress.IPv4Address("10.0.0.2"))


def quiet(variant=None):
    """A stack with en0 (10.0.0.1/24, and a link-local address on v6) whose start-up
    timers (DAD, router solicitation, MLD and IGMP reports) have all run out."""
    config = StackConfig(seed=5) if variant is None else StackConfig(seed=5, variant=variant)
    stack = Stack(config)
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=MAC, flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address("10.0.0.1"), 24)
    for _ in range(100):
        d = stack.poll_at()
        if d is None:
            break
        stack.poll(d)
    assert stack.poll_at() is None
    en0.txq.clear()
    stack.take_tx()
    return stack, en0


def test_the_cache_is_used_until_a_layer_says_its_timers_changed(monkeypatch):
    monkeypatch.setattr(Stack, "check_timers", False)
    stack, _en0 = quiet()
    assert stack.poll_at() is None
    # A change that does not tell the stack is not seen: the answer is the cached one ...
    stack.inet.arp.timers_changed = lambda: None
    stack.inet.arp.resolve(_en0, PEER, b"held", 10 * S)
    assert stack.poll_at() is None
    # ... until timers_changed, which every timer change in the core calls.
    stack.timers_changed()
    assert stack.poll_at() == 10 * S + ARP_RETRANS


def test_arp_request_retransmission_then_entry_deleted():
    stack, en0 = quiet()
    stack.inet.arp.resolve(en0, PEER, b"held", 10 * S)
    assert stack.poll_at() == 10 * S + ARP_RETRANS
    stack.inet.arp.delete("10.0.0.2")
    assert stack.poll_at() is None


def test_arp_entry_learned_then_replaced_by_a_static_one():
    stack, en0 = quiet()
    stack.inet.arp.learn(en0, PEER, bytes.fromhex("020000000002"), 10 * S, create=True)
    assert stack.poll_at() == 10 * S + ARPT_KEEP
    stack.inet.arp_add("10.0.0.2", "02:00:00:00:00:03")     # arp -s: never expires
    assert stack.poll_at() is None


def test_ip_reassembly_queue_then_drained():
    stack, _en0 = quiet()
    stack.inet.reass.add((b"a", b"b", 1, 17), None, 20, 0, True, bytes(8), 10 * S)
    assert stack.poll_at() == 10 * S + IPFRAGTTL
    stack.inet.reass.drain()
    assert stack.poll_at() is None


def test_igmp_report_on_join_then_interface_down():
    stack, en0 = quiet(V4_HC)
    stack.poll(10 * S)
    stack.inet.join_group("239.1.2.3")
    due = stack.poll_at()
    assert due is not None and due == stack.inet.igmp.poll_at()
    stack.down(en0)
    assert stack.poll_at() is None


def test_ipv6_dad_then_address_deleted():
    stack, en0 = quiet()
    stack.poll(10 * S)
    stack.add_address(en0, ipaddress.ip_address("2001:db8::1"), 64)
    due = stack.poll_at()
    assert due is not None and due == stack.inet6.ndisc.poll_at()
    stack.delete_address(en0, "2001:db8::1")
    assert stack.poll_at() == stack.inet6.mld.poll_at()      # the group it left is reported


def test_neighbour_solicitation_retransmission_then_entry_deleted():
    stack, en0 = quiet()
    target = ipaddress.IPv6Address("fe80::2").packed
    stack.inet6.nd.resolve(en0, target, b"held", 10 * S)
    due = stack.poll_at()
    assert due is not None and due == stack.inet6.nd.poll_at() and due > 10 * S
    stack.inet6.nd.delete(target, en0)
    assert stack.poll_at() is None


def test_ipv6_reassembly_queue_then_drained():
    stack, _en0 = quiet()
    stack.inet6.reass.add((b"a", b"b", 1), None, 0, True, bytes(8), 10 * S)
    assert stack.poll_at() == 10 * S + FRAGTTL
    stack.inet6.reass._free(next(iter(stack.inet6.reass.queues.values())))
    assert stack.poll_at() is None


def test_address_lifetimes_then_address_deleted():
    stack, en0 = quiet()
    stack.poll(10 * S)
    en0_ll = [a for a in en0.addrs if a.address.version == 6]
    assert en0_ll                                   # the link-local one, past DAD
    stack.add_address(en0, ipaddress.ip_address("2001:db8::5"), 64, pltime=100, vltime=200,
                      now=10 * S)
    # DAD first (its first solicitation is due at once), then the lifetimes.
    assert stack.poll_at() == stack.inet6.ndisc.poll_at()
    for _ in range(10):
        stack.poll(stack.poll_at())
        if not stack.inet6.ndisc.dad and not stack.inet6.mld.pending:
            break
    assert stack.poll_at() == 10 * S + seconds(100)
    stack.delete_address(en0, "2001:db8::5")
    assert stack.poll_at() in (None, stack.inet6.mld.poll_at())


def test_bridge_ageing_then_bridge_destroyed():
    stack = Stack(StackConfig(seed=3, variant=V4_HC))
    p0 = stack.new_interface("p", 0, kind=IFT_ETHER, mac=bytes((2, 0, 0, 0, 0, 0x10)),
                             flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.up(p0)
    bridge0 = stack.create("bridge0")
    bridge0.driver.verbs["add"]([p0.name])
    stack.up(bridge0)
    assert stack.poll_at() is None
    frame = b"\xff" * 6 + bytes((2, 0, 0, 0, 0, 0x77)) + b"\x88\xb5" + bytes(46)
    stack.input(p0, [frame], 10 * S)
    due = stack.poll_at()
    assert due is not None and due > 10 * S
    stack.destroy("bridge0")
    assert stack.poll_at() is None


def test_tcp_is_asked_every_time():
    stack, en0 = quiet(V4_HC)
    stack.inet.arp_add("10.0.0.2", "02:00:00:00:00:02")
    sock = stack.tcp.socket()
    sock.connect(ipaddress.IPv4Address("10.0.0.2").packed, 80, 10 * S)
    due = stack.poll_at()
    assert due is not None and due == stack.tcp.poll_at() and due > 10 * S
    sock.abort(10 * S)
    assert stack.poll_at() is None
