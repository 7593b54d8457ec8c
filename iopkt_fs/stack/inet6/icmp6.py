"""ICMPv6 (RFC 4443): echo, errors out with the never-answer rules, errors in.

Errors out (``error``) enforce RFC 4443 2.4(e) once, for every caller. No error about:

* an ICMPv6 error message, or a Redirect;
* a packet to a multicast address or received as a link-layer multicast, except Packet
  Too Big and Parameter Problem code 2 for an option whose type's high bits are ``10``
  (the caller says so with ``allow_multicast``);
* a packet whose source is ::, multicast, or not a unicast address of one host.

and at most ``net.inet6.icmp6.errppslimit`` per second (2.4(f); QNX 100, -1 unlimited).
An error quotes as much of the packet as fits in the minimum MTU (2.4(c)). Its source is
the packet's destination when that is one of our unicast addresses, else our address
chosen for the packet's source (2.2).

Errors in are matched to the transport from the quoted packet (its extension headers
walked to the upper-layer header) and handed on as IPv4's ``ctlinput`` codes, which is
what the TCP and UDP entries of the switch speak (NetBSD maps both families onto PRC_*
codes the same way, icmp6.c ``icmp6_notify_error``). Packet Too Big also lowers the path
MTU (RFC 8201 4; never below 1280).

ND messages (133-137) go to ``ndisc.Ndisc``, MLD (130-132, 143) to ``mld6.MldListener``.
"""

from collections import deque

from ..errors import StackError
from ..inet.stats import ICMP_TIMXCEED, ICMP_UNREACH, UNREACH_HOST, UNREACH_NEEDFRAG, UNREACH_PORT, UNREACH_PROTOCOL
from ..inet.ratelimit import ErrorRate
from ..time import Instant
from ..wire.errors import Malformed
from ..wire.icmpv6 import (
    Icmpv6DstUnreachable, Icmpv6EchoReply, Icmpv6EchoRequest, Icmpv6Packet, Icmpv6PacketTooBig,
    Icmpv6ParamProblem, Icmpv6TimeExceeded, Icmpv6Type as T, PARAMPROB_NEXTHEADER,
    PARAMPROB_OPTION, UNREACH_PORT as UNREACH6_PORT,
)
from ..wire.ipv6 import EXT_HEADERS, HEADER_LEN, MIN_MTU, NH_FRAGMENT, Ipv6Packet, ext_header_len, is_multicast
from .stats import Icmp6Stat

PROTO = 58
ERRPPSLIMIT = 100
ECHO_REPLY_LOG = 256
ND_TYPES = frozenset((T.ROUTER_SOLICIT, T.ROUTER_ADVERT, T.NEIGHBOR_SOLICIT, T.NEIGHBOR_ADVERT, T.REDIRECT))
MLD_TYPES = frozenset((T.MLD_QUERY, T.MLD_REPORT, T.MLD_DONE, T.MLD2_REPORT))

# (type, code) -> what the transport's ctlinput is told (IPv4's codes) and TCP's kind.
_CTL = {
    (T.DST_UNREACH, UNREACH6_PORT): ((ICMP_UNREACH, UNREACH_PORT), "refused"),
    (T.PARAM_PROBLEM, PARAMPROB_NEXTHEADER): ((ICMP_UNREACH, UNREACH_PROTOCOL), "refused"),
    (T.PACKET_TOO_BIG, 0): ((ICMP_UNREACH, UNREACH_NEEDFRAG), "frag_needed"),
}
_CTL_BY_TYPE = {
    T.DST_UNREACH: ((ICMP_UNREACH, UNREACH_HOST), "unreachable"),
    T.TIME_EXCEEDED: ((ICMP_TIMXCEED, 0), "unreachable"),
}
_ERROR_CLASSES = {T.DST_UNREACH: Icmpv6DstUnreachable, T.TIME_EXCEEDED: Icmpv6TimeExceeded}


