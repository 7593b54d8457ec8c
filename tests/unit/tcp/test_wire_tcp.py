"""wire/tcp.py: round trips (hypothesis), malformed input, and scapy as an oracle both ways."""

import struct

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, TCP

from iopkt_fs.stack.wire.checksum import ones_sum
from iopkt_fs.stack.wire.errors import Malformed
from iopkt_fs.stack.wire.tcp import (
    TcpFlags, TcpPacket, TcpRepr, build_segment, encode_options, encode_timestamp, parse_options,
    pseudo_sum,
)

SRC = bytes([10, 0, 0, 1])
DST = bytes([10, 0, 0, 2])
SRC6 = bytes(range(16))
DST6 = bytes(range(16, 32))

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def reprs(draw):
    syn = draw(st.booleans())
    ts = draw(st.none() | st.tuples(u32, u32))
    if syn:
        opts = dict(mss=draw(st.none() | u16), wscale=draw(st.none() | st.integers(0, 14)),
                    sack_permitted=draw(st.booleans()), timestamp=ts)
    else:
        room = 3 if ts else 4
        opts = dict(timestamp=ts,
                    sack_blocks=tuple(draw(st.lists(st.tuples(u32, u32), max_size=room))))
    flags = TcpFlags(draw(st.integers(0, 0xFF)))
    flags = flags | TcpFlags.SYN if syn else flags & ~TcpFlags.SYN
    return TcpRepr(draw(u16), draw(u16), draw(u32), draw(u32), flags, draw(u16),
                   draw(u16), payload=draw(st.binary(max_size=300)), **opts)


@given(reprs(), st.booleans())
@settings(max_examples=300)
def test_parse_emit_roundtrip(r, v6):
    src, dst = (SRC6, DST6) if v6 else (SRC, DST)
    data = r.to_bytes(src, dst)
    assert len(data) == r.buffer_len()
    pkt = TcpPacket.new_checked(data)
    assert pkt.verify_checksum(src, dst)
    assert TcpRepr.parse(pkt, src, dst) == r
    assert pkt.seg_len == r.seg_len


