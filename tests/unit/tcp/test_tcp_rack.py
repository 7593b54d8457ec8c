"""RACK-TLP (RFC 8985), DSACK (RFC 2883) and F-RTO (RFC 5682) at literal times.

Each test drives one SACK connection segment by segment (virtual time in µs, the peer's
segments crafted), and reads what left and the counters RACK keeps.
"""

import pytest

from iopkt_fs.stack.wire.tcp import TcpPacket

from tcp_harness import A, REMOTE_SEQ, S, l, listen, r

MSS = 1460


T0 = 20_000       # the handshake's ACK: a 20 ms round trip, the first RTT sample


def sack_established(**cfg):
    h = listen(sack=True, **cfg)
    h.send(0, S, REMOTE_SEQ, mss=1460, sack_permitted=True)
    h.recv_one()
    h.send(T0, A, r(1), l(1))
    h.sock = h.listener.accept()
    h.recv_nothing()
    assert h.conn.rack_ok == h.layer.config.rack
    return h


def segments_out(h, n: int, queued: int = 0, t: int = T0 + 10):
    """n segments in flight (cwnd n), ``queued`` more waiting in the send buffer."""
    h.send(T0, A, r(1), l(1), window=60000)
    h.conn.cc.cwnd = n * MSS
    h.sock.send(b"x" * (n + queued) * MSS, t)
    got = h.recv()
    assert [g.seq for g in got] == [l(1 + i * MSS) for i in range(n)]
    return got


def sent(h):
    return [(g.seq, len(g.payload)) for g in h.recv()]


def test_every_hole_sent_before_a_delivered_segment_is_lost_at_once():
    h = sack_established()
    segments_out(h, 5)
    m = MSS
    h.send(T0 + 20_000, A, r(1), l(1), window=60000, sack_blocks=((l(1 + m), l(1 + 2 * m)),))
    h.send(T0 + 20_010, A, r(1), l(1), window=60000,
           sack_blocks=((l(1 + 3 * m), l(1 + 4 * m)), (l(1 + m), l(1 + 2 * m))))
    assert sent(h) == []          # one or two SACKed segments: the reordering window holds
    h.send(T0 + 20_020, A, r(1), l(1), window=60000,
           sack_blocks=((l(1 + 3 * m), l(1 + 5 * m)), (l(1 + m), l(1 + 2 * m))))
    # Three SACKed and no reordering seen: reo_wnd = 0 (RFC 8985 6.2 step 4). Both holes
    # were sent before segment 5 and are older than RACK.rtt: both lost, both resent
    # (pipe 2 SMSS under cwnd = ssthresh = 3650), no DupThresh count needed for the second.
    assert sent(h) == [(l(1), m), (l(1 + 2 * m), m)]
    st = h.layer.stats
    assert st.rack_lost == 2 and st.sack_recovery == 1 and st.rexmttimeo == 0
    h.send(T0 + 40_000, A, r(1), l(1 + 5 * m), window=60000)
    assert not h.conn.in_recovery and h.conn.retransmits == 2


def test_dupthresh_without_rack_resends_only_the_first_hole():
    h = sack_established(rack=False)
    segments_out(h, 5)
    m = MSS
    for t, blocks in ((T0 + 20_000, ((l(1 + m), l(1 + 2 * m)),)),
                      (T0 + 20_010, ((l(1 + 3 * m), l(1 + 4 * m)), (l(1 + m), l(1 + 2 * m)))),
                      (T0 + 20_020, ((l(1 + 3 * m), l(1 + 5 * m)), (l(1 + m), l(1 + 2 * m))))):
        h.send(t, A, r(1), l(1), window=60000, sack_blocks=blocks)
    assert sent(h) == [(l(1), m)] and h.layer.stats.rack_lost == 0


def test_the_reorder_timer_marks_the_loss_without_an_rto():
    h = sack_established()
    segments_out(h, 5)
    m = MSS
    h.send(T0 + 20_000, A, r(1), l(1), window=60000, sack_blocks=((l(1 + m), l(1 + 2 * m)),))
    c = h.conn
    # Segment 1 left with segment 2; RACK.rtt is 19.99 ms, min_RTT too, and with one
    # segment SACKed the reordering window is min_RTT / 4 (RFC 8985 6.2 step 4).
    assert c.rack_rtt == c.rack_min_rtt == 19_990
    assert sent(h) == [] and c.t_rack == T0 + 10 + 19_990 + 19_990 // 4
    h.poll(c.t_rack - 1)
    assert sent(h) == []
    h.poll(c.t_rack)
    assert sent(h) == [(l(1), m)]
    st = h.layer.stats
    assert st.rack_reo_timeo == 1 and st.rack_lost == 1 and st.rexmttimeo == 0
    assert c.t_rexmt is not None and c.in_recovery


