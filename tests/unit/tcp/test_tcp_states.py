"""Every RFC 9293 state and transition, at literal times, checking each segment sent."""

import errno
import random

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.tcp import State
from iopkt_fs.stack.tcp.layer import TcpLayer
from iopkt_fs.stack.tcp.socket import SHUT_WR

from tcp_harness import (
    A, F, LOCAL_IP, LOCAL_PORT, LOCAL_SEQ, P, R, REMOTE_IP, REMOTE_PORT, REMOTE_SEQ, S,
    Harness, close_wait, closing, established, fin_wait_1, fin_wait_2, l, last_ack, listen, r,
    seg, syn_received, syn_sent, time_wait,
)

WIN = 32768


# -- CLOSED -------------------------------------------------------------------------------

def test_closed_port_syn_gets_rst_ack():
    h = Harness()
    h.send(0, S, REMOTE_SEQ)
    assert h.recv_one() == seg(R | A, 0, r(1), 0)
    assert h.layer.stats.noport == 1


def test_closed_port_ack_gets_rst_from_ack():
    h = Harness()
    h.send(0, A, REMOTE_SEQ, 12345, payload=b"x")
    assert h.recv_one() == seg(R, 12345, 0, 0)


def test_closed_port_rst_is_ignored():
    h = Harness()
    h.send(0, R, REMOTE_SEQ)
    h.recv_nothing()


# -- LISTEN -------------------------------------------------------------------------------

def test_listen_syn_gets_syn_ack():
    h = listen()
    h.send(0, S, REMOTE_SEQ, mss=1400)
    assert h.recv_one() == seg(S | A, LOCAL_SEQ, r(1), WIN, mss=1460)
    c = next(iter(h.layer.connections.values()))
    assert c.state == State.SYN_RECEIVED and c.smss == 1400


def test_listen_rst_ignored_and_ack_reset():
    h = listen()
    h.send(0, R, REMOTE_SEQ)
    h.recv_nothing()
    h.send(0, A, REMOTE_SEQ, 999)
    assert h.recv_one() == seg(R, 999, 0, 0)


def test_listen_drops_syn_fin():
    h = listen()
    h.send(0, S | F, REMOTE_SEQ)
    h.recv_nothing()
    assert h.layer.stats.badsyn == 1


def test_listen_backlog_bounded_by_somaxconn():
    h = Harness(somaxconn=4)
    s = h.layer.socket()
    s.listen(1000)
    assert s.backlog == 4


def test_listen_queue_full_drops_without_cookies():
    h = Harness(syncookies=False)
    lst = h.layer.socket()
    lst.bind(LOCAL_IP, LOCAL_PORT)
    lst.listen(1)
    h.send(0, S, REMOTE_SEQ)
    h.recv_one()
    h.send(0, S, REMOTE_SEQ, port=REMOTE_PORT + 1)
    h.recv_nothing()
    assert h.layer.stats.listendrop == 1


def test_syn_cookie_when_queue_full_then_accept():
    h = Harness(timestamps=True, sack=True, win_scale=True)
    lst = h.layer.socket()
    lst.bind(LOCAL_IP, LOCAL_PORT)
    lst.listen(1)
    h.send(0, S, REMOTE_SEQ, port=1)           # occupies the only slot (embryonic)
    h.recv_one()
    h.send(1000, S, REMOTE_SEQ, mss=1460, wscale=7, sack_permitted=True, timestamp=(5, 0),
           port=2)
    synack = h.recv_one()
    assert synack.flags == S | A and h.layer.stats.sc_sendcookie == 1
    assert len(h.layer.connections) == 1        # no state kept for the cookie
    # The embryonic connection completes and is accepted first.
    h.send(2000, A, r(1), l(1), port=1)
    assert lst.accept().remote_address == (REMOTE_IP, 1)
    # Now the cookie ACK: rebuilt with MSS, window scale and SACK from the cookie.
    h.send(3000, A, r(1), synack.seq + 1, window=100, timestamp=(6, synack.timestamp[0]),
           port=2, payload=b"hello")
    assert h.layer.stats.sc_recvcookie == 1
    child = lst.accept()
    c = child.conn
    assert c.state == State.ESTABLISHED and c.ws_ok and c.snd_wscale == 7 and c.sack_ok
    assert c.snd_wnd == 100 << 7 and c.ts_ok
    assert child.recv(100, 3000) == b"hello"


