"""ICMP for IPv4 (RFC 792, RFC 1122 3.2.2): echo, errors out, errors in.

Output of errors (``error``) enforces RFC 1122 3.2.2's "MUST NOT send an ICMP error
message" list once, for every caller:

* about an ICMP error message (an echo request is fine, a port unreachable is not);
* about a datagram sent to an IP broadcast or multicast address, or received as a
  link-layer broadcast;
* about a fragment other than the first;
* about a datagram whose source is not one unique host (0.0.0.0, 127/8 from outside,
  broadcast, multicast, class E).

Errors are rate-limited as NetBSD's icmp_ratelimit() does: at most
``net.inet.icmp.errppslimit`` per second (default 100; -1 disables the limit). Echo
replies are not errors and are not limited. Echo requests to a broadcast or multicast
address are ignored (NetBSD ``icmpbmcastecho`` 0: the smurf amplifier stays off).

Errors received are handed to the protocol of the datagram they quote (``ctlinput`` in
the protocol switch), which tells the socket.
"""

from collections import deque

from ..errors import StackError
from ..time import Instant
from ..wire.errors import Malformed
from ..wire.icmp import HEADER_LEN as ICMP_HLEN
from ..wire.icmp import (
    IcmpDstUnreachable, IcmpEchoRequest, IcmpGeneric, IcmpPacket, IcmpTimeExceeded,
)
from ..wire.ipv4 import Ipv4Packet
from .ratelimit import ErrorRate
from .stats import (
    ICMP_ECHO, ICMP_ECHOREPLY, ICMP_MAXTYPE, ICMP_PARAMPROB, ICMP_REDIRECT, ICMP_SOURCEQUENCH,
    ICMP_TIMXCEED, ICMP_UNREACH, IcmpStat, UNREACH_NEEDFRAG,
)

# RFC 1122 3.2.2: these types are errors; the others are queries.
ERROR_TYPES = frozenset((ICMP_UNREACH, ICMP_SOURCEQUENCH, ICMP_REDIRECT, ICMP_TIMXCEED, ICMP_PARAMPROB))
ERRPPSLIMIT = 100          # NetBSD icmperrppslim
QUOTE_DATA = 8             # RFC 792: the original header and 64 bits of its data
ECHO_REPLY_LOG = 256       # echo replies kept for in-core pingers (tests, tools)


def _echo_to_reply(pkt: IcmpPacket) -> bytes:
    """The echo request turned into its reply (``echo_reply_message``)."""
    return echo_reply_message(pkt._buf)


