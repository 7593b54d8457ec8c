"""``ifconfig IF inet6 ADDR ... anycast | tentative | pltime N | vltime N`` through the
interface ctl verb (SIOCAIFADDR_IN6's ifra_flags and ifra_lifetime), and ``ifconfig -L``'s
lifetimes, at literal times on a virtual clock."""

import ipaddress

import pytest

from iopkt_fs.resmgr import verbs
from iopkt_fs.resmgr.render import ifconfig_block
from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.inet6.ndisc import IN6_IFF_ANYCAST, IN6_IFF_DEPRECATED, IN6_IFF_TENTATIVE
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import seconds

S = seconds(1)
T0 = seconds(100)


def host():
    stack = Stack(StackConfig(seed=3))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex("020000000001"),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.up(en0)
    stack.poll(T0)
    return stack, en0


def ifa_of(iface, text):
    return next(a for a in iface.inet6_addrs() if a.address == ipaddress.IPv6Address(text))


def line_of(block, text):
    return next(l for l in block.splitlines() if f"inet6 {text} " in l)


def lifetimes(stack, iface, now):
    return lambda ifa: stack.inet6.rtr.lifetimes(iface, ifa, now)


def test_pltime_deprecates_and_vltime_removes_at_the_exact_second():
    stack, en0 = host()
    verbs.interface_ctl(stack, en0, "add 2001:db8::5 prefixlen 64 pltime 30 vltime 60", T0)
    ifa = ifa_of(en0, "2001:db8::5")
    assert line_of(ifconfig_block(en0, lifetimes(stack, en0, T0 + 10 * S)), "2001:db8::5") \
        .endswith("prefixlen 64 tentative pltime 20 vltime 50")
    stack.poll(T0 + 30 * S - 1)
    assert not ifa.flags6 & IN6_IFF_DEPRECATED
    stack.poll(T0 + 30 * S)
    assert ifa.flags6 & IN6_IFF_DEPRECATED
    assert line_of(ifconfig_block(en0, lifetimes(stack, en0, T0 + 31 * S)), "2001:db8::5") \
        .endswith("deprecated pltime 0 vltime 29")
    assert stack.inet6.rtr.poll_at() == T0 + 60 * S
    stack.poll(T0 + 60 * S - 1)
    assert ifa in en0.addrs
    stack.poll(T0 + 60 * S)
    assert ifa not in en0.addrs
    assert not stack.inet6.is_local(ipaddress.IPv6Address("2001:db8::5").packed)


def test_addresses_without_lifetimes_print_infty():
    stack, en0 = host()
    verbs.interface_ctl(stack, en0, "add 2001:db8::6", T0)
    block = ifconfig_block(en0, lifetimes(stack, en0, T0))
    assert line_of(block, "2001:db8::6").endswith("pltime infty vltime infty")
    assert "pltime" not in ifconfig_block(en0)        # only with -L


def test_vltime_only_keeps_it_preferred():
    stack, en0 = host()
    verbs.interface_ctl(stack, en0, "add 2001:db8::7 vltime 5", T0)
    assert line_of(ifconfig_block(en0, lifetimes(stack, en0, T0)), "2001:db8::7").endswith(
        "pltime infty vltime 5")


def test_pltime_zero_is_deprecated_at_once():
    stack, en0 = host()
    verbs.interface_ctl(stack, en0, "add 2001:db8::8 pltime 0 vltime 100", T0)
    assert ifa_of(en0, "2001:db8::8").flags6 & IN6_IFF_DEPRECATED


def test_anycast_skips_dad_and_is_never_a_source():
    stack, en0 = host()
    stack.poll(T0 + 2 * S)      # the link-local address passes DAD
    verbs.interface_ctl(stack, en0, "add 2001:db8::9 prefixlen 64 anycast", T0 + 2 * S)
    ifa = ifa_of(en0, "2001:db8::9")
    assert ifa.flags6 == IN6_IFF_ANYCAST
    assert "inet6 2001:db8::9 prefixlen 64 anycast\n" in ifconfig_block(en0)
    en0.txq.clear()
    stack.poll(T0 + 3 * S)
    # No DAD NS for it (an NS from :: whose target is the anycast address).
    assert not any(bytes(f)[62:78] == ifa.address.packed and bytes(f)[22:38] == bytes(16)
                   for f in en0.txq)
    # RFC 4291 2.6 / KAME: an anycast address is never a source (no usable global one).
    assert stack.inet6.source_for(ipaddress.IPv6Address("2001:db8::1").packed, quiet=True) != ifa.address.packed


def test_tentative_on_loopback_stays_tentative():
    stack, _ = host()
    lo0 = stack.lo0
    verbs.interface_ctl(stack, lo0, "add 2001:db8::a prefixlen 128 tentative", T0)
    stack.poll(T0 + 10 * S)
    assert ifa_of(lo0, "2001:db8::a").flags6 & IN6_IFF_TENTATIVE   # no DAD on lo0 clears it


def test_minus_words_cancel():
    stack, en0 = host()
    verbs.interface_ctl(stack, en0, "add 2001:db8::b anycast -anycast", T0)
    assert not ifa_of(en0, "2001:db8::b").flags6 & IN6_IFF_ANYCAST


@pytest.mark.parametrize("line", [
    "add 2001:db8::c pltime 60 vltime 30",       # preferred outlives valid
    "add 2001:db8::c pltime x",
    "add 10.0.0.5/24 anycast",                    # an inet6 parameter on IPv4
    "add 10.0.0.5/24 vltime 5",
])
def test_bad_parameters_are_einval_and_add_nothing(line):
    stack, en0 = host()
    before = list(en0.addrs)
    with pytest.raises(StackError) as exc:
        verbs.interface_ctl(stack, en0, line, T0)
    assert exc.value.errno == 22
    assert en0.addrs == before


def test_an_ra_leaves_a_hand_configured_address_with_lifetimes_alone():
    stack, en0 = host()
    addr = "2001:db8:1::ff:fe00:1"          # what SLAAC would form from 2001:db8:1::/64
    verbs.interface_ctl(stack, en0, f"add {addr} pltime 10 vltime 20", T0)
    auto = stack.inet6.rtr.addrs[(en0.index, ipaddress.IPv6Address(addr).packed)]
    assert auto.prefix is None and auto.valid == T0 + 20 * S


def test_deprecated_word_marks_the_address_and_source_selection_avoids_it():
    stack, en0 = host()
    stack.poll(T0 + 2 * S)
    verbs.interface_ctl(stack, en0, "add 2001:db8::d prefixlen 64 deprecated", T0 + 2 * S)
    verbs.interface_ctl(stack, en0, "add 2001:db8::e prefixlen 64", T0 + 2 * S)
    stack.poll(T0 + 3 * S)
    stack.poll(T0 + 4 * S)          # both past DAD
    assert "inet6 2001:db8::d prefixlen 64 deprecated\n" in ifconfig_block(en0)
    dst = ipaddress.IPv6Address("2001:db8::1").packed
    assert stack.inet6.source_for(dst) == ipaddress.IPv6Address("2001:db8::e").packed
