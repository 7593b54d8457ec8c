"""netstat -s -p tcp: the stats/tcp file's tcps_NAME lines back into TcpStats and out in
NetBSD's wording; the other protocols keep their own renderers."""

from iopkt_fs.cli import netstat
from iopkt_fs.stack.tcp.stats import NAMES, TcpStats, render_netstat


def _sample() -> TcpStats:
    st = TcpStats()
    for i, name in enumerate(NAMES):
        setattr(st, name, i * 7 % 5)     # zeros, ones (singular) and plurals
    st.sndtotal, st.rcvtotal, st.sndrexmitpack = 123456, 98765, 1
    return st


def test_from_lines_round_trip_and_tolerance():
    st = _sample()
    again = TcpStats.from_lines(st.render())
    assert again.as_dict() == st.as_dict()
    assert TcpStats.from_dict(st.as_dict()).as_dict() == st.as_dict()
    # Unprefixed names, unknown counters, junk lines and iterables are all fine.
    odd = TcpStats.from_lines(["sndtotal: 5", "tcps_future_counter: 9", "garbage", "x: y"])
    assert odd.sndtotal == 5 and odd.rcvtotal == 0


def test_netstat_s_p_tcp_renders_netbsd_wording(tmp_path):
    sock = tmp_path / "dev" / "socket"
    (sock / "stats").mkdir(parents=True)
    st = _sample()
    (sock / "stats" / "tcp").write_text(st.render())
    (sock / "stats" / "udp").write_text("ipackets: 3\nhdrops: 0\n")
    text = netstat.stats(str(sock), "tcp")
    assert text == render_netstat(st)
    assert text.startswith("tcp:\n\t123456 packets sent\n")
    assert "\t\t1 data packet (" in text          # singular where NetBSD says so
    both = netstat.stats(str(sock), None)
    # Protocol order ip, icmp, tcp, udp, arp; udp still rendered by netstat itself.
    assert both.startswith(render_netstat(st))
    assert both[len(render_netstat(st)):].startswith("udp:\n\t")
