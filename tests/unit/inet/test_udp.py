"""UDP sockets: bind/connect rules, send/receive with addresses, broadcast, SO_REUSEPORT
with and without reuseport_unicast, receive buffer limit, ICMP errors, readiness."""

import errno

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.wire.ethernet import BROADCAST
from iopkt_fs.stack.wire.udp import UdpRepr

from inet_helpers import OUR_IP, PEER_IP, host, ip, learn_peer, parse_ip, sent, udp_frame


@pytest.fixture
def h():
    stack, en0 = host()
    learn_peer(stack, en0)
    return stack, en0


def err(fn, *a, **kw) -> int:
    with pytest.raises(StackError) as e:
        fn(*a, **kw)
    return e.value.errno


def test_bind_rules(h):
    stack, _ = h
    udp = stack.inet.udp
    a = udp.socket()
    assert a.bind(None, 5000) == ("0.0.0.0", 5000)
    assert err(a.bind, None, 5001) == errno.EINVAL                     # already bound
    assert err(udp.socket().bind, None, 5000) == errno.EADDRINUSE
    assert err(udp.socket().bind, OUR_IP, 5000) == errno.EADDRINUSE     # overlaps the wildcard
    s = udp.socket()
    s.setsockopt("SO_REUSEADDR", 1)
    assert s.bind(OUR_IP, 5000) == (OUR_IP, 5000)                      # specific beside wildcard
    assert err(udp.socket().bind, "10.9.9.9", 6000) == errno.EADDRNOTAVAIL
    assert err(udp.socket().bind, None, 80, privileged=False) == errno.EACCES
    a.close()
    # The specific binding is still there: a wildcard needs SO_REUSEADDR beside it.
    assert err(udp.socket().bind, None, 5000) == errno.EADDRINUSE
    w = udp.socket()
    w.setsockopt("SO_REUSEADDR", 1)
    assert w.bind(None, 5000) == ("0.0.0.0", 5000)


def test_ephemeral_ports_come_from_the_seeded_rng():
    ports = []
    for _ in range(2):
        stack, _ = host(seed=42)
        ports.append([stack.inet.udp.socket().bind()[1] for _ in range(3)])
    assert ports[0] == ports[1]
    assert all(49152 <= p <= 65535 for p in ports[0]) and len(set(ports[0])) == 3


def test_sendto_and_recvfrom_with_addresses(h):
    stack, en0 = h
    s = stack.inet.udp.socket()
    s.bind(None, 7000)
    assert s.sendto(b"hello", PEER_IP, 9, 0) == 5
    (f,) = sent(en0)
    r, payload = parse_ip(f)
    u = UdpRepr.parse(payload, r.src, r.dst)
    assert (r.src, r.dst, u.src_port, u.dst_port, u.payload) == (ip(OUR_IP), ip(PEER_IP), 7000, 9, b"hello")
    assert err(s.recvfrom) == errno.EWOULDBLOCK
    stack.input(en0, [udp_frame(9, 7000, b"back")], 0)
    assert s.readable and stack.take_socket_events() == [s]
    assert s.recvfrom() == (b"back", (PEER_IP, 9))
    assert not s.readable


def test_connect_filters_and_fixes_the_source(h):
    stack, en0 = h
    s = stack.inet.udp.socket()
    s.connect(PEER_IP, 53)
    assert s.local[0] == OUR_IP and s.lport >= 49152 and s.remote == (PEER_IP, 53)
    assert err(s.sendto, b"x", PEER_IP, 53, 0) == errno.EISCONN
    stack.input(en0, [udp_frame(54, s.lport, b"wrong port")], 0)
    stack.input(en0, [udp_frame(53, s.lport, b"right")], 0)
    assert s.recvfrom() == (b"right", (PEER_IP, 53))
    assert err(s.recvfrom) == errno.EWOULDBLOCK
    assert err(stack.inet.udp.socket().send, b"x", 0) == errno.EDESTADDRREQ
    assert err(stack.inet.udp.socket().connect, PEER_IP, 0) == errno.EADDRNOTAVAIL
    assert err(stack.inet.udp.socket().connect, "8.8.8.8", 53) == errno.EHOSTUNREACH
    s.connect(None)
    assert s.remote is None


