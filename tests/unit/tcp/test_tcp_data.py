"""Data transfer and reliability on one connection, at literal times."""

import errno

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.tcp import IPPROTO_TCP, SO_KEEPALIVE, SO_SNDBUF, SOL_SOCKET, TCP_NODELAY
from iopkt_fs.stack.tcp.buffers import Assembler, Ring
from iopkt_fs.stack.tcp.congestion import Cubic, NewReno, initial_window
from iopkt_fs.stack.tcp.rtt import RttEstimator
from iopkt_fs.stack.tcp.seq import seq_add, seq_ge, seq_gt, seq_in, seq_le, seq_lt, seq_max, seq_sub

from tcp_harness import (
    A, F, LOCAL_IP, LOCAL_PORT, P, R, REMOTE_IP, REMOTE_PORT, REMOTE_SEQ, S,
    Harness, established, l, listen, r, seg, syn_sent,
)

WIN = 32768
MSS = 1460


# -- sequence arithmetic, buffers, estimator --------------------------------------------

def test_seq_wraps():
    top = 0xFFFF_FFF0
    assert seq_lt(top, 5) and seq_gt(5, top) and seq_le(top, top) and seq_ge(5, 5)
    assert seq_add(top, 0x20) == 0x10 and seq_sub(0x10, top) == 0x20 and seq_sub(top, 0x10) == -0x20
    assert seq_max(top, 3) == 3 and seq_in(2, top, 10) and not seq_in(10, top, 10)


def test_ring_wraps_without_loss():
    ring = Ring(10)
    assert ring.write(b"abcdefgh") == 8
    ring.consume(6)
    assert ring.write(b"123456789") == 8
    assert bytes(ring.peek(0, 10)) == b"gh12345678"
    out = bytearray(4)
    assert ring.read_into(out) == 4 and out == b"gh12"
    ring.resize(20)
    assert ring.read(100) == b"345678"


def test_ring_write_at_and_commit():
    ring = Ring(8)
    ring.write(b"ab")
    ring.write_at(2, b"ef")       # out of order, two bytes past the end
    ring.write_at(0, b"cd")
    ring.commit(4)
    assert ring.read(10) == b"abcdef"


def test_assembler_merges_and_bounds():
    a = Assembler(max_ranges=2)
    assert a.add(10, 20) and a.add(30, 40)
    assert not a.add(50, 60)                    # a third hole is refused
    assert a.add(20, 30) and a.ranges() == [(10, 40)]
    a.shift(10)
    assert a.take_front() == 30 and not a


def test_rtt_estimator_rfc6298():
    e = RttEstimator(initial=1_000_000, min_rto=200_000)
    assert e.rto == 1_000_000
    e.sample(100_000)                            # (2.2)
    assert (e.srtt, e.rttvar, e.rto) == (100_000, 50_000, 300_000)
    e.sample(200_000)                            # (2.3)
    assert (e.srtt, e.rttvar) == (112_500, 62_500)
    e.back_off()
    assert e.rto == 2 * (112_500 + 4 * 62_500)
    for _ in range(10):
        e.back_off()
    assert e.rto == 60_000_000                   # (2.5) bound


def test_initial_window_rfc5681():
    assert initial_window(1460) == 4380 and initial_window(536) == 2144 and initial_window(9000) == 18000


def test_newreno_and_cubic_growth():
    for cls in (NewReno, Cubic):
        cc = cls(1000)
        cc.on_ack(1000, 0, 100_000)
        assert cc.cwnd == 5000                  # slow start: + SMSS per ACK
        cc.on_congestion(0, 20_000)
        assert cc.ssthresh == (10_000 if cls is NewReno else 14_000)
        start = cc.cwnd
        t = 0
        for _ in range(200):
            t += 10_000
            cc.on_ack(1000, t, 100_000)
        assert cc.cwnd > start
        cc.on_rto(t, 30_000)
        assert cc.cwnd == 1000


