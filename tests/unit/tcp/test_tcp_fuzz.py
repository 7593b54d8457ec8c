"""Whatever arrives, the layer neither raises nor breaks its invariants (aesthetics 13f)."""

from hypothesis import HealthCheck, given, settings, strategies as st

from iopkt_fs.stack.tcp import State
from iopkt_fs.stack.tcp.seq import seq_le
from iopkt_fs.stack.wire.tcp import TcpRepr

import tcp_harness as th

FACTORIES = [th.listen, th.syn_received, th.established, th.syn_sent, th.fin_wait_1,
             th.fin_wait_2, th.close_wait, th.last_ack, th.closing, th.time_wait]

near = st.integers(-70_000, 70_000)


@st.composite
def segments(draw):
    return dict(
        flags=draw(st.integers(0, 0xFF)),
        dseq=draw(near), dack=draw(near),
        window=draw(st.integers(0, 0xFFFF)),
        payload=draw(st.binary(max_size=3000)),
        opts=draw(st.fixed_dictionaries({}, optional={
            "mss": st.integers(0, 0xFFFF), "wscale": st.integers(0, 14),
            "sack_permitted": st.booleans(),
            "timestamp": st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
            "sack_blocks": st.lists(st.tuples(st.integers(0, 2**32 - 1),
                                              st.integers(0, 2**32 - 1)), max_size=3).map(tuple),
        })),
        dt=draw(st.integers(0, 3_000_000)),
        call=draw(st.sampled_from([None, "send", "recv", "shutdown", "close", "poll"])),
    )


def _check(h):
    for c in list(h.layer.connections.values()):
        assert seq_le(c.snd_una, c.snd_nxt) and seq_le(c.snd_nxt, c.snd_max), c
        assert len(c.rcv_buf) <= c.rcv_buf.capacity and len(c.snd_buf) <= c.snd_buf.capacity
        assert c.ooo.buffered() <= c.rcv_buf.free
        if c.state != State.CLOSED:
            assert c.snd_max == c.snd_una or c.t_rexmt is not None or c.t_persist is not None \
                or c.state == State.TIME_WAIT, (c, c.t_rexmt, c.t_persist)


@given(st.sampled_from(FACTORIES), st.lists(segments(), max_size=12), st.booleans())
@settings(max_examples=int(__import__("os").environ.get("TCP_FUZZ_EXAMPLES", 300)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_segments_never_raise(factory, segs, options):
    cfg = dict(timestamps=True, sack=True, win_scale=True, delack=True) if options else {}
    h = factory(**cfg)
    t = 0
    for s in segs:
        t += s["dt"]
        base_seq = th.REMOTE_SEQ
        c = h.sock.conn if h.sock is not None and h.sock.conn is not None else None
        if c is not None and c.state != State.SYN_SENT:
            base_seq = c.rcv_nxt
        base_ack = c.snd_una if c is not None else th.LOCAL_SEQ
        r = TcpRepr(th.REMOTE_PORT, th.LOCAL_PORT, (base_seq + s["dseq"]) & 0xFFFFFFFF,
                    (base_ack + s["dack"]) & 0xFFFFFFFF, s["flags"], s["window"],
                    payload=s["payload"], **s["opts"])
        h.layer.input(th.REMOTE_IP, th.LOCAL_IP, memoryview(r.to_bytes(th.REMOTE_IP, th.LOCAL_IP)), t)
        sock = h.sock
        try:
            if s["call"] == "send" and sock is not None:
                sock.send(b"d" * 2000, t)
            elif s["call"] == "recv" and sock is not None:
                sock.recv(5000, t)
            elif s["call"] == "shutdown" and sock is not None:
                sock.shutdown(1, t)
            elif s["call"] == "close" and sock is not None:
                sock.close(t)
            elif s["call"] == "poll":
                nxt = h.layer.poll_at()
                if nxt is not None:
                    t = max(t, nxt)
                    h.poll(t)
        except Exception as e:  # only StackError is allowed out of a socket call
            from iopkt_fs.stack.errors import StackError
            assert isinstance(e, StackError), repr(e)
        h.recv()
        _check(h)
