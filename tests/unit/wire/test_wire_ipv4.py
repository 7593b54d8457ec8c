"""IPv4 (RFC 791): header fields, length rules, options, fragments, checksum."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iopkt_fs.stack.wire import Malformed
from iopkt_fs.stack.wire.checksum import verify
from iopkt_fs.stack.wire.ipv4 import (
    IpProtocol,
    Ipv4Packet,
    Ipv4Repr,
    ip4,
    ip4_str,
    is_multicast,
    plain_header,
)

# 192.168.0.1 -> 192.168.0.199, UDP, DF, total length 0x73, checksum 0xb861: the classic
# worked example of the header checksum.
HEADER = bytes.fromhex("450000730000400040 11b861c0a80001c0a800c7".replace(" ", ""))
DATAGRAM = HEADER + bytes(0x73 - 20)


def with_bytes(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def test_fields_of_the_worked_example():
    pkt = Ipv4Packet.new_checked(DATAGRAM)
    assert pkt.version == 4 and pkt.header_len == 20 and pkt.total_len == 0x73
    assert pkt.tos == 0 and pkt.ident == 0 and pkt.ttl == 64
    assert pkt.protocol == IpProtocol.UDP and pkt.checksum == 0xB861
    assert pkt.dont_frag and not pkt.more_frags and pkt.frag_offset == 0
    assert not pkt.is_fragment
    assert pkt.src == ip4("192.168.0.1") and pkt.dst == ip4("192.168.0.199")
    assert pkt.options == b"" and len(pkt.payload) == 0x73 - 20
    assert pkt.verify_checksum()
    assert Ipv4Repr.parse(pkt) == Ipv4Repr(
        ip4("192.168.0.1"), ip4("192.168.0.199"), 17, 0x73 - 20, dont_frag=True
    )


def test_emit_reproduces_the_worked_example():
    repr_ = Ipv4Repr.parse(DATAGRAM)
    assert repr_.header_bytes() == HEADER
    assert repr_.to_bytes(bytes(repr_.payload_len)) == DATAGRAM


def test_plain_header_is_the_reprs_header():
    assert plain_header(ip4("192.168.0.1"), ip4("192.168.0.199"), 17, 0x73 - 20, 64, 0, 0,
                        True) == HEADER
    for args in [(ip4("10.0.0.1"), ip4("10.0.0.2"), 6, 40, 64, 0x10, 0xFFFF, False),
                 (ip4("255.255.255.255"), ip4("0.0.0.0"), 1, 65515, 255, 255, 1, True),
                 (bytes(4), bytes(4), 0, 0, 0, 0, 0, False)]:
        assert plain_header(*args) == Ipv4Repr(*args).header_bytes()
    with pytest.raises(ValueError):
        plain_header(ip4("10.0.0.1"), ip4("10.0.0.2"), 6, 65516, 64, 0, 0, False)


@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4),
       st.integers(0, 255), st.integers(0, 65515), st.integers(0, 255), st.integers(0, 255),
       st.integers(0, 0xFFFF), st.booleans())
def test_plain_header_checksum_is_the_reprs_for_any_fields(src, dst, proto, n, ttl, tos, ident, df):
    # Its checksum is written out in place of internet_checksum: every sum, the ones that
    # are a multiple of 0xffff included, must give the same field.
    args = (src, dst, proto, n, ttl, tos, ident, df)
    header = plain_header(*args)
    assert header == Ipv4Repr(*args).header_bytes() and verify(header)


def test_trailing_padding_is_cut_off():
    padded = DATAGRAM + b"\xee" * 10
    pkt = Ipv4Packet.new_checked(padded)
    assert len(pkt) == 0x73 and len(pkt.payload) == 0x73 - 20
    assert bytes(pkt.datagram) == DATAGRAM


@pytest.mark.parametrize("n", range(0x73))
def test_every_truncation_is_malformed(n):
    with pytest.raises(Malformed):
        Ipv4Packet.new_checked(DATAGRAM[:n])


@pytest.mark.parametrize("version", [0, 5, 6, 15])
def test_bad_version(version):
    with pytest.raises(Malformed, match="version"):
        Ipv4Packet.new_checked(with_bytes(DATAGRAM, 0, bytes([version << 4 | 5])))


@pytest.mark.parametrize("ihl", [0, 1, 4])
def test_ihl_below_five(ihl):
    with pytest.raises(Malformed):
        Ipv4Packet.new_checked(with_bytes(DATAGRAM, 0, bytes([0x40 | ihl])))


def test_ihl_beyond_buffer():
    with pytest.raises(Malformed):
        Ipv4Packet.new_checked(with_bytes(HEADER, 0, b"\x4f"))


@pytest.mark.parametrize("total", [0, 19, 0x74, 0xFFFF])
def test_total_length_lies(total):
    with pytest.raises(Malformed):
        Ipv4Packet.new_checked(with_bytes(DATAGRAM, 2, total.to_bytes(2, "big")))


def test_total_length_below_header_length_with_options():
    repr_ = Ipv4Repr(ip4("1.1.1.1"), ip4("2.2.2.2"), 6, 0, options=bytes(8))
    datagram = repr_.to_bytes()
    with pytest.raises(Malformed):
        Ipv4Packet.new_checked(with_bytes(datagram, 2, (24).to_bytes(2, "big")))


def test_bad_checksum():
    bad = with_bytes(DATAGRAM, 10, b"\xb8\x62")
    assert not Ipv4Packet.new_checked(bad).verify_checksum()
    with pytest.raises(Malformed, match="checksum"):
        Ipv4Repr.parse(bad)
    assert Ipv4Repr.parse(bad, verify=False) == Ipv4Repr.parse(DATAGRAM)


def test_options_are_exposed_raw_and_reemitted():
    # Record Route with room for two addresses, then End of Options List (RFC 791 3.1).
    options = bytes([7, 11, 4]) + bytes(8) + b"\x00"
    repr_ = Ipv4Repr(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 4, options=options)
    datagram = repr_.to_bytes(b"ping")
    assert datagram[0] == 0x48 and len(datagram) == 36
    assert verify(datagram[:32])
    pkt = Ipv4Packet.new_checked(datagram)
    assert pkt.options == options and bytes(pkt.payload) == b"ping"
    assert Ipv4Repr.parse(pkt) == repr_


def test_garbage_options_never_crash():
    # The option area is opaque: an option whose length byte lies is still just bytes.
    options = bytes([0x44, 0xFF, 0x01, 0x99])
    repr_ = Ipv4Repr(ip4("10.0.0.1"), ip4("10.0.0.2"), 17, 0, options=options)
    assert Ipv4Repr.parse(repr_.to_bytes()).options == options


def test_fragment_metadata():
    repr_ = Ipv4Repr(
        ip4("10.0.0.1"), ip4("10.0.0.2"), 17, 8, ident=0xBEEF, more_frags=True, frag_offset=1480
    )
    pkt = Ipv4Packet.new_checked(repr_.to_bytes(bytes(8)))
    assert pkt.more_frags and not pkt.dont_frag
    assert pkt.frag_offset == 1480 and pkt.is_fragment and pkt.ident == 0xBEEF
    last = Ipv4Repr(ip4("10.0.0.1"), ip4("10.0.0.2"), 17, 8, frag_offset=2960)
    assert Ipv4Packet.new_checked(last.to_bytes(bytes(8))).is_fragment
    assert last.is_fragment and not Ipv4Repr.parse(DATAGRAM).is_fragment


def test_reserved_flag_is_ignored_on_parse():
    evil = with_bytes(HEADER, 6, b"\xc0")
    evil = with_bytes(evil, 10, b"\x00\x00")
    from iopkt_fs.stack.wire.checksum import internet_checksum

    evil = with_bytes(evil, 10, internet_checksum(evil).to_bytes(2, "big"))
    repr_ = Ipv4Repr.parse(evil + bytes(0x73 - 20))
    assert repr_.dont_frag and repr_.header_bytes()[6] == 0x40


def test_quoted_datagram_needs_only_its_header():
    quote = DATAGRAM[:28]  # what an ICMP error carries: header + 8 bytes
    with pytest.raises(Malformed):
        Ipv4Packet.new_checked(quote)
    pkt = Ipv4Packet.new_quoted(quote)
    assert pkt.protocol == 17 and pkt.dst == ip4("192.168.0.199")
    assert bytes(pkt.payload) == bytes(8)
    with pytest.raises(Malformed):
        Ipv4Packet.new_quoted(quote[:19])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"options": b"\x01"},
        {"options": bytes(44)},
        {"frag_offset": 7},
        {"frag_offset": 65536},
        {"payload_len": 65536 - 20},
    ],
)
def test_unrepresentable_reprs_are_caller_errors(kwargs):
    fields = {"src": ip4("1.1.1.1"), "dst": ip4("2.2.2.2"), "protocol": 6, "payload_len": 0}
    fields.update(kwargs)
    with pytest.raises(ValueError) as info:
        Ipv4Repr(**fields).header_bytes()
    assert not isinstance(info.value, Malformed)


def test_to_bytes_checks_payload_length():
    with pytest.raises(ValueError):
        Ipv4Repr(ip4("1.1.1.1"), ip4("2.2.2.2"), 6, 3).to_bytes(b"ab")


def test_address_helpers():
    assert ip4("10.1.2.3") == b"\x0a\x01\x02\x03" and ip4_str(b"\x0a\x01\x02\x03") == "10.1.2.3"
    assert is_multicast(ip4("224.0.0.1")) and is_multicast(ip4("239.255.255.250"))
    assert not is_multicast(ip4("240.0.0.1")) and not is_multicast(ip4("223.255.255.255"))


@pytest.mark.parametrize(
    "text", ["1.2.3", "1.2.3.4.5", "1.2.3.256", "a.b.c.d", "1.2.3.-4", "", "1..2.3"]
)
def test_ip4_rejects_bad_text(text):
    with pytest.raises(ValueError):
        ip4(text)
