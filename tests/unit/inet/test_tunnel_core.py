"""gre and gif in the core (iface/tunnel.py): what goes on the wire, what input accepts,
the counters for what it refuses, RUNNING, MTU bounds, nesting. Virtual time, no I/O."""

import errno
import ipaddress

import pytest

from iopkt_fs.stack.config import V4, StackConfig
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_RUNNING
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.wire.icmp import IcmpEchoRequest, IcmpRepr
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr

from inet_helpers import OUR_IP, PEER_IP, ether, host, ip, ipv4, learn_peer, parse_ip, sent

INNER_US, INNER_PEER = "10.9.0.1", "10.9.0.2"
GRE_IP = b"\x00\x00\x08\x00"


@pytest.fixture
def tun():
    stack, en0 = host()
    learn_peer(stack, en0)
    return stack, en0


def _make(stack, name, dst=PEER_IP):
    iface = stack.create(name)
    iface.driver.verbs["tunnel"]([OUR_IP, dst])
    stack.add_address(iface, ipaddress.ip_address(INNER_US), dest=ipaddress.ip_address(INNER_PEER))
    return iface


def _echo(seq=1, src=INNER_PEER, dst=INNER_US) -> bytes:
    return ipv4(src, dst, 1, IcmpEchoRequest(7, seq, b"hello").to_bytes())


def _reply_of(frames, proto):
    """The inner ICMP message of the one outer packet of ``proto`` sent."""
    outer = [parse_ip(f) for f in frames]
    outer = [(r, p) for r, p in outer if r.protocol == proto]
    assert len(outer) == 1
    r, payload = outer[0]
    return r, payload


def test_gre_echo_goes_back_in_gre_with_ttl_30_and_a_bare_header(tun):
    stack, en0 = tun
    gre0 = _make(stack, "gre0")
    assert gre0.flags & IFF_RUNNING
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 47, GRE_IP + _echo()))], 1000)
    r, payload = _reply_of(sent(en0), 47)
    assert (r.src, r.dst, r.ttl, r.dont_frag) == (ip(OUR_IP), ip(PEER_IP), 30, False)
    assert payload[:4] == GRE_IP
    inner = Ipv4Repr.parse(Ipv4Packet.new_checked(payload[4:]))
    assert (inner.src, inner.dst) == (ip(INNER_US), ip(INNER_PEER))
    assert IcmpRepr.parse(payload[4 + 20:]).__class__.__name__ == "IcmpEchoReply"
    assert gre0.stats.ipackets == 1 and gre0.stats.opackets == 1


@pytest.mark.parametrize("flags, extra", [
    (0x8000, b"\x00\x00\x00\x00"),                         # checksum present: not verified
    (0x2000, b"\x00\x00\x04\xd2"),                         # a key: not checked
    (0x3000, b"\x00\x00\x04\xd2\x00\x00\x00\x05"),         # key and sequence number
])
def test_gre_optional_words_are_skipped_unchecked(tun, flags, extra):
    stack, en0 = tun
    _make(stack, "gre0")
    head = flags.to_bytes(2, "big") + b"\x08\x00" + extra
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 47, head + _echo()))], 1000)
    _reply_of(sent(en0), 47)


def test_gre_refusals_are_counted(tun):
    stack, en0 = tun
    gre0 = _make(stack, "gre0")
    layer = stack.tunnels
    bad = [
        b"\x40\x00\x08\x00\x00\x00\x00\x00",    # R: source routing, ignored
        b"\x00\x01\x08\x00",                    # version 1 (PPTP): RFC 2784 2.3.1
        b"\x00\x00\x65\x58",                    # transparent Ethernet: not gre(4)'s
        b"\x00",                                # truncated
    ]
    for head in bad:
        stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 47, head + _echo()))], 1000)
    assert sent(en0) == []
    assert (layer.stats.routing, layer.stats.badhdr, gre0.stats.noproto) == (1, 2, 1)


def test_gre_from_an_unknown_peer_is_protocol_unreachable(tun):
    stack, en0 = tun
    _make(stack, "gre0", dst="10.0.0.9")
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 47, GRE_IP + _echo()))], 1000)
    r, payload = parse_ip(sent(en0)[0])
    assert r.protocol == 1 and payload[:2] == b"\x03\x02"
    assert stack.tunnels.stats.nomatch == 1


