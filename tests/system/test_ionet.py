"""Legacy io-net drivers through the shim, as a user sees them: a /dev/io-net/enN node
(what waitfor looks for), replies written by devn-pcap, umount unloading it, and name=/unit=
refused with "unknown option"."""

import os

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from iopkt_testutil import wait_until

pytestmark = pytest.mark.system
OURS = "02:00:00:00:00:01"     # devn-pcap's default station address
PEER = "02:00:00:00:00:99"


def test_pcap_driver_through_the_files(make_stack, tmp_path):
    src, out = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(src), [
        Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER, psrc="10.220.0.9", pdst="10.220.0.2"),
        Ether(src=PEER, dst=OURS) / IP(src="10.220.0.9", dst="10.220.0.2") / ICMP(id=7, seq=1) / b"ping",
    ])
    sp = make_stack(tcpip="", args=[])
    assert sp.start().returncode == 0
    ionet = os.path.join(sp.prefix, "dev", "io-net")
    assert os.listdir(ionet) == []
    refused = sp.run("iopkt", "mount", "-T", "io-pkt", "-o", f"name=wan,in={src}", "devn-pcap")
    assert refused.returncode == 1
    assert "unknown option" in sp.run("sloginfo").stdout
    assert os.listdir(ionet) == []
    loaded = sp.run("iopkt", "mount", "-T", "io-net", "-o", f"in={src},out={out}", "pcap")
    assert loaded.returncode == 0, loaded.stderr
    assert os.listdir(ionet) == ["en0"]           # waitfor /dev/io-net/en0 would succeed
    assert open(os.path.join(ionet, "en0")).read().startswith("en0: flags=80008802<BROADCAST,SIMPLEX,MULTICAST,SHIM> mtu 1500\n")
    # Replay starts when the interface comes up with an address.
    assert sp.run("iopkt", "ifconfig", "en0", "10.220.0.2/24").returncode == 0

    def replies():
        try:
            return [p for p in rdpcap(str(out)) if ARP in p and p[ARP].op == 2 or ICMP in p and p[ICMP].type == 0]
        except Exception:
            return []
    assert wait_until(lambda: len(replies()) == 2, 5)
    arp, echo = sorted(replies(), key=lambda p: ICMP in p)
    assert (arp[ARP].psrc, arp[ARP].hwsrc, arp[ARP].pdst) == ("10.220.0.2", OURS, "10.220.0.9")
    assert (echo[IP].src, echo[IP].dst, echo[ICMP].id, echo[Raw].load) == ("10.220.0.2", "10.220.0.9", 7, b"ping")
    # Native interfaces cannot be unmounted; the legacy one can.
    native = sp.run("iopkt", "umount", os.path.join(ionet, "lo0"))
    assert native.returncode == 1
    gone = sp.run("iopkt", "umount", os.path.join(ionet, "en0"))
    assert gone.returncode == 0, gone.stderr
    assert os.listdir(ionet) == []
    assert "en0" not in sp.run("iopkt", "ifconfig", "-l").stdout


def test_explicit_shim_syntax(make_stack, tmp_path):
    """io-pkt -d shim "devn-pcap opts": the shim told which io-net driver to run (DOC-SHIM)."""
    out = tmp_path / "out.pcap"
    sp = make_stack(args=["-d", "shim", f"devn-pcap out={out}", "-d", "shim", "devnp-loop"])
    assert sp.start().returncode == 0
    assert os.listdir(os.path.join(sp.prefix, "dev", "io-net")) == ["en0"]
    log = sp.run("sloginfo").stdout
    assert f"shim devn-pcap out={out}" in log
    assert "Unable to init devnp-shim: devnp-loop is not an io-net driver" in log