def test_port_unreachable_reaches_the_connected_socket(h):
    stack, en0 = h
    s = stack.inet.udp.socket()
    s.connect(PEER_IP, 5555)
    s.send(b"?", 0)
    (f,) = sent(en0)
    _, payload = parse_ip(f)
    # The peer answers with port unreachable quoting our datagram.
    from iopkt_fs.stack.wire.icmp import IcmpDstUnreachable
    from inet_helpers import ether, ipv4
    quote = f[14:14 + 28]
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 1, IcmpDstUnreachable(3, quote).to_bytes()))], 1)
    assert s.readable and s in stack.take_socket_events()
    assert err(s.send, b"again", 2) == errno.ECONNREFUSED
    s.send(b"again", 3)                                   # reported once
    # Unconnected sockets are not told.
    t = stack.inet.udp.socket()
    t.sendto(b"?", PEER_IP, 5556, 4)
    (f,) = sent(en0)[-1:]
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 1, IcmpDstUnreachable(3, f[14:42]).to_bytes()))], 5)
    t.sendto(b"?", PEER_IP, 5556, 6)


def test_receive_buffer_is_bounded(h):
    stack, en0 = h
    s = stack.inet.udp.socket()
    s.bind(None, 7000)
    s.setsockopt("SO_RCVBUF", 1000)
    stack.input(en0, [udp_frame(1, 7000, b"x" * 400) for _ in range(4)], 0)
    assert len(s.rxq) == 2 and stack.inet.udp.stats.fullsock == 2
    assert stack.sysctl.get("net.inet.udp.recvspace") == stack.inet.udp.socket().getsockopt("SO_RCVBUF")


def test_broadcast_needs_so_broadcast(h):
    stack, en0 = h
    s = stack.inet.udp.socket()
    assert err(s.sendto, b"x", "255.255.255.255", 67, 0) == errno.EACCES
    assert err(s.sendto, b"x", "10.0.0.255", 67, 0) == errno.EACCES
    s.setsockopt("SO_BROADCAST", 1)
    s.sendto(b"x", "255.255.255.255", 67, 0)
    s.sendto(b"y", "10.0.0.255", 67, 0)
    frames = sent(en0)
    assert [f[:6] for f in frames] == [BROADCAST, BROADCAST]
    assert parse_ip(frames[0])[0].src == ip(OUR_IP)


def test_broadcast_received_by_every_reusing_socket(h):
    stack, en0 = h
    udp = stack.inet.udp
    socks = []
    for _ in range(3):
        s = udp.socket()
        s.setsockopt("SO_REUSEPORT", 1)
        s.bind(None, 9000)
        socks.append(s)
    stack.input(en0, [udp_frame(1, 9000, b"all", dst="10.0.0.255", link_dst=BROADCAST)], 0)
    stack.input(en0, [udp_frame(1, 9000, b"all2", dst="255.255.255.255", link_dst=BROADCAST)], 0)
    assert [len(s.rxq) for s in socks] == [2, 2, 2]
    # Unicast: one socket only (the last bound, as in BSD) when reuseport_unicast is off.
    stack.input(en0, [udp_frame(1, 9000, b"one")], 0)
    assert [len(s.rxq) for s in socks] == [2, 2, 3]
    # Nobody on a broadcast port: counted, and no ICMP.
    stack.input(en0, [udp_frame(1, 9001, b"x", dst="10.0.0.255", link_dst=BROADCAST)], 0)
    assert udp.stats.noportbcast == 1 and sent(en0) == []


def test_reuseport_unicast_delivers_unicast_to_all():
    stack, en0 = host(reuseport_unicast=True)
    udp = stack.inet.udp
    socks = []
    for _ in range(3):
        s = udp.socket()
        s.setsockopt("SO_REUSEPORT", 1)
        s.bind(None, 9000)
        socks.append(s)
    stack.input(en0, [udp_frame(1, 9000, b"u")], 0)
    assert [len(s.rxq) for s in socks] == [1, 1, 1]


def test_reuseport_needs_both_sockets():
    stack, _ = host()
    udp = stack.inet.udp
    a = udp.socket()
    a.bind(None, 9000)
    b = udp.socket()
    b.setsockopt("SO_REUSEPORT", 1)
    assert err(b.bind, None, 9000) == errno.EADDRINUSE


