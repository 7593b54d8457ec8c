"""IPv6 offloads in the core: software GSO for TCP/IPv6 super-segments (inet/gso.py
segment6), the virtio header our IPv6 TCP output writes on a TSO6 link, finished MTU
frames on a link without it, GSO_UDP_L4 super-frames cut into datagrams on input, and
receive coalescing of plain TCP/IPv6 segments (inet/gro.py).

scapy is the oracle for every checksum on the wire; the uncoalesced path is the oracle
for GRO, as in tests/unit/inet/test_offload.py for IPv4.
"""

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import (
    IFCAP_CSUM_TCPv6_Rx, IFCAP_CSUM_TCPv6_Tx, IFCAP_CSUM_UDPv6_Rx, IFCAP_TSOv4, IFCAP_TSOv6,
    IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER,
)
from iopkt_fs.stack.inet import gro, gso
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.tcp.socket import SO_RCVBUF, SOL_SOCKET
from iopkt_fs.stack.time import seconds
from iopkt_fs.stack.wire.ipv6 import Ipv6Repr
from iopkt_fs.stack.wire.tcp import build_segment, encode_options
from iopkt_fs.stack.wire.virtio import DATA_VALID, GSO_TCPV6, GSO_UDP_L4, HDR, NEEDS_CSUM

scapy = pytest.importorskip("scapy.all")
from scapy.all import IPv6, IPv6ExtHdrDestOpt, TCP, UDP, Ether, raw  # noqa: E402

OUR, PEER = "2001:db8::1", "2001:db8::2"
ME, YOU = ipaddress.IPv6Address(OUR).packed, ipaddress.IPv6Address(PEER).packed
MY_MAC, PEER_MAC = b"\x02\0\0\0\0\1", b"\x02\0\0\0\0\2"
S = seconds(1)


def super_packet6(payload: bytes, flags: int = 0x18, seq: int = 1000) -> bytes:
    opts = encode_options(timestamp=(7, 9))
    seg = build_segment(ME, YOU, 5001, 40000, seq, 77, flags, 512, opts, payload, partial=True)
    return Ipv6Repr(ME, YOU, 6, len(seg), 64).header_bytes() + seg


def scapy_agrees(pkt) -> None:
    """The checksum on the wire is the one scapy computes from scratch."""
    layer = pkt[TCP] if TCP in pkt else pkt[UDP]
    ck = layer.chksum
    del layer.chksum
    again = pkt.__class__(raw(pkt))
    assert (again[TCP] if TCP in again else again[UDP]).chksum == ck


# -- software GSO ------------------------------------------------------------------------------

@given(st.integers(1, 40_000), st.sampled_from([536, 1208, 1400, 1428]), st.booleans())
@settings(max_examples=60, deadline=None)
def test_software_gso6_cuts_into_valid_mss_pieces(n, mss, fin):
    payload = random.Random(n).randbytes(n)
    packet = super_packet6(payload, 0x18 | (1 if fin else 0))
    pieces = gso.finalize(packet, gso.Tx(40, 16, GSO_TCPV6, mss), 1500)
    got = b""
    for i, piece in enumerate(pieces):
        ip = IPv6(piece)
        assert ip.plen == len(piece) - 40 and len(piece) <= 1500
        scapy_agrees(ip)
        assert ip[TCP].seq == 1000 + len(got)
        last = i == len(pieces) - 1
        assert bool(ip[TCP].flags & 0x09) == last        # PSH (and FIN) on the last only
        assert len(bytes(ip[TCP].payload)) == (mss if not last else n - mss * i)
        got += bytes(ip[TCP].payload)
    assert got == payload


def test_a_partial_ipv6_checksum_is_completed_to_scapys():
    packet = super_packet6(bytes(range(256)) * 3 + b"odd")
    done = gso.finalize(packet, gso.Tx(40, 16, GSO_TCPV6, 1440), 1500)
    assert len(done) == 1 and done[0] != packet
    scapy_agrees(IPv6(done[0]))


# -- a TCP connection over IPv6 on a TAP-like link -----------------------------------------------

class _Link:
    def transmit(self, iface, frames):
        pass


def tap6_host(vnet: bool, caps: int = 0):
    stack = Stack(StackConfig(seed=3), rng=random.Random(3))
    iface = stack.new_interface("tap", kind=IFT_ETHER, mtu=1500, mac=MY_MAC, flags=IFF_BROADCAST | IFF_MULTICAST)
    iface.driver = _Link()
    if vnet:
        iface.vnet_hdr = 10
        iface.capabilities = iface.enabled = caps
    stack.add_address(iface, ipaddress.ip_address(OUR), 64)
    stack.poll(0)
    stack.poll(S)                 # DAD done
    stack.inet6.nd.add_static(iface, YOU, PEER_MAC)
    iface.txq.clear()
    return stack, iface


