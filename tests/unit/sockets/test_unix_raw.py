"""The core's Unix-domain and raw ICMP sockets (no files, no trio)."""

import errno
import struct

import pytest

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.wire.checksum import verify


def test_unix_stream_pair_flow_control_and_eof():
    s = Stack(StackConfig(seed=1))
    server = s.unix.socket("stream")
    server.announce("svc")
    client = s.unix.socket("stream")
    client.connect("svc")
    assert server.readable
    conn = server.accept()
    with pytest.raises(StackError) as e:
        server.accept()
    assert e.value.errno == errno.EWOULDBLOCK
    client.sndbuf = 10
    assert client.send(b"0123456789abc") == 10        # only what fits
    assert not client.writable
    with pytest.raises(StackError) as e:
        client.send(b"x")
    assert e.value.errno == errno.EWOULDBLOCK
    assert conn.recv(4) == b"0123" and conn.recv(100) == b"456789"
    assert client.writable
    client.shutdown_write()
    assert conn.recv(10) == b""                       # end of stream
    conn.send(b"back")
    assert client.recv(10) == b"back"
    conn.close()
    assert client.recv(10) == b""
    with pytest.raises(StackError) as e:
        client.send(b"late")
    assert e.value.errno == errno.EPIPE
    events = s.take_socket_events()
    assert server in events and client in events


def test_unix_names_and_errors():
    s = Stack(StackConfig(seed=1))
    a = s.unix.socket("stream")
    a.announce("x")
    b = s.unix.socket("stream")
    with pytest.raises(StackError) as e:
        b.announce("x")
    assert e.value.errno == errno.EADDRINUSE
    for bad in ("", "has space", "n" * 200):
        with pytest.raises(StackError) as e:
            s.unix.socket("stream").announce(bad)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(StackError) as e:
        b.connect("nobody")
    assert e.value.errno == errno.ECONNREFUSED
    d = s.unix.socket("dgram")
    d.announce("dg")
    with pytest.raises(StackError) as e:
        b.connect("dg")
    assert e.value.errno == errno.EPROTOTYPE
    a.close()
    c = s.unix.socket("stream")
    c.announce("x")          # the name is free again once its owner closed


def test_unix_datagrams_keep_boundaries_and_senders():
    s = Stack(StackConfig(seed=1))
    inbox = s.unix.socket("dgram")
    inbox.announce("inbox")
    tx = s.unix.socket("dgram")
    tx.announce("me")
    tx.connect("inbox")
    tx.send(b"one")
    tx.send(b"two", to="inbox")
    assert inbox.recvfrom(100) == (b"one", "me")
    assert inbox.recvfrom(2) == (b"tw", "me")        # a short read truncates the datagram
    with pytest.raises(StackError):
        inbox.recvfrom(100)


def test_raw_icmp_socket_pings_loopback():
    s = Stack(StackConfig(seed=1))
    raw = s.inet.raw.socket()
    raw.connect(bytes((127, 0, 0, 1)))
    raw.send(struct.pack("!BBHHH", 8, 0, 0, 0x1234, 7) + b"payload", now=0)
    for _ in range(3):
        s.poll(0)
    msgs = []
    while raw.readable:
        msgs.append(raw.recv())
    kinds = sorted(m[0][0] for m in msgs)
    assert kinds == [0, 8]        # our request (looped back) and the stack's echo reply
    reply = next(m for m in msgs if m[0][0] == 0)[0]
    assert verify(reply) and reply[4:8] == struct.pack("!HH", 0x1234, 7) and reply[8:] == b"payload"
    with pytest.raises(StackError) as e:
        s.inet.raw.socket().send(b"\x08\x00\x00\x00\x00\x00\x00\x00", now=0)
    assert e.value.errno == errno.EDESTADDRREQ
    with pytest.raises(StackError) as e:
        raw.send(b"short", now=0)
    assert e.value.errno == errno.EINVAL
