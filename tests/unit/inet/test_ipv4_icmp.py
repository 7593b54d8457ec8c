"""IPv4 input checks and ICMP: echo, unreachables, time exceeded, RFC 1122 3.2.2 rules,
rate limit, broadcast acceptance, loopback, forwarding on and off."""

import errno

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.wire.ethernet import BROADCAST
from iopkt_fs.stack.wire.icmp import (
    IcmpDstUnreachable, IcmpEchoReply, IcmpEchoRequest, IcmpTimeExceeded,
)
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet

from inet_helpers import (
    OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, echo_frame, ether, host, ip, ipv4, learn_peer,
    parse_icmp, sent, udp_frame,
)


@pytest.fixture
def h():
    stack, en0 = host()
    learn_peer(stack, en0)
    return stack, en0


def test_echo_reply(h):
    stack, en0 = h
    stack.input(en0, [echo_frame(data=b"abcdefgh", ident=0x1234, seq=9)], 0)
    (f,) = sent(en0)
    assert f[:6] == PEER_MAC and f[6:12] == OUR_MAC
    r, icmp = parse_icmp(f)
    assert icmp == IcmpEchoReply(0x1234, 9, b"abcdefgh")
    assert r.src == ip(OUR_IP) and r.dst == ip(PEER_IP) and r.ttl == 64
    st = stack.inet.stats
    assert st.total == 1 and st.delivered == 1 and st.localout == 1
    assert stack.inet.icmp.stats.inhist[8] == 1 and stack.inet.icmp.stats.outhist[0] == 1


def test_unknown_protocol_gets_protocol_unreachable(h):
    stack, en0 = h
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 99, b"12345678"))], 0)
    (f,) = sent(en0)
    _, icmp = parse_icmp(f)
    assert isinstance(icmp, IcmpDstUnreachable) and icmp.code == 2
    assert stack.inet.stats.noproto == 1


def test_closed_udp_port_gets_port_unreachable(h):
    stack, en0 = h
    stack.input(en0, [udp_frame(4000, 5555, b"hello")], 0)
    (f,) = sent(en0)
    _, icmp = parse_icmp(f)
    assert isinstance(icmp, IcmpDstUnreachable) and icmp.code == 3
    quoted = Ipv4Packet.new_quoted(icmp.original)
    assert quoted.src == ip(PEER_IP) and bytes(quoted.payload[:4]) == (4000).to_bytes(2, "big") + (5555).to_bytes(2, "big")
    assert stack.inet.udp.stats.noport == 1


@pytest.mark.parametrize("case", ["link-broadcast", "ip-broadcast", "fragment", "icmp-error", "bad-source"])
def test_no_icmp_errors_about(h, case):
    """RFC 1122 3.2.2: never an error about these."""
    stack, en0 = h
    if case == "link-broadcast":
        frame = udp_frame(1, 5555, b"x", link_dst=BROADCAST)
    elif case == "ip-broadcast":
        frame = udp_frame(1, 5555, b"x", dst="10.0.0.255", link_dst=BROADCAST)
    elif case == "fragment":
        frame = ether(ipv4(PEER_IP, OUR_IP, 99, b"x" * 16, offset=1480, mf=True, ident=5))
    elif case == "icmp-error":
        # Whatever the reason (here: "protocol unreachable"), an error is never answered.
        inner = ipv4(OUR_IP, PEER_IP, 17, b"\x00" * 8)
        stack.inet.icmp.error(ipv4(PEER_IP, OUR_IP, 1, IcmpDstUnreachable(3, inner).to_bytes()), 3, 3, 0)
        assert sent(en0) == []
        assert stack.inet.icmp.stats.oldicmp == 1
        return
    else:
        frame = ether(ipv4("0.0.0.0", OUR_IP, 17, b"\x00\x01\x15\xb3\x00\x08\x00\x00"))
    stack.input(en0, [frame], 0)
    stack.inet.reass.queues.clear()
    stack.inet.reass.nbytes = 0
    stack.poll(31_000_000)
    assert sent(en0) == []


def test_errors_are_rate_limited(h):
    stack, en0 = h
    stack.sysctl.set("net.inet.icmp.errppslimit", 3)
    stack.input(en0, [udp_frame(1, 5555, b"x") for _ in range(10)], 0)
    assert len(sent(en0)) == 3
    assert stack.inet.icmp.stats.ratelim == 7
    stack.input(en0, [udp_frame(1, 5555, b"x")], 1_000_000)
    assert len(sent(en0)) == 1
    # Echo replies are not errors: never limited.
    stack.input(en0, [echo_frame(seq=i) for i in range(10)], 1_000_001)
    assert len(sent(en0)) == 10