def echo_reply_message(request) -> bytes:
    """The echo request message ``request`` (checksum verified) turned into its reply:
    type 0, code 0, the rest the same.

    The checksum is updated incrementally (RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m')) for
    the one 16-bit word that changes, instead of summing the data again; the request's
    checksum was verified, so the result is the checksum of the reply.
    """
    reply = bytearray(request)
    old_word = (reply[0] << 8) | reply[1]
    total = (~((reply[2] << 8) | reply[3]) & 0xFFFF) + (~old_word & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    # 0x0000 and 0xffff are both "zero" in one's complement; only 0xffff is right when the
    # rest of the message is all zeros (an empty echo with id 0 and seq 0), and it is
    # never wrong.
    checksum = (~total & 0xFFFF) or 0xFFFF
    reply[0] = 0
    reply[1] = 0
    reply[2] = checksum >> 8
    reply[3] = checksum & 0xFF
    return bytes(reply)


class IcmpProtocol:
    """The ICMP entry of the protocol switch."""

    proto = 1

    def __init__(self, ip):
        self.ip = ip
        self.stats = IcmpStat()
        sysctl = ip.stack.sysctl
        if "net.inet.icmp.errppslimit" not in sysctl:
            sysctl.add("net.inet.icmp.errppslimit", ERRPPSLIMIT,
                       "Maximum ICMP errors sent per second (-1: no limit)", minimum=-1)
        if "net.inet.icmp.bmcastecho" not in sysctl:
            sysctl.add("net.inet.icmp.bmcastecho", 0,
                       "Answer echo requests sent to broadcast or multicast", minimum=0, maximum=1)
        self._node_limit = sysctl.node("net.inet.icmp.errppslimit")
        self._node_bmcast = sysctl.node("net.inet.icmp.bmcastecho")
        self._rate = ErrorRate(lambda: self._node_limit.value)
        # Echo replies addressed to us, for an in-core ping (a raw socket comes later):
        # (now, src, ident, seq, data, ttl).
        self.echo_replies: deque = deque(maxlen=ECHO_REPLY_LOG)
        self.on_echo_reply = None

    # -- input ----------------------------------------------------------------------------

    def input(self, ctx, payload, now: Instant) -> None:
        stats = self.stats
        if len(payload) < ICMP_HLEN:
            stats.tooshort += 1
            return
        pkt = IcmpPacket(payload)
        if not pkt.verify_checksum():
            stats.checksum += 1
            return
        icmp_type = pkt.type
        if icmp_type <= ICMP_MAXTYPE:
            stats.inhist[icmp_type] += 1
        raw = self.ip.raw
        if raw.sockets:
            raw.input(ctx, payload)   # BSD rip_input: raw sockets see a copy of every message
        if icmp_type == ICMP_ECHO:
            if ctx.broadcast and not self._node_bmcast.value:
                stats.bmcastecho += 1
                return
            self._echo_reply(ctx, pkt, now)
        elif icmp_type == ICMP_ECHOREPLY:
            self.echo_replies.append((now, ctx.ip.src, pkt.ident, pkt.seq, bytes(pkt.payload), ctx.ip.ttl))
            if self.on_echo_reply is not None:
                self.on_echo_reply(ctx, pkt.ident, pkt.seq, bytes(pkt.payload), now)
        elif icmp_type in ERROR_TYPES:
            self._error_input(pkt, now)
        # Other queries (timestamp, mask, router discovery) are not answered: NetBSD only
        # answers timestamps and masks when asked to, and io-pkt ships with both off.

    def _echo_reply(self, ctx, pkt: IcmpPacket, now: Instant) -> None:
        # RFC 1122 3.2.2.6: same identifier, sequence and data; the reply's source is the
        # address the request was sent to (RFC 1122 3.2.1.3), or ours on that interface
        # when it was a broadcast.
        reply = _echo_to_reply(pkt)
        ip = self.ip
        src = None if ctx.broadcast else ctx.ip.dst
        self.stats.reflect += 1
        self.stats.outhist[ICMP_ECHOREPLY] += 1
        try:
            ip.output(reply, src, ctx.ip.src, self.proto, now, tos=ctx.ip.tos)
        except StackError as exc:   # an unroutable reply is a counted drop
            ip.output_failed(exc)

    def _error_input(self, pkt: IcmpPacket, now: Instant) -> None:
        stats = self.stats
        body = pkt.payload
        try:
            quoted = Ipv4Packet.new_quoted(body)
        except Malformed:
            stats.badlen += 1
            return
        # RFC 1122 3.2.2: the quote must carry the header and 8 bytes of the transport
        # header, or it cannot be matched to a socket.
        if len(quoted.payload) < QUOTE_DATA:
            stats.badlen += 1
            return
        code = pkt.code
        if pkt.type == ICMP_UNREACH and code == UNREACH_NEEDFRAG:
            stats.pmtuchg += 1
        handler = self.ip.protosw.get(quoted.protocol)
        ctlinput = getattr(handler, "ctlinput", None)
        if ctlinput is not None:
            ctlinput(pkt.type, code, quoted, now)

    # -- output ---------------------------------------------------------------------------

    def send_echo(self, dst, ident: int, seq: int, data: bytes, now: Instant, *, src=None, ttl: int | None = None) -> None:
        """Send an echo request (what ping does); the reply lands in ``echo_replies``."""
        message = IcmpEchoRequest(ident, seq, bytes(data)).to_bytes()
        self.stats.outhist[ICMP_ECHO] += 1
        self.ip.output(message, src, dst, self.proto, now, ttl=ttl)

    def _rate_ok(self, now: Instant) -> bool:
        return self._rate.allow(now)

    def error(self, datagram, icmp_type: int, code: int, now: Instant, *, mtu: int = 0,
              link_broadcast: bool = False, in_iface=None, gateway: bytes | None = None) -> bool:
        """icmp_error(): answer ``datagram`` (a whole IP datagram or its head) with an error.

        Returns True if an error was queued. Never raises: a datagram that must not be
        answered, an exceeded rate or an unroutable source is counted and dropped.
        """
        stats = self.stats
        stats.error += 1
        ip = self.ip
        try:
            orig = Ipv4Packet.new_quoted(datagram)
        except Malformed:
            stats.oldshorticmp += 1
            return False
        hlen = orig.header_len
        if orig.protocol == self.proto:
            inner = orig.payload
            if len(inner) < 1 or inner[0] in ERROR_TYPES or inner[0] > ICMP_MAXTYPE:
                stats.oldicmp += 1
                return False
        if orig.frag_offset:
            stats.oldshorticmp += 1     # NetBSD counts non-first fragments here too
            return False
        src, dst = orig.src, orig.dst
        if link_broadcast or not ip.is_unique_host(src, from_outside=in_iface is not None
                                                  and not in_iface.is_loopback) \
                or ip.is_broadcast_or_multicast(dst):
            stats.oldshorticmp += 1
            return False
        if not self._rate_ok(now):
            stats.ratelim += 1
            return False
        quote = bytes(orig.datagram[: hlen + QUOTE_DATA])
        if icmp_type == ICMP_UNREACH:
            message = IcmpDstUnreachable(code, quote, mtu if code == UNREACH_NEEDFRAG else 0).to_bytes()
        elif icmp_type == ICMP_REDIRECT:
            # RFC 792: the rest-of-header word is the better gateway's address.
            message = IcmpGeneric(ICMP_REDIRECT, code, int.from_bytes(gateway or bytes(4), "big"), quote).to_bytes()
        else:
            message = IcmpTimeExceeded(code, quote).to_bytes()
        # Source: the address the datagram was sent to if it is ours, else our address on
        # the interface it came in by (NetBSD icmp_reflect()).
        reply_src = dst if ip.is_local(dst) else ip.interface_address(in_iface)
        stats.outhist[icmp_type] += 1
        try:
            ip.output(message, reply_src, src, self.proto, now)
        except StackError as exc:   # no route back: a counted drop
            ip.output_failed(exc)
            return False
        return True
