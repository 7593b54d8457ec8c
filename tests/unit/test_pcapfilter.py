"""libpcap compiles tcpdump's expressions (cli/pcapfilter.py): real verdicts on real frames."""

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from iopkt_fs.cli.pcapfilter import Filter, FilterError


def test_ethernet_filters_are_libpcaps_verdicts():
    f = Filter("tcp port 80 and host 10.0.0.1", 1)
    assert f.instructions > 0
    assert f.matches(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=80)))
    assert not f.matches(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=81)))
    assert not f.matches(bytes(Ether() / IP(src="10.0.0.3", dst="10.0.0.2") / UDP(dport=80)))
    assert not f.matches(bytes(Ether() / ARP()))


def test_raw_ip_link_type_is_mapped_to_dlt_raw():
    f = Filter("icmp[icmptype] == icmp-echo", 101)
    assert f.matches(bytes(IP() / ICMP(type=8)))
    assert not f.matches(bytes(IP() / ICMP(type=0)))


def test_a_bad_expression_is_libpcaps_error():
    with pytest.raises(FilterError, match="syntax error"):
        Filter("port and and", 1)
