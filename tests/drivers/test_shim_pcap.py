"""The legacy shim and devn-pcap: replay a scapy-made capture, check the replies it wrote."""

import errno
import io
import struct

import pytest
import trio
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap, wrpcap

from iopkt_fs.drivers import shim
from iopkt_fs.drivers.pcapfile import PcapError, PcapReader, PcapWriter
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_SHIM, flag_names

from drvtest_util import responder, wait_until

OUR_MAC = "02:00:00:00:00:01"     # devn-pcap's default
PEER_MAC = "02:aa:bb:cc:dd:ee"
OUR_IP, PEER_IP = "10.9.0.1", "10.9.0.2"


def capture(path, echoes=3):
    pkts = [Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP)]
    pkts += [Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / ICMP(id=77, seq=i) / (b"x" * 32)
             for i in range(echoes)]
    wrpcap(str(path), pkts)
    return [bytes(p) for p in pkts]


async def test_pcap_replay_and_replies(harness, tmp_path):
    sent = capture(tmp_path / "in.pcap")
    out = tmp_path / "out.pcap"
    counts = responder(harness, OUR_IP, OUR_MAC)
    driver = await harness.load("devn-pcap", f"in={tmp_path / 'in.pcap'},out={out}")
    iface = driver.interfaces[0]
    assert iface.name == "en0" and iface.flags & IFF_SHIM and "SHIM" in flag_names(iface.flags)
    assert driver.legacy and shim.ionet_nodes(harness.runtime) == {"en0": (driver, iface)}
    await wait_until(lambda: len(harness.frames.get("en0", [])) == len(sent))
    assert harness.frames["en0"] == sent and counts == {"arp": 1, "echo": 3}
    await wait_until(lambda: driver.obj.written == 4)
    replies = rdpcap(str(out))
    assert len(replies) == 4
    assert replies[0][ARP].op == 2 and replies[0][ARP].psrc == OUR_IP and replies[0][ARP].pdst == PEER_IP
    assert [(r[ICMP].type, r[ICMP].seq, r[IP].dst) for r in replies[1:]] == [(0, i, PEER_IP) for i in range(3)]
    assert all(r.src == OUR_MAC and r.dst == PEER_MAC for r in replies)
    assert "replayed 4 frames" in harness.log_text()

    # umount /dev/io-net/en0 is unload_driver: the node and the interface go away.
    harness.runtime.unload_driver(driver)
    assert shim.ionet_nodes(harness.runtime) == {}
    assert "en0" not in harness.stack.interface_names()


async def test_name_and_unit_are_unknown_options(harness, tmp_path):
    capture(tmp_path / "in.pcap")
    for options, key in [(f"in={tmp_path / 'in.pcap'},name=wm", "name"), ("unit=2", "unit"),
                         ("speed=100", "speed")]:
        with pytest.raises(StackError) as info:
            await harness.runtime.load_driver("devn-pcap", options)
        assert info.value.errno == errno.EINVAL and f"unknown option '{key}'" in info.value.message
        assert f"Unable to init devn-pcap: unknown option '{key}'" in harness.log_text()
    assert harness.runtime.drivers == [] and harness.stack.interface_names() == ["lo0"]
    # "pcap" resolves to the legacy devn-pcap (no devnp-pcap exists), lan= picks enN.
    driver = await harness.runtime.load_driver("pcap", "lan=3")
    assert [i.name for i in driver.interfaces] == ["en3"]


async def test_replay_waits_for_up_and_honours_delay(harness, tmp_path):
    sent = capture(tmp_path / "in.pcap", echoes=1)
    driver = await harness.runtime.load_driver("devn-pcap", f"in={tmp_path / 'in.pcap'},delay=100")
    iface = driver.interfaces[0]
    await trio.sleep(0.1)
    assert harness.frames == {} and driver.obj.replayed == 0
    harness.stack.up(iface)
    start = trio.current_time()
    await wait_until(lambda: len(harness.frames.get("en0", [])) == len(sent))
    assert trio.current_time() - start >= 0.09


