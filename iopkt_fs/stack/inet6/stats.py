"""IPv6 and ICMPv6 counters with NetBSD's names (netinet6/ip6_var.h, icmp6.h), lower-cased.

Every drop on the receive path increments exactly one reason counter.
"""

import attrs


@attrs.define
class Ip6Stat:
    total: int = 0          # total packets received
    tooshort: int = 0       # packet too short (payload length past the data)
    toosmall: int = 0       # not enough data for a header
    fragments: int = 0      # fragments received
    fragdropped: int = 0    # frags dropped (dups, overlaps, a datagram already killed)
    fragtimeout: int = 0    # fragments timed out
    fragoverflow: int = 0   # fragments over the maxfragpackets / maxfrags limits
    forward: int = 0        # packets forwarded
    cantforward: int = 0    # not ours and not forwarding (or a group we are not in)
    delivered: int = 0      # datagrams delivered to upper level
    localout: int = 0       # total ip packets generated here
    odropped: int = 0       # lost packets (no route, unresolved neighbour ...)
    reassembled: int = 0    # total packets reassembled ok
    atomicfrags: int = 0    # RFC 6946 atomic fragments, processed in isolation
    fragmented: int = 0     # datagrams successfully fragmented
    ofragments: int = 0     # output fragments created
    cantfrag: int = 0       # too big to send and not allowed to fragment
    badoptions: int = 0     # error in option processing
    noroute: int = 0        # packets discarded due to no route
    badvers: int = 0        # ip6 version != 6
    toomanyhdr: int = 0     # discarded due to too many headers (hdrnestlimit)
    badscope: int = 0       # scope error (loopback from a wire, multicast source ...)
    notmember: int = 0      # multicast to a group we are not in
    tentative: int = 0      # to one of our addresses still under DAD (RFC 4862 5.4)
    noproto: int = 0        # unknown next header
    ifdisabled: int = 0     # came in by an interface with IPv6 disabled (ND6_IFF_IFDISABLED)
    # Offloads (no NetBSD counterpart): super-segments handed whole to a TSO6 link, cut
    # in software for a link without it, and GSO super-frames taken in whole.
    otso: int = 0
    ogso: int = 0
    igso: int = 0

    def snapshot(self) -> dict:
        return attrs.asdict(self)


@attrs.define
class Icmp6Stat:
    error: int = 0          # calls to icmp6_error
    canterror: int = 0      # no error sent: the never-answer rules (RFC 4443 2.4(e))
    toofreq: int = 0        # no error sent: rate limit (errppslimit)
    tooshort: int = 0       # message shorter than a header
    checksum: int = 0       # bad checksum
    badcode: int = 0        # ND with a code other than 0
    badlen: int = 0         # a body or ND option that does not parse
    badhlim: int = 0        # ND with a hop limit other than 255 (ours: NetBSD counts badns..)
    badns: int = 0
    badna: int = 0
    fragnd: int = 0         # ND in a fragmented packet (RFC 6980)
    dupaddr: int = 0        # DAD found a duplicate
    reflect: int = 0        # echo replies sent
    inhist: dict = attrs.Factory(dict)
    outhist: dict = attrs.Factory(dict)

    def count_in(self, icmp_type: int) -> None:
        self.inhist[icmp_type] = self.inhist.get(icmp_type, 0) + 1

    def count_out(self, icmp_type: int) -> None:
        self.outhist[icmp_type] = self.outhist.get(icmp_type, 0) + 1

    def snapshot(self) -> dict:
        return attrs.asdict(self)