def test_bad_cookie_ack_is_reset():
    h = listen()
    h.send(0, A, REMOTE_SEQ, 0x12345678)
    assert h.recv_one() == seg(R, 0x12345678, 0, 0)
    assert h.layer.stats.sc_bad_cookie == 1


# -- SYN-RECEIVED -------------------------------------------------------------------------

def test_syn_received_ack_establishes_and_queues():
    h = syn_received()
    assert not h.listener.readable
    h.send(10, A, r(1), l(1))
    h.recv_nothing()
    assert h.listener in h.take_events() and h.listener.readable
    s = h.listener.accept()
    assert s.state == "ESTABLISHED" and s.remote_address == (REMOTE_IP, REMOTE_PORT)
    with pytest.raises(StackError) as e:
        h.listener.accept()
    assert e.value.errno == errno.EAGAIN


def test_syn_received_rst_forgets_connection():
    h = syn_received()
    h.send(10, R, r(1))
    h.recv_nothing()
    assert not h.layer.connections and h.listener.embryonic == 0


def test_syn_received_repeated_syn_repeats_syn_ack():
    h = syn_received()
    h.send(10, S, REMOTE_SEQ, mss=1460)
    assert h.recv_one() == seg(S | A, LOCAL_SEQ, r(1), WIN, mss=1460)


def test_syn_received_bad_ack_reset():
    h = syn_received()
    h.send(10, A, r(1), l(100))
    assert h.recv_one() == seg(R, l(100), 0, 0)


def test_syn_ack_retransmitted_with_backoff():
    h = syn_received()
    h.poll(999_999)
    h.recv_nothing()
    h.poll(1_000_000)
    assert h.recv_one() == seg(S | A, LOCAL_SEQ, r(1), WIN, mss=1460)
    h.poll(2_999_999)
    h.recv_nothing()
    h.poll(3_000_000)
    assert h.recv_one().flags == S | A


# -- SYN-SENT -----------------------------------------------------------------------------

def test_connect_sends_syn():
    h = Harness()
    h.sock = h.layer.socket()
    h.sock.bind(LOCAL_IP, LOCAL_PORT)
    h.sock.connect(REMOTE_IP, REMOTE_PORT, 0)
    assert h.recv_one() == seg(S, LOCAL_SEQ, 0, WIN, mss=1460)
    assert h.state == "SYN-SENT" and not h.sock.writable


def test_syn_sent_syn_ack_establishes():
    h = syn_sent()
    h.send(5000, S | A, REMOTE_SEQ, l(1), window=1000, mss=1200)
    assert h.recv_one() == seg(A, l(1), r(1), WIN)
    assert h.state == "ESTABLISHED" and h.sock.writable
    assert h.conn.snd_wnd == 1000 and h.conn.smss == 1200
    assert h.conn.rtt.srtt == 5000          # the SYN was timed


def test_syn_sent_syn_ack_with_data_and_fin():
    h = syn_sent()
    h.send(10, S | A | F, REMOTE_SEQ, l(1), payload=b"abc")
    assert h.recv_one() == seg(A, l(1), r(5), WIN - 4)
    assert h.state == "CLOSE-WAIT" and h.sock.recv(10, 10) == b"abc"
    assert h.sock.recv(10, 10) == b""


