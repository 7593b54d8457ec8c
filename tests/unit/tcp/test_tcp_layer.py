"""Layer-level behaviour: TIME-WAIT reuse, ICMP errors, sysctl wiring, IPv6, memory."""

import errno
import random
import struct
import tracemalloc

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.tcp import State, TcpLayer
from iopkt_fs.stack.tcp.congestion import Cubic, NewReno

from tcp_harness import (
    A, F, LOCAL_IP, LOCAL_PORT, LOCAL_SEQ, R, REMOTE_IP, REMOTE_PORT, S, established, l, r,
    syn_sent, time_wait,
)


def _quote(sport, dport, seq):
    return struct.pack("!HHI", sport, dport, seq)


def test_time_wait_reused_by_newer_syn():
    h = time_wait()
    old = h.conn
    assert old.state == State.TIME_WAIT
    h.send(100, S, r(100_000), mss=1460)
    synack = h.recv_one()
    assert synack.flags == S | A and synack.ack == r(100_001)
    assert old.state == State.CLOSED and h.layer.stats.tw_reused == 1


def test_time_wait_old_syn_gets_ack_only():
    h = time_wait()
    h.send(100, S, r(0))
    assert h.recv_one().flags == A
    assert h.conn.state == State.TIME_WAIT


def test_icmp_frag_needed_shrinks_mss_and_resends():
    h = established()
    h.sock.send(b"x" * 2000, 10)
    first = h.recv()
    assert len(first[0].payload) == 1460
    h.layer.icmp_error(LOCAL_IP, REMOTE_IP, _quote(LOCAL_PORT, REMOTE_PORT, l(1)),
                       "frag_needed", 1000, 20)
    got = h.recv()
    assert got[0].seq == l(1) and len(got[0].payload) == 960
    assert h.conn.smss == 960


def test_icmp_outside_window_ignored():
    h = established()
    h.sock.send(b"x", 10)
    h.recv()
    h.layer.icmp_error(LOCAL_IP, REMOTE_IP, _quote(LOCAL_PORT, REMOTE_PORT, l(5000)),
                       "frag_needed", 600, 20)
    assert h.conn.smss == 1460 and h.layer.stats.icmp_ignored == 1


def test_icmp_port_unreachable_refuses_connect():
    h = syn_sent()
    h.layer.icmp_error(LOCAL_IP, REMOTE_IP, _quote(LOCAL_PORT, REMOTE_PORT, LOCAL_SEQ),
                       "refused", None, 20)
    assert h.state == "CLOSED" and h.sock.take_error() == errno.ECONNREFUSED


def test_icmp_soft_error_reported_on_timeout():
    h = established(data_retries=1)
    h.sock.send(b"x", 0)
    h.recv()
    h.layer.icmp_error(LOCAL_IP, REMOTE_IP, _quote(LOCAL_PORT, REMOTE_PORT, l(1)),
                       "unreachable", None, 10)
    assert h.state == "ESTABLISHED"
    h.poll(h.layer.poll_at())
    h.poll(h.layer.poll_at())
    assert h.state == "CLOSED" and h.sock.take_error() == errno.EHOSTUNREACH


def test_config_from_stack_sysctl():
    stack = Stack(StackConfig(seed=3))
    layer = TcpLayer(lambda *a: None, stack.rng, sysctl=stack.sysctl,
                     source_address=lambda d: LOCAL_IP)
    s = layer.socket()
    assert s.sndbuf == 32768 and s.rcvbuf == 32768
    s.connect(REMOTE_IP, 80, 0)
    assert isinstance(s.conn.cc, NewReno) and not isinstance(s.conn.cc, Cubic)
    stack.sysctl.set("net.inet.tcp.congctl.selected", "cubic")
    stack.sysctl.set("net.inet.tcp.msl", "5")
    stack.sysctl.set("net.inet.tcp.sendspace", "65536")
    t = layer.socket()
    assert t.sndbuf == 65536
    t.connect(REMOTE_IP, 80, 0)
    assert isinstance(t.conn.cc, Cubic) and t.conn.config.msl == 5_000_000
    assert isinstance(s.conn.cc, NewReno)     # running connections keep their settings