def test_broadcast_echo_is_ignored(h):
    stack, en0 = h
    stack.input(en0, [echo_frame(dst="10.0.0.255", ) .replace(OUR_MAC, BROADCAST, 1)], 0)
    assert sent(en0) == []
    assert stack.inet.icmp.stats.bmcastecho == 1


@pytest.mark.parametrize("mutate,counter", [
    (lambda p: p[:19], "toosmall"),
    (lambda p: bytes([0x65]) + p[1:], "badvers"),
    (lambda p: bytes([0x44]) + p[1:], "badhlen"),
    (lambda p: p[:2] + (10).to_bytes(2, "big") + p[4:], "badlen"),
    (lambda p: p[:2] + (900).to_bytes(2, "big") + p[4:], "tooshort"),
    (lambda p: p[:10] + b"\x00\x00" + p[12:], "badsum"),
])
def test_bad_headers_are_counted(h, mutate, counter):
    stack, en0 = h
    packet = ipv4(PEER_IP, OUR_IP, 1, IcmpEchoRequest(1, 1, b"x").to_bytes())
    # Straight into IP: an Ethernet frame would pad a 19-byte packet to 46 bytes.
    stack.inet.process_ipv4(en0, memoryview(mutate(packet)), 0, False)
    assert sent(en0) == []
    assert getattr(stack.inet.stats, counter) == 1
    assert stack.inet.stats.delivered == 0


def test_martian_sources_dropped(h):
    stack, en0 = h
    for src in ("127.0.0.1", "224.0.0.5", "255.255.255.255", "10.0.0.255"):
        stack.input(en0, [echo_frame(src=src)], 0)
    assert sent(en0) == []
    assert stack.inet.stats.badaddr == 4


def test_frames_for_another_mac_are_ignored(h):
    stack, en0 = h
    stack.input(en0, [echo_frame().replace(OUR_MAC, b"\x02\x00\x00\x00\x00\x99", 1)], 0)
    assert sent(en0) == [] and stack.inet.link_stats.notforus == 1


def test_ping_ourselves_goes_through_lo0(h):
    stack, en0 = h
    stack.inet.icmp.send_echo(OUR_IP, 5, 1, b"me", 0)
    stack.inet.icmp.send_echo("127.0.0.1", 5, 2, b"lo", 0)
    stack.poll(0)
    stack.poll(0)
    assert sent(en0) == []
    replies = [(r[1], r[3]) for r in stack.inet.icmp.echo_replies]
    assert replies == [(ip(OUR_IP), 1), (ip("127.0.0.1"), 2)]
    assert stack.lo0.stats.opackets == 4


def test_no_route_is_ehostunreach(h):
    stack, en0 = h
    with pytest.raises(StackError) as e:
        stack.inet.icmp.send_echo("8.8.8.8", 1, 1, b"", 0)
    assert e.value.errno == errno.EHOSTUNREACH and stack.inet.stats.noroute == 1


def test_not_forwarded_when_forwarding_is_off(h):
    stack, en0 = h
    stack.input(en0, [echo_frame(dst="10.9.9.9")], 0)
    assert sent(en0) == [] and stack.inet.stats.cantforward == 1


def test_forwarding_ttl_and_time_exceeded():
    stack, en0 = host(forward=True)
    stack.sysctl.set("net.inet.ip.redirect", 0)      # same link: would also redirect
    learn_peer(stack, en0)
    learn_peer(stack, en0, "10.0.0.3", b"\x02\x00\x00\x00\x00\x03")
    stack.input(en0, [echo_frame(dst="10.0.0.3", ttl=9)], 0)
    (f,) = sent(en0)
    r, icmp = parse_icmp(f)
    assert f[:6] == b"\x02\x00\x00\x00\x00\x03" and r.ttl == 8 and isinstance(icmp, IcmpEchoRequest)
    stack.input(en0, [echo_frame(dst="10.0.0.3", ttl=1)], 0)
    (f,) = sent(en0)
    r, icmp = parse_icmp(f)
    assert isinstance(icmp, IcmpTimeExceeded) and icmp.code == 0 and r.dst == ip(PEER_IP)
    stack.input(en0, [echo_frame(dst="172.16.0.1")], 0)
    (f,) = sent(en0)
    assert parse_icmp(f)[1].code == 1 and stack.inet.stats.noroute == 1


