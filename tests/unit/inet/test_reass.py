"""Reassembly (RFC 791 3.2): orders, overlaps, timeouts, limits; fragmentation on output."""

import pytest

from iopkt_fs.stack.inet.reass import IPFRAGTTL, Reassembler
from iopkt_fs.stack.inet.stats import IpStat
from iopkt_fs.stack.wire.icmp import IcmpEchoRequest, IcmpTimeExceeded
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet

from inet_helpers import OUR_IP, PEER_IP, ether, host, ip, ipv4, learn_peer, parse_icmp, parse_ip, sent

DATA = bytes(range(256)) * 16      # 4096 bytes
KEY = (b"a", b"b", 1, 17)


def pieces(data, size):
    return [(off, off + size < len(data), data[off:off + size]) for off in range(0, len(data), size)]


def make(limit=200, max_bytes=1 << 20):
    st = IpStat()
    return Reassembler(st, lambda: limit, max_bytes), st


@pytest.mark.parametrize("order", ["forward", "reverse", "shuffled"])
def test_any_order(order):
    r, st = make()
    frags = pieces(DATA, 1480)
    if order == "reverse":
        frags.reverse()
    elif order == "shuffled":
        frags = [frags[1], frags[2], frags[0]]
    out = None
    for off, more, chunk in frags:
        assert out is None
        out = r.add(KEY, "first" if off == 0 else "other", 20, off, more, chunk, 0)
    assert out == ("first", DATA)
    assert st.reassembled == 1 and len(r) == 0 and r.nbytes == 0


def test_exact_duplicate_is_dropped_queue_kept():
    r, st = make()
    (a, b, c) = pieces(DATA, 1480)
    r.add(KEY, "h", 20, *a, 0)
    r.add(KEY, "h", 20, *a, 0)
    assert st.fragdropped == 1 and len(r) == 1
    r.add(KEY, "h", 20, *b, 0)
    assert r.add(KEY, "h", 20, *c, 0) == ("h", DATA)


def test_overlap_discards_the_datagram():
    r, st = make()
    r.add(KEY, "h", 20, 0, True, DATA[:1480], 0)
    r.add(KEY, "h", 20, 1480, True, DATA[1480:2960], 0)
    # A fragment straddling the two others, with different bytes (teardrop-style).
    assert r.add(KEY, "h", 20, 1000, True, b"\xee" * 800, 0) is None
    assert len(r) == 0 and st.fragdropped == 3
    # The rest of the datagram now starts a new queue that never completes.
    assert r.add(KEY, "h", 20, 2960, False, DATA[2960:], 0) is None


def test_inconsistent_ends_discard():
    r, st = make()
    r.add(KEY, "h", 20, 1480, False, DATA[1480:2000], 0)
    assert r.add(KEY, "h", 20, 1480, False, DATA[1480:2008], 0) is None
    assert len(r) == 0
    r.add(KEY, "h", 20, 800, False, DATA[800:900], 0)
    assert len(r) == 1
    assert r.add(KEY, "h", 20, 1000, True, DATA[200:208], 0) is None   # beyond the end
    assert len(r) == 0


def test_malformed_fragments():
    r, st = make()
    assert r.add(KEY, "h", 20, 0, True, DATA[:100], 0) is None       # MF, not 8-aligned
    assert r.add(KEY, "h", 20, 65528, False, DATA[:100], 0) is None  # ping of death
    assert st.badfrags == 2 and len(r) == 0


def test_timeout_counts_and_reports_first_fragment():
    r, st = make()
    r.add(KEY, "first", 20, 0, True, DATA[:1480], 100)
    r.add((b"x", b"y", 2, 17), "h", 20, 8, True, DATA[:8], 200)
    assert r.poll_at() == 100 + IPFRAGTTL
    assert r.poll(100 + IPFRAGTTL - 1) == []
    (e,) = r.poll(100 + IPFRAGTTL)
    assert e.first == "first" and e.data == DATA[:8]
    (e,) = r.poll(200 + IPFRAGTTL)
    assert e.first is None
    assert st.fragtimeout == 2 and r.poll_at() is None


def test_packet_limit_evicts_oldest():
    r, st = make(limit=2)
    for i in range(3):
        r.add((b"s", b"d", i, 17), "h", 20, 0, True, DATA[:8], i)
    assert [q[2] for q in r.queues] == [1, 2] and st.rcvmemdrop == 1


def test_byte_limit_evicts_oldest_and_refuses_giants():
    r, st = make(max_bytes=3000)
    r.add((b"s", b"d", 1, 17), "h", 20, 0, True, DATA[:1480], 0)
    r.add((b"s", b"d", 2, 17), "h", 20, 0, True, DATA[:1480], 0)
    r.add((b"s", b"d", 3, 17), "h", 20, 0, True, DATA[:1480], 0)
    assert [q[2] for q in r.queues] == [2, 3] and r.nbytes == 2960
    r.add((b"s", b"d", 3, 17), "h", 20, 1480, True, DATA[:1480], 0)   # grows 3, evicts 2
    assert [q[2] for q in r.queues] == [3] and r.nbytes == 2960
    assert r.add((b"s", b"d", 4, 17), "h", 20, 0, True, DATA[:3008], 0) is None
    assert st.rcvmemdrop >= 2