# -- sending ------------------------------------------------------------------------------

def test_segments_respect_mss_and_window():
    h = established()
    h.send(0, A, r(1), l(1), window=3000)
    h.sock.send(b"x" * 5000, 10)
    got = h.recv()
    assert [len(g.payload) for g in got] == [1460, 1460]     # 3000 window: 2 full segments
    assert got[1].flags == A                                  # no PSH: buffer not empty
    h.send(20, A, r(1), l(2921), window=3000)
    got = h.recv()
    assert [len(g.payload) for g in got] == [1460]     # Nagle holds the 620-byte tail
    h.send(30, A, r(1), l(4381), window=3000)
    assert h.recv_one() == seg(A | P, l(4381), r(1), WIN, payload=b"x" * 620)


def test_cwnd_limits_initial_burst():
    h = established()
    h.sock.send(b"x" * 20000, 10)
    # RFC 5681 IW = min(4*SMSS, max(2*SMSS, 4380)) = 4380: three full segments
    assert [len(g.payload) for g in h.recv()] == [MSS] * 3
    assert h.conn.flight <= initial_window(MSS)


def test_nagle_holds_small_segment_until_ack():
    h = established()
    h.sock.send(b"a", 10)
    assert h.recv_one().payload == b"a"        # idle connection: sent at once
    h.sock.send(b"b", 20)
    h.recv_nothing()                            # one small segment in flight already
    h.sock.send(b"c", 30)
    h.recv_nothing()
    h.send(40, A, r(1), l(2))
    assert h.recv_one() == seg(A | P, l(2), r(1), WIN, payload=b"bc")


def test_nodelay_sends_small_segments():
    h = established()
    h.sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    h.sock.send(b"a", 10)
    h.sock.send(b"b", 20)
    assert [g.payload for g in h.recv()] == [b"a", b"b"]


def test_nodelay_flushes_held_data():
    h = established()
    h.sock.send(b"a", 10)
    h.sock.send(b"b", 20)
    h.recv()
    h.sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1, now=30)
    assert h.recv_one().payload == b"b"


def test_send_buffer_full_eagain_and_writable():
    h = established()
    h.sock.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
    h.send(0, A, r(1), l(1), window=0)
    assert h.sock.send(b"x" * 10000, 10) == 4096
    with pytest.raises(StackError) as e:
        h.sock.send(b"y", 10)
    assert e.value.errno == errno.EAGAIN and not h.sock.writable


def test_zero_window_persist_probe():
    h = established()
    h.send(0, A, r(1), l(1), window=0)
    h.sock.send(b"hello", 10)
    h.recv_nothing()
    assert h.conn.t_persist == 10 + 5_000_000            # BSD TCPTV_PERSMIN
    h.poll(10 + 5_000_000)
    assert h.recv_one() == seg(A, l(1), r(1), WIN, payload=b"h")
    # the window stays shut: the probe's byte is not accepted; the probes back off
    h.send(5_100_000, A, r(1), l(1), window=0)
    h.recv_nothing()
    nxt = h.conn.t_persist
    assert nxt == 5_000_010 + 5_000_000              # backed off, but at least 5 s
    h.poll(nxt)
    assert h.recv_one().payload == b"h"
    # the window opens: everything flows
    h.send(nxt + 10, A, r(1), l(1), window=1000)
    assert h.recv_one() == seg(A | P, l(1), r(1), WIN, payload=b"hello")
    assert h.conn.t_persist is None and h.layer.stats.sndprobe == 2


def test_window_update_reopens_sending():
    h = established()
    h.send(0, A, r(1), l(1), window=0)
    h.sock.send(b"abc", 10)
    h.recv_nothing()
    h.send(20, A, r(1), l(1), window=100)
    assert h.recv_one().payload == b"abc"


# -- receiving ----------------------------------------------------------------------------

