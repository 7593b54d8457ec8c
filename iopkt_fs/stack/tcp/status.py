"""``TcpStatus``: one connection's (or listener's) figures as ``N/status`` and ``netstat``
show them. A value, built by ``Connection.status()`` and ``TcpSocket.status()``; its own
module so neither has to import the layer for it."""

from __future__ import annotations

import attrs


@attrs.frozen
class TcpStatus:
    """What ``N/status`` shows for one connection (times in µs, sizes in bytes)."""

    state: str
    local: tuple[bytes, int]
    remote: tuple[bytes, int]
    sendq: int
    recvq: int
    srtt: int | None
    rttvar: int
    rto: int
    cwnd: int
    ssthresh: int
    smss: int
    snd_wnd: int
    rcv_wnd: int
    retransmits: int
    sack: bool
    timestamps: bool
    wscale: tuple[int, int] | None
    congctl: str
    in_recovery: bool

    def render(self) -> str:
        def ms(v):
            return "-" if v is None else f"{v / 1000:.1f}"
        ws = f"{self.wscale[0]},{self.wscale[1]}" if self.wscale else "-"
        return (f"{self.state} sendq {self.sendq} recvq {self.recvq} srtt {ms(self.srtt)} "
                f"rttvar {ms(self.rttvar)} rto {ms(self.rto)} cwnd {self.cwnd} "
                f"ssthresh {self.ssthresh} mss {self.smss} retrans {self.retransmits} "
                f"sack {int(self.sack)} ts {int(self.timestamps)} wscale {ws} "
                f"cc {self.congctl}\n")
