"""Stacks talking over in-memory Ethernet links under a virtual clock (inet_netsim.py)."""

import errno
import ipaddress

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.wire.ethernet import EthernetPacket
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet

from inet_netsim import Net, add_ether, make_stack, pair, triple

MS = 1000


def ip(text):
    return ipaddress.IPv4Address(text).packed


def replies(stack):
    return [(r[1], r[3], len(r[4]), r[5]) for r in stack.inet.icmp.echo_replies]


def test_ping_across_resolves_arp_both_ways():
    net, a, b, ea, eb = pair()
    a.inet.icmp.send_echo("10.0.0.2", 1, 1, b"hello", net.now)
    net.run(duration=10 * MS)
    assert replies(a) == [(ip("10.0.0.2"), 1, 5, 64)]
    # A asked; B learned A from the request (RFC 826: it was aimed at B).
    assert [e["mac"] for e in a.inet.arp_show()] == ["02:00:00:00:00:02"]
    assert [e["mac"] for e in b.inet.arp_show()] == ["02:00:00:00:00:01"]
    assert a.inet.arp.stats.sndrequest == 2      # the announcement and the request
    assert b.inet.arp.stats.sndreply == 1


def test_udp_both_ways():
    net, a, b, ea, eb = pair()
    server = b.inet.udp.socket()
    server.bind(None, 5000)
    client = a.inet.udp.socket()
    client.connect("10.0.0.2", 5000)
    client.send(b"question", net.now)
    net.run(duration=10 * MS)
    data, peer = server.recvfrom()
    assert data == b"question" and peer == ("10.0.0.1", client.lport)
    server.sendto(b"answer", *peer, net.now)
    net.run(duration=10 * MS)
    assert client.recvfrom() == (b"answer", ("10.0.0.2", 5000))
    assert a.inet.udp.stats.opackets == 1 and b.inet.udp.stats.ipackets == 1


def test_udp_to_closed_port_is_refused():
    net, a, b, ea, eb = pair()
    client = a.inet.udp.socket()
    client.connect("10.0.0.2", 5999)
    client.send(b"anyone?", net.now)
    net.run(duration=10 * MS)
    assert b.inet.udp.stats.noport == 1
    with pytest.raises(StackError) as e:
        client.recvfrom()
    assert e.value.errno == errno.ECONNREFUSED