@given(st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_malformed(data):
    try:
        pkt = TcpPacket.new_checked(data)
        TcpRepr.parse(pkt)
    except Malformed:
        pass


@pytest.mark.parametrize("data", [b"", b"\x00" * 19])
def test_short(data):
    with pytest.raises(Malformed):
        TcpPacket.new_checked(data)


def test_bad_offsets():
    hdr = bytearray(build_segment(SRC, DST, 1, 2, 3, 4, 0x10, 5))
    hdr[12] = 4 << 4
    with pytest.raises(Malformed):
        TcpPacket.new_checked(hdr)
    hdr[12] = 6 << 4
    with pytest.raises(Malformed):
        TcpPacket.new_checked(hdr)


@pytest.mark.parametrize("opts", [
    b"\x02\x03\x05\xb4",           # MSS length 3
    b"\x03\x04\x07\x00",           # wscale length 4
    b"\x08\x0a\x00\x00",           # timestamp overrunning
    b"\x05\x03\x00\x00",           # SACK length not 2+8n
    b"\x01\x01\x01\x1e",           # kind 30 without length
    b"\x1e\x01\x00\x00",           # length 1
])
def test_bad_options(opts):
    with pytest.raises(Malformed):
        parse_options(opts)


def test_unknown_option_skipped_and_eol_stops():
    o = parse_options(b"\x1e\x04\xaa\xbb\x02\x04\x05\xb4\x00\x02\x04\x00")
    assert o.mss == 1460 and o.wscale is None


def test_wscale_clamped_to_14():
    assert parse_options(b"\x03\x03\x0f\x00").wscale == 14


def test_bad_checksum_is_malformed():
    data = bytearray(TcpRepr(1, 2, 3, 4, TcpFlags.ACK, 100, payload=b"hello").to_bytes(SRC, DST))
    data[-1] ^= 1
    with pytest.raises(Malformed):
        TcpRepr.parse(TcpPacket.new_checked(data), SRC, DST)


def test_checksum_of_large_segment_matches_definition():
    payload = (bytes(range(256)) * 256)[:65495]  # the largest payload an IPv4 datagram holds
    data = build_segment(SRC, DST, 1000, 80, 1, 2, 0x18, 65535, b"", memoryview(payload))
    assert len(data) == 20 + 65495
    assert ones_sum(data, pseudo_sum(SRC, DST, len(data))) == 0xFFFF


def test_options_are_word_aligned_and_bounded():
    blocks = tuple((i, i + 1) for i in range(4))
    for ts in (None, (1, 2)):
        o = encode_options(timestamp=ts, sack_blocks=blocks)
        assert len(o) % 4 == 0 and len(o) <= 40
        assert len(parse_options(o).sack_blocks) == (3 if ts else 4)


# -- scapy as an oracle ---------------------------------------------------------------------

def _scapy_opts(r: TcpRepr):
    out = []
    if r.mss is not None:
        out.append(("MSS", r.mss))
    if r.sack_permitted:
        out.append(("SAckOK", b""))
    if r.timestamp is not None:
        out.append(("Timestamp", r.timestamp))
    if r.wscale is not None:
        out.append(("WScale", r.wscale))
    if r.sack_blocks:
        out.append(("SAck", tuple(x for b in r.sack_blocks for x in b)))
    return out


@given(reprs())
@settings(max_examples=60, deadline=None)
def test_scapy_reads_what_we_emit(r):
    data = r.to_bytes(SRC, DST)
    ip = IP(src="10.0.0.1", dst="10.0.0.2", proto=6) / TCP(data)
    t = IP(bytes(ip))[TCP]  # rebuilt: scapy recomputes nothing for parsed fields
    assert (t.sport, t.dport, t.seq, t.ack, int(t.flags), t.window, t.urgptr) == \
        (r.src_port, r.dst_port, r.seq, r.ack, int(r.flags), r.window, r.urgent)
    assert bytes(t.payload) == r.payload
    opts = dict((k, v) for k, v in t.options if k not in ("NOP", "EOL"))
    if r.mss is not None:
        assert opts["MSS"] == r.mss
    if r.wscale is not None:
        assert opts["WScale"] == r.wscale
    assert ("SAckOK" in opts) == r.sack_permitted
    if r.timestamp:
        assert tuple(opts["Timestamp"]) == r.timestamp
    if r.sack_blocks:
        flat = tuple(x for b in r.sack_blocks for x in b)
        assert tuple(opts["SAck"]) == flat
    # scapy's own checksum of our bytes agrees with ours
    fresh = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(data)
    fresh[TCP].chksum = None
    assert IP(bytes(fresh))[TCP].chksum == struct.unpack_from("!H", data, 16)[0]


@given(reprs())
@settings(max_examples=60, deadline=None)
def test_we_read_what_scapy_emits(r):
    t = TCP(sport=r.src_port, dport=r.dst_port, seq=r.seq, ack=r.ack, flags=int(r.flags),
            window=r.window, urgptr=r.urgent, options=_scapy_opts(r))
    pkt = IP(src="10.0.0.1", dst="10.0.0.2") / t / r.payload
    seg = bytes(IP(bytes(pkt))[TCP])
    if (len(seg) - len(r.payload)) > 60:  # scapy does not enforce the 40-byte option limit
        return
    got = TcpRepr.parse(TcpPacket.new_checked(seg), SRC, DST)
    assert got == r


@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4),
       st.integers(0, 65535), st.binary(min_size=16, max_size=16),
       st.binary(min_size=16, max_size=16))
def test_pseudo_sum_matches_checksum_module(s4, d4, length, s6, d6):
    from iopkt_fs.stack.wire.checksum import pseudo_header_sum_v4, pseudo_header_sum_v6
    for src, dst, ref in ((s4, d4, pseudo_header_sum_v4), (s6, d6, pseudo_header_sum_v6)):
        # equal as one's-complement sums (0 and 0xffff are the same number)
        assert ones_sum(b"", pseudo_sum(src, dst, length)) % 0xFFFF == ref(src, dst, 6, length) % 0xFFFF


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_encode_timestamp_is_the_general_encoding(tsval, tsecr):
    assert encode_timestamp(tsval, tsecr) == encode_options(timestamp=(tsval, tsecr))


@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_linux_syn_layout_reads_as_the_general_loop(mss, shift, tsval, tsecr):
    # MSS, SACK_PERM + TS, NOP WS: decoded without the loop; the same options put in
    # another order (WS first, then NOP padding) take the loop.
    area = encode_options(mss=mss, wscale=shift, sack_permitted=True, timestamp=(tsval, tsecr))
    assert len(area) == 20
    reordered = bytes((3, 3, shift, 1)) + area[:16]
    assert parse_options(area) == parse_options(reordered)
    assert parse_options(area).wscale == min(shift, 14)
