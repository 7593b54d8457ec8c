"""The learning bridge in the core (iface/if_bridge.py): forwarding decisions, learning
limits, member flags, ageing under a virtual clock, what brconfig is shown."""

import errno

import pytest

from iopkt_fs.stack.config import V4_HC, StackConfig
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_PROMISC, IFT_ETHER
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.time import MICROS_PER_SECOND as S

A, B, C = (bytes.fromhex(h) for h in ("0a0000000001", "0a0000000002", "0a0000000003"))
BCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes) -> bytes:
    return dst + src + b"\x88\xb5" + bytes(46)     # a local experimental EtherType


@pytest.fixture
def br():
    stack = Stack(StackConfig(seed=3, variant=V4_HC))
    ports = []
    for n in range(3):
        p = stack.new_interface("p", n, kind=IFT_ETHER, mac=bytes((2, 0, 0, 0, 0, 0x10 + n)),
                                flags=IFF_BROADCAST | IFF_MULTICAST)
        stack.up(p)
        ports.append(p)
    bridge0 = stack.create("bridge0")
    bridge = bridge0.driver
    for p in ports:
        bridge.verbs["add"]([p.name])
    stack.up(bridge0)
    return stack, bridge, ports


def out(ports) -> list[int]:
    counts = [len(p.txq) for p in ports]
    for p in ports:
        p.txq.clear()
    return counts


def test_flood_learn_then_forward_to_one_port(br):
    stack, bridge, ports = br
    assert all(p.flags & IFF_PROMISC for p in ports)
    stack.input(ports[0], [frame(BCAST, A)], 0)
    assert out(ports) == [0, 1, 1]
    stack.input(ports[1], [frame(C, B)], 0)        # C unknown: every DISCOVER port but p1
    assert out(ports) == [1, 0, 1]
    stack.input(ports[1], [frame(A, B)], 0)        # A learned on p0
    assert out(ports) == [1, 0, 0]
    stack.input(ports[0], [frame(A, C)], 0)        # for p0's own side: filtered
    assert out(ports) == [0, 0, 0] and bridge.stats.filtered == 1
    assert {e.mac: e.iface.name for e in bridge.cache.values()} == {A: "p0", B: "p1", C: "p0"}


def test_own_frames_and_bpdus_are_not_forwarded(br):
    stack, bridge, ports = br
    stack.input(ports[0], [frame(BCAST, ports[2].mac), frame(bytes.fromhex("0180c2000000"), A)], 0)
    assert out(ports) == [0, 0, 0]
    assert (bridge.stats.own, bridge.stats.bpdu) == (1, 1)


def test_learning_discover_and_maxaddr(br):
    stack, bridge, ports = br
    bridge.verbs["-learn"](["p0"])
    stack.input(ports[0], [frame(BCAST, A)], 0)
    assert A not in bridge.cache
    bridge.verbs["-discover"](["p2"])
    out(ports)
    stack.input(ports[1], [frame(C, B)], 0)        # unknown unicast skips p2 now
    assert out(ports) == [1, 0, 0]
    bridge.verbs["maxaddr"](["1"])
    stack.input(ports[2], [frame(BCAST, C)], 0)
    assert list(bridge.cache) == [B]
    with pytest.raises(StackError) as e:
        bridge.verbs["static"](["p0", "02:00:00:00:00:99"])
    assert e.value.errno == errno.ENOSPC


def test_entries_age_out_at_the_prune_walk(br):
    stack, bridge, ports = br
    bridge.verbs["timeout"](["600"])
    stack.input(ports[0], [frame(BCAST, A)], 0)
    bridge.verbs["static"](["p1", "02:00:00:00:00:99"])
    assert stack.poll_at() is not None and stack.poll_at() <= 300 * S
    stack.poll(599 * S)
    assert A in bridge.cache
    stack.poll(900 * S)                            # the walk after expiry removes it
    assert A not in bridge.cache and bytes.fromhex("020000000099") in bridge.cache
    text = bridge.render(900 * S)
    assert "\t\t02:00:00:00:00:99 p1 0 flags=1<STATIC>" in text.splitlines()


