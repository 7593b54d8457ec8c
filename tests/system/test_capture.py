"""Live capture (``if/IF/pcap``, the bpf analogue) read by tshark and by iopkt tcpdump,
against the Linux kernel in a namespace over a TAP the test makes."""

import io
import os
import select
import sys
import subprocess
import time

import pytest

from iopkt_fs import client
from iopkt_fs.drivers.pcapfile import PcapReader
from iopkt_testutil import wait_until
from wanstack import KERNEL, STACK, receive_all, sh, wan_stack_fixture

pytestmark = pytest.mark.system
wan_stack = wan_stack_fixture("capt")


def _receive_all(listener, nbytes: int, port: int, ns: str) -> int:
    got, _ = receive_all(listener, STACK, port, nbytes, ns)
    return len(got)


def _stats(sp, name="wan0") -> dict:
    with open(sp.sock("if", name, "stats")) as f:
        return {k: v for k, _, v in (line.rstrip("\n").partition(": ") for line in f)}


def _pcapstat(sp, pid: int, name="wan0") -> dict:
    with open(sp.sock("if", name, "pcapstat")) as f:
        for line in f:
            words = line.split()
            if words[1] == str(pid):
                return {words[i]: int(words[i + 1]) for i in range(2, len(words), 2)}
    raise AssertionError(f"no reader of pid {pid} in pcapstat")


