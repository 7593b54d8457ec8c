"""The IPv6 tables at literal times: ndp -an's columns and expiry text, ndp's verbs, the
Internet6 routing table and route6's verbs (zones on link-local gateways)."""

import errno
import ipaddress

import pytest

from iopkt_fs.resmgr import tables6
from iopkt_fs.stack.errors import StackError

from .test_ipv6_layer import OUR, OUR_LL, PEER, PEER_MAC, S, ready


def test_sec2str_is_netbsds():
    assert [tables6.sec2str(n) for n in (0, 59, 60, 3599, 3600, 90061)] == \
        ["0s", "59s", "1m0s", "59m59s", "1h0m0s", "1d1h1m1s"]


def test_ndp_table_columns_and_expiry():
    stack, en0 = ready()        # the peer's NS made a STALE entry for it
    lines = tables6.ndp_table(stack, 2 * S).splitlines()
    assert lines[0] == f"{'Neighbor':<36} {'Linklayer Address':<17} {'Netif':>6} {'Expire':<9} S Flags"
    row = next(x for x in lines if x.startswith(PEER + " "))
    assert row[:36].rstrip() == PEER and row[37:54] == PEER_MAC and row[55:61] == "   en0"
    # STALE, collected 20 minutes after the NS at 1 s: 19m59s left at 2 s.
    assert row[62:71] == "19m59s   " and row[72] == "S"
    ours = [x for x in lines if x.startswith((OUR + " ", f"{OUR_LL}%en0 "))]
    assert len(ours) == 2 and all("permanent R" in x for x in ours)


def test_ndp_verbs():
    stack, en0 = ready()
    assert tables6.ndp_ctl(stack, ["add", "2001:db8::7", "02:00:00:00:00:07"], S) is None
    row = next(x for x in tables6.ndp_table(stack, S).splitlines() if x.startswith("2001:db8::7 "))
    assert "02:00:00:00:00:07" in row and "permanent N" in row
    assert tables6.ndp_ctl(stack, ["delete", "2001:db8::7"], S) == "2001:db8::7 (2001:db8::7) deleted\n"
    with pytest.raises(StackError) as e:
        tables6.ndp_ctl(stack, ["delete", "2001:db8::7"], S)
    assert e.value.errno == errno.ESRCH
    info = tables6.ndp_ctl(stack, ["info", "en0"], S)
    assert info.startswith("linkmtu=1500, maxmtu=1500, curhlim=64, basereachable=30s0ms, reachable=")
    assert info.endswith("retrans=1s0ms\nFlags: nud \n")
    assert tables6.ndp_ctl(stack, ["flush"], S) == f"{PEER} ({PEER}) deleted\n"
    assert not list(stack.inet6.nd)


def test_route6_verbs_and_table():
    stack, en0 = ready()
    tables6.route6_ctl(stack, ["add", "2001:db8:9::/48", "gateway", PEER])
    with pytest.raises(StackError) as e:
        tables6.route6_ctl(stack, ["add", "default", "gateway", "fe80::1"])
    assert e.value.errno == errno.EINVAL                 # a link-local gateway needs its zone
    tables6.route6_ctl(stack, ["add", "default", "gateway", "fe80::1%en0"])
    table = tables6.route6_table(stack).splitlines()
    assert table[0].startswith(f"{'Destination':<34} {'Gateway':<30} Flags")
    rows = {x.split()[0]: x.split() for x in table[1:]}
    assert rows["2001:db8:9::/48"][1:3] == [PEER, "UGS"] and rows["default"][1] == "fe80::1%en0"
    assert rows["fe80::1%lo0"][1:3] == ["link#1", "UH"]       # a link-local host route keeps its zone
    route = stack.inet6.routes.lookup(int(ipaddress.IPv6Address("2001:db8:9::1")))
    assert route.gateway == int(ipaddress.IPv6Address(PEER))
    tables6.route6_ctl(stack, ["delete", "2001:db8:9::/48"])
    assert "2001:db8:9::/48" not in tables6.route6_table(stack)
    with pytest.raises(StackError) as e:
        tables6.route6_ctl(stack, ["delete", "2001:db8:9::/48"])
    assert e.value.errno == errno.ESRCH