def peer_frame6(seq, ack, flags, payload=b"", ts=(100, 0), opts=None, vh=None, corrupt=False, hlim=64):
    o = encode_options(timestamp=ts) if opts is None else opts
    seg = bytearray(build_segment(YOU, ME, 40000, 5001, seq, ack, flags, 65535, o, payload))
    if corrupt:
        seg[-1] ^= 0xFF
    frame = MY_MAC + PEER_MAC + b"\x86\xdd" + Ipv6Repr(YOU, ME, 6, len(seg), hlim).header_bytes() + bytes(seg)
    return frame if vh is None else vh + frame


def frames_out(iface, vnet: bool):
    out = [bytes(f[10:] if vnet else f) for f in iface.txq]
    heads = [HDR.unpack_from(f, 0) for f in iface.txq] if vnet else []
    iface.txq.clear()
    return out, heads


def connect6(stack, iface, vnet, rcvbuf=None):
    lst = stack.tcp.socket()
    lst.bind(bytes(16), 5001)
    if rcvbuf:
        lst.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
    lst.listen(4)
    pre = bytes(10) if vnet else None
    syn_opts = encode_options(mss=1440, wscale=7, sack_permitted=True, timestamp=(100, 0))
    stack.input(iface, [peer_frame6(100, 0, 0x02, opts=syn_opts, vh=pre)], 2 * S)
    (synack,), _ = frames_out(iface, vnet)
    iss = Ether(synack)[TCP].seq
    stack.input(iface, [peer_frame6(101, iss + 1, 0x10, vh=pre)], 2 * S)
    frames_out(iface, vnet)
    return lst.accept(), iss


def test_tcp6_super_segments_leave_whole_with_a_virtio_header_on_a_tso6_link():
    stack, iface = tap6_host(True, IFCAP_TSOv6 | IFCAP_CSUM_TCPv6_Tx | IFCAP_CSUM_TCPv6_Rx)
    sock, _ = connect6(stack, iface, True)
    data = random.Random(1).randbytes(60_000)
    assert sock.send(data, 2 * S) >= 4 * 1428
    stack.poll(2 * S)
    frames, heads = frames_out(iface, True)
    big = [(f, h) for f, h in zip(frames, heads) if len(f) > 1514]
    assert big, "no super-segment was sent"
    for frame, (flags, gso_type, hdr_len, gso_size, start, off) in big:
        assert flags == NEEDS_CSUM and gso_type == GSO_TCPV6
        assert (hdr_len, start, off) == (14 + 40 + 32, 54, 16)   # after the IPv6 header
        assert gso_size == 1428                                  # MSS 1440 less timestamps
        pkt = Ether(frame)
        assert pkt[IPv6].plen == len(frame) - 54
        # Finished as the kernel will (the pieces' checksums), scapy agrees with each.
        for piece in gso.segment6(frame[14:], 40, GSO_TCPV6, gso_size):
            scapy_agrees(IPv6(piece))
    assert stack.inet6.stats.otso == len(big) and stack.tcp.stats.sndgso >= 1


def test_tcp6_on_a_tso4_only_link_is_cut_in_software():
    # TSO4 but not TSO6 (ifconfig ltap0 -tso6): checksums still go to the device,
    # super-segments are cut here.
    stack, iface = tap6_host(True, IFCAP_TSOv4 | IFCAP_CSUM_TCPv6_Tx | IFCAP_CSUM_TCPv6_Rx)
    sock, _ = connect6(stack, iface, True)
    sock.send(random.Random(4).randbytes(30_000), 2 * S)
    stack.poll(2 * S)
    frames, heads = frames_out(iface, True)
    assert frames and all(len(f) <= 1514 for f in frames)
    assert stack.inet6.stats.otso == 0 and stack.inet6.stats.ogso >= 1


@pytest.mark.parametrize("vnet", [False, True])
def test_without_offloads_tcp6_leaves_as_finished_mtu_frames(vnet):
    stack, iface = tap6_host(vnet, 0)
    sock, _ = connect6(stack, iface, vnet)
    data = random.Random(2).randbytes(30_000)
    sock.send(data, 2 * S)
    stack.poll(2 * S)
    frames, heads = frames_out(iface, vnet)
    assert all(h == (0, 0, 0, 0, 0, 0) for h in heads)
    got = b""
    for f in frames:
        assert len(f) <= 1514
        pkt = Ether(f)
        scapy_agrees(pkt)
        got += bytes(pkt[TCP].payload)
    assert got == data[:len(got)] and len(got) >= 1428 * 3 and len(frames) >= 3
    assert stack.inet6.stats.ogso >= 1 and stack.inet6.stats.otso == 0