def test_tshark_decodes_the_live_capture(wan_stack):
    sp = wan_stack
    fields = ["ip.src", "ip.dst", "icmp.type", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
              "tcp.flags.syn", "tcp.flags.fin", "tcp.srcport"]
    argv = ["tshark", "-l", "-r", "-", "-T", "fields", "-E", "separator=|"]
    for f in fields:
        argv += ["-e", f]
    pcap = open(sp.sock("if", "wan0", "pcap"), "rb")
    tshark = subprocess.Popen(argv, stdin=pcap, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pcap.close()
    lines: list[list[str]] = []

    def collect(until, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            if select.select([tshark.stdout], [], [], 0.2)[0]:
                line = tshark.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n").split("|"))
        return until()

    nbytes = 300_000
    listener = client.announce("tcp!*!5050", prefix=sp.prefix)
    try:
        ping = sh("ip", "netns", "exec", sp.ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", STACK)
        assert ping.returncode == 0, ping.stdout
        assert _receive_all(listener, nbytes, 5050, sp.ns) == nbytes
        fins = lambda: sum(1 for l in lines if len(l) == len(fields) and l[7] == "1")  # noqa: E731
        assert collect(lambda: fins() >= 2), lines[-5:]
    finally:
        listener.close()
        tshark.terminate()     # parked in a read: answered EINTR, tshark exits
        tshark.wait(timeout=10)
    rows = [dict(zip(fields, l)) for l in lines if len(l) == len(fields)]
    # ICMP: three echo requests from the kernel, three replies from us.
    requests = [r for r in rows if r["icmp.type"] == "8" and r["ip.src"] == KERNEL and r["ip.dst"] == STACK]
    replies = [r for r in rows if r["icmp.type"] == "0" and r["ip.src"] == STACK and r["ip.dst"] == KERNEL]
    assert len(requests) == 3 and len(replies) == 3
    # TCP: the kernel's bytes cover ISN+1 .. ISN+1+N without gap or overlap, its FIN ends
    # there, and our last ACK acknowledges the FIN: sequence numbers as on the wire.
    tcp = [r for r in rows if r["tcp.seq_raw"]]
    theirs = [r for r in tcp if r["ip.src"] == KERNEL]
    ours = [r for r in tcp if r["ip.src"] == STACK]
    syn = next(r for r in theirs if r["tcp.flags.syn"] == "1")
    isn = int(syn["tcp.seq_raw"])
    synack = next(r for r in ours if r["tcp.flags.syn"] == "1")
    assert int(synack["tcp.ack_raw"]) == (isn + 1) % 2**32
    covered = sorted({(int(r["tcp.seq_raw"]), int(r["tcp.len"])) for r in theirs if int(r["tcp.len"])},
                     key=lambda piece: (piece[0] - isn) % 2**32)
    at = (isn + 1) % 2**32
    for seq, length in covered:
        assert seq == at, (seq, at)
        at = (at + length) % 2**32
    assert at == (isn + 1 + nbytes) % 2**32
    fin = next(r for r in theirs if r["tcp.flags.fin"] == "1")
    assert (int(fin["tcp.seq_raw"]) + int(fin["tcp.len"])) % 2**32 == at
    assert max((int(r["tcp.ack_raw"]) - isn) % 2**32 for r in ours) == nbytes + 2


def test_a_stalled_reader_never_stalls_traffic_and_counts_what_it_missed(wan_stack):
    sp = wan_stack
    before = _stats(sp)
    fd = os.open(sp.sock("if", "wan0", "pcap"), os.O_RDONLY)
    try:
        head = os.read(fd, 24)      # the file header; then it reads no more
        assert len(head) == 24
        listener = client.announce("tcp!*!5051", prefix=sp.prefix)
        try:
            nbytes = 20_000_000
            assert _receive_all(listener, nbytes, 5051, sp.ns) == nbytes
        finally:
            listener.close()
        # The transfer finished; once the link is quiet every frame it moved is counted.
        def quiet():
            a = _stats(sp)
            time.sleep(0.3)
            return a == _stats(sp)
        assert wait_until(quiet, 10, 0.1)
        after = _stats(sp)
        st = _pcapstat(sp, os.getpid())
        moved = sum(int(after[k]) - int(before[k]) for k in ("ipackets", "opackets"))
        assert st["recv"] == moved
        assert st["drop"] > 0
        assert st["recv"] == st["drop"] + st["queued"]
        # What is still queued is what it gets: whole records, in order.
        data = bytearray(head)
        while len(list(PcapReader(io.BytesIO(bytes(data)), linktype=1))) < st["queued"]:
            data += os.read(fd, 1 << 16)
        records = list(PcapReader(io.BytesIO(bytes(data)), linktype=1))
        # Every queued record came whole; whatever came later (an ARP probe ...) is either
        # read too or still queued, and nothing more was dropped.
        later = _pcapstat(sp, os.getpid())
        assert len(records) + later["queued"] == st["queued"] + later["recv"] - st["recv"]
        assert later["drop"] == st["drop"]
        # A non-blocking reader with nothing queued: the header, then EAGAIN.
        nb = os.open(sp.sock("if", "wan0", "pcap"), os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert len(os.read(nb, 24)) == 24
            with pytest.raises(BlockingIOError):
                os.read(nb, 65536)
        finally:
            os.close(nb)
    finally:
        os.close(fd)



def test_tcpdump_filters_with_libpcap_and_writes_a_pcap_file(wan_stack, tmp_path):
    sp = wan_stack
    out = tmp_path / "icmp.pcap"
    # -w: only what libpcap's filter passes, four records, then exit.
    dump = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "iopkt"), "tcpdump", "-i", "wan0",
                             "-n", "-c", "4", "-w", str(out), "icmp", "and", "host", KERNEL],
                            env=sp.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "iopkt"), "tcpdump", "-i", "wan0",
                                "-c", "2", "icmp[icmptype] == icmp-echoreply"],
                               env=sp.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: len(open(sp.sock("if", "wan0", "pcapstat")).read().splitlines()) == 2, 10)
        sh("ip", "-n", sp.ns, "neigh", "flush", "all")      # so ARP goes by too, and is filtered out
        ping = sh("ip", "netns", "exec", sp.ns, "ping", "-c", "2", "-i", "0.2", STACK)
        assert ping.returncode == 0
        _, err = dump.communicate(timeout=20)
        text, err2 = printed.communicate(timeout=20)
    finally:
        dump.kill()
        printed.kill()
    assert dump.returncode == 0, err
    assert "4 packets captured" in err
    decoded = sh("tshark", "-r", str(out), "-T", "fields", "-e", "icmp.type").stdout.split()
    assert decoded == ["8", "0", "8", "0"]
    lines = text.splitlines()
    assert len(lines) == 2 and all(f"IP {STACK} > {KERNEL}: ICMP echo reply" in l for l in lines), text
    # A bad expression is libpcap's error, exit 1.
    bad = sp.run("iopkt", "tcpdump", "-i", "wan0", "port", "nonsense-port")
    assert bad.returncode == 1 and bad.stderr.startswith("tcpdump: ")
