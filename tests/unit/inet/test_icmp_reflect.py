"""The in-place echo reflect (inet/icmp_reflect.py) against the general path: for every
request, two stacks from the same seed - one with ``fast_echo`` off - must send the same
frames and keep the same counters; requests the fast path must not take (a bad checksum,
a fragment, IP options, a broadcast, a martian source, a raw socket, no route back, a
reply that needs fragmenting) leave it untouched, and the general path's counters say
what happened."""

import attrs
import pytest
from hypothesis import given, settings, strategies as hst

from iopkt_fs.stack.wire.icmp import IcmpEchoRequest
from iopkt_fs.stack.wire.ipv4 import Ipv4Repr

from inet_helpers import OUR_IP, PEER_IP, echo_frame, ether, host, ip, learn_peer, sent


def pair():
    stacks = []
    for fast in (True, False):
        stack, en0 = host()
        learn_peer(stack, en0)
        stack.inet.fast_echo = fast
        stacks.append((stack, en0))
    return stacks


def counters(stack, en0):
    inet = stack.inet
    return inet.stats.snapshot(), inet.icmp.stats.snapshot(), attrs.asdict(en0.stats)


def run_both(frame, now=0):
    out = []
    for stack, en0 in pair():
        stack.input(en0, [frame], now)
        out.append((sent(en0), counters(stack, en0)))
    return out


@settings(max_examples=200, deadline=None)
@given(data=hst.binary(max_size=1472), ident=hst.integers(0, 0xFFFF), seq=hst.integers(0, 0xFFFF),
       tos=hst.integers(0, 255), df=hst.booleans(), ttl=hst.integers(1, 255))
def test_the_reflect_sends_what_the_general_path_sends(data, ident, seq, tos, df, ttl):
    frame = echo_frame(data=data, ident=ident, seq=seq, tos=tos, df=df, ttl=ttl)
    (fast_frames, fast_counts), (slow_frames, slow_counts) = run_both(frame)
    assert fast_frames == slow_frames and len(fast_frames) == 1
    assert fast_counts == slow_counts


def test_the_fast_path_answered_and_was_counted_as_an_echo():
    (stack, en0), _ = pair()
    calls = []
    real = stack.inet.process_ipv4
    stack.inet.process_ipv4 = lambda *a, **k: (calls.append(a), real(*a, **k))
    stack.input(en0, [echo_frame(data=b"abc")], 0)
    assert calls == []            # the general path never saw it
    assert len(sent(en0)) == 1 and stack.inet.icmp.stats.reflect == 1


def _bad_icmp_checksum():
    f = bytearray(echo_frame(data=b"abcd"))
    f[36] ^= 0xFF
    return bytes(f)


def _bad_ip_checksum():
    f = bytearray(echo_frame(data=b"abcd"))
    f[24] ^= 0xFF
    return bytes(f)


def _with_options():
    msg = IcmpEchoRequest(7, 1, b"opts").to_bytes()
    r = Ipv4Repr(ip(PEER_IP), ip(OUR_IP), 1, len(msg), 64, 0, 5, False, options=b"\x01\x01\x01\x00")
    return ether(r.to_bytes(msg))


CASES = {
    "bad ICMP checksum": (_bad_icmp_checksum, ("icmp", "checksum")),
    "bad IP checksum": (_bad_ip_checksum, ("ip", "badsum")),
    "fragment": (lambda: echo_frame(data=b"x" * 64, mf=True), ("ip", "fragments")),
    "IP options": (_with_options, ("icmp", "reflect")),
    "martian source": (lambda: echo_frame(src="127.0.0.5"), ("ip", "badaddr")),
    "multicast source": (lambda: echo_frame(src="224.1.2.3"), ("ip", "badaddr")),
    "to the broadcast": (lambda: echo_frame(dst="10.0.0.255"), ("icmp", "bmcastecho")),
    "no route back": (lambda: echo_frame(src="192.0.2.9"), ("ip", "odropped")),
}


@pytest.mark.parametrize("case", CASES)
def test_requests_the_fast_path_leaves_to_the_general_path(case):
    make, (table, counter) = CASES[case]
    (fast_frames, fast_counts), (slow_frames, slow_counts) = run_both(make())
    assert fast_frames == slow_frames and fast_counts == slow_counts
    snap = fast_counts[0] if table == "ip" else fast_counts[1]
    assert snap[counter] >= 1, snap


