"""The MLD listener at literal times (RFC 3810, RFC 2710 compatibility): reports on join
and leave for the solicited-node and joined groups, never for ff02::1, answers to general,
group and MLDv1 queries, v1 suppression, the 260 s Older Version Querier Present timeout.
scapy reads what the stack sends (checksums included) and builds the queries."""

import ipaddress

import pytest

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import seconds
from iopkt_fs.stack.wire import mld as wmld
from iopkt_fs.stack.wire.ipv6 import solicited_node

pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    ICMPv6MLDMultAddrRec, ICMPv6MLDone, ICMPv6MLQuery, ICMPv6MLQuery2, ICMPv6MLReport, ICMPv6MLReport2,
    IPv6, IPv6ExtHdrHopByHop, Ether, RouterAlert, raw,
)

OUR_MAC = "02:00:00:00:00:01"
OUR_LL = "fe80::ff:fe00:1"
QUERIER_LL = "fe80::ff:fe00:99"
GROUP = "ff05::1:3"
S = seconds(1)


def _g(text):
    return ipaddress.IPv6Address(text).packed


def host():
    stack = Stack(StackConfig(seed=8))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex(OUR_MAC.replace(":", "")),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.up(en0)
    return stack, en0


def mld_frames(en0):
    out = [Ether(bytes(f)) for f in en0.txq]
    en0.txq.clear()
    got = [f for f in out if IPv6ExtHdrHopByHop in f]
    for f in got:
        # Hop limit 1 and a Router Alert (RFC 3810 5), a checksum scapy agrees with.
        assert f[IPv6].hlim == 1 and f[IPv6ExtHdrHopByHop].options[0].otype == 5
        copy = f.copy()
        icmp = copy[IPv6ExtHdrHopByHop].payload
        assert icmp.type in (131, 132, 143)
        ck = icmp.cksum
        del icmp.cksum
        assert Ether(raw(copy))[IPv6ExtHdrHopByHop].payload.cksum == ck
    return got


def records(f):
    """(type, group, sources) of every record (scapy 2.5 chains the later records as
    payloads of the first)."""
    out = []
    for r in f[ICMPv6MLReport2].records:
        while isinstance(r, ICMPv6MLDMultAddrRec):
            out.append((r.rtype, r.dst, list(r.sources)))
            r = r.payload
    assert len(out) == f[ICMPv6MLReport2].records_number
    return out


def run_until(stack, t):
    """Poll every deadline up to ``t``."""
    for _ in range(100):
        nxt = stack.poll_at()
        if nxt is None or nxt > t:
            break
        stack.poll(nxt)
    stack.poll(t)


def settled():
    stack, en0 = host()
    run_until(stack, 2 * S)
    en0.txq.clear()
    return stack, en0


def query(en0, q, dst="ff02::1", src=QUERIER_LL, hlim=1):
    mac = "33:33:" + ":".join(f"{b:02x}" for b in _g(dst)[-4:])
    return raw(Ether(src="02:00:00:00:00:99", dst=mac) / IPv6(src=src, dst=dst, hlim=hlim)
               / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) / q)


def test_solicited_node_group_reported_twice_on_join_never_all_nodes():
    stack, en0 = host()
    run_until(stack, 2 * S)
    sent = mld_frames(en0)
    assert len(sent) == 2
    first, second = sent
    assert first[IPv6].src == "::" and first[IPv6].dst == "ff02::16" and first.dst == "33:33:00:00:00:16"
    sn = str(ipaddress.IPv6Address(solicited_node(_g(OUR_LL))))
    assert records(first) == records(second) == [(wmld.CHANGE_TO_EXCLUDE_MODE, sn, [])]
    assert all(r[1] != "ff02::1" for f in sent for r in records(f))


def test_join_and_leave_a_group():
    stack, en0 = settled()
    stack.inet6.join_group(en0, _g(GROUP))
    stack.inet6.join_group(en0, _g(GROUP))            # counted: one report
    run_until(stack, 4 * S)
    joins = mld_frames(en0)
    assert [records(f) for f in joins] == [[(wmld.CHANGE_TO_EXCLUDE_MODE, GROUP, [])]] * 2
    assert joins[0][IPv6].src == OUR_LL
    stack.inet6.leave_group(en0, _g(GROUP))
    run_until(stack, 6 * S)
    assert mld_frames(en0) == []                      # one joiner is still there
    stack.inet6.leave_group(en0, _g(GROUP))
    run_until(stack, 8 * S)
    assert [records(f) for f in mld_frames(en0)] == [[(wmld.CHANGE_TO_INCLUDE_MODE, GROUP, [])]] * 2


