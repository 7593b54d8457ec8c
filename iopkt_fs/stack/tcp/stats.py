"""Protocol counters with NetBSD's ``tcpstat`` names (``sys/netinet/tcp_var.h``).

``TcpStats`` has one int per counter, named as NetBSD names them without the ``tcps_``
prefix, so ``netstat -s -p tcp`` can be rendered in NetBSD's format later. Ours, not
NetBSD's, are marked: the RFC 5961 challenge ACKs, the RFC 6675/NewReno recovery events,
RACK-TLP's losses and probes, DSACKs and their undos, F-RTO's spurious timeouts,
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
    "rttskipped", "rxtlost", "tlp_probes",
    # RACK-TLP (RFC 8985), DSACK (RFC 2883), F-RTO (RFC 5682); Linux's TCPDSACKRecv,
    # TCPDSACKUndo, TCPSACKReorder, TCPSpuriousRTOs have the same meaning
    "rack_lost", "rack_reo_timeo", "dsack_sent", "dsack_rcvd", "dsack_undo", "sack_reorder",
    "spurious_rto",
    "rcvbufauto", "sndbufauto",    # buffer autosizing steps
    "drain",                       # the pool ran dry: empty rings given back (pr_drain)
    "sndgso", "rcvgso",            # super-segments sent / received whole
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

    @classmethod
    def from_dict(cls, values: dict) -> TcpStats:
        """The inverse of ``as_dict``: keys with or without ``tcps_``, values int-able.
        Unknown names (a newer stack's counters) are ignored, missing ones stay 0."""
        stats = cls()
        known = set(NAMES)
        for key, value in values.items():
            name = key[5:] if key.startswith("tcps_") else key
            if name in known:
                setattr(stats, name, int(value))
        return stats

    @classmethod
    def from_lines(cls, text) -> TcpStats:
        """Parse ``render()``'s ``tcps_NAME: value`` lines (a string or an iterable of
        lines), what ``P/dev/socket/stats/tcp`` serves; other lines are skipped."""
        lines = text.splitlines() if isinstance(text, str) else text
        values = {}
        for line in lines:
            key, sep, value = line.partition(":")
            value = value.strip()
            if sep and value.lstrip("-").isdigit():
                values[key.strip()] = value
        return cls.from_dict(values)


# ``netstat -s -p tcp`` in NetBSD's wording (usr.bin/netstat/inet.c, tcp_stats): one
# (template, counters) pair per line; {0}/{1} are the counts, {s0}/{s1} their plural
# suffix, {es0} the "es" suffix. Counters NetBSD has and we do not (header prediction,
# PCB hash, ECN, signatures, SYN cache internals) print as 0.
_NETSTAT = (
    ("\t{0} packet{s0} sent", ("sndtotal",)),
    ("\t\t{0} data packet{s0} ({1} byte{s1})", ("sndpack", "sndbyte")),
    ("\t\t{0} data packet{s0} ({1} byte{s1}) retransmitted", ("sndrexmitpack", "sndrexmitbyte")),
    ("\t\t{0} ack-only packet{s0} ({1} delayed)", ("sndacks", "delack")),
    ("\t\t{0} URG only packet{s0}", ("sndurg",)),
    ("\t\t{0} window probe packet{s0}", ("sndprobe",)),
    ("\t\t{0} window update packet{s0}", ("sndwinup",)),
    ("\t\t{0} control packet{s0}", ("sndctrl",)),
    ("\t\t{0} send attempt{s0} resulted in self-quench", ("selfquench",)),
    ("\t{0} packet{s0} received", ("rcvtotal",)),
    ("\t\t{0} ack{s0} (for {1} byte{s1})", ("rcvackpack", "rcvackbyte")),
    ("\t\t{0} duplicate ack{s0}", ("rcvdupack",)),
    ("\t\t{0} ack{s0} for unsent data", ("rcvacktoomuch",)),
    ("\t\t{0} packet{s0} ({1} byte{s1}) received in-sequence", ("rcvpack", "rcvbyte")),
    ("\t\t{0} completely duplicate packet{s0} ({1} byte{s1})", ("rcvduppack", "rcvdupbyte")),
    ("\t\t{0} old duplicate packet{s0}", ("pawsdrop",)),
    ("\t\t{0} packet{s0} with some dup. data ({1} byte{s1} duped)",
     ("rcvpartduppack", "rcvpartdupbyte")),
    ("\t\t{0} out-of-order packet{s0} ({1} byte{s1})", ("rcvoopack", "rcvoobyte")),
    ("\t\t{0} packet{s0} ({1} byte{s1}) of data after window",
     ("rcvpackafterwin", "rcvbyteafterwin")),
    ("\t\t{0} window probe{s0}", ("rcvwinprobe",)),
    ("\t\t{0} window update packet{s0}", ("rcvwinupd",)),
    ("\t\t{0} packet{s0} received after close", ("rcvafterclose",)),
    ("\t\t{0} discarded for bad checksum{s0}", ("rcvbadsum",)),
    ("\t\t{0} discarded for bad header offset field{s0}", ("rcvbadoff",)),
    ("\t\t{0} discarded because packet too short", ("rcvshort",)),
    ("\t{0} connection request{s0}", ("connattempt",)),
    ("\t{0} connection accept{s0}", ("accepts",)),
    ("\t{0} connection{s0} established (including accepts)", ("connects",)),
    ("\t{0} connection{s0} closed (including {1} drop{s1})", ("closed", "drops")),
    ("\t{0} embryonic connection{s0} dropped", ("conndrops",)),
    ("\t{0} delayed free{s0} of tcpcb", ("delayed_free",)),
    ("\t{0} segment{s0} updated rtt (of {1} attempt{s1})", ("rttupdated", "segstimed")),
    ("\t{0} retransmit timeout{s0}", ("rexmttimeo",)),
    ("\t\t{0} connection{s0} dropped by rexmit timeout", ("timeoutdrop",)),
    ("\t{0} persist timeout{s0} (resulting in {1} dropped connection{s1})",
     ("persisttimeo", "persistdrops")),
    ("\t{0} keepalive timeout{s0}", ("keeptimeo",)),
    ("\t\t{0} keepalive probe{s0} sent", ("keepprobe",)),
    ("\t\t{0} connection{s0} dropped by keepalive", ("keepdrops",)),
    ("\t{0} correct ACK header prediction{s0}", ("predack",)),
    ("\t{0} correct data packet header prediction{s0}", ("preddat",)),
    ("\t{0} PCB hash miss{es0}", ("pcbhashmiss",)),
    ("\t{0} dropped due to no socket", ("noport",)),
    ("\t{0} connection{s0} drained due to memory shortage", ("connsdrained",)),
    ("\t{0} PMTUD blackhole{s0} detected", ("pmtublackhole",)),
    # Ours (RACK-TLP, DSACK, F-RTO): NetBSD has no such lines; worded as its neighbours.
    ("\t{0} segment{s0} marked lost by RACK ({1} by the reorder timer)",
     ("rack_lost", "rack_reo_timeo")),
    ("\t{0} tail loss probe{s0} sent", ("tlp_probes",)),
    ("\t{0} DSACK{s0} sent, {1} received", ("dsack_sent", "dsack_rcvd")),
    ("\t{0} recover{ies0} undone by DSACK", ("dsack_undo",)),
    ("\t{0} reordering event{s0} seen", ("sack_reorder",)),
    ("\t{0} spurious retransmit timeout{s0} (F-RTO)", ("spurious_rto",)),
    ("\t{0} bad connection attempt{s0}", ("badsyn",)),
    ("\t{0} SYN cache entries added", ("sc_added",)),
    ("\t\t{0} hash collision{s0}", ("sc_collisions",)),
    ("\t\t{0} completed", ("sc_completed",)),
    ("\t\t{0} aborted (no space to build PCB)", ("sc_aborted",)),
    ("\t\t{0} timed out", ("sc_timed_out",)),
    ("\t\t{0} dropped due to overflow", ("listendrop",)),
    ("\t\t{0} dropped due to bucket overflow", ("sc_bucketoverflow",)),
    ("\t\t{0} dropped due to RST", ("sc_reset",)),
    ("\t\t{0} dropped due to ICMP unreachable", ("sc_unreach",)),
    ("\t\t{0} delayed free of SYN cache entries", ("sc_delayed_free",)),
    ("\t{0} SYN,ACK{s0} retransmitted", ("sc_retransmitted",)),
    ("\t{0} duplicate SYN{s0} received for entries already in the cache", ("sc_dupesyn",)),
    ("\t{0} SYN{s0} dropped (no route or no space)", ("sc_dropped",)),
    ("\t{0} packet{s0} with bad signature", ("badsig",)),
    ("\t{0} packet{s0} with good signature", ("goodsig",)),
    ("\t{0} sucessful ECN handshake{s0}", ("ecn_shs",)),   # sic: NetBSD's spelling
    ("\t{0} packet{s0} with ECN CE bit", ("ecn_ce",)),
    ("\t{0} packet{s0} ECN ECT(0) bit", ("ecn_ect",)),
)


def render_netstat(stats: TcpStats, name: str = "tcp", sflag: int = 1) -> str:
    """``netstat -s -p tcp`` text; with ``sflag`` > 1 (``-ss``) all-zero lines are left out,
    as NetBSD does."""
    out = [f"{name}:"]
    for template, fields in _NETSTAT:
        values = [getattr(stats, f, 0) for f in fields]
        if sflag > 1 and not any(values):
            continue
        kw = {}
        for i, v in enumerate(values):
            kw[f"s{i}"] = "" if v == 1 else "s"
            kw[f"es{i}"] = "" if v == 1 else "es"
            kw[f"ies{i}"] = "y" if v == 1 else "ies"
        out.append(template.format(*values, **kw))
    return "\n".join(out) + "\n"