def test_gif_carries_ipv4_in_ipv4_and_checks_the_outer_source(tun):
    stack, en0 = tun
    gif0 = _make(stack, "gif0")
    assert gif0.mtu == 1280
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 4, _echo()))], 1000)
    r, payload = _reply_of(sent(en0), 4)
    assert r.ttl == 30 and payload[9] == 1
    # RFC 4213 / gif_validate4: a third address, or a martian, is not the tunnel's peer.
    stack.input(en0, [ether(ipv4("10.0.0.3", OUR_IP, 4, _echo()))], 1000)
    assert stack.tunnels.stats.nomatch == 1
    gif0.driver.verbs["tunnel"]([OUR_IP, "0.1.2.3"])     # 0/8: IPv4 lets it in, gif does not
    stack.input(en0, [ether(ipv4("0.1.2.3", OUR_IP, 4, _echo()))], 1000)
    assert stack.tunnels.stats.martian == 1
    assert [f for f in sent(en0) if f[12:14] == b"\x08\x00" and parse_ip(f)[0].protocol == 4] == []


def test_gif_ingress_filter_unless_link2(tun):
    stack, en0 = tun
    gif0 = _make(stack, "gif0", dst="192.0.2.7")
    # The route back to 192.0.2.7 is the default via en0 only once there is one.
    stack.input(en0, [ether(ipv4("192.0.2.7", OUR_IP, 4, _echo()))], 1000)
    assert stack.tunnels.stats.ingress == 1
    stack.set_flags(gif0, set_bits=0x4000)      # link2: no ingress filter
    stack.input(en0, [ether(ipv4("192.0.2.7", OUR_IP, 4, _echo()))], 1000)
    assert gif0.stats.ipackets == 1 and stack.tunnels.stats.ingress == 1


def test_big_inner_datagrams_are_fragmented_inside_the_tunnel_mtu(tun):
    stack, en0 = tun
    _make(stack, "gif0")
    stack.inet.output(b"x" * 3000, None, ip(INNER_PEER), 17, 0)
    outer = [parse_ip(f) for f in sent(en0)]
    assert len(outer) == 3 and all(r.protocol == 4 for r, _ in outer)
    assert all(20 + len(p) <= 1280 + 20 for _, p in outer)


def test_running_needs_endpoints_and_a_route_around_the_tunnel(tun):
    stack, en0 = tun
    gre0 = stack.create("gre0")
    stack.add_address(gre0, ipaddress.ip_address(INNER_US), dest=ipaddress.ip_address(INNER_PEER))
    assert not gre0.flags & IFF_RUNNING
    gre0.driver.verbs["tunnel"]([OUR_IP, INNER_PEER])   # DST reachable only through gre0
    assert not gre0.flags & IFF_RUNNING
    gre0.driver.verbs["tunnel"]([OUR_IP, PEER_IP])
    assert gre0.flags & IFF_RUNNING
    gre0.driver.verbs["deletetunnel"]([])
    assert not gre0.flags & IFF_RUNNING
    stack.inet.output(b"x", None, ip(INNER_PEER), 17, 0)
    assert gre0.stats.oerrors == 1 and sent(en0) == []


def test_tunnels_in_tunnels_stop_at_the_nesting_limit(tun):
    stack, en0 = tun
    gif0 = _make(stack, "gif0")
    stack.set_flags(gif0, set_bits=0x4000)      # link2: inner tunnel packets arrive on gif0
    packet = _echo()
    for _ in range(10):
        packet = ipv4(PEER_IP, OUR_IP, 4, packet)
    stack.input(en0, [ether(ipv4(PEER_IP, OUR_IP, 4, packet))], 1000)
    assert stack.tunnels.stats.nesting == 1


def test_mtu_bounds_pairs_and_variants(tun):
    stack, _ = tun
    gre0, gif0 = stack.create("gre0"), stack.create("gif0")
    with pytest.raises(StackError) as e:
        stack.set_mtu(gre0, 575)
    assert e.value.errno == errno.EINVAL
    stack.set_mtu(gre0, 576)
    with pytest.raises(StackError):
        stack.set_mtu(gif0, 8193)
    gif0.driver.verbs["tunnel"]([OUR_IP, PEER_IP])
    gif1 = stack.create("gif1")
    with pytest.raises(StackError) as e:
        gif1.driver.verbs["tunnel"]([OUR_IP, PEER_IP])
    assert e.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(StackError) as e:
        gif1.driver.verbs["tunnel"](["::1", PEER_IP])
    assert e.value.errno == errno.EAFNOSUPPORT
    plain = Stack(StackConfig(seed=1, variant=V4))
    with pytest.raises(StackError) as e:
        plain.create("gre0")
    assert e.value.errno == errno.EINVAL