def test_interface_local_groups_are_not_reported():
    stack, en0 = settled()
    stack.inet6.join_group(en0, _g("ff01::5"))
    stack.inet6.join_group(en0, _g("ff02::1"))
    run_until(stack, 4 * S)
    assert mld_frames(en0) == []


def test_general_query_answered_once_with_every_group():
    stack, en0 = settled()
    stack.inet6.join_group(en0, _g(GROUP))
    run_until(stack, 4 * S)
    mld_frames(en0)
    stack.input(en0, [query(en0, ICMPv6MLQuery2(mrd=2000))], 5 * S)
    run_until(stack, 7 * S)
    (answer,) = mld_frames(en0)
    sn = str(ipaddress.IPv6Address(solicited_node(_g(OUR_LL))))
    assert sorted(records(answer)) == sorted([(wmld.MODE_IS_EXCLUDE, GROUP, []), (wmld.MODE_IS_EXCLUDE, sn, [])])
    assert answer[IPv6].src == OUR_LL


def test_group_and_source_query():
    stack, en0 = settled()
    stack.inet6.join_group(en0, _g(GROUP))
    run_until(stack, 4 * S)
    mld_frames(en0)
    stack.input(en0, [query(en0, ICMPv6MLQuery2(mrd=500, mladdr=GROUP), dst=GROUP)], 5 * S)
    run_until(stack, 6 * S)
    assert [records(f) for f in mld_frames(en0)] == [[(wmld.MODE_IS_EXCLUDE, GROUP, [])]]
    stack.input(en0, [query(en0, ICMPv6MLQuery2(mrd=500, mladdr=GROUP, sources=["2001:db8::5"]), dst=GROUP)],
                6 * S)
    run_until(stack, 7 * S)
    assert [records(f) for f in mld_frames(en0)] == [[(wmld.MODE_IS_INCLUDE, GROUP, ["2001:db8::5"])]]
    # A query for a group we are not in is not answered.
    stack.input(en0, [query(en0, ICMPv6MLQuery2(mrd=500, mladdr="ff05::4"), dst="ff05::4")], 8 * S)
    run_until(stack, 9 * S)
    assert mld_frames(en0) == []


@pytest.mark.parametrize("src, hlim", [("2001:db8::99", 1), (QUERIER_LL, 2)])
def test_bad_queries_dropped(src, hlim):
    stack, en0 = settled()
    stack.input(en0, [query(en0, ICMPv6MLQuery2(mrd=100), src=src, hlim=hlim)], 5 * S)
    run_until(stack, 7 * S)
    assert mld_frames(en0) == [] and stack.inet6.mld.stats.badquery == 1


def test_mldv1_querier_switches_to_v1_for_260_s():
    stack, en0 = settled()
    stack.inet6.join_group(en0, _g(GROUP))
    run_until(stack, 4 * S)
    mld_frames(en0)
    stack.input(en0, [query(en0, ICMPv6MLQuery(mrd=1000))], 10 * S)
    run_until(stack, 12 * S)
    v1 = mld_frames(en0)
    sn = str(ipaddress.IPv6Address(solicited_node(_g(OUR_LL))))
    assert sorted((f[ICMPv6MLReport].mladdr, f[IPv6].dst) for f in v1) == sorted([(GROUP, GROUP), (sn, sn)])
    # Leave in v1 mode: one Done to all-routers.
    stack.inet6.leave_group(en0, _g(GROUP))
    run_until(stack, 13 * S)
    (done,) = mld_frames(en0)
    assert ICMPv6MLDone in done and done[IPv6].dst == "ff02::2" and done[ICMPv6MLDone].mladdr == GROUP
    # A join in v1 mode: a Report to the group, again within 10 s.
    stack.inet6.join_group(en0, _g("ff05::77"))
    run_until(stack, 25 * S)
    assert [f[IPv6].dst for f in mld_frames(en0)] == ["ff05::77", "ff05::77"]
    # 260 s after the v1 query, MLDv2 again.
    stack.inet6.leave_group(en0, _g("ff05::77"))
    run_until(stack, 10 * S + seconds(260))
    mld_frames(en0)
    stack.inet6.join_group(en0, _g("ff05::78"))
    run_until(stack, 10 * S + seconds(262))
    assert [records(f) for f in mld_frames(en0)] == [[(wmld.CHANGE_TO_EXCLUDE_MODE, "ff05::78", [])]] * 2


