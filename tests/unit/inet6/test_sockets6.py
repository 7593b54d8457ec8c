"""Sockets over IPv6 at literal times: UDP's mandatory checksum both ways, IPV6_V6ONLY
(QNX's default 1, cleared per socket) for UDP and TCP, IPv4-mapped peers, ECONNREFUSED
from an ICMPv6 port unreachable, a link-local peer's zone choosing the link, and raw
ICMPv6 sockets (echo to a peer and over loopback). Frames are built and read with scapy."""

import errno
import ipaddress
import struct

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.socket import opts
from iopkt_fs.stack.wire.checksum import ones_sum, pseudo_header_sum_v6

from .test_ipv6_layer import OUR, OUR_MAC, PEER, PEER_LL, PEER_MAC, S, eth, frames, ready

scapy = pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    ARP, ICMP, ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, IP, IPv6, TCP, UDP, Ether, raw,
)

OUR4, PEER4 = "10.9.0.1", "10.9.0.2"


def b(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def dual_host():
    stack, en0 = ready()
    stack.add_address(en0, ipaddress.ip_address(OUR4), 24)
    stack.inet.arp_add(PEER4, PEER_MAC)
    frames(en0)
    return stack, en0


def udp4(dport, data=b"v4"):
    return Ether(src=PEER_MAC, dst=OUR_MAC) / IP(src=PEER4, dst=OUR4) / UDP(sport=4444, dport=dport) / data


def test_udp6_checksum_zero_is_dropped_even_where_checksums_are_trusted():
    stack, en0 = ready()
    sock = stack.inet.udp.socket()
    sock.bind(b(OUR), 5300)
    udp = stack.inet.udp.stats
    before = udp.badsum
    # lo0 trusts transport checksums (csum_ok), yet an IPv6 UDP checksum of 0 is invalid
    # (RFC 8200 8.1): dropped and counted.
    zero = raw(IPv6(src=OUR, dst=OUR) / UDP(sport=9, dport=5300, chksum=0) / b"zero")
    stack.loop_input(stack.lo0, zero, 2 * S)
    assert not sock.rxq and udp.badsum == before + 1
    good = raw(IPv6(src=OUR, dst=OUR) / UDP(sport=9, dport=5300) / b"good")
    stack.loop_input(stack.lo0, good, 2 * S)
    assert sock.recvfrom() == (b"good", (OUR, 9))


def test_udp6_computed_zero_checksum_is_sent_as_ffff():
    stack, en0 = ready()
    sock = stack.inet.udp.socket()
    sock.bind(b(OUR), 5301)
    # Choose a 2-byte payload that makes the one's-complement sum 0xffff (checksum 0).
    header = struct.pack("!HHHH", 5301, 9, 10, 0)
    s = ones_sum(header, pseudo_header_sum_v6(b(OUR), b(PEER), 17, 10))
    word = (0xFFFF - s) % 0xFFFF
    sock.sendto(word.to_bytes(2, "big"), b(PEER), 9, 2 * S)
    (f,) = frames(en0)
    assert f[UDP].chksum == 0xFFFF
    assert UDP(raw(f[UDP])).chksum == 0xFFFF      # and it verifies (scapy recomputes 0 -> 0xffff)


def test_udp_v6only_default_and_cleared():
    stack, en0 = dual_host()
    assert stack.sysctl.get("net.inet6.ip6.v6only") == 1
    only6 = stack.inet.udp.socket()
    assert only6.getsockopt(opts.IPPROTO_IPV6, opts.IPV6_V6ONLY) == 1
    only6.bind(bytes(16), 5400)
    stack.input(en0, [raw(udp4(5400))], 2 * S)
    assert not only6.rxq and stack.inet.udp.stats.noport == 1
    (unreach,) = frames(en0)
    assert unreach[ICMP].type == 3 and unreach[ICMP].code == 3
    # v6only 0: the :: socket hears IPv4 too, and shows the sender IPv4-mapped.
    dual = stack.inet.udp.socket()
    dual.setsockopt(opts.IPPROTO_IPV6, opts.IPV6_V6ONLY, 0)
    dual.bind(bytes(16), 5401)
    stack.input(en0, [raw(udp4(5401))], 2 * S)
    data, (addr, port, _iface) = dual.recvmsg()
    assert (data, addr, port) == (b"v4", opts.mapped(b(PEER4)), 4444)
    # A reply to the mapped address goes out as IPv4, from our IPv4 address.
    dual.sendto(b"back", opts.mapped(b(PEER4)), 4444, 2 * S)
    (out,) = frames(en0)
    assert out[IP].src == OUR4 and out[IP].dst == PEER4 and out[UDP].load == b"back"
    # The IPv6-only socket refuses a mapped peer; the option cannot change once bound.
    with pytest.raises(StackError) as e:
        only6.sendto(b"x", opts.mapped(b(PEER4)), 1, 2 * S)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(StackError) as e:
        dual.setsockopt(opts.IPPROTO_IPV6, opts.IPV6_V6ONLY, 1)
    assert e.value.errno == errno.EINVAL
    # A dual :: socket takes the IPv4 port as well: an IPv4 wildcard bind there conflicts.
    with pytest.raises(StackError) as e:
        stack.inet.udp.socket().bind(bytes(4), 5401)
    assert e.value.errno == errno.EADDRINUSE
    with pytest.raises(StackError) as e:
        stack.inet.udp.socket().bind(b(OUR4), 5401)
    assert e.value.errno == errno.EADDRINUSE
    stack.inet.udp.socket().bind(b(OUR4), 5400)    # beside a v6-only :: socket it is free


def test_tcp_v6only_listener():
    stack, en0 = dual_host()
    syn = Ether(src=PEER_MAC, dst=OUR_MAC) / IP(src=PEER4, dst=OUR4) / TCP(sport=4000, dport=81, flags="S", seq=9)
    only6 = stack.tcp.socket()
    only6.bind(bytes(16), 81)
    only6.listen(4)
    stack.input(en0, [raw(syn)], 2 * S)
    (rst,) = frames(en0)
    assert rst[TCP].flags & 0x04           # IPv6-only: an IPv4 SYN finds no listener
    only6.close(2 * S)
    dual = stack.tcp.socket()
    dual.setsockopt(opts.IPPROTO_IPV6, opts.IPV6_V6ONLY, 0)
    dual.bind(bytes(16), 81)
    dual.listen(4)
    stack.input(en0, [raw(syn)], 2 * S)
    (synack,) = frames(en0)
    assert synack[TCP].flags == "SA" and synack[IP].src == OUR4


def test_udp6_econnrefused_from_icmpv6_port_unreachable():
    stack, en0 = ready()
    sock = stack.inet.udp.socket()
    sock.connect(b(PEER), 53, 2 * S)
    sock.send(b"query", 2 * S)
    (sent,) = frames(en0)
    error = IPv6(src=PEER, dst=OUR) / ICMPv6DestUnreach(code=4) / sent[IPv6]
    stack.input(en0, [raw(eth(error))], 2 * S)
    assert sock.readable
    with pytest.raises(StackError) as e:
        sock.recv()
    assert e.value.errno == errno.ECONNREFUSED
    sock.send(b"again", 3 * S)                 # reported once, then cleared


def test_link_local_peer_zone_picks_the_link():
    stack, en0 = ready()
    en1 = stack.new_interface("en", 1, kind=IFT_ETHER, mac=bytes.fromhex("020000000011"),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.up(en0)
    stack.up(en1)
    stack.poll(2 * S)
    stack.poll(4 * S)
    frames(en0), frames(en1)
    sock = stack.inet.udp.socket()
    sock.connect(b(PEER_LL), 53, 4 * S, scope=en1)
    sock.send(b"via en1", 4 * S)
    assert not en0.txq and en1.txq             # the zone chose the link (ND goes out on en1)


def test_raw_icmpv6_echo_to_a_peer_and_over_loopback():
    stack, en0 = ready()
    raw6 = stack.inet6.raw.socket()
    raw6.connect(b(PEER))
    raw6.send(struct.pack("!BBHHH", 128, 0, 0, 0x77, 1) + b"ping6", 2 * S)
    (req,) = frames(en0)
    assert req[ICMPv6EchoRequest].id == 0x77 and req[ICMPv6EchoRequest].data == b"ping6"
    assert ICMPv6EchoRequest(raw(req[ICMPv6EchoRequest])).cksum == req[ICMPv6EchoRequest].cksum
    reply = IPv6(src=PEER, dst=OUR, hlim=61) / ICMPv6EchoReply(id=0x77, seq=1, data=b"ping6")
    stack.input(en0, [raw(eth(reply))], 2 * S)
    message, src, hlim, iface = raw6.recv()
    assert (message[0], src, hlim, iface) == (129, b(PEER), 61, en0) and message[8:] == b"ping6"
    # Over lo0: our own request and the stack's reply both reach a socket bound to ::1.
    lo = stack.inet6.raw.socket()
    lo.connect(b("::1"))
    lo.send(struct.pack("!BBHHH", 128, 0, 0, 5, 9) + b"self", 2 * S)
    for _ in range(3):
        stack.poll(2 * S)
    kinds = sorted(m[0][0] for m in (lo.recv(), lo.recv()))
    assert kinds == [128, 129]
    with pytest.raises(StackError) as e:
        stack.inet6.raw.socket().connect(b(OUR4))
    assert e.value.errno == errno.EAFNOSUPPORT


def test_v6only_sysctl_sets_the_default_for_new_sockets():
    stack, en0 = dual_host()
    stack.sysctl.set("net.inet6.ip6.v6only", 0)
    udp, tcp = stack.inet.udp.socket(), stack.tcp.socket()
    assert udp.getsockopt(opts.IPPROTO_IPV6, opts.IPV6_V6ONLY) == 0
    assert tcp.getsockopt(opts.IPPROTO_IPV6, opts.IPV6_V6ONLY) == 0
    udp.bind(bytes(16), 5402)
    stack.input(en0, [raw(udp4(5402))], 2 * S)
    assert udp.recvfrom() == (b"v4", (f"::ffff:{PEER4}", 4444))