def test_forwarding_df_too_big_sends_frag_needed():
    stack, en0 = host(forward=True)
    learn_peer(stack, en0)
    from inet_helpers import add_second
    en1 = add_second(stack)
    stack.set_mtu(en1, 1000)
    stack.input(en0, [echo_frame(dst="10.1.0.7", data=b"z" * 1200, df=True)], 0)
    (f,) = sent(en0)
    _, icmp = parse_icmp(f)
    assert isinstance(icmp, IcmpDstUnreachable) and icmp.code == 4 and icmp.next_hop_mtu == 1000
    assert stack.inet.stats.cantfrag == 1
    # Without DF it is fragmented (after ARP for the next hop).
    stack.input(en0, [echo_frame(dst="10.1.0.7", data=b"z" * 1200)], 0)
    learn_peer(stack, en1, "10.1.0.7", b"\x02\x00\x00\x00\x00\x07")
    assert len([f for f in sent(en1) if f[12:14] == b"\x08\x00"]) == 2


def test_directed_broadcast_to_another_network_is_not_forwarded():
    stack, en0 = host(forward=True)
    learn_peer(stack, en0)
    from inet_helpers import add_second
    en1 = add_second(stack)
    stack.input(en0, [echo_frame(dst="10.1.0.255")], 0)
    assert sent(en1) == [] and sent(en0) == []
    assert stack.inet.stats.cantforward == 1


def test_redirect_when_the_next_hop_is_on_the_senders_link():
    from iopkt_fs.stack.wire.icmp import IcmpGeneric
    stack, en0 = host(forward=True)
    learn_peer(stack, en0)
    c_mac = b"\x02\x00\x00\x00\x00\x03"
    learn_peer(stack, en0, "10.0.0.3", c_mac)
    stack.inet.route_add("172.16.0.0/16", "10.0.0.3")
    stack.input(en0, [echo_frame(dst="172.16.0.1")], 0)
    forwarded, redirect = sent(en0)
    assert forwarded[:6] == c_mac
    r, icmp = parse_icmp(redirect)
    assert isinstance(icmp, IcmpGeneric) and (icmp.type, icmp.code) == (5, 1)
    assert icmp.rest == int.from_bytes(ip("10.0.0.3"), "big") and r.dst == ip(PEER_IP)
    assert stack.inet.stats.redirectsent == 1
    stack.sysctl.set("net.inet.ip.redirect", 0)
    stack.input(en0, [echo_frame(dst="172.16.0.1")], 0)
    assert len(sent(en0)) == 1


def test_refragmenting_a_fragment_past_65528_is_a_counted_drop():
    stack, en0 = host(forward=True)
    stack.sysctl.set("net.inet.ip.redirect", 0)
    learn_peer(stack, en0)
    from inet_helpers import add_second
    en1 = add_second(stack)
    learn_peer(stack, en1, "10.1.0.7", b"\x02\x00\x00\x00\x00\x07")
    stack.set_mtu(en1, 576)
    frame = ether(ipv4(PEER_IP, "10.1.0.7", 17, b"f" * 1400, offset=65528, mf=False, ident=3))
    stack.input(en0, [frame], 0)
    assert sent(en1) == [] and stack.inet.stats.cantfrag == 1


from hypothesis import given, settings, strategies as hst   # noqa: E402


@settings(max_examples=300, deadline=None)
@given(ident=hst.integers(0, 0xFFFF), seq=hst.integers(0, 0xFFFF), code=hst.integers(0, 255),
       data=hst.binary(max_size=200))
def test_incremental_echo_reply_checksum_is_right(ident, seq, code, data):
    """RFC 1624's incremental update gives what a full recomputation gives."""
    from iopkt_fs.stack.inet.icmp import _echo_to_reply
    from iopkt_fs.stack.wire.checksum import internet_checksum, verify
    from iopkt_fs.stack.wire.icmp import IcmpPacket, IcmpRepr
    req = bytearray(IcmpEchoRequest(ident, seq, data).to_bytes())
    req[1] = code
    req[2:4] = b"\0\0"
    req[2:4] = internet_checksum(bytes(req)).to_bytes(2, "big")
    reply = _echo_to_reply(IcmpPacket(bytes(req)))
    assert verify(reply)
    assert IcmpRepr.parse(reply) == IcmpEchoReply(ident, seq, data)
