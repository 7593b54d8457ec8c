"""Hypothesis strategies for every wire Repr (shared by the round-trip and oracle tests)."""

from hypothesis import strategies as st

from iopkt_fs.stack.wire.arp import ArpOp, ArpRepr
from iopkt_fs.stack.wire.ethernet import EthernetRepr
from iopkt_fs.stack.wire.icmp import (
    IcmpDstUnreachable,
    IcmpEchoReply,
    IcmpEchoRequest,
    IcmpGeneric,
    IcmpParamProblem,
    IcmpRepr,
    IcmpTimeExceeded,
)
from iopkt_fs.stack.wire.ipv4 import Ipv4Repr
from iopkt_fs.stack.wire.udp import UdpRepr

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
macs = st.binary(min_size=6, max_size=6)
ip_addrs = st.binary(min_size=4, max_size=4)
data = st.binary(max_size=200)

# An EtherType proper (>= 0x0600, IEEE 802.3 3.2.6) that is not itself a VLAN TPID.
ethertypes = st.integers(0x0600, 0xFFFF).filter(lambda t: t != 0x8100)

ethernet_reprs = st.builds(EthernetRepr, macs, macs, ethertypes, st.one_of(st.none(), u16))

arp_reprs = st.builds(
    ArpRepr, st.sampled_from([ArpOp.REQUEST, ArpOp.REPLY]), macs, ip_addrs, macs, ip_addrs
)

ip_options = st.integers(0, 10).flatmap(
    lambda words: st.binary(min_size=4 * words, max_size=4 * words)
)


@st.composite
def ipv4_reprs(draw, max_payload: int = 2000):
    options = draw(ip_options)
    return Ipv4Repr(
        src=draw(ip_addrs),
        dst=draw(ip_addrs),
        protocol=draw(u8),
        payload_len=draw(st.integers(0, max_payload)),
        ttl=draw(u8),
        tos=draw(u8),
        ident=draw(u16),
        dont_frag=draw(st.booleans()),
        more_frags=draw(st.booleans()),
        frag_offset=draw(st.integers(0, 0x1FFF)) * 8,
        options=options,
    )


_KNOWN_ICMP_TYPES = {0, 3, 8, 11, 12}

icmp_reprs: st.SearchStrategy[IcmpRepr] = st.one_of(
    st.builds(IcmpEchoRequest, u16, u16, data),
    st.builds(IcmpEchoReply, u16, u16, data),
    st.builds(IcmpDstUnreachable, u8, data, u16),
    st.builds(IcmpTimeExceeded, u8, data),
    st.builds(IcmpParamProblem, u8, data, u8),
    st.builds(IcmpGeneric, u8.filter(lambda t: t not in _KNOWN_ICMP_TYPES), u8, u32, data),
)

udp_reprs = st.builds(UdpRepr, u16, u16, st.binary(max_size=1500))