def test_a_late_original_is_reordering_and_nothing_is_resent():
    h = sack_established()
    segments_out(h, 5)
    m = MSS
    h.send(T0 + 20_000, A, r(1), l(1), window=60000, sack_blocks=((l(1 + m), l(1 + 2 * m)),))
    assert sent(h) == []
    h.send(T0 + 21_000, A, r(1), l(1 + 2 * m), window=60000)    # segment 1 was only late
    c = h.conn
    assert c.rack_reord and h.layer.stats.sack_reorder == 1
    h.poll(T0 + 30_000)
    assert sent(h) == [] and c.retransmits == 0 and not c.in_recovery
    # Reordering seen: the window no longer drops to 0 when three segments are SACKed.
    c.sacked = [[l(1 + 2 * m), l(1 + 5 * m)]]
    assert c._rack_reo_wnd() == c.rack_min_rtt // 4


def test_the_receiver_reports_duplicates_with_dsack():
    h = sack_established()
    c = h.conn
    h.send(10, A, r(1), l(1), payload=b"a" * 100)
    assert h.recv_one().ack == r(101)
    h.send(20, A, r(1), l(1), payload=b"a" * 100)        # the same segment again
    ack = h.recv_one()
    assert ack.ack == r(101) and ack.sack_blocks == ((r(1), r(101)),)   # RFC 2883 4.1.1
    # Out of order and then again: the D-SACK block first, then the block that holds it.
    h.send(30, A, r(201), l(1), payload=b"c" * 100)
    assert h.recv_one().sack_blocks == ((r(201), r(301)),)
    h.send(40, A, r(201), l(1), payload=b"c" * 100)
    assert h.recv_one().sack_blocks == ((r(201), r(301)), (r(201), r(301)))
    h.send(50, A, r(101), l(1), payload=b"b" * 100)      # fills the hole: no D-SACK
    ack = h.recv_one()
    assert ack.ack == r(301) and not ack.sack_blocks
    assert h.layer.stats.dsack_sent == 2 and c.dsack is None


def test_dsacks_for_every_retransmission_undo_the_recovery():
    h = sack_established()
    segments_out(h, 5)
    m = MSS
    c = h.conn
    cwnd_before, ssthresh_before = c.cc.cwnd, c.cc.ssthresh
    h.send(T0 + 20_000, A, r(1), l(1), window=60000,
           sack_blocks=((l(1 + m), l(1 + 2 * m)), (l(1 + 3 * m), l(1 + 5 * m))))
    assert sent(h) == [(l(1), m), (l(1 + 2 * m), m)]
    assert c.cc.cwnd < cwnd_before
    # The originals were only delayed: all arrive, then both retransmissions come back
    # as duplicates (D-SACK blocks below the cumulative ACK).
    h.send(T0 + 20_050, A, r(1), l(1 + 5 * m), window=60000)
    assert not c.in_recovery and h.layer.stats.dsack_undo == 0
    h.send(T0 + 20_060, A, r(1), l(1 + 5 * m), window=60000, sack_blocks=((l(1), l(1 + m)),))
    assert h.layer.stats.dsack_undo == 0 and c.rack_reo_mult == 2
    h.send(T0 + 20_070, A, r(1), l(1 + 5 * m), window=60000,
           sack_blocks=((l(1 + 2 * m), l(1 + 3 * m)),))
    st = h.layer.stats
    assert st.dsack_rcvd == 2 and st.dsack_undo == 1
    assert c.cc.cwnd >= cwnd_before and c.cc.ssthresh == ssthresh_before
    assert c.rack_reo_mult == 2          # one round trip with DSACKs widens it once


def test_frto_finds_a_spurious_timeout_and_sends_nothing_twice():
    h = sack_established()
    m = MSS
    segments_out(h, 5, queued=4)
    c = h.conn
    cwnd_before = c.cc.cwnd
    t = c.t_rexmt
    h.poll(t)
    assert sent(h) == [(l(1), m)]                 # RFC 5682 2.1: the first segment only
    assert c.frto == 1 and h.layer.stats.rexmttimeo == 1
    # The ACKs were only late: the first advances SND.UNA -> two new segments (2.2b).
    h.send(t + 100, A, r(1), l(1 + 2 * m), window=60000)
    assert sent(h) == [(l(1 + 5 * m), m), (l(1 + 6 * m), m)] and c.frto == 2
    # The next advances it again: the timeout was spurious (2.3b), the reduction undone.
    h.send(t + 110, A, r(1), l(1 + 4 * m), window=60000)
    st = h.layer.stats
    assert st.spurious_rto == 1 and c.frto == 0 and not c.in_recovery
    assert c.cc.cwnd >= cwnd_before and c.retransmits == 1
    assert all(seq >= l(1 + 7 * m) for seq, _ in sent(h))    # new data only from here


