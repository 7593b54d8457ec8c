"""TCP over the real IPv4 layer on lo0: protocol switch, loopback, timers through Stack."""

import hashlib
import random

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.tcp.inet import TcpProtosw

LO = bytes([127, 0, 0, 1])


def _run(stack, now, until, limit=10_000):
    for _ in range(limit):
        if until():
            return now
        stack.poll(now)
        nxt = stack.poll_at()
        if nxt is not None and nxt > now:
            now = nxt
    raise AssertionError("did not finish")


def test_transfer_over_loopback_through_ipv4():
    stack = Stack(StackConfig(seed=3))
    tcp = TcpProtosw.install(stack)
    assert stack.inet.protosw[6].layer is tcp and tcp in stack.layers
    lst = tcp.socket()
    lst.bind(LO, 7)
    lst.listen(5)
    cli = tcp.socket()
    cli.connect(LO, 7, 0)
    now = _run(stack, 0, lambda: bool(lst.accept_queue))
    srv = lst.accept()
    assert cli.state == "ESTABLISHED" and cli.local[0] == LO
    assert cli.conn.smss == stack.lo0.mtu - 40 - 12       # MSS from lo0's MTU
    events = stack.take_socket_events()
    assert lst in events and cli in events
    data = random.Random(1).randbytes(1_000_000)
    sent, got = 0, bytearray()

    def step():
        nonlocal sent
        while sent < len(data):
            try:
                sent += cli.send(memoryview(data)[sent:sent + 65536], now)
            except StackError:
                break
        try:
            got.extend(srv.recv(1 << 20, now))
        except StackError:
            pass
        return len(got) == len(data)
    now = _run(stack, now, step)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    cli.close(now)
    srv.close(now)
    now = _run(stack, now, lambda: cli.conn.state.name in ("TIME_WAIT", "CLOSED")
               and srv.conn.state.name == "CLOSED")


def test_closed_port_reset_over_loopback():
    stack = Stack(StackConfig(seed=4))
    tcp = TcpProtosw.install(stack)
    cli = tcp.socket()
    cli.connect(LO, 9, 0)
    _run(stack, 0, lambda: cli.state == "CLOSED")
    assert cli.take_error() == 111        # ECONNREFUSED
    assert tcp.stats.noport == 1


class _Quoted:
    def __init__(self, src, dst, payload):
        self.src, self.dst, self.payload = src, dst, payload


def test_ctlinput_maps_icmp_to_tcp():
    import struct
    stack = Stack(StackConfig(seed=5))
    tcp = TcpProtosw.install(stack)
    glue = stack.inet.protosw[6]
    cli = tcp.socket()
    cli.connect(LO, 9999, 0)           # SYN-SENT; the SYN waits in lo0's queue
    c = cli.conn
    quote = struct.pack("!HHI", c.local_port, 9999, c.iss)
    glue.ctlinput(3, 4, _Quoted(LO, LO, quote), 10)      # fragmentation needed
    assert c.our_mss == 32000 - 40                         # RFC 1191 plateau below lo0's MTU
    glue.ctlinput(3, 3, _Quoted(LO, LO, quote), 20)      # port unreachable
    assert cli.state == "CLOSED" and cli.take_error() == 111