def test_ipv6_handshake_and_data():
    out = []
    a6 = bytes(15) + b"\x01"
    b6 = bytes(15) + b"\x02"
    la = TcpLayer(lambda s, d, g: out.append((s, d, g)), random.Random(1))
    lb = TcpLayer(lambda s, d, g: out.append((s, d, g)), random.Random(2))
    lst = lb.socket()
    lst.bind(bytes(16), 443)
    lst.listen(4)
    c = la.socket()
    c.bind(a6, 0)
    c.connect(b6, 443, 0)
    for _ in range(6):
        batch, out[:] = list(out), []
        for s, d, g in batch:
            (lb if d == b6 else la).input(s, d, memoryview(g), 10)
    srv = lst.accept()
    assert c.conn.smss == 1500 - 60 - 12
    c.send(b"over v6", 20)
    for s, d, g in out:
        lb.input(s, d, memoryview(g), 30)
    assert srv.recv(100, 30) == b"over v6"


def test_idle_connection_memory_is_small():
    out = []
    la = TcpLayer(lambda s, d, g: out.append((d, g)), random.Random(1))
    lb = TcpLayer(lambda s, d, g: out.append((d, g)), random.Random(2))
    lst = lb.socket()
    lst.bind(REMOTE_IP, 80)
    lst.listen(-1)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    n = 200
    socks = []
    for i in range(n):
        s = la.socket()
        s.bind(LOCAL_IP, 0)
        s.connect(REMOTE_IP, 80, 0)
        socks.append(s)
        while out:
            d, g = out.pop(0)
            (lb if d == REMOTE_IP else la).input(LOCAL_IP if d == REMOTE_IP else REMOTE_IP,
                                                 d, memoryview(g), 0)
        socks.append(lst.accept())
    per_conn = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    assert all(s.state == "ESTABLISHED" for s in socks)
    # both ends of an idle established connection, no buffers allocated until used
    print(f"memory per idle established connection pair: {per_conn:.0f} bytes")
    assert per_conn < 12_000, per_conn


def test_netstat_s_wording_and_pcblist():
    from iopkt_fs.stack.tcp.stats import render_netstat
    h = established()
    h.sock.send(b"abc", 10)
    text = render_netstat(h.layer.stats)
    assert text.startswith("tcp:\n\t2 packets sent\n\t\t1 data packet (3 bytes)\n")
    assert "\t1 connection accept\n" in text and "\t0 PCB hash misses\n" in text
    assert "\t\t0 discarded because packet too short\n" in text
    short = render_netstat(h.layer.stats, sflag=2)
    assert "PCB hash" not in short and "\t1 connection accept\n" in short
    rows = h.layer.pcblist()
    assert [r.state for r in rows] == ["LISTEN", "ESTABLISHED"]
    assert rows[1].sendq == 3 and rows[1].remote == (REMOTE_IP, REMOTE_PORT)


def test_timer_heap_does_not_grow_per_ack():
    h = established()
    h.sock.setsockopt(6, 1, 1)
    t = 0
    for i in range(500):
        h.sock.send(b"x" * 10, t)
        h.recv()
        t += 100
        h.send(t, A, r(1), l(1 + 10 * (i + 1) - 5))     # partial ACKs restart REXMT
        h.layer.poll(t)
    assert len(h.layer._heap) < 5
    assert h.layer.poll_at() == h.conn.t_rexmt


def test_readiness_events_follow_the_connection():
    h = syn_sent()
    h.take_events()
    h.send(10, S | A, r(0), l(1), mss=1460)
    assert h.take_events() == {h.sock} and h.sock.writable and not h.sock.readable
    h.recv()
    h.send(20, A, r(1), l(1), payload=b"hi")
    assert h.take_events() == {h.sock} and h.sock.readable
    assert h.sock.recv(10, 20) == b"hi" and not h.sock.readable
    h.send(30, F | A, r(3), l(1))
    assert h.take_events() == {h.sock} and h.sock.readable
    assert h.sock.recv(10, 30) == b""
    seen = []
    h.layer.notify = seen.append
    h.send(40, R, r(4))
    assert seen == [h.sock] and h.sock.readable and h.sock.writable and h.sock.error
