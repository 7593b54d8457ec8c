"""Packet-buffer accounting (stack/mbuf.py): chains, the bound, the once-only log line,
netstat -m's NetBSD format, and a stack whose pool runs out under load."""

import ipaddress

from iopkt_fs.stack import slog
from iopkt_fs.stack.config import StackConfig, V4_HC
from iopkt_fs.stack.errors import StackError
from iopkt_fs.stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFT_ETHER
from iopkt_fs.stack.mbuf import EXHAUSTED, MSIZE, MT_DATA, MT_HEADER, MT_SONAME, MbufPool, render_netstat
from iopkt_fs.stack.stack import Stack
from iopkt_fs.stack.tcp.socket import IPPROTO_TCP, SO_RCVBUF, SO_SNDBUF, SOL_SOCKET, TCP_NODELAY
from tests.unit.inet.inet_helpers import (
    OUR_IP, OUR_MAC, PEER_IP, echo_frame, learn_peer, parse_icmp, sent, udp_frame,
)


class Log(list):
    def __call__(self, severity, text, major=14):
        self.append((severity, text))


def test_chains_are_netbsds():
    p = MbufPool(mclbytes=2048)
    assert p.chain(100) == (1, 0)                 # fits in the header mbuf
    assert p.chain(1500) == (1, 1)
    assert p.chain(5000) == (3, 3)
    assert p.chain(32768, MT_DATA) == (16, 16)
    assert p.chain(0, MT_SONAME) == (1, 0)
    assert MbufPool(mclbytes=4096).chain(5000) == (2, 2)


def test_take_give_by_type_and_back_to_zero():
    p = MbufPool()
    assert p.take(1500) and p.take(0, MT_SONAME) and p.take(4096, MT_DATA)
    assert p.mbufs == {MT_DATA: 2, MT_HEADER: 1, MT_SONAME: 1} and p.clusters == 3
    assert p.in_use == 4 * MSIZE + 3 * 2048
    p.give(1500)
    p.give(0, MT_SONAME)
    p.give(4096, MT_DATA)
    assert p.mbufs_in_use == 0 and p.clusters == 0 and p.in_use == 0
    assert p.peak_bytes == 4 * MSIZE + 3 * 2048


def test_the_bound_refuses_counts_and_logs_once():
    log = Log()
    p = MbufPool(nmbclusters=16, log=log)      # 32 KiB, mbufs included
    assert p.limit == 16 * 2048
    taken = 0
    for _ in range(100):                       # bounded: the pool says no well before
        if not p.take(1500):
            break
        taken += 1
    assert taken == 32768 // (MSIZE + 2048)
    assert not p.take(1500) and not p.admit(1500)
    assert p.denied == 3 and log == [(slog.WARNING, EXHAUSTED)]
    assert EXHAUSTED == "Mbufs exhausted.  May be temporarily unable to handle userland IO"
    assert p.take(100)                         # a small packet still fits in what is left
    assert p.in_use <= p.limit
    # A forced charge (ring storage already in the window) passes the bound but is counted.
    assert p.take(4096, MT_DATA, force=True) and p.in_use > p.limit


def test_default_bound_is_64_mib_of_clusters():
    assert MbufPool().nmbclusters == 32768
    assert MbufPool(mclbytes=16384).limit == 64 << 20
    assert Stack(StackConfig(seed=1)).sysctl.get("kern.mbuf.nmbclusters") == 32768


def test_drain_routines_run_before_refusing_input():
    p = MbufPool(nmbclusters=16)
    held = []
    while p.take(1500):
        held.append(1500)

    def drain():
        p.give(held.pop())
    p.drain_routines.append(drain)
    assert p.admit(1500) and p.drains == 1 and p.denied == 1   # the failed take above


def test_caches_keep_freed_objects_allocated_unless_cache_0():
    for cache, clusters_kept in ((True, 64), (False, 0)):
        p = MbufPool(cache=cache, pkt_cache=64, mbuf_cache=128)
        for _ in range(100):
            p.take(1500)
        for _ in range(100):
            p.give(1500)
        assert p.in_use == 0
        assert p.cached_clusters == clusters_kept
        assert p.cached_mbufs == (100 if cache else 0)
        assert (p.allocated_bytes > 0) == cache


