"""One TCP layer driven by hand: segments in at literal times, every segment out checked.

The smoltcp style (aesthetics.md 4/13a): factories build a connection in each state through
real transitions, ``send(t, ...)`` injects a segment from the remote end, ``recv()`` returns
what the layer emitted as ``TcpRepr`` values.
"""

from __future__ import annotations

import random

from iopkt_fs.stack.tcp import TcpConfig, TcpLayer
from iopkt_fs.stack.wire.tcp import TcpFlags, TcpPacket, TcpRepr

LOCAL_IP = bytes([10, 0, 0, 1])
REMOTE_IP = bytes([10, 0, 0, 2])
LOCAL_PORT = 80
REMOTE_PORT = 49500
LOCAL_SEQ = 10_000
REMOTE_SEQ = 0xFFFF_FF00      # wraps during the tests on purpose

S, A, F, R, P = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH

# Literal-time tests pin the buffers: autosizing has tests of its own.
BASE = dict(timestamps=False, sack=False, win_scale=False, delack=False, msl=30_000_000,
            recvbuf_auto=False, sendbuf_auto=False)


class Harness:
    def __init__(self, **cfg):
        self.out: list[tuple[bytes, bytes, bytes]] = []
        self.notified: set = set()     # what the layer told its readiness queue
        conf = dict(BASE)
        conf.update(cfg)
        self.layer = TcpLayer(lambda s, d, seg: self.out.append((s, d, seg)), random.Random(7),
                              config=TcpConfig(**conf), source_address=lambda dst: LOCAL_IP,
                              notify=self.notified.add)
        self.layer.isn = lambda *a: LOCAL_SEQ
        self.sock = None        # the socket under test
        self.listener = None

    def send(self, t: int, flags, seq: int, ack: int = 0, window: int = 65535,
             payload: bytes = b"", port: int = REMOTE_PORT, **opts) -> None:
        dport = LOCAL_PORT if self.sock is None or self.sock.local is None else self.sock.local[1]
        r = TcpRepr(port, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, TcpFlags(flags), window,
                    payload=payload, **opts)
        self.layer.input(REMOTE_IP, LOCAL_IP, memoryview(r.to_bytes(REMOTE_IP, LOCAL_IP)), t)

    def take_events(self) -> set:
        """Sockets the layer reported through ``notify`` since the last call."""
        got, self.notified = set(self.notified), set()
        self.layer.notify = self.notified.add
        return got

    def recv(self) -> list[TcpRepr]:
        got = []
        for src, dst, seg in self.out:
            assert (src, dst) == (LOCAL_IP, REMOTE_IP)
            pkt = TcpPacket.new_checked(seg)
            got.append(TcpRepr.parse(pkt, src, dst))
        self.out.clear()
        return got

    def recv_one(self) -> TcpRepr:
        got = self.recv()
        assert len(got) == 1, [str(g) for g in got]
        return got[0]

    def recv_nothing(self) -> None:
        got = self.recv()
        assert not got, [str(g) for g in got]

    def poll(self, t: int) -> None:
        self.layer.poll(t)

    @property
    def conn(self):
        return self.sock.conn

    @property
    def state(self) -> str:
        return self.sock.state


def seg(flags, seq, ack, window, payload=b"", **opts) -> TcpRepr:
    """The segment we expect from the local end."""
    return TcpRepr(LOCAL_PORT, REMOTE_PORT, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, TcpFlags(flags),
                   window, payload=payload, **opts)


def r(n: int) -> int:
    return (REMOTE_SEQ + n) & 0xFFFFFFFF


def l(n: int) -> int:
    return (LOCAL_SEQ + n) & 0xFFFFFFFF


# -- factories: each state reached through real transitions -----------------------------

def listen(**cfg) -> Harness:
    h = Harness(**cfg)
    h.listener = h.layer.socket()
    h.listener.bind(LOCAL_IP, LOCAL_PORT)
    h.listener.listen(8)
    return h


def syn_received(**cfg) -> Harness:
    h = listen(**cfg)
    h.send(0, S, REMOTE_SEQ, mss=1460)
    h.recv_one()
    return h


def established(**cfg) -> Harness:
    h = syn_received(**cfg)
    h.send(0, A, r(1), l(1))
    h.sock = h.listener.accept()
    h.recv_nothing()
    return h


def syn_sent(**cfg) -> Harness:
    h = Harness(**cfg)
    h.sock = h.layer.socket()
    h.sock.bind(LOCAL_IP, LOCAL_PORT)
    h.sock.connect(REMOTE_IP, REMOTE_PORT, 0)
    h.recv_one()
    return h


def fin_wait_1(**cfg) -> Harness:
    h = established(**cfg)
    h.sock.shutdown(1, 0)
    assert h.recv_one().flags == F | A
    return h


def fin_wait_2(**cfg) -> Harness:
    h = fin_wait_1(**cfg)
    h.send(0, A, r(1), l(2))
    h.recv_nothing()
    return h


def close_wait(**cfg) -> Harness:
    h = established(**cfg)
    h.send(0, F | A, r(1), l(1))
    if not h.out:
        h.poll(h.conn.t_delack)      # delack: the FIN's ACK waits for its timer
    h.recv_one()
    return h


def last_ack(**cfg) -> Harness:
    h = close_wait(**cfg)
    h.sock.shutdown(1, 0)
    h.recv_one()
    return h


def closing(**cfg) -> Harness:
    h = fin_wait_1(**cfg)
    h.send(0, F | A, r(1), l(1))
    h.recv_one()
    return h


def time_wait(**cfg) -> Harness:
    h = fin_wait_2(**cfg)
    h.send(0, F | A, r(1), l(2))
    h.recv_one()
    return h
