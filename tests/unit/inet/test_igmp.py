"""IGMP host side at literal times (RFC 3376, RFC 2236/1112 compatibility): reports for
groups joined with IP_ADD_MEMBERSHIP (none before), never for 224.0.0.1, answers to
v3/v2/v1 queries, Leave, suppression, the 260 s older-querier timeout. scapy builds the
expected messages byte for byte and the queries."""

import ipaddress
import warnings

import pytest

from iopkt_fs.stack.time import seconds
from iopkt_fs.stack.wire import igmp as wigmp

from inet_helpers import OUR_IP, ether, host, ipv4

pytest.importorskip("scapy.all")
from scapy.all import IP, Ether, raw  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)      # scapy 2.5's contrib names
    from scapy.contrib.igmp import IGMP
    from scapy.contrib.igmpv3 import IGMPv3gr, IGMPv3mq, IGMPv3mr

GROUP = "239.1.2.3"
S = seconds(1)


def _g(text):
    return ipaddress.IPv4Address(text).packed


def igmp_sent(en0):
    """(IP destination, IGMP message bytes) of every IGMP frame sent; IP-level rules checked."""
    out = []
    for f in [bytes(f) for f in en0.txq]:
        e = Ether(f)
        if IP not in e or e[IP].proto != 2:
            continue
        ip = e[IP]
        assert ip.ttl == 1 and ip.tos == 0xC0 and ip.src == OUR_IP and ip.ihl == 6
        assert raw(ip)[20:24] == bytes((0x94, 4, 0, 0))          # Router Alert (RFC 2113)
        dst = ip.dst
        g = _g(dst)
        assert e.dst == f"01:00:5e:{g[1] & 0x7F:02x}:{g[2]:02x}:{g[3]:02x}"       # RFC 1112 6.4
        out.append((dst, raw(ip)[24:ip.len]))          # without the Ethernet padding
    en0.txq.clear()
    return out


def v3(*records):
    return raw(IGMPv3mr(records=[IGMPv3gr(rtype=t, maddr=g, srcaddrs=list(s)) for t, g, s in records]))


def run_until(stack, t):
    for _ in range(100):
        nxt = stack.poll_at()
        if nxt is None or nxt > t:
            break
        stack.poll(nxt)
    stack.poll(t)


def query_frame(message: bytes, dst="224.0.0.1"):
    mac = bytes((1, 0, 0x5E)) + bytes((_g(dst)[1] & 0x7F,)) + _g(dst)[2:]
    return ether(ipv4("10.0.0.254", dst, 2, message, ttl=1), dst=mac)


def test_join_reports_twice_within_a_second_never_all_hosts():
    stack, en0 = host()
    run_until(stack, 5 * S)
    assert igmp_sent(en0) == []                         # 224.0.0.1 alone: nothing
    stack.inet.join_group(GROUP)
    stack.inet.join_group(GROUP)                        # counted: one report
    run_until(stack, 7 * S)
    expected = v3((wigmp.CHANGE_TO_EXCLUDE_MODE, GROUP, ()))
    assert igmp_sent(en0) == [("224.0.0.22", expected)] * 2
    stack.inet.leave_group(GROUP)
    run_until(stack, 9 * S)
    assert igmp_sent(en0) == []
    stack.inet.leave_group(GROUP)
    run_until(stack, 11 * S)
    assert igmp_sent(en0) == [("224.0.0.22", v3((wigmp.CHANGE_TO_INCLUDE_MODE, GROUP, ())))] * 2


def test_udp_socket_membership_is_reported():
    stack, en0 = host()
    sock = stack.inet.udp.socket()
    sock.bind(None, 5000)
    sock.setsockopt("IP_ADD_MEMBERSHIP", GROUP)
    run_until(stack, 2 * S)
    assert [d for d, _ in igmp_sent(en0)] == ["224.0.0.22"] * 2
    sock.setsockopt("IP_DROP_MEMBERSHIP", GROUP)
    run_until(stack, 4 * S)
    assert [m for _, m in igmp_sent(en0)] == [v3((wigmp.CHANGE_TO_INCLUDE_MODE, GROUP, ()))] * 2