def test_syn_sent_rst_ack_refused():
    h = syn_sent()
    h.send(10, R | A, 0, l(1))
    h.recv_nothing()
    assert h.state == "CLOSED"
    with pytest.raises(StackError) as e:
        h.sock.send(b"x", 10)
    assert e.value.errno == errno.ECONNREFUSED


def test_syn_sent_rst_without_ack_ignored():
    h = syn_sent()
    h.send(10, R, 0)
    assert h.state == "SYN-SENT"


def test_syn_sent_unacceptable_ack_reset():
    h = syn_sent()
    h.send(10, S | A, REMOTE_SEQ, l(7))
    assert h.recv_one() == seg(R, l(7), 0, 0)
    assert h.state == "SYN-SENT"


def test_syn_sent_plain_ack_dropped():
    h = syn_sent()
    h.send(10, A, REMOTE_SEQ, l(1))
    h.recv_nothing()
    assert h.state == "SYN-SENT"


def test_simultaneous_open():
    h = syn_sent()
    h.send(10, S, REMOTE_SEQ, mss=1460)
    assert h.recv_one() == seg(S | A, LOCAL_SEQ, r(1), WIN, mss=1460)
    assert h.state == "SYN-RECEIVED"
    h.send(20, S | A, REMOTE_SEQ, l(1), mss=1460)   # the peer's SYN-ACK for our SYN
    h.recv_one()                                     # a challenge/ACK: nothing breaks
    h.send(30, A, r(1), l(1))
    assert h.state == "ESTABLISHED"


def test_syn_retransmissions_then_timeout():
    h = syn_sent()
    times = []
    t = 0
    while h.state == "SYN-SENT" and t < 600_000_000:
        t = h.layer.poll_at()
        h.poll(t)
        for s in h.recv():
            assert s.flags == S and s.seq == LOCAL_SEQ
            times.append(t)
    # RFC 6298 5.5: 1, 2, 4, 8, 16, 32 s apart, then the connection is given up.
    assert times == [x * 1_000_000 for x in (1, 3, 7, 15, 31, 63)]
    assert h.state == "CLOSED" and h.sock.take_error() == errno.ETIMEDOUT


# -- ESTABLISHED --------------------------------------------------------------------------

def test_established_receive_data():
    h = established()
    h.send(10, A | P, r(1), l(1), payload=b"abcdef")
    assert h.recv_one() == seg(A, l(1), r(7), WIN - 6)
    assert h.sock.readable
    assert h.sock.recv(100, 20) == b"abcdef"


def test_established_send_and_ack():
    h = established()
    assert h.sock.send(b"hello", 10) == 5
    assert h.recv_one() == seg(A | P, l(1), r(1), WIN, payload=b"hello")
    h.send(50_000, A, r(1), l(6))
    h.recv_nothing()
    assert h.conn.snd_una == l(6) and h.conn.t_rexmt is None
    # RFC 6298 2.3: the SYN-ACK gave R = 1 µs (time 0 to 0), then R' = 49.99 ms
    assert h.conn.rtt.samples == 2 and h.conn.rtt.srtt == 1 + (49_990 - 1) // 8


def test_established_retransmit_with_backoff():
    h = established()
    h.sock.send(b"abcdef", 0)
    h.recv_one()
    h.poll(999_999)
    h.recv_nothing()
    h.poll(1_000_000)
    assert h.recv_one() == seg(A | P, l(1), r(1), WIN, payload=b"abcdef")
    h.poll(2_999_999)
    h.recv_nothing()
    h.poll(3_000_000)
    assert h.recv_one().payload == b"abcdef"
    assert h.conn.retransmits == 2 and h.layer.stats.rexmttimeo == 2
    h.send(3_100_000, A, r(1), l(7))
    assert h.conn.t_rexmt is None


def test_established_data_retries_exhausted():
    h = established(data_retries=2)
    h.sock.send(b"x", 0)
    h.recv_one()
    for _ in range(3):
        h.poll(h.layer.poll_at())
    got = h.recv()
    assert [g.flags for g in got] == [A | P, A | P, R | A]
    assert h.state == "CLOSED" and h.sock.take_error() == errno.ETIMEDOUT


