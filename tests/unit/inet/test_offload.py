"""The offload paths of the core: software GSO and checksum completion (inet/gso.py), the
virtio header in and out of the stack, receive coalescing (inet/gro.py), one ACK per input
batch, and buffer autosizing with the window scale taken from its maximum.

scapy is the oracle for what goes on the wire; the uncoalesced path is the oracle for GRO.
"""

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from iopkt_fs.stack.config import StackConfig
from iopkt_fs.stack.iface.interface import (
    IFCAP_CSUM_TCPv4_Rx, IFCAP_CSUM_TCPv4_Tx, IFCAP_TSOv4, IFF_BROADCAST, IFT_ETHER,
)
from iopkt_fs.stack.inet import gro, gso
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.tcp.socket import SO_RCVBUF, SOL_SOCKET
from iopkt_fs.stack.wire.ipv4 import Ipv4Repr
from iopkt_fs.stack.wire.tcp import build_segment, encode_options
from iopkt_fs.stack.wire.virtio import DATA_VALID, GSO_TCPV4, HDR, NEEDS_CSUM

ME, PEER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
MY_MAC, PEER_MAC = b"\x02\0\0\0\0\1", b"\x02\0\0\0\0\2"
S = 1_000_000


def super_packet(payload: bytes, flags: int = 0x18, seq: int = 1000, partial: bool = True) -> bytes:
    opts = encode_options(timestamp=(7, 9))
    seg = build_segment(ME, PEER, 5001, 40000, seq, 77, flags, 512, opts, payload, partial=partial)
    return Ipv4Repr(ME, PEER, 6, len(seg), 64, 0, 0x1234, True).header_bytes() + seg


# -- software GSO and checksum completion -------------------------------------------------

@given(st.integers(1, 40_000), st.sampled_from([536, 1000, 1447, 1448]), st.booleans())
@settings(max_examples=60, deadline=None)
def test_software_gso_cuts_into_valid_mss_pieces(n, mss, fin):
    payload = random.Random(n).randbytes(n)
    packet = super_packet(payload, 0x18 | (1 if fin else 0))
    pieces = gso.finalize(packet, gso.Tx(20, 16, GSO_TCPV4, mss), 1500)
    got = b""
    for i, piece in enumerate(pieces):
        ip = IP(piece)
        chk_ip, chk_tcp = ip.chksum, ip[TCP].chksum
        del ip.chksum
        del ip[TCP].chksum
        again = IP(bytes(ip))
        assert (chk_ip, chk_tcp) == (again.chksum, again[TCP].chksum)   # scapy agrees
        assert len(piece) <= 1500 and ip.id == 0x1234 + i
        assert ip[TCP].seq == 1000 + len(got)
        last = i == len(pieces) - 1
        assert bool(ip[TCP].flags & 0x09) == last      # PSH (and FIN) on the last only
        assert len(bytes(ip[TCP].payload)) == (mss if not last else n - mss * i)
        got += bytes(ip[TCP].payload)
    assert got == payload


def test_completing_a_partial_checksum_gives_the_full_one():
    payload = bytes(range(256)) * 5 + b"odd"
    partial = super_packet(payload)
    full = super_packet(payload, partial=False)
    assert partial != full
    assert gso.complete(partial, gso.Tx(20, 16)) == full


# -- the virtio header through the stack ----------------------------------------------------

class _Link:
    def transmit(self, iface, frames):
        pass


def tap_host(vnet: bool, caps: int = 0):
    stack = Stack(StackConfig(), rng=random.Random(3))
    iface = stack.new_interface("tap", kind=IFT_ETHER, mtu=1500, mac=MY_MAC, flags=IFF_BROADCAST)
    iface.driver = _Link()
    if vnet:
        iface.vnet_hdr = 10
        iface.capabilities = iface.enabled = caps
    stack.add_address(iface, "10.0.0.1", 24)
    stack.inet.arp_add("10.0.0.2", PEER_MAC, iface=iface.name)
    iface.txq.clear()
    return stack, iface