def test_delayed_ack_timer():
    h = established(delack=True)
    h.send(1000, A, r(1), l(1), payload=b"x" * 100)
    h.recv_nothing()
    assert h.conn.t_delack == 201_000
    h.poll(200_999)
    h.recv_nothing()
    h.poll(201_000)
    assert h.recv_one() == seg(A, l(1), r(101), WIN - 100)
    assert h.layer.stats.delack == 1


def test_delayed_ack_every_second_full_segment():
    h = established(delack=True)
    h.send(10, A, r(1), l(1), payload=b"x" * MSS)
    h.recv_nothing()
    h.send(20, A, r(1 + MSS), l(1), payload=b"x" * MSS)
    assert h.recv_one().ack == r(1 + 2 * MSS)


def test_data_piggybacks_pending_ack():
    h = established(delack=True)
    h.send(10, A, r(1), l(1), payload=b"req")
    h.recv_nothing()
    h.sock.send(b"resp", 20)
    assert h.recv_one() == seg(A | P, l(1), r(4), WIN - 3, payload=b"resp")
    assert h.conn.t_delack is None


DELACK = 200_000          # µs: TcpConfig.delack_time's default


def test_fin_acked_at_once_when_an_ack_is_already_delayed():
    # NetBSD TCP_SETUP_ACK: the data's ACK is pending, so the FIN is acknowledged now.
    h = established(delack=True)
    h.send(10, A, r(1), l(1), payload=b"req")
    h.recv_nothing()
    h.send(20, F | A, r(4), l(1))
    assert h.recv_one() == seg(A, l(1), r(5), WIN - 4)      # the right edge stays put
    assert h.conn.t_delack is None and h.state == "CLOSE-WAIT"


def test_a_lone_fin_ack_rides_on_the_users_fin():
    # Nothing pending since our last ACK: the FIN's ACK is delayed, and the user's
    # close carries it.
    h = established(delack=True)
    h.send(10, A, r(1), l(1), payload=b"req")
    h.poll(10 + DELACK)
    assert h.recv_one() == seg(A, l(1), r(4), WIN - 3)      # the data's delayed ACK
    h.send(DELACK + 20, F | A, r(4), l(1))
    h.recv_nothing()
    assert h.sock.recv(10, DELACK + 30) == b"req" and h.sock.recv(10, DELACK + 30) == b""
    h.sock.close(DELACK + 40)
    assert h.recv_one() == seg(F | A, l(1), r(5), WIN - 4)   # the right edge stays put
    assert h.conn.t_delack is None
    h.send(DELACK + 50, A, r(5), l(2))
    assert h.state == "CLOSED"


def test_a_lone_fin_is_acked_by_the_delack_timer():
    h = established(delack=True)
    h.send(1000, F | A, r(1), l(1))
    h.recv_nothing()
    assert h.conn.t_delack == 1000 + DELACK
    h.poll(1000 + DELACK - 1)
    h.recv_nothing()
    h.poll(1000 + DELACK)
    assert h.recv_one() == seg(A, l(1), r(2), WIN - 1)
    assert h.state == "CLOSE-WAIT"


def test_fin_acked_at_once_without_delack():
    h = established()
    h.send(10, F | A, r(1), l(1))
    assert h.recv_one() == seg(A, l(1), r(2), WIN - 1)


def test_out_of_order_reassembly_immediate_acks():
    h = established(delack=True)
    h.send(10, A, r(4), l(1), payload=b"def")
    assert h.recv_one() == seg(A, l(1), r(1), WIN)           # duplicate ACK at once
    h.send(20, A, r(10), l(1), payload=b"jkl")
    assert h.recv_one().ack == r(1)
    h.send(30, A, r(1), l(1), payload=b"abc")
    assert h.recv_one().ack == r(7)                           # gap filled: ACK now
    h.send(40, A, r(7), l(1), payload=b"ghi")
    assert h.recv_one().ack == r(13)
    assert h.sock.recv(100, 50) == b"abcdefghijkl"


