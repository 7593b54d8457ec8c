"""The TCP tunables a connection reads, as one frozen value.

``TcpConfig.from_sysctl(tree)`` reads the names the stack registers (``net.inet.tcp.*``,
``kern.somaxconn``, ``qnx.net.inet.tcp.*``); the layer builds a fresh one whenever it opens
a connection, so a ``sysctl -w`` applies to new connections and leaves running ones alone,
as on NetBSD. Fields with no sysctl (``rto_min``...) are layer constructor options.
"""

from __future__ import annotations

import attrs

from ..time import Duration, ms, seconds


@attrs.frozen
class TcpConfig:
    sendspace: int = 32768            # net.inet.tcp.sendspace
    recvspace: int = 32768            # net.inet.tcp.recvspace
    mssdflt: int = 536                # net.inet.tcp.mssdflt (RFC 9293 3.7.1 / RFC 1122 4.2.2.6)
    keepidle: Duration = seconds(14400)   # net.inet.tcp.keepidle (RFC 1122 4.2.3.6: >= 2 h)
    keepintvl: Duration = seconds(150)    # net.inet.tcp.keepintvl
    keepcnt: int = 8                  # net.inet.tcp.keepcnt
    msl: Duration = seconds(30)       # net.inet.tcp.msl; TIME-WAIT lasts 2*msl
    sack: bool = True                 # net.inet.tcp.sack.enable
    win_scale: bool = True            # net.inet.tcp.win_scale
    timestamps: bool = True           # net.inet.tcp.timestamps
    congctl: str = "newreno"          # net.inet.tcp.congctl.selected
    syncookies: bool = True           # net.inet.tcp.syncookies
    somaxconn: int = 128              # kern.somaxconn
    delack: bool = True               # qnx.net.inet.tcp.qnx_delack
    delack_time: Duration = ms(200)   # RFC 1122 4.2.3.2: "MUST be less than 0.5 seconds"
    rto_initial: Duration = seconds(1)   # qnx.net.inet.tcp.rto (RFC 6298 2.1)
    rto_min: Duration = seconds(1)    # RFC 6298 2.4
    rto_max: Duration = seconds(60)   # RFC 6298 2.5
    drop_synfin: bool = True          # qnx.net.inet.tcp.drop_synfin
    syn_retries: int = 6              # SYN / SYN-ACK retransmissions before giving up
    data_retries: int = 12            # BSD TCP_MAXRXTSHIFT
    max_ooo_ranges: int = 32          # reassembly holes tracked per connection
    # Loss detection with SACK: RACK-TLP (RFC 8985) rather than RFC 6675's DupThresh (Linux
    # net.ipv4.tcp_recovery), and F-RTO for spurious timeouts (RFC 5682, Linux tcp_frto).
    rack: bool = True
    frto: bool = True
    # Socket buffer autotuning (NetBSD net.inet.tcp.{recv,send}buf_{auto,inc,max}). The
    # maxima are sized for these links (a TAP at ~1 GB/s with ~1 ms of queueing wants a
    # few MB in flight), not NetBSD's 256 KiB; the window scale is chosen from them.
    recvbuf_auto: bool = True
    recvbuf_inc: int = 16384
    recvbuf_max: int = 4 * 1024 * 1024
    sendbuf_auto: bool = True
    sendbuf_inc: int = 8192
    sendbuf_max: int = 4 * 1024 * 1024

    @classmethod
    def from_sysctl(cls, tree, **overrides) -> TcpConfig:
        def get(name, default):
            return tree.get(name) if name in tree else default

        d = cls()
        values = dict(
            sendspace=get("net.inet.tcp.sendspace", d.sendspace),
            recvspace=get("net.inet.tcp.recvspace", d.recvspace),
            mssdflt=get("net.inet.tcp.mssdflt", d.mssdflt),
            keepidle=seconds(get("net.inet.tcp.keepidle", d.keepidle // 1_000_000)),
            keepintvl=seconds(get("net.inet.tcp.keepintvl", d.keepintvl // 1_000_000)),
            keepcnt=get("net.inet.tcp.keepcnt", d.keepcnt),
            msl=seconds(get("net.inet.tcp.msl", d.msl // 1_000_000)),
            sack=bool(get("net.inet.tcp.sack.enable", d.sack)),
            win_scale=bool(get("net.inet.tcp.win_scale", d.win_scale)),
            timestamps=bool(get("net.inet.tcp.timestamps", d.timestamps)),
            congctl=str(get("net.inet.tcp.congctl.selected", d.congctl)),
            syncookies=bool(get("net.inet.tcp.syncookies", d.syncookies)),
            somaxconn=get("kern.somaxconn", d.somaxconn),
            delack=bool(get("qnx.net.inet.tcp.qnx_delack", d.delack)),
            rto_initial=ms(get("qnx.net.inet.tcp.rto", d.rto_initial // 1000)),
            drop_synfin=bool(get("qnx.net.inet.tcp.drop_synfin", d.drop_synfin)),
            recvbuf_auto=bool(get("net.inet.tcp.recvbuf_auto", d.recvbuf_auto)),
            recvbuf_inc=get("net.inet.tcp.recvbuf_inc", d.recvbuf_inc),
            recvbuf_max=get("net.inet.tcp.recvbuf_max", d.recvbuf_max),
            sendbuf_auto=bool(get("net.inet.tcp.sendbuf_auto", d.sendbuf_auto)),
            sendbuf_inc=get("net.inet.tcp.sendbuf_inc", d.sendbuf_inc),
            sendbuf_max=get("net.inet.tcp.sendbuf_max", d.sendbuf_max),
        )
        values.update(overrides)
        return cls(**values)
