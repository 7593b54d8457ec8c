"""The ARP cache (RFC 826): states and timers at literal times, the hold queue, replies,
learning, static entries and the gratuitous announcement."""

import errno
import ipaddress

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.neighbor import ARPT_DOWN, ARPT_KEEP, HOLD_LIMIT, State
from iopkt_fs.stack.wire.arp import ArpOp, ArpRepr
from iopkt_fs.stack.wire.ethernet import BROADCAST

from inet_helpers import (
    OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, arp_frame, host, ip, parse_arp, parse_icmp,
    sent,
)

S = 1_000_000


def n(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_gratuitous_arp_when_an_address_is_added():
    stack, en0 = host()
    stack.add_address(en0, ipaddress.ip_address("10.0.5.1"), 24)
    (frame,) = sent(en0)
    assert frame[:6] == BROADCAST and len(frame) == 60
    a = parse_arp(frame)
    assert a.operation == ArpOp.REQUEST
    assert a.sender_ip == a.target_ip == ip("10.0.5.1") and a.sender_hw == OUR_MAC


def test_announcement_again_after_down_up_but_once_per_up():
    stack, en0 = host()
    stack.down(en0)
    stack.up(en0)
    (frame,) = sent(en0)
    assert parse_arp(frame).target_ip == ip(OUR_IP)
    stack.up(en0)
    assert sent(en0) == []


def test_answers_requests_for_our_address_and_learns_the_sender():
    stack, en0 = host()
    req = ArpRepr.request(PEER_MAC, ip(PEER_IP), ip(OUR_IP))
    stack.input(en0, [arp_frame(req)], 100)
    (frame,) = sent(en0)
    assert frame[:6] == PEER_MAC
    rep = parse_arp(frame)
    assert rep == ArpRepr(ArpOp.REPLY, OUR_MAC, ip(OUR_IP), PEER_MAC, ip(PEER_IP))
    entry = stack.inet.arp.get(en0, n(PEER_IP))
    assert entry.state is State.REACHABLE and entry.mac == PEER_MAC
    assert entry.expires == 100 + ARPT_KEEP


def test_requests_for_others_are_not_answered_nor_learned():
    stack, en0 = host()
    req = ArpRepr.request(PEER_MAC, ip(PEER_IP), ip("10.0.0.99"))
    stack.input(en0, [arp_frame(req)], 0)
    assert sent(en0) == []
    assert stack.inet.arp.get(en0, n(PEER_IP)) is None


def test_bad_arp_is_counted():
    stack, en0 = host()
    st = stack.inet.arp.stats
    stack.input(en0, [arp_frame(ArpRepr.request(PEER_MAC, ip(PEER_IP), ip(OUR_IP)))[:20]], 0)
    assert st.rcvbadlen == 1
    stack.input(en0, [arp_frame(ArpRepr.request(OUR_MAC, ip(PEER_IP), ip(OUR_IP)))], 0)
    assert st.rcvlocalsha == 1
    stack.input(en0, [arp_frame(ArpRepr.request(PEER_MAC, ip(OUR_IP), ip(OUR_IP)))], 0)
    assert st.rcvlocalspa == 1            # someone claims our address
    bad = bytearray(arp_frame(ArpRepr.request(PEER_MAC, ip(PEER_IP), ip(OUR_IP))))
    bad[15] = 6                            # hardware type 6 (IEEE 802)
    stack.input(en0, [bytes(bad)], 0)
    assert st.rcvbadproto == 1
    stack.input(en0, [arp_frame(ArpRepr.request(PEER_MAC, ip("10.0.0.255"), ip(OUR_IP)))], 0)
    assert st.rcvbcastspa == 1
    assert sent(en0) == []


def test_resolution_holds_packets_then_sends_them():
    stack, en0 = host()
    inet = stack.inet
    for seq in range(3):
        inet.icmp.send_echo(PEER_IP, 1, seq, b"x", 0)
    (req,) = sent(en0)                     # one request, not three
    assert req[:6] == BROADCAST and parse_arp(req).target_ip == ip(PEER_IP)
    assert inet.arp.get(en0, n(PEER_IP)).state is State.INCOMPLETE
    reply = ArpRepr(ArpOp.REPLY, PEER_MAC, ip(PEER_IP), OUR_MAC, ip(OUR_IP))
    stack.input(en0, [arp_frame(reply, dst=OUR_MAC)], 500)
    frames = sent(en0)
    assert [parse_icmp(f)[1].seq for f in frames] == [0, 1, 2]
    assert all(f[:6] == PEER_MAC for f in frames)
    assert inet.arp.stats.dfrsent == 3


def test_hold_queue_is_bounded():
    stack, en0 = host()
    inet = stack.inet
    for seq in range(HOLD_LIMIT + 5):
        inet.icmp.send_echo(PEER_IP, 1, seq, b"x", 0)
    entry = inet.arp.get(en0, n(PEER_IP))
    assert len(entry.hold) == HOLD_LIMIT
    assert inet.arp.stats.dfrdropped == 5
    sent(en0)
    inet.arp.learn(en0, n(PEER_IP), PEER_MAC, 10, create=False)
    assert [parse_icmp(f)[1].seq for f in sent(en0)] == list(range(5, HOLD_LIMIT + 5))


def test_retries_every_second_then_fails_with_host_unreachable():
    stack, en0 = host()
    inet = stack.inet
    sock = inet.udp.socket()
    sock.connect(PEER_IP, 9999)
    sock.send(b"lost", 0)
    assert len(sent(en0)) == 1             # request 1 at t=0
    assert stack.poll_at() == 1 * S
    for t in (1, 2, 3, 4):
        stack.poll(t * S - 1)
        assert sent(en0) == []
        stack.poll(t * S)
        (f,) = sent(en0)
        assert parse_arp(f).target_ip == ip(PEER_IP)
    stack.poll(5 * S)                      # the 5th request went unanswered for 1 s
    assert sent(en0) == []
    entry = inet.arp.get(en0, n(PEER_IP))
    assert entry.state is State.FAILED and not entry.hold
    assert inet.arp.stats.timeouts == 1
    # The held datagram came back as ICMP host unreachable, through lo0, to the socket.
    stack.poll(5 * S)
    with pytest.raises(StackError) as e:
        sock.send(b"again", 5 * S)
    assert e.value.errno == errno.EHOSTUNREACH
    # While FAILED, no new requests (arpt_down); then the entry goes.
    sock.send(b"again", 5 * S)
    assert sent(en0) == []
    stack.poll(5 * S + ARPT_DOWN)
    assert inet.arp.get(en0, n(PEER_IP)) is None


def test_reachable_goes_stale_then_is_reconfirmed():
    stack, en0 = host()
    inet = stack.inet
    inet.arp.learn(en0, n(PEER_IP), PEER_MAC, 0, create=True)
    stack.poll(ARPT_KEEP)
    entry = inet.arp.get(en0, n(PEER_IP))
    assert entry.state is State.STALE
    inet.icmp.send_echo(PEER_IP, 1, 1, b"x", ARPT_KEEP + 1)
    frames = sent(en0)
    # A unicast re-validation (RFC 1122 2.3.2.1) and the packet, to the old address.
    assert parse_arp(frames[0]).target_ip == ip(PEER_IP) and frames[0][:6] == PEER_MAC
    assert frames[1][:6] == PEER_MAC
    reply = ArpRepr(ArpOp.REPLY, PEER_MAC, ip(PEER_IP), OUR_MAC, ip(OUR_IP))
    stack.input(en0, [arp_frame(reply, dst=OUR_MAC)], ARPT_KEEP + 2)
    assert entry.state is State.REACHABLE


def test_stale_unanswered_is_removed():
    stack, en0 = host()
    inet = stack.inet
    inet.arp.learn(en0, n(PEER_IP), PEER_MAC, 0, create=True)
    stack.poll(ARPT_KEEP)
    inet.icmp.send_echo(PEER_IP, 1, 1, b"x", ARPT_KEEP)
    for t in range(1, 6):
        stack.poll(ARPT_KEEP + t * S)
    assert inet.arp.get(en0, n(PEER_IP)) is None


def test_stale_unused_is_collected():
    stack, en0 = host()
    inet = stack.inet
    inet.arp.learn(en0, n(PEER_IP), PEER_MAC, 0, create=True)
    stack.poll(ARPT_KEEP)
    stack.poll(2 * ARPT_KEEP)
    assert inet.arp.get(en0, n(PEER_IP)) is None


def test_static_entries_delete_and_flush():
    stack, en0 = host()
    inet = stack.inet
    e = inet.arp_add("10.0.0.50", "02:aa:bb:cc:dd:ee")
    assert e.state is State.STATIC and e.iface is en0
    # The wire cannot overwrite it, and it never expires.
    inet.arp.learn(en0, n("10.0.0.50"), PEER_MAC, 0, create=True)
    stack.poll(10 * ARPT_KEEP)
    assert inet.arp.get(en0, n("10.0.0.50")).mac == bytes.fromhex("02aabbccddee")
    inet.arp.learn(en0, n(PEER_IP), PEER_MAC, 0, create=True)
    assert inet.arp_flush() == 1            # dynamic only
    assert [r["address"] for r in inet.arp_show()] == ["10.0.0.50"]
    assert inet.arp_show()[0]["permanent"]
    inet.arp_delete("10.0.0.50")
    with pytest.raises(StackError) as ex:
        inet.arp_delete("10.0.0.50")
    assert ex.value.errno == errno.ESRCH
    with pytest.raises(StackError) as ex:
        inet.arp_add("172.16.0.1", "02:00:00:00:00:09")
    assert ex.value.errno == errno.ENETUNREACH
    with pytest.raises(StackError) as ex:
        inet.arp_add("10.0.0.7", "02:00:zz:00:00:09")
    assert ex.value.errno == errno.EINVAL


def test_poll_at_tracks_the_earliest_timer():
    stack, en0 = host()
    assert stack.poll_at() is None
    stack.inet.arp.learn(en0, n(PEER_IP), PEER_MAC, 5, create=True)
    assert stack.poll_at() == 5 + ARPT_KEEP
    stack.inet.icmp.send_echo("10.0.0.3", 1, 1, b"", 10)
    assert stack.poll_at() == 10 + S


def test_gratuitous_arp_from_a_neighbour_updates_its_entry_only():
    stack, en0 = host()
    inet = stack.inet
    inet.arp.learn(en0, n(PEER_IP), PEER_MAC, 0, create=True)
    new_mac = bytes.fromhex("02000000aaaa")
    stack.input(en0, [arp_frame(ArpRepr.gratuitous(new_mac, ip(PEER_IP)), src=new_mac)], 10)
    assert inet.arp.get(en0, n(PEER_IP)).mac == new_mac
    assert inet.arp.stats.rcvover == 1
    # An announcement from a host we never talked to creates nothing (RFC 826 merge).
    stack.input(en0, [arp_frame(ArpRepr.gratuitous(new_mac, ip("10.0.0.77")), src=new_mac)], 10)
    assert inet.arp.get(en0, n("10.0.0.77")) is None
    assert sent(en0) == []


def test_detach_forgets_the_interface():
    stack, en0 = host()
    inet = stack.inet
    inet.arp_add(PEER_IP, "02:00:00:00:00:02")
    inet.route_add("default", "10.0.0.254")
    stack.detach(en0)
    assert len(inet.arp) == 0
    assert all(r.iface is stack.lo0 for r in inet.routes)
    assert not inet.is_local(ip(OUR_IP))