def test_mldv1_report_from_another_host_suppresses_ours():
    stack, en0 = settled()
    stack.inet6.join_group(en0, _g(GROUP))
    run_until(stack, 4 * S)
    mld_frames(en0)
    stack.input(en0, [query(en0, ICMPv6MLQuery(mrd=10000, mladdr=GROUP), dst=GROUP)], 10 * S)
    other = raw(Ether(src="02:00:00:00:00:55", dst="33:33:00:01:00:03")
                / IPv6(src="fe80::55", dst=GROUP, hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
                / ICMPv6MLReport(mladdr=GROUP))
    stack.input(en0, [other], 10 * S + 1)
    run_until(stack, 25 * S)
    assert mld_frames(en0) == [] and stack.inet6.mld.stats.suppressed == 1


def test_interface_coming_up_reports_its_groups():
    stack, en0 = settled()
    stack.inet6.join_group(en0, _g(GROUP))
    stack.down(en0)
    en0.txq.clear()
    stack.up(en0)
    run_until(stack, 10 * S)
    reported = {r[1] for f in mld_frames(en0) for r in records(f)}
    assert GROUP in reported


def test_wire_roundtrip_with_scapy():
    src, dst = _g(OUR_LL), wmld.ALL_MLDV2_ROUTERS
    ours = wmld.Mld2Report((wmld.Mld2Record(2, _g(GROUP)), wmld.Mld2Record(1, _g("ff05::9"), (_g("2001:db8::1"),))))
    theirs = ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(rtype=2, dst=GROUP),
                                      ICMPv6MLDMultAddrRec(rtype=1, dst="ff05::9", sources=["2001:db8::1"])])
    assert ours.to_bytes(src, dst) == raw(IPv6(src=OUR_LL, dst="ff02::16") / theirs)[40:]
    assert wmld.Mld2Report.parse(raw(IPv6(src=OUR_LL, dst="ff02::16") / theirs)[40:]) == ours
    q = raw(IPv6(src=QUERIER_LL, dst="ff02::1") / ICMPv6MLQuery2(mrd=0x8123, sources=["2001:db8::7"]))[40:]
    parsed = wmld.MldQuery.parse(q)
    assert parsed.version == 2 and parsed.max_resp == (0x123 | 0x1000) << 3 and parsed.sources == (_g("2001:db8::7"),)
    assert wmld.MldQuery.parse(raw(IPv6() / ICMPv6MLQuery(mrd=777))[40:]).max_resp == 777


def test_udp_ipv6_join_group_option_reports_delivers_and_leaves_on_close():
    from scapy.all import UDP
    from iopkt_fs.stack.errors import StackError
    from iopkt_fs.stack.socket import opts
    stack, en0 = settled()
    s = stack.inet.udp.socket()
    s.bind("::", 5353)
    s.setsockopt(opts.IPPROTO_IPV6, opts.IPV6_JOIN_GROUP, (GROUP, en0.index), 2 * S)
    run_until(stack, 4 * S)
    assert [records(f) for f in mld_frames(en0)] == [[(wmld.CHANGE_TO_EXCLUDE_MODE, GROUP, [])]] * 2
    with pytest.raises(StackError) as exc:
        s.setsockopt(opts.IPPROTO_IPV6, opts.IPV6_JOIN_GROUP, (GROUP, "en0"), 4 * S)
    assert exc.value.errno == 98                          # EADDRINUSE: joined already
    frame = raw(Ether(src="02:00:00:00:00:99", dst="33:33:00:01:00:03")
                / IPv6(src="fe80::99", dst=GROUP) / UDP(sport=7, dport=5353) / b"to the group")
    stack.input(en0, [frame], 5 * S)
    data, (src, port, iface) = s.recvmsg()
    assert data == b"to the group" and port == 7 and iface is en0
    for bad, code in (((GROUP, 99), 6), (("2001:db8::1", 0), 22), (("ff05::1:4", en0.index), 99)):
        name = opts.IPV6_LEAVE_GROUP if bad[0] == "ff05::1:4" else opts.IPV6_JOIN_GROUP
        with pytest.raises(StackError) as exc:
            s.setsockopt(opts.IPPROTO_IPV6, name, bad, 5 * S)
        assert exc.value.errno == code                    # ENXIO, EINVAL, EADDRNOTAVAIL
    s.close()                                             # the last member leaves: TO_IN {}
    run_until(stack, 8 * S)
    assert [records(f) for f in mld_frames(en0)] == [[(wmld.CHANGE_TO_INCLUDE_MODE, GROUP, [])]] * 2
    assert (en0.index, _g(GROUP)) not in stack.inet6.groups


def test_ipv6_join_group_interface_zero_is_the_groups_zone():
    from iopkt_fs.stack.socket import opts
    stack, en0 = settled()
    s = stack.inet.udp.socket()
    s.setsockopt(opts.IPPROTO_IPV6, opts.IPV6_JOIN_GROUP, ("ff02::fb", 0), 2 * S)
    assert (en0.index, _g("ff02::fb")) in stack.inet6.groups     # the only link