def test_netstat_m_is_netbsds_format():
    p = MbufPool(pagesize=131072)
    for _ in range(3):
        p.take(1500)
        p.take(0, MT_SONAME)
    p.take(32768, MT_DATA)
    p.denied, p.delayed, p.drains = 2, 1, 4
    text = render_netstat(p.figures())
    assert text == (
        "22 mbufs in use:\n"
        "\t16 mbufs allocated to data\n"
        "\t3 mbufs allocated to packet headers\n"
        "\t3 mbufs allocated to socket names and addresses\n"
        "19/64 mapped pages in use\n"
        "256 Kbytes allocated to network (16% in use)\n"
        "2 requests for memory denied\n"
        "1 requests for memory delayed\n"
        "4 calls to protocol drain routines\n")
    # Lines for types with nothing in use are left out, as NetBSD does.
    assert render_netstat(MbufPool().figures()).splitlines()[:2] == ["0 mbufs in use:", "0/0 mapped pages in use"]


# -- a stack whose pool runs out ---------------------------------------------------------

LO = bytes([127, 0, 0, 1])


def _host(log, **config):
    # IPv4 traffic only: v4-hc keeps IPv6's DAD solicitation out of the frames counted.
    config.setdefault("variant", V4_HC)
    stack = Stack(StackConfig(seed=5, **config), log=log)
    en0 = stack.new_interface("en", 0, kind=IFT_ETHER, mac=OUR_MAC, flags=IFF_BROADCAST | IFF_MULTICAST)
    stack.add_address(en0, ipaddress.ip_address(OUR_IP), 24)
    en0.txq.clear()
    stack.take_tx()
    learn_peer(stack, en0)
    return stack, en0


def _settle(stack, now, limit=200):
    for _ in range(limit):
        stack.poll(now)
        nxt = stack.poll_at()
        if nxt is None or nxt > now:
            return


def _tcp_pair(stack, now):
    tcp = stack.tcp
    lst = tcp.socket()
    lst.bind(LO, 7)
    lst.listen(2)
    cli = tcp.socket()
    for name in (SO_SNDBUF, SO_RCVBUF):
        cli.setsockopt(SOL_SOCKET, name, 4096)
        lst.setsockopt(SOL_SOCKET, name, 4096)
    cli.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)   # no Nagle wait for the small echoes
    cli.connect(LO, 7, now)
    _settle(stack, now)
    return cli, lst.accept()


def _echo(stack, cli, srv, data, now):
    assert cli.send(data, now) == len(data)
    _settle(stack, now)
    assert srv.recv(len(data), now) == data


def test_exhausted_pool_drops_counts_and_the_stack_keeps_serving():
    log = Log()
    stack, en0 = _host(log, nmbclusters=64)        # 128 KiB for every buffer
    pool = stack.mbufs
    cli, srv = _tcp_pair(stack, 0)
    _echo(stack, cli, srv, b"before", 0)          # the rings now hold storage
    rings = pool.in_use
    # The client's send ring and the server's receive ring got storage (4096 bytes each);
    # the two that carried nothing have none.
    assert pool.mbufs[MT_DATA] == pool.clusters == 2 * 2
    u = stack.inet.udp.socket()
    u.setsockopt("SO_RCVBUF", 1 << 20)            # the pool, not the socket, must run out
    u.bind(None, 9000)
    payload = bytes(1000)
    floods = 200                                   # 200 KB offered: more than the pool
    stack.input(en0, [udp_frame(5000, 9000, payload) for _ in range(floods)], 0)
    queued = len(u.rxq)
    udp = stack.inet.statistics()["udp"]
    # Every datagram was either queued, refused at the socket (no buffers: fullsock) or
    # dropped at the interface (no buffers for the frame: iqdrops).
    assert queued + udp["fullsock"] + en0.stats.iqdrops == floods
    assert queued < floods and en0.stats.iqdrops + udp["fullsock"] > 0
    assert pool.denied == en0.stats.iqdrops + udp["fullsock"]
    assert log.count((slog.WARNING, EXHAUSTED)) == 1
    # Bounded: what is held never passes the limit (ring storage was charged below it).
    assert pool.peak_bytes <= pool.limit and u.rx_bytes == queued * 1000
    f = pool.figures()
    assert (f["mbufs_header"], f["mbufs_soname"]) == (queued, queued)
    # Out of buffers, the drain routines ran (NetBSD m_reclaim): TCP gave back the
    # connection's empty rings: the server's receive ring (its data was read) went; the
    # client's send ring still holds "before" until the delayed ACK comes, so it stays.
    assert pool.drains > 0 and stack.tcp.stats.drain > 0
    assert not srv.conn.rcv_buf.allocated and len(cli.conn.snd_buf) == len(b"before")
    assert f["clusters"] == queued + 2
    # The established connection keeps working: its rings come back on the next write.
    _echo(stack, cli, srv, b"during", 0)
    # The user reads one datagram: buffers come back and ping is answered.
    u.recvfrom()
    assert pool.figures()["mbufs_header"] == queued - 1
    stack.input(en0, [echo_frame(data=b"x" * 56)], 0)
    (reply,) = sent(en0)
    assert parse_icmp(reply)[1].ident == 7
    # Reading everything gives every buffer back; of the rings only the client's send ring
    # (its data unacknowledged) stays: the server's, read empty, went in the ping's drain.
    while u.rxq:
        u.recvfrom()
    assert cli.conn.snd_buf.allocated and not srv.conn.rcv_buf.allocated
    assert pool.in_use == rings // 2 and pool.mbufs[MT_HEADER] == pool.mbufs[MT_SONAME] == 0
    # Closing the connection gives the rings back as well.
    cli.close(0)
    srv.close(0)
    _settle(stack, 0)
    u.close()
    assert pool.mbufs_in_use == 0 and pool.clusters == 0 and pool.in_use == 0
    assert log.count((slog.WARNING, EXHAUSTED)) == 1     # once per stack, as io-pkt