def test_tcp6_super_frame_from_the_kernel_is_one_segment():
    stack, iface = tap6_host(True, IFCAP_TSOv6 | IFCAP_CSUM_TCPv6_Rx)
    sock, iss = connect6(stack, iface, True, rcvbuf=1 << 20)
    payload = random.Random(5).randbytes(20 * 1428)
    seg = build_segment(YOU, ME, 40000, 5001, 101, iss + 1, 0x18, 65535, encode_options(timestamp=(101, 0)),
                        payload, partial=True)
    frame = MY_MAC + PEER_MAC + b"\x86\xdd" + Ipv6Repr(YOU, ME, 6, len(seg), 64).header_bytes() + seg
    vh = HDR.pack(NEEDS_CSUM, GSO_TCPV6, 14 + 40 + 32, 1428, 54, 16)
    before = stack.tcp.stats.rcvgso
    stack.input(iface, [vh + frame], 2 * S)
    assert sock.recv(1 << 20, 2 * S) == payload
    assert stack.tcp.stats.rcvgso == before + 1 and stack.inet6.stats.igso == 1


def test_udp6_gso_super_frame_is_cut_into_its_datagrams():
    stack, iface = tap6_host(True, IFCAP_CSUM_UDPv6_Rx)
    sock = stack.inet.udp.socket()
    sock.bind(ME, 7000)
    messages = [bytes([i]) * 1000 for i in range(4)] + [b"tail"]
    body = b"".join(messages)
    dgram = UDP(sport=9000, dport=7000, len=8 + len(body)) / body
    pkt = raw(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IPv6(src=PEER, dst=OUR) / dgram)
    vh = HDR.pack(NEEDS_CSUM, GSO_UDP_L4, 14 + 40 + 8, 1000, 54, 6)
    stack.input(iface, [vh + pkt], 2 * S)
    got = [sock.recvfrom()[0] for _ in range(len(sock.rxq))]
    assert got == messages and stack.inet6.stats.igso == 1


# -- GRO against the uncoalesced path --------------------------------------------------------

SEGMENT = st.tuples(
    st.integers(0, 4),     # 0/3 in order, 1 skip ahead (a hole), 2 repeat, 4 hop limit changes
    st.sampled_from([0x10, 0x10, 0x10, 0x18, 0x11, 0x30]),   # ACK, PSH, FIN, URG
    st.sampled_from([(101, 0), (101, 0), (102, 0)]),         # timestamp changes
    st.integers(1, 1428),
    st.booleans(),                                           # corrupt
)


def build_run6(spec, iss):
    frames, seq = [], 101
    for kind, flags, ts, n, corrupt in spec:
        if kind == 1:
            seq += 700
        elif kind == 2:
            seq -= n
        seq &= 0xFFFFFFFF
        frames.append(peer_frame6(seq, iss + 1, flags, bytes([seq & 0xFF]) * n, ts=ts, corrupt=corrupt,
                                  hlim=63 if kind == 4 else 64))
        seq += n
    return frames


def received(sock):
    try:
        return sock.recv(1 << 20, 3 * S)
    except Exception:       # EAGAIN: nothing readable
        return b""


@given(st.lists(SEGMENT, min_size=2, max_size=40))
@settings(max_examples=60, deadline=None)
def test_coalescing6_delivers_what_segment_by_segment_delivers(spec):
    results = []
    for on in (True, False):
        stack, iface = tap6_host(False)
        stack.gro = on
        sock, iss = connect6(stack, iface, False, rcvbuf=1 << 20)
        stack.input(iface, build_run6(spec, iss), 3 * S)
        c = sock.conn
        results.append((received(sock), c.rcv_nxt, c.peer_fin, stack.tcp.stats.rcvbadsum,
                        sorted(c.ooo.ranges())))
    assert results[0] == results[1]