def peer_frame(seq, ack, flags, payload=b"", ts=(100, 0), opts=None, vh=None, corrupt=False,
               ttl=64, tos=0):
    """``corrupt``: True flips the segment's last byte; a float in [0, 1) flips the byte
    at that fraction of the IP datagram (its header included)."""
    o = encode_options(timestamp=ts) if opts is None else opts
    seg = bytes(build_segment(PEER, ME, 40000, 5001, seq, ack, flags, 65535, o, payload))
    ip = bytearray(Ipv4Repr(PEER, ME, 6, len(seg), ttl, tos, 1, True).header_bytes() + seg)
    if corrupt is True:
        ip[-1] ^= 0xFF
    elif corrupt:
        ip[int(corrupt * len(ip))] ^= 0x40
    frame = MY_MAC + PEER_MAC + b"\x08\x00" + bytes(ip)
    return frame if vh is None else vh + frame


def frames_out(iface, vnet: bool):
    out = [bytes(f[10:] if vnet else f) for f in iface.txq]
    heads = [HDR.unpack_from(f, 0) for f in iface.txq] if vnet else []
    iface.txq.clear()
    return out, heads


def connect(stack, iface, vnet, rcvbuf=None):
    lst = stack.tcp.socket()
    lst.bind(b"\0\0\0\0", 5001)
    if rcvbuf:
        lst.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
    lst.listen(4)
    pre = bytes(10) if vnet else None
    syn_opts = encode_options(mss=1460, wscale=7, sack_permitted=True, timestamp=(100, 0))
    stack.input(iface, [peer_frame(100, 0, 0x02, opts=syn_opts, vh=pre)], S)
    (synack,), _ = frames_out(iface, vnet)
    iss = Ether(synack)[TCP].seq
    stack.input(iface, [peer_frame(101, iss + 1, 0x10, vh=pre)], S)
    frames_out(iface, vnet)
    return lst.accept(), iss


def test_super_segments_leave_whole_with_a_virtio_header_where_the_link_offloads():
    stack, iface = tap_host(True, IFCAP_TSOv4 | IFCAP_CSUM_TCPv4_Tx | IFCAP_CSUM_TCPv4_Rx)
    sock, _ = connect(stack, iface, True)
    data = random.Random(1).randbytes(60_000)
    assert sock.send(data, S) >= 4 * 1448        # taken into the send buffer
    stack.poll(S)
    frames, heads = frames_out(iface, True)
    big = [(f, h) for f, h in zip(frames, heads) if len(f) > 1514]
    assert big, "no super-segment was sent"
    for frame, (flags, gso_type, hdr_len, gso_size, start, off) in big:
        assert flags == NEEDS_CSUM and gso_type == GSO_TCPV4
        assert (hdr_len, start, off) == (14 + 20 + 32, 34, 16)
        assert gso_size == 1448            # MSS 1460 less the timestamp option
        assert (len(frame) - 66) % gso_size == 0 or frame is big[-1][0]
    assert stack.tcp.stats.sndgso >= 1


def test_without_offloads_the_same_data_leaves_as_finished_mtu_frames():
    for vnet in (False, True):
        stack, iface = tap_host(vnet, 0)
        sock, _ = connect(stack, iface, vnet)
        data = random.Random(2).randbytes(30_000)
        sock.send(data, S)
        stack.poll(S)
        frames, heads = frames_out(iface, vnet)
        assert all(h == (0, 0, 0, 0, 0, 0) for h in heads)
        got = b""
        for f in frames:
            assert len(f) <= 1514
            pkt = Ether(f)
            ck = pkt[TCP].chksum
            del pkt[TCP].chksum
            assert Ether(bytes(pkt))[TCP].chksum == ck
            got += bytes(pkt[TCP].payload)
        assert got == data[:len(got)] and len(got) >= 1448 * 3 and len(frames) >= 3   # the initial window


def test_frames_the_link_vouches_for_skip_the_checksum_and_others_do_not():
    stack, iface = tap_host(True, IFCAP_CSUM_TCPv4_Rx)
    sock, iss = connect(stack, iface, True)
    trusted = HDR.pack(DATA_VALID, 0, 0, 0, 0, 0)
    # A bad checksum on a frame the link checked is the link's word against ours: kept.
    stack.input(iface, [peer_frame(101, iss + 1, 0x18, b"a" * 100, vh=trusted, corrupt=True)], 2 * S)
    # The same frame with a plain header is verified and dropped.
    stack.input(iface, [peer_frame(201, iss + 1, 0x18, b"b" * 100, vh=bytes(10), corrupt=True)], 2 * S)
    assert sock.recv(1000, 2 * S)[:100] == bytes(b ^ (0xFF if i == 99 else 0) for i, b in enumerate(b"a" * 100))
    assert stack.tcp.stats.rcvbadsum == 1