def test_a_send_with_no_buffers_is_delayed_not_lost():
    stack, en0 = _host(Log(), nmbclusters=16)
    u = stack.inet.udp.socket()
    u.setsockopt("SO_RCVBUF", 1 << 20)
    u.bind(None, 9000)
    stack.input(en0, [udp_frame(5000, 9000, bytes(1000)) for _ in range(40)], 0)
    cli, srv = _tcp_pair(stack, 0)                 # a handshake needs no ring storage
    try:
        cli.send(b"x" * 1000, 0)
        raise AssertionError("send should wait for buffers")
    except StackError as e:
        assert e.errno == 11
    assert stack.mbufs.delayed == 1
    while u.rxq:
        u.recvfrom()
    _echo(stack, cli, srv, b"now", 0)


def test_fragments_are_charged_and_drained_when_input_runs_out():
    from tests.unit.inet.inet_helpers import ether, ipv4
    from iopkt_fs.stack.wire.udp import UdpRepr
    stack, en0 = _host(Log(), nmbclusters=16)
    pool = stack.mbufs
    dgram = UdpRepr(5000, 9000, bytes(3000)).to_bytes(bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))
    first = ether(ipv4(PEER_IP, OUR_IP, 17, dgram[:1480], ident=9, mf=True))
    stack.input(en0, [first], 0)
    assert len(stack.inet.reass) == 1 and pool.mbufs[MT_HEADER] == 1 and pool.clusters == 1
    # Fill the rest with datagrams; when a frame cannot get in, ip_drain frees the queue.
    u = stack.inet.udp.socket()
    u.setsockopt("SO_RCVBUF", 1 << 20)
    u.bind(None, 9000)
    stack.input(en0, [udp_frame(5000, 9000, bytes(1000)) for _ in range(40)], 0)
    assert pool.drains >= 1 and len(stack.inet.reass) == 0
    assert stack.inet.statistics()["ip"]["fragdropped"] >= 1


def test_netstat_m_reads_the_mbuf_file(tmp_path):
    from iopkt_fs.cli import netstat
    p = MbufPool()
    p.take(1500)
    (tmp_path / "mbuf").write_text(p.render())
    assert netstat.mbufs(str(tmp_path)) == render_netstat(p.figures())
    assert netstat.mbufs(str(tmp_path)).startswith("1 mbufs in use:\n\t1 mbufs allocated to packet headers\n")


def test_the_fast_admission_bound_holds():
    for mcl in (2048, 4096, 16384):
        p = MbufPool(mclbytes=mcl)
        for n in (0, 1, 200, 201, 1500, mcl, mcl + 1, 9000, 65535):
            assert p.cost(n) <= 2 * n + p.slack