async def test_bad_captures_refused(harness, tmp_path):
    ng = tmp_path / "ng.pcap"
    ng.write_bytes(struct.pack("<III", 0x0A0D0D0A, 28, 0x1A2B3C4D) + b"\0" * 16)
    raw = tmp_path / "raw.pcap"
    raw.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))   # LINKTYPE_RAW
    for path, text in [(ng, "pcapng"), (raw, "link type 101"), (tmp_path / "none.pcap", "No such file")]:
        with pytest.raises(StackError) as info:
            await harness.runtime.load_driver("devn-pcap", f"in={path}")
        assert text in info.value.message
    assert harness.stack.interface_names() == ["lo0"]


def test_pcapfile_against_scapy(tmp_path):
    frames = [bytes(Ether(src=PEER_MAC) / IP() / ICMP(seq=i)) for i in range(5)]
    path = tmp_path / "w.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i, frame in enumerate(frames):
            w.write(frame, ts=1700000000.25 + i)
    got = rdpcap(str(path))
    assert [bytes(p) for p in got] == frames and float(got[1].time) == pytest.approx(1700000001.25)
    # scapy's nanosecond files, and big-endian files, read back the same.
    wrpcap(str(tmp_path / "ns.pcap"), [Ether(x) for x in frames], nano=True)
    with open(tmp_path / "ns.pcap", "rb") as f:
        r = PcapReader(f)
        assert r.nanos and [d for _, d in r] == frames
    big = bytearray(path.read_bytes())
    swapped = io.BytesIO()
    swapped.write(struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    offset = 24
    while offset < len(big):
        sec, usec, incl, orig = struct.unpack_from("<IIII", big, offset)
        swapped.write(struct.pack(">IIII", sec, usec, incl, orig) + big[offset + 16:offset + 16 + incl])
        offset += 16 + incl
    swapped.seek(0)
    assert [d for _, d in PcapReader(swapped)] == frames
    # A truncated tail ends the replay cleanly, flagged.
    r = PcapReader(io.BytesIO(path.read_bytes()[:-7]))
    assert len(list(r)) == 4 and r.truncated
    with pytest.raises(PcapError):
        PcapReader(io.BytesIO(b"\x00" * 24))


LEGACY_SOURCE = '''
import errno

class TwoPortDriver:
    """A legacy driver with two NICs; port 1 refuses to transmit (ring full)."""
    def init(self, ion, options):
        self.ion, self.sent = ion, []
        if options:
            ion.log(2, "unknown option " + options)
            return errno.EINVAL
        self.lans = [ion.reg(bytes.fromhex("020000000a0%d" % i)) for i in range(2)]
        ion.set_pulse(2)
        return 0
    def rx_down(self, lan, frame):
        if lan == self.lans[1]:
            return errno.EAGAIN
        self.sent.append(frame)
        self.ion.tx_up(lan, frame)   # a looping "wire": what goes down comes back up
        return 0
    def pulse(self, now):
        pass
    def shutdown(self):
        self.down = True

io_net_dll_entry = TwoPortDriver
'''


async def test_shim_adapts_any_legacy_driver(harness, tmp_path):
    path = tmp_path / "devn-twoport.py"
    path.write_text(LEGACY_SOURCE)
    driver = await harness.load(str(path), None)
    en0, en1 = driver.interfaces
    assert (en0.name, en1.name) == ("en0", "en1") and en1.flags & IFF_SHIM
    frame = bytes(Ether(dst=PEER_MAC, src="02:00:00:00:0a:00") / IP() / ICMP())
    harness.send(en0, frame)
    harness.send(en1, frame)
    await wait_until(lambda: harness.frames.get("en0") == [frame])
    assert en1.stats.oerrors == 1 and en0.stats.oerrors == 0 and driver.obj.sent == [frame]
    obj = driver.obj
    harness.runtime.unload_driver(driver)
    assert obj.down and harness.stack.interface_names() == ["lo0"]
    with pytest.raises(StackError) as info:
        await harness.runtime.load_driver(str(path), "verbose")
    assert "unknown option verbose" in info.value.message


async def test_fault_options_reach_legacy_drivers(harness, tmp_path):
    sent = capture(tmp_path / "in.pcap", echoes=20)
    driver = await harness.load("devn-pcap", f"in={tmp_path / 'in.pcap'},fault_seed=3,fault_drop=50,fault_dir=rx")
    await wait_until(lambda: driver.fault.stats.frames == len(sent))
    await trio.sleep(0.02)
    assert len(harness.frames.get("en0", [])) == len(sent) - driver.fault.stats.dropped
    assert 0 < driver.fault.stats.dropped < len(sent)