def test_zero_maxfragpackets_disables_reassembly():
    r, st = make(limit=0)
    assert r.add(KEY, "h", 20, 0, True, DATA[:8], 0) is None and len(r) == 0
    assert st.rcvmemdrop == 1


# -- through the layer ------------------------------------------------------------------

def frag_frames(payload: bytes, size: int, proto=1, ident=99, src=PEER_IP, dst=OUR_IP):
    return [ether(ipv4(src, dst, proto, chunk, ident=ident, mf=more, offset=off))
            for off, more, chunk in pieces(payload, size)]


def test_fragmented_echo_is_reassembled_and_the_reply_fragmented():
    stack, en0 = host()
    learn_peer(stack, en0)
    echo = IcmpEchoRequest(1, 1, DATA[:3992]).to_bytes()      # 4000 bytes of ICMP
    frames = frag_frames(echo, 1480)
    stack.input(en0, reversed(frames), 0)
    out = sent(en0)
    assert len(out) == 3
    reprs = [parse_ip(f)[0] for f in out]
    assert [r.frag_offset for r in reprs] == [0, 1480, 2960]
    assert [r.more_frags for r in reprs] == [True, True, False]
    assert all(r.total_len <= 1500 for r in reprs)
    body = b"".join(parse_ip(f)[1] for f in out)
    assert body[8:] == DATA[:3992] and body[0] == 0
    st = stack.inet.stats
    assert st.fragments == 3 and st.reassembled == 1 and st.fragmented == 1 and st.ofragments == 3


def test_reassembly_timeout_sends_time_exceeded():
    stack, en0 = host()
    learn_peer(stack, en0)
    frames = frag_frames(IcmpEchoRequest(1, 1, DATA[:3992]).to_bytes(), 1480)
    stack.input(en0, frames[:2], 0)
    assert stack.poll_at() == IPFRAGTTL
    stack.poll(IPFRAGTTL)
    (f,) = sent(en0)
    r, icmp = parse_icmp(f)
    assert isinstance(icmp, IcmpTimeExceeded) and icmp.code == 1
    assert r.dst == ip(PEER_IP) and r.src == ip(OUR_IP)
    quoted = Ipv4Packet.new_quoted(icmp.original)
    assert quoted.ident == 99 and len(quoted.payload) == 8
    assert stack.inet.stats.fragtimeout == 2


def test_no_time_exceeded_without_the_first_fragment():
    stack, en0 = host()
    learn_peer(stack, en0)
    frames = frag_frames(IcmpEchoRequest(1, 1, DATA[:3992]).to_bytes(), 1480)
    stack.input(en0, frames[1:], 0)
    stack.poll(IPFRAGTTL)
    assert sent(en0) == []


def test_maxfragpackets_sysctl_limits_the_layer():
    stack, en0 = host()
    stack.sysctl.set("net.inet.ip.maxfragpackets", 1)
    for ident in (1, 2, 3):
        stack.input(en0, frag_frames(DATA[:3000], 1480, ident=ident)[:1], 0)
    assert len(stack.inet.reass) == 1
    assert stack.inet.stats.rcvmemdrop == 2


def test_df_too_big_is_emsgsize_locally():
    import errno
    from iopkt_fs.stack.errors import StackError
    stack, en0 = host()
    learn_peer(stack, en0)
    with pytest.raises(StackError) as e:
        stack.inet.output(DATA[:2000], None, PEER_IP, 17, 0, df=True)
    assert e.value.errno == errno.EMSGSIZE and stack.inet.stats.cantfrag == 1


# -- property: any split, any order, duplicates allowed -> the same bytes ------------------

from hypothesis import given, settings, strategies as hst   # noqa: E402


@settings(max_examples=200, deadline=None)
@given(data=hst.binary(min_size=1, max_size=3000), cut=hst.integers(1, 200),
       order=hst.randoms(use_true_random=False), dups=hst.integers(0, 3))
def test_property_reassembles_any_split(data, cut, order, dups):
    r, st = make()
    size = cut * 8
    frags = pieces(data, size)
    if len(frags) < 2:
        return                  # not fragmented: the layer never asks
    frags += [order.choice(frags) for _ in range(dups)]
    order.shuffle(frags)
    results = [r.add(KEY, "h", 20, off, more, chunk, 0) for off, more, chunk in frags]
    done = [x for x in results if x is not None]
    # Duplicates arriving after completion start a new queue, which may complete again
    # (as on any stack: the IP identifier is all there is to tell them apart).
    assert done and all(d == ("h", data) for d in done)
    assert r.nbytes == sum(q.nbytes for q in r.queues.values())