def test_rst_exact_resets():
    h = established()
    h.send(10, R, r(1))
    h.recv_nothing()
    assert h.state == "CLOSED"
    with pytest.raises(StackError) as e:
        h.sock.recv(1, 10)
    assert e.value.errno == errno.ECONNRESET


def test_rst_in_window_gets_challenge_ack():
    h = established()
    h.send(10, R, r(100))
    assert h.recv_one() == seg(A, l(1), r(1), WIN)
    assert h.state == "ESTABLISHED" and h.layer.stats.challenge_ack == 1


def test_rst_out_of_window_ignored():
    h = established()
    h.send(10, R, r(1_000_000))
    h.recv_nothing()
    assert h.state == "ESTABLISHED"


def test_syn_in_established_gets_challenge_ack():
    h = established()
    h.send(10, S, r(5))
    assert h.recv_one() == seg(A, l(1), r(1), WIN)
    assert h.state == "ESTABLISHED"


def test_ack_beyond_snd_max_gets_challenge_ack():
    h = established()
    h.send(10, A, r(1), l(1000))
    assert h.recv_one() == seg(A, l(1), r(1), WIN)
    assert h.layer.stats.rcvacktoomuch == 1


def test_old_ack_outside_max_window_challenged():
    h = established()
    h.send(10, A, r(1), l(1) - 200_000)
    assert h.recv_one() == seg(A, l(1), r(1), WIN)


def test_challenge_ack_rate_limit():
    h = established()
    for _ in range(1005):
        h.send(10, S, r(5))
    assert len(h.recv()) == 1000
    assert h.layer.stats.challenge_ack_limited == 5


def test_out_of_window_data_acked_and_dropped():
    h = established()
    h.send(10, A, r(1 + 40000), l(1), payload=b"zz")
    assert h.recv_one() == seg(A, l(1), r(1), WIN)
    assert not h.sock.readable


def test_duplicate_data_acked():
    h = established()
    h.send(10, A, r(1), l(1), payload=b"abc")
    h.recv_one()
    h.send(20, A, r(1), l(1), payload=b"abc")
    assert h.recv_one() == seg(A, l(1), r(4), WIN - 3)
    assert h.layer.stats.rcvduppack == 1
    h.send(30, A, r(2), l(1), payload=b"bcde")   # partial duplicate
    assert h.recv_one() == seg(A, l(1), r(6), WIN - 5)
    assert h.sock.recv(10, 40) == b"abcde"


# -- closing ------------------------------------------------------------------------------

def test_active_close_through_time_wait():
    h = established()
    h.sock.close(10)
    assert h.recv_one() == seg(F | A, l(1), r(1), WIN)
    c = h.layer.connections[(LOCAL_IP, LOCAL_PORT, REMOTE_IP, REMOTE_PORT)]
    assert c.state == State.FIN_WAIT_1
    h.send(20, A, r(1), l(2))
    assert c.state == State.FIN_WAIT_2
    h.send(30, F | A, r(1), l(2))
    assert h.recv_one() == seg(A, l(2), r(2), WIN - 1)   # the FIN took one sequence number
    assert c.state == State.TIME_WAIT
    h.poll(30 + 60_000_000 - 1)
    assert c.state == State.TIME_WAIT
    h.poll(30 + 60_000_000)
    assert c.state == State.CLOSED and not h.layer.connections


def test_fin_wait_1_fin_ack_goes_to_time_wait():
    h = fin_wait_1()
    h.send(10, F | A, r(1), l(2))
    assert h.recv_one() == seg(A, l(2), r(2), WIN - 1)
    assert h.conn.state == State.TIME_WAIT