def test_more_specific_binding_wins(h):
    stack, en0 = h
    udp = stack.inet.udp
    wild = udp.socket()
    wild.bind(None, 9000)
    spec = udp.socket()
    spec.setsockopt("SO_REUSEADDR", 1)
    spec.bind(OUR_IP, 9000)
    conn = udp.socket()
    conn.setsockopt("SO_REUSEADDR", 1)
    conn.bind(OUR_IP, 9001)
    stack.input(en0, [udp_frame(1, 9000, b"a")], 0)
    assert len(spec.rxq) == 1 and not wild.rxq


def test_loopback_udp(h):
    stack, en0 = h
    a = stack.inet.udp.socket()
    a.bind("127.0.0.1", 7)
    b = stack.inet.udp.socket()
    b.sendto(b"local", "127.0.0.1", 7, 0)
    stack.poll(0)
    data, (addr, port) = a.recvfrom()
    assert data == b"local" and addr == "127.0.0.1" and port == b.lport
    assert sent(en0) == []


def test_setsockopt_errors_and_close(h):
    stack, _ = h
    s = stack.inet.udp.socket()
    assert err(s.setsockopt, "SO_BOGUS", 1) == errno.ENOPROTOOPT
    assert err(s.setsockopt, "IP_TTL", 0) == errno.EINVAL
    s.setsockopt("IP_TTL", 5)
    s.bind(None, 4444)
    s.close()
    assert err(s.send, b"x", 0) == errno.EBADF
    stack.inet.udp.socket().bind(None, 4444)         # the port is free again


def test_udp_input_drops_are_counted(h):
    stack, en0 = h
    s = stack.inet.udp.socket()
    s.bind(None, 7000)
    good = udp_frame(1, 7000, b"payload")
    bad_sum = bytearray(good)
    bad_sum[14 + 20 + 6] ^= 0xFF
    stack.input(en0, [bytes(bad_sum)], 0)
    from inet_helpers import ether, ipv4
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 17, b"\x00\x01\x1b"))], 0)
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 17, b"\x00\x01\x1b\x58\x00\x40\x00\x00"))], 0)
    st = stack.inet.udp.stats
    assert (st.badsum, st.hdrops, st.badlen) == (1, 1, 1) and not s.rxq


def test_limited_broadcast_leaves_by_the_bound_address_interface(h):
    stack, en0 = h
    from inet_helpers import add_second
    en1 = add_second(stack)
    s = stack.inet.udp.socket()
    s.setsockopt("SO_BROADCAST", 1)
    s.bind("10.1.0.1", 68)
    s.sendto(b"discover", "255.255.255.255", 67, 0)
    assert sent(en0) == []
    (f,) = sent(en1)
    assert f[:6] == BROADCAST and parse_ip(f)[0].src == ip("10.1.0.1")


def test_readiness_events_name_each_socket_once_per_change(h):
    stack, en0 = h
    udp = stack.inet.udp
    a, b = udp.socket(), udp.socket()
    a.bind(None, 1001)
    b.bind(None, 1002)
    assert stack.take_socket_events() == []
    stack.input(en0, [udp_frame(1, 1001, b"1"), udp_frame(1, 1001, b"2"), udp_frame(1, 1002, b"3")], 0)
    assert stack.take_socket_events() == [a, b]
    assert stack.take_socket_events() == []
    # Already readable: more data is no news; drained and refilled is.
    stack.input(en0, [udp_frame(1, 1001, b"4")], 0)
    assert stack.take_socket_events() == []
    while a.rxq:
        a.recvfrom()
    stack.input(en0, [udp_frame(1, 1001, b"5")], 0)
    assert stack.take_socket_events() == [a]


def test_our_own_broadcasts_reach_our_sockets(h):
    stack, en0 = h
    listener = stack.inet.udp.socket()
    listener.bind(None, 520)
    tx = stack.inet.udp.socket()
    tx.setsockopt("SO_BROADCAST", 1)
    tx.sendto(b"directed", "10.0.0.255", 520, 0)
    tx.sendto(b"limited", "255.255.255.255", 520, 0)
    assert len(sent(en0)) == 2
    stack.poll(0)
    assert [listener.recvfrom()[0] for _ in range(2)] == [b"directed", b"limited"]
    # ... and a broadcast to a closed port draws no ICMP from ourselves either.
    tx.sendto(b"closed", "10.0.0.255", 521, 0)
    stack.poll(0)
    stack.poll(0)
    assert stack.inet.icmp.stats.error == 0 and stack.inet.udp.stats.noportbcast == 1