def test_rack_sees_the_real_loss_behind_a_timeout_at_once():
    h = sack_established()
    m = MSS
    segments_out(h, 5, queued=4)
    c = h.conn
    t = c.t_rexmt
    h.poll(t)
    assert sent(h) == [(l(1), m)] and c.frto == 1
    # The resend is delivered and segments 2-5, sent long before it, are not: RACK marks
    # them lost (RFC 8985 6.2) - a real loss, F-RTO ends, they go again in slow start.
    h.send(t + 25_000, A, r(1), l(1 + m), window=60000)
    assert h.layer.stats.spurious_rto == 0 and c.frto == 0
    assert sent(h) == [(l(1 + m), m), (l(1 + 2 * m), m), (l(1 + 3 * m), m)]   # 3 * SMSS
    h.send(t + 50_000, A, r(1), l(1 + 4 * m), window=60000)
    assert l(1 + 4 * m) in [seq for seq, _ in sent(h)]
    h.send(t + 75_000, A, r(1), l(1 + 5 * m), window=60000)
    assert not c.in_recovery and h.layer.stats.rexmttimeo == 1


def test_frto_sees_a_real_loss_when_rack_cannot_tell():
    h = sack_established()
    m = MSS
    c = h.conn
    h.send(T0, A, r(1), l(1), window=60000)
    h.sock.send(b"w" * m, T0 + 10)
    sent(h)
    h.send(T0 + 20_010, A, r(1), l(1 + m), window=60000)     # min_RTT = 20 ms
    c.cc.cwnd = 5 * m
    h.sock.send(b"x" * 9 * m, T0 + 20_020)
    assert len(sent(h)) == 5
    t = c.t_rexmt
    h.poll(t)
    assert sent(h) == [(l(1 + m), m)] and c.frto == 1
    # An ACK 0.1 ms after the resend cannot be for it (under min_RTT): RACK learns
    # nothing; F-RTO's step 2 sends two new segments.
    h.send(t + 100, A, r(1), l(1 + 2 * m), window=60000)
    assert sent(h) == [(l(1 + 6 * m), m), (l(1 + 7 * m), m)] and c.frto == 2
    # They arrive while segments 3-6 are still missing: a duplicate ACK, a real loss.
    h.send(t + 200, A, r(1), l(1 + 2 * m), window=60000,
           sack_blocks=((l(1 + 6 * m), l(1 + 8 * m)),))
    assert h.layer.stats.spurious_rto == 0 and c.frto == 0
    assert sent(h) == [(l(1 + 2 * m), m), (l(1 + 3 * m), m), (l(1 + 4 * m), m)]


def test_after_a_spurious_timeout_rack_still_judges_what_was_sent_before_it():
    h = sack_established()
    m = MSS
    segments_out(h, 5, queued=4)
    c = h.conn
    t = c.t_rexmt
    h.poll(t)
    sent(h)
    h.send(t + 100, A, r(1), l(1 + 2 * m), window=60000)
    sent(h)
    h.send(t + 110, A, r(1), l(1 + 3 * m), window=60000)
    assert h.layer.stats.spurious_rto == 1 and not c.in_recovery
    sent(h)
    # Segment 4 (sent before the timeout) was lost after all: the SACKs above it let
    # RACK find it, no second timeout.
    h.send(t + 25_000, A, r(1), l(1 + 3 * m), window=60000,
           sack_blocks=((l(1 + 4 * m), l(1 + 7 * m)),))
    h.poll(c.t_rack or t + 25_000)
    assert (l(1 + 3 * m), m) in sent(h)
    assert h.layer.stats.rexmttimeo == 1 and c.in_recovery


def payloads(h) -> list[int]:
    out = [len(TcpPacket(memoryview(seg)).payload) for _, _, seg in h.out]
    h.out.clear()
    return out


@pytest.mark.parametrize("cwnd,largest", [(16, 4), (3, 2)])
def test_a_window_leaves_in_several_super_segments_not_one(cwnd, largest):
    # With TSO a whole small window in one frame would be lost whole by one drop: a tail
    # only the RTO recovers. A super-segment carries a quarter of cwnd, two segments at
    # least (Linux's floor).
    h = sack_established()
    h.layer.csum_offload = True
    h.layer.output = lambda s, d, seg, gso=None: h.out.append((s, d, seg))
    h.layer.route_tso = lambda dst: 65535
    h.layer.route_gen += 1
    h.send(T0, A, r(1), l(1), window=60000)
    h.conn.cc.cwnd = cwnd * MSS
    h.sock.send(b"x" * 40 * MSS, T0 + 10)
    sizes = payloads(h)          # (partial checksums: the NIC would finish them)
    assert sum(sizes) == cwnd * MSS and max(sizes) == largest * MSS and len(sizes) > 1