def test_sack_blocks_generated_most_recent_first():
    h = established(sack=True)
    # redo the handshake with SACK negotiated
    h = listen(sack=True)
    h.send(0, S, REMOTE_SEQ, mss=1460, sack_permitted=True)
    assert h.recv_one().sack_permitted
    h.send(0, A, r(1), l(1))
    h.sock = h.listener.accept()
    h.send(10, A, r(11), l(1), payload=b"b" * 10)
    assert h.recv_one().sack_blocks == ((r(11), r(21)),)
    h.send(20, A, r(31), l(1), payload=b"d" * 10)
    assert h.recv_one().sack_blocks == ((r(31), r(41)), (r(11), r(21)))
    h.send(30, A, r(21), l(1), payload=b"c" * 10)
    assert h.recv_one().sack_blocks == ((r(11), r(41)),)
    h.send(40, A, r(1), l(1), payload=b"a" * 10)
    got = h.recv_one()
    assert got.ack == r(41) and got.sack_blocks == ()


def test_receiver_window_and_window_update_after_read():
    h = established()
    h.sock.conn.rcv_buf.resize(32768)
    for i in range(22):
        h.send(10, A, r(1 + i * MSS), l(1), payload=b"z" * MSS)
    got = h.recv()
    assert got[-1].window == WIN - 22 * MSS
    h.send(10, A, r(1 + 22 * MSS), l(1), payload=b"z" * (WIN - 22 * MSS))
    assert h.recv()[-1].window == 0
    buf = bytearray(1000)
    h.sock.recv_into(buf, 20)
    h.recv_nothing()                    # SWS avoidance: 1000 bytes is not worth an update
    buf = bytearray(4000)
    h.sock.recv_into(buf, 30)
    h.recv_nothing()                    # 5000: past 2 segments, short of a quarter buffer
    assert h.layer.stats.sndwinup == 0
    buf = bytearray(WIN // 4 - 5000)
    h.sock.recv_into(buf, 40)
    assert h.recv_one() == seg(A, l(1), r(1 + WIN), WIN // 4)
    assert h.layer.stats.sndwinup == 1


def test_open_window_updates_at_two_segments():
    """Only a shut window waits for a quarter: while the peer may still send, a read that
    moves the window by 2 segments is answered (its update is the ACK that clocks it)."""
    h = established()
    h.sock.conn.rcv_buf.resize(32768)
    for i in range(4):
        h.send(10, A, r(1 + i * MSS), l(1), payload=b"z" * MSS)
    assert h.recv()[-1].window == WIN - 4 * MSS
    h.sock.recv_into(bytearray(2 * MSS - 1), 20)
    h.recv_nothing()
    h.sock.recv_into(bytearray(1), 30)
    assert h.recv_one() == seg(A, l(1), r(1 + 4 * MSS), WIN - 2 * MSS)


def test_window_update_for_a_small_buffer_at_two_segments():
    """A buffer of 8 segments: a quarter is 2 segments, the BSD rule alone."""
    h = established(recvspace=8 * MSS, recvbuf_auto=False)
    h.send(10, A, r(1), l(1), payload=b"z" * (8 * MSS))
    assert h.recv()[-1].window == 0
    h.sock.recv_into(bytearray(2 * MSS - 1), 20)
    h.recv_nothing()
    h.sock.recv_into(bytearray(1), 30)
    assert h.recv_one() == seg(A, l(1), r(1 + 8 * MSS), 2 * MSS)


def test_zero_window_probe_acked_not_accepted():
    h = established()
    h.send(10, A, r(1), l(1), payload=b"z" * WIN)
    assert h.recv()[-1].window == 0
    h.send(20, A, r(1 + WIN), l(1), payload=b"p")
    assert h.recv_one() == seg(A, l(1), r(1 + WIN), 0)
    assert h.layer.stats.rcvwinprobe == 1


# -- loss recovery ------------------------------------------------------------------------

def _five_segments(h):
    h.send(0, A, r(1), l(1), window=60000)
    h.conn.cc.cwnd = 10 * MSS
    h.sock.send(b"x" * 5 * MSS, 10)
    got = h.recv()
    assert len(got) == 5
    return got


def test_fast_retransmit_newreno():
    h = established()
    _five_segments(h)
    for t in (100, 110):
        h.send(t, A, r(1), l(1 + MSS), window=60000)
    h.recv_nothing()
    h.send(120, A, r(1), l(1 + MSS), window=60000)
    h.recv_nothing()                          # two duplicates so far
    h.send(130, A, r(1), l(1 + MSS), window=60000)
    got = h.recv_one()                        # third duplicate: fast retransmit
    assert got.seq == l(1 + MSS) and len(got.payload) == MSS
    c = h.conn
    assert c.in_recovery and c.cc.ssthresh == max(4 * MSS // 2, 2 * MSS)
    assert c.cc.cwnd == c.cc.ssthresh + 3 * MSS
    # partial ACK (RFC 6582): retransmit the next hole at once
    h.send(140, A, r(1), l(1 + 3 * MSS), window=60000)
    got = h.recv()
    assert got[0].seq == l(1 + 3 * MSS)
    # full ACK ends recovery
    h.send(150, A, r(1), l(1 + 5 * MSS), window=60000)
    assert not c.in_recovery and h.layer.stats.fastrexmt == 1


def test_sack_recovery_retransmits_only_holes():
    # RFC 6675's DupThresh IsLost, as without RACK (test_tcp_rack.py has RACK's verdict).
    h = listen(sack=True, rack=False)
    h.send(0, S, REMOTE_SEQ, mss=1460, sack_permitted=True)
    h.recv_one()
    h.send(0, A, r(1), l(1))
    h.sock = h.listener.accept()
    _five_segments(h)
    # segments 1 and 3 lost; 2, 4, 5 SACKed
    m = MSS
    h.send(100, A, r(1), l(1), window=60000, sack_blocks=((l(1 + m), l(1 + 2 * m)),))
    h.send(110, A, r(1), l(1), window=60000,
           sack_blocks=((l(1 + 3 * m), l(1 + 4 * m)), (l(1 + m), l(1 + 2 * m))))
    h.recv_nothing()
    h.send(120, A, r(1), l(1), window=60000,
           sack_blocks=((l(1 + 3 * m), l(1 + 5 * m)), (l(1 + m), l(1 + 2 * m))))
    # RFC 6675: only the first hole has DupThresh segments SACKed above it (IsLost);
    # pipe = 2 SMSS (the retransmission + the second hole) fills cwnd = 3650.
    assert [(g.seq, len(g.payload)) for g in h.recv()] == [(l(1), m)]
    assert h.conn.in_recovery and h.layer.stats.sack_recovery == 1
    # The retransmission arrives: a partial ACK; NextSeg rule (3) now sends the second
    # hole, never the SACKed segments.
    h.send(130, A, r(1), l(1 + 2 * m), window=60000, sack_blocks=((l(1 + 3 * m), l(1 + 5 * m)),))
    assert [(g.seq, len(g.payload)) for g in h.recv()] == [(l(1 + 2 * m), m)]
    h.send(140, A, r(1), l(1 + 5 * m), window=60000)
    assert not h.conn.in_recovery and h.conn.retransmits == 2


def test_rto_collapses_cwnd_and_goes_back():
    h = established()
    _five_segments(h)
    h.poll(1_000_010)
    got = h.recv_one()
    assert got.seq == l(1) and h.conn.cc.cwnd == MSS
    assert h.conn.cc.ssthresh == max(5 * MSS // 2, 2 * MSS)
    h.send(1_100_000, A, r(1), l(1 + MSS), window=60000)
    assert [g.seq for g in h.recv()] == [l(1 + MSS), l(1 + 2 * MSS)]   # slow start: 2


# -- options ------------------------------------------------------------------------------

def test_syn_options_and_window_scaling():
    h = Harness(timestamps=True, sack=True, win_scale=True, recvspace=1 << 20)
    h.sock = h.layer.socket()
    h.sock.bind(LOCAL_IP, LOCAL_PORT)
    h.sock.connect(REMOTE_IP, REMOTE_PORT, 5_000)
    syn = h.recv_one()
    assert (syn.mss, syn.wscale, syn.sack_permitted) == (1460, 5, True)
    assert syn.window == 65535 and syn.timestamp[1] == 0
    h.send(10_000, S | A, REMOTE_SEQ, l(1), window=1000, mss=1460, wscale=3,
           sack_permitted=True, timestamp=(777, syn.timestamp[0]))
    ack = h.recv_one()
    c = h.conn
    assert c.ws_ok and c.snd_wscale == 3 and c.rcv_wscale == 5 and c.sack_ok and c.ts_ok
    assert c.smss == 1460 - 12                      # RFC 9293 3.7.1: minus TS option
    assert ack.timestamp[1] == 777 and ack.window == (1 << 20) >> 5
    assert c.rtt.srtt == 5_000                      # from TSecr (ms granularity)
    h.send(20_000, A, r(1), l(1), window=1000, timestamp=(778, ack.timestamp[0]))
    assert c.snd_wnd == 8000                        # scaled by 2**3


def test_no_window_scaling_unless_both_sides():
    h = syn_sent(win_scale=True, recvspace=1 << 20)
    h.send(10, S | A, REMOTE_SEQ, l(1), window=1000, mss=1460)
    c = h.conn
    assert not c.ws_ok and c.rcv_wscale == 0 and h.recv_one().window == 65535


def test_mss_clamped_to_route_mtu():
    h = Harness()
    h.layer.route_mtu = lambda dst: 1280
    h.sock = h.layer.socket()
    h.sock.connect(REMOTE_IP, REMOTE_PORT, 0)
    assert h.recv_one().mss == 1240
    h.send(10, S | A, REMOTE_SEQ, l(1), mss=9000, port=REMOTE_PORT)
    assert h.sock.conn.smss == 1240


def test_missing_mss_option_means_536():
    h = syn_sent()
    h.send(10, S | A, REMOTE_SEQ, l(1))
    assert h.conn.smss == 536


def test_paws_drops_old_timestamp():
    h = syn_sent(timestamps=True)
    h.send(10, S | A, REMOTE_SEQ, l(1), mss=1460, timestamp=(1000, 0))
    h.recv()
    h.send(20, A, r(1), l(1), payload=b"new", timestamp=(1001, 0))
    h.recv()
    h.send(30, A, r(4), l(1), payload=b"old", timestamp=(900, 0))
    assert h.recv_one().ack == r(4)                 # ACKed, not accepted
    assert h.layer.stats.pawsdrop == 1 and h.sock.recv(10, 40) == b"new"


# -- keepalive ----------------------------------------------------------------------------

def test_keepalive_probes_then_drop():
    h = established(keepidle=10_000_000, keepintvl=1_000_000, keepcnt=2)
    h.sock.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1, now=0)
    h.poll(9_999_999)
    h.recv_nothing()
    h.poll(10_000_000)
    assert h.recv_one() == seg(A, l(0), r(1), WIN)          # SEG.SEQ = SND.NXT - 1
    h.send(10_500_000, A, r(1), l(1))                       # the peer answers
    h.poll(11_000_000)
    h.recv_nothing()
    h.poll(20_500_000)
    assert h.recv_one().seq == l(0)
    h.poll(21_500_000)
    assert h.recv_one().seq == l(0)
    h.poll(22_500_000)
    assert h.recv_one().flags == R | A
    assert h.sock.take_error() == errno.ETIMEDOUT
    assert h.layer.stats.keepdrops == 1


def test_status_and_counters():
    h = established()
    h.sock.send(b"abc", 10)
    st = h.sock.status()
    assert st.state == "ESTABLISHED" and st.sendq == 3 and st.cwnd == initial_window(MSS)
    assert "ESTABLISHED sendq 3" in st.render()
    d = h.layer.stats.as_dict()
    assert d["tcps_sndpack"] == 1 and d["tcps_sndbyte"] == 3 and d["tcps_accepts"] == 1
    assert "tcps_rcvtotal: 2\n" in h.layer.stats.render()


def test_cwnd_does_not_grow_when_application_limited():
    h = established()
    h.sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    start = h.conn.cc.cwnd
    t = 10
    for i in range(50):
        h.sock.send(b"x" * 100, t)
        h.recv()
        t += 1000
        h.send(t, A, r(1), l(1 + 100 * (i + 1)))
    assert h.conn.cc.cwnd == start


def test_sws_override_timer_sends_into_small_window():
    h = established()
    h.send(0, A, r(1), l(1), window=8000)
    h.sock.send(b"x" * 6000, 10)
    assert [len(g.payload) for g in h.recv()] == [1460, 1460, 1460]   # IW = 3 SMSS
    # the peer acknowledges but offers only 500 bytes: below an MSS and below half the
    # largest window it offered, so the sender waits - for at most the override timeout
    h.send(100, A, r(1), l(4381), window=500)
    h.recv_nothing()
    assert h.conn.t_persist == 100 + 1_000_000
    h.poll(100 + 1_000_000)
    assert h.recv_one().payload == b"x" * 500


def test_bare_ack_uses_snd_max_while_retransmitting():
    # An ACK-war regression (found by a random bidirectional simulation): after a timeout
    # SND.NXT points back into data the peer holds; a bare ACK sent with it is outside the
    # peer's window, dropped unread, and answered by an equally bad ACK, for ever.
    h = established()
    h.send(0, A, r(1), l(1), window=60000)
    h.conn.cc.cwnd = 10 * MSS
    h.sock.send(b"x" * 3 * MSS, 10)
    h.recv()
    h.poll(1_000_010)                                  # RTO: go back to SND.UNA
    assert h.recv_one().seq == l(1) and h.conn.snd_nxt == l(1 + MSS)
    h.send(1_000_100, A, r(1), l(1), payload=b"data")  # peer data: we must ACK it
    ack = h.recv_one()
    assert ack.seq == l(1 + 3 * MSS) and ack.ack == r(5)


def test_out_of_window_pure_acks_answered_at_most_every_500_ms():
    h = established()
    for t in range(0, 1_000_000, 100_000):             # 10 bad ACKs in one second
        h.send(t, A, r(-5000), l(1))
    assert len(h.recv()) == 2                           # at 0 and at 500 ms
    for t in range(3):
        h.send(2_000_000 + t, A, r(-10), l(1), payload=b"old data")
    assert len(h.recv()) == 3                           # stale data is always answered


def test_sack_rescue_retransmission_of_the_tail():
    h = listen(sack=True)
    h.send(0, S, REMOTE_SEQ, mss=1460, sack_permitted=True)
    h.recv_one()
    h.send(0, A, r(1), l(1))
    h.sock = h.listener.accept()
    _five_segments(h)
    m = MSS
    blocks = ((l(1 + m), l(1 + 4 * m)),)        # 1 and 5 lost, 2-4 arrived
    for t in (100, 110, 120):
        h.send(t, A, r(1), l(1), window=60000, sack_blocks=blocks)
    assert [g.seq for g in h.recv()] == [l(1)]  # recovery: the first hole
    # the retransmission arrives; nothing is SACKed above segment 5, so it is never
    # "lost" by the DupThresh rule: RFC 6675 rule (4) resends it once
    h.send(130, A, r(1), l(1 + 4 * m), window=60000)
    got = h.recv()
    assert [(g.seq, len(g.payload)) for g in got] == [(l(1 + 4 * m), m)]
    h.send(140, A, r(1), l(1 + 4 * m), window=60000)
    h.recv_nothing()                             # once per recovery