# -- one ACK per batch, quick ACKs across a hole ------------------------------------------------

def test_a_batch_of_in_order_segments_is_acknowledged_once():
    stack, iface = tap_host(False)
    stack.gro = False                      # the batch rule alone, segment by segment
    sock, iss = connect(stack, iface, False, rcvbuf=1 << 20)
    batch = [peer_frame(101 + i * 1448, iss + 1, 0x10, bytes(1448), ts=(101, 0)) for i in range(32)]
    stack.input(iface, batch, 2 * S)
    acks, _ = frames_out(iface, False)
    assert len(acks) == 1 and Ether(acks[0])[TCP].ack == 101 + 32 * 1448
    assert stack.tcp.stats.rcvpack == 32


def test_every_segment_after_a_hole_is_answered_at_once():
    stack, iface = tap_host(False)
    stack.gro = False
    sock, iss = connect(stack, iface, False, rcvbuf=1 << 20)
    batch = [peer_frame(101 + i * 1448, iss + 1, 0x10, bytes(1448), ts=(101, 0))
             for i in range(12) if i != 3]
    stack.input(iface, batch, 2 * S)
    acks, _ = frames_out(iface, False)
    # Before the hole one ACK at the end; from the first segment past it, one each.
    dup = [a for a in acks if Ether(a)[TCP].ack == 101 + 3 * 1448]
    assert len(dup) == 8


# -- GRO against the uncoalesced path -------------------------------------------------------------

SEGMENT = st.tuples(
    # 0/3 in order, 1 skip ahead (a hole), 2 repeat, 4 TTL changes, 5 TOS changes (ECT(0))
    st.integers(0, 5),
    st.sampled_from([0x10, 0x10, 0x10, 0x18, 0x11, 0x30]),   # ACK, PSH, FIN, URG
    st.sampled_from([(101, 0), (101, 0), (102, 0)]),         # timestamp changes
    st.integers(1, 1448),
    # corrupt: no, the last byte, or one anywhere in the datagram (IP header included)
    st.one_of(st.booleans(), st.floats(0, 1, exclude_max=True)),
)


def build_run(spec, iss):
    frames, seq = [], 101
    for kind, flags, ts, n, corrupt in spec:
        if kind == 1:
            seq += 700
        elif kind == 2:
            seq -= n
        seq &= 0xFFFFFFFF
        frames.append(peer_frame(seq, iss + 1, flags, bytes([seq & 0xFF]) * n, ts=ts, corrupt=corrupt,
                                 ttl=63 if kind == 4 else 64, tos=2 if kind == 5 else 0))
        seq += n
    return frames


def received(stack, sock):
    try:
        return sock.recv(1 << 20, 3 * S)
    except Exception:       # EAGAIN: nothing readable
        return b""


@given(st.lists(SEGMENT, min_size=2, max_size=40))
@settings(max_examples=80, deadline=None)
def test_coalescing_delivers_what_segment_by_segment_delivers(spec):
    results = []
    for on in (True, False):
        stack, iface = tap_host(False)
        stack.gro = on
        sock, iss = connect(stack, iface, False, rcvbuf=1 << 20)
        stack.input(iface, build_run(spec, iss), 2 * S)
        c = sock.conn
        results.append((received(stack, sock), c.rcv_nxt, c.peer_fin, stack.tcp.stats.rcvbadsum,
                        sorted(c.ooo.ranges())))
    assert results[0] == results[1]


@given(st.lists(SEGMENT, min_size=2, max_size=40))
@settings(max_examples=80, deadline=None)
def test_coalescing_never_joins_across_a_hole_a_flag_or_an_option_change(spec):
    frames = build_run(spec, 5000)
    out = gro.coalesce([(memoryview(f), None) for f in frames], lambda a: a == ME)
    i = 0
    for frame, _vh in out:
        pkt = Ether(bytes(frame))
        if TCP not in pkt:
            # A corrupted IP header no longer says TCP: the frame went up as it came.
            assert bytes(frame) == frames[i]
            i += 1
            continue
        n = len(bytes(pkt[TCP].payload))
        members = []
        while n > 0 or not members:
            src = Ether(frames[i])
            members.append(src)
            n -= len(bytes(src[TCP].payload))
            i += 1
        assert n == 0
        first = members[0][TCP]
        for a, b in zip(members, members[1:]):
            assert b[TCP].seq == (a[TCP].seq + len(bytes(a[TCP].payload))) & 0xFFFFFFFF   # no hole
            assert a[TCP].flags == 0x10 and b[TCP].flags & ~0x09 == 0x10     # flags
            assert a[TCP].options == b[TCP].options                           # options
            assert (a[IP].ttl, a[IP].tos) == (b[IP].ttl, b[IP].tos)           # TTL, TOS
        if len(members) > 1:
            assert pkt[TCP].seq == first.seq and pkt[TCP].flags == 0x10 | (members[-1][TCP].flags & 0x09)
    assert i == len(frames)