def test_v3_general_and_group_queries():
    stack, en0 = host()
    stack.inet.join_group(GROUP)
    stack.inet.join_group("239.9.9.9")
    run_until(stack, 3 * S)
    igmp_sent(en0)
    stack.input(en0, [query_frame(raw(IGMPv3mq(mrcode=20)))], 5 * S)
    run_until(stack, 8 * S)
    assert igmp_sent(en0) == [("224.0.0.22", v3((2, GROUP, ()), (2, "239.9.9.9", ())))]
    q = raw(IGMPv3mq(mrcode=10, gaddr=GROUP, srcaddrs=["10.9.9.9"]))
    stack.input(en0, [query_frame(q, dst=GROUP)], 10 * S)
    run_until(stack, 12 * S)
    assert igmp_sent(en0) == [("224.0.0.22", v3((1, GROUP, ("10.9.9.9",))))]


def test_v2_querier_v2_reports_leave_then_v3_after_260_s():
    stack, en0 = host()
    stack.inet.join_group(GROUP)
    run_until(stack, 3 * S)
    igmp_sent(en0)
    stack.input(en0, [query_frame(raw(IGMP(type=0x11, mrcode=50)))], 10 * S)
    run_until(stack, 16 * S)
    assert igmp_sent(en0) == [(GROUP, raw(IGMP(type=0x16, gaddr=GROUP)))]
    stack.inet.leave_group(GROUP)
    run_until(stack, 17 * S)
    assert igmp_sent(en0) == [("224.0.0.2", raw(IGMP(type=0x17, gaddr=GROUP)))]
    run_until(stack, 10 * S + seconds(260))
    stack.inet.join_group(GROUP)
    run_until(stack, 10 * S + seconds(262))
    assert [d for d, _ in igmp_sent(en0)] == ["224.0.0.22"] * 2


def test_v1_querier_and_no_leave():
    stack, en0 = host()
    stack.inet.join_group(GROUP)
    run_until(stack, 3 * S)
    igmp_sent(en0)
    stack.input(en0, [query_frame(raw(IGMP(type=0x11, mrcode=0)))], 10 * S)
    run_until(stack, 21 * S)
    assert igmp_sent(en0) == [(GROUP, raw(IGMP(type=0x12, gaddr=GROUP)))]
    stack.inet.leave_group(GROUP)
    run_until(stack, 25 * S)
    assert igmp_sent(en0) == []


def test_v2_report_from_another_host_suppresses_ours():
    stack, en0 = host()
    stack.inet.join_group(GROUP)
    run_until(stack, 3 * S)
    igmp_sent(en0)
    stack.input(en0, [query_frame(raw(IGMP(type=0x11, mrcode=100)))], 10 * S)
    stack.input(en0, [query_frame(raw(IGMP(type=0x16, gaddr=GROUP)), dst=GROUP)], 10 * S + 1)
    run_until(stack, 25 * S)
    assert igmp_sent(en0) == [] and stack.inet.igmp.stats.rcv_ourreports == 1


def test_bad_checksum_counted():
    stack, en0 = host()
    stack.inet.join_group(GROUP)
    run_until(stack, 3 * S)
    igmp_sent(en0)
    bad = bytearray(raw(IGMPv3mq(mrcode=20)))
    bad[2] ^= 0xFF
    stack.input(en0, [query_frame(bytes(bad))], 5 * S)
    run_until(stack, 8 * S)
    assert igmp_sent(en0) == [] and stack.inet.igmp.stats.rcv_badsum == 1


def test_address_added_later_reports_the_groups():
    stack, en0 = host()
    stack.inet.join_group(GROUP)
    run_until(stack, 3 * S)
    en1 = stack.new_interface("en", 1, kind=en0.kind, mac=bytes.fromhex("020000000003"), flags=en0.flags)
    stack.add_address(en1, ipaddress.ip_address("10.0.1.1"), 24)
    run_until(stack, 5 * S)
    frames = [Ether(bytes(f)) for f in en1.txq if Ether(bytes(f)).haslayer(IP) and Ether(bytes(f))[IP].proto == 2]
    assert len(frames) == 2 and all(f[IP].src == "10.0.1.1" for f in frames)


def test_wire_query_versions():
    assert wigmp.IgmpQuery.parse(raw(IGMP(type=0x11, mrcode=0))).version == 1
    assert wigmp.IgmpQuery.parse(raw(IGMP(type=0x11, mrcode=7))).max_resp == 7
    # scapy encodes 200 (tenths) as the floating-point code 0x89: (9 | 0x10) << 3.
    q = wigmp.IgmpQuery.parse(raw(IGMPv3mq(mrcode=200, srcaddrs=["1.2.3.4"])))
    assert q.version == 3 and q.max_resp == 200 and q.sources == (_g("1.2.3.4"),)
