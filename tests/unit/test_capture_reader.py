"""The capture reader behind if/IF/pcap (resmgr/capture.py), fed by a real core: the pcap
stream it serves, its bound, its drop count, and that nobody capturing costs nothing."""

import io
import ipaddress

from iopkt_fs.drivers.pcapfile import PcapReader
from iopkt_fs.resmgr import capture
from iopkt_fs.stack.config import V4_HC, StackConfig
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFT_ETHER
from iopkt_fs.stack.stack import Stack


def _stack():
    stack = Stack(StackConfig(seed=5, variant=V4_HC))
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=bytes.fromhex("020000000001"), flags=IFF_BROADCAST)
    stack.add_address(en0, ipaddress.ip_address("10.0.0.1"), 24)
    en0.txq.clear()
    stack.take_tx()
    return stack, en0


def _frame(n: int, size: int = 100) -> bytes:
    return b"\xff" * 6 + bytes.fromhex("020000000002") + b"\x88\xb5" + n.to_bytes(4, "big") + bytes(size - 18)


def test_both_directions_become_records_of_an_ethernet_pcap():
    stack, en0 = _stack()
    reader = capture.Reader(en0, stack, pid=1)
    en0.bpf.append(reader)
    stack.input(en0, [_frame(1), _frame(2)], 0)
    stack.transmit(en0, _frame(3))
    assert stack.take_socket_events() == [reader]        # the readiness queue names it once
    data = b"".join(iter(lambda: reader.take(7), b""))   # tiny reads: records split across them
    records = list(PcapReader(io.BytesIO(data), linktype=1))
    assert [r[1][14:18] for r in records] == [(1).to_bytes(4, "big"), (2).to_bytes(4, "big"),
                                              (3).to_bytes(4, "big")]
    assert (reader.recv, reader.drop, len(reader.queue)) == (3, 0, 0)


def test_a_reader_that_does_not_read_loses_records_not_the_stack():
    stack, en0 = _stack()
    reader = capture.Reader(en0, stack, pid=1)
    en0.bpf.append(reader)
    reader.take(24)                                      # the header only
    n = 2 * capture.QUEUE_BYTES // 1016
    stack.input(en0, [_frame(i, 1000) for i in range(n)], 0)
    assert en0.stats.ipackets == n                       # every frame went in regardless
    assert reader.recv == n and reader.drop > 0
    assert len(reader.queue) + reader.drop == n
    assert reader.queued_bytes <= capture.QUEUE_BYTES
    assert reader.status() == f"pid 1 recv {n} drop {reader.drop} queued {len(reader.queue)}\n"


def test_raw_ip_interfaces_get_linktype_raw_and_loopback_is_tapped_once():
    stack, _ = _stack()
    lo0 = stack.lo0
    reader = capture.Reader(lo0, stack, pid=1)
    lo0.bpf.append(reader)
    stack.inet.output(b"x" * 8, None, ipaddress.IPv4Address("127.0.0.1").packed, 17, 0)
    stack.poll(0)                                        # looped back in: not tapped again
    records = list(PcapReader(io.BytesIO(reader.take(1 << 16)), linktype=capture.LINKTYPE_RAW))
    assert len(records) == 1 and records[0][1][0] >> 4 == 4