class Quoted:
    """The packet an error quotes, as the transports' ctlinput reads it."""

    __slots__ = ("src", "dst", "protocol", "payload")

    def __init__(self, src: bytes, dst: bytes, protocol: int, payload):
        self.src, self.dst, self.protocol, self.payload = src, dst, protocol, payload


def upper_layer(pkt: Ipv6Packet):
    """(next header, offset) of the upper-layer header of a (possibly cut) packet, by
    walking the extension headers; None if the chain does not fit or is a later fragment."""
    buf = pkt.datagram
    nh = pkt.next_header
    off = HEADER_LEN
    for _ in range(16):
        if nh not in EXT_HEADERS:
            return nh, off
        try:
            length = ext_header_len(nh, buf[off:])
        except Malformed:
            return None
        if nh == NH_FRAGMENT and (buf[off + 2] << 8 | buf[off + 3]) & 0xFFF8:
            return None
        nh = buf[off]
        off += length
    return None


class Icmp6Protocol:
    proto = PROTO

    def __init__(self, ip):
        self.ip = ip
        self.stats = Icmp6Stat()
        self._node_limit = ip.stack.sysctl.node("net.inet6.icmp6.errppslimit")
        self._rate = ErrorRate(lambda: self._node_limit.value)
        self.echo_replies: deque = deque(maxlen=ECHO_REPLY_LOG)
        self.ndisc = None                    # set by the layer (ndisc.py)
        self.mld = None                      # set by the layer (mld6.py)

    # -- input ----------------------------------------------------------------------------

    def input(self, ctx, payload, now: Instant) -> None:
        st = self.stats
        if len(payload) < 8:
            st.tooshort += 1
            return
        pkt = Icmpv6Packet(payload)
        ip6 = ctx.ip
        if not ctx.csum_ok and not pkt.verify_checksum(ip6.src, ip6.dst):
            st.checksum += 1
            return
        icmp_type = pkt.type
        st.count_in(icmp_type)
        raw = getattr(self.ip, "raw", None)
        if raw is not None and raw.sockets:
            raw.input(ctx, payload)          # rip6_input: raw ICMPv6 sockets see every message
        if icmp_type == T.ECHO_REQUEST:
            self._echo_reply(ctx, pkt, now)
        elif icmp_type == T.ECHO_REPLY:
            self.echo_replies.append((now, ip6.src, pkt.ident, pkt.seq, bytes(pkt.payload), ip6.hop_limit))
        elif icmp_type in ND_TYPES:
            self.ndisc.input(ctx, pkt, now)
        elif icmp_type in MLD_TYPES:
            self.mld.input(ctx, pkt, now)
        elif icmp_type < 128:
            self._error_input(pkt, now)
        # Unknown informational messages are silently discarded (RFC 4443 2.4(b)).

    def _echo_reply(self, ctx, pkt: Icmpv6Packet, now: Instant) -> None:
        # RFC 4443 4.2: identifier, sequence and data copied; the reply's source is the
        # request's destination when unicast, else our address chosen toward the sender.
        ip = self.ip
        ip6 = ctx.ip
        try:
            src = ip6.dst if not ctx.broadcast else ip.source_for(ip6.src, ctx.iface)
            if ip.is_tentative(src):
                return
            reply = Icmpv6EchoReply(pkt.ident, pkt.seq, bytes(pkt.payload)).to_bytes(src, ip6.src)
            self.stats.reflect += 1
            self.stats.count_out(T.ECHO_REPLY)
            ip.output(reply, src, ip6.src, PROTO, now, iface=ctx.iface if ip.needs_zone(ip6.src) else None,
                      tclass=ip6.traffic_class)
        except StackError as exc:
            ip.output_failed(exc)

    def _error_input(self, pkt: Icmpv6Packet, now: Instant) -> None:
        st = self.stats
        try:
            quoted = Ipv6Packet.new_quoted(pkt.payload)
        except Malformed:
            st.badlen += 1
            return
        found = upper_layer(quoted)
        if found is None or len(quoted.datagram) < found[1] + 8:
            st.badlen += 1
            return
        nh, off = found
        icmp_type, code = pkt.type, pkt.code
        entry = _CTL.get((icmp_type, code if icmp_type != T.PACKET_TOO_BIG else 0)) or _CTL_BY_TYPE.get(icmp_type)
        if entry is None:
            return
        (v4type, v4code), kind = entry
        q = Quoted(quoted.src, quoted.dst, nh, quoted.datagram[off:])
        mtu = None
        if icmp_type == T.PACKET_TOO_BIG:
            mtu = self.ip.lower_pmtu(quoted.dst, pkt.rest, now)
            if mtu is None:
                return
        handler = self.ip.protosw.get(nh)
        ctl6 = getattr(handler, "ctlinput6", None)
        if ctl6 is not None:
            ctl6(kind, mtu, q, now)
            return
        ctlinput = getattr(handler, "ctlinput", None)
        if ctlinput is not None:
            ctlinput(v4type, v4code, q, now)

    # -- output ---------------------------------------------------------------------------

    def send_echo(self, dst: bytes, ident: int, seq: int, data: bytes, now: Instant, *, src=None,
                  iface=None, hlim=None) -> None:
        ip = self.ip
        src = src or ip.source_for(dst, iface)
        self.stats.count_out(T.ECHO_REQUEST)
        ip.output(Icmpv6EchoRequest(ident, seq, bytes(data)).to_bytes(src, dst), src, dst, PROTO, now,
                  iface=iface, hlim=hlim)

    def _rate_ok(self, now: Instant) -> bool:
        return self._rate.allow(now)

    def error(self, datagram, icmp_type: int, code: int, now: Instant, *, pointer: int = 0,
              mtu: int = 0, in_iface=None, link_multicast: bool = False,
              allow_multicast: bool = False) -> bool:
        """icmp6_error(): answer ``datagram`` (the whole packet as received). Never raises."""
        st = self.stats
        st.error += 1
        ip = self.ip
        try:
            orig = Ipv6Packet.new_quoted(datagram)
        except Malformed:
            st.canterror += 1
            return False
        src, dst = orig.src, orig.dst
        found = upper_layer(orig)
        if found is not None and found[0] == PROTO and len(orig.datagram) > found[1]:
            inner = orig.datagram[found[1]]
            if inner < 128 or inner == T.REDIRECT:
                st.canterror += 1            # 2.4(e.1), (e.2)
                return False
        exempt = icmp_type == T.PACKET_TOO_BIG or (icmp_type == T.PARAM_PROBLEM and code == PARAMPROB_OPTION
                                                    and allow_multicast)
        if (is_multicast(dst) or link_multicast) and not exempt:
            st.canterror += 1                # 2.4(e.3), (e.4)
            return False
        if src == bytes(16) or is_multicast(src) or not ip.is_unique_host(src, in_iface):
            st.canterror += 1                # 2.4(e.6)
            return False
        if not self._rate_ok(now):
            st.toofreq += 1
            return False
        quote = bytes(orig.datagram[:MIN_MTU - HEADER_LEN - 8])
        try:
            reply_src = dst if ip.is_usable_local(dst) else ip.source_for(src, in_iface)
            if icmp_type == T.PACKET_TOO_BIG:
                message = Icmpv6PacketTooBig(mtu, quote)
            elif icmp_type == T.PARAM_PROBLEM:
                message = Icmpv6ParamProblem(code, pointer, quote)
            else:
                message = _ERROR_CLASSES[icmp_type](code, quote)
            st.count_out(icmp_type)
            ip.output(message.to_bytes(reply_src, src), reply_src, src, PROTO, now,
                      iface=in_iface if ip.needs_zone(src) else None)
        except StackError as exc:
            ip.output_failed(exc)
            return False
        return True