def test_member_rules(br):
    stack, bridge, ports = br
    codes = {}
    other = stack.create("bridge1").driver
    for verb, args in (("add", ["p0"]), ("add", ["nope0"]), ("add", ["lo0"]), ("delete", ["lo0"])):
        with pytest.raises(StackError) as e:
            bridge.verbs[verb](args)
        codes[(verb, args[0])] = e.value.errno
    with pytest.raises(StackError) as e:
        other.verbs["add"](["p1"])
    assert e.value.errno == errno.EBUSY
    assert codes == {("add", "p0"): errno.EEXIST, ("add", "nope0"): errno.ENOENT,
                     ("add", "lo0"): errno.EINVAL, ("delete", "lo0"): errno.ENOENT}
    stack.destroy("bridge0")
    assert not any(p.flags & IFF_PROMISC or p.bridge or p.if_output for p in ports)


def test_our_output_on_a_member_goes_where_the_destination_was_learned(br):
    stack, bridge, ports = br
    stack.input(ports[2], [frame(BCAST, C)], 0)
    out(ports)
    stack.transmit(ports[0], frame(C, ports[0].mac))
    assert out(ports) == [0, 0, 1]
    stack.transmit(ports[0], frame(BCAST, ports[0].mac))
    assert out(ports) == [1, 1, 1]


def test_offload_work_is_finished_for_a_member_without_a_virtio_header(br):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from iopkt_fs.stack.wire.checksum import pseudo_header_sum_v4
    from iopkt_fs.stack.wire.virtio import HDR, NEEDS_CSUM

    stack, bridge, ports = br
    ports[0].vnet_hdr = 10                          # p0 is a TAP with IFF_VNET_HDR
    good = Ether(dst=C, src=A) / IP(src="10.0.0.1", dst="10.0.0.3") / TCP(sport=1, dport=2) / (b"x" * 100)
    right = bytes(good)
    partial = bytearray(right)
    seg_len = len(right) - 34
    psum = pseudo_header_sum_v4(bytes(partial[26:30]), bytes(partial[30:34]), 6, seg_len)
    psum = (psum & 0xFFFF) + (psum >> 16)
    partial[50:52] = psum.to_bytes(2, "big")
    vh = HDR.pack(NEEDS_CSUM, 0, 0, 0, 34, 16)
    stack.input(ports[2], [frame(BCAST, C)], 0)    # C lives behind p2 (no virtio header)
    out(ports)
    stack.input(ports[0], [vh + bytes(partial)], 0)
    sent = list(ports[2].txq)
    assert len(sent) == 1 and bytes(sent[0]) == right


def test_brconfig_is_among_the_shell_path_commands(tmp_path, monkeypatch):
    import os

    from iopkt_fs.cli import iopkt

    monkeypatch.setattr(iopkt.sys, "prefix", str(tmp_path))
    directory = iopkt.shell_path()
    assert os.access(os.path.join(directory, "brconfig"), os.X_OK)
    assert "iopkt brconfig" in open(os.path.join(directory, "brconfig")).read()


def test_ipv6_offload_work_is_finished_for_a_member_without_a_virtio_header(br):
    """A TCP/IPv6 super-frame from a TAP member (NEEDS_CSUM, GSO_TCPV6) leaves a plain
    member as MSS packets whose checksums scapy recomputes the same."""
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    from iopkt_fs.stack.wire.tcp import build_segment
    from iopkt_fs.stack.wire.virtio import GSO_TCPV6, HDR, NEEDS_CSUM

    stack, bridge, ports = br
    ports[0].vnet_hdr = 10
    src, dst = bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "03")
    payload = bytes(range(256)) * 12                          # 3072 bytes: three pieces of 1200
    seg = build_segment(src, dst, 1, 2, 1000, 1, 0x18, 512, b"", payload, partial=True)
    ip6 = bytes.fromhex("60000000") + len(seg).to_bytes(2, "big") + b"\x06\x40" + src + dst
    vh = HDR.pack(NEEDS_CSUM, GSO_TCPV6, 14 + 40 + 20, 1200, 54, 16)
    stack.input(ports[2], [frame(BCAST, C)], 0)
    out(ports)
    stack.input(ports[0], [vh + C + A + b"\x86\xdd" + ip6 + seg], 0)
    sent = [Ether(bytes(f)) for f in ports[2].txq]
    assert [len(bytes(p[TCP].payload)) for p in sent] == [1200, 1200, 672]
    for p in sent:
        ck = p[TCP].chksum
        del p[TCP].chksum
        assert Ether(bytes(p))[TCP].chksum == ck and p[IPv6].plen == 20 + len(bytes(p[TCP].payload))
    assert b"".join(bytes(p[TCP].payload) for p in sent) == payload
