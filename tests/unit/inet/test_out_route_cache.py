"""The output route cache (output.py ``OutRoute``): what changes the way out is seen by
the very next datagram - a route added or deleted, an ARP entry replaced or gone stale, an
interface's MTU, address or state - and what it must not skip (the route's use count,
the re-confirmation of a STALE neighbour)."""

import ipaddress

import pytest

from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.neighbor import ARPT_KEEP, State
from iopkt_fs.stack.time import MICROS_PER_SECOND as S

from inet_helpers import OUR_MAC, add_second, host, ip, parse_arp, parse_ip, sent

FAR = "192.168.5.5"
GW0, GW0_MAC = "10.0.0.254", bytes.fromhex("0200000000fe")
GW1, GW1_MAC = "10.1.0.254", bytes.fromhex("0200000001fe")


def n(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def two_ways():
    """en0 and en1, a gateway on each with a known MAC, FAR reached through en0's."""
    stack, en0 = host()
    en1 = add_second(stack)
    stack.inet.arp.learn(en0, n(GW0), GW0_MAC, 0, create=True)
    stack.inet.arp.learn(en1, n(GW1), GW1_MAC, 0, create=True)
    stack.inet.route_add(FAR, GW0, host=True)
    return stack, en0, en1


def send(stack, now=S, data=b"x" * 8, **kw):
    stack.inet.output(data, None, ip(FAR), 17, now, **kw)


def test_the_second_datagram_comes_from_the_cache_and_still_counts_a_use(monkeypatch):
    stack, en0, _en1 = two_ways()
    send(stack)
    assert ip(FAR) in stack.inet._out_routes

    def no_lookup(*a, **kw):
        raise AssertionError("the route table was asked for a cached destination")
    monkeypatch.setattr(stack.inet.routes, "lookup", no_lookup)
    monkeypatch.setattr(stack.inet.arp, "resolve", no_lookup)
    send(stack)
    (route,) = [r for r in stack.inet.routes if r.prefixlen == 32 and r.gateway == n(GW0)]
    assert route.use == 2
    a, b = sent(en0)
    assert a[:6] == b[:6] == GW0_MAC
    # Byte for byte the same datagram but for the identification (and so the checksum).
    ra, pa = parse_ip(a)
    rb, pb = parse_ip(b)
    assert (ra.src, ra.dst, ra.ttl, pa) == (rb.src, rb.dst, rb.ttl, pb)
    assert rb.ident == (ra.ident + 1) & 0xFFFF


def test_route_changed_mid_connection_segments_go_the_new_way():
    stack, en0, en1 = two_ways()
    sock = stack.tcp.socket()
    sock.connect(ip(FAR), 80, S)
    (syn,) = sent(en0)
    assert syn[:6] == GW0_MAC
    # route change: delete, add through the other gateway.
    stack.inet.route_delete(FAR, host=True)
    stack.inet.route_add(FAR, GW1, host=True)
    stack.poll(stack.poll_at())               # the SYN's retransmission
    assert sent(en0) == []
    (again,) = sent(en1)
    assert again[:6] == GW1_MAC and again[6:12] != OUR_MAC
    r, _ = parse_ip(again)
    assert r.src == ip("10.0.0.1")            # the connection keeps its address
    sock.abort(2 * S)


def test_arp_entry_replaced_the_next_datagram_has_the_new_mac():
    stack, en0, _en1 = two_ways()
    send(stack)
    assert sent(en0)[0][:6] == GW0_MAC
    new = bytes.fromhex("0200000000aa")
    stack.inet.arp.learn(en0, n(GW0), new, 2 * S, create=False)   # the gateway moved
    send(stack, 2 * S)
    assert sent(en0)[0][:6] == new
    stack.inet.arp_add(GW0, "02:00:00:00:00:bb")                   # arp -s
    send(stack, 3 * S)
    assert sent(en0)[0][:6] == bytes.fromhex("0200000000bb")


def test_arp_entry_deleted_the_next_datagram_waits_for_a_request():
    stack, en0, _en1 = two_ways()
    send(stack)
    sent(en0)
    stack.inet.arp.delete(GW0)
    send(stack, 2 * S)
    (req,) = sent(en0)
    assert parse_arp(req).target_ip == ip(GW0)


def test_a_stale_neighbour_is_reconfirmed_on_first_use():
    stack, en0, _en1 = two_ways()
    send(stack)
    sent(en0)
    stack.poll(ARPT_KEEP)                         # REACHABLE -> STALE
    assert stack.inet.arp.get(en0, n(GW0)).state is State.STALE
    send(stack, ARPT_KEEP + 1)
    frames = sent(en0)
    assert [f[12:14] for f in frames] == [b"\x08\x06", b"\x08\x00"]   # asked, and sent meanwhile
    assert parse_arp(frames[0]).target_ip == ip(GW0) and frames[1][:6] == GW0_MAC


def test_interface_mtu_change_fragments_the_next_datagram():
    stack, en0, _en1 = two_ways()
    send(stack, data=bytes(1000))
    assert len(sent(en0)) == 1
    stack.set_mtu(en0, 576)
    send(stack, 2 * S, data=bytes(1000))
    assert len(sent(en0)) == 2
    with pytest.raises(StackError):
        send(stack, 3 * S, data=bytes(1000), df=True)


def test_interface_down_the_next_datagram_has_no_route():
    stack, en0, _en1 = two_ways()
    send(stack)
    stack.down(en0)
    with pytest.raises(StackError):
        send(stack, 2 * S)


def test_address_change_the_next_datagram_has_the_new_source():
    stack, en0, _en1 = two_ways()
    send(stack)
    assert parse_ip(sent(en0)[0])[0].src == ip("10.0.0.1")
    # A second address first in the list: the primary one replaced (ifconfig en0 ADDR).
    stack.add_address(en0, ipaddress.ip_address("10.0.0.7"), 24, replace_primary=True)
    sent(en0)
    send(stack, 2 * S)
    assert parse_ip(sent(en0)[0])[0].src == ip("10.0.0.7")


def test_checksum_offload_switched_off_the_next_segment_is_finished_in_software():
    from iopkt_fs.stack.iface.interface import IFCAP_CSUM_TCPv4_Rx, IFCAP_CSUM_TCPv4_Tx
    from iopkt_fs.stack.inet.gso import Tx
    from iopkt_fs.stack.wire.tcp import TcpPacket, build_segment
    from iopkt_fs.stack.wire.virtio import GSO_NONE, NEEDS_CSUM, VNET_HDR_LEN

    stack, en0, _en1 = two_ways()
    caps = IFCAP_CSUM_TCPv4_Rx | IFCAP_CSUM_TCPv4_Tx
    en0.capabilities = en0.enabled = caps
    en0.vnet_hdr = VNET_HDR_LEN
    src, dst = ip("10.0.0.1"), ip(FAR)
    plain = Tx(20, 16, GSO_NONE, 0)

    def segment(now):
        seg = build_segment(src, dst, 1000, 80, 1, 0, 0x18, 100, b"", b"data", partial=True)
        stack.inet.output(seg, src, dst, 6, now, tx=plain)
        (frame,) = sent(en0)
        # (a software-finished frame is padded to 60 bytes: the segment is its first 24)
        return frame[0] & NEEDS_CSUM, TcpPacket(memoryview(frame)[VNET_HDR_LEN + 34:VNET_HDR_LEN + 58])

    for now in (S, 2 * S):                           # the second from the cached route
        needs, _seg = segment(now)
        assert needs
    stack.set_capabilities(en0, disable=IFCAP_CSUM_TCPv4_Tx)      # ifconfig en0 -tcp4csum
    needs, seg = segment(3 * S)
    assert not needs and seg.verify_checksum(src, dst)