def test_simultaneous_close_via_closing():
    h = closing()
    assert h.conn.state == State.CLOSING
    h.send(10, A, r(2), l(2))
    h.recv_nothing()
    assert h.conn.state == State.TIME_WAIT


def test_fin_retransmitted_in_fin_wait_1():
    h = fin_wait_1()
    h.poll(1_000_000)
    assert h.recv_one() == seg(F | A, l(1), r(1), WIN)


def test_time_wait_acks_retransmitted_fin_and_restarts_timer():
    h = time_wait()
    h.send(50_000_000, F | A, r(1), l(2))
    assert h.recv_one() == seg(A, l(2), r(2), WIN - 1)
    h.poll(60_000_000)
    assert h.conn.state == State.TIME_WAIT
    h.poll(110_000_000)
    assert h.conn.state == State.CLOSED


def test_time_wait_rst_closes():
    h = time_wait()
    h.send(10, R, r(2))
    assert h.conn.state == State.CLOSED


def test_passive_close_through_last_ack():
    h = close_wait()
    assert h.state == "CLOSE-WAIT" and h.sock.readable
    assert h.sock.recv(10, 10) == b""
    assert h.sock.send(b"late", 10) == 4          # CLOSE-WAIT may still send
    assert h.recv_one() == seg(A | P, l(1), r(2), WIN - 1, payload=b"late")
    h.sock.close(20)
    assert h.recv_one() == seg(F | A, l(5), r(2), WIN - 1)
    h.send(30, A, r(2), l(6))
    assert h.conn.state == State.CLOSED


def test_last_ack_state():
    h = last_ack()
    assert h.state == "LAST-ACK"
    h.poll(1_000_000)
    assert h.recv_one() == seg(F | A, l(1), r(2), WIN - 1)
    h.send(1_000_010, A, r(2), l(2))
    assert h.state == "CLOSED"


def test_half_close_keeps_receiving():
    h = fin_wait_2()
    assert h.state == "FIN-WAIT-2"
    with pytest.raises(StackError) as e:
        h.sock.send(b"x", 10)
    assert e.value.errno == errno.EPIPE
    h.send(10, A, r(1), l(2), payload=b"more data")
    assert h.recv_one() == seg(A, l(2), r(10), WIN - 9)
    assert h.sock.recv(100, 10) == b"more data"
    h.send(20, F | A, r(10), l(2))
    assert h.recv_one().ack == r(11)
    assert h.state == "TIME-WAIT"


def test_close_with_unread_data_sends_rst():
    h = established()
    h.send(10, A, r(1), l(1), payload=b"unread")
    h.recv()
    h.sock.close(20)
    assert h.recv_one() == seg(R | A, l(1), r(7), 0)
    assert not h.layer.connections


def test_data_after_close_resets():
    h = established()
    h.sock.close(10)
    h.recv_one()
    h.send(20, A, r(1), l(2), payload=b"zzz")
    assert h.recv_one().flags == R | A
    assert not h.layer.connections


def test_orphaned_fin_wait_2_times_out():
    h = established()
    h.sock.close(10)
    h.recv_one()
    h.send(20, A, r(1), l(2))
    h.poll(20 + 60_000_000)
    assert not h.layer.connections


def test_shutdown_in_syn_sent_closes():
    h = syn_sent()
    h.sock.shutdown(SHUT_WR, 10)
    assert h.state == "CLOSED"


def test_bind_conflicts_and_reuseaddr():
    h = time_wait()
    s = h.layer.socket()
    with pytest.raises(StackError) as e:
        s.bind(LOCAL_IP, LOCAL_PORT)
    assert e.value.errno == errno.EADDRINUSE
    h.listener.close(0)
    s.setsockopt(1, 2, 1)
    s.bind(LOCAL_IP, LOCAL_PORT)
    s.listen(5)
    t = h.layer.socket()
    t.setsockopt(1, 2, 1)
    with pytest.raises(StackError):
        t.bind(bytes(4), LOCAL_PORT)            # a listener is never shared


