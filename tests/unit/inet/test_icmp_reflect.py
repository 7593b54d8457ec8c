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