@given(st.lists(SEGMENT, min_size=2, max_size=40))
@settings(max_examples=60, deadline=None)
def test_coalescing6_never_joins_across_a_hole_a_flag_or_an_option_change(spec):
    frames = build_run6(spec, 5000)
    out = gro.coalesce([(memoryview(f), None) for f in frames], lambda a: False, lambda a: a == ME)
    i = 0
    for frame, vh in out:
        pkt = Ether(bytes(frame))
        n = len(bytes(pkt[TCP].payload))
        members = []
        while n > 0 or not members:
            members.append(Ether(frames[i]))
            n -= len(bytes(members[-1][TCP].payload))
            i += 1
        assert n == 0
        # Checked here (a bad one never joins), so marked DATA_VALID; its checksum field is
        # the first segment's, as Linux GRO leaves it (CHECKSUM_UNNECESSARY).
        assert vh is not None and vh[0] == DATA_VALID or len(members) == 1
        assert bytes(pkt[TCP].payload) == b"".join(bytes(m[TCP].payload) for m in members)
        for a, b in zip(members, members[1:]):
            assert b[TCP].seq == (a[TCP].seq + len(bytes(a[TCP].payload))) & 0xFFFFFFFF   # no hole
            assert a[TCP].flags == 0x10 and b[TCP].flags & ~0x09 == 0x10     # flags
            assert a[TCP].options == b[TCP].options                           # options
            assert a[IPv6].hlim == b[IPv6].hlim                               # hop limit
        if len(members) > 1:
            assert pkt[TCP].seq == members[0][TCP].seq
            assert pkt[TCP].flags == 0x10 | (members[-1][TCP].flags & 0x09)
    assert i == len(frames)


def test_coalescing6_joins_a_clean_run_and_leaves_extension_headers_alone():
    frames = [peer_frame6(101 + i * 1000, 5001, 0x10, bytes(1000)) for i in range(8)]
    out = gro.coalesce([(memoryview(f), None) for f in frames], lambda a: False, lambda a: a == ME)
    assert len(out) == 1 and len(bytes(Ether(bytes(out[0][0]))[TCP].payload)) == 8000
    # A segment behind a Destination Options header is not joined, and nothing after it
    # joins what came before it (its flow is not worked out).
    tcp = TCP(sport=40000, dport=5001, seq=101 + 8000, ack=5001, flags="A") / bytes(1000)
    ext = raw(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IPv6(src=PEER, dst=OUR)
              / IPv6ExtHdrDestOpt() / tcp)
    more = [peer_frame6(101 + 9000 + i * 1000, 5001, 0x10, bytes(1000)) for i in range(3)]
    out = gro.coalesce([(memoryview(f), None) for f in frames[:4] + [ext] + more], lambda a: False,
                       lambda a: a == ME)
    assert [len(bytes(f)) for f, _ in out] == [len(frames[0]) + 3000, len(ext), len(more[0]) + 2000]
    # On io-pkt-v4 (no is_local6) IPv6 frames pass untouched.
    out = gro.coalesce([(memoryview(f), None) for f in frames], lambda a: False)
    assert len(out) == len(frames)


@pytest.mark.parametrize("family", [4, 6])
def test_a_udp_super_datagram_is_cut_even_when_it_would_fit(family):
    """Five 100-byte messages in one GSO_UDP_L4 frame of 540 bytes: five datagrams, never
    one merged message, whatever the MTU."""
    from scapy.all import IP

    body = b"".join(bytes([i]) * 100 for i in range(5))
    net = IPv6(src=PEER, dst=OUR) if family == 6 else IP(src="10.0.0.2", dst="10.0.0.1")
    packet = raw(net / UDP(sport=1, dport=2) / body)
    l4 = 40 if family == 6 else 20
    pieces = gso.finalize(packet, gso.Tx(l4, None, GSO_UDP_L4, 100), 1500)
    cls = IPv6 if family == 6 else IP
    assert [bytes(cls(p)[UDP].payload) for p in pieces] == [bytes([i]) * 100 for i in range(5)]
    for p in pieces:
        scapy_agrees(cls(p))


def test_coalescing6_leaves_a_super_segment_alone_and_closes_its_flows_run():
    frames = [peer_frame6(101 + i * 1000, 5001, 0x10, bytes(1000)) for i in range(6)]
    big = HDR.pack(NEEDS_CSUM, GSO_TCPV6, 14 + 40 + 32, 1000, 54, 16)
    items = [(memoryview(f), None) for f in frames]
    items[3] = (memoryview(frames[3]), memoryview(big))     # the kernel's super-segment
    out = gro.coalesce(items, lambda a: False, lambda a: a == ME)
    # Before it one run of three, then it as it came, then a run of the two after it.
    assert [len(bytes(f)) - len(frames[0]) for f, _ in out] == [2000, 0, 1000]
    assert out[1][1] is items[3][1]