def test_ephemeral_ports_are_random_and_distinct():
    h = Harness()
    ports = set()
    for i in range(50):
        s = h.layer.socket()
        s.connect(REMOTE_IP, 80, 0)
        ports.add(s.local[1])
    assert len(ports) == 50 and all(49152 <= p <= 65535 for p in ports)


def test_isn_rfc6528_differs_by_tuple_and_advances_with_time():
    lay = TcpLayer(lambda *a: None, random.Random(5))
    a = lay.isn(LOCAL_IP, 1, REMOTE_IP, 2, 0)
    assert lay.isn(LOCAL_IP, 1, REMOTE_IP, 3, 0) != a
    assert (lay.isn(LOCAL_IP, 1, REMOTE_IP, 2, 4_000) - a) & 0xFFFFFFFF == 1000


# -- every synchronized state: RST and SYN handling -----------------------------------------

SYNCHRONIZED = {
    "ESTABLISHED": (established, 1), "FIN-WAIT-1": (fin_wait_1, 1),
    "FIN-WAIT-2": (fin_wait_2, 1), "CLOSE-WAIT": (close_wait, 2), "CLOSING": (closing, 2),
    "LAST-ACK": (last_ack, 2), "TIME-WAIT": (time_wait, 2),
}


@pytest.mark.parametrize("name", sorted(SYNCHRONIZED))
def test_exact_rst_closes_every_synchronized_state(name):
    factory, rcv = SYNCHRONIZED[name]
    h = factory()
    c = h.conn
    assert str(c.state) == name
    h.send(100, R, r(rcv))
    h.recv_nothing()
    assert c.state == State.CLOSED and not h.layer.connections
    if name in ("ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT"):
        assert h.sock.take_error() == errno.ECONNRESET


@pytest.mark.parametrize("name", sorted(SYNCHRONIZED))
def test_syn_in_every_synchronized_state_is_challenged(name):
    factory, rcv = SYNCHRONIZED[name]
    h = factory()
    c = h.conn
    # (in TIME-WAIT a SYN beyond RCV.NXT would reopen the connection, RFC 6191: use an
    # old one there)
    h.send(100, S, r(rcv + (-10 if name == "TIME-WAIT" else 10)))
    got = h.recv_one()
    assert got.flags == A and got.ack == r(rcv)
    assert str(c.state) == name


@pytest.mark.parametrize("name", sorted(SYNCHRONIZED))
def test_in_window_rst_is_challenged_in_every_synchronized_state(name):
    factory, rcv = SYNCHRONIZED[name]
    h = factory()
    h.send(100, R, r(rcv + 5))
    assert h.recv_one().flags == A
    assert str(h.conn.state) == name


def test_close_in_syn_received_after_simultaneous_open():
    h = syn_sent()
    h.send(10, S, REMOTE_SEQ, mss=1460)
    h.recv_one()
    assert h.state == "SYN-RECEIVED"
    h.sock.shutdown(SHUT_WR, 20)
    assert h.state == "FIN-WAIT-1"
    h.send(30, A, r(1), l(2))                   # acknowledges our SYN and FIN at once
    assert h.state == "FIN-WAIT-2"


def test_listener_close_resets_pending_connections():
    h = syn_received()
    h.send(0, S, REMOTE_SEQ, mss=1460, port=REMOTE_PORT + 1)
    h.send(0, A, r(1), l(1), port=REMOTE_PORT + 1)      # one queued for accept
    h.recv()
    assert len(h.listener.accept_queue) == 1 and h.listener.embryonic == 1
    h.listener.close(10)
    got = h.recv()
    assert sorted(g.flags for g in got) == [R | A, R | A]
    assert not h.layer.connections and not h.layer.listeners
    h.send(20, S, REMOTE_SEQ, port=REMOTE_PORT + 2)      # the port is closed now
    assert h.recv_one().flags == R | A