def test_a_run_with_a_bad_checksum_goes_up_as_the_frames_it_was_made_of():
    # The run's checksum test is made once, on the sum of its segments' sums: one bad
    # byte in the seventh segment fails it, and the ten frames go up as they came.
    frames = [peer_frame(101 + i * 1000, 5001, 0x10, bytes([i]) * 1000, corrupt=(i == 6))
              for i in range(10)]
    items = [(memoryview(f), None) for f in frames]
    assert gro.coalesce(items, lambda a: a == ME) == items
    # Without the bad byte the same ten join into one segment, checked, marked DATA_VALID.
    good = [(memoryview(peer_frame(101 + i * 1000, 5001, 0x10, bytes([i]) * 1000)), None)
            for i in range(10)]
    (joined, vh), = gro.coalesce(good, lambda a: a == ME)
    assert vh == gro.VALID_VH and bytes(Ether(bytes(joined))[TCP].payload) == b"".join(
        bytes([i]) * 1000 for i in range(10))


def test_through_the_stack_only_the_bad_segment_of_a_run_is_lost():
    stack, iface = tap_host(False)
    sock, iss = connect(stack, iface, False, rcvbuf=1 << 20)
    batch = [peer_frame(101 + i * 1000, iss + 1, 0x10, bytes([i]) * 1000, ts=(101, 0),
                        corrupt=(i == 6)) for i in range(10)]
    stack.input(iface, batch, 2 * S)
    assert stack.tcp.stats.rcvbadsum == 1
    assert received(stack, sock) == b"".join(bytes([i]) * 1000 for i in range(6))
    c = sock.conn
    # Held out of order past the hole: segments 7-9, as offsets from rcv_nxt.
    assert c.rcv_nxt == 101 + 6000 and sorted(c.ooo.ranges()) == [(1000, 4000)]


def test_a_segment_that_would_end_its_run_at_once_goes_up_as_it_came():
    # ACK, then 1 byte with PSH, then FIN (a request's client): nothing can join the PSH or
    # the FIN segment, so each goes up untouched, in order, with its own virtio header.
    frames = [peer_frame(101, 5001, 0x10), peer_frame(101, 5001, 0x18, b"x"), peer_frame(102, 5001, 0x11)]
    items = [(memoryview(f), None) for f in frames]
    assert gro.coalesce(items, lambda a: a == ME) == items
    # After a run of its flow it closes the run and follows it.
    run = [peer_frame(101, 5001, 0x10, b"a" * 100), peer_frame(201, 5001, 0x10, b"b" * 100)]
    late = peer_frame(900, 5001, 0x18, b"c")                 # PSH, not continuing the run
    out = gro.coalesce([(memoryview(f), None) for f in run + [late]], lambda a: a == ME)
    assert len(out) == 2 and bytes(out[1][0]) == late and out[1][1] is None
    assert len(bytes(Ether(bytes(out[0][0]))[TCP].payload)) == 200


# -- autosizing ---------------------------------------------------------------------------------

def test_a_default_listener_scales_its_window_and_grows_its_buffer_under_load():
    stack, iface = tap_host(False)
    sock, iss = connect(stack, iface, False)
    c = sock.conn
    assert c.rcv_wscale > 0 and c.rcv_wscale == 7            # from recvbuf_max (4 MiB)
    start = c.rcv_buf.capacity
    seq, now = 101, 2 * S
    for _ in range(200):                                       # a sender that fills the window
        room = c.rcv_wnd
        frames = []
        while room >= 1448:
            frames.append(peer_frame(seq, iss + 1, 0x10, bytes(1448), ts=(now // 1000, 0)))
            seq += 1448
            room -= 1448
        stack.input(iface, frames, now)
        received(stack, sock)
        now += 2000
        iface.txq.clear()
    assert c.rcv_buf.capacity > 8 * start and stack.tcp.stats.rcvbufauto >= 3
    assert c.rcv_wnd > 8 * start
