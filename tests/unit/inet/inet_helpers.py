"""Frame crafting and inspection for the IPv4 unit tests (wire modules only, no scapy)."""

import ipaddress

from iopkt_fs.stack.config import V4_HC, StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.wire.arp import ArpRepr
from iopkt_fs.stack.wire.ethernet import BROADCAST, EthernetPacket, EthernetRepr
from iopkt_fs.stack.wire.icmp import IcmpEchoRequest, IcmpRepr
from iopkt_fs.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from iopkt_fs.stack.wire.udp import UdpRepr

OUR_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
OUR_IP = "10.0.0.1"
PEER_IP = "10.0.0.2"


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def host(seed: int = 7, **config):
    """A stack with en0 = 10.0.0.1/24 (MAC ...01); the announcement is drained.

    io-pkt-v4-hc unless asked otherwise: these are IPv4 tests, and on v6-hc the
    interface's link-local address and its DAD solicitation would join the frames they
    count (tests/unit/inet6/ covers that)."""
    config.setdefault("variant", V4_HC)
    stack = Stack(StackConfig(seed=seed, **config))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=OUR_MAC, flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address(OUR_IP), 24)
    en0.txq.clear()
    stack.take_tx()
    return stack, en0


def learn_peer(stack, iface, peer_ip=PEER_IP, peer_mac=PEER_MAC, now=0):
    stack.inet.arp.learn(iface, int(ipaddress.IPv4Address(peer_ip)), peer_mac, now, create=True)


def ipv4(src, dst, proto, payload: bytes, *, ttl=64, ident=1, df=False, mf=False, offset=0, tos=0) -> bytes:
    r = Ipv4Repr(ip(src), ip(dst), proto, len(payload), ttl, tos, ident, df, mf, offset)
    return r.to_bytes(payload)


def ether(payload: bytes, *, dst=OUR_MAC, src=PEER_MAC, ethertype=0x0800) -> bytes:
    return EthernetRepr(dst, src, ethertype).to_bytes(payload)


def echo_frame(src=PEER_IP, dst=OUR_IP, data=b"ping", ident=7, seq=1, **kw) -> bytes:
    return ether(ipv4(src, dst, 1, IcmpEchoRequest(ident, seq, data).to_bytes(), **kw))


def udp_frame(sport, dport, data, src=PEER_IP, dst=OUR_IP, link_dst=OUR_MAC, **kw) -> bytes:
    return ether(ipv4(src, dst, 17, UdpRepr(sport, dport, data).to_bytes(ip(src), ip(dst)), **kw), dst=link_dst)


def arp_frame(repr_: ArpRepr, dst=BROADCAST, src=PEER_MAC) -> bytes:
    return ether(repr_.to_bytes(), dst=dst, src=src, ethertype=0x0806)


def sent(iface):
    """Drain ``iface.txq``; return the frames as bytes."""
    frames = [bytes(f) for f in iface.txq]
    iface.txq.clear()
    return frames


def parse_ip(frame: bytes):
    """(Ipv4Repr, payload bytes) of an Ethernet frame carrying IPv4."""
    eth = EthernetPacket.new_checked(frame)
    assert eth.ethertype == 0x0800
    pkt = Ipv4Packet.new_checked(eth.payload)
    return Ipv4Repr.parse(pkt), bytes(pkt.payload)


def parse_icmp(frame: bytes):
    r, payload = parse_ip(frame)
    assert r.protocol == 1
    return r, IcmpRepr.parse(payload)


def parse_arp(frame: bytes) -> ArpRepr:
    eth = EthernetPacket.new_checked(frame)
    assert eth.ethertype == 0x0806
    return ArpRepr.parse(eth.payload)


def add_second(stack, address="10.1.0.1", n=0x11):
    """en1 = 10.1.0.1/24 with MAC 02:00:00:00:00:11; its announcement drained."""
    en1 = stack.new_interface("en", 1, kind=IFT_ETHER, mac=bytes((2, 0, 0, 0, 0, n)),
                              flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en1, ipaddress.ip_address(address), 24)
    en1.txq.clear()
    stack.take_tx()
    return en1
