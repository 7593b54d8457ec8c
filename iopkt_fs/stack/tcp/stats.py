"""Protocol counters with NetBSD's ``tcpstat`` names (``sys/netinet/tcp_var.h``).

``TcpStats`` has one int per counter, named as NetBSD names them without the ``tcps_``
prefix, so ``netstat -s -p tcp`` can be rendered in NetBSD's format later. Ours, not
NetBSD's, are marked: the RFC 5961 challenge ACKs, the RFC 6675/NewReno recovery events,
``rcvoodrop`` (out-of-order data refused: too many holes) and ``rcvnots`` (segments
dropped for lacking a timestamp, RFC 7323 3.2).
"""

from __future__ import annotations

NAMES = (
    # connections
    "connattempt", "accepts", "connects", "drops", "conndrops", "closed", "listendrop",
    "badsyn",
    # timers
    "segstimed", "rttupdated", "delack", "timeoutdrop", "rexmttimeo", "persisttimeo",
    "keeptimeo", "keepprobe", "keepdrops", "persistdrops",
    # output
    "sndtotal", "sndpack", "sndbyte", "sndrexmitpack", "sndrexmitbyte", "sndacks",
    "sndprobe", "sndwinup", "sndctrl", "sndrst",
    # input
    "rcvtotal", "rcvpack", "rcvbyte", "rcvbadsum", "rcvbadoff", "rcvshort", "rcvduppack",
    "rcvdupbyte", "rcvpartduppack", "rcvpartdupbyte", "rcvoopack", "rcvoobyte",
    "rcvpackafterwin", "rcvbyteafterwin", "rcvafterclose", "rcvwinprobe", "rcvdupack",
    "rcvacktoomuch", "rcvackpack", "rcvackbyte", "rcvwinupd", "pawsdrop", "rcvoodrop",
    "rcvnots",
    "noport",
    # syncache / cookies (NetBSD tcps_sc_*)
    "sc_added", "sc_completed", "sc_dropped", "sc_sendcookie", "sc_recvcookie",
    "sc_bad_cookie",
    # ours
    "challenge_ack", "challenge_ack_limited", "fastrexmt", "recovery", "sack_recovery",
    "partialack", "sackblocks_sent", "sack_rcvblocks", "tw_reused", "icmp_ignored",
)


class TcpStats:
    __slots__ = NAMES

    def __init__(self) -> None:
        for n in NAMES:
            setattr(self, n, 0)

    def as_dict(self) -> dict[str, int]:
        """A snapshot keyed by the NetBSD field name (``tcps_sndtotal`` ...)."""
        return {f"tcps_{n}": getattr(self, n) for n in NAMES}

    def render(self) -> str:
        """One ``Name: value`` line per counter (the ``stats`` file format)."""
        return "".join(f"tcps_{n}: {getattr(self, n)}\n" for n in NAMES)