def test_a_raw_socket_still_sees_the_request():
    (stack, en0), _ = pair()
    raw = stack.inet.raw.socket()
    stack.input(en0, [echo_frame(data=b"seen")], 0)
    assert len(sent(en0)) == 1 and len(raw.rxq) == 1 and stack.inet.icmp.stats.reflect == 1


def test_a_reply_that_needs_fragmenting_goes_the_general_way():
    stacks = pair()
    for stack, en0 in stacks:
        stack.set_mtu(en0, 576)
    outs = []
    for stack, en0 in stacks:
        stack.input(en0, [echo_frame(data=b"y" * 1000)], 0)
        outs.append((sent(en0), counters(stack, en0)))
    assert outs[0] == outs[1] and len(outs[0][0]) == 2 and outs[0][1][0]["fragmented"] == 1


def test_another_hosts_frame_is_not_answered():
    stack, en0 = pair()[0]
    stack.input(en0, [ether(echo_frame()[14:], dst=bytes.fromhex("020000000099"))], 0)
    assert sent(en0) == [] and stack.inet.icmp.stats.reflect == 0


def run_both_in_turn(frames, between=None):
    """Each stack answers ``frames`` in turn (``between(stack, en0, i)`` before frame i)."""
    out = []
    for stack, en0 in pair():
        got = []
        for i, (frame, now) in enumerate(frames):
            if between is not None:
                between(stack, en0, i)
            stack.input(en0, [frame], now)
            got.append(sent(en0))
        out.append((got, counters(stack, en0)))
    return out


@settings(max_examples=100, deadline=None)
@given(data=hst.lists(hst.binary(max_size=300), min_size=2, max_size=4), tos=hst.integers(0, 255))
def test_a_source_seen_before_is_answered_from_the_route_cache_alike(data, tos):
    # The first reply fills the output route cache (the neighbour is REACHABLE); the next
    # ones take the route, the Ethernet header and the virtio header from it - short
    # replies (under the 46 bytes of a minimum frame's IP packet) still go the padded way.
    frames = [(echo_frame(data=d, seq=i, tos=tos), i * 1000) for i, d in enumerate(data)]
    (fast, fast_counts), (slow, slow_counts) = run_both_in_turn(frames)
    assert fast == slow and all(len(f) == 1 for f in fast)
    assert fast_counts == slow_counts


def test_the_cached_route_is_dropped_with_the_neighbour_going_stale():
    # Past ARPT_KEEP the neighbour is STALE: the reply must go through arp.resolve again,
    # which sends a request to re-confirm it, on both paths alike.
    def expire(stack, en0, i):
        if i == 1:
            stack.poll(25 * 60 * 1_000_000)
            sent(en0)
    frames = [(echo_frame(data=b"a" * 40, seq=0), 0), (echo_frame(data=b"b" * 40, seq=1), 25 * 60 * 1_000_000)]
    (fast, fast_counts), (slow, slow_counts) = run_both_in_turn(frames, expire)
    assert fast == slow and fast_counts == slow_counts
    assert len(fast[1]) == 2          # the reply and the ARP request that re-confirms


def test_the_cached_route_follows_an_mtu_change():
    def shrink(stack, en0, i):
        if i == 1:
            stack.set_mtu(en0, 576)
    frames = [(echo_frame(data=b"a" * 1000, seq=0), 0), (echo_frame(data=b"b" * 1000, seq=1), 1000)]
    (fast, fast_counts), (slow, slow_counts) = run_both_in_turn(frames, shrink)
    assert fast == slow and fast_counts == slow_counts
    assert len(fast[0]) == 1 and len(fast[1]) == 2 and fast_counts[0]["fragmented"] == 1


@settings(max_examples=50, deadline=None)
@given(data=hst.lists(hst.binary(max_size=300), min_size=2, max_size=3))
def test_the_cached_reply_on_a_virtio_link_carries_the_same_header(data):
    # A TAP with IFF_VNET_HDR: every frame both ways starts with a 10-byte virtio_net_hdr.
    out = []
    for stack, en0 in pair():
        en0.vnet_hdr = 10
        got = []
        for i, d in enumerate(data):
            stack.input(en0, [bytes(10) + echo_frame(data=d, seq=i)], i * 1000)
            got.append(sent(en0))
        out.append((got, counters(stack, en0)))
    (fast, fast_counts), (slow, slow_counts) = out
    assert fast == slow and fast_counts == slow_counts
    assert all(len(f) == 1 and f[0][:10] == bytes(10) for f in fast)
