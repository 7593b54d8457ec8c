"""The file layer's protocol adapters without FUSE: IPv6 forms of ctl verbs on tcp, udp
and raw, the errno each bad form gets, and a seeded flood of mangled lines that may
only ever raise StackError (nothing a user writes crashes the stack)."""

import errno
import random

import pytest

from iopkt_fs.resmgr import protos
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.socket import opts

from .test_ipv6_layer import OUR, PEER, PEER_LL, S, ready


class Handle:
    uid = 0


class FakeConv:
    """What the adapters read and write of a connection directory."""

    def __init__(self, proto):
        self.sock = proto.new_socket()
        self.headers = self.announced = self.connecting = False
        self.keepalive_ms = None

    def rebind(self, old):
        pass


def conv(stack, kind):
    proto = kind(stack)
    return proto, FakeConv(proto)


def test_ipv6_forms_and_their_errnos():
    stack, en0 = ready()
    udp, c = conv(stack, protos.Udp)
    udp.ctl(c, "connect", [f"[{PEER}]!53"], Handle(), 2 * S)
    assert udp.remote(c) == f"{PEER}!53\n" and udp.local(c).startswith(f"{OUR}!")
    udp2, c2 = conv(stack, protos.Udp)
    udp2.ctl(c2, "connect", [f"{PEER_LL}%en0!53"], Handle(), 2 * S)
    assert udp2.remote(c2) == f"{PEER_LL}%en0!53\n" and c2.sock.scope is en0
    cases = [(f"{PEER}%en0!53", errno.EINVAL), (f"{PEER_LL}%zz9!53", errno.ENXIO), (f"{PEER}!70000", errno.EINVAL),
             ("fd00::zz!53", errno.EINVAL), (f"{PEER}", errno.EINVAL)]
    for text, code in cases:
        _, c3 = conv(stack, protos.Udp)
        with pytest.raises(StackError) as e:
            udp.ctl(c3, "connect", [text], Handle(), 2 * S)
        assert e.value.errno == code, text
    # v6only: a flag, before bind only; the option table maps it to (IPPROTO_IPV6, IPV6_V6ONLY).
    _, c4 = conv(stack, protos.Udp)
    udp.ctl(c4, "v6only", ["0"], Handle(), 2 * S)
    assert c4.sock.getsockopt(opts.IPPROTO_IPV6, opts.IPV6_V6ONLY) == 0
    with pytest.raises(StackError) as e:
        udp.ctl(c4, "v6only", ["yes"], Handle(), 2 * S)
    assert e.value.errno == errno.EINVAL
    tcp, t = conv(stack, protos.Tcp)
    tcp.ctl(t, "v6only", ["0"], Handle(), 2 * S)
    tcp.ctl(t, "announce", ["::!8080"], Handle(), 2 * S)
    assert t.sock.v6only is False and tcp.local(t) == "*!8080\n"
    # A raw connection becomes ICMPv6 with its first IPv6 address, and then stays so.
    raw, r = conv(stack, protos.Raw)
    raw.ctl(r, "connect", [PEER], Handle(), 2 * S)
    assert r.sock.family_width == 16 and raw.local(r) == f"{OUR}!0\n"
    with pytest.raises(StackError) as e:
        raw.ctl(r, "connect", ["10.0.0.1"], Handle(), 2 * S)
    assert e.value.errno == errno.EAFNOSUPPORT


def test_mangled_ctl_lines_only_raise_stack_errors():
    stack, en0 = ready()
    rng = random.Random(6)
    seeds = [f"{PEER}!53", f"{PEER_LL}%en0!53", "::!53", "*!53", "53", f"[{PEER}]!7", "10.0.0.1!9", PEER,
             "::ffff:10.0.0.1!5"]
    alphabet = "0123456789abcdef:%![]*.-/ \x00\xff"
    verbs = ["connect", "announce", "bind", "v6only", "ttl", "headers", "reuseport", "nodelay", "keepalive"]
    for i in range(3000):
        text = rng.choice(seeds)
        for _ in range(rng.randrange(4)):
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(alphabet) + text[at + rng.randrange(2):]
        kind = rng.choice((protos.Udp, protos.Tcp, protos.Raw))
        proto, c = conv(stack, kind)
        args = text.split() if rng.random() < 0.9 else []
        try:
            proto.ctl(c, rng.choice(verbs), args, Handle(), 2 * S)
            if isinstance(proto, protos.Datagram) and i % 3 == 0:
                c.headers = True
                proto.write(c, f"{text}\n".encode() + b"\x80\x00\x00\x00\x00\x00\x00\x00", 2 * S)
        except StackError:
            pass
        finally:
            proto.close(c, 2 * S)
        stack.poll(2 * S)