@pytest.mark.parametrize("size", [4000, 1473, 20000])
def test_big_ping_fragments_both_ways(size):
    net, a, b, ea, eb = pair()
    link = net.links[0]
    link.tap = []
    data = bytes(range(256)) * (size // 256 + 1)
    a.inet.icmp.send_echo("10.0.0.2", 1, 1, data[:size], net.now)
    net.run(duration=10 * MS)
    assert replies(a) == [(ip("10.0.0.2"), 1, size, 64)]
    assert a.inet.icmp.echo_replies[0][4] == data[:size]
    ip_frames = [f for _, f in link.tap if f[12:14] == b"\x08\x00"]
    assert all(len(f) <= 1514 for f in ip_frames)
    pieces = -(-(size + 8) // 1480)
    assert len(ip_frames) == 2 * pieces
    for s in (a, b):
        assert s.inet.stats.fragmented == 1 and s.inet.stats.reassembled == 1


def test_lost_fragment_times_out_with_time_exceeded():
    net, a, b, ea, eb = pair()
    a.inet.icmp.send_echo("10.0.0.2", 1, 0, b"warm", net.now)   # resolve ARP first
    net.run(duration=10 * MS)
    seen = []

    def lose_last_fragment(frame):
        pkt = Ipv4Packet.new_checked(EthernetPacket.new_checked(frame).payload) if frame[12:14] == b"\x08\x00" else None
        if pkt is not None and pkt.frag_offset and not pkt.more_frags and not seen:
            seen.append(frame)
            return True
        return False

    net.links[0].drop = lose_last_fragment
    a.inet.icmp.send_echo("10.0.0.2", 1, 1, b"z" * 4000, net.now)
    net.run(duration=40_000 * MS)
    assert seen and b.inet.stats.fragtimeout == 2
    assert a.inet.icmp.stats.inhist[11] == 1          # time exceeded came back
    assert len(replies(a)) == 1


def test_forwarding_through_a_router_decrements_ttl():
    net, a, r, b = triple()
    a.inet.icmp.send_echo("10.2.0.1", 1, 1, b"through", net.now)
    net.run(duration=10 * MS)
    assert replies(a) == [(ip("10.2.0.1"), 1, 7, 63)]          # B's reply lost one hop
    assert r.inet.stats.forward == 2
    route = r.inet.route_get("10.2.0.1")
    assert route.use >= 1
    # More traffic takes the flow cache.
    for seq in range(2, 6):
        a.inet.icmp.send_echo("10.2.0.1", 1, seq, b"fast", net.now)
        net.run(duration=10 * MS)
    assert len(replies(a)) == 5 and all(t == 63 for *_, t in replies(a))
    # The first request waited for ARP, so its flow is made by the second one.
    assert r.inet.stats.forward == 3 and r.inet.stats.fastforward == 7
    assert len(r.inet.flows) == 2
    # A route change empties the cache; the next packet takes the slow path again.
    r.inet.route_add("10.3.0.0/16", "10.2.0.1")
    assert not r.inet.flows


def test_ttl_expiry_in_transit():
    net, a, r, b = triple()
    a.inet.icmp.send_echo("10.2.0.1", 1, 1, b"short-lived", net.now, ttl=1)
    net.run(duration=10 * MS)
    assert replies(a) == []
    assert a.inet.icmp.stats.inhist[11] == 1


def test_not_forwarded_when_forwarding_is_off():
    net, a, r, b = triple(forward=False)
    a.inet.icmp.send_echo("10.2.0.1", 1, 1, b"blocked", net.now)
    net.run(duration=10 * MS)
    assert replies(a) == [] and r.inet.stats.cantforward == 1
    # The sysctl turns it on at run time.
    r.sysctl.set("net.inet.ip.forwarding", 1)
    a.inet.icmp.send_echo("10.2.0.1", 1, 2, b"open", net.now)
    net.run(duration=10 * MS)
    assert [s for _, s, _, _ in replies(a)] == [2]
    r.sysctl.set("net.inet.ip.forwarding", 0)
    a.inet.icmp.send_echo("10.2.0.1", 1, 3, b"closed again", net.now)
    net.run(duration=10 * MS)
    assert [s for _, s, _, _ in replies(a)] == [2]


def test_fastforward_off_uses_the_slow_path():
    net, a, r, b = triple()
    r.sysctl.set("net.inet.ip.fastforwarding", 0)
    for seq in range(3):
        a.inet.icmp.send_echo("10.2.0.1", 1, seq, b"x", net.now)
        net.run(duration=10 * MS)
    assert len(replies(a)) == 3 and r.inet.stats.fastforward == 0 and r.inet.stats.forward == 6


def test_router_fragments_for_a_smaller_mtu():
    net, a, r, b = triple()
    r2 = r.interface("en1")
    r.set_mtu(r2, 1000)
    b.set_mtu(b.interface("en0"), 1000)
    a.inet.icmp.send_echo("10.2.0.1", 1, 1, b"q" * 1400, net.now)
    net.run(duration=10 * MS)
    assert replies(a) == [(ip("10.2.0.1"), 1, 1400, 63)]
    assert r.inet.stats.fragmented == 1 and b.inet.stats.reassembled == 1


def test_udp_through_the_router():
    net, a, r, b = triple()
    srv = b.inet.udp.socket()
    srv.bind(None, 7)
    cli = a.inet.udp.socket()
    cli.sendto(b"x" * 3000, "10.2.0.1", 7, net.now)
    net.run(duration=10 * MS)
    data, peer = srv.recvfrom()
    assert data == b"x" * 3000 and peer[0] == "10.1.0.1"
    srv.sendto(data[:10], *peer, net.now)
    net.run(duration=10 * MS)
    assert cli.recvfrom()[0] == b"x" * 10


def test_second_gateway_takes_over_when_the_first_is_dead():
    net = Net()
    a = net.add(make_stack(1))
    r = net.add(make_stack(2, forward=True))
    b = net.add(make_stack(3))
    ea = add_ether(a, 1, "10.1.0.1/24")
    r1 = add_ether(r, 2, "10.1.0.253/24")
    r2 = add_ether(r, 3, "10.2.0.254/24")
    eb = add_ether(b, 4, "10.2.0.1/24")
    net.link(a, ea, r, r1)
    net.link(r, r2, b, eb)
    b.inet.route_add("default", "10.2.0.254")
    a.inet.route_add("default", "10.1.0.254")     # nobody answers for .254
    a.inet.route_add("default", "10.1.0.253")     # the real router
    a.inet.icmp.send_echo("10.2.0.1", 1, 1, b"first", net.now)
    net.run(duration=6000 * MS)
    assert replies(a) == []                       # held for .254, then host unreachable
    a.inet.icmp.send_echo("10.2.0.1", 1, 2, b"second", net.now)
    net.run(duration=10 * MS)
    assert [s for _, s, _, _ in replies(a)] == [2]
    assert a.inet.route_get("10.2.0.1").gateway == int(ipaddress.IPv4Address("10.1.0.253"))


def test_deterministic_for_a_seed():
    def run():
        net, a, r, b = triple(seed=5)
        s = a.inet.udp.socket()
        s.sendto(b"d", "10.2.0.1", 9, net.now)
        a.inet.icmp.send_echo("10.2.0.1", 1, 1, b"x" * 3000, net.now)
        net.run(duration=10 * MS)
        return [f for link in net.links for f in [link.frames]], s.lport, replies(a)
    assert run() == run()


def segment(n=3):
    """``n`` stacks 10.9.0.1..n on one shared Ethernet segment (a hub)."""
    net = Net()
    members = []
    for i in range(1, n + 1):
        s = net.add(make_stack(i))
        members.append((s, add_ether(s, i, f"10.9.0.{i}/24")))
    net.hub(*members)
    return net, [s for s, _ in members]


def test_shared_segment_arp_only_the_target_answers():
    net, (a, b, c) = segment()
    a.inet.icmp.send_echo("10.9.0.3", 1, 1, b"hi c", net.now)
    net.run(duration=10 * MS)
    assert replies(a) == [(ip("10.9.0.3"), 1, 4, 64)]
    assert b.inet.arp.stats.sndreply == 0 and c.inet.arp.stats.sndreply == 1
    assert len(b.inet.arp) == 0                      # overheard, not aimed at B: not learned
    assert b.inet.link_stats.notforus >= 2           # the unicast echo pair, seen on the hub


def test_udp_broadcast_reaches_every_host_on_the_segment():
    net, (a, b, c) = segment()
    listeners = []
    for s in (b, c):
        sock = s.inet.udp.socket()
        sock.bind(None, 520)
        listeners.append(sock)
    tx = a.inet.udp.socket()
    tx.setsockopt("SO_BROADCAST", 1)
    tx.bind(None, 520)
    tx.sendto(b"to all (directed)", "10.9.0.255", 520, net.now)
    tx.sendto(b"to all (limited)", "255.255.255.255", 520, net.now)
    net.run(duration=10 * MS)
    for sock in listeners:
        got = [sock.recvfrom() for _ in range(2)]
        assert got == [(b"to all (directed)", ("10.9.0.1", 520)), (b"to all (limited)", ("10.9.0.1", 520))]
    # Nobody answers a broadcast to a closed port with ICMP (RFC 1122 3.2.2).
    tx.sendto(b"closed", "10.9.0.255", 999, net.now)
    net.run(duration=10 * MS)
    assert a.inet.icmp.stats.inhist[3] == 0
    assert b.inet.udp.stats.noportbcast == 1 and c.inet.udp.stats.noportbcast == 1


def test_multicast_to_members_only():
    net, (a, b, c) = segment()
    a.inet.route_add("224.0.0.0/4", iface="en0")
    rx_b = b.inet.udp.socket()
    rx_b.setsockopt("SO_REUSEADDR", 1)
    rx_b.bind(None, 5353)
    rx_b.setsockopt("IP_ADD_MEMBERSHIP", "224.0.0.251")
    rx_c = c.inet.udp.socket()
    rx_c.bind(None, 5353)                            # bound, but not a member
    rx_a = a.inet.udp.socket()
    rx_a.bind(None, 5353)
    rx_a.setsockopt("IP_ADD_MEMBERSHIP", "224.0.0.251")
    # The joins' IGMP reports (to 224.0.0.22, a group c is not in) come and go first.
    net.run(duration=1500 * MS)
    before = c.inet.stats.cantforward
    tx = a.inet.udp.socket()
    tx.sendto(b"mdns", "224.0.0.251", 5353, net.now)
    net.run(duration=10 * MS)
    assert rx_b.recvfrom()[0] == b"mdns"
    assert rx_a.recvfrom()[0] == b"mdns"             # looped to the sender's own members
    assert not rx_c.rxq and c.inet.stats.cantforward == before + 1
    rx_b.setsockopt("IP_DROP_MEMBERSHIP", "224.0.0.251")
    assert bytes((224, 0, 0, 251)) not in b.inet.groups
    rx_a.close()
    assert bytes((224, 0, 0, 251)) not in a.inet.groups
